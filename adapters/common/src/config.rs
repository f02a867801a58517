//! Server and client configuration, the same for every runtime: the core's settings cascade,
//! the secrets and identities a fleet shares, and the socket and worker choices only an
//! adapter makes.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::logs::FileLogs;
use crate::pem_files::{read_roots, PemFiles};
use quicksand_core::anti_replay::{AntiReplay, SharedStrikeRegister};
use quicksand_core::driver_workers::Workers;
use quicksand_core::{
    CertificateSource, ConnectionContext, ConnectionParams, EndpointConfig, Hooks, Metrics,
    NoopMetrics, QuicConfig, QuicSettings, TlsSettings,
};
use quicksand_udp::UdpSocketConfig;

use crate::{Error, FleetKeys};

/// The transport settings a config starts from: HTTP/3's ALPN with the `h3` feature, none
/// (to be set) without.
fn default_settings() -> QuicSettings {
    #[cfg(feature = "h3")]
    return crate::h3_settings();
    #[cfg(not(feature = "h3"))]
    return QuicSettings::default();
}

/// How a server's connection IDs are made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionIds {
    /// Random 8-byte CIDs; with several workers, QUIC-LB CIDs naming the worker.
    #[default]
    Random,
    /// QUIC-LB plaintext CIDs (draft-ietf-quic-load-balancers) carrying this host's server id,
    /// for a stateless load balancer in front of a fleet. With several workers, the worker's
    /// index follows as one more byte of server id (configure the balancer for
    /// `server_id.len() + 1` bytes and route on the first `server_id.len()`).
    QuicLb {
        /// QUIC-LB config id, 0..=6.
        config_id: u8,
        /// This host's id: 1..=14 bytes with several workers, 1..=15 with one.
        server_id: Vec<u8>,
    },
}

/// UDP sockets bound by someone else (a parent process, a service manager) that a server
/// takes instead of binding its own: one worker each. Clones share them; each server started
/// with them works on duplicates of the descriptors.
///
/// ```no_run
/// # fn run() -> std::io::Result<()> {
/// use quicksand_adapter::PreboundSockets;
/// // Under systemd (`ListenDatagram=443` in the .socket unit):
/// let sockets = PreboundSockets::systemd()?;
/// // Or any bound std socket:
/// let sockets = PreboundSockets::new(vec![std::net::UdpSocket::bind("[::]:443")?]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PreboundSockets(Arc<[std::net::UdpSocket]>);

impl PreboundSockets {
    /// These sockets (at least one; several must share one address, `SO_REUSEPORT`).
    pub fn new(sockets: Vec<std::net::UdpSocket>) -> Self {
        PreboundSockets(sockets.into())
    }

    /// The UDP sockets systemd passed to this process (see
    /// [`quicksand_udp::systemd_sockets`]); `NotFound` when it passed none.
    pub fn systemd() -> io::Result<Self> {
        let sockets = quicksand_udp::systemd_sockets()?;
        if sockets.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no sockets were passed (LISTEN_FDS/LISTEN_PID unset or for another process)",
            ));
        }
        Ok(Self::new(sockets))
    }

    /// Duplicates of the descriptors, for one server.
    pub(crate) fn duplicate(&self) -> io::Result<Vec<std::net::UdpSocket>> {
        self.0.iter().map(std::net::UdpSocket::try_clone).collect()
    }

    /// How many sockets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How a server listens. [`Default`] serves HTTP/3 (with the `h3` feature) on all cores with a self-signed
