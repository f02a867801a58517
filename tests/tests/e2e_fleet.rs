//! A fleet sharing one keys file (`ServerConfig::keys`), over loopback with the adapters:
//!
//! - a RETRY token minted by one server instance is accepted by a second instance with the
//!   same keys, and refused by one with other keys;
//! - after a server restart with the same keys, a client of the old process is told by a
//!   stateless reset that its connection is gone and fails at once, instead of waiting for
//!   its idle timeout.
//!
//! Real time and real sockets; every test is bounded by [`LIMIT`].

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Response;
use quicksand_adapter::{connect_on, serve_on, Runtime, Server};
use quicksand_core::metrics::RejectReason;
use quicksand_core::{AddressValidation, CloseReason};
use quicksand_h3::{Body, RecvBody};
use quicksand_smol::Smol;
use quicksand_tokio::{ClientConfig, FleetKeys, PreboundSockets, ServerConfig, Tokio};

const LIMIT: Duration = Duration::from_secs(60);
/// Long enough that a client waiting for it would blow [`LIMIT`]: only a recognised reset
/// ends the connection in time.
const IDLE: Duration = Duration::from_secs(120);

async fn hello(_: http::Request<RecvBody>) -> Response<Body> {
    Response::new(Body::from("hello"))
}

fn server_config(keys: &FleetKeys) -> ServerConfig {
    let mut c = ServerConfig {
        keys: Some(keys.clone()),
        workers: 1,
        ..ServerConfig::default()
    };
    c.endpoint.address_validation = AddressValidation::Always;
    c.quic.max_idle_timeout = Some(IDLE);
    c
}

fn client_config() -> ClientConfig {
    let mut c = ClientConfig::default().insecure();
    c.quic.max_idle_timeout = Some(IDLE);
    c.quic.handshake_timeout = Some(Duration::from_secs(3));
    c
}

/// True for a QUIC v1 Retry packet (long header, type 3).
fn is_retry(packet: &[u8]) -> bool {
    packet
        .first()
        .is_some_and(|b| b & 0x80 != 0 && (b >> 4) & 0x03 == 0x03)
}

/// A relay the client talks to: it sends the client's datagrams to `first` until `first`
/// answers with a RETRY, and to `second` from then on, all from one socket, so both servers
/// see the same client address. Returns the address to connect to. Plain threads, so it works
/// under any runtime; they end with the test binary.
fn retry_relay(first: SocketAddr, second: SocketAddr) -> SocketAddr {
    let front = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let back = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let addr = front.local_addr().unwrap();
    // (the client's address, where its datagrams go)
    let route = Arc::new(Mutex::new((None::<SocketAddr>, first)));
    {
        let (front, back, route) = (front.clone(), back.clone(), route.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = front.recv_from(&mut buf) {
                let target = {
                    let mut r = route.lock().unwrap();
                    r.0 = Some(from);
                    r.1
                };
                let _ = back.send_to(&buf[..n], target);
            }
        });
    }
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = back.recv_from(&mut buf) {
            let client = {
                let mut r = route.lock().unwrap();
                if from == first && is_retry(&buf[..n]) {
                    r.1 = second;
                }
                r.0
            };
            if let Some(client) = client {
                let _ = front.send_to(&buf[..n], client);
            }
        }
    });
    addr
}

async fn endpoint_stats<R: Runtime>(server: &Server<R>) -> quicksand_core::EndpointStats {
    server.stats().await[0].endpoint
}

/// The RETRY-token tests, once per runtime: the code under test is the shared adapter layer,
/// run on each runtime's sockets, timers and tasks.
macro_rules! retry_tokens {
    ($name:ident, $run:path, $runtime:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn a_retry_token_from_one_instance_is_accepted_by_another_with_the_same_keys() {
                $run(LIMIT, async {
                    let keys = FleetKeys::generate();
                    let serve = |keys: &FleetKeys| {
                        let config = server_config(keys);
                        serve_on($runtime, "127.0.0.1:0".parse().unwrap(), config, hello).unwrap()
                    };
                    let (first, second) = (serve(&keys), serve(&keys));
                    let relay = retry_relay(first.local_addr(), second.local_addr());

                    let (_client, conn) = connect_on($runtime, relay, "localhost", client_config())
                        .await
                        .expect("the second instance accepts the first one's RETRY token");
                    let resp = conn.get("https://localhost/").await.unwrap();
                    assert_eq!(resp.body().as_ref(), b"hello");

                    let (a, b) = (endpoint_stats(&first).await, endpoint_stats(&second).await);
                    // One RETRY per client Initial that reached it before the relay switched.
                    assert!(a.retries >= 1, "the first instance sent the RETRY: {a:?}");
                    assert_eq!(a.incoming, 0, "and made no connection: {a:?}");
                    assert_eq!(
                        b.retries, 0,
                        "the second one needed no RETRY of its own: {b:?}"
                    );
                    assert_eq!(b.incoming, 1, "it took the connection: {b:?}");
                    assert_eq!(b.tokens_rejected, 0, "{b:?}");
                });
            }

            #[test]
            fn a_retry_token_is_refused_by_an_instance_with_other_keys() {
                $run(LIMIT, async {
                    let serve = || {
                        let config = server_config(&FleetKeys::generate());
                        serve_on($runtime, "127.0.0.1:0".parse().unwrap(), config, hello).unwrap()
                    };
                    let (first, second) = (serve(), serve());
                    let relay = retry_relay(first.local_addr(), second.local_addr());

                    let refused = connect_on($runtime, relay, "localhost", client_config()).await;
                    assert!(
                        refused.is_err(),
                        "a token sealed with other keys must not open"
                    );

                    let b = endpoint_stats(&second).await;
                    assert!(
                        b.rejected(RejectReason::InvalidToken) >= 1 && b.incoming == 0,
                        "the second instance refused the token and made no connection: {b:?}"
                    );
                });
            }
        }
    };
}

