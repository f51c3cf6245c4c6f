//! The policy document shared by the webhook (`--policy FILE`, a ConfigMap), the plugin
//! (`--policy FILE`) and the Kubewarden policy (its settings).
//!
//! Every key is optional; unknown keys and bad values are errors naming their path, e.g.
//! ``policy sidecar.mode: unknown variant `nativ`, expected one of `auto`, `native`, `classic` ``.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::duration;
use crate::quantity::Quantity;

/// The Sidekiq-guard policy: defaults for workloads, the sidecar, enforcement and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// Values used where a workload declares nothing.
    pub defaults: Defaults,
    /// The injected probe sidecar.
    pub sidecar: SidecarPolicy,
    /// What the validating side does with workloads that still violate the rules after mutation.
    pub enforcement: Enforcement,
    /// Largest grace period accepted without a finding (`SG009`).
    #[serde(deserialize_with = "grace_limit")]
    pub max_grace_period: Seconds,
    /// Namespaces never mutated nor validated (the webhook's own and `kube-system` are always
    /// excluded by the webhook configurations as well).
    pub excluded_namespaces: Vec<String>,
}

/// The namespace never mutated nor validated whatever the policy says: the webhook
/// configurations exclude it (with the webhook's own, which only they know), so the plugin and
/// the Kubewarden policy judge it as the webhook would.
pub const SYSTEM_NAMESPACE: &str = "kube-system";

impl Policy {
    /// Whether `namespace` is left alone: `kube-system`, or one of `excludedNamespaces`.
    pub fn excludes(&self, namespace: &str) -> bool {
        namespace == SYSTEM_NAMESPACE || self.excluded_namespaces.iter().any(|n| n == namespace)
    }
}

/// Defaults for the settings a workload can override with annotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Defaults {
    /// Longest job when the workload does not declare `sidekiq-guard.io/longest-job`.
    pub longest_job: Seconds,
    /// Sidekiq's `-t` when neither the command line nor an annotation gives it.
    #[serde(deserialize_with = "shutdown_timeout")]
    pub shutdown_timeout: Seconds,
    /// How long a remote quiet takes to be visible: two heartbeats (10 s each on Sidekiq 7+).
    pub quiet_latency: Seconds,
    /// Extra seconds added to every computed grace period.
    pub margin: Seconds,
    /// Port of the probe sidecar (7433 is taken by sidekiq_alive and Sidekiq Enterprise).
    pub probe_port: Port,
}

/// How the probe sidecar is injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SidecarPolicy {
    /// Native (init container with `restartPolicy: Always`), classic, or decided from the API
    /// server's version.
    pub mode: SidecarModeSetting,
    /// Image holding `sidekiq-guard-probe`; unset, the webhook's own (see [`Self::image`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<NonEmpty>,
    /// `imagePullPolicy` of the sidecar; the cluster's default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Secrets (in the pod's namespace) to pull the sidecar's image with, added to the pod's
    /// `imagePullSecrets` where it lacks them: pull secrets are the pod's, for all its
    /// containers, and the ServiceAccount's are added only to a pod that names none. Each a
    /// Secret's name, each once.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "pull_secret_names"
    )]
    pub image_pull_secrets: Vec<String>,
    /// Resource requests and limits of the sidecar.
    pub resources: Resources,
}

/// The policy's `sidecar.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SidecarModeSetting {
    /// Native sidecars where the API server is 1.29 or newer, classic otherwise.
    #[default]
    Auto,
    /// Always native.
    Native,
    /// Always classic.
    Classic,
}

/// The sidecar's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull when absent from the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

/// Container resources: quantities per resource name.
///
/// A policy that gives `resources` gives all of them: a side it leaves out is empty, not the
/// default (the API server then takes requests from limits), so that a raised limit never meets
/// a default request it did not ask for. Requests above their limits and negative quantities are
/// refused here, where the API server would refuse every injected pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ResourcesDocument")]
pub struct Resources {
    /// `requests`.
    pub requests: BTreeMap<ResourceName, Quantity>,
    /// `limits`.
    pub limits: BTreeMap<ResourceName, Quantity>,
}

