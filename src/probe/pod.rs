//! Which Sidekiq processes belong to this pod.
//!
//! A process names itself `hostname:pid:nonce`, where the hostname is `$DYNO` when set and else
//! the machine's hostname, which in a pod is `spec.hostname`, else the pod name cut by the
//! kubelet to 63 characters. Inside the pod the probe can simply read the hostname the kernel
//! reports — the same one Sidekiq reads, whatever `hostNetwork` or `setHostnameAsFQDN` say —
//! and falls back to computing it from the pod name.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::annotations;
use crate::detect::{self, Detection};
use crate::pointer::Pointer as _;
use crate::sidecar::{DYNO, references};
use crate::sidekiq::records::Identity;
use crate::workload::list;

/// The longest hostname the kubelet gives a pod.
pub const HOSTNAME_MAX: usize = 63;

/// The hostname the kubelet gives a pod: `spec.hostname` if set, else the pod name; cut to 63
/// characters and stripped of trailing `-` and `.` (kubelet `truncatePodHostnameIfNeeded`).
/// `None` when nothing is left.
pub fn pod_hostname(pod_name: &str, spec_hostname: Option<&str>) -> Option<String> {
    let name = spec_hostname.filter(|h| !h.is_empty()).unwrap_or(pod_name);
    if name.len() <= HOSTNAME_MAX {
        return (!name.is_empty()).then(|| name.to_owned());
    }
    // Pod names are DNS subdomains (ASCII), but never slice through a character regardless.
    let mut end = HOSTNAME_MAX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let cut = name[..end].trim_end_matches(['-', '.']);
    (!cut.is_empty()).then(|| cut.to_owned())
}

/// Whether the process `identity` runs on `hostname`, judged from the identity alone so that a
/// process whose hash is unreadable or expired is still attributed to its pod.
pub fn belongs_to(identity: &str, hostname: &str) -> bool {
    Identity::parse(identity).is_some_and(|id| id.host == hostname)
}

/// The host part of a pod's Sidekiq process identities, as far as the pod object tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityHost {
    /// Processes named `host:pid:nonce` with this host are the pod's.
    Known(String),
    /// The object cannot tell; why, for a message.
    Unknown(String),
}

/// The host part of `pod`'s Sidekiq process identities, read from the object the way Sidekiq
/// computes it inside the pod (`ENV["DYNO"] || Socket.gethostname`): the Sidekiq container's
/// `DYNO` when its `env` sets it — literally (with `$(VAR)` expansion) or from a pod field —
/// else the pod's hostname. A `DYNO` taken from a Secret, a ConfigMap or a resource is
/// [`IdentityHost::Unknown`]: guessing the hostname would attribute the pod no process, and a
/// drain would then report an idle pod it never quieted. (`DYNO` through `envFrom` is not
/// seen; on Kubernetes it is set, if at all, by name.)
pub fn identity_host(pod: &Value) -> IdentityHost {
    let containers = pod
        .at("/spec/containers")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let annotated = pod
        .at("/metadata/annotations")
        .and_then(|a| a.get(annotations::CONTAINER))
        .and_then(Value::as_str)
        .map(str::trim);
    let with_dyno: Vec<&Value> = match detect::detect(containers, annotated) {
        Detection::Found(found) => containers.get(found.index).into_iter().collect(),
        // Which container is Sidekiq's is unclear: any container's DYNO is a lead.
        _ => containers
            .iter()
            .filter(|c| dyno_entry(c).is_some())
            .collect(),
    };
    let Some(container) = with_dyno.first() else {
        return hostname_of(pod);
    };
    match dyno(pod, container) {
        None => hostname_of(pod),
        Some(Ok(host)) => IdentityHost::Known(host),
        Some(Err(why)) => IdentityHost::Unknown(why),
    }
}

/// The identity hosts of pods listed together, and which pod each one names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts {
    unique: HashMap<String, usize>,
    shared: HashSet<String>,
    /// The pods (by index) whose processes cannot be told in Redis, and why: the object does
    /// not show their host, or another listed pod has the same one.
    pub unresolved: Vec<(usize, String)>,
}

