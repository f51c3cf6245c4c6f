//! What the mutation does to a Sidekiq pod, decided once as a [`Plan`] and then rendered as JSON
//! Patch operations, warnings and the status annotation.
//!
//! Decisions depend only on the current state of the managed fields, never on what an earlier
//! mutation did, so mutating a mutated pod plans nothing new and yields no operations.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::analysis::{
    Analysis, Context, LIVEZ_PATH, Placement, PodState, ProbeState, READYZ_PATH,
};
use crate::annotations;
use crate::patch::PatchOp;
use crate::pointer::{self, Pointer as _, escape};
use crate::policy::{Policy, Resources};
use crate::prestop::{DRAIN_PATH, PreStop};
use crate::sidecar::{self, Mode};
use crate::status::{InjectionStatus, Part};

/// What happens to one managed part of the Sidekiq container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Absent: sidekiq-guard adds it.
    Add,
    /// sidekiq-guard's, but stale (e.g. another port): replaced.
    Update,
    /// sidekiq-guard's and current: nothing to do.
    Ours,
    /// The user's: kept as it is.
    Keep,
}

/// What happens to `terminationGracePeriodSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraceAction {
    /// Absent, and the Kubernetes default is too short: set to the required value.
    Set,
    /// Set too short: raised to the required value.
    Raise {
        /// The value found.
        from: u64,
    },
    /// Above the required value, and the value sidekiq-guard itself set for earlier settings
    /// (its status annotation says so: a `longest-job` since lowered): lowered to the required
    /// value, as it would have been raised.
    Lower {
        /// The value found.
        from: u64,
    },
    /// Exactly the required value, which sidekiq-guard set (its status annotation says so).
    Ours,
    /// At least the required value (absent counts as Kubernetes' 30 s), set by the user: kept.
    Keep {
        /// The value the kubelet will use.
        value: u64,
    },
}

/// What happens to the probe sidecar.
#[derive(Debug, Clone, PartialEq)]
pub enum SidecarAction {
    /// Added to the list of the mode.
    Add,
    /// Present in the right list but different: replaced.
    Replace(Placement),
    /// Present in the other list: removed there, added to the right one.
    Move(Placement),
    /// Present and current.
    Ours,
}

/// Why a Sidekiq pod cannot be injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// The annotated probe port is already used by a container.
    PortConflict {
        /// The port.
        port: u16,
        /// The container using it.
        container: String,
    },
    /// A classic sidecar would keep a Job's pod running after Sidekiq exits.
    ClassicSidecarInJob,
    /// The Sidekiq container does not say where its Redis is ([`sidecar::RedisEnv::url_missing`]).
    RedisUnknown,
}

/// The decisions of one mutation.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The sidecar.
    pub sidecar: SidecarAction,
    /// The desired sidecar container.
    pub sidecar_container: Value,
    /// The preStop hook.
    pub prestop: Action,
    /// The startupProbe; `None` when the pod has none and gets none. A startupProbe only holds
    /// off sidekiq-guard's own livenessProbe while Rails boots: beside a livenessProbe of the
    /// user's it would be a restart trigger they did not ask for — one that fires every five
    /// minutes in a pod whose probe cannot see Sidekiq's heartbeat, though Sidekiq works and
    /// their own liveness passes.
    pub startup: Option<Action>,
    /// The readinessProbe.
    pub readiness: Action,
    /// The livenessProbe.
    pub liveness: Action,
    /// The grace period.
    pub grace: GraceAction,
    /// The status annotation's content.
    pub status: InjectionStatus,
    /// The annotation's new value, when it must be (re)written.
    pub status_update: Option<String>,
    /// How the pod's other containers set CPU and memory, which the sidecar's resources
    /// follow ([`sidecar::fitted`]); said in a warning when the sidecar is (re)written.
    pub pattern: sidecar::Pattern,
    /// The pod sets pod-level `resources`: the sidecar sets none of its own.
    pub pod_level_resources: bool,
    /// The policy's `sidecar.imagePullSecrets` the pod does not name yet, to add to it. One the
    /// policy no longer names stays: the pod's own may be the same.
    pub pull_secrets: Vec<String>,
}

