//! Where spawned request handlers run: a [`HandlerPool`] per endpoint task.
//!
//! A task per connection (or per request) woken from the endpoint task costs a cross-thread
//! wake-up for most requests on tokio: only one woken task fits the worker's LIFO slot, the
//! others go to its run queue and wake the other worker, which steals them (measured: 0.9
//! context switches per request against 0.01 with handlers polled inline). The pool instead
//! runs every handler of one endpoint task in one runner task, woken at most once per turn
//! of the endpoint task, so it runs right after it on the same thread and wakes nobody.
//!
//! A handler that computes for long (or blocks) holds its runner. The endpoint task, which
//! the socket keeps waking on the runtime's other threads, then sees handlers waiting behind
//! a runner busy for more than [`STUCK_AFTER`] and spawns a helper runner for them, which ends
//! when it finds nothing left to run. So other handlers wait a few milliseconds behind a slow
//! one, not for its whole run, and the socket never waits for handlers at all.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// A handler future, as the HTTP/3 application hands it over.
pub type BoxedHandler = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Spawns a runner task on the runtime.
pub(crate) type SpawnRunner = Arc<dyn Fn(BoxedHandler) + Send + Sync>;

/// How long a runner may stay inside one handler's poll, with other handlers waiting, before
/// a helper runner is spawned for them.
pub const STUCK_AFTER: Duration = Duration::from_millis(5);

/// Handler polls per runner poll before the runner yields to the runtime (tokio's cooperative
/// budget is per task poll: beyond it, handlers' IO would only yield).
const JOBS_PER_POLL: usize = 64;

// A job's states.
/// Not queued, not running: waiting for its waker.
const IDLE: u8 = 0;
/// In the queue.
const QUEUED: u8 = 1;
/// A runner is polling it.
const RUNNING: u8 = 2;
/// Woken while a runner polled it: queued again when the poll returns.
const NOTIFIED: u8 = 3;
/// Finished (or panicked).
const DONE: u8 = 4;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The runners' pool of one endpoint task. Dropping it lets the runners end once every
/// handler has.
pub(crate) struct HandlerPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HandlerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = lock(&self.shared.queue);
        f.debug_struct("HandlerPool")
            .field("queued", &q.jobs.len())
            .field("runners", &q.runners.len())
            .field("live", &q.live)
            .finish()
    }
}

struct Shared {
    queue: Mutex<Queue>,
    spawn: SpawnRunner,
    epoch: Instant,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Arc<Job>>,
    /// The primary runner's waker while it waits for jobs.
    waiting: Option<Waker>,
    /// Every runner's busy mark: when its current poll of a job started, in nanoseconds
    /// since the pool's epoch plus one; 0 while it is not polling a job.
    runners: Vec<Arc<AtomicU64>>,
    /// Jobs submitted and not finished or dropped.
    live: usize,
    /// The pool was dropped: the primary runner ends once `live` is 0.
    closed: bool,
}

struct Job {
    state: AtomicU8,
    future: Mutex<Option<BoxedHandler>>,
    pool: Weak<Shared>,
}

impl Drop for Job {
    fn drop(&mut self) {
        let unfinished = self.future.get_mut().map(|f| f.is_some()).unwrap_or(true);
        if unfinished {
            if let Some(pool) = self.pool.upgrade() {
                pool.finished();
            }
        }
    }
}

impl Wake for Job {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => QUEUED,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match self
                .state
                .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        if state == IDLE {
            if let Some(pool) = self.pool.upgrade() {
                pool.push(self.clone());
            }
        }
    }
}

impl Shared {
    fn nanos(&self, now: Instant) -> u64 {
        // +1: 0 means "not busy".
        now.saturating_duration_since(self.epoch).as_nanos() as u64 + 1
    }

