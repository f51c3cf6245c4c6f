//! Command-line arguments. Parsing lives here; the work lives in one module per subcommand.
//!
//! kubectl hands every flag after the plugin's name to the plugin (`kubectl sidekiq -n shop
//! status`), so the usual kubectl flags are the plugin's own, accepted before or after the
//! subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sidekiq_guard::Mode;

/// kubectl plugin for sidekiq-guard.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-sidekiq",
    bin_name = "kubectl sidekiq",
    version,
    about = "Keep Sidekiq from losing jobs on Kubernetes: see drains, inject and validate preStop hooks, probes and grace periods",
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where `--redis-url` may come from instead, so that a password stays out of `ps`, shell
/// history and CI logs (its value is never shown in `--help`).
pub(crate) const REDIS_URL_ENV: &str = "KUBECTL_SIDEKIQ_REDIS_URL";

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show every Sidekiq pod: busy threads, running jobs, drains, time left before SIGKILL
    #[command(
        after_help = "Data comes from each pod's sidekiq-guard probe through the API server's pod proxy, or,\nwith --redis-url, from Redis directly (no cluster needed).\n\nExamples:\n  kubectl sidekiq status -n shop\n  kubectl sidekiq status -A --watch\n  kubectl sidekiq status --redis-url redis://localhost:6379/0 -o json"
    )]
    Status(StatusArgs),
    /// Quiet pods' Sidekiq and follow them until idle (exit 0 when idle, 1 on timeout, 2 on errors)
    #[command(
        after_help = "With -o json or yaml, progress goes to stderr and stdout gets each pod's outcome once all have ended.\n\nExamples:\n  kubectl sidekiq drain -n shop rails-worker-7d9c8f6b5-x2x9k\n  kubectl sidekiq drain -n shop -l app=worker --timeout 10m\n  kubectl sidekiq drain -n shop -l app=worker -o json 2>/dev/null | jq '.pods[] | select(.idle | not) | .pod'"
    )]
    Drain(DrainArgs),
    /// Check the installation: webhook configurations, Service, certificates, opted-in namespaces
    #[command(
        after_help = "Exit status: 0 no failed check (warnings allowed), 1 a failed check (an unreachable API\nserver included), 2 usage error.\n\nExamples:\n  kubectl sidekiq check\n  kubectl sidekiq check --install-namespace sidekiq-guard -o json"
    )]
    Check(CheckArgs),
    /// Print manifests as the sidekiq-guard webhook would mutate them
    #[command(
        after_help = "Exit status: 0 manifests written, 2 usage or input error (then nothing is written).\nFindings are warnings on stderr: kubectl sidekiq validate judges them.\n\nExamples:\n  kubectl sidekiq inject -f manifests/ > injected.yaml\n  helm template app ./chart | kubectl sidekiq inject -f - | kubectl apply -f -"
    )]
    Inject(InjectArgs),
    /// Report settings that would lose or needlessly delay Sidekiq jobs, in files or in the cluster
    #[command(
        after_help = "Without -f, validates the workloads of the selected namespaces in the cluster, plus what is\nonly visible there: jobs running longer than declared. With --redis-url (Sidekiq 7+), workloads\nin files or in the cluster are also compared with the execution times in Sidekiq's own metrics.\n\nExit status: 0 no error findings, 1 error findings, 2 usage or input error.\n\nExamples:\n  kubectl sidekiq validate -f deploy/\n  kubectl sidekiq validate -f deploy/ --as-injected -o json\n  kubectl sidekiq validate -f deploy/ --redis-url redis://localhost:6379/0\n  kubectl sidekiq validate -n shop --redis-url redis://localhost:6379/0"
    )]
    Validate(ValidateArgs),
}

/// The usual kubectl flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClusterArgs {
    /// Path to the kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// The namespace [default: the context's]
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub(crate) namespace: Option<String>,
    /// Every namespace
    #[arg(
        short = 'A',
        long,
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        // Go's strconv.ParseBool, as kubectl reads booleans: 1, t, TRUE, true, 0, f, False…
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub(crate) all_namespaces: bool,
    /// Label selector, e.g. app=worker,tier!=web
    #[arg(short = 'l', long, global = true, value_name = "SELECTOR")]
    pub(crate) selector: Option<String>,
    /// Time to wait for each API request (default 30s) and for each probe's answer through
    /// the pod proxy (default 5s), e.g. 10s or 1m; 0 waits forever
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_timeout)]
    pub(crate) request_timeout: Option<RequestTimeout>,
}

