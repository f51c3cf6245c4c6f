//! Everything sidekiq-guard concludes about one object before deciding anything: which container
//! runs Sidekiq, its settings and grace period, the probe port, and the current state of the
//! fields it manages. Mutation ([`crate::mutate`]) and findings ([`crate::findings`]) both start
//! from an [`Analysis`], so they can never disagree about the facts.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::annotations::{self, Overrides, PodOptIn};
use crate::detect::{self, Detection, SidekiqContainer};
use crate::grace::Grace;
use crate::pointer::Pointer as _;
use crate::policy::Policy;
use crate::prestop::{self, DRAIN_PATH, PreStop};
use crate::settings::{Settings, Source};
use crate::sidecar::{self, Mode, Reach, RedisEnv};
use crate::sidekiq::Flags;
use crate::workload::{Workload, WorkloadError};

/// Paths served by the probe sidecar that the injected probes call.
pub const LIVEZ_PATH: &str = "/livez";
/// See [`LIVEZ_PATH`].
pub const READYZ_PATH: &str = "/readyz";

/// The inputs every decision shares.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// Where the sidecar goes (already resolved from `sidecar.mode` and the cluster version).
    pub mode: Mode,
    /// The namespace of the admission request, for objects that do not carry one yet.
    pub namespace: Option<&'a str>,
}

/// Why an object is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not a kind with a pod template, or malformed.
    NotAWorkload(WorkloadError),
    /// The namespace is excluded by the policy.
    ExcludedNamespace(String),
    /// Labelled `sidekiq-guard.io/inject=false`.
    OptedOut,
    /// No container runs Sidekiq.
    NoSidekiq,
    /// The pod runs on Windows (`spec.os.name`, or a `nodeSelector` on `kubernetes.io/os`):
    /// the probe is a Linux image, and the API server refuses the sidecar's Linux security
    /// settings where `spec.os.name` says so.
    Windows,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::NotAWorkload(why) => write!(f, "{why}"),
            Skip::ExcludedNamespace(namespace) => write!(
                f,
                "namespace {namespace} is excluded by the policy (excludedNamespaces)"
            ),
            Skip::OptedOut => write!(
                f,
                "labelled {}={}",
                annotations::INJECT,
                annotations::INJECT_POD_OUT
            ),
            Skip::NoSidekiq => f.write_str("no container runs Sidekiq"),
            Skip::Windows => f.write_str(
                "the pod runs on Windows (spec.os.name or nodeSelector kubernetes.io/os): the probe sidecar is a Linux image",
            ),
        }
    }
}

impl Skip {
    /// A short, stable label (for metrics and logs).
    pub fn label(&self) -> &'static str {
        match self {
            Skip::NotAWorkload(_) => "not-a-workload",
            Skip::ExcludedNamespace(_) => "excluded-namespace",
            Skip::OptedOut => "opted-out",
            Skip::NoSidekiq => "no-sidekiq",
            Skip::Windows => "windows",
        }
    }
}

/// What is known about an object.
#[derive(Debug, Clone)]
pub enum Subject<'a> {
    /// Left alone.
    Skipped(Skip),
    /// A Sidekiq workload whose Sidekiq container cannot be told (ambiguous, or the annotation
    /// names a missing container).
    Unresolved {
        /// The workload.
        workload: Workload<'a>,
        /// Its annotations.
        overrides: Overrides,
        /// What went wrong.
        detection: Detection,
    },
    /// A Sidekiq workload.
    Sidekiq(Box<Analysis<'a>>),
}

/// State of a probe on the Sidekiq container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeState {
    /// None.
    Missing,
    /// An `httpGet` of the probe sidecar's endpoint, on this numeric port.
    Ours(Option<u16>),
    /// The user's own.
    User,
}

/// Where the probe sidecar currently is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// In `initContainers` (native) or `containers` (classic).
    pub mode: Mode,
    /// Index in that list.
    pub index: usize,
}

