//! The HTTP/3 server: [`ServerApplication`], an [`Application`] that accepts requests.
//!
//! Two ways to use it:
//! - [`ServerApplication::new`] returns the application and an [`IncomingRequests`] stream: take each
//!   [`IncomingRequest`] and answer it wherever you like (spawn it on your runtime);
//! - [`ServerApplication::with_service`] runs a [`Service`] (any `async fn(Request<RecvBody>) ->
//!   Response<Body>`) *inside* the application: the application owns the handler futures and polls them
//!   from `process_writes`, woken through the connection's `ConnectionWake`. No runtime
//!   is needed and the simulator stays deterministic; the price is that handlers share the
//!   connection's thread, so CPU-heavy handlers should use the stream API and spawn.

mod control;
mod info;
mod request;
mod service;

pub use control::{IncomingRequests, ServerHandle};
pub use info::ConnectionInfo;
pub use request::{EarlyData, IncomingRequest, Informational, Responder, StreamId};
pub use service::Service;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_channel::mpsc;
use futures_util::future::{abortable, AbortHandle};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use http::Request;
use quiche::h3;
use quicksand_core::QuicheConnection;
use quicksand_core::{Application, ApplicationError, CloseReason, Metrics};

use crate::body::RecvBody;
use crate::datagram::Flows;
use crate::error::ErrorCode;
use crate::headers::{self, Field, Protocol};
use crate::limits::RapidResetDetector;
use crate::shared::{ConnShared, StreamOp, StreamSlot};
use crate::streams::{Entry, RecvHalf, SendHalf, Streams};
use crate::{H3Stats, Http3Settings, Priority};

enum Sink {
    Channel(mpsc::UnboundedSender<IncomingRequest>),
    Service(service::Handler),
}

/// How long after the last in-flight request we wait for quiche to deliver the last bytes
/// before closing anyway, once shutting down.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The round trip a drained connection waits after its GOAWAY when quiche has no estimate.
const LINGER_FALLBACK: Duration = Duration::from_millis(100);

/// A handler future wrapped to yield its stream id.
type HandlerTask = std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>>;

/// Runs a handler future somewhere else than inside the application, once per request: the
/// adapters pass their endpoint task's handler pool (a runner task polling every handler of
/// the socket), a plain runtime `spawn` works too. See [`ServerApplication::with_spawner`].
pub type Spawner = Arc<dyn Fn(BoxedHandler) + Send + Sync>;

/// A spawned handler: ends when its handler does (or is aborted).
pub type BoxedHandler = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Reports a spawned handler's end to its application, also when the handler is dropped
/// unfinished (its runtime shut down).
struct Finished {
    done: mpsc::UnboundedSender<u64>,
    id: u64,
}

impl Drop for Finished {
    fn drop(&mut self) {
        // Err: the application is gone; nobody counts any more.
        let _ = self.done.unbounded_send(self.id);
    }
}

/// Handlers running as tasks of their own (see [`ServerApplication::with_spawner`]).
struct Spawned {
    spawn: Spawner,
    /// Each handler sends its stream id when it ends.
    finished_tx: mpsc::UnboundedSender<u64>,
    finished: mpsc::UnboundedReceiver<u64>,
    running: usize,
}

