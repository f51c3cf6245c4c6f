//! The probe sidecar container: how it is placed (native or classic) and what it is given.
//!
//! The sidecar is owned by sidekiq-guard: if a pod already has a container named
//! [`NAME`] that differs from the definition computed here, the mutation replaces it. Customise
//! it through the policy (`sidecar.image`, `sidecar.resources`…), not by hand.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::detect::is_empty_literal;
use crate::pointer::Pointer as _;
use crate::policy::{ResourceName, Resources, SidecarModeSetting, SidecarPolicy};
use crate::quantity::Quantity;
use crate::sidekiq::{self, REDIS_PROVIDER, REDIS_URL};
use crate::workload::{EnvIndex, env_name, list};
use crate::{duration, errors, listen};

/// Name of the injected container.
pub const NAME: &str = "sidekiq-guard-probe";
/// Name of the sidecar's port (at most 15 characters, unique in the pod).
pub const PORT_NAME: &str = "sg-probe";
/// Sidekiq uses `$DYNO` instead of the hostname in process identities when it is set.
pub const DYNO: &str = "DYNO";

/// Where the sidecar goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// In `initContainers` with `restartPolicy: Always` (Kubernetes 1.29+): it starts before and
    /// stops after the Sidekiq container.
    Native,
    /// In `containers`: it gets SIGTERM together with Sidekiq and must outlive it on its own.
    Classic,
}

impl Mode {
    /// The value of the sidecar's `--mode` flag.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Classic => "classic",
        }
    }

    /// Resolves the policy's `sidecar.mode` for an API server `major.minor` (when known): native
    /// sidecars are on by default from Kubernetes 1.29. An unknown version is treated as old,
    /// because a native sidecar on an old cluster blocks the pod forever while a classic one
    /// merely stops a little early.
    pub fn resolve(setting: SidecarModeSetting, server: Option<(u32, u32)>) -> Self {
        match setting {
            SidecarModeSetting::Native => Mode::Native,
            SidecarModeSetting::Classic => Mode::Classic,
            SidecarModeSetting::Auto => match server {
                Some(version) if version >= (1, 29) => Mode::Native,
                _ => Mode::Classic,
            },
        }
    }

    /// Where a shell that cannot read the API server's version and only judges (the
    /// Kubewarden policy with `mutate: false`) expects the sidecar of `object`: under `auto`,
    /// where the object's own sidecar is — the webhook placed it from the version — else as
    /// [`Mode::resolve`] decides without a version.
    pub fn for_judging(setting: SidecarModeSetting, object: Option<&Value>) -> Self {
        let placed = object.and_then(crate::analysis::sidecar_mode_of);
        match (setting, placed) {
            (SidecarModeSetting::Auto, Some(mode)) => mode,
            _ => Mode::resolve(setting, None),
        }
    }

    /// Resolves the policy's `sidecar.mode` with no cluster to ask (offline injection): `auto`
    /// means native, which every supported Kubernetes release (1.29+) runs; `kubectl sidekiq
    /// inject --sidecar-mode classic` serves older clusters.
    pub fn resolve_offline(setting: SidecarModeSetting) -> Self {
        match setting {
            SidecarModeSetting::Classic => Mode::Classic,
            SidecarModeSetting::Native | SidecarModeSetting::Auto => Mode::Native,
        }
    }

    /// The pod spec list the sidecar lives in.
    pub fn list(self) -> &'static str {
        match self {
            Mode::Native => "initContainers",
            Mode::Classic => "containers",
        }
    }
}

/// Parses a Kubernetes version as reported by `/version` (`major: "1"`, `minor: "29+"`); where
/// those are empty or unreadable (some distributions leave them empty), its `gitVersion`
/// (`v1.30.2-eks-1552ad0`).
pub fn parse_server_version(major: &str, minor: &str, git_version: &str) -> Option<(u32, u32)> {
    let digits = |s: &str| -> Option<u32> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let from_git = || {
        let (major, rest) = git_version.strip_prefix('v')?.split_once('.')?;
        Some((major.parse().ok()?, digits(rest)?))
    };
    digits(major).zip(digits(minor)).or_else(from_git)
}

/// What the sidecar needs to know to reach Redis, copied from the Sidekiq container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RedisEnv {
    /// `env` entries copied as they are: literal values and `valueFrom` references alike.
    pub env: Vec<Value>,
    /// `envFrom` sources copied because a needed variable may come from them.
    pub env_from: Vec<Value>,
    /// Whether the Redis URL's source is known (otherwise the probe falls back to
    /// `redis://localhost:6379/0`, like Sidekiq).
    pub found: bool,
    /// A Redis setting Sidekiq itself would reject.
    pub problem: Option<String>,
    /// Variables the Redis URL needs that neither `env` defines nor an `envFrom` may provide.
    pub missing: Vec<String>,
    /// Nothing in the container can be taken for Sidekiq's Redis URL ([`UrlMissing`]).
    /// Sidekiq then takes its Redis from Ruby configuration the manifest cannot show
    /// (`config.redis = {host: …}`), or from localhost (or fails to start): the probe cannot
    /// know which, and guessing localhost would fail the probes of a healthy worker.
    pub url_missing: Option<UrlMissing>,
    /// `(variable, reference)`: a copied variable whose value references `$(reference)`, which
    /// `env` defines only after it. Kubernetes expands a reference only to a variable defined
    /// before it, so the container gets the text `$(reference)` (a Redis URL whose password is
    /// `$(REDIS_PASSWORD)`, say).
    pub out_of_order: Vec<(String, String)>,
}

/// Why nothing in the Sidekiq container can be taken for its Redis URL; each holds the variable
/// Sidekiq reads the URL from (`REDIS_URL`, or the one `REDIS_PROVIDER` names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlMissing {
    /// Not in `env`, and there is no `envFrom` that may set it.
    Unset(String),
    /// In `env`, set to the empty string (`value: ""`, or no value at all, as a Helm chart renders
    /// an unset value): `env` overrides `envFrom`, so nothing else can fill it. (Where an
    /// `envFrom` may set a `REDIS_PROVIDER` that `env` does not, the URL is unresolved instead,
    /// and the `envFrom` goes along.)
    Empty(String),
}

/// Whether `name` has the shape of a variable the kubelet makes for a Service of the pod's
/// namespace that holds a host or a port: `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORT>]`
/// and `<NAME>_PORT_<number>_<protocol>_ADDR|_PORT`. (`<NAME>_PORT` and
/// `<NAME>_PORT_6379_TCP` hold `tcp://…` URLs, which belong in no Redis URL: a reference to one
/// of those is still reported.)
fn is_service_variable(name: &str) -> bool {
    let shaped = name
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !shaped {
        return false;
    }
    let scalar_port = || {
        name.rsplit_once("_PORT_").is_some_and(|(service, rest)| {
            let mut parts = rest.split('_');
            !service.is_empty()
                && parts
                    .next()
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                && parts
                    .next()
                    .is_some_and(|p| matches!(p, "TCP" | "UDP" | "SCTP"))
                && parts
                    .next()
                    .is_some_and(|last| matches!(last, "ADDR" | "PORT"))
                && parts.next().is_none()
        })
    };
    let service_of = |suffix: &str| name.strip_suffix(suffix).is_some_and(|s| !s.is_empty());
    service_of("_SERVICE_HOST")
        || service_of("_SERVICE_PORT")
        || name
            .split_once("_SERVICE_PORT_")
            .is_some_and(|(service, port)| !service.is_empty() && !port.is_empty())
        || scalar_port()
}

/// Collects the Redis settings of `sidekiq`: `REDIS_URL`, `REDIS_PROVIDER` and the variable it
/// names, and every variable their literal values reference with `$(VAR)`. Secret references are
/// copied as references, never resolved. `envFrom` sources are copied only when a needed variable
/// is not defined in `env`, so the sidecar sees no more of the app's configuration than it must.
/// For a pod whose service links are on (`enableServiceLinks`, the default).
pub fn redis_env(sidekiq: &Value) -> RedisEnv {
    redis_env_in(sidekiq, true)
}

