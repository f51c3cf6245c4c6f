//! TLS on the admission port: the rustls configuration (ring, TLS 1.2 and 1.3, HTTP/1.1 only)
//! and the serving certificate, reloaded without a restart when its files change.
//!
//! The certificate lives in a [`CertStore`], which rustls asks for the certificate on every
//! handshake. A watcher polls the *contents* of the certificate and key files, so it follows
//! every way Kubernetes and its users replace them: the kubelet's atomic `..data` symlink swap
//! of a mounted Secret (the file paths never change, their targets do), `cp`, editors that
//! write a new inode, and files that appear after start-up (an `optional` Secret volume).
//! A new pair replaces the old one only once the key is known to belong to the certificate, so
//! a half-written update never breaks handshakes: the previous certificate stays in service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use sidekiq_guard::errors::chain;

use crate::metrics::Metrics;
use crate::pki::{self, CertInfo, PkiError};

/// The crypto provider of every TLS connection sidekiq-guard makes or accepts.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide rustls provider (kube's client looks it up there).
/// Installing it twice is harmless.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The admission port's TLS settings: TLS 1.2 and 1.3 with ring's default (modern) cipher
/// suites, no client certificates, and ALPN `http/1.1` only.
///
/// HTTP/2 is not offered on purpose: the API server would multiplex every admission call onto
/// one connection to one replica, defeating the Service's load balancing and the graceful
/// hand-over of connections on shutdown.
///
/// Session resumption is off: a resumed session skips the certificate, so after a rotation a
/// client could go on "seeing" the old one; every new connection gets a full handshake with
/// the certificate in service. The API server does not resume sessions anyway.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A serving certificate that cannot be loaded. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The path given on the command line.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file is not a usable certificate chain.
    #[error("certificate file {path}")]
    Certificate {
        /// The path given on the command line.
        path: PathBuf,
        /// Why.
        #[source]
        source: PkiError,
    },
    /// No private key in the key file.
    #[error("key file {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey {
        /// The path given on the command line.
        path: PathBuf,
    },
    /// A private key encrypted with a passphrase, which a server started unattended cannot
    /// supply.
    #[error(
        "key file {path} holds an encrypted private key; the webhook needs it unencrypted (as cert-manager and the install Job write it; openssl pkey -in KEY -out KEY.plain decrypts one)"
    )]
    EncryptedKey {
        /// The path given on the command line.
        path: PathBuf,
    },
    /// A private key of an algorithm rustls cannot sign with.
    #[error(
        "key file {path} holds an {algorithm} key, which the webhook's TLS library (rustls) cannot sign with; use an ECDSA P-256 or P-384, RSA or Ed25519 key (cert-manager: privateKey algorithm ECDSA with size 256 or 384)"
    )]
    UnsupportedKey {
        /// The path given on the command line.
        path: PathBuf,
        /// The key's algorithm.
        algorithm: &'static str,
    },
    /// A chain whose first certificate is not the key's: the serving certificate must lead.
    #[error(
        "certificate file {path} lists the certificate of its private key at position {position}; the serving certificate must come first, then the CAs that signed it"
    )]
    ChainOrder {
        /// The path given on the command line.
        path: PathBuf,
        /// Where the key's certificate is, from 1.
        position: usize,
    },
    /// A private key that rustls cannot use, or that does not belong to the certificate.
    #[error("the private key in {key} cannot serve the certificate in {cert}")]
    Key {
        /// Certificate path.
        cert: PathBuf,
        /// Key path.
        key: PathBuf,
        /// Why (a mismatch, an unsupported algorithm).
        #[source]
        source: rustls::Error,
    },
    /// A replacement certificate not valid yet (an issuer whose clock runs ahead): it goes
    /// into service once it is.
    #[error("certificate file {path} is not valid before {not_before}; it goes into service then")]
    NotYetValid {
        /// The path given on the command line.
        path: PathBuf,
        /// Start of validity (RFC 3339).
        not_before: String,
    },
    /// A replacement certificate past its validity (a restored old Secret): every handshake
    /// with it would fail.
    #[error("certificate file {path} is not valid now: valid from {not_before} until {not_after}")]
    NotValidNow {
        /// The path given on the command line.
        path: PathBuf,
        /// Start of validity (RFC 3339).
        not_before: String,
        /// End of validity (RFC 3339).
        not_after: String,
    },
}

/// Paths of the serving certificate (chain, leaf first) and its private key.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM certificate chain: the serving certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// What is being served, for logs and metrics.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The serving (leaf) certificate.
    pub leaf: CertInfo,
    /// Certificates in the chain, leaf included.
    pub chain_len: usize,
}