/// What `fitted` changed in the policy's resources, said for a warning: `is limited in cpu
/// (5m)`, `requests the memory it is limited to (32Mi)`.
fn fitted_resources(policy: &Resources, fitted: &Resources) -> Vec<String> {
    let mut said = Vec::new();
    for name in ["cpu", "memory"] {
        if let Some(limit) = fitted.limits.get(name)
            && !policy.limits.contains_key(name)
        {
            said.push(format!("is limited in {name} ({})", limit.as_str()));
        }
        if let Some(request) = fitted.requests.get(name)
            && policy.requests.get(name) != Some(request)
        {
            said.push(format!(
                "requests the {name} it is limited to ({})",
                request.as_str()
            ));
        }
    }
    said
}

/// The policy's pull secrets that `spec.imagePullSecrets` lacks, in the policy's order; none
/// for a pod template (`kubectl sidekiq inject -f`). The ServiceAccount admission plugin gives
/// its own pull secrets only to a pod that names none, and it runs before the webhook: a pod
/// has them by the time it is reviewed, but a template that named one would keep the
/// ServiceAccount's from every pod made from it. Its pods get the policy's at admission.
fn missing_pull_secrets(analysis: &Analysis<'_>, ctx: &Context<'_>) -> Vec<String> {
    if analysis.workload.kind != crate::workload::Kind::Pod {
        return Vec::new();
    }
    let named = crate::workload::list(&analysis.workload.template["spec"], "imagePullSecrets");
    ctx.policy
        .sidecar
        .image_pull_secrets
        .iter()
        .filter(|name| {
            !named
                .iter()
                .any(|entry| entry.get("name").and_then(Value::as_str) == Some(name.as_str()))
        })
        .cloned()
        .collect()
}

/// Whether the pod sets pod-level `resources`. The API server then refuses a pod whose
/// containers' requests add up to more than the pod's, which their author sized without the
/// sidecar: it sets none of its own and shares the pod's, as pod-level resources intend.
fn has_pod_level_resources(analysis: &Analysis<'_>) -> bool {
    analysis
        .workload
        .spec
        .get("resources")
        .is_some_and(|resources| resources.as_object().is_some_and(|r| !r.is_empty()))
}

/// The pod's other containers that declare ports — a web server beside Sidekiq, say — whose
/// Services the pod's readiness decides for, the sidecar's own aside.
fn serving_containers<'a>(analysis: &'a Analysis<'_>) -> Vec<&'a str> {
    analysis
        .workload
        .containers
        .iter()
        .enumerate()
        .filter(|(index, container)| {
            *index != analysis.container.index
                && crate::detect::name_of(container) != sidecar::NAME
                && container
                    .get("ports")
                    .and_then(Value::as_array)
                    .is_some_and(|ports| !ports.is_empty())
        })
        .map(|(_, container)| crate::detect::name_of(container))
        .collect()
}

