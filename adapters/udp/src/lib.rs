//! Runtime-free UDP sockets for quicksand.
//!
//! This crate is the socket layer under the async adapters: it owns a non-blocking UDP socket and
//! moves datagrams in and out of it with the offloads a QUIC stack wants, without depending on any
//! async runtime or on the QUIC implementation. An adapter registers the file descriptor
//! ([`AsRawFd`](std::os::fd::AsRawFd) / [`AsFd`](std::os::fd::AsFd)) with its reactor, calls
//! [`UdpSocket::try_send`] / [`UdpSocket::try_recv`], and waits for readiness whenever they return
//! [`std::io::ErrorKind::WouldBlock`].
//!
//! # What it does
//!
//! | feature | Linux | other Unix |
//! | --- | --- | --- |
//! | GSO (`UDP_SEGMENT` control message per send) | yes | split into one send per segment |
//! | GRO (`UDP_GRO`, coalesced receive + segment size) | yes | no (one datagram per buffer) |
//! | batching (`sendmmsg` / `recvmmsg`) | yes | a loop of `sendto` / `recvmsg` |
//! | local address (`IP_PKTINFO` / `IPV6_RECVPKTINFO`), source address on send | yes | no |
//! | ECN and DSCP (`IP_RECVTOS` / `IPV6_RECVTCLASS`, `IP_TOS` / `IPV6_TCLASS` on send) | yes | no |
//! | kernel drop counter (`SO_RXQ_OVFL`) | yes | no |
//! | pacing timestamps (`SO_TXTIME`, opt-in) | yes | no |
//! | don't-fragment (`IP_PMTUDISC_PROBE`) | yes | no |
//! | `SO_REUSEPORT` | yes | yes (where the OS has it) |
//! | dual stack (v4-mapped addresses shown as IPv4) | yes | yes |
//!
//! Every offload is probed once when the socket is set up ([`SocketCapabilities`]); a feature the
//! kernel refuses is switched off and reported, never an error. Two features are also checked at
//! run time, because kernels are known to accept the socket option and then fail the send:
//!
//! - **GSO**: a send carrying `UDP_SEGMENT` that fails with `EIO` or `EINVAL` is retried one
//!   segment per send, so every segment is still delivered. If that works, GSO was at fault for
//!   that send; after [`GSO_STRIKES`] such sends in a row, with no GSO send succeeding in
//!   between, it is switched off for the socket ([`UdpSocket::gso_segments`] becomes 1,
//!   [`SocketStats::gso_disabled`] is set). One destination's shrunken path MTU thus costs only
//!   that destination's sends. If the single-segment send fails the same way, GSO is not blamed
//!   and the error is returned.
//! - **ECN/DSCP**: a send whose `IP_TOS` / `IPV6_TCLASS` control message makes the kernel answer
//!   `EINVAL` is resent without it; if that works, TOS marking is switched off for the socket
//!   ([`SocketCapabilities::ecn`] becomes false, [`SocketStats::ecn_disabled`] is set).
//!
//! # Sending
//!
//! [`OutgoingDatagram`] describes one datagram, or with `segment_size` a GSO batch of equal
//! segments (the last may be shorter). [`UdpSocket::try_send`] and [`UdpSocket::try_send_batch`]
//! take the datagrams by `&mut`: when the layer has to split a batch into several sends (no GSO,
//! more segments than one send may carry, or the GSO fallback) and the socket fills up part-way,
//! the datagram's `contents` is advanced past the segments that went out before
//! `WouldBlock` is returned. Retrying the *same* value after the socket becomes writable therefore
//! sends every segment exactly once.
//!
//! Pacing: `txtime` is a `CLOCK_MONOTONIC` time in nanoseconds; [`instant_to_monotonic_ns`]
//! converts a [`std::time::Instant`] without relying on how `Instant` is represented.
//!
//! # Receiving
//!
//! [`UdpSocket::try_recv`] fills several buffers in one system call and describes each with a
//! [`RecvMeta`]. With GRO one buffer may hold several datagrams of `segment_size` bytes (the last
//! may be shorter); [`RecvMeta::segments`] splits them. Buffers should be
//! [`RECV_BUFFER_LEN`] bytes ([`UdpSocket::recv_buffer_len`]), enough for any coalesced batch.
//! Truncation is never silent: a cut datagram comes back with [`RecvMeta::truncated`] set and is
//! counted in [`SocketStats::truncated_datagrams`]; cut control data is counted in
//! [`SocketStats::truncated_control`].
//!
//! # Addresses
//!
//! On a dual-stack IPv6 socket, IPv4 peers appear as IPv4 addresses in [`RecvMeta`], and IPv4
//! destinations and source addresses are mapped (`::ffff:a.b.c.d`) when sending. An IPv4 socket
//! accepts v4-mapped IPv6 destinations and unmaps them.
//!
//! # Platforms
//!
//! Unix only. The Linux back end is used on Linux; every other Unix gets the portable back end.
//! Building with the environment variable `QUICKSAND_UDP_FORCE_FALLBACK=1` selects the portable
//! back end on Linux as well, which is how it is tested.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(unix))]
compile_error!("quicksand-udp supports Unix platforms only");

