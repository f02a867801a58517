//! A virtual clock that quiche and BoringSSL see too.
//!
//! quiche reads `Instant::now()` itself, so feeding `now` to the core is not enough for
//! reproducible runs: its loss-recovery and idle timers would run on real time. A test binary
//! that invokes [`virtual_clock!`](crate::virtual_clock) defines its own `clock_gettime` and
//! `gettimeofday`; the linker resolves every call in the binary (std's `Instant::now`, quiche,
//! BoringSSL) to them. On threads that entered virtual time ([`VirtualTime::enter`]) they answer
//! from the simulation's clock; everywhere else they ask the kernel.
//!
//! The symbols live only in test binaries, never in a library crate, so no user of quicksand
//! gets a patched clock.

use std::cell::Cell;
use std::time::Duration;

/// Where virtual monotonic time starts: far from zero so `Instant - Duration` never underflows.
const MONOTONIC_START: Duration = Duration::from_secs(1_000_000);
/// The wall-clock time at virtual start: 2026-01-01T00:00:00Z.
const REALTIME_START: Duration = Duration::from_secs(1_767_225_600);

thread_local! {
    // `None`: this thread sees real time. `Some(d)`: virtual time elapsed since start.
    static ELAPSED: Cell<Option<Duration>> = const { Cell::new(None) };
    // Nanoseconds the wall clock was stepped by (`VirtualTime::step_wall_clock`), on top of
    // virtual time.
    static WALL_STEP: Cell<i128> = const { Cell::new(0) };
}

/// A guard: while it lives, this thread runs on virtual time.
#[derive(Debug)]
pub struct VirtualTime {
    /// While [`suspend`](Self::suspend)ed: the virtual time elapsed and the entropy stream's
    /// position, restored by [`resume`](Self::resume).
    suspended: Cell<Option<(Duration, Option<u64>)>>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl VirtualTime {
    /// Switches this thread to virtual time, starting at zero elapsed.
    ///
    /// Panics if the test binary did not install the clock with
    /// [`virtual_clock!`](crate::virtual_clock): without it, time would silently be real.
    pub fn enter() -> VirtualTime {
        Self::enter_seeded(0)
    }

    /// Like [`enter`](Self::enter), and also makes this thread's entropy (BoringSSL's DRBG
    /// seed, std's hash keys) a stream derived from `seed`; see [`crate::entropy`].
    pub fn enter_seeded(seed: u64) -> VirtualTime {
        crate::entropy::set_seed(seed);
        WALL_STEP.with(|w| w.set(0));
        ELAPSED.with(|e| e.set(Some(Duration::ZERO)));
        let a = std::time::Instant::now();
        ELAPSED.with(|e| e.set(Some(Duration::from_nanos(1))));
        let b = std::time::Instant::now();
        ELAPSED.with(|e| e.set(Some(Duration::ZERO)));
        assert_eq!(
            b.duration_since(a),
            Duration::from_nanos(1),
            "virtual time is not installed: invoke quicksand_sim::virtual_clock!() in the test binary"
        );
        VirtualTime {
            suspended: Cell::new(None),
            _not_send: std::marker::PhantomData,
        }
    }

    /// Lets this thread see the kernel's clock and entropy until [`resume`](Self::resume);
    /// virtual time and the seeded entropy stream keep their place meanwhile. For a harness
    /// that shares its thread with code that must run on real time, such as a fuzzer's loop
    /// between the inputs it plays on a simulation. No-op if already suspended.
    pub fn suspend(&self) {
        if self.suspended.get().is_none() {
            let elapsed = ELAPSED.with(|e| e.take()).unwrap_or_default();
            self.suspended
                .set(Some((elapsed, crate::entropy::take_stream())));
        }
    }

    /// Returns this thread to virtual time (and seeded entropy) where
    /// [`suspend`](Self::suspend) left it. No-op if not suspended.
    pub fn resume(&self) {
        if let Some((elapsed, stream)) = self.suspended.take() {
            crate::entropy::restore_stream(stream);
            ELAPSED.with(|e| e.set(Some(elapsed)));
        }
    }

    /// Moves virtual time forward.
    pub fn advance(&self, by: Duration) {
        if let Some((elapsed, stream)) = self.suspended.get() {
            return self.suspended.set(Some((elapsed + by, stream)));
        }
        ELAPSED.with(|e| e.set(Some(e.get().unwrap_or_default() + by)));
    }

    /// Moves virtual time forward to `t` (no-op if `t` is in the past).
    pub fn advance_to(&self, t: std::time::Instant) {
        if self.suspended.get().is_some() {
            // `Instant::now()` is real time while suspended: read the virtual one.
            self.resume();
            self.advance_to(t);
            return self.suspend();
        }
        let now = std::time::Instant::now();
        if t > now {
            self.advance(t - now);
        }
    }

    /// Steps the wall clock (`SystemTime`, `gettimeofday`, `CLOCK_REALTIME`) of this thread's
    /// virtual time; monotonic time does not move. Steps add up.
    pub fn step_wall_clock(&self, step: crate::ClockStep) {
        let nanos = |d: Duration| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX);
        let delta = match step {
            crate::ClockStep::Forward(d) => nanos(d),
            crate::ClockStep::Backward(d) => -nanos(d),
        };
        WALL_STEP.with(|w| w.set(w.get().saturating_add(delta)));
    }

