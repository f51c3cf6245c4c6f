//! `sidekiq-guard-webhook certs install`: run in the cluster as a Job (and weekly as a
//! CronJob), it makes sure that
//!
//! 1. a CA exists in the Secret `--ca-secret` (only this Job can read it; the webhook pods
//!    never mount the CA key) and stays valid for longer than any certificate it signs;
//! 2. every webhook of both webhook configurations that calls the Service trusts the CA: the
//!    `caBundle` holds the current CA plus any other CA it already trusted that has not
//!    expired, so the certificate the replicas serve now stays trusted;
//! 3. only then, the serving certificate in the `kubernetes.io/tls` Secret `--secret` is
//!    signed by that CA, names the Service (`S`, `S.N`, `S.N.svc`) and is valid for longer
//!    than `--renew-before`; otherwise it is issued anew (the webhook pods reload it by
//!    themselves). A CA rotation therefore never leaves a replica serving a certificate the
//!    API server does not trust, even when a step fails.
//!
//! Running it again changes nothing until a renewal is due: it is idempotent.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, TestOperation};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use rustls::pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde_json::json;
use sidekiq_guard::cert_secrets::{
    self, CA_SECRET, ExistingSecret, MANAGED_BY, Refusal, SecretKind, TLS_SECRET, WRITTEN_SERIAL,
};

use crate::pki::{self, KeyedCert, PkiError};

/// Where the certificates go and how long they last.
#[derive(Debug, Clone)]
pub struct InstallConfig {
    /// Namespace of the webhook Service and the Secrets.
    pub namespace: String,
    /// Name of the webhook Service.
    pub service: String,
    /// The `kubernetes.io/tls` Secret the webhook pods mount.
    pub secret: String,
    /// The Secret holding the CA certificate and key.
    pub ca_secret: String,
    /// The MutatingWebhookConfiguration to patch.
    pub mutating: String,
    /// The ValidatingWebhookConfiguration to patch.
    pub validating: String,
    /// Renew a certificate that expires within this.
    pub renew_before: Duration,
    /// Validity of a new serving certificate.
    pub validity: Duration,
    /// Validity of a new CA.
    pub ca_validity: Duration,
    /// How long to wait for the webhook configurations to appear (they are applied together
    /// with the Job, and may be created after it starts).
    pub wait: Duration,
}

/// What happened to one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// It was valid and is kept.
    Kept,
    /// There was none; one was made.
    Created,
    /// It was replaced, for the reason given.
    Renewed(String),
}

impl Action {
    /// What replacing a certificate is, given what reading the current one gave: nothing
    /// (`None`, it is created) or why it is unusable (it is renewed).
    fn replacing<T>(read: Option<Result<T, String>>) -> Self {
        match read {
            Some(Err(reason)) => Self::Renewed(reason),
            _ => Self::Created,
        }
    }
}

/// What an install run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The CA.
    pub ca: Action,
    /// The serving certificate.
    pub serving: Action,
    /// Webhooks whose `caBundle` was patched, as `Kind/name: webhook`.
    pub patched: Vec<String>,
    /// Expiry of the serving certificate (Unix time).
    pub serving_not_after: i64,
}

/// An install run that failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// An API call failed.
    #[error("cannot {action} {object}")]
    Api {
        /// `get`, `create`, `update`, `patch`.
        action: &'static str,
        /// `Secret ns/name`, `MutatingWebhookConfiguration name`.
        object: String,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
    /// A certificate could not be made or read.
    #[error("certificate error")]
    Pki(#[from] PkiError),
    /// A webhook configuration does not exist.
    #[error(
        "{kind} {name} not found after waiting {waited}s; apply the manifests (kubectl apply -k) before running certs install"
    )]
    MissingConfiguration {
        /// The kind.
        kind: &'static str,
        /// The name.
        name: String,
        /// Seconds waited.
        waited: u64,
    },
    /// A webhook configuration without any webhook calling the Service.
    #[error(
        "{kind} {name} has no webhook whose clientConfig.service is {namespace}/{service}; nothing to trust the certificate"
    )]
    NoWebhook {
        /// The kind.
        kind: &'static str,
        /// The name.
        name: String,
        /// Service namespace.
        namespace: String,
        /// Service name.
        service: String,
    },
    /// An existing Secret certs install must leave alone.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl InstallError {
    fn is_conflict(&self) -> bool {
        matches!(self, InstallError::Api { source: kube::Error::Api(status), .. } if status.code == 409)
    }
}

