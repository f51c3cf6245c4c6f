//! Whether the jobs a terminating Sidekiq pod is still running will finish before the kubelet
//! kills it, judged from how long each has run and the declared longest job.
//!
//! A job is expected to need at most `longest-job` in all. It is **at risk** when it has already
//! run longer than declared (nobody knows when it will end), or when what the declaration leaves
//! it exceeds the time it has: the seconds left before SIGKILL minus Sidekiq's exit allowance,
//! or, when SIGTERM reaches Sidekiq earlier than that (no preStop hook holds it back, or a fixed
//! sleep), what is left of Sidekiq's shutdown timeout after it — Sidekiq then pushes the job
//! back to its queue, unfinished.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::analysis::{Context, Subject, analyse};
use crate::duration::Secs;
use crate::grace::EXIT_ALLOWANCE_SECS;
use crate::pointer::Pointer as _;
use crate::policy::Policy;
use crate::prestop::PreStop;
use crate::sidecar::Mode;
use crate::timestamp;

/// A pod the API server is deleting gracefully.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deletion<'a> {
    /// `metadata.deletionTimestamp` as the API server wrote it.
    pub timestamp: &'a str,
    /// Seconds from `now` until then; negative once it has passed.
    pub left_secs: f64,
    /// Seconds since the deletion began (`deletionGracePeriodSeconds` before the timestamp),
    /// when the pod says its grace period.
    pub began_secs_ago: Option<f64>,
}

impl<'a> Deletion<'a> {
    /// The deletion of `pod` at `now_unix`, or `None` when it is not being deleted (or the
    /// timestamp cannot be read). For a pod the API server sets `deletionTimestamp` to the
    /// moment of deletion plus the grace period, which is when the kubelet sends SIGKILL.
    pub fn of_pod(pod: &'a Value, now_unix: f64) -> Option<Self> {
        let timestamp = pod.at("/metadata/deletionTimestamp")?.as_str()?;
        let at = timestamp::parse(timestamp)?;
        let left_secs = at as f64 - now_unix;
        let grace = pod
            .at("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_f64);
        Some(Self {
            timestamp,
            left_secs,
            began_secs_ago: grace.map(|grace| grace - left_secs),
        })
    }
}

/// When SIGTERM reaches Sidekiq during a deletion, and how long Sidekiq then lets its jobs run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shutdown {
    /// Seconds after the deletion began that the preStop hook lets SIGTERM through: 0 without
    /// a hook that waits, the sleep of a fixed one, the drain budget for `/drain` (which
    /// returns by then). `None` when the hook waits for the jobs some other way, forever, or
    /// cannot be read: then only SIGKILL bounds them.
    pub sigterm_after: Option<u64>,
    /// Sidekiq's `-t`: how long it lets running jobs go on after SIGTERM before it pushes them
    /// back to their queues.
    pub timeout: u64,
}

impl Shutdown {
    /// For `pod`, from its Sidekiq container's preStop hook and `-t` (the annotation, else the
    /// policy's default, Sidekiq's 25 s in the default policy); `None` when its Sidekiq
    /// container cannot be told.
    pub fn of_pod(pod: &Value, policy: &Policy) -> Option<Self> {
        let ctx = Context {
            policy,
            mode: Mode::Native,
            namespace: None,
        };
        let Subject::Sidekiq(analysis) = analyse(pod, &ctx) else {
            return None;
        };
        let sigterm_after = match &analysis.state.prestop {
            PreStop::Missing
            | PreStop::QuietOnly
            | PreStop::StopsAtOnce { .. }
            | PreStop::Broken { .. }
            | PreStop::MisdirectedDrain { .. } => Some(0),
            // The budget the webhook gave the probe, when it injected the pod.
            PreStop::Drain { .. } => Some(
                crate::status::InjectionStatus::of_pod(pod)
                    .map_or(analysis.grace.drain_budget, |status| status.drain_budget),
            ),
            PreStop::QuietThenSleep {
                sleep,
                also_runs: false,
            }
            | PreStop::SleepOnly { sleep } => Some(*sleep),
            PreStop::QuietThenSleep { .. }
            | PreStop::Quiets { .. }
            | PreStop::Endless { .. }
            | PreStop::Unrecognised { .. } => None,
        };
        Some(Self {
            sigterm_after,
            timeout: analysis.settings.shutdown_timeout.value,
        })
    }
}

