//! The application's table of request streams and the quiche calls that move bytes between quiche
//! and the shared per-stream state: reading bodies (within the buffer caps) and writing what
//! handles queued. Shared by the server and the client applications.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use quiche::h3;
use quicksand_core::{CloseReason, Metrics, QuicheConnection, StreamBuf};

use crate::error::StreamError;
use crate::headers;
use crate::shared::{Outgoing, RecvEnd, StreamShared};
use crate::Priority;

/// What the application knows about one request stream.
#[derive(Debug)]
pub(crate) struct Entry {
    pub shared: Arc<StreamShared>,
    /// A response head went out (servers: the next head uses `send_additional_headers`).
    pub head_sent: bool,
    /// quiche may hold body bytes we did not read (we stopped at a buffer cap).
    pub data_pending: bool,
    /// The peer's half ended (FIN read, reset, or we sent STOP_SENDING).
    pub recv_done: bool,
    /// Our half ended (FIN or trailers written, or reset).
    pub send_done: bool,
    /// Client: the final response head arrived. Server: the final response was written.
    pub final_head: bool,
    /// The request's priority (RFC 9218): the order in which streams get send capacity.
    pub priority: Priority,
    /// The peer cancelled the stream (RESET_STREAM or STOP_SENDING), counted once.
    pub cancelled: bool,
    /// Output is queued that the last flush could not write (flow control): `flush_all`
    /// retries it. True at first, so a new stream's first flush happens.
    pub queued: bool,
}

impl Entry {
    pub fn new(shared: Arc<StreamShared>) -> Self {
        Entry {
            shared,
            head_sent: false,
            data_pending: false,
            recv_done: false,
            send_done: false,
            final_head: false,
            priority: Priority::default(),
            cancelled: false,
            queued: true,
        }
    }

    /// Sets the stream's priority, in quiche's scheduler and in the order of `flush_all`.
    pub fn prioritize(&mut self, conn: &mut QuicheConnection, id: u64, priority: Priority) {
        priority.apply(conn, id);
        self.priority = priority;
    }

    pub fn is_done(&self) -> bool {
        self.recv_done && self.send_done
    }
}

/// Hashes stream ids cheaply. They are not chosen freely by the peer (quiche accepts only ids
/// within the stream limits it granted, and they come in sequence), so a keyed hash buys
/// nothing against collisions here, while SipHash cost about 2k instructions per request.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys use this hasher; anything else still hashes, just slowly.
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, id: u64) {
        // The low two bits name the stream type, always the same in one map; the multiply
        // spreads the rest over the high bits, the shift folds them into the low ones, which
        // pick the bucket.
        let h = (id >> 2).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

/// A map keyed by stream id.
pub(crate) type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;
/// A set of stream ids.
pub(crate) type IdSet = HashSet<u64, std::hash::BuildHasherDefault<IdHasher>>;

/// The stream table.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    pub map: IdMap<Entry>,
    /// High-water mark of received body bytes buffered over the connection.
    pub recv_high_water: usize,
    /// High-water mark of queued send bytes on one stream.
    pub send_high_water: usize,
    /// Where body bytes are read to, straight into its spare capacity (not zeroed first: that
    /// was a second pass over every byte received). A read of at least a quarter chunk is
    /// handed over without a copy (split off; the rest of the allocation serves the next
    /// reads); a shorter one is copied out at its size, so a 100-byte body neither costs a
    /// chunk-sized allocation nor pins one while it waits.
    scratch: BytesMut,
    /// Where body bytes nobody will read are drained to.
    discard: Vec<u8>,
    /// Open streams whose reads once stopped at the buffer cap (see `pump_readable`).
    capped: IdSet,
    /// Told the status of every response head written (servers).
    pub metrics: Option<Arc<dyn Metrics>>,
}

