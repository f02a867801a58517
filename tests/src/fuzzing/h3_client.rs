//! A hostile HTTP/3 server against the HTTP/3 client driver. A raw QUIC peer plays an
//! arbitrary sequence of actions — raw bytes on request streams (any HTTP/3 frames, any QPACK),
//! response heads (1xx, final, invalid statuses), DATA, trailers, unidirectional streams of any
//! type (control streams with arbitrary SETTINGS, GOAWAY and other frames, QPACK and push
//! streams, unknown types), resets, STOP_SENDING, datagrams — over the in-memory pair on
//! virtual time, while the client has up to six requests in flight (GETs, bodies sent whole or
//! streamed, extended CONNECT with a datagram flow, cancellations) whose responses it reads in
//! different ways. Then the server closes the connection, goes silent, or the client drops its
//! handle. The client must not panic, must close within bounded (virtual) time, may only hand
//! out final responses with at most `MAX_INFORMATIONAL` 1xx ones, and every request future,
//! body and body sender must have finished once the connection closed.
//!
//! Byte format (seeds: `fuzz/make_seeds.py`; reads past the end give zeros):
//!
//! ```text
//! streams:u8 end:u8 end_code:u16le   the server's bidi stream limit (>= 10: 100); end % 4:
//!                                     application close, transport close, silence, drop handle
//! count:u8, then count % 6 + 1 times kind:u8 arg:u8 read:u8         the requests
//! op:u8 fields..., until the input ends (at most 64)                  the actions; see `Act`
//! ```

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use quicksand_core::quiche::Shutdown;
use quicksand_core::{Application, ApplicationError, QuicConfig, QuicheConnection};
use quicksand_h3::{
    BodySender, ClientApplication, DatagramFlow, H3Client, Http3Settings, InformationalResponses,
    Priority, Protocol, RecvBody, ResponseFuture, MAX_INFORMATIONAL,
};

use super::reader::Reader;
use crate::clock::VirtualTime;
use crate::pair::Pair;

/// Actions played at most.
const MAX_ACTIONS: usize = 64;
/// The server starts acting when the first request arrives, or this long after the handshake.
const START_GRACE: Duration = Duration::from_millis(50);
/// Quiet time between the last action and the end.
const SETTLE: Duration = Duration::from_millis(20);
/// Virtual time within which the client connection must have closed: actions take at most
/// 64 × 256 ms, then an idle timeout of 30 s at the latest.
const CLOSE_LIMIT: Duration = Duration::from_secs(120);
/// Pair steps at one instant before we call it a livelock.
const MAX_SPINS: u32 = 10_000;

/// One server action. Stream selectors `s` pick one of the request streams the server has
/// seen (`s < 0xf0`), or the raw client stream id `(s & 0xf) * 4`, opened or not.
#[derive(Debug)]
enum Act {
    /// op 0 `s fin len bytes[len]`: raw bytes on a request stream.
    Stream { s: u8, fin: bool, bytes: Vec<u8> },
    /// op 1 `s flags status:u16le clen`: a HEADERS frame with `:status` (any number,
    /// printed as three digits) and, with flags bit 1, `content-length: clen`; flags bit 0: FIN.
    Head {
        s: u8,
        fin: bool,
        status: u16,
        content_length: Option<u8>,
    },
    /// op 2 `s fin len:u16le`: a DATA frame of `len` bytes.
    Data { s: u8, fin: bool, len: u16 },
    /// op 3 `s`: a trailer section (`x-trailer: 1`), then FIN.
    Trailers { s: u8 },
    /// op 4 `kind fin len bytes[len]`: a new unidirectional stream; type `UNI_TYPES[kind]`, or
    /// `kind` itself from 6 on.
    Uni { kind: u8, fin: bool, bytes: Vec<u8> },
    /// op 5 `which fin len bytes[len]`: more bytes on a unidirectional stream opened before.
    UniMore {
        which: u8,
        fin: bool,
        bytes: Vec<u8>,
    },
    /// op 6 `n (id value:u16le)*n`: a SETTINGS frame on the control stream (opened with it if
    /// needed); ids from `SETTING_IDS`, or the id itself from 8 on.
    Settings(Vec<(u8, u16)>),
    /// op 7 `id`: GOAWAY with stream id `id` on the control stream.
    Goaway(u8),
    /// op 8 `ty len bytes[len]`: a frame of type `CONTROL_FRAMES[ty]` (or `ty` itself from 10
    /// on) on the control stream.
    ControlFrame { ty: u8, payload: Vec<u8> },
    /// op 9 `s code:u16le`: RESET_STREAM on a request stream.
    Reset { s: u8, code: u16 },
    /// op 10 `s code:u16le`: STOP_SENDING on a request stream.
    StopSending { s: u8, code: u16 },
    /// op 11 `s len bytes[len]`: a QUIC datagram; with `s != 0xff`, prefixed with the quarter
    /// stream id of the selected request stream (an HTTP/3 datagram).
    Datagram { s: u8, bytes: Vec<u8> },
    /// op 12 `ms`: let `ms + 1` milliseconds pass before the next action.
    Wait(u8),
}

