//! Sidekiq's own records in Redis, read without I/O.
//!
//! Every Sidekiq process writes, on each heartbeat (5 s on 6.x, 10 s from 7.0):
//!
//! - `SADD processes <identity>` — the set has no TTL, so it also holds processes that died
//!   without cleaning up;
//! - the hash `<identity>` with `info` (JSON, written once), `busy`, `beat`, `quiet`, `rss`,
//!   `rtt_us` and, on 8.x, `concurrency` — expiring 60 s after the last beat;
//! - the hash of in-flight jobs, `<identity>:workers` up to 6.4.1 and `<identity>:work` after,
//!   one field per busy thread.
//!
//! This module turns those replies into typed values ([`Process`], [`Job`]) for every layout
//! sidekiq-guard knows ([`Layout`]), including ActiveJob-wrapped classes, 8.x millisecond
//! timestamps and redis-namespace prefixes ([`Keys`]). A record Sidekiq would not have written
//! — non-JSON `info`, a missing field, an unknown version — is a [`RecordError`] that names the
//! field; nothing here panics on any input.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::payload;

/// Name of the set of process identities.
pub const PROCESSES: &str = "processes";
/// Seconds a process hash (and its work hash) lives after the last heartbeat.
pub const RECORD_TTL_SECS: u64 = 60;
/// Seconds Sidekiq's Web UI gives a pushed signal (`EXPIRE <identity>-signals 60`).
pub const SIGNAL_TTL_SECS: u64 = 60;
/// The signal that quiets a process: it stops fetching jobs and finishes those it runs.
pub const QUIET_SIGNAL: &str = "TSTP";

/// The names of Sidekiq's keys, with the prefix redis-namespace adds (Sidekiq 6.x only).
///
/// Set members and `info.identity` are never prefixed; only key names are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `namespace` (`Some("myapp")` gives `myapp:processes`), or bare keys.
    pub fn new(namespace: Option<&str>) -> Self {
        Keys {
            prefix: namespace
                .filter(|ns| !ns.is_empty())
                .map(|ns| format!("{ns}:"))
                .unwrap_or_default(),
        }
    }

    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.prefix.strip_suffix(':')
    }

    /// The set of process identities.
    pub fn processes(&self) -> String {
        format!("{}{PROCESSES}", self.prefix)
    }

    /// The hash of one process.
    pub fn process(&self, identity: &str) -> String {
        format!("{}{identity}", self.prefix)
    }

    /// The hash of a process's in-flight jobs under `key`'s naming.
    pub fn work(&self, identity: &str, key: WorkKey) -> String {
        format!("{}{identity}:{}", self.prefix, key.suffix())
    }

    /// The list of signals a process pops on each heartbeat.
    pub fn signals(&self, identity: &str) -> String {
        format!("{}{identity}-signals", self.prefix)
    }
}

/// The name of the in-flight jobs hash, which changed after 6.4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkKey {
    /// `<identity>:work`, written by 6.4.2 and every later version.
    Work,
    /// `<identity>:workers`, written up to 6.4.1.
    Workers,
}

impl WorkKey {
    /// Both names, newest first: what to read when the version is not known.
    pub const ALL: [WorkKey; 2] = [WorkKey::Work, WorkKey::Workers];

    /// The suffix after `<identity>:`.
    pub fn suffix(self) -> &'static str {
        match self {
            WorkKey::Work => "work",
            WorkKey::Workers => "workers",
        }
    }
}

/// A process identity split into its parts: `hostname:pid:nonce`.
///
/// The host part is `$DYNO` when that is set, else the machine's hostname — in Kubernetes, the
/// pod's hostname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    /// The host part.
    pub host: &'a str,
    /// The process id.
    pub pid: u32,
    /// The random nonce Sidekiq adds so that a reused pid gives a new identity.
    pub nonce: &'a str,
}

impl<'a> Identity<'a> {
    /// Splits an identity; `None` when it is not of Sidekiq's form.
    pub fn parse(identity: &'a str) -> Option<Self> {
        // The host comes first and is the only part that could (in theory) contain a colon.
        let mut parts = identity.rsplitn(3, ':');
        let nonce = parts.next()?;
        let pid = parts.next()?;
        let host = parts.next()?;
        if host.is_empty() || nonce.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Identity {
            host,
            pid: pid.parse().ok()?,
            nonce,
        })
    }
}

/// The record layouts sidekiq-guard reads. They differ in beat period, in the name of the work
/// hash, in where `concurrency` lives and in the unit of job timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layout {
    /// 6.x: 5 s beats, `concurrency` in `info`, no `version`; work in `:workers` up to 6.4.1
    /// and in `:work` after.
    Sidekiq6,
    /// 7.x: 10 s beats, `:work`, `version` and `embedded` in `info` (from 7.0.2).
    Sidekiq7,
    /// 8.x: as 7.x, plus capsules in `info`, `concurrency` as a hash field (8.1) and job
    /// timestamps in integer milliseconds.
    Sidekiq8,
}

