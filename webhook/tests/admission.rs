//! The admission endpoints over real HTTPS: the corpus of AdmissionReviews answered exactly as
//! the golden files say, patches that apply, and every way a request can be wrong.

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use axum::body::Bytes;
use common::{Client, Pki, Webhook};
use serde_json::{Value, json};
use sidekiq_guard::pointer::Pointer as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const WARN: &str = "sidecar: {mode: native}\n";
const DENY: &str = "sidecar: {mode: native}\nenforcement: deny\nmaxGracePeriod: 10m\n";

struct Setup {
    _dir: tempfile::TempDir,
    webhook: Webhook,
    client: Client,
}

fn start(policy: &str, extra: &[&str]) -> Setup {
    start_on("127.0.0.1", policy, extra)
}

fn start_on(host: &str, policy: &str, extra: &[&str]) -> Setup {
    start_by(|cert, key| Webhook::start_on(host, cert, key, policy, extra))
}

/// A webhook started by `start` with a fresh serving certificate and key, and a client that
/// trusts it.
fn start_by(start: impl FnOnce(&std::path::Path, &std::path::Path) -> Webhook) -> Setup {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let serving = pki.serving();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, &serving.cert_pem).unwrap();
    std::fs::write(&key, &serving.key_pem).unwrap();
    let webhook = start(&cert, &key);
    Setup {
        _dir: dir,
        webhook,
        client: Client::new(&[pki.ca_der()]),
    }
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = common::root().join("tests/data/admission");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 16, "the corpus shrank: {files:?}");
    files
        .into_iter()
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_review_of_the_corpus_gets_its_golden_answer_over_https() {
    let warn = start(WARN, &[]);
    let deny = start(DENY, &[]);
    warn.webhook.wait_ready(true, Duration::from_secs(10)).await;
    deny.webhook.wait_ready(true, Duration::from_secs(10)).await;
    // One keep-alive connection per server carries the whole corpus.
    let mut conns = [
        (
            "warn",
            warn.client.connect(warn.webhook.admission).await.unwrap(),
        ),
        (
            "deny",
            deny.client.connect(deny.webhook.admission).await.unwrap(),
        ),
    ];
    let mut checked = 0;
    for (name, body) in corpus() {
        let expected = common::json(&format!("tests/data/admission/expected/{name}.json"));
        for (policy, conn) in &mut conns {
            for endpoint in ["mutate", "validate"] {
                let answer = conn
                    .post(&format!("/{endpoint}?timeout=5s"), body.clone())
                    .await
                    .unwrap();
                assert_eq!(answer.status, 200, "{name} {policy} /{endpoint}");
                assert_eq!(answer.headers["content-type"], "application/json");
                let review = answer.json();
                assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
                assert_eq!(review["kind"], "AdmissionReview");
                assert_eq!(
                    common::readable(&review),
                    expected[*policy][endpoint],
                    "{name}: {policy} /{endpoint}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, corpus().len() * 4);
}

/// The pods of the corpus that `/mutate` patches.
const MUTATED_PODS: [&str; 3] = [
    "create-pod-rails-worker",
    "create-pod-user-probes",
    "create-pod-bad-annotations",
];

/// The review's object with the answer's base64 patch applied by an implementation independent
/// of the core, as the API server would.
fn patched(answer: &Value, object: &Value) -> Value {
    use base64::Engine as _;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut object = object.clone();
    json_patch::patch(&mut object, &patch).unwrap();
    object
}

/// The review's object as `/mutate` patches it.
async fn mutated(conn: &mut common::Conn, review: &Value) -> Value {
    let answer = conn
        .post("/mutate", serde_json::to_vec(review).unwrap())
        .await
        .unwrap()
        .json();
    patched(&answer, &review["request"]["object"])
}

#[tokio::test]
async fn the_returned_patch_turns_the_pod_into_a_protected_pod() {
    let setup = start(DENY, &[]);
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    for name in MUTATED_PODS {
        let review = common::json(&format!("tests/data/admission/{name}.json"));
        let pod = review["request"]["object"].clone();
        let answer = conn
            .post("/mutate?timeout=5s", serde_json::to_vec(&review).unwrap())
            .await
            .unwrap()
            .json();
        assert_eq!(answer["response"]["patchType"], "JSONPatch", "{name}");
        let mutated = patched(&answer, &pod);

        // What a user sees in `kubectl get pod -o yaml`.
        let sidecar = mutated["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "sidekiq-guard-probe")
            .unwrap_or_else(|| panic!("{name}: no native sidecar"));
        assert_eq!(sidecar["restartPolicy"], "Always", "{name}");
        let sidekiq = &mutated["spec"]["containers"][0];
        assert!(sidekiq["lifecycle"]["preStop"].is_object(), "{name}");
        assert!(sidekiq["livenessProbe"].is_object(), "{name}");
        let grace = mutated["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
        let status: Value = serde_json::from_str(
            mutated["metadata"]["annotations"]["sidekiq-guard.io/status"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        // The required grace, which a larger grace set by the user satisfies.
        let required = status["grace"].as_u64().unwrap();
        assert!(grace >= required, "{name}: {grace} < {required}");
        assert!(
            answer["response"]["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains(&required.to_string())),
            "{name}: no warning explains the required grace {required}"
        );

        // The same result as the core's own injection (what `kubectl sidekiq inject` prints).
        let policy = sidekiq_guard::Policy::parse(DENY).unwrap();
        let ctx = sidekiq_guard::Context {
            policy: &policy,
            mode: sidekiq_guard::Mode::Native,
            namespace: Some("shop"),
        };
        let (injected, _) = sidekiq_guard::review::inject(&pod, &ctx).unwrap();
        assert_eq!(mutated, injected, "{name}");

        // Reinvocation (reinvocationPolicy: IfNeeded) changes nothing.
        let mut again = review.clone();
        again["request"]["object"] = mutated.clone();
        again["request"]["uid"] = json!("2d8c5a4e-reinvoked");
        let answer = conn
            .post("/mutate?timeout=5s", serde_json::to_vec(&again).unwrap())
            .await
            .unwrap()
            .json();
        assert_eq!(answer["response"]["uid"], "2d8c5a4e-reinvoked");
        assert_eq!(answer["response"]["allowed"], true);
        assert!(
            answer["response"].get("patch").is_none(),
            "{name}: {answer}"
        );
        assert!(answer["response"].get("patchType").is_none(), "{name}");
    }

    // The validating webhook sees the mutated pod: a worker with a declared longest job that
    // went through /mutate is admitted even under `enforcement: deny`.
    let review = common::json("tests/data/admission/create-pod-rails-worker.json");
    let mut after = review.clone();
    after["request"]["object"] = mutated(&mut conn, &review).await;
    let verdict = conn
        .post("/validate", serde_json::to_vec(&after).unwrap())
        .await
        .unwrap()
        .json();
    assert_eq!(verdict["response"]["allowed"], true, "{verdict}");
}

#[tokio::test]
async fn a_policy_that_forces_classic_sidecars_gets_them_from_the_server() {
    let setup = start("sidecar: {mode: classic}\n", &[]);
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    let review = common::json("tests/data/admission/create-pod-rails-worker.json");
    let pod = mutated(&mut conn, &review).await;
    // A regular container beside Sidekiq, without the native sidecar's restartPolicy.
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["worker", "sidekiq-guard-probe"]);
    assert!(pod["spec"]["containers"][1].get("restartPolicy").is_none());
    assert!(pod["spec"].get("initContainers").is_none(), "{pod}");
    let status: Value = serde_json::from_str(
        pod["metadata"]["annotations"]["sidekiq-guard.io/status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status["sidecar"], "classic");
    let metric = |s: &'static str| setup.webhook.metric(s);
    assert_eq!(
        metric("sidekiq_guard_webhook_injections_total{mode=\"classic\"}").await,
        1.0
    );
    assert_eq!(
        metric("sidekiq_guard_webhook_build_info{version=\"0.1.0\",sidecar_mode=\"classic\"}")
            .await,
        1.0
    );
}

/// The manifests have the webhook listen on `[::]`: the API server reaches it through an IPv4
/// or an IPv6 Service address alike (IPv6-only and IPv6-first clusters). Where loopback has no
/// IPv6 address (many CI containers), only IPv4 can be called; where the kernel has none, the
/// next test's case applies.
#[tokio::test]
async fn listening_on_every_address_answers_ipv4_and_ipv6() {
    if std::net::TcpListener::bind("[::]:0").is_err() {
        eprintln!(
            "no IPv6 in this kernel: see without_ipv6_in_the_kernel_it_listens_on_ipv4_and_says_so"
        );
        return;
    }
    let setup = start_on("[::]", WARN, &[]);
    let port = |addr: &str| addr.rsplit_once(':').unwrap().1.parse::<u16>().unwrap();
    let (admission, health) = setup.webhook.listening();
    assert_eq!(admission, format!("[::]:{}", port(&admission)));
    assert_eq!(health, format!("[::]:{}", port(&health)));
    let mut ips = vec!["127.0.0.1"];
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        ips.push("::1");
    } else {
        eprintln!("no IPv6 on loopback here: only IPv4 is called");
    }
    answers_at(&setup, &ips).await;
}

/// On a node whose kernel has no IPv6 (`ipv6.disable=1`, reproduced by a seccomp filter), the
/// IPv6 socket is refused: both ports listen on IPv4 instead, and the log says so.
#[tokio::test]
async fn without_ipv6_in_the_kernel_it_listens_on_ipv4_and_says_so() {
    let setup = start_by(|cert, key| Webhook::start_without_ipv6(cert, key, WARN));
    let (admission, health) = setup.webhook.listening();
    assert!(admission.starts_with("0.0.0.0:"), "{admission}");
    assert!(health.starts_with("0.0.0.0:"), "{health}");
    let fallbacks = setup
        .webhook
        .wait_logs_with("no IPv6 on this node; listening on IPv4 only", 2)
        .await;
    assert!(
        fallbacks.iter().all(|line| line["asked"] == "[::]:0"),
        "{fallbacks:?}"
    );
    answers_at(&setup, &["127.0.0.1"]).await;
}

/// `/mutate` answers over HTTPS at each of `ips`, and the webhook becomes ready.
async fn answers_at(setup: &Setup, ips: &[&str]) {
    let webhook = &setup.webhook;
    for ip in ips {
        let addr = std::net::SocketAddr::new(ip.parse().unwrap(), webhook.admission.port());
        let mut conn = setup.client.connect(addr).await.unwrap();
        let answer = conn
            .post_file(
                "/mutate",
                "tests/data/admission/create-pod-rails-worker.json",
            )
            .await;
        assert_eq!(answer.status, 200, "{addr}");
        assert!(answer.json()["response"]["patch"].is_string(), "{addr}");
    }
    webhook.wait_ready(true, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn malformed_reviews_get_400_with_a_status_naming_the_problem() {
    let setup = start(WARN, &[]);
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    let dir = common::root().join("tests/data/admission/malformed");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 19);
    for file in files {
        let body = std::fs::read(&file).unwrap();
        let expected =
            sidekiq_guard::errors::chain(&sidekiq_guard::admission::parse(&body).unwrap_err());
        let context = format!("{file:?}");
        assert_bad_request(
            &mut conn,
            &["/mutate", "/validate"],
            &body,
            &expected,
            &context,
        )
        .await;
    }
    // The connection survives bad requests.
    let ok = conn
        .post_file("/mutate", "tests/data/admission/create-pod-web.json")
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        setup
            .webhook
            .metric(
                "sidekiq_guard_webhook_requests_total{endpoint=\"validate\",result=\"bad-request\"}"
            )
            .await,
        19.0
    );
}

/// A request as the API server would send it for a pod, with `request` fields replaced
/// (`Value::Null` removes one).
/// Posts `body` to each of `endpoints` and checks the 400 `Status` answer carries `message`.
async fn assert_bad_request(
    conn: &mut common::Conn,
    endpoints: &[&str],
    body: &[u8],
    message: &str,
    context: &str,
) {
    for endpoint in endpoints {
        let answer = conn.post(endpoint, body.to_vec()).await.unwrap();
        assert_eq!(answer.status, 400, "{context} {endpoint}");
        assert_eq!(
            answer.json(),
            json!({
                "apiVersion": "v1", "kind": "Status", "status": "Failure",
                "message": message, "reason": "BadRequest", "code": 400,
            }),
            "{context} {endpoint}"
        );
    }
}

fn pod_review(fields: Value) -> Value {
    let mut review = common::json("tests/data/admission/create-pod-rails-worker.json");
    for (key, value) in fields.as_object().unwrap() {
        let request = review["request"].as_object_mut().unwrap();
        if value.is_null() {
            request.remove(key);
        } else {
            request.insert(key.clone(), value.clone());
        }
    }
    review
}

/// The rails worker pod with one change at `pointer` (a JSON pointer into the pod).
fn worker_with(pointer: &str, value: Value) -> Value {
    let mut pod =
        common::json("tests/data/admission/create-pod-rails-worker.json")["request"]["object"]
            .clone();
    *pod.at_mut(pointer).unwrap() = value;
    pod
}

/// JSON that is not what an API server sends is refused with 400 and a Status naming the
/// field and what is accepted, on both endpoints: never admitted as if the field were absent
/// (`not-create-or-update`, `not-a-workload`), never patched.
#[tokio::test]
async fn requests_an_api_server_cannot_send_get_400_naming_the_field() {
    let setup = start(WARN, &[]);
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    let operations = "CREATE, UPDATE, DELETE, CONNECT";
    let invalid = "invalid AdmissionReview: ";
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "object null on CREATE",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"},"object":null}}"#.to_vec(),
            format!("{invalid}request.object must be a JSON object on CREATE and UPDATE; found null or nothing on CREATE"),
        ),
        (
            "object a list",
            serde_json::to_vec(&pod_review(json!({"object": []}))).unwrap(),
            format!("{invalid}request.object must be a JSON object on CREATE and UPDATE; found a list on CREATE"),
        ),
        (
            "object empty on UPDATE",
            serde_json::to_vec(&pod_review(json!({"operation": "UPDATE", "object": {}}))).unwrap(),
            format!("{invalid}request.object.kind must be \"Pod\", the kind in request.kind; found none"),
        ),
        (
            "operation FOO",
            serde_json::to_vec(&pod_review(json!({"operation": "FOO"}))).unwrap(),
            format!("{invalid}request.operation \"FOO\" is not one of {operations}"),
        ),
        (
            "no operation",
            serde_json::to_vec(&pod_review(json!({"operation": null}))).unwrap(),
            format!("{invalid}request.operation is missing; it must be one of {operations}"),
        ),
        (
            "no kind",
            serde_json::to_vec(&pod_review(json!({"kind": null}))).unwrap(),
            format!("{invalid}request.kind is missing or has no kind; it must be the object's group, version and kind, such as {{\"group\": \"\", \"version\": \"v1\", \"kind\": \"Pod\"}}"),
        ),
        (
            "an empty list",
            b"[]".to_vec(),
            "an AdmissionReview must be a JSON object, found a list".to_owned(),
        ),
        (
            "the fields as a list",
            br#"["admission.k8s.io/v1","AdmissionReview",{"uid":"x"}]"#.to_vec(),
            "an AdmissionReview must be a JSON object, found a list".to_owned(),
        ),
        (
            "metadata a string",
            serde_json::to_vec(&pod_review(json!({"object": worker_with("/metadata", json!("x"))}))).unwrap(),
            format!("{invalid}request.object is malformed: Pod (unnamed): metadata must be an object"),
        ),
        (
            "containers a mapping",
            serde_json::to_vec(&pod_review(json!({"object": worker_with("/spec/containers", json!({"worker": {"image": "app"}}))}))).unwrap(),
            format!("{invalid}request.object is malformed: Pod rails-worker-7d9c8f6b5-*: spec.containers must be a non-empty list"),
        ),
        (
            "command a string",
            serde_json::to_vec(&pod_review(json!({"object": worker_with("/spec/containers/0/command", json!("bundle exec sidekiq"))}))).unwrap(),
            format!("{invalid}request.object is malformed: Pod rails-worker-7d9c8f6b5-*: spec.containers[0].command must be a list of strings"),
        ),
        (
            "env a mapping",
            serde_json::to_vec(&pod_review(json!({"object": worker_with("/spec/containers/0/env", json!({"REDIS_URL": "redis://redis:6379/0"}))}))).unwrap(),
            format!("{invalid}request.object is malformed: Pod rails-worker-7d9c8f6b5-*: spec.containers[0].env must be a list of objects"),
        ),
    ];
    for (case, body, message) in &cases {
        let endpoints = ["/mutate?timeout=5s", "/validate?timeout=5s"];
        assert_bad_request(&mut conn, &endpoints, body, message, case).await;
    }

    // What a real API server sends still passes: DELETE (no object, the deleted pod in
    // oldObject) and CONNECT (the connect options as the object).
    let delete = common::read("tests/data/admission/delete-pod.json");
    let connect = serde_json::to_vec(&pod_review(json!({
        "operation": "CONNECT",
        "kind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
        "subResource": "exec",
        "object": {"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"], "stdin": true},
        "options": null,
    })))
    .unwrap();
    for (case, body) in [("DELETE", delete), ("CONNECT", connect)] {
        for endpoint in ["/mutate", "/validate"] {
            let answer = conn.post(endpoint, body.clone()).await.unwrap();
            assert_eq!(answer.status, 200, "{case} {endpoint}");
            let review = answer.json();
            assert_eq!(review["response"]["allowed"], true, "{case} {endpoint}");
            assert!(review["response"].get("patch").is_none(), "{case}");
        }
    }
    assert_eq!(
        setup
            .webhook
            .metric(
                "sidekiq_guard_webhook_requests_total{endpoint=\"mutate\",result=\"bad-request\"}"
            )
            .await,
        cases.len() as f64
    );
}

/// `?timeout=` is read as Go's `time.ParseDuration` reads it, after percent-decoding: a bare
/// `0`, a leading `+` and escaped characters are durations. A zero or negative timeout is
/// answered at once like any other request, not refused as "not a duration".
#[tokio::test]
async fn every_go_duration_is_a_valid_timeout() {
    let setup = start(WARN, &[]);
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    let body = common::read("tests/data/admission/create-pod-rails-worker.json");
    for timeout in [
        "0s",
        "0",
        "+5s",
        "%35s",
        "-5s",
        "1.5s",
        "500%C2%B5s",
        "%2B2s",
    ] {
        let started = Instant::now();
        let answer = conn
            .post(&format!("/mutate?timeout={timeout}"), body.clone())
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "timeout={timeout}");
        let review = answer.json();
        assert_eq!(review["response"]["patchType"], "JSONPatch", "{timeout}");
        assert!(started.elapsed() < Duration::from_secs(5), "{timeout}");
    }
    for timeout in ["5", "%zz", "5sec"] {
        let answer = conn
            .post(&format!("/mutate?timeout={timeout}"), body.clone())
            .await
            .unwrap();
        assert_eq!(answer.status, 400, "timeout={timeout}");
        assert_eq!(
            answer.json()["message"],
            format!(
                "query parameter timeout={timeout:?} is not a duration; expected a Go duration such as 5s, 1500ms or 1m0s"
            )
        );
    }
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405() {
    let setup = start(WARN, &[]);
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    for (method, path) in [
        ("POST", "/"),
        ("GET", "/healthz"),
        ("POST", "/mutate/x"),
        ("POST", "/Mutate"),
        ("GET", "/metrics"),
    ] {
        let answer = conn.request(method, path, Bytes::new()).await.unwrap();
        assert_eq!(answer.status, 404, "{method} {path}");
        let status = answer.json();
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(
            status["message"],
            format!(
                "no such endpoint: {method} {path}; the webhook serves POST /mutate and POST /validate"
            )
        );
    }
    let answer = conn.request("GET", "/mutate", Bytes::new()).await.unwrap();
    assert_eq!(answer.status, 405);
    assert_eq!(answer.headers["allow"], "POST");
    assert_eq!(
        answer.json()["message"],
        "GET is not allowed on /mutate; use POST"
    );
    // The health port has its own 404.
    let (status, body) = setup.webhook.health_get("/mutate").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("the health port serves /livez, /readyz and /metrics"),
        "{body}"
    );
    assert_eq!(
        setup
            .webhook
            .metric("sidekiq_guard_webhook_requests_total{endpoint=\"other\",result=\"not-found\"}")
            .await,
        5.0
    );
    assert_eq!(
        setup
            .webhook
            .metric(
                "sidekiq_guard_webhook_requests_total{endpoint=\"mutate\",result=\"method-not-allowed\"}"
            )
            .await,
        1.0
    );
    // A misconfigured webhook path shows in the logs first.
    let refused = setup
        .webhook
        .wait_logs_with("admission request refused", 6)
        .await;
    let statuses: Vec<&Value> = refused.iter().map(|l| &l["status"]).collect();
    assert_eq!(statuses, [404, 404, 404, 404, 404, 405]);
    assert_eq!(
        refused[5]["error"],
        "GET is not allowed on /mutate; use POST"
    );
}

fn big_pod(name: &str, padding: usize) -> Value {
    let mut pod =
        common::json("tests/data/admission/create-pod-rails-worker.json")["request"]["object"]
            .clone();
    pod["metadata"]["name"] = json!(name);
    // Large annotations, as some tools write (last-applied-configuration of a big spec).
    pod["metadata"]["annotations"]["example.com/blob"] = json!("x".repeat(padding));
    pod
}

#[tokio::test]
async fn update_reviews_of_the_largest_pods_fit_and_larger_bodies_get_413() {
    let setup = start(WARN, &[]);
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    // 1.5 MiB is the largest object the API server stores by default; an UPDATE carries it
    // twice: about 3 MiB, past axum's 2 MB default limit.
    let mut review = common::json("tests/data/admission/update-pod-labels.json");
    review["request"]["object"] = big_pod("big", 1_500_000);
    review["request"]["oldObject"] = big_pod("big", 1_500_000);
    let body = serde_json::to_vec(&review).unwrap();
    assert!(body.len() > 3_000_000);
    let answer = conn.post("/validate?timeout=5s", body).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["response"]["uid"], review["request"]["uid"]);

    // Declared too large: refused before the body is read. (Like Go's own server, the
    // webhook answers at once and closes the connection instead of reading megabytes it will
    // not use; Go's client reads that early answer even though its body write fails.)
    let response = raw_exchange(
        &setup,
        b"POST /mutate HTTP/1.1\r\nhost: x\r\ncontent-length: 9437184\r\n\r\n",
        false,
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response
            .contains("request body is larger than the limit of 8388608 bytes (--max-body-bytes)"),
        "{response}"
    );
    assert!(
        response.contains("\"reason\":\"RequestEntityTooLarge\""),
        "{response}"
    );

    // Chunked, with no length announced: refused once the limit is crossed.
    let response = raw_exchange(
        &setup,
        b"POST /mutate HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
        true,
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}

#[tokio::test]
async fn large_bodies_buffered_at_once_are_bounded_and_small_reviews_pass_meanwhile() {
    // A limit of 1,256,144 bytes leaves 1,000,000 beyond the 256 KiB every body may take
    // freely: four bodies of that size may be buffered at once.
    let setup = start(WARN, &["--max-body-bytes", "1256144"]);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = setup.client.tls(setup.webhook.admission).await.unwrap();
        stream
            .write_all(
                b"POST /mutate?timeout=30s HTTP/1.1\r\nhost: x\r\ncontent-length: 1256144\r\n\r\n{",
            )
            .await
            .unwrap();
        stream.flush().await.unwrap();
        held.push(stream);
    }
    // Let the webhook take the four shares.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut review = common::json("tests/data/admission/create-pod-rails-worker.json");
    review["request"]["object"] = big_pod("large", 400_000);
    let large = serde_json::to_vec(&review).unwrap();
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    let started = Instant::now();
    let answer = conn
        .post("/mutate?timeout=1s", large.clone())
        .await
        .unwrap();
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(
        answer.json()["message"],
        "other large request bodies filled the webhook's buffers for the request's whole timeout of 1s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A review of ordinary size needs none of that budget.
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    let answer = conn
        .post(
            "/mutate?timeout=1s",
            common::read("tests/data/admission/create-pod-rails-worker.json"),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);

    // One held body goes away (its client hung up): its share comes back.
    drop(held.pop());
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    let answer = conn.post("/mutate?timeout=5s", large).await.unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.json()["response"]["uid"], review["request"]["uid"]);
}

/// Sends `head` and then 9 MiB of body (chunked or not), ignoring write errors once the server
/// has answered, and returns everything the server sent.
async fn raw_exchange(setup: &Setup, head: &[u8], chunked: bool) -> String {
    let stream = setup.client.tls(setup.webhook.admission).await.unwrap();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let head = head.to_vec();
    let writing = tokio::spawn(async move {
        writer.write_all(&head).await?;
        let chunk = vec![b' '; 1024 * 1024];
        for _ in 0..9 {
            if chunked {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
            }
            writer.write_all(&chunk).await?;
            if chunked {
                writer.write_all(b"\r\n").await?;
            }
        }
        std::io::Result::Ok(())
    });
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut response)).await;
    writing.abort();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_body_that_does_not_arrive_within_the_requested_timeout_gets_408() {
    let setup = start(WARN, &[]);
    let mut stream = setup.client.tls(setup.webhook.admission).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /mutate?timeout=1s HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{\"apiVersion\":")
        .await
        .unwrap();
    let response = common::answer_within(
        &mut stream,
        Duration::from_secs(5),
        "the webhook hung past the request's timeout",
    )
    .await;
    let elapsed = started.elapsed();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("request body not received within the request's timeout of 1s"),
        "{response}"
    );
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );

    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    let answer = conn
        .post(
            "/mutate?timeout=soon",
            common::read("tests/data/admission/create-pod-web.json"),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("query parameter timeout=\"soon\" is not a duration")
    );
}

/// A compressed body would read as malformed JSON; it is refused as what it is. The API server
/// never compresses admission requests.
#[tokio::test]
async fn a_compressed_body_gets_415_naming_its_encoding() {
    let setup = start(WARN, &[]);
    let body = common::read("tests/data/admission/create-pod-web.json");
    for (encoding, status) in [("gzip", "415"), ("br", "415"), ("identity", "200")] {
        let mut stream = setup.client.tls(setup.webhook.admission).await.unwrap();
        let head = format!(
            "POST /mutate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-encoding: {encoding}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let response =
            common::answer_within(&mut stream, Duration::from_secs(5), "not answered").await;
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}")),
            "{encoding}: {response}"
        );
        if status == "415" {
            let (_, body) = response.split_once("\r\n\r\n").unwrap();
            let status: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                status["message"],
                format!(
                    "Content-Encoding \"{encoding}\" is not accepted: send the AdmissionReview uncompressed, as the API server does"
                )
            );
            assert_eq!(status["reason"], "UnsupportedMediaType");
        }
    }
}