/// Unidirectional stream types: control, push, QPACK encoder, QPACK decoder, reserved, unknown.
const UNI_TYPES: [u64; 6] = [0x00, 0x01, 0x02, 0x03, 0x21, 0x54];
/// SETTINGS ids: QPACK table capacity, max field section size, QPACK blocked streams, extended
/// CONNECT, H3 datagrams, an HTTP/2-only id (an error), reserved, unknown.
const SETTING_IDS: [u64; 8] = [0x01, 0x06, 0x07, 0x08, 0x33, 0x02, 0x21, 0x0d];
/// Control stream frame types: CANCEL_PUSH, GOAWAY, MAX_PUSH_ID, PRIORITY_UPDATE (request,
/// push), and types not allowed there: DATA, HEADERS, PUSH_PROMISE, reserved, SETTINGS.
const CONTROL_FRAMES: [u64; 10] = [
    0x03, 0x07, 0x0d, 0xf0700, 0xf0701, 0x00, 0x01, 0x05, 0x21, 0x04,
];

impl Act {
    fn parse(r: &mut Reader<'_>) -> Act {
        let op = r.u8() % 13;
        let s = r.u8();
        match op {
            0 => {
                let fin = r.u8() & 1 == 1;
                let len = r.u8() as usize;
                let bytes = r.bytes(len).to_vec();
                Act::Stream { s, fin, bytes }
            }
            1 => {
                let flags = r.u8();
                let status = r.u16();
                let clen = r.u8();
                Act::Head {
                    s,
                    fin: flags & 1 == 1,
                    status,
                    content_length: (flags & 2 == 2).then_some(clen),
                }
            }
            2 => {
                let fin = r.u8() & 1 == 1;
                let len = r.u16();
                Act::Data { s, fin, len }
            }
            3 => Act::Trailers { s },
            4 | 5 => {
                let fin = r.u8() & 1 == 1;
                let len = r.u8() as usize;
                let bytes = r.bytes(len).to_vec();
                if op == 4 {
                    Act::Uni {
                        kind: s,
                        fin,
                        bytes,
                    }
                } else {
                    Act::UniMore {
                        which: s,
                        fin,
                        bytes,
                    }
                }
            }
            6 => Act::Settings((0..s % 8).map(|_| (r.u8(), r.u16())).collect()),
            7 => Act::Goaway(s),
            8 => {
                let len = r.u8() as usize;
                let payload = r.bytes(len).to_vec();
                Act::ControlFrame { ty: s, payload }
            }
            9 => Act::Reset { s, code: r.u16() },
            10 => Act::StopSending { s, code: r.u16() },
            11 => {
                let len = r.u8() as usize;
                let bytes = r.bytes(len).to_vec();
                Act::Datagram { s, bytes }
            }
            _ => Act::Wait(s),
        }
    }
}

/// How the connection ends once every action was played.
#[derive(Clone, Copy, Debug)]
enum End {
    AppClose(u64),
    TransportClose(u64),
    /// The server says nothing more: the idle timeout ends it.
    Silence,
    /// The client application drops its `H3Client`: the driver closes once no request is left.
    DropHandle,
}

/// QUIC variable-length integer (values up to 2^62 - 1).
fn varint(v: u64, out: &mut Vec<u8>) {
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend((0x4000 | v as u16).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend((0x8000_0000 | v as u32).to_be_bytes());
    } else {
        out.extend((0xc000_0000_0000_0000 | (v & ((1 << 62) - 1))).to_be_bytes());
    }
}

