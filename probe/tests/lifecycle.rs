//! The probe's own life: SIGTERM in classic and native mode, what each probe costs Redis,
//! the HTTP surface, idempotent drains, and settings it refuses.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const BEAT: Duration = Duration::from_millis(500);

#[test]
fn classic_mode_keeps_serving_after_sigterm_until_sidekiq_has_left_redis() {
    let redis = RedisServer::start();
    let host = "classic";
    let mut sidekiq = Sidekiq::start(&redis, host, 2, 2);
    let mut probe = Probe::start(&redis.url(), host, &["--mode=classic"]);
    assert!(wait_until(Duration::from_secs(30), || probe
        .get("/readyz")
        .status
        == 200));

    // The kubelet signals every container at once; the sidecar must outlive Sidekiq.
    probe.signal("TERM");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        probe.wait_exit(Duration::ZERO).is_none(),
        "exited while Sidekiq runs"
    );
    assert_eq!(probe.get("/livez").status, 200);
    assert!(probe.status().shutting_down);

    sidekiq.signal("TERM");
    assert!(sidekiq.wait_exit(Duration::from_secs(10)).is_some());
    let left = Instant::now();
    let exit = probe
        .wait_exit(Duration::from_secs(5))
        .expect("the probe did not exit");
    assert!(exit.success(), "{exit:?}");
    assert!(
        left.elapsed() < Duration::from_secs(3),
        "{:?}",
        left.elapsed()
    );
    assert!(
        probe
            .log()
            .contains("this pod's Sidekiq has left Redis: exiting")
    );
}

#[test]
fn classic_mode_reads_redis_afresh_on_sigterm_before_judging_sidekiq_gone() {
    let redis = RedisServer::start();
    let host = "late";
    let mut probe = Probe::start(&redis.url(), host, &["--mode=classic"]);
    // The probe's start-up read finds no process: Sidekiq boots after it.
    assert!(wait_until(Duration::from_secs(5), || probe
        .log()
        .contains("no Sidekiq process")));
    let mut sidekiq = fake(&redis, host, 1, Version::V7, BEAT);
    // Nothing asks the probe anything (the user kept their own probes): its last read is the
    // empty one when SIGTERM comes.
    std::thread::sleep(Duration::from_secs(1));
    probe.signal("TERM");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        probe.wait_exit(Duration::ZERO).is_none(),
        "exited while Sidekiq runs: {}",
        probe.log()
    );
    sidekiq.stop_clean();
    let exit = probe
        .wait_exit(Duration::from_secs(5))
        .expect("the probe did not exit once Sidekiq left");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn classic_mode_gives_up_at_its_exit_deadline() {
    let redis = RedisServer::start();
    let host = "deadline";
    let _sidekiq = fake(&redis, host, 1, Version::V7, BEAT);
    let mut probe = Probe::start(&redis.url(), host, &["--exit-deadline=2s"]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .status
        == 200));
    let signalled = Instant::now();
    probe.signal("TERM");
    let exit = probe
        .wait_exit(Duration::from_secs(6))
        .expect("did not exit");
    let took = signalled.elapsed();
    assert!(exit.success());
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(probe.log().contains("exit deadline passed"));
}

#[test]
fn native_mode_exits_promptly_on_sigterm() {
    let redis = RedisServer::start();
    let host = "native";
    let _sidekiq = fake(&redis, host, 1, Version::V8, BEAT);
    let mut probe = Probe::start(&redis.url(), host, &["--mode=native"]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .status
        == 200));
    let signalled = Instant::now();
    probe.signal("TERM");
    let exit = probe
        .wait_exit(Duration::from_secs(3))
        .expect("did not exit");
    assert!(exit.success());
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "{:?}",
        signalled.elapsed()
    );
}

#[test]
fn each_probe_costs_one_round_trip_of_two_commands() {
    let redis = RedisServer::start();
    let host = "frugal";
    let _sidekiq = fake(&redis, host, 1, Version::V7, BEAT);
    // Reuse no reading, so that every probe reads Redis; and the steady state at once, not
    // after the 30 s during which a new process's siblings are looked for.
    let probe = Probe::start(&redis.url(), host, &["--refresh-after=1ns", "--settle=0s"]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .status
        == 200));
    let before = probe.status().redis;
    redis.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..20 {
        assert_eq!(probe.get("/livez").status, 200);
    }
    // Counted by Redis itself. (The fake Sidekiq never sends these commands.)
    assert_eq!(redis.calls("sismember"), 20);
    assert_eq!(redis.calls("hgetall"), 20);
    assert_eq!(redis.calls("smembers"), 0);
    let after = probe.status().redis;
    assert_eq!(after.reads - before.reads, 21);
    // The 20 probes plus the /status read itself (three commands: it includes `:work`).
    assert_eq!(after.round_trips - before.round_trips, 21);
    assert_eq!(after.commands - before.commands, 20 * 2 + 3);
}

