//! The pure core of sidekiq-guard.
//!
//! It decides everything — which container runs Sidekiq, its settings, the grace period, the JSON
//! patch, the findings — and performs no I/O without its features (`listen`, `redis`, the few
//! pieces of I/O two shells share): the webhook, the probe, the kubectl plugin and the
//! Kubewarden policy are thin shells around it, and it builds for `wasm32-wasip1`.
//!
//! The entry points are [`review::mutate`], [`review::validate`] and [`review::inject`], given a
//! raw JSON object and a [`Context`].

#![forbid(unsafe_code)]

pub mod admission;
pub mod analysis;
pub mod annotations;
#[cfg(test)]
mod arbitrary;
pub mod cert_secrets;
pub mod detect;
mod dumb_init;
pub mod duration;
pub mod ere;
pub mod errors;
pub mod findings;
pub mod grace;
pub mod install;
pub mod json_text;
pub mod listen;
mod managed_fields;
pub mod mutate;
pub mod names;
pub mod patch;
pub mod pointer;
pub mod policy;
pub mod prestop;
pub mod probe;
pub mod quantity;
#[cfg(feature = "redis")]
pub mod redis;
pub mod review;
pub mod selector;
pub mod settings;
pub mod shell;
pub mod sidecar;
pub mod sidekiq;
pub mod status;
pub mod timestamp;
pub mod verdict;
pub mod workload;
#[cfg(feature = "x509")]
pub mod x509;

pub use analysis::Context;
pub use findings::{Code, Finding, Severity};
pub use patch::PatchOp;
pub use policy::Policy;
pub use review::{Decision, Outcome, Perspective, Review};
pub use sidecar::Mode;

/// Default port of the probe sidecar. 7433 is taken by sidekiq_alive and by Sidekiq Enterprise's
/// health check.
pub const DEFAULT_PROBE_PORT: u16 = 7434;
/// The lowest port the probe sidecar may listen on: it runs as non-root with every capability
/// dropped, and container runtimes commonly keep ports below 1024 for privileged processes.
pub const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// This version of sidekiq-guard, recorded in the status annotation.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
