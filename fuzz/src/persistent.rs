//! Persistent fuzzing: one handshaken state per process that many inputs act on in turn.
//!
//! Building a target's state (QUIC configs, a TLS handshake under AddressSanitizer, a
//! simulator) costs milliseconds; playing one input on it costs far less. A [`Runner`] keeps
//! the state between inputs and rebuilds it when an input spent it (closed the connection,
//! finished the transfers) or after `max_inputs` inputs, so what one state accumulates stays
//! bounded.
//!
//! Reproducibility. A failure must reproduce from the one input libFuzzer saves, so state
//! carried over from earlier inputs must not be what makes it happen. When an input fails on a
//! state that earlier inputs touched, the runner plays it again on a fresh state, the way a
//! replay does ([`replay`]): if it fails there too, that failure is the one reported; if not,
//! the failure needs the earlier inputs too, and the runner writes every input the state saw,
//! in order, to a directory it names in its panic (replay them in one process, in order:
//! `cargo fuzz run <target> <dir>/*`).
//!
//! The state lives on a thread of its own, since it runs on virtual time and libFuzzer times
//! its own thread's runs with the same clock calls. Targets built with
//! [`persistent_target!`](crate::persistent_target) run without LeakSanitizer: a state holds
//! its allocations across inputs by design.
//!
//! With `QUICKSAND_FUZZ_REPLAY=1` in the environment, a target plays every input on a fresh
//! state and runs the end-of-state checks after it: what `cargo test`'s corpus replay does,
//! and the way to reproduce a saved crash (`QUICKSAND_FUZZ_REPLAY=1 cargo fuzz run <target>
//! <file>`).

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::OnceLock;

/// A target's state that inputs act on.
pub trait Live: Sized {
    /// A fresh state. `first` is the input it is built for: targets may take parameters of
    /// the whole state's life from it (the seed, the endpoint's policy).
    fn build(first: &[u8]) -> Self;

    /// Plays one input; false when the state is spent and must be rebuilt (the connection
    /// closed, the transfers ended).
    fn play(&mut self, data: &[u8]) -> bool;

    /// The checks at the end of a state's life (say, that the live transfer still completes).
    /// `replay`: the state saw only one input, as in a replay; otherwise the state is being
    /// retired after a run of fuzzer inputs.
    fn finish(self, replay: bool);
}

/// Plays `data` alone on a fresh state and runs the end-of-state checks: the old
/// one-input-per-state behaviour, used by replays.
pub fn replay<L: Live>(data: &[u8]) {
    let mut live = L::build(data);
    live.play(data);
    live.finish(true);
}

fn replay_mode() -> bool {
    static MODE: OnceLock<bool> = OnceLock::new();
    *MODE.get_or_init(|| std::env::var_os("QUICKSAND_FUZZ_REPLAY").is_some_and(|v| v == "1"))
}

/// Keeps one state between inputs (see the module docs) on a thread of its own: the state
/// runs on virtual time, which the fuzzer's own thread must not see (libFuzzer times its runs
/// with the same clock calls), and gets its own seeded entropy.
pub struct Runner<L: Live> {
    name: &'static str,
    max_inputs: usize,
    worker: Option<Worker>,
    _live: PhantomData<fn() -> L>,
}

type Outcome = Result<(), Box<dyn Any + Send>>;

struct Worker {
    inputs: SyncSender<Vec<u8>>,
    outcomes: Receiver<Outcome>,
}

impl<L: Live + 'static> Runner<L> {
    /// A runner for target `name` that retires a state after `max_inputs` inputs.
    pub const fn new(name: &'static str, max_inputs: usize) -> Self {
        Runner {
            name,
            max_inputs,
            worker: None,
            _live: PhantomData,
        }
    }

    /// Plays one fuzzer input; panics on a failure (see the module docs).
    pub fn run(&mut self, data: &[u8]) {
        if replay_mode() {
            // A fresh thread per input, as `cargo test`'s replay does: fresh seeded entropy.
            return quicksand_tests::entropy::run_isolated(|| replay::<L>(data));
        }
        let (name, max_inputs) = (self.name, self.max_inputs);
        let worker = self.worker.get_or_insert_with(|| {
            let (inputs, inputs_rx) = sync_channel::<Vec<u8>>(0);
            let (outcomes_tx, outcomes) = sync_channel(0);
            std::thread::Builder::new()
                .name(format!("fuzz-{name}"))
                .stack_size(64 << 20)
                .spawn(move || {
                    let mut state = State::<L> {
                        name,
                        max_inputs,
                        live: None,
                        history: Vec::new(),
                    };
                    for data in inputs_rx {
                        let outcome = catch_unwind(AssertUnwindSafe(|| state.run(&data)));
                        if outcomes_tx.send(outcome).is_err() {
                            break;
                        }
                    }
                })
                .expect("spawning the fuzz worker");
            Worker { inputs, outcomes }
        });
        worker
            .inputs
            .send(data.to_vec())
            .expect("fuzz worker alive");
        if let Err(panic) = worker.outcomes.recv().expect("fuzz worker alive") {
            // The worker's state is gone with the failure; libFuzzer stops here anyway.
            self.worker = None;
            resume_unwind(panic);
        }
    }
}

/// The worker thread's side of a [`Runner`].
struct State<L: Live> {
    name: &'static str,
    max_inputs: usize,
    live: Option<L>,
    /// The inputs the current state saw, in order.
    history: Vec<Vec<u8>>,
}

impl<L: Live> State<L> {
    fn run(&mut self, data: &[u8]) {
        if self.live.is_none() {
            self.history.clear();
            self.live = Some(L::build(data));
        }
        self.history.push(data.to_vec());
        let live = self.live.as_mut().expect("built above");
        let played = catch_unwind(AssertUnwindSafe(|| live.play(data)));
        let outcome = match played {
            Ok(true) if self.history.len() < self.max_inputs => return,
            Ok(_) => {
                let live = self.live.take().expect("built above");
                catch_unwind(AssertUnwindSafe(|| live.finish(false)))
            }
            Err(panic) => {
                self.live = None;
                Err(panic)
            }
        };
        let history = std::mem::take(&mut self.history);
        if let Err(panic) = outcome {
            self.failed(data, history, panic);
        }
    }

    fn failed(&self, data: &[u8], history: Vec<Vec<u8>>, panic: Box<dyn Any + Send>) {
        if history.len() == 1 {
            // The input ran on a fresh state: it fails on its own.
            resume_unwind(panic);
        }
        eprintln!(
            "fuzz {}: failure after {} inputs on one state; playing the last alone",
            self.name,
            history.len()
        );
        let alone = quicksand_tests::entropy::run_isolated(|| {
            catch_unwind(AssertUnwindSafe(|| replay::<L>(data)))
        });
        if let Err(alone) = alone {
            resume_unwind(alone);
        }
        let dir = self.write_history(&history);
        panic!(
            "fuzz {}: the failure needs earlier inputs; replay them in order in one process: \
             RUSTC_BOOTSTRAP=1 cargo fuzz run {} {}/*",
            self.name,
            self.name,
            dir.display()
        );
    }

    fn write_history(&self, history: &[Vec<u8>]) -> PathBuf {
        let base = PathBuf::from("artifacts").join(self.name);
        let base = if base.is_dir() {
            base
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("history-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        for (i, input) in history.iter().enumerate() {
            let _ = std::fs::write(dir.join(format!("{i:05}")), input);
        }
        dir
    }
}