#[tokio::test]
async fn metrics_and_logs_record_each_decision() {
    let setup = start(WARN, &[]);
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    for _ in 0..3 {
        let answer = conn
            .post_file(
                "/mutate",
                "tests/data/admission/create-pod-rails-worker.json",
            )
            .await;
        assert_eq!(answer.status, 200);
    }
    conn.post_file("/mutate", "tests/data/admission/create-pod-web.json")
        .await;
    // A dry run (`kubectl apply --dry-run=server`) is answered the same, but injects nothing.
    let mut dry = common::json("tests/data/admission/create-pod-rails-worker.json");
    dry["request"]["dryRun"] = json!(true);
    dry["request"]["uid"] = json!("0dd1e7a5-0000-4000-8000-00000000d41e");
    let answer = conn
        .post("/mutate", serde_json::to_vec(&dry).unwrap())
        .await
        .unwrap();
    assert_eq!(answer.json()["response"]["patchType"], "JSONPatch");
    conn.post_file("/validate", "tests/data/admission/create-rails-worker.json")
        .await;
    let metric = |s: &'static str| setup.webhook.metric(s);
    assert_eq!(
        metric("sidekiq_guard_webhook_requests_total{endpoint=\"mutate\",result=\"mutated\"}")
            .await,
        4.0
    );
    assert_eq!(
        metric("sidekiq_guard_webhook_requests_total{endpoint=\"mutate\",result=\"no-sidekiq\"}")
            .await,
        1.0
    );
    assert_eq!(
        metric("sidekiq_guard_webhook_requests_total{endpoint=\"validate\",result=\"unchanged\"}")
            .await,
        1.0
    );
    assert_eq!(
        metric("sidekiq_guard_webhook_injections_total{mode=\"native\"}").await,
        3.0
    );
    assert_eq!(
        metric("sidekiq_guard_webhook_skips_total{reason=\"no-sidekiq\"}").await,
        1.0
    );
    assert_eq!(
        metric("sidekiq_guard_webhook_request_duration_seconds_count{endpoint=\"mutate\"}").await,
        5.0
    );
    assert_eq!(
        metric("sidekiq_guard_webhook_build_info{version=\"0.1.0\",sidecar_mode=\"native\"}").await,
        1.0
    );
    assert!(metric("sidekiq_guard_webhook_certificate_expiry_timestamp_seconds").await > 1.7e9);

    // One structured line per decision, with what an operator searches by.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let lines = setup.webhook.logs_with("admission");
        if let Some(line) = lines.iter().find(|l| l["decision"] == "mutated") {
            break line.clone();
        }
        assert!(Instant::now() < deadline, "no admission log line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(line["uid"], "fdb8cbe4-c111-5a78-a115-d9ca21d50a33");
    assert_eq!(line["namespace"], "shop");
    assert_eq!(line["name"], "rails-worker-7d9c8f6b5-*");
    assert_eq!(line["kind"], "Pod");
    assert_eq!(line["operation"], "CREATE");
    assert_eq!(line["allowed"], true);
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["dry_run"], false);
    let lines = setup.webhook.wait_logs_with("admission", 5).await;
    let dry = lines
        .iter()
        .find(|l| l["uid"] == "0dd1e7a5-0000-4000-8000-00000000d41e")
        .expect("the dry run is logged");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["decision"], "mutated");
    let all = setup.webhook.logs.lock().unwrap().clone();
    assert!(
        !all.iter().any(|l| l.to_string().contains("PRIVATE KEY")),
        "a key leaked into the logs"
    );
}

