//! Reading and writing manifests: files, directories and stdin; multi-document YAML, JSON and
//! `List` objects. Content is kept as raw JSON values so that nothing the core does not touch
//! changes.

use std::borrow::Cow;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A manifest that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManifestError {
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Not valid YAML.
    #[error("{path}: not valid YAML")]
    Yaml {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: sidekiq_guard::errors::YamlError,
    },
    /// Not valid JSON.
    #[error("{path}: not valid JSON")]
    Json {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A document that is not a mapping.
    #[error(
        "{source_name}: expected a Kubernetes object (a mapping with apiVersion and kind), found {found}"
    )]
    NotAnObject {
        /// File and document number.
        source_name: String,
        /// What was found.
        found: &'static str,
    },
    /// A mapping that names no `kind`: what `kubectl apply` refuses as no object (a
    /// `kustomization.yaml` or Helm values file among manifests, an empty `{}` rendered).
    #[error(
        "{source_name}: not a Kubernetes object: it has no kind (a non-empty string); a kustomization or Helm values file is not a manifest (render it: kubectl kustomize DIR | kubectl sidekiq validate -f -)"
    )]
    NoKind {
        /// File and document number (and list item).
        source_name: String,
    },
    /// A Pod or workload whose pod template cannot be read: validating it would say nothing,
    /// and a CI gate must not pass it.
    #[error("{source_name}: malformed workload")]
    Unreadable {
        /// File and document number.
        source_name: String,
        /// What is malformed.
        #[source]
        source: sidekiq_guard::workload::WorkloadError,
    },
    /// An object outside the namespace `-n` names.
    #[error(
        "{source_name}: the object is in namespace {found:?}, not {given:?} (-n); pass -n {found} or leave -n out, as kubectl apply asks"
    )]
    NamespaceMismatch {
        /// File and document number.
        source_name: String,
        /// The object's namespace.
        found: String,
        /// `-n`.
        given: String,
    },
    /// A `List` whose `items` are not all objects: kubectl refuses it too.
    #[error(
        "{source_name}: the items of a {kind} must be a list of Kubernetes objects (mappings with apiVersion and kind), but {what}"
    )]
    ListItems {
        /// File and document number.
        source_name: String,
        /// The list's kind.
        kind: String,
        /// What is wrong: `items is a mapping`, `items[2] is a number`.
        what: String,
    },
    /// Inputs that hold no object at all: the command that produced them likely failed.
    #[error(
        "no objects in {0}: expected at least one Kubernetes object (kubectl apply refuses an empty input too; did the command that produced it fail?)"
    )]
    NoObjects(String),
    /// A `-l` that selects no object of the input.
    #[error(
        "no object matches -l {0:?}: expected at least one (kubectl apply -l refuses to apply nothing too; is the selector right?)"
    )]
    NothingSelected(String),
    /// A directory with no manifest in it.
    #[error("{0}: no .yaml, .yml or .json files found (use -R to descend into subdirectories)")]
    EmptyDirectory(String),
    /// Output could not be encoded.
    #[error("cannot write YAML")]
    WriteYaml(#[source] serde_saphyr::SerializeError),
    /// Output could not be written.
    #[error("cannot write output")]
    Write(#[source] io::Error),
}

/// How manifests are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Multi-document YAML.
    Yaml,
    /// JSON: one object, or a `v1/List` of several.
    Json,
}

/// One document of the input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Document {
    /// Where it came from: `path` or `path#N` for the N-th document of a multi-document file.
    pub(crate) source: String,
    /// Its content.
    pub(crate) value: Value,
}

/// Everything read from `-f` arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Input {
    /// Documents in reading order.
    pub(crate) documents: Vec<Document>,
    /// JSON when every input was JSON, else YAML: the output keeps the input's format.
    pub(crate) format: Format,
}

