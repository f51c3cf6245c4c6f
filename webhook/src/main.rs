//! `sidekiq-guard-webhook`: see the crate's library for what each part does.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::Parser as _;
use sidekiq_guard::Policy;
use sidekiq_guard::policy::NonEmpty;
use sidekiq_guard_webhook::cli::{
    CertsCommand, Cli, Command, GenerateArgs, InstallArgs, ServeArgs,
};
use sidekiq_guard_webhook::logging::{self, LogFormat};
use sidekiq_guard_webhook::serve::{self, ServeConfig};
use sidekiq_guard_webhook::tls::{self, CertFiles};
use sidekiq_guard_webhook::{cluster, generate, install};
use tokio::signal::unix::{SignalKind, signal};

/// mimalloc instead of the system allocator: an admission review is parsed into many small
/// JSON values and freed a moment later, and under concurrent load glibc's malloc spent a fifth
/// of the webhook's CPU time on that (free-list consolidation and arena locks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = cli.check() {
        <Cli as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    let format = cli.log_format;
    let _logs = logging::init(format, cli.log_level);
    tls::install_default_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return fail(
                format,
                &anyhow::Error::new(err).context("cannot start the runtime"),
            );
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => run_serve(args).await,
            Command::Certs(CertsCommand::Generate(args)) => run_generate(&args),
            Command::Certs(CertsCommand::Install(args)) => run_install(args).await,
        }
    });
    // Do not wait for lingering blocking tasks (a stuck file read) once the work is done.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(format, &err),
    }
}

/// Reports a fatal error with its causes on stderr, for a terminal and `kubectl logs`; with
/// JSON logs, also as a log event for the log pipeline (with text logs, once is enough).
fn fail(format: LogFormat, err: &anyhow::Error) -> ExitCode {
    let text = sidekiq_guard::errors::chain(err.as_ref());
    if format == LogFormat::Json {
        tracing::error!(error = %text, "fatal");
    }
    let _ = writeln!(std::io::stderr(), "sidekiq-guard-webhook: {text}");
    ExitCode::FAILURE
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the policy file {}", path.display()))?;
            Policy::parse(&text)
                .with_context(|| format!("invalid policy file {}", path.display()))?
        }
        None => Policy::default(),
    };
    let policy = with_sidecar_image(policy, args.sidecar_image);
    let config = ServeConfig {
        addr: args.addr,
        health_addr: args.health_addr,
        cert: CertFiles {
            cert: args.tls_cert,
            key: args.tls_key,
        },
        policy,
        kubeconfig: args.kubeconfig,
        reload_interval: args.cert_reload_interval,
        shutdown_delay: args.shutdown_delay,
        shutdown_timeout: args.shutdown_timeout,
        max_body_bytes: args.max_body_bytes,
    };
    let signals = signals().context("cannot install the signal handlers")?;
    serve::serve(config, signals).await?;
    Ok(())
}

/// `--sidecar-image` applies where the policy sets no `sidecar.image`: an image the policy
/// names wins.
fn with_sidecar_image(mut policy: Policy, image: Option<String>) -> Policy {
    if let Some(image) = image.filter(|i| !i.trim().is_empty())
        && policy.sidecar.image.is_none()
    {
        policy.sidecar.image = Some(NonEmpty(image.trim().to_owned()));
    }
    policy
}

/// SIGTERM (the kubelet) and SIGINT (a terminal) both start the graceful shutdown; each
/// signal bumps the counter `serve` watches.
fn signals() -> std::io::Result<serve::Signals> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tx.send_modify(|n| *n += 1);
        }
    });
    Ok(rx)
}

fn run_generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let generated = generate::generate(
        &args.service,
        &args.namespace,
        args.validity,
        args.ca_validity,
        SystemTime::now(),
    )?;
    generate::write(&args.out, &generated, args.force)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} (CA), {} (serving certificate for {}) and their keys",
        args.out.join("ca.crt").display(),
        args.out.join("tls.crt").display(),
        generated.dns_names.join(", ")
    )?;
    Ok(())
}

async fn run_install(args: InstallArgs) -> anyhow::Result<()> {
    let client = cluster::client(args.kubeconfig.as_deref()).await?;
    let config = install::InstallConfig {
        mutating: args
            .mutating
            .unwrap_or_else(|| args.webhook_configuration.clone()),
        validating: args
            .validating
            .unwrap_or_else(|| args.webhook_configuration.clone()),
        namespace: args.namespace,
        service: args.service,
        secret: args.secret,
        ca_secret: args.ca_secret,
        renew_before: args.renew_before,
        validity: args.validity,
        ca_validity: args.ca_validity,
        wait: args.wait,
    };
    let report = install::install(&client, &config, SystemTime::now()).await?;
    tracing::info!(
        ca = ?report.ca,
        serving = ?report.serving,
        serving_not_after = %sidekiq_guard::timestamp::format(report.serving_not_after),
        patched = ?report.patched,
        "certificates installed"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_sidecar_image_follows_the_webhooks_unless_the_policy_names_one() {
        let mirrored = Some("registry.internal/sidekiq-guard:0.1.0".to_owned());
        let policy = with_sidecar_image(Policy::default(), mirrored.clone());
        assert_eq!(
            policy.sidecar.image(),
            "registry.internal/sidekiq-guard:0.1.0"
        );

        // Named in the policy, even as this release's image: the policy's choice.
        let named = Policy::parse(&format!(
            "sidecar: {{image: '{}'}}",
            sidekiq_guard::policy::DEFAULT_IMAGE
        ))
        .unwrap();
        let policy = with_sidecar_image(named, mirrored);
        assert_eq!(policy.sidecar.image(), sidekiq_guard::policy::DEFAULT_IMAGE);

        let policy = with_sidecar_image(Policy::default(), Some(" ".to_owned()));
        assert_eq!(policy.sidecar.image(), sidekiq_guard::policy::DEFAULT_IMAGE);
    }
}
