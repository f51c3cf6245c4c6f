//! `kubectl sidekiq status`: every Sidekiq pod joined with its processes — from each pod's probe
//! through the API server's pod proxy, or from Redis directly with `--redis-url`.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use sidekiq_guard::Policy;
use sidekiq_guard::duration::Secs;
use sidekiq_guard::pointer::Pointer as _;
use sidekiq_guard::probe::pod::Hosts;
use sidekiq_guard::probe::report::{self, DrainReport, ProcessReport};
use sidekiq_guard::status::InjectionStatus;
use sidekiq_guard::verdict::{self, Deletion, RunningJob, Shutdown, Verdict};
use sidekiq_guard::{analysis, timestamp};
use tokio::sync::Semaphore;

use crate::cli::{Cli, ReportFormat, StatusArgs};
use crate::cluster::{self, Cluster, Scope};
use crate::error::Error;
use crate::sources;
use crate::table::{self, Tone, plain};

/// A Sidekiq pod and what is known of its processes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodRow {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// `Running`, `Pending`… or `Terminating`.
    pub(crate) phase: String,
    pub(crate) node: Option<String>,
    pub(crate) age_secs: Option<u64>,
    /// Whether sidekiq-guard injected it (it has the status annotation).
    pub(crate) injected: bool,
    pub(crate) probe_port: Option<u16>,
    /// The longest job the pod declares, else the policy default it was injected with, seconds.
    pub(crate) declared_longest_job_secs: Option<u64>,
    /// `declared_longest_job_secs` is the policy's default: the pod declares none.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) longest_job_is_default: bool,
    /// `probe`, `redis`, or `null` when nothing could be read.
    pub(crate) source: Option<&'static str>,
    /// Why its processes are unknown.
    pub(crate) problem: Option<String>,
    pub(crate) processes: Vec<ProcessReport>,
    pub(crate) drain: Option<DrainReport>,
    /// For a terminating pod: seconds before SIGKILL, and the verdict.
    pub(crate) terminating: Option<Terminating>,
    /// Whether its containers run (its probe can answer).
    #[serde(skip)]
    pub(crate) running: bool,
    /// `status.phase` (`phase` says `Terminating` once deletion has begun).
    #[serde(skip)]
    pub(crate) pod_phase: String,
    /// Whether its running jobs were all read, so that none running means idle.
    #[serde(skip)]
    pub(crate) jobs_seen: bool,
}

/// A pod on its way out.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Terminating {
    pub(crate) deletion_timestamp: String,
    pub(crate) seconds_left: u64,
    pub(crate) verdict: Verdict,
    /// The verdict in words.
    pub(crate) summary: String,
}

/// One refresh of `status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Snapshot {
    pub(crate) pods: Vec<PodRow>,
    /// Processes in Redis whose hostname is no pod of the cluster (with `--redis-url -A`).
    pub(crate) orphans: Vec<ProcessReport>,
    /// Unix seconds when it was taken.
    pub(crate) taken_at: f64,
}