/// Runs the install; retried from the start when another run changed an object concurrently.
pub async fn install(
    client: &Client,
    config: &InstallConfig,
    now: SystemTime,
) -> Result<Report, InstallError> {
    let mut attempt = 1;
    loop {
        match install_once(client, config, now).await {
            Err(err) if err.is_conflict() && attempt < 3 => {
                tracing::warn!(error = %sidekiq_guard::errors::chain(&err), attempt, "conflict; starting over");
                attempt += 1;
            }
            result => return result,
        }
    }
}

async fn install_once(
    client: &Client,
    config: &InstallConfig,
    now: SystemTime,
) -> Result<Report, InstallError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let names = pki::service_dns_names(&config.service, &config.namespace);

    // 1. The CA outlives every certificate it signs: renew it when it would expire before a
    //    serving certificate issued today.
    // Both Secrets are checked before either is written.
    let ca_secret = get(&secrets, &config.ca_secret, "Secret", &config.namespace).await?;
    let tls_secret = get(&secrets, &config.secret, "Secret", &config.namespace).await?;
    ours(ca_secret.as_ref(), &config.ca_secret, CA_SECRET, config)?;
    ours(tls_secret.as_ref(), &config.secret, TLS_SECRET, config)?;
    let ca_margin = config.validity + config.renew_before;
    let (ca, ca_action) = match ca_secret.as_ref().map(|s| read_ca(s, now, ca_margin)) {
        Some(Ok(ca)) => (ca, Action::Kept),
        problem => {
            let ca = pki::new_ca(
                &format!("sidekiq-guard CA ({}/{})", config.namespace, config.service),
                now,
                config.ca_validity,
            )?;
            let data = secret_data([("ca.crt", &ca.cert_pem), ("ca.key", &ca.key_pem)]);
            put_secret(
                &secrets,
                config,
                &config.ca_secret,
                ca_secret,
                CA_SECRET,
                data,
            )
            .await?;
            (ca, Action::replacing(problem))
        }
    };
    let ca_der = pki::certificates(ca.cert_pem.as_bytes(), "the CA")?.remove(0);

    // 2. The serving certificate.
    let current = tls_secret
        .as_ref()
        .map(|s| read_serving(s, &ca_der, &names, now, config.renew_before));
    let (serving, serving_action) = match current {
        Some(Ok(serving)) => (serving, Action::Kept),
        problem => {
            let serving = pki::issue_serving(&ca, &names, now, config.validity)?;
            (serving, Action::replacing(problem))
        }
    };
    let serving_not_after =
        pki::inspect_pem(serving.cert_pem.as_bytes(), "the serving certificate")?.not_after;

    // 3. The caBundle of both configurations.
    let mut patched = Vec::new();
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    patched.extend(
        trust(&mutating, &config.mutating, config, &ca_der, now, |c| {
            c.webhooks
                .iter()
                .flatten()
                .map(|w| (w.name.clone(), w.client_config.clone()))
                .collect()
        })
        .await?,
    );
    patched.extend(
        trust(&validating, &config.validating, config, &ca_der, now, |c| {
            c.webhooks
                .iter()
                .flatten()
                .map(|w| (w.name.clone(), w.client_config.clone()))
                .collect()
        })
        .await?,
    );
    // 4. Only now, with the CA trusted everywhere, the pods get the certificate: written
    //    before, a failed patch would leave them serving one the API server does not trust
    //    (and, under failurePolicy Ignore, pods admitted without injection, unnoticed). A run
    //    that fails before this point keeps the old certificate, still trusted, and the next
    //    run finds the CA in place and completes.
    let stale_ca_copy = tls_secret
        .as_ref()
        .and_then(|s| data_str(s, "ca.crt"))
        .is_none_or(|copy| copy != ca.cert_pem);
    if serving_action != Action::Kept || stale_ca_copy {
        let data = secret_data([
            ("tls.crt", &serving.cert_pem),
            ("tls.key", &serving.key_pem),
            ("ca.crt", &ca.cert_pem),
        ]);
        put_secret(
            &secrets,
            config,
            &config.secret,
            tls_secret,
            TLS_SECRET,
            data,
        )
        .await?;
    }
    Ok(Report {
        ca: ca_action,
        serving: serving_action,
        patched,
        serving_not_after,
    })
}

/// The serial of the certificate under `key` in `data`, when it reads as one.
fn serial_in(data: Option<&BTreeMap<String, ByteString>>, key: &str) -> Option<String> {
    let pem = data?.get(key)?;
    pki::inspect_pem(&pem.0, key).ok().map(|info| info.serial)
}

