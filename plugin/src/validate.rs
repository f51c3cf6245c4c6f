//! `kubectl sidekiq validate -f`: findings for manifests, as a table or JSON/YAML, and an exit
//! status for CI. With `--redis-url`, each Sidekiq workload is also judged against the execution
//! times Sidekiq 7+ recorded in that Redis, as in the cluster: a CI job can check the manifests it
//! is about to deploy against what production's jobs took.

use std::cell::OnceCell;
use std::io::{Read, Write};

use serde::Serialize;
use serde_json::Value;
use sidekiq_guard::pointer::Pointer as _;
use sidekiq_guard::redis::Reader;
use sidekiq_guard::review::{self, Outcome, Perspective};
use sidekiq_guard::{Finding, Severity};

use crate::cli::{ClusterArgs, ReportFormat, ValidateArgs};
use crate::error::Error;
use crate::inject;
use crate::live::{self, Times};
use crate::manifests::{self, Document, ManifestError};
use crate::offline::{self, Offline};
use crate::sources;
use crate::table::{self, Tone, plain};

/// How the objects of a run are judged.
struct Judging<'a> {
    offline: &'a Offline,
    perspective: Perspective,
    times: RecordedTimes,
}

/// The execution times recorded in `--redis-url`'s Redis, read when the first Sidekiq workload
/// needs them: a run over files without one, or without the URL, never connects.
struct RecordedTimes {
    reader: Option<Reader>,
    read: OnceCell<Reading>,
}

/// What reading the recorded times gave.
#[derive(Default)]
struct Reading {
    times: Times,
    /// What reading them noted (no metrics at all).
    notes: Vec<String>,
    /// Why they could not be read: the run fails once the files' findings are printed, as for
    /// an unreadable file.
    failure: Option<Error>,
}

impl RecordedTimes {
    /// The times, read on the first call (none without a Redis, or when it cannot be read).
    fn get(&self) -> &Times {
        &self.read.get_or_init(|| self.read_once()).times
    }

    fn read_once(&self) -> Reading {
        let Some(reader) = &self.reader else {
            return Reading::default();
        };
        let mut notes = Vec::new();
        match crate::block_on(live::recorded_times(reader, &mut notes)) {
            Ok(times) => Reading {
                times,
                notes,
                failure: None,
            },
            Err(error) => Reading {
                times: Times::new(),
                notes,
                failure: Some(error),
            },
        }
    }
}

/// The findings of one Sidekiq workload.
#[derive(Debug, Serialize)]
pub(crate) struct ObjectReport {
    pub(crate) source: String,
    pub(crate) kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
    pub(crate) findings: Vec<Finding>,
}

/// Counts over every reported object.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) workloads: usize,
    pub(crate) errors: usize,
    pub(crate) warnings: usize,
    pub(crate) info: usize,
}

/// The whole report, as `-o json|yaml` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) objects: Vec<ObjectReport>,
    pub(crate) summary: Summary,
}

impl Report {
    /// Writes the one-line summary to `err`; returns whether an error finding was reported.
    pub(crate) fn summarise(&self, err: &mut dyn Write) -> Result<bool, Error> {
        let s = &self.summary;
        writeln!(
            err,
            "{} Sidekiq workload(s): {} error(s), {} warning(s), {} info",
            s.workloads, s.errors, s.warnings, s.info
        )
        .map_err(Error::Output)?;
        Ok(s.errors > 0)
    }

    pub(crate) fn new(objects: Vec<ObjectReport>) -> Self {
        let mut summary = Summary {
            workloads: objects.len(),
            ..Summary::default()
        };
        for finding in objects.iter().flat_map(|o| &o.findings) {
            match finding.severity {
                Severity::Error => summary.errors += 1,
                Severity::Warning => summary.warnings += 1,
                Severity::Info => summary.info += 1,
            }
        }
        Self { objects, summary }
    }
}

