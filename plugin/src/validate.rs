//! `kubectl sidekiq validate -f`: findings for manifests, as a table or JSON/YAML, and an exit
//! status for CI.

use std::io::{Read, Write};

use comfy_table::{Cell, Color, ColumnConstraint, ContentArrangement, Table, presets};
use serde::Serialize;
use serde_json::Value;
use sidekiq_guard::review::{self, Outcome, Perspective};
use sidekiq_guard::{Finding, Severity};

use crate::cli::{ReportFormat, ValidateArgs};
use crate::error::Error;
use crate::inject;
use crate::manifests::{self, Document};
use crate::offline::Offline;

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
    args: &ValidateArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
    color: bool,
) -> Result<bool, Error> {
    let offline = Offline::load(args.files.policy.as_deref(), args.sidecar_mode)?;
    let input = manifests::read(&args.files.files, args.files.recursive, stdin)?;
    let perspective = if args.as_injected {
        Perspective::AsInjected
    } else {
        Perspective::AsWritten
    };
    let mut objects = Vec::new();
    for Document { source, value } in &input.documents {
        validate_value(value, source, &offline, perspective, &mut objects, err)?;
    }
    let report = Report::new(objects);
    print(&report, args.output, out, color)?;
    let s = &report.summary;
    writeln!(
        err,
        "{} Sidekiq workload(s): {} error(s), {} warning(s), {} info",
        s.workloads, s.errors, s.warnings, s.info
    )
    .map_err(Error::Output)?;
    Ok(s.errors > 0)
}

fn validate_value(
    value: &Value,
    source: &str,
    offline: &Offline,
    perspective: Perspective,
    objects: &mut Vec<ObjectReport>,
    err: &mut dyn Write,
) -> Result<(), Error> {
    if manifests::is_list(value) {
        for (i, item) in value["items"].as_array().into_iter().flatten().enumerate() {
            validate_value(
                item,
                &format!("{source} items[{i}]"),
                offline,
                perspective,
                objects,
                err,
            )?;
        }
        return Ok(());
    }
    let review = review::validate(value, &offline.context(), perspective);
    if let Outcome::Skipped(_) = review.outcome {
        // Not ours; a malformed workload is worth a line on stderr.
        return inject::report(&review, value, source, err);
    }
    let meta = |key: &str| {
        value
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
    };
    objects.push(ObjectReport {
        source: source.to_owned(),
        kind: value["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: meta("namespace").map(str::to_owned),
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
            if report.objects.iter().all(|o| o.findings.is_empty()) {
                return Ok(());
            }
            let table = table(report, format == ReportFormat::Wide, color).to_string();
            // Padding leaves spaces after the last column; kubectl's tables have none.
            for line in table.lines() {
                writeln!(out, "{}", line.trim_end()).map_err(Error::Output)?;
            }
            Ok(())
        }
    }
}

fn table(report: &Report, wide: bool, color: bool) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
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
    table.set_header(header);
    for object in &report.objects {
        for finding in &object.findings {
            let mut row = vec![
                Cell::new(&object.source),
                Cell::new(object.namespace.as_deref().unwrap_or("")),
                Cell::new(format!("{}/{}", object.kind, object.name)),
                severity_cell(finding.severity, color),
                Cell::new(format!("{} {}", finding.code.id(), finding.name)),
                Cell::new(&finding.message),
            ];
            if wide {
                row.extend([Cell::new(&finding.path), Cell::new(&finding.hint)]);
            }
            table.add_row(row);
        }
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
    table
}

fn severity_cell(severity: Severity, color: bool) -> Cell {
    let cell = Cell::new(severity);
    if !color {
        return cell;
    }
    cell.fg(match severity {
        Severity::Error => Color::Red,
        Severity::Warning => Color::Yellow,
        Severity::Info => Color::Blue,
    })
}
