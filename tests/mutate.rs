//! The mutation of real-shaped pods and workloads: exact patches, kept user settings,
//! warnings, findings after mutation, and idempotency.

mod common;

use common::{apply_independently, ctx, load};
use serde_json::{Value, json};
use sidekiq_guard::analysis::Skip;
use sidekiq_guard::mutate::Blocked;
use sidekiq_guard::pointer::Pointer as _;
use sidekiq_guard::review::{self, Outcome, Perspective};
use sidekiq_guard::status::{InjectionStatus, Part};
use sidekiq_guard::{Code, Context, Finding, Mode, PatchOp, Policy, Severity};

fn codes(review: &review::Review) -> Vec<&'static str> {
    review.findings.iter().map(|f| f.code.id()).collect()
}

/// The findings of `code` when `object` is validated as written.
fn findings_of(object: &Value, ctx: &Context<'_>, code: Code) -> Vec<Finding> {
    review::validate(object, ctx, Perspective::AsWritten)
        .findings
        .into_iter()
        .filter(|f| f.code == code)
        .collect()
}

/// `finding` whole as an admission warning, which the API server cuts at 256 characters.
fn assert_fits_a_warning(finding: &Finding) {
    let warning = format!("sidekiq-guard: {finding}");
    assert!(
        warning.chars().count() <= review::MAX_WARNING_CHARS,
        "{} characters: {warning}",
        warning.chars().count()
    );
}

/// Mutates, applies with an independent JSON Patch implementation, and checks that mutating the
/// result again changes nothing.
fn mutate_and_apply(object: &Value, policy: &Policy, mode: Mode) -> (review::Review, Value) {
    let ctx = ctx(policy, mode);
    let review = review::mutate(object, &ctx);
    let mutated = apply_independently(object, &review.ops).expect("the patch applies");
    let again = review::mutate(&mutated, &ctx);
    assert_eq!(again.ops, vec![], "mutating twice must equal mutating once");
    (review, mutated)
}

#[test]
fn the_exact_patch_for_an_admitted_rails_worker_pod() {
    let pod = load("tests/data/objects/pod-rails-worker.json");
    let (review, _) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    assert_eq!(review.outcome, Outcome::Mutated);
    common::golden_json(
        "tests/data/patches/pod-rails-worker.json",
        &serde_json::to_value(&review.ops).unwrap(),
    );
    assert_eq!(
        review.notes,
        vec![
            "terminationGracePeriodSeconds raised from 30 to 350: 350s = quiet latency 20s + longest job 5m \
             (annotation sidekiq-guard.io/longest-job) + shutdown timeout 25s (command line -t 25) + exit allowance 5s"
        ]
    );
    // Nothing is left to fix once the pod is injected.
    assert_eq!(codes(&review), Vec::<&str>::new());
}

