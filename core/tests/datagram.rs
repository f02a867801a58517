//! Datagram types: GRO splitting, ECN bits and the bounded queue.

use std::net::SocketAddr;
use std::time::Instant;

use quicksand_core::{Datagram, DatagramQueue, Ecn};

#[test]
fn queue_drops_and_counts_past_capacity() {
    let mut q = DatagramQueue::new(2);
    assert!(q.push(1).is_ok());
    assert!(q.push(2).is_ok());
    assert_eq!(q.push(3), Err(3));
    assert_eq!(q.dropped(), 1);
    assert_eq!(q.pop(), Some(1));
    assert!(q.push(4).is_ok());
    assert_eq!((q.pop(), q.pop(), q.pop()), (Some(2), Some(4), None));
}

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
