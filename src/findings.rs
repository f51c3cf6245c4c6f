//! Validation findings: what would lose or needlessly delay jobs, with stable codes, the path of
//! the offending field and a fix.
//!
//! Codes never change meaning and are never reused; CI gates and suppression lists depend on them.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::analysis::{Analysis, PodState, ProbeState};
use crate::annotations::{self, Overrides, PodOptIn};
use crate::detect::Detection;
use crate::duration::Secs;
use crate::errors::printable;
use crate::mutate::{Blocked, Plan, SidecarAction};
use crate::pointer::Pointer as _;
use crate::policy::Policy;
use crate::prestop::PreStop;
use crate::settings::{Settings, Source};
use crate::sidecar;
use crate::sidekiq::{self, flags::Timeout};
use crate::workload::{Kind, Workload};

/// How bad a finding is. `validate` exits 1 and `deny` enforcement rejects on [`Severity::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing is at risk.
    Info,
    /// Jobs may be delayed or retried, or a setting cannot be verified.
    Warning,
    /// Jobs will be lost or the pod cannot be protected.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

macro_rules! codes {
    ($($variant:ident = $id:literal $name:literal;)*) => {
        /// A finding's stable code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(#[doc = concat!("`", $id, " ", $name, "`")] $variant,)*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// `SG001`.
            pub fn id(self) -> &'static str {
                match self { $(Code::$variant => $id,)* }
            }

            /// `grace-too-short`.
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }
        }
    };
}

codes! {
    GraceTooShort = "SG001" "grace-too-short";
    PreStopMissing = "SG002" "prestop-missing";
    PreStopNotQuieting = "SG003" "prestop-not-quieting";
    PreStopFixedSleep = "SG004" "prestop-fixed-sleep";
    LivenessProbeMissing = "SG005" "liveness-probe-missing";
    ReadinessProbeMissing = "SG006" "readiness-probe-missing";
    TimeoutNotBelowGrace = "SG007" "timeout-not-below-grace";
    LongestJobUndeclared = "SG008" "longest-job-undeclared";
    GraceAboveMaximum = "SG009" "grace-above-maximum";
    AnnotationInvalid = "SG010" "annotation-invalid";
    ContainerAmbiguous = "SG011" "container-ambiguous";
    ContainerNotFound = "SG012" "container-not-found";
    TimeoutInConfigFile = "SG013" "timeout-in-config-file";
    RedisSettingsMissing = "SG014" "redis-settings-missing";
    ProbePortConflict = "SG015" "probe-port-conflict";
    ClassicSidecarInJob = "SG016" "classic-sidecar-in-job";
    SidekiqFlagInvalid = "SG017" "sidekiq-flag-invalid";
    TimeoutConflict = "SG018" "timeout-conflict";
    CommandUnreadable = "SG019" "command-unreadable";
    JobRunningLonger = "SG020" "job-running-longer-than-declared";
    ClassSlowerThanDeclared = "SG021" "class-slower-than-declared";
    PreStopDoesNotWait = "SG022" "prestop-does-not-wait";
    TimeoutSetAtRunTime = "SG023" "timeout-set-at-run-time";
    InjectLabelOnWorkloadOnly = "SG024" "inject-label-on-workload-only";
    AnnotationOnWorkloadOnly = "SG025" "annotation-on-workload-only";
    SidekiqNotSignalled = "SG026" "sidekiq-not-signalled";
    EnvReferenceOrder = "SG027" "env-reference-order";
    AnnotationUnknown = "SG028" "annotation-unknown";
    RedisPasswordBesideUrl = "SG029" "redis-password-beside-url";
    ProbeSidecarMissing = "SG030" "probe-sidecar-missing";
    IdentityShared = "SG031" "identity-shared";
    ProbeSidecarStale = "SG032" "probe-sidecar-stale";
    SidekiqContainerUnprotected = "SG033" "sidekiq-container-unprotected";
    InjectLabelInvalid = "SG034" "inject-label-invalid";
    ProbeUnreachable = "SG035" "probe-unreachable";
    RedisSetInCommand = "SG036" "redis-set-in-command";
    LivenessOnReadiness = "SG037" "liveness-on-readiness";
}

impl Blocked {
    /// The code of the finding that says why nothing was injected.
    pub fn code(&self) -> Code {
        match self {
            Blocked::PortConflict { .. } => Code::ProbePortConflict,
            Blocked::ClassicSidecarInJob => Code::ClassicSidecarInJob,
            Blocked::RedisUnknown => Code::RedisSettingsMissing,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id(), self.name())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code, serialised as `SG001`.
    pub code: Code,
    /// The code's name, e.g. `grace-too-short`.
    pub name: &'static str,
    /// Severity.
    pub severity: Severity,
    /// Path of the offending field from the object root, e.g.
    /// `spec.template.spec.terminationGracePeriodSeconds`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl Finding {
    fn new(code: Code, severity: Severity, path: String, message: String, hint: String) -> Self {
        Self {
            code,
            name: code.name(),
            severity,
            path: printable(path),
            message: printable(message),
            hint: printable(hint),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.code.id(), self.name, self.message)
    }
}

/// A job seen running longer than the workload's declared longest job (`kubectl sidekiq
/// validate` in the cluster), `None` when it is within it. The finding's path is the
/// workload's `longest-job` annotation.
pub fn job_running_longer(
    workload: &Workload<'_>,
    pod: &str,
    class: &str,
    jid: Option<&str>,
    elapsed_secs: f64,
    declared: &crate::settings::Setting<u64>,
) -> Option<Finding> {
    if elapsed_secs <= declared.value as f64 {
        return None;
    }
    // Whole seconds: "running 2m1s", never a fraction.
    let elapsed_secs = elapsed_secs as u64;
    // Two jobs of a class would otherwise read as the same line twice.
    let job = jid.map_or_else(|| class.to_owned(), |jid| format!("{class} (jid {jid})"));
    Some(Finding::new(
        Code::JobRunningLonger,
        Severity::Warning,
        annotation_path(workload, annotations::LONGEST_JOB),
        format!(
            "pod {pod} has been running {job} for {}, longer than the declared longest job {} ({}): a drain gives up before it ends",
            Secs(elapsed_secs),
            Secs(declared.value),
            declared.source
        ),
        format!(
            "raise {} above the longest run of {class}",
            annotations::LONGEST_JOB
        ),
    ))
}

/// SG021 for each class whose run times, as Sidekiq 7+ recorded them over the hours it keeps
/// them ([`sidekiq::metrics::RETENTION_MINUTES`]), may exceed the workload's declared longest
/// job. Sidekiq's metrics do not say which process ran a class, so every class is weighed
/// against every workload judged with them.
pub fn classes_slower_than_declared<'a>(
    workload: &'a Workload<'_>,
    declared: &'a crate::settings::Setting<u64>,
    times: &'a std::collections::BTreeMap<String, sidekiq::metrics::ClassTimes>,
) -> impl Iterator<Item = Finding> + 'a {
    let hours = (sidekiq::metrics::RETENTION_MINUTES / 60).unsigned_abs();
    times.iter().filter_map(move |(class, figures)| {
        class_slower_than_declared(workload, class, figures.slowest?, hours, declared)
    })
}