/// The API server reinvokes the webhook after a later one changed the pod: one that adds its
/// variables and token mount to every container (Datadog, EKS Pod Identity) leaves nothing
/// for sidekiq-guard to do, and keeps what it added to the sidecar.
#[test]
fn a_reinvocation_after_a_webhook_that_adds_to_every_container_changes_nothing() {
    let pod = load("tests/data/objects/pod-rails-worker.json");
    let (_, mut mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    let spec = &mut mutated["spec"];
    for list in ["containers", "initContainers"] {
        for container in spec[list].as_array_mut().unwrap() {
            let env = container["env"].as_array_mut().unwrap();
            env.push(json!({"name": "DD_AGENT_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}));
            let mounts = container
                .as_object_mut()
                .unwrap()
                .entry("volumeMounts")
                .or_insert(json!([]));
            mounts
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "aws-iam-token", "readOnly": true,
                "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}));
        }
    }
    let again = review::mutate(&mutated, &ctx(&Policy::default(), Mode::Native));
    assert_eq!(again.ops, vec![]);
}

/// The API server refuses Linux security settings in a Windows pod, and the probe image is a
/// Linux one: such a pod is left alone, and why is said.
#[test]
fn a_windows_pod_is_left_alone() {
    let mut pod = load("tests/data/objects/pod-rails-worker.json");
    pod["spec"]["os"] = json!({"name": "windows"});
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let review = review::mutate(&pod, &ctx);
    assert_eq!(review.outcome, Outcome::Skipped(Skip::Windows));
    assert_eq!(review.ops, vec![]);
    assert_eq!(
        Skip::Windows.to_string(),
        "the pod runs on Windows (spec.os.name or nodeSelector kubernetes.io/os): the probe sidecar is a Linux image"
    );
    pod["spec"]["os"]["name"] = json!("linux");
    assert_eq!(review::mutate(&pod, &ctx).outcome, Outcome::Mutated);
    // Scheduled onto Windows nodes by their label alone.
    pod["spec"].as_object_mut().unwrap().remove("os");
    pod["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "windows"});
    assert_eq!(
        review::mutate(&pod, &ctx).outcome,
        Outcome::Skipped(Skip::Windows)
    );
    pod["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    assert_eq!(review::mutate(&pod, &ctx).outcome, Outcome::Mutated);
}

#[test]
fn the_status_annotation_describes_the_result() {
    let pod = load("tests/data/objects/pod-rails-worker.json");
    let (_, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    let status = mutated["metadata"]["annotations"]["sidekiq-guard.io/status"]
        .as_str()
        .unwrap();
    let status = InjectionStatus::parse(status).unwrap();
    assert_eq!(status.container, "worker");
    assert_eq!(status.grace, 350);
    assert_eq!(status.drain_budget, 320);
    assert_eq!(status.longest_job, 300);
    assert_eq!(status.sidecar, "native");
    assert_eq!(status.kept, vec![]);
    assert_eq!(status.injected.len(), 6);
}

#[test]
fn a_redis_namespace_reaches_the_probe_and_a_bad_one_is_a_finding() {
    let mut pod = load("tests/data/objects/pod-rails-worker.json");
    pod["metadata"]["annotations"]["sidekiq-guard.io/redis-namespace"] = json!("shop");
    let (_, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    let args = mutated["spec"]["initContainers"][0]["args"]
        .as_array()
        .unwrap();
    assert_eq!(args.last().unwrap(), "--redis-namespace=shop");

    pod["metadata"]["annotations"]["sidekiq-guard.io/redis-namespace"] = json!("shop --x");
    let (review, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    let args = mutated["spec"]["initContainers"][0]["args"]
        .as_array()
        .unwrap();
    assert!(
        args.iter()
            .all(|a| !a.as_str().unwrap().contains("redis-namespace")),
        "{args:?}"
    );
    let bad = review
        .findings
        .iter()
        .find(|f| f.code == Code::AnnotationInvalid)
        .expect("SG010");
    assert!(
        bad.message.contains("sidekiq-guard.io/redis-namespace")
            && bad.message.contains("\"shop --x\""),
        "{}",
        bad.message
    );
}

#[test]
fn secrets_are_copied_as_references() {
    let pod = load("tests/data/objects/pod-rails-worker.json");
    let (_, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    let sidecar = &mutated["spec"]["initContainers"][0];
    assert_eq!(
        sidecar["env"][2],
        json!({"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "shop-redis", "key": "url"}}})
    );
    let text = sidecar.to_string();
    assert!(
        !text.contains("DATABASE_URL"),
        "only Redis settings go to the probe: {text}"
    );
}

/// The policy's pull secrets for the sidecar's image are added to the pod's, which serve all
/// its containers: whole where the pod names none, appended where it names others, not again
/// where it names them already.
#[test]
fn the_policys_pull_secrets_are_added_to_the_pods() {
    let policy =
        Policy::parse("sidecar: {imagePullSecrets: [mirror-pull, mirror-pull, corp-pull]}")
            .unwrap();
    let pod = load("tests/data/objects/pod-rails-worker.json");
    let pulls = |object: &Value| object["spec"]["imagePullSecrets"].clone();

    let (review, mutated) = mutate_and_apply(&pod, &policy, Mode::Native);
    assert!(review.ops.contains(&PatchOp::Add {
        path: "/spec/imagePullSecrets".into(),
        value: json!([{"name": "mirror-pull"}, {"name": "corp-pull"}]),
    }));
    assert_eq!(
        pulls(&mutated),
        json!([{"name": "mirror-pull"}, {"name": "corp-pull"}])
    );

    let mut own = pod.clone();
    own["spec"]["imagePullSecrets"] = json!([{"name": "app-pull"}, {"name": "corp-pull"}]);
    let (_, mutated) = mutate_and_apply(&own, &policy, Mode::Native);
    assert_eq!(
        pulls(&mutated),
        json!([{"name": "app-pull"}, {"name": "corp-pull"}, {"name": "mirror-pull"}])
    );

    // None by default; an empty name is refused.
    let (_, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    assert_eq!(pulls(&mutated), Value::Null);
    // Nor in a template, whose pods would then never get their ServiceAccount's: its pods get
    // them at admission.
    let deployment = load("manifests/examples/rails-worker.yaml");
    let (review, mutated) = mutate_and_apply(&deployment, &policy, Mode::Native);
    assert_eq!(review.outcome, Outcome::Mutated);
    assert_eq!(mutated.at("/spec/template/spec/imagePullSecrets"), None);
    for name in ["", "Mirror_Pull", " mirror-pull"] {
        let refused = Policy::parse(&format!("sidecar: {{imagePullSecrets: ['{name}']}}"))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("imagePullSecrets") && refused.contains("is not a Secret name"),
            "{refused}"
        );
    }
}

#[test]
fn fields_the_core_does_not_know_survive() {
    let mut pod = load("tests/data/objects/pod-rails-worker.json");
    pod["spec"]["resourceClaims"] = json!([{"name": "gpu", "resourceClaimTemplateName": "x"}]);
    pod["spec"]["containers"][0]["futureField"] = json!({"kept": true});
    let (_, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    assert_eq!(
        mutated["spec"]["resourceClaims"],
        pod["spec"]["resourceClaims"]
    );
    assert_eq!(
        mutated["spec"]["containers"][0]["futureField"],
        json!({"kept": true})
    );
}

#[test]
fn a_deployment_with_minus_t_60_and_a_ten_minute_job() {
    let deployment = load("manifests/examples/report-worker.yaml");
    let (review, mutated) = mutate_and_apply(&deployment, &Policy::default(), Mode::Native);
    let spec = &mutated["spec"]["template"]["spec"];
    assert_eq!(spec["terminationGracePeriodSeconds"], 685);
    assert_eq!(
        review.notes[0],
        "terminationGracePeriodSeconds raised from 120 to 685: 685s = quiet latency 20s + longest job 10m \
         (annotation sidekiq-guard.io/longest-job) + shutdown timeout 1m (command line -t 60) + exit allowance 5s"
    );
    assert_eq!(
        spec["initContainers"][0]["args"],
        json!([
            "--listen=[::]:7434",
            "--drain-budget=10m20s",
            "--mode=native"
        ])
    );
    // REDIS_URL references REDIS_PASSWORD, which must come along (as a reference).
    let env: Vec<&str> = spec["initContainers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        vec![
            "SIDEKIQ_GUARD_POD_NAME",
            "SIDEKIQ_GUARD_POD_NAMESPACE",
            "REDIS_PASSWORD",
            "REDIS_URL"
        ]
    );
    assert!(
        review
            .ops
            .iter()
            .all(|op| op.path().starts_with("/spec/template/"))
    );
}

#[test]
fn a_cronjob_is_patched_under_its_job_template() {
    let cronjob = load("manifests/examples/nightly-cronjob.yaml");
    let (review, mutated) = mutate_and_apply(&cronjob, &Policy::default(), Mode::Native);
    assert!(
        review
            .ops
            .iter()
            .all(|op| op.path().starts_with("/spec/jobTemplate/spec/template/")),
        "{:?}",
        review.ops
    );
    let template = &mutated["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(template["spec"]["terminationGracePeriodSeconds"], 350);
    // REDIS_PROVIDER names the variable that holds the URL: both are copied.
    let sidecar = &template["spec"]["initContainers"][0];
    assert_eq!(sidecar["env"][2]["name"], "REDIS_PROVIDER");
    assert_eq!(sidecar["env"][3]["name"], "REDISCLOUD_URL");
}

#[test]
fn a_classic_sidecar_is_never_put_into_a_job() {
    let cronjob = load("manifests/examples/nightly-cronjob.yaml");
    let policy = Policy::default();
    let review = review::mutate(&cronjob, &ctx(&policy, Mode::Classic));
    assert_eq!(
        review.outcome,
        Outcome::Blocked(Blocked::ClassicSidecarInJob)
    );
    assert_eq!(review.ops, vec![]);
    assert!(codes(&review).contains(&"SG016"));
}

#[test]
fn a_worker_whose_redis_is_configured_in_ruby_is_not_injected() {
    let pod = load("tests/data/objects/pod-redis-in-ruby.yaml");
    let policy = Policy::default();
    let review = review::mutate(&pod, &ctx(&policy, Mode::Native));
    // Probes reading redis://localhost would fail a healthy worker: nothing is injected.
    assert_eq!(review.outcome, Outcome::Blocked(Blocked::RedisUnknown));
    assert_eq!(review.ops, vec![]);
    let sg014: Vec<_> = review
        .findings
        .iter()
        .filter(|f| f.code == Code::RedisSettingsMissing)
        .collect();
    assert_eq!(sg014.len(), 1, "{:?}", review.findings);
    assert_eq!(sg014[0].severity, Severity::Error);
    assert_eq!(sg014[0].path, "spec.containers[0].env");
    assert_eq!(
        sg014[0].message,
        "container sidekiq sets no REDIS_URL and has no envFrom: Sidekiq's Redis is set in Ruby or is localhost, which the manifest cannot show; the probe sidecar is not injected"
    );
    // Set empty, as a Helm chart renders an unset value, it is no URL either: an injected probe
    // would refuse to start.
    let mut empty = pod.clone();
    empty["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "REDIS_URL"}));
    let review = review::mutate(&empty, &ctx(&policy, Mode::Native));
    assert_eq!(review.outcome, Outcome::Blocked(Blocked::RedisUnknown));
    assert_eq!(review.ops, vec![]);
    let sg014 = review
        .findings
        .iter()
        .find(|f| f.code == Code::RedisSettingsMissing);
    assert_eq!(
        sg014.map(|f| (f.message.as_str(), f.hint.as_str())),
        Some((
            "container sidekiq sets REDIS_URL to the empty string: Sidekiq then fails to start or takes its Redis from Ruby, which the manifest cannot show; the probe sidecar is not injected",
            "set REDIS_URL to the redis:// URL Sidekiq uses, even if Sidekiq is configured in Ruby"
        ))
    );
    // Setting REDIS_URL, even to what the initializer builds, makes it injectable.
    let mut fixed = pod.clone();
    fixed["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "REDIS_URL", "value": "redis://:$(REDIS_PASSWORD)@$(REDIS_HOST):$(REDIS_PORT)/0"}));
    let (review, mutated) = mutate_and_apply(&fixed, &policy, Mode::Native);
    assert_eq!(review.outcome, Outcome::Mutated);
    let env: Vec<&str> = mutated["spec"]["initContainers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for name in ["REDIS_URL", "REDIS_PASSWORD", "REDIS_HOST", "REDIS_PORT"] {
        assert!(env.contains(&name), "{name} in {env:?}");
    }
}

#[test]
fn the_sidecar_names_its_user_only_in_a_pod_that_runs_as_root() {
    let pod = load("tests/data/objects/pod-rails-worker.json");
    let sidecar_security = |pod: &Value| {
        let (_, mutated) = mutate_and_apply(pod, &Policy::default(), Mode::Native);
        mutated["spec"]["initContainers"][0]["securityContext"].clone()
    };
    // OpenShift's restricted-v2 refuses a pod naming a user outside the namespace's range.
    assert_eq!(sidecar_security(&pod).get("runAsUser"), None);
    let mut root = pod.clone();
    root["spec"]["securityContext"] = json!({"runAsUser": 0});
    let security = sidecar_security(&root);
    assert_eq!(
        (&security["runAsUser"], &security["runAsNonRoot"]),
        (&json!(65532), &json!(true))
    );
}

#[test]
fn an_inject_label_on_the_workload_alone_is_pointed_out() {
    let deployment = load("manifests/examples/rails-worker.yaml");
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let sg024 = |object: &Value| {
        review::validate(object, &ctx, Perspective::AsInjected)
            .findings
            .into_iter()
            .find(|f| f.code == Code::InjectLabelOnWorkloadOnly)
    };
    assert_eq!(sg024(&deployment), None);
    for (value, effect) in [
        (
            "true",
            "its pods are injected only in a namespace labelled sidekiq-guard.io/inject=enabled",
        ),
        (
            "false",
            "its pods are still injected in a namespace labelled sidekiq-guard.io/inject=enabled",
        ),
    ] {
        let mut labelled = deployment.clone();
        labelled["metadata"]["labels"]["sidekiq-guard.io/inject"] = json!(value);
        let finding = sg024(&labelled).expect("SG024");
        assert_eq!(finding.severity, Severity::Warning);
        assert_eq!(finding.path, "metadata.labels");
        assert_eq!(
            finding.message,
            format!(
                "the workload is labelled sidekiq-guard.io/inject={value} but its pod template is not: {effect}"
            )
        );
        assert_eq!(
            finding.hint,
            format!(
                "label the pod template too: spec.template.metadata.labels sidekiq-guard.io/inject: \"{value}\""
            )
        );
        // Labelled in the template too: nothing to point out.
        labelled["spec"]["template"]["metadata"]["labels"]["sidekiq-guard.io/inject"] =
            json!(value);
        assert_eq!(sg024(&labelled), None);
    }
}

#[test]
fn an_annotation_on_the_workload_alone_is_pointed_out() {
    let mut deployment = load("manifests/examples/rails-worker.yaml");
    deployment["metadata"]["annotations"] = json!({"sidekiq-guard.io/longest-job": "5m"});
    let policy = Policy::default();
    let review = review::validate(
        &deployment,
        &ctx(&policy, Mode::Native),
        Perspective::AsInjected,
    );
    let finding = review
        .findings
        .iter()
        .find(|f| f.code == Code::AnnotationOnWorkloadOnly)
        .expect("SG025");
    assert_eq!(finding.severity, Severity::Warning);
    assert_eq!(
        finding.path,
        "metadata.annotations.sidekiq-guard.io/longest-job"
    );
    assert_eq!(
        finding.message,
        "annotation sidekiq-guard.io/longest-job is on the workload's metadata, but sidekiq-guard reads it from the pod template, so it does not apply"
    );
    assert_eq!(
        finding.hint,
        "move it to spec.template.metadata.annotations"
    );
    // In the template too: nothing to point out.
    deployment["spec"]["template"]["metadata"]["annotations"]["sidekiq-guard.io/longest-job"] =
        json!("5m");
    let review = review::validate(
        &deployment,
        &ctx(&policy, Mode::Native),
        Perspective::AsInjected,
    );
    assert!(
        review
            .findings
            .iter()
            .all(|f| f.code != Code::AnnotationOnWorkloadOnly)
    );
}

#[test]
fn a_statefulset_reading_redis_from_env_from() {
    let statefulset = load("manifests/examples/mailer-statefulset.yaml");
    let (review, mutated) = mutate_and_apply(&statefulset, &Policy::default(), Mode::Classic);
    let spec = &mutated["spec"]["template"]["spec"];
    // Classic: the sidecar is the last regular container, and the grace covers --timeout=30.
    assert_eq!(spec["containers"][1]["name"], "sidekiq-guard-probe");
    assert!(spec["containers"][1].get("restartPolicy").is_none());
    assert_eq!(
        spec["containers"][1]["envFrom"],
        json!([{"secretRef": {"name": "mailer-env"}}])
    );
    assert_eq!(spec["terminationGracePeriodSeconds"], 20 + 90 + 30 + 5);
    assert_eq!(review.outcome, Outcome::Mutated);
}

#[test]
fn a_hand_written_prestop_is_kept_and_reported() {
    let deployment = load("manifests/examples/handwritten-prestop.yaml");
    let (review, mutated) = mutate_and_apply(&deployment, &Policy::default(), Mode::Native);
    let worker = &mutated["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        worker["lifecycle"]["preStop"],
        json!({"exec": {"command": ["/bin/sh", "-c", "kill -TSTP 1; sleep 60"]}})
    );
    assert_eq!(
        worker["livenessProbe"]["exec"]["command"],
        json!(["pgrep", "-f", "sidekiq"])
    );
    assert!(review.notes.contains(
        &"kept your preStop on container worker; sidekiq-guard did not add its own".to_owned()
    ));
    // Beside the user's own liveness, a startupProbe would only add a restart trigger.
    assert!(
        review.notes.contains(
            &"kept your livenessProbe on container worker; sidekiq-guard did not add its own, \
              nor a startupProbe to hold it off"
                .to_owned()
        ),
        "{:?}",
        review.notes
    );
    assert!(worker.get("startupProbe").is_none(), "{worker}");
    assert_eq!(
        worker["readinessProbe"]["httpGet"]["path"], "/readyz",
        "readiness is still sidekiq-guard's"
    );
    let fixed_sleep = review
        .findings
        .iter()
        .find(|f| f.code == Code::PreStopFixedSleep)
        .expect("SG004");
    // 60 s of sleep and -t 25 let jobs run 85 s; the example's jobs take 2m.
    assert_eq!(fixed_sleep.severity, Severity::Error);
    assert_eq!(
        fixed_sleep.path,
        "spec.template.spec.containers[0].lifecycle.preStop"
    );
    assert_eq!(
        fixed_sleep.message,
        "the preStop hook quiets Sidekiq and always sleeps 1m: with -t 25s, jobs running past \
         1m25s are interrupted, and the longest job takes 2m (annotation sidekiq-guard.io/longest-job)"
    );
    let status: InjectionStatus = InjectionStatus::parse(
        mutated["spec"]["template"]["metadata"]["annotations"]["sidekiq-guard.io/status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    use sidekiq_guard::status::Part;
    assert_eq!(status.kept, vec![Part::PreStop, Part::LivenessProbe]);
    assert_eq!(
        status.injected,
        vec![
            Part::Sidecar,
            Part::ReadinessProbe,
            Part::TerminationGracePeriodSeconds
        ]
    );
}

/// A hook the core cannot read still takes at least its sleeps before SIGTERM: the grace period
/// covers them, or the kubelet would cut the hook and kill Sidekiq 2 s after SIGTERM.
#[test]
fn an_unreadable_prestop_that_sleeps_gets_a_grace_period_past_its_sleep() {
    let mut deployment = worker(
        json!({"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c",
            "bundle exec rails runner 'Shutdown.prepare'; sleep 600"]}}}}),
        json!({}),
    );
    deployment["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("terminationGracePeriodSeconds");
    let (review, mutated) = mutate_and_apply(&deployment, &Policy::default(), Mode::Native);
    assert_eq!(
        mutated["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        600 + 25 + 5
    );
    let finding = review
        .findings
        .iter()
        .find(|f| f.code == Code::PreStopNotQuieting)
        .expect("SG003");
    assert_eq!(finding.severity, Severity::Warning);
    assert_eq!(
        finding.message,
        "cannot tell whether the preStop hook (exec sh -c bundle exec rails runner \
         'Shutdown.prepare'; sleep 600) quiets Sidekiq; it sleeps 10m, \
         which the grace period counts as the least the hook takes"
    );
}

#[test]
fn user_probes_and_a_long_grace_period_are_kept() {
    let pod = load("tests/data/objects/pod-user-probes.yaml");
    let (review, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    assert_eq!(mutated["spec"]["terminationGracePeriodSeconds"], 600);
    assert_eq!(
        review.notes[0],
        "kept terminationGracePeriodSeconds 600, at least the required 95s = quiet latency 20s + longest job 30s \
         (annotation sidekiq-guard.io/longest-job) + shutdown timeout 40s (command line -t 40) + exit allowance 5s"
    );
    // lifecycle exists (postStart): only preStop is added into it.
    assert!(review.ops.contains(&PatchOp::Add {
        path: "/spec/containers/0/lifecycle/preStop".into(),
        value: json!({"httpGet": {"path": "/drain", "port": 7434, "scheme": "HTTP"}}),
    }));
    assert_eq!(
        mutated["spec"]["containers"][0]["lifecycle"]["postStart"]["exec"]["command"][0],
        "touch"
    );
}

#[test]
fn the_probe_port_moves_past_ports_in_use_and_stays_there() {
    let mut pod = load("tests/data/objects/pod-user-probes.yaml");
    pod["spec"]["containers"][0]["ports"] = json!([{"containerPort": 7434}]);
    let (review, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    assert_eq!(
        mutated["spec"]["initContainers"][0]["ports"][0]["containerPort"],
        7435
    );
    let name = pod["spec"]["containers"][0]["name"].as_str().unwrap();
    assert!(
        review.notes.contains(&format!(
            "the probe sidecar listens on port 7435: port 7434 is used by container {name}"
        )),
        "{:?}",
        review.notes
    );
    assert_eq!(
        mutated["spec"]["containers"][0]["lifecycle"]["preStop"]["httpGet"]["port"],
        7435
    );
}

#[test]
fn the_users_own_livez_and_readyz_probes_at_other_ports_are_kept() {
    let mut pod = load("tests/data/objects/pod-user-probes.yaml");
    let sidekiq = &mut pod["spec"]["containers"][0];
    sidekiq["ports"] = json!([{"name": "metrics", "containerPort": 9394}]);
    let readiness = json!({"httpGet": {"path": "/readyz", "port": "metrics"}});
    let startup = json!({"httpGet": {"path": "/livez", "port": 9394}});
    sidekiq["readinessProbe"] = readiness.clone();
    sidekiq["startupProbe"] = startup.clone();
    let (review, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    let sidekiq = &mutated["spec"]["containers"][0];
    assert_eq!(sidekiq["readinessProbe"], readiness);
    assert_eq!(sidekiq["startupProbe"], startup);
    let status = InjectionStatus::of_pod(&mutated).unwrap();
    for part in [
        Part::StartupProbe,
        Part::ReadinessProbe,
        Part::LivenessProbe,
        Part::TerminationGracePeriodSeconds,
    ] {
        assert!(status.kept.contains(&part), "{part:?}: {status:?}");
    }
    assert!(
        review
            .notes
            .iter()
            .any(|note| note.contains("readinessProbe")),
        "{:?}",
        review.notes
    );
}

#[test]
fn probes_injected_at_a_port_since_taken_move_with_the_sidecar() {
    let pod = load("tests/data/objects/pod-rails-worker.json");
    let (_, mut injected) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    // The app now listens on the probe's port: the sidecar moves, and sidekiq-guard's own hook
    // and probes (at the port its status annotation records) follow it.
    injected["spec"]["containers"][0]["ports"] = json!([{"containerPort": 7434}]);
    let (_, moved) = mutate_and_apply(&injected, &Policy::default(), Mode::Native);
    let sidekiq = &moved["spec"]["containers"][0];
    for pointer in [
        "/lifecycle/preStop/httpGet/port",
        "/startupProbe/httpGet/port",
        "/readinessProbe/httpGet/port",
        "/livenessProbe/httpGet/port",
    ] {
        assert_eq!(sidekiq.at(pointer), Some(&json!(7435)), "{pointer}");
    }
    assert_eq!(InjectionStatus::of_pod(&moved).unwrap().probe_port, 7435);
}

#[test]
fn an_annotated_port_in_use_blocks_injection() {
    let pod = load("tests/data/objects/pod-port-conflict.yaml");
    let review = review::mutate(&pod, &ctx(&Policy::default(), Mode::Native));
    assert_eq!(
        review.outcome,
        Outcome::Blocked(Blocked::PortConflict {
            port: 9394,
            container: "exporter".into()
        })
    );
    assert_eq!(review.ops, vec![]);
    let conflict = review
        .findings
        .iter()
        .find(|f| f.code == Code::ProbePortConflict)
        .unwrap();
    assert_eq!(
        conflict.path,
        "metadata.annotations[\"sidekiq-guard.io/probe-port\"]"
    );
    // Not injected, so what the injection would have fixed is reported too.
    assert!(codes(&review).contains(&"SG002"));
}

#[test]
fn unreadable_annotations_fall_back_to_the_policy_and_say_so() {
    let pod = load("tests/data/objects/pod-bad-annotations.yaml");
    let (review, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    let invalid: Vec<_> = review
        .findings
        .iter()
        .filter(|f| f.code == Code::AnnotationInvalid)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        invalid,
        vec![
            "annotation sidekiq-guard.io/longest-job: cannot read \"five minutes\", expected a number of seconds \
             or a duration with units such as 90s, 15m or 1h30m; policy default longestJob applies instead",
            "annotation sidekiq-guard.io/probe-port: cannot read \"99999\", expected a port number from 1024 to 65535 (the sidecar runs as non-root, and cannot bind below 1024); \
             policy default probePort applies instead",
        ]
    );
    assert_eq!(
        mutated["spec"]["terminationGracePeriodSeconds"],
        20 + 60 + 30 + 5
    );
    assert!(
        !codes(&review).contains(&"SG008"),
        "the annotation exists, it is just unreadable"
    );

    // A long wrong value is shortened, so that what is accepted survives the API server's
    // 256-character warnings, whichever annotation it is.
    let mut long = pod.clone();
    let annotations = &mut long["metadata"]["annotations"];
    for key in [
        "sidekiq-guard.io/longest-job",
        "sidekiq-guard.io/shutdown-timeout",
        "sidekiq-guard.io/probe-port",
        "sidekiq-guard.io/container",
        "sidekiq-guard.io/redis-namespace",
    ] {
        annotations[key] = json!(format!("{} x", "x".repeat(300)));
    }
    let review = review::mutate(&long, &common::ctx(&Policy::default(), Mode::Native));
    let warnings: Vec<String> = review
        .findings
        .iter()
        .filter(|f| f.code == Code::AnnotationInvalid)
        .map(|f| {
            format!(
                "sidekiq-guard: {} {}: {}",
                f.code.id(),
                f.code.name(),
                f.message
            )
        })
        .collect();
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    for warning in &warnings {
        assert!(warning.chars().count() <= 256, "{warning}");
        assert!(
            warning.contains(&format!("cannot read \"{}\"…, expected ", "x".repeat(20))),
            "{warning}"
        );
    }
    assert!(
        warnings.iter().any(|w| w.ends_with("; no prefix is used")),
        "{warnings:#?}"
    );
}

#[test]
fn two_sidekiq_containers_are_not_guessed() {
    let pod = load("tests/data/objects/pod-two-sidekiqs.yaml");
    let review = review::mutate(&pod, &ctx(&Policy::default(), Mode::Native));
    assert_eq!(review.outcome, Outcome::Unresolved);
    assert_eq!(review.ops, vec![]);
    assert_eq!(codes(&review), vec!["SG011"]);
    assert_eq!(
        review.findings[0].message,
        "containers default, critical all run Sidekiq; sidekiq-guard does not guess which one to protect"
    );
    let mut annotated = pod.clone();
    annotated["metadata"]["annotations"] = json!({"sidekiq-guard.io/container": "critical"});
    let (review, mutated) = mutate_and_apply(&annotated, &Policy::default(), Mode::Native);
    assert_eq!(review.outcome, Outcome::Mutated);
    assert!(mutated["spec"]["containers"][1]["lifecycle"].is_object());
    assert!(mutated["spec"]["containers"][0].get("lifecycle").is_none());
    // The other one is left unprotected, and said to be, before and after injection.
    let unprotected = "container default also runs Sidekiq, but sidekiq-guard protects only container critical (annotation sidekiq-guard.io/container): the others are not quieted, get SIGTERM as soon as the pod stops, and the grace period does not count their shutdown timeout";
    for object in [&annotated, &mutated] {
        let found = findings_of(
            object,
            &ctx(&Policy::default(), Mode::Native),
            Code::SidekiqContainerUnprotected,
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(
            (found[0].severity, found[0].message.as_str()),
            (Severity::Warning, unprotected)
        );
        assert_eq!(found[0].path, "spec.containers");
    }
    assert!(
        review
            .findings
            .iter()
            .any(|f| f.code == Code::SidekiqContainerUnprotected)
    );
    // Annotating the only Sidekiq container says nothing more.
    let mut single = annotated.clone();
    single["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    assert_eq!(
        findings_of(
            &single,
            &ctx(&Policy::default(), Mode::Native),
            Code::SidekiqContainerUnprotected
        ),
        vec![]
    );
}

#[test]
fn non_sidekiq_and_opted_out_pods_are_left_alone() {
    let web = load("tests/data/objects/pod-web.json");
    let review = review::mutate(&web, &ctx(&Policy::default(), Mode::Native));
    assert_eq!(review.outcome, Outcome::Skipped(Skip::NoSidekiq));
    assert_eq!(
        (review.ops, review.notes, review.findings),
        (vec![], vec![], vec![])
    );

    let mut pod = load("tests/data/objects/pod-rails-worker.json");
    pod["metadata"]["labels"]["sidekiq-guard.io/inject"] = json!("false");
    let review = review::mutate(&pod, &ctx(&Policy::default(), Mode::Native));
    assert_eq!(review.outcome, Outcome::Skipped(Skip::OptedOut));
}

#[test]
fn an_explicit_opt_in_without_sidekiq_is_reported() {
    let mut pod = load("tests/data/objects/pod-web.json");
    pod["metadata"]["labels"]["sidekiq-guard.io/inject"] = json!("true");
    pod["spec"]["containers"][0]["command"] = json!(["/app/bin/start-worker"]);
    let review = review::mutate(&pod, &ctx(&Policy::default(), Mode::Native));
    assert_eq!(review.outcome, Outcome::Unresolved);
    assert_eq!(review.ops, vec![]);
    assert_eq!(codes(&review), vec!["SG012"]);
    assert_eq!(review.findings[0].severity, Severity::Warning);
    assert_eq!(
        review.findings[0].message,
        "labelled sidekiq-guard.io/inject=true, but no container runs sidekiq or sidekiqswarm as far as the manifest shows (containers: web)"
    );
}

#[test]
fn switching_the_sidecar_mode_moves_the_sidecar() {
    let pod = load("tests/data/objects/pod-rails-worker.json");
    let (_, classic) = mutate_and_apply(&pod, &Policy::default(), Mode::Classic);
    assert_eq!(
        classic["spec"]["containers"][1]["name"],
        "sidekiq-guard-probe"
    );
    let (review, native) = mutate_and_apply(&classic, &Policy::default(), Mode::Native);
    assert_eq!(
        review.ops.last(),
        Some(&PatchOp::Remove {
            path: "/spec/containers/1".into()
        })
    );
    assert_eq!(native["spec"]["containers"].as_array().unwrap().len(), 1);
    assert_eq!(
        native["spec"]["initContainers"][0]["name"],
        "sidekiq-guard-probe"
    );
    assert_eq!(
        native["spec"]["initContainers"][0]["args"][2],
        "--mode=native"
    );
    assert!(review.notes.contains(&"moved container sidekiq-guard-probe from containers to initContainers (a native sidecar) with the current definition (it is managed by sidekiq-guard; customise it through the policy)".to_owned()), "{:?}", review.notes);

    // Back to classic: the sidecar was alone in initContainers, so the list goes with it, and
    // the pod is the one classic injection gives.
    let (review, back) = mutate_and_apply(&native, &Policy::default(), Mode::Classic);
    assert_eq!(
        review.ops.last(),
        Some(&PatchOp::Remove {
            path: "/spec/initContainers".into()
        })
    );
    assert_eq!(back, classic);
    // Beside an init container of the user's, only the sidecar goes.
    let mut shared = native.clone();
    let migrate = json!({"name": "migrate", "image": "app", "command": ["rake", "db:migrate"]});
    shared["spec"]["initContainers"]
        .as_array_mut()
        .unwrap()
        .insert(0, migrate.clone());
    let (review, back) = mutate_and_apply(&shared, &Policy::default(), Mode::Classic);
    assert_eq!(
        review.ops.last(),
        Some(&PatchOp::Remove {
            path: "/spec/initContainers/1".into()
        })
    );
    assert_eq!(back["spec"]["initContainers"], json!([migrate]));
}

#[test]
fn a_users_container_bearing_the_probes_name_is_never_dropped_silently() {
    let mut pod = load("tests/data/objects/pod-rails-worker.json");
    pod["spec"]["containers"].as_array_mut().unwrap().push(
        json!({"name": "sidekiq-guard-probe", "image": "mycorp/other:1", "command": ["my-own-thing"]}),
    );
    let (review, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    assert_eq!(mutated["spec"]["containers"].as_array().unwrap().len(), 1);
    assert!(
        review.notes.iter().any(|n| n
            .starts_with("moved container sidekiq-guard-probe from containers to initContainers")),
        "{:?}",
        review.notes
    );
}

/// A pod injected by an earlier version listens on `0.0.0.0`: the kubelet reaches it only at an
/// IPv4 primary address, so it is stale in a pod of any other (or unknown) address, and the
/// webhook replaces it in a pod it admits, saying what changed.
#[test]
fn a_sidecar_listening_on_ipv4_only_is_stale_unless_the_pod_is_ipv4() {
    let policy = Policy::default();
    let (_, mut pod) = mutate_and_apply(
        &load("tests/data/objects/pod-rails-worker.json"),
        &policy,
        Mode::Native,
    );
    pod["spec"]["initContainers"][0]["args"][0] = json!("--listen=0.0.0.0:7434");
    let ctx = ctx(&policy, Mode::Native);
    let stale = |pod_ip: Option<&str>| {
        let mut pod = pod.clone();
        if let Some(ip) = pod_ip {
            pod["status"] = json!({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]});
        }
        findings_of(&pod, &ctx, Code::ProbeSidecarStale)
            .into_iter()
            .map(|f| {
                (
                    f.severity,
                    f.message,
                    f.hint.split(':').next().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(stale(Some("10.42.1.17")), vec![]);
    let error = |remedy: &str| {
        vec![(
            Severity::Error,
            "container worker and its sidekiq-guard-probe container do not match: --listen=0.0.0.0:7434 (needs [::]:7434)".to_owned(),
            remedy.to_owned(),
        )]
    };
    // A running pod is created again; a pod manifest (no status) is injected again.
    assert_eq!(
        stale(Some("fd00:10:42::17")),
        error(
            "delete the pod for its controller to create it again, which the webhook injects anew (kubectl rollout restart for a Deployment, StatefulSet or DaemonSet)"
        )
    );
    assert_eq!(
        stale(None),
        error("inject again (kubectl sidekiq inject replaces the container)")
    );

    let (review, replaced) = mutate_and_apply(&pod, &policy, Mode::Native);
    assert_eq!(
        replaced["spec"]["initContainers"][0]["args"][0],
        "--listen=[::]:7434"
    );
    assert!(
        review.notes.contains(&"replaced container sidekiq-guard-probe with the current definition (it is managed by sidekiq-guard; customise it through the policy): --listen=0.0.0.0:7434 (needs [::]:7434)".to_owned()),
        "{:?}",
        review.notes
    );
}

#[test]
fn a_changed_longest_job_updates_grace_budget_and_status() {
    let pod = load("tests/data/objects/pod-rails-worker.json");
    let (_, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    let mut edited = mutated.clone();
    edited["metadata"]["annotations"]["sidekiq-guard.io/longest-job"] = json!("15m");
    let (review, again) = mutate_and_apply(&edited, &Policy::default(), Mode::Native);
    let paths: Vec<&str> = review.ops.iter().map(PatchOp::path).collect();
    assert_eq!(
        paths,
        vec![
            "/spec/terminationGracePeriodSeconds",
            "/spec/initContainers/0",
            "/metadata/annotations/sidekiq-guard.io~1status",
        ]
    );
    assert_eq!(
        again["spec"]["terminationGracePeriodSeconds"],
        20 + 900 + 25 + 5
    );
    assert_eq!(
        again["spec"]["initContainers"][0]["args"][1],
        "--drain-budget=15m20s"
    );
    assert!(
        review
            .notes
            .iter()
            .any(|n| n.starts_with("replaced container sidekiq-guard-probe"))
    );
}

/// A grace period sidekiq-guard set follows the settings down as well as up; one the user set
/// above the required value stays theirs.
#[test]
fn a_lowered_longest_job_lowers_the_grace_sidekiq_guard_set() {
    let pod = load("tests/data/objects/pod-rails-worker.json");
    let (_, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    assert_eq!(mutated["spec"]["terminationGracePeriodSeconds"], 350);
    let mut edited = mutated.clone();
    edited["metadata"]["annotations"]["sidekiq-guard.io/longest-job"] = json!("1m");
    let (review, again) = mutate_and_apply(&edited, &Policy::default(), Mode::Native);
    assert_eq!(
        again["spec"]["terminationGracePeriodSeconds"],
        20 + 60 + 25 + 5
    );
    let status = InjectionStatus::parse(
        again["metadata"]["annotations"]["sidekiq-guard.io/status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status.grace, 110);
    assert!(status.kept.is_empty(), "{:?}", status.kept);
    assert!(
        review.notes[0]
            .starts_with("terminationGracePeriodSeconds lowered from 350 to 110: 110s = "),
        "{:?}",
        review.notes
    );

    // The user's own longer grace period is kept.
    let mut users = mutated;
    users["spec"]["terminationGracePeriodSeconds"] = json!(600);
    users["metadata"]["annotations"]["sidekiq-guard.io/longest-job"] = json!("1m");
    let (_, kept) = mutate_and_apply(&users, &Policy::default(), Mode::Native);
    assert_eq!(kept["spec"]["terminationGracePeriodSeconds"], 600);

    // So is one the user wrote equal to the required value: it is theirs, not lowered later.
    let mut exact = pod.clone();
    exact["spec"]["terminationGracePeriodSeconds"] = json!(350);
    let (_, injected) = mutate_and_apply(&exact, &Policy::default(), Mode::Native);
    let status = |object: &Value| {
        InjectionStatus::parse(
            object["metadata"]["annotations"]["sidekiq-guard.io/status"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        status(&injected).kept,
        vec![Part::TerminationGracePeriodSeconds]
    );
    let mut lowered = injected;
    lowered["metadata"]["annotations"]["sidekiq-guard.io/longest-job"] = json!("1m");
    let (_, again) = mutate_and_apply(&lowered, &Policy::default(), Mode::Native);
    assert_eq!(again["spec"]["terminationGracePeriodSeconds"], 350);
}

#[test]
fn templates_without_metadata_or_annotations_get_them() {
    let mut deployment = load("manifests/examples/rails-worker.yaml");
    deployment["spec"]["template"]
        .as_object_mut()
        .unwrap()
        .remove("metadata");
    let (review, mutated) = mutate_and_apply(&deployment, &Policy::default(), Mode::Native);
    assert!(
        review
            .ops
            .iter()
            .any(|op| op.path() == "/spec/template/metadata")
    );
    assert!(
        mutated["spec"]["template"]["metadata"]["annotations"]["sidekiq-guard.io/status"]
            .is_string()
    );

    let mut pod = load("tests/data/objects/pod-user-probes.yaml");
    pod["metadata"]["annotations"] = Value::Null;
    let (review, _) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    assert!(
        review
            .ops
            .iter()
            .any(|op| op.path() == "/metadata/annotations")
    );
}

#[test]
fn validation_as_written_and_as_injected() {
    let deployment = load("manifests/examples/rails-worker.yaml");
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let as_written = review::validate(&deployment, &ctx, Perspective::AsWritten);
    assert_eq!(as_written.ops, vec![]);
    assert_eq!(
        codes(&as_written),
        vec!["SG013", "SG008", "SG001", "SG002", "SG005", "SG006"]
    );
    let grace = &as_written.findings[2];
    assert_eq!(
        grace.path,
        "spec.template.spec.terminationGracePeriodSeconds"
    );
    assert_eq!(
        grace.message,
        "terminationGracePeriodSeconds is 30 (Kubernetes default); jobs need 110s = quiet latency 20s + longest job 1m \
         (policy default longestJob) + shutdown timeout 25s (policy default shutdownTimeout) + exit allowance 5s"
    );
    assert_eq!(
        grace.hint,
        "set terminationGracePeriodSeconds: 110, or let the sidekiq-guard webhook set it"
    );
    let as_injected = review::validate(&deployment, &ctx, Perspective::AsInjected);
    assert_eq!(codes(&as_injected), vec!["SG013", "SG008"]);
}

#[test]
fn a_grace_period_above_the_maximum_is_a_finding_not_a_cap() {
    let policy = Policy::parse("maxGracePeriod: 5m").unwrap();
    let deployment = load("manifests/examples/report-worker.yaml");
    let (review, mutated) = mutate_and_apply(&deployment, &policy, Mode::Native);
    assert_eq!(
        mutated["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        685
    );
    let above = review
        .findings
        .iter()
        .find(|f| f.code == Code::GraceAboveMaximum)
        .unwrap();
    assert_eq!(above.severity, Severity::Error);
    assert!(
        above
            .message
            .starts_with("the required grace period exceeds the policy maximum 5m: 685s = ")
    );
}

#[test]
fn denial_under_deny_enforcement_names_every_error() {
    let policy = Policy::parse("enforcement: deny\nmaxGracePeriod: 5m").unwrap();
    let deployment = load("manifests/examples/report-worker.yaml");
    let ctx = ctx(&policy, Mode::Native);
    let review = review::validate(&deployment, &ctx, Perspective::AsInjected);
    let subject = review::subject(&deployment, None);
    let decision = review::decide(&review, policy.enforcement, true, &subject);
    assert!(!decision.allowed);
    assert_eq!(
        decision.message.as_deref().unwrap(),
        "sidekiq-guard denied Deployment shop/report-worker: SG009 grace-above-maximum: the required grace period \
         exceeds the policy maximum 5m: 685s = quiet latency 20s + longest job 10m (annotation sidekiq-guard.io/longest-job) \
         + shutdown timeout 1m (command line -t 60) + exit allowance 5s (spec.template.spec.terminationGracePeriodSeconds)"
    );
    let mutation = review::mutate(&deployment, &ctx);
    let decision = review::decide(&mutation, policy.enforcement, false, &subject);
    assert!(decision.allowed, "mutation never denies");
    assert!(
        decision
            .warnings
            .iter()
            .all(|w| w.starts_with("sidekiq-guard: ") && w.chars().count() <= 256)
    );
}

/// A Deployment of one Sidekiq container, declaring its longest job, with `container` merged
/// into the container and `annotations` into the pod template's.
fn worker(container: Value, annotations: Value) -> Value {
    let mut deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": "shop"},
        "spec": {"template": {
            // Its pods are injected: the probe the container calls is added to them.
            "metadata": {
                "annotations": {"sidekiq-guard.io/longest-job": "2m"},
                "labels": {"sidekiq-guard.io/inject": "true"},
            },
            "spec": {
                "terminationGracePeriodSeconds": 600,
                "containers": [{
                    "name": "worker",
                    "image": "shop:1",
                    "command": ["bundle", "exec", "sidekiq", "-t", "25"],
                    "env": [{"name": "REDIS_URL", "value": "redis://redis:6379/0"}],
                    "livenessProbe": {"httpGet": {"path": "/livez", "port": 7434}},
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": 7434}},
                    "lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": 7434}}},
                }],
            },
        }},
    });
    let spec = &mut deployment["spec"]["template"]["spec"]["containers"][0];
    for (key, value) in container.as_object().expect("container fields") {
        spec[key] = value.clone();
    }
    let template = &mut deployment["spec"]["template"]["metadata"]["annotations"];
    for (key, value) in annotations.as_object().expect("annotations") {
        template[key] = value.clone();
    }
    deployment
}

/// Each defect of a hand-written worker gives exactly its finding, with a message that says
/// what goes wrong.
#[rstest::rstest]
#[case::a_prestop_that_only_sleeps(
    json!({"lifecycle": {"preStop": {"exec": {"command": ["sleep", "30"]}}}}), json!({}),
    Code::PreStopNotQuieting, Severity::Error, "spec.template.spec.containers[0].lifecycle.preStop",
    "the preStop hook only sleeps 30s: it does not quiet Sidekiq, which keeps fetching new jobs until SIGTERM")]
#[case::a_prestop_that_quiets_and_returns(
    json!({"lifecycle": {"preStop": {"exec": {"command": ["kill", "-TSTP", "1"]}}}}), json!({}),
    Code::PreStopDoesNotWait, Severity::Error, "spec.template.spec.containers[0].lifecycle.preStop",
    "the preStop hook quiets Sidekiq and returns at once: SIGTERM follows immediately, and jobs still running 25s later are interrupted")]
#[case::a_prestop_that_quiets_and_sleeps_forever(
    json!({"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; sleep infinity"]}}}}), json!({}),
    Code::PreStopFixedSleep, Severity::Error, "spec.template.spec.containers[0].lifecycle.preStop",
    "the preStop hook quiets Sidekiq, then sleeps forever: it ends only when the grace period runs out, and SIGTERM then comes 2 s before SIGKILL, not the 25s Sidekiq needs to push unfinished jobs back to their queues")]
// Quieted at once by the local signal, jobs run for the sleep and -t 25 more: 94 + 25 falls a
// second short of the 2m job, 95 + 25 reaches it.
#[case::a_prestop_that_quiets_and_sleeps_too_short(
    json!({"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; sleep 94"]}}}}), json!({}),
    Code::PreStopFixedSleep, Severity::Error, "spec.template.spec.containers[0].lifecycle.preStop",
    "the preStop hook quiets Sidekiq and always sleeps 1m34s: with -t 25s, jobs running past 1m59s are interrupted, and the longest job takes 2m (annotation sidekiq-guard.io/longest-job)")]
#[case::a_prestop_that_quiets_and_sleeps_long_enough(
    json!({"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; sleep 95"]}}}}), json!({}),
    Code::PreStopFixedSleep, Severity::Warning, "spec.template.spec.containers[0].lifecycle.preStop",
    "the preStop hook quiets Sidekiq, then always sleeps 1m35s, however soon jobs finish")]
#[case::a_prestop_that_only_sleeps_forever(
    json!({"lifecycle": {"preStop": {"exec": {"command": ["sleep", "infinity"]}}}}), json!({}),
    Code::PreStopNotQuieting, Severity::Error, "spec.template.spec.containers[0].lifecycle.preStop",
    "the preStop hook sleeps forever without quieting Sidekiq: it keeps fetching jobs until the grace period runs out, and SIGTERM then comes 2 s before SIGKILL, too late to push unfinished jobs back to their queues")]
#[case::a_prestop_that_sends_usr1(
    json!({"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "kill -USR1 1"]}}}}), json!({}),
    Code::PreStopNotQuieting, Severity::Error, "spec.template.spec.containers[0].lifecycle.preStop",
    "the preStop hook sends SIGUSR1: Sidekiq 6+ does not handle it (it quieted Sidekiq 5): Sidekiq dies at once, and the jobs it runs are lost")]
#[case::a_prestop_that_sends_term(
    json!({"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "kill -TERM 1"]}}}}), json!({}),
    Code::PreStopDoesNotWait, Severity::Error, "spec.template.spec.containers[0].lifecycle.preStop",
    "the preStop hook sends Sidekiq SIGTERM itself and returns: shutdown starts at once, as without a hook, and jobs still running 25s later are interrupted")]
#[case::a_prestop_that_runs_sidekiqctl(
    json!({"lifecycle": {"preStop": {"exec": {"command": ["bundle", "exec", "sidekiqctl", "quiet"]}}}}), json!({}),
    Code::PreStopNotQuieting, Severity::Error, "spec.template.spec.containers[0].lifecycle.preStop",
    "the preStop hook runs sidekiqctl: Sidekiq 6.0 removed sidekiqctl, so it quiets nothing")]
