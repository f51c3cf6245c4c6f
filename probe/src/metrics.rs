//! `/metrics`: Prometheus text, prefix `sidekiq_guard_probe_`.
//!
//! Only aggregates of this pod's processes: per-identity labels would churn a new series on
//! every restart of every worker.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `path`: the endpoint (`/livez`…, `other` for unknown paths); `code`: the status code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) path: &'static str,
    pub(crate) code: u16,
}

/// `result`: `ok` or `error`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ReadLabels {
    pub(crate) result: &'static str,
}

/// `outcome`: `drained`, `budget_exhausted` or `unquietable`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct DrainLabels {
    pub(crate) outcome: &'static str,
}

/// Every metric the probe exports.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) reads: Family<ReadLabels, Counter>,
    pub(crate) read_seconds: Histogram,
    pub(crate) round_trips: Counter,
    pub(crate) commands: Counter,
    pub(crate) signals: Counter,
    pub(crate) redis_up: Gauge,
    pub(crate) processes: Gauge,
    pub(crate) quiet_processes: Gauge,
    pub(crate) busy: Gauge,
    pub(crate) threads: Gauge,
    pub(crate) heartbeat_age: Gauge<f64, AtomicU64>,
    pub(crate) longest_job: Gauge<f64, AtomicU64>,
    pub(crate) live: Gauge,
    pub(crate) ready: Gauge,
    pub(crate) draining: Gauge,
    pub(crate) drains: Family<DrainLabels, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("sidekiq_guard_probe");
        let m = Metrics {
            requests: Family::default(),
            reads: Family::default(),
            // 0.25 ms … ~4 s.
            read_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            round_trips: Counter::default(),
            commands: Counter::default(),
            signals: Counter::default(),
            redis_up: Gauge::default(),
            processes: Gauge::default(),
            quiet_processes: Gauge::default(),
            busy: Gauge::default(),
            threads: Gauge::default(),
            heartbeat_age: Gauge::default(),
            longest_job: Gauge::default(),
            live: Gauge::default(),
            ready: Gauge::default(),
            draining: Gauge::default(),
            drains: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by endpoint and status code",
            m.requests.clone(),
        );
        registry.register(
            "redis_reads",
            "Reads of Sidekiq's records by result",
            m.reads.clone(),
        );
        registry.register(
            "redis_read_seconds",
            "Duration of one read (one or two pipelined round trips)",
            m.read_seconds.clone(),
        );
        registry.register(
            "redis_round_trips",
            "Pipelines sent to Redis",
            m.round_trips.clone(),
        );
        registry.register(
            "redis_commands",
            "Commands sent to Redis",
            m.commands.clone(),
        );
        registry.register(
            "quiet_signals",
            "TSTP signals pushed to Sidekiq processes",
            m.signals.clone(),
        );
        registry.register(
            "redis_up",
            "1 if the last read of Redis succeeded",
            m.redis_up.clone(),
        );
        registry.register(
            "processes",
            "Sidekiq processes of this pod with a readable heartbeat",
            m.processes.clone(),
        );
        registry.register(
            "quiet_processes",
            "Sidekiq processes of this pod that are quiet",
            m.quiet_processes.clone(),
        );
        registry.register(
            "busy_threads",
            "Busy threads over this pod's processes",
            m.busy.clone(),
        );
        registry.register(
            "threads",
            "Threads (concurrency) over this pod's processes",
            m.threads.clone(),
        );
        registry.register(
            "heartbeat_age_seconds",
            "Age of the oldest heartbeat of this pod's processes",
            m.heartbeat_age.clone(),
        );
        registry.register(
            "longest_job_seconds",
            "Run time of the longest running job at the last full read",
            m.longest_job.clone(),
        );
        registry.register("live", "1 if /livez answers 200", m.live.clone());
        registry.register("ready", "1 if /readyz answers 200", m.ready.clone());
        registry.register("draining", "1 while a drain runs", m.draining.clone());
        registry.register("drains", "Finished drains by outcome", m.drains.clone());
        Metrics { registry, ..m }
    }

    /// The exposition text.
    pub(crate) fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
