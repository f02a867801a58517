//! Interoperability with implementations that share no code with quiche: Python's aioquic and
//! ngtcp2's examples (`gtlsclient`/`gtlsserver`). Both directions, over loopback, on real time.
//!
//! The peers are installed by `bash .ci/setup --interop` (a virtual environment under
//! `target/interop-venv`, Debian's `ngtcp2-client`/`ngtcp2-server`). A missing peer fails the
//! test with that instruction; a cell is skipped, with the reason printed, only where the peer
//! itself lacks the feature.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quicksand_core::{AddressValidation, CertificateSource, EndpointConfig};
use quicksand_h3::http::{Request, Response, StatusCode};
use quicksand_h3::{Body, EarlyData, RecvBody};
use quicksand_tokio::{serve, Client, ClientConfig, Server, ServerConfig};

const TEN_MB: usize = 10_000_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// This process's scratch directory under `target/` (logs, certificates, downloads), so test
/// runs leave nothing in the system's temporary directory.
///
/// The first call removes the directories of earlier runs whose process is gone: each run leaves
/// about 30 MB, kept for reading its logs until the next run, not for ever.
fn scratch() -> PathBuf {
    static PRUNED: std::sync::Once = std::sync::Once::new();
    let root = workspace().join("target/interop-scratch");
    PRUNED.call_once(|| {
        let Ok(entries) = std::fs::read_dir(&root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
    let dir = root.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn python() -> PathBuf {
    let p = workspace().join("target/interop-venv/bin/python");
    assert!(
        p.exists(),
        "aioquic is not installed: run `bash .ci/setup --interop`"
    );
    p
}

fn ngtcp2(binary: &str) -> &str {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {binary}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{binary} is not installed: run `bash .ci/setup --interop`"
    );
    binary
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    quicksand_core::boring::sha::sha256(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn free_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A peer process, killed on drop; its output goes to a log printed when a test fails.
struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    fn spawn(name: &str, cmd: &mut Command) -> Peer {
        // One log per peer process: tests run in parallel threads of this process, and two
        // peers sharing a log file truncate each other's output (a cell then saw no response).
        static SPAWNED: AtomicUsize = AtomicUsize::new(0);
        let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
        let log = scratch().join(format!("quicksand-interop-{name}-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        // cargo points the dynamic loader at build outputs; the peers need the system's libraries.
        cmd.env_remove("LD_LIBRARY_PATH");
        let child = cmd
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Peer { child, log }
    }

    /// Waits for the process to exit; panics with its log on failure or timeout.
    fn wait(mut self, limit: Duration) -> String {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let out = std::fs::read_to_string(&self.log).unwrap_or_default();
                assert!(status.success(), "peer failed ({status}):\n{}", tail(&out));
                return out;
            }
            assert!(
                start.elapsed() < limit,
                "peer timed out:\n{}",
                tail(&std::fs::read_to_string(&self.log).unwrap_or_default())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for_line(&self, needle: &str, limit: Duration) {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .contains(needle)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "peer never printed {needle:?}:\n{}",
            tail(&std::fs::read_to_string(&self.log).unwrap_or_default())
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- peer log {} ---\n{}",
                self.log.display(),
                tail(&std::fs::read_to_string(&self.log).unwrap_or_default())
            );
        }
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The certificate our servers and the peers' servers use, written to files once per process
/// (tests run in parallel: a second writer could hand a peer a half-written file).
fn cert_files() -> (PathBuf, PathBuf) {
    static FILES: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    FILES
        .get_or_init(|| {
            let dir = scratch().join("quicksand-interop-cert");
            std::fs::create_dir_all(&dir).unwrap();
            let (chain, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            let CertificateSource::Pem { chain: c, key: k } = CertificateSource::self_signed(
                &["localhost", "127.0.0.1", "::1"],
                std::time::SystemTime::now(),
            )
            .unwrap() else {
                unreachable!()
            };
            std::fs::write(&chain, c).unwrap();
            std::fs::write(&key, k).unwrap();
            (chain, key)
        })
        .clone()
}

// ---- quicksand server, peer clients ------------------------------------------------------

/// `/bytes/N` (pattern bytes) and `POST /sha256` (hex digest and length of the body); counts
/// requests that arrived as 0-RTT early data.
async fn service(mut req: Request<RecvBody>, early: Arc<AtomicUsize>) -> Response<Body> {
    if req.extensions().get::<EarlyData>().is_some() {
        early.fetch_add(1, Ordering::SeqCst);
    }
    let path = req.uri().path().to_string();
    if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        return Response::new(Body::from(Bytes::from(pattern(n))));
    }
    if path == "/sha256" {
        let body = req.body_mut().collect(64 << 20).await.unwrap_or_default();
        return Response::new(Body::from(format!("{} {}", sha256_hex(&body), body.len())));
    }
    let mut resp = Response::new(Body::from("not found"));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}

/// A quicksand server with 0-RTT on, RETRY on or off; the counter counts requests that
/// arrived as early data.
fn our_server(
    rt: &tokio::runtime::Runtime,
    ip: &str,
    retry: bool,
) -> (Server, SocketAddr, Arc<AtomicUsize>) {
    let (chain, key) = cert_files();
    let mut config = ServerConfig::default().with_pem_files(chain, key);
    config.quic.enable_early_data = true;
    config.quic.initial_max_streams_bidi = 200;
    config.endpoint = EndpointConfig {
        address_validation: if retry {
            AddressValidation::Always
        } else {
            AddressValidation::Never
        },
        ..EndpointConfig::default()
    };
    let early = Arc::new(AtomicUsize::new(0));
    let counter = early.clone();
    let addr: SocketAddr = format!(
        "{}:0",
        if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        }
    )
    .parse()
    .unwrap();
    let server = rt
        .block_on(async { serve(addr, config, move |req| service(req, counter.clone())) })
        .unwrap();
    let local = server.local_addr();
    (server, local, early)
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("https://{addr}{path}")
}

#[derive(Debug)]
struct Fetched {
    status: u16,
    length: usize,
    sha256: String,
}

/// The JSON lines `{"url": .., "status": .., "length": .., "sha256": ..}` that the aioquic
/// and quinn peer clients print, one per response.
fn parse_responses(out: &str) -> Vec<Fetched> {
    out.lines()
        .filter(|l| l.starts_with('{') && l.contains("\"status\""))
        .filter_map(|l| {
            let field = |name: &str| {
                let at = l.find(&format!("\"{name}\": "))? + name.len() + 4;
                let value = l[at..].split([',', '}']).next()?;
                Some(value.trim().trim_matches('"').to_string())
            };
            Some(Fetched {
                status: field("status")?.parse().ok()?,
                length: field("length")?.parse().ok()?,
                sha256: field("sha256")?,
            })
        })
        .collect()
}

/// The responses a peer client printed; panics with its output if it printed none, so a
/// failing cell always shows the peer's log.
fn responses(peer: &str, out: &str) -> Vec<Fetched> {
    let fetched = parse_responses(out);
    assert!(
        !fetched.is_empty(),
        "{peer} printed no response:\n{}",
        tail(out)
    );
    fetched
}

fn aioquic_client(args: &[&str]) -> Vec<Fetched> {
    responses("aioquic", &aioquic_client_raw(args))
}

fn aioquic_client_raw(args: &[&str]) -> String {
    let script = workspace().join("tests/interop/aioquic_peer.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg("client").arg("--insecure").args(args);
    if std::env::var_os("AIOQUIC_DEBUG").is_some() {
        cmd.env("AIOQUIC_DEBUG", "1");
    }
    eprintln!("aioquic client {args:?}");
    Peer::spawn("aioquic-client", &mut cmd).wait(Duration::from_secs(60))
}

#[test]
fn aioquic_client_against_quicksand_server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for ip in ["127.0.0.1", "::1"] {
        let (server, addr, _) = our_server(&rt, ip, true);
        let _view = ServerView(server.shutdown_handle());
        // Handshake (through RETRY) and a 1 KB GET, with aioquic's 8-byte CIDs and with the
        // longest, 20 bytes (as quinn and curl send).
        for cid_length in ["8", "20"] {
            let r = aioquic_client(&["--cid-length", cid_length, &url(addr, "/bytes/1024")]);
            assert_eq!(
                (r[0].status, r[0].length, r[0].sha256.as_str()),
                (200, 1024, sha256_hex(&pattern(1024)).as_str())
            );
        }
        if ip.contains(':') {
            drop(server);
            continue; // IPv6: the handshake and a GET are the cell.
        }
        // 10 MB, checksum compared.
        let r = aioquic_client(&[&url(addr, &format!("/bytes/{TEN_MB}"))]);
        assert_eq!(
            (r[0].length, r[0].sha256.clone()),
            (TEN_MB, sha256_hex(&pattern(TEN_MB)))
        );
        // 50 parallel requests on one connection.
        let r = aioquic_client(&["--repeat", "50", &url(addr, "/bytes/5000")]);
        assert_eq!(r.len(), 50);
        assert!(r.iter().all(|f| f.status == 200 && f.length == 5000));
        // A 5 MB POST.
        let r = aioquic_client(&["--post-size", "5000000", &url(addr, "/sha256")]);
        let answer = format!("{} 5000000", sha256_hex(&pattern(5_000_000)));
        assert_eq!(
            (r[0].status, r[0].sha256.clone()),
            (200, sha256_hex(answer.as_bytes()))
        );
        // Key update initiated by the peer.
        let r = aioquic_client(&["--key-update", &url(addr, "/bytes/200000")]);
        assert_eq!(r[0].length, 200_000);
        // ChaCha20-Poly1305 only.
        let r = aioquic_client(&["--chacha", &url(addr, "/bytes/100000")]);
        assert_eq!(r[0].sha256, sha256_hex(&pattern(100_000)));
        let stats = rt.block_on(server.stats());
        assert!(
            stats.iter().map(|s| s.endpoint.retries).sum::<u64>() >= 1,
            "clients went through RETRY"
        );
        // Resumption, then 0-RTT, against a server without RETRY: aioquic 1.7 does not resend
        // its 0-RTT request after a RETRY (the request is lost and the connection idles out;
        // ngtcp2 passes the same cell with RETRY on, below).
        let (plain, addr, early) = our_server(&rt, ip, false);
        let _plain_view = ServerView(plain.shutdown_handle());
        let session = scratch().join(format!("quicksand-interop-ticket-{}", std::process::id()));
        let _ = std::fs::remove_file(&session);
        let s = session.to_str().unwrap();
        aioquic_client(&["--session", s, &url(addr, "/bytes/10")]);
        assert!(session.exists(), "the server issued a session ticket");
        let out = aioquic_client_raw(&["--session", s, "--zero-rtt", &url(addr, "/bytes/10")]);
        assert_eq!(responses("aioquic", &out)[0].status, 200);
        assert!(
            out.contains("\"early_data\": true"),
            "aioquic saw its early data accepted: {out}"
        );
        assert!(
            early.load(Ordering::SeqCst) >= 1,
            "aioquic's resumed request arrived as 0-RTT"
        );
    }
}

#[test]
fn ngtcp2_client_against_quicksand_server() {
    let client = ngtcp2("gtlsclient");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for ip in ["127.0.0.1", "::1"] {
        let (server, addr, early) = our_server(&rt, ip, true);
        let _view = ServerView(server.shutdown_handle());
        let host = addr.ip().to_string();
        let port = addr.port().to_string();
        let dir = scratch().join(format!(
            "quicksand-interop-dl-{}-{}",
            std::process::id(),
            port
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |extra: &[&str], urls: &[String]| {
            let mut cmd = Command::new(client);
            cmd.args(["-q", "--exit-on-all-streams-close"])
                .arg(format!("--download={}", dir.display()))
                .args(extra)
                .arg(&host)
                .arg(&port)
                .args(urls);
            Peer::spawn("gtlsclient", &mut cmd).wait(Duration::from_secs(90))
        };
        let check = |n: usize| {
            let got = std::fs::read(dir.join(n.to_string())).unwrap();
            assert_eq!(got.len(), n);
            assert_eq!(sha256_hex(&got), sha256_hex(&pattern(n)));
        };
        run(&[], &[url(addr, "/bytes/1024")]);
        check(1024);
        if ip.contains(':') {
            continue;
        }
        run(&[], &[url(addr, &format!("/bytes/{TEN_MB}"))]);
        check(TEN_MB);
        let urls: Vec<String> = (0..50)
            .map(|i| url(addr, &format!("/bytes/{}", 3000 + i)))
            .collect();
        run(&[], &urls);
        (0..50).for_each(|i| check(3000 + i));
        run(&["--key-update=10ms"], &[url(addr, "/bytes/300000")]);
        check(300_000);
        run(
            &["--ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305"],
            &[url(addr, "/bytes/70000")],
        );
        check(70_000);
        let session = dir.join("session");
        let tp = dir.join("tp");
        let resume = [
            format!("--session-file={}", session.display()),
            format!("--tp-file={}", tp.display()),
        ];
        let resume: Vec<&str> = resume.iter().map(String::as_str).collect();
        run(&resume, &[url(addr, "/bytes/11")]);
        run(&resume, &[url(addr, "/bytes/12")]);
        check(12);
        assert!(
            early.load(Ordering::SeqCst) >= 1,
            "ngtcp2's resumed request arrived as 0-RTT"
        );
    }
}

// ---- peer servers, quicksand client ------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Adapter {
    Tokio,
    Smol,
}

/// A quicksand client connection on `adapter` (32 MiB window for the 10 MB cells, early data
/// on), resuming `session` if given.
fn adapter_client(
    rt: &tokio::runtime::Runtime,
    adapter: Adapter,
    peer: SocketAddr,
    session: Option<Vec<u8>>,
) -> quicksand_tokio::H3Connection {
    let mut quic = ClientConfig::default().quic;
    quic.initial_max_data = 32 << 20;
    quic.max_connection_window = 64 << 20;
    quic.enable_early_data = true;
    match adapter {
        Adapter::Tokio => {
            let mut config = ClientConfig::default().insecure();
            config.quic = quic;
            config.session = session;
            rt.block_on(async {
                let client = Client::bind(quicksand_tokio::any_addr(peer), config)?;
                client.connect(peer, "localhost").await
            })
        }
        Adapter::Smol => {
            let mut config = quicksand_smol::ClientConfig::default().insecure();
            config.quic = quic;
            config.session = session;
            smol::block_on(async {
                let client = quicksand_smol::Client::bind(quicksand_smol::any_addr(peer), config)?;
                client.connect(peer, "localhost").await
            })
        }
    }
    .unwrap_or_else(|e| panic!("{adapter:?} client could not connect to {peer}: {e}"))
}

/// The TLS session `conn` received, to resume with; the ticket arrives just after the
/// handshake, so this waits up to a second for it.
fn session_of(rt: &tokio::runtime::Runtime, conn: &quicksand_tokio::H3Connection) -> Vec<u8> {
    rt.block_on(async {
        for _ in 0..50 {
            if let Some(s) = conn.connection.session().await.unwrap() {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    })
    .expect("the server sent a session ticket")
}

fn fetch_all(
    rt: &tokio::runtime::Runtime,
    conn: &quicksand_tokio::H3Connection,
    urls: Vec<String>,
) -> Vec<Response<Bytes>> {
    rt.block_on(async {
        let jobs = urls.iter().map(|u| conn.get(u));
        let results = futures::future::join_all(jobs).await;
        results.into_iter().map(|r| r.unwrap()).collect()
    })
}

fn check_pattern(resp: &Response<Bytes>, n: usize) {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().len(), n);
    assert!(
        resp.body()
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8),
        "body differs from the pattern"
    );
}

#[test]
fn quicksand_client_against_aioquic_server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (chain, key) = cert_files();
    let script = workspace().join("tests/interop/aioquic_peer.py");
    for (ip, extra) in [
        ("127.0.0.1", vec![]),
        ("127.0.0.1", vec!["--retry"]),
        ("127.0.0.1", vec!["--chacha"]),
        ("::1", vec![]),
    ] {
        let port = free_port(ip);
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .args([
                "server",
                "--host",
                ip,
                "--port",
                &port.to_string(),
                "--cert",
            ])
            .arg(&chain)
            .arg("--key")
            .arg(&key)
            .args(&extra);
        let server = Peer::spawn("aioquic-server", &mut cmd);
        server.wait_for_line("ready", Duration::from_secs(20));
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        let conn = adapter_client(&rt, Adapter::Tokio, addr, None);
        let r = fetch_all(&rt, &conn, vec![url(addr, "/bytes/1024")]);
        check_pattern(&r[0], 1024);
        if extra.is_empty() && ip == "127.0.0.1" {
            let r = fetch_all(&rt, &conn, vec![url(addr, &format!("/bytes/{TEN_MB}"))]);
            check_pattern(&r[0], TEN_MB);
            let r = fetch_all(
                &rt,
                &conn,
                (0..50)
                    .map(|i| url(addr, &format!("/bytes/{}", 100 + i)))
                    .collect(),
            );
            for (i, resp) in r.iter().enumerate() {
                check_pattern(resp, 100 + i);
            }
        }
        drop(server);
    }
}

#[test]
fn quicksand_client_against_ngtcp2_server() {
    let server_bin = ngtcp2("gtlsserver");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (chain, key) = cert_files();
    let htdocs = scratch().join(format!("quicksand-interop-htdocs-{}", std::process::id()));
    std::fs::create_dir_all(&htdocs).unwrap();
    // Numeric paths are ngtcp2's generated content; files get a prefix.
    for n in [1024usize, TEN_MB] {
        std::fs::write(htdocs.join(format!("f{n}")), pattern(n)).unwrap();
    }
    for i in 0..50usize {
        std::fs::write(htdocs.join(format!("p{i}")), pattern(200 + i)).unwrap();
    }
    for (ip, extra) in [
        ("127.0.0.1", vec![]),
        ("127.0.0.1", vec!["-V"]),
        (
            "127.0.0.1",
            vec!["--ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305"],
        ),
        ("::1", vec![]),
    ] {
        let port = free_port(ip);
        let mut cmd = Command::new(server_bin);
        cmd.args(["-q", "-d"])
            .arg(&htdocs)
            .args(&extra)
            .arg(ip)
            .arg(port.to_string())
            .arg(&key)
            .arg(&chain);
        let _server = Peer::spawn("gtlsserver", &mut cmd);
        std::thread::sleep(Duration::from_millis(300));
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        let conn = adapter_client(&rt, Adapter::Tokio, addr, None);
        let r = fetch_all(&rt, &conn, vec![url(addr, "/f1024")]);
        check_pattern(&r[0], 1024);
        if extra.is_empty() && ip == "127.0.0.1" {
            let r = fetch_all(&rt, &conn, vec![url(addr, &format!("/f{TEN_MB}"))]);
            check_pattern(&r[0], TEN_MB);
            let r = fetch_all(
                &rt,
                &conn,
                (0..50).map(|i| url(addr, &format!("/p{i}"))).collect(),
            );
            for (i, resp) in r.iter().enumerate() {
                check_pattern(resp, 200 + i);
            }
        }
    }
}

// ---- the smol adapter: a subset of the same cells -----------------------------------------

#[test]
fn smol_server_against_aioquic_and_ngtcp2_clients() {
    let client_bin = ngtcp2("gtlsclient");
    let (chain, key) = cert_files();
    let config = quicksand_smol::ServerConfig::default().with_pem_files(chain, key);
    let early = Arc::new(AtomicUsize::new(0));
    let server = smol::block_on(async {
        quicksand_smol::serve("127.0.0.1:0".parse().unwrap(), config, move |req| {
            service(req, early.clone())
        })
    })
    .unwrap();
    let _view = ServerView(server.shutdown_handle());
    let addr = server.local_addr();
    let r = aioquic_client(&[
        &url(addr, "/bytes/1024"),
        &url(addr, &format!("/bytes/{TEN_MB}")),
    ]);
    assert_eq!(r.len(), 2);
    assert!(r
        .iter()
        .any(|f| f.length == TEN_MB && f.sha256 == sha256_hex(&pattern(TEN_MB))));
    let r = aioquic_client(&["--repeat", "50", &url(addr, "/bytes/5000")]);
    assert!(r.len() == 50 && r.iter().all(|f| f.status == 200 && f.length == 5000));
    let dir = scratch().join(format!("quicksand-interop-smol-dl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(client_bin);
    cmd.args(["-q", "--exit-on-all-streams-close"])
        .arg(format!("--download={}", dir.display()))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(url(addr, "/bytes/300000"));
    Peer::spawn("gtlsclient-smol", &mut cmd).wait(Duration::from_secs(60));
    assert_eq!(std::fs::read(dir.join("300000")).unwrap(), pattern(300_000));
    drop(server);
}

#[test]
fn smol_client_against_ngtcp2_server() {
    let server_bin = ngtcp2("gtlsserver");
    let (chain, key) = cert_files();
    let htdocs = scratch().join(format!(
        "quicksand-interop-smol-htdocs-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&htdocs).unwrap();
    std::fs::write(htdocs.join("big"), pattern(TEN_MB)).unwrap();
    let port = free_port("127.0.0.1");
    let mut cmd = Command::new(server_bin);
    cmd.args(["-q", "-d"])
        .arg(&htdocs)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .arg(&key)
        .arg(&chain);
    let _server = Peer::spawn("gtlsserver-smol", &mut cmd);
    std::thread::sleep(Duration::from_millis(300));
    let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    let resp = smol::block_on(async {
        let mut config = quicksand_smol::ClientConfig::default().insecure();
        config.quic.initial_max_data = 32 << 20;
        config.quic.max_connection_window = 64 << 20;
        let client = quicksand_smol::Client::bind(quicksand_smol::any_addr(addr), config)?;
        let conn = client.connect(addr, "localhost").await?;
        conn.get(&url(addr, "/big")).await
    })
    .unwrap();
    check_pattern(&resp, TEN_MB);
}

// ---- quinn 0.11 + h3 (crates.io), both directions, both adapters -----------------------

/// A quinn peer binary, built by `bash .ci/setup --interop` from `tests/peers`.
fn quinn_bin(name: &str) -> PathBuf {
    let p = workspace().join("target/peers/release").join(name);
    assert!(
        p.exists(),
        "{name} is not built: run `bash .ci/setup --interop`"
    );
    p
}

fn quinn_client_raw(args: &[&str]) -> String {
    let mut cmd = Command::new(quinn_bin("quinn-client"));
    cmd.arg("--insecure").args(args);
    eprintln!("quinn client {args:?}");
    Peer::spawn("quinn-client", &mut cmd).wait(Duration::from_secs(60))
}

fn quinn_client(args: &[&str]) -> Vec<Fetched> {
    responses("quinn", &quinn_client_raw(args))
}

/// Prints a server's endpoint counters if the cell using it fails: the server's view of the
/// connections next to the peer's log.
struct ServerView(quicksand_tokio::ShutdownHandle);

impl Drop for ServerView {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let stats = futures::executor::block_on(self.0.stats());
            eprintln!("--- quicksand server's view ---\n{stats:#?}");
        }
    }
}

/// The quinn client's cells against one quicksand server: handshake (through RETRY) and 1 KB;
/// with `full`, also 10 MB with checksum, 50 parallel requests, ChaCha20 only and resumption
/// with 0-RTT. quinn picks its own CID lengths (a 20-byte first DCID).
fn quinn_client_cells(addr: SocketAddr, full: bool) {
    let r = quinn_client(&[&url(addr, "/bytes/1024")]);
    assert_eq!(
        (r[0].status, r[0].length, r[0].sha256.as_str()),
        (200, 1024, sha256_hex(&pattern(1024)).as_str())
    );
    if !full {
        return;
    }
    let r = quinn_client(&[&url(addr, &format!("/bytes/{TEN_MB}"))]);
    assert_eq!(
        (r[0].length, r[0].sha256.clone()),
        (TEN_MB, sha256_hex(&pattern(TEN_MB)))
    );
    let r = quinn_client(&["--repeat", "50", &url(addr, "/bytes/5000")]);
    assert_eq!(r.len(), 50);
    assert!(r.iter().all(|f| f.status == 200 && f.length == 5000));
    let r = quinn_client(&["--chacha", &url(addr, "/bytes/100000")]);
    assert_eq!(r[0].sha256, sha256_hex(&pattern(100_000)));
    // Resumption: quinn resumes and the server accepts its 0-RTT. Whether the request itself
    // rides in 0-RTT packets is a race between quinn's tasks and the handshake on loopback,
    // so only the acceptance (decided in TLS) is asserted.
    let out = quinn_client_raw(&["--resume", &url(addr, "/bytes/10")]);
    let r = responses("quinn", &out);
    assert!(r.len() == 2 && r.iter().all(|f| f.status == 200 && f.length == 10));
    assert!(
        out.contains("\"resumed_early_data_accepted\": true"),
        "quinn resumed and its 0-RTT was accepted: {out}"
    );
}

#[test]
fn quinn_client_against_quicksand_servers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for ip in ["127.0.0.1", "::1"] {
        let (server, addr, _) = our_server(&rt, ip, true);
        let _view = ServerView(server.shutdown_handle());
        quinn_client_cells(addr, ip == "127.0.0.1");
        let stats = rt.block_on(server.stats());
        assert!(stats.iter().map(|s| s.endpoint.retries).sum::<u64>() >= 1);
    }
    for ip in ["127.0.0.1", "::1"] {
        let (chain, key) = cert_files();
        let mut config = quicksand_smol::ServerConfig::default().with_pem_files(chain, key);
        config.quic.enable_early_data = true;
        let counter = Arc::new(AtomicUsize::new(0));
        let bind = SocketAddr::new(ip.parse().unwrap(), 0);
        let server = smol::block_on(async {
            quicksand_smol::serve(bind, config, move |req| service(req, counter.clone()))
        })
        .unwrap();
        let _view = ServerView(server.shutdown_handle());
        quinn_client_cells(server.local_addr(), ip == "127.0.0.1");
    }
}

#[test]
fn quicksand_clients_against_quinn_server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (chain, key) = cert_files();
    for (ip, extra) in [
        ("127.0.0.1", vec![]),
        ("127.0.0.1", vec!["--retry"]),
        ("127.0.0.1", vec!["--chacha"]),
        ("::1", vec![]),
    ] {
        let listen = SocketAddr::new(ip.parse().unwrap(), free_port(ip));
        let mut cmd = Command::new(quinn_bin("quinn-server"));
        cmd.arg("--listen")
            .arg(listen.to_string())
            .arg("--cert")
            .arg(&chain)
            .arg("--key")
            .arg(&key)
            .args(&extra);
        let server = Peer::spawn("quinn-server", &mut cmd);
        server.wait_for_line("ready", Duration::from_secs(20));
        for adapter in [Adapter::Tokio, Adapter::Smol] {
            eprintln!("{adapter:?} client against quinn {listen} {extra:?}");
            let conn = adapter_client(&rt, adapter, listen, None);
            let r = fetch_all(&rt, &conn, vec![url(listen, "/bytes/1024")]);
            check_pattern(&r[0], 1024);
            if !(extra.is_empty() && ip == "127.0.0.1") {
                continue;
            }
            let r = fetch_all(&rt, &conn, vec![url(listen, &format!("/bytes/{TEN_MB}"))]);
            check_pattern(&r[0], TEN_MB);
            let urls = (0..50)
                .map(|i| url(listen, &format!("/bytes/{}", 100 + i)))
                .collect();
            for (i, resp) in fetch_all(&rt, &conn, urls).iter().enumerate() {
                check_pattern(resp, 100 + i);
            }
            // Resumption and 0-RTT with the session the first connection received.
            let session = session_of(&rt, &conn);
            let second = adapter_client(&rt, adapter, listen, Some(session));
            check_pattern(
                &fetch_all(&rt, &second, vec![url(listen, "/bytes/64")])[0],
                64,
            );
            let (resumed, early) = resumption_state(&rt, &second);
            assert!(resumed, "{adapter:?} client resumed against quinn");
            assert_eq!(early, 2, "quinn accepted 0-RTT (BoringSSL reason 2)");
        }
        drop(server);
    }
}

// ---- resumption and 0-RTT from the quicksand client ---------------------------------------

/// Whether the connection resumed a session, and BoringSSL's early-data reason (2: accepted).
fn resumption_state(
    rt: &tokio::runtime::Runtime,
    conn: &quicksand_tokio::H3Connection,
) -> (bool, u32) {
    let (tx, rx) = futures::channel::oneshot::channel();
    conn.connection
        .commands()
        .send(quicksand_tokio::Command::Run(Box::new(move |q| {
            let _ = tx.send((q.is_resumed(), q.early_data_reason()));
        })))
        .unwrap();
    rt.block_on(rx).unwrap()
}

fn resume_against(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    path: &str,
    n: usize,
) -> (bool, u32) {
    let first = adapter_client(rt, Adapter::Tokio, addr, None);
    check_pattern(&fetch_all(rt, &first, vec![url(addr, path)])[0], n);
    let session = session_of(rt, &first);
    let second = adapter_client(rt, Adapter::Tokio, addr, Some(session));
    check_pattern(&fetch_all(rt, &second, vec![url(addr, path)])[0], n);
    resumption_state(rt, &second)
}

#[test]
fn quicksand_client_resumes_with_aioquic_and_ngtcp2_servers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (chain, key) = cert_files();
    // aioquic: resumption; its 0-RTT needs max_early_data on the server's tickets, which the
    // peer script does not set, so only the resumption is asserted.
    let port = free_port("127.0.0.1");
    let script = workspace().join("tests/interop/aioquic_peer.py");
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .args(["server", "--port", &port.to_string(), "--cert"])
        .arg(&chain)
        .arg("--key")
        .arg(&key);
    let server = Peer::spawn("aioquic-server-resume", &mut cmd);
    server.wait_for_line("ready", Duration::from_secs(20));
    let (resumed, _) = resume_against(
        &rt,
        SocketAddr::new("127.0.0.1".parse().unwrap(), port),
        "/bytes/2048",
        2048,
    );
    assert!(resumed, "resumed against aioquic");
    drop(server);

    // ngtcp2: resumption and 0-RTT accepted.
    let htdocs = scratch().join(format!("quicksand-interop-resume-{}", std::process::id()));
    std::fs::create_dir_all(&htdocs).unwrap();
    std::fs::write(htdocs.join("small"), pattern(4096)).unwrap();
    let port = free_port("127.0.0.1");
    let mut cmd = Command::new(ngtcp2("gtlsserver"));
    cmd.args(["-q", "-d"])
        .arg(&htdocs)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .arg(&key)
        .arg(&chain);
    let _server = Peer::spawn("gtlsserver-resume", &mut cmd);
    std::thread::sleep(Duration::from_millis(300));
    // ngtcp2's GnuTLS server may decline early data now and then (BoringSSL reason 4,
    // peer_declined: 1 resumption in about 40 whole-suite runs on a loaded machine; most
    // likely GnuTLS's anti-replay check of the ticket age the client reports, which BoringSSL
    // counts in whole seconds). Resumption must always work, and 0-RTT be accepted at least
    // once in three tries.
    let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let (resumed, early) = resume_against(&rt, addr, "/small", 4096);
        assert!(resumed, "resumed against ngtcp2");
        reasons.push(early);
        if early == 2 {
            break;
        }
    }
    assert!(
        reasons.contains(&2),
        "ngtcp2 accepted 0-RTT (BoringSSL early-data reason 2); reasons seen: {reasons:?}"
    );
}
