//! HTTPS keep-alive load against `/mutate`, side by side with a floor server.
//!
//! ```text
//! cargo bench -p sidekiq-guard-webhook --bench load
//! ```
//!
//! Starts the real `sidekiq-guard-webhook serve` (release build, JSON logs to a pipe this
//! process drains, as a container runtime would) and a *floor*: a minimal server built here on
//! the same stack (the same axum-server setup, the same rustls configuration and certificate
//! store, the same tokio runtime) that reads each request body and answers a constant allow-all
//! review without looking at it. Both get the same load: `SG_BENCH_CONCURRENCY` (32) keep-alive
//! HTTPS connections, each sending the AdmissionReview of a typical Sidekiq pod
//! (`tests/data/admission/create-pod-rails-worker.json`) back to back. Phases of
//! `SG_BENCH_SECONDS` (3) alternate between the servers for `SG_BENCH_ROUNDS` (6) rounds,
//! so that the machine's speed drifting during the run affects both alike.
//!
//! A third server, *answer*, is the floor answering the webhook's own answer to this review (the
//! bytes the webhook sent, as a constant): the same stack, the same bytes in and out, no work.
//! Its throughput bounds what any implementation of the mutation could reach with an answer of
//! this size, and the ratio webhook/answer is what the review itself costs.
//!
//! `SG_BENCH_WEBHOOK_ARGS` adds arguments to the webhook's command line, and
//! `SG_BENCH_WEBHOOK_BIN` runs another build of it instead (for comparing two builds, run after
//! run).
//!
//! Prints throughput, latency percentiles and the webhook's resident memory under load, and
//! exits with status 1 when a target is missed: throughput ≥ 85 % of the floor's, p99 < 5 ms,
//! RSS < 30 MiB.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_server::Handle;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use sidekiq_guard_webhook::{pki, server, tls};
use tokio_rustls::TlsConnector;

