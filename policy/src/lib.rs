//! sidekiq-guard as a Kubewarden policy: a waPC guest for `wasm32-wasip1`.
//!
//! Kubewarden calls one operation per admission request, `validate`, which both mutates and
//! validates. The policy answers with [`sidekiq_guard::admission::combined`] — the webhook's
//! `/mutate` patch and its `/validate` verdict computed in one pass by the same core — so a cluster
//! that enforces policy with Kubewarden gets exactly the webhook's decisions, messages and
//! finding codes. The mutated object is the request's own JSON with the core's patch operations
//! applied: it never goes through typed Kubernetes structs, which would drop fields this build
//! does not know.
//!
//! Operations (waPC names, as Kubewarden calls them):
//! - `validate` — a Kubewarden `ValidationRequest` (`{"request": AdmissionRequest, "settings":
//!   policy}`) in, a `ValidationResponse` out ([`validate`]);
//! - `validate_settings` — the policy document in, `{"valid": …, "message": …}` out
//!   ([`validate_settings`]);
//! - `protocol_version` — `"v1"`.
//!
//! Nothing here panics on input: unreadable requests and settings become rejections and
//! `valid: false` answers carrying the core's messages, never a trap.

// The waPC ABI needs one exported, unmangled symbol (`wapc_init`); everything else is safe code.
#![deny(unsafe_code)]

use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use kubewarden_policy_sdk::wapc_guest::{self, CallResult};
use serde::Deserialize;
use serde_json::Value;
use sidekiq_guard::admission::{self, AdmissionRequest, NotAnObject, RequestError};
use sidekiq_guard::patch::{self, ApplyError};
use sidekiq_guard::policy::PolicyError;
use sidekiq_guard::{Context, Mode, Policy};

/// The status code of a policy denial, as the webhook's `/validate` sends it.
pub const DENIED: u16 = sidekiq_guard::admission::DENIED_CODE;
/// The status code when the `ValidationRequest` itself cannot be read.
pub const BAD_REQUEST: u16 = 400;
/// The status code when the policy cannot evaluate a well-formed request (invalid settings that
/// reached `validate`, or a patch that does not apply): the fault is the policy's, not the user's.
pub const POLICY_ERROR: u16 = 500;

/// Registers the waPC operations. Kubewarden's waPC host calls this export once after
/// instantiating the module, before any `__guest_call`.
#[allow(unsafe_code)] // `no_mangle` is how the host finds the export; the function itself is safe.
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    wapc_guest::register_function("validate", validate);
    wapc_guest::register_function("validate_settings", validate_settings);
    wapc_guest::register_function(
        "protocol_version",
        kubewarden_policy_sdk::protocol_version_guest,
    );
}

/// A Kubewarden `ValidationRequest`. The `request` is the Kubernetes AdmissionRequest, which the
/// core reads as it reads the webhook's.
#[derive(Deserialize)]
struct ValidationRequest {
    request: AdmissionRequest,
    /// The policy document; absent or `null` is the default policy.
    #[serde(default)]
    settings: Value,
}

