//! Fuzz target `h3_client`: see `quicksand_tests::fuzzing::h3_client`.
#![no_main]

// The target runs on virtual time (idle timeouts without waiting) with seeded entropy.
quicksand_tests::virtual_clock!();

// Each input on a fresh thread: fresh seeded entropy, so inputs replay exactly. Entropic
// scheduling off, as for h3_server: an input touches thousands of counters.
quicksand_fuzz::isolated_target!(quicksand_tests::fuzzing::h3_client, [c"-entropic=0"]);