/// How long an API request waits without `--request-timeout`.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a probe's `/status` through the pod proxy waits without `--request-timeout`: a
/// probe answers in milliseconds, and one that does not must not hold up the other pods' rows.
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl ClusterArgs {
    /// `--request-timeout`, or 30 s.
    pub(crate) fn request_timeout(&self) -> RequestTimeout {
        self.request_timeout
            .unwrap_or(RequestTimeout(Some(DEFAULT_REQUEST_TIMEOUT)))
    }

    /// How long a probe read through the pod proxy waits: `--request-timeout`, or 5 s.
    pub(crate) fn probe_timeout(&self) -> Option<Duration> {
        self.request_timeout
            .map_or(Some(DEFAULT_PROBE_TIMEOUT), |timeout| timeout.0)
    }
}

/// `--request-timeout`; `None` waits forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestTimeout(pub(crate) Option<Duration>);

/// `0` means no timeout, like kubectl's `--request-timeout=0`.
fn parse_timeout(text: &str) -> Result<RequestTimeout, String> {
    let secs = sidekiq_guard::duration::parse_secs(text).map_err(|e| e.to_string())?;
    Ok(RequestTimeout(
        (secs > 0).then(|| Duration::from_secs(secs)),
    ))
}

/// An exact duration ([`sidekiq_guard::duration::parse`]): `--interval 500ms` means half a second.
fn parse_duration(text: &str) -> Result<Duration, String> {
    sidekiq_guard::duration::parse(text).map_err(|e| e.to_string())
}

/// A duration between repeated reads: longer than zero.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!("{text:?}: an interval must be longer than zero")),
        interval => Ok(interval),
    }
}

/// Where manifests come from.
#[derive(Debug, Args)]
pub(crate) struct FileArgs {
    /// Manifest file, directory, or - for stdin (repeatable)
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub(crate) files: Vec<PathBuf>,
    /// Descend into subdirectories of directories given with -f
    #[arg(short = 'R', long)]
    pub(crate) recursive: bool,
    /// Policy document (YAML or JSON) with defaults, sidecar settings and limits
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InjectArgs {
    #[command(flatten)]
    pub(crate) files: FileArgs,
    /// Sidecar placement; native needs Kubernetes 1.29+ [default: the policy's, else native]
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) sidecar_mode: Option<ModeArg>,
    /// Output format [default: the input's]
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub(crate) output: Option<ManifestFormat>,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    #[command(flatten)]
    pub(crate) files: FileArgs,
    /// Validate workloads as the webhook will admit their pods (for files; in the cluster this
    /// follows each namespace's opt-in label)
    #[arg(long)]
    pub(crate) as_injected: bool,
    /// Sidecar placement the webhook would use: what --as-injected injects, and what the
    /// findings assume (a classic sidecar cannot go into a Job) [default: the policy's; native
    /// for files]
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) sidecar_mode: Option<ModeArg>,
    /// Redis of the workloads: also compare Sidekiq 7+'s recorded execution times (in the cluster
    /// and on files)
    #[arg(long, value_name = "URL", env = REDIS_URL_ENV, hide_env_values = true)]
    pub(crate) redis_url: Option<String>,
    #[command(flatten)]
    pub(crate) redis_namespace: RedisNamespaceArg,
    #[command(flatten)]
    pub(crate) report: ReportArg,
}

/// `--redis-namespace`, beside `--redis-url`.
#[derive(Debug, Args)]
pub(crate) struct RedisNamespaceArg {
    /// The redis-namespace prefix of Sidekiq's keys (Sidekiq 6 configured with `namespace:`)
    #[arg(long, value_name = "PREFIX", requires = "redis_url")]
    pub(crate) redis_namespace: Option<String>,
}