/// Plans the mutation of an analysed Sidekiq workload.
pub fn plan(analysis: &Analysis<'_>, ctx: &Context<'_>) -> Result<Plan, Blocked> {
    if let Some(container) = &analysis.port.conflict {
        return Err(Blocked::PortConflict {
            port: analysis.port.port,
            container: container.clone(),
        });
    }
    if ctx.mode == Mode::Classic && analysis.workload.runs_to_completion() {
        return Err(Blocked::ClassicSidecarInJob);
    }
    if analysis.redis.url_missing.is_some() {
        return Err(Blocked::RedisUnknown);
    }
    let port = analysis.port.port;
    let state = &analysis.state;
    let policy_resources = &ctx.policy.sidecar.resources;
    // Pod-level resources decide the QoS class and quota instead of the containers': no
    // pattern to follow, and no resources of the sidecar's own.
    let pod_level_resources = has_pod_level_resources(analysis);
    let workload = &analysis.workload;
    let containers_pattern =
        sidecar::Pattern::of(workload.containers.iter().chain(workload.init_containers()));
    let (pattern, resources) = if pod_level_resources {
        let none = Resources {
            requests: BTreeMap::new(),
            limits: BTreeMap::new(),
        };
        (sidecar::Pattern::default(), Cow::Owned(none))
    } else {
        let fitted = sidecar::fitted(policy_resources, containers_pattern);
        (containers_pattern, fitted)
    };
    let spec = |resources| sidecar::Spec {
        mode: ctx.mode,
        port,
        drain_budget: analysis.grace.drain_budget,
        exit_deadline: analysis.grace.required,
        policy: &ctx.policy.sidecar,
        sidekiq: analysis.sidekiq_json(),
        redis: &analysis.redis,
        redis_namespace: analysis.overrides.redis_namespace.as_deref(),
        root_pod: analysis
            .workload
            .spec
            .get("securityContext")
            .and_then(|context| context.get("runAsUser"))
            .and_then(Value::as_i64)
            == Some(0),
        resources,
    };
    let sidecar_container = sidecar::container(&spec(&resources));
    let sidecar = match state.sidecar {
        None => SidecarAction::Add,
        Some(at) if at.mode != ctx.mode => SidecarAction::Move(at),
        Some(at) => {
            let sidekiq = analysis.sidekiq_json();
            let is_current = |wanted: &Value| {
                at.container(&analysis.workload)
                    .is_some_and(|current| sidecar::is_current(current, wanted, sidekiq))
            };
            // The second pass after LimitRanger gave the first pass's sidecar and the other
            // containers its `default` limit: the pattern they show now is LimitRanger's doing,
            // and the sidecar with the policy's resources, as the first pass wrote it, stands.
            // Replacing it would put a limit of the policy's request (5m of CPU) where
            // LimitRanger had put its own, on every pod of the namespace.
            let fitted_anew = matches!(resources, Cow::Owned(_));
            // Under pod-level resources, the policy's own as written before the pod had them
            // must go: the API server counts them against the pod's.
            let policy_sized = || {
                at.container(workload).is_some_and(|sidecar| {
                    holds_policy_resources(sidecar, policy_resources, containers_pattern)
                })
            };
            if (is_current(&sidecar_container) && !(pod_level_resources && policy_sized()))
                || (!pod_level_resources
                    && fitted_anew
                    && is_current(&sidecar::container(&spec(policy_resources))))
            {
                SidecarAction::Ours
            } else {
                SidecarAction::Replace(at)
            }
        }
    };
    let current = analysis
        .workload
        .annotations()
        .and_then(|a| a.get(annotations::STATUS))
        .and_then(Value::as_str);
    // `/drain` is the probe's alone: a preStop calling it at another port follows the probe's
    // (a user who wrote it by hand, as SG002 suggests, means the probe). `/livez` and `/readyz`
    // are common paths: a probe on them is sidekiq-guard's at the computed port, or at the port
    // it injected before (its status annotation: the port has moved since); at any other port it
    // is the user's (their own `/livez` on a metrics port, say), kept like any user setting.
    let previous = current.and_then(|text| InjectionStatus::parse(text).ok());
    let injected_port = previous.as_ref().map(|status| status.probe_port);
    let injected_grace = previous
        .as_ref()
        .filter(|status| {
            status
                .injected
                .contains(&Part::TerminationGracePeriodSeconds)
        })
        .map(|status| status.grace);
    let prestop = match &state.prestop {
        PreStop::Missing => Action::Add,
        PreStop::Drain { port: Some(p) } if *p == port => Action::Ours,
        PreStop::Drain { .. } | PreStop::MisdirectedDrain { .. } => Action::Update,
        _ => Action::Keep,
    };
    let probe = |probe: ProbeState| match probe {
        ProbeState::Missing => Action::Add,
        ProbeState::Ours(Some(p)) if p == port => Action::Ours,
        ProbeState::Ours(Some(p)) if Some(p) == injected_port => Action::Update,
        ProbeState::Ours(_) | ProbeState::User => Action::Keep,
    };
    let required = analysis.grace.required;
    let grace = match state.grace {
        None if state.effective_grace() >= required => GraceAction::Keep {
            value: state.effective_grace(),
        },
        None => GraceAction::Set,
        Some(value) if value < required => GraceAction::Raise { from: value },
        // The required value is sidekiq-guard's only where it set it: a user who wrote that very
        // value keeps it as theirs, and it is never lowered behind their back.
        Some(value) if injected_grace == Some(value) && value == required => GraceAction::Ours,
        Some(value) if injected_grace == Some(value) && value > required => {
            GraceAction::Lower { from: value }
        }
        Some(value) => GraceAction::Keep { value },
    };
    let liveness = probe(state.liveness);
    let startup = match probe(state.startup) {
        Action::Add if liveness == Action::Keep => None,
        startup => Some(startup),
    };
    let mut plan = Plan {
        sidecar,
        sidecar_container,
        prestop,
        startup,
        readiness: probe(state.readiness),
        liveness,
        grace,
        status: InjectionStatus {
            version: crate::VERSION.to_owned(),
            container: analysis.container.name.clone(),
            sidecar: ctx.mode.as_str().to_owned(),
            probe_port: port,
            drain_budget: analysis.grace.drain_budget,
            grace: required,
            longest_job: analysis.settings.longest_job.value,
            injected: Vec::new(),
            kept: Vec::new(),
        },
        status_update: None,
        pattern,
        pod_level_resources,
        pull_secrets: missing_pull_secrets(analysis, ctx),
    };
    for (part, kept) in plan.parts() {
        match kept {
            Some(true) => plan.status.kept.push(part),
            Some(false) => plan.status.injected.push(part),
            None => {}
        }
    }
    let json = plan.status.to_json();
    if current != Some(json.as_str()) {
        plan.status_update = Some(json);
    }
    Ok(plan)
}

