//! What the quinn peers share: TLS set-up over rustls (ring), the test pattern, URL parsing.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Byte `i` of every `/bytes/N` body.
pub fn pattern_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// rustls's ring provider, limited to ChaCha20-Poly1305 when `chacha_only`.
pub fn provider(chacha_only: bool) -> Arc<CryptoProvider> {
    let mut p = ring::default_provider();
    if chacha_only {
        p.cipher_suites = vec![ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256];
    }
    Arc::new(p)
}

/// A QUIC client config: ALPN h3, early data on, certificate checks off when `insecure`
/// (the test servers use self-signed certificates).
pub fn client_config(insecure: bool, chacha_only: bool) -> Result<quinn::ClientConfig, Error> {
    let provider = provider(chacha_only);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mut tls = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    tls.alpn_protocols = vec![b"h3".to_vec()];
    tls.enable_early_data = true;
    let crypto = quinn::crypto::rustls::QuicClientConfig::with_initial(Arc::new(tls), initial()?)?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

/// A QUIC server config from PEM files: ALPN h3, tickets that allow 0-RTT.
pub fn server_config(
    cert: &Path,
    key: &Path,
    chacha_only: bool,
) -> Result<quinn::ServerConfig, Error> {
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(cert)?))
            .collect::<Result<_, _>>()?;
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut std::io::BufReader::new(std::fs::File::open(key)?))?
            .ok_or("no private key in the key file")?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider(chacha_only))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    tls.alpn_protocols = vec![b"h3".to_vec()];
    tls.max_early_data_size = u32::MAX;
    let crypto = quinn::crypto::rustls::QuicServerConfig::with_initial(Arc::new(tls), initial()?)?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// QUIC's Initial packets always use AES-128-GCM, whatever suites TLS may negotiate.
fn initial() -> Result<rustls::quic::Suite, Error> {
    ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .ok_or_else(|| "no QUIC suite for AES-128-GCM".into())
}

/// `https://host:port/path` → (address, path). `localhost` resolves to 127.0.0.1.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String), Error> {
    let rest = url
        .strip_prefix("https://")
        .ok_or("URL must start with https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let authority = authority.replace("localhost", "127.0.0.1");
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or("URL host does not resolve")?;
    Ok((addr, path))
}

#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
