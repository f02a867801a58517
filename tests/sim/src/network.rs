//! The virtual network: one server and one or more client hosts, each client with its own
//! per-direction links (latency, jitter, bandwidth, loss (random and Gilbert–Elliott bursts),
//! duplication, reordering, corruption, MTU, blackholes) and a NAT that can rebind its public
//! address; partitions cut everything.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How packets get lost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossModel {
    /// No random loss.
    None,
    /// Each packet independently with this probability.
    Random(f64),
    /// Gilbert–Elliott: a good and a bad state with their own loss rates.
    GilbertElliott {
        /// Per packet, chance to go from good to bad.
        p_enter_bad: f64,
        /// Per packet, chance to go from bad to good.
        p_leave_bad: f64,
        /// Loss rate in the good state.
        loss_good: f64,
        /// Loss rate in the bad state.
        loss_bad: f64,
        /// After this long without packets, the state is drawn afresh from the chain's
        /// stationary distribution (`None`: the state only moves per packet).
        memory: Option<Duration>,
    },
}

impl LossModel {
    /// A Gilbert–Elliott model averaging `average` loss in bursts of about `burst_len` packets
    /// (loss-free good state, total loss in the bad state). A burst does not outlive a second
    /// of silence ([`BURST_MEMORY`]).
    pub fn bursty(average: f64, burst_len: f64) -> LossModel {
        let p_leave_bad = 1.0 / burst_len.max(1.0);
        // Stationary share of the bad state = p_enter / (p_enter + p_leave) = average.
        let p_enter_bad = average * p_leave_bad / (1.0 - average).max(1e-9);
        LossModel::GilbertElliott {
            p_enter_bad,
            p_leave_bad,
            loss_good: 0.0,
            loss_bad: 1.0,
            memory: Some(BURST_MEMORY),
        }
    }
}

/// A periodic outage: the link drops everything for `on`, then works for `off`, from `start`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blackhole {
    /// Offset from simulation start of the first outage.
    pub start: Duration,
    /// Outage length.
    pub on: Duration,
    /// Working period between outages (`Duration::MAX` for a single outage).
    pub off: Duration,
}

impl Blackhole {
    fn is_dark(&self, since_start: Duration) -> bool {
        let Some(t) = since_start.checked_sub(self.start) else {
            return false;
        };
        let period = self.on.saturating_add(self.off);
        let phase = if period == Duration::MAX || period.is_zero() {
            t
        } else {
            Duration::from_nanos((t.as_nanos() % period.as_nanos()) as u64)
        };
        phase < self.on
    }
}

/// One direction of a link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` (may reorder).
    pub jitter: Duration,
    /// Bits per second; `None` is unlimited.
    pub bandwidth: Option<u64>,
    /// Longest queueing delay before tail drop (with a bandwidth limit).
    pub max_queue_delay: Duration,
    /// Loss.
    pub loss: LossModel,
    /// Chance a packet is delivered twice.
    pub duplicate: f64,
    /// Chance a packet is held back by `reorder_delay` (overtaken by later ones).
    pub reorder: f64,
    /// Extra delay of reordered packets.
    pub reorder_delay: Duration,
    /// Chance one bit of a packet is flipped.
    pub corrupt: f64,
    /// Largest datagram carried; larger ones are dropped.
    pub mtu: usize,
    /// Outages.
    pub blackholes: Vec<Blackhole>,
}

impl LinkConfig {
    /// A clean link with this one-way delay.
    pub fn with_latency(latency: Duration) -> Self {
        LinkConfig {
            latency,
            ..Default::default()
        }
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            bandwidth: None,
            max_queue_delay: Duration::from_millis(100),
            loss: LossModel::None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            corrupt: 0.0,
            mtu: 1500,
            blackholes: Vec::new(),
        }
    }
}

/// Which way a packet travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

/// What happened to a packet on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Scheduled for delivery.
    Sent,
    /// Dropped by random or bursty loss.
    Lost,
    /// Dropped: the queue was full.
    TailDrop,
    /// Dropped: larger than the MTU.
    TooBig,
    /// Dropped: outage or partition.
    Dark,
    /// Dropped by the test's filter.
    Filtered,
}

/// One client host of a simulation (and its place on the network); the first is the one
/// every simulation has ([`Sim::client`](crate::Sim::client)), more come from
/// [`Sim::add_client`](crate::Sim::add_client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub(crate) usize);

impl ClientId {
    /// The simulation's first client host.
    pub const FIRST: ClientId = ClientId(0);

    /// Its index, in the order the hosts were added (the first is 0).
    pub fn index(self) -> usize {
        self.0
    }
}

