//! The settings cascade: [`ConnectionParams`] → [`QuicConfig`] (a built `quiche::Config`).
//!
//! [`QuicSettings`] holds every transport knob with the default a user of tokio-quiche or quinn
//! would expect; [`TlsSettings`] holds certificates and verification; [`Hooks`] lets a user
//! adjust the BoringSSL context before it is frozen. [`QuicConfig::client`] and
//! [`QuicConfig::server`] validate everything and say which field is wrong.
//!
//! ```
//! use quicksand_core::{ConnectionParams, QuicConfig, QuicSettings};
//! let mut settings = QuicSettings::default();
//! settings.alpn = vec![b"h3".to_vec()];
//! settings.cc_algorithm = "vegas".into(); // not a congestion controller quiche knows
//! let err = QuicConfig::client(&ConnectionParams::new(settings)).unwrap_err();
//! assert_eq!(err.field, "cc_algorithm");
//! ```

mod build;
mod certs;
mod error;
mod selfsigned;
mod tickets;
mod tls;
mod transport_params;

pub use build::QuicConfig;
pub(crate) use certs::with_handshaking;
pub use certs::{CertificateRequest, CertificateResolver, CertificateStore};
pub use error::{ConfigError, ConfigErrorKind};
pub use selfsigned::CertificateKey;
pub use tickets::TicketKeys;
pub use tls::{CertificateSource, Hooks, TlsSettings};
pub(crate) use transport_params::check_server as check_server_transport_params;
pub use transport_params::{ServerTransportParams, QUICHE_TRANSPORT_PARAMS_CAPACITY};

use std::time::Duration;

/// Transport settings of a connection. Every field has a documented default.
///
/// Built from [`Default`] and changed field by field (it may gain fields):
///
/// ```
/// let mut settings = quicksand_core::QuicSettings::default();
/// settings.alpn = vec![b"h3".to_vec()];
/// settings.initial_max_streams_bidi = 1000;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct QuicSettings {
    /// ALPN protocols, most preferred first. Default: empty (must be set; `h3` for HTTP/3).
    pub alpn: Vec<Vec<u8>>,
    /// Connection-level flow-control window granted at start (at most 2^30 − 1, like every
    /// window and stream count below, so the transport parameters fit; see
    /// [`ServerTransportParams`]). Default: 10 MiB.
    pub initial_max_data: u64,
    /// Per-stream window for bidirectional streams we open. Default: 1 MiB.
    pub initial_max_stream_data_bidi_local: u64,
    /// Per-stream window for bidirectional streams the peer opens. Default: 1 MiB.
    pub initial_max_stream_data_bidi_remote: u64,
    /// Per-stream window for unidirectional streams. Default: 1 MiB.
    pub initial_max_stream_data_uni: u64,
    /// Bidirectional streams the peer may open. Default: 100.
    pub initial_max_streams_bidi: u64,
    /// Unidirectional streams the peer may open. Default: 100.
    pub initial_max_streams_uni: u64,
    /// Upper bound of the auto-tuned connection window. Default: 24 MiB.
    pub max_connection_window: u64,
    /// Upper bound of the auto-tuned stream window. Default: 16 MiB.
    pub max_stream_window: u64,
    /// Idle timeout advertised to the peer (below 2^30 ms); `None` disables it. Default: 30 s.
    pub max_idle_timeout: Option<Duration>,
    /// Close the connection if the handshake has not completed by then; `None` waits for the
    /// idle timeout alone. Default: 10 s.
    pub handshake_timeout: Option<Duration>,
    /// Enable QUIC DATAGRAM frames (RFC 9221). Default: false.
    pub enable_dgram: bool,
    /// Received DATAGRAMs queued before the oldest is dropped. Default: 1024.
    pub dgram_recv_max_queue_len: usize,
    /// DATAGRAMs queued for sending before new ones are refused. Default: 1024.
    pub dgram_send_max_queue_len: usize,
    /// Accept (server) or send (client) 0-RTT early data. Default: false.
    pub enable_early_data: bool,
    /// Tell the peer not to migrate actively (NAT rebinding still works). Default: false.
    pub disable_active_migration: bool,
    /// Connection IDs of the peer's we keep at once (2 ..= 16,383). Default: 4.
    pub active_connection_id_limit: u64,
    /// Largest UDP payload we accept. Default: 65527.
    pub max_recv_udp_payload_size: usize,
    /// Largest UDP payload we send (1200 ..= 65527). Default: 1350.
    pub max_send_udp_payload_size: usize,
    /// Congestion controller: `cubic`, `reno`, `bbr`, `bbr2` or `bbr2_gcongestion`. Default: `cubic`.
    pub cc_algorithm: String,
    /// Initial congestion window in packets. Default: 10.
    pub initial_congestion_window_packets: usize,
    /// HyStart++ slow-start exit. Default: true.
    pub enable_hystart: bool,
    /// Pacing (release times on packets). Default: true.
    pub enable_pacing: bool,
    /// Pacing rate ceiling in bytes per second; `None` for no ceiling. Default: `None`.
    pub max_pacing_rate: Option<u64>,
    /// Path MTU discovery (RFC 8899): packets start at 1,200 bytes and grow to
    /// `max_send_udp_payload_size` once a probe of that size is acknowledged. Default: true.
    /// Without it, every packet is `max_send_udp_payload_size` bytes from the handshake on,
    /// and on a path whose MTU is smaller (tunnels, some mobile networks) all full-size
    /// packets vanish while small ones (ACKs, pings) keep the connection alive: it hangs
    /// without ever timing out. quinn probes by default too.
    pub discover_pmtu: bool,
    /// PMTUD probes before a size is given up. Default: 3.
    pub pmtud_max_probes: u8,
    /// Bytes sent to an unvalidated address per byte received (RFC 9000 §8). Default: 3.
    pub max_amplification_factor: usize,
    /// ACK delay exponent (0 ..= 20). Default: 3.
    pub ack_delay_exponent: u64,
    /// Maximum ACK delay advertised (below 2^14 ms). Default: 25 ms.
    pub max_ack_delay: Duration,
    /// Initial RTT estimate before a sample. Default: 333 ms (RFC 9002).
    pub initial_rtt: Duration,
    /// Send GREASE values. Default: true.
    pub grease: bool,
    /// Hand the TLS secrets of each connection to the context's
    /// [`ConnectionLogs`](crate::ConnectionLogs) (NSS key-log format, for Wireshark); the
    /// adapters set it with their configs' `keylog_file`. Default: false.
    pub log_keys: bool,
    /// DSCP value for outgoing packets (0 ..= 63). Default: 0.
    pub dscp: u8,
}