/// A class whose recorded run times (Sidekiq 7+ metrics) may exceed the declared longest job,
/// `None` when its slowest bucket lies within it.
///
/// A histogram bucket is a range (up to 1.5 times wide): when the declared time falls inside
/// the slowest one, the runs may or may not have exceeded it. That is still a warning — the
/// cost of a drain that ends too early is a lost job — worded as the uncertainty it is.
pub fn class_slower_than_declared(
    workload: &Workload<'_>,
    class: &str,
    slowest: crate::sidekiq::metrics::Slowest,
    hours: u64,
    declared: &crate::settings::Setting<u64>,
) -> Option<Finding> {
    let declared_ms = declared.value.saturating_mul(1000);
    if slowest.below_ms.is_some_and(|below| below <= declared_ms) {
        return None;
    }
    let took = match slowest.below_ms {
        Some(below) => format!(
            "between {} and {}",
            crate::duration::format_millis(slowest.from_ms),
            crate::duration::format_millis(below)
        ),
        None => format!(
            "{} or more",
            crate::duration::format_millis(slowest.from_ms)
        ),
    };
    let consequence = if slowest.from_ms > declared_ms {
        format!("if this workload runs {class}, its drains end before it does")
    } else {
        format!(
            "the histogram cannot tell whether runs took longer; if this workload runs {class}, its drains may end before it does"
        )
    };
    let hint = match slowest.below_ms {
        Some(below) => format!(
            "raise {} to at least {} (the top of that range)",
            annotations::LONGEST_JOB,
            Secs(below.div_ceil(1000))
        ),
        None => format!(
            "raise {} above the slowest run of {class}",
            annotations::LONGEST_JOB
        ),
    };
    Some(Finding::new(
        Code::ClassSlowerThanDeclared,
        Severity::Warning,
        annotation_path(workload, annotations::LONGEST_JOB),
        format!(
            "class {class} took {took} in the last {hours} h (its successful runs in Sidekiq's metrics in this Redis), declared {} ({}): {consequence}",
            Secs(declared.value),
            declared.source
        ),
        hint,
    ))
}

/// Findings for a Sidekiq workload whose managed fields are in `state` (the object as written,
/// or as it will be after mutation); `blocked` says why it could not be injected, if so.
pub fn evaluate(
    analysis: &Analysis<'_>,
    state: &PodState,
    blocked: Option<&Blocked>,
    policy: &Policy,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let ctx = Ctx { analysis, state };
    findings.extend(annotation_findings(
        &analysis.workload,
        &analysis.overrides,
        Some(&analysis.settings),
    ));
    ctx.command(&mut findings);
    ctx.grace(&mut findings, policy);
    ctx.prestop(&mut findings);
    ctx.probes(&mut findings);
    findings.extend(ctx.sidecar_missing());
    findings.extend(ctx.identity_shared());
    findings.extend(ctx.others_unprotected());
    ctx.redis(&mut findings);
    findings.extend(blocked.and_then(|blocked| ctx.blocked(blocked)));
    findings
}

/// The probe sidecar the object carries works differently from the one sidekiq-guard would set
/// now (`plan` replaces or moves it; not every replacement is a difference in how it works), or
/// the drain hook calls it elsewhere: injected for other settings (a longer job declared since,
/// another Redis) or edited by hand. Its drain ends at its own budget, it may listen where the
/// hooks do not call, or read another Redis than Sidekiq. Said of the object as written only: the
/// webhook replaces such a sidecar in every pod it admits, `kubectl sidekiq inject` in a
/// template.
pub fn sidecar_stale(analysis: &Analysis<'_>, plan: &Plan) -> Option<Finding> {
    let ipv4_pod = is_ipv4_pod(&analysis.workload);
    let drift_of = |at: &crate::analysis::Placement, ignored: &[&str]| {
        let current = at.container(&analysis.workload)?;
        Some(sidecar::drift(
            current,
            &plan.sidecar_container,
            ignored,
            ipv4_pod,
        ))
    };
    let (at, mut drift) = match (&plan.sidecar, analysis.state.sidecar) {
        (SidecarAction::Replace(at), _) => (*at, drift_of(at, &[])?),
        // In the other list: what differs besides the placement and its own flags — and, for
        // a native sidecar where sidecars are classic (a cluster before 1.29), the placement
        // itself, which there keeps the pod from ever starting Sidekiq. A classic sidecar where
        // native is due works, only without the native one's ordering.
        (SidecarAction::Move(at), _) => {
            let mut drift = drift_of(at, &sidecar::PLACEMENT_FLAGS)?;
            if at.mode == crate::Mode::Native {
                drift.insert(0, NATIVE_WHERE_CLASSIC.to_owned());
            }
            (*at, drift)
        }
        (SidecarAction::Ours, Some(at)) => (at, Vec::new()),
        _ => return None,
    };
    // Where sidecars are native; where they are classic the move says it never ends.
    let never_ends = at.mode == crate::Mode::Native
        && !matches!(plan.sidecar, SidecarAction::Move(_))
        && at
            .container(&analysis.workload)
            .is_some_and(|c| c.get("restartPolicy").and_then(Value::as_str) != Some("Always"));
    if never_ends {
        drift.insert(0, NATIVE_WITHOUT_RESTART_POLICY.to_owned());
    }
    if let PreStop::Drain { port } = analysis.state.prestop
        && port != Some(analysis.port.port)
    {
        let port = port.map_or_else(|| "a named port".to_owned(), |p| format!("port {p}"));
        drift.push(format!(
            "the preStop hook calls /drain on {port} (the probe listens on {})",
            analysis.port.port
        ));
    }
    if drift.is_empty() {
        return None;
    }
    let workload = &analysis.workload;
    // A running pod's containers cannot change: the webhook injects the current sidecar when its
    // controller creates it again. A pod manifest is injected again like a template; a pod the
    // API server has stored has a phase, a manifest's `status` is absent or `{}`.
    let running = workload.kind == Kind::Pod && workload.object.at("/status/phase").is_some();
    let remedy = if never_ends {
        "set sidecar.mode: classic in the policy where the cluster does not run native sidecars, and create the pod again"
    } else if running {
        "delete the pod for its controller to create it again, which the webhook injects anew (kubectl rollout restart for a Deployment, StatefulSet or DaemonSet)"
    } else {
        "inject again (kubectl sidekiq inject replaces the container)"
    };
    let (severity, unless) = if workload.kind == Kind::Pod {
        (Severity::Error, "")
    } else {
        (
            Severity::Warning,
            " (the webhook corrects them in the pods it admits)",
        )
    };
    let path = format!("spec.{}[{}]", at.mode.list(), at.index);
    Some(Finding::new(
        Code::ProbeSidecarStale,
        severity,
        workload.path(&path),
        format!(
            "container {} and its {} container do not match{unless}: {}",
            analysis.container.name,
            sidecar::NAME,
            drift.join(", ")
        ),
        format!(
            "{remedy}: a drain ends at the sidecar's own budget, and a probe listening or reading elsewhere answers for nothing"
        ),
    ))
}

/// How a template gives each pod's Sidekiq processes a name of their own (SG031's hints).
const DYNO_OF_THE_POD: &str = "derive DYNO from the pod: env POD_NAME from fieldRef metadata.name above it, and DYNO: $(POD_NAME)";

/// [`sidecar_stale`]'s word on a native sidecar where sidecars are classic.
const NATIVE_WHERE_CLASSIC: &str =
    "native where sidecars are classic: before 1.29 it never ends, and Sidekiq never starts";

/// [`sidecar_stale`]'s word on a native sidecar that lost its `restartPolicy`: the API server
/// drops the field from init containers where the SidecarContainers feature is off (1.28 and
/// before, where it was alpha, or turned off by a feature gate), after mutating admission.
const NATIVE_WITHOUT_RESTART_POLICY: &str = "an init container without restartPolicy: Always (the API server drops it where the SidecarContainers feature is off): it never ends, and Sidekiq never starts";

/// A running pod whose primary IP, the one the kubelet probes, is IPv4.
fn is_ipv4_pod(workload: &Workload<'_>) -> bool {
    workload.kind == Kind::Pod
        && workload
            .object
            .at("/status/podIP")
            .and_then(Value::as_str)
            .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
}