impl Streams {
    /// Reads body bytes of `id` from quiche while the caps allow.
    pub fn pump_recv(
        &mut self,
        h3: &mut h3::Connection,
        conn: &mut QuicheConnection,
        id: u64,
        chunk: usize,
    ) -> Result<(), h3::Error> {
        let Some(entry) = self.map.get_mut(&id) else {
            return Ok(());
        };
        entry.data_pending = true;
        if entry.recv_done {
            return Ok(());
        }
        loop {
            let mut st = entry.shared.lock();
            if st.recv_dropped {
                // Nobody reads: drain and discard so the FIN/reset can be seen.
                let stop = st.recv_stop_on_data;
                drop(st);
                if self.discard.len() != chunk {
                    self.discard = vec![0; chunk];
                }
                match h3.recv_body(conn, id, &mut self.discard) {
                    Ok(n) => match stop {
                        // Body data nobody will read: now ask the peer to stop sending it.
                        Some(code) if n > 0 => {
                            let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
                            let mut st = entry.shared.lock();
                            st.recv_stop_on_data = None;
                            st.recv_end = RecvEnd::Error(StreamError::ResetLocally { code });
                            entry.recv_done = true;
                            entry.data_pending = false;
                            return Ok(());
                        }
                        _ => continue,
                    },
                    Err(h3::Error::Done) => {
                        entry.data_pending = false;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
            // Once the peer has closed the connection, what quiche holds is all there will be
            // (bounded by flow control): take it whole, so none of it dies with quiche.
            let room = if conn.peer_error().is_some() {
                usize::MAX
            } else {
                entry.shared.recv_room(&st)
            };
            if room == 0 {
                self.capped.insert(id);
                st.recv_blocked = true;
                entry
                    .shared
                    .conn
                    .recv_blocked
                    .store(true, Ordering::Release);
                return Ok(());
            }
            let n = room.min(chunk);
            self.scratch.clear();
            self.scratch.reserve(n);
            match h3.recv_body_buf(conn, id, (&mut self.scratch).limit(n)) {
                Ok(read) => {
                    let bytes = if read >= chunk / 4 {
                        self.scratch.split().freeze()
                    } else {
                        Bytes::copy_from_slice(&self.scratch)
                    };
                    st.recv_buffered += read;
                    let total = entry
                        .shared
                        .conn
                        .recv_buffered
                        .fetch_add(read, Ordering::AcqRel)
                        + read;
                    self.recv_high_water = self.recv_high_water.max(total);
                    st.recv.push_back(bytes);
                    if let Some(w) = st.recv_waker.take() {
                        w.wake();
                    }
                }
                Err(h3::Error::Done) => {
                    entry.data_pending = false;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Retries reading every stream that stopped at a cap.
    pub fn pump_pending(
        &mut self,
        h3: &mut h3::Connection,
        conn: &mut QuicheConnection,
        chunk: usize,
    ) -> Result<(), h3::Error> {
        let pending: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, e)| e.data_pending && !e.recv_done)
            .map(|(id, _)| *id)
            .collect();
        for id in pending {
            self.pump_recv(h3, conn, id, chunk)?;
        }
        Ok(())
    }

    /// Reads the streams that once stopped at the buffer cap and quiche holds bytes for.
    /// Needed besides the `Data` event: quiche re-arms that event only when a read drained the
    /// stream, and a read that stops at our cap exactly at a DATA frame boundary leaves it
    /// armed, so the next frame would raise no event. Streams that never hit the cap always
    /// get their event, so the common case costs nothing here.
    pub fn pump_readable(
        &mut self,
        h3: &mut h3::Connection,
        conn: &mut QuicheConnection,
        chunk: usize,
    ) -> Result<(), h3::Error> {
        if self.capped.is_empty() {
            return Ok(());
        }
        let map = &self.map;
        self.capped
            .retain(|id| map.get(id).is_some_and(|e| !e.recv_done));
        let readable: Vec<u64> = self
            .capped
            .iter()
            .copied()
            .filter(|&id| conn.stream_readable(id))
            .collect();
        for id in readable {
            self.pump_recv(h3, conn, id, chunk)?;
        }
        Ok(())
    }

    /// The peer finished its half.
    pub fn on_finished(&mut self, id: u64) {
        if let Some(e) = self.map.get_mut(&id) {
            e.recv_done = true;
            e.data_pending = false;
            let mut st = e.shared.lock();
            if st.recv_end == RecvEnd::Open {
                st.recv_end = RecvEnd::Fin;
            }
            if let Some(w) = st.recv_waker.take() {
                w.wake();
            }
        }
    }

    /// The peer reset its half. Returns true if the stream was known.
    pub fn on_reset(&mut self, id: u64, code: u64) -> bool {
        let Some(e) = self.map.get_mut(&id) else {
            return false;
        };
        e.cancelled = true;
        e.recv_done = true;
        e.data_pending = false;
        let mut st = e.shared.lock();
        let err = StreamError::ResetByPeer { code };
        if st.recv_end == RecvEnd::Open {
            st.recv_end = RecvEnd::Error(err.clone());
        }
        if st.head.is_none() {
            st.head = Some(Err(err.into()));
        }
        st.wake_all();
        true
    }

    /// A trailer section arrived.
    pub fn on_trailers(
        &mut self,
        id: u64,
        list: &[h3::Header],
    ) -> Result<(), headers::HeaderError> {
        if let Some(e) = self.map.get_mut(&id) {
            let trailers = headers::parse_trailers(list)?;
            e.shared.lock().recv_trailers = Some(trailers);
        }
        Ok(())
    }

    /// Applies what handles asked for (resets, STOP_SENDING, priority updates) and writes
    /// queued data on every stream, as far as flow control allows. quiche takes only about a
    /// congestion window of data at a time, so who writes first gets the capacity: streams
    /// write in priority order (urgency, then stream id), or a less urgent response queued
    /// earlier would hold the window and the priority would only reorder within it.
    ///
    /// Only streams a handle touched since the last flush, or with output still queued, are
    /// visited (and locked): a wake-up for one response does not lock every stream in flight.
    pub fn flush_all(&mut self, h3: &mut h3::Connection, conn: &mut QuicheConnection) {
        let mut order: Vec<(u8, u64)> = Vec::new();
        for (id, entry) in self.map.iter_mut() {
            let touched = entry.shared.take_touched();
            if touched {
                apply_local(h3, conn, *id, entry);
            }
            if (touched || entry.queued) && !entry.send_done {
                order.push((entry.priority.urgency, *id));
            }
        }
        order.sort_unstable();
        for (_, id) in order {
            let Some(entry) = self.map.get_mut(&id) else {
                continue;
            };
            flush(h3, conn, id, entry, self.metrics.as_deref());
            let queued = entry.shared.lock().send_buffered;
            self.send_high_water = self.send_high_water.max(queued);
        }
    }

    /// Finds the streams the peer sent STOP_SENDING on while we had nothing to write (quiche
    /// reports them writable, with an error) and fails their sending half. Returns each such
    /// stream with whether it had no final response yet and was not counted as cancelled
    /// before: a server counts those as cancelled requests.
    pub fn take_stopped(&mut self, conn: &mut QuicheConnection) -> Vec<(u64, bool)> {
        let stopped: Vec<(u64, u64)> = conn
            .writable()
            .filter(|id| self.map.get(id).is_some_and(|e| !e.send_done))
            .filter_map(|id| match conn.stream_writable(id, 0) {
                Err(quiche::Error::StreamStopped(code)) => Some((id, code)),
                _ => None,
            })
            .collect();
        let mut cancelled = Vec::new();
        for (id, code) in stopped {
            let Some(entry) = self.map.get_mut(&id) else {
                continue;
            };
            entry.send_done = true;
            cancelled.push((id, !entry.final_head && !entry.cancelled));
            entry.cancelled = true;
            entry
                .shared
                .lock()
                .fail_send(StreamError::StoppedByPeer { code });
        }
        cancelled
    }

    /// Sets a known stream's priority (see [`Entry::prioritize`]).
    pub fn prioritize(&mut self, conn: &mut QuicheConnection, id: u64, priority: Priority) {
        if let Some(entry) = self.map.get_mut(&id) {
            entry.prioritize(conn, id, priority);
        }
    }

    /// Removes finished streams, calling `on_done` with the id of each.
    pub fn collect_done(&mut self, mut on_done: impl FnMut(u64)) {
        self.map.retain(|&id, e| {
            let done = e.is_done();
            if done {
                on_done(id);
            }
            !done
        });
    }

    /// Fails every stream (the connection ended, for `reason`).
    pub fn fail_all(&mut self, reason: &CloseReason) {
        for (_, e) in self.map.drain() {
            e.shared
                .lock()
                .fail(StreamError::ConnectionClosed(Some(reason.clone())));
        }
    }
}

/// Resets, STOP_SENDING and priority updates the handles asked for.
fn apply_local(h3: &mut h3::Connection, conn: &mut QuicheConnection, id: u64, entry: &mut Entry) {
    let update = entry.shared.lock().priority_update.take();
    if let Some(priority) = update {
        // Our own sending (a request body) follows it as well.
        entry.prioritize(conn, id, priority);
        match h3.send_priority_update_for_request(conn, id, &priority.to_quiche()) {
            // The control stream is full: try again on the next wake-up, unless a newer
            // update came meanwhile.
            Err(h3::Error::StreamBlocked) | Err(h3::Error::Done) => {
                entry.shared.lock().priority_update.get_or_insert(priority);
                entry.shared.touch();
            }
            // Sent, or moot (the stream is gone).
            _ => {}
        }
    }
    let mut st = entry.shared.lock();
    if let Some(code) = st.reset.take() {
        if !entry.send_done {
            // Err: the stream is already gone; nothing to reset.
            let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code);
            entry.send_done = true;
        }
    }
    if let Some(code) = st.recv_stop.take() {
        if !entry.recv_done {
            let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
            entry.recv_done = true;
            entry.data_pending = false;
        }
    }
    if st.head_dropped && !entry.final_head && !(entry.send_done && entry.recv_done) {
        // A client gave up on the response: cancel the request both ways (RFC 9114 §4.1.1).
        let code = crate::error::ErrorCode::RequestCancelled.code();
        let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, code);
        let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
        entry.send_done = true;
        entry.recv_done = true;
        entry.data_pending = false;
        st.fail_send(StreamError::ResetLocally { code });
    }
    if st.recv_dropped && !entry.recv_done && st.recv_end != RecvEnd::Open {
        // Dropped after its end was already known.
        entry.recv_done = matches!(st.recv_end, RecvEnd::Fin | RecvEnd::Error(_));
    }
}

/// Writes the stream's queue in order until it is empty or flow control stops it.
fn flush(
    h3: &mut h3::Connection,
    conn: &mut QuicheConnection,
    id: u64,
    entry: &mut Entry,
    metrics: Option<&dyn Metrics>,
) {
    let mut st = entry.shared.lock();
    loop {
        let fin_next = matches!(st.send.get(1), Some(Outgoing::Fin));
        let Some(item) = st.send.pop_front() else {
            break;
        };
        // Ok(true): the stream's end went out. Err: `item` (or its rest) goes back in front.
        let result: Result<bool, (Outgoing, h3::Error)> = match item {
            Outgoing::Head(fields) => {
                let r = if !entry.head_sent {
                    h3.send_response(conn, id, &fields, fin_next)
                } else {
                    h3.send_additional_headers(conn, id, &fields, false, fin_next)
                };
                match r {
                    Ok(()) => {
                        entry.head_sent = true;
                        if let (Some(m), Some(status)) = (metrics, headers::status(&fields)) {
                            m.h3_response(status);
                        }
                        Ok(fin_next)
                    }
                    Err(e) => Err((Outgoing::Head(fields), e)),
                }
            }
            // Zero-copy: quiche keeps (a slice of) the application's `Bytes` until it is
            // acknowledged, and copies it once, into the packet.
            Outgoing::Data(bytes) => {
                match h3.send_body_zc(conn, id, &mut StreamBuf(bytes.clone()), fin_next) {
                    Ok(n) => {
                        st.send_buffered = st.send_buffered.saturating_sub(n);
                        if n == bytes.len() {
                            Ok(fin_next)
                        } else {
                            Err((Outgoing::Data(bytes.slice(n..)), h3::Error::Done))
                        }
                    }
                    Err(e) => Err((Outgoing::Data(bytes), e)),
                }
            }
            Outgoing::Trailers(fields) => {
                match h3.send_additional_headers(conn, id, &fields, true, true) {
                    Ok(()) => Ok(true),
                    Err(e) => Err((Outgoing::Trailers(fields), e)),
                }
            }
            Outgoing::Fin => match h3.send_body(conn, id, b"", true) {
                Ok(_) => Ok(true),
                Err(e) => Err((Outgoing::Fin, e)),
            },
        };
        match result {
            Ok(true) => {
                entry.send_done = true;
                // On a server the final response is complete; a client's `final_head`
                // tracks the response it receives instead.
                if conn.is_server() {
                    entry.final_head = true;
                }
                st.send.clear();
                break;
            }
            Ok(false) => {}
            Err((item, h3::Error::Done | h3::Error::StreamBlocked)) => {
                st.send.push_front(item);
                break;
            }
            Err((_, h3::Error::TransportError(quiche::Error::StreamStopped(code)))) => {
                entry.send_done = true;
                st.fail_send(StreamError::StoppedByPeer { code });
                break;
            }
            Err((_, e)) => {
                tracing::debug!(stream = id, error = ?e, "stream write failed");
                entry.send_done = true;
                st.fail_send(StreamError::Protocol(e));
                break;
            }
        }
    }
    entry.queued = !entry.send_done && !st.send.is_empty();
    if st.send_buffered < entry.shared.cap {
        if let Some(w) = st.send_waker.take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::IdHasher;

    #[test]
    fn stream_ids_spread_over_the_low_bits_that_pick_buckets() {
        let build = BuildHasherDefault::<IdHasher>::default();
        for kind in 0..4u64 {
            let buckets: std::collections::HashSet<u64> = (0..1024u64)
                .map(|n| build.hash_one(n * 4 + kind) & 1023)
                .collect();
            // Sequential ids of one type must not crowd into a fraction of 1,024 buckets
            // (an identity hash of multiples of 4 would use a quarter of them).
            assert!(
                buckets.len() > 600,
                "type {kind}: {} buckets",
                buckets.len()
            );
        }
    }
}
