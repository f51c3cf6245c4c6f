//! Prometheus metrics, served as text on the health port's `/metrics`.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `sidekiq_guard_webhook_requests_total` | `endpoint`, `result` | admission requests by answer: the core's outcome (`mutated`, `unchanged`, `no-sidekiq`, `denied`…) or the HTTP error (`bad-request`, `payload-too-large`, `timeout`) |
//! | `sidekiq_guard_webhook_request_duration_seconds` | `endpoint` | time from the request head to the answer, body read included |
//! | `sidekiq_guard_webhook_injections_total` | `mode` | pods `/mutate` injected, by sidecar mode |
//! | `sidekiq_guard_webhook_skips_total` | `reason` | pods `/mutate` left unchanged, by reason |
//! | `sidekiq_guard_webhook_certificate_expiry_timestamp_seconds` | | `notAfter` of the serving certificate in use, 0 until one is loaded |
//! | `sidekiq_guard_webhook_certificate_reloads_total` | `result` | certificate loads: `success`, `failure` |
//! | `sidekiq_guard_webhook_tls_handshake_errors_total` | `reason` | connections to the admission port that failed before their TLS handshake completed ([`crate::handshake`]): `certificate-rejected`, `alert`, `protocol`, `server`, `timeout`, `closed`, `accept`, `other` |
//! | `sidekiq_guard_webhook_build_info` | `version`, `sidecar_mode` | 1, once the sidecar mode is decided |

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::pki::CertInfo;

type Labels = [(&'static str, &'static str); 2];
type Label = [(&'static str, &'static str); 1];

/// Every metric the webhook exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    duration: Family<Label, Histogram>,
    injections: Family<Label, Counter>,
    skips: Family<Label, Counter>,
    cert_expiry: Gauge<i64, AtomicI64>,
    cert_reloads: Family<Label, Counter>,
    handshake_errors: Family<Label, Counter>,
    build_info: Family<Labels, Gauge>,
}

fn latency_histogram() -> Histogram {
    // 50 µs to 13 s: an answer takes tens of microseconds, a large UPDATE review a few
    // milliseconds, and the API server gives up at timeoutSeconds (5 s here); slower answers
    // still land in a bucket of their own rather than only in +Inf.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sidekiq_guard_webhook");
        let requests = Family::<Labels, Counter>::default();
        let duration = Family::<Label, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let injections = Family::<Label, Counter>::default();
        let skips = Family::<Label, Counter>::default();
        let cert_expiry = Gauge::<i64, AtomicI64>::default();
        let cert_reloads = Family::<Label, Counter>::default();
        let handshake_errors = Family::<Label, Counter>::default();
        let build_info = Family::<Labels, Gauge>::default();
        registry.register(
            "requests",
            "Admission requests by endpoint and result",
            requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time to answer an admission request, reading the body included",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "injections",
            "Pods injected by /mutate, by sidecar mode",
            injections.clone(),
        );
        registry.register(
            "skips",
            "Pods /mutate left unchanged, by reason",
            skips.clone(),
        );
        registry.register_with_unit(
            "certificate_expiry_timestamp",
            "Expiry (notAfter) of the serving certificate in use, as a Unix time; 0 until one is loaded",
            Unit::Seconds,
            cert_expiry.clone(),
        );
        registry.register(
            "certificate_reloads",
            "Loads of the serving certificate files, by result",
            cert_reloads.clone(),
        );
        registry.register(
            "tls_handshake_errors",
            "Connections to the admission port that failed before their TLS handshake completed, by reason",
            handshake_errors.clone(),
        );
        registry.register(
            "build_info",
            "Version and the sidecar mode this process injects",
            build_info.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            injections,
            skips,
            cert_expiry,
            cert_reloads,
            handshake_errors,
            build_info,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, endpoint: &'static str, result: &'static str, elapsed: Duration) {
        self.requests
            .get_or_create(&[("endpoint", endpoint), ("result", result)])
            .inc();
        self.duration
            .get_or_create(&[("endpoint", endpoint)])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request no route answers: a path the webhook does not serve (`endpoint`
    /// `other`), or a method other than POST (no latency: nothing was done).
    pub fn unrouted(&self, endpoint: &'static str, result: &'static str) {
        self.requests
            .get_or_create(&[("endpoint", endpoint), ("result", result)])
            .inc();
    }

    /// Counts a pod injected by `/mutate`.
    pub fn injection(&self, mode: &'static str) {
        self.injections.get_or_create(&[("mode", mode)]).inc();
    }

    /// Counts a pod `/mutate` left unchanged.
    pub fn skip(&self, reason: &'static str) {
        self.skips.get_or_create(&[("reason", reason)]).inc();
    }

    /// Records a certificate that went into service.
    pub fn certificate_loaded(&self, cert: &CertInfo) {
        self.cert_expiry.set(cert.not_after);
        self.cert_reloads
            .get_or_create(&[("result", "success")])
            .inc();
    }

    /// Counts certificate files that were rejected.
    pub fn certificate_reload_failed(&self) {
        self.cert_reloads
            .get_or_create(&[("result", "failure")])
            .inc();
    }

    /// Counts a connection that failed before its TLS handshake completed.
    pub fn handshake_failed(&self, reason: &'static str) {
        self.handshake_errors
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// Records the sidecar mode decided at start-up.
    pub fn decided(&self, mode: &'static str) {
        self.build_info
            .get_or_create(&[("version", sidekiq_guard::VERSION), ("sidecar_mode", mode)])
            .set(1);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_with_their_labels() {
        let metrics = Metrics::new();
        metrics.request("mutate", "mutated", Duration::from_micros(80));
        metrics.request("mutate", "mutated", Duration::from_micros(80));
        metrics.injection("native");
        metrics.skip("no-sidekiq");
        let text = metrics.encode();
        assert!(
            text.contains(
                "sidekiq_guard_webhook_requests_total{endpoint=\"mutate\",result=\"mutated\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("sidekiq_guard_webhook_injections_total{mode=\"native\"} 1"));
        assert!(text.contains("sidekiq_guard_webhook_skips_total{reason=\"no-sidekiq\"} 1"));
        assert!(text.contains(
            "sidekiq_guard_webhook_request_duration_seconds_bucket{le=\"0.0001\",endpoint=\"mutate\"} 2"
        ), "{text}");
    }

    /// The documented alert (`expiry > 0 and expiry - time() < 21d`) relies on 0 meaning "no
    /// certificate yet", never a date.
    #[test]
    fn certificate_expiry_reads_zero_until_a_certificate_is_loaded() {
        const GAUGE: &str = "sidekiq_guard_webhook_certificate_expiry_timestamp_seconds ";
        let metrics = Metrics::new();
        assert!(metrics.encode().contains(&format!("{GAUGE}0\n")));
        metrics.certificate_loaded(&CertInfo {
            common_name: "sidekiq-guard".to_owned(),
            dns_names: vec![],
            not_before: 1_790_000_000,
            not_after: 1_800_000_000,
            is_ca: false,
            serial: "01".to_owned(),
        });
        let text = metrics.encode();
        assert!(text.contains(&format!("{GAUGE}1800000000\n")), "{text}");
        assert!(
            text.contains("sidekiq_guard_webhook_certificate_reloads_total{result=\"success\"} 1")
        );
    }
}
