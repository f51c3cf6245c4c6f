//! What a reader has learnt about Sidekiq's processes, and what it should read next.
//!
//! A [`Tracker`] follows the processes in its [`Scope`] — this pod's hostname for the probe,
//! every process for `kubectl sidekiq status --redis-url`. Reading is split so that the I/O
//! stays outside the core:
//!
//! 1. [`Tracker::plan`] says what to read: for each process it already follows, `SISMEMBER
//!    processes` (has it left?), `HGETALL <id>` and, when asked for, the work hash; plus
//!    `SMEMBERS processes` only when new processes may have appeared — when none is followed,
//!    after one left or expired, when one is late with its heartbeat, after a Redis error, and
//!    every `rediscover_after`.
//! 2. The reader sends that as one pipeline (one round trip) and, if `SMEMBERS` revealed new
//!    processes, a second one for them ([`Tracker::follow_up`]).
//! 3. [`Tracker::ingest`] (or [`Tracker::record_failure`]) updates the picture.
//!
//! So a probe costs one round trip and two commands per process (three with the work hash) in
//! the steady state, and never lists the whole `processes` set on every probe, which would make
//! the total work grow with the square of the fleet size.
//!
//! The tracker also remembers the last heartbeat of every process it has seen. Sidekiq's
//! process hash expires 60 s after its last beat, the default stale threshold, so a wedged
//! process would otherwise simply vanish instead of being reported as stale.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Now, pod};
use crate::sidekiq::records::{self, Process, RecordError, Work, WorkKey};

/// Field/value pairs of a hash as Redis returned them.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The processes a tracker follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Processes whose identity names this host: one pod.
    Host(String),
    /// Every process in the `processes` set.
    All,
}

impl Scope {
    /// Whether the process `identity` is in scope.
    pub fn includes(&self, identity: &str) -> bool {
        match self {
            Scope::Host(host) => pod::belongs_to(identity, host),
            Scope::All => true,
        }
    }
}

/// What to read in one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    /// Whether to read `SMEMBERS processes`.
    pub members: bool,
    /// The processes to read.
    pub processes: Vec<PlannedRead>,
}

impl ReadPlan {
    /// The number of commands the plan sends.
    pub fn commands(&self) -> usize {
        usize::from(self.members)
            + self
                .processes
                .iter()
                .map(|p| 2 + p.work.len())
                .sum::<usize>()
    }

    /// Whether the plan reads nothing (and needs no round trip).
    pub fn is_empty(&self) -> bool {
        !self.members && self.processes.is_empty()
    }
}

/// The reads for one process: `SISMEMBER processes <id>`, `HGETALL <id>`, and `HGETALL` of
/// each work hash listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRead {
    /// The identity.
    pub identity: String,
    /// The work hashes to read; empty for a light read.
    pub work: &'static [WorkKey],
}

/// A Redis error reply to one command of a pipeline, such as `WRONGTYPE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Redis refused to read {key}: {message}")]
pub struct ReplyError {
    /// The key.
    pub key: String,
    /// The error reply.
    pub message: String,
}

/// The replies for one [`PlannedRead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawProcess {
    /// The identity.
    pub identity: String,
    /// `SISMEMBER processes <id>`.
    pub member: Result<bool, ReplyError>,
    /// `HGETALL <id>` (empty once expired).
    pub hash: Result<Fields, ReplyError>,
    /// `HGETALL` of each work hash read.
    pub work: Vec<(WorkKey, Result<Fields, ReplyError>)>,
}

/// The replies to one [`ReadPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// `SMEMBERS processes`, if planned.
    pub members: Option<Vec<String>>,
    /// One entry per planned process, in plan order.
    pub processes: Vec<RawProcess>,
}

/// Why a followed process could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProcessError {
    /// Its hash is not a record Sidekiq writes.
    #[error("process record unreadable")]
    Record(#[source] RecordError),
    /// Redis refused to read it.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// What is known about one process.
#[derive(Debug, Clone)]
pub enum ProcessState {
    /// A member of `processes` with a readable hash.
    Live(Box<Process>),
    /// Still a member of `processes`, but its hash expired: it stopped beating without
    /// leaving (crashed, killed, or wedged for longer than the hash's TTL).
    Expired,
    /// A member whose records cannot be read.
    Unreadable(ProcessError),
}

/// One process the tracker follows.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The identity.
    pub identity: String,
    /// The latest state.
    pub state: ProcessState,
    /// Wall-clock time the tracker first saw it.
    pub first_seen: f64,
    /// The newest heartbeat seen (epoch seconds), kept after the hash expires.
    pub last_beat: Option<f64>,
    /// When it started (`info.started_at`), once seen.
    pub started_at: Option<f64>,
    /// The in-flight jobs at the last read that included them.
    pub work: Option<Result<Work, ReplyError>>,
    /// Wall-clock time of that read.
    pub work_read_at: Option<f64>,
    work_keys: &'static [WorkKey],
}

