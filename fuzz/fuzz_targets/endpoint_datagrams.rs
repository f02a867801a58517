//! Fuzz target `endpoint_datagrams`: see `quicksand_fuzz::endpoint`.
#![no_main]

quicksand_fuzz::setup!();
quicksand_fuzz::persistent_target!(
    "endpoint_datagrams",
    quicksand_fuzz::endpoint::Endpoint,
    quicksand_fuzz::endpoint::MAX_INPUTS
);