/// Findings for a Sidekiq workload whose Sidekiq container cannot be told.
pub fn unresolved(
    workload: &Workload<'_>,
    overrides: &Overrides,
    detection: &Detection,
) -> Vec<Finding> {
    let mut findings = annotation_findings(workload, overrides, None);
    let names: Vec<&str> = workload
        .containers
        .iter()
        .map(crate::detect::name_of)
        .collect();
    match detection {
        Detection::Ambiguous(candidates) => findings.push(Finding::new(
            Code::ContainerAmbiguous,
            Severity::Error,
            workload.path("spec.containers"),
            format!(
                "containers {} all run Sidekiq; sidekiq-guard does not guess which one to protect",
                candidates.join(", ")
            ),
            format!(
                "annotate the pod template with {}: <container name>",
                annotations::CONTAINER
            ),
        )),
        Detection::NamedMissing(name) => findings.push(Finding::new(
            Code::ContainerNotFound,
            Severity::Error,
            annotation_path(workload, annotations::CONTAINER),
            format!(
                "annotation {} names container {name:?}, {}",
                annotations::CONTAINER,
                missing_because(workload, name, &names)
            ),
            "name one of the pod's containers in the annotation".into(),
        )),
        Detection::None => {
            let asks = if workload.label(annotations::INJECT) == Some(annotations::INJECT_POD_IN) {
                format!("labelled {}=true", annotations::INJECT)
            } else {
                "annotated for sidekiq-guard".to_owned()
            };
            findings.push(Finding::new(
                Code::ContainerNotFound,
                Severity::Warning,
                workload.path("spec.containers"),
                format!(
                    "{asks}, but no container runs sidekiq or sidekiqswarm as far as the manifest shows (containers: {})",
                    names.join(", ")
                ),
                format!(
                    "annotate {}: <name> when Sidekiq starts from a script, or remove what asks for sidekiq-guard",
                    annotations::CONTAINER
                ),
            ));
        }
        Detection::Found(_) => {}
    }
    findings
}

/// Why the container the annotation names is not one to protect: an init container (whose
/// preStop and probes Kubernetes ignores unless it is a native sidecar, and which sidekiq-guard
/// does not protect either way), or no container at all.
fn missing_because(workload: &Workload<'_>, name: &str, names: &[&str]) -> String {
    let init = workload
        .init_containers()
        .iter()
        .any(|c| crate::detect::name_of(c) == name);
    if init {
        format!(
            "an init container: sidekiq-guard protects a regular container (spec.containers: {})",
            names.join(", ")
        )
    } else {
        format!("but the pod has only {}", names.join(", "))
    }
}

/// The variable a `sidekiq.yml` conventionally reads its `timeout:` from.
const SIDEKIQ_TIMEOUT_ENV: &str = "SIDEKIQ_TIMEOUT";

/// The variable many apps (and charts) pass to `config.redis` as its password; Sidekiq itself
/// does not read it.
const REDIS_PASSWORD: &str = "REDIS_PASSWORD";

/// `text` cut to 40 characters: a value of a command line can be any length.
fn shortened(text: &str) -> String {
    crate::errors::truncate(text, 41)
}

fn annotation_path(workload: &Workload<'_>, key: &str) -> String {
    workload.path(&format!("metadata.annotations[\"{key}\"]"))
}

/// `settings` are the resolved ones, when the Sidekiq container is known: they say what
/// applies instead of an annotation that cannot be read (`-t` of the command line, say).
fn annotation_findings(
    workload: &Workload<'_>,
    overrides: &Overrides,
    settings: Option<&Settings>,
) -> Vec<Finding> {
    overrides
        .invalid
        .iter()
        .map(|bad| {
            // Shortened: an admission warning holds 256 characters, and what is accepted
            // matters more than the whole of a long wrong value.
            let value = crate::errors::quoted(&bad.value, 20);
            let source = settings.and_then(|settings| match bad.key {
                annotations::LONGEST_JOB => Some(&settings.longest_job.source),
                annotations::SHUTDOWN_TIMEOUT => Some(&settings.shutdown_timeout.source),
                annotations::PROBE_PORT => Some(&settings.probe_port.source),
                _ => None,
            });
            let instead = match (bad.key, source) {
                (annotations::REDIS_NAMESPACE, _) => "no prefix is used".to_owned(),
                (annotations::CONTAINER, _) => "the container is detected instead".to_owned(),
                (_, Some(source)) => format!("{source} applies instead"),
                (_, None) => "the policy default applies instead".to_owned(),
            };
            Finding::new(
                Code::AnnotationInvalid,
                Severity::Error,
                annotation_path(workload, bad.key),
                format!(
                    "annotation {}: cannot read {value}, expected {}; {instead}",
                    bad.key, bad.accepted
                ),
                format!("write {} as {}", bad.key, bad.accepted),
            )
        })
        .chain(inject_label_finding(workload))
        .chain(inject_label_invalid(workload))
        .chain(workload_annotation_findings(workload))
        .chain(unknown_annotation_findings(workload))
        .collect()
}

/// Annotations under sidekiq-guard's prefix that it does not know, on the pod or pod template:
/// a misspelt `longest_job` would otherwise leave the grace period at the policy default with
/// nothing said about why.
fn unknown_annotation_findings(workload: &Workload<'_>) -> Vec<Finding> {
    let Some(template) = workload.annotations() else {
        return Vec::new();
    };
    template
        .keys()
        .filter(|key| key.starts_with(annotations::PREFIX) && !annotations::is_known(key))
        .map(|key| {
            let hint = if key == annotations::INJECT {
                format!(
                    "make it a label: {} {key}",
                    workload.path("metadata.labels")
                )
            } else {
                match annotations::closest(key) {
                    Some(known) => format!("did you mean {known}?"),
                    None => format!(
                        "sidekiq-guard reads {}",
                        annotations::SETTINGS.join(", ")
                    ),
                }
            };
            let what = if key == annotations::INJECT {
                "sidekiq-guard.io/inject opts in or out as a label; as an annotation it does nothing"
                    .to_owned()
            } else {
                format!("annotation {key} is not one sidekiq-guard reads, so it does nothing")
            };
            Finding::new(
                Code::AnnotationUnknown,
                Severity::Warning,
                annotation_path(workload, key),
                what,
                hint,
            )
        })
        .collect()
}

/// sidekiq-guard's annotations on a workload's own `metadata` that its pod template lacks: they
/// are read from the template, so they do not apply — a `longest-job` there silently leaves
/// the grace period at the policy default.
fn workload_annotation_findings(workload: &Workload<'_>) -> Vec<Finding> {
    if workload.kind == Kind::Pod {
        return Vec::new();
    }
    let Some(own) = workload
        .object
        .at("/metadata/annotations")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    let template = workload.annotations();
    annotations::SETTINGS
        .into_iter()
        .filter(|key| own.contains_key(*key) && !template.is_some_and(|t| t.contains_key(*key)))
    .map(|key| {
        Finding::new(
            Code::AnnotationOnWorkloadOnly,
            Severity::Warning,
            format!("metadata.annotations.{key}"),
            format!(
                "annotation {key} is on the workload's metadata, but sidekiq-guard reads it from the pod template, so it does not apply"
            ),
            format!("move it to {}", workload.path("metadata.annotations")),
        )
    })
    .collect()
}

/// The pod's `sidekiq-guard.io/inject` label says neither `true` nor `false` (`False`, `no`,
/// `disabled`): the webhook's selectors match those two values exactly, so it opts nothing in
/// or out, and the namespace decides.
fn inject_label_invalid(workload: &Workload<'_>) -> Option<Finding> {
    let value = workload.label(annotations::INJECT)?;
    if PodOptIn::of(Some(value)) != PodOptIn::Unset {
        return None;
    }
    Some(Finding::new(
        Code::InjectLabelInvalid,
        Severity::Warning,
        workload.path("metadata.labels"),
        format!(
            "label {} is {}, neither \"{}\" nor \"{}\": it opts nothing in or out, and the namespace's label decides",
            annotations::INJECT,
            crate::errors::quoted(value, 40),
            annotations::INJECT_POD_IN,
            annotations::INJECT_POD_OUT,
        ),
        format!(
            "write {}: \"{}\" or \"{}\" (lower case, quoted)",
            annotations::INJECT,
            annotations::INJECT_POD_IN,
            annotations::INJECT_POD_OUT
        ),
    ))
}

