//! Command line. Every flag can also be set by an environment variable named after it
//! (`--shutdown-delay` → `SIDEKIQ_GUARD_SHUTDOWN_DELAY`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

/// sidekiq-guard's admission webhook: injects the drain hook, probes and grace period into
/// Sidekiq pods, and checks Sidekiq workloads.
#[derive(Debug, Parser)]
#[command(name = "sidekiq-guard-webhook", version, about, max_term_width = 100)]
pub struct Cli {
    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "SIDEKIQ_GUARD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log level of sidekiq-guard's own events (libraries log at warn, or at this level when it
    /// is quieter).
    #[arg(
        long,
        global = true,
        env = "SIDEKIQ_GUARD_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: tracing::Level,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve POST /mutate and /validate over HTTPS, and health and metrics over HTTP.
    Serve(ServeArgs),
    /// Make and install serving certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// PEM certificate chain (serving certificate first); reloaded when it changes.
    #[arg(long, env = "SIDEKIQ_GUARD_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// PEM private key of the serving certificate; reloaded when it changes.
    #[arg(long, env = "SIDEKIQ_GUARD_TLS_KEY")]
    pub tls_key: PathBuf,
    /// Address of the HTTPS admission port.
    #[arg(long, env = "SIDEKIQ_GUARD_ADDR", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Address of the plain-HTTP port serving /livez, /readyz and /metrics.
    #[arg(
        long,
        env = "SIDEKIQ_GUARD_HEALTH_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub health_addr: SocketAddr,
    /// Policy file (YAML or JSON); the built-in defaults when absent.
    #[arg(long, env = "SIDEKIQ_GUARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// The probe sidecar's image when the policy sets no `sidecar.image`: the webhook's own
    /// image, so that webhook and probe never skew (the manifests keep it in step with the
    /// Deployment's image). Default: this release's image on ghcr.io.
    #[arg(long, env = "SIDEKIQ_GUARD_SIDECAR_IMAGE", value_name = "IMAGE")]
    pub sidecar_image: Option<String>,
    /// Kubeconfig used to read the API server version for `sidecar.mode: auto` (in a pod, the
    /// service account is used).
    #[arg(long, env = "SIDEKIQ_GUARD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "SIDEKIQ_GUARD_CERT_RELOAD_INTERVAL", default_value = "5s", value_parser = interval)]
    pub cert_reload_interval: Duration,
    /// After SIGTERM, how long to keep answering while /readyz fails, so that the Service
    /// stops routing here before connections close. The API server reaches the webhook
    /// through the Service's ClusterIP, so every node's kube-proxy must drop this endpoint
    /// first; a connection refused meanwhile admits the pod uninjected (`failurePolicy:
    /// Ignore`), hence 10 s, which covers kube-proxy's sync on large clusters.
    #[arg(long, env = "SIDEKIQ_GUARD_SHUTDOWN_DELAY", default_value = "10s", value_parser = duration)]
    pub shutdown_delay: Duration,
    /// Then, how long in-flight requests may take to finish before connections are cut.
    #[arg(long, env = "SIDEKIQ_GUARD_SHUTDOWN_TIMEOUT", default_value = "15s", value_parser = duration)]
    pub shutdown_timeout: Duration,
    /// Largest accepted request body, in bytes (413 above it). The default fits UPDATE reviews
    /// of the largest objects the API server stores.
    #[arg(long, env = "SIDEKIQ_GUARD_MAX_BODY_BYTES", default_value_t = crate::handler::DEFAULT_MAX_BODY_BYTES, value_parser = body_limit)]
    pub max_body_bytes: usize,
}

/// `certs …`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a CA and a serving certificate for the webhook Service into a directory.
    Generate(GenerateArgs),
    /// In the cluster: create or renew the serving certificate Secret and trust its CA in both
    /// webhook configurations. Idempotent; meant for a Job and a CronJob.
    Install(InstallArgs),
}

