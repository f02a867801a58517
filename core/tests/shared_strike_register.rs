//! The lock-free shared strike register: what a replay, a window, a full record and several
//! workers at once get from it. (Threads are allowed here, not in core/src.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use quicksand_core::anti_replay::{AntiReplay, SharedStrikeRegister};

/// A random per index: distinct, spread over all bytes.
fn random(i: u64) -> [u8; 32] {
    let mut r = [0u8; 32];
    for (k, chunk) in r.chunks_mut(8).enumerate() {
        let x = (i ^ ((k as u64) << 56)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    r
}

#[test]
fn a_replay_is_refused_within_the_window_and_forgotten_after_it() {
    let t0 = Instant::now();
    let r = SharedStrikeRegister::new(Duration::from_secs(10), 1000);
    assert!(r.admit(&random(1), t0));
    assert!(
        !r.admit(&random(1), t0 + Duration::from_secs(9)),
        "a replay"
    );
    assert!(r.admit(&random(2), t0 + Duration::from_secs(9)));
    assert!(
        r.admit(&random(1), t0 + Duration::from_secs(10)),
        "past the window the record has forgotten it (TLS refuses such old tickets)"
    );
    assert!(!r.admit(&random(2), t0 + Duration::from_secs(10)));
    assert_eq!(r.refused(), 2);
}

/// An entry written by a thread whose clock reading is later than ours is still live: it
/// must not be taken for expired and overwritten.
#[test]
fn an_entry_from_a_later_clock_reading_is_live() {
    let t0 = Instant::now();
    let r = SharedStrikeRegister::new(Duration::from_secs(10), 1000);
    assert!(r.admit(&random(0), t0));
    assert!(r.admit(&random(7), t0 + Duration::from_secs(5)));
    assert!(!r.admit(&random(7), t0 + Duration::from_secs(1)));
}

#[test]
fn a_full_record_refuses_rather_than_forgets() {
    let t0 = Instant::now();
    let r = SharedStrikeRegister::new(Duration::from_secs(60), 4);
    let admitted: Vec<u64> = (0..200).filter(|&i| r.admit(&random(i), t0)).collect();
    assert!(
        admitted.len() >= 4 && admitted.len() <= 8,
        "room for the capacity, at most the table: {}",
        admitted.len()
    );
    assert_eq!(r.refused(), 200 - admitted.len() as u64);
    // Every admitted one is still remembered: full never means forgetting.
    for i in admitted {
        assert!(!r.admit(&random(i), t0 + Duration::from_secs(1)), "{i}");
    }
    // Once the window has passed, the cells are reused.
    assert!(r.admit(&random(1_000), t0 + Duration::from_secs(60)));
}

#[test]
fn zero_capacity_admits_nothing() {
    let r = SharedStrikeRegister::new(Duration::from_secs(60), 0);
    assert!(!r.admit(&random(1), Instant::now()));
}

/// Four workers receive the same 2,000 ClientHellos at once (a replay flood spread over a
/// server's sockets): each random is admitted exactly once over all of them, and distinct
/// randoms are all admitted.
#[test]
fn workers_at_once_admit_each_random_once() {
    const WORKERS: usize = 4;
    const RANDOMS: u64 = 2_000;
    let r = Arc::new(SharedStrikeRegister::new(Duration::from_secs(60), 100_000));
    let admitted: Arc<Vec<AtomicUsize>> =
        Arc::new((0..RANDOMS).map(|_| AtomicUsize::new(0)).collect());
    let start = Arc::new(Barrier::new(WORKERS));
    let now = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (r, admitted, start) = (r.clone(), admitted.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                // Each worker goes through the randoms in its own order.
                for k in 0..RANDOMS {
                    let i = (k * (2 * w as u64 + 1) + w as u64 * 97) % RANDOMS;
                    if r.admit(&random(i), now) {
                        admitted[i as usize].fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let counts: Vec<usize> = admitted.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    let twice: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 1).collect();
    assert!(twice.is_empty(), "admitted more than once: {twice:?}");
    // A random two workers recorded at the same instant may be refused by both (the safe
    // way); that is rare, not the rule.
    let never = counts.iter().filter(|&&c| c == 0).count();
    assert!(
        never < RANDOMS as usize / 20,
        "{never} randoms never admitted"
    );
    assert_eq!(
        r.refused(),
        (WORKERS as u64 * RANDOMS) - (RANDOMS - never as u64)
    );
}
