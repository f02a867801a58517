//! What outside code sends the connections of one endpoint task: wake-ups (an application's
//! handle or handler has work) and commands from connection handles. The core holds no
//! channel, lock or waker; this is where they live.
//!
//! The endpoint task drains the inbox at the start of each round and parks on it last: a
//! wake-up that comes while the task runs its connections is only recorded (the task finds it
//! on its next round), because waking a task from inside its own poll makes the runtime
//! schedule it again (tokio hands a self-woken task to another worker thread: a context
//! switch per wake-up).

use std::fmt;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_channel::oneshot;
use quicksand_core::{ConnectionKey, ConnectionStats, QuicheConnection, WakeTarget};

use crate::connection::CloseSignal;

/// Something outside code asks a connection to do; applied by its endpoint task.
pub enum Command {
    /// Close the connection with this error.
    Close {
        /// Application (true) or transport (false) error space.
        application: bool,
        /// The error code.
        code: u64,
        /// The reason phrase.
        reason: Vec<u8>,
    },
    /// Reply with the connection's statistics.
    Stats(oneshot::Sender<ConnectionStats>),
    /// Run a closure on the quiche connection (for anything quicksand does not wrap).
    Run(Box<dyn FnOnce(&mut QuicheConnection) + Send>),
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Close {
                application,
                code,
                reason,
            } => f
                .debug_struct("Close")
                .field("application", application)
                .field("code", code)
                .field("reason", &String::from_utf8_lossy(reason))
                .finish(),
            Command::Stats(_) => f.write_str("Stats"),
            Command::Run(_) => f.write_str("Run"),
        }
    }
}

/// The connection has ended (or its endpoint task has); the command was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionGone;

impl fmt::Display for ConnectionGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection has ended")
    }
}

impl std::error::Error for ConnectionGone {}

/// The wake-ups and commands of one endpoint task's connections, and the task to wake.
#[derive(Default)]
pub struct Inbox {
    inner: Mutex<InboxInner>,
}

#[derive(Default)]
struct InboxInner {
    woken: Vec<ConnectionKey>,
    commands: Vec<Addressed>,
    task: Option<Waker>,
    /// The task is waiting on [`Inbox::poll_park`], so news must wake it.
    parked: bool,
    /// The task has ended: nothing sent now would be applied.
    closed: bool,
}

/// A command with the connection it is for: the key, and the close signal of the handle that
/// sent it. Keys are reused once a connection ends, so the endpoint task applies a command
/// only if the connection under the key is still the one this signal belongs to.
pub(crate) struct Addressed {
    pub key: ConnectionKey,
    pub to: Arc<CloseSignal>,
    pub command: Command,
}

/// What the endpoint task takes from its inbox in one round.
#[derive(Default)]
pub(crate) struct Mail {
    pub woken: Vec<ConnectionKey>,
    pub commands: Vec<Addressed>,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxInner> {
        // A panic while holding this lock cannot leave the vectors inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a command and wakes the task if it is parked.
    fn send(&self, command: Addressed) -> Result<(), ConnectionGone> {
        let task = {
            let mut inner = self.lock();
            if inner.closed {
                return Err(ConnectionGone);
            }
            inner.commands.push(command);
            inner.wake_task()
        };
        if let Some(task) = task {
            task.wake();
        }
        Ok(())
    }

    /// Moves everything received into `mail` (emptied first) and notes that the task runs:
    /// news from now on waits for its next [`poll_park`](Self::poll_park).
    pub(crate) fn take(&self, mail: &mut Mail) {
        mail.woken.clear();
        mail.commands.clear();
        let mut inner = self.lock();
        inner.parked = false;
        mem::swap(&mut inner.woken, &mut mail.woken);
        mem::swap(&mut inner.commands, &mut mail.commands);
    }

    /// `Ready` if news came since the last [`take`](Self::take); otherwise registers the
    /// task's waker and marks the task parked. Call it last before the task waits.
    pub(crate) fn poll_park(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        if !inner.woken.is_empty() || !inner.commands.is_empty() {
            return Poll::Ready(());
        }
        if !inner.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            inner.task = Some(cx.waker().clone());
        }
        inner.parked = true;
        Poll::Pending
    }

    /// The task has ended: later commands fail with [`ConnectionGone`], and those still queued
    /// are dropped (their reply channels then report the same).
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.commands.clear();
        inner.task = None;
    }
}

impl InboxInner {
    fn wake_task(&mut self) -> Option<Waker> {
        if mem::take(&mut self.parked) {
            self.task.clone()
        } else {
            None
        }
    }
}

impl WakeTarget for Inbox {
    fn wake(&self, key: ConnectionKey) {
        let task = {
            let mut inner = self.lock();
            // A handle that outlived the task: nobody would take the key.
            if inner.closed {
                return;
            }
            inner.woken.push(key);
            inner.wake_task()
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Inbox")
            .field("woken", &inner.woken.len())
            .field("commands", &inner.commands.len())
            .field("parked", &inner.parked)
            .finish_non_exhaustive()
    }
}

/// A cloneable handle that sends [`Command`]s to one connection through its endpoint task.
#[derive(Clone)]
pub struct CommandSender {
    key: ConnectionKey,
    inbox: Arc<Inbox>,
    closed: Arc<CloseSignal>,
}

impl fmt::Debug for CommandSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandSender")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl CommandSender {
    pub(crate) fn new(key: ConnectionKey, inbox: Arc<Inbox>, closed: Arc<CloseSignal>) -> Self {
        CommandSender { key, inbox, closed }
    }

