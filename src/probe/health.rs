//! Liveness and readiness verdicts from what the probe has observed.
//!
//! Both are judged from *durations* — how old the newest heartbeat is, how long Redis has
//! been unreachable — never from the outcome of a single call, so one slow or failed Redis
//! call cannot make `/livez` fail:
//!
//! - **liveness** fails when Redis answers but a process of this pod has not beaten for longer
//!   than [`Thresholds::stale_after`] (Sidekiq is wedged), or when Redis has been unreachable for
//!   longer than [`Thresholds::outage_window`] (Sidekiq swallows Redis errors and would wait
//!   forever; a restart re-resolves DNS and reconnects);
//! - **readiness** passes when the last read of Redis succeeded and this pod has a process that
//!   beats and is not quiet.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::observe::{ProcessError, ProcessState, Tracker};
use super::{Now, dur, observe::Scope, secs};

/// The thresholds of the verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A heartbeat older than this, while Redis answers, means the process is wedged.
    pub stale_after: Duration,
    /// Redis unreachable for longer than this fails liveness.
    pub outage_window: Duration,
}

impl Default for Thresholds {
    /// 60 s (six beats on Sidekiq 7+, twelve on 6.x) and 120 s.
    fn default() -> Self {
        Thresholds {
            stale_after: Duration::from_secs(60),
            outage_window: Duration::from_secs(120),
        }
    }
}

/// Why a verdict is what it is; stable names for metrics, logs and `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Everything is as it should be.
    Ok,
    /// Redis has not been read yet.
    NoReading,
    /// Redis is unreachable (readiness fails at once; liveness only after the window).
    RedisUnreachable,
    /// Redis has been unreachable for longer than the outage window.
    RedisOutage,
    /// A process of this pod stopped beating while Redis answers.
    StaleHeartbeat,
    /// No process of this pod is in Redis.
    NoProcess,
    /// Every process of this pod is quiet (draining).
    Quiet,
    /// The pod's processes have records sidekiq-guard cannot read.
    Unreadable,
    /// Redis answers but refuses the probe (credentials, ACL, database number): readiness fails;
    /// liveness too after the outage window, unless Redis refused the probe from the start.
    RedisRefused,
}

impl Code {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::NoReading => "no_reading",
            Code::RedisUnreachable => "redis_unreachable",
            Code::RedisOutage => "redis_outage",
            Code::StaleHeartbeat => "stale_heartbeat",
            Code::NoProcess => "no_process",
            Code::Quiet => "quiet",
            Code::Unreadable => "unreadable",
            Code::RedisRefused => "redis_refused",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verdict and its reason, in words for people and as a [`Code`] for machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the check passes (HTTP 200).
    pub ok: bool,
    /// Why, as a stable code.
    pub code: Code,
    /// Why, in words.
    pub reason: String,
}

impl Verdict {
    fn pass(code: Code, reason: impl Into<String>) -> Self {
        Verdict {
            ok: true,
            code,
            reason: reason.into(),
        }
    }

    fn fail(code: Code, reason: impl Into<String>) -> Self {
        Verdict {
            ok: false,
            code,
            reason: reason.into(),
        }
    }
}

/// Heartbeats older than the threshold: `(identity, age in seconds)`.
fn stale(tracker: &Tracker, now: Now, thresholds: &Thresholds) -> Vec<(String, f64)> {
    let limit = thresholds.stale_after.as_secs_f64();
    tracker
        .processes()
        .filter_map(|t| {
            let beat = match &t.state {
                ProcessState::Live(p) => p.beat,
                // The tracker keeps only expired processes it saw alive and that nothing
                // replaced: they stopped beating without leaving the set.
                ProcessState::Expired => t.last_beat?,
                ProcessState::Unreadable(_) => return None,
            };
            let age = tracker.heartbeat_age(beat, now);
            (age > limit && !tracker.replaced_after(&t.identity, beat))
                .then(|| (t.identity.clone(), age))
        })
        .collect()
}

