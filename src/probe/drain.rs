//! The drain behind `GET /drain`, the preStop hook: quiet every process of the pod, then wait
//! until each is quiet with no job running, or gone, or the budget is spent.
//!
//! A process is quieted the way Sidekiq's Web UI does it, by pushing `TSTP` onto its signal list;
//! it pops one signal per heartbeat and reports `quiet` on the heartbeat after, so the quiet
//! shows within two beats. `busy` is also only written on heartbeats, so a drain ends at most
//! one beat (plus one poll) after the last job finishes.
//!
//! "Gone" means no longer a member of `processes` (the tracker forgets those) or an expired
//! hash: on SIGTERM Sidekiq leaves the set but its hash lingers for up to 60 s with the last
//! `busy` and `quiet`, which must not be waited on.
//!
//! A [`Drain`] is a pure state machine: [`Drain::step`] looks at the tracker after each read and
//! says which processes to signal; the shell pushes the signals and reports back with
//! [`Drain::signalled`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::observe::{ProcessState, Tracked, Tracker};
use super::{Now, dur, secs};
use crate::sidekiq::records::SIGNAL_TTL_SECS;

/// Where a drain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for processes to become quiet and idle.
    Draining,
    /// Every process is quiet with no job running, or gone.
    Drained,
    /// The budget passed first; the message lists what still runs.
    BudgetExhausted,
    /// Nothing left to wait for except embedded processes, which ignore remote signals.
    Unquietable,
}

