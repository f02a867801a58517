//! Certificates by server name, replaced while the server runs (`TlsSettings::certificates`),
//! over loopback with the tokio adapter: each name gets its chain, unknown names the default,
//! and a replacement in the middle of a stream of connections is seen by every handshake after
//! it, while a connection made before it keeps working; a resolver fetches a certificate while
//! the handshake waits.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::channel::oneshot;
use http::Response;
use quicksand_core::boring::x509::X509;
use quicksand_core::{CertificateRequest, CertificateSource, CertificateStore};
use quicksand_h3::{Body, RecvBody};
use quicksand_tokio::Command;
use quicksand_tokio::{ClientConfig, H3Connection, ServerConfig};

const LIMIT: Duration = Duration::from_secs(60);

async fn hello(_: http::Request<RecvBody>) -> Response<Body> {
    Response::new(Body::from("hello"))
}

/// A server on one worker showing the chains of `store`.
fn serve(store: &CertificateStore) -> quicksand_tokio::Server {
    let mut config = ServerConfig {
        workers: 1,
        ..ServerConfig::default()
    };
    config.tls.certificates = Some(store.clone());
    quicksand_tokio::serve("127.0.0.1:0".parse().unwrap(), config, hello).unwrap()
}

fn certificate(name: &str) -> (CertificateSource, Vec<u8>) {
    let source = CertificateSource::self_signed(&[name], SystemTime::now()).unwrap();
    let CertificateSource::Pem { chain, .. } = &source else {
        unreachable!("self_signed gives PEM in memory")
    };
    let der = X509::stack_from_pem(chain).unwrap()[0].to_der().unwrap();
    (source, der)
}

/// The DER of the leaf certificate the server showed on `conn`.
async fn shown(conn: &H3Connection) -> Vec<u8> {
    let (tx, rx) = oneshot::channel();
    conn.connection
        .commands()
        .send(Command::Run(Box::new(move |q| {
            let _ = tx.send(q.peer_cert().map(<[u8]>::to_vec));
        })))
        .unwrap();
    rx.await.unwrap().expect("the server showed a certificate")
}

/// The common name of a DER certificate, for messages.
fn common_name(der: &[u8]) -> String {
    let cert = X509::from_der(der).expect("a DER certificate");
    let name = cert
        .subject_name()
        .entries()
        .next()
        .map(|e| e.data().as_slice().to_vec());
    String::from_utf8_lossy(&name.unwrap_or_default()).into_owned()
}

async fn connect(addr: std::net::SocketAddr, name: &str) -> H3Connection {
    connect_with(addr, name, ClientConfig::default().insecure()).await
}

async fn connect_with(
    addr: std::net::SocketAddr,
    name: &str,
    config: ClientConfig,
) -> H3Connection {
    let (_client, conn) = quicksand_tokio::connect(addr, name, config).await.unwrap();
    // The client's endpoint task runs on while the connection is open.
    conn
}

#[test]
fn each_name_gets_its_chain_and_a_replacement_reaches_new_handshakes_only() {
    common::run_tokio(LIMIT, async {
        let (a1, a1_der) = certificate("a.test");
        let (a2, a2_der) = certificate("a.test");
        let (b, b_der) = certificate("b.test");
        let (wild, wild_der) = certificate("*.c.test");
        let (fallback, fallback_der) = certificate("fallback.test");
        let store = CertificateStore::new();
        store.insert("a.test", &a1).unwrap();
        store.insert("b.test", &b).unwrap();
        store.insert("*.c.test", &wild).unwrap();
        store.set_default(&fallback).unwrap();
        let server = serve(&store);
        let addr = server.local_addr();

        assert_eq!(shown(&connect(addr, "b.test").await).await, b_der, "b.test");
        assert_eq!(
            shown(&connect(addr, "x.c.test").await).await,
            wild_der,
            "a wildcard"
        );
        assert_eq!(
            shown(&connect(addr, "other.test").await).await,
            fallback_der,
            "an unknown name gets the default"
        );

        // A stream of handshakes to a.test with the chain replaced after the fifth; the first
        // connection stays open across the swap.
        let kept = connect(addr, "a.test").await;
        let mut seen = vec![shown(&kept).await];
        for i in 1..10 {
            if i == 5 {
                store.insert("a.test", &a2).unwrap();
            }
            let conn = connect(addr, "a.test").await;
            seen.push(shown(&conn).await);
            let resp = conn.get("https://a.test/").await.unwrap();
            assert_eq!(resp.body().as_ref(), b"hello");
        }
        let want: Vec<&Vec<u8>> = (0..10)
            .map(|i| if i < 5 { &a1_der } else { &a2_der })
            .collect();
        let got: Vec<&Vec<u8>> = seen.iter().collect();
        assert!(
            got == want,
            "handshakes before the swap show the old chain, after it the new"
        );
        let resp = kept.get("https://a.test/").await.unwrap();
        assert_eq!(
            resp.body().as_ref(),
            b"hello",
            "the connection made before the swap works"
        );

        // A certificate whose key does not match is refused and changes nothing.
        let (other, _) = certificate("a.test");
        let (CertificateSource::Pem { chain, .. }, CertificateSource::Pem { key, .. }) =
            (&other, &a1)
        else {
            unreachable!()
        };
        let mismatched = CertificateSource::Pem {
            chain: chain.clone(),
            key: key.clone(),
        };
        let e = store.insert("a.test", &mismatched).unwrap_err();
        assert_eq!(e.field, "certificates");
        assert_eq!(shown(&connect(addr, "a.test").await).await, a2_der);

        assert!(store.remove("b.test"));
        assert_eq!(
            shown(&connect(addr, "b.test").await).await,
            fallback_der,
            "a removed name falls back to the default"
        );
        server.shutdown(Duration::from_secs(1)).await;
    });
}

