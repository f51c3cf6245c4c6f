//! The admission decisions, made once for every shell: the webhook's `/mutate` and `/validate`,
//! the Kubewarden policy, and `kubectl sidekiq inject`/`validate`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::analysis::{self, Analysis, Context, Skip, Subject};
use crate::annotations::PodOptIn;
use crate::errors;
use crate::findings::{self, Finding, Severity};
use crate::mutate::{self, Blocked, Plan};
use crate::patch::PatchOp;
use crate::patch::{self, ApplyError};
use crate::pointer::Pointer as _;
use crate::policy::Enforcement;
use crate::status::InjectionStatus;
use crate::workload::{self, Kind};

/// Which version of the object findings describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perspective {
    /// The object as written (a manifest in CI, a pod the webhook already mutated).
    AsWritten,
    /// The object as it will run once the webhook has injected its pods.
    AsInjected,
}

impl Perspective {
    /// The validating webhook sees pods after mutation, but workloads as written, while their
    /// pods will be mutated when created.
    pub fn for_admission(object: &Value) -> Self {
        match Kind::of(object) {
            Some(Kind::Pod) | None => Perspective::AsWritten,
            Some(_) => Perspective::AsInjected,
        }
    }

    /// How an object found running in the cluster is judged. A pod exists as it was admitted,
    /// so as written — an old pod the webhook never saw keeps its missing protection in view.
    /// A workload is judged as its next pods will be admitted: injected when its namespace is
    /// opted in or its pods carry `sidekiq-guard.io/inject=true`, as the webhook's namespace
    /// and object selectors decide.
    pub fn in_cluster(object: &Value, namespace_opted_in: bool) -> Self {
        let Ok(workload) = workload::Workload::locate(object) else {
            return Perspective::AsWritten;
        };
        // An opted-out workload is skipped before this matters.
        let opted_in = namespace_opted_in
            || PodOptIn::of(workload.label(crate::annotations::INJECT)) == PodOptIn::In;
        if workload.kind == Kind::Pod || !opted_in {
            Perspective::AsWritten
        } else {
            Perspective::AsInjected
        }
    }
}

/// How a review ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Operations were produced.
    Mutated,
    /// A Sidekiq workload that needs nothing (already injected, or only validated).
    Unchanged,
    /// Left alone.
    Skipped(Skip),
    /// A Sidekiq workload whose Sidekiq container cannot be told.
    Unresolved,
    /// A Sidekiq workload that cannot be injected.
    Blocked(Blocked),
}

impl Outcome {
    /// A short, stable label (for metrics and logs).
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Mutated => "mutated",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped(skip) => skip.label(),
            Outcome::Unresolved => "unresolved",
            Outcome::Blocked(Blocked::PortConflict { .. }) => "port-conflict",
            Outcome::Blocked(Blocked::ClassicSidecarInJob) => "classic-sidecar-in-job",
            Outcome::Blocked(Blocked::RedisUnknown) => "redis-unknown",
        }
    }
}

/// Everything one review concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// How it ended.
    pub outcome: Outcome,
    /// The JSON Patch (empty when validating, or when nothing is to change).
    pub ops: Vec<PatchOp>,
    /// Explanations of the mutation (grace arithmetic, kept settings).
    pub notes: Vec<String>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// The status annotation's content, for a Sidekiq workload that can be injected.
    pub status: Option<InjectionStatus>,
}

impl Review {
    fn skipped(skip: Skip) -> Self {
        Self {
            outcome: Outcome::Skipped(skip),
            ops: Vec::new(),
            notes: Vec::new(),
            findings: Vec::new(),
            status: None,
        }
    }

    /// Whether any finding is at error severity.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// Whether an error finding here is not among `before`'s (same code, same field).
    pub fn errors_beyond(&self, before: &Review) -> bool {
        let errors = |review: &Review| {
            review
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| (f.code, f.path.clone()))
                .collect::<Vec<_>>()
        };
        let before = errors(before);
        errors(self).iter().any(|error| !before.contains(error))
    }
}

/// Mutates `object`: the patch that injects sidekiq-guard, and the findings that remain after it.
pub fn mutate(object: &Value, ctx: &Context<'_>) -> Review {
    review(object, ctx, true, Perspective::AsInjected, None)
}