impl Placement {
    /// The container at this place in `workload`'s pod spec.
    pub fn container<'a>(&self, workload: &Workload<'a>) -> Option<&'a Value> {
        workload.spec.get(self.mode.list())?.get(self.index)
    }
}

/// The current value of every field sidekiq-guard manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// `terminationGracePeriodSeconds`, when set to a number.
    pub grace: Option<u64>,
    /// `terminationGracePeriodSeconds` is written negative, which the API server stores as 1
    /// (and `grace` holds 1): said in messages, so that users find the value they wrote.
    pub grace_negative: bool,
    /// The Sidekiq container's preStop hook.
    pub prestop: PreStop,
    /// Its startupProbe.
    pub startup: ProbeState,
    /// Its readinessProbe.
    pub readiness: ProbeState,
    /// Its livenessProbe.
    pub liveness: ProbeState,
    /// The probe sidecar.
    pub sidecar: Option<Placement>,
}

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const KUBERNETES_DEFAULT_GRACE: u64 = 30;

impl PodState {
    /// The grace period the kubelet will use.
    pub fn effective_grace(&self) -> u64 {
        self.grace.unwrap_or(KUBERNETES_DEFAULT_GRACE)
    }

    /// What a message adds to the effective grace period when the manifest does not show it.
    pub fn grace_note(&self) -> &'static str {
        match (self.grace, self.grace_negative) {
            (None, _) => " (Kubernetes default)",
            (Some(_), true) => " (written negative, which the API server stores as 1)",
            (Some(_), false) => "",
        }
    }
}

/// The probe port, chosen so that it does not collide with a port the pod already uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortChoice {
    /// The port the sidecar will listen on.
    pub port: u16,
    /// When the annotated port is taken: the container that uses it.
    pub conflict: Option<String>,
    /// When the policy's port was taken and the sidecar moved off it: that port, and the
    /// container that uses it (said in a warning, or the new port would surprise).
    pub instead_of: Option<(u16, String)>,
}

/// The facts about a Sidekiq workload.
#[derive(Debug, Clone)]
pub struct Analysis<'a> {
    /// The object.
    pub workload: Workload<'a>,
    /// Its annotations.
    pub overrides: Overrides,
    /// The Sidekiq container.
    pub container: SidekiqContainer,
    /// Its Sidekiq flags.
    pub flags: Flags,
    /// The effective settings.
    pub settings: Settings,
    /// The grace period.
    pub grace: Grace,
    /// The probe port.
    pub port: PortChoice,
    /// The Redis settings the sidecar will get.
    pub redis: RedisEnv,
    /// Current state of the managed fields.
    pub state: PodState,
}

impl<'a> Analysis<'a> {
    /// The Sidekiq container's JSON.
    pub fn sidekiq_json(&self) -> &'a Value {
        &self.workload.containers[self.container.index]
    }
}

