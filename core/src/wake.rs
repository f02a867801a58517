//! Wake-ups from outside code, without async machinery in the core.
//!
//! A request handler on another task, a stream handle, or a certificate lookup that finished
//! has to tell the connection's owner "run this connection again". The core does not know
//! what a task, a thread or a waker is; it only defines where such a wake-up goes: a
//! [`WakeTarget`] that the runtime layer implements (the adapters mark the connection ready
//! and wake their endpoint task; the simulator records it for its next step). The owner then
//! passes the connection key to [`Driver::handle_wakeup`](crate::Driver::handle_wakeup) (or,
//! for a connection driven alone, calls [`Connection::handle_wakeup`](crate::Connection::handle_wakeup)),
//! and the application's `process_writes` runs on the next `poll_transmit`.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use quicksand_core::{ConnectionKey, ConnectionWake, WakeTarget};
//!
//! /// Counts wake-ups; a runtime would also wake the task that owns the driver.
//! #[derive(Default)]
//! struct Count(AtomicUsize);
//!
//! impl WakeTarget for Count {
//!     fn wake(&self, _key: ConnectionKey) {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//!
//! let count = Arc::new(Count::default());
//! let wake = ConnectionWake::new(ConnectionKey(7), count.clone());
//! wake.clone().wake();
//! assert_eq!(wake.key(), ConnectionKey(7));
//! assert_eq!(count.0.load(Ordering::Relaxed), 1);
//! ```

use std::fmt;
use std::sync::Arc;

use crate::ConnectionKey;

/// Where the wake-ups of a driver's connections go; implemented by whatever owns the driver.
///
/// `wake` may be called from any thread, at any time, also while the owner is running the
/// connection (then the owner should find the key on its next turn rather than be woken: a
/// task that wakes itself is rescheduled, on tokio often on another thread).
pub trait WakeTarget: Send + Sync + 'static {
    /// Connection `key` has work from outside: hand it to `Driver::handle_wakeup` soon.
    fn wake(&self, key: ConnectionKey);
}

/// The handle an [`Application`](crate::Application) (or anything acting for a connection)
/// keeps to wake its connection. Cloning is cheap.
#[derive(Clone)]
pub struct ConnectionWake {
    key: ConnectionKey,
    target: Arc<dyn WakeTarget>,
}

impl ConnectionWake {
    /// Wake-ups of connection `key`, delivered to `target`.
    pub fn new(key: ConnectionKey, target: Arc<dyn WakeTarget>) -> Self {
        ConnectionWake { key, target }
    }

    /// Tells the connection's owner that the connection has work.
    pub fn wake(&self) {
        self.target.wake(self.key);
    }

    /// The connection this wakes.
    pub fn key(&self) -> ConnectionKey {
        self.key
    }
}

/// Where an endpoint's connections are woken, once its owner said (crate-internal: it hands
/// each new connection its [`ConnectionWake`] before the connection sees its first packet).
#[derive(Clone, Default)]
pub(crate) struct WakeTargetSlot(Option<Arc<dyn WakeTarget>>);

impl WakeTargetSlot {
    pub fn set(&mut self, target: Arc<dyn WakeTarget>) {
        self.0 = Some(target);
    }

    /// The wake handle of connection `key`, if the owner gave a target.
    pub fn for_key(&self, key: ConnectionKey) -> Option<ConnectionWake> {
        self.0
            .as_ref()
            .map(|target| ConnectionWake::new(key, target.clone()))
    }
}

impl fmt::Debug for WakeTargetSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "WakeTarget"
        } else {
            "None"
        })
    }
}

impl fmt::Debug for ConnectionWake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionWake")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}
