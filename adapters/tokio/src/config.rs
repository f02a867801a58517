//! Server and client configuration: the core's settings cascade plus the socket and worker
//! choices only an adapter makes.

use std::path::PathBuf;
use std::time::SystemTime;

use quicksand_core::{
    CertificateSource, ConnectionParams, EndpointConfig, Hooks, QuicConfig, QuicSettings,
    TlsSettings,
};
use quicksand_h3::Http3Settings;
use quicksand_udp::UdpSocketConfig;

use crate::Error;

/// Transport settings with `h3` as ALPN and the core's defaults otherwise.
pub fn h3_settings() -> QuicSettings {
    QuicSettings {
        alpn: vec![b"h3".to_vec()],
        ..QuicSettings::default()
    }
}

/// How a server listens. [`Default`] serves HTTP/3 on one socket with a self-signed
/// certificate for `localhost`, `127.0.0.1` and `::1` (logged as a warning).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Transport settings (ALPN, windows, congestion control, pacing, qlog directory).
    pub quic: QuicSettings,
    /// Certificate and verification. Without a certificate a self-signed one is generated at
    /// start for [`self_signed_names`](Self::self_signed_names).
    pub tls: TlsSettings,
    /// Adjustments of the TLS context.
    pub hooks: Hooks,
    /// HTTP/3 settings (used by `serve`).
    pub h3: Http3Settings,
    /// Endpoint limits and policies (RETRY, backlog, stateless resets).
    pub endpoint: EndpointConfig,
    /// Socket offloads. `reuse_port` is forced on when `workers > 1`.
    pub socket: UdpSocketConfig,
    /// Sockets bound to the same address with `SO_REUSEPORT`, one endpoint task each; their
    /// connection IDs name the worker so packets that land on the wrong socket are forwarded.
    /// 1 ..= 256. Default: 1. The endpoint's limits and rates (`EndpointConfig`) apply per
    /// worker: `max_connections` 100,000 with 4 workers lets the process hold 400,000.
    pub workers: usize,
    /// Names the self-signed certificate is made for when no certificate is given.
    pub self_signed_names: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            quic: h3_settings(),
            tls: TlsSettings::default(),
            hooks: Hooks::default(),
            h3: Http3Settings::default(),
            endpoint: EndpointConfig::default(),
            socket: UdpSocketConfig::default(),
            workers: 1,
            self_signed_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        }
    }
}

impl ServerConfig {
    /// Uses the certificate chain and key in these PEM files.
    pub fn with_pem_files(mut self, chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.certificate = Some(CertificateSource::PemFiles {
            chain: chain.into(),
            key: key.into(),
        });
        self
    }

    /// The connection params of every worker: the self-signed certificate (if none is set)
    /// and the session ticket key are made once, so all sockets present the same ones.
    pub(crate) fn server_params(&self) -> Result<ConnectionParams, Error> {
        let mut tls = self.tls.clone();
        if tls.certificate.is_none() {
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
        if tls.ticket_key.is_none() {
            let mut key = vec![0u8; 48];
            quicksand_core::boring::rand::rand_bytes(&mut key).map_err(Error::Certificate)?;
            tls.ticket_key = Some(key);
        }
        Ok(ConnectionParams {
            settings: self.quic.clone(),
            tls,
            hooks: self.hooks.clone(),
            session: None,
        })
    }
}

/// How a client connects. [`Default`] speaks HTTP/3 and verifies the server's certificate
/// against the system's roots.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Transport settings.
    pub quic: QuicSettings,
    /// Verification (on by default), trusted roots, client certificate.
    pub tls: TlsSettings,
    /// Adjustments of the TLS context.
    pub hooks: Hooks,
    /// HTTP/3 settings (used by the HTTP/3 helpers).
    pub h3: Http3Settings,
    /// Endpoint settings (a client endpoint accepts no connections).
    pub endpoint: EndpointConfig,
    /// Socket offloads.
    pub socket: UdpSocketConfig,
    /// A TLS session from an earlier connection ([`Connection::session`](crate::Connection::session)):
    /// connections of this client resume it (and send 0-RTT when the server allows).
    pub session: Option<Vec<u8>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            quic: h3_settings(),
            tls: TlsSettings::default(),
            hooks: Hooks::default(),
            h3: Http3Settings::default(),
            endpoint: EndpointConfig::default(),
            socket: UdpSocketConfig::default(),
            session: None,
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
    pub(crate) fn quic_config(&self) -> Result<QuicConfig, Error> {
        let params = ConnectionParams {
            settings: self.quic.clone(),
            tls: self.tls.clone(),
            hooks: self.hooks.clone(),
            session: self.session.clone(),
        };
        Ok(QuicConfig::client(&params)?)
    }
}