impl RedisNamespaceArg {
    /// The prefix, if one was given.
    pub(crate) fn prefix(&self) -> Option<&str> {
        self.redis_namespace.as_deref().filter(|ns| !ns.is_empty())
    }
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) report: ReportArg,
    /// Read every process from this Redis in one pipelined pass instead of asking each pod's probe
    #[arg(long, value_name = "URL", env = REDIS_URL_ENV, hide_env_values = true)]
    pub(crate) redis_url: Option<String>,
    #[command(flatten)]
    pub(crate) redis_namespace: RedisNamespaceArg,
    /// Refresh in place until interrupted
    #[arg(short = 'w', long)]
    pub(crate) watch: bool,
    /// Time between refreshes with --watch
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval)]
    pub(crate) interval: Duration,
    /// Pod proxy requests in flight at once
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) concurrency: u16,
}

#[derive(Debug, Args)]
pub(crate) struct DrainArgs {
    /// Pods to drain (or use -l)
    #[arg(value_name = "POD")]
    pub(crate) pods: Vec<String>,
    /// Give up after this long [default: each pod's drain budget, from its status annotation or its annotations; through the probe, plus 5 s for its answer]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// Quiet pods without the sidecar through Redis (injected pods still drain through their probe)
    #[arg(long, value_name = "URL", env = REDIS_URL_ENV, hide_env_values = true)]
    pub(crate) redis_url: Option<String>,
    #[command(flatten)]
    pub(crate) redis_namespace: RedisNamespaceArg,
    /// Time between progress lines
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval)]
    pub(crate) interval: Duration,
    #[command(flatten)]
    pub(crate) report: ReportArg,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) report: OutputArg<CheckFormat>,
    /// Namespace sidekiq-guard is installed in [default: that of the Service the webhook
    /// configurations call, else sidekiq-guard]
    #[arg(long, value_name = "NAME")]
    pub(crate) install_namespace: Option<String>,
    /// Name of the webhook configurations
    #[arg(long, value_name = "NAME", default_value = sidekiq_guard::install::DEFAULT_NAME)]
    pub(crate) webhook: String,
    /// The Secret holding the serving certificate
    #[arg(long, value_name = "NAME", default_value = sidekiq_guard::install::DEFAULT_TLS_SECRET)]
    pub(crate) tls_secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// An init container with restartPolicy: Always (Kubernetes 1.29+)
    Native,
    /// A regular container (older clusters)
    Classic,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Native => Mode::Native,
            ModeArg::Classic => Mode::Classic,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ManifestFormat {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// Aligned columns
    Table,
    /// Like table, with more columns
    Wide,
    Json,
    Yaml,
}

/// `-o` of the commands that report, `table` by default.
#[derive(Debug, Args)]
pub(crate) struct OutputArg<F: ValueEnum + Clone + Send + Sync + 'static> {
    /// Output format
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value = "table",
        value_name = "FORMAT"
    )]
    pub(crate) output: F,
}

/// `-o table|wide|json|yaml`.
pub(crate) type ReportArg = OutputArg<ReportFormat>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckFormat {
    /// Categories with √/‼/× lines
    #[value(alias = "wide")]
    Table,
    Json,
    Yaml,
}

impl Cli {
    /// Parses the process's arguments, accepting `-o/--output` before the subcommand too.
    pub(crate) fn from_args() -> Self {
        Self::parse_from(output_after_subcommand(std::env::args_os().collect()))
    }
}

/// Flags before the subcommand that take a value as the next word.
const VALUE_FLAGS: &[&str] = &[
    "--kubeconfig",
    "--context",
    "-n",
    "--namespace",
    "-l",
    "--selector",
    "--request-timeout",
];

