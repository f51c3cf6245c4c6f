//! The one task that talks to Redis.
//!
//! It owns the [`Tracker`] and the [`Drain`], so reads are single-flight by construction: any
//! number of concurrent probes that find the last read too old wake it once and wait for the
//! next [`Snapshot`] (at most `--answer-timeout`, then they answer from the last one — one slow
//! Redis call never fails a probe by itself). Each read, drain step and signal push publishes a
//! new snapshot on a `watch` channel, which the HTTP handlers read without locks.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sidekiq_guard::errors;
use sidekiq_guard::probe::Now;
use sidekiq_guard::probe::drain::{Drain, ProcessDrain, State};
use sidekiq_guard::probe::health::{self, Code};
use sidekiq_guard::probe::observe::{ProcessState, Scope, Tracker};
use sidekiq_guard::redis::{Reader, RedisError, Stats};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::config::Settings;
use crate::metrics::{DrainLabels, Metrics, ReadLabels};
use sidekiq_guard::Mode;

/// Wall-clock and monotonic time for the core's decisions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Now {
        Now {
            wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            mono: self.origin.elapsed(),
        }
    }
}

/// What the handlers see: the state after the last read or drain step.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) tracker: Tracker,
    /// When the last read (of any kind, successful or not) completed.
    pub(crate) read_at: Option<Instant>,
    /// When the last read that included the work hashes completed.
    pub(crate) full_read_at: Option<Instant>,
    pub(crate) drain: Option<(u64, Drain)>,
    pub(crate) shutting_down: bool,
    pub(crate) stats: Stats,
}

/// What a drain progress log line is keyed on: identity, status, quiet, busy.
type ProgressKey = (String, ProcessDrain, Option<bool>, Option<u32>);

enum Command {
    Drain {
        /// When `/drain` was called: the budget runs from then, not from when the monitor gets
        /// to the command (it may be in the middle of a read of a slow Redis), since the grace
        /// period counts it from the kubelet's call.
        asked: Now,
        reply: oneshot::Sender<u64>,
    },
    Shutdown,
}

/// The handlers' side of the monitor. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Handle {
    pub(crate) settings: Arc<Settings>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clock: Clock,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    wake: Arc<Notify>,
    want_work: Arc<AtomicBool>,
    commands: mpsc::Sender<Command>,
}

impl Handle {
    /// The latest snapshot, however old.
    pub(crate) fn current(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A snapshot read less than `--refresh-after` ago, if one arrives within
    /// `--answer-timeout`; else the latest.
    pub(crate) async fn fresh(&self, with_work: bool) -> Arc<Snapshot> {
        let current = self.current();
        let read_at = if with_work {
            current.full_read_at
        } else {
            current.read_at
        };
        if read_at.is_some_and(|at| at.elapsed() < self.settings.refresh_after) {
            return current;
        }
        if with_work {
            self.want_work.store(true, Ordering::SeqCst);
        }
        self.wake.notify_one();
        let mut updates = self.snapshot.clone();
        let wait = updates.wait_for(|s| {
            s.generation > current.generation
                && (if with_work {
                    s.full_read_at > current.full_read_at
                } else {
                    s.read_at > current.read_at
                })
        });
        match tokio::time::timeout(self.settings.answer_timeout, wait).await {
            Ok(Ok(snapshot)) => snapshot.clone(),
            _ => self.current(),
        }
    }

    /// Starts a drain or joins the running one, and returns the snapshot with its outcome.
    pub(crate) async fn drain(&self) -> Arc<Snapshot> {
        let (reply, id) = oneshot::channel();
        let asked = self.clock.now();
        if self
            .commands
            .send(Command::Drain { asked, reply })
            .await
            .is_err()
        {
            return self.current();
        }
        let Ok(id) = id.await else {
            return self.current();
        };
        let mut updates = self.snapshot.clone();
        let finished = updates.wait_for(|s| {
            s.drain
                .as_ref()
                .is_some_and(|(i, d)| *i == id && d.is_finished())
        });
        // The drain itself ends at its budget; this only guards against waiting forever.
        let limit = self.settings.drain_budget
            + self.settings.redis.connect_timeout
            + self.settings.redis.response_timeout * 2
            + Duration::from_secs(5);
        match tokio::time::timeout(limit, finished).await {
            Ok(Ok(snapshot)) => snapshot.clone(),
            _ => self.current(),
        }
    }

    /// Tells the monitor that SIGTERM arrived.
    pub(crate) async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }
}