/// A datagram in flight.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet {
    /// Arrival time.
    pub at: Instant,
    seq: u64,
    /// Direction.
    pub direction: Direction,
    /// The client host at the other end from the server.
    pub client: ClientId,
    /// Source address as the receiver sees it.
    pub from: SocketAddr,
    /// Destination address.
    pub to: SocketAddr,
    /// Contents.
    pub bytes: Vec<u8>,
}

impl Ord for Packet {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl PartialOrd for Packet {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A test's hook to drop chosen packets: `(direction, index of the packet on its link
/// counting from 0, bytes) -> drop?` (each client host has its own links, so its own count).
pub type PacketFilter = Box<dyn FnMut(Direction, u64, &[u8]) -> bool>;

struct LinkState {
    config: LinkConfig,
    bad: bool,
    /// When the last packet was put on this link (for the Gilbert–Elliott state's memory).
    last_sent: Option<Instant>,
    busy_until: Option<Instant>,
    count: u64,
}

/// How long a Gilbert–Elliott burst outlives silence: after the link has carried nothing for
/// longer, its state is drawn afresh from the chain's stationary distribution. Bursts are
/// episodes in time (congestion, a fading radio), counted in packets while packets flow;
/// without this, a sparse flow (probes minutes apart) stayed in one "burst" for half an hour.
pub const BURST_MEMORY: Duration = Duration::from_secs(1);

/// A client host's place on the network.
struct Attachment {
    /// The host's own address.
    addr: SocketAddr,
    /// To the server, from the server.
    links: [LinkState; 2],
    /// The address the server sees the host's packets come from (`None`: its own).
    public: Option<SocketAddr>,
    /// Every public address it had: answers the server still sends to one arrive.
    former: Vec<SocketAddr>,
}

impl Attachment {
    fn new(addr: SocketAddr, to_server: LinkConfig, to_client: LinkConfig) -> Self {
        let link = |config| LinkState {
            config,
            bad: false,
            last_sent: None,
            busy_until: None,
            count: 0,
        };
        Attachment {
            addr,
            links: [link(to_server), link(to_client)],
            public: None,
            former: Vec::new(),
        }
    }

    fn answers_to(&self, addr: SocketAddr) -> bool {
        self.addr == addr || self.public == Some(addr) || self.former.contains(&addr)
    }
}

/// The links between the server and each client host, with a NAT in front of each client.
pub struct Network {
    clients: Vec<Attachment>,
    rng: StdRng,
    start: Instant,
    queue: BinaryHeap<Reverse<Packet>>,
    seq: u64,
    /// While true, nothing gets through in either direction, for any host.
    pub partitioned: bool,
    /// Drops chosen packets.
    pub filter: Option<PacketFilter>,
}

impl Network {
    /// A network with these links to the first client host ([`crate::CLIENT`]), seeded.
    pub fn new(to_server: LinkConfig, to_client: LinkConfig, seed: u64, start: Instant) -> Self {
        Network {
            clients: vec![Attachment::new(crate::CLIENT, to_server, to_client)],
            rng: StdRng::seed_from_u64(seed),
            start,
            queue: BinaryHeap::new(),
            seq: 0,
            partitioned: false,
            filter: None,
        }
    }

    /// Attaches another client host at `addr` with its own links.
    ///
    /// Panics if a host of this network already has `addr` (own or public): datagrams are
    /// routed by address.
    pub fn attach(
        &mut self,
        addr: SocketAddr,
        to_server: LinkConfig,
        to_client: LinkConfig,
    ) -> ClientId {
        assert!(
            !self.clients.iter().any(|c| c.answers_to(addr)),
            "a client host already has {addr}"
        );
        self.clients
            .push(Attachment::new(addr, to_server, to_client));
        ClientId(self.clients.len() - 1)
    }

    /// The first client host's link in one direction, to change mid-run.
    pub fn link_mut(&mut self, direction: Direction) -> &mut LinkConfig {
        self.client_link_mut(ClientId::FIRST, direction)
    }

    /// A client host's link in one direction, to change mid-run.
    ///
    /// Panics if `client` is not a host of this network.
    pub fn client_link_mut(&mut self, client: ClientId, direction: Direction) -> &mut LinkConfig {
        &mut self.clients[client.0].links[direction as usize].config
    }

    /// The client host's NAT maps it to `public` from now on: the server sees its packets
    /// come from there (a NAT rebinding; QUIC migrates the connection). The NAT keeps its
    /// former mappings: what the server still sends to an old address arrives, so the test
    /// of a migration is the server's `PeerMigrated` event, not lost answers.
    pub fn rebind(&mut self, client: ClientId, public: SocketAddr) {
        let host = &mut self.clients[client.0];
        if let Some(old) = host.public.replace(public) {
            host.former.push(old);
        }
    }

    /// The address the server sees the client host's packets come from.
    pub fn public_addr(&self, client: ClientId) -> SocketAddr {
        let host = &self.clients[client.0];
        host.public.unwrap_or(host.addr)
    }

