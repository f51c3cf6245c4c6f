//! `sidekiq_guard::redis` against a real `redis-server`: the records of every Sidekiq version
//! read in the documented number of round trips and commands (counted by Redis itself, `INFO
//! commandstats`), quiet signals pushed like Sidekiq's Web UI, odd records, outages, a hung
//! server, and passwords kept out of every message.
#![allow(clippy::unwrap_used)]

#[path = "support/fake_sidekiq.rs"]
mod fake_sidekiq;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use fake_sidekiq::{Version, connect, epoch, load_fixture};
use redis_server::RedisServer;
use sidekiq_guard::errors::chain as error_text;
use sidekiq_guard::probe::Now;
use sidekiq_guard::probe::observe::{ProcessError, ProcessState, Scope, Tracker};
use sidekiq_guard::redis::{Reader, RedisError, RedisSettings, UrlSource};
use sidekiq_guard::sidekiq::records::{Layout, RecordError};

fn clock() -> impl Fn() -> Now {
    sidekiq_guard::redis::system_clock()
}

fn reader(url: &str, namespace: Option<&str>) -> Reader {
    let mut settings = RedisSettings::new(url, UrlSource::Explicit);
    settings.namespace = namespace.map(str::to_owned);
    settings.response_timeout = Duration::from_millis(500);
    settings.connect_timeout = Duration::from_millis(500);
    settings.max_backoff = Duration::from_millis(800);
    Reader::new(settings).unwrap()
}

/// A tracker for one pod, in its steady state at once (no settling after new processes: the
/// tests count the commands of each read).
fn host(name: &str) -> Tracker {
    Tracker::new(Scope::Host(name.to_owned()), Duration::from_secs(600))
        .settling_for(Duration::ZERO)
}

#[tokio::test]
async fn every_version_reads_in_two_round_trips_then_one() {
    let server = RedisServer::start();
    let mut con = connect(&server.url());
    let v6 = load_fixture(
        &mut con,
        Version::V6,
        "",
        "process-hash.json",
        Some("workers-hash.json"),
        "",
    );
    let v7 = load_fixture(
        &mut con,
        Version::V7,
        "",
        "process-hash.json",
        Some("work-hash-activejob.json"),
        "",
    );
    let v8 = load_fixture(
        &mut con,
        Version::V8,
        "",
        "process-hash.json",
        Some("work-hash.json"),
        "",
    );
    // Another pod's process: listed by SMEMBERS, never read.
    server.cli(&["SADD", "processes", "other-pod:7:abcdef012345"]);
    server.cli(&["HSET", "other-pod:7:abcdef012345", "busy", "1"]);

    let reader = reader(&server.url(), None);
    let mut tracker = host("vm");
    let now = clock();
    server.cli(&["CONFIG", "RESETSTAT"]);

    // First read: SMEMBERS to learn the identities, then the three processes with both work
    // hash names (the version is not known yet).
    let cost = reader.refresh(&mut tracker, true, &now).await.unwrap();
    assert_eq!((cost.round_trips, cost.commands), (2, 1 + 3 * 4));
    assert_eq!(server.calls("smembers"), 1);
    assert_eq!(server.calls("sismember"), 3);
    assert_eq!(server.calls("hgetall"), 9);

    let p6 = tracker.get(&v6).unwrap();
    let p7 = tracker.get(&v7).unwrap();
    let p8 = tracker.get(&v8).unwrap();
    assert_eq!(p6.process().unwrap().layout, Layout::Sidekiq6);
    assert_eq!(p7.process().unwrap().layout, Layout::Sidekiq7);
    assert_eq!(p8.process().unwrap().concurrency, Some(3));
    let jobs = |t: &sidekiq_guard::probe::observe::Tracked| t.work.clone().unwrap().unwrap().jobs;
    assert_eq!(jobs(p6).len(), 3, "6.4.1's :workers hash");
    assert_eq!(jobs(p7)[0].class, "HardJob");
    assert_eq!(jobs(p8).len(), 3);
    assert!(tracker.get("other-pod:7:abcdef012345").is_none());

    // Steady state: one round trip, no SMEMBERS; `:work` only for versions that state it.
    server.cli(&["CONFIG", "RESETSTAT"]);
    let cost = reader.refresh(&mut tracker, true, &now).await.unwrap();
    assert_eq!((cost.round_trips, cost.commands), (1, 4 + 3 + 3));
    let light = reader.refresh(&mut tracker, false, &now).await.unwrap();
    assert_eq!((light.round_trips, light.commands), (1, 6));
    assert_eq!(server.calls("smembers"), 0);
    assert_eq!(server.calls("sismember"), 6);
    assert_eq!(server.calls("hgetall"), 10 - 3 + 3);
    let stats = reader.stats();
    assert_eq!(
        (stats.round_trips, stats.commands, stats.connects),
        (4, 13 + 10 + 6, 1)
    );
}