/// Reads and checks a certificate chain and key from PEM bytes.
pub fn load_pem(
    files: &CertFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(Arc<CertifiedKey>, Loaded), CertError> {
    let what = files.cert.display().to_string();
    let chain = pki::certificates(cert_pem, &what).map_err(|source| CertError::Certificate {
        path: files.cert.clone(),
        source,
    })?;
    let leaf = pki::inspect(&chain[0], &what).map_err(|source| CertError::Certificate {
        path: files.cert.clone(),
        source,
    })?;
    let key = pki::read_key(key_pem).map_err(|err| {
        let path = files.key.clone();
        match err {
            pki::KeyError::Encrypted => CertError::EncryptedKey { path },
            pki::KeyError::Missing => CertError::NoKey { path },
        }
    })?;
    if let Some(algorithm) = pki::unsupported_algorithm(&key) {
        return Err(CertError::UnsupportedKey {
            path: files.key.clone(),
            algorithm,
        });
    }
    let key_error = |source| {
        // The key's certificate further down the chain: the files are right, their order not.
        // Read again from the PEM: only a refused pair pays for it.
        let position = pki::certificates(cert_pem, &what)
            .unwrap_or_default()
            .iter()
            .skip(1)
            .position(|cert| pki::key_matches(cert, key_pem).unwrap_or(false));
        match position {
            Some(at) => CertError::ChainOrder {
                path: files.cert.clone(),
                position: at + 2,
            },
            None => CertError::Key {
                cert: files.cert.clone(),
                key: files.key.clone(),
                source,
            },
        }
    };
    let chain_len = chain.len();
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(key_error)?;
    // from_der accepts keys whose public half it cannot compute; insist on a real match.
    certified.keys_match().map_err(key_error)?;
    Ok((Arc::new(certified), Loaded { leaf, chain_len }))
}

/// The certificate the admission port presents; empty until the first successful load, which
/// makes handshakes fail (and `/readyz` report not ready) rather than serve something else.
#[derive(Debug, Default)]
pub struct CertStore {
    current: RwLock<Option<Served>>,
}

/// A certificate in service and its validity period (seconds since the Unix epoch).
#[derive(Debug)]
struct Served {
    key: Arc<CertifiedKey>,
    not_before: i64,
    not_after: i64,
}

impl CertStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a certificate is loaded.
    pub fn is_loaded(&self) -> bool {
        self.read().is_some()
    }

    /// Serves `key`, whose leaf certificate is `leaf`, from the next handshake on; connections
    /// already open keep theirs.
    pub fn set(&self, key: Arc<CertifiedKey>, leaf: &CertInfo) {
        // A poisoned lock only means a panic elsewhere while holding it; the value is a plain
        // Option and always consistent, so keep going.
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Some(Served {
            key,
            not_before: leaf.not_before,
            not_after: leaf.not_after,
        });
    }

    /// Why the API server refuses the certificate in service at `now`, when it is outside its
    /// validity period: one served at start-up with nothing better, or one whose renewal never
    /// came. `/readyz` reports it, so that `kubectl get deployment` shows what the API server's
    /// refusals (and, under `failurePolicy: Ignore`, pods going uninjected) would not.
    pub fn invalid_at(&self, now: std::time::SystemTime) -> Option<String> {
        let current = self.read();
        let served = current.as_ref()?;
        let now = sidekiq_guard::x509::unix(now);
        let format = sidekiq_guard::timestamp::format;
        if now > served.not_after {
            Some(format!(
                "the serving certificate expired at {}: the API server refuses it until a renewed one is mounted",
                format(served.not_after)
            ))
        } else if now < served.not_before {
            Some(format!(
                "the serving certificate is not valid until {}: the API server refuses it until then",
                format(served.not_before)
            ))
        } else {
            None
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Served>> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.read().as_ref().map(|served| Arc::clone(&served.key))
    }
}

/// Watches the certificate files and keeps `store` up to date.
#[derive(Debug)]
pub struct Watcher {
    files: CertFiles,
    store: Arc<CertStore>,
    metrics: Arc<Metrics>,
    last_seen: Option<(Vec<u8>, Vec<u8>)>,
    /// Files holding a certificate not valid yet, reported once and read again until it is.
    deferred: Option<(Vec<u8>, Vec<u8>)>,
    missing_logged: bool,
}

/// Says so when the certificate just put into service cannot be verified by the API server:
/// outside its validity period (served at start-up all the same, having nothing else), or
/// naming no DNS name (Go's TLS client ignores the common name).
fn warn_if_unverifiable(files: &CertFiles, leaf: &sidekiq_guard::x509::CertInfo) {
    for problem in leaf.unverifiable(std::time::SystemTime::now()) {
        tracing::warn!(
            cert = %files.cert.display(),
            not_before = %sidekiq_guard::timestamp::format(leaf.not_before),
            not_after = %sidekiq_guard::timestamp::format(leaf.not_after),
            "{}",
            problem.consequence()
        );
    }
}

impl Watcher {
    /// A watcher for `files` feeding `store`.
    pub fn new(files: CertFiles, store: Arc<CertStore>, metrics: Arc<Metrics>) -> Self {
        Self {
            files,
            store,
            metrics,
            last_seen: None,
            deferred: None,
            missing_logged: false,
        }
    }

    /// Checks the files once; loads them when their contents changed. Returns whether a new
    /// certificate went into service.
    pub async fn poll(&mut self) -> bool {
        let Some((cert, key)) = self.read_both().await else {
            return false;
        };
        if self
            .last_seen
            .as_ref()
            .is_some_and(|(c, k)| *c == cert && *k == key)
        {
            return false;
        }
        let loaded = load_pem(&self.files, &cert, &key).and_then(|(certified, loaded)| {
            self.usable_now(&loaded)?;
            Ok((certified, loaded))
        });
        match loaded {
            Ok((certified, loaded)) => {
                self.store.set(certified, &loaded.leaf);
                self.metrics.certificate_loaded(&loaded.leaf);
                tracing::info!(
                    cert = %self.files.cert.display(),
                    serial = %loaded.leaf.serial,
                    dns_names = ?loaded.leaf.dns_names,
                    not_after = %sidekiq_guard::timestamp::format(loaded.leaf.not_after),
                    chain_len = loaded.chain_len,
                    "serving certificate loaded"
                );
                warn_if_unverifiable(&self.files, &loaded.leaf);
                self.last_seen = Some((cert, key));
                self.deferred = None;
                true
            }
            Err(err) => {
                // The two files are read one after the other; a swap in between gives a
                // mismatched pair for one poll. Only a pair that stays broken is reported.
                if let Some((cert_again, key_again)) = self.read_both().await
                    && (cert_again != cert || key_again != key)
                {
                    return false;
                }
                // Not valid yet: read again at every poll until it is, reporting it once.
                if let CertError::NotYetValid { .. } = err {
                    if self.deferred.as_ref() != Some(&(cert.clone(), key.clone())) {
                        self.metrics.certificate_reload_failed();
                        tracing::warn!(error = %chain(&err), "new certificate files not valid yet; still serving the previous certificate");
                        self.deferred = Some((cert, key));
                    }
                    return false;
                }
                self.metrics.certificate_reload_failed();
                if self.store.is_loaded() {
                    tracing::error!(error = %chain(&err), "new certificate files rejected; still serving the previous certificate");
                } else {
                    tracing::error!(error = %chain(&err), "certificate files rejected; not ready until they are fixed");
                }
                self.last_seen = Some((cert, key));
                false
            }
        }
    }

    /// A certificate outside its validity period does not replace one in service; at start-up,
    /// with nothing else to serve, it is served (and the API server's refusals say why).
    fn usable_now(&self, loaded: &Loaded) -> Result<(), CertError> {
        let leaf = &loaded.leaf;
        let now = std::time::SystemTime::now();
        if !self.store.is_loaded() || leaf.valid_for(now, Duration::ZERO) {
            return Ok(());
        }
        if leaf.not_before > sidekiq_guard::x509::unix(now) {
            return Err(CertError::NotYetValid {
                path: self.files.cert.clone(),
                not_before: sidekiq_guard::timestamp::format(leaf.not_before),
            });
        }
        Err(CertError::NotValidNow {
            path: self.files.cert.clone(),
            not_before: sidekiq_guard::timestamp::format(leaf.not_before),
            not_after: sidekiq_guard::timestamp::format(leaf.not_after),
        })
    }

    async fn read_both(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        let cert = tokio::fs::read(&self.files.cert).await;
        let key = tokio::fs::read(&self.files.key).await;
        match (cert, key) {
            (Ok(cert), Ok(key)) => {
                self.missing_logged = false;
                Some((cert, key))
            }
            (Err(err), _) => {
                self.missing(&self.files.cert.clone(), err);
                None
            }
            (_, Err(err)) => {
                self.missing(&self.files.key.clone(), err);
                None
            }
        }
    }

    /// Reports unreadable files once until they are readable again, not at every poll.
    fn missing(&mut self, path: &Path, err: std::io::Error) {
        if self.missing_logged {
            return;
        }
        self.missing_logged = true;
        let err = CertError::Read {
            path: path.to_owned(),
            source: err,
        };
        if self.store.is_loaded() {
            // Files vanishing under a running server (a Secret being recreated): the current
            // certificate keeps serving.
            tracing::warn!(error = %chain(&err), "certificate files unreadable; still serving the previous certificate");
        } else {
            tracing::warn!(error = %chain(&err), "waiting for the certificate files");
        }
    }

    /// Polls every `interval` until the task is dropped.
    pub async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.poll().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pki;
    use std::time::SystemTime;

    fn pair() -> (String, String) {
        let now = SystemTime::now();
        let ca = pki::new_ca("ca", now, Duration::from_secs(3600)).unwrap();
        let leaf = pki::issue_serving(
            &ca,
            &pki::service_dns_names("s", "n"),
            now,
            Duration::from_secs(3600),
        )
        .unwrap();
        (leaf.cert_pem, leaf.key_pem)
    }

    fn files() -> CertFiles {
        CertFiles {
            cert: "/m/tls.crt".into(),
            key: "/m/tls.key".into(),
        }
    }

    #[test]
    fn a_certificate_in_service_is_judged_by_its_validity_period() {
        let (cert, key) = pair();
        let (certified, loaded) = load_pem(&files(), cert.as_bytes(), key.as_bytes()).unwrap();
        let store = CertStore::new();
        assert_eq!(
            store.invalid_at(SystemTime::now()),
            None,
            "nothing in service"
        );
        store.set(certified, &loaded.leaf);
        assert_eq!(store.invalid_at(SystemTime::now()), None);
        let at = |unix: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(unix as u64);
        let expired = store.invalid_at(at(loaded.leaf.not_after + 1)).unwrap();
        assert_eq!(
            expired,
            format!(
                "the serving certificate expired at {}: the API server refuses it until a renewed one is mounted",
                sidekiq_guard::timestamp::format(loaded.leaf.not_after)
            )
        );
        assert_eq!(store.invalid_at(at(loaded.leaf.not_after)), None);
        let early = store.invalid_at(at(loaded.leaf.not_before - 1)).unwrap();
        assert!(
            early.starts_with("the serving certificate is not valid until "),
            "{early}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (cert, _) = pair();
        let (_, other_key) = pair();
        let err = load_pem(&files(), cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the private key in /m/tls.key cannot serve the certificate in /m/tls.crt"
        );
        // The cause (what rustls found) travels as the source, below the message.
        assert!(
            chain(&err).len() > err.to_string().len(),
            "no cause: {}",
            chain(&err)
        );
    }

    #[test]
    fn a_key_rustls_cannot_sign_with_is_named() {
        let (cert, _) = pair();
        for key in ["p521.key", "p521-sec1.key"] {
            let path = format!("{}/../tests/data/tls/{key}", env!("CARGO_MANIFEST_DIR"));
            let key = std::fs::read(path).unwrap();
            let err = load_pem(&files(), cert.as_bytes(), &key).unwrap_err();
            assert_eq!(
                err.to_string(),
                "key file /m/tls.key holds an ECDSA P-521 key, which the webhook's TLS library (rustls) cannot sign with; use an ECDSA P-256 or P-384, RSA or Ed25519 key (cert-manager: privateKey algorithm ECDSA with size 256 or 384)"
            );
        }
    }

    #[test]
    fn a_chain_that_does_not_start_with_the_serving_certificate_says_so() {
        let now = SystemTime::now();
        let ca = pki::new_ca("ca", now, Duration::from_secs(3600)).unwrap();
        let leaf = pki::issue_serving(&ca, &["s.n.svc".to_owned()], now, Duration::from_secs(3600))
            .unwrap();
        let reversed = format!("{}{}", ca.cert_pem, leaf.cert_pem);
        let err = load_pem(&files(), reversed.as_bytes(), leaf.key_pem.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "certificate file /m/tls.crt lists the certificate of its private key at position 2; the serving certificate must come first, then the CAs that signed it"
        );
        // Leaf first, and with a byte-order mark before it (an editor on Windows): served.
        let ordered = format!("\u{feff}{}{}", leaf.cert_pem, ca.cert_pem);
        let (_, loaded) = load_pem(&files(), ordered.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
        assert_eq!(loaded.chain_len, 2);
    }

    #[test]
    fn a_matching_pair_loads() {
        let (cert, key) = pair();
        let (_, loaded) = load_pem(&files(), cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(loaded.chain_len, 1);
        assert_eq!(loaded.leaf.common_name, "s.n.svc");
    }

    #[test]
    fn swapped_files_and_garbage_are_named() {
        let (cert, key) = pair();
        let err = load_pem(&files(), key.as_bytes(), cert.as_bytes()).unwrap_err();
        assert_eq!(
            chain(&err),
            "certificate file /m/tls.crt: /m/tls.crt holds no PEM CERTIFICATE block"
        );
        let err = load_pem(&files(), cert.as_bytes(), b"nope").unwrap_err();
        assert_eq!(
            err.to_string(),
            "key file /m/tls.key holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"
        );
        let encrypted =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = load_pem(&files(), cert.as_bytes(), encrypted).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key file /m/tls.key holds an encrypted private key; the webhook needs it unencrypted (as cert-manager and the install Job write it; openssl pkey -in KEY -out KEY.plain decrypts one)"
        );
    }
}
