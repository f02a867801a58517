//! A flood of hostile datagrams against a live server over loopback, while a client downloads
//! 100 MiB from it, on each adapter: garbage, unknown versions, token-less Initials, Initials
//! with forged RETRY tokens and short headers for unknown connections, 60,000 of each.
//!
//! What must hold: the download completes byte-exact; no answer is larger than the datagram
//! that drew it; the process's resident memory grows by less than [`RSS_BOUND`]; and the
//! server's stats account for the flood by reason.
//!
//! Its own test binary, so resident memory is measured without other tests beside it; the two
//! adapters' runs take turns.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use quicksand_core::metrics::{DropReason, RejectReason};
use quicksand_h3::{Body, RecvBody};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Most a run may take.
const LIMIT: Duration = Duration::from_secs(120);
/// The download's size.
const BIG: u64 = 100 << 20;
/// Datagrams of each kind.
const PER_KIND: usize = 60_000;
/// Most the process's resident memory may grow during a run: measured 4–12 MiB (debug build,
/// both ends of the download in this process). Stateless answers queued without a cap, 64 KiB
/// each as they once were, would pass it after a thousand.
const RSS_BOUND: u64 = 64 << 20;

/// One adapter's run at a time: resident memory is per process.
static TURN: Mutex<()> = Mutex::new(());

fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// `/bytes/N`.
fn service(req: Request<RecvBody>) -> std::future::Ready<Response<Body>> {
    let n: u64 = req
        .uri()
        .path()
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let pattern: Bytes = (0..65_536 + 251)
        .map(pattern_byte)
        .collect::<Vec<_>>()
        .into();
    let chunks = (0..n.div_ceil(65_536)).map(move |i| {
        let start = i * 65_536;
        let len = (n - start).min(65_536) as usize;
        let at = (start % 251) as usize;
        Ok::<_, std::io::Error>(pattern.slice(at..at + len))
    });
    std::future::ready(Response::new(Body::from_stream(futures::stream::iter(
        chunks,
    ))))
}

/// The kinds of hostile datagram, each sent from a socket of its own at one size, so every
/// answer can be checked against its trigger.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Random bytes.
    Garbage,
    /// A 1,200-byte long header with a version nobody speaks: version negotiation.
    UnknownVersion,
    /// A 1,200-byte QUIC v1 Initial without a token: RETRY.
    TokenlessInitial,
    /// The same with a token that claims to be ours: refused.
    ForgedToken,
    /// A short header for no connection: a stateless reset, rate-limited.
    UnknownShortHeader,
}

const KINDS: [Kind; 5] = [
    Kind::Garbage,
    Kind::UnknownVersion,
    Kind::TokenlessInitial,
    Kind::ForgedToken,
    Kind::UnknownShortHeader,
];

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::Garbage => 700,
            Kind::UnknownVersion | Kind::TokenlessInitial | Kind::ForgedToken => 1200,
            Kind::UnknownShortHeader => 60,
        }
    }

    fn build(self, rng: &mut StdRng) -> Vec<u8> {
        let mut p = vec![0u8; self.size()];
        rng.fill_bytes(&mut p);
        // Long header: Initial type bits, version, 8-byte DCID and SCID.
        let long = |p: &mut Vec<u8>, version: u32| {
            p[0] = 0xc0 | (p[0] & 0x0f);
            p[1..5].copy_from_slice(&version.to_be_bytes());
            p[5] = 8;
            p[14] = 8;
        };
        match self {
            Kind::Garbage => {
                // Long or short, any version, any lengths: whatever the parser makes of it.
            }
            Kind::UnknownVersion => long(&mut p, 0x1a2a_3a4a),
            Kind::TokenlessInitial | Kind::ForgedToken => {
                long(&mut p, 1);
                // 60 bytes: a one-byte length varint.
                let token: &[u8] = match self {
                    Kind::ForgedToken => &[0x52; 60],
                    _ => &[],
                };
                // Header: flags, version, DCID (8), SCID (8), token length, token, length.
                let mut at = 23;
                p[at] = token.len() as u8;
                at += 1;
                p[at..at + token.len()].copy_from_slice(token);
                if !token.is_empty() {
                    // Random bytes after the kind byte: forged, not a copy of one token.
                    rng.fill_bytes(&mut p[at + 1..at + token.len()]);
                }
                at += token.len();
                let rest = (p.len() - at - 2) as u16;
                p[at..at + 2].copy_from_slice(&(0x4000 | rest).to_be_bytes());
            }
            Kind::UnknownShortHeader => p[0] = 0x40 | (p[0] & 0x3f),
        }
        p
    }
}

