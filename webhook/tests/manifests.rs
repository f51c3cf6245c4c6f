//! The manifests an operator applies: every kustomization renders with `kubectl kustomize`,
//! passes the Kubernetes OpenAPI schemas (kubernetes-validate, strict), and its parts agree with
//! each other, with the webhook's command line and with DESIGN.md's opt-in contract.

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser as _;
use serde_json::Value;
use sidekiq_guard::install::{self, Namespace, WebhookKind};
use sidekiq_guard_webhook::cli::{CertsCommand, Cli, Command as Sub};

fn kustomizations() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut stack = vec![common::root().join("manifests")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
                dirs.push(dir.clone());
            }
        }
    }
    dirs.sort();
    dirs
}

fn render(dir: &Path) -> String {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl is needed to render the manifests (scripts/setup checks for it)");
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn validator() -> PathBuf {
    let path = common::root().join("target/tools/venv/bin/kubernetes-validate");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup",
        path.display()
    );
    path
}

#[test]
fn every_kustomization_renders_and_passes_the_kubernetes_schemas() {
    let dirs = kustomizations();
    let names: Vec<String> = dirs
        .iter()
        .map(|d| {
            d.strip_prefix(common::root())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"manifests/base".to_owned()), "{names:?}");
    assert!(
        names.contains(&"manifests/cert-manager".to_owned()),
        "{names:?}"
    );
    let out = tempfile::tempdir().unwrap();
    for (dir, name) in dirs.iter().zip(&names) {
        let file = out.path().join(format!("{}.yaml", name.replace('/', "_")));
        std::fs::write(&file, render(dir)).unwrap();
        assert_valid(&file, name);
    }
}

/// Validates every object of a YAML stream against the Kubernetes schemas, strictly (no unknown
/// field, every type right): 1.29 is the oldest release sidekiq-guard targets; the newest
/// schema catches fields that were removed since.
fn assert_valid(file: &Path, name: &str) {
    for version in ["1.29.0", "1.33.0", "1.37.0"] {
        let output = Command::new(validator())
            .args(["--strict", "-k", version])
            .arg(file)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{name} against {version}:\n{report}"
        );
        // Every Kubernetes object was checked (only cert-manager's CRDs have no schema).
        let checked = report.matches(" passed for resource ").count();
        let skipped = report.matches("Couldn't find schema for kind").count();
        assert_eq!(
            checked + skipped,
            documents(&std::fs::read_to_string(file).unwrap()).len(),
            "{report}"
        );
        for line in report
            .lines()
            .filter(|l| l.contains("Couldn't find schema"))
        {
            assert!(line.contains("cert-manager.io/v1"), "{line}");
        }
    }
}

