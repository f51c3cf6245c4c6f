//! Talking to the API server: the client (in-cluster or from a kubeconfig) and the server
//! version that decides `sidecar.mode: auto`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use sidekiq_guard::Mode;
use sidekiq_guard::policy::SidecarModeSetting;

/// A Kubernetes API server that cannot be reached or configured.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig file named by `--kubeconfig` cannot be read.
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        /// As given.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig has no usable context.
    #[error("kubeconfig {path} cannot be used")]
    KubeconfigContext {
        /// As given.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither in a pod nor given a kubeconfig.
    #[error(
        "no Kubernetes API server configured: not running in a pod and no kubeconfig found (pass --kubeconfig)"
    )]
    Infer(#[source] kube::config::InferConfigError),
    /// The client cannot be built from the configuration (e.g. a bad CA).
    #[error("cannot build a Kubernetes client")]
    Client(#[source] kube::Error),
    /// `GET /version` failed.
    #[error("cannot read the API server version (GET /version)")]
    Version(#[source] kube::Error),
}

/// A client for the cluster: from `kubeconfig` when given, else the usual inference (in-cluster
/// service account, then `$KUBECONFIG`, then `~/.kube/config`).
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClusterError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|source| ClusterError::Kubeconfig {
                path: path.to_owned(),
                source,
            })?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|source| ClusterError::KubeconfigContext {
                    path: path.to_owned(),
                    source,
                })?
        }
        None => Config::infer().await.map_err(ClusterError::Infer)?,
    };
    // Every call sidekiq-guard makes is small; a hung API server must not hang start-up or the
    // install Job forever.
    config.read_timeout = Some(Duration::from_secs(15));
    config.write_timeout = Some(Duration::from_secs(15));
    // kube's built-in retry of 429/503 backs off for minutes, silently. The callers retry
    // themselves and say so: start-up logs each attempt, the install Job fails and is retried
    // by its backoffLimit.
    config.default_retry = false;
    Client::try_from(config).map_err(ClusterError::Client)
}

/// The API server's version as `(major, minor, gitVersion)`.
pub async fn server_version(client: &Client) -> Result<(String, String, String), ClusterError> {
    let info = client
        .apiserver_version()
        .await
        .map_err(ClusterError::Version)?;
    Ok((info.major, info.minor, info.git_version))
}

/// Decides where the sidecar goes. `native` and `classic` need no cluster; `auto` asks the API
/// server for its version, retrying with backoff until it answers: a replica that cannot tell
/// stays not ready (and says why in its log) rather than guess, because a wrong guess either
/// blocks pods forever (native on a cluster before 1.29) or lasts until the next restart.
/// A configuration that can never work (no kubeconfig outside a cluster) fails at once.
pub async fn decide_mode(
    setting: SidecarModeSetting,
    kubeconfig: Option<&Path>,
) -> Result<Mode, ClusterError> {
    if setting != SidecarModeSetting::Auto {
        return Ok(Mode::resolve(setting, None));
    }
    let client = client(kubeconfig).await?;
    let mut backoff = Duration::from_millis(500);
    loop {
        match server_version(&client).await {
            Ok((major, minor, git_version)) => {
                let parsed =
                    sidekiq_guard::sidecar::parse_server_version(&major, &minor, &git_version);
                let mode = Mode::resolve(setting, parsed);
                if parsed.is_none() {
                    tracing::warn!(
                        major,
                        minor,
                        git_version,
                        "unrecognised API server version; injecting classic sidecars"
                    );
                }
                tracing::info!(
                    server_version = %git_version,
                    sidecar_mode = mode.as_str(),
                    "sidecar.mode auto: decided from the API server version (native from 1.29)"
                );
                return Ok(mode);
            }
            Err(err) => {
                tracing::warn!(
                    error = %sidekiq_guard::errors::chain(&err),
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    "sidecar.mode auto needs the API server version; not ready until it answers (or set sidecar.mode to native or classic in the policy)"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