/// `sidecar.resources` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ResourcesDocument {
    requests: BTreeMap<ResourceName, Quantity>,
    limits: BTreeMap<ResourceName, Quantity>,
}

impl TryFrom<ResourcesDocument> for Resources {
    type Error = String;

    fn try_from(document: ResourcesDocument) -> Result<Self, String> {
        let sides = [
            ("requests", &document.requests),
            ("limits", &document.limits),
        ];
        for (side, quantities) in sides {
            if let Some((name, quantity)) = quantities.iter().find(|(_, q)| q.is_negative()) {
                return Err(format!(
                    "{side}.{} {quantity}: a resource quantity must not be negative",
                    name.0
                ));
            }
        }
        for (name, request) in &document.requests {
            if let Some(limit) = document.limits.get(name).filter(|limit| request > *limit) {
                return Err(format!(
                    "requests.{0} {request} is above limits.{0} {limit}: the API server refuses a request above its limit",
                    name.0
                ));
            }
        }
        Ok(Self {
            requests: document.requests,
            limits: document.limits,
        })
    }
}

/// A container resource name the API server accepts: `cpu`, `memory`, `ephemeral-storage`,
/// `hugepages-<size>`, or an extended resource with a domain (`nvidia.com/gpu`). A typo such as
/// `memroy` would otherwise reach every injected pod, and the API server would refuse them all.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ResourceName(pub String);

impl ResourceName {
    fn is_valid(name: &str) -> bool {
        match name.split_once('/') {
            None => {
                matches!(name, "cpu" | "memory" | "ephemeral-storage")
                    || name.strip_prefix("hugepages-").is_some_and(|size| {
                        !size.starts_with(['+', '-']) && Quantity::parse(size).is_ok()
                    })
            }
            // An extended resource: a qualified name, never `requests.` (quota's prefix).
            Some((prefix, resource)) => {
                crate::names::is_dns_subdomain(prefix)
                    && !name.starts_with("requests.")
                    && crate::names::is_qualified_name_part(resource)
            }
        }
    }
}

/// Look-ups by `&str`, as in `resources.limits["memory"]` (the order is the string's).
impl std::borrow::Borrow<str> for ResourceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ResourceName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if Self::is_valid(&name) {
            return Ok(Self(name));
        }
        Err(de::Error::custom(format!(
            "unknown resource name {name:?}: expected cpu, memory, ephemeral-storage, hugepages-<size> or an extended resource such as example.com/device"
        )))
    }
}

/// Enforcement of findings at error severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Admit, with warnings.
    #[default]
    Warn,
    /// Reject.
    Deny,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            defaults: Defaults::default(),
            sidecar: SidecarPolicy::default(),
            enforcement: Enforcement::Warn,
            max_grace_period: Seconds(3600),
            excluded_namespaces: Vec::new(),
        }
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            longest_job: Seconds(60),
            shutdown_timeout: Seconds(crate::sidekiq::DEFAULT_TIMEOUT_SECS),
            quiet_latency: Seconds(20),
            margin: Seconds(0),
            probe_port: Port(crate::DEFAULT_PROBE_PORT),
        }
    }
}

impl SidecarPolicy {
    /// The image to inject: the one the policy names, else [`DEFAULT_IMAGE`].
    pub fn image(&self) -> &str {
        self.image.as_ref().map_or(DEFAULT_IMAGE, |image| &image.0)
    }
}

impl Default for SidecarPolicy {
    fn default() -> Self {
        Self {
            mode: SidecarModeSetting::Auto,
            image: None,
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            resources: Resources::default(),
        }
    }
}

impl Default for Resources {
    fn default() -> Self {
        let quantities = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(name, value)| {
                    (
                        ResourceName((*name).to_owned()),
                        Quantity::parse(value).expect("the default quantities are valid"),
                    )
                })
                .collect()
        };
        Self {
            requests: quantities(&[("cpu", "5m"), ("memory", "16Mi")]),
            limits: quantities(&[("memory", "32Mi")]),
        }
    }
}

/// The image of this very version, so that webhook and sidecar never skew.
pub const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/sidekiq-guard/sidekiq-guard:",
    env!("CARGO_PKG_VERSION")
);

