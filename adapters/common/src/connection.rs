//! Handles to connections that live in an endpoint task.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

use quicksand_core::{CloseReason, ConnectionKey, ConnectionStats};

use crate::inbox::{CommandSender, ConnectionGone};

/// A connection whose handshake completed, as the endpoint task reports it.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub(crate) key: ConnectionKey,
    pub(crate) commands: CommandSender,
    pub(crate) closed: Arc<CloseSignal>,
}

/// How a connection ended, set once by its endpoint task and awaited by handles.
#[derive(Debug, Default)]
pub(crate) struct CloseSignal {
    state: Mutex<CloseState>,
}

#[derive(Debug, Default)]
struct CloseState {
    /// `Some(Ok)`: closed for this reason; `Some(Err)`: the endpoint task ended first.
    outcome: Option<Result<CloseReason, ConnectionGone>>,
    wakers: Vec<Waker>,
}

impl CloseSignal {
    /// Records the outcome (the first one counts) and wakes every waiter.
    pub(crate) fn set(&self, outcome: Result<CloseReason, ConnectionGone>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.outcome.is_none() {
            state.outcome = Some(outcome);
        }
        for w in state.wakers.drain(..) {
            w.wake();
        }
    }

    /// True once the outcome is known.
    pub(crate) fn is_set(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.outcome.is_some()
    }

    async fn wait(&self) -> Result<CloseReason, ConnectionGone> {
        poll_fn(|cx| {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &state.outcome {
                Some(outcome) => Poll::Ready(outcome.clone()),
                None => {
                    if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                        state.wakers.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// A handle to one established connection: close it, read its statistics. The connection
/// lives in its endpoint's task; dropping this handle does not close it (its application
/// decides: an HTTP/3 client closes when its last `H3Client` is dropped).
#[derive(Clone, Debug)]
pub struct ConnectionHandle {
    info: ConnectionInfo,
}

impl ConnectionHandle {
    /// The connection's key within its endpoint's driver.
    pub fn key(&self) -> ConnectionKey {
        self.info.key
    }

    /// Resolves when the connection has closed, with why: the peer's or our
    /// CONNECTION_CLOSE, the idle timeout, or a stateless reset from a server that lost the
    /// connection (restarted, or another host answered). `Err(ConnectionGone)` if the endpoint
    /// task ended first (its runtime shut down).
    pub async fn closed(&self) -> Result<CloseReason, ConnectionGone> {
        self.info.closed.wait().await
    }

    /// Closes the connection with an application error code.
    pub fn close(&self, code: u64, reason: &[u8]) -> Result<(), ConnectionGone> {
        self.info.commands.close(code, reason.to_vec())
    }

    /// The connection's statistics.
    pub async fn stats(&self) -> Result<ConnectionStats, ConnectionGone> {
        let rx = self.info.commands.stats()?;
        rx.await.map_err(|_| ConnectionGone)
    }

    /// The TLS session to resume on a later connection (`None` until the server sent a
    /// ticket, shortly after the handshake). Put it in the adapter's `ClientConfig::session`.
    pub async fn session(&self) -> Result<Option<Vec<u8>>, ConnectionGone> {
        let rx = self.info.commands.session()?;
        rx.await.map_err(|_| ConnectionGone)
    }

    /// Sends raw commands to the connection.
    pub fn commands(&self) -> &CommandSender {
        &self.info.commands
    }
}

impl From<ConnectionInfo> for ConnectionHandle {
    fn from(info: ConnectionInfo) -> Self {
        ConnectionHandle { info }
    }
}
