//! End-to-end tests over real loopback sockets, one suite run against both adapters: the
//! test bodies are written once in `suite!` and instantiated for tokio and for smol.
//!
//! Real time and real sockets: this binary does not install the virtual clock. Every test is
//! bounded by [`LIMIT`].

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use quicksand_h3::{Body, RecvBody};

/// Most a single test may take.
const LIMIT: Duration = Duration::from_secs(90);
/// The download test's size.
const BIG: u64 = 100 << 20;

/// Byte `i` of every `/bytes/N` body.
fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// True if `data`, found at `offset` of a `/bytes/N` body, is the pattern.
fn is_pattern(offset: u64, data: &[u8]) -> bool {
    data.iter()
        .enumerate()
        .all(|(i, b)| *b == pattern_byte(offset + i as u64))
}

/// `/bytes/N` in 64 KiB chunks.
struct Generated {
    sent: u64,
    total: u64,
    pattern: Bytes,
}

impl futures::Stream for Generated {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let len = (self.total - self.sent).min(65_536) as usize;
        if len == 0 {
            return Poll::Ready(None);
        }
        let start = (self.sent % 251) as usize;
        let chunk = self.pattern.slice(start..start + len);
        self.sent += len as u64;
        Poll::Ready(Some(Ok(chunk)))
    }
}

/// `/slow/N`: N chunks of [`SLOW_CHUNK`] pattern bytes, one every [`SLOW_TICK`]. The delay
/// comes from a short-lived thread, so the stream needs no runtime.
struct Slow {
    left: u64,
    sent: u64,
    tick: Option<Arc<AtomicBool>>,
}

const SLOW_CHUNK: u64 = 16 * 1024;
const SLOW_TICK: Duration = Duration::from_millis(25);

impl futures::Stream for Slow {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        match &self.tick {
            Some(done) if done.load(Ordering::Acquire) => {
                self.tick = None;
                self.left -= 1;
                let chunk: Vec<u8> = (self.sent..self.sent + SLOW_CHUNK)
                    .map(pattern_byte)
                    .collect();
                self.sent += SLOW_CHUNK;
                Poll::Ready(Some(Ok(chunk.into())))
            }
            Some(_) => Poll::Pending,
            None => {
                let done = Arc::new(AtomicBool::new(false));
                self.tick = Some(done.clone());
                let waker = cx.waker().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(SLOW_TICK);
                    done.store(true, Ordering::Release);
                    waker.wake();
                });
                Poll::Pending
            }
        }
    }
}

/// The test service: `/bytes/N`, `/slow/N`, `/hang` (a head, then a body that never ends),
/// `/` hello.
fn service(req: Request<RecvBody>) -> std::future::Ready<Response<Body>> {
    let path = req.uri().path();
    let body = if let Some(n) = path.strip_prefix("/bytes/") {
        let pattern: Vec<u8> = (0..65_536 + 251).map(pattern_byte).collect();
        Body::from_stream(Generated {
            sent: 0,
            total: n.parse().expect("a number"),
            pattern: pattern.into(),
        })
    } else if let Some(n) = path.strip_prefix("/slow/") {
        Body::from_stream(Slow {
            left: n.parse().expect("a number"),
            sent: 0,
            tick: None,
        })
    } else if path == "/hang" {
        Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>())
    } else {
        Body::from("hello")
    };
    std::future::ready(Response::new(body))
}

/// `E2E_LOG=1` prints the adapters' and the core's debug logs.
/// A UDP relay that plays a NAT: the client talks to `front`; the relay talks to the server
/// from an upstream socket that [`rebind`](Self::rebind) replaces, so the server sees the
/// client's address change (and, with `SO_REUSEPORT` workers, the kernel may hand the new
/// flow to another socket). Threads and blocking sockets: no runtime needed.
struct RebindingRelay {
    front: Arc<std::net::UdpSocket>,
    server: SocketAddr,
    client: Arc<std::sync::Mutex<Option<SocketAddr>>>,
    upstream: Arc<std::sync::Mutex<Arc<std::net::UdpSocket>>>,
    ports: std::sync::Mutex<Vec<Arc<std::net::UdpSocket>>>,
    turn: std::sync::Mutex<usize>,
    stop: Arc<AtomicBool>,
}

