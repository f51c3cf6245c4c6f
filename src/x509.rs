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

/// Why an API server calling a webhook refuses its serving certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unverifiable {
    /// Outside its validity period.
    NotValidNow,
    /// No DNS subject alternative name: Go's TLS client ignores the common name.
    NoDnsName,
}

impl Unverifiable {
    /// What it means for the webhook, for its log.
    pub fn consequence(self) -> &'static str {
        match self {
            Self::NotValidNow => {
                "the serving certificate is not valid now: the API server refuses it, and applies the webhooks' failurePolicy (Ignore: pods go uninjected) until a valid one replaces it"
            }
            Self::NoDnsName => {
                "the serving certificate names no DNS name: an API server calling the webhook through its Service checks <service>.<namespace>.svc against the certificate's subject alternative names, and refuses it"
            }
        }
    }
}

impl CertInfo {
    /// Why an API server would refuse this certificate as a webhook's serving certificate at
    /// `now` (none when it would not, as far as the certificate alone tells).
    pub fn unverifiable(&self, now: SystemTime) -> Vec<Unverifiable> {
        let mut problems = Vec::new();
        if !self.valid_for(now, Duration::ZERO) {
            problems.push(Unverifiable::NotValidNow);
        }
        if self.dns_names.is_empty() {
            problems.push(Unverifiable::NoDnsName);
        }
        problems
    }
}

/// The UTF-8 byte-order mark.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

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
    // A byte-order mark (an editor on Windows) is not content, as OpenSSL reads it.
    let pem = pem.strip_prefix(UTF8_BOM).unwrap_or(pem);
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

/// The certificates of a webhook's `caBundle` (base64 of PEM); none when it is absent or
/// unreadable.
pub fn ca_bundle_anchors(bundle: Option<&str>) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    bundle
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|pem| pem_certificates(&pem, "caBundle").ok())
        .unwrap_or_default()
}

/// Whether a caBundle's `anchors` anchor the serving `chain` (which may carry intermediates;
/// any certificate of the bundle is an anchor, as for the API server).
pub fn trust(chain: &[Vec<u8>], anchors: &[Vec<u8>]) -> crate::install::Trust {
    use crate::install::Trust;
    if anchors.is_empty() {
        Trust::Missing
    } else if chain_anchored(chain, anchors) {
        Trust::Anchored
    } else {
        Trust::Unsigned
    }
}

/// When the path the API server verifies stops being valid: the earliest `notAfter` from the
/// serving certificate up to the anchor of the first caBundle that vouches for it, and which
/// certificate that is when it is not the serving certificate itself.
pub fn first_expiry(chain: &[Vec<u8>], bundles: &[Vec<Vec<u8>>]) -> Option<(i64, Option<String>)> {
    let path: Vec<&[u8]> = bundles
        .iter()
        .find_map(|anchors| trusted_path(chain, anchors))
        .unwrap_or_else(|| chain.iter().map(Vec::as_slice).collect());
    path.iter()
        .enumerate()
        .filter_map(|(i, der)| inspect(der, "certificate").ok().map(|info| (i, info)))
        .min_by_key(|(i, info)| (info.not_after, *i))
        .map(|(i, info)| {
            let which = match i {
                0 => None,
                _ if i < chain.len() => {
                    Some(format!("intermediate CA {:?} (tls.crt)", info.common_name))
                }
                _ => Some(format!("the CA {:?} (caBundle)", info.common_name)),
            };
            (info.not_after, which)
        })
}

/// When `chain` starts being valid, as the API server verifies it: the latest `notBefore` of its
/// certificates (one issued by a machine whose clock runs ahead is refused until then).
pub fn valid_from(chain: &[Vec<u8>]) -> Option<i64> {
    chain
        .iter()
        .filter_map(|der| inspect(der, "certificate").ok())
        .map(|info| info.not_before)
        .max()
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

    #[test]
    fn what_an_api_server_refuses_in_a_serving_certificate() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let info = |dns_names: &[&str], not_before: i64, not_after: i64| CertInfo {
            common_name: "sidekiq-guard".into(),
            dns_names: dns_names.iter().map(|n| (*n).to_owned()).collect(),
            not_before,
            not_after,
            is_ca: false,
            serial: "01".into(),
        };
        let now_s = unix(now);
        let svc = ["sidekiq-guard.sidekiq-guard.svc"];
        assert_eq!(info(&svc, now_s - 60, now_s + 60).unverifiable(now), []);
        assert_eq!(
            info(&svc, now_s - 120, now_s - 60).unverifiable(now),
            [Unverifiable::NotValidNow]
        );
        assert_eq!(
            info(&svc, now_s + 60, now_s + 120).unverifiable(now),
            [Unverifiable::NotValidNow]
        );
        assert_eq!(
            info(&[], now_s - 120, now_s - 60).unverifiable(now),
            [Unverifiable::NotValidNow, Unverifiable::NoDnsName]
        );
    }

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

#[cfg(test)]
mod expiry_tests {
    #![allow(clippy::unwrap_used)]

    use base64::Engine as _;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, date_time_ymd,
    };

    use super::*;
    use crate::install::Trust;
    use crate::timestamp;

    /// A certificate valid until `until` (year), signed by `issuer` (self-signed without one).
    fn cert(
        name: &str,
        until: i32,
        issuer: Option<&Issuer<'static, KeyPair>>,
    ) -> (Vec<u8>, String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = date_time_ymd(2026, 1, 1);
        params.not_after = date_time_ymd(until, 1, 1);
        let cert = match issuer {
            Some(issuer) => params.signed_by(&key, issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        let (der, pem) = (cert.der().to_vec(), cert.pem());
        (der, pem, Issuer::new(params, key))
    }

    /// A caBundle as the webhook configuration holds it, decoded.
    fn bundle(pem: &str) -> Vec<Vec<u8>> {
        ca_bundle_anchors(Some(&base64::engine::general_purpose::STANDARD.encode(pem)))
    }

    #[test]
    fn the_first_certificate_to_expire_on_the_trusted_path_is_named() {
        let (_, root_pem, root) = cert("root", 2036, None);
        let (intermediate_der, intermediate_pem, intermediate) = cert("issuer", 2027, Some(&root));
        let (leaf_der, _, _) = cert("guard.ops.svc", 2028, Some(&intermediate));
        let chain = vec![leaf_der, intermediate_der];
        let (not_after, which) = first_expiry(&chain, &[bundle(&root_pem)]).unwrap();
        assert_eq!(timestamp::format(not_after), "2027-01-01T00:00:00Z");
        assert_eq!(
            which.as_deref(),
            Some("intermediate CA \"issuer\" (tls.crt)")
        );
        // The intermediate alone in the caBundle anchors the chain (Go trusts any certificate
        // of the pool), and its expiry still counts.
        assert!(matches!(
            trust(&chain, &bundle(&intermediate_pem)),
            Trust::Anchored
        ));
        let (_, which) = first_expiry(&chain, &[bundle(&intermediate_pem)]).unwrap();
        assert_eq!(
            which.as_deref(),
            Some("intermediate CA \"issuer\" (tls.crt)")
        );
        // A caBundle CA that expires first is named as such.
        let (_, short_root_pem, short_root) = cert("short-root", 2026, None);
        let (leaf_der, _, _) = cert("guard.ops.svc", 2028, Some(&short_root));
        let (_, which) = first_expiry(&[leaf_der], &[bundle(&short_root_pem)]).unwrap();
        assert_eq!(which.as_deref(), Some("the CA \"short-root\" (caBundle)"));
    }
}
