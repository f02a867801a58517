//! The lifecycle of a connection and why it ended.

use std::fmt;

/// Where a connection is in its life. It only moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// TLS handshake in progress (0-RTT data may already flow).
    Handshake,
    /// Established: the application runs.
    Running,
    /// We closed: CONNECTION_CLOSE sent, waiting out the closing period.
    Closing,
    /// The peer closed: waiting out the draining period, sending nothing.
    Draining,
    /// Finished: nothing more to send, receive or poll.
    Closed,
}

/// Why a connection ended. Carried by [`Event::Closed`](crate::Event::Closed).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// We closed it: by command, by an application error, or because quiche found a protocol
    /// error in what the peer sent (then `application` is false and `code` a transport code).
    Local {
        /// Application (true) or transport (false) error space.
        application: bool,
        /// The error code we sent.
        code: u64,
        /// The reason phrase we sent.
        reason: Vec<u8>,
    },
    /// The peer closed it with CONNECTION_CLOSE.
    Peer {
        /// Application (true) or transport (false) error space.
        application: bool,
        /// The error code the peer sent.
        code: u64,
        /// The reason phrase the peer sent.
        reason: Vec<u8>,
    },
    /// Nothing was heard from the peer for the idle timeout.
    IdleTimeout,
    /// The handshake did not complete in time.
    HandshakeTimeout,
    /// The peer sent a stateless reset: it lost the connection's state.
    StatelessReset,
}

impl CloseReason {
    /// True for a close that reports no error at the transport level: NO_ERROR (transport
    /// code 0) from either side. What an application error code means is the application's
    /// to say (HTTP/3's H3_NO_ERROR is clean too: `quicksand_h3::ErrorCode::is_clean_close`).
    pub fn is_clean(&self) -> bool {
        matches!(
            self,
            CloseReason::Local {
                application: false,
                code: 0,
                ..
            } | CloseReason::Peer {
                application: false,
                code: 0,
                ..
            }
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let space = |app: &bool| if *app { "application" } else { "transport" };
        match self {
            CloseReason::Local {
                application,
                code,
                reason,
            } => write!(
                f,
                "closed locally with {} error {code:#x} ({})",
                space(application),
                String::from_utf8_lossy(reason)
            ),
            CloseReason::Peer {
                application,
                code,
                reason,
            } => write!(
                f,
                "closed by peer with {} error {code:#x} ({})",
                space(application),
                String::from_utf8_lossy(reason)
            ),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::HandshakeTimeout => f.write_str("handshake timeout"),
            CloseReason::StatelessReset => f.write_str("stateless reset by peer"),
        }
    }
}
