//! `kubectl sidekiq inject` and `validate` on files, run as the real binary.

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::{golden, object_names, root, text};

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = support::plugin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple(text).unwrap()
}

#[test]
fn inject_prints_the_mutated_example_and_explains_on_stderr() {
    let out = run(
        &["inject", "-f", "manifests/examples/report-worker.yaml"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    golden("inject-report-worker.yaml", &text(&out.stdout));
    golden("inject-report-worker.stderr", &text(&out.stderr));
}

#[test]
fn inject_output_equals_the_core_patch_applied() {
    let path = "manifests/examples/handwritten-prestop.yaml";
    let out = run(&["inject", "-f", path], None);
    let printed = yaml_docs(&text(&out.stdout));
    let original: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap();
    let policy = sidekiq_guard::Policy::default();
    let ctx = sidekiq_guard::Context {
        policy: &policy,
        mode: sidekiq_guard::Mode::Native,
        namespace: None,
    };
    let (expected, _) = sidekiq_guard::review::inject(&original, &ctx).unwrap();
    assert_eq!(printed, vec![expected]);
}

#[test]
fn inject_is_idempotent_through_the_binary() {
    let once = run(&["inject", "-f", "manifests/examples/"], None);
    assert!(once.status.success());
    let twice = run(&["inject", "-f", "-"], Some(&text(&once.stdout)));
    assert!(twice.status.success());
    assert_eq!(
        yaml_docs(&text(&twice.stdout)),
        yaml_docs(&text(&once.stdout))
    );
}

#[test]
fn non_sidekiq_documents_pass_through_unchanged() {
    let input = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  enabled: \"true\"\n  cron: 0 2 * * *\n---\n\
                 apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: app\n        command: [puma]\n";
    let out = run(&["inject", "-f", "-"], Some(input));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(yaml_docs(&text(&out.stdout)), yaml_docs(input));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn inject_keeps_json_and_list_shapes_and_honours_classic_mode() {
    let list = serde_json::json!({
        "apiVersion": "v1", "kind": "List",
        "items": [serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(root().join("tests/data/objects/pod-rails-worker.json")).unwrap()
        ).unwrap()],
    });
    let out = run(
        &["inject", "--sidecar-mode", "classic", "-f", "-"],
        Some(&list.to_string()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON in, JSON out");
    assert_eq!(printed["kind"], "List");
    let pod = &printed["items"][0];
    assert_eq!(pod["spec"]["containers"][1]["name"], "sidekiq-guard-probe");
    assert!(pod["spec"].get("initContainers").is_none());
    assert!(text(&out.stderr).contains("stdin items[0]: Pod shop/rails-worker-7d9c8f6b5-*: terminationGracePeriodSeconds raised from 30 to 350"));
}

#[test]
fn inject_applies_a_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "defaults:\n  longestJob: 30m\nsidecar:\n  image: registry.example.com/sg:1.0\n",
    )
    .unwrap();
    let out = run(
        &[
            "inject",
            "-f",
            "manifests/examples/rails-worker.yaml",
            "--policy",
            policy.to_str().unwrap(),
            "-o",
            "json",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let spec = &printed["spec"]["template"]["spec"];
    assert_eq!(spec["terminationGracePeriodSeconds"], 20 + 1800 + 25 + 5);
    assert_eq!(
        spec["initContainers"][0]["image"],
        "registry.example.com/sg:1.0"
    );
}

/// The command run with its stdout a pipe whose reader has already gone (`… | head` once
/// `head` has what it wants).
fn run_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    support::plugin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_does_not_hide_the_verdict() {
    let validate = run_into_closed_pipe(&["validate", "-f", "manifests/examples/"]);
    assert_eq!(
        validate.status.code(),
        Some(1),
        "error findings still exit 1: {}",
        text(&validate.stderr)
    );
    assert!(
        !text(&validate.stderr).contains("error:"),
        "{}",
        text(&validate.stderr)
    );
}

#[test]
fn a_closed_stderr_does_not_hide_the_verdict_either() {
    // `validate … 2>&1 | head`: the summary on stderr meets the closed pipe too.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let validate = support::plugin()
        .args(["validate", "-f", "manifests/examples/"])
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(
        validate.status.code(),
        Some(1),
        "error findings still exit 1"
    );
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    // `inject` has no verdict: it stops at the closed pipe, as `… | head` expects.
    let out = run_into_closed_pipe(&["inject", "-f", "manifests/examples/"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("error"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn validate_table_is_a_ci_gate() {
    let out = run(&["validate", "-f", "manifests/examples/"], None);
    assert_eq!(out.status.code(), Some(1), "error findings exit 1");
    golden("validate-examples.txt", &text(&out.stdout));
    assert_eq!(
        text(&out.stderr),
        "5 Sidekiq workload(s): 11 error(s), 10 warning(s), 2 info\n"
    );
}

/// Colour only on a terminal, and never with `NO_COLOR`: `script` gives the plugin a
/// pseudo-terminal as stdout, as an operator's shell would.
#[test]
fn colour_only_on_a_terminal() {
    let binary = env!("CARGO_BIN_EXE_kubectl-sidekiq");
    let on_tty = |no_color: bool| {
        let mut command = Command::new("script");
        command
            .args(["-qec"])
            .arg(format!(
                "{binary} validate -f manifests/examples/rails-worker.yaml"
            ))
            .arg("/dev/null")
            .current_dir(root())
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        if no_color {
            command.env("NO_COLOR", "1");
        }
        text(&command.output().unwrap().stdout)
    };
    let coloured = on_tty(false);
    assert!(coloured.contains("SG001"), "{coloured}");
    assert!(
        coloured.contains("\x1b["),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = on_tty(true);
    assert!(
        plain.contains("SG001") && !plain.contains("\x1b["),
        "{plain:?}"
    );
    let piped = support::plugin()
        .args(["validate", "-f", "manifests/examples/rails-worker.yaml"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let piped = text(&piped.stdout);
    assert!(
        piped.contains("SG001") && !piped.contains("\x1b["),
        "{piped:?}"
    );
}

#[test]
fn validate_json_lists_every_finding_with_its_path_and_fix() {
    let out = run(
        &[
            "validate",
            "-f",
            "manifests/examples/handwritten-prestop.yaml",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    golden("validate-handwritten-prestop.json", &text(&out.stdout));
}

#[test]
fn validate_as_injected_passes_what_the_webhook_fixes() {
    let out = run(
        &[
            "validate",
            "-f",
            "manifests/examples/rails-worker.yaml",
            "--as-injected",
            "-o",
            "yaml",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_saphyr::from_str(&text(&out.stdout)).unwrap();
    let codes: Vec<&str> = report["objects"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["SG013", "SG008"]);
    assert_eq!(report["summary"]["errors"], 0);
}

#[test]
fn a_clean_manifest_exits_zero() {
    let injected = run(
        &["inject", "-f", "manifests/examples/report-worker.yaml"],
        None,
    );
    let out = run(&["validate", "-f", "-"], Some(&text(&injected.stdout)));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn bad_input_is_exit_2_with_a_clear_message() {
    let cases: &[(&[&str], Option<&str>, &str)] = &[
        (
            &["validate", "-f", "nope.yaml"],
            None,
            "error: cannot read nope.yaml: No such file or directory (os error 2)\n",
        ),
        (
            &["inject", "-f", "-"],
            Some("kind: [unclosed"),
            "error: stdin: not valid YAML: ",
        ),
        (
            &["inject", "-f", "-"],
            Some("- just\n- a list\n"),
            "error: stdin: expected a Kubernetes object (a mapping with apiVersion and kind), found a list\n",
        ),
        (
            // A rendered `{}`, a values file: kubectl apply refuses them as no object.
            &["validate", "-f", "-"],
            Some("--- {}\n"),
            "error: stdin: not a Kubernetes object: it has no kind (a non-empty string); a kustomization or Helm values file is not a manifest (render it: kubectl kustomize DIR | kubectl sidekiq validate -f -)\n",
        ),
        (
            &["inject", "-f", "-"],
            Some("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  metadata: {name: x}\n"),
            "error: stdin items[0]: not a Kubernetes object: it has no kind (a non-empty string); ",
        ),
        (
            &["validate", "-f", "plugin/src"],
            None,
            "error: plugin/src: no .yaml, .yml or .json files found (use -R to descend into subdirectories)\n",
        ),
        (
            // An indentation slip: containers as a mapping. A CI gate must not pass it.
            &["validate", "-f", "-"],
            Some(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: worker}\nspec:\n  template:\n    spec:\n      containers:\n        name: sidekiq\n        command: [bundle, exec, sidekiq]\n",
            ),
            "error: stdin: malformed workload: Deployment worker: spec.template.spec.containers must be a non-empty list\n",
        ),
    ];
    for (args, stdin, expected) in cases {
        let out = run(args, *stdin);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        // validate prints its summary of what it could read first.
        let message = stderr
            .strip_prefix("0 Sidekiq workload(s): 0 error(s), 0 warning(s), 0 info\n")
            .unwrap_or(&stderr);
        assert!(message.starts_with(expected), "{args:?}: {stderr}");
    }
}

/// A CI gate reads whole repositories, Secrets included: a YAML error says where, never what
/// the lines around it hold.
#[test]
fn a_yaml_error_names_its_line_not_its_text() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData:\n  password: \"hunter2-SECRET\n";
    let out = run(&["validate", "-f", "-"], Some(secret));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("stdin: not valid YAML: "), "{stderr}");
    assert!(stderr.contains("line 5"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn one_bad_file_fails_validate_without_hiding_the_others_findings() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["rails-worker.yaml", "report-worker.yaml"] {
        std::fs::copy(
            root().join("manifests/examples").join(name),
            dir.path().join(name),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("zz-broken.yaml"), "kind: [\n").unwrap();
    std::fs::write(
        dir.path().join("zz-shape.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec: {template: {spec: {containers: {name: sidekiq}}}}\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = run(&["validate", "-f", path, "-o", "json"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(object_names(&report), ["rails-worker", "report-worker"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("error: {path}/zz-broken.yaml: not valid YAML"))
            && stderr.contains(&format!("error: {path}/zz-shape.yaml: malformed workload"))
            && stderr.ends_with(
                "error: 2 input(s) could not be read; the findings above cover the rest\n"
            ),
        "{stderr}"
    );
}

/// `mkfifo d/x.yaml; kubectl sidekiq validate -f d` used to block forever on the FIFO: files
/// of a directory that are not regular files are skipped with a note, as kubectl reads only
/// regular files from a directory, and the other files' findings are reported.
#[cfg(unix)]
#[test]
fn a_fifo_in_a_directory_is_skipped_with_a_note_not_waited_on() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("manifests/examples/rails-worker.yaml"),
        dir.path().join("rails-worker.yaml"),
    )
    .unwrap();
    let fifo = dir.path().join("x.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let path = dir.path().to_str().unwrap();

    let mut child = support::plugin()
        .args(["validate", "-f", path, "-o", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("validate -f DIR is still waiting on the FIFO after 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    // The rails worker's findings, as for the directory without the FIFO.
    let alone = run(
        &[
            "validate",
            "-f",
            "manifests/examples/rails-worker.yaml",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        alone.status.code(),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "the worker has error findings");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
    assert_eq!(report["summary"], expected["summary"]);
    assert_eq!(report["objects"][0]["name"], "rails-worker");
    assert_eq!(
        report["objects"][0]["findings"],
        expected["objects"][0]["findings"]
    );
    assert_eq!(
        text(&out.stderr),
        format!(
            "note: skipped {path}/x.yaml: a FIFO (named pipe), not a regular file\n{}",
            text(&alone.stderr)
        )
    );

    // Named on the command line, a FIFO is read: a script may feed manifests through one.
    let feed = fifo.clone();
    let writer = std::thread::spawn(move || {
        std::fs::write(
            feed,
            std::fs::read(root().join("manifests/examples/rails-worker.yaml")).unwrap(),
        )
    });
    let named = run(
        &["validate", "-f", fifo.to_str().unwrap(), "-o", "json"],
        None,
    );
    writer.join().unwrap().unwrap();
    assert_eq!(named.status.code(), Some(1), "{}", text(&named.stderr));
    let report: serde_json::Value = serde_json::from_slice(&named.stdout).unwrap();
    assert_eq!(
        report["objects"][0]["findings"],
        expected["objects"][0]["findings"]
    );
}

#[test]
fn a_bad_policy_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(&policy, "sidecar:\n  mode: sometimes\n").unwrap();
    let out = run(
        &[
            "inject",
            "-f",
            "manifests/examples/",
            "--policy",
            policy.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {}: policy sidecar.mode: unknown variant `sometimes`, expected one of `auto`, `native`, `classic`\n",
            policy.display()
        )
    );
}

/// A kustomize patch sets a few fields of a Deployment: not a workload to judge, not an error.
#[test]
fn a_partial_manifest_is_noted_not_failed() {
    let patch =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: worker}\nspec:\n  replicas: 3\n";
    let out = run(&["validate", "-f", "-"], Some(patch));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "Warning: stdin: Deployment worker: skipped: spec.template is absent (a partial manifest, such as a kustomize patch)\n\
         0 Sidekiq workload(s): 0 error(s), 0 warning(s), 0 info\n"
    );
}

#[test]
fn usage_errors_exit_2_and_help_says_kubectl_sidekiq() {
    let out = run(&["inject"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Usage: kubectl sidekiq inject"));
    let out = run(&["--help"], None);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("Usage: kubectl sidekiq [OPTIONS] <COMMAND>"));
}

#[test]
fn inject_output_is_read_by_kubectls_own_yaml_parser() {
    // kubectl and kustomize parse YAML with Go's parser, stricter than YAML itself about tabs:
    // the mutated stream must go through `kubectl kustomize` (offline) unchanged in content.
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: build\ndata:\n  q.sql: \"\\tSELECT 1;\\n\"\n  script: \"set -e\\n\\tbundle exec rake\\n\"\n";
    let worker =
        std::fs::read_to_string(root().join("manifests/examples/report-worker.yaml")).unwrap();
    let out = run(
        &["inject", "-f", "-"],
        Some(&format!("{config_map}---\n{worker}")),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("out.yaml"), &out.stdout).unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources: [out.yaml]\n",
    )
    .unwrap();
    let built = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "kubectl cannot read the output: {}\n{}",
        text(&built.stderr),
        text(&out.stdout)
    );
    let docs = yaml_docs(&text(&built.stdout));
    let map = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(map["data"]["q.sql"], "\tSELECT 1;\n");
    assert_eq!(map["data"]["script"], "set -e\n\tbundle exec rake\n");
    assert!(docs.iter().any(|d| d["kind"] == "Deployment"));
}

/// A small Sidekiq worker Deployment, with `namespace` when given.
fn worker(name: &str, app: &str, namespace: Option<&str>) -> String {
    let namespace = namespace.map_or(String::new(), |ns| format!(", namespace: {ns}"));
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, labels: {{app: {app}}}{namespace}}}\nspec:\n  template:\n    metadata: {{annotations: {{sidekiq-guard.io/longest-job: 2m}}}}\n    spec:\n      containers:\n      - name: sidekiq\n        image: shop:1\n        command: [bundle, exec, sidekiq]\n        env: [{{name: REDIS_URL, value: 'redis://redis:6379/0'}}]\n"
    )
}

#[test]
fn sidekiq_in_a_kind_sidekiq_guard_does_not_read_is_said_not_checked() {
    let rollout = worker("reports", "worker", None).replace(
        "apiVersion: apps/v1\nkind: Deployment",
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout",
    );
    let out = run(&["validate", "-f", "-"], Some(&rollout));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "Warning: stdin: Rollout reports: not checked: argoproj.io/v1alpha1 Rollout is not a kind sidekiq-guard reads (Kubernetes' own Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob); its pods are reviewed, and injected where they opt in, as they are created\n\
         0 Sidekiq workload(s): 0 error(s), 0 warning(s), 0 info\n"
    );
    // Without Sidekiq in its template, another kind is simply not ours.
    let web = rollout.replace(
        "command: [bundle, exec, sidekiq]",
        "command: [bundle, exec, puma]",
    );
    let out = run(&["validate", "-f", "-"], Some(&web));
    assert_eq!(
        text(&out.stderr),
        "0 Sidekiq workload(s): 0 error(s), 0 warning(s), 0 info\n"
    );
}

#[test]
fn a_selector_picks_the_objects_read_from_files_as_kubectl_does() {
    let input = format!(
        "{}---\n{}---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: cm, labels: {{app: worker}}}}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: other}}\n",
        worker("reports", "worker", None),
        worker("web", "web", None),
    );
    let out = run(
        &["validate", "-f", "-", "-l", "app=worker", "-o", "json"],
        Some(&input),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(object_names(&report), ["reports"]);

    let out = run(
        &["inject", "-f", "-", "-l", "app in (worker)"],
        Some(&input),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let docs = yaml_docs(&text(&out.stdout));
    let names: Vec<&str> = docs
        .iter()
        .flat_map(|d| match d["items"].as_array() {
            Some(items) => items.iter().collect(),
            None => vec![d],
        })
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["reports", "cm"]);
    assert!(docs[0]["spec"]["template"]["spec"]["initContainers"].is_array());

    // A selector that matches nothing is a typo, not a clean input: as kubectl apply -l.
    for command in ["validate", "inject"] {
        let out = run(&[command, "-f", "-", "-l", "app=wroker"], Some(&input));
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(
            text(&out.stderr).ends_with(
                "error: no object matches -l \"app=wroker\": expected at least one (kubectl apply -l refuses to apply nothing too; is the selector right?)\n"
            ),
            "{command}: {}",
            text(&out.stderr)
        );
    }

    let out = run(&["validate", "-f", "-", "-l", "app in (a,b"], Some(&input));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: invalid label selector \"app in (a,b\": a value list is not closed with ')'\n"
    );
}

#[test]
fn a_namespace_flag_places_objects_without_one_and_refuses_others() {
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy.path(), "excludedNamespaces: [jobs]\n").unwrap();
    let policy = policy.path().to_str().unwrap();
    let input = worker("reports", "worker", None);
    let out = run(
        &["validate", "-f", "-", "-n", "shop", "-o", "json"],
        Some(&input),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["objects"][0]["namespace"], "shop");

    // Excluded by the policy: said on stderr, not silently counted as nothing.
    let out = run(
        &["validate", "-f", "-", "-n", "jobs", "--policy", policy],
        Some(&input),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "Warning: stdin: Deployment jobs/reports: not checked: namespace jobs is excluded by the policy (excludedNamespaces)\n\
         0 Sidekiq workload(s): 0 error(s), 0 warning(s), 0 info\n"
    );

    let elsewhere = worker("reports", "worker", Some("billing"));
    for command in ["validate", "inject"] {
        let out = run(&[command, "-f", "-", "-n", "shop"], Some(&elsewhere));
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(out.stdout.is_empty(), "{command}");
        assert!(
            text(&out.stderr).ends_with(
                "error: stdin: the object is in namespace \"billing\", not \"shop\" (-n); pass -n billing or leave -n out, as kubectl apply asks\n"
            ),
            "{command}: {}",
            text(&out.stderr)
        );
    }

    let out = run(&["inject", "-f", "-", "-A"], Some(&input));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: -A/--all-namespaces chooses namespaces of the cluster; with -f the files are the input (-n NAME gives objects without a namespace one)\n"
    );
}

#[test]
fn an_empty_input_fails_rather_than_passing_the_gate() {
    for command in ["validate", "inject"] {
        for input in [
            "",
            "# nothing rendered\n---\n",
            // What `kubectl get deployments -o yaml` prints when none matched.
            "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n",
            // The same with `items` null or left out, as some generators write it.
            "apiVersion: v1\nitems: null\nkind: List\n",
            "apiVersion: v1\nkind: DeploymentList\n",
        ] {
            let out = run(&[command, "-f", "-"], Some(input));
            assert_eq!(out.status.code(), Some(2), "{command} {input:?}");
            assert!(
                text(&out.stderr).ends_with(
                    "error: no objects in stdin: expected at least one Kubernetes object (kubectl apply refuses an empty input too; did the command that produced it fail?)\n"
                ),
                "{command}: {}",
                text(&out.stderr)
            );
        }
    }
}

/// kubectl refuses a `List` with items that are not objects; so do both commands, by item.
#[test]
fn a_list_of_other_things_than_objects_is_an_input_error() {
    for command in ["validate", "inject"] {
        for (items, what) in [
            (
                "[{kind: ConfigMap, apiVersion: v1, metadata: {name: a}}, 5]",
                "items[1] is a number",
            ),
            ("{a: 1}", "items is an object"),
            ("[null]", "items[0] is null"),
        ] {
            let input = format!("apiVersion: v1\nkind: List\nitems: {items}\n");
            let out = run(&[command, "-f", "-"], Some(&input));
            assert_eq!(out.status.code(), Some(2), "{command} {items}");
            let error = format!(
                "error: stdin: the items of a List must be a list of Kubernetes objects (mappings with apiVersion and kind), but {what}\n"
            );
            assert!(
                text(&out.stderr).ends_with(&error),
                "{command} {items}: {}",
                text(&out.stderr)
            );
            assert!(out.stdout.is_empty(), "{command} {items}");
        }
    }
}

#[test]
fn inject_refuses_a_workload_of_the_wrong_shape_and_prints_nothing() {
    let input = format!(
        "{}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: w}}\nspec: {{template: {{spec: {{containers: [{{name: sidekiq, command: bundle exec sidekiq}}]}}}}}}\n",
        worker("reports", "worker", None)
    );
    let out = run(&["inject", "-f", "-"], Some(&input));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).ends_with(
            "error: stdin#2: malformed workload: Deployment w: spec.template.spec.containers[0].command must be a list of strings\n"
        ),
        "{}",
        text(&out.stderr)
    );
}

/// A custom resource named like a built-in workload is not one: printed unchanged, and its
/// Sidekiq said not to be checked.
#[test]
fn a_custom_resource_with_a_workload_kind_is_left_alone() {
    let custom = "apiVersion: example.com/v1\nkind: Deployment\nmetadata:\n  name: worker\nspec:\n  template:\n    spec:\n      containers:\n      - name: worker\n        image: shop:1\n        command: [bundle, exec, sidekiq]\n";
    let out = run(&["inject", "-f", "-"], Some(custom));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(yaml_docs(&text(&out.stdout)), yaml_docs(custom));
    assert_eq!(
        text(&out.stderr),
        "Warning: stdin: Deployment worker: not checked: example.com/v1 Deployment is not a kind sidekiq-guard reads (Kubernetes' own Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob); its pods are reviewed, and injected where they opt in, as they are created\n"
    );
    let out = run(&["validate", "-f", "-", "-o", "json"], Some(custom));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Moving a native sidecar that was the only init container to a classic one removes
/// `initContainers` whole: the template's other keys keep their order (serde_json's `remove`
/// would move the last key into its place).
#[test]
fn moving_the_sidecar_keeps_the_order_of_the_manifests_keys() {
    let native = run(
        &["inject", "-f", "manifests/examples/report-worker.yaml"],
        None,
    );
    assert!(native.status.success(), "{}", text(&native.stderr));
    let mut edited = yaml_docs(&text(&native.stdout)).remove(0);
    let spec = edited["spec"]["template"]["spec"].as_object_mut().unwrap();
    assert!(spec.contains_key("initContainers"));
    // Keys after `initContainers`, as a later edit of the manifest puts them.
    spec.insert(
        "nodeSelector".into(),
        serde_json::json!({"pool": "workers"}),
    );
    spec.insert("priorityClassName".into(), serde_json::json!("batch"));
    let keys = |doc: &serde_json::Value| -> Vec<String> {
        doc["spec"]["template"]["spec"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let mut expected = keys(&edited);
    expected.retain(|key| key != "initContainers");
    let moved = run(
        &["inject", "--sidecar-mode", "classic", "-f", "-"],
        Some(&edited.to_string()),
    );
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    let moved: serde_json::Value = serde_json::from_slice(&moved.stdout).unwrap();
    assert_eq!(keys(&moved), expected);
}

/// A kubeconfig that does not parse: the error says where, never quotes its token.
#[test]
fn a_kubeconfig_yaml_error_does_not_quote_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: \"eyJSECRETTOKEN\n",
    )
    .unwrap();
    let out = run(
        &["status", "--kubeconfig", kubeconfig.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("failed to parse kubeconfig YAML: "),
        "{stderr}"
    );
    assert!(!stderr.contains("eyJSECRET"), "{stderr}");
}