    /// The client host a datagram between `from` and `to` goes to or comes from.
    fn client_of(&self, direction: Direction, from: SocketAddr, to: SocketAddr) -> usize {
        let found = match direction {
            Direction::ToServer => self.clients.iter().position(|c| c.addr == from),
            Direction::ToClient => self.clients.iter().position(|c| c.answers_to(to)),
        };
        // A datagram for an address no host has goes to the first host, as a NAT that maps
        // everything to one machine would.
        found.unwrap_or(0)
    }

    /// Puts one datagram on the wire at `now`; returns what became of it.
    pub fn send(
        &mut self,
        now: Instant,
        direction: Direction,
        from: SocketAddr,
        to: SocketAddr,
        mut bytes: Vec<u8>,
    ) -> Fate {
        let client = self.client_of(direction, from, to);
        let public = self.clients[client].public;
        let link = &mut self.clients[client].links[direction as usize];
        let index = link.count;
        link.count += 1;
        let c = &link.config;
        if let Some(filter) = self.filter.as_mut() {
            if filter(direction, index, &bytes) {
                return Fate::Filtered;
            }
        }
        let since_start = now.saturating_duration_since(self.start);
        if self.partitioned || c.blackholes.iter().any(|b| b.is_dark(since_start)) {
            return Fate::Dark;
        }
        if bytes.len() > c.mtu {
            return Fate::TooBig;
        }
        let lost = match c.loss {
            LossModel::None => false,
            LossModel::Random(p) => self.rng.random_bool(p.clamp(0.0, 1.0)),
            LossModel::GilbertElliott {
                p_enter_bad,
                p_leave_bad,
                loss_good,
                loss_bad,
                memory,
            } => {
                let idle = memory.is_some_and(|m| {
                    link.last_sent
                        .is_some_and(|t| now.saturating_duration_since(t) > m)
                });
                link.last_sent = Some(now);
                if idle {
                    let stationary = p_enter_bad / (p_enter_bad + p_leave_bad).max(1e-9);
                    link.bad = self.rng.random_bool(stationary.clamp(0.0, 1.0));
                }
                let flip = if link.bad { p_leave_bad } else { p_enter_bad };
                if self.rng.random_bool(flip.clamp(0.0, 1.0)) {
                    link.bad = !link.bad;
                }
                let p = if link.bad { loss_bad } else { loss_good };
                self.rng.random_bool(p.clamp(0.0, 1.0))
            }
        };
        if lost {
            return Fate::Lost;
        }
        // Serialisation at the bottleneck, with tail drop past the queue limit.
        let mut depart = now;
        if let Some(bps) = c.bandwidth {
            let start = link.busy_until.map_or(now, |t| t.max(now));
            if start - now > c.max_queue_delay {
                return Fate::TailDrop;
            }
            let wire = Duration::from_nanos((bytes.len() as u64 * 8 * 1_000_000_000) / bps.max(1));
            link.busy_until = Some(start + wire);
            depart = start + wire;
        }
        let mut at = depart + c.latency;
        if !c.jitter.is_zero() {
            at += Duration::from_nanos(self.rng.random_range(0..=c.jitter.as_nanos() as u64));
        }
        if c.reorder > 0.0 && self.rng.random_bool(c.reorder.clamp(0.0, 1.0)) {
            at += c.reorder_delay;
        }
        if c.corrupt > 0.0 && !bytes.is_empty() && self.rng.random_bool(c.corrupt.clamp(0.0, 1.0)) {
            let bit = self.rng.random_range(0..bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        let duplicate = c.duplicate > 0.0 && self.rng.random_bool(c.duplicate.clamp(0.0, 1.0));
        let from = match (direction, public) {
            (Direction::ToServer, Some(public)) => public,
            _ => from,
        };
        let client = ClientId(client);
        if duplicate {
            let copy = bytes.clone();
            self.push(
                at + Duration::from_micros(1),
                direction,
                client,
                from,
                to,
                copy,
            );
        }
        self.push(at, direction, client, from, to, bytes);
        Fate::Sent
    }

    fn push(
        &mut self,
        at: Instant,
        direction: Direction,
        client: ClientId,
        from: SocketAddr,
        to: SocketAddr,
        bytes: Vec<u8>,
    ) {
        self.seq += 1;
        self.queue.push(Reverse(Packet {
            at,
            seq: self.seq,
            direction,
            client,
            from,
            to,
            bytes,
        }));
    }

    /// The next packet due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Packet> {
        if self.queue.peek().is_some_and(|Reverse(p)| p.at <= now) {
            self.queue.pop().map(|Reverse(p)| p)
        } else {
            None
        }
    }

    /// When the next packet arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(p)| p.at)
    }

    /// Packets in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}
