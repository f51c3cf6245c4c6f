//! Sidekiq's records as captured from real Sidekiq 6.4.1, 7.3.2 and 8.1.7
//! (`tests/data/redis/`), and property tests of the parsers: every layout Sidekiq writes reads
//! back to the values written, and no input at all makes them panic.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{Value, json};
use sidekiq_guard::sidekiq::records::{
    self, Identity, Keys, Layout, RecordError, RecordWarning, WorkKey,
};

fn fixture(path: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/redis")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn fields(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn process(path: &str) -> records::Process {
    let hash = fixture(path);
    let info: Value = serde_json::from_str(hash["info"].as_str().unwrap()).unwrap();
    records::parse_process(info["identity"].as_str().unwrap(), &fields(&hash)).unwrap()
}

#[test]
fn sidekiq_6_4_1_busy_process_and_its_workers() {
    let p = process("sidekiq-6.4.1/process-hash.json");
    assert_eq!(p.identity, "vm:2675:446ce2a40fb7");
    assert_eq!(p.layout, Layout::Sidekiq6);
    assert_eq!(p.layout.beat_secs(), 5);
    assert_eq!((p.busy, p.quiet, p.concurrency), (3, false, Some(3)));
    assert_eq!((p.rss_kb, p.rtt_us), (Some(29908), Some(219)));
    assert_eq!(p.beat, 1795660937.8004596);
    assert_eq!(p.info.hostname, "vm");
    assert_eq!(p.info.pid, 2675);
    assert_eq!(p.info.version, None);
    assert_eq!(p.info.queues, ["default"]);
    // Floats inside JSON read to within a few ULPs (serde_json's fast path), ample for seconds.
    assert!((p.info.started_at.unwrap() - 1795660932.7941813).abs() < 1e-5);
    assert!(!p.info.embedded);
    // Without a stated version, both names of the work hash are read.
    assert_eq!(p.work_keys(), &WorkKey::ALL);

    let work = records::parse_work(&fields(&fixture("sidekiq-6.4.1/workers-hash.json")));
    assert!(work.errors.is_empty());
    let jids: Vec<_> = work
        .jobs
        .iter()
        .map(|j| j.jid.as_deref().unwrap())
        .collect();
    // Same run_at: ordered by thread id.
    assert_eq!(
        jids,
        [
            "4e89677114564448067790e6",
            "6e3c6352caf3aefccf22e978",
            "8aa7a9dbed2e500b8a577744"
        ]
    );
    let job = &work.jobs[0];
    assert_eq!(
        (job.class.as_str(), job.wrapper.as_deref()),
        ("SleepJob", None)
    );
    assert_eq!(
        (job.queue.as_str(), job.thread.as_str()),
        ("default", "2yz")
    );
    assert_eq!(job.run_at, 1795660933.0);
    assert!((job.created_at.unwrap() - 1795660933.3116705).abs() < 1e-5);
    assert_eq!(job.elapsed(1795660943.5), 10.5);
}

#[test]
fn sidekiq_6_4_1_quiet_idle_and_exited_hashes() {
    let quiet = process("sidekiq-6.4.1/process-hash-quiet.json");
    assert!(quiet.quiet && quiet.busy == 3);
    let idle = process("sidekiq-6.4.1/process-hash-quiet-idle.json");
    assert!(idle.quiet && idle.busy == 0);
    // What SIGTERM leaves behind reads fine; telling that it is stale is the reader's job
    // (the identity is no longer in `processes`).
    let exited = process("sidekiq-6.4.1/process-hash-after-exit.json");
    assert_eq!((exited.quiet, exited.busy), (true, 3));
}

#[test]
fn sidekiq_6_4_1_under_redis_namespace() {
    let p = process("sidekiq-6.4.1/namespace/process-hash.json");
    assert_eq!(p.busy, 2);
    let keys = Keys::new(Some("myapp"));
    let captured = fixture("sidekiq-6.4.1/namespace/keys.json");
    let captured = captured.as_object().unwrap();
    assert!(captured.contains_key(&keys.processes()));
    assert!(captured.contains_key(&keys.process(&p.identity)));
    assert!(captured.contains_key(&keys.work(&p.identity, WorkKey::Workers)));
    let members = fixture("sidekiq-6.4.1/namespace/processes.json");
    assert_eq!(members[0], json!(p.identity), "members are not prefixed");
    let work = records::parse_work(&fields(&fixture(
        "sidekiq-6.4.1/namespace/workers-hash.json",
    )));
    assert_eq!(work.jobs.len(), 2);
}

