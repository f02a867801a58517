//! Deterministic entropy for simulation threads.
//!
//! BoringSSL (and through it quiche's packet-number skipping, path challenges, TLS randoms)
//! seeds a per-thread DRBG from a raw `syscall(SYS_getrandom, ..)`; std seeds HashMap keys
//! from `getrandom`. A test binary that invokes [`virtual_clock!`](crate::virtual_clock) gets
//! both symbols too: on threads that entered virtual time with a seed they answer from a
//! stream derived from that seed, elsewhere from the kernel. BoringSSL's other source, the
//! RDRAND instruction (mixed in on Intel CPUs), is switched off for the test binary by setting
//! `OPENSSL_ia32cap` before `main`.
//!
//! BoringSSL seeds its DRBG once per thread, so a reproducible run needs a thread of its own:
//! [`run_isolated`] gives it one.

use std::cell::Cell;

thread_local! {
    static STREAM: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Makes this thread's entropy a stream derived from `seed` (until [`clear`]).
pub fn set_seed(seed: u64) {
    STREAM.with(|s| s.set(Some(seed ^ 0x6a09_e667_f3bc_c908)));
}

/// Takes this thread's stream out, leaving it on the kernel's entropy: the position to hand
/// to [`restore_stream`] later (`None`: there was no stream).
pub(crate) fn take_stream() -> Option<u64> {
    STREAM.with(Cell::take)
}

/// Puts a stream taken with [`take_stream`] back where it was.
pub(crate) fn restore_stream(stream: Option<u64>) {
    STREAM.with(|s| s.set(stream));
}

/// Returns this thread to the kernel's entropy.
pub fn clear() {
    STREAM.with(|s| s.set(None));
}

/// SplitMix64: small, fast, and plenty for test entropy.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` from this thread's seeded stream; false if the thread has none.
fn fill(buf: &mut [u8]) -> bool {
    STREAM
        .try_with(|s| {
            let Some(mut state) = s.get() else {
                return false;
            };
            for chunk in buf.chunks_mut(8) {
                let v = next(&mut state).to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            s.set(Some(state));
            true
        })
        .unwrap_or(false)
}

/// Runs `f` on a fresh thread (fresh BoringSSL DRBG, fresh std hash keys) and returns its
/// result, propagating a panic.
pub fn run_isolated<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The body of the installed `getrandom`. Not for direct use.
///
/// # Safety
/// `buf` must be valid for `len` bytes of writes.
#[doc(hidden)]
pub unsafe fn getrandom_impl(buf: *mut u8, len: usize, flags: u32) -> isize {
    if !buf.is_null() && fill(std::slice::from_raw_parts_mut(buf, len)) {
        return len as isize;
    }
    raw_syscall(
        libc::SYS_getrandom,
        [buf as i64, len as i64, flags as i64, 0, 0, 0],
    )
}

/// The body of the installed `syscall`. Not for direct use.
///
/// # Safety
/// As libc's `syscall`.
#[doc(hidden)]
pub unsafe fn syscall_impl(num: i64, args: [i64; 6]) -> i64 {
    if num == libc::SYS_getrandom {
        return getrandom_impl(args[0] as *mut u8, args[1] as usize, args[2] as u32) as i64;
    }
    raw_syscall(num, args) as i64
}

/// A system call straight to the kernel, with glibc's error convention.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
unsafe fn raw_syscall(num: i64, a: [i64; 6]) -> isize {
    let ret: i64;
    std::arch::asm!(
        "syscall",
        inlateout("rax") num => ret,
        in("rdi") a[0],
        in("rsi") a[1],
        in("rdx") a[2],
        in("r10") a[3],
        in("r8") a[4],
        in("r9") a[5],
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack),
    );
    if (-4095..0).contains(&ret) {
        *libc::__errno_location() = -ret as i32;
        -1
    } else {
        ret as isize
    }
}

/// Sets `OPENSSL_ia32cap` so BoringSSL never mixes RDRAND output into its DRBG (RDRAND cannot
/// be intercepted). Runs before `main` in binaries that invoke `virtual_clock!`.
#[doc(hidden)]
pub extern "C" fn disable_rdrand() {
    // Clear CPUID.1:ECX bit 30 (RDRAND), which BoringSSL keeps as bit 62 of its first word.
    let name = c"OPENSSL_ia32cap";
    let value = c"~0x4000000000000000";
    // SAFETY: runs from .init_array, before any thread exists.
    unsafe {
        libc::setenv(name.as_ptr(), value.as_ptr(), 0);
    }
}