/// [`redis_env`] for a pod whose `enableServiceLinks` is `service_links`: the kubelet expands
/// `$(VAR)` from the variables it makes for the namespace's Services too
/// (`REDIS_MASTER_SERVICE_HOST`…), in the sidecar as in Sidekiq's container, so a reference
/// to one of those is no undefined variable.
pub fn redis_env_in(sidekiq: &Value, service_links: bool) -> RedisEnv {
    let entries = list(sidekiq, "env");
    let env_from = list(sidekiq, "envFrom");
    let index = EnvIndex::new(entries);
    let find = |name: &str| index.last(name);

    let mut problem = None;
    let mut url_var = Some(REDIS_URL);
    let mut wanted: Vec<&str> = vec![REDIS_URL, REDIS_PROVIDER];
    // Set to nothing, REDIS_PROVIDER is no provider: Sidekiq 7+ reads REDIS_URL, as without it
    // (`ENV[p.to_s] || ENV["REDIS_URL"]`); 6.x reads `ENV[""]`, no URL at all, and so talks to
    // localhost while the probe reads REDIS_URL — a setting no one writes on purpose.
    if let Some(provider) = find(REDIS_PROVIDER).filter(|p| !is_empty_literal(p)) {
        match provider.get("value").and_then(Value::as_str) {
            Some(target) if sidekiq::provider_holds_url(target) => {
                problem = Some(format!(
                    "{REDIS_PROVIDER} holds a URL; Sidekiq expects the name of the variable that holds the URL, e.g. REDIS_PROVIDER=REDISTOGO_URL"
                ));
            }
            // Sidekiq 7+ reads `ENV[provider] || ENV["REDIS_URL"]`, and so does the probe
            // (`RedisSettings::from_lookup`): the named variable when the container sets it,
            // else REDIS_URL. An `envFrom` may set it at run time: then it goes along too, or
            // the probe would read REDIS_URL while Sidekiq reads the other.
            Some(target) if !target.is_empty() => {
                wanted.push(target);
                if find(target).is_some() || find(REDIS_URL).is_none() || !env_from.is_empty() {
                    url_var = Some(target);
                }
            }
            // Named by a ConfigMap or Secret: which variable holds the URL is only known at run
            // time, so every Redis-looking variable goes along.
            _ => {
                url_var = None;
                wanted.extend(
                    entries
                        .iter()
                        .filter_map(env_name)
                        .filter(|name| name.contains("REDIS")),
                );
            }
        }
    }
    // Close over `$(VAR)` references so the copied values expand the same way.
    let roots = wanted.len();
    let copied = close_over_references(&index, &mut wanted);
    let required: Vec<&str> = url_var
        .into_iter()
        .chain(wanted[roots..].iter().copied())
        .collect();
    let env = entries
        .iter()
        .filter(|e| env_name(e).is_some_and(|n| copied.contains(n)))
        .cloned()
        .collect();
    let undefined: Vec<String> = required
        .into_iter()
        .filter(|name| find(name).is_none() && !(service_links && is_service_variable(name)))
        .map(str::to_owned)
        .collect();
    let url_entry = url_var.and_then(find);
    let empty_in_env = problem.is_none() && url_entry.is_some_and(is_empty_literal);
    // An envFrom may still set REDIS_PROVIDER when env does not, naming another variable that
    // holds the URL (Sidekiq 7+ then reads it first): only otherwise is an empty URL final.
    let provider_may_come = find(REDIS_PROVIDER).is_none() && !env_from.is_empty();
    let empty = empty_in_env && !provider_may_come;
    let unresolved =
        url_var.is_none() || !undefined.is_empty() || (empty_in_env && provider_may_come);
    let copy_env_from = unresolved && !env_from.is_empty();
    let unset = problem.is_none() && env_from.is_empty() && url_entry.is_none();
    let url_missing = url_var.and_then(|variable| match (empty, unset) {
        (true, _) => Some(UrlMissing::Empty(variable.to_owned())),
        (false, true) => Some(UrlMissing::Unset(variable.to_owned())),
        (false, false) => None,
    });
    let out_of_order = out_of_order(entries, &index, &copied);
    RedisEnv {
        env,
        env_from: if copy_env_from {
            env_from.to_vec()
        } else {
            Vec::new()
        },
        found: !unresolved || copy_env_from,
        problem,
        missing: if copy_env_from { Vec::new() } else { undefined },
        url_missing,
        out_of_order,
    }
}

/// The references among the literal values of `names` to variables `env` defines only after
/// them: see [`RedisEnv::out_of_order`].
fn out_of_order(
    entries: &[Value],
    index: &EnvIndex<'_>,
    names: &BTreeSet<&str>,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, entry) in entries.iter().enumerate() {
        let Some(name) = env_name(entry).filter(|n| names.contains(n)) else {
            continue;
        };
        let Some(value) = entry
            .get("value")
            .and_then(Value::as_str)
            .filter(|value| value.contains("$("))
        else {
            continue;
        };
        for reference in references(value) {
            let before = index.first_at(reference).is_some_and(|first| first < at);
            let after = index.last_at(reference).is_some_and(|last| last > at);
            if !before && after {
                found.push((name.to_owned(), reference.to_owned()));
            }
        }
    }
    found
}

/// Adds to `names` every variable their values reference with `$(VAR)`, transitively, in the
/// order found; returns them all as a set.
fn close_over_references<'a>(index: &EnvIndex<'a>, names: &mut Vec<&'a str>) -> BTreeSet<&'a str> {
    let mut seen: BTreeSet<&str> = names.iter().copied().collect();
    let mut i = 0;
    while i < names.len() {
        let value = index
            .last(names[i])
            .and_then(|e| e.get("value"))
            .and_then(Value::as_str);
        for name in value.map(references).unwrap_or_default() {
            if seen.insert(name) {
                names.push(name);
            }
        }
        i += 1;
    }
    seen
}

/// The names in `$(NAME)` references of a Kubernetes env value (`$$` escapes).
pub(crate) fn references(value: &str) -> Vec<&str> {
    crate::detect::pieces(value)
        .filter_map(|piece| match piece {
            crate::detect::Piece::Reference(name) => Some(name),
            _ => None,
        })
        .collect()
}

/// Everything that shapes the sidecar of one pod.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    /// Native or classic.
    pub mode: Mode,
    /// Port to listen on.
    pub port: u16,
    /// The drain budget, seconds.
    pub drain_budget: u64,
    /// The longest Sidekiq may take to stop from the moment the pod is deleted (the computed
    /// grace period), seconds: how long a classic sidecar, signalled at that moment, keeps
    /// serving at most.
    pub exit_deadline: u64,
    /// The policy's sidecar section.
    pub policy: &'a SidecarPolicy,
    /// The Sidekiq container, whose `DYNO` is copied.
    pub sidekiq: &'a Value,
    /// The Redis settings copied from the Sidekiq container ([`redis_env`]).
    pub redis: &'a RedisEnv,
    /// The redis-namespace prefix of Sidekiq's keys, from the pod's annotation.
    pub redis_namespace: Option<&'a str>,
    /// The pod's `securityContext.runAsUser` is 0: every container runs as root unless it
    /// says otherwise.
    pub root_pod: bool,
    /// The sidecar's resources: the policy's, [`fitted`] to the pod's [`Pattern`].
    pub resources: &'a Resources,
}

/// Where an `httpGet` handler (a probe, a preStop hook) of `container` sends its request, as
/// far as reaching the probe sidecar goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The pod's own address, at this port: numeric, or named and declared by `container`
    /// (the kubelet resolves a name among the container's own ports); `None` when the name is
    /// not declared or the port cannot be read.
    Pod(Option<u16>),
    /// Somewhere the plain-HTTP probe never answers: why, for a message.
    Elsewhere(String),
}

/// Where `get`, the `httpGet` of a handler of `container`, goes. The kubelet calls `host` when
/// set (from the node: `localhost` is the node's, unless the pod shares the node's network),
/// and the probe speaks plain HTTP only.
pub(crate) fn reach(get: &Value, container: &Value, host_network: bool) -> Reach {
    let scheme = get.get("scheme").and_then(Value::as_str).unwrap_or("HTTP");
    if !scheme.eq_ignore_ascii_case("HTTP") {
        return Reach::Elsewhere(format!("over {}", errors::truncate(scheme, 10)));
    }
    let host = get.get("host").and_then(Value::as_str).unwrap_or("");
    // Under hostNetwork the node's loopback is the pod's. The kubelet writes `host` into the
    // URL as an IPv6 address when it has a colon (`[::1]:7434`), so `[::1]`, brackets and all,
    // makes an address it cannot call.
    let reaches_pod =
        host.is_empty() || (host_network && matches!(host, "localhost" | "127.0.0.1" | "::1"));
    if !reaches_pod {
        return Reach::Elsewhere(format!("on host {}", errors::quoted(host, 40)));
    }
    Reach::Pod(port_of(get, container))
}

/// The number of the port `get` calls: its own, or the `containerPort` of the port of
/// `container` it names.
pub(crate) fn port_of(get: &Value, container: &Value) -> Option<u16> {
    let port = match get.get("port") {
        Some(Value::String(name)) => list(container, "ports")
            .iter()
            .find(|port| port.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|port| port.get("containerPort")),
        other => other,
    };
    port.and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
}

/// The endpoint `path` calls, without its query string (the probe ignores it).
pub(crate) fn endpoint(path: &str) -> &str {
    path.split_once('?').map_or(path, |(endpoint, _)| endpoint)
}