/// certificate for `localhost`, `127.0.0.1` and `::1` (logged as a warning), random keys and
/// CIDs, and no metrics.
///
/// A fleet (several hosts behind one address, or one host across restarts) shares
/// [`keys`](Self::keys):
///
/// ```no_run
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use quicksand_adapter::{ConnectionIds, FleetKeys, ServerConfig};
/// let config = ServerConfig {
///     keys: Some(FleetKeys::load_or_create("/etc/quicksand/keys")?),
///     connection_ids: ConnectionIds::QuicLb { config_id: 0, server_id: vec![0x2a] },
///     ..ServerConfig::default()
/// }
/// .with_pem_files("/etc/quicksand/chain.pem", "/etc/quicksand/key.pem");
/// # let _ = config; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Transport settings (ALPN, windows, congestion control, pacing).
    pub quic: QuicSettings,
    /// Write a qlog file per connection into this directory. Default: `None`.
    pub qlog_dir: Option<PathBuf>,
    /// Append every connection's TLS secrets in NSS key-log format to this file (for
    /// Wireshark; anyone who reads it can decrypt the traffic). Default: `None`.
    pub keylog_file: Option<PathBuf>,
    /// Certificate and verification. Without a certificate a self-signed one is generated at
    /// start for [`self_signed_names`](Self::self_signed_names). Session-ticket keys come
    /// from [`keys`](Self::keys) unless `tls.ticket_keys` is set.
    pub tls: TlsSettings,
    /// The certificate chain and key in PEM files, read when the server starts (they take
    /// the place of `tls.certificate`). Default: `None`.
    pub certificate_files: Option<PemFiles>,
    /// Roots that client certificates must chain to, in a PEM file read at start (into
    /// `tls.ca_pem`); with `tls.verify_peer`, the server verifies client certificates
    /// against them. Default: `None`.
    pub ca_file: Option<PathBuf>,
    /// Adjustments of the TLS context.
    pub hooks: Hooks,
    /// HTTP/3 settings (used by `serve`).
    #[cfg(feature = "h3")]
    pub h3: quicksand_h3::Http3Settings,
    /// Where `serve`'s handlers run. Default: [`Handlers::Spawned`](crate::Handlers::Spawned).
    #[cfg(feature = "h3")]
    pub handlers: crate::Handlers,
    /// Endpoint limits and policies (RETRY, backlog, stateless resets).
    pub endpoint: EndpointConfig,
    /// Socket offloads. `reuse_port` is forced on when `workers > 1`.
    pub socket: UdpSocketConfig,
    /// Sockets bound to the same address with `SO_REUSEPORT`, one endpoint task each; their
    /// connection IDs name the worker so packets that land on the wrong socket are forwarded.
    /// 1 ..= 256. Default: the machine's available parallelism (at most 256), with
    /// [`kernel_steering`](Self::kernel_steering) so packets reach their worker directly.
    /// The endpoint's limits and rates (`EndpointConfig`) apply per
    /// worker: `max_connections` 100,000 with 4 workers lets the process hold 400,000.
    /// Not used with [`prebound`](Self::prebound) sockets (one worker each).
    pub workers: usize,
    /// Names the self-signed certificate is made for when no certificate is given.
    pub self_signed_names: Vec<String>,
    /// The stateless-reset key and the address-token and session-ticket masters. `None`:
    /// random ones per server, so resets, tokens and resumption work only within this
    /// process. Give every host of a fleet (and the next start of this one) the same.
    pub keys: Option<FleetKeys>,
    /// How connection IDs are made (random, or QUIC-LB with a server id).
    pub connection_ids: ConnectionIds,
    /// Telemetry of the endpoints and connections. Default: none.
    pub metrics: Arc<dyn Metrics>,
    /// Whether 0-RTT data is used at once (see `quicksand_core::anti_replay`). Default: one
    /// strike register shared by the server's workers; give several servers of a host the
    /// same one.
    pub anti_replay: Arc<dyn AntiReplay>,
    /// Transmits due within this much are sent at once with their release time (see
    /// `ConnectionContext::release_horizon`). Default: 1 ms.
    pub release_horizon: Duration,
    /// Sockets to use instead of binding `addr` (e.g. [`PreboundSockets::systemd`]).
    pub prebound: Option<PreboundSockets>,
    /// With several workers, have the kernel deliver each datagram to the socket of the worker
    /// its connection ID names (a BPF program on the `SO_REUSEPORT` group, Linux), so that
    /// forwarding between workers is the rare fallback. Where the kernel refuses, a warning
    /// is logged and forwarding does the work. Default: true.
    pub kernel_steering: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            quic: default_settings(),
            qlog_dir: None,
            keylog_file: None,
            tls: TlsSettings::default(),
            certificate_files: None,
            ca_file: None,
            hooks: Hooks::default(),
            #[cfg(feature = "h3")]
            h3: Default::default(),
            #[cfg(feature = "h3")]
            handlers: Default::default(),
            endpoint: EndpointConfig::default(),
            socket: UdpSocketConfig::default(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(256)),
            self_signed_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            keys: None,
            connection_ids: ConnectionIds::Random,
            metrics: Arc::new(NoopMetrics),
            anti_replay: Arc::new(SharedStrikeRegister::default()),
            release_horizon: ConnectionContext::default().release_horizon,
            prebound: None,
            kernel_steering: true,
        }
    }
}

impl ServerConfig {
    /// Uses the certificate chain and key in these PEM files (read when the server starts).
    pub fn with_pem_files(mut self, chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.certificate_files = Some(PemFiles::new(chain, key));
        self
    }

    /// The keys of this server: the configured ones, or new random ones.
    pub(crate) fn keys_or_random(&self) -> Result<FleetKeys, Error> {
        match &self.keys {
            Some(keys) => Ok(keys.clone()),
            None => FleetKeys::try_generate().map_err(Error::Keys),
        }
    }