/// Whether the pod's containers run, so that its probe can answer: phase `Running`, which a pod
/// being deleted keeps until its containers are gone.
pub fn containers_run(pod: &Value) -> bool {
    pod.at("/status/phase").and_then(Value::as_str) == Some("Running")
}

/// Whether every container of the pod, the probe sidecar aside, has exited: Sidekiq runs no job
/// there any more, whatever Redis says. False when the kubelet has not reported them yet.
pub fn workload_exited(pod: &Value) -> bool {
    let Some(statuses) = pod
        .at("/status/containerStatuses")
        .and_then(Value::as_array)
    else {
        return false;
    };
    let mut workload = statuses
        .iter()
        .filter(|status| status.get("name").and_then(Value::as_str) != Some(crate::sidecar::NAME))
        .peekable();
    workload.peek().is_some()
        && workload.all(|status| status.at("/state/terminated").is_some_and(Value::is_object))
}

/// Whether the pod's Sidekiq can run jobs, as far as the pod's status tells without asking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidekiqRuns {
    /// Its containers may run: ask the probe or Redis.
    Maybe,
    /// `Pending` with the Sidekiq container not running yet: nothing to quiet.
    NotStarted,
    /// `Succeeded`, `Failed` (an evicted pod keeps its workload's labels), or every container
    /// but the probe has exited: it runs no job.
    Exited,
}

/// Reads [`SidekiqRuns`] off `pod`. The kubelet says `Pending` while any container waits (a
/// sidecar pulling its image, say), even with Sidekiq running, so the Sidekiq container's own
/// state decides: the one the status annotation names, else any but the probe sidecar.
pub fn sidekiq_runs(pod: &Value) -> SidekiqRuns {
    let phase = pod.at("/status/phase").and_then(Value::as_str);
    if phase == Some("Pending") && !sidekiq_container_running(pod) {
        SidekiqRuns::NotStarted
    } else if matches!(phase, Some("Succeeded" | "Failed")) || workload_exited(pod) {
        SidekiqRuns::Exited
    } else {
        SidekiqRuns::Maybe
    }
}

fn sidekiq_container_running(pod: &Value) -> bool {
    let sidekiq = crate::status::InjectionStatus::of_pod(pod).map(|status| status.container);
    let is_sidekiq = |name: Option<&str>| match &sidekiq {
        Some(sidekiq) => name == Some(sidekiq.as_str()),
        None => name != Some(crate::sidecar::NAME),
    };
    pod.at("/status/containerStatuses")
        .and_then(Value::as_array)
        .is_some_and(|statuses| {
            statuses.iter().any(|status| {
                is_sidekiq(status.get("name").and_then(Value::as_str))
                    && status.at("/state/running").is_some_and(Value::is_object)
            })
        })
}

/// Whether a pod with no Sidekiq process in Redis is known to run no job: its containers never
/// ran (Pending) or have exited. A running pod with none proves nothing — a wrong Redis URL,
/// database or key prefix shows the same — so its jobs are unknown.
pub fn idle_without_processes(pod: &Value) -> bool {
    !containers_run(pod) || workload_exited(pod)
}

/// The pod's status the way `kubectl get pods` shows it: `Terminating` once deletion has
/// begun (the phase stays `Running` until the containers are gone), else `status.phase`.
pub fn display_phase(pod: &Value) -> &str {
    if pod
        .at("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return "Terminating";
    }
    pod.at("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
}

/// The longest job a pod's jobs are judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Longest {
    /// Seconds.
    pub secs: u64,
    /// Declared by the pod's `longest-job` annotation; otherwise the policy's default that
    /// sidekiq-guard injected the pod with.
    pub declared: bool,
}

