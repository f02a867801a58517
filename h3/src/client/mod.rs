//! The HTTP/3 client: [`ClientApplication`], an [`Application`] that sends the requests queued
//! through its [`H3Client`] handle.
//!
//! ```text
//! let (application, client) = ClientApplication::new(Http3Settings::default());
//! // give `application` to Connection::connect; then, from any task:
//! let response = client.get("https://example.com/").await?;
//! ```
//!
//! Requests wait in a queue until the connection is established, the peer's stream limit
//! allows another stream (quiche's MAX_STREAMS handling wakes the application, no polling), and —
//! for extended CONNECT — the peer's SETTINGS arrived.

mod handle;

pub use handle::{H3Client, InformationalResponses, ResponseFuture};

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use quiche::h3;
use quicksand_core::QuicheConnection;
use quicksand_core::{Application, ApplicationError, CloseReason};

use crate::datagram::Flows;
use crate::error::{ErrorCode, RequestError, StreamError};
use crate::headers::{self, HeaderError};
use crate::server::h3_error;
use crate::shared::{ConnShared, NewRequest, Op, Outgoing, StreamOp};
use crate::streams::{Entry, IdMap, RecvHalf, SendHalf, Streams};
use crate::{H3Stats, Http3Settings};

/// SETTINGS_MAX_FIELD_SECTION_SIZE.
const SETTINGS_MAX_FIELD_SECTION_SIZE: u64 = 0x6;

/// 1xx responses kept per request (`InformationalResponses`); one more fails the request
/// with `HeaderError::TooManyInformational` and resets the stream (H3_EXCESSIVE_LOAD).
pub const MAX_INFORMATIONAL: usize = 16;

/// The client side of HTTP/3 on one connection.
///
/// Call order (done by the core's `Connection`): `on_established` creates the HTTP/3
/// connection; `process_reads` turns quiche's events into response heads, body chunks and
/// resets; `process_writes` opens streams for queued requests and writes request bodies;
/// `set_wake` gives it the way handles wake the connection.
pub struct ClientApplication {
    settings: Http3Settings,
    h3: Option<h3::Connection>,
    conn: Arc<ConnShared>,
    queue: Arc<handle::Queue>,
    streams: Streams,
    /// Requests waiting for a stream, by key, and their keys in arrival order.
    waiting: IdMap<Waiting>,
    waiting_order: VecDeque<u64>,
    /// The stream id of each request that has one, by key.
    ids: IdMap<u64>,
    flows: Flows,
    goaway: Option<u64>,
    sent: u64,
    close_reason: Option<CloseReason>,
}

impl std::fmt::Debug for ClientApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientApplication")
            .field("sent", &self.sent)
            .field("in_flight", &self.streams.map.len())
            .finish_non_exhaustive()
    }
}

impl ClientApplication {
    /// An application and the handle that sends requests through it.
    pub fn new(settings: Http3Settings) -> (ClientApplication, H3Client) {
        let conn = Arc::new(ConnShared::default());
        let queue = Arc::new(handle::Queue::default());
        let client = H3Client::new(
            queue.clone(),
            conn.clone(),
            settings.stream_buffer_size,
            settings.connection_buffer_size,
        );
        let app = ClientApplication {
            flows: Flows::new(settings.datagram_queue_len, settings.datagram_queue_bytes),
            settings,
            h3: None,
            conn,
            queue,
            streams: Streams::default(),
            waiting: IdMap::default(),
            waiting_order: VecDeque::new(),
            ids: IdMap::default(),
            goaway: None,
            sent: 0,
            close_reason: None,
        };
        (app, client)
    }

    /// Counters and buffer high-water marks.
    pub fn stats(&self) -> H3Stats {
        H3Stats {
            requests: self.sent,
            in_flight: self.streams.map.len(),
            recv_buffer_high_water: self.streams.recv_high_water,
            send_buffer_high_water: self.streams.send_high_water,
            datagrams_dropped: self.flows.dropped,
            goaway_received: self.goaway.is_some(),
            ..H3Stats::default()
        }
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close_reason.as_ref()
    }

    /// Applies what handles asked, in order: new requests join the waiting line, ops on a
    /// waiting request change what it will send, the rest go to the stream table.
    fn apply_ops(&mut self, conn: &mut QuicheConnection) {
        while let Some(StreamOp { key, op }) = self.conn.pop() {
            if let Op::Request(request) = op {
                self.waiting_order.push_back(key);
                self.waiting.insert(key, Waiting::new(*request));
            } else if let Some(w) = self.waiting.get_mut(&key) {
                if w.apply(op) {
                    self.waiting.remove(&key);
                }
            } else if let (Some(&id), Some(h3)) = (self.ids.get(&key), self.h3.as_mut()) {
                self.streams.apply(h3, conn, id, op);
            }
        }
    }

