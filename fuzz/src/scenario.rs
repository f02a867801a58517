//! `sim_scenario`: fault schedules and connection mixes through the simulator. Every transfer
//! completes byte-exact or its connection ends with a reason the caller sees; no corrupted
//! byte is ever delivered.
//!
//! Persistent ([`crate::persistent`]): the input a simulation is built for picks its seed,
//! connections (1 to 3) and transfer size (below 300 kB), as the one-input-per-run target
//! did. Each input then sets both links (latency, jitter, loss, reordering, duplication,
//! corruption, MTU, a black hole) for `WINDOW` of virtual time: a sequence of inputs is a
//! fault schedule. A state ends when every transfer completed or failed; one retired after
//! `MAX_INPUTS` inputs first runs on a healed network. Either way, by 600 s of virtual time
//! after the start each transfer must have completed or failed visibly. A replay (one input,
//! fresh state) keeps that input's links to the end: the old target's check.
//!
//! The input is `Input` decoded by `arbitrary`, the format the corpus was written in.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use quicksand_tests::apps::BulkTransfer;
use quicksand_tests::sim::{Blackhole, Direction, LinkConfig, LossModel, Sim, SimConfig};

use super::persistent::Live;

/// Inputs one simulation sees at most.
pub const MAX_INPUTS: usize = 1000;
/// Virtual time one input's links hold for.
const WINDOW: Duration = Duration::from_millis(2);
/// Virtual time within which every transfer must have completed or failed.
const LIMIT: Duration = Duration::from_secs(600);

#[derive(Arbitrary, Debug)]
struct Link {
    latency_ms: u8,
    jitter_ms: u8,
    loss_pct: u8,
    bursty: bool,
    reorder_pct: u8,
    duplicate_pct: u8,
    corrupt_pct: u8,
    mtu: u16,
    hole: Option<(u16, u16)>,
}

impl Link {
    /// The link; a black hole's start counts from `elapsed` (virtual time since the start).
    fn config(&self, elapsed: Duration) -> LinkConfig {
        let loss = (self.loss_pct % 25) as f64 / 100.0;
        LinkConfig {
            latency: Duration::from_millis(1 + self.latency_ms as u64),
            jitter: Duration::from_millis(self.jitter_ms as u64 % 30),
            loss: if self.bursty {
                LossModel::bursty(loss, 3.0)
            } else {
                LossModel::Random(loss)
            },
            reorder: (self.reorder_pct % 20) as f64 / 100.0,
            duplicate: (self.duplicate_pct % 20) as f64 / 100.0,
            corrupt: (self.corrupt_pct % 10) as f64 / 100.0,
            mtu: 1200 + self.mtu as usize % 1000,
            blackholes: self
                .hole
                .map(|(start, len)| Blackhole {
                    start: elapsed + Duration::from_millis(start as u64 % 5000),
                    on: Duration::from_millis(len as u64 % 4000),
                    off: Duration::MAX,
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    seed: u64,
    to_server: Link,
    to_client: Link,
    connections: u8,
    size: u32,
}

/// A simulation and what its transfers must reach.
pub struct Scenario {
    sim: Sim<BulkTransfer, BulkTransfer>,
    len: u64,
    n: usize,
}

impl Scenario {
    fn elapsed(&self) -> Duration {
        self.sim.clock.elapsed()
    }

    /// Every transfer completed, or no connection is left.
    fn settled(s: &Sim<BulkTransfer, BulkTransfer>, len: u64) -> bool {
        s.client.conns().all(|c| c.application().is_complete(len)) || s.client.is_empty()
    }

    fn check(&self) {
        let s = &self.sim;
        let all: Vec<_> = s.client.conns().chain(s.client.finished()).collect();
        assert!(
            all.iter().all(|c| c.application().mismatch.is_none()),
            "corrupted bytes delivered"
        );
    }

    /// Runs until every transfer completed or failed, at most until `LIMIT` after the start.
    fn run_out(&mut self) {
        let left = LIMIT.saturating_sub(self.elapsed());
        let len = self.len;
        self.sim.run_until(left, |s| Self::settled(s, len));
        self.check();
        let s = &self.sim;
        let complete = s
            .client
            .conns()
            .chain(s.client.finished())
            .filter(|c| c.application().is_complete(len))
            .count();
        let failed = s.client.closed_reasons().len();
        assert!(
            complete + failed >= self.n,
            "{complete} complete, {failed} failed of {}: a transfer hangs",
            self.n
        );
    }
}

impl Live for Scenario {
    fn build(first: &[u8]) -> Self {
        let input = Input::arbitrary(&mut Unstructured::new(first)).ok();
        let (seed, size, connections) = input
            .as_ref()
            .map_or((0, 0, 0), |i| (i.seed, i.size, i.connections));
        let len = size as u64 % 300_000;
        let n = 1 + connections as usize % 3;
        let mut config = SimConfig::new(seed);
        config.settings.max_idle_timeout = Some(Duration::from_secs(20));
        if let Some(i) = &input {
            config.to_server = i.to_server.config(Duration::ZERO);
            config.to_client = i.to_client.config(Duration::ZERO);
        }
        let mut sim = Sim::new(config, move |_| Some(BulkTransfer::new(true, len)));
        for _ in 0..n {
            sim.connect(BulkTransfer::new(false, 0)).expect("connect");
        }
        Scenario { sim, len, n }
    }

    fn clock(&self) -> &quicksand_tests::clock::VirtualTime {
        &self.sim.clock
    }

    fn play(&mut self, data: &[u8]) -> bool {
        if let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) {
            let elapsed = self.elapsed();
            *self.sim.net.link_mut(Direction::ToServer) = input.to_server.config(elapsed);
            *self.sim.net.link_mut(Direction::ToClient) = input.to_client.config(elapsed);
        }
        let len = self.len;
        let window = WINDOW.min(LIMIT.saturating_sub(self.elapsed()));
        let settled = self.sim.run_until(window, |s| Self::settled(s, len));
        self.check();
        !settled && self.elapsed() < LIMIT
    }

    fn finish(mut self, replay: bool) {
        if !replay {
            *self.sim.net.link_mut(Direction::ToServer) = LinkConfig::default();
            *self.sim.net.link_mut(Direction::ToClient) = LinkConfig::default();
        }
        self.run_out();
    }
}
