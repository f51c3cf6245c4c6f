//! Making X.509 certificates: how sidekiq-guard issues its own CA and serving certificates with
//! rcgen, and checks a key against its certificate. Reading them (names, validity, issuer) is
//! the core's [`sidekiq_guard::x509`], which `kubectl sidekiq check` shares; its items are
//! re-exported here for the server, `certs generate` and `certs install`.
//!
//! Keys are ECDSA P-256: small, fast to sign with, and accepted by the API server's Go TLS stack.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sidekiq_guard::x509;
use time::OffsetDateTime;

/// Certificates are back-dated by this much so that a node whose clock is slightly behind
/// does not reject a certificate issued a moment ago.
const BACKDATE: Duration = Duration::from_secs(3600);

/// A certificate or key that cannot be used. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A certificate that cannot be read.
    #[error(transparent)]
    Certificate(#[from] x509::X509Error),
    /// rcgen refused to build or sign a certificate, or to read a key.
    #[error("{what}")]
    Rcgen {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
}

pub use sidekiq_guard::install::service_dns_names;
pub use sidekiq_guard::x509::{CertInfo, signed_by, unix};

/// Every certificate in a PEM document, in order (leaf first for a chain).
pub fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    Ok(x509::pem_certificates(pem, what)?
        .into_iter()
        .map(CertificateDer::from)
        .collect())
}

/// Reads one DER certificate.
pub fn inspect(der: &[u8], what: &str) -> Result<CertInfo, PkiError> {
    Ok(x509::inspect(der, what)?)
}

/// Reads the first certificate of a PEM document.
pub fn inspect_pem(pem: &[u8], what: &str) -> Result<CertInfo, PkiError> {
    let certs = certificates(pem, what)?;
    inspect(&certs[0], what)
}

/// Why a PEM document gives no private key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Encrypted with a passphrase, which nothing running unattended can supply.
    Encrypted,
    /// No PEM private key (PKCS#8, PKCS#1 or SEC1) at all.
    Missing,
}

/// The private key of a PEM document.
pub fn read_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, KeyError> {
    let pem = pem.strip_prefix(x509::UTF8_BOM).unwrap_or(pem);
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        // PKCS#8 `ENCRYPTED PRIVATE KEY`, or OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` header.
        let text = String::from_utf8_lossy(pem);
        if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("4,ENCRYPTED") {
            KeyError::Encrypted
        } else {
            KeyError::Missing
        }
    })
}

/// The algorithm of `key` when it is one rustls (with ring) cannot sign with, though OpenSSL
/// and cert-manager make such keys: found by the curve's or algorithm's object identifier in
/// the key's DER (PKCS#8 names it in the algorithm, SEC1 in the parameters).
pub fn unsupported_algorithm(key: &PrivateKeyDer<'_>) -> Option<&'static str> {
    const UNSUPPORTED: [(&[u8], &str); 3] = [
        // secp521r1, 1.3.132.0.35
        (&[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23], "ECDSA P-521"),
        // secp256k1, 1.3.132.0.10
        (
            &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x0A],
            "ECDSA secp256k1",
        ),
        // Ed448, 1.3.101.113
        (&[0x06, 0x03, 0x2B, 0x65, 0x71], "Ed448"),
    ];
    let der = key.secret_der();
    UNSUPPORTED
        .iter()
        .find(|(oid, _)| der.windows(oid.len()).any(|window| window == *oid))
        .map(|(_, name)| *name)
}

/// Whether `key_pem` holds the private key of the certificate `cert_der` (`Ok(false)` for
/// another key, or one rustls cannot use).
pub fn key_matches(cert_der: &[u8], key_pem: &[u8]) -> Result<bool, KeyError> {
    let key = read_key(key_pem)?;
    let cert = rustls::pki_types::CertificateDer::from(cert_der.to_vec());
    let provider = rustls::crypto::ring::default_provider();
    // The check the admission port makes before serving a pair (`tls`): rustls' own.
    Ok(
        rustls::sign::CertifiedKey::from_der(vec![cert], key, &provider)
            .is_ok_and(|certified| certified.keys_match().is_ok()),
    )
}

/// PEM text of one DER certificate.
pub fn pem_encode(der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(encoded.len() + encoded.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// A certificate with its private key, both PEM.
#[derive(Clone)]
pub struct KeyedCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8). Never logged.
    pub key_pem: String,
}

