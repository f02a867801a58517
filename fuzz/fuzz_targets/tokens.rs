//! Fuzz target `tokens`: see `quicksand_tests::fuzzing::tokens`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quicksand_tests::fuzzing::tokens(data));