/// Runs `status`, once or, with `--watch`, until interrupted. Pods at risk are reported, not an
/// error: the exit status stays 0.
pub(crate) async fn run(
    cli: &Cli,
    args: &StatusArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    color: bool,
) -> Result<(), Error> {
    let cluster = match &args.redis_url {
        // With Redis, the cluster is optional: like sidekiqmon, status works without one.
        Some(_) => match Cluster::connect(&cli.cluster).await {
            Ok(cluster) => Some(cluster),
            // A context or file the user named and that cannot be used is a mistake to report,
            // not a reason to fall back.
            Err(named @ Error::Kubeconfig { .. })
                if cli.cluster.context.is_some() || cli.cluster.kubeconfig.is_some() =>
            {
                return Err(named);
            }
            Err(Error::Kubeconfig { .. }) => {
                writeln!(
                    err,
                    "no kubeconfig: showing Redis processes by hostname only"
                )
                .map_err(Error::Output)?;
                None
            }
            Err(unusable @ Error::Client { .. }) => {
                hostnames_only(err, &unusable)?;
                None
            }
            Err(other) => return Err(other),
        },
        None => Some(Cluster::connect(&cli.cluster).await?),
    };
    let redis = sources::one_shot_reader(
        args.redis_url.as_deref(),
        args.redis_namespace.prefix(),
        &cli.cluster.request_timeout(),
    )?;
    let scope = cluster.as_ref().map(|c| c.scope(&cli.cluster));
    // One handler for the whole watch: a Ctrl-C while a snapshot loads ends it too (a signal
    // arriving while no `ctrl_c` future is polled would be lost). Without --watch, Ctrl-C keeps
    // its default effect.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    // Once a watch has shown a snapshot, a failed refresh (the API server restarting, a Redis
    // blip) is said on stderr and retried at the next interval: the screen keeps the last one.
    let mut shown = false;
    loop {
        let gathered = tokio::select! {
            snapshot = gather(
                cluster.as_ref(),
                scope.as_ref(),
                cli.cluster.selector.as_deref(),
                redis.as_ref(),
                args,
                err,
            ) => snapshot,
            _ = &mut interrupted, if args.watch => return Ok(()),
        };
        match gathered {
            Ok(snapshot) => {
                let text = render(&snapshot, args.report.output, scope.as_ref(), color)?;
                if args.watch && std::io::stdout().is_terminal() {
                    // Redraw in place: home the cursor and clear the screen.
                    out.write_all(b"\x1b[H\x1b[2J").map_err(Error::Output)?;
                } else if shown {
                    // Snapshots on a pipe: a YAML stream needs its document separator.
                    let separator: &[u8] = match args.report.output {
                        ReportFormat::Yaml => b"---\n",
                        _ => b"\n",
                    };
                    out.write_all(separator).map_err(Error::Output)?;
                }
                out.write_all(text.as_bytes()).map_err(Error::Output)?;
                // On stderr, as kubectl says "No resources found": a script reading the table
                // gets no line that is not a pod.
                if snapshot.pods.is_empty()
                    && matches!(args.report.output, ReportFormat::Table | ReportFormat::Wide)
                {
                    writeln!(err, "No Sidekiq pods found.").map_err(Error::Output)?;
                }
                shown = true;
            }
            Err(error) if args.watch && shown => {
                writeln!(
                    err,
                    "error: {} (retrying every {})",
                    sidekiq_guard::errors::chain(&error),
                    sidekiq_guard::duration::format_millis(
                        u64::try_from(args.interval.as_millis()).unwrap_or(u64::MAX)
                    )
                )
                .map_err(Error::Output)?;
            }
            Err(error) => return Err(error),
        }
        if !args.watch {
            return Ok(());
        }
        out.flush().map_err(Error::Output)?;
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {}
            _ = &mut interrupted => return Ok(()),
        }
    }
}