#[tokio::test]
async fn a_redis_namespace_prefixes_keys_but_not_members() {
    let server = RedisServer::start();
    let mut con = connect(&server.url());
    let id = load_fixture(
        &mut con,
        Version::V6,
        "namespace",
        "process-hash.json",
        Some("workers-hash.json"),
        "myapp:",
    );
    let reader = reader(&server.url(), Some("myapp"));
    let mut tracker = host("vm");
    reader.refresh(&mut tracker, true, clock()).await.unwrap();
    let tracked = tracker.get(&id).unwrap();
    assert_eq!(tracked.process().unwrap().busy, 2);
    assert_eq!(tracked.work.clone().unwrap().unwrap().jobs.len(), 2);

    reader.quiet(&id).await.unwrap();
    assert_eq!(
        server.cli(&["LRANGE", &format!("myapp:{id}-signals"), "0", "-1"]),
        "TSTP"
    );
    assert_eq!(server.cli(&["EXISTS", &format!("{id}-signals")]), "0");
}

#[tokio::test]
async fn quiet_pushes_tstp_in_one_multi_like_the_web_ui() {
    let server = RedisServer::start();
    let reader = reader(&server.url(), None);
    server.cli(&["CONFIG", "RESETSTAT"]);
    reader.quiet("vm:1:abc").await.unwrap();
    assert_eq!(
        server.cli(&["LRANGE", "vm:1:abc-signals", "0", "-1"]),
        "TSTP"
    );
    let ttl: u64 = server.cli(&["TTL", "vm:1:abc-signals"]).parse().unwrap();
    assert!((55..=60).contains(&ttl), "{ttl}");
    for command in ["multi", "lpush", "expire", "exec"] {
        assert_eq!(server.calls(command), 1, "{command}");
    }
}

#[tokio::test]
async fn a_process_that_left_is_gone_although_its_hash_lingers() {
    let server = RedisServer::start();
    let mut con = connect(&server.url());
    let id = load_fixture(&mut con, Version::V7, "", "process-hash.json", None, "");
    let reader = reader(&server.url(), None);
    let mut tracker = host("vm");
    reader.refresh(&mut tracker, false, clock()).await.unwrap();
    assert_eq!(tracker.live().count(), 1);
    // What SIGTERM does: SREM, but the hash stays with busy 3 and quiet true.
    server.cli(&["SREM", "processes", &id]);
    reader.refresh(&mut tracker, false, clock()).await.unwrap();
    assert_eq!(tracker.processes().count(), 0);
    assert_eq!(server.cli(&["HGET", &id, "busy"]), "3");
}

#[tokio::test]
async fn odd_records_are_reported_per_process_and_never_fail_the_read() {
    let server = RedisServer::start();
    let mut con = connect(&server.url());
    let good = load_fixture(&mut con, Version::V8, "", "process-hash.json", None, "");
    server.cli(&[
        "SADD",
        "processes",
        "vm:1:aaaaaaaaaaaa",
        "vm:2:bbbbbbbbbbbb",
        "vm:3:cccccccccccc",
    ]);
    server.cli(&[
        "HSET",
        "vm:1:aaaaaaaaaaaa",
        "info",
        "not json",
        "busy",
        "0",
        "beat",
        "1",
        "quiet",
        "false",
    ]);
    server.cli(&["SET", "vm:2:bbbbbbbbbbbb", "a string, not a hash"]);
    server.cli(&[
        "HSET",
        "vm:3:cccccccccccc",
        "info",
        r#"{"hostname":"vm","pid":3}"#,
        "beat",
        "1",
        "quiet",
        "false",
    ]);
    let reader = reader(&server.url(), None);
    let mut tracker = host("vm");
    reader.refresh(&mut tracker, true, clock()).await.unwrap();
    assert_eq!(tracker.redis().reachable(), Some(true));
    assert!(tracker.get(&good).unwrap().process().is_some());
    let state = |id: &str| tracker.get(id).unwrap().state.clone();
    assert!(matches!(
        state("vm:1:aaaaaaaaaaaa"),
        ProcessState::Unreadable(ProcessError::Record(RecordError::InvalidJson { .. }))
    ));
    let ProcessState::Unreadable(wrongtype) = state("vm:2:bbbbbbbbbbbb") else {
        panic!("expected an unreadable process");
    };
    assert!(
        error_text(&wrongtype).contains("WRONGTYPE"),
        "{}",
        error_text(&wrongtype)
    );
    let ProcessState::Unreadable(missing) = state("vm:3:cccccccccccc") else {
        panic!("expected an unreadable process");
    };
    assert_eq!(
        error_text(&missing),
        "process record unreadable: field `busy` is missing"
    );
}

