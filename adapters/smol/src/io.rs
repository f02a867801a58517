//! The socket under an endpoint task: batched receive into core [`Datagram`]s and batched,
//! GSO-aware send of core [`Transmit`]s, waiting on async-io's [`Async`] readiness.
//!
//! The bookkeeping (buffers, the queue of transmits not yet sent and how far the first one
//! got) is runtime-free; only [`Socket::poll_recv`] and [`Socket::poll_send`] touch the
//! reactor.

use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use async_io::Async;
use bytes::BytesMut;
use quicksand_core::{Datagram, Ecn, Transmit};
use quicksand_udp::{EcnCodepoint, OutgoingDatagram, RecvMeta, UdpSocket, BATCH_SIZE};

/// Receive buffers per `try_recv` call. Each holds a GRO batch of up to 64 datagrams.
const RECV_BUFFERS: usize = 8;

/// Transmits queued for the socket before the endpoint stops pulling more from the driver.
pub(crate) const SEND_QUEUE: usize = BATCH_SIZE;

/// Receive buffers and the queue of unsent transmits; no runtime.
pub(crate) struct Buffers {
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
}

impl Buffers {
    pub(crate) fn new(socket: &UdpSocket, is_server: bool) -> io::Result<Self> {
        let local = socket.local_addr()?;
        let pktinfo = socket.capabilities().pktinfo;
        let len = socket.recv_buffer_len();
        Ok(Buffers {
            local,
            use_pktinfo: is_server && pktinfo,
            set_source: pktinfo && local.ip().is_unspecified(),
            bufs: (0..RECV_BUFFERS).map(|_| vec![0u8; len]).collect(),
            meta: vec![RecvMeta::default(); RECV_BUFFERS],
            pending: VecDeque::with_capacity(SEND_QUEUE),
            front_sent: 0,
        })
    }

    /// The socket's address.
    pub(crate) fn local(&self) -> SocketAddr {
        self.local
    }

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

    /// Queues a transmit for [`Socket::poll_send`].
    pub(crate) fn queue(&mut self, t: Transmit) {
        self.pending.push_back(t);
    }

    /// Transmits not yet sent.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Sends as much of the queue as one `try_send_batch` takes; `WouldBlock` when full.
    fn send(&mut self, socket: &UdpSocket) -> io::Result<()> {
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

/// A quicksand-udp socket registered with async-io's reactor.
pub(crate) struct Socket {
    fd: Async<UdpSocket>,
    /// Buffers and send queue.
    pub(crate) bufs: Buffers,
}

impl Socket {
    /// Registers `socket` with the reactor.
    pub(crate) fn new(socket: UdpSocket, is_server: bool) -> io::Result<Self> {
        let bufs = Buffers::new(&socket, is_server)?;
        Ok(Socket {
            fd: Async::new(socket)?,
            bufs,
        })
    }

    /// The most GSO segments one send takes.
    pub(crate) fn gso_segments(&self) -> usize {
        self.fd.get_ref().gso_segments()
    }

    /// Receives one batch and hands its datagrams to `sink`; `Pending` (waker registered)
    /// when nothing is queued.
    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        sink: impl FnMut(Datagram),
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.bufs.recv(self.fd.get_ref()) {
                Ok(n) => {
                    self.bufs.datagrams(n, now, sink);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.fd.poll_readable(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Sends the queue; `Pending` (waker registered for writability) while the socket is full.
    pub(crate) fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.bufs.pending() > 0 {
            match self.bufs.send(self.fd.get_ref()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.fd.poll_writable(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}
