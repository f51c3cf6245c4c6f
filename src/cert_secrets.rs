//! The Secrets `sidekiq-guard-webhook certs install` writes — the CA's and the serving
//! certificate's — and which existing Secrets it may write to.
//!
//! A Secret of the same name can also be cert-manager's, or hold a certificate of the user's
//! own (their CA, their issuer). Overwriting either would silently swap the certificate the
//! webhook serves for one the API server may not trust, so certs install writes only to
//! Secrets it created, whose certificate is still the one it wrote.

use std::collections::BTreeMap;

/// The label certs install puts on the Secrets it creates, and looks for before writing to an
/// existing one.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "sidekiq-guard-webhook");

/// The annotation in which certs install records the serial of the certificate it wrote: a
/// Secret of its own whose certificate has another serial was rewritten by someone else since.
pub const WRITTEN_SERIAL: &str = "sidekiq-guard.io/certificate-serial";

/// The annotation cert-manager puts on the Secrets its Certificates write.
pub const CERT_MANAGER_CERTIFICATE: &str = "cert-manager.io/certificate-name";

/// One of the two Secrets certs install writes: the type it gives it and the key of the
/// certificate it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretKind {
    /// The Secret's `type`.
    pub type_: &'static str,
    /// The `data` key of its certificate.
    pub cert: &'static str,
}

/// The CA's Secret.
pub const CA_SECRET: SecretKind = SecretKind {
    type_: "Opaque",
    cert: "ca.crt",
};

/// The serving certificate's Secret, the one the webhook pods mount.
pub const TLS_SECRET: SecretKind = SecretKind {
    type_: "kubernetes.io/tls",
    cert: "tls.crt",
};

/// What certs install needs to know of a Secret that already exists.
#[derive(Debug, Clone, Copy)]
pub struct ExistingSecret<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// `metadata.labels`.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// `metadata.annotations`.
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// `type`.
    pub type_: Option<&'a str>,
    /// The serial of the certificate under the kind's key, when it reads as one.
    pub cert_serial: Option<&'a str>,
}

/// Why certs install leaves an existing Secret alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// cert-manager's: two issuers of one certificate undo each other's work.
    #[error(
        "Secret {namespace}/{name} is managed by cert-manager (Certificate {certificate}); certs install must not run beside it: delete the sidekiq-guard-certs CronJob and Job (see certs/README.md, \"Switching\")"
    )]
    CertManager {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The Certificate that writes it.
        certificate: String,
    },
    /// One certs install did not create (the user's own certificate, another tool's).
    #[error(
        "Secret {namespace}/{name} was not created by certs install ({}), so certs install leaves it alone; if it holds your own certificate, {}",
        managed_by_text(.managed_by.as_deref()),
        stop_or_hand_over(namespace)
    )]
    NotOurs {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Its `app.kubernetes.io/managed-by` label, if any.
        managed_by: Option<String>,
    },
    /// One certs install created, whose certificate someone else has replaced since.
    #[error(
        "Secret {namespace}/{name} holds a certificate certs install did not write (serial {found}; it wrote {written}), so certs install leaves it alone; if it is your own, {} again",
        stop_or_hand_over(namespace)
    )]
    Rewritten {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The serial of the certificate certs install wrote.
        written: String,
        /// The serial of the certificate the Secret holds.
        found: String,
    },
    /// One of another type, which cannot be changed in place.
    #[error(
        "Secret {namespace}/{name} has type {found:?}, expected {expected}; delete it and run certs install again"
    )]
    SecretType {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Its type.
        found: String,
        /// The type certs install writes.
        expected: &'static str,
    },
}

fn managed_by_text(found: Option<&str>) -> String {
    match found {
        None => format!("it has no {} label", MANAGED_BY.0),
        Some(other) => format!("its {} label is {other:?}", MANAGED_BY.0),
    }
}

/// The two ways out when a Secret holds a certificate of the user's: stop certs install, or
/// give the Secret back to it.
fn stop_or_hand_over(namespace: &str) -> String {
    format!(
        "delete the install Job and CronJob (kubectl -n {namespace} delete cronjob,job sidekiq-guard-certs; manifests/own-ca has neither), or delete the Secret for certs install to manage the certificate"
    )
}

