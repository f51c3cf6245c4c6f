//! The decisions of the probe sidecar, without I/O: which processes belong to this pod
//! ([`pod`]), what the probe has learnt from Redis so far ([`observe`]), the liveness and
//! readiness verdicts ([`health`]), the drain ([`drain`]) and the `/status` document
//! ([`report`]).
//!
//! The shells feed in what they read and the current time ([`Now`]); everything here is
//! deterministic, so it is tested with plain values. The async reader that fills an
//! [`observe::Tracker`] from Redis is `sidekiq_guard::redis` (feature `redis`).

pub mod drain;
pub mod health;
pub mod observe;
pub mod pod;
pub mod report;

use std::time::Duration;

/// The current time, twice: wall-clock time compares with Sidekiq's heartbeats (written with
/// the same node clock), monotonic time measures the probe's own intervals (outages, drains),
/// which must not jump with the wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Now {
    /// Epoch seconds.
    pub wall: f64,
    /// Time since an arbitrary origin fixed for the life of the probe.
    pub mono: Duration,
}

impl Now {
    /// A time `by` later on both clocks.
    pub fn later(self, by: Duration) -> Now {
        Now {
            wall: self.wall + by.as_secs_f64(),
            mono: self.mono + by,
        }
    }

    /// This time as it was at the earlier monotonic time `mono` (`None` if `mono` is later).
    pub fn at_mono(self, mono: Duration) -> Option<Now> {
        let back = self.mono.checked_sub(mono)?;
        Some(Now {
            wall: self.wall - back.as_secs_f64(),
            mono,
        })
    }
}

/// Formats seconds for messages: `0.4s`, `12s`, `2m5s`.
pub(crate) fn secs(value: f64) -> String {
    if value < 10.0 {
        format!("{:.1}s", value.max(0.0))
    } else {
        crate::duration::format_secs(value.round() as u64)
    }
}

/// Formats a duration for messages; see [`secs`].
pub(crate) fn dur(value: Duration) -> String {
    secs(value.as_secs_f64())
}
