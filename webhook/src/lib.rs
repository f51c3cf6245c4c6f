//! sidekiq-guard's admission webhook, as a library for its binary, its integration tests and
//! its benchmark.
//!
//! The webhook is a thin shell around the core ([`sidekiq_guard::admission`]): HTTPS with
//! hot-reloaded certificates ([`tls`], [`server`]) and its failed handshakes reported
//! ([`handshake`]), the admission endpoints ([`handler`]), health and metrics ([`health`],
//! [`metrics`]), start-up and graceful shutdown ([`serve`]), the API server version for
//! `sidecar.mode: auto` ([`cluster`]) and the certificate subcommands ([`generate`],
//! [`install`], [`pki`]).

#![forbid(unsafe_code)]

pub mod cli;
pub mod cluster;
pub mod generate;
pub mod handler;
pub mod handshake;
pub mod health;
pub mod install;
pub mod logging;
pub mod metrics;
pub mod pki;
pub mod serve;
pub mod server;
pub mod timeout;
pub mod tls;
