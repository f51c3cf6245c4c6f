//! Reading X.509 certificates: the names, validity and issuer of the webhook's serving
//! certificate, as the webhook (serving, `certs install`) and `kubectl sidekiq check` both read
//! them. Behind the `x509` feature: the wasm policy needs none of it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

/// A certificate that cannot be read. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    /// No `CERTIFICATE` block.
    #[error("{what} holds no PEM CERTIFICATE block")]
    NoCertificate {
        /// Which input, e.g. `Secret shop/tls key tls.crt`.
        what: String,
    },
    /// A PEM block that does not decode.
    #[error("{what} is not valid PEM")]
    Pem {
        /// Which input.
        what: String,
        /// Why.
        #[source]
        source: x509_parser::error::PEMError,
    },
    /// DER that is not an X.509 certificate.
    #[error("{what} holds a certificate that cannot be parsed: {message}")]
    Parse {
        /// Which input.
        what: String,
        /// The parser's complaint (its error type borrows the input, so it travels as text).
        message: String,
    },
}

/// What sidekiq-guard needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject common name (empty when absent).
    pub common_name: String,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// Whether the basic constraints make it a CA.
    pub is_ca: bool,
    /// Serial number, colon-separated hex.
    pub serial: String,
}

impl CertInfo {
    /// Seconds left before expiry at `now` (negative once expired).
    pub fn seconds_left(&self, now: SystemTime) -> i64 {
        self.not_after - unix(now)
    }

