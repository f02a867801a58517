//! Path changes, in the core's own terms.

use std::net::SocketAddr;

/// A change to one of a connection's network paths, carried by
/// [`Event::Path`](crate::Event::Path). Each names the path by its (local, peer) addresses.
///
/// The core's own type rather than quiche's `PathEvent`, so that a quiche upgrade that adds
/// or reshapes path events does not change this crate's API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathEvent {
    /// The peer reached us over a new path (a server sees this before probing it).
    New {
        /// Our address on the path.
        local: SocketAddr,
        /// The peer's address on the path.
        peer: SocketAddr,
    },
    /// The path passed validation (PATH_CHALLENGE answered).
    Validated {
        /// Our address on the path.
        local: SocketAddr,
        /// The peer's address on the path.
        peer: SocketAddr,
    },
    /// The path failed validation and will not be used.
    FailedValidation {
        /// Our address on the path.
        local: SocketAddr,
        /// The peer's address on the path.
        peer: SocketAddr,
    },
    /// The path is closed and no longer used.
    Closed {
        /// Our address on the path.
        local: SocketAddr,
        /// The peer's address on the path.
        peer: SocketAddr,
    },
    /// The peer moved the connection to this path (migration, or a NAT rebinding).
    PeerMigrated {
        /// Our address on the path.
        local: SocketAddr,
        /// The peer's new address.
        peer: SocketAddr,
    },
}

impl PathEvent {
    /// Our address on the path.
    pub fn local(&self) -> SocketAddr {
        self.addrs().0
    }

    /// The peer's address on the path.
    pub fn peer(&self) -> SocketAddr {
        self.addrs().1
    }

    fn addrs(&self) -> (SocketAddr, SocketAddr) {
        match *self {
            PathEvent::New { local, peer }
            | PathEvent::Validated { local, peer }
            | PathEvent::FailedValidation { local, peer }
            | PathEvent::Closed { local, peer }
            | PathEvent::PeerMigrated { local, peer } => (local, peer),
        }
    }

    /// The event for quiche's, or `None` for one the core does not report: which of the peer's
    /// connection IDs a path uses is quiche's bookkeeping, with nothing for an owner to act on.
    pub(crate) fn from_quiche(event: quiche::PathEvent) -> Option<Self> {
        use quiche::PathEvent as Q;
        Some(match event {
            Q::New(local, peer) => PathEvent::New { local, peer },
            Q::Validated(local, peer) => PathEvent::Validated { local, peer },
            Q::FailedValidation(local, peer) => PathEvent::FailedValidation { local, peer },
            Q::Closed(local, peer) => PathEvent::Closed { local, peer },
            Q::PeerMigrated(local, peer) => PathEvent::PeerMigrated { local, peer },
            // ReusedSourceConnectionId, and whatever a later quiche adds.
            _ => return None,
        })
    }
}
