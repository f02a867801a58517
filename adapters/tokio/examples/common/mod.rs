//! Runtime-free parts of the `server` and `client` examples, shared by the tokio and smol
//! adapters' examples: argument parsing, the demo HTTP/3 service, and the client's report.
#![allow(dead_code)]

use quicksand_core::AddressValidation;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quicksand_h3::bytes::Bytes;
use quicksand_h3::http::{header, Request, Response, StatusCode};
use quicksand_h3::{Body, RecvBody};

/// Largest `/bytes/N` answered (1 TiB).
const MAX_GENERATED: u64 = 1 << 40;
/// Chunk size of generated and file bodies.
const CHUNK: usize = 64 * 1024;

// ---- arguments -------------------------------------------------------------------------

/// Bytes from hex digits (an even number of them, at least two).
fn parse_hex(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim_start_matches("0x");
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Pulls `--flag VALUE` pairs and positional arguments out of `std::env::args`.
pub struct Args {
    args: Vec<String>,
}

impl Args {
    pub fn from_env() -> Self {
        Args {
            args: std::env::args().skip(1).collect(),
        }
    }

    /// True (and consumed) if `flag` was given.
    pub fn flag(&mut self, flag: &str) -> bool {
        match self.args.iter().position(|a| a == flag) {
            Some(i) => {
                self.args.remove(i);
                true
            }
            None => false,
        }
    }

    /// The value after `flag` (`--flag value` or `--flag=value`).
    pub fn value(&mut self, flag: &str) -> Option<String> {
        let prefix = format!("{flag}=");
        if let Some(i) = self.args.iter().position(|a| a.starts_with(&prefix)) {
            return Some(self.args.remove(i)[prefix.len()..].to_string());
        }
        let i = self.args.iter().position(|a| a == flag)?;
        if i + 1 >= self.args.len() {
            fail(&format!("{flag} needs a value"));
        }
        self.args.remove(i);
        Some(self.args.remove(i))
    }

    /// The value after `flag`, parsed.
    pub fn parsed<T: std::str::FromStr>(&mut self, flag: &str) -> Option<T> {
        self.value(flag).map(|v| {
            v.parse()
                .unwrap_or_else(|_| fail(&format!("{flag}: cannot parse {v:?}")))
        })
    }

    /// What is left; an unknown `--option` is an error.
    pub fn positional(self) -> Vec<String> {
        if let Some(a) = self.args.iter().find(|a| a.starts_with("--")) {
            fail(&format!("unknown option {a}"));
        }
        self.args
    }
}

pub fn fail(msg: &str) -> ! {
    eprintln!("error: {msg} (try --help)");
    std::process::exit(2)
}

/// Logs to stderr with `tracing`; the level comes from `RUST_LOG` (error, warn, info, debug,
/// trace; default info).
pub fn init_logging() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
}

/// The server's options.
pub struct ServerArgs {
    pub listen: SocketAddr,
    pub root: Option<PathBuf>,
    pub cert: Option<(PathBuf, PathBuf)>,
    pub qlog_dir: Option<PathBuf>,
    pub cc: Option<String>,
    pub pacing: bool,
    pub max_pacing_rate: Option<u64>,
    pub workers: Option<usize>,
    pub retry: quicksand_core::AddressValidation,
    pub early_data: bool,
    pub offload: bool,
    pub keys: Option<PathBuf>,
    pub server_id: Option<Vec<u8>>,
    pub systemd: bool,
    pub metrics: Option<SocketAddr>,
    pub inline_handlers: bool,
}