/// Checks that an existing Secret is one certs install may write ([`cert_secrets::may_write`]).
fn ours(
    secret: Option<&Secret>,
    name: &str,
    kind: SecretKind,
    config: &InstallConfig,
) -> Result<(), Refusal> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let serial = serial_in(secret.data.as_ref(), kind.cert);
    cert_secrets::may_write(
        &ExistingSecret {
            namespace: &config.namespace,
            name,
            labels: secret.metadata.labels.as_ref(),
            annotations: secret.metadata.annotations.as_ref(),
            type_: secret.type_.as_deref(),
            cert_serial: serial.as_deref(),
        },
        kind,
    )
}

async fn get<K>(
    api: &Api<K>,
    name: &str,
    kind: &str,
    namespace: &str,
) -> Result<Option<K>, InstallError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(|source| InstallError::Api {
        action: "get",
        object: format!("{kind} {namespace}/{name}"),
        source,
    })
}

fn data_str<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|b| std::str::from_utf8(&b.0).ok())
}

/// A certificate and its key read from `secret`, checked to belong together.
struct KeyedPair<'a> {
    cert: &'a str,
    key: &'a str,
    der: CertificateDer<'static>,
    info: pki::CertInfo,
}

impl<'a> KeyedPair<'a> {
    /// Reads `cert_name` and `key_name`, or says why they cannot be used.
    fn read(secret: &'a Secret, cert_name: &str, key_name: &str) -> Result<Self, String> {
        let (Some(cert), Some(key)) = (data_str(secret, cert_name), data_str(secret, key_name))
        else {
            let name = secret.metadata.name.as_deref().unwrap_or_default();
            return Err(format!("the Secret {name} lacks {cert_name} or {key_name}"));
        };
        let der = pki::certificates(cert.as_bytes(), cert_name)
            .map_err(|e| e.to_string())?
            .remove(0);
        let info = pki::inspect(&der, cert_name).map_err(|e| e.to_string())?;
        match pki::key_matches(&der, key.as_bytes()) {
            Ok(true) => {}
            Ok(false) => return Err(format!("{key_name} is not the key of {cert_name}")),
            Err(pki::KeyError::Encrypted) => {
                return Err(format!(
                    "{key_name} is encrypted with a passphrase, which the install Job cannot supply"
                ));
            }
            Err(pki::KeyError::Missing) => {
                return Err(format!("{key_name} holds no PEM private key"));
            }
        }
        Ok(Self {
            cert,
            key,
            der,
            info,
        })
    }

    fn into_keyed(self) -> KeyedCert {
        KeyedCert {
            cert_pem: self.cert.to_owned(),
            key_pem: self.key.to_owned(),
        }
    }
}

/// The CA in `secret`, or why it cannot be used for another `margin`.
fn read_ca(secret: &Secret, now: SystemTime, margin: Duration) -> Result<KeyedCert, String> {
    let pair = KeyedPair::read(secret, "ca.crt", "ca.key")?;
    if !pair.info.is_ca {
        return Err("ca.crt is not a CA certificate".into());
    }
    if !pair.info.valid_for(now, margin) {
        return Err(format!(
            "the CA expires {}, before a certificate issued now would",
            sidekiq_guard::timestamp::format(pair.info.not_after)
        ));
    }
    Ok(pair.into_keyed())
}

/// The serving certificate in `secret`, or why it must be replaced.
fn read_serving(
    secret: &Secret,
    ca_der: &[u8],
    names: &[String],
    now: SystemTime,
    renew_before: Duration,
) -> Result<KeyedCert, String> {
    let pair = KeyedPair::read(secret, "tls.crt", "tls.key")?;
    if let Some(missing) = names.iter().find(|n| !pair.info.dns_names.contains(n)) {
        return Err(format!("the certificate does not name {missing}"));
    }
    if !pki::signed_by(&pair.der, ca_der) {
        return Err("the certificate is not signed by the current CA".into());
    }
    if !pair.info.valid_for(now, renew_before) {
        return Err(format!(
            "the certificate expires {}, within the renewal window",
            sidekiq_guard::timestamp::format(pair.info.not_after)
        ));
    }
    Ok(pair.into_keyed())
}

/// A Secret's `data` from PEM texts.
fn secret_data<const N: usize>(entries: [(&str, &String); N]) -> BTreeMap<String, ByteString> {
    entries
        .into_iter()
        .map(|(key, pem)| (key.to_owned(), ByteString(pem.clone().into_bytes())))
        .collect()
}

