//! The endpoint task: one per socket. It owns the socket, a timer and a core [`Driver`] (the
//! endpoint and every connection on the socket) and runs the driver's loop: receive → timers
//! → transmit → events → wait for the socket, the timer, the driver's wake-up or a command.
//!
//! Connections are multiplexed in this task rather than given a task each: the driver already
//! runs each connection only when it has input, a timer or a wake-up, so a task per connection
//! would add a channel hop per datagram and buy nothing on one socket. Servers scale over
//! cores with several `SO_REUSEPORT` sockets, one task each.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use quicksand_core::driver_workers::{Route, Workers};
use quicksand_core::{Application, ConnectionHandle, Datagram, Driver, Event, QuicConfig};

use crate::buffers::SEND_QUEUE;
use crate::connection::CloseSignal;
use crate::{ConnectionInfo, EndpointSocket, EndpointTimer, Error, Forwarder};

/// Receive batches per round before the task checks its other work.
const RECV_ROUNDS: usize = 16;
/// Transmits per round before the task checks its other work.
const SEND_BUDGET: usize = 1024;
/// Rounds per poll before the task yields to the runtime.
const ROUNDS: usize = 8;

/// A request to open a client connection.
pub struct Connect<A> {
    pub peer: std::net::SocketAddr,
    pub server_name: Option<String>,
    pub app: A,
    pub reply: oneshot::Sender<Result<ConnectionInfo, Error>>,
}

/// Control messages of a server worker.
pub enum Control {
    /// Stop accepting, drain, and close what is left at `deadline` with `code`.
    Shutdown { deadline: Instant, code: u64 },
    /// Reply with the endpoint's counters and live connections.
    Stats(oneshot::Sender<EndpointStats>),
}

/// Calls the application's graceful-shutdown hook (HTTP/3: GOAWAY).
pub type DrainFn<A> = Box<dyn Fn(&A) + Send>;

/// A server worker's view of its siblings.
pub struct Siblings {
    pub index: usize,
    pub workers: Workers,
    /// Bounded queues to the other workers.
    pub forward: Forwarder,
    /// Datagrams the other workers received for this one's connections.
    pub forwarded: mpsc::Receiver<Datagram>,
}

/// How a task ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Connections still open at the shutdown deadline, closed with the shutdown code.
    pub forced_closed: usize,
}

/// The endpoint task: a future the adapter spawns, generic over the runtime's socket
/// readiness and timer.
pub struct EndpointTask<A: Application, S, T> {
    driver: Driver<A>,
    socket: S,
    timer: T,
    timer_at: Option<Instant>,
    /// The last send found the socket full: reading waits until it drains.
    send_blocked: bool,
    // client side
    connects: Option<mpsc::UnboundedReceiver<Connect<A>>>,
    client_config: Option<QuicConfig>,
    waiting: HashMap<ConnectionHandle, oneshot::Sender<Result<ConnectionInfo, Error>>>,
    /// Established client connections' close signals.
    open: HashMap<ConnectionHandle, Arc<CloseSignal>>,
    // server side
    control: Option<mpsc::UnboundedReceiver<Control>>,
    siblings: Option<Siblings>,
    drain: Option<DrainFn<A>>,
    shutdown: Option<(Instant, u64)>,
    forced: Option<usize>,
    forwarded_in: u64,
    transmits: u64,
    datagrams_sent: u64,
}

/// One socket's endpoint counters (see [`ShutdownHandle::stats`](crate::ShutdownHandle::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// What the endpoint did with datagrams (routed, RETRYs, resets, drops).
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

impl<A: Application, S: EndpointSocket, T: EndpointTimer> EndpointTask<A, S, T> {
    /// A server worker's task.
    pub fn server(
        driver: Driver<A>,
        socket: S,
        timer: T,
        control: mpsc::UnboundedReceiver<Control>,
        siblings: Option<Siblings>,
        drain: Option<DrainFn<A>>,
    ) -> Self {
        Self::new(
            driver,
            socket,
            timer,
            None,
            None,
            Some(control),
            siblings,
            drain,
        )
    }

