//! TLS on the admission port: protocol versions, ALPN, certificate chains, and hot reload of
//! the certificate files the way the kubelet updates a mounted Secret.

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::{Client, Pki, ProjectedSecret, Webhook};
use rustls::pki_types::CertificateDer;
use sidekiq_guard_webhook::pki::{self, KeyedCert};

const POLICY: &str = "sidecar: {mode: native}\n";

const RELOAD_FAILURES: &str = "sidekiq_guard_webhook_certificate_reloads_total{result=\"failure\"}";

fn pod_review() -> Vec<u8> {
    common::read("tests/data/admission/create-pod-rails-worker.json")
}

async fn mutate_ok(conn: &mut common::Conn) -> Result<(), String> {
    let answer = conn
        .post("/mutate?timeout=5s", pod_review())
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if answer.status != 200 {
        return Err(format!("status {}", answer.status));
    }
    let review = answer.json();
    if review["response"]["uid"] != "fdb8cbe4-c111-5a78-a115-d9ca21d50a33"
        || review["response"]["patchType"] != "JSONPatch"
    {
        return Err(format!("wrong answer: {review}"));
    }
    Ok(())
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_accepted_and_only_http_1_1_is_offered() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let secret = ProjectedSecret::new(dir.path(), &pki.serving());
    let webhook = Webhook::start(&secret.cert(), &secret.key(), POLICY, &[]);
    webhook.wait_ready(true, Duration::from_secs(10)).await;
    let roots = [pki.ca_der()];

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut store = rustls::RootCertStore::empty();
        store.add(roots[0].clone()).unwrap();
        let mut config =
            rustls::ClientConfig::builder_with_provider(sidekiq_guard_webhook::tls::provider())
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(store)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = Client::with_config(config);
        let stream = client.tls(webhook.admission).await.unwrap();
        let (_, session) = stream.get_ref();
        assert_eq!(session.protocol_version(), Some(version.version));
        // HTTP/2 is never chosen, even when the client prefers it.
        assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
        let mut conn = client.connect(webhook.admission).await.unwrap();
        mutate_ok(&mut conn).await.unwrap();
    }

    let mut h2_only = common::tls_client_config(&roots);
    h2_only.alpn_protocols = vec![b"h2".to_vec()];
    let err = Client::with_config(h2_only)
        .tls(webhook.admission)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NoApplicationProtocol"), "{err}");

    // A client that does not trust the CA is refused, as the API server would refuse a wrong
    // caBundle.
    let stranger = Pki::new();
    let err = Client::new(&[stranger.ca_der()])
        .tls(webhook.admission)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

/// A root CA, an intermediate CA it signs, and a serving certificate the intermediate signs.
fn chain() -> (KeyedCert, KeyedCert, KeyedCert) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let now = SystemTime::now();
    let root = pki::new_ca("root", now, Duration::from_secs(3600)).unwrap();
    let root_issuer =
        Issuer::from_ca_cert_pem(&root.cert_pem, KeyPair::from_pem(&root.key_pem).unwrap())
            .unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "intermediate");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let intermediate = KeyedCert {
        cert_pem: params.signed_by(&key, &root_issuer).unwrap().pem(),
        key_pem: key.serialize_pem(),
    };
    let leaf = pki::issue_serving(
        &intermediate,
        &pki::service_dns_names("sidekiq-guard", "sidekiq-guard"),
        now,
        Duration::from_secs(3600),
    )
    .unwrap();
    (root, intermediate, leaf)
}

#[tokio::test]
async fn a_certificate_chain_is_served_whole() {
    let (root, intermediate, leaf) = chain();
    let dir = tempfile::tempdir().unwrap();
    let bundle = KeyedCert {
        cert_pem: format!("{}{}", leaf.cert_pem, intermediate.cert_pem),
        key_pem: leaf.key_pem.clone(),
    };
    let secret = ProjectedSecret::new(dir.path(), &bundle);
    let webhook = Webhook::start(&secret.cert(), &secret.key(), POLICY, &[]);
    webhook.wait_ready(true, Duration::from_secs(10)).await;
    let root_der = pki::certificates(root.cert_pem.as_bytes(), "root")
        .unwrap()
        .remove(0);
    let client = Client::new(&[root_der]);
    let stream = client.tls(webhook.admission).await.unwrap();
    assert_eq!(stream.get_ref().1.peer_certificates().unwrap().len(), 2);
    let mut conn = client.connect(webhook.admission).await.unwrap();
    mutate_ok(&mut conn).await.unwrap();
    let loaded = webhook
        .wait_logs_with("serving certificate loaded", 1)
        .await;
    assert_eq!(loaded[0]["chain_len"], 2);
}

