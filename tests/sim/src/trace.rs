//! A hash of everything that happens in a run: two runs of one seed must agree. With
//! [`SimConfig::record_trace`](super::SimConfig::record_trace) the trace also keeps each entry
//! as text, so that two runs that disagree can say where they parted.

use std::fmt::{self, Debug};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

/// Accumulates packet fates and connection events with their virtual times.
#[derive(Debug)]
pub struct Trace {
    hasher: DefaultHasher,
    start: Instant,
    /// Entries recorded.
    pub entries: u64,
    /// Every entry as text, when asked for.
    log: Option<Vec<TraceEntry>>,
}

/// One recorded entry, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// Virtual time since the simulation started.
    pub at: Duration,
    /// The entry (`Debug`).
    pub what: String,
}

/// Where two traces part: the first entry that differs (or that only one run has).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The entry's index, counting from 0.
    pub index: usize,
    /// The first run's entry at that index.
    pub first: Option<TraceEntry>,
    /// The second run's.
    pub second: Option<TraceEntry>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |e: &Option<TraceEntry>| match e {
            Some(e) => format!("at {:?}: {}", e.at, e.what),
            None => "(the run had ended)".to_string(),
        };
        write!(
            f,
            "entry #{}\n  first run:  {}\n  second run: {}",
            self.index,
            show(&self.first),
            show(&self.second)
        )
    }
}

impl Trace {
    /// A trace whose times count from `start`.
    pub fn new(start: Instant) -> Self {
        Trace {
            hasher: DefaultHasher::new(),
            start,
            entries: 0,
            log: None,
        }
    }

    /// A trace that also keeps every entry as text (for [`first_difference`](Self::first_difference)).
    pub fn with_log(start: Instant) -> Self {
        Trace {
            log: Some(Vec::new()),
            ..Trace::new(start)
        }
    }

    /// Records one entry at `now`.
    pub fn record(&mut self, now: Instant, entry: impl Hash + Debug) {
        let at = now.saturating_duration_since(self.start);
        at.hash(&mut self.hasher);
        entry.hash(&mut self.hasher);
        self.entries += 1;
        if let Some(log) = self.log.as_mut() {
            log.push(TraceEntry {
                at,
                what: format!("{entry:?}"),
            });
        }
    }

    /// The hash so far.
    pub fn digest(&self) -> u64 {
        self.hasher.finish()
    }

    /// The recorded entries, if the trace keeps them.
    pub fn log(&self) -> Option<&[TraceEntry]> {
        self.log.as_deref()
    }

    /// The first entry where this trace and `other` differ; `None` if their logs agree (or
    /// either keeps no log).
    pub fn first_difference(&self, other: &Trace) -> Option<Divergence> {
        let (a, b) = (self.log()?, other.log()?);
        let index = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))?;
        Some(Divergence {
            index,
            first: a.get(index).cloned(),
            second: b.get(index).cloned(),
        })
    }
}
