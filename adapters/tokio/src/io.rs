//! The socket under an endpoint task: quicksand-adapter's [`SocketBuffers`] waiting on
//! tokio's [`AsyncFd`] readiness.

use std::io;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use quicksand_adapter::{EndpointSocket, SocketBuffers};
use quicksand_core::Datagram;
use quicksand_udp::UdpSocket;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A quicksand-udp socket registered with tokio's reactor (the [`Runtime`](quicksand_adapter::Runtime)
/// socket of [`Tokio`](crate::Tokio)).
pub struct Socket {
    fd: AsyncFd<UdpSocket>,
    /// Buffers and send queue.
    bufs: SocketBuffers,
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
}

impl EndpointSocket for Socket {
    fn buffers(&self) -> &SocketBuffers {
        &self.bufs
    }

    fn buffers_mut(&mut self) -> &mut SocketBuffers {
        &mut self.bufs
    }

    /// Reads only while tokio's cached readiness says readable (a `WouldBlock` clears it),
    /// registering nothing. Reading past it finds the same datagrams a little sooner but
    /// leaves the task nothing to do more often: it then parks its worker in `epoll_wait`
    /// and needs a wake-up for the next ACK (measured: 18–34k context switches per GiB and
    /// 15% less throughput than gating, against about 1k).
    fn try_recv(&mut self, now: Instant, sink: impl FnMut(Datagram)) -> io::Result<usize> {
        let bufs = &mut self.bufs;
        if bufs.has_stash() {
            return bufs.try_recv(self.fd.get_ref(), now, sink);
        }
        self.fd
            .try_io(Interest::READABLE, |fd| bufs.try_recv(fd, now, sink))
    }

    /// Cached readiness may be stale (the task read the socket dry without telling tokio), so
    /// it is checked with a receive whose batch is kept for the next `try_recv`; a
    /// `WouldBlock` clears it and the next poll registers the waker.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let bufs = &mut self.bufs;
            match guard.try_io(|fd| bufs.recv_to_stash(fd.get_ref())) {
                Ok(result) => return Poll::Ready(result),
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