/// The last error while a key Sidekiq uses holds another type.
fn wrong_type_error(redis: &crate::probe::observe::RedisHealth) -> Option<&str> {
    redis
        .failing_since
        .filter(|_| redis.wrong_type)
        .and(redis.last_error.as_deref())
}

/// Who refuses whom: Redis the probe's credentials, or the probe Redis's certificate.
fn refusal(error: &str) -> &'static str {
    if crate::probe::observe::is_certificate_error(error) {
        "the probe does not trust Redis's TLS certificate"
    } else {
        "Redis refuses the probe"
    }
}

/// The last error while Redis refuses the probe.
fn refused_error(redis: &crate::probe::observe::RedisHealth) -> Option<&str> {
    redis.failing_since.and(redis.last_error.as_deref())
}

/// The processes of this pod whose records cannot be read, in words:
/// `process w-0:1:aa cannot be read: field `info` is not valid JSON: …`, naming the first and
/// counting the others. `None` when every followed process can be read.
fn unreadable(tracker: &Tracker) -> Option<String> {
    let all: Vec<(&str, &ProcessError)> = tracker
        .processes()
        .filter_map(|t| match &t.state {
            ProcessState::Unreadable(error) => Some((t.identity.as_str(), error)),
            _ => None,
        })
        .collect();
    let (identity, error) = all.first()?;
    let why = match error {
        ProcessError::Record(cause) => crate::errors::chain(cause),
        // The process's own hash: the identity is already said.
        ProcessError::Reply(reply) if reply.key == *identity => {
            format!("Redis refused to read it: {}", reply.message)
        }
        ProcessError::Reply(reply) => crate::errors::chain(reply),
    };
    let more = match all.len() {
        1 => String::new(),
        n => format!(" (and {} more unreadable)", n - 1),
    };
    Some(format!("process {identity} cannot be read: {why}{more}"))
}

/// Why no process is there when one was: its record left Redis without the process saying so
/// (`/status` lists it as expired), rather than "no process".
fn no_process(tracker: &Tracker, now: Now) -> String {
    let expired = tracker.processes().find_map(|t| match t.state {
        ProcessState::Expired => Some((t.identity.as_str(), t.last_beat)),
        _ => None,
    });
    match expired {
        Some((identity, Some(beat))) => format!(
            "process {identity} is no longer in Redis (its record expired or was lost), last heartbeat {} ago",
            secs(tracker.heartbeat_age(beat, now))
        ),
        Some((identity, None)) => {
            format!("process {identity} is no longer in Redis (its record expired or was lost)")
        }
        None => format!("no Sidekiq process {} in Redis", whose(tracker)),
    }
}

fn whose(tracker: &Tracker) -> String {
    match tracker.scope() {
        Scope::Host(host) => format!("with hostname {host:?}"),
        Scope::All => "at all".to_owned(),
    }
}

