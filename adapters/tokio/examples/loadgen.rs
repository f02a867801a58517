//! An HTTP/3 load generator that works against any HTTP/3 server.
//!
//! ```text
//! loadgen URL [--connections C] [--streams S] [--requests N] [--duration SECONDS]
//!             [--insecure] [--json]
//! ```
//!
//! Opens C connections (all on one client socket), keeps S requests in flight on each, and runs
//! N requests in total (or for the given duration). Prints requests/s, throughput of response
//! bodies, handshakes/s, latency percentiles and errors by kind; `--json` prints one object.
//! A response whose body length differs from its `content-length` counts as an error.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fail, Args};
use quicksand_h3::http::header::CONTENT_LENGTH;
use quicksand_tokio::{any_addr, resolve, Client, ClientConfig};

const USAGE: &str = "\
usage: loadgen URL [--connections C] [--streams S] [--requests N] [--duration SECONDS]
               [--insecure] [--json]
  --connections C  connections to open (default 1), all on one client socket
  --streams S      requests in flight on each connection (default 1)
  --requests N     requests in total (default 1000; ignored with --duration)
  --duration T     run for T seconds instead of a request count
  --insecure       do not verify the server's certificate
  --json           print one JSON object instead of text
  --hold T         keep the connections open T seconds after the run (memory measurements)";

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    body_bytes: u64,
    errors: BTreeMap<String, u64>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn error_kind(e: &impl std::fmt::Debug) -> String {
    let s = format!("{e:?}");
    s.split(['(', ' ', '{'])
        .next()
        .unwrap_or("Unknown")
        .to_string()
}

#[tokio::main]
async fn main() {
    let mut a = Args::from_env();
    if a.flag("--help") || a.flag("-h") {
        println!("{USAGE}");
        return;
    }
    let connections: usize = a.parsed("--connections").unwrap_or(1).max(1);
    let streams: usize = a.parsed("--streams").unwrap_or(1).max(1);
    let requests: u64 = a.parsed("--requests").unwrap_or(1000);
    let duration: Option<f64> = a.parsed("--duration");
    let insecure = a.flag("--insecure") || a.flag("-k");
    let json = a.flag("--json");
    let hold: Option<f64> = a.parsed("--hold");
    let urls = a.positional();
    let [url] = urls.as_slice() else {
        fail("give exactly one URL");
    };

    let (host, peer) = resolve(url)
        .await
        .unwrap_or_else(|e| fail(&format!("{url}: {e}")));
    let mut config = ClientConfig::default();
    if insecure {
        config = config.insecure();
    }
    config.quic.initial_max_streams_bidi = (streams as u64).max(100);
    let client: Client =
        Client::bind(any_addr(peer), config).unwrap_or_else(|e| fail(&e.to_string()));

    // Handshakes, all at once.
    let start = Instant::now();
    let handshakes =
        futures::future::join_all((0..connections).map(|_| client.connect(peer, &host))).await;
    let handshake_time = start.elapsed();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut conns = Vec::new();
    for h in handshakes {
        match h {
            Ok(c) => conns.push(c),
            Err(e) => {
                *tally
                    .lock()
                    .unwrap()
                    .errors
                    .entry(format!("handshake:{}", error_kind(&e)))
                    .or_default() += 1
            }
        }
    }
    if conns.is_empty() {
        fail("no connection could be established");
    }

    // S workers per connection pull request tickets until the count or the time runs out.
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = duration.map(|d| Instant::now() + Duration::from_secs_f64(d));
    let run_start = Instant::now();
    let mut workers = Vec::new();
    for conn in &conns {
        for _ in 0..streams {
            let (conn, url, issued, tally) = (
                conn.client.clone(),
                url.clone(),
                issued.clone(),
                tally.clone(),
            );
            workers.push(tokio::spawn(async move {
                loop {
                    match deadline {
                        Some(d) if Instant::now() >= d => break,
                        None if issued.fetch_add(1, Ordering::Relaxed) >= requests => break,
                        _ => {}
                    }
                    let t0 = Instant::now();
                    let result = conn.get(&url).await;
                    let elapsed = t0.elapsed();
                    let mut tally = tally.lock().unwrap();
                    match result {
                        Ok(resp) => {
                            let declared = resp
                                .headers()
                                .get(CONTENT_LENGTH)
                                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                            let len = resp.body().len() as u64;
                            if declared.is_some_and(|d| d != len) {
                                *tally
                                    .errors
                                    .entry("body-length-mismatch".into())
                                    .or_default() += 1;
                            } else if !resp.status().is_success() {
                                *tally
                                    .errors
                                    .entry(format!("status-{}", resp.status().as_u16()))
                                    .or_default() += 1;
                            } else {
                                tally.latencies.push(elapsed);
                                tally.body_bytes += len;
                            }
                        }
                        Err(e) => *tally.errors.entry(error_kind(&e)).or_default() += 1,
                    }
                }
            }));
        }
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = run_start.elapsed().as_secs_f64();
    let failed = report(
        &tally.lock().unwrap(),
        elapsed,
        conns.len(),
        streams,
        handshake_time,
        json,
    );
    if let Some(seconds) = hold {
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    }
    if failed {
        std::process::exit(1);
    }
}

/// Prints the results; true if any request failed.
fn report(
    tally: &Tally,
    elapsed: f64,
    connections: usize,
    streams: usize,
    handshake_time: Duration,
    json: bool,
) -> bool {
    let mut latencies = tally.latencies.clone();
    latencies.sort();
    let tally = Tally {
        latencies,
        body_bytes: tally.body_bytes,
        errors: tally.errors.clone(),
    };
    let ok = tally.latencies.len();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let l = &tally.latencies;
    let (p50, p90, p99, max) = (
        ms(percentile(l, 0.5)),
        ms(percentile(l, 0.9)),
        ms(percentile(l, 0.99)),
        ms(l.last().copied().unwrap_or_default()),
    );
    let rps = ok as f64 / elapsed;
    let gbps = tally.body_bytes as f64 * 8.0 / elapsed / 1e9;
    let hps = connections as f64 / handshake_time.as_secs_f64();
    if json {
        let errors: Vec<String> = tally
            .errors
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        println!(
            "{{\"requests\":{ok},\"seconds\":{elapsed:.3},\"requests_per_second\":{rps:.1},\"throughput_gbps\":{gbps:.4},\"connections\":{},\"handshakes_per_second\":{hps:.1},\"latency_ms\":{{\"p50\":{p50:.3},\"p90\":{p90:.3},\"p99\":{p99:.3},\"max\":{max:.3}}},\"errors\":{{{}}}}}",
            connections,
            errors.join(",")
        );
    } else {
        println!(
            "{ok} requests in {elapsed:.3} s over {} connections × {streams} streams",
            connections
        );
        println!("  requests/s    {rps:.1}");
        println!("  throughput    {gbps:.4} Gbit/s of response bodies");
        println!(
            "  handshakes/s  {hps:.1} ({} in {:.3} s)",
            connections,
            handshake_time.as_secs_f64()
        );
        println!("  latency ms    p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  max {max:.3}");
        for (kind, n) in &tally.errors {
            println!("  error {kind}: {n}");
        }
    }
    !tally.errors.is_empty()
}
