//! `kubectl sidekiq inject`: the manifests as the webhook would mutate them.

use std::io::{Read, Write};

use serde_json::Value;
use sidekiq_guard::Context;
use sidekiq_guard::analysis::Skip;
use sidekiq_guard::review::{self, Outcome};

use crate::cli::{InjectArgs, ManifestFormat};
use crate::error::Error;
use crate::manifests::{self, Format};
use crate::offline::Offline;

/// Runs the command: mutated manifests to `out`, warnings to `err`.
pub(crate) fn run(
    args: &InjectArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let offline = Offline::load(args.files.policy.as_deref(), args.sidecar_mode)?;
    let mut notes = Vec::new();
    let input = manifests::read(&args.files.files, args.files.recursive, stdin, &mut notes);
    for note in &notes {
        writeln!(err, "note: {note}").map_err(Error::Output)?;
    }
    let input = input?;
    let ctx = offline.context();
    let mut documents = Vec::with_capacity(input.documents.len());
    for document in &input.documents {
        documents.push(inject_value(&document.value, &document.source, &ctx, err)?);
    }
    let format = match args.output {
        Some(ManifestFormat::Yaml) => Format::Yaml,
        Some(ManifestFormat::Json) => Format::Json,
        None => input.format,
    };
    manifests::write(out, &documents, format)?;
    Ok(())
}

fn inject_value(
    value: &Value,
    source: &str,
    ctx: &Context<'_>,
    err: &mut dyn Write,
) -> Result<Value, Error> {
    if manifests::is_list(value) {
        let mut list = value.clone();
        if let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) {
            for (i, item) in items.iter_mut().enumerate() {
                let typed = manifests::list_item(item, value);
                let injected = inject_value(&typed, &format!("{source} items[{i}]"), ctx, err)?;
                // An item left alone keeps its content exactly, without the list's kind.
                if injected != *typed {
                    *item = injected;
                }
            }
        }
        return Ok(list);
    }
    let (mutated, review) = review::inject(value, ctx).map_err(|cause| Error::Patch {
        source_name: source.to_owned(),
        source: cause,
    })?;
    report(&review, value, source, err)?;
    Ok(mutated)
}

/// Prints a review's notes and findings (kubectl's `Warning:` style), or why an object that
/// looks like a workload was skipped.
pub(crate) fn report(
    review: &review::Review,
    object: &Value,
    source: &str,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let subject = review::subject(object, None);
    let mut lines: Vec<String> = Vec::new();
    match &review.outcome {
        Outcome::Skipped(Skip::NotAWorkload(why)) if is_malformed_workload(object) => {
            lines.push(format!("skipped: {why}"));
        }
        Outcome::Skipped(_) => {}
        _ => {
            lines.extend(review.notes.iter().cloned());
            lines.extend(review.findings.iter().map(ToString::to_string));
        }
    }
    for line in lines {
        writeln!(err, "Warning: {source}: {subject}: {line}").map_err(Error::Output)?;
    }
    Ok(())
}

/// A supported kind that could not be read (as opposed to a ConfigMap, which is simply not ours).
fn is_malformed_workload(object: &Value) -> bool {
    object
        .get("kind")
        .and_then(Value::as_str)
        .and_then(sidekiq_guard::workload::Kind::from_name)
        .is_some()
}
