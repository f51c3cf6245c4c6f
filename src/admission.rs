//! `admission.k8s.io/v1` AdmissionReviews in and out, without I/O: the webhook's `/mutate` and
//! `/validate` and the Kubewarden policy all answer through here, so they cannot disagree.
//!
//! Only the fields sidekiq-guard reads are declared; everything else the API server sends is
//! accepted and ignored, as newer API servers add fields. What no API server sends — a body
//! that is not a JSON object, a request without `kind` or `operation`, a CREATE without an
//! object, a pod whose fields have the wrong type — is refused by [`parse`] with the field and
//! what is accepted ([`RequestError`]), never answered as if the field were absent.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, de};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::analysis::{Context, Skip};
use crate::patch::{self, PatchOp};
use crate::pointer::Pointer as _;
use crate::review::{self, Decision, Outcome, Perspective, Review};
use crate::workload::{Kind, Workload, WorkloadError, json_type};

/// The only AdmissionReview version the webhook configurations ask for.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// An AdmissionReview that cannot be answered (the webhook replies HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The body is not JSON of the AdmissionReview shape.
    #[error("request body is not an AdmissionReview{}", at_field(.path))]
    Malformed {
        /// Where in the body (`request.uid`), or `.` for the body itself.
        path: String,
        /// What is wrong there.
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but not an object (serde would otherwise read a list as the fields in order).
    #[error("an AdmissionReview must be a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// Another apiVersion or kind.
    #[error(
        "expected apiVersion {API_VERSION} and kind AdmissionReview, got apiVersion {api_version:?} and kind {kind:?}"
    )]
    WrongType {
        /// As sent.
        api_version: String,
        /// As sent.
        kind: String,
    },
    /// No `request`.
    #[error("AdmissionReview has no request")]
    MissingRequest,
    /// An empty `request.uid`.
    #[error("AdmissionReview request has no uid")]
    MissingUid,
    /// A request the API server would not send: see [`RequestError`].
    #[error("invalid AdmissionReview")]
    Invalid(#[from] RequestError),
}

/// `: request.uid` after the error's context, nothing for the body as a whole (`.`) or where
/// the parser stopped before a field (`?`).
fn at_field(path: &str) -> String {
    if path == "." || path == "?" {
        String::new()
    } else {
        format!(": {path}")
    }
}

/// The operations of `admission.k8s.io/v1`.
pub const OPERATIONS: [&str; 4] = ["CREATE", "UPDATE", "DELETE", "CONNECT"];

/// An AdmissionRequest that is well-formed JSON but not what an API server sends, so that no
/// answer to it could be right. Each names the field and what is accepted.
///
/// What kube-apiserver always sends is accepted: `kind` and `operation` on every request;
/// `object` on CREATE and UPDATE (its `kind` set, in the version the webhook asked for); a null
/// `object` and the deleted object in `oldObject` on DELETE; the options object (e.g.
/// `PodExecOptions`) on CONNECT, which is not looked at. Fields sidekiq-guard does not read
/// (`resource`, `userInfo`, `options`…) are not required.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No `request.kind`, or one without its `kind`.
    #[error(
        "request.kind is missing or has no kind; it must be the object's group, version and kind, such as {{\"group\": \"\", \"version\": \"v1\", \"kind\": \"Pod\"}}"
    )]
    MissingKind,
    /// No `request.operation`.
    #[error("request.operation is missing; it must be one of CREATE, UPDATE, DELETE, CONNECT")]
    MissingOperation,
    /// An operation Kubernetes does not have.
    #[error("request.operation {0:?} is not one of CREATE, UPDATE, DELETE, CONNECT")]
    UnknownOperation(String),
    /// CREATE or UPDATE without an object to admit.
    #[error(
        "request.object must be a JSON object on CREATE and UPDATE; found {found} on {operation}"
    )]
    ObjectNotAnObject {
        /// `CREATE` or `UPDATE`.
        operation: &'static str,
        /// What was sent instead (`null or nothing`, `a list`…).
        found: &'static str,
    },
    /// An `oldObject` that is neither an object nor null.
    #[error("request.oldObject must be a JSON object or null; found {0}")]
    OldObjectNotAnObject(&'static str),
    /// An object of another kind than the request says, for a kind sidekiq-guard reviews.
    #[error("request.object.kind must be {expected:?}, the kind in request.kind; found {found}")]
    KindMismatch {
        /// `request.kind.kind`.
        expected: String,
        /// The object's `kind`, quoted, or what stands in its place.
        found: String,
    },
    /// A Pod or workload with a field of the wrong type (`metadata` a string, `spec.containers`
    /// a mapping, `command` a string…), which the API server cannot even decode. Judged by the
    /// core as `kubectl sidekiq validate` judges manifests; an absent field (a pod with no
    /// containers yet) is not this, and is left to the API server's own validation.
    #[error("request.object is malformed")]
    Object(#[source] WorkloadError),
}

/// The `kind` of an AdmissionRequest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
// The derived impls become inherent functions, wrapped below so that only a JSON object is read.
#[serde(remote = "Self")]
pub struct GroupVersionKind {
    /// API group (empty for core).
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// The parts of an AdmissionRequest sidekiq-guard reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct AdmissionRequest {
    /// Echoed in the response.
    pub uid: String,
    /// The object's kind.
    #[serde(default)]
    pub kind: GroupVersionKind,
    /// Object name (empty for generated names).
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace of the request.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    #[serde(default)]
    pub operation: String,
    /// The object (absent on DELETE).
    #[serde(default)]
    pub object: Option<Value>,
    /// The object before an UPDATE: an UPDATE is refused only for what it makes worse.
    #[serde(default)]
    pub old_object: Option<Value>,
    /// Whether the request is a dry run (sidekiq-guard has no side effects either way).
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// The subresource asked for (`status`, `ephemeralcontainers`, `scale`…), if any.
    #[serde(default)]
    pub sub_resource: Option<String>,
}

/// Reads a derived struct from a JSON object only. Serde's derived impls also read a JSON list
/// as the fields in declaration order (`["uid", {…}]`), which no Kubernetes client sends and
/// which would make a list answerable as if it were a request.
struct ObjectOnly<T>(std::marker::PhantomData<T>);

impl<'de, T> de::Visitor<'de> for ObjectOnly<T>
where
    T: ObjectFields<'de>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_fields(de::value::MapAccessDeserializer::new(map))
    }
}

