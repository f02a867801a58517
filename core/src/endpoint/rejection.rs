//! Initials that did not become connections are logged at `warn`, rate limited, so a client
//! that can never connect is diagnosable from the default log. (They are counted in
//! [`EndpointStats`](super::EndpointStats).)

use std::net::SocketAddr;
use std::time::Instant;

use super::stateless::RateLimit;
use crate::metrics::RejectReason;

/// Warnings per second about refused connections; the rest are counted and summed up in the
/// next warning that gets through.
const WARNINGS_PER_SECOND: u32 = 5;

/// The rate-limited log of refused connection attempts.
#[derive(Debug)]
pub(crate) struct RejectionLog {
    limit: RateLimit,
    suppressed: u64,
}

impl Default for RejectionLog {
    fn default() -> Self {
        RejectionLog {
            limit: RateLimit::new(WARNINGS_PER_SECOND),
            suppressed: 0,
        }
    }
}

impl RejectionLog {
    /// Logs that `peer`'s attempt was refused for `reason`, unless the rate is exceeded;
    /// `detail` says more when there is more to say (quiche's error).
    pub(crate) fn warn(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        reason: RejectReason,
        detail: Option<&dyn std::fmt::Display>,
    ) {
        if !self.limit.try_take(now) {
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
}
