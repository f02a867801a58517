//! The socket under an endpoint task: quicksand-adapter's [`SocketBuffers`] waiting on
//! async-io's [`Async`] readiness.

use std::io;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use async_io::Async;
use quicksand_adapter::{EndpointSocket, SocketBuffers};
use quicksand_core::Datagram;
use quicksand_udp::UdpSocket;

/// A quicksand-udp socket registered with async-io's reactor (the
/// [`Runtime`](quicksand_adapter::Runtime) socket of [`Smol`](crate::Smol)).
pub struct Socket {
    fd: Async<UdpSocket>,
    /// Buffers and send queue.
    bufs: SocketBuffers,
}

impl Socket {
    /// Registers `socket` with the reactor.
    pub(crate) fn new(socket: UdpSocket, is_server: bool) -> io::Result<Self> {
        let bufs = SocketBuffers::new(&socket, is_server)?;
        Ok(Socket {
            fd: Async::new(socket)?,
            bufs,
        })
    }
}

impl EndpointSocket for Socket {
    fn buffers(&self) -> &SocketBuffers {
        &self.bufs
    }

    fn buffers_mut(&mut self) -> &mut SocketBuffers {
        &mut self.bufs
    }

    fn try_recv(&mut self, now: Instant, sink: impl FnMut(Datagram)) -> io::Result<usize> {
        self.bufs.try_recv(self.fd.get_ref(), now, sink)
    }

    /// async-io re-arms its one-shot interest here; between parks the socket is not
    /// registered, so the reactor (often its own "async-io" thread) is not woken for data the
    /// busy task reads anyway.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.fd.poll_readable(cx)
    }

    /// Sends the queue; `Pending` (waker registered for writability) while the socket is full.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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
