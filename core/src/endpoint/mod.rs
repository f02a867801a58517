//! The endpoint: owns the connection-ID table and decides, for each datagram, what happens.
//!
//! Every answer is a returned value, never a channel send or a spawned task:
//! [`Endpoint::handle_datagram`] routes a datagram to a connection, announces a new one
//! ([`Incoming`], which the driver [`accept`](Endpoint::accept)s or
//! [`refuse`](Endpoint::refuse)s at once), answers statelessly (version negotiation, RETRY,
//! stateless reset), or drops it and counts why.
//!
//! The driver owns the connections (in its own task, or one task each) and feeds their
//! [`EndpointEvent`]s back with [`Endpoint::handle_event`], which keeps the table exact: CIDs
//! issued and retired, and all of a connection's CIDs removed when it closes.

mod header;
mod rejection;
mod stateless;
mod table;
mod token;

pub use header::{HeaderForm, MalformedHeader, PacketHeader};
pub use table::ConnectionKey;
pub use token::{AddressToken, TokenError, TokenKey, TokenKeys, TokenKind, TokenLifetimes};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use quiche::ConnectionId;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::metrics::{DropReason, RejectReason, StatelessKind};
use crate::settings::check_server_transport_params;
use crate::{
    Application, ConfigError, ConfigErrorKind, Connection, ConnectionContext, CreateError,
    Datagram, EndpointEvent, QuicConfig, RetryIds, Transmit, WakeTarget, WakeTargetSlot,
};
use rejection::RejectionLog;
use stateless::RateLimit;
use table::ConnectionTable;

/// The smallest UDP payload that may carry a client's first Initial (RFC 9000 §14.1).
pub const MIN_INITIAL_LEN: usize = 1200;

/// How far the system's wall clock may drift from an endpoint's before
/// [`Endpoint::handle_wall_clock`] re-anchors it: well below the lifetimes of what the wall
/// clock stamps (address tokens: minutes; ticket-key periods: hours), well above the jitter
/// of reading two clocks.
pub const WALL_CLOCK_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Endpoint-wide limits and policies. Every field has a documented default.
///
/// The limits and rates are per endpoint, i.e. per socket: a server with `workers` sockets
/// (`SO_REUSEPORT`) applies each of them per worker, so the process as a whole holds up to
/// `workers` times `max_connections` and answers up to `workers` times each rate.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// When token-less Initials are answered with RETRY, so only clients that prove their
    /// address get connection state. Default: [`AddressValidation::Always`], as tokio-quiche
    /// does; [`AddressValidation::UnderLoad`] saves honest clients the round trip until
    /// handshakes pile up.
    pub address_validation: AddressValidation,
    /// How long address-validation tokens are accepted.
    pub token_lifetimes: TokenLifetimes,
    /// Connections held at once; Initials beyond it are dropped. Default: 100,000.
    pub max_connections: usize,
    /// Handshakes in progress at once (the accept backlog); Initials beyond it are dropped and
    /// counted as [`RejectReason::Backlog`] — dropping costs the server nothing and the client
    /// retries. Default: 4,096.
    pub max_handshakes: usize,
    /// Handshakes in progress at once from one client address; Initials beyond it are
    /// dropped and counted as [`RejectReason::AddressQuota`], so one source cannot fill the
    /// accept backlog. Default: 256 (a proxy or a load generator behind one address may well
    /// open many connections at once; 16 such addresses are still needed to fill the default
    /// backlog).
    pub max_handshakes_per_address: usize,
    /// The same for one address prefix (IPv4 /24, IPv6 /64), so one network cannot either.
    /// Default: 1,024.
    pub max_handshakes_per_prefix: usize,
    /// Answer short-header packets for unknown CIDs with a stateless reset. Default: true.
    pub stateless_resets: bool,
    /// Most stateless resets per second. Default: 200.
    pub stateless_reset_rate: u32,
    /// Most version negotiation answers per second; beyond, unknown-version Initials are
    /// dropped ([`DropReason::RateLimited`]). Each answer goes to an unvalidated address, so
    /// the rate bounds what spoofed floods can reflect. Default: 1,000.
    pub version_negotiation_rate: u32,
    /// Most RETRY answers per second; beyond, token-less Initials are dropped
    /// ([`DropReason::RateLimited`]) and their clients retransmit. Default: 10,000 (a RETRY is
    /// about 150 bytes: at most 1.5 MB/s reflected).
    pub retry_rate: u32,
    /// Seed for the endpoint's own randomness (reset bytes, token nonces); `None` seeds from
    /// the OS. Set it only for reproducible simulations. Default: `None`.
    pub seed: Option<u64>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            address_validation: AddressValidation::Always,
            token_lifetimes: TokenLifetimes::default(),
            max_connections: 100_000,
            max_handshakes: 4096,
            max_handshakes_per_address: 256,
            max_handshakes_per_prefix: 1024,
            stateless_resets: true,
            stateless_reset_rate: 200,
            version_negotiation_rate: 1_000,
            retry_rate: 10_000,
            seed: None,
        }
    }
}

