//! A slow handler does not stall its socket: while one connection's handler computes (here it
//! blocks its thread until the test releases it), a second connection on the same worker gets
//! its answer — with `Handlers::Spawned`, the default. With `Handlers::Inline` the same test
//! shows the stall: the second answer comes only after the busy handler gave up.
//!
//! No timing is asserted: the busy handler waits for the fast request's answer (or gives up
//! after [`GIVE_UP`]), so the order of events is the result.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use quicksand_h3::{Body, RecvBody};

const LIMIT: Duration = Duration::from_secs(60);
/// How long the busy handler blocks at most when nobody releases it.
const GIVE_UP: Duration = Duration::from_secs(2);

/// What the test and the handlers share.
#[derive(Default)]
struct Flags {
    busy_started: AtomicBool,
    release: AtomicBool,
    /// The busy handler ended because it was released (not by giving up).
    released: AtomicBool,
}

/// `/busy` blocks its thread (as a CPU-bound handler does) until released or [`GIVE_UP`];
/// anything else answers at once.
fn service(
    flags: Arc<Flags>,
) -> impl Fn(Request<RecvBody>) -> std::future::Ready<Response<Body>> + Send + Sync + 'static {
    move |req| {
        if req.uri().path() == "/busy" {
            flags.busy_started.store(true, Ordering::SeqCst);
            let start = Instant::now();
            while !flags.release.load(Ordering::SeqCst) && start.elapsed() < GIVE_UP {
                std::thread::sleep(Duration::from_millis(1));
            }
            flags
                .released
                .store(flags.release.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        std::future::ready(Response::new(Body::from("done")))
    }
}

/// Waits until `flag` is set, without depending on either runtime's timer.
async fn until(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        let (tx, rx) = futures::channel::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            let _ = tx.send(());
        });
        let _ = rx.await;
    }
}

macro_rules! suite {
    ($name:ident, $q:ident, $run:path, $runtime:path) => {
        mod $name {
            use std::sync::atomic::Ordering;
            use std::sync::Arc;

            use super::{service, until, Flags};
            use $q as q;

            /// Returns whether the fast request was answered while the busy handler still
            /// blocked (i.e. the busy handler was released rather than giving up).
            async fn fast_answer_during_busy_handler(handlers: q::Handlers) -> bool {
                let flags = Arc::new(Flags::default());
                let config = q::ServerConfig {
                    workers: 1,
                    handlers,
                    ..q::ServerConfig::default()
                };
                let mut config = config;
                config.endpoint.address_validation = quicksand_core::AddressValidation::Never;
                // A runtime of this test's own: tests running in parallel must not lend each
                // other's blocked threads.
                let runtime = $runtime();
                let server = quicksand_adapter::serve_on(
                    runtime.clone(),
                    "127.0.0.1:0".parse().unwrap(),
                    config,
                    service(flags.clone()),
                )
                .unwrap();
                let addr = server.local_addr();
                let client_config = q::ClientConfig::default().insecure();
                let connect = |config| {
                    quicksand_adapter::connect_on(runtime.clone(), addr, "localhost", config)
                };
                let (_a, busy_conn) = connect(client_config.clone()).await.unwrap();
                let (_b, fast_conn) = connect(client_config).await.unwrap();
                let busy = busy_conn.get("https://localhost/busy");
                let fast = async {
                    until(&flags.busy_started).await;
                    let resp = fast_conn.get("https://localhost/fast").await.unwrap();
                    assert_eq!(resp.body().as_ref(), b"done");
                    flags.release.store(true, Ordering::SeqCst);
                };
                let (busy, ()) = futures::join!(busy, fast);
                assert_eq!(busy.unwrap().body().as_ref(), b"done");
                server.shutdown(std::time::Duration::from_secs(2)).await;
                flags.released.load(Ordering::SeqCst)
            }

            #[test]
            fn a_busy_handler_does_not_stall_other_connections() {
                $run(async {
                    assert!(
                        fast_answer_during_busy_handler(q::Handlers::Spawned).await,
                        "the fast request was answered while the busy handler blocked"
                    );
                });
            }

            #[test]
            fn inline_handlers_stall_the_socket_as_documented() {
                $run(async {
                    assert!(
                        !fast_answer_during_busy_handler(q::Handlers::Inline).await,
                        "inline, the fast request waits for the busy handler to give up"
                    );
                });
            }
        }
    };
}

fn run_tokio(test: impl std::future::Future<Output = ()>) {
    // Its own two-thread runtime per test.
    common::run_tokio(LIMIT, test);
}

fn run_smol(test: impl std::future::Future<Output = ()>) {
    common::run_smol(LIMIT, test);
}

/// The test's tokio runtime (the one `run_tokio` made).
fn tokio_runtime() -> quicksand_tokio::Tokio {
    quicksand_tokio::Tokio::default()
}

/// An executor of the test's own with two threads (one for the busy handler to block, one for
/// the rest), not smol's global one that the tests share.
fn smol_runtime() -> quicksand_smol::Smol {
    let ex = Arc::new(smol::Executor::new());
    for _ in 0..2 {
        let ex = ex.clone();
        std::thread::spawn(move || smol::block_on(ex.run(std::future::pending::<()>())));
    }
    quicksand_smol::Smol::on(ex)
}

suite!(
    tokio_adapter,
    quicksand_tokio,
    super::run_tokio,
    super::tokio_runtime
);
suite!(
    smol_adapter,
    quicksand_smol,
    super::run_smol,
    super::smol_runtime
);