/// Builds the sidecar container.
pub fn container(spec: &Spec<'_>) -> Value {
    let redis = spec.redis;
    let mut env = Vec::with_capacity(3 + redis.env.len());
    env.extend(POD_ENV.iter().cloned());
    let hostname = hostname_env(spec.sidekiq);
    // An entry DYNO uses may be a Redis one too: copied once, at its first place. Only the very
    // same entry is skipped; a later one of the same name is another definition, which the
    // kubelet uses from there on.
    let redis_only: Vec<Value> = redis
        .env
        .iter()
        .filter(|e| !hostname.env.contains(e))
        .cloned()
        .collect();
    env.extend(hostname.env);
    env.extend(redis_only);

    let mut container = Map::new();
    container.insert("name".into(), json!(NAME));
    container.insert("image".into(), json!(spec.policy.image()));
    if let Some(pull) = spec.policy.image_pull_policy {
        container.insert("imagePullPolicy".into(), json!(pull));
    }
    let mut args = vec![
        json!(format!("--listen={}", listen::every_address(spec.port))),
        json!(format!(
            "--drain-budget={}",
            duration::format_secs(spec.drain_budget)
        )),
        json!(format!("--mode={}", spec.mode.as_str())),
    ];
    if let Some(prefix) = spec.redis_namespace {
        args.push(json!(format!("--redis-namespace={prefix}")));
    }
    // A classic sidecar gets SIGTERM when the pod is deleted, while the preStop drain and then
    // Sidekiq's own shutdown still need it; a native one is stopped after Sidekiq has exited.
    if spec.mode == Mode::Classic {
        args.push(json!(format!(
            "--exit-deadline={}",
            duration::format_secs(spec.exit_deadline)
        )));
    }
    container.insert("args".into(), Value::Array(args));
    container.insert(
        "ports".into(),
        json!([{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}]),
    );
    container.insert("env".into(), Value::Array(env));
    // Both copy the container's whole envFrom when they need it.
    if !redis.env_from.is_empty() || hostname.env_from {
        container.insert(
            "envFrom".into(),
            Value::Array(list(spec.sidekiq, "envFrom").to_vec()),
        );
    }
    container.insert("resources".into(), resources(spec.resources));
    let security = if spec.root_pod {
        &ROOT_POD_SECURITY_CONTEXT
    } else {
        &SECURITY_CONTEXT
    };
    container.insert("securityContext".into(), (*security).clone());
    if spec.mode == Mode::Native {
        container.insert("restartPolicy".into(), json!("Always"));
    }
    Value::Object(container)
}

/// Whether `existing`, a sidecar read back from an object, is `wanted` as the API server stores
/// it: the same fields with the same values, except what the API server's defaulting and its
/// in-tree admission plugins add (`imagePullPolicy`, `terminationMessagePath`/`Policy`,
/// `ports[].protocol`, `fieldRef.apiVersion`, probe timings and `httpGet.scheme`, requests taken
/// from limits, the token mount, LimitRange defaults, an assigned user) and
/// how it respells quantities (`0.5` as `500m`). Without the allowance every reinvocation and
/// every pod of an injected template would get its sidecar replaced, or refused; without the
/// strictness a field the policy or the Sidekiq container no longer asks for (an `envFrom`, a
/// Redis variable, a drain budget) would stay forever. What the policy stopped asking for
/// that looks like those plugins' work stays: a limit, or a request for a resource it does not
/// limit (a LimitRange default), and `imagePullPolicy: Always`.
///
/// Nor are the `env` entries and `volumeMounts` another mutating webhook adds to every
/// container (Datadog's `DD_AGENT_HOST`, EKS Pod Identity's and Azure Workload Identity's
/// variables and token mount): an entry the sidecar does not define is theirs when `sidekiq`,
/// the Sidekiq container, holds the very same entry. Replacing the sidecar on the reinvocation
/// those webhooks cause would strip them from it, after they ran for the last time. A copied
/// Redis variable the Sidekiq container no longer defines is still a difference: its Secret
/// may be gone, and the pod would not start.
pub fn is_current(existing: &Value, wanted: &Value, sidekiq: &Value) -> bool {
    let within = Within {
        container: wanted,
        sidekiq,
    };
    matches_at(&mut Vec::new(), existing, wanted, &within)
}

/// What [`matches_at`] compares within: the wanted sidecar whole, and the Sidekiq container
/// beside it (`Value::Null` where others' additions are not asked about).
struct Within<'a> {
    container: &'a Value,
    sidekiq: &'a Value,
}

/// A container's list that other webhooks add to, and the key its entries go by.
#[derive(Clone, Copy)]
struct SharedList {
    name: &'static str,
    key: &'static str,
}

impl SharedList {
    const ENV: Self = Self {
        name: "env",
        key: "name",
    };
    const MOUNTS: Self = Self {
        name: "volumeMounts",
        key: "mountPath",
    };

    /// The list at `path` of a container, if it is one of them.
    fn at(path: &[&str]) -> Option<Self> {
        match path {
            ["env"] => Some(Self::ENV),
            ["volumeMounts"] => Some(Self::MOUNTS),
            _ => None,
        }
    }
}

impl Within<'_> {
    /// Whether `entry` of the sidecar's `shared` list, which `want` does not define, is
    /// another webhook's: the Sidekiq container has it too.
    fn added_by_others(&self, shared: Option<SharedList>, entry: &Value, want: &[Value]) -> bool {
        let Some(SharedList { name, key }) = shared else {
            return false;
        };
        let id = entry.get(key);
        id.is_some()
            && !want.iter().any(|w| w.get(key) == id)
            && list(self.sidekiq, name).contains(entry)
    }
}

/// What in `existing`, a sidecar read back from an object, makes it work differently from
/// `wanted`: its arguments (listen port, drain budget…), its port, and the names of the
/// environment entries that differ (never their values: they may hold a Redis password).
/// Empty when it works alike, whatever its image, resources or security settings: those are
/// [`is_current`]'s business, and a cluster's webhook may well run another image.
/// Flags left out of the comparison (`ignored`): [`PLACEMENT_FLAGS`] for a sidecar in the other
/// list, which the mutation moves anyway. In a pod whose primary IP is IPv4 (`ipv4_pod`), an
/// earlier version's `--listen=0.0.0.0:PORT` answers as `[::]` does ([`listen::answers_alike`]).
pub fn drift(existing: &Value, wanted: &Value, ignored: &[&str], ipv4_pod: bool) -> Vec<String> {
    let mut drift = args_drift(existing, wanted, ignored, ipv4_pod);
    let port = |c: &Value| c.at("/ports/0/containerPort").cloned();
    if port(existing) != port(wanted) {
        drift.push(format!(
            "port {} (needs {})",
            port(existing).unwrap_or(Value::Null),
            port(wanted).unwrap_or(Value::Null)
        ));
    }
    drift.extend(
        env_drift(existing, wanted)
            .into_iter()
            .map(|name| format!("env {name} differs")),
    );
    let env_from = |c: &Value| c.get("envFrom").cloned().unwrap_or(Value::Null);
    if env_from(existing) != env_from(wanted) {
        drift.push("envFrom differs".into());
    }
    drift
}

/// The flags a native and a classic sidecar set differently.
pub const PLACEMENT_FLAGS: [&str; 2] = ["--mode", "--exit-deadline"];

/// `--flag=value` arguments of `existing` that `wanted` sets otherwise, lacks, or does not set,
/// but for the `ignored` flags.
fn args_drift(existing: &Value, wanted: &Value, ignored: &[&str], ipv4_pod: bool) -> Vec<String> {
    fn flags<'c>(container: &'c Value, ignored: &[&str]) -> Vec<(&'c str, &'c str)> {
        list(container, "args")
            .iter()
            .filter_map(Value::as_str)
            .map(|arg| arg.split_once('=').unwrap_or((arg, "")))
            .filter(|(flag, _)| !ignored.contains(flag))
            .collect()
    }
    let (have, want) = (flags(existing, ignored), flags(wanted, ignored));
    let shown = |value: &str| errors::truncate(value, 40);
    let mut drift: Vec<String> = want
        .iter()
        .filter_map(
            |(flag, value)| match have.iter().find(|(name, _)| name == flag) {
                Some((_, v)) if same_value(flag, v, value, ipv4_pod) => None,
                Some((_, v)) => Some(format!("{flag}={} (needs {})", shown(v), shown(value))),
                None => Some(format!("no {flag} (needs {})", shown(value))),
            },
        )
        .collect();
    drift.extend(
        have.iter()
            .filter(|(flag, _)| !want.iter().any(|(name, _)| name == flag))
            .map(|(flag, _)| format!("{flag} (not set by sidekiq-guard)")),
    );
    drift
}

/// Whether the probe works alike with `flag` set to `have` as with it set to `want`.
fn same_value(flag: &str, have: &str, want: &str, ipv4_pod: bool) -> bool {
    have == want
        || same_duration(have, want)
        || (flag == "--listen" && listen::answers_alike(have, want, ipv4_pod))
}

/// `140s` and `2m20s`: the probe reads both alike.
fn same_duration(a: &str, b: &str) -> bool {
    matches!((duration::parse(a), duration::parse(b)), (Ok(a), Ok(b)) if a == b)
}

/// Names of the `env` entries `wanted` defines that `existing` lacks or defines otherwise.
/// Entries only `existing` has are left out: other mutating webhooks add variables to every
/// container (Datadog's `DD_AGENT_HOST`, a proxy policy's `HTTP_PROXY`), and the probe reads
/// none it was not given.
fn env_drift<'v>(existing: &'v Value, wanted: &'v Value) -> Vec<&'v str> {
    fn name(entry: &Value) -> &str {
        entry.get("name").and_then(Value::as_str).unwrap_or("")
    }
    fn find<'e>(entries: &'e [Value], wanted_name: &str) -> Option<&'e Value> {
        entries.iter().find(|entry| name(entry) == wanted_name)
    }
    let (have, want) = (list(existing, "env"), list(wanted, "env"));
    let within = Within {
        container: wanted,
        sidekiq: &Value::Null,
    };
    let changed = want.iter().filter(|entry| {
        !find(have, name(entry))
            .is_some_and(|existing| matches_at(&mut vec!["env", "*"], existing, entry, &within))
    });
    changed.map(name).collect()
}

