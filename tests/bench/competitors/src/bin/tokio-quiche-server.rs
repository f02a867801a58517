//! HTTP/3 server on Cloudflare's `tokio-quiche` (0.20), serving the same route as
//! quicksand's bench servers, so that tests/bench can compare the two on loopback.
//!
//!   tokio-quiche-server --listen ADDR --cert FILE --key FILE [--no-retry]
//!
//! `GET /bytes/N` answers 200 with N bytes, byte i being `(i % 251) as u8`, streamed in
//! 64 KiB chunks; anything else answers 404. Prints `ready ADDR` once listening.
//!
//! Built with tokio-quiche's own server API, as in its README and
//! examples/async_http3_server: `listen` -> `InitialQuicConnection::start(ServerH3Driver)`
//! -> `ServerH3Event`s on the `ServerH3Controller`, responses as `OutboundFrame`s.
//!
//! Everything else is tokio-quiche's defaults. The ones that matter for throughput
//! (tokio-quiche 0.20.1, src/settings/quic.rs, src/lib.rs, src/quic/io/worker.rs):
//! - `listen` calls `QuicListener::apply_max_capabilities` on Linux: UDP_SEGMENT (GSO),
//!   UDP_GRO, SO_TXTIME, SO_RXQ_OVFL, and so on, whichever the kernel accepts. The
//!   worker gathers up to 64 KiB (at most 64 segments) per sendmsg, bounded by quiche's
//!   send quantum.
//! - Congestion control `cubic` with HyStart++, initial window 10 packets; quiche's own
//!   recovery (the `gcongestion` feature, off here, would swap in google/quiche's).
//! - Pacing off (`enable_pacing: false`), so no SO_TXTIME release times are used.
//! - UDP payload 1350 bytes each way; path MTU discovery off.
//! - Receive flow control (what the server grants; a download is bound by the client's):
//!   initial_max_data 10 MB, initial_max_stream_data 1 MB, auto-tuned up to 24 MiB
//!   (connection) and 16 MiB (stream); 100 bidi streams.
//! - The H3 driver buffers at most 16 frames per stream (release builds), i.e. ~1 MiB of
//!   64 KiB chunks, before `send` waits; bodies go to quiche as `Bytes` without a copy
//!   (`send_body_zc`), so slices of the shared pattern below are never copied until
//!   packetization.
//! - Runtime: tokio's multi-threaded runtime, one worker per core; one listener socket.

use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio_quiche::buf_factory::BufFactory;
use tokio_quiche::http3::driver::{IncomingH3Headers, OutboundFrame, ServerH3Event};
use tokio_quiche::http3::settings::Http3Settings;
use tokio_quiche::metrics::DefaultMetrics;
use tokio_quiche::quiche::h3::{Header, NameValue};
use tokio_quiche::settings::{CertificateKind, Hooks, QuicSettings, TlsCertificatePaths};
use tokio_quiche::{ConnectionParams, ServerH3Controller, ServerH3Driver};

/// Body chunk size: tokio-quiche's own buffer size (64 KiB), as its example uses.
const CHUNK: usize = BufFactory::MAX_BUF_SIZE;
/// A multiple of 251 with room for a full chunk starting at any offset below 251.
const PATTERN_LEN: usize = 251 * (CHUNK / 251 + 2);

const USAGE: &str = "usage: tokio-quiche-server --listen ADDR --cert FILE --key FILE [--no-retry]";

struct Args {
    listen: SocketAddr,
    cert: String,
    key: String,
    retry: bool,
}

fn parse_args() -> Result<Args, String> {
    let (mut listen, mut cert, mut key, mut retry) = (None, None, None, true);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => {
                let addr = it.next().ok_or("--listen needs ADDR")?;
                listen = Some(
                    addr.parse::<SocketAddr>()
                        .map_err(|e| format!("--listen {addr}: {e}"))?,
                );
            }
            "--cert" => cert = Some(it.next().ok_or("--cert needs FILE")?),
            "--key" => key = Some(it.next().ok_or("--key needs FILE")?),
            "--no-retry" => retry = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen ADDR is required")?,
        cert: cert.ok_or("--cert FILE is required")?,
        key: key.ok_or("--key FILE is required")?,
        retry,
    })
}

