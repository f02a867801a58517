//! Runners shared by the end-to-end test binaries (`mod common;`): each test body runs on a
//! runtime under a time limit, so a hang fails the test instead of CI.
// Each test binary uses some of these.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// `E2E_LOG=1` prints debug logs of the adapters and quiche.
pub fn init_logs() {
    if std::env::var("E2E_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .try_init();
    }
}

/// Runs `test` on a two-thread tokio runtime; panics if it takes longer than `limit`.
pub fn run_tokio(limit: Duration, test: impl Future<Output = ()>) {
    init_logs();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        tokio::time::timeout(limit, test)
            .await
            .expect("test timed out")
    });
}

/// Runs `test` on smol; panics if it takes longer than `limit`.
pub fn run_smol(limit: Duration, test: impl Future<Output = ()>) {
    init_logs();
    use futures::FutureExt;
    smol::block_on(async {
        futures::select! {
            () = test.fuse() => {}
            _ = smol::Timer::after(limit).fuse() => panic!("test timed out"),
        }
    });
}