/// A policy document that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not YAML (JSON is YAML).
    #[error("policy is not valid YAML or JSON")]
    Syntax(#[source] crate::errors::YamlError),
    /// Valid YAML, but a key or value is not what the policy accepts.
    #[error("policy {path}: {message}")]
    Invalid {
        /// Dotted path of the offending key, e.g. `sidecar.mode`.
        path: String,
        /// What was wrong and what is accepted.
        message: String,
    },
}

impl Policy {
    /// Parses a policy document written as YAML or JSON. An empty document is the default policy.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let value: Option<Value> = serde_saphyr::from_str(text)
            .map_err(|err| PolicyError::Syntax(crate::errors::YamlError::new(&err)))?;
        Self::from_value(value.unwrap_or(Value::Null))
    }

    /// Reads a policy from an already-parsed JSON value (e.g. Kubewarden settings). `null` is the
    /// default policy.
    pub fn from_value(value: Value) -> Result<Self, PolicyError> {
        match &value {
            Value::Null => return Ok(Self::default()),
            Value::Object(_) => {}
            other => {
                return Err(PolicyError::Invalid {
                    path: "(root)".into(),
                    message: format!(
                        "expected a mapping with any of defaults, sidecar, enforcement, maxGracePeriod, excludedNamespaces; found {}",
                        crate::workload::json_type(other)
                    ),
                });
            }
        }
        serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            PolicyError::Invalid {
                path: if path == "." { "(root)".into() } else { path },
                message: err.into_inner().to_string(),
            }
        })
    }
}

/// `maxGracePeriod`, at least a second: a maximum of 0 would report every Sidekiq workload
/// (SG009), and refuse them all under `enforcement: deny`.
fn grace_limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Seconds, D::Error> {
    let limit = Seconds::deserialize(deserializer)?;
    if limit.0 == 0 {
        return Err(de::Error::custom(
            "0 would report every Sidekiq workload's grace period (SG009), and refuse them all under enforcement: deny; expected a duration of at least 1s",
        ));
    }
    Ok(limit)
}

/// `defaults.shutdownTimeout`: a timeout Sidekiq starts with, since it stands for Sidekiq's.
fn shutdown_timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Seconds, D::Error> {
    let timeout = Seconds::deserialize(deserializer)?;
    if !crate::sidekiq::accepts_timeout(timeout.0) {
        return Err(de::Error::custom(
            "Sidekiq refuses a shutdown timeout of 0; expected a duration of at least 1s, such as 25s",
        ));
    }
    Ok(timeout)
}

/// `sidecar.imagePullSecrets`: Secret names (RFC 1123 subdomains, as the API server requires of
/// a pod's `imagePullSecrets[].name`: another name would get every injected pod refused), a
/// name written twice kept once.
fn pull_secret_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let mut names: Vec<String> = Vec::new();
    for name in Vec::<String>::deserialize(deserializer)? {
        if !crate::names::is_dns_subdomain(&name) {
            return Err(de::Error::custom(format!(
                "{name:?} is not a Secret name; expected lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
            )));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Whole seconds, written in the policy as a duration string (`90s`, `5m`) or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub u64);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&duration::format_secs(self.0))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            // An integer is read as its decimal text, so that the same limits hold as for a string.
            Value::Number(n) if n.is_u64() => duration::parse_secs(&n.to_string())
                .map(Seconds)
                .map_err(de::Error::custom),
            Value::String(text) => duration::parse_secs(&text)
                .map(Seconds)
                .map_err(de::Error::custom),
            other => Err(de::Error::custom(format!(
                "invalid duration {other}: expected {}",
                duration::ACCEPTED
            ))),
        }
    }
}

/// A TCP port the sidecar may listen on: from [`crate::FIRST_UNPRIVILEGED_PORT`] to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        value
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|port| *port >= crate::FIRST_UNPRIVILEGED_PORT)
            .map(Port)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "invalid port {value}: expected a number from 1024 to 65535 (the sidecar runs as non-root, and cannot bind below 1024)"
                ))
            })
    }
}