impl Plan {
    /// Every managed part and whether it is the user's (kept), or `None` when the pod has
    /// none and gets none (a startupProbe beside the user's livenessProbe).
    fn parts(&self) -> [(Part, Option<bool>); 6] {
        let kept = |action: Action| Some(action == Action::Keep);
        [
            (Part::Sidecar, Some(false)),
            (Part::PreStop, kept(self.prestop)),
            (Part::StartupProbe, self.startup.and_then(kept)),
            (Part::ReadinessProbe, kept(self.readiness)),
            (Part::LivenessProbe, kept(self.liveness)),
            (
                Part::TerminationGracePeriodSeconds,
                Some(matches!(self.grace, GraceAction::Keep { .. })),
            ),
        ]
    }

    /// The state of the managed fields once the plan is applied.
    pub fn after(&self, analysis: &Analysis<'_>, ctx: &Context<'_>) -> PodState {
        let port = analysis.port.port;
        let state = &analysis.state;
        let probe = |action: Option<Action>, current: ProbeState| match action {
            None | Some(Action::Keep) => current,
            Some(_) => ProbeState::Ours(Some(port)),
        };
        PodState {
            grace: match self.grace {
                GraceAction::Set | GraceAction::Raise { .. } | GraceAction::Lower { .. } => {
                    Some(analysis.grace.required)
                }
                GraceAction::Ours | GraceAction::Keep { .. } => state.grace,
            },
            grace_negative: matches!(self.grace, GraceAction::Ours | GraceAction::Keep { .. })
                && state.grace_negative,
            prestop: match self.prestop {
                Action::Keep => state.prestop.clone(),
                _ => PreStop::Drain { port: Some(port) },
            },
            startup: probe(self.startup, state.startup),
            readiness: probe(Some(self.readiness), state.readiness),
            liveness: probe(Some(self.liveness), state.liveness),
            sidecar: Some(Placement {
                mode: ctx.mode,
                index: match (&self.sidecar, state.sidecar) {
                    (SidecarAction::Replace(_) | SidecarAction::Ours, Some(at)) => at.index,
                    _ => list_len(analysis, ctx.mode),
                },
            }),
        }
    }

