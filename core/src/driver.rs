//! [`Driver`]: an endpoint and all its connections behind one input/output interface.
//!
//! This is the loop every runtime needs — route datagrams, accept, fire timers, let
//! applications work, collect transmits, apply routing events — written once, without a
//! runtime. The tokio and smol adapters and the simulator all drive a `Driver`, so they share
//! every protocol decision and differ only in how they wait.
//!
//! # Driving it
//!
//! 1. feed datagrams with [`handle_datagram`](Driver::handle_datagram) and, when the instant
//!    from [`poll_timeout`](Driver::poll_timeout) has passed,
//!    [`handle_timeout`](Driver::handle_timeout);
//! 2. send everything [`poll_transmit`](Driver::poll_transmit) returns, until `None`;
//! 3. drain [`poll_event`](Driver::poll_event);
//! 4. wait for a datagram, the timeout, or a wake-up: the [`WakeTarget`] given to
//!    [`new`](Driver::new) hears of every connection that outside code woke; pass each such
//!    key to [`handle_wakeup`](Driver::handle_wakeup) before the next `poll_transmit`.
//!
//! The target is the runtime's: the adapters keep the woken keys behind a lock and wake their
//! endpoint task only when it is parked (a wake-up that comes while the task runs its
//! connections is found on its next turn); the simulator records them for its next step.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::{
    Application, Connection, ConnectionKey, CreateError, Datagram, DatagramEvent, Endpoint, Event,
    Incoming, QuicConfig, Transmit, WakeTarget,
};

/// Stateless answers (version negotiation, RETRY, stateless reset, refusals) queued before
/// further ones are dropped: a flood of packets that each draw an answer must not grow memory
/// while the socket cannot send, nor queue ahead of the connections' own packets.
pub const STATELESS_QUEUE: usize = 256;

/// Picks the application for an incoming connection, or refuses it with `None`.
pub type AcceptFn<A> = Box<dyn FnMut(&Incoming) -> Option<A> + Send>;

struct Slot<A: Application> {
    conn: Connection<A>,
    /// The live timer-heap entry of this connection, if any. Later timeouts do not add
    /// entries; the live one is re-armed when it fires early. So the heap holds at most one
    /// live entry per connection and stale ones never pile up.
    scheduled: Option<Instant>,
}

/// An endpoint with its connections; see the module docs.
pub struct Driver<A: Application> {
    endpoint: Endpoint,
    conns: BTreeMap<ConnectionKey, Slot<A>>,
    accept: Option<AcceptFn<A>>,
    /// Connections with input since they were last driven.
    dirty: BTreeSet<ConnectionKey>,
    /// Connection timers; an entry is live only if it equals its slot's `scheduled`.
    timers: BinaryHeap<Reverse<(Instant, ConnectionKey)>>,
    outgoing: VecDeque<Transmit>,
    /// The endpoint's stateless answers, sent after the connections' packets.
    stateless: VecDeque<Transmit>,
    stateless_dropped: u64,
    events: VecDeque<(ConnectionKey, Event)>,
    max_segments: usize,
    refused: u64,
    /// Closed connections kept for inspection, when asked for.
    closed: Option<Vec<(ConnectionKey, Connection<A>)>>,
}

impl<A: Application> Driver<A> {
    /// A driver around `endpoint`; with `accept` it takes incoming connections. Transmits carry
    /// at most `max_segments` GSO segments (the socket's limit; 1 without GSO). Wake-ups of
    /// its connections by outside code go to `wake` (the endpoint hands each connection its
    /// [`ConnectionWake`](crate::ConnectionWake) as it creates it).
    pub fn new(
        mut endpoint: Endpoint,
        accept: Option<AcceptFn<A>>,
        max_segments: usize,
        wake: Arc<dyn WakeTarget>,
    ) -> Self {
        endpoint.set_wake_target(wake);
        Driver {
            endpoint,
            conns: BTreeMap::new(),
            accept,
            dirty: BTreeSet::new(),
            timers: BinaryHeap::new(),
            outgoing: VecDeque::new(),
            stateless: VecDeque::new(),
            stateless_dropped: 0,
            events: VecDeque::new(),
            max_segments: max_segments.max(1),
            refused: 0,
            closed: None,
        }
    }

