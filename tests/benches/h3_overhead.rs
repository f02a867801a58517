//! What quicksand's HTTP/3 driver costs on top of `quiche::h3`: many small requests on one
//! connection, in memory, through bare quiche (the limit) and through quicksand's core with
//! its `ClientApplication` / `ServerApplication`.
//!
//! `cargo bench -p quicksand-tests --bench h3_overhead` (QUICKSAND_BENCH_REQUESTS=N, default
//! 100,000; QUICKSAND_BENCH_IN_FLIGHT=N requests in flight, default 64, at most 256, the
//! server's stream limit; 100-byte responses). Timed in CPU time; both loops copy each
//! datagram once, as a socket would. QUICKSAND_BENCH_ONLY=quiche|quicksand|tower runs one side
//! alone, for a profiler; `tower` runs the same handler through `quicksand_h3::TowerService`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use quicksand_core::quiche::h3::NameValue;
use quicksand_core::{
    quiche, Application, Connection, ConnectionContext, ConnectionKey, ConnectionWake, Datagram,
    QuicConfig,
};
use quicksand_h3::{Body, ClientApplication, Http3Settings, ServerApplication};
use quicksand_tests::sim::WokenConnections;

const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4000);
const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 443);
const BODY: &[u8] = &[b'x'; 100];
/// Requests in flight: QUICKSAND_BENCH_IN_FLIGHT, default 64.
fn in_flight() -> usize {
    static IN_FLIGHT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *IN_FLIGHT.get_or_init(|| {
        std::env::var("QUICKSAND_BENCH_IN_FLIGHT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64)
    })
}

fn configs() -> (QuicConfig, QuicConfig) {
    let mut settings = quicksand_tests::h3::quic_settings();
    settings.enable_pacing = false;
    settings.initial_max_streams_bidi = 1000;
    quicksand_tests::h3::configs(settings.clone(), settings)
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

fn deliver(
    from: &mut quiche::Connection,
    to: &mut quiche::Connection,
    addrs: (SocketAddr, SocketAddr),
    out: &mut [u8],
    wire: &mut [u8],
) {
    while let Ok((n, _)) = from.send(out) {
        wire[..n].copy_from_slice(&out[..n]);
        let _ = to.recv(
            &mut wire[..n],
            quiche::RecvInfo {
                from: addrs.0,
                to: addrs.1,
            },
        );
    }
}

/// CPU time and packets sent by both ends.
fn raw_quiche(requests: usize) -> (Duration, usize) {
    let (mut cc, mut sc) = configs();
    let mut client = quiche::connect(
        Some("localhost"),
        &quiche::ConnectionId::from_ref(&[1; 16]),
        CLIENT,
        SERVER,
        cc.quiche_config_mut(),
    )
    .unwrap();
    let mut server = quiche::accept(
        &quiche::ConnectionId::from_ref(&[2; 16]),
        None,
        SERVER,
        CLIENT,
        sc.quiche_config_mut(),
    )
    .unwrap();
    let h3_config = quiche::h3::Config::new().unwrap();
    let (mut ch3, mut sh3) = (None, None);
    let (mut out, mut wire, mut scratch) = (vec![0u8; 65536], vec![0u8; 65536], vec![0u8; 65536]);
    let req = [
        quiche::h3::Header::new(b":method", b"GET"),
        quiche::h3::Header::new(b":scheme", b"https"),
        quiche::h3::Header::new(b":authority", b"localhost"),
        quiche::h3::Header::new(b":path", b"/"),
    ];
    let resp = [
        quiche::h3::Header::new(b":status", b"200"),
        quiche::h3::Header::new(b"content-length", b"100"),
    ];
    let (mut sent, mut done, mut inflight) = (0usize, 0usize, 0usize);
    let start = cpu_time();
    while done < requests {
        if ch3.is_none() && client.is_established() {
            ch3 = Some(quiche::h3::Connection::with_transport(&mut client, &h3_config).unwrap());
        }
        if sh3.is_none() && server.is_established() {
            sh3 = Some(quiche::h3::Connection::with_transport(&mut server, &h3_config).unwrap());
        }
        if let Some(h3) = ch3.as_mut() {
            while inflight < in_flight() && sent < requests {
                match h3.send_request(&mut client, &req, true) {
                    Ok(_) => {
                        sent += 1;
                        inflight += 1;
                    }
                    Err(_) => break,
                }
            }
            while let Ok((stream, ev)) = h3.poll(&mut client) {
                match ev {
                    quiche::h3::Event::Data => {
                        while h3.recv_body(&mut client, stream, &mut scratch).is_ok() {}
                    }
                    quiche::h3::Event::Finished => {
                        done += 1;
                        inflight -= 1;
                    }
                    quiche::h3::Event::Headers { list, .. } => assert_eq!(list[0].value(), b"200"),
                    _ => {}
                }
            }
        }
        deliver(
            &mut client,
            &mut server,
            (CLIENT, SERVER),
            &mut out,
            &mut wire,
        );
        if let Some(h3) = sh3.as_mut() {
            while let Ok((stream, ev)) = h3.poll(&mut server) {
                if let quiche::h3::Event::Headers { .. } = ev {
                    h3.send_response(&mut server, stream, &resp, false).unwrap();
                    h3.send_body(&mut server, stream, BODY, true).unwrap();
                }
            }
        }
        deliver(
            &mut server,
            &mut client,
            (SERVER, CLIENT),
            &mut out,
            &mut wire,
        );
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
    let packets = client.stats().sent + server.stats().sent;
    (cpu_time() - start, packets)
}

fn exchange<A: Application, B: Application>(
    from: &mut Connection<A>,
    to: &mut Connection<B>,
    addrs: (SocketAddr, SocketAddr),
    now: Instant,
) {
    while let Some(t) = from.poll_transmit(now, 64) {
        for d in t.datagrams() {
            to.handle_datagram(now, Datagram::new(BytesMut::from(d), addrs.0, addrs.1, now));
        }
    }
}

/// The server with a handler on quicksand's own `Service`.
fn native_server() -> ServerApplication {
    ServerApplication::with_service(Http3Settings::default(), |_req| async {
        http::Response::new(Body::from(Bytes::from_static(BODY)))
    })
}

/// The same handler as a `tower::Service`, through the tower bridge.
fn tower_server() -> ServerApplication {
    let service = tower::service_fn(|_req: http::Request<quicksand_h3::RecvBody>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
            Bytes::from_static(BODY),
        )))
    });
    ServerApplication::with_service(
        Http3Settings::default(),
        quicksand_h3::TowerService::new(service),
    )
}

