//! An HTTP/3 client on quinn + h3 with quinn's default connection-ID lengths.
//!
//! quinn-client [--insecure] [--chacha] [--repeat N] [--resume] URL...
//!
//! Fetches every URL (each `--repeat` times) in parallel on one connection and prints one line
//! per response: `{"url": "...", "status": 200, "length": N, "sha256": "...", "resumed": B}`.
//! With `--resume` it then connects again with the session ticket, sends the same requests as
//! 0-RTT early data, prints them again (`"resumed": true`), and then
//! `{"resumed_early_data_accepted": B}`: whether the server accepted the early data.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Buf;
use quicksand_peers::{client_config, parse_url, Error};
use sha2::{Digest, Sha256};

struct Options {
    insecure: bool,
    chacha: bool,
    repeat: usize,
    resume: bool,
    urls: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut o = Options {
        insecure: false,
        chacha: false,
        repeat: 1,
        resume: false,
        urls: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--insecure" => o.insecure = true,
            "--chacha" => o.chacha = true,
            "--resume" => o.resume = true,
            "--repeat" => o.repeat = args.next().ok_or("--repeat N")?.parse()?,
            url if url.starts_with("https://") => o.urls.push(url.to_string()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let (server, _) = parse_url(o.urls.first().ok_or("no URL")?)?;
    let bind: SocketAddr = if server.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()?;
    let mut endpoint = quinn::Endpoint::client(bind)?;
    endpoint.set_default_client_config(client_config(o.insecure, o.chacha)?);

    let conn = endpoint.connect(server, "localhost")?.await?;
    fetch_all(conn.clone(), &o, false).await?;
    // The session ticket follows the handshake; give it a moment to arrive.
    if o.resume {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    conn.close(0u32.into(), b"done");
    if o.resume {
        let (conn, accepted) = endpoint
            .connect(server, "localhost")?
            .into_0rtt()
            .map_err(|_| "no session ticket to resume with")?;
        let accepted = tokio::spawn(accepted);
        fetch_all(conn.clone(), &o, true).await?;
        println!("{{\"resumed_early_data_accepted\": {}}}", accepted.await?);
        conn.close(0u32.into(), b"done");
    }
    endpoint.wait_idle().await;
    Ok(())
}

async fn fetch_all(conn: quinn::Connection, o: &Options, resumed: bool) -> Result<(), Error> {
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
    let drive = tokio::spawn(async move { driver.wait_idle().await });
    let mut jobs = Vec::new();
    for url in o.urls.iter().flat_map(|u| std::iter::repeat_n(u, o.repeat)) {
        let mut send = send.clone();
        let url = url.clone();
        jobs.push(tokio::spawn(async move {
            let req = http::Request::get(&url).body(())?;
            let mut stream = send.send_request(req).await?;
            stream.finish().await?;
            let resp = stream.recv_response().await?;
            let mut hash = Sha256::new();
            let mut length = 0;
            while let Some(mut chunk) = stream.recv_data().await? {
                while chunk.has_remaining() {
                    let bytes = chunk.chunk();
                    hash.update(bytes);
                    length += bytes.len();
                    let n = bytes.len();
                    chunk.advance(n);
                }
            }
            let sha: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
            Ok::<_, Error>((url, resp.status().as_u16(), length, sha))
        }));
    }
    for job in jobs {
        let (url, status, length, sha) = job.await??;
        println!(
            "{{\"url\": \"{url}\", \"status\": {status}, \"length\": {length}, \"sha256\": \"{sha}\", \"resumed\": {resumed}}}"
        );
    }
    drop(send);
    drive.abort();
    Ok(())
}
