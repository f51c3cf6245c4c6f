//! `kubectl sidekiq drain POD…`: quiet the pods' Sidekiq and follow them until idle.
//!
//! Through the probe, the drain is the probe's own `/drain` (the one the preStop hook calls),
//! followed through `/status`. Through Redis (`--redis-url`, for pods without the sidecar), the
//! plugin runs the very same drain state machine as the probe, from the outside.
//!
//! Progress is a stream of lines; with `-o json|yaml` those go to stderr and stdout gets one
//! document with each pod's outcome, for scripts that act on it.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use sidekiq_guard::Policy;
use sidekiq_guard::analysis;
use sidekiq_guard::duration::Secs;
use sidekiq_guard::errors::{chain, printable_lines};
use sidekiq_guard::pointer::Pointer as _;
use sidekiq_guard::probe::drain::{Drain, ProcessProgress, State};
use sidekiq_guard::probe::observe::{Scope, Tracker};
use sidekiq_guard::probe::pod::{Hosts, IdentityHost, identity_host};
use sidekiq_guard::redis::Reader;
use sidekiq_guard::status::InjectionStatus;
use sidekiq_guard::verdict;
use tokio::sync::mpsc;

use crate::cli::{Cli, DrainArgs, ReportFormat};
use crate::cluster::{self, Cluster};
use crate::error::Error;
use crate::sources::{self, DrainAnswer};

/// The limit for a pod whose drain budget cannot be computed (its Sidekiq container cannot be
/// told).
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(300);

/// How one pod's drain ended (an element of the `-o json|yaml` document).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PodDrain {
    namespace: String,
    pod: String,
    /// `probe` or `redis`; `none` for a pod whose Sidekiq does not run, which nothing was asked.
    via: &'static str,
    /// Every Sidekiq process of the pod became quiet and idle, or left.
    idle: bool,
    /// The drain's last state ([`State::as_str`]); `timed_out` when the wait ended before the
    /// probe answered; `error` when the drain could not go on (the message says why);
    /// `not_started` for a `Pending` pod whose Sidekiq has not started.
    state: &'static str,
    elapsed_seconds: u64,
    /// Why it is not idle, or why nothing was asked (a pod whose Sidekiq does not run).
    message: Option<String>,
    /// Each process at the end: quiet, busy, running jobs.
    processes: Vec<ProcessProgress>,
}

/// The `-o json|yaml` document.
#[derive(Debug, Serialize)]
struct Drained {
    pods: Vec<PodDrain>,
}

/// One pod to drain: where its progress lines go and how its outcome is told.
#[derive(Clone)]
struct Subject {
    namespace: String,
    pod: String,
    timeout: Duration,
    /// Whether `timeout` is the default (the drain budget) rather than `--timeout`.
    defaulted: bool,
    interval: Duration,
    lines: mpsc::UnboundedSender<String>,
}

impl Subject {
    fn name(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }

    fn say(&self, line: String) {
        // The receiver lives until every task has ended.
        let _ = self.lines.send(line);
    }

