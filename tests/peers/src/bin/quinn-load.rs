//! A load client on quinn + h3: the independent client of `tests/bench/compare.sh`.
//!
//! quinn-load [--insecure] [--connections C] [--streams S] [--requests R] [--handshakes] URL
//!
//! Opens C connections and runs S request loops on each until R requests of `URL` have been
//! answered (bodies are read and counted, not kept). With `--handshakes`, every request uses
//! a new connection, one after the other. Prints one JSON line: requests, failures, seconds,
//! requests per second, body Mbit/s, and latency percentiles in milliseconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Buf;
use quicksand_peers::{client_config, parse_url, Error};

struct Options {
    insecure: bool,
    connections: usize,
    streams: usize,
    requests: usize,
    handshakes: bool,
    url: String,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    bytes: u64,
    failures: usize,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut o = Options {
        insecure: false,
        connections: 1,
        streams: 1,
        requests: 1,
        handshakes: false,
        url: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--insecure" => o.insecure = true,
            "--handshakes" => o.handshakes = true,
            "--connections" => o.connections = value()?.parse()?,
            "--streams" => o.streams = value()?.parse()?,
            "--requests" => o.requests = value()?.parse()?,
            url if url.starts_with("https://") => o.url = url.to_string(),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let (server, _) = parse_url(&o.url)?;
    let bind = if server.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()?;
    let mut endpoint = quinn::Endpoint::client(bind)?;
    let mut config = client_config(o.insecure, false)?;
    // Windows large enough that one connection is never flow-control bound on loopback.
    let mut transport = quinn::TransportConfig::default();
    transport.stream_receive_window((64u32 << 20).into());
    transport.receive_window((128u32 << 20).into());
    config.transport_config(Arc::new(transport));
    endpoint.set_default_client_config(config);

    let tally = Arc::new(Mutex::new(Tally::default()));
    let left = Arc::new(AtomicUsize::new(o.requests));
    let start = Instant::now();
    if o.handshakes {
        for _ in 0..o.requests {
            let begun = Instant::now();
            let outcome = async {
                let conn = endpoint.connect(server, "localhost")?.await?;
                let (mut driver, mut send) =
                    h3::client::new(h3_quinn::Connection::new(conn.clone())).await?;
                let drive = tokio::spawn(async move { driver.wait_idle().await });
                let bytes = get(&mut send, &o.url).await;
                conn.close(0u32.into(), b"done");
                drive.abort();
                bytes
            }
            .await;
            record(&tally, begun, outcome);
        }
    } else {
        let (mut drivers, mut loops) = (Vec::new(), Vec::new());
        for _ in 0..o.connections {
            let conn = endpoint.connect(server, "localhost")?.await?;
            let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
            drivers.push(tokio::spawn(async move {
                let _ = driver.wait_idle().await;
            }));
            for _ in 0..o.streams {
                let (mut send, left, tally) = (send.clone(), left.clone(), tally.clone());
                let url = o.url.clone();
                loops.push(tokio::spawn(async move {
                    let take = |n: usize| n.checked_sub(1);
                    while left
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, take)
                        .is_ok()
                    {
                        let begun = Instant::now();
                        let outcome = get(&mut send, &url).await;
                        record(&tally, begun, outcome);
                    }
                }));
            }
        }
        for l in loops {
            l.await?;
        }
        drivers.iter().for_each(|d| d.abort());
    }
    let seconds = start.elapsed().as_secs_f64();
    endpoint.close(0u32.into(), b"done");
    let mut t = tally.lock().unwrap();
    t.latencies.sort();
    let pct = |p: f64| {
        let i =
            ((t.latencies.len() as f64 * p).ceil() as usize).clamp(1, t.latencies.len().max(1)) - 1;
        t.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{{\"requests\": {}, \"failures\": {}, \"seconds\": {seconds:.3}, \"rps\": {:.1}, \"mbit_s\": {:.1}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}}}",
        t.latencies.len(),
        t.failures,
        t.latencies.len() as f64 / seconds,
        t.bytes as f64 * 8.0 / seconds / 1e6,
        pct(0.50),
        pct(0.99),
    );
    Ok(())
}

fn record(tally: &Mutex<Tally>, begun: Instant, outcome: Result<u64, Error>) {
    let mut t = tally.lock().unwrap();
    match outcome {
        Ok(bytes) => {
            t.latencies.push(begun.elapsed());
            t.bytes += bytes;
        }
        Err(e) => {
            if t.failures == 0 {
                eprintln!("quinn-load: request failed: {e}");
            }
            t.failures += 1;
        }
    }
}

/// One GET; the body's length.
async fn get(
    send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>,
    url: &str,
) -> Result<u64, Error> {
    let mut stream = send.send_request(http::Request::get(url).body(())?).await?;
    stream.finish().await?;
    let resp = stream.recv_response().await?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status()).into());
    }
    let mut n = 0u64;
    while let Some(chunk) = stream.recv_data().await? {
        n += chunk.remaining() as u64;
    }
    Ok(n)
}