/// Moves `-o FORMAT` given before the subcommand (`kubectl sidekiq -o json status`, as kubectl
/// users write it) to just after it. Each subcommand owns its `-o`, because their formats differ
/// (`inject` writes manifests, `check` has no `wide` column set), so clap cannot make it global.
fn output_after_subcommand(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut before = Vec::new();
    let mut moved = Vec::new();
    let mut words = args.into_iter();
    before.extend(words.next());
    while let Some(word) = words.next() {
        let text = word.to_string_lossy().into_owned();
        if text == "-o" || text == "--output" {
            moved.push(word);
            moved.extend(words.next());
        } else if text.starts_with("--output=") || (text.starts_with("-o") && text.len() > 2) {
            moved.push(word);
        } else if VALUE_FLAGS.contains(&text.as_str()) {
            before.push(word);
            before.extend(words.next());
        } else if text.starts_with('-') {
            before.push(word);
        } else {
            // The subcommand: the moved flags follow it, then everything after it.
            before.push(word);
            before.append(&mut moved);
            before.extend(words);
            return before;
        }
    }
    // No subcommand: leave the words for clap to report.
    before.append(&mut moved);
    before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(args: &[&str]) -> Vec<String> {
        output_after_subcommand(args.iter().map(Into::into).collect())
            .into_iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn intervals_are_exact_and_never_zero() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(
            parse_interval("0s"),
            Err("\"0s\": an interval must be longer than zero".to_owned())
        );
    }

    /// Booleans as kubectl reads them; a value needs `=`, so `drain -A pod` keeps its pod.
    #[test]
    fn all_namespaces_reads_like_kubectl() {
        let all = |args: &[&str]| {
            Cli::try_parse_from(args)
                .map(|cli| cli.cluster.all_namespaces)
                .map_err(|e| e.kind())
        };
        assert_eq!(all(&["k", "status"]), Ok(false));
        assert_eq!(all(&["k", "status", "-A"]), Ok(true));
        assert_eq!(all(&["k", "-A=true", "status"]), Ok(true));
        assert_eq!(all(&["k", "status", "--all-namespaces=false"]), Ok(false));
        assert_eq!(all(&["k", "status", "-A=1"]), Ok(true));
        assert_eq!(all(&["k", "status", "-A=TRUE"]), Ok(true));
        assert_eq!(all(&["k", "status", "-A=f"]), Ok(false));
        assert_eq!(
            all(&["k", "status", "-A=maybe"]),
            Err(clap::error::ErrorKind::ValueValidation)
        );
        let cli = Cli::try_parse_from(["k", "drain", "-A", "worker-1"]).unwrap();
        let Command::Drain(drain) = cli.command else {
            panic!("drain expected");
        };
        assert!(cli.cluster.all_namespaces);
        assert_eq!(drain.pods, ["worker-1"]);
    }

    /// `--request-timeout` bounds probe reads too when given; otherwise they wait 5 s.
    #[test]
    fn probe_reads_wait_the_request_timeout_when_given() {
        let timeouts = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            (cli.cluster.request_timeout().0, cli.cluster.probe_timeout())
        };
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(timeouts(&["k", "status"]), (secs(30), secs(5)));
        assert_eq!(
            timeouts(&["k", "status", "--request-timeout", "1m"]),
            (secs(60), secs(60))
        );
        assert_eq!(
            timeouts(&["k", "status", "--request-timeout=0"]),
            (None, None)
        );
    }

    #[test]
    fn output_before_the_subcommand_moves_after_it() {
        assert_eq!(
            moved(&["k", "-o", "json", "-n", "shop", "status", "-A"]),
            ["k", "-n", "shop", "status", "-o", "json", "-A"]
        );
        assert_eq!(
            moved(&["k", "--output=yaml", "--context", "-o", "status"]),
            ["k", "--context", "-o", "status", "--output=yaml"]
        );
        assert_eq!(moved(&["k", "-ojson", "check"]), ["k", "check", "-ojson"]);
        let unchanged = ["k", "status", "-o", "wide", "-n", "shop"];
        assert_eq!(moved(&unchanged), unchanged);
        assert_eq!(moved(&["k", "-o", "json"]), ["k", "-o", "json"]);

        let cli = Cli::parse_from(output_after_subcommand(
            ["k", "-o", "json", "-n", "shop", "status"]
                .iter()
                .map(Into::into)
                .collect(),
        ));
        let Command::Status(status) = cli.command else {
            panic!("status expected");
        };
        assert!(matches!(status.report.output, ReportFormat::Json));
        assert_eq!(cli.cluster.namespace.as_deref(), Some("shop"));
    }
}