/// Reads every `-f` argument: files, directories (their `.yaml`/`.yml`/`.json` files, sorted,
/// descending into subdirectories when `recursive`) and `-` for `stdin`. Files of a directory
/// that are not regular files (FIFOs, sockets, devices) are skipped with a line in `notes`:
/// reading one could block forever. A path named on the command line is read whatever it is
/// (`-f /dev/stdin`, a FIFO a script writes into).
pub(crate) fn read(
    paths: &[PathBuf],
    recursive: bool,
    stdin: &mut dyn Read,
    notes: &mut Vec<String>,
) -> Result<Input, ManifestError> {
    read_each(paths, recursive, stdin, &mut Err, notes)
}

/// Like [`read`], but a file that cannot be read or parsed does not stop the others: its error
/// goes to `failed`, as `kubectl apply -f DIR` reports a bad file and applies the rest.
pub(crate) fn read_leniently(
    paths: &[PathBuf],
    recursive: bool,
    stdin: &mut dyn Read,
    failed: &mut Vec<ManifestError>,
    notes: &mut Vec<String>,
) -> Input {
    let mut keep = |err| {
        failed.push(err);
        Ok(())
    };
    // The sink never fails, so neither does the read.
    read_each(paths, recursive, stdin, &mut keep, notes).unwrap_or(Input {
        documents: Vec::new(),
        format: Format::Yaml,
    })
}

/// Reads every file of `paths`; each file's error goes to `on_error`, which ends the read by
/// returning it or lets it go on.
fn read_each(
    paths: &[PathBuf],
    recursive: bool,
    stdin: &mut dyn Read,
    on_error: &mut dyn FnMut(ManifestError) -> Result<(), ManifestError>,
    notes: &mut Vec<String>,
) -> Result<Input, ManifestError> {
    let mut documents = Vec::new();
    let mut all_json = true;
    // Whether an input failed: then an empty result is that failure's, not an empty input.
    let failed = std::cell::Cell::new(false);
    let mut on_error = |err| {
        failed.set(true);
        on_error(err)
    };
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            let read = stdin
                .read_to_end(&mut bytes)
                .and_then(|_| decode_text(bytes))
                .map_err(|source| ManifestError::Read {
                    path: "stdin".into(),
                    source,
                })
                .and_then(|text| parse(&text, "stdin", None, &mut documents));
            match read {
                Ok(json) => all_json &= json,
                Err(err) => on_error(err)?,
            }
            continue;
        }
        let listed = match files(path, recursive, notes) {
            Ok(listed) => listed,
            Err(err) => {
                on_error(err)?;
                continue;
            }
        };
        for file in listed {
            let name = file.display().to_string();
            let read = fs::read(&file)
                .and_then(decode_text)
                .map_err(|source| ManifestError::Read {
                    path: name.clone(),
                    source,
                })
                .and_then(|text| {
                    parse(
                        &text,
                        &name,
                        file.extension().and_then(|e| e.to_str()),
                        &mut documents,
                    )
                });
            match read {
                Ok(json) => all_json &= json,
                Err(err) => on_error(err)?,
            }
        }
    }
    if no_objects(&documents) && !failed.get() {
        let names: Vec<String> = paths
            .iter()
            .map(|p| match p.as_os_str().to_str() {
                Some("-") => "stdin".to_owned(),
                _ => p.display().to_string(),
            })
            .collect();
        on_error(ManifestError::NoObjects(names.join(", ")))?;
    }
    Ok(Input {
        documents,
        format: if all_json { Format::Json } else { Format::Yaml },
    })
}

/// A file's text: UTF-8, or UTF-16 with a byte-order mark (what Windows PowerShell's `>`
/// writes), which kubectl reads too.
fn decode_text(bytes: Vec<u8>) -> std::io::Result<String> {
    let utf16 = |bytes: &[u8], unit: fn([u8; 2]) -> u16| {
        let invalid = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream is not valid UTF-16",
            )
        };
        let (pairs, rest) = bytes.as_chunks::<2>();
        if !rest.is_empty() {
            return Err(invalid());
        }
        let units: Vec<u16> = pairs.iter().map(|pair| unit(*pair)).collect();
        String::from_utf16(&units).map_err(|_| invalid())
    };
    match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => String::from_utf8(bytes).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8 (nor UTF-16 with a byte-order mark)",
            )
        }),
    }
}

