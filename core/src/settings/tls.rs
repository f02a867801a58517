//! TLS settings and the BoringSSL context they build.

use std::fmt;
use std::sync::Arc;

use boring::pkey::{PKey, Private};
use boring::ssl::{NameType, SslContextBuilder, SslMethod};
use boring::x509::X509;

use super::certs::CertificateStore;
use super::tickets::{TicketClock, TicketKeys};
use super::{ConfigError, ConfigErrorKind};

/// A certificate chain and its private key. The core opens no files: read PEM files yourself,
/// or name them in the adapters' config (`ServerConfig::certificate_files`), which reads them
/// when the server starts.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateSource {
    /// PEM in memory: read from files, fetched from a secrets store, or generated at start.
    Pem {
        /// Leaf certificate first, then intermediates.
        chain: Vec<u8>,
        /// The leaf's private key.
        key: Vec<u8>,
    },
}

impl fmt::Debug for CertificateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never print key material.
            CertificateSource::Pem { chain, .. } => f
                .debug_struct("Pem")
                .field("chain_bytes", &chain.len())
                .finish_non_exhaustive(),
        }
    }
}

/// Certificates and peer verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// Our certificate: required for servers, optional for clients (client auth).
    pub certificate: Option<CertificateSource>,
    /// Verify the peer's certificate. Default: true. Servers verify clients only when set
    /// together with `ca_pem`.
    pub verify_peer: bool,
    /// Trusted roots in PEM (the adapters' `ca_file` reads them from a file); `None` uses the
    /// system's default roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Certificates chosen by the name the client asks for (SNI), replaceable while the
    /// server runs (servers only). With a store, `certificate` may be left out; if set it is
    /// the fallback for names the store does not cover.
    pub certificates: Option<CertificateStore>,
    /// Session-ticket keys of a server, rotating on a schedule shared by every host with the
    /// same master, so they resume each other's sessions; `None` lets BoringSSL pick and
    /// rotate random keys per config (no resumption across configs).
    pub ticket_keys: Option<TicketKeys>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            certificate: None,
            verify_peer: true,
            ca_pem: None,
            ticket_keys: None,
            certificates: None,
        }
    }
}

/// A function that adjusts the TLS context before it is frozen.
pub type SslContextHook =
    Arc<dyn Fn(&mut SslContextBuilder) -> Result<(), boring::error::ErrorStack> + Send + Sync>;

/// User hooks into config building.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Runs on the BoringSSL context after quicksand has applied [`TlsSettings`]: set custom
    /// verification, client-certificate callbacks, curves, and the like. A server hook that
    /// sets a certificate-selection callback replaces the one 0-RTT anti-replay uses; early
    /// data then always waits for the handshake ([`crate::anti_replay`]).
    pub ssl_context: Option<SslContextHook>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("ssl_context", &self.ssl_context.is_some())
            .finish()
    }
}

fn invalid_pem(field: &'static str) -> impl FnOnce(boring::error::ErrorStack) -> ConfigError {
    move |source| ConfigError::new(field, ConfigErrorKind::InvalidPem { path: None, source })
}

pub(super) fn tls_err(
    field: &'static str,
) -> impl FnOnce(boring::error::ErrorStack) -> ConfigError {
    move |e| ConfigError::new(field, ConfigErrorKind::Tls(e))
}

/// Builds the BoringSSL context for one side, and the period clock of its ticket keys.
pub(super) fn build_context(
    tls: &TlsSettings,
    hooks: &Hooks,
    is_server: bool,
    early_data: bool,
) -> Result<(SslContextBuilder, Option<TicketClock>), ConfigError> {
    let mut ctx = SslContextBuilder::new(SslMethod::tls()).map_err(tls_err("tls"))?;
    let store = tls.certificates.clone().filter(|_| is_server);
    if is_server && (early_data || store.is_some()) {
        on_client_hello(&mut ctx, early_data, store);
    }
    let tickets = match &tls.ticket_keys {
        Some(keys) if is_server => Some(TicketClock::install(keys, &mut ctx)),
        _ => None,
    };

    match &tls.certificate {
        Some(source) => load_certificate(&mut ctx, source)?,
        None if is_server && tls.certificates.is_none() => {
            return Err(ConfigError::new(
                "tls.certificate",
                ConfigErrorKind::MissingCertificate,
            ))
        }
        None => {}
    }

    match &tls.ca_pem {
        Some(pem) => {
            let certs = X509::stack_from_pem(pem).map_err(invalid_pem("tls.ca_pem"))?;
            if certs.is_empty() {
                return Err(ConfigError::new("tls.ca_pem", ConfigErrorKind::Empty));
            }
            for cert in certs {
                ctx.cert_store_mut()
                    .add_cert(cert)
                    .map_err(tls_err("tls.ca_pem"))?;
            }
        }
        None => ctx
            .set_default_verify_paths()
            .map_err(tls_err("tls.ca_pem"))?,
    }

    if let Some(hook) = &hooks.ssl_context {
        hook(&mut ctx).map_err(tls_err("hooks.ssl_context"))?;
    }
    Ok((ctx, tickets))
}

/// Installs the server's ClientHello callback: it notes the random for 0-RTT anti-replay and
/// offers the certificate the store holds for the name asked for.
fn on_client_hello(
    ctx: &mut SslContextBuilder,
    note_random: bool,
    store: Option<CertificateStore>,
) {
    ctx.set_select_certificate_callback(move |mut hello| {
        if note_random {
            crate::anti_replay::note_client_hello(&hello);
        }
        match &store {
            Some(store) => {
                let name = hello.servername(NameType::HOST_NAME).map(str::to_owned);
                store.select(hello.ssl_mut(), name.as_deref())
            }
            None => Ok(()),
        }
    });
}

/// The chain (leaf first) and key of `source`, read and checked: the key must be the leaf's.
pub(super) fn load_pem(
    field: &'static str,
    source: &CertificateSource,
) -> Result<(Vec<X509>, PKey<Private>), ConfigError> {
    let CertificateSource::Pem {
        chain: chain_pem,
        key: key_pem,
    } = source;
    let chain = X509::stack_from_pem(chain_pem).map_err(invalid_pem(field))?;
    let leaf = chain
        .first()
        .ok_or_else(|| ConfigError::new(field, ConfigErrorKind::Empty))?;
    let key = PKey::private_key_from_pem(key_pem).map_err(invalid_pem(field))?;
    let matches = leaf
        .public_key()
        .map(|public| public.public_eq(&key))
        .unwrap_or(false);
    if !matches {
        return Err(ConfigError::new(
            field,
            ConfigErrorKind::KeyMismatch(boring::error::ErrorStack::get()),
        ));
    }
    Ok((chain, key))
}

fn load_certificate(
    ctx: &mut SslContextBuilder,
    source: &CertificateSource,
) -> Result<(), ConfigError> {
    let (chain, key) = load_pem("tls.certificate", source)?;
    let mut chain = chain.into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| ConfigError::new("tls.certificate", ConfigErrorKind::Empty))?;
    ctx.set_certificate(&leaf)
        .map_err(tls_err("tls.certificate"))?;
    for intermediate in chain {
        ctx.add_extra_chain_cert(intermediate)
            .map_err(tls_err("tls.certificate"))?;
    }
    ctx.set_private_key(&key)
        .map_err(tls_err("tls.certificate.key"))?;
    ctx.check_private_key()
        .map_err(|e| ConfigError::new("tls.certificate.key", ConfigErrorKind::KeyMismatch(e)))?;
    Ok(())
}
