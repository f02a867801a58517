//! Datagrams in and out of the core.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;

use crate::buffer::PooledBuf;

/// Explicit Congestion Notification codepoint of an IP packet (RFC 3168).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ecn {
    /// ECT(0): ECN-capable transport.
    Ect0,
    /// ECT(1): ECN-capable transport.
    Ect1,
    /// CE: congestion experienced.
    Ce,
}

impl Ecn {
    /// The two low bits of the IP TOS / traffic-class byte, `None` for Not-ECT.
    pub fn from_bits(bits: u8) -> Option<Ecn> {
        match bits & 0b11 {
            0b10 => Some(Ecn::Ect0),
            0b01 => Some(Ecn::Ect1),
            0b11 => Some(Ecn::Ce),
            _ => None,
        }
    }

    /// The two low bits this codepoint occupies in the TOS byte.
    pub fn to_bits(self) -> u8 {
        match self {
            Ecn::Ect0 => 0b10,
            Ecn::Ect1 => 0b01,
            Ecn::Ce => 0b11,
        }
    }
}

/// A UDP datagram received from the network, as the driver hands it to the core.
///
/// With GRO the payload may hold several QUIC datagrams of `segment_size` bytes each (the
/// last may be shorter); [`Datagram::split_segments`] takes them apart without copying.
#[derive(Debug)]
pub struct Datagram {
    /// The UDP payload. Mutable because quiche decrypts in place.
    pub payload: BytesMut,
    /// The address the datagram came from.
    pub peer: SocketAddr,
    /// The local address it was sent to (from `IP_PKTINFO`, or the socket's address).
    pub local: SocketAddr,
    /// The ECN mark of the IP packet, if read.
    pub ecn: Option<Ecn>,
    /// GRO stride: `Some(n)` if the payload holds coalesced segments of `n` bytes.
    pub segment_size: Option<usize>,
    /// When the driver received it.
    pub received_at: Instant,
}

impl Datagram {
    /// A single (not coalesced) datagram.
    pub fn new(
        payload: impl Into<BytesMut>,
        peer: SocketAddr,
        local: SocketAddr,
        now: Instant,
    ) -> Self {
        Datagram {
            payload: payload.into(),
            peer,
            local,
            ecn: None,
            segment_size: None,
            received_at: now,
        }
    }

    /// Splits a GRO-coalesced datagram into its segments, in order, sharing the allocation.
    ///
    /// A datagram without a segment size (or with one not smaller than the payload) comes back
    /// as itself. A zero segment size is treated as "not coalesced".
    ///
    /// ```
    /// # use quicksand_core::Datagram;
    /// # let a = "127.0.0.1:1".parse().unwrap();
    /// let mut d = Datagram::new(&[7u8; 25][..], a, a, std::time::Instant::now());
    /// d.segment_size = Some(10);
    /// let sizes: Vec<usize> = d.split_segments().map(|s| s.payload.len()).collect();
    /// assert_eq!(sizes, [10, 10, 5]);
    /// ```
    pub fn split_segments(self) -> SegmentIter {
        SegmentIter { rest: Some(self) }
    }

    /// The payloads [`split_segments`](Self::split_segments) would give, borrowed.
    pub fn segment_payloads(&self) -> impl Iterator<Item = &[u8]> {
        let stride = match self.segment_size {
            Some(s) if s > 0 && s < self.payload.len() => s,
            _ => self.payload.len().max(1),
        };
        self.payload.chunks(stride)
    }
}

/// Iterator over the segments of a GRO datagram; see [`Datagram::split_segments`].
#[derive(Debug)]
pub struct SegmentIter {
    rest: Option<Datagram>,
}

impl Iterator for SegmentIter {
    type Item = Datagram;

    fn next(&mut self) -> Option<Datagram> {
        let mut d = self.rest.take()?;
        let stride = match d.segment_size {
            Some(s) if s > 0 && s < d.payload.len() => s,
            _ => {
                d.segment_size = None;
                return Some(d);
            }
        };
        let head = d.payload.split_to(stride);
        let first = Datagram {
            payload: head,
            peer: d.peer,
            local: d.local,
            ecn: d.ecn,
            segment_size: None,
            received_at: d.received_at,
        };
        if !d.payload.is_empty() {
            self.rest = Some(d);
        }
        Some(first)
    }
}

/// One UDP send: one datagram, or several equal-size segments for GSO.
///
/// `contents` holds `segments()` datagrams back to back: each `segment_size` bytes, the last
/// possibly shorter. A driver without GSO sends each segment as its own datagram.
#[derive(Debug)]
pub struct Transmit {
    /// Where to send.
    pub destination: SocketAddr,
    /// The local address to send from (`IP_PKTINFO`), so replies leave from the address the
    /// peer used.
    pub source: SocketAddr,
    /// ECN codepoint to set, if any.
    pub ecn: Option<Ecn>,
    /// DSCP value (upper six bits of the TOS byte) for the packet.
    pub dscp: u8,
    /// GSO segment size; `None` when `contents` is a single datagram.
    pub segment_size: Option<usize>,
    /// Pacing release time (quiche's `SendInfo::at`): the datagram should not leave before it.
    /// Drivers with `SO_TXTIME` hand it to the kernel; others wait for it.
    pub release_at: Option<Instant>,
    /// The datagram(s), in a pooled buffer that goes back to its pool when dropped.
    pub contents: PooledBuf,
}

impl Transmit {
    /// How many datagrams this transmit carries.
    pub fn segments(&self) -> usize {
        match self.segment_size {
            Some(s) if s > 0 => self.contents.len().div_ceil(s),
            _ => 1,
        }
    }

    /// The datagrams of this transmit, in order.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        let stride = match self.segment_size {
            Some(s) if s > 0 => s,
            _ => self.contents.len().max(1),
        };
        self.contents.chunks(stride)
    }
}