#[tokio::test]
async fn the_health_port_closes_connections_that_send_no_request() {
    let setup = start(WARN, &[]);
    setup
        .webhook
        .wait_ready(true, Duration::from_secs(10))
        .await;
    // A client that connects and says nothing (or drips a request forever) must not hold a
    // connection, and a file, of the port the kubelet probes.
    let mut silent = tokio::net::TcpStream::connect(setup.webhook.health)
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the silent connection is still open: {read:?}"
    );
    let (status, _) = setup.webhook.health_get("/livez").await;
    assert_eq!(status, 200);
}

/// Go's HTTP client pools a connection it dialed for a request that another connection served,
/// and may send its first request on it up to 90 s later: the admission port keeps it open as
/// long as a kept-alive one, not for the 10 s the health port allows.
#[tokio::test]
async fn a_connection_first_used_long_after_its_handshake_is_served() {
    let setup = start(WARN, &[]);
    setup
        .webhook
        .wait_ready(true, Duration::from_secs(10))
        .await;
    let mut conn = setup.client.connect(setup.webhook.admission).await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let review =
        std::fs::read(common::root().join("tests/data/admission/create-pod-rails-worker.json"))
            .unwrap();
    let answer = conn
        .post("/mutate", review)
        .await
        .expect("the pooled connection was closed before its first request");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["response"]["patchType"], "JSONPatch");
}
