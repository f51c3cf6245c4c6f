//! The effective settings of one Sidekiq workload and where each value came from.
//!
//! Precedence: the Sidekiq command line (it is what Sidekiq really uses), then annotations, then
//! the policy. Every value carries its [`Source`] so that warnings and findings can say *why* the
//! grace period is what it is.

use std::fmt;

use crate::annotations::{self, Overrides};
use crate::policy::Policy;
use crate::sidekiq::Flags;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An annotation, by full key.
    Annotation(&'static str),
    /// The Sidekiq command line, as written (e.g. `-t 60`).
    CommandLine(String),
    /// The policy's `defaults`.
    Policy(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Annotation(key) => write!(f, "annotation {key}"),
            Source::CommandLine(flag) => write!(f, "command line {flag}"),
            Source::Policy(key) => write!(f, "policy default {key}"),
        }
    }
}

/// A value and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

/// The resolved settings of a Sidekiq workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Longest job, seconds.
    pub longest_job: Setting<u64>,
    /// Sidekiq's shutdown timeout (`-t`), seconds.
    pub shutdown_timeout: Setting<u64>,
    /// Time for a remote quiet to become visible, seconds.
    pub quiet_latency: u64,
    /// Policy margin added to the grace period, seconds.
    pub margin: u64,
    /// The port the probe sidecar should listen on (before conflict resolution).
    pub probe_port: Setting<u16>,
}

impl Settings {
    /// Resolves the settings of a workload.
    pub fn resolve(policy: &Policy, overrides: &Overrides, flags: &Flags) -> Self {
        let defaults = &policy.defaults;
        let longest_job = match overrides.longest_job {
            Some(value) => Setting {
                value,
                source: Source::Annotation(annotations::LONGEST_JOB),
            },
            None => Setting {
                value: defaults.longest_job.0,
                source: Source::Policy("longestJob"),
            },
        };
        let shutdown_timeout = match (flags.timeout_secs(), overrides.shutdown_timeout) {
            (Some(value), _) => Setting {
                value,
                source: Source::CommandLine(format!("-t {value}")),
            },
            (None, Some(value)) => Setting {
                value,
                source: Source::Annotation(annotations::SHUTDOWN_TIMEOUT),
            },
            (None, None) => Setting {
                value: defaults.shutdown_timeout.0,
                source: Source::Policy("shutdownTimeout"),
            },
        };
        let probe_port = match overrides.probe_port {
            Some(value) => Setting {
                value,
                source: Source::Annotation(annotations::PROBE_PORT),
            },
            None => Setting {
                value: defaults.probe_port.0,
                source: Source::Policy("probePort"),
            },
        };
        Self {
            longest_job,
            shutdown_timeout,
            quiet_latency: defaults.quiet_latency.0,
            margin: defaults.margin.0,
            probe_port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(timeout: Option<u64>) -> Flags {
        Flags {
            timeout: timeout.map(crate::sidekiq::flags::Timeout::Seconds),
            ..Flags::default()
        }
    }

    #[test]
    fn policy_defaults_apply_when_nothing_is_declared() {
        let settings = Settings::resolve(&Policy::default(), &Overrides::default(), &flags(None));
        assert_eq!(settings.longest_job.value, 60);
        assert_eq!(settings.longest_job.source, Source::Policy("longestJob"));
        assert_eq!(settings.shutdown_timeout.value, 25);
        assert_eq!(settings.probe_port.value, 7434);
        assert_eq!(settings.quiet_latency, 20);
    }

    #[test]
    fn the_command_line_beats_the_annotation_for_the_timeout() {
        let overrides = Overrides {
            shutdown_timeout: Some(90),
            longest_job: Some(300),
            ..Overrides::default()
        };
        let settings = Settings::resolve(&Policy::default(), &overrides, &flags(Some(60)));
        assert_eq!(settings.shutdown_timeout.value, 60);
        assert_eq!(
            settings.shutdown_timeout.source.to_string(),
            "command line -t 60"
        );
        let settings = Settings::resolve(&Policy::default(), &overrides, &flags(None));
        assert_eq!(settings.shutdown_timeout.value, 90);
        assert_eq!(
            settings.shutdown_timeout.source.to_string(),
            "annotation sidekiq-guard.io/shutdown-timeout"
        );
        assert_eq!(settings.longest_job.value, 300);
    }
}
