//! Datagram types: GRO splitting and ECN bits.

use std::net::SocketAddr;
use std::time::Instant;

use quicksand_core::{Datagram, Ecn};

#[test]
fn gro_split_keeps_order_and_metadata() {
    let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let payload: Vec<u8> = (0..23u8).collect();
    let mut d = Datagram::new(&payload[..], a, b, Instant::now());
    d.segment_size = Some(8);
    d.ecn = Some(Ecn::Ect0);
    let segs: Vec<Datagram> = d.split_segments().collect();
    assert_eq!(segs.len(), 3);
    let joined: Vec<u8> = segs
        .iter()
        .flat_map(|s| s.payload.iter().copied())
        .collect();
    assert_eq!(joined, payload);
    assert!(segs
        .iter()
        .all(|s| s.peer == a && s.local == b && s.ecn == Some(Ecn::Ect0)));
    assert!(segs.iter().all(|s| s.segment_size.is_none()));
}

#[test]
fn ecn_bits_round_trip() {
    for e in [Ecn::Ect0, Ecn::Ect1, Ecn::Ce] {
        assert_eq!(Ecn::from_bits(e.to_bits()), Some(e));
    }
    assert_eq!(Ecn::from_bits(0), None);
}
