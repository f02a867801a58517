//! Building transmits: quiche's packets batched for GSO and held for their release time.

use std::time::Instant;

use super::{Connection, Stage};
use crate::gso::{Admission, BatchLimits, GsoBatch, PacketMeta};
use crate::{Application, PooledBuf, Transmit};

impl<A: Application> Connection<A> {
    /// The next datagram(s) to send, at most `max_segments` of them in one GSO transmit.
    ///
    /// The first call of a wake-up runs the application (see the type's docs). Returns `None`
    /// when there is nothing to send now; a transmit whose pacing release time is more than
    /// the context's `release_horizon` away is held until then (`poll_timeout` says when).
    pub fn poll_transmit(&mut self, now: Instant, max_segments: usize) -> Option<Transmit> {
        if self.stage == Stage::Closed {
            return None;
        }
        let span = self.span.clone();
        let _entered = span.enter();
        self.run_application(now);
        let transmit = match self.held.take() {
            Some(t) => Some(t),
            // quiche's `send` resumes a handshake a certificate resolver suspended.
            None if self.conn.is_server() && !self.conn.is_established() => {
                let resume = self.wake.clone();
                crate::settings::with_handshaking(resume.as_ref(), || {
                    self.build_transmit(now, max_segments)
                })
            }
            None => self.build_transmit(now, max_segments),
        };
        let transmit = match transmit {
            Some(t)
                if t.release_at
                    .is_some_and(|at| at > now + self.ctx.release_horizon) =>
            {
                self.held = Some(t);
                None
            }
            other => other,
        };
        if let Some(t) = &transmit {
            self.stats.transmits += 1;
            self.stats.datagrams_sent += t.segments() as u64;
        }
        self.update(now);
        transmit
    }

    /// Asks quiche for packets until a batch is complete.
    fn build_transmit(&mut self, now: Instant, max_segments: usize) -> Option<Transmit> {
        let (mut buf, first) = match self.carry.take() {
            Some(carried) => carried,
            None => {
                let mut buf = self.ctx.buffers.take();
                let first =
                    self.send_packet(now, &mut buf, 0, self.conn.max_send_udp_payload_size())?;
                (buf, first)
            }
        };
        let limits = BatchLimits::new(
            max_segments,
            self.conn.send_quantum(),
            self.conn.max_send_udp_payload_size(),
        )
        .with_release_window(self.ctx.release_horizon);
        let mut batch = GsoBatch::start(first, limits);
        while !batch.is_closed() {
            let offset = batch.bytes();
            let Some(pkt) = self.send_packet(now, &mut buf, offset, batch.room()) else {
                break;
            };
            if batch.offer(pkt) == Admission::Rejected {
                // Different path or release time: this packet starts the next transmit.
                let mut next = self.ctx.buffers.take();
                next.as_mut_vec()
                    .extend_from_slice(&buf[offset..offset + pkt.len]);
                self.carry = Some((next, pkt));
                break;
            }
        }
        buf.as_mut_vec().truncate(batch.bytes());
        let first = *batch.first();
        Some(Transmit {
            destination: first.to,
            source: first.from,
            ecn: None,
            dscp: self.dscp,
            segment_size: (batch.segments() > 1).then_some(batch.segment_size()),
            release_at: first.release_at,
            contents: buf,
        })
    }

    /// Lets quiche write one packet of at most `room` bytes at `offset` in `buf`.
    fn send_packet(
        &mut self,
        now: Instant,
        buf: &mut PooledBuf,
        offset: usize,
        room: usize,
    ) -> Option<PacketMeta> {
        let vec = buf.as_mut_vec();
        vec.resize(offset + room, 0);
        match self.conn.send(&mut vec[offset..offset + room]) {
            Ok((len, info)) => {
                vec.truncate(offset + len);
                Some(PacketMeta::from_send_info(
                    len,
                    &info,
                    now,
                    self.ctx.release_horizon,
                ))
            }
            Err(quiche::Error::Done) => {
                vec.truncate(offset);
                None
            }
            Err(e) => {
                vec.truncate(offset);
                self.ctx.metrics.write_error();
                tracing::debug!(trace_id = self.conn.trace_id(), error = %e, "send failed");
                None
            }
        }
    }
}
