//! The runtime-free half of an endpoint's socket: receive buffers turned into core
//! [`Datagram`]s, and the queue of [`Transmit`]s not yet sent with how far the first one got.
//! An adapter wraps it with its reactor's readiness ([`EndpointSocket`](crate::EndpointSocket)).

use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use quicksand_core::{Datagram, Ecn, Transmit};
use quicksand_udp::{EcnCodepoint, OutgoingDatagram, RecvMeta, UdpSocket, BATCH_SIZE};

/// Receive buffers per `try_recv` call. Each holds a GRO batch of up to 64 datagrams.
const RECV_BUFFERS: usize = 8;

/// Transmits queued for the socket before the endpoint stops pulling more from the driver.
pub const SEND_QUEUE: usize = BATCH_SIZE;

/// Receive buffers and the queue of unsent transmits; no runtime.
pub struct SocketBuffers {
    local: SocketAddr,
    /// Use the packet's destination address (pktinfo) as the local address. Servers on
    /// wildcard binds need it; clients must not, their connection's path is the socket's.
    use_pktinfo: bool,
    /// Choose the source address per send (bound to an unspecified address, pktinfo works).
    set_source: bool,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    pending: VecDeque<Transmit>,
    /// Bytes of `pending[0]` already sent (whole segments, by a split send).
    front_sent: usize,
    /// Buffers filled by a receive that only checked readiness; the next `try_recv` hands
    /// them out first.
    stashed: usize,
}

impl SocketBuffers {
    /// Buffers for `socket`; a server takes each datagram's local address from pktinfo.
    pub fn new(socket: &UdpSocket, is_server: bool) -> io::Result<Self> {
        let local = socket.local_addr()?;
        let pktinfo = socket.capabilities().pktinfo;
        let len = socket.recv_buffer_len();
        Ok(SocketBuffers {
            local,
            use_pktinfo: is_server && pktinfo,
            set_source: pktinfo && local.ip().is_unspecified(),
            bufs: (0..RECV_BUFFERS).map(|_| vec![0u8; len]).collect(),
            meta: vec![RecvMeta::default(); RECV_BUFFERS],
            pending: VecDeque::with_capacity(SEND_QUEUE),
            front_sent: 0,
            stashed: 0,
        })
    }

    /// The socket's address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Receives one batch (stashed buffers first) and hands its datagrams to `sink`: the
    /// count of filled buffers, `WouldBlock` when nothing is queued.
    pub fn try_recv(
        &mut self,
        socket: &UdpSocket,
        now: Instant,
        sink: impl FnMut(Datagram),
    ) -> io::Result<usize> {
        let n = match std::mem::take(&mut self.stashed) {
            0 => self.recv(socket)?,
            n => n,
        };
        self.datagrams(n, now, sink);
        Ok(n)
    }

    /// Receives one batch and keeps it for the next [`try_recv`](Self::try_recv): how an
    /// adapter whose readiness may be stale checks it (`WouldBlock`: it was).
    pub fn recv_to_stash(&mut self, socket: &UdpSocket) -> io::Result<()> {
        if self.stashed == 0 {
            self.stashed = self.recv(socket)?;
        }
        Ok(())
    }

    /// True if a batch is stashed: [`try_recv`](Self::try_recv) returns it without a syscall.
    pub fn has_stash(&self) -> bool {
        self.stashed > 0
    }

    /// One `try_recv` into the buffers; the count of filled buffers.
    fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut slices: Vec<IoSliceMut<'_>> =
            self.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        socket.try_recv(&mut slices, &mut self.meta)
    }

    /// Turns the first `n` received buffers into datagrams (GRO batches stay whole; the
    /// driver splits them).
    fn datagrams(&self, n: usize, now: Instant, mut sink: impl FnMut(Datagram)) {
        for (buf, meta) in self.bufs.iter().zip(&self.meta).take(n) {
            if meta.truncated {
                tracing::warn!(from = %meta.source, len = meta.len, "truncated datagram dropped");
                continue;
            }
            let local = match meta.destination_ip {
                Some(ip) if self.use_pktinfo => SocketAddr::new(ip, self.local.port()),
                _ => self.local,
            };
            let mut d = Datagram::new(BytesMut::from(&buf[..meta.len]), meta.source, local, now);
            d.ecn = meta.ecn.and_then(|e| Ecn::from_bits(e.to_bits()));
            d.segment_size = (meta.segment_size > 0 && meta.segment_size < meta.len)
                .then_some(meta.segment_size);
            sink(d);
        }
    }

    /// Queues a transmit for [`send`](Self::send).
    pub fn queue(&mut self, t: Transmit) {
        self.pending.push_back(t);
    }

    /// Transmits not yet sent.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Sends as much of the queue as one `try_send_batch` takes; `WouldBlock` when full.
    pub fn send(&mut self, socket: &UdpSocket) -> io::Result<()> {
        let (sent, front_left) = {
            let mut batch: Vec<OutgoingDatagram<'_>> = self
                .pending
                .iter()
                .take(BATCH_SIZE)
                .enumerate()
                .map(|(i, t)| {
                    let skip = if i == 0 { self.front_sent } else { 0 };
                    outgoing(t, &t.contents[skip..], self.set_source)
                })
                .collect();
            let result = socket.try_send_batch(&mut batch);
            match result {
                Ok(n) => (Ok(n), batch.get(n).map(|d| d.contents.len())),
                Err(e) => (Err(e), batch.first().map(|d| d.contents.len())),
            }
        };
        // How far the first unsent datagram got (whole segments of a split send).
        let progress = |pending: &VecDeque<Transmit>| {
            pending
                .front()
                .zip(front_left)
                .map_or(0, |(t, left)| t.contents.len() - left)
        };
        match sent {
            Ok(n) => {
                self.pending.drain(..n);
                self.front_sent = progress(&self.pending);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.front_sent = progress(&self.pending);
                Err(e)
            }
            Err(e) => {
                // A datagram the kernel refuses for good (too big, unreachable): drop it,
                // as the network would, and go on.
                let t = self.pending.pop_front();
                self.front_sent = 0;
                tracing::debug!(error = %e, to = ?t.map(|t| t.destination), "send failed; dropped");
                Ok(())
            }
        }
    }
}

fn outgoing<'a>(t: &Transmit, contents: &'a [u8], set_source: bool) -> OutgoingDatagram<'a> {
    let mut d = OutgoingDatagram::new(t.destination, contents);
    d.source_ip = (set_source && !t.source.ip().is_unspecified()).then(|| t.source.ip());
    d.ecn = t.ecn.and_then(|e| EcnCodepoint::from_bits(e.to_bits()));
    d.dscp = (t.dscp != 0).then_some(t.dscp);
    d.segment_size = t.segment_size;
    d
}
