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

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use boring::pkey::{PKey, Private};
use boring::ssl::SslRef;
use foreign_types::ForeignTypeRef;

use super::tls::{load_pem, tls_err};
use super::{CertificateSource, ConfigError};

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
}

impl Table {
    fn lookup(&self, name: Option<&str>) -> Option<&Arc<Credential>> {
        let found = name.and_then(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.exact.get(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        found.or(self.default.as_ref())
    }

    fn clone_table(&self) -> Table {
        Table {
            exact: self.exact.clone(),
            wildcard: self.wildcard.clone(),
            default: self.default.clone(),
        }
    }
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

    /// Offers the certificate for the ClientHello's name to the handshake; the context's own
    /// certificate, if any, stays the fallback.
    pub(crate) fn select(&self, ssl: &mut SslRef, name: Option<&str>) {
        let table = self.table.load();
        if let Some(cred) = table.lookup(name) {
            // SAFETY: `ssl` is the handshake's SSL, in its ClientHello callback, where adding
            // credentials is allowed; BoringSSL takes its own reference.
            let added = unsafe { boring_sys::SSL_add1_credential(ssl.as_ptr(), cred.0) };
            if added != 1 {
                tracing::warn!(?name, "could not offer the certificate for this name");
            }
        }
    }
}