/// CPU time and packets sent by both ends.
fn quicksand(requests: usize, server_driver: ServerApplication) -> (Duration, usize) {
    let (mut cc, mut sc) = configs();
    let now = Instant::now();
    let (client_driver, h3) = ClientApplication::new(Http3Settings::default());
    let mut client = Connection::connect(
        now,
        &mut cc,
        Some("localhost"),
        CLIENT,
        SERVER,
        ConnectionContext::default(),
        client_driver,
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
        server_driver,
    )
    .unwrap();
    // Handles and handlers wake their connection here (client: key 0, server: key 1).
    let woken = Arc::new(WokenConnections::default());
    client.set_wake(ConnectionWake::new(ConnectionKey(0), woken.clone()));
    server.set_wake(ConnectionWake::new(ConnectionKey(1), woken.clone()));
    let mut cx = Context::from_waker(Waker::noop());
    let mut pending = FuturesUnordered::new();
    let (mut sent, mut done) = (0usize, 0usize);
    let start = cpu_time();
    while done < requests {
        while pending.len() < in_flight() && sent < requests {
            let req = http::Request::get("https://localhost/")
                .body(Bytes::new())
                .unwrap();
            let fut = h3.request(req).unwrap();
            pending.push(async move {
                let mut resp = fut.await.unwrap();
                let body = resp.body_mut().collect(1 << 20).await.unwrap();
                assert_eq!(body.len(), BODY.len());
            });
            sent += 1;
        }
        while let Poll::Ready(Some(())) = pending.poll_next_unpin(&mut cx) {
            done += 1;
        }
        let now = Instant::now();
        for key in woken.take() {
            match key {
                ConnectionKey(0) => client.handle_wakeup(),
                _ => server.handle_wakeup(),
            }
        }
        exchange(&mut client, &mut server, (CLIENT, SERVER), now);
        exchange(&mut server, &mut client, (SERVER, CLIENT), now);
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        assert!(
            !client.is_closed() && !server.is_closed(),
            "quicksand connection closed"
        );
    }
    let packets = client.quiche().stats().sent + server.quiche().stats().sent;
    (cpu_time() - start, packets)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let requests: usize = std::env::var("QUICKSAND_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 100_000 } else { 2_000 });
    let rounds = if benching { 3 } else { 1 };
    let (mut raw, mut ours, mut bridged) = (Vec::new(), Vec::new(), Vec::new());
    // QUICKSAND_BENCH_ONLY=quiche|quicksand|tower runs one side alone (for a profiler).
    let only = std::env::var("QUICKSAND_BENCH_ONLY").unwrap_or_default();
    for _ in 0..rounds {
        if only.is_empty() || only == "quiche" {
            raw.push(raw_quiche(requests));
        }
        if only.is_empty() || only == "quicksand" {
            ours.push(quicksand(requests, native_server()));
        }
        if only.is_empty() || only == "tower" {
            bridged.push(quicksand(requests, tower_server()));
        }
    }
    let best = |v: &[(Duration, usize)]| v.iter().min().copied().unwrap_or_default();
    let ((r, raw_packets), (q, our_packets)) = (best(&raw), best(&ours));
    let (t, tower_packets) = best(&bridged);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
    let in_flight = in_flight();
    println!("{requests} requests, {in_flight} in flight, 100-byte responses, in memory, best of {rounds} (CPU time):");
    println!(
        "  quiche::h3 alone    {:>8.3} s  ({:.2} µs per request, {:.2} packets per request)",
        r.as_secs_f64(),
        per(r),
        raw_packets as f64 / requests as f64
    );
    println!(
        "  quicksand core+h3   {:>8.3} s  ({:.2} µs per request, {:.2} packets per request)",
        q.as_secs_f64(),
        per(q),
        our_packets as f64 / requests as f64
    );
    println!(
        "  quicksand + tower   {:>8.3} s  ({:.2} µs per request, {:.2} packets per request)",
        t.as_secs_f64(),
        per(t),
        tower_packets as f64 / requests as f64
    );
    println!(
        "  quicksand / quiche  {:>8.3}",
        q.as_secs_f64() / r.as_secs_f64()
    );
    println!(
        "  tower / native      {:>8.3}  (requests/s through the bridge: {:.3} of the native handler's)",
        t.as_secs_f64() / q.as_secs_f64(),
        q.as_secs_f64() / t.as_secs_f64()
    );
}