impl Longest {
    /// The longest job of a pod: its `longest-job` annotation, else, for a pod sidekiq-guard
    /// injected, the policy's default it was injected with (its status annotation); `None`
    /// for a pod that neither declares one nor was injected.
    pub fn of_pod(pod: &Value) -> Option<Self> {
        let annotations = pod.at("/metadata/annotations").and_then(Value::as_object);
        let declared = crate::annotations::Overrides::from_annotations(annotations).longest_job;
        let injected = crate::status::InjectionStatus::of_pod(pod).map(|s| s.longest_job);
        match (injected, declared) {
            // What the pod was injected with is what its grace period covers.
            (Some(secs), declared) => Some(Self {
                secs,
                declared: declared.is_some(),
            }),
            (None, declared) => declared.map(Self::from),
        }
    }
}

impl From<u64> for Longest {
    /// A declared longest job.
    fn from(secs: u64) -> Self {
        Self {
            secs,
            declared: true,
        }
    }
}

/// A running job, as far as the verdict cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunningJob<'a> {
    /// The class users know (ActiveJob's wrapped class when wrapped).
    pub class: &'a str,
    /// Seconds it has run.
    pub elapsed_secs: f64,
}

/// The verdict on a terminating pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// No job is running.
    Idle,
    /// Every running job should finish in time.
    WillFinish {
        /// Seconds left before SIGKILL.
        left_secs: u64,
    },
    /// A job may be cut off.
    AtRisk {
        /// Its class.
        class: String,
        /// Seconds it has run.
        elapsed_secs: u64,
        /// The declared longest job, seconds.
        declared_secs: u64,
        /// No longest job is declared: `declared_secs` is the policy's default.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        policy_default: bool,
        /// Seconds left before SIGKILL.
        left_secs: u64,
        /// When Sidekiq's shutdown timeout ends sooner than that: the seconds until it does,
        /// and the timeout.
        #[serde(skip_serializing_if = "Option::is_none")]
        shutdown_timeout: Option<TimeoutLeft>,
    },
    /// Jobs run, but no longest job is declared to judge them by.
    Unknown {
        /// Seconds left before SIGKILL.
        left_secs: u64,
    },
    /// What the pod is running cannot be seen (its probe does not answer, its processes
    /// cannot be told in Redis): never reported as idle.
    Unseen {
        /// Seconds left before SIGKILL.
        left_secs: u64,
    },
}

/// What is left of Sidekiq's shutdown timeout, when it ends before SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeoutLeft {
    /// Seconds until it ends (0 once it has).
    pub left_secs: u64,
    /// Sidekiq's `-t`.
    pub timeout_secs: u64,
}

