//! Fuzz target `h3_client`: see `quicksand_fuzz::h3_client`.
#![no_main]

quicksand_fuzz::setup!();
// Entropic scheduling off, as for h3_server: an input touches thousands of counters.
quicksand_fuzz::persistent_target!(
    "h3_client",
    quicksand_fuzz::h3_client::Client,
    quicksand_fuzz::h3_client::MAX_INPUTS,
    [c"-entropic=0"]
);
