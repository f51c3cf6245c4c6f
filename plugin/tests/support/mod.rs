//! Real parts for the plugin's cluster tests: a small HTTPS server that answers the Kubernetes
//! REST paths the plugin uses with real response shapes (no API server can run here), reached
//! through a generated kubeconfig; `redis-server`, Sidekiq records, the probe binary and a real
//! Sidekiq. Everything started is stopped when dropped, also when a test panics.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

#[path = "../../../tests/support/fake_sidekiq.rs"]
pub mod fake_sidekiq;
#[path = "../../../tests/support/process.rs"]
pub mod process;
#[path = "../../../tests/support/real_sidekiq.rs"]
pub mod real_sidekiq;
#[path = "../../../tests/support/redis_server.rs"]
pub mod redis_server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use sidekiq_guard::pointer::Pointer as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[allow(unused_imports)]
pub use fake_sidekiq::{FakeConfig, FakeSidekiq, Version};
#[allow(unused_imports)]
pub use process::Process;
#[allow(unused_imports)]
pub use real_sidekiq::{Sidekiq, enqueue, wait_until};
#[allow(unused_imports)]
pub use redis_server::{RedisServer, free_port, send_signal};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A CA and a certificate it signed.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A fresh CA (common name `ca_name`) and a certificate for `names`, valid `days` from now and
/// half a day more, so that whole days left read `days` in every run of a test: exactly `days`
/// flips to `days - 1` a moment later, between two commands of one test.
pub fn pki(ca_name: &str, names: &[&str], days: i64) -> Pki {
    pki_from(ca_name, names, -time::Duration::hours(1), days)
}

/// [`pki`] with the certificate valid from `start` from now (an issuer whose clock runs ahead
/// gives a start in the future).
pub fn pki_from(ca_name: &str, names: &[&str], start: time::Duration, days: i64) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + start;
    params.not_after = now + time::Duration::days(days) + time::Duration::hours(12);
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Base64 of text, as in `caBundle` and Secret `data`.
pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

// ---------------------------------------------------------------------------------------------
// The Kubernetes API

/// How the pod proxy answers for one pod port.
#[derive(Debug, Clone)]
pub enum ProxyTarget {
    /// Forward to a server on 127.0.0.1 at this port (a real probe).
    Forward(u16),
    /// A fixed answer.
    Fixed {
        status: u16,
        body: String,
        delay: Duration,
    },
    /// Headers and the start of a body, then the connection breaks off.
    BrokenOff,
    /// A fixed answer per path (`/status`, `/drain`); 404 for any other.
    ByPath(Vec<(&'static str, ProxyTarget)>),
}

/// The objects the fake API server holds, and how it misbehaves.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// Objects by (API prefix, plural): `("/api/v1", "pods")`.
    objects: HashMap<(String, String), Vec<Value>>,
    /// Pod proxy targets by (namespace, pod, port).
    proxies: HashMap<(String, String, u16), ProxyTarget>,
    /// (verb, plural, namespace) triples answered 403.
    forbidden: Vec<(String, String, Option<String>)>,
    /// (verb, plural) pairs answered 500, as by an API server whose etcd times out.
    failing: Vec<(String, String)>,
    /// How long every list waits before it answers.
    list_delay: Duration,
    /// Requests seen: method and path with query.
    pub requests: Vec<String>,
    /// Whether every continue token is answered 410 Expired, as after etcd compaction.
    expire_continue: bool,
}

/// A running fake API server.
pub struct ApiServer {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<ClusterState>>,
    pub ca_pem: String,
    pub in_flight_max: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
    dir: tempfile::TempDir,
}

const PLURALS: &[(&str, &str, &str)] = &[
    ("/api/v1", "pods", "Pod"),
    ("/api/v1", "namespaces", "Namespace"),
    ("/api/v1", "services", "Service"),
    ("/api/v1", "secrets", "Secret"),
    ("/apis/apps/v1", "deployments", "Deployment"),
    ("/apis/apps/v1", "statefulsets", "StatefulSet"),
    ("/apis/apps/v1", "daemonsets", "DaemonSet"),
    ("/apis/batch/v1", "jobs", "Job"),
    ("/apis/batch/v1", "cronjobs", "CronJob"),
    (
        "/apis/discovery.k8s.io/v1",
        "endpointslices",
        "EndpointSlice",
    ),
    (
        "/apis/admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
    ),
    (
        "/apis/admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
    ),
];

fn api_version(prefix: &str) -> String {
    prefix
        .trim_start_matches("/apis/")
        .trim_start_matches("/api/")
        .to_owned()
}

impl ApiServer {
    /// Starts an empty cluster.
    pub fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pki = pki("kubernetes test CA", &["localhost", "127.0.0.1"], 2);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(ClusterState::default()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let in_flight_max = Arc::new(AtomicUsize::new(0));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Shared {
            state: state.clone(),
            in_flight,
            in_flight_max: in_flight_max.clone(),
        };
        let (cert, key) = (pki.cert_pem.clone(), pki.key_pem.clone());
        runtime.spawn(async move {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem(
                cert.into_bytes(),
                key.into_bytes(),
            )
            .await
            .unwrap();
            let app = axum::Router::new().fallback(handle).with_state(shared);
            axum_server::from_tcp_rustls(listener, config)
                .unwrap()
                .serve(app.into_make_service())
                .await
                .unwrap();
        });
        let server = ApiServer {
            addr,
            state,
            ca_pem: pki.ca_pem,
            in_flight_max,
            runtime: Some(runtime),
            dir: tempfile::tempdir().unwrap(),
        };
        server.add(
            "/api/v1",
            "namespaces",
            json!({"metadata": {"name": "default"}}),
        );
        server
    }

