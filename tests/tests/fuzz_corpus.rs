//! Replays every fuzz target's committed corpus (`fuzz/corpus/<target>/`) through the same
//! function the fuzzer runs, on stable Rust, so CI exercises every target without a fuzzer.
//! The targets that keep a state across inputs when fuzzing (`fuzz/src/persistent.rs`) play
//! each file on a fresh state here and run their end-of-state checks after it.

use std::path::Path;

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