/// When the server makes a client prove its address (a RETRY round trip, RFC 9000 §8.1.2)
/// before it creates connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressValidation {
    /// Every client without a valid token gets a RETRY first.
    Always,
    /// Only while at least `handshakes` handshakes are in progress (s2n-quic's model): honest
    /// clients connect in one round trip less, and a flood of spoofed Initials, which fills
    /// the backlog with handshakes that never finish, turns validation on for as long as it
    /// lasts. Below the threshold a spoofed Initial costs a connection's state and up to
    /// three times its size in answers (quiche's amplification limit) until the handshake
    /// timeout.
    UnderLoad {
        /// Handshakes in progress at which RETRY starts; below `max_handshakes`, or the
        /// backlog refuses Initials before validation would start ([`Endpoint::new`] checks).
        handshakes: usize,
    },
    /// Never: connections are created for any client address.
    Never,
}

impl AddressValidation {
    /// True if a client without a valid token must be sent a RETRY while `handshaking`
    /// handshakes are in progress.
    pub fn requires_retry(self, handshaking: usize) -> bool {
        match self {
            AddressValidation::Always => true,
            AddressValidation::UnderLoad { handshakes } => handshaking >= handshakes,
            AddressValidation::Never => false,
        }
    }
}

/// What to do with a datagram.
#[derive(Debug)]
pub enum DatagramEvent {
    /// Feed it to this connection.
    Connection(ConnectionKey, Datagram),
    /// A client wants a new connection: [`Endpoint::accept`] or [`Endpoint::refuse`] it before
    /// the next datagram.
    NewConnection(Incoming),
    /// Send this stateless answer.
    Respond(Transmit),
}

/// A client's first Initial that passed the endpoint's checks.
#[derive(Debug)]
pub struct Incoming {
    datagram: Datagram,
    scid: ConnectionId<'static>,
    client_dcid: Vec<u8>,
    retry: Option<RetryIds>,
    validated: bool,
}

impl Incoming {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.datagram.peer
    }

    /// Our address it was sent to.
    pub fn local(&self) -> SocketAddr {
        self.datagram.local
    }

    /// True if the client proved its address with a token.
    pub fn is_validated(&self) -> bool {
        self.validated
    }
}

/// Counters of what the endpoint did with datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Datagrams routed to a connection.
    pub routed: u64,
    /// New connections announced.
    pub incoming: u64,
    /// RETRY packets sent.
    pub retries: u64,
    /// Version negotiation packets sent.
    pub version_negotiations: u64,
    /// Stateless resets sent.
    pub stateless_resets: u64,
    /// Datagrams dropped, for any reason; by reason with [`dropped_for`](Self::dropped_for).
    pub dropped: u64,
    /// Tokens refused.
    pub tokens_rejected: u64,
    /// Bytes of stateless answers sent (VN, RETRY, reset).
    pub stateless_bytes: u64,
    /// Connection attempts refused, by [`RejectReason`] in declaration order; read with
    /// [`rejected`](Self::rejected).
    rejected: [u64; RejectReason::ALL.len()],
    /// Datagrams dropped, by [`DropReason`] in declaration order.
    dropped_by: [u64; DropReason::ALL.len()],
}

