//! The two things the webhook asks the API server, against a local HTTPS API server reached
//! through a generated kubeconfig: the version (for `sidecar.mode: auto`) and the certificate
//! installation (Secrets, and the caBundle of both webhook configurations from the manifests).

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use common::fake_api::FakeApi;
use common::{Client, Pki, Webhook};
use serde_json::{Value, json};
use sidekiq_guard_webhook::pki;

const SECRETS: &str = "/api/v1/namespaces/sidekiq-guard/secrets";
const MUTATING: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/sidekiq-guard";
const VALIDATING: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/sidekiq-guard";

/// The labels `certs install` gives the Secrets it creates.
fn ours() -> Value {
    json!({"app.kubernetes.io/managed-by": "sidekiq-guard-webhook"})
}

fn strings_contain(list: &Value, wanted: &str) -> bool {
    list.as_array()
        .is_some_and(|items| items.iter().any(|item| item == wanted))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(value: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
}

async fn mode_with(api: &FakeApi) -> (Webhook, tempfile::TempDir, Client) {
    mode_through(&api.kubeconfig).await
}

/// A webhook under `sidecar.mode: auto` that reaches its API server through `kubeconfig`.
async fn mode_through(kubeconfig: &std::path::Path) -> (Webhook, tempfile::TempDir, Client) {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let serving = pki.serving();
    std::fs::write(dir.path().join("tls.crt"), &serving.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &serving.key_pem).unwrap();
    let kubeconfig = kubeconfig.to_str().unwrap().to_owned();
    let webhook = Webhook::start(
        &dir.path().join("tls.crt"),
        &dir.path().join("tls.key"),
        "sidecar: {mode: auto}\n",
        &["--kubeconfig", &kubeconfig],
    );
    (webhook, dir, Client::new(&[pki.ca_der()]))
}

#[tokio::test]
async fn sidecar_mode_auto_follows_the_api_server_version() {
    for (major, minor, git_version, expected) in [
        ("1", "28", "v1.28.15", "classic"),
        ("1", "29", "v1.29.0", "native"),
        ("1", "33+", "v1.33.4-eks-1234567", "native"),
        // A distribution that leaves major and minor empty: its gitVersion tells.
        ("", "", "v1.30.2+k3s1", "native"),
        // Nothing readable: classic, which every version runs.
        ("", "", "unknown", "classic"),
    ] {
        let api = FakeApi::start(major, minor, git_version).await;
        let (webhook, _dir, client) = mode_with(&api).await;
        webhook.wait_ready(true, Duration::from_secs(10)).await;
        assert_eq!(api.requests(), ["GET /version"]);
        let mut conn = client.connect(webhook.admission).await.unwrap();
        let review = conn
            .post_file(
                "/mutate",
                "tests/data/admission/create-pod-rails-worker.json",
            )
            .await
            .json();
        let patch: Value = serde_json::from_slice(&unb64(&review["response"]["patch"])).unwrap();
        // Native: the pod had no init containers, so the list is added with the sidecar in
        // it. Classic: the sidecar is appended to the containers.
        let (path, sidecar) = patch
            .as_array()
            .unwrap()
            .iter()
            .find_map(|op| match op["path"].as_str().unwrap() {
                "/spec/initContainers" => Some(("initContainers", op["value"][0].clone())),
                "/spec/containers/-" => Some(("containers", op["value"].clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no sidecar in {patch}"));
        assert_eq!(sidecar["name"], "sidekiq-guard-probe");
        let (list, restart) = match expected {
            "native" => ("initContainers", json!("Always")),
            _ => ("containers", Value::Null),
        };
        assert_eq!(path, list, "{git_version}");
        assert_eq!(sidecar["restartPolicy"], restart, "{git_version}");
        assert!(
            strings_contain(&sidecar["args"], &format!("--mode={expected}")),
            "{git_version}: {sidecar}"
        );
        assert_eq!(
            webhook
                .metric(&format!(
                    "sidekiq_guard_webhook_build_info{{version=\"0.1.0\",sidecar_mode=\"{expected}\"}}"
                ))
                .await,
            1.0,
            "{git_version}"
        );
    }
}

#[tokio::test]
async fn auto_mode_stays_not_ready_until_the_api_server_answers() {
    let api = FakeApi::start("1", "30", "v1.30.2").await;
    api.store.lock().unwrap().version_unavailable = true;
    let (webhook, _dir, client) = mode_with(&api).await;
    // The webhook retries the 503 itself, with backoff, and says why it is not ready.
    let message = "sidecar.mode auto needs the API server version; not ready until it answers (or set sidecar.mode to native or classic in the policy)";
    let started = std::time::Instant::now();
    while webhook.logs_with(message).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            webhook.logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = webhook.health_get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "not ready: starting: deciding the sidecar mode (sidecar.mode auto asks the API server for its version; the log says why it waits)\n"
    );
    let (status, _) = webhook.health_get("/livez").await;
    assert_eq!(status, 200, "not restarted by its liveness probe meanwhile");
    // A review sent meanwhile (the Service routes only to ready replicas, but a client may
    // reach the pod) is answered at once with 503, not left unaccepted until it times out:
    // the API server then applies the failurePolicy without waiting.
    let mut conn = tokio::time::timeout(Duration::from_secs(5), client.connect(webhook.admission))
        .await
        .expect("the TLS handshake completes while the mode is undecided")
        .unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        conn.post(
            "/mutate",
            common::read("tests/data/admission/create-pod-rails-worker.json"),
        ),
    )
    .await
    .expect("answered without waiting for the mode")
    .unwrap();
    assert_eq!(answer.status, 503);
    let status: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        status["message"],
        "sidekiq-guard is starting: the sidecar mode is not decided yet (sidecar.mode auto asks the API server for its version; the log says why it waits)"
    );
    assert_eq!(status["code"], 503);
    let retries = webhook.logs_with(message);
    assert!(
        retries[0]["error"].as_str().unwrap().contains("503"),
        "{}",
        retries[0]
    );

    // The API server recovers: the webhook becomes ready by itself and injects native sidecars.
    api.store.lock().unwrap().version_unavailable = false;
    webhook.wait_ready(true, Duration::from_secs(10)).await;
    let mut conn = client.connect(webhook.admission).await.unwrap();
    let answer = conn
        .post_file(
            "/mutate",
            "tests/data/admission/create-pod-rails-worker.json",
        )
        .await;
    assert_eq!(answer.status, 200);
    assert!(
        webhook
            .wait_logs_with(
                "sidecar.mode auto: decided from the API server version (native from 1.29)",
                1
            )
            .await[0]["sidecar_mode"]
            == "native"
    );
}

/// The negative control of the tests above: the webhook asks only an API server whose
/// certificate the kubeconfig's CA signed. Another CA's server gets no request (the handshake
/// fails before one is sent), so a server that merely answers on the address cannot choose the
/// sidecar mode.
#[tokio::test]
async fn auto_mode_does_not_trust_an_api_server_its_kubeconfig_ca_did_not_sign() {
    let api = FakeApi::start("1", "30", "v1.30.2").await;
    let stranger = Pki::new();
    let original = std::fs::read_to_string(&api.kubeconfig).unwrap();
    let (line, _) = original
        .split_once("certificate-authority-data: ")
        .map(|(_, rest)| rest.split_once('\n').unwrap())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        original.replace(line, &b64(stranger.ca.cert_pem.as_bytes())),
    )
    .unwrap();
    let (webhook, _dir, _client) = mode_through(&kubeconfig).await;
    let message = "sidecar.mode auto needs the API server version; not ready until it answers (or set sidecar.mode to native or classic in the policy)";
    let retries = webhook.wait_logs_with(message, 2).await;
    for retry in &retries {
        let error = retry["error"].as_str().unwrap();
        assert!(
            error.contains("invalid peer certificate: UnknownIssuer"),
            "{error}"
        );
    }
    assert_eq!(api.requests(), Vec::<String>::new());
    let (status, _) = webhook.health_get("/readyz").await;
    assert_eq!(status, 503);
}

#[test]
fn auto_mode_without_any_cluster_fails_at_once_and_says_why() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let serving = pki.serving();
    std::fs::write(dir.path().join("tls.crt"), &serving.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &serving.key_pem).unwrap();
    let output = Command::new(common::webhook_bin())
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--health-addr",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sidekiq-guard-webhook: cannot decide the sidecar mode (sidecar.mode auto asks the API server for its version; a --policy with sidecar.mode native or classic needs no cluster): no Kubernetes API server configured: not running in a pod and no kubeconfig found (pass --kubeconfig)"),
        "{stderr}"
    );
}

