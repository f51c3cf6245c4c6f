//! `kubectl sidekiq status` and `drain` against the test API server, a real `redis-server`, the
//! real probe and a real Sidekiq.

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// The drain's last progress line, which says how it ended, starts with `prefix`.
fn assert_last_line(output: &str, prefix: &str) {
    let last = output.lines().last().unwrap_or_default();
    assert!(last.starts_with(prefix), "{output}");
}

fn fixed(status: u16, body: Value) -> ProxyTarget {
    ProxyTarget::Fixed {
        status,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

/// A cluster of one injected pod, `shop/worker-1`, whose probe answers at once with `job`
/// running.
fn one_worker(job: &str) -> ApiServer {
    let api = ApiServer::start();
    api.add_pod(injected_pod("shop", "worker-1", 60, 7434));
    api.proxy(
        "shop",
        "worker-1",
        7434,
        fixed(200, probe_document("worker-1", &[(job, 2.0)], "idle")),
    );
    api
}

/// How many requests the API server has seen whose line contains `part`.
fn requests_with(api: &ApiServer, part: &str) -> usize {
    api.requests().iter().filter(|r| r.contains(part)).count()
}

/// How many times the pods of namespace `shop` were listed.
fn pod_lists(api: &ApiServer) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.split('?').next() == Some("GET /api/v1/namespaces/shop/pods"))
        .count()
}

/// The plugin on a machine with no kubeconfig (`home` has none) and outside any pod.
fn without_a_cluster(home: &std::path::Path) -> std::process::Command {
    let mut command = plugin();
    command
        .env("HOME", home)
        .env_remove("KUBERNETES_SERVICE_HOST");
    command
}

