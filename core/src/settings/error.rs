//! Configuration errors that name the field at fault.

use std::fmt;
use std::path::PathBuf;

/// A setting that cannot be used, and which one.
#[derive(Debug)]
pub struct ConfigError {
    /// The field of [`QuicSettings`](super::QuicSettings) or [`TlsSettings`](super::TlsSettings)
    /// at fault, e.g. `"initial_max_data"` or `"tls.certificate"`.
    pub field: &'static str,
    /// What is wrong with it.
    pub kind: ConfigErrorKind,
}

/// What is wrong with a setting.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The value must not be zero.
    Zero,
    /// The value is outside the allowed range.
    OutOfRange {
        /// The value given.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// The value must not be empty.
    Empty,
    /// Not a congestion controller quiche knows.
    UnknownCongestionControl(String),
    /// A file could not be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file or buffer is not valid PEM of the expected kind.
    InvalidPem {
        /// The file, when the PEM came from one.
        path: Option<PathBuf>,
        /// BoringSSL's account.
        source: boring::error::ErrorStack,
    },
    /// The private key does not belong to the certificate.
    KeyMismatch(boring::error::ErrorStack),
    /// A server needs a certificate and a key.
    MissingCertificate,
    /// BoringSSL refused the value.
    Tls(boring::error::ErrorStack),
    /// quiche refused the value.
    Quiche(quiche::Error),
    /// A server's transport parameters would not fit quiche's buffer for some valid clients
    /// (see [`ServerTransportParams`](super::ServerTransportParams)).
    TransportParamsTooLarge {
        /// Encoded bytes in the worst case (a 20-byte client DCID, after a RETRY).
        len: usize,
        /// The bytes quiche has.
        capacity: usize,
        /// The length of the endpoint's own connection IDs.
        cid_len: usize,
        /// The largest parameters, with their sizes.
        largest: String,
    },
}

impl ConfigError {
    /// What is wrong with `field` (also for settings read outside the core, such as the
    /// adapters' certificate files).
    pub fn new(field: &'static str, kind: ConfigErrorKind) -> Self {
        ConfigError { field, kind }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting `{}`: ", self.field)?;
        match &self.kind {
            ConfigErrorKind::Zero => write!(f, "must not be zero"),
            ConfigErrorKind::OutOfRange { value, min, max } => {
                write!(f, "{value} is outside {min}..={max}")
            }
            ConfigErrorKind::Empty => write!(f, "must not be empty"),
            ConfigErrorKind::UnknownCongestionControl(name) => write!(
                f,
                "unknown congestion control algorithm {name:?} (expected cubic, reno, bbr, bbr2 or bbr2_gcongestion)"
            ),
            ConfigErrorKind::Unreadable { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigErrorKind::InvalidPem { path, source } => match path {
                Some(p) => write!(f, "{} is not valid PEM: {source}", p.display()),
                None => write!(f, "not valid PEM: {source}"),
            },
            ConfigErrorKind::KeyMismatch(e) => {
                write!(f, "private key does not match the certificate: {e}")
            }
            ConfigErrorKind::MissingCertificate => {
                write!(f, "a server needs a certificate chain and a private key")
            }
            ConfigErrorKind::Tls(e) => write!(f, "TLS: {e}"),
            ConfigErrorKind::Quiche(e) => write!(f, "quiche: {e}"),
            ConfigErrorKind::TransportParamsTooLarge {
                len,
                capacity,
                cid_len,
                largest,
            } => write!(
                f,
                "a client with a 20-byte connection ID could not connect: the server's \
                 transport parameters would take {len} bytes with {cid_len}-byte connection \
                 IDs, and quiche has {capacity}; use shorter connection IDs or smaller values \
                 (largest: {largest})"
            ),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ConfigErrorKind::Unreadable { source, .. } => Some(source),
            ConfigErrorKind::InvalidPem { source, .. } => Some(source),
            ConfigErrorKind::KeyMismatch(e) | ConfigErrorKind::Tls(e) => Some(e),
            ConfigErrorKind::Quiche(e) => Some(e),
            _ => None,
        }
    }
}