    /// Stores an object (kind and apiVersion are filled in).
    pub fn add(&self, prefix: &str, plural: &str, mut object: Value) {
        let kind = PLURALS
            .iter()
            .find(|(p, n, _)| *p == prefix && *n == plural)
            .map(|(_, _, k)| *k)
            .unwrap();
        object["kind"] = json!(kind);
        object["apiVersion"] = json!(api_version(prefix));
        let meta = object["metadata"].as_object_mut().unwrap();
        meta.entry("uid")
            .or_insert_with(|| json!(format!("{:08x}-0000-4000-8000-000000000000", free_port())));
        meta.entry("resourceVersion").or_insert(json!("1"));
        meta.entry("creationTimestamp")
            .or_insert(json!("2026-11-01T00:00:00Z"));
        self.state
            .lock()
            .unwrap()
            .objects
            .entry((prefix.to_owned(), plural.to_owned()))
            .or_default()
            .push(object);
    }

    /// Stores a pod.
    pub fn add_pod(&self, pod: Value) {
        self.add("/api/v1", "pods", pod);
    }

    /// Routes the pod proxy of `namespace/pod:port`.
    pub fn proxy(&self, namespace: &str, pod: &str, port: u16, target: ProxyTarget) {
        self.state
            .lock()
            .unwrap()
            .proxies
            .insert((namespace.to_owned(), pod.to_owned(), port), target);
    }

    /// Answers `verb` on `plural` (in `namespace`, or anywhere) with 403.
    pub fn forbid(&self, verb: &str, plural: &str, namespace: Option<&str>) {
        self.state.lock().unwrap().forbidden.push((
            verb.to_owned(),
            plural.to_owned(),
            namespace.map(str::to_owned),
        ));
    }

    /// Answers `verb` on `plural` with 500 Internal Server Error.
    pub fn fail(&self, verb: &str, plural: &str) {
        self.state
            .lock()
            .unwrap()
            .failing
            .push((verb.to_owned(), plural.to_owned()));
    }

