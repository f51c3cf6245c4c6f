//! The plain-HTTP health port: `/livez`, `/readyz` and `/metrics`, for the kubelet and
//! Prometheus. Kept off the admission port so that probes and scrapes need no TLS and are never
//! queued behind admission traffic.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::handler::status_response;
use crate::metrics::Metrics;
use crate::tls::CertStore;

/// What readiness depends on.
#[derive(Debug)]
pub struct Health {
    /// The serving certificate.
    pub certs: Arc<CertStore>,
    /// Set once the sidecar mode is decided and the admission port accepts connections.
    pub serving: AtomicBool,
    /// Set on SIGTERM: readiness fails first, so the endpoints controller takes this replica
    /// out of the Service before its connections are closed.
    pub draining: Arc<AtomicBool>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl Health {
    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<Cow<'static, str>> {
        if self.draining.load(Ordering::Relaxed) {
            Some("shutting down".into())
        } else if !self.certs.is_loaded() {
            Some("no serving certificate loaded yet".into())
        } else if !self.serving.load(Ordering::Relaxed) {
            // With `sidecar.mode: auto` this lasts until the API server tells its version.
            Some(
                "starting: deciding the sidecar mode (sidecar.mode auto asks the API server for its version; the log says why it waits)".into(),
            )
        } else {
            self.certs.invalid_at(SystemTime::now()).map(Cow::Owned)
        }
    }
}

/// The router of the health port.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(health)
}

async fn livez() -> &'static str {
    // Alive as long as the runtime answers; everything else (certificates, the API server)
    // is a readiness question: restarting would not fix it.
    "ok\n"
}

async fn readyz(State(health): State<Arc<Health>>) -> Response {
    match health.not_ready() {
        None => "ok\n".into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(health): State<Arc<Health>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        health.metrics.encode(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    status_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "no such endpoint: {method} {}; the health port serves /livez, /readyz and /metrics",
            uri.path()
        ),
    )
}
