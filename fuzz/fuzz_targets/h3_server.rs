//! Fuzz target `h3_server`: see `quicksand_fuzz::h3_server`.
#![no_main]

quicksand_fuzz::setup!();
quicksand_fuzz::persistent_target!(
    "h3_server",
    quicksand_fuzz::h3_server::H3Server,
    quicksand_fuzz::h3_server::MAX_INPUTS
);
