//! [`Sim`]: a server host and one or more client hosts over a [`Network`], on virtual time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use quicksand_core::driver::AcceptFn;
use quicksand_core::metrics::CountingMetrics;
use quicksand_core::{
    Application, CertificateKey, CertificateSource, ConnectionContext, ConnectionKey,
    ConnectionParams, CreateError, Datagram, Endpoint, EndpointConfig, Incoming, QuicConfig,
    QuicSettings, RandomConnectionIds, StatelessResetKey, TlsSettings, Transmit,
};

use crate::clock::VirtualTime;
use crate::network::{ClientId, Direction, Fate, Network};
use crate::tasks::{Task, Tasks};
use crate::trace::Trace;
use crate::{timers, Host, LinkConfig, SimEvent};

/// The client host's address.
pub const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50_000);
/// The server host's address.
pub const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 443);

/// Everything a simulation is built from.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed of the network's and endpoints' randomness.
    pub seed: u64,
    /// Client → server link.
    pub to_server: LinkConfig,
    /// Server → client link.
    pub to_client: LinkConfig,
    /// Transport settings of both sides.
    pub settings: QuicSettings,
    /// The server endpoint's policies.
    pub server_endpoint: EndpointConfig,
    /// The client endpoint's policies.
    pub client_endpoint: EndpointConfig,
    /// Keep every trace entry as text, so that a divergence can be shown (see
    /// [`assert_same_history`](crate::assert_same_history)). Off by default: it costs a
    /// string per packet.
    pub record_trace: bool,
}

impl SimConfig {
    /// A clean 20 ms RTT network and test settings (ALPN `quicksand-test`, 30 s idle timeout).
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            to_server: LinkConfig::default(),
            to_client: LinkConfig::default(),
            settings: {
                let mut settings = QuicSettings::default();
                settings.alpn = vec![b"quicksand-test".to_vec(), b"h3".to_vec()];
                settings
            },
            server_endpoint: EndpointConfig {
                seed: Some(seed ^ 0x5e),
                ..Default::default()
            },
            client_endpoint: EndpointConfig {
                seed: Some(seed ^ 0xc1),
                ..Default::default()
            },
            record_trace: false,
        }
    }

    /// Both directions set to `link`.
    pub fn with_link(mut self, link: LinkConfig) -> Self {
        self.to_server = link.clone();
        self.to_client = link;
        self
    }
}

/// The server certificate of every simulation in this process: made once so that every run
/// has the same bytes (Ed25519, whose signatures have one size). It is made on a thread of its
/// own so that making it draws nothing from the calling simulation's seeded entropy.
pub fn server_certificate() -> CertificateSource {
    static CERT: OnceLock<CertificateSource> = OnceLock::new();
    CERT.get_or_init(|| {
        std::thread::spawn(|| {
            let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
            CertificateSource::self_signed_with(&["localhost"], epoch, CertificateKey::Ed25519)
                .expect("generating a certificate")
        })
        .join()
        .expect("certificate thread")
    })
    .clone()
}

/// Client and server configs for these settings (the client skips verification).
pub fn configs(settings: &QuicSettings) -> (QuicConfig, QuicConfig) {
    let mut client = ConnectionParams::new(settings.clone());
    client.tls.verify_peer = false;
    // BoringSSL clients do not offer Ed25519 unless asked.
    client.hooks.ssl_context = Some(Arc::new(|ctx| {
        use quicksand_core::boring::ssl::SslSignatureAlgorithm as Alg;
        ctx.set_verify_algorithm_prefs(&[
            Alg::ED25519,
            Alg::ECDSA_SECP256R1_SHA256,
            Alg::RSA_PSS_RSAE_SHA256,
            Alg::RSA_PKCS1_SHA256,
        ])
    }));
    let server = ConnectionParams {
        settings: settings.clone(),
        tls: TlsSettings {
            certificate: Some(server_certificate()),
            ..Default::default()
        },
        ..Default::default()
    };
    (
        QuicConfig::client(&client).expect("client config"),
        QuicConfig::server(&server).expect("server config"),
    )
}

/// A seeded connection context with counting metrics.
pub fn context(seed: u64) -> (ConnectionContext, Arc<CountingMetrics>) {
    let metrics = Arc::new(CountingMetrics::default());
    let mut ctx = ConnectionContext::default();
    ctx.cid_generator = Arc::new(RandomConnectionIds::with_seed(
        quicksand_core::DEFAULT_CID_LEN,
        seed,
    ));
    ctx.reset_key = Arc::new(StatelessResetKey::with_seed(seed));
    ctx.metrics = metrics.clone();
    (ctx, metrics)
}

