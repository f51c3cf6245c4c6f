//! What the sidecar costs, measured in one run against real parts:
//!
//!     cargo bench -p sidekiq-guard-probe --bench probe
//!
//! Starts a `redis-server` and a real Sidekiq 6.4.1 (`-c 10`, busy with long jobs), then the
//! release probe, and prints: resident memory at rest and under load, `/livez` latency at
//! concurrency 16 (a fresh connection per request, as the kubelet probes), the Redis commands
//! and round trips per probe counted by Redis (`INFO commandstats`), Redis's own time per
//! command, the stripped binary size, and the arithmetic for 1,000 pods. The VM's speed drifts,
//! so `uptime` is printed before and after.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::*;

const CONCURRENCY: usize = 16;
const LOAD: Duration = Duration::from_secs(10);

fn uptime() -> String {
    let out = std::process::Command::new("uptime").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `VmRSS` and `VmHWM` of `pid`, KiB.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// `usec_per_call` of `command` from `INFO commandstats`.
fn usec_per_call(redis: &RedisServer, command: &str) -> f64 {
    let stats = redis.cli(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| {
            rest.split(',')
                .find_map(|kv| kv.strip_prefix("usec_per_call="))
        })
        .map_or(0.0, |v| v.parse().unwrap())
}

/// CPU seconds (user + system) `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

struct Load {
    latencies: Vec<Duration>,
    failures: u64,
    elapsed: f64,
}

/// Runs `CONCURRENCY` clients against `/livez` for `LOAD`, each either back to back or sending
/// every `interval`.
/// Returns the result and the peak RSS sampled meanwhile.
fn load(probe: &Probe, interval: Option<Duration>) -> (Load, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let port = probe.port;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(50_000);
                let mut failures = 0u64;
                let mut next = Instant::now()
                    + interval.map_or(Duration::ZERO, |d| d / CONCURRENCY as u32 * i as u32);
                while !stop.load(Ordering::Relaxed) {
                    let started = match interval {
                        Some(interval) => {
                            let now = Instant::now();
                            if next > now {
                                std::thread::sleep(next - now);
                            }
                            // Catch up without bursts if this thread overslept; latency is
                            // measured from the actual send: at this rate nothing queues in
                            // the probe, and a late wake-up of the client is not its latency.
                            next = next.max(Instant::now()) + interval;
                            Instant::now()
                        }
                        None => Instant::now(),
                    };
                    match http(port, "GET", "/livez", Duration::from_secs(5)) {
                        Ok(reply) if reply.status == 200 => latencies.push(started.elapsed()),
                        _ => failures += 1,
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < LOAD {
        peak = peak.max(rss(probe.pid()).0);
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let mut result = Load {
        latencies: Vec::new(),
        failures: 0,
        elapsed: 0.0,
    };
    for worker in workers {
        let (l, f) = worker.join().unwrap();
        result.latencies.extend(l);
        result.failures += f;
    }
    result.elapsed = started.elapsed().as_secs_f64();
    result.latencies.sort();
    (result, peak)
}

fn report(what: &str, load: &Load, cpu: f64) {
    let l = &load.latencies;
    println!(
        "/livez at concurrency {CONCURRENCY}, {what}, {:.0}s: {} requests ({:.0}/s), {} failed; probe CPU {:.0}% of a core, {:.0} µs per request",
        load.elapsed,
        l.len(),
        l.len() as f64 / load.elapsed,
        load.failures,
        cpu / load.elapsed * 100.0,
        cpu / l.len() as f64 * 1e6,
    );
    println!(
        "  latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(l, 0.50).as_secs_f64() * 1e3,
        percentile(l, 0.90).as_secs_f64() * 1e3,
        percentile(l, 0.99).as_secs_f64() * 1e3,
        l.last().unwrap().as_secs_f64() * 1e3,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter.
    println!("uptime before: {}", uptime());
    println!("cpus: {}", std::thread::available_parallelism().unwrap());

    let redis = RedisServer::start();
    let host = "bench-pod";
    let _sidekiq = Sidekiq::start(&redis, host, 10, 5);
    let probe = Probe::start(
        &redis.url(),
        host,
        // The steady state at once: the loads below start within the 30 s during which a new
        // process's siblings are looked for (one SMEMBERS more per read).
        &["--log-format=json", "--log-level=info", "--settle=0s"],
    );
    assert!(
        wait_until(Duration::from_secs(30), || probe.get("/readyz").status
            == 200),
        "Sidekiq did not come up"
    );
    let jobs: Vec<(f64, String)> = (0..10).map(|i| (300.0, format!("bench{i}"))).collect();
    let jobs: Vec<(f64, &str)> = jobs.iter().map(|(s, m)| (*s, m.as_str())).collect();
    enqueue(&redis, &jobs);
    assert!(wait_until(Duration::from_secs(20), || {
        probe
            .status()
            .processes
            .first()
            .is_some_and(|p| p.busy == Some(10))
    }));
    let status = probe.status();
    println!(
        "Sidekiq {}: {} busy of {} threads, {} jobs in its work hash",
        status.processes[0].layout.as_deref().unwrap_or("?"),
        status.processes[0].busy.unwrap_or(0),
        status.processes[0].concurrency.unwrap_or(0),
        status.processes[0].jobs.len()
    );

    // Memory at rest, after a few probes.
    for _ in 0..20 {
        probe.get("/livez");
        probe.get("/readyz");
    }
    std::thread::sleep(Duration::from_secs(2));
    let (rest, _) = rss(probe.pid());
    println!("RSS at rest: {:.1} MiB", mib(rest));

    // /livez at concurrency 16, a new connection per request: first as fast as the clients can
    // go (throughput-bound: latency is mostly queueing on this 2-core VM, which the clients,
    // Sidekiq and Redis share with the probe), then at a fixed 2,000 requests/s (already ten
    // thousand times what the kubelet sends one pod), where latency is the probe's own.
    let before = probe.status().redis;
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let cpu_before = cpu_seconds(probe.pid());
    let (saturated, peak) = load(&probe, None);
    let cpu_saturated = cpu_seconds(probe.pid()) - cpu_before;
    report("saturating", &saturated, cpu_saturated);
    let cpu_before = cpu_seconds(probe.pid());
    let (paced, peak2) = load(&probe, Some(Duration::from_micros(8_000)));
    report(
        "at 2,000 req/s",
        &paced,
        cpu_seconds(probe.pid()) - cpu_before,
    );
    let (_, hwm) = rss(probe.pid());
    let after = probe.status().redis;
    let latencies = saturated.latencies;
    println!(
        "RSS under load: peak sampled {:.1} MiB, high-water mark {:.1} MiB",
        mib(peak.max(peak2)),
        mib(hwm)
    );
    let reads = after.reads - before.reads;
    println!(
        "  Redis during both loads: {} reads for {} requests (one read per --refresh-after=1s, shared by all waiting probes), {} SISMEMBER + {} HGETALL + {} SMEMBERS",
        reads,
        latencies.len() + paced.latencies.len(),
        redis.calls("sismember"),
        redis.calls("hgetall"),
        redis.calls("smembers")
    );

    // Cost of one probe read: a second probe that reads Redis on every request.
    let each = Probe::start(
        &redis.url(),
        host,
        // The steady state (once the 30 s of looking for a new process's siblings are over).
        &["--refresh-after=1ns", "--log-level=warn", "--settle=0s"],
    );
    for _ in 0..5 {
        each.get("/livez");
    }
    let before = each.status().redis;
    redis.cli(&["CONFIG", "RESETSTAT"]);
    const PROBES: u64 = 200;
    for _ in 0..PROBES {
        assert_eq!(each.get("/livez").status, 200);
    }
    let (sismember, hgetall, smembers) = (
        redis.calls("sismember"),
        redis.calls("hgetall"),
        redis.calls("smembers"),
    );
    let usec = usec_per_call(&redis, "sismember") + usec_per_call(&redis, "hgetall");
    let after = each.status().redis;
    // The /status read itself is a full read: subtract it.
    let round_trips = after.round_trips - before.round_trips - 1;
    let commands = sismember + hgetall + smembers;
    println!(
        "per probe (/livez, /readyz): {:.2} round trips, {:.2} commands ({} SISMEMBER, {} HGETALL, {} SMEMBERS over {PROBES} probes), {:.1} µs of Redis time",
        round_trips as f64 / PROBES as f64,
        commands as f64 / PROBES as f64,
        sismember,
        hgetall,
        smembers,
        usec
    );
    redis.cli(&["CONFIG", "RESETSTAT"]);
    each.get("/status");
    println!(
        "per /status or drain poll (with the work hash; 6.x reads :work and :workers): {} commands",
        redis.calls("sismember") + redis.calls("hgetall") + redis.calls("smembers")
    );

    // SMEMBERS of a 1,000-process fleet, which the probe sends every --rediscover (5 min), and
    // when the pod's processes change.
    let members: Vec<String> = (0..1000)
        .map(|i| format!("pod-{i}:1:0123456789ab"))
        .collect();
    let mut args = vec!["SADD", "processes"];
    args.extend(members.iter().map(String::as_str));
    redis.cli(&args);
    redis.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..20 {
        redis.cli(&["SMEMBERS", "processes"]);
    }
    let smembers_usec = usec_per_call(&redis, "smembers");
    println!("SMEMBERS of 1,000 identities: {smembers_usec:.1} µs of Redis time");

    // Binary size.
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_sidekiq-guard-probe"));
    let stripped = std::env::temp_dir().join("sidekiq-guard-probe.stripped");
    std::fs::copy(binary, &stripped).unwrap();
    let strip = std::process::Command::new("strip").arg(&stripped).status();
    let size = std::fs::metadata(&stripped).unwrap().len();
    let _ = std::fs::remove_file(&stripped);
    println!(
        "binary: {:.2} MiB{} (release, x86_64, dynamically linked to glibc)",
        size as f64 / 1_048_576.0,
        if strip.is_ok_and(|s| s.success()) {
            " stripped"
        } else {
            " (strip failed: unstripped)"
        }
    );

    // 1,000 pods, with the probe timings the webhook injects: readiness every 10 s, liveness
    // every 15 s (startup only while booting), plus a rediscovery every 5 minutes.
    let pods = 1000.0;
    let probe_reads = pods * (1.0 / 10.0 + 1.0 / 15.0);
    let per_probe = commands as f64 / PROBES as f64;
    let rediscoveries = pods / 300.0;
    let redis_time = probe_reads * usec + rediscoveries * smembers_usec;
    println!(
        "1,000 pods: {:.0} probe reads/s × {:.0} commands = {:.0} commands/s, plus {:.1} SMEMBERS/s of 1,000 identities (one per pod every 5 min); Redis busy {:.1} ms per second ({:.2}% of one core)",
        probe_reads,
        per_probe,
        probe_reads * per_probe,
        rediscoveries,
        redis_time / 1000.0,
        redis_time / 10_000.0
    );
    println!(
        "  for comparison, Sidekiq's own traffic at 1,000 processes: 13 commands per heartbeat (tests/data/redis/sidekiq-7.3/monitor-beat-and-term.txt) every 10 s = 1,300 commands/s, plus a 2 s BRPOP per idle thread (0.5 commands/s each)"
    );
    println!("uptime after: {}", uptime());
}
