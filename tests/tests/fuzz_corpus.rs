//! Replays every fuzz target's committed corpus (`fuzz/corpus/<target>/`) through the same
//! function the fuzzer runs, on stable Rust, so CI exercises every target without a fuzzer.

use std::path::Path;

quicksand_tests::virtual_clock!();

#[test]
fn corpora_replay_without_failure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in quicksand_tests::fuzzing::TARGETS {
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
                "{name}: {} fails; reproduce with RUSTC_BOOTSTRAP=1 cargo fuzz run {name} {}",
                file.display(),
                file.display()
            );
        }
    }
}