    /// A client endpoint's task.
    pub fn client(
        driver: Driver<A>,
        socket: S,
        timer: T,
        config: QuicConfig,
        connects: mpsc::UnboundedReceiver<Connect<A>>,
    ) -> Self {
        Self::new(
            driver,
            socket,
            timer,
            Some(connects),
            Some(config),
            None,
            None,
            None,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        driver: Driver<A>,
        socket: S,
        timer: T,
        connects: Option<mpsc::UnboundedReceiver<Connect<A>>>,
        client_config: Option<QuicConfig>,
        control: Option<mpsc::UnboundedReceiver<Control>>,
        siblings: Option<Siblings>,
        drain: Option<DrainFn<A>>,
    ) -> Self {
        EndpointTask {
            driver,
            socket,
            timer,
            timer_at: None,
            send_blocked: false,
            connects,
            client_config,
            waiting: HashMap::new(),
            open: HashMap::new(),
            control,
            siblings,
            drain,
            shutdown: None,
            forced: None,
            forwarded_in: 0,
            transmits: 0,
            datagrams_sent: 0,
        }
    }

    /// Applies queued connect requests and control messages.
    fn commands(&mut self, cx: &mut Context<'_>, now: Instant) {
        while let Some(rx) = self.connects.as_mut() {
            match Pin::new(rx).poll_next(cx) {
                Poll::Ready(Some(c)) => self.connect(now, c),
                Poll::Ready(None) => self.connects = None,
                Poll::Pending => break,
            }
        }
        if let Some(s) = self.siblings.as_mut() {
            let before = self.forwarded_in;
            while let Poll::Ready(Some(d)) = Pin::new(&mut s.forwarded).poll_next(cx) {
                self.forwarded_in += 1;
                self.driver.handle_datagram(now, d);
            }
            if self.forwarded_in > before {
                let metrics = &self.driver.endpoint().context().metrics;
                metrics.datagrams_forwarded(self.forwarded_in - before);
            }
        }
        while let Some(rx) = self.control.as_mut() {
            match Pin::new(rx).poll_next(cx) {
                Poll::Ready(Some(Control::Stats(reply))) => {
                    let forward = self.siblings.as_ref().map(|s| &s.forward);
                    let _ = reply.send(EndpointStats {
                        endpoint: self.driver.endpoint().stats(),
                        connections: self.driver.connection_count(),
                        forwarded_in: self.forwarded_in,
                        forwarded_out: forward.map_or(0, Forwarder::sent),
                        forward_dropped: forward.map_or(0, Forwarder::dropped),
                        stateless_dropped: self.driver.stateless_dropped(),
                        transmits: self.transmits,
                        datagrams_sent: self.datagrams_sent,
                    });
                }
                Poll::Ready(Some(Control::Shutdown { deadline, code })) => {
                    self.begin_shutdown(deadline, code)
                }
                Poll::Ready(None) => self.control = None,
                Poll::Pending => break,
            }
        }
    }

    fn connect(&mut self, now: Instant, c: Connect<A>) {
        let Some(config) = self.client_config.as_mut() else {
            return;
        };
        let local = self.socket.buffers().local();
        match self
            .driver
            .connect(now, config, c.server_name.as_deref(), local, c.peer, c.app)
        {
            Ok(handle) => {
                self.waiting.insert(handle, c.reply);
            }
            Err(e) => {
                let _ = c.reply.send(Err(Error::Create(e)));
            }
        }
    }

    fn begin_shutdown(&mut self, deadline: Instant, code: u64) {
        if self.shutdown.is_some() {
            return;
        }
        tracing::info!(
            connections = self.driver.connection_count(),
            "shutting down"
        );
        self.driver.shutdown();
        self.shutdown = Some((deadline, code));
        if let Some(drain) = &self.drain {
            for (_, conn) in self.driver.connections() {
                drain(conn.application());
            }
        }
    }

    /// Closes what is left once the shutdown deadline passed.
    fn enforce_deadline(&mut self, now: Instant) {
        let Some((deadline, code)) = self.shutdown else {
            return;
        };
        if self.forced.is_some() || now < deadline {
            return;
        }
        let handles: Vec<_> = self.driver.connections().map(|(h, _)| h).collect();
        tracing::info!(
            left = handles.len(),
            "shutdown deadline: closing connections"
        );
        for h in &handles {
            if let Some(c) = self.driver.connection_mut(*h) {
                c.close(true, code, b"server shutting down");
            }
        }
        self.forced = Some(handles.len());
    }

    /// Reads the socket until it is empty or `RECV_ROUNDS` batches came. True if the rounds
    /// ran out (more may be queued).
    fn receive(&mut self, now: Instant) -> bool {
        let driver = &mut self.driver;
        let siblings = &mut self.siblings;
        for _ in 0..RECV_ROUNDS {
            let sink = |d: Datagram| match siblings.as_mut() {
                Some(s) => s
                    .workers
                    .route_datagram(s.index, d, |route, d| match route {
                        Route::Forward(i) => s.forward.forward(i, d),
                        Route::Local => driver.handle_datagram(now, d),
                    }),
                None => driver.handle_datagram(now, d),
            };
            match self.socket.try_recv(now, sink) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                // An error the kernel reports once (an ICMP unreachable, say): go on reading.
                Err(e) => tracing::debug!(error = %e, "receive failed"),
            }
        }
        true
    }

