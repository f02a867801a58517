//! An HTTP/3 server on quicksand over tokio.
//!
//! ```sh
//! cargo run --release -p quicksand-tokio --example server -- --listen 127.0.0.1:4433
//! cargo run --release -p quicksand-tokio --example client -- --insecure https://localhost:4433/bytes/10000000
//! ```
//! `--help` lists the options.

mod common;

use std::time::Duration;

use common::ServerArgs;
use quicksand_tokio::{serve, ServerConfig};

#[tokio::main]
async fn main() {
    common::init_logging();
    let args = ServerArgs::parse();
    let mut config = ServerConfig::default();
    args.apply(&mut config);
    let server = match serve(
        args.listen_addr(),
        config,
        common::service(args.root.clone()),
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(1);
        }
    };
    tracing::info!(
        "serving HTTP/3 on {} (try: cargo run -p quicksand-tokio --example client -- --insecure https://localhost:{}/bytes/1000000)",
        server.local_addr(),
        server.local_addr().port()
    );
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("Ctrl-C: shutting down gracefully (5 s for requests in flight)");
    let report = server.shutdown(Duration::from_secs(5)).await;
    tracing::info!(forced_closed = report.forced_closed, "stopped");
}
