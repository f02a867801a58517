//! Commands from outside code to a connection, through a runtime-agnostic queue.

use std::fmt;

use futures_channel::{mpsc, oneshot};

use crate::{ConnectionStats, QuicheConnection};

/// Something outside code asks a connection to do. Sent with a [`CommandSender`]; the
/// connection applies it at its next wake-up.
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

/// The connection has ended; the command was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionGone;

impl fmt::Display for ConnectionGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection has ended")
    }
}

impl std::error::Error for ConnectionGone {}

/// A cloneable handle that sends [`Command`]s to one connection and wakes its driver.
#[derive(Clone, Debug)]
pub struct CommandSender {
    tx: mpsc::UnboundedSender<Command>,
}

impl CommandSender {
    /// Queues a command.
    pub fn send(&self, command: Command) -> Result<(), ConnectionGone> {
        self.tx.unbounded_send(command).map_err(|_| ConnectionGone)
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
    /// the receiver for the answer. Put it in `ConnectionParams::session` (or
    /// `QuicConfig::set_session`) of a later connection.
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

pub(crate) fn channel() -> (CommandSender, mpsc::UnboundedReceiver<Command>) {
    let (tx, rx) = mpsc::unbounded();
    (CommandSender { tx }, rx)
}