impl std::fmt::Debug for KeyedCert {
    // The key must not end up in logs or error messages through a `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Makes a self-signed CA valid for `validity` from `now`.
pub fn new_ca(
    common_name: &str,
    now: SystemTime,
    validity: Duration,
) -> Result<KeyedCert, PkiError> {
    let key = KeyPair::generate().map_err(rcgen_err("cannot generate the CA key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    // Path length 0: this CA signs serving certificates only, never other CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, now, validity);
    let cert = params
        .self_signed(&key)
        .map_err(rcgen_err("cannot self-sign the CA certificate"))?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a serving certificate for `dns_names` signed by `ca`.
pub fn issue_serving(
    ca: &KeyedCert,
    dns_names: &[String],
    now: SystemTime,
    validity: Duration,
) -> Result<KeyedCert, PkiError> {
    let ca_key =
        KeyPair::from_pem(&ca.key_pem).map_err(rcgen_err("cannot read the CA private key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)
        .map_err(rcgen_err("cannot read the CA certificate"))?;
    let key = KeyPair::generate().map_err(rcgen_err("cannot generate the serving key"))?;
    let mut params = CertificateParams::new(dns_names.to_vec())
        .map_err(rcgen_err("invalid DNS name for the serving certificate"))?;
    params.distinguished_name = name(dns_names.last().map_or("sidekiq-guard", String::as_str));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now, validity);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(rcgen_err("cannot sign the serving certificate"))?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams, now: SystemTime, validity: Duration) {
    let now = OffsetDateTime::from(now);
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    params.serial_number = Some(random_serial());
}

/// 16 random bytes with the top bit clear: a positive serial that no two certificates share.
fn random_serial() -> SerialNumber {
    use rustls::crypto::ring::default_provider;
    let mut bytes = [0u8; 16];
    // The system RNG failing is not recoverable for key generation either; a zero serial
    // would still be a valid (if less unique) certificate, so do not fail here.
    let _ = default_provider().secure_random.fill(&mut bytes);
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn rcgen_err(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |source| PkiError::Rcgen {
        what: what.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_serving_certificate_names_the_service_and_chains_to_its_ca() {
        let now = SystemTime::now();
        let ca = new_ca("test CA", now, Duration::from_secs(86400 * 3650)).unwrap();
        let names = service_dns_names("sidekiq-guard", "ops");
        let leaf = issue_serving(&ca, &names, now, Duration::from_secs(86400 * 365)).unwrap();
        let info = inspect_pem(leaf.cert_pem.as_bytes(), "leaf").unwrap();
        assert_eq!(
            info.dns_names,
            [
                "sidekiq-guard",
                "sidekiq-guard.ops",
                "sidekiq-guard.ops.svc"
            ]
        );
        assert_eq!(info.common_name, "sidekiq-guard.ops.svc");
        assert!(!info.is_ca);
        assert!(info.valid_for(now, Duration::from_secs(86400 * 364)));
        assert!(!info.valid_for(now, Duration::from_secs(86400 * 366)));
        let ca_info = inspect_pem(ca.cert_pem.as_bytes(), "ca").unwrap();
        assert!(ca_info.is_ca);
        let leaf_der = certificates(leaf.cert_pem.as_bytes(), "leaf").unwrap();
        let ca_der = certificates(ca.cert_pem.as_bytes(), "ca").unwrap();
        assert!(signed_by(&leaf_der[0], &ca_der[0]));
        let other = new_ca("other", now, Duration::from_secs(86400)).unwrap();
        let other_der = certificates(other.cert_pem.as_bytes(), "other").unwrap();
        assert!(!signed_by(&leaf_der[0], &other_der[0]));
        assert!(!format!("{leaf:?}").contains("PRIVATE KEY"));
        assert_eq!(key_matches(&leaf_der[0], leaf.key_pem.as_bytes()), Ok(true));
        assert_eq!(key_matches(&leaf_der[0], ca.key_pem.as_bytes()), Ok(false));
        assert_eq!(
            key_matches(&leaf_der[0], b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"),
            Err(KeyError::Encrypted)
        );
        assert_eq!(key_matches(&leaf_der[0], b"no key"), Err(KeyError::Missing));
        assert_eq!(pem_encode(&ca_der[0]), ca.cert_pem.replace("\r\n", "\n"));
    }

    #[test]
    fn garbage_is_reported_without_panicking() {
        assert_eq!(
            certificates(b"hello", "tls.crt").unwrap_err().to_string(),
            "tls.crt holds no PEM CERTIFICATE block"
        );
        let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = inspect_pem(bad.as_bytes(), "tls.crt")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("tls.crt holds a certificate that cannot be parsed"),
            "{err}"
        );
    }
}
