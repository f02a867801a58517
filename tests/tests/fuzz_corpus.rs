//! Replays every fuzz target's committed corpus (`fuzz/corpus/<target>/`) through the same
//! function the fuzzer runs, on stable Rust, so CI exercises every target without a fuzzer.
//! The targets that keep a state across inputs when fuzzing (`fuzz/src/persistent.rs`) play
//! each file on a fresh state here and run their end-of-state checks after it.

use std::path::Path;
use std::time::{Duration, Instant};

use quicksand_tests::clock::VirtualTime;

quicksand_tests::virtual_clock!();

// The fuzz crate's target bodies, compiled into this test (the fuzz crate is a workspace of
// its own and depends on this one). Its helpers for fuzz binaries go unused here.
#[allow(dead_code, unused_macros)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz;

#[test]
fn corpora_replay_without_failure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for entry in std::fs::read_dir(&root).expect("fuzz/corpus") {
        let path = entry.expect("corpus entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(
            !path.is_dir() || fuzz::TARGETS.iter().any(|(t, _)| *t == name),
            "corpus {name} belongs to no target"
        );
    }
    for (name, target) in fuzz::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "target {name} has no seed corpus");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            // Each input on its own thread: fresh seeded entropy, as the fuzzer's process is.
            let result = std::panic::catch_unwind(|| {
                quicksand_tests::entropy::run_isolated(|| target(&data))
            });
            assert!(
                result.is_ok(),
                "{name}: {} fails; reproduce with QUICKSAND_FUZZ_REPLAY=1 RUSTC_BOOTSTRAP=1 \
                 cargo fuzz run {name} {}",
                file.display(),
                file.display()
            );
        }
    }
}

/// A state that fails on input `boom`, or once it has seen `fail_after` inputs.
struct Fragile {
    seen: usize,
    fail_after: usize,
    clock: VirtualTime,
}

impl fuzz::persistent::Live for Fragile {
    fn build(first: &[u8]) -> Self {
        Fragile {
            seen: 0,
            fail_after: first.first().map_or(usize::MAX, |&b| usize::from(b)),
            clock: VirtualTime::enter(),
        }
    }

    fn clock(&self) -> &VirtualTime {
        &self.clock
    }

    fn play(&mut self, data: &[u8]) -> bool {
        self.seen += 1;
        assert!(data != b"boom", "boom on its own");
        assert!(
            self.seen < self.fail_after,
            "failed after {} inputs",
            self.seen
        );
        true
    }

    fn finish(self, _replay: bool) {}
}

/// A state that checks it runs on its own virtual clock: a millisecond per input, whatever
/// happened on the thread between inputs.
struct Ticking {
    /// The instant of the first input and the inputs played since.
    start: Option<(Instant, u32)>,
    clock: VirtualTime,
}

impl fuzz::persistent::Live for Ticking {
    fn build(_: &[u8]) -> Self {
        Ticking {
            start: None,
            clock: VirtualTime::enter(),
        }
    }

    fn clock(&self) -> &VirtualTime {
        &self.clock
    }

    fn play(&mut self, _: &[u8]) -> bool {
        let (start, played) = self.start.get_or_insert((Instant::now(), 0));
        assert_eq!(
            Instant::now() - *start,
            Duration::from_millis(u64::from(*played)),
            "virtual time lost its place between inputs"
        );
        *played += 1;
        self.clock.advance(Duration::from_millis(1));
        true
    }

    fn finish(self, _replay: bool) {}
}

#[test]
fn persistent_runner_plays_on_virtual_time_and_leaves_the_thread_on_real_time() {
    let mut runner = fuzz::persistent::Runner::<Ticking>::new("ticking", 100);
    for _ in 0..5 {
        runner.run(b"tick");
        // Between inputs the thread is libFuzzer's, which times its runs: real time moves.
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            before.elapsed() >= Duration::from_millis(2),
            "the thread stayed on virtual time between inputs"
        );
    }
}

#[test]
fn suspended_virtual_time_moves_only_when_told() {
    let clock = VirtualTime::enter();
    let start = Instant::now();
    clock.suspend();
    clock.advance(Duration::from_millis(3));
    // Deadlines taken on virtual time are still reached on it while suspended.
    clock.advance_to(start + Duration::from_millis(10));
    assert_eq!(clock.elapsed(), Duration::from_millis(10));
    clock.resume();
    assert_eq!(Instant::now() - start, Duration::from_millis(10));
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn persistent_runner_reports_a_failure_of_one_input_as_it_is() {
    let mut runner = fuzz::persistent::Runner::<Fragile>::new("fragile", 100);
    runner.run(&[200]);
    runner.run(b"fine");
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run(b"boom")))
        .expect_err("boom fails");
    assert!(panic_message(panic).contains("boom on its own"));
}

#[test]
fn persistent_runner_writes_the_history_a_failure_needs() {
    let mut runner = fuzz::persistent::Runner::<Fragile>::new("fragile", 100);
    // Built for [3]: the third input on this state fails, though it passes alone.
    runner.run(&[3]);
    runner.run(b"second");
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run(b"third")))
        .expect_err("the third input fails");
    let message = panic_message(panic);
    assert!(message.contains("needs earlier inputs"), "{message}");
    let dir = message
        .split_whitespace()
        .last()
        .and_then(|p| p.strip_suffix("/*"))
        .expect("the history's directory");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("history written")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(inputs, [vec![3], b"second".to_vec(), b"third".to_vec()]);
    std::fs::remove_dir_all(dir).unwrap();
}
