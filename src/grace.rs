//! The grace period a Sidekiq pod needs, and the arithmetic behind it in words.
//!
//! ```text
//! drain budget   = quiet latency + longest job
//! required grace = drain budget + shutdown timeout + exit allowance (+ margin)
//!                  (a kept preStop that sleeps longer than the budget replaces the budget)
//! ```
//!
//! The kubelet starts the grace countdown *before* the preStop hook, so the hook (the drain) and
//! Sidekiq's own shutdown after SIGTERM share one budget. The exit allowance covers Sidekiq
//! pushing unfinished jobs back to Redis and exiting after its timeout (about 3 s).

use crate::duration::Secs;
use crate::settings::Settings;

/// Seconds Sidekiq needs after its shutdown timeout to requeue jobs and exit.
pub const EXIT_ALLOWANCE_SECS: u64 = 5;

/// Seconds from a pod's deletion until Sidekiq has surely exited, when SIGTERM reaches it
/// `before_sigterm` seconds in and its shutdown timeout is `shutdown_timeout`: the formula's
/// tail, without the policy's margin.
pub fn after_sigterm(before_sigterm: u64, shutdown_timeout: u64) -> u64 {
    before_sigterm
        .saturating_add(shutdown_timeout)
        .saturating_add(EXIT_ALLOWANCE_SECS)
}

/// The computed grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grace {
    /// Time `/drain` may wait for in-flight jobs: quiet latency + longest job.
    pub drain_budget: u64,
    /// The smallest `terminationGracePeriodSeconds` that loses no job.
    pub required: u64,
    /// The arithmetic in words, e.g. `350s = quiet latency 20s + longest job 5m (…) + …`.
    pub explanation: String,
}

/// How long a pod's preStop hook keeps SIGTERM back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookDuration {
    /// Until the jobs are done, within the drain budget: the probe's `/drain`, or a hook of
    /// the user's that waits for Sidekiq to be idle.
    Drain,
    /// A fixed time: a hook that sleeps.
    Fixed(u64),
    /// Until the jobs are done and as long again as its sleeps (`sleep 30; curl …/drain`).
    DrainAndSleeps(u64),
}

impl Grace {
    /// Computes the grace period for `settings`, for a pod whose preStop hook takes `hook`.
    /// The kubelet sends SIGTERM only once the hook returns (and if it outlasts the grace
    /// period, SIGKILL two seconds after SIGTERM, when Sidekiq cannot requeue anything), so a
    /// fixed hook longer than the drain budget takes the budget's place in the sum, and a hook
    /// that sleeps besides waiting for the jobs adds its sleeps to it.
    pub fn compute(settings: &Settings, hook: HookDuration) -> Self {
        let longest = &settings.longest_job;
        let timeout = &settings.shutdown_timeout;
        let drain_budget = settings.quiet_latency.saturating_add(longest.value);
        let drain_why = || {
            format!(
                "quiet latency {} + longest job {} ({})",
                Secs(settings.quiet_latency),
                Secs(longest.value),
                longest.source
            )
        };
        let (before_sigterm, why) = match hook {
            HookDuration::Fixed(secs) if secs > drain_budget => (
                secs,
                format!(
                    "the preStop hook's fixed sleep {} (longer than the drain budget {})",
                    Secs(secs),
                    Secs(drain_budget)
                ),
            ),
            HookDuration::DrainAndSleeps(secs) => (
                drain_budget.saturating_add(secs),
                format!("{} + the preStop hook's sleeps {}", drain_why(), Secs(secs)),
            ),
            HookDuration::Fixed(_) | HookDuration::Drain => (drain_budget, drain_why()),
        };
        let required = after_sigterm(before_sigterm, timeout.value).saturating_add(settings.margin);
        let mut explanation = format!(
            "{required}s = {why} + shutdown timeout {} ({}) + exit allowance {}",
            Secs(timeout.value),
            timeout.source,
            Secs(EXIT_ALLOWANCE_SECS),
        );
        if settings.margin > 0 {
            explanation.push_str(&format!(" + policy margin {}", Secs(settings.margin)));
        }
        Self {
            drain_budget,
            required,
            explanation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Setting, Source};

    fn settings(longest: u64, timeout: u64, margin: u64) -> Settings {
        Settings {
            longest_job: Setting {
                value: longest,
                source: Source::Annotation(crate::annotations::LONGEST_JOB),
            },
            shutdown_timeout: Setting {
                value: timeout,
                source: Source::Policy("shutdownTimeout"),
            },
            quiet_latency: 20,
            margin,
            probe_port: Setting {
                value: 7434,
                source: Source::Policy("probePort"),
            },
        }
    }

    fn settings_huge() -> Settings {
        settings(60, u64::MAX, 0)
    }

    #[test]
    fn the_example_from_the_design() {
        let grace = Grace::compute(&settings(300, 25, 0), HookDuration::Drain);
        assert_eq!(grace.drain_budget, 320);
        assert_eq!(grace.required, 350);
        assert_eq!(
            grace.explanation,
            "350s = quiet latency 20s + longest job 5m (annotation sidekiq-guard.io/longest-job) \
             + shutdown timeout 25s (policy default shutdownTimeout) + exit allowance 5s"
        );
    }

    #[test]
    fn a_kept_hook_that_sleeps_longer_than_the_drain_budget_takes_its_place() {
        let settings = settings(120, 30, 0);
        let grace = Grace::compute(&settings, HookDuration::Drain);
        assert_eq!(grace.required, 20 + 120 + 30 + 5);
        let longer = Grace::compute(&settings, HookDuration::Fixed(600));
        assert_eq!(longer.required, 600 + 30 + 5);
        assert_eq!(longer.drain_budget, 140);
        assert_eq!(
            longer.explanation,
            "635s = the preStop hook's fixed sleep 10m (longer than the drain budget 2m20s) \
             + shutdown timeout 30s (policy default shutdownTimeout) + exit allowance 5s"
        );
        assert_eq!(Grace::compute(&settings, HookDuration::Fixed(60)), grace);
        let huge = settings_huge();
        assert_eq!(
            Grace::compute(&huge, HookDuration::Fixed(600)).required,
            u64::MAX
        );
    }

    #[test]
    fn a_kept_hook_that_sleeps_besides_waiting_for_the_jobs_adds_its_sleeps() {
        let settings = settings(120, 30, 0);
        let grace = Grace::compute(&settings, HookDuration::DrainAndSleeps(30));
        assert_eq!(grace.required, 20 + 120 + 30 + 30 + 5);
        assert_eq!(grace.drain_budget, 140);
        assert_eq!(
            grace.explanation,
            "205s = quiet latency 20s + longest job 2m (annotation sidekiq-guard.io/longest-job) \
             + the preStop hook's sleeps 30s + shutdown timeout 30s (policy default shutdownTimeout) \
             + exit allowance 5s"
        );
        assert_eq!(
            Grace::compute(&settings_huge(), HookDuration::DrainAndSleeps(u64::MAX)).required,
            u64::MAX
        );
    }

    #[test]
    fn the_margin_is_added_and_explained() {
        let grace = Grace::compute(&settings(600, 60, 30), HookDuration::Drain);
        assert_eq!(grace.required, 20 + 600 + 60 + 5 + 30);
        assert!(
            grace.explanation.ends_with(" + policy margin 30s"),
            "{}",
            grace.explanation
        );
    }

    #[test]
    fn absurd_values_saturate_instead_of_overflowing() {
        assert_eq!(
            Grace::compute(&settings(u64::MAX, u64::MAX, 1), HookDuration::Drain).required,
            u64::MAX
        );
    }
}