/// The manifest files `path` names: itself when it is not a directory, else its `.yaml`,
/// `.yml` and `.json` regular files (symlinks followed), sorted; a file of another type is
/// skipped with a line in `notes`, as kubectl reads only regular files from a directory.
fn files(
    path: &Path,
    recursive: bool,
    notes: &mut Vec<String>,
) -> Result<Vec<PathBuf>, ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: path.display().to_string(),
        source,
    };
    if !fs::metadata(path).map_err(read_error)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(path)
        .map_err(read_error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    entries.sort();
    let mut found = Vec::new();
    for entry in entries {
        // Following a symlink, as reading the file would.
        let metadata = fs::metadata(&entry);
        if metadata.as_ref().is_ok_and(fs::Metadata::is_dir) {
            // Like kubectl's walk: a symlinked directory is not entered (it may loop back).
            let symlink = fs::symlink_metadata(&entry).is_ok_and(|m| m.file_type().is_symlink());
            if recursive && !symlink {
                found.extend(files(&entry, true, notes).or_else(|err| match err {
                    ManifestError::EmptyDirectory(_) => Ok(Vec::new()),
                    other => Err(other),
                })?);
            }
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            match metadata {
                // A FIFO would block the read until something writes to it, maybe forever.
                Ok(metadata) if !metadata.is_file() => notes.push(format!(
                    "skipped {}: {}, not a regular file",
                    entry.display(),
                    special_file(&metadata)
                )),
                // Unreadable metadata (a dangling symlink): the read reports why.
                _ => found.push(entry),
            }
        }
    }
    if found.is_empty() {
        return Err(ManifestError::EmptyDirectory(path.display().to_string()));
    }
    Ok(found)
}

/// What a file that is neither a regular file nor a directory is, for a note.
fn special_file(metadata: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let kind = metadata.file_type();
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    "a special file"
}

/// Parses one file's text into `documents`; returns whether it was JSON.
fn parse(
    text: &str,
    name: &str,
    extension: Option<&str>,
    documents: &mut Vec<Document>,
) -> Result<bool, ManifestError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let looks_json = text.trim_start().starts_with(['{', '[']);
    // The content decides, as kubectl's YAML-or-JSON decoder sniffs it: a `.json` file holding
    // YAML (written by a tool that names everything `.json`) is read as YAML.
    let json = match extension {
        Some("yaml" | "yml") => false,
        _ => looks_json,
    };
    let yaml = |text| {
        serde_saphyr::from_multiple_with_options(text, yaml_options(text.len())).map_err(|source| {
            ManifestError::Yaml {
                path: name.to_owned(),
                source: sidekiq_guard::errors::YamlError::new(&source),
            }
        })
    };
    let values: Vec<Value> = if json {
        match json_stream(text) {
            Ok(values) => values,
            // Only guessed from a `{`: a YAML flow mapping (`{kind: Pod}`) starts the same way,
            // and YAML reads JSON too.
            Err(source) if extension != Some("json") => match yaml(text) {
                Ok(values) => return push_documents(values, name, documents).map(|()| false),
                // Neither: it was meant as JSON, and the JSON error says where.
                Err(_) => {
                    return Err(ManifestError::Json {
                        path: name.to_owned(),
                        source,
                    });
                }
            },
            Err(source) => {
                return Err(ManifestError::Json {
                    path: name.to_owned(),
                    source,
                });
            }
        }
    } else {
        yaml(text)?
    };
    push_documents(values, name, documents)?;
    Ok(json)
}

