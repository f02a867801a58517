//! An axum application served over HTTP/3 with quicksand, and over HTTP/1.1 and HTTP/2 with
//! hyper on the same address, every TCP response carrying `Alt-Svc: h3=":PORT"`.
//!
//! ```sh
//! cargo run --release -p quicksand-tokio --example axum -- --listen 127.0.0.1:4433
//! ```
//! Options: `--listen ADDR` (default 127.0.0.1:4433), `--cert FILE --key FILE` (PEM; a
//! self-signed certificate for `localhost` is generated without them).

mod app;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use quicksand_core::CertificateSource;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut listen: SocketAddr = "127.0.0.1:4433".parse().expect("default address");
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--listen" => {
                listen = value()
                    .parse()
                    .unwrap_or_else(|e| fail(&format!("--listen: {e}")))
            }
            "--cert" => cert = Some(value()),
            "--key" => key = Some(value()),
            "--help" | "-h" => {
                println!("usage: axum [--listen ADDR] [--cert FILE --key FILE]");
                return;
            }
            other => fail(&format!("unknown option {other}")),
        }
    }
    let certificate = match (cert, key) {
        (Some(chain), Some(key)) => quicksand_tokio::PemFiles::new(chain, key)
            .read("--cert/--key")
            .unwrap_or_else(|e| fail(&format!("{e}"))),
        (None, None) => {
            tracing::warn!("no --cert/--key: serving a self-signed certificate for localhost");
            CertificateSource::self_signed(&["localhost"], SystemTime::now())
                .unwrap_or_else(|e| fail(&format!("self-signed certificate: {e}")))
        }
        _ => fail("--cert and --key go together"),
    };
    let served = app::serve(listen, certificate, app::router())
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    let port = served.tcp_addr.port();
    println!("serving the axum app on {listen}: HTTP/3 on UDP, HTTP/1.1 and HTTP/2 on TCP");
    println!("  cargo run -p quicksand-tokio --example client -- --insecure https://localhost:{port}/hello/you");
    println!(
        "  curl -k https://localhost:{port}/hello/you   (TCP; see the alt-svc header with -i)"
    );
    let _ = tokio::signal::ctrl_c().await;
    served.shutdown(Duration::from_secs(5)).await;
}

fn fail(message: &str) -> ! {
    eprintln!("axum: {message}");
    std::process::exit(2)
}