/// The derived (remote = "Self") deserialiser of a struct read through [`ObjectOnly`].
trait ObjectFields<'de>: Sized {
    fn from_fields<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

/// `Deserialize` for types read through [`ObjectOnly`].
macro_rules! object_only {
    ($($type:ident),*) => {$(
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_map(ObjectOnly(std::marker::PhantomData))
            }
        }
    )*};
}

/// [`ObjectFields`] for structs whose derived reader is their own (`remote = "Self"`).
macro_rules! derived_fields {
    ($($type:ident),*) => {$(
        impl<'de> ObjectFields<'de> for $type {
            fn from_fields<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $type::deserialize(deserializer)
            }
        }
    )*};
}

derived_fields!(GroupVersionKind, AdmissionRequest);
object_only!(GroupVersionKind, AdmissionRequest, Trimmed);

/// An [`AdmissionRequest`] as [`parse`] reads it: its objects without `metadata.managedFields`
/// ([`crate::managed_fields`]), which an answer of patch operations never needs. The Kubewarden
/// policy, which answers with the whole mutated object, reads requests whole.
struct Trimmed(AdmissionRequest);

/// The fields of [`AdmissionRequest`], read into it, but for the objects the same as its own
/// derived reader's.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", remote = "AdmissionRequest")]
struct TrimmedFields {
    uid: String,
    #[serde(default)]
    kind: GroupVersionKind,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    operation: String,
    #[serde(default, deserialize_with = "crate::managed_fields::read_without")]
    object: Option<Value>,
    #[serde(default, deserialize_with = "crate::managed_fields::read_without")]
    old_object: Option<Value>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    sub_resource: Option<String>,
}

impl<'de> ObjectFields<'de> for Trimmed {
    fn from_fields<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TrimmedFields::deserialize(deserializer).map(Trimmed)
    }
}

impl Serialize for GroupVersionKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        GroupVersionKind::serialize(self, serializer)
    }
}

impl AdmissionRequest {
    /// The kind sidekiq-guard reviews that this request is for, by name and API group: a
    /// custom resource that borrows a built-in kind's name (`batch.volcano.sh` `Job`), which
    /// rules broader than the shipped ones may send, is none of them.
    pub fn reviewed_kind(&self) -> Option<Kind> {
        let kind = Kind::from_name(&self.kind.kind)?;
        if kind.in_group(&self.kind.group) {
            return Some(kind);
        }
        // A hand-written request (a `kwctl run` fixture) may leave the group out: the object's
        // own apiVersion decides then.
        let by_object = self.object.as_ref().and_then(Kind::of) == Some(kind);
        (self.kind.group.is_empty() && by_object).then_some(kind)
    }

    /// Checks what serde cannot: that the request is one an API server sends (see
    /// [`RequestError`]). [`parse`] calls it; a shell that reads requests otherwise (the
    /// Kubewarden policy) calls it before [`combined`].
    pub fn check(&self) -> Result<(), RequestError> {
        if self.kind.kind.is_empty() {
            return Err(RequestError::MissingKind);
        }
        let operation = match self.operation.as_str() {
            "" => return Err(RequestError::MissingOperation),
            known => OPERATIONS
                .into_iter()
                .find(|o| *o == known)
                .ok_or_else(|| RequestError::UnknownOperation(known.to_owned()))?,
        };
        if let Some(old) = &self.old_object
            && !old.is_object()
        {
            return Err(RequestError::OldObjectNotAnObject(json_type(old)));
        }
        if !matches!(operation, "CREATE" | "UPDATE") {
            return Ok(());
        }
        let object = match &self.object {
            Some(object) if object.is_object() => object,
            other => {
                return Err(RequestError::ObjectNotAnObject {
                    operation,
                    found: other.as_ref().map_or("null or nothing", json_type),
                });
            }
        };
        // Only the kinds sidekiq-guard reviews are its business.
        let Some(kind) = self.reviewed_kind() else {
            return Ok(());
        };
        // The API server always encodes the object with its apiVersion and kind (in the
        // version the webhook asked for): an object without one was not sent by it.
        let found = match object.get("kind") {
            Some(Value::String(kind)) if *kind == self.kind.kind => None,
            Some(Value::String(kind)) => Some(format!("{kind:?}")),
            None | Some(Value::Null) => Some("none".to_owned()),
            Some(other) => Some(json_type(other).to_owned()),
        };
        if let Some(found) = found {
            return Err(RequestError::KindMismatch {
                expected: self.kind.kind.clone(),
                found,
            });
        }
        // A pod without containers reaches the mutating webhooks: the API server validates
        // the object after them (and another webhook may add its containers). It is refused
        // there with the API server's own message, not malformed JSON.
        let containers = format!("{}/spec/containers", kind.template_pointer());
        if object
            .at(&containers)
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            return Ok(());
        }
        match Workload::locate(object) {
            Err(malformed @ WorkloadError::Malformed { missing: false, .. }) => {
                Err(RequestError::Object(malformed))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    request: Option<Trimmed>,
}

/// A body that must be a JSON object and is not one.
#[derive(Debug)]
pub enum NotAnObject {
    /// Valid JSON of another type: `a list`, `a string`, `a number`, `a boolean`, `null`.
    Json(&'static str),
    /// Not JSON at all: the parser's error.
    Invalid(serde_json::Error),
}

/// Checks that `body` is a JSON object before serde reads it as a struct: serde's derived impls
/// would read a JSON list as the struct's fields in order. Only the first byte is looked at
/// for an object, whose errors are the struct reader's to tell (with the field's path).
pub fn expect_json_object(body: &[u8]) -> Result<(), NotAnObject> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return Ok(());
    }
    // Checked without building it: a body of megabytes of list needs no memory to refuse.
    serde_json::from_slice::<de::IgnoredAny>(body).map_err(NotAnObject::Invalid)?;
    Err(NotAnObject::Json(match first {
        Some(b'[') => "a list",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }))
}

/// Reads and checks an AdmissionReview body. Its objects are read without
/// `metadata.managedFields`: the API server records them before calling webhooks, often half the
/// size of the object, and no answer of patch operations needs them. (A shell that answers with
/// the whole mutated object, as the Kubewarden policy does, reads requests whole.)
pub fn parse(body: &[u8]) -> Result<AdmissionRequest, AdmissionError> {
    expect_json_object(body).map_err(|err| match err {
        NotAnObject::Json(found) => AdmissionError::NotAnObject(found),
        NotAnObject::Invalid(source) => AdmissionError::Malformed {
            path: ".".to_owned(),
            source,
        },
    })?;
    // Tracking the path of every value as it is read took a quarter of the time of parsing
    // a review; only a malformed body needs it, so that one is read a second time.
    // Checked as UTF-8 once, whole: read from bytes, `serde_json` checks every string on its
    // own, which cost 4 % of a webhook request's instructions (`scripts/bench-instructions`).
    // A body that is not UTF-8 is read from bytes, for the error's position.
    let envelope: Envelope = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
    .map_err(|err| malformed_at(body, err))?;
    if envelope.api_version != API_VERSION || envelope.kind != "AdmissionReview" {
        return Err(AdmissionError::WrongType {
            api_version: envelope.api_version,
            kind: envelope.kind,
        });
    }
    let Trimmed(request) = envelope.request.ok_or(AdmissionError::MissingRequest)?;
    if request.uid.is_empty() {
        return Err(AdmissionError::MissingUid);
    }
    request.check()?;
    Ok(request)
}

/// The error of a body `serde_json` could not read as an [`Envelope`] (`err`), with the path
/// where reading it failed.
fn malformed_at(body: &[u8], err: serde_json::Error) -> AdmissionError {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, Envelope>(&mut deserializer) {
        Err(err) => AdmissionError::Malformed {
            path: err.path().to_string(),
            source: err.into_inner(),
        },
        // Read whole, so what failed is after it: trailing characters.
        Ok(_) => AdmissionError::Malformed {
            path: ".".to_owned(),
            source: err,
        },
    }
}

/// Which webhook endpoint is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/mutate`: pods on CREATE; always admits.
    Mutate,
    /// `/validate`: pods and workloads on CREATE and UPDATE; denies under `enforcement: deny`.
    Validate,
}

