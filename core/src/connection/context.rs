//! Resources a connection shares with its endpoint and siblings.

use std::sync::Arc;
use std::time::Duration;

use crate::anti_replay::{AntiReplay, SharedStrikeRegister};
use crate::{
    BufferPool, ConnectionIdGenerator, ConnectionLogs, Metrics, NoopMetrics, RandomConnectionIds,
    StatelessResetKey,
};

/// What a connection borrows from whoever created it (normally the endpoint): the CID
/// generator and reset key it issues new IDs with, the metrics sink, the send-buffer pool, and
/// the driver's pacing horizon, and the 0-RTT anti-replay record.
///
/// Built from [`Default`] and changed field by field (it may gain fields):
///
/// ```
/// let mut ctx = quicksand_core::ConnectionContext::default();
/// ctx.release_horizon = std::time::Duration::ZERO;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectionContext {
    /// Makes the connection's new source CIDs.
    pub cid_generator: Arc<dyn ConnectionIdGenerator>,
    /// Derives the stateless-reset token of each CID.
    pub reset_key: Arc<StatelessResetKey>,
    /// Telemetry.
    pub metrics: Arc<dyn Metrics>,
    /// Send buffers.
    pub buffers: BufferPool,
    /// Transmits due within this much of `now` are handed out at once, carrying their release
    /// time (for `SO_TXTIME`, or a driver that sends slightly early); later ones are held and
    /// `poll_timeout` wakes the driver for them. Packets released within this much of a
    /// batch's first one share its GSO send. Default: 1 ms (a timer's granularity).
    pub release_horizon: Duration,
    /// Decides whether a server connection uses 0-RTT early data at once or only after the
    /// handshake (see [`crate::anti_replay`]). Default: a [`SharedStrikeRegister`] of its own,
    /// shared by every clone of this context (the workers of one server share one).
    pub anti_replay: Arc<dyn AntiReplay>,
    /// Where each connection's key log and qlog go. Default: none.
    pub logs: Option<Arc<dyn ConnectionLogs>>,
}

impl Default for ConnectionContext {
    fn default() -> Self {
        ConnectionContext {
            cid_generator: Arc::new(RandomConnectionIds::default()),
            reset_key: Arc::new(StatelessResetKey::random()),
            metrics: Arc::new(NoopMetrics),
            buffers: BufferPool::default(),
            release_horizon: Duration::from_millis(1),
            anti_replay: Arc::new(SharedStrikeRegister::default()),
            logs: None,
        }
    }
}

impl std::fmt::Debug for dyn crate::Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}
