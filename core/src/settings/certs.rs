//! Certificates chosen by the name a client asks for (SNI) and replaced while a server runs.
//!
//! A [`CertificateStore`] maps server names (exact, or `*.example.com` for one label) to
//! certificate chains, with an optional default for names it does not hold. A server whose
//! [`TlsSettings::certificates`](super::TlsSettings::certificates) holds a store picks the
//! chain in BoringSSL's ClientHello callback, before anything else of the handshake happens;
//! `TlsSettings::certificate`, if also set, is the last resort. The store is shared by every
//! clone (and every worker and connection built from it): [`insert`](CertificateStore::insert)
//! and [`remove`](CertificateStore::remove) take effect for the next handshake, and connections
//! already established keep the chain they were shown. Lookups take no lock (the table is
//! swapped whole on a change).
//!
//! A [`CertificateResolver`] picks or fetches a certificate during the handshake, for names
//! the store does not hold: the handshake waits (BoringSSL suspends it) until the resolver
//! completes the [`CertificateRequest`] — at once, or later from any thread or task (an
//! ACME client, a secrets service) — and then resumes. The connection's handshake timeout
//! bounds the wait; a request dropped unanswered falls back to the default.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use std::cell::RefCell;
use std::sync::OnceLock;

use arc_swap::ArcSwap;
use boring::ex_data::Index;
use boring::pkey::{PKey, Private};
use boring::ssl::{SelectCertError, Ssl, SslRef};
use foreign_types::ForeignTypeRef;

use super::tls::{load_pem, tls_err};
use super::{CertificateSource, ConfigError};
use crate::ConnectionWake;

/// A certificate chain and its key, ready to hand to a handshake.
struct Credential(*mut boring_sys::SSL_CREDENTIAL);

// SAFETY: an SSL_CREDENTIAL is reference counted and not modified after it is built (BoringSSL
// documents it as safe to share once added); we only read it and up its count.
unsafe impl Send for Credential {}
// SAFETY: as above.
unsafe impl Sync for Credential {}

impl Drop for Credential {
    fn drop(&mut self) {
        // SAFETY: we own one reference, taken in `build`.
        unsafe { boring_sys::SSL_CREDENTIAL_free(self.0) }
    }
}

impl Credential {
    fn build(field: &'static str, source: &CertificateSource) -> Result<Self, ConfigError> {
        let (chain, key) = load_pem(field, source)?;
        // SAFETY: plain BoringSSL calls on objects we own; every pointer passed is valid for
        // the call, and the credential takes its own references to the buffers and the key.
        unsafe {
            let cred = boring_sys::SSL_CREDENTIAL_new_x509();
            if cred.is_null() {
                return Err(tls_err(field)(boring::error::ErrorStack::get()));
            }
            let cred = Credential(cred);
            let mut buffers = Vec::with_capacity(chain.len());
            for cert in &chain {
                let der = cert.to_der().map_err(tls_err(field))?;
                let buf =
                    boring_sys::CRYPTO_BUFFER_new(der.as_ptr(), der.len(), std::ptr::null_mut());
                if buf.is_null() {
                    free_buffers(&buffers);
                    return Err(tls_err(field)(boring::error::ErrorStack::get()));
                }
                buffers.push(buf);
            }
            let chain_ok =
                boring_sys::SSL_CREDENTIAL_set1_cert_chain(cred.0, buffers.as_ptr(), buffers.len())
                    == 1;
            free_buffers(&buffers);
            if !(chain_ok && set_key(&cred, &key)) {
                return Err(tls_err(field)(boring::error::ErrorStack::get()));
            }
            Ok(cred)
        }
    }
}

/// # Safety
/// Each pointer must be a CRYPTO_BUFFER reference the caller owns.
unsafe fn free_buffers(buffers: &[*mut boring_sys::CRYPTO_BUFFER]) {
    for b in buffers {
        // SAFETY: per the function's contract.
        unsafe { boring_sys::CRYPTO_BUFFER_free(*b) };
    }
}

fn set_key(cred: &Credential, key: &PKey<Private>) -> bool {
    use foreign_types::ForeignType;
    // SAFETY: both pointers are valid; the credential takes its own reference to the key.
    unsafe { boring_sys::SSL_CREDENTIAL_set1_private_key(cred.0, key.as_ptr()) == 1 }
}

#[derive(Default)]
struct Table {
    exact: HashMap<String, Arc<Credential>>,
    /// `*.example.com` stored as `example.com`.
    wildcard: HashMap<String, Arc<Credential>>,
    default: Option<Arc<Credential>>,
    resolver: Option<Arc<dyn CertificateResolver>>,
}

