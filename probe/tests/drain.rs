//! `/drain` against a real Sidekiq 6.4.1 (5 s beats): no job is ever lost, the drain returns
//! as soon as the jobs are done, and a job longer than the budget is left to Sidekiq's SIGTERM,
//! which pushes it back to its queue.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Sidekiq 6.4.1's heartbeat period.
const BEAT: f64 = 5.0;

fn ready(probe: &Probe) -> bool {
    probe.get("/readyz").status == 200
}

#[test]
fn drain_then_sigterm_loses_no_job_and_returns_as_soon_as_the_jobs_are_done() {
    let redis = RedisServer::start();
    let host = "drain-no-loss";
    let mut sidekiq = Sidekiq::start(&redis, host, 3, 5);
    let probe = Probe::start(&redis.url(), host, &["--drain-budget=60s"]);
    assert!(
        wait_until(Duration::from_secs(30), || ready(&probe)),
        "Sidekiq never became ready:\n{}\n{}",
        probe.log(),
        sidekiq.log()
    );

    let jobs = [
        (8.0, "j0"),
        (3.0, "j1"),
        (5.0, "j2"),
        (1.0, "j3"),
        (6.0, "j4"),
        (2.0, "j5"),
        (7.0, "j6"),
        (4.0, "j7"),
    ];
    enqueue(&redis, &jobs);
    assert!(wait_until(Duration::from_secs(10), || {
        members(&redis, "sg:started").len() >= 3
    }));
    std::thread::sleep(Duration::from_secs(1));

    let called = epoch();
    let reply = probe.get_within("/drain", Duration::from_secs(90));
    let returned = epoch();
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, probe.log());
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["state"], "drained", "{body}");

    // Every job that started has finished: the drain waited for all of them.
    let started = members(&redis, "sg:started");
    let done = members(&redis, "sg:done");
    assert!(
        started.is_subset(&done),
        "still running at drain end: started {started:?}, done {done:?}"
    );

    // In flight during the drain: every job that started (those fetched after the call, before
    // the quiet took effect, included). The drain must return within the remaining run time of
    // the longest of them plus two beats (the quiet's latency, and `busy` being written on beats
    // only) plus one second.
    let done_at = times(&redis, "sg:done_at");
    let last_end = started
        .iter()
        .map(|m| done_at[m])
        .fold(f64::NEG_INFINITY, f64::max);
    let remaining = (last_end - called).max(0.0);
    let took = returned - called;
    eprintln!("/drain took {took:.1}s; the longest in-flight job had {remaining:.1}s left");
    assert!(
        took <= remaining + 2.0 * BEAT + 1.0,
        "/drain took {took:.1}s; longest in-flight job had {remaining:.1}s left\n{}",
        probe.log()
    );
    assert!(
        returned >= last_end,
        "returned before the last job finished"
    );

    // The kubelet now sends SIGTERM: Sidekiq is quiet and idle, so it exits at once.
    sidekiq.signal("TERM");
    assert!(
        sidekiq.wait_exit(Duration::from_secs(15)).is_some(),
        "Sidekiq did not exit"
    );

    // Nothing lost: every job completed or is still in its queue, never both, never neither.
    let done = members(&redis, "sg:done");
    let queued = queued_markers(&redis);
    for (_, marker) in jobs {
        let in_queue = queued.iter().filter(|m| *m == marker).count();
        assert_eq!(
            usize::from(done.contains(marker)) + in_queue,
            1,
            "{marker}: done {done:?}, queued {queued:?}"
        );
    }
    // The quiet stopped fetching: some jobs never started and wait for the next worker.
    assert!(
        !queued.is_empty(),
        "every job ran: the drain did not quiet Sidekiq"
    );
    for marker in &queued {
        assert!(
            !started.contains(marker),
            "{marker} started but was not finished"
        );
    }
}

#[test]
fn a_job_longer_than_the_budget_times_out_clearly_and_sigterm_requeues_it() {
    let redis = RedisServer::start();
    let host = "drain-budget";
    let mut sidekiq = Sidekiq::start(&redis, host, 2, 3);
    let probe = Probe::start(&redis.url(), host, &["--drain-budget=12s"]);
    assert!(
        wait_until(Duration::from_secs(30), || ready(&probe)),
        "{}",
        sidekiq.log()
    );

    enqueue(&redis, &[(60.0, "long"), (2.0, "short")]);
    assert!(wait_until(Duration::from_secs(10), || {
        members(&redis, "sg:started").len() == 2
    }));

    let called = Instant::now();
    let reply = probe.get_within("/drain", Duration::from_secs(30));
    let took = called.elapsed().as_secs_f64();
    assert_eq!(reply.status, 504, "{}", reply.body);
    // The budget covers the quiet's latency (two 5 s beats), so the job is seen quiet.
    assert!(
        (12.0..13.5).contains(&took),
        "gave up after {took:.1}s, budget 12s"
    );
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["state"], "budget_exhausted");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("drain budget 12s exhausted after 12s; still running: drain-budget:"),
        "{message}"
    );
    assert!(message.contains("quiet, 1 busy [TimedJob ("), "{message}");
    assert!(
        message.contains("pushes unfinished jobs back to their queues"),
        "{message}"
    );
    assert!(
        probe.log().contains("drain budget 12s exhausted"),
        "not logged"
    );

    // The kubelet sends SIGTERM after the hook: Sidekiq waits -t 3, then requeues.
    sidekiq.signal("TERM");
    assert!(
        sidekiq.wait_exit(Duration::from_secs(15)).is_some(),
        "Sidekiq did not exit"
    );
    let done = members(&redis, "sg:done");
    assert!(done.contains("short"));
    assert!(!done.contains("long"));
    assert_eq!(
        queued_markers(&redis),
        ["long"],
        "the long job must be back in its queue"
    );
}

/// A Redis restarted without its data mid-drain (or failed over to a replica that lagged) shows
/// no record of a Sidekiq still running a job; it writes them again on its next beat. The drain
/// must not take it for gone and let SIGTERM cut the job.
#[test]
fn a_redis_that_loses_its_data_mid_drain_does_not_end_the_drain_early() {
    let redis = RedisServer::start();
    let host = "drain-data-loss";
    let sidekiq = Sidekiq::start(&redis, host, 1, 5);
    let probe = Probe::start(&redis.url(), host, &["--drain-budget=60s"]);
    assert!(
        wait_until(Duration::from_secs(30), || ready(&probe)),
        "{}",
        sidekiq.log()
    );
    enqueue(&redis, &[(22.0, "long")]);
    assert!(wait_until(Duration::from_secs(10), || {
        members(&redis, "sg:started").contains("long")
    }));
    let port = probe.port;
    let drain = std::thread::spawn(move || {
        let reply = http(port, "GET", "/drain", Duration::from_secs(90));
        (reply, epoch())
    });
    // Quiet within two beats, then every key is lost.
    std::thread::sleep(Duration::from_secs_f64(2.0 * BEAT + 1.0));
    assert_eq!(redis.cli(&["FLUSHALL"]).trim(), "OK");
    let (reply, returned) = drain.join().unwrap();
    let reply = reply.unwrap();
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, probe.log());
    let done_at = times(&redis, "sg:done_at");
    let finished = done_at.get("long").copied().unwrap_or_else(|| {
        panic!(
            "/drain returned while the job still ran: {}\n{}",
            reply.body,
            probe.log()
        )
    });
    assert!(
        returned >= finished,
        "/drain returned {:.1}s before the job finished: {}",
        finished - returned,
        reply.body
    );
}
