//! The endpoint task over async-io: quicksand-adapter's loop with this crate's socket and an
//! `async_io::Timer`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use quicksand_adapter::EndpointTimer;

use crate::io::Socket;

pub(crate) use quicksand_adapter::Connect;

/// The endpoint task of one socket.
pub(crate) type EndpointTask<A> = quicksand_adapter::EndpointTask<A, Socket, Timer>;

/// An async-io timer, re-armed for each deadline.
pub(crate) struct Timer(async_io::Timer);

impl Timer {
    pub(crate) fn new() -> Self {
        Timer(async_io::Timer::never())
    }
}

impl EndpointTimer for Timer {
    fn reset(&mut self, at: Instant) {
        self.0.set_at(at);
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}
