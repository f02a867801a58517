//! Seeds: one `u64` per run, `QUICKSAND_SEED=N` to rerun one, `QUICKSAND_SIM_SEEDS=K` to sweep.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// The seeds a test should run: `QUICKSAND_SEED` alone if set, else `1..=K` with `K` from
/// `QUICKSAND_SIM_SEEDS` or `default_count`.
pub fn seed_list(default_count: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("QUICKSAND_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("QUICKSAND_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_count);
    (1..=count).collect()
}

/// Runs `f` for each seed of [`seed_list`], each on a fresh thread (see
/// [`crate::entropy::run_isolated`]); on a failure prints the seed and the command that
/// reproduces it, then fails the test.
pub fn for_each_seed(test_name: &str, default_count: u64, f: impl Fn(u64) + Sync) {
    for seed in seed_list(default_count) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| {
            crate::entropy::run_isolated(|| f(seed))
        })) {
            let binary = std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .map(|s| {
                    s.rsplit_once('-')
                        .map_or(s.clone(), |(name, _)| name.to_string())
                })
                .unwrap_or_else(|| "<test binary>".into());
            eprintln!(
                "\n*** {test_name} failed with seed {seed}; reproduce with:\n    QUICKSAND_SEED={seed} cargo test -p quicksand-tests --test {binary} -- --exact {test_name}\n"
            );
            std::panic::resume_unwind(panic);
        }
    }
}