async fn put_secret(
    api: &Api<Secret>,
    config: &InstallConfig,
    name: &str,
    existing: Option<Secret>,
    kind: SecretKind,
    data: BTreeMap<String, ByteString>,
) -> Result<(), InstallError> {
    let object = format!("Secret {}/{name}", config.namespace);
    let serial = serial_in(Some(&data), kind.cert).unwrap_or_default();
    match existing {
        Some(mut secret) => {
            // Same object, same resourceVersion: the update fails with a conflict if anyone
            // changed it since it was read.
            secret
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(WRITTEN_SERIAL.to_owned(), serial);
            secret.data = Some(data);
            secret.string_data = None;
            api.replace(name, &PostParams::default(), &secret)
                .await
                .map_err(|source| InstallError::Api {
                    action: "update",
                    object,
                    source,
                })?;
            tracing::info!(secret = name, "Secret updated");
        }
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(config.namespace.clone()),
                    labels: Some(BTreeMap::from([
                        (
                            "app.kubernetes.io/name".to_owned(),
                            "sidekiq-guard".to_owned(),
                        ),
                        (
                            "app.kubernetes.io/component".to_owned(),
                            "certificates".to_owned(),
                        ),
                        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                        (
                            "app.kubernetes.io/part-of".to_owned(),
                            "sidekiq-guard".to_owned(),
                        ),
                    ])),
                    annotations: Some(BTreeMap::from([(WRITTEN_SERIAL.to_owned(), serial)])),
                    ..ObjectMeta::default()
                },
                type_: Some(kind.type_.to_owned()),
                data: Some(data),
                ..Secret::default()
            };
            api.create(&PostParams::default(), &secret)
                .await
                .map_err(|source| InstallError::Api {
                    action: "create",
                    object,
                    source,
                })?;
            tracing::info!(secret = name, "Secret created");
        }
    }
    Ok(())
}

/// The bundle the webhooks should trust: the current CA first, then every other CA of the
/// existing bundle that has not expired.
pub fn desired_bundle(ca_der: &[u8], existing: Option<&[u8]>, now: SystemTime) -> String {
    let mut bundle = pki::pem_encode(ca_der);
    let mut seen = vec![ca_der.to_vec()];
    if let Some(existing) = existing
        && let Ok(certs) = pki::certificates(existing, "caBundle")
    {
        for der in certs {
            let keep = pki::inspect(&der, "caBundle")
                .is_ok_and(|info| info.is_ca && info.valid_for(now, Duration::ZERO));
            if keep && !seen.iter().any(|s| s.as_slice() == der.as_ref()) {
                bundle.push_str(&pki::pem_encode(&der));
                seen.push(der.to_vec());
            }
        }
    }
    bundle
}

