//! Real parts for the probe's tests: `redis-server`, a real Sidekiq (Debian's 6.4.1), records
//! written the way 7.x/8.x write them, and the probe binary itself — each killed when dropped,
//! also when a test panics.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

#[path = "../../../tests/support/fake_sidekiq.rs"]
pub mod fake_sidekiq;
#[path = "../../../tests/support/no_ipv6.rs"]
pub mod no_ipv6;
#[path = "../../../tests/support/process.rs"]
pub mod process;
#[path = "../../../tests/support/real_sidekiq.rs"]
pub mod real_sidekiq;
#[path = "../../../tests/support/redis_server.rs"]
pub mod redis_server;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[allow(unused_imports)]
pub use fake_sidekiq::{FakeConfig, FakeSidekiq, Version, epoch};
#[allow(unused_imports)]
pub use process::{Process, wait_child};
#[allow(unused_imports)]
pub use real_sidekiq::{Sidekiq, enqueue, jobs_file, wait_until};
#[allow(unused_imports)]
pub use redis_server::{RedisServer, free_port, send_signal};
use sidekiq_guard::probe::report::Status;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// One HTTP/1.1 request on a fresh connection, as the kubelet sends its probes.
pub fn http(port: u16, method: &str, path: &str, timeout: Duration) -> Result<Reply, String> {
    http_at(
        SocketAddr::from(([127, 0, 0, 1], port)),
        method,
        path,
        timeout,
    )
}

/// [`http`] to `addr`, as the kubelet sends its probes to the pod's address.
pub fn http_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<Reply, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok(Reply {
        status,
        body: body.to_owned(),
    })
}

/// The loopback addresses this machine can be called at: `::1` only where loopback has IPv6
/// (many CI containers switch it off).
pub fn reachable_loopbacks() -> Vec<&'static str> {
    let mut ips = vec!["127.0.0.1"];
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        ips.push("::1");
    } else {
        eprintln!("no IPv6 on loopback here: only IPv4 is called");
    }
    ips
}

/// The probe binary under test.
pub struct Probe {
    process: Process,
    pub port: u16,
}

impl Probe {
    /// Starts the probe for `hostname` against `redis_url` with `args`, and waits until it
    /// answers.
    pub fn start(redis_url: &str, hostname: &str, args: &[&str]) -> Self {
        Self::start_with_env(redis_url, hostname, args, &[])
    }

    /// [`Probe::start`] with extra environment variables.
    pub fn start_with_env(
        redis_url: &str,
        hostname: &str,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let command = Command::new(env!("CARGO_BIN_EXE_sidekiq-guard-probe"));
        Self::start_program(command, "127.0.0.1", redis_url, hostname, args, env)
    }

    /// [`Probe::start`] listening on `[::]`, as the webhook injects it.
    pub fn start_on_every_address(redis_url: &str, hostname: &str) -> Self {
        let command = Command::new(env!("CARGO_BIN_EXE_sidekiq-guard-probe"));
        Self::start_program(command, "[::]", redis_url, hostname, &[], &[])
    }

    /// [`Probe::start`] listening on `[::]` where the kernel has no IPv6 ([`no_ipv6`]).
    pub fn start_without_ipv6(redis_url: &str, hostname: &str) -> Self {
        let mut command = Command::new(no_ipv6::wrapper(Path::new(env!("CARGO_TARGET_TMPDIR"))));
        command.arg(env!("CARGO_BIN_EXE_sidekiq-guard-probe"));
        Self::start_program(command, "[::]", redis_url, hostname, &[], &[])
    }

    /// `command`, the probe or a wrapper given it, with the probe's arguments.
    fn start_program(
        mut command: Command,
        host: &str,
        redis_url: &str,
        hostname: &str,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let port = free_port();
        command
            .arg(format!("--listen={host}:{port}"))
            .arg(format!("--hostname={hostname}"))
            .args(["--log-format=text", "--log-level=debug"])
            .args(args)
            .env("REDIS_URL", redis_url)
            .env_remove("REDIS_PROVIDER");
        for (name, _) in std::env::vars() {
            if name.starts_with("SIDEKIQ_GUARD_") {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().copied());
        let probe = Probe {
            process: Process::spawn(command, "probe"),
            port,
        };
        assert!(
            wait_until(Duration::from_secs(10), || probe.try_get("/livez").is_ok()),
            "the probe did not start:\n{}",
            probe.log()
        );
        probe
    }

    fn try_get(&self, path: &str) -> Result<Reply, String> {
        http(self.port, "GET", path, Duration::from_secs(5))
    }

    /// `GET path`, which must answer within 5 s.
    pub fn get(&self, path: &str) -> Reply {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    /// `GET path`, waiting up to `timeout` (for `/drain`).
    pub fn get_within(&self, path: &str, timeout: Duration) -> Reply {
        http(self.port, "GET", path, timeout)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    /// `/status`, parsed with the core's types (the plugin's view).
    pub fn status(&self) -> Status {
        let reply = self.get("/status");
        assert_eq!(reply.status, 200, "{}", reply.body);
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
    }
}

impl std::ops::Deref for Probe {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Probe {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// Members of a set.
pub fn members(redis: &RedisServer, key: &str) -> BTreeSet<String> {
    redis
        .cli(&["SMEMBERS", key])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A hash of epoch times.
pub fn times(redis: &RedisServer, key: &str) -> BTreeMap<String, f64> {
    let text = redis.cli(&["HGETALL", key]);
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].to_owned(), c[1].parse().unwrap()))
        .collect()
}

/// The markers of the jobs waiting in `queue:default`.
pub fn queued_markers(redis: &RedisServer) -> Vec<String> {
    redis
        .cli(&["LRANGE", "queue:default", "0", "-1"])
        .lines()
        .filter(|l| !l.is_empty())
        .map(|job| {
            let job: serde_json::Value = serde_json::from_str(job).unwrap();
            job["args"][1].as_str().unwrap().to_owned()
        })
        .collect()
}

/// A fake Sidekiq of `version` for `host` beating every `beat`.
pub fn fake(
    redis: &RedisServer,
    host: &str,
    pid: u32,
    version: Version,
    beat: Duration,
) -> FakeSidekiq {
    FakeSidekiq::plain(redis.url(), host, pid, version, beat)
}