impl Tracked {
    /// The process, when its hash was readable.
    pub fn process(&self) -> Option<&Process> {
        match &self.state {
            ProcessState::Live(p) => Some(p),
            _ => None,
        }
    }
}

/// What the tracker knows about Redis itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedisHealth {
    /// Reads attempted (successful or not).
    pub reads: u64,
    /// Monotonic time of the last completed read, successful or not.
    pub last_read: Option<Duration>,
    /// Monotonic time of the last successful read.
    pub last_ok: Option<Duration>,
    /// Monotonic time of the first failure since the last success.
    pub failing_since: Option<Duration>,
    /// The last failure, for messages (never contains a password).
    pub last_error: Option<String>,
    /// Whether the last failure was Redis refusing the probe (credentials, ACL, database
    /// number) rather than not answering.
    pub refused: bool,
    /// Whether the last failure was a key Sidekiq uses holding another type (`WRONGTYPE`, a
    /// `processes` that someone `SET`): Redis answers, and Sidekiq's records are what is
    /// wrong — no outage, and nothing a restart of Sidekiq would fix.
    pub wrong_type: bool,
    /// Wall-clock time of the first failure since the last success.
    failing_since_wall: Option<f64>,
    /// The latest outages as wall-clock `(first failure, recovery)` intervals, oldest first.
    /// Sidekiq cannot beat while Redis is unreachable, so heartbeat ages leave them out.
    outages: Vec<(f64, f64)>,
}

/// How many past outages heartbeat ages account for: a Redis that failed more often than this
/// within one stale threshold is not a Redis to excuse a silent process with.
const OUTAGES_KEPT: usize = 64;

impl RedisHealth {
    /// Whether Redis has refused the reader from the first attempt (credentials, ACL, database
    /// number): the reader's settings are wrong, not Redis away, and waiting cannot fix them.
    pub fn refused_from_start(&self) -> bool {
        self.refused && self.last_ok.is_none()
    }

    /// What the last failure was, for messages: Redis not answering, refusing access (its TLS
    /// certificate not trusted among those), or answering with a key of the wrong type — faults
    /// with different fixes.
    pub fn failure(&self) -> &'static str {
        let error = self.last_error.as_deref().unwrap_or_default();
        if self.wrong_type {
            "Redis answers, but a key Sidekiq uses holds another type"
        } else if self.refused && is_certificate_error(error) {
            "Redis's TLS certificate is not trusted"
        } else if self.refused {
            "Redis refuses access"
        } else {
            "Redis unreachable"
        }
    }

    /// `Some(true)` if the last read succeeded, `Some(false)` if it failed, `None` before any.
    pub fn reachable(&self) -> Option<bool> {
        self.last_read.map(|_| self.failing_since.is_none())
    }

    /// How long Redis has been unreachable at `now`, if it is (a read failing on a key of
    /// the wrong type is Redis answering, not an outage).
    pub fn unreachable_for(&self, now: Now) -> Option<Duration> {
        self.failing_since
            .filter(|_| !self.wrong_type)
            .map(|since| now.mono.saturating_sub(since))
    }
}

/// Beats a process may miss before it counts as late: one missed beat is a slow Redis or a
/// busy Ruby VM; two and a half is a process that stopped, or was replaced.
pub const LATE_BEATS: f64 = 2.5;

/// The reader's picture of Sidekiq's processes in its scope; see the module documentation.
#[derive(Debug, Clone)]
pub struct Tracker {
    scope: Scope,
    tracked: BTreeMap<String, Tracked>,
    /// Members in scope that looked dead (expired before ever being seen alive, or replaced):
    /// not read on every probe, only again every `rediscover_after` and when a drain starts —
    /// a process that was stopped longer than its hash's TTL beats again once resumed.
    ignored: BTreeSet<String>,
    /// When the ignored members were last read again.
    last_recheck: Option<Duration>,
    /// A drain wants them read again now.
    recheck_forced: bool,
    rediscover_after: Duration,
    last_discovery: Option<Duration>,
    discovery_due: bool,
    /// When a process of the scope was last seen for the first time: siblings (a swarm's
    /// children, a second `sidekiq` of the pod) start within seconds of each other, so the
    /// members are listed on every read for `settling` after that.
    last_new: Option<Duration>,
    settling: Duration,
    redis: RedisHealth,
}

/// How long after a new process turns up the members are listed on every read, by default:
/// three beats of Sidekiq 7 (two of 6.x's would do), enough for a swarm to fork its children.
pub const SETTLING: Duration = Duration::from_secs(30);

impl Tracker {
    /// A tracker for `scope` that lists `processes` again at least every `rediscover_after`.
    pub fn new(scope: Scope, rediscover_after: Duration) -> Self {
        Tracker {
            scope,
            tracked: BTreeMap::new(),
            ignored: BTreeSet::new(),
            last_recheck: None,
            recheck_forced: false,
            rediscover_after,
            last_discovery: None,
            discovery_due: true,
            last_new: None,
            settling: SETTLING,
            redis: RedisHealth::default(),
        }
    }