#[case::sidekiq_in_a_pipeline(
    json!({"command": ["sh", "-c", "bundle exec sidekiq -t 25 2>&1 | tee -a log/sidekiq.log"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq in a pipeline or the background: the shell stays PID 1 and keeps SIGTERM, so Sidekiq never gets its 25s to requeue jobs")]
#[case::sidekiq_in_the_background(
    json!({"command": ["sh", "-c", "bundle exec sidekiq -t 25 & wait"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq in a pipeline or the background: the shell stays PID 1 and keeps SIGTERM, so Sidekiq never gets its 25s to requeue jobs")]
#[case::sidekiq_followed_by_more_of_the_script(
    json!({"command": ["sh", "-c", "bundle exec rake db:migrate && bundle exec sidekiq -t 25; echo sidekiq exited"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq without exec, as a child: the shell stays PID 1 and keeps SIGTERM, so Sidekiq never gets its 25s to requeue jobs")]
#[case::sidekiq_piped_under_bundled_shell_options(
    json!({"command": ["bash", "-euo", "pipefail", "-c", "bundle exec sidekiq -t 25 2>&1 | tee /app/log/sidekiq.log"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq in a pipeline or the background: the shell stays PID 1 and keeps SIGTERM, so Sidekiq never gets its 25s to requeue jobs")]
#[case::sidekiq_with_a_redirection_under_bash(
    json!({"command": ["bash", "-c", "bundle exec sidekiq -t 25 2>&1"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq without exec, as a child: the shell stays PID 1 and keeps SIGTERM, so Sidekiq never gets its 25s to requeue jobs")]
#[case::sidekiq_last_without_exec_under_sh(
    json!({"command": ["sh", "-c", "bundle exec sidekiq -t 25"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq without exec: sh, if dash (as on Debian), stays PID 1 and keeps SIGTERM, so Sidekiq never gets its 25s to requeue jobs")]
#[case::redis_set_on_the_command_line(
    json!({"command": ["sh", "-c", "REDIS_URL=$QUEUE_REDIS_URL exec bundle exec sidekiq -t 25"]}), json!({}),
    Code::RedisSetInCommand, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker sets REDIS_URL on its command line, which the probe sidecar does not see: it reads Redis as the container's env says, and may watch and quiet another Redis than Sidekiq's")]
#[case::redis_set_through_env(
    json!({"command": ["env", "REDIS_PROVIDER=QUEUE_URL", "bundle", "exec", "sidekiq", "-t", "25"]}), json!({}),
    Code::RedisSetInCommand, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker sets REDIS_PROVIDER on its command line, which the probe sidecar does not see: it reads Redis as the container's env says, and may watch and quiet another Redis than Sidekiq's")]
#[case::redis_exported_by_the_script(
    json!({"command": ["bash", "-c", "export REDIS_URL=redis://queue:6379/0\nexec bundle exec sidekiq -t 25"]}), json!({}),
    Code::RedisSetInCommand, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker sets REDIS_URL on its command line, which the probe sidecar does not see: it reads Redis as the container's env says, and may watch and quiet another Redis than Sidekiq's")]
// dumb-init passes SIGTERM to the whole group, but the shell dies of it, and dumb-init exits
// once its child has: the container ends, and the kernel kills what is left in it.
#[case::a_pipeline_under_dumb_init(
    json!({"command": ["dumb-init", "sh", "-c", "bundle exec sidekiq -t 25 | tee log"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq through a shell under dumb-init: SIGTERM kills the shell, and dumb-init and the container end with it, so Sidekiq never gets its 25s to requeue jobs")]
#[case::dash_under_tini_g(
    json!({"command": ["tini", "-g", "--", "sh", "-c", "bundle exec sidekiq -t 25"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq through a shell under tini: SIGTERM kills the shell, and tini and the container end with it, so Sidekiq never gets its 25s to requeue jobs")]
// tini without -g signals the shell alone, which dies of it all the same.
#[case::a_pipeline_under_tini_without_g(
    json!({"command": ["tini", "--", "sh", "-c", "bundle exec sidekiq -t 25 | tee log"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq through a shell under tini: SIGTERM kills the shell, and tini and the container end with it, so Sidekiq never gets its 25s to requeue jobs")]
// The trapped SIGTERM interrupts `wait $P`: the trap passes it on, and the script ends.
#[case::a_trap_then_a_single_wait(
    json!({"command": ["sh", "-c", "trap 'kill -TERM $P' TERM; bundle exec sidekiq -t 25 & P=$!; wait $P"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq in the background, waited for only once: a trapped SIGTERM ends the wait, then the script and the container, so Sidekiq never gets its 25s to requeue jobs")]
// A trap runs only once the foreground command has ended: it cannot pass SIGTERM on to it.
#[case::a_trap_over_a_foreground_sidekiq(
    json!({"command": ["sh", "-c", "trap 'kill -TERM 0' TERM; bundle exec sidekiq -t 25"]}), json!({}),
    Code::SidekiqNotSignalled, Severity::Warning, "spec.template.spec.containers[0].command",
    "container worker runs Sidekiq under a shell that traps SIGTERM and does not pass it on, so Sidekiq never gets its 25s to requeue jobs")]
#[case::a_config_file_and_a_longer_timeout_in_the_env(
    json!({
        "command": ["bundle", "exec", "sidekiq", "-C", "config/sidekiq.yml"],
        "env": [
            {"name": "REDIS_URL", "value": "redis://redis:6379/0"},
            {"name": "SIDEKIQ_TIMEOUT", "value": "300"},
        ],
    }),
    json!({}),
    Code::TimeoutInConfigFile, Severity::Warning, "spec.template.spec.containers[0].command",
    "a timeout set in config/sidekiq.yml (-C) cannot be seen from the manifest, and the container's env sets SIDEKIQ_TIMEOUT=300, which a sidekiq.yml commonly reads; assuming 25s (policy default shutdownTimeout)")]
#[case::a_redis_password_beside_a_url_without_one(
    json!({"env": [
        {"name": "REDIS_URL", "value": "redis://shop-redis-master:6379"},
        {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "shop-redis", "key": "password"}}},
    ]}),
    json!({}),
    Code::RedisPasswordBesideUrl, Severity::Warning, "spec.template.spec.containers[0].env",
    "container worker sets REDIS_PASSWORD beside a REDIS_URL without credentials, which is all Sidekiq reads: a password passed in Ruby never reaches the probe, which Redis then refuses")]
#[case::a_redis_url_that_references_a_later_variable(
    json!({"env": [
        {"name": "REDIS_URL", "value": "redis://:$(REDIS_PASSWORD)@redis:6379/0"},
        {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "password"}}},
    ]}),
    json!({}),
    Code::EnvReferenceOrder, Severity::Error, "spec.template.spec.containers[0].env",
    "container worker: REDIS_URL uses $(REDIS_PASSWORD), which env defines only after it: Kubernetes expands a reference only to a variable defined before it, so Sidekiq gets the text $(REDIS_PASSWORD)")]
#[case::a_flag_sidekiq_rejects(
    json!({"command": ["bundle", "exec", "sidekiq", "-t", "25", "-c", "many"]}), json!({}),
    Code::SidekiqFlagInvalid, Severity::Warning, "spec.template.spec.containers[0].command",
    "Sidekiq flag -c many: expected a positive whole number of threads")]
#[case::a_pid_file_sidekiq_no_longer_writes(
    json!({"command": ["bundle", "exec", "sidekiq", "-t", "25", "-P", "tmp/pids/sidekiq.pid"]}), json!({}),
    Code::SidekiqFlagInvalid, Severity::Warning, "spec.template.spec.containers[0].command",
    "Sidekiq flag -P tmp/pids/sidekiq.pid: removed in Sidekiq 6.0, which writes no pid file: a preStop that reads it finds no process to signal")]
#[case::a_timeout_from_a_config_map(
    json!({
        "command": ["sh", "-c", "exec bundle exec sidekiq -t $SIDEKIQ_TIMEOUT -c $(THREADS)"],
        "env": [
            {"name": "REDIS_URL", "value": "redis://redis:6379/0"},
            {"name": "SIDEKIQ_TIMEOUT", "valueFrom": {"configMapKeyRef": {"name": "sidekiq", "key": "timeout"}}},
            {"name": "THREADS", "valueFrom": {"configMapKeyRef": {"name": "sidekiq", "key": "threads"}}},
        ],
    }),
    json!({}),
    Code::TimeoutSetAtRunTime, Severity::Warning, "spec.template.spec.containers[0].command",
    "Sidekiq's -t $SIDEKIQ_TIMEOUT is set at run time (a ConfigMap), which the manifest does not show; assuming 25s (policy default shutdownTimeout)")]
#[case::a_timeout_from_a_secret_in_exec_form(
    // Kubernetes expands $(NAME) of a variable the container defines, whatever its source.
    json!({
        "command": ["bundle", "exec", "sidekiq", "-t", "$(SIDEKIQ_TIMEOUT)"],
        "env": [
            {"name": "REDIS_URL", "value": "redis://redis:6379/0"},
            {"name": "SIDEKIQ_TIMEOUT", "valueFrom": {"secretKeyRef": {"name": "sidekiq", "key": "timeout"}}},
        ],
    }),
    json!({}),
    Code::TimeoutSetAtRunTime, Severity::Warning, "spec.template.spec.containers[0].command",
    "Sidekiq's -t $(SIDEKIQ_TIMEOUT) is set at run time (a Secret), which the manifest does not show; assuming 25s (policy default shutdownTimeout)")]
#[case::a_shell_variable_without_a_shell(
    // Nothing expands $T outside a shell: Sidekiq gets "$T" and refuses to start.
    json!({"command": ["bundle", "exec", "sidekiq", "-t", "$T"]}),
    json!({}),
    Code::SidekiqFlagInvalid, Severity::Warning, "spec.template.spec.containers[0].command",
    "Sidekiq flag -t $T: expected a whole number of seconds")]
#[case::an_annotation_that_disagrees_with_the_command_line(
    json!({}), json!({"sidekiq-guard.io/shutdown-timeout": "40"}),
    Code::TimeoutConflict, Severity::Warning,
    "spec.template.metadata.annotations[\"sidekiq-guard.io/shutdown-timeout\"]",
    "annotation sidekiq-guard.io/shutdown-timeout says 40s but the command line says -t 25; Sidekiq uses -t, and so does sidekiq-guard")]
#[case::a_misspelt_annotation(
    json!({}), json!({"sidekiq-guard.io/longest_job": "10m"}),
    Code::AnnotationUnknown, Severity::Warning,
    "spec.template.metadata.annotations[\"sidekiq-guard.io/longest_job\"]",
    "annotation sidekiq-guard.io/longest_job is not one sidekiq-guard reads, so it does nothing")]
#[case::the_inject_label_written_as_an_annotation(
    json!({}), json!({"sidekiq-guard.io/inject": "false"}),
    Code::AnnotationUnknown, Severity::Warning,
    "spec.template.metadata.annotations[\"sidekiq-guard.io/inject\"]",
    "sidekiq-guard.io/inject opts in or out as a label; as an annotation it does nothing")]
#[case::an_unreadable_timeout_annotation_beside_the_command_line(
    json!({}), json!({"sidekiq-guard.io/shutdown-timeout": "abc"}),
    Code::AnnotationInvalid, Severity::Error,
    "spec.template.metadata.annotations[\"sidekiq-guard.io/shutdown-timeout\"]",
    "annotation sidekiq-guard.io/shutdown-timeout: cannot read \"abc\", expected a number of seconds or a duration with units such as 90s, 15m or 1h30m; command line -t 25 applies instead")]
