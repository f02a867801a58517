//! The endpoint task: one per socket. It owns the socket, a timer and a core [`Driver`] (the
//! endpoint and every connection on the socket) and runs the driver's loop: receive → timers
//! → transmit → events → wait for the socket, the timer, or news in its [`Inbox`] (a
//! connection's application woken by a handle or handler, a command from a handle).
//!
//! Connections are multiplexed in this task rather than given a task each: the driver already
//! runs each connection only when it has input, a timer or a wake-up, so a task per connection
//! would add a channel hop per datagram and buy nothing on one socket. Servers scale over
//! cores with several `SO_REUSEPORT` sockets, one task each.

mod client;
mod server;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use futures_channel::mpsc;
use quicksand_core::{Application, Datagram, Driver, Event, QuicConfig};

use crate::inbox::{Addressed, Command, Inbox, Mail};

use client::ClientRole;
pub use client::Connect;
use server::ServerRole;
pub use server::{Siblings, WorkerCommand, WorkerStats};

use crate::buffers::SEND_QUEUE;
use crate::handlers::HandlerPool;
use crate::{EndpointSocket, EndpointTimer};

/// Receive batches per round before the task checks its other work.
const RECV_ROUNDS: usize = 16;
/// Transmits per round before the task checks its other work.
const SEND_BUDGET: usize = 1024;
/// Rounds per poll before the task yields to the runtime.
const ROUNDS: usize = 8;
/// How often the task compares the system's wall clock with its endpoint's.
const WALL_CHECK_PERIOD: Duration = Duration::from_secs(1);

/// How a task ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Connections still open at the shutdown deadline, closed with the shutdown code.
    pub forced_closed: usize,
}

/// What the task is: a client endpoint's or a server worker's.
// One per task for the task's whole life: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Role<A: Application> {
    Client(ClientRole<A>),
    Server(ServerRole),
}

/// The endpoint task: a future the adapter spawns, generic over the runtime's socket
/// readiness and timer.
pub struct EndpointTask<A: Application, S, T> {
    driver: Driver<A>,
    /// Where the driver's wake-ups and the handles' commands arrive.
    inbox: Arc<Inbox>,
    /// The inbox's contents being applied (kept to reuse its allocations).
    mail: Mail,
    socket: S,
    timer: T,
    timer_at: Option<Instant>,
    /// The last send found the socket full: reading waits until it drains.
    send_blocked: bool,
    role: Role<A>,
    /// Runs the request handlers the connections hand off (see `Handlers::Spawned`).
    handlers: Option<HandlerPool>,
    transmits: u64,
    datagrams_sent: u64,
    /// When the system's wall clock is next compared with the endpoint's.
    wall_check_at: Instant,
}

impl<A: Application, S: EndpointSocket, T: EndpointTimer> EndpointTask<A, S, T> {
    /// A server worker's task; `inbox` is the one its driver wakes (see [`Worker`](crate::Worker)).
    pub fn server(
        (driver, inbox): (Driver<A>, Arc<Inbox>),
        socket: S,
        timer: T,
        control: mpsc::UnboundedReceiver<WorkerCommand>,
        siblings: Option<Siblings>,
    ) -> Self {
        let role = Role::Server(ServerRole::new(control, siblings));
        Self::new(driver, inbox, socket, timer, role)
    }

    /// A client endpoint's task; `inbox` is the one its driver wakes.
    pub fn client(
        (driver, inbox): (Driver<A>, Arc<Inbox>),
        socket: S,
        timer: T,
        config: QuicConfig,
        connects: mpsc::UnboundedReceiver<Connect<A>>,
    ) -> Self {
        let role = Role::Client(ClientRole::new(config, connects));
        Self::new(driver, inbox, socket, timer, role)
    }

    fn new(driver: Driver<A>, inbox: Arc<Inbox>, socket: S, timer: T, role: Role<A>) -> Self {
        EndpointTask {
            driver,
            inbox,
            mail: Mail::default(),
            socket,
            timer,
            timer_at: None,
            send_blocked: false,
            role,
            handlers: None,
            transmits: 0,
            datagrams_sent: 0,
            wall_check_at: Instant::now() + WALL_CHECK_PERIOD,
        }
    }

    /// Runs the handlers that connections hand off while this task runs them (through
    /// [`submit_here`](crate::submit_here)) on `pool`'s runners.
    pub(crate) fn with_handlers(mut self, pool: HandlerPool) -> Self {
        self.handlers = Some(pool);
        self
    }

    /// Applies what the handles asked for: connects, or shutdown and stats requests (and
    /// datagrams sibling workers forwarded).
    fn commands(&mut self, cx: &mut Context<'_>, now: Instant) {
        match &mut self.role {
            Role::Client(c) => {
                let local = self.socket.buffers().local();
                c.poll_connects(cx, now, &mut self.driver, local);
            }
            Role::Server(s) => {
                let (transmits, datagrams_sent) = (self.transmits, self.datagrams_sent);
                s.poll_control(cx, now, &mut self.driver, |driver| WorkerStats {
                    endpoint: driver.endpoint().stats(),
                    connections: driver.connection_count(),
                    stateless_dropped: driver.stateless_dropped(),
                    transmits,
                    datagrams_sent,
                    ..WorkerStats::default()
                });
            }
        }
    }