    /// Opens streams for waiting requests while the peer's stream limit allows.
    fn send_pending(&mut self, conn: &mut QuicheConnection) {
        while let Some(&key) = self.waiting_order.front() {
            let Some(w) = self.waiting.get(&key) else {
                // Cancelled while it waited.
                self.waiting_order.pop_front();
                continue;
            };
            let Some(h3) = self.h3.as_mut() else {
                return;
            };
            match try_open(h3, conn, &w.request, self.goaway.is_some()) {
                Opening::Wait => break,
                Opening::Refused(e) => self.take_waiting(key).request.slot.fail_with(e),
                Opening::Failed(e) => {
                    let slot = self.take_waiting(key).request.slot;
                    slot.fail(StreamError::Protocol(e));
                }
                Opening::Opened(id) => {
                    let w = self.take_waiting(key);
                    self.sent += 1;
                    self.open(conn, id, w);
                }
            }
        }
    }

    /// Removes the request at the front of the waiting line.
    fn take_waiting(&mut self, key: u64) -> Waiting {
        self.waiting_order.pop_front();
        self.waiting.remove(&key).expect("the front request waits")
    }

    /// Enters a request whose HEADERS went out on stream `id` into the table, with what its
    /// handles asked while it waited.
    fn open(&mut self, conn: &mut QuicheConnection, id: u64, w: Waiting) {
        let Waiting {
            request,
            queue,
            reset,
            priority,
        } = w;
        let slot = request.slot;
        slot.set_id(id);
        let send = match reset {
            Some(code) => {
                // The body was abandoned before the stream opened; the sender knows.
                let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code);
                SendHalf::Failed
            }
            None if request.end_stream => SendHalf::Finished,
            None => SendHalf::Open {
                queue,
                head_sent: true,
            },
        };
        let mut entry = Entry::new(slot.clone(), RecvHalf::AwaitingHead, send);
        // Our own sending (the request body) follows the request's priority too.
        if let Some(p) = crate::Priority::from_fields(&request.fields) {
            entry.prioritize(conn, id, p);
        }
        if request.extended_connect && self.settings.enable_datagrams {
            slot.received().flow = Some(self.flows.open(id, &self.conn));
        }
        self.ids.insert(slot.key, id);
        self.streams.insert(id, entry);
        if let (Some(p), Some(h3)) = (priority, self.h3.as_mut()) {
            self.streams.apply(h3, conn, id, Op::Priority(p));
        }
    }

    fn on_headers(&mut self, conn: &mut QuicheConnection, id: u64, list: &[h3::Header]) {
        let Some(entry) = self.streams.map.get_mut(&id) else {
            return;
        };
        if entry.recv != RecvHalf::AwaitingHead {
            if self.streams.on_trailers(id, list).is_err() {
                let code = ErrorCode::MessageError.code();
                let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
                self.streams.on_reset(id, code);
            }
            return;
        }
        match headers::parse_response(list) {
            Ok(resp) if resp.status().is_informational() => {
                let mut received = entry.slot.received();
                if received.informational.len() < MAX_INFORMATIONAL {
                    received.informational.push(resp);
                    return;
                }
                // A server that never gets to its final response: stop it before the list
                // grows without bound.
                drop(received);
                let e = HeaderError::TooManyInformational(MAX_INFORMATIONAL);
                refuse(conn, id, entry, ErrorCode::ExcessiveLoad, e);
            }
            Ok(resp) => {
                entry.recv = RecvHalf::Reading;
                let mut received = entry.slot.received();
                received.head = Some(Ok(resp));
                if let Some(w) = received.head_waker.take() {
                    w.wake();
                }
            }
            Err(e) => refuse(conn, id, entry, ErrorCode::MessageError, e),
        }
    }

    fn on_goaway(&mut self, id: u64) {
        self.goaway = Some(self.goaway.map_or(id, |g| g.min(id)));
        self.queue.goaway.store(true, Ordering::Release);
        // Requests at or above the id were not processed and never will be.
        for (sid, e) in self.streams.map.iter_mut() {
            if *sid >= id {
                e.recv = RecvHalf::Done;
                e.send = SendHalf::Failed;
                e.slot.fail_with(RequestError::GoAway);
            }
        }
    }

    /// The server ended its half of a request stream. Without a final response before it,
    /// the response is malformed (RFC 9114 §4.1.2): fail the request and stop sending. Else
    /// its future would wait forever, even past the connection's end, since the stream leaves
    /// the table once both halves are done.
    fn on_finished(&mut self, conn: &mut QuicheConnection, id: u64) {
        let Some(entry) = self.streams.map.get_mut(&id) else {
            return;
        };
        if entry.recv != RecvHalf::AwaitingHead {
            self.streams.on_finished(id);
            return;
        }
        entry.recv = RecvHalf::Done;
        if let SendHalf::Open { .. } = entry.send {
            let code = ErrorCode::MessageError.code();
            let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code);
            entry.send = SendHalf::Failed;
        }
        let e = HeaderError::MissingPseudo(":status");
        entry.slot.fail_with(RequestError::InvalidResponse(e));
    }

    fn check_close(&mut self, conn: &mut QuicheConnection) {
        let idle = self.streams.map.is_empty() && self.waiting.is_empty() && self.conn.ops_empty();
        if idle && self.queue.handles_gone.load(Ordering::Acquire) {
            let _ = conn.close(true, ErrorCode::NoError.code(), b"");
        }
    }
    /// Handles every HTTP/3 event quiche has.
    fn poll_h3(
        &mut self,
        conn: &mut QuicheConnection,
        _now: Instant,
    ) -> Result<(), ApplicationError> {
        let chunk = self.settings.read_chunk();
        loop {
            let Some(h3) = self.h3.as_mut() else {
                return Ok(());
            };
            match h3.poll(conn) {
                Ok((id, h3::Event::Headers { list, .. })) => self.on_headers(conn, id, &list),
                Ok((id, h3::Event::Data)) => {
                    if let Err(e) = self.streams.pump_recv(h3, conn, id, chunk) {
                        tracing::debug!(stream = id, error = ?e, "body read failed");
                        self.streams.on_reset(id, crate::error::wire_code(&e));
                    }
                }
                Ok((id, h3::Event::Finished)) => self.on_finished(conn, id),
                Ok((id, h3::Event::Reset(code))) => {
                    self.streams.on_reset(id, code);
                }
                Ok((_, h3::Event::PriorityUpdate)) => {}
                Ok((id, h3::Event::GoAway)) => self.on_goaway(id),
                Err(h3::Error::Done) => break,
                Err(e) => return Err(h3_error(e)),
            }
        }
        Ok(())
    }
}

