//! The plugin's errors. Each says what the user can act on; causes travel as sources.

use std::io;
use std::time::Duration;

use crate::manifests::ManifestError;

/// Anything that stops a command (exit status 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot read policy file {path}")]
    PolicyRead {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}")]
    Policy {
        path: String,
        #[source]
        source: sidekiq_guard::policy::PolicyError,
    },
    #[error("{source_name}: cannot apply the computed patch (please report this as a bug)")]
    Patch {
        source_name: String,
        #[source]
        source: sidekiq_guard::patch::ApplyError,
    },
    #[error("cannot write output")]
    Output(#[source] io::Error),
    #[error("cannot load the kubeconfig from {what}")]
    Kubeconfig {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot set up a client for {server}")]
    Client {
        server: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot reach the Kubernetes API at {server} (is the cluster up, and the kubeconfig's context the right one?)"
    )]
    Unreachable {
        server: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Reached, but one request outlasted `--request-timeout` (a long list, a loaded server).
    #[error(
        "{what}: the Kubernetes API at {server} did not answer within {after} (--request-timeout; raise it, or 0 to wait without limit)"
    )]
    ApiTimeout {
        what: String,
        server: String,
        after: String,
    },
    #[error(
        "the Kubernetes API at {server} does not accept the kubeconfig's credentials: {message}"
    )]
    Unauthorized { server: String, message: String },
    #[error("forbidden: {message}\n  your RBAC role needs: {access}")]
    Forbidden { access: String, message: String },
    #[error("{what}: the API answered {code}: {message}")]
    Api {
        what: String,
        code: u16,
        message: String,
    },
    #[error("{what}")]
    Kube {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("pod {pod}: {message}")]
    Probe { pod: String, message: String },
    /// The probe speaks another `/status` schema: a plugin of another release.
    #[error("pod {pod}: {}", other_schema(*schema))]
    ProbeSchema { pod: String, schema: u64 },
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("cannot build a request: {0}")]
    Request(String),
    #[error("{what}: the answer is not the JSON expected")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    RedisSettings(#[from] sidekiq_guard::redis::SettingsError),
    #[error(transparent)]
    Redis(#[from] sidekiq_guard::redis::RedisError),
    #[error("{0}")]
    Usage(String),
    #[error("a pod's drain stopped unexpectedly")]
    Task(#[source] tokio::task::JoinError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
}

fn other_schema(schema: u64) -> String {
    format!(
        "the probe answers /status schema {schema}, and this kubectl-sidekiq reads schema {}: use the plugin of the webhook's release",
        sidekiq_guard::probe::report::SCHEMA
    )
}

impl Error {
    /// The message without the `pod …:` a pod's own errors start with, for a line or a field
    /// that names the pod already.
    pub(crate) fn about_pod(&self) -> String {
        match self {
            Error::Probe { message, .. } => message.clone(),
            Error::ProbeSchema { schema, .. } => other_schema(*schema),
            other => sidekiq_guard::errors::chain(other),
        }
    }

    /// Whether the error is a closed stdout (`kubectl sidekiq … | head`), which is not a failure.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        let io = match self {
            Error::Output(err) => Some(err),
            Error::Manifest(ManifestError::Write(err)) => Some(err),
            _ => None,
        };
        io.is_some_and(|err| err.kind() == io::ErrorKind::BrokenPipe)
    }
}
