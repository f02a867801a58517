//! What quicksand's core costs on top of quiche: the same bulk transfer, in memory, through a
//! bare quiche pair (the limit) and through two `quicksand_core::Connection`s.
//!
//! `cargo bench -p quicksand-tests --bench core_overhead` (QUICKSAND_BENCH_MIB=N to change the
//! size, default 1024). Both loops copy each datagram once, as a socket would, run the same
//! application logic (write zeros on one stream, read and discard), and are timed in CPU time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use quicksand_core::{
    quiche, Application, ApplicationError, CertificateSource, Connection, ConnectionContext,
    ConnectionParams, Datagram, QuicConfig, QuicSettings, QuicheConnection, TlsSettings,
};

const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4000);
const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 443);
static ZEROS: [u8; 65536] = [0; 65536];

fn configs() -> (QuicConfig, QuicConfig) {
    let mut settings = QuicSettings::default();
    settings.alpn = vec![b"bench".to_vec()];
    settings.initial_max_data = 64 << 20;
    settings.initial_max_stream_data_bidi_local = 32 << 20;
    settings.initial_max_stream_data_bidi_remote = 32 << 20;
    settings.max_connection_window = 64 << 20;
    settings.max_stream_window = 32 << 20;
    settings.enable_pacing = false;
    let mut client = ConnectionParams::new(settings.clone());
    client.tls.verify_peer = false;
    let server = ConnectionParams {
        settings,
        tls: TlsSettings {
            certificate: Some(
                CertificateSource::self_signed(&["localhost"], std::time::SystemTime::now())
                    .unwrap(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    (
        QuicConfig::client(&client).unwrap(),
        QuicConfig::server(&server).unwrap(),
    )
}

/// Writes `total` zero bytes on stream 0.
struct Source {
    total: u64,
    sent: u64,
}

impl Source {
    fn write<F: quiche::BufFactory>(&mut self, conn: &mut quiche::Connection<F>) {
        while self.sent < self.total {
            let n = (self.total - self.sent).min(ZEROS.len() as u64) as usize;
            let fin = self.sent + n as u64 == self.total;
            match conn.stream_send(0, &ZEROS[..n], fin) {
                Ok(w) => {
                    self.sent += w as u64;
                    if w < n {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
}

/// Reads and discards everything.
struct Sink {
    received: u64,
    scratch: Vec<u8>,
}

impl Sink {
    fn read<F: quiche::BufFactory>(&mut self, conn: &mut quiche::Connection<F>) {
        let readable: Vec<u64> = conn.readable().collect();
        for s in readable {
            while let Ok((n, _)) = conn.stream_recv(s, &mut self.scratch) {
                self.received += n as u64;
            }
        }
    }
}

impl Application for Source {
    fn process_reads(
        &mut self,
        _: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        Ok(())
    }
    fn process_writes(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        self.write(conn);
        Ok(())
    }
}

impl Application for Sink {
    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        self.read(conn);
        Ok(())
    }
    fn process_writes(
        &mut self,
        _: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        Ok(())
    }
}

fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Moves every packet `from` has to `to`, copying each once as a socket would.
fn deliver(
    from: &mut quiche::Connection,
    to: &mut quiche::Connection,
    from_addr: SocketAddr,
    to_addr: SocketAddr,
    out: &mut [u8],
    wire: &mut [u8],
) {
    while let Ok((n, _)) = from.send(out) {
        wire[..n].copy_from_slice(&out[..n]);
        let _ = to.recv(
            &mut wire[..n],
            quiche::RecvInfo {
                from: from_addr,
                to: to_addr,
            },
        );
    }
}

fn raw_quiche(total: u64) -> Duration {
    let (mut cc, mut sc) = configs();
    let scid = quiche::ConnectionId::from_ref(&[1; 16]);
    let sscid = quiche::ConnectionId::from_ref(&[2; 16]);
    let mut client = quiche::connect(
        Some("localhost"),
        &scid,
        CLIENT,
        SERVER,
        cc.quiche_config_mut(),
    )
    .unwrap();
    let mut server = quiche::accept(&sscid, None, SERVER, CLIENT, sc.quiche_config_mut()).unwrap();
    let mut source = Source { total, sent: 0 };
    let mut sink = Sink {
        received: 0,
        scratch: vec![0; 65536],
    };
    let mut out = vec![0u8; 65536];
    let mut wire = vec![0u8; 65536];
    let start = cpu_time();
    while sink.received < total {
        if client.is_established() {
            source.write(&mut client);
        }
        deliver(
            &mut client,
            &mut server,
            CLIENT,
            SERVER,
            &mut out,
            &mut wire,
        );
        deliver(
            &mut server,
            &mut client,
            SERVER,
            CLIENT,
            &mut out,
            &mut wire,
        );
        if server.is_established() {
            sink.read(&mut server);
        }
        let now = Instant::now();
        for c in [&mut client, &mut server] {
            if c.timeout_instant().is_some_and(|t| t <= now) {
                c.on_timeout();
            }
        }
        assert!(
            !client.is_closed() && !server.is_closed(),
            "raw connection closed"
        );
    }
    cpu_time() - start
}

fn core(total: u64) -> Duration {
    let (mut cc, mut sc) = configs();
    let now = Instant::now();
    let mut client = Connection::connect(
        now,
        &mut cc,
        Some("localhost"),
        CLIENT,
        SERVER,
        ConnectionContext::default(),
        Source { total, sent: 0 },
    )
    .unwrap();
    let ctx = ConnectionContext::default();
    let scid = ctx.cid_generator.generate();
    let mut server = Connection::accept(
        now,
        &mut sc,
        &scid,
        None,
        SERVER,
        CLIENT,
        ctx,
        Sink {
            received: 0,
            scratch: vec![0; 65536],
        },
    )
    .unwrap();
    let start = cpu_time();
    while server.application().received < total {
        let now = Instant::now();
        while let Some(t) = client.poll_transmit(now, 64) {
            for d in t.datagrams() {
                server.handle_datagram(now, Datagram::new(BytesMut::from(d), CLIENT, SERVER, now));
            }
        }
        while let Some(t) = server.poll_transmit(now, 64) {
            for d in t.datagrams() {
                client.handle_datagram(now, Datagram::new(BytesMut::from(d), SERVER, CLIENT, now));
            }
        }
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        assert!(
            !client.is_closed() && !server.is_closed(),
            "core connection closed"
        );
    }
    cpu_time() - start
}

fn main() {
    // `cargo test --benches` runs this binary with --bench absent; keep that fast.
    let benching = std::env::args().any(|a| a == "--bench");
    let mib: u64 = std::env::var("QUICKSAND_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 1024 } else { 8 });
    let total = mib << 20;
    let rounds = if benching { 3 } else { 1 };
    let mut raw = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..rounds {
        raw.push(raw_quiche(total));
        ours.push(core(total));
    }
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    let (r, c) = (best(&raw), best(&ours));
    let per_gb = |d: Duration| d.as_secs_f64() / (total as f64 / (1u64 << 30) as f64);
    println!("bulk {mib} MiB one way, in memory, best of {rounds} (CPU time):");
    println!(
        "  quiche alone      {:>8.3} s  ({:.3} CPU-s per GiB)",
        r.as_secs_f64(),
        per_gb(r)
    );
    println!(
        "  quicksand core    {:>8.3} s  ({:.3} CPU-s per GiB)",
        c.as_secs_f64(),
        per_gb(c)
    );
    println!(
        "  core / quiche     {:>8.3}",
        c.as_secs_f64() / r.as_secs_f64()
    );
}
