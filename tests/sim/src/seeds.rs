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
            eprintln!(
                "\n*** {test_name} failed with seed {seed}; reproduce with:\n    {}\n",
                reproduce(test_name, seed)
            );
            std::panic::resume_unwind(panic);
        }
    }
}

/// The command that reruns `test_name` of this test binary with `seed` alone.
fn reproduce(test_name: &str, seed: u64) -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| {
            s.rsplit_once('-')
                .map_or(s.clone(), |(name, _)| name.to_string())
        })
        .unwrap_or_else(|| "<test binary>".into());
    // Cargo tells a test binary its package when it runs it.
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "<package>".into());
    format!("QUICKSAND_SEED={seed} cargo test -p {package} --test {binary} -- --exact {test_name}")
}

/// Runs `run` twice with the same seed, each on a fresh thread with the seed's entropy
/// ([`crate::entropy::run_isolated`]), and fails if the two traces differ, naming the first
/// entry where they part (the packet or event, with its virtual time) and the command that
/// reruns the seed. `run` gets a [`SimConfig`](super::SimConfig) for the seed with
/// [`record_trace`](super::SimConfig::record_trace) on, builds its simulation from it (links,
/// settings and applications as it likes), runs it, and returns its [`Trace`](super::Trace).
///
/// ```ignore
/// sim::assert_same_history("my_test", 7, |config| {
///     let mut s = Sim::new(config.with_link(lossy), |_| Some(MyApp::server()));
///     s.connect(MyApp::client()).unwrap();
///     s.run_for(Duration::from_secs(10));
///     s.trace
/// });
/// ```
pub fn assert_same_history(
    test_name: &str,
    seed: u64,
    run: impl Fn(super::SimConfig) -> super::Trace + Sync,
) {
    let config = || {
        let mut config = super::SimConfig::new(seed);
        config.record_trace = true;
        config
    };
    let first = crate::entropy::run_isolated(|| run(config()));
    let second = crate::entropy::run_isolated(|| run(config()));
    if first.digest() == second.digest() && first.entries == second.entries {
        return;
    }
    let at = match first.first_difference(&second) {
        Some(d) => d.to_string(),
        None => "no entry differs as text, yet the hashes do (an entry whose Debug hides what its Hash sees)".to_string(),
    };
    panic!(
        "{test_name}: two runs of seed {seed} diverged at {at}\nreproduce with:\n    {}",
        reproduce(test_name, seed)
    );
}