#[test]
fn a_resolver_fetches_a_certificate_during_the_handshake() {
    common::run_tokio(LIMIT, async {
        let (fallback, fallback_der) = certificate("fallback.test");
        let (late, late_der) = certificate("late.test");
        let (own, own_der) = certificate("own.test");
        let store = CertificateStore::new();
        store.set_default(&fallback).unwrap();
        let asked = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
        let (cache, log) = (store.clone(), asked.clone());
        store.set_resolver(Arc::new(move |request: CertificateRequest| {
            let name = request.server_name().map(str::to_owned);
            log.lock().unwrap().push(name.clone());
            let (cache, late, own) = (cache.clone(), late.clone(), own.clone());
            // Answered later, from another thread, as a fetch would be.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                match name.as_deref() {
                    // Cached in the store: later handshakes of the name need no resolver.
                    Some("late.test") => {
                        cache.insert("late.test", &late).unwrap();
                        request.complete(None).unwrap();
                    }
                    // For this handshake only.
                    Some("own.test") => request.complete(Some(&own)).unwrap(),
                    // Dropped unanswered: the default.
                    _ => drop(request),
                }
            });
        }));
        let server = serve(&store);
        let addr = server.local_addr();

        let conn = connect(addr, "late.test").await;
        assert_eq!(shown(&conn).await, late_der, "the fetched chain");
        let resp = conn.get("https://late.test/").await.unwrap();
        assert_eq!(resp.body().as_ref(), b"hello");
        assert_eq!(shown(&connect(addr, "late.test").await).await, late_der);
        assert_eq!(shown(&connect(addr, "own.test").await).await, own_der);
        assert_eq!(shown(&connect(addr, "own.test").await).await, own_der);
        assert_eq!(
            shown(&connect(addr, "nobody.test").await).await,
            fallback_der,
            "an unanswered request falls back to the default"
        );
        let asked = asked.lock().unwrap().clone();
        let count = |n: &str| asked.iter().filter(|a| a.as_deref() == Some(n)).count();
        assert_eq!(
            count("late.test"),
            1,
            "cached after the first fetch: {asked:?}"
        );
        assert_eq!(count("own.test"), 2, "answered per handshake: {asked:?}");
        server.shutdown(Duration::from_secs(1)).await;
    });
}

/// A ClientHello that fits in the first datagram (X25519 only, no post-quantum key share):
/// the resolver runs while the server connection handles its very first packet, so the
/// connection must already know how to be woken then, or the handshake never resumes and
/// gets the default instead of the fetched chain.
#[test]
fn a_resolver_runs_for_a_client_hello_in_the_first_datagram() {
    common::run_tokio(LIMIT, async {
        let (fallback, _) = certificate("fallback.test");
        let (fetched, fetched_der) = certificate("small.test");
        let store = CertificateStore::new();
        store.set_default(&fallback).unwrap();
        let asked = Arc::new(Mutex::new(0usize));
        let count = asked.clone();
        store.set_resolver(Arc::new(move |request: CertificateRequest| {
            *count.lock().unwrap() += 1;
            let fetched = fetched.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                request.complete(Some(&fetched)).unwrap();
            });
        }));
        let server = serve(&store);
        let mut config = ClientConfig::default().insecure();
        config.hooks.ssl_context = Some(Arc::new(|ctx| ctx.set_curves_list("X25519")));
        let conn = connect_with(server.local_addr(), "small.test", config).await;
        let showed = shown(&conn).await;
        assert!(
            showed == fetched_der,
            "the server showed {} instead of the fetched small.test",
            common_name(&showed)
        );
        assert_eq!(*asked.lock().unwrap(), 1);
        server.shutdown(Duration::from_secs(1)).await;
    });
}