/// Mutates a copy of `object` and returns it with the review: what `kubectl sidekiq inject` and
/// the Kubewarden policy return.
pub fn inject(object: &Value, ctx: &Context<'_>) -> Result<(Value, Review), ApplyError> {
    let review = mutate(object, ctx);
    let mut mutated = object.clone();
    patch::apply(&mut mutated, &review.ops)?;
    Ok((mutated, review))
}

/// Validates `object` from `perspective`, without producing a patch.
pub fn validate(object: &Value, ctx: &Context<'_>, perspective: Perspective) -> Review {
    review(object, ctx, false, perspective, None)
}

/// Job run times that Sidekiq 7+ recorded, by class: read only once a workload needs them.
pub type RecordedTimes<'t> =
    &'t dyn Fn() -> &'t BTreeMap<String, crate::sidekiq::metrics::ClassTimes>;

/// [`validate`], plus a finding for each job class whose recorded run time exceeds the
/// workload's declared longest job (SG021). `times` is called only for a Sidekiq workload, so a
/// caller that reads them from Redis connects only when one is found.
pub fn validate_against(
    object: &Value,
    ctx: &Context<'_>,
    perspective: Perspective,
    times: RecordedTimes<'_>,
) -> Review {
    review(object, ctx, false, perspective, Some(times))
}

fn review(
    object: &Value,
    ctx: &Context<'_>,
    patch: bool,
    perspective: Perspective,
    times: Option<RecordedTimes<'_>>,
) -> Review {
    match analysis::analyse(object, ctx) {
        Subject::Skipped(skip) => Review::skipped(skip),
        Subject::Unresolved {
            workload,
            overrides,
            detection,
        } => Review {
            outcome: Outcome::Unresolved,
            ops: Vec::new(),
            notes: Vec::new(),
            findings: findings::unresolved(&workload, &overrides, &detection),
            status: None,
        },
        Subject::Sidekiq(analysis) => {
            let mut review = sidekiq(&analysis, ctx, patch, perspective);
            if let Some(times) = times {
                review
                    .findings
                    .extend(findings::classes_slower_than_declared(
                        &analysis.workload,
                        &analysis.settings.longest_job,
                        times(),
                    ));
            }
            // Notes quote the manifest (a hook, a flag) as findings do.
            review.notes = review.notes.into_iter().map(errors::printable).collect();
            review
        }
    }
}

fn sidekiq(
    analysis: &Analysis<'_>,
    ctx: &Context<'_>,
    patch: bool,
    perspective: Perspective,
) -> Review {
    let plan: Result<Plan, Blocked> = mutate::plan(analysis, ctx);
    match plan {
        Err(blocked) => {
            let findings =
                findings::evaluate(analysis, &analysis.state, Some(&blocked), ctx.policy);
            let explanation = &analysis.grace.explanation;
            let notes = arithmetic(
                format!("not injected; jobs need {explanation}"),
                analysis,
                &findings,
            );
            Review {
                findings,
                outcome: Outcome::Blocked(blocked),
                ops: Vec::new(),
                notes,
                status: None,
            }
        }
        Ok(plan) => {
            let state = match perspective {
                Perspective::AsWritten => analysis.state.clone(),
                Perspective::AsInjected => plan.after(analysis, ctx),
            };
            let mut findings = findings::evaluate(analysis, &state, None, ctx.policy);
            if perspective == Perspective::AsWritten {
                findings.extend(findings::sidecar_stale(analysis, &plan));
            }
            let notes = if patch {
                let mut notes = plan.warnings(analysis, ctx.policy);
                if let Some(first) = notes.first_mut()
                    && !fits(first)
                {
                    *first = short_arithmetic(analysis);
                }
                notes
            } else {
                arithmetic(
                    validation_note(&plan, analysis, perspective),
                    analysis,
                    &findings,
                )
            };
            let status = Some(plan.status.clone());
            let ops = if patch {
                plan.into_ops(analysis, ctx)
            } else {
                Vec::new()
            };
            Review {
                outcome: if ops.is_empty() {
                    Outcome::Unchanged
                } else {
                    Outcome::Mutated
                },
                notes,
                findings,
                ops,
                status,
            }
        }
    }
}

