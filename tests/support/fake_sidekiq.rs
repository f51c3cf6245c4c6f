//! Sidekiq's records as Sidekiq 6.4.1, 7.3.2 and 8.1.7 write them, for tests that cannot run
//! those versions (only 6.4.1 is installed here):
//!
//! - [`load_fixture`] copies a captured process (`tests/data/redis/sidekiq-*/`) into Redis;
//! - [`FakeSidekiq`] is a heartbeat that writes the same two `MULTI`s as the real launcher
//!   (`lib/sidekiq/launcher.rb`, method `❤`, per version — see the fixtures' READMEs), pops
//!   one signal per beat and reports `quiet` on the beat after a `TSTP`, runs jobs for a given
//!   time and leaves like Sidekiq on SIGTERM (`SREM processes`, `UNLINK` the work hash, the
//!   process hash left to expire).
//!
//! Shared by the core's reader tests and the probe's tests (`#[path]` include).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The version whose records to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 6.4.1: `HMSET`, `<id>:workers`, no `version` in `info`.
    V6,
    /// 7.3.2: `HSET`, `<id>:work`, `version`, `embedded` and `weights` in `info`.
    V7,
    /// 8.1.7: as 7.3.2 plus the `concurrency` hash field and `capsules` in `info`.
    V8,
}

impl Version {
    /// The fixture directory.
    pub fn dir(self) -> &'static str {
        match self {
            Version::V6 => "sidekiq-6.4.1",
            Version::V7 => "sidekiq-7.3",
            Version::V8 => "sidekiq-8.1",
        }
    }

    fn work_suffix(self) -> &'static str {
        match self {
            Version::V6 => "workers",
            Version::V7 | Version::V8 => "work",
        }
    }
}

/// `tests/data/redis` of the repository, from any crate of the workspace.
pub fn fixtures() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("tests/data/redis");
        if candidate.is_dir() {
            return candidate;
        }
        assert!(dir.pop(), "tests/data/redis not found");
    }
}

/// A fixture file as JSON.
pub fn fixture(version: Version, file: &str) -> Value {
    let path = fixtures().join(version.dir()).join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON object of strings as field/value pairs.
pub fn pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// Epoch seconds now.
pub fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A synchronous connection.
pub fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// Copies the process captured in `file` (e.g. `process-hash.json`) and its work hash
/// (`work_file`, if any) into Redis under `prefix` (a redis-namespace, `""` for none), with
/// the heartbeat moved to now, and adds it to `processes`. Returns the identity.
pub fn load_fixture(
    con: &mut redis::Connection,
    version: Version,
    dir: &str,
    file: &str,
    work_file: Option<&str>,
    prefix: &str,
) -> String {
    let sub = |name: &str| {
        let path = fixtures().join(version.dir()).join(dir).join(name);
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        value
    };
    let hash = sub(file);
    let info: Value = serde_json::from_str(hash["info"].as_str().unwrap()).unwrap();
    let identity = info["identity"].as_str().unwrap().to_owned();
    let mut fields = pairs(&hash);
    for (k, v) in &mut fields {
        if k == "beat" {
            *v = epoch().to_string();
        }
    }
    let key = format!("{prefix}{identity}");
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("SADD")
        .arg(format!("{prefix}processes"))
        .arg(&identity)
        .ignore()
        .cmd("DEL")
        .arg(&key)
        .ignore()
        .cmd("HSET")
        .arg(&key)
        .arg(fields)
        .ignore()
        .cmd("EXPIRE")
        .arg(&key)
        .arg(60)
        .ignore();
    if let Some(work_file) = work_file {
        let work_key = format!("{prefix}{identity}:{}", version.work_suffix());
        pipe.cmd("HSET")
            .arg(&work_key)
            .arg(pairs(&sub(work_file)))
            .ignore()
            .cmd("EXPIRE")
            .arg(&work_key)
            .arg(60)
            .ignore();
    }
    pipe.query::<()>(con).unwrap();
    identity
}

/// One job a [`FakeSidekiq`] runs.
#[derive(Debug, Clone)]
struct FakeJob {
    payload: String,
    queue: String,
    run_at: u64,
    ends: Instant,
}

#[derive(Debug, Default)]
struct State {
    jobs: BTreeMap<String, FakeJob>,
    next_thread: u32,
    /// A `TSTP` was popped: `quiet` is reported from the next beat on.
    quiet_pending: bool,
    quiet: bool,
    wedged: bool,
}

/// How a [`FakeSidekiq`] runs.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The Redis URL.
    pub url: String,
    /// redis-namespace prefix (`"myapp:"`) or `""`.
    pub prefix: String,
    /// The host part of the identity.
    pub host: String,
    /// The pid part.
    pub pid: u32,
    /// The layout.
    pub version: Version,
    /// Seconds between beats (10 on 7+, 5 on 6.x; tests use less).
    pub beat: Duration,
    /// Whether `info.embedded` is true.
    pub embedded: bool,
}

