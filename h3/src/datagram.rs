//! HTTP/3 datagrams (RFC 9297): QUIC DATAGRAM frames whose payload starts with the quarter
//! stream id of the request stream they belong to. A [`DatagramFlow`] is handed out with an
//! extended CONNECT request (server) or its response (client).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};
use quicksand_core::QuicheConnection;

use quicksand_core::ApplicationError;

use crate::error::DatagramError;
use crate::shared::{lock, ConnShared};

#[derive(Debug, Default)]
struct FlowState {
    queue: VecDeque<Bytes>,
    /// Payload bytes in `queue`.
    queued_bytes: usize,
    waker: Option<Waker>,
    closed: bool,
}

/// Datagrams queued by flows for the application to send.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: Mutex<VecDeque<(u64, Bytes)>>,
}

/// One request stream's datagram flow. Cloneable; sending is synchronous (datagrams are
/// unreliable: a full send queue drops them), receiving is async.
#[derive(Clone)]
pub struct DatagramFlow {
    quarter_id: u64,
    state: Arc<Mutex<FlowState>>,
    outbox: Arc<Outbox>,
    conn: Arc<ConnShared>,
}

impl fmt::Debug for DatagramFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramFlow")
            .field("quarter_stream_id", &self.quarter_id)
            .finish()
    }
}

impl DatagramFlow {
    /// The quarter stream id (request stream id / 4) that addresses this flow.
    pub fn quarter_stream_id(&self) -> u64 {
        self.quarter_id
    }

    /// True once both sides negotiated HTTP/3 datagrams (known after the peer's SETTINGS).
    pub fn is_negotiated(&self) -> bool {
        self.conn.datagrams.load(Ordering::Acquire)
    }

    /// The largest payload [`send`](Self::send) takes now: the path's largest QUIC datagram
    /// less the quarter stream id. It changes with the path MTU; 0 until the application knows.
    pub fn max_payload(&self) -> usize {
        self.conn
            .datagram_max
            .load(Ordering::Acquire)
            .saturating_sub(varint_len(self.quarter_id))
    }

