//! Helpers for the webhook's integration tests: certificates in temporary directories, the real
//! `sidekiq-guard-webhook` binary as a child process (killed on drop, also on panic), and a
//! real HTTPS client (rustls with ring, hyper HTTP/1.1).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, missing_docs)]

pub mod fake_api;
#[path = "../../../tests/support/no_ipv6.rs"]
pub mod no_ipv6;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use sidekiq_guard_webhook::pki::{self, KeyedCert};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where a test calls a server that reported `addr`: a wildcard address (`0.0.0.0`, `[::]`) on
/// IPv4 loopback, which answers either (where loopback has no IPv6, `[::]` would not dial).
fn dialable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// The name the API server dials for the default Service.
pub const SERVER_NAME: &str = "sidekiq-guard.sidekiq-guard.svc";

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn read(relative: &str) -> Vec<u8> {
    std::fs::read(root().join(relative)).unwrap()
}

pub fn json(relative: &str) -> Value {
    serde_json::from_slice(&read(relative)).unwrap()
}

/// A CA and serving certificates it signs.
pub struct Pki {
    pub ca: KeyedCert,
}

impl Pki {
    pub fn new() -> Self {
        sidekiq_guard_webhook::tls::install_default_provider();
        let ca = pki::new_ca("test CA", SystemTime::now(), Duration::from_secs(86400)).unwrap();
        Self { ca }
    }

    pub fn serving(&self) -> KeyedCert {
        self.serving_from(SystemTime::now(), Duration::from_secs(86400))
    }

    /// A serving certificate valid for `validity` from `not_before`.
    pub fn serving_from(&self, not_before: SystemTime, validity: Duration) -> KeyedCert {
        pki::issue_serving(
            &self.ca,
            &pki::service_dns_names("sidekiq-guard", "sidekiq-guard"),
            not_before,
            validity,
        )
        .unwrap()
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        pki::certificates(self.ca.cert_pem.as_bytes(), "ca")
            .unwrap()
            .remove(0)
    }
}

/// Writes a certificate pair the way the kubelet projects a Secret: `tls.crt` and `tls.key` are
/// symlinks into `..data`, itself a symlink to a timestamped directory, swapped atomically.
pub struct ProjectedSecret {
    pub dir: PathBuf,
    generation: u32,
}

impl ProjectedSecret {
    pub fn new(dir: &Path, cert: &KeyedCert) -> Self {
        let mut secret = Self {
            dir: dir.to_owned(),
            generation: 0,
        };
        secret.update(cert);
        std::os::unix::fs::symlink("..data/tls.crt", dir.join("tls.crt")).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", dir.join("tls.key")).unwrap();
        secret
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }

