//! An HTTP/3 server on quinn + h3: `GET /bytes/N` answers N pattern bytes (byte i is i mod 251).
//!
//! quinn-server --listen ADDR --cert FILE --key FILE [--retry] [--chacha]
//!
//! Prints `ready` once listening.

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use quicksand_peers::{pattern_byte, server_config, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut listen: SocketAddr = "127.0.0.1:4433".parse()?;
    let (mut cert, mut key) = (PathBuf::new(), PathBuf::new());
    let (mut retry, mut chacha) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen ADDR")?.parse()?,
            "--cert" => cert = args.next().ok_or("--cert FILE")?.into(),
            "--key" => key = args.next().ok_or("--key FILE")?.into(),
            "--retry" => retry = true,
            "--chacha" => chacha = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let endpoint = quinn::Endpoint::server(server_config(&cert, &key, chacha)?, listen)?;
    println!("ready {}", endpoint.local_addr()?);
    while let Some(incoming) = endpoint.accept().await {
        if retry && !incoming.remote_address_validated() {
            incoming.retry()?;
            continue;
        }
        tokio::spawn(async move {
            if let Err(e) = connection(incoming).await {
                eprintln!("connection: {e}");
            }
        });
    }
    Ok(())
}

async fn connection(incoming: quinn::Incoming) -> Result<(), Error> {
    let conn = incoming.await?;
    let mut h3 = h3::server::Connection::new(h3_quinn::Connection::new(conn)).await?;
    while let Some(resolver) = h3.accept().await? {
        tokio::spawn(async move {
            if let Err(e) = request(resolver).await {
                eprintln!("request: {e}");
            }
        });
    }
    Ok(())
}

async fn request(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
) -> Result<(), Error> {
    let (req, mut stream) = resolver.resolve_request().await?;
    let n = req
        .uri()
        .path()
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok());
    let Some(n) = n else {
        let resp = http::Response::builder().status(404).body(())?;
        stream.send_response(resp).await?;
        return Ok(stream.finish().await?);
    };
    stream.send_response(http::Response::new(())).await?;
    let mut sent = 0;
    while sent < n {
        let len = (n - sent).min(64 * 1024);
        let chunk: Vec<u8> = (sent..sent + len).map(pattern_byte).collect();
        stream.send_data(Bytes::from(chunk)).await?;
        sent += len;
    }
    Ok(stream.finish().await?)
}
