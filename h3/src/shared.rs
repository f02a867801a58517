//! State shared between an application (inside the connection) and the handles it gives out
//! (bodies, responders, the client handle), possibly on other threads.
//!
//! Handles never touch quiche: they queue work in a [`StreamState`] and wake the application
//! through [`ConnShared::wake_connection`]; the application does the quiche calls in `process_writes`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Wake, Waker};

use bytes::Bytes;
use http::{HeaderMap, Response};
use quicksand_core::{CloseReason, ConnectionWake};

use crate::error::StreamError;

/// Locks, ignoring poisoning: the state stays consistent because no code path panics while
/// holding a lock with a half-applied update.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-connection shared state.
#[derive(Debug, Default)]
pub(crate) struct ConnShared {
    /// How to wake the connection, from its owner (`Application::set_wake`).
    wake: OnceLock<ConnectionWake>,
    /// The same as a task waker, for the futures the application polls itself (inline
    /// handlers, finished-handler notices).
    waker: OnceLock<Waker>,
    /// Work was signalled since the application last ran `process_writes`: later signals
    /// need not wake the connection again.
    work: AtomicBool,
    /// Received body bytes buffered over all streams, not yet taken by consumers.
    pub recv_buffered: AtomicUsize,
    /// The application stopped reading some stream because a buffer was full.
    pub recv_blocked: AtomicBool,
    /// The peer negotiated HTTP/3 datagrams and we enabled them.
    pub datagrams: AtomicBool,
    /// The largest QUIC datagram payload the path takes now (0 until known).
    pub datagram_max: AtomicUsize,
    /// The connection has ended.
    pub closed: AtomicBool,
    /// Why it ended, once it has.
    close_reason: Mutex<Option<CloseReason>>,
}

impl ConnShared {
    /// Says "the application has work" and wakes whoever drives the connection (once until
    /// the application has run: a burst of handle calls costs one wake-up).
    pub fn wake_connection(&self) {
        if !self.work.swap(true, Ordering::AcqRel) {
            if let Some(wake) = self.wake.get() {
                wake.wake();
            }
        }
    }

    /// Keeps how to wake the connection (the first call wins: a connection has one owner).
    pub fn set_wake(self: &Arc<Self>, wake: ConnectionWake) {
        let _ = self.wake.set(wake);
        let _ = self
            .waker
            .set(Waker::from(Arc::new(WakeConnection(Arc::downgrade(self)))));
    }

    /// A task waker that wakes the connection, for futures the application polls itself; a
    /// no-op one while the connection has no owner to wake.
    pub fn waker(&self) -> &Waker {
        self.waker.get().unwrap_or(Waker::noop())
    }

    /// Records that the connection ended, and why.
    pub fn close(&self, reason: &CloseReason) {
        *lock(&self.close_reason) = Some(reason.clone());
        self.closed.store(true, Ordering::Release);
    }

    /// The error for something asked of the connection after it ended.
    pub fn closed_error(&self) -> StreamError {
        StreamError::ConnectionClosed(lock(&self.close_reason).clone())
    }

    /// Clears the work flag (the application is about to do everything pending anyway).
    pub fn clear(&self) {
        // A swap, not a store: it reads the handles' flags set before their `wake_connection`
        // (acquire), so either the application sees their work or their swap sees `false` and
        // wakes the connection again.
        self.work.swap(false, Ordering::AcqRel);
    }
}

/// A task waker over the connection's wake-up; weak, so a waker kept by a finished future
/// does not keep the connection's shared state alive.
struct WakeConnection(std::sync::Weak<ConnShared>);

impl Wake for WakeConnection {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(conn) = self.0.upgrade() {
            conn.wake_connection();
        }
    }
}

/// Something queued for the application to write on a stream, in order.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A response head (1xx or final; servers only).
    Head(Vec<crate::headers::Field>),
    /// Body bytes.
    Data(Bytes),
    /// The trailer section; ends the stream.
    Trailers(Vec<crate::headers::Field>),
    /// End of the stream without trailers.
    Fin,
}

/// The end state of the receiving half.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum RecvEnd {
    /// More may come.
    #[default]
    Open,
    /// The peer finished the stream.
    Fin,
    /// The stream failed.
    Error(StreamError),
}

