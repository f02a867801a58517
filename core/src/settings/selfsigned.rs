//! Self-signed certificates for demos and tests, made with BoringSSL.

use std::time::{SystemTime, UNIX_EPOCH};

use boring::asn1::{Asn1Integer, Asn1Time};
use boring::bn::BigNum;
use boring::ec::{EcGroup, EcKey};
use boring::hash::MessageDigest;
use boring::nid::Nid;
use boring::pkey::{Id, PKey, Private};
use boring::x509::extension::SubjectAlternativeName;
use boring::x509::{X509NameBuilder, X509};

use super::CertificateSource;

/// The key type of a generated certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CertificateKey {
    /// ECDSA on P-256: accepted everywhere.
    #[default]
    EcdsaP256,
    /// Ed25519: fixed-size signatures, so handshakes have the same size every time (what the
    /// simulator uses for reproducible traces).
    Ed25519,
}

impl CertificateSource {
    /// A fresh P-256 key and a self-signed certificate for `names` (DNS names or IP
    /// addresses), valid from a day before `now` for a year. Clients must skip verification
    /// or trust this certificate explicitly.
    ///
    /// `now` is an argument because the core never reads a clock.
    ///
    /// ```
    /// # use quicksand_core::CertificateSource;
    /// let cert = CertificateSource::self_signed(&["localhost"], std::time::SystemTime::UNIX_EPOCH).unwrap();
    /// assert!(matches!(cert, CertificateSource::Pem { .. }));
    /// ```
    pub fn self_signed(
        names: &[&str],
        now: SystemTime,
    ) -> Result<CertificateSource, boring::error::ErrorStack> {
        Self::self_signed_with(names, now, CertificateKey::EcdsaP256)
    }

    /// A self-signed certificate as [`self_signed`](Self::self_signed), with a chosen key type.
    pub fn self_signed_with(
        names: &[&str],
        now: SystemTime,
        key_type: CertificateKey,
    ) -> Result<CertificateSource, boring::error::ErrorStack> {
        let (key, digest): (PKey<Private>, MessageDigest) = match key_type {
            CertificateKey::EcdsaP256 => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
                (
                    PKey::from_ec_key(EcKey::generate(&group)?)?,
                    MessageDigest::sha256(),
                )
            }
            CertificateKey::Ed25519 => {
                // SAFETY: a null EVP_MD is how BoringSSL's X509_sign is told to use a key
                // type with a built-in digest (Ed25519); the pointer is never dereferenced.
                let none = unsafe { MessageDigest::from_ptr(std::ptr::null()) };
                (PKey::generate(Id::ED25519)?, none)
            }
        };

        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(
            Nid::COMMONNAME,
            names.first().copied().unwrap_or("quicksand"),
        )?;
        let name = name.build();

        let mut serial = BigNum::new()?;
        serial.rand(64, boring::bn::MsbOption::MAYBE_ZERO, false)?;

        let unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
        let mut builder = X509::builder()?;
        builder.set_version(2)?;
        let serial = Asn1Integer::from_bn(&serial)?;
        builder.set_serial_number(&serial)?;
        builder.set_subject_name(&name)?;
        builder.set_issuer_name(&name)?;
        let not_before = Asn1Time::from_unix((unix - 86_400).max(0))?;
        let not_after = Asn1Time::from_unix(unix + 365 * 86_400)?;
        builder.set_not_before(&not_before)?;
        builder.set_not_after(&not_after)?;
        builder.set_pubkey(&key)?;
        let mut san = SubjectAlternativeName::new();
        for n in names {
            if n.parse::<std::net::IpAddr>().is_ok() {
                san.ip(n);
            } else {
                san.dns(n);
            }
        }
        let san = san.build(&builder.x509v3_context(None, None))?;
        builder.append_extension(&san)?;
        builder.sign(&key, digest)?;
        let cert = builder.build();

        Ok(CertificateSource::Pem {
            chain: cert.to_pem()?,
            key: key.private_key_to_pem_pkcs8()?,
        })
    }
}
