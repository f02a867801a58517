//! The endpoint task over tokio: quicksand-adapter's loop with this crate's socket and a
//! `tokio::time::Sleep` as its timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quicksand_adapter::EndpointTimer;
use tokio::time::Sleep;

use crate::io::Socket;

pub(crate) use quicksand_adapter::Connect;

/// The endpoint task of one socket.
pub(crate) type EndpointTask<A> = quicksand_adapter::EndpointTask<A, Socket, Timer>;

/// A tokio sleep, re-armed for each deadline. Must be made inside a tokio runtime.
pub(crate) struct Timer(Pin<Box<Sleep>>);

impl Timer {
    pub(crate) fn new() -> Self {
        Timer(Box::pin(tokio::time::sleep(Duration::from_secs(3600))))
    }
}

impl EndpointTimer for Timer {
    fn reset(&mut self, at: Instant) {
        self.0.as_mut().reset(tokio::time::Instant::from_std(at));
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}