impl Table {
    /// The chain for `name` itself (exact or wildcard), not the default.
    fn named(&self, name: Option<&str>) -> Option<&Arc<Credential>> {
        let name = name?.trim_end_matches('.').to_ascii_lowercase();
        self.exact.get(&name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        })
    }

    fn lookup(&self, name: Option<&str>) -> Option<&Arc<Credential>> {
        self.named(name).or(self.default.as_ref())
    }

    fn clone_table(&self) -> Table {
        Table {
            exact: self.exact.clone(),
            wildcard: self.wildcard.clone(),
            default: self.default.clone(),
            resolver: self.resolver.clone(),
        }
    }
}

/// Picks or fetches a certificate during a handshake; see the module docs.
///
/// Implemented for every `Fn(CertificateRequest) + Send + Sync`. Complete the request from
/// wherever the answer comes (another thread, a task of any runtime):
///
/// ```
/// use std::sync::Arc;
/// use std::time::SystemTime;
/// use quicksand_core::{CertificateRequest, CertificateSource, CertificateStore};
/// let store = CertificateStore::new();
/// let cache = store.clone();
/// store.set_resolver(Arc::new(move |request: CertificateRequest| {
///     let cache = cache.clone();
///     std::thread::spawn(move || {
///         // Fetch, issue or look up the chain for the name, then cache and answer.
///         let name = request.server_name().unwrap_or("localhost").to_string();
///         let chain = CertificateSource::self_signed(&[&name], SystemTime::now()).unwrap();
///         let _ = cache.insert(&name, &chain);
///         let _ = request.complete(None); // use what the store now holds
///     });
/// }));
/// ```
pub trait CertificateResolver: Send + Sync + 'static {
    /// A client asked for a name the store holds no certificate for. Answer with
    /// [`CertificateRequest::complete`], now or later.
    fn resolve(&self, request: CertificateRequest);
}

impl<F: Fn(CertificateRequest) + Send + Sync + 'static> CertificateResolver for F {
    fn resolve(&self, request: CertificateRequest) {
        self(request)
    }
}

/// The answer a suspended handshake waits for.
#[derive(Default)]
struct Pending {
    /// `Some(chain)`: use it; `None`: look the name up again (then the default).
    outcome: OnceLock<Option<Arc<Credential>>>,
}

/// A handshake waiting for a certificate; complete it (or drop it: the handshake then gets the
/// default, if there is one).
pub struct CertificateRequest {
    name: Option<String>,
    pending: Arc<Pending>,
    resume: ConnectionWake,
}

impl fmt::Debug for CertificateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateRequest")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CertificateRequest {
    /// The name the client asked for (SNI), if it sent one.
    pub fn server_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Resumes the handshake with `source` for this connection, or with `None` with what the
    /// store holds now (insert into the store first to serve later handshakes of the name
    /// too), falling back to the default. A chain that cannot be used is an error; the
    /// request is then answered with `None`.
    pub fn complete(self, source: Option<&CertificateSource>) -> Result<(), ConfigError> {
        let chain = match source.map(|s| Credential::build("certificates.resolver", s)) {
            Some(Ok(cred)) => Some(Arc::new(cred)),
            Some(Err(e)) => return Err(e),
            None => None,
        };
        let _ = self.pending.outcome.set(chain);
        Ok(())
    }
}

impl Drop for CertificateRequest {
    fn drop(&mut self) {
        // Unanswered: fall back. Then wake the connection, which drives the handshake again.
        let _ = self.pending.outcome.set(None);
        self.resume.wake();
    }
}

thread_local! {
    /// How to wake the server connection whose handshake runs on this thread, set by the
    /// connection around quiche's `recv` and `send`, so that a suspended handshake can be resumed
    /// (BoringSSL's callbacks run synchronously inside it).
    static HANDSHAKING: RefCell<Option<ConnectionWake>> = const { RefCell::new(None) };
}

/// Runs `f` with `resume` as the connection a ClientHello callback may suspend (`None`: the
/// connection has no owner that could be woken, so the handshake cannot suspend).
pub(crate) fn with_handshaking<T>(resume: Option<&ConnectionWake>, f: impl FnOnce() -> T) -> T {
    HANDSHAKING.with_borrow_mut(|h| *h = resume.cloned());
    let out = f();
    HANDSHAKING.with_borrow_mut(|h| *h = None);
    out
}

fn pending_index() -> Index<Ssl, Arc<Pending>> {
    static INDEX: OnceLock<Index<Ssl, Arc<Pending>>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("an SSL ex_data index"))
}