    /// Applies the handles' commands and hands the driver the connections that outside code
    /// woke. A command for a connection that is gone (its key may name a newer one now) is
    /// dropped; a reply channel in it then tells its asker so.
    fn read_inbox(&mut self) {
        self.inbox.take(&mut self.mail);
        for Addressed { key, to, command } in self.mail.commands.drain(..) {
            let current = match &self.role {
                Role::Client(c) => c.is_open(key, &to),
                // Server connections have no handles that send commands.
                Role::Server(_) => false,
            };
            let Some(conn) = self.driver.connection_mut(key).filter(|_| current) else {
                continue;
            };
            match command {
                Command::Close {
                    application,
                    code,
                    reason,
                } => conn.close(application, code, &reason),
                Command::Stats(reply) => {
                    // The asker may have gone away; nothing to do then.
                    let _ = reply.send(conn.stats());
                }
                Command::Run(f) => f(conn.quiche_mut()),
            }
        }
        for key in self.mail.woken.drain(..) {
            self.driver.handle_wakeup(key);
        }
    }

    /// Reads the socket until it is empty or `RECV_ROUNDS` batches came. True if the rounds
    /// ran out (more may be queued).
    fn receive(&mut self, now: Instant) -> bool {
        let driver = &mut self.driver;
        let role = &mut self.role;
        for _ in 0..RECV_ROUNDS {
            let sink = |d: Datagram| match role {
                Role::Server(s) => s.deliver(now, driver, d),
                Role::Client(_) => driver.handle_datagram(now, d),
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
            match (&mut self.role, event) {
                (Role::Client(c), Event::HandshakeCompleted { .. }) => {
                    c.established(handle, &self.inbox)
                }
                (role, Event::Closed(reason)) => {
                    tracing::debug!(?handle, ?reason, "connection closed");
                    if let Role::Client(c) = role {
                        c.closed(handle, &reason);
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
        match &self.role {
            Role::Client(c) => c.finished(),
            Role::Server(s) => s.finished(),
        }
    }

    /// A server's shutdown deadline, while it has not been enforced.
    fn deadline(&self) -> Option<Instant> {
        match &self.role {
            Role::Server(s) => s.deadline(),
            Role::Client(_) => None,
        }
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
        // Handlers waiting behind a busy runner: a helper at once, or a look when the
        // runner counts as stuck.
        let stuck = self
            .handlers
            .as_ref()
            .and_then(|h| h.poll_stuck(Instant::now()));
        let next = [self.driver.poll_timeout(), self.deadline(), stuck]
            .into_iter()
            .flatten()
            .min();
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

impl<A: Application, S, T> Drop for EndpointTask<A, S, T> {
    fn drop(&mut self) {
        // Commands sent from now on fail, and queued ones drop their reply channels.
        self.inbox.close();
    }
}

// Nothing is pinned structurally: the parts are moved freely.
impl<A: Application, S, T> Unpin for EndpointTask<A, S, T> {}

impl<A: Application, S: EndpointSocket, T: EndpointTimer> Future for EndpointTask<A, S, T> {
    type Output = WorkerReport;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WorkerReport> {
        let this = self.get_mut();
        // Handlers created in this poll (as connections read requests) go to this task's pool.
        let _pool = this.handlers.as_ref().map(HandlerPool::enter);
        for _ in 0..ROUNDS {
            let now = Instant::now();
            if now >= this.wall_check_at {
                // A step of the system clock (NTP after boot, an operator) reaches the
                // endpoint's tokens and ticket keys within a second of traffic.
                this.wall_check_at = now + WALL_CHECK_PERIOD;
                this.driver
                    .endpoint_mut()
                    .handle_wall_clock(now, SystemTime::now());
            }
            this.commands(cx, now);
            this.read_inbox();
            // While the socket cannot send, datagrams stay in the kernel's receive buffer
            // (which drops beyond its size) instead of becoming work, and answers, that
            // cannot leave: a flood costs the kernel's memory, not ours.
            let mut busy = !this.send_blocked && this.receive(now);
            if this.driver.poll_timeout().is_some_and(|t| t <= now) {
                this.driver.handle_timeout(now);
            }
            if let Role::Server(s) = &mut this.role {
                s.enforce_deadline(now, &mut this.driver);
            }
            busy |= this.transmit(cx);
            this.events();
            if this.finished() {
                let forced_closed = match &this.role {
                    Role::Server(s) => s.forced_closed(),
                    Role::Client(_) => 0,
                };
                return Poll::Ready(WorkerReport { forced_closed });
            }
            busy |= this.inbox.poll_park(cx).is_ready();
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