async fn gather(
    cluster: Option<&Cluster>,
    scope: Option<&Scope>,
    selector: Option<&str>,
    redis: Option<&sidekiq_guard::redis::Reader>,
    args: &StatusArgs,
    err: &mut dyn Write,
) -> Result<Snapshot, Error> {
    let now = now();
    let (listed, cluster) = match (cluster, scope) {
        (Some(cluster), Some(scope)) => match cluster.list(cluster::PODS, scope, selector).await {
            Ok(listed) => (listed, Some(cluster)),
            // Redis does not need the cluster: like sidekiqmon, go on without it.
            Err(down @ Error::Unreachable { .. }) if redis.is_some() => {
                hostnames_only(err, &down)?;
                (Vec::new(), None)
            }
            Err(other) => return Err(other),
        },
        _ => (Vec::new(), None),
    };
    let (mut pods, others): (Vec<Value>, Vec<Value>) =
        listed.into_iter().partition(analysis::is_sidekiq);
    let mut rows: Vec<PodRow> = pods.iter().map(|pod| base_row(pod, now)).collect();
    let mut orphans = Vec::new();
    match redis {
        Some(reader) => {
            let processes = sources::all_processes(reader).await?;
            let orphans_seen = match cluster {
                None => Orphans::Rows,
                // Only with every pod of the cluster in view is a hostname nobody's: another
                // namespace's pods, or pods outside -l, are not orphans.
                Some(_) if matches!(scope, Some(Scope::All)) && selector.is_none() => {
                    Orphans::Listed
                }
                Some(_) => Orphans::Unknowable,
            };
            orphans = join_redis(
                Listing {
                    rows: &mut rows,
                    pods: &mut pods,
                    others,
                    now,
                },
                processes,
                orphans_seen,
            );
            for (row, pod) in rows.iter_mut().zip(&pods) {
                let idle = row.problem.is_none()
                    && row.processes.is_empty()
                    && verdict::idle_without_processes(pod);
                if idle {
                    // As through the probe: said why, and known to run no job.
                    row.problem = Some(if row.running {
                        "its containers have exited".to_owned()
                    } else {
                        format!("pod is {}", row.pod_phase)
                    });
                } else if row.problem.is_none() && row.processes.is_empty() {
                    row.problem = Some(
                        "no Sidekiq process of this pod in Redis: is it the Redis (database, \
                         --redis-namespace) this pod uses, and has Sidekiq started?"
                            .to_owned(),
                    );
                }
                row.jobs_seen = idle
                    || (row.problem.is_none()
                        && row.processes.iter().all(ProcessReport::jobs_known));
            }
        }
        None => {
            if let Some(cluster) = cluster {
                fetch_probes(cluster, &mut rows, args.concurrency, err).await?;
            }
        }
    }
    // Seconds left count from when the data was read, not from before the pod list and the
    // probes (which can take seconds on a large cluster).
    let read_at = self::now();
    for (row, pod) in rows
        .iter_mut()
        .zip(pods.iter().map(Some).chain(std::iter::repeat(None)))
    {
        row.terminating = pod.and_then(|pod| terminating(pod, row, read_at));
    }
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(Snapshot {
        pods: rows,
        orphans,
        taken_at: now,
    })
}

/// Says why the cluster is left out of a `--redis-url` snapshot.
fn hostnames_only(err: &mut dyn Write, why: &Error) -> Result<(), Error> {
    writeln!(
        err,
        "{}: showing Redis processes by hostname only",
        sidekiq_guard::errors::chain(why)
    )
    .map_err(Error::Output)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.at(pointer).and_then(Value::as_str)
}

fn base_row(pod: &Value, now: f64) -> PodRow {
    let status = InjectionStatus::of_pod(pod);
    let longest = verdict::Longest::of_pod(pod);
    let age_secs = text(pod, "/metadata/creationTimestamp")
        .and_then(timestamp::parse)
        .map(|created| (now as i64 - created).max(0) as u64);
    PodRow {
        namespace: text(pod, "/metadata/namespace")
            .unwrap_or_default()
            .to_owned(),
        name: text(pod, "/metadata/name").unwrap_or_default().to_owned(),
        phase: verdict::display_phase(pod).to_owned(),
        running: verdict::containers_run(pod),
        pod_phase: text(pod, "/status/phase").unwrap_or("Unknown").to_owned(),
        jobs_seen: false,
        node: text(pod, "/spec/nodeName").map(str::to_owned),
        age_secs,
        injected: status.is_some(),
        probe_port: status.as_ref().map(|s| s.probe_port),
        declared_longest_job_secs: longest.map(|l| l.secs),
        longest_job_is_default: longest.is_some_and(|l| !l.declared),
        source: None,
        problem: None,
        processes: Vec::new(),
        drain: None,
        terminating: None,
    }
}

