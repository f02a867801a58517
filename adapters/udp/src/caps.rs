//! What a socket turned out to support.

/// The features a socket has, probed once when it is set up (by whether the kernel accepted each
/// socket option) and lowered at run time if a send proves a feature broken (see the crate docs).
///
/// [`UdpSocket::capabilities`](crate::UdpSocket::capabilities) returns a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketCapabilities {
    /// Most segments one send may carry; 1 means no GSO (the layer then splits batches itself).
    pub gso_max_segments: usize,
    /// Most datagrams one receive may coalesce; 1 means no GRO.
    pub gro_segments: usize,
    /// Destination addresses are reported on receive and source addresses honoured on send.
    pub pktinfo: bool,
    /// ECN marks are read on receive and ECN/DSCP marks written on send.
    pub ecn: bool,
    /// Per-datagram transmit times are passed to the kernel.
    pub txtime: bool,
    /// The kernel reports its cumulative drop counter (`SO_RXQ_OVFL`).
    pub rxq_ovfl: bool,
    /// `SO_REUSEPORT` is set on the socket.
    pub reuse_port: bool,
    /// The don't-fragment bit is set and local fragmentation is off.
    pub dont_fragment: bool,
    /// The socket is IPv6 and also carries IPv4 (v4-mapped) traffic.
    pub dual_stack: bool,
    /// Actual `SO_RCVBUF` in bytes as reported by the kernel.
    pub recv_buffer_size: usize,
    /// Actual `SO_SNDBUF` in bytes as reported by the kernel.
    pub send_buffer_size: usize,
}

impl SocketCapabilities {
    /// Capabilities of a socket with no offloads at all.
    pub(crate) fn none() -> Self {
        Self {
            gso_max_segments: 1,
            gro_segments: 1,
            pktinfo: false,
            ecn: false,
            txtime: false,
            rxq_ovfl: false,
            reuse_port: false,
            dont_fragment: false,
            dual_stack: false,
            recv_buffer_size: 0,
            send_buffer_size: 0,
        }
    }
}
