//! Fuzz target `gso_gro`: see `quicksand_tests::fuzzing::gso_gro`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quicksand_tests::fuzzing::gso_gro(data));
