//! A simulated host: a [`Driver`] (endpoint and connections, the same loop the tokio and smol
//! adapters run) on one address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use quicksand_core::driver::AcceptFn;
use quicksand_core::{
    Application, CloseReason, Connection, ConnectionKey, CreateError, Datagram, Driver, Endpoint,
    Event, QuicConfig, Transmit, WakeTarget,
};

/// A [`WakeTarget`] that records which connections outside code woke, for a loop that looks
/// at each step: the simulator's hosts, and harnesses that drive connections themselves.
#[derive(Debug, Default)]
pub struct WokenConnections(Mutex<Vec<ConnectionKey>>);

impl WokenConnections {
    /// The connections woken since the last call (a key may appear more than once).
    pub fn take(&self) -> Vec<ConnectionKey> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// True if no connection was woken since the last `take`.
    pub fn is_empty(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

impl WakeTarget for WokenConnections {
    fn wake(&self, key: ConnectionKey) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
    }
}

/// One host: a driver on one address, with the events it produced.
pub struct Host<A: Application> {
    /// The host's address (its socket).
    pub addr: SocketAddr,
    /// The endpoint and its connections.
    pub driver: Driver<A>,
    /// Every connection event with its time.
    pub events: Vec<(Instant, ConnectionKey, Event)>,
    /// The driver's wake target: connections woken by handles, handlers, certificate lookups.
    woken: Arc<WokenConnections>,
}

impl<A: Application> Host<A> {
    /// A host whose socket takes GSO batches of up to 16 segments; with `accept` it is a server.
    pub fn new(addr: SocketAddr, endpoint: Endpoint, accept: Option<AcceptFn<A>>) -> Self {
        let woken = Arc::new(WokenConnections::default());
        let mut driver = Driver::new(endpoint, accept, 16, woken.clone());
        driver.keep_closed(true);
        Host {
            addr,
            driver,
            events: Vec::new(),
            woken,
        }
    }

    /// Opens a client connection to `peer`.
    pub fn connect(
        &mut self,
        now: Instant,
        config: &mut QuicConfig,
        peer: SocketAddr,
        app: A,
    ) -> Result<ConnectionKey, CreateError> {
        self.driver
            .connect(now, config, Some("localhost"), self.addr, peer, app)
    }

    /// Hands one received datagram to the driver.
    pub fn receive(&mut self, now: Instant, datagram: Datagram) {
        self.driver.handle_datagram(now, datagram);
    }

    /// Fires due timers, lets woken applications work, and collects every transmit and event.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        self.driver.handle_timeout(now);
        for key in self.woken.take() {
            self.driver.handle_wakeup(key);
        }
        while let Some(t) = self.driver.poll_transmit(now) {
            out.push(t);
        }
        while let Some((handle, e)) = self.driver.poll_event() {
            self.events.push((now, handle, e));
        }
    }

    /// The earliest connection timer; now, if an application or a command woke a
    /// connection since the host last ran.
    pub fn next_timeout(&mut self) -> Option<Instant> {
        if !self.woken.is_empty() {
            return Some(Instant::now());
        }
        self.driver.poll_timeout()
    }

    /// Live connections.
    pub fn conns(&self) -> impl Iterator<Item = &Connection<A>> {
        self.driver.connections().map(|(_, c)| c)
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.driver.connection_count()
    }

    /// True without live connections.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Handles of the live connections.
    pub fn handles(&self) -> Vec<ConnectionKey> {
        self.driver.connections().map(|(h, _)| h).collect()
    }

    /// Runs `f` on every live connection (each is driven on the next step).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut Connection<A>)) {
        for h in self.handles() {
            if let Some(c) = self.driver.connection_mut(h) {
                f(c);
            }
        }
    }

    /// True while the connection `key` is live and its handshake completed.
    pub fn is_established(&self, key: ConnectionKey) -> bool {
        self.driver
            .connections()
            .any(|(k, c)| k == key && c.quiche().is_established())
    }

    /// Why the connection `key` closed; `None` while it is live (or if it never existed).
    pub fn close_reason(&self, key: ConnectionKey) -> Option<&CloseReason> {
        self.events.iter().find_map(|(_, k, e)| match e {
            Event::Closed(reason) if *k == key => Some(reason),
            _ => None,
        })
    }

    /// True once the connection `key` closed.
    pub fn is_closed(&self, key: ConnectionKey) -> bool {
        self.close_reason(key).is_some()
    }

    /// Closed connections, kept for inspection.
    pub fn finished(&self) -> impl Iterator<Item = &Connection<A>> {
        self.driver.closed().iter().map(|(_, c)| c)
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.driver.endpoint()
    }

    /// Close reasons of every connection that closed, in order.
    pub fn closed_reasons(&self) -> Vec<CloseReason> {
        self.events
            .iter()
            .filter_map(|(_, _, e)| match e {
                Event::Closed(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
}