    /// Answers every list only after `delay`: a loaded API server, a long list.
    pub fn slow_lists(&self, delay: Duration) {
        self.state.lock().unwrap().list_delay = delay;
    }

    /// Stops answering 403 to what [`ApiServer::forbid`] forbade.
    pub fn allow_all(&self) {
        self.state.lock().unwrap().forbidden.clear();
    }

    /// Answers every list continuation with 410 Expired from now on.
    pub fn expire_continue_tokens(&self) {
        self.state.lock().unwrap().expire_continue = true;
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// A kubeconfig for this server with `namespace` as the context's namespace.
    pub fn kubeconfig(&self, namespace: &str) -> PathBuf {
        let path = self.dir.path().join(format!("kubeconfig-{namespace}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: tester\n    namespace: {namespace}\n- name: other\n  context:\n    cluster: test\n    user: tester\n    namespace: other\nusers:\n- name: tester\n  user:\n    token: test-token\n",
            self.addr.port(),
            b64(&self.ca_pem)
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<ClusterState>>,
    in_flight: Arc<AtomicUsize>,
    in_flight_max: Arc<AtomicUsize>,
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    (
        StatusCode::from_u16(code).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// Equality-based label selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated.
fn selects(selector: &str, labels: Option<&Value>) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let label = |key: &str| {
            labels
                .and_then(|l| l.get(key.trim()))
                .and_then(Value::as_str)
        };
        if let Some((key, value)) = term.split_once("!=") {
            label(key) != Some(value.trim())
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            label(key) == Some(value.trim())
        } else if let Some(key) = term.strip_prefix('!') {
            label(key).is_none()
        } else {
            label(term).is_some()
        }
    })
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    {
        let mut state = shared.state.lock().unwrap();
        state.requests.push(format!(
            "{} {}{}",
            request.method(),
            path,
            if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            }
        ));
    }
    if request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some("Bearer test-token")
    {
        return status(401, "Unauthorized", "Unauthorized".into());
    }
    if path == "/version" {
        return json_response(
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.2", "gitCommit": "0000000", "gitTreeState": "clean", "buildDate": "2026-10-01T00:00:00Z", "goVersion": "go1.24.4", "compiler": "gc", "platform": "linux/amd64"}),
        );
    }
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(decode)
    };
    let selector = param("labelSelector");
    let page = Page {
        limit: param("limit").map(|l| l.parse().unwrap()),
        token: param("continue"),
    };
    let (prefix, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
        ("/api/v1".to_owned(), rest.to_owned())
    } else if let Some(rest) = path.strip_prefix("/apis/") {
        let mut parts = rest.splitn(3, '/');
        let (group, version, rest) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        (format!("/apis/{group}/{version}"), rest.to_owned())
    } else {
        return status(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        );
    };
    let segments: Vec<String> = rest.split('/').map(decode).collect();
    let (namespace, tail): (Option<String>, &[String]) = match segments.as_slice() {
        [ns_word, ns, tail @ ..] if ns_word == "namespaces" && !tail.is_empty() => {
            (Some(ns.clone()), tail)
        }
        other => (None, other),
    };
    if let [_plural] = tail {
        let delay = shared.state.lock().unwrap().list_delay;
        tokio::time::sleep(delay).await;
    }
    match tail {
        [plural] => list(
            &shared,
            &prefix,
            plural,
            namespace.as_deref(),
            selector.as_deref(),
            page,
        ),
        [plural, name] => get(&shared, &prefix, plural, namespace.as_deref(), name),
        [plural, target, proxy, rest @ ..] if plural == "pods" && proxy == "proxy" => {
            let Some(namespace) = namespace else {
                return status(404, "NotFound", "no namespace".into());
            };
            pod_proxy(&shared, &namespace, target, &format!("/{}", rest.join("/"))).await
        }
        _ => status(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        ),
    }
}

fn refused(shared: &Shared, verb: &str, plural: &str, namespace: Option<&str>) -> Option<Response> {
    let state = shared.state.lock().unwrap();
    if state.failing.iter().any(|(v, p)| v == verb && p == plural) {
        return Some(status(
            500,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out".into(),
        ));
    }
    state
        .forbidden
        .iter()
        .any(|(v, p, ns)| v == verb && p == plural && (ns.is_none() || ns.as_deref() == namespace))
        .then(|| {
            let scope = match namespace {
                Some(ns) => format!(" in the namespace \"{ns}\""),
                None => " at the cluster scope".to_owned(),
            };
            status(403, "Forbidden", format!("{plural} is forbidden: User \"tester\" cannot {verb} resource \"{plural}\" in API group \"\"{scope}"))
        })
}

/// `limit` and `continue` of a list request. The token is the offset of the next item, as an
/// opaque string: a real one encodes a key and a resourceVersion the client must not read.
struct Page {
    limit: Option<usize>,
    token: Option<String>,
}

fn list(
    shared: &Shared,
    prefix: &str,
    plural: &str,
    namespace: Option<&str>,
    selector: Option<&str>,
    page: Page,
) -> Response {
    if let Some(denied) = refused(shared, "list", plural, namespace) {
        return denied;
    }
    let Some((_, _, kind)) = PLURALS
        .iter()
        .find(|(p, n, _)| *p == prefix && *n == plural)
    else {
        return status(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({prefix}/{plural})"),
        );
    };
    let state = shared.state.lock().unwrap();
    let items: Vec<Value> = state
        .objects
        .get(&(prefix.to_owned(), plural.to_owned()))
        .into_iter()
        .flatten()
        .filter(|o| {
            namespace.is_none() || o.at("/metadata/namespace").and_then(Value::as_str) == namespace
        })
        .filter(|o| selector.is_none_or(|s| selects(s, o.at("/metadata/labels"))))
        .map(|o| {
            // List items carry no kind nor apiVersion, as from a real API server.
            let mut item = o.clone();
            let map = item.as_object_mut().unwrap();
            map.remove("kind");
            map.remove("apiVersion");
            item
        })
        .collect();
    let start = match page.token {
        Some(_) if state.expire_continue => {
            return status(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue value from the response to continue with an inconsistent result.".into(),
            );
        }
        Some(token) => token.strip_prefix("offset-").unwrap().parse().unwrap(),
        None => 0,
    };
    let end = page
        .limit
        .map_or(items.len(), |limit| (start + limit).min(items.len()));
    let mut metadata = json!({"resourceVersion": "100"});
    if end < items.len() {
        metadata["continue"] = json!(format!("offset-{end}"));
        metadata["remainingItemCount"] = json!(items.len() - end);
    }
    json_response(
        json!({"kind": format!("{kind}List"), "apiVersion": api_version(prefix), "metadata": metadata, "items": items[start..end]}),
    )
}

fn get(
    shared: &Shared,
    prefix: &str,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Response {
    if let Some(denied) = refused(shared, "get", plural, namespace) {
        return denied;
    }
    let state = shared.state.lock().unwrap();
    let found = state
        .objects
        .get(&(prefix.to_owned(), plural.to_owned()))
        .into_iter()
        .flatten()
        .find(|o| {
            o.at("/metadata/name").and_then(Value::as_str) == Some(name)
                && (namespace.is_none()
                    || o.at("/metadata/namespace").and_then(Value::as_str) == namespace)
        });
    match found {
        Some(object) => json_response(object.clone()),
        None => status(404, "NotFound", format!("{plural} \"{name}\" not found")),
    }
}

async fn pod_proxy(shared: &Shared, namespace: &str, target: &str, path: &str) -> Response {
    if let Some(denied) = refused(shared, "get", "pods/proxy", Some(namespace)) {
        return denied;
    }
    let (pod, port) = match target.rsplit_once(':') {
        Some((pod, port)) => (pod.to_owned(), port.parse::<u16>().unwrap_or(80)),
        None => (target.to_owned(), 80),
    };
    let route = shared
        .state
        .lock()
        .unwrap()
        .proxies
        .get(&(namespace.to_owned(), pod.clone(), port))
        .cloned();
    let current = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.in_flight_max.fetch_max(current, Ordering::SeqCst);
    let route = match route {
        Some(ProxyTarget::ByPath(paths)) => paths
            .into_iter()
            .find(|(wanted, _)| *wanted == path)
            .map(|(_, target)| target)
            .or(Some(ProxyTarget::Fixed {
                status: 404,
                body: "not found".to_owned(),
                delay: Duration::ZERO,
            })),
        other => other,
    };
    let response = match route {
        None => status(
            503,
            "ServiceUnavailable",
            format!(
                "error trying to reach service: dial tcp 10.244.1.7:{port}: connect: connection refused"
            ),
        ),
        Some(ProxyTarget::Fixed {
            status: code,
            body,
            delay,
        }) => {
            tokio::time::sleep(delay).await;
            (
                StatusCode::from_u16(code).unwrap(),
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Some(ProxyTarget::Forward(local)) => forward(local, path).await,
        Some(ProxyTarget::BrokenOff) => Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::new(BrokenOff(0)))
            .unwrap(),
        Some(ProxyTarget::ByPath(_)) => status(500, "InternalError", "nested ByPath".to_owned()),
    };
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

/// A body that yields its first bytes, pauses (so that the headers and those bytes go out),
/// then fails, as a connection reset mid-answer.
struct BrokenOff(u8);

impl http_body::Body for BrokenOff {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0 += 1;
        match self.0 {
            1 => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(
                axum::body::Bytes::from_static(b"{\"schema\": 1, \"proc"),
            )))),
            2 => {
                let waker = cx.waker().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    waker.wake();
                });
                std::task::Poll::Pending
            }
            _ => std::task::Poll::Ready(Some(Err(std::io::Error::other("connection reset")))),
        }
    }
}

