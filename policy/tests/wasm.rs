//! The built policy module (`scripts/build-policy`), run in a waPC host the way Kubewarden runs
//! it, against the native webhook's decisions on the whole AdmissionReview corpus.
//!
//! The expected answers are the golden files under `tests/data/admission/expected`, which the
//! core's own tests keep equal to what the webhook answers.

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use serde_json::{Value, json};
use sidekiq_guard::Policy;
use sidekiq_guard_policy_host::{HostError, WapcHost, built_policy, on_big_stack, workspace_root};

/// The two policies the golden files were answered with, as Kubewarden settings.
fn settings() -> [(&'static str, Value); 2] {
    [
        // The golden files hold the webhook's answers on a cluster with native sidecars.
        ("warn", json!({"sidecar": {"mode": "native"}})),
        (
            "deny",
            json!({"enforcement": "deny", "maxGracePeriod": "10m", "sidecar": {"mode": "native"}}),
        ),
    ]
}

fn host() -> WapcHost {
    let module = built_policy().unwrap_or_else(|err| panic!("{err}"));
    WapcHost::from_file(&module).unwrap_or_else(|err| panic!("{err}"))
}

/// Runs a test body on an 8 MiB stack (wasmi needs more than the harness's 2 MiB threads).
fn run(body: impl FnOnce() + Send) {
    on_big_stack(body).unwrap();
}

struct Fixture {
    name: String,
    review: Value,
    expected: Value,
}

fn corpus() -> Vec<Fixture> {
    let dir = workspace_root().join("tests/data/admission");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let expected = dir.join("expected").join(format!("{name}.json"));
            Fixture {
                review: serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap(),
                expected: serde_json::from_slice(&std::fs::read(&expected).unwrap_or_else(|err| {
                    panic!("{name}: no golden answer {}: {err}", expected.display())
                }))
                .unwrap(),
                name,
            }
        })
        .collect()
}

/// A Kubewarden `ValidationRequest` as the policy server sends it.
fn validation_request(request: &Value, settings: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"request": request, "settings": settings})).unwrap()
}

fn validate(host: &mut WapcHost, payload: &[u8]) -> ValidationResponse {
    let bytes = host
        .call("validate", payload)
        .unwrap_or_else(|err| panic!("validate must answer, not fail: {err}"));
    serde_json::from_slice(&bytes).unwrap()
}

/// `object` with `patch` (RFC 6902 as JSON) applied by the `json-patch` crate, an implementation
/// independent of the core's.
fn patched(object: &Value, patch: &Value) -> Value {
    let patch: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
    let mut object = object.clone();
    json_patch::patch(&mut object, &patch).unwrap();
    object
}