#[case::a_script_that_cannot_be_parsed(
    // Only the annotation tells an unreadable script runs Sidekiq.
    json!({"command": ["sh", "-c", "bundle exec sidekiq -t 25 'unterminated"]}),
    json!({"sidekiq-guard.io/container": "worker", "sidekiq-guard.io/shutdown-timeout": "25"}),
    Code::CommandUnreadable, Severity::Warning, "spec.template.spec.containers[0].command",
    "cannot read the shell script of container worker: unterminated single quote; its Sidekiq flags are unknown")]
fn each_defect_gives_its_finding(
    #[case] container: Value,
    #[case] annotations: Value,
    #[case] code: Code,
    #[case] severity: Severity,
    #[case] path: &str,
    #[case] message: &str,
) {
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let clean = review::validate(&worker(json!({}), json!({})), &ctx, Perspective::AsWritten);
    assert_eq!(codes(&clean), Vec::<&str>::new(), "{:#?}", clean.findings);
    let review = review::validate(
        &worker(container, annotations),
        &ctx,
        Perspective::AsWritten,
    );
    assert_eq!(codes(&review), vec![code.id()], "{:#?}", review.findings);
    let finding = &review.findings[0];
    assert_eq!(finding.severity, severity);
    assert_eq!(finding.path, path);
    assert_eq!(finding.message, message);
    assert_fits_a_warning(finding);
}

