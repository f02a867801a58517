//! Fuzz target `h3_server`: see `quicksand_tests::fuzzing::h3_server`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quicksand_tests::fuzzing::h3_server(data));