/// The server side of HTTP/3 on one connection: [`ServerApplication::new`] hands out a stream of
/// requests, [`ServerApplication::with_service`] runs a handler inside the application.
///
/// Call order (done by the core's `Connection`): `on_established` creates the HTTP/3
/// connection and sends SETTINGS; `process_reads` turns quiche's events into requests, body
/// chunks, resets; `process_writes` runs handlers, writes queued responses and enforces
/// shutdown; `set_wake` gives it the way handles and handlers wake the connection.
pub struct ServerApplication {
    settings: Http3Settings,
    h3: Option<h3::Connection>,
    conn: Arc<ConnShared>,
    shutdown: Arc<control::ShutdownFlags>,
    sink: Sink,
    /// Handler futures (`with_service`), each yielding its stream id when it ends.
    tasks: FuturesUnordered<HandlerTask>,
    /// Set: handlers are spawned instead of polled in `tasks`.
    spawned: Option<Spawned>,
    /// How to drop each running handler early: its request was cancelled.
    handlers: crate::streams::IdMap<AbortHandle>,
    handlers_cancelled: u64,
    streams: Streams,
    flows: Flows,
    rapid: RapidResetDetector,
    established_at: Option<Instant>,
    /// Put on every request; refreshed on every read.
    info: Option<ConnectionInfo>,
    accepted: u64,
    rejected: u64,
    malformed: u64,
    /// Early-data requests answered 425 Too Early.
    too_early: u64,
    /// Stream id sent in our GOAWAY: requests at or above it are refused.
    goaway_id: Option<u64>,
    /// The earliest instant the drained connection may close: one RTT after GOAWAY went out,
    /// so requests the client sent before it saw the GOAWAY arrive and are refused (the
    /// client then reports them as not processed, `RequestError::GoAway`) instead of dying
    /// with the connection. `true` once passed.
    goaway_linger: Option<(Instant, bool)>,
    /// PRIORITY_UPDATE frames received.
    priority_updates: u64,
    /// Highest request stream id seen.
    highest_id: Option<u64>,
    /// While draining after GOAWAY: request streams quiche still holds (responses not yet
    /// acknowledged), and the highest id already scanned for them. Built by one scan of the
    /// ids seen, then only shrinks, so a connection that served millions of requests is not
    /// rescanned on every wake-up.
    draining: Option<(Vec<u64>, u64)>,
    idle_since: Option<Instant>,
    close_reason: Option<CloseReason>,
}

impl std::fmt::Debug for ServerApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerApplication")
            .field("accepted", &self.accepted)
            .field("in_flight", &self.streams.map.len())
            .finish_non_exhaustive()
    }
}

impl ServerApplication {
    fn build(
        settings: Http3Settings,
        sink: Sink,
        conn: Arc<ConnShared>,
        shutdown: Arc<control::ShutdownFlags>,
    ) -> Self {
        ServerApplication {
            rapid: RapidResetDetector::new(
                settings.rapid_reset_threshold,
                settings.rapid_reset_window,
            ),
            flows: Flows::new(settings.datagram_queue_len, settings.datagram_queue_bytes),
            settings,
            h3: None,
            conn,
            shutdown,
            sink,
            tasks: FuturesUnordered::new(),
            spawned: None,
            handlers: Default::default(),
            handlers_cancelled: 0,
            streams: Streams::default(),
            established_at: None,
            info: None,
            accepted: 0,
            rejected: 0,
            malformed: 0,
            too_early: 0,
            goaway_id: None,
            goaway_linger: None,
            priority_updates: 0,
            highest_id: None,
            draining: None,
            idle_since: None,
            close_reason: None,
        }
    }

    /// An application that hands requests out through the returned stream.
    pub fn new(settings: Http3Settings) -> (ServerApplication, IncomingRequests) {
        let (tx, rx) = mpsc::unbounded();
        let conn = Arc::new(ConnShared::default());
        let shutdown = Arc::new(control::ShutdownFlags::default());
        let handle = ServerHandle {
            shutdown: shutdown.clone(),
            conn: conn.clone(),
        };
        let app = Self::build(settings, Sink::Channel(tx), conn, shutdown);
        (app, IncomingRequests { rx, handle })
    }

    /// An application that answers every request with `service`, polling the handler futures itself.
    pub fn with_service<S: Service>(settings: Http3Settings, service: S) -> ServerApplication {
        let conn = Arc::new(ConnShared::default());
        let shutdown = Arc::new(control::ShutdownFlags::default());
        Self::build(
            settings,
            Sink::Service(service::erase(service)),
            conn,
            shutdown,
        )
    }