/// An unknown annotation's hint names the one it most likely misspells, or what is read.
#[test]
fn unknown_annotations_point_to_the_one_meant() {
    let policy = Policy::default();
    let hints = |annotations: Value| -> Vec<String> {
        review::validate(
            &worker(json!({}), annotations),
            &ctx(&policy, Mode::Native),
            Perspective::AsWritten,
        )
        .findings
        .into_iter()
        .filter(|f| f.code == Code::AnnotationUnknown)
        .map(|f| f.hint)
        .collect()
    };
    assert_eq!(
        hints(json!({"sidekiq-guard.io/shutdownTimeout": "60"})),
        ["did you mean sidekiq-guard.io/shutdown-timeout?"]
    );
    assert_eq!(
        hints(json!({"sidekiq-guard.io/owner": "team-a"})),
        [
            "sidekiq-guard reads sidekiq-guard.io/longest-job, sidekiq-guard.io/shutdown-timeout, \
          sidekiq-guard.io/probe-port, sidekiq-guard.io/container, sidekiq-guard.io/redis-namespace"
        ]
    );
    assert_eq!(
        hints(json!({"sidekiq-guard.io/inject": "true"})),
        ["make it a label: spec.template.metadata.labels sidekiq-guard.io/inject"]
    );
    // Its own status annotation is known.
    assert_eq!(
        hints(json!({"sidekiq-guard.io/status": "{}"})),
        Vec::<String>::new()
    );
}