/// Relays a GET to a local HTTP server, as the API server relays to the pod.
async fn forward(port: u16, path: &str) -> Response {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return status(
            503,
            "ServiceUnavailable",
            format!(
                "error trying to reach service: dial tcp 127.0.0.1:{port}: connect: connection refused"
            ),
        );
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(502);
    (
        StatusCode::from_u16(code).unwrap(),
        Body::from(body.to_owned()),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Objects

/// A Sidekiq pod as the API returns it once sidekiq-guard injected it, declaring its longest
/// job.
pub fn injected_pod(namespace: &str, name: &str, longest_job: u64, port: u16) -> Value {
    let status = json!({"version": "0.1.0", "container": "worker", "sidecar": "native", "probePort": port,
                        "drainBudget": 20 + longest_job, "grace": 20 + longest_job + 30, "longestJob": longest_job,
                        "injected": ["sidecar", "preStop", "startupProbe", "readinessProbe", "livenessProbe", "terminationGracePeriodSeconds"], "kept": []});
    json!({
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {"app": "worker", "pod-template-hash": "7d9c8f6b5"},
            "annotations": {
                "sidekiq-guard.io/status": status.to_string(),
                "sidekiq-guard.io/longest-job": format!("{longest_job}s"),
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rails-worker-7d9c8f6b5", "uid": "x", "controller": true}],
            "creationTimestamp": "2026-11-01T00:00:00Z",
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "worker", "image": "app", "command": ["bundle", "exec", "sidekiq", "-t", "30"],
                            "env": [{"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}}}],
                            "lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": port}}}}],
            "initContainers": [{"name": "sidekiq-guard-probe", "image": "sg", "restartPolicy": "Always"}],
        },
        "status": {"phase": "Running"},
    })
}

