//! Sleeps on virtual time for application code under the simulator: a request handler (or a
//! client task the test polls) awaits [`sleep`] as it would await `tokio::time::sleep`, and the
//! simulator jumps straight to the deadline when nothing else happens before it.
//!
//! A handler under the simulator runs inside its connection (`ServerApplication::with_service`
//! without a spawner), on the simulator's thread. What it must not do: block the thread
//! (`std::thread::sleep`, blocking IO: the simulation stops for real while virtual time stands
//! still), or await a runtime's own timers and sockets (`tokio::time::sleep` panics without a
//! tokio runtime; a future that nothing in the simulation wakes leaves the request unfinished
//! until the run's limit, which [`Sim::run_until`](crate::Sim::run_until) reports).
//!
//! The timers live in a thread-local table that [`Sim::new`](crate::Sim::new) installs on its
//! thread; a [`Sleep`] polled on a thread without a simulation panics with a message that says
//! so, rather than never waking.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The pending sleeps of one simulation.
#[derive(Default)]
struct Timers {
    /// Deadlines with the id of their sleep, earliest first; an entry whose id is gone from
    /// `wakers` was dropped or already woken.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    wakers: BTreeMap<u64, Waker>,
    next_id: u64,
}

thread_local! {
    static TIMERS: RefCell<Option<Timers>> = const { RefCell::new(None) };
}

/// Installs the timer table on this thread while it lives (one per simulation).
pub(crate) struct Installed {
    previous: Option<Timers>,
}

pub(crate) fn install() -> Installed {
    let previous = TIMERS.with(|t| t.borrow_mut().replace(Timers::default()));
    Installed { previous }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // A simulation kept in a thread-local (a fuzzer's state) drops while the thread's
        // locals are torn down, when the table may be gone already: nothing to restore then.
        let _ = TIMERS.try_with(|t| *t.borrow_mut() = previous);
    }
}

/// The earliest deadline of a live sleep.
pub(crate) fn next_deadline() -> Option<Instant> {
    TIMERS.with(|t| {
        let mut t = t.borrow_mut();
        let t = t.as_mut()?;
        while let Some(Reverse((at, id))) = t.heap.peek().copied() {
            if t.wakers.contains_key(&id) {
                return Some(at);
            }
            t.heap.pop();
        }
        None
    })
}

/// Wakes every sleep whose deadline has come.
pub(crate) fn fire(now: Instant) {
    let due: Vec<Waker> = TIMERS.with(|t| {
        let mut t = t.borrow_mut();
        let Some(t) = t.as_mut() else {
            return Vec::new();
        };
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = t.heap.peek().copied() {
            if at > now {
                break;
            }
            t.heap.pop();
            if let Some(w) = t.wakers.remove(&id) {
                due.push(w);
            }
        }
        due
    });
    // Woken outside the borrow: a waker may poll and register a new sleep.
    for w in due {
        w.wake();
    }
}

/// A sleep of `duration` on the simulation's virtual time.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// A sleep until `deadline` (virtual time under the simulator).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, id: None }
}

/// See [`sleep`].
#[derive(Debug)]
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    /// Its entry in the thread's table, once polled.
    id: Option<u64>,
}

impl Sleep {
    /// When it ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let id = self.id;
        let id = TIMERS.with(|t| {
            let mut t = t.borrow_mut();
            let Some(t) = t.as_mut() else {
                panic!(
                    "quicksand_sim::sleep polled on a thread without a simulation: under the \
                     simulator, handlers run inside their connection on the simulator's thread \
                     (ServerApplication::with_service, no spawner); elsewhere use your runtime's sleep"
                );
            };
            let id = match id {
                Some(id) if t.wakers.contains_key(&id) => id,
                _ => {
                    let id = t.next_id;
                    t.next_id += 1;
                    t.heap.push(Reverse((deadline, id)));
                    id
                }
            };
            t.wakers.insert(id, cx.waker().clone());
            id
        });
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            // `try_with`: the thread's table may already be gone at thread exit.
            let _ = TIMERS.try_with(|t| {
                if let Some(t) = t.borrow_mut().as_mut() {
                    t.wakers.remove(&id);
                }
            });
        }
    }
}