/// An endpoint made now, on the simulation's clocks.
fn endpoint(
    config: EndpointConfig,
    server: Option<QuicConfig>,
    ctx: ConnectionContext,
) -> Endpoint {
    Endpoint::new(config, server, ctx, Instant::now(), SystemTime::now())
        .expect("the simulator's settings fit quiche's transport parameters")
}

/// The `n`th seed derived from `seed`, for another host or process of one simulation.
pub(crate) fn derived_seed(seed: u64, n: u64) -> u64 {
    seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Sees every datagram put on the wire: `(now, direction, destination, bytes, fate)`.
pub type PacketObserver = Box<dyn FnMut(Instant, Direction, SocketAddr, &[u8], Fate)>;

/// A server host and one or more client hosts over a simulated network, on virtual time.
pub struct Sim<C: Application, S: Application> {
    /// Virtual time; dropped with the simulation.
    pub clock: VirtualTime,
    /// When the simulation started.
    pub start: Instant,
    /// The first client host ([`ClientId::FIRST`]; more: [`add_client`](Self::add_client)).
    pub client: Host<C>,
    /// The server host.
    pub server: Host<S>,
    /// The client's QUIC config (for new connections and sessions).
    pub client_config: QuicConfig,
    /// The network.
    pub net: Network,
    /// What happened so far.
    pub trace: Trace,
    /// The server's metrics.
    pub server_metrics: Arc<CountingMetrics>,
    /// The client hosts' metrics (all of them together).
    pub client_metrics: Arc<CountingMetrics>,
    /// Called for every datagram put on the wire, with its fate.
    pub observer: Option<PacketObserver>,
    pub(crate) config: SimConfig,
    /// Client hosts after the first, `ClientId(1)` onwards.
    pub(crate) more_clients: Vec<Host<C>>,
    /// Per host (first client, server, further clients): events already in the trace.
    traced_events: Vec<usize>,
    /// Scheduled events, in the order they were scheduled (fired earliest first).
    pub(crate) scheduled: Vec<(Instant, SimEvent<S>)>,
    /// While a [`SimEvent::Pause`] lasts: when the hosts run again.
    pub(crate) paused_until: Option<Instant>,
    /// Server restarts so far (each restart without keys draws new ones from the seed).
    pub(crate) restarts: u64,
    /// Client code spawned with [`spawn`](Self::spawn).
    tasks: Tasks,
    /// The table [`sleep`]s register in, on this thread while the simulation lives.
    _timers: timers::Installed,
}

impl<C: Application, S: Application> Sim<C, S> {
    /// Builds the simulation and enters virtual time on this thread. `accept` picks the
    /// application of each incoming connection (or refuses it with `None`).
    pub fn new(
        config: SimConfig,
        accept: impl FnMut(&Incoming) -> Option<S> + Send + 'static,
    ) -> Self {
        let clock = VirtualTime::enter_seeded(config.seed);
        let start = Instant::now();
        let (client_config, server_quic) = configs(&config.settings);
        let (server_ctx, server_metrics) = context(config.seed ^ 0x5e5e);
        let (client_ctx, client_metrics) = context(config.seed ^ 0xc1c1);
        let server_endpoint = endpoint(
            config.server_endpoint.clone(),
            Some(server_quic),
            server_ctx,
        );
        let client_endpoint = endpoint(config.client_endpoint.clone(), None, client_ctx);
        Sim {
            start,
            client: Host::new(CLIENT, client_endpoint, None),
            server: Host::new(SERVER, server_endpoint, Some(Box::new(accept))),
            client_config,
            net: Network::new(
                config.to_server.clone(),
                config.to_client.clone(),
                config.seed,
                start,
            ),
            trace: if config.record_trace {
                Trace::with_log(start)
            } else {
                Trace::new(start)
            },
            server_metrics,
            client_metrics,
            observer: None,
            config,
            clock,
            more_clients: Vec::new(),
            traced_events: vec![0, 0],
            scheduled: Vec::new(),
            paused_until: None,
            restarts: 0,
            tasks: Tasks::default(),
            _timers: timers::install(),
        }
    }

    /// The configuration the simulation was built from.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Opens a connection from the first client host to the server.
    pub fn connect(&mut self, app: C) -> Result<ConnectionKey, CreateError> {
        self.connect_from(ClientId::FIRST, app)
    }

    /// Opens a connection from a client host to the server.
    ///
    /// Panics if `client` is not a host of this simulation.
    pub fn connect_from(&mut self, client: ClientId, app: C) -> Result<ConnectionKey, CreateError> {
        let config = &mut self.client_config;
        let host = match client.0 {
            0 => &mut self.client,
            n => &mut self.more_clients[n - 1],
        };
        host.connect(Instant::now(), config, SERVER, app)
    }

    /// Adds a client host at `addr` (a machine of its own: its own endpoint, connection IDs
    /// and keys from the simulation's seed) with its own links to and from the server; its
    /// metrics count in [`client_metrics`](Self::client_metrics).
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use std::time::Duration;
    /// # use quicksand_core::NoApplication;
    /// # use quicksand_sim::{LinkConfig, LossModel, Sim, SimConfig};
    /// # quicksand_sim::virtual_clock!();
    /// # fn main() {
    /// let mut sim: Sim<NoApplication, NoApplication> =
    ///     Sim::new(SimConfig::new(3), |_| Some(NoApplication));
    /// // A second client far away on a lossy link.
    /// let far = LinkConfig { loss: LossModel::Random(0.1), ..LinkConfig::with_latency(Duration::from_millis(150)) };
    /// let addr: SocketAddr = "10.0.1.1:50000".parse().unwrap();
    /// let b = sim.add_client(addr, far.clone(), far);
    /// let near = sim.connect(NoApplication).unwrap();
    /// let distant = sim.connect_from(b, NoApplication).unwrap();
    /// sim.run_until(Duration::from_secs(10), |s| {
    ///     s.client.is_established(near) && s.client_host(b).is_established(distant)
    /// });
    /// assert_eq!(sim.server.len(), 2);
    /// # }
    /// ```
    pub fn add_client(
        &mut self,
        addr: SocketAddr,
        to_server: LinkConfig,
        to_client: LinkConfig,
    ) -> ClientId {
        let id = self.net.attach(addr, to_server, to_client);
        let n = id.0 as u64;
        let (mut ctx, _) = context(self.config.seed ^ 0xc1c1 ^ (n << 40));
        ctx.metrics = self.client_metrics.clone();
        let mut endpoint_config = self.config.client_endpoint.clone();
        endpoint_config.seed = endpoint_config.seed.map(|seed| derived_seed(seed, n));
        let endpoint = endpoint(endpoint_config, None, ctx);
        self.more_clients.push(Host::new(addr, endpoint, None));
        self.traced_events.push(0);
        id
    }

    /// A client host.
    ///
    /// Panics if `client` is not a host of this simulation.
    pub fn client_host(&self, client: ClientId) -> &Host<C> {
        match client.0 {
            0 => &self.client,
            n => &self.more_clients[n - 1],
        }
    }

    /// A client host, to act on its connections.
    ///
    /// Panics if `client` is not a host of this simulation.
    pub fn client_host_mut(&mut self, client: ClientId) -> &mut Host<C> {
        match client.0 {
            0 => &mut self.client,
            n => &mut self.more_clients[n - 1],
        }
    }

    /// Every client host's id, the first one included.
    pub fn client_ids(&self) -> impl Iterator<Item = ClientId> {
        (0..=self.more_clients.len()).map(ClientId)
    }

    /// Replaces the server with one that has lost all state (a restart) but keeps its static
    /// keys, as a real restart with persisted keys would.
    pub fn restart_server(&mut self, accept: impl FnMut(&Incoming) -> Option<S> + Send + 'static) {
        let (config, ctx) = self.restarted_server(true);
        self.start_server(config, ctx, Box::new(accept));
    }

    /// Replaces the server with a fresh one using `ctx` (e.g. another CID generator).
    pub fn replace_server(
        &mut self,
        ctx: ConnectionContext,
        accept: impl FnMut(&Incoming) -> Option<S> + Send + 'static,
    ) {
        let config = self.server.endpoint().config().clone();
        self.start_server(config, ctx, Box::new(accept));
    }

    pub(crate) fn start_server(
        &mut self,
        endpoint_config: EndpointConfig,
        ctx: ConnectionContext,
        accept: AcceptFn<S>,
    ) {
        let (_, server_quic) = configs(&self.config.settings);
        let endpoint = endpoint(endpoint_config, Some(server_quic), ctx);
        self.server = Host::new(SERVER, endpoint, Some(accept));
        self.traced_events[1] = 0;
    }

    /// Processes everything due now.
    pub fn step(&mut self) {
        let now = Instant::now();
        self.fire_scheduled(now);
        if self.paused_until.is_some_and(|t| t > now) {
            return;
        }
        self.paused_until = None;
        // Sleeping handlers whose time came: their connections run in the polls below.
        timers::fire(now);
        // Client tasks woken (by a response, a sleep, or because they are new) act before
        // the hosts run, so what they send goes out at this instant.
        self.tasks.poll_woken();
        let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
        while let Some(p) = self.net.pop_due(now) {
            self.trace
                .record(now, ("deliver", p.direction, p.bytes.len()));
            match p.direction {
                Direction::ToServer => {
                    if p.to == self.server.addr {
                        self.server
                            .receive(now, Datagram::new(&p.bytes[..], p.from, p.to, now));
                    }
                }
                Direction::ToClient => {
                    // Through the NAT: whatever public address the server used, the client's
                    // socket receives it on its own address.
                    let host = self.client_host_mut(p.client);
                    let d = Datagram::new(&p.bytes[..], p.from, host.addr, now);
                    host.receive(now, d);
                }
            }
        }
        self.server.poll(now, &mut to_client);
        self.client.poll(now, &mut to_server);
        for host in &mut self.more_clients {
            host.poll(now, &mut to_server);
        }
        self.trace_events(now);
        for t in to_client {
            self.transmit(now, Direction::ToClient, t);
        }
        for t in to_server {
            self.transmit(now, Direction::ToServer, t);
        }
    }

    fn transmit(&mut self, now: Instant, direction: Direction, t: Transmit) {
        let depart = t.release_at.map_or(now, |at| at.max(now));
        for d in t.datagrams() {
            let fate = self
                .net
                .send(depart, direction, t.source, t.destination, d.to_vec());
            self.trace.record(now, ("send", direction, d.len(), fate));
            if let Some(observer) = self.observer.as_mut() {
                observer(now, direction, t.destination, d, fate);
            }
        }
    }

    fn trace_events(&mut self, now: Instant) {
        let hosts = [&self.client.events, &self.server.events]
            .into_iter()
            .chain(self.more_clients.iter().map(|h| &h.events));
        for (i, events) in hosts.enumerate() {
            for (_, handle, event) in &events[self.traced_events[i]..] {
                self.trace.record(now, (i, handle.0, format!("{event:?}")));
            }
            self.traced_events[i] = events.len();
        }
    }

    /// The next instant anything is due.
    pub fn next_wakeup(&mut self) -> Option<Instant> {
        let next_event = self.scheduled.iter().map(|(at, _)| *at).min();
        let hosts = [
            self.net.next_arrival(),
            self.client.next_timeout(),
            self.server.next_timeout(),
            timers::next_deadline(),
        ]
        .into_iter()
        .chain(self.more_clients.iter_mut().map(Host::next_timeout))
        .chain(std::iter::once(self.tasks.any_woken().then(Instant::now)))
        .flatten()
        .min()
        // Paused hosts run when the pause ends, whatever came due meanwhile.
        .map(|t| self.paused_until.map_or(t, |p| t.max(p)));
        [next_event, hosts].into_iter().flatten().min()
    }

    /// Runs `future` as client code of the simulation: it is polled at the instant it is
    /// spawned and whenever it is woken (a response arrived, a [`sleep`](crate::sleep)
    /// ended), before the hosts run at that instant. The returned [`Task`] has its output and
    /// the virtual time it finished: per-request results of a run.
    ///
    /// ```ignore
    /// let tasks: Vec<_> = (0..10)
    ///     .map(|i| sim.spawn(client.get(format!("https://localhost/item/{i}"))))
    ///     .collect();
    /// sim.run_until(Duration::from_secs(30), |_| tasks.iter().all(|t| t.is_finished()));
    /// ```
    pub fn spawn<F: std::future::Future + 'static>(&mut self, future: F) -> Task<F::Output> {
        self.tasks.spawn(self.start, future)
    }

    /// Spawned tasks that have not finished.
    pub fn running_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Steps until `done(self)` (true), or `limit` of virtual time passes or nothing is left to
    /// happen (false).
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut spins = 0u32;
        loop {
            self.step();
            if done(self) {
                return true;
            }
            let now = Instant::now();
            let Some(next) = self.next_wakeup() else {
                return false;
            };
            if next > deadline {
                self.clock.advance_to(deadline);
                return false;
            }
            if next <= now {
                spins += 1;
                assert!(
                    spins < 100_000,
                    "no progress at one instant: livelock at {:?}",
                    now - self.start
                );
            } else {
                spins = 0;
                self.clock.advance_to(next);
            }
        }
    }

    /// Runs the simulation until `future` completes (polled once per step, so a client's
    /// requests go out and its answers come in as the hosts run), or `limit` of virtual time
    /// passes or nothing is left to happen (`None`). The way to drive client code:
    /// `let resp = sim.block_on(Duration::from_secs(5), client.get(url))`.
    pub fn block_on<F: std::future::Future>(
        &mut self,
        limit: Duration,
        future: F,
    ) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut output = None;
        self.run_until(limit, |_| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                output = Some(out);
            }
            output.is_some()
        });
        output
    }

    /// Runs for `duration` of virtual time, whatever happens.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(duration, |_| false);
    }
}