    /// The kubelet's AtomicWriter: new timestamped directory, `..data_tmp` symlink to it,
    /// rename over `..data`, remove the old directory.
    pub fn update(&mut self, cert: &KeyedCert) {
        self.generation += 1;
        let new = format!("..2026_11_26_00_00_00.{}", self.generation);
        let new_dir = self.dir.join(&new);
        std::fs::create_dir(&new_dir).unwrap();
        std::fs::write(new_dir.join("tls.crt"), &cert.cert_pem).unwrap();
        std::fs::write(new_dir.join("tls.key"), &cert.key_pem).unwrap();
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&new, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

/// The webhook binary, running.
pub struct Webhook {
    pub child: Child,
    pub admission: SocketAddr,
    pub health: SocketAddr,
    pub logs: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn webhook_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sidekiq-guard-webhook")
}

impl Webhook {
    /// Starts `serve` on loopback ports chosen by the OS with JSON logs, and waits until it
    /// reports its addresses.
    pub fn start(cert: &Path, key: &Path, policy: &str, extra: &[&str]) -> Self {
        Self::start_on("127.0.0.1", cert, key, policy, extra)
    }

    /// [`Webhook::start`] listening on `host` (`[::]`, say).
    pub fn start_on(host: &str, cert: &Path, key: &Path, policy: &str, extra: &[&str]) -> Self {
        Self::start_with(Command::new(webhook_bin()), host, cert, key, policy, extra)
    }

    /// [`Webhook::start_on`] `[::]` where the kernel has no IPv6 ([`no_ipv6`]).
    pub fn start_without_ipv6(cert: &Path, key: &Path, policy: &str) -> Self {
        let mut command = Command::new(no_ipv6::wrapper(Path::new(env!("CARGO_TARGET_TMPDIR"))));
        command.arg(webhook_bin());
        Self::start_with(command, "[::]", cert, key, policy, &[])
    }

    /// `command`, the webhook binary or a wrapper given it, with `serve` and its arguments.
    fn start_with(
        mut command: Command,
        host: &str,
        cert: &Path,
        key: &Path,
        policy: &str,
        extra: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let policy_file = dir.join("policy.yaml");
        std::fs::write(&policy_file, policy).unwrap();
        command
            .args(["--log-format", "json", "--log-level", "debug", "serve"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args(["--addr", &format!("{host}:0")])
            .args(["--health-addr", &format!("{host}:0")])
            .arg("--policy")
            .arg(&policy_file)
            .args(["--cert-reload-interval", "100ms"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Self::spawn(command)
    }

    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("webhook: {line}");
                    continue;
                };
                let addr =
                    |name: &str| value[name].as_str().unwrap().parse::<SocketAddr>().unwrap();
                let listening =
                    (value["message"] == "listening").then(|| (addr("admission"), addr("health")));
                // Kept before it is reported, so that the test finds the line it waited for.
                sink.lock().unwrap().push(value);
                if let Some(addresses) = listening {
                    let _ = tx.send(addresses);
                }
            }
        });
        let addresses = rx.recv_timeout(Duration::from_secs(20));
        let mut webhook = Self {
            child,
            admission: "0.0.0.0:0".parse().unwrap(),
            health: "0.0.0.0:0".parse().unwrap(),
            logs,
        };
        let (admission, health) = addresses.unwrap_or_else(|_| {
            panic!(
                "the webhook did not report its addresses; exit: {:?}",
                webhook.child.try_wait()
            )
        });
        webhook.admission = dialable(admission);
        webhook.health = dialable(health);
        webhook
    }

    /// The addresses the webhook reported it listens on (`listening` log line), as given:
    /// `[::]:PORT` rather than [`Webhook::admission`]'s loopback address.
    pub fn listening(&self) -> (String, String) {
        let line = &self.logs_with("listening")[0];
        let field = |name: &str| line[name].as_str().unwrap().to_owned();
        (field("admission"), field("health"))
    }

    /// GET on the health port: (status, body).
    pub async fn health_get(&self, path: &str) -> (StatusCode, String) {
        let stream = TcpStream::connect(self.health).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let request = Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = send.send_request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Waits until `/readyz` says `ready`.
    pub async fn wait_ready(&self, ready: bool, within: Duration) {
        let started = Instant::now();
        loop {
            let (status, _) = self.health_get("/readyz").await;
            if (status == StatusCode::OK) == ready {
                return;
            }
            assert!(
                started.elapsed() < within,
                "/readyz did not become {} within {within:?}",
                if ready { "200" } else { "503" }
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A metric's value from `/metrics`, 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.health_get("/metrics").await;
        text.lines()
            .find_map(|line| line.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .map_or(0.0, |v| v.parse().unwrap())
    }

    /// A metric's value once it is at least `at_least` (within 5 s): what the webhook counts
    /// as a connection ends may land just after the client saw the end.
    pub async fn wait_metric(&self, series: &str, at_least: f64) -> f64 {
        let started = Instant::now();
        loop {
            let seen = self.metric(series).await;
            if seen >= at_least {
                return seen;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{series} is {seen}, expected at least {at_least}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Log lines whose `message` is `message`.
    pub fn logs_with(&self, message: &str) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l["message"] == message)
            .cloned()
            .collect()
    }

    /// Log lines whose `message` is `message`, once there are at least `count` of them: under
    /// load the webhook writes its log lines in batches, up to 100 ms late.
    pub async fn wait_logs_with(&self, message: &str, count: usize) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let lines = self.logs_with(message);
            if lines.len() >= count {
                return lines;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{count} log line(s) {message:?} expected, {} seen",
                lines.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit; `None` if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if started.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A TLS client that trusts `roots`.
#[derive(Clone)]
pub struct Client {
    connector: TlsConnector,
}

pub fn tls_client_config(roots: &[CertificateDer<'static>]) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(sidekiq_guard_webhook::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth()
}

impl Client {
    pub fn new(roots: &[CertificateDer<'static>]) -> Self {
        Self::with_config(tls_client_config(roots))
    }

    pub fn with_config(config: rustls::ClientConfig) -> Self {
        Self {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    pub async fn tls(
        &self,
        addr: SocketAddr,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let stream = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        self.connector.connect(name, stream).await
    }

    /// A keep-alive HTTPS connection.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = self.tls(addr).await?;
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first().cloned())
            .unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { send, leaf })
    }
}

/// One HTTPS/1.1 connection.
pub struct Conn {
    pub send: SendRequest<Full<Bytes>>,
    /// The serving certificate the server presented.
    pub leaf: CertificateDer<'static>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Conn {
    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> hyper::Result<Answer> {
        self.request("POST", path, body.into()).await
    }

    /// Posts the fixture at `relative` (from the repository root) to `path`.
    pub async fn post_file(&mut self, path: &str, relative: &str) -> Answer {
        self.post(path, read(relative)).await.unwrap()
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> hyper::Result<Answer> {
        self.send.ready().await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", SERVER_NAME)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let response = self.send.send_request(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// Everything the server sends on `stream` until it closes it, within `limit`; `what` names the
/// answer the test waits for in the failure message.
pub async fn answer_within(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
    what: &str,
) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut response = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut response))
        .await
        .unwrap_or_else(|_| panic!("{what}"))
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// Decodes the base64 `patch` of an AdmissionReview answer in place, as the golden files
/// store it.
pub fn readable(review: &Value) -> Value {
    use base64::Engine as _;
    let mut response = review["response"].clone();
    if let Some(patch) = response.get("patch").and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        response["patch"] = serde_json::from_slice(&bytes).unwrap();
    }
    response
}