#[test]
fn every_fixture_gets_the_native_webhooks_decision() {
    run(|| {
        let mut host = host();
        let fixtures = corpus();
        assert!(
            fixtures.len() >= 16,
            "the corpus shrank: {}",
            fixtures.len()
        );
        let (mut mutated, mut denied, mut untouched) = (0, 0, 0);
        for fixture in &fixtures {
            let request = &fixture.review["request"];
            for (policy, settings) in settings() {
                let case = format!("{} under {policy}", fixture.name);
                let expected = &fixture.expected[policy]["combined"];
                let payload = validation_request(request, &settings);
                let response = validate(&mut host, &payload);

                assert_eq!(
                    Value::Bool(response.accepted),
                    expected["allowed"],
                    "{case}: accepted"
                );
                assert_eq!(
                    response.message.clone().map_or(Value::Null, Value::String),
                    expected["message"],
                    "{case}: message"
                );
                assert_eq!(
                    json!(response.warnings.clone().unwrap_or_default()),
                    expected["warnings"],
                    "{case}: warnings"
                );
                let patch = &expected["patch"];
                let has_patch = patch.as_array().is_some_and(|ops| !ops.is_empty());
                if response.accepted {
                    assert_eq!(response.code, None, "{case}: code");
                } else {
                    assert_eq!(response.code, Some(403), "{case}: code");
                    denied += 1;
                }
                match (&response.mutated_object, has_patch) {
                    (Some(object), true) => {
                        assert_eq!(
                            object,
                            &patched(&request["object"], patch),
                            "{case}: mutated object"
                        );
                        mutated += 1;
                    }
                    (None, false) => untouched += 1,
                    (object, _) => panic!(
                        "{case}: mutated_object {} but the webhook's patch is {patch}",
                        if object.is_some() {
                            "present"
                        } else {
                            "absent"
                        }
                    ),
                }
                // For a pod on CREATE the webhook's /mutate patch is what the API server applies:
                // the policy must produce the very same object.
                let mutate = &fixture.expected[policy]["mutate"];
                if response.accepted && mutate.get("patch").is_some() {
                    assert_eq!(
                        response.mutated_object.as_ref(),
                        Some(&patched(&request["object"], &mutate["patch"])),
                        "{case}: differs from the webhook's /mutate patch"
                    );
                }
                // The same shell compiled natively gives the same answer. Compared as JSON, not
                // bytes: a workspace build orders object keys as inserted (the plugin asks
                // serde_json for that), the module alphabetically, which the API server ignores.
                let as_json = |bytes: Vec<u8>| serde_json::from_slice::<Value>(&bytes).unwrap();
                assert_eq!(
                    as_json(host.call("validate", &payload).unwrap()),
                    as_json(sidekiq_guard_policy::validate(&payload).unwrap()),
                    "{case}: wasm and native answers differ"
                );
            }
        }
        // The corpus exercises every kind of answer, so the comparisons above mean something.
        assert!(
            mutated >= 5 && denied >= 4 && untouched >= 8,
            "{mutated} {denied} {untouched}"
        );
    });
}

/// `mutate: false` (a policy deployed with `mutating: false` beside the webhook) answers every
/// fixture as the webhook's `/validate` does, and never with a mutated object.
#[test]
fn without_mutation_every_fixture_gets_the_validating_webhooks_decision() {
    run(|| {
        let mut host = host();
        let mut denied = 0;
        for fixture in &corpus() {
            let request = &fixture.review["request"];
            for (policy, mut settings) in settings() {
                let case = format!("{} under {policy}, mutate: false", fixture.name);
                let expected = &fixture.expected[policy]["validate"];
                settings["mutate"] = json!(false);
                let response = validate(&mut host, &validation_request(request, &settings));
                assert_eq!(
                    Value::Bool(response.accepted),
                    expected["allowed"],
                    "{case}"
                );
                assert_eq!(
                    json!(response.warnings.unwrap_or_default()),
                    expected.get("warnings").cloned().unwrap_or(json!([])),
                    "{case}: warnings"
                );
                assert_eq!(
                    response.message.map_or(Value::Null, Value::String),
                    expected["status"]["message"],
                    "{case}: message"
                );
                assert!(response.mutated_object.is_none(), "{case}");
                denied += usize::from(!response.accepted);
            }
        }
        assert!(denied >= 4, "{denied}");
    });
}