/// YAML as Kubernetes reads it: YAML 1.1 numbers, where `0644` (a file mode) is octal.
///
/// The parser's budget counts the whole stream, and its defaults (250,000 nodes, depth 64)
/// refuse a long `helm template` stream or a deep CRD schema that kubectl reads. The input is
/// in memory already, so what the budget still guards against is alias expansion (its own
/// limits stay); the counts that grow with the input grow with it here, and the depth is
/// serde_json's, so that YAML and JSON read alike.
fn yaml_options(input_bytes: usize) -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_nodes = budget.max_nodes.max(input_bytes);
    budget.max_events = budget.max_events.max(input_bytes.saturating_mul(2));
    budget.max_documents = budget.max_documents.max(input_bytes / 4);
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(input_bytes);
    budget.max_depth = 128;
    options.budget = Some(budget);
    options
}

/// One JSON value or several in a row (`jq -c '.items[]'`), as kubectl reads them.
fn json_stream(text: &str) -> Result<Vec<Value>, serde_json::Error> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect()
}

fn push_documents(
    values: Vec<Value>,
    name: &str,
    documents: &mut Vec<Document>,
) -> Result<(), ManifestError> {
    let several = values.len() > 1;
    for (i, value) in values.into_iter().enumerate() {
        let source_name = if several {
            format!("{name}#{}", i + 1)
        } else {
            name.to_owned()
        };
        if !value.is_object() {
            return Err(ManifestError::NotAnObject {
                source_name,
                found: sidekiq_guard::workload::json_type(&value),
            });
        }
        check_kind(&value, &source_name)?;
        check_list_items(&value, &source_name)?;
        let mut value = value;
        whole_numbers(&mut value);
        documents.push(Document {
            source: source_name,
            value,
        });
    }
    Ok(())
}

/// An object names its `kind`, as `kubectl apply` requires. Its `apiVersion` is not required:
/// without one the kind's name decides what it is (as for a partial manifest), and kubectl
/// would say so when applying it.
fn check_kind(value: &Value, source_name: &str) -> Result<(), ManifestError> {
    if value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| !kind.is_empty())
    {
        return Ok(());
    }
    Err(ManifestError::NoKind {
        source_name: source_name.to_owned(),
    })
}

/// A `List` document's `items`, when it has some, are all objects.
fn check_list_items(value: &Value, source_name: &str) -> Result<(), ManifestError> {
    let Some(kind) = list_kind(value) else {
        return Ok(());
    };
    let what = match value.get("items") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(items)) => match items.iter().position(|item| !item.is_object()) {
            // A typed list's (`DeploymentList`) items leave their kind to the list.
            None if kind != "List" => return Ok(()),
            None => {
                return items.iter().enumerate().try_for_each(|(index, item)| {
                    check_kind(item, &format!("{source_name} items[{index}]"))
                });
            }
            Some(index) => format!(
                "items[{index}] is {}",
                sidekiq_guard::workload::json_type(&items[index])
            ),
        },
        Some(other) => format!("items is {}", sidekiq_guard::workload::json_type(other)),
    };
    Err(ManifestError::ListItems {
        source_name: source_name.to_owned(),
        kind: kind.to_owned(),
        what,
    })
}

/// Whether `documents` hold no object: none, or only empty `List`s (what `kubectl get` prints
/// when nothing matched).
fn no_objects(documents: &[Document]) -> bool {
    documents.iter().all(|document| {
        let value = &document.value;
        is_list(value) && value["items"].as_array().is_none_or(Vec::is_empty)
    })
}