/// `sidekiq-guard.io/inject` on a workload's own labels and not on its pod template: it decides
/// whether the workload is reviewed, but its pods are created with the template's labels, and
/// those decide whether they are injected.
fn inject_label_finding(workload: &Workload<'_>) -> Option<Finding> {
    let own = workload.inject_label_on_workload_only()?;
    let effect = if own == annotations::INJECT_POD_OUT {
        "its pods are still injected in a namespace labelled sidekiq-guard.io/inject=enabled"
    } else {
        "its pods are injected only in a namespace labelled sidekiq-guard.io/inject=enabled"
    };
    Some(Finding::new(
        Code::InjectLabelOnWorkloadOnly,
        Severity::Warning,
        "metadata.labels".to_owned(),
        format!(
            "the workload is labelled {}={own} but its pod template is not: {effect}",
            annotations::INJECT
        ),
        format!(
            "label the pod template too: {} {}: \"{own}\"",
            workload.path("metadata.labels"),
            annotations::INJECT
        ),
    ))
}

struct Ctx<'c, 'a> {
    analysis: &'c Analysis<'a>,
    state: &'c PodState,
}

impl Ctx<'_, '_> {
    fn container_path(&self, field: &str) -> String {
        let index = self.analysis.container.index;
        let path = if field.is_empty() {
            format!("spec.containers[{index}]")
        } else {
            format!("spec.containers[{index}].{field}")
        };
        self.analysis.workload.path(&path)
    }

    fn grace_path(&self) -> String {
        self.analysis
            .workload
            .path("spec.terminationGracePeriodSeconds")
    }

    fn name(&self) -> &str {
        &self.analysis.container.name
    }

    fn port(&self) -> u16 {
        self.analysis.port.port
    }

    fn command(&self, findings: &mut Vec<Finding>) {
        let analysis = self.analysis;
        let settings = &analysis.settings;
        let command_path = self.container_path("command");
        if let Some(err) = &analysis.container.script_error {
            findings.push(Finding::new(
                Code::CommandUnreadable,
                Severity::Warning,
                command_path.clone(),
                format!(
                    "cannot read the shell script of container {}: {err}; its Sidekiq flags are unknown",
                    self.name()
                ),
                format!(
                    "fix the quoting, or annotate {} so the grace period does not rely on the default",
                    annotations::SHUTDOWN_TIMEOUT
                ),
            ));
        }
        if let Some(variable) = analysis.container.redis_set_in_command {
            let variable = variable.name();
            findings.push(Finding::new(
                Code::RedisSetInCommand,
                Severity::Warning,
                command_path.clone(),
                format!(
                    "container {} sets {variable} on its command line, which the probe sidecar does not see: it reads Redis as the container's env says, and may watch and quiet another Redis than Sidekiq's",
                    self.name()
                ),
                format!("set {variable} in the container's env instead"),
            ));
        }
        if let Some(kept) = &analysis.container.signals_kept {
            findings.push(Finding::new(
                Code::SidekiqNotSignalled,
                Severity::Warning,
                command_path.clone(),
                format!(
                    "container {} runs Sidekiq {}, so Sidekiq never gets its {}s to requeue jobs",
                    self.name(),
                    kept.how(),
                    settings.shutdown_timeout.value
                ),
                kept.hint().into(),
            ));
        }
        for problem in &analysis.flags.problems {
            let value = problem
                .value
                .as_deref()
                .map(|v| format!(" {}", shortened(v)))
                .unwrap_or_default();
            findings.push(Finding::new(
                Code::SidekiqFlagInvalid,
                Severity::Warning,
                command_path.clone(),
                format!(
                    "Sidekiq flag {}{value}: {}",
                    shortened(&problem.flag),
                    problem.reason
                ),
                if problem.ignored {
                    "remove the flag: Sidekiq 6+ prints an error for it and starts without it"
                        .into()
                } else {
                    "fix the flag; Sidekiq refuses to start on flags it cannot read".into()
                },
            ));
        }
        if let (Some(flag), Some(annotated)) = (
            analysis.flags.timeout_secs(),
            analysis.overrides.shutdown_timeout,
        ) && flag != annotated
        {
            findings.push(Finding::new(
                Code::TimeoutConflict,
                Severity::Warning,
                annotation_path(&analysis.workload, annotations::SHUTDOWN_TIMEOUT),
                format!(
                    "annotation {} says {} but the command line says -t {flag}; Sidekiq uses -t, and so does sidekiq-guard",
                    annotations::SHUTDOWN_TIMEOUT,
                    Secs(annotated)
                ),
                "remove the annotation or make it match -t".into(),
            ));
        }
        self.unseen_timeout(findings);
        if let Source::Policy(_) = settings.longest_job.source
            && !analysis
                .overrides
                .invalid
                .iter()
                .any(|bad| bad.key == annotations::LONGEST_JOB)
        {
            findings.push(Finding::new(
                Code::LongestJobUndeclared,
                Severity::Warning,
                annotation_path(&analysis.workload, annotations::LONGEST_JOB),
                format!(
                    "no {} annotation: the grace period assumes every job finishes within {} ({})",
                    annotations::LONGEST_JOB,
                    Secs(settings.longest_job.value),
                    settings.longest_job.source
                ),
                format!(
                    "annotate the pod template with {}: <duration of the longest job, e.g. 15m>",
                    annotations::LONGEST_JOB
                ),
            ));
        }
    }

    /// The timeout Sidekiq will use when neither `-t` nor the annotation shows it.
    fn unseen_timeout(&self, findings: &mut Vec<Finding>) {
        let analysis = self.analysis;
        let settings = &analysis.settings;
        let command_path = self.container_path("command");
        // Seen; or invalid, which is SG017: Sidekiq would not start at all.
        if analysis.overrides.shutdown_timeout.is_some()
            || matches!(
                analysis.flags.timeout,
                Some(Timeout::Seconds(_) | Timeout::Invalid)
            )
        {
            return;
        }
        let assumed = format!(
            "assuming {} ({})",
            Secs(settings.shutdown_timeout.value),
            settings.shutdown_timeout.source
        );
        if let Some(Timeout::AtRunTime(variable)) = &analysis.flags.timeout {
            let container = &analysis.workload.containers[analysis.container.index];
            let origin = crate::detect::run_time_origin(container, variable);
            findings.push(Finding::new(
                Code::TimeoutSetAtRunTime,
                Severity::Warning,
                command_path,
                format!(
                    "Sidekiq's -t {} is set at run time ({origin}), which the manifest does not show; {assumed}",
                    shortened(variable)
                ),
                format!(
                    "annotate {} with the value of {}",
                    annotations::SHUTDOWN_TIMEOUT,
                    shortened(variable)
                ),
            ));
            return;
        }
        // Without -C, Sidekiq still reads config/sidekiq.yml (or .yml.erb) when the app has one,
        // as Rails apps usually do.
        let (file, read) = match &analysis.flags.config {
            Some(file) => (file.as_str(), "(-C)"),
            None => ("config/sidekiq.yml", "(read when present, without -C)"),
        };
        // `timeout: <%= ENV["SIDEKIQ_TIMEOUT"] %>` is the common way a sidekiq.yml reads it:
        // a longer value in the container's env is likely what Sidekiq uses.
        // The last entry of the name is the container's; one from a Secret gives no hint.
        let container = &analysis.workload.containers[analysis.container.index];
        let hinted = crate::workload::env_entry(
            crate::workload::list(container, "env"),
            SIDEKIQ_TIMEOUT_ENV,
        )
        .and_then(|entry| entry.get("value"))
        .and_then(Value::as_str)
        .and_then(|value| value.trim().parse::<u64>().ok())
        .filter(|secs| *secs > settings.shutdown_timeout.value);
        let (severity, message) = match hinted {
            Some(secs) => (
                Severity::Warning,
                format!(
                    "a timeout set in {file} {read} cannot be seen from the manifest, and the container's env sets {SIDEKIQ_TIMEOUT_ENV}={secs}, which a sidekiq.yml commonly reads; {assumed}"
                ),
            ),
            None => (
                Severity::Info,
                format!(
                    "a timeout set in {file} {read} cannot be seen from the manifest; {assumed}"
                ),
            ),
        };
        findings.push(Finding::new(
            Code::TimeoutInConfigFile,
            severity,
            command_path,
            message,
            format!(
                "annotate {} with the timeout: from {file}, or pass -t on the command line",
                annotations::SHUTDOWN_TIMEOUT
            ),
        ));
    }