#[tokio::main]
async fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("tokio-quiche-server: {e}\n{USAGE}");
        std::process::exit(2);
    });

    let socket = tokio::net::UdpSocket::bind(args.listen)
        .await
        .expect("bind the UDP socket");
    let local = socket.local_addr().expect("local address");

    let mut settings = QuicSettings::default();
    // RETRY: tokio-quiche validates client addresses with a stateless RETRY by default
    // (`disable_client_ip_validation: false`; src/quic/router/acceptor.rs answers a
    // tokenless Initial with `quiche::retry`, the token an HMAC-SHA256 over the client IP
    // and original DCID under a random per-listener key). `--no-retry` turns it off, so
    // the first Initial starts the handshake at once.
    settings.disable_client_ip_validation = !args.retry;
    let params = ConnectionParams::new_server(
        settings,
        TlsCertificatePaths {
            cert: &args.cert,
            private_key: &args.key,
            kind: CertificateKind::X509,
        },
        Hooks::default(),
    );
    // One listener task per socket; the cert and key are loaded here (errors surface now).
    let mut listeners = tokio_quiche::listen([socket], params, DefaultMetrics).expect("listen");
    let mut accepted = listeners.remove(0);

    println!("ready {local}");
    let _ = std::io::stdout().flush();

    // Byte i of the pattern is i % 251: chunk at body offset o is pattern[o % 251..][..len].
    let pattern = Bytes::from(
        (0..PATTERN_LEN)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );

    while let Some(conn) = accepted.next().await {
        let conn = match conn {
            Ok(conn) => conn,
            // Errors on this stream are about one client's Initials, not the listener.
            Err(e) => {
                eprintln!("tokio-quiche-server: rejected connection: {e}");
                continue;
            }
        };
        let (driver, controller) = ServerH3Driver::new(Http3Settings::default());
        // Spawns the handshake and the connection's IO worker; the returned
        // QuicConnection is only metadata.
        let _ = conn.start(driver);
        tokio::spawn(serve_connection(controller, pattern.clone()));
    }
}

/// Reads the connection's events until the driver goes away; each request gets a task.
async fn serve_connection(mut controller: ServerH3Controller, pattern: Bytes) {
    while let Some(event) = controller.event_receiver_mut().recv().await {
        // A server sees requests as `Headers`; the `Core` events (settings, resets,
        // stream closes, shutdown) need no action here.
        if let ServerH3Event::Headers {
            incoming_headers, ..
        } = event
        {
            tokio::spawn(respond(incoming_headers, pattern.clone()));
        }
    }
}

/// `GET /bytes/N` -> 200 with N pattern bytes; anything else -> 404 with no body.
async fn respond(request: IncomingH3Headers, pattern: Bytes) {
    let IncomingH3Headers {
        headers,
        mut send,
        recv,
        ..
    } = request;
    // Kept until the response is done: dropping the request-body receiver before the
    // driver has delivered its FIN makes the driver send STOP_SENDING.
    let _recv = recv;

    let mut method: &[u8] = b"";
    let mut path: &[u8] = b"";
    for h in &headers {
        match h.name() {
            b":method" => method = h.value(),
            b":path" => path = h.value(),
            _ => {}
        }
    }
    let len = if method == b"GET" {
        parse_len(path)
    } else {
        None
    };

    let status: &[u8] = if len.is_some() { b"200" } else { b"404" };
    let mut response = vec![Header::new(b":status", status)];
    if let Some(n) = len {
        response.push(Header::new(b"content-length", n.to_string().as_bytes()));
    }
    if send
        .send(OutboundFrame::Headers(response, None))
        .await
        .is_err()
    {
        return; // stream or connection gone
    }

    // Each chunk is a refcounted slice of `pattern`; the last one carries FIN (an empty
    // body is a single empty FIN frame). `send` waits while the stream's channel is full.
    let n = len.unwrap_or(0);
    let mut offset = 0u64;
    loop {
        let size = (n - offset).min(CHUNK as u64) as usize;
        let start = (offset % 251) as usize;
        offset += size as u64;
        let fin = offset == n;
        let chunk = pattern.slice(start..start + size);
        if send.send(OutboundFrame::Body(chunk, fin)).await.is_err() || fin {
            return;
        }
    }
}

/// N from `/bytes/N` (decimal digits only, no query), or None.
fn parse_len(path: &[u8]) -> Option<u64> {
    let digits = path.strip_prefix(b"/bytes/")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