#[tokio::test]
async fn outages_fail_fast_back_off_and_recover_without_showing_the_password() {
    let mut server = RedisServer::start_with(Some("s3cr3t-pw"));
    let reader = reader(&server.url(), None);
    let mut tracker = host("vm");
    let now = clock();
    reader.refresh(&mut tracker, false, &now).await.unwrap();

    server.stop();
    let started = Instant::now();
    let error = reader.refresh(&mut tracker, false, &now).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(tracker.redis().reachable(), Some(false));
    // A lost connection is retried at once; refused connects then back off.
    let _ = reader.refresh(&mut tracker, false, &now).await;
    let backoff = reader.refresh(&mut tracker, false, &now).await.unwrap_err();
    assert!(matches!(backoff, RedisError::Backoff { .. }), "{backoff:?}");
    for e in [&error, &backoff] {
        let text = error_text(e);
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("redis://:***@127.0.0.1"), "{text}");
    }
    assert!(
        !tracker
            .redis()
            .last_error
            .clone()
            .unwrap()
            .contains("s3cr3t")
    );

    server.restart();
    let restarted = Instant::now();
    loop {
        if reader.refresh(&mut tracker, false, &now).await.is_ok() {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(3), "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tracker.redis().reachable(), Some(true));
    assert!(reader.stats().connects >= 2);
}

#[tokio::test]
async fn a_hung_redis_times_out_instead_of_hanging() {
    let server = RedisServer::start();
    let reader = reader(&server.url(), None);
    let mut tracker = host("vm");
    let now = clock();
    reader.refresh(&mut tracker, false, &now).await.unwrap();
    server.signal("STOP");
    let started = Instant::now();
    let error = reader.refresh(&mut tracker, false, &now).await.unwrap_err();
    let took = started.elapsed();
    server.signal("CONT");
    assert!(matches!(error, RedisError::Timeout { .. }), "{error:?}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("Redis at {} did not answer within 0.5s", server.url())
    );
    reader.refresh(&mut tracker, false, &now).await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_without_the_password() {
    let server = RedisServer::start_with(Some("right-one"));
    let url = format!("redis://:wrong-one@127.0.0.1:{}/0", server.port());
    let reader = reader(&url, None);
    let mut tracker = host("vm");
    let error = reader
        .refresh(&mut tracker, false, clock())
        .await
        .unwrap_err();
    let text = error_text(&error);
    assert!(
        text.starts_with(&format!(
            "cannot connect to Redis at redis://:***@127.0.0.1:{}/0",
            server.port()
        )),
        "{text}"
    );
    assert!(text.contains("authentication failed"), "{text}");
    assert!(
        !text.contains("wrong-one") && !text.contains("right-one"),
        "{text}"
    );
}

#[tokio::test]
async fn rediss_with_rustls_and_ring_verifies_certificates_unless_told_not_to() {
    let server = RedisServer::start_tls();
    assert!(server.url().starts_with("rediss://"));
    let mut con = connect_tls_cli(&server);
    let id = con.load(Version::V8);

    // The throwaway CA is in no trust store: a clear certificate error.
    let verified = reader(&server.url(), None);
    let mut tracker = host("vm");
    let error = verified
        .refresh(&mut tracker, false, clock())
        .await
        .unwrap_err();
    let text = error_text(&error);
    assert!(
        text.starts_with("cannot connect to Redis at rediss://127.0.0.1:"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    // Told to accept it (Heroku-style self-signed Redis): reads.
    let mut settings = RedisSettings::new(server.url(), UrlSource::Explicit);
    settings.tls_insecure = true;
    let insecure = Reader::new(settings).unwrap();
    insecure
        .refresh(&mut tracker, false, clock())
        .await
        .unwrap();
    assert!(tracker.get(&id).unwrap().process().is_some());
    // The `#insecure` fragment redis-rs understands does the same.
    let fragment = reader(&format!("{}#insecure", server.url()), None);
    fragment
        .refresh(&mut host("vm"), false, clock())
        .await
        .unwrap();
}

/// Loads fixtures through `redis-cli --tls` (the test's own client has no TLS).
struct TlsCli<'a>(&'a RedisServer);

fn connect_tls_cli(server: &RedisServer) -> TlsCli<'_> {
    TlsCli(server)
}

impl TlsCli<'_> {
    fn load(&mut self, version: Version) -> String {
        let hash = fake_sidekiq::fixture(version, "process-hash.json");
        let info: serde_json::Value = serde_json::from_str(hash["info"].as_str().unwrap()).unwrap();
        let id = info["identity"].as_str().unwrap().to_owned();
        let beat = epoch().to_string();
        let mut args = vec!["HSET".to_owned(), id.clone()];
        for (k, v) in fake_sidekiq::pairs(&hash) {
            args.push(k.clone());
            args.push(if k == "beat" { beat.clone() } else { v });
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.0.cli(&args);
        self.0.cli(&["SADD", "processes", &id]);
        id
    }
}

/// A Redis with the ACL user `sidekiq` and `password`, and a 7.x process in database 3.
fn with_user_and_process_in_db3(password: &str) -> (RedisServer, String) {
    let server = RedisServer::start();
    let password = format!(">{password}");
    server.cli(&["ACL", "SETUSER", "sidekiq", "on", &password, "~*", "+@all"]);
    let mut db3 = connect(&format!("redis://127.0.0.1:{}/3", server.port()));
    let id = load_fixture(&mut db3, Version::V7, "", "process-hash.json", None, "");
    (server, id)
}

#[tokio::test]
async fn username_password_and_database_number_are_honoured() {
    let (server, id) = with_user_and_process_in_db3("w0rker-pw");

    let url = format!("redis://sidekiq:w0rker-pw@127.0.0.1:{}/3", server.port());
    let reader = reader(&url, None);
    let mut tracker = host("vm");
    reader.refresh(&mut tracker, false, clock()).await.unwrap();
    assert!(tracker.get(&id).unwrap().process().is_some());
    assert_eq!(
        reader.settings().redacted_url(),
        format!("redis://sidekiq:***@127.0.0.1:{}/3", server.port())
    );
    // Database 0 has nothing.
    let mut empty = host("vm");
    let db0 = format!("redis://sidekiq:w0rker-pw@127.0.0.1:{}/0", server.port());
    self::reader(&db0, None)
        .refresh(&mut empty, false, clock())
        .await
        .unwrap();
    assert_eq!(empty.processes().count(), 0);
}

#[tokio::test]
async fn a_plus_in_the_password_and_a_database_in_the_query_read_as_sidekiq_reads_them() {
    // Sidekiq's clients decode user info as a form component (`+` is a space), and Sidekiq 7+
    // takes the database from `?db=` when the path names none.
    let (server, id) = with_user_and_process_in_db3("w0rker pw");
    let url = format!("redis://sidekiq:w0rker+pw@127.0.0.1:{}?db=3", server.port());
    let mut tracker = host("vm");
    reader(&url, None)
        .refresh(&mut tracker, false, clock())
        .await
        .unwrap();
    assert!(tracker.get(&id).unwrap().process().is_some());
}

#[tokio::test]
async fn a_server_that_accepts_but_never_answers_hits_the_connect_timeout() {
    // The kernel completes the TCP handshake; nothing ever answers `SELECT 3`.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "redis://127.0.0.1:{}/3",
        silent.local_addr().unwrap().port()
    );
    let reader = reader(&url, None);
    let started = Instant::now();
    let error = reader
        .refresh(&mut host("vm"), false, clock())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, RedisError::Timeout { .. }), "{error:?}");
    assert!(took < Duration::from_millis(1200), "{took:?}");
}