/// What a validation says of the grace period: for a workload, what its pods will get once
/// injected (the warning `kubectl apply` of a Deployment shows); for a pod, what it has.
fn validation_note(plan: &Plan, analysis: &Analysis<'_>, perspective: Perspective) -> String {
    let explanation = &analysis.grace.explanation;
    let required = analysis.grace.required;
    match (perspective, plan.grace) {
        (Perspective::AsInjected, mutate::GraceAction::Keep { value }) => {
            format!("its pods keep terminationGracePeriodSeconds {value}; jobs need {explanation}")
        }
        (Perspective::AsInjected, _) => {
            format!("its pods get terminationGracePeriodSeconds {required}: {explanation}")
        }
        (Perspective::AsWritten, _) => format!(
            "terminationGracePeriodSeconds {}; jobs need {explanation}",
            analysis.state.effective_grace()
        ),
    }
}

/// Every answer about a Sidekiq workload explains the grace arithmetic in a warning, whole:
/// `note` (or, when it is too long for a warning, the bare arithmetic), unless a finding already
/// shows the whole arithmetic within a warning's length.
fn arithmetic(note: String, analysis: &Analysis<'_>, findings: &[Finding]) -> Vec<String> {
    let explanation = &analysis.grace.explanation;
    let shown = findings
        .iter()
        .filter(|finding| finding.message.contains(explanation.as_str()))
        .any(|finding| fits(&finding.to_string()));
    if shown {
        Vec::new()
    } else if fits(&note) {
        vec![note]
    } else {
        vec![short_arithmetic(analysis)]
    }
}

/// The arithmetic with the fewest words around it.
fn short_arithmetic(analysis: &Analysis<'_>) -> String {
    format!("grace period {}", analysis.grace.explanation)
}

/// Whether `line` survives as a warning without being cut.
fn fits(line: &str) -> bool {
    WARNING_PREFIX.chars().count() + line.chars().count() <= MAX_WARNING_CHARS
}

/// What every warning starts with.
const WARNING_PREFIX: &str = "sidekiq-guard: ";

/// An admission answer, independent of the wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Admit or reject.
    pub allowed: bool,
    /// On rejection: the reason, naming every error finding.
    pub message: Option<String>,
    /// `Warning:` lines for the client.
    pub warnings: Vec<String>,
}

/// Whether `object` is being deleted: its `deletionTimestamp` is set, and the UPDATEs that follow
/// only remove finalizers. Reviewing them could only refuse them, which would leave the object
/// terminating forever (e.g. a Deployment deleted with `--cascade=foreground`).
pub fn being_deleted(object: &Value) -> bool {
    object
        .at("/metadata/deletionTimestamp")
        .is_some_and(|at| !at.is_null())
}

/// The API server truncates longer warnings; cutting them here keeps every shell identical.
pub const MAX_WARNING_CHARS: usize = 256;
/// The API server ignores warnings beyond this many characters per response.
pub const MAX_WARNINGS_TOTAL: usize = 4096;

/// The admission answer for a review: mutations are always admitted; validations are rejected
/// under `deny` enforcement when an error finding remains.
pub fn decide(
    review: &Review,
    enforcement: Enforcement,
    may_deny: bool,
    subject: &str,
) -> Decision {
    let deny = may_deny && enforcement == Enforcement::Deny && review.has_errors();
    let message = deny.then(|| {
        let errors: Vec<String> = review
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| format!("{} ({})", f, f.path))
            .collect();
        format!("sidekiq-guard denied {subject}: {}", errors.join("; "))
    });
    let lines = review
        .notes
        .iter()
        .cloned()
        .chain(review.findings.iter().map(Finding::to_string));
    Decision {
        allowed: !deny,
        message,
        warnings: cap_warnings(lines),
    }
}

