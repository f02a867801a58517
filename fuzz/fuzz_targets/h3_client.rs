//! Fuzz target `h3_client`: see `quicksand_tests::fuzzing::h3_client`.
#![no_main]

// The target runs on virtual time (idle timeouts without waiting) with seeded entropy.
quicksand_tests::virtual_clock!();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // A fresh thread per input: fresh seeded entropy, so inputs replay exactly.
    quicksand_tests::entropy::run_isolated(|| quicksand_tests::fuzzing::h3_client(data));
});
