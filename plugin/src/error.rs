//! The plugin's errors. Each carries what the user can act on; causes travel as sources.

use std::io;

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
}

impl Error {
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
