//! Fuzz target `udp_recv`: see `quicksand_tests::fuzzing::udp_recv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quicksand_tests::fuzzing::udp_recv(data));