    /// Reports the status of every response to `metrics` ([`Metrics::h3_response`]); the
    /// adapters' `serve` sets its config's metrics here.
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.streams.metrics = Some(metrics);
        self
    }

    /// Hands each handler (`with_service`) to `spawn` instead of polling it inside the
    /// application: a handler that computes for a long time (or blocks) then holds up neither
    /// the connection's packets nor the other connections of its endpoint. The adapters'
    /// `serve` does this by default (`ServerConfig::handlers`), with a runner task per
    /// endpoint task. The response still goes out through the application; a cancelled
    /// request aborts its handler at its next await.
    pub fn with_spawner(mut self, spawn: Spawner) -> Self {
        let (finished_tx, finished) = mpsc::unbounded();
        self.spawned = Some(Spawned {
            spawn,
            finished_tx,
            finished,
            running: 0,
        });
        self
    }

    /// Handler futures not finished yet.
    fn handlers_running(&self) -> usize {
        self.tasks.len() + self.spawned.as_ref().map_or(0, |s| s.running)
    }

    /// A handle for graceful shutdown.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shutdown: self.shutdown.clone(),
            conn: self.conn.clone(),
        }
    }

    /// Counters and buffer high-water marks.
    pub fn stats(&self) -> H3Stats {
        H3Stats {
            requests: self.accepted,
            rejected: self.rejected,
            malformed: self.malformed,
            too_early: self.too_early,
            in_flight: self.streams.map.len(),
            recv_buffer_high_water: self.streams.recv_high_water,
            send_buffer_high_water: self.streams.send_high_water,
            recent_resets: self.rapid.count(),
            datagrams_dropped: self.flows.dropped,
            goaway_sent: self.goaway_id.is_some(),
            priority_updates: self.priority_updates,
            goaway_received: false,
            handlers_running: self.handlers_running(),
            handlers_cancelled: self.handlers_cancelled,
        }
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close_reason.as_ref()
    }

    fn reject(&mut self, conn: &mut QuicheConnection, id: u64, code: ErrorCode) {
        self.rejected += 1;
        // Errors: the stream is already gone, nothing to refuse.
        let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code.code());
        let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code.code());
    }

    /// A response of headers only, `status`, ending the stream.
    fn answer(
        &mut self,
        conn: &mut QuicheConnection,
        id: u64,
        status: http::StatusCode,
    ) -> Result<(), h3::Error> {
        let h3 = self.h3.as_mut().ok_or(h3::Error::InternalError)?;
        let head = [Field::Status(status)];
        h3.send_response(conn, id, &head, true)?;
        if let Some(m) = &self.streams.metrics {
            m.h3_response(status.as_u16());
        }
        Ok(())
    }

    fn send_goaway(&mut self, conn: &mut QuicheConnection) {
        if self.goaway_id.is_some() {
            return;
        }
        let Some(h3) = self.h3.as_mut() else {
            return;
        };
        // The first request id we will not process.
        let id = self.highest_id.map_or(0, |h| h + 4);
        match h3.send_goaway(conn, id) {
            Ok(()) => self.goaway_id = Some(id),
            Err(e) => tracing::debug!(error = ?e, "GOAWAY not sent yet"),
        }
    }

    fn on_request(
        &mut self,
        conn: &mut QuicheConnection,
        id: u64,
        list: Vec<h3::Header>,
        more_frames: bool,
    ) {
        if id % 4 != 0 {
            return;
        }
        self.highest_id = Some(self.highest_id.map_or(id, |h| h.max(id)));
        if self.goaway_id.is_some_and(|g| id >= g) {
            return self.reject(conn, id, ErrorCode::RequestRejected);
        }
        if self
            .settings
            .max_requests_per_connection
            .is_some_and(|max| self.accepted >= max)
        {
            self.highest_id = Some(id.saturating_sub(4));
            self.send_goaway(conn);
            return self.reject(conn, id, ErrorCode::RequestRejected);
        }
        // Handlers still running count too: a handler may outlive its stream.
        let in_flight = self.streams.map.len().max(self.handlers_running());
        if in_flight >= self.settings.max_concurrent_streams {
            return self.reject(conn, id, ErrorCode::RequestRejected);
        }
        let parsed = headers::parse_request(&list, self.settings.enable_extended_connect);
        let mut req = match parsed {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(stream = id, error = %e, "malformed request");
                self.malformed += 1;
                // Err: no room or stream gone; the read shutdown still ends it.
                let _ = self.answer(conn, id, http::StatusCode::BAD_REQUEST);
                let _ = conn.stream_shutdown(
                    id,
                    quiche::Shutdown::Read,
                    ErrorCode::MessageError.code(),
                );
                return;
            }
        };
        if conn.is_in_early_data() && !self.settings.early_data_requests.allows(req.method()) {
            self.too_early += 1;
            if self.answer(conn, id, http::StatusCode::TOO_EARLY).is_err() {
                // No room for the answer: refused unprocessed, which the client may retry too.
                return self.reject(conn, id, ErrorCode::RequestRejected);
            }
            // The answer is complete; the rest of the body is not needed (RFC 9114 §4.1).
            let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, ErrorCode::NoError.code());
            return;
        }
        self.accepted += 1;
        self.idle_since = None;
        let slot = StreamSlot::for_request(
            id,
            self.conn.clone(),
            self.settings.stream_buffer_size,
            self.settings.connection_buffer_size,
            !more_frames,
        );
        let recv = if more_frames {
            RecvHalf::Reading
        } else {
            RecvHalf::Done
        };
        let mut entry = Entry::new(slot.clone(), recv, SendHalf::open());
        let priority = req
            .headers()
            .get("priority")
            .map(|v| Priority::parse(v.as_bytes()))
            .unwrap_or_default();
        entry.prioritize(conn, id, priority);
        let ext = req.extensions_mut();
        ext.insert(StreamId(id));
        ext.insert(priority);
        ext.insert(Informational::new(slot.clone()));
        if conn.is_in_early_data() {
            ext.insert(EarlyData);
        }
        if let Some(info) = &self.info {
            ext.insert(info.clone());
        }
        if self.settings.enable_datagrams && ext.get::<Protocol>().is_some() {
            ext.insert(self.flows.open(id, &self.conn));
        }
        self.streams.insert(id, entry);
        let (parts, ()) = req.into_parts();
        let request = Request::from_parts(parts, RecvBody::new(slot.clone(), ErrorCode::NoError));
        let responder = Responder::new(slot, id);
        match &self.sink {
            Sink::Channel(tx) => {
                if let Err(e) = tx.unbounded_send(IncomingRequest { request, responder }) {
                    // Nobody listens: the responder's drop resets the stream.
                    drop(e.into_inner());
                    self.shutdown
                        .incoming_dropped
                        .store(true, Ordering::Release);
                }
            }
            Sink::Service(handler) => {
                let (task, abort) = abortable(handler(request, responder));
                self.handlers.insert(id, abort);
                match &mut self.spawned {
                    Some(spawned) => {
                        let done = spawned.finished_tx.clone();
                        spawned.running += 1;
                        let finished = Finished { done, id };
                        let handler: BoxedHandler = Box::pin(async move {
                            // Aborted: dropped unfinished, its request cancelled.
                            let _ = task.await;
                            drop(finished);
                        });
                        (spawned.spawn)(handler);
                    }
                    None => self.tasks.push(Box::pin(async move {
                        let _ = task.await;
                        id
                    })),
                }
            }
        }
    }

    fn poll_tasks(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        while let Poll::Ready(Some(id)) = self.tasks.poll_next_unpin(cx) {
            self.handlers.remove(&id);
            progressed = true;
        }
        if let Some(spawned) = &mut self.spawned {
            while let Poll::Ready(Some(id)) = spawned.finished.poll_next_unpin(cx) {
                spawned.running = spawned.running.saturating_sub(1);
                self.handlers.remove(&id);
                progressed = true;
            }
        }
        progressed
    }

    /// The client cancelled request `id` (RESET_STREAM before the response completed, or
    /// STOP_SENDING): its handler is dropped at the next poll of the tasks, as hyper drops a
    /// service future whose stream was reset. Its response could not be delivered anyway.
    fn cancel_handler(&mut self, id: u64) {
        if let Some(abort) = self.handlers.remove(&id) {
            abort.abort();
            self.handlers_cancelled += 1;
        }
    }

    fn run_tasks(&mut self) {
        if self.handlers_running() == 0 {
            return;
        }
        let conn = self.conn.clone();
        self.poll_tasks(&mut Context::from_waker(conn.waker()));
    }

    /// Counts a request the peer cancelled before its response completed; past the
    /// rapid-reset limit the connection closes with H3_EXCESSIVE_LOAD.
    fn count_cancelled(&mut self, now: Instant) -> Result<(), ApplicationError> {
        if self.rapid.record(now) {
            return Err(ApplicationError::new(
                ErrorCode::ExcessiveLoad.code(),
                "too many request streams cancelled",
            ));
        }
        Ok(())
    }

    /// Shuts down when asked and closes once nothing is in flight.
    fn check_shutdown(&mut self, conn: &mut QuicheConnection, now: Instant) {
        let asked = self.shutdown.goaway.load(Ordering::Acquire)
            || self.shutdown.incoming_dropped.load(Ordering::Acquire);
        if asked {
            self.send_goaway(conn);
        }
        if self.goaway_id.is_none() {
            return;
        }
        let (until, passed) = self.goaway_linger.get_or_insert_with(|| {
            let rtt = conn
                .path_stats()
                .find(|p| p.active)
                .map_or(LINGER_FALLBACK, |p| p.rtt);
            (now + rtt.min(DRAIN_GRACE), false)
        });
        *passed |= now >= *until;
        let lingered = *passed;
        if !self.streams.map.is_empty() || self.handlers_running() > 0 {
            return;
        }
        let idle_since = *self.idle_since.get_or_insert(now);
        if (lingered && delivered(conn, self.highest_id, &mut self.draining))
            || now >= idle_since + DRAIN_GRACE
        {
            // Err: already closing.
            let _ = conn.close(true, ErrorCode::NoError.code(), b"");
        }
    }
    /// Applies what handles asked, in order (a stream's key is its id on a server).
    fn apply_ops(&mut self, conn: &mut QuicheConnection) {
        while let Some(StreamOp { key, op }) = self.conn.pop() {
            if let Some(h3) = self.h3.as_mut() {
                self.streams.apply(h3, conn, key, op);
            }
        }
    }

    /// Handles every HTTP/3 event quiche has.
    fn poll_h3(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        let chunk = self.settings.read_chunk();
        loop {
            let Some(h3) = self.h3.as_mut() else {
                return Ok(());
            };
            match h3.poll(conn) {
                Ok((id, h3::Event::Headers { list, more_frames })) => {
                    if self.streams.map.contains_key(&id) {
                        if self.streams.on_trailers(id, &list).is_err() {
                            let code = ErrorCode::MessageError.code();
                            let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
                            self.streams.on_reset(id, code);
                        }
                    } else {
                        self.on_request(conn, id, list, more_frames);
                    }
                }
                Ok((id, h3::Event::Data)) => {
                    if let Err(e) = self.streams.pump_recv(h3, conn, id, chunk) {
                        tracing::debug!(stream = id, error = ?e, "body read failed");
                        self.streams.on_reset(id, crate::error::wire_code(&e));
                    }
                }
                Ok((id, h3::Event::Finished)) => self.streams.on_finished(id),
                Ok((id, h3::Event::Reset(code))) => {
                    // Counted once per stream (a cancel may bring STOP_SENDING as well).
                    let in_flight = self
                        .streams
                        .map
                        .get(&id)
                        .is_some_and(|e| !e.answered() && !e.cancelled);
                    self.streams.on_reset(id, code);
                    if in_flight {
                        self.cancel_handler(id);
                        self.count_cancelled(now)?;
                    }
                }
                Ok((id, h3::Event::PriorityUpdate)) => {
                    if let Ok(v) = h3.take_last_priority_update(id) {
                        self.priority_updates += 1;
                        self.streams.prioritize(conn, id, Priority::parse(&v));
                    }
                }
                Ok((_, h3::Event::GoAway)) => {}
                Err(h3::Error::Done) => break,
                Err(e) => return Err(h3_error(e)),
            }
        }
        Ok(())
    }
}

