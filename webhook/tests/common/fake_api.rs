//! A small Kubernetes API server for the tests of `certs install` and `sidecar.mode: auto`:
//! real HTTPS, bearer-token authentication, the exact REST paths the webhook uses, and real
//! response shapes (objects with `resourceVersion`, `Status` errors with their reasons,
//! optimistic concurrency on PUT, JSON Patch with `test` operations). Reached through a
//! generated kubeconfig, like a real cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum_server::Handle;
use serde_json::{Value, json};
use sidekiq_guard_webhook::pki;

pub const TOKEN: &str = "test-token-7f3c";

#[derive(Debug, Default)]
pub struct Store {
    /// Objects by their REST path.
    pub objects: BTreeMap<String, Value>,
    /// `METHOD path` of every request, in order.
    pub requests: Vec<String>,
    pub major: String,
    pub minor: String,
    pub git_version: String,
    /// Answer `/version` with 503, like an API server that is starting or overloaded.
    pub version_unavailable: bool,
    /// Answer every PATCH with 500, like an API server whose etcd times out.
    pub fail_patches: bool,
    resource_version: u64,
}

pub struct FakeApi {
    pub addr: SocketAddr,
    pub store: Arc<Mutex<Store>>,
    pub kubeconfig: PathBuf,
    handle: Handle<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl FakeApi {
    pub async fn start(major: &str, minor: &str, git_version: &str) -> Self {
        sidekiq_guard_webhook::tls::install_default_provider();
        let now = SystemTime::now();
        let ca = pki::new_ca("fake apiserver CA", now, Duration::from_secs(3600)).unwrap();
        let serving = pki::issue_serving(
            &ca,
            &["127.0.0.1".to_owned(), "localhost".to_owned()],
            now,
            Duration::from_secs(3600),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.crt"), &serving.cert_pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), &serving.key_pem).unwrap();
        let store = Arc::new(Mutex::new(Store {
            major: major.into(),
            minor: minor.into(),
            git_version: git_version.into(),
            ..Store::default()
        }));
        let certs = Arc::new(sidekiq_guard_webhook::tls::CertStore::new());
        let (key, loaded) = sidekiq_guard_webhook::tls::load_pem(
            &sidekiq_guard_webhook::tls::CertFiles {
                cert: dir.path().join("tls.crt"),
                key: dir.path().join("tls.key"),
            },
            serving.cert_pem.as_bytes(),
            serving.key_pem.as_bytes(),
        )
        .unwrap();
        certs.set(key, &loaded.leaf);
        let config = sidekiq_guard_webhook::tls::server_config(certs).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = Handle::new();
        let server =
            sidekiq_guard_webhook::server::https(listener, Arc::new(config), handle.clone())
                .unwrap();
        let app = Router::new()
            .fallback(dispatch)
            .with_state(Arc::clone(&store));
        tokio::spawn(server.serve(app.into_make_service()));

        use base64::Engine as _;
        let kubeconfig = dir.path().join("kubeconfig");
        let ca_data = base64::engine::general_purpose::STANDARD.encode(&ca.cert_pem);
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {ca_data}\nusers:\n- name: test\n  user:\n    token: {TOKEN}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: test\n    namespace: default\ncurrent-context: fake\n",
                addr.port()
            ),
        )
        .unwrap();
        Self {
            addr,
            store,
            kubeconfig,
            handle,
            _dir: dir,
        }
    }

    pub fn put(&self, path: &str, mut object: Value) {
        let mut store = self.store.lock().unwrap();
        store.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(store.resource_version.to_string());
        store.objects.insert(path.to_owned(), object);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.store.lock().unwrap().objects.get(path).cloned()
    }

    /// Requests other than GET.
    pub fn writes(&self) -> Vec<String> {
        self.store
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| !r.starts_with("GET "))
            .cloned()
            .collect()
    }

    pub fn requests(&self) -> Vec<String> {
        self.store.lock().unwrap().requests.clone()
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        [("content-type", "application/json")],
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
        })
        .to_string(),
    )
        .into_response()
}

fn ok(code: StatusCode, object: &Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        object.to_string(),
    )
        .into_response()
}

