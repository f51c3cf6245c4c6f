//! `sidekiq-guard-webhook serve`: start-up, the two ports, and the shutdown sequence.
//!
//! Start-up: bind both ports, load the certificate (or wait for it), serve, decide the sidecar
//! mode; `/readyz` turns 200 only when all of that is done, and admission requests get 503
//! until the mode is decided.
//!
//! Shutdown on SIGTERM (or SIGINT):
//! 1. `/readyz` fails at once, so the endpoints controller removes this replica from the
//!    Service;
//! 2. for `--shutdown-delay` the replica keeps answering (the API server may still route to
//!    it while the endpoint removal propagates), with `Connection: close` on every answer so
//!    keep-alive connections move to another replica;
//! 3. it stops accepting, closes idle keep-alive connections and lets in-flight requests
//!    finish, for at most `--shutdown-timeout`;
//! 4. it exits. A second signal skips the rest of the delay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum_server::Handle;
use sidekiq_guard::Policy;
use tokio::sync::watch;

use crate::cluster::{self, ClusterError};
use crate::handler::{self, AdmissionState};
use crate::handshake;
use crate::health::{self, Health};
use crate::metrics::Metrics;
use crate::server;
use crate::tls::{self, CertFiles, CertStore, Watcher};

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Admission (HTTPS) address.
    pub addr: SocketAddr,
    /// Health (plain HTTP) address.
    pub health_addr: SocketAddr,
    /// Serving certificate and key.
    pub cert: CertFiles,
    /// The policy.
    pub policy: Policy,
    /// Kubeconfig for `sidecar.mode: auto` outside a cluster.
    pub kubeconfig: Option<PathBuf>,
    /// How often the certificate files are checked for changes.
    pub reload_interval: Duration,
    /// How long to keep serving after SIGTERM while readiness fails.
    pub shutdown_delay: Duration,
    /// How long in-flight requests may take to finish after that.
    pub shutdown_timeout: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A port cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration cannot be built.
    #[error("cannot configure TLS")]
    Tls(#[source] rustls::Error),
    /// `sidecar.mode: auto` without any way to reach a cluster.
    #[error(
        "cannot decide the sidecar mode (sidecar.mode auto asks the API server for its version; a --policy with sidecar.mode native or classic needs no cluster)"
    )]
    Mode(#[source] ClusterError),
    /// The certificate watcher stopped, which only a defect does: renewed certificates would
    /// go unloaded until the served one expires, so the webhook exits to be restarted.
    #[error("the certificate watcher stopped")]
    Watcher(#[source] std::io::Error),
    /// A server failed while running.
    #[error("the {port} server failed")]
    Server {
        /// `admission` or `health`.
        port: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Counts termination signals; `serve` reacts to each change.
pub type Signals = watch::Receiver<u32>;

/// Runs the webhook until the first signal on `signals`, then shuts down as described in the
/// module documentation.
pub async fn serve(config: ServeConfig, mut signals: Signals) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let certs = Arc::new(CertStore::new());
    let draining = Arc::new(AtomicBool::new(false));
    let health = Arc::new(Health {
        certs: Arc::clone(&certs),
        serving: AtomicBool::new(false),
        draining: Arc::clone(&draining),
        metrics: Arc::clone(&metrics),
    });

    let bind_error = |addr| move |source| ServeError::Bind { addr, source };
    let health_listener = bind(config.health_addr).map_err(bind_error(config.health_addr))?;
    let admission_listener = bind(config.addr).map_err(bind_error(config.addr))?;
    let health_addr = health_listener
        .local_addr()
        .map_err(bind_error(config.health_addr))?;
    let admission_addr = admission_listener
        .local_addr()
        .map_err(bind_error(config.addr))?;
    tracing::info!(
        admission = %admission_addr,
        health = %health_addr,
        version = sidekiq_guard::VERSION,
        "listening"
    );

    let health_handle = Handle::new();
    let health_server = tokio::spawn(
        server::http(health_listener, health_handle.clone())
            .map_err(bind_error(config.health_addr))?
            .serve(health::router(Arc::clone(&health)).into_make_service()),
    );

    let mut watcher = Watcher::new(
        config.cert.clone(),
        Arc::clone(&certs),
        Arc::clone(&metrics),
    );
    watcher.poll().await;
    let mut background = Background {
        watcher: tokio::spawn(watcher.run(config.reload_interval)),
        health_handle,
        health_server,
    };

    // The admission port answers from here on: 503 until the mode is decided, rather than
    // connections left unaccepted in the backlog until the API server's timeout.
    let state = Arc::new(AdmissionState::new(
        config.policy.clone(),
        config.max_body_bytes,
        Arc::clone(&metrics),
        Arc::clone(&draining),
    ));
    let tls_config = tls::server_config(Arc::clone(&certs) as _).map_err(ServeError::Tls)?;
    let handle = Handle::new();
    let handshake_metrics = Arc::clone(&metrics);
    let admission = server::https(admission_listener, Arc::new(tls_config), handle.clone())
        .map_err(bind_error(config.addr))?
        .accept_error_handler(move |peer, err| {
            handshake::report(&handshake_metrics, peer, err);
        });
    let mut admission_server =
        tokio::spawn(admission.serve(handler::router(Arc::clone(&state)).into_make_service()));

    let mode = tokio::select! {
        mode = cluster::decide_mode(config.policy.sidecar.mode, config.kubeconfig.as_deref()) => {
            mode.map_err(ServeError::Mode)?
        }
        _ = signals.changed() => {
            tracing::info!("signal received before start-up finished; exiting");
            handle.shutdown();
            let _ = admission_server.await;
            background.stop().await;
            return Ok(());
        }
        result = &mut admission_server => {
            background.stop().await;
            return Err(ServeError::Server {
                port: "admission",
                source: flatten(result),
            });
        }
        error = background.ended() => return background_failed(&handle, background, error).await,
    };
    metrics.decided(mode.as_str());
    state.decide(mode);
    health.serving.store(true, Ordering::Relaxed);
    tracing::info!(sidecar_mode = mode.as_str(), "serving admission requests");

    tokio::select! {
        _ = signals.changed() => {}
        result = &mut admission_server => {
            background.stop().await;
            return Err(ServeError::Server {
                port: "admission",
                source: flatten(result),
            });
        }
        error = background.ended() => return background_failed(&handle, background, error).await,
    }

    draining.store(true, Ordering::Relaxed);
    tracing::info!(
        delay_ms = millis(config.shutdown_delay),
        "shutting down: not ready any more; still answering while endpoints are updated"
    );
    // Two signals in quick succession may both be counted before the first is seen.
    if *signals.borrow_and_update() > 1 {
        tracing::info!("second signal: skipping the delay");
    } else {
        tokio::select! {
            _ = tokio::time::sleep(config.shutdown_delay) => {}
            _ = signals.changed() => tracing::info!("second signal: skipping the rest of the delay"),
        }
    }
    tracing::info!(
        open_connections = handle.connection_count(),
        timeout_ms = millis(config.shutdown_timeout),
        "closing connections; in-flight requests may finish"
    );
    handle.graceful_shutdown(Some(config.shutdown_timeout));
    // The server forces the remaining connections closed at the timeout; the extra second
    // only guards against it not returning at all.
    let finished = tokio::time::timeout(
        config.shutdown_timeout + Duration::from_secs(1),
        &mut admission_server,
    )
    .await;
    if finished.is_err() {
        admission_server.abort();
    }
    background.stop().await;
    tracing::info!(open_connections = handle.connection_count(), "stopped");
    Ok(())
}

/// Ends serving because a background task stopped ([`Background::ended`]): the admission
/// port closes at once, and the reason is the error.
async fn background_failed(
    handle: &Handle<SocketAddr>,
    background: Background,
    error: ServeError,
) -> Result<(), ServeError> {
    handle.shutdown();
    background.stop().await;
    Err(error)
}

/// What runs beside the admission port: the certificate watcher and the health port.
struct Background {
    watcher: tokio::task::JoinHandle<()>,
    health_handle: Handle<std::net::SocketAddr>,
    health_server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Background {
    /// Waits until the watcher or the health port stops, which neither does unless it fails
    /// (a defect, a listener error): a webhook that no longer loads renewed certificates, or
    /// whose kubelet probes go unanswered, is better restarted than left running. Cancel-safe.
    async fn ended(&mut self) -> ServeError {
        tokio::select! {
            result = &mut self.watcher => ServeError::Watcher(match result {
                Ok(()) => std::io::Error::other("it returned"),
                Err(err) => std::io::Error::other(err),
            }),
            result = &mut self.health_server => ServeError::Server {
                port: "health",
                source: flatten(result),
            },
        }
    }

    /// Stops the watcher, and the health port within a second.
    async fn stop(self) {
        self.watcher.abort();
        self.health_handle
            .graceful_shutdown(Some(Duration::from_secs(1)));
        // Not awaited again once `ended` has taken its outcome.
        if !self.health_server.is_finished() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.health_server).await;
        }
    }
}

/// Listens on `addr` ([`sidekiq_guard::listen::bind`]; `[::]` in the manifests), saying so when
/// it fell back to IPv4.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listening = sidekiq_guard::listen::bind(addr)?;
    if listening.ipv4_only {
        tracing::warn!(asked = %addr, "{}", sidekiq_guard::listen::IPV4_ONLY);
    }
    Ok(listening.listener)
}

