//! `endpoint_datagrams`: arbitrary datagrams from arbitrary addresses into a server endpoint
//! that has a live connection — header parsing, short-header routing, version negotiation,
//! RETRY, stateless reset, the table limits. The connection limit and the CID table's bound
//! must hold after every datagram, answers must fit a datagram, and the live transfer must
//! still complete byte-exact.
//!
//! Persistent ([`crate::persistent`]): one simulation per process whose client has a live
//! connection to the server, downloading `LEN` bytes. Each input's datagrams go to the server;
//! then the simulation runs `SLICE` of virtual time, so the live transfer and the connections
//! the junk opened move on. After `MAX_INPUTS` inputs (or once the live connection is gone)
//! the state is retired: the live transfer must then complete within 30 s of virtual time.
//! Whether the server validates addresses (RETRY) is taken from the input a state is built
//! for.
//!
//! The input is `Input` decoded by `arbitrary`, the format the corpus was written in.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use quicksand_core::{AddressValidation, Datagram, Stage};
use quicksand_tests::apps::BulkTransfer;
use quicksand_tests::sim::{Sim, SimConfig, SERVER};

use super::persistent::Live;

/// Bytes the live connection downloads.
const LEN: u64 = 30_000;
/// Inputs one simulation sees at most.
pub const MAX_INPUTS: usize = 200;
/// Virtual time each input lets pass after its datagrams.
const SLICE: Duration = Duration::from_millis(2);
/// Datagrams per input at most.
const MAX_DATAGRAMS: usize = 64;
const MAX_CONNECTIONS: usize = 8;

#[derive(Arbitrary, Debug)]
enum Junk {
    Raw(Vec<u8>),
    Long {
        type_bits: u8,
        version: u32,
        dcid: Vec<u8>,
        scid: Vec<u8>,
        body: Vec<u8>,
        pad: u16,
    },
    LiveShort {
        cid: u8,
        body: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    validate: bool,
    packets: Vec<(Junk, [u8; 4], u16)>,
}

impl Junk {
    fn bytes(&self, live: &[Vec<u8>]) -> Vec<u8> {
        match self {
            Junk::Raw(b) => b.clone(),
            Junk::Long {
                type_bits,
                version,
                dcid,
                scid,
                body,
                pad,
            } => {
                let mut p = vec![0xc0 | ((type_bits & 3) << 4)];
                // Half of them carry QUIC v1, so they get past version negotiation.
                let version = if version % 2 == 0 { 1 } else { *version };
                p.extend(version.to_be_bytes());
                for id in [dcid, scid] {
                    p.push(id.len().min(255) as u8);
                    p.extend(id.iter().take(255));
                }
                p.extend(body);
                p.resize(p.len().max(*pad as usize % 1500), 0);
                p
            }
            Junk::LiveShort { cid, body } => {
                let mut p = vec![0x40];
                if !live.is_empty() {
                    p.extend(&live[*cid as usize % live.len()]);
                }
                p.extend(body);
                p
            }
        }
    }
}

/// The simulation with its live connection.
pub struct Endpoint {
    sim: Sim<BulkTransfer, BulkTransfer>,
}

impl Live for Endpoint {
    fn build(first: &[u8]) -> Self {
        let validate = Input::arbitrary(&mut Unstructured::new(first)).is_ok_and(|i| i.validate);
        let mut config = SimConfig::new(1);
        config.server_endpoint.address_validation = if validate {
            AddressValidation::Always
        } else {
            AddressValidation::Never
        };
        config.server_endpoint.max_connections = MAX_CONNECTIONS;
        config.server_endpoint.max_handshakes = 4;
        let mut sim = Sim::new(config, |_| Some(BulkTransfer::new(true, LEN)));
        sim.connect(BulkTransfer::new(false, 0)).expect("connect");
        let up = sim.run_until(Duration::from_secs(2), |s| {
            s.server.conns().any(|c| c.stage() == Stage::Running)
        });
        assert!(up, "the live connection did not come up");
        Endpoint { sim }
    }

    fn clock(&self) -> &quicksand_tests::clock::VirtualTime {
        &self.sim.clock
    }

    fn play(&mut self, data: &[u8]) -> bool {
        let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
            return true;
        };
        let s = &mut self.sim;
        let live: Vec<Vec<u8>> = s
            .server
            .conns()
            .filter(|c| c.stage() == Stage::Running)
            .flat_map(|c| c.source_ids())
            .map(|c| c.to_vec())
            .collect();
        let mut out = Vec::new();
        for (junk, ip, port) in input.packets.iter().take(MAX_DATAGRAMS) {
            let bytes = junk.bytes(&live);
            let now = Instant::now();
            let from = SocketAddr::from((*ip, *port));
            s.server
                .receive(now, Datagram::new(&bytes[..], from, SERVER, now));
            s.server.poll(now, &mut out);
            let endpoint = s.server.endpoint();
            assert!(
                endpoint.connection_count() <= MAX_CONNECTIONS,
                "connection limit exceeded"
            );
            assert!(
                endpoint.cid_count() <= MAX_CONNECTIONS * 10,
                "CID table grew past its bound"
            );
        }
        for t in &out {
            assert!(t.datagrams().all(|d| d.len() <= 1500));
        }
        s.run_for(SLICE);
        // Retire the state once the live connection is gone: `finish` says whether it had
        // completed first.
        !s.client.is_empty()
    }

    fn finish(mut self, _replay: bool) {
        let done = self.sim.run_until(Duration::from_secs(30), |s| {
            let mut conns = s.client.conns().chain(s.client.finished());
            conns.any(|c| c.application().is_complete(LEN))
        });
        assert!(
            done,
            "the live transfer was broken by junk: {:?}",
            self.sim.client.closed_reasons()
        );
    }
}