fn leaf_serial(leaf: &CertificateDer<'_>) -> String {
    pki::inspect(leaf, "leaf").unwrap().serial
}

fn serial_of(cert: &KeyedCert) -> String {
    pki::inspect_pem(cert.cert_pem.as_bytes(), "cert")
        .unwrap()
        .serial
}

/// Serial of the certificate a new connection to the admission port is shown.
async fn served(client: &Client, webhook: &Webhook) -> String {
    let conn = client.connect(webhook.admission).await.unwrap();
    leaf_serial(&conn.leaf)
}

/// Waits until new connections are shown `cert`.
async fn wait_served(client: &Client, webhook: &Webhook, cert: &KeyedCert, what: &str) {
    let started = Instant::now();
    while served(client, webhook).await != serial_of(cert) {
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_concurrent_load_loses_no_request() {
    let first_ca = Pki::new();
    let second_ca = Pki::new();
    let certs = [first_ca.serving(), first_ca.serving(), second_ca.serving()];
    let dir = tempfile::tempdir().unwrap();
    let mut secret = ProjectedSecret::new(dir.path(), &certs[0]);
    let webhook = Webhook::start(&secret.cert(), &secret.key(), POLICY, &[]);
    webhook.wait_ready(true, Duration::from_secs(10)).await;
    // The API server trusts both CAs while the bundle moves from one to the other.
    let client = Client::new(&[first_ca.ca_der(), second_ca.ca_der()]);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..16 {
        let (client, stop, done, addr) = (
            client.clone(),
            Arc::clone(&stop),
            Arc::clone(&done),
            webhook.admission,
        );
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut failures = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                // Half the workers keep their connection; the others make a new one (a new
                // handshake) every few requests.
                let mut conn = match client.connect(addr).await {
                    Ok(conn) => conn,
                    Err(err) => {
                        failures.push(format!("connect: {err}"));
                        continue;
                    }
                };
                let serial = leaf_serial(&conn.leaf);
                if !seen.contains(&serial) {
                    seen.push(serial);
                }
                let per_connection = if worker % 2 == 0 { 1_000_000 } else { 3 };
                for _ in 0..per_connection {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match mutate_ok(&mut conn).await {
                        Ok(()) => {
                            n += 1;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => failures.push(err),
                    }
                }
            }
            (n, seen, failures)
        }));
    }

    let wait_for = |serial: String| {
        let client = client.clone();
        let addr = webhook.admission;
        async move {
            let started = Instant::now();
            loop {
                let conn = client.connect(addr).await.unwrap();
                if leaf_serial(&conn.leaf) == serial {
                    return Ok(started.elapsed());
                }
                if started.elapsed() > Duration::from_secs(10) {
                    return Err("new certificate not served within 10 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    secret.update(&certs[1]);
    let first = wait_for(serial_of(&certs[1])).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    secret.update(&certs[2]);
    let second = wait_for(serial_of(&certs[2])).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Stop the load before judging, so that a failure does not leave it running.
    stop.store(true, Ordering::Relaxed);
    let (first, second) = (first.unwrap(), second.unwrap());

    let mut total = 0;
    let mut serials = Vec::new();
    let mut failures = Vec::new();
    for worker in workers {
        let (n, seen, errs) = worker.await.unwrap();
        total += n;
        serials.extend(seen);
        failures.extend(errs);
    }
    assert!(failures.is_empty(), "lost requests: {failures:?}");
    assert!(total > 200, "only {total} requests under load");
    for cert in &certs {
        assert!(
            serials.contains(&serial_of(cert)),
            "a certificate was never served"
        );
    }
    // Picked up within a few polls (100 ms apart), without a restart.
    assert!(
        first < Duration::from_secs(5) && second < Duration::from_secs(5),
        "{first:?} {second:?}"
    );
    assert_eq!(
        webhook
            .wait_logs_with("serving certificate loaded", 3)
            .await
            .len(),
        3
    );
    assert_eq!(
        webhook
            .metric("sidekiq_guard_webhook_certificate_reloads_total{result=\"success\"}")
            .await,
        3.0
    );
    eprintln!("{total} requests, 0 lost; new certificates served after {first:?} and {second:?}");
}

#[tokio::test]
async fn a_broken_update_keeps_the_previous_certificate_in_service() {
    let pki = Pki::new();
    let good = pki.serving();
    let dir = tempfile::tempdir().unwrap();
    let mut secret = ProjectedSecret::new(dir.path(), &good);
    let webhook = Webhook::start(&secret.cert(), &secret.key(), POLICY, &[]);
    webhook.wait_ready(true, Duration::from_secs(10)).await;
    let client = Client::new(&[pki.ca_der()]);

    // A key that belongs to another certificate (a botched manual edit of the Secret).
    let other = pki.serving();
    secret.update(&KeyedCert {
        cert_pem: other.cert_pem.clone(),
        key_pem: good.key_pem.clone(),
    });
    webhook.wait_metric(RELOAD_FAILURES, 1.0).await; // the broken pair
    let mut conn = client.connect(webhook.admission).await.unwrap();
    assert_eq!(leaf_serial(&conn.leaf), serial_of(&good));
    mutate_ok(&mut conn).await.unwrap();
    webhook.wait_ready(true, Duration::from_secs(1)).await;
    // Several reload checks pass over the same broken files before counting.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rejected = webhook
        .wait_logs_with(
            "new certificate files rejected; still serving the previous certificate",
            1,
        )
        .await;
    assert_eq!(rejected.len(), 1, "reported once, not at every poll");
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot serve the certificate in"),
        "{}",
        rejected[0]
    );

    // Fixed: the new pair goes into service.
    secret.update(&other);
    wait_served(&client, &webhook, &other, "the fixed pair was not loaded").await;

    // An expired certificate (an old Secret restored) does not replace the valid one.
    let expired = pki.serving_from(
        SystemTime::now() - Duration::from_secs(2 * 86400),
        Duration::from_secs(86400),
    );
    secret.update(&expired);
    webhook.wait_metric(RELOAD_FAILURES, 2.0).await; // the expired certificate
    let mut conn = client.connect(webhook.admission).await.unwrap();
    assert_eq!(leaf_serial(&conn.leaf), serial_of(&other));
    mutate_ok(&mut conn).await.unwrap();
    let rejected = webhook
        .wait_logs_with(
            "new certificate files rejected; still serving the previous certificate",
            2,
        )
        .await;
    let error = rejected[1]["error"].as_str().unwrap();
    assert!(error.contains("is not valid now: valid from "), "{error}");

    // One valid from a few seconds on (an issuer whose clock runs ahead) goes into service then,
    // though the files do not change again.
    // (issue_serving back-dates by an hour.)
    let early = pki.serving_from(
        SystemTime::now() + Duration::from_secs(3600 + 3),
        Duration::from_secs(86400),
    );
    secret.update(&early);
    let started = Instant::now();
    loop {
        let serial = served(&client, &webhook).await;
        if serial == serial_of(&early) {
            break;
        }
        assert_eq!(
            serial,
            serial_of(&other),
            "the valid certificate serves until then"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the certificate never went into service"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before it was valid"
    );
    let deferred = webhook
        .wait_logs_with(
            "new certificate files not valid yet; still serving the previous certificate",
            1,
        )
        .await;
    assert_eq!(deferred.len(), 1, "reported once, not at every poll");
}

#[tokio::test]
async fn not_ready_until_the_certificate_files_appear() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    // An optional Secret volume before the install Job has created the Secret: empty.
    let webhook = Webhook::start(
        &dir.path().join("tls.crt"),
        &dir.path().join("tls.key"),
        POLICY,
        &[],
    );
    let (status, body) = webhook.health_get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body, "not ready: no serving certificate loaded yet\n");
    let (status, _) = webhook.health_get("/livez").await;
    assert_eq!(status, 200);
    let client = Client::new(&[pki.ca_der()]);
    assert!(client.tls(webhook.admission).await.is_err());
    assert_eq!(
        webhook
            .wait_logs_with("waiting for the certificate files", 1)
            .await
            .len(),
        1
    );
    // The handshake failed on the webhook's side, which says so.
    webhook
        .wait_metric(
            "sidekiq_guard_webhook_tls_handshake_errors_total{reason=\"server\"}",
            1.0,
        )
        .await;
    let failed = webhook
        .wait_logs_with("the webhook could not complete a TLS handshake", 1)
        .await;
    assert_eq!(failed[0]["level"], "WARN", "{}", failed[0]);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("no server certificate chain resolved"),
        "{}",
        failed[0]
    );

    let _secret = ProjectedSecret::new(dir.path(), &pki.serving());
    webhook.wait_ready(true, Duration::from_secs(5)).await;
    let mut conn = client.connect(webhook.admission).await.unwrap();
    mutate_ok(&mut conn).await.unwrap();
}

/// An expired certificate is served at start-up, having nothing else, but not silently: the
/// API server will refuse it, so the log says so and the replica is not ready (which
/// `kubectl get deployment` shows) until a valid one is mounted.
#[tokio::test]
async fn an_expired_certificate_at_start_up_is_served_with_a_warning_and_not_ready() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let expired = pki.serving_from(
        SystemTime::now() - Duration::from_secs(3 * 86400),
        Duration::from_secs(86400),
    );
    let mut secret = ProjectedSecret::new(dir.path(), &expired);
    let webhook = Webhook::start(&secret.cert(), &secret.key(), POLICY, &[]);
    let started = std::time::Instant::now();
    let body = loop {
        let (status, body) = webhook.health_get("/readyz").await;
        assert_eq!(status, 503, "{body}");
        if !body.contains("starting") && !body.contains("no serving certificate") {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        body.starts_with("not ready: the serving certificate expired at ")
            && body.ends_with(": the API server refuses it until a renewed one is mounted\n"),
        "{body}"
    );
    secret.update(&pki.serving());
    webhook.wait_ready(true, Duration::from_secs(5)).await;
    let warned = webhook
        .wait_logs_with(
            "the serving certificate is not valid now: the API server refuses it, and applies the webhooks' failurePolicy (Ignore: pods go uninjected) until a valid one replaces it",
            1,
        )
        .await;
    assert_eq!(warned[0]["level"], "WARN", "{}", warned[0]);
    assert!(warned[0]["not_after"].is_string(), "{}", warned[0]);
}

#[tokio::test]
async fn vanished_certificate_files_leave_the_loaded_certificate_serving() {
    let pki = Pki::new();
    let first = pki.serving();
    let dir = tempfile::tempdir().unwrap();
    let secret = ProjectedSecret::new(dir.path(), &first);
    let webhook = Webhook::start(&secret.cert(), &secret.key(), POLICY, &[]);
    webhook.wait_ready(true, Duration::from_secs(10)).await;
    let client = Client::new(&[pki.ca_der()]);

    // The Secret deleted (and its volume emptied) under a running webhook.
    std::fs::remove_file(secret.cert()).unwrap();
    std::fs::remove_file(secret.key()).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut conn = client.connect(webhook.admission).await.unwrap();
    assert_eq!(leaf_serial(&conn.leaf), serial_of(&first));
    mutate_ok(&mut conn).await.unwrap();
    webhook.wait_ready(true, Duration::from_secs(1)).await;
    // Said once, not at every poll (8 polls have passed).
    assert_eq!(
        webhook
            .wait_logs_with(
                "certificate files unreadable; still serving the previous certificate",
                1
            )
            .await
            .len(),
        1
    );

    // Recreated with a new certificate: served.
    let second = pki.serving();
    let fresh = dir.path().join("recreated");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::write(fresh.join("tls.crt"), &second.cert_pem).unwrap();
    std::fs::write(fresh.join("tls.key"), &second.key_pem).unwrap();
    std::os::unix::fs::symlink(fresh.join("tls.crt"), secret.cert()).unwrap();
    std::os::unix::fs::symlink(fresh.join("tls.key"), secret.key()).unwrap();
    wait_served(
        &client,
        &webhook,
        &second,
        "the new certificate was not loaded",
    )
    .await;
}

/// The API server's refusal of the certificate (a stale caBundle) never reaches a handler: with
/// `failurePolicy: Ignore` pods would go uninjected in silence, so the alert is logged and
/// counted; scanners and plain-HTTP clients are only counted (and logged at debug).
#[tokio::test]
async fn failed_handshakes_are_counted_by_reason_and_a_refused_certificate_is_a_warning() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let secret = ProjectedSecret::new(dir.path(), &pki.serving());
    let webhook = Webhook::start(&secret.cert(), &secret.key(), POLICY, &[]);
    webhook.wait_ready(true, Duration::from_secs(10)).await;
    let series = |reason: &str| {
        format!("sidekiq_guard_webhook_tls_handshake_errors_total{{reason=\"{reason}\"}}")
    };

    // A handshake that succeeds is not counted, whatever follows it.
    let mut conn = Client::new(&[pki.ca_der()])
        .connect(webhook.admission)
        .await
        .unwrap();
    mutate_ok(&mut conn).await.unwrap();
    drop(conn);
    let (_, metrics) = webhook.health_get("/metrics").await;
    assert!(
        !metrics.contains("sidekiq_guard_webhook_tls_handshake_errors_total{"),
        "{metrics}"
    );

    // A client that trusts another CA, as the API server with a caBundle that is not this
    // one's: rustls says `unknown_ca`.
    let other_ca =
        pki::new_ca("another CA", SystemTime::now(), Duration::from_secs(86400)).unwrap();
    let other_root = pki::certificates(other_ca.cert_pem.as_bytes(), "ca").unwrap();
    let err = Client::new(&other_root)
        .tls(webhook.admission)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert_eq!(
        webhook
            .wait_metric(&series("certificate-rejected"), 1.0)
            .await,
        1.0
    );
    let warned = webhook
        .wait_logs_with(
            "a client refused the serving certificate: the webhook configurations' caBundle does \
             not hold the CA that signed the serving certificate; if it is the API server, pods \
             are admitted without sidekiq-guard (`kubectl sidekiq check` compares the caBundle \
             with the certificate)",
            1,
        )
        .await;
    assert_eq!(warned[0]["level"], "WARN", "{}", warned[0]);
    assert_eq!(warned[0]["alert"], "UnknownCA", "{}", warned[0]);
    assert!(
        warned[0]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{}",
        warned[0]
    );

    // The API server's own TLS client: Go's crypto/tls, which kubectl shares, here trusting
    // another CA as a stale caBundle would. Go names no reason in its alert.
    let stale_bundle = dir.path().join("stale-ca.crt");
    std::fs::write(&stale_bundle, &other_ca.cert_pem).unwrap();
    let kubectl = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig=/dev/null",
            "--token=unused",
            "--request-timeout=5s",
        ])
        .arg(format!("--server=https://{}", webhook.admission))
        .arg(format!(
            "--certificate-authority={}",
            stale_bundle.display()
        ))
        .args([
            "--tls-server-name=sidekiq-guard.sidekiq-guard.svc",
            "get",
            "--raw",
            "/livez",
        ])
        .output()
        .expect("kubectl is needed (scripts/setup checks for it)");
    let stderr = String::from_utf8_lossy(&kubectl.stderr);
    assert!(
        !kubectl.status.success()
            && stderr.contains("x509: certificate signed by unknown authority"),
        "{stderr}"
    );
    // kubectl may try more than once.
    webhook
        .wait_metric(&series("certificate-rejected"), 2.0)
        .await;
    let warned = webhook
        .wait_logs_with(
            "a client refused the serving certificate: the caBundle may not hold the CA that \
             signed it, or it has expired or is not issued for the Service's DNS name; if it is \
             the API server, pods are admitted without sidekiq-guard (`kubectl sidekiq check` \
             compares the caBundle with the certificate)",
            1,
        )
        .await;
    assert_eq!(warned[0]["alert"], "BadCertificate", "{}", warned[0]);

    // Plain HTTP to the TLS port.
    let mut plain = tokio::net::TcpStream::connect(webhook.admission)
        .await
        .unwrap();
    plain
        .write_all(b"GET /livez HTTP/1.1\r\nHost: sidekiq-guard\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = plain.read_to_end(&mut rest).await;
    assert_eq!(webhook.wait_metric(&series("protocol"), 1.0).await, 1.0);

    // A TCP check that connects and hangs up.
    drop(
        tokio::net::TcpStream::connect(webhook.admission)
            .await
            .unwrap(),
    );
    assert_eq!(webhook.wait_metric(&series("closed"), 1.0).await, 1.0);
    let quiet = webhook.wait_logs_with("TLS handshake failed", 2).await;
    let reasons: Vec<&str> = quiet
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["protocol", "closed"]);
    assert!(quiet.iter().all(|l| l["level"] == "DEBUG"), "{quiet:?}");

    // None of it disturbs a client that trusts the CA.
    let mut conn = Client::new(&[pki.ca_der()])
        .connect(webhook.admission)
        .await
        .unwrap();
    mutate_ok(&mut conn).await.unwrap();
}