    /// How to tell, once it has failed, that this pod's drain failed with an error.
    /// The failure is also a progress line: with several pods, only the first error ends the
    /// run as its message.
    fn failure(&self, via: &'static str) -> impl Fn(&Error) -> PodDrain + Send + 'static {
        let subject = self.clone();
        let started = Instant::now();
        move |error| {
            let message = error.about_pod();
            subject.say(format!("{}: drain failed: {message}", subject.name()));
            let elapsed = started.elapsed();
            subject
                .clone()
                .outcome(via, "error", elapsed, Some(message), Vec::new())
        }
    }

    fn outcome(
        self,
        via: &'static str,
        state: &'static str,
        elapsed: Duration,
        message: Option<String>,
        processes: Vec<ProcessProgress>,
    ) -> PodDrain {
        PodDrain {
            namespace: self.namespace,
            pod: self.pod,
            via,
            idle: state == State::Drained.as_str(),
            state,
            elapsed_seconds: elapsed.as_secs(),
            message,
            processes,
        }
    }
}

/// Why `host`, the host of pod `name`, names no pod of `neighbours` alone.
fn shared_with(neighbours: &[Value], hosts: &Hosts, name: &str, host: &str) -> String {
    neighbours
        .iter()
        .position(|pod| pod_name(pod) == name)
        .and_then(|index| hosts.unresolved.iter().find(|(i, _)| *i == index))
        .map_or_else(
            || format!("another pod has the same hostname {host}"),
            |(_, why)| why.clone(),
        )
}

/// Runs `drain`; returns whether a pod failed to become idle in time.
pub(crate) async fn run(
    cli: &Cli,
    args: &DrainArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool, Error> {
    // Quieting workers is not a thing to do to every namespace at once by a slip of a flag.
    if cli.cluster.all_namespaces {
        return Err(Error::Usage(
            "drain quiets pods of one namespace: name it with -n instead of -A".into(),
        ));
    }
    let cluster = Cluster::connect(&cli.cluster).await?;
    let namespace = cluster.namespace(&cli.cluster);
    let pods = select_pods(
        &cluster,
        &namespace,
        &args.pods,
        cli.cluster.selector.as_deref(),
    )
    .await?;
    let reader = match &args.redis_url {
        Some(url) => Some(std::sync::Arc::new(sources::redis_reader(
            url,
            args.redis_namespace.prefix(),
            None,
        )?)),
        None => None,
    };
    // Through Redis every process of a host is quieted: a host another pod of the namespace
    // shares (a literal DYNO in a template with replicas) would quiet that pod's Sidekiq too.
    // Only pods without the probe go through Redis.
    let some_bare = pods.iter().any(|pod| {
        InjectionStatus::of_pod(pod).is_none()
            && verdict::sidekiq_runs(pod) == verdict::SidekiqRuns::Maybe
    });
    let neighbours = match &reader {
        Some(_) if some_bare => {
            let scope = cluster::Scope::Namespace(namespace.clone());
            cluster.list(cluster::PODS, &scope, None).await?
        }
        _ => Vec::new(),
    };
    let shared = Hosts::index(&neighbours);
    // Each pod drains in its own task and reports lines here, printed as they come.
    let (lines, mut received) = mpsc::unbounded_channel::<String>();
    let mut tasks = tokio::task::JoinSet::new();
    let mut outcomes = Vec::new();
    // The first error ends the run (exit 2) once every pod has had its drain: one pod that
    // cannot be drained does not stop the others, and goes into the document with its reason.
    let mut failure = None;
    // How each running drain task's pod goes into the document if the task fails, or panics
    // (a defect): its entry goes when the task ends, since it holds a sender of `lines`,
    // which must all be dropped for the progress channel to close.
    let mut failures: HashMap<tokio::task::Id, Failure> = HashMap::new();
    for pod in pods {
        let subject = Subject {
            namespace: namespace.clone(),
            pod: pod_name(&pod).to_owned(),
            timeout: args.timeout.unwrap_or_else(|| drain_budget(&pod)),
            defaulted: args.timeout.is_none(),
            interval: args.interval,
            lines: lines.clone(),
        };
        if let Some(outcome) = not_running(&pod, &subject) {
            subject.say(format!(
                "{}: {}: {}",
                subject.name(),
                if outcome.idle { "idle" } else { "not drained" },
                outcome.message.as_deref().unwrap_or_default()
            ));
            outcomes.push(outcome);
            continue;
        }
        // Through the probe where the pod has one, even with --redis-url: the probe is the
        // drain the preStop hook runs, and Redis alone cannot tell the processes of a pod
        // whose hostname is shared or whose DYNO only a Secret holds.
        match (&reader, InjectionStatus::of_pod(&pod)) {
            (_, Some(status)) => {
                let cluster = cluster.clone();
                let failed = subject.failure("probe");
                let task = tasks.spawn(async move {
                    through_probe(&cluster, subject, status.probe_port).await
                });
                failures.insert(task.id(), Box::new(failed));
            }
            (Some(reader), None) => {
                let known = match identity_host(&pod) {
                    IdentityHost::Known(host) => Ok(host),
                    IdentityHost::Unknown(why) => Err(why),
                };
                let host = known.and_then(|host| {
                    if shared.is_shared(&host) {
                        Err(shared_with(&neighbours, &shared, &subject.pod, &host))
                    } else {
                        Ok(host)
                    }
                });
                let host = match host {
                    Ok(host) => host,
                    Err(why) => {
                        let error = Error::Probe {
                            pod: subject.name(),
                            message: format!(
                                "cannot tell its Sidekiq processes in Redis: {why}; once sidekiq-guard's probe is injected, it drains the pod's own processes"
                            ),
                        };
                        outcomes.push(subject.failure("redis")(&error));
                        failure.get_or_insert(error);
                        continue;
                    }
                };
                let reader = reader.clone();
                let failed = subject.failure("redis");
                let task = tasks.spawn(async move { through_redis(&reader, subject, &host).await });
                failures.insert(task.id(), Box::new(failed));
            }
            (None, None) => {
                let message = if sidekiq_guard::analysis::is_sidekiq(&pod) {
                    "no sidekiq-guard probe (not injected); use --redis-url to quiet it through Redis"
                } else {
                    "no sidekiq-guard probe, and no container runs sidekiq as far as its spec shows (set the sidekiq-guard.io/container annotation if one does); with --redis-url its host's processes are quieted through Redis"
                };
                let error = Error::Probe {
                    pod: subject.name(),
                    message: message.to_owned(),
                };
                outcomes.push(subject.failure("none")(&error));
                failure.get_or_insert(error);
            }
        }
    }
    drop(lines);
    // With a document to print, stdout holds only the document.
    let progress: &mut dyn Write = match args.report.output {
        ReportFormat::Table | ReportFormat::Wide => &mut *out,
        ReportFormat::Json | ReportFormat::Yaml => &mut *err,
    };
    loop {
        tokio::select! {
            line = received.recv() => match line {
                // Progress lines quote Redis records: job classes, identities, errors.
                Some(line) => writeln!(progress, "{}", printable_lines(line)).map_err(Error::Output)?,
                None if tasks.is_empty() => break,
                None => {}
            },
            done = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let (id, error) = match done {
                    Some(Ok((id, Ok(outcome)))) => {
                        failures.remove(&id);
                        outcomes.push(outcome);
                        continue;
                    }
                    Some(Ok((id, Err(error)))) => (id, error),
                    Some(Err(joined)) => (joined.id(), Error::Task(joined)),
                    None => continue,
                };
                outcomes.extend(failures.remove(&id).map(|failed| failed(&error)));
                failure.get_or_insert(error);
            }
        }
        progress.flush().map_err(Error::Output)?;
    }
    let idle = outcomes.iter().all(|outcome| outcome.idle);
    outcomes.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    // The document tells every pod's outcome, a failed one's too; the error then ends the run.
    write_document(&Drained { pods: outcomes }, args.report.output, out)?;
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(!idle)
}

/// Makes a pod's `error` outcome of the error that ended its drain ([`Subject::failure`]).
type Failure = Box<dyn Fn(&Error) -> PodDrain + Send>;

/// Prints the outcomes for `-o json|yaml`; the table formats printed them as progress.
fn write_document(
    drained: &Drained,
    format: ReportFormat,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let text = match format {
        ReportFormat::Table | ReportFormat::Wide => return Ok(()),
        ReportFormat::Json => serde_json::to_string_pretty(drained)
            .map(|text| text + "\n")
            .map_err(|e| Error::Output(e.into()))?,
        ReportFormat::Yaml => serde_saphyr::to_string(drained)
            .map_err(|e| Error::Manifest(crate::manifests::ManifestError::WriteYaml(e)))?,
    };
    out.write_all(text.as_bytes()).map_err(Error::Output)
}

async fn select_pods(
    cluster: &Cluster,
    namespace: &str,
    names: &[String],
    selector: Option<&str>,
) -> Result<Vec<Value>, Error> {
    if !names.is_empty() {
        let mut pods = Vec::with_capacity(names.len());
        for name in names {
            match cluster
                .get_object(cluster::PODS, Some(namespace), name)
                .await?
            {
                Some(pod) => pods.push(pod),
                None => {
                    return Err(Error::Usage(format!("pod {namespace}/{name} not found")));
                }
            }
        }
        return Ok(pods);
    }
    let Some(selector) = selector else {
        return Err(Error::Usage(
            "name the pods to drain, or select them with -l".to_owned(),
        ));
    };
    let scope = cluster::Scope::Namespace(namespace.to_owned());
    let pods: Vec<Value> = cluster
        .list(cluster::PODS, &scope, Some(selector))
        .await?
        .into_iter()
        .filter(sidekiq_guard::analysis::is_sidekiq)
        .collect();
    if pods.is_empty() {
        return Err(Error::Usage(format!(
            "no Sidekiq pod in namespace {namespace} matches -l {selector}"
        )));
    }
    Ok(pods)
}

/// The outcome of a pod whose Sidekiq does not run ([`verdict::sidekiq_runs`]), told without
/// asking its probe or Redis: one whose containers have exited runs no job and is idle; one not
/// started has nothing to quiet yet, and is not drained.
fn not_running(pod: &Value, subject: &Subject) -> Option<PodDrain> {
    let phase = pod
        .at("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    let (state, message) = match verdict::sidekiq_runs(pod) {
        verdict::SidekiqRuns::Maybe => return None,
        verdict::SidekiqRuns::NotStarted => (
            "not_started",
            format!(
                "pod is {phase}: its Sidekiq has not started, so there is nothing to quiet yet"
            ),
        ),
        verdict::SidekiqRuns::Exited => (
            State::Drained.as_str(),
            format!("pod is {phase}: its containers have exited: Sidekiq runs no job"),
        ),
    };
    Some(
        subject
            .clone()
            .outcome("none", state, Duration::ZERO, Some(message), Vec::new()),
    )
}

fn pod_name(pod: &Value) -> &str {
    pod.at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The pod's drain budget ([`analysis::pod_drain_budget`] under the default policy: the plugin
/// cannot read the webhook's), else [`FALLBACK_TIMEOUT`].
fn drain_budget(pod: &Value) -> Duration {
    analysis::pod_drain_budget(pod, &Policy::default())
        .map_or(FALLBACK_TIMEOUT, Duration::from_secs)
}

/// Added to a defaulted wait through the probe: time for its answer to travel back through the
/// API server. The probe's drain starts when the request reaches it and ends at its budget, so
/// a wait of the budget alone would always give up first, and report a drain that ended in its
/// last round trip as timed out.
const ANSWER_ALLOWANCE: Duration = Duration::from_secs(5);

/// Asks the probe to drain and waits for its answer, showing progress from `/status` meanwhile.
///
/// The decision is the `/drain` answer's, which belongs to this request; `/status` may still
/// show an earlier drain (a previous `drain`, the preStop hook's) until the probe starts this
/// one, so a report with that drain's start time is not shown as progress. The probe bounds each
/// drain by its own budget; when that runs out with jobs still running and the wait (`timeout`)
/// leaves time, the drain is asked for again — Sidekiq stays quiet, so this only waits longer.
async fn through_probe(cluster: &Cluster, subject: Subject, port: u16) -> Result<PodDrain, Error> {
    let (namespace, pod) = (subject.namespace.as_str(), subject.pod.as_str());
    let (name, interval) = (subject.name(), subject.interval);
    let timeout = if subject.defaulted {
        subject.timeout + ANSWER_ALLOWANCE
    } else {
        subject.timeout
    };
    let started = Instant::now();
    // Start times of drains that are not this one's outcome.
    let mut earlier: Vec<f64> = match sources::probe_status(cluster, namespace, pod, port).await {
        // A running drain is joined by the probe: it is this one.
        Ok(status) if status.drain.drain_state() != Some(State::Draining) => {
            status.drain.started_at.into_iter().collect()
        }
        // A probe of another release: its /drain answer would not read either.
        Err(error @ Error::ProbeSchema { .. }) => return Err(error),
        _ => Vec::new(),
    };
    subject.say(format!(
        "{name}: quieting through its probe (waiting up to {})",
        Secs(timeout.as_secs())
    ));
    let deadline = tokio::time::Instant::from_std(started) + timeout;
    let mut asked = ask_to_drain(cluster, namespace, pod, port, timeout, Duration::ZERO);
    let mut ticker = tokio::time::interval(interval);
    // A slow /status read delays the next one rather than bunching them up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    // The processes as last seen, for an outcome the probe did not give.
    let mut seen = Vec::new();
    // Why the probe did not answer, if the last attempt failed: kept for the document, where a
    // probe never reached must not read like a drain that ran out of time.
    let mut last_error: Option<String> = None;
    let (state, message, processes) = loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                let mut message = format!("timed out after {}", Secs(started.elapsed().as_secs()));
                if let Some(error) = &last_error {
                    message = format!("{message}; the last attempt to reach the probe failed: {error}");
                }
                subject.say(format!("{name}: {message}"));
                break ("timed_out", Some(message), seen);
            }
            answer = &mut asked => {
                // Every arm ends the wait or asks anew: a finished request is never polled again.
                let elapsed = started.elapsed();
                let left = timeout.saturating_sub(elapsed);
                let report = match answer {
                    Ok(Ok(DrainAnswer::Ended(report))) => report,
                    Ok(Ok(DrainAnswer::Pending(why))) => {
                        subject.say(format!("{name}: {why}; asking again"));
                        asked = ask_to_drain(cluster, namespace, pod, port, left, interval);
                        continue;
                    }
                    Ok(Err(error)) if transient(&error) => {
                        let error = sidekiq_guard::errors::chain(&error);
                        subject.say(format!("{name}: {error}; asking again"));
                        last_error = Some(error);
                        asked = ask_to_drain(cluster, namespace, pod, port, left, interval);
                        continue;
                    }
                    Ok(Err(error)) => return Err(error),
                    Err(joined) => return Err(Error::Task(joined)),
                };
                match report.drain_state() {
                    Some(State::Drained) => {
                        subject.say(format!("{name}: idle after {}", Secs(elapsed.as_secs())));
                        break (State::Drained.as_str(), None, report.processes);
                    }
                    // Asking again only helps if the wait outlasts another poll, and only a
                    // `--timeout` longer than the budget asks for it: the default wait is the
                    // budget and the time for this answer.
                    Some(State::BudgetExhausted) if left > interval && !subject.defaulted => {
                        subject.say(format!(
                            "{name}: the probe's drain budget of {} ran out with jobs running; asking again for the {} left of the wait",
                            Secs(report.budget_secs as u64),
                            Secs(left.as_secs().max(1))
                        ));
                        earlier.extend(report.started_at);
                        seen = report.processes;
                        asked = ask_to_drain(cluster, namespace, pod, port, left, Duration::ZERO);
                    }
                    state => {
                        let message = report.message.unwrap_or_default();
                        subject.say(format!(
                            "{name}: not idle after {}: {message}",
                            Secs(elapsed.as_secs()),
                        ));
                        let state = state.map_or("timed_out", State::as_str);
                        break (state, Some(message), report.processes);
                    }
                }
            }
            _ = ticker.tick() => {
                match sources::probe_status(cluster, namespace, pod, port).await {
                    Ok(status) if status.drain.started_at.is_some_and(|at| earlier.contains(&at)) => {}
                    Ok(status) => {
                        last_error = None;
                        subject.say(progress_line(
                            &name,
                            &status.drain.state,
                            &status.drain.processes,
                            started.elapsed(),
                        ));
                        seen = status.drain.processes;
                    }
                    Err(error) => {
                        let error = sidekiq_guard::errors::chain(&error);
                        subject.say(format!("{name}: {error}"));
                        last_error = Some(error);
                    }
                }
            }
        }
    };
    asked.abort();
    Ok(subject.outcome("probe", state, started.elapsed(), message, processes))
}