/// Analyses `object` (a Pod or a workload).
pub fn analyse<'a>(object: &'a Value, ctx: &Context<'_>) -> Subject<'a> {
    let workload = match Workload::locate(object) {
        Ok(workload) => workload,
        Err(err) => return Subject::Skipped(Skip::NotAWorkload(err)),
    };
    if let Some(namespace) = workload.namespace().or(ctx.namespace)
        && ctx.policy.excludes(namespace)
    {
        return Subject::Skipped(Skip::ExcludedNamespace(namespace.to_owned()));
    }
    let opt_in = PodOptIn::of(workload.label(annotations::INJECT));
    if opt_in == PodOptIn::Out {
        return Subject::Skipped(Skip::OptedOut);
    }
    if runs_on_windows(&workload) {
        return Subject::Skipped(Skip::Windows);
    }
    let overrides = Overrides::from_annotations(workload.annotations());
    let container = match detect::detect(workload.containers, overrides.container.as_deref()) {
        Detection::Found(container) => container,
        // A pod labelled to opt in, or annotated for sidekiq-guard, expects protection: finding
        // no Sidekiq is news (a script that starts it in a way the manifest does not show).
        Detection::None if opt_in != PodOptIn::In && !annotated_for_us(&workload) => {
            return Subject::Skipped(Skip::NoSidekiq);
        }
        unresolved => {
            return Subject::Unresolved {
                workload,
                overrides,
                detection: unresolved,
            };
        }
    };
    let sidekiq = &workload.containers[container.index];
    let env = detect::LazyEnv::new(sidekiq);
    let flags = Flags::parse_with(&container.args, &|value| {
        detect::set_at_run_time(&env, container.via_shell, value)
    });
    let settings = Settings::resolve(ctx.policy, &overrides, &flags);
    let shared_pids = workload
        .spec
        .get("shareProcessNamespace")
        .and_then(Value::as_bool)
        == Some(true);
    let host_network = workload.host_network();
    let prestop = prestop::classify(sidekiq, shared_pids, host_network);
    let grace = Grace::compute(&settings, prestop.duration());
    let port = choose_port(&workload, container.index, &settings);
    let service_links = workload.spec.get("enableServiceLinks") != Some(&Value::Bool(false));
    let redis = sidecar::redis_env_in(sidekiq, service_links);
    let written = workload.spec.get("terminationGracePeriodSeconds");
    let grace_negative = written.and_then(Value::as_i64).is_some_and(|g| g < 0);
    let state = PodState {
        // A negative value is stored as 1 by the API server (Kubernetes 1.27+): one second.
        grace: written.and_then(|value| value.as_u64().or_else(|| value.as_i64().map(|_| 1))),
        grace_negative,
        prestop,
        startup: probe_state(sidekiq, "startupProbe", host_network),
        readiness: probe_state(sidekiq, "readinessProbe", host_network),
        liveness: probe_state(sidekiq, "livenessProbe", host_network),
        sidecar: find_sidecar(&workload),
    };
    Subject::Sidekiq(Box::new(Analysis {
        workload,
        overrides,
        container,
        flags,
        settings,
        grace,
        port,
        redis,
        state,
    }))
}

/// Whether the pod is for Windows nodes: `spec.os.name`, or a `nodeSelector` on the label
/// every node carries (pods that name no `os` are scheduled by it, and a Linux sidecar image
/// could never be pulled there).
fn runs_on_windows(workload: &Workload<'_>) -> bool {
    let windows = Some(&Value::from("windows"));
    workload.spec.get("os").and_then(|os| os.get("name")) == windows
        || workload
            .spec
            .get("nodeSelector")
            .and_then(|selector| selector.get("kubernetes.io/os"))
            == windows
}

/// Whether the pod template carries an annotation of sidekiq-guard's other than the status the
/// webhook writes.
fn annotated_for_us(workload: &Workload<'_>) -> bool {
    workload.annotations().is_some_and(|annotations| {
        annotations
            .keys()
            .any(|key| key.starts_with(annotations::PREFIX) && key != annotations::STATUS)
    })
}

/// Whether `object` (a pod or workload) is a Sidekiq one: injected by sidekiq-guard, or with a
/// container that runs Sidekiq by the rules of [`detect`].
pub fn is_sidekiq(object: &Value) -> bool {
    Workload::locate(object).is_ok_and(|w| {
        w.annotations()
            .is_some_and(|a| a.contains_key(annotations::STATUS))
            || detect::runs_sidekiq(w.containers)
    })
}