/// `certs generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Name of the webhook Service.
    #[arg(long, env = "SIDEKIQ_GUARD_SERVICE", default_value = "sidekiq-guard", value_parser = service_name)]
    pub service: String,
    /// Namespace of the webhook Service.
    #[arg(long, env = "SIDEKIQ_GUARD_NAMESPACE", default_value = "sidekiq-guard", value_parser = namespace_name)]
    pub namespace: String,
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into.
    #[arg(long, env = "SIDEKIQ_GUARD_OUT")]
    pub out: PathBuf,
    /// Validity of the serving certificate.
    #[arg(long, env = "SIDEKIQ_GUARD_VALIDITY", default_value = "365d", value_parser = duration)]
    pub validity: Duration,
    /// Validity of the CA.
    #[arg(long, env = "SIDEKIQ_GUARD_CA_VALIDITY", default_value = "3650d", value_parser = duration)]
    pub ca_validity: Duration,
    /// Overwrite existing files.
    #[arg(long, env = "SIDEKIQ_GUARD_FORCE")]
    pub force: bool,
}

/// `certs install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Name of the webhook Service.
    #[arg(long, env = "SIDEKIQ_GUARD_SERVICE", default_value = "sidekiq-guard", value_parser = service_name)]
    pub service: String,
    /// Namespace of the webhook Service and the Secrets.
    #[arg(long, env = "SIDEKIQ_GUARD_NAMESPACE", default_value = "sidekiq-guard", value_parser = namespace_name)]
    pub namespace: String,
    /// The kubernetes.io/tls Secret mounted by the webhook pods.
    #[arg(
        long,
        env = "SIDEKIQ_GUARD_SECRET",
        default_value = "sidekiq-guard-tls"
    )]
    pub secret: String,
    /// The Secret holding the CA and its key (read by the install Job only).
    #[arg(
        long,
        env = "SIDEKIQ_GUARD_CA_SECRET",
        default_value = "sidekiq-guard-ca"
    )]
    pub ca_secret: String,
    /// Name of both webhook configurations (see --mutating and --validating to tell them apart).
    #[arg(
        long,
        env = "SIDEKIQ_GUARD_WEBHOOK_CONFIGURATION",
        default_value = "sidekiq-guard"
    )]
    pub webhook_configuration: String,
    /// Name of the MutatingWebhookConfiguration, when it differs.
    #[arg(long, env = "SIDEKIQ_GUARD_MUTATING")]
    pub mutating: Option<String>,
    /// Name of the ValidatingWebhookConfiguration, when it differs.
    #[arg(long, env = "SIDEKIQ_GUARD_VALIDATING")]
    pub validating: Option<String>,
    /// Renew certificates that expire within this.
    #[arg(long, env = "SIDEKIQ_GUARD_RENEW_BEFORE", default_value = "30d", value_parser = duration)]
    pub renew_before: Duration,
    /// Validity of a new serving certificate.
    #[arg(long, env = "SIDEKIQ_GUARD_VALIDITY", default_value = "365d", value_parser = duration)]
    pub validity: Duration,
    /// Validity of a new CA.
    #[arg(long, env = "SIDEKIQ_GUARD_CA_VALIDITY", default_value = "3650d", value_parser = duration)]
    pub ca_validity: Duration,
    /// How long to wait for the webhook configurations to exist.
    #[arg(long, env = "SIDEKIQ_GUARD_WAIT", default_value = "60s", value_parser = duration)]
    pub wait: Duration,
    /// Kubeconfig (in a pod, the service account is used).
    #[arg(long, env = "SIDEKIQ_GUARD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

impl Cli {
    /// The checks clap cannot make flag by flag; a failure is a usage error.
    pub fn check(&self) -> Result<(), String> {
        match &self.command {
            Command::Certs(CertsCommand::Generate(args)) => args.check(),
            Command::Certs(CertsCommand::Install(args)) => args.check(),
            Command::Serve(_) => Ok(()),
        }
    }
}

impl GenerateArgs {
    /// The checks that involve more than one flag.
    pub fn check(&self) -> Result<(), String> {
        positive("--validity", self.validity)?;
        if self.validity > self.ca_validity {
            return Err(format!(
                "--validity ({}) must not exceed --ca-validity ({}): the serving certificate would outlive its CA",
                days(self.validity),
                days(self.ca_validity)
            ));
        }
        Ok(())
    }
}

