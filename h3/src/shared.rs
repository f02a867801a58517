//! State shared between an application (inside the connection) and the handles it gives out
//! (bodies, responders, the client handle), possibly on other threads.
//!
//! Two directions, two mechanisms:
//! - **handles → application**: whatever a handle asks of a stream (bytes or a head to send,
//!   a reset, STOP_SENDING, a new priority, a cancelled or a new request) is a [`StreamOp`]
//!   pushed on the connection's one lock-free queue ([`ConnShared::push`]), followed by at
//!   most one wake-up. The application applies the ops in order at the start of
//!   `process_reads` and `process_writes`; each stream's lifecycle is an enum per half in
//!   the application's own table (`streams::Entry`), which no handle sees.
//! - **application → handles**: what a handle waits for lives in the stream's
//!   [`StreamSlot`]: received chunks, the body's end, trailers and (clients) the response
//!   head under one lock; the send credit and the send error as atomics.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Wake, Waker};

use bytes::Bytes;
use crossbeam_queue::SegQueue;
use futures_util::task::AtomicWaker;
use http::{HeaderMap, Response};
use quicksand_core::{CloseReason, ConnectionWake};

use crate::error::{RequestError, StreamError};
use crate::headers::Field;
use crate::Priority;

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
    /// What handles asked of streams, in order.
    ops: SegQueue<StreamOp>,
    /// The next [`StreamSlot::key`] a client request gets.
    next_key: AtomicU64,
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

    /// Queues `op` for stream `key` and wakes the connection.
    pub fn push(&self, key: u64, op: Op) {
        self.ops.push(StreamOp { key, op });
        self.wake_connection();
    }

    /// The next op handles queued, oldest first.
    pub fn pop(&self) -> Option<StreamOp> {
        // Most runs find the queue empty: two loads, not a pop's full path.
        if self.ops.is_empty() {
            return None;
        }
        self.ops.pop()
    }

    /// True if no op waits.
    pub fn ops_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// A fresh key for a client request's slot.
    pub fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
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

    /// Records that the connection ended, and why. Ops pushed after the fence find `closed`
    /// set (see [`is_closed_after_push`](Self::is_closed_after_push)); those before it are
    /// drained by the application after this call.
    pub fn close(&self, reason: &CloseReason) {
        *lock(&self.close_reason) = Some(reason.clone());
        self.closed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// True if the connection ended; called by a handle right after a push, so that a push
    /// racing the application's final drain is noticed by one side or the other.
    pub fn is_closed_after_push(&self) -> bool {
        fence(Ordering::SeqCst);
        self.closed.load(Ordering::SeqCst)
    }

    /// Why the connection ended, if it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        lock(&self.close_reason).clone()
    }

    /// The error for something asked of the connection after it ended.
    pub fn closed_error(&self) -> StreamError {
        StreamError::ConnectionClosed(self.close_reason())
    }

    /// Clears the work flag (the application is about to do everything pending anyway).
    pub fn clear(&self) {
        // A swap, not a store: it reads the handles' pushes made before their
        // `wake_connection` (acquire), so either the application sees their ops or their swap
        // sees `false` and wakes the connection again.
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

/// One thing a handle asked of a stream.
#[derive(Debug)]
pub(crate) struct StreamOp {
    /// The stream's [`StreamSlot::key`].
    pub key: u64,
    pub op: Op,
}

/// What a handle asks of a stream.
#[derive(Debug)]
pub(crate) enum Op {
    /// Client: a new request; its stream opens when the peer's limit allows.
    Request(Box<NewRequest>),
    /// Write this after what was queued before.
    Send(Outgoing),
    /// Reset our half (RESET_STREAM with this code).
    Reset(u64),
    /// Nobody reads the body any more: STOP_SENDING with `code`, now (`eager`) or only if
    /// body data does arrive.
    StopReading { code: u64, eager: bool },
    /// Client: the response future was dropped before it took the head: the request is
    /// cancelled both ways, unless its final head already arrived (then only the body is
    /// stopped).
    Cancel,
    /// Client: a new priority for the request (PRIORITY_UPDATE).
    Priority(Priority),
}

/// A request a client handle queued.
#[derive(Debug)]
pub(crate) struct NewRequest {
    pub fields: Vec<Field>,
    pub slot: Arc<StreamSlot>,
    /// No body: the request's HEADERS end the stream.
    pub end_stream: bool,
    pub extended_connect: bool,
    /// A complete body, sent after the head and followed by the stream's end.
    pub body: Option<Bytes>,
}

/// Something queued for the application to write on a stream, in order.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A response head (1xx or final; servers only).
    Head(Vec<Field>),
    /// Body bytes.
    Data(Bytes),
    /// The trailer section; ends the stream.
    Trailers(Vec<Field>),
    /// End of the stream without trailers.
    Fin,
}