/// Judges the jobs of a pod being deleted by its longest job; `shutdown` is how its Sidekiq
/// gets SIGTERM, when known; `jobs` is `None` when they could not be read.
pub fn terminating(
    deletion: &Deletion<'_>,
    shutdown: Option<Shutdown>,
    longest: Option<Longest>,
    jobs: Option<&[RunningJob<'_>]>,
) -> Verdict {
    let left = deletion.left_secs.max(0.0);
    let left_whole = left.floor() as u64;
    let Some(jobs) = jobs else {
        return Verdict::Unseen {
            left_secs: left_whole,
        };
    };
    if jobs.is_empty() {
        return Verdict::Idle;
    }
    let Some(Longest {
        secs: declared,
        declared: is_declared,
    }) = longest
    else {
        return Verdict::Unknown {
            left_secs: left_whole,
        };
    };
    let until_sigkill = left - EXIT_ALLOWANCE_SECS as f64;
    // Sidekiq's own deadline: SIGTERM, then `-t`, then the job goes back to its queue.
    let until_timeout = match (shutdown, deletion.began_secs_ago) {
        (
            Some(Shutdown {
                sigterm_after: Some(after),
                timeout,
            }),
            Some(began),
        ) => Some((after as f64 + timeout as f64 - began, timeout)),
        _ => None,
    }
    .filter(|(secs, _)| *secs < until_sigkill);
    let usable = until_timeout.map_or(until_sigkill, |(secs, _)| secs);
    // The job that needs the most time beyond what is left decides; one that overran its
    // declaration needs an unknown amount, so it counts as needing more than any other.
    let worst = jobs
        .iter()
        .map(|job| {
            let need = if job.elapsed_secs > declared as f64 {
                f64::INFINITY
            } else {
                declared as f64 - job.elapsed_secs
            };
            (need, job)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match worst {
        Some((need, job)) if need > usable => Verdict::AtRisk {
            class: job.class.to_owned(),
            elapsed_secs: job.elapsed_secs.floor() as u64,
            declared_secs: declared,
            policy_default: !is_declared,
            left_secs: left_whole,
            shutdown_timeout: until_timeout.map(|(secs, timeout)| TimeoutLeft {
                left_secs: secs.max(0.0).floor() as u64,
                timeout_secs: timeout,
            }),
        },
        _ => Verdict::WillFinish {
            left_secs: left_whole,
        },
    }
}

impl Verdict {
    /// Whether a job may be cut off.
    pub fn at_risk(&self) -> bool {
        matches!(self, Verdict::AtRisk { .. })
    }

    /// Whether the verdict is sure: not at risk, and not unknown.
    pub fn safe(&self) -> bool {
        matches!(self, Verdict::Idle | Verdict::WillFinish { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Idle => f.write_str("idle"),
            Verdict::WillFinish { .. } => f.write_str("will finish"),
            Verdict::Unknown { .. } => f.write_str("unknown: no longest-job declared"),
            Verdict::Unseen { .. } => f.write_str("unknown: its running jobs cannot be seen"),
            Verdict::AtRisk {
                class,
                elapsed_secs,
                declared_secs,
                policy_default,
                left_secs,
                shutdown_timeout,
            } => {
                let longest = if *policy_default {
                    "the policy's default longest job"
                } else {
                    "a declared"
                };
                write!(
                    f,
                    "at risk: job {class} has run {} of {longest} {}, ",
                    Secs(*elapsed_secs),
                    Secs(*declared_secs)
                )?;
                match shutdown_timeout {
                    Some(TimeoutLeft {
                        left_secs: 0,
                        timeout_secs,
                    }) => write!(
                        f,
                        "and Sidekiq's shutdown timeout (-t {timeout_secs}) has passed: it goes back to its queue unfinished"
                    ),
                    Some(TimeoutLeft {
                        left_secs: timeout_left,
                        timeout_secs,
                    }) => write!(
                        f,
                        "{timeout_left} s left before Sidekiq's shutdown timeout (-t {timeout_secs}) sends it back to its queue"
                    ),
                    None => write!(f, "{left_secs} s left"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn whether_sidekiq_runs_is_read_from_its_own_container() {
        use super::{SidekiqRuns, sidekiq_runs};
        let pod = |phase: &str, worker: Value, other: Value| {
            serde_json::json!({"status": {"phase": phase, "containerStatuses": [
                {"name": "worker", "state": worker},
                {"name": "log-shipper", "state": other},
            ]}})
        };
        let running = serde_json::json!({"running": {"startedAt": "2026-11-26T10:00:00Z"}});
        let waiting = serde_json::json!({"waiting": {"reason": "ImagePullBackOff"}});
        let exited = serde_json::json!({"terminated": {"exitCode": 0}});
        // Pending because another container waits: Sidekiq runs.
        let shipper_waits = pod("Pending", running.clone(), waiting.clone());
        assert_eq!(sidekiq_runs(&shipper_waits), SidekiqRuns::Maybe);
        assert_eq!(
            sidekiq_runs(&pod("Pending", waiting.clone(), waiting.clone())),
            SidekiqRuns::NotStarted
        );
        // The status annotation names the Sidekiq container: another running one does not count.
        let mut annotated = pod("Pending", waiting.clone(), running.clone());
        annotated["metadata"] = serde_json::json!({"annotations": {"sidekiq-guard.io/status":
            r#"{"version":"0.1.0","container":"worker","sidecar":"native","probePort":7434,"drainBudget":80,"grace":110,"longestJob":60,"injected":[],"kept":[]}"#}});
        assert_eq!(sidekiq_runs(&annotated), SidekiqRuns::NotStarted);
        assert_eq!(
            sidekiq_runs(&pod("Failed", running.clone(), running.clone())),
            SidekiqRuns::Exited
        );
        assert_eq!(
            sidekiq_runs(&pod("Running", exited.clone(), exited)),
            SidekiqRuns::Exited
        );
        assert_eq!(
            sidekiq_runs(&pod("Running", running, waiting)),
            SidekiqRuns::Maybe
        );
    }

    #[test]
    fn the_workload_has_exited_once_every_container_but_the_probe_has() {
        let pod = |sidekiq: Value, probe: Value| {
            serde_json::json!({"status": {"containerStatuses": [
                {"name": "worker", "state": sidekiq},
                {"name": "sidekiq-guard-probe", "state": probe},
            ]}})
        };
        let running = serde_json::json!({"running": {"startedAt": "2026-11-26T10:00:00Z"}});
        let exited = serde_json::json!({"terminated": {"exitCode": 0}});
        assert!(workload_exited(&pod(exited.clone(), running.clone())));
        assert!(!workload_exited(&pod(running.clone(), exited)));
        assert!(!workload_exited(&pod(running.clone(), running)));
        assert!(!workload_exited(
            &serde_json::json!({"status": {"phase": "Running"}})
        ));
        assert!(!workload_exited(
            &serde_json::json!({"status": {"containerStatuses": []}})
        ));
    }

    use super::*;

    /// A deletion with `left_secs` before SIGKILL, begun at an unknown time.
    fn deletion(left_secs: f64) -> Deletion<'static> {
        Deletion {
            timestamp: "2026-11-26T08:00:30Z",
            left_secs,
            began_secs_ago: None,
        }
    }

    fn job(class: &str, elapsed_secs: f64) -> RunningJob<'_> {
        RunningJob {
            class,
            elapsed_secs,
        }
    }

    #[test]
    fn a_deleted_pod_has_until_its_deletion_timestamp() {
        let pod = serde_json::json!({
            "metadata": {"deletionTimestamp": "2026-11-26T08:00:30Z"},
            "status": {"phase": "Running"},
        });
        let now = 1_795_680_000.0; // 2026-11-26T08:00:00Z
        let deletion = Deletion::of_pod(&pod, now).unwrap();
        assert_eq!(deletion.timestamp, "2026-11-26T08:00:30Z");
        assert_eq!(deletion.left_secs, 30.0);
        assert_eq!(display_phase(&pod), "Terminating");
        assert!(containers_run(&pod));
        assert!(!containers_run(
            &serde_json::json!({"status": {"phase": "Pending"}})
        ));

        let running = serde_json::json!({"metadata": {}, "status": {"phase": "Running"}});
        assert_eq!(Deletion::of_pod(&running, now), None);
        assert_eq!(display_phase(&running), "Running");
        let unreadable = serde_json::json!({"metadata": {"deletionTimestamp": "soon"}});
        assert_eq!(Deletion::of_pod(&unreadable, now), None);
        assert_eq!(display_phase(&serde_json::json!({})), "Unknown");
    }

    #[test]
    fn the_example_of_the_issue() {
        let verdict = terminating(
            &deletion(20.4),
            None,
            Some(300.into()),
            Some(&[job("ReportJob", 240.0)]),
        );
        assert_eq!(
            verdict.to_string(),
            "at risk: job ReportJob has run 4m of a declared 5m, 20 s left"
        );
    }

    #[test]
    fn the_youngest_job_binds_because_the_declaration_bounds_every_job() {
        let verdict = terminating(
            &deletion(100.0),
            None,
            Some(300.into()),
            Some(&[job("ReportJob", 240.0), job("MailJob", 2.0)]),
        );
        assert_eq!(
            verdict.to_string(),
            "at risk: job MailJob has run 2s of a declared 5m, 100 s left"
        );
    }

    #[test]
    fn jobs_that_fit_will_finish() {
        let verdict = terminating(
            &deletion(120.0),
            None,
            Some(300.into()),
            Some(&[job("ReportJob", 250.0)]),
        );
        assert_eq!(verdict, Verdict::WillFinish { left_secs: 120 });
        assert_eq!(verdict.to_string(), "will finish");
    }

    #[test]
    fn a_job_past_its_declaration_is_at_risk_whatever_is_left() {
        let verdict = terminating(
            &deletion(600.0),
            None,
            Some(60.into()),
            Some(&[job("ImportJob", 61.0)]),
        );
        assert_eq!(
            verdict.to_string(),
            "at risk: job ImportJob has run 1m1s of a declared 1m, 600 s left"
        );
    }

    /// A pod that declares no longest job was injected with the policy's default: judged by
    /// it, and said so.
    #[test]
    fn the_policy_default_is_not_called_declared() {
        let default = Longest {
            secs: 60,
            declared: false,
        };
        let verdict = terminating(
            &deletion(600.0),
            None,
            Some(default),
            Some(&[job("ReportJob", 90.0)]),
        );
        assert_eq!(
            verdict.to_string(),
            "at risk: job ReportJob has run 1m30s of the policy's default longest job 1m, 600 s left"
        );
        assert_eq!(
            serde_json::to_value(&verdict).unwrap()["policy_default"],
            true
        );
    }

    #[test]
    fn a_pods_longest_job_is_its_annotation_else_what_it_was_injected_with() {
        let pod =
            |annotations: Value| serde_json::json!({"metadata": {"annotations": annotations}});
        let status = |longest: u64| {
            serde_json::json!({"version": "0.1.0", "container": "w", "sidecar": "native", "probePort": 7434,
                   "drainBudget": 80, "grace": 130, "longestJob": longest,
                   "injected": [], "kept": []})
            .to_string()
        };
        assert_eq!(
            Longest::of_pod(&pod(
                serde_json::json!({"sidekiq-guard.io/status": status(60)})
            )),
            Some(Longest {
                secs: 60,
                declared: false
            })
        );
        assert_eq!(
            Longest::of_pod(&pod(
                serde_json::json!({"sidekiq-guard.io/status": status(300),
                                        "sidekiq-guard.io/longest-job": "5m"})
            )),
            Some(300.into())
        );
        assert_eq!(
            Longest::of_pod(&pod(
                serde_json::json!({"sidekiq-guard.io/longest-job": "2m"})
            )),
            Some(120.into())
        );
        assert_eq!(Longest::of_pod(&pod(serde_json::json!({}))), None);
    }

    #[test]
    fn idle_and_undeclared() {
        assert_eq!(
            terminating(&deletion(10.0), None, Some(60.into()), Some(&[])),
            Verdict::Idle
        );
        assert_eq!(
            terminating(&deletion(10.0), None, None, Some(&[job("A", 1.0)])),
            Verdict::Unknown { left_secs: 10 }
        );
        assert_eq!(
            terminating(&deletion(-3.0), None, None, Some(&[job("A", 1.0)])),
            Verdict::Unknown { left_secs: 0 }
        );
    }

    #[test]
    fn jobs_that_cannot_be_seen_are_not_idle() {
        let verdict = terminating(&deletion(28.0), None, Some(60.into()), None);
        assert_eq!(verdict, Verdict::Unseen { left_secs: 28 });
        assert_eq!(
            verdict.to_string(),
            "unknown: its running jobs cannot be seen"
        );
        assert!(!verdict.safe() && !verdict.at_risk());
        assert!(terminating(&deletion(28.0), None, Some(60.into()), Some(&[])).safe());
    }

    #[test]
    fn sidekiqs_shutdown_timeout_binds_when_sigterm_comes_first() {
        // 600 s of grace, deleted 100 s ago; no preStop hook held SIGTERM back, and -t 25
        // sent the job back to its queue 75 s ago: SIGKILL's 500 s do not help it.
        let deletion = Deletion {
            timestamp: "2026-11-26T08:10:00Z",
            left_secs: 500.0,
            began_secs_ago: Some(100.0),
        };
        let no_hook = Shutdown {
            sigterm_after: Some(0),
            timeout: 25,
        };
        let jobs = [job("ReportJob", 200.0)];
        assert_eq!(
            terminating(&deletion, Some(no_hook), Some(300.into()), Some(&jobs)).to_string(),
            "at risk: job ReportJob has run 3m20s of a declared 5m, and Sidekiq's shutdown timeout (-t 25) has passed: it goes back to its queue unfinished"
        );
        // The drain holds SIGTERM for its budget (320 s): 320 + 25 - 100 = 245 s left.
        let drain = Shutdown {
            sigterm_after: Some(320),
            timeout: 25,
        };
        assert_eq!(
            terminating(&deletion, Some(drain), Some(300.into()), Some(&jobs)),
            Verdict::WillFinish { left_secs: 500 }
        );
        let long = [job("ReportJob", 10.0)];
        assert_eq!(
            terminating(&deletion, Some(drain), Some(300.into()), Some(&long)).to_string(),
            "at risk: job ReportJob has run 10s of a declared 5m, 245 s left before Sidekiq's shutdown timeout (-t 25) sends it back to its queue"
        );
        // A hook that waits for the jobs some other way: only SIGKILL bounds them.
        let waits = Shutdown {
            sigterm_after: None,
            timeout: 25,
        };
        assert_eq!(
            terminating(&deletion, Some(waits), Some(300.into()), Some(&jobs)),
            Verdict::WillFinish { left_secs: 500 }
        );
    }

    #[test]
    fn the_shutdown_of_a_pod_follows_its_prestop_hook_and_timeout() {
        let pod = |lifecycle: Value| {
            serde_json::json!({"kind": "Pod", "metadata": {"name": "w"}, "spec": {"containers": [{
                "name": "worker", "image": "app", "command": ["bundle", "exec", "sidekiq", "-t", "40"],
                "env": [{"name": "REDIS_URL", "value": "redis://redis:6379"}],
                "lifecycle": lifecycle,
            }]}})
        };
        let policy = Policy::default();
        let of = |lifecycle| Shutdown::of_pod(&pod(lifecycle), &policy).unwrap();
        assert_eq!(of(serde_json::json!({})).sigterm_after, Some(0));
        assert_eq!(of(serde_json::json!({})).timeout, 40);
        let sleeps = serde_json::json!({"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; sleep 90"]}}});
        assert_eq!(of(sleeps).sigterm_after, Some(90));
        // The drain returns by its budget: 20 s of quiet latency and the default 60 s job.
        let drain = serde_json::json!({"preStop": {"httpGet": {"path": "/drain", "port": 7434}}});
        assert_eq!(of(drain).sigterm_after, Some(80));
        let waits = serde_json::json!({"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; while pgrep -f '[b]usy'; do sleep 1; done"]}}});
        assert_eq!(of(waits).sigterm_after, None);
    }

    #[test]
    fn a_deletion_knows_when_it_began_from_its_grace_period() {
        let pod = serde_json::json!({
            "metadata": {"deletionTimestamp": "2026-11-26T08:00:30Z", "deletionGracePeriodSeconds": 120},
        });
        let deletion = Deletion::of_pod(&pod, 1_795_680_000.0).unwrap();
        assert_eq!(deletion.began_secs_ago, Some(90.0));
    }
}