    /// Lists the members on every read for `settling` after a new process turns up (default
    /// [`SETTLING`]).
    pub fn settling_for(mut self, settling: Duration) -> Self {
        self.settling = settling;
        self
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// What Redis did lately.
    pub fn redis(&self) -> &RedisHealth {
        &self.redis
    }

    /// The followed processes, by identity.
    pub fn processes(&self) -> impl Iterator<Item = &Tracked> {
        self.tracked.values()
    }

    /// The followed processes whose hash was readable.
    pub fn live(&self) -> impl Iterator<Item = &Process> {
        self.tracked.values().filter_map(Tracked::process)
    }

    /// Whether this pod's Sidekiq has left Redis, as far as the last read tells: Redis answered
    /// and no followed process beats or is unreadable (an unreadable hash may still be a
    /// running process; an expired one has stopped beating).
    pub fn sidekiq_gone(&self, now: Now) -> bool {
        self.redis.reachable() == Some(true)
            && self.tracked.values().all(|t| match t.state {
                ProcessState::Live(_) | ProcessState::Unreadable(_) => false,
                ProcessState::Expired => self.expired_for_good(t, now),
            })
    }

    /// Whether `tracked`, whose hash has expired, has stopped for good at `now`: its last beat
    /// is at least the hash's lifetime old, not counting the time Redis was unreachable. A hash
    /// that expired during a Redis outage belongs to a process that could not beat meanwhile,
    /// and that writes it again on its first beat once Redis is back.
    pub fn expired_for_good(&self, tracked: &Tracked, now: Now) -> bool {
        matches!(tracked.state, ProcessState::Expired)
            && tracked
                .last_beat
                .is_none_or(|beat| self.heartbeat_age(beat, now) >= records::RECORD_TTL_SECS as f64)
    }

    /// One followed process.
    pub fn get(&self, identity: &str) -> Option<&Tracked> {
        self.tracked.get(identity)
    }

    /// Makes the next plan list `processes`, e.g. when a drain starts and must see every
    /// process of the pod.
    pub fn force_discovery(&mut self) {
        self.discovery_due = true;
        self.recheck_forced = true;
    }

    /// Whether the members that looked dead are to be read again at `now`.
    fn recheck_due(&self, now: Now) -> bool {
        self.recheck_forced
            || self
                .last_recheck
                .is_none_or(|at| now.mono.saturating_sub(at) >= self.rediscover_after)
    }

    /// Whether the process `identity`, whose last heartbeat was `beat`, has been replaced:
    /// another readable process of the same scope started after it (the container restarted,
    /// say after an OOM kill, or a swarm forked a new child). Its hash lingers up to 60 s; it
    /// is gone, not wedged. A record claiming to have started after its own last beat does not
    /// replace itself.
    pub fn replaced_after(&self, identity: &str, beat: f64) -> bool {
        self.tracked
            .values()
            .filter(|t| t.identity != identity && t.process().is_some())
            .map(|t| t.started_at.unwrap_or(t.first_seen))
            .any(|started| started > beat)
    }

    /// Whether `process` is a dead one's record: late by more than [`LATE_BEATS`] beats while
    /// a process of the pod started after its last beat — the container restarted (an OOM
    /// kill, a SIGKILL) and the record lingers up to 60 s. Lateness is required as well: a
    /// swarm's sibling may start between two beats of a process that is alive.
    pub fn superseded(&self, process: &Process, now: Now) -> bool {
        self.late(process, now) && self.replaced_after(&process.identity, process.beat)
    }

    /// Whether `process` is more than [`LATE_BEATS`] beats late at `now`.
    fn late(&self, process: &Process, now: Now) -> bool {
        self.heartbeat_age(process.beat, now) > LATE_BEATS * process.layout.beat_secs() as f64
    }

    /// Seconds since `beat` at `now`, less the time Redis was unreachable since: a process
    /// cannot beat while Redis is away and must not be blamed for it, but one slow read must
    /// not make an old heartbeat young again either.
    pub fn heartbeat_age(&self, beat: f64, now: Now) -> f64 {
        let current = self.redis.failing_since_wall.map(|start| (start, now.wall));
        let down: f64 = self
            .redis
            .outages
            .iter()
            .copied()
            .chain(current)
            .map(|(start, end)| (end.min(now.wall) - start.max(beat)).max(0.0))
            .sum();
        (now.wall - beat - down).max(0.0)
    }

    /// What to read next; `with_work` adds the work hashes (for `/status` and drains).
    pub fn plan(&self, now: Now, with_work: bool) -> ReadPlan {
        let discovery_stale = self
            .last_discovery
            .is_none_or(|at| now.mono.saturating_sub(at) >= self.rediscover_after);
        // A process more than two and a half beats late may have been replaced by a restart
        // that left its record behind (SIGKILL, OOM): look for its successor now rather than
        // at the next periodic listing.
        let late = self.live().any(|p| self.late(p, now));
        let settling = self
            .last_new
            .is_some_and(|at| now.mono.saturating_sub(at) < self.settling);
        let members = self.scope == Scope::All
            || self.discovery_due
            || discovery_stale
            || late
            || settling
            || self.live().next().is_none();
        ReadPlan {
            members,
            processes: self
                .tracked
                .values()
                .map(|t| PlannedRead {
                    identity: t.identity.clone(),
                    work: if with_work { t.work_keys } else { &[] },
                })
                .collect(),
        }
    }

    /// The reads for processes in scope that `members` lists and the tracker does not follow:
    /// new ones, and, when a re-check is due at `now`, those that looked dead. `None` when
    /// there are none.
    pub fn follow_up(&self, members: &[String], with_work: bool, now: Now) -> Option<ReadPlan> {
        let recheck = self.recheck_due(now);
        let processes: Vec<PlannedRead> = members
            .iter()
            .filter(|id| self.scope.includes(id))
            .filter(|id| !self.tracked.contains_key(*id))
            .filter(|id| recheck || !self.ignored.contains(*id))
            .map(|id| PlannedRead {
                identity: id.clone(),
                work: if with_work { &WorkKey::ALL } else { &[] },
            })
            .collect();
        (!processes.is_empty()).then_some(ReadPlan {
            members: false,
            processes,
        })
    }

    /// Records a successful read: the `SMEMBERS` reply if it was read, and the replies for every
    /// process read (from one or two round trips).
    pub fn ingest(&mut self, now: Now, members: Option<&[String]>, processes: Vec<RawProcess>) {
        self.redis.reads += 1;
        self.redis.last_read = Some(now.mono);
        self.redis.last_ok = Some(now.mono);
        self.redis.failing_since = None;
        self.redis.refused = false;
        if let Some(start) = self.redis.failing_since_wall.take() {
            if self.redis.outages.len() == OUTAGES_KEPT {
                self.redis.outages.remove(0);
            }
            self.redis.outages.push((start, now.wall));
        }
        self.redis.last_error = None;

        if let Some(members) = members {
            let in_scope: BTreeSet<&str> = members
                .iter()
                .map(String::as_str)
                .filter(|id| self.scope.includes(id))
                .collect();
            self.ignored.retain(|id| in_scope.contains(id.as_str()));
            if self.recheck_due(now) {
                self.last_recheck = Some(now.mono);
                self.recheck_forced = false;
            }
            self.last_discovery = Some(now.mono);
            self.discovery_due = false;
        }

        for raw in processes {
            self.ingest_process(now, raw);
        }

        let replaced: Vec<String> = self
            .tracked
            .values()
            .filter(|t| matches!(t.state, ProcessState::Expired))
            .filter(|t| {
                t.last_beat
                    .is_none_or(|beat| self.replaced_after(&t.identity, beat))
            })
            .map(|t| t.identity.clone())
            .collect();
        for identity in replaced {
            self.tracked.remove(&identity);
            self.ignored.insert(identity);
        }
    }

    /// Whether `identity` is followed and was seen beating.
    fn seen_alive(&self, identity: &str) -> bool {
        self.tracked
            .get(identity)
            .is_some_and(|t| t.last_beat.is_some())
    }

    fn ingest_process(&mut self, now: Now, raw: RawProcess) {
        let identity = raw.identity;
        let member = match raw.member {
            Ok(member) => member,
            Err(error) => {
                self.set_state(now, &identity, ProcessState::Unreadable(error.into()));
                return;
            }
        };
        // A clean exit removes the member (and the work hash) and leaves the process hash to
        // expire. Member and hash gone together mean Redis lost its data (a restart without
        // persistence, a failover to a replica that lagged): a Sidekiq that still runs writes
        // both again at its next beat, so until then it counts as expired, not as gone — a
        // drain that took it for gone would let SIGTERM cut its running jobs.
        let vanished = !member && matches!(&raw.hash, Ok(fields) if fields.is_empty());
        let left = !member && !vanished;
        if left || (vanished && !self.seen_alive(&identity)) {
            // Its hash may linger for up to 60 s with the last `busy` and `quiet`, which must
            // not be believed.
            self.tracked.remove(&identity);
            self.ignored.remove(&identity);
            self.discovery_due = true;
            return;
        }
        let fields = match raw.hash {
            Ok(fields) => fields,
            Err(error) => {
                self.set_state(now, &identity, ProcessState::Unreadable(error.into()));
                return;
            }
        };
        if fields.is_empty() {
            match self.tracked.get_mut(&identity) {
                Some(t) if t.last_beat.is_some() => {
                    t.state = ProcessState::Expired;
                    // Whatever it ran is no longer known.
                    t.work = None;
                    t.work_read_at = None;
                    self.discovery_due = true;
                }
                // Never seen alive: a dead member from before this tracker started. Listing
                // again soon finds a successor; a member already known dead needs no hurry.
                _ => {
                    self.tracked.remove(&identity);
                    self.discovery_due |= self.ignored.insert(identity);
                }
            }
            return;
        }
        let state = match records::parse_process(&identity, &fields) {
            Ok(process) => ProcessState::Live(Box::new(process)),
            Err(error) => ProcessState::Unreadable(ProcessError::Record(error)),
        };
        let tracked = self.set_state(now, &identity, state);
        // A light read (no work hash) keeps the jobs read before, unless the process now runs
        // none: they have finished, and their run time must stop growing.
        if raw.work.is_empty() && tracked.process().is_some_and(|p| p.busy == 0) {
            tracked.work = Some(Ok(Work::default()));
            tracked.work_read_at = Some(now.wall);
        }
        if !raw.work.is_empty() {
            let mut merged: Result<Work, ReplyError> = Ok(Work::default());
            for (_, reply) in raw.work {
                match (reply, &mut merged) {
                    (Ok(fields), Ok(work)) => {
                        let part = records::parse_work(&fields);
                        work.jobs.extend(part.jobs);
                        work.errors.extend(part.errors);
                    }
                    (Err(error), _) => merged = Err(error),
                    (Ok(_), Err(_)) => {}
                }
            }
            if let Ok(work) = &mut merged {
                work.jobs.sort_by(|a, b| {
                    a.run_at
                        .total_cmp(&b.run_at)
                        .then_with(|| a.thread.cmp(&b.thread))
                });
            }
            tracked.work = Some(merged);
            tracked.work_read_at = Some(now.wall);
        }
    }

    fn set_state(&mut self, now: Now, identity: &str, state: ProcessState) -> &mut Tracked {
        self.ignored.remove(identity);
        if !self.tracked.contains_key(identity) && matches!(state, ProcessState::Live(_)) {
            self.last_new = Some(now.mono);
        }
        let tracked = self
            .tracked
            .entry(identity.to_owned())
            .or_insert_with(|| Tracked {
                identity: identity.to_owned(),
                state: ProcessState::Expired,
                first_seen: now.wall,
                last_beat: None,
                started_at: None,
                work: None,
                work_read_at: None,
                work_keys: &WorkKey::ALL,
            });
        if let ProcessState::Live(process) = &state {
            // A beat from the future (the node's clock stepped back) counts as now: kept as
            // is, it would keep a process that then stops beating young for as long.
            let beat = process.beat.min(now.wall);
            tracked.last_beat = Some(
                tracked
                    .last_beat
                    .map_or(beat, |b| b.max(beat).min(now.wall)),
            );
            tracked.started_at = process.info.started_at.or(tracked.started_at);
            tracked.work_keys = process.work_keys();
        }
        tracked.state = state;
        tracked
    }

    /// Records a failed read: Redis unreachable, timed out, or refusing the pipeline. `error`
    /// must already be free of secrets.
    pub fn record_failure(&mut self, now: Now, error: String) {
        self.redis.reads += 1;
        self.redis.last_read = Some(now.mono);
        let wrong_type = error.contains("WRONGTYPE");
        // Redis answered through the WRONGTYPE failures: an outage starts at the first failure
        // to reach it, not at them.
        if self.redis.wrong_type && !wrong_type {
            self.redis.failing_since = None;
            self.redis.failing_since_wall = None;
        }
        self.redis.failing_since.get_or_insert(now.mono);
        self.redis.failing_since_wall.get_or_insert(now.wall);
        self.redis.refused = refuses_access(&error);
        self.redis.wrong_type = wrong_type;
        self.redis.last_error = Some(error);
        // Processes may come and go while Redis is away: list them again on recovery.
        self.discovery_due = true;
    }
}

/// Whether a failed read's error is Redis refusing the probe's credentials or database (the
/// server's NOAUTH, WRONGPASS and NOPERM replies, a failed AUTH, a database number out of range),
/// or the probe refusing Redis's TLS certificate: settings a restart of Sidekiq cannot fix (a
/// certificate Ruby accepts under `VERIFY_NONE` or its own trust store may fail the probe's).
fn refuses_access(error: &str) -> bool {
    is_certificate_error(error)
        || [
            "NOAUTH",
            "WRONGPASS",
            "NOPERM",
            "AuthenticationFailed",
            "Password authentication failed",
            "invalid password",
            "DB index is out of range",
            "invalid DB index",
        ]
        .iter()
        .any(|marker| error.contains(marker))
}

/// Whether a failed read's error is the probe refusing Redis's TLS certificate (rustls).
pub fn is_certificate_error(error: &str) -> bool {
    error.contains("invalid peer certificate")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn now(wall: f64) -> Now {
        Now {
            wall,
            mono: Duration::from_secs_f64(wall - 1_000.0),
        }
    }

    fn info(host: &str, pid: u32, started: f64) -> String {
        format!(
            r#"{{"hostname":"{host}","started_at":{started},"pid":{pid},"tag":"","concurrency":3,"queues":["default"],"labels":[],"identity":"{host}:{pid}:ab","version":"7.3.2","embedded":false}}"#
        )
    }

    fn live(identity: &str, beat: f64, started: f64) -> RawProcess {
        let (host, pid) = {
            let id = records::Identity::parse(identity).unwrap();
            (id.host.to_owned(), id.pid)
        };
        RawProcess {
            identity: identity.into(),
            member: Ok(true),
            hash: Ok(vec![
                (b"info".to_vec(), info(&host, pid, started).into_bytes()),
                (b"busy".to_vec(), b"1".to_vec()),
                (b"beat".to_vec(), beat.to_string().into_bytes()),
                (b"quiet".to_vec(), b"false".to_vec()),
            ]),
            work: Vec::new(),
        }
    }

    fn expired(identity: &str) -> RawProcess {
        RawProcess {
            identity: identity.into(),
            member: Ok(true),
            hash: Ok(Vec::new()),
            work: Vec::new(),
        }
    }

    fn gone(identity: &str) -> RawProcess {
        RawProcess {
            member: Ok(false),
            ..live(identity, 1.0, 1.0)
        }
    }

    fn members(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn steady_state_reads_known_processes_without_listing_the_set() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(60));
        let first = t.plan(now(1_010.0), false);
        assert!(first.members && first.processes.is_empty());
        let all = members(&["w-0:1:aa", "w-1:2:bb", "w-0:3:cc"]);
        let follow = t.follow_up(&all, false, now(1_010.0)).unwrap();
        assert_eq!(
            follow
                .processes
                .iter()
                .map(|p| p.identity.as_str())
                .collect::<Vec<_>>(),
            ["w-0:1:aa", "w-0:3:cc"]
        );
        t.ingest(
            now(1_010.0),
            Some(&all),
            vec![
                live("w-0:1:aa", 1_009.0, 1_000.0),
                live("w-0:3:cc", 1_009.5, 1_000.0),
            ],
        );
        // For SETTLING after a new process, the set is listed on every read: a sibling (a
        // swarm's next child) may still turn up.
        assert!(t.plan(now(1_020.0), false).members);
        t.ingest(
            now(1_040.0),
            None,
            vec![
                live("w-0:1:aa", 1_039.0, 1_000.0),
                live("w-0:3:cc", 1_039.5, 1_000.0),
            ],
        );
        let steady = t.plan(now(1_041.0), false);
        assert!(!steady.members);
        assert_eq!(steady.commands(), 4);
        assert!(t.follow_up(&all, false, now(1_041.0)).is_none());
        // With the work hash: `:work` only, since the version (7.3.2) is stated.
        assert_eq!(t.plan(now(1_041.0), true).commands(), 6);
        // Rediscovery once the interval has passed.
        assert!(t.plan(now(1_071.0), false).members);
    }

