//! The probe on records written the way Sidekiq 7.3 and 8.1 write them (and 6.x under
//! redis-namespace), on odd records, and on processes that stop beating or ignore signals.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::fake_sidekiq::fixture;
use support::*;

const BEAT: Duration = Duration::from_millis(500);

fn sleep_job(jid: &str, version: Version) -> String {
    let mut job = json!({
        "retry": false, "queue": "default", "args": [3, jid], "class": "SleepJob", "jid": jid,
    });
    let now = epoch();
    if version == Version::V8 {
        job["created_at"] = json!((now * 1000.0) as u64);
        job["enqueued_at"] = json!((now * 1000.0) as u64);
    } else {
        job["created_at"] = json!(now);
        job["enqueued_at"] = json!(now);
    }
    job.to_string()
}

fn layout_status_and_drain(version: Version, host: &str, wrapper: &str, release: &str) {
    let redis = RedisServer::start();
    let sidekiq = fake(&redis, host, 4242, version, BEAT);
    let probe = Probe::start(&redis.url(), host, &["--drain-budget=30s"]);
    sidekiq.run_job(
        &fixture(version, "job-activejob.json").to_string(),
        Duration::from_secs(4),
    );
    sidekiq.run_job(
        &sleep_job("aaaaaaaaaaaaaaaaaaaaaaaa", version),
        Duration::from_secs(2),
    );
    assert!(wait_until(Duration::from_secs(5), || {
        probe
            .status()
            .processes
            .first()
            .is_some_and(|p| p.busy == Some(2))
    }));

    let status = probe.status();
    let p = &status.processes[0];
    assert_eq!(p.identity, sidekiq.identity);
    assert_eq!(p.state, "live");
    assert_eq!(p.version.as_deref(), Some(release));
    assert_eq!(p.concurrency, Some(3));
    assert_eq!(p.quiet, Some(false));
    let layout = match version {
        Version::V7 => "7.x",
        Version::V8 => "8.x",
        Version::V6 => "6.x",
    };
    assert_eq!(p.layout.as_deref(), Some(layout));
    assert_eq!(p.jobs.len(), 2);
    let aj = p.jobs.iter().find(|j| j.class == "HardJob").unwrap();
    assert_eq!(aj.wrapper.as_deref(), Some(wrapper));
    assert!(
        p.jobs
            .iter()
            .any(|j| j.class == "SleepJob" && j.wrapper.is_none())
    );
    assert!(p.errors.is_empty() && p.warnings.is_empty(), "{p:?}");
    assert_eq!(status.readiness.code.as_str(), "ok");

    let called = Instant::now();
    let reply = probe.get_within("/drain", Duration::from_secs(40));
    let took = called.elapsed().as_secs_f64();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(sidekiq.is_quiet());
    // The longest job had < 4 s left; quiet shows within two beats, `busy` on the next beat.
    assert!(took < 4.0 + 2.0 * BEAT.as_secs_f64() + 1.0, "{took:.1}s");
    assert_eq!(
        probe.get("/readyz").body,
        format!("fail: quiet (draining): {}\n", sidekiq.identity)
    );
}

#[test]
fn sidekiq_7_3_records_with_activejob() {
    layout_status_and_drain(
        Version::V7,
        "layout-seven",
        "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
        "7.3.2",
    );
}

#[test]
fn sidekiq_8_1_records_with_the_concurrency_field_and_millisecond_timestamps() {
    layout_status_and_drain(
        Version::V8,
        "layout-eight",
        "Sidekiq::ActiveJob::Wrapper",
        "8.1.7",
    );
}

#[test]
fn sidekiq_6_under_redis_namespace() {
    let redis = RedisServer::start();
    let host = "namespaced";
    let sidekiq = FakeSidekiq::start(FakeConfig {
        url: redis.url(),
        prefix: "myapp:".into(),
        host: host.into(),
        pid: 77,
        version: Version::V6,
        beat: BEAT,
        embedded: false,
    });
    sidekiq.run_job(
        &sleep_job("bbbbbbbbbbbbbbbbbbbbbbbb", Version::V6),
        Duration::from_secs(2),
    );
    // Without the namespace the probe sees nothing...
    let blind = Probe::start(&redis.url(), host, &[]);
    assert_eq!(
        blind.get("/readyz").body,
        "fail: no Sidekiq process with hostname \"namespaced\" in Redis\n"
    );
    // ...with it, everything, including `:workers`.
    let probe = Probe::start(&redis.url(), host, &["--redis-namespace=myapp"]);
    assert!(wait_until(Duration::from_secs(5), || {
        probe
            .status()
            .processes
            .first()
            .is_some_and(|p| p.jobs.len() == 1)
    }));
    let status = probe.status();
    assert_eq!(status.redis.namespace.as_deref(), Some("myapp"));
    assert_eq!(status.processes[0].layout.as_deref(), Some("6.x"));
    let reply = probe.get_within("/drain", Duration::from_secs(20));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        sidekiq.is_quiet(),
        "TSTP must go to myapp:<identity>-signals"
    );
}