#[test]
fn sidekiq_7_3_with_an_activejob_wrapped_job() {
    let p = process("sidekiq-7.3/process-hash.json");
    assert_eq!(p.layout, Layout::Sidekiq7);
    assert_eq!(p.layout.beat_secs(), 10);
    assert_eq!(p.info.version.as_deref(), Some("7.3.2"));
    assert_eq!(p.concurrency, Some(3), "from info.concurrency");
    assert_eq!(p.work_keys(), &[WorkKey::Work]);
    assert!(p.warnings.is_empty());

    let work = records::parse_work(&fields(&fixture("sidekiq-7.3/work-hash-activejob.json")));
    let job = &work.jobs[0];
    assert_eq!(job.class, "HardJob");
    assert_eq!(
        job.wrapper.as_deref(),
        Some("ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper")
    );
    assert_eq!(job.jid.as_deref(), Some("655bc4f97e10413273ba2e73"));
    assert!((job.created_at.unwrap() - 1795661377.5043988).abs() < 1e-5);

    let plain = records::parse_work(&fields(&fixture("sidekiq-7.3/work-hash.json")));
    assert_eq!(plain.jobs.len(), 3);
    assert!(
        plain
            .jobs
            .iter()
            .all(|j| j.class == "SleepJob" && j.wrapper.is_none())
    );
}

#[test]
fn sidekiq_8_1_concurrency_field_capsules_and_millisecond_timestamps() {
    let p = process("sidekiq-8.1/process-hash.json");
    assert_eq!(p.layout, Layout::Sidekiq8);
    assert_eq!(p.info.version.as_deref(), Some("8.1.7"));
    assert_eq!(p.concurrency, Some(3));
    assert_eq!(p.info.concurrency, Some(3), "sum over info.capsules");
    assert_eq!(p.info.tag.as_deref(), Some("cap"));

    // 8.0.x wrote capsules but no `concurrency` field: the capsules give it.
    let mut hash = fields(&fixture("sidekiq-8.1/process-hash.json"));
    hash.retain(|(k, _)| k != "concurrency");
    let older = records::parse_process("vm:12502:a8317bdd7534", &hash).unwrap();
    assert_eq!(older.concurrency, Some(3));

    let work = records::parse_work(&fields(&fixture("sidekiq-8.1/work-hash.json")));
    let job = work
        .jobs
        .iter()
        .find(|j| j.jid.as_deref() == Some("bf2abf65349686f4839f27b4"))
        .unwrap();
    assert!(
        (job.created_at.unwrap() - 1795661270.239).abs() < 1e-5,
        "integer milliseconds"
    );
    assert_eq!(job.run_at, 1795661270.0, "run_at stays in seconds");

    let aj = records::parse_work(&fields(&fixture("sidekiq-8.1/work-hash-activejob.json")));
    assert_eq!(aj.jobs[0].class, "HardJob");
    assert_eq!(
        aj.jobs[0].wrapper.as_deref(),
        Some("Sidekiq::ActiveJob::Wrapper")
    );
}

#[test]
fn every_captured_process_hash_reads() {
    let mut read = 0;
    for dir in [
        "sidekiq-6.4.1",
        "sidekiq-7.3",
        "sidekiq-8.1",
        "sidekiq-6.4.1/namespace",
    ] {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/redis")
            .join(dir);
        for entry in std::fs::read_dir(root).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.starts_with("process-hash") {
                let p = process(&format!("{dir}/{name}"));
                // Each capture is of the version its directory names.
                let expected = match dir {
                    "sidekiq-7.3" => Layout::Sidekiq7,
                    "sidekiq-8.1" => Layout::Sidekiq8,
                    _ => Layout::Sidekiq6,
                };
                assert_eq!(p.layout, expected, "{dir}/{name}");
                read += 1;
            }
        }
    }
    // 5 + 4 + 4 + 1 captures: a moved or renamed fixture must not pass unnoticed.
    assert_eq!(read, 14);
}