    /// Virtual time elapsed since `enter`.
    pub fn elapsed(&self) -> Duration {
        if let Some((elapsed, _)) = self.suspended.get() {
            return elapsed;
        }
        ELAPSED.with(|e| e.get().unwrap_or_default())
    }
}

impl Drop for VirtualTime {
    fn drop(&mut self) {
        ELAPSED.with(|e| e.set(None));
        WALL_STEP.with(|w| w.set(0));
        crate::entropy::clear();
    }
}

fn to_timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// The body of the installed `clock_gettime`. Not for direct use.
///
/// # Safety
/// `tp` must be valid for writes, as for libc's `clock_gettime`.
#[doc(hidden)]
pub unsafe fn clock_gettime_impl(clock: libc::clockid_t, tp: *mut libc::timespec) -> libc::c_int {
    if let Some(elapsed) = ELAPSED.try_with(Cell::get).ok().flatten() {
        let now = match clock {
            libc::CLOCK_MONOTONIC
            | libc::CLOCK_MONOTONIC_RAW
            | libc::CLOCK_MONOTONIC_COARSE
            | libc::CLOCK_BOOTTIME => Some(MONOTONIC_START + elapsed),
            libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE => {
                let step = WALL_STEP.try_with(Cell::get).unwrap_or(0);
                let nanos = |d: Duration| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX);
                let wall = nanos(REALTIME_START)
                    .saturating_add(nanos(elapsed))
                    .saturating_add(step);
                // Before 1970 is not a time a wall clock shows: it stops at the epoch (and
                // beyond `u64` nanoseconds, in 2554).
                Some(Duration::from_nanos(
                    u64::try_from(wall.max(0)).unwrap_or(u64::MAX),
                ))
            }
            _ => None,
        };
        if let (Some(now), false) = (now, tp.is_null()) {
            *tp = to_timespec(now);
            return 0;
        }
    }
    libc::syscall(libc::SYS_clock_gettime, clock, tp) as libc::c_int
}

/// The body of the installed `gettimeofday`. Not for direct use.
///
/// # Safety
/// `tv` must be null or valid for writes, as for libc's `gettimeofday`.
#[doc(hidden)]
pub unsafe fn gettimeofday_impl(tv: *mut libc::timeval, _tz: *mut libc::c_void) -> libc::c_int {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let rc = clock_gettime_impl(libc::CLOCK_REALTIME, &mut ts);
    if rc == 0 && !tv.is_null() {
        *tv = libc::timeval {
            tv_sec: ts.tv_sec,
            tv_usec: (ts.tv_nsec / 1000) as libc::suseconds_t,
        };
    }
    rc
}

/// Installs the virtual clock and seeded entropy (see [`crate::entropy`]) in this test
/// binary. Invoke once at the top level of each integration-test file that uses
/// [`VirtualTime`]. x86-64 Linux only.
#[macro_export]
macro_rules! virtual_clock {
    () => {
        /// Virtual-time `clock_gettime`; see `quicksand_sim::clock`.
        ///
        /// # Safety
        /// As libc's `clock_gettime`.
        #[no_mangle]
        pub unsafe extern "C" fn clock_gettime(
            clock: $crate::clock::libc::clockid_t,
            tp: *mut $crate::clock::libc::timespec,
        ) -> $crate::clock::libc::c_int {
            $crate::clock::clock_gettime_impl(clock, tp)
        }

        /// Seeded-entropy `getrandom`; see `quicksand_sim::entropy`.
        ///
        /// # Safety
        /// As libc's `getrandom`.
        #[no_mangle]
        pub unsafe extern "C" fn getrandom(buf: *mut u8, len: usize, flags: u32) -> isize {
            $crate::entropy::getrandom_impl(buf, len, flags)
        }

        /// Seeded-entropy `syscall`: `getrandom` is answered from the simulation's seed, every
        /// other call goes to the kernel. x86-64 passes a variadic call's integer arguments
        /// as it passes six fixed ones, which is what makes this definition sound there.
        ///
        /// # Safety
        /// As libc's `syscall`.
        #[no_mangle]
        pub unsafe extern "C" fn syscall(
            num: i64,
            a1: i64,
            a2: i64,
            a3: i64,
            a4: i64,
            a5: i64,
            a6: i64,
        ) -> i64 {
            $crate::entropy::syscall_impl(num, [a1, a2, a3, a4, a5, a6])
        }

        #[used]
        #[link_section = ".init_array"]
        static QUICKSAND_DISABLE_RDRAND: extern "C" fn() = $crate::entropy::disable_rdrand;

        /// Virtual-time `gettimeofday`; see `quicksand_sim::clock`.
        ///
        /// # Safety
        /// As libc's `gettimeofday`.
        #[no_mangle]
        pub unsafe extern "C" fn gettimeofday(
            tv: *mut $crate::clock::libc::timeval,
            tz: *mut $crate::clock::libc::c_void,
        ) -> $crate::clock::libc::c_int {
            $crate::clock::gettimeofday_impl(tv, tz)
        }
    };
}

#[doc(hidden)]
pub use libc;