#[test]
fn bad_records_are_clear_errors_in_status_not_panics() {
    let redis = RedisServer::start();
    let host = "odd";
    redis.cli(&[
        "SADD",
        "processes",
        "odd:101:aaaaaaaaaaaa",
        "odd:102:bbbbbbbbbbbb",
        "odd:103:cccccccccccc",
        "odd:104:dddddddddddd",
    ]);
    let beat = epoch().to_string();
    redis.cli(&[
        "HSET",
        "odd:101:aaaaaaaaaaaa",
        "info",
        "{\"hostname\":",
        "busy",
        "0",
        "beat",
        &beat,
        "quiet",
        "false",
    ]);
    redis.cli(&[
        "HSET",
        "odd:102:bbbbbbbbbbbb",
        "info",
        r#"{"hostname":"odd","pid":102}"#,
        "busy",
        "0",
        "quiet",
        "false",
    ]);
    redis.cli(&[
        "HSET",
        "odd:103:cccccccccccc",
        "info",
        r#"{"hostname":"odd","pid":103,"version":"banana"}"#,
        "busy",
        "0",
        "beat",
        &beat,
        "quiet",
        "false",
    ]);
    redis.cli(&["SET", "odd:104:dddddddddddd", "not a hash"]);
    let probe = Probe::start(&redis.url(), host, &[]);

    let status = probe.status();
    let errors: Vec<(String, Vec<String>)> = status
        .processes
        .iter()
        .map(|p| (p.identity.clone(), p.errors.clone()))
        .collect();
    assert_eq!(
        errors,
        [
            (
                "odd:101:aaaaaaaaaaaa".to_owned(),
                vec!["process record unreadable: field `info` is not valid JSON: EOF while parsing a value at line 1 column 12".to_owned()]
            ),
            (
                "odd:102:bbbbbbbbbbbb".to_owned(),
                vec!["process record unreadable: field `beat` is missing".to_owned()]
            ),
            (
                "odd:103:cccccccccccc".to_owned(),
                vec!["process record unreadable: Sidekiq version \"banana\" is unknown: sidekiq-guard reads the records of Sidekiq 6.x, 7.x and 8.x".to_owned()]
            ),
            (
                "odd:104:dddddddddddd".to_owned(),
                vec!["Redis refused to read odd:104:dddddddddddd: WRONGTYPE Operation against a key holding the wrong kind of value".to_owned()]
            ),
        ]
    );
    assert!(status.processes.iter().all(|p| p.state == "unreadable"));
    let why = "process odd:101:aaaaaaaaaaaa cannot be read: field `info` is not valid JSON: EOF while parsing a value at line 1 column 12 (and 3 more unreadable)";
    let ready = probe.get("/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body, format!("fail: {why}\n"));
    // Restarting Sidekiq would not fix its records: liveness holds, and names them rather
    // than saying that no process of the pod is in Redis, while /status lists them.
    let live = probe.get("/livez");
    assert_eq!(live.status, 200);
    assert_eq!(
        live.body,
        format!("ok: {why}; liveness holds: restarting Sidekiq would not fix its records\n")
    );
    let status = probe.status();
    assert_eq!(status.liveness.code.as_str(), "unreadable");
    assert!(status.liveness.reason.starts_with(why), "{status:?}");
    assert_eq!(status.readiness.reason, why);

    // A healthy process next to them makes the pod ready; the odd ones stay reported.
    let _sidekiq = fake(&redis, host, 105, Version::V8, BEAT);
    assert!(
        wait_until(Duration::from_secs(70), || probe.get("/readyz").status
            == 200),
        "{}",
        probe.log()
    );
    assert_eq!(probe.status().processes.len(), 5);
    assert_eq!(probe.get("/metrics").status, 200);
    assert!(probe.log().contains("records cannot be read"));
}

#[test]
fn a_process_that_stops_beating_is_stale_even_after_its_hash_expires_until_replaced() {
    let redis = RedisServer::start();
    let host = "expiring";
    let sidekiq = fake(&redis, host, 1, Version::V7, BEAT);
    let probe = Probe::start(&redis.url(), host, &["--stale-after=3s"]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/livez")
        .body
        .starts_with("ok: 1 process")));

    // Wedged, and its hash expires (Sidekiq's 60 s TTL, shortened): still a member of
    // `processes`, so not gone — stale.
    sidekiq.set_wedged(true);
    redis.cli(&["EXPIRE", &sidekiq.identity, "1"]);
    assert!(wait_until(Duration::from_secs(3), || redis
        .cli(&["EXISTS", &sidekiq.identity])
        == "0"));
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/livez")
        .status
        == 503));
    let live = probe.get("/livez");
    assert!(
        live.body
            .starts_with(&format!("fail: heartbeat of {} is", sidekiq.identity)),
        "{}",
        live.body
    );
    assert_eq!(probe.status().processes[0].state, "expired");

    // The container restarts: a new process of the same pod replaces it.
    let _restarted = fake(&redis, host, 2, Version::V7, BEAT);
    assert!(
        wait_until(Duration::from_secs(5), || probe.get("/livez").status == 200),
        "{}",
        probe.log()
    );
    assert_eq!(probe.get("/readyz").status, 200);
}