/// One request stream's shared state: the receiving half (body bytes from the peer), the
/// sending half (what we queue for the peer), and on a client the response head.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    /// Stream id, once the stream exists (a client request waits for stream credit).
    pub id: Option<u64>,

    // ---- receiving half ----
    pub recv: VecDeque<Bytes>,
    pub recv_buffered: usize,
    pub recv_end: RecvEnd,
    pub recv_trailers: Option<HeaderMap>,
    pub recv_waker: Option<Waker>,
    /// The consumer dropped the body: the application sends STOP_SENDING.
    pub recv_dropped: bool,
    /// STOP_SENDING to send with this code (consumer dropped or stopped the body early).
    pub recv_stop: Option<u64>,
    /// The consumer dropped the body with nothing unread: the application drains the stream and
    /// sends STOP_SENDING with this code only if body data arrives.
    pub recv_stop_on_data: Option<u64>,
    /// The application stopped reading this stream because a buffer was full.
    pub recv_blocked: bool,

    // ---- response head (client) ----
    pub head: Option<Result<Response<()>, crate::error::RequestError>>,
    pub informational: Vec<Response<()>>,
    pub head_waker: Option<Waker>,
    /// The datagram flow handed out with the response (extended CONNECT).
    pub flow: Option<crate::datagram::DatagramFlow>,
    /// The response future was dropped: the request is cancelled unless already answered.
    pub head_dropped: bool,

    // ---- sending half ----
    pub send: VecDeque<Outgoing>,
    pub send_buffered: usize,
    /// The sender queued the end (`Fin` or trailers) or went away.
    pub send_closed: bool,
    /// A final response head was queued (servers).
    pub final_queued: bool,
    pub send_error: Option<StreamError>,
    pub send_waker: Option<Waker>,
    /// A local reset asked for (code), applied by the application.
    pub reset: Option<u64>,
    /// A new priority for the request (client): the application sends PRIORITY_UPDATE.
    pub priority_update: Option<crate::Priority>,
}

impl StreamState {
    /// Fails both halves (connection closed or stream reset) and wakes everyone.
    pub fn fail(&mut self, err: StreamError) {
        if self.recv_end == RecvEnd::Open {
            self.recv_end = RecvEnd::Error(err.clone());
        }
        if self.head.is_none() {
            self.head = Some(Err(err.clone().into()));
        }
        self.fail_send(err);
        self.wake_all();
    }

    /// Fails the request with `err` (what the response future returns) and the rest of the
    /// stream with a matching stream error.
    pub fn fail_with(&mut self, err: crate::error::RequestError) {
        let stream_err = match &err {
            crate::error::RequestError::Stream(e) => e.clone(),
            crate::error::RequestError::ConnectionClosed(reason) => {
                StreamError::ConnectionClosed(reason.clone())
            }
            // The request was refused before the connection carried it: its body halves end
            // as if the connection had, with no close to report.
            _ => StreamError::ConnectionClosed(None),
        };
        if self.head.is_none() {
            self.head = Some(Err(err));
        }
        self.fail(stream_err);
    }

    /// Fails the sending half.
    pub fn fail_send(&mut self, err: StreamError) {
        if self.send_error.is_none() {
            self.send_error = Some(err);
        }
        self.send.clear();
        self.send_buffered = 0;
        if let Some(w) = self.send_waker.take() {
            w.wake();
        }
    }

    pub fn wake_all(&mut self) {
        for w in [
            self.recv_waker.take(),
            self.head_waker.take(),
            self.send_waker.take(),
        ]
        .into_iter()
        .flatten()
        {
            w.wake();
        }
    }
}

/// A stream's shared state plus the connection it belongs to.
#[derive(Debug)]
pub(crate) struct StreamShared {
    pub state: Mutex<StreamState>,
    pub conn: Arc<ConnShared>,
    /// Per-stream buffer cap (both directions).
    pub cap: usize,
    /// Per-connection receive cap.
    pub conn_cap: usize,
    /// A handle changed what the connection must write or apply on this stream since the
    /// connection last looked: `flush_all` visits only such streams (and those with output
    /// still queued), not every stream under its lock on every wake-up.
    touched: AtomicBool,
}

impl StreamShared {
    pub fn new(conn: Arc<ConnShared>, cap: usize, conn_cap: usize) -> Arc<Self> {
        Arc::new(StreamShared {
            state: Mutex::new(StreamState::default()),
            conn,
            cap: cap.max(1),
            conn_cap: conn_cap.max(1),
            touched: AtomicBool::new(false),
        })
    }

    /// Marks the stream as touched and wakes its connection: called by handles after they
    /// queued output or asked for a reset, STOP_SENDING or a priority update.
    pub fn wake(&self) {
        self.touched.store(true, Ordering::Release);
        self.conn.wake_connection();
    }

    /// Marks the stream for the next flush without waking anyone (the connection retries
    /// something on its next wake-up).
    pub fn touch(&self) {
        self.touched.store(true, Ordering::Release);
    }

    /// True (once) if a handle touched the stream since the last call.
    pub fn take_touched(&self) -> bool {
        self.touched.swap(false, Ordering::AcqRel)
    }

    pub fn lock(&self) -> MutexGuard<'_, StreamState> {
        lock(&self.state)
    }

    /// Room left for received bytes on this stream, considering the connection cap too.
    pub fn recv_room(&self, st: &StreamState) -> usize {
        let conn_used = self.conn.recv_buffered.load(Ordering::Acquire);
        self.cap
            .saturating_sub(st.recv_buffered)
            .min(self.conn_cap.saturating_sub(conn_used))
    }
}