fn terminating(pod: &Value, row: &PodRow, now: f64) -> Option<Terminating> {
    let deletion = Deletion::of_pod(pod, now)?;
    let jobs: Vec<RunningJob<'_>> = row
        .processes
        .iter()
        .flat_map(|p| &p.jobs)
        .map(|j| RunningJob {
            class: &j.class,
            elapsed_secs: j.elapsed_secs,
        })
        .collect();
    // The cluster's policy is the webhook's; Sidekiq's own default -t is the default policy's.
    let shutdown = Shutdown::of_pod(pod, &Policy::default());
    let verdict = verdict::terminating(
        &deletion,
        shutdown,
        verdict::Longest::of_pod(pod),
        row.jobs_seen.then_some(jobs.as_slice()),
    );
    let summary = match (&verdict, &row.problem) {
        (Verdict::Unseen { .. }, Some(problem)) => format!("{verdict} ({problem})"),
        _ => verdict.to_string(),
    };
    Some(Terminating {
        deletion_timestamp: deletion.timestamp.to_owned(),
        seconds_left: deletion.left_secs.max(0.0) as u64,
        summary,
        verdict,
    })
}

/// Asks every injected, running pod's probe for `/status`, at most `concurrency` at a time.
async fn fetch_probes(
    cluster: &Cluster,
    rows: &mut [PodRow],
    concurrency: u16,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let permits = Arc::new(Semaphore::new(usize::from(concurrency)));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut wanted = 0;
    for (index, row) in rows.iter_mut().enumerate() {
        let Some(port) = row.probe_port else {
            row.problem = Some(
                "probe not injected: created before sidekiq-guard was installed, or opted out"
                    .to_owned(),
            );
            continue;
        };
        // Its containers never ran or have exited: no probe to ask, and no job running.
        if !row.running {
            row.problem = Some(format!("pod is {}", row.pod_phase));
            // Containers that do not run run no job: `verdict::idle_without_processes` holds.
            row.jobs_seen = true;
            continue;
        }
        wanted += 1;
        let (cluster, permits, done) = (cluster.clone(), permits.clone(), done.clone());
        let (namespace, name) = (row.namespace.clone(), row.name.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let answer = sources::probe_status(&cluster, &namespace, &name, port).await;
            done.fetch_add(1, Ordering::Relaxed);
            (index, answer)
        });
    }
    let (mut failures, mut first_failure) = (0, None);
    let progress = std::io::stderr().is_terminal() && wanted > 20;
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            next = tasks.join_next() => {
                let Some(joined) = next else { break };
                let Ok((index, answer)) = joined else { continue };
                let row = &mut rows[index];
                match answer {
                    Ok(status) => {
                        row.jobs_seen = status.jobs_known();
                        if status.redis.reachable != Some(true) {
                            let why = status.redis.error.as_deref().unwrap_or("no read yet");
                            row.problem = Some(format!("its probe cannot read Redis: {why}"));
                        }
                        row.source = Some("probe");
                        row.processes = status.processes;
                        row.drain = Some(status.drain);
                    }
                    Err(problem) => {
                        row.problem =
                            Some(sidekiq_guard::errors::chain(&problem).replace("\n  ", "; "));
                        // Refused or cut off for one pod (RBAC of one namespace, one
                        // connection): that pod's problem. The command fails only when no pod
                        // could be asked.
                        if matches!(problem, Error::Forbidden { .. } | Error::Unreachable { .. }) {
                            failures += 1;
                            first_failure.get_or_insert(problem);
                        }
                    }
                }
            }
            _ = ticker.tick(), if progress => {
                let _ = write!(err, "\rreading probes: {}/{wanted}", done.load(Ordering::Relaxed));
            }
        }
    }
    if progress {
        let _ = write!(err, "\r\x1b[K");
    }
    match first_failure {
        Some(failure) if failures == wanted => Err(failure),
        _ => Ok(()),
    }
}