/// True once quiche holds no request stream any more: every response was acknowledged (a
/// closed stream has no capacity). Streams up to `highest` are scanned once, those seen since
/// are added, and each call checks only the ones still open.
fn delivered(
    conn: &mut QuicheConnection,
    highest: Option<u64>,
    draining: &mut Option<(Vec<u64>, u64)>,
) -> bool {
    let (pending, scanned) = draining.get_or_insert_with(|| (Vec::new(), 0));
    if let Some(h) = highest {
        // Ids 0, 4, 8, ...; `scanned` is the next id not yet looked at.
        let from = *scanned;
        if h >= from {
            pending.extend(
                (from..=h)
                    .step_by(4)
                    .filter(|id| conn.stream_capacity(*id).is_ok()),
            );
            *scanned = h + 4;
        }
    }
    pending.retain(|id| conn.stream_capacity(*id).is_ok());
    pending.is_empty() && conn.stream_capacity(0).is_err()
}

pub(crate) fn h3_error(e: h3::Error) -> ApplicationError {
    ApplicationError::new(crate::error::wire_code(&e), format!("HTTP/3: {e:?}"))
}

impl Application for ServerApplication {
    fn on_established(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        let config = self.settings.quiche_config().map_err(h3_error)?;
        self.h3 = Some(h3::Connection::with_transport(conn, &config).map_err(h3_error)?);
        self.info = ConnectionInfo::new(conn);
        self.established_at = Some(now);
        Ok(())
    }

    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        match &self.info {
            Some(info) => info.update(conn),
            // No active path at the handshake (not seen in practice): try again.
            None => self.info = ConnectionInfo::new(conn),
        }
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
        // A request cancelled with STOP_SENDING alone (a GET's request half is already
        // finished, so no RESET_STREAM comes) is a reset too, for the rapid-reset defence.
        for (id, in_flight) in self.streams.take_stopped(conn) {
            self.cancel_handler(id);
            if in_flight {
                self.count_cancelled(now)?;
            }
        }
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
        self.run_tasks();
        self.apply_ops(conn);
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
        self.streams.collect_done(|id, _| flows.close(id));
        if let Some(t) = self.settings.post_accept_timeout {
            if self.accepted == 0
                && self.rejected == 0
                && self
                    .established_at
                    .and_then(|e| e.checked_add(t))
                    .is_some_and(|deadline| now >= deadline)
            {
                let _ = conn.close(true, ErrorCode::NoError.code(), b"no request in time");
            }
        }
        self.check_shutdown(conn, now);
        Ok(())
    }

    fn poll_deadline(&self) -> Option<Instant> {
        let post_accept = match (self.settings.post_accept_timeout, self.established_at) {
            // A timeout too long to represent never fires (Duration::MAX means "never").
            (Some(t), Some(e)) if self.accepted == 0 && self.rejected == 0 => e.checked_add(t),
            _ => None,
        };
        let drain = self.goaway_id.and(self.idle_since).map(|i| i + DRAIN_GRACE);
        let linger = match self.goaway_linger {
            Some((until, false)) => Some(until),
            _ => None,
        };
        [post_accept, drain, linger].into_iter().flatten().min()
    }

    fn set_wake(&mut self, wake: quicksand_core::ConnectionWake) {
        self.conn.set_wake(wake);
    }

    /// GOAWAY: requests already received are answered, then the connection closes.
    fn on_shutdown(
        &mut self,
        _: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        self.shutdown.goaway.store(true, Ordering::Release);
        Ok(())
    }

    fn shutdown_close(&self) -> Option<ApplicationError> {
        Some(ApplicationError::new(
            ErrorCode::NoError.code(),
            "server shutting down",
        ))
    }

    fn on_close(&mut self, _: &QuicheConnection, reason: &CloseReason) {
        self.close_reason = Some(reason.clone());
        self.conn.close(reason);
        self.streams.fail_all(reason);
        self.flows.close_all();
        // Dropping the sender ends the request stream for the application.
        if let Sink::Channel(tx) = &self.sink {
            tx.close_channel();
        }
        self.tasks.clear();
        // Spawned handlers end at their next await.
        for (_, abort) in self.handlers.drain() {
            abort.abort();
        }
    }
}
