//! Where the pod lives in each object kind sidekiq-guard understands.
//!
//! A Pod is its own template; Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController
//! and Job keep it under `spec.template`; CronJob under `spec.jobTemplate.spec.template`. Everything
//! downstream works on the template through JSON pointers rooted at [`Workload::base`], so one code
//! path serves pods and every workload kind.

use std::fmt;

use crate::pointer::{self, Pointer as _};
use serde_json::{Map, Value};

/// The object kinds whose pods sidekiq-guard understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `v1/Pod`.
    Pod,
    /// `apps/v1/Deployment`.
    Deployment,
    /// `apps/v1/StatefulSet`.
    StatefulSet,
    /// `apps/v1/DaemonSet`.
    DaemonSet,
    /// `apps/v1/ReplicaSet`.
    ReplicaSet,
    /// `v1/ReplicationController`.
    ReplicationController,
    /// `batch/v1/Job`.
    Job,
    /// `batch/v1/CronJob`.
    CronJob,
}

/// The kinds sidekiq-guard reads, as messages list them: [`Kind::ALL`]'s names.
pub fn supported_kinds() -> String {
    Kind::ALL.map(Kind::name).join(", ")
}

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 8] = [
        Kind::Pod,
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::ReplicaSet,
        Kind::ReplicationController,
        Kind::Job,
        Kind::CronJob,
    ];

    /// Reads the `kind` field of an object.
    pub fn from_name(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == kind)
    }

    /// The kind of an object (or owner reference) from its `kind` and `apiVersion`: a custom
    /// resource that borrows a built-in kind's name (`example.com/v1` `Deployment`) is none of
    /// these. Without an `apiVersion` (a partial manifest), the name decides.
    pub fn of(object: &Value) -> Option<Self> {
        let kind = Self::from_name(object.get("kind")?.as_str()?)?;
        match object.get("apiVersion").and_then(Value::as_str) {
            Some(api_version) if !kind.serves(api_version) => None,
            _ => Some(kind),
        }
    }

    /// Whether `api_version` (`apps/v1`, `v1`) is in this kind's API group; the retired
    /// `extensions` group served Deployments, DaemonSets and ReplicaSets.
    pub fn serves(self, api_version: &str) -> bool {
        self.in_group(api_version.rsplit_once('/').map_or("", |(group, _)| group))
    }

    /// Whether `group` (`apps`, `""` for the core group) is this kind's API group.
    pub fn in_group(self, group: &str) -> bool {
        match self {
            Kind::Pod | Kind::ReplicationController => group.is_empty(),
            Kind::Deployment | Kind::DaemonSet | Kind::ReplicaSet => {
                matches!(group, "apps" | "extensions")
            }
            Kind::StatefulSet => group == "apps",
            Kind::Job | Kind::CronJob => group == "batch",
        }
    }

    /// The `kind` as Kubernetes spells it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::ReplicationController => "ReplicationController",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
        }
    }

    /// JSON pointer from the object to its pod template (empty for a Pod).
    pub fn template_pointer(self) -> &'static str {
        match self {
            Kind::Pod => "",
            Kind::CronJob => "/spec/jobTemplate/spec/template",
            _ => "/spec/template",
        }
    }

    /// Whether pods of this kind run to completion (a classic sidecar would keep them running).
    pub fn runs_to_completion(self) -> bool {
        matches!(self, Kind::Job | Kind::CronJob)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An object that is not a workload sidekiq-guard can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// Not a JSON object at all.
    #[error("expected a Kubernetes object (a JSON/YAML mapping), found {0}")]
    NotAnObject(&'static str),
    /// No `kind`, or a kind without a pod template.
    #[error("kind {0:?} has no pod template; supported kinds: {kinds}", kinds = supported_kinds())]
    UnsupportedKind(String),
    /// A built-in kind's name under another API group: a custom resource, left alone.
    #[error("{api_version} {kind} is a custom resource, not Kubernetes' {kind}")]
    ForeignKind {
        /// Its `apiVersion`.
        api_version: String,
        /// The built-in kind whose name it borrows.
        kind: Kind,
    },
    /// A supported kind with a missing or malformed part.
    #[error("{kind} {name}: {}", field_problem(path, expected, *missing))]
    Malformed {
        /// Object kind.
        kind: Kind,
        /// Object name, or `(unnamed)`.
        name: String,
        /// Dotted path of the malformed field.
        path: String,
        /// What the field must be.
        expected: &'static str,
        /// Whether the field is absent (a partial manifest, such as a kustomize patch), rather
        /// than present with the wrong shape.
        missing: bool,
    },
}

impl WorkloadError {
    /// What is wrong, without naming the object (for a report whose line names it already).
    pub fn problem(&self) -> String {
        match self {
            WorkloadError::Malformed {
                path,
                expected,
                missing,
                ..
            } => field_problem(path, expected, *missing),
            other => other.to_string(),
        }
    }
}

/// An absent field is said to be absent (a partial manifest), not to be of the wrong shape.
fn field_problem(path: &str, expected: &str, missing: bool) -> String {
    if missing {
        format!("{path} is absent")
    } else {
        format!("{path} must be {expected}")
    }
}

/// A pod or workload, with its pod template located.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    /// The object kind.
    pub kind: Kind,
    /// The whole object.
    pub object: &'a Value,
    /// The pod template (`metadata` + `spec`); the object itself for a Pod.
    pub template: &'a Value,
    /// The template's `spec`.
    pub spec: &'a Map<String, Value>,
    /// `spec.containers`.
    pub containers: &'a [Value],
}