fn frame(ty: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    varint(ty, &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// An HPACK/QPACK prefix integer (RFC 7541 §5.1) with `bits` of prefix after `first`'s flags.
fn prefix_int(v: usize, bits: u8, first: u8, out: &mut Vec<u8>) {
    let max = (1usize << bits) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    let mut v = v - max;
    while v >= 0x80 {
        out.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A HEADERS frame: a QPACK field section without the dynamic table, every field a literal
/// with a literal name (RFC 9204 §4.5.6). Also used by `h3_server`'s well-formed requests.
pub(super) fn headers_frame(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = vec![0x00, 0x00];
    for (name, value) in fields {
        prefix_int(name.len(), 3, 0x20, &mut block);
        block.extend_from_slice(name.as_bytes());
        prefix_int(value.len(), 7, 0x00, &mut block);
        block.extend_from_slice(value.as_bytes());
    }
    frame(0x01, &block)
}

/// H3 error codes for small values, so resets carry meaningful codes as often as not.
fn error_code(code: u16) -> u64 {
    if code < 0x20 {
        0x100 + u64::from(code)
    } else {
        u64::from(code)
    }
}

/// The hostile server: a raw QUIC application that reads and discards everything and plays
/// its actions.
struct Server {
    actions: VecDeque<Act>,
    end: End,
    established: Option<Instant>,
    /// Client-initiated bidirectional streams seen, in order.
    requests: Vec<u64>,
    /// Our unidirectional streams, in order.
    uni: Vec<u64>,
    control: Option<u64>,
    resume_at: Option<Instant>,
    settled: bool,
    /// Every action was played and the end applied.
    done: bool,
}

impl Server {
    fn stream(&self, s: u8) -> u64 {
        if s >= 0xf0 || self.requests.is_empty() {
            u64::from(s & 0x0f) * 4
        } else {
            self.requests[s as usize % self.requests.len()]
        }
    }

    fn open_uni(&mut self, conn: &mut QuicheConnection, ty: u64, bytes: &[u8], fin: bool) -> u64 {
        let id = 3 + 4 * self.uni.len() as u64;
        self.uni.push(id);
        let mut data = Vec::with_capacity(bytes.len() + 8);
        varint(ty, &mut data);
        data.extend_from_slice(bytes);
        let _ = conn.stream_send(id, &data, fin);
        id
    }

    /// Sends `bytes` on the control stream, opening it (type byte only) if needed.
    fn on_control(&mut self, conn: &mut QuicheConnection, bytes: &[u8]) {
        match self.control {
            Some(id) => {
                let _ = conn.stream_send(id, bytes, false);
            }
            None => self.control = Some(self.open_uni(conn, 0x00, bytes, false)),
        }
    }

    fn act(&mut self, conn: &mut QuicheConnection, act: Act) {
        match act {
            Act::Stream { s, fin, bytes } => {
                let _ = conn.stream_send(self.stream(s), &bytes, fin);
            }
            Act::Head {
                s,
                fin,
                status,
                content_length,
            } => {
                let status = format!("{:03}", status % 1000);
                let clen = content_length.map(|n| n.to_string());
                let mut fields = vec![(":status", status.as_str())];
                if let Some(n) = &clen {
                    fields.push(("content-length", n.as_str()));
                }
                let _ = conn.stream_send(self.stream(s), &headers_frame(&fields), fin);
            }
            Act::Data { s, fin, len } => {
                let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let _ = conn.stream_send(self.stream(s), &frame(0x00, &body), fin);
            }
            Act::Trailers { s } => {
                let _ =
                    conn.stream_send(self.stream(s), &headers_frame(&[("x-trailer", "1")]), true);
            }
            Act::Uni { kind, fin, bytes } => {
                let ty = UNI_TYPES.get(kind as usize).copied().unwrap_or(kind.into());
                self.open_uni(conn, ty, &bytes, fin);
            }
            Act::UniMore { which, fin, bytes } => {
                if !self.uni.is_empty() {
                    let id = self.uni[which as usize % self.uni.len()];
                    let _ = conn.stream_send(id, &bytes, fin);
                }
            }
            Act::Settings(pairs) => {
                let mut payload = Vec::new();
                for (id, value) in pairs {
                    varint(
                        SETTING_IDS.get(id as usize).copied().unwrap_or(id.into()),
                        &mut payload,
                    );
                    varint(value.into(), &mut payload);
                }
                self.on_control(conn, &frame(0x04, &payload));
            }
            Act::Goaway(id) => {
                let mut payload = Vec::new();
                varint(id.into(), &mut payload);
                self.on_control(conn, &frame(0x07, &payload));
            }
            Act::ControlFrame { ty, payload } => {
                let ty = CONTROL_FRAMES
                    .get(ty as usize)
                    .copied()
                    .unwrap_or(ty.into());
                self.on_control(conn, &frame(ty, &payload));
            }
            Act::Reset { s, code } => {
                let _ = conn.stream_shutdown(self.stream(s), Shutdown::Write, error_code(code));
            }
            Act::StopSending { s, code } => {
                let _ = conn.stream_shutdown(self.stream(s), Shutdown::Read, error_code(code));
            }
            Act::Datagram { s, bytes } => {
                let mut data = Vec::with_capacity(bytes.len() + 8);
                if s != 0xff {
                    varint(self.stream(s) / 4, &mut data);
                }
                data.extend_from_slice(&bytes);
                let _ = conn.dgram_send(&data);
            }
            Act::Wait(_) => unreachable!("waits are handled by process_writes"),
        }
    }
}

impl Application for Server {
    fn on_established(
        &mut self,
        _: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        self.established = Some(now);
        Ok(())
    }

    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        let mut buf = [0u8; 4096];
        let readable: Vec<u64> = conn.readable().collect();
        for s in readable {
            if s % 4 == 0 && !self.requests.contains(&s) {
                self.requests.push(s);
            }
            while conn.stream_recv(s, &mut buf).is_ok() {}
        }
        while conn.dgram_recv(&mut buf).is_ok() {}
        Ok(())
    }

    fn process_writes(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        let Some(established) = self.established else {
            return Ok(());
        };
        if self.done {
            return Ok(());
        }
        if self.requests.is_empty() && now < established + START_GRACE {
            self.resume_at = Some(established + START_GRACE);
            return Ok(());
        }
        if self.resume_at.is_some_and(|t| now < t) {
            return Ok(());
        }
        self.resume_at = None;
        while let Some(act) = self.actions.pop_front() {
            if let Act::Wait(ms) = act {
                self.resume_at = Some(now + Duration::from_millis(u64::from(ms) + 1));
                return Ok(());
            }
            self.act(conn, act);
        }
        if !self.settled {
            self.settled = true;
            self.resume_at = Some(now + SETTLE);
            return Ok(());
        }
        self.done = true;
        match self.end {
            End::AppClose(code) => {
                let _ = conn.close(true, code, b"fuzz");
            }
            End::TransportClose(code) => {
                let _ = conn.close(false, code, b"fuzz");
            }
            End::Silence | End::DropHandle => {}
        }
        Ok(())
    }

    fn poll_deadline(&self) -> Option<Instant> {
        self.resume_at.filter(|_| !self.done)
    }
}

/// The client and server configs, built once per process and lent to each input: building
/// one parses the system's CA bundle, which took most of an input's time.
static CONFIGS: Mutex<Option<(QuicConfig, QuicConfig)>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking input (a finding) leaves the configs out; the next one builds them anew.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// What every response the client hands out must satisfy.
fn check_response(resp: &Response<RecvBody>) {
    assert!(
        resp.status().as_u16() >= 200,
        "a 1xx handed out as the final response: {}",
        resp.status()
    );
    if let Some(info) = resp.extensions().get::<InformationalResponses>() {
        assert!(
            info.0.len() <= MAX_INFORMATIONAL,
            "{} 1xx kept",
            info.0.len()
        );
        assert!(info.0.iter().all(|r| r.status().is_informational()));
    }
}

/// Reads a response body: `mode % 4` is read all then the trailers, collect at most 100
/// bytes, drop at once, or hold it unread until the connection closed and then read all.
async fn read_body(mut body: RecvBody, mode: u8, closed: Rc<Cell<bool>>) {
    match mode % 4 {
        1 => {
            let _ = body.collect(100).await;
            return;
        }
        2 => return,
        3 => {
            poll_fn(|_| {
                if closed.get() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await
        }
        _ => {}
    }
    while let Some(chunk) = body.data().await {
        if chunk.is_err() {
            break;
        }
    }
    let _ = body.trailers().await;
}

/// Awaits a response, checks it and reads it; `keep` (a CONNECT's request body) lives until
/// the end, since dropping it would reset the stream.
async fn respond(fut: ResponseFuture, mode: u8, closed: Rc<Cell<bool>>, keep: Option<BodySender>) {
    let Ok(mut resp) = fut.await else {
        return;
    };
    check_response(&resp);
    let flow = resp.extensions_mut().remove::<DatagramFlow>();
    read_body(resp.into_body(), mode, closed).await;
    if let Some(flow) = flow {
        let _ = flow.send(Bytes::from_static(b"fuzz"));
        for _ in 0..8 {
            if flow.recv().await.is_none() {
                break;
            }
        }
    }
    drop(keep);
}

/// Streams a request body: `arg % 8` chunks of 1000 bytes, then by `(arg >> 3) % 4` FIN,
/// trailers, a reset, or dropping the sender.
async fn send_body(mut sender: BodySender, arg: u8) {
    for i in 0..arg % 8 {
        if sender.send_data(Bytes::from(vec![i; 1000])).await.is_err() {
            return;
        }
    }
    match (arg >> 3) % 4 {
        0 => {
            let _ = sender.finish();
        }
        1 => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-done", http::HeaderValue::from_static("1"));
            let _ = sender.send_trailers(trailers);
        }
        2 => sender.reset(0x10c),
        _ => drop(sender),
    }
}

/// Queues request `i` of kind `kind % 5` (GET, POST with a whole body of `arg * 257` bytes,
/// POST with a streamed body, extended CONNECT, GET cancelled after `arg % 32` polls) and
/// adds the tasks that drive it. `read` picks how the response body is read (`read_body`) and,
/// with bit 4, changes the request's priority.
fn start_request(
    client: &H3Client,
    i: usize,
    (kind, arg, read): (u8, u8, u8),
    closed: &Rc<Cell<bool>>,
    tasks: &mut Vec<Task>,
) {
    let uri = format!("https://localhost/{i}");
    let closed = closed.clone();
    let prioritize = |fut: &ResponseFuture| {
        if read & 0x10 != 0 {
            fut.set_priority(Priority {
                urgency: arg % 8,
                incremental: arg & 8 != 0,
            });
        }
    };
    match kind % 5 {
        0 | 1 => {
            let body = if kind % 5 == 0 {
                Bytes::new()
            } else {
                Bytes::from(vec![7u8; usize::from(arg) * 257])
            };
            let method = if body.is_empty() {
                Method::GET
            } else {
                Method::POST
            };
            let req = Request::builder().method(method).uri(uri).body(body);
            if let Ok(fut) = client.request(req.expect("a valid request")) {
                prioritize(&fut);
                tasks.push(Box::pin(respond(fut, read, closed, None)));
            }
        }
        2 => {
            let req = Request::post(uri).body(()).expect("a valid request");
            if let Ok((sender, fut)) = client.send_request(req) {
                prioritize(&fut);
                tasks.push(Box::pin(send_body(sender, arg)));
                tasks.push(Box::pin(respond(fut, read, closed, None)));
            }
        }
        3 => {
            let mut req = Request::builder()
                .method(Method::CONNECT)
                .uri("https://localhost/.well-known/masque/udp/192.0.2.1/443/")
                .body(())
                .expect("a valid request");
            req.extensions_mut()
                .insert(Protocol("connect-udp".to_string()));
            if let Ok((sender, fut)) = client.send_request(req) {
                tasks.push(Box::pin(respond(fut, read, closed, Some(sender))));
            }
        }
        _ => {
            let req = Request::get(uri)
                .body(Bytes::new())
                .expect("a valid request");
            if let Ok(mut fut) = client.request(req) {
                prioritize(&fut);
                let mut polls = arg % 32;
                tasks.push(Box::pin(poll_fn(move |cx| {
                    if polls == 0 {
                        // Dropping the future here cancels the request.
                        return Poll::Ready(());
                    }
                    polls -= 1;
                    match Pin::new(&mut fut).poll(cx) {
                        Poll::Ready(Ok(resp)) => {
                            check_response(&resp);
                            Poll::Ready(())
                        }
                        Poll::Ready(Err(_)) => Poll::Ready(()),
                        Poll::Pending => Poll::Pending,
                    }
                })));
            }
        }
    }
}

/// Polls every task once; keeps those still pending.
fn poll_tasks(tasks: &mut Vec<Task>) {
    let mut cx = Context::from_waker(Waker::noop());
    tasks.retain_mut(|t| t.as_mut().poll(&mut cx).is_pending());
}

/// See the module docs.
pub fn h3_client(data: &[u8]) {
    let mut r = Reader::new(data);
    let streams = match r.u8() {
        n @ 0..10 => u64::from(n),
        _ => 100,
    };
    let end_kind = r.u8();
    let end_code = r.u16();
    let end = match end_kind % 4 {
        0 => End::AppClose(u64::from(end_code)),
        1 => End::TransportClose(u64::from(end_code % 0x11)),
        2 => End::Silence,
        _ => End::DropHandle,
    };
    let count = usize::from(r.u8() % 6) + 1;
    let requests: Vec<(u8, u8, u8)> = (0..count).map(|_| (r.u8(), r.u8(), r.u8())).collect();
    let mut actions = VecDeque::new();
    while !r.is_empty() && actions.len() < MAX_ACTIONS {
        actions.push_back(Act::parse(&mut r));
    }

    let clock = VirtualTime::enter();
    let (mut client_config, mut server_config) = lock(&CONFIGS).take().unwrap_or_else(|| {
        // On a thread of its own, so that building takes nothing from this thread's seeded
        // entropy: an input then runs the same whether the configs were cached or not.
        std::thread::scope(|s| {
            s.spawn(|| super::h3_configs(crate::h3::quic_settings(), crate::h3::quic_settings()))
                .join()
                .expect("configs")
        })
    });
    server_config
        .quiche_config_mut()
        .set_initial_max_streams_bidi(streams);
    // Small buffers, so bodies that are held unread reach the caps.
    let h3 = Http3Settings {
        enable_datagrams: true,
        stream_buffer_size: 8 * 1024,
        connection_buffer_size: 32 * 1024,
        ..Http3Settings::default()
    };
    let (driver, client) = ClientApplication::new(h3);
    let server = Server {
        actions,
        end,
        established: None,
        requests: Vec::new(),
        uni: Vec::new(),
        control: None,
        resume_at: None,
        settled: false,
        done: false,
    };
    let mut pair = Pair::new(
        &mut client_config,
        server_config,
        driver,
        server,
        Duration::from_millis(2),
    )
    .expect("client connection");

    let closed = Rc::new(Cell::new(false));
    let mut tasks: Vec<Task> = Vec::new();
    for (i, spec) in requests.into_iter().enumerate() {
        start_request(&client, i, spec, &closed, &mut tasks);
    }
    let mut client = Some(client);

    let deadline = Instant::now() + CLOSE_LIMIT;
    let mut spins = 0u32;
    loop {
        pair.step().expect("server connection");
        poll_tasks(&mut tasks);
        if pair.client.is_closed() {
            break;
        }
        let server_done = pair.server.as_ref().is_some_and(|s| s.application().done);
        if server_done && matches!(end, End::DropHandle) && client.take().is_some() {
            continue;
        }
        let now = Instant::now();
        let next = pair
            .next_wakeup()
            .expect("an open connection always has a timer");
        assert!(
            next <= deadline,
            "the client connection is still open after {CLOSE_LIMIT:?} of virtual time"
        );
        if next <= now {
            spins += 1;
            assert!(spins < MAX_SPINS, "no progress at one instant: livelock");
        } else {
            spins = 0;
            clock.advance_to(next);
        }
    }

    // Every request must have an outcome now; held bodies are read after the close.
    closed.set(true);
    for _ in 0..4 {
        poll_tasks(&mut tasks);
    }
    assert!(
        tasks.is_empty(),
        "{} request tasks still pending after the connection closed",
        tasks.len()
    );
    assert!(pair.client.application().close_reason().is_some());
    drop(client);
    *lock(&CONFIGS) = Some((client_config, pair.into_server_config()));
}