/// Whether Sidekiq in this pod should be restarted: see the module documentation.
pub fn liveness(tracker: &Tracker, now: Now, thresholds: &Thresholds) -> Verdict {
    let redis = tracker.redis();
    if redis.reachable().is_none() {
        return Verdict::pass(Code::NoReading, "Redis not read yet");
    }
    // Refused from the start, the probe's settings are wrong (the URL as the probe reads it):
    // restarting Sidekiq cannot fix that. Refused after working, credentials were rotated or
    // revoked, Sidekiq is refused too and idles, and a restart reads the Secret again: that
    // counts as an outage.
    if let (true, Some(error)) = (redis.refused_from_start(), refused_error(redis)) {
        return Verdict::pass(
            Code::RedisRefused,
            format!(
                "{} ({error}); liveness does not fail, since restarting Sidekiq cannot fix the probe's Redis settings",
                refusal(error)
            ),
        );
    }
    if let Some(error) = wrong_type_error(redis) {
        return Verdict::pass(
            Code::Unreadable,
            format!(
                "Redis answers, but {error}; liveness holds: restarting Sidekiq would not fix its records"
            ),
        );
    }
    let stale = stale(tracker, now, thresholds);
    if let Some(down) = redis.unreachable_for(now) {
        let error = redis.last_error.as_deref().unwrap_or("unknown error");
        if down > thresholds.outage_window {
            return Verdict::fail(
                Code::RedisOutage,
                format!(
                    "Redis unreachable for {} (outage window {}): {error}",
                    dur(down),
                    dur(thresholds.outage_window)
                ),
            );
        }
        // A heartbeat the last successful read found stale stays stale: one failed read must
        // not turn a failing liveness back to passing (and reset the kubelet's count).
        let stale_when_read = redis
            .last_ok
            .and_then(|mono| now.at_mono(mono))
            .is_some_and(|then| !self::stale(tracker, then, thresholds).is_empty());
        if !stale_when_read {
            return Verdict::pass(
                Code::RedisUnreachable,
                format!(
                    "Redis unreachable for {}, failing after {}: {error}",
                    dur(down),
                    dur(thresholds.outage_window)
                ),
            );
        }
    }
    if let Some((identity, age)) = stale.first() {
        let more = match stale.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Verdict::fail(
            Code::StaleHeartbeat,
            format!(
                "heartbeat of {identity} is {} old (threshold {}){more}",
                secs(*age),
                dur(thresholds.stale_after)
            ),
        );
    }
    // A process a restart replaced lingers in Redis until its hash expires: not one beating.
    let beats: Vec<f64> = tracker
        .live()
        .filter(|p| !tracker.superseded(p, now))
        .map(|p| tracker.heartbeat_age(p.beat, now))
        .collect();
    match beats.iter().copied().reduce(f64::min) {
        Some(newest) => Verdict::pass(
            Code::Ok,
            format!(
                "{} process{} beating, newest heartbeat {} ago",
                beats.len(),
                if beats.len() == 1 { "" } else { "es" },
                secs(newest)
            ),
        ),
        // A process is there, but its records cannot be read: say so, not that there is none
        // (`/status` lists it). Restarting Sidekiq would not make its records readable, so
        // liveness holds, as it does when there is no process at all.
        None => match unreadable(tracker) {
            Some(reason) => Verdict::pass(
                Code::Unreadable,
                format!("{reason}; liveness holds: restarting Sidekiq would not fix its records"),
            ),
            None => Verdict::pass(Code::NoProcess, no_process(tracker, now)),
        },
    }
}