/// What becomes of Redis processes whose hostname is no listed pod's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Orphans {
    /// Every pod of the cluster was listed: they are orphans.
    Listed,
    /// Only some pods were listed (one namespace, or `-l`): they are none of this view's.
    Unknowable,
    /// No cluster: each hostname becomes a row of its own, like `sidekiqmon`.
    Rows,
}

/// The pods of a snapshot: the Sidekiq pods with their rows, and the other listed pods.
struct Listing<'a> {
    rows: &'a mut Vec<PodRow>,
    /// The pods of `rows`, index for index.
    pods: &'a mut Vec<Value>,
    /// Listed pods whose containers do not look like Sidekiq.
    others: Vec<Value>,
    now: f64,
}

/// Joins processes read from Redis to pods by hostname; returns the orphans. A pod whose
/// containers did not look like Sidekiq (a wrapper script, say) but whose hostname has
/// processes in Redis does run Sidekiq: it gets its row rather than its processes being
/// called orphans.
fn join_redis(
    listing: Listing<'_>,
    processes: Vec<ProcessReport>,
    orphans: Orphans,
) -> Vec<ProcessReport> {
    let Listing {
        rows,
        pods,
        others,
        now,
    } = listing;
    let hosts = Hosts::index(pods.iter());
    for (index, why) in &hosts.unresolved {
        rows[*index].problem = Some(format!("its processes cannot be told in Redis: {why}"));
    }
    let other_hosts = Hosts::index(&others);
    // Pods that did not look like Sidekiq get a row once a process of theirs turns up.
    let mut other_rows: HashMap<usize, usize> = HashMap::new();
    let mut unmatched: BTreeMap<String, Vec<ProcessReport>> = BTreeMap::new();
    for process in processes {
        let host = process.host().unwrap_or_default().to_owned();
        // A Sidekiq pod of the host keeps its processes (another namespace's, with -A).
        let index = match (hosts.pod(&host), other_hosts.pod(&host)) {
            (Some(index), _) => Some(index),
            // Several pods' processes: no pod's, and no orphans either.
            _ if hosts.is_shared(&host) || other_hosts.is_shared(&host) => continue,
            (None, Some(other)) => Some(*other_rows.entry(other).or_insert_with(|| {
                rows.push(base_row(&others[other], now));
                pods.push(others[other].clone());
                rows.len() - 1
            })),
            (None, None) => None,
        };
        match index {
            Some(index) => {
                rows[index].source = Some("redis");
                rows[index].processes.push(process);
            }
            None => unmatched.entry(host).or_default().push(process),
        }
    }
    // A listed pod whose hostname cannot be read may own any unmatched process: none is an
    // orphan for sure then (that pod's row says why its processes cannot be told).
    let hostless = !hosts.unresolved.is_empty() || !other_hosts.unresolved.is_empty();
    match orphans {
        Orphans::Listed if hostless => return Vec::new(),
        Orphans::Listed => return unmatched.into_values().flatten().collect(),
        Orphans::Unknowable => return Vec::new(),
        Orphans::Rows => {}
    }
    // No cluster: one row per hostname.
    for (host, processes) in unmatched {
        rows.push(PodRow {
            namespace: String::new(),
            name: host,
            phase: "-".to_owned(),
            node: None,
            age_secs: None,
            injected: false,
            probe_port: None,
            declared_longest_job_secs: None,
            longest_job_is_default: false,
            source: Some("redis"),
            problem: None,
            processes,
            drain: None,
            terminating: None,
            running: false,
            pod_phase: "-".to_owned(),
            jobs_seen: false,
        });
    }
    Vec::new()
}