/// The webhook configurations exactly as `kubectl apply -k manifests/base` creates them.
fn seed_configurations(api: &FakeApi) {
    let output = Command::new("kubectl")
        .args(["kustomize"])
        .arg(common::root().join("manifests/base"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8(output.stdout).unwrap()).unwrap();
    for document in documents {
        match document["kind"].as_str() {
            Some("MutatingWebhookConfiguration") => api.put(MUTATING, document),
            Some("ValidatingWebhookConfiguration") => api.put(VALIDATING, document),
            _ => {}
        }
    }
}

fn install(api: &FakeApi, extra: &[&str]) -> std::process::Output {
    Command::new(common::webhook_bin())
        .args(["--log-format", "json", "certs", "install", "--kubeconfig"])
        .arg(&api.kubeconfig)
        .args(extra)
        .output()
        .unwrap()
}

/// Runs certs install, which must fail (exit 1) saying `message`.
fn install_fails_saying(api: &FakeApi, extra: &[&str], message: &str) {
    let output = install(api, extra);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(message), "{stderr}");
}

fn bundles(api: &FakeApi) -> Vec<Vec<u8>> {
    [MUTATING, VALIDATING]
        .iter()
        .flat_map(|path| {
            api.get(path).unwrap()["webhooks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| unb64(&w["clientConfig"]["caBundle"]))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn secret(api: &FakeApi, name: &str) -> Value {
    api.get(&format!("{SECRETS}/{name}")).unwrap()
}

fn data(secret: &Value, key: &str) -> Vec<u8> {
    unb64(&secret["data"][key])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_install_creates_trusts_renews_and_is_idempotent() {
    let api = FakeApi::start("1", "33", "v1.33.2").await;
    seed_configurations(&api);
    let api_ref = &api;
    let run = move |extra: &'static [&'static str]| {
        let output = install(api_ref, extra);
        assert!(
            output.status.success(),
            "certs install failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    // 1. First run: CA, serving certificate, and both configurations trust the CA.
    let log = run(&[]);
    assert!(
        log.contains("\"ca\":\"Created\"") && log.contains("\"serving\":\"Created\""),
        "{log}"
    );
    let ca = secret(&api, "sidekiq-guard-ca");
    assert_eq!(ca["type"], "Opaque");
    let tls = secret(&api, "sidekiq-guard-tls");
    assert_eq!(tls["type"], "kubernetes.io/tls");
    assert_eq!(
        tls["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "sidekiq-guard-webhook"
    );
    // The serial of each certificate written, by which a later run tells its own from one
    // written over it.
    for (secret, key) in [(&ca, "ca.crt"), (&tls, "tls.crt")] {
        assert_eq!(
            secret["metadata"]["annotations"]["sidekiq-guard.io/certificate-serial"],
            pki::inspect_pem(&data(secret, key), key)
                .unwrap()
                .serial
                .as_str()
        );
    }
    let ca_pem = data(&ca, "ca.crt");
    assert_eq!(data(&tls, "ca.crt"), ca_pem);
    let ca_der = pki::certificates(&ca_pem, "ca").unwrap().remove(0);
    let leaf_der = pki::certificates(&data(&tls, "tls.crt"), "tls")
        .unwrap()
        .remove(0);
    let leaf = pki::inspect(&leaf_der, "tls").unwrap();
    assert_eq!(
        leaf.dns_names,
        [
            "sidekiq-guard",
            "sidekiq-guard.sidekiq-guard",
            "sidekiq-guard.sidekiq-guard.svc"
        ]
    );
    assert!(pki::signed_by(&leaf_der, &ca_der));
    assert!(leaf.seconds_left(SystemTime::now()) > 364 * 86400);
    let bundle = bundles(&api);
    assert_eq!(bundle.len(), 4, "two webhooks in each configuration");
    for b in &bundle {
        assert_eq!(
            pki::certificates(b, "bundle").unwrap(),
            std::slice::from_ref(&ca_der)
        );
    }
    // The webhooks' other settings are untouched.
    let mutating = api.get(MUTATING).unwrap();
    assert_eq!(mutating["webhooks"][0]["failurePolicy"], "Ignore");

    // What the API server would do with it: trust the caBundle, call the webhook serving the
    // Secret's certificate.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), data(&tls, "tls.crt")).unwrap();
    std::fs::write(dir.path().join("tls.key"), data(&tls, "tls.key")).unwrap();
    let webhook = Webhook::start(
        &dir.path().join("tls.crt"),
        &dir.path().join("tls.key"),
        "sidecar: {mode: native}\n",
        &[],
    );
    webhook.wait_ready(true, Duration::from_secs(10)).await;
    let roots = pki::certificates(&bundle[0], "bundle").unwrap();
    let mut conn = Client::new(&roots)
        .connect(webhook.admission)
        .await
        .unwrap();
    let answer = conn
        .post_file(
            "/mutate",
            "tests/data/admission/create-pod-rails-worker.json",
        )
        .await;
    assert_eq!(answer.status, 200);
    drop(webhook);

    // 2. Again: nothing to do, nothing written.
    let before = api.writes().len();
    let log = run(&[]);
    assert!(
        log.contains("\"ca\":\"Kept\"") && log.contains("\"serving\":\"Kept\""),
        "{log}"
    );
    assert_eq!(
        api.writes().len(),
        before,
        "a second run wrote: {:?}",
        api.writes()
    );

    // 3. Inside the renewal window: a new serving certificate from the same CA; the caBundle
    //    does not change.
    let log = run(&["--validity", "800d", "--renew-before", "400d"]);
    assert!(log.contains("within the renewal window"), "{log}");
    let renewed = secret(&api, "sidekiq-guard-tls");
    assert_ne!(data(&renewed, "tls.crt"), data(&tls, "tls.crt"));
    assert_eq!(data(&secret(&api, "sidekiq-guard-ca"), "ca.crt"), ca_pem);
    assert_eq!(bundles(&api), bundle);
    let writes = api.writes();
    assert_eq!(
        writes[before..],
        [format!("PUT {SECRETS}/sidekiq-guard-tls")]
    );

    // 4. The CA itself too close to expiry for a new certificate (here: certificates now last
    //    3000 days). The API server fails every patch: the Job fails, but the pods keep the
    //    certificate the configurations trust — never one they do not.
    let rotate: &'static [&'static str] = &[
        "--validity",
        "3000d",
        "--renew-before",
        "700d",
        "--ca-validity",
        "7300d",
    ];
    let serving_before = data(&secret(&api, "sidekiq-guard-tls"), "tls.crt");
    api.store.lock().unwrap().fail_patches = true;
    let failed = install(&api, rotate);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("cannot patch MutatingWebhookConfiguration sidekiq-guard"),
        "{stderr}"
    );
    assert_eq!(
        data(&secret(&api, "sidekiq-guard-tls"), "tls.crt"),
        serving_before
    );
    assert_eq!(bundles(&api), bundle);
    api.store.lock().unwrap().fail_patches = false;

    // Run again: a caBundle that trusts both CAs until the old one expires, and only then the
    // new serving certificate.
    let writes_before = api.writes().len();
    let log = run(rotate);
    assert!(log.contains("\"ca\":\"Kept\""), "{log}");
    let writes = api.writes();
    assert_eq!(
        writes[writes_before..].last(),
        Some(&format!("PUT {SECRETS}/sidekiq-guard-tls")),
        "the serving certificate is written last: {writes:?}"
    );
    assert!(
        writes[writes_before..]
            .iter()
            .any(|w| w.starts_with("PATCH ")),
        "{writes:?}"
    );
    let new_ca_pem = data(&secret(&api, "sidekiq-guard-ca"), "ca.crt");
    assert_ne!(new_ca_pem, ca_pem);
    let new_ca_der = pki::certificates(&new_ca_pem, "ca").unwrap().remove(0);
    for b in bundles(&api) {
        assert_eq!(
            pki::certificates(&b, "bundle").unwrap(),
            [new_ca_der.clone(), ca_der.clone()]
        );
    }
    let new_leaf = pki::certificates(&data(&secret(&api, "sidekiq-guard-tls"), "tls.crt"), "tls")
        .unwrap()
        .remove(0);
    assert!(pki::signed_by(&new_leaf, &new_ca_der));
    // No key material in what the Job prints.
    assert!(!log.contains("PRIVATE KEY"));

    // A certificate of the user's own written over the Job's Secret (`kubectl apply` keeps the
    // Job's labels and annotations): the Job leaves it, and the bundles, alone.
    let mut tls = secret(&api, "sidekiq-guard-tls");
    let own = Pki::new();
    let own_serving = own.serving();
    tls["data"]["tls.crt"] = json!(b64(own_serving.cert_pem.as_bytes()));
    tls["data"]["tls.key"] = json!(b64(own_serving.key_pem.as_bytes()));
    api.put(&format!("{SECRETS}/sidekiq-guard-tls"), tls.clone());
    let bundle = bundles(&api);
    let written = tls["metadata"]["annotations"]["sidekiq-guard.io/certificate-serial"]
        .as_str()
        .unwrap();
    let found = pki::inspect_pem(own_serving.cert_pem.as_bytes(), "own")
        .unwrap()
        .serial;
    install_fails_saying(
        &api,
        &[],
        &format!(
            "Secret sidekiq-guard/sidekiq-guard-tls holds a certificate certs install did not write (serial {found}; it wrote {written}), so certs install leaves it alone; if it is your own, delete the install Job and CronJob (kubectl -n sidekiq-guard delete cronjob,job sidekiq-guard-certs; manifests/own-ca has neither), or delete the Secret for certs install to manage the certificate again"
        ),
    );
    assert_eq!(secret(&api, "sidekiq-guard-tls")["data"], tls["data"]);
    assert_eq!(bundles(&api), bundle);
}

// Multi-threaded: the fake API server answers while the test waits for the child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_install_explains_what_is_missing_or_wrong() {
    let api = FakeApi::start("1", "33", "v1.33.2").await;
    // No webhook configurations (the manifests were not applied).
    install_fails_saying(
        &api,
        &["--wait", "1s"],
        "MutatingWebhookConfiguration sidekiq-guard not found after waiting 1s; apply the manifests (kubectl apply -k) before running certs install",
    );

    // A Secret of another type in the way.
    seed_configurations(&api);
    let path = format!("{SECRETS}/sidekiq-guard-tls");
    api.put(
        &path,
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "sidekiq-guard-tls", "namespace": "sidekiq-guard",
                            "labels": ours()},
               "data": {"tls.crt": b64(b"x")}}),
    );
    install_fails_saying(
        &api,
        &[],
        "Secret sidekiq-guard/sidekiq-guard-tls has type \"Opaque\", expected kubernetes.io/tls; delete it and run certs install again",
    );

    // A configuration whose webhooks call another service.
    let mut other = api.get(MUTATING).unwrap();
    for webhook in other["webhooks"].as_array_mut().unwrap() {
        webhook["clientConfig"]["service"]["name"] = json!("someone-else");
    }
    api.put(MUTATING, other);
    api.put(
        &path,
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "sidekiq-guard-tls", "namespace": "sidekiq-guard", "labels": ours()},
        "data": {}}),
    );
    install_fails_saying(
        &api,
        &[],
        "MutatingWebhookConfiguration sidekiq-guard has no webhook whose clientConfig.service is sidekiq-guard/sidekiq-guard",
    );
    // The serving Secret is written only once the configurations trust its CA.
    let tls = api.get(&path).unwrap();
    assert_eq!(tls["data"], json!({}));

    // Its own CA Secret turned into another type: the weekly run must not fail on a raw 422.
    seed_configurations(&api);
    api.put(
        &format!("{SECRETS}/sidekiq-guard-ca"),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "sidekiq-guard-ca", "namespace": "sidekiq-guard",
                            "labels": ours()},
               "data": {"ca.crt": b64(b"x"), "tls.crt": b64(b"x"), "tls.key": b64(b"x")}}),
    );
    install_fails_saying(
        &api,
        &[],
        "Secret sidekiq-guard/sidekiq-guard-ca has type \"kubernetes.io/tls\", expected Opaque; delete it and run certs install again",
    );

    // A certificate of the user's own (certs/README.md, "Your own CA") with the Job left in
    // place: neither Secret is touched, whoever else manages it.
    seed_configurations(&api);
    let own = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                     "metadata": {"name": "sidekiq-guard-tls", "namespace": "sidekiq-guard"},
                     "data": {"tls.crt": b64(b"mine"), "tls.key": b64(b"mine")}});
    api.put(&path, own.clone());
    api.put(
        &format!("{SECRETS}/sidekiq-guard-ca"),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "sidekiq-guard-ca", "namespace": "sidekiq-guard",
                            "labels": ours()}, "data": {}}),
    );
    let configurations = [api.get(MUTATING), api.get(VALIDATING)];
    install_fails_saying(
        &api,
        &[],
        "Secret sidekiq-guard/sidekiq-guard-tls was not created by certs install (it has no app.kubernetes.io/managed-by label), so certs install leaves it alone; if it holds your own certificate, delete the install Job and CronJob (kubectl -n sidekiq-guard delete cronjob,job sidekiq-guard-certs; manifests/own-ca has neither), or delete the Secret for certs install to manage the certificate",
    );
    assert_eq!(api.get(&path).unwrap()["data"], own["data"]);
    assert_eq!(
        api.get(&format!("{SECRETS}/sidekiq-guard-ca")).unwrap()["data"],
        json!({})
    );
    assert_eq!(
        [api.get(MUTATING), api.get(VALIDATING)],
        configurations,
        "no caBundle was patched"
    );
    let mut helm = own.clone();
    helm["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "Helm"});
    api.put(&path, helm);
    let stderr = String::from_utf8_lossy(&install(&api, &[]).stderr).into_owned();
    assert!(
        stderr.contains("(its app.kubernetes.io/managed-by label is \"Helm\")"),
        "{stderr}"
    );
    assert_eq!(api.get(&path).unwrap()["data"], own["data"]);
    api.put(
        &path,
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "sidekiq-guard-tls", "namespace": "sidekiq-guard",
                            "annotations": {"cert-manager.io/certificate-name": "sidekiq-guard-serving"}},
               "data": {}}),
    );
    // The Job's own CA Secret, left from before cert-manager took over.
    api.put(
        &format!("{SECRETS}/sidekiq-guard-ca"),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "sidekiq-guard-ca", "namespace": "sidekiq-guard",
                            "labels": ours()}, "data": {}}),
    );
    install_fails_saying(
        &api,
        &[],
        "Secret sidekiq-guard/sidekiq-guard-tls is managed by cert-manager (Certificate sidekiq-guard-serving); certs install must not run beside it",
    );
    assert_eq!(api.get(&path).unwrap()["data"], json!({}));
    assert_eq!(
        api.get(&format!("{SECRETS}/sidekiq-guard-ca")).unwrap()["data"],
        json!({})
    );
}