    fn grace(&self, findings: &mut Vec<Finding>, policy: &Policy) {
        let grace = &self.analysis.grace;
        let timeout = &self.analysis.settings.shutdown_timeout;
        let effective = self.state.effective_grace();
        let default_note = self.state.grace_note();
        if effective < grace.required {
            findings.push(Finding::new(
                Code::GraceTooShort,
                Severity::Error,
                self.grace_path(),
                format!(
                    "terminationGracePeriodSeconds is {effective}{default_note}; jobs need {}",
                    grace.explanation
                ),
                format!(
                    "set terminationGracePeriodSeconds: {}, or let the sidekiq-guard webhook set it",
                    grace.required
                ),
            ));
        }
        if timeout.value >= effective {
            findings.push(Finding::new(
                Code::TimeoutNotBelowGrace,
                Severity::Error,
                self.grace_path(),
                format!(
                    "Sidekiq's shutdown timeout {} ({}) is not below terminationGracePeriodSeconds {effective}{default_note}: the kubelet kills Sidekiq before it can push unfinished jobs back to Redis, and they are lost",
                    Secs(timeout.value),
                    timeout.source
                ),
                format!(
                    "raise terminationGracePeriodSeconds to {} or lower -t",
                    grace.required
                ),
            ));
        }
        if grace.required > policy.max_grace_period.0 {
            findings.push(Finding::new(
                Code::GraceAboveMaximum,
                Severity::Error,
                self.grace_path(),
                format!(
                    "the required grace period exceeds the policy maximum {}: {}",
                    Secs(policy.max_grace_period.0),
                    grace.explanation
                ),
                "shorten or split the longest job, or raise maxGracePeriod in the policy".into(),
            ));
        }
    }

    fn prestop(&self, findings: &mut Vec<Finding>) {
        let path = || self.container_path("lifecycle.preStop");
        let port = self.port();
        let drain_hint = || {
            format!(
                "use preStop httpGet {{path: /drain, port: {port}}} (the sidekiq-guard webhook injects it): it quiets Sidekiq and returns as soon as running jobs finish"
            )
        };
        let finding = match &self.state.prestop {
            PreStop::Drain { .. } | PreStop::Quiets { .. } => return,
            PreStop::Missing => Finding::new(
                Code::PreStopMissing,
                Severity::Error,
                path(),
                format!(
                    "container {} has no preStop hook: Sidekiq keeps fetching jobs until SIGTERM, and jobs still running {} later are interrupted",
                    self.name(),
                    Secs(self.analysis.settings.shutdown_timeout.value)
                ),
                drain_hint(),
            ),
            PreStop::SleepOnly { sleep } => Finding::new(
                Code::PreStopNotQuieting,
                Severity::Error,
                path(),
                format!(
                    "the preStop hook only sleeps {}: it does not quiet Sidekiq, which keeps fetching new jobs until SIGTERM",
                    Secs(*sleep)
                ),
                drain_hint(),
            ),
            PreStop::Endless { quiets: true } => Finding::new(
                Code::PreStopFixedSleep,
                Severity::Error,
                path(),
                format!(
                    "the preStop hook quiets Sidekiq, then sleeps forever: it ends only when the grace period runs out, and SIGTERM then comes 2 s before SIGKILL, not the {} Sidekiq needs to push unfinished jobs back to their queues",
                    Secs(self.analysis.settings.shutdown_timeout.value)
                ),
                drain_hint(),
            ),
            PreStop::Endless { quiets: false } => Finding::new(
                Code::PreStopNotQuieting,
                Severity::Error,
                path(),
                "the preStop hook sleeps forever without quieting Sidekiq: it keeps fetching jobs until the grace period runs out, and SIGTERM then comes 2 s before SIGKILL, too late to push unfinished jobs back to their queues".into(),
                drain_hint(),
            ),
            PreStop::QuietOnly => Finding::new(
                Code::PreStopDoesNotWait,
                Severity::Error,
                path(),
                format!(
                    "the preStop hook quiets Sidekiq and returns at once: SIGTERM follows immediately, and jobs still running {} later are interrupted",
                    Secs(self.analysis.settings.shutdown_timeout.value)
                ),
                drain_hint(),
            ),
            PreStop::StopsAtOnce { signal } => Finding::new(
                Code::PreStopDoesNotWait,
                Severity::Error,
                path(),
                format!(
                    "the preStop hook sends Sidekiq SIG{signal} itself and returns: shutdown starts at once, as without a hook, and jobs still running {} later are interrupted",
                    Secs(self.analysis.settings.shutdown_timeout.value)
                ),
                drain_hint(),
            ),
            PreStop::MisdirectedDrain { how } => Finding::new(
                Code::PreStopNotQuieting,
                Severity::Error,
                path(),
                format!(
                    "the preStop hook calls /drain {how}: the probe answers plain HTTP at the pod's own address only, so the call fails and Sidekiq is not quieted (the webhook rewrites it in the pods it admits)"
                ),
                drain_hint(),
            ),
            PreStop::Broken { what, effect, .. } => Finding::new(
                Code::PreStopNotQuieting,
                Severity::Error,
                path(),
                format!("the preStop hook {what}: {effect}"),
                drain_hint(),
            ),
            PreStop::Unrecognised { what, sleeps } => Finding::new(
                Code::PreStopNotQuieting,
                Severity::Warning,
                path(),
                if *sleeps > 0 {
                    format!(
                        "cannot tell whether the preStop hook ({what}) quiets Sidekiq; it sleeps {}, which the grace period counts as the least the hook takes",
                        Secs(*sleeps)
                    )
                } else {
                    format!("cannot tell whether the preStop hook ({what}) quiets Sidekiq")
                },
                drain_hint(),
            ),
            PreStop::QuietThenSleep {
                sleep,
                also_runs: true,
            } => Finding::new(
                Code::PreStopFixedSleep,
                Severity::Warning,
                path(),
                format!(
                    "the preStop hook quiets Sidekiq, runs other commands and sleeps {}: the grace period counts at least the sleep, and cannot tell how long the rest takes",
                    Secs(*sleep)
                ),
                drain_hint(),
            ),
            PreStop::QuietThenSleep { sleep, .. } => {
                self.quiet_then_sleep(*sleep, path(), drain_hint())
            }
        };
        findings.push(finding);
    }