/// What users apply is valid Kubernetes: the bundled examples and the test pods as written, and
/// what injection makes of each in both sidecar modes (the objects `kubectl sidekiq inject`
/// prints, the pods the webhook's patch produces). The golden patches pin the exact fields;
/// this checks their types and names against the API's own schemas.
#[test]
fn the_examples_and_their_injected_forms_pass_the_kubernetes_schemas() {
    let root = common::root();
    let mut sources: Vec<PathBuf> = ["manifests/examples", "tests/data/objects"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .collect();
    sources.sort();
    let objects: Vec<Value> = sources
        .iter()
        .flat_map(|p| documents(&std::fs::read_to_string(p).unwrap()))
        .map(|mut object| {
            // The validator needs a name; a pod of a ReplicaSet has only `generateName` until
            // the API server makes one of it.
            let metadata = &mut object["metadata"];
            if metadata.get("name").is_none() {
                metadata["name"] =
                    format!("{}x7k2p", metadata["generateName"].as_str().unwrap()).into();
            }
            object
        })
        .collect();
    assert!(objects.len() >= 12, "the examples shrank: {sources:?}");
    let policy = sidekiq_guard::Policy::default();
    let out = tempfile::tempdir().unwrap();
    let stream = |name: &str, objects: &[Value]| {
        let file = out.path().join(format!("{name}.yaml"));
        let text: Vec<String> = objects
            .iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect();
        std::fs::write(&file, text.join("\n---\n")).unwrap();
        assert_valid(&file, name);
    };
    stream("as-written", &objects);
    for mode in [sidekiq_guard::Mode::Native, sidekiq_guard::Mode::Classic] {
        let ctx = sidekiq_guard::Context {
            policy: &policy,
            mode,
            namespace: Some("shop"),
        };
        let mut injected = Vec::new();
        let mut left = Vec::new();
        for object in &objects {
            let (mutated, review) = sidekiq_guard::review::inject(object, &ctx).unwrap();
            if review.ops.is_empty() {
                left.push(object["metadata"]["name"].as_str().unwrap().to_owned());
            } else {
                injected.push(mutated);
            }
        }
        // Left alone: a port conflict, a Redis set in Ruby, two Sidekiq containers, no Sidekiq;
        // and with classic sidecars, the CronJob (its Jobs would never complete).
        let mut expected = vec![
            "conflict",
            "redis-in-ruby",
            "two-workers",
            "web-5f7c9-x7k2p",
        ];
        if mode == sidekiq_guard::Mode::Classic {
            expected.insert(0, "nightly-backfill");
        }
        assert_eq!(left, expected, "{mode:?}");
        stream(&format!("injected-{}", mode.as_str()), &injected);
    }
}

/// The rendered objects of one kustomization, with lookups.
struct Rendered(Vec<Value>);

impl Rendered {
    fn of(dir: &str) -> Self {
        Self(documents(&render(&common::root().join(dir))))
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.0.iter().filter(|d| d["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.all(kind);
        assert_eq!(found.len(), 1, "expected one {kind}");
        found[0]
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn command_line(container: &Value) -> Vec<String> {
    let mut line = strings(&container["command"]);
    assert_eq!(line.len(), 1, "command is the binary alone: {container}");
    line[0] = Path::new(&line[0])
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    line.extend(strings(&container["args"]));
    line
}

#[test]
fn the_base_is_a_consistent_least_privilege_installation() {
    let base = Rendered::of("manifests/base");
    let namespace = base.one("Namespace");
    let ns = namespace["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );

    // The Deployment.
    let deployment = base.one("Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let pod = &spec["template"]["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(spec["selector"]["matchLabels"], *labels);
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            ["labelSelector"]["matchLabels"],
        *labels
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    // Linux binaries only: never on a Windows node of a mixed cluster.
    assert_eq!(
        pod["nodeSelector"],
        serde_json::json!({"kubernetes.io/os": "linux"})
    );
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let webhook = &containers[0];
    assert_eq!(webhook["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        webhook["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        webhook["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert!(webhook["resources"]["requests"]["cpu"].is_string());
    assert!(webhook["resources"]["requests"]["memory"].is_string());
    assert!(webhook["resources"]["limits"]["memory"].is_string());
    assert_eq!(webhook["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(webhook["livenessProbe"]["httpGet"]["path"], "/livez");

    // Its command line is one the webhook accepts, and points where the volumes are.
    let cli = Cli::try_parse_from(command_line(webhook)).unwrap_or_else(|e| panic!("{e}"));
    let Sub::Serve(args) = cli.command else {
        panic!("the Deployment does not run serve")
    };
    let port = |name: &str| {
        webhook["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no port {name}"))["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(u64::from(args.addr.port()), port("https"));
    assert_eq!(u64::from(args.health_addr.port()), port("health"));
    // Both address families: an IPv6 Service address and the kubelet's IPv6 probes reach it.
    for addr in [args.addr, args.health_addr] {
        assert_eq!(addr, sidekiq_guard::listen::every_address(addr.port()));
    }
    assert_eq!(webhook["readinessProbe"]["httpGet"]["port"], "health");
    let mount = |volume: &str| {
        let path = webhook["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_owned();
        PathBuf::from(path)
    };
    let volume = |name: &str| {
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(args.tls_cert, mount("tls").join("tls.crt"));
    assert_eq!(args.tls_key, mount("tls").join("tls.key"));
    let tls = volume("tls");
    let tls_secret = tls["secret"]["secretName"].as_str().unwrap().to_owned();
    // Optional: the pods start (not ready) before the certificate Job has made the Secret.
    assert_eq!(tls["secret"]["optional"], true);
    let policy_file = args.policy.unwrap();
    let policy_volume = volume("policy");
    let config_map = base
        .named(
            "ConfigMap",
            policy_volume["configMap"]["name"].as_str().unwrap(),
        )
        .expect("the policy volume names the generated ConfigMap");
    let key = policy_file
        .strip_prefix(mount("policy"))
        .unwrap()
        .to_str()
        .unwrap();
    let policy = sidekiq_guard::Policy::parse(config_map["data"][key].as_str().unwrap())
        .unwrap_or_else(|e| panic!("the shipped policy is invalid: {e}"));
    assert_eq!(
        policy,
        sidekiq_guard::Policy::default(),
        "policy.yaml documents the defaults"
    );
    // The injected sidecar is this very image: webhook and probe never skew.
    assert_eq!(
        policy.sidecar.image, None,
        "policy.yaml leaves the image to the webhook"
    );
    assert_eq!(sidecar_image_of(webhook), webhook["image"]);
    // The grace period covers the whole shutdown sequence.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > (args.shutdown_delay + args.shutdown_timeout).as_secs() + 5);

    // Service and PodDisruptionBudget select the Deployment's pods.
    let service = base.one("Service");
    assert_eq!(service["spec"]["selector"], *labels);
    let https = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == 443)
        .expect("the Service serves 443");
    assert_eq!(https["targetPort"], "https");
    let pdb = base.one("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *labels);
    assert_eq!(pdb["spec"]["minAvailable"], 1);

    // The webhook configurations call that Service.
    let service_name = service["metadata"]["name"].as_str().unwrap();
    assert_eq!(service["metadata"]["namespace"], ns);
    for (kind, path) in [
        ("MutatingWebhookConfiguration", "/mutate"),
        ("ValidatingWebhookConfiguration", "/validate"),
    ] {
        let config = base.one(kind);
        assert_eq!(config["metadata"]["name"], "sidekiq-guard");
        for webhook in config["webhooks"].as_array().unwrap() {
            let name = webhook["name"].as_str().unwrap();
            let service = &webhook["clientConfig"]["service"];
            assert_eq!(service["name"], service_name, "{name}");
            assert_eq!(service["namespace"], ns, "{name}");
            assert_eq!(service["port"], 443, "{name}");
            assert_eq!(service["path"], path, "{name}");
            assert_eq!(webhook["sideEffects"], "None", "{name}");
            assert_eq!(webhook["timeoutSeconds"], 5, "{name}");
            assert_eq!(webhook["failurePolicy"], "Ignore", "{name}");
            assert_eq!(
                webhook["admissionReviewVersions"],
                serde_json::json!(["v1"]),
                "{name}"
            );
            if kind == "MutatingWebhookConfiguration" {
                assert_eq!(webhook["reinvocationPolicy"], "IfNeeded", "{name}");
                // Pods on CREATE only: their spec is immutable afterwards.
                assert_eq!(
                    webhook["rules"],
                    serde_json::json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "Namespaced"}]),
                    "{name}"
                );
            }
        }
    }

    // The certificate Job and CronJob: same command, same image, matching names.
    let job_pod = &base.one("Job")["spec"]["template"]["spec"];
    let cron_pod = &base.one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        job_pod, cron_pod,
        "the CronJob runs exactly the install Job"
    );
    // A run whose pod never starts ends, rather than holding off every later one (Forbid).
    let cron = base.one("CronJob");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    for job in [
        &base.one("Job")["spec"],
        &cron["spec"]["jobTemplate"]["spec"],
    ] {
        let deadline = job["activeDeadlineSeconds"].as_u64().unwrap();
        assert!((600..=3600).contains(&deadline), "{deadline}");
    }
    assert_eq!(job_pod["nodeSelector"], pod["nodeSelector"]);
    let certs = &job_pod["containers"][0];
    assert_eq!(certs["image"], webhook["image"]);
    let mut line = command_line(certs);
    for arg in &mut line {
        *arg = arg.replace("$(POD_NAMESPACE)", ns);
    }
    assert!(
        certs["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "POD_NAMESPACE"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace")
    );
    let cli = Cli::try_parse_from(line).unwrap_or_else(|e| panic!("{e}"));
    let Sub::Certs(CertsCommand::Install(install)) = cli.command else {
        panic!("the Job does not run certs install")
    };
    assert_eq!(install.service, service_name);
    assert_eq!(install.namespace, ns);
    assert_eq!(install.secret, tls_secret);
    assert_eq!(install.webhook_configuration, "sidekiq-guard");

    // Least privilege: the Job's account may touch exactly its Secrets and the two
    // configurations' caBundle; the webhook's account is bound to nothing.
    let job_account = job_pod["serviceAccountName"].as_str().unwrap();
    let webhook_account = pod["serviceAccountName"].as_str().unwrap();
    assert_ne!(job_account, webhook_account);
    for binding in base
        .all("RoleBinding")
        .into_iter()
        .chain(base.all("ClusterRoleBinding"))
    {
        let subjects = binding["subjects"].as_array().unwrap();
        assert!(
            subjects
                .iter()
                .all(|s| s["name"] == job_account && s["namespace"] == ns),
            "{binding}"
        );
    }
    let role = base.one("Role");
    let mut secret_rules: Vec<(Vec<String>, Vec<String>)> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(strings(&r["resources"]), ["secrets"]);
            (strings(&r["verbs"]), strings(&r["resourceNames"]))
        })
        .collect();
    secret_rules.sort();
    assert_eq!(
        secret_rules,
        [
            (vec!["create".to_owned()], vec![]),
            (
                vec!["get".to_owned(), "update".to_owned()],
                vec![install.secret.clone(), install.ca_secret.clone()]
            ),
        ]
    );
    let cluster_role = base.one("ClusterRole");
    assert_eq!(
        cluster_role["rules"],
        serde_json::json!([{
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
            "resourceNames": ["sidekiq-guard"],
            "verbs": ["get", "patch"],
        }])
    );
}

/// Evaluates a Kubernetes label selector (matchLabels and matchExpressions) on its own, apart
/// from the core's `Selector`, which `kubectl sidekiq check` uses: the two must agree.
fn selects(selector: &Value, labels: &[(&str, &str)]) -> bool {
    if selector.is_null() {
        return true;
    }
    let get = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    if let Some(match_labels) = selector["matchLabels"].as_object()
        && !match_labels
            .iter()
            .all(|(k, v)| get(k) == Some(v.as_str().unwrap()))
    {
        return false;
    }
    selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|expr| {
            let key = expr["key"].as_str().unwrap();
            let values = strings(&expr["values"]);
            let value = get(key);
            match expr["operator"].as_str().unwrap() {
                "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
                "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("operator {other}"),
            }
        })
}

/// An overlay's `namespace:` renames the namespace and rewrites the webhooks' Service
/// reference and the RBAC subjects (else the install Job would be forbidden, no `caBundle`
/// set, and every pod admitted uninjected under `failurePolicy: Ignore`); the namespace stays
/// excluded from every webhook (by the label it keeps) and `kubectl sidekiq check
/// --install-namespace` finds nothing wrong with the exclusions.
#[test]
fn a_namespace_overlay_keeps_its_own_namespace_out_of_the_webhooks() {
    let overlay = tempfile::Builder::new()
        .prefix(".overlay-")
        .tempdir_in(common::root())
        .unwrap();
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        "namespace: platform\nresources:\n  - ../manifests/base\n",
    )
    .unwrap();
    let rendered = Rendered(documents(&render(overlay.path())));
    let namespace = rendered.one("Namespace");
    assert_eq!(namespace["metadata"]["name"], "platform");
    let mut subjects = 0;
    for object in &rendered.0 {
        let kind = object["kind"].as_str().unwrap_or_default();
        let cluster_scoped = matches!(
            kind,
            "ClusterRole"
                | "ClusterRoleBinding"
                | "Namespace"
                | "MutatingWebhookConfiguration"
                | "ValidatingWebhookConfiguration"
        );
        if !cluster_scoped {
            assert_eq!(object["metadata"]["namespace"], "platform", "{kind}");
        }
        for subject in object["subjects"].as_array().into_iter().flatten() {
            assert_eq!(subject["namespace"], "platform", "{kind} {subject}");
            subjects += 1;
        }
    }
    assert!(
        subjects >= 2,
        "the install Job's and the webhook's bindings"
    );
    let mut labels: Vec<(&str, &str)> = namespace["metadata"]["labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str().unwrap()))
        .collect();
    labels.push(("kubernetes.io/metadata.name", "platform"));
    labels.push(("sidekiq-guard.io/inject", "enabled"));
    for (kind, webhook_kind) in [
        ("MutatingWebhookConfiguration", WebhookKind::Mutating),
        ("ValidatingWebhookConfiguration", WebhookKind::Validating),
    ] {
        let config = rendered.one(kind);
        for webhook in config["webhooks"].as_array().unwrap() {
            assert_eq!(webhook["clientConfig"]["service"]["namespace"], "platform");
            assert!(
                !selects(&webhook["namespaceSelector"], &labels),
                "{kind} {} is sent the pods of its own namespace",
                webhook["name"]
            );
        }
        let excluded = install::Excluded {
            system: Namespace::named("kube-system"),
            own: Namespace::of("platform", namespace),
        };
        let (checks, _) = install::webhook_configuration(webhook_kind, config, excluded);
        let exclusions: Vec<_> = checks
            .iter()
            .filter(|c| {
                c.title
                    .ends_with("never sees kube-system nor its own namespace")
            })
            .collect();
        assert_eq!(exclusions.len(), 2);
        assert!(
            exclusions.iter().all(|c| c.status == install::Status::Pass),
            "{exclusions:#?}"
        );
    }
}

#[test]
fn exactly_the_opted_in_pods_reach_each_webhook_once() {
    let base = Rendered::of("manifests/base");
    // (namespace name, namespace labelled inject=enabled, pod's inject label, reviewed)
    let cases = [
        ("shop", true, None, true),
        ("shop", true, Some("true"), true),
        ("shop", true, Some("false"), false),
        ("shop", true, Some("yes"), true),
        ("shop", false, Some("true"), true),
        ("shop", false, None, false),
        ("shop", false, Some("false"), false),
        ("kube-system", true, Some("true"), false),
        ("kube-system", true, None, false),
        ("sidekiq-guard", true, Some("true"), false),
        ("sidekiq-guard", false, Some("true"), false),
    ];
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let webhooks = base.one(kind)["webhooks"].as_array().unwrap().clone();
        for (ns, enabled, pod_label, reviewed) in cases {
            let mut ns_labels = vec![("kubernetes.io/metadata.name", ns)];
            if enabled {
                ns_labels.push(("sidekiq-guard.io/inject", "enabled"));
            }
            let pod_labels: Vec<(&str, &str)> = pod_label
                .map(|v| vec![("sidekiq-guard.io/inject", v), ("app", "worker")])
                .unwrap_or_else(|| vec![("app", "worker")]);
            let calls = webhooks
                .iter()
                .filter(|w| {
                    selects(&w["namespaceSelector"], &ns_labels)
                        && selects(&w["objectSelector"], &pod_labels)
                })
                .count();
            assert_eq!(
                calls,
                usize::from(reviewed),
                "{kind}: namespace {ns} (enabled: {enabled}), pod label {pod_label:?}"
            );
        }
    }
}

/// The image the webhook injects (`SIDEKIQ_GUARD_SIDECAR_IMAGE`).
fn sidecar_image_of(webhook: &Value) -> Value {
    webhook["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SIDEKIQ_GUARD_SIDECAR_IMAGE")
        .expect("the webhook is told which image to inject")["value"]
        .clone()
}

/// An overlay that mirrors the image (the way operators pin a registry and a tag) moves the
/// injected probe along with the webhook.
#[test]
fn a_mirrored_image_is_also_the_injected_one() {
    let overlay = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // Kustomize takes no absolute resource paths: up to the root, then down to the base.
    let up = "../".repeat(overlay.path().components().count() - 1);
    let base = common::root().join("manifests/base");
    let base = format!("{up}{}", base.to_str().unwrap().trim_start_matches('/'));
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "resources:\n  - {base}\nimages:\n  - name: ghcr.io/sidekiq-guard/sidekiq-guard\n    newName: registry.internal/mirror/sidekiq-guard\n    newTag: 0.1.0-patched\n"
        ),
    )
    .unwrap();
    let rendered = documents(&render(overlay.path()));
    let deployment = rendered.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let webhook = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        webhook["image"],
        "registry.internal/mirror/sidekiq-guard:0.1.0-patched"
    );
    assert_eq!(sidecar_image_of(webhook), webhook["image"]);
}

/// The objects of `certs install`: the Job, the weekly CronJob and their RBAC.
fn is_install_job(object: &Value) -> bool {
    matches!(object["kind"].as_str(), Some("Job" | "CronJob"))
        || object["metadata"]["name"] == "sidekiq-guard-certs"
}

fn assert_no_install_job(overlay: &Rendered, name: &str) {
    for kind in [
        "Job",
        "CronJob",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ] {
        assert!(
            overlay.all(kind).is_empty(),
            "{kind} left in the {name} overlay"
        );
    }
    assert!(
        overlay
            .named("ServiceAccount", "sidekiq-guard-certs")
            .is_none()
    );
}

/// With your own CA nothing may replace your certificate: the install Job and its CronJob are
/// gone, and everything else is the base's, unchanged.
#[test]
fn the_own_ca_overlay_is_the_base_without_the_install_job() {
    let base = Rendered::of("manifests/base");
    let overlay = Rendered::of("manifests/own-ca");
    assert_no_install_job(&overlay, "own-ca");
    let kept: Vec<&Value> = base.0.iter().filter(|o| !is_install_job(o)).collect();
    assert_eq!(overlay.0.iter().collect::<Vec<_>>(), kept);
    // Seven objects go: the Job, the CronJob, and their ServiceAccount, Role, RoleBinding,
    // ClusterRole and ClusterRoleBinding.
    assert_eq!(base.0.len() - kept.len(), 7);
}

#[test]
fn the_cert_manager_overlay_replaces_the_job_with_certificates() {
    let base = Rendered::of("manifests/base");
    let overlay = Rendered::of("manifests/cert-manager");
    assert_no_install_job(&overlay, "cert-manager");
    assert_eq!(overlay.one("Deployment"), base.one("Deployment"));

    let deployment = overlay.one("Deployment");
    let tls_secret = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap()["secret"]["secretName"]
        .clone();
    let service = overlay.one("Service");
    let ns = service["metadata"]["namespace"].as_str().unwrap();
    let certificates = overlay.all("Certificate");
    let serving = certificates
        .iter()
        .find(|c| c["spec"]["secretName"] == tls_secret)
        .expect("a Certificate writes the Secret the webhook mounts");
    assert_eq!(
        strings(&serving["spec"]["dnsNames"]),
        sidekiq_guard_webhook::pki::service_dns_names(
            service["metadata"]["name"].as_str().unwrap(),
            ns
        )
    );
    // Serving certificate ← CA Issuer ← CA Certificate ← self-signed Issuer.
    let ca_issuer = overlay
        .named(
            "Issuer",
            serving["spec"]["issuerRef"]["name"].as_str().unwrap(),
        )
        .unwrap();
    let ca_certificate = certificates
        .iter()
        .find(|c| c["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"])
        .expect("the CA Issuer's Secret comes from a Certificate");
    assert_eq!(ca_certificate["spec"]["isCA"], true);
    let root = overlay
        .named(
            "Issuer",
            ca_certificate["spec"]["issuerRef"]["name"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert!(root["spec"]["selfSigned"].is_object());
    let inject = format!("{ns}/{}", serving["metadata"]["name"].as_str().unwrap());
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        assert_eq!(
            overlay.one(kind)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            inject.as_str()
        );
    }
}

#[test]
fn the_image_runs_the_probe_by_default_and_holds_the_webhook() {
    let dockerfile = std::fs::read_to_string(common::root().join("Dockerfile")).unwrap();
    let base = Rendered::of("manifests/base");
    let from_lines: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    // The final stage has no operating system at all.
    assert_eq!(from_lines.last().unwrap().trim(), "FROM scratch");
    // The probe is the entrypoint: the webhook injects the image with `args` only.
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/sidekiq-guard-probe\"]"));
    let copy = dockerfile
        .lines()
        .find(|l| l.starts_with("COPY --from=build /out/"))
        .unwrap();
    let build_static =
        std::fs::read_to_string(common::root().join("scripts/build-static")).unwrap();
    for bin in ["sidekiq-guard-webhook", "sidekiq-guard-probe"] {
        assert!(copy.contains(&format!("/out/{bin}")), "{copy}");
        assert!(
            build_static.contains(&format!("-p {bin}")),
            "{bin} is not built"
        );
    }
    assert!(copy.ends_with(" /usr/local/bin/"));
    // The probe binary exists in the workspace under that name.
    let probe = std::fs::read_to_string(common::root().join("probe/Cargo.toml")).unwrap();
    assert!(probe.contains("name = \"sidekiq-guard-probe\""));
    // Non-root, the same numeric user as the manifests.
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    let uid = base.one("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
        .as_u64()
        .unwrap();
    assert_eq!(user, format!("{uid}:{uid}"));
    assert_ne!(uid, 0);
    // The manifests run binaries the image holds.
    let job = base.one("Job");
    for container in [
        &base.one("Deployment")["spec"]["template"]["spec"]["containers"][0],
        &job["spec"]["template"]["spec"]["containers"][0],
    ] {
        assert_eq!(
            container["command"][0],
            "/usr/local/bin/sidekiq-guard-webhook"
        );
    }
    // The image's binaries are built by the script that scripts/check-image runs them from
    // (in an empty root, as this image holds them), into the directory the final stage copies.
    let build = dockerfile
        .lines()
        .find(|l| l.trim_start().starts_with("bash scripts/build-static"))
        .unwrap();
    assert_eq!(build.trim(), "bash scripts/build-static /out");
    assert!(build_static.contains("cargo build --release --locked --target"));
    assert!(
        build_static
            .lines()
            .any(|l| l == r#"RUSTFLAGS="-C target-feature=+crt-static" \"#)
    );
    let test = std::fs::read_to_string(common::root().join("scripts/test")).unwrap();
    assert!(
        test.lines()
            .any(|l| l == "scripts/build-static target/static")
    );
    assert!(
        test.lines()
            .any(|l| l == r#"$sudo env "PATH=$PATH" scripts/check-image target/static"#)
    );
}

/// The ClusterAdmissionPolicies the README gives for Kubewarden, whose selectors are the
/// user's to copy: together they reach exactly the pods the webhook's configurations reach.
#[test]
fn the_readmes_kubewarden_policies_select_what_the_webhook_does() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let policies: Vec<Value> = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(yaml, _)| yaml))
        .filter(|yaml| yaml.contains("kind: ClusterAdmissionPolicy"))
        .flat_map(documents)
        .collect();
    assert_eq!(policies.len(), 2, "the README's two policies");
    let base = Rendered::of("manifests/base");
    let webhooks = base.one("MutatingWebhookConfiguration")["webhooks"]
        .as_array()
        .unwrap()
        .clone();
    // (namespace labels, pod's inject label)
    let namespaces: [&[(&str, &str)]; 4] = [
        &[
            ("kubernetes.io/metadata.name", "shop"),
            ("sidekiq-guard.io/inject", "enabled"),
        ],
        &[("kubernetes.io/metadata.name", "shop")],
        &[
            ("kubernetes.io/metadata.name", "kube-system"),
            ("sidekiq-guard.io/inject", "enabled"),
        ],
        &[
            ("kubernetes.io/metadata.name", "legacy"),
            ("sidekiq-guard.io/inject", "enabled"),
            ("sidekiq-guard.io/admission-webhooks", "disabled"),
        ],
    ];
    for ns_labels in namespaces {
        for pod_label in [None, Some("true"), Some("false")] {
            let pod_labels: Vec<(&str, &str)> = pod_label
                .map(|v| vec![("sidekiq-guard.io/inject", v)])
                .unwrap_or_default();
            let reaches = |selectors: &[(&Value, &Value)]| {
                selectors
                    .iter()
                    .filter(|(ns, object)| selects(ns, ns_labels) && selects(object, &pod_labels))
                    .count()
            };
            let by_webhook: Vec<(&Value, &Value)> = webhooks
                .iter()
                .map(|w| (&w["namespaceSelector"], &w["objectSelector"]))
                .collect();
            let by_policies: Vec<(&Value, &Value)> = policies
                .iter()
                .map(|p| {
                    (
                        &p["spec"]["namespaceSelector"],
                        &p["spec"]["objectSelector"],
                    )
                })
                .collect();
            assert_eq!(
                reaches(&by_policies),
                reaches(&by_webhook),
                "namespace {ns_labels:?}, pod label {pod_label:?}"
            );
        }
    }
}
