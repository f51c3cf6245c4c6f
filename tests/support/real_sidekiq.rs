//! A real Sidekiq (Debian's 6.4.1) for tests, running `TimedJob` from `timed_jobs.rb`, killed
//! when dropped (also when the test panics); jobs are enqueued through Sidekiq's own client.
//! Shared by the probe's and the plugin's tests (`#[path]` include, next to `redis_server`).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::Process;
use super::redis_server::RedisServer;

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
pub struct Sidekiq(Process);

impl Sidekiq {
    pub fn start(redis: &RedisServer, host: &str, concurrency: u32, timeout_secs: u32) -> Self {
        let mut command = Command::new("sidekiq");
        command
            .arg("-r")
            .arg(jobs_file())
            .args([
                "-c",
                &concurrency.to_string(),
                "-t",
                &timeout_secs.to_string(),
            ])
            .env("REDIS_URL", redis.url())
            .env("DYNO", host);
        Sidekiq(Process::spawn(command, "sidekiq"))
    }
}

impl std::ops::Deref for Sidekiq {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.0
    }
}

impl std::ops::DerefMut for Sidekiq {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
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