#[test]
fn mutation_keeps_fields_this_build_does_not_know() {
    run(|| {
        let mut host = host();
        let review: Value = serde_json::from_slice(
            &std::fs::read(
                workspace_root().join("tests/data/admission/create-pod-rails-worker.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let mut request = review["request"].clone();
        request["object"]["spec"]["resourceClaims"] = json!([{"name": "gpu", "fromTheFuture": 1}]);
        request["object"]["spec"]["containers"][0]["x-unknown"] = json!({"kept": true});
        let native = json!({"sidecar": {"mode": "native"}});
        let response = validate(&mut host, &validation_request(&request, &native));
        let object = response.mutated_object.unwrap();
        assert_eq!(object["spec"]["resourceClaims"][0]["fromTheFuture"], 1);
        assert_eq!(object["spec"]["containers"][0]["x-unknown"]["kept"], true);
        // The webhook reads objects without them; the policy answers with the whole object, and
        // Kubewarden would turn a dropped field into a patch that removes it.
        assert_eq!(
            object["metadata"]["managedFields"],
            request["object"]["metadata"]["managedFields"]
        );
        assert!(object["metadata"]["managedFields"][0]["fieldsV1"].is_object());
        assert_eq!(
            object["spec"]["initContainers"][0]["name"],
            "sidekiq-guard-probe"
        );
    });
}

/// A pod created before sidekiq-guard was installed, then updated (a label, an ownerReference):
/// its spec is immutable, so the answer is the webhook's `/validate` on it as it stands — never a
/// mutated object the API server would refuse. The update adds no error finding, so even `deny`
/// admits it, warning about what the pod lacks.
#[test]
fn a_pod_is_never_patched_on_update() {
    run(|| {
        let mut host = host();
        let review: Value = serde_json::from_slice(
            &std::fs::read(
                workspace_root().join("tests/data/admission/create-pod-rails-worker.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let mut request = review["request"].clone();
        request["operation"] = json!("UPDATE");
        request["oldObject"] = request["object"].clone();
        request["object"]["metadata"]["labels"]["team"] = json!("payments");
        for (policy, settings) in settings() {
            let response = validate(&mut host, &validation_request(&request, &settings));
            let native = Policy::from_value(settings.clone()).unwrap();
            let ctx = sidekiq_guard::Context {
                policy: &native,
                mode: sidekiq_guard_policy::sidecar_mode(&native),
                namespace: None,
            };
            let webhook = sidekiq_guard::admission::respond(
                &serde_json::from_value(request.clone()).unwrap(),
                sidekiq_guard::admission::Endpoint::Validate,
                &ctx,
            )
            .response;
            assert!(response.mutated_object.is_none(), "{policy}: mutated");
            assert_eq!(response.accepted, webhook.allowed, "{policy}");
            assert!(response.accepted, "{policy}: {:?}", response.message);
            assert_eq!(
                response.message,
                webhook.status.map(|status| status.message),
                "{policy}"
            );
            let warnings = response.warnings.unwrap_or_default();
            assert_eq!(warnings, webhook.warnings, "{policy}");
            assert!(
                warnings.iter().any(|w| w.contains("SG002 prestop-missing")),
                "{policy}: {warnings:?}"
            );
        }
    });
}

#[test]
fn settings_are_validated_with_the_core_messages() {
    run(|| {
        let mut host = host();
        let check = |host: &mut WapcHost, payload: &[u8]| -> SettingsValidationResponse {
            let bytes = host
                .call("validate_settings", payload)
                .unwrap_or_else(|err| panic!("validate_settings must answer: {err}"));
            serde_json::from_slice(&bytes).unwrap()
        };
        for valid in [
            json!(null),
            json!({}),
            json!({"enforcement": "deny", "maxGracePeriod": "10m"}),
            json!({"defaults": {"longestJob": "15m", "probePort": 9100},
                   "sidecar": {"mode": "classic", "image": "registry.example/sg:1",
                               "resources": {"requests": {"cpu": "10m"}}},
                   "excludedNamespaces": ["legacy"]}),
        ] {
            let answer = check(&mut host, &serde_json::to_vec(&valid).unwrap());
            assert!(answer.valid, "{valid}: {:?}", answer.message);
            assert_eq!(answer.message, None);
        }
        for invalid in [
            json!({"enforcment": "deny"}),
            json!({"sidecar": {"mode": "nativ"}}),
            json!({"defaults": {"longestJob": "forever"}}),
            json!({"defaults": {"probePort": 70000}}),
            json!({"sidecar": {"resources": {"limits": {"memory": "lots"}}}}),
            json!({"sidecar": {"image": " "}}),
            json!({"maxGracePeriod": true}),
            json!("deny"),
            json!([]),
        ] {
            let answer = check(&mut host, &serde_json::to_vec(&invalid).unwrap());
            assert!(!answer.valid, "{invalid} was accepted");
            // Exactly the message the webhook's --policy and kubectl sidekiq --policy print.
            let expected = Policy::from_value(invalid.clone()).unwrap_err().to_string();
            assert!(expected.starts_with("policy "), "{expected}");
            assert_eq!(
                answer.message.as_deref(),
                Some(expected.as_str()),
                "{invalid}"
            );
        }
        let answer = check(&mut host, b"{\"defaults\": {");
        assert!(!answer.valid);
        assert!(
            answer
                .message
                .unwrap()
                .starts_with("policy settings are not JSON: EOF while parsing")
        );
    });
}

#[test]
fn malformed_requests_are_rejected_with_a_reason_not_a_trap() {
    run(|| {
        let mut host = host();
        let malformed = workspace_root().join("tests/data/admission/malformed");
        let truncated = std::fs::read(malformed.join("truncated.json")).unwrap();
        let not_json = std::fs::read(malformed.join("not-json.txt")).unwrap();
        let deep = format!(
            r#"{{"request": {{"uid": "u", "operation": "CREATE", "kind": {{"kind": "Pod"}}, "object": {}1{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
            (
                "not JSON",
                not_json,
                400,
                "expected value at line 1 column 1",
            ),
            ("truncated", truncated, 400, "EOF while parsing"),
            ("empty", Vec::new(), 400, "EOF while parsing"),
            (
                "an empty array",
                b"[]".to_vec(),
                400,
                "a ValidationRequest must be a JSON object, found a list",
            ),
            (
                "a truncated list",
                b"[1,".to_vec(),
                400,
                "the ValidationRequest cannot be read: EOF while parsing",
            ),
            (
                "the fields as a list",
                br#"[{"uid": "u", "operation": "CREATE"}, {}]"#.to_vec(),
                400,
                "a ValidationRequest must be a JSON object, found a list",
            ),
            (
                "the request as a list",
                br#"{"request": ["u", {"group": "", "version": "v1", "kind": "Pod"}]}"#.to_vec(),
                400,
                "invalid type: sequence, expected a JSON object",
            ),
            (
                "no operation",
                br#"{"request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}}}"#
                    .to_vec(),
                400,
                "invalid ValidationRequest: request.operation is missing; it must be one of CREATE, UPDATE, DELETE, CONNECT",
            ),
            (
                "a number",
                b"7".to_vec(),
                400,
                "a ValidationRequest must be a JSON object, found a number",
            ),
            (
                "no request",
                br#"{"settings": {}}"#.to_vec(),
                400,
                "missing field `request`",
            ),
            (
                "uid not a string",
                br#"{"request": {"uid": 42}}"#.to_vec(),
                400,
                "invalid type: integer `42`, expected a string",
            ),
            (
                "namespace not a string",
                br#"{"request": {"uid": "u", "namespace": ["shop"]}}"#.to_vec(),
                400,
                "invalid type: sequence, expected a string",
            ),
            (
                "nested 100000 deep",
                deep.into_bytes(),
                400,
                "recursion limit exceeded",
            ),
            (
                "invalid settings",
                br#"{"request": {"uid": "u"}, "settings": {"sidecar": {"mode": "nativ"}}}"#
                    .to_vec(),
                500,
                "invalid settings: policy sidecar.mode: unknown variant `nativ`",
            ),
        ];
        for (case, payload, code, reason) in cases {
            let response = validate(&mut host, &payload);
            assert!(!response.accepted, "{case}: accepted");
            assert_eq!(response.code, Some(code), "{case}");
            let message = response.message.unwrap();
            assert!(
                message.starts_with("sidekiq-guard: ") && message.contains(reason),
                "{case}: {message}"
            );
            assert_eq!(
                host.call("validate", &payload).unwrap(),
                sidekiq_guard_policy::validate(&payload).unwrap(),
                "{case}: wasm and native answers differ"
            );
        }
        // Objects that are not what their kind says are refused as the webhook refuses them
        // (HTTP 400, the same reason after the policy's prefix): never admitted untouched as
        // if they were absent, never a trap.
        for (object, reason) in [
            (
                json!("a string"),
                "request.object must be a JSON object on CREATE and UPDATE; found a string on CREATE",
            ),
            (
                json!(42),
                "request.object must be a JSON object on CREATE and UPDATE; found a number on CREATE",
            ),
            (
                json!([]),
                "request.object must be a JSON object on CREATE and UPDATE; found a list on CREATE",
            ),
            (
                json!(null),
                "request.object must be a JSON object on CREATE and UPDATE; found null or nothing on CREATE",
            ),
            (
                json!({"spec": "x"}),
                "request.object.kind must be \"Pod\", the kind in request.kind; found none",
            ),
            (
                json!({"kind": "Pod", "metadata": "x", "spec": {"containers": [{"name": "w"}]}}),
                "request.object is malformed: Pod (unnamed): metadata must be an object",
            ),
            (
                json!({"kind": "Pod", "spec": {"containers": {"w": {"image": "app"}}}}),
                "request.object is malformed: Pod (unnamed): spec.containers must be a non-empty list",
            ),
        ] {
            let request = json!({"uid": "u", "operation": "CREATE", "namespace": "shop",
                                 "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                 "object": object});
            let payload = validation_request(&request, &json!({}));
            let response = validate(&mut host, &payload);
            assert!(!response.accepted, "{object}");
            assert_eq!(response.code, Some(400), "{object}");
            assert_eq!(
                response.message.as_deref(),
                Some(format!("sidekiq-guard: invalid ValidationRequest: {reason}").as_str()),
                "{object}"
            );
            // The webhook's 400 for the same request says the same after its own prefix.
            let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                "request": request});
            let webhook =
                sidekiq_guard::admission::parse(&serde_json::to_vec(&review).unwrap()).unwrap_err();
            assert_eq!(
                sidekiq_guard::errors::chain(&webhook),
                format!("invalid AdmissionReview: {reason}")
            );
            assert_eq!(
                host.call("validate", &payload).unwrap(),
                sidekiq_guard_policy::validate(&payload).unwrap(),
                "{object}: wasm and native answers differ"
            );
        }
        // After all that, the same instance still answers a real request correctly.
        let review: Value = serde_json::from_slice(
            &std::fs::read(
                workspace_root().join("tests/data/admission/create-pod-rails-worker.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let response = validate(
            &mut host,
            &validation_request(&review["request"], &json!({})),
        );
        assert!(response.accepted);
        assert_eq!(
            response.mutated_object.unwrap()["spec"]["terminationGracePeriodSeconds"],
            350
        );
    });
}

#[test]
fn a_large_object_is_handled() {
    run(|| {
        let mut host = host();
        let review: Value = serde_json::from_slice(
            &std::fs::read(
                workspace_root().join("tests/data/admission/create-pod-rails-worker.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let mut request = review["request"].clone();
        // 1.5 MB, the API server's default request size limit.
        request["object"]["metadata"]["annotations"]["example.com/blob"] =
            json!("x".repeat(1_500_000));
        let response = validate(&mut host, &validation_request(&request, &json!({})));
        assert!(response.accepted);
        let object = response.mutated_object.unwrap();
        assert_eq!(
            object["metadata"]["annotations"]["example.com/blob"]
                .as_str()
                .map(str::len),
            Some(1_500_000)
        );
        assert_eq!(object["spec"]["terminationGracePeriodSeconds"], 350);
    });
}

#[test]
fn wapc_protocol_operations() {
    run(|| {
        let mut host = host();
        assert_eq!(host.call("protocol_version", b"").unwrap(), b"\"v1\"");
        match host.call("mutate", b"{}") {
            Err(HostError::Guest { operation, message }) => {
                assert_eq!(operation, "mutate");
                assert_eq!(message, "No handler registered for function mutate");
            }
            other => panic!("expected a waPC error, got {other:?}"),
        }
        // The policy needs no host capabilities, so it never logs through the host either.
        assert!(host.take_console().is_empty());
    });
}

#[test]
fn the_module_is_under_one_megabyte() {
    let module = built_policy().unwrap_or_else(|err| panic!("{err}"));
    let size = std::fs::metadata(&module).unwrap().len();
    assert!(size < 1_000_000, "{} is {size} bytes", module.display());
}