impl Default for QuicSettings {
    fn default() -> Self {
        QuicSettings {
            alpn: Vec::new(),
            initial_max_data: 10 << 20,
            initial_max_stream_data_bidi_local: 1 << 20,
            initial_max_stream_data_bidi_remote: 1 << 20,
            initial_max_stream_data_uni: 1 << 20,
            initial_max_streams_bidi: 100,
            initial_max_streams_uni: 100,
            max_connection_window: 24 << 20,
            max_stream_window: 16 << 20,
            max_idle_timeout: Some(Duration::from_secs(30)),
            handshake_timeout: Some(Duration::from_secs(10)),
            enable_dgram: false,
            dgram_recv_max_queue_len: 1024,
            dgram_send_max_queue_len: 1024,
            enable_early_data: false,
            disable_active_migration: false,
            active_connection_id_limit: 4,
            max_recv_udp_payload_size: 65_527,
            max_send_udp_payload_size: 1350,
            cc_algorithm: "cubic".to_string(),
            initial_congestion_window_packets: 10,
            enable_hystart: true,
            enable_pacing: true,
            max_pacing_rate: None,
            discover_pmtu: true,
            pmtud_max_probes: 3,
            max_amplification_factor: 3,
            ack_delay_exponent: 3,
            max_ack_delay: Duration::from_millis(25),
            initial_rtt: Duration::from_millis(333),
            grease: true,
            log_keys: false,
            dscp: 0,
        }
    }
}

/// Everything needed to configure one side of a connection.
#[derive(Clone, Debug, Default)]
pub struct ConnectionParams {
    /// Transport settings.
    pub settings: QuicSettings,
    /// Certificates and verification.
    pub tls: TlsSettings,
    /// Customisation of the TLS context.
    pub hooks: Hooks,
    /// A TLS session from an earlier connection (`Connection::session`), for resumption and
    /// 0-RTT on a client. Ignored by servers.
    pub session: Option<Vec<u8>>,
}

impl ConnectionParams {
    /// Params with these settings and default TLS (no certificate, verification on).
    pub fn new(settings: QuicSettings) -> Self {
        ConnectionParams {
            settings,
            ..Default::default()
        }
    }
}