    /// Keep closed connections (for tests and post-mortems) instead of dropping them; take
    /// them with [`take_closed`](Self::take_closed).
    pub fn keep_closed(&mut self, keep: bool) {
        self.closed = keep.then(Vec::new);
    }

    /// The closed connections kept since the last call.
    pub fn take_closed(&mut self) -> Vec<(ConnectionKey, Connection<A>)> {
        self.closed.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The closed connections kept so far, without taking them.
    pub fn closed(&self) -> &[(ConnectionKey, Connection<A>)] {
        self.closed.as_deref().unwrap_or_default()
    }

    // ---- inputs -------------------------------------------------------------------------

    /// Routes a received datagram (GRO batches are split here) to its connection, accepts a
    /// new one, or queues the endpoint's stateless answer.
    pub fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        for segment in datagram.split_segments() {
            match self.endpoint.handle_datagram(now, segment) {
                Some(DatagramEvent::Connection(handle, d)) => {
                    if let Some(slot) = self.conns.get_mut(&handle) {
                        slot.conn.handle_datagram(now, d);
                        self.dirty.insert(handle);
                    }
                }
                Some(DatagramEvent::NewConnection(incoming)) => self.incoming(now, incoming),
                Some(DatagramEvent::Respond(t)) => {
                    if self.stateless.len() < STATELESS_QUEUE {
                        self.stateless.push_back(t);
                    } else {
                        self.stateless_dropped += 1;
                    }
                }
                None => {}
            }
        }
    }

