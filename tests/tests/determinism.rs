//! One seed, one history: the same seed run twice yields the same trace of packets and events,
//! and when two runs do not agree, the checker says where they parted.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quicksand_tests::apps::BulkTransfer;
use quicksand_tests::sim::{self, LinkConfig, LossModel, Sim, SimConfig, Trace};

quicksand_tests::virtual_clock!();

const LEN: u64 = 1_000_000;

fn lossy() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(15),
        jitter: Duration::from_millis(3),
        loss: LossModel::Random(0.02),
        reorder: 0.01,
        duplicate: 0.005,
        bandwidth: Some(50_000_000),
        ..Default::default()
    }
}

/// A 1 MB transfer over a lossy, reordering link; returns the run's trace.
fn transfer(config: SimConfig) -> Trace {
    let seed = config.seed;
    let mut s = Sim::new(config, |_| Some(BulkTransfer::new(true, LEN)));
    s.connect(BulkTransfer::new(false, LEN)).unwrap();
    let done = s.run_until(Duration::from_secs(60), |s| {
        s.client.conns().all(|c| c.application().is_complete(LEN))
            && s.server.conns().all(|c| c.application().is_complete(LEN))
            && !s.server.is_empty()
    });
    assert!(done, "seed {seed}: transfer incomplete");
    assert!(s.trace.entries > 1000, "the trace records the run");
    s.trace
}

#[test]
fn same_seed_same_trace() {
    for seed in sim::seed_list(3) {
        sim::assert_same_history("same_seed_same_trace", seed, |config| {
            transfer(config.with_link(lossy()))
        });
    }
}

#[test]
fn different_seeds_different_traces() {
    let run = |seed| {
        quicksand_tests::entropy::run_isolated(|| {
            transfer(SimConfig::new(seed).with_link(lossy())).digest()
        })
    };
    assert_ne!(run(1), run(2));
}

/// A run that is not a function of its seed (here the link's latency changes between the two
/// runs, as a test reading a global counter or the real clock would) fails the check, which
/// names the first entry that differs and the seed to rerun.
#[test]
fn a_divergence_is_reported_with_its_first_differing_entry() {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        sim::assert_same_history("diverging", 5, |config| {
            let mut link = lossy();
            link.latency += Duration::from_millis(RUNS.fetch_add(1, Ordering::SeqCst));
            transfer(config.with_link(link))
        })
    }));
    let panic = outcome.expect_err("two different histories must fail the check");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("diverged at entry #"), "{message}");
    assert!(
        message.contains("first run:") && message.contains("second run:"),
        "{message}"
    );
    assert!(message.contains("QUICKSAND_SEED=5"), "{message}");
}