/// Whether this pod should receive traffic — for a worker, whether it counts as available
/// during a rollout: see the module documentation.
pub fn readiness(tracker: &Tracker, now: Now, thresholds: &Thresholds) -> Verdict {
    let redis = tracker.redis();
    if redis.reachable().is_none() {
        return Verdict::fail(Code::NoReading, "Redis not read yet");
    }
    if let (true, Some(error)) = (redis.refused, refused_error(redis)) {
        return Verdict::fail(Code::RedisRefused, format!("{}: {error}", refusal(error)));
    }
    if let Some(error) = wrong_type_error(redis) {
        return Verdict::fail(Code::Unreadable, format!("Redis answers, but {error}"));
    }
    if redis.failing_since.is_some() {
        let error = redis.last_error.as_deref().unwrap_or("unknown error");
        return Verdict::fail(
            Code::RedisUnreachable,
            format!("Redis unreachable: {error}"),
        );
    }
    let limit = thresholds.stale_after.as_secs_f64();
    let fresh = |beat: f64| tracker.heartbeat_age(beat, now) <= limit;
    let running: Vec<_> = tracker
        .live()
        .filter(|p| !p.quiet && fresh(p.beat))
        .collect();
    if !running.is_empty() {
        // As u64: Redis records are not trusted to be small (two processes claiming u32::MAX
        // threads must not overflow).
        let busy: u64 = running.iter().map(|p| u64::from(p.busy)).sum();
        let threads: Option<u64> = running.iter().map(|p| p.concurrency.map(u64::from)).sum();
        let threads = threads.map_or_else(|| "?".to_owned(), |n| n.to_string());
        return Verdict::pass(
            Code::Ok,
            format!(
                "{} process{} running, {busy}/{threads} threads busy",
                running.len(),
                if running.len() == 1 { "" } else { "es" },
            ),
        );
    }
    let quiet: Vec<&str> = tracker
        .live()
        .filter(|p| p.quiet && fresh(p.beat))
        .map(|p| p.identity.as_str())
        .collect();
    if !quiet.is_empty() {
        return Verdict::fail(
            Code::Quiet,
            format!("quiet (draining): {}", quiet.join(", ")),
        );
    }
    if let Some((identity, age)) = stale(tracker, now, thresholds).first() {
        return Verdict::fail(
            Code::StaleHeartbeat,
            format!("heartbeat of {identity} is {} old", secs(*age)),
        );
    }
    if let Some(reason) = unreadable(tracker) {
        return Verdict::fail(Code::Unreadable, reason);
    }
    Verdict::fail(Code::NoProcess, no_process(tracker, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::observe::{RawProcess, Scope};

    fn at(wall: f64) -> Now {
        Now {
            wall,
            mono: Duration::from_secs_f64(wall - 1_000.0),
        }
    }

    fn raw(identity: &str, beat: f64, quiet: bool, info: &str) -> RawProcess {
        RawProcess {
            identity: identity.into(),
            member: Ok(true),
            hash: Ok(vec![
                (b"info".to_vec(), info.as_bytes().to_vec()),
                (b"busy".to_vec(), b"2".to_vec()),
                (b"beat".to_vec(), beat.to_string().into_bytes()),
                (b"quiet".to_vec(), quiet.to_string().into_bytes()),
            ]),
            work: Vec::new(),
        }
    }

    const INFO: &str = r#"{"hostname":"w-0","pid":1,"started_at":1000.0,"concurrency":5}"#;

    fn tracker_with(beat: f64, quiet: bool, read_at: f64) -> Tracker {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(60));
        t.ingest(
            at(read_at),
            Some(&["w-0:1:aa".to_owned()]),
            vec![raw("w-0:1:aa", beat, quiet, INFO)],
        );
        t
    }

    #[test]
    fn fresh_heartbeats_are_alive_and_ready() {
        let t = tracker_with(1_005.0, false, 1_006.0);
        let th = Thresholds::default();
        let live = liveness(&t, at(1_010.0), &th);
        assert!(live.ok, "{live:?}");
        assert_eq!(live.reason, "1 process beating, newest heartbeat 5.0s ago");
        let ready = readiness(&t, at(1_010.0), &th);
        assert_eq!(
            ready,
            Verdict::pass(Code::Ok, "1 process running, 2/5 threads busy")
        );
    }

    #[test]
    fn a_stale_heartbeat_fails_both() {
        let t = tracker_with(1_005.0, false, 1_066.0);
        let th = Thresholds::default();
        let live = liveness(&t, at(1_070.0), &th);
        assert_eq!(live.code, Code::StaleHeartbeat);
        assert_eq!(
            live.reason,
            "heartbeat of w-0:1:aa is 1m5s old (threshold 1m)"
        );
        assert!(!readiness(&t, at(1_070.0), &th).ok);
        // Just under the threshold: still alive.
        assert!(liveness(&t, at(1_064.0), &th).ok);
    }

    #[test]
    fn a_wedged_process_whose_hash_expired_is_still_stale() {
        let mut t = tracker_with(1_005.0, false, 1_006.0);
        t.ingest(
            at(1_070.0),
            None,
            vec![RawProcess {
                identity: "w-0:1:aa".into(),
                member: Ok(true),
                hash: Ok(Vec::new()),
                work: Vec::new(),
            }],
        );
        let live = liveness(&t, at(1_070.0), &Thresholds::default());
        assert_eq!(live.code, Code::StaleHeartbeat, "{live:?}");
    }

    #[test]
    fn a_record_that_started_after_its_own_beat_does_not_replace_itself() {
        let odd = r#"{"hostname":"w-0","pid":1,"started_at":1100.0,"concurrency":5}"#;
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(60));
        t.ingest(
            at(1_101.0),
            Some(&["w-0:1:aa".to_owned()]),
            vec![raw("w-0:1:aa", 1_005.0, false, odd)],
        );
        let live = liveness(&t, at(1_101.0), &Thresholds::default());
        assert_eq!(live.code, Code::StaleHeartbeat, "{live:?}");
    }

    #[test]
    fn a_predecessor_still_in_redis_is_not_stale_once_replaced() {
        // The container was OOM-killed at 1 005; its successor started at 1 030. The old hash
        // lives until 1 065, beyond a 20 s stale threshold.
        let th = Thresholds {
            stale_after: Duration::from_secs(20),
            ..Thresholds::default()
        };
        let successor = r#"{"hostname":"w-0","pid":1,"started_at":1030.0,"concurrency":5}"#;
        let mut t = tracker_with(1_005.0, false, 1_006.0);
        t.ingest(
            at(1_040.0),
            Some(&["w-0:1:aa".to_owned(), "w-0:1:bb".to_owned()]),
            vec![
                raw("w-0:1:aa", 1_005.0, false, INFO),
                raw("w-0:1:bb", 1_039.0, false, successor),
            ],
        );
        let live = liveness(&t, at(1_040.0), &th);
        assert!(live.ok, "{live:?}");
        // Only the successor beats: the predecessor is not counted.
        assert_eq!(live.reason, "1 process beating, newest heartbeat 1.0s ago");
        // A process that stopped beating with no successor is wedged.
        let t = tracker_with(1_005.0, false, 1_039.0);
        assert_eq!(liveness(&t, at(1_040.0), &th).code, Code::StaleHeartbeat);
    }

    #[test]
    fn redis_refusing_the_probe_from_the_start_fails_readiness_never_liveness() {
        let noauth = "unexpected reply from Redis at redis://h:6379/0 to SMEMBERS processes: NOAUTH Authentication required.";
        let th = Thresholds::default();
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(60));
        t.record_failure(at(1_010.0), noauth.into());
        t.record_failure(at(1_500.0), noauth.into());
        let ready = readiness(&t, at(1_500.0), &th);
        assert_eq!(ready.code, Code::RedisRefused);
        assert!(!ready.ok);
        let live = liveness(&t, at(1_500.0), &th);
        assert_eq!(live.code, Code::RedisRefused);
        assert!(live.ok, "{live:?}");

        // A certificate the probe does not trust, from the start: its settings too.
        let untrusted =
            "cannot connect to Redis at rediss://h:6380/0: invalid peer certificate: UnknownIssuer";
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(60));
        t.record_failure(at(1_010.0), untrusted.into());
        t.record_failure(at(1_500.0), untrusted.into());
        assert_eq!(
            readiness(&t, at(1_500.0), &th),
            Verdict::fail(
                Code::RedisRefused,
                format!("the probe does not trust Redis's TLS certificate: {untrusted}")
            )
        );
        let live = liveness(&t, at(1_500.0), &th);
        assert_eq!(live.code, Code::RedisRefused);
        assert!(live.ok, "{live:?}");

        // After working, a refusal (rotated or revoked credentials: Sidekiq is refused too) is
        // an outage: liveness fails after the window, and a restart reads the Secret again.
        let mut t = tracker_with(1_005.0, false, 1_006.0);
        t.record_failure(at(1_010.0), noauth.into());
        assert_eq!(readiness(&t, at(1_010.0), &th).code, Code::RedisRefused);
        t.record_failure(at(1_131.0), noauth.into());
        let live = liveness(&t, at(1_131.0), &th);
        assert_eq!(live.code, Code::RedisOutage, "{live:?}");
        assert!(!live.ok);
    }

    #[test]
    fn a_key_of_the_wrong_type_is_no_outage() {
        let wrongtype = "unexpected reply from Redis at redis://h:6379/0 to SMEMBERS processes: WRONGTYPE Operation against a key holding the wrong kind of value";
        let th = Thresholds::default();
        let mut t = tracker_with(1_005.0, false, 1_006.0);
        t.record_failure(at(1_010.0), wrongtype.into());
        t.record_failure(at(1_500.0), wrongtype.into());
        let ready = readiness(&t, at(1_500.0), &th);
        assert_eq!(ready.code, Code::Unreadable);
        assert_eq!(ready.reason, format!("Redis answers, but {wrongtype}"));
        assert!(!ready.ok);
        let live = liveness(&t, at(1_500.0), &th);
        assert_eq!(live.code, Code::Unreadable);
        assert!(live.ok, "{live:?}");
        // Redis then stops answering: the outage window counts from then, not from 1 010.
        t.record_failure(at(1_501.0), "connection refused".into());
        let live = liveness(&t, at(1_502.0), &th);
        assert_eq!(live.code, Code::RedisUnreachable, "{live:?}");
        assert!(live.ok, "{live:?}");
    }

    #[test]
    fn redis_outages_fail_readiness_at_once_and_liveness_after_the_window() {
        let mut t = tracker_with(1_005.0, false, 1_006.0);
        let th = Thresholds::default();
        t.record_failure(at(1_010.0), "connection refused".into());
        let ready = readiness(&t, at(1_010.0), &th);
        assert_eq!(ready.code, Code::RedisUnreachable);
        assert_eq!(ready.reason, "Redis unreachable: connection refused");
        let live = liveness(&t, at(1_129.0), &th);
        assert!(live.ok);
        assert_eq!(
            live.reason,
            "Redis unreachable for 1m59s, failing after 2m: connection refused"
        );
        t.record_failure(at(1_131.0), "connection refused".into());
        let live = liveness(&t, at(1_131.0), &th);
        assert_eq!(live.code, Code::RedisOutage);
        assert!(!live.ok);
        // Back: the old beat does not count against Sidekiq, which could not write one.
        t.ingest(
            at(1_140.0),
            None,
            vec![raw("w-0:1:aa", 1_005.0, false, INFO)],
        );
        assert!(liveness(&t, at(1_141.0), &th).ok);
        assert!(readiness(&t, at(1_141.0), &th).ok);
        assert!(!liveness(&t, at(1_201.0), &th).ok);
    }

    #[test]
    fn a_heartbeat_stale_before_redis_went_away_stays_stale() {
        let th = Thresholds::default();
        let mut t = tracker_with(1_005.0, false, 1_006.0);
        t.ingest(
            at(1_100.0),
            None,
            vec![raw("w-0:1:aa", 1_005.0, false, INFO)],
        );
        assert_eq!(liveness(&t, at(1_100.0), &th).code, Code::StaleHeartbeat);
        // One read times out: the wedged process is still wedged.
        t.record_failure(at(1_101.0), "timed out".into());
        let live = liveness(&t, at(1_102.0), &th);
        assert_eq!(
            live,
            Verdict::fail(
                Code::StaleHeartbeat,
                "heartbeat of w-0:1:aa is 1m36s old (threshold 1m)"
            )
        );
    }

    /// A process whose record left Redis without the process saying so (Redis lost its data)
    /// is named, as `/status` lists it, rather than called absent.
    #[test]
    fn a_process_whose_record_vanished_is_named() {
        let th = Thresholds::default();
        let mut t = tracker_with(1_005.0, false, 1_006.0);
        t.ingest(
            at(1_020.0),
            None,
            vec![RawProcess {
                identity: "w-0:1:aa".into(),
                member: Ok(true),
                hash: Ok(Vec::new()),
                work: Vec::new(),
            }],
        );
        let expected = "process w-0:1:aa is no longer in Redis (its record expired or was lost), last heartbeat 15s ago";
        assert_eq!(
            readiness(&t, at(1_020.0), &th),
            Verdict::fail(Code::NoProcess, expected)
        );
        assert_eq!(
            liveness(&t, at(1_020.0), &th),
            Verdict::pass(Code::NoProcess, expected)
        );
    }

    #[test]
    fn quiet_or_missing_processes_are_not_ready_but_alive() {
        let th = Thresholds::default();
        let t = tracker_with(1_005.0, true, 1_006.0);
        let ready = readiness(&t, at(1_007.0), &th);
        assert_eq!(
            ready,
            Verdict::fail(Code::Quiet, "quiet (draining): w-0:1:aa")
        );
        assert!(liveness(&t, at(1_007.0), &th).ok);

        let mut empty = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(60));
        assert_eq!(readiness(&empty, at(1_007.0), &th).code, Code::NoReading);
        assert!(liveness(&empty, at(1_007.0), &th).ok);
        empty.ingest(at(1_007.0), Some(&[]), Vec::new());
        let ready = readiness(&empty, at(1_007.0), &th);
        assert_eq!(ready.code, Code::NoProcess);
        assert_eq!(
            ready.reason,
            "no Sidekiq process with hostname \"w-0\" in Redis"
        );
    }

    #[test]
    fn unreadable_records_fail_readiness_with_the_reason() {
        let mut t = Tracker::new(Scope::Host("w-0".into()), Duration::from_secs(60));
        t.ingest(
            at(1_006.0),
            Some(&["w-0:1:aa".to_owned()]),
            vec![raw("w-0:1:aa", 1_005.0, false, "not json")],
        );
        let th = Thresholds::default();
        let ready = readiness(&t, at(1_007.0), &th);
        assert_eq!(ready.code, Code::Unreadable);
        assert_eq!(
            ready.reason,
            "process w-0:1:aa cannot be read: field `info` is not valid JSON: expected ident at line 1 column 2"
        );
        // Restarting Sidekiq would not fix its records: liveness stays up.
        assert!(liveness(&t, at(1_007.0), &th).ok);
    }

    /// `/status` lists a process whose records cannot be read: liveness must name it and why,
    /// not claim that no process is in Redis. It still passes (HTTP 200), as before.
    #[test]
    fn liveness_names_an_unreadable_process_instead_of_calling_it_absent() {
        use crate::probe::observe::ReplyError;
        let th = Thresholds::default();
        let mut t = Tracker::new(Scope::Host("pod1".into()), Duration::from_secs(60));
        t.ingest(
            at(1_006.0),
            Some(&["pod1:1:abc".to_owned()]),
            vec![raw("pod1:1:abc", 1_005.0, false, "not json")],
        );
        let live = liveness(&t, at(1_007.0), &th);
        assert_eq!(
            live,
            Verdict::pass(
                Code::Unreadable,
                "process pod1:1:abc cannot be read: field `info` is not valid JSON: expected ident at line 1 column 2; liveness holds: restarting Sidekiq would not fix its records"
            )
        );

        // A key of the wrong Redis type, next to an unreadable record.
        let mut t = Tracker::new(Scope::Host("pod1".into()), Duration::from_secs(60));
        t.ingest(
            at(1_006.0),
            Some(&["pod1:1:abc".to_owned(), "pod1:2:def".to_owned()]),
            vec![
                RawProcess {
                    identity: "pod1:1:abc".into(),
                    member: Ok(true),
                    hash: Err(ReplyError {
                        key: "pod1:1:abc".into(),
                        message:
                            "WRONGTYPE Operation against a key holding the wrong kind of value"
                                .into(),
                    }),
                    work: Vec::new(),
                },
                raw("pod1:2:def", 1_005.0, false, "not json"),
            ],
        );
        let live = liveness(&t, at(1_007.0), &th);
        assert!(live.ok);
        assert_eq!(live.code, Code::Unreadable);
        assert_eq!(
            live.reason,
            "process pod1:1:abc cannot be read: Redis refused to read it: WRONGTYPE Operation against a key holding the wrong kind of value (and 1 more unreadable); liveness holds: restarting Sidekiq would not fix its records"
        );
        let ready = readiness(&t, at(1_007.0), &th);
        assert_eq!(
            ready,
            Verdict::fail(
                Code::Unreadable,
                "process pod1:1:abc cannot be read: Redis refused to read it: WRONGTYPE Operation against a key holding the wrong kind of value (and 1 more unreadable)"
            )
        );

        // With no process at all, the old words remain.
        let mut empty = Tracker::new(Scope::Host("pod1".into()), Duration::from_secs(60));
        empty.ingest(at(1_006.0), Some(&[]), Vec::new());
        assert_eq!(
            liveness(&empty, at(1_007.0), &th),
            Verdict::pass(
                Code::NoProcess,
                "no Sidekiq process with hostname \"pod1\" in Redis"
            )
        );
    }
}
