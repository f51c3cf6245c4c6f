//! What sidekiq-guard knows about Sidekiq itself: its command line ([`flags`]) and its timing.

pub mod flags;
pub mod metrics;
mod payload;
pub mod records;

pub use flags::{FlagProblem, Flags, Program, Queue};

/// Sidekiq reads its Redis URL from this variable...
pub const REDIS_URL: &str = "REDIS_URL";
/// ...unless this one names another variable that holds it (Heroku-style add-ons).
pub const REDIS_PROVIDER: &str = "REDIS_PROVIDER";

/// Whether a `REDIS_PROVIDER` value is a URL rather than a variable name, which Sidekiq refuses
/// to start with (it checks for a `:`, in 6.x and 7+ alike).
pub fn provider_holds_url(value: &str) -> bool {
    value.contains(':')
}

/// Sidekiq's shutdown timeout when neither `-t` nor `timeout:` in the config file says otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 25;

/// Whether Sidekiq starts with a shutdown timeout of `secs`: it refuses 0 ("timeout: 0 is not
/// a valid value"), so no setting of sidekiq-guard's — a flag read, an annotation, the
/// policy's default — may describe one.
pub const fn accepts_timeout(secs: u64) -> bool {
    secs > 0
}
/// Seconds between heartbeats on Sidekiq 7.0 and newer (5 on 6.x). A remote quiet becomes
/// visible within two beats.
pub const BEAT_SECS: u64 = 10;
