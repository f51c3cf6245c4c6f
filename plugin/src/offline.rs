//! What the offline commands (`inject`, `validate -f`) share: the policy, the sidecar mode, the
//! objects `-l` and `-n` select, and how unreadable inputs end the run.

use std::cell::Cell;
use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::Value;
use sidekiq_guard::errors::printable_lines;
use sidekiq_guard::pointer::Pointer as _;
use sidekiq_guard::selector::Selector;
use sidekiq_guard::{Context, Mode, Policy};

use crate::cli::{ClusterArgs, ModeArg};
use crate::error::Error;
use crate::manifests::ManifestError;

/// Policy, sidecar mode and selection for commands that have no cluster to ask.
pub(crate) struct Offline {
    pub(crate) policy: Policy,
    pub(crate) mode: Mode,
    /// `-l`, applied to each object's own labels as kubectl applies it to files.
    selector: Selector,
    /// `-l` as given, when given.
    selector_text: Option<String>,
    /// Whether `-l` selected any object so far: one that selects none fails the run, as
    /// `kubectl apply -l` refuses to apply nothing — a typo must not pass a CI gate.
    selected: Cell<bool>,
    /// `-n`: the namespace of objects that name none, and the only one allowed.
    namespace: Option<String>,
}

impl Offline {
    /// Loads `--policy` (or the default policy) and resolves the sidecar mode: the flag, else the
    /// policy's, with `auto` meaning native (see [`Mode::resolve_offline`]). Every object is
    /// selected until [`Offline::select`] says otherwise.
    pub(crate) fn load(policy: Option<&Path>, mode: Option<ModeArg>) -> Result<Self, Error> {
        let policy = match policy {
            None => Policy::default(),
            Some(path) => {
                let name = path.display().to_string();
                let text = fs::read_to_string(path).map_err(|source| Error::PolicyRead {
                    path: name.clone(),
                    source,
                })?;
                Policy::parse(&text).map_err(|source| Error::Policy { path: name, source })?
            }
        };
        let mode = mode.map_or_else(|| Mode::resolve_offline(policy.sidecar.mode), Mode::from);
        Ok(Self {
            policy,
            mode,
            selector: Selector::default(),
            selector_text: None,
            selected: Cell::new(false),
            namespace: None,
        })
    }

    /// Reads `-l` and `-n` for objects read from files. `-A` chooses namespaces of a cluster,
    /// which files do not have: it is refused rather than ignored.
    pub(crate) fn select(mut self, cluster: &ClusterArgs) -> Result<Self, Error> {
        if cluster.all_namespaces {
            return Err(Error::Usage(
                "-A/--all-namespaces chooses namespaces of the cluster; with -f the files are the input (-n NAME gives objects without a namespace one)".into(),
            ));
        }
        self.selector = Selector::parse(cluster.selector.as_deref().unwrap_or_default())
            .map_err(|e| Error::Usage(e.to_string()))?;
        self.selector_text.clone_from(&cluster.selector);
        self.namespace.clone_from(&cluster.namespace);
        Ok(self)
    }

    /// The core's context: objects without a namespace are in `-n`'s, if given.
    pub(crate) fn context(&self) -> Context<'_> {
        Context {
            policy: &self.policy,
            mode: self.mode,
            namespace: self.namespace.as_deref(),
        }
    }

    /// `-n`, if given.
    pub(crate) fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Whether the command reads `object` (one object, not a `List`): selected by `-l`. Like
    /// `kubectl apply -n`, an object in another namespace than `-n`'s is an error, recorded in
    /// `unreadable` (and the object not read).
    pub(crate) fn reads(
        &self,
        object: &Value,
        source: &str,
        unreadable: &mut Vec<ManifestError>,
    ) -> bool {
        match self.selects(object, source) {
            Ok(selected) => {
                if selected {
                    self.selected.set(true);
                }
                selected
            }
            Err(mismatch) => {
                unreadable.push(mismatch);
                false
            }
        }
    }

    /// The error of a `-l` that selected no object of the input, if it did not. Only where every
    /// input was read (`unreadable` empty): otherwise the unread ones may hold the objects.
    pub(crate) fn check_selected(&self, unreadable: &mut Vec<ManifestError>) {
        if let Some(selector) = &self.selector_text
            && !self.selected.get()
            && unreadable.is_empty()
        {
            unreadable.push(ManifestError::NothingSelected(selector.clone()));
        }
    }

    fn selects(&self, object: &Value, source: &str) -> Result<bool, ManifestError> {
        let found = object
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty());
        if let (Some(given), Some(found)) = (&self.namespace, found)
            && given != found
        {
            return Err(ManifestError::NamespaceMismatch {
                source_name: source.to_owned(),
                found: found.to_owned(),
                given: given.clone(),
            });
        }
        Ok(self.selector.selects(object))
    }
}

/// Writes the notes of reading the input (`note: …`) to `err`.
pub(crate) fn print_notes(notes: &[String], err: &mut dyn Write) -> Result<(), Error> {
    for note in notes {
        writeln!(err, "note: {}", printable_lines(note.clone())).map_err(Error::Output)?;
    }
    Ok(())
}

/// Ends a command that went on past inputs it could not read (as `kubectl apply -f DIR`
/// applies the rest): none, and it succeeds; one is the error; several are each printed to
/// `err`, then counted.
pub(crate) fn fail_on_unreadable(
    mut unreadable: Vec<ManifestError>,
    err: &mut dyn Write,
    rest: &str,
) -> Result<(), Error> {
    match unreadable.len() {
        0 => Ok(()),
        1 => Err(unreadable.remove(0).into()),
        count => {
            for problem in &unreadable {
                writeln!(err, "error: {}", sidekiq_guard::errors::chain(problem))
                    .map_err(Error::Output)?;
            }
            Err(Error::Usage(format!(
                "{count} input(s) could not be read; {rest}"
            )))
        }
    }
}
