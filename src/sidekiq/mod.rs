//! What sidekiq-guard knows about Sidekiq itself: its command line ([`flags`]) and its timing.

pub mod flags;
pub mod metrics;
pub mod records;

pub use flags::{FlagProblem, Flags, Program, Queue};

/// Sidekiq's shutdown timeout when neither `-t` nor `timeout:` in the config file says otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 25;
/// Seconds between heartbeats on Sidekiq 7.0 and newer (5 on 6.x). A remote quiet becomes
/// visible within two beats.
pub const BEAT_SECS: u64 = 10;