/// Every form of SG026 fits an admission warning whole, with a 30-character container name and
/// a five-digit -t.
#[rstest::rstest]
#[case(&["sh", "-c", "bundle exec sidekiq -t 28800 | tee log"])]
#[case(&["sh", "-c", "bundle exec sidekiq -t 28800; echo done"])]
#[case(&["sh", "-c", "bundle exec sidekiq -t 28800"])]
#[case(&["tini-static", "-g", "sh", "-c", "bundle exec sidekiq -t 28800"])]
#[case(&["sh", "-c", "trap 'kill $P' TERM; bundle exec sidekiq -t 28800 & P=$!; wait"])]
#[case(&["sh", "-c", "trap : TERM; bundle exec sidekiq -t 28800"])]
fn sidekiq_not_signalled_fits_a_warning(#[case] command: &[&str]) {
    let policy = Policy::default();
    let mut deployment = worker(json!({"command": command}), json!({}));
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(40000);
    deployment["spec"]["template"]["spec"]["containers"][0]["name"] =
        json!("sidekiq-worker-default-queue-1");
    let review = review::validate(
        &deployment,
        &ctx(&policy, Mode::Native),
        Perspective::AsWritten,
    );
    let finding = review
        .findings
        .iter()
        .find(|f| f.code == Code::SidekiqNotSignalled)
        .expect("SG026");
    assert_fits_a_warning(finding);
}

/// dumb-init signals the whole group only in its setsid mode: with `DUMB_INIT_SETSID=0` (as
/// with `-c`) the shell alone gets SIGTERM, and its trap keeps it from Sidekiq behind its pipe
/// (in setsid mode the same script is not flagged: see above).
#[rstest::rstest]
#[case(json!({"command": ["dumb-init", "sh", "-c", "trap : TERM; bundle exec sidekiq -t 25 | tee log"], "env": [
    {"name": "REDIS_URL", "value": "redis://redis:6379/0"},
    {"name": "DUMB_INIT_SETSID", "value": "0"},
]}))]
#[case(json!({"command": ["dumb-init", "-c", "sh", "-c", "trap : TERM; bundle exec sidekiq -t 25 | tee log"]}))]
fn dumb_init_without_setsid_signals_the_shell_alone(#[case] container: Value) {
    let policy = Policy::default();
    let review = review::validate(
        &worker(container, json!({})),
        &ctx(&policy, Mode::Native),
        Perspective::AsWritten,
    );
    assert_eq!(codes(&review), vec!["SG026"], "{:#?}", review.findings);
}

/// The hint writes the URL that carries the password; a URL that carries one is left alone.
#[test]
fn a_password_beside_the_url_is_pointed_into_it() {
    let policy = Policy::default();
    let review_of = |env: Value| {
        review::validate(
            &worker(json!({"env": env}), json!({})),
            &ctx(&policy, Mode::Native),
            Perspective::AsWritten,
        )
    };
    let password =
        json!({"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "r", "key": "p"}}});
    let beside = review_of(json!([
        {"name": "REDIS_URL", "value": "redis://shop-redis-master:6379/0"},
        password.clone(),
    ]));
    assert_eq!(
        beside.findings[0].hint,
        "put it in the URL: REDIS_URL=redis://:$(REDIS_PASSWORD)@shop-redis-master:6379/0, below REDIS_PASSWORD in env"
    );
    let within = review_of(json!([
        password,
        {"name": "REDIS_URL", "value": "redis://:$(REDIS_PASSWORD)@shop-redis-master:6379/0"},
    ]));
    assert_eq!(codes(&within), Vec::<&str>::new(), "{:#?}", within.findings);
}

/// Scripts whose shell hands SIGTERM to Sidekiq and outlives it: no SG026.
#[rstest::rstest]
#[case::exec(&["sh", "-c", "bundle exec rake db:migrate && exec bundle exec sidekiq -t 25"])]
#[case::bash_runs_its_last_command_in_its_place(&["bash", "-lc", "cd /app && bundle exec sidekiq -t 25"])]
#[case::dumb_init_signals_the_whole_group_and_a_trap_keeps_the_shell(&["dumb-init", "sh", "-c", "trap 'echo stopping' TERM; bundle exec sidekiq -t 25 | tee log"])]
#[case::so_does_tini_with_g(&["tini", "-g", "--", "sh", "-c", "trap : TERM; bundle exec sidekiq -t 25"])]
#[case::bash_reads_its_script_line_by_line(&["bash", "-c", "set -e\ncd /app && bundle exec sidekiq -t 25\n"])]
#[case::after_an_option_with_a_value(&["tini", "-p", "SIGKILL", "-g", "--", "sh", "-c", "trap : TERM; bundle exec sidekiq -t 25"])]
#[case::busybox_ash_runs_its_last_command_in_its_place(&["ash", "-c", "bundle exec sidekiq -t 25"])]
#[case::a_trap_hands_term_on_and_the_script_waits_again(&["sh", "-c", "trap 'kill -TERM $P' TERM; bundle exec sidekiq -t 25 & P=$!; wait $P; wait $P"])]
#[case::a_trap_that_waits(&["sh", "-c", "trap 'kill -TERM $P; wait $P' TERM; bundle exec sidekiq -t 25 & P=$!; wait $P"])]
#[case::a_trap_function_and_a_wait_loop(&["bash", "-c", "stop() { kill -TERM \"$P\"; }\ntrap stop TERM\nbundle exec sidekiq -t 25 &\nP=$!\nwhile kill -0 \"$P\" 2>/dev/null; do wait \"$P\"; done\n"])]
fn sidekiq_that_gets_the_shells_sigterm_is_not_flagged(#[case] command: &[&str]) {
    let policy = Policy::default();
    let review = review::validate(
        &worker(json!({"command": command}), json!({})),
        &ctx(&policy, Mode::Native),
        Perspective::AsWritten,
    );
    assert_eq!(codes(&review), Vec::<&str>::new(), "{:#?}", review.findings);
}

/// Every answer shows the whole grace arithmetic in one warning, even when the sentence around
/// it would push it past the API server's 256 characters.
#[test]
fn the_arithmetic_survives_the_warning_limit() {
    let policy = Policy::parse("defaults: {margin: 30s}").unwrap();
    let ctx = ctx(&policy, Mode::Native);
    let deployment = worker(
        json!({"command": ["bundle", "exec", "sidekiq", "-C", "config/sidekiq.yml"]}),
        json!({"sidekiq-guard.io/longest-job": "10m", "sidekiq-guard.io/shutdown-timeout": "1m"}),
    );
    let explanation = "715s = quiet latency 20s + longest job 10m (annotation sidekiq-guard.io/longest-job) \
         + shutdown timeout 1m (annotation sidekiq-guard.io/shutdown-timeout) + exit allowance 5s + policy margin 30s";
    let whole = |warnings: &[String]| {
        warnings
            .iter()
            .any(|w| w.ends_with(explanation) && w.chars().count() <= review::MAX_WARNING_CHARS)
    };
    for (patch, perspective) in [
        (true, Perspective::AsWritten),
        (false, Perspective::AsWritten),
        (false, Perspective::AsInjected),
    ] {
        let review = if patch {
            review::mutate(&deployment, &ctx)
        } else {
            review::validate(&deployment, &ctx, perspective)
        };
        let decision = review::decide(
            &review,
            policy.enforcement,
            !patch,
            "Deployment shop/worker",
        );
        assert!(
            whole(&decision.warnings),
            "{patch} {perspective:?}: {:#?}",
            decision.warnings
        );
    }
}

/// A drain hook and probes aimed at sidekiq-guard's probe, in a pod that has none: nothing
/// answers them. A pod is what runs (an error); a template's pods may still be injected (a
/// warning, and nothing once its own label opts them in).
#[test]
fn calls_to_a_probe_the_pod_does_not_run_are_reported() {
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let mut deployment = worker(json!({}), json!({}));
    let labels = deployment["spec"]["template"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    assert!(labels.is_some());
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker-1", "namespace": "shop", "annotations": {"sidekiq-guard.io/longest-job": "2m"}},
        "spec": deployment["spec"]["template"]["spec"].clone(),
    });
    let finding = |object: &Value| findings_of(object, &ctx, Code::ProbeSidecarMissing);

    let found = finding(&pod);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Error);
    assert_eq!(found[0].path, "spec.containers[0]");
    assert_eq!(
        found[0].message,
        "container worker calls sidekiq-guard's probe on port 7434 (preStop /drain, readiness, liveness) but the pod has no sidekiq-guard-probe container: nothing answers, so a drain hook fails and probes fail"
    );
    assert_fits_a_warning(&found[0]);

    let found = finding(&deployment);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(
        found[0]
            .message
            .ends_with("container: unless the webhook injects its pods, nothing answers, so a drain hook fails and probes fail"),
        "{}",
        found[0].message
    );

    // Injected, the pod has the probe; and calls to another port reach some other server.
    let (injected, _) = review::inject(&pod, &ctx).unwrap();
    assert_eq!(finding(&injected), Vec::new());
    let mut elsewhere = pod.clone();
    for field in ["livenessProbe", "readinessProbe"] {
        elsewhere["spec"]["containers"][0][field]["httpGet"]["port"] = json!(9000);
    }
    elsewhere["spec"]["containers"][0]["lifecycle"]["preStop"]["httpGet"]["port"] = json!(9000);
    assert_eq!(finding(&elsewhere), Vec::new());
}

