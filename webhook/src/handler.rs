//! `POST /mutate` and `POST /validate`: HTTP in, the core's answer out.
//!
//! Every Kubernetes decision is the core's ([`sidekiq_guard::admission`]); this module only
//! reads the body (bounded in size and time), maps errors to HTTP statuses, and records logs
//! and metrics. Errors are answered as a Kubernetes `Status` object, which the API server
//! decodes and quotes in its own error (`failed calling webhook …: <message>`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::Serialize;
use sidekiq_guard::admission::{self, AdmissionRequest, Answer, Endpoint};
use sidekiq_guard::{Context, Mode, Policy};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::timeout;

/// Default request body limit. The API server refuses objects above 1.5 MiB (etcd's default
/// request limit) and an UPDATE review carries the object twice (`object` and `oldObject`),
/// plus the review's own fields; 8 MiB leaves room for both with headroom while bounding
/// the memory one request can take.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Bodies above this size are parsed and answered on the blocking pool, so that a huge UPDATE
/// review does not hold up the other connections served by the same worker thread, and one at
/// a time ([`AdmissionState::large_reviews`]): parsed, a review takes ten to thirty times its
/// size in memory, and several megabyte-sized ones at once would outgrow the container's limit.
const INLINE_LIMIT: usize = 256 * 1024;

/// How many bodies of the largest accepted size may be buffered at once across all connections
/// (counted in bytes beyond the first `INLINE_LIMIT` of each). Without a bound, clients that
/// open many connections and send large bodies slowly grow the webhook past its memory limit
/// (64 such connections took it from 42 MB to 645 MB), and with `failurePolicy: Ignore` pods
/// then go uninjected while it restarts. A request that finds the budget spent waits for it
/// within its own `?timeout=`, then gets 503 like a large review that finds the parser busy.
pub const LARGE_BODIES_AT_ONCE: usize = 4;

/// What the admission endpoints share.
#[derive(Debug)]
pub struct AdmissionState {
    /// The policy (fixed for the life of the process; a new policy means a new rollout).
    pub policy: Policy,
    /// Where the sidecar goes, decided at start-up ([`AdmissionState::decide`]); until then,
    /// reviews get 503.
    mode: OnceLock<Mode>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set on SIGTERM: answers carry `Connection: close`, so the API server moves its
    /// keep-alive connections to a replica that is not going away.
    pub draining: Arc<AtomicBool>,
    /// One permit: reviews larger than `INLINE_LIMIT` are parsed and answered one at a time.
    pub large_reviews: Arc<Semaphore>,
    /// Kibibytes of large bodies that may be buffered at once ([`LARGE_BODIES_AT_ONCE`]).
    pub large_bodies: Arc<Semaphore>,
}

impl AdmissionState {
    /// The state of a webhook that answers with `policy`, once [`AdmissionState::decide`] has
    /// decided where sidecars go.
    pub fn new(
        policy: Policy,
        max_body_bytes: usize,
        metrics: Arc<Metrics>,
        draining: Arc<AtomicBool>,
    ) -> Self {
        Self {
            policy,
            mode: OnceLock::new(),
            max_body_bytes,
            metrics,
            draining,
            large_reviews: Arc::new(Semaphore::new(1)),
            large_bodies: Arc::new(Semaphore::new(
                LARGE_BODIES_AT_ONCE
                    .saturating_mul(kib(max_body_bytes.saturating_sub(INLINE_LIMIT))),
            )),
        }
    }

    /// Where the sidecar goes, once decided.
    pub fn mode(&self) -> Option<Mode> {
        self.mode.get().copied()
    }

    /// Decides where the sidecar goes (a second decision is ignored: the mode is fixed for the
    /// life of the process).
    pub fn decide(&self, mode: Mode) {
        let _ = self.mode.set(mode);
    }
}

/// `bytes` in kibibytes, rounded up: the unit of [`AdmissionState::large_bodies`], whose
/// permits tokio counts in `u32`.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// The router of the admission port.
pub fn router(state: Arc<AdmissionState>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn mutate(State(state): State<Arc<AdmissionState>>, request: Request) -> Response {
    answer(state, Endpoint::Mutate, request).await
}

async fn validate(State(state): State<Arc<AdmissionState>>, request: Request) -> Response {
    answer(state, Endpoint::Validate, request).await
}

fn endpoint_name(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Mutate => "mutate",
        Endpoint::Validate => "validate",
    }
}

/// A request that gets an HTTP error instead of an AdmissionReview.
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    /// Metrics label.
    result: &'static str,
    message: String,
}