impl RebindingRelay {
    fn start(server: SocketAddr) -> RebindingRelay {
        use std::net::UdpSocket;
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        front
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let relay = RebindingRelay {
            front,
            server,
            client: Arc::default(),
            upstream: Arc::new(std::sync::Mutex::new(Arc::new(
                UdpSocket::bind("127.0.0.1:0").unwrap(),
            ))),
            ports: Default::default(),
            turn: Default::default(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        relay.rebind(1);
        // Client → server through the current upstream socket.
        let (front, client, upstream, stop) = (
            relay.front.clone(),
            relay.client.clone(),
            relay.upstream.clone(),
            relay.stop.clone(),
        );
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    *client.lock().unwrap() = Some(from);
                    let up = upstream.lock().unwrap().clone();
                    let _ = up.send(&buf[..n]);
                }
            }
        });
        relay
    }

    fn front(&self) -> SocketAddr {
        self.front.local_addr().unwrap()
    }

    /// Moves the client to another upstream port: a new one until `ports` exist, then the
    /// next of those again (the old ones keep relaying late replies).
    fn rebind(&self, ports: usize) {
        let mut all = self.ports.lock().unwrap();
        let next = *self.turn.lock().unwrap() % ports;
        *self.turn.lock().unwrap() += 1;
        if next >= all.len() {
            let up = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
            up.connect(self.server).unwrap();
            up.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let (front, client, stop, down) = (
                self.front.clone(),
                self.client.clone(),
                self.stop.clone(),
                up.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = down.recv(&mut buf) {
                        if let Some(c) = *client.lock().unwrap() {
                            let _ = front.send_to(&buf[..n], c);
                        }
                    }
                }
            });
            all.push(up);
        }
        *self.upstream.lock().unwrap() = all[next].clone();
    }
}

impl Drop for RebindingRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits `d` without depending on either runtime's timer.
async fn pause(d: Duration) {
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    let _ = rx.await;
}

fn run_tokio(test: impl Future<Output = ()>) {
    common::run_tokio(LIMIT, test);
}

fn run_smol(test: impl Future<Output = ()>) {
    common::run_smol(LIMIT, test);
}