/// Certificates by server name, replaceable at run time; see the module docs.
///
/// ```
/// use std::time::SystemTime;
/// use quicksand_core::{CertificateSource, CertificateStore};
/// let store = CertificateStore::new();
/// let a = CertificateSource::self_signed(&["a.example"], SystemTime::now()).unwrap();
/// store.insert("a.example", &a).unwrap();
/// store.insert("*.example", &a).unwrap();
/// assert!(store.contains("a.example") && store.contains("b.example"));
/// assert!(!store.contains("example"));
/// ```
#[derive(Clone, Default)]
pub struct CertificateStore {
    table: Arc<ArcSwap<Table>>,
}

impl fmt::Debug for CertificateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.table.load();
        f.debug_struct("CertificateStore")
            .field("names", &t.exact.len())
            .field("wildcards", &t.wildcard.len())
            .field("default", &t.default.is_some())
            .finish()
    }
}

impl PartialEq for CertificateStore {
    /// The same store (clones of one another).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.table, &other.table)
    }
}

impl Eq for CertificateStore {}

impl CertificateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `source` to clients asking for `name` (`*.example.com`: any one label under
    /// `example.com`), replacing what the name had. The chain and key are read and checked
    /// now; an unreadable file, bad PEM or a key that does not match the leaf is an error and
    /// leaves the store as it was.
    pub fn insert(&self, name: &str, source: &CertificateSource) -> Result<(), ConfigError> {
        let cred = Arc::new(Credential::build("certificates", source)?);
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.update(|t| match name.strip_prefix("*.") {
            Some(parent) => {
                t.wildcard.insert(parent.to_string(), cred.clone());
            }
            None => {
                t.exact.insert(name.clone(), cred.clone());
            }
        });
        Ok(())
    }

    /// Stops serving `name` (exactly as inserted); true if it was there.
    pub fn remove(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut removed = false;
        self.update(|t| {
            removed = match name.strip_prefix("*.") {
                Some(parent) => t.wildcard.remove(parent).is_some(),
                None => t.exact.remove(&name).is_some(),
            };
        });
        removed
    }

    /// Serves `source` to clients whose name (or lack of one) matches nothing else.
    pub fn set_default(&self, source: &CertificateSource) -> Result<(), ConfigError> {
        let cred = Arc::new(Credential::build("certificates.default", source)?);
        self.update(|t| t.default = Some(cred.clone()));
        Ok(())
    }

    /// Asks `resolver` for names the store holds no chain for (before the default); see
    /// [`CertificateResolver`].
    pub fn set_resolver(&self, resolver: Arc<dyn CertificateResolver>) {
        self.update(|t| t.resolver = Some(resolver.clone()));
    }

    /// True if a client asking for `name` gets a certificate from the store (the default
    /// included).
    pub fn contains(&self, name: &str) -> bool {
        self.table.load().lookup(Some(name)).is_some()
    }

    fn update(&self, mut change: impl FnMut(&mut Table)) {
        self.table.rcu(|old| {
            let mut t = old.clone_table();
            change(&mut t);
            t
        });
    }

    /// Offers the certificate for the ClientHello's name to the handshake (the context's own
    /// certificate, if any, stays the fallback), or suspends the handshake while the resolver
    /// works (`Err(RETRY)`; BoringSSL calls again when the connection drives it next).
    pub(crate) fn select(
        &self,
        ssl: &mut SslRef,
        name: Option<&str>,
    ) -> Result<(), SelectCertError> {
        let table = self.table.load();
        let pending = match ssl.ex_data(pending_index()) {
            Some(pending) => Some(pending.clone()),
            None => match (&table.resolver, table.named(name)) {
                (Some(resolver), None) => match HANDSHAKING.with_borrow(Clone::clone) {
                    Some(resume) => {
                        let pending = Arc::new(Pending::default());
                        ssl.set_ex_data(pending_index(), pending.clone());
                        resolver.resolve(CertificateRequest {
                            name: name.map(str::to_owned),
                            pending: pending.clone(),
                            resume,
                        });
                        Some(pending)
                    }
                    // Not inside a connection's recv or send, or one nobody can wake: nothing could
                    // resume it.
                    None => None,
                },
                _ => None,
            },
        };
        let chosen = match pending.as_ref().map(|p| p.outcome.get()) {
            Some(None) => return Err(SelectCertError::RETRY),
            Some(Some(Some(chain))) => Some(chain.clone()),
            Some(Some(None)) | None => self.table.load().lookup(name).cloned(),
        };
        if let Some(cred) = chosen {
            // SAFETY: `ssl` is the handshake's SSL, in its ClientHello callback, where adding
            // credentials is allowed; BoringSSL takes its own reference.
            let added = unsafe { boring_sys::SSL_add1_credential(ssl.as_ptr(), cred.0) };
            if added != 1 {
                tracing::warn!(?name, "could not offer the certificate for this name");
            }
        }
        Ok(())
    }
}