/// The first field of the pod template that this project reads and that has the wrong type
/// (JSON pointer, what it must be). The API server refuses such an object before any webhook
/// sees it; offline, a manifest slip (`command: "bundle exec sidekiq"`, an annotation written as
/// a number) must be an input error, not a workload read as if the field were absent.
fn wrong_shape(template: &Value, base: &str) -> Option<(String, &'static str)> {
    // Where the status annotation goes: a patch would replace anything but a mapping.
    if present(template, "metadata").is_some_and(|v| !v.is_object()) {
        return Some((format!("{base}/metadata"), "an object"));
    }
    // Labels too: an unquoted `sidekiq-guard.io/inject: false` is a YAML boolean, which
    // kubectl refuses, and read as no label it would opt the pod in.
    for field in ["annotations", "labels"] {
        let Some(values) = template
            .get("metadata")
            .and_then(|m| m.get(field))
            .filter(|v| !v.is_null())
        else {
            continue;
        };
        let Some(map) = values.as_object() else {
            return Some((format!("{base}/metadata/{field}"), "a map of strings"));
        };
        // A null value is read as "" (as kubectl and the API server read it).
        if let Some((key, _)) = map.iter().find(|(_, v)| !v.is_string() && !v.is_null()) {
            return Some((
                format!("{base}/metadata/{field}/{}", pointer::escape(key)),
                "a string (quote it)",
            ));
        }
    }
    let spec = template.get("spec")?;
    if present(spec, "terminationGracePeriodSeconds").is_some_and(|v| !v.is_u64() && !v.is_i64()) {
        return Some((
            format!("{base}/spec/terminationGracePeriodSeconds"),
            "a whole number of seconds",
        ));
    }
    for list in ["containers", "initContainers"] {
        let Some(containers) = present(spec, list) else {
            continue;
        };
        let Some(containers) = containers.as_array() else {
            return Some((format!("{base}/spec/{list}"), "a list"));
        };
        for (index, container) in containers.iter().enumerate() {
            let at = |field: &str| format!("{base}/spec/{list}/{index}/{field}");
            if !container.is_object() {
                return Some((at("").trim_end_matches('/').to_owned(), "an object"));
            }
            for field in ["command", "args"] {
                if present(container, field).is_some_and(|v| {
                    v.as_array()
                        .is_none_or(|words| !words.iter().all(Value::is_string))
                }) {
                    return Some((at(field), "a list of strings"));
                }
            }
            for field in ["env", "envFrom", "ports"] {
                if present(container, field).is_some_and(|v| {
                    v.as_array()
                        .is_none_or(|items| !items.iter().all(Value::is_object))
                }) {
                    return Some((at(field), "a list of objects"));
                }
            }
            // The sidecar copies entries (the Redis variables): an unquoted `value: 6379`,
            // which kubectl refuses, must not be copied into a patch as a number.
            for (entry, item) in self::list(container, "env").iter().enumerate() {
                for key in ["name", "value"] {
                    if present(item, key).is_some_and(|v| !v.is_string()) {
                        return Some((at(&format!("env/{entry}/{key}")), "a string (quote it)"));
                    }
                }
            }
            for field in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if present(container, field).is_some_and(|v| !v.is_object()) {
                    return Some((at(field), "an object"));
                }
            }
            if let Some(lifecycle) = present(container, "lifecycle") {
                for hook in ["preStop", "postStart"] {
                    if present(lifecycle, hook).is_some_and(|v| !v.is_object()) {
                        return Some((at(&format!("lifecycle/{hook}")), "an object"));
                    }
                }
            }
        }
    }
    None
}