/// The status code of a policy denial (Forbidden), for the webhook and the wasm policy alike.
pub const DENIED_CODE: u16 = 403;

/// `response.status` of a denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// HTTP-like code: 403 for a policy denial.
    pub code: u16,
    /// Why.
    pub message: String,
}

/// An AdmissionResponse.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Admit or reject.
    pub allowed: bool,
    /// `JSONPatch` when there is a patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// The RFC 6902 patch, base64-encoded as the API documents it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<EncodedPatch>,
    /// `Warning:` lines for the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set on denial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl AdmissionResponse {
    /// The full AdmissionReview the webhook returns (`apiVersion`, `kind` and this response),
    /// as JSON bytes, written from the response's own `Serialize` without building a `Value`.
    pub fn review_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Review<'a> {
            api_version: &'static str,
            kind: &'static str,
            response: &'a AdmissionResponse,
        }
        let review = Review {
            api_version: API_VERSION,
            kind: "AdmissionReview",
            response: self,
        };
        let capacity = 256
            + self.patch.as_ref().map_or(0, |p| p.as_str().len())
            + self.warnings.iter().map(|w| w.len() + 3).sum::<usize>();
        let mut out = Vec::with_capacity(capacity);
        // A response (strings, numbers, a checked raw patch) always serialises, and writing
        // to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &review);
        out
    }
}

/// A JSON Patch, base64-encoded as `response.patch` carries it: held as the JSON string it is
/// written as, which serde_json copies as it is. Nothing in base64's alphabet needs escaping,
/// and serde_json's byte-by-byte escape scan of the patch, most of a mutation's answer, cost
/// the webhook about 5 % of a mutation.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct EncodedPatch(Box<RawValue>);

impl EncodedPatch {
    /// Serialises and base64-encodes `ops`.
    pub fn encode(ops: &[PatchOp]) -> Self {
        // The size is the Rails worker pod's patch, so that a typical one is written without
        // growing the buffer.
        let mut json = String::with_capacity(2048);
        patch::write_json(&mut json, ops);
        let mut quoted = String::with_capacity(json.len().div_ceil(3) * 4 + 2);
        quoted.push('"');
        base64::engine::general_purpose::STANDARD.encode_string(json, &mut quoted);
        quoted.push('"');
        // A quoted base64 text is a JSON string.
        Self(RawValue::from_string(quoted).expect("base64 in quotes is a JSON string"))
    }

    /// The base64 text.
    pub fn as_str(&self) -> &str {
        let quoted = self.0.get();
        &quoted[1..quoted.len() - 1]
    }
}

impl PartialEq for EncodedPatch {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EncodedPatch {}

/// The answer to one request, with what the shells log and count.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// What goes back to the API server.
    pub response: AdmissionResponse,
    /// The core's review, when the object was reviewed at all.
    pub review: Option<Review>,
    /// A stable label of the outcome for metrics and logs (`mutated`, `no-sidekiq`, `denied`…).
    pub outcome: &'static str,
    /// `Kind namespace/name` for logs.
    pub subject: String,
}

impl Answer {
    /// Whether the object was admitted with a patch that injects it.
    pub fn injected(&self) -> bool {
        self.response.allowed
            && self
                .review
                .as_ref()
                .is_some_and(|r| r.outcome == Outcome::Mutated)
    }

    /// Whether the object is a Sidekiq workload, or might be one: reviewed, and not skipped
    /// for running no Sidekiq.
    pub fn concerns_sidekiq(&self) -> bool {
        self.review
            .as_ref()
            .is_some_and(|r| r.outcome != Outcome::Skipped(Skip::NoSidekiq))
    }
}

