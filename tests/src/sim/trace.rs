//! A hash of everything that happens in a run: two runs of one seed must agree.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

/// Accumulates packet fates and connection events with their virtual times.
#[derive(Debug)]
pub struct Trace {
    hasher: DefaultHasher,
    start: Instant,
    /// Entries recorded.
    pub entries: u64,
}

impl Trace {
    /// A trace whose times count from `start`.
    pub fn new(start: Instant) -> Self {
        Trace {
            hasher: DefaultHasher::new(),
            start,
            entries: 0,
        }
    }

    /// Records one entry at `now`.
    pub fn record(&mut self, now: Instant, entry: impl Hash) {
        now.saturating_duration_since(self.start)
            .hash(&mut self.hasher);
        entry.hash(&mut self.hasher);
        self.entries += 1;
    }

    /// The hash so far.
    pub fn digest(&self) -> u64 {
        self.hasher.finish()
    }
}