/// The `kind` of `object` when it is none that sidekiq-guard reads (an Argo Rollout, an
/// OpenKruise CloneSet) yet carries a pod template (`spec.template.spec`) with a container that
/// runs Sidekiq: the webhook injects its pods as they are created, but the object itself is
/// not judged, so offline tools say so rather than pass it in silence.
/// Returns the object's `apiVersion` and `kind` as written (`argoproj.io/v1alpha1 Rollout`).
pub fn foreign_sidekiq_kind(object: &Value) -> Option<String> {
    if crate::workload::Kind::of(object).is_some() {
        return None;
    }
    let containers = object.at("/spec/template/spec/containers")?.as_array()?;
    let kind = object.get("kind").and_then(Value::as_str)?;
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    detect::runs_sidekiq(containers).then(|| match api_version {
        Some(api_version) => format!("{api_version} {kind}"),
        None => kind.to_owned(),
    })
}

/// How long a drain of this running pod may take, seconds: the budget the webhook computed when
/// it injected the pod (its status annotation), else the grace formula on the pod's own
/// annotations and command line under `policy`. `None` when its Sidekiq container cannot be
/// told.
pub fn pod_drain_budget(pod: &Value, policy: &Policy) -> Option<u64> {
    if let Some(status) = crate::status::InjectionStatus::of_pod(pod) {
        return Some(status.drain_budget);
    }
    let ctx = Context {
        policy,
        mode: Mode::Native,
        namespace: None,
    };
    match analyse(pod, &ctx) {
        Subject::Sidekiq(analysis) => Some(analysis.grace.drain_budget),
        Subject::Skipped(_) | Subject::Unresolved { .. } => None,
    }
}

/// A probe of `container`: sidekiq-guard's when it gets the endpoint sidekiq-guard gives that
/// probe (`/livez` for liveness, `/readyz` otherwise) where the probe sidecar answers; one sent
/// to another host or over HTTPS, or to the other endpoint, is the user's own.
fn probe_state(container: &Value, field: &str, host_network: bool) -> ProbeState {
    if container.get(field).is_none_or(Value::is_null) {
        return ProbeState::Missing;
    }
    let ours =
        probe_call(container, field).filter(|(endpoint, _)| *endpoint == endpoint_for(field));
    match ours.map(|(_, get)| sidecar::reach(get, container, host_network)) {
        Some(Reach::Pod(port)) => ProbeState::Ours(port),
        Some(Reach::Elsewhere(_)) | None => ProbeState::User,
    }
}

/// The endpoint sidekiq-guard's probe `field` gets: liveness asks whether Sidekiq should be
/// restarted, readiness and start-up whether it works.
pub(crate) fn endpoint_for(field: &str) -> &'static str {
    if field == "livenessProbe" {
        LIVEZ_PATH
    } else {
        READYZ_PATH
    }
}

/// The endpoint and `httpGet` of `container`'s probe `field` when it gets one of the probe
/// sidecar's (`/livez`, `/readyz`), wherever it sends it.
pub(crate) fn probe_call<'c>(container: &'c Value, field: &str) -> Option<(&'c str, &'c Value)> {
    let get = container.get(field)?.get("httpGet")?;
    let path = get.get("path").and_then(Value::as_str).unwrap_or("/");
    let endpoint = sidecar::endpoint(path);
    matches!(endpoint, LIVEZ_PATH | READYZ_PATH).then_some((endpoint, get))
}

/// The mode of the probe sidecar `object` (a pod or workload) carries, if any: on a pod the
/// webhook injected, what it resolved `sidecar.mode: auto` to from the API server's version.
pub fn sidecar_mode_of(object: &Value) -> Option<Mode> {
    let workload = Workload::locate(object).ok()?;
    find_sidecar(&workload).map(|placement| placement.mode)
}

fn find_sidecar(workload: &Workload<'_>) -> Option<Placement> {
    let named = |list: &[Value]| {
        list.iter()
            .position(|c| detect::name_of(c) == sidecar::NAME)
    };
    named(workload.init_containers())
        .map(|index| Placement {
            mode: Mode::Native,
            index,
        })
        .or_else(|| {
            named(workload.containers).map(|index| Placement {
                mode: Mode::Classic,
                index,
            })
        })
}