impl Refusal {
    /// Logs the refusal and answers it with a `Status`: every refused request is a warn line,
    /// so a misconfigured webhook `path` shows in the logs first.
    fn respond(self, endpoint: &'static str) -> Response {
        tracing::warn!(
            endpoint,
            status = self.status.as_u16(),
            error = self.message.as_str(),
            "admission request refused"
        );
        status_response(self.status, self.reason, self.message)
    }

    fn bad_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            result: "bad-request",
            message,
        }
    }
}

async fn answer(state: Arc<AdmissionState>, endpoint: Endpoint, request: Request) -> Response {
    let started = Instant::now();
    let name = endpoint_name(endpoint);
    let draining = state.draining.load(Ordering::Relaxed);
    let response = match review(&state, endpoint, request).await {
        Ok((answer, request, mode)) => {
            state
                .metrics
                .request(name, answer.outcome, started.elapsed());
            // A dry run (`kubectl apply --dry-run=server`) persists nothing: no pod was
            // injected or skipped.
            if endpoint == Endpoint::Mutate && request.dry_run != Some(true) {
                if answer.injected() {
                    state.metrics.injection(mode.as_str());
                } else {
                    state.metrics.skip(answer.outcome);
                }
            }
            log_answer(name, &request, &answer, started.elapsed());
            json_bytes(StatusCode::OK, answer.response.review_json())
        }
        Err(refusal) => {
            state
                .metrics
                .request(name, refusal.result, started.elapsed());
            refusal.respond(name)
        }
    };
    closing_if(draining, response)
}

/// The answer to `request`, the request read, and the sidecar mode it was answered under (so
/// that the metrics count the injection under that same mode).
async fn review(
    state: &Arc<AdmissionState>,
    endpoint: Endpoint,
    request: Request,
) -> Result<(Answer, AdmissionRequest, Mode), Refusal> {
    let deadline = timeout::from_query(request.uri().query())
        .map_err(|err| Refusal::bad_request(err.to_string()))?;
    // Answered at once rather than left unaccepted: the API server applies the webhook's
    // failurePolicy without waiting out its timeout.
    let mode = state.mode().ok_or_else(|| Refusal {
        status: StatusCode::SERVICE_UNAVAILABLE,
        reason: "ServiceUnavailable",
        result: "starting",
        message: "sidekiq-guard is starting: the sidecar mode is not decided yet (sidecar.mode auto asks the API server for its version; the log says why it waits)".to_owned(),
    })?;
    unencoded(&request)?;
    let started = Instant::now();
    let (body, _buffered) = read_body(request, state, deadline).await?;
    if body.len() <= INLINE_LIMIT {
        return contained(|| {
            let parsed = parse(&body)?;
            let answer = respond(state, mode, &parsed, endpoint);
            Ok((answer, parsed, mode))
        });
    }
    // What is left of the request's timeout: the API server gives up after it.
    let left = deadline.saturating_sub(started.elapsed());
    let permit = tokio::time::timeout(left, Arc::clone(&state.large_reviews).acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            busy(format!(
                "other large reviews were being answered for the request's whole timeout of {}",
                seconds_text(deadline)
            ))
        })?;
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        contained(|| {
            let parsed = parse(&body)?;
            drop(body);
            let answer = respond(&state, mode, &parsed, endpoint);
            Ok((answer, parsed, mode))
        })
    })
    .await
    .unwrap_or_else(|_| Err(internal_error()))
}

/// The body is read as JSON as it comes: a compressed one would read as malformed JSON, which
/// would name the wrong fault.
fn unencoded(request: &Request) -> Result<(), Refusal> {
    let encoding = request
        .headers()
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned());
    match encoding {
        None => Ok(()),
        Some(encoding) if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") => {
            Ok(())
        }
        Some(encoding) => Err(Refusal {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "UnsupportedMediaType",
            result: "unsupported-encoding",
            message: format!(
                "Content-Encoding {:?} is not accepted: send the AdmissionReview uncompressed, as the API server does",
                encoding.chars().take(40).collect::<String>()
            ),
        }),
    }
}

/// Runs `work`, turning a panic (a defect of the core on this input) into a 500 for this
/// request alone. Left to unwind, it would reset the connection, which the API server reports
/// only as an EOF, with nothing that says the webhook failed. The panic's message stays in the
/// webhook's own log (the panic hook's stderr line): it may quote the object.
fn contained<T>(work: impl FnOnce() -> Result<T, Refusal>) -> Result<T, Refusal> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|_| Err(internal_error()))
}