/// Answers `request` as `endpoint`.
///
/// `/mutate` only patches pods on CREATE: pod specs are immutable afterwards, and a patch on an
/// UPDATE would be rejected by the API server. Anything it does not handle is admitted unchanged.
pub fn respond(request: &AdmissionRequest, endpoint: Endpoint, ctx: &Context<'_>) -> Answer {
    let kind = request.reviewed_kind();
    let (object, ctx, subject) = match reviewable(request, ctx) {
        Ok(reviewable) => reviewable,
        Err(outcome) => return pass(request, outcome),
    };
    match endpoint {
        Endpoint::Mutate => {
            if kind != Some(Kind::Pod) || request.operation != "CREATE" {
                return pass(request, "not-a-pod-create");
            }
            let review = review::mutate(object, &ctx);
            let decision = review::decide(&review, ctx.policy.enforcement, false, &subject);
            answer(request, decision, true, review, subject)
        }
        Endpoint::Validate => {
            if kind.is_none() {
                return pass(request, "not-a-workload");
            }
            let review_of =
                |object: &Value| review::validate(object, &ctx, Perspective::for_admission(object));
            let review = review_of(object);
            let may_deny = may_refuse(request, &review, review_of);
            let decision = review::decide(&review, ctx.policy.enforcement, may_deny, &subject);
            answer(request, decision, false, review, subject)
        }
    }
}

/// The object of a request that gets reviewed at all, the context with the request's namespace,
/// and the subject for messages; else the outcome label of letting it pass unreviewed.
fn reviewable<'a>(
    request: &'a AdmissionRequest,
    ctx: &Context<'a>,
) -> Result<(&'a Value, Context<'a>, String), &'static str> {
    let ctx = Context {
        namespace: request.namespace.as_deref().or(ctx.namespace),
        ..*ctx
    };
    let object = match (&request.object, request.operation.as_str()) {
        (Some(object), "CREATE" | "UPDATE") if !object.is_null() => object,
        _ => return Err("not-create-or-update"),
    };
    // A subresource's request (a pod's `status` or `ephemeralcontainers`, a workload's
    // `status` or `scale`) carries the object too, but changes none of what sidekiq-guard
    // sets: the webhook's rules do not ask for them, and a policy whose rules do must not
    // patch, nor refuse a controller's status update.
    if request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err("subresource");
    }
    if review::being_deleted(object) {
        return Err("being-deleted");
    }
    Ok((object, ctx, review::subject(object, ctx.namespace)))
}

/// The outcome label of `review` once decided.
fn outcome(decision: &Decision, review: &Review) -> &'static str {
    if decision.allowed {
        review.outcome.label()
    } else {
        "denied"
    }
}

/// Whether the request may be refused for `review`'s error findings: a CREATE always; an UPDATE
/// that changes a workload's pod template too, since the pods it rolls out are judged as
/// CREATEs and would be refused one by one, stalling the rollout; any other UPDATE only for an
/// error its old object did not have. A workload admitted before `deny` was set, or while the
/// webhook was down, can then still be relabelled, scaled and have its finalizers removed, and
/// is told its findings as warnings each time.
fn may_refuse(
    request: &AdmissionRequest,
    review: &Review,
    review_of: impl Fn(&Value) -> Review,
) -> bool {
    let Some(old) = &request.old_object else {
        return true;
    };
    if request.operation != "UPDATE" || old.is_null() {
        return true;
    }
    template_changed(request) || review.errors_beyond(&review_of(old))
}

/// Whether an UPDATE changes a workload's pod template, so that a rollout follows. Without an
/// old object to compare with, the template counts as changed.
fn template_changed(request: &AdmissionRequest) -> bool {
    let (Some(object), Some(old)) = (&request.object, &request.old_object) else {
        return true;
    };
    match request.reviewed_kind() {
        Some(Kind::Pod) | None => false,
        Some(kind) => object.at(kind.template_pointer()) != old.at(kind.template_pointer()),
    }
}

fn pass(request: &AdmissionRequest, outcome: &'static str) -> Answer {
    Answer {
        response: AdmissionResponse {
            uid: request.uid.clone(),
            allowed: true,
            patch_type: None,
            patch: None,
            warnings: Vec::new(),
            status: None,
        },
        review: None,
        outcome,
        subject: String::new(),
    }
}

fn answer(
    request: &AdmissionRequest,
    decision: Decision,
    with_patch: bool,
    review: Review,
    subject: String,
) -> Answer {
    let patch = (with_patch && !review.ops.is_empty()).then(|| EncodedPatch::encode(&review.ops));
    let outcome = outcome(&decision, &review);
    Answer {
        response: AdmissionResponse {
            uid: request.uid.clone(),
            allowed: decision.allowed,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings: decision.warnings,
            status: decision.message.map(|message| Status {
                code: DENIED_CODE,
                message,
            }),
        },
        review: Some(review),
        outcome,
        subject,
    }
}

/// What a policy engine that mutates and validates in one call (Kubewarden) returns: the
/// `/mutate` patch and the `/validate` verdict on the mutated object, computed in one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    /// Admit or reject.
    pub allowed: bool,
    /// On rejection, the same message `/validate` gives.
    pub message: Option<String>,
    /// Explanations and findings.
    pub warnings: Vec<String>,
    /// The patch to apply to the request's object (empty when rejected or nothing to change).
    pub ops: Vec<PatchOp>,
    /// Stable outcome label.
    pub outcome: &'static str,
}

/// Mutates and validates `request` in one pass, for pods and every workload kind: a pod is
/// patched on CREATE, as `/mutate` patches it; everything else, a workload's pod template
/// included, is judged as `/validate` judges it, never patched.
pub fn combined(request: &AdmissionRequest, ctx: &Context<'_>) -> Combined {
    let admit = |outcome| Combined {
        allowed: true,
        message: None,
        warnings: Vec::new(),
        ops: Vec::new(),
        outcome,
    };
    let (object, ctx, subject) = match reviewable(request, ctx) {
        Ok(reviewable) => reviewable,
        Err(outcome) => return admit(outcome),
    };
    let Some(kind) = request.reviewed_kind() else {
        return admit("not-a-workload");
    };
    let review_of = |object: &Value| {
        if patchable(request, kind) {
            review::mutate(object, &ctx)
        } else {
            review::validate(object, &ctx, Perspective::for_admission(object))
        }
    };
    let review = review_of(object);
    let may_deny = may_refuse(request, &review, review_of);
    let decision = review::decide(&review, ctx.policy.enforcement, may_deny, &subject);
    Combined {
        outcome: outcome(&decision, &review),
        allowed: decision.allowed,
        message: decision.message,
        warnings: decision.warnings,
        ops: if decision.allowed {
            review.ops
        } else {
            Vec::new()
        },
    }
}

