//! Connection statistics.

use std::time::Duration;

use super::Stage;

/// A snapshot of a connection's statistics.
#[derive(Clone, Debug)]
pub struct ConnectionStats {
    /// quiche's counters (packets, bytes, losses, ...).
    pub quic: quiche::Stats,
    /// Per-path statistics (RTT, cwnd, delivery rate, ...).
    pub paths: Vec<quiche::PathStats>,
    /// Time from creation to handshake completion, once complete.
    pub handshake_duration: Option<Duration>,
    /// The stage at the time of the snapshot.
    pub stage: Stage,
    /// Transmits handed to the driver.
    pub transmits: u64,
    /// Datagrams (GSO segments) in those transmits.
    pub datagrams_sent: u64,
    /// Datagrams handed to the connection.
    pub datagrams_received: u64,
}