/// A failure that may pass: the API server or the pod briefly unreachable, or slow.
fn transient(error: &Error) -> bool {
    match error {
        Error::Unreachable { .. } | Error::ApiTimeout { .. } | Error::Timeout { .. } => true,
        Error::Api { code, .. } => *code >= 500,
        _ => false,
    }
}

/// Calls the probe's `/drain` in the background after `delay`; its answer is the drain's
/// outcome.
fn ask_to_drain(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    port: u16,
    wait: Duration,
    delay: Duration,
) -> tokio::task::JoinHandle<Result<DrainAnswer, Error>> {
    let (cluster, namespace, pod) = (cluster.clone(), namespace.to_owned(), pod.to_owned());
    // The probe answers at its budget at the latest; the margin covers the proxy's round trip.
    let limit = wait + Duration::from_secs(15);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        sources::probe_drain(&cluster, &namespace, &pod, port, limit).await
    })
}

/// Quiets every process of `host` through Redis and follows them with the probe's own drain
/// state machine.
async fn through_redis(reader: &Reader, subject: Subject, host: &str) -> Result<PodDrain, Error> {
    let name = subject.name();
    let origin = Instant::now();
    let clock = sidekiq_guard::redis::system_clock();
    let mut tracker = Tracker::new(Scope::Host(host.to_owned()), Duration::from_secs(5));
    let mut drain = Drain::start(clock(), subject.timeout, None);
    subject.say(format!(
        "{name}: quieting through Redis (processes of host {host}, budget {})",
        Secs(subject.timeout.as_secs())
    ));
    loop {
        // Like the probe's, the drain outlasts a Redis hiccup (a failover, a timeout): the
        // tracker records the failure and the state machine retries until its budget.
        if let Err(error) = reader.refresh(&mut tracker, true, &clock).await {
            // Never read yet, nothing was quieted: a Redis that refuses the URL (credentials,
            // ACL, database number), whose host does not resolve or whose port is closed is a
            // wrong URL (or a port-forward not running) far likelier than a failover, and
            // waiting out the budget cannot fix a typo. The probe, inside the pod at preStop
            // time, keeps waiting instead: there Redis is known good and an outage is real.
            if tracker.redis().last_ok.is_none() {
                return Err(error.into());
            }
            subject.say(format!(
                "{name}: {}, retrying: {}",
                tracker.redis().failure(),
                chain(&error)
            ));
        }
        for identity in drain.step(&tracker, clock()) {
            match reader.quiet(&identity).await {
                Ok(()) => drain.signalled(&identity, clock()),
                // Not marked signalled: the next step asks again. Said once per distinct
                // error, and in the drain's outcome.
                Err(error) => {
                    let error = chain(&error);
                    if drain.signal_failed(&identity, &error) {
                        subject.say(format!("{name}: cannot quiet {identity} yet: {error}"));
                    }
                }
            }
        }
        let elapsed = origin.elapsed();
        let found_nothing = drain.state() == State::Drained && drain.progress().is_empty();
        if !found_nothing {
            subject.say(progress_line(
                &name,
                drain.state().as_str(),
                drain.progress(),
                elapsed,
            ));
        }
        let message = match drain.state() {
            State::Draining => {
                tokio::time::sleep(subject.interval).await;
                continue;
            }
            // Idle because nothing was there: from outside the pod, more likely the wrong Redis
            // or key prefix than a Sidekiq that already left. Nothing was quieted; say so.
            State::Drained if found_nothing => {
                let message = format!(
                    "no Sidekiq process of host {host} in Redis, so nothing was quieted: check --redis-url (and its database), --redis-namespace, and that Sidekiq runs in the pod"
                );
                subject.say(format!("{name}: drain failed: {message}"));
                return Ok(subject.outcome("redis", "error", elapsed, Some(message), Vec::new()));
            }
            State::Drained => {
                subject.say(format!("{name}: idle after {}", Secs(elapsed.as_secs())));
                None
            }
            State::BudgetExhausted | State::Unquietable => {
                subject.say(format!(
                    "{name}: not idle after {}: {}",
                    Secs(elapsed.as_secs()),
                    drain.message()
                ));
                Some(drain.message().to_owned())
            }
        };
        let processes = drain.progress().to_vec();
        return Ok(subject.outcome("redis", drain.state().as_str(), elapsed, message, processes));
    }
}

/// `shop/worker-x: draining, busy 2 — ReportJob (jid) 80s, MailJob (jid) 3s [41s]`.
fn progress_line(
    name: &str,
    state: &str,
    processes: &[ProcessProgress],
    elapsed: Duration,
) -> String {
    // In u64: two u32s read from Redis or a probe may not fit one.
    let busy: u64 = processes.iter().filter_map(|p| p.busy).map(u64::from).sum();
    let quiet = processes.iter().filter(|p| p.quiet == Some(true)).count();
    let jobs: Vec<&str> = processes
        .iter()
        .flat_map(|p| p.jobs.iter().map(String::as_str))
        .collect();
    let mut line = format!(
        "{name}: {state}, {quiet}/{} quiet, busy {busy}",
        processes.len()
    );
    if !jobs.is_empty() {
        line.push_str(" — ");
        line.push_str(&jobs.join(", "));
    }
    line.push_str(&format!(" [{}]", Secs(elapsed.as_secs())));
    line
}