impl Layout {
    /// Seconds between heartbeats.
    pub fn beat_secs(self) -> u64 {
        match self {
            Layout::Sidekiq6 => 5,
            Layout::Sidekiq7 | Layout::Sidekiq8 => 10,
        }
    }

    /// A short name: `6.x`, `7.x`, `8.x`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Sidekiq6 => "6.x",
            Layout::Sidekiq7 => "7.x",
            Layout::Sidekiq8 => "8.x",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record Sidekiq would not have written. `field` names the hash field or JSON path, such as
/// `info`, `busy`, `info.pid` or `payload.class`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A required field is absent.
    #[error("field `{field}` is missing")]
    Missing {
        /// The field.
        field: String,
    },
    /// A field's bytes are not UTF-8.
    #[error("field `{field}` is not UTF-8 text")]
    NotUtf8 {
        /// The field.
        field: String,
    },
    /// A field that holds JSON does not parse.
    #[error("field `{field}` is not valid JSON")]
    InvalidJson {
        /// The field.
        field: String,
        /// What the JSON parser said.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// A field holds a value of the wrong kind.
    #[error("field `{field}` is {value}, expected {expected}")]
    Invalid {
        /// The field.
        field: String,
        /// The value as found, shortened for display.
        value: String,
        /// What Sidekiq writes there.
        expected: &'static str,
    },
    /// `info.version` names no Sidekiq release sidekiq-guard can read.
    #[error(
        "Sidekiq version {version:?} is unknown: sidekiq-guard reads the records of Sidekiq 6.x, 7.x and 8.x"
    )]
    UnknownVersion {
        /// The version as written.
        version: String,
    },
    /// A member of `processes` that is not `hostname:pid:nonce`.
    #[error("{identity:?} is not a Sidekiq process identity (hostname:pid:nonce)")]
    BadIdentity {
        /// The member as found.
        identity: String,
    },
}

impl RecordError {
    fn missing(field: impl Into<String>) -> Self {
        RecordError::Missing {
            field: field.into(),
        }
    }

    fn invalid(field: impl Into<String>, value: &str, expected: &'static str) -> Self {
        RecordError::Invalid {
            field: field.into(),
            value: shorten(value),
            expected,
        }
    }

    /// A JSON value is shown as JSON (strings keep their quotes, nothing is escaped twice).
    fn invalid_json_value(field: impl Into<String>, value: &Value, expected: &'static str) -> Self {
        RecordError::Invalid {
            field: field.into(),
            value: cut(&value.to_string()),
            expected,
        }
    }
}

/// Something odd about a record that does not stop it from being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordWarning {
    /// A Sidekiq release newer than the layouts sidekiq-guard knows; read as the newest one.
    #[error(
        "Sidekiq {version} is newer than the layouts sidekiq-guard knows (6.x to 8.x); its records were read as 8.x"
    )]
    NewerVersion {
        /// The version as written.
        version: String,
    },
    /// A figure that is only shown (`rss`, `rtt_us`) holds something else, and is left out:
    /// Sidekiq 6.4's memory probe writes its `/proc` lines when `VmRSS` is missing, say. So
    /// does a text only shown (`info.tag`, `info.queues`, `info.labels`) that is a list or an
    /// object where Sidekiq writes a string or a list of them.
    #[error("field `{field}` is {value}, expected {expected}; left out")]
    FigureUnreadable {
        /// The field.
        field: &'static str,
        /// The value as found, shortened for display.
        value: String,
        /// What Sidekiq writes there.
        expected: &'static str,
    },
}

/// The `info` JSON of a process, written once at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessInfo {
    /// `$DYNO` or the machine's hostname.
    pub hostname: String,
    /// The process id.
    pub pid: u32,
    /// Epoch seconds the process started.
    pub started_at: Option<f64>,
    /// `-g`/`tag` (the app name by default on 8.x).
    pub tag: Option<String>,
    /// The identity as the process wrote it (the same as its key, without a namespace).
    pub identity: Option<String>,
    /// The queues it fetches from.
    pub queues: Vec<String>,
    /// Labels from the configuration.
    pub labels: Vec<String>,
    /// Threads, from `info.concurrency` (up to 8.0) or the sum over `info.capsules` (8.x).
    pub concurrency: Option<u32>,
    /// The Sidekiq version (written from 7.0.2 on).
    pub version: Option<String>,
    /// Whether Sidekiq runs embedded in another server (7.0+). Embedded processes ignore
    /// remote signals: they cannot be quieted from Redis.
    pub embedded: bool,
}

/// One process as its hash says, with the layout it was read as.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    /// The identity (the member of `processes`).
    pub identity: String,
    /// The `info` JSON.
    pub info: ProcessInfo,
    /// The layout the records follow.
    pub layout: Layout,
    /// Threads running a job at the last heartbeat.
    pub busy: u32,
    /// Whether the process is quiet (stopped fetching jobs) at the last heartbeat.
    pub quiet: bool,
    /// Epoch seconds of the last heartbeat.
    pub beat: f64,
    /// Resident memory in KiB (0 on platforms Sidekiq cannot measure).
    pub rss_kb: Option<u64>,
    /// Microseconds of one Redis round trip, measured by the process.
    pub rtt_us: Option<u64>,
    /// Threads: the `concurrency` field (8.x), else `info`'s.
    pub concurrency: Option<u32>,
    /// Oddities that did not stop the record from being read.
    pub warnings: Vec<RecordWarning>,
}

