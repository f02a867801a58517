//! The socket: construction, probing, run-time state and counters.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use socket2::{Domain, Protocol, Socket, Type};

use crate::{sys, SocketCapabilities, UdpSocketConfig};

/// A non-blocking UDP socket with the offloads of this crate.
///
/// All methods take `&self`; the socket may be shared between threads. Run-time fallbacks
/// (GSO, ECN) are kept in atomics and take effect for every user of the socket.
pub struct UdpSocket {
    pub(crate) inner: Socket,
    pub(crate) is_v6: bool,
    /// What probing found; `gso_max_segments` and `ecn` may be lowered at run time, see
    /// `gso_segments` and `tos`.
    pub(crate) probed: SocketCapabilities,
    gso_segments: AtomicUsize,
    tos: AtomicBool,
    pub(crate) counters: Counters,
    #[cfg(test)]
    pub(crate) faults: crate::tests::Faults,
}

/// GSO sends that must fail in a row (each rescued by sending its segments one by one) before
/// GSO is switched off for the socket. One failure proves little: with don't-fragment off, an
/// ICMP "fragmentation needed" from one client's path makes the kernel refuse GSO sends to that
/// client only (`EINVAL`: segments larger than the route's MTU), and every other destination
/// should keep GSO. A kernel or device that cannot do GSO fails every such send, and is found
/// after three.
pub const GSO_STRIKES: u32 = 3;

/// Counters and run-time events, updated by sends and receives.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) truncated_datagrams: AtomicU64,
    pub(crate) truncated_control: AtomicU64,
    pub(crate) dropped_by_kernel: AtomicU64,
    pub(crate) gso_disabled: AtomicBool,
    /// GSO sends that failed in a row (the same segments then went out one per send) with no
    /// GSO send succeeding in between; see [`GSO_STRIKES`].
    pub(crate) gso_strikes: AtomicU32,
    pub(crate) ecn_disabled: AtomicBool,
}

/// What happened on a socket so far; see [`UdpSocket::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketStats {
    /// Datagrams that did not fit their receive buffer and were cut.
    pub truncated_datagrams: u64,
    /// Receives whose control data did not fit (their metadata may be incomplete).
    pub truncated_control: u64,
    /// The kernel's cumulative count of datagrams dropped before reaching the socket (a 32-bit
    /// counter reported with later datagrams, needs `SO_RXQ_OVFL`); see
    /// [`UdpSocket::dropped_by_kernel`].
    pub dropped_by_kernel: u64,
    /// GSO was switched off at run time because the kernel failed GSO sends.
    pub gso_disabled: bool,
    /// ECN/DSCP marking was switched off at run time because the kernel rejected it.
    pub ecn_disabled: bool,
}

fn context(what: impl fmt::Display) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn set_buffer_sizes(sock: &Socket, config: &UdpSocketConfig) -> io::Result<()> {
    if let Some(size) = config.recv_buffer_size {
        sock.set_recv_buffer_size(size)
            .map_err(context(format_args!("setting SO_RCVBUF to {size}")))?;
    }
    if let Some(size) = config.send_buffer_size {
        sock.set_send_buffer_size(size)
            .map_err(context(format_args!("setting SO_SNDBUF to {size}")))?;
    }
    Ok(())
}

#[cfg(not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin")))]
fn set_reuse_port(sock: &Socket) -> io::Result<()> {
    sock.set_reuse_port(true)
        .map_err(context("setting SO_REUSEPORT"))
}

#[cfg(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))]
fn set_reuse_port(_sock: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this platform",
    ))
}

#[cfg(not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin")))]
fn reuse_port(sock: &Socket) -> bool {
    sock.reuse_port().unwrap_or(false)
}

#[cfg(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))]
fn reuse_port(_sock: &Socket) -> bool {
    false
}

impl UdpSocket {
    /// Creates a socket, applies `config` and binds it to `addr`.
    ///
    /// Fails if the socket cannot be created or bound, or if a plain option (`reuse_port`,
    /// buffer sizes, `ipv6_only`) is refused; offloads the kernel refuses are just reported as
    /// missing in [`Self::capabilities`].
    pub fn bind(addr: SocketAddr, config: &UdpSocketConfig) -> io::Result<Self> {
        let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(context("creating UDP socket"))?;
        if let (SocketAddr::V6(_), Some(only)) = (addr, config.ipv6_only) {
            sock.set_only_v6(only)
                .map_err(context(format_args!("setting IPV6_V6ONLY to {only}")))?;
        }
        if config.reuse_port {
            set_reuse_port(&sock)?;
        }
        set_buffer_sizes(&sock, config)?;
        sock.bind(&addr.into())
            .map_err(context(format_args!("binding UDP socket to {addr}")))?;
        Self::set_up(sock, config)
    }