    /// Queues a job and makes sure someone runs it: the waiting runner, a first runner, or a
    /// helper when every runner is stuck.
    fn push(self: &Arc<Self>, job: Arc<Job>) {
        let (waker, runner) = {
            let mut q = lock(&self.queue);
            q.jobs.push_back(job);
            if q.runners.is_empty() {
                (None, Some(self.new_runner(&mut q, true)))
            } else if let Some(w) = q.waiting.take() {
                (Some(w), None)
            } else {
                (None, self.help_if_stuck(&mut q, Instant::now()).err())
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(r) = runner {
            (self.spawn)(Box::pin(r));
        }
    }

    fn submit(self: &Arc<Self>, handler: BoxedHandler) {
        let job = Arc::new(Job {
            state: AtomicU8::new(QUEUED),
            future: Mutex::new(Some(handler)),
            pool: Arc::downgrade(self),
        });
        lock(&self.queue).live += 1;
        self.push(job);
    }

    fn finished(&self) {
        let waker = {
            let mut q = lock(&self.queue);
            q.live = q.live.saturating_sub(1);
            (q.closed && q.live == 0)
                .then(|| q.waiting.take())
                .flatten()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// A runner, counted among the pool's; the caller spawns it once the lock is released.
    fn new_runner(self: &Arc<Self>, q: &mut Queue, primary: bool) -> Runner {
        let busy = Arc::new(AtomicU64::new(0));
        q.runners.push(busy.clone());
        Runner {
            pool: self.clone(),
            busy,
            primary,
        }
    }

    /// When jobs wait and every runner has been inside one job for `STUCK_AFTER`, a helper
    /// runner (`Err`, to spawn). Otherwise when that would be the case, if jobs wait.
    fn help_if_stuck(
        self: &Arc<Self>,
        q: &mut Queue,
        now: Instant,
    ) -> Result<Option<Instant>, Runner> {
        if q.jobs.is_empty() || q.waiting.is_some() {
            return Ok(None);
        }
        // The most recent start among busy runners; any runner not busy picks the job up.
        let mut latest = 0;
        for r in &q.runners {
            match r.load(Ordering::Acquire) {
                0 => return Ok(None),
                started => latest = latest.max(started),
            }
        }
        let stuck_at = self.epoch + Duration::from_nanos(latest - 1) + STUCK_AFTER;
        if stuck_at > now {
            return Ok(Some(stuck_at));
        }
        tracing::debug!(
            runners = q.runners.len(),
            waiting = q.jobs.len(),
            "handlers wait behind busy runners: spawning a helper"
        );
        Err(self.new_runner(q, false))
    }
}

impl HandlerPool {
    /// A pool whose runners are spawned with `spawn` (the runtime's).
    pub(crate) fn new(spawn: SpawnRunner) -> Self {
        HandlerPool {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                spawn,
                epoch: Instant::now(),
            }),
        }
    }

    /// Runs `handler` on the pool's runners ([`submit_here`] outside the tests).
    #[cfg(test)]
    fn submit(&self, handler: BoxedHandler) {
        self.shared.submit(handler);
    }

    /// Spawns a helper runner if handlers wait behind stuck runners; otherwise the instant to
    /// check again, if handlers wait. The endpoint task calls it before it parks.
    pub(crate) fn poll_stuck(&self, now: Instant) -> Option<Instant> {
        let helper = {
            let mut q = lock(&self.shared.queue);
            match self.shared.help_if_stuck(&mut q, now) {
                Ok(at) => return at,
                Err(helper) => helper,
            }
        };
        (self.shared.spawn)(Box::pin(helper));
        None
    }

    /// Makes this pool the one [`submit_here`] uses on this thread until the guard drops.
    pub(crate) fn enter(&self) -> Entered {
        let previous = CURRENT.with(|c| c.replace(Some(self.shared.clone())));
        Entered { previous }
    }
}

impl Drop for HandlerPool {
    fn drop(&mut self) {
        let waker = {
            let mut q = lock(&self.shared.queue);
            q.closed = true;
            q.waiting.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

thread_local! {
    /// The pool of the endpoint task being polled on this thread.
    static CURRENT: std::cell::RefCell<Option<Arc<Shared>>> = const { std::cell::RefCell::new(None) };
}

/// Restores the previous current pool when dropped.
pub(crate) struct Entered {
    previous: Option<Arc<Shared>>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Runs `handler` on the pool of the endpoint task being polled on this thread (handlers are
/// created while their connection reads its requests, inside that task). Gives the handler
/// back when no endpoint task is being polled here.
pub fn submit_here(handler: BoxedHandler) -> Result<(), BoxedHandler> {
    let pool = CURRENT.with(|c| c.borrow().clone());
    match pool {
        Some(shared) => {
            shared.submit(handler);
            Ok(())
        }
        None => Err(handler),
    }
}

/// A task that polls the pool's jobs. The primary runner lives as long as the pool (and its
/// handlers); helpers end when they find the queue empty.
struct Runner {
    pool: Arc<Shared>,
    busy: Arc<AtomicU64>,
    primary: bool,
}

impl Runner {
    /// Leaves the pool's list of runners.
    fn leave(&self, q: &mut Queue) {
        q.runners.retain(|r| !Arc::ptr_eq(r, &self.busy));
    }

    /// Polls one job; it is queued again if it was woken meanwhile.
    fn run(&self, job: Arc<Job>) {
        job.state.store(RUNNING, Ordering::Release);
        self.busy
            .store(self.pool.nanos(Instant::now()), Ordering::Release);
        let waker = Waker::from(job.clone());
        let mut cx = Context::from_waker(&waker);
        let done = {
            let mut future = lock(&job.future);
            match future.as_mut() {
                // A panicking handler ends as if finished: its responder's drop resets its
                // stream, and the runner goes on with the others.
                Some(f) => {
                    match std::panic::catch_unwind(AssertUnwindSafe(|| f.as_mut().poll(&mut cx))) {
                        Ok(poll) => poll.is_ready(),
                        Err(_) => {
                            tracing::error!("a request handler panicked");
                            true
                        }
                    }
                }
                None => true,
            }
        };
        self.busy.store(0, Ordering::Release);
        if done {
            job.state.store(DONE, Ordering::Release);
            let finished = lock(&job.future).take();
            if finished.is_some() {
                drop(finished);
                self.pool.finished();
            }
            return;
        }
        if job
            .state
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // NOTIFIED: woken during its poll.
            job.state.store(QUEUED, Ordering::Release);
            lock(&self.pool.queue).jobs.push_back(job);
        }
    }
}

impl Future for Runner {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..JOBS_PER_POLL {
            let job = {
                let mut q = lock(&self.pool.queue);
                match q.jobs.pop_front() {
                    Some(job) => job,
                    None if !self.primary || (q.closed && q.live == 0) => {
                        self.leave(&mut q);
                        return Poll::Ready(());
                    }
                    None => {
                        q.waiting = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            };
            self.run(job);
        }
        // More may be queued: let the runtime's other tasks run first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // A runner dropped unfinished (its runtime shut down) is no runner any more.
        let mut q = lock(&self.pool.queue);
        self.leave(&mut q);
        if self.primary {
            q.waiting = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    /// A pool whose runners are kept in a list the test polls by hand.
    fn pool() -> (HandlerPool, Arc<Mutex<Vec<BoxedHandler>>>) {
        let spawned: Arc<Mutex<Vec<BoxedHandler>>> = Arc::default();
        let list = spawned.clone();
        let pool = HandlerPool::new(Arc::new(move |r| lock(&list).push(r)));
        (pool, spawned)
    }

    /// Polls every spawned runner once; returns how many are still running.
    fn poll_runners(spawned: &Mutex<Vec<BoxedHandler>>) -> usize {
        let mut runners = std::mem::take(&mut *lock(spawned));
        let waker = Waker::noop();
        runners.retain_mut(|r| {
            r.as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        });
        let mut list = lock(spawned);
        runners.append(&mut list);
        *list = runners;
        list.len()
    }

    #[test]
    fn one_runner_runs_every_job_and_ends_with_the_pool() {
        let (pool, spawned) = pool();
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let done = done.clone();
            pool.submit(Box::pin(async move {
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        assert_eq!(lock(&spawned).len(), 1, "one runner for all jobs");
        assert_eq!(poll_runners(&spawned), 1);
        assert_eq!(
            done.load(Ordering::SeqCst),
            JOBS_PER_POLL,
            "a runner yields after a poll's worth of jobs"
        );
        assert_eq!(
            poll_runners(&spawned),
            1,
            "the primary runner waits for more"
        );
        assert_eq!(done.load(Ordering::SeqCst), 100);
        drop(pool);
        assert_eq!(poll_runners(&spawned), 0, "the runner ends with the pool");
    }

    /// A job that is pending until a flag is set and its waker called.
    struct Gate {
        open: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.open.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *lock(&self.waker) = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_woken_job_runs_again_and_the_pool_waits_for_live_jobs() {
        let (pool, spawned) = pool();
        let open = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Mutex::new(None::<Waker>));
        let done = Arc::new(AtomicBool::new(false));
        let (o, w, d) = (open.clone(), waker.clone(), done.clone());
        pool.submit(Box::pin(async move {
            Gate { open: o, waker: w }.await;
            d.store(true, Ordering::SeqCst);
        }));
        poll_runners(&spawned);
        assert!(!done.load(Ordering::SeqCst));
        drop(pool);
        assert_eq!(poll_runners(&spawned), 1, "a live job keeps the runner");
        open.store(true, Ordering::SeqCst);
        lock(&waker).take().unwrap().wake();
        assert_eq!(poll_runners(&spawned), 0, "the runner ran it and ended");
        assert!(done.load(Ordering::SeqCst));
    }

    #[test]
    fn a_panicking_job_does_not_take_the_runner_down() {
        let (pool, spawned) = pool();
        let done = Arc::new(AtomicBool::new(false));
        pool.submit(Box::pin(async { panic!("handler bug") }));
        let d = done.clone();
        pool.submit(Box::pin(async move { d.store(true, Ordering::SeqCst) }));
        assert_eq!(poll_runners(&spawned), 1);
        assert!(done.load(Ordering::SeqCst), "the next job ran");
    }

    #[test]
    fn jobs_behind_a_stuck_runner_get_a_helper() {
        let (pool, spawned) = pool();
        pool.submit(Box::pin(async {}));
        // The runner is inside a job since long ago, and another job waits.
        let busy = lock(&pool.shared.queue).runners[0].clone();
        let start = Instant::now();
        busy.store(pool.shared.nanos(start), Ordering::SeqCst);
        assert_eq!(
            pool.poll_stuck(start),
            Some(start + STUCK_AFTER),
            "not stuck yet: look again then"
        );
        assert_eq!(pool.poll_stuck(start + STUCK_AFTER), None);
        assert_eq!(lock(&spawned).len(), 2, "a helper was spawned");
        // Polling the helper (the second runner) runs the job; the helper ends.
        let helper = lock(&spawned).pop().unwrap();
        let mut helper = helper;
        let ready = helper
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready();
        assert!(ready, "the helper ends once the queue is empty");
        assert!(lock(&pool.shared.queue).jobs.is_empty());
        assert_eq!(
            pool.poll_stuck(start + STUCK_AFTER * 2),
            None,
            "nothing waits"
        );
    }
}
