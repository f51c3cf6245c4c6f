//! Command-line arguments. Parsing lives here; the work lives in one module per subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// kubectl plugin for sidekiq-guard.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-sidekiq",
    bin_name = "kubectl sidekiq",
    version,
    about = "Keep Sidekiq from losing jobs on Kubernetes: inject and validate preStop hooks, probes and grace periods",
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print manifests as the sidekiq-guard webhook would mutate them
    #[command(
        after_help = "Examples:\n  kubectl sidekiq inject -f manifests/ > injected.yaml\n  helm template app ./chart | kubectl sidekiq inject -f - | kubectl apply -f -"
    )]
    Inject(InjectArgs),
    /// Report settings that would lose or needlessly delay Sidekiq jobs (exit 1 on errors)
    #[command(
        after_help = "Exit status: 0 no error findings, 1 error findings, 2 usage or input error.\n\nExamples:\n  kubectl sidekiq validate -f deploy/\n  kubectl sidekiq validate -f deploy/ --as-injected -o json"
    )]
    Validate(ValidateArgs),
}

/// Where manifests come from.
#[derive(Debug, Args)]
pub(crate) struct FileArgs {
    /// Manifest file, directory, or - for stdin (repeatable)
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
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
    /// Validate workloads as the webhook will admit their pods (for clusters running sidekiq-guard)
    #[arg(long)]
    pub(crate) as_injected: bool,
    /// Sidecar placement assumed with --as-injected
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) sidecar_mode: Option<ModeArg>,
    /// Output format
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value = "table",
        value_name = "FORMAT"
    )]
    pub(crate) output: ReportFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// An init container with restartPolicy: Always (Kubernetes 1.29+)
    Native,
    /// A regular container (older clusters)
    Classic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ManifestFormat {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// One row per finding
    Table,
    /// Like table, with the field path and the fix
    Wide,
    Json,
    Yaml,
}
