//! `kubectl sidekiq validate` without `-f`: the same findings as on files, for the workloads of the
//! selected namespaces, plus what only a running cluster shows — jobs running longer than
//! declared, and (with `--redis-url`, Sidekiq 7+) the execution times Sidekiq records.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sidekiq_guard::analysis::{self, Subject};
use sidekiq_guard::findings;
use sidekiq_guard::install;
use sidekiq_guard::pointer::Pointer as _;
use sidekiq_guard::probe::pod::Hosts;
use sidekiq_guard::probe::report::ProcessReport;
use sidekiq_guard::redis::Reader;
use sidekiq_guard::review::{self, Outcome, Perspective};
use sidekiq_guard::sidekiq::metrics::{ClassTimes, RETENTION_MINUTES};
use sidekiq_guard::status::InjectionStatus;
use sidekiq_guard::workload::{self, Kind, Workload};
use sidekiq_guard::{Context, Mode, verdict};

use crate::cli::{Cli, ValidateArgs};
use crate::cluster::{self, Cluster, Scope};
use crate::error::Error;
use crate::offline::Offline;
use crate::sources;
use crate::validate::{self, ObjectReport, Report};

/// Runs the command; returns whether an error finding was reported.
pub(crate) async fn run(
    cli: &Cli,
    args: &ValidateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    color: bool,
) -> Result<bool, Error> {
    let cluster = Cluster::connect(&cli.cluster).await?;
    let scope = cluster.scope(&cli.cluster);
    let selector = cli.cluster.selector.as_deref();
    let offline = Offline::load(args.files.policy.as_deref(), args.sidecar_mode)?;
    let mode = match args.sidecar_mode {
        Some(mode) => Mode::from(mode),
        None => Mode::resolve(offline.policy.sidecar.mode, cluster.version().await?.1),
    };
    let mut notes = Vec::new();
    let opted_in = match cluster.list(cluster::NAMESPACES, &Scope::All, None).await {
        Ok(all) => Some(
            all.iter()
                .filter(|ns| install::namespace_opted_in(ns))
                .filter_map(|ns| {
                    ns.at("/metadata/name")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect::<Vec<_>>(),
        ),
        Err(error @ Error::Forbidden { .. }) => {
            notes.push(format!(
                "cannot tell which namespaces are opted in ({error}); judging workloads as written"
            ));
            None
        }
        Err(other) => return Err(other),
    };

    let mut objects = Vec::new();
    // A kind RBAC hides is left out and the rest judged, as `validate -f DIR` goes on past a
    // file it cannot read — and, like it, the run then fails: a CI gate must not pass on
    // workloads it never saw.
    let mut skipped = Vec::new();
    for resource in cluster::WORKLOADS {
        match cluster.list(resource, &scope, selector).await {
            Ok(items) => objects.extend(items),
            Err(error @ Error::Forbidden { .. }) => {
                notes.push(format!("skipped {}: {error}", resource.plural));
                skipped.push(resource.plural);
            }
            Err(other) => return Err(other),
        }
    }
    let pods: Vec<Value> = cluster
        .list(cluster::PODS, &scope, selector)
        .await?
        .into_iter()
        .filter(analysis::is_sidekiq)
        .collect();
    // Jobs of a CronJob are judged through the CronJob; pods of a controller through it.
    objects.retain(|o| {
        !workload::owners(o)
            .iter()
            .any(|(kind, _)| *kind == Kind::CronJob)
    });
    objects.extend(
        pods.iter()
            .filter(|p| workload::owners(p).is_empty())
            .cloned(),
    );

    let reader = sources::one_shot_reader(
        args.redis_url.as_deref(),
        args.redis_namespace.prefix(),
        &cli.cluster.request_timeout(),
    )?;
    let (processes, times) = live_data(&cluster, &pods, reader.as_ref(), &mut notes).await?;
    let policy = &offline.policy;
    let ctx = Context {
        policy,
        mode,
        namespace: None,
    };
    let mut reports = Vec::new();
    for object in &objects {
        let namespace = object
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let namespace_opted_in = opted_in
            .as_ref()
            .is_some_and(|list| list.iter().any(|n| n == namespace));
        let perspective = Perspective::in_cluster(object, namespace_opted_in);
        let review = review::validate(object, &ctx, perspective);
        if matches!(review.outcome, Outcome::Skipped(_)) {
            continue;
        }
        let mut found = review.findings;
        if let Subject::Sidekiq(analysis) = analysis::analyse(object, &ctx) {
            found.extend(live_findings(
                &analysis.workload,
                &analysis.settings.longest_job,
                &pods,
                &processes,
                &times,
            ));
        }
        reports.push(ObjectReport {
            source: "cluster".to_owned(),
            kind: object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            namespace: Some(namespace.to_owned()),
            name: workload::display_name(object),
            findings: found,
        });
    }
    reports.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));
    let report = Report::new(reports);
    validate::print(&report, args.report.output, out, color)?;
    crate::offline::print_notes(&notes, err)?;
    let failed = report.summarise(err)?;
    if !skipped.is_empty() {
        return Err(Error::Usage(format!(
            "{} could not be listed (see the notes above), so their workloads were not checked; the findings above cover the rest",
            skipped.join(", ")
        )));
    }
    Ok(failed)
}