/// Whether certs install may write `kind` into `secret`: one it created (not cert-manager's,
/// not one holding the user's own certificate), whose certificate is still the one it wrote,
/// of the type it writes (a type cannot change in place).
///
/// A certificate that does not read (`cert_serial` of `None`) is no one's: certs install
/// replaces it, as it would a missing one.
pub fn may_write(secret: &ExistingSecret<'_>, kind: SecretKind) -> Result<(), Refusal> {
    let label = |key: &str| secret.labels.and_then(|m| m.get(key));
    let annotation = |key: &str| secret.annotations.and_then(|m| m.get(key));
    let (namespace, name) = (secret.namespace.to_owned(), secret.name.to_owned());
    if let Some(certificate) = annotation(CERT_MANAGER_CERTIFICATE) {
        return Err(Refusal::CertManager {
            namespace,
            name,
            certificate: certificate.clone(),
        });
    }
    let managed_by = label(MANAGED_BY.0);
    if managed_by.map(String::as_str) != Some(MANAGED_BY.1) {
        return Err(Refusal::NotOurs {
            namespace,
            name,
            managed_by: managed_by.cloned(),
        });
    }
    if let (Some(written), Some(found)) = (annotation(WRITTEN_SERIAL), secret.cert_serial)
        && written != found
    {
        return Err(Refusal::Rewritten {
            namespace,
            name,
            written: written.clone(),
            found: found.to_owned(),
        });
    }
    match secret.type_ {
        Some(found) if found != kind.type_ => Err(Refusal::SecretType {
            namespace,
            name,
            found: found.to_owned(),
            expected: kind.type_,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn secret<'a>(
        labels: &'a BTreeMap<String, String>,
        annotations: &'a BTreeMap<String, String>,
        type_: Option<&'a str>,
        cert_serial: Option<&'a str>,
    ) -> ExistingSecret<'a> {
        ExistingSecret {
            namespace: "sidekiq-guard",
            name: "sidekiq-guard-tls",
            labels: Some(labels),
            annotations: Some(annotations),
            type_,
            cert_serial,
        }
    }

    #[test]
    fn its_own_secret_with_its_certificate_is_written() {
        let labels = map(&[MANAGED_BY]);
        let annotations = map(&[(WRITTEN_SERIAL, "0a:1b")]);
        let tls = Some("kubernetes.io/tls");
        assert_eq!(
            may_write(
                &secret(&labels, &annotations, tls, Some("0a:1b")),
                TLS_SECRET
            ),
            Ok(())
        );
        // Unreadable, or written before serials were recorded: replaced, not refused.
        assert_eq!(
            may_write(&secret(&labels, &annotations, tls, None), TLS_SECRET),
            Ok(())
        );
        assert_eq!(
            may_write(&secret(&labels, &map(&[]), tls, Some("ff")), TLS_SECRET),
            Ok(())
        );
        // No type stated: nothing to conflict with.
        assert_eq!(
            may_write(
                &secret(&labels, &annotations, None, Some("0a:1b")),
                CA_SECRET
            ),
            Ok(())
        );
    }

    #[test]
    fn a_secret_of_someone_else_is_refused_with_the_reason_and_the_way_out() {
        let ours = map(&[MANAGED_BY]);
        let none = map(&[]);
        let tls = Some("kubernetes.io/tls");

        let by_cert_manager = map(&[(CERT_MANAGER_CERTIFICATE, "sidekiq-guard-serving")]);
        let err = may_write(&secret(&ours, &by_cert_manager, tls, None), TLS_SECRET).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Secret sidekiq-guard/sidekiq-guard-tls is managed by cert-manager (Certificate sidekiq-guard-serving); certs install must not run beside it: delete the sidekiq-guard-certs CronJob and Job (see certs/README.md, \"Switching\")"
        );

        let err = may_write(&secret(&none, &none, tls, None), TLS_SECRET).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Secret sidekiq-guard/sidekiq-guard-tls was not created by certs install (it has no app.kubernetes.io/managed-by label), so certs install leaves it alone; if it holds your own certificate, delete the install Job and CronJob (kubectl -n sidekiq-guard delete cronjob,job sidekiq-guard-certs; manifests/own-ca has neither), or delete the Secret for certs install to manage the certificate"
        );
        let helm = map(&[(MANAGED_BY.0, "Helm")]);
        let err = may_write(&secret(&helm, &none, tls, None), TLS_SECRET).unwrap_err();
        assert!(
            err.to_string()
                .contains("(its app.kubernetes.io/managed-by label is \"Helm\")"),
            "{err}"
        );

        let written = map(&[(WRITTEN_SERIAL, "0a:1b")]);
        let err = may_write(&secret(&ours, &written, tls, Some("2c")), TLS_SECRET).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Secret sidekiq-guard/sidekiq-guard-tls holds a certificate certs install did not write (serial 2c; it wrote 0a:1b), so certs install leaves it alone; if it is your own, delete the install Job and CronJob (kubectl -n sidekiq-guard delete cronjob,job sidekiq-guard-certs; manifests/own-ca has neither), or delete the Secret for certs install to manage the certificate again"
        );

        let err =
            may_write(&secret(&ours, &written, Some("Opaque"), None), TLS_SECRET).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Secret sidekiq-guard/sidekiq-guard-tls has type \"Opaque\", expected kubernetes.io/tls; delete it and run certs install again"
        );
    }

    #[test]
    fn cert_manager_is_named_before_any_other_reason() {
        // A Secret cert-manager writes has neither the label nor the serial: saying it is not
        // certs install's would hide that two issuers are at work.
        let none = map(&[]);
        let by_cert_manager = map(&[(CERT_MANAGER_CERTIFICATE, "serving")]);
        let err = may_write(
            &secret(&none, &by_cert_manager, Some("Opaque"), None),
            TLS_SECRET,
        )
        .unwrap_err();
        assert!(matches!(err, Refusal::CertManager { .. }), "{err}");
    }
}