    /// The JSON Patch operations, in an order where every pointer is valid when applied.
    pub fn into_ops(self, analysis: &Analysis<'_>, ctx: &Context<'_>) -> Vec<PatchOp> {
        let base = analysis.workload.base();
        let spec = pointer::below(base, "spec");
        let sidekiq = analysis.sidekiq_json();
        let container = format!("{spec}/containers/{}", analysis.container.index);
        let hooks = Hooks::for_port(analysis.port.port);
        let mut ops = Vec::with_capacity(8);

        match self.prestop {
            Action::Add if sidekiq.get("lifecycle").is_some_and(Value::is_object) => {
                ops.push(add(
                    pointer::below(&container, "lifecycle/preStop"),
                    hooks.prestop.clone(),
                ));
            }
            Action::Add => ops.push(add(
                pointer::below(&container, "lifecycle"),
                hooks.lifecycle.clone(),
            )),
            Action::Update => ops.push(replace(
                pointer::below(&container, "lifecycle/preStop"),
                hooks.prestop.clone(),
            )),
            Action::Ours | Action::Keep => {}
        }
        for (field, action, probe) in [
            ("startupProbe", self.startup, &hooks.startup),
            ("readinessProbe", Some(self.readiness), &hooks.readiness),
            ("livenessProbe", Some(self.liveness), &hooks.liveness),
        ] {
            let Some(action) = action else { continue };
            match action {
                // `add` also replaces an explicit `null`, which `replace` would refuse.
                Action::Add => ops.push(add(pointer::below(&container, field), probe.clone())),
                Action::Update => {
                    ops.push(replace(pointer::below(&container, field), probe.clone()));
                }
                Action::Ours | Action::Keep => {}
            }
        }
        let grace_path = pointer::below(&spec, "terminationGracePeriodSeconds");
        match self.grace {
            GraceAction::Set => ops.push(add(grace_path, json!(analysis.grace.required))),
            GraceAction::Raise { .. } | GraceAction::Lower { .. } => {
                ops.push(replace(grace_path, json!(analysis.grace.required)));
            }
            GraceAction::Ours | GraceAction::Keep { .. } => {}
        }
        let secrets = self.pull_secrets.iter().map(|name| json!({ "name": name }));
        append(&mut ops, analysis, &spec, "imagePullSecrets", secrets);
        let list = |mode: Mode| pointer::below(&spec, mode.list());
        match &self.sidecar {
            SidecarAction::Add | SidecarAction::Move(_) => {
                let sidecar = std::iter::once(self.sidecar_container);
                append(&mut ops, analysis, &spec, ctx.mode.list(), sidecar);
            }
            SidecarAction::Replace(at) => ops.push(replace(
                format!("{}/{}", list(at.mode), at.index),
                self.sidecar_container,
            )),
            SidecarAction::Ours => {}
        }
        if let Some(status) = self.status_update {
            ops.push(status_op(analysis, status));
        }
        // Last, so that no earlier pointer into that list is shifted. A list the sidecar was
        // alone in goes whole, so that moving it leaves what adding it in the new mode would
        // have (no `initContainers: []`).
        if let SidecarAction::Move(from) = &self.sidecar {
            let alone = analysis
                .workload
                .spec
                .get(from.mode.list())
                .and_then(Value::as_array)
                .is_some_and(|entries| entries.len() == 1);
            let path = if alone {
                list(from.mode)
            } else {
                format!("{}/{}", list(from.mode), from.index)
            };
            ops.push(PatchOp::Remove { path });
        }
        ops
    }
}

/// Appends `items` to the pod spec's list `key` (at `spec`): one `add` per item at its end, or
/// the whole list where the spec has none (or `null`), which `/-` cannot append to.
fn append(
    ops: &mut Vec<PatchOp>,
    analysis: &Analysis<'_>,
    spec: &str,
    key: &str,
    items: impl Iterator<Item = Value>,
) {
    let path = pointer::below(spec, key);
    if analysis.workload.spec.get(key).is_some_and(Value::is_array) {
        let end = pointer::below(&path, "-");
        ops.extend(items.map(|item| add(end.clone(), item)));
    } else {
        let items: Vec<Value> = items.collect();
        if !items.is_empty() {
            ops.push(add(path, Value::Array(items)));
        }
    }
}

fn status_op(analysis: &Analysis<'_>, status: String) -> PatchOp {
    let base = analysis.workload.base();
    let value = Value::String(status);
    let metadata = analysis.workload.template.get("metadata");
    if !metadata.is_some_and(Value::is_object) {
        return add(
            format!("{base}/metadata"),
            json!({"annotations": {annotations::STATUS: value}}),
        );
    }
    if analysis.workload.annotations().is_none() {
        return add(
            format!("{base}/metadata/annotations"),
            json!({annotations::STATUS: value}),
        );
    }
    add(
        format!(
            "{base}/metadata/annotations/{}",
            escape(annotations::STATUS)
        ),
        value,
    )
}

