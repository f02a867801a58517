//! GSO batching: which consecutive packets from quiche may leave in one `sendmsg`.
//!
//! A batch is a pure function of what quiche emits. Packets join the batch while they have
//! the first packet's size (the last may be shorter, and then closes it), the same path and a
//! release time within the batch's release window, up to the socket's segment limit and a byte
//! budget (quiche's `send_quantum`, never above [`MAX_TRANSMIT_BYTES`]).
//!
//! The release window is the driver's release horizon: a driver sends a transmit as soon as
//! its release time is within the horizon, so packets that quiche's pacer spaced a few
//! microseconds apart leave together anyway. Batching them keeps GSO working with pacing on
//! (one packet per send otherwise: quiche gives every packet its own release time).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The largest UDP payload one send can carry over IPv4 (65535 − 8 − 20).
pub const MAX_TRANSMIT_BYTES: usize = 65_507;

/// Bounds on one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most segments in one send (the socket's GSO limit; 1 without GSO).
    pub max_segments: usize,
    /// Most bytes in one send.
    pub max_bytes: usize,
    /// How much later than the first packet's release time a packet may be released and still
    /// join the batch (zero: only equal release times batch).
    pub release_window: Duration,
}

impl BatchLimits {
    /// Limits for a socket that takes `max_segments` per send and a connection whose
    /// `send_quantum` is `quantum` bytes. One full-size packet is always allowed.
    pub fn new(max_segments: usize, quantum: usize, max_packet: usize) -> Self {
        BatchLimits {
            max_segments: max_segments.max(1),
            max_bytes: quantum.max(max_packet).min(MAX_TRANSMIT_BYTES),
            release_window: Duration::ZERO,
        }
    }

    /// The same limits, letting packets released up to `window` after the batch's first one
    /// join it.
    pub fn with_release_window(self, window: Duration) -> Self {
        BatchLimits {
            release_window: window,
            ..self
        }
    }
}

/// What quiche said about one packet it wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Bytes written.
    pub len: usize,
    /// Local address to send from.
    pub from: SocketAddr,
    /// Peer address to send to.
    pub to: SocketAddr,
    /// Release time, `None` when due (already, or within the release window of `now`).
    pub release_at: Option<Instant>,
}

impl PacketMeta {
    /// Builds the metadata from quiche's send info; a release time not after `now + window`
    /// is "due": a driver sends it now either way.
    pub fn from_send_info(
        len: usize,
        info: &quiche::SendInfo,
        now: Instant,
        window: Duration,
    ) -> Self {
        PacketMeta {
            len,
            from: info.from,
            to: info.to,
            release_at: (info.at > now + window).then_some(info.at),
        }
    }
}

/// Whether a packet joined the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The packet is part of the batch.
    Appended,
    /// The packet must start a new batch.
    Rejected,
}

/// A batch being built. Start it with the first packet, then [`offer`](GsoBatch::offer) each
/// following one until it is rejected or [`is_closed`](GsoBatch::is_closed).
#[derive(Clone, Debug)]
pub struct GsoBatch {
    first: PacketMeta,
    limits: BatchLimits,
    segments: usize,
    bytes: usize,
    closed: bool,
}

impl GsoBatch {
    /// A batch holding `first`.
    pub fn start(first: PacketMeta, limits: BatchLimits) -> Self {
        let mut batch = GsoBatch {
            first,
            limits,
            segments: 1,
            bytes: first.len,
            closed: false,
        };
        batch.update_closed();
        batch
    }

    /// Offers the next packet quiche wrote.
    pub fn offer(&mut self, pkt: PacketMeta) -> Admission {
        let fits = !self.closed
            && pkt.len > 0
            && pkt.len <= self.first.len
            && pkt.from == self.first.from
            && pkt.to == self.first.to
            && self.releases_with_first(pkt.release_at)
            && self.bytes + pkt.len <= self.limits.max_bytes;
        if !fits {
            return Admission::Rejected;
        }
        self.segments += 1;
        self.bytes += pkt.len;
        if pkt.len < self.first.len {
            self.closed = true;
        }
        self.update_closed();
        Admission::Appended
    }

    /// How many bytes the next packet may have to be admitted: 0 once closed. Hand quiche a
    /// buffer of exactly this size so it cannot write a packet that does not fit.
    pub fn room(&self) -> usize {
        if self.closed {
            0
        } else {
            self.first.len
        }
    }

    /// True when no further packet can join.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Size of every segment but possibly the last.
    pub fn segment_size(&self) -> usize {
        self.first.len
    }

    /// Segments in the batch.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Bytes in the batch.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The first packet, whose path and release time the batch carries.
    pub fn first(&self) -> &PacketMeta {
        &self.first
    }

    /// Due packets batch with due ones; a later release time joins a batch that is released
    /// at most `release_window` before it. Quiche's release times never go backwards, so a
    /// due packet after a held one starts a new batch (it was due first).
    fn releases_with_first(&self, release_at: Option<Instant>) -> bool {
        match (self.first.release_at, release_at) {
            (None, None) => true,
            (Some(first), Some(at)) => at >= first && at <= first + self.limits.release_window,
            _ => false,
        }
    }

    fn update_closed(&mut self) {
        if self.segments >= self.limits.max_segments
            || self.bytes + self.first.len > self.limits.max_bytes
        {
            self.closed = true;
        }
    }
}