impl Application for ClientApplication {
    fn on_established(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        let config = self.settings.quiche_config().map_err(h3_error)?;
        self.h3 = Some(h3::Connection::with_transport(conn, &config).map_err(h3_error)?);
        Ok(())
    }

    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        self.apply_ops(conn);
        self.poll_h3(conn, now)?;
        let chunk = self.settings.read_chunk();
        if let Some(h3) = self.h3.as_mut() {
            if let Err(e) = self.streams.pump_readable(h3, conn, chunk) {
                tracing::debug!(error = ?e, "body read failed");
            }
        }
        // Reads above may have completed streams: collect their Finished events.
        self.poll_h3(conn, now)?;
        // The server stopped a request body we were not writing: fail its sender now.
        self.streams.take_stopped(conn);
        self.flows.receive_all(
            conn,
            self.h3.as_ref(),
            self.settings.enable_datagrams,
            &self.conn,
        )
    }

    fn process_writes(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        self.conn.clear();
        self.apply_ops(conn);
        self.send_pending(conn);
        let Some(h3) = self.h3.as_mut() else {
            return Ok(());
        };
        self.streams.flush_all(h3, conn);
        if let Err(e) = self
            .streams
            .pump_pending(h3, conn, self.settings.read_chunk())
        {
            tracing::debug!(error = ?e, "body read failed");
        }
        self.poll_h3(conn, now)?;
        self.flows.send(conn);
        let flows = &mut self.flows;
        let ids = &mut self.ids;
        self.streams.collect_done(|id, e| {
            flows.close(id);
            ids.remove(&e.slot.key);
        });
        // Streams freed by completed requests may let queued ones go.
        self.send_pending(conn);
        if let Some(h3) = self.h3.as_mut() {
            self.streams.flush_all(h3, conn);
        }
        self.check_close(conn);
        Ok(())
    }

    fn set_wake(&mut self, wake: quicksand_core::ConnectionWake) {
        self.conn.set_wake(wake);
    }

    fn shutdown_close(&self) -> Option<ApplicationError> {
        Some(ApplicationError::new(
            ErrorCode::NoError.code(),
            "shutting down",
        ))
    }

    fn on_close(&mut self, _: &QuicheConnection, reason: &CloseReason) {
        self.close_reason = Some(reason.clone());
        self.conn.close(reason);
        self.streams.fail_all(reason);
        self.flows.close_all();
        let closed = || RequestError::ConnectionClosed(Some(reason.clone()));
        self.waiting_order.clear();
        for (_, w) in self.waiting.drain() {
            w.request.slot.fail_with(closed());
        }
        // Requests queued since the last run: `ConnShared::close` came first, so any pushed
        // after this drain is failed by its handle.
        while let Some(StreamOp { op, .. }) = self.conn.pop() {
            if let Op::Request(request) = op {
                request.slot.fail_with(closed());
            }
        }
        self.ids.clear();
    }
}