/// Pods that share the name Sidekiq's processes go by cannot be told apart by the probe: a
/// literal DYNO in a template (the same in every pod), or hostNetwork (the node's name) where
/// more than one such pod may share a node.
#[test]
fn pods_that_share_an_identity_are_reported() {
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let shared = |object: &Value| -> Vec<(Severity, String, String)> {
        findings_of(object, &ctx, Code::IdentityShared)
            .into_iter()
            .map(|f| (f.severity, f.path, f.message))
            .collect()
    };
    let env = |dyno: Value| {
        json!({"env": [
            {"name": "REDIS_URL", "value": "redis://redis:6379/0"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            dyno,
        ]})
    };
    let literal = worker(env(json!({"name": "DYNO", "value": "worker.1"})), json!({}));
    assert_eq!(
        shared(&literal),
        vec![(
            Severity::Error,
            "spec.template.spec.containers[0].env".to_owned(),
            "every pod of this template sets DYNO to \"worker.1\", the name Sidekiq's processes go by: the probe cannot tell one pod's processes from another's, and one pod's drain quiets them all".to_owned()
        )]
    );
    let per_pod = worker(
        env(json!({"name": "DYNO", "value": "$(POD_NAME).worker"})),
        json!({}),
    );
    assert_eq!(shared(&per_pod), Vec::new());
    // One pod at a time: the old one is gone before the new one starts.
    let mut recreated = literal.clone();
    recreated["spec"]["strategy"] = json!({"type": "Recreate"});
    assert_eq!(shared(&recreated), Vec::new());
    recreated["spec"]["replicas"] = json!(2);
    assert_eq!(shared(&recreated).len(), 1);

    let mut host = worker(json!({}), json!({}));
    host["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    let found = shared(&host);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Severity::Warning);
    assert_eq!(found[0].1, "spec.template.spec.hostNetwork");
    assert!(
        found[0]
            .2
            .starts_with("with hostNetwork, Sidekiq's processes go by the node's name"),
        "{}",
        found[0].2
    );
    // A DYNO of the pod's own names its processes apart; the port is still the node's.
    let mut host_per_pod = per_pod.clone();
    host_per_pod["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    assert_eq!(
        shared(&host_per_pod)[0].2,
        "with hostNetwork, a second injected pod on the node cannot bind the probe's port 7434, a port of the node"
    );
    // One pod per node: a DaemonSet, and the pods it creates.
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker-x", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "worker", "uid": "u"}]},
        "spec": host["spec"]["template"]["spec"].clone(),
    });
    assert_eq!(shared(&pod), Vec::new(), "a DaemonSet's pod");
    pod["metadata"]["ownerReferences"][0]["kind"] = json!("ReplicaSet");
    assert_eq!(shared(&pod).len(), 1);
    host["kind"] = json!("DaemonSet");
    assert_eq!(shared(&host), Vec::new(), "one pod per node");

    // Without DYNO, processes go by the hostname: one the template sets is every pod's.
    let mut named = worker(json!({}), json!({}));
    named["spec"]["template"]["spec"]["hostname"] = json!("worker");
    assert_eq!(
        shared(&named),
        vec![(
            Severity::Error,
            "spec.template.spec.hostname".to_owned(),
            "every pod of this template is named \"worker\" (spec.hostname), the name Sidekiq's processes go by without DYNO: the probe cannot tell one pod's processes from another's, and one pod's drain quiets them all".to_owned()
        )]
    );
    assert_fits_a_warning(&findings_of(&named, &ctx, Code::IdentityShared)[0]);
    // A DYNO of the pod's own names them apart; a StatefulSet names each pod's host itself.
    let mut named_per_pod = per_pod.clone();
    named_per_pod["spec"]["template"]["spec"]["hostname"] = json!("worker");
    assert_eq!(shared(&named_per_pod), Vec::new());
    let mut stateful = named.clone();
    stateful["kind"] = json!("StatefulSet");
    stateful["spec"]["replicas"] = json!(3);
    assert_eq!(shared(&stateful), Vec::new());
    // A lone pod shares it with nobody.
    let lone = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker-1"},
        "spec": named["spec"]["template"]["spec"].clone(),
    });
    assert_eq!(shared(&lone), Vec::new());

    // Ruby takes an empty DYNO as set: an empty host part, never found, shared by all.
    let empty = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker-1"},
        "spec": worker(env(json!({"name": "DYNO", "value": ""})), json!({}))["spec"]["template"]["spec"].clone(),
    });
    let found = shared(&empty);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Severity::Error);
    assert!(
        found[0].2.starts_with("DYNO is set but empty: "),
        "{}",
        found[0].2
    );
    assert_fits_a_warning(&findings_of(&empty, &ctx, Code::IdentityShared)[0]);
}

/// A Job's pod injected with a native sidecar, judged where sidecars are classic: on a cluster
/// before 1.29 the sidecar is an init container that never ends. Said, as a warning: classic
/// is also chosen where the version cannot be read.
#[test]
fn a_native_sidecar_in_a_job_is_said_where_sidecars_are_classic() {
    let policy = Policy::default();
    let mut job = worker(json!({}), json!({}));
    job["apiVersion"] = json!("batch/v1");
    job["kind"] = json!("Job");
    job["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    let (native, _) = review::inject(&job, &ctx(&policy, Mode::Native)).unwrap();
    let classic = ctx(&policy, Mode::Classic);
    let sg016 = |object: &Value| -> Vec<(Severity, String)> {
        findings_of(object, &classic, Code::ClassicSidecarInJob)
            .into_iter()
            .map(|f| (f.severity, f.message))
            .collect()
    };
    let job = sg016(&job);
    assert_eq!(job.len(), 1);
    assert!(job[0].1.ends_with("so it is not injected"), "{}", job[0].1);
    let native = sg016(&native);
    assert_eq!(native.len(), 1);
    assert_eq!(native[0].0, Severity::Warning);
    assert!(
        native[0]
            .1
            .contains("carries sidekiq-guard-probe as a native sidecar"),
        "{}",
        native[0].1
    );
}

/// With `shareProcessNamespace`, `kill -TSTP 1` reaches the pause process, not Sidekiq (SG003),
/// but the hook still sleeps: the grace period covers the sleep as it would without the flag.
#[test]
fn a_hook_that_signals_the_pause_process_still_lasts_its_sleep() {
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let hook = json!({"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; sleep 300"]}}}});
    let mut own = worker(hook, json!({}));
    let spec = own["spec"]["template"]["spec"].as_object_mut().unwrap();
    spec.remove("terminationGracePeriodSeconds");
    let mut shared = own.clone();
    shared["spec"]["template"]["spec"]["shareProcessNamespace"] = json!(true);
    let grace = |object: &Value| {
        let (injected, _) = review::inject(object, &ctx).unwrap();
        injected["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].clone()
    };
    assert_eq!(
        grace(&own),
        json!(330),
        "300 s of sleep, 25 s of -t, 5 s of margin"
    );
    assert_eq!(grace(&shared), grace(&own));
    let review = review::validate(&shared, &ctx, Perspective::AsWritten);
    assert!(
        review
            .findings
            .iter()
            .any(|f| f.code == Code::PreStopNotQuieting && f.severity == Severity::Error),
        "{:#?}",
        review.findings
    );
}

/// An injected manifest whose sidecar no longer matches its Sidekiq container — a longer job
/// declared since, the worker moved to another Redis, the sidecar or the drain hook edited by
/// hand — is what `inject` replaces; `validate` says so, with what differs and never a value.
#[test]
fn a_probe_sidecar_that_no_longer_matches_is_reported() {
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let injected_in = |mode: Mode| {
        let secret_url =
            json!({"env": [{"name": "REDIS_URL", "value": "redis://:hunter2@redis:6379/0"}]});
        review::inject(&worker(secret_url, json!({})), &common::ctx(&policy, mode))
            .unwrap()
            .0
    };
    let injected = injected_in(Mode::Native);
    let stale = |object: &Value| -> Vec<(Severity, String, String)> {
        findings_of(object, &ctx, Code::ProbeSidecarStale)
            .into_iter()
            .map(|f| (f.severity, f.path, f.message))
            .collect()
    };
    assert_eq!(stale(&injected), vec![]);
    fn sidecar(o: &mut Value) -> &mut Value {
        &mut o["spec"]["template"]["spec"]["initContainers"][0]
    }
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut object = injected.clone();
        edit(&mut object);
        stale(&object)
    };
    let warning = |what: &str| {
        vec![(
            Severity::Warning,
            "spec.template.spec.initContainers[0]".to_owned(),
            format!(
                "container worker and its sidekiq-guard-probe container do not match (the webhook corrects them in the pods it admits): {what}"
            ),
        )]
    };

    // A longer job declared since.
    let declared = edited(&|o| {
        o["spec"]["template"]["metadata"]["annotations"]["sidekiq-guard.io/longest-job"] =
            json!("10m");
        o["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(900);
    });
    assert_eq!(declared, warning("--drain-budget=2m20s (needs 10m20s)"));
    // Sidekiq moved to another Redis: the name only, not the URL and its password.
    let moved = edited(&|o| {
        o["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] =
            json!("redis://:s3cret@other:6379/0");
    });
    assert_eq!(moved, warning("env REDIS_URL differs"));
    // The sidecar edited by hand.
    let listening = edited(&|o| {
        let args = sidecar(o)["args"].as_array_mut().unwrap();
        args[0] = json!("--listen=0.0.0.0:9999");
        args.push(json!("--settle=0s"));
    });
    assert_eq!(
        listening,
        warning("--listen=0.0.0.0:9999 (needs [::]:7434), --settle (not set by sidekiq-guard)")
    );
    // The hook calls it elsewhere, the sidecar being current.
    let elsewhere = edited(&|o| {
        o["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["httpGet"]["port"] =
            json!(7435);
    });
    assert_eq!(
        elsewhere,
        warning("the preStop hook calls /drain on port 7435 (the probe listens on 7434)")
    );
    // Injected by an earlier version, which listened on IPv4 only: the pods of this template
    // may run in an IPv6-first cluster, where the kubelet's probes would not reach it.
    let ipv4_only = edited(&|o| sidecar(o)["args"][0] = json!("--listen=0.0.0.0:7434"));
    assert_eq!(
        ipv4_only,
        warning("--listen=0.0.0.0:7434 (needs [::]:7434)")
    );
    // What the image, resources or the API server's defaults change is not a difference here.
    let defaulted = edited(&|o| {
        let container = sidecar(o);
        container["image"] = json!("mirror.example.com/sidekiq-guard:v0.0.9");
        container["resources"] = json!({});
        container["ports"][0]["protocol"] = json!("TCP");
        // Another webhook's variable, and the budget spelt otherwise.
        container["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "DD_AGENT_HOST", "value": "10.0.0.1"}));
        container["args"][1] = json!("--drain-budget=140s");
        for entry in container["env"].as_array_mut().unwrap() {
            if entry["valueFrom"]["fieldRef"].is_object() {
                entry["valueFrom"]["fieldRef"]["apiVersion"] = json!("v1");
            }
        }
    });
    assert_eq!(defaulted, vec![]);

    // A classic sidecar where a native one is due: its placement is the webhook's to fix,
    // what else differs is said.
    let classic = injected_in(Mode::Classic);
    assert_eq!(stale(&classic), vec![]);
    let mut longer = classic.clone();
    longer["spec"]["template"]["metadata"]["annotations"]["sidekiq-guard.io/longest-job"] =
        json!("10m");
    longer["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(900);
    let found = stale(&longer);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].1, "spec.template.spec.containers[1]");
    assert!(
        found[0]
            .2
            .ends_with(": --drain-budget=2m20s (needs 10m20s)"),
        "{}",
        found[0].2
    );

    // A native sidecar where sidecars are classic (a cluster before 1.29) never lets Sidekiq
    // start: said, before anything else that differs. A Job's pod is SG016's.
    let classic_ctx = common::ctx(&policy, Mode::Classic);
    let found = findings_of(&injected, &classic_ctx, Code::ProbeSidecarStale);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Warning);
    assert_eq!(found[0].path, "spec.template.spec.initContainers[0]");
    assert_eq!(
        found[0].message,
        "container worker and its sidekiq-guard-probe container do not match (the webhook corrects them in the pods it admits): native where sidecars are classic: before 1.29 it never ends, and Sidekiq never starts"
    );
    assert_fits_a_warning(&found[0]);

    // A pod is what runs: an error. Once injected again, nothing is left to say.
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker-1", "namespace": "shop",
                     "annotations": {"sidekiq-guard.io/longest-job": "10m"}},
        "spec": injected["spec"]["template"]["spec"].clone(),
    });
    pod["spec"]["terminationGracePeriodSeconds"] = json!(900);
    let found = findings_of(&pod, &ctx, Code::ProbeSidecarStale);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Error);
    assert_eq!(
        found[0].message,
        "container worker and its sidekiq-guard-probe container do not match: --drain-budget=2m20s (needs 10m20s)"
    );
    assert_fits_a_warning(&found[0]);
    let (again, _) = review::inject(&pod, &ctx).unwrap();
    assert_eq!(stale(&again), vec![]);
    let as_injected = review::validate(&pod, &ctx, Perspective::AsInjected);
    assert!(
        !codes(&as_injected).contains(&"SG032"),
        "{:?}",
        codes(&as_injected)
    );
}

/// A drain hook or probe sent to another host, or over HTTPS, never reaches the plain-HTTP
/// probe at the pod's address. `/drain` is the probe's alone: the hook is rewritten, as one at
/// another port is, and said so. A `/readyz` probe is the user's: kept, and reported.
#[test]
fn calls_to_another_host_or_over_https_are_not_the_probes() {
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let deployment = worker(
        json!({
            "lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": 7434, "host": "localhost"}}},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 7434, "scheme": "HTTPS"}},
        }),
        json!({}),
    );
    let as_written = review::validate(&deployment, &ctx, Perspective::AsWritten);
    assert_eq!(codes(&as_written), vec!["SG003", "SG035"]);
    assert_eq!(
        as_written.findings[0].message,
        "the preStop hook calls /drain on host \"localhost\": the probe answers plain HTTP at the pod's own address only, so the call fails and Sidekiq is not quieted (the webhook rewrites it in the pods it admits)"
    );
    assert_eq!(as_written.findings[0].severity, Severity::Error);

    let (injected, review) = review::inject(&deployment, &ctx).unwrap();
    let status = InjectionStatus::parse(
        injected["spec"]["template"]["metadata"]["annotations"]["sidekiq-guard.io/status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        status.kept,
        vec![Part::ReadinessProbe, Part::TerminationGracePeriodSeconds]
    );
    let container = &injected["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["lifecycle"]["preStop"],
        json!({"httpGet": {"path": "/drain", "port": 7434, "scheme": "HTTP"}})
    );
    assert!(
        review.notes.contains(&"rewrote the preStop hook on container worker: it called /drain on host \"localhost\", which never reaches the probe (plain HTTP, at the pod's own address)".to_owned()),
        "{:#?}",
        review.notes
    );
    assert_eq!(codes(&review), vec!["SG035"]);
    assert_eq!(
        review.findings[0].message,
        "the readinessProbe gets /readyz on port 7434 over HTTPS: the probe answers plain HTTP at the pod's own address only, so it fails and the pod never becomes ready"
    );
    assert_eq!(
        review.findings[0].path,
        "spec.template.spec.containers[0].readinessProbe"
    );
}

