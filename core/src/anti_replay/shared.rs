//! [`SharedStrikeRegister`]: the record of ClientHello randoms that every connection and
//! worker of a process consults at once, without a lock.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::AntiReplay;

/// Cells looked at for one random: where it may be recorded.
const PROBES: usize = 16;

/// A record of ClientHello randoms shared by the connections and workers of a process: the
/// default [`AntiReplay`] of a [`ConnectionContext`](crate::ConnectionContext).
///
/// Lock-free, so workers on many cores never wait for each other: a fixed table of 64-bit
/// cells, each holding a 32-bit fingerprint of a random and the millisecond it was recorded,
/// updated by compare-and-swap. A random may sit in one of 16 cells after its hash
/// (keyed per process, so a client cannot aim its randoms at one place); a cell whose entry
/// left the window is reused. Every way this can be wrong is the safe way: a fresh random
/// whose fingerprint matches another's in its cells (about one in 2^27 handshakes), two
/// copies of one random recorded at the same instant, or cells that are all taken, are
/// refused, and their early data waits for the handshake. A replay is never admitted within
/// the window. A cell nobody reuses for 24.8 days looks live again for a while (its 32-bit
/// stamp wraps): the safe way too. The table is allocated when the first early data arrives (`capacity` × 16
/// bytes).
#[derive(Debug)]
pub struct SharedStrikeRegister {
    window_ms: u64,
    capacity: usize,
    hasher: RandomState,
    /// Times are milliseconds since this instant (the first `admit`).
    epoch: OnceLock<Instant>,
    cells: OnceLock<Box<[AtomicU64]>>,
    refused: AtomicU64,
}

impl SharedStrikeRegister {
    /// How long a random is remembered: replays later than 120 s are refused by BoringSSL's
    /// ticket-age check, plus a margin.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(130);
    /// Randoms remembered at most (16 bytes of table each): 770 early-data handshakes a
    /// second, sustained over the window, per process. Beyond it early data waits for the
    /// handshake.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A shared record keeping each random for `window`, with room for about `capacity`.
    pub fn new(window: Duration, capacity: usize) -> Self {
        SharedStrikeRegister {
            // Ages are signed 32-bit milliseconds: windows up to 24 days.
            window_ms: window.as_millis().min(i32::MAX as u128) as u64,
            capacity,
            hasher: RandomState::new(),
            epoch: OnceLock::new(),
            cells: OnceLock::new(),
            refused: AtomicU64::new(0),
        }
    }

    /// ClientHellos not admitted so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn cells(&self) -> &[AtomicU64] {
        self.cells.get_or_init(|| {
            // Twice the capacity: the probe window then rarely fills before the record does.
            let len = self.capacity.max(1).saturating_mul(2).next_power_of_two();
            (0..len).map(|_| AtomicU64::new(0)).collect()
        })
    }

    /// True if the random is recorded now and seen nowhere else in its cells.
    fn record(&self, random: &[u8; 32], now: Instant) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let epoch = *self.epoch.get_or_init(|| now);
        // The low 32 bits of a cell: milliseconds since the epoch, wrapping after 49 days;
        // ages are taken modulo that, far longer than any window.
        #[allow(clippy::cast_possible_truncation)]
        let stamp = now.saturating_duration_since(epoch).as_millis() as u32;
        let hash = self.hasher.hash_one(random);
        // Never zero, so an empty cell (0) never matches.
        let fingerprint = (hash >> 32) as u32 | 1;
        let entry = (u64::from(fingerprint) << 32) | u64::from(stamp);
        let cells = self.cells();
        let mask = cells.len() - 1;
        // A small table is looked at once, not twice round.
        let probes = PROBES.min(cells.len());
        let start = hash as usize;
        // A cell stamped after `now` is live too: threads read their clocks at different
        // moments, so another one's entry may look as if it came from the future.
        let live = |cell: u64| {
            let age = stamp.wrapping_sub(cell as u32) as i32;
            cell != 0 && (age < 0 || (age as u64) < self.window_ms)
        };
        // Seen before, within the window: a replay.
        let cell_at = |i: usize| &cells[(start + i) & mask];
        for i in 0..probes {
            let cell = cell_at(i).load(Ordering::SeqCst);
            if live(cell) && (cell >> 32) as u32 == fingerprint {
                return false;
            }
        }
        // Take the first free (or expired) cell.
        let mut taken = None;
        'probe: for i in 0..probes {
            let slot = cell_at(i);
            let mut cell = slot.load(Ordering::SeqCst);
            while !live(cell) {
                match slot.compare_exchange(cell, entry, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => {
                        taken = Some(i);
                        break 'probe;
                    }
                    Err(now_there) => cell = now_there,
                }
            }
            // A copy recorded meanwhile by another thread.
            if (cell >> 32) as u32 == fingerprint {
                return false;
            }
        }
        let Some(taken) = taken else {
            return false;
        };
        // Two threads recording the same random at once may both have found no match and
        // taken different cells; each looks again after its write, and a thread that finds
        // the other copy refuses. In the single order of these sequentially consistent
        // operations the later write's thread sees the earlier one: at most one admits.
        (0..probes).filter(|&i| i != taken).all(|i| {
            let cell = cell_at(i).load(Ordering::SeqCst);
            !(live(cell) && (cell >> 32) as u32 == fingerprint)
        })
    }
}

impl Default for SharedStrikeRegister {
    fn default() -> Self {
        Self::new(Self::DEFAULT_WINDOW, Self::DEFAULT_CAPACITY)
    }
}

impl AntiReplay for SharedStrikeRegister {
    fn admit(&self, client_random: &[u8; 32], now: Instant) -> bool {
        let admitted = self.record(client_random, now);
        if !admitted {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }
}