type Processes = HashMap<(String, String), Vec<ProcessReport>>;

/// Running processes per pod (namespace, name), and per-class execution times from Redis.
async fn live_data(
    cluster: &Cluster,
    pods: &[Value],
    reader: Option<&Reader>,
    notes: &mut Vec<String>,
) -> Result<(Processes, Times), Error> {
    let key = |pod: &Value| {
        (
            pod.at("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            pod.at("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let mut processes: Processes = HashMap::new();
    let Some(reader) = reader else {
        // Only pods whose containers run have a probe to answer.
        let targets: Vec<(String, String, u16)> = pods
            .iter()
            .filter(|pod| verdict::containers_run(pod))
            .filter_map(|pod| {
                let port = InjectionStatus::of_pod(pod)?.probe_port;
                let (namespace, name) = key(pod);
                Some((namespace, name, port))
            })
            .collect();
        let answers =
            sources::probe_statuses(cluster, targets.clone(), sources::PROBE_CONCURRENCY).await;
        for ((namespace, name, _), answer) in targets.into_iter().zip(answers) {
            match answer {
                Ok(status) => {
                    processes.insert((namespace, name), status.processes);
                }
                Err(error) => notes.push(format!(
                    "running jobs of pod {namespace}/{name} not read (SG020 not checked for it): {}",
                    sidekiq_guard::errors::chain(&error)
                )),
            }
        }
        return Ok((processes, BTreeMap::new()));
    };
    let hosts = Hosts::index(pods);
    for (index, why) in &hosts.unresolved {
        let (namespace, name) = key(&pods[*index]);
        notes.push(format!(
            "running jobs of pod {namespace}/{name} not read (SG020 not checked for it): its processes cannot be told in Redis: {why}"
        ));
    }
    for process in sources::all_processes(reader).await? {
        if let Some(index) = process.host().and_then(|host| hosts.pod(host)) {
            processes
                .entry(key(&pods[index]))
                .or_default()
                .push(process);
        }
    }
    let times = recorded_times(reader, notes).await?;
    Ok((processes, times))
}

/// Per-class execution times Sidekiq 7+ recorded in Redis, over the hours it keeps them.
pub(crate) type Times = BTreeMap<String, ClassTimes>;

/// Reads the execution times `reader`'s Redis recorded; a note says when it holds none.
pub(crate) async fn recorded_times(
    reader: &Reader,
    notes: &mut Vec<String>,
) -> Result<Times, Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let times = reader.execution_times(now, RETENTION_MINUTES).await?;
    if times.is_empty() {
        notes.push(format!(
            "no execution metrics in Redis (they exist on Sidekiq 7 and later, for {} hours)",
            RETENTION_MINUTES / 60
        ));
    }
    Ok(times)
}

fn live_findings(
    workload: &Workload<'_>,
    declared: &sidekiq_guard::settings::Setting<u64>,
    pods: &[Value],
    processes: &Processes,
    times: &Times,
) -> Vec<sidekiq_guard::Finding> {
    let mut found = Vec::new();
    let namespace = workload.namespace().unwrap_or_default();
    let name = workload.name();
    let mine = |pod: &&Value| {
        pod.at("/metadata/namespace").and_then(Value::as_str) == Some(namespace)
            && (workload.kind == Kind::Pod
                && pod.at("/metadata/name").and_then(Value::as_str) == Some(&name)
                || workload::owners(pod)
                    .iter()
                    .any(|(k, n)| *k == workload.kind && *n == name))
    };
    for pod in pods.iter().filter(mine) {
        let pod_name = pod
            .at("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(list) = processes.get(&(namespace.to_owned(), pod_name.to_owned())) else {
            continue;
        };
        let pod = format!("{namespace}/{pod_name}");
        found.extend(list.iter().flat_map(|p| &p.jobs).filter_map(|job| {
            findings::job_running_longer(
                workload,
                &pod,
                &job.class,
                job.jid.as_deref(),
                job.elapsed_secs,
                declared,
            )
        }));
    }
    found.extend(findings::classes_slower_than_declared(
        workload, declared, times,
    ));
    found
}