retry_tokens!(tokio_adapter, common::run_tokio, Tokio::default());
retry_tokens!(smol_adapter, common::run_smol, Smol::default());

/// Serves on `socket` (a duplicate of the test's socket, so the port stays the same across
/// the restart) on its own runtime, which is dropped — tasks and sockets with it, no
/// CONNECTION_CLOSE sent — to simulate a crash.
fn start_on_own_runtime(
    socket: &std::net::UdpSocket,
    keys: &FleetKeys,
) -> (tokio::runtime::Runtime, Server<Tokio>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = ServerConfig {
        prebound: Some(PreboundSockets::new(vec![socket.try_clone().unwrap()])),
        ..server_config(keys)
    };
    let addr = socket.local_addr().unwrap();
    let server = quicksand_tokio::quicksand_adapter::serve_on(
        Tokio::on(rt.handle().clone()),
        addr,
        config,
        hello,
    )
    .unwrap();
    (rt, server)
}

/// Runs the restart: a client connected to the first process asks again after the server
/// restarted with `restarted_keys`; returns how the client's connection ended (or `None` if
/// it had not ended `wait` after the request).
fn restart(
    restarted_keys: impl FnOnce(&FleetKeys) -> FleetKeys,
    wait: Duration,
) -> Option<CloseReason> {
    let keys = FleetKeys::generate();
    let bound = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = bound.local_addr().unwrap();
    let (rt1, server1) = start_on_own_runtime(&bound, &keys);
    let mut outcome = None;
    common::run_tokio(LIMIT, async {
        let (_client, conn) = quicksand_tokio::connect(addr, "localhost", client_config())
            .await
            .unwrap();
        assert_eq!(
            conn.get("https://localhost/")
                .await
                .unwrap()
                .body()
                .as_ref(),
            b"hello"
        );

        // The crash: the first process's tasks and sockets vanish without a word. (Runtimes
        // are started and dropped on a blocking thread: not allowed inside async code.)
        let keys2 = restarted_keys(&keys);
        let restarted = tokio::task::spawn_blocking(move || {
            drop(server1);
            rt1.shutdown_timeout(Duration::from_secs(5));
            start_on_own_runtime(&bound, &keys2)
        })
        .await
        .unwrap();

        let request = conn.get("https://localhost/");
        let closed = conn.connection.closed();
        let (answer, ended) = tokio::join!(
            tokio::time::timeout(wait, request),
            tokio::time::timeout(wait, closed)
        );
        if let Ok(Ok(resp)) = answer {
            panic!("the restarted server cannot know the connection, yet answered {resp:?}");
        }
        outcome = ended
            .ok()
            .map(|r| r.expect("the client endpoint is still running"));
        tokio::task::spawn_blocking(move || drop(restarted))
            .await
            .unwrap();
    });
    outcome
}

#[test]
fn after_a_restart_with_the_same_keys_old_clients_get_a_reset_they_recognise() {
    let ended = restart(FleetKeys::clone, Duration::from_secs(20));
    assert_eq!(
        ended,
        Some(CloseReason::StatelessReset),
        "the client recognised the restarted server's stateless reset"
    );
}

#[test]
fn after_a_restart_with_new_keys_the_reset_is_not_recognised() {
    // The counter-check of the test above: with other keys the reset token is wrong, the
    // client ignores it (RFC 9000 §10.3.1) and its connection is still open when the first
    // test's client had long given up.
    let ended = restart(|_| FleetKeys::generate(), Duration::from_secs(3));
    assert_eq!(
        ended, None,
        "a reset with the wrong token must not end the connection"
    );
}