// ---------------------------------------------------------------------------------------------
// Binaries

/// The plugin binary.
pub fn plugin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-sidekiq"));
    command
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG");
    command
}

/// Runs the plugin with `args`.
pub fn run(args: &[&str]) -> Output {
    plugin().args(args).stdin(Stdio::null()).output().unwrap()
}

/// A probe `/status` document: one process running `jobs` (class, elapsed seconds).
pub fn probe_document(pod: &str, jobs: &[(&str, f64)], drain_state: &str) -> Value {
    let jobs: Vec<Value> = jobs
        .iter()
        .enumerate()
        .map(|(i, (class, elapsed))| {
            json!({"class": class, "wrapper": null, "jid": format!("jid{i}"), "queue": "default", "thread": format!("t{i}"),
                   "run_at": 1_795_663_371.0 - elapsed, "elapsed_secs": elapsed})
        })
        .collect();
    json!({
        "schema": 1, "version": "0.1.0", "mode": "native",
        "pod": {"name": pod, "namespace": "shop", "hostname": pod},
        "redis": {"url": "redis://redis:6379/0", "namespace": null, "reachable": true, "unreachable_for_secs": null, "error": null,
                  "last_read_age_secs": 0.4, "reads": 10, "round_trips": 10, "commands": 30},
        "liveness": {"ok": true, "code": "ok", "reason": "beat 3s ago"},
        "readiness": {"ok": true, "code": "ok", "reason": "1 live process"},
        "processes": [{
            "identity": format!("{pod}:1:abc"), "state": "live", "hostname": pod, "pid": 1, "tag": "app", "version": "7.3.2",
            "layout": "7.x", "embedded": false, "queues": ["default"], "quiet": drain_state != "idle", "busy": jobs.len(),
            "concurrency": 5, "beat": 1_795_663_368.0, "beat_age_secs": 3.0, "started_at": 1_795_600_000.0, "rss_kb": 204_800,
            "rtt_us": 150, "jobs": jobs, "jobs_read_age_secs": 0.4, "errors": [], "warnings": [],
        }],
        "drain": {"state": drain_state, "budget_secs": 320.0, "started_at": null, "elapsed_secs": null, "message": null, "signalled": [], "processes": []},
        "shutting_down": false,
    })
}