impl Process {
    /// Seconds since the last heartbeat at wall-clock time `now` (epoch seconds), never negative.
    pub fn beat_age(&self, now: f64) -> f64 {
        (now - self.beat).max(0.0)
    }

    /// The work hashes to read for this process: only `:work` when the version is stated (7.0.2
    /// on), both names otherwise (6.x wrote `:workers` up to 6.4.1).
    pub fn work_keys(&self) -> &'static [WorkKey] {
        if self.info.version.is_some() {
            &WorkKey::ALL[..1]
        } else {
            &WorkKey::ALL
        }
    }
}

/// One in-flight job, from the work hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The thread id (the hash field), e.g. `2zn`.
    pub thread: String,
    /// The queue it was fetched from.
    pub queue: String,
    /// The job's class as users know it: ActiveJob's `wrapped` class when there is one.
    pub class: String,
    /// The Sidekiq class that wraps [`Job::class`] (ActiveJob's adapter), if any.
    pub wrapper: Option<String>,
    /// The job id.
    pub jid: Option<String>,
    /// Epoch seconds the job started on this thread.
    pub run_at: f64,
    /// Epoch seconds the job was created.
    pub created_at: Option<f64>,
    /// Epoch seconds the job was last enqueued.
    pub enqueued_at: Option<f64>,
}

impl Job {
    /// Seconds the job has run at wall-clock time `now`, never negative.
    pub fn elapsed(&self, now: f64) -> f64 {
        (now - self.run_at).max(0.0)
    }
}

/// A work hash entry that could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("in-flight job on thread {thread:?}")]
pub struct JobError {
    /// The hash field (thread id).
    pub thread: String,
    /// What is wrong with it.
    #[source]
    pub error: RecordError,
}

/// The in-flight jobs of one process.
#[derive(Debug, Clone, Default)]
pub struct Work {
    /// The jobs, longest running first.
    pub jobs: Vec<Job>,
    /// Entries that could not be read.
    pub errors: Vec<JobError>,
}

/// Reads a process hash (`HGETALL <identity>`). `fields` are the field/value pairs as Redis
/// returned them; an empty hash (expired) is [`RecordError::Missing`] `info`, so callers check
/// for emptiness first.
pub fn parse_process<K, V>(identity: &str, fields: &[(K, V)]) -> Result<Process, RecordError>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let get = |name: &str| -> Result<Option<&str>, RecordError> {
        match fields.iter().find(|(k, _)| k.as_ref() == name.as_bytes()) {
            None => Ok(None),
            Some((_, v)) => std::str::from_utf8(v.as_ref())
                .map(Some)
                .map_err(|_| RecordError::NotUtf8 { field: name.into() }),
        }
    };
    let require = |name: &'static str| -> Result<&str, RecordError> {
        get(name)?.ok_or_else(|| RecordError::missing(name))
    };

    let info_json = info_object(require("info")?)?;
    let mut shown = Vec::new();
    let info = info_from(&info_json, &mut shown)?;
    let (layout, mut warnings) = layout_of(&info, get("concurrency")?.is_some(), &info_json)?;
    warnings.append(&mut shown);

    let busy = parse_uint(require("busy")?, "busy")?;
    let beat = parse_epoch(require("beat")?, "beat")?;
    let quiet = match require("quiet")? {
        "true" => true,
        "false" => false,
        other => {
            return Err(RecordError::invalid(
                "quiet",
                other,
                "\"true\" or \"false\"",
            ));
        }
    };
    // Figures only shown: one that cannot be read is a warning, never a process unreadable —
    // which would fail readiness and make every drain wait out its budget.
    let mut figure = |field: &'static str| -> Result<Option<u64>, RecordError> {
        let Some(text) = get(field)? else {
            return Ok(None);
        };
        let read = parse_uint(text, field).ok();
        if read.is_none() {
            warnings.push(RecordWarning::FigureUnreadable {
                field,
                value: shorten(text),
                expected: "a non-negative integer",
            });
        }
        Ok(read)
    };
    let rss_kb = figure("rss")?;
    let rtt_us = figure("rtt_us")?;
    let hash_concurrency = get("concurrency")?
        .map(|v| parse_uint(v, "concurrency"))
        .transpose()?;
    let concurrency =
        match hash_concurrency {
            Some(n) => Some(u32::try_from(n).map_err(|_| {
                RecordError::invalid("concurrency", &n.to_string(), "a thread count")
            })?),
            None => info.concurrency,
        };
    Ok(Process {
        identity: identity.to_owned(),
        busy: u32::try_from(busy)
            .map_err(|_| RecordError::invalid("busy", &busy.to_string(), "a thread count"))?,
        quiet,
        beat,
        rss_kb,
        rtt_us,
        concurrency,
        layout,
        warnings,
        info,
    })
}

