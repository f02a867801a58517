//! The socket under an endpoint task: quicksand-adapter's [`SocketBuffers`] waiting on
//! tokio's [`AsyncFd`] readiness.

use std::io;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use quicksand_adapter::{EndpointSocket, SocketBuffers};
use quicksand_core::Datagram;
use quicksand_udp::UdpSocket;
use tokio::io::unix::AsyncFd;

/// A quicksand-udp socket registered with tokio's reactor.
pub(crate) struct Socket {
    fd: AsyncFd<UdpSocket>,
    /// Buffers and send queue.
    pub(crate) bufs: SocketBuffers,
}

impl Socket {
    /// Registers `socket`; must run inside a tokio runtime.
    pub(crate) fn new(socket: UdpSocket, is_server: bool) -> io::Result<Self> {
        let bufs = SocketBuffers::new(&socket, is_server)?;
        // SAFETY: the socket owns its descriptor (a socket2 socket) for its whole life and
        // always reports the same one; the AsyncFd owns the socket.
        let fd = unsafe { AsyncFd::register(socket)? };
        Ok(Socket { fd, bufs })
    }

    /// The most GSO segments one send takes.
    pub(crate) fn gso_segments(&self) -> usize {
        self.fd.get_ref().gso_segments()
    }
}

impl EndpointSocket for Socket {
    fn buffers(&self) -> &SocketBuffers {
        &self.bufs
    }

    fn buffers_mut(&mut self) -> &mut SocketBuffers {
        &mut self.bufs
    }

    /// Receives one batch and hands its datagrams to `sink`; `Pending` (waker registered)
    /// when nothing is queued.
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        sink: impl FnMut(Datagram),
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let bufs = &mut self.bufs;
            match guard.try_io(|fd| bufs.recv(fd.get_ref())) {
                Ok(Ok(n)) => {
                    self.bufs.datagrams(n, now, sink);
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Readiness cleared; poll again to register the waker.
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends the queue; `Pending` (waker registered for writability) while the socket is full.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.bufs.pending() > 0 {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let bufs = &mut self.bufs;
            match guard.try_io(|fd| bufs.send(fd.get_ref())) {
                Ok(r) => r?,
                Err(_would_block) => continue,
            }
        }
        Poll::Ready(Ok(()))
    }
}