impl InstallArgs {
    /// The checks that involve more than one flag: without them every run would renew (and the
    /// `caBundle` would grow by a CA each time), which is not what a weekly CronJob should do.
    pub fn check(&self) -> Result<(), String> {
        positive("--validity", self.validity)?;
        if self.renew_before >= self.validity {
            return Err(format!(
                "--renew-before ({}) must be shorter than --validity ({}), or every run would renew the serving certificate",
                days(self.renew_before),
                days(self.validity)
            ));
        }
        if self.validity + self.renew_before >= self.ca_validity {
            return Err(format!(
                "--validity plus --renew-before ({}) must be shorter than --ca-validity ({}): the CA must outlive every certificate it signs, or every run would make a new CA",
                days(self.validity + self.renew_before),
                days(self.ca_validity)
            ));
        }
        Ok(())
    }
}

fn positive(flag: &str, value: Duration) -> Result<(), String> {
    if value.is_zero() {
        return Err(format!("{flag} must be longer than zero"));
    }
    Ok(())
}

/// A duration as days, the unit certificate lifetimes are given in.
fn days(value: Duration) -> String {
    let secs = value.as_secs();
    if secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else {
        sidekiq_guard::duration::format_secs(secs)
    }
}

/// A Service name: a DNS-1035 label, as the API server requires (it becomes the certificate's
/// names, so a name the API server would refuse must not get this far).
fn service_name(text: &str) -> Result<String, String> {
    // clap quotes the value in its message.
    dns_label(text, true).map_err(|why| {
        format!("not a Service name: {why} (lower-case letters, digits and '-', starting with a letter, at most 63)")
    })
}

/// A namespace name: a DNS-1123 label.
fn namespace_name(text: &str) -> Result<String, String> {
    dns_label(text, false).map_err(|why| {
        format!("not a namespace name: {why} (lower-case letters, digits and '-', at most 63)")
    })
}

fn dns_label(text: &str, letter_first: bool) -> Result<String, &'static str> {
    sidekiq_guard::names::dns_label(text, letter_first).map(|()| text.to_owned())
}

/// Parses `90s`, `5m`, `365d`, `1h30m` ([`sidekiq_guard::duration::parse`]).
fn duration(text: &str) -> Result<Duration, String> {
    sidekiq_guard::duration::parse(text).map_err(|err| err.to_string())
}

/// A duration between repeated checks: zero would check in a busy loop (and tokio refuses it).
fn interval(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        Duration::ZERO => Err(format!("{text:?}: an interval must be longer than zero")),
        interval => Ok(interval),
    }
}

/// The smallest `--max-body-bytes` accepted. A CREATE review of a small pod is about 4 KiB, but
/// an UPDATE carries the object twice and a pod with a long `env` or many `managedFields` runs
/// to tens of KiB: below this, ordinary reviews would get 413 and, under the mutating webhook's
/// `failurePolicy: Ignore`, their pods would be admitted uninjected with nothing but a metric
/// to say so.
pub const MIN_BODY_BYTES: usize = 64 * 1024;

