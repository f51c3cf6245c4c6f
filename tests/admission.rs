//! The AdmissionReview corpus under `tests/data/admission`, answered by the core as `/mutate`,

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]
//! `/validate` and the combined (Kubewarden) decision, against golden answers. The webhook and the
//! wasm policy test their own answers against the same golden files.

mod common;

use base64::Engine as _;
use serde_json::{Value, json};
use sidekiq_guard::admission::{self, Endpoint};
use sidekiq_guard::{Context, Mode, Policy};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = common::root().join("tests/data/admission");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
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

/// A response with its patch decoded, so golden files are readable.
fn readable(response: &admission::AdmissionResponse) -> Value {
    let mut value = serde_json::to_value(response).unwrap();
    if let Some(patch) = value.get("patch").and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        value["patch"] = serde_json::from_slice(&bytes).unwrap();
    }
    value
}

#[test]
fn every_review_is_answered_as_the_golden_files_say() {
    let policies = [
        ("warn", Policy::default()),
        (
            "deny",
            Policy::parse("enforcement: deny\nmaxGracePeriod: 10m").unwrap(),
        ),
    ];
    for (name, body) in corpus() {
        let request = admission::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut answers = serde_json::Map::new();
        for (policy_name, policy) in &policies {
            let ctx = Context {
                policy,
                mode: Mode::Native,
                namespace: None,
            };
            let mutate = admission::respond(&request, Endpoint::Mutate, &ctx);
            let validate = admission::respond(&request, Endpoint::Validate, &ctx);
            let combined = admission::combined(&request, &ctx);
            assert_eq!(mutate.response.uid, request.uid);
            answers.insert(
                policy_name.to_string(),
                json!({
                    "mutate": readable(&mutate.response),
                    "mutateOutcome": mutate.outcome,
                    "validate": readable(&validate.response),
                    "validateOutcome": validate.outcome,
                    "combined": {
                        "allowed": combined.allowed,
                        "message": combined.message,
                        "warnings": combined.warnings,
                        "patch": combined.ops,
                        "outcome": combined.outcome,
                    },
                }),
            );
        }
        common::golden_json(
            &format!("tests/data/admission/expected/{name}.json"),
            &Value::Object(answers),
        );
    }
}

#[test]
fn malformed_reviews_are_refused_with_a_reason() {
    let dir = common::root().join("tests/data/admission/malformed");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let err = admission::parse(&std::fs::read(&path).unwrap()).unwrap_err();
        let err = sidekiq_guard::errors::chain(&err);
        seen.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            err,
        ));
    }
    seen.sort();
    let messages: Vec<&str> = seen.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(messages.len(), 19);
    const OPERATIONS: &str = "CREATE, UPDATE, DELETE, CONNECT";
    for (file, message) in &seen {
        // What an operator reads in the API server's error: the field, and what is accepted.
        let exact = match file.as_str() {
            "array-body.json" | "array-form.json" => {
                "an AdmissionReview must be a JSON object, found a list".to_owned()
            }
            "object-null.json" => "invalid AdmissionReview: request.object must be a JSON object on CREATE and UPDATE; found null or nothing on CREATE".to_owned(),
            "object-list.json" => "invalid AdmissionReview: request.object must be a JSON object on CREATE and UPDATE; found a list on CREATE".to_owned(),
            "object-empty.json" => "invalid AdmissionReview: request.object.kind must be \"Pod\", the kind in request.kind; found none".to_owned(),
            "operation-unknown.json" => format!("invalid AdmissionReview: request.operation \"FOO\" is not one of {OPERATIONS}"),
            "no-operation.json" => format!("invalid AdmissionReview: request.operation is missing; it must be one of {OPERATIONS}"),
            "no-kind.json" => "invalid AdmissionReview: request.kind is missing or has no kind; it must be the object's group, version and kind, such as {\"group\": \"\", \"version\": \"v1\", \"kind\": \"Pod\"}".to_owned(),
            "metadata-string.json" => "invalid AdmissionReview: request.object is malformed: Pod (unnamed): metadata must be an object".to_owned(),
            "containers-mapping.json" => "invalid AdmissionReview: request.object is malformed: Pod worker: spec.containers must be a non-empty list".to_owned(),
            "command-string.json" => "invalid AdmissionReview: request.object is malformed: Pod worker: spec.containers[0].command must be a list of strings".to_owned(),
            "env-mapping.json" => "invalid AdmissionReview: request.object is malformed: Pod worker: spec.containers[0].env must be a list of objects".to_owned(),
            _ => String::new(),
        };
        if !exact.is_empty() {
            assert_eq!(message, &exact, "{file}");
            continue;
        }
        let expected = match file.as_str() {
            "empty-uid.json" => "AdmissionReview request has no uid",
            "no-request.json" => "AdmissionReview has no request",
            "v1beta1.json" => {
                "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got apiVersion \"admission.k8s.io/v1beta1\""
            }
            "wrong-kind.json" => {
                "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got apiVersion \"admission.k8s.io/v1\" and kind \"Pod\""
            }
            "uid-not-a-string.json" => {
                "request body is not an AdmissionReview: request.uid: invalid type: integer `42`, expected a string"
            }
            _ => "request body is not an AdmissionReview: ",
        };
        assert!(message.starts_with(expected), "{file}: {message}");
        // serde's names for the types it reads into are not the user's business.
        assert!(!message.contains("struct"), "{file}: {message}");
    }
}

/// The Kubewarden policy answers in one step what the webhook answers in two: the API server
/// calls `/mutate` (pods on CREATE), applies its patch, then calls `/validate` with the result.
/// Workloads are not mutated, by the webhook or the policy; `/validate` judges them as their
/// pods will be injected. The combined decision must be that sequence's, fixture by fixture.
#[test]
fn the_combined_decision_is_the_webhooks_mutate_then_validate() {
    let policies = [
        Policy::default(),
        Policy::parse("enforcement: deny\nmaxGracePeriod: 10m").unwrap(),
        Policy::parse("enforcement: deny\nmaxGracePeriod: 2m").unwrap(),
    ];
    let mut compared = 0;
    for (name, body) in corpus() {
        let request = admission::parse(&body).unwrap();
        for policy in &policies {
            let ctx = Context {
                policy,
                mode: Mode::Native,
                namespace: None,
            };
            let mutate = admission::respond(&request, Endpoint::Mutate, &ctx);
            let mut admitted = request.clone();
            if let (Some(review), Some(object)) = (&mutate.review, &request.object)
                && mutate.response.patch.is_some()
            {
                admitted.object = Some(common::apply_independently(object, &review.ops).unwrap());
            }
            let validate = admission::respond(&admitted, Endpoint::Validate, &ctx);
            let combined = admission::combined(&request, &ctx);
            let what = format!("{name} under {policy:?}");
            assert_eq!(
                combined.allowed, validate.response.allowed,
                "{what}: {:?}",
                validate.response
            );
            assert_eq!(
                combined.message,
                validate.response.status.as_ref().map(|s| s.message.clone()),
                "{what}"
            );
            // The policy patches exactly what /mutate patches: pods on CREATE, never a
            // workload's template.
            let mutated = mutate
                .review
                .as_ref()
                .filter(|_| combined.allowed && mutate.response.patch.is_some())
                .map_or(&[][..], |r| &r.ops[..]);
            assert_eq!(
                combined.ops, mutated,
                "{what}: the policy patches the pod as /mutate does"
            );
            compared += 1;
        }
    }
    assert!(compared >= 45, "the corpus shrank: {compared}");
}