    /// Takes over a bound standard socket, switching it to non-blocking and applying `config`.
    /// The bind-time options `reuse_port` and `ipv6_only` are not changed; the capabilities
    /// report the socket's actual state.
    pub fn from_std(socket: std::net::UdpSocket, config: &UdpSocketConfig) -> io::Result<Self> {
        let sock = Socket::from(socket);
        set_buffer_sizes(&sock, config)?;
        Self::set_up(sock, config)
    }

    fn set_up(sock: Socket, config: &UdpSocketConfig) -> io::Result<Self> {
        sock.set_nonblocking(true)
            .map_err(context("making UDP socket non-blocking"))?;
        let local = sock
            .local_addr()
            .map_err(context("reading UDP socket address"))?;
        let is_v6 = local.is_ipv6();
        let dual_stack = is_v6 && !sock.only_v6().map_err(context("reading IPV6_V6ONLY"))?;
        let mut probed = sys::probe(&sock, config, is_v6, dual_stack);
        probed.dual_stack = dual_stack;
        probed.reuse_port = reuse_port(&sock);
        probed.recv_buffer_size = sock
            .recv_buffer_size()
            .map_err(context("reading SO_RCVBUF"))?;
        probed.send_buffer_size = sock
            .send_buffer_size()
            .map_err(context("reading SO_SNDBUF"))?;
        Ok(Self {
            inner: sock,
            is_v6,
            gso_segments: AtomicUsize::new(probed.gso_max_segments),
            tos: AtomicBool::new(probed.ecn),
            probed,
            counters: Counters::default(),
            #[cfg(test)]
            faults: crate::tests::Faults::default(),
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let addr = self.inner.local_addr()?;
        addr.as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "socket address is not IP"))
    }

    /// What the socket supports now: the probe results, lowered by any run-time fallback.
    pub fn capabilities(&self) -> SocketCapabilities {
        SocketCapabilities {
            gso_max_segments: self.gso_segments(),
            ecn: self.tos_enabled(),
            ..self.probed
        }
    }

    /// Most segments one send carries now (1 once GSO is off). Callers that build GSO batches
    /// should not put more segments in one datagram than this, though more are handled.
    pub fn gso_segments(&self) -> usize {
        self.gso_segments.load(Ordering::Relaxed)
    }

    /// Most datagrams one receive may coalesce (1 without GRO).
    pub fn gro_segments(&self) -> usize {
        self.probed.gro_segments
    }

    /// The kernel's cumulative count of datagrams dropped before they reached this socket, as
    /// last reported with a received datagram (`SO_RXQ_OVFL`; 0 until a drop is reported, and
    /// always 0 without [`SocketCapabilities::rxq_ovfl`]). Reported only once a datagram
    /// arrives after the drops.
    pub fn dropped_by_kernel(&self) -> u64 {
        self.counters.dropped_by_kernel.load(Ordering::Relaxed)
    }

    /// Counters and run-time events.
    pub fn stats(&self) -> SocketStats {
        let c = &self.counters;
        SocketStats {
            truncated_datagrams: c.truncated_datagrams.load(Ordering::Relaxed),
            truncated_control: c.truncated_control.load(Ordering::Relaxed),
            dropped_by_kernel: c.dropped_by_kernel.load(Ordering::Relaxed),
            gso_disabled: c.gso_disabled.load(Ordering::Relaxed),
            ecn_disabled: c.ecn_disabled.load(Ordering::Relaxed),
        }
    }

    /// Gives back the standard socket (still non-blocking, offload options still set).
    pub fn into_std(self) -> std::net::UdpSocket {
        self.inner.into()
    }

    pub(crate) fn tos_enabled(&self) -> bool {
        self.tos.load(Ordering::Relaxed)
    }

    /// A GSO send went out: earlier GSO failures were about their destination, not GSO.
    pub(crate) fn gso_worked(&self) {
        if self.counters.gso_strikes.load(Ordering::Relaxed) != 0 {
            self.counters.gso_strikes.store(0, Ordering::Relaxed);
        }
    }

    /// A GSO send failed and the same segments went out one per send: true once that happened
    /// [`GSO_STRIKES`] times in a row, when GSO is to be switched off.
    pub(crate) fn gso_failed(&self) -> bool {
        self.counters.gso_strikes.fetch_add(1, Ordering::Relaxed) + 1 >= GSO_STRIKES
    }

    /// Switches features off after a send proved them broken.
    pub(crate) fn switch_off(&self, tos: bool, gso: bool) {
        if tos {
            self.tos.store(false, Ordering::Relaxed);
            self.counters.ecn_disabled.store(true, Ordering::Relaxed);
        }
        if gso {
            self.gso_segments.store(1, Ordering::Relaxed);
            self.counters.gso_disabled.store(true, Ordering::Relaxed);
        }
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.inner.as_raw_fd())
            .field("local_addr", &self.local_addr().ok())
            .field("capabilities", &self.capabilities())
            .finish()
    }
}
