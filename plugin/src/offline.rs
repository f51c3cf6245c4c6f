//! What the offline commands (`inject`, `validate -f`) share: the policy and the sidecar mode.

use std::fs;
use std::path::Path;

use sidekiq_guard::{Context, Mode, Policy};

use crate::cli::ModeArg;
use crate::error::Error;

/// Policy and sidecar mode for commands that have no cluster to ask.
pub(crate) struct Offline {
    pub(crate) policy: Policy,
    pub(crate) mode: Mode,
}

impl Offline {
    /// Loads `--policy` (or the default policy) and resolves the sidecar mode: the flag, else the
    /// policy's, with `auto` meaning native (see [`Mode::resolve_offline`]).
    pub(crate) fn load(policy: Option<&Path>, mode: Option<ModeArg>) -> Result<Self, Error> {
        let policy = match policy {
            None => Policy::default(),
            Some(path) => {
                let name = path.display().to_string();
                let text = fs::read_to_string(path).map_err(|source| Error::PolicyRead {
                    path: name.clone(),
                    source,
                })?;
                Policy::parse(&text).map_err(|source| Error::Policy { path: name, source })?
            }
        };
        let mode = mode.map_or_else(|| Mode::resolve_offline(policy.sidecar.mode), Mode::from);
        Ok(Self { policy, mode })
    }

    /// The core's context for an object (which carries its own namespace, if any).
    pub(crate) fn context(&self) -> Context<'_> {
        Context {
            policy: &self.policy,
            mode: self.mode,
            namespace: None,
        }
    }
}