fn internal_error() -> Refusal {
    Refusal {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        reason: "InternalError",
        result: "internal-error",
        message: "sidekiq-guard hit a defect while answering this review (its log says where); \
                  the API server applies the webhook's failurePolicy"
            .to_owned(),
    }
}

fn parse(body: &[u8]) -> Result<AdmissionRequest, Refusal> {
    admission::parse(body).map_err(|err| Refusal::bad_request(sidekiq_guard::errors::chain(&err)))
}

fn respond(
    state: &AdmissionState,
    mode: Mode,
    request: &AdmissionRequest,
    endpoint: Endpoint,
) -> Answer {
    let ctx = Context {
        policy: &state.policy,
        mode,
        namespace: None,
    };
    admission::respond(request, endpoint, &ctx)
}

/// The request body, and the share of [`AdmissionState::large_bodies`] it holds (kept until
/// the review is answered). The body is read within `deadline`, and never beyond
/// `max_body_bytes`.
async fn read_body(
    request: Request,
    state: &AdmissionState,
    deadline: Duration,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Refusal> {
    let limit = state.max_body_bytes;
    let too_large = || Refusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        reason: "RequestEntityTooLarge",
        result: "payload-too-large",
        message: format!(
            "request body is larger than the limit of {limit} bytes (--max-body-bytes)"
        ),
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let waiting = AtomicBool::new(false);
    let reading = async {
        // Each body takes its whole share at once, never in parts: bodies that each held part
        // of a share while waiting for more would wait on each other until their timeouts.
        // The API server announces the length.
        let mut permit = match declared {
            Some(len) => {
                reserve(state, usize::try_from(len).unwrap_or(usize::MAX), &waiting).await?
            }
            None => None,
        };
        let mut body = Limited::new(request.into_body(), limit);
        // Room for an announced length only once the budget covers it: connections that
        // announce a body and send nothing reserve no memory.
        let capacity = declared
            .and_then(|len| usize::try_from(len).ok())
            .filter(|len| *len > INLINE_LIMIT)
            .unwrap_or(0);
        let mut buffer = Vec::with_capacity(capacity);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| {
                if err.downcast_ref::<LengthLimitError>().is_some() {
                    too_large()
                } else {
                    Refusal::bad_request(format!("cannot read the request body: {err}"))
                }
            })?;
            if let Ok(data) = frame.into_data() {
                // Without an announced length, a body that outgrows the free allowance takes
                // the share of the largest body.
                if declared.is_none()
                    && permit.is_none()
                    && buffer.len() + data.len() > INLINE_LIMIT
                {
                    permit = reserve(state, limit, &waiting).await?;
                }
                buffer.extend_from_slice(&data);
            }
        }
        Ok((Bytes::from(buffer), permit))
    };
    match tokio::time::timeout(deadline, reading).await {
        Ok(result) => result,
        Err(_) if waiting.load(Ordering::Relaxed) => Err(busy(format!(
            "other large request bodies filled the webhook's buffers for the request's whole timeout of {}",
            seconds_text(deadline)
        ))),
        Err(_) => Err(Refusal {
            status: StatusCode::REQUEST_TIMEOUT,
            reason: "Timeout",
            result: "timeout",
            message: format!(
                "request body not received within the request's timeout of {}",
                seconds_text(deadline)
            ),
        }),
    }
}

/// The share of [`AdmissionState::large_bodies`] a body of `len` bytes needs: none within the
/// free allowance of `INLINE_LIMIT`. `waiting` is set while it waits, so that a timeout can say
/// what it waited for.
async fn reserve(
    state: &AdmissionState,
    len: usize,
    waiting: &AtomicBool,
) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
    let needed = kib(len.saturating_sub(INLINE_LIMIT));
    if needed == 0 {
        return Ok(None);
    }
    let needed = u32::try_from(needed).map_err(|_| {
        Refusal::bad_request(format!("request body of {len} bytes cannot be buffered"))
    })?;
    waiting.store(true, Ordering::Relaxed);
    let permit = Arc::clone(&state.large_bodies)
        .acquire_many_owned(needed)
        .await
        .map_err(|_| busy("the webhook is shutting down".to_owned()))?;
    waiting.store(false, Ordering::Relaxed);
    Ok(Some(permit))
}