/// A request waiting for a stream, with what its handles asked meanwhile.
struct Waiting {
    request: NewRequest,
    /// The body queued so far.
    queue: VecDeque<Outgoing>,
    /// The body was abandoned (RESET_STREAM code once the stream opens).
    reset: Option<u64>,
    /// A priority update to send once the stream opens.
    priority: Option<crate::Priority>,
}

impl Waiting {
    fn new(mut request: NewRequest) -> Self {
        let mut queue = VecDeque::new();
        if let Some(body) = request.body.take() {
            if !body.is_empty() {
                queue.push_back(Outgoing::Data(body));
            }
            queue.push_back(Outgoing::Fin);
        }
        Waiting {
            request,
            queue,
            reset: None,
            priority: None,
        }
    }

    /// Applies a handle's op; true if the request is withdrawn (its response future was
    /// dropped: it never goes out).
    fn apply(&mut self, op: Op) -> bool {
        match op {
            Op::Send(item) => self.queue.push_back(item),
            Op::Reset(code) => {
                self.queue.clear();
                self.reset = Some(code);
            }
            Op::Priority(p) => self.priority = Some(p),
            Op::Cancel => {
                let code = ErrorCode::RequestCancelled.code();
                self.request
                    .slot
                    .fail_send(StreamError::ResetLocally { code });
                return true;
            }
            // No body can be read before the stream exists; a request is never queued twice.
            Op::StopReading { .. } | Op::Request(_) => {}
        }
        false
    }
}

/// Ends request `id` because of a response it cannot accept: both halves are shut with
/// `code`, the request fails with `err`.
fn refuse(
    conn: &mut QuicheConnection,
    id: u64,
    entry: &mut Entry,
    code: ErrorCode,
    err: HeaderError,
) {
    let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code.code());
    let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code.code());
    entry.recv = RecvHalf::Done;
    entry.send = SendHalf::Failed;
    entry.slot.fail_with(RequestError::InvalidResponse(err));
}

/// What became of a waiting request's turn.
enum Opening {
    /// Not yet: no stream credit, or the peer's SETTINGS are needed first.
    Wait,
    /// Its HEADERS went out on this stream.
    Opened(u64),
    /// It cannot go out on this connection.
    Refused(RequestError),
    /// quiche refused it.
    Failed(h3::Error),
}

/// Sends the HEADERS of `request` if it may go out now.
fn try_open(
    h3: &mut h3::Connection,
    conn: &mut QuicheConnection,
    request: &NewRequest,
    goaway: bool,
) -> Opening {
    if goaway {
        return Opening::Refused(RequestError::GoAway);
    }
    let peer_settings = h3.peer_settings_raw();
    if request.extended_connect {
        if peer_settings.is_none() {
            return Opening::Wait;
        }
        if !h3.extended_connect_enabled_by_peer() {
            return Opening::Refused(RequestError::ExtendedConnectNotSupported);
        }
    }
    let limit = peer_settings.and_then(|s| {
        s.iter()
            .find(|(k, _)| *k == SETTINGS_MAX_FIELD_SECTION_SIZE)
            .map(|(_, v)| *v)
    });
    let size = headers::field_section_size(&request.fields);
    if let Some(limit) = limit.filter(|l| size > *l) {
        return Opening::Refused(RequestError::HeadersTooLarge { size, limit });
    }
    if conn.peer_streams_left_bidi() == 0 {
        return Opening::Wait;
    }
    match h3.send_request(conn, &request.fields, request.end_stream) {
        Ok(id) => Opening::Opened(id),
        Err(h3::Error::StreamBlocked)
        | Err(h3::Error::TransportError(quiche::Error::StreamLimit)) => Opening::Wait,
        // quiche has seen the peer's GOAWAY, though its event is not read yet.
        Err(h3::Error::FrameUnexpected) => Opening::Refused(RequestError::GoAway),
        Err(e) => Opening::Failed(e),
    }
}