    /// `kill -TSTP 1; sleep N`: Sidekiq is quieted at once (a local signal, no heartbeat to
    /// wait for), SIGTERM follows the sleep, and Sidekiq lets jobs run `-t` more. A job longer
    /// than the sleep and `-t` is interrupted as surely as after a hook that returns at once
    /// (SG022), so that is an error; otherwise the hook only makes every shutdown wait N s.
    fn quiet_then_sleep(&self, sleep: u64, path: String, hint: String) -> Finding {
        let settings = &self.analysis.settings;
        let (timeout, longest) = (&settings.shutdown_timeout, &settings.longest_job);
        let finishes = sleep.saturating_add(timeout.value);
        if finishes < longest.value {
            return Finding::new(
                Code::PreStopFixedSleep,
                Severity::Error,
                path,
                format!(
                    "the preStop hook quiets Sidekiq and always sleeps {}: with -t {}, jobs running past {} are interrupted, and the longest job takes {} ({})",
                    Secs(sleep),
                    Secs(timeout.value),
                    Secs(finishes),
                    Secs(longest.value),
                    longest.source
                ),
                hint,
            );
        }
        Finding::new(
            Code::PreStopFixedSleep,
            Severity::Warning,
            path,
            format!(
                "the preStop hook quiets Sidekiq, then always sleeps {}, however soon jobs finish",
                Secs(sleep)
            ),
            hint,
        )
    }

    fn probes(&self, findings: &mut Vec<Finding>) {
        let port = self.port();
        findings.extend(self.misdirected_probes());
        findings.extend(self.liveness_on_readiness());
        if self.state.liveness == ProbeState::Missing {
            findings.push(Finding::new(
                Code::LivenessProbeMissing,
                Severity::Warning,
                self.container_path("livenessProbe"),
                format!(
                    "container {} has no livenessProbe: a Sidekiq that lost Redis or is wedged keeps running forever",
                    self.name()
                ),
                format!("use livenessProbe httpGet {{path: /livez, port: {port}}} on the sidekiq-guard probe (the webhook injects it)"),
            ));
        }
        if self.state.readiness == ProbeState::Missing {
            findings.push(Finding::new(
                Code::ReadinessProbeMissing,
                Severity::Warning,
                self.container_path("readinessProbe"),
                format!(
                    "container {} has no readinessProbe: a rollout counts new pods as available before Sidekiq runs",
                    self.name()
                ),
                format!("use readinessProbe httpGet {{path: /readyz, port: {port}}} on the sidekiq-guard probe (the webhook injects it)"),
            ));
        }
    }

    /// Probes of sidekiq-guard's endpoints at the probe's port that the kubelet sends over
    /// HTTPS or to another host: the probe answers plain HTTP at the pod's address only, so
    /// they fail for good — a liveness probe restarts Sidekiq over and over, a readiness probe
    /// never lets it be ready. They are the user's (kept), hence said here.
    fn misdirected_probes(&self) -> Vec<Finding> {
        let sidekiq = self.analysis.sidekiq_json();
        let host_network = self.analysis.workload.host_network();
        let port = self.port();
        ["livenessProbe", "readinessProbe", "startupProbe"]
            .into_iter()
            .filter_map(|field| {
                let (endpoint, get) = crate::analysis::probe_call(sidekiq, field)?;
                if sidecar::port_of(get, sidekiq) != Some(port) {
                    return None;
                }
                let sidecar::Reach::Elsewhere(how) = sidecar::reach(get, sidekiq, host_network)
                else {
                    return None;
                };
                let effect = match field {
                    "livenessProbe" => "the kubelet restarts Sidekiq over and over",
                    "readinessProbe" => "the pod never becomes ready",
                    _ => "the kubelet restarts Sidekiq before it ever counts as started",
                };
                Some(Finding::new(
                    Code::ProbeUnreachable,
                    Severity::Error,
                    self.container_path(field),
                    format!(
                        "the {field} gets {endpoint} on port {port} {how}: the probe answers plain HTTP at the pod's own address only, so it fails and {effect}"
                    ),
                    format!("leave out host and scheme: httpGet {{path: {endpoint}, port: {port}}}"),
                ))
            })
            .collect()
    }

    /// A livenessProbe that gets the probe's `/readyz` (copied from the readinessProbe, say):
    /// readiness fails while Sidekiq is quiet — the drain of every preStop, *Quiet* in the Web
    /// UI — and at once when Redis blips, so the kubelet restarts a Sidekiq that works as meant,
    /// and its running jobs with it. Such a probe is the user's and kept, hence said here.
    fn liveness_on_readiness(&self) -> Option<Finding> {
        let sidekiq = self.analysis.sidekiq_json();
        let (endpoint, get) = crate::analysis::probe_call(sidekiq, "livenessProbe")?;
        let port = self.port();
        // `probe_call` gets only the probe's two endpoints: not liveness's own is `/readyz`.
        if endpoint == crate::analysis::endpoint_for("livenessProbe")
            || sidecar::port_of(get, sidekiq) != Some(port)
        {
            return None;
        }
        Some(Finding::new(
            Code::LivenessOnReadiness,
            Severity::Warning,
            self.container_path("livenessProbe"),
            format!(
                "the livenessProbe gets {endpoint} on port {port}, which fails whenever Sidekiq is quiet (the preStop's drain, Quiet in the Web UI) or Redis is briefly unreachable, so the kubelet restarts a working Sidekiq and its running jobs"
            ),
            format!(
                "get {} for liveness: httpGet {{path: {}, port: {port}}}; it fails only when Sidekiq is wedged or Redis has been gone past the outage window",
                crate::analysis::LIVEZ_PATH,
                crate::analysis::LIVEZ_PATH
            ),
        ))
    }

    /// The Sidekiq container calls sidekiq-guard's probe (a hand-written drain hook, probes
    /// copied from an injected pod) on the port it would listen on, but no probe container
    /// runs in the pod. A port another container declares is that container's own server, and
    /// the probe's port is chosen off it, so it never matches here. A pod is what runs: an
    /// error. A pod template may still be injected when its pods are created (its namespace
    /// opted in, which a manifest does not show): a warning, and nothing when the template's
    /// own label opts its pods in.
    fn sidecar_missing(&self) -> Option<Finding> {
        let workload = &self.analysis.workload;
        let opted_in = PodOptIn::of(workload.label(annotations::INJECT)) == PodOptIn::In;
        if self.state.sidecar.is_some() || (workload.kind != Kind::Pod && opted_in) {
            return None;
        }
        let port = self.port();
        let ours = |state: ProbeState| state == ProbeState::Ours(Some(port));
        let calls: Vec<&str> = [
            (
                matches!(self.state.prestop, PreStop::Drain { port: Some(p) } if p == port),
                "preStop /drain",
            ),
            (ours(self.state.readiness), "readiness"),
            (ours(self.state.liveness), "liveness"),
            (ours(self.state.startup), "startup"),
        ]
        .into_iter()
        .filter_map(|(calls, what)| calls.then_some(what))
        .collect();
        if calls.is_empty() {
            return None;
        }
        let (severity, unless) = if workload.kind == Kind::Pod {
            (Severity::Error, "")
        } else {
            (Severity::Warning, "unless the webhook injects its pods, ")
        };
        Some(Finding::new(
            Code::ProbeSidecarMissing,
            severity,
            self.container_path(""),
            format!(
                "container {} calls sidekiq-guard's probe on port {port} ({}) but the pod has no {} container: {unless}nothing answers, so a drain hook fails and probes fail",
                self.name(),
                calls.join(", "),
                sidecar::NAME,
            ),
            format!(
                "label the pods {inject}: \"{}\" (or their namespace {inject}: {}) so that the webhook adds the probe, or add it with kubectl sidekiq inject",
                annotations::INJECT_POD_IN,
                annotations::INJECT_NAMESPACE_IN,
                inject = annotations::INJECT,
            ),
        ))
    }