/// Ports the pod's containers use, except the sidecar's own (so that re-mutating a mutated pod
/// picks the same port again): declared ports, and the numeric ports their probes and hooks
/// reach, since a container may listen on a port it never declares.
fn used_ports<'a>(workload: &Workload<'a>, sidekiq: usize) -> BTreeMap<u16, &'a str> {
    let mut used = BTreeMap::new();
    let sidekiq = workload.containers.get(sidekiq);
    for container in workload.containers.iter().chain(workload.init_containers()) {
        let name = detect::name_of(container);
        if name == sidecar::NAME {
            continue;
        }
        let ports = container.get("ports").and_then(Value::as_array);
        let declared = ports
            .into_iter()
            .flatten()
            .filter_map(|port| port.get("containerPort"));
        let ours = sidekiq.is_some_and(|s| std::ptr::eq(s, container));
        for number in declared.chain(action_ports(container, ours)) {
            if let Some(number) = number.as_u64().and_then(|p| u16::try_from(p).ok()) {
                used.entry(number).or_insert(name);
            }
        }
    }
    used
}

/// The `port` of every probe and lifecycle handler of `container` (`httpGet`, `tcpSocket`,
/// `grpc`). On the Sidekiq container (`sidekiq`), the `/livez`, `/readyz` and `/drain` ones
/// are left out: they reach sidekiq-guard's probe (injected, or written for it). Another
/// container's are its own, whatever their path.
fn action_ports(container: &Value, sidekiq: bool) -> impl Iterator<Item = &Value> {
    const HANDLERS: [&str; 5] = [
        "/livenessProbe",
        "/readinessProbe",
        "/startupProbe",
        "/lifecycle/postStart",
        "/lifecycle/preStop",
    ];
    HANDLERS
        .into_iter()
        .filter_map(|pointer| container.at(pointer))
        .flat_map(|handler| {
            ["httpGet", "tcpSocket", "grpc"]
                .into_iter()
                .filter_map(|kind| handler.get(kind))
        })
        .filter(move |action| {
            let path = action
                .get("path")
                .and_then(Value::as_str)
                .map(sidecar::endpoint);
            !(sidekiq && matches!(path, Some(LIVEZ_PATH | READYZ_PATH | DRAIN_PATH)))
        })
        .filter_map(|action| action.get("port"))
}

