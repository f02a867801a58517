//! Initials that did not become connections: counted by reason and logged at `warn`, rate
//! limited, so a client that can never connect is diagnosable from the default log.

use std::net::SocketAddr;
use std::time::Instant;

use super::stateless::RateLimit;
use crate::metrics::{Metrics, RejectReason};

/// Warnings per second about refused connections; the rest are counted and summed up in the
/// next warning that gets through.
const WARNINGS_PER_SECOND: u32 = 5;

/// Counts of refused connection attempts by [`RejectReason`], and the rate-limited log.
#[derive(Debug)]
pub(crate) struct Rejections {
    counts: [u64; RejectReason::ALL.len()],
    warn_limit: RateLimit,
    suppressed: u64,
}

impl Default for Rejections {
    fn default() -> Self {
        Rejections {
            counts: [0; RejectReason::ALL.len()],
            warn_limit: RateLimit::new(WARNINGS_PER_SECOND),
            suppressed: 0,
        }
    }
}

impl Rejections {
    /// Records that `peer`'s attempt was refused for `reason`; `detail` says more when there
    /// is more to say (quiche's error).
    pub(crate) fn record(
        &mut self,
        now: Instant,
        metrics: &dyn Metrics,
        peer: SocketAddr,
        reason: RejectReason,
        detail: Option<&dyn std::fmt::Display>,
    ) {
        self.counts[reason as usize] += 1;
        metrics.initial_rejected(reason);
        if !self.warn_limit.try_take(now) {
            self.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut self.suppressed);
        match detail {
            Some(detail) => tracing::warn!(
                %peer, reason = reason.as_str(), %detail, suppressed,
                "connection refused: {}", reason.explain()
            ),
            None => tracing::warn!(
                %peer, reason = reason.as_str(), suppressed,
                "connection refused: {}", reason.explain()
            ),
        }
    }

    pub(crate) fn counts(&self) -> [u64; RejectReason::ALL.len()] {
        self.counts
    }
}