impl Plan {
    /// Warnings explaining the grace period and every user setting that was kept.
    pub fn warnings(&self, analysis: &Analysis<'_>, policy: &Policy) -> Vec<String> {
        let explanation = &analysis.grace.explanation;
        let required = analysis.grace.required;
        let mut warnings = vec![match self.grace {
            GraceAction::Set => format!(
                "terminationGracePeriodSeconds set to {required} (Kubernetes default is 30): {explanation}"
            ),
            GraceAction::Raise { from } => format!(
                "terminationGracePeriodSeconds raised from {from}{} to {required}: {explanation}",
                analysis.state.grace_note()
            ),
            GraceAction::Lower { from } => format!(
                "terminationGracePeriodSeconds lowered from {from} to {required}: {explanation}"
            ),
            GraceAction::Ours => format!("terminationGracePeriodSeconds is {explanation}"),
            GraceAction::Keep { value } => format!(
                "kept terminationGracePeriodSeconds {value}, at least the required {explanation}"
            ),
        }];
        if let Some((wanted, user)) = &analysis.port.instead_of {
            warnings.push(format!(
                "the probe sidecar listens on port {}: port {wanted} is used by container {user}",
                analysis.port.port
            ));
        }
        let container = &analysis.container.name;
        if let PreStop::MisdirectedDrain { how } = &analysis.state.prestop {
            warnings.push(format!(
                "rewrote the preStop hook on container {container}: it called /drain {how}, which never reaches the probe (plain HTTP, at the pod's own address)"
            ));
        }
        for (part, kept) in self.parts() {
            if kept == Some(true) && part != Part::TerminationGracePeriodSeconds {
                let nor_startup = if part == Part::LivenessProbe && self.startup.is_none() {
                    ", nor a startupProbe to hold it off"
                } else {
                    ""
                };
                warnings.push(format!(
                    "kept your {} on container {container}; sidekiq-guard did not add its own{nor_startup}",
                    part.field()
                ));
            }
        }
        if self.readiness == Action::Add {
            let serving = serving_containers(analysis);
            if !serving.is_empty() {
                warnings.push(format!(
                    "container{} {} of the pod declare{} ports: the pod's readiness now also follows Sidekiq's, so a Redis outage or a drain takes {} out of Services; run Sidekiq in pods of its own",
                    if serving.len() > 1 { "s" } else { "" },
                    serving.join(", "),
                    if serving.len() > 1 { "" } else { "s" },
                    if serving.len() > 1 { "them" } else { "it" },
                ));
            }
        }
        if self.pod_level_resources && self.sidecar != SidecarAction::Ours {
            warnings.push(
                "the pod sets pod-level resources: the probe sidecar sets none of its own and shares the pod's, whose requests must cover every container's"
                    .to_owned(),
            );
        }
        if self.pattern.guaranteed() && self.sidecar != SidecarAction::Ours {
            let limit = |name: &str| {
                self.sidecar_container
                    .at("/resources/limits")
                    .and_then(|limits| limits.get(name))
                    .and_then(Value::as_str)
                    .unwrap_or("none")
                    .to_owned()
            };
            warnings.push(format!(
                "the pod is of the Guaranteed QoS class: the probe sidecar requests what it is limited to (cpu {}, memory {}) to keep it so",
                limit("cpu"),
                limit("memory")
            ));
        }
        let fitted = match self.sidecar {
            SidecarAction::Ours => Vec::new(),
            _ if self.pattern.guaranteed() => Vec::new(),
            _ => {
                let resources = &policy.sidecar.resources;
                fitted_resources(resources, &sidecar::fitted(resources, self.pattern))
            }
        };
        if !fitted.is_empty() {
            warnings.push(format!(
                "the probe sidecar {}, as every other container of the pod does: a ResourceQuota or LimitRange that asks it of every container would refuse the pod otherwise",
                fitted.join(" and ")
            ));
        }
        // The name is sidekiq-guard's: a container of the user's that bears it is replaced, and
        // the response says so rather than dropping it silently.
        match &self.sidecar {
            SidecarAction::Replace(at) => {
                // What the probe does differently, when that is what changed (a longer job, a
                // sidecar of an earlier version); else its image, resources or security. Every
                // difference is named, `--listen=0.0.0.0` too: that is what is replaced, even
                // where SG032 (in an IPv4 pod) finds it answers alike.
                let drift = at
                    .container(&analysis.workload)
                    .map(|current| sidecar::drift(current, &self.sidecar_container, &[], false))
                    .unwrap_or_default();
                // The drift last: a warning is cut at 256 characters, and the advice must stay.
                let what = if drift.is_empty() {
                    String::new()
                } else {
                    format!(": {}", drift.join(", "))
                };
                warnings.push(format!(
                    "replaced container {} with the current definition (it is managed by sidekiq-guard; customise it through the policy){what}",
                    sidecar::NAME
                ));
            }
            SidecarAction::Move(from) => {
                let to = match from.mode {
                    Mode::Native => Mode::Classic,
                    Mode::Classic => Mode::Native,
                };
                warnings.push(format!(
                    "moved container {} from {} to {} (a {} sidecar) with the current definition (it is managed by sidekiq-guard; customise it through the policy)",
                    sidecar::NAME,
                    from.mode.list(),
                    to.list(),
                    to.as_str()
                ));
            }
            SidecarAction::Add | SidecarAction::Ours => {}
        }
        warnings
    }
}