    /// Queues a datagram. Fails if datagrams were not negotiated, the payload cannot fit in
    /// one datagram on the path ([`max_payload`](Self::max_payload)), or the flow's stream
    /// closed. A datagram queued when the path shrinks later is dropped and counted.
    pub fn send(&self, payload: Bytes) -> Result<(), DatagramError> {
        if !self.is_negotiated() {
            return Err(DatagramError::NotNegotiated);
        }
        let max = self.max_payload();
        if payload.len() > max {
            return Err(DatagramError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        if lock(&self.state).closed {
            return Err(DatagramError::FlowClosed);
        }
        lock(&self.outbox.queue).push_back((self.quarter_id, payload));
        self.conn.wake_connection();
        Ok(())
    }

    /// The next datagram; `None` once the flow's stream has closed and the queue is empty.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut st = lock(&self.state);
        if let Some(d) = st.queue.pop_front() {
            st.queued_bytes -= d.len();
            return Poll::Ready(Some(d));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The next datagram.
    pub async fn recv(&self) -> Option<Bytes> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

/// The application's side: flows by quarter stream id, and the wire format.
#[derive(Debug)]
pub(crate) struct Flows {
    map: crate::streams::IdMap<Arc<Mutex<FlowState>>>,
    outbox: Arc<Outbox>,
    queue_len: usize,
    queue_bytes: usize,
    /// Datagrams dropped (unknown flow, full queue, too large).
    pub dropped: u64,
}

impl Flows {
    /// Flows whose receive queues hold at most `queue_len` datagrams and `queue_bytes` bytes.
    pub fn new(queue_len: usize, queue_bytes: usize) -> Self {
        Flows {
            map: Default::default(),
            outbox: Arc::default(),
            queue_len: queue_len.max(1),
            queue_bytes,
            dropped: 0,
        }
    }

    /// Opens the flow of request stream `stream_id`.
    pub fn open(&mut self, stream_id: u64, conn: &Arc<ConnShared>) -> DatagramFlow {
        let state = self.map.entry(stream_id / 4).or_default().clone();
        DatagramFlow {
            quarter_id: stream_id / 4,
            state,
            outbox: self.outbox.clone(),
            conn: conn.clone(),
        }
    }

    /// Closes the flow of a finished stream.
    pub fn close(&mut self, stream_id: u64) {
        if let Some(state) = self.map.remove(&(stream_id / 4)) {
            let mut st = lock(&state);
            st.closed = true;
            if let Some(w) = st.waker.take() {
                w.wake();
            }
        }
    }

    /// Closes every flow (connection ended).
    pub fn close_all(&mut self) {
        let ids: Vec<u64> = self.map.keys().map(|q| q * 4).collect();
        for id in ids {
            self.close(id);
        }
    }

    /// After each read from the peer: publishes to the flows whether datagrams are usable
    /// (`enabled` by us and by the peer's SETTINGS) and how large they may be, then takes every
    /// received QUIC datagram. A malformed one is the connection error H3_DATAGRAM_ERROR.
    pub fn receive_all(
        &mut self,
        conn: &mut QuicheConnection,
        h3: Option<&quiche::h3::Connection>,
        enabled: bool,
        shared: &ConnShared,
    ) -> Result<(), ApplicationError> {
        let negotiated = enabled && h3.is_some_and(|h3| h3.dgram_enabled_by_peer(conn));
        shared.datagrams.store(negotiated, Ordering::Release);
        shared.datagram_max.store(
            conn.dgram_max_writable_len().unwrap_or(0),
            Ordering::Release,
        );
        self.receive(conn, negotiated).map_err(|()| {
            ApplicationError::new(
                crate::ErrorCode::DatagramError.code(),
                "malformed HTTP/3 datagram",
            )
        })
    }

    /// Reads every received QUIC datagram. `Err` when one is malformed.
    fn receive(&mut self, conn: &mut QuicheConnection, enabled: bool) -> Result<(), ()> {
        // Sized per datagram by quiche: nothing is allocated when none arrived.
        while let Ok(buf) = conn.dgram_recv_buf() {
            let d = Bytes::from(buf);
            if !enabled {
                self.dropped += 1;
                continue;
            }
            let (qid, off) = decode_varint(&d).ok_or(())?;
            match self.map.get(&qid) {
                Some(state) => {
                    let payload = d.slice(off..);
                    let mut st = lock(state);
                    // The oldest go first, until both the count and the bytes fit (a peer on
                    // a path with large packets can send datagrams of up to 64 KiB).
                    while st.queue.len() >= self.queue_len
                        || (!st.queue.is_empty()
                            && st.queued_bytes + payload.len() > self.queue_bytes)
                    {
                        let Some(old) = st.queue.pop_front() else {
                            break;
                        };
                        st.queued_bytes -= old.len();
                        self.dropped += 1;
                    }
                    if payload.len() > self.queue_bytes {
                        self.dropped += 1;
                        continue;
                    }
                    st.queued_bytes += payload.len();
                    st.queue.push_back(payload);
                    if let Some(w) = st.waker.take() {
                        w.wake();
                    }
                }
                // RFC 9297 §2.1: a datagram for a stream we do not know may be dropped.
                None => self.dropped += 1,
            }
        }
        Ok(())
    }

    /// Sends what flows queued; drops what does not fit.
    pub fn send(&mut self, conn: &mut QuicheConnection) {
        if self.map.is_empty() {
            // No flow is open, so none can have queued anything (what a closed flow left
            // behind is moot): no lock for connections without datagrams.
            return;
        }
        let queued: Vec<(u64, Bytes)> = lock(&self.outbox.queue).drain(..).collect();
        for (qid, payload) in queued {
            let mut buf = BytesMut::with_capacity(payload.len() + 8);
            encode_varint(qid, &mut buf);
            buf.put_slice(&payload);
            let max = conn.dgram_max_writable_len().unwrap_or(0);
            if buf.len() > max {
                tracing::debug!(size = buf.len(), max, "HTTP/3 datagram too large; dropped");
                self.dropped += 1;
                continue;
            }
            if conn.dgram_send(&buf).is_err() {
                self.dropped += 1;
            }
        }
    }
}

/// The bytes `encode_varint` takes for `v`.
fn varint_len(v: u64) -> usize {
    match v {
        0..0x40 => 1,
        0x40..0x4000 => 2,
        0x4000..0x4000_0000 => 4,
        _ => 8,
    }
}

/// Decodes a QUIC variable-length integer; returns it and the bytes it took.
pub(crate) fn decode_varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    if b.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for byte in &b[1..len] {
        v = (v << 8) | u64::from(*byte);
    }
    Some((v, len))
}

/// Encodes a QUIC variable-length integer (values up to 2^62 - 1).
pub(crate) fn encode_varint(v: u64, out: &mut BytesMut) {
    if v < 1 << 6 {
        out.put_u8(v as u8);
    } else if v < 1 << 14 {
        out.put_u16(0x4000 | v as u16);
    } else if v < 1 << 30 {
        out.put_u32(0x8000_0000 | v as u32);
    } else {
        out.put_u64(0xc000_0000_0000_0000 | (v & ((1 << 62) - 1)));
    }
}