#[test]
fn endpoints_metrics_and_an_idempotent_drain() {
    let redis = RedisServer::start();
    let host = "surface";
    let sidekiq = fake(&redis, host, 1, Version::V7, BEAT);
    let probe = Probe::start(&redis.url(), host, &["--drain-budget=20s", "--mode=native"]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .status
        == 200));

    assert_eq!(probe.get("/nope").status, 404);
    let post = http(probe.port, "POST", "/livez", Duration::from_secs(2)).unwrap();
    assert_eq!(post.status, 405);
    // A HEAD (an uptime checker, a curl -I) does not drain.
    let head = http(probe.port, "HEAD", "/drain", Duration::from_secs(2)).unwrap();
    assert_eq!(head.status, 405);
    // An oversized request head is refused, not buffered (hyper's default would take 400 KiB
    // per connection of a sidecar limited to 32 MiB).
    // The probe may answer 431 and close before the client has finished writing, and the
    // close may reset the connection: either way, never a 200.
    let huge = format!(
        "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        "x".repeat(64 * 1024)
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", probe.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = std::io::Write::write_all(&mut stream, huge.as_bytes());
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert_eq!(probe.get("/livez").status, 200);

    let status = probe.status();
    assert_eq!(status.schema, 1);
    assert_eq!(status.mode, "native");
    assert_eq!(status.pod.hostname, host);
    assert_eq!(status.drain.state, "idle");
    assert_eq!(status.drain.budget_secs, 20.0);
    assert_eq!(status.redis.url, redis.url());

    // The kubelet may call the hook twice: both calls wait for the same drain, and the
    // process is signalled once.
    redis.cli(&["CONFIG", "RESETSTAT"]);
    sidekiq.run_job(
        r#"{"class":"SleepJob","queue":"default","jid":"c1"}"#,
        Duration::from_secs(2),
    );
    let port = probe.port;
    let second = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        http(port, "GET", "/drain", Duration::from_secs(30)).unwrap()
    });
    let first = probe.get_within("/drain", Duration::from_secs(30));
    let second = second.join().unwrap();
    assert_eq!(
        (first.status, second.status),
        (200, 200),
        "{}\n{}",
        first.body,
        second.body
    );
    let a: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    let b: serde_json::Value = serde_json::from_str(&second.body).unwrap();
    assert_eq!(
        a["started_at"], b["started_at"],
        "the second call joined the first drain"
    );
    assert_eq!(redis.calls("lpush"), 1);
    // Called again later: already quiet and idle, answered at once without a new signal.
    let again = Instant::now();
    assert_eq!(probe.get("/drain").status, 200);
    assert!(again.elapsed() < Duration::from_secs(2));
    assert_eq!(redis.calls("lpush"), 1);
    assert!(probe.log().contains("joining the running drain"));

    let metrics = probe.get("/metrics");
    assert_eq!(metrics.status, 200);
    for line in [
        "sidekiq_guard_probe_redis_up 1",
        "sidekiq_guard_probe_processes 1",
        "sidekiq_guard_probe_quiet_processes 1",
        "sidekiq_guard_probe_drains_total{outcome=\"drained\"} 2",
        "sidekiq_guard_probe_quiet_signals_total 1",
        "sidekiq_guard_probe_http_requests_total{path=\"/livez\",code=\"405\"} 1",
        "sidekiq_guard_probe_http_requests_total{path=\"other\",code=\"404\"} 1",
    ] {
        assert!(
            metrics.body.contains(line),
            "{line} missing from\n{}",
            metrics.body
        );
    }
}

