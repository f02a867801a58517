//! The fuzz targets' bodies. The targets that need a TLS handshake (`endpoint_datagrams`,
//! `h3_client`, `h3_server`, `sim_scenario`) keep one handshaken state per process that many inputs act
//! on ([`persistent`]); the others call their bodies in `quicksand_tests::fuzzing`.
//!
//! `tests/tests/fuzz_corpus.rs` includes this file (`#[path]`), so `cargo test` replays every
//! committed seed through [`TARGETS`] on stable Rust: keep it to crates that both the fuzz
//! crate and `quicksand-tests`' tests depend on.

pub mod endpoint;
pub mod h3_client;
pub mod h3_server;
pub mod persistent;
pub mod scenario;
pub mod wire;

/// A fuzz target body as a replay runs it: one input on a fresh state.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` know them,
/// each as a replay runs it.
pub const TARGETS: &[(&str, Target)] = &[
    (
        "endpoint_datagrams",
        persistent::replay::<endpoint::Endpoint>,
    ),
    ("gso_gro", quicksand_tests::fuzzing::gso_gro),
    ("h3_client", persistent::replay::<h3_client::Client>),
    ("h3_server", persistent::replay::<h3_server::H3Server>),
    ("sim_scenario", persistent::replay::<scenario::Scenario>),
    ("tokens", quicksand_tests::fuzzing::tokens),
    ("udp_recv", quicksand_tests::fuzzing::udp_recv),
];

/// Points BoringSSL's default trust store at an empty file. Every config the targets build
/// loads the system's CA bundle (`set_default_verify_paths`), which took about 130 ms under
/// AddressSanitizer; no target verifies a certificate chain, so none needs it. Runs before
/// `main` in each fuzz binary ([`setup!`]).
pub extern "C" fn no_system_roots() {
    // SAFETY: runs from .init_array, before any thread exists.
    unsafe {
        libc::setenv(c"SSL_CERT_FILE".as_ptr(), c"/dev/null".as_ptr(), 1);
        libc::setenv(c"SSL_CERT_DIR".as_ptr(), c"/nonexistent".as_ptr(), 1);
    }
}

/// Installs the virtual clock and seeded entropy (`quicksand_tests::virtual_clock!`) and
/// [`no_system_roots`] in a fuzz binary.
#[macro_export]
macro_rules! setup {
    () => {
        quicksand_tests::virtual_clock!();

        #[used]
        #[link_section = ".init_array"]
        static QUICKSAND_FUZZ_NO_SYSTEM_ROOTS: extern "C" fn() = $crate::no_system_roots;
    };
}

/// Puts `flags` in front of libFuzzer's own arguments, so they are the target's defaults and
/// anything given on the command line still wins (libFuzzer keeps a flag's last value). Called
/// from `LLVMFuzzerInitialize`, which libFuzzer runs before it parses its arguments.
///
/// # Safety
/// `argc` and `argv` must be the pointers libFuzzer passes to `LLVMFuzzerInitialize`.
pub unsafe fn default_flags(
    argc: *mut std::ffi::c_int,
    argv: *mut *mut *mut std::ffi::c_char,
    flags: &'static [&'static std::ffi::CStr],
) {
    if flags.is_empty() || argc.is_null() || argv.is_null() || *argc < 1 {
        return;
    }
    let old = std::slice::from_raw_parts(*argv, *argc as usize);
    let mut new: Vec<*mut std::ffi::c_char> = Vec::with_capacity(old.len() + flags.len() + 1);
    new.push(old[0]);
    new.extend(flags.iter().map(|f| f.as_ptr().cast_mut()));
    new.extend_from_slice(&old[1..]);
    let count = new.len();
    new.push(std::ptr::null_mut());
    // libFuzzer keeps using the array (re-executions, `-fork`), so it lives to the end.
    *argv = Box::leak(new.into_boxed_slice()).as_mut_ptr();
    *argc = count as std::ffi::c_int;
}