/// `value[key]` unless absent or null (which Kubernetes reads as absent).
fn present<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    value.get(key).filter(|v| !v.is_null())
}

impl<'a> Workload<'a> {
    /// Whether two pods of this object may run at once: replicas, a rolling update that starts
    /// the new pod before the old one ends, parallel or overlapping Jobs. A lone Pod never; a
    /// single replica replaced by `Recreate` (a Deployment) or in order (a StatefulSet), a Job
    /// of parallelism 1, a CronJob that forbids a second running Job, neither. (`Replace`
    /// starts the new Job while the old one's pod still drains.)
    pub fn pods_may_overlap(&self) -> bool {
        let spec = self.object.get("spec");
        let number =
            |value: Option<&Value>, default: u64| value.and_then(Value::as_u64).unwrap_or(default);
        let replicas = number(spec.and_then(|s| s.get("replicas")), 1);
        match self.kind {
            Kind::Pod => false,
            Kind::Deployment => {
                replicas > 1
                    || self
                        .object
                        .at("/spec/strategy/type")
                        .and_then(Value::as_str)
                        != Some("Recreate")
            }
            Kind::StatefulSet | Kind::ReplicaSet | Kind::ReplicationController => replicas > 1,
            Kind::DaemonSet => true,
            Kind::Job => number(spec.and_then(|s| s.get("parallelism")), 1) > 1,
            Kind::CronJob => {
                let policy = self
                    .object
                    .at("/spec/concurrencyPolicy")
                    .and_then(Value::as_str);
                policy != Some("Forbid")
                    || number(self.object.at("/spec/jobTemplate/spec/parallelism"), 1) > 1
            }
        }
    }

    /// Whether this object's pods run one per node: a DaemonSet, or a pod one created.
    pub fn one_pod_per_node(&self) -> bool {
        self.kind == Kind::DaemonSet || self.owned_by(Kind::DaemonSet)
    }

    /// Whether one of the object's owner references is of `kind` (read like [`owners`]: a
    /// custom resource borrowing the kind's name is not it).
    fn owned_by(&self, kind: Kind) -> bool {
        self.object
            .at("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|owners| owners.iter().any(|o| Kind::of(o) == Some(kind)))
    }

    /// Locates the pod template of `object`.
    pub fn locate(object: &'a Value) -> Result<Self, WorkloadError> {
        let map = object
            .as_object()
            .ok_or_else(|| WorkloadError::NotAnObject(json_type(object)))?;
        let kind_name = map.get("kind").and_then(Value::as_str).unwrap_or("");
        let kind = Kind::from_name(kind_name)
            .ok_or_else(|| WorkloadError::UnsupportedKind(kind_name.to_owned()))?;
        if let Some(api_version) = map.get("apiVersion").and_then(Value::as_str)
            && !kind.serves(api_version)
        {
            return Err(WorkloadError::ForeignKind {
                api_version: api_version.to_owned(),
                kind,
            });
        }
        let malformed = |pointer: &str, expected| WorkloadError::Malformed {
            kind,
            name: display_name(object),
            path: dotted(pointer),
            expected,
            // A null field reads as absent in Kubernetes; a null list entry is an entry.
            missing: match object.at(pointer) {
                None => true,
                Some(value) => value.is_null() && !ends_in_index(pointer),
            },
        };
        if present(object, "metadata").is_some_and(|v| !v.is_object()) {
            return Err(malformed("/metadata", "an object"));
        }
        let template = object
            .at(kind.template_pointer())
            .filter(|t| t.is_object())
            .ok_or_else(|| malformed(kind.template_pointer(), "an object"))?;
        // Only an error needs the path: built there, not for every well-formed object.
        let spec_path = || pointer::below(kind.template_pointer(), "spec");
        let spec = template
            .get("spec")
            .and_then(Value::as_object)
            .ok_or_else(|| malformed(&spec_path(), "an object"))?;
        let containers = spec
            .get("containers")
            .and_then(Value::as_array)
            .filter(|list| !list.is_empty())
            .ok_or_else(|| {
                malformed(
                    &pointer::below(&spec_path(), "containers"),
                    "a non-empty list",
                )
            })?;
        if let Some((pointer, expected)) = wrong_shape(template, kind.template_pointer()) {
            return Err(malformed(&pointer, expected));
        }
        Ok(Self {
            kind,
            object,
            template,
            spec,
            containers,
        })
    }

    /// JSON pointer to the template (empty for a Pod).
    pub fn base(&self) -> &'static str {
        self.kind.template_pointer()
    }