impl EndpointStats {
    /// Connection attempts refused for `reason` (each is also logged at `warn`, rate limited).
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason as usize]
    }

    /// Datagrams dropped for `reason` (also reported to the metrics sink).
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped_by[reason as usize]
    }

    /// Connection attempts refused for any reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

/// Why an [`Incoming`] could not become a connection.
#[derive(Debug)]
pub enum AcceptError {
    /// The endpoint has no server config.
    NotAServer,
    /// quiche refused.
    Create(CreateError),
}

impl std::fmt::Display for AcceptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcceptError::NotAServer => f.write_str("the endpoint has no server config"),
            AcceptError::Create(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AcceptError {}

/// A QUIC endpoint: routing, address validation, stateless answers. One per socket (or per
/// group of sockets sharing CIDs). See the module docs.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    server: Option<QuicConfig>,
    ctx: ConnectionContext,
    table: ConnectionTable,
    token_keys: TokenKeys,
    wall_anchor: (Instant, SystemTime),
    /// When the session-ticket keys move to their next period (`None`: no ticket keys).
    ticket_update_at: Option<Instant>,
    reset_limit: RateLimit,
    version_negotiation_limit: RateLimit,
    retry_limit: RateLimit,
    rng: StdRng,
    shutting_down: bool,
    stats: EndpointStats,
    rejection_log: RejectionLog,
    /// Where the connections' wake-ups go (`set_wake_target`).
    wake: WakeTargetSlot,
}

impl Endpoint {
    /// An endpoint; with a server config it accepts connections, without one it only carries
    /// client connections. `now` and `wall_now` anchor the wall clock tokens are stamped with
    /// (the core reads no clock): pass `Instant::now()` and `SystemTime::now()`.
    ///
    /// Fails if `address_validation` is `UnderLoad` at or above `max_handshakes`, or if the
    /// server's transport parameters, with the context's connection-ID length, could not be
    /// encoded for every valid client ([`ConfigErrorKind::TransportParamsTooLarge`]).
    pub fn new(
        config: EndpointConfig,
        server: Option<QuicConfig>,
        ctx: ConnectionContext,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<Self, ConfigError> {
        if let Some(server) = &server {
            check_server_transport_params(server.settings(), ctx.cid_generator.cid_len())?;
        }
        if let AddressValidation::UnderLoad { handshakes } = config.address_validation {
            if handshakes >= config.max_handshakes {
                return Err(ConfigError::new(
                    "address_validation",
                    ConfigErrorKind::OutOfRange {
                        value: handshakes as u64,
                        min: 0,
                        max: config.max_handshakes.saturating_sub(1) as u64,
                    },
                ));
            }
        }
        let mut rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        // Token keys change every hour on their own (see `TokenKeys`); replace them with
        // `token_keys_mut` to share them across hosts.
        let mut master = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rng, &mut master);
        let nonce_seed = config.seed.map(|seed| seed ^ 0x746f6b656e);
        let token_keys =
            TokenKeys::derived_with_seed(master, TokenKeys::DEFAULT_PERIOD, nonce_seed);
        let ticket_update_at = server
            .as_ref()
            .and_then(|s| s.set_ticket_time(wall_now))
            .map(|left| now + left);
        Ok(Endpoint {
            ticket_update_at,
            reset_limit: RateLimit::new(config.stateless_reset_rate),
            version_negotiation_limit: RateLimit::new(config.version_negotiation_rate),
            retry_limit: RateLimit::new(config.retry_rate),
            config,
            server,
            ctx,
            table: ConnectionTable::default(),
            token_keys,
            wall_anchor: (now, wall_now),
            rng,
            shutting_down: false,
            stats: EndpointStats::default(),
            rejection_log: RejectionLog::default(),
            wake: WakeTargetSlot::default(),
        })
    }