    #[test]
    fn a_beat_from_the_future_is_remembered_as_now() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(300));
        t.ingest(
            now(1_010.0),
            Some(&members(&["w-0:1:aa"])),
            vec![live("w-0:1:aa", 4_610.0, 1_000.0)],
        );
        assert_eq!(t.get("w-0:1:aa").unwrap().last_beat, Some(1_010.0));
    }

    #[test]
    fn a_sibling_that_starts_seconds_later_is_found() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(300));
        t.ingest(
            now(1_010.0),
            Some(&members(&["w-0:1:aa"])),
            vec![live("w-0:1:aa", 1_009.0, 1_000.0)],
        );
        // A swarm forks its next child: the next reads still list the set.
        assert!(t.plan(now(1_015.0), false).members);
        let both = members(&["w-0:1:aa", "w-0:2:bb"]);
        let follow = t.follow_up(&both, false, now(1_015.0)).unwrap();
        assert_eq!(follow.processes[0].identity, "w-0:2:bb");
        t.ingest(
            now(1_015.0),
            Some(&both),
            vec![
                live("w-0:1:aa", 1_014.0, 1_000.0),
                live("w-0:2:bb", 1_014.5, 1_013.0),
            ],
        );
        assert_eq!(t.live().count(), 2);
    }

    #[test]
    fn a_late_heartbeat_triggers_discovery() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(600));
        t.ingest(
            now(1_010.0),
            Some(&members(&["w-0:1:aa"])),
            vec![live("w-0:1:aa", 1_009.0, 1_000.0)],
        );
        t.ingest(now(1_040.0), None, vec![live("w-0:1:aa", 1_039.0, 1_000.0)]);
        // 7.x beats every 10 s: 25 s without one is late.
        assert!(!t.plan(now(1_063.0), false).members);
        assert!(t.plan(now(1_065.0), false).members);
    }

    #[test]
    fn sidekiq_is_gone_once_redis_shows_no_process_that_may_run() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(600));
        assert!(!t.sidekiq_gone(now(1_000.0)), "nothing read yet");
        let all = members(&["w-0:1:aa", "w-0:2:bb"]);
        t.ingest(
            now(1_010.0),
            Some(&all),
            vec![live("w-0:1:aa", 1_009.0, 1_000.0), expired("w-0:2:bb")],
        );
        assert!(!t.sidekiq_gone(now(1_010.0)), "one still beats");
        t.ingest(
            now(1_015.0),
            None,
            vec![gone("w-0:1:aa"), expired("w-0:2:bb")],
        );
        assert!(
            t.sidekiq_gone(now(1_015.0)),
            "it left, and the other was never seen alive"
        );
    }

    #[test]
    fn a_hash_that_expired_while_redis_was_away_is_no_proof_of_death() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(600));
        let all = members(&["w-0:1:aa"]);
        t.ingest(
            now(1_010.0),
            Some(&all),
            vec![live("w-0:1:aa", 1_009.0, 1_000.0)],
        );
        // Redis is away for 68 s; the process cannot beat, and its hash expires meanwhile.
        t.record_failure(now(1_012.0), "connection refused".into());
        t.ingest(now(1_080.0), None, vec![expired("w-0:1:aa")]);
        let tracked = t.get("w-0:1:aa").unwrap();
        assert!(matches!(tracked.state, ProcessState::Expired));
        assert!(!t.expired_for_good(tracked, now(1_081.0)));
        assert!(!t.sidekiq_gone(now(1_081.0)));
        // Without an outage, an expired hash means the process stopped 60 s ago.
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(600));
        t.ingest(
            now(1_010.0),
            Some(&all),
            vec![live("w-0:1:aa", 1_009.0, 1_000.0)],
        );
        t.ingest(now(1_070.0), None, vec![expired("w-0:1:aa")]);
        assert!(t.expired_for_good(t.get("w-0:1:aa").unwrap(), now(1_070.0)));
        assert!(t.sidekiq_gone(now(1_070.0)));
    }

    #[test]
    fn a_process_that_left_is_forgotten_and_triggers_discovery() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(600));
        let all = members(&["w-0:1:aa"]);
        t.ingest(
            now(1_010.0),
            Some(&all),
            vec![live("w-0:1:aa", 1_009.0, 1_000.0)],
        );
        t.ingest(now(1_015.0), None, vec![gone("w-0:1:aa")]);
        assert_eq!(t.processes().count(), 0);
        assert!(t.plan(now(1_016.0), false).members);
    }

    #[test]
    fn an_expired_process_is_remembered_until_replaced() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(600));
        t.ingest(
            now(1_010.0),
            Some(&members(&["w-0:1:aa"])),
            vec![live("w-0:1:aa", 1_009.0, 1_000.0)],
        );
        t.ingest(now(1_080.0), None, vec![expired("w-0:1:aa")]);
        let tracked = t.get("w-0:1:aa").unwrap();
        assert!(matches!(tracked.state, ProcessState::Expired));
        assert_eq!(tracked.last_beat, Some(1_009.0));
        // The container restarted: a new process started after the old one's last beat.
        t.ingest(
            now(1_090.0),
            Some(&members(&["w-0:1:aa", "w-0:9:bb"])),
            vec![expired("w-0:1:aa"), live("w-0:9:bb", 1_089.0, 1_085.0)],
        );
        assert!(t.get("w-0:1:aa").is_none());
        assert!(t.get("w-0:9:bb").is_some());
        // ... and the dead member is not read on every probe, nor at every listing: only
        // every `rediscover_after` (from the last re-check, at 1010), and when a drain starts.
        let all = members(&["w-0:1:aa", "w-0:9:bb"]);
        let plan = t.plan(now(1_095.0), false);
        assert_eq!(plan.processes.len(), 1);
        assert!(t.follow_up(&all, false, now(1_095.0)).is_none());
        let follow_up = t.follow_up(&all, false, now(1_610.0)).unwrap();
        assert_eq!(follow_up.processes.len(), 1);
        assert_eq!(follow_up.processes[0].identity, "w-0:1:aa");
        t.force_discovery();
        assert!(t.follow_up(&all, false, now(1_096.0)).is_some());
    }

    #[test]
    fn dead_members_never_seen_alive_are_ignored() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(600));
        t.ingest(
            now(1_010.0),
            Some(&members(&["w-0:1:aa"])),
            vec![expired("w-0:1:aa")],
        );
        assert_eq!(t.processes().count(), 0);
        // Not read on every probe: only when `processes` is listed again.
        assert!(t.plan(now(1_011.0), false).processes.is_empty());
        // Still dead at the next listing: no listing on every probe because of it.
        t.ingest(
            now(1_020.0),
            Some(&members(&["w-0:1:aa"])),
            vec![expired("w-0:1:aa")],
        );
        assert!(!t.discovery_due);
    }

    #[test]
    fn finished_jobs_are_forgotten_by_a_light_read() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(600));
        let mut with_job = live("w-0:1:aa", 1_009.0, 1_000.0);
        with_job.work = vec![(
            WorkKey::Work,
            Ok(vec![(
                b"t01".to_vec(),
                br#"{"queue":"default","payload":"{\"class\":\"ReportJob\",\"jid\":\"j1\"}","run_at":1005}"#.to_vec(),
            )]),
        )];
        t.ingest(now(1_010.0), Some(&members(&["w-0:1:aa"])), vec![with_job]);
        let jobs = |t: &Tracker| match &t.get("w-0:1:aa").unwrap().work {
            Some(Ok(work)) => work.jobs.len(),
            _ => usize::MAX,
        };
        assert_eq!(jobs(&t), 1);
        // A light read while it is still busy keeps the job...
        t.ingest(now(1_015.0), None, vec![live("w-0:1:aa", 1_014.0, 1_000.0)]);
        assert_eq!(jobs(&t), 1);
        // ...and one that shows it idle drops it.
        let mut idle = live("w-0:1:aa", 1_019.0, 1_000.0);
        if let Ok(fields) = &mut idle.hash {
            fields.retain(|(k, _)| k != b"busy");
            fields.push((b"busy".to_vec(), b"0".to_vec()));
        }
        t.ingest(now(1_020.0), None, vec![idle]);
        assert_eq!(jobs(&t), 0);
        // An expired process's jobs are unknown.
        t.ingest(now(1_090.0), None, vec![expired("w-0:1:aa")]);
        assert!(t.get("w-0:1:aa").unwrap().work.is_none());
    }

    #[test]
    fn a_process_that_looked_dead_is_seen_again_when_it_beats() {
        // Stopped (SIGSTOP) longer than its hash's 60 s TTL when the probe started...
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(600));
        t.ingest(
            now(1_010.0),
            Some(&members(&["w-0:1:aa"])),
            vec![expired("w-0:1:aa")],
        );
        assert_eq!(t.live().count(), 0);
        // ...then resumed: the next periodic re-check reads it again, and it is followed.
        assert!(
            t.follow_up(&members(&["w-0:1:aa"]), false, now(1_100.0))
                .is_none()
        );
        let follow_up = t
            .follow_up(&members(&["w-0:1:aa"]), false, now(1_610.0))
            .unwrap();
        assert_eq!(follow_up.processes[0].identity, "w-0:1:aa");
        t.ingest(
            now(1_610.0),
            Some(&members(&["w-0:1:aa"])),
            vec![live("w-0:1:aa", 1_609.0, 990.0)],
        );
        assert_eq!(t.live().count(), 1);
    }

    #[test]
    fn heartbeat_ages_leave_out_the_time_redis_was_away() {
        let mut t = Tracker::new(Scope::All, Duration::from_secs(600));
        t.ingest(now(1_010.0), Some(&[]), Vec::new());
        assert_eq!(t.heartbeat_age(1_000.0, now(1_100.0)), 100.0);
        t.record_failure(now(1_020.0), "connection refused".into());
        assert_eq!(t.redis().reachable(), Some(false));
        assert_eq!(
            t.redis().unreachable_for(now(1_050.0)),
            Some(Duration::from_secs(30))
        );
        t.record_failure(now(1_050.0), "connection refused".into());
        assert_eq!(t.heartbeat_age(1_000.0, now(1_060.0)), 20.0);
        t.ingest(now(1_090.0), Some(&[]), Vec::new());
        assert_eq!(t.redis().reachable(), Some(true));
        // 20 s before the outage, 10 s after it.
        assert_eq!(t.heartbeat_age(1_000.0, now(1_100.0)), 30.0);
        assert_eq!(t.heartbeat_age(1_095.0, now(1_100.0)), 5.0);
    }

    #[test]
    fn one_slow_read_does_not_make_an_old_heartbeat_young() {
        let mut t = Tracker::new(Scope::All, Duration::from_secs(600));
        t.ingest(now(1_010.0), Some(&[]), Vec::new());
        // A wedged process last beat at 1000; one read times out at 1070, the next succeeds.
        t.record_failure(now(1_070.0), "timed out after 2s".into());
        t.ingest(now(1_071.0), Some(&[]), Vec::new());
        assert_eq!(t.heartbeat_age(1_000.0, now(1_072.0)), 71.0);
        // Many blips each leave out only their own duration.
        for at in [1_080.0, 1_090.0, 1_100.0] {
            t.record_failure(now(at), "timed out after 2s".into());
            t.ingest(now(at + 1.0), Some(&[]), Vec::new());
        }
        assert_eq!(t.heartbeat_age(1_000.0, now(1_110.0)), 106.0);
    }

    #[test]
    fn reply_errors_make_a_process_unreadable_not_the_read() {
        let mut t = Tracker::new(Scope::All, Duration::from_secs(600));
        let raw = RawProcess {
            identity: "w-0:1:aa".into(),
            member: Ok(true),
            hash: Err(ReplyError {
                key: "w-0:1:aa".into(),
                message: "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
            }),
            work: Vec::new(),
        };
        t.ingest(now(1_010.0), Some(&members(&["w-0:1:aa"])), vec![raw]);
        let tracked = t.get("w-0:1:aa").unwrap();
        assert!(matches!(
            tracked.state,
            ProcessState::Unreadable(ProcessError::Reply(_))
        ));
        assert_eq!(t.redis().reachable(), Some(true));
    }
}