fn info_object(text: &str) -> Result<Map<String, Value>, RecordError> {
    let value: Value = serde_json::from_str(text).map_err(|e| RecordError::InvalidJson {
        field: "info".into(),
        source: Arc::new(e),
    })?;
    match value {
        Value::Object(info) => Ok(info),
        other => Err(RecordError::invalid_json_value(
            "info",
            &other,
            "a JSON object",
        )),
    }
}

fn info_from(
    info: &Map<String, Value>,
    warnings: &mut Vec<RecordWarning>,
) -> Result<ProcessInfo, RecordError> {
    let hostname = json_str(info, "info", "hostname")?
        .ok_or_else(|| RecordError::missing("info.hostname"))?
        .to_owned();
    let pid = json_uint(info, "info", "pid")?.ok_or_else(|| RecordError::missing("info.pid"))?;
    let pid = u32::try_from(pid)
        .map_err(|_| RecordError::invalid("info.pid", &pid.to_string(), "a process id"))?;
    let concurrency = match json_uint(info, "info", "concurrency")? {
        Some(n) => Some(n),
        None => capsules_concurrency(info)?,
    };
    let concurrency = concurrency
        .map(|n| {
            u32::try_from(n).map_err(|_| {
                RecordError::invalid("info.concurrency", &n.to_string(), "a thread count")
            })
        })
        .transpose()?;
    Ok(ProcessInfo {
        hostname,
        pid,
        started_at: json_f64(info, "info", "started_at")?,
        tag: shown_text(info, "info.tag", warnings),
        identity: json_str(info, "info", "identity")?.map(str::to_owned),
        queues: shown_texts(info, "info.queues", warnings),
        labels: shown_texts(info, "info.labels", warnings),
        concurrency,
        version: json_str(info, "info", "version")?.map(str::to_owned),
        embedded: match info.get("embedded") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(RecordError::invalid_json_value(
                    "info.embedded",
                    other,
                    "true or false",
                ));
            }
        },
    })
}

/// 8.x: `{"capsules": {"default": {"concurrency": 3, …}, …}}`.
fn capsules_concurrency(info: &Map<String, Value>) -> Result<Option<u64>, RecordError> {
    let Some(capsules) = info.get("capsules") else {
        return Ok(None);
    };
    let Value::Object(capsules) = capsules else {
        return Err(RecordError::invalid_json_value(
            "info.capsules",
            capsules,
            "an object of capsules",
        ));
    };
    let mut total: u64 = 0;
    for (name, capsule) in capsules {
        let field = format!("info.capsules.{name}");
        let Value::Object(capsule) = capsule else {
            return Err(RecordError::invalid_json_value(field, capsule, "an object"));
        };
        let n = json_uint(capsule, &field, "concurrency")?
            .ok_or_else(|| RecordError::missing(format!("{field}.concurrency")))?;
        total = total.saturating_add(n);
    }
    Ok(Some(total))
}

/// Decides the layout from `info.version`, or from which fields exist when it is absent.
fn layout_of(
    info: &ProcessInfo,
    has_concurrency_field: bool,
    info_json: &Map<String, Value>,
) -> Result<(Layout, Vec<RecordWarning>), RecordError> {
    let Some(version) = &info.version else {
        // No version: 6.x, or 7.0.0/7.0.1 (which already wrote `embedded`), or an 8.x that
        // lost it (capsules / concurrency field are 8.x only).
        let layout = if has_concurrency_field || info_json.contains_key("capsules") {
            Layout::Sidekiq8
        } else if info_json.contains_key("embedded") {
            Layout::Sidekiq7
        } else {
            Layout::Sidekiq6
        };
        return Ok((layout, Vec::new()));
    };
    let unknown = || RecordError::UnknownVersion {
        version: cut(version),
    };
    let mut parts = version.split('.');
    let major: u32 = parts
        .next()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(unknown)?;
    // The minor part must be numeric too ("7.3.2", "8.0.0.beta1"): anything else is not a
    // Sidekiq release string.
    if !parts
        .next()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(unknown());
    }
    match major {
        6 => Ok((Layout::Sidekiq6, Vec::new())),
        7 => Ok((Layout::Sidekiq7, Vec::new())),
        8 => Ok((Layout::Sidekiq8, Vec::new())),
        9..=99 => Ok((
            Layout::Sidekiq8,
            vec![RecordWarning::NewerVersion {
                version: version.clone(),
            }],
        )),
        _ => Err(unknown()),
    }
}

/// Reads a work hash (`HGETALL <identity>:work` or `:workers`). Entries that cannot be read
/// are collected in [`Work::errors`]; the others are returned longest-running first.
pub fn parse_work<K, V>(fields: &[(K, V)]) -> Work
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut work = Work::default();
    for (thread, value) in fields {
        let thread = String::from_utf8_lossy(thread.as_ref()).into_owned();
        match parse_job(&thread, value.as_ref()) {
            Ok(job) => work.jobs.push(job),
            Err(error) => work.errors.push(JobError { thread, error }),
        }
    }
    work.jobs.sort_by(|a, b| {
        a.run_at
            .total_cmp(&b.run_at)
            .then_with(|| a.thread.cmp(&b.thread))
    });
    work
}

