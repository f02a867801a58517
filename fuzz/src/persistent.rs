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
//! The state runs on libFuzzer's own thread, on virtual time between [`VirtualTime::resume`]
//! and [`VirtualTime::suspend`] around each input: libFuzzer times its runs with the same clock
//! calls, so between inputs the thread sees real time again. (An earlier version kept the
//! state on a thread of its own; handing each input over and back cost a fifth of the run.)
//! libFuzzer's `-timeout` cannot work here, since its alarm would read virtual time in the
//! middle of an input: `SIGALRM` stays blocked while an input plays, and a watchdog thread
//! aborts the run (libFuzzer then saves the input as a crash) when one input has played for
//! [`HANG_LIMIT`] of real time. Targets built with
//! [`persistent_target!`](crate::persistent_target) run without LeakSanitizer: a state holds
//! its allocations across inputs by design.
//!
//! With `QUICKSAND_FUZZ_REPLAY=1` in the environment, a target plays every input on a fresh
//! state and runs the end-of-state checks after it: what `cargo test`'s corpus replay does,
//! and the way to reproduce a saved crash (`QUICKSAND_FUZZ_REPLAY=1 cargo fuzz run <target>
//! <file>`).

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use quicksand_tests::clock::VirtualTime;

/// Real time one input may play before the watchdog calls it a hang.
pub const HANG_LIMIT: Duration = Duration::from_secs(60);

/// A target's state that inputs act on.
pub trait Live: Sized {
    /// A fresh state. `first` is the input it is built for: targets may take parameters of
    /// the whole state's life from it (the seed, the endpoint's policy).
    fn build(first: &[u8]) -> Self;

    /// The virtual clock the state runs on (entered by `build`).
    fn clock(&self) -> &VirtualTime;

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

/// Keeps one state between inputs (see the module docs) on libFuzzer's thread.
pub struct Runner<L: Live> {
    name: &'static str,
    max_inputs: usize,
    live: Option<L>,
    /// The inputs the current state saw, in order.
    history: Vec<Vec<u8>>,
    watchdog: Option<Watchdog>,
}

impl<L: Live> Runner<L> {
    /// A runner for target `name` that retires a state after `max_inputs` inputs.
    pub const fn new(name: &'static str, max_inputs: usize) -> Self {
        Runner {
            name,
            max_inputs,
            live: None,
            history: Vec::new(),
            watchdog: None,
        }
    }

    /// Plays one fuzzer input; panics on a failure (see the module docs).
    pub fn run(&mut self, data: &[u8]) {
        if replay_mode() {
            // A fresh thread per input, as `cargo test`'s replay does: fresh seeded entropy.
            return quicksand_tests::entropy::run_isolated(|| replay::<L>(data));
        }
        let name = self.name;
        let _playing = self
            .watchdog
            .get_or_insert_with(|| Watchdog::start(name))
            .playing();
        if self.live.is_none() {
            self.history.clear();
            let live = L::build(data);
            live.clock().suspend();
            self.live = Some(live);
        }
        self.history.push(data.to_vec());
        let live = self.live.as_mut().expect("built above");
        live.clock().resume();
        let played = catch_unwind(AssertUnwindSafe(|| live.play(data)));
        let outcome = match played {
            Ok(true) if self.history.len() < self.max_inputs => {
                live.clock().suspend();
                return;
            }
            Ok(_) => {
                let live = self.live.take().expect("built above");
                catch_unwind(AssertUnwindSafe(|| live.finish(false)))
            }
            Err(panic) => {
                // Dropped on its own clock, as it ran.
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

impl<L: Live> Drop for Runner<L> {
    fn drop(&mut self) {
        // A state still live when libFuzzer exits (its thread's locals are torn down) drops on
        // its own clock, as it ran.
        if let Some(live) = self.live.take() {
            live.clock().resume();
        }
    }
}

/// Catches an input that never ends (see the module docs): a thread that wakes every second
/// and aborts the process once the input being played has run for [`HANG_LIMIT`] of real
/// time. libFuzzer's handler for the abort saves that input as a crash.
struct Watchdog {
    /// When the input being played began, in milliseconds since `epoch` plus one; 0 between
    /// inputs.
    started: Arc<AtomicU64>,
    epoch: std::time::Instant,
}

impl Watchdog {
    fn start(name: &'static str) -> Watchdog {
        let started = Arc::new(AtomicU64::new(0));
        // Outside any input, so the clock is the kernel's.
        let epoch = std::time::Instant::now();
        let seen = started.clone();
        std::thread::Builder::new()
            .name(format!("fuzz-{name}-watchdog"))
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                let began = seen.load(Ordering::Relaxed);
                let now = epoch.elapsed().as_millis() as u64 + 1;
                if began != 0 && now.saturating_sub(began) > HANG_LIMIT.as_millis() as u64 {
                    eprintln!(
                        "fuzz {name}: one input has played for more than {} s of real time \
                         (a hang); aborting so that libFuzzer saves it",
                        HANG_LIMIT.as_secs()
                    );
                    std::process::abort();
                }
            })
            .expect("spawning the fuzz watchdog");
        Watchdog { started, epoch }
    }

    /// Marks an input as playing until the guard drops, with `SIGALRM` blocked on this thread
    /// meanwhile (libFuzzer's timeout alarm would read virtual time).
    fn playing(&self) -> Playing {
        set_alarm_blocked(true);
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.started.store(now, Ordering::Relaxed);
        Playing(self.started.clone())
    }
}

/// An input playing: see [`Watchdog::playing`].
struct Playing(Arc<AtomicU64>);

impl Drop for Playing {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
        set_alarm_blocked(false);
    }
}

fn set_alarm_blocked(blocked: bool) {
    // SAFETY: a sigset on the stack, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGALRM);
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}
