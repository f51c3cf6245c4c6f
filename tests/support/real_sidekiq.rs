//! A real Sidekiq (Debian's 6.4.1) for tests, running `TimedJob` from `timed_jobs.rb`, killed
//! when dropped (also when the test panics); jobs are enqueued through Sidekiq's own client.
//! Shared by the probe's and the plugin's tests (`#[path]` include, next to `redis_server`).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::redis_server::{RedisServer, send_signal};

/// Polls `condition` every 100 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The job file with `SleepJob` and `TimedJob`.
pub fn jobs_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("tests/support/timed_jobs.rb"))
        .find(|file| file.exists())
        .expect("tests/support/timed_jobs.rb in the workspace")
}

/// A real Sidekiq (`sidekiq -r timed_jobs.rb -c N -t T`) whose identity carries `host` (through
/// `DYNO`, as Sidekiq reads it).
pub struct Sidekiq {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sidekiq {
    pub fn start(redis: &RedisServer, host: &str, concurrency: u32, timeout_secs: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sidekiq.log");
        let child = Command::new("sidekiq")
            .arg("-r")
            .arg(jobs_file())
            .args([
                "-c",
                &concurrency.to_string(),
                "-t",
                &timeout_secs.to_string(),
            ])
            .env("REDIS_URL", redis.url())
            .env("DYNO", host)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("sidekiq.err")).unwrap())
            .spawn()
            .expect("sidekiq (ruby-sidekiq) must be installed (scripts/setup)");
        Sidekiq {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(self.child.as_mut().unwrap(), timeout)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sidekiq {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped (TSTP'd by a test, or SIGSTOPped) Sidekiq must wake to die.
            send_signal(child.id(), "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Enqueues `TimedJob`s through Sidekiq's own client: `(seconds, marker)`.
pub fn enqueue(redis: &RedisServer, jobs: &[(f64, &str)]) {
    let mut command = Command::new("ruby");
    command
        .args(["-r", "sidekiq", "-r"])
        .arg(jobs_file())
        .args([
            "-e",
            "ARGV.each_slice(2) { |s, m| TimedJob.perform_async(Float(s), m) }",
        ])
        .env("REDIS_URL", redis.url());
    for (seconds, marker) in jobs {
        command.arg(seconds.to_string()).arg(marker);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "enqueue failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