    /// Queues a command; it is applied on the endpoint task's next round.
    pub fn send(&self, command: Command) -> Result<(), ConnectionGone> {
        if self.closed.is_set() {
            return Err(ConnectionGone);
        }
        self.inbox.send(Addressed {
            key: self.key,
            to: self.closed.clone(),
            command,
        })
    }

    /// Asks the connection to close with an application error code.
    pub fn close(&self, code: u64, reason: impl Into<Vec<u8>>) -> Result<(), ConnectionGone> {
        self.send(Command::Close {
            application: true,
            code,
            reason: reason.into(),
        })
    }

    /// Asks for the TLS session to resume later (`None` until the server sent a ticket); await
    /// the receiver for the answer. Put it in the client config's `session` of a later
    /// connection.
    pub fn session(&self) -> Result<oneshot::Receiver<Option<Vec<u8>>>, ConnectionGone> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Run(Box::new(move |conn| {
            // The asker may have gone away; nothing to do then.
            let _ = tx.send(conn.session().map(<[u8]>::to_vec));
        })))?;
        Ok(rx)
    }

    /// Asks for statistics; await the receiver for the answer.
    pub fn stats(&self) -> Result<oneshot::Receiver<ConnectionStats>, ConnectionGone> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx))?;
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// A task waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn task() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_wake_up_wakes_a_parked_task_once_and_is_handed_over() {
        let inbox = Inbox::default();
        let (count, waker) = task();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(inbox.poll_park(&mut cx), Poll::Pending);
        inbox.wake(ConnectionKey(3));
        inbox.wake(ConnectionKey(4));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "one wake-up per park");
        assert_eq!(inbox.poll_park(&mut cx), Poll::Ready(()));
        let mut mail = Mail::default();
        inbox.take(&mut mail);
        assert_eq!(mail.woken, [ConnectionKey(3), ConnectionKey(4)]);
        assert_eq!(inbox.poll_park(&mut cx), Poll::Pending);
    }

    /// A wake-up that arrives while the task runs its connections (after `take`, before
    /// `poll_park`) does not wake the task, which is running anyway (a self-wake makes tokio
    /// reschedule it on another thread): `poll_park` reports it instead. None is lost.
    #[test]
    fn a_wake_up_while_the_task_runs_is_reported_not_sent() {
        let inbox = Inbox::default();
        let (count, waker) = task();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(inbox.poll_park(&mut cx), Poll::Pending);
        let mut mail = Mail::default();
        inbox.take(&mut mail);
        inbox.wake(ConnectionKey(1));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            0,
            "no wake-up of a running task"
        );
        assert_eq!(inbox.poll_park(&mut cx), Poll::Ready(()));
        inbox.take(&mut mail);
        assert_eq!(mail.woken, [ConnectionKey(1)]);
    }

    #[test]
    fn commands_wake_the_task_and_fail_once_it_ended() {
        let inbox = Arc::new(Inbox::default());
        let closed = Arc::new(CloseSignal::default());
        let sender = CommandSender::new(ConnectionKey(9), inbox.clone(), closed.clone());
        let (count, waker) = task();
        assert_eq!(
            inbox.poll_park(&mut Context::from_waker(&waker)),
            Poll::Pending
        );
        sender.close(0x10, "bye").unwrap();
        let stats = sender.stats().unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let mut mail = Mail::default();
        inbox.take(&mut mail);
        assert_eq!(mail.commands.len(), 2);
        let first = &mail.commands[0];
        assert_eq!(first.key, ConnectionKey(9));
        assert!(Arc::ptr_eq(&first.to, &closed));
        assert!(matches!(first.command, Command::Close { code: 0x10, .. }));

        // The connection closed: the sender refuses. The task ended: queued replies fail.
        let pending = sender.stats().unwrap();
        inbox.close();
        drop(mail);
        assert!(cancelled(stats));
        assert!(cancelled(pending));
        assert_eq!(sender.close(1, "late").unwrap_err(), ConnectionGone);
        closed.set(Err(ConnectionGone));
        assert_eq!(sender.close(1, "late").unwrap_err(), ConnectionGone);
        // Nor do wake-ups pile up for a task that will not take them.
        inbox.wake(ConnectionKey(9));
        let mut mail = Mail::default();
        inbox.take(&mut mail);
        assert!(mail.woken.is_empty());
    }

    /// True if the receiver, polled once, says its sender was dropped.
    fn cancelled<T>(rx: oneshot::Receiver<T>) -> bool {
        let mut rx = std::pin::pin!(rx);
        matches!(
            std::future::Future::poll(rx.as_mut(), &mut Context::from_waker(Waker::noop())),
            Poll::Ready(Err(_))
        )
    }
}
