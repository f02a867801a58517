//! The application's table of request streams: each stream's lifecycle as one enum per half,
//! owned by the application alone, and the quiche calls that move bytes between quiche and
//! the streams' slots ([`recv`]: reading bodies within the buffer caps; [`send`]: writing
//! what handles queued). Shared by the server and the client applications.
//!
//! Handles never reach this table: they push [`Op`]s, which [`Streams::apply`] turns into
//! state changes here and quiche calls.

mod ids;
mod recv;
mod send;

use std::collections::VecDeque;
use std::sync::Arc;

use quiche::h3;
use quicksand_core::{CloseReason, Metrics, QuicheConnection};

pub(crate) use ids::{IdMap, IdSet};

use crate::error::{ErrorCode, StreamError};
use crate::shared::{Op, Outgoing, RecvEnd, StreamSlot};
use crate::Priority;

/// The receiving half of a stream, as the application drives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvHalf {
    /// Client: the final response head has not come yet (1xx may have).
    AwaitingHead,
    /// Body bytes go to the slot.
    Reading,
    /// Nobody reads: body bytes are drained and dropped; at the first one, STOP_SENDING with
    /// `stop_on_data` if set.
    Discarding { stop_on_data: Option<u64> },
    /// Ended: FIN read, reset by the peer, or STOP_SENDING sent.
    Done,
}

/// The sending half of a stream.
#[derive(Debug)]
pub(crate) enum SendHalf {
    /// Writing what handles queued, in order; what flow control did not take yet waits here.
    Open {
        queue: VecDeque<Outgoing>,
        /// A response head went out (servers: the next head uses `send_additional_headers`).
        head_sent: bool,
    },
    /// Our half ended with FIN or trailers (servers: the final response is complete).
    Finished,
    /// Reset by us, stopped by the peer, or failed.
    Failed,
}

impl SendHalf {
    pub fn open() -> Self {
        SendHalf::Open {
            queue: VecDeque::new(),
            head_sent: false,
        }
    }
}

/// What the application knows about one request stream.
#[derive(Debug)]
pub(crate) struct Entry {
    pub slot: Arc<StreamSlot>,
    pub recv: RecvHalf,
    pub send: SendHalf,
    /// The request's priority (RFC 9218): the order in which streams get send capacity.
    pub priority: Priority,
    /// The peer cancelled the stream (RESET_STREAM or STOP_SENDING), counted once.
    pub cancelled: bool,
}

impl Entry {
    pub fn new(slot: Arc<StreamSlot>, recv: RecvHalf, send: SendHalf) -> Self {
        Entry {
            slot,
            recv,
            send,
            priority: Priority::default(),
            cancelled: false,
        }
    }

    /// Sets the stream's priority, in quiche's scheduler and in the order of `flush_all`.
    pub fn prioritize(&mut self, conn: &mut QuicheConnection, id: u64, priority: Priority) {
        priority.apply(conn, id);
        self.priority = priority;
    }

    /// Server: the final response went out whole.
    pub fn answered(&self) -> bool {
        matches!(self.send, SendHalf::Finished)
    }

    pub fn is_done(&self) -> bool {
        self.recv == RecvHalf::Done && !matches!(self.send, SendHalf::Open { .. })
    }

    /// Ends the receiving half: nobody reads any more, STOP_SENDING went out (or needs not).
    fn recv_done(&mut self) {
        self.recv = RecvHalf::Done;
    }

    /// Ends the sending half with a failure, telling the sender why.
    fn send_failed(&mut self, err: StreamError) {
        self.send = SendHalf::Failed;
        self.slot.fail_send(err);
    }
}

/// The stream table.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    pub map: IdMap<Entry>,
    /// Streams with output queued: `flush_all` writes these (and only these).
    ready: IdSet,
    /// Streams whose last read left bytes in quiche (a read stopped at a buffer cap, or the
    /// consumer's drop was not applied yet): `pump_pending` retries these (and only these).
    unread: IdSet,
    /// PRIORITY_UPDATE frames the control stream had no room for, retried on each flush.
    priority_updates: Vec<(u64, Priority)>,
    /// High-water mark of received body bytes buffered over the connection.
    pub recv_high_water: usize,
    /// High-water mark of queued send bytes on one stream.
    pub send_high_water: usize,
    reader: recv::Reader,
    /// Told the status of every response head written (servers).
    pub metrics: Option<Arc<dyn Metrics>>,
}