/// A pod is Guaranteed only when every container is, init containers included: the sidecar
/// then requests what it is limited to, and the pod keeps its QoS class (exclusive CPUs under
/// the static CPU manager, its place in the eviction order).
/// A pod is Ready only when all its containers are: beside a web server, Sidekiq's readiness
/// decides for the web server's Services too, which a warning says.
#[test]
fn a_web_server_beside_sidekiq_is_warned_of_sidekiqs_readiness() {
    let mut pod = load("tests/data/objects/pod-rails-worker.json");
    let web = json!({"name": "web", "image": "shop:1", "command": ["bundle", "exec", "puma"],
        "ports": [{"name": "http", "containerPort": 3000}]});
    pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .insert(0, web);
    let warning = "container web of the pod declares ports: the pod's readiness now also follows Sidekiq's, so a Redis outage or a drain takes it out of Services; run Sidekiq in pods of its own";
    let (review, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    assert_eq!(
        mutated["spec"]["containers"][1]["readinessProbe"]["httpGet"]["path"],
        "/readyz"
    );
    assert!(
        review.notes.contains(&warning.to_owned()),
        "{:#?}",
        review.notes
    );
    // Ports of Sidekiq's own container (metrics, say) decide for nothing else.
    let mut alone = load("tests/data/objects/pod-rails-worker.json");
    alone["spec"]["containers"][0]["ports"] = json!([{"name": "metrics", "containerPort": 9394}]);
    let (review, _) = mutate_and_apply(&alone, &Policy::default(), Mode::Native);
    assert!(
        !review.notes.iter().any(|note| note.contains("declare")),
        "{:#?}",
        review.notes
    );
}

/// With pod-level resources the API server refuses a pod whose containers' requests add up to
/// more than the pod's: the sidecar sets none of its own and shares the pod's.
#[test]
fn a_pod_with_pod_level_resources_shares_them_with_the_sidecar() {
    let mut pod = load("tests/data/objects/pod-rails-worker.json");
    let sized =
        json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}});
    pod["spec"]["resources"] = sized.clone();
    pod["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "1", "memory": "1Gi"}});
    let policy: Policy = serde_json::from_value(json!({"sidecar": {"resources": {
        "requests": {"cpu": "20m", "memory": "24Mi"}, "limits": {"memory": "48Mi"}}}}))
    .unwrap();
    for policy in [Policy::default(), policy] {
        let (review, mutated) = mutate_and_apply(&pod, &policy, Mode::Native);
        let sidecar = &mutated["spec"]["initContainers"][0];
        assert_eq!(sidecar["name"], "sidekiq-guard-probe");
        assert_eq!(sidecar["resources"], json!({}));
        assert_eq!(mutated["spec"]["resources"], sized);
        assert!(
            review.notes.contains(&"the pod sets pod-level resources: the probe sidecar sets none of its own and shares the pod's, whose requests must cover every container's".to_owned()),
            "{:#?}",
            review.notes
        );
    }

    // A pod injected before it had pod-level resources: its sidecar's own requests go.
    let mut plain = load("tests/data/objects/pod-rails-worker.json");
    let (_, mut injected) = mutate_and_apply(&plain, &Policy::default(), Mode::Native);
    assert_ne!(
        injected["spec"]["initContainers"][0]["resources"],
        json!({})
    );
    injected["spec"]["resources"] = sized.clone();
    let (_, again) = mutate_and_apply(&injected, &Policy::default(), Mode::Native);
    assert_eq!(again["spec"]["initContainers"][0]["resources"], json!({}));
    plain["spec"]["resources"] = sized;
    let (_, fresh) = mutate_and_apply(&plain, &Policy::default(), Mode::Native);
    assert_eq!(again, fresh, "as if injected with pod-level resources");
    let empty: Policy =
        serde_json::from_value(json!({"sidecar": {"resources": {"requests": {}, "limits": {}}}}))
            .unwrap();
    for policy in [Policy::default(), empty] {
        let (review, _) = mutate_and_apply(&again, &policy, Mode::Native);
        assert_eq!(review.ops, vec![], "idempotent");
    }
}

#[test]
fn a_guaranteed_pod_stays_guaranteed() {
    let mut pod = load("tests/data/objects/pod-rails-worker.json");
    pod["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "2000m", "memory": "1Gi"}});
    let (review, mutated) = mutate_and_apply(&pod, &Policy::default(), Mode::Native);
    let sidecar = &mutated["spec"]["initContainers"][0];
    assert_eq!(sidecar["name"], "sidekiq-guard-probe");
    assert_eq!(
        sidecar["resources"],
        json!({"requests": {"cpu": "5m", "memory": "32Mi"}, "limits": {"cpu": "5m", "memory": "32Mi"}})
    );
    assert!(
        review.notes.contains(&"the pod is of the Guaranteed QoS class: the probe sidecar requests what it is limited to (cpu 5m, memory 32Mi) to keep it so".to_owned()),
        "{:#?}",
        review.notes
    );

    // The policy's limits, else its requests, are what the sidecar gets.
    let policy: Policy = serde_json::from_value(json!({"sidecar": {"resources": {
        "requests": {"cpu": "20m", "memory": "24Mi"}, "limits": {"memory": "48Mi"}}}}))
    .unwrap();
    let (_, mutated) = mutate_and_apply(&pod, &policy, Mode::Native);
    assert_eq!(
        mutated["spec"]["initContainers"][0]["resources"],
        json!({"requests": {"cpu": "20m", "memory": "48Mi"}, "limits": {"cpu": "20m", "memory": "48Mi"}})
    );

    // Limits alone are requests too; a container without a CPU limit makes the pod Burstable
    // anyway, and the sidecar keeps the policy's resources.
    let mut limits_only = pod.clone();
    // A manifest may write a quantity as a number.
    limits_only["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": 1, "memory": "1Gi"}});
    let (_, mutated) = mutate_and_apply(&limits_only, &Policy::default(), Mode::Native);
    assert_eq!(
        mutated["spec"]["initContainers"][0]["resources"]["limits"]["cpu"],
        "5m"
    );
    // Memory only requested at its limit (a limit alone is a request too): the sidecar's
    // memory likewise, resource by resource, and a warning says why.
    let mut burstable = pod.clone();
    burstable["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "1Gi"}});
    let (review, mutated) = mutate_and_apply(&burstable, &Policy::default(), Mode::Native);
    assert_eq!(
        mutated["spec"]["initContainers"][0]["resources"],
        json!({"requests": {"cpu": "5m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}})
    );
    assert!(!review.notes.iter().any(|n| n.contains("Guaranteed")));
    assert!(
        review.notes.contains(&"the probe sidecar requests the memory it is limited to (32Mi), as every other container of the pod does: a ResourceQuota or LimitRange that asks it of every container would refuse the pod otherwise".to_owned()),
        "{:#?}",
        review.notes
    );
    // No limits at all: the policy's resources as they are, and nothing to say.
    let mut open = pod.clone();
    open["spec"]["containers"][0]["resources"] = json!({"requests": {"memory": "1Gi"}});
    let (review, mutated) = mutate_and_apply(&open, &Policy::default(), Mode::Native);
    assert_eq!(
        mutated["spec"]["initContainers"][0]["resources"],
        json!({"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}})
    );
    assert!(
        !review
            .notes
            .iter()
            .any(|n| n.contains("every other container"))
    );
}

/// The webhook's selectors match `true` and `false` exactly: `False` opts nothing in or out.
#[test]
fn an_inject_label_of_another_value_is_reported() {
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let mut pod = load("tests/data/objects/pod-rails-worker.json");
    for (value, expected) in [
        ("False", true),
        ("no", true),
        ("true", false),
        ("false", false),
    ] {
        pod["metadata"]["labels"]["sidekiq-guard.io/inject"] = json!(value);
        let found = findings_of(&pod, &ctx, Code::InjectLabelInvalid);
        if !expected {
            assert_eq!(found, vec![], "{value}");
            continue;
        }
        assert_eq!(found.len(), 1, "{value}");
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(found[0].path, "metadata.labels");
        assert_eq!(
            found[0].message,
            format!(
                "label sidekiq-guard.io/inject is \"{value}\", neither \"true\" nor \"false\": it opts nothing in or out, and the namespace's label decides"
            )
        );
    }
}

/// A livenessProbe copied from the readinessProbe gets `/readyz`: it is the user's (kept, not
/// listed as injected) and reported, since it restarts Sidekiq whenever it is quiet. The same
/// probe as a readinessProbe is sidekiq-guard's own.
#[test]
fn a_liveness_probe_on_readyz_is_the_users_and_reported() {
    let policy = Policy::default();
    let ctx = ctx(&policy, Mode::Native);
    let on_readyz = json!({"httpGet": {"path": "/readyz", "port": 7434, "scheme": "HTTP"},
        "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 2});
    let deployment = worker(json!({"livenessProbe": on_readyz}), json!({}));
    let (injected, review) = review::inject(&deployment, &ctx).unwrap();
    assert_eq!(codes(&review), vec!["SG037"]);
    assert_eq!(
        review.findings[0].message,
        "the livenessProbe gets /readyz on port 7434, which fails whenever Sidekiq is quiet (the preStop's drain, Quiet in the Web UI) or Redis is briefly unreachable, so the kubelet restarts a working Sidekiq and its running jobs"
    );
    assert_eq!(
        review.findings[0].path,
        "spec.template.spec.containers[0].livenessProbe"
    );
    assert_eq!(review.findings[0].severity, Severity::Warning);
    let container = &injected["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"], on_readyz, "kept as written");
    let status = InjectionStatus::parse(
        injected["spec"]["template"]["metadata"]["annotations"]["sidekiq-guard.io/status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(status.kept.contains(&Part::LivenessProbe), "{status:?}");
    assert!(
        !status.injected.contains(&Part::LivenessProbe),
        "{status:?}"
    );

    let as_readiness = worker(json!({"readinessProbe": on_readyz}), json!({}));
    let (_, review) = review::inject(&as_readiness, &ctx).unwrap();
    assert_eq!(codes(&review), Vec::<&str>::new());
    assert!(
        !review.notes.iter().any(|n| n.contains("readinessProbe")),
        "{:#?}",
        review.notes
    );
}

/// The API server drops `restartPolicy` from init containers where the SidecarContainers
/// feature is off (1.28, or a gate turned off), after mutating admission: the validating
/// webhook sees a native sidecar that never ends, and says so.
#[test]
fn a_native_sidecar_stripped_of_its_restart_policy_is_an_error() {
    let policy = Policy::default();
    let (_, mut pod) = mutate_and_apply(
        &load("tests/data/objects/pod-rails-worker.json"),
        &policy,
        Mode::Native,
    );
    let sidecar = pod["spec"]["initContainers"][0].as_object_mut().unwrap();
    assert_eq!(sidecar.remove("restartPolicy"), Some(json!("Always")));
    let review = review::validate(&pod, &ctx(&policy, Mode::Native), Perspective::AsWritten);
    assert_eq!(codes(&review), vec!["SG032"]);
    let finding = &review.findings[0];
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.path, "spec.initContainers[0]");
    assert_eq!(
        finding.message,
        "container worker and its sidekiq-guard-probe container do not match: an init container without restartPolicy: Always (the API server drops it where the SidecarContainers feature is off): it never ends, and Sidekiq never starts"
    );
    assert!(
        finding
            .hint
            .starts_with("set sidecar.mode: classic in the policy"),
        "{}",
        finding.hint
    );
    // Where sidecars are classic already, the move says it: no second cause, no advice to set
    // what is set.
    let review = review::validate(&pod, &ctx(&policy, Mode::Classic), Perspective::AsWritten);
    let finding = &review.findings[0];
    assert_eq!(finding.code, Code::ProbeSidecarStale);
    assert!(
        !finding.message.contains("restartPolicy"),
        "{}",
        finding.message
    );
    assert!(
        finding
            .message
            .contains("native where sidecars are classic"),
        "{}",
        finding.message
    );
    assert!(
        !finding.hint.starts_with("set sidecar.mode"),
        "{}",
        finding.hint
    );
}