    // ---- inputs -------------------------------------------------------------------------

    /// Decides what happens to one datagram. Pass GRO batches split
    /// ([`Datagram::split_segments`]); a coalesced datagram is routed whole by its first
    /// packet. `None` means dropped (counted in metrics).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        mut datagram: Datagram,
    ) -> Option<DatagramEvent> {
        if self.ticket_update_at.is_some_and(|at| now >= at) {
            // Session tickets are sealed inside the connection's receive that follows.
            self.update_ticket_time(now);
        }
        let cid_len = self.ctx.cid_generator.cid_len();
        let header = match PacketHeader::parse(&datagram.payload, cid_len) {
            Ok(h) => h,
            Err(MalformedHeader) => return self.drop(DropReason::Malformed),
        };
        if let Some(handle) = self.table.get(header.dcid) {
            self.stats.routed += 1;
            return Some(DatagramEvent::Connection(handle, datagram));
        }
        let (dcid, scid) = (header.dcid.to_vec(), header.scid.to_vec());
        match header.form {
            HeaderForm::Short => self.unknown_short_header(now, datagram, &dcid),
            HeaderForm::Long { version, .. } => {
                if self.server.is_none() {
                    return self.drop(DropReason::UnknownConnection);
                }
                if !quiche::version_is_supported(version) {
                    // VN packets (version 0) are never answered, and small datagrams get no
                    // answer that could amplify.
                    if version == 0 || datagram.payload.len() < MIN_INITIAL_LEN {
                        return self.drop(DropReason::Malformed);
                    }
                    if !self.version_negotiation_limit.try_take(now) {
                        return self.drop(DropReason::RateLimited);
                    }
                    let t = stateless::version_negotiation(&datagram, &dcid, &scid)?;
                    self.stats.version_negotiations += 1;
                    return Some(self.respond(StatelessKind::VersionNegotiation, t));
                }
                if !header.is_initial() {
                    return self.drop(DropReason::UnexpectedPacketType);
                }
                if datagram.payload.len() < MIN_INITIAL_LEN {
                    return self.drop(DropReason::InitialTooShort);
                }
                let token = match quiche::Header::from_slice(&mut datagram.payload, cid_len) {
                    Ok(h) => h.token.unwrap_or_default(),
                    Err(_) => return self.drop(DropReason::Malformed),
                };
                self.new_initial(now, datagram, dcid, scid, version, token)
            }
        }
    }

    /// Applies a connection's routing change. Call it for every event from
    /// [`Connection::poll_endpoint_event`].
    pub fn handle_event(&mut self, handle: ConnectionKey, event: EndpointEvent) {
        match event {
            EndpointEvent::NewConnectionId(cid) => self.table.add_cid(handle, &cid),
            EndpointEvent::RetiredConnectionId(cid) => self.table.retire_cid(handle, &cid),
            EndpointEvent::Established { peer_reset_token } => {
                self.table.established(handle, peer_reset_token)
            }
            EndpointEvent::Closed => self.table.remove(handle),
        }
    }

    // ---- commands -----------------------------------------------------------------------

    /// Creates the connection for an [`Incoming`] and feeds it the client's Initial.
    pub fn accept<A: Application>(
        &mut self,
        now: Instant,
        incoming: Incoming,
        app: A,
    ) -> Result<(ConnectionKey, Connection<A>), AcceptError> {
        let server = self.server.as_mut().ok_or(AcceptError::NotAServer)?;
        let Incoming {
            datagram,
            scid,
            client_dcid,
            retry,
            ..
        } = incoming;
        let created = Connection::accept(
            now,
            server,
            &scid,
            retry.as_ref(),
            datagram.local,
            datagram.peer,
            self.ctx.clone(),
            app,
        );
        let mut conn = match created {
            Ok(conn) => conn,
            Err(e) => {
                let reason = RejectReason::ConnectionFailed;
                self.reject(now, datagram.peer, reason, Some(&e));
                return Err(AcceptError::Create(e));
            }
        };
        // Until the client hears from us it keeps using the DCID it chose (or our RETRY SCID).
        let handle = self
            .table
            .insert(&[&scid, &client_dcid], Some(datagram.peer.ip()));
        // Before the first packet: a certificate resolver may suspend the handshake inside
        // it, and resumes it through this.
        if let Some(wake) = self.wake.for_key(handle) {
            conn.set_wake(wake);
        }
        conn.handle_datagram(now, datagram);
        Ok((handle, conn))
    }

    /// Declines an [`Incoming`]: its Initial is dropped and counted as
    /// [`RejectReason::Declined`].
    pub fn refuse(&mut self, now: Instant, incoming: Incoming) {
        self.reject(now, incoming.peer(), RejectReason::Declined, None);
        self.drop(DropReason::Rejected);
    }

    /// Creates a client connection routed by this endpoint (many may share one socket).
    pub fn connect<A: Application>(
        &mut self,
        now: Instant,
        config: &mut QuicConfig,
        server_name: Option<&str>,
        local: SocketAddr,
        peer: SocketAddr,
        app: A,
    ) -> Result<(ConnectionKey, Connection<A>), CreateError> {
        let mut conn =
            Connection::connect(now, config, server_name, local, peer, self.ctx.clone(), app)?;
        let cids = conn.source_ids();
        let cids: Vec<&[u8]> = cids.iter().map(|c| c.as_ref()).collect();
        let handle = self.table.insert(&cids, None);
        if let Some(wake) = self.wake.for_key(handle) {
            conn.set_wake(wake);
        }
        Ok((handle, conn))
    }

    /// Where the wake-ups of connections created from now on go: each gets its
    /// [`ConnectionWake`](crate::ConnectionWake) (and its application a copy) before it sees
    /// a packet. A [`Driver`](crate::Driver) sets this from its own target.
    pub fn set_wake_target(&mut self, target: Arc<dyn WakeTarget>) {
        self.wake.set(target);
    }

    /// Mints a NEW_TOKEN-kind token for `peer`, for a client to present on a later connection
    /// (bound to its IP, valid for `token_lifetimes.new_token`).
    pub fn mint_new_token(&mut self, now: Instant, peer: SocketAddr) -> Vec<u8> {
        let issued = self.wall_time(now);
        self.token_keys.seal(&AddressToken {
            kind: TokenKind::NewToken,
            issued,
            address: SocketAddr::new(peer.ip(), 0),
            original_dcid: ConnectionId::default(),
            retry_scid: ConnectionId::default(),
        })
    }

    /// Stops accepting new connections; existing ones continue. Close them when your deadline
    /// passes (see [`crate::Connection::close`]).
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// The token keys, to rotate or replace (share them across sockets and hosts, e.g. with
    /// `*keys = TokenKeys::derived(master, TokenKeys::DEFAULT_PERIOD)`).
    pub fn token_keys_mut(&mut self) -> &mut TokenKeys {
        &mut self.token_keys
    }

    /// Re-anchors the wall clock (after a system clock step).
    pub fn set_wall_clock(&mut self, now: Instant, wall_now: SystemTime) {
        self.wall_anchor = (now, wall_now);
        self.update_ticket_time(now);
    }

    /// Tells the endpoint what the system's wall clock reads at `now`: if it stepped more
    /// than [`WALL_CLOCK_TOLERANCE`] away from the endpoint's own (anchored at creation and
    /// moved by `now`), the endpoint re-anchors, so address tokens and session-ticket keys
    /// follow the system clock (an NTP step after boot, an operator's correction), and
    /// returns true. Runtimes call it now and then, e.g. once a second.
    pub fn handle_wall_clock(&mut self, now: Instant, wall_now: SystemTime) -> bool {
        let ours = self.wall_time(now);
        let drift = match wall_now.duration_since(ours) {
            Ok(ahead) => ahead,
            Err(behind) => behind.duration(),
        };
        if drift <= WALL_CLOCK_TOLERANCE {
            return false;
        }
        self.set_wall_clock(now, wall_now);
        true
    }

    /// The server config, to change knobs for future connections.
    pub fn server_config_mut(&mut self) -> Option<&mut QuicConfig> {
        // The config may be replaced: tell its ticket keys the time on the next datagram.
        self.ticket_update_at = Some(self.wall_anchor.0);
        self.server.as_mut()
    }

    // ---- getters ------------------------------------------------------------------------

    /// True after [`shutdown`](Self::shutdown).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Connections registered.
    pub fn connection_count(&self) -> usize {
        self.table.connections()
    }

    /// Handshakes in progress.
    pub fn handshakes_in_progress(&self) -> usize {
        self.table.handshaking()
    }

    /// CIDs in the routing table.
    pub fn cid_count(&self) -> usize {
        self.table.cids()
    }

    /// True if `handle` names a registered connection.
    pub fn contains(&self, handle: ConnectionKey) -> bool {
        self.table.contains(handle)
    }

    /// What the endpoint did so far.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// The context connections of this endpoint share.
    pub fn context(&self) -> &ConnectionContext {
        &self.ctx
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    // ---- internals ----------------------------------------------------------------------

    /// Moves the session-ticket keys to the period of `now`; notes when the next one begins.
    fn update_ticket_time(&mut self, now: Instant) {
        let wall = self.wall_time(now);
        self.ticket_update_at = self
            .server
            .as_ref()
            .and_then(|s| s.set_ticket_time(wall))
            .map(|left| now + left);
    }

    /// The wall-clock time the endpoint stamps address tokens and picks ticket keys by at
    /// `now`: its anchor moved by monotonic time (see [`handle_wall_clock`](Self::handle_wall_clock)).
    pub fn wall_time(&self, now: Instant) -> SystemTime {
        let (anchor, wall) = self.wall_anchor;
        match now.checked_duration_since(anchor) {
            Some(d) => wall + d,
            None => wall - anchor.duration_since(now),
        }
    }

    fn drop(&mut self, reason: DropReason) -> Option<DatagramEvent> {
        self.stats.dropped += 1;
        self.stats.dropped_by[reason as usize] += 1;
        self.ctx.metrics.datagram_dropped(reason);
        None
    }

    fn reject(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        reason: RejectReason,
        detail: Option<&dyn std::fmt::Display>,
    ) {
        self.stats.rejected[reason as usize] += 1;
        self.ctx.metrics.initial_rejected(reason);
        self.rejection_log.warn(now, peer, reason, detail);
    }

    fn respond(&mut self, kind: StatelessKind, t: Transmit) -> DatagramEvent {
        self.stats.stateless_bytes += t.contents.len() as u64;
        self.ctx.metrics.stateless_sent(kind, t.contents.len());
        DatagramEvent::Respond(t)
    }

    fn unknown_short_header(
        &mut self,
        now: Instant,
        datagram: Datagram,
        dcid: &[u8],
    ) -> Option<DatagramEvent> {
        // A stateless reset from a peer that lost our connection cannot carry our CID: it is
        // recognised by its trailing token.
        if let Some(tail) = datagram
            .payload
            .len()
            .checked_sub(16)
            .map(|at| &datagram.payload[at..])
        {
            let token = u128::from_be_bytes(tail.try_into().unwrap_or([0; 16]));
            if let Some(handle) = self.table.by_reset_token(token) {
                self.stats.routed += 1;
                return Some(DatagramEvent::Connection(handle, datagram));
            }
        }
        if !self.config.stateless_resets || !self.reset_limit.try_take(now) {
            return self.drop(DropReason::UnknownConnection);
        }
        let key = &self.ctx.reset_key;
        match stateless::stateless_reset(key, &datagram, dcid, &mut self.rng) {
            Some(t) => {
                self.stats.stateless_resets += 1;
                Some(self.respond(StatelessKind::Reset, t))
            }
            None => self.drop(DropReason::UnknownConnection),
        }
    }

    fn new_initial(
        &mut self,
        now: Instant,
        datagram: Datagram,
        dcid: Vec<u8>,
        scid: Vec<u8>,
        version: u32,
        token: Vec<u8>,
    ) -> Option<DatagramEvent> {
        if self.shutting_down {
            self.reject(now, datagram.peer, RejectReason::ShuttingDown, None);
            return self.drop(DropReason::ShuttingDown);
        }
        if self.table.connections() >= self.config.max_connections
            || self.table.handshaking() >= self.config.max_handshakes
        {
            self.reject(now, datagram.peer, RejectReason::Backlog, None);
            return self.drop(DropReason::Overloaded);
        }
        let (from_address, from_prefix) = self.table.handshaking_from(datagram.peer.ip());
        if from_address >= self.config.max_handshakes_per_address
            || from_prefix >= self.config.max_handshakes_per_prefix
        {
            self.reject(now, datagram.peer, RejectReason::AddressQuota, None);
            return self.drop(DropReason::Overloaded);
        }
        let mut retry = None;
        let mut validated = false;
        if !token.is_empty() {
            let wall = self.wall_time(now);
            let lifetimes = self.config.token_lifetimes;
            match self.token_keys.open(&token, datagram.peer, wall, lifetimes) {
                Ok(t) if t.kind == TokenKind::Retry && t.retry_scid.as_ref() == dcid.as_slice() => {
                    retry = Some(RetryIds {
                        original_destination_cid: t.original_dcid,
                        retry_source_cid: ConnectionId::from_vec(dcid.clone()),
                    });
                    validated = true;
                }
                Ok(t) if t.kind == TokenKind::NewToken => validated = true,
                outcome => {
                    let reason = match outcome {
                        Err(TokenError::Expired) => RejectReason::ExpiredToken,
                        Err(TokenError::WrongAddress) => RejectReason::WrongAddress,
                        _ => RejectReason::InvalidToken,
                    };
                    self.stats.tokens_rejected += 1;
                    // A bad RETRY token means a forged or replayed Initial: drop it. Any other
                    // token (NEW_TOKEN, unknown) is treated as none (RFC 9000 §8.1.3): counted,
                    // and the client gets a RETRY like a token-less one.
                    if TokenKeys::claimed_kind(&token) == Some(TokenKind::Retry) {
                        self.reject(now, datagram.peer, reason, None);
                        return self.drop(DropReason::Rejected);
                    }
                    self.ctx.metrics.initial_rejected(reason);
                }
            }
        }
        if !validated
            && self
                .config
                .address_validation
                .requires_retry(self.table.handshaking())
        {
            if !self.retry_limit.try_take(now) {
                return self.drop(DropReason::RateLimited);
            }
            let new_scid = self.ctx.cid_generator.generate();
            let sealed = self.token_keys.seal(&AddressToken {
                kind: TokenKind::Retry,
                issued: self.wall_time(now),
                address: datagram.peer,
                original_dcid: ConnectionId::from_vec(dcid.clone()),
                retry_scid: new_scid.clone(),
            });
            let t = stateless::retry(&datagram, &dcid, &scid, &new_scid, &sealed, version)?;
            self.stats.retries += 1;
            return Some(self.respond(StatelessKind::Retry, t));
        }
        self.stats.incoming += 1;
        Some(DatagramEvent::NewConnection(Incoming {
            datagram,
            scid: self.ctx.cid_generator.generate(),
            client_dcid: dcid,
            retry,
            validated,
        }))
    }
}
