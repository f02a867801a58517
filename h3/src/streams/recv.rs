//! Receiving: body bytes from quiche into the streams' slots, within the buffer caps; the
//! peer's FIN, resets and trailers.

use std::sync::atomic::Ordering;

use bytes::{BufMut, Bytes, BytesMut};
use quiche::h3;
use quicksand_core::QuicheConnection;

use super::{Entry, IdSet, RecvHalf, Streams};
use crate::error::StreamError;
use crate::headers;
use crate::shared::RecvEnd;

/// The application's read buffers.
#[derive(Debug, Default)]
pub(super) struct Reader {
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
}

/// How one read round of a stream ended.
enum Read {
    /// quiche has nothing more now.
    Drained,
    /// Stopped with bytes left in quiche (a cap, or a consumer's drop not applied yet).
    Stopped,
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
            self.unread.remove(&id);
            return Ok(());
        };
        let read = match entry.recv {
            // quiche reports body data only after the head; nothing to read before it.
            RecvHalf::Done | RecvHalf::AwaitingHead => Read::Drained,
            RecvHalf::Discarding { stop_on_data } => {
                self.reader
                    .drain(h3, conn, id, entry, stop_on_data, chunk)?
            }
            RecvHalf::Reading => {
                let read = self.reader.read(h3, conn, id, entry, chunk)?;
                let total = entry.slot.conn.recv_buffered.load(Ordering::Acquire);
                self.recv_high_water = self.recv_high_water.max(total);
                read
            }
        };
        match read {
            Read::Stopped => self.unread.insert(id),
            Read::Drained => self.unread.remove(&id),
        };
        Ok(())
    }

    /// Retries reading every stream whose last read left bytes in quiche. A stream gone from
    /// the table leaves the set here.
    pub fn pump_pending(
        &mut self,
        h3: &mut h3::Connection,
        conn: &mut QuicheConnection,
        chunk: usize,
    ) -> Result<(), h3::Error> {
        if self.unread.is_empty() {
            return Ok(());
        }
        let unread: Vec<u64> = self.unread.iter().copied().collect();
        for id in unread {
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
        if self.reader.capped.is_empty() {
            return Ok(());
        }
        let map = &self.map;
        self.reader
            .capped
            .retain(|id| map.get(id).is_some_and(|e| e.recv != RecvHalf::Done));
        let readable: Vec<u64> = self
            .reader
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
            if e.recv == RecvHalf::Done {
                // Whatever ended the half told the consumer already (a request whose HEADERS
                // carried the FIN, a stop, a reset).
                return;
            }
            e.recv = RecvHalf::Done;
            let mut received = e.slot.received();
            if received.end == RecvEnd::Open {
                received.end = RecvEnd::Fin;
            }
            received.wake();
        }
    }

    /// The peer reset its half. Returns true if the stream was known.
    pub fn on_reset(&mut self, id: u64, code: u64) -> bool {
        let Some(e) = self.map.get_mut(&id) else {
            return false;
        };
        e.cancelled = true;
        e.recv = RecvHalf::Done;
        e.slot.received().fail(&StreamError::ResetByPeer { code });
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
            e.slot.received().trailers = Some(trailers);
        }
        Ok(())
    }
}

impl Reader {
    /// Hands body bytes to the slot until quiche has none, a cap is reached, or the consumer
    /// turns out to be gone.
    fn read(
        &mut self,
        h3: &mut h3::Connection,
        conn: &mut QuicheConnection,
        id: u64,
        entry: &mut Entry,
        chunk: usize,
    ) -> Result<Read, h3::Error> {
        let slot = &entry.slot;
        let mut received = slot.received();
        loop {
            if received.dropped {
                // The consumer's op says what to do with the rest; it is applied before the
                // next read.
                return Ok(Read::Stopped);
            }
            // Once the peer has closed the connection, what quiche holds is all there will be
            // (bounded by flow control): take it whole, so none of it dies with quiche.
            let room = if conn.peer_error().is_some() {
                usize::MAX
            } else {
                slot.recv_room(&received)
            };
            if room == 0 {
                self.capped.insert(id);
                received.blocked = true;
                slot.conn.recv_blocked.store(true, Ordering::Release);
                return Ok(Read::Stopped);
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
                    received.buffered += read;
                    slot.conn.recv_buffered.fetch_add(read, Ordering::AcqRel);
                    received.chunks.push_back(bytes);
                    if let Some(w) = received.waker.take() {
                        w.wake();
                    }
                }
                Err(h3::Error::Done) => return Ok(Read::Drained),
                Err(e) => return Err(e),
            }
        }
    }

    /// Drains and drops body bytes nobody will read, so the FIN or reset can be seen; at the
    /// first byte, sends STOP_SENDING with `stop_on_data` if set.
    fn drain(
        &mut self,
        h3: &mut h3::Connection,
        conn: &mut QuicheConnection,
        id: u64,
        entry: &mut Entry,
        stop_on_data: Option<u64>,
        chunk: usize,
    ) -> Result<Read, h3::Error> {
        if self.discard.len() != chunk {
            self.discard = vec![0; chunk];
        }
        loop {
            match h3.recv_body(conn, id, &mut self.discard) {
                Ok(n) => {
                    if let Some(code) = stop_on_data.filter(|_| n > 0) {
                        // Body data nobody will read: now ask the peer to stop sending it.
                        let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, code);
                        entry.recv = RecvHalf::Done;
                        let mut received = entry.slot.received();
                        if received.end == RecvEnd::Open {
                            received.end = RecvEnd::Error(StreamError::ResetLocally { code });
                        }
                        return Ok(Read::Drained);
                    }
                }
                Err(h3::Error::Done) => return Ok(Read::Drained),
                Err(e) => return Err(e),
            }
        }
    }
}