fn render(
    snapshot: &Snapshot,
    format: ReportFormat,
    scope: Option<&Scope>,
    color: bool,
) -> Result<String, Error> {
    match format {
        ReportFormat::Json => serde_json::to_string_pretty(snapshot)
            .map(|s| s + "\n")
            .map_err(|e| Error::Output(e.into())),
        ReportFormat::Yaml => serde_saphyr::to_string(snapshot)
            .map_err(|e| Error::Manifest(crate::manifests::ManifestError::WriteYaml(e))),
        ReportFormat::Table | ReportFormat::Wide => Ok(table_text(
            snapshot,
            format == ReportFormat::Wide,
            scope,
            color,
        )),
    }
}

fn table_text(snapshot: &Snapshot, wide: bool, scope: Option<&Scope>, color: bool) -> String {
    let namespaces = !matches!(scope, Some(Scope::Namespace(_)));
    let mut header = Vec::new();
    if namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "POD",
        "PHASE",
        "AGE",
        "STATE",
        "BUSY",
        "BEAT",
        "LONGEST JOB",
        "SIGKILL IN",
        "VERDICT",
    ]);
    if wide {
        header.extend(["NODE", "PROCESSES", "RSS", "DRAIN"]);
    }
    let rows = snapshot
        .pods
        .iter()
        .map(|row| {
            let mut cells = Vec::new();
            if namespaces {
                cells.push(plain(&row.namespace));
            }
            cells.extend(pod_cells(row));
            if wide {
                // Saturating: the figures come from the probe's JSON and may be anything.
                let rss = row
                    .processes
                    .iter()
                    .filter_map(|p| p.rss_kb)
                    .fold(0, u64::saturating_add);
                cells.extend([
                    plain(row.node.as_deref().unwrap_or("-")),
                    plain(row.processes.len().to_string()),
                    plain(if rss > 0 {
                        // Rounded up: a process is never shown using nothing.
                        format!("{}Mi", rss.div_ceil(1024))
                    } else {
                        "-".into()
                    }),
                    plain(
                        row.drain
                            .as_ref()
                            .map_or("-".to_owned(), |d| d.state.clone()),
                    ),
                ]);
            }
            cells
        })
        .collect();
    let mut text = table::render(&header, rows, color);
    if !snapshot.orphans.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str("Processes in Redis whose hostname is no pod of the cluster:\n");
        let rows = snapshot
            .orphans
            .iter()
            .map(|p| {
                vec![
                    plain(&p.identity),
                    plain(&p.state),
                    plain(busy(std::slice::from_ref(p))),
                    plain(
                        p.beat_age_secs
                            .map_or("-".into(), |a| Secs(a as u64).to_string()),
                    ),
                ]
            })
            .collect();
        text.push_str(&table::render(
            &["IDENTITY", "STATE", "BUSY", "BEAT"],
            rows,
            color,
        ));
    }
    text
}

fn pod_cells(row: &PodRow) -> Vec<(String, Tone)> {
    let age = row.age_secs.map_or("-".to_owned(), human_age);
    let (state, tone) = state(row);
    let beat = row
        .processes
        .iter()
        .filter_map(|p| p.beat_age_secs)
        .reduce(f64::max)
        .map_or("-".to_owned(), |a| Secs(a as u64).to_string());
    let longest = row
        .processes
        .iter()
        .flat_map(|p| &p.jobs)
        .max_by(|a, b| a.elapsed_secs.total_cmp(&b.elapsed_secs))
        .map_or("-".to_owned(), |j| {
            format!("{} {}", j.class, Secs(j.elapsed_secs as u64))
        });
    let (sigkill, verdict) = match &row.terminating {
        Some(t) => {
            let tone = if t.verdict.at_risk() {
                Tone::Bad
            } else if t.verdict.safe() {
                Tone::Good
            } else {
                Tone::Warn
            };
            (
                plain(format!("{}s", t.seconds_left)),
                (t.summary.clone(), tone),
            )
        }
        None => (plain("-"), plain(problem(row).unwrap_or("-").to_owned())),
    };
    vec![
        plain(&row.name),
        plain(&row.phase),
        plain(age),
        (state, tone),
        plain(busy(&row.processes)),
        plain(beat),
        plain(longest),
        sigkill,
        verdict,
    ]
}