pub const SERVER_USAGE: &str = "\
usage: server [options]
  --listen ADDR          address to listen on (default 127.0.0.1:4433)
  --root DIR             serve files from DIR
  --cert FILE --key FILE certificate chain and key (PEM); without them a self-signed
                         certificate is generated at start
  --qlog-dir DIR         write a qlog file per connection
  --cc ALGO              congestion control: cubic (default), reno, bbr2, bbr2_gcongestion
  --no-pacing            do not pace packets
  --max-pacing-rate B/S  pacing rate ceiling in bytes per second
  --workers N            sockets with SO_REUSEPORT, one endpoint task each (default: one per
                         core; the kernel steers each datagram to its connection's socket)
  --no-retry             skip address validation (RETRY) of new clients
  --retry-under-load N   validate addresses only while N or more handshakes are in progress
  --early-data           accept 0-RTT requests from resuming clients
  --no-gso               send and receive one datagram per system call (GSO and GRO off)
  --keys FILE            the stateless-reset key and token and ticket masters every host of a
                         fleet shares (and this one keeps across restarts); created with new
                         secrets if FILE does not exist
  --server-id HEX        QUIC-LB server id carried in every connection ID (1-14 bytes), for a
                         load balancer in front of several hosts
  --systemd              serve on the sockets systemd passed (ListenDatagram=), not --listen
  --metrics ADDR         serve metrics in the Prometheus text format on http://ADDR/metrics
  --inline-handlers      poll handlers inside their connection's task instead of spawning
                         each (faster; a slow handler then stalls its socket)
routes: /bytes/N streams N generated bytes (byte i is i mod 251); other paths are files
under --root. Ctrl-C shuts down gracefully (GOAWAY, 5 s for requests in flight).";

impl ServerArgs {
    pub fn parse() -> Self {
        let mut a = Args::from_env();
        if a.flag("--help") || a.flag("-h") {
            println!("{SERVER_USAGE}");
            std::process::exit(0);
        }
        let listen = a
            .parsed("--listen")
            .unwrap_or_else(|| "127.0.0.1:4433".parse().expect("default address"));
        let root = a.value("--root").map(PathBuf::from);
        let cert = match (a.value("--cert"), a.value("--key")) {
            (Some(c), Some(k)) => Some((c.into(), k.into())),
            (None, None) => None,
            _ => fail("--cert and --key go together"),
        };
        let args = ServerArgs {
            listen,
            root,
            cert,
            qlog_dir: a.value("--qlog-dir").map(PathBuf::from),
            cc: a.value("--cc"),
            pacing: !a.flag("--no-pacing"),
            max_pacing_rate: a.parsed("--max-pacing-rate"),
            workers: a.parsed("--workers"),
            retry: match (a.flag("--no-retry"), a.parsed("--retry-under-load")) {
                (true, None) => AddressValidation::Never,
                (false, Some(handshakes)) => AddressValidation::UnderLoad { handshakes },
                (false, None) => AddressValidation::Always,
                (true, Some(_)) => fail("--no-retry and --retry-under-load exclude each other"),
            },
            early_data: a.flag("--early-data"),
            offload: !a.flag("--no-gso"),
            keys: a.value("--keys").map(PathBuf::from),
            server_id: a
                .value("--server-id")
                .map(|hex| parse_hex(&hex).unwrap_or_else(|| fail("--server-id: not hex bytes"))),
            systemd: a.flag("--systemd"),
            metrics: a.parsed("--metrics"),
            inline_handlers: a.flag("--inline-handlers"),
        };
        if !a.positional().is_empty() {
            fail("the server takes no positional arguments");
        }
        args
    }

    /// Applies the options to the adapter's config; exits with a message if the keys file
    /// or the inherited sockets cannot be used.
    pub fn apply(&self, config: &mut quicksand_adapter::ServerConfig) {
        if let Some((chain, key)) = &self.cert {
            config.certificate_files = Some(quicksand_adapter::PemFiles::new(chain, key));
        }
        config.qlog_dir = self.qlog_dir.clone();
        let quic = &mut config.quic;
        if let Some(cc) = &self.cc {
            quic.cc_algorithm = cc.clone();
        }
        quic.enable_pacing = self.pacing;
        quic.max_pacing_rate = self.max_pacing_rate;
        // Room for fast downloads on a LAN.
        quic.initial_max_data = 32 << 20;
        quic.max_connection_window = 64 << 20;
        quic.initial_max_stream_data_bidi_local = 8 << 20;
        quic.initial_max_stream_data_bidi_remote = 8 << 20;
        quic.enable_early_data = self.early_data;
        config.endpoint.address_validation = self.retry;
        config.socket.gso = self.offload;
        config.socket.gro = self.offload;
        if let Some(workers) = self.workers {
            config.workers = workers;
        }
        if let Some(path) = &self.keys {
            match quicksand_adapter::FleetKeys::load_or_create(path) {
                Ok(keys) => config.keys = Some(keys),
                Err(e) => fail(&format!("--keys: {e}")),
            }
        }
        if let Some(id) = &self.server_id {
            config.connection_ids = quicksand_adapter::ConnectionIds::QuicLb {
                config_id: 0,
                server_id: id.clone(),
            };
        }
        if self.inline_handlers {
            config.handlers = quicksand_adapter::Handlers::Inline;
        }
        if let Some(addr) = self.metrics {
            serve_prometheus(addr);
            config.metrics = Arc::new(quicksand_adapter::MetricsFacade);
        }
        if self.systemd {
            match quicksand_adapter::PreboundSockets::systemd() {
                Ok(sockets) => config.prebound = Some(sockets),
                Err(e) => fail(&format!("--systemd: {e}")),
            }
        }
    }

    /// Where to listen: `--listen`, or any address for inherited sockets.
    pub fn listen_addr(&self) -> SocketAddr {
        if self.systemd {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            self.listen
        }
    }
}

/// Installs a Prometheus recorder for the `metrics` facade and serves its text on `addr` from a
/// thread of its own (any path; one request per connection), so it works under any runtime.
fn serve_prometheus(addr: SocketAddr) {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap_or_else(|e| fail(&format!("--metrics: {e}")));
    let listener = std::net::TcpListener::bind(addr)
        .unwrap_or_else(|e| fail(&format!("--metrics {addr}: {e}")));
    tracing::info!("metrics on http://{addr}/metrics");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            // The request itself does not matter: read its head and answer.
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            handle.run_upkeep();
            let body = handle.render();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

/// The client's options.
pub struct ClientArgs {
    pub insecure: bool,
    pub out: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub offload: bool,
    pub stats: bool,
    pub urls: Vec<String>,
}

pub const CLIENT_USAGE: &str = "\
usage: client [--insecure] [--out DIR] [--ca FILE] [--no-gso] [--stats] URL...
  --insecure   do not verify the server's certificate (self-signed test servers)
  --out DIR    write each body to DIR/<last path segment>
  --ca FILE    trust the roots in this PEM file
  --no-gso     send and receive one datagram per system call (GSO and GRO off)
  --stats      print each connection's QUIC statistics at the end (to stderr)
Prints status, size, time and throughput per URL; exits non-zero if any fetch failed.";

impl ClientArgs {
    pub fn parse() -> Self {
        let mut a = Args::from_env();
        if a.flag("--help") || a.flag("-h") {
            println!("{CLIENT_USAGE}");
            std::process::exit(0);
        }
        let insecure = a.flag("--insecure") || a.flag("-k");
        let out = a.value("--out").map(PathBuf::from);
        let ca = a.value("--ca").map(PathBuf::from);
        let offload = !a.flag("--no-gso");
        let stats = a.flag("--stats");
        let urls = a.positional();
        if urls.is_empty() {
            fail("no URL given");
        }
        ClientArgs {
            insecure,
            out,
            ca,
            offload,
            stats,
            urls,
        }
    }

    /// Applies the options to the adapter's config.
    pub fn apply(&self, config: &mut quicksand_adapter::ClientConfig) {
        config.socket.gso = self.offload;
        config.socket.gro = self.offload;
        config.tls.verify_peer = !self.insecure;
        config.ca_file = self.ca.clone();
        let quic = &mut config.quic;
        quic.initial_max_data = 32 << 20;
        quic.max_connection_window = 64 << 20;
        quic.initial_max_stream_data_bidi_local = 8 << 20;
        quic.initial_max_stream_data_bidi_remote = 8 << 20;
    }
}

/// One line of a connection's statistics, as `--stats` prints it.
pub fn stats_line(peer: &str, s: &quicksand_core::ConnectionStats) -> String {
    let q = &s.quic;
    let mut line = format!(
        "stats {peer}: packets sent {} recv {} lost {} retrans {}, bytes recv {}",
        q.sent, q.recv, q.lost, q.retrans, q.recv_bytes
    );
    if let Some(p) = s.paths.iter().find(|p| p.active) {
        line += &format!(
            ", rtt {:?} (min {:?}, max {:?}), PTOs {}, cwnd {}",
            p.rtt,
            p.min_rtt.unwrap_or_default(),
            p.max_rtt.unwrap_or_default(),
            p.total_pto_count,
            p.cwnd
        );
    }
    line
}

// ---- the demo service ------------------------------------------------------------------

/// Byte `i` of every `/bytes/N` body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// The demo service: `/bytes/N`, files under `root`, a short index at `/`.
pub fn service(
    root: Option<PathBuf>,
) -> impl Fn(Request<RecvBody>) -> std::future::Ready<Response<Body>> + Send + Sync + 'static {
    let root = Arc::new(root);
    move |req: Request<RecvBody>| std::future::ready(answer(root.as_ref().as_deref(), &req))
}

fn answer(root: Option<&Path>, req: &Request<RecvBody>) -> Response<Body> {
    let path = req.uri().path();
    tracing::debug!(method = %req.method(), path, "request");
    if let Some(n) = path.strip_prefix("/bytes/") {
        return match n.parse::<u64>() {
            Ok(n) if n <= MAX_GENERATED => Response::builder()
                .header(header::CONTENT_LENGTH, n)
                .body(Body::from_stream(Generated::new(n)))
                .expect("valid response"),
            _ => status(StatusCode::BAD_REQUEST, "N must be a number up to 2^40\n"),
        };
    }
    match root {
        Some(root) => file(root, path),
        None if path == "/" => Response::new(Body::from(
            "quicksand demo server\n/bytes/N streams N generated bytes\n",
        )),
        None => status(StatusCode::NOT_FOUND, "not found (no --root given)\n"),
    }
}

fn status(code: StatusCode, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Body::from(text))
        .expect("valid response")
}

