//! `sidekiq-guard-probe`, the sidecar injected into every Sidekiq pod: `/livez` and `/readyz`
//! from Sidekiq's own heartbeat in Redis, `/drain` for the preStop hook, `/status` for
//! `kubectl sidekiq status`, and `/metrics`.
//!
//! A thin shell: the decisions live in `sidekiq_guard::probe`, the Redis reading in
//! `sidekiq_guard::redis`. It runs on a current-thread tokio runtime — one Redis reader task and
//! a handful of short HTTP requests need no thread pool, and one thread keeps the resident
//! memory of a sidecar that runs in every worker pod to a few MiB.

#![forbid(unsafe_code)]

mod config;
mod metrics;
mod monitor;
mod server;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sidekiq_guard::redis::Reader;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::config::{Args, LogFormat, Settings};
use crate::metrics::Metrics;
use crate::monitor::Monitor;

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args);
    let result = Settings::resolve(&args)
        .context("invalid settings")
        .and_then(|settings| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?
                .block_on(run(settings))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(args.log_format, &err),
    }
}

/// Reports a fatal error as the logs are written (one JSON line under `--log-format json`,
/// which a log pipeline parses), and on stderr in words: the container's last message.
fn fail(format: LogFormat, err: &anyhow::Error) -> ExitCode {
    let text = sidekiq_guard::errors::chain(err.as_ref());
    match format {
        LogFormat::Json => tracing::error!(error = %text, "fatal"),
        LogFormat::Text => {
            let _ = writeln!(std::io::stderr(), "sidekiq-guard-probe: {text}");
        }
    }
    ExitCode::FAILURE
}

fn init_logging(args: &Args) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_target(false)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}

/// Listens on `addr` ([`sidekiq_guard::listen::bind`]), saying so when it fell back to IPv4.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listening = sidekiq_guard::listen::bind(addr)?;
    if listening.ipv4_only {
        warn!(asked = %addr, "{}", sidekiq_guard::listen::IPV4_ONLY);
    }
    TcpListener::from_std(listening.listener)
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let reader = Reader::new(settings.redis.clone()).context("Redis settings")?;
    let listener =
        bind(settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
    let listening = listener
        .local_addr()
        .context("cannot read the address the probe listens on")?;
    info!(
        version = sidekiq_guard::VERSION,
        listen = %listening,
        hostname = %settings.hostname,
        hostname_from = settings.hostname_source.as_str(),
        pod = settings.pod_name.as_deref().unwrap_or(""),
        namespace = settings.pod_namespace.as_deref().unwrap_or(""),
        mode = settings.mode.as_str(),
        drain_budget_secs = settings.drain_budget.as_secs_f64(),
        stale_after_secs = settings.thresholds.stale_after.as_secs_f64(),
        outage_window_secs = settings.thresholds.outage_window.as_secs_f64(),
        redis = %settings.redis.redacted_url(),
        redis_from = %settings.redis.source,
        redis_namespace = settings.redis.namespace.as_deref().unwrap_or(""),
        "sidekiq-guard probe started"
    );

    let metrics = Arc::new(Metrics::new());
    let (monitor, handle) = Monitor::new(settings.clone(), metrics, reader);
    let mut monitor = tokio::spawn(monitor.run());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, handle.clone(), async move {
        let _ = stopped.await;
    }));

    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::select! {
        _ = terminate.recv() => info!(signal = "SIGTERM", "stop requested"),
        _ = interrupt.recv() => info!(signal = "SIGINT", "stop requested"),
        result = &mut monitor => {
            result.context("the Redis monitor stopped")?;
            anyhow::bail!("the Redis monitor stopped unexpectedly");
        }
    }
    handle.shutdown().await;
    tokio::select! {
        result = &mut monitor => result.context("the Redis monitor failed")?,
        _ = terminate.recv() => warn!("second SIGTERM: exiting now"),
        _ = interrupt.recv() => warn!("second SIGINT: exiting now"),
    }
    let _ = stop.send(());
    server.await.context("the HTTP server failed")?;
    info!("stopped");
    Ok(())
}