    /// Whether it is valid at `now` and stays valid for at least `margin`.
    pub fn valid_for(&self, now: SystemTime, margin: Duration) -> bool {
        let now = unix(now);
        self.not_before <= now
            && self.not_after - now >= i64::try_from(margin.as_secs()).unwrap_or(i64::MAX)
    }
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The DER of every certificate in a PEM document, in order (leaf first for a chain); other
/// blocks (a key in the same file) are skipped.
pub fn pem_certificates(pem: &[u8], what: &str) -> Result<Vec<Vec<u8>>, X509Error> {
    let mut certs = Vec::new();
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|source| X509Error::Pem {
            what: what.to_owned(),
            source,
        })?;
        if block.label == "CERTIFICATE" {
            certs.push(block.contents);
        }
    }
    if certs.is_empty() {
        return Err(X509Error::NoCertificate {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads one DER certificate.
pub fn inspect(der: &[u8], what: &str) -> Result<CertInfo, X509Error> {
    let cert = parse(der, what)?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let dns_names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let validity = cert.validity();
    Ok(CertInfo {
        common_name,
        dns_names,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        is_ca: cert.is_ca(),
        serial: cert.raw_serial_as_string(),
    })
}

/// Whether `cert` carries a valid signature by `issuer`'s key.
pub fn signed_by(cert: &[u8], issuer: &[u8]) -> bool {
    match (parse(cert, "certificate"), parse(issuer, "issuer")) {
        (Ok(cert), Ok(issuer)) => cert.verify_signature(Some(issuer.public_key())).is_ok(),
        _ => false,
    }
}

/// Whether `chain` (leaf first, then its intermediates) is trusted by `anchors`; see
/// [`trusted_path`].
pub fn chain_anchored(chain: &[Vec<u8>], anchors: &[Vec<u8>]) -> bool {
    trusted_path(chain, anchors).is_some()
}

/// The certificates from the leaf of `chain` up to the anchor that vouches for it, both
/// included, the way the API server (Go's `x509.Verify`) builds it: every certificate of the
/// `caBundle` is a trust anchor, a root or an intermediate alike, so the path ends at the first
/// certificate of the chain that is an anchor, or that an anchor signed; each link before it
/// must verify against the next. `None` when no anchor vouches for the chain.
pub fn trusted_path<'a>(chain: &'a [Vec<u8>], anchors: &'a [Vec<u8>]) -> Option<Vec<&'a [u8]>> {
    let mut path: Vec<&[u8]> = Vec::new();
    for (i, cert) in chain.iter().enumerate() {
        path.push(cert);
        if anchors.contains(cert) {
            return Some(path);
        }
        if let Some(anchor) = anchors.iter().find(|anchor| signed_by(cert, anchor)) {
            path.push(anchor);
            return Some(path);
        }
        let next = chain.get(i + 1)?;
        if !signed_by(cert, next) {
            return None;
        }
    }
    None
}

/// The DER bytes of a certificate, parsed.
pub fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, X509Error> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|err| X509Error::Parse {
            what: what.to_owned(),
            message: err.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;

    /// A certificate and its key, signed by `issuer` (self-signed without one).
    fn cert(name: &str, ca: bool, issuer: Option<&(String, KeyPair)>) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let cert = match issuer {
            None => params.self_signed(&key).unwrap(),
            Some((pem, issuer_key)) => {
                let issuer = Issuer::from_ca_cert_pem(pem, issuer_key).unwrap();
                params.signed_by(&key, &issuer).unwrap()
            }
        };
        (cert.pem(), key)
    }

    fn der(pem: &str) -> Vec<u8> {
        pem_certificates(pem.as_bytes(), "test").unwrap().remove(0)
    }

    #[test]
    fn chains_verify_link_by_link_up_to_an_anchor() {
        let root = cert("root", true, None);
        let intermediate = cert("intermediate", true, Some(&root));
        let leaf = cert("guard.ops.svc", false, Some(&intermediate));
        let other_root = cert("other", true, None);

        // tls.crt as cert-manager writes it: leaf, then intermediate; a key block is skipped.
        let bundle = format!("{}{}{}", leaf.0, intermediate.0, leaf.1.serialize_pem());
        let chain = pem_certificates(bundle.as_bytes(), "tls.crt").unwrap();
        assert_eq!(chain.len(), 2);
        let info = inspect(&chain[0], "tls.crt").unwrap();
        assert_eq!(info.dns_names, vec!["guard.ops.svc"]);
        assert!(!info.is_ca);
        assert!(inspect(&chain[1], "tls.crt").unwrap().is_ca);

        assert!(chain_anchored(&chain, &[der(&root.0)]));
        assert!(chain_anchored(&chain, &[der(&other_root.0), der(&root.0)]));
        assert!(!chain_anchored(&chain, &[der(&other_root.0)]));
        assert!(!chain_anchored(&chain, &[]), "no caBundle");
        assert!(
            !chain_anchored(&chain[..1], &[der(&root.0)]),
            "the leaf alone does not reach the root"
        );
        assert!(!chain_anchored(&[], &[der(&root.0)]));

        // A caBundle holding the intermediate (a cert-manager CA or Vault issuer) anchors the
        // chain: Go's verifier trusts any certificate of the pool.
        let path = trusted_path(&chain, std::slice::from_ref(&chain[1])).unwrap();
        assert_eq!(path, vec![&chain[0][..], &chain[1][..]]);
        assert!(chain_anchored(&chain[..1], std::slice::from_ref(&chain[1])));
        // The path runs up to the anchor, included, for its validity dates to be checked.
        let root_der = der(&root.0);
        let path = trusted_path(&chain, std::slice::from_ref(&root_der)).unwrap();
        assert_eq!(path, vec![&chain[0][..], &chain[1][..], &root_der[..]]);
        // A chain whose links do not verify is not trusted, whatever its top.
        let unrelated = [chain[0].clone(), der(&other_root.0)];
        assert!(!chain_anchored(&unrelated, &[der(&other_root.0)]));
    }

    #[test]
    fn unreadable_input_is_named() {
        let err = pem_certificates(b"hello", "Secret ops/tls key tls.crt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Secret ops/tls key tls.crt holds no PEM CERTIFICATE block"
        );
        let err = inspect(b"\x30\x03garbage", "ca.crt").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ca.crt holds a certificate that cannot be parsed: "),
            "{err}"
        );
        assert!(!signed_by(b"junk", b"junk"));
    }
}
