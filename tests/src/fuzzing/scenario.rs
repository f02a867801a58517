//! An arbitrary fault schedule and request mix through the simulator: every transfer completes
//! byte-exact or its connection ends with a reason the caller sees.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::apps::BulkTransfer;
use crate::sim::{Blackhole, LinkConfig, LossModel, Sim, SimConfig};

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
    fn config(&self) -> LinkConfig {
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
                    start: Duration::from_millis(start as u64 % 5000),
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

/// See the module docs. Needs the virtual clock (`virtual_clock!`) in the calling binary.
pub fn sim_scenario(data: &[u8]) {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let len = input.size as u64 % 300_000;
    let n = 1 + input.connections as usize % 3;
    let mut config = SimConfig::new(input.seed);
    config.to_server = input.to_server.config();
    config.to_client = input.to_client.config();
    config.settings.max_idle_timeout = Some(Duration::from_secs(20));
    let mut s = Sim::new(config, move |_| Some(BulkTransfer::new(true, len)));
    for _ in 0..n {
        s.connect(BulkTransfer::new(false, 0)).expect("connect");
    }
    s.run_until(Duration::from_secs(600), |s| {
        s.client.conns().all(|c| c.application().is_complete(len)) || s.client.is_empty()
    });
    let all: Vec<_> = s.client.conns().chain(s.client.finished()).collect();
    let complete = all
        .iter()
        .filter(|c| c.application().is_complete(len))
        .count();
    let failed = s.client.closed_reasons().len();
    assert!(
        all.iter().all(|c| c.application().mismatch.is_none()),
        "corrupted bytes delivered"
    );
    assert!(
        complete + failed >= n,
        "{complete} complete, {failed} failed of {n}: a transfer hangs"
    );
}