/// Why a `validate` call was rejected without an admission decision.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    /// The payload is not a `ValidationRequest` (not JSON, no `request`, a field of the wrong type).
    #[error("sidekiq-guard: the ValidationRequest cannot be read")]
    Malformed(#[source] serde_json::Error),
    /// The payload is JSON but not an object (serde would read a list as the fields in order).
    #[error("sidekiq-guard: a ValidationRequest must be a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// The request is one no API server sends (no operation, no object on CREATE, a field of
    /// the object with the wrong type…): refused as the webhook refuses it, with the same
    /// message after the prefix.
    #[error("sidekiq-guard: invalid ValidationRequest")]
    Invalid(#[source] RequestError),
    /// The settings in the request are not a valid policy. Kubewarden checks them with
    /// `validate_settings` before serving, so this only happens with hosts that do not.
    #[error("sidekiq-guard: invalid settings")]
    Settings(#[source] SettingsError),
    /// The core's patch does not apply to the object it was computed from (a core defect).
    #[error("sidekiq-guard: internal error")]
    Patch(#[source] ApplyError),
}

impl EvaluationError {
    /// The rejection message: the error and its cause, since a ValidationResponse carries one
    /// string. (Not `errors::chain`: walking causes generically links `std::io::Error`'s
    /// formatting into the module, 220 KB for nothing these causes contain.)
    pub fn message(&self) -> String {
        match self {
            EvaluationError::Malformed(cause) => format!("{self}: {cause}"),
            EvaluationError::NotAnObject(_) => self.to_string(),
            EvaluationError::Invalid(_) => sidekiq_guard::errors::chain(self),
            EvaluationError::Settings(cause) => format!("{self}: {cause}"),
            EvaluationError::Patch(cause) => format!("{self}: {cause}"),
        }
    }

    /// The status code that goes with the rejection.
    pub fn code(&self) -> u16 {
        match self {
            EvaluationError::Malformed(_)
            | EvaluationError::NotAnObject(_)
            | EvaluationError::Invalid(_) => BAD_REQUEST,
            EvaluationError::Settings(_) | EvaluationError::Patch(_) => POLICY_ERROR,
        }
    }
}

/// The waPC `validate` operation: mutates and validates one admission request.
///
/// Always answers with a serialised `ValidationResponse`; errors are rejections with a message
/// (see [`evaluate`]). The waPC error path is only taken if serialising the response fails.
pub fn validate(payload: &[u8]) -> CallResult {
    let response = evaluate(payload).unwrap_or_else(|err| ValidationResponse {
        accepted: false,
        message: Some(err.message()),
        code: Some(err.code()),
        mutated_object: None,
        audit_annotations: None,
        warnings: None,
    });
    Ok(serde_json::to_vec(&response)?)
}

/// Evaluates a serialised `ValidationRequest` into the `ValidationResponse` Kubewarden expects:
/// accepted with the mutated object (when the core changes it) and the core's warnings, or
/// rejected with code 403 and the same message as the webhook's `/validate`. A request the
/// webhook answers with HTTP 400 (see [`AdmissionRequest::check`]) is rejected with code 400
/// and the webhook's reason.
pub fn evaluate(payload: &[u8]) -> Result<ValidationResponse, EvaluationError> {
    admission::expect_json_object(payload).map_err(|err| match err {
        NotAnObject::Json(found) => EvaluationError::NotAnObject(found),
        NotAnObject::Invalid(cause) => EvaluationError::Malformed(cause),
    })?;
    let ValidationRequest {
        mut request,
        settings,
    } = serde_json::from_slice(payload).map_err(EvaluationError::Malformed)?;
    let Settings { policy, mutate } =
        Settings::read(settings).map_err(EvaluationError::Settings)?;
    request.check().map_err(EvaluationError::Invalid)?;
    // Kubewarden's policy server fills `namespace` with "" for cluster-scoped objects where the
    // API server omits it; the core reads an absent namespace, as the webhook receives it.
    if request.namespace.as_deref() == Some("") {
        request.namespace = None;
    }
    let ctx = Context {
        policy: &policy,
        mode: sidecar_mode(&policy),
        namespace: None,
    };
    if !mutate {
        let ctx = Context {
            mode: Mode::for_judging(policy.sidecar.mode, request.object.as_ref()),
            ..ctx
        };
        return Ok(judged(&request, &ctx));
    }
    let combined = admission::combined(&request, &ctx);
    let warnings = (!combined.warnings.is_empty()).then_some(combined.warnings);
    if !combined.allowed {
        return Ok(ValidationResponse {
            accepted: false,
            message: combined.message,
            code: Some(DENIED),
            mutated_object: None,
            audit_annotations: None,
            warnings,
        });
    }
    let mutated_object = match request.object {
        Some(mut object) if !combined.ops.is_empty() => {
            patch::apply(&mut object, &combined.ops).map_err(EvaluationError::Patch)?;
            Some(object)
        }
        _ => None,
    };
    Ok(ValidationResponse {
        accepted: true,
        message: None,
        code: None,
        mutated_object,
        audit_annotations: None,
        warnings,
    })
}

/// The answer of a policy that does not mutate: the webhook's `/validate` verdict alone. A pod
/// is judged as it comes — after the mutating webhooks, so an injected pod passes and one the
/// webhook did not reach gets its findings — and nothing is ever returned mutated, which
/// Kubewarden refuses from a policy deployed with `mutating: false`.
fn judged(request: &AdmissionRequest, ctx: &Context<'_>) -> ValidationResponse {
    let answer = admission::respond(request, admission::Endpoint::Validate, ctx);
    let response = answer.response;
    ValidationResponse {
        accepted: response.allowed,
        code: response.status.as_ref().map(|status| status.code),
        message: response.status.map(|status| status.message),
        mutated_object: None,
        audit_annotations: None,
        warnings: (!response.warnings.is_empty()).then_some(response.warnings),
    }
}

/// The settings: the policy document, and the policy's own `mutate` (default `true`), which
/// set to `false` makes it judge without mutating, for a ClusterAdmissionPolicy with
/// `mutating: false` beside the webhook's injection.
struct Settings {
    policy: Policy,
    mutate: bool,
}

/// The settings key that turns mutation off.
const MUTATE: &str = "mutate";

/// Why the settings are not valid, as `validate_settings` says it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The policy document is not valid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// `mutate` is not a boolean (the JSON type found).
    #[error("mutate must be true or false, found {0}")]
    Mutate(&'static str),
}

impl Settings {
    fn read(mut settings: Value) -> Result<Self, SettingsError> {
        let mutate = match settings.as_object_mut().and_then(|map| map.remove(MUTATE)) {
            None | Some(Value::Null) => true,
            Some(Value::Bool(mutate)) => mutate,
            Some(other) => {
                let found = sidekiq_guard::workload::json_type(&other);
                return Err(SettingsError::Mutate(found));
            }
        };
        let policy = Policy::from_value(settings)?;
        Ok(Settings { policy, mutate })
    }
}

/// Where the sidecar goes. A waPC policy cannot ask the API server for its version (Kubewarden's
/// host capabilities read resources, not `/version`), so `auto` is decided as the webhook decides
/// for a server whose version it cannot read: classic, which works on every cluster, where a
/// native sidecar on one without sidecar support would block every pod. Set
/// `sidecar.mode: native` in the settings on Kubernetes 1.29+ (and to inject Jobs).
pub fn sidecar_mode(policy: &Policy) -> Mode {
    Mode::resolve(policy.sidecar.mode, None)
}

/// The waPC `validate_settings` operation: the settings are the policy document, checked by the
/// core with the same messages as the webhook's `--policy` and `kubectl sidekiq --policy`
/// (e.g. ``policy sidecar.mode: unknown variant `nativ`, expected one of `auto`, …``).
pub fn validate_settings(payload: &[u8]) -> CallResult {
    let response = match check_settings(payload) {
        Ok(_) => SettingsValidationResponse {
            valid: true,
            message: None,
        },
        Err(message) => SettingsValidationResponse {
            valid: false,
            message: Some(message),
        },
    };
    Ok(serde_json::to_vec(&response)?)
}

/// Reads the settings payload as a policy. An empty payload is no settings: the default policy.
pub fn check_settings(payload: &[u8]) -> Result<Policy, String> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Policy::default());
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|err| format!("policy settings are not JSON: {err}"))?;
    Settings::read(value)
        .map(|settings| settings.policy)
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn request(settings: Value, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "request": {
                "uid": "1299d386-525b-4032-98ae-1949f69f9cfc",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": "shop",
                "operation": "CREATE",
                "object": object,
            },
            "settings": settings,
        }))
        .unwrap()
    }

    fn worker() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "w", "annotations": {"sidekiq-guard.io/longest-job": "5m"},
                         "x-future-field": {"kept": true}},
            "spec": {"containers": [{"name": "w", "image": "app", "command": ["sidekiq"],
                     "env": [{"name": "REDIS_URL", "value": "redis://r:6379"}]}],
                     "someFieldFromKubernetes1_40": "kept"},
        })
    }

    #[test]
    fn mutates_the_raw_object_and_keeps_fields_it_does_not_know() {
        let native = json!({"sidecar": {"mode": "native"}});
        let response = evaluate(&request(native, worker())).unwrap();
        assert!(response.accepted);
        let mutated = response.mutated_object.unwrap();
        assert_eq!(mutated["spec"]["terminationGracePeriodSeconds"], 350);
        assert_eq!(mutated["spec"]["someFieldFromKubernetes1_40"], "kept");
        assert_eq!(mutated["metadata"]["x-future-field"]["kept"], true);
        assert_eq!(
            mutated["spec"]["initContainers"][0]["name"],
            "sidekiq-guard-probe"
        );
        let warnings = response.warnings.unwrap();
        assert!(
            warnings[0].starts_with("sidekiq-guard: terminationGracePeriodSeconds set to 350"),
            "{warnings:?}"
        );
    }

    #[test]
    fn classic_mode_and_the_default_put_the_sidecar_in_containers() {
        for settings in [json!({"sidecar": {"mode": "classic"}}), json!({})] {
            let response = evaluate(&request(settings, worker())).unwrap();
            let mutated = response.mutated_object.unwrap();
            assert_eq!(
                mutated["spec"]["containers"][1]["name"],
                "sidekiq-guard-probe"
            );
            assert!(mutated["spec"].get("initContainers").is_none());
        }
    }

    #[test]
    fn auto_mode_is_the_webhooks_choice_for_an_unknown_server() {
        assert_eq!(sidecar_mode(&Policy::default()), Mode::Classic);
        let native = Policy::parse("sidecar: {mode: native}").unwrap();
        assert_eq!(sidecar_mode(&native), Mode::Native);
    }

    #[test]
    fn deny_rejects_with_403_and_no_mutation() {
        let mut pod = worker();
        pod["metadata"]["annotations"]["sidekiq-guard.io/longest-job"] = json!("2h");
        let response = evaluate(&request(json!({"enforcement": "deny"}), pod)).unwrap();
        assert!(!response.accepted);
        assert_eq!(response.code, Some(DENIED));
        assert!(response.mutated_object.is_none());
        let message = response.message.unwrap();
        assert!(
            message.starts_with("sidekiq-guard denied Pod shop/w: SG009 grace-above-maximum"),
            "{message}"
        );
    }

    #[test]
    fn an_empty_namespace_is_an_absent_one() {
        let mut body: Value = serde_json::from_slice(&request(json!(null), worker())).unwrap();
        body["request"]["namespace"] = json!("");
        let response = evaluate(&serde_json::to_vec(&body).unwrap()).unwrap();
        let warnings = response.warnings.unwrap();
        assert!(response.accepted && !warnings.is_empty());
        let mut body: Value = serde_json::from_slice(&request(json!(null), worker())).unwrap();
        body["request"]["namespace"] = json!("");
        body["settings"] = json!({"enforcement": "deny", "maxGracePeriod": "1m"});
        let message = evaluate(&serde_json::to_vec(&body).unwrap())
            .unwrap()
            .message
            .unwrap();
        // "Pod w", not "Pod /w": no namespace is shown rather than an empty one.
        assert!(
            message.starts_with("sidekiq-guard denied Pod w:"),
            "{message}"
        );
    }

    #[test]
    fn unreadable_requests_are_rejected_with_400_and_the_reason() {
        for (payload, reason) in [
            (&b"<html>"[..], "expected value at line 1 column 1"),
            (br#"{"settings": {}}"#, "missing field `request`"),
            (
                br#"{"request": {"uid": 7}}"#,
                "invalid type: integer `7`, expected a string",
            ),
        ] {
            let response: ValidationResponse =
                serde_json::from_slice(&validate(payload).unwrap()).unwrap();
            assert!(!response.accepted);
            assert_eq!(response.code, Some(BAD_REQUEST));
            let message = response.message.unwrap();
            assert!(
                message.starts_with("sidekiq-guard: the ValidationRequest cannot be read: ")
                    && message.contains(reason),
                "{message}"
            );
        }
    }

    /// What the webhook answers with HTTP 400 is rejected with code 400 and the same reason,
    /// never admitted untouched as if the object were absent or not a workload.
    #[test]
    fn requests_no_api_server_sends_are_rejected_with_400_as_the_webhook_refuses_them() {
        let mut metadata = worker();
        metadata["metadata"] = json!("x");
        let mut command = worker();
        command["spec"]["containers"][0]["command"] = json!("sidekiq");
        let with = |field: &str, value: Value| {
            let mut body: Value = serde_json::from_slice(&request(json!(null), worker())).unwrap();
            body["request"][field] = value;
            serde_json::to_vec(&body).unwrap()
        };
        let invalid = "sidekiq-guard: invalid ValidationRequest: ";
        for (payload, expected) in [
            (
                with("object", json!(null)),
                format!(
                    "{invalid}request.object must be a JSON object on CREATE and UPDATE; found null or nothing on CREATE"
                ),
            ),
            (
                with("object", json!({})),
                format!(
                    "{invalid}request.object.kind must be \"Pod\", the kind in request.kind; found none"
                ),
            ),
            (
                with("operation", json!("FOO")),
                format!(
                    "{invalid}request.operation \"FOO\" is not one of CREATE, UPDATE, DELETE, CONNECT"
                ),
            ),
            (
                request(json!(null), metadata),
                format!(
                    "{invalid}request.object is malformed: Pod (unnamed): metadata must be an object"
                ),
            ),
            (
                request(json!(null), command),
                format!(
                    "{invalid}request.object is malformed: Pod w: spec.containers[0].command must be a list of strings"
                ),
            ),
            (
                br#"[{"uid": "u"}, {}]"#.to_vec(),
                "sidekiq-guard: a ValidationRequest must be a JSON object, found a list".to_owned(),
            ),
        ] {
            let response: ValidationResponse =
                serde_json::from_slice(&validate(&payload).unwrap()).unwrap();
            assert!(!response.accepted, "{expected}");
            assert_eq!(response.code, Some(BAD_REQUEST));
            assert_eq!(response.message.as_deref(), Some(expected.as_str()));
            assert!(response.mutated_object.is_none());
        }
    }

    /// `mutate: false`, for a policy deployed with `mutating: false` beside the webhook: the
    /// `/validate` verdict, never a mutated object (which Kubewarden would refuse).
    #[test]
    fn without_mutation_it_judges_as_the_validating_webhook() {
        let judge = |settings: Value, object: Value| evaluate(&request(settings, object)).unwrap();
        let uninjected = judge(
            json!({"mutate": false, "sidecar": {"mode": "native"}}),
            worker(),
        );
        assert!(uninjected.accepted);
        assert!(uninjected.mutated_object.is_none());
        let warnings = uninjected.warnings.unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("sidekiq-guard: SG002 prestop-missing")),
            "{warnings:#?}"
        );

        let denied = judge(
            json!({"mutate": false, "enforcement": "deny", "sidecar": {"mode": "native"}}),
            worker(),
        );
        assert!(!denied.accepted);
        assert_eq!(denied.code, Some(DENIED));
        assert!(denied.mutated_object.is_none());
        assert!(denied.message.unwrap().contains("SG002"));

        // The pod as the webhook injected it passes, unchanged.
        let native = json!({"sidecar": {"mode": "native"}});
        let injected = judge(native.clone(), worker()).mutated_object.unwrap();
        let passed = judge(
            json!({"mutate": false, "enforcement": "deny", "sidecar": {"mode": "native"}}),
            injected,
        );
        assert!(passed.accepted, "{:?}", passed.message);
        assert!(passed.mutated_object.is_none());

        // Under `auto` (which the policy resolves to classic), a pod the webhook injected with
        // a native sidecar on a 1.29+ cluster is judged where its sidecar is.
        let injected = judge(native.clone(), worker()).mutated_object.unwrap();
        let passed = judge(json!({"mutate": false, "enforcement": "deny"}), injected);
        assert!(passed.accepted, "{:?}", passed.message);

        let refused: ValidationResponse =
            serde_json::from_slice(&validate(&request(json!({"mutate": 1}), worker())).unwrap())
                .unwrap();
        assert!(!refused.accepted);
        assert_eq!(refused.code, Some(POLICY_ERROR));
        assert_eq!(
            refused.message.as_deref(),
            Some("sidekiq-guard: invalid settings: mutate must be true or false, found a number")
        );
    }

    #[test]
    fn invalid_settings_in_a_request_are_rejected_with_the_policy_message() {
        let response: ValidationResponse = serde_json::from_slice(
            &validate(&request(json!({"enforcment": "deny"}), worker())).unwrap(),
        )
        .unwrap();
        assert!(!response.accepted);
        assert_eq!(response.code, Some(POLICY_ERROR));
        let message = response.message.unwrap();
        assert!(
            message.starts_with(
                "sidekiq-guard: invalid settings: policy enforcment: unknown field `enforcment`"
            ),
            "{message}"
        );
    }

    #[test]
    fn settings_are_checked_with_the_core_messages() {
        let answer = |payload: &[u8]| -> SettingsValidationResponse {
            serde_json::from_slice(&validate_settings(payload).unwrap()).unwrap()
        };
        for valid in [
            &b""[..],
            b"null",
            b"{}",
            br#"{"enforcement": "deny", "maxGracePeriod": "10m"}"#,
        ] {
            let response = answer(valid);
            assert!(response.valid, "{}", String::from_utf8_lossy(valid));
            assert!(response.message.is_none());
        }
        let response = answer(br#"{"sidecar": {"mode": "nativ"}}"#);
        assert!(!response.valid);
        assert_eq!(
            response.message.unwrap(),
            Policy::parse(r#"{"sidecar": {"mode": "nativ"}}"#)
                .unwrap_err()
                .to_string()
        );
        assert!(answer(br#"{"mutate": false, "enforcement": "deny"}"#).valid);
        let response = answer(br#"{"mutate": "no"}"#);
        assert!(!response.valid);
        assert_eq!(
            response.message.unwrap(),
            "mutate must be true or false, found a string"
        );
        let response = answer(b"{\"defaults\": ");
        assert!(!response.valid);
        assert!(
            response
                .message
                .unwrap()
                .starts_with("policy settings are not JSON: EOF while parsing")
        );
    }
}