fn cap_warnings(lines: impl Iterator<Item = String>) -> Vec<String> {
    let mut total = 0;
    let mut warnings = Vec::new();
    for line in lines {
        // Findings and notes are printable from the start; `Review` is open to construction,
        // though, and the API server drops a warning that holds a control character (it cannot
        // go into a `Warning` header). The byte scan costs next to nothing.
        let line = crate::errors::truncate(
            &errors::printable(format!("{WARNING_PREFIX}{line}")),
            MAX_WARNING_CHARS,
        );
        total += line.len();
        if total > MAX_WARNINGS_TOTAL {
            break;
        }
        warnings.push(line);
    }
    warnings
}

/// `Deployment jobs/worker`, `Pod jobs/worker-7d9c*`, for messages.
pub fn subject(object: &Value, namespace: Option<&str>) -> String {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let name = workload::display_name(object);
    let own = object.at("/metadata/namespace").and_then(Value::as_str);
    match own.or(namespace) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn warnings_carry_no_control_characters_the_api_server_would_drop() {
        let warnings =
            cap_warnings(["Sidekiq flag -t 2\n5: expected\tseconds".to_owned()].into_iter());
        assert_eq!(
            warnings,
            vec![format!(
                "{WARNING_PREFIX}Sidekiq flag -t 2\\n5: expected\\tseconds"
            )]
        );
        assert!(!warnings[0].chars().any(char::is_control));
    }

    #[test]
    fn recorded_times_are_read_for_sidekiq_workloads_only_and_judged_against_the_longest_job() {
        use std::cell::Cell;

        use crate::sidekiq::metrics::{ClassTimes, Slowest};

        let policy = crate::Policy::default();
        let ctx = Context {
            policy: &policy,
            mode: crate::Mode::Native,
            namespace: None,
        };
        let times = BTreeMap::from([(
            "ReportJob".to_owned(),
            ClassTimes {
                runs: 3,
                slowest: Some(Slowest {
                    from_ms: 600_000,
                    below_ms: None,
                }),
            },
        )]);
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            &times
        };
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
        validate_against(&service, &ctx, Perspective::AsWritten, &read);
        assert_eq!(reads.get(), 0, "nothing to judge: Redis is not read");

        // Declares 60 s (the default); ReportJob ran for 10 min or more.
        let worker = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{"name": "worker", "command": ["sidekiq"]}]}}}});
        let review = validate_against(&worker, &ctx, Perspective::AsWritten, &read);
        assert_eq!(reads.get(), 1);
        let slower: Vec<_> = review
            .findings
            .iter()
            .filter(|f| f.code == findings::Code::ClassSlowerThanDeclared)
            .collect();
        assert_eq!(slower.len(), 1, "{:?}", review.findings);
        assert!(
            slower[0].message.contains("ReportJob"),
            "{}",
            slower[0].message
        );
        // Without times, the same review has no such finding.
        assert!(
            !validate(&worker, &ctx, Perspective::AsWritten)
                .findings
                .iter()
                .any(|f| f.code == findings::Code::ClassSlowerThanDeclared)
        );
    }

    #[test]
    fn objects_in_the_cluster_are_judged_as_their_pods_are_admitted() {
        let deployment = |labels: Value| {
            json!({"kind": "Deployment", "metadata": {"name": "w", "namespace": "shop"},
                   "spec": {"template": {"metadata": {"labels": labels},
                                         "spec": {"containers": [{"name": "worker", "command": ["sidekiq"]}]}}}})
        };
        let plain = deployment(json!({"app": "w"}));
        let labelled = deployment(json!({"app": "w", "sidekiq-guard.io/inject": "true"}));
        assert_eq!(
            Perspective::in_cluster(&plain, false),
            Perspective::AsWritten
        );
        assert_eq!(
            Perspective::in_cluster(&plain, true),
            Perspective::AsInjected
        );
        assert_eq!(
            Perspective::in_cluster(&labelled, false),
            Perspective::AsInjected,
            "the object selector goes by the pods' labels"
        );
        // A pod that exists was admitted already: what it runs is what it is.
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"sidekiq-guard.io/inject": "true"}},
                         "spec": {"containers": [{"name": "worker", "command": ["sidekiq"]}]}});
        assert_eq!(Perspective::in_cluster(&pod, true), Perspective::AsWritten);
        assert_eq!(
            Perspective::in_cluster(&json!({"kind": "Service"}), true),
            Perspective::AsWritten
        );
    }
}