impl Streams {
    /// Adds a stream; `ready` if output is queued on it already.
    pub fn insert(&mut self, id: u64, entry: Entry) {
        if matches!(&entry.send, SendHalf::Open { queue, .. } if !queue.is_empty()) {
            self.ready.insert(id);
        }
        self.map.insert(id, entry);
    }

    /// Applies what a handle asked of stream `id`. Ops for streams no longer in the table
    /// are moot (the stream ended; its handles were told).
    pub fn apply(&mut self, h3: &mut h3::Connection, conn: &mut QuicheConnection, id: u64, op: Op) {
        let Some(entry) = self.map.get_mut(&id) else {
            return;
        };
        match op {
            Op::Send(item) => {
                if let SendHalf::Open { queue, .. } = &mut entry.send {
                    queue.push_back(item);
                    self.ready.insert(id);
                }
            }
            Op::Reset(code) => {
                if let SendHalf::Open { .. } = entry.send {
                    // Err: the stream is already gone; nothing to reset.
                    let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code);
                    entry.send_failed(StreamError::ResetLocally { code });
                }
            }
            Op::StopReading { code, eager } => stop_reading(conn, id, entry, code, eager),
            Op::Cancel => {
                if entry.recv == RecvHalf::AwaitingHead {
                    // A client gave up on the response: cancel the request both ways
                    // (RFC 9114 §4.1.1).
                    // Errs: that half is already gone.
                    let code = ErrorCode::RequestCancelled.code();
                    let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code);
                    let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
                    if let SendHalf::Open { .. } = entry.send {
                        entry.send_failed(StreamError::ResetLocally { code });
                    }
                    entry.recv_done();
                } else {
                    // The head came before the future was dropped: only its body goes unread.
                    stop_reading(conn, id, entry, ErrorCode::RequestCancelled.code(), true);
                }
            }
            Op::Priority(priority) => {
                // Our own sending (a request body) follows it as well.
                entry.prioritize(conn, id, priority);
                self.priority_updates.retain(|(i, _)| *i != id);
                send_priority_update(h3, conn, id, priority, &mut self.priority_updates);
            }
            // Requests are the client's, before it has a stream.
            Op::Request(_) => {}
        }
    }

    /// Sets a known stream's priority (see [`Entry::prioritize`]).
    pub fn prioritize(&mut self, conn: &mut QuicheConnection, id: u64, priority: Priority) {
        if let Some(entry) = self.map.get_mut(&id) {
            entry.prioritize(conn, id, priority);
        }
    }

    /// Removes finished streams, calling `on_done` with each.
    pub fn collect_done(&mut self, mut on_done: impl FnMut(u64, &Entry)) {
        let (ready, unread) = (&mut self.ready, &mut self.unread);
        self.map.retain(|&id, e| {
            let done = e.is_done();
            if done {
                ready.remove(&id);
                unread.remove(&id);
                on_done(id, e);
            }
            !done
        });
    }

    /// Fails every stream (the connection ended, for `reason`).
    pub fn fail_all(&mut self, reason: &CloseReason) {
        self.ready.clear();
        self.unread.clear();
        for (_, e) in self.map.drain() {
            e.slot
                .fail(StreamError::ConnectionClosed(Some(reason.clone())));
        }
    }
}

/// The consumer is gone (or stopped the body): STOP_SENDING now if `eager`, else only once
/// body data arrives (drained meanwhile, so the stream's end is still seen).
fn stop_reading(conn: &mut QuicheConnection, id: u64, entry: &mut Entry, code: u64, eager: bool) {
    match entry.recv {
        RecvHalf::Done => {}
        _ if eager => {
            let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
            entry.recv_done();
            let mut received = entry.slot.received();
            if received.end == RecvEnd::Open {
                received.end = RecvEnd::Error(StreamError::ResetLocally { code });
                received.wake();
            }
        }
        _ => {
            entry.recv = RecvHalf::Discarding {
                stop_on_data: Some(code),
            }
        }
    }
}

/// Sends a PRIORITY_UPDATE for request `id`; kept in `retry` if the control stream is full.
fn send_priority_update(
    h3: &mut h3::Connection,
    conn: &mut QuicheConnection,
    id: u64,
    priority: Priority,
    retry: &mut Vec<(u64, Priority)>,
) {
    match h3.send_priority_update_for_request(conn, id, &priority.to_quiche()) {
        Err(h3::Error::StreamBlocked) | Err(h3::Error::Done) => retry.push((id, priority)),
        // Sent, or moot (the stream is gone).
        _ => {}
    }
}
