//! GSO batching rules: what joins a batch and what starts a new one.

use std::net::SocketAddr;
use std::time::Instant;

use quicksand_core::gso::{Admission, BatchLimits, GsoBatch, PacketMeta, MAX_TRANSMIT_BYTES};

use std::time::Duration;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn pkt(len: usize) -> PacketMeta {
    PacketMeta {
        len,
        from: addr(1),
        to: addr(2),
        release_at: None,
    }
}

/// Runs a whole sequence through batching, as the connection does, and returns the
/// batches as lists of packet sizes.
fn batches(pkts: &[PacketMeta], limits: BatchLimits) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Option<GsoBatch> = None;
    for &p in pkts {
        if let Some(b) = cur.as_mut() {
            if b.offer(p) == Admission::Appended {
                out.last_mut().unwrap().push(p.len);
                continue;
            }
        }
        cur = Some(GsoBatch::start(p, limits));
        out.push(vec![p.len]);
    }
    out
}

#[test]
fn equal_sizes_batch_and_a_short_packet_ends_the_batch() {
    let l = BatchLimits::new(64, 100_000, 1350);
    let seq = [
        pkt(1200),
        pkt(1200),
        pkt(1200),
        pkt(700),
        pkt(1200),
        pkt(1200),
    ];
    assert_eq!(
        batches(&seq, l),
        vec![vec![1200, 1200, 1200, 700], vec![1200, 1200]]
    );
}

#[test]
fn a_larger_packet_starts_a_new_batch() {
    let l = BatchLimits::new(64, 100_000, 1350);
    let seq = [pkt(600), pkt(1200), pkt(1200)];
    assert_eq!(batches(&seq, l), vec![vec![600], vec![1200, 1200]]);
}

#[test]
fn segment_limit_caps_a_batch() {
    let l = BatchLimits::new(3, 100_000, 1350);
    let seq = [pkt(1000); 7];
    assert_eq!(
        batches(&seq, l),
        vec![vec![1000; 3], vec![1000; 3], vec![1000]]
    );
    let single = BatchLimits::new(1, 100_000, 1350);
    assert_eq!(batches(&seq[..2], single), vec![vec![1000], vec![1000]]);
}

#[test]
fn byte_budget_caps_a_batch_and_quantum_never_starves_one_packet() {
    let l = BatchLimits::new(64, 2500, 1350);
    let seq = [pkt(1000); 5];
    assert_eq!(
        batches(&seq, l),
        vec![vec![1000, 1000], vec![1000, 1000], vec![1000]]
    );
    // A send quantum smaller than one packet still admits that packet.
    assert_eq!(BatchLimits::new(64, 10, 1350).max_bytes, 1350);
    // Never above the UDP limit, whatever the quantum.
    assert_eq!(
        BatchLimits::new(64, 1 << 30, 1350).max_bytes,
        MAX_TRANSMIT_BYTES
    );
    let big = BatchLimits::new(128, 1 << 30, 1350);
    let many = vec![pkt(1350); 100];
    let b = batches(&many, big);
    assert!(b
        .iter()
        .all(|x| x.iter().sum::<usize>() <= MAX_TRANSMIT_BYTES));
    assert_eq!(b[0].len(), MAX_TRANSMIT_BYTES / 1350);
}

#[test]
fn release_time_change_splits_batches() {
    let l = BatchLimits::new(64, 100_000, 1350);
    let t = Instant::now() + Duration::from_millis(5);
    let later = PacketMeta {
        release_at: Some(t),
        ..pkt(1200)
    };
    let seq = [pkt(1200), pkt(1200), later, later, pkt(1200)];
    assert_eq!(
        batches(&seq, l),
        vec![vec![1200, 1200], vec![1200, 1200], vec![1200]]
    );
}

#[test]
fn release_times_within_the_window_batch() {
    // Quiche's pacer spaces packets microseconds apart; a driver sends everything within its
    // release horizon at once, so those packets share one GSO send.
    let t = Instant::now() + Duration::from_millis(5);
    let at = |us: u64| PacketMeta {
        release_at: Some(t + Duration::from_micros(us)),
        ..pkt(1200)
    };
    let l = BatchLimits::new(64, 100_000, 1350).with_release_window(Duration::from_millis(1));
    let seq = [at(0), at(4), at(8), at(1000), at(1004), at(2005)];
    assert_eq!(
        batches(&seq, l),
        vec![vec![1200, 1200, 1200, 1200], vec![1200], vec![1200]]
    );
    // Without a window, every distinct release time is its own send.
    let exact = BatchLimits::new(64, 100_000, 1350);
    assert_eq!(batches(&seq[..3], exact).len(), 3);
    // A due packet never joins a held batch, nor a held packet a due one.
    assert_eq!(batches(&[pkt(1200), at(0), pkt(1200)], l).len(), 3);
}

#[test]
fn path_change_splits_batches() {
    let l = BatchLimits::new(64, 100_000, 1350);
    let other = PacketMeta {
        to: addr(3),
        ..pkt(1200)
    };
    let seq = [pkt(1200), other, other];
    assert_eq!(batches(&seq, l), vec![vec![1200], vec![1200, 1200]]);
}

#[test]
fn room_is_segment_size_until_closed() {
    let l = BatchLimits::new(2, 100_000, 1350);
    let mut b = GsoBatch::start(pkt(1100), l);
    assert_eq!(b.room(), 1100);
    assert_eq!(b.offer(pkt(1100)), Admission::Appended);
    assert!(b.is_closed());
    assert_eq!(b.room(), 0);
    assert_eq!(b.offer(pkt(1100)), Admission::Rejected);
    assert_eq!((b.segments(), b.bytes()), (2, 2200));
}

#[test]
fn quiche_release_times_within_the_window_are_due() {
    // quiche stamps packets with its own clock, read after the driver's `now`: without the
    // window every packet would look held and carry a release time of its own.
    let now = Instant::now();
    let info = |after: Duration| quiche::SendInfo {
        from: addr(1),
        to: addr(2),
        at: now + after,
    };
    let window = Duration::from_millis(1);
    let soon = PacketMeta::from_send_info(1200, &info(Duration::from_micros(40)), now, window);
    assert_eq!(soon.release_at, None);
    let later = PacketMeta::from_send_info(1200, &info(Duration::from_millis(3)), now, window);
    assert_eq!(later.release_at, Some(now + Duration::from_millis(3)));
    let exact =
        PacketMeta::from_send_info(1200, &info(Duration::from_micros(40)), now, Duration::ZERO);
    assert!(exact.release_at.is_some());
}
