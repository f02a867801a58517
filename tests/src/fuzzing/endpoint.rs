//! Arbitrary datagrams from arbitrary addresses into a server that has a live connection:
//! header parsing, short-header routing, version negotiation, RETRY, stateless reset and the
//! table limits. The live transfer must still complete byte-exact afterwards.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use quicksand_core::{Datagram, Stage};

use crate::apps::BulkTransfer;
use crate::sim::{Sim, SimConfig, SERVER};

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

/// See the module docs. Needs the virtual clock (`virtual_clock!`) in the calling binary.
pub fn endpoint_datagrams(data: &[u8]) {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    const LEN: u64 = 30_000;
    let mut config = SimConfig::new(1);
    config.server_endpoint.address_validation = if input.validate {
        quicksand_core::AddressValidation::Always
    } else {
        quicksand_core::AddressValidation::Never
    };
    config.server_endpoint.max_connections = 8;
    config.server_endpoint.max_handshakes = 4;
    let mut s = Sim::new(config, |_| Some(BulkTransfer::new(true, LEN)));
    s.connect(BulkTransfer::new(false, 0)).expect("connect");
    assert!(s.run_until(Duration::from_secs(2), |s| s
        .server
        .conns()
        .any(|c| c.stage() == Stage::Running)));
    let live: Vec<Vec<u8>> = s
        .server
        .conns()
        .flat_map(|c| c.source_ids())
        .map(|c| c.to_vec())
        .collect();
    let mut out = Vec::new();
    for (junk, ip, port) in input.packets.iter().take(64) {
        let bytes = match junk {
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
                p.extend(if version % 2 == 0 { 1 } else { *version }.to_be_bytes());
                p.push(dcid.len().min(255) as u8);
                p.extend(dcid.iter().take(255));
                p.push(scid.len().min(255) as u8);
                p.extend(scid.iter().take(255));
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
        };
        let now = Instant::now();
        s.server.receive(
            now,
            Datagram::new(&bytes[..], SocketAddr::from((*ip, *port)), SERVER, now),
        );
        s.server.poll(now, &mut out);
        assert!(
            s.server.endpoint().connection_count() <= 8,
            "connection limit exceeded"
        );
        assert!(
            s.server.endpoint().cid_count() <= 8 * 10,
            "CID table grew past its bound"
        );
    }
    for t in &out {
        assert!(t.datagrams().all(|d| d.len() <= 1500));
    }
    let done = s.run_until(Duration::from_secs(30), |s| {
        s.client.conns().any(|c| c.application().is_complete(LEN))
    });
    assert!(
        done,
        "the live transfer was broken by junk: {:?}",
        s.client.closed_reasons()
    );
}
