//! Clock helpers for transmit times (`SO_TXTIME`).
//!
//! The kernel takes transmit times as `CLOCK_MONOTONIC` nanoseconds. `std::time::Instant` happens
//! to read the same clock on Linux, but its representation is private and differs elsewhere, so it
//! is never reinterpreted: an `Instant` is converted by measuring its distance from "now" and
//! adding that to a fresh `CLOCK_MONOTONIC` reading.

use std::time::Instant;

/// Reads `CLOCK_MONOTONIC` in nanoseconds.
pub fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec. CLOCK_MONOTONIC exists on every supported Unix,
    // so the call cannot fail; if it somehow did, `ts` stays zero.
    let _ = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Converts `target` to `CLOCK_MONOTONIC` nanoseconds for [`OutgoingDatagram::txtime`].
///
/// Computed as `monotonic_now_ns() + (target - Instant::now())` (or minus, for a past target),
/// reading `Instant::now()` first. On Linux, where both read the same clock, the result is exact
/// to within the few nanoseconds between the two reads; elsewhere it is as exact as the two
/// clocks agree in rate.
///
/// [`OutgoingDatagram::txtime`]: crate::OutgoingDatagram::txtime
pub fn instant_to_monotonic_ns(target: Instant) -> u64 {
    let now = Instant::now();
    let mono = monotonic_now_ns();
    match target.checked_duration_since(now) {
        Some(ahead) => mono.saturating_add(u64::try_from(ahead.as_nanos()).unwrap_or(u64::MAX)),
        None => {
            let behind = now.duration_since(target);
            mono.saturating_sub(u64::try_from(behind.as_nanos()).unwrap_or(u64::MAX))
        }
    }
}
