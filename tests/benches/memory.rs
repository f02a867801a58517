//! Heap per connection and per in-flight request, counted by the allocator: what a
//! quicksand server (core connection + HTTP/3 driver) holds above quiche's own state.
//!
//! `cargo bench -p quicksand-tests --bench memory` (QUICKSAND_BENCH_CONNS=N, default 1,000;
//! QUICKSAND_BENCH_STALLED=K, default 64).
//!
//! 1. **Idle connections**: N pairs, each after one GET, with the same client (bare quiche +
//!    `quiche::h3`) and two servers: bare quiche + `quiche::h3` (the limit) and quicksand's
//!    `Connection<ServerApplication>`. Live heap per pair; the difference is what quicksand adds.
//! 2. **Stalled requests**: K GETs of a large streamed body on one connection whose client
//!    never reads: live heap per request once nothing moves. Bounded by the client's stream
//!    window (data sent, unacknowledged or unread) plus the driver's per-stream cap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use quicksand_core::{
    quiche, Connection, ConnectionContext, ConnectionKey, ConnectionWake, Datagram, QuicConfig,
};
use quicksand_h3::{Body, Http3Settings, ServerApplication};
use quicksand_tests::sim::WokenConnections;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the pointer came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the pointer came from `alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4000);
const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 443);
/// Client stream window in the stalled-request measurement.
const STALL_WINDOW: u64 = 256 << 10;

fn configs(stream_window: u64) -> (QuicConfig, QuicConfig) {
    let mut settings = quicksand_tests::h3::quic_settings();
    settings.enable_pacing = false;
    settings.initial_max_streams_bidi = 1000;
    settings.initial_max_stream_data_bidi_local = stream_window;
    settings.initial_max_data = 16 << 20;
    settings.max_stream_window = stream_window;
    quicksand_tests::h3::configs(settings.clone(), settings)
}

/// The server end under measurement.
trait Server {
    fn recv(&mut self, d: &mut [u8]);
    /// Appends outgoing datagrams.
    fn send(&mut self, out: &mut Vec<Vec<u8>>);
    fn work(&mut self) {}
}

/// Bare quiche + quiche::h3, answering every GET with a 100-byte body.
struct RawServer {
    conn: quiche::Connection,
    h3: Option<quiche::h3::Connection>,
    buf: Vec<u8>,
}

impl Server for RawServer {
    fn recv(&mut self, d: &mut [u8]) {
        let info = quiche::RecvInfo {
            from: CLIENT,
            to: SERVER,
        };
        let _ = self.conn.recv(d, info);
    }
    fn send(&mut self, out: &mut Vec<Vec<u8>>) {
        while let Ok((n, _)) = self.conn.send(&mut self.buf) {
            out.push(self.buf[..n].to_vec());
        }
    }
    fn work(&mut self) {
        if self.h3.is_none() && self.conn.is_established() {
            let config = quiche::h3::Config::new().unwrap();
            self.h3 = quiche::h3::Connection::with_transport(&mut self.conn, &config).ok();
        }
        let Some(h3) = self.h3.as_mut() else { return };
        while let Ok((id, ev)) = h3.poll(&mut self.conn) {
            if let quiche::h3::Event::Headers { .. } = ev {
                let head = [quiche::h3::Header::new(b":status", b"200")];
                let _ = h3.send_response(&mut self.conn, id, &head, false);
                let _ = h3.send_body(&mut self.conn, id, &[b'x'; 100], true);
            }
        }
    }
}

/// quicksand's core connection with its HTTP/3 server driver.
struct OurServer {
    conn: Connection<ServerApplication>,
    /// Where the application's handlers wake the connection.
    woken: Arc<WokenConnections>,
}

impl Server for OurServer {
    fn recv(&mut self, d: &mut [u8]) {
        let now = Instant::now();
        self.conn.handle_datagram(
            now,
            Datagram::new(BytesMut::from(&d[..]), CLIENT, SERVER, now),
        );
    }
    fn send(&mut self, out: &mut Vec<Vec<u8>>) {
        let now = Instant::now();
        if !self.woken.take().is_empty() {
            self.conn.handle_wakeup();
        }
        while let Some(t) = self.conn.poll_transmit(now, 64) {
            out.extend(t.datagrams().map(<[u8]>::to_vec));
        }
    }
}

/// Bare quiche + quiche::h3 client sending GETs; reads response bodies unless `stall`.
struct RawClient {
    conn: quiche::Connection,
    h3: Option<quiche::h3::Connection>,
    buf: Vec<u8>,
    to_send: usize,
    finished: usize,
    stall: bool,
}

impl RawClient {
    fn new(config: &mut QuicConfig, requests: usize, stall: bool) -> Self {
        let conn = quiche::connect(
            Some("localhost"),
            &quiche::ConnectionId::from_ref(&[1; 16]),
            CLIENT,
            SERVER,
            config.quiche_config_mut(),
        )
        .unwrap();
        RawClient {
            conn,
            h3: None,
            buf: vec![0; 65536],
            to_send: requests,
            finished: 0,
            stall,
        }
    }

    fn work(&mut self) {
        if self.h3.is_none() && self.conn.is_established() {
            let config = quiche::h3::Config::new().unwrap();
            self.h3 = quiche::h3::Connection::with_transport(&mut self.conn, &config).ok();
        }
        let Some(h3) = self.h3.as_mut() else { return };
        let req = [
            quiche::h3::Header::new(b":method", b"GET"),
            quiche::h3::Header::new(b":scheme", b"https"),
            quiche::h3::Header::new(b":authority", b"localhost"),
            quiche::h3::Header::new(b":path", b"/"),
        ];
        while self.to_send > 0 && h3.send_request(&mut self.conn, &req, true).is_ok() {
            self.to_send -= 1;
        }
        if self.stall {
            return;
        }
        while let Ok((id, ev)) = h3.poll(&mut self.conn) {
            match ev {
                quiche::h3::Event::Data => {
                    while h3.recv_body(&mut self.conn, id, &mut self.buf).is_ok() {}
                }
                quiche::h3::Event::Finished => self.finished += 1,
                _ => {}
            }
        }
    }
}

/// Exchanges packets until nothing moves (or `done`).
fn run(client: &mut RawClient, server: &mut dyn Server, done: impl Fn(&RawClient) -> bool) {
    let mut out = Vec::new();
    // Nothing moving for a while, not for one round: handler tasks run on wake-ups.
    let mut idle_rounds = 0;
    for _ in 0..100_000 {
        client.work();
        while let Ok((n, _)) = client.conn.send(&mut client.buf) {
            out.push(client.buf[..n].to_vec());
        }
        let moved = !out.is_empty();
        for mut d in out.drain(..) {
            server.recv(&mut d);
        }
        server.work();
        server.send(&mut out);
        let moved = moved || !out.is_empty();
        for mut d in out.drain(..) {
            let info = quiche::RecvInfo {
                from: SERVER,
                to: CLIENT,
            };
            let _ = client.conn.recv(&mut d, info);
        }
        idle_rounds = if moved { 0 } else { idle_rounds + 1 };
        if done(client) || idle_rounds >= 100 {
            return;
        }
    }
}

fn small_service() -> ServerApplication {
    ServerApplication::with_service(Http3Settings::default(), |_req| async {
        http::Response::new(Body::from(Bytes::from_static(&[b'x'; 100])))
    })
}

/// `ctx` is shared by every connection, as an endpoint shares it (one buffer pool).
fn our_server(
    config: &mut QuicConfig,
    ctx: &ConnectionContext,
    driver: ServerApplication,
) -> OurServer {
    let now = Instant::now();
    let ctx = ctx.clone();
    let scid = ctx.cid_generator.generate();
    let mut conn =
        Connection::accept(now, config, &scid, None, SERVER, CLIENT, ctx, driver).unwrap();
    let woken = Arc::new(WokenConnections::default());
    conn.set_wake(ConnectionWake::new(ConnectionKey(0), woken.clone()));
    OurServer { conn, woken }
}

/// Live heap per idle pair (client + server) after one GET, and the pairs' handshakes ok.
fn idle_pairs(n: usize, ours: bool) -> f64 {
    let (mut cc, mut sc) = configs(2 << 20);
    let mut keep: Vec<(RawClient, Box<dyn Server>)> = Vec::with_capacity(n);
    let ctx = ConnectionContext::default();
    let before = live();
    for _ in 0..n {
        let mut client = RawClient::new(&mut cc, 1, false);
        let mut server: Box<dyn Server> = if ours {
            Box::new(our_server(&mut sc, &ctx, small_service()))
        } else {
            let conn = quiche::accept(
                &quiche::ConnectionId::from_ref(&[2; 16]),
                None,
                SERVER,
                CLIENT,
                sc.quiche_config_mut(),
            )
            .unwrap();
            Box::new(RawServer {
                conn,
                h3: None,
                buf: vec![0; 1500],
            })
        };
        run(&mut client, server.as_mut(), |c| c.finished == 1);
        assert_eq!(client.finished, 1, "the GET completed");
        keep.push((client, server));
    }
    // The keep vector itself is not connection state.
    let per =
        (live() - before) as f64 - (n * std::mem::size_of::<(RawClient, Box<dyn Server>)>()) as f64;
    per / n as f64
}

/// Live heap per stalled request on one quicksand connection; the client's share of it; the
/// most the driver queued on one stream.
fn stalled(k: usize) -> (f64, f64, f64) {
    let (mut cc, mut sc) = configs(STALL_WINDOW);
    let driver = ServerApplication::with_service(Http3Settings::default(), |_req| async {
        // 64 MiB per response, made 16 KiB at a time as the driver asks for it.
        let chunk = Bytes::from(vec![b'x'; 16 << 10]);
        let chunks =
            futures::stream::iter((0..4096).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
        http::Response::new(Body::from_stream(chunks))
    });
    let mut client = RawClient::new(&mut cc, 0, true);
    let mut server = our_server(&mut sc, &ConnectionContext::default(), driver);
    run(&mut client, &mut server, |c| c.h3.is_some());
    let before = live();
    client.to_send = k;
    run(&mut client, &mut server, |_| false);
    let total = (live() - before) as f64 / k as f64;
    // What the client holds (unread data in quiche's receive buffers) goes with it.
    let with_client = live();
    drop(client);
    let client_share = (with_client - live()) as f64 / k as f64;
    let server_driver_queued = server.conn.application().stats().send_buffer_high_water;
    (total, client_share, server_driver_queued as f64)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, bench: usize, test: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if benching { bench } else { test })
    };
    let n = env("QUICKSAND_BENCH_CONNS", 1000, 20);
    let k = env("QUICKSAND_BENCH_STALLED", 64, 4);
    let raw = idle_pairs(n, false);
    let ours = idle_pairs(n, true);
    println!("{n} idle connections after one GET, live heap per client+server pair:");
    println!("  quiche + quiche::h3 server    {:>8.0} B", raw);
    println!("  quicksand core + h3 server    {:>8.0} B", ours);
    println!(
        "  quicksand above quiche        {:>8.0} B per connection",
        ours - raw
    );
    let (per, client, queued) = stalled(k);
    println!(
        "{k} requests stalled by a client that never reads (its stream window {STALL_WINDOW} B):"
    );
    println!("  live heap per request         {:>8.0} B", per);
    println!("  of which the client's         {:>8.0} B", client);
    println!("  of which the server's         {:>8.0} B", per - client);
    println!(
        "  server driver queue, most     {:>8.0} B on one stream",
        queued
    );
}