fn choose_port(workload: &Workload<'_>, sidekiq: usize, settings: &Settings) -> PortChoice {
    let used = used_ports(workload, sidekiq);
    let wanted = settings.probe_port.value;
    if let Source::Annotation(_) = settings.probe_port.source {
        return PortChoice {
            port: wanted,
            conflict: used.get(&wanted).map(|name| (*name).to_owned()),
            instead_of: None,
        };
    }
    // Upwards, then from the first unprivileged port: the sidecar runs as non-root and cannot
    // bind below 1024. With every port taken (only a contrived pod), the conflict is reported.
    match (wanted..=u16::MAX)
        .chain(crate::FIRST_UNPRIVILEGED_PORT..wanted)
        .find(|port| !used.contains_key(port))
    {
        Some(port) => PortChoice {
            port,
            conflict: None,
            instead_of: used
                .get(&wanted)
                .filter(|_| port != wanted)
                .map(|name| (wanted, (*name).to_owned())),
        },
        None => PortChoice {
            port: wanted,
            conflict: used.get(&wanted).map(|name| (*name).to_owned()),
            instead_of: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(policy: &Policy) -> Context<'_> {
        Context {
            policy,
            mode: Mode::Native,
            namespace: Some("jobs"),
        }
    }

    fn pod(annotations: Value, containers: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "w", "annotations": annotations},
            "spec": {"containers": containers},
        })
    }

    fn analysis(object: &Value) -> Analysis<'_> {
        match analyse(object, &ctx(&Policy::default())) {
            Subject::Sidekiq(analysis) => *analysis,
            other => panic!("expected a Sidekiq workload, got {other:?}"),
        }
    }

    #[test]
    fn a_running_pods_drain_budget() {
        let policy = Policy::default();
        let worker = json!([{"name": "w", "command": ["bundle", "exec", "sidekiq", "-t", "25"]}]);
        let declared = pod(
            json!({"sidekiq-guard.io/longest-job": "5m"}),
            worker.clone(),
        );
        assert_eq!(pod_drain_budget(&declared, &policy), Some(20 + 300));
        // Injected: the webhook's figure, which its own policy may have made different.
        let status = r#"{"version":"0.1.0","container":"w","sidecar":"native","probePort":7434,"drainBudget":95,"grace":125,"longestJob":75,"injected":[],"kept":[]}"#;
        let injected = pod(json!({"sidekiq-guard.io/status": status}), worker);
        assert_eq!(pod_drain_budget(&injected, &policy), Some(95));
        let web = pod(json!({}), json!([{"name": "web", "command": ["puma"]}]));
        assert_eq!(pod_drain_budget(&web, &policy), None);
    }

    #[test]
    fn a_negative_grace_period_is_one_second_as_the_api_server_stores_it() {
        let mut object = pod(json!({}), json!([{"name": "w", "command": ["sidekiq"]}]));
        object["spec"]["terminationGracePeriodSeconds"] = json!(-1);
        let state = &analysis(&object).state;
        assert_eq!(state.grace, Some(1));
        assert_eq!(
            state.grace_note(),
            " (written negative, which the API server stores as 1)"
        );
    }

    #[test]
    fn the_default_port_moves_past_ports_in_use() {
        let object = pod(
            json!({}),
            json!([
                {"name": "w", "command": ["sidekiq"], "ports": [{"containerPort": 7434}]},
                {"name": "exporter", "ports": [{"containerPort": 7435}]},
            ]),
        );
        assert_eq!(
            analysis(&object).port,
            PortChoice {
                port: 7436,
                conflict: None,
                instead_of: Some((7434, "w".into())),
            }
        );
    }

    #[test]
    fn the_search_wraps_around_below_the_policys_port() {
        let policy = Policy::parse("defaults: {probePort: 65535}").unwrap();
        let object = pod(
            json!({}),
            json!([{"name": "w", "command": ["sidekiq"], "ports": [{"containerPort": 65535}]}]),
        );
        let Subject::Sidekiq(analysis) = analyse(&object, &ctx(&policy)) else {
            panic!("a Sidekiq pod");
        };
        assert_eq!(
            analysis.port,
            PortChoice {
                port: 1024,
                conflict: None,
                instead_of: Some((65535, "w".into())),
            }
        );
    }

    #[test]
    fn ports_that_probes_and_hooks_reach_are_in_use_but_not_sidekiq_guards_own() {
        let object = pod(
            json!({}),
            json!([
                {"name": "w", "command": ["sidekiq"],
                 "livenessProbe": {"httpGet": {"path": "/", "port": 7434}},
                 "readinessProbe": {"httpGet": {"path": "/readyz", "port": 7435}},
                 "lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": 7436}},
                               "postStart": {"tcpSocket": {"port": 7436}}}},
                {"name": "exporter", "startupProbe": {"grpc": {"port": 7437}},
                 "readinessProbe": {"httpGet": {"path": "/readyz", "port": 7438}}},
            ]),
        );
        // 7434 and 7436 (a hook reaches it) are taken, and the exporter's 7437 and 7438 (its
        // own /readyz); the Sidekiq container's /readyz on 7435 is sidekiq-guard's own.
        assert_eq!(analysis(&object).port.port, 7435);
        let used = used_ports(&Workload::locate(&object).unwrap(), 0);
        assert_eq!(
            used.keys().copied().collect::<Vec<_>>(),
            vec![7434, 7436, 7437, 7438]
        );
    }

    #[test]
    fn a_kept_prestop_that_sleeps_past_the_drain_budget_lengthens_the_grace() {
        let object = pod(
            json!({"sidekiq-guard.io/longest-job": "2m"}),
            json!([{"name": "w", "command": ["sidekiq", "-t", "30"],
                    "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; sleep 600"]}}}}]),
        );
        let analysis = analysis(&object);
        assert_eq!(analysis.grace.drain_budget, 140);
        assert_eq!(analysis.grace.required, 600 + 30 + 5);
    }

    #[test]
    fn an_annotated_port_in_use_is_a_conflict() {
        let object = pod(
            json!({"sidekiq-guard.io/probe-port": "9000"}),
            json!([
                {"name": "w", "command": ["sidekiq"]},
                {"name": "metrics", "ports": [{"containerPort": 9000}]},
            ]),
        );
        assert_eq!(
            analysis(&object).port,
            PortChoice {
                port: 9000,
                conflict: Some("metrics".into()),
                instead_of: None,
            }
        );
    }

    #[test]
    fn reads_the_current_state() {
        let object = json!({
            "kind": "Pod",
            "spec": {
                "terminationGracePeriodSeconds": 90,
                "containers": [{
                    "name": "w", "command": ["sidekiq"],
                    "livenessProbe": {"httpGet": {"path": "/livez", "port": 7434}},
                    "readinessProbe": {"exec": {"command": ["true"]}},
                }],
                "initContainers": [{"name": "sidekiq-guard-probe"}],
            },
        });
        let state = analysis(&object).state;
        assert_eq!(state.grace, Some(90));
        assert_eq!(state.liveness, ProbeState::Ours(Some(7434)));
        assert_eq!(state.readiness, ProbeState::User);
        assert_eq!(state.startup, ProbeState::Missing);
        assert_eq!(
            state.sidecar,
            Some(Placement {
                mode: Mode::Native,
                index: 0
            })
        );
    }

    #[test]
    fn recognises_sidekiq_objects() {
        let worker = pod(
            json!({}),
            json!([{"name": "w", "command": ["bundle", "exec", "sidekiq"]}]),
        );
        assert!(is_sidekiq(&worker));
        let injected = pod(
            json!({"sidekiq-guard.io/status": "{}"}),
            json!([{"name": "w", "command": ["/start"]}]),
        );
        assert!(is_sidekiq(&injected));
        let web = pod(json!({}), json!([{"name": "web", "command": ["puma"]}]));
        assert!(!is_sidekiq(&web));
        assert!(!is_sidekiq(&json!({"kind": "ConfigMap"})));
    }

    #[test]
    fn skips() {
        let policy = Policy {
            excluded_namespaces: vec!["jobs".into()],
            ..Policy::default()
        };
        let object = pod(json!({}), json!([{"name": "w", "command": ["sidekiq"]}]));
        assert!(matches!(
            analyse(&object, &ctx(&policy)),
            Subject::Skipped(Skip::ExcludedNamespace(ns)) if ns == "jobs"
        ));
        // kube-system whatever the policy says, as the webhook configurations exclude it.
        let mut system = object.clone();
        system["metadata"]["namespace"] = json!("kube-system");
        assert!(matches!(
            analyse(&system, &ctx(&Policy::default())),
            Subject::Skipped(Skip::ExcludedNamespace(ns)) if ns == "kube-system"
        ));
        let mut opted_out = object.clone();
        opted_out["metadata"]["labels"] = json!({"sidekiq-guard.io/inject": "false"});
        assert!(matches!(
            analyse(&opted_out, &ctx(&Policy::default())),
            Subject::Skipped(Skip::OptedOut)
        ));
        let web = pod(json!({}), json!([{"name": "web", "command": ["puma"]}]));
        assert!(matches!(
            analyse(&web, &ctx(&Policy::default())),
            Subject::Skipped(Skip::NoSidekiq)
        ));
    }
}
