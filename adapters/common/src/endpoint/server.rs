//! The server half of an endpoint task: shutdown and stats requests, the sibling workers
//! datagrams are forwarded between, the graceful-shutdown deadline.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use quicksand_core::driver_workers::{Route, Workers};
use quicksand_core::{Application, Datagram, Driver};

use crate::Forwarder;

/// What a server worker is asked by its handles.
pub enum WorkerCommand {
    /// Stop accepting, let each connection's application finish, and close what is left at
    /// `deadline` (with each application's shutdown close).
    Shutdown { deadline: Instant },
    /// Reply with the worker's counters and live connections.
    Stats(oneshot::Sender<WorkerStats>),
}

/// A server worker's view of its siblings.
pub struct Siblings {
    pub index: usize,
    pub workers: Workers,
    /// Bounded queues to the other workers.
    pub forward: Forwarder,
    /// Datagrams the other workers received for this one's connections.
    pub forwarded: mpsc::Receiver<Datagram>,
}

/// One server worker's counters (see [`ShutdownHandle::stats`](crate::ShutdownHandle::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// What the worker's endpoint did with datagrams (routed, RETRYs, resets, drops).
    pub endpoint: quicksand_core::EndpointStats,
    /// Connections alive now.
    pub connections: usize,
    /// Datagrams other workers forwarded to this one.
    pub forwarded_in: u64,
    /// Datagrams this worker received for another and forwarded.
    pub forwarded_out: u64,
    /// Datagrams for another worker dropped because its queue was full
    /// ([`FORWARD_QUEUE`](crate::FORWARD_QUEUE)).
    pub forward_dropped: u64,
    /// Stateless answers the driver dropped because
    /// [`STATELESS_QUEUE`](quicksand_core::driver::STATELESS_QUEUE) of them were waiting.
    pub stateless_dropped: u64,
    /// Transmits handed to the socket: one `sendmsg` each (a GSO batch counts once).
    pub transmits: u64,
    /// Datagrams in those transmits; `datagrams_sent / transmits` is the mean GSO batch.
    pub datagrams_sent: u64,
}

/// What a server worker's task keeps besides its driver and socket.
pub(super) struct ServerRole {
    /// `None` once every handle is gone.
    control: Option<mpsc::UnboundedReceiver<WorkerCommand>>,
    siblings: Option<Siblings>,
    /// The deadline of a shutdown in progress.
    shutdown: Option<Instant>,
    /// Connections closed at the deadline, once it passed.
    forced: Option<usize>,
    forwarded_in: u64,
}

impl ServerRole {
    pub(super) fn new(
        control: mpsc::UnboundedReceiver<WorkerCommand>,
        siblings: Option<Siblings>,
    ) -> Self {
        ServerRole {
            control: Some(control),
            siblings,
            shutdown: None,
            forced: None,
            forwarded_in: 0,
        }
    }

    /// Takes datagrams forwarded by siblings, then control messages. `stats` fills in what
    /// only the task knows.
    pub(super) fn poll_control<A: Application>(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        driver: &mut Driver<A>,
        stats: impl Fn(&Driver<A>) -> WorkerStats,
    ) {
        if let Some(s) = self.siblings.as_mut() {
            let before = self.forwarded_in;
            while let Poll::Ready(Some(d)) = Pin::new(&mut s.forwarded).poll_next(cx) {
                self.forwarded_in += 1;
                driver.handle_datagram(now, d);
            }
            if self.forwarded_in > before {
                let metrics = &driver.endpoint().context().metrics;
                metrics.datagrams_forwarded(self.forwarded_in - before);
            }
        }
        while let Some(rx) = self.control.as_mut() {
            match Pin::new(rx).poll_next(cx) {
                Poll::Ready(Some(WorkerCommand::Stats(reply))) => {
                    let forward = self.siblings.as_ref().map(|s| &s.forward);
                    let _ = reply.send(WorkerStats {
                        forwarded_in: self.forwarded_in,
                        forwarded_out: forward.map_or(0, Forwarder::sent),
                        forward_dropped: forward.map_or(0, Forwarder::dropped),
                        ..stats(driver)
                    });
                }
                Poll::Ready(Some(WorkerCommand::Shutdown { deadline })) => {
                    self.begin_shutdown(driver, deadline)
                }
                Poll::Ready(None) => self.control = None,
                Poll::Pending => break,
            }
        }
    }

    /// Hands a received datagram to the driver, or to the sibling worker owning its
    /// connection.
    pub(super) fn deliver<A: Application>(
        &mut self,
        now: Instant,
        driver: &mut Driver<A>,
        d: Datagram,
    ) {
        match self.siblings.as_mut() {
            Some(s) => s
                .workers
                .route_datagram(s.index, d, |route, d| match route {
                    Route::Forward(i) => s.forward.forward(i, d),
                    Route::Local => driver.handle_datagram(now, d),
                }),
            None => driver.handle_datagram(now, d),
        }
    }

    fn begin_shutdown<A: Application>(&mut self, driver: &mut Driver<A>, deadline: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        tracing::info!(connections = driver.connection_count(), "shutting down");
        driver.shutdown();
        self.shutdown = Some(deadline);
    }

    /// Closes what is left once the shutdown deadline passed.
    pub(super) fn enforce_deadline<A: Application>(
        &mut self,
        now: Instant,
        driver: &mut Driver<A>,
    ) {
        let Some(deadline) = self.shutdown else {
            return;
        };
        if self.forced.is_some() || now < deadline {
            return;
        }
        let left = driver.close_for_shutdown();
        tracing::info!(left, "shutdown deadline: closing connections");
        self.forced = Some(left);
    }

    /// The shutdown deadline, while it has not been enforced.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.shutdown.filter(|_| self.forced.is_none())
    }

    /// A server ends after a shutdown only (once its connections have closed): dropping its
    /// handles leaves it serving.
    pub(super) fn finished(&self) -> bool {
        self.shutdown.is_some()
    }

    /// Connections closed at the deadline.
    pub(super) fn forced_closed(&self) -> usize {
        self.forced.unwrap_or(0)
    }
}
