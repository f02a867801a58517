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
use crate::shared::{lock, ConnShared};
use crate::streams::{Entry, Streams};
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

    /// Opens streams for queued requests while the peer's stream limit allows.
    fn send_pending(&mut self, conn: &mut QuicheConnection) {
        let Some(h3) = self.h3.as_mut() else {
            return;
        };
        let mut pending = lock(&self.queue.pending);
        while let Some(p) = pending.front() {
            if p.shared.lock().head_dropped {
                pending.pop_front();
                continue;
            }
            if self.goaway.is_some() {
                let p = pending.pop_front().expect("front checked");
                p.shared.lock().fail_with(RequestError::GoAway);
                continue;
            }
            let peer_settings = h3.peer_settings_raw();
            if p.extended_connect {
                if peer_settings.is_none() {
                    break;
                }
                if !h3.extended_connect_enabled_by_peer() {
                    let p = pending.pop_front().expect("front checked");
                    p.shared
                        .lock()
                        .fail_with(RequestError::ExtendedConnectNotSupported);
                    continue;
                }
            }
            let limit = peer_settings.and_then(|s| {
                s.iter()
                    .find(|(k, _)| *k == SETTINGS_MAX_FIELD_SECTION_SIZE)
                    .map(|(_, v)| *v)
            });
            let size = headers::field_section_size(&p.fields);
            if let Some(limit) = limit.filter(|l| size > *l) {
                let p = pending.pop_front().expect("front checked");
                p.shared
                    .lock()
                    .fail_with(RequestError::HeadersTooLarge { size, limit });
                continue;
            }
            if conn.peer_streams_left_bidi() == 0 {
                break;
            }
            match h3.send_request(conn, &p.fields, p.end_stream) {
                Ok(id) => {
                    let p = pending.pop_front().expect("front checked");
                    self.sent += 1;
                    let mut entry = Entry::new(p.shared.clone());
                    entry.send_done = p.end_stream;
                    // Our own sending (the request body) follows the request's priority too.
                    if let Some(priority) = crate::Priority::from_fields(&p.fields) {
                        entry.prioritize(conn, id, priority);
                    }
                    let mut st = p.shared.lock();
                    st.id = Some(id);
                    if p.extended_connect && self.settings.enable_datagrams {
                        st.flow = Some(self.flows.open(id, &self.conn));
                    }
                    drop(st);
                    self.streams.map.insert(id, entry);
                }
                Err(h3::Error::StreamBlocked)
                | Err(h3::Error::TransportError(quiche::Error::StreamLimit)) => break,
                Err(h3::Error::FrameUnexpected) if self.goaway.is_some() => {
                    let p = pending.pop_front().expect("front checked");
                    p.shared.lock().fail_with(RequestError::GoAway);
                }
                Err(e) => {
                    let p = pending.pop_front().expect("front checked");
                    p.shared.lock().fail(StreamError::Protocol(e));
                }
            }
        }
    }

    fn on_headers(&mut self, conn: &mut QuicheConnection, id: u64, list: &[h3::Header]) {
        let Some(entry) = self.streams.map.get_mut(&id) else {
            return;
        };
        if entry.final_head {
            if self.streams.on_trailers(id, list).is_err() {
                let code = ErrorCode::MessageError.code();
                let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
                self.streams.on_reset(id, code);
            }
            return;
        }
        match headers::parse_response(list) {
            Ok(resp) if resp.status().is_informational() => {
                let mut st = entry.shared.lock();
                if st.informational.len() < MAX_INFORMATIONAL {
                    st.informational.push(resp);
                    return;
                }
                // A server that never gets to its final response: stop it before the list
                // grows without bound.
                drop(st);
                let code = ErrorCode::ExcessiveLoad.code();
                let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
                let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code);
                entry.recv_done = true;
                entry.send_done = true;
                let e = HeaderError::TooManyInformational(MAX_INFORMATIONAL);
                entry
                    .shared
                    .lock()
                    .fail_with(RequestError::InvalidResponse(e));
            }
            Ok(resp) => {
                entry.final_head = true;
                let mut st = entry.shared.lock();
                st.head = Some(Ok(resp));
                if let Some(w) = st.head_waker.take() {
                    w.wake();
                }
            }
            Err(e) => {
                let code = ErrorCode::MessageError.code();
                let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
                let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code);
                entry.recv_done = true;
                entry.send_done = true;
                entry
                    .shared
                    .lock()
                    .fail_with(RequestError::InvalidResponse(e));
            }
        }
    }

    fn on_goaway(&mut self, id: u64) {
        self.goaway = Some(self.goaway.map_or(id, |g| g.min(id)));
        self.queue.goaway.store(true, Ordering::Release);
        // Requests at or above the id were not processed and never will be.
        for (sid, e) in self.streams.map.iter_mut() {
            if *sid >= id {
                e.recv_done = true;
                e.send_done = true;
                e.shared.lock().fail_with(RequestError::GoAway);
            }
        }
    }

    /// The server ended its half of a request stream. Without a final response before it,
    /// the response is malformed (RFC 9114 §4.1.2): fail the request and stop sending. Else
    /// its future would wait forever, even past the connection's end, since the stream leaves
    /// the table once both halves are done.
    fn on_finished(&mut self, conn: &mut QuicheConnection, id: u64) {
        self.streams.on_finished(id);
        let Some(entry) = self.streams.map.get_mut(&id) else {
            return;
        };
        if entry.final_head {
            return;
        }
        if !entry.send_done {
            let code = ErrorCode::MessageError.code();
            let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code);
            entry.send_done = true;
        }
        let e = HeaderError::MissingPseudo(":status");
        entry
            .shared
            .lock()
            .fail_with(RequestError::InvalidResponse(e));
    }

    fn check_close(&mut self, conn: &mut QuicheConnection) {
        let idle = self.streams.map.is_empty() && lock(&self.queue.pending).is_empty();
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
        self.streams.collect_done(|id| flows.close(id));
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
        for p in lock(&self.queue.pending).drain(..) {
            p.shared
                .lock()
                .fail_with(RequestError::ConnectionClosed(Some(reason.clone())));
        }
    }
}