/// What one kind's socket saw come back.
#[derive(Debug, Default)]
struct Answers {
    count: AtomicU64,
    largest: AtomicU64,
}

/// Sends [`PER_KIND`] datagrams of every kind to `server`, interleaved, each kind from its
/// own socket, reading answers as it goes.
fn flood(server: SocketAddr, answers: Arc<Vec<Answers>>, done: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(0x600d_f100d);
        let sockets: Vec<UdpSocket> = KINDS
            .iter()
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0").expect("flood socket");
                s.set_nonblocking(true).expect("nonblocking");
                s
            })
            .collect();
        let mut buf = vec![0u8; 65_536];
        for i in 0..PER_KIND {
            for (k, kind) in KINDS.iter().enumerate() {
                let datagram = kind.build(&mut rng);
                // A full socket buffer drops it on our side; the flood goes on.
                let _ = sockets[k].send_to(&datagram, server);
            }
            if i % 64 == 0 {
                for (k, socket) in sockets.iter().enumerate() {
                    while let Ok(n) = socket.recv(&mut buf) {
                        answers[k].count.fetch_add(1, Ordering::Relaxed);
                        answers[k].largest.fetch_max(n as u64, Ordering::Relaxed);
                    }
                }
                // Leave the CPUs to the download now and then.
                std::thread::sleep(Duration::from_micros(200 + rng.random_range(0..200)));
            }
        }
        // Late answers.
        std::thread::sleep(Duration::from_millis(200));
        for (k, socket) in sockets.iter().enumerate() {
            while let Ok(n) = socket.recv(&mut buf) {
                answers[k].count.fetch_add(1, Ordering::Relaxed);
                answers[k].largest.fetch_max(n as u64, Ordering::Relaxed);
            }
        }
        done.store(true, Ordering::Release);
    })
}

/// The process's resident memory, from `/proc/self/statm`.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Samples resident memory every 20 ms until `stop`; returns the highest seen.
fn watch_rss(stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = rss();
        while !stop.load(Ordering::Acquire) {
            peak = peak.max(rss());
            std::thread::sleep(Duration::from_millis(20));
        }
        peak.max(rss())
    })
}

/// What the server's endpoint counted (one worker).
fn check_stats(adapter: &str, stats: &quicksand_core::EndpointStats, answers: &[Answers]) {
    eprintln!("{adapter}: endpoint stats {stats:?}");
    for reason in DropReason::ALL {
        eprintln!(
            "{adapter}:   dropped {reason:?}: {}",
            stats.dropped_for(reason)
        );
    }
    let by_reason: u64 = DropReason::ALL.iter().map(|r| stats.dropped_for(*r)).sum();
    assert_eq!(by_reason, stats.dropped, "every drop has a reason");
    // Each kind drew its answer or its drop.
    assert!(stats.version_negotiations > 0, "no version negotiation");
    assert!(stats.retries > 0, "no RETRY");
    assert!(stats.stateless_resets > 0, "no stateless reset");
    assert!(
        stats.rejected(RejectReason::InvalidToken) > 0,
        "forged tokens not counted"
    );
    assert!(
        stats.dropped_for(DropReason::Rejected) > 0,
        "forged tokens not dropped"
    );
    assert!(
        stats.dropped_for(DropReason::Malformed) > 0,
        "garbage not counted"
    );
    assert!(
        stats.dropped_for(DropReason::UnknownConnection) > 0,
        "short headers"
    );
    // The rates held: more answerable datagrams arrived than the rates allow in the run.
    assert!(
        stats.dropped_for(DropReason::RateLimited) > 0,
        "no rate limit reached"
    );
    let answered: u64 = answers
        .iter()
        .map(|a| a.count.load(Ordering::Relaxed))
        .sum();
    assert!(
        answered <= stats.version_negotiations + stats.retries + stats.stateless_resets,
        "more answers than the server counted: {answered}"
    );
}

