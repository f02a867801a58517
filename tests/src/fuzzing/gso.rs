//! GSO batching and GRO splitting: arbitrary packet sequences and segment sizes, checking the
//! invariants (equal segments but the last, within limits, nothing lost or reordered).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use quicksand_core::gso::{Admission, BatchLimits, GsoBatch, PacketMeta};
use quicksand_core::Datagram;

#[derive(Arbitrary, Debug)]
struct Input {
    max_segments: u8,
    quantum: u32,
    release_window_ms: u8,
    packets: Vec<(u16, u8, bool)>,
    gro_payload: Vec<u8>,
    gro_stride: u16,
}

/// See the module docs.
pub fn gso_gro(data: &[u8]) {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let base = Instant::now();
    let a = SocketAddr::from(([127, 0, 0, 1], 1));
    let b = SocketAddr::from(([127, 0, 0, 1], 2));
    let window = Duration::from_millis(input.release_window_ms as u64 % 4);
    let limits = BatchLimits::new(input.max_segments as usize, input.quantum as usize, 1350)
        .with_release_window(window);
    let packets: Vec<PacketMeta> = input
        .packets
        .iter()
        .map(|&(len, release, other_path)| PacketMeta {
            len: (len as usize % 1500).max(1),
            from: a,
            to: if other_path { a } else { b },
            release_at: (release % 4 != 0)
                .then(|| base + Duration::from_millis(release as u64 % 4)),
        })
        .collect();
    let mut batches: Vec<Vec<PacketMeta>> = Vec::new();
    let mut current: Option<GsoBatch> = None;
    for &p in &packets {
        if let Some(batch) = current.as_mut() {
            if batch.offer(p) == Admission::Appended {
                batches.last_mut().expect("a batch is open").push(p);
                continue;
            }
        }
        current = Some(GsoBatch::start(p, limits));
        batches.push(vec![p]);
    }
    // Nothing lost or reordered.
    let flat: Vec<PacketMeta> = batches.iter().flatten().copied().collect();
    assert_eq!(flat, packets);
    for batch in &batches {
        let first = batch[0];
        assert!(batch.len() <= limits.max_segments);
        let total: usize = batch.iter().map(|p| p.len).sum();
        assert!(batch.len() == 1 || total <= limits.max_bytes);
        for (i, p) in batch.iter().enumerate() {
            assert_eq!((p.from, p.to), (first.from, first.to));
            match (first.release_at, p.release_at) {
                (None, None) => {}
                (Some(f), Some(t)) => assert!(f <= t && t <= f + window, "release window"),
                other => panic!("due and held packets in one batch: {other:?}"),
            }
            if i + 1 < batch.len() {
                assert_eq!(p.len, first.len, "only the last segment may be shorter");
            } else {
                assert!(p.len <= first.len);
            }
        }
    }

    // GRO: splitting by any stride gives back the bytes, in order, in stride-sized pieces.
    let stride = input.gro_stride as usize;
    let mut d = Datagram::new(&input.gro_payload[..], a, b, base);
    d.segment_size = Some(stride);
    let segments: Vec<Datagram> = d.split_segments().collect();
    let joined: Vec<u8> = segments
        .iter()
        .flat_map(|s| s.payload.iter().copied())
        .collect();
    assert_eq!(joined, input.gro_payload);
    if stride > 0 && stride < input.gro_payload.len() {
        assert!(segments[..segments.len() - 1]
            .iter()
            .all(|s| s.payload.len() == stride));
    }
}
