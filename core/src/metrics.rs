//! Pluggable telemetry: a [`Metrics`] trait whose methods default to doing nothing, and
//! [`CountingMetrics`], a lock-free set of counters that implements it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why an inbound datagram was dropped without reaching a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The header could not be parsed.
    Malformed,
    /// An Initial shorter than 1200 bytes.
    InitialTooShort,
    /// A long-header packet for no known connection that is not an Initial.
    UnexpectedPacketType,
    /// A short-header packet for no known connection (a stateless reset may answer it).
    UnknownConnection,
    /// The connection's inbound queue was full.
    QueueFull,
    /// The endpoint is at its connection or handshake limit.
    Overloaded,
    /// The endpoint is shutting down and takes no new connections.
    ShuttingDown,
    /// quiche refused the packet.
    Rejected,
    /// It would have drawn a stateless answer (version negotiation, RETRY) beyond that
    /// answer's rate limit.
    RateLimited,
}

impl DropReason {
    /// A short stable name (for logs and metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::InitialTooShort => "initial_too_short",
            DropReason::UnexpectedPacketType => "unexpected_packet_type",
            DropReason::UnknownConnection => "unknown_connection",
            DropReason::QueueFull => "queue_full",
            DropReason::Overloaded => "overloaded",
            DropReason::ShuttingDown => "shutting_down",
            DropReason::Rejected => "rejected",
            DropReason::RateLimited => "rate_limited",
        }
    }

    /// Every reason, in declaration order (the index of each is `reason as usize`).
    pub const ALL: [DropReason; 9] = [
        DropReason::Malformed,
        DropReason::InitialTooShort,
        DropReason::UnexpectedPacketType,
        DropReason::UnknownConnection,
        DropReason::QueueFull,
        DropReason::Overloaded,
        DropReason::ShuttingDown,
        DropReason::Rejected,
        DropReason::RateLimited,
    ];
}

/// Why a client's Initial did not become a connection (or, for a token that is not a RETRY
/// token, was answered with a RETRY instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The address-validation token could not be opened (forged, wrong key, truncated).
    InvalidToken,
    /// The token had expired.
    ExpiredToken,
    /// The token was minted for another client address.
    WrongAddress,
    /// The accept backlog or connection limit was reached.
    Backlog,
    /// The endpoint is shutting down.
    ShuttingDown,
    /// The application's accept function declined the connection.
    Declined,
    /// quiche could not create the connection (its error is logged).
    ConnectionFailed,
    /// The client's address or its prefix has as many handshakes in progress as it may
    /// (`EndpointConfig::max_handshakes_per_address` / `_per_prefix`).
    AddressQuota,
}

impl RejectReason {
    /// Every reason, in declaration order (the index of each is `reason as usize`).
    pub const ALL: [RejectReason; 8] = [
        RejectReason::InvalidToken,
        RejectReason::ExpiredToken,
        RejectReason::WrongAddress,
        RejectReason::Backlog,
        RejectReason::ShuttingDown,
        RejectReason::Declined,
        RejectReason::ConnectionFailed,
        RejectReason::AddressQuota,
    ];

    /// A short, stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidToken => "invalid_token",
            RejectReason::ExpiredToken => "expired_token",
            RejectReason::WrongAddress => "wrong_address",
            RejectReason::Backlog => "backlog",
            RejectReason::ShuttingDown => "shutting_down",
            RejectReason::Declined => "declined",
            RejectReason::ConnectionFailed => "connection_failed",
            RejectReason::AddressQuota => "address_quota",
        }
    }

    /// One sentence for an operator.
    pub fn explain(self) -> &'static str {
        match self {
            RejectReason::InvalidToken => "address-validation token forged, truncated or unknown",
            RejectReason::ExpiredToken => "address-validation token expired",
            RejectReason::WrongAddress => "address-validation token minted for another address",
            RejectReason::Backlog => "accept backlog or connection limit reached",
            RejectReason::ShuttingDown => "the endpoint is shutting down",
            RejectReason::Declined => "the application declined it",
            RejectReason::ConnectionFailed => "quiche could not create the connection",
            RejectReason::AddressQuota => {
                "too many handshakes in progress from this address or network"
            }
        }
    }
}

