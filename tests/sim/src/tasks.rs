//! Client code as tasks of the simulation: [`Sim::spawn`](crate::Sim::spawn) runs a future
//! (requests through an `H3Client`, a retry loop, a load generator) on virtual time beside the
//! hosts, and its [`Task`] handle tells when it finished and with what.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// What a task's future left: its output and when it finished.
struct Outcome<T> {
    output: Option<T>,
    finished_at: Option<Duration>,
}

/// A spawned future's handle: its output once it finished, and the virtual time it took.
pub struct Task<T> {
    outcome: Rc<RefCell<Outcome<T>>>,
}

impl<T> Task<T> {
    /// True once the future completed.
    pub fn is_finished(&self) -> bool {
        self.outcome.borrow().finished_at.is_some()
    }

    /// When the future completed, as virtual time since the simulation started.
    pub fn finished_at(&self) -> Option<Duration> {
        self.outcome.borrow().finished_at
    }

    /// The future's output, once (`None` before it finished, or after it was taken).
    pub fn take(&self) -> Option<T> {
        self.outcome.borrow_mut().output.take()
    }
}

impl<T: Clone> Task<T> {
    /// A copy of the future's output, if it finished.
    pub fn output(&self) -> Option<T> {
        self.outcome.borrow().output.clone()
    }
}

impl<T> std::fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("finished_at", &self.finished_at())
            .finish_non_exhaustive()
    }
}

/// A waker that records that it was woken (`Waker::from(Arc<WakeFlag>)`): how the simulation
/// knows a task is due, and how a harness that polls futures itself can know it too.
#[derive(Debug, Default)]
pub struct WakeFlag(AtomicBool);

impl WakeFlag {
    /// A flag already set: what is polled with it is due at once.
    pub fn set() -> WakeFlag {
        WakeFlag(AtomicBool::new(true))
    }

    /// Whether it was woken since the last `take`, clearing it.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }

    /// Whether it was woken since the last `take`.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

struct Entry {
    future: Pin<Box<dyn Future<Output = ()>>>,
    flag: Arc<WakeFlag>,
    waker: Waker,
}

/// The tasks of one simulation.
#[derive(Default)]
pub(crate) struct Tasks {
    live: Vec<Entry>,
}

impl Tasks {
    pub fn spawn<F: Future + 'static>(&mut self, start: Instant, future: F) -> Task<F::Output> {
        let outcome = Rc::new(RefCell::new(Outcome {
            output: None,
            finished_at: None,
        }));
        let slot = outcome.clone();
        let future = Box::pin(async move {
            let output = future.await;
            let mut slot = slot.borrow_mut();
            slot.output = Some(output);
            slot.finished_at = Some(Instant::now() - start);
        });
        let flag = Arc::new(WakeFlag::set());
        self.live.push(Entry {
            future,
            waker: Waker::from(flag.clone()),
            flag,
        });
        Task { outcome }
    }

    /// Polls every task that was woken (or is new); drops the finished ones.
    pub fn poll_woken(&mut self) {
        self.live.retain_mut(|entry| {
            if !entry.flag.take() {
                return true;
            }
            let mut cx = Context::from_waker(&entry.waker);
            entry.future.as_mut().poll(&mut cx) == Poll::Pending
        });
    }

    /// True if a task waits to be polled.
    pub fn any_woken(&self) -> bool {
        self.live.iter().any(|e| e.flag.is_set())
    }

    /// Tasks not finished.
    pub fn len(&self) -> usize {
        self.live.len()
    }
}