    /// The object's `metadata.name` (or `generateName` followed by `*`, as pods of a ReplicaSet
    /// are named at admission time).
    pub fn name(&self) -> String {
        display_name(self.object)
    }

    /// The object's `metadata.namespace`, when set.
    pub fn namespace(&self) -> Option<&'a str> {
        self.object
            .at("/metadata/namespace")
            .and_then(Value::as_str)
    }

    /// The template's `metadata.annotations`.
    pub fn annotations(&self) -> Option<&'a Map<String, Value>> {
        self.template
            .at("/metadata/annotations")
            .and_then(Value::as_object)
    }

    /// A label of the pod (a workload's template). Never the workload's own labels: the
    /// webhook's object selector sees only the labels its pods are created with, so a
    /// `sidekiq-guard.io/inject` on a Deployment's `metadata` opts nothing in or out.
    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.template
            .get("metadata")?
            .get("labels")?
            .get(key)?
            .as_str()
    }

    /// `sidekiq-guard.io/inject` on a workload's own `metadata.labels` when its pod template
    /// does not carry it: it decides whether the workload itself is reviewed (an object
    /// selector sees the workload's labels), never whether its pods are injected. `None` for a
    /// pod, and for a template that carries the label.
    pub fn inject_label_on_workload_only(&self) -> Option<&'a str> {
        if self.kind == Kind::Pod || self.label(crate::annotations::INJECT).is_some() {
            return None;
        }
        self.object
            .at("/metadata/labels")?
            .get(crate::annotations::INJECT)?
            .as_str()
    }

    /// `spec.initContainers` (empty when absent).
    pub fn init_containers(&self) -> &'a [Value] {
        self.spec
            .get("initContainers")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// Whether the pod uses the node's network (`hostNetwork`): its hostname and ports are the
    /// node's, and the node's loopback is its own.
    pub fn host_network(&self) -> bool {
        self.spec.get("hostNetwork").and_then(Value::as_bool) == Some(true)
    }

    /// Whether the pod runs to completion: a Job/CronJob template, a pod the Job controller
    /// made, or any pod whose `restartPolicy` is `Never` or `OnFailure` (`kubectl run
    /// --restart=Never`, a CI or workflow step) — a pod that completes once its containers exit.
    pub fn runs_to_completion(&self) -> bool {
        if self.kind.runs_to_completion() {
            return true;
        }
        if matches!(
            self.spec.get("restartPolicy").and_then(Value::as_str),
            Some("Never" | "OnFailure")
        ) {
            return true;
        }
        self.owned_by(Kind::Job)
            || self.label("batch.kubernetes.io/job-name").is_some()
            || self.label("job-name").is_some()
    }

    /// A human path from the object root to a field of the template: `spec.template.spec.X`.
    pub fn path(&self, template_relative: &str) -> String {
        let base = dotted(self.base());
        if base.is_empty() {
            template_relative.to_owned()
        } else {
            format!("{base}.{template_relative}")
        }
    }
}

/// The workloads a pod may belong to, most specific first: its controller (`ReplicaSet`,
/// `StatefulSet`, `DaemonSet`, `Job`), then what owns that by Kubernetes' naming: the Deployment
/// of a ReplicaSet named `<deployment>-<pod-template-hash>`, the CronJob of a Job named
/// `<cronjob>-<scheduled minute>`. Callers match these against the workloads they listed.
pub fn owners(pod: &Value) -> Vec<(Kind, String)> {
    let Some(owner) = pod
        .at("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|owners| {
            owners
                .iter()
                .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
                .or_else(|| owners.first())
        })
    else {
        return Vec::new();
    };
    let (Some(kind), Some(name)) = (Kind::of(owner), owner.get("name").and_then(Value::as_str))
    else {
        return Vec::new();
    };
    let mut owners = vec![(kind, name.to_owned())];
    match kind {
        Kind::ReplicaSet => {
            let hash = pod
                .at("/metadata/labels/pod-template-hash")
                .and_then(Value::as_str);
            if let Some(deployment) = hash.and_then(|h| name.strip_suffix(h)?.strip_suffix('-')) {
                owners.push((Kind::Deployment, deployment.to_owned()));
            }
        }
        Kind::Job => {
            if let Some((cronjob, minute)) = name.rsplit_once('-')
                && !minute.is_empty()
                && minute.bytes().all(|b| b.is_ascii_digit())
            {
                owners.push((Kind::CronJob, cronjob.to_owned()));
            }
        }
        _ => {}
    }
    owners
}