/// An image reference: not empty, and without the leading or trailing whitespace the API server
/// refuses in a container's `image` (every injected pod would be refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NonEmpty(pub String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().is_empty() {
            return Err(de::Error::custom("must not be empty"));
        }
        if text.trim() != text {
            return Err(de::Error::custom(format!(
                "{text:?} has leading or trailing whitespace, which Kubernetes refuses in an image"
            )));
        }
        Ok(NonEmpty(text))
    }
}

impl fmt::Display for NonEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn empty_document_is_the_default_policy() {
        assert_eq!(Policy::parse("").unwrap(), Policy::default());
        assert_eq!(Policy::parse("{}").unwrap(), Policy::default());
    }

    #[test]
    fn reads_a_full_policy_in_yaml() {
        let policy = Policy::parse(
            r#"
defaults:
  longestJob: 10m
  shutdownTimeout: 30
  quietLatency: 10s
  margin: 15s
  probePort: 9100
sidecar:
  mode: classic
  image: registry.example.com/sidekiq-guard:1.2.3
  imagePullPolicy: IfNotPresent
  resources:
    requests: {cpu: 10m, memory: 20Mi}
    limits: {memory: 40Mi}
enforcement: deny
maxGracePeriod: 2h
excludedNamespaces: [legacy]
"#,
        )
        .unwrap();
        assert_eq!(policy.defaults.longest_job, Seconds(600));
        assert_eq!(policy.defaults.shutdown_timeout, Seconds(30));
        assert_eq!(policy.defaults.quiet_latency, Seconds(10));
        assert_eq!(policy.defaults.margin, Seconds(15));
        assert_eq!(policy.defaults.probe_port, Port(9100));
        assert_eq!(policy.sidecar.mode, SidecarModeSetting::Classic);
        assert_eq!(
            policy.sidecar.image_pull_policy,
            Some(PullPolicy::IfNotPresent)
        );
        assert_eq!(
            policy.sidecar.resources.limits["memory"],
            Quantity::parse("40Mi").unwrap()
        );
        assert_eq!(policy.enforcement, Enforcement::Deny);
        assert_eq!(policy.max_grace_period, Seconds(7200));
        assert_eq!(policy.excluded_namespaces, vec!["legacy".to_owned()]);
    }

    #[test]
    fn json_is_accepted_too() {
        let policy = Policy::parse(r#"{"defaults": {"longestJob": "5m"}}"#).unwrap();
        assert_eq!(policy.defaults.longest_job, Seconds(300));
        assert_eq!(policy.sidecar, SidecarPolicy::default());
    }

    #[test]
    fn round_trips_through_its_own_serialisation() {
        let policy = Policy::default();
        let text = serde_json::to_string(&policy).unwrap();
        assert_eq!(Policy::parse(&text).unwrap(), policy);
    }

    #[rstest]
    #[case(
        "defaults: {longestJob: forever}",
        "policy defaults.longestJob: invalid duration \"forever\""
    )]
    #[case(
        "defaults: {longJob: 5m}",
        "policy defaults.longJob: unknown field `longJob`, expected one of `longestJob`, `shutdownTimeout`"
    )]
    #[case(
        "sidecar: {mode: nativ}",
        "policy sidecar.mode: unknown variant `nativ`, expected one of `auto`, `native`, `classic`"
    )]
    #[case(
        "defaults: {probePort: 70000}",
        "policy defaults.probePort: invalid port 70000"
    )]
    #[case(
        "defaults: {probePort: 80}",
        "policy defaults.probePort: invalid port 80: expected a number from 1024 to 65535 (the sidecar runs as non-root, and cannot bind below 1024)"
    )]
    #[case("sidecar: {image: ''}", "policy sidecar.image: must not be empty")]
    #[case(
        "sidecar:\n  image: |\n    example.com/sg:1\n",
        "policy sidecar.image: \"example.com/sg:1\\n\" has leading or trailing whitespace, which Kubernetes refuses in an image"
    )]
    #[case(
        "sidecar: {resources: {limits: {memory: lots}}}",
        "policy sidecar.resources.limits.memory: invalid quantity \"lots\""
    )]
    #[case(
        "sidecar: {resources: {requests: {memroy: 16Mi}}}",
        "policy sidecar.resources.requests.memroy: unknown resource name \"memroy\": expected cpu, memory"
    )]
    #[case(
        "enforcement: block",
        "policy enforcement: unknown variant `block`, expected `warn` or `deny`"
    )]
    #[case("maxGracePeriod: -5", "policy maxGracePeriod: invalid duration -5")]
    #[case("maxGracePeriod: 1.5", "policy maxGracePeriod: invalid duration 1.5")]
    #[case(
        "maxGracePeriod: 0s",
        "policy maxGracePeriod: 0 would report every Sidekiq workload's grace period (SG009)"
    )]
    #[case(
        "defaults: {shutdownTimeout: 0s}",
        "policy defaults.shutdownTimeout: Sidekiq refuses a shutdown timeout of 0; expected a duration of at least 1s"
    )]
    #[case(
        "defaults: {longestJob: 4000000000}",
        "policy defaults.longestJob: duration \"4000000000\" is too long: at most 100 years"
    )]
    #[case(
        "colour: blue",
        "policy colour: unknown field `colour`, expected one of `defaults`"
    )]
    #[case(
        "[1, 2]",
        "policy (root): expected a mapping with any of defaults, sidecar, enforcement, maxGracePeriod, excludedNamespaces; found a list"
    )]
    #[case(
        "excludedNamespaces: kube-system",
        "policy excludedNamespaces: invalid type: string \"kube-system\", expected a sequence"
    )]
    fn bad_values_name_their_path(#[case] text: &str, #[case] expected: &str) {
        let err = Policy::parse(text).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{err}");
    }

    #[test]
    fn resource_names_the_api_server_accepts() {
        let policy = Policy::parse(
            "sidecar: {resources: {limits: {hugepages-2Mi: 0, nvidia.com/gpu: 0, ephemeral-storage: 64Mi}}}",
        )
        .unwrap();
        assert_eq!(
            policy.sidecar.resources.limits["ephemeral-storage"].as_str(),
            "64Mi"
        );
        Policy::parse("sidecar: {resources: {limits: {foo/bar: 1}}}").unwrap();
        for bad in [
            "gpu",
            "hugepages-",
            "example.com/",
            "a/b/c",
            "CPU",
            "NVIDIA.com/gpu",
            "requests.example.com/x",
            "example.com/a b",
        ] {
            let text = format!("sidecar: {{resources: {{limits: {{'{bad}': 1}}}}}}");
            assert!(Policy::parse(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn given_resources_replace_the_defaults_whole() {
        let policy = Policy::parse("sidecar: {resources: {requests: {memory: 64Mi}}}").unwrap();
        let resources = &policy.sidecar.resources;
        assert_eq!(resources.requests.len(), 1);
        assert_eq!(resources.requests["memory"].as_str(), "64Mi");
        assert!(
            resources.limits.is_empty(),
            "no default 32Mi limit under a 64Mi request"
        );
        assert_eq!(
            Policy::parse("sidecar: {}").unwrap().sidecar.resources,
            Resources::default()
        );
    }

    #[rstest]
    #[case(
        "sidecar: {resources: {requests: {memory: 64Mi}, limits: {memory: 32Mi}}}",
        "policy sidecar.resources: requests.memory 64Mi is above limits.memory 32Mi: the API server refuses a request above its limit"
    )]
    #[case(
        "sidecar: {resources: {requests: {cpu: 0.5}, limits: {cpu: 400m}}}",
        "policy sidecar.resources: requests.cpu 0.5 is above limits.cpu 400m: the API server refuses a request above its limit"
    )]
    #[case(
        "sidecar: {resources: {limits: {cpu: -5m}}}",
        "policy sidecar.resources: limits.cpu -5m: a resource quantity must not be negative"
    )]
    #[case(
        "sidecar: {resources: {limits: {memory: '1e40'}}}",
        "policy sidecar.resources.limits.memory: invalid quantity \"1e40\": too large to compare"
    )]
    fn resources_the_api_server_would_refuse_are_refused(
        #[case] text: &str,
        #[case] expected: &str,
    ) {
        let err = Policy::parse(text).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported_as_such() {
        let err = Policy::parse("defaults: [unclosed").unwrap_err();
        assert!(matches!(err, PolicyError::Syntax(_)), "{err:?}");
        assert_eq!(err.to_string(), "policy is not valid YAML or JSON");
    }
}
