//! Whether the jobs a terminating Sidekiq pod is still running will finish before the kubelet
//! kills it, judged from how long each has run and the declared longest job.
//!
//! A job is expected to need at most `longest-job` in all. It is **at risk** when it has already
//! run longer than declared (nobody knows when it will end), or when what the declaration leaves
//! it exceeds the seconds left before SIGKILL minus Sidekiq's exit allowance.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::duration::Secs;
use crate::grace::EXIT_ALLOWANCE_SECS;
use crate::timestamp;

/// A pod the API server is deleting gracefully.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deletion<'a> {
    /// `metadata.deletionTimestamp` as the API server wrote it.
    pub timestamp: &'a str,
    /// Seconds from `now` until then; negative once it has passed.
    pub left_secs: f64,
}

impl<'a> Deletion<'a> {
    /// The deletion of `pod` at `now_unix`, or `None` when it is not being deleted (or the
    /// timestamp cannot be read). For a pod the API server sets `deletionTimestamp` to the
    /// moment of deletion plus the grace period, which is when the kubelet sends SIGKILL.
    pub fn of_pod(pod: &'a Value, now_unix: f64) -> Option<Self> {
        let timestamp = pod.pointer("/metadata/deletionTimestamp")?.as_str()?;
        let at = timestamp::parse(timestamp)?;
        Some(Self {
            timestamp,
            left_secs: at as f64 - now_unix,
        })
    }
}

/// Whether the pod's containers run, so that its probe can answer: phase `Running`, which a pod
/// being deleted keeps until its containers are gone.
pub fn containers_run(pod: &Value) -> bool {
    pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
}

/// Whether every container of the pod, the probe sidecar aside, has exited: Sidekiq runs no job
/// there any more, whatever Redis says. False when the kubelet has not reported them yet.
pub fn workload_exited(pod: &Value) -> bool {
    let Some(statuses) = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
    else {
        return false;
    };
    let mut workload = statuses
        .iter()
        .filter(|status| status.get("name").and_then(Value::as_str) != Some(crate::sidecar::NAME))
        .peekable();
    workload.peek().is_some()
        && workload.all(|status| {
            status
                .pointer("/state/terminated")
                .is_some_and(Value::is_object)
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
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return "Terminating";
    }
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
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
        /// Seconds left before SIGKILL.
        left_secs: u64,
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

/// Judges the jobs of a pod with `left_secs` before SIGKILL and a declared longest job;
/// `jobs` is `None` when they could not be read.
pub fn terminating(
    left_secs: f64,
    declared_secs: Option<u64>,
    jobs: Option<&[RunningJob<'_>]>,
) -> Verdict {
    let left = left_secs.max(0.0);
    let left_whole = left.floor() as u64;
    let Some(jobs) = jobs else {
        return Verdict::Unseen {
            left_secs: left_whole,
        };
    };
    if jobs.is_empty() {
        return Verdict::Idle;
    }
    let Some(declared) = declared_secs else {
        return Verdict::Unknown {
            left_secs: left_whole,
        };
    };
    let usable = left - EXIT_ALLOWANCE_SECS as f64;
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
            left_secs: left_whole,
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
                left_secs,
            } => write!(
                f,
                "at risk: job {class} has run {} of a declared {}, {left_secs} s left",
                Secs(*elapsed_secs),
                Secs(*declared_secs)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
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
        let verdict = terminating(20.4, Some(300), Some(&[job("ReportJob", 240.0)]));
        assert_eq!(
            verdict.to_string(),
            "at risk: job ReportJob has run 4m of a declared 5m, 20 s left"
        );
    }

    #[test]
    fn the_youngest_job_binds_because_the_declaration_bounds_every_job() {
        let verdict = terminating(
            100.0,
            Some(300),
            Some(&[job("ReportJob", 240.0), job("MailJob", 2.0)]),
        );
        assert_eq!(
            verdict.to_string(),
            "at risk: job MailJob has run 2s of a declared 5m, 100 s left"
        );
    }

    #[test]
    fn jobs_that_fit_will_finish() {
        let verdict = terminating(120.0, Some(300), Some(&[job("ReportJob", 250.0)]));
        assert_eq!(verdict, Verdict::WillFinish { left_secs: 120 });
        assert_eq!(verdict.to_string(), "will finish");
    }

    #[test]
    fn a_job_past_its_declaration_is_at_risk_whatever_is_left() {
        let verdict = terminating(600.0, Some(60), Some(&[job("ImportJob", 61.0)]));
        assert_eq!(
            verdict.to_string(),
            "at risk: job ImportJob has run 1m1s of a declared 1m, 600 s left"
        );
    }

    #[test]
    fn idle_and_undeclared() {
        assert_eq!(terminating(10.0, Some(60), Some(&[])), Verdict::Idle);
        assert_eq!(
            terminating(10.0, None, Some(&[job("A", 1.0)])),
            Verdict::Unknown { left_secs: 10 }
        );
        assert_eq!(
            terminating(-3.0, None, Some(&[job("A", 1.0)])),
            Verdict::Unknown { left_secs: 0 }
        );
    }

    #[test]
    fn jobs_that_cannot_be_seen_are_not_idle() {
        let verdict = terminating(28.0, Some(60), None);
        assert_eq!(verdict, Verdict::Unseen { left_secs: 28 });
        assert_eq!(
            verdict.to_string(),
            "unknown: its running jobs cannot be seen"
        );
        assert!(!verdict.safe() && !verdict.at_risk());
        assert!(terminating(28.0, Some(60), Some(&[])).safe());
    }
}
