//! `kubectl sidekiq check` against the test API server holding the objects `manifests/base`
//! installs, with a serving certificate signed (or not) by the webhook's caBundle.

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::*;

/// The certificate's validity moves with the clock.
fn steady(text: &str) -> String {
    text.lines()
        .map(|line| {
            match (
                line.find(" days left (until "),
                line.find("https://127.0.0.1:"),
            ) {
                (Some(at), _) => {
                    format!("    N{}", &line[at..at + " days left (until ".len()]) + "DATE)"
                }
                (_, Some(at)) => format!(
                    "{}https://127.0.0.1:PORT{}",
                    &line[..at],
                    &line[line.find(" (v").unwrap_or(line.len())..]
                ),
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A cluster where `manifests/base` is installed, every caBundle holding `signer`'s CA, and
/// the serving certificate `serving`.
fn installed(signer: &Pki, serving: &Pki) -> ApiServer {
    Install::new(signer, serving).start()
}

/// How `manifests/base` is installed in a test's cluster: [`Install::new`] as it ships, the
/// fields for what a test changes.
struct Install<'a> {
    /// Where, as a kustomize `namespace:` moves it.
    namespace: &'a str,
    /// Whose CA the mutating configuration's caBundles hold.
    mutating: &'a Pki,
    /// Whose CA the validating configuration's caBundles hold.
    validating: &'a Pki,
    /// The certificate in the TLS Secret.
    serving: &'a Pki,
    /// The Service port the validating webhooks call, when not the default.
    validating_port: Option<u16>,
    /// The Service's ports.
    service_ports: &'a [u16],
    /// The endpoints of its EndpointSlice.
    endpoints: Value,
}

impl<'a> Install<'a> {
    fn new(signer: &'a Pki, serving: &'a Pki) -> Self {
        Self {
            namespace: "sidekiq-guard",
            mutating: signer,
            validating: signer,
            serving,
            validating_port: None,
            service_ports: &[443],
            endpoints: json!([
                {"addresses": ["10.244.1.10"], "conditions": {"ready": true}},
                {"addresses": ["10.244.2.11"], "conditions": {"ready": true}},
            ]),
        }
    }

    fn start(self) -> ApiServer {
        let Install {
            namespace,
            mutating,
            validating,
            serving,
            validating_port,
            service_ports,
            endpoints,
        } = self;
        let api = ApiServer::start();
        let text = std::fs::read_to_string(root().join("manifests/base/webhooks.yaml"))
            .unwrap()
            .replace(
                "namespace: sidekiq-guard",
                &format!("namespace: {namespace}"),
            );
        let configs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for mut config in configs {
            config["metadata"]["creationTimestamp"] = json!("2026-11-10T00:00:00Z");
            let mutates = config["kind"] == "MutatingWebhookConfiguration";
            let (signer, plural) = if mutates {
                (mutating, "mutatingwebhookconfigurations")
            } else {
                (validating, "validatingwebhookconfigurations")
            };
            for webhook in config["webhooks"].as_array_mut().unwrap() {
                webhook["clientConfig"]["caBundle"] = json!(b64(&signer.ca_pem));
                if let Some(port) = validating_port.filter(|_| !mutates) {
                    webhook["clientConfig"]["service"]["port"] = json!(port);
                }
            }
            api.add("/apis/admissionregistration.k8s.io/v1", plural, config);
        }
        let ports: Vec<Value> = service_ports
            .iter()
            .map(|port| json!({"name": "https", "port": port}))
            .collect();
        api.add("/api/v1", "services", json!({"metadata": {"name": "sidekiq-guard", "namespace": namespace}, "spec": {"ports": ports}}));
        api.add("/apis/discovery.k8s.io/v1", "endpointslices", json!({
            "metadata": {"name": "sidekiq-guard-x7k2p", "namespace": namespace, "labels": {"kubernetes.io/service-name": "sidekiq-guard"}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}],
        }));
        with_workloads(api, namespace, serving)
    }
}

/// The rest of the installation (its TLS Secret), the namespaces and the pods of the cluster.
fn with_workloads(api: ApiServer, namespace: &str, serving: &Pki) -> ApiServer {
    api.add(
        "/api/v1",
        "secrets",
        json!({
            "metadata": {"name": "sidekiq-guard-tls", "namespace": namespace},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(&serving.cert_pem), "tls.key": b64(&serving.key_pem)},
        }),
    );
    for (name, labels) in [
        (
            "shop",
            json!({"sidekiq-guard.io/inject": "enabled", "kubernetes.io/metadata.name": "shop"}),
        ),
        ("legacy", json!({"kubernetes.io/metadata.name": "legacy"})),
        (
            "sidekiq-guard",
            json!({"kubernetes.io/metadata.name": "sidekiq-guard"}),
        ),
        (
            "kube-system",
            json!({"kubernetes.io/metadata.name": "kube-system"}),
        ),
    ] {
        add_namespace(&api, name, labels);
    }
    let mut injected = injected_pod("shop", "rails-worker-7d9c8f6b5-aaaaa", 300, 7434);
    injected["metadata"]["creationTimestamp"] = json!("2026-11-20T00:00:00Z");
    api.add_pod(injected);
    let mut old = injected_pod("shop", "rails-worker-6c5b4a39f-old01", 300, 7434);
    old["metadata"]["annotations"] = json!({});
    old["metadata"]["creationTimestamp"] = json!("2026-11-05T00:00:00Z");
    api.add_pod(old);
    let mut opted_out = injected_pod("shop", "batch-worker-0", 300, 7434);
    opted_out["metadata"]["annotations"] = json!({});
    opted_out["metadata"]["labels"]["sidekiq-guard.io/inject"] = json!("false");
    api.add_pod(opted_out);
    // Two Sidekiq containers, no annotation saying which: the webhook leaves it alone, and a
    // restart would not change that.
    let mut dual = injected_pod("shop", "dual-worker-0", 300, 7434);
    dual["metadata"]["annotations"] = json!({});
    dual["metadata"]["creationTimestamp"] = json!("2026-11-21T00:00:00Z");
    let mut low = dual["spec"]["containers"][0].clone();
    low["name"] = json!("sidekiq-low");
    dual["spec"]["containers"].as_array_mut().unwrap().push(low);
    api.add_pod(dual);
    let mut elsewhere = injected_pod("legacy", "old-app-worker-1", 300, 7434);
    elsewhere["metadata"]["annotations"] = json!({});
    api.add_pod(elsewhere);
    api
}

fn add_namespace(api: &ApiServer, name: &str, labels: Value) {
    api.add(
        "/api/v1",
        "namespaces",
        json!({"metadata": {"name": name, "labels": labels}}),
    );
}

fn webhook_pki() -> Pki {
    pki(
        "sidekiq-guard CA",
        &[
            "sidekiq-guard",
            "sidekiq-guard.sidekiq-guard",
            "sidekiq-guard.sidekiq-guard.svc",
        ],
        90,
    )
}

#[test]
fn a_healthy_install_passes_with_the_escaped_pods_listed() {
    let serving = webhook_pki();
    let api = installed(&serving, &serving);
    let kubeconfig = api.kubeconfig("default");
    let out = run_in(&kubeconfig, &["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings do not fail the check:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    golden("check-healthy.txt", &steady(&text(&out.stdout)));

    let out = run_in(&kubeconfig, &["check", "-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["success"], true);
    let yaml = run_in(&kubeconfig, &["check", "-o", "yaml"]);
    let from_yaml: Value = serde_saphyr::from_slice(&yaml.stdout).unwrap();
    assert_eq!(from_yaml["categories"], report["categories"]);
    let names: Vec<&str> = report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "kubernetes-api",
            "sidekiq-guard webhook",
            "certificates",
            "namespaces",
            "sidekiq pods"
        ]
    );
}

#[test]
fn a_ca_bundle_that_does_not_sign_the_certificate_fails() {
    let serving = webhook_pki();
    let other = webhook_pki();
    let api = installed(&other, &serving);
    let kubeconfig = api.kubeconfig("default");
    let out = run_in(&kubeconfig, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let output = text(&out.stdout);
    assert!(
        output.contains("× the caBundle verifies the serving certificate\n    the serving certificate is not signed by the caBundle of MutatingWebhookConfiguration sidekiq-guard, webhook namespace.mutate.sidekiq-guard.io, MutatingWebhookConfiguration sidekiq-guard, webhook pod.mutate.sidekiq-guard.io, ValidatingWebhookConfiguration sidekiq-guard, webhook namespace.validate.sidekiq-guard.io, ValidatingWebhookConfiguration sidekiq-guard, webhook object.validate.sidekiq-guard.io: the API server rejects every call through them\n"),
        "{output}"
    );
    assert!(output.ends_with("Status check results are ×\n"), "{output}");
}

#[test]
fn a_stale_ca_bundle_in_one_configuration_is_named() {
    let serving = webhook_pki();
    let stale = webhook_pki();
    let api = Install {
        validating: &stale,
        ..Install::new(&serving, &serving)
    }
    .start();
    let kubeconfig = api.kubeconfig("default");
    let out = run_in(&kubeconfig, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let output = text(&out.stdout);
    let line = output
        .lines()
        .skip_while(|l| !l.starts_with("× the caBundle verifies"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        line == "    the serving certificate is not signed by the caBundle of ValidatingWebhookConfiguration sidekiq-guard, webhook namespace.validate.sidekiq-guard.io, ValidatingWebhookConfiguration sidekiq-guard, webhook object.validate.sidekiq-guard.io: the API server rejects every call through them",
        "{output}"
    );
}

#[test]
fn a_missing_install_and_a_short_lived_certificate_are_reported() {
    let api = ApiServer::start();
    let kubeconfig = api.kubeconfig("default");
    let out = run_in(&kubeconfig, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let output = text(&out.stdout);
    assert!(output.contains("× MutatingWebhookConfiguration sidekiq-guard exists\n    not found: sidekiq-guard is not installed, or under another name\n    hint: kubectl apply -k manifests/base (or pass --webhook NAME)\n"), "{output}");

    let serving = pki("sidekiq-guard CA", &["sidekiq-guard.sidekiq-guard.svc"], 10);
    let api = installed(&serving, &serving);
    let kubeconfig = api.kubeconfig("default");
    let out = run_in(&kubeconfig, &["check"]);
    assert_eq!(out.status.code(), Some(0));
    let output = text(&out.stdout);
    assert!(
        output.contains("‼ the serving certificate is valid for 21 days or more\n    10 days left"),
        "{output}"
    );
}

#[test]
fn certificates_are_judged_as_the_api_servers_tls_client_judges_them() {
    // A wildcard for the Service's namespace names the Service.
    let serving = pki("sidekiq-guard CA", &["*.sidekiq-guard.svc"], 90);
    let api = installed(&serving, &serving);
    let out = run_in(&api.kubeconfig("default"), &["check"]);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{output}");
    assert!(
        output.contains("√ the serving certificate names sidekiq-guard.sidekiq-guard.svc\n"),
        "{output}"
    );

    // Issued by a machine whose clock runs 5 days ahead: refused until then, whatever it
    // has left after.
    let serving = pki_from(
        "sidekiq-guard CA",
        &["sidekiq-guard.sidekiq-guard.svc"],
        time::Duration::days(5),
        300,
    );
    let api = installed(&serving, &serving);
    let out = run_in(&api.kubeconfig("default"), &["check"]);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{output}");
    assert!(
        output.contains(
            "× the serving certificate is valid for 21 days or more\n    it is not valid before "
        ),
        "{output}"
    );
    assert!(
        output.contains(": the API server refuses the webhook until then\n"),
        "{output}"
    );
}

#[test]
fn a_check_the_api_server_fails_to_answer_fails() {
    let serving = webhook_pki();
    let api = installed(&serving, &serving);
    api.fail("get", "secrets");
    let out = run_in(&api.kubeconfig("default"), &["check"]);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{output}");
    assert!(
        output.contains("× Secret sidekiq-guard/sidekiq-guard-tls holds the serving certificate\n    cannot tell: "),
        "{output}"
    );
    assert!(output.contains("etcdserver: request timed out"), "{output}");
}

/// Installed into another namespace by an overlay's `namespace:`, which keeps the base's
/// labels: the webhooks exclude it by its `sidekiq-guard.io/admission-webhooks` label, which
/// check reads from the namespace itself; a namespace without the label is not excluded, and
/// check says so.
#[test]
fn the_own_namespace_may_be_excluded_by_its_label() {
    let serving = webhook_pki();
    let api = installed(&serving, &serving);
    for (name, labels) in [
        (
            "platform",
            json!({"kubernetes.io/metadata.name": "platform", "sidekiq-guard.io/admission-webhooks": "disabled"}),
        ),
        (
            "elsewhere",
            json!({"kubernetes.io/metadata.name": "elsewhere"}),
        ),
    ] {
        add_namespace(&api, name, labels);
    }
    let kubeconfig = api.kubeconfig("default");
    let exclusion = "never sees kube-system nor its own namespace";
    let output = text(&run_in(&kubeconfig, &["check", "--install-namespace", "platform"]).stdout);
    assert_eq!(output.matches(exclusion).count(), 4, "{output}");
    assert!(
        !output.contains("the namespaceSelector does not exclude"),
        "{output}"
    );

    let output = text(&run_in(&kubeconfig, &["check", "--install-namespace", "elsewhere"]).stdout);
    assert_eq!(
        output
            .matches(&format!(
                "{exclusion}\n    the namespaceSelector does not exclude elsewhere\n"
            ))
            .count(),
        4,
        "{output}"
    );
}

/// After a kustomize `namespace:`, check finds the installation where the webhooks call it,
/// without being told.
#[test]
fn an_install_moved_to_another_namespace_is_found_where_the_webhooks_call_it() {
    let serving = pki("sidekiq-guard CA", &["sidekiq-guard.platform.svc"], 90);
    let api = Install {
        namespace: "platform",
        ..Install::new(&serving, &serving)
    }
    .start();
    // The base gives its namespace this label, which the rename keeps.
    add_namespace(
        &api,
        "platform",
        json!({"kubernetes.io/metadata.name": "platform", "sidekiq-guard.io/admission-webhooks": "disabled"}),
    );
    let kubeconfig = api.kubeconfig("default");
    let out = run_in(&kubeconfig, &["check"]);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{output}");
    for line in [
        "√ pod.mutate.sidekiq-guard.io: calls a Service\n    platform/sidekiq-guard\n",
        "√ Service platform/sidekiq-guard exposes port 443\n",
        "√ the caBundle verifies the serving certificate\n",
        "√ the serving certificate names sidekiq-guard.platform.svc\n",
    ] {
        assert!(output.contains(line), "{line}\n{output}");
    }
    assert!(!output.contains("does not exclude"), "{output}");
}

/// The API server fails every call to a port the Service lacks; one replica of two not ready
/// leaves the webhook one disruption from unreachable.
#[test]
fn a_port_the_service_lacks_fails_and_a_replica_not_ready_warns() {
    let serving = webhook_pki();
    // The validating webhooks call the Service's port, the mutating ones 443, which it lacks.
    let api = Install {
        validating_port: Some(8443),
        service_ports: &[8443],
        endpoints: json!([
            {"addresses": ["10.244.1.10"], "conditions": {"ready": true}},
            {"addresses": ["10.244.2.11"], "conditions": {"ready": false}},
            {"addresses": ["10.244.3.12"], "conditions": {"ready": false, "terminating": true}},
        ]),
        ..Install::new(&serving, &serving)
    }
    .start();
    let kubeconfig = api.kubeconfig("default");
    let out = run_in(&kubeconfig, &["check"]);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{output}");
    assert!(output.contains("√ object.validate.sidekiq-guard.io: calls a Service\n    sidekiq-guard/sidekiq-guard:8443\n"), "{output}");
    assert!(
        output.contains("√ Service sidekiq-guard/sidekiq-guard exposes port 8443\n"),
        "{output}"
    );
    assert!(output.contains("× Service sidekiq-guard/sidekiq-guard exposes port 443\n    the webhooks call port 443, and the Service's ports are 8443: the API server cannot call the webhook\n    hint: set clientConfig.service.port in both webhook configurations to the Service's port, or give the Service that port\n"), "{output}");
    assert_eq!(output.matches("has ready endpoints").count(), 1, "{output}");
    assert!(output.contains("‼ Service sidekiq-guard/sidekiq-guard has ready endpoints\n    1 of 2 ready: the replicas that are not (crash-looping, or a rollout that stalls) leave the webhook one node drain or crash away from unreachable\n    hint: kubectl -n sidekiq-guard get pods -l app.kubernetes.io/name=sidekiq-guard; look at their logs and events\n"), "{output}");
}

#[test]
fn missing_permissions_are_warnings_that_name_the_rule() {
    let serving = webhook_pki();
    let api = installed(&serving, &serving);
    api.forbid("get", "secrets", Some("sidekiq-guard"));
    let kubeconfig = api.kubeconfig("default");
    let out = run_in(&kubeconfig, &["check"]);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{output}");
    assert!(output.contains("‼ Secret sidekiq-guard/sidekiq-guard-tls holds the serving certificate\n    cannot tell: forbidden: secrets is forbidden"), "{output}");
    assert!(
        output.contains("your RBAC role needs: get secrets in namespace sidekiq-guard"),
        "{output}"
    );

    // A configuration that cannot be read leaves its caBundle unknown: a warning, not a failure.
    let api = installed(&serving, &serving);
    api.forbid("get", "validatingwebhookconfigurations", None);
    let kubeconfig = api.kubeconfig("default");
    let out = run_in(&kubeconfig, &["check"]);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{output}");
    assert!(
        output.contains("‼ the caBundle verifies the serving certificate\n    cannot tell for ValidatingWebhookConfiguration sidekiq-guard: not readable\n"),
        "{output}"
    );

    // Namespaces that cannot be listed: whether a pod's namespace is opted in is unknown, and
    // so said, not reported as "not opted in".
    let api = installed(&serving, &serving);
    api.forbid("list", "namespaces", None);
    let out = run_in(&api.kubeconfig("default"), &["check"]);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{output}");
    assert!(
        output.contains("‼ Sidekiq pods run only in opted-in namespaces\n    cannot tell whether these namespaces are opted in, so whether the webhook sees their uninjected Sidekiq pods: legacy (1)"),
        "{output}"
    );
    assert!(!output.contains("namespaces not opted in"), "{output}");
}