/// Whether `existing` is `wanted` at `path` (object keys, `*` for list items) of a container
/// whose wanted whole is `container`.
fn matches_at<'a>(
    path: &mut Vec<&'a str>,
    existing: &Value,
    wanted: &'a Value,
    within: &Within<'_>,
) -> bool {
    match (existing, wanted) {
        (Value::Object(have), Value::Object(want)) => {
            let extras_defaulted = have
                .iter()
                .filter(|(key, _)| !want.contains_key(*key))
                .all(|(key, value)| defaulted(path, key, value, have, within));
            extras_defaulted
                && want.iter().all(|(key, value)| {
                    path.push(key);
                    let same = have
                        .get(key)
                        .is_some_and(|existing| matches_at(path, existing, value, within));
                    path.pop();
                    same
                })
        }
        (Value::Array(have), Value::Array(want)) => {
            let shared = SharedList::at(path);
            let mut have = have
                .iter()
                .filter(|entry| !within.added_by_others(shared, entry, want));
            let same = want.iter().all(|value| {
                path.push("*");
                let same = have
                    .next()
                    .is_some_and(|existing| matches_at(path, existing, value, within));
                path.pop();
                same
            });
            same && have.next().is_none()
        }
        (Value::String(have), Value::String(want)) if is_quantity_path(path) => {
            have == want || crate::quantity::same_resource_value(have, want)
        }
        // The AlwaysPullImages admission plugin sets it on every container.
        (Value::String(have), _) if *path == ["imagePullPolicy"] => {
            have == PULL_ALWAYS || existing == wanted
        }
        (Value::String(have), Value::String(want)) if *path == ["image"] => same_image(have, want),
        _ => existing == wanted,
    }
}

/// Whether `have` is the image `want` names, as a policy engine may have rewritten it in the
/// second admission pass: pulled from a mirror (`mirror.example.com/ghcr.io/…/sidekiq-guard:v1`)
/// or pinned to its digest (`…:v1@sha256:…`, Kyverno's `mutateDigest`). Undoing either
/// would pull from a registry the cluster cannot or may not reach. So the last path component
/// (name and tag) must match, or the digest when `want` names one; another tag or name is
/// another image.
fn same_image(have: &str, want: &str) -> bool {
    fn parts(image: &str) -> (&str, Option<&str>) {
        let (reference, digest) = match image.split_once('@') {
            Some((reference, digest)) => (reference, Some(digest)),
            None => (image, None),
        };
        (reference.rsplit('/').next().unwrap_or(reference), digest)
    }
    let ((have_name, have_digest), (want_name, want_digest)) = (parts(have), parts(want));
    have == want
        || match want_digest {
            Some(digest) => have_digest == Some(digest),
            None => have_name == want_name,
        }
}

/// `resources.requests.*` and `resources.limits.*`.
fn is_quantity_path(path: &[&str]) -> bool {
    matches!(path, ["resources", "requests" | "limits", _])
}

/// Where the ServiceAccount admission plugin mounts the API token into every container.
const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the AlwaysPullImages admission plugin sets every container's `imagePullPolicy` to.
const PULL_ALWAYS: &str = "Always";

/// Whether the API server puts `key: value` into `have`, at `path` of a container that does not
/// set it: its defaulting (pkg/apis/core/v1/defaults.go, with the default values), and what its
/// in-tree admission plugins add to every container.
///
/// Those plugins run again in the second pass that the webhook's own patch causes, before the
/// webhook is reinvoked, and check their work after it: a sidecar replaced there to undo them
/// gets the pod refused (a LimitRange `max` or a ResourceQuota on `limits.cpu` finds no limit,
/// AlwaysPullImages another pull policy, OpenShift's SCC no assigned user). So their additions
/// are not differences: the ServiceAccount plugin's token mount, LimitRanger's `default` and
/// `defaultRequest` for a resource the policy leaves open, AlwaysPullImages' pull policy, and
/// what a SecurityContextConstraint assigns (`runAsUser`, `seLinuxOptions`) beside the fields
/// sidekiq-guard sets.
fn defaulted(
    path: &[&str],
    key: &str,
    value: &Value,
    have: &Map<String, Value>,
    within: &Within<'_>,
) -> bool {
    let container = within.container;
    const PROBES: [&str; 3] = ["startupProbe", "readinessProbe", "livenessProbe"];
    let text = value.as_str();
    match (path, key) {
        ([], "imagePullPolicy") => {
            text == Some(default_pull_policy(container)) || text == Some(PULL_ALWAYS)
        }
        ([], "terminationMessagePath") => text == Some("/dev/termination-log"),
        ([], "terminationMessagePolicy") => text == Some("File"),
        ([], "volumeMounts") => value.as_array().is_some_and(|mounts| {
            mounts.iter().all(|mount| {
                mount.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH)
                    || within.added_by_others(Some(SharedList::MOUNTS), mount, &[])
            })
        }),
        (["ports", "*"], "protocol") => text == Some("TCP"),
        // With hostNetwork, each port is also a host port.
        (["ports", "*"], "hostPort") => have.get("containerPort") == Some(value),
        ([.., "valueFrom", "fieldRef"], "apiVersion") => text == Some("v1"),
        ([.., "httpGet"], "scheme") => text == Some("HTTP"),
        ([probe], timing) if PROBES.contains(probe) => {
            let default = match timing {
                "timeoutSeconds" | "successThreshold" => 1,
                "periodSeconds" => 10,
                "failureThreshold" => 3,
                _ => return false,
            };
            value.as_u64() == Some(default)
        }
        (["resources"], "limits") => value.is_object(),
        (["resources", "limits"], _) => true,
        (["resources"], "requests") => value.as_object().is_some_and(|requests| {
            requests
                .iter()
                .all(|(name, request)| request_defaulted(container, name, request))
        }),
        (["resources", "requests"], name) => request_defaulted(container, name, value),
        // What a SecurityContextConstraint assigns; sidekiq-guard's own user (in a root pod,
        // or from an older version) is a difference where it no longer names one.
        (["securityContext"], "runAsUser") => value.as_u64() != Some(u64::from(IMAGE_USER)),
        (["securityContext"], "seLinuxOptions") => true,
        // API servers 1.27–1.32 with the InPlacePodVerticalScaling gate on give a regular
        // container that requests resources this default (1.33 dropped it: the kubelet
        // assumes it), so a classic sidecar carries it on the second pass.
        ([], "resizePolicy") => value.as_array().is_some_and(|policies| {
            policies.iter().all(|policy| {
                matches!(
                    policy.get("resourceName").and_then(Value::as_str),
                    Some("cpu" | "memory")
                ) && policy.get("restartPolicy").and_then(Value::as_str) == Some("NotRequired")
            })
        }),
        _ => false,
    }
}

/// The `imagePullPolicy` the API server gives a container without one: `Always` for an image
/// without a tag or tagged `latest` (a digest pins it), else `IfNotPresent`.
fn default_pull_policy(container: &Value) -> &'static str {
    let image = container.get("image").and_then(Value::as_str).unwrap_or("");
    let name = image.rsplit('/').next().unwrap_or(image);
    match name.rsplit_once(':') {
        _ if name.contains('@') => "IfNotPresent",
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// Whether a request for `resource` that `container` does not ask for is the API server's: a
/// container with a limit and no request gets the limit as its request, and LimitRanger gives a
/// resource with neither its `defaultRequest`.
fn request_defaulted(container: &Value, resource: &str, request: &Value) -> bool {
    let limited = container
        .at("/resources/limits")
        .is_some_and(|limits| limits.get(resource).is_some());
    !limited || limit_is(container, resource, request)
}

/// Whether `container` limits `resource` to `value`.
fn limit_is(container: &Value, resource: &str, value: &Value) -> bool {
    container
        .at("/resources/limits")
        .and_then(|l| l.get(resource))
        .is_some_and(|limit| same_quantity(limit, value))
}

/// A quantity as a manifest may hold it: a string, or a number (`cpu: 2`, which the API server
/// stores as the string `"2"`).
fn quantity_text(quantity: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match quantity {
        Value::String(text) => Some(text.as_str().into()),
        Value::Number(number) => Some(number.to_string().into()),
        _ => None,
    }
}

/// Whether `a` and `b` are quantities of the same amount (`1Gi` and `1073741824`).
fn same_quantity(a: &Value, b: &Value) -> bool {
    match (quantity_text(a), quantity_text(b)) {
        (Some(a), Some(b)) => a == b || crate::quantity::same_resource_value(&a, &b),
        _ => false,
    }
}

/// `DYNO` of the Sidekiq container as the probe's `SIDEKIQ_GUARD_HOSTNAME`, after the
/// variables it references (e.g. `DYNO=$(POD_NAME).worker` needs `POD_NAME`): Kubernetes expands
/// `$(VAR)` only from variables defined earlier in the same container, and leaves an undefined
/// reference as literal text, which would make the probe look for a host that does not exist.
fn hostname_env(sidekiq: &Value) -> HostnameEnv {
    let entries = list(sidekiq, "env");
    let index = EnvIndex::new(entries);
    let Some(dyno_at) = index.last_at(DYNO) else {
        return HostnameEnv {
            env: Vec::new(),
            env_from: false,
        };
    };
    // The entries DYNO's value uses, by position: a reference resolves to the last definition
    // before the entry that makes it, as the kubelet resolves it.
    let mut needed = std::collections::BTreeSet::new();
    let mut from_env_from = false;
    let mut pending = vec![dyno_at];
    while let Some(at) = pending.pop() {
        let value = entries[at].get("value").and_then(Value::as_str);
        for name in value.map(references).unwrap_or_default() {
            match index.last_before(name, at) {
                Some(definition) => {
                    if needed.insert(definition) {
                        pending.push(definition);
                    }
                }
                // Not in env before it: from envFrom, if anywhere.
                None => from_env_from = true,
            }
        }
    }
    let mut env: Vec<Value> = needed.into_iter().map(|at| entries[at].clone()).collect();
    let mut hostname = entries[dyno_at].clone();
    hostname["name"] = json!("SIDEKIQ_GUARD_HOSTNAME");
    env.push(hostname);
    HostnameEnv {
        env,
        env_from: from_env_from && !list(sidekiq, "envFrom").is_empty(),
    }
}

/// The sidecar's copy of `DYNO` and what it uses.
struct HostnameEnv {
    /// The entries, in the Sidekiq container's order, then `SIDEKIQ_GUARD_HOSTNAME`.
    env: Vec<Value>,
    /// Whether it uses a variable only `envFrom` can define.
    env_from: bool,
}

/// Passes the "restricted" Pod Security Standard: the probe needs no privilege at all. It
/// runs as the image's numeric user (65532) and names none itself: OpenShift's restricted-v2
/// constraint assigns a user from the namespace's range and refuses a pod naming another, and
/// a pod-level `runAsUser` applies as the user chose.
static SECURITY_CONTEXT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
});

