//! The fuzz targets' bodies. The targets that need a TLS handshake (`endpoint_datagrams`,
//! `h3_server`, `sim_scenario`) keep one handshaken state per process that many inputs act
//! on ([`persistent`]); the others call their bodies in `quicksand_tests::fuzzing`.
//!
//! `tests/tests/fuzz_corpus.rs` includes this file (`#[path]`), so `cargo test` replays every
//! committed seed through [`TARGETS`] on stable Rust: keep it to crates that both the fuzz
//! crate and `quicksand-tests`' tests depend on.

pub mod endpoint;
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
    ("h3_client", quicksand_tests::fuzzing::h3_client),
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

/// A fuzz target whose state (`$live`, a [`persistent::Live`]) persists across inputs:
/// `persistent_target!("name", Type, max_inputs)`.
#[macro_export]
macro_rules! persistent_target {
    ($name:literal, $live:ty, $max_inputs:expr) => {
        thread_local! {
            static RUNNER: std::cell::RefCell<$crate::persistent::Runner<$live>> =
                const { std::cell::RefCell::new($crate::persistent::Runner::new($name, $max_inputs)) };
        }

        libfuzzer_sys::fuzz_target!(|data: &[u8]| RUNNER.with_borrow_mut(|r| r.run(data)));

        /// LeakSanitizer off: the state outlives its inputs by design, so libFuzzer would
        /// scan the whole heap after each of the first thousand inputs that found coverage.
        #[no_mangle]
        pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
            c"detect_leaks=0".as_ptr()
        }
    };
}