impl Hosts {
    /// Indexes `pods` by [`identity_host`]. Two pods with one host — same-named StatefulSet
    /// pods in two namespaces, or one `DYNO` — name no process: whose it is cannot be told.
    pub fn index<'a>(pods: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut by_host: HashMap<String, Vec<(usize, String)>> = HashMap::new();
        let mut hosts = Hosts::default();
        for (index, pod) in pods.into_iter().enumerate() {
            match identity_host(pod) {
                IdentityHost::Known(host) => by_host
                    .entry(host)
                    .or_default()
                    .push((index, full_name(pod))),
                IdentityHost::Unknown(why) => hosts.unresolved.push((index, why)),
            }
        }
        for (host, pods) in by_host {
            if let [(index, _)] = pods.as_slice() {
                hosts.unique.insert(host, *index);
                continue;
            }
            for (index, _) in &pods {
                let others: Vec<&str> = pods
                    .iter()
                    .filter(|(other, _)| other != index)
                    .map(|(_, name)| name.as_str())
                    .collect();
                hosts.unresolved.push((
                    *index,
                    format!(
                        "pod {} has the same hostname {host}, so whose processes are whose cannot be told",
                        others.join(", ")
                    ),
                ));
            }
            hosts.shared.insert(host);
        }
        hosts.unresolved.sort();
        hosts
    }

    /// The one pod `host` names, if exactly one does.
    pub fn pod(&self, host: &str) -> Option<usize> {
        self.unique.get(host).copied()
    }

    /// Whether several pods have `host`: its processes are theirs, but not to be told apart.
    pub fn is_shared(&self, host: &str) -> bool {
        self.shared.contains(host)
    }
}

/// `namespace/name`.
fn full_name(pod: &Value) -> String {
    let field = |path: &str| pod.at(path).and_then(Value::as_str).unwrap_or_default();
    format!(
        "{}/{}",
        field("/metadata/namespace"),
        field("/metadata/name")
    )
}

/// The value of the container's `DYNO` as the kubelet computes it, or why the object cannot
/// tell: `env` in order, each literal `value` expanded with the entries before it (a reference
/// to a later or undefined variable stays as written), each `fieldRef` read from the pod; a
/// Secret, a ConfigMap or a resource is unknown, and so is a value that references one.
fn dyno(pod: &Value, container: &Value) -> Option<Result<String, String>> {
    let entries = list(container, "env");
    // Variables of `envFrom` come first and are not in the pod object.
    let env_from = !list(container, "envFrom").is_empty();
    let mut known: HashMap<String, String> = HashMap::new();
    let mut unknown: HashMap<&str, String> = HashMap::new();
    let mut dyno = None;
    for entry in entries {
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            continue;
        };
        let literal = entry
            .get("value")
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty() || entry.get("valueFrom").is_none());
        let value = match (literal, entry.get("valueFrom")) {
            (Some(text), _) => expand(name, text, &known, &unknown, env_from),
            (None, Some(_)) => from_field(pod, name, entry),
            // Neither: the kubelet sets it empty.
            (None, None) => Ok(String::new()),
        };
        match &value {
            Ok(text) => {
                unknown.remove(name);
                known.insert(name.to_owned(), text.clone());
            }
            Err(why) => {
                known.remove(name);
                unknown.insert(name, why.clone());
            }
        }
        if name == DYNO {
            dyno = Some(value);
        }
    }
    dyno
}

fn hostname_of(pod: &Value) -> IdentityHost {
    let set = |field: &str| pod.at(field).and_then(Value::as_bool) == Some(true);
    if set("/spec/hostNetwork") {
        return IdentityHost::Unknown(
            "the pod uses its node's network, so its processes carry the node's hostname, which the pod object does not show".to_owned(),
        );
    }
    if set("/spec/setHostnameAsFQDN") {
        return IdentityHost::Unknown(
            "setHostnameAsFQDN makes its hostname the pod's FQDN, whose cluster domain the pod object does not show".to_owned(),
        );
    }
    let name = pod
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let spec_hostname = pod.at("/spec/hostname").and_then(Value::as_str);
    match pod_hostname(name, spec_hostname) {
        Some(host) => IdentityHost::Known(host),
        None => IdentityHost::Unknown("the pod has no name yet".to_owned()),
    }
}

/// A literal `value` with its `$(VAR)` references expanded from the entries before it.
fn expand(
    name: &str,
    text: &str,
    known: &HashMap<String, String>,
    unknown: &HashMap<&str, String>,
    env_from: bool,
) -> Result<String, String> {
    for used in references(text) {
        if let Some(why) = unknown.get(used) {
            return Err(format!("{name} uses $({used}), and {why}"));
        }
        if env_from && !known.contains_key(used) {
            return Err(format!(
                "the Sidekiq container's {name} uses $({used}), which env does not define before it: it may come from envFrom, which the pod object does not show"
            ));
        }
    }
    Ok(detect::expand_kubernetes(
        text,
        known,
        &crate::shell::Budget::default(),
    ))
}

