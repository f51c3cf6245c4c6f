//! `kubectl sidekiq validate` in the cluster: the offline findings, judged as injected where the
//! namespace opted in, plus jobs running longer than declared and Sidekiq 7+'s recorded times.

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

fn load(path: &str) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

fn codes(report: &Value, name: &str) -> Vec<String> {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report:#}"))["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

/// An API server with namespace `shop` opted in and `notifications` not.
fn namespaces() -> ApiServer {
    let api = ApiServer::start();
    api.add(
        "/api/v1",
        "namespaces",
        json!({"metadata": {"name": "shop", "labels": {"sidekiq-guard.io/inject": "enabled"}}}),
    );
    api.add(
        "/api/v1",
        "namespaces",
        json!({"metadata": {"name": "notifications"}}),
    );
    api
}

/// `kubectl sidekiq validate -A -o json` against `api`.
fn validate_all(api: &ApiServer) -> std::process::Output {
    let kubeconfig = api.kubeconfig("shop");
    run_in(&kubeconfig, &["validate", "-A", "-o", "json"])
}

fn cluster() -> ApiServer {
    let api = namespaces();
    let mut rails = load("manifests/examples/rails-worker.yaml");
    rails.as_object_mut().unwrap().remove("kind");
    api.add("/apis/apps/v1", "deployments", rails);
    let mut mailer = load("manifests/examples/mailer-statefulset.yaml");
    mailer.as_object_mut().unwrap().remove("kind");
    api.add("/apis/apps/v1", "statefulsets", mailer);
    let mut cronjob = load("manifests/examples/nightly-cronjob.yaml");
    cronjob.as_object_mut().unwrap().remove("kind");
    api.add("/apis/batch/v1", "cronjobs", cronjob);
    // A Job of the CronJob is judged through the CronJob.
    api.add("/apis/batch/v1", "jobs", json!({
        "metadata": {"name": "nightly-backfill-29402520", "namespace": "shop", "ownerReferences": [{"kind": "CronJob", "name": "nightly-backfill", "controller": true}]},
        "spec": {"template": {"spec": {"containers": [{"name": "backfill", "command": ["sidekiq"]}]}}},
    }));
    api
}

#[test]
fn workloads_are_judged_as_injected_where_their_namespace_opted_in() {
    let api = cluster();
    let out = validate_all(&api);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the mailer StatefulSet, not opted in, loses jobs: {}",
        text(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        object_names(&report),
        vec!["mailer", "nightly-backfill", "rails-worker"],
        "the CronJob's Job is not listed twice"
    );
    assert_eq!(codes(&report, "rails-worker"), vec!["SG013", "SG008"]);
    assert_eq!(codes(&report, "nightly-backfill"), vec!["SG013"]);
    assert_eq!(
        codes(&report, "mailer"),
        vec!["SG001", "SG007", "SG002", "SG005", "SG006"]
    );
    assert_eq!(report["objects"][0]["source"], "cluster");
    assert_eq!(
        text(&out.stderr),
        "3 Sidekiq workload(s): 3 error(s), 3 warning(s), 2 info\n"
    );

    let kubeconfig = api.kubeconfig("shop");
    let out = run_in(&kubeconfig, &["validate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "namespace shop alone is clean of errors"
    );
    let table = text(&out.stdout);
    assert!(
        table.starts_with("SOURCE    NAMESPACE   OBJECT                     SEVERITY   CODE"),
        "{table}"
    );
}

#[test]
fn a_workload_kind_rbac_hides_fails_the_run_after_the_others_findings() {
    let api = cluster();
    api.forbid("list", "statefulsets", None);
    let out = validate_all(&api);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        object_names(&report),
        vec!["nightly-backfill", "rails-worker"],
        "the kinds that could be listed are judged"
    );
    assert!(
        stderr.contains("note: skipped statefulsets: forbidden: ")
            && stderr.contains("your RBAC role needs: list statefulsets"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "2 Sidekiq workload(s): 0 error(s), 1 warning(s), 2 info\nerror: statefulsets could not be listed (see the notes above), so their workloads were not checked; the findings above cover the rest\n"
        ),
        "{stderr}"
    );
}

#[test]
fn live_signals_from_redis_running_jobs_and_recorded_times() {
    let redis = RedisServer::start();
    let api = ApiServer::start();
    api.add(
        "/api/v1",
        "namespaces",
        json!({"metadata": {"name": "shop", "labels": {"sidekiq-guard.io/inject": "enabled"}}}),
    );
    api.add("/apis/apps/v1", "deployments", json!({
        "metadata": {"name": "quick-worker", "namespace": "shop"},
        "spec": {"template": {
            "metadata": {"annotations": {"sidekiq-guard.io/longest-job": "2s"}},
            "spec": {"containers": [{"name": "worker", "command": ["bundle", "exec", "sidekiq"], "env": [{"name": "REDIS_URL", "value": "redis://redis:6379"}]}]},
        }},
    }));
    let pod = "quick-worker-5d8f9c7b6-q1w2e";
    api.add_pod(json!({
        "metadata": {
            "name": pod, "namespace": "shop",
            "labels": {"pod-template-hash": "5d8f9c7b6"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "quick-worker-5d8f9c7b6", "controller": true}],
        },
        "spec": {"containers": [{"name": "worker", "command": ["bundle", "exec", "sidekiq"]}]},
        "status": {"phase": "Running"},
    }));
    let worker = FakeSidekiq::plain(
        redis.url(),
        pod,
        21,
        Version::V7,
        Duration::from_millis(300),
    );
    worker.run_job(
        r#"{"class":"ImportJob","jid":"i1","queue":"default"}"#,
        Duration::from_secs(60),
    );
    record_slow_job(&redis);
    std::thread::sleep(Duration::from_millis(3000));

    let kubeconfig = api.kubeconfig("shop");
    let out = run_in(
        &kubeconfig,
        &["validate", "--redis-url", &redis.url(), "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["objects"][0]["findings"].as_array().unwrap();
    let running = findings
        .iter()
        .find(|f| f["code"] == "SG020")
        .expect("SG020");
    let message = running["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "pod shop/{pod} has been running ImportJob (jid i1) for "
        )) && message.contains(
            "longer than the declared longest job 2s (annotation sidekiq-guard.io/longest-job)"
        ),
        "{message}"
    );
    let slower = findings
        .iter()
        .find(|f| f["code"] == "SG021")
        .expect("SG021");
    assert_eq!(slower["message"], SLOW_JOB_FINDING);
    assert_eq!(
        slower["path"],
        "spec.template.metadata.annotations[\"sidekiq-guard.io/longest-job\"]"
    );
}

