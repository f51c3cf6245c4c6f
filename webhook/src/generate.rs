//! `sidekiq-guard-webhook certs generate`: a CA and a serving certificate in a directory, for
//! development, for a cluster without cert-manager where the install Job is not wanted, or to
//! bootstrap "your own CA".

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::pki::{self, KeyedCert, PkiError};

/// The files `certs generate` writes, named like the keys of a `kubernetes.io/tls` Secret so
/// the directory can be turned into one with `kubectl create secret generic --from-file`.
pub const FILES: [&str; 4] = ["ca.crt", "ca.key", "tls.crt", "tls.key"];

/// A failed `certs generate`.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A certificate could not be made.
    #[error("cannot make the certificates")]
    Pki(#[from] PkiError),
    /// A file exists and `--force` was not given.
    #[error("{0} exists; pass --force to overwrite it")]
    Exists(PathBuf),
    /// A file cannot be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The CA.
    pub ca: KeyedCert,
    /// The serving certificate.
    pub serving: KeyedCert,
    /// The DNS names of the serving certificate.
    pub dns_names: Vec<String>,
}

/// Makes a CA and a serving certificate for `service` in `namespace`.
pub fn generate(
    service: &str,
    namespace: &str,
    validity: Duration,
    ca_validity: Duration,
    now: SystemTime,
) -> Result<Generated, PkiError> {
    let dns_names = pki::service_dns_names(service, namespace);
    let ca = pki::new_ca(
        &format!("sidekiq-guard CA ({namespace}/{service})"),
        now,
        ca_validity,
    )?;
    let serving = pki::issue_serving(&ca, &dns_names, now, validity)?;
    Ok(Generated {
        ca,
        serving,
        dns_names,
    })
}

/// Writes [`FILES`] into `dir` (created if missing). Keys are readable by the owner only.
pub fn write(dir: &Path, generated: &Generated, force: bool) -> Result<(), GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let contents = [
        &generated.ca.cert_pem,
        &generated.ca.key_pem,
        &generated.serving.cert_pem,
        &generated.serving.key_pem,
    ];
    if !force && let Some(existing) = FILES.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
        return Err(GenerateError::Exists(existing));
    }
    for (file, content) in FILES.iter().zip(contents) {
        let path = dir.join(file);
        let secret = file.ends_with(".key");
        write_file(&path, content.as_bytes(), secret)
            .map_err(|source| GenerateError::Write { path, source })?;
    }
    Ok(())
}

fn write_file(path: &Path, content: &[u8], secret: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mode = if secret { 0o600 } else { 0o644 };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    // `mode` only applies to new files; an overwritten key must not keep wider permissions.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(content)?;
    file.sync_all()
}
