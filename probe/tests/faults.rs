//! Faults with real parts: Redis going away and coming back on the same port, and a wedged
//! (SIGSTOPped) Sidekiq 6.4.1.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;

#[test]
fn a_redis_outage_fails_readiness_at_once_liveness_after_the_window_and_both_recover() {
    let mut redis = RedisServer::start();
    let host = "outage";
    let _sidekiq = Sidekiq::start(&redis, host, 2, 2);
    let probe = Probe::start(&redis.url(), host, &["--outage-window=6s"]);
    assert!(wait_until(Duration::from_secs(30), || probe
        .get("/readyz")
        .status
        == 200));
    assert_eq!(probe.get("/livez").status, 200);

    redis.stop();
    let stopped = Instant::now();
    // The next probe: the kubelet probes at most once a second, and a read younger than
    // --refresh-after (1 s) answers without asking Redis again.
    std::thread::sleep(Duration::from_millis(1100));
    let ready = probe.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.starts_with("fail: Redis unreachable: "),
        "{}",
        ready.body
    );
    let status = probe.status();
    assert_eq!(status.redis.reachable, Some(false));
    assert!(status.redis.error.is_some());

    // Liveness holds for the outage window, counted from the first failed read, then fails
    // for good: no flapping on the way. `unreachable_for_secs` is read right after each probe.
    let mut failed_at = None;
    while stopped.elapsed() < Duration::from_secs(10) {
        let live = probe.get("/livez");
        let down = probe.status().redis.unreachable_for_secs.unwrap();
        match (live.status, failed_at) {
            (200, None) => assert!(down < 6.5, "still alive {down:.1}s into the outage"),
            (503, None) => {
                assert!(
                    down >= 6.0,
                    "failed {down:.1}s into the outage: {}",
                    live.body
                );
                assert!(live.body.contains("(outage window 6.0s)"), "{}", live.body);
                failed_at = Some(down);
            }
            (503, Some(_)) => {}
            (code, _) => panic!("/livez answered {code} after failing: {}", live.body),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(failed_at.is_some(), "liveness never failed");

    // Redis is back (empty): Sidekiq re-registers on its next beat and the probe, never
    // restarted, recovers both.
    redis.restart();
    let back = Instant::now();
    assert!(
        wait_until(Duration::from_secs(20), || {
            probe.get("/livez").status == 200 && probe.get("/readyz").status == 200
        }),
        "no recovery:\n{}",
        probe.log()
    );
    eprintln!(
        "recovered {:.1}s after Redis came back",
        back.elapsed().as_secs_f64()
    );
    assert!(probe.log().contains("healthy"), "{}", probe.log());
    assert!(
        probe.log().contains("Redis reachable again"),
        "{}",
        probe.log()
    );
}

#[test]
fn a_wedged_sidekiq_fails_liveness_after_the_stale_threshold_and_recovers() {
    let redis = RedisServer::start();
    let host = "wedged";
    let sidekiq = Sidekiq::start(&redis, host, 2, 2);
    let probe = Probe::start(&redis.url(), host, &["--stale-after=12s"]);
    assert!(wait_until(Duration::from_secs(30), || probe
        .get("/readyz")
        .status
        == 200));

    sidekiq.signal("STOP");
    std::thread::sleep(Duration::from_millis(300));
    // Ages are measured against the last beat Sidekiq wrote (epoch seconds, as in Redis).
    let beat = probe.status().processes[0].beat.unwrap();
    let mut failed = false;
    while epoch() - beat < 16.0 {
        let before = epoch() - beat;
        let status = probe.get("/livez").status;
        let after = epoch() - beat;
        if status == 503 {
            assert!(
                after >= 12.0,
                "failed with a heartbeat {after:.1}s old (threshold 12s)"
            );
            failed = true;
            break;
        }
        assert!(
            before < 12.5,
            "still alive with a heartbeat {before:.1}s old"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(failed, "liveness never failed");
    let live = probe.get("/livez");
    assert!(
        live.body.starts_with("fail: heartbeat of wedged:"),
        "{}",
        live.body
    );
    assert!(live.body.contains("(threshold 12s)"), "{}", live.body);
    let ready = probe.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);

    sidekiq.signal("CONT");
    assert!(
        wait_until(Duration::from_secs(8), || probe.get("/livez").status == 200),
        "liveness did not recover"
    );
    assert!(wait_until(Duration::from_secs(3), || probe
        .get("/readyz")
        .status
        == 200));
}

#[test]
fn one_slow_redis_call_never_fails_a_probe() {
    let redis = RedisServer::start();
    let host = "slow";
    let _sidekiq = fake(&redis, host, 1, Version::V7, Duration::from_millis(500));
    let probe = Probe::start(&redis.url(), host, &[]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .status
        == 200));

    // Redis hangs for 3 s: longer than a probe may wait (--answer-timeout 800ms) and than a
    // read may take (--read-timeout 2s). Probes keep answering quickly, and liveness holds.
    std::thread::sleep(Duration::from_millis(1100));
    redis.signal("STOP");
    let hung = Instant::now();
    while hung.elapsed() < Duration::from_secs(3) {
        let asked = Instant::now();
        let live = probe.get("/livez");
        assert!(
            asked.elapsed() < Duration::from_millis(1000),
            "/livez took {:?}",
            asked.elapsed()
        );
        assert_eq!(live.status, 200, "{}", live.body);
        std::thread::sleep(Duration::from_millis(200));
    }
    redis.signal("CONT");
    assert!(wait_until(Duration::from_secs(5), || {
        probe.get("/readyz").status == 200 && probe.get("/livez").body.starts_with("ok: 1 process")
    }));
}

#[test]
fn a_redis_that_refuses_the_probes_credentials_fails_readiness_but_never_liveness() {
    let redis = RedisServer::start_with(Some("s3cret-pass"));
    // The probe is given no password: every read is refused with NOAUTH.
    let url = format!("redis://127.0.0.1:{}/0", redis.port());
    let probe = Probe::start(&url, "refused", &["--outage-window=1s"]);
    std::thread::sleep(Duration::from_millis(2500));
    let ready = probe.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.starts_with("fail: Redis refuses the probe: ") && ready.body.contains("NOAUTH"),
        "{}",
        ready.body
    );
    // Past the outage window: restarting Sidekiq would not fix the probe's settings.
    let live = probe.get("/livez");
    assert_eq!(live.status, 200, "{}", live.body);
    assert!(
        live.body.contains("liveness does not fail"),
        "{}",
        live.body
    );
    assert!(!live.body.contains("s3cret"));
}

