//! A simulated host: one endpoint and its connections, driven in the core's documented order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::task::{Context, Waker};
use std::time::Instant;

use quicksand_core::{
    Application, Connection, ConnectionHandle, CreateError, Datagram, DatagramEvent, Endpoint,
    Event, Incoming, QuicConfig, Transmit,
};

/// Decides whether to accept an incoming connection, and with which application.
pub type AcceptFn<A> = Box<dyn FnMut(&Incoming) -> Option<A>>;

/// One host: an endpoint on one address and the connections it carries.
pub struct Host<A: Application> {
    /// The host's address (its socket).
    pub addr: SocketAddr,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Live connections.
    pub conns: BTreeMap<ConnectionHandle, Connection<A>>,
    /// Connections that closed, in closing order, kept for inspection.
    pub finished: Vec<Connection<A>>,
    /// Every connection event with its time.
    pub events: Vec<(Instant, ConnectionHandle, Event)>,
    /// GSO segments per transmit this host's "socket" accepts.
    pub max_segments: usize,
    accept: Option<AcceptFn<A>>,
    /// Connections refused by the accept function.
    pub refused: u64,
}

impl<A: Application> Host<A> {
    /// A host; with `accept` it is a server.
    pub fn new(addr: SocketAddr, endpoint: Endpoint, accept: Option<AcceptFn<A>>) -> Self {
        Host {
            addr,
            endpoint,
            conns: BTreeMap::new(),
            finished: Vec::new(),
            events: Vec::new(),
            max_segments: 16,
            accept,
            refused: 0,
        }
    }

    /// Opens a client connection to `peer`.
    pub fn connect(
        &mut self,
        now: Instant,
        config: &mut QuicConfig,
        peer: SocketAddr,
        app: A,
    ) -> Result<ConnectionHandle, CreateError> {
        let (handle, conn) =
            self.endpoint
                .connect(now, config, Some("localhost"), self.addr, peer, app)?;
        self.conns.insert(handle, conn);
        Ok(handle)
    }

    /// Hands one received datagram to the endpoint; returns stateless answers to send.
    pub fn receive(&mut self, now: Instant, datagram: Datagram, out: &mut Vec<Transmit>) {
        match self.endpoint.handle_datagram(now, datagram) {
            Some(DatagramEvent::Connection(handle, d)) => {
                if let Some(conn) = self.conns.get_mut(&handle) {
                    conn.handle_datagram(now, d);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                let app = self.accept.as_mut().and_then(|f| f(&incoming));
                match app {
                    Some(app) => match self.endpoint.accept(now, incoming, app) {
                        Ok((handle, conn)) => {
                            self.conns.insert(handle, conn);
                        }
                        Err(e) => tracing::debug!(error = %e, "accept failed"),
                    },
                    None => {
                        self.refused += 1;
                        self.endpoint.refuse(incoming);
                    }
                }
            }
            Some(DatagramEvent::Respond(t)) => out.push(t),
            None => {}
        }
    }

    /// Fires due timers, lets applications work, and collects every transmit; then applies
    /// events and retires closed connections.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut closed = Vec::new();
        for (&handle, conn) in self.conns.iter_mut() {
            if conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
            }
            let _ = conn.poll_wakeup(&mut cx);
            while let Some(t) = conn.poll_transmit(now, self.max_segments) {
                out.push(t);
            }
            while let Some(e) = conn.poll_event() {
                self.events.push((now, handle, e));
            }
            while let Some(e) = conn.poll_endpoint_event() {
                self.endpoint.handle_event(handle, e);
            }
            if conn.is_closed() {
                closed.push(handle);
            }
        }
        for handle in closed {
            if let Some(conn) = self.conns.remove(&handle) {
                self.finished.push(conn);
            }
        }
    }

    /// The earliest timer of any connection.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.conns.values().filter_map(|c| c.poll_timeout()).min()
    }

    /// Connections whose event list holds a `Closed`.
    pub fn closed_reasons(&self) -> Vec<quicksand_core::CloseReason> {
        self.events
            .iter()
            .filter_map(|(_, _, e)| match e {
                Event::Closed(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
}