fn body_limit(text: &str) -> Result<usize, String> {
    let bytes: usize = text
        .parse()
        .map_err(|_| format!("{text:?}: expected a number of bytes, such as 8388608"))?;
    if bytes < MIN_BODY_BYTES {
        return Err(format!(
            "{bytes} bytes is below the least accepted, {MIN_BODY_BYTES} (64 KiB): reviews of ordinary pods and their updates would be refused with 413 and their pods admitted uninjected"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The README promises every flag as `SIDEKIQ_GUARD_<FLAG>` too (a Job's env, a ConfigMap).
    #[test]
    fn every_flag_has_its_environment_variable() {
        fn walk(command: &clap::Command, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if ["help", "version"].contains(&long) {
                    continue;
                }
                let expected = format!("SIDEKIQ_GUARD_{}", long.to_uppercase().replace('-', "_"));
                if arg.get_env().and_then(|e| e.to_str()) != Some(expected.as_str()) {
                    missing.push(format!("{} --{long}", command.get_name()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), &mut missing);
        assert_eq!(missing, Vec::<String>::new());
    }

    /// `serve` with its two required flags and `extra`.
    fn serve(extra: &[&str]) -> Result<Cli, clap::Error> {
        let required = [
            "sidekiq-guard-webhook",
            "serve",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ];
        Cli::try_parse_from(required.iter().chain(extra))
    }

    /// The message clap gives for `serve` with `extra`.
    fn refusal(extra: &[&str]) -> String {
        serve(extra).unwrap_err().to_string()
    }

    #[test]
    fn serve_defaults_match_the_issue() {
        let Command::Serve(args) = serve(&[]).unwrap().command else {
            panic!("not serve")
        };
        assert_eq!(args.addr.to_string(), "0.0.0.0:8443");
        assert_eq!(args.health_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(args.shutdown_delay, Duration::from_secs(10));
        let err = refusal(&["--shutdown-delay", "soon"]);
        assert!(
            err.contains("invalid duration \"soon\": expected a number of seconds"),
            "{err}"
        );
    }

    #[test]
    fn a_zero_reload_interval_is_refused() {
        let err = refusal(&["--cert-reload-interval", "0s"]);
        assert!(
            err.contains("\"0s\": an interval must be longer than zero"),
            "{err}"
        );
    }

    #[test]
    fn a_body_limit_too_small_for_any_review_is_refused() {
        let err = refusal(&["--max-body-bytes", "100"]);
        assert!(
            err.contains("100 bytes is below the least accepted, 65536 (64 KiB)"),
            "{err}"
        );
        let err = refusal(&["--max-body-bytes", "8M"]);
        assert!(err.contains("\"8M\": expected a number of bytes"), "{err}");
        let Command::Serve(args) = serve(&["--max-body-bytes", "65536"]).unwrap().command else {
            panic!("not serve")
        };
        assert_eq!(args.max_body_bytes, MIN_BODY_BYTES);
    }

    /// `certs …` with `args`, checked as `main` checks it.
    fn certs(args: &[&str]) -> Result<(), String> {
        let cli = Cli::try_parse_from(["sidekiq-guard-webhook", "certs"].iter().chain(args))
            .map_err(|err| err.to_string())?;
        cli.check()
    }

    #[rstest::rstest]
    #[case(&["generate", "--out", "d", "--service", ""], "not a Service name: it is empty")]
    #[case(&["generate", "--out", "d", "--service", "Foo_Bar"], "not a Service name: it has a character other than a-z, 0-9 and '-'")]
    #[case(&["generate", "--out", "d", "--service", "9lives"], "not a Service name: it starts or ends")]
    #[case(&["install", "--namespace", "x/y"], "not a namespace name: it has a character")]
    #[case(&["install", "--namespace", "shop-"], "not a namespace name: it starts or ends")]
    #[case(&["generate", "--out", "d", "--validity", "0s"], "--validity must be longer than zero")]
    #[case(&["generate", "--out", "d", "--validity", "3000d", "--ca-validity", "1d"], "--validity (3000d) must not exceed --ca-validity (1d)")]
    #[case(&["install", "--renew-before", "400d"], "--renew-before (400d) must be shorter than --validity (365d)")]
    #[case(&["install", "--ca-validity", "365d"], "--validity plus --renew-before (395d) must be shorter than --ca-validity (365d)")]
    fn certificate_flags_that_would_misbehave_are_refused(
        #[case] args: &[&str],
        #[case] expected: &str,
    ) {
        let err = certs(args).unwrap_err();
        assert!(err.contains(expected), "{err}");
    }

    #[test]
    fn the_default_certificate_flags_are_accepted() {
        assert_eq!(certs(&["generate", "--out", "d"]), Ok(()));
        assert_eq!(certs(&["install"]), Ok(()));
        assert_eq!(
            certs(&["install", "--namespace", "0-ops", "--service", "sg-webhook"]),
            Ok(())
        );
    }
}