#[test]
fn odd_records_name_the_field() {
    let base = fields(&fixture("sidekiq-7.3/process-hash.json"));
    let with = |field: &str, value: Option<&str>| {
        let mut h = base.clone();
        h.retain(|(k, _)| k != field);
        if let Some(v) = value {
            h.push((field.to_owned(), v.to_owned()));
        }
        records::parse_process("vm:5278:64dbcbbb773b", &h)
    };
    assert!(matches!(
        with("info", Some("{not json")),
        Err(RecordError::InvalidJson { ref field, .. }) if field == "info"
    ));
    assert!(matches!(
        with("beat", None),
        Err(RecordError::Missing { ref field }) if field == "beat"
    ));
    assert!(matches!(
        with("info", Some(r#"{"hostname":"vm","pid":1,"version":"seven"}"#)),
        Err(RecordError::UnknownVersion { ref version }) if version == "seven"
    ));
    let newer = with(
        "info",
        Some(r#"{"hostname":"vm","pid":1,"version":"10.0.0"}"#),
    )
    .unwrap();
    assert_eq!(
        newer.warnings,
        [RecordWarning::NewerVersion {
            version: "10.0.0".into()
        }]
    );
    let bad_capsule = with(
        "info",
        Some(r#"{"hostname":"vm","pid":1,"capsules":{"default":{"mode":"strict"}}}"#),
    );
    assert_eq!(
        bad_capsule.unwrap_err().to_string(),
        "field `info.capsules.default.concurrency` is missing"
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests.

/// A process as some version writes it.
#[derive(Debug, Clone)]
struct Written {
    layout: Layout,
    host: String,
    pid: u32,
    busy: u32,
    quiet: bool,
    beat: f64,
    rss: u64,
    concurrency: u32,
    capsules: Vec<u32>,
    minor: u32,
}

fn written() -> impl Strategy<Value = Written> {
    (
        prop_oneof![
            Just(Layout::Sidekiq6),
            Just(Layout::Sidekiq7),
            Just(Layout::Sidekiq8)
        ],
        "[a-z][a-z0-9-]{0,62}",
        1u32..4_000_000,
        0u32..500,
        any::<bool>(),
        1.0e9f64..2.0e9,
        0u64..10_000_000,
        (1u32..200, proptest::collection::vec(1u32..50, 1..4)),
        0u32..10,
    )
        .prop_map(
            |(layout, host, pid, busy, quiet, beat, rss, (concurrency, capsules), minor)| Written {
                layout,
                host,
                pid,
                busy,
                quiet,
                beat,
                rss,
                concurrency,
                capsules,
                minor,
            },
        )
}

impl Written {
    fn identity(&self) -> String {
        format!("{}:{}:0123456789ab", self.host, self.pid)
    }

    /// The hash the way `launcher.rb` of that version writes it.
    fn hash(&self) -> Vec<(String, String)> {
        let mut info = json!({
            "hostname": self.host,
            "started_at": self.beat - 5.0,
            "pid": self.pid,
            "tag": "",
            "queues": ["default", "mailers"],
            "labels": [],
            "identity": self.identity(),
        });
        match self.layout {
            Layout::Sidekiq6 => info["concurrency"] = json!(self.concurrency),
            Layout::Sidekiq7 => {
                info["concurrency"] = json!(self.concurrency);
                info["weights"] = json!([{"default": 0}]);
                info["version"] = json!(format!("7.{}.2", self.minor));
                info["embedded"] = json!(false);
            }
            Layout::Sidekiq8 => {
                let capsules: serde_json::Map<String, Value> = self
                    .capsules
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (format!("c{i}"), json!({"concurrency": n, "mode": "strict"})))
                    .collect();
                info["capsules"] = Value::Object(capsules);
                info["version"] = json!(format!("8.{}.7", self.minor));
                info["embedded"] = json!(false);
            }
        }
        let mut hash = vec![
            ("info".to_owned(), info.to_string()),
            ("busy".to_owned(), self.busy.to_string()),
            ("beat".to_owned(), self.beat.to_string()),
            ("rtt_us".to_owned(), "250".to_owned()),
            ("quiet".to_owned(), self.quiet.to_string()),
            ("rss".to_owned(), self.rss.to_string()),
        ];
        if self.layout == Layout::Sidekiq8 {
            hash.push(("concurrency".to_owned(), self.concurrency.to_string()));
        }
        hash
    }
}

/// Arbitrary text, sometimes JSON-looking, sometimes not UTF-8.
fn junk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        ".*".prop_map(String::into_bytes),
        Just(b"{}".to_vec()),
        Just(br#"{"hostname":"h","pid":-1}"#.to_vec()),
        Just(
            br#"{"hostname":"h","pid":1,"capsules":{"x":{"concurrency":18446744073709551615}}}"#
                .to_vec()
        ),
        Just(br#"{"hostname":"h","pid":1,"version":"8.1"}"#.to_vec()),
        Just(b"1e999".to_vec()),
        Just(b"-0".to_vec()),
    ]
}

proptest! {
    #[test]
    fn every_layout_reads_back_what_was_written(w in written()) {
        let p = records::parse_process(&w.identity(), &w.hash()).unwrap();
        prop_assert_eq!(p.layout, w.layout);
        prop_assert_eq!(p.busy, w.busy);
        prop_assert_eq!(p.quiet, w.quiet);
        prop_assert_eq!(p.beat, w.beat);
        prop_assert_eq!(p.rss_kb, Some(w.rss));
        prop_assert_eq!(p.concurrency, Some(w.concurrency));
        prop_assert_eq!(&p.info.hostname, &w.host);
        prop_assert_eq!(p.info.pid, w.pid);
        if w.layout == Layout::Sidekiq8 {
            prop_assert_eq!(p.info.concurrency, Some(w.capsules.iter().sum()));
        }
        let id = Identity::parse(&p.identity).unwrap();
        prop_assert_eq!(id.host, w.host.as_str());
        prop_assert_eq!(id.pid, w.pid);
    }

    #[test]
    fn process_parsing_never_panics(
        entries in proptest::collection::vec(
            (prop_oneof![
                Just(b"info".to_vec()), Just(b"busy".to_vec()), Just(b"beat".to_vec()),
                Just(b"quiet".to_vec()), Just(b"rss".to_vec()), Just(b"concurrency".to_vec()),
                any::<Vec<u8>>(),
            ], junk()),
            0..8,
        )
    ) {
        // Either a process with its identity, or an error that names the field at fault.
        match records::parse_process("h:1:ab", &entries) {
            Ok(process) => prop_assert_eq!(process.identity, "h:1:ab"),
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.starts_with("field `"), "{}", message);
            }
        }
    }

    #[test]
    fn work_parsing_never_panics(
        entries in proptest::collection::vec((any::<Vec<u8>>(), junk()), 0..6),
        payload in ".*",
        run_at in prop_oneof![Just(json!(1)), Just(json!(-5)), Just(json!("x")), Just(json!(1.5e300))],
    ) {
        let work = records::parse_work(&entries);
        prop_assert_eq!(work.jobs.len() + work.errors.len(), entries.len());
        let entry = json!({"queue": "q", "payload": payload, "run_at": run_at}).to_string();
        let _ = records::parse_job("t", entry.as_bytes());
    }

    #[test]
    fn jobs_read_back_with_the_right_class_and_times(
        class in "[A-Z][A-Za-z:]{0,30}",
        wrapped in proptest::option::of("[A-Z][A-Za-z]{0,20}"),
        created in 1.0e9f64..2.0e9,
        run_at in 1_000_000_000u64..2_000_000_000,
        millis in any::<bool>(),
        jid in "[0-9a-f]{24}",
    ) {
        let mut payload = json!({"class": class, "queue": "default", "jid": jid, "args": []});
        if millis {
            // 8.x: integer epoch milliseconds.
            payload["created_at"] = json!((created * 1000.0) as u64);
        } else {
            payload["created_at"] = json!(created);
        }
        if let Some(w) = &wrapped {
            payload["wrapped"] = json!(w);
        }
        let entry = json!({"queue": "default", "payload": payload.to_string(), "run_at": run_at});
        let job = records::parse_job("abc", entry.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&job.class, wrapped.as_ref().unwrap_or(&class));
        prop_assert_eq!(job.wrapper.is_some(), wrapped.is_some());
        prop_assert_eq!(job.run_at, run_at as f64);
        let read = job.created_at.unwrap();
        prop_assert!((read - created).abs() < 0.002, "{} vs {}", read, created);
    }
}
