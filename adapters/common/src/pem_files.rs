//! Certificates and trusted roots named by file. The adapters read them when a server or
//! client starts, so the core never opens a file; a file that cannot be read or is not PEM is
//! an error that names it.

use std::path::{Path, PathBuf};

use quicksand_core::boring::pkey::PKey;
use quicksand_core::boring::x509::X509;
use quicksand_core::{CertificateSource, ConfigError, ConfigErrorKind};

/// A certificate chain (leaf first, then intermediates) and its private key in PEM files.
///
/// ```no_run
/// use quicksand_adapter::PemFiles;
///
/// let files = PemFiles::new("/etc/quicksand/chain.pem", "/etc/quicksand/key.pem");
/// // What a server reads at start; read it again to swap a renewed certificate into a
/// // `CertificateStore` while the server runs.
/// let source = files.read("certificate_files")?;
/// # let _ = source; Ok::<(), quicksand_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemFiles {
    /// The chain, leaf first.
    pub chain: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

impl PemFiles {
    /// The chain and key in these files.
    pub fn new(chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        PemFiles {
            chain: chain.into(),
            key: key.into(),
        }
    }

    /// Reads both files and checks that they hold PEM of the right kind; errors name `field`
    /// and the file at fault. (Whether the key belongs to the chain is checked when the TLS
    /// context is built.)
    pub fn read(&self, field: &'static str) -> Result<CertificateSource, ConfigError> {
        let chain = read(field, &self.chain)?;
        let certs = X509::stack_from_pem(&chain).map_err(invalid(field, &self.chain))?;
        if certs.is_empty() {
            return Err(ConfigError::new(field, ConfigErrorKind::Empty));
        }
        let key = read(field, &self.key)?;
        PKey::private_key_from_pem(&key).map_err(invalid(field, &self.key))?;
        Ok(CertificateSource::Pem { chain, key })
    }
}

/// Trusted roots from a PEM file, for `TlsSettings::ca_pem`.
pub(crate) fn read_roots(field: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let pem = read(field, path)?;
    let certs = X509::stack_from_pem(&pem).map_err(invalid(field, path))?;
    if certs.is_empty() {
        return Err(ConfigError::new(field, ConfigErrorKind::Empty));
    }
    Ok(pem)
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| {
        ConfigError::new(
            field,
            ConfigErrorKind::Unreadable {
                path: path.to_path_buf(),
                source,
            },
        )
    })
}

fn invalid<'a>(
    field: &'static str,
    path: &'a Path,
) -> impl FnOnce(quicksand_core::boring::error::ErrorStack) -> ConfigError + 'a {
    move |source| {
        ConfigError::new(
            field,
            ConfigErrorKind::InvalidPem {
                path: Some(path.to_path_buf()),
                source,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_and_garbage_files_are_errors_that_name_the_file() {
        let e = PemFiles::new("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .read("certificate_files")
            .unwrap_err();
        assert_eq!(e.field, "certificate_files");
        assert!(matches!(e.kind, ConfigErrorKind::Unreadable { .. }));
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");

        let dir = std::env::temp_dir().join(format!("quicksand-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (chain, key) = (dir.join("chain.pem"), dir.join("key.pem"));
        let CertificateSource::Pem {
            chain: good_chain,
            key: good_key,
        } = CertificateSource::self_signed(&["localhost"], std::time::SystemTime::now()).unwrap()
        else {
            unreachable!("a self-signed certificate is PEM")
        };
        std::fs::write(&chain, &good_chain).unwrap();
        std::fs::write(&key, b"garbage").unwrap();
        let e = PemFiles::new(&chain, &key)
            .read("certificate_files")
            .unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::InvalidPem { .. }), "{e}");
        assert!(e.to_string().contains("key.pem"), "{e}");

        std::fs::write(&key, &good_key).unwrap();
        let read = PemFiles::new(&chain, &key)
            .read("certificate_files")
            .unwrap();
        assert_eq!(
            read,
            CertificateSource::Pem {
                chain: good_chain.clone(),
                key: good_key
            }
        );
        // A key where certificates belong: no certificate in it.
        let e = read_roots("ca_file", &key).unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::Empty), "{e}");
        assert_eq!(read_roots("ca_file", &chain).unwrap(), good_chain);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