macro_rules! flood_test {
    ($name:ident, $q:ident, $block_on:expr) => {
        #[test]
        fn $name() {
            use $q as q;
            let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
            let adapter = stringify!($name);
            let run = async {
                // One worker: the flood's counters are read from its socket.
                let mut config = q::ServerConfig {
                    workers: 1,
                    ..q::ServerConfig::default()
                };
                config.quic.initial_max_data = 32 << 20;
                config.quic.max_connection_window = 64 << 20;
                config.quic.initial_max_stream_data_bidi_local = 8 << 20;
                config.quic.initial_max_stream_data_bidi_remote = 8 << 20;
                // Low enough that the flood exceeds it even on a slow, busy machine, so the
                // rate limit is seen at work.
                config.endpoint.version_negotiation_rate = 50;
                let server = q::serve("127.0.0.1:0".parse().unwrap(), config, service).unwrap();
                let mut client_config = q::ClientConfig::default().insecure();
                client_config.quic.initial_max_data = 32 << 20;
                client_config.quic.max_connection_window = 64 << 20;
                client_config.quic.initial_max_stream_data_bidi_local = 8 << 20;
                client_config.quic.initial_max_stream_data_bidi_remote = 8 << 20;
                let (_client, conn) = q::connect(server.local_addr(), "localhost", client_config)
                    .await
                    .unwrap();

                let baseline = rss();
                let stop = Arc::new(AtomicBool::new(false));
                let peak = watch_rss(stop.clone());
                let answers: Arc<Vec<Answers>> =
                    Arc::new(KINDS.iter().map(|_| Answers::default()).collect());
                let flooded = Arc::new(AtomicBool::new(false));
                let flooder = flood(server.local_addr(), answers.clone(), flooded.clone());

                let start = Instant::now();
                let url = format!(
                    "https://localhost:{}/bytes/{BIG}",
                    server.local_addr().port()
                );
                let req = Request::get(url).body(Bytes::new()).unwrap();
                let resp = conn.client.request(req).unwrap().await.unwrap();
                assert_eq!(resp.status(), 200);
                let mut body = resp.into_body();
                let mut got = 0u64;
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.expect("body chunk");
                    let wrong = chunk
                        .iter()
                        .enumerate()
                        .find(|(i, b)| **b != pattern_byte(got + *i as u64));
                    assert!(
                        wrong.is_none(),
                        "wrong byte at {}",
                        got + wrong.unwrap().0 as u64
                    );
                    got += chunk.len() as u64;
                }
                assert_eq!(got, BIG, "the download completes");
                let secs = start.elapsed().as_secs_f64();
                let flood_over = flooded.load(Ordering::Acquire);
                // The flood reached the server (it started before the download).
                assert!(answers.iter().any(|a| a.count.load(Ordering::Relaxed) > 0));
                flooder.join().expect("flood thread");
                stop.store(true, Ordering::Release);
                let peak = peak.join().expect("rss thread");
                eprintln!(
                    "{adapter}: 100 MiB in {secs:.1} s under the flood (flood finished first: \
                     {flood_over}); resident memory {} MiB, peak +{} MiB",
                    baseline >> 20,
                    peak.saturating_sub(baseline) >> 20
                );
                for (kind, a) in KINDS.iter().zip(answers.iter()) {
                    let largest = a.largest.load(Ordering::Relaxed);
                    eprintln!(
                        "{adapter}:   {kind:?} ({} B): {} answers, largest {largest} B",
                        kind.size(),
                        a.count.load(Ordering::Relaxed)
                    );
                    assert!(
                        largest < kind.size() as u64,
                        "{kind:?}: an answer of {largest} B to {} B",
                        kind.size()
                    );
                }
                assert!(
                    peak.saturating_sub(baseline) < RSS_BOUND,
                    "resident memory grew by {} MiB",
                    peak.saturating_sub(baseline) >> 20
                );
                let stats = server.stats().await;
                check_stats(adapter, &stats[0].endpoint, &answers);
                server.shutdown(Duration::from_secs(2)).await;
            };
            $block_on(run);
        }
    };
}

fn run_tokio(test: impl std::future::Future<Output = ()>) {
    common::run_tokio(LIMIT, test);
}

fn run_smol(test: impl std::future::Future<Output = ()>) {
    common::run_smol(LIMIT, test);
}

flood_test!(tokio_server_under_a_flood, quicksand_tokio, run_tokio);
flood_test!(smol_server_under_a_flood, quicksand_smol, run_smol);
