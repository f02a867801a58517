//! Abuse limits that need state: the rapid-reset detector.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Counts request streams the peer reset or cancelled before their response completed, in a
/// sliding window; trips when more than `threshold` fall within `window` (the HTTP/2
/// "rapid reset" attack, CVE-2023-44487, carried over to HTTP/3).
#[derive(Debug)]
pub struct RapidResetDetector {
    threshold: u32,
    window: Duration,
    events: VecDeque<Instant>,
}

impl RapidResetDetector {
    /// A detector; `threshold == 0` disables it.
    pub fn new(threshold: u32, window: Duration) -> Self {
        RapidResetDetector {
            threshold,
            window,
            events: VecDeque::new(),
        }
    }

    /// Records a reset at `now`. True when the limit is crossed.
    pub fn record(&mut self, now: Instant) -> bool {
        if self.threshold == 0 {
            return false;
        }
        while self
            .events
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.window)
        {
            self.events.pop_front();
        }
        self.events.push_back(now);
        self.events.len() > self.threshold as usize
    }

    /// Resets counted in the current window.
    pub fn count(&self) -> usize {
        self.events.len()
    }
}