/// The end state of the receiving half, as the consumer sees it.
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

/// What the application hands to a stream's consumers (one lock): body chunks, the end of
/// the body, trailers, and on a client the response head.
#[derive(Debug, Default)]
pub(crate) struct Received {
    pub chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    pub buffered: usize,
    pub end: RecvEnd,
    pub trailers: Option<HeaderMap>,
    pub waker: Option<Waker>,
    /// The application stopped reading this stream because a buffer was full.
    pub blocked: bool,
    /// The consumer went away: the application hands over nothing more (its op saying what
    /// to do instead follows in the queue).
    pub dropped: bool,
    /// Client: the response head, or why the request failed.
    pub head: Option<Result<Response<()>, RequestError>>,
    /// Client: 1xx responses before the final head.
    pub informational: Vec<Response<()>>,
    /// Client: the datagram flow handed out with the response (extended CONNECT).
    pub flow: Option<crate::datagram::DatagramFlow>,
    pub head_waker: Option<Waker>,
}

impl Received {
    /// Ends the body with `err` (if still open) and fails the head (if none came).
    pub fn fail(&mut self, err: &StreamError) {
        if self.end == RecvEnd::Open {
            self.end = RecvEnd::Error(err.clone());
        }
        if self.head.is_none() {
            self.head = Some(Err(err.clone().into()));
        }
        self.wake();
    }

    /// Wakes the body's reader and the response future.
    pub fn wake(&mut self) {
        for w in [self.waker.take(), self.head_waker.take()]
            .into_iter()
            .flatten()
        {
            w.wake();
        }
    }

    /// Empties the chunks, giving their bytes back to the connection's count.
    pub fn discard(&mut self, conn: &ConnShared) {
        conn.recv_buffered
            .fetch_sub(self.buffered, Ordering::AcqRel);
        self.buffered = 0;
        self.chunks.clear();
        self.blocked = false;
    }
}

/// One request stream as its handles see it.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    /// Names the stream in [`StreamOp`]s: the stream id on a server; on a client a number
    /// given at request time (the stream id comes later, with stream credit).
    pub key: u64,
    pub conn: Arc<ConnShared>,
    /// Per-stream buffer cap (both directions).
    pub cap: usize,
    /// Per-connection receive cap.
    pub conn_cap: usize,
    /// The stream id, once the stream exists.
    id: OnceLock<u64>,
    received: Mutex<Received>,
    /// Bytes queued by handles and not yet taken by QUIC: added by the sender before its
    /// push, subtracted by the application as quiche takes them.
    send_buffered: AtomicUsize,
    /// Why the sending half failed (set once, by either side).
    send_error: OnceLock<StreamError>,
    send_waker: AtomicWaker,
    /// Server: a final response head was queued.
    pub final_queued: AtomicBool,
}

impl StreamSlot {
    pub fn new(key: u64, conn: Arc<ConnShared>, cap: usize, conn_cap: usize) -> Arc<Self> {
        Self::build(
            key,
            conn,
            cap,
            conn_cap,
            OnceLock::new(),
            Received::default(),
        )
    }

