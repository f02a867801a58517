//! Two connections joined by in-memory queues with a fixed one-way delay, on virtual time.
//!
//! The smallest driver of the core: no endpoint, no sockets, no loss. The server connection is
//! created when the client's first datagram arrives. Every step follows the core's documented
//! order: deliver due datagrams, fire due timers, drain transmits, drain events.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicksand_core::{
    Application, Connection, ConnectionContext, ConnectionKey, ConnectionWake, CreateError,
    Datagram, Event, QuicConfig,
};

/// Client address used by the pair.
pub const CLIENT_ADDR: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    4433,
);
/// Server address used by the pair.
pub const SERVER_ADDR: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)),
    443,
);

/// A client and a server connection exchanging datagrams through queues.
pub struct Pair<C: Application, S: Application> {
    /// The client connection.
    pub client: Connection<C>,
    /// The server connection, once the first datagram reached the server.
    pub server: Option<Connection<S>>,
    server_config: QuicConfig,
    server_app: Option<S>,
    /// The context the server connection is created with (set it before the first step to
    /// share, e.g., an anti-replay record between pairs).
    pub server_ctx: ConnectionContext,
    /// One-way delay of both directions.
    pub delay: Duration,
    /// GSO segments the driver accepts per transmit.
    pub max_segments: usize,
    to_server: VecDeque<(Instant, Vec<u8>)>,
    to_client: VecDeque<(Instant, Vec<u8>)>,
    /// Client events with the time they were polled.
    pub client_events: Vec<(Instant, Event)>,
    /// Server events with the time they were polled.
    pub server_events: Vec<(Instant, Event)>,
    /// Datagrams sent by the client / server.
    pub datagrams_sent: [u64; 2],
    /// Transmits with more than one segment.
    pub gso_transmits: u64,
    /// When `Some`, every datagram the client sends is recorded here with the time it was
    /// sent (for replays). Default: `None`.
    pub client_datagrams: Option<Vec<(Instant, Vec<u8>)>>,
    /// Where both connections' wake-ups go ([`CLIENT_KEY`], [`SERVER_KEY`]): outside code
    /// (application handles) has work for them.
    woken: Arc<WokenConnections>,
}

/// The wake flag of the simulator's tasks, for harnesses that poll futures themselves.
pub use quicksand_sim::WakeFlag;
use quicksand_sim::WokenConnections;

/// The key the client connection's wake-ups carry.
pub const CLIENT_KEY: ConnectionKey = ConnectionKey(0);
/// The key the server connection's wake-ups carry.
pub const SERVER_KEY: ConnectionKey = ConnectionKey(1);

impl<C: Application, S: Application> Pair<C, S> {
    /// Creates the client connection now; the server's is created on first contact.
    pub fn new(
        client_config: &mut QuicConfig,
        server_config: QuicConfig,
        client_app: C,
        server_app: S,
        delay: Duration,
    ) -> Result<Self, CreateError> {
        let now = Instant::now();
        let woken = Arc::new(WokenConnections::default());
        let mut client = Connection::connect(
            now,
            client_config,
            Some("localhost"),
            CLIENT_ADDR,
            SERVER_ADDR,
            ConnectionContext::default(),
            client_app,
        )?;
        client.set_wake(ConnectionWake::new(CLIENT_KEY, woken.clone()));
        Ok(Pair {
            client,
            server: None,
            server_config,
            server_app: Some(server_app),
            server_ctx: ConnectionContext::default(),
            delay,
            max_segments: 16,
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            datagrams_sent: [0; 2],
            gso_transmits: 0,
            client_datagrams: None,
            woken,
        })
    }

    /// Gives the server config back, e.g. to resume its sessions in a second pair.
    pub fn into_server_config(self) -> QuicConfig {
        self.server_config
    }

    /// The server connection; panics if the client never reached it.
    pub fn server(&self) -> &Connection<S> {
        self.server
            .as_ref()
            .expect("server connection not created yet")
    }