/// `metadata.name`, or `generateName` followed by `*`, or `(unnamed)`.
pub fn display_name(object: &Value) -> String {
    let meta = object.get("metadata");
    let field = |key| meta.and_then(|m| m.get(key)).and_then(Value::as_str);
    match (field("name"), field("generateName")) {
        (Some(name), _) if !name.is_empty() => name.to_owned(),
        (_, Some(prefix)) => format!("{prefix}*"),
        _ => "(unnamed)".to_owned(),
    }
}

/// Whether the pointer's last token is an array index (`/spec/containers/0`).
fn ends_in_index(pointer: &str) -> bool {
    pointer
        .rsplit('/')
        .next()
        .is_some_and(|token| !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()))
}

/// `/spec/template` → `spec.template`.
/// A JSON pointer as the path users read in findings: `spec.containers[0].command`,
/// `metadata.annotations["sidekiq-guard.io/longest-job"]`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').filter(|t| !t.is_empty()) {
        let key = pointer::unescape(token);
        if key.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{key}]"));
        } else if key.contains(['.', '/']) {
            out.push_str(&format!("[{key:?}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&key);
        }
    }
    out
}

/// How a JSON value's type reads in a sentence: `a list`, `a string`…
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The array under `key` of a JSON object (`env`, `envFrom`, `webhooks`…): empty when absent
/// or not an array, as Kubernetes reads an omitted list.
pub(crate) fn list<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A container's `env` indexed by name, for following `$(VAR)` references: Kubernetes
/// allows thousands of entries, and a review must stay linear in them (a scan per reference
/// made a 250 KB pod take seconds). One sorted vector, no hashing; and none at all for the
/// tens of entries a container usually has, which a scan reads faster than a sort.
pub(crate) struct EnvIndex<'a> {
    entries: &'a [Value],
    /// `(name, position)` of every named entry, sorted; empty for a short `env`, scanned.
    sorted: Vec<(&'a str, usize)>,
}

/// How many entries an `env` has before [`EnvIndex`] sorts them.
const SCANNED_ENV: usize = 32;

impl<'a> EnvIndex<'a> {
    pub(crate) fn new(entries: &'a [Value]) -> Self {
        let mut sorted = Vec::new();
        if entries.len() > SCANNED_ENV {
            sorted.extend(
                entries
                    .iter()
                    .enumerate()
                    .filter_map(|(at, entry)| Some((env_name(entry)?, at))),
            );
            sorted.sort_unstable();
        }
        Self { entries, sorted }
    }

    fn scanned(&self) -> bool {
        self.entries.len() <= SCANNED_ENV
    }

    /// The sorted `(name, position)` pairs of `name`.
    fn range(&self, name: &str) -> &[(&'a str, usize)] {
        let start = self.sorted.partition_point(|(n, _)| *n < name);
        let end = start + self.sorted[start..].partition_point(|(n, _)| *n == name);
        &self.sorted[start..end]
    }

    /// The entry named `name` the container gets: the last one.
    pub(crate) fn last(&self, name: &str) -> Option<&'a Value> {
        self.last_at(name).map(|at| &self.entries[at])
    }

    /// The position of the first entry named `name`.
    pub(crate) fn first_at(&self, name: &str) -> Option<usize> {
        if self.scanned() {
            return self.entries.iter().position(|e| env_name(e) == Some(name));
        }
        self.range(name).first().map(|(_, at)| *at)
    }

    /// The position of the last entry named `name`.
    pub(crate) fn last_at(&self, name: &str) -> Option<usize> {
        self.last_before(name, self.entries.len())
    }

    /// The position of the last entry named `name` before position `at`: the definition a
    /// `$(name)` in the entry at `at` expands to.
    pub(crate) fn last_before(&self, name: &str, at: usize) -> Option<usize> {
        if self.scanned() {
            let before = &self.entries[..at.min(self.entries.len())];
            return before.iter().rposition(|e| env_name(e) == Some(name));
        }
        let range = self.range(name);
        let before = range.partition_point(|(_, p)| *p < at);
        before.checked_sub(1).map(|i| range[i].1)
    }
}

