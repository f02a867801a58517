//! Connection-ID generators shared by an endpoint's connections on several threads.

use std::collections::HashSet;
use std::sync::Arc;

use quicksand_core::{ConnectionIdGenerator, QuicLbConnectionIds, RandomConnectionIds};

/// Draws 2,000 IDs on each of four threads at once from one generator.
fn draw_concurrently(gen: Arc<dyn ConnectionIdGenerator>) -> (usize, usize) {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let gen = gen.clone();
            std::thread::spawn(move || (0..2000).map(|_| gen.generate()).collect::<Vec<_>>())
        })
        .collect();
    let mut all = HashSet::new();
    let mut drawn = 0;
    for t in threads {
        for id in t.join().unwrap() {
            drawn += 1;
            all.insert(id);
        }
    }
    (drawn, all.len())
}

#[test]
fn ids_made_on_many_threads_at_once_never_repeat() {
    // 4-byte IDs: 8,000 draws repeat by chance with probability ~0.7%; threads sharing a
    // keystream would repeat thousands of times.
    let (drawn, distinct) = draw_concurrently(Arc::new(RandomConnectionIds::with_seed(4, 9)));
    assert!(distinct >= drawn - 10, "{distinct} distinct of {drawn}");
    // QUIC-LB: the same with 7 random nonce bytes after the server id.
    let lb = QuicLbConnectionIds::with_seed(0, &[0x2a], 7, 9).unwrap();
    let (drawn, distinct) = draw_concurrently(Arc::new(lb));
    assert_eq!(distinct, drawn);
}