/// Reads one work hash entry: `{"queue":…,"payload":"<job JSON>","run_at":<epoch s>}`.
pub fn parse_job(thread: &str, value: &[u8]) -> Result<Job, RecordError> {
    let text = std::str::from_utf8(value).map_err(|_| RecordError::NotUtf8 {
        field: "work".into(),
    })?;
    // Fields as their JSON text: the payload, arguments and all, is read once, below, without
    // keeping what a report does not use.
    let raw: BTreeMap<String, &RawValue> =
        serde_json::from_str(text).map_err(|_| not_an_entry(text))?;
    let small = |key: &str| -> Option<(String, Value)> {
        let value = serde_json::from_str(raw.get(key)?.get()).ok()?;
        Some((key.to_owned(), value))
    };
    let entry: Map<String, Value> = ["run_at", "queue"].into_iter().filter_map(small).collect();
    let run_at =
        json_f64(&entry, "work", "run_at")?.ok_or_else(|| RecordError::missing("run_at"))?;
    if run_at > EPOCH_SECONDS_MAX {
        return Err(RecordError::invalid_json_value(
            "run_at",
            &entry["run_at"],
            MILLISECONDS,
        ));
    }
    let payload = raw
        .get("payload")
        .ok_or_else(|| RecordError::missing("payload"))?;
    let payload::Payload {
        fields: payload,
        active_job_class,
    } = payload::read(payload.get()).map_err(|e| payload_error(payload.get(), e))?;
    let payload = &payload;
    let sidekiq_class = json_str(payload, "payload", "class")?
        .ok_or_else(|| RecordError::missing("payload.class"))?;
    let wrapped = json_str(payload, "payload", "wrapped")?;
    let display = wrapped.or(active_job_class.as_deref());
    let queue = match json_str(&entry, "work", "queue")? {
        Some(q) => q.to_owned(),
        None => json_str(payload, "payload", "queue")?
            .ok_or_else(|| RecordError::missing("queue"))?
            .to_owned(),
    };
    Ok(Job {
        thread: thread.to_owned(),
        queue,
        class: display.unwrap_or(sidekiq_class).to_owned(),
        wrapper: display.map(|_| sidekiq_class.to_owned()),
        jid: json_str(payload, "payload", "jid")?.map(str::to_owned),
        run_at,
        created_at: payload_time(payload, "created_at")?,
        enqueued_at: payload_time(payload, "enqueued_at")?,
    })
}

/// Why the payload `raw` (its JSON text in the entry) cannot be read, `error` being what the
/// streaming reader said: read again whole (an error is rare, and its message worth it), a
/// payload that is JSON but no object is named as such.
fn payload_error(raw: &str, error: serde_json::Error) -> RecordError {
    let whole = serde_json::from_str::<Value>(raw).and_then(|value| match value {
        Value::String(text) => serde_json::from_str::<Value>(&text),
        other => Ok(other),
    });
    match whole {
        Ok(value) if !value.is_object() => {
            RecordError::invalid_json_value("payload", &value, "a JSON object")
        }
        Ok(_) | Err(_) => RecordError::InvalidJson {
            field: "payload".into(),
            source: Arc::new(error),
        },
    }
}

/// Why `text`, which is not a JSON object of JSON values, is no work entry.
fn not_an_entry(text: &str) -> RecordError {
    match serde_json::from_str::<Value>(text) {
        Err(e) => RecordError::InvalidJson {
            field: "work".into(),
            source: Arc::new(e),
        },
        Ok(other) => RecordError::invalid_json_value("work", &other, "a JSON object"),
    }
}

/// A job timestamp the way Sidekiq 8.1 reads it (`JobRecord#time_from_timestamp`): a float is
/// epoch seconds (up to 7.x), an integer is epoch milliseconds (8.0 on).
fn payload_time(payload: &Map<String, Value>, key: &str) -> Result<Option<f64>, RecordError> {
    match payload.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_f64() => Ok(n.as_f64().filter(|f| f.is_finite())),
        // Integers (u64 or i64) are milliseconds.
        Some(Value::Number(n)) => Ok(n.as_f64().map(|ms| ms / 1000.0)),
        Some(other) => Err(RecordError::invalid_json_value(
            format!("payload.{key}"),
            other,
            "an epoch timestamp",
        )),
    }
}

fn parse_uint(text: &str, field: &str) -> Result<u64, RecordError> {
    text.trim()
        .parse()
        .map_err(|_| RecordError::invalid(field, text, "a non-negative integer"))
}

fn parse_epoch(text: &str, field: &str) -> Result<f64, RecordError> {
    let seconds = text
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f >= 0.0)
        .ok_or_else(|| RecordError::invalid(field, text, "epoch seconds"))?;
    in_seconds(seconds, field, text)
}

/// Past this, an epoch time is not seconds (it would be the year 5138) but milliseconds, as
/// Sidekiq 8 writes the timestamps of job payloads: read as seconds it would be far in the
/// future, and every age computed from it silently zero.
const EPOCH_SECONDS_MAX: f64 = 1e11;

