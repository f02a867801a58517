//! Fuzz target `h3_server`: see `quicksand_fuzz::h3_server`.
#![no_main]

quicksand_fuzz::setup!();
// Entropic scheduling off: each input touches thousands of counters (a round of QUIC packets),
// and keeping the entropic per-feature statistics up to date took as long as the input.
quicksand_fuzz::persistent_target!(
    "h3_server",
    quicksand_fuzz::h3_server::H3Server,
    quicksand_fuzz::h3_server::MAX_INPUTS,
    [c"-entropic=0"]
);
