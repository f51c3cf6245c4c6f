//! Connections to the admission port that failed before the TLS handshake completed:
//! handshakes a client broke off, timed out or could not speak, handshakes the webhook could not
//! complete, and connections the port could not accept. (A connection that completes the
//! handshake and then sends nothing is the HTTP server's to time out, and not counted here.)
//!
//! They matter because every webhook configuration has `failurePolicy: Ignore`: when the API
//! server refuses the serving certificate (a `caBundle` that does not hold its CA, a name it
//! was not issued for, an expired one), pods are admitted uninjected and the webhook itself sees
//! no request at all. The one trace on this side is the alert the client sends as it hangs up,
//! so that one is logged at `warn` with what to check, as are failures on the webhook's own
//! side; the rest (port scanners, TCP health checks, clients speaking plain HTTP) only at
//! `debug`. All are counted by reason in `sidekiq_guard_webhook_tls_handshake_errors_total`.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::AlertDescription;

use crate::metrics::Metrics;

/// Why a connection failed before its TLS handshake completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The client refused the serving certificate, with this alert.
    CertificateRejected(AlertDescription),
    /// The client ended the handshake with another alert (`handshake_failure`,
    /// `protocol_version`…).
    Alert(AlertDescription),
    /// The client does not speak TLS as the port does: plain HTTP, a TLS before 1.2, no cipher
    /// suite or ALPN protocol (`http/1.1`) in common, a malformed or undecryptable handshake.
    Protocol,
    /// The webhook could not do its part: no serving certificate loaded yet, a signing failure.
    Server,
    /// No handshake within the handshake timeout.
    Timeout,
    /// The client closed the connection during the handshake, without an alert.
    Closed,
    /// The port could not accept a connection (out of file descriptors, say).
    Accept,
    /// Anything else.
    Other,
}

impl Failure {
    /// Classifies the error axum-server reports for a connection: `peer` is `None` when the
    /// connection could not even be accepted.
    pub fn of(peer: Option<&SocketAddr>, err: &io::Error) -> Self {
        if peer.is_none() {
            return Self::Accept;
        }
        // tokio-rustls hands rustls' error on inside an `InvalidData` I/O error.
        if let Some(tls) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Self::of_tls(tls);
        }
        match err.kind() {
            io::ErrorKind::TimedOut => Self::Timeout,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Self::Closed,
            _ => Self::Other,
        }
    }

    fn of_tls(err: &rustls::Error) -> Self {
        match err {
            rustls::Error::AlertReceived(alert) if refuses_certificate(*alert) => {
                Self::CertificateRejected(*alert)
            }
            rustls::Error::AlertReceived(alert) => Self::Alert(*alert),
            // rustls says `General` when the certificate resolver has nothing to serve.
            rustls::Error::General(_)
            | rustls::Error::EncryptError
            | rustls::Error::FailedToGetCurrentTime
            | rustls::Error::FailedToGetRandomBytes
            | rustls::Error::InconsistentKeys(_)
            | rustls::Error::Other(_) => Self::Server,
            // The rest are what the client sent or failed to send.
            _ => Self::Protocol,
        }
    }

    /// The metric's `reason` label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::CertificateRejected(_) => "certificate-rejected",
            Self::Alert(_) => "alert",
            Self::Protocol => "protocol",
            Self::Server => "server",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Accept => "accept",
            Self::Other => "other",
        }
    }
}

/// The alerts a TLS client sends when it does not accept the server's certificate (RFC 8446
/// §6.2). Go's `crypto/tls`, the API server's, sends `bad_certificate` for any certificate it
/// refuses (tested with kubectl, the same TLS client); rustls `unknown_ca`, `bad_certificate`,
/// `certificate_expired`…
fn refuses_certificate(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
    )
}

/// What to check when a client refuses the certificate, by alert.
fn advice(alert: AlertDescription) -> &'static str {
    match alert {
        AlertDescription::UnknownCA => {
            "the webhook configurations' caBundle does not hold the CA that signed the serving certificate"
        }
        AlertDescription::CertificateExpired => "the serving certificate has expired",
        // Go's crypto/tls, the API server's, says `bad_certificate` whatever it refused.
        _ => {
            "the caBundle may not hold the CA that signed it, or it has expired or is not issued for the Service's DNS name"
        }
    }
}

/// When accept errors were last logged.
static ACCEPT_ERRORS: Throttle = Throttle::new(Duration::from_secs(60));

/// Lets something through at most once per period.
struct Throttle {
    period: Duration,
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    const fn new(period: Duration) -> Self {
        Self {
            period,
            last: Mutex::new(None),
        }
    }