/// Runs the command; returns whether an error finding was reported.
pub(crate) fn run(
    cluster: &ClusterArgs,
    args: &ValidateArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
    color: bool,
) -> Result<bool, Error> {
    let offline =
        Offline::load(args.files.policy.as_deref(), args.sidecar_mode)?.select(cluster)?;
    // A CI gate over a repository: a file that cannot be read, or a workload of the wrong
    // shape, is reported and fails the run (exit 2), but does not hide the others' findings.
    let mut unreadable = Vec::new();
    let mut notes = Vec::new();
    let reader = sources::one_shot_reader(
        args.redis_url.as_deref(),
        args.redis_namespace.prefix(),
        &cluster.request_timeout(),
    )?;
    let input = manifests::read_leniently(
        &args.files.files,
        args.files.recursive,
        stdin,
        &mut unreadable,
        &mut notes,
    );
    offline::print_notes(&notes, err)?;
    let judging = Judging {
        offline: &offline,
        perspective: if args.as_injected {
            Perspective::AsInjected
        } else {
            Perspective::AsWritten
        },
        times: RecordedTimes {
            reader,
            read: OnceCell::new(),
        },
    };
    let mut objects = Vec::new();
    for Document { source, value } in &input.documents {
        validate_value(value, source, &judging, &mut objects, &mut unreadable, err)?;
    }
    let Reading { notes, failure, .. } = judging.times.read.into_inner().unwrap_or_default();
    offline::print_notes(&notes, err)?;
    let report = Report::new(objects);
    print(&report, args.report.output, out, color)?;
    let failed = report.summarise(err)?;
    // A Redis that cannot be read fails the run, as an unreadable file does, after the findings
    // of the files (without SG021) are printed.
    if let Some(error) = failure {
        if unreadable.is_empty() {
            return Err(error);
        }
        writeln!(err, "error: {}", sidekiq_guard::errors::chain(&error)).map_err(Error::Output)?;
    }
    offline.check_selected(&mut unreadable);
    offline::fail_on_unreadable(unreadable, err, "the findings above cover the rest")?;
    Ok(failed)
}

fn validate_value(
    value: &Value,
    source: &str,
    judging: &Judging<'_>,
    objects: &mut Vec<ObjectReport>,
    unreadable: &mut Vec<ManifestError>,
    err: &mut dyn Write,
) -> Result<(), Error> {
    if manifests::is_list(value) {
        for (i, item) in value["items"].as_array().into_iter().flatten().enumerate() {
            validate_value(
                &manifests::list_item(item, value),
                &format!("{source} items[{i}]"),
                judging,
                objects,
                unreadable,
                err,
            )?;
        }
        return Ok(());
    }
    let offline = judging.offline;
    if !offline.reads(value, source, unreadable) {
        return Ok(());
    }
    let ctx = offline.context();
    // SG021 from the times Redis recorded, read when the first Sidekiq workload needs them
    // (none without `--redis-url`).
    let times = || judging.times.get();
    let review = review::validate_against(value, &ctx, judging.perspective, &times);
    if let Some(malformed) = inject::malformed(&review) {
        unreadable.push(ManifestError::Unreadable {
            source_name: source.to_owned(),
            source: malformed.clone(),
        });
        return Ok(());
    }
    if let Outcome::Skipped(_) = review.outcome {
        // Not ours; a partial workload (a kustomize patch without a pod template) or a
        // Sidekiq one left alone on purpose is worth a line on stderr.
        return inject::report(&review, value, source, offline.namespace(), err);
    }
    let meta = |key: &str| {
        value
            .at(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
    };
    objects.push(ObjectReport {
        source: source.to_owned(),
        kind: value["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: meta("namespace").or(offline.namespace()).map(str::to_owned),
        name: sidekiq_guard::workload::display_name(value),
        findings: review.findings,
    });
    Ok(())
}

/// Prints `report` in `format`.
pub(crate) fn print(
    report: &Report,
    format: ReportFormat,
    out: &mut dyn Write,
    color: bool,
) -> Result<(), Error> {
    match format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report).map_err(|e| Error::Output(e.into()))?;
            writeln!(out).map_err(Error::Output)
        }
        ReportFormat::Yaml => {
            let text = serde_saphyr::to_string(report)
                .map_err(|e| Error::Manifest(manifests::ManifestError::WriteYaml(e)))?;
            out.write_all(text.as_bytes()).map_err(Error::Output)
        }
        ReportFormat::Table | ReportFormat::Wide => {
            let text = table(report, format == ReportFormat::Wide, color);
            out.write_all(text.as_bytes()).map_err(Error::Output)
        }
    }
}

fn table(report: &Report, wide: bool, color: bool) -> String {
    let mut header = vec![
        "SOURCE",
        "NAMESPACE",
        "OBJECT",
        "SEVERITY",
        "CODE",
        "MESSAGE",
    ];
    if wide {
        header.extend(["PATH", "HINT"]);
    }
    let mut rows = Vec::new();
    for object in &report.objects {
        for finding in &object.findings {
            let tone = match finding.severity {
                Severity::Error => Tone::Bad,
                Severity::Warning => Tone::Warn,
                Severity::Info => Tone::Info,
            };
            let mut row = vec![
                plain(&object.source),
                plain(object.namespace.as_deref().unwrap_or("")),
                plain(format!("{}/{}", object.kind, object.name)),
                (finding.severity.to_string(), tone),
                plain(format!("{} {}", finding.code.id(), finding.name)),
                plain(&finding.message),
            ];
            if wide {
                row.extend([plain(&finding.path), plain(&finding.hint)]);
            }
            rows.push(row);
        }
    }
    table::render(&header, rows, color)
}