/// `cargo fuzz fmt` support, as libfuzzer-sys's own macro has it: with
/// `RUST_LIBFUZZER_DEBUG_PATH` set, the input's `Debug` form goes to that file instead of
/// being played. True if it did.
pub fn write_debug_input(data: &[u8]) -> bool {
    static PATH: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    let Some(path) = PATH.get_or_init(|| std::env::var_os("RUST_LIBFUZZER_DEBUG_PATH")) else {
        return false;
    };
    std::fs::write(path, format!("{data:?}\n")).expect("writing RUST_LIBFUZZER_DEBUG_PATH");
    true
}

/// AddressSanitizer's options for the targets that keep a state across inputs.
///
/// LeakSanitizer is off: the state outlives its inputs by design, so libFuzzer would scan the
/// whole heap after each of the first thousand inputs that found coverage. Stack
/// use-after-return detection is off: it gives every call's stack frame a heap-like
/// allocation of its own, which took 40 % of an HTTP/3 input's time, and safe Rust cannot
/// return a reference to a dead frame (the borrow checker rejects it); heap errors, overflows
/// and use-after-free are still caught.
pub const PERSISTENT_ASAN_OPTIONS: &std::ffi::CStr =
    c"detect_leaks=0:detect_stack_use_after_return=0";

/// libFuzzer's entry points for [`persistent_target!`]:
/// `LLVMFuzzerInitialize` (libfuzzer-sys's set-up, then the target's default flags) and the
/// per-input function, which plays `$run` on `$data` unless `cargo fuzz fmt` asked for the
/// input's `Debug` form.
#[doc(hidden)]
#[macro_export]
macro_rules! entry_points {
    ([$($flag:literal),*], $data:ident => $run:expr) => {
        /// libFuzzer's start-up hook: libfuzzer-sys's set-up (a panic aborts), then the
        /// target's default flags.
        #[no_mangle]
        pub extern "C" fn LLVMFuzzerInitialize(
            argc: *mut std::ffi::c_int,
            argv: *mut *mut *mut std::ffi::c_char,
        ) -> std::ffi::c_int {
            libfuzzer_sys::initialize(argc as *const isize, argv as *const *const *const u8);
            static FLAGS: &[&std::ffi::CStr] = &[$($flag),*];
            // SAFETY: the pointers libFuzzer passed in.
            unsafe { $crate::default_flags(argc, argv, FLAGS) };
            0
        }

        /// One input, as libfuzzer-sys's `LLVMFuzzerTestOneInput` hands it over (a Rust
        /// call in fact: libfuzzer-sys declares it with a slice, as its own macro defines it).
        #[no_mangle]
        #[allow(improper_ctypes_definitions)]
        pub extern "C" fn rust_fuzzer_test_input($data: &[u8]) -> i32 {
            if !$crate::write_debug_input($data) {
                $run;
            }
            0
        }
    };
}

/// A fuzz target whose state (`$live`, a [`persistent::Live`]) persists across inputs:
/// `persistent_target!("name", Type, max_inputs)`, or with default libFuzzer flags (see
/// [`default_flags`]): `persistent_target!("name", Type, max_inputs, [c"-entropic=0"])`.
#[macro_export]
macro_rules! persistent_target {
    ($name:literal, $live:ty, $max_inputs:expr) => {
        $crate::persistent_target!($name, $live, $max_inputs, []);
    };
    ($name:literal, $live:ty, $max_inputs:expr, [$($flag:literal),* $(,)?]) => {
        thread_local! {
            static RUNNER: std::cell::RefCell<$crate::persistent::Runner<$live>> =
                const { std::cell::RefCell::new($crate::persistent::Runner::new($name, $max_inputs)) };
        }

        $crate::entry_points!([$($flag),*], data => RUNNER.with_borrow_mut(|r| r.run(data)));

        /// See [`PERSISTENT_ASAN_OPTIONS`]($crate::PERSISTENT_ASAN_OPTIONS).
        #[no_mangle]
        pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
            $crate::PERSISTENT_ASAN_OPTIONS.as_ptr()
        }
    };
}