#[test]
fn credentials_in_the_url_are_read_as_sidekiqs_clients_read_them() {
    let redis = RedisServer::start_with(Some("s3cret-pass"));
    let port = redis.port();
    // Sidekiq 7+ (redis-client) reads a lone user-info part as the password; Sidekiq 6
    // (redis-rb) retries `AUTH user password` refused by a plain requirepass server with the
    // password alone. The probe must reach Redis wherever Sidekiq does.
    for url in [
        format!("redis://s3cret-pass@127.0.0.1:{port}/0"),
        format!("redis://app:s3cret-pass@127.0.0.1:{port}/0"),
    ] {
        let probe = Probe::start(&url, "creds", &[]);
        assert!(
            wait_until(Duration::from_secs(5), || probe.status().redis.reachable
                == Some(true)),
            "{url}: {:?}",
            probe.status().redis.error
        );
    }
}

/// The kubelet sends SIGTERM when `/drain` returns, and the grace period counts the drain
/// budget for it: a Redis that stops answering mid-drain must not stretch the drain past its
/// budget by a read timeout.
#[test]
fn a_drain_against_a_hung_redis_ends_at_its_budget() {
    let redis = RedisServer::start();
    let host = "hung";
    let _sidekiq = fake(&redis, host, 1, Version::V7, Duration::from_millis(500));
    let probe = Probe::start(&redis.url(), host, &["--drain-budget=3s"]);
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .status
        == 200));
    redis.signal("STOP");
    let asked = Instant::now();
    // The kubelet's probes go on during the drain, and each asks for a read of Redis: none may
    // hold the drain past its budget either.
    let probing = std::sync::atomic::AtomicBool::new(true);
    let drained = std::thread::scope(|scope| {
        scope.spawn(|| {
            while probing.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = probe.get_within("/livez", Duration::from_secs(10));
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let drained = probe.get_within("/drain", Duration::from_secs(10));
        probing.store(false, std::sync::atomic::Ordering::Relaxed);
        drained
    });
    let took = asked.elapsed();
    redis.signal("CONT");
    assert_eq!(drained.status, 504, "{}", drained.body);
    assert!(
        drained
            .body
            .contains("Redis did not answer before the drain budget ran out"),
        "{}",
        drained.body
    );
    // Before: the budget plus a read timeout (4.0 s for a 3 s budget).
    assert!(took < Duration::from_millis(3_600), "{took:?}");
}

/// The drain budget runs from the kubelet's call of `/drain`, which the grace period counts
/// from, even when the probe is in the middle of a read of a Redis that stopped answering.
#[test]
fn a_drain_asked_during_a_hung_read_ends_at_its_budget_from_the_call() {
    let redis = RedisServer::start();
    let host = "midread";
    let _sidekiq = fake(&redis, host, 1, Version::V7, Duration::from_millis(500));
    let probe = Probe::start(
        &redis.url(),
        host,
        &["--drain-budget=3s", "--read-timeout=3s"],
    );
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .status
        == 200));
    // Older than --refresh-after: the next probe request starts a read, which hangs.
    std::thread::sleep(Duration::from_millis(1200));
    redis.signal("STOP");
    let drained = std::thread::scope(|scope| {
        scope.spawn(|| probe.get_within("/readyz", Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(300));
        let asked = Instant::now();
        let drained = probe.get_within("/drain", Duration::from_secs(15));
        (drained, asked.elapsed())
    });
    redis.signal("CONT");
    let (drained, took) = drained;
    assert_eq!(drained.status, 504, "{}", drained.body);
    // Before: the rest of the hung read (2.7 s) plus the whole budget.
    assert!(took < Duration::from_millis(3_600), "{took:?}");
}

/// A restarted Redis closes the probe's idle connection; the next read must reconnect at once
/// rather than report Redis unreachable until the read after it.
#[test]
fn a_connection_redis_closed_while_idle_is_replaced_within_the_read() {
    let mut redis = RedisServer::start();
    let probe = Probe::start(&redis.url(), "nobody", &[]);
    let none = "fail: no Sidekiq process with hostname \"nobody\" in Redis";
    assert!(wait_until(Duration::from_secs(5), || probe
        .get("/readyz")
        .body
        .starts_with(none)));
    redis.restart();
    // Older than --refresh-after: the next probe reads Redis, on the connection it had.
    std::thread::sleep(Duration::from_millis(1200));
    let ready = probe.get("/readyz");
    assert!(ready.body.starts_with(none), "{}", ready.body);
}