/// `status --watch` of the cluster of `kubeconfig` with `extra` flags, its output piped.
fn watch(kubeconfig: &std::path::Path, extra: &[&str]) -> std::process::Child {
    plugin()
        .args([
            "status",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--watch",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Blanks what moves with the clock — the AGE and SIGKILL IN columns, and the seconds left in
/// a verdict — keeping the layout, so the rest compares exactly.
fn steady(table: &str) -> String {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let columns: Vec<usize> = ["AGE", "SIGKILL IN"]
        .iter()
        .filter_map(|name| header.find(name))
        .collect();
    let mut out = format!("{header}\n");
    for line in lines {
        let mut line = line.to_owned();
        for &at in &columns {
            if line.len() > at && line.is_char_boundary(at) {
                let end = line[at..].find(' ').map_or(line.len(), |e| at + e);
                let token = &line[at..end];
                if token != "-" {
                    let blank = format!("{:<width$}", "T", width = token.len());
                    line.replace_range(at..end, &blank);
                }
            }
        }
        if let Some(left) = line.find(" s left") {
            let start = line[..left].rfind(' ').map_or(0, |s| s + 1);
            line.replace_range(start..left, "N");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn status_through_the_pod_proxy_shows_each_pods_work_and_verdict() {
    let api = ApiServer::start();
    api.add_pod(injected_pod(
        "shop",
        "rails-worker-7d9c8f6b5-aaaaa",
        300,
        7434,
    ));
    let mut terminating = injected_pod("shop", "rails-worker-7d9c8f6b5-bbbbb", 300, 7434);
    terminating["metadata"]["deletionTimestamp"] =
        json!(sidekiq_guard::timestamp::format(now() + 20));
    terminating["metadata"]["deletionGracePeriodSeconds"] = json!(350);
    api.add_pod(terminating);
    let mut before_install = injected_pod("shop", "rails-worker-old", 300, 7434);
    before_install["metadata"]["annotations"] = json!({});
    before_install["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("lifecycle");
    api.add_pod(before_install);
    api.add_pod(injected_pod("shop", "rails-worker-broken", 300, 7434));
    // Not Sidekiq: never shown.
    api.add_pod(json!({"metadata": {"name": "web-1", "namespace": "shop"}, "spec": {"containers": [{"name": "web", "command": ["puma"]}]}, "status": {"phase": "Running"}}));
    api.proxy(
        "shop",
        "rails-worker-7d9c8f6b5-aaaaa",
        7434,
        fixed(
            200,
            probe_document("rails-worker-7d9c8f6b5-aaaaa", &[("MailJob", 2.0)], "idle"),
        ),
    );
    api.proxy(
        "shop",
        "rails-worker-7d9c8f6b5-bbbbb",
        7434,
        fixed(
            200,
            probe_document(
                "rails-worker-7d9c8f6b5-bbbbb",
                &[("ReportJob", 240.0)],
                "draining",
            ),
        ),
    );
    let kubeconfig = api.kubeconfig("shop");

    let out = run_in(&kubeconfig, &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    golden("status-table.txt", &steady(&text(&out.stdout)));

    let out = run_in(&kubeconfig, &["status", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pods = snapshot["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 4);
    assert_eq!(pods[0]["source"], "probe");
    assert_eq!(pods[0]["processes"][0]["jobs"][0]["class"], "MailJob");
    assert_eq!(pods[1]["terminating"]["verdict"]["verdict"], "at-risk");
    assert_eq!(pods[1]["terminating"]["verdict"]["class"], "ReportJob");
    assert_eq!(pods[1]["declaredLongestJobSecs"], 300);
    assert_eq!(pods[3]["injected"], false);
    assert!(
        pods[2]["problem"]
            .as_str()
            .unwrap()
            .contains("no sidekiq-guard probe answers on port 7434"),
        "{:#?} {:?}",
        pods[2],
        api.requests()
    );
}

#[test]
fn a_terminating_pod_whose_jobs_cannot_be_seen_is_never_called_idle() {
    let api = ApiServer::start();
    let mut pod = injected_pod("shop", "rails-worker-7d9c8f6b5-ccccc", 300, 7434);
    pod["metadata"]["deletionTimestamp"] = json!(sidekiq_guard::timestamp::format(now() + 28));
    api.add_pod(pod);
    api.proxy(
        "shop",
        "rails-worker-7d9c8f6b5-ccccc",
        7434,
        fixed(
            503,
            json!({"kind": "Status", "message": "probe unavailable"}),
        ),
    );
    let kubeconfig = api.kubeconfig("shop");

    let out = run_in(&kubeconfig, &["status", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pod = &snapshot["pods"][0];
    assert_eq!(
        pod["terminating"]["verdict"]["verdict"], "unseen",
        "{pod:#}"
    );
    let summary = pod["terminating"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("unknown: its running jobs cannot be seen (")
            && summary.contains(pod["problem"].as_str().unwrap()),
        "{summary}"
    );

    // A probe that answers but cannot read Redis has seen no job either.
    let mut blind = injected_pod("shop", "rails-worker-7d9c8f6b5-ddddd", 300, 7434);
    blind["metadata"]["deletionTimestamp"] = json!(sidekiq_guard::timestamp::format(now() + 28));
    api.add_pod(blind);
    let mut document = probe_document("rails-worker-7d9c8f6b5-ddddd", &[], "idle");
    document["redis"]["reachable"] = json!(false);
    document["redis"]["error"] = json!("connection refused");
    document["processes"] = json!([]);
    api.proxy(
        "shop",
        "rails-worker-7d9c8f6b5-ddddd",
        7434,
        fixed(200, document),
    );
    let out = run_in(&kubeconfig, &["status", "-o", "json"]);
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let blind = &snapshot["pods"][1];
    assert_eq!(blind["source"], "probe");
    assert_eq!(
        blind["terminating"]["verdict"]["verdict"], "unseen",
        "{blind:#}"
    );
    assert_eq!(
        blind["terminating"]["summary"],
        "unknown: its running jobs cannot be seen (its probe cannot read Redis: connection refused)"
    );

    let out = run_in(&kubeconfig, &["status"]);
    let table = text(&out.stdout);
    assert!(!table.contains("idle"), "{table}");
    assert!(
        table.contains("unknown: its running jobs cannot be seen"),
        "{table}"
    );
}

#[test]
fn a_probe_of_another_schema_is_named_not_misread() {
    let api = ApiServer::start();
    api.add_pod(injected_pod("shop", "worker-1", 60, 7434));
    let mut document = probe_document("worker-1", &[("ImportJob", 2.0)], "idle");
    document["schema"] = json!(2);
    api.proxy("shop", "worker-1", 7434, fixed(200, document));
    let out = run_in(&api.kubeconfig("shop"), &["status", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        snapshot["pods"][0]["problem"],
        "pod shop/worker-1: the probe answers /status schema 2, and this kubectl-sidekiq reads schema 1: use the plugin of the webhook's release"
    );
    assert_eq!(snapshot["pods"][0]["processes"], json!([]));
    // drain says so too, rather than quote an answer it cannot read.
    let out = run_in(
        &api.kubeconfig("shop"),
        &["drain", "worker-1", "--timeout", "2s"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with(
            "error: pod shop/worker-1: the probe answers /status schema 2, and this kubectl-sidekiq reads schema 1: use the plugin of the webhook's release\n"
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!api.requests().iter().any(|r| r.contains("/proxy/drain")));
}

/// A pod of namespace `shop` the webhook never saw (no status annotation): no probe to ask.
fn bare_pod(name: &str) -> Value {
    let mut pod = injected_pod("shop", name, 60, 7434);
    pod["metadata"]["annotations"] = json!({});
    pod
}

/// A test API server holding one [`bare_pod`], and a kubeconfig for it.
fn api_with_bare_pod(name: &str) -> (ApiServer, std::path::PathBuf) {
    let api = ApiServer::start();
    api.add_pod(bare_pod(name));
    let kubeconfig = api.kubeconfig("shop");
    (api, kubeconfig)
}

/// A real Sidekiq (3 threads) and its real probe for one injected pod, reached through the
/// test API server's pod proxy.
struct RealPod {
    redis: RedisServer,
    _sidekiq: Sidekiq,
    probe: Process,
    _api: ApiServer,
    kubeconfig: std::path::PathBuf,
}

impl RealPod {
    fn start(pod: &str, longest_job: u64) -> Self {
        Self::with_probe_budget(pod, longest_job, "1m")
    }

    fn with_probe_budget(pod: &str, longest_job: u64, drain_budget: &str) -> Self {
        let redis = RedisServer::start();
        let sidekiq = Sidekiq::start(&redis, pod, 3, 5);
        let (probe, port) = start_probe(&redis.url(), pod, drain_budget);
        let api = ApiServer::start();
        api.add_pod(injected_pod("shop", pod, longest_job, 7434));
        api.proxy("shop", pod, 7434, ProxyTarget::Forward(port));
        let kubeconfig = api.kubeconfig("shop");
        Self {
            redis,
            _sidekiq: sidekiq,
            probe,
            _api: api,
            kubeconfig,
        }
    }
}

#[test]
fn status_joins_a_real_sidekiq_through_its_real_probe() {
    let pod = "rails-worker-7d9c8f6b5-real1";
    // Every part bound by name: `..` would drop the Sidekiq and the API server at once.
    let RealPod {
        redis,
        _sidekiq,
        probe,
        _api,
        kubeconfig,
    } = RealPod::start(pod, 60);
    enqueue(&redis, &[(30.0, "a"), (30.0, "b")]);

    let mut last = Value::Null;
    let busy = wait_until(Duration::from_secs(25), || {
        let out = run_in(&kubeconfig, &["status", "-o", "json"]);
        last = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        last["pods"][0]["processes"][0]["busy"] == 2
    });
    assert!(
        busy,
        "never saw 2 busy threads: {last:#}\nprobe log:\n{}",
        probe.log()
    );
    let process = &last["pods"][0]["processes"][0];
    assert_eq!(process["concurrency"], 3);
    assert_eq!(process["state"], "live");
    let classes: Vec<&str> = process["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, vec!["TimedJob", "TimedJob"]);

    let out = run_in(&kubeconfig, &["status", "-o", "wide"]);
    let table = text(&out.stdout);
    assert!(
        table.contains("running") && table.contains("2/3") && table.contains("TimedJob"),
        "{table}"
    );
    assert!(table.contains("node-1"), "wide shows the node: {table}");
}

#[test]
fn status_from_redis_joins_processes_to_pods_and_lists_orphans() {
    let redis = RedisServer::start();
    let fake = |host: &str, pid: u32, version: Version| {
        FakeSidekiq::plain(redis.url(), host, pid, version, Duration::from_millis(500))
    };
    let seven = fake("rails-worker-7d9c8f6b5-aaaaa", 11, Version::V7);
    let eight = fake("mailer-0", 12, Version::V8);
    let ghost = fake("gone-worker-5f6d7-zzzzz", 13, Version::V7);
    let wrapped = fake("legacy-worker-0", 14, Version::V7);
    seven.run_job(
        r#"{"class":"ReportJob","jid":"j1","queue":"reports","created_at":1795663000.0}"#,
        Duration::from_secs(60),
    );
    let api = ApiServer::start();
    api.add_pod(injected_pod(
        "shop",
        "rails-worker-7d9c8f6b5-aaaaa",
        300,
        7434,
    ));
    let mut mailer = injected_pod("notifications", "mailer-0", 90, 7434);
    mailer["spec"]["hostname"] = json!("mailer-0");
    api.add_pod(mailer);
    // Sidekiq behind a wrapper script the manifest does not show: its processes in Redis say
    // it runs Sidekiq, so it is a pod of the snapshot, not the home of orphans.
    let mut legacy = injected_pod("shop", "legacy-worker-0", 60, 7434);
    legacy["metadata"]["annotations"] = json!({});
    legacy["metadata"]["labels"] = json!({"app": "legacy"});
    legacy["spec"]["hostname"] = json!("legacy-worker-0");
    legacy["spec"]["containers"][0]["command"] = json!(["/app/bin/start-worker"]);
    legacy["spec"]["initContainers"] = json!([]);
    api.add_pod(legacy);
    // A web pod of the same name in another namespace shares the host: the Sidekiq pod keeps
    // its processes.
    let mut namesake = injected_pod("review-1", "rails-worker-7d9c8f6b5-aaaaa", 60, 7434);
    namesake["metadata"]["annotations"] = json!({});
    namesake["spec"]["containers"][0]["command"] = json!(["bundle", "exec", "puma"]);
    namesake["spec"]["initContainers"] = json!([]);
    api.add_pod(namesake);
    let kubeconfig = api.kubeconfig("shop");
    assert!(wait_until(Duration::from_secs(5), || redis
        .cli(&["SCARD", "processes"])
        .trim()
        == "4"));
    std::thread::sleep(Duration::from_millis(700));

    let out = run_in(
        &kubeconfig,
        &["status", "-A", "--redis-url", &redis.url(), "-o", "json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pods = snapshot["pods"].as_array().unwrap();
    let names: Vec<&str> = pods.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "mailer-0",
            "legacy-worker-0",
            "rails-worker-7d9c8f6b5-aaaaa"
        ]
    );
    assert_eq!(pods[0]["namespace"], "notifications");
    assert_eq!(pods[0]["source"], "redis");
    assert_eq!(pods[0]["processes"][0]["layout"], "8.x");
    assert_eq!(pods[1]["injected"], false);
    assert_eq!(
        pods[1]["processes"][0]["identity"],
        wrapped.identity.as_str()
    );
    assert_eq!(pods[2]["namespace"], "shop");
    assert_eq!(pods[2]["processes"][0]["jobs"][0]["class"], "ReportJob");
    let orphans: Vec<&str> = snapshot["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].as_str().unwrap())
        .collect();
    assert_eq!(orphans, vec![ghost.identity.as_str()]);

    let out = run_in(&kubeconfig, &["status", "-A", "--redis-url", &redis.url()]);
    let table = text(&out.stdout);
    assert!(
        table.contains("Processes in Redis whose hostname is no pod of the cluster:"),
        "{table}"
    );
    assert!(table.contains(&ghost.identity), "{table}");

    // Scoped to one namespace, another namespace's processes are not orphans.
    let out = run_in(
        &kubeconfig,
        &["status", "--redis-url", &redis.url(), "-o", "json"],
    );
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["pods"].as_array().unwrap().len(), 2);
    assert_eq!(snapshot["orphans"], json!([]));

    // With -l, pods outside the selection are not in view: their processes are not orphans.
    let out = run_in(
        &kubeconfig,
        &[
            "status",
            "-A",
            "-l",
            "app=worker",
            "--redis-url",
            &redis.url(),
            "-o",
            "json",
        ],
    );
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["pods"].as_array().unwrap().len(), 2);
    assert_eq!(snapshot["orphans"], json!([]));
    drop((eight, seven, wrapped));
}

#[test]
fn same_named_pods_in_two_namespaces_get_no_process_rather_than_anothers() {
    let redis = RedisServer::start();
    let worker = FakeSidekiq::plain(
        redis.url(),
        "worker-0",
        21,
        Version::V7,
        Duration::from_millis(300),
    );
    worker.run_job(
        r#"{"class":"ReportJob","jid":"p1","queue":"default"}"#,
        Duration::from_secs(60),
    );
    let api = ApiServer::start();
    for namespace in ["prod", "staging"] {
        let mut pod = injected_pod(namespace, "worker-0", 300, 7434);
        pod["metadata"]["deletionTimestamp"] = json!(sidekiq_guard::timestamp::format(now() + 30));
        api.add_pod(pod);
    }
    let kubeconfig = api.kubeconfig("prod");
    assert!(wait_until(Duration::from_secs(5), || redis
        .cli(&["SCARD", "processes"])
        .trim()
        == "1"));

    let out = run_in(
        &kubeconfig,
        &["status", "-A", "--redis-url", &redis.url(), "-o", "json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (pod, other) in snapshot["pods"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["staging", "prod"])
    {
        assert_eq!(pod["processes"], json!([]), "{pod:#}");
        assert_eq!(
            pod["problem"],
            format!(
                "its processes cannot be told in Redis: pod {other}/worker-0 has the same hostname worker-0, so whose processes are whose cannot be told"
            )
        );
        // Not a running ReportJob of the wrong namespace, nor "idle".
        assert_eq!(pod["terminating"]["verdict"]["verdict"], "unseen");
    }
    // Theirs, just not to be told apart: no orphan.
    assert_eq!(snapshot["orphans"], json!([]));
}

/// A Sidekiq 7 process of host `worker-host` in `redis`, running `job` (a payload) for 30 s.
fn worker_host_running(redis: &RedisServer, job: &str) -> FakeSidekiq {
    let worker = FakeSidekiq::plain(
        redis.url(),
        "worker-host",
        42,
        Version::V7,
        Duration::from_millis(500),
    );
    worker.run_job(job, Duration::from_secs(30));
    worker
}

#[test]
fn status_from_redis_works_without_any_cluster() {
    let redis = RedisServer::start();
    let home = tempfile::tempdir().unwrap();
    let _worker = worker_host_running(
        &redis,
        r#"{"class":"MailJob","jid":"m1","queue":"mailers"}"#,
    );
    std::thread::sleep(Duration::from_millis(800));
    let out = without_a_cluster(home.path())
        .args(["status", "--redis-url", &redis.url(), "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "no kubeconfig: showing Redis processes by hostname only\n"
    );
    // A context or kubeconfig file the user names must exist: no quiet fallback then.
    for named in [
        ["--context", "nope"],
        ["--kubeconfig", "/nonexistent/kubeconfig"],
    ] {
        let out = without_a_cluster(home.path())
            .args(["status", "--redis-url", &redis.url()])
            .args(named)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{named:?}");
        assert!(
            text(&out.stderr).starts_with("error: cannot load the kubeconfig from "),
            "{named:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["pods"][0]["name"], "worker-host");
    assert_eq!(
        snapshot["pods"][0]["processes"][0]["jobs"][0]["class"],
        "MailJob"
    );
}

#[test]
fn records_that_cannot_be_read_or_hold_terminal_escapes_are_shown_as_such() {
    let redis = RedisServer::start();
    let home = tempfile::tempdir().unwrap();
    // Whoever can enqueue a job names its class: a terminal escape there must not reach the
    // terminal as one (this one would set the window's title).
    let _worker = worker_host_running(
        &redis,
        "{\"class\":\"Evil\\u001b]0;pwned\\u0007Job\",\"jid\":\"e1\",\"queue\":\"default\"}",
    );
    // A process whose records are there but not Sidekiq's shape.
    redis.cli(&["SADD", "processes", "garbled-host:1:aaa"]);
    redis.cli(&[
        "HSET",
        "garbled-host:1:aaa",
        "info",
        "not json{",
        "busy",
        "lots",
        "beat",
        &now().to_string(),
    ]);
    std::thread::sleep(Duration::from_millis(800));
    let out = without_a_cluster(home.path())
        .args(["status", "--redis-url", &redis.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{7}'),
        "{table:?}"
    );
    assert!(table.contains("Evil\\u{1b}]0;pwned\\u{7}Job"), "{table}");
    let garbled = table
        .lines()
        .find(|l| l.trim_start().starts_with("garbled-host"))
        .unwrap_or_else(|| panic!("{table}"));
    // STATE unreadable, BUSY unknown rather than 0, and the record's error as the verdict.
    assert!(garbled.contains("   unreadable   -   "), "{table}");
    assert!(
        garbled.ends_with(
            "   process record unreadable: field `info` is not valid JSON: expected ident at line 1 column 2"
        ),
        "{table}"
    );
}

#[test]
fn errors_say_what_to_do() {
    let api = ApiServer::start();
    api.forbid("list", "pods", Some("shop"));
    let kubeconfig = api.kubeconfig("shop");
    let out = run_in(&kubeconfig, &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: forbidden: pods is forbidden: User \"tester\" cannot list resource \"pods\" in API group \"\" in the namespace \"shop\"\n  your RBAC role needs: list pods in namespace shop\n"
    );

    let closed = free_port();
    let dir = tempfile::tempdir().unwrap();
    let unreachable = dir.path().join("kubeconfig");
    let text_config = std::fs::read_to_string(&kubeconfig).unwrap().replace(
        &format!("127.0.0.1:{}", api.addr.port()),
        &format!("127.0.0.1:{closed}"),
    );
    std::fs::write(&unreachable, text_config).unwrap();
    let out = run_in(&unreachable, &["status", "--request-timeout", "5s"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: cannot reach the Kubernetes API at https://127.0.0.1:{closed} (is the cluster up, and the kubeconfig's context the right one?)")),
        "{stderr}"
    );

    // Reached, but slow: the request and the limit are named, not the cluster doubted.
    api.slow_lists(Duration::from_secs(3));
    let out = run_in(&kubeconfig, &["status", "--request-timeout", "1s"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: /api/v1/namespaces/")
            && stderr.ends_with(&format!(
                ": the Kubernetes API at https://127.0.0.1:{} did not answer within 1s (--request-timeout; raise it, or 0 to wait without limit)\n",
                api.addr.port()
            )),
        "{stderr}"
    );
    api.slow_lists(Duration::ZERO);

    // Redis given through the environment, so its password stays out of `ps`; never echoed.
    let out = plugin()
        .args([
            "status",
            "-n",
            "billing",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .env(
            "KUBECTL_SIDEKIQ_REDIS_URL",
            format!("redis://:hunter2@127.0.0.1:{closed}/0"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: cannot connect to Redis at redis://:***@127.0.0.1:{closed}/0: Connection refused (os error 111)\n"
        )
    );

    // Quieting every namespace's workers is refused, not done by a slip of a flag.
    let out = run(&["drain", "-A", "-l", "app=worker"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: drain quiets pods of one namespace: name it with -n instead of -A\n"
    );

    let out = run(&["status", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("error: cannot load the kubeconfig from /nonexistent/kubeconfig"),
        "{}",
        text(&out.stderr)
    );

    let out = run_in(&kubeconfig, &["status", "--context", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
}

#[test]
fn kubectl_flags_work_before_and_after_the_subcommand() {
    let api = ApiServer::start();
    api.add_pod(injected_pod("other", "worker-1", 60, 7434));
    let kubeconfig = api.kubeconfig("shop");
    let k = kubeconfig.to_str().unwrap();
    for args in [
        vec!["--kubeconfig", k, "-n", "other", "status", "-o", "json"],
        vec!["-o", "json", "--kubeconfig", k, "-n", "other", "status"],
        vec![
            "status",
            "--kubeconfig",
            k,
            "--namespace",
            "other",
            "-o",
            "json",
        ],
        vec![
            "--kubeconfig",
            k,
            "--context",
            "other",
            "status",
            "-o",
            "json",
        ],
        vec![
            "--kubeconfig",
            k,
            "status",
            "-l",
            "app=worker",
            "-A",
            "-o",
            "json",
        ],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(snapshot["pods"][0]["name"], "worker-1", "{args:?}");
    }
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r == "GET /api/v1/pods?labelSelector=app%3Dworker&limit=500"),
        "{requests:?}"
    );
}

/// A cluster of 1,100 plain pods with a Sidekiq pod at the start, middle and end of the list,
/// each answering `/status` through the pod proxy.
fn cluster_of_three_pages() -> ApiServer {
    let api = ApiServer::start();
    for i in 0..1_100 {
        let name = format!("web-{i:04}");
        if matches!(i, 0 | 700 | 1_099) {
            let worker = format!("worker-{i:04}");
            api.add_pod(injected_pod("shop", &worker, 60, 7434));
            api.proxy(
                "shop",
                &worker,
                7434,
                fixed(200, probe_document(&worker, &[], "idle")),
            );
        }
        api.add_pod(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            "status": {"phase": "Running"},
        }));
    }
    api
}

/// Runs `status -o json` on `api`'s namespace `shop`, checks that it shows the three Sidekiq
/// pods of [`cluster_of_three_pages`], and returns the pod list requests it made.
fn status_of_three_pages(api: &ApiServer) -> Vec<String> {
    let out = run_in(&api.kubeconfig("shop"), &["status", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = snapshot["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["worker-0000", "worker-0700", "worker-1099"]);
    api.requests()
        .into_iter()
        .filter(|r| r.split('?').next() == Some("GET /api/v1/namespaces/shop/pods"))
        .collect()
}

#[test]
fn pods_are_listed_in_pages_of_500_like_kubectl() {
    let api = cluster_of_three_pages();
    assert_eq!(
        status_of_three_pages(&api),
        [
            "GET /api/v1/namespaces/shop/pods?limit=500",
            "GET /api/v1/namespaces/shop/pods?limit=500&continue=offset-500",
            "GET /api/v1/namespaces/shop/pods?limit=500&continue=offset-1000",
        ]
    );
}

#[test]
fn an_expired_continue_token_restarts_the_list_unpaged() {
    let api = cluster_of_three_pages();
    api.expire_continue_tokens();
    assert_eq!(
        status_of_three_pages(&api),
        [
            "GET /api/v1/namespaces/shop/pods?limit=500",
            "GET /api/v1/namespaces/shop/pods?limit=500&continue=offset-500",
            "GET /api/v1/namespaces/shop/pods",
        ]
    );
}

/// A probe read waits `--request-timeout` when it is given (5 s otherwise), shorter or longer.
#[test]
fn probe_reads_wait_the_request_timeout_when_given() {
    let api = ApiServer::start();
    for (name, delay) in [("worker-slow", 1_500), ("worker-quick", 0)] {
        api.add_pod(injected_pod("shop", name, 60, 7434));
        api.proxy(
            "shop",
            name,
            7434,
            ProxyTarget::Fixed {
                status: 200,
                body: probe_document(name, &[], "idle").to_string(),
                delay: Duration::from_millis(delay),
            },
        );
    }
    let kubeconfig = api.kubeconfig("shop");
    let sources = |timeout: &str| {
        let out = run_in(
            &kubeconfig,
            &["status", "-o", "json", "--request-timeout", timeout],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut pods: Vec<(String, String)> = snapshot["pods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["source"].to_string(),
                )
            })
            .collect();
        pods.sort();
        (pods, text(&out.stderr))
    };
    let (pods, _) = sources("1s");
    assert_eq!(
        pods,
        vec![
            ("worker-quick".to_owned(), "\"probe\"".to_owned()),
            ("worker-slow".to_owned(), "null".to_owned()),
        ]
    );
    let (pods, _) = sources("3s");
    assert!(
        pods.iter().all(|(_, source)| source == "\"probe\""),
        "{pods:?}"
    );
}

#[test]
fn probes_are_read_concurrently_within_the_bound() {
    let api = ApiServer::start();
    for i in 0..40 {
        let name = format!("worker-{i:02}");
        api.add_pod(injected_pod("shop", &name, 60, 7434));
        api.proxy(
            "shop",
            &name,
            7434,
            ProxyTarget::Fixed {
                status: 200,
                body: probe_document(&name, &[], "idle").to_string(),
                delay: Duration::from_millis(200),
            },
        );
    }
    let kubeconfig = api.kubeconfig("shop");
    let started = Instant::now();
    let out = run_in(&kubeconfig, &["status", "--concurrency", "8", "-o", "json"]);
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["pods"].as_array().unwrap().len(), 40);
    assert!(
        snapshot["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["source"] == "probe")
    );
    let max = api.in_flight_max.load(std::sync::atomic::Ordering::SeqCst);
    assert!(max <= 8, "at most 8 probe requests in flight, saw {max}");
    assert!(max >= 4, "requests overlap, saw at most {max} in flight");
    // 40 × 200 ms in series would be 8 s.
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
}

#[test]
fn drain_through_the_probe_follows_a_real_sidekiq_until_idle() {
    let pod = "rails-worker-7d9c8f6b5-drain";
    // Every part bound by name: `..` would drop the Sidekiq and the API server at once.
    let RealPod {
        redis,
        _sidekiq,
        probe,
        _api,
        kubeconfig,
    } = RealPod::start(pod, 40);
    enqueue(&redis, &[(4.0, "a"), (6.0, "b")]);
    assert!(wait_until(Duration::from_secs(20), || redis
        .cli(&["SCARD", "sg:started"])
        .trim()
        == "2"));

    let started = Instant::now();
    let out = run_in(&kubeconfig, &["drain", pod, "--interval", "1s"]);
    let took = started.elapsed();
    let output = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{output}\n{}\nprobe:\n{}",
        text(&out.stderr),
        probe.log()
    );
    assert!(
        output.starts_with(&format!(
            // The drain budget (20 s + 40 s) and 5 s for the probe's answer.
            "shop/{pod}: quieting through its probe (waiting up to 1m5s)\n"
        )),
        "{output}"
    );
    assert!(
        output.contains("TimedJob"),
        "progress names the running jobs: {output}"
    );
    assert_last_line(&output, &format!("shop/{pod}: idle after "));
    assert_eq!(
        redis.cli(&["SCARD", "sg:done"]).trim(),
        "2",
        "both jobs finished"
    );
    assert!(took < Duration::from_secs(25), "drained in {took:?}");
}

/// `--timeout` bounds the plugin's wait, not the probe's budget: a drain that outlives the
/// probe's budget is asked for again.
#[test]
fn drain_through_the_probe_honours_a_timeout_longer_than_the_probes_budget() {
    let pod = "rails-worker-7d9c8f6b5-longer";
    let RealPod {
        redis,
        _sidekiq,
        probe,
        _api,
        kubeconfig,
    } = RealPod::with_probe_budget(pod, 40, "3s");
    enqueue(&redis, &[(10.0, "a")]);
    assert!(wait_until(Duration::from_secs(20), || redis
        .cli(&["SCARD", "sg:started"])
        .trim()
        == "1"));
    let drain = |timeout: &str| {
        run_in(
            &kubeconfig,
            &["drain", pod, "--timeout", timeout, "--interval", "500ms"],
        )
    };

    let out = drain("1s");
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{output}");
    assert_last_line(&output, &format!("shop/{pod}: timed out after "));
    // The probe's own drain goes on to its budget and ends with the job still running.
    let exhausted = wait_until(Duration::from_secs(10), || {
        let out = run_in(&kubeconfig, &["status", "-o", "json"]);
        let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        snapshot["pods"][0]["drain"]["state"] == "budget_exhausted"
    });
    assert!(
        exhausted,
        "probe:
{}",
        probe.log()
    );

    let out = drain("30s");
    let output = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{output}
probe:
{}",
        probe.log()
    );
    assert!(
        output.contains(
            "the probe's drain budget of 3s ran out with jobs running; asking again for the "
        ),
        "{output}"
    );
    assert_last_line(&output, &format!("shop/{pod}: idle after "));
    assert_eq!(redis.cli(&["SCARD", "sg:done"]).trim(), "1");
}

/// `/status` still shows an earlier drain that ended `drained` (before Sidekiq restarted, say);
/// this drain's outcome is the `/drain` answer's, here a budget exhausted by a running job.
#[test]
fn drain_through_the_probe_takes_its_own_answer_not_an_earlier_drains() {
    let api = ApiServer::start();
    let pod = "rails-worker-7d9c8f6b5-again";
    api.add_pod(injected_pod("shop", pod, 300, 7434));
    let mut earlier = probe_document(pod, &[("ReportJob", 30.0)], "drained");
    earlier["drain"]["started_at"] = json!(1_795_600_000.0);
    let mut answer = earlier["drain"].clone();
    answer["state"] = json!("budget_exhausted");
    answer["started_at"] = json!(1_795_663_000.0);
    answer["message"] = json!("1 job still running after the budget of 5m20s: ReportJob");
    api.proxy(
        "shop",
        pod,
        7434,
        ProxyTarget::ByPath(vec![
            ("/status", fixed(200, earlier)),
            (
                "/drain",
                ProxyTarget::Fixed {
                    status: 504,
                    body: answer.to_string(),
                    delay: Duration::from_millis(300),
                },
            ),
        ]),
    );
    let kubeconfig = api.kubeconfig("shop");
    let out = run_in(
        &kubeconfig,
        &["drain", pod, "--interval", "100ms", "--timeout", "1s"],
    );
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{output}{}", text(&out.stderr));
    assert!(!output.contains(": idle after"), "{output}");
    assert!(
        !output.contains("drained"),
        "the earlier drain is not shown as progress: {output}"
    );
    assert!(
        output.ends_with(&format!(
            "shop/{pod}: not idle after 0s: 1 job still running after the budget of 5m20s: ReportJob\n"
        )),
        "{output}"
    );

    // The same drain with -o yaml: progress on stderr, the probe's outcome on stdout.
    let out = run_in(
        &kubeconfig,
        &[
            "drain",
            pod,
            "--interval",
            "100ms",
            "--timeout",
            "1s",
            "-o",
            "yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).ends_with(": 1 job still running after the budget of 5m20s: ReportJob\n"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        format!(
            "pods:\n- namespace: shop\n  pod: {pod}\n  via: probe\n  idle: false\n  state: budget_exhausted\n  elapsedSeconds: 0\n  message: \"1 job still running after the budget of 5m20s: ReportJob\"\n  processes: []\n"
        )
    );

    // The default wait is the budget and the time for the probe's answer: the answer is the
    // outcome, not a reason to ask again for what is left of the wait.
    let out = run_in(
        &kubeconfig,
        &["drain", pod, "--interval", "100ms", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pods"][0]["state"], "budget_exhausted");
    assert!(
        !text(&out.stderr).contains("asking again"),
        "{}",
        text(&out.stderr)
    );

    // A probe whose drain outlives each request (503, still draining) is asked again until the
    // wait is over, which ends on time.
    let mut draining = probe_document(pod, &[("ReportJob", 30.0)], "draining");
    draining["drain"]["started_at"] = json!(1_795_663_000.0);
    api.proxy(
        "shop",
        pod,
        7434,
        ProxyTarget::ByPath(vec![
            ("/status", fixed(200, draining.clone())),
            (
                "/drain",
                ProxyTarget::Fixed {
                    status: 503,
                    body: draining["drain"].to_string(),
                    delay: Duration::from_millis(200),
                },
            ),
        ]),
    );
    let started = Instant::now();
    let out = run_in(
        &kubeconfig,
        &["drain", pod, "--interval", "300ms", "--timeout", "1s"],
    );
    let took = started.elapsed();
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{output}{}", text(&out.stderr));
    assert!(
        output.contains(&format!(
            "shop/{pod}: the probe's drain is still draining; asking again\n"
        )),
        "{output}"
    );
    assert!(
        output.ends_with(&format!("shop/{pod}: timed out after 1s\n")),
        "{output}"
    );
    assert!(took < Duration::from_secs(4), "ended on time: {took:?}");

    // A probe the API server cannot reach: the document says why it timed out, not only that.
    let unreachable = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "error trying to reach service: dial tcp 10.1.2.3:7434: connect: connection refused", "reason": "ServiceUnavailable", "code": 503});
    api.proxy(
        "shop",
        pod,
        7434,
        ProxyTarget::Fixed {
            status: 503,
            body: unreachable.to_string(),
            delay: Duration::ZERO,
        },
    );
    let out = run_in(
        &kubeconfig,
        &[
            "drain",
            pod,
            "--interval",
            "300ms",
            "--timeout",
            "1s",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = report["pods"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("timed out after 1s; the last attempt to reach the probe failed: ")
            && message.contains("connect: connection refused"),
        "{message}"
    );

    // A /drain the proxy refuses is an error that says so, not a silent wait.
    api.proxy(
        "shop",
        pod,
        7434,
        ProxyTarget::ByPath(vec![(
            "/status",
            fixed(200, probe_document(pod, &[], "idle")),
        )]),
    );
    let out = run_in(&kubeconfig, &["drain", pod, "--timeout", "5s"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).ends_with(&format!(
            "shop/{pod}: drain failed: the probe answered 404: not found\n"
        )),
        "each failed pod says so among the progress: {}",
        text(&out.stdout)
    );
    assert_eq!(
        text(&out.stderr),
        format!("error: pod shop/{pod}: the probe answered 404: not found\n")
    );
    // With -o json the document still tells that pod's outcome.
    let out = run_in(
        &kubeconfig,
        &["drain", pod, "--timeout", "5s", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with(&format!(
            "error: pod shop/{pod}: the probe answered 404: not found\n"
        )),
        "{}",
        text(&out.stderr)
    );
    let document: Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcome = &document["pods"][0];
    assert_eq!(outcome["state"], "error");
    assert_eq!(outcome["idle"], false);
    // The element names the pod already: its message does not again.
    assert_eq!(outcome["message"], "the probe answered 404: not found");
}

/// A test API server holding one injected pod whose idle probe answers `/drain` after `delay`
/// with a drain that ended `drained`.
fn api_with_drained_pod(pod: &str, delay: Duration) -> ApiServer {
    let api = ApiServer::start();
    api.add_pod(injected_pod("shop", pod, 300, 7434));
    let mut drained = probe_document(pod, &[], "drained");
    drained["drain"]["started_at"] = json!(1_795_663_000.0);
    api.proxy(
        "shop",
        pod,
        7434,
        ProxyTarget::ByPath(vec![
            ("/status", fixed(200, probe_document(pod, &[], "idle"))),
            (
                "/drain",
                ProxyTarget::Fixed {
                    status: 200,
                    body: drained["drain"].to_string(),
                    delay,
                },
            ),
        ]),
    );
    api
}

/// The probe answers `/drain` only when the drain ends, minutes later: the silence before is
/// bounded by the drain's wait, not by `--request-timeout`, which bounds API requests.
#[test]
fn a_drain_answer_may_take_longer_than_the_request_timeout() {
    let pod = "rails-worker-7d9c8f6b5-patient";
    let api = api_with_drained_pod(pod, Duration::from_millis(2500));
    let kubeconfig = api.kubeconfig("shop");
    let out = run_in(
        &kubeconfig,
        &[
            "drain",
            pod,
            "--request-timeout",
            "1s",
            "--interval",
            "5s",
            "--timeout",
            "20s",
        ],
    );
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{output}{}", text(&out.stderr));
    assert_eq!(
        output,
        format!(
            "shop/{pod}: quieting through its probe (waiting up to 20s)\nshop/{pod}: idle after 2s\n"
        )
    );
}

#[test]
fn drain_through_redis_reuses_the_probes_state_machine_and_times_out() {
    let redis = RedisServer::start();
    let host = "legacy-worker-0";
    let worker = FakeSidekiq::plain(
        redis.url(),
        host,
        7,
        Version::V7,
        Duration::from_millis(300),
    );
    worker.run_job(
        r#"{"class":"ImportJob","jid":"i1","queue":"default"}"#,
        Duration::from_secs(2),
    );
    let (api, kubeconfig) = api_with_bare_pod(host);
    std::thread::sleep(Duration::from_millis(500));

    let out = run_in(
        &kubeconfig,
        &[
            "drain",
            host,
            "--redis-url",
            &redis.url(),
            "--interval",
            "300ms",
        ],
    );
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{output}{}", text(&out.stderr));
    assert!(worker.is_quiet(), "TSTP was pushed and popped");
    assert!(output.contains("ImportJob"), "{output}");
    assert_last_line(&output, &format!("shop/{host}: idle after"));

    // A job longer than the timeout: exit 1, saying what still runs; with -o json the progress
    // goes to stderr and stdout gets the outcome.
    let busy = FakeSidekiq::plain(
        redis.url(),
        "slow-worker-0",
        8,
        Version::V8,
        Duration::from_millis(300),
    );
    busy.run_job(
        r#"{"class":"ReportJob","jid":"r1","queue":"default"}"#,
        Duration::from_secs(60),
    );
    api.add_pod(bare_pod("slow-worker-0"));
    let out = run_in(
        &kubeconfig,
        &[
            "drain",
            "slow-worker-0",
            "--redis-url",
            &redis.url(),
            "--timeout",
            "2s",
            "--interval",
            "300ms",
            "-o",
            "json",
        ],
    );
    let progress = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{progress}");
    let last = progress.lines().last().unwrap();
    assert!(
        last.starts_with("shop/slow-worker-0: not idle after"),
        "{progress}"
    );
    assert!(last.contains("ReportJob"), "{progress}");
    let mut document: Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcome = &mut document["pods"][0];
    let elapsed = outcome["elapsedSeconds"].take();
    assert!(matches!(elapsed.as_u64(), Some(2..=3)), "{elapsed}");
    let job = outcome["processes"][0]["jobs"][0].take();
    assert!(
        job.as_str().unwrap().starts_with("ReportJob (r1) "),
        "{job}"
    );
    assert_eq!(
        document,
        json!({"pods": [{
            "namespace": "shop",
            "pod": "slow-worker-0",
            "via": "redis",
            "idle": false,
            "state": "budget_exhausted",
            "elapsedSeconds": null,
            "message": last.split_once(": not idle after 2s: ").map(|(_, why)| why),
            "processes": [{
                "identity": busy.identity,
                "status": "waiting",
                "quiet": true,
                "busy": 1,
                "jobs": [null]
            }]
        }]})
    );
}

#[test]
fn drain_through_redis_that_finds_nothing_fails_and_reads_a_key_prefix() {
    let redis = RedisServer::start();
    let host = "ns-worker-0";
    // Sidekiq 6 with redis-namespace: every key under `myapp:`.
    let worker = FakeSidekiq::start(FakeConfig {
        url: redis.url(),
        prefix: "myapp:".into(),
        host: host.into(),
        pid: 11,
        version: Version::V6,
        beat: Duration::from_millis(300),
        embedded: false,
    });
    worker.run_job(
        r#"{"class":"ImportJob","jid":"n1","queue":"default"}"#,
        Duration::from_secs(1),
    );
    let (_api, kubeconfig) = api_with_bare_pod(host);
    std::thread::sleep(Duration::from_millis(500));
    let url = redis.url();
    let drain = |extra: &[&str]| {
        let mut args = vec!["drain", host, "--redis-url", &url, "--interval", "300ms"];
        args.extend(extra);
        run_in(&kubeconfig, &args)
    };

    // Without the prefix nothing matches: not "idle", but a failure saying what to check.
    let out = drain(&[]);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{output}{}", text(&out.stderr));
    assert_last_line(
        &output,
        "shop/ns-worker-0: drain failed: no Sidekiq process of host ns-worker-0 in Redis, so nothing was quieted: check --redis-url (and its database), --redis-namespace, and that Sidekiq runs in the pod",
    );
    assert!(!output.contains("drained"), "{output}");
    assert!(!worker.is_quiet());

    // A Redis that refuses the URL's credentials from the start: a wrong URL, said at once
    // instead of retried for the whole budget.
    let wrong = url.replace("redis://", "redis://:not-the-password@");
    let started = std::time::Instant::now();
    let out = run_in(&kubeconfig, &["drain", host, "--redis-url", &wrong]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Password authentication failed") && !stderr.contains("not-the-password"),
        "{stderr}"
    );
    // So is a Redis never reached: a closed port is a wrong URL, not an outage to wait out.
    let closed = format!("redis://127.0.0.1:{}/0", free_port());
    let started = std::time::Instant::now();
    let out = run_in(&kubeconfig, &["drain", host, "--redis-url", &closed]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        text(&out.stderr).contains("Connection refused"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stdout).contains("retrying"),
        "{}",
        text(&out.stdout)
    );

    let out = drain(&["--redis-namespace", "myapp"]);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{output}{}", text(&out.stderr));
    assert!(
        worker.is_quiet(),
        "TSTP went to myapp:{}-signals",
        worker.identity
    );
    assert_last_line(&output, "shop/ns-worker-0: idle after");

    // The prefix means nothing without a Redis to read.
    let out = run_in(&kubeconfig, &["drain", host, "--redis-namespace", "myapp"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--redis-url"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn drain_through_redis_outlasts_a_redis_hiccup() {
    let redis = RedisServer::start();
    let host = "hiccup-worker-0";
    let worker = FakeSidekiq::plain(
        redis.url(),
        host,
        12,
        Version::V7,
        Duration::from_millis(300),
    );
    worker.run_job(
        r#"{"class":"ImportJob","jid":"h1","queue":"default"}"#,
        Duration::from_secs(6),
    );
    let (_api, kubeconfig) = api_with_bare_pod(host);
    std::thread::sleep(Duration::from_millis(500));

    let drain = plugin()
        .args([
            "drain",
            host,
            "--redis-url",
            &redis.url(),
            "--interval",
            "300ms",
        ])
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // Redis stops answering for longer than a read's timeout, then comes back.
    redis.signal("STOP");
    std::thread::sleep(Duration::from_secs(3));
    redis.signal("CONT");
    let out = drain.wait_with_output().unwrap();
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{output}{}", text(&out.stderr));
    assert!(
        output.contains("shop/hiccup-worker-0: Redis unreachable, retrying: "),
        "{output}"
    );
    assert!(worker.is_quiet());
    assert_last_line(&output, "shop/hiccup-worker-0: idle after");
}

#[test]
fn drain_through_redis_refuses_a_host_other_pods_share() {
    let redis = RedisServer::start();
    // A literal DYNO in a template with two replicas: both pods' processes are `worker.1:…`.
    let worker = FakeSidekiq::plain(
        redis.url(),
        "worker.1",
        31,
        Version::V7,
        Duration::from_millis(300),
    );
    let api = ApiServer::start();
    for name in ["worker-7d9c8f6b5-aaaaa", "worker-7d9c8f6b5-bbbbb"] {
        let mut pod = bare_pod(name);
        pod["spec"]["containers"][0]["env"] = json!([{"name": "DYNO", "value": "worker.1"}]);
        api.add_pod(pod);
    }
    let kubeconfig = api.kubeconfig("shop");
    std::thread::sleep(Duration::from_millis(500));

    let out = run_in(
        &kubeconfig,
        &[
            "drain",
            "worker-7d9c8f6b5-aaaaa",
            "--redis-url",
            &redis.url(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stderr),
        "error: pod shop/worker-7d9c8f6b5-aaaaa: cannot tell its Sidekiq processes in Redis: pod \
         shop/worker-7d9c8f6b5-bbbbb has the same hostname worker.1, so whose processes are whose \
         cannot be told; once sidekiq-guard's probe is injected, it drains the pod's own processes\n"
    );
    assert!(!worker.is_quiet(), "no TSTP reached the shared host");
}

#[test]
fn drain_through_redis_finds_the_processes_dyno_names() {
    let redis = RedisServer::start();
    // Sidekiq names its processes after $DYNO when the container sets it, not the hostname.
    let worker = FakeSidekiq::plain(
        redis.url(),
        "worker.1",
        9,
        Version::V7,
        Duration::from_millis(300),
    );
    worker.run_job(
        r#"{"class":"ImportJob","jid":"d1","queue":"default"}"#,
        Duration::from_secs(1),
    );
    let api = ApiServer::start();
    let bare = |name: &str, env: Value| {
        let mut pod = injected_pod("shop", name, 60, 7434);
        pod["metadata"]["annotations"] = json!({"sidekiq-guard.io/longest-job": "90s"});
        pod["spec"]["containers"][0]["env"] = env;
        pod
    };
    api.add_pod(bare(
        "dyno-worker-0",
        json!([{"name": "DYNO", "value": "worker.1"}]),
    ));
    api.add_pod(bare(
        "secret-dyno-0",
        json!([{"name": "DYNO", "valueFrom": {"secretKeyRef": {"name": "app", "key": "dyno"}}}]),
    ));
    let kubeconfig = api.kubeconfig("shop");
    std::thread::sleep(Duration::from_millis(500));

    let drain = |pod: &str| {
        run_in(
            &kubeconfig,
            &[
                "drain",
                pod,
                "--redis-url",
                &redis.url(),
                "--interval",
                "300ms",
            ],
        )
    };
    let out = drain("dyno-worker-0");
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{output}{}", text(&out.stderr));
    assert!(worker.is_quiet(), "TSTP reached the process DYNO names");
    let first = output.lines().next().unwrap();
    assert_eq!(
        first,
        "shop/dyno-worker-0: quieting through Redis (processes of host worker.1, budget 1m50s)",
        "the budget is the formula's on the pod's own longest-job"
    );
    assert!(output.contains("ImportJob"), "{output}");

    // A DYNO from a Secret cannot be read from the pod: refused, never a false "idle".
    let out = drain("secret-dyno-0");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stderr),
        "error: pod shop/secret-dyno-0: cannot tell its Sidekiq processes in Redis: the Sidekiq \
         container's DYNO comes from a Secret, a ConfigMap or a resource, which the pod object does \
         not show; once sidekiq-guard's probe is injected, it drains the pod's own processes\n"
    );
}

/// "Via the probe, else via Redis": a Redis URL (here one where nothing listens, as a
/// `KUBECTL_SIDEKIQ_REDIS_URL` exported for other pods may be) does not take an injected pod
/// away from its probe.
/// `drain POD --redis-url … -o json` with `extra` flags, against a Redis nobody listens on: the
/// JSON document of a drain that succeeded without it.
fn drain_given_redis(kubeconfig: &std::path::Path, pod: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "drain",
        pod,
        "--redis-url",
        "redis://127.0.0.1:9",
        "-o",
        "json",
    ];
    args.extend(extra);
    let out = run_in(kubeconfig, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_injected_pod_drains_through_its_probe_even_given_redis() {
    let pod = "rails-worker-7d9c8f6b5-probed";
    let api = api_with_drained_pod(pod, Duration::ZERO);
    let kubeconfig = api.kubeconfig("shop");
    let document = drain_given_redis(&kubeconfig, pod, &["--timeout", "3s"]);
    assert_eq!(document["pods"][0]["via"], "probe");
    assert_eq!(document["pods"][0]["idle"], true);
    assert_eq!(requests_with(&api, "/proxy/drain"), 1);
    // Nor is the namespace listed for pods sharing its host: only a drain through Redis needs
    // to know them.
    assert_eq!(pod_lists(&api), 0, "{:?}", api.requests());
}

#[test]
fn drain_refuses_pods_without_a_probe_unless_given_redis() {
    let (_api, kubeconfig) = api_with_bare_pod("bare-worker");
    let out = run_in(&kubeconfig, &["drain", "bare-worker"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: pod shop/bare-worker: no sidekiq-guard probe (not injected); use --redis-url to quiet it through Redis\n"
    );
    let out = run_in(&kubeconfig, &["drain", "missing"]);
    assert_eq!(text(&out.stderr), "error: pod shop/missing not found\n");

    // Beside a pod it can drain, the bare one does not stop the drain: it goes into the
    // document with its reason, and the run exits 2 once the other pod is drained.
    let probed = "rails-worker-7d9c8f6b5-probed";
    let api = api_with_drained_pod(probed, Duration::ZERO);
    api.add_pod(bare_pod("bare-worker"));
    let kubeconfig = api.kubeconfig("shop");
    let out = run_in(
        &kubeconfig,
        &[
            "drain",
            "bare-worker",
            probed,
            "--timeout",
            "3s",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let document: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pods = document["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 2, "{document}");
    assert_eq!(
        (&pods[0]["pod"], &pods[0]["via"], &pods[0]["state"]),
        (&json!("bare-worker"), &json!("none"), &json!("error"))
    );
    assert_eq!(
        pods[0]["message"],
        "no sidekiq-guard probe (not injected); use --redis-url to quiet it through Redis"
    );
    assert_eq!(
        (&pods[1]["pod"], &pods[1]["idle"]),
        (&json!(probed), &json!(true))
    );
    assert_eq!(requests_with(&api, "/proxy/drain"), 1);

    // A pod named by mistake that runs no Sidekiq is said to run none, not to lack Redis.
    let mut web = bare_pod("web-1");
    web["spec"]["containers"][0]["command"] = json!(["bundle", "exec", "puma"]);
    api.add_pod(web);
    let out = run_in(&kubeconfig, &["drain", "web-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with(
            "error: pod shop/web-1: no sidekiq-guard probe, and no container runs sidekiq as far as its spec shows (set the sidekiq-guard.io/container annotation if one does); with --redis-url its host's processes are quieted through Redis\n"
        ),
        "{}",
        text(&out.stderr)
    );
    let out = run_in(&kubeconfig, &["drain"]);
    assert_eq!(
        text(&out.stderr),
        "error: name the pods to drain, or select them with -l\n"
    );
}

/// An evicted pod keeps its workload's labels: `drain -l` finds it, and must neither wait for
/// its probe nor call it a failure; a Pending one has nothing to quiet yet.
#[test]
fn drain_tells_pods_whose_sidekiq_does_not_run_without_asking_them() {
    let api = ApiServer::start();
    let mut evicted = injected_pod("shop", "worker-evicted", 60, 7434);
    evicted["status"]["phase"] = json!("Failed");
    evicted["status"]["reason"] = json!("Evicted");
    api.add_pod(evicted);
    let kubeconfig = api.kubeconfig("shop");
    let out = run_in(&kubeconfig, &["drain", "-l", "app=worker"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "shop/worker-evicted: idle: pod is Failed: its containers have exited: Sidekiq runs no job\n"
    );
    // Through Redis too, without looking for its processes.
    let document = drain_given_redis(&kubeconfig, "worker-evicted", &[]);
    assert_eq!(document["pods"][0]["via"], "none");
    assert_eq!(document["pods"][0]["idle"], true);
    // Nor, for a pod without the probe whose Sidekiq has exited, are the pods sharing its host
    // looked for: nothing goes through Redis.
    let listed = pod_lists(&api);
    let mut exited = bare_pod("bare-worker-done");
    exited["status"]["phase"] = json!("Succeeded");
    api.add_pod(exited);
    let out = run_in(
        &kubeconfig,
        &[
            "drain",
            "bare-worker-done",
            "--redis-url",
            "redis://127.0.0.1:9",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(pod_lists(&api), listed, "{:?}", api.requests());

    let mut pending = injected_pod("shop", "worker-pending", 60, 7434);
    pending["status"]["phase"] = json!("Pending");
    api.add_pod(pending);
    let out = run_in(&kubeconfig, &["drain", "-l", "app=worker"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(
            "shop/worker-pending: not drained: pod is Pending: its Sidekiq has not started, so there is nothing to quiet yet\n"
        ),
        "{}",
        text(&out.stdout)
    );
    assert!(
        !api.requests().iter().any(|r| r.contains("/proxy")),
        "{:?}",
        api.requests()
    );

    // Pending because another container waits, with Sidekiq running: drained as usual.
    let mut waiting = injected_pod("shop", "worker-waiting", 60, 7434);
    waiting["status"]["phase"] = json!("Pending");
    waiting["status"]["containerStatuses"] = json!([
        {"name": "worker", "state": {"running": {"startedAt": "2026-11-26T10:00:00Z"}}},
        {"name": "log-shipper", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
    ]);
    api.add_pod(waiting);
    api.proxy(
        "shop",
        "worker-waiting",
        7434,
        fixed(200, probe_document("worker-waiting", &[], "idle")),
    );
    let out = run_in(&kubeconfig, &["drain", "worker-waiting", "--timeout", "2s"]);
    assert!(
        api.requests()
            .iter()
            .any(|r| r.contains("worker-waiting:7434/proxy")),
        "not asked: {}",
        text(&out.stdout)
    );

    // Pending with another container running but Sidekiq's own waiting: not started.
    let mut pulling = injected_pod("shop", "worker-pulling", 60, 7434);
    pulling["status"]["phase"] = json!("Pending");
    pulling["status"]["containerStatuses"] = json!([
        {"name": "worker", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
        {"name": "cloud-sql-proxy", "state": {"running": {"startedAt": "2026-11-26T10:00:00Z"}}},
    ]);
    api.add_pod(pulling);
    let out = run_in(&kubeconfig, &["drain", "worker-pulling"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("shop/worker-pulling: not drained: pod is Pending"),
        "{}",
        text(&out.stdout)
    );
}

/// A refresh that fails once the watch has shown a snapshot is said on stderr; the watch goes
/// on and shows the cluster again once it answers.
#[test]
fn a_watch_outlives_a_failed_refresh() {
    let api = one_worker("MailJob");
    let kubeconfig = api.kubeconfig("shop");
    let child = watch(&kubeconfig, &["--interval", "200ms"]);
    let lists = || requests_with(&api, "/pods?");
    assert!(wait_until(Duration::from_secs(10), || lists() >= 1));
    api.forbid("list", "pods", Some("shop"));
    let before = lists();
    assert!(wait_until(Duration::from_secs(10), || lists() >= before + 2));
    api.allow_all();
    api.proxy(
        "shop",
        "worker-1",
        7434,
        fixed(
            200,
            probe_document("worker-1", &[("AfterJob", 2.0)], "idle"),
        ),
    );
    let proxied = || requests_with(&api, "/proxy/status");
    let before = proxied();
    assert!(wait_until(Duration::from_secs(10), || proxied() >= before + 2));
    send_signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: forbidden: ") && stderr.contains("(retrying every 200ms)"),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains("AfterJob"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn watch_refreshes_until_interrupted() {
    let api = one_worker("MailJob");
    let kubeconfig = api.kubeconfig("shop");
    let child = watch(&kubeconfig, &["--interval", "1s"]);
    let pod_reads = || requests_with(&api, "/proxy/status");
    assert!(
        wait_until(Duration::from_secs(10), || pod_reads() >= 3),
        "refreshed {} times",
        pod_reads()
    );
    send_signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Ctrl-C ends a watch cleanly: {}",
        text(&out.stderr)
    );
    let screens = text(&out.stdout).matches("POD ").count();
    assert!(screens >= 3, "{}", text(&out.stdout));
}

#[test]
fn the_benchmarks_probe_document_is_what_the_probe_serves() {
    let text =
        std::fs::read_to_string(root().join("plugin/tests/golden/probe-status.json")).unwrap();
    let status: sidekiq_guard::probe::report::Status = serde_json::from_str(&text).unwrap();
    assert_eq!(status.schema, sidekiq_guard::probe::report::SCHEMA);
    assert_eq!(status.processes[0].jobs.len(), 3);
}

/// A pod whose containers do not run yet has no probe to ask: it says so instead of waiting for
/// a proxy error; a terminating pod still runs and is asked.
#[test]
fn only_pods_whose_containers_run_are_asked() {
    let api = ApiServer::start();
    let mut pending = injected_pod("shop", "worker-pending", 60, 7434);
    pending["status"]["phase"] = json!("Pending");
    api.add_pod(pending);
    let mut leaving = injected_pod("shop", "worker-leaving", 60, 7434);
    leaving["metadata"]["deletionTimestamp"] = json!("2099-01-01T00:00:00Z");
    api.add_pod(leaving);
    api.proxy(
        "shop",
        "worker-leaving",
        7434,
        fixed(200, probe_document("worker-leaving", &[], "draining")),
    );
    let kubeconfig = api.kubeconfig("shop");
    let out = run_in(&kubeconfig, &["status", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pods = snapshot["pods"].as_array().unwrap();
    assert_eq!(pods[0]["name"], "worker-leaving");
    assert_eq!(pods[0]["phase"], "Terminating");
    assert_eq!(pods[0]["source"], "probe");
    assert_eq!(pods[1]["name"], "worker-pending");
    assert_eq!(pods[1]["problem"], "pod is Pending");
    let requests = api.requests();

    // Deleted after its containers exited: its phase, not "Terminating", and it runs no job.
    let mut done = injected_pod("shop", "worker-done", 60, 7434);
    done["metadata"]["deletionTimestamp"] = json!("2099-01-01T00:00:00Z");
    done["status"]["phase"] = json!("Succeeded");
    api.add_pod(done);
    let out = run_in(&kubeconfig, &["status", "-o", "json"]);
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let done = snapshot["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "worker-done")
        .unwrap();
    assert_eq!(done["phase"], "Terminating");
    assert_eq!(done["problem"], "pod is Succeeded");
    assert_eq!(done["terminating"]["verdict"]["verdict"], "idle", "{done}");
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("worker-pending:7434/proxy")),
        "{requests:?}"
    );
}

#[test]
fn one_pods_answer_breaking_off_is_that_pods_problem_not_the_clusters() {
    let api = ApiServer::start();
    api.add_pod(injected_pod("shop", "worker-1", 60, 7434));
    api.add_pod(injected_pod("shop", "worker-2", 60, 7434));
    api.proxy(
        "shop",
        "worker-1",
        7434,
        fixed(200, probe_document("worker-1", &[("MailJob", 2.0)], "idle")),
    );
    api.proxy("shop", "worker-2", 7434, ProxyTarget::BrokenOff);
    // Deleted between the list and the proxy: the API server's own 404, not the probe's.
    api.add_pod(injected_pod("shop", "worker-3", 60, 7434));
    api.proxy(
        "shop",
        "worker-3",
        7434,
        fixed(
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                   "message": "pods \"worker-3\" not found"}),
        ),
    );
    // A proxy in between answering with an HTML page: one line in the table.
    api.add_pod(injected_pod("shop", "worker-4", 60, 7434));
    api.proxy(
        "shop",
        "worker-4",
        7434,
        ProxyTarget::Fixed {
            status: 502,
            body:
                "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>\n"
                    .to_owned(),
            delay: Duration::ZERO,
        },
    );

    // Something else on the probe's port answering 200 with other JSON: say what was wrong.
    api.add_pod(injected_pod("shop", "worker-5", 60, 7434));
    api.proxy(
        "shop",
        "worker-5",
        7434,
        fixed(200, json!({"status": "ok"})),
    );

    let out = run_in(&api.kubeconfig("shop"), &["status", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        snapshot["pods"][0]["processes"][0]["jobs"][0]["class"],
        "MailJob"
    );
    let problem = snapshot["pods"][1]["problem"].as_str().unwrap();
    assert!(
        problem.starts_with("pod shop/worker-2: its answer through the pod proxy broke off"),
        "{problem}"
    );
    assert_eq!(
        snapshot["pods"][2]["problem"],
        "pod shop/worker-3: the API server answered 404: pods \"worker-3\" not found"
    );
    assert_eq!(
        snapshot["pods"][3]["problem"],
        "pod shop/worker-4: the probe answered 502: <html> <head><title>502 Bad Gateway</title></head> <body>nginx</body> </html>"
    );
    let problem = snapshot["pods"][4]["problem"].as_str().unwrap();
    assert!(
        problem.contains("not the JSON expected: missing field"),
        "{problem}"
    );
}

#[test]
fn a_pod_with_no_process_in_redis_is_unknown_until_its_sidekiq_has_exited() {
    let redis = RedisServer::start();
    // Another pod's process: this Redis is not empty, and still holds none of the two below.
    let other = FakeSidekiq::plain(
        redis.url(),
        "rails-worker-other",
        7,
        Version::V7,
        Duration::from_millis(500),
    );
    let api = ApiServer::start();
    let terminating = |name: &str, worker_state: Value| {
        let mut pod = injected_pod("shop", name, 300, 7434);
        pod["metadata"]["deletionTimestamp"] = json!(sidekiq_guard::timestamp::format(now() + 100));
        pod["status"]["containerStatuses"] = json!([{"name": "worker", "state": worker_state}]);
        pod
    };
    api.add_pod(terminating(
        "rails-worker-running",
        json!({"running": {"startedAt": "2026-11-26T10:00:00Z"}}),
    ));
    api.add_pod(terminating(
        "rails-worker-exited",
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
    ));
    // Evicted: its phase says why it has no process, as through the probe.
    let mut evicted = injected_pod("shop", "rails-worker-evicted", 300, 7434);
    evicted["status"]["phase"] = json!("Failed");
    api.add_pod(evicted);
    assert!(wait_until(Duration::from_secs(5), || redis
        .cli(&["SCARD", "processes"])
        .trim()
        == "1"));

    let out = run_in(
        &api.kubeconfig("shop"),
        &["status", "--redis-url", &redis.url(), "-o", "json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pods = snapshot["pods"].as_array().unwrap();
    assert_eq!(pods[0]["name"], "rails-worker-evicted");
    assert_eq!(pods[0]["problem"], "pod is Failed");
    let pods = &pods[1..];
    assert_eq!(pods[0]["name"], "rails-worker-exited");
    assert_eq!(pods[0]["terminating"]["verdict"]["verdict"], "idle");
    assert_eq!(pods[0]["problem"], "its containers have exited");
    assert_eq!(pods[1]["name"], "rails-worker-running");
    assert_eq!(pods[1]["terminating"]["verdict"]["verdict"], "unseen");
    assert_eq!(
        pods[1]["terminating"]["summary"],
        "unknown: its running jobs cannot be seen (no Sidekiq process of this pod in Redis: \
         is it the Redis (database, --redis-namespace) this pod uses, and has Sidekiq started?)"
    );
    let seconds_left = pods[1]["terminating"]["secondsLeft"].as_u64().unwrap();
    assert!((95..=100).contains(&seconds_left), "{seconds_left}");
    drop(other);
}

#[test]
fn status_from_redis_goes_on_when_the_cluster_is_down_or_a_kubeconfig_file_is_missing() {
    let redis = RedisServer::start();
    let worker = FakeSidekiq::plain(
        redis.url(),
        "worker-host",
        42,
        Version::V7,
        Duration::from_millis(500),
    );
    assert!(wait_until(Duration::from_secs(5), || redis
        .cli(&["SCARD", "processes"])
        .trim()
        == "1"));
    let api = ApiServer::start();
    api.add_pod(injected_pod("shop", "worker-host", 60, 7434));
    let live = api.kubeconfig("shop");
    let dir = tempfile::tempdir().unwrap();

    // kubectl skips a KUBECONFIG entry that does not exist; so does the plugin.
    let missing = dir.path().join("missing");
    let joined = std::env::join_paths([missing.as_path(), live.as_path()]).unwrap();
    let out = plugin()
        .env("KUBECONFIG", &joined)
        .args(["status", "--redis-url", &redis.url(), "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["pods"][0]["namespace"], "shop");
    assert_eq!(snapshot["pods"][0]["source"], "redis");

    // A proxy in the environment is honoured, and NO_PROXY exempts the cluster.
    let out = plugin()
        .env("KUBECONFIG", &live)
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1")
        .args(["status", "--redis-url", &redis.url(), "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["pods"][0]["namespace"], "shop");

    // A cluster that does not answer: Redis still does, by hostname.
    let dead = dir.path().join("dead");
    let port = free_port();
    let config = std::fs::read_to_string(&live).unwrap();
    let server = config
        .lines()
        .find_map(|line| line.trim().strip_prefix("server: "))
        .unwrap();
    std::fs::write(
        &dead,
        config.replace(server, &format!("https://127.0.0.1:{port}")),
    )
    .unwrap();
    let out = run_in(
        &dead,
        &["status", "--redis-url", &redis.url(), "-o", "json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "cannot reach the Kubernetes API at https://127.0.0.1:{port}"
        )) && text(&out.stderr).ends_with(": showing Redis processes by hostname only\n"),
        "{}",
        text(&out.stderr)
    );
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["pods"][0]["name"], "worker-host");
    assert_eq!(snapshot["pods"][0]["namespace"], "");
    drop(worker);
}

#[test]
fn a_watch_ends_on_ctrl_c_while_a_snapshot_loads_and_separates_yaml_documents() {
    let api = ApiServer::start();
    api.add_pod(injected_pod("shop", "worker-1", 60, 7434));
    let kubeconfig = api.kubeconfig("shop");
    // The probe answers only after 4 s: the snapshot is still loading when Ctrl-C comes.
    api.proxy(
        "shop",
        "worker-1",
        7434,
        ProxyTarget::Fixed {
            status: 200,
            body: probe_document("worker-1", &[], "idle").to_string(),
            delay: Duration::from_secs(4),
        },
    );
    let mut child = watch(&kubeconfig, &["--interval", "1s"]);
    let asked = || api.requests().iter().any(|r| r.contains("/proxy/status"));
    assert!(wait_until(Duration::from_secs(10), asked));
    send_signal(child.id(), "INT");
    let ended = wait_until(Duration::from_secs(3), || {
        child.try_wait().unwrap().is_some()
    });
    if !ended {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(ended, "Ctrl-C during loading was lost");
    assert!(out.status.success(), "{}", text(&out.stderr));

    // On a pipe, YAML snapshots are separate documents.
    api.proxy(
        "shop",
        "worker-1",
        7434,
        fixed(200, probe_document("worker-1", &[], "idle")),
    );
    let child = watch(&kubeconfig, &["--interval", "200ms", "-o", "yaml"]);
    let reads = || {
        api.requests()
            .iter()
            .filter(|r| r.contains("/proxy/status"))
            .count()
    };
    assert!(wait_until(Duration::from_secs(10), || reads() >= 4));
    send_signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    let stream = text(&out.stdout);
    let documents: Vec<Value> = serde_saphyr::from_multiple(&stream).unwrap();
    assert!(documents.len() >= 2, "{stream}");
    assert!(documents.iter().all(|d| d["pods"][0]["name"] == "worker-1"));
}

#[test]
fn a_namespace_whose_pod_proxy_is_forbidden_is_its_pods_problem_until_every_pod_is() {
    let api = ApiServer::start();
    for namespace in ["shop", "billing"] {
        api.add_pod(injected_pod(namespace, "worker-1", 60, 7434));
        api.proxy(
            namespace,
            "worker-1",
            7434,
            fixed(200, probe_document("worker-1", &[], "idle")),
        );
    }
    api.forbid("get", "pods/proxy", Some("billing"));
    let kubeconfig = api.kubeconfig("shop");

    let out = run_in(&kubeconfig, &["status", "-A", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["pods"][0]["namespace"], "billing");
    let problem = snapshot["pods"][0]["problem"].as_str().unwrap();
    assert!(
        problem.starts_with("forbidden: ")
            && problem.ends_with("your RBAC role needs: get pods/proxy in namespace billing"),
        "{problem}"
    );
    assert_eq!(snapshot["pods"][1]["source"], "probe");

    let out = run_in(&kubeconfig, &["status", "-n", "billing"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).ends_with("your RBAC role needs: get pods/proxy in namespace billing\n"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_redis_that_stops_answering_is_given_the_request_timeout() {
    let redis = RedisServer::start();
    let home = tempfile::tempdir().unwrap();
    redis.signal("STOP");
    let started = Instant::now();
    let out = without_a_cluster(home.path())
        .args([
            "status",
            "--redis-url",
            &redis.url(),
            "--request-timeout",
            "3s",
        ])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    redis.signal("CONT");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("did not answer within 3"), "{stderr}");
    // Not the 2 s default: the reply was awaited for the whole request timeout.
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
}

/// A kubeconfig's `exec` credential plugin (`aws eks get-token`, kubelogin) may take seconds or
/// prompt: one command builds one client, and runs it no more than kube-client does for one.
#[test]
fn an_exec_credential_plugin_runs_for_one_client_only() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs");
    let plugin_script = dir.path().join("credential");
    std::fs::write(
        &plugin_script,
        format!(
            "#!/bin/sh\necho run >> {}\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"test-token\"}}}}'\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&plugin_script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let token = std::fs::read_to_string(api.kubeconfig("shop")).unwrap();
    let exec = token.replace(
        "    token: test-token\n",
        &format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
            plugin_script.display()
        ),
    );
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, exec).unwrap();
    let runs = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let out = run_in(&kubeconfig, &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let once = runs();
    assert!(once >= 1, "the plugin gave the token");
    // What kube-client does for one client; two clients ran it twice as often.
    assert!(once <= 3, "{once} runs for one command");
}

/// `-n ""` is the context's namespace, as kubectl reads it (not a request for `namespaces//`).
#[test]
fn an_empty_namespace_flag_is_the_contexts_namespace() {
    let api = ApiServer::start();
    api.add_pod(injected_pod("shop", "worker-1", 60, 7434));
    let out = run_in(&api.kubeconfig("shop"), &["status", "-n", "", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"worker-1\""),
        "{}",
        text(&out.stdout)
    );
}

/// No pod: stdout stays empty for scripts, and stderr says so, as kubectl's "No resources
/// found" does.
#[test]
fn no_pods_is_said_on_stderr() {
    let api = ApiServer::start();
    let out = run_in(&api.kubeconfig("empty"), &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(text(&out.stderr), "No Sidekiq pods found.\n");
}

/// As kubectl: a `KUBECONFIG` whose files are all missing is not replaced by `~/.kube/config`,
/// and the error says what it lists.
#[test]
fn a_kubeconfig_variable_naming_no_file_is_said_so() {
    let api = ApiServer::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".kube")).unwrap();
    std::fs::copy(api.kubeconfig("shop"), home.path().join(".kube/config")).unwrap();
    let status = |kubeconfig: Option<&str>| {
        let mut command = plugin();
        command.arg("status").env("HOME", home.path());
        match kubeconfig {
            Some(value) => command.env("KUBECONFIG", value),
            None => command.env_remove("KUBECONFIG"),
        };
        command.output().unwrap()
    };
    assert!(status(None).status.success(), "~/.kube/config when unset");
    let out = status(Some("/missing/a:/missing/b"));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: cannot load the kubeconfig from $KUBECONFIG (and no in-cluster service account): none of the files it lists exists: /missing/a:/missing/b\n"
    );
}