/// The last `DYNO` entry of a container's `env`: the one the kubelet keeps.
fn dyno_entry(container: &Value) -> Option<&Value> {
    crate::workload::env_entry(list(container, "env"), DYNO)
}

/// The variable `name` from `valueFrom.fieldRef`, read from the pod object like the downward
/// API does; anything else a `valueFrom` names is not in the pod object.
fn from_field(pod: &Value, name: &str, entry: &Value) -> Result<String, String> {
    let field = entry
        .at("/valueFrom/fieldRef/fieldPath")
        .and_then(Value::as_str);
    let value = field.and_then(|path| {
        let pointer = match path.split_once("['") {
            Some((map, key)) => format!(
                "/{}/{}",
                map.replace('.', "/"),
                key.trim_end_matches("']")
                    .replace('~', "~0")
                    .replace('/', "~1")
            ),
            None => format!("/{}", path.replace('.', "/")),
        };
        pod.at(&pointer).and_then(Value::as_str)
    });
    match (field, value) {
        (_, Some(value)) => Ok(value.to_owned()),
        (Some(path), None) => Err(format!(
            "the Sidekiq container's {name} comes from the pod field {path}, which the object does not hold yet"
        )),
        (None, None) => Err(format!(
            "the Sidekiq container's {name} comes from a Secret, a ConfigMap or a resource, which the pod object does not show"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_hostname_wins_and_long_names_are_cut_like_the_kubelet() {
        assert_eq!(
            pod_hostname("worker-abc", None).as_deref(),
            Some("worker-abc")
        );
        assert_eq!(
            pod_hostname("worker-abc", Some("w0")).as_deref(),
            Some("w0")
        );
        assert_eq!(
            pod_hostname("worker-abc", Some("")).as_deref(),
            Some("worker-abc")
        );
        let long = format!("{}-{}", "a".repeat(62), "bcdef");
        // 62 a's, then '-' at index 62 is cut away with the rest.
        assert_eq!(pod_hostname(&long, None), Some("a".repeat(62)));
        let dots = format!("{}..-xyz", "b".repeat(61));
        assert_eq!(pod_hostname(&dots, None), Some("b".repeat(61)));
        assert_eq!(pod_hostname(&"-".repeat(70), None), None);
        assert_eq!(pod_hostname("", None), None);
        let exact = "c".repeat(63);
        assert_eq!(pod_hostname(&exact, None), Some(exact.clone()));
    }

    #[test]
    fn a_hostname_the_object_cannot_show_is_unknown() {
        use serde_json::json;
        let containers = json!([{"name": "worker", "command": ["sidekiq"]}]);
        for field in ["hostNetwork", "setHostnameAsFQDN"] {
            let mut pod = pod(&containers);
            pod["spec"][field] = json!(true);
            let IdentityHost::Unknown(why) = identity_host(&pod) else {
                panic!("{field} must make the host unknown");
            };
            assert!(why.contains("does not show"), "{why}");
        }
    }

    #[test]
    fn pods_sharing_a_host_name_no_process() {
        use serde_json::json;
        let containers = json!([{"name": "worker", "command": ["sidekiq"]}]);
        let named = |namespace: &str, name: &str| {
            let mut pod = pod(&containers);
            pod["metadata"]["namespace"] = json!(namespace);
            pod["metadata"]["name"] = json!(name);
            pod
        };
        let mut hostless = named("shop", "edge-0");
        hostless["spec"]["hostNetwork"] = json!(true);
        let pods = [
            named("prod", "worker-0"),
            named("staging", "worker-0"),
            named("prod", "worker-1"),
            hostless,
        ];
        let hosts = Hosts::index(&pods);
        assert_eq!(hosts.pod("worker-1"), Some(2));
        assert_eq!(hosts.pod("worker-0"), None);
        assert!(hosts.is_shared("worker-0") && !hosts.is_shared("worker-1"));
        let unresolved: Vec<(usize, &str)> = hosts
            .unresolved
            .iter()
            .map(|(i, why)| (*i, why.as_str()))
            .collect();
        assert_eq!(
            unresolved[0],
            (
                0,
                "pod staging/worker-0 has the same hostname worker-0, so whose processes are whose cannot be told"
            )
        );
        assert_eq!(
            unresolved[1],
            (
                1,
                "pod prod/worker-0 has the same hostname worker-0, so whose processes are whose cannot be told"
            )
        );
        assert_eq!(unresolved[2].0, 3);
        assert_eq!(unresolved.len(), 3);
    }

    fn pod(containers: &Value) -> Value {
        serde_json::json!({
            "metadata": {"name": "worker-7d9c8-x2x9k", "namespace": "shop", "labels": {"dyno": "w.3"}},
            "spec": {"nodeName": "node-a", "containers": containers},
        })
    }

    #[test]
    fn identities_use_dyno_like_sidekiq_does() {
        use serde_json::json;
        let sidekiq = |env: Value| {
            json!([{"name": "web", "image": "app"},
                   {"name": "worker", "command": ["bundle", "exec", "sidekiq"], "env": env}])
        };
        let known = |host: &str| IdentityHost::Known(host.to_owned());
        // No DYNO: the pod's hostname.
        assert_eq!(
            identity_host(&pod(&sidekiq(json!([])))),
            known("worker-7d9c8-x2x9k")
        );
        // Literal, expanded like the kubelet expands it; the last entry wins.
        assert_eq!(
            identity_host(&pod(&sidekiq(json!([
                {"name": "ROLE", "value": "worker"},
                {"name": "DYNO", "value": "ignored"},
                {"name": "DYNO", "value": "$(ROLE).1"},
            ])))),
            known("worker.1")
        );
        // From pod fields, as the downward API gives them.
        for (path, host) in [
            ("metadata.name", "worker-7d9c8-x2x9k"),
            ("spec.nodeName", "node-a"),
            ("metadata.labels['dyno']", "w.3"),
        ] {
            let env = json!([{"name": "DYNO", "valueFrom": {"fieldRef": {"fieldPath": path}}}]);
            assert_eq!(identity_host(&pod(&sidekiq(env))), known(host), "{path}");
        }
        // A Secret's value cannot be read from the object: unknown, never the hostname.
        let env =
            json!([{"name": "DYNO", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
        assert!(matches!(
            identity_host(&pod(&sidekiq(env))),
            IdentityHost::Unknown(why) if why.contains("Secret")
        ));
        let env =
            json!([{"name": "DYNO", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]);
        assert!(matches!(
            identity_host(&pod(&sidekiq(env))),
            IdentityHost::Unknown(why) if why.contains("status.podIP")
        ));
        // Built from variables before it, literal or from pod fields; one defined after it
        // stays as written, as the kubelet leaves it; one from a Secret makes it unknown.
        let env = json!([
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "ROLE", "value": "mailer"},
            {"name": "DYNO", "value": "$(ROLE).$(POD_NAME).$(LATER)"},
            {"name": "LATER", "value": "x"},
        ]);
        assert_eq!(
            identity_host(&pod(&sidekiq(env))),
            known("mailer.worker-7d9c8-x2x9k.$(LATER)")
        );
        let env = json!([
            {"name": "ROLE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "role"}}},
            {"name": "DYNO", "value": "$(ROLE).1"},
        ]);
        assert_eq!(
            identity_host(&pod(&sidekiq(env))),
            IdentityHost::Unknown(
                "DYNO uses $(ROLE), and the Sidekiq container's ROLE comes from a Secret, a ConfigMap or a resource, which the pod object does not show".to_owned()
            )
        );
        // A variable of envFrom cannot be read from the object; an empty value with valueFrom
        // is the valueFrom; an entry with neither is empty.
        let mut with_env_from = sidekiq(json!([{"name": "DYNO", "value": "$(ROLE).1"}]));
        with_env_from[1]["envFrom"] = json!([{"configMapRef": {"name": "roles"}}]);
        assert!(matches!(
            identity_host(&pod(&with_env_from)),
            IdentityHost::Unknown(why) if why.contains("may come from envFrom")
        ));
        let env = json!([{"name": "DYNO", "value": "", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]);
        assert_eq!(identity_host(&pod(&sidekiq(env))), known("node-a"));
        assert_eq!(
            identity_host(&pod(&sidekiq(json!([{"name": "DYNO"}])))),
            known("")
        );
        // Only the Sidekiq container's DYNO counts.
        let other = json!([
            {"name": "web", "image": "app", "env": [{"name": "DYNO", "value": "web.1"}]},
            {"name": "worker", "command": ["sidekiq"]},
        ]);
        assert_eq!(identity_host(&pod(&other)), known("worker-7d9c8-x2x9k"));
    }

    #[test]
    fn membership_is_decided_from_the_identity() {
        assert!(belongs_to("worker-0:12:ab12", "worker-0"));
        assert!(!belongs_to("worker-01:12:ab12", "worker-0"));
        assert!(!belongs_to("worker-0", "worker-0"));
        assert!(belongs_to("web.1:7:ff", "web.1"));
    }
}