/// An `env` entry's name.
pub(crate) fn env_name(entry: &Value) -> Option<&str> {
    entry.get("name").and_then(Value::as_str)
}

/// The entry of `entries` (a container's `env`) named `name` that the container gets: the
/// last one, as the kubelet keeps it.
pub(crate) fn env_entry<'a>(entries: &'a [Value], name: &str) -> Option<&'a Value> {
    entries
        .iter()
        .rev()
        .find(|entry| env_name(entry) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_index_finds_the_definitions_kubernetes_uses() {
        // Scanned when short, sorted when long: the same answers.
        for padding in [0, 40] {
            let mut env: Vec<Value> = (0..padding)
                .map(|i| json!({"name": format!("P{i}"), "value": "p"}))
                .collect();
            env.extend([
                json!({"name": "A", "value": "1"}),
                json!({"name": "B", "value": "$(A)"}),
                json!({"name": "A", "value": "2"}),
                json!({"value": "nameless"}),
                json!({"name": "C", "value": "$(A)"}),
            ]);
            let index = EnvIndex::new(&env);
            let at = |i: usize| Some(padding + i);
            assert_eq!(index.last("A"), Some(&env[padding + 2]));
            assert_eq!((index.first_at("A"), index.last_at("A")), (at(0), at(2)));
            // B's $(A) is the first A; C's the second; nothing before the first.
            assert_eq!(index.last_before("A", padding + 1), at(0));
            assert_eq!(index.last_before("A", padding + 4), at(2));
            assert_eq!(index.last_before("A", padding), None);
            assert_eq!(index.last_before("C", padding + 4), None);
            assert_eq!((index.last("Z"), index.first_at("Z")), (None, None));
            assert_eq!(index.last_before("Z", padding + 5), None);
        }
    }

    #[rstest::rstest]
    #[case(json!({"containers": [{"name": "w", "command": "bundle exec sidekiq"}]}), "spec.containers[0].command must be a list of strings")]
    #[case(json!({"containers": [{"name": "w", "env": {"REDIS_URL": "redis://r"}}]}), "spec.containers[0].env must be a list of objects")]
    #[case(json!({"containers": [{"name": "w", "env": [{"name": "REDIS_PORT", "value": 6379}]}]}), "spec.containers[0].env[0].value must be a string (quote it)")]
    #[case(json!({"containers": [{"name": "w", "env": [{"name": "A", "value": "1"}, {"name": ["B"]}]}]}), "spec.containers[0].env[1].name must be a string (quote it)")]
    #[case(json!({"containers": [{"name": "w", "lifecycle": {"preStop": "sleep 10"}}]}), "spec.containers[0].lifecycle.preStop must be an object")]
    #[case(json!({"containers": [{"name": "w", "livenessProbe": true}]}), "spec.containers[0].livenessProbe must be an object")]
    #[case(json!({"containers": [{"name": "w"}], "initContainers": [{"name": "i", "args": [1]}]}), "spec.initContainers[0].args must be a list of strings")]
    #[case(json!({"containers": [{"name": "w"}], "terminationGracePeriodSeconds": "600"}), "spec.terminationGracePeriodSeconds must be a whole number of seconds")]
    fn fields_of_the_wrong_type_are_named(#[case] spec: Value, #[case] expected: &str) {
        let pod = json!({"kind": "Pod", "metadata": {"name": "w"}, "spec": spec});
        let err = Workload::locate(&pod).unwrap_err().to_string();
        assert!(err.ends_with(expected), "{err}");
    }

    /// A custom resource that borrows a built-in kind's name is not that kind; the retired
    /// groups that served a kind still do, and a partial manifest without `apiVersion` is read.
    #[test]
    fn the_api_group_tells_a_workload_from_a_custom_resource() {
        let object = |api_version: Option<&str>, kind: &str| {
            let mut object = json!({"kind": kind, "metadata": {"name": "w"},
                                    "spec": {"template": {"spec": spec()}, "jobTemplate": {"spec": {"template": {"spec": spec()}}}}});
            if let Some(api_version) = api_version {
                object["apiVersion"] = json!(api_version);
            }
            object
        };
        for (api_version, kind) in [
            (Some("apps/v1"), "Deployment"),
            (Some("extensions/v1beta1"), "Deployment"),
            (Some("batch/v1beta1"), "CronJob"),
            (Some("v1"), "ReplicationController"),
            (None, "StatefulSet"),
        ] {
            let object = object(api_version, kind);
            assert!(Workload::locate(&object).is_ok(), "{api_version:?} {kind}");
            assert!(Kind::of(&object).is_some(), "{api_version:?} {kind}");
        }
        let custom = object(Some("example.com/v1"), "Deployment");
        assert_eq!(
            Workload::locate(&custom).unwrap_err().to_string(),
            "example.com/v1 Deployment is a custom resource, not Kubernetes' Deployment"
        );
        assert_eq!(Kind::of(&custom), None);
        assert_eq!(Kind::of(&object(Some("apps/v1"), "Job")), None);
        assert_eq!(
            Kind::of(&json!({"apiVersion": "v1", "kind": "Pod"})),
            Some(Kind::Pod)
        );
    }

    /// A null field is absent (a partial manifest); a null list entry is an entry of the
    /// wrong shape, which an offline run refuses as input.
    #[test]
    fn a_null_container_is_wrong_shape_not_absent() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "w"}, "spec": {"containers": [null]}});
        assert!(matches!(
            Workload::locate(&pod),
            Err(WorkloadError::Malformed { missing: false, .. })
        ));
        let partial =
            json!({"kind": "Deployment", "metadata": {"name": "w"}, "spec": {"template": null}});
        assert!(matches!(
            Workload::locate(&partial),
            Err(WorkloadError::Malformed { missing: true, .. })
        ));
    }

    #[test]
    fn a_label_that_is_not_a_string_is_wrong_shape() {
        // `sidekiq-guard.io/inject: false` unquoted: read as no label, it would opt the pod in.
        let pod = json!({"kind": "Pod", "metadata": {"name": "w", "labels": {"sidekiq-guard.io/inject": false}},
                         "spec": spec()});
        assert_eq!(
            Workload::locate(&pod).unwrap_err().to_string(),
            "Pod w: metadata.labels[\"sidekiq-guard.io/inject\"] must be a string (quote it)"
        );
    }

    /// A patch adding the status annotation would replace a `metadata` that is not a mapping.
    #[test]
    fn metadata_that_is_not_a_mapping_is_wrong_shape_not_absent() {
        let err = |object: Value| Workload::locate(&object).unwrap_err();
        let pod = json!({"kind": "Pod", "metadata": "x", "spec": spec()});
        assert_eq!(
            err(pod.clone()).to_string(),
            "Pod (unnamed): metadata must be an object"
        );
        assert!(matches!(
            err(pod),
            WorkloadError::Malformed { missing: false, .. }
        ));
        let template = json!({"kind": "Deployment", "metadata": {"name": "w"},
                              "spec": {"template": {"metadata": ["x"], "spec": spec()}}});
        assert_eq!(
            err(template).to_string(),
            "Deployment w: spec.template.metadata must be an object"
        );
        let own = json!({"kind": "Deployment", "metadata": 7,
                         "spec": {"template": {"spec": spec()}}});
        assert_eq!(
            err(own).to_string(),
            "Deployment (unnamed): metadata must be an object"
        );
        let null = json!({"kind": "Pod", "metadata": null, "spec": spec()});
        assert!(Workload::locate(&null).is_ok());
    }

    #[test]
    fn an_annotation_written_as_a_number_is_named_with_its_key() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "w", "annotations": {"sidekiq-guard.io/longest-job": 300}},
                         "spec": {"containers": [{"name": "w"}]}});
        let err = Workload::locate(&pod).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "metadata.annotations[\"sidekiq-guard.io/longest-job\"] must be a string (quote it)"
            ),
            "{err}"
        );
        let fine = json!({"kind": "Pod", "metadata": {"name": "w", "annotations": {"a": "1"}},
                          "spec": {"containers": [{"name": "w", "command": null, "env": []}], "terminationGracePeriodSeconds": 30}});
        assert!(Workload::locate(&fine).is_ok());
    }
    use serde_json::json;

    fn spec() -> Value {
        json!({"containers": [{"name": "worker", "image": "app"}]})
    }

    #[test]
    fn locates_the_template_of_every_kind() {
        for kind in Kind::ALL {
            let mut object = json!({"kind": kind.name(), "metadata": {"name": "x"}});
            let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": spec()});
            match kind {
                Kind::Pod => object["spec"] = spec(),
                Kind::CronJob => {
                    object["spec"] = json!({"jobTemplate": {"spec": {"template": template}}});
                }
                _ => object["spec"] = json!({"template": template}),
            }
            let workload = Workload::locate(&object).unwrap();
            assert_eq!(workload.kind, kind);
            assert_eq!(workload.containers.len(), 1);
            assert!(
                workload
                    .path("spec.containers[0]")
                    .ends_with("spec.containers[0]")
            );
        }
    }

    #[test]
    fn paths_are_rooted_at_the_object() {
        let object = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": spec()}}}}});
        let workload = Workload::locate(&object).unwrap();
        assert_eq!(
            workload.path("spec.terminationGracePeriodSeconds"),
            "spec.jobTemplate.spec.template.spec.terminationGracePeriodSeconds"
        );
    }

    #[test]
    fn errors_say_what_is_missing() {
        let err = |v: Value| Workload::locate(&v).unwrap_err().to_string();
        assert_eq!(
            err(json!({"kind": "ConfigMap"})),
            "kind \"ConfigMap\" has no pod template; supported kinds: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob"
        );
        assert_eq!(
            err(json!({"kind": "Deployment", "metadata": {"name": "w"}, "spec": {}})),
            "Deployment w: spec.template is absent"
        );
        assert_eq!(
            err(
                json!({"kind": "Pod", "metadata": {"generateName": "w-"}, "spec": {"containers": []}})
            ),
            "Pod w-*: spec.containers must be a non-empty list"
        );
        assert_eq!(
            err(json!([1])),
            "expected a Kubernetes object (a JSON/YAML mapping), found a list"
        );
    }

    #[test]
    fn owners_by_kubernetes_naming() {
        let pod = json!({"metadata": {
            "labels": {"pod-template-hash": "7d9c8f6b5"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "rails-worker-7d9c8f6b5", "controller": true}],
        }});
        assert_eq!(
            owners(&pod),
            vec![
                (Kind::ReplicaSet, "rails-worker-7d9c8f6b5".into()),
                (Kind::Deployment, "rails-worker".into())
            ]
        );
        let pod = json!({"metadata": {"ownerReferences": [{"kind": "Job", "name": "nightly-backfill-29402520", "controller": true}]}});
        assert_eq!(
            owners(&pod),
            vec![
                (Kind::Job, "nightly-backfill-29402520".into()),
                (Kind::CronJob, "nightly-backfill".into())
            ]
        );
        assert_eq!(owners(&json!({"metadata": {}})), vec![]);
    }

    #[test]
    fn recognises_job_pods() {
        let pod = json!({"kind": "Pod", "metadata": {"ownerReferences": [{"kind": "Job", "name": "j"}]}, "spec": spec()});
        assert!(Workload::locate(&pod).unwrap().runs_to_completion());
        let pod = json!({"kind": "Pod", "metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "r"}]}, "spec": spec()});
        assert!(!Workload::locate(&pod).unwrap().runs_to_completion());
        // A custom resource named Job (or DaemonSet) owns a pod like any controller.
        let pod = json!({"kind": "Pod", "metadata": {"ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Job", "name": "j"}]}, "spec": spec()});
        assert!(!Workload::locate(&pod).unwrap().runs_to_completion());
        let pod = json!({"kind": "Pod", "metadata": {"ownerReferences": [{"apiVersion": "example.com/v1", "kind": "DaemonSet", "name": "d"}]}, "spec": spec()});
        assert!(!Workload::locate(&pod).unwrap().one_pod_per_node());
        let pod = json!({"kind": "Pod", "metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d"}]}, "spec": spec()});
        assert!(Workload::locate(&pod).unwrap().one_pod_per_node());
    }

    #[test]
    fn a_pod_that_is_not_restarted_runs_to_completion() {
        let with_policy = |policy: &str| {
            let mut spec = spec();
            spec["restartPolicy"] = json!(policy);
            json!({"kind": "Pod", "metadata": {"name": "one-off"}, "spec": spec})
        };
        for (policy, completes) in [("Never", true), ("OnFailure", true), ("Always", false)] {
            let pod = with_policy(policy);
            assert_eq!(
                Workload::locate(&pod).unwrap().runs_to_completion(),
                completes,
                "{policy}"
            );
        }
    }

    #[test]
    fn labels_are_the_pods_not_the_workloads() {
        let deployment = json!({
            "kind": "Deployment",
            "metadata": {"labels": {"sidekiq-guard.io/inject": "false"}},
            "spec": {"template": {"metadata": {"labels": {"app": "worker"}}, "spec": spec()}}
        });
        let workload = Workload::locate(&deployment).unwrap();
        assert_eq!(workload.label("sidekiq-guard.io/inject"), None);
        assert_eq!(workload.label("app"), Some("worker"));
    }
}