/// The same allocator as the webhook binary: part of "the same stack".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FLOOR_ANSWER: &[u8] = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"fdb8cbe4-c111-5a78-a115-d9ca21d50a33","allowed":true}}"#;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--floor") {
        let answer = args.get(i + 3).map_or_else(
            || Bytes::from_static(FLOOR_ANSWER),
            |file| Bytes::from(std::fs::read(file).unwrap()),
        );
        floor(
            Path::new(&args[i + 1]),
            args[i + 2].parse().unwrap(),
            answer,
        );
        return;
    }
    tls::install_default_provider();
    let concurrency = env_or("SG_BENCH_CONCURRENCY", 32) as usize;
    let seconds = env_or("SG_BENCH_SECONDS", 3);
    let rounds = env_or("SG_BENCH_ROUNDS", 6);

    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca = pki::new_ca("bench CA", now, Duration::from_secs(86400)).unwrap();
    let serving = pki::issue_serving(
        &ca,
        &pki::service_dns_names("sidekiq-guard", "sidekiq-guard"),
        now,
        Duration::from_secs(86400),
    )
    .unwrap();
    std::fs::write(dir.path().join("tls.crt"), &serving.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &serving.key_pem).unwrap();
    std::fs::write(dir.path().join("policy.yaml"), "sidecar: {mode: native}\n").unwrap();

    let (addr, health) = (free_port(), free_port());
    let webhook = Server::start(
        "webhook",
        addr,
        // Another build of the webhook (an A/B comparison across runs) may stand in for this one.
        Command::new(
            std::env::var_os("SG_BENCH_WEBHOOK_BIN")
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_sidekiq-guard-webhook").into()),
        )
        .args(["--log-format", "json", "serve"])
        .arg(format!("--addr={addr}"))
        .arg(format!("--health-addr={health}"))
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .arg("--policy")
        .arg(dir.path().join("policy.yaml"))
        .args(
            std::env::var("SG_BENCH_WEBHOOK_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        ),
    );
    let floor = start_floor("floor", dir.path(), None);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let review: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("tests/data/admission/create-pod-rails-worker.json")).unwrap(),
    )
    .unwrap();
    // Compact, as the API server sends it.
    let body = Bytes::from(serde_json::to_vec(&review).unwrap());
    let ca_der = pki::certificates(ca.cert_pem.as_bytes(), "ca")
        .unwrap()
        .remove(0);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "sidekiq-guard-webhook /mutate vs floor: {concurrency} keep-alive HTTPS connections, {rounds} rounds of {seconds} s per server, body {} bytes",
        body.len()
    );
    // The webhook really mutates this pod; its answer becomes the third server's constant.
    let answer = runtime.block_on(check_answer(&connector, webhook.addr, &body));
    println!(
        "the webhook's answer: {} bytes (the floor's: {} bytes)",
        answer.len(),
        FLOOR_ANSWER.len()
    );
    std::fs::write(dir.path().join("answer.json"), &answer).unwrap();
    let sized = start_floor("answer", dir.path(), Some(&dir.path().join("answer.json")));
    let mut servers = [floor, webhook, sized];
    runtime.block_on(async {
        // Warm-up: connections, allocator, caches.
        for server in &mut servers {
            load(
                &connector,
                server,
                &body,
                concurrency,
                Duration::from_secs(1),
            )
            .await;
            server.reset();
        }
        for round in 0..rounds {
            let mut line = format!("round {}:", round + 1);
            for at in 0..servers.len() {
                let server = &mut servers[(round as usize + at) % servers.len()];
                let (count, elapsed) = load(
                    &connector,
                    server,
                    &body,
                    concurrency,
                    Duration::from_secs(seconds),
                )
                .await;
                line.push_str(&format!(
                    " {} {:.0} req/s",
                    server.name,
                    count as f64 / elapsed.as_secs_f64()
                ));
            }
            println!("{line}");
        }
    });

    let report = |s: &Server| {
        let mut lat = s.latencies.clone();
        lat.sort_unstable();
        let pct = |p: f64| {
            let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
            Duration::from_nanos(lat[i])
        };
        let throughput = lat.len() as f64 / s.busy.as_secs_f64();
        let per_request = |cpu: Duration| cpu.as_secs_f64() * 1e6 / lat.len() as f64;
        println!(
            "{:8} {:>9} requests {:>8.0} req/s   p50 {:>7.2?}  p90 {:>7.2?}  p99 {:>7.2?}  p99.9 {:>7.2?}  max RSS under load {:>5.1} MiB (peak {:.1} MiB)  CPU/request: server {:.1} µs, client {:.1} µs",
            s.name,
            lat.len(),
            throughput,
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(0.999),
            s.max_rss_kib as f64 / 1024.0,
            s.hwm_kib() as f64 / 1024.0,
            per_request(s.cpu),
            per_request(s.client_cpu),
        );
        (throughput, pct(0.99))
    };
    let [floor, webhook, sized] = &mut servers;
    let (floor_rate, _) = report(floor);
    let (rate, p99) = report(webhook);
    let (sized_rate, _) = report(sized);
    let ratio = rate / floor_rate;
    let rss = webhook.max_rss_kib as f64 / 1024.0;
    let per_round = |a: &Server, b: &Server| {
        a.rounds
            .iter()
            .zip(&b.rounds)
            .map(|(x, y)| format!("{:.2}", x / y))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "throughput webhook/floor: {ratio:.3} (per round: {})",
        per_round(webhook, floor)
    );
    println!(
        "throughput answer/floor: {:.3} (per round: {}): the most a mutation answering {} bytes could reach",
        sized_rate / floor_rate,
        per_round(sized, floor),
        answer.len()
    );
    println!(
        "throughput webhook/answer: {:.3} (per round: {}): the share the review itself leaves",
        rate / sized_rate,
        per_round(webhook, sized)
    );
    let checks = [
        (
            "throughput >= 85% of the floor",
            ratio >= 0.85,
            format!("{:.1}%", ratio * 100.0),
        ),
        (
            "p99 < 5 ms",
            p99 < Duration::from_millis(5),
            format!("{p99:.2?}"),
        ),
        (
            "RSS < 30 MiB under load",
            rss < 30.0,
            format!("{rss:.1} MiB"),
        ),
    ];
    let mut met = true;
    for (what, ok, value) in checks {
        println!("{} {what}: {value}", if ok { "PASS" } else { "FAIL" });
        met &= ok;
    }
    for server in &mut servers {
        server.stop();
    }
    if !met {
        std::process::exit(1);
    }
}

/// Starts this benchmark as a floor server (`--floor`) with the certificates in `dir`, answering
/// the contents of `answer` (default: an allow-all review).
fn start_floor(name: &'static str, dir: &Path, answer: Option<&Path>) -> Server {
    let addr = free_port();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.arg("--floor").arg(dir).arg(addr.to_string());
    command.args(answer);
    Server::start(name, addr, &mut command)
}

/// A server process under test.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    latencies: Vec<u64>,
    busy: Duration,
    rounds: Vec<f64>,
    max_rss_kib: u64,
    /// CPU time the server process used during the measured phases.
    cpu: Duration,
    /// CPU time this (client) process used during them.
    client_cpu: Duration,
}

