//! The HTTP server: plain hyper (HTTP/1.1 only — what the kubelet and the API server's pod
//! proxy speak) on the current-thread runtime. Five fixed routes need no router, and hyper alone
//! keeps the binary and its memory small.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use sidekiq_guard::probe::report::{self, DrainReport, PodReport, RedisReport, Status};
use sidekiq_guard::probe::{Now, health};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::metrics::RequestLabels;
use crate::monitor::{Handle, Snapshot};

/// How long in-flight requests may finish after the server stops accepting.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Connections served at once. The kubelet opens one per probe and the preStop hook one per
/// drain; beyond this, further clients wait in the listen backlog rather than each holding a
/// read buffer (at most [`MAX_HEAD_BYTES`]: 8 MiB in all) in a sidecar with a 32 MiB limit.
/// Generous, because the port is open to the pod network: clients that connect and send
/// nothing (a scanner, a stuck scraper) must not make the kubelet's probes wait, which would
/// restart a healthy Sidekiq.
const MAX_CONNECTIONS: usize = 512;

/// How long a client may take to send its request head. The kubelet sends it at once; a slot
/// held by a silent client is freed well within the kubelet's default probe timeout of 1 s
/// times the injected probes' 3 s.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest request head a connection may buffer (hyper's default is about 400 KiB): the
/// probe's requests are a path and a few headers.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serves until `stop` completes, then lets in-flight requests finish for up to 2 s.
pub(crate) async fn serve(listener: TcpListener, handle: Handle, stop: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // Bound how long a client may take to send its headers, and how much it may send, so idle,
    // slow or oversized requests cannot pile up in a sidecar with a 32 MiB limit.
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let handle = handle.clone();
                let service = service_fn(move |request| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(route(&handle, request).await) }
                });
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(error) = connection.await {
                        debug!(%error, "connection closed with an error");
                    }
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(CLOSE_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("closing with requests still in flight");
    }
}

/// The endpoints, also the `path` label of the request counter (`other` for anything else).
const ENDPOINTS: [&str; 5] = ["/livez", "/readyz", "/drain", "/status", "/metrics"];

async fn route(handle: &Handle, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method();
    let read = method == Method::GET || method == Method::HEAD;
    let path = ENDPOINTS
        .iter()
        .copied()
        .find(|p| *p == request.uri().path());
    let response = match path {
        Some("/livez") if read => livez(handle).await,
        Some("/readyz") if read => readyz(handle).await,
        // The kubelet's preStop sends GET; POST is accepted for people and scripts. HEAD is
        // refused: an uptime checker's HEAD must not quiet Sidekiq.
        Some("/drain") if method == Method::GET || method == Method::POST => drain(handle).await,
        Some("/drain") => not_allowed("GET, POST"),
        Some("/status") if read => status(handle).await,
        Some("/metrics") if read => metrics(handle).await,
        Some(_) => not_allowed("GET, HEAD"),
        None => text(
            StatusCode::NOT_FOUND,
            "not found: try /livez, /readyz, /drain, /status or /metrics\n".into(),
        ),
    };
    handle
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            path: path.unwrap_or("other"),
            code: response.status().as_u16(),
        })
        .inc();
    response
}

fn verdict_response(verdict: &health::Verdict) -> Response<Full<Bytes>> {
    let (status, word) = if verdict.ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "fail")
    };
    text(status, format!("{word}: {}\n", verdict.reason))
}

async fn livez(handle: &Handle) -> Response<Full<Bytes>> {
    let snapshot = handle.fresh(false).await;
    verdict_response(&health::liveness(
        &snapshot.tracker,
        handle.clock.now(),
        &handle.settings.thresholds,
    ))
}

async fn readyz(handle: &Handle) -> Response<Full<Bytes>> {
    let snapshot = handle.fresh(false).await;
    verdict_response(&health::readiness(
        &snapshot.tracker,
        handle.clock.now(),
        &handle.settings.thresholds,
    ))
}

async fn drain(handle: &Handle) -> Response<Full<Bytes>> {
    let snapshot = handle.drain().await;
    let now = handle.clock.now();
    let report = DrainReport::new(
        snapshot.drain.as_ref().map(|(_, d)| d),
        handle.settings.drain_budget,
        now,
    );
    let status =
        StatusCode::from_u16(report.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &report)
}

async fn status(handle: &Handle) -> Response<Full<Bytes>> {
    let snapshot = handle.fresh(true).await;
    json(
        StatusCode::OK,
        &status_document(handle, &snapshot, handle.clock.now()),
    )
}

/// The `/status` document of `snapshot` at `now`.
pub(crate) fn status_document(handle: &Handle, snapshot: &Snapshot, now: Now) -> Status {
    let settings = &handle.settings;
    let tracker = &snapshot.tracker;
    let redis = tracker.redis();
    Status {
        schema: report::SCHEMA,
        version: sidekiq_guard::VERSION.to_owned(),
        mode: settings.mode.as_str().to_owned(),
        pod: PodReport {
            name: settings.pod_name.clone(),
            namespace: settings.pod_namespace.clone(),
            hostname: settings.hostname.clone(),
        },
        redis: RedisReport {
            url: settings.redis.redacted_url(),
            namespace: settings.redis.namespace.clone(),
            reachable: redis.reachable(),
            unreachable_for_secs: redis.unreachable_for(now).map(|d| d.as_secs_f64()),
            error: redis.last_error.clone(),
            last_read_age_secs: redis
                .last_read
                .map(|at| now.mono.saturating_sub(at).as_secs_f64()),
            reads: redis.reads,
            round_trips: snapshot.stats.round_trips,
            commands: snapshot.stats.commands,
        },
        liveness: health::liveness(tracker, now, &settings.thresholds),
        readiness: health::readiness(tracker, now, &settings.thresholds),
        processes: report::processes(tracker, now),
        drain: DrainReport::new(
            snapshot.drain.as_ref().map(|(_, d)| d),
            settings.drain_budget,
            now,
        ),
        shutting_down: snapshot.shutting_down,
    }
}

/// The metrics as of a read no older than `--refresh-after`: with only Prometheus asking (the
/// user kept their own probes), the gauges would otherwise stay at the last probe's read.
async fn metrics(handle: &Handle) -> Response<Full<Bytes>> {
    handle.fresh(false).await;
    match handle.metrics.encode() {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {error}\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode JSON: {error}\n"),
        ),
    }
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed: use {allow}\n"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}
