//! SIGTERM: readiness fails first, the replica keeps answering during the delay, in-flight
//! requests finish, keep-alive connections are closed, and the process exits in bounded time.

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Client, Pki, Webhook};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const POLICY: &str = "sidecar: {mode: native}\n";

struct Setup {
    _dir: tempfile::TempDir,
    webhook: Webhook,
    client: Client,
}

fn start(extra: &[&str]) -> Setup {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let serving = pki.serving();
    std::fs::write(dir.path().join("tls.crt"), &serving.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &serving.key_pem).unwrap();
    let webhook = Webhook::start(
        &dir.path().join("tls.crt"),
        &dir.path().join("tls.key"),
        POLICY,
        extra,
    );
    Setup {
        _dir: dir,
        webhook,
        client: Client::new(&[pki.ca_der()]),
    }
}

fn review() -> Vec<u8> {
    common::read("tests/data/admission/create-pod-rails-worker.json")
}

/// Sends the request head and the first half of the body, leaving the request in flight.
async fn half_sent(
    client: &Client,
    addr: std::net::SocketAddr,
    query: &str,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
    let body = review();
    let mut stream = client.tls(addr).await.unwrap();
    let head = format!(
        "POST /mutate{query} HTTP/1.1\r\nhost: sidekiq-guard.sidekiq-guard.svc\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(first).await.unwrap();
    stream.flush().await.unwrap();
    (stream, rest.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_readiness_first_then_in_flight_requests_then_exits() {
    let mut setup = start(&["--shutdown-delay", "2s", "--shutdown-timeout", "5s"]);
    setup
        .webhook
        .wait_ready(true, Duration::from_secs(10))
        .await;
    let addr = setup.webhook.admission;

    // A keep-alive connection like the API server's, idle between requests.
    let mut keep_alive = setup.client.connect(addr).await.unwrap();
    let answer = keep_alive.post("/mutate", review()).await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(answer.headers.get("connection").is_none());
    // Another one that stays idle through the shutdown.
    let mut idle = setup.client.tls(addr).await.unwrap();
    // And one that served a request before the signal and is idle since, as the API server
    // leaves most of its connections.
    let mut used = setup.client.connect(addr).await.unwrap();
    assert_eq!(used.post("/mutate", review()).await.unwrap().status, 200);
    assert!(!used.send.is_closed());
    // A request whose body is still arriving when SIGTERM comes.
    let (mut in_flight, rest) = half_sent(&setup.client, addr, "?timeout=10s").await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    setup.webhook.signal("TERM");
    // 1. Readiness fails first, while the process still serves.
    setup
        .webhook
        .wait_ready(false, Duration::from_millis(500))
        .await;
    let (_, body) = setup.webhook.health_get("/readyz").await;
    assert_eq!(body, "not ready: shutting down\n");
    assert!(setup.webhook.child.try_wait().unwrap().is_none());

    // 2. During the delay it still answers, asking the client to reconnect elsewhere.
    let answer = keep_alive.post("/mutate", review()).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["connection"], "close");
    assert!(signalled.elapsed() < Duration::from_secs(2));

    // 3. After the delay: no new connections, idle keep-alive connections are closed...
    tokio::time::sleep(Duration::from_millis(2300).saturating_sub(signalled.elapsed())).await;
    assert!(
        setup.client.connect(addr).await.is_err(),
        "a new connection was accepted after the delay"
    );
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf))
        .await
        .expect("the idle keep-alive connection was not closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    tokio::time::timeout(Duration::from_secs(2), async {
        while !used.send.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a keep-alive connection that had served a request was not closed");

    // ...and the request in flight still gets its full answer.
    in_flight.write_all(&rest).await.unwrap();
    let response = common::answer_within(
        &mut in_flight,
        Duration::from_secs(5),
        "the in-flight request was not answered",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("\"uid\":\"fdb8cbe4-c111-5a78-a115-d9ca21d50a33\""));
    assert!(response.contains("\"patchType\":\"JSONPatch\""));

    // 4. Then it exits, cleanly and in bounded time.
    let status = setup
        .webhook
        .wait_exit(Duration::from_secs(5))
        .expect("the webhook did not exit");
    assert!(status.success(), "{status:?}");
    let elapsed = signalled.elapsed();
    // Delay (2 s) + the time the in-flight request took to finish, far below delay + timeout.
    assert!(elapsed < Duration::from_secs(6), "exit took {elapsed:?}");
    assert_eq!(setup.webhook.logs_with("stopped").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_completes_cannot_hold_up_the_exit() {
    let mut setup = start(&["--shutdown-delay", "0s", "--shutdown-timeout", "1s"]);
    setup
        .webhook
        .wait_ready(true, Duration::from_secs(10))
        .await;
    let (_stalled, _) = half_sent(&setup.client, setup.webhook.admission, "?timeout=30s").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    setup.webhook.signal("TERM");
    let status = setup
        .webhook
        .wait_exit(Duration::from_secs(5))
        .expect("a stalled request kept the webhook from exiting");
    assert!(status.success(), "{status:?}");
    let elapsed = signalled.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "exit after {elapsed:?}, expected about the 1 s shutdown timeout"
    );
}

#[tokio::test]
async fn a_second_signal_cuts_the_delay_short() {
    let mut setup = start(&["--shutdown-delay", "60s", "--shutdown-timeout", "1s"]);
    setup
        .webhook
        .wait_ready(true, Duration::from_secs(10))
        .await;
    let signalled = Instant::now();
    setup.webhook.signal("TERM");
    setup
        .webhook
        .wait_ready(false, Duration::from_millis(500))
        .await;
    setup.webhook.signal("INT");
    let status = setup
        .webhook
        .wait_exit(Duration::from_secs(5))
        .expect("the second signal did not end the delay");
    assert!(status.success());
    assert!(signalled.elapsed() < Duration::from_secs(3));
}
