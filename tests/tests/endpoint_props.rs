//! Property: arbitrary datagrams from arbitrary addresses never panic the endpoint, never grow
//! its table past its limits, and leave established connections working.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use quicksand_core::Datagram;
use quicksand_tests::apps::BulkTransfer;
use quicksand_tests::sim::{Sim, SimConfig, SERVER};

quicksand_tests::virtual_clock!();

#[derive(Debug, Clone)]
enum Junk {
    Random(Vec<u8>),
    /// A QUIC v1 long header of some type with random CIDs and body.
    Long {
        type_bits: u8,
        dcid: Vec<u8>,
        scid: Vec<u8>,
        body: Vec<u8>,
        pad_to: usize,
    },
    /// A short header aimed at one of the server's live CIDs, with a garbage body.
    LiveShort {
        cid_index: usize,
        body: Vec<u8>,
    },
    /// A short header to an unknown CID.
    UnknownShort(Vec<u8>),
}

fn junk() -> impl Strategy<Value = Junk> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1500).prop_map(Junk::Random),
        (
            0u8..4,
            prop::collection::vec(any::<u8>(), 0..21),
            prop::collection::vec(any::<u8>(), 0..21),
            prop::collection::vec(any::<u8>(), 0..64),
            0usize..1400
        )
            .prop_map(|(type_bits, dcid, scid, body, pad_to)| Junk::Long {
                type_bits,
                dcid,
                scid,
                body,
                pad_to
            }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 0..1300))
            .prop_map(|(cid_index, body)| Junk::LiveShort { cid_index, body }),
        prop::collection::vec(any::<u8>(), 17..1300).prop_map(Junk::UnknownShort),
    ]
}

fn bytes(j: &Junk, live: &[Vec<u8>]) -> Vec<u8> {
    match j {
        Junk::Random(b) => b.clone(),
        Junk::Long {
            type_bits,
            dcid,
            scid,
            body,
            pad_to,
        } => {
            let mut p = vec![0xc0 | (type_bits << 4)];
            p.extend(1u32.to_be_bytes());
            p.push(dcid.len() as u8);
            p.extend(dcid);
            p.push(scid.len() as u8);
            p.extend(scid);
            p.extend(body);
            if p.len() < *pad_to {
                p.resize(*pad_to, 0);
            }
            p
        }
        Junk::LiveShort { cid_index, body } => {
            let mut p = vec![0x40];
            if !live.is_empty() {
                p.extend(&live[cid_index % live.len()]);
            }
            p.extend(body);
            p
        }
        Junk::UnknownShort(b) => {
            let mut p = b.clone();
            p[0] = 0x40 | (p[0] & 0x3f);
            p
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn junk_never_hurts_the_endpoint(
        validate in any::<bool>(),
        packets in prop::collection::vec((junk(), any::<u16>(), any::<u8>()), 1..60),
    ) {
        const LEN: u64 = 50_000;
        let mut config = SimConfig::new(1);
        config.server_endpoint.address_validation = if validate {
            quicksand_core::AddressValidation::Always
        } else {
            quicksand_core::AddressValidation::Never
        };
        config.server_endpoint.max_connections = 8;
        config.server_endpoint.max_handshakes = 4;
        let mut s = Sim::new(config, |_| Some(BulkTransfer::new(true, LEN)));
        s.connect(BulkTransfer::new(false, LEN)).unwrap();
        prop_assert!(s.run_until(Duration::from_secs(2), |s| s.server.conns().any(|c| c.stage() == quicksand_core::Stage::Running)));
        let live: Vec<Vec<u8>> = s.server.conns().flat_map(|c| c.source_ids()).map(|c| c.to_vec()).collect();
        let mut answers = Vec::new();
        for (j, port, host) in &packets {
            let now = Instant::now();
            let from = SocketAddr::from(([203, 0, 113, *host], *port));
            let d = Datagram::new(&bytes(j, &live)[..], from, SERVER, now);
            s.server.receive(now, d);
            s.server.poll(now, &mut answers);
            prop_assert!(s.server.endpoint().connection_count() <= 8);
            prop_assert!(s.server.endpoint().cid_count() <= 8 * 10);
        }
        for a in &answers {
            prop_assert!(a.datagrams().all(|d| d.len() <= 1500));
        }
        // The established transfer still completes byte-exact.
        let done = s.run_until(Duration::from_secs(20), |s| {
            s.client.conns().all(|c| c.application().is_complete(LEN))
                && s.client.finished().next().is_none()
        });
        prop_assert!(done, "transfer broken by junk: {:?}", s.client.closed_reasons());
    }
}
