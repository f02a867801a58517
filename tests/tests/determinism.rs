//! One seed, one history: the same seed run twice yields the same trace of packets and events.

use std::time::Duration;

use quicksand_tests::apps::BulkTransfer;
use quicksand_tests::sim::{LinkConfig, LossModel, Sim, SimConfig};

quicksand_tests::virtual_clock!();

fn run(seed: u64) -> (u64, u64) {
    const LEN: u64 = 1_000_000;
    let link = LinkConfig {
        latency: Duration::from_millis(15),
        jitter: Duration::from_millis(3),
        loss: LossModel::Random(0.02),
        reorder: 0.01,
        duplicate: 0.005,
        bandwidth: Some(50_000_000),
        ..Default::default()
    };
    let mut s = Sim::new(SimConfig::new(seed).with_link(link), |_| {
        Some(BulkTransfer::new(true, LEN))
    });
    s.connect(BulkTransfer::new(false, LEN)).unwrap();
    let done = s.run_until(Duration::from_secs(60), |s| {
        s.client.conns().all(|c| c.application().is_complete(LEN))
            && s.server.conns().all(|c| c.application().is_complete(LEN))
            && !s.server.is_empty()
    });
    assert!(done, "seed {seed}: transfer incomplete");
    (s.trace.digest(), s.trace.entries)
}

#[test]
fn same_seed_same_trace() {
    for seed in quicksand_tests::sim::seed_list(3) {
        let first = quicksand_tests::entropy::run_isolated(|| run(seed));
        let second = quicksand_tests::entropy::run_isolated(|| run(seed));
        assert_eq!(first, second, "seed {seed}: two runs diverged");
        assert!(first.1 > 1000, "the trace records the run");
    }
}

#[test]
fn different_seeds_different_traces() {
    let one = quicksand_tests::entropy::run_isolated(|| run(1));
    let two = quicksand_tests::entropy::run_isolated(|| run(2));
    assert_ne!(one.0, two.0);
}