    /// The connection params of every worker: the self-signed certificate (if none is set)
    /// is made once, so all sockets present the same one, and the ticket keys come from
    /// `keys`.
    pub(crate) fn server_params(&self, keys: &FleetKeys) -> Result<ConnectionParams, Error> {
        let mut tls = self.tls.clone();
        if let Some(files) = &self.certificate_files {
            tls.certificate = Some(files.read("certificate_files")?);
        }
        if let Some(path) = &self.ca_file {
            tls.ca_pem = Some(read_roots("ca_file", path)?);
        }
        if tls.certificate.is_none() && tls.certificates.is_none() {
            let names: Vec<&str> = self.self_signed_names.iter().map(String::as_str).collect();
            tls.certificate = Some(
                CertificateSource::self_signed(&names, SystemTime::now())
                    .map_err(Error::Certificate)?,
            );
            tracing::warn!(
                names = ?self.self_signed_names,
                "NO CERTIFICATE GIVEN: serving with a SELF-SIGNED certificate generated at \
                 start; clients must skip verification (--insecure). Use --cert/--key in production"
            );
        }
        if tls.ticket_keys.is_none() {
            tls.ticket_keys = Some(keys.ticket_keys());
        }
        Ok(ConnectionParams {
            settings: FileLogs::settings(&self.quic, &self.keylog_file),
            tls,
            hooks: self.hooks.clone(),
            session: None,
        })
    }

    /// The workers' shared identity: keys, CID layout.
    pub(crate) fn workers(&self, count: usize, keys: &FleetKeys) -> Result<Workers, Error> {
        let workers = Workers::with_keys(count, keys.stateless_reset_key(), keys.token_master)
            .map_err(|_| Error::Workers(count))?
            .with_token_period(keys.token_period);
        match &self.connection_ids {
            ConnectionIds::Random => Ok(workers),
            ConnectionIds::QuicLb {
                config_id,
                server_id,
            } => workers
                .with_server_id(*config_id, server_id)
                .map_err(Error::ServerId),
        }
    }

    /// The context the workers' contexts are made from.
    pub(crate) fn base_context(&self) -> ConnectionContext {
        let mut ctx = ConnectionContext::default();
        ctx.metrics = self.metrics.clone();
        ctx.anti_replay = self.anti_replay.clone();
        ctx.release_horizon = self.release_horizon;
        ctx.logs = FileLogs::of(&self.keylog_file, &self.qlog_dir);
        ctx
    }
}

/// How a client connects. [`Default`] speaks HTTP/3 and verifies the server's certificate
/// against the system's roots.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Transport settings.
    pub quic: QuicSettings,
    /// See [`ServerConfig::qlog_dir`]. Default: `None`.
    pub qlog_dir: Option<PathBuf>,
    /// See [`ServerConfig::keylog_file`]. Default: `None`.
    pub keylog_file: Option<PathBuf>,
    /// Verification (on by default), trusted roots, client certificate.
    pub tls: TlsSettings,
    /// Roots the server's certificate must chain to, in a PEM file read when the client is
    /// built (into `tls.ca_pem`). Default: `None` (the system's roots, or `tls.ca_pem`).
    pub ca_file: Option<PathBuf>,
    /// Adjustments of the TLS context.
    pub hooks: Hooks,
    /// HTTP/3 settings (used by the HTTP/3 helpers).
    #[cfg(feature = "h3")]
    pub h3: quicksand_h3::Http3Settings,
    /// Endpoint settings (a client endpoint accepts no connections).
    pub endpoint: EndpointConfig,
    /// Socket offloads.
    pub socket: UdpSocketConfig,
    /// A TLS session from an earlier connection (`Connection::session`): connections of this
    /// client resume it (and send 0-RTT when the server allows).
    pub session: Option<Vec<u8>>,
    /// Telemetry. Default: none.
    pub metrics: Arc<dyn Metrics>,
    /// See [`ServerConfig::release_horizon`]. Default: 1 ms.
    pub release_horizon: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            quic: default_settings(),
            qlog_dir: None,
            keylog_file: None,
            tls: TlsSettings::default(),
            ca_file: None,
            hooks: Hooks::default(),
            #[cfg(feature = "h3")]
            h3: Default::default(),
            endpoint: EndpointConfig::default(),
            socket: UdpSocketConfig::default(),
            session: None,
            metrics: Arc::new(NoopMetrics),
            release_horizon: ConnectionContext::default().release_horizon,
        }
    }
}

impl ClientConfig {
    /// Skips verification of the server's certificate (for self-signed test servers only).
    pub fn insecure(mut self) -> Self {
        self.tls.verify_peer = false;
        self
    }

    /// The core's client config.
    pub fn quic_config(&self) -> Result<QuicConfig, Error> {
        let mut tls = self.tls.clone();
        if let Some(path) = &self.ca_file {
            tls.ca_pem = Some(read_roots("ca_file", path)?);
        }
        let params = ConnectionParams {
            settings: FileLogs::settings(&self.quic, &self.keylog_file),
            tls,
            hooks: self.hooks.clone(),
            session: self.session.clone(),
        };
        Ok(QuicConfig::client(&params)?)
    }

    /// The context of the client's connections.
    pub fn context(&self) -> ConnectionContext {
        let mut ctx = ConnectionContext::default();
        ctx.metrics = self.metrics.clone();
        ctx.release_horizon = self.release_horizon;
        ctx.logs = FileLogs::of(&self.keylog_file, &self.qlog_dir);
        ctx
    }
}