impl Server {
    fn start(name: &'static str, addr: SocketAddr, command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Drain every log line, like a container runtime.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::with_capacity(1024);
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                line.clear();
            }
        });
        // Up once it accepts TCP connections (the certificate is loaded before the port serves).
        let started = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            if started.elapsed() > Duration::from_secs(30) || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            name,
            child,
            addr,
            latencies: Vec::new(),
            busy: Duration::ZERO,
            rounds: Vec::new(),
            max_rss_kib: 0,
            cpu: Duration::ZERO,
            client_cpu: Duration::ZERO,
        }
    }

    fn reset(&mut self) {
        self.latencies.clear();
        self.busy = Duration::ZERO;
        self.rounds.clear();
        self.max_rss_kib = 0;
        self.cpu = Duration::ZERO;
        self.client_cpu = Duration::ZERO;
    }

    fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    fn hwm_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let stream = connector
        .connect(
            ServerName::try_from("sidekiq-guard.sidekiq-guard.svc").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

fn request(body: &Bytes) -> hyper::Request<Full<Bytes>> {
    hyper::Request::post("/mutate?timeout=5s")
        .header("host", "sidekiq-guard.sidekiq-guard.svc:443")
        .header("content-type", "application/json")
        .header("accept", "application/json, */*")
        .body(Full::new(body.clone()))
        .unwrap()
}

/// Checks that the webhook patches the review; returns its answer.
async fn check_answer(connector: &TlsConnector, addr: SocketAddr, body: &Bytes) -> Bytes {
    let mut send = connect(connector, addr).await;
    let response = send.send_request(request(body)).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let review: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(review["response"]["patchType"], "JSONPatch", "{review}");
    bytes
}

/// Runs `concurrency` connections against `server` for `duration`; returns (requests, time).
async fn load(
    connector: &TlsConnector,
    server: &mut Server,
    body: &Bytes,
    concurrency: usize,
    duration: Duration,
) -> (usize, Duration) {
    let mut connections = Vec::new();
    for _ in 0..concurrency {
        connections.push(connect(connector, server.addr).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, max_rss, pid) = (Arc::clone(&stop), Arc::clone(&max_rss), server.child.id());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                {
                    max_rss.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let cpu_before = cpu_time(server.child.id());
    let client_before = cpu_time(std::process::id());
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for mut send in connections {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(65536);
            while Instant::now() < deadline {
                let sent = Instant::now();
                send.ready().await.unwrap();
                let response = send.send_request(request(&body)).await.unwrap();
                assert_eq!(response.status(), 200);
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                assert!(!bytes.is_empty());
                latencies.push(sent.elapsed().as_nanos() as u64);
            }
            latencies
        }));
    }
    let mut count = 0;
    for task in tasks {
        let latencies = task.await.unwrap();
        count += latencies.len();
        server.latencies.extend(latencies);
    }
    let elapsed = started.elapsed();
    server.cpu += cpu_time(server.child.id()).saturating_sub(cpu_before);
    server.client_cpu += cpu_time(std::process::id()).saturating_sub(client_before);
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    server.busy += elapsed;
    server.rounds.push(count as f64 / elapsed.as_secs_f64());
    server.max_rss_kib = server.max_rss_kib.max(max_rss.load(Ordering::Relaxed));
    (count, elapsed)
}

/// A loopback port that was free a moment ago.
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// User + system CPU time of a process, from `/proc/PID/stat` (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The floor server: same runtime, same TLS, same HTTP server setup as the webhook; reads the
/// body like the webhook (bounded) and answers `answer` (an allow-all review, or the webhook's
/// own answer) as a constant.
fn floor(dir: &Path, addr: SocketAddr, answer: Bytes) {
    tls::install_default_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let files = tls::CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        let (key, loaded) = tls::load_pem(
            &files,
            &std::fs::read(&files.cert).unwrap(),
            &std::fs::read(&files.key).unwrap(),
        )
        .unwrap();
        let store = Arc::new(tls::CertStore::new());
        store.set(key, &loaded.leaf);
        let config = tls::server_config(store).unwrap();
        let listener = std::net::TcpListener::bind(addr).unwrap();
        let app = Router::new().route("/mutate", post(move |request| constant(request, answer)));
        let server = server::https(listener, Arc::new(config), Handle::new()).unwrap();
        server.serve(app.into_make_service()).await.unwrap();
    });
}

async fn constant(request: Request, answer: Bytes) -> Response {
    let body: Body = request.into_body();
    let _ = Limited::new(body, sidekiq_guard_webhook::handler::DEFAULT_MAX_BODY_BYTES)
        .collect()
        .await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        answer,
    )
        .into_response()
}