    fn build(
        key: u64,
        conn: Arc<ConnShared>,
        cap: usize,
        conn_cap: usize,
        id: OnceLock<u64>,
        received: Received,
    ) -> Arc<Self> {
        Arc::new(StreamSlot {
            key,
            conn,
            cap: cap.max(1),
            conn_cap: conn_cap.max(1),
            id,
            received: Mutex::new(received),
            send_buffered: AtomicUsize::new(0),
            send_error: OnceLock::new(),
            send_waker: AtomicWaker::new(),
            final_queued: AtomicBool::new(false),
        })
    }

    /// A server stream: keyed by its id; `finished` if the request's HEADERS ended it.
    pub fn for_request(
        id: u64,
        conn: Arc<ConnShared>,
        cap: usize,
        conn_cap: usize,
        finished: bool,
    ) -> Arc<Self> {
        let received = Received {
            end: if finished {
                RecvEnd::Fin
            } else {
                RecvEnd::Open
            },
            ..Received::default()
        };
        Self::build(id, conn, cap, conn_cap, OnceLock::from(id), received)
    }

    /// Asks the application for `op` on this stream.
    pub fn push(&self, op: Op) {
        self.conn.push(self.key, op);
    }

    pub fn received(&self) -> MutexGuard<'_, Received> {
        lock(&self.received)
    }

    pub fn id(&self) -> Option<u64> {
        self.id.get().copied()
    }

    pub fn set_id(&self, id: u64) {
        let _ = self.id.set(id);
    }

    /// Room left for received bytes on this stream, considering the connection cap too.
    pub fn recv_room(&self, received: &Received) -> usize {
        let conn_used = self.conn.recv_buffered.load(Ordering::Acquire);
        self.cap
            .saturating_sub(received.buffered)
            .min(self.conn_cap.saturating_sub(conn_used))
    }

    // ---- sending half ----

    pub fn send_error(&self) -> Option<&StreamError> {
        self.send_error.get()
    }

    pub fn send_buffered(&self) -> usize {
        self.send_buffered.load(Ordering::Acquire)
    }

    /// A sender counts bytes it is about to push.
    pub fn add_send(&self, n: usize) {
        self.send_buffered.fetch_add(n, Ordering::AcqRel);
    }

    /// The application counts bytes quiche took; wakes a sender waiting for room.
    pub fn sent(&self, n: usize) {
        let before = self.send_buffered.fetch_sub(n, Ordering::AcqRel);
        if before.saturating_sub(n) < self.cap {
            self.send_waker.wake();
        }
    }

    /// True if a sender may queue more now; else registers `waker` for when it may.
    pub fn poll_send_room(&self, waker: &Waker) -> bool {
        if self.send_error.get().is_some() || self.send_buffered() < self.cap {
            return true;
        }
        self.send_waker.register(waker);
        // Checked again: the application may have taken bytes (and found no waker to wake)
        // between the first look and the registration.
        self.send_error.get().is_some() || self.send_buffered() < self.cap
    }

    /// Fails the sending half (if it has not failed yet) and wakes its sender.
    pub fn fail_send(&self, err: StreamError) {
        let _ = self.send_error.set(err);
        self.send_waker.wake();
    }

    /// Fails both halves (connection closed, stream reset) and wakes everyone.
    pub fn fail(&self, err: StreamError) {
        self.received().fail(&err);
        self.fail_send(err);
    }

    /// Fails the request with `err` (what the response future returns) and the rest of the
    /// stream with a matching stream error.
    pub fn fail_with(&self, err: RequestError) {
        let stream_err = match &err {
            RequestError::Stream(e) => e.clone(),
            RequestError::ConnectionClosed(reason) => StreamError::ConnectionClosed(reason.clone()),
            // The request was refused before the connection carried it: its body halves end
            // as if the connection had, with no close to report.
            _ => StreamError::ConnectionClosed(None),
        };
        {
            let mut received = self.received();
            if received.head.is_none() {
                received.head = Some(Err(err));
            }
            received.fail(&stream_err);
        }
        self.fail_send(stream_err);
    }
}