/// Why a handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandshakeFailure {
    /// The handshake deadline passed.
    Timeout,
    /// The idle timer fired during the handshake.
    IdleTimeout,
    /// TLS or transport error during the handshake.
    Protocol,
    /// Closed before completing (locally or by the peer).
    Closed,
}

impl HandshakeFailure {
    /// A short stable name (for logs and metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::IdleTimeout => "idle_timeout",
            HandshakeFailure::Protocol => "protocol",
            HandshakeFailure::Closed => "closed",
        }
    }
}

/// A stateless answer an endpoint sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatelessKind {
    /// Version negotiation.
    VersionNegotiation,
    /// RETRY (address validation).
    Retry,
    /// Stateless reset.
    Reset,
}

impl StatelessKind {
    /// Every kind, in declaration order.
    pub const ALL: [StatelessKind; 3] = [
        StatelessKind::VersionNegotiation,
        StatelessKind::Retry,
        StatelessKind::Reset,
    ];

    /// A short stable name (for metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            StatelessKind::VersionNegotiation => "version_negotiation",
            StatelessKind::Retry => "retry",
            StatelessKind::Reset => "stateless_reset",
        }
    }
}

/// What a connection's transport did since it last reported to [`Metrics::transport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportDelta {
    /// QUIC packets sent.
    pub packets_sent: u64,
    /// QUIC packets received.
    pub packets_received: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
}

impl TransportDelta {
    /// The totals of `stats`.
    pub(crate) fn totals(stats: &quiche::Stats) -> Self {
        TransportDelta {
            packets_sent: stats.sent as u64,
            packets_received: stats.recv as u64,
            bytes_sent: stats.sent_bytes,
            bytes_received: stats.recv_bytes,
            packets_lost: stats.lost as u64,
        }
    }

    /// What `self` (newer totals) adds to `earlier`.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        TransportDelta {
            packets_sent: self.packets_sent.saturating_sub(earlier.packets_sent),
            packets_received: self
                .packets_received
                .saturating_sub(earlier.packets_received),
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
            packets_lost: self.packets_lost.saturating_sub(earlier.packets_lost),
        }
    }
}

/// Telemetry sink. Implementations must be cheap and thread-safe: the core calls them on the
/// hot path.
pub trait Metrics: Send + Sync + 'static {
    /// A connection was created.
    fn connection_opened(&self) {}
    /// A connection was dropped from memory.
    fn connection_closed(&self) {}
    /// A handshake completed after `duration`.
    fn handshake_completed(&self, duration: Duration) {
        let _ = duration;
    }
    /// A handshake failed.
    fn handshake_failed(&self, reason: HandshakeFailure) {
        let _ = reason;
    }
    /// quiche failed to write a packet (an error other than "nothing to send").
    fn write_error(&self) {}
    /// An Initial was refused.
    fn initial_rejected(&self, reason: RejectReason) {
        let _ = reason;
    }
    /// We closed a connection with this code.
    fn local_close(&self, application: bool, code: u64) {
        let _ = (application, code);
    }
    /// The peer closed a connection with this code.
    fn peer_close(&self, application: bool, code: u64) {
        let _ = (application, code);
    }
    /// An inbound datagram was dropped.
    fn datagram_dropped(&self, reason: DropReason) {
        let _ = reason;
    }
    /// The endpoint sent a stateless answer of `bytes` bytes.
    fn stateless_sent(&self, kind: StatelessKind, bytes: usize) {
        let _ = (kind, bytes);
    }
    /// A connection's packets, bytes and losses since its last report: at most once a
    /// second per connection while it runs, and once when it ends.
    fn transport(&self, delta: &TransportDelta) {
        let _ = delta;
    }
    /// A server worker forwarded `count` datagrams that reached its socket to the worker
    /// owning their connection (the adapters report this).
    fn datagrams_forwarded(&self, count: u64) {
        let _ = count;
    }
    /// An HTTP/3 server answered a request with `status` (quicksand-h3 reports this).
    fn h3_response(&self, status: u16) {
        let _ = status;
    }
}

/// Metrics that record nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopMetrics;

impl Metrics for NoopMetrics {}

