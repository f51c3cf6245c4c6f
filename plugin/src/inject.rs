//! `kubectl sidekiq inject`: the manifests as the webhook would mutate them.

use std::io::{Read, Write};

use serde_json::Value;
use sidekiq_guard::analysis::Skip;
use sidekiq_guard::review::{self, Outcome};
use sidekiq_guard::workload::WorkloadError;

use crate::cli::{ClusterArgs, InjectArgs, ManifestFormat};
use crate::error::Error;
use crate::manifests::{self, Format, ManifestError};
use crate::offline::{self, Offline};

/// Runs the command: mutated manifests to `out`, warnings to `err`. A workload of the wrong
/// shape (or outside `-n`) fails the run before anything is printed: half a stream of
/// manifests piped into `kubectl apply` is worse than none.
pub(crate) fn run(
    cluster: &ClusterArgs,
    args: &InjectArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let offline =
        Offline::load(args.files.policy.as_deref(), args.sidecar_mode)?.select(cluster)?;
    let mut notes = Vec::new();
    let input = manifests::read(&args.files.files, args.files.recursive, stdin, &mut notes);
    offline::print_notes(&notes, err)?;
    let input = input?;
    let mut unreadable = Vec::new();
    let mut documents = Vec::with_capacity(input.documents.len());
    for document in &input.documents {
        let injected = inject_value(
            &document.value,
            &document.source,
            &offline,
            &mut unreadable,
            err,
        )?;
        documents.extend(injected);
    }
    offline.check_selected(&mut unreadable);
    offline::fail_on_unreadable(unreadable, err, "nothing was printed")?;
    let format = match args.output {
        Some(ManifestFormat::Yaml) => Format::Yaml,
        Some(ManifestFormat::Json) => Format::Json,
        None => input.format,
    };
    manifests::write(out, &documents, format)?;
    Ok(())
}

/// `value` as the webhook would mutate it; `None` when `-l` does not select it or it cannot
/// be read (then in `unreadable`). A `List` keeps the items selected.
fn inject_value(
    value: &Value,
    source: &str,
    offline: &Offline,
    unreadable: &mut Vec<ManifestError>,
    err: &mut dyn Write,
) -> Result<Option<Value>, Error> {
    if manifests::is_list(value) {
        let mut list = value.clone();
        if let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) {
            let mut kept = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let typed = manifests::list_item(item, value);
                let name = format!("{source} items[{i}]");
                match inject_value(&typed, &name, offline, unreadable, err)? {
                    // An item left alone keeps its content exactly, without the list's kind.
                    Some(injected) if injected != *typed => kept.push(injected),
                    Some(_) => kept.push(item.clone()),
                    None => {}
                }
            }
            *items = kept;
        }
        return Ok(Some(list));
    }
    if !offline.reads(value, source, unreadable) {
        return Ok(None);
    }
    let (mutated, review) =
        review::inject(value, &offline.context()).map_err(|cause| Error::Patch {
            source_name: source.to_owned(),
            source: cause,
        })?;
    if let Some(malformed) = malformed(&review) {
        unreadable.push(ManifestError::Unreadable {
            source_name: source.to_owned(),
            source: malformed.clone(),
        });
        return Ok(None);
    }
    report(&review, value, source, offline.namespace(), err)?;
    Ok(Some(mutated))
}

/// A workload with a field of the wrong shape, which is an input error; an absent field is a
/// partial manifest (a kustomize patch that sets only `replicas`), noted and left alone.
pub(crate) fn malformed(review: &review::Review) -> Option<&WorkloadError> {
    match &review.outcome {
        Outcome::Skipped(Skip::NotAWorkload(
            malformed @ WorkloadError::Malformed { missing: false, .. },
        )) => Some(malformed),
        _ => None,
    }
}

/// Prints a review's notes and findings (kubectl's `Warning:` style), or why an object that
/// looks like a workload was skipped.
pub(crate) fn report(
    review: &review::Review,
    object: &Value,
    source: &str,
    namespace: Option<&str>,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let subject = review::subject(object, namespace);
    let mut lines: Vec<String> = Vec::new();
    match &review.outcome {
        // Absent, not malformed: a malformed one is an input error before it reaches here.
        Outcome::Skipped(Skip::NotAWorkload(
            why @ WorkloadError::Malformed { missing: true, .. },
        )) => {
            lines.push(format!(
                "skipped: {} (a partial manifest, such as a kustomize patch)",
                why.problem()
            ));
        }
        // Left alone on purpose; said, so that "0 Sidekiq workload(s)" is not a surprise.
        Outcome::Skipped(skip @ (Skip::ExcludedNamespace(_) | Skip::OptedOut | Skip::Windows))
            if sidekiq_guard::analysis::is_sidekiq(object) =>
        {
            lines.push(format!("not checked: {skip}"));
        }
        Outcome::Skipped(_) => {
            if let Some(kind) = sidekiq_guard::analysis::foreign_sidekiq_kind(object) {
                lines.push(format!(
                    "not checked: {kind} is not a kind sidekiq-guard reads (Kubernetes' own {}); its pods are reviewed, and injected where they opt in, as they are created",
                    sidekiq_guard::workload::supported_kinds()
                ));
            }
        }
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