/// See the module documentation.
pub(crate) struct Monitor {
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    clock: Clock,
    reader: Reader,
    tracker: Tracker,
    drain: Option<(u64, Drain)>,
    drain_ids: u64,
    next_drain_poll: Option<tokio::time::Instant>,
    drain_logged: Option<(Vec<ProgressKey>, Instant)>,
    shutdown_deadline: Option<Instant>,
    generation: u64,
    read_at: Option<Instant>,
    full_read_at: Option<Instant>,
    last_stats: Stats,
    seen: BTreeSet<String>,
    last_codes: Option<(Code, Code)>,
    /// Whether the last read reached Redis, to log its return.
    last_reachable: Option<bool>,
    publish: watch::Sender<Arc<Snapshot>>,
    wake: Arc<Notify>,
    want_work: Arc<AtomicBool>,
    commands: mpsc::Receiver<Command>,
}

impl Monitor {
    pub(crate) fn new(
        settings: Arc<Settings>,
        metrics: Arc<Metrics>,
        reader: Reader,
    ) -> (Self, Handle) {
        let tracker = Tracker::new(Scope::Host(settings.hostname.clone()), settings.rediscover)
            .settling_for(settings.settle);
        let clock = Clock::new();
        let (publish, snapshot) = watch::channel(Arc::new(Snapshot {
            generation: 0,
            tracker: tracker.clone(),
            read_at: None,
            full_read_at: None,
            drain: None,
            shutting_down: false,
            stats: Stats::default(),
        }));
        let wake = Arc::new(Notify::new());
        let want_work = Arc::new(AtomicBool::new(false));
        let (commands_tx, commands) = mpsc::channel(16);
        let handle = Handle {
            settings: settings.clone(),
            metrics: metrics.clone(),
            clock,
            snapshot,
            wake: wake.clone(),
            want_work: want_work.clone(),
            commands: commands_tx,
        };
        let monitor = Monitor {
            settings,
            metrics,
            clock,
            reader,
            tracker,
            drain: None,
            drain_ids: 0,
            next_drain_poll: None,
            drain_logged: None,
            shutdown_deadline: None,
            generation: 0,
            read_at: None,
            full_read_at: None,
            last_stats: Stats::default(),
            seen: BTreeSet::new(),
            last_codes: None,
            last_reachable: None,
            publish,
            wake,
            want_work,
            commands,
        };
        (monitor, handle)
    }

    fn draining(&self) -> bool {
        self.drain.as_ref().is_some_and(|(_, d)| !d.is_finished())
    }