#[allow(clippy::too_many_arguments)]
async fn trust<K>(
    api: &Api<K>,
    name: &str,
    config: &InstallConfig,
    ca_der: &[u8],
    now: SystemTime,
    webhooks: impl Fn(&K) -> Vec<(String, WebhookClientConfig)>,
) -> Result<Vec<String>, InstallError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&());
    let kind: &'static str = if kind == "MutatingWebhookConfiguration" {
        "MutatingWebhookConfiguration"
    } else {
        "ValidatingWebhookConfiguration"
    };
    let started = tokio::time::Instant::now();
    let object = loop {
        match api.get_opt(name).await {
            Ok(Some(object)) => break object,
            Ok(None) if started.elapsed() < config.wait => {
                tracing::info!(
                    kind,
                    name,
                    "waiting for the webhook configuration to be created"
                );
                tokio::time::sleep(Duration::from_secs(2).min(config.wait)).await;
            }
            Ok(None) => {
                return Err(InstallError::MissingConfiguration {
                    kind,
                    name: name.to_owned(),
                    waited: config.wait.as_secs(),
                });
            }
            Err(source) => {
                return Err(InstallError::Api {
                    action: "get",
                    object: format!("{kind} {name}"),
                    source,
                });
            }
        }
    };
    let mut ops = Vec::new();
    let mut patched = Vec::new();
    let mut matched = 0;
    for (index, (webhook, client_config)) in webhooks(&object).into_iter().enumerate() {
        let ours = client_config
            .service
            .as_ref()
            .is_some_and(|s| s.name == config.service && s.namespace == config.namespace);
        if !ours {
            continue;
        }
        matched += 1;
        let existing = client_config.ca_bundle.as_ref().map(|b| b.0.as_slice());
        let bundle = desired_bundle(ca_der, existing, now);
        if existing == Some(bundle.as_bytes()) {
            continue;
        }
        // `test` guards the index: if the list changed since it was read, the patch fails
        // instead of writing the bundle into another webhook.
        ops.push(PatchOperation::Test(TestOperation {
            path: PointerBuf::from_tokens(["webhooks", &index.to_string(), "name"]),
            value: json!(webhook),
        }));
        ops.push(PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens([
                "webhooks",
                &index.to_string(),
                "clientConfig",
                "caBundle",
            ]),
            value: json!(base64::engine::general_purpose::STANDARD.encode(bundle.as_bytes())),
        }));
        patched.push(format!("{kind}/{name}: {webhook}"));
    }
    if matched == 0 {
        return Err(InstallError::NoWebhook {
            kind,
            name: name.to_owned(),
            namespace: config.namespace.clone(),
            service: config.service.clone(),
        });
    }
    if !ops.is_empty() {
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Json::<()>(json_patch::Patch(ops)),
        )
        .await
        .map_err(|source| InstallError::Api {
            action: "patch",
            object: format!("{kind} {name}"),
            source,
        })?;
        tracing::info!(kind, name, webhooks = ?patched, "caBundle updated");
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn secret_of(entries: &[(&str, &String)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("sidekiq-guard-tls".into()),
                ..ObjectMeta::default()
            },
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn a_secret_is_replaced_with_the_reason_said() {
        let now = SystemTime::now();
        let ca = pki::new_ca("test CA", now, 365 * DAY).unwrap();
        let other = pki::new_ca("other CA", now, 365 * DAY).unwrap();
        let names = vec!["sidekiq-guard.sidekiq-guard.svc".to_owned()];
        let serving = pki::issue_serving(&ca, &names, now, 30 * DAY).unwrap();
        let ca_der = pki::certificates(ca.cert_pem.as_bytes(), "ca")
            .unwrap()
            .remove(0);

        let reason = |secret: &Secret| read_serving(secret, &ca_der, &names, now, DAY).err();
        let good = secret_of(&[
            ("tls.crt", &serving.cert_pem),
            ("tls.key", &serving.key_pem),
        ]);
        assert_eq!(reason(&good), None);
        assert_eq!(
            reason(&secret_of(&[("tls.crt", &serving.cert_pem)])).as_deref(),
            Some("the Secret sidekiq-guard-tls lacks tls.crt or tls.key")
        );
        assert_eq!(
            reason(&secret_of(&[
                ("tls.crt", &serving.cert_pem),
                ("tls.key", &ca.key_pem)
            ]))
            .as_deref(),
            Some("tls.key is not the key of tls.crt")
        );
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_owned();
        assert_eq!(
            reason(&secret_of(&[
                ("tls.crt", &serving.cert_pem),
                ("tls.key", &encrypted)
            ]))
            .as_deref(),
            Some("tls.key is encrypted with a passphrase, which the install Job cannot supply")
        );
        let elsewhere = ["other.sidekiq-guard.svc".to_owned()];
        assert_eq!(
            read_serving(&good, &ca_der, &elsewhere, now, DAY)
                .err()
                .as_deref(),
            Some("the certificate does not name other.sidekiq-guard.svc")
        );
        let other_der = pki::certificates(other.cert_pem.as_bytes(), "ca")
            .unwrap()
            .remove(0);
        assert_eq!(
            read_serving(&good, &other_der, &names, now, DAY)
                .err()
                .as_deref(),
            Some("the certificate is not signed by the current CA")
        );
        let late = read_serving(&good, &ca_der, &names, now, 60 * DAY).unwrap_err();
        assert!(late.ends_with("within the renewal window"), "{late}");

        let not_ca = secret_of(&[("ca.crt", &serving.cert_pem), ("ca.key", &serving.key_pem)]);
        assert_eq!(
            read_ca(&not_ca, now, DAY).err().as_deref(),
            Some("ca.crt is not a CA certificate")
        );
        let ca_secret = secret_of(&[("ca.crt", &ca.cert_pem), ("ca.key", &ca.key_pem)]);
        assert!(read_ca(&ca_secret, now, DAY).is_ok());
        let short = read_ca(&ca_secret, now, 400 * DAY).unwrap_err();
        assert!(
            short.contains("before a certificate issued now would"),
            "{short}"
        );
    }
}
