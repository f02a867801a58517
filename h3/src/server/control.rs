//! The server's controller: the stream of incoming requests and a handle for graceful
//! shutdown.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_channel::mpsc;
use futures_core::Stream;

use super::request::IncomingRequest;
use crate::shared::ConnShared;

#[derive(Debug, Default)]
pub(crate) struct ShutdownFlags {
    /// Graceful shutdown asked: GOAWAY, finish in-flight requests, close.
    pub goaway: AtomicBool,
    /// The request stream was dropped: nobody takes new requests.
    pub incoming_dropped: AtomicBool,
}

/// A cloneable handle to one server connection.
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) shutdown: Arc<ShutdownFlags>,
    pub(crate) conn: Arc<ConnShared>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("goaway", &self.shutdown.goaway.load(Ordering::Relaxed))
            .finish()
    }
}

impl ServerHandle {
    /// Graceful shutdown: send GOAWAY, refuse new requests (H3_REQUEST_REJECTED), let the
    /// in-flight ones complete, then close the connection with H3_NO_ERROR.
    pub fn goaway(&self) {
        self.shutdown.goaway.store(true, Ordering::Release);
        self.conn.wake_connection();
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.conn.closed.load(Ordering::Acquire)
    }
}

/// The stream of requests of one connection (see [`ServerApplication::new`](super::ServerApplication::new)).
/// Dropping it is a graceful shutdown: GOAWAY, in-flight requests complete, then close.
pub struct IncomingRequests {
    pub(crate) rx: mpsc::UnboundedReceiver<IncomingRequest>,
    pub(crate) handle: ServerHandle,
}

impl fmt::Debug for IncomingRequests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IncomingRequests")
    }
}

impl IncomingRequests {
    /// The next request; `None` when the connection ended.
    pub async fn next(&mut self) -> Option<IncomingRequest> {
        std::future::poll_fn(|cx| Pin::new(&mut self.rx).poll_next(cx)).await
    }

    /// A handle to the connection.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }
}

impl Stream for IncomingRequests {
    type Item = IncomingRequest;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}

impl Drop for IncomingRequests {
    fn drop(&mut self) {
        self.handle
            .shutdown
            .incoming_dropped
            .store(true, Ordering::Release);
        self.handle.conn.wake_connection();
    }
}