fn file(root: &Path, path: &str) -> Response<Body> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return status(StatusCode::FORBIDDEN, "forbidden\n");
    }
    let mut full = root.join(rel);
    if full.is_dir() {
        full = full.join("index.html");
    }
    match File::open(&full).and_then(|f| Ok((f.metadata()?.len(), f))) {
        // Reads are blocking but short (64 KiB chunks, usually from the page cache); a
        // production file server would read on a blocking pool.
        Ok((len, f)) => Response::builder()
            .header(header::CONTENT_LENGTH, len)
            .body(Body::from_stream(FileChunks(f)))
            .expect("valid response"),
        Err(_) => status(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `/bytes/N`: the pattern, in 64 KiB chunks sliced from one shared buffer.
struct Generated {
    sent: u64,
    total: u64,
    pattern: Bytes,
}

impl Generated {
    fn new(total: u64) -> Self {
        // Built once per process: a chunk starting at any offset is a slice of it. Making it
        // per request (a 64-bit modulo per byte of 64 KiB) was most of the server's CPU on
        // small responses.
        static PATTERN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
        let pattern = PATTERN.get_or_init(|| {
            let bytes: Vec<u8> = (0..(CHUNK + 251) as u64).map(pattern_byte).collect();
            bytes.into()
        });
        Generated {
            sent: 0,
            total,
            pattern: pattern.clone(),
        }
    }
}

impl futures_core::Stream for Generated {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let left = self.total - self.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let len = left.min(CHUNK as u64) as usize;
        let start = (self.sent % 251) as usize;
        let chunk = self.pattern.slice(start..start + len);
        self.sent += len as u64;
        Poll::Ready(Some(Ok(chunk)))
    }
}

struct FileChunks(File);

impl futures_core::Stream for FileChunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut buf = vec![0u8; CHUNK];
        match self.0.read(&mut buf) {
            Ok(0) => Poll::Ready(None),
            Ok(n) => {
                buf.truncate(n);
                Poll::Ready(Some(Ok(buf.into())))
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

// ---- the client's report ---------------------------------------------------------------

/// Where a body goes and how its progress is shown.
pub struct Download {
    url: String,
    out: Option<(PathBuf, File)>,
    expected: Option<u64>,
    pub received: u64,
    started: Instant,
    last_draw: Instant,
    bar: bool,
}

impl Download {
    /// Starts a download of `url` into `out_dir` (if given).
    pub fn start(url: &str, out_dir: Option<&Path>, started: Instant) -> std::io::Result<Self> {
        let out = match out_dir {
            Some(dir) => {
                let name = url
                    .split('?')
                    .next()
                    .and_then(|u| u.rsplit('/').next())
                    .filter(|n| !n.is_empty() && *n != "." && *n != "..")
                    .unwrap_or("index.html");
                std::fs::create_dir_all(dir)?;
                let path = dir.join(name);
                let f = File::create(&path)?;
                Some((path, f))
            }
            None => None,
        };
        Ok(Download {
            url: url.to_string(),
            out,
            expected: None,
            received: 0,
            started,
            last_draw: started,
            bar: std::io::stdout().is_terminal(),
        })
    }

    /// The response head arrived.
    pub fn head(&mut self, content_length: Option<u64>) {
        self.expected = content_length;
    }

    /// A body chunk arrived.
    pub fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let Some((_, f)) = &mut self.out {
            f.write_all(data)?;
        }
        self.received += data.len() as u64;
        if self.bar && self.last_draw.elapsed() >= Duration::from_millis(100) {
            self.last_draw = Instant::now();
            self.draw();
        }
        Ok(())
    }

    fn draw(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let rate = self.received as f64 / secs;
        let line = match self.expected {
            Some(total) if total > 0 => {
                let done = (self.received as f64 / total as f64).min(1.0);
                let width = 30;
                let filled = (done * width as f64) as usize;
                format!(
                    "[{}{}] {:5.1}% {} {}/s",
                    "#".repeat(filled),
                    " ".repeat(width - filled),
                    done * 100.0,
                    human(self.received),
                    human(rate as u64)
                )
            }
            _ => format!("{} {}/s", human(self.received), human(rate as u64)),
        };
        print!("\r{line}\x1b[K");
        let _ = std::io::stdout().flush();
    }

    /// Prints the summary line: status, size, time, throughput.
    pub fn finish(self, status: u16) {
        if self.bar {
            print!("\r\x1b[K");
        }
        let took = self.started.elapsed();
        let secs = took.as_secs_f64().max(1e-6);
        let mbps = self.received as f64 * 8.0 / secs / 1e6;
        let saved = match &self.out {
            Some((p, _)) => format!(" -> {}", p.display()),
            None => String::new(),
        };
        println!(
            "{status} {} {} bytes in {:.3} s ({:.1} Mbit/s){saved}",
            self.url, self.received, secs, mbps
        );
    }
}

/// Bytes in binary units.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

// ---- the client ------------------------------------------------------------------------

/// The client example on `runtime`: fetches every URL over one socket, one connection per
/// server, prints each result (and `--stats`), and exits non-zero if any fetch failed.
pub async fn run_client<R: quicksand_adapter::Runtime>(runtime: R) {
    init_logging();
    let args = ClientArgs::parse();
    let mut config = quicksand_adapter::ClientConfig::default();
    args.apply(&mut config);
    let mut fetcher = Fetcher {
        runtime,
        config,
        client: None,
        conns: std::collections::HashMap::new(),
    };
    let mut failed = 0;
    for url in &args.urls {
        if let Err(e) = fetcher.fetch(url, &args).await {
            eprintln!("FAILED {url}: {e}");
            failed += 1;
        }
    }
    if args.stats {
        for ((host, peer), conn) in &fetcher.conns {
            if let Ok(stats) = conn.connection.stats().await {
                eprintln!("{}", stats_line(&format!("{host} {peer}"), &stats));
            }
        }
    }
    std::process::exit(if failed > 0 { 1 } else { 0 });
}

/// One client socket and its connections, by server.
struct Fetcher<R: quicksand_adapter::Runtime> {
    runtime: R,
    config: quicksand_adapter::ClientConfig,
    client: Option<quicksand_adapter::Client<R>>,
    conns: std::collections::HashMap<(String, SocketAddr), quicksand_adapter::H3Connection>,
}

impl<R: quicksand_adapter::Runtime> Fetcher<R> {
    async fn fetch(
        &mut self,
        url: &str,
        args: &ClientArgs,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let started = Instant::now();
        let (host, peer) = quicksand_adapter::resolve_on(&self.runtime, url).await?;
        if self.client.is_none() {
            let addr = quicksand_adapter::any_addr(peer);
            let client = quicksand_adapter::Client::bind_on(
                self.runtime.clone(),
                addr,
                self.config.clone(),
            )?;
            self.client = Some(client);
        }
        let key = (host.clone(), peer);
        if !self.conns.contains_key(&key) {
            let c = self
                .client
                .as_ref()
                .expect("bound")
                .connect(peer, &host)
                .await?;
            self.conns.insert(key.clone(), c);
        }
        let conn = &self.conns[&key];
        let mut download = Download::start(url, args.out.as_deref(), started)?;
        let req = Request::get(url).body(Bytes::new())?;
        let resp = conn.client.request(req)?.await?;
        let len = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        download.head(len);
        let status = resp.status();
        let mut body = resp.into_body();
        while let Some(chunk) = body.data().await {
            download.chunk(&chunk?)?;
        }
        download.finish(status.as_u16());
        if !status.is_success() {
            return Err(format!("status {status}").into());
        }
        Ok(())
    }
}