/// Turns floats without a fraction (`1000.0`, `1e3`) into integers, as kubectl's YAML-to-JSON
/// conversion does before the API server reads an integer field: a grace period written
/// `1e3` is 1000 seconds, not an absent one.
fn whole_numbers(value: &mut Value) {
    match value {
        Value::Number(number) => {
            let whole = number
                .as_f64()
                .filter(|f| number.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15);
            if let Some(float) = whole {
                // Exact: within ±2^53 every whole float is an integer.
                *value = Value::from(float as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// An item of `list` with the kind and apiVersion of a typed list (`DeploymentList`, as the API
/// returns it) when the item has none; other items as they are.
pub(crate) fn list_item<'a>(item: &'a Value, list: &Value) -> Cow<'a, Value> {
    let kind = list_kind(list)
        .and_then(|kind| kind.strip_suffix("List"))
        .filter(|kind| !kind.is_empty());
    match (kind, item.as_object()) {
        (Some(kind), Some(fields)) if !fields.contains_key("kind") => {
            let mut typed = fields.clone();
            typed.insert("kind".into(), Value::from(kind));
            if let Some(api_version) = list
                .get("apiVersion")
                .filter(|_| !fields.contains_key("apiVersion"))
            {
                typed.insert("apiVersion".into(), api_version.clone());
            }
            Cow::Owned(Value::Object(typed))
        }
        _ => Cow::Borrowed(item),
    }
}

/// Whether `value` is a `List` (`v1/List`, or any `…List` kind). Its `items` are absent, null
/// (an empty list, as kubectl reads it) or objects: `check_list_items` refused anything else
/// when the document was read.
pub(crate) fn is_list(value: &Value) -> bool {
    list_kind(value).is_some()
}

/// The kind of a list document: `List`, or a typed one such as `DeploymentList`.
fn list_kind(value: &Value) -> Option<&str> {
    value
        .get("kind")
        .and_then(Value::as_str)
        .filter(|kind| kind.ends_with("List"))
}

/// Whether a string in `value` has a line that starts with a tab.
fn has_tab_led_line(value: &Value) -> bool {
    match value {
        Value::String(text) => text.starts_with('\t') || text.contains("\n\t"),
        Value::Array(items) => items.iter().any(has_tab_led_line),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.starts_with('\t') || has_tab_led_line(value)),
        _ => false,
    }
}

/// Writes documents in `format`.
pub(crate) fn write(
    out: &mut dyn Write,
    documents: &[Value],
    format: Format,
) -> Result<(), ManifestError> {
    match format {
        Format::Yaml => {
            for (index, document) in documents.iter().enumerate() {
                if index > 0 {
                    out.write_all(b"---\n").map_err(ManifestError::Write)?;
                }
                // A block scalar (`|`) whose line starts with a tab is valid YAML, but Go's
                // parser (kubectl, kustomize) refuses it: such a document gets quoted strings.
                let options = if has_tab_led_line(document) {
                    serde_saphyr::ser_options! { prefer_block_scalars: false }
                } else {
                    serde_saphyr::SerializerOptions::default()
                };
                let text = serde_saphyr::to_string_with_options(document, options)
                    .map_err(ManifestError::WriteYaml)?;
                out.write_all(text.as_bytes())
                    .map_err(ManifestError::Write)?;
            }
            Ok(())
        }
        Format::Json => {
            let list;
            let value = match documents {
                [one] => one,
                many => {
                    list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": many});
                    &list
                }
            };
            serde_json::to_writer_pretty(&mut *out, value)
                .map_err(|err| ManifestError::Write(err.into()))?;
            out.write_all(b"\n").map_err(ManifestError::Write)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_text(text: &str) -> Result<Input, ManifestError> {
        read(
            &[PathBuf::from("-")],
            false,
            &mut text.as_bytes(),
            &mut Vec::new(),
        )
    }

    #[test]
    fn reads_multi_document_yaml_from_stdin() {
        let input = read_text("kind: A\n---\nkind: B\n").unwrap();
        assert_eq!(input.format, Format::Yaml);
        let sources: Vec<_> = input.documents.iter().map(|d| d.source.as_str()).collect();
        assert_eq!(sources, vec!["stdin#1", "stdin#2"]);
        assert_eq!(input.documents[1].value, json!({"kind": "B"}));
    }

    /// What kubectl reads, however long or deep: the parser's default budget (250,000 nodes
    /// for the whole stream, depth 64) would refuse both. Aliases keep their limits.
    #[test]
    fn long_streams_and_deep_documents_are_read() {
        let items = vec!["0"; 300_000].join(",");
        let long = format!("kind: A\ndata: [{items}]\n---\nkind: B\n");
        let input = read_text(&long).unwrap();
        assert_eq!(input.documents.len(), 2);
        assert_eq!(
            input.documents[0].value["data"].as_array().unwrap().len(),
            300_000
        );

        let mut deep = "kind: A\nspec:\n".to_owned();
        for level in 1..100 {
            deep.push_str(&format!("{}a:\n", "  ".repeat(level)));
        }
        deep.push_str(&format!("{}leaf: 1\n", "  ".repeat(100)));
        // On the stack of a main thread (8 MiB), not a test thread's 2 MiB: an unoptimised
        // build's frames are large.
        let read = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || read_text(&deep).map(|input| input.documents.len()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(read.unwrap(), 1);

        let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
        assert!(read_text(laughs).is_err(), "alias expansion stays bounded");
    }

    #[test]
    fn sniffs_json() {
        let input = read_text(r#"{"kind": "Pod"}"#).unwrap();
        assert_eq!(input.format, Format::Json);
    }

    #[test]
    fn reads_what_kubectl_reads() {
        // File modes are YAML 1.1 octal, as Kubernetes reads them: 0644 is 420, not 644.0.
        let input =
            read_text("kind: A\nspec: {defaultMode: 0644, mode: 0400, port: 8080}\n").unwrap();
        assert_eq!(
            input.documents[0].value["spec"],
            json!({"defaultMode": 420, "mode": 256, "port": 8080})
        );
        // Several JSON objects in a row (`jq -c '.items[]'`).
        let input = read_text("{\"kind\": \"A\"}\n{\"kind\": \"B\"}\n").unwrap();
        assert_eq!(input.documents.len(), 2);
        assert_eq!(input.documents[1].value, json!({"kind": "B"}));
        // A YAML flow mapping starts like JSON.
        let input = read_text("{apiVersion: v1, kind: ConfigMap}\n").unwrap();
        assert_eq!(
            input.documents[0].value,
            json!({"apiVersion": "v1", "kind": "ConfigMap"})
        );
        assert_eq!(input.format, Format::Yaml);
        // A byte-order mark is not content.
        let input = read_text("\u{feff}{\"kind\": \"A\"}").unwrap();
        assert_eq!(input.documents[0].value, json!({"kind": "A"}));
        // The content decides, not the extension: YAML in a `.json` file is read as YAML, and
        // what starts as JSON there and is not fails as JSON, where it says.
        let mut documents = Vec::new();
        let json = parse("kind: A\n", "a.json", Some("json"), &mut documents).unwrap();
        assert!(!json);
        assert_eq!(documents[0].value, json!({"kind": "A"}));
        let err = parse("{\"kind\": }", "b.json", Some("json"), &mut Vec::new()).unwrap_err();
        assert_eq!(
            sidekiq_guard::errors::chain(&err),
            "b.json: not valid JSON: expected value at line 1 column 10"
        );
    }

    #[test]
    fn items_of_a_typed_list_take_its_kind() {
        let list = json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [{"metadata": {"name": "w"}}, {"kind": "Other"}]});
        let items = list["items"].as_array().unwrap();
        assert_eq!(
            *list_item(&items[0], &list),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}})
        );
        assert!(matches!(list_item(&items[1], &list), Cow::Borrowed(_)));
        let generic = json!({"apiVersion": "v1", "kind": "List", "items": [{"metadata": {}}]});
        assert!(matches!(
            list_item(&generic["items"][0], &generic),
            Cow::Borrowed(_)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_directory_is_not_entered() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("x.yaml"), "kind: A\n").unwrap();
        std::os::unix::fs::symlink("..", sub.join("up")).unwrap();
        assert_eq!(
            files(dir.path(), true, &mut Vec::new()).unwrap(),
            vec![sub.join("x.yaml")]
        );
    }

    /// A FIFO in a directory would block the read forever; one named on the command line is
    /// the user's choice.
    #[cfg(unix)]
    #[test]
    fn special_files_of_a_directory_are_skipped_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.yaml"), "kind: A\n").unwrap();
        let fifo = dir.path().join("b.yaml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let socket = dir.path().join("c.json");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::os::unix::fs::symlink(&fifo, dir.path().join("d.yml")).unwrap();
        let mut notes = Vec::new();
        assert_eq!(
            files(dir.path(), false, &mut notes).unwrap(),
            vec![dir.path().join("a.yaml")]
        );
        let at = dir.path().display();
        assert_eq!(
            notes,
            [
                format!("skipped {at}/b.yaml: a FIFO (named pipe), not a regular file"),
                format!("skipped {at}/c.json: a socket, not a regular file"),
                format!("skipped {at}/d.yml: a FIFO (named pipe), not a regular file"),
            ]
        );
        let mut notes = Vec::new();
        assert_eq!(files(&fifo, false, &mut notes).unwrap(), vec![fifo.clone()]);
        assert!(notes.is_empty());
    }

    #[test]
    fn rejects_scalars_and_bad_syntax_with_the_source() {
        assert_eq!(
            read_text("kind: A\n---\njust a string\n")
                .unwrap_err()
                .to_string(),
            "stdin#2: expected a Kubernetes object (a mapping with apiVersion and kind), found a string"
        );
        assert_eq!(
            read_text("kind: [").unwrap_err().to_string(),
            "stdin: not valid YAML"
        );
        assert_eq!(
            read_text("{\"kind\": ").unwrap_err().to_string(),
            "stdin: not valid JSON"
        );
    }

    #[test]
    fn yaml_output_reads_back_identically() {
        let docs = vec![
            json!({"kind": "A", "data": {"on": "yes", "n": "1", "cron": "0 2 * * *", "empty": ""}}),
            json!({"kind": "B", "list": [1, "two", null, true]}),
        ];
        let mut out = Vec::new();
        write(&mut out, &docs, Format::Yaml).unwrap();
        let back: Vec<Value> =
            serde_saphyr::from_multiple(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(back, docs);
    }

    #[test]
    fn utf16_with_a_byte_order_mark_is_read() {
        let text = "kind: Pod\nmetadata: {name: w}\n";
        let mut le = vec![0xFF, 0xFE];
        le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode_text(le).unwrap(), text);
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(decode_text(be).unwrap(), text);
        assert!(decode_text(vec![0xFF, 0xFE, b'k']).is_err(), "odd length");
        let err = decode_text(vec![0xC3, 0x28]).unwrap_err();
        assert!(err.to_string().contains("not contain valid UTF-8"), "{err}");
    }

    #[test]
    fn whole_floats_are_read_as_integers_as_kubectl_reads_them() {
        let mut documents = Vec::new();
        parse(
            "kind: Pod\nspec: {terminationGracePeriodSeconds: 1e3, a: 1000.0, b: 1.5, c: -2.0, d: 7}\n",
            "pod.yaml",
            Some("yaml"),
            &mut documents,
        )
        .unwrap();
        assert_eq!(
            documents[0].value["spec"],
            json!({"terminationGracePeriodSeconds": 1000, "a": 1000, "b": 1.5, "c": -2, "d": 7})
        );
        assert!(documents[0].value["spec"]["a"].is_i64());
    }

    #[test]
    fn strings_with_tab_led_lines_are_quoted_not_block_scalars() {
        let docs = vec![
            json!({"kind": "ConfigMap", "data": {"q.sql": "\tSELECT 1;\n", "script": "a\n\tb\n"}}),
            json!({"kind": "B", "data": {"plain": "x\ny\n"}}),
        ];
        let mut out = Vec::new();
        write(&mut out, &docs, Format::Yaml).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            !text
                .lines()
                .any(|line| line.trim_start_matches(' ').starts_with('\t')),
            "{text}"
        );
        // Other documents keep their block scalars.
        assert!(text.contains("plain: |"), "{text}");
        let back: Vec<Value> = serde_saphyr::from_multiple(text).unwrap();
        assert_eq!(back, docs);
    }

    #[test]
    fn several_json_documents_become_a_list() {
        let mut out = Vec::new();
        write(
            &mut out,
            &[json!({"kind": "A"}), json!({"kind": "B"})],
            Format::Json,
        )
        .unwrap();
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["kind"], "List");
        assert_eq!(back["items"][1]["kind"], "B");
    }
}