/// In a pod whose `securityContext.runAsUser` is 0 the sidecar would inherit root, and
/// `runAsNonRoot` would keep it from starting: there it names the image's user.
static ROOT_POD_SECURITY_CONTEXT: LazyLock<Value> = LazyLock::new(|| {
    let mut context = SECURITY_CONTEXT.clone();
    context["runAsUser"] = json!(IMAGE_USER);
    context["runAsGroup"] = json!(IMAGE_USER);
    context
});

/// The numeric user and group of the sidekiq-guard image (`USER 65532:65532`).
pub const IMAGE_USER: u32 = 65532;

/// How every container of a pod but the sidecar sets one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fit {
    /// Every one is limited in it.
    pub limited: bool,
    /// Every one requests what it is limited to (a limit without a request counts: the API
    /// server sets the request to the limit).
    pub pinned: bool,
}

/// How every container of a pod but the sidecar sets CPU and memory. Where all of them do
/// something, a namespace rule may require it of every container — a ResourceQuota on
/// `limits.cpu` refuses a pod with one container not limited in CPU, a LimitRange
/// `maxLimitRequestRatio` of 1 one whose request is below its limit — and a Guaranteed pod
/// stays Guaranteed only if the sidecar is too: the sidecar follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pattern {
    /// CPU.
    pub cpu: Fit,
    /// Memory.
    pub memory: Fit,
}

impl Pattern {
    /// The pattern of `containers`, the sidecar among them or not: read in one pass, and no
    /// further once neither resource is limited everywhere. A pod is planned only around its
    /// Sidekiq container, so there is always one besides the sidecar.
    pub fn of<'v>(containers: impl Iterator<Item = &'v Value>) -> Self {
        let all = Fit {
            limited: true,
            pinned: true,
        };
        let mut pattern = Pattern {
            cpu: all,
            memory: all,
        };
        for container in containers.filter(|c| crate::detect::name_of(c) != NAME) {
            let resources = container.get("resources");
            let side = |side: &str| resources.and_then(|r| r.get(side));
            let (limits, requests) = (side("limits"), side("requests"));
            for (fit, resource) in [(&mut pattern.cpu, "cpu"), (&mut pattern.memory, "memory")] {
                if fit.limited {
                    fit.read(
                        limits.and_then(|l| l.get(resource)),
                        requests.and_then(|r| r.get(resource)),
                    );
                }
            }
            if !pattern.cpu.limited && !pattern.memory.limited {
                break;
            }
        }
        pattern
    }

    /// Every container but the sidecar is of the Guaranteed QoS class: CPU and memory limits,
    /// and requests equal to them. A pod is Guaranteed only when all its containers, init
    /// containers included, are; one sidecar with a lower request than limit would make it
    /// Burstable, losing exclusive CPUs under the static CPU manager and its place in the
    /// kubelet's eviction order.
    pub fn guaranteed(self) -> bool {
        self.cpu.pinned && self.memory.pinned
    }
}

impl Fit {
    /// Narrows the fit by one more container's limit and request.
    fn read(&mut self, limit: Option<&Value>, request: Option<&Value>) {
        match (limit, request) {
            (Some(limit), None) if quantity_text(limit).is_some() => {}
            (Some(limit), Some(request)) if quantity_text(limit).is_some() => {
                self.pinned = self.pinned && same_quantity(limit, request);
            }
            _ => *self = Fit::default(),
        }
    }
}

/// The sidecar's resources under `pattern`: for CPU and memory that every other container
/// limits, a limit — the policy's, else its request, else the default policy's — and where
/// they all request their limit, a request equal to it. In a Guaranteed pod that is both for
/// both. Otherwise the policy's as they are.
pub fn fitted(policy: &Resources, pattern: Pattern) -> Cow<'_, Resources> {
    // Most pods ask nothing the policy does not give already: its resources, not copied.
    let mut out = Cow::Borrowed(policy);
    if pattern == Pattern::default() {
        return out;
    }
    for (name, fit) in [("cpu", pattern.cpu), ("memory", pattern.memory)] {
        if fit.limited && !out.limits.contains_key(name) {
            let value = policy.requests.get(name).cloned().or_else(|| {
                let defaults = Resources::default();
                defaults
                    .limits
                    .get(name)
                    .or_else(|| defaults.requests.get(name))
                    .cloned()
            });
            if let Some(value) = value {
                out.to_mut()
                    .limits
                    .insert(ResourceName(name.to_owned()), value);
            }
        }
        if fit.pinned
            && let Some(limit) = out.limits.get(name)
            && out.requests.get(name) != Some(limit)
        {
            let limit = limit.clone();
            out.to_mut()
                .requests
                .insert(ResourceName(name.to_owned()), limit);
        }
    }
    out
}

/// The `resources` of a container that gets `resources`.
pub(crate) fn resources(resources: &Resources) -> Value {
    let quantities = |map: &std::collections::BTreeMap<ResourceName, Quantity>| {
        Value::Object(
            map.iter()
                .map(|(name, quantity)| {
                    (name.0.clone(), Value::String(quantity.as_str().to_owned()))
                })
                .collect(),
        )
    };
    let mut out = Map::new();
    if !resources.requests.is_empty() {
        out.insert("requests".into(), quantities(&resources.requests));
    }
    if !resources.limits.is_empty() {
        out.insert("limits".into(), quantities(&resources.limits));
    }
    Value::Object(out)
}

/// The pod's name and namespace through the downward API.
static POD_ENV: LazyLock<[Value; 2]> = LazyLock::new(|| {
    [
        field_ref("SIDEKIQ_GUARD_POD_NAME", "metadata.name"),
        field_ref("SIDEKIQ_GUARD_POD_NAMESPACE", "metadata.namespace"),
    ]
});

