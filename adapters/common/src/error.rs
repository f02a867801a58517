//! The adapters' errors, each with the context a log line needs.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use quicksand_core::{CloseReason, ConfigError, CreateError, QuicLbError};

use crate::KeysError;

/// Everything `listen`, `connect` and the HTTP/3 helpers can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A UDP socket could not be bound.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The socket could not be registered with the runtime's reactor.
    Register(io::Error),
    /// The transport or TLS settings are invalid (names the field).
    Config(ConfigError),
    /// The self-signed certificate could not be generated.
    Certificate(quicksand_core::boring::error::ErrorStack),
    /// The worker count is out of range (1 ..= 256).
    Workers(usize),
    /// The connection could not be created.
    Create(CreateError),
    /// The connection closed before its handshake completed.
    Handshake(CloseReason),
    /// The endpoint's task has ended (runtime shut down, or the endpoint failed).
    EndpointGone,
    /// A URL could not be used (the HTTP/3 helpers).
    #[cfg(feature = "h3")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A host name did not resolve (the HTTP/3 helpers).
    #[cfg(feature = "h3")]
    Resolve {
        /// The host.
        host: String,
        /// Why (`None`: it resolved to no address).
        source: Option<io::Error>,
    },
    /// An HTTP/3 request failed before its response head arrived.
    #[cfg(feature = "h3")]
    Request(quicksand_h3::RequestError),
    /// An HTTP/3 response body failed.
    #[cfg(feature = "h3")]
    Body(quicksand_h3::StreamError),
    /// The fleet keys could not be loaded or made.
    Keys(KeysError),
    /// The QUIC-LB server id cannot be used (`ConnectionIds::QuicLb`).
    ServerId(QuicLbError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind { addr, source } => write!(f, "binding UDP socket {addr}: {source}"),
            Error::Register(e) => write!(f, "registering the socket with the reactor: {e}"),
            Error::Config(e) => write!(f, "invalid configuration: {e}"),
            Error::Certificate(e) => write!(f, "generating a self-signed certificate: {e}"),
            Error::Workers(n) => write!(f, "{n} workers: must be 1 ..= 256"),
            Error::Create(e) => write!(f, "creating the connection: {e}"),
            Error::Handshake(r) => write!(f, "connection closed during the handshake: {r:?}"),
            Error::EndpointGone => f.write_str("the endpoint task has ended"),
            #[cfg(feature = "h3")]
            Error::Url { url, reason } => write!(f, "URL {url:?}: {reason}"),
            #[cfg(feature = "h3")]
            Error::Resolve {
                host,
                source: Some(e),
            } => write!(f, "resolving {host}: {e}"),
            #[cfg(feature = "h3")]
            Error::Resolve { host, source: None } => write!(f, "{host} resolved to no address"),
            #[cfg(feature = "h3")]
            Error::Request(e) => write!(f, "request failed: {e}"),
            #[cfg(feature = "h3")]
            Error::Body(e) => write!(f, "response body failed: {e}"),
            Error::Keys(e) => write!(f, "{e}"),
            Error::ServerId(e) => write!(f, "connection_ids: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
            Error::Register(e) => Some(e),
            Error::Config(e) => Some(e),
            Error::Certificate(e) => Some(e),
            Error::Create(e) => Some(e),
            #[cfg(feature = "h3")]
            Error::Resolve {
                source: Some(e), ..
            } => Some(e),
            #[cfg(feature = "h3")]
            Error::Request(e) => Some(e),
            #[cfg(feature = "h3")]
            Error::Body(e) => Some(e),
            Error::Keys(e) => Some(e),
            Error::ServerId(e) => Some(e),
            _ => None,
        }
    }
}

impl From<KeysError> for Error {
    fn from(e: KeysError) -> Self {
        Error::Keys(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

#[cfg(feature = "h3")]
impl From<quicksand_h3::RequestError> for Error {
    fn from(e: quicksand_h3::RequestError) -> Self {
        Error::Request(e)
    }
}

#[cfg(feature = "h3")]
impl From<quicksand_h3::StreamError> for Error {
    fn from(e: quicksand_h3::StreamError) -> Self {
        Error::Body(e)
    }
}