#[test]
fn a_drain_outcome_ends_when_sidekiq_starts_again_in_the_pod() {
    // A liveness restart runs the preStop hook (`/drain`) and the pod lives on with a new
    // Sidekiq: its status must not keep calling the pod drained.
    let redis = RedisServer::start();
    let host = "restarted";
    let mut sidekiq = fake(&redis, host, 1, Version::V7, BEAT);
    let probe = Probe::start(&redis.url(), host, &["--drain-budget=30s", "--settle=0s"]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .status
        == 200));
    let reply = probe.get_within("/drain", Duration::from_secs(10));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(probe.status().drain.state, "drained");

    sidekiq.stop_clean();
    let restarted = fake(&redis, host, 2, Version::V7, BEAT);
    assert!(
        wait_until(Duration::from_secs(5), || probe.status().drain.state
            == "idle"),
        "{}",
        probe.log()
    );
    assert_eq!(probe.get("/readyz").status, 200);
    // A later preStop drains the new process.
    let reply = probe.get_within("/drain", Duration::from_secs(10));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(restarted.is_quiet());
}

#[test]
fn a_sidekiq_restarted_under_a_running_drain_is_left_working() {
    // The kubelet gave up on the preStop of a liveness restart (a grace period below the
    // budget) and started the container again while the drain still waits for the old
    // process's job: the new Sidekiq must not be quieted.
    let redis = RedisServer::start();
    let host = "cut-short";
    let old = fake(&redis, host, 1, Version::V6, BEAT);
    old.run_job(
        &sleep_job("bbbbbbbbbbbbbbbbbbbbbbbb", Version::V6),
        Duration::from_secs(600),
    );
    let probe = Probe::start(&redis.url(), host, &["--drain-budget=60s", "--settle=0s"]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .status()
        .processes
        .first()
        .is_some_and(|p| p.busy == Some(1))));
    std::thread::scope(|s| {
        let drain = s.spawn(|| probe.get_within("/drain", Duration::from_secs(60)));
        assert!(wait_until(Duration::from_secs(5), || old.is_quiet()));
        // SIGKILLed: its record stays, busy, until it is two and a half beats (of 5 s) late.
        old.set_wedged(true);
        std::thread::sleep(BEAT * 2);
        let restarted = fake(&redis, host, 2, Version::V6, BEAT);
        let started = Instant::now();
        while !drain.is_finished() {
            assert!(!restarted.is_quiet(), "{}", probe.log());
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{}",
                probe.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let reply = drain.join().unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.body.contains(&format!("{} gone", old.identity)),
            "{}",
            reply.body
        );
        assert!(!reply.body.contains(&restarted.identity), "{}", reply.body);
        std::thread::sleep(BEAT * 3);
        assert!(!restarted.is_quiet(), "{}", probe.log());
        assert_eq!(probe.status().drain.state, "idle");
        assert_eq!(probe.get("/readyz").status, 200);
    });
}

#[test]
fn an_embedded_process_is_reported_instead_of_waited_for() {
    let redis = RedisServer::start();
    let host = "embedded";
    let _puma = FakeSidekiq::start(FakeConfig {
        url: redis.url(),
        prefix: String::new(),
        host: host.into(),
        pid: 9,
        version: Version::V7,
        beat: BEAT,
        embedded: true,
    });
    let probe = Probe::start(&redis.url(), host, &["--drain-budget=30s"]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .status
        == 200));
    let called = Instant::now();
    let reply = probe.get_within("/drain", Duration::from_secs(10));
    assert!(called.elapsed() < Duration::from_secs(2));
    assert_eq!(reply.status, 409, "{}", reply.body);
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["state"], "unquietable");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("embedded Sidekiq ignores remote signals")
    );
}
