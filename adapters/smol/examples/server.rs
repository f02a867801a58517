//! An HTTP/3 server on quicksand over smol / async-io.
//!
//! ```sh
//! cargo run --release -p quicksand-smol --example smol-server -- --listen 127.0.0.1:4433
//! cargo run --release -p quicksand-smol --example smol-client -- --insecure https://localhost:4433/bytes/10000000
//! ```
//! `--help` lists the options.

#[path = "../../tokio/examples/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use async_executor::Executor;
use async_signal::{Signal, Signals};
use common::ServerArgs;
use futures_lite::StreamExt;
use quicksand_smol::{serve_on, ServerConfig};

fn main() {
    common::init_logging();
    let args = ServerArgs::parse();
    // The executor the endpoint tasks run on: one thread per worker socket, this one included.
    // The main thread runs it too rather than idling in its own `block_on`: an idle
    // `block_on` thread takes async-io's reactor and then wakes the executor thread for every
    // socket event (a context switch per event).
    let ex = Arc::new(Executor::new());
    let mut config = ServerConfig::default();
    args.apply(&mut config);
    for _ in 1..config.workers.max(1) {
        let ex = ex.clone();
        std::thread::spawn(move || async_io::block_on(ex.run(std::future::pending::<()>())));
    }
    async_io::block_on(ex.clone().run(async {
        let mut signals = Signals::new([Signal::Int, Signal::Term]).expect("signal handler");
        let server = match serve_on(&ex, args.listen_addr(), config, common::service(args.root.clone())) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}");
                std::process::exit(1);
            }
        };
        tracing::info!(
            "serving HTTP/3 on {} (try: cargo run -p quicksand-smol --example smol-client -- --insecure https://localhost:{}/bytes/1000000)",
            server.local_addr(),
            server.local_addr().port()
        );
        let _ = signals.next().await;
        tracing::info!("signal: shutting down gracefully (5 s for requests in flight)");
        let report = server.shutdown(Duration::from_secs(5)).await;
        tracing::info!(forced_closed = report.forced_closed, "stopped");
    }));
}