/// Whether [`combined`] patches the object, rather than judging it as `/validate` does: a pod
/// on CREATE, exactly where the webhook's `/mutate` patches.
///
/// A workload's pod template is never patched, though the core could: its pods are injected as
/// they are created (which is why a workload is judged as injected), while an injection written
/// into the template would outlive every opt-out — `sidekiq-guard.io/inject=false` on the
/// template, a namespace losing its label or joining `excludedNamespaces`, the policy removed —
/// since a `kubectl apply` or Helm upgrade keeps fields it did not set, and the pods of such a
/// template, no longer sent to the policy, would carry the sidecar of the release that wrote it.
/// A pod is never patched on UPDATE either: its spec is immutable.
fn patchable(request: &AdmissionRequest, kind: Kind) -> bool {
    request.operation == "CREATE" && kind == Kind::Pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mode, Policy};
    use serde_json::json;

    fn review_body(operation: &str, kind: &str, object: Value) -> Vec<u8> {
        let group = match kind {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps",
            "Job" | "CronJob" => "batch",
            _ => "",
        };
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": group, "version": "v1", "kind": kind},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop",
                "operation": operation,
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": object,
                "oldObject": null,
                "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            }
        }))
        .unwrap()
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "w-", "annotations": {"sidekiq-guard.io/longest-job": "5m"}},
            "spec": {"containers": [{"name": "w", "image": "app", "command": ["sidekiq"],
                     "env": [{"name": "REDIS_URL", "value": "redis://r:6379"}]}]},
        })
    }

    fn ctx(policy: &Policy) -> Context<'_> {
        Context {
            policy,
            mode: Mode::Native,
            namespace: None,
        }
    }

    #[test]
    fn mutate_answers_with_a_base64_patch_and_the_same_uid() {
        let request = parse(&review_body("CREATE", "Pod", pod())).unwrap();
        let policy = Policy::default();
        let answer = respond(&request, Endpoint::Mutate, &ctx(&policy));
        let response: Value = serde_json::from_slice(&answer.response.review_json()).unwrap();
        assert_eq!(
            response["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(response["response"]["allowed"], true);
        assert_eq!(response["response"]["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(response["response"]["patch"].as_str().unwrap())
            .unwrap();
        let ops: Vec<PatchOp> = serde_json::from_slice(&patch).unwrap();
        assert!(answer.injected() && answer.concerns_sidekiq());
        assert_eq!(ops, answer.review.unwrap().ops);
        assert_eq!(answer.outcome, "mutated");
        assert_eq!(answer.subject, "Pod shop/w-*");
        assert!(
            response["response"]["warnings"][0]
                .as_str()
                .unwrap()
                .starts_with("sidekiq-guard: terminationGracePeriodSeconds set to 350")
        );
    }

    #[test]
    fn a_subresources_request_is_let_through_unreviewed() {
        let policy = Policy::default();
        for sub_resource in ["status", "ephemeralcontainers"] {
            let mut body: Value =
                serde_json::from_slice(&review_body("CREATE", "Pod", pod())).unwrap();
            body["request"]["subResource"] = json!(sub_resource);
            let request = parse(&serde_json::to_vec(&body).unwrap()).unwrap();
            for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
                let answer = respond(&request, endpoint, &ctx(&policy));
                assert_eq!(answer.outcome, "subresource");
                assert!(answer.response.allowed && answer.response.patch.is_none());
            }
            let combined = combined(&request, &ctx(&policy));
            assert_eq!((combined.outcome, combined.ops), ("subresource", vec![]));
        }
        // An empty one is the object itself.
        let mut body: Value = serde_json::from_slice(&review_body("CREATE", "Pod", pod())).unwrap();
        body["request"]["subResource"] = json!("");
        let request = parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(
            respond(&request, Endpoint::Mutate, &ctx(&policy)).outcome,
            "mutated"
        );
    }

    #[test]
    fn a_pod_without_sidekiq_is_not_a_concern() {
        let mut plain = pod();
        plain["spec"]["containers"][0]["command"] = json!(["puma"]);
        let annotated = plain.clone();
        plain["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        let request = parse(&review_body("CREATE", "Pod", plain)).unwrap();
        let answer = respond(&request, Endpoint::Mutate, &ctx(&Policy::default()));
        assert_eq!(answer.outcome, "no-sidekiq");
        assert!(answer.review.is_some() && !answer.concerns_sidekiq() && !answer.injected());

        // Annotated for sidekiq-guard, it asks for protection: no Sidekiq found is news.
        let request = parse(&review_body("CREATE", "Pod", annotated)).unwrap();
        let answer = respond(&request, Endpoint::Mutate, &ctx(&Policy::default()));
        let warnings = answer.response.warnings.join("\n");
        assert!(
            warnings.contains("SG012 container-not-found: annotated for sidekiq-guard, but no container runs sidekiq or sidekiqswarm as far as the manifest shows"),
            "{warnings}"
        );
    }

    #[test]
    fn mutate_leaves_updates_and_non_pods_alone() {
        let policy = Policy::default();
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
            "spec": {"template": {"metadata": {}, "spec": pod()["spec"].clone()}},
        });
        for (operation, object, outcome) in [
            ("UPDATE", pod(), "not-a-pod-create"),
            ("CREATE", deployment, "not-a-pod-create"),
            ("DELETE", pod(), "not-create-or-update"),
        ] {
            let kind = object["kind"].as_str().unwrap().to_owned();
            let request = parse(&review_body(operation, &kind, object)).unwrap();
            let answer = respond(&request, Endpoint::Mutate, &ctx(&policy));
            assert_eq!(answer.outcome, outcome);
            assert!(answer.response.allowed && answer.response.patch.is_none());
            assert!(!answer.injected() && !answer.concerns_sidekiq());
        }
    }

    #[test]
    fn validate_denies_with_403_under_deny() {
        let policy = Policy::parse("enforcement: deny").unwrap();
        let request = parse(&review_body("CREATE", "Pod", pod())).unwrap();
        let answer = respond(&request, Endpoint::Validate, &ctx(&policy));
        assert!(!answer.response.allowed);
        assert_eq!(answer.outcome, "denied");
        assert!(!answer.injected() && answer.concerns_sidekiq());
        let status = answer.response.status.unwrap();
        assert_eq!(status.code, 403);
        assert!(
            status
                .message
                .starts_with("sidekiq-guard denied Pod shop/w-*: SG001 grace-too-short"),
            "{}",
            status.message
        );
        assert!(answer.response.patch.is_none());
    }

    /// `review_json` against the review serde_json writes from the response.
    fn assert_written_as_review(response: &AdmissionResponse) {
        let written: Value = serde_json::from_slice(&response.review_json()).unwrap();
        let review = serde_json::json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response});
        assert_eq!(written, review);
    }

    #[test]
    fn the_review_is_written_as_the_review_value() {
        let request = parse(&review_body("CREATE", "Pod", pod())).unwrap();
        let deny = Policy::parse("enforcement: deny").unwrap();
        let default = Policy::default();
        let mutated = respond(&request, Endpoint::Mutate, &ctx(&default));
        let denied = respond(&request, Endpoint::Validate, &ctx(&deny));
        let passed = pass(&request, "not-sidekiq");
        assert!(mutated.response.patch.is_some() && !mutated.response.warnings.is_empty());
        assert!(denied.response.status.is_some());
        for answer in [mutated, denied, passed] {
            assert_written_as_review(&answer.response);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_uid_warning_or_message_is_written_as_json_escapes_it(
            uid in "\\PC*|[\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}]{0,8}",
            warnings in proptest::collection::vec("\\PC*|[\"\\\\\u{0}-\u{1f}]*", 0..3),
            message in proptest::option::of("\\PC*|[\"\\\\\u{0}-\u{1f}]*"),
            allowed: bool,
        ) {
            let ops = [PatchOp::Add { path: "/a~1b".to_owned(), value: Value::from(uid.clone()) }];
            assert_written_as_review(&AdmissionResponse {
                uid,
                allowed,
                patch_type: Some("JSONPatch"),
                patch: Some(EncodedPatch::encode(&ops)),
                warnings,
                status: message.map(|message| Status { code: DENIED_CODE, message }),
            });
        }
    }

    #[test]
    fn combined_equals_mutate_then_validate() {
        let policy = Policy::default();
        let request = parse(&review_body("CREATE", "Pod", pod())).unwrap();
        let combined = combined(&request, &ctx(&policy));
        let mutate = respond(&request, Endpoint::Mutate, &ctx(&policy));
        assert_eq!(combined.ops, mutate.review.unwrap().ops);
        let mut mutated = pod();
        crate::patch::apply(&mut mutated, &combined.ops).unwrap();
        let after = parse(&review_body("CREATE", "Pod", mutated)).unwrap();
        let validate = respond(&after, Endpoint::Validate, &ctx(&policy));
        assert_eq!(combined.allowed, validate.response.allowed);
    }

    /// A workload is judged, never patched: an injection written into its template would
    /// outlive an opt-out. Its pods are injected as they are created.
    #[test]
    fn combined_never_patches_a_workload() {
        let policy = Policy::default();
        let template = pod();
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "namespace": "shop"},
            "spec": {"template": {"metadata": template["metadata"], "spec": template["spec"]}},
        });
        for operation in ["CREATE", "UPDATE"] {
            let request = parse(&review_body(operation, "Deployment", deployment.clone())).unwrap();
            let answer = combined(&request, &ctx(&policy));
            let validate = respond(&request, Endpoint::Validate, &ctx(&policy));
            assert!(answer.ops.is_empty(), "{operation}: {:?}", answer.ops);
            assert_eq!(answer.allowed, validate.response.allowed);
            assert_eq!(answer.warnings, validate.response.warnings);
        }
    }

    /// Only a policy selecting objects by the label sees such a workload; SG024 says its pods
    /// do not carry the label.
    #[test]
    fn combined_does_not_patch_a_workload_opted_in_on_its_own_labels_alone() {
        let policy = Policy::default();
        let template = pod();
        let mut deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "namespace": "shop", "labels": {"sidekiq-guard.io/inject": "true"}},
            "spec": {"template": {"metadata": template["metadata"], "spec": template["spec"]}},
        });
        let request = parse(&review_body("CREATE", "Deployment", deployment.clone())).unwrap();
        let answer = combined(&request, &ctx(&policy));
        assert!(answer.ops.is_empty(), "{:?}", answer.ops);
        assert!(answer.allowed);
        assert!(
            answer
                .warnings
                .iter()
                .any(|w| w.contains("SG024 inject-label-on-workload-only")),
            "{:?}",
            answer.warnings
        );
        // Labelled on its template too, its pods carry the label: no SG024.
        deployment["spec"]["template"]["metadata"]["labels"] =
            json!({"sidekiq-guard.io/inject": "true"});
        let request = parse(&review_body("CREATE", "Deployment", deployment)).unwrap();
        let answer = combined(&request, &ctx(&policy));
        assert!(answer.ops.is_empty(), "{:?}", answer.ops);
        assert!(
            !answer.warnings.iter().any(|w| w.contains("SG024")),
            "{:?}",
            answer.warnings
        );
    }

    #[test]
    fn combined_never_patches_a_pod_on_update() {
        for (policy, denied) in [
            (Policy::default(), false),
            (Policy::parse("enforcement: deny").unwrap(), true),
        ] {
            let request = parse(&review_body("UPDATE", "Pod", pod())).unwrap();
            let combined = combined(&request, &ctx(&policy));
            let validate = respond(&request, Endpoint::Validate, &ctx(&policy));
            assert!(combined.ops.is_empty(), "{:?}", combined.ops);
            assert_eq!(combined.allowed, !denied);
            assert_eq!(combined.allowed, validate.response.allowed);
            assert_eq!(combined.warnings, validate.response.warnings);
            assert_eq!(
                combined.message,
                validate.response.status.map(|status| status.message)
            );
        }
    }

    #[test]
    fn reviews_are_read_without_the_objects_managed_fields() {
        let mut object = pod();
        object["metadata"]["managedFields"] = json!([{"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:spec": {}}}]);
        let mut old = object.clone();
        old["metadata"]["labels"] = json!({"app": "worker"});
        let mut body: Value =
            serde_json::from_slice(&review_body("UPDATE", "Pod", object)).unwrap();
        body["request"]["oldObject"] = old;
        let request = parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        for read in [&request.object, &request.old_object] {
            let metadata = read.as_ref().unwrap()["metadata"].as_object().unwrap();
            assert!(!metadata.contains_key("managedFields"), "{metadata:?}");
            assert!(metadata.contains_key("generateName"), "{metadata:?}");
        }
        assert_eq!(
            request.old_object.unwrap()["metadata"]["labels"]["app"],
            "worker"
        );
    }

    #[test]
    fn malformed_reviews_say_what_is_wrong() {
        let err = |body: &str| crate::errors::chain(&parse(body.as_bytes()).unwrap_err());
        assert!(err("{").starts_with("request body is not an AdmissionReview: EOF while parsing"));
        assert_eq!(
            err(
                r#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}"#
            ),
            "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got apiVersion \"admission.k8s.io/v1beta1\" and kind \"AdmissionReview\""
        );
        assert_eq!(
            err(r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#),
            "AdmissionReview has no request"
        );
        assert_eq!(
            err(
                r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": ""}}"#
            ),
            "AdmissionReview request has no uid"
        );
        assert!(err(r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 5}}"#)
            .starts_with("request body is not an AdmissionReview: request.uid: invalid type: integer `5`, expected a string"));
        // Whole, then more: the body as a whole is at fault.
        let whole = String::from_utf8(review_body("CREATE", "Pod", pod())).unwrap();
        assert!(
            err(&format!("{whole} {{}}")).starts_with(
                "request body is not an AdmissionReview: trailing characters at line 1"
            )
        );
    }

    /// The body is checked as UTF-8 whole, then read as text: a byte that is not UTF-8 is
    /// still refused with the field it is in, and text beyond ASCII still reads as written.
    #[test]
    fn a_body_is_read_as_utf8_and_refused_where_it_is_not() {
        let mut object = pod();
        object["metadata"]["annotations"]["team"] = json!("Zürich ✓");
        let body = review_body("CREATE", "Pod", object);
        let request = parse(&body).unwrap();
        assert_eq!(
            request.object.unwrap()["metadata"]["annotations"]["team"],
            "Zürich ✓"
        );

        let at = body.windows(2).position(|w| w == "ü".as_bytes()).unwrap();
        let mut latin1 = body[..at].to_vec();
        latin1.push(0xfc); // ü in Latin-1: not UTF-8
        latin1.extend_from_slice(&body[at + 2..]);
        let err = parse(&latin1).unwrap_err();
        assert!(
            crate::errors::chain(&err).starts_with(
                "request body is not an AdmissionReview: request.object.metadata.annotations.team: invalid unicode code point at line 1"
            ),
            "{}",
            crate::errors::chain(&err)
        );
    }

    /// Serde's derived impls read a JSON list as a struct's fields in order: a list must not
    /// pass for an AdmissionReview, nor its parts, and no internal type name may show.
    #[test]
    fn an_admission_review_and_its_parts_must_be_json_objects() {
        let err = |body: &str| crate::errors::chain(&parse(body.as_bytes()).unwrap_err());
        for (body, expected) in [
            (
                "[]",
                "an AdmissionReview must be a JSON object, found a list",
            ),
            (
                r#" ["admission.k8s.io/v1","AdmissionReview",{"uid":"x"}]"#,
                "an AdmissionReview must be a JSON object, found a list",
            ),
            (
                "\"review\"",
                "an AdmissionReview must be a JSON object, found a string",
            ),
            (
                "42",
                "an AdmissionReview must be a JSON object, found a number",
            ),
            (
                "null",
                "an AdmissionReview must be a JSON object, found null",
            ),
            (
                r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": ["u", {"group": "", "version": "v1", "kind": "Pod"}]}"#,
                "request body is not an AdmissionReview: request: invalid type: sequence, expected a JSON object at line 1 column 76",
            ),
            (
                r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "kind": ["", "v1", "Pod"]}}"#,
                "request body is not an AdmissionReview: request.kind: invalid type: sequence, expected a JSON object at line 1 column 97",
            ),
            (
                r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "kind": "Pod"}}"#,
                "request body is not an AdmissionReview: request.kind: invalid type: string \"Pod\", expected a JSON object at line 1 column 102",
            ),
        ] {
            assert_eq!(err(body), expected, "{body}");
            assert!(!err(body).contains("struct"), "{body}");
        }
        // Not JSON at all: the parser's own error, not a guess at a type.
        assert!(err("nonsense").starts_with(
            "request body is not an AdmissionReview: expected ident at line 1 column 2"
        ));
        assert!(
            err("[1,").starts_with("request body is not an AdmissionReview: EOF while parsing")
        );
    }

    /// A review with one field of its request replaced (`Value::Null` removes it).
    fn review_with(field: &str, value: Value) -> Vec<u8> {
        let mut review: Value =
            serde_json::from_slice(&review_body("CREATE", "Pod", pod())).unwrap();
        let request = review["request"].as_object_mut().unwrap();
        if value.is_null() {
            request.remove(field);
        } else {
            request.insert(field.to_owned(), value);
        }
        serde_json::to_vec(&review).unwrap()
    }

    #[test]
    fn requests_an_api_server_cannot_send_name_the_field_and_what_is_accepted() {
        let err = |body: Vec<u8>| crate::errors::chain(&parse(&body).unwrap_err());
        let mut string_metadata = pod();
        string_metadata["metadata"] = json!("x");
        let mut mapping_containers = pod();
        mapping_containers["spec"]["containers"] = json!({"w": {"image": "app"}});
        let mut string_command = pod();
        string_command["spec"]["containers"][0]["command"] = json!("bundle exec sidekiq");
        let mut mapping_env = pod();
        mapping_env["spec"]["containers"][0]["env"] = json!({"REDIS_URL": "redis://r:6379"});
        for (body, expected) in [
            (
                review_with("object", json!(null)),
                "invalid AdmissionReview: request.object must be a JSON object on CREATE and UPDATE; found null or nothing on CREATE",
            ),
            (
                review_with("object", json!([])),
                "invalid AdmissionReview: request.object must be a JSON object on CREATE and UPDATE; found a list on CREATE",
            ),
            (
                review_body("UPDATE", "Pod", json!("pod")),
                "invalid AdmissionReview: request.object must be a JSON object on CREATE and UPDATE; found a string on UPDATE",
            ),
            (
                review_with("object", json!({})),
                "invalid AdmissionReview: request.object.kind must be \"Pod\", the kind in request.kind; found none",
            ),
            (
                review_body("UPDATE", "Pod", json!({"kind": "Deployment", "spec": {}})),
                "invalid AdmissionReview: request.object.kind must be \"Pod\", the kind in request.kind; found \"Deployment\"",
            ),
            (
                review_with("operation", json!("FOO")),
                "invalid AdmissionReview: request.operation \"FOO\" is not one of CREATE, UPDATE, DELETE, CONNECT",
            ),
            (
                review_with("operation", json!(null)),
                "invalid AdmissionReview: request.operation is missing; it must be one of CREATE, UPDATE, DELETE, CONNECT",
            ),
            (
                review_with("kind", json!(null)),
                "invalid AdmissionReview: request.kind is missing or has no kind; it must be the object's group, version and kind, such as {\"group\": \"\", \"version\": \"v1\", \"kind\": \"Pod\"}",
            ),
            (
                review_with("kind", json!({"group": "", "version": "v1"})),
                "invalid AdmissionReview: request.kind is missing or has no kind; it must be the object's group, version and kind, such as {\"group\": \"\", \"version\": \"v1\", \"kind\": \"Pod\"}",
            ),
            (
                review_with("oldObject", json!([])),
                "invalid AdmissionReview: request.oldObject must be a JSON object or null; found a list",
            ),
            (
                review_with("oldObject", json!("x")),
                "invalid AdmissionReview: request.oldObject must be a JSON object or null; found a string",
            ),
            (
                review_with("oldObject", json!(1)),
                "invalid AdmissionReview: request.oldObject must be a JSON object or null; found a number",
            ),
            (
                review_body("CREATE", "Pod", string_metadata),
                "invalid AdmissionReview: request.object is malformed: Pod (unnamed): metadata must be an object",
            ),
            (
                review_body("CREATE", "Pod", mapping_containers),
                "invalid AdmissionReview: request.object is malformed: Pod w-*: spec.containers must be a non-empty list",
            ),
            (
                review_body("CREATE", "Pod", string_command),
                "invalid AdmissionReview: request.object is malformed: Pod w-*: spec.containers[0].command must be a list of strings",
            ),
            (
                review_body("UPDATE", "Pod", mapping_env),
                "invalid AdmissionReview: request.object is malformed: Pod w-*: spec.containers[0].env must be a list of objects",
            ),
        ] {
            assert_eq!(err(body), expected);
        }
    }

    #[test]
    fn what_an_api_server_sends_is_accepted() {
        // DELETE: no object, the deleted one in oldObject (null from API servers before 1.15).
        for old in [pod(), Value::Null] {
            let mut review: Value =
                serde_json::from_slice(&review_body("DELETE", "Pod", Value::Null)).unwrap();
            review["request"]["oldObject"] = old;
            review["request"]["options"] =
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"});
            let request = parse(&serde_json::to_vec(&review).unwrap()).unwrap();
            let answer = respond(&request, Endpoint::Validate, &ctx(&Policy::default()));
            assert!(answer.response.allowed);
            assert_eq!(answer.outcome, "not-create-or-update");
        }
        // CONNECT: the object is the connect options, not a pod.
        let connect = review_body(
            "CONNECT",
            "PodExecOptions",
            json!({"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"], "stdin": true}),
        );
        let request = parse(&connect).unwrap();
        let answer = respond(&request, Endpoint::Validate, &ctx(&Policy::default()));
        assert!(answer.response.allowed);
        // A pod without containers yet (a later mutating webhook may add them; the API server
        // validates after mutation) and kinds sidekiq-guard does not review pass as before.
        let mut empty = pod();
        empty["spec"]["containers"] = json!([]);
        let request = parse(&review_body("CREATE", "Pod", empty)).unwrap();
        let answer = respond(&request, Endpoint::Mutate, &ctx(&Policy::default()));
        assert_eq!(answer.outcome, "not-a-workload");
        assert!(answer.response.allowed && answer.response.patch.is_none());
        let config = review_body("CREATE", "ConfigMap", json!({"data": {}}));
        assert!(parse(&config).is_ok());
        // A custom resource named like a built-in kind (Volcano's Job) is not one.
        let mut custom: Value = serde_json::from_slice(&review_body(
            "CREATE",
            "Job",
            json!({"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "spec": {"tasks": []}}),
        ))
        .unwrap();
        custom["request"]["kind"] =
            json!({"group": "batch.volcano.sh", "version": "v1alpha1", "kind": "Job"});
        let request = parse(&serde_json::to_vec(&custom).unwrap()).unwrap();
        let answer = respond(&request, Endpoint::Validate, &ctx(&Policy::default()));
        assert_eq!(answer.outcome, "not-a-workload");
        assert!(answer.response.allowed && answer.response.warnings.is_empty());
        // A request written without the group: the object's apiVersion tells.
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "namespace": "shop"},
            "spec": {"template": {"metadata": pod()["metadata"], "spec": pod()["spec"]}}});
        let mut bare: Value =
            serde_json::from_slice(&review_body("CREATE", "Deployment", deployment)).unwrap();
        bare["request"]["kind"] = json!({"version": "v1", "kind": "Deployment"});
        let request = parse(&serde_json::to_vec(&bare).unwrap()).unwrap();
        assert_eq!(request.reviewed_kind(), Some(Kind::Deployment));
        custom["request"]["kind"]["group"] = json!("");
        let request = parse(&serde_json::to_vec(&custom).unwrap()).unwrap();
        assert_eq!(
            request.reviewed_kind(),
            None,
            "batch.volcano.sh/v1alpha1 is no batch Job"
        );
        // Fields sidekiq-guard does not read are not required (`resource`), and fields newer
        // API servers add are ignored.
        let mut review: Value =
            serde_json::from_slice(&review_with("resource", Value::Null)).unwrap();
        review["request"]["someFutureField"] = json!({"x": 1});
        assert!(parse(&serde_json::to_vec(&review).unwrap()).is_ok());
    }
}
