//! Socket configuration.

/// What to ask of a new socket. Features are requested, not required: whatever the platform
/// refuses is switched off and reported in [`SocketCapabilities`](crate::SocketCapabilities).
/// Only the plain socket options (`reuse_port`, buffer sizes, `ipv6_only`) are errors when they
/// fail.
///
/// The default asks for every offload (GSO, GRO, pktinfo, ECN, don't-fragment), leaves `txtime`
/// and `reuse_port` off, and keeps the OS defaults for buffer sizes and `IPV6_V6ONLY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpSocketConfig {
    /// Send several equal segments in one system call (`UDP_SEGMENT`).
    pub gso: bool,
    /// Let the kernel coalesce received datagrams of one flow into one buffer (`UDP_GRO`).
    pub gro: bool,
    /// Report each datagram's destination address and allow choosing the source address per
    /// send (`IP_PKTINFO` / `IPV6_RECVPKTINFO`). Needed when bound to an unspecified address.
    pub pktinfo: bool,
    /// Read ECN marks on receive and write ECN/DSCP marks on send.
    pub ecn: bool,
    /// Accept per-datagram transmit times (`SO_TXTIME`, `CLOCK_MONOTONIC`). Off by default: it
    /// only paces with a qdisc that honours it (`fq`, `etf`).
    pub txtime: bool,
    /// Set the don't-fragment bit and never fragment locally (`IP_PMTUDISC_PROBE`), as QUIC
    /// requires (RFC 9000, section 14). A too-big send fails with `EMSGSIZE` instead.
    pub dont_fragment: bool,
    /// `SO_REUSEPORT`: let several sockets bind the same address and port; the kernel spreads
    /// flows across them. Only applies in [`UdpSocket::bind`](crate::UdpSocket::bind).
    pub reuse_port: bool,
    /// `SO_RCVBUF` in bytes (the kernel may double or cap it at `net.core.rmem_max`; the
    /// actual value is reported). Default: 4 MiB — a server's socket takes many connections'
    /// handshake flights at once, and the kernel default (~200 KiB) drops them on a burst
    /// (measured: 64 concurrent handshakes went from 1 s, one lost flight and a probe timeout,
    /// to milliseconds).
    pub recv_buffer_size: Option<usize>,
    /// `SO_SNDBUF` in bytes (capped at `net.core.wmem_max`). Default: 4 MiB.
    pub send_buffer_size: Option<usize>,
    /// `IPV6_V6ONLY` for IPv6 sockets; `Some(false)` makes a dual-stack socket. `None` keeps the
    /// OS default. Only applies in [`UdpSocket::bind`](crate::UdpSocket::bind).
    pub ipv6_only: Option<bool>,
}

impl Default for UdpSocketConfig {
    fn default() -> Self {
        Self {
            gso: true,
            gro: true,
            pktinfo: true,
            ecn: true,
            txtime: false,
            dont_fragment: true,
            reuse_port: false,
            recv_buffer_size: Some(4 << 20),
            send_buffer_size: Some(4 << 20),
            ipv6_only: None,
        }
    }
}