/// The stderr of `probe`, which must stop at start-up with exit status 1.
fn refused(mut probe: Command) -> String {
    let output = probe.stdin(Stdio::null()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_provider_holding_a_url_is_refused_without_showing_the_password() {
    let mut probe = Command::new(env!("CARGO_BIN_EXE_sidekiq-guard-probe"));
    probe
        .args(["--listen=127.0.0.1:0", "--hostname=x", "--log-format=text"])
        .env("REDIS_PROVIDER", "redis://:hunter2@redis:6379/0");
    let stderr = refused(probe);
    assert!(
        stderr.starts_with("sidekiq-guard-probe: invalid settings: Redis settings: REDIS_PROVIDER holds a URL (redis://:***@redis:6379/0)"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // With JSON logs, the fatal error is one JSON line too, which a log pipeline parses.
    let output = Command::new(env!("CARGO_BIN_EXE_sidekiq-guard-probe"))
        .args(["--listen=127.0.0.1:0", "--hostname=x", "--log-format=json"])
        .env("REDIS_PROVIDER", "redis://:hunter2@redis:6379/0")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["level"], "ERROR");
    assert_eq!(lines[0]["message"], "fatal");
    let error = lines[0]["error"].as_str().unwrap();
    assert!(error.starts_with("invalid settings: Redis settings: REDIS_PROVIDER holds a URL (redis://:***@redis:6379/0)"), "{error}");
}

/// The injected sidecar listens on `[::]`: the kubelet's probes and preStop reach it at the
/// pod's IPv4 address and at its IPv6 one alike (IPv6-only and IPv6-first clusters). Where
/// loopback has no IPv6 address, only IPv4 can be called; where the kernel has none, the next
/// test's case applies.
#[test]
fn listening_on_every_address_answers_ipv4_and_ipv6() {
    if std::net::TcpListener::bind("[::]:0").is_err() {
        eprintln!(
            "no IPv6 in this kernel: see without_ipv6_in_the_kernel_it_listens_on_ipv4_and_says_so"
        );
        return;
    }
    let redis = RedisServer::start();
    let probe = Probe::start_on_every_address(&redis.url(), "dual");
    for ip in reachable_loopbacks() {
        let addr = SocketAddr::new(ip.parse().unwrap(), probe.port);
        let reply = http_at(addr, "GET", "/livez", Duration::from_secs(5)).unwrap();
        assert_eq!(reply.status, 200, "{addr}: {reply:?}");
    }
    let log = probe.log();
    assert!(
        log.contains(&format!("listen=[::]:{} ", probe.port)),
        "{log}"
    );
}

/// `[::]` answers IPv4 even where `net.ipv6.bindv6only` is 1 (a `hostNetwork` pod has the
/// node's), which a plain IPv6 socket does not: reproduced in a network namespace of its own
/// (`tests/support/bindv6only.py`), where the machine lets one be made.
#[test]
fn listening_on_every_address_answers_ipv4_even_where_bindv6only_is_set() {
    let unshare = ["--map-root-user", "--net"];
    if !Command::new("unshare")
        .args(unshare)
        .arg("true")
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!(
            "cannot make a network namespace here (unshare --map-root-user --net): not checked"
        );
        return;
    }
    let driver = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/support/bindv6only.py"
    );
    let output = Command::new("unshare")
        .args(unshare)
        .args([
            "python3",
            driver,
            env!("CARGO_BIN_EXE_sidekiq-guard-probe"),
            "7434",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "refused 200",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// On a node whose kernel has no IPv6 (`ipv6.disable=1`, reproduced by a seccomp filter), the
/// IPv6 socket is refused: the probe listens on IPv4 instead, says so, and answers.
#[test]
fn without_ipv6_in_the_kernel_it_listens_on_ipv4_and_says_so() {
    let redis = RedisServer::start();
    let probe = Probe::start_without_ipv6(&redis.url(), "x");
    assert_eq!(probe.get("/livez").status, 200);
    let log = probe.log();
    assert!(
        log.contains("no IPv6 on this node; listening on IPv4 only asked=[::]:"),
        "{log}"
    );
    assert!(
        log.contains(&format!("listen=0.0.0.0:{} ", probe.port)),
        "{log}"
    );
}

/// Without IPv6, and with the IPv4 port taken too, the probe stops at once naming both.
#[test]
fn without_ipv6_and_the_ipv4_port_in_use_it_says_which_it_tried() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut probe = Command::new(no_ipv6::wrapper(std::path::Path::new(env!(
        "CARGO_TARGET_TMPDIR"
    ))));
    probe
        .arg(env!("CARGO_BIN_EXE_sidekiq-guard-probe"))
        .args([
            &format!("--listen=[::]:{port}"),
            "--hostname=x",
            "--log-format=text",
        ])
        .env("REDIS_URL", "redis://127.0.0.1:1/0");
    let stderr = refused(probe);
    assert!(
        stderr.contains(&format!("sidekiq-guard-probe: cannot listen on [::]:{port}: no IPv6 on this node, and cannot listen on 0.0.0.0:{port} instead: Address already in use")),
        "{stderr}"
    );
}

#[test]
fn redis_down_at_start_is_not_ready_but_alive_and_answers_fast() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let probe = Probe::start(&url, "late", &[]);
    let ready = probe.get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("Redis unreachable"), "{}", ready.body);
    assert_eq!(probe.get("/livez").status, 200);
    // Nothing listens on the port: every probe still answers quickly.
    let started = Instant::now();
    for _ in 0..5 {
        probe.get("/livez");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn rediss_with_a_private_ca_given_by_ssl_cert_file() {
    let redis = RedisServer::start_tls();
    let beat = epoch().to_string();
    let info =
        r#"{"hostname":"tls-pod","pid":5,"started_at":1.0,"concurrency":2,"version":"7.3.2"}"#;
    redis.cli(&[
        "HSET",
        "tls-pod:5:abcabcabcabc",
        "info",
        info,
        "busy",
        "0",
        "beat",
        &beat,
        "quiet",
        "false",
    ]);
    redis.cli(&["SADD", "processes", "tls-pod:5:abcabcabcabc"]);
    let ca = redis.tls().unwrap().ca();

    // The CA is unknown to the system store: Redis is unreachable, with the reason.
    let unverified = Probe::start(&redis.url(), "tls-pod", &[]);
    let ready = unverified.get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("certificate"), "{}", ready.body);

    let probe = Probe::start_with_env(
        &redis.url(),
        "tls-pod",
        &[],
        &[("SSL_CERT_FILE", ca.as_os_str())],
    );
    let ready = probe.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(probe.status().redis.url.starts_with("rediss://127.0.0.1:"));
}

#[test]
fn concurrent_probes_share_one_read() {
    let redis = RedisServer::start();
    let host = "shared";
    let _sidekiq = fake(&redis, host, 1, Version::V8, BEAT);
    let probe = Probe::start(&redis.url(), host, &[]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .status
        == 200));
    let before = probe.status().redis.reads;
    let started = Instant::now();
    let port = probe.port;
    let clients: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| {
                        http(port, "GET", "/livez", Duration::from_secs(5))
                            .unwrap()
                            .status
                    })
                    .filter(|s| *s == 200)
                    .count()
            })
        })
        .collect();
    let ok: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(ok, 800);
    // One read per --refresh-after (1 s) at most, however many probes wait for it (+2 for
    // the reads at both ends, and the /status read below).
    let reads = probe.status().redis.reads - before;
    assert!(
        reads as f64 <= secs.ceil() + 3.0,
        "{reads} reads in {secs:.1}s for 800 probes"
    );
}