#[test]
fn certs_generate_writes_a_ca_and_a_serving_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let generate = |extra: &[&str]| {
        Command::new(common::webhook_bin())
            .args([
                "certs",
                "generate",
                "--service",
                "guard",
                "--namespace",
                "ops",
                "--out",
            ])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let output = generate(&[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("guard, guard.ops, guard.ops.svc"));
    use std::os::unix::fs::PermissionsExt as _;
    for (file, mode) in [
        ("ca.crt", 0o644),
        ("ca.key", 0o600),
        ("tls.crt", 0o644),
        ("tls.key", 0o600),
    ] {
        let meta = std::fs::metadata(out.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    let ca = pki::certificates(&std::fs::read(out.join("ca.crt")).unwrap(), "ca")
        .unwrap()
        .remove(0);
    let leaf = pki::certificates(&std::fs::read(out.join("tls.crt")).unwrap(), "tls")
        .unwrap()
        .remove(0);
    assert!(pki::signed_by(&leaf, &ca));
    assert_eq!(
        pki::inspect(&leaf, "tls").unwrap().dns_names,
        ["guard", "guard.ops", "guard.ops.svc"]
    );
    assert_eq!(
        pki::key_matches(&leaf, &std::fs::read(out.join("tls.key")).unwrap()),
        Ok(true)
    );

    // Existing files are not overwritten unless asked to.
    let before = std::fs::read(out.join("tls.crt")).unwrap();
    let output = generate(&[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("ca.crt exists; pass --force to overwrite it"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(std::fs::read(out.join("tls.crt")).unwrap(), before);
    assert!(generate(&["--force"]).status.success());
    assert_ne!(std::fs::read(out.join("tls.crt")).unwrap(), before);
}