    /// The annotation picked one of several Sidekiq containers: the others get no drain hook
    /// and SIGTERM as soon as the pod stops, and the grace period does not count their `-t`.
    fn others_unprotected(&self) -> Option<Finding> {
        let analysis = self.analysis;
        if analysis.container.evidence != crate::detect::Evidence::Annotation {
            return None;
        }
        let others = crate::detect::other_sidekiq_containers(
            analysis.workload.containers,
            analysis.container.index,
        );
        if others.is_empty() {
            return None;
        }
        Some(Finding::new(
            Code::SidekiqContainerUnprotected,
            Severity::Warning,
            analysis.workload.path("spec.containers"),
            format!(
                "container{} {} also run{} Sidekiq, but sidekiq-guard protects only container {} (annotation {}): the others are not quieted, get SIGTERM as soon as the pod stops, and the grace period does not count their shutdown timeout",
                if others.len() == 1 { "" } else { "s" },
                others.join(", "),
                if others.len() == 1 { "s" } else { "" },
                self.name(),
                annotations::CONTAINER,
            ),
            "run each Sidekiq in a workload of its own, so that each gets its drain and its grace period".into(),
        ))
    }

    /// Sidekiq names its processes after `$DYNO`, else the hostname, and the probe finds this
    /// pod's processes by that name: pods that share it cannot be told apart, and one pod's
    /// drain quiets them all. A `DYNO` written literally in a template is the same in every pod
    /// (during a rollout, old and new alike); under `hostNetwork` the hostname is the node's,
    /// and the probe's port a node port too — unless one pod per node (a DaemonSet) is all.
    fn identity_shared(&self) -> Option<Finding> {
        let workload = &self.analysis.workload;
        let dyno_entry = crate::workload::env_entry(
            crate::workload::list(self.analysis.sidekiq_json(), "env"),
            sidecar::DYNO,
        );
        let dyno = dyno_entry
            .filter(|entry| entry.get("valueFrom").is_none())
            .and_then(|entry| entry.get("value").and_then(Value::as_str))
            .filter(|value| !value.contains("$("));
        // Ruby takes an empty DYNO as set: every process goes by an empty name, which the probe
        // cannot look for, and which any pod with it shares.
        if dyno == Some("") {
            return Some(Finding::new(
                Code::IdentityShared,
                Severity::Error,
                self.container_path("env"),
                "DYNO is set but empty: Sidekiq then names its processes with an empty host part, which the probe cannot find (the pod never turns ready) and which every such pod shares".to_owned(),
                format!("remove DYNO, or {DYNO_OF_THE_POD}"),
            ));
        }
        if let Some(dyno) = dyno.filter(|_| workload.pods_may_overlap()) {
            return Some(Finding::new(
                Code::IdentityShared,
                Severity::Error,
                self.container_path("env"),
                format!(
                    "every pod of this template sets DYNO to {dyno:?}, the name Sidekiq's processes go by: the probe cannot tell one pod's processes from another's, and one pod's drain quiets them all"
                ),
                format!("{DYNO_OF_THE_POD}; or remove DYNO"),
            ));
        }
        let host_network = workload.host_network();
        if !host_network {
            return dyno_entry
                .is_none()
                .then(|| self.hostname_shared())
                .flatten();
        }
        if dyno.is_some() || workload.one_pod_per_node() {
            return None;
        }
        // A DYNO of the pod's own (`$(POD_NAME)`, a fieldRef) names its processes apart; the
        // probe's port is still a port of the node.
        let shared = if dyno_entry.is_some() {
            String::new()
        } else {
            "Sidekiq's processes go by the node's name, shared by every such pod on the node: one pod's drain quiets them all, and ".to_owned()
        };
        Some(Finding::new(
            Code::IdentityShared,
            Severity::Warning,
            workload.path("spec.hostNetwork"),
            format!(
                "with hostNetwork, {shared}a second injected pod on the node cannot bind the probe's port {}, a port of the node",
                self.port()
            ),
            "run Sidekiq without hostNetwork, or one such pod per node (a DaemonSet)".to_owned(),
        ))
    }