/// Runs the plugin with `args` against the cluster of `kubeconfig` (the flag goes last: the
/// plugin takes kubectl's flags anywhere).
pub fn run_in(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--kubeconfig", kubeconfig.to_str().unwrap()]);
    run(&all)
}

/// Compares `actual` with `plugin/tests/golden/NAME`; `SG_UPDATE_GOLDEN=1` rewrites it (then
/// review the diff before committing).
pub fn golden(name: &str, actual: &str) {
    let path = root().join("plugin/tests/golden").join(name);
    if std::env::var_os("SG_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden file {name}; run with SG_UPDATE_GOLDEN=1"));
    assert_eq!(actual, expected, "differs from golden/{name}");
}

/// Text of output bytes.
/// The names of the objects of a `validate -o json` report, in its order.
pub fn object_names(report: &Value) -> Vec<&str> {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// `target/<profile>/sidekiq-guard-probe`, built if `cargo test -p kubectl-sidekiq` alone did
/// not build it (`cargo test --workspace` does).
pub fn probe_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let binary = dir.join("sidekiq-guard-probe");
    if !binary.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "sidekiq-guard-probe"])
            .current_dir(root())
            .status()
            .unwrap();
        assert!(status.success(), "cannot build the probe");
    }
    binary
}

/// The real probe for `hostname`, listening on a free port; returns it and the port.
pub fn start_probe(redis_url: &str, hostname: &str, drain_budget: &str) -> (Process, u16) {
    let port = free_port();
    let mut command = Command::new(probe_binary());
    command
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--hostname={hostname}"))
        .arg(format!("--drain-budget={drain_budget}"))
        .env("REDIS_URL", redis_url)
        .env_remove("REDIS_PROVIDER");
    let probe = Process::spawn(command, "probe");
    let up = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "the probe did not start: {}", probe.log());
    (probe, port)
}