    /// Runs until SIGTERM has been handled: at once in native mode, once this pod's Sidekiq has
    /// left Redis (or the exit deadline passed) in classic mode.
    pub(crate) async fn run(mut self) {
        // Read once at start-up so that the first probe finds a snapshot and the log shows
        // what the probe sees.
        self.refresh(false).await;
        self.publish();
        loop {
            let tick = if self.draining() {
                self.next_drain_poll
            } else if self.shutdown_deadline.is_some() {
                Some(tokio::time::Instant::now() + Duration::from_secs(1))
            } else {
                None
            };
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(Command::Drain { asked, reply }) => self.start_drain(asked, reply).await,
                    Some(Command::Shutdown) => {
                        if self.settings.mode == Mode::Native {
                            info!(mode = "native", "exiting");
                            return;
                        }
                        let deadline = self.settings.exit_deadline;
                        info!(
                            mode = "classic",
                            deadline_secs = deadline.as_secs_f64(),
                            "serving until this pod's Sidekiq has left Redis"
                        );
                        self.shutdown_deadline = Some(Instant::now() + deadline);
                        // What the last read saw may be older than Sidekiq's start (nothing
                        // reads Redis while the kubelet's probes are the user's own): list
                        // the pod's processes afresh before judging that they have left.
                        self.tracker.force_discovery();
                        self.refresh(false).await;
                        self.publish();
                    }
                    None => return,
                },
                () = async {
                    match tick {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if self.draining() {
                        self.drain_step().await;
                    } else {
                        self.refresh(false).await;
                        self.publish();
                    }
                }
                () = self.wake.notified() => {
                    let with_work = self.want_work.swap(false, Ordering::SeqCst);
                    self.refresh_within_drain(with_work).await;
                    self.publish();
                }
            }
            if self.shutdown_done() {
                return;
            }
        }
    }

    fn shutdown_done(&self) -> bool {
        let Some(deadline) = self.shutdown_deadline else {
            return false;
        };
        if Instant::now() >= deadline {
            warn!(
                processes = self.tracker.live().count(),
                "exit deadline passed with Sidekiq still in Redis (or Redis unreachable): exiting"
            );
            return true;
        }
        if self.tracker.sidekiq_gone(self.clock.now()) && !self.draining() {
            info!("this pod's Sidekiq has left Redis: exiting");
            return true;
        }
        false
    }

    async fn refresh(&mut self, with_work: bool) {
        let clock = self.clock;
        let started = Instant::now();
        let result = self
            .reader
            .refresh(&mut self.tracker, with_work, || clock.now())
            .await;
        let done = Instant::now();
        self.metrics
            .read_seconds
            .observe(done.duration_since(started).as_secs_f64());
        self.read_at = Some(done);
        if with_work {
            self.full_read_at = Some(done);
        }
        if let Some((id, drain)) = &self.drain
            && drain.superseded(&self.tracker)
        {
            info!(
                drain = id,
                outcome = %drain.state(),
                "a Sidekiq process that drain never saw is running: its outcome no longer applies"
            );
            self.drain = None;
            self.drain_logged = None;
        }
        let result_label = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .reads
            .get_or_create(&ReadLabels {
                result: result_label,
            })
            .inc();
        let stats = self.reader.stats();
        self.metrics
            .round_trips
            .inc_by(stats.round_trips - self.last_stats.round_trips);
        self.metrics
            .commands
            .inc_by(stats.commands - self.last_stats.commands);
        self.last_stats = stats;
    }

    async fn start_drain(&mut self, asked: Now, reply: oneshot::Sender<u64>) {
        if let Some((id, drain)) = &mut self.drain
            && !drain.is_finished()
        {
            info!(
                drain = *id,
                "drain requested again: joining the running drain"
            );
            drain.asked_again(asked);
            let _ = reply.send(*id);
            return;
        }
        self.drain_ids += 1;
        let id = self.drain_ids;
        let previous = self.drain.as_ref().map(|(_, d)| d);
        let drain = Drain::start(asked, self.settings.drain_budget, previous);
        info!(
            drain = id,
            budget_secs = self.settings.drain_budget.as_secs_f64(),
            "drain requested: quieting this pod's Sidekiq processes"
        );
        self.drain = Some((id, drain));
        self.drain_logged = None;
        let _ = reply.send(id);
        // A drain must see every process of the pod, not only those already followed.
        self.tracker.force_discovery();
        self.drain_step().await;
    }

    /// A read of Redis, cut off where a running drain's budget ends, whoever asked for it (the
    /// drain's poll, or a probe request while it runs): the kubelet's probes and Prometheus
    /// go on during a drain, and the single task that reads for them also ends the drain. Once
    /// the budget is spent there is no read: the drain's next step ends it on what was last
    /// read.
    async fn refresh_within_drain(&mut self, with_work: bool) {
        let left = self
            .drain
            .as_ref()
            .filter(|(_, d)| !d.is_finished())
            .map(|(_, d)| d.time_left(self.clock.now()));
        let Some(left) = left else {
            return self.refresh(with_work).await;
        };
        if !left.is_zero()
            && tokio::time::timeout(left, self.refresh(with_work))
                .await
                .is_err()
        {
            let now = self.clock.now();
            self.tracker.record_failure(
                now,
                "Redis did not answer before the drain budget ran out".to_owned(),
            );
        }
    }

    /// One poll of a drain: read Redis, update the drain, push `TSTP` where needed. No read
    /// or push outlasts the budget, and the poll after the budget's end is its end: `/drain`
    /// returns within the budget, which is what the grace period allows for it.
    async fn drain_step(&mut self) {
        let left = self
            .drain
            .as_ref()
            .map_or(Duration::MAX, |(_, d)| d.time_left(self.clock.now()));
        let poll = self.settings.drain_poll.min(left);
        self.next_drain_poll = Some(tokio::time::Instant::now() + poll);
        self.refresh_within_drain(true).await;
        let Some((id, mut drain)) = self.drain.take() else {
            self.publish();
            return;
        };
        let signals = drain.step(&self.tracker, self.clock.now());
        for identity in signals {
            let left = drain.time_left(self.clock.now());
            let pushed = tokio::time::timeout(left, self.reader.quiet(&identity))
                .await
                .unwrap_or_else(|_| {
                    Err(RedisError::Timeout {
                        url: self.reader.settings().redacted_url(),
                        timeout: left,
                    })
                });
            match pushed {
                Ok(()) => {
                    drain.signalled(&identity, self.clock.now());
                    self.metrics.signals.inc();
                    info!(drain = id, process = %identity, "pushed TSTP to {identity}-signals (quiet)");
                }
                Err(error) => {
                    let error = errors::chain(&error);
                    // Once per distinct error: a read-only replica refuses every poll.
                    if drain.signal_failed(&identity, &error) {
                        warn!(
                            drain = id,
                            process = %identity,
                            error = %error,
                            "could not push TSTP; retrying on every poll"
                        );
                    }
                }
            }
        }
        self.log_drain(id, &drain);
        self.drain = Some((id, drain));
        self.publish();
    }

    fn log_drain(&mut self, id: u64, drain: &Drain) {
        let elapsed = drain.elapsed(self.clock.now()).as_secs_f64();
        if drain.is_finished() {
            self.metrics
                .drains
                .get_or_create(&DrainLabels {
                    outcome: drain.state().as_str(),
                })
                .inc();
            if drain.state() == State::Drained {
                info!(drain = id, outcome = %drain.state(), elapsed_secs = elapsed, "{}", drain.message());
            } else {
                warn!(drain = id, outcome = %drain.state(), elapsed_secs = elapsed, "{}", drain.message());
            }
            return;
        }
        // Log when a process changes state, and every 10 s otherwise: job run times change on
        // every poll and would flood the log.
        let key: Vec<_> = drain
            .progress()
            .iter()
            .map(|p| (p.identity.clone(), p.status, p.quiet, p.busy))
            .collect();
        let due = match &self.drain_logged {
            None => true,
            Some((last, at)) => *last != key || at.elapsed() >= Duration::from_secs(10),
        };
        if due {
            info!(drain = id, elapsed_secs = elapsed, "{}", drain.message());
            self.drain_logged = Some((key, Instant::now()));
        }
    }

    fn publish(&mut self) {
        self.generation += 1;
        let now = self.clock.now();
        self.log_changes(now);
        self.update_gauges(now);
        self.publish.send_replace(Arc::new(Snapshot {
            generation: self.generation,
            tracker: self.tracker.clone(),
            read_at: self.read_at,
            full_read_at: self.full_read_at,
            drain: self.drain.clone(),
            shutting_down: self.shutdown_deadline.is_some(),
            stats: self.last_stats,
        }));
    }

    /// Logs what changed since the last snapshot: processes appearing and leaving, Redis
    /// going away and coming back, and verdict changes — never one line per read.
    fn log_changes(&mut self, now: Now) {
        let current: BTreeSet<String> = self
            .tracker
            .processes()
            .map(|t| t.identity.clone())
            .collect();
        for t in self.tracker.processes() {
            if self.seen.contains(&t.identity) {
                continue;
            }
            match &t.state {
                ProcessState::Live(p) => info!(
                    process = %t.identity,
                    version = p.info.version.as_deref().unwrap_or("unstated"),
                    layout = %p.layout,
                    quiet = p.quiet,
                    busy = p.busy,
                    "Sidekiq process of this pod found"
                ),
                ProcessState::Unreadable(e) => warn!(
                    process = %t.identity,
                    error = %errors::chain(e),
                    "Sidekiq process of this pod found, but its records cannot be read"
                ),
                ProcessState::Expired => {}
            }
        }
        for gone in self.seen.difference(&current) {
            info!(process = %gone, "Sidekiq process left Redis");
        }
        self.seen = current;

        // Said in so many words: the verdict line that follows may not mention Redis.
        let reachable = self.tracker.redis().reachable();
        if reachable == Some(true) && self.last_reachable == Some(false) {
            info!("Redis reachable again");
        }
        self.last_reachable = reachable;

        let thresholds = &self.settings.thresholds;
        let live = health::liveness(&self.tracker, now, thresholds);
        let ready = health::readiness(&self.tracker, now, thresholds);
        let codes = (live.code, ready.code);
        if self.last_codes != Some(codes) {
            let redis = self.tracker.redis();
            if live.ok && ready.ok {
                info!(liveness = %live.code, readiness = %ready.code, "healthy: {}", ready.reason);
            } else if !live.ok {
                warn!(liveness = %live.code, readiness = %ready.code, "liveness fails: {}", live.reason);
            } else if redis.reachable() == Some(false) {
                warn!(liveness = %live.code, readiness = %ready.code, "{}", live.reason);
            } else {
                info!(liveness = %live.code, readiness = %ready.code, "not ready: {}", ready.reason);
            }
            self.last_codes = Some(codes);
        }
    }

    fn update_gauges(&self, now: Now) {
        let m = &self.metrics;
        let t = &self.tracker;
        m.redis_up
            .set(i64::from(t.redis().reachable() == Some(true)));
        let live: Vec<_> = t.live().collect();
        m.processes.set(count(live.len()));
        m.quiet_processes
            .set(count(live.iter().filter(|p| p.quiet).count()));
        m.busy.set(live.iter().map(|p| i64::from(p.busy)).sum());
        m.threads.set(
            live.iter()
                .filter_map(|p| p.concurrency)
                .map(i64::from)
                .sum(),
        );
        // Also the last beat of a process whose hash expired while it was wedged (the probe
        // remembers it, as `/livez` does): an alert on this gauge must fire exactly then.
        m.heartbeat_age.set(
            t.processes()
                .filter_map(|p| match &p.state {
                    ProcessState::Live(live) => Some(live.beat),
                    ProcessState::Expired => p
                        .last_beat
                        .filter(|beat| !t.replaced_after(&p.identity, *beat)),
                    ProcessState::Unreadable(_) => None,
                })
                .map(|beat| t.heartbeat_age(beat, now))
                .fold(0.0, f64::max),
        );
        m.longest_job.set(
            t.processes()
                .filter(|p| p.process().is_some())
                .filter_map(|p| match &p.work {
                    Some(Ok(work)) => work.jobs.first().map(|j| j.elapsed(now.wall)),
                    _ => None,
                })
                .fold(0.0, f64::max),
        );
        let thresholds = &self.settings.thresholds;
        m.live
            .set(i64::from(health::liveness(t, now, thresholds).ok));
        m.ready
            .set(i64::from(health::readiness(t, now, thresholds).ok));
        m.draining.set(i64::from(self.draining()));
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