/// Splits a REST path into (collection path, kind, name).
fn route(path: &str) -> Option<(String, &'static str, Option<String>)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", "namespaces", ns, "secrets"] => {
            Some((format!("/api/v1/namespaces/{ns}/secrets"), "secrets", None))
        }
        ["api", "v1", "namespaces", ns, "secrets", name] => Some((
            format!("/api/v1/namespaces/{ns}/secrets"),
            "secrets",
            Some((*name).to_owned()),
        )),
        ["apis", "admissionregistration.k8s.io", "v1", resource, name]
            if *resource == "mutatingwebhookconfigurations"
                || *resource == "validatingwebhookconfigurations" =>
        {
            let kind = if *resource == "mutatingwebhookconfigurations" {
                "mutatingwebhookconfigurations"
            } else {
                "validatingwebhookconfigurations"
            };
            Some((
                format!("/apis/admissionregistration.k8s.io/v1/{resource}"),
                kind,
                Some((*name).to_owned()),
            ))
        }
        _ => None,
    }
}

async fn dispatch(
    State(store): State<Arc<Mutex<Store>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut store = store.lock().unwrap();
    store.requests.push(format!("{method} {}", uri.path()));
    let authorised = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorised {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
        );
    }
    if uri.path() == "/version" && method == Method::GET {
        if store.version_unavailable {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the server is currently unable to handle the request".into(),
            );
        }
        return ok(
            StatusCode::OK,
            &json!({
                "major": store.major, "minor": store.minor, "gitVersion": store.git_version,
                "gitCommit": "0123456789abcdef0123456789abcdef01234567", "gitTreeState": "clean",
                "buildDate": "2026-10-01T00:00:00Z", "goVersion": "go1.24.4", "compiler": "gc",
                "platform": "linux/amd64",
            }),
        );
    }
    let Some((collection, resource, name)) = route(uri.path()) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
        );
    };
    let not_found = |name: &str| {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{resource} \"{name}\" not found"),
        )
    };
    match (method, name) {
        (Method::GET, Some(name)) => match store.objects.get(&format!("{collection}/{name}")) {
            Some(object) => ok(StatusCode::OK, object),
            None => not_found(&name),
        },
        (Method::POST, None) => {
            let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "bad body".into());
            };
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let path = format!("{collection}/{name}");
            if store.objects.contains_key(&path) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{resource} \"{name}\" already exists"),
                );
            }
            store.resource_version += 1;
            object["metadata"]["resourceVersion"] = json!(store.resource_version.to_string());
            object["metadata"]["uid"] = json!(format!("uid-{}", store.resource_version));
            object["metadata"]["creationTimestamp"] = json!("2026-11-26T00:00:00Z");
            store.objects.insert(path, object.clone());
            ok(StatusCode::CREATED, &object)
        }
        (Method::PUT, Some(name)) => {
            let path = format!("{collection}/{name}");
            let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "bad body".into());
            };
            let Some(current) = store.objects.get(&path).cloned() else {
                return not_found(&name);
            };
            if object["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                    ),
                );
            }
            if resource == "secrets" && object["type"] != current["type"] {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!(
                        "Secret \"{name}\" is invalid: type: Invalid value: field is immutable"
                    ),
                );
            }
            store.resource_version += 1;
            object["metadata"]["resourceVersion"] = json!(store.resource_version.to_string());
            store.objects.insert(path, object.clone());
            ok(StatusCode::OK, &object)
        }
        (Method::PATCH, Some(_)) if store.fail_patches => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "etcdserver: request timed out".to_owned(),
        ),
        (Method::PATCH, Some(name)) => {
            let path = format!("{collection}/{name}");
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if content_type != "application/json-patch+json" {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {content_type}"
                    ),
                );
            }
            let Some(mut object) = store.objects.get(&path).cloned() else {
                return not_found(&name);
            };
            let patch: json_patch::Patch = match serde_json::from_slice(&body) {
                Ok(patch) => patch,
                Err(err) => return status(StatusCode::BAD_REQUEST, "BadRequest", err.to_string()),
            };
            if let Err(err) = json_patch::patch(&mut object, &patch) {
                return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", err.to_string());
            }
            store.resource_version += 1;
            object["metadata"]["resourceVersion"] = json!(store.resource_version.to_string());
            store.objects.insert(path, object.clone());
            ok(StatusCode::OK, &object)
        }
        (method, _) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not supported"),
        ),
    }
}