#[test]
fn metrics_alone_keep_the_gauges_current() {
    // With the user's own probes kept, only Prometheus may ask: its scrapes must read Redis.
    let redis = RedisServer::start();
    let host = "scraped";
    let probe = Probe::start(&redis.url(), host, &["--mode=native"]);
    let gauge = |name: &str| {
        probe
            .get("/metrics")
            .body
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")).map(str::to_owned))
    };
    assert_eq!(gauge("sidekiq_guard_probe_processes").as_deref(), Some("0"));
    let _sidekiq = fake(&redis, host, 1, Version::V7, BEAT);
    assert!(
        wait_until(Duration::from_secs(5), || gauge(
            "sidekiq_guard_probe_processes"
        )
        .as_deref()
            == Some("1")
            && gauge("sidekiq_guard_probe_ready").as_deref() == Some("1")),
        "{:?}",
        gauge("sidekiq_guard_probe_processes")
    );
}

/// Clients on the pod network that connect and never finish a request (a port scanner, a
/// stuck scraper) must not delay the kubelet's probes: a delayed probe restarts Sidekiq.
#[test]
fn silent_clients_do_not_delay_the_kubelets_probes() {
    use std::io::Write;
    let redis = RedisServer::start();
    let host = "crowded";
    let _sidekiq = fake(&redis, host, 1, Version::V7, BEAT);
    let probe = Probe::start(&redis.url(), host, &["--settle=0s"]);
    let silent: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", probe.port)).unwrap();
            stream.write_all(b"GET /livez HTTP/1.1\r\n").unwrap();
            stream
        })
        .collect();
    // The kubelet's default probe timeout.
    let answer = probe.get_within("/livez", Duration::from_secs(1));
    assert_eq!(answer.status, 200, "{}", answer.body);
    drop(silent);
}