/// Plain atomic counters for every [`Metrics`] event; read them directly.
#[derive(Debug, Default)]
pub struct CountingMetrics {
    /// Connections created.
    pub connections_opened: AtomicU64,
    /// Connections dropped.
    pub connections_closed: AtomicU64,
    /// Handshakes completed.
    pub handshakes_completed: AtomicU64,
    /// Sum of handshake durations in microseconds.
    pub handshake_micros_total: AtomicU64,
    /// Handshakes failed, by [`HandshakeFailure`] in declaration order.
    pub handshakes_failed: [AtomicU64; 4],
    /// Packet write errors.
    pub write_errors: AtomicU64,
    /// Initials refused, by [`RejectReason`] in declaration order.
    pub initials_rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Local closes.
    pub local_closes: AtomicU64,
    /// Peer closes.
    pub peer_closes: AtomicU64,
    /// Dropped datagrams, by [`DropReason`] in declaration order.
    pub datagrams_dropped: [AtomicU64; DropReason::ALL.len()],
    /// Stateless answers sent, by [`StatelessKind`] in declaration order.
    pub stateless_sent: [AtomicU64; StatelessKind::ALL.len()],
    /// Packets sent, received and lost, and bytes sent and received, summed over
    /// [`Metrics::transport`] reports.
    pub packets_sent: AtomicU64,
    /// See `packets_sent`.
    pub packets_received: AtomicU64,
    /// See `packets_sent`.
    pub packets_lost: AtomicU64,
    /// See `packets_sent`.
    pub bytes_sent: AtomicU64,
    /// See `packets_sent`.
    pub bytes_received: AtomicU64,
    /// Datagrams forwarded between workers.
    pub datagrams_forwarded: AtomicU64,
    /// HTTP/3 responses sent.
    pub h3_responses: AtomicU64,
}

impl CountingMetrics {
    /// Connections created and not yet dropped.
    pub fn connections_in_memory(&self) -> u64 {
        self.connections_opened
            .load(Relaxed)
            .saturating_sub(self.connections_closed.load(Relaxed))
    }

    /// Dropped datagrams for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.datagrams_dropped[reason as usize].load(Relaxed)
    }

    /// Refused Initials for one reason.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.initials_rejected[reason as usize].load(Relaxed)
    }

    /// Failed handshakes for one reason.
    pub fn failed(&self, reason: HandshakeFailure) -> u64 {
        self.handshakes_failed[reason as usize].load(Relaxed)
    }
}

impl Metrics for CountingMetrics {
    fn connection_opened(&self) {
        self.connections_opened.fetch_add(1, Relaxed);
    }
    fn connection_closed(&self) {
        self.connections_closed.fetch_add(1, Relaxed);
    }
    fn handshake_completed(&self, duration: Duration) {
        self.handshakes_completed.fetch_add(1, Relaxed);
        self.handshake_micros_total
            .fetch_add(duration.as_micros() as u64, Relaxed);
    }
    fn handshake_failed(&self, reason: HandshakeFailure) {
        self.handshakes_failed[reason as usize].fetch_add(1, Relaxed);
    }
    fn write_error(&self) {
        self.write_errors.fetch_add(1, Relaxed);
    }
    fn initial_rejected(&self, reason: RejectReason) {
        self.initials_rejected[reason as usize].fetch_add(1, Relaxed);
    }
    fn local_close(&self, _: bool, _: u64) {
        self.local_closes.fetch_add(1, Relaxed);
    }
    fn peer_close(&self, _: bool, _: u64) {
        self.peer_closes.fetch_add(1, Relaxed);
    }
    fn datagram_dropped(&self, reason: DropReason) {
        self.datagrams_dropped[reason as usize].fetch_add(1, Relaxed);
    }
    fn stateless_sent(&self, kind: StatelessKind, _: usize) {
        self.stateless_sent[kind as usize].fetch_add(1, Relaxed);
    }
    fn transport(&self, d: &TransportDelta) {
        self.packets_sent.fetch_add(d.packets_sent, Relaxed);
        self.packets_received.fetch_add(d.packets_received, Relaxed);
        self.packets_lost.fetch_add(d.packets_lost, Relaxed);
        self.bytes_sent.fetch_add(d.bytes_sent, Relaxed);
        self.bytes_received.fetch_add(d.bytes_received, Relaxed);
    }
    fn datagrams_forwarded(&self, count: u64) {
        self.datagrams_forwarded.fetch_add(count, Relaxed);
    }
    fn h3_response(&self, _: u16) {
        self.h3_responses.fetch_add(1, Relaxed);
    }
}