const SLOW_JOB_FINDING: &str = "class SlowJob took 5m35s or more in the last 8 h (its successful runs in Sidekiq's metrics in this Redis), declared 2s (annotation sidekiq-guard.io/longest-job): if this workload runs SlowJob, its drains end before it does";

/// Writes Sidekiq 7.3's metrics for this minute: one SlowJob run in the "slower than 335 s"
/// bucket.
fn record_slow_job(redis: &RedisServer) {
    let minute = sidekiq_guard::sidekiq::metrics::Minute {
        layout: sidekiq_guard::sidekiq::metrics::Layout::V7,
        epoch: now() - now() % 60,
    };
    redis.cli(&[
        "HSET",
        &minute.hash_key(),
        "SlowJob|p",
        "1",
        "SlowJob|ms",
        "400000",
    ]);
    redis.cli(&[
        "BITFIELD",
        &minute.histogram_key("SlowJob"),
        "OVERFLOW",
        "SAT",
        "INCRBY",
        "u16",
        "#25",
        "1",
    ]);
}

/// A CI job checks the manifests it deploys against what production's jobs took: `validate -f`
/// with `--redis-url` reads Sidekiq's metrics, with no cluster at all.
#[test]
fn manifests_are_compared_with_the_times_recorded_in_redis() {
    let redis = RedisServer::start();
    record_slow_job(&redis);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("worker.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: quick-worker, namespace: shop}\nspec:\n  template:\n    metadata:\n      annotations: {sidekiq-guard.io/longest-job: 2s}\n    spec:\n      containers:\n      - name: worker\n        image: app\n        command: [bundle, exec, sidekiq, -t, \"25\"]\n        env: [{name: REDIS_URL, value: \"redis://redis:6379/0\"}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n",
    )
    .unwrap();
    let manifest = manifest.to_str().unwrap();
    let validate = |extra: &[&str]| {
        let out = run(&[
            &["validate", "-f", manifest, "--as-injected", "-o", "json"],
            extra,
        ]
        .concat());
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out, report)
    };

    let (out, report) = validate(&["--redis-url", &redis.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let slower: Vec<&Value> = report["objects"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "SG021")
        .collect();
    assert_eq!(slower.len(), 1, "{report:#}");
    assert_eq!(slower[0]["message"], SLOW_JOB_FINDING);
    assert_eq!(report["summary"]["workloads"], 1, "{report:#}");

    let (_, without) = validate(&[]);
    assert!(
        !codes(&without, "quick-worker").contains(&"SG021".to_owned()),
        "{without:#}"
    );

    // A Redis that does not answer fails the gate rather than passing it unchecked, after the
    // findings the files have without it.
    let gone = format!("redis://127.0.0.1:{}/0", free_port());
    let (out, report) = validate(&["--redis-url", &gone]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("error: cannot connect to Redis at {gone}")),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(report["summary"]["workloads"], 1, "{report:#}");
    assert!(!codes(&report, "quick-worker").contains(&"SG021".to_owned()));

    // Files without a Sidekiq workload need no Redis: it is not even asked.
    let web = dir.path().join("web.yaml");
    std::fs::write(
        &web,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n",
    )
    .unwrap();
    let out = run(&[
        "validate",
        "-f",
        web.to_str().unwrap(),
        "--redis-url",
        &gone,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_redis_without_metrics_says_so() {
    let redis = RedisServer::start();
    let api = cluster();
    let kubeconfig = api.kubeconfig("shop");
    let out = run_in(&kubeconfig, &["validate", "--redis-url", &redis.url()]);
    assert!(
        text(&out.stderr).contains(
            "note: no execution metrics in Redis (they exist on Sidekiq 7 and later, for 8 hours)"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn running_pods_are_judged_as_they_run_and_labelled_templates_as_injected() {
    let api = namespaces();
    // Created before sidekiq-guard was installed, in an opted-in namespace: the webhook never
    // saw it, and it runs unprotected until restarted.
    api.add_pod(json!({
        "metadata": {"name": "old-worker", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "worker", "image": "app", "command": ["bundle", "exec", "sidekiq"]}]},
        "status": {"phase": "Running"},
    }));
    // Not opted in by its namespace, but its pods carry the opt-in label: the webhook's
    // object selector injects them.
    let mut rails = load("manifests/examples/rails-worker.yaml");
    rails.as_object_mut().unwrap().remove("kind");
    rails["metadata"]["namespace"] = json!("notifications");
    rails["spec"]["template"]["metadata"]["labels"]["sidekiq-guard.io/inject"] = json!("true");
    api.add("/apis/apps/v1", "deployments", rails);
    let out = validate_all(&api);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(codes(&report, "rails-worker"), vec!["SG013", "SG008"]);
    // No grace, preStop or probes: what it would lose on its next eviction.
    assert_eq!(
        codes(&report, "old-worker"),
        vec![
            "SG013", "SG008", "SG001", "SG002", "SG005", "SG006", "SG014"
        ]
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn running_jobs_are_read_from_the_probes_concurrently_and_only_where_containers_run() {
    let api = namespaces();
    api.add("/apis/apps/v1", "deployments", json!({
        "metadata": {"name": "rails-worker", "namespace": "shop"},
        "spec": {"template": {
            "metadata": {"annotations": {"sidekiq-guard.io/longest-job": "2s"}},
            "spec": {"containers": [{"name": "worker", "command": ["bundle", "exec", "sidekiq"], "env": [{"name": "REDIS_URL", "value": "redis://redis:6379"}]}]},
        }},
    }));
    for i in 0..12 {
        let name = format!("rails-worker-7d9c8f6b5-p{i:02}");
        api.add_pod(injected_pod("shop", &name, 2, 7434));
        api.proxy(
            "shop",
            &name,
            7434,
            ProxyTarget::Fixed {
                status: 200,
                body: probe_document(&name, &[("ImportJob", 60.0)], "idle").to_string(),
                delay: Duration::from_millis(300),
            },
        );
    }
    let mut pending = injected_pod("shop", "rails-worker-7d9c8f6b5-pending", 2, 7434);
    pending["status"]["phase"] = json!("Pending");
    api.add_pod(pending);
    // A probe that does not answer: its jobs are unknown, which is not "no jobs".
    let mute = "rails-worker-7d9c8f6b5-mute";
    api.add_pod(injected_pod("shop", mute, 2, 7434));
    api.proxy(
        "shop",
        mute,
        7434,
        ProxyTarget::Fixed {
            status: 503,
            body:
                "error trying to reach service: dial tcp 10.1.2.3:7434: connect: connection refused"
                    .into(),
            delay: Duration::ZERO,
        },
    );

    let out = run_in(&api.kubeconfig("shop"), &["validate", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let over: Vec<&str> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["findings"].as_array().unwrap())
        .filter(|f| f["code"] == "SG020")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(over.len(), 12, "{over:#?}");
    assert!(
        over.iter()
            .all(|m| m.contains("has been running ImportJob (jid jid0) for"))
    );
    let notes = report.to_string();
    assert!(
        !notes.contains("pending: "),
        "a Pending pod is not asked: {notes}"
    );
    assert!(
        text(&out.stderr).contains(&format!(
            "note: running jobs of pod shop/{mute} not read (SG020 not checked for it): "
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !api.requests().iter().any(|r| r.contains("pending")),
        "{:?}",
        api.requests()
    );
    let max = api.in_flight_max.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        max >= 4,
        "probes are asked concurrently, saw at most {max} in flight"
    );
}