    /// Fires every connection timer that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, handle))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.conns.get_mut(&handle) else {
                continue;
            };
            if slot.scheduled != Some(at) {
                continue;
            }
            slot.scheduled = None;
            match slot.conn.poll_timeout() {
                Some(t) if t <= now => {
                    slot.conn.handle_timeout(now);
                    self.dirty.insert(handle);
                }
                // The timer moved later since it was armed: re-arm.
                Some(t) => {
                    slot.scheduled = Some(t);
                    self.timers.push(Reverse((t, handle)));
                }
                None => {}
            }
        }
    }

    /// Outside code woke connection `handle` (its [`ConnectionWake`](crate::ConnectionWake)
    /// reached the driver's [`WakeTarget`]): the connection runs on the next `poll_transmit`.
    /// A key that is gone is ignored.
    pub fn handle_wakeup(&mut self, handle: ConnectionKey) {
        if let Some(slot) = self.conns.get_mut(&handle) {
            slot.conn.handle_wakeup();
            self.dirty.insert(handle);
        }
    }

    // ---- outputs ------------------------------------------------------------------------

    /// The next datagram(s) to send. Drives every connection that has work first; the
    /// endpoint's stateless answers go out after the connections' packets.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.outgoing.is_empty() {
            self.drive(now);
        }
        self.outgoing
            .pop_front()
            .or_else(|| self.stateless.pop_front())
    }

    /// The next connection event.
    pub fn poll_event(&mut self) -> Option<(ConnectionKey, Event)> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    /// It may be earlier than needed (a connection's timer moved later), never later.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, handle))) = self.timers.peek().copied() {
            if self
                .conns
                .get(&handle)
                .is_some_and(|s| s.scheduled == Some(at))
            {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    // ---- commands -----------------------------------------------------------------------

    /// Opens a client connection from `local` to `peer`.
    pub fn connect(
        &mut self,
        now: Instant,
        config: &mut QuicConfig,
        server_name: Option<&str>,
        local: SocketAddr,
        peer: SocketAddr,
        app: A,
    ) -> Result<ConnectionKey, CreateError> {
        let (handle, conn) = self
            .endpoint
            .connect(now, config, server_name, local, peer, app)?;
        self.insert(handle, conn);
        Ok(handle)
    }

    /// Starts a graceful shutdown: stops accepting connections and asks each open one to
    /// finish ([`Connection::shutdown`]: its application's `on_shutdown` runs on the next
    /// `poll_transmit`; HTTP/3 sends GOAWAY). Connections whose application does nothing
    /// about it keep running.
    pub fn shutdown(&mut self) {
        self.endpoint.shutdown();
        for (handle, slot) in &mut self.conns {
            slot.conn.shutdown();
            self.dirty.insert(*handle);
        }
    }

    /// Closes every connection still open as a shutdown deadline does
    /// ([`Connection::close_for_shutdown`]); returns how many it closed (connections already
    /// closing or draining are not counted). The closes go out with the next `poll_transmit`.
    pub fn close_for_shutdown(&mut self) -> usize {
        let mut closed = 0;
        for (handle, slot) in &mut self.conns {
            if slot.conn.close_for_shutdown() {
                closed += 1;
                self.dirty.insert(*handle);
            }
        }
        closed
    }

    // ---- getters ------------------------------------------------------------------------

    /// A connection, while it lives.
    pub fn connection(&self, handle: ConnectionKey) -> Option<&Connection<A>> {
        self.conns.get(&handle).map(|s| &s.conn)
    }

    /// A connection, mutably; it is driven on the next `poll_transmit`.
    pub fn connection_mut(&mut self, handle: ConnectionKey) -> Option<&mut Connection<A>> {
        self.dirty.insert(handle);
        self.conns.get_mut(&handle).map(|s| &mut s.conn)
    }

    /// Every live connection.
    pub fn connections(&self) -> impl Iterator<Item = (ConnectionKey, &Connection<A>)> {
        self.conns.iter().map(|(h, s)| (*h, &s.conn))
    }

    /// Live connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The endpoint, mutably (keys, limits).
    pub fn endpoint_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    /// Incoming connections the accept function refused.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Stateless answers dropped because [`STATELESS_QUEUE`] of them were already waiting.
    pub fn stateless_dropped(&self) -> u64 {
        self.stateless_dropped
    }

    // ---- internals ----------------------------------------------------------------------

    fn incoming(&mut self, now: Instant, incoming: Incoming) {
        let app = self.accept.as_mut().and_then(|f| f(&incoming));
        let Some(app) = app else {
            self.refused += 1;
            self.endpoint.refuse(now, incoming);
            return;
        };
        // A failure is counted and logged by the endpoint.
        if let Ok((handle, conn)) = self.endpoint.accept(now, incoming, app) {
            self.insert(handle, conn);
        }
    }

    fn insert(&mut self, handle: ConnectionKey, conn: Connection<A>) {
        self.conns.insert(
            handle,
            Slot {
                conn,
                scheduled: None,
            },
        );
        self.dirty.insert(handle);
    }

    /// Runs every connection with input, woken, or newly created: in the core's order, then
    /// collects its transmits, events and routing changes.
    fn drive(&mut self, now: Instant) {
        let work = std::mem::take(&mut self.dirty);
        for handle in work {
            let Some(slot) = self.conns.get_mut(&handle) else {
                continue;
            };
            let conn = &mut slot.conn;
            while let Some(t) = conn.poll_transmit(now, self.max_segments) {
                self.outgoing.push_back(t);
            }
            while let Some(e) = conn.poll_event() {
                self.events.push_back((handle, e));
            }
            while let Some(e) = conn.poll_endpoint_event() {
                self.endpoint.handle_event(handle, e);
            }
            if conn.is_closed() {
                if let (Some(slot), Some(closed)) =
                    (self.conns.remove(&handle), self.closed.as_mut())
                {
                    closed.push((handle, slot.conn));
                }
            } else if let Some(at) = conn.poll_timeout() {
                if slot.scheduled.is_none_or(|s| at < s) {
                    slot.scheduled = Some(at);
                    self.timers.push(Reverse((at, handle)));
                }
            }
        }
    }
}

impl<A: Application> std::fmt::Debug for Driver<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("connections", &self.conns.len())
            .field("outgoing", &self.outgoing.len())
            .field("stateless", &self.stateless.len())
            .finish_non_exhaustive()
    }
}