const MILLISECONDS: &str = "epoch seconds, as Sidekiq writes them (this looks like milliseconds)";

fn in_seconds(seconds: f64, field: &str, text: &str) -> Result<f64, RecordError> {
    if seconds > EPOCH_SECONDS_MAX {
        return Err(RecordError::invalid(field, text, MILLISECONDS));
    }
    Ok(seconds)
}

fn json_str<'a>(
    object: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<Option<&'a str>, RecordError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(RecordError::invalid_json_value(
            format!("{parent}.{key}"),
            other,
            "a string",
        )),
    }
}

fn json_uint(
    object: &Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<Option<u64>, RecordError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(other) => Err(RecordError::invalid_json_value(
            format!("{parent}.{key}"),
            other,
            "a non-negative integer",
        )),
    }
}

fn json_f64(
    object: &Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<Option<f64>, RecordError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f)),
            _ => Err(RecordError::invalid_json_value(
                format!("{parent}.{key}"),
                &Value::Number(n.clone()),
                "epoch seconds",
            )),
        },
        Some(other) => Err(RecordError::invalid_json_value(
            format!("{parent}.{key}"),
            other,
            "epoch seconds",
        )),
    }
}

/// `field` (`info.tag`) of a field only shown: Sidekiq writes the configuration's value as it
/// is, so `tag: 2024` in `sidekiq.yml` is a number there, shown as its text like Sidekiq's Web
/// UI shows it. Anything but a scalar is a warning and left out: a process must not turn
/// unreadable — failing readiness and every drain — over what is only displayed.
fn shown_text(
    info: &Map<String, Value>,
    field: &'static str,
    warnings: &mut Vec<RecordWarning>,
) -> Option<String> {
    let value = info.get(info_key(field))?;
    let text = scalar_text(value);
    if text.is_none() && !value.is_null() {
        warnings.push(unshown(field, value, "a string"));
    }
    text
}

/// `field` (`info.queues`) of a list only shown, as [`shown_text`] reads one.
fn shown_texts(
    info: &Map<String, Value>,
    field: &'static str,
    warnings: &mut Vec<RecordWarning>,
) -> Vec<String> {
    let value = match info.get(info_key(field)) {
        None | Some(Value::Null) => return Vec::new(),
        Some(value) => value,
    };
    let texts = match value {
        Value::Array(items) => items.iter().map(scalar_text).collect(),
        _ => None,
    };
    texts.unwrap_or_else(|| {
        warnings.push(unshown(field, value, "an array of strings"));
        Vec::new()
    })
}