    /// Whether the period has passed since the last time this said yes (and if so, from now).
    fn due(&self, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.saturating_duration_since(at) < self.period) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Counts and logs one connection that failed before its TLS handshake completed (the
/// admission port's accept-error handler).
pub fn report(metrics: &Metrics, peer: Option<&SocketAddr>, err: &io::Error) {
    let failure = Failure::of(peer, err);
    metrics.handshake_failed(failure.reason());
    let peer = peer.map(ToString::to_string).unwrap_or_default();
    match failure {
        Failure::CertificateRejected(alert) => tracing::warn!(
            peer,
            alert = ?alert,
            reason = failure.reason(),
            "a client refused the serving certificate: {}; if it is the API server, pods are admitted without sidekiq-guard (`kubectl sidekiq check` compares the caBundle with the certificate)",
            advice(alert),
        ),
        Failure::Server => tracing::warn!(
            peer,
            error = %err,
            reason = failure.reason(),
            "the webhook could not complete a TLS handshake"
        ),
        // Out of file descriptors, accept fails at every retry (about 20 a second): said once
        // a minute, counted always.
        Failure::Accept if ACCEPT_ERRORS.due(Instant::now()) => tracing::warn!(
            error = %err,
            reason = failure.reason(),
            "cannot accept a connection on the admission port (said at most once a minute; sidekiq_guard_webhook_tls_handshake_errors_total counts each)"
        ),
        Failure::Accept => {}
        _ => tracing::debug!(
            peer,
            error = %err,
            reason = failure.reason(),
            "TLS handshake failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], 40_000))
    }

    fn tls(err: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, err)
    }

    #[test]
    fn a_throttle_lets_one_through_per_period() {
        let throttle = Throttle::new(Duration::from_secs(60));
        let start = Instant::now();
        assert!(throttle.due(start));
        assert!(!throttle.due(start + Duration::from_secs(59)));
        assert!(throttle.due(start + Duration::from_secs(60)));
        assert!(!throttle.due(start + Duration::from_secs(61)));
    }

    #[test]
    fn failures_are_told_apart_by_what_the_client_did() {
        let cases = [
            (
                tls(rustls::Error::AlertReceived(AlertDescription::UnknownCA)),
                "certificate-rejected",
            ),
            (
                tls(rustls::Error::AlertReceived(
                    AlertDescription::BadCertificate,
                )),
                "certificate-rejected",
            ),
            (
                tls(rustls::Error::AlertReceived(
                    AlertDescription::HandshakeFailure,
                )),
                "alert",
            ),
            (
                tls(rustls::Error::InvalidMessage(
                    rustls::InvalidMessage::InvalidContentType,
                )),
                "protocol",
            ),
            (
                tls(rustls::Error::PeerIncompatible(
                    rustls::PeerIncompatible::Tls12NotOffered,
                )),
                "protocol",
            ),
            (
                io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"),
                "timeout",
            ),
            (
                io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof"),
                "closed",
            ),
            (io::Error::from(io::ErrorKind::ConnectionReset), "closed"),
            (tls(rustls::Error::NoApplicationProtocol), "protocol"),
            (tls(rustls::Error::DecryptError), "protocol"),
            (
                tls(rustls::Error::General(
                    "no server certificate chain resolved".to_owned(),
                )),
                "server",
            ),
            (io::Error::other("something else"), "other"),
        ];
        for (err, reason) in cases {
            assert_eq!(Failure::of(Some(&peer()), &err).reason(), reason, "{err}");
        }
    }

    #[test]
    fn an_error_without_a_peer_is_the_listener_failing_to_accept() {
        let err = io::Error::from_raw_os_error(24); // EMFILE
        assert_eq!(Failure::of(None, &err), Failure::Accept);
    }

    #[test]
    fn an_unknown_ca_names_the_ca_bundle() {
        assert!(advice(AlertDescription::UnknownCA).contains("caBundle"));
        assert!(advice(AlertDescription::CertificateExpired).contains("expired"));
    }

    #[test]
    fn each_failure_is_counted_under_its_reason() {
        let metrics = Metrics::new();
        let refused = tls(rustls::Error::AlertReceived(AlertDescription::UnknownCA));
        report(&metrics, Some(&peer()), &refused);
        report(&metrics, Some(&peer()), &refused);
        report(&metrics, None, &io::Error::from_raw_os_error(24));
        let text = metrics.encode();
        assert!(
            text.contains(
                "sidekiq_guard_webhook_tls_handshake_errors_total{reason=\"certificate-rejected\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("sidekiq_guard_webhook_tls_handshake_errors_total{reason=\"accept\"} 1")
        );
    }
}