macro_rules! suite {
    ($name:ident, $q:ident, $run:path) => {
        mod $name {
            use std::net::SocketAddr;
            use std::time::{Duration, Instant};

            use bytes::Bytes;
            use futures::future::join_all;
            use http::Request;
            use $q as q;

            use super::{is_pattern, service, BIG};

            fn server_config(retry: bool) -> q::ServerConfig {
                // One worker: the tests read the single socket's stats (those that want more
                // set them).
                let mut c = q::ServerConfig {
                    workers: 1,
                    ..q::ServerConfig::default()
                };
                c.quic.initial_max_data = 32 << 20;
                c.quic.max_connection_window = 64 << 20;
                c.quic.initial_max_stream_data_bidi_local = 8 << 20;
                c.quic.initial_max_stream_data_bidi_remote = 8 << 20;
                c.endpoint.address_validation = if retry {
                    quicksand_core::AddressValidation::Always
                } else {
                    quicksand_core::AddressValidation::Never
                };
                c
            }

            fn client_config() -> q::ClientConfig {
                let mut c = q::ClientConfig::default().insecure();
                c.quic.initial_max_data = 32 << 20;
                c.quic.max_connection_window = 64 << 20;
                c.quic.initial_max_stream_data_bidi_local = 8 << 20;
                c.quic.initial_max_stream_data_bidi_remote = 8 << 20;
                c
            }

            fn url(server: &q::Server, path: &str) -> String {
                format!("https://localhost:{}{path}", server.local_addr().port())
            }

            /// Reads a `/bytes/N` body and checks every byte.
            async fn fetch_checked(conn: &q::H3Connection, url: &str, len: u64) {
                let req = Request::get(url).body(Bytes::new()).unwrap();
                let resp = conn.client.request(req).unwrap().await.unwrap();
                assert_eq!(resp.status(), 200);
                let mut body = resp.into_body();
                let mut got = 0u64;
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.expect("body chunk");
                    assert!(is_pattern(got, &chunk), "wrong bytes at {got}");
                    got += chunk.len() as u64;
                }
                assert_eq!(got, len);
            }

            /// The scenarios shared with the simulator (`quicksand_tests::scenario`), over
            /// loopback: the same definitions, applications and checks.
            #[test]
            fn shared_scenarios() {
                use quicksand_tests::scenario::{self, ReportedBulk, Reports};
                $run(async {
                    for scenario in scenario::all() {
                        let reports = Reports::default();
                        let mut sc = q::ServerConfig::default();
                        scenario.apply(&mut sc.quic);
                        let (server_side, server_reports) = (scenario.clone(), reports.clone());
                        let server = q::listen("127.0.0.1:0".parse().unwrap(), sc, move |_| {
                            Some(server_side.server_app(&server_reports))
                        })
                        .unwrap();
                        let mut cc = q::ClientConfig::default().insecure();
                        scenario.apply(&mut cc.quic);
                        let client =
                            q::Client::<ReportedBulk>::bind("127.0.0.1:0".parse().unwrap(), cc)
                                .unwrap();
                        let conns = join_all((0..scenario.connections).map(|_| {
                            client.connect_with(
                                server.local_addr(),
                                "localhost",
                                scenario.client_app(&reports),
                            )
                        }))
                        .await;
                        for c in &conns {
                            assert!(
                                c.is_ok(),
                                "{}: connect: {:?}",
                                scenario.name,
                                c.as_ref().err()
                            );
                        }
                        let deadline = Instant::now() + Duration::from_secs(60);
                        while !reports.complete(&scenario) && Instant::now() < deadline {
                            super::pause(Duration::from_millis(20)).await;
                        }
                        if let Err(e) = reports.check(&scenario) {
                            panic!("{e}");
                        }
                    }
                });
            }

            #[test]
            fn handshake_and_request() {
                $run(async {
                    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
                    let server = q::serve(addr, server_config(false), service).unwrap();
                    let (_client, conn) =
                        q::connect(server.local_addr(), "localhost", client_config())
                            .await
                            .unwrap();
                    let resp = conn.get(&url(&server, "/")).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    assert_eq!(&resp.body()[..], b"hello");
                    let stats = server.stats().await;
                    assert_eq!(stats[0].endpoint.retries, 0);
                    assert_eq!(stats[0].connections, 1);
                    drop(conn);
                    let report = server.shutdown(Duration::from_secs(5)).await;
                    assert_eq!(report.forced_closed, 0);
                });
            }

            /// The configs' `qlog_dir` and `keylog_file`: the adapter opens the files (the
            /// core only asks for writers), one qlog per connection side and every secret of
            /// both sides in the key log.
            #[test]
            fn qlog_and_key_log_files() {
                let dir = std::env::temp_dir().join(format!(
                    "quicksand-logs-{}-{}",
                    stringify!($name),
                    std::process::id()
                ));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                let keylog = dir.join("keys.log");
                $run(async {
                    let mut sc = server_config(false);
                    sc.qlog_dir = Some(dir.clone());
                    sc.keylog_file = Some(keylog.clone());
                    let server = q::serve("127.0.0.1:0".parse().unwrap(), sc, service).unwrap();
                    let mut cc = client_config();
                    cc.qlog_dir = Some(dir.clone());
                    let (client, conn) = q::connect(server.local_addr(), "localhost", cc)
                        .await
                        .unwrap();
                    let resp = conn.get(&url(&server, "/")).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    drop((conn, client));
                    server.shutdown(Duration::from_secs(5)).await;
                });
                let mut sides: Vec<String> = std::fs::read_dir(&dir)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".sqlog"))
                    .map(|n| n.rsplit('-').next().unwrap().to_string())
                    .collect();
                sides.sort();
                assert_eq!(sides, ["client.sqlog", "server.sqlog"]);
                let keys = std::fs::read_to_string(&keylog).unwrap();
                assert!(
                    keys.lines()
                        .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")),
                    "key log: {keys:?}"
                );
                let _ = std::fs::remove_dir_all(&dir);
            }

            #[test]
            fn handshake_with_retry() {
                $run(async {
                    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
                    let server = q::serve(addr, server_config(true), service).unwrap();
                    let (_client, conn) =
                        q::connect(server.local_addr(), "localhost", client_config())
                            .await
                            .unwrap();
                    let resp = conn.get(&url(&server, "/")).await.unwrap();
                    assert_eq!(&resp.body()[..], b"hello");
                    let stats = server.stats().await;
                    assert!(stats[0].endpoint.retries >= 1, "{stats:?}");
                    server.shutdown(Duration::from_secs(5)).await;
                });
            }

            #[test]
            fn hundred_parallel_requests() {
                $run(async {
                    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
                    let server = q::serve(addr, server_config(true), service).unwrap();
                    let (_client, conn) =
                        q::connect(server.local_addr(), "localhost", client_config())
                            .await
                            .unwrap();
                    let urls: Vec<(String, u64)> = (0..100u64)
                        .map(|i| {
                            (
                                url(&server, &format!("/bytes/{}", 1000 + 37 * i)),
                                1000 + 37 * i,
                            )
                        })
                        .collect();
                    join_all(urls.iter().map(|(u, n)| fetch_checked(&conn, u, *n))).await;
                    server.shutdown(Duration::from_secs(5)).await;
                });
            }

            #[test]
            fn download_100_mib_byte_exact() {
                $run(async {
                    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
                    let server = q::serve(addr, server_config(true), service).unwrap();
                    let (_client, conn) =
                        q::connect(server.local_addr(), "localhost", client_config())
                            .await
                            .unwrap();
                    let start = Instant::now();
                    fetch_checked(&conn, &url(&server, &format!("/bytes/{BIG}")), BIG).await;
                    let secs = start.elapsed().as_secs_f64();
                    eprintln!(
                        "{}: 100 MiB in {secs:.2} s ({:.0} Mbit/s)",
                        stringify!($name),
                        BIG as f64 * 8.0 / secs / 1e6
                    );
                    // Full-size packets leave in GSO batches: one send per packet costs
                    // the server several times the CPU per byte.
                    let stats = server.stats().await;
                    let batch = stats[0].datagrams_sent as f64 / stats[0].transmits as f64;
                    eprintln!("{}: {batch:.1} datagrams per send", stringify!($name));
                    assert!(batch >= 4.0, "mean GSO batch {batch:.2}: {stats:?}");
                    server.shutdown(Duration::from_secs(5)).await;
                });
            }

            #[test]
            fn graceful_shutdown_with_requests_in_flight() {
                $run(async {
                    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
                    let server = q::serve(addr, server_config(true), service).unwrap();
                    let port = server.local_addr().port();
                    let (client, conn) =
                        q::connect(server.local_addr(), "localhost", client_config())
                            .await
                            .unwrap();
                    let idle = client
                        .connect(server.local_addr(), "localhost")
                        .await
                        .unwrap();
                    let hanging = client
                        .connect(server.local_addr(), "localhost")
                        .await
                        .unwrap();
                    // A slow download (40 chunks, 1 s) whose head has arrived: in flight when
                    // shutdown starts. (A fast bulk download would race the server's close
                    // against the client reading quiche's buffers; see the report of issue 5.)
                    let len = 40 * super::SLOW_CHUNK;
                    let big = format!("https://localhost:{port}/slow/40");
                    let req = Request::get(&big).body(Bytes::new()).unwrap();
                    let resp = conn.client.request(req).unwrap().await.unwrap();
                    // A request that never completes, on its own connection.
                    let hang = format!("https://localhost:{port}/hang");
                    let req = Request::get(&hang).body(Bytes::new()).unwrap();
                    let stuck = hanging.client.request(req).unwrap().await.unwrap();

                    let handle = server.shutdown_handle();
                    let grace = Duration::from_secs(3);
                    let started = Instant::now();
                    handle.shutdown(grace);

                    // The in-flight download completes byte-exact.
                    let mut body = resp.into_body();
                    let mut got = 0u64;
                    while let Some(chunk) = body.data().await {
                        let chunk = chunk.expect("in-flight body completes");
                        assert!(is_pattern(got, &chunk));
                        got += chunk.len() as u64;
                    }
                    assert_eq!(got, len);
                    // GOAWAY arrived: no new request on the draining connection.
                    assert!(conn
                        .get(&format!("https://localhost:{port}/"))
                        .await
                        .is_err());
                    // The hanging request is cut at the deadline.
                    let mut stuck = stuck.into_body();
                    let end = stuck.data().await;
                    assert!(matches!(end, Some(Err(_)) | None), "{end:?}");
                    // ... with HTTP/3's shutdown close: H3_NO_ERROR.
                    let reason = hanging
                        .connection
                        .closed()
                        .await
                        .expect("the client saw the close");
                    assert!(
                        quicksand_h3::ErrorCode::is_clean_close(&reason)
                            && matches!(
                                reason,
                                quicksand_core::CloseReason::Peer {
                                    application: true,
                                    ..
                                }
                            ),
                        "{reason:?}"
                    );
                    let report = server.closed().await;
                    let took = started.elapsed();
                    assert_eq!(report.forced_closed, 1, "only the hanging connection");
                    assert!(took >= grace - Duration::from_millis(100), "{took:?}");
                    assert!(took < grace + Duration::from_secs(5), "{took:?}");
                    assert!(idle.client.is_closed() || idle.get(&hang).await.is_err());
                });
            }

            #[test]
            fn fifty_connections_on_one_socket() {
                $run(async {
                    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
                    let server = q::serve(addr, server_config(true), service).unwrap();
                    let client: q::Client =
                        q::Client::bind("127.0.0.1:0".parse().unwrap(), client_config()).unwrap();
                    let conns =
                        join_all((0..50).map(|_| client.connect(server.local_addr(), "localhost")))
                            .await;
                    let conns: Vec<_> = conns.into_iter().map(|c| c.unwrap()).collect();
                    let u = url(&server, "/bytes/5000");
                    join_all(conns.iter().map(|c| fetch_checked(c, &u, 5000))).await;
                    let stats = server.stats().await;
                    assert_eq!(stats[0].connections, 50);
                    drop(conns);
                    server.shutdown(Duration::from_secs(5)).await;
                });
            }

            #[test]
            fn ipv6_loopback() {
                $run(async {
                    let addr: SocketAddr = "[::1]:0".parse().unwrap();
                    let server = match q::serve(addr, server_config(true), service) {
                        Ok(s) => s,
                        Err(e) => {
                            eprintln!("skipped: no IPv6 loopback here ({e})");
                            return;
                        }
                    };
                    assert!(server.local_addr().is_ipv6());
                    let (client, conn) =
                        q::connect(server.local_addr(), "localhost", client_config())
                            .await
                            .unwrap();
                    assert!(client.local_addr().is_ipv6());
                    let u = format!("https://[::1]:{}/bytes/100000", server.local_addr().port());
                    fetch_checked(&conn, &u, 100_000).await;
                    server.shutdown(Duration::from_secs(5)).await;
                });
            }

            /// A client whose NAT moves it between four ports, one per request, talking to
            /// eight `SO_REUSEPORT` workers: the kernel hashes each port's flow to some socket,
            /// and those that are not the owner forward to it (its worker id is in the CID).
            /// Every response arrives byte-exact. (All three new ports landing on the owner's
            /// socket, chance 1/512, leaves forwarding unexercised; the test says so.)
            #[test]
            fn rebinding_client_reaches_its_worker_through_forwarding() {
                $run(async {
                    // Without kernel steering the kernel hashes each new port to any of the
                    // eight sockets, and the workers forward to the owner.
                    let forwarded = rebinding_forwarded(false).await;
                    assert!(
                        forwarded > 0,
                        "eight new ports all hashed to the owner's socket (chance 8^-8)"
                    );
                });
            }

            /// With the BPF program on the `SO_REUSEPORT` group the kernel delivers every
            /// datagram to the socket its CID names: nothing is left to forward.
            #[test]
            fn kernel_steering_leaves_nothing_to_forward() {
                $run(async {
                    assert_eq!(rebinding_forwarded(true).await, 0);
                });
            }

            /// Eight workers, one client that moves to a new port before each of 8 requests;
            /// returns how many datagrams the workers forwarded.
            async fn rebinding_forwarded(kernel_steering: bool) -> u64 {
                let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
                let mut config = server_config(false);
                config.workers = 8;
                config.kernel_steering = kernel_steering;
                let server = q::serve(addr, config, service).unwrap();
                let relay = super::RebindingRelay::start(server.local_addr());
                let (_client, conn) = q::connect(relay.front(), "localhost", client_config())
                    .await
                    .unwrap();
                let u = url(&server, "/bytes/200000");
                for _ in 0..8 {
                    relay.rebind(4);
                    fetch_checked(&conn, &u, 200_000).await;
                }
                let stats = server.stats().await;
                let forwarded: u64 = stats.iter().map(|s| s.forwarded_in).sum();
                let total: usize = stats.iter().map(|s| s.connections).sum();
                assert_eq!(total, 1, "one connection, however it moved: {stats:?}");
                eprintln!("kernel steering {kernel_steering}: {forwarded} datagrams forwarded");
                drop(relay);
                server.shutdown(Duration::from_secs(5)).await;
                forwarded
            }

            /// A client whose NAT gives it a new port for each of 30 requests: far more
            /// addresses than quiche's path table holds (4), so each new path must evict one
            /// the client has left. Every response arrives byte-exact on one connection.
            #[test]
            fn a_client_rebinding_thirty_times_keeps_its_connection() {
                $run(async {
                    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
                    let server = q::serve(addr, server_config(false), service).unwrap();
                    let relay = super::RebindingRelay::start(server.local_addr());
                    let (_client, conn) = q::connect(relay.front(), "localhost", client_config())
                        .await
                        .unwrap();
                    let u = url(&server, "/bytes/20000");
                    for _ in 0..30 {
                        relay.rebind(usize::MAX);
                        fetch_checked(&conn, &u, 20_000).await;
                    }
                    let stats = server.stats().await;
                    assert_eq!(stats[0].connections, 1, "{stats:?}");
                    drop(relay);
                    server.shutdown(Duration::from_secs(5)).await;
                });
            }

            #[test]
            fn reuseport_workers_share_the_load() {
                $run(async {
                    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
                    let mut config = server_config(true);
                    config.workers = 4;
                    let server = q::serve(addr, config, service).unwrap();
                    let u = url(&server, "/bytes/3000");
                    let mut conns = Vec::new();
                    for _ in 0..16 {
                        let (client, conn) =
                            q::connect(server.local_addr(), "localhost", client_config())
                                .await
                                .unwrap();
                        fetch_checked(&conn, &u, 3000).await;
                        conns.push((client, conn));
                    }
                    let stats = server.stats().await;
                    assert_eq!(stats.len(), 4);
                    let total: usize = stats.iter().map(|s| s.connections).sum();
                    assert_eq!(total, 16, "{stats:?}");
                    drop(conns);
                    server.shutdown(Duration::from_secs(5)).await;
                });
            }
        }
    };
}

suite!(tokio_adapter, quicksand_tokio, super::run_tokio);
suite!(smol_adapter, quicksand_smol, super::run_smol);