/// A heartbeat writing the records of one Sidekiq version; see the module documentation.
pub struct FakeSidekiq {
    /// The identity.
    pub identity: String,
    config: FakeConfig,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSidekiq {
    /// One ordinary process (no key prefix, not embedded) of `version` for `host`, beating
    /// every `beat`.
    pub fn plain(url: String, host: &str, pid: u32, version: Version, beat: Duration) -> Self {
        Self::start(FakeConfig {
            url,
            prefix: String::new(),
            host: host.to_owned(),
            pid,
            version,
            beat,
            embedded: false,
        })
    }

    /// Starts beating at once (like Sidekiq, whose first beat is at start-up).
    pub fn start(config: FakeConfig) -> Self {
        let identity = format!("{}:{}:{:012x}", config.host, config.pid, config.pid * 7919);
        let info = info_json(&config, &identity);
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (config, identity, state, stop) = (
                config.clone(),
                identity.clone(),
                state.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut con = connect(&config.url);
                while !stop.load(Ordering::SeqCst) {
                    let wedged = state.lock().unwrap().wedged;
                    if !wedged {
                        beat(&mut con, &config, &identity, &info, &state);
                    }
                    // Sleep in small steps so that `stop` is prompt.
                    let until = Instant::now() + config.beat;
                    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        };
        FakeSidekiq {
            identity,
            config,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Starts a job (as if fetched now) that runs for `duration`. `payload` is the job JSON.
    pub fn run_job(&self, payload: &str, duration: Duration) {
        let mut state = self.state.lock().unwrap();
        state.next_thread += 1;
        let thread = format!("t{:02}", state.next_thread);
        let queue = serde_json::from_str::<Value>(payload).unwrap()["queue"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        state.jobs.insert(
            thread,
            FakeJob {
                payload: payload.to_owned(),
                queue,
                run_at: epoch() as u64,
                ends: Instant::now() + duration,
            },
        );
    }

    /// Whether a `TSTP` has taken effect.
    pub fn is_quiet(&self) -> bool {
        let state = self.state.lock().unwrap();
        state.quiet || state.quiet_pending
    }

    /// Stops beating without leaving (a wedged process), or resumes.
    pub fn set_wedged(&self, wedged: bool) {
        self.state.lock().unwrap().wedged = wedged;
    }

    /// Leaves like Sidekiq after SIGTERM: `SREM processes`, `UNLINK` the work hash; the
    /// process hash is left to expire with its last values.
    pub fn stop_clean(&mut self) {
        self.halt();
        let mut con = connect(&self.config.url);
        let p = &self.config.prefix;
        redis::pipe()
            .cmd("SREM")
            .arg(format!("{p}processes"))
            .arg(&self.identity)
            .ignore()
            .cmd("UNLINK")
            .arg(format!(
                "{p}{}:{}",
                self.identity,
                self.config.version.work_suffix()
            ))
            .ignore()
            .query::<()>(&mut con)
            .unwrap();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FakeSidekiq {
    fn drop(&mut self) {
        self.halt();
    }
}

fn info_json(config: &FakeConfig, identity: &str) -> String {
    let mut info = fixture(config.version, "info.json");
    info["hostname"] = json!(config.host);
    info["pid"] = json!(config.pid);
    info["identity"] = json!(identity);
    info["started_at"] = json!(epoch());
    if config.version != Version::V6 {
        info["embedded"] = json!(config.embedded);
    }
    info.to_string()
}

/// One heartbeat, as `launcher.rb` writes it in each version.
fn beat(
    con: &mut redis::Connection,
    config: &FakeConfig,
    identity: &str,
    info: &str,
    state: &Mutex<State>,
) {
    let p = &config.prefix;
    let (quiet, jobs) = {
        let mut state = state.lock().unwrap();
        let now = Instant::now();
        state.jobs.retain(|_, job| job.ends > now);
        if state.quiet_pending {
            state.quiet = true;
        }
        (state.quiet, state.jobs.clone())
    };
    let work_key = format!("{p}{identity}:{}", config.version.work_suffix());
    let mut work = redis::pipe();
    work.atomic().cmd("UNLINK").arg(&work_key).ignore();
    if !jobs.is_empty() {
        let entries: Vec<(String, String)> = jobs
            .iter()
            .map(|(thread, job)| {
                let entry =
                    json!({"queue": job.queue, "payload": job.payload, "run_at": job.run_at});
                (thread.clone(), entry.to_string())
            })
            .collect();
        work.cmd("HSET").arg(&work_key).arg(entries).ignore();
        work.cmd("EXPIRE").arg(&work_key).arg(60).ignore();
    }
    work.query::<()>(con).unwrap();

    let key = format!("{p}{identity}");
    let mut fields: Vec<(&str, String)> = vec![
        ("info", info.to_owned()),
        ("busy", jobs.len().to_string()),
        ("beat", epoch().to_string()),
        ("rtt_us", "180".to_owned()),
        ("quiet", quiet.to_string()),
        ("rss", "30100".to_owned()),
    ];
    if config.version == Version::V8 {
        fields.push(("concurrency", "3".to_owned()));
    }
    let set = if config.version == Version::V6 {
        "HMSET"
    } else {
        "HSET"
    };
    let (signal,): (Option<String>,) = redis::pipe()
        .atomic()
        .cmd("SADD")
        .arg(format!("{p}processes"))
        .arg(identity)
        .ignore()
        .cmd("EXISTS")
        .arg(&key)
        .ignore()
        .cmd(set)
        .arg(&key)
        .arg(fields)
        .ignore()
        .cmd("EXPIRE")
        .arg(&key)
        .arg(60)
        .ignore()
        .cmd("RPOP")
        .arg(format!("{p}{identity}-signals"))
        .query(con)
        .unwrap();
    // launcher.rb sends itself the popped signal; the TSTP handler quiets the launcher, which
    // shows in `quiet` on the next beat. Embedded processes ignore remote signals.
    if signal.as_deref() == Some("TSTP") && !config.embedded {
        state.lock().unwrap().quiet_pending = true;
    }
}