fn field_ref(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidekiq(env: Value) -> Value {
        json!({"name": "worker", "env": env})
    }

    fn names(values: &[Value]) -> Vec<&str> {
        values.iter().map(|e| e["name"].as_str().unwrap()).collect()
    }

    /// The kubelet expands `$(VAR)` from the namespace's Service variables too, in the sidecar
    /// as in Sidekiq's container: those are not undefined, unless service links are off.
    #[test]
    fn service_variables_are_defined_by_the_kubelet() {
        let container = sidekiq(json!([{
            "name": "REDIS_URL",
            "value": "redis://$(REDIS_MASTER_SERVICE_HOST):$(REDIS_MASTER_SERVICE_PORT_REDIS)/0",
        }]));
        let linked = redis_env_in(&container, true);
        assert!(linked.missing.is_empty(), "{:?}", linked.missing);
        assert_eq!(names(&linked.env), ["REDIS_URL"]);
        let unlinked = redis_env_in(&container, false);
        assert_eq!(
            unlinked.missing,
            [
                "REDIS_MASTER_SERVICE_HOST",
                "REDIS_MASTER_SERVICE_PORT_REDIS"
            ]
        );
        for name in [
            "REDIS_SERVICE_HOST",
            "REDIS_SERVICE_PORT",
            "REDIS_MASTER_SERVICE_PORT_TLS",
            "REDIS_PORT_6379_TCP_ADDR",
            "REDIS_PORT_6379_TCP_PORT",
        ] {
            assert!(is_service_variable(name), "{name}");
        }
        // URLs (`tcp://…`), names of the user's own, and lower case are not Service variables.
        for name in [
            "REDIS_PORT",
            "REDIS_PORT_6379_TCP",
            "REDIS_PORT_6379_TCP_PROTO",
            "REDIS_HOST",
            "_SERVICE_HOST",
            "redis_service_host",
        ] {
            assert!(!is_service_variable(name), "{name}");
        }
    }

    #[test]
    fn only_the_pods_own_address_or_its_shared_loopback_reaches_the_probe() {
        let container = json!({"name": "worker"});
        let reach = |host: &str, host_network: bool| {
            reach(
                &json!({"host": host, "port": 7434, "path": "/livez"}),
                &container,
                host_network,
            )
        };
        assert_eq!(reach("", false), Reach::Pod(Some(7434)));
        for host in ["localhost", "127.0.0.1", "::1"] {
            assert_eq!(reach(host, true), Reach::Pod(Some(7434)), "{host}");
            assert_eq!(
                reach(host, false),
                Reach::Elsewhere(format!("on host \"{host}\"")),
                "{host}"
            );
        }
        assert_eq!(
            reach("[::1]", true),
            Reach::Elsewhere("on host \"[::1]\"".to_owned())
        );
    }

    #[test]
    fn auto_mode_follows_the_server_version() {
        use SidecarModeSetting::*;
        assert_eq!(Mode::resolve(Auto, Some((1, 29))), Mode::Native);
        assert_eq!(Mode::resolve(Auto, Some((1, 33))), Mode::Native);
        assert_eq!(Mode::resolve(Auto, Some((1, 28))), Mode::Classic);
        assert_eq!(Mode::resolve(Auto, None), Mode::Classic);
        assert_eq!(Mode::resolve(Native, Some((1, 20))), Mode::Native);
        assert_eq!(Mode::resolve(Classic, Some((1, 33))), Mode::Classic);
    }

    #[test]
    fn server_versions_as_providers_report_them() {
        assert_eq!(parse_server_version("1", "29", "v1.29.4"), Some((1, 29)));
        assert_eq!(
            parse_server_version("1", "28+", "v1.28.9-eks-036c24b"),
            Some((1, 28))
        );
        assert_eq!(parse_server_version("", "", "v1.30.0"), Some((1, 30)));
        assert_eq!(parse_server_version("", "", "v1.31.2+k3s1"), Some((1, 31)));
        assert_eq!(parse_server_version("", "28", ""), None);
        assert_eq!(parse_server_version("", "", "v1"), None);
        assert_eq!(parse_server_version("", "", "1.30.0"), None);
    }

    #[test]
    fn copies_redis_url_and_the_secrets_it_references_as_references() {
        let redis = redis_env(&sidekiq(json!([
            {"name": "RAILS_ENV", "value": "production"},
            {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "password"}}},
            {"name": "REDIS_URL", "value": "redis://:$(REDIS_PASSWORD)@redis:6379/0"},
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        ])));
        assert_eq!(names(&redis.env), vec!["REDIS_PASSWORD", "REDIS_URL"]);
        assert_eq!(
            redis.env[0]["valueFrom"],
            json!({"secretKeyRef": {"name": "redis", "key": "password"}})
        );
        assert!(redis.found);
        assert!(redis.env_from.is_empty());
        assert_eq!(redis.problem, None);
    }

    #[test]
    fn follows_redis_provider() {
        let redis = redis_env(&sidekiq(json!([
            {"name": "REDIS_PROVIDER", "value": "REDISCLOUD_URL"},
            {"name": "REDISCLOUD_URL", "valueFrom": {"secretKeyRef": {"name": "cloud", "key": "url"}}},
        ])));
        assert_eq!(names(&redis.env), vec!["REDIS_PROVIDER", "REDISCLOUD_URL"]);
        assert!(redis.found);
    }

    #[test]
    fn a_provider_variable_an_env_from_may_set_takes_the_env_from_along() {
        let mut container = sidekiq(json!([
            {"name": "REDIS_URL", "value": "redis://localhost:6379/0"},
            {"name": "REDIS_PROVIDER", "value": "REDISCLOUD_URL"},
        ]));
        container["envFrom"] = json!([{"secretRef": {"name": "cloud"}}]);
        let redis = redis_env(&container);
        assert_eq!(names(&redis.env), vec!["REDIS_URL", "REDIS_PROVIDER"]);
        assert_eq!(
            redis.env_from,
            vec![json!({"secretRef": {"name": "cloud"}})]
        );
        assert!(redis.found);

        // Without an envFrom nothing else can set it: REDIS_URL is what Sidekiq reads.
        container.as_object_mut().unwrap().remove("envFrom");
        let redis = redis_env(&container);
        assert!(redis.env_from.is_empty());
        assert!(redis.found);
    }

    #[test]
    fn a_provider_from_a_config_map_takes_every_redis_variable() {
        let redis = redis_env(&sidekiq(json!([
            {"name": "REDIS_PROVIDER", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "provider"}}},
            {"name": "REDISCLOUD_URL", "valueFrom": {"secretKeyRef": {"name": "cloud", "key": "url"}}},
            {"name": "SECRET_KEY_BASE", "valueFrom": {"secretKeyRef": {"name": "app", "key": "base"}}},
        ])));
        assert_eq!(names(&redis.env), vec!["REDIS_PROVIDER", "REDISCLOUD_URL"]);
        assert!(!redis.found);
    }

    #[test]
    fn a_url_in_redis_provider_is_a_problem() {
        let redis = redis_env(&sidekiq(
            json!([{"name": "REDIS_PROVIDER", "value": "redis://r:6379"}]),
        ));
        assert!(
            redis
                .problem
                .unwrap()
                .contains("expects the name of the variable")
        );
    }

    #[test]
    fn falls_back_to_env_from_when_the_url_is_not_in_env() {
        let mut container = sidekiq(json!([{"name": "RAILS_ENV", "value": "production"}]));
        container["envFrom"] = json!([{"secretRef": {"name": "app-env"}}]);
        let redis = redis_env(&container);
        assert!(redis.env.is_empty());
        assert_eq!(
            redis.env_from,
            vec![json!({"secretRef": {"name": "app-env"}})]
        );
        assert!(redis.found);
        assert_eq!(redis.url_missing, None);

        let redis = redis_env(&sidekiq(json!([])));
        assert!(!redis.found);
        assert_eq!(
            redis.url_missing,
            Some(UrlMissing::Unset("REDIS_URL".into()))
        );
    }

    #[test]
    fn the_url_is_missing_only_when_nothing_can_hold_it() {
        let missing = |env: Value| redis_env(&sidekiq(env)).url_missing.is_some();
        // Configured in Ruby from other variables: the manifest cannot tell where Redis is.
        assert!(missing(json!([
            {"name": "REDIS_HOST", "value": "redis"},
            {"name": "REDIS_PORT", "value": "6379"},
        ])));
        // REDIS_PROVIDER names a variable that is not there.
        assert_eq!(
            redis_env(&sidekiq(
                json!([{"name": "REDIS_PROVIDER", "value": "REDISCLOUD_URL"}])
            ))
            .url_missing,
            Some(UrlMissing::Unset("REDISCLOUD_URL".into()))
        );
        // ...but Sidekiq falls back to REDIS_URL, and so does the probe.
        let fallback = redis_env(&sidekiq(json!([
            {"name": "REDIS_URL", "value": "redis://r:6379"},
            {"name": "REDIS_PROVIDER", "value": "REDISCLOUD_URL"},
        ])));
        assert!(fallback.found && fallback.url_missing.is_none() && fallback.missing.is_empty());
        // An empty REDIS_PROVIDER is no provider.
        assert!(missing(json!([{"name": "REDIS_PROVIDER", "value": ""}])));
        assert!(!missing(json!([
            {"name": "REDIS_PROVIDER", "value": ""},
            {"name": "REDIS_URL", "value": "redis://r:6379"},
        ])));
        // Set to the empty string (as a Helm chart renders an unset value): Sidekiq gets no
        // URL, whatever an envFrom holds for it, since env overrides it.
        for empty in [json!(""), json!(null)] {
            let env = json!([
                {"name": "REDIS_HOST", "value": "r"},
                {"name": "REDIS_PROVIDER", "value": ""},
                {"name": "REDIS_URL", "value": empty},
            ]);
            let mut container = sidekiq(env);
            container["envFrom"] = json!([{"secretRef": {"name": "app-env"}}]);
            let redis = redis_env(&container);
            assert_eq!(
                redis.url_missing,
                Some(UrlMissing::Empty("REDIS_URL".into())),
                "{empty}"
            );
        }
        // ...unless an envFrom may set a REDIS_PROVIDER that env does not: it goes along.
        let mut container = sidekiq(json!([{"name": "REDIS_URL", "value": ""}]));
        container["envFrom"] = json!([{"secretRef": {"name": "heroku-env"}}]);
        let redis = redis_env(&container);
        assert_eq!(redis.url_missing, None);
        assert!(redis.found);
        assert_eq!(
            redis.env_from,
            vec![json!({"secretRef": {"name": "heroku-env"}})]
        );
        assert!(missing(json!([{"name": "REDIS_URL"}])));
        let provider = redis_env(&sidekiq(json!([
            {"name": "REDIS_PROVIDER", "value": "REDISCLOUD_URL"},
            {"name": "REDISCLOUD_URL", "value": ""},
            {"name": "REDIS_URL", "value": "redis://r:6379"},
        ])));
        assert_eq!(
            provider.url_missing,
            Some(UrlMissing::Empty("REDISCLOUD_URL".into()))
        );
        // A provider with no value at all is no provider either.
        assert!(!missing(json!([
            {"name": "REDIS_PROVIDER"},
            {"name": "REDIS_URL", "value": "redis://r:6379"},
        ])));
        // A reference is not empty, and neither is a valueFrom.
        assert!(!missing(
            json!([{"name": "REDIS_URL", "value": "$(REDIS)"}])
        ));
        assert!(!missing(json!([
            {"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "r", "key": "url"}}}
        ])));
        // A URL is there, even if one of its references is not: Sidekiq reads the same URL.
        assert!(!missing(
            json!([{"name": "REDIS_URL", "value": "redis://$(REDIS_HOST):6379"}])
        ));
        // REDIS_PROVIDER from a ConfigMap: every Redis variable goes along.
        assert!(!missing(json!([
            {"name": "REDIS_PROVIDER", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "p"}}},
        ])));
        // A URL in REDIS_PROVIDER is its own, louder problem.
        assert!(!missing(
            json!([{"name": "REDIS_PROVIDER", "value": "redis://r:6379"}])
        ));
    }

    #[test]
    fn env_from_is_copied_when_a_reference_is_only_defined_there() {
        let mut container =
            sidekiq(json!([{"name": "REDIS_URL", "value": "redis://$(REDIS_HOST):6379"}]));
        container["envFrom"] = json!([{"configMapRef": {"name": "redis"}}]);
        let redis = redis_env(&container);
        assert_eq!(names(&redis.env), vec!["REDIS_URL"]);
        assert_eq!(redis.env_from.len(), 1);
    }

    #[test]
    fn the_sidecar_container() {
        let policy = SidecarPolicy::default();
        let worker = sidekiq(json!([
            {"name": "REDIS_URL", "value": "redis://redis:6379/0"},
            {"name": "DYNO", "value": "worker.1"},
        ]));
        let spec = Spec {
            mode: Mode::Native,
            port: 7434,
            drain_budget: 320,
            exit_deadline: 350,
            policy: &policy,
            sidekiq: &worker,
            redis: &redis_env(&worker),
            redis_namespace: None,
            root_pod: false,
            resources: &policy.resources,
        };
        let container = container(&spec);
        // The image's user, unnamed: OpenShift assigns its own.
        assert_eq!(container["securityContext"]["runAsNonRoot"], true);
        assert_eq!(container["securityContext"].get("runAsUser"), None);
        let in_root_pod = super::container(&Spec {
            root_pod: true,
            ..spec
        });
        assert_eq!(in_root_pod["securityContext"]["runAsUser"], 65532);
        assert_eq!(in_root_pod["securityContext"]["runAsGroup"], 65532);
        assert_eq!(container["name"], NAME);
        assert_eq!(container["restartPolicy"], "Always");
        assert_eq!(
            container["args"],
            json!([
                "--listen=[::]:7434",
                "--drain-budget=5m20s",
                "--mode=native"
            ])
        );
        assert_eq!(
            names(container["env"].as_array().unwrap()),
            vec![
                "SIDEKIQ_GUARD_POD_NAME",
                "SIDEKIQ_GUARD_POD_NAMESPACE",
                "SIDEKIQ_GUARD_HOSTNAME",
                "REDIS_URL"
            ]
        );
        assert_eq!(container["resources"]["limits"]["memory"], "32Mi");

        assert_eq!(container["ports"][0]["containerPort"], 7434);

        // Classic: a regular container, signalled as the pod is deleted, serving until Sidekiq
        // may have stopped.
        let classic = super::container(&Spec {
            mode: Mode::Classic,
            ..spec
        });
        assert_eq!(classic.get("restartPolicy"), None);
        assert_eq!(
            classic["args"],
            json!([
                "--listen=[::]:7434",
                "--drain-budget=5m20s",
                "--mode=classic",
                "--exit-deadline=5m50s"
            ])
        );

        // Sidekiq 6 with redis-namespace: the probe reads the keys under the same prefix.
        let namespaced = super::container(&Spec {
            redis_namespace: Some("myapp"),
            ..spec
        });
        assert_eq!(
            namespaced["args"],
            json!([
                "--listen=[::]:7434",
                "--drain-budget=5m20s",
                "--mode=native",
                "--redis-namespace=myapp"
            ])
        );
    }

    /// The sidecar follows what every other container does, resource by resource: a CPU limit
    /// where they are all limited in CPU (a ResourceQuota on `limits.cpu` refuses a pod with one
    /// that is not), a request equal to the limit where they all request their limit.
    #[test]
    fn the_sidecar_follows_what_every_other_container_does() {
        let resources = |cpu: (&str, &str), memory: (&str, &str)| {
            let side = |at: usize| {
                let mut side = Map::new();
                for (name, pair) in [("cpu", cpu), ("memory", memory)] {
                    let value = if at == 0 { pair.0 } else { pair.1 };
                    if !value.is_empty() {
                        side.insert(name.into(), json!(value));
                    }
                }
                Value::Object(side)
            };
            json!({"name": "worker", "resources": {"requests": side(0), "limits": side(1)}})
        };
        let fitted_for = |containers: &[Value]| {
            let policy = Resources::default();
            super::resources(&fitted(&policy, Pattern::of(containers.iter())))
        };
        // Limited in CPU, memory requested below its limit: a CPU limit, the policy's request.
        let limited = resources(("500m", "1"), ("512Mi", "1Gi"));
        assert_eq!(
            fitted_for(std::slice::from_ref(&limited)),
            json!({"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"cpu": "5m", "memory": "32Mi"}})
        );
        // Memory requested at its limit everywhere: the sidecar's too.
        let pinned = resources(("500m", ""), ("1Gi", "1Gi"));
        assert_eq!(
            fitted_for(std::slice::from_ref(&pinned)),
            json!({"requests": {"cpu": "5m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}})
        );
        // One container without a CPU limit: none for the sidecar. The sidecar itself and
        // containers mixed: only what all of them do.
        let open = resources(("500m", ""), ("512Mi", ""));
        assert_eq!(
            fitted_for(&[limited.clone(), open.clone()]),
            json!({"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}})
        );
        let mut ours = open;
        ours["name"] = json!(NAME);
        assert_eq!(fitted_for(&[limited.clone(), ours]), fitted_for(&[limited]));
        // Guaranteed: both, for both.
        let guaranteed = resources(("1", "1"), ("1Gi", "1Gi"));
        assert!(Pattern::of([guaranteed.clone()].iter()).guaranteed());
        assert_eq!(
            fitted_for(&[guaranteed]),
            json!({"requests": {"cpu": "5m", "memory": "32Mi"}, "limits": {"cpu": "5m", "memory": "32Mi"}})
        );
    }

    /// The sidecar for `worker` in native mode under the default policy.
    fn sidecar_of(worker: &Value) -> Value {
        let policy = SidecarPolicy::default();
        container(&Spec {
            mode: Mode::Native,
            port: 7434,
            drain_budget: 320,
            exit_deadline: 350,
            policy: &policy,
            sidekiq: worker,
            redis: &redis_env(worker),
            redis_namespace: None,
            root_pod: false,
            resources: &policy.resources,
        })
    }

    #[test]
    fn dyno_takes_along_the_variables_it_uses() {
        // A DYNO built from other variables takes along those defined before it (the kubelet
        // leaves a reference to a later one as written, and so must the sidecar's copy).
        let worker = sidekiq(json!([
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "ROLE", "value": "mailer"},
            {"name": "UNUSED", "value": "x"},
            {"name": "REDIS_URL", "value": "redis://redis:6379/0"},
            {"name": "DYNO", "value": "$(ROLE).$(POD_NAME).$(LATER)"},
            {"name": "LATER", "value": "x"},
        ]));
        let with_refs = sidecar_of(&worker);
        assert_eq!(
            names(with_refs["env"].as_array().unwrap()),
            vec![
                "SIDEKIQ_GUARD_POD_NAME",
                "SIDEKIQ_GUARD_POD_NAMESPACE",
                "POD_NAME",
                "ROLE",
                "SIDEKIQ_GUARD_HOSTNAME",
                "REDIS_URL"
            ]
        );
        assert_eq!(with_refs["env"][4]["value"], "$(ROLE).$(POD_NAME).$(LATER)");

        // A DYNO using a variable only envFrom defines takes envFrom along.
        let mut worker = sidekiq(json!([
            {"name": "REDIS_URL", "value": "redis://redis:6379/0"},
            {"name": "DYNO", "value": "$(ROLE).1"},
        ]));
        worker["envFrom"] = json!([{"configMapRef": {"name": "roles"}}]);
        assert!(
            redis_env(&worker).env_from.is_empty(),
            "Redis alone does not need it"
        );
        let with_env_from = sidecar_of(&worker);
        assert_eq!(
            with_env_from["envFrom"],
            json!([{"configMapRef": {"name": "roles"}}])
        );

        // A redefined variable: DYNO sees the first value, REDIS_URL the second; so must the
        // sidecar's copies.
        let worker = sidekiq(json!([
            {"name": "A", "value": "x"},
            {"name": "DYNO", "value": "$(A)"},
            {"name": "A", "value": "y"},
            {"name": "REDIS_URL", "value": "redis://$(A):6379/0"},
        ]));
        let redefined = sidecar_of(&worker);
        let env: Vec<(&str, &str)> = redefined["env"].as_array().unwrap()[2..]
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
            .collect();
        assert_eq!(
            env,
            vec![
                ("A", "x"),
                ("SIDEKIQ_GUARD_HOSTNAME", "$(A)"),
                ("A", "y"),
                ("REDIS_URL", "redis://$(A):6379/0")
            ]
        );
    }

    /// The second admission pass the webhook's patch causes runs the in-tree plugins on the
    /// sidecar before the webhook is reinvoked; undoing what they add would get the pod refused
    /// when they check it afterwards.
    #[test]
    fn what_in_tree_admission_plugins_add_to_the_sidecar_is_not_a_difference() {
        let worker = sidekiq(json!([{"name": "REDIS_URL", "value": "redis://redis:6379/0"}]));
        let wanted = sidecar_of(&worker);
        assert!(wanted.at("/resources/limits/cpu").is_none());
        let mut admitted = wanted.clone();
        // LimitRanger: a LimitRange's `default` and `defaultRequest` for what the policy leaves
        // open (its `max` sets a default too).
        admitted["resources"]["limits"]["cpu"] = json!("500m");
        admitted["resources"]["limits"]["ephemeral-storage"] = json!("1Gi");
        admitted["resources"]["requests"]["ephemeral-storage"] = json!("100Mi");
        // AlwaysPullImages.
        admitted["imagePullPolicy"] = json!("Always");
        // A policy engine pulling from a mirror, and pinning the digest.
        let image = wanted["image"].as_str().unwrap();
        admitted["image"] = json!(format!("mirror.example.com/{image}@sha256:0123abcd"));
        // OpenShift's restricted-v2 SecurityContextConstraint.
        admitted["securityContext"]["runAsUser"] = json!(1_000_680_000);
        admitted["securityContext"]["seLinuxOptions"] = json!({"level": "s0:c26,c5"});
        assert!(is_current(&admitted, &wanted, &Value::Null));
        // Not the user sidekiq-guard names in a root pod, nor another security setting.
        let mut root_before = admitted.clone();
        root_before["securityContext"]["runAsUser"] = json!(IMAGE_USER);
        assert!(!is_current(&root_before, &wanted, &Value::Null));
        let mut group = admitted.clone();
        group["securityContext"]["runAsGroup"] = json!(0);
        assert!(!is_current(&group, &wanted, &Value::Null));
        // Another tag or name is another image; a policy's digest must be the one pulled.
        for other in [
            "mirror.example.com/sidekiq-guard:0.0.0-older".to_owned(),
            format!("mirror.example.com/other:{}", crate::VERSION),
        ] {
            let mut older = admitted.clone();
            older["image"] = json!(other);
            assert!(!is_current(&older, &wanted, &Value::Null), "{other}");
        }
        let mut pinned_image = wanted.clone();
        pinned_image["image"] = json!("registry.example.com/sidekiq-guard@sha256:aaaa");
        let mut mirrored = pinned_image.clone();
        mirrored["image"] = json!("mirror.example.com/sidekiq-guard@sha256:aaaa");
        assert!(is_current(&mirrored, &pinned_image, &Value::Null));
        mirrored["image"] = json!("registry.example.com/sidekiq-guard@sha256:bbbb");
        assert!(!is_current(&mirrored, &pinned_image, &Value::Null));

        // With no `resources` from the policy, LimitRanger adds both sides.
        let mut open = wanted.clone();
        open["resources"] = json!({});
        let mut limited = open.clone();
        limited["resources"] = json!({"limits": {"cpu": "500m", "memory": "512Mi"},
                                      "requests": {"cpu": "100m", "memory": "256Mi"}});
        assert!(is_current(&limited, &open, &Value::Null));

        // What sidekiq-guard sets still counts: a limit or a request of its own, a pull
        // policy the policy names, a security setting.
        let mut pinned = wanted.clone();
        pinned["imagePullPolicy"] = json!("IfNotPresent");
        assert!(is_current(&admitted, &pinned, &Value::Null));
        let mut other = admitted.clone();
        other["imagePullPolicy"] = json!("Never");
        assert!(!is_current(&other, &pinned, &Value::Null));
        let mut other = admitted.clone();
        other["resources"]["requests"]["cpu"] = json!("100m");
        assert!(!is_current(&other, &wanted, &Value::Null));
        let mut other = admitted.clone();
        other["securityContext"]["runAsNonRoot"] = json!(false);
        assert!(!is_current(&other, &wanted, &Value::Null));
    }

    #[test]
    fn a_sidecar_as_the_api_server_stores_it_is_current() {
        let worker = sidekiq(json!([{"name": "REDIS_URL", "value": "redis://redis:6379/0"}]));
        let wanted = sidecar_of(&worker);
        let mut stored = wanted.clone();
        stored["imagePullPolicy"] = json!("IfNotPresent");
        stored["terminationMessagePath"] = json!("/dev/termination-log");
        stored["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] = json!("v1");
        stored["resources"]["requests"]["cpu"] = json!("0.005");
        stored["resources"]["limits"]["memory"] = json!("33554432");
        assert!(is_current(&stored, &wanted, &Value::Null));

        // What sidekiq-guard sets and the object lacks or differs in is not current.
        let changed = |edit: fn(&mut Value)| {
            let mut changed = stored.clone();
            edit(&mut changed);
            is_current(&changed, &wanted, &Value::Null)
        };
        assert!(!changed(|c| c["image"] = json!("example.com/other:1")));
        assert!(!changed(
            |c| c["resources"]["limits"]["memory"] = json!("64Mi")
        ));
        assert!(!changed(|c| {
            c["env"].as_array_mut().unwrap().pop();
        }));
        assert!(!changed(|c| {
            c.as_object_mut().unwrap().remove("securityContext");
        }));
        // The token mount the ServiceAccount plugin adds, and host ports under hostNetwork.
        let mut admitted = stored.clone();
        admitted["volumeMounts"] = json!([{"name": "kube-api-access-x", "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
        admitted["ports"][0]["hostPort"] = admitted["ports"][0]["containerPort"].clone();
        assert!(is_current(&admitted, &wanted, &Value::Null));
        // Defaulted fields count only with their default values.
        assert!(!changed(|c| c["imagePullPolicy"] = json!("Never")));
        assert!(!changed(
            |c| c["terminationMessagePolicy"] = json!("FallbackToLogsOnError")
        ));
        assert!(!changed(
            |c| c["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}])
        ));
        let mut resizable = stored.clone();
        resizable["resizePolicy"] = json!([{"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "NotRequired"}]);
        assert!(is_current(&resizable, &wanted, &Value::Null));
        assert!(!changed(
            |c| c["resizePolicy"] =
                json!([{"resourceName": "memory", "restartPolicy": "RestartContainer"}])
        ));
        // What sidekiq-guard no longer sets is a difference too.
        assert!(!changed(
            |c| c["envFrom"] = json!([{"secretRef": {"name": "gone"}}])
        ));
        assert!(!changed(
            |c| c["securityContext"]["readOnlyRootFilesystem"] = json!(false)
        ));
        // Requests the API server took from limits are not.
        let mut limits_only = wanted.clone();
        limits_only["resources"] = json!({"limits": {"memory": "64Mi"}});
        let mut defaulted = limits_only.clone();
        defaulted["resources"]["requests"] = json!({"memory": "67108864"});
        assert!(is_current(&defaulted, &limits_only, &Value::Null));
        defaulted["resources"]["requests"]["memory"] = json!("32Mi");
        assert!(!is_current(&defaulted, &limits_only, &Value::Null));
        // Quantities compare by value only under resources: elsewhere a string is a string.
        assert!(!changed(|c| c["args"][1] = json!("--drain-budget=5m20.0s")));
        let mut env_value = wanted.clone();
        env_value["env"][2]["value"] = json!("1000m");
        let mut stored_value = env_value.clone();
        stored_value["env"][2]["value"] = json!("1");
        assert!(!is_current(&stored_value, &env_value, &Value::Null));
    }

    /// Datadog's admission controller, EKS Pod Identity or Azure Workload Identity add their
    /// variables and token mount to every container, after sidekiq-guard and before its
    /// reinvocation: not a reason to replace the sidecar, which would strip them again.
    #[test]
    fn what_other_webhooks_add_to_every_container_is_not_a_difference() {
        let worker = sidekiq(json!([{"name": "REDIS_URL", "value": "redis://redis:6379/0"}]));
        let wanted = sidecar_of(&worker);
        let added_env = [
            json!({"name": "DD_AGENT_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}),
            json!({"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::1:role/r"}),
        ];
        let added_mount = json!({"name": "aws-iam-token", "readOnly": true,
            "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"});
        let add = |container: &mut Value| {
            let env = container["env"].as_array_mut().unwrap();
            env.insert(1, added_env[0].clone());
            env.push(added_env[1].clone());
            container["volumeMounts"] = json!([added_mount.clone()]);
        };
        let (mut worker_after, mut sidecar_after) = (worker.clone(), wanted.clone());
        add(&mut worker_after);
        add(&mut sidecar_after);
        assert!(is_current(&sidecar_after, &wanted, &worker_after));
        // Only where the Sidekiq container has them too.
        assert!(!is_current(&sidecar_after, &wanted, &worker));
        let mut other_value = worker_after.clone();
        other_value["env"][2]["value"] = json!("arn:aws:iam::1:role/other");
        assert!(!is_current(&sidecar_after, &wanted, &other_value));
        // An entry the sidecar defines stays the sidecar's, whatever the Sidekiq container says.
        let mut overridden = sidecar_after.clone();
        overridden["env"][0]["value"] = json!("redis://elsewhere:6379/0");
        assert!(!is_current(&overridden, &wanted, &worker_after));
        // A Redis variable copied once and no longer asked for, which the Sidekiq container no
        // longer defines either, is a difference: its Secret may be gone.
        let mut stale = wanted.clone();
        stale["env"].as_array_mut().unwrap().push(
            json!({"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "p"}}}),
        );
        assert!(!is_current(&stale, &wanted, &worker));
    }
}
