//! Fuzz target `sim_scenario`: see `quicksand_fuzz::scenario`.
#![no_main]

quicksand_fuzz::setup!();
quicksand_fuzz::persistent_target!(
    "sim_scenario",
    quicksand_fuzz::scenario::Scenario,
    quicksand_fuzz::scenario::MAX_INPUTS
);