    /// Processes everything due at the current (virtual) time.
    pub fn step(&mut self) -> Result<(), CreateError> {
        let now = Instant::now();
        while self.to_server.front().is_some_and(|(t, _)| *t <= now) {
            let (_, bytes) = self.to_server.pop_front().expect("checked");
            let dgram = Datagram::new(&bytes[..], CLIENT_ADDR, SERVER_ADDR, now);
            if self.server.is_none() {
                let scid = self.server_ctx.cid_generator.generate();
                let app = self.server_app.take().expect("server app used once");
                let mut server = Connection::accept(
                    now,
                    &mut self.server_config,
                    &scid,
                    None,
                    SERVER_ADDR,
                    CLIENT_ADDR,
                    self.server_ctx.clone(),
                    app,
                )?;
                server.set_wake(ConnectionWake::new(SERVER_KEY, self.woken.clone()));
                self.server = Some(server);
            }
            if let Some(server) = self.server.as_mut() {
                server.handle_datagram(now, dgram);
            }
        }
        while self.to_client.front().is_some_and(|(t, _)| *t <= now) {
            let (_, bytes) = self.to_client.pop_front().expect("checked");
            self.client.handle_datagram(
                now,
                Datagram::new(&bytes[..], SERVER_ADDR, CLIENT_ADDR, now),
            );
        }
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        if let Some(server) = self.server.as_mut() {
            if server.poll_timeout().is_some_and(|t| t <= now) {
                server.handle_timeout(now);
            }
        }
        // Application work from outside (the core's step 4: handle_wakeup).
        for key in self.woken.take() {
            match (key, self.server.as_mut()) {
                (CLIENT_KEY, _) => self.client.handle_wakeup(),
                (_, Some(server)) => server.handle_wakeup(),
                (_, None) => {}
            }
        }
        let arrival = now + self.delay;
        while let Some(t) = self.client.poll_transmit(now, self.max_segments) {
            assert_eq!(t.destination, SERVER_ADDR);
            self.gso_transmits += u64::from(t.segments() > 1);
            for d in t.datagrams() {
                self.datagrams_sent[0] += 1;
                if let Some(recording) = self.client_datagrams.as_mut() {
                    recording.push((now, d.to_vec()));
                }
                self.to_server.push_back((arrival, d.to_vec()));
            }
        }
        if let Some(server) = self.server.as_mut() {
            while let Some(t) = server.poll_transmit(now, self.max_segments) {
                assert_eq!(t.destination, CLIENT_ADDR);
                self.gso_transmits += u64::from(t.segments() > 1);
                for d in t.datagrams() {
                    self.datagrams_sent[1] += 1;
                    self.to_client.push_back((arrival, d.to_vec()));
                }
            }
            while let Some(e) = server.poll_event() {
                self.server_events.push((now, e));
            }
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push((now, e));
        }
        Ok(())
    }

    /// The next instant anything is due, if anything is (now, if a connection was woken).
    pub fn next_wakeup(&self) -> Option<Instant> {
        if !self.woken.is_empty() {
            return Some(Instant::now());
        }
        [
            self.to_server.front().map(|(t, _)| *t),
            self.to_client.front().map(|(t, _)| *t),
            self.client.poll_timeout(),
            self.server.as_ref().and_then(|s| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Steps, advancing `clock`, until `done(self)` holds (true) or `limit` of virtual time
    /// passes or nothing is left to do (false).
    pub fn run_until(
        &mut self,
        clock: &crate::clock::VirtualTime,
        limit: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<bool, CreateError> {
        let deadline = Instant::now() + limit;
        let mut spins_at_same_time = 0u32;
        loop {
            self.step()?;
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            let Some(next) = self.next_wakeup() else {
                return Ok(false);
            };
            if next > deadline {
                return Ok(false);
            }
            if next <= now {
                spins_at_same_time += 1;
                assert!(
                    spins_at_same_time < 10_000,
                    "no progress at one instant: livelock"
                );
            } else {
                spins_at_same_time = 0;
                clock.advance_to(next);
            }
        }
    }
}
