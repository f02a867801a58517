//! The application hook: what runs on top of a QUIC connection (HTTP/3, or your own protocol).

use std::time::Instant;

use crate::{CloseReason, ConnectionWake, QuicheConnection};

/// An error from the application that closes the connection with an application error code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplicationError {
    /// The application protocol error code sent in CONNECTION_CLOSE (e.g. an H3 error code).
    pub code: u64,
    /// The reason phrase sent with it.
    pub reason: Vec<u8>,
}

impl ApplicationError {
    /// An error with a code and a reason.
    pub fn new(code: u64, reason: impl Into<Vec<u8>>) -> Self {
        ApplicationError {
            code,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for ApplicationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "application error {:#x}: {}",
            self.code,
            String::from_utf8_lossy(&self.reason)
        )
    }
}

impl std::error::Error for ApplicationError {}

/// What a connection runs once it can carry data: the counterpart of tokio-quiche's
/// `ApplicationOverQuic`, without async.
///
/// The connection calls these methods from `poll_transmit`, in this order on each wake-up:
/// `on_established` (once), `process_reads` (when packets arrived), `on_shutdown` (once, when
/// its server shuts down), `process_writes`, and then it sends what the application queued.
/// `on_close` is called once at the end. All of them get the quiche connection to read and
/// write streams and datagrams.
///
/// A graceful shutdown is the application's to carry out, since only it knows what "finish
/// what is in flight" means: `on_shutdown` starts it, the application closes the connection
/// when done, and one still open at the server's deadline is closed with
/// [`shutdown_close`](Application::shutdown_close).
///
/// An application that gets work from outside (a request handler answering on another task)
/// keeps the [`ConnectionWake`] it is given in [`set_wake`](Application::set_wake) and calls
/// [`wake`](ConnectionWake::wake) when there is work: its owner then runs the connection, and
/// `process_writes` picks the work up. No waker or task is involved at this level.
pub trait Application: Send + 'static {
    /// The handshake completed (or 0-RTT data can flow: check `conn.is_in_early_data()`).
    fn on_established(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        let _ = (conn, now);
        Ok(())
    }

    /// Packets arrived: read streams and datagrams.
    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError>;

    /// Write what is pending, as far as flow control allows.
    fn process_writes(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError>;

    /// The application's own next deadline (e.g. a request timeout). When it passes, the
    /// connection runs `process_writes` again.
    fn poll_deadline(&self) -> Option<Instant> {
        None
    }

    /// How to wake this connection from outside code. Called when the connection gets an
    /// owner that can be woken (a [`Driver`](crate::Driver) calls it as it takes the
    /// connection in, before anything else runs); a connection driven without one never
    /// calls it. Default: ignored, for applications that only react to packets and timers.
    fn set_wake(&mut self, wake: ConnectionWake) {
        let _ = wake;
    }

    /// The server is shutting down gracefully: take no new work, finish what is in flight,
    /// then close (HTTP/3 sends GOAWAY and closes once its requests are answered). Called once,
    /// before `process_writes`; if the shutdown comes during the handshake, right after
    /// `on_established`. Default: nothing, so the connection lives until the application
    /// closes it or the server's deadline does.
    fn on_shutdown(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        let _ = (conn, now);
        Ok(())
    }

    /// The close for a connection still open when its server's shutdown deadline passes: the
    /// application protocol's "no error" code (HTTP/3: H3_NO_ERROR). Default: `None`, a
    /// transport-level close with NO_ERROR, which means the same for any application.
    fn shutdown_close(&self) -> Option<ApplicationError> {
        None
    }

    /// The connection ended. Called once; no other method is called afterwards.
    fn on_close(&mut self, conn: &QuicheConnection, reason: &CloseReason) {
        let _ = (conn, reason);
    }
}

/// An application that does nothing: a bare QUIC connection driven through direct access
/// ([`Connection::quiche_mut`](crate::Connection::quiche_mut)).
#[derive(Debug, Default)]
pub struct NoApplication;

impl Application for NoApplication {
    fn process_reads(
        &mut self,
        _: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        Ok(())
    }

    fn process_writes(
        &mut self,
        _: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        Ok(())
    }
}

impl<A: Application + ?Sized> Application for Box<A> {
    fn on_established(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        (**self).on_established(conn, now)
    }

    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        (**self).process_reads(conn, now)
    }

    fn process_writes(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        (**self).process_writes(conn, now)
    }

    fn poll_deadline(&self) -> Option<Instant> {
        (**self).poll_deadline()
    }

    fn set_wake(&mut self, wake: ConnectionWake) {
        (**self).set_wake(wake)
    }

    fn on_shutdown(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        (**self).on_shutdown(conn, now)
    }

    fn shutdown_close(&self) -> Option<ApplicationError> {
        (**self).shutdown_close()
    }

    fn on_close(&mut self, conn: &QuicheConnection, reason: &CloseReason) {
        (**self).on_close(conn, reason)
    }
}