fn list_len(analysis: &Analysis<'_>, mode: Mode) -> usize {
    analysis
        .workload
        .spec
        .get(mode.list())
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn add(path: String, value: Value) -> PatchOp {
    PatchOp::Add { path, value }
}

fn replace(path: String, value: Value) -> PatchOp {
    PatchOp::Replace { path, value }
}

/// The hook and probes for one probe port.
struct Hooks {
    prestop: Value,
    lifecycle: Value,
    startup: Value,
    readiness: Value,
    liveness: Value,
}

/// Nearly every pod uses the default port: its fragments are built once and cloned, which costs
/// a fraction of building them.
static DEFAULT_HOOKS: LazyLock<Hooks> = LazyLock::new(|| Hooks::build(crate::DEFAULT_PROBE_PORT));

impl Hooks {
    fn build(port: u16) -> Self {
        Self {
            prestop: prestop_hook(port),
            lifecycle: json!({"preStop": prestop_hook(port)}),
            startup: startup_probe(port),
            readiness: readiness_probe(port),
            liveness: liveness_probe(port),
        }
    }

    fn for_port(port: u16) -> Cow<'static, Hooks> {
        if port == crate::DEFAULT_PROBE_PORT {
            Cow::Borrowed(&DEFAULT_HOOKS)
        } else {
            Cow::Owned(Self::build(port))
        }
    }
}

impl Clone for Hooks {
    fn clone(&self) -> Self {
        Self {
            prestop: self.prestop.clone(),
            lifecycle: self.lifecycle.clone(),
            startup: self.startup.clone(),
            readiness: self.readiness.clone(),
            liveness: self.liveness.clone(),
        }
    }
}

/// Whether `sidecar` holds the policy's resources as sidekiq-guard writes them for a pod whose
/// containers follow `pattern`, or as the policy gives them: its own, not LimitRanger's
/// defaults (which it accepts anywhere). None at all is nobody's.
fn holds_policy_resources(sidecar: &Value, policy: &Resources, pattern: sidecar::Pattern) -> bool {
    let Some(held) = sidecar
        .get("resources")
        .filter(|held| held.as_object().is_some_and(|held| !held.is_empty()))
    else {
        return false;
    };
    *held == sidecar::resources(policy)
        || *held == sidecar::resources(&sidecar::fitted(policy, pattern))
}

/// The preStop hook: the kubelet calls the probe's `/drain`, which quiets Sidekiq and returns
/// once no job is running. The port is numeric because the probe is another container's.
pub fn prestop_hook(port: u16) -> Value {
    json!({"httpGet": {"path": DRAIN_PATH, "port": port, "scheme": "HTTP"}})
}

/// Boot budget of 5 minutes (60 × 5 s) for Rails apps that eager-load before the first beat.
pub fn startup_probe(port: u16) -> Value {
    json!({
        "httpGet": {"path": READYZ_PATH, "port": port, "scheme": "HTTP"},
        "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 60,
    })
}

/// Ready while Sidekiq beats and is not quiet.
pub fn readiness_probe(port: u16) -> Value {
    json!({
        "httpGet": {"path": READYZ_PATH, "port": port, "scheme": "HTTP"},
        "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 2,
    })
}

/// The probe itself applies the stale-heartbeat and Redis-outage thresholds; three failures in a
/// row keep one slow answer from restarting a busy worker.
pub fn liveness_probe(port: u16) -> Value {
    json!({
        "httpGet": {"path": LIVEZ_PATH, "port": port, "scheme": "HTTP"},
        "periodSeconds": 15, "timeoutSeconds": 5, "failureThreshold": 3,
    })
}
