//! Routing between `SO_REUSEPORT` workers: each segment of a GRO batch goes to its owner.

use std::net::SocketAddr;
use std::time::Instant;

use quicksand_core::driver_workers::{Route, Workers};
use quicksand_core::{ConnectionContext, Datagram};

/// A short-header packet for `dcid`.
fn short_header(dcid: &[u8]) -> Vec<u8> {
    let mut p = vec![0x40];
    p.extend_from_slice(dcid);
    p.extend_from_slice(&[0u8; 30]);
    p
}

fn batch(segments: &[Vec<u8>]) -> Datagram {
    let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let mut d = Datagram::new(&segments.concat()[..], a, a, Instant::now());
    d.segment_size = Some(segments[0].len());
    d
}

#[test]
fn each_segment_of_a_gro_batch_goes_to_its_own_worker() {
    let w = Workers::new(3).unwrap();
    let base = ConnectionContext::default();
    let cid = |owner| w.context(owner, &base).cid_generator.generate();
    let (mine, theirs) = (short_header(&cid(0)), short_header(&cid(2)));
    // Three equal-size segments: ours, worker 2's, ours.
    let mut got = Vec::new();
    w.route_datagram(
        0,
        batch(&[mine.clone(), theirs.clone(), mine.clone()]),
        |route, seg| got.push((route, seg.payload.to_vec())),
    );
    assert_eq!(
        got,
        vec![
            (Route::Local, mine.clone()),
            (Route::Forward(2), theirs),
            (Route::Local, mine.clone()),
        ]
    );
    // A batch that is all ours stays one datagram (the driver splits it).
    let mut whole = Vec::new();
    w.route_datagram(0, batch(&[mine.clone(), mine.clone()]), |route, seg| {
        whole.push((route, seg.payload.len()))
    });
    assert_eq!(whole, vec![(Route::Local, 2 * mine.len())]);
}