/// What keeps the pod's row from being read in full: the probe's or the cluster's problem, else
/// the first record of its processes that cannot be read (a process hash whose `info` is not
/// JSON, a running job whose payload is not) — in the table, not only in `-o json`.
fn problem(row: &PodRow) -> Option<&str> {
    row.problem.as_deref().or_else(|| {
        row.processes
            .iter()
            .flat_map(|p| &p.errors)
            .next()
            .map(String::as_str)
    })
}

/// An age the way kubectl prints one (`HumanDuration`): precise when young, coarse when old.
fn human_age(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if m < 10 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if d < 8 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        _ if d < 730 => format!("{d}d"),
        _ if d < 8 * 365 && d % 365 != 0 => format!("{}y{}d", d / 365, d % 365),
        _ => format!("{}y", d / 365),
    }
}

/// Busy threads of `processes` out of their threads; `-` when none of them says (unreadable
/// records), never a `0` that would read as idle.
fn busy(processes: &[ProcessReport]) -> String {
    if processes.iter().all(|p| p.busy.is_none()) {
        return "-".to_owned();
    }
    // In u64: the figures come from the probe's JSON, and two u32s may not fit one.
    let busy: u64 = processes.iter().filter_map(|p| p.busy).map(u64::from).sum();
    let threads: u64 = processes
        .iter()
        .filter_map(|p| p.concurrency)
        .map(u64::from)
        .sum();
    if threads == 0 {
        busy.to_string()
    } else {
        format!("{busy}/{threads}")
    }
}

/// running, quiet, draining, drained, gone (no process left), unreadable (its records are
/// there and cannot be read), or why it is unknown.
fn state(row: &PodRow) -> (String, Tone) {
    if row.source.is_none() {
        return ("unknown".to_owned(), Tone::Warn);
    }
    if let Some(drain) = &row.drain
        && drain.state != report::NEVER_DRAINED
    {
        let tone = if drain.failed() {
            Tone::Bad
        } else {
            Tone::Warn
        };
        return (drain.state.clone(), tone);
    }
    let live: Vec<&ProcessReport> = row
        .processes
        .iter()
        .filter(|p| p.state == report::LIVE)
        .collect();
    if live.is_empty() {
        let unreadable = row.processes.iter().any(|p| p.state == report::UNREADABLE);
        let state = if unreadable {
            "unreadable"
        } else {
            "no process"
        };
        return (state.to_owned(), Tone::Warn);
    }
    if live.iter().all(|p| p.quiet == Some(true)) {
        return ("quiet".to_owned(), Tone::Warn);
    }
    ("running".to_owned(), Tone::Good)
}

#[cfg(test)]
mod tests {
    use super::{busy, human_age};
    use sidekiq_guard::probe::report::ProcessReport;

    fn process(busy: u32, concurrency: u32) -> ProcessReport {
        serde_json::from_value(serde_json::json!({
            "identity": "worker-0:1:abc", "state": "live", "embedded": false, "queues": [],
            "busy": busy, "concurrency": concurrency, "jobs": [], "errors": [], "warnings": [],
        }))
        .expect("a process report")
    }

    #[test]
    fn busy_counts_add_up_beyond_u32() {
        // Figures from a probe's JSON may be anything; their sum must neither panic nor wrap.
        let processes = [process(u32::MAX, u32::MAX), process(2, 3)];
        assert_eq!(busy(&processes), "4294967297/4294967298");
    }

    #[test]
    fn ages_read_like_kubectls() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (3 * 86_400 + 7200, "3d2h"),
            (25 * 86_400, "25d"),
            (800 * 86_400, "2y70d"),
        ];
        for (secs, text) in cases {
            assert_eq!(human_age(secs), text, "{secs}");
        }
    }
}