fn flatten(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Error {
    match result {
        Ok(Ok(())) => std::io::Error::other("the server stopped unexpectedly"),
        Ok(Err(err)) => err,
        Err(err) => std::io::Error::other(err),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn background(
        watcher: impl std::future::Future<Output = ()> + Send + 'static,
        health: impl std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    ) -> Background {
        Background {
            watcher: tokio::spawn(watcher),
            health_handle: Handle::new(),
            health_server: tokio::spawn(health),
        }
    }

    fn chain(error: &ServeError) -> String {
        sidekiq_guard::errors::chain(error)
    }

    #[tokio::test]
    async fn a_watcher_that_stops_ends_the_webhook_with_why() {
        let mut b = background(async { panic!("a defect") }, async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        });
        let error = b.ended().await;
        assert!(
            chain(&error).starts_with("the certificate watcher stopped: task "),
            "{}",
            chain(&error)
        );
        assert!(
            chain(&error).ends_with("panicked with message \"a defect\""),
            "{}",
            chain(&error)
        );
        b.stop().await;
    }

    #[tokio::test]
    async fn a_health_port_that_stops_ends_the_webhook_and_stopping_does_not_poll_it_again() {
        let mut b = background(std::future::pending(), async {
            Err(std::io::Error::other("accept failed"))
        });
        let error = b.ended().await;
        assert_eq!(chain(&error), "the health server failed: accept failed");
        tokio::time::timeout(Duration::from_secs(1), b.stop())
            .await
            .unwrap();
    }
}