pub(crate) mod activation;
mod addr;
mod caps;
mod config;
mod recv;
mod send;
mod socket;
mod steering;
mod sys;
mod txtime;

#[cfg(test)]
mod tests;

pub use activation::systemd_sockets;
pub use caps::SocketCapabilities;
pub use config::UdpSocketConfig;
pub use recv::{decode_recv, split_segments, RecvMeta, Segments};
pub use send::OutgoingDatagram;
pub use socket::{SocketStats, UdpSocket, GSO_STRIKES};
pub use steering::SteeringRule;
pub use txtime::{instant_to_monotonic_ns, monotonic_now_ns};

/// Most datagrams one `sendmmsg`/`recvmmsg` call handles. Longer batches take several calls.
pub const BATCH_SIZE: usize = 32;

/// Most segments one GSO send carries (the kernel's `UDP_MAX_SEGMENTS`).
pub const GSO_MAX_SEGMENTS: usize = 64;

/// Most datagrams the kernel coalesces into one GRO receive (`UDP_GRO_CNT_MAX`).
pub const GRO_MAX_SEGMENTS: usize = 64;

/// Most payload bytes one send may carry, GSO batches included. The IPv4 total-length field is
/// 16 bits; 65 535 less 20 bytes of IPv4 header and 8 of UDP header.
pub const MAX_SEND_PAYLOAD: usize = 65_507;

/// Receive buffer length that can hold any datagram or GRO batch (up to [`GRO_MAX_SEGMENTS`]
/// segments): the kernel stops coalescing before the 16-bit IP length overflows, so 64 KiB
/// suffices. Smaller buffers work, but big datagrams then come back truncated
/// ([`RecvMeta::truncated`]).
pub const RECV_BUFFER_LEN: usize = 65_535;

/// An ECN codepoint (RFC 3168), the low two bits of the IPv4 TOS / IPv6 traffic class byte.
/// "Not ECN-capable" (`0b00`) is represented as `None` where an `Option<EcnCodepoint>` is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EcnCodepoint {
    /// ECN-capable transport, codepoint 1 (`0b01`).
    Ect1 = 0b01,
    /// ECN-capable transport, codepoint 0 (`0b10`).
    Ect0 = 0b10,
    /// Congestion experienced (`0b11`).
    Ce = 0b11,
}

impl EcnCodepoint {
    /// Reads the ECN bits of a TOS / traffic class byte; `None` for Not-ECT.
    pub fn from_bits(tos: u8) -> Option<Self> {
        match tos & 0b11 {
            0b01 => Some(Self::Ect1),
            0b10 => Some(Self::Ect0),
            0b11 => Some(Self::Ce),
            _ => None,
        }
    }

    /// The two ECN bits.
    pub fn to_bits(self) -> u8 {
        self as u8
    }
}