impl State {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draining => "draining",
            State::Drained => "drained",
            State::BudgetExhausted => "budget_exhausted",
            State::Unquietable => "unquietable",
        }
    }

    /// The state named `name` ([`State::as_str`]).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            State::Draining,
            State::Drained,
            State::BudgetExhausted,
            State::Unquietable,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }

    /// Whether the drain has an outcome.
    pub fn ended(self) -> bool {
        self != State::Draining
    }

    /// The HTTP status `/drain` answers in this state. The kubelet ignores a hook's status;
    /// people and `kubectl sidekiq drain` read it: 200 drained, 504 the budget passed first,
    /// 409 nothing the probe can quiet, 503 no outcome yet (ask again).
    pub fn http_status(self) -> u16 {
        match self {
            State::Drained => 200,
            State::BudgetExhausted => 504,
            State::Unquietable => 409,
            State::Draining => 503,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one process stands in a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessDrain {
    /// Not quiet yet, or still running jobs.
    Waiting,
    /// Quiet with no job running: done.
    Idle,
    /// Left the `processes` set, or replaced by a process the pod started after its last
    /// beat (a restarted container): done.
    Gone,
    /// Its hash expired: it stopped beating, nothing more to wait for.
    Expired,
    /// Runs embedded (e.g. inside Puma) and ignores remote signals.
    Embedded,
}

impl ProcessDrain {
    /// Whether nothing more is to be waited for.
    pub fn done(self) -> bool {
        matches!(
            self,
            ProcessDrain::Idle | ProcessDrain::Gone | ProcessDrain::Expired
        )
    }
}

/// The progress of one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessProgress {
    /// The identity.
    pub identity: String,
    /// Where it stands.
    pub status: ProcessDrain,
    /// `quiet` at the last read, if readable.
    pub quiet: Option<bool>,
    /// `busy` at the last read, if readable.
    pub busy: Option<u32>,
    /// The running jobs as `Class (jid) 12s`, longest first, if the work hash was read.
    pub jobs: Vec<String>,
}

/// One drain, from the first `/drain` call to its outcome.
#[derive(Debug, Clone)]
pub struct Drain {
    started: Duration,
    started_wall: f64,
    /// Wall-clock time of the last `/drain` call: a process started before it is the drain's
    /// to quiet (see [`Drain::successor`]).
    last_asked_wall: f64,
    budget: Duration,
    signalled: BTreeMap<String, Duration>,
    involved: BTreeSet<String>,
    state: State,
    finished_after: Option<Duration>,
    message: String,
    progress: Vec<ProcessProgress>,
    /// The last failed push of `TSTP` (a read-only replica, an ACL), until one succeeds.
    /// `(process, error)`.
    push_error: Option<(String, String)>,
    /// When the budget ran out while Redis was unreachable: for how long, why, and how old the
    /// progress is — the figures of the last read, which the outcome must not pass off as now.
    outage: Option<String>,
}

impl Drain {
    /// Starts a drain at `now` with `budget`. A `previous` drain's signals are remembered, so
    /// that calling `/drain` again does not signal processes twice.
    pub fn start(now: Now, budget: Duration, previous: Option<&Drain>) -> Self {
        Drain {
            started: now.mono,
            started_wall: now.wall,
            last_asked_wall: now.wall,
            budget,
            signalled: previous.map(|d| d.signalled.clone()).unwrap_or_default(),
            involved: BTreeSet::new(),
            state: State::Draining,
            finished_after: None,
            message: "waiting for the first read of Redis".to_owned(),
            progress: Vec::new(),
            push_error: None,
            outage: None,
        }
    }

    /// Where the drain stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the drain has an outcome.
    pub fn is_finished(&self) -> bool {
        self.state != State::Draining
    }

    /// Whether a finished drain no longer describes the pod: a process it never saw beats and
    /// is not quiet. Sidekiq was started again in the same pod after the drain — a liveness
    /// restart runs the preStop hook, and the pod lives on — and showing the old outcome
    /// would call a working pod drained.
    pub fn superseded(&self, tracker: &Tracker) -> bool {
        self.is_finished()
            && tracker
                .live()
                .any(|p| !p.quiet && !self.involved.contains(&p.identity))
    }

    /// The budget.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// What is left of the budget at `now` (zero once it has run out).
    pub fn time_left(&self, now: Now) -> Duration {
        self.budget
            .saturating_sub(now.mono.saturating_sub(self.started))
    }

    /// Wall-clock time the drain started.
    pub fn started_wall(&self) -> f64 {
        self.started_wall
    }

    /// Time since the start at `now`, or until the outcome once finished.
    pub fn elapsed(&self, now: Now) -> Duration {
        self.finished_after
            .unwrap_or_else(|| now.mono.saturating_sub(self.started))
    }

    /// What the drain is waiting for, or its outcome, in words.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The progress of each process at the last step.
    pub fn progress(&self) -> &[ProcessProgress] {
        &self.progress
    }

    /// The processes of this drain signalled so far (a previous drain's signals are
    /// remembered, not reported: those processes may be long gone).
    pub fn signalled_identities(&self) -> impl Iterator<Item = &str> {
        self.signalled
            .keys()
            .filter(|identity| self.involved.contains(*identity))
            .map(String::as_str)
    }

    /// Records a `/drain` call at `now` that joins this drain: every process running by then
    /// is one to quiet — the pod's own preStop, after a liveness restart's drain outlived its
    /// container, must quiet the Sidekiq that started since.
    pub fn asked_again(&mut self, now: Now) {
        self.last_asked_wall = self.last_asked_wall.max(now.wall);
    }

    /// Records that `TSTP` was pushed to `identity` at `now`.
    pub fn signalled(&mut self, identity: &str, now: Now) {
        self.signalled.insert(identity.to_owned(), now.mono);
        self.push_error = None;
    }

    /// Records that pushing `TSTP` to `identity` failed with `error` (free of secrets): the
    /// drain's message says so until a push succeeds. Returns whether this is news (another
    /// error than the last), so that a push failing on every poll is logged once.
    pub fn signal_failed(&mut self, identity: &str, error: &str) -> bool {
        // News is another error, whichever process it was for: a read-only replica refuses the
        // pushes to every process of a swarm alike.
        let news = self
            .push_error
            .as_ref()
            .is_none_or(|(_, last)| last != error);
        self.push_error = Some((identity.to_owned(), error.to_owned()));
        news
    }

    /// The message with the last failed push, when there is one.
    fn with_push_error(&mut self) {
        if let Some((identity, error)) = &self.push_error {
            self.message = format!(
                "{}; TSTP could not be pushed to {identity}: {error}",
                self.message
            );
        }
    }

    /// Looks at the tracker after a read at `now`, updates the drain, and returns the processes
    /// to signal (`TSTP`) now: those not quiet and not signalled, or whose signal has expired
    /// unread (Sidekiq's signal list lives 60 s).
    pub fn step(&mut self, tracker: &Tracker, now: Now) -> Vec<String> {
        if self.is_finished() {
            return Vec::new();
        }
        let elapsed = now.mono.saturating_sub(self.started);
        let out_of_time = elapsed >= self.budget;
        let redis = tracker.redis();
        let read_since_start = redis.last_read.is_some_and(|at| at >= self.started);
        if !read_since_start || redis.failing_since.is_some() {
            if let Some(error) = &redis.last_error {
                self.message = format!("{}, retrying: {error}", redis.failure());
            }
            if out_of_time {
                self.outage =
                    redis
                        .failing_since
                        .zip(redis.last_error.as_ref())
                        .map(|(since, error)| {
                            let last_ok = redis.last_ok.map_or_else(String::new, |ok| {
                                format!(", {} ago", secs(now.mono.saturating_sub(ok).as_secs_f64()))
                            });
                            format!(
                                "{} for the last {} ({error}); as of the last read{last_ok}",
                                redis.failure(),
                                secs(now.mono.saturating_sub(since).as_secs_f64())
                            )
                        });
                self.finish(Outcome::BudgetExhausted, elapsed);
            }
            return Vec::new();
        }

        let resignal_after = Duration::from_secs(SIGNAL_TTL_SECS);
        let mut signal = Vec::new();
        let mut progress = Vec::new();
        let mut seen = BTreeSet::new();
        for tracked in tracker.processes() {
            let identity = &tracked.identity;
            if self.successor(tracked, tracker) {
                continue;
            }
            seen.insert(identity.clone());
            self.involved.insert(identity.clone());
            let needs_signal = |quiet: bool| {
                !quiet
                    && self
                        .signalled
                        .get(identity)
                        .is_none_or(|at| now.mono.saturating_sub(*at) >= resignal_after)
            };
            let (status, quiet, busy) = match &tracked.state {
                // A restarted container's dead process, whose record lingers: never to be
                // quiet, and its jobs went with it (Sidekiq's fetch puts them back or loses
                // them; waiting changes neither).
                ProcessState::Live(p) if tracker.superseded(p, now) => {
                    (ProcessDrain::Gone, None, None)
                }
                ProcessState::Live(p) if p.quiet && p.busy == 0 => {
                    (ProcessDrain::Idle, Some(true), Some(0))
                }
                ProcessState::Live(p) if p.info.embedded && !p.quiet => {
                    (ProcessDrain::Embedded, Some(false), Some(p.busy))
                }
                ProcessState::Live(p) => {
                    if needs_signal(p.quiet) {
                        signal.push(identity.clone());
                    }
                    (ProcessDrain::Waiting, Some(p.quiet), Some(p.busy))
                }
                // Gone as far as waiting goes; quieted all the same, for one that was only
                // stopped (SIGSTOP, a long GC pause) and resumes while the signal lasts: a
                // spare TSTP to a dead process's list expires unread.
                ProcessState::Expired if tracker.expired_for_good(tracked, now) => {
                    if needs_signal(false) {
                        signal.push(identity.clone());
                    }
                    (ProcessDrain::Expired, None, None)
                }
                // Its hash expired while Redis was away: it may well run, and beats again soon.
                // Quieted all the same (a spare TSTP is harmless), and waited for.
                ProcessState::Expired => {
                    if needs_signal(false) {
                        signal.push(identity.clone());
                    }
                    (ProcessDrain::Waiting, None, None)
                }
                // Its records cannot be read, but the signal list can still be written, and
                // leaving `processes` is still visible.
                ProcessState::Unreadable(_) => {
                    if needs_signal(false) {
                        signal.push(identity.clone());
                    }
                    (ProcessDrain::Waiting, None, None)
                }
            };
            let jobs = match (&tracked.work, status) {
                (Some(Ok(work)), ProcessDrain::Waiting | ProcessDrain::Embedded) => work
                    .jobs
                    .iter()
                    .map(|job| {
                        format!(
                            "{} ({}) {}",
                            job.class,
                            job.jid.as_deref().unwrap_or("no jid"),
                            secs(job.elapsed(now.wall))
                        )
                    })
                    .collect(),
                _ => Vec::new(),
            };
            progress.push(ProcessProgress {
                identity: identity.clone(),
                status,
                quiet,
                busy,
                jobs,
            });
        }
        for identity in self.involved.difference(&seen) {
            progress.push(ProcessProgress {
                identity: identity.clone(),
                status: ProcessDrain::Gone,
                quiet: None,
                busy: None,
                jobs: Vec::new(),
            });
        }
        progress.sort_by(|a, b| a.identity.cmp(&b.identity));
        self.progress = progress;

        let waiting = self
            .progress
            .iter()
            .filter(|p| p.status == ProcessDrain::Waiting)
            .count();
        let embedded = self
            .progress
            .iter()
            .any(|p| p.status == ProcessDrain::Embedded);
        if waiting == 0 {
            let outcome = if embedded {
                Outcome::Unquietable
            } else {
                Outcome::Drained
            };
            self.finish(outcome, elapsed);
            // Nothing is waited for, but a process stopped past its hash's expiry is still
            // quieted on the way out.
            return signal;
        }
        if out_of_time {
            self.finish(Outcome::BudgetExhausted, elapsed);
            return Vec::new();
        }
        self.message = format!(
            "waiting for {waiting} of {} process{}: {}",
            self.progress.len(),
            if self.progress.len() == 1 { "" } else { "es" },
            self.describe(|p| p.status == ProcessDrain::Waiting)
        );
        self.with_push_error();
        signal
    }

    /// Whether `tracked` is not the drain's to quiet: a process it has not seen, started after
    /// the last `/drain` call, that no process it had seen has beaten since. That is a
    /// successor: a liveness restart runs the preStop hook, and when the kubelet gives up on the
    /// hook before the budget ends (a grace period kept below the computed one), the drain
    /// outlives the container. Quieting the new Sidekiq would leave the pod live and idle for
    /// good; the drain ends on the processes it was asked for, and [`Drain::superseded`] then
    /// reports the new one. A swarm's child restarted beside its siblings is told apart by
    /// their heartbeats after its start, and quieted with them from the next beat on.
    ///
    /// Redis cannot tell that case from a pod deleted while its container, restarted after an
    /// OOM kill, boots a Sidekiq that first beats during the drain: that one too is left
    /// working, so SIGTERM finds it unquiet and jobs it fetched meanwhile get its `-t` and are
    /// pushed back if unfinished — re-run, where the other case would idle a pod for good.
    fn successor(&self, tracked: &Tracked, tracker: &Tracker) -> bool {
        let Some(started) = tracked.started_at else {
            return false;
        };
        !self.involved.contains(&tracked.identity)
            && started > self.last_asked_wall
            && !self.involved.iter().any(|seen| {
                tracker
                    .get(seen)
                    .and_then(|t| t.last_beat)
                    .is_some_and(|beat| beat > started)
            })
    }

    fn finish(&mut self, outcome: Outcome, elapsed: Duration) {
        self.finished_after = Some(elapsed);
        let after = dur(elapsed);
        let (state, message) = match outcome {
            Outcome::Drained if self.progress.is_empty() => (
                State::Drained,
                format!("drained after {after}: no Sidekiq process of this pod in Redis"),
            ),
            Outcome::Drained => (
                State::Drained,
                format!(
                    "drained after {after}: every process is quiet with no job running, or gone ({})",
                    self.describe(|_| true)
                ),
            ),
            Outcome::Unquietable => (
                State::Unquietable,
                format!(
                    "gave up after {after}: embedded Sidekiq ignores remote signals and cannot be quieted from Redis ({}); it stops with its host server",
                    self.describe(|p| p.status == ProcessDrain::Embedded)
                ),
            ),
            Outcome::BudgetExhausted if self.progress.is_empty() => (
                State::BudgetExhausted,
                format!(
                    "drain budget {} exhausted after {after} without a successful read of Redis: {}",
                    dur(self.budget),
                    self.message
                ),
            ),
            Outcome::BudgetExhausted => (
                State::BudgetExhausted,
                format!(
                    "drain budget {} exhausted after {after}; {}still running: {}. On SIGTERM Sidekiq waits its -t timeout, then pushes unfinished jobs back to their queues",
                    dur(self.budget),
                    self.outage
                        .take()
                        .map(|outage| format!("{outage}, "))
                        .unwrap_or_default(),
                    self.describe(|p| !p.status.done())
                ),
            ),
        };
        self.state = state;
        self.message = message;
        if state != State::Drained {
            self.with_push_error();
        }
    }

    fn describe(&self, which: impl Fn(&ProcessProgress) -> bool) -> String {
        let parts: Vec<String> = self
            .progress
            .iter()
            .filter(|p| which(p))
            .map(|p| {
                let state = match (p.status, p.quiet, p.busy) {
                    (ProcessDrain::Gone, ..) => "gone".to_owned(),
                    (ProcessDrain::Expired, ..) => "expired".to_owned(),
                    (ProcessDrain::Embedded, ..) => "embedded".to_owned(),
                    (_, Some(quiet), Some(busy)) => format!(
                        "{}, {busy} busy",
                        if quiet { "quiet" } else { "not quiet yet" }
                    ),
                    // Its records cannot be read, or its hash expired while Redis was away
                    // and it is awaited all the same: either way, nothing to show of it.
                    _ => "state unknown".to_owned(),
                };
                if p.jobs.is_empty() {
                    format!("{} {state}", p.identity)
                } else {
                    format!("{} {state} [{}]", p.identity, p.jobs.join(", "))
                }
            })
            .collect();
        parts.join("; ")
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Drained,
    BudgetExhausted,
    Unquietable,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::observe::{RawProcess, Scope};

    fn at(secs: f64) -> Now {
        Now {
            wall: 1_000.0 + secs,
            mono: Duration::from_secs_f64(secs),
        }
    }

    fn process(identity: &str, quiet: bool, busy: u32, embedded: bool) -> RawProcess {
        let info = format!(
            r#"{{"hostname":"w-0","pid":1,"version":"7.3.2","embedded":{embedded},"concurrency":3}}"#
        );
        RawProcess {
            identity: identity.into(),
            member: Ok(true),
            hash: Ok(vec![
                (b"info".to_vec(), info.into_bytes()),
                (b"busy".to_vec(), busy.to_string().into_bytes()),
                (b"beat".to_vec(), b"1000.5".to_vec()),
                (b"quiet".to_vec(), quiet.to_string().into_bytes()),
            ]),
            work: Vec::new(),
        }
    }

    fn gone(identity: &str) -> RawProcess {
        RawProcess {
            member: Ok(false),
            ..process(identity, true, 3, false)
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(60))
    }

    /// A tracker that has read `raw`, the one member of `processes`, at `now`.
    fn tracking(now: Now, raw: RawProcess) -> Tracker {
        let mut t = tracker();
        let ids = [raw.identity.clone()];
        t.ingest(now, Some(&ids), vec![raw]);
        t
    }

    #[test]
    fn states_read_back_from_their_names() {
        for state in [
            State::Draining,
            State::Drained,
            State::BudgetExhausted,
            State::Unquietable,
        ] {
            assert_eq!(State::from_name(state.as_str()), Some(state));
        }
        assert_eq!(State::from_name(crate::probe::report::NEVER_DRAINED), None);
    }

    #[test]
    fn signals_once_then_waits_for_quiet_and_idle() {
        let mut t = tracker();
        let mut d = Drain::start(at(0.0), Duration::from_secs(100), None);
        // No read since the start: nothing decided.
        assert!(d.step(&t, at(0.0)).is_empty());
        assert_eq!(d.state(), State::Draining);

        let ids = ["w-0:1:aa".to_owned()];
        t.ingest(
            at(0.1),
            Some(&ids),
            vec![process("w-0:1:aa", false, 2, false)],
        );
        assert_eq!(d.step(&t, at(0.1)), ["w-0:1:aa"]);
        d.signalled("w-0:1:aa", at(0.1));
        t.ingest(at(5.0), None, vec![process("w-0:1:aa", false, 2, false)]);
        assert!(d.step(&t, at(5.0)).is_empty(), "signalled only once");
        t.ingest(at(10.0), None, vec![process("w-0:1:aa", true, 1, false)]);
        assert!(d.step(&t, at(10.0)).is_empty());
        assert_eq!(d.state(), State::Draining);
        assert_eq!(
            d.message(),
            "waiting for 1 of 1 process: w-0:1:aa quiet, 1 busy"
        );
        t.ingest(at(15.0), None, vec![process("w-0:1:aa", true, 0, false)]);
        d.step(&t, at(15.0));
        assert_eq!(d.state(), State::Drained);
        assert_eq!(d.elapsed(at(99.0)), Duration::from_secs(15));
        assert_eq!(
            d.message(),
            "drained after 15s: every process is quiet with no job running, or gone (w-0:1:aa quiet, 0 busy)"
        );
    }

    #[test]
    fn a_finished_drain_is_superseded_by_a_new_unquiet_process_only() {
        let mut t = tracking(at(0.0), process("w-0:1:aa", true, 0, false));
        let mut d = Drain::start(at(0.0), Duration::from_secs(100), None);
        assert!(!d.superseded(&t), "still draining");
        d.step(&t, at(0.0));
        assert_eq!(d.state(), State::Drained);
        assert!(!d.superseded(&t), "the drained process itself");

        // Sidekiq restarted in the pod (a liveness restart): a new identity.
        let restarted = ["w-0:1:aa".to_owned(), "w-0:1:bb".to_owned()];
        t.ingest(
            at(30.0),
            Some(&restarted),
            vec![
                process("w-0:1:aa", true, 0, false),
                process("w-0:1:bb", true, 0, false),
            ],
        );
        assert!(
            !d.superseded(&t),
            "a new process already quiet is drained too"
        );
        t.ingest(
            at(35.0),
            Some(&restarted),
            vec![
                process("w-0:1:aa", true, 0, false),
                process("w-0:1:bb", false, 0, false),
            ],
        );
        assert!(d.superseded(&t));
    }

    /// A container restarted (an OOM kill): the dead process's record lingers up to 60 s,
    /// never quiet. Once it is more than two and a half beats late and the new process started
    /// after its last beat, it is gone; before, it is waited for like any other.
    #[test]
    fn a_dead_process_replaced_by_a_restart_is_not_waited_for() {
        let mut t = tracker();
        let ids = ["w-0:1:aa".to_owned(), "w-0:1:bb".to_owned()];
        // aa beat last at 1000.5 and was killed; bb started at 1005 and is quiet.
        let read = |t: &mut Tracker, secs: f64| {
            t.ingest(
                at(secs),
                Some(&ids),
                vec![
                    beating("w-0:1:aa", false, 0, 1000.5, 900.0),
                    beating("w-0:1:bb", true, 0, 1000.0 + secs, 1005.0),
                ],
            );
        };
        let mut d = Drain::start(at(10.0), Duration::from_secs(100), None);
        read(&mut t, 10.0);
        assert_eq!(
            d.step(&t, at(10.0)),
            ["w-0:1:aa"],
            "9.5 s late: may be alive"
        );
        d.signalled("w-0:1:aa", at(10.0));
        assert_eq!(d.state(), State::Draining);
        read(&mut t, 26.0);
        assert!(d.step(&t, at(26.0)).is_empty());
        assert_eq!(d.state(), State::Drained, "{}", d.message());
        assert_eq!(d.progress()[0].identity, "w-0:1:aa");
        assert_eq!(d.progress()[0].status, ProcessDrain::Gone);
        // Late alone is not replaced: without a successor, it is waited for.
        let mut alone = tracker();
        alone.ingest(
            at(26.0),
            Some(&ids[..1]),
            vec![beating("w-0:1:aa", false, 0, 1000.5, 900.0)],
        );
        let mut d = Drain::start(at(26.0), Duration::from_secs(100), None);
        assert_eq!(d.step(&alone, at(26.0)), ["w-0:1:aa"]);
        assert_eq!(d.progress()[0].status, ProcessDrain::Waiting);
    }

    fn beating(identity: &str, quiet: bool, busy: u32, beat: f64, started_at: f64) -> RawProcess {
        let info = format!(
            r#"{{"hostname":"w-0","pid":1,"version":"7.3.2","concurrency":3,"started_at":{started_at}}}"#
        );
        RawProcess {
            hash: Ok(vec![
                (b"info".to_vec(), info.into_bytes()),
                (b"busy".to_vec(), busy.to_string().into_bytes()),
                (b"beat".to_vec(), beat.to_string().into_bytes()),
                (b"quiet".to_vec(), quiet.to_string().into_bytes()),
            ]),
            ..process(identity, quiet, busy, false)
        }
    }

    /// A drain started at 0 over `w-0:1:aa`, busy with two jobs, signalled at its first read.
    fn draining_a_busy_process() -> (Tracker, Drain) {
        let mut t = tracker();
        let mut d = Drain::start(at(0.0), Duration::from_secs(300), None);
        let old = ["w-0:1:aa".to_owned()];
        t.ingest(
            at(0.1),
            Some(&old),
            vec![beating("w-0:1:aa", false, 2, 1000.0, 900.0)],
        );
        assert_eq!(d.step(&t, at(0.1)), ["w-0:1:aa"]);
        d.signalled("w-0:1:aa", at(0.1));
        (t, d)
    }

    /// A read at `secs` after the container restarted: aa was killed after its beat at 1001
    /// (quiet, its record left busy), bb started at 1012 and beats.
    fn read_after_a_restart(t: &mut Tracker, secs: f64) {
        let both = ["w-0:1:aa".to_owned(), "w-0:1:bb".to_owned()];
        t.ingest(
            at(secs),
            Some(&both),
            vec![
                beating("w-0:1:aa", true, 2, 1001.0, 900.0),
                beating("w-0:1:bb", false, 0, 1000.0 + secs, 1012.0),
            ],
        );
    }

    /// The kubelet gave up on the preStop hook of a liveness restart (a grace period below the
    /// budget) and the container started again while the drain ran: the new Sidekiq is not
    /// quieted, nor waited for, and the drain ends on the dead one's record.
    #[test]
    fn a_sidekiq_restarted_while_the_drain_runs_is_left_working() {
        let (mut t, mut d) = draining_a_busy_process();
        let read = read_after_a_restart;
        read(&mut t, 15.0);
        assert!(d.step(&t, at(15.0)).is_empty(), "bb is not quieted");
        assert_eq!(
            d.state(),
            State::Draining,
            "aa may still be alive: {}",
            d.message()
        );
        assert_eq!(
            d.message(),
            "waiting for 1 of 1 process: w-0:1:aa quiet, 2 busy"
        );
        read(&mut t, 30.0);
        assert!(d.step(&t, at(30.0)).is_empty(), "bb is not quieted");
        assert_eq!(d.state(), State::Drained, "{}", d.message());
        assert_eq!(d.progress().len(), 1, "{:?}", d.progress());
        assert_eq!(d.progress()[0].status, ProcessDrain::Gone);
        assert!(d.superseded(&t), "the status shows the working successor");
    }

    /// After a liveness restart's drain outlived its container, the pod is deleted: the
    /// kubelet's preStop joins the running drain, and the Sidekiq started since is quieted.
    #[test]
    fn a_drain_asked_again_quiets_a_sidekiq_started_before_the_call() {
        let (mut t, mut d) = draining_a_busy_process();
        let read = read_after_a_restart;
        read(&mut t, 15.0);
        assert!(d.step(&t, at(15.0)).is_empty(), "a successor so far");
        d.asked_again(at(16.0));
        read(&mut t, 17.0);
        assert_eq!(d.step(&t, at(17.0)), ["w-0:1:bb"]);
        assert_eq!(d.state(), State::Draining);
    }

    /// A swarm's child restarted during the drain: its siblings beat after it started, so it
    /// is quieted with them.
    #[test]
    fn a_swarm_child_started_during_the_drain_is_quieted_once_a_sibling_beats() {
        let (mut t, mut d) = draining_a_busy_process();
        let both = ["w-0:1:aa".to_owned(), "w-0:2:bb".to_owned()];
        let read = |t: &mut Tracker, secs: f64, aa_beat: f64| {
            t.ingest(
                at(secs),
                Some(&both),
                vec![
                    beating("w-0:1:aa", true, 2, aa_beat, 900.0),
                    beating("w-0:2:bb", false, 0, 1000.0 + secs, 1005.0),
                ],
            );
        };
        read(&mut t, 6.0, 1000.0);
        assert!(
            d.step(&t, at(6.0)).is_empty(),
            "no sibling has beaten since bb started"
        );
        read(&mut t, 11.0, 1010.0);
        assert_eq!(d.step(&t, at(11.0)), ["w-0:2:bb"]);
        assert_eq!(d.state(), State::Draining);
    }

    #[test]
    fn a_hash_expired_during_a_redis_outage_is_quieted_and_waited_for() {
        let mut t = tracker();
        let ids = ["w-0:1:aa".to_owned()];
        // Beat at 1000.5 (wall), seen live; then Redis is away for 68 s.
        t.ingest(
            at(0.5),
            Some(&ids),
            vec![process("w-0:1:aa", false, 1, false)],
        );
        let mut d = Drain::start(at(1.0), Duration::from_secs(300), None);
        t.record_failure(at(1.0), "connection refused".into());
        assert!(
            d.step(&t, at(1.0)).is_empty(),
            "nothing decided while Redis is away"
        );
        let expired = RawProcess {
            hash: Ok(Vec::new()),
            ..process("w-0:1:aa", false, 1, false)
        };
        t.ingest(at(69.0), None, vec![expired]);
        // Not "drained": the process could not beat, and is quieted all the same.
        assert_eq!(d.step(&t, at(69.0)), ["w-0:1:aa"]);
        assert_eq!(d.state(), State::Draining);
        assert_eq!(d.progress()[0].status, ProcessDrain::Waiting);
    }

    #[test]
    fn a_stale_busy_count_of_a_process_that_left_is_not_waited_on() {
        let mut t = tracking(at(0.0), process("w-0:1:aa", true, 3, false));
        let mut d = Drain::start(at(0.0), Duration::from_secs(100), None);
        t.ingest(at(0.5), None, vec![process("w-0:1:aa", true, 3, false)]);
        assert!(d.step(&t, at(0.5)).is_empty(), "already quiet: no signal");
        t.ingest(at(1.0), None, vec![gone("w-0:1:aa")]);
        d.step(&t, at(1.0));
        assert_eq!(d.state(), State::Drained);
        assert_eq!(d.progress()[0].status, ProcessDrain::Gone);
    }

    /// A Redis restarted without its data (or failed over to a replica behind) shows neither the
    /// member nor the hash of a Sidekiq that still runs its job: it beats again soon.
    #[test]
    fn a_process_that_vanished_with_its_hash_is_waited_for_not_taken_as_gone() {
        let ids = ["w-0:1:aa".to_owned()];
        let mut t = tracking(at(0.5), process("w-0:1:aa", true, 1, false));
        let mut d = Drain::start(at(0.5), Duration::from_secs(300), None);
        d.step(&t, at(0.5));
        let vanished = RawProcess {
            member: Ok(false),
            hash: Ok(Vec::new()),
            ..process("w-0:1:aa", true, 1, false)
        };
        t.ingest(at(3.0), Some(&[]), vec![vanished.clone()]);
        d.step(&t, at(3.0));
        assert_eq!(d.state(), State::Draining);
        assert_eq!(d.progress()[0].status, ProcessDrain::Waiting);
        assert_eq!(
            d.message(),
            "waiting for 1 of 1 process: w-0:1:aa state unknown"
        );
        // Its next beat writes it back, still running the job; then the job ends.
        t.ingest(
            at(8.0),
            Some(&ids),
            vec![process("w-0:1:aa", true, 1, false)],
        );
        d.step(&t, at(8.0));
        assert_eq!(d.state(), State::Draining);
        t.ingest(at(20.0), None, vec![process("w-0:1:aa", true, 0, false)]);
        d.step(&t, at(20.0));
        assert_eq!(d.state(), State::Drained);

        // One that never comes back is gone once its beat is 60 s old.
        let mut t = tracker();
        t.ingest(
            at(0.5),
            Some(&ids),
            vec![process("w-0:1:aa", true, 1, false)],
        );
        let mut d = Drain::start(at(0.5), Duration::from_secs(300), None);
        t.ingest(at(3.0), Some(&[]), vec![vanished.clone()]);
        d.step(&t, at(3.0));
        assert_eq!(d.state(), State::Draining);
        t.ingest(at(61.0), Some(&[]), vec![vanished]);
        d.step(&t, at(61.0));
        assert_eq!(d.state(), State::Drained);
        assert_eq!(d.progress()[0].status, ProcessDrain::Expired);
    }

    /// A process that stopped beating for longer than its hash lives (SIGSTOP, a long pause)
    /// is not waited for, but is quieted all the same: should it resume while the signal
    /// lasts, it does not go on fetching jobs.
    #[test]
    fn a_process_expired_for_good_is_quieted_though_not_waited_for() {
        let ids = ["w-0:1:aa".to_owned()];
        let mut t = tracking(at(0.5), process("w-0:1:aa", false, 1, false));
        let expired = RawProcess {
            hash: Ok(Vec::new()),
            ..process("w-0:1:aa", false, 1, false)
        };
        t.ingest(at(70.0), Some(&ids), vec![expired]);
        let mut d = Drain::start(at(70.0), Duration::from_secs(300), None);
        assert_eq!(d.step(&t, at(70.0)), vec!["w-0:1:aa".to_owned()]);
        assert_eq!(d.state(), State::Drained);
        assert_eq!(d.progress()[0].status, ProcessDrain::Expired);
    }

    #[test]
    fn a_budget_that_runs_out_during_an_outage_says_so_and_how_old_its_figures_are() {
        let mut t = tracker();
        let ids = ["w-0:1:aa".to_owned()];
        let mut d = Drain::start(at(0.0), Duration::from_secs(8), None);
        t.ingest(
            at(0.5),
            Some(&ids),
            vec![process("w-0:1:aa", true, 1, false)],
        );
        d.step(&t, at(0.5));
        t.record_failure(at(3.0), "connection refused".into());
        d.step(&t, at(3.0));
        t.record_failure(at(8.0), "connection refused".into());
        d.step(&t, at(8.0));
        assert_eq!(d.state(), State::BudgetExhausted);
        assert!(
            d.message().starts_with(
                "drain budget 8.0s exhausted after 8.0s; Redis unreachable for the last 5.0s \
                 (connection refused); as of the last read, 7.5s ago, still running: w-0:1:aa quiet, 1 busy."
            ),
            "{}",
            d.message()
        );
        // Only this drain's processes are reported as signalled.
        let mut again = Drain::start(at(9.0), Duration::from_secs(8), Some(&d));
        again.signalled("w-0:1:zz", at(9.0));
        assert_eq!(again.signalled_identities().count(), 0);
    }

    #[test]
    fn the_budget_ends_a_drain_with_what_still_runs() {
        let mut t = tracker();
        let ids = ["w-0:1:aa".to_owned()];
        let mut d = Drain::start(at(0.0), Duration::from_secs(8), None);
        t.ingest(
            at(0.2),
            Some(&ids),
            vec![process("w-0:1:aa", false, 1, false)],
        );
        d.step(&t, at(0.2));
        t.ingest(at(8.0), None, vec![process("w-0:1:aa", true, 1, false)]);
        assert!(d.step(&t, at(8.0)).is_empty());
        assert_eq!(d.state(), State::BudgetExhausted);
        assert!(
            d.message().starts_with(
                "drain budget 8.0s exhausted after 8.0s; still running: w-0:1:aa quiet, 1 busy."
            ),
            "{}",
            d.message()
        );
    }

    #[test]
    fn a_push_refused_on_every_poll_is_news_once_and_said_in_the_outcome() {
        let mut t = tracker();
        let ids = ["w-0:1:aa".to_owned()];
        let mut d = Drain::start(at(0.0), Duration::from_secs(8), None);
        t.ingest(
            at(0.2),
            Some(&ids),
            vec![process("w-0:1:aa", false, 1, false)],
        );
        assert_eq!(d.step(&t, at(0.2)), ids);
        let readonly = "READONLY You can't write against a read only replica.";
        assert!(d.signal_failed("w-0:1:aa", readonly));
        t.ingest(at(0.7), None, vec![process("w-0:1:aa", false, 1, false)]);
        d.step(&t, at(0.7));
        assert!(
            !d.signal_failed("w-0:1:aa", readonly),
            "the same error again"
        );
        assert!(
            !d.signal_failed("w-0:2:bb", readonly),
            "the same error for a sibling"
        );
        assert!(
            d.message().ends_with(&format!(
                "; TSTP could not be pushed to w-0:1:aa: {readonly}"
            )),
            "{}",
            d.message()
        );
        t.ingest(at(8.0), None, vec![process("w-0:1:aa", false, 1, false)]);
        d.step(&t, at(8.0));
        assert_eq!(d.state(), State::BudgetExhausted);
        assert!(d.message().contains("READONLY"), "{}", d.message());
    }

    #[test]
    fn embedded_processes_are_reported_not_waited_for() {
        let mut t = tracker();
        let ids = ["w-0:1:aa".to_owned()];
        let mut d = Drain::start(at(0.0), Duration::from_secs(100), None);
        t.ingest(
            at(0.2),
            Some(&ids),
            vec![process("w-0:1:aa", false, 1, true)],
        );
        assert!(d.step(&t, at(0.2)).is_empty());
        assert_eq!(d.state(), State::Unquietable);
        assert!(d.message().contains("embedded"), "{}", d.message());
    }

    #[test]
    fn an_empty_pod_is_drained_at_once_and_redis_errors_wait() {
        let mut t = tracker();
        let mut d = Drain::start(at(0.0), Duration::from_secs(5), None);
        t.record_failure(at(0.1), "connection refused".into());
        d.step(&t, at(0.1));
        assert_eq!(d.state(), State::Draining);
        assert_eq!(
            d.message(),
            "Redis unreachable, retrying: connection refused"
        );
        // Refused access and a key of the wrong type are not said to be Redis away.
        for (error, said) in [
            (
                "WRONGPASS invalid username-password pair",
                "Redis refuses access",
            ),
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                "Redis answers, but a key Sidekiq uses holds another type",
            ),
        ] {
            t.record_failure(at(0.2), error.into());
            d.step(&t, at(0.2));
            assert_eq!(d.message(), format!("{said}, retrying: {error}"));
        }
        t.ingest(at(1.0), Some(&[]), Vec::new());
        d.step(&t, at(1.0));
        assert_eq!(d.state(), State::Drained);
        assert_eq!(
            d.message(),
            "drained after 1.0s: no Sidekiq process of this pod in Redis"
        );

        let mut down = tracker();
        let mut d = Drain::start(at(0.0), Duration::from_secs(5), None);
        down.record_failure(at(5.0), "timed out".into());
        d.step(&down, at(5.0));
        assert_eq!(d.state(), State::BudgetExhausted);
        assert!(
            d.message().contains("without a successful read"),
            "{}",
            d.message()
        );
    }

    #[test]
    fn a_second_drain_remembers_signals_and_resignals_after_they_expire() {
        let mut t = tracker();
        let ids = ["w-0:1:aa".to_owned()];
        let mut first = Drain::start(at(0.0), Duration::from_secs(200), None);
        t.ingest(
            at(0.1),
            Some(&ids),
            vec![process("w-0:1:aa", false, 1, false)],
        );
        assert_eq!(first.step(&t, at(0.1)).len(), 1);
        first.signalled("w-0:1:aa", at(0.1));
        let mut second = Drain::start(at(1.0), Duration::from_secs(200), Some(&first));
        t.ingest(at(1.1), None, vec![process("w-0:1:aa", false, 1, false)]);
        assert!(second.step(&t, at(1.1)).is_empty());
        // The signal list expired unread (a wedged or restarting process): push again.
        t.ingest(at(61.0), None, vec![process("w-0:1:aa", false, 1, false)]);
        assert_eq!(second.step(&t, at(61.0)), ["w-0:1:aa"]);
    }
}