/// 503: the webhook cannot take this request now; the API server applies `failurePolicy`.
fn busy(message: String) -> Refusal {
    Refusal {
        status: StatusCode::SERVICE_UNAVAILABLE,
        reason: "ServiceUnavailable",
        result: "busy",
        message,
    }
}

/// `1s`, `2.5s`: how the request's own `?timeout=` reads.
fn seconds_text(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// One log line per answer: who asked about what, and what was decided. Decisions about
/// Sidekiq workloads are at `info`; objects that are none of sidekiq-guard's business at
/// `debug`, so a busy namespace does not flood the log.
fn log_answer(
    endpoint: &'static str,
    request: &AdmissionRequest,
    answer: &Answer,
    elapsed: Duration,
) {
    macro_rules! log {
        ($level:ident) => {
            tracing::$level!(
                endpoint,
                // As `&str`, not `%`: the text format then quotes and escapes them, so a
                // crafted uid or name cannot forge a log line.
                uid = request.uid.as_str(),
                operation = request.operation.as_str(),
                kind = request.kind.kind.as_str(),
                namespace = request.namespace.as_deref().unwrap_or(""),
                name = object_name(request).as_str(),
                dry_run = request.dry_run == Some(true),
                decision = answer.outcome,
                allowed = answer.response.allowed,
                patched = answer.response.patch.is_some(),
                warnings = answer.response.warnings.len(),
                elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                "admission"
            )
        };
    }
    if answer.concerns_sidekiq() {
        log!(info);
    } else {
        log!(debug);
    }
}

fn object_name(request: &AdmissionRequest) -> String {
    match (&request.name, &request.object) {
        (Some(name), _) if !name.is_empty() => name.clone(),
        (_, Some(object)) => sidekiq_guard::workload::display_name(object),
        _ => String::new(),
    }
}

/// A `meta/v1` `Status`, the error shape Kubernetes clients decode.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusOut {
    api_version: &'static str,
    kind: &'static str,
    status: &'static str,
    message: String,
    reason: &'static str,
    code: u16,
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => json_bytes(status, bytes),
        // Serialising strings, booleans and numbers cannot fail; answer something valid anyway.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// An error answer as a Kubernetes `Status`.
pub fn status_response(status: StatusCode, reason: &'static str, message: String) -> Response {
    json_response(
        status,
        &StatusOut {
            api_version: "v1",
            kind: "Status",
            status: "Failure",
            message,
            reason,
            code: status.as_u16(),
        },
    )
}

fn closing_if(draining: bool, mut response: Response) -> Response {
    if draining {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn not_found(State(state): State<Arc<AdmissionState>>, method: Method, uri: Uri) -> Response {
    let refusal = Refusal {
        status: StatusCode::NOT_FOUND,
        reason: "NotFound",
        result: "not-found",
        message: format!(
            "no such endpoint: {method} {}; the webhook serves POST /mutate and POST /validate",
            uri.path()
        ),
    };
    refuse_unrouted(&state, "other", refusal)
}

/// Only the routed paths, `/mutate` and `/validate`, reach this.
async fn method_not_allowed(
    State(state): State<Arc<AdmissionState>>,
    method: Method,
    uri: Uri,
) -> Response {
    let endpoint = if uri.path() == "/mutate" {
        Endpoint::Mutate
    } else {
        Endpoint::Validate
    };
    let refusal = Refusal {
        status: StatusCode::METHOD_NOT_ALLOWED,
        reason: "MethodNotAllowed",
        result: "method-not-allowed",
        message: format!("{method} is not allowed on {}; use POST", uri.path()),
    };
    let mut response = refuse_unrouted(&state, endpoint_name(endpoint), refusal);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// A request no route answers: counted (without a latency: nothing was done) and refused.
fn refuse_unrouted(state: &AdmissionState, endpoint: &'static str, refusal: Refusal) -> Response {
    state.metrics.unrouted(endpoint, refusal.result);
    closing_if(
        state.draining.load(Ordering::Relaxed),
        refusal.respond(endpoint),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_answering_is_a_500_for_that_request() {
        let refusal = contained(|| -> Result<(), Refusal> { panic!("a defect") }).unwrap_err();
        assert_eq!(refusal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(refusal.result, "internal-error");
        assert!(
            refusal
                .message
                .starts_with("sidekiq-guard hit a defect while answering")
        );
        // What the work answers otherwise passes through.
        assert_eq!(contained(|| Ok(7)).ok(), Some(7));
        let bad = contained(|| -> Result<(), Refusal> { Err(Refusal::bad_request("x".into())) });
        assert_eq!(bad.unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