fn info_key(field: &str) -> &str {
    field.strip_prefix("info.").unwrap_or(field)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn unshown(field: &'static str, value: &Value, expected: &'static str) -> RecordWarning {
    RecordWarning::FigureUnreadable {
        field,
        value: cut(&value.to_string()),
        expected,
    }
}

/// Longest value quoted in an error message, in characters.
const SHOWN: usize = 60;

/// Quotes a raw field value for an error message, cut to a readable length.
fn shorten(value: &str) -> String {
    crate::errors::quoted(value, SHOWN)
}

/// Cuts an already readable text (JSON) to a readable length on a character boundary.
fn cut(value: &str) -> String {
    crate::errors::truncate(value, SHOWN + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const INFO6: &str = r#"{"hostname":"vm","started_at":1795660932.7941813,"pid":2675,"tag":"","concurrency":3,"queues":["default"],"labels":[],"identity":"vm:2675:446ce2a40fb7"}"#;

    #[test]
    fn keys_carry_the_namespace_but_members_do_not() {
        let keys = Keys::new(Some("myapp"));
        assert_eq!(keys.processes(), "myapp:processes");
        assert_eq!(keys.process("vm:1:ab"), "myapp:vm:1:ab");
        assert_eq!(
            keys.work("vm:1:ab", WorkKey::Workers),
            "myapp:vm:1:ab:workers"
        );
        assert_eq!(keys.signals("vm:1:ab"), "myapp:vm:1:ab-signals");
        assert_eq!(keys.namespace(), Some("myapp"));
        let bare = Keys::new(None);
        assert_eq!(bare.work("vm:1:ab", WorkKey::Work), "vm:1:ab:work");
        assert_eq!(Keys::new(Some("")), bare);
    }

    #[test]
    fn identities_split_from_the_right() {
        let id = Identity::parse("worker-7d9f-abcde:12:446ce2a40fb7").unwrap();
        assert_eq!(
            (id.host, id.pid, id.nonce),
            ("worker-7d9f-abcde", 12, "446ce2a40fb7")
        );
        assert_eq!(Identity::parse("a:b:c:1:ff").unwrap().host, "a:b:c");
        for bad in [
            "",
            "vm",
            "vm:12",
            ":12:ff",
            "vm:x:ff",
            "vm:12:",
            "vm:99999999999:ff",
        ] {
            assert!(Identity::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_quiet_6x_process() {
        let p = parse_process(
            "vm:2675:446ce2a40fb7",
            &hash(&[
                ("info", INFO6),
                ("busy", "3"),
                ("beat", "1795660952.8116755"),
                ("quiet", "true"),
                ("rss", "30232"),
                ("rtt_us", "222"),
            ]),
        )
        .unwrap();
        assert_eq!(p.layout, Layout::Sidekiq6);
        assert!(p.quiet);
        assert_eq!((p.busy, p.concurrency, p.rss_kb), (3, Some(3), Some(30232)));
        assert_eq!(p.work_keys(), &WorkKey::ALL);
        assert!((p.beat_age(1795660962.8116755) - 10.0).abs() < 1e-6);
    }

    #[test]
    fn odd_process_hashes_are_specific_errors() {
        let base = [
            ("info", INFO6),
            ("busy", "0"),
            ("beat", "1795660952.8"),
            ("quiet", "false"),
        ];
        let with = |field: &str, value: &str| {
            let mut h = hash(&base);
            h.retain(|(k, _)| k != field);
            if !value.is_empty() {
                h.push((field.to_owned(), value.to_owned()));
            }
            parse_process("vm:1:ab", &h).unwrap_err().to_string()
        };
        assert_eq!(with("info", ""), "field `info` is missing");
        assert_eq!(with("info", "not json"), "field `info` is not valid JSON");
        assert_eq!(
            with("info", "[1]"),
            "field `info` is [1], expected a JSON object"
        );
        assert_eq!(
            with("info", r#"{"pid":1}"#),
            "field `info.hostname` is missing"
        );
        assert_eq!(
            with("info", r#"{"hostname":"vm","pid":"12"}"#),
            "field `info.pid` is \"12\", expected a non-negative integer"
        );
        assert_eq!(with("busy", ""), "field `busy` is missing");
        assert_eq!(
            with("busy", "-1"),
            "field `busy` is \"-1\", expected a non-negative integer"
        );
        assert_eq!(
            with("beat", "NaN"),
            "field `beat` is \"NaN\", expected epoch seconds"
        );
        assert_eq!(
            with("quiet", "yes"),
            "field `quiet` is \"yes\", expected \"true\" or \"false\""
        );
        assert_eq!(
            with("info", r#"{"hostname":"vm","pid":1,"version":"banana"}"#),
            "Sidekiq version \"banana\" is unknown: sidekiq-guard reads the records of Sidekiq 6.x, 7.x and 8.x"
        );
        assert!(
            with("info", r#"{"hostname":"vm","pid":1,"version":"5.2.10"}"#).contains("unknown")
        );
    }

    #[test]
    fn figures_only_shown_that_cannot_be_read_are_left_out_with_a_warning() {
        // What Sidekiq 6.4's memory lambda returns without a VmRSS line: the lines it read.
        let p = parse_process(
            "vm:1:ab",
            &hash(&[
                ("info", INFO6),
                ("busy", "2"),
                ("beat", "1795660952.8"),
                ("quiet", "false"),
                ("rss", "[\"Name:\\tsidekiq\\n\"]"),
                ("rtt_us", "12.5"),
            ]),
        )
        .unwrap();
        assert_eq!((p.busy, p.rss_kb, p.rtt_us), (2, None, None));
        let warnings: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "field `rss` is \"[\\\"Name:\\\\tsidekiq\\\\n\\\"]\", expected a non-negative integer; left out",
                "field `rtt_us` is \"12.5\", expected a non-negative integer; left out",
            ]
        );
    }

    #[test]
    fn texts_only_shown_are_read_as_sidekiq_wrote_the_configuration() {
        let read = |info: &str| {
            parse_process(
                "vm:1:ab",
                &hash(&[
                    ("info", info),
                    ("busy", "1"),
                    ("beat", "1795660952.8"),
                    ("quiet", "false"),
                ]),
            )
            .unwrap()
        };
        // `tag: 2024` and `labels: [1, true]` in sidekiq.yml: Sidekiq runs, and writes them so.
        let p =
            read(r#"{"hostname":"vm","pid":1,"tag":2024,"queues":["default"],"labels":[1,true]}"#);
        assert_eq!(p.info.tag.as_deref(), Some("2024"));
        assert_eq!(p.info.labels, ["1", "true"]);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);

        let p =
            read(r#"{"hostname":"vm","pid":1,"tag":{"a":1},"queues":"default","labels":[[1]]}"#);
        assert_eq!((p.busy, p.info.tag, p.info.queues.len()), (1, None, 0));
        let warnings: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "field `info.tag` is {\"a\":1}, expected a string; left out",
                "field `info.queues` is \"default\", expected an array of strings; left out",
                "field `info.labels` is [[1]], expected an array of strings; left out",
            ]
        );
    }

    #[test]
    fn a_newer_major_version_is_read_with_a_warning() {
        let p = parse_process(
            "vm:1:ab",
            &hash(&[
                ("info", r#"{"hostname":"vm","pid":1,"version":"9.0.1"}"#),
                ("busy", "0"),
                ("beat", "1795660952.8"),
                ("quiet", "false"),
                ("concurrency", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(p.layout, Layout::Sidekiq8);
        assert_eq!(p.concurrency, Some(5));
        assert_eq!(
            p.warnings,
            [RecordWarning::NewerVersion {
                version: "9.0.1".into()
            }]
        );
    }

    #[test]
    fn the_layout_without_a_stated_version_comes_from_the_fields() {
        let layout = |info: &str, extra: &[(&str, &str)]| {
            let mut h = hash(&[
                ("info", info),
                ("busy", "0"),
                ("beat", "1795660952.8"),
                ("quiet", "false"),
            ]);
            h.extend(hash(extra));
            parse_process("vm:1:ab", &h).unwrap().layout
        };
        assert_eq!(layout(INFO6, &[]), Layout::Sidekiq6);
        // 7.0.0 and 7.0.1 wrote `embedded` before `version`.
        assert_eq!(
            layout(r#"{"hostname":"vm","pid":1,"embedded":false}"#, &[]),
            Layout::Sidekiq7
        );
        assert_eq!(
            layout(
                r#"{"hostname":"vm","pid":1,"capsules":{"default":{"concurrency":2}}}"#,
                &[]
            ),
            Layout::Sidekiq8
        );
        assert_eq!(
            layout(r#"{"hostname":"vm","pid":1}"#, &[("concurrency", "4")]),
            Layout::Sidekiq8
        );
    }

    #[test]
    fn non_utf8_fields_are_errors() {
        let fields = vec![(b"info".to_vec(), vec![0xff, 0xfe])];
        let err = parse_process("vm:1:ab", &fields).unwrap_err();
        assert_eq!(err.to_string(), "field `info` is not UTF-8 text");
    }

    #[test]
    fn a_payload_that_is_no_object_is_named_as_such() {
        for (payload, shown) in [("\"5\"", "5"), ("\"[1]\"", "[1]"), ("null", "null")] {
            let entry = format!(r#"{{"queue":"q","payload":{payload},"run_at":10}}"#);
            let err = parse_job("t", entry.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, RecordError::Invalid { field, value, expected: "a JSON object" }
                    if field == "payload" && value == shown),
                "{payload}: {err:?}"
            );
        }
        let broken = parse_job("t", br#"{"queue":"q","payload":"{\"class\":","run_at":10}"#);
        assert!(
            matches!(broken, Err(RecordError::InvalidJson { ref field, .. }) if field == "payload"),
            "{broken:?}"
        );
    }

    #[test]
    fn job_timestamps_follow_sidekiq_8s_rule() {
        let entry = |payload: &str| {
            serde_json::json!({"queue": "default", "payload": payload, "run_at": 1795661270})
                .to_string()
        };
        let job = parse_job(
            "aaa",
            entry(r#"{"class":"SleepJob","jid":"j1","created_at":1795661270247,"enqueued_at":1795661270.5}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(job.created_at, Some(1795661270.247));
        assert_eq!(job.enqueued_at, Some(1795661270.5));
        assert_eq!(job.elapsed(1795661275.0), 5.0);
        assert_eq!(job.elapsed(0.0), 0.0);
    }

    #[test]
    fn odd_work_entries_are_collected_not_fatal() {
        let work = parse_work(&hash(&[
            (
                "t1",
                r#"{"queue":"q","payload":"{\"class\":\"A\",\"jid\":\"1\"}","run_at":10}"#,
            ),
            ("t2", "garbage"),
            (
                "t3",
                r#"{"queue":"q","payload":"{\"jid\":\"3\"}","run_at":5}"#,
            ),
            ("t4", r#"{"queue":"q","payload":"not json","run_at":5}"#),
            ("t5", r#"{"queue":"q","payload":"{\"class\":\"B\"}"}"#),
            (
                "t6",
                r#"{"queue":"q","payload":"{\"class\":\"C\",\"jid\":\"6\"}","run_at":1795721290000}"#,
            ),
        ]));
        assert_eq!(work.jobs.len(), 1);
        let errors: Vec<String> = work
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.thread, e.error))
            .collect();
        assert_eq!(
            errors,
            [
                "t2: field `work` is not valid JSON",
                "t3: field `payload.class` is missing",
                "t4: field `payload` is not valid JSON",
                "t5: field `run_at` is missing",
                "t6: field `run_at` is 1795721290000, expected epoch seconds, as Sidekiq writes them (this looks like milliseconds)",
            ]
        );
    }

    #[test]
    fn a_beat_in_milliseconds_is_named_not_read_as_the_far_future() {
        let err = parse_process(
            "vm:1:ab",
            &hash(&[
                ("info", INFO6),
                ("busy", "0"),
                ("beat", "1795721290000"),
                ("quiet", "false"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "field `beat` is \"1795721290000\", expected epoch seconds, as Sidekiq writes them (this looks like milliseconds)"
        );
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(500);
        let err = parse_process(
            "vm:1:ab",
            &hash(&[
                ("info", INFO6),
                ("busy", &long),
                ("beat", "1"),
                ("quiet", "true"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.len() < 140, "{err}");
        assert!(err.contains('…'));
    }
}
