//! Fuzz target `endpoint_datagrams`: see `quicksand_tests::fuzzing::endpoint_datagrams`.
#![no_main]

// The simulator needs virtual time and seeded entropy in this binary.
quicksand_tests::virtual_clock!();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // A fresh thread per input: fresh seeded entropy, so inputs replay exactly.
    quicksand_tests::entropy::run_isolated(|| quicksand_tests::fuzzing::endpoint_datagrams(data));
});