    /// Pulls transmits from the driver and sends them. True if the budget ran out.
    ///
    /// Each transmit is asked for with a fresh clock reading: quiche stamps every packet's
    /// release time with its own clock, so a `now` taken before a long receive round would
    /// make packets that are due look like they lie ahead (held, and not batched for GSO).
    fn transmit(&mut self, cx: &mut Context<'_>) -> bool {
        let mut budget = SEND_BUDGET;
        loop {
            let mut exhausted = false;
            while self.socket.buffers().pending() < SEND_QUEUE {
                match self.driver.poll_transmit(Instant::now()) {
                    Some(t) => {
                        self.transmits += 1;
                        self.datagrams_sent += t.segments() as u64;
                        self.socket.buffers_mut().queue(t)
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            let queued = self.socket.buffers().pending();
            let sent = self.socket.poll_send(cx);
            self.send_blocked = sent.is_pending();
            match sent {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => tracing::debug!(error = %e, "send failed"),
                // Woken when writable; stop pulling from the driver meanwhile.
                Poll::Pending => return false,
            }
            if exhausted {
                return false;
            }
            budget = budget.saturating_sub(queued);
            if budget == 0 {
                return true;
            }
        }
    }

    fn events(&mut self) {
        while let Some((handle, event)) = self.driver.poll_event() {
            match event {
                Event::HandshakeCompleted { .. } => {
                    if let Some(reply) = self.waiting.remove(&handle) {
                        let commands = self.driver.connection(handle).map(|c| c.command_sender());
                        if let Some(commands) = commands {
                            let closed = Arc::new(CloseSignal::default());
                            self.open.insert(handle, closed.clone());
                            let _ = reply.send(Ok(ConnectionInfo {
                                handle,
                                commands,
                                closed,
                            }));
                        }
                    }
                }
                Event::Closed(reason) => {
                    tracing::debug!(?handle, ?reason, "connection closed");
                    if let Some(signal) = self.open.remove(&handle) {
                        signal.set(Ok(reason.clone()));
                    }
                    if let Some(reply) = self.waiting.remove(&handle) {
                        let _ = reply.send(Err(Error::Handshake(reason)));
                    }
                }
                _ => {}
            }
        }
    }

    fn finished(&self) -> bool {
        if self.driver.connection_count() > 0 || self.socket.buffers().pending() > 0 {
            return false;
        }
        if self.control.is_some() || self.siblings.is_some() {
            // A server ends after shutdown only.
            return self.shutdown.is_some();
        }
        // A client ends when every handle is gone and its connections have closed.
        self.connects.is_none()
    }

    /// Arms the timer for the driver's next timeout (and the shutdown deadline). True if that
    /// instant has already passed: a runtime's timer may still say pending then (tokio's
    /// cooperative budgeting), so the clock is compared first.
    ///
    /// Called only when the task is about to park: quiche moves its loss timer with almost
    /// every ACK, and re-arming for each move costs a timer update (on async-io, a reactor
    /// wake-up) per ACK. An early timer is not kept instead: its empty wake-ups, one per loss
    /// timeout, cost a worker wake-up each on tokio.
    fn arm_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.shutdown.filter(|_| self.forced.is_none()).map(|s| s.0);
        let next = match (self.driver.poll_timeout(), deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(at) = next else {
            return false;
        };
        if at <= Instant::now() {
            return true;
        }
        if self.timer_at != Some(at) {
            self.timer.reset(at);
            self.timer_at = Some(at);
        }
        if self.timer.poll_expired(cx).is_ready() {
            // A fired timer may stay fired; forget the instant so the next one re-arms it.
            self.timer_at = None;
            return true;
        }
        false
    }
}

// Nothing is pinned structurally: the parts are moved freely.
impl<A: Application, S, T> Unpin for EndpointTask<A, S, T> {}

impl<A: Application, S, T> Drop for EndpointTask<A, S, T> {
    fn drop(&mut self) {
        for (_, signal) in self.open.drain() {
            signal.set(Err(quicksand_core::ConnectionGone));
        }
    }
}

impl<A: Application, S: EndpointSocket, T: EndpointTimer> Future for EndpointTask<A, S, T> {
    type Output = WorkerReport;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WorkerReport> {
        let this = self.get_mut();
        for _ in 0..ROUNDS {
            let now = Instant::now();
            this.commands(cx, now);
            // While the socket cannot send, datagrams stay in the kernel's receive buffer
            // (which drops beyond its size) instead of becoming work, and answers, that
            // cannot leave: a flood costs the kernel's memory, not ours.
            let mut busy = !this.send_blocked && this.receive(now);
            if this.driver.poll_timeout().is_some_and(|t| t <= now) {
                this.driver.handle_timeout(now);
            }
            this.enforce_deadline(now);
            busy |= this.transmit(cx);
            this.events();
            if this.finished() {
                return Poll::Ready(WorkerReport {
                    forced_closed: this.forced.unwrap_or(0),
                });
            }
            busy |= this.driver.poll_wakeup(cx).is_ready();
            if busy {
                continue;
            }
            // Idle: only now tell the reactor about the socket and the timer, so that while
            // the task is busy, nothing wakes it (or a reactor thread) for work it finds
            // anyway on its next round.
            // With the socket full, writability (registered by the send) wakes the task.
            if !this.send_blocked {
                match this.socket.poll_readable(cx) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "receive failed");
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            if this.arm_timer(cx) {
                continue;
            }
            return Poll::Pending;
        }
        // Still busy: let other tasks run, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