    /// A `spec.hostname` in a template whose pods may run at once: without `DYNO`, Sidekiq's
    /// processes go by the hostname, the same in every pod. A StatefulSet's controller sets
    /// each pod's hostname to its name, whatever the template says.
    fn hostname_shared(&self) -> Option<Finding> {
        let workload = &self.analysis.workload;
        let hostname = workload
            .spec
            .get("hostname")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())?;
        if workload.kind == Kind::StatefulSet || !workload.pods_may_overlap() {
            return None;
        }
        Some(Finding::new(
            Code::IdentityShared,
            Severity::Error,
            workload.path("spec.hostname"),
            format!(
                "every pod of this template is named {hostname:?} (spec.hostname), the name Sidekiq's processes go by without DYNO: the probe cannot tell one pod's processes from another's, and one pod's drain quiets them all"
            ),
            format!("remove spec.hostname, or {DYNO_OF_THE_POD}"),
        ))
    }

    fn redis(&self, findings: &mut Vec<Finding>) {
        let redis = &self.analysis.redis;
        let name = self.name();
        for (variable, reference) in &redis.out_of_order {
            findings.push(Finding::new(
                Code::EnvReferenceOrder,
                Severity::Error,
                self.container_path("env"),
                format!(
                    "container {name}: {variable} uses $({reference}), which env defines only after it: Kubernetes expands a reference only to a variable defined before it, so Sidekiq gets the text $({reference})"
                ),
                format!("move {reference} above {variable} in env"),
            ));
        }
        findings.extend(self.password_beside_url());
        let set_url = format!(
            "set {} on the Sidekiq container, even if Sidekiq is configured in Ruby (redis://localhost:6379/0 if Redis runs in this pod)",
            sidekiq::REDIS_URL
        );
        let (severity, message, hint) = if let Some(problem) = &redis.problem {
            (
                Severity::Error,
                format!("container {name}: {problem}"),
                format!(
                    "set {} to a redis:// URL, or {} to the name of the variable that holds it",
                    sidekiq::REDIS_URL,
                    sidekiq::REDIS_PROVIDER
                ),
            )
        } else if let Some(sidecar::UrlMissing::Empty(variable)) = &redis.url_missing {
            (
                Severity::Error,
                format!(
                    "container {name} sets {variable} to the empty string: Sidekiq then fails to start or takes its Redis from Ruby, which the manifest cannot show; the probe sidecar is not injected"
                ),
                format!(
                    "set {variable} to the redis:// URL Sidekiq uses, even if Sidekiq is configured in Ruby"
                ),
            )
        } else if let Some(sidecar::UrlMissing::Unset(variable)) = &redis.url_missing {
            let sets_no = if variable == sidekiq::REDIS_URL {
                format!("sets no {}", sidekiq::REDIS_URL)
            } else {
                format!(
                    "sets {} to {variable}, but not {variable} (nor {})",
                    sidekiq::REDIS_PROVIDER,
                    sidekiq::REDIS_URL
                )
            };
            (
                Severity::Error,
                format!(
                    "container {name} {sets_no} and has no envFrom: Sidekiq's Redis is set in Ruby or is localhost, which the manifest cannot show; the probe sidecar is not injected"
                ),
                set_url,
            )
        } else if redis.found {
            return;
        } else if redis.missing.is_empty() {
            (
                Severity::Warning,
                format!(
                    "container {name}: {} comes from a ConfigMap or Secret, so the variable holding the Redis URL is unknown; the probe gets every *REDIS* variable and may fall back to redis://localhost:6379/0",
                    sidekiq::REDIS_PROVIDER
                ),
                set_url,
            )
        } else {
            (
                Severity::Warning,
                format!(
                    "container {name} uses {} in its Redis URL without setting it: Kubernetes passes $(NAME) on as written, so neither Sidekiq nor the probe can reach Redis",
                    redis.missing.join(", ")
                ),
                "define them in env, or add the envFrom that holds them".into(),
            )
        };
        findings.push(Finding::new(
            Code::RedisSettingsMissing,
            severity,
            self.container_path("env"),
            message,
            hint,
        ));
    }

    /// `REDIS_PASSWORD` beside a literal `REDIS_URL` without credentials: Sidekiq reads only the
    /// URL, so the password reaches Redis only through Ruby (`config.redis = {url:, password:}`,
    /// as some charts do), which the probe cannot follow: it is refused, and the pod never
    /// turns ready.
    fn password_beside_url(&self) -> Option<Finding> {
        let sidekiq = self.analysis.sidekiq_json();
        let entries = crate::workload::list(sidekiq, "env");
        let find = |name: &str| crate::workload::env_entry(entries, name);
        if find(sidekiq::REDIS_PROVIDER).is_some() {
            return None;
        }
        find(REDIS_PASSWORD)?;
        let url = find(sidekiq::REDIS_URL)?.get("value")?.as_str()?;
        let (scheme, rest) = url.split_once("://")?;
        if rest.contains('@') {
            return None;
        }
        Some(Finding::new(
            Code::RedisPasswordBesideUrl,
            Severity::Warning,
            self.container_path("env"),
            format!(
                "container {} sets {REDIS_PASSWORD} beside a {} without credentials, which is all Sidekiq reads: a password passed in Ruby never reaches the probe, which Redis then refuses",
                self.name(),
                sidekiq::REDIS_URL
            ),
            format!(
                "put it in the URL: {}={scheme}://:$({REDIS_PASSWORD})@{rest}, below {REDIS_PASSWORD} in env",
                sidekiq::REDIS_URL
            ),
        ))
    }

    /// The finding that says why nothing was injected; `None` when another finding says it
    /// already (SG014 for an unknown Redis).
    fn blocked(&self, blocked: &Blocked) -> Option<Finding> {
        Some(match blocked {
            Blocked::RedisUnknown => return None,
            Blocked::PortConflict { port, container } => Finding::new(
                Code::ProbePortConflict,
                Severity::Error,
                annotation_path(&self.analysis.workload, annotations::PROBE_PORT),
                format!(
                    "probe port {port} (annotation {}) is already used by container {container}; the probe sidecar cannot be injected",
                    annotations::PROBE_PORT
                ),
                format!("choose a free port in {}, or remove it to let sidekiq-guard pick one", annotations::PROBE_PORT),
            ),
            // Injected for another cluster. Classic mode is also chosen where the version cannot
            // be read (the Kubewarden policy) or by the policy on a new cluster: a warning.
            Blocked::ClassicSidecarInJob
                if self.state.sidecar.is_some_and(|at| at.mode == crate::Mode::Native) =>
            {
                Finding::new(
                    Code::ClassicSidecarInJob,
                    Severity::Warning,
                    self.container_path(""),
                    format!(
                        "this pod runs to completion and carries {} as a native sidecar, but sidecars are classic here: on Kubernetes before 1.29 that is an init container that never ends, and Sidekiq never starts",
                        sidecar::NAME
                    ),
                    format!(
                        "remove the {} init container, or run this on Kubernetes 1.29+ with sidecar.mode: native or auto",
                        sidecar::NAME
                    ),
                )
            }
            Blocked::ClassicSidecarInJob => Finding::new(
                Code::ClassicSidecarInJob,
                Severity::Warning,
                self.container_path(""),
                "this pod runs to completion (a Job's pod, or restartPolicy Never/OnFailure) and a classic probe sidecar would keep it running after Sidekiq exits, so it is not injected".into(),
                "use native sidecars (sidecar.mode: native or auto on Kubernetes 1.29+)".into(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Setting, Source};
    use crate::sidekiq::metrics::Slowest;

    #[test]
    fn an_annotation_naming_an_absent_or_init_container_says_which() {
        let object = serde_json::json!({"kind": "Pod", "metadata": {"name": "w"},
            "spec": {"initContainers": [{"name": "migrate"}], "containers": [{"name": "app"}, {"name": "log"}]}});
        let workload = Workload::locate(&object).unwrap();
        let message = |name: &str| {
            let found = unresolved(
                &workload,
                &Overrides::default(),
                &Detection::NamedMissing(name.into()),
            );
            let finding = found
                .iter()
                .find(|f| f.code == Code::ContainerNotFound)
                .expect("SG012");
            assert_eq!(finding.severity, Severity::Error);
            finding.message.clone()
        };
        assert_eq!(
            message("worker"),
            "annotation sidekiq-guard.io/container names container \"worker\", but the pod has only app, log"
        );
        assert_eq!(
            message("migrate"),
            "annotation sidekiq-guard.io/container names container \"migrate\", an init container: sidekiq-guard protects a regular container (spec.containers: app, log)"
        );
    }

    #[test]
    fn live_findings_only_past_the_declared_longest_job() {
        let object = serde_json::json!({"kind": "Deployment", "metadata": {"name": "w"},
            "spec": {"template": {"spec": {"containers": [{"name": "worker"}]}}}});
        let workload = Workload::locate(&object).unwrap();
        let declared = Setting {
            value: 120,
            source: Source::Annotation(annotations::LONGEST_JOB),
        };
        let running =
            |secs| job_running_longer(&workload, "shop/w-1", "ImportJob", None, secs, &declared);
        assert_eq!(
            running(120.0),
            None,
            "exactly the declared time is within it"
        );
        let finding = running(121.4).unwrap();
        assert_eq!(finding.code, Code::JobRunningLonger);
        assert!(
            finding.message.starts_with(
                "pod shop/w-1 has been running ImportJob for 2m1s, longer than the declared longest job 2m"
            ),
            "{}",
            finding.message
        );
        let finding = job_running_longer(
            &workload,
            "shop/w-1",
            "ImportJob",
            Some("b1c2d3"),
            121.0,
            &declared,
        )
        .unwrap();
        assert!(
            finding
                .message
                .starts_with("pod shop/w-1 has been running ImportJob (jid b1c2d3) for 2m1s"),
            "{}",
            finding.message
        );
        let slowest = |from_ms, below_ms| {
            class_slower_than_declared(
                &workload,
                "SlowJob",
                Slowest { from_ms, below_ms },
                8,
                &declared,
            )
        };
        assert_eq!(slowest(65_000, Some(100_000)), None, "every run below 100s");
        assert_eq!(slowest(100_000, Some(120_000)), None, "below 2m: within");
        let straddling = slowest(100_000, Some(150_000)).unwrap();
        assert_eq!(straddling.code, Code::ClassSlowerThanDeclared);
        assert_eq!(
            straddling.message,
            "class SlowJob took between 1m40s and 2m30s in the last 8 h (its successful runs in \
             Sidekiq's metrics in this Redis), declared 2m (annotation sidekiq-guard.io/longest-job): \
             the histogram cannot tell whether runs took longer; if this workload runs SlowJob, its \
             drains may end before it does"
        );
        assert_eq!(
            straddling.hint,
            "raise sidekiq-guard.io/longest-job to at least 2m30s (the top of that range)"
        );
        let beyond = slowest(150_000, Some(225_000)).unwrap();
        assert!(
            beyond
                .message
                .contains("took between 2m30s and 3m45s in the last 8 h")
                && beyond
                    .message
                    .ends_with("if this workload runs SlowJob, its drains end before it does"),
            "{}",
            beyond.message
        );
        assert!(
            slowest(335_000, None)
                .unwrap()
                .message
                .contains("took 5m35s or more")
        );
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut ids: Vec<_> = Code::ALL.iter().map(|c| c.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Code::ALL.len());
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(code.id(), format!("SG{:03}", i + 1));
            assert!(
                code.name()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-')
            );
        }
    }

    /// The README's table of findings is where users look a code up: every code has its row.
    #[test]
    fn every_code_is_documented() {
        let readme = include_str!("../README.md");
        for code in Code::ALL {
            let row = format!("| {} | {} |", code.id(), code.name());
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }
}
