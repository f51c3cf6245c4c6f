//! The `/status` document of the probe, read by `kubectl sidekiq status` through the API
//! server's pod proxy. Both sides use these types, so the schema lives in one place; it is
//! documented in the README ("/status"). Fields are only ever added; [`SCHEMA`] changes if one
//! changes meaning.

use serde::{Deserialize, Serialize};

use super::Now;
use super::drain::{Drain, ProcessProgress, State};
use super::health::Verdict;
use super::observe::{ProcessState, Tracker};

/// Version of the document's shape.
pub const SCHEMA: u32 = 1;

/// The whole `/status` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The sidekiq-guard version of the probe.
    pub version: String,
    /// `native` or `classic`.
    pub mode: String,
    /// The pod.
    pub pod: PodReport,
    /// Redis as the probe sees it.
    pub redis: RedisReport,
    /// What `/livez` answers now.
    pub liveness: Verdict,
    /// What `/readyz` answers now.
    pub readiness: Verdict,
    /// This pod's processes.
    pub processes: Vec<ProcessReport>,
    /// The drain.
    pub drain: DrainReport,
    /// Whether the probe got SIGTERM and is waiting to exit.
    pub shutting_down: bool,
}

/// The pod the probe serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodReport {
    /// `metadata.name`, from the downward API.
    pub name: Option<String>,
    /// `metadata.namespace`, from the downward API.
    pub namespace: Option<String>,
    /// The hostname Sidekiq processes of this pod carry in their identity.
    pub hostname: String,
}

/// Redis as the probe sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisReport {
    /// The URL with any password replaced by `***`.
    pub url: String,
    /// The redis-namespace prefix, if any.
    pub namespace: Option<String>,
    /// Whether the last read succeeded (`null` before the first).
    pub reachable: Option<bool>,
    /// Seconds Redis has been unreachable, while it is.
    pub unreachable_for_secs: Option<f64>,
    /// The last error while Redis is unreachable.
    pub error: Option<String>,
    /// Seconds since the last completed read.
    pub last_read_age_secs: Option<f64>,
    /// Reads so far.
    pub reads: u64,
    /// Pipelines sent so far (round trips).
    pub round_trips: u64,
    /// Commands sent so far.
    pub commands: u64,
}

/// One Sidekiq process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    /// `hostname:pid:nonce`.
    pub identity: String,
    /// `live`, `expired` (still in `processes`, hash gone: not beating) or `unreadable`.
    pub state: String,
    /// `info.hostname`.
    pub hostname: Option<String>,
    /// `info.pid`.
    pub pid: Option<u32>,
    /// `info.tag`.
    pub tag: Option<String>,
    /// `info.version` (7.0.2+).
    pub version: Option<String>,
    /// The record layout read: `6.x`, `7.x`, `8.x`.
    pub layout: Option<String>,
    /// Whether it runs embedded (ignores remote signals).
    pub embedded: bool,
    /// The queues it fetches.
    pub queues: Vec<String>,
    /// Whether it is quiet.
    pub quiet: Option<bool>,
    /// Busy threads.
    pub busy: Option<u32>,
    /// Threads.
    pub concurrency: Option<u32>,
    /// Epoch seconds of the last heartbeat (kept after the hash expired).
    pub beat: Option<f64>,
    /// Seconds since the last heartbeat.
    pub beat_age_secs: Option<f64>,
    /// Epoch seconds it started.
    pub started_at: Option<f64>,
    /// Resident memory, KiB.
    pub rss_kb: Option<u64>,
    /// Its own Redis round-trip time, µs.
    pub rtt_us: Option<u64>,
    /// Running jobs, longest first (empty when unknown, see `jobs_read_age_secs`).
    pub jobs: Vec<JobReport>,
    /// Seconds since the running jobs were read (`null`: not read).
    pub jobs_read_age_secs: Option<f64>,
    /// Why the process or some of its jobs cannot be read.
    pub errors: Vec<String>,
    /// Oddities that did not stop it from being read.
    pub warnings: Vec<String>,
}

/// One running job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    /// The class as users know it (ActiveJob's wrapped class when wrapped).
    pub class: String,
    /// The Sidekiq class that wraps it, if any.
    pub wrapper: Option<String>,
    /// The job id.
    pub jid: Option<String>,
    /// The queue.
    pub queue: String,
    /// The thread id.
    pub thread: String,
    /// Epoch seconds it started.
    pub run_at: f64,
    /// Seconds it has run.
    pub elapsed_secs: f64,
}

/// [`ProcessReport::state`] of a process that beats.
pub const LIVE: &str = "live";
/// [`ProcessReport::state`] of a process still in `processes` whose hash is gone.
pub const EXPIRED: &str = "expired";
/// [`ProcessReport::state`] of a process whose records cannot be read.
pub const UNREADABLE: &str = "unreadable";
/// [`DrainReport::state`] when no drain was ever asked for.
pub const NEVER_DRAINED: &str = "idle";

/// The drain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainReport {
    /// `idle` (never asked), or the [`State`] of the last drain.
    pub state: String,
    /// The budget, seconds.
    pub budget_secs: f64,
    /// Epoch seconds the last drain started.
    pub started_at: Option<f64>,
    /// Seconds it has run (or ran).
    pub elapsed_secs: Option<f64>,
    /// What it waits for, or its outcome.
    pub message: Option<String>,
    /// Processes signalled with `TSTP`.
    pub signalled: Vec<String>,
    /// Progress per process.
    pub processes: Vec<ProcessProgress>,
}

impl Status {
    /// Whether everything this pod runs is known: Redis answered the probe's last read and
    /// every process's running jobs were read. Otherwise "no job runs" cannot be told from
    /// "no job was seen".
    pub fn jobs_known(&self) -> bool {
        self.redis.reachable == Some(true) && self.processes.iter().all(ProcessReport::jobs_known)
    }
}

impl ProcessReport {
    /// Whether its running jobs were read: a readable record whose work hash was read.
    pub fn jobs_known(&self) -> bool {
        self.state == "live" && self.jobs_read_age_secs.is_some()
    }

    /// The host part of its identity, to match it to a pod: `info.hostname`, or the
    /// identity's own when the hash is gone (an expired or unreadable process is still the
    /// pod's).
    pub fn host(&self) -> Option<&str> {
        self.hostname
            .as_deref()
            .or_else(|| crate::sidekiq::records::Identity::parse(&self.identity).map(|id| id.host))
    }
}

impl DrainReport {
    /// The report of `drain` at `now`, or of no drain with `budget`.
    pub fn new(drain: Option<&Drain>, budget: std::time::Duration, now: Now) -> Self {
        match drain {
            None => DrainReport {
                state: NEVER_DRAINED.to_owned(),
                budget_secs: budget.as_secs_f64(),
                started_at: None,
                elapsed_secs: None,
                message: None,
                signalled: Vec::new(),
                processes: Vec::new(),
            },
            Some(d) => DrainReport {
                state: d.state().as_str().to_owned(),
                budget_secs: d.budget().as_secs_f64(),
                started_at: Some(d.started_wall()),
                elapsed_secs: Some(round(d.elapsed(now).as_secs_f64())),
                message: Some(d.message().to_owned()),
                signalled: d.signalled_identities().map(str::to_owned).collect(),
                processes: d.progress().to_vec(),
            },
        }
    }

    /// The state of the last drain; `None` when none was ever asked for (or the state is one
    /// this build does not know).
    pub fn drain_state(&self) -> Option<State> {
        State::from_name(&self.state)
    }

    /// The HTTP status `/drain` answers with this report ([`State::http_status`]; 503 when
    /// no drain was ever asked for).
    pub fn http_status(&self) -> u16 {
        self.drain_state().map_or(503, State::http_status)
    }

    /// Whether the report is of a finished drain that did not drain.
    pub fn failed(&self) -> bool {
        matches!(
            self.drain_state(),
            Some(State::BudgetExhausted | State::Unquietable)
        )
    }
}

/// The followed processes of `tracker` at `now`.
pub fn processes(tracker: &Tracker, now: Now) -> Vec<ProcessReport> {
    tracker
        .processes()
        .map(|t| {
            let mut report = ProcessReport {
                identity: t.identity.clone(),
                state: String::new(),
                hostname: None,
                pid: None,
                tag: None,
                version: None,
                layout: None,
                embedded: false,
                queues: Vec::new(),
                quiet: None,
                busy: None,
                concurrency: None,
                beat: t.last_beat,
                beat_age_secs: t.last_beat.map(|b| round(tracker.heartbeat_age(b, now))),
                started_at: t.started_at,
                rss_kb: None,
                rtt_us: None,
                jobs: Vec::new(),
                jobs_read_age_secs: t.work_read_at.map(|at| round((now.wall - at).max(0.0))),
                errors: Vec::new(),
                warnings: Vec::new(),
            };
            match &t.state {
                ProcessState::Live(p) => {
                    report.state = LIVE.to_owned();
                    report.hostname = Some(p.info.hostname.clone());
                    report.pid = Some(p.info.pid);
                    report.tag = p.info.tag.clone();
                    report.version = p.info.version.clone();
                    report.layout = Some(p.layout.as_str().to_owned());
                    report.embedded = p.info.embedded;
                    report.queues = p.info.queues.clone();
                    report.quiet = Some(p.quiet);
                    report.busy = Some(p.busy);
                    report.concurrency = p.concurrency;
                    report.rss_kb = p.rss_kb;
                    report.rtt_us = p.rtt_us;
                    report.warnings = p.warnings.iter().map(ToString::to_string).collect();
                }
                ProcessState::Expired => report.state = EXPIRED.to_owned(),
                ProcessState::Unreadable(error) => {
                    report.state = UNREADABLE.to_owned();
                    report.errors.push(crate::errors::chain(error));
                }
            }
            match &t.work {
                Some(Ok(work)) => {
                    report.jobs = work
                        .jobs
                        .iter()
                        .map(|job| JobReport {
                            class: job.class.clone(),
                            wrapper: job.wrapper.clone(),
                            jid: job.jid.clone(),
                            queue: job.queue.clone(),
                            thread: job.thread.clone(),
                            run_at: job.run_at,
                            elapsed_secs: round(job.elapsed(now.wall)),
                        })
                        .collect();
                    report
                        .errors
                        .extend(work.errors.iter().map(|e| crate::errors::chain(e)));
                }
                Some(Err(error)) => report.errors.push(error.to_string()),
                None => {}
            }
            report
        })
        .collect()
}

/// Seconds to the millisecond: enough for people and stable in JSON.
fn round(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}
