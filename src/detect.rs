//! Finding the Sidekiq container of a pod.
//!
//! In order: the container named by `sidekiq-guard.io/container`; else the containers whose
//! `command`+`args` run `sidekiq`/`sidekiqswarm` (directly, by path, through `bundle exec`, `exec`,
//! `env`, an init wrapper such as `tini`, an entrypoint script that `exec "$@"`s, or inside
//! `sh -c`/`bash -lc` scripts); else a container named `sidekiq` without a `command`, whose image
//! is assumed to run Sidekiq. Two candidates and no annotation is ambiguous: we never guess.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::shell::{self, ShellError, Signals};
use crate::sidekiq::flags::Timeout;
use crate::sidekiq::{self, Program};

/// How the Sidekiq container was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Named by the `sidekiq-guard.io/container` annotation.
    Annotation,
    /// Its command line runs Sidekiq.
    Command,
    /// Named `sidekiq`, with no command: the image's entrypoint runs it.
    Name,
}

/// The Sidekiq container of a pod and what its command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidekiqContainer {
    /// Index in `spec.containers`.
    pub index: usize,
    /// Container name.
    pub name: String,
    /// How it was found.
    pub evidence: Evidence,
    /// The executable, when the command line shows it.
    pub program: Option<Program>,
    /// The arguments given to Sidekiq, with Kubernetes `$(VAR)` and shell `$VAR` references
    /// expanded where the container's `env` holds a literal value.
    pub args: Vec<String>,
    /// A `sh -c` script of this container that could not be read.
    pub script_error: Option<ShellError>,
    /// Whether Sidekiq is started by a shell script (`sh -c "…"`), which expands `$VAR` itself.
    pub via_shell: bool,
    /// Why the shell of the script that starts Sidekiq may keep the kubelet's SIGTERM (and a
    /// preStop's `kill 1`) from it; `None` when they reach Sidekiq.
    pub signals_kept: Option<SignalsKept>,
    /// The Redis variable (`REDIS_URL`, `REDIS_PROVIDER`) the command line sets for what it
    /// runs, which the probe, given the container's `env`, does not see.
    pub redis_set_in_command: Option<RedisVariable>,
}

/// A variable that says where Sidekiq's Redis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisVariable {
    /// `REDIS_URL`.
    Url,
    /// `REDIS_PROVIDER`, naming the variable that holds the URL.
    Provider,
}

impl RedisVariable {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            RedisVariable::Url => sidekiq::REDIS_URL,
            RedisVariable::Provider => sidekiq::REDIS_PROVIDER,
        }
    }
}

/// Why a shell script's SIGTERM may not reach the Sidekiq it starts, or reach it only for the
/// container to end at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalsKept {
    /// Sidekiq runs in a pipeline or in the background.
    Piped,
    /// Sidekiq runs without `exec`, and the script may go on after it.
    Waited,
    /// Sidekiq is the script's last command, without `exec`, and the shell is one that may stay
    /// its parent: dash, Debian's `sh`, does.
    NotExeced {
        /// The shell's name, as the command line gives it (`sh`).
        shell: String,
    },
    /// The script traps `TERM` and does not pass it on: its trap runs only once a foreground
    /// Sidekiq has ended, and one in the background it does not signal.
    Trapped,
    /// Under an init (`dumb-init`, `tini`), the shell gets SIGTERM, traps nothing and dies of
    /// it; the init exits with its child, and the container's end kills Sidekiq at once —
    /// whether or not the init passed SIGTERM to it too (`dumb-init`, `tini -g`).
    ShellKilled {
        /// The init, as the command line names it.
        init: String,
    },
    /// Sidekiq runs in the background of a script that traps `TERM` and waits for it once:
    /// the signal interrupts that `wait`, and once the trap has run the script ends, and the
    /// container with it.
    EndsFirst,
}

impl SignalsKept {
    /// How the script runs Sidekiq and what becomes of SIGTERM, for a message.
    pub fn how(&self) -> String {
        match self {
            SignalsKept::Piped => {
                "in a pipeline or the background: the shell stays PID 1 and keeps SIGTERM".into()
            }
            SignalsKept::Waited => {
                "without exec, as a child: the shell stays PID 1 and keeps SIGTERM".into()
            }
            SignalsKept::NotExeced { shell } if shell == "sh" => {
                "without exec: sh, if dash (as on Debian), stays PID 1 and keeps SIGTERM".into()
            }
            SignalsKept::NotExeced { shell } if shell == "dash" => {
                "without exec: dash stays PID 1 and keeps SIGTERM".into()
            }
            SignalsKept::NotExeced { shell } => {
                format!("without exec: {shell} may stay PID 1 and keep SIGTERM")
            }
            SignalsKept::Trapped => "under a shell that traps SIGTERM and does not pass it on".into(),
            SignalsKept::ShellKilled { init } => format!(
                "through a shell under {init}: SIGTERM kills the shell, and {init} and the container end with it"
            ),
            SignalsKept::EndsFirst => {
                "in the background, waited for only once: a trapped SIGTERM ends the wait, then the script and the container".into()
            }
        }
    }

    /// What to change.
    pub fn hint(&self) -> &'static str {
        match self {
            SignalsKept::EndsFirst => {
                "wait for Sidekiq again after the trap has run (a second `wait $PID`, or `wait` in the trap), or start it with exec as the script's last command"
            }
            _ => {
                "start it with exec, as the script's last command and without a pipe (Sidekiq logs to stdout: `exec bundle exec sidekiq …`)"
            }
        }
    }
}

/// The outcome of detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// Exactly one Sidekiq container.
    Found(SidekiqContainer),
    /// Several containers run Sidekiq and none is named by the annotation.
    Ambiguous(Vec<String>),
    /// The annotation names a container the pod does not have.
    NamedMissing(String),
    /// No container runs Sidekiq.
    None,
}

/// Detects the Sidekiq container among `containers` (the pod's `spec.containers`).
///
/// A container named like the probe sidecar ([`crate::sidecar::NAME`]) is never the Sidekiq
/// container: the name is reserved for the sidecar.
pub fn detect(containers: &[Value], annotated: Option<&str>) -> Detection {
    if let Some(wanted) = annotated {
        return match containers
            .iter()
            .position(|c| name_of(c) == wanted && eligible(c))
        {
            Some(index) => {
                let container = &containers[index];
                let mut found = inspect(index, container, Conditions::Accepted).unwrap_or_else(
                    |script_error| SidekiqContainer {
                        index,
                        name: name_of(container).to_owned(),
                        evidence: Evidence::Annotation,
                        program: None,
                        args: Vec::new(),
                        script_error,
                        via_shell: false,
                        signals_kept: None,
                        redis_set_in_command: None,
                    },
                );
                found.evidence = Evidence::Annotation;
                Detection::Found(found)
            }
            None => Detection::NamedMissing(wanted.to_owned()),
        };
    }
    let mut candidates: Vec<SidekiqContainer> = candidates(containers, None).collect();
    match candidates.len() {
        1 => Detection::Found(candidates.remove(0)),
        0 => by_name(containers).map_or(Detection::None, Detection::Found),
        _ => Detection::Ambiguous(candidates.into_iter().map(|c| c.name).collect()),
    }
}

/// The names of the containers besides the one at `chosen` whose command lines run Sidekiq:
/// when the annotation picks one of several, the others are left unprotected.
pub fn other_sidekiq_containers(containers: &[Value], chosen: usize) -> Vec<&str> {
    candidates(containers, Some(chosen))
        .map(|found| name_of(&containers[found.index]))
        .collect()
}

/// The containers whose command lines run Sidekiq, read without conditions (a script that
/// starts it only under one is not taken for a Sidekiq container); the one at `skip` is not
/// read at all.
fn candidates(
    containers: &[Value],
    skip: Option<usize>,
) -> impl Iterator<Item = SidekiqContainer> + '_ {
    containers
        .iter()
        .enumerate()
        .filter(move |(index, container)| Some(*index) != skip && eligible(container))
        .filter_map(|(index, container)| inspect(index, container, Conditions::Refused).ok())
}

/// Whether `container` may be the Sidekiq container: the probe sidecar's name is reserved.
fn eligible(container: &Value) -> bool {
    name_of(container) != crate::sidecar::NAME
}

/// Whether any container of `containers` runs Sidekiq by any of the rules above.
pub fn runs_sidekiq(containers: &[Value]) -> bool {
    !matches!(detect(containers, None), Detection::None)
}

fn by_name(containers: &[Value]) -> Option<SidekiqContainer> {
    let index = containers
        .iter()
        .position(|c| name_of(c) == "sidekiq" && words(c, "command").next().is_none())?;
    let container = &containers[index];
    let env = LazyEnv::new(container);
    // Only args remain, and they go to the image's `sidekiq` entrypoint.
    let args = words(container, "args")
        .map(|arg| env.expand(arg).into_owned())
        .collect();
    Some(SidekiqContainer {
        index,
        name: name_of(container).to_owned(),
        evidence: Evidence::Name,
        program: Some(Program::Sidekiq),
        args,
        script_error: None,
        via_shell: false,
        signals_kept: None,
        redis_set_in_command: None,
    })
}

/// Whether a Sidekiq that a script starts only under a condition counts.
///
/// Unannotated, it does not: `if [ "$ROLE" = worker ]; then exec sidekiq; else exec puma; fi`
/// is the entrypoint of the web pods too, and probes reading a heartbeat that never comes would
/// restart them forever. The `container` annotation says which container runs Sidekiq, and
/// then its flags are read from the conditional invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conditions {
    Accepted,
    Refused,
}

/// Reads a container's command line; `Ok` when it runs Sidekiq, else the script error, if any,
/// that kept us from seeing it.
fn inspect(
    index: usize,
    container: &Value,
    conditions: Conditions,
) -> Result<SidekiqContainer, Option<ShellError>> {
    let env = LazyEnv::new(container);
    let argv: Vec<Cow<'_, str>> = words(container, "command")
        .chain(words(container, "args"))
        .map(|word| env.expand(word))
        .collect();
    let mut script_error = None;
    let Some(found) = invocation(&argv, &env, &mut script_error, conditions, 0) else {
        return Err(script_error);
    };
    Ok(SidekiqContainer {
        index,
        name: name_of(container).to_owned(),
        evidence: Evidence::Command,
        program: Some(found.program),
        args: found.args,
        script_error,
        via_shell: found.via_shell,
        signals_kept: found.signals_kept,
        redis_set_in_command: found.redis_set,
    })
}

/// The Redis variable one command of a script assigns for what it runs: among the assignments
/// and wrappers (`env`) before it (`REDIS_URL=… exec sidekiq`), or as the arguments of
/// `export`, `readonly`, `declare`, `typeset`, `local`; a plain `REDIS_URL=…` too, since the
/// variable is in the environment already and the change reaches what the script starts.
fn assigned_in<S: AsRef<str>>(words: &[S]) -> Option<RedisVariable> {
    let runs = shell::skip_wrappers(words);
    let declared = match runs.first().map(AsRef::as_ref) {
        Some("export" | "readonly" | "declare" | "typeset" | "local") => &runs[1..],
        _ => &[],
    };
    redis_assigned(&words[..words.len() - runs.len()]).or_else(|| redis_assigned(declared))
}

/// The Redis variable among `words` that are assignments (`REDIS_URL=…`).
fn redis_assigned<S: AsRef<str>>(words: &[S]) -> Option<RedisVariable> {
    words
        .iter()
        .map(AsRef::as_ref)
        .filter(|word| shell::is_assignment(word))
        .find_map(|word| {
            [RedisVariable::Url, RedisVariable::Provider]
                .into_iter()
                .find(|variable| {
                    word.strip_prefix(variable.name())
                        .is_some_and(|rest| rest.starts_with('='))
                })
        })
}

/// A Sidekiq invocation.
struct Invocation {
    program: Program,
    args: Vec<String>,
    /// Started by a shell script.
    via_shell: bool,
    /// Why the signals sent to its script's shell may not reach it.
    signals_kept: Option<SignalsKept>,
    /// The Redis variable its command line sets for it (`env REDIS_URL=… sidekiq`, or in its
    /// script).
    redis_set: Option<RedisVariable>,
}

/// Finds a Sidekiq invocation in one command line, looking through wrappers and shell scripts;
/// also tells whether it was found inside a script.
fn invocation<S: AsRef<str>>(
    words: &[S],
    env: &LazyEnv<'_>,
    script_error: &mut Option<ShellError>,
    conditions: Conditions,
    depth: usize,
) -> Option<Invocation> {
    let command = shell::skip_wrappers(words);
    let first = command.first()?;
    let wrappers = &words[..words.len() - command.len()];
    if let Some(program) = Program::from_basename(shell::basename(first.as_ref())) {
        let args: Vec<String> = command[1..].iter().map(|w| w.as_ref().to_owned()).collect();
        // `sidekiq -V` (a version check before `exec puma`) prints and exits: no worker runs.
        if args
            .iter()
            .any(|a| matches!(a.as_str(), "-V" | "--version" | "-h" | "--help"))
        {
            return None;
        }
        return Some(Invocation {
            program,
            args,
            via_shell: depth > 0,
            signals_kept: None,
            redis_set: redis_assigned(wrappers),
        });
    }
    let (script, args) = shell::script_and_args(command)?;
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let shell = shell::basename(first.as_ref());
    let script = Script {
        text: script,
        shell,
        args: &args,
        init: init(wrappers, env),
    };
    let found = in_script(&script, env, script_error, conditions, depth)?;
    Some(Invocation {
        redis_set: redis_assigned(wrappers).or(found.redis_set),
        ..found
    })
}

/// An init process before a script's shell: it passes the signals it gets on, and exits as
/// soon as its child (the shell) has.
#[derive(Debug, Clone, Copy)]
struct Init<'a> {
    /// Its name, as the command line gives it.
    name: &'a str,
    /// It signals the whole process group rather than its child alone: `dumb-init` in its
    /// setsid mode (also where the manifest cannot tell); `tini` and `catatonit` when told to
    /// (`-g`).
    whole_group: bool,
}

/// The init among `wrappers`, if any.
fn init<'w, S: AsRef<str>>(wrappers: &'w [S], env: &LazyEnv<'_>) -> Option<Init<'w>> {
    wrappers.iter().enumerate().find_map(|(at, wrapper)| {
        // The init's own options, past the values of those that take one (`-p SIGKILL`).
        let options = || {
            let mut words = wrappers[at + 1..].iter().map(AsRef::as_ref);
            std::iter::from_fn(move || {
                let word = words.next().filter(|w| w.starts_with('-') && *w != "--")?;
                if matches!(word, "-p" | "-e") {
                    words.next();
                }
                Some(word)
            })
        };
        let short = |w: &str, flag: char| !w.starts_with("--") && w[1..].contains(flag);
        let name = shell::basename(wrapper.as_ref());
        let whole_group = match name {
            "dumb-init" => {
                crate::dumb_init::Options::parse(&wrappers[at + 1..]).setsid(env) != Some(false)
            }
            "tini" | "tini-static" | "catatonit" => options().any(|w| short(w, 'g')),
            _ => return None,
        };
        Some(Init { name, whole_group })
    })
}

/// Whether `shell` runs the last command of a `-c` script in place of itself, so that it gets
/// the shell's signals: bash (5.1+), zsh, ksh and busybox ash do; dash does not, and `sh` may
/// be dash.
fn execs_last_command(shell: &str) -> bool {
    matches!(shell, "bash" | "zsh" | "ksh" | "ash")
}

/// A `-c` script and what runs it.
struct Script<'a> {
    text: &'a str,
    /// The shell's name (`sh`, `bash`…).
    shell: &'a str,
    /// Its positional parameters.
    args: &'a [String],
    /// The init before the shell, if any.
    init: Option<Init<'a>>,
}

impl Script<'_> {
    /// Why SIGTERM does not get a command of this script whose signals are `signals` its
    /// shutdown time, if it does not.
    fn signals_kept(&self, signals: Signals) -> Option<SignalsKept> {
        let shell_killed = || {
            self.init.map(|init| SignalsKept::ShellKilled {
                init: init.name.to_owned(),
            })
        };
        match signals {
            Signals::Reach => None,
            Signals::ReachIfShellExecsLast
                if execs_last_command(self.shell) || !shell::is_shell(self.shell) =>
            {
                None
            }
            Signals::ReachIfShellExecsLast => shell_killed().or(Some(SignalsKept::NotExeced {
                shell: self.shell.to_owned(),
            })),
            Signals::Piped | Signals::Background => shell_killed().or(Some(SignalsKept::Piped)),
            Signals::Waited => shell_killed().or(Some(SignalsKept::Waited)),
            Signals::ReachIfGroupSignalled => {
                (!self.init.is_some_and(|init| init.whole_group)).then_some(SignalsKept::Trapped)
            }
            Signals::EndsFirst => Some(SignalsKept::EndsFirst),
        }
    }
}

fn in_script(
    script: &Script<'_>,
    env: &LazyEnv<'_>,
    script_error: &mut Option<ShellError>,
    conditions: Conditions,
    depth: usize,
) -> Option<Invocation> {
    if depth >= shell::MAX_SHELL_DEPTH {
        return None;
    }
    let lookup = |name: &str| env.get(name);
    let unset = |name: &str| env.unset(name);
    match shell::commands_with_args(script.text, Some(script.args), &lookup, &unset) {
        Ok(commands) => {
            // Nearly no script names a Redis variable: a scan of its text spares the rest.
            let assigned = script
                .text
                .contains("REDIS_")
                .then(|| {
                    commands
                        .iter()
                        .find_map(|command| assigned_in(&command.words))
                })
                .flatten();
            let found = commands
                .iter()
                .filter(|command| conditions == Conditions::Accepted || !command.conditional)
                .filter_map(|command| {
                    let found =
                        invocation(&command.words, env, script_error, conditions, depth + 1)?;
                    let here = script.signals_kept(command.signals);
                    Some(Invocation {
                        signals_kept: here.or(found.signals_kept),
                        redis_set: found.redis_set.or(assigned),
                        ..found
                    })
                });
            longest_timeout(found)
        }
        Err(err) => {
            *script_error = Some(err);
            None
        }
    }
}

/// Of several Sidekiq invocations in one script (`sidekiq -q a -t 10 & sidekiq -q b -t 300 &
/// wait`), the one the grace period must wait for: the longest `-t`; one whose `-t` is only
/// known at run time above all, so that its finding says so. The first among equals.
fn longest_timeout(found: impl Iterator<Item = Invocation>) -> Option<Invocation> {
    let rank = |args: &[String]| match crate::sidekiq::Flags::parse(args).timeout {
        Some(Timeout::Seconds(secs)) => secs,
        None => crate::sidekiq::DEFAULT_TIMEOUT_SECS,
        Some(Timeout::AtRunTime(_) | Timeout::Invalid) => u64::MAX,
    };
    let mut best: Option<(u64, Invocation)> = None;
    for candidate in found {
        let candidate_rank = rank(&candidate.args);
        if best.as_ref().is_none_or(|(rank, _)| candidate_rank > *rank) {
            best = Some((candidate_rank, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Whether an argument of Sidekiq that still holds `$` after the literal `env` was expanded gets
/// its value at run time, rather than reaching Sidekiq as written: in a shell script the shell
/// expands `$VAR` (from the image, `valueFrom`, `envFrom`); outside one only Kubernetes expands,
/// and only `$(NAME)` for a `NAME` the container defines, so `-t $T` reaches Sidekiq literally
/// and it refuses to start. `env` is the Sidekiq container's.
pub(crate) fn set_at_run_time(env: &LazyEnv<'_>, via_shell: bool, value: &str) -> bool {
    if !value.contains('$') {
        return false;
    }
    if via_shell {
        return true;
    }
    let names = crate::sidecar::references(value);
    let escaped = value.replace("$$", "");
    let bare = escaped.matches('$').count() > names.len();
    // A `$(NAME)` left after expanding a NAME with a literal value was written `$$(NAME)`:
    // Kubernetes passes it on as text.
    !names.is_empty()
        && !bare
        && names
            .iter()
            .all(|name| !env.unset(name) && !env.is_literal(name))
}

/// Where the value of a `$VAR`, `${VAR}` or `$(VAR)` reference (or a command substitution) in
/// `container`'s command line comes from at run time, for a message: "a ConfigMap", "a Secret"…
pub fn run_time_origin(container: &Value, reference: &str) -> &'static str {
    let inner = reference
        .strip_prefix("$(")
        .or_else(|| reference.strip_prefix("${"))
        .or_else(|| reference.strip_prefix('$'));
    let name: &str = inner.map_or("", |inner| {
        let end = inner
            .find(|c: char| c != '_' && !c.is_ascii_alphanumeric())
            .unwrap_or(inner.len());
        &inner[..end]
    });
    let closed = |close: char| inner.is_some_and(|i| i[name.len()..].starts_with(close));
    let variable = !name.is_empty()
        && (if reference.starts_with("$(") {
            closed(')')
        } else {
            !reference.starts_with("${") || closed('}') || closed(':')
        });
    if !variable {
        return if reference.starts_with("$((") {
            "an arithmetic expansion"
        } else {
            "a command substitution"
        };
    }
    // The last entry of a name is the one the container gets.
    let entry = crate::workload::env_entry(crate::workload::list(container, "env"), name);
    match entry.and_then(|e| e.get("valueFrom")) {
        Some(from) if from.get("configMapKeyRef").is_some() => "a ConfigMap",
        Some(from) if from.get("secretKeyRef").is_some() => "a Secret",
        Some(_) => "the pod's own fields",
        None if container.get("envFrom").is_some_and(|f| !f.is_null()) => {
            "the container's envFrom (a ConfigMap or a Secret)"
        }
        None => "the script or the image's environment",
    }
}

/// The container's `env` entries that carry a literal `value` (later entries win, like in
/// Kubernetes); `valueFrom` entries are unknown until run time. An entry with neither is the
/// empty string, as Kubernetes sets it (`value` defaults to `""`; Helm renders an unset value
/// so).
pub fn literal_env(container: &Value) -> HashMap<String, String> {
    let mut env = HashMap::new();
    let budget = shell::Budget::default();
    for entry in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            continue;
        };
        match entry.get("value") {
            Some(Value::String(value)) => {
                let value = expand_kubernetes(value, &env, &budget);
                env.insert(name.to_owned(), value);
            }
            _ if is_empty_literal(entry) => {
                env.insert(name.to_owned(), String::new());
            }
            // A later `valueFrom` of the same name is what the container gets.
            _ => {
                env.remove(name);
            }
        }
    }
    env
}

/// An `env` entry the container gets as the empty string: no `valueFrom`, and a `value` that is
/// `""`, `null` or absent (the API server stores all three alike).
pub(crate) fn is_empty_literal(entry: &Value) -> bool {
    entry.get("valueFrom").is_none_or(Value::is_null)
        && entry
            .get("value")
            .is_none_or(|value| value.is_null() || value.as_str() == Some(""))
}

/// Kubernetes' `$(VAR)` expansion in `command`, `args` and `env` values: known variables are
/// replaced, `$$` is a literal `$`, unknown references stay as written — and so do values past
/// [`shell::MAX_EXPANSION`] or what is left of `budget`, shared by one container's
/// expansions: `V2=$(V1)$(V1)` repeated must not double into gigabytes.
pub fn expand_kubernetes(
    text: &str,
    env: &HashMap<String, String>,
    budget: &shell::Budget,
) -> String {
    if !text.contains('$') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Dollar => out.push('$'),
            Piece::Reference(name) => match env.get(name).filter(|value| budget.expand(value)) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            },
        }
    }
    out
}

/// A piece of a string Kubernetes expands (`command`, `args`, `env` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Text as written, a `$` that starts no reference included.
    Text(&'a str),
    /// `$$`, a literal `$`.
    Dollar,
    /// `$(NAME)`.
    Reference(&'a str),
}

/// The pieces of `text`, read once from left to right. A `$(` after the last `)` has no end,
/// which is known without searching the rest of the text for each one: 1.5 million `$(` in a
/// command line took minutes.
pub(crate) fn pieces(text: &str) -> impl Iterator<Item = Piece<'_>> {
    let last_close = text.rfind(')');
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let start = rest.find('$').unwrap_or(rest.len());
        if start > 0 {
            let (text, tail) = rest.split_at(start);
            rest = tail;
            return Some(Piece::Text(text));
        }
        let (dollar, after) = rest.split_at(1);
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
            return Some(Piece::Dollar);
        }
        let closed_later = last_close.is_some_and(|last| last > text.len() - after.len());
        if let Some((name, tail)) = after
            .strip_prefix('(')
            .filter(|_| closed_later)
            .and_then(|inner| inner.split_once(')'))
        {
            rest = tail;
            return Some(Piece::Reference(name));
        }
        rest = after;
        Some(Piece::Text(dollar))
    })
}

/// A container's `name` (empty when missing).
pub fn name_of(container: &Value) -> &str {
    container.get("name").and_then(Value::as_str).unwrap_or("")
}

/// The strings of a container's `command` or `args` (non-strings and absence give nothing).
/// The strings of `container`'s `key` list (`command`, `args`).
pub(crate) fn words<'a>(container: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    container
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// A container's literal env, read only when a `$` asks for it (most command lines have none),
/// as a script run in it sees it.
pub(crate) struct LazyEnv<'a> {
    container: &'a Value,
    env: OnceCell<HashMap<String, String>>,
    /// The names the manifest may define; `None` when an `envFrom` may define any.
    names: OnceCell<Option<HashSet<&'a str>>>,
    /// What expanding the command line may still add.
    budget: shell::Budget,
}

impl<'a> LazyEnv<'a> {
    pub(crate) fn new(container: &'a Value) -> Self {
        Self {
            container,
            env: OnceCell::new(),
            names: OnceCell::new(),
            budget: shell::Budget::default(),
        }
    }

    fn map(&self) -> &HashMap<String, String> {
        self.env.get_or_init(|| literal_env(self.container))
    }

    fn expand(&self, word: &'a str) -> Cow<'a, str> {
        if word.contains('$') {
            Cow::Owned(expand_kubernetes(word, self.map(), &self.budget))
        } else {
            Cow::Borrowed(word)
        }
    }

    /// `name`'s literal value. One longer than [`shell::MAX_EXPANSION`] is not expanded, so
    /// it is not copied either: copied for each of thousands of `$A`, a long `A` made gigabytes.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.literal(name).cloned()
    }

    /// Whether `name` has a literal value that Kubernetes expands (one within
    /// [`shell::MAX_EXPANSION`]).
    pub(crate) fn is_literal(&self, name: &str) -> bool {
        self.literal(name).is_some()
    }

    fn literal(&self, name: &str) -> Option<&String> {
        self.map()
            .get(name)
            .filter(|value| value.len() <= shell::MAX_EXPANSION)
    }

    /// Whether nothing in the manifest can give the container `name` — no `env` entry of that
    /// name, no `envFrom` — so that a script's default for it is taken as what applies (the
    /// image's own `ENV` cannot be seen from here). The names are gathered once, not looked for
    /// in the `env` list at each `${NAME:-…}` or `$(NAME)`.
    pub(crate) fn unset(&self, name: &str) -> bool {
        let names = self.names.get_or_init(|| {
            let from = self.container.get("envFrom").is_some_and(|f| !f.is_null());
            (!from).then(|| {
                crate::workload::list(self.container, "env")
                    .iter()
                    .filter_map(|entry| entry.get("name").and_then(Value::as_str))
                    .collect()
            })
        });
        names.as_ref().is_some_and(|names| !names.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn container(name: &str, command: &[&str], args: &[&str]) -> Value {
        let mut c = json!({"name": name, "image": "app"});
        if !command.is_empty() {
            c["command"] = json!(command);
        }
        if !args.is_empty() {
            c["args"] = json!(args);
        }
        c
    }

    #[test]
    fn only_assignments_for_what_runs_set_redis() {
        let set = |words: &[&str]| {
            assigned_in(&words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>())
                .map(RedisVariable::name)
        };
        assert_eq!(
            set(&["REDIS_URL=redis://q", "exec", "sidekiq"]),
            Some("REDIS_URL")
        );
        assert_eq!(
            set(&["env", "-u", "X", "REDIS_PROVIDER=Q", "sidekiq"]),
            Some("REDIS_PROVIDER")
        );
        assert_eq!(
            set(&["export", "A=1", "REDIS_URL=redis://q"]),
            Some("REDIS_URL")
        );
        assert_eq!(set(&["REDIS_URL=redis://q"]), Some("REDIS_URL"));
        // Printed, compared or passed as an argument: no assignment.
        assert_eq!(set(&["echo", "REDIS_URL=redis://q"]), None);
        assert_eq!(set(&["sidekiq", "REDIS_URL=redis://q"]), None);
        assert_eq!(set(&["REDIS_URL_BACKUP=redis://q", "sidekiq"]), None);
        assert_eq!(set(&["export", "REDIS_URL"]), None);
    }

    fn found(containers: &[Value]) -> SidekiqContainer {
        match detect(containers, None) {
            Detection::Found(found) => found,
            other => panic!("expected a Sidekiq container, got {other:?}"),
        }
    }

    #[rstest]
    #[case(&["sidekiq", "-t", "60"], &[])]
    #[case(&["bundle", "exec", "sidekiq"], &["-t", "60"])]
    #[case(&["/usr/local/bin/bundle", "exec", "sidekiq", "-t", "60"], &[])]
    #[case(&["/app/bin/sidekiq", "-t", "60"], &[])]
    #[case(&["exec", "sidekiq", "-t", "60"], &[])]
    #[case(&["env", "RAILS_ENV=production", "bundle", "exec", "sidekiq", "-t", "60"], &[])]
    #[case(&["tini", "--", "bundle", "exec", "sidekiq", "-t", "60"], &[])]
    #[case(&["/docker-entrypoint.sh"], &["bundle", "exec", "sidekiq", "-t", "60"])]
    #[case(&["sh", "-c", "bundle exec sidekiq -t 60"], &[])]
    #[case(&["/bin/bash", "-lc", "bin/rails db:migrate && exec bundle exec sidekiq -t 60"], &[])]
    #[case(&["sh", "-c", "cd /app; RAILS_ENV=production exec bundle exec sidekiq -t 60 2>&1"], &[])]
    #[case(&["sh", "-c", "bash -c 'exec sidekiq -t 60'"], &[])]
    #[case(&["bash", "-e", "-o", "pipefail", "-c"], &["exec bundle exec sidekiq -t 60"])]
    #[case(&["ruby", "bin/sidekiq", "-t", "60"], &[])]
    #[case(&["timeout", "1h", "sidekiq", "-t", "60"], &[])]
    #[case(&["sh", "-c", "if [ -n \"$MIGRATE\" ]; then rake db:migrate; fi; exec sidekiq -t 60"], &[])]
    #[case(&["sh", "-c", "[ -f tmp/pids ] && rm -r tmp/pids; exec sidekiq -t 60"], &[])]
    #[case(&["sh", "-c", "cd /app || exit 1; exec sidekiq -t 60"], &[])]
    #[case(&["sh", "-c", "while true; do bundle exec sidekiq -t 60; sleep 1; done"], &[])]
    #[case(&["sh", "-c", "bundle check || bundle install && exec bundle exec sidekiq -t 60"], &[])]
    #[case(&["sh", "-c", "[ -d tmp/pids ] || mkdir -p tmp/pids && exec sidekiq -t 60"], &[])]
    // The entrypoint idiom: the script's arguments are the command.
    #[case(&["sh", "-c", "exec \"$@\"", "sh", "bundle", "exec", "sidekiq", "-t", "60"], &[])]
    #[case(&["sh", "-c", "exec sidekiq -t $1", "sh"], &["60"])]
    // A variable the script sets wins over the container's.
    #[case(&["sh", "-c", "TO=60; exec sidekiq -t $TO"], &[])]
    #[case(&["sh", "-c", "export TO=60\nexec sidekiq -t \"${TO}\""], &[])]
    // A here-document is data; a version check runs no worker.
    #[case(&["sh", "-c", "cat > /tmp/x <<'X'\nexec puma\nX\nexec sidekiq -t 60"], &[])]
    #[case(&["sh", "-c", "bundle exec sidekiq -V && exec bundle exec sidekiq -t 60"], &[])]
    // An `exec` or `exit` that ends the script only in some case, or that only redirects.
    #[case(&["sh", "-c", "grep -q web /etc/role && exec puma\nexec bundle exec sidekiq -t 60"], &[])]
    #[case(&["sh", "-c", "pgrep -f maint && exit 0\nexec bundle exec sidekiq -t 60"], &[])]
    #[case(&["sh", "-c", "exec 200>/tmp/lock; flock -n 200 || exit 1; exec sidekiq -t 60"], &[])]
    #[case(&["bash", "-c", "exec {fd}>/tmp/lock; exec sidekiq -t 60"], &[])]
    #[case(&["bash", "-c", "function die { echo \"$1\"; exit 1; }; cd /app || die x; exec sidekiq -t 60"], &[])]
    #[case(&["bash", "-c", "(( n = 1 << 2 ))\nexec sidekiq -t 60"], &[])]
    #[case(&["sh", "-c", "cat <<EOF\r\nexec puma\r\nEOF\r\nexec sidekiq -t 60\r\n"], &[])]
    #[case(&["bash", "-c", "set -euo pipefail; bin/rails db:migrate; exec \"$@\"", "--", "bundle", "exec", "sidekiq", "-t", "60"], &[])]
    #[case(&["sh", "-c", "OPTS=\"-t 60\"; exec bundle exec sidekiq $OPTS"], &[])]
    // A function called without a condition runs its body.
    #[case(&["bash", "-c", "start_worker() {\n  bin/rails db:migrate && exec bundle exec sidekiq -t 60\n}\nstart_worker"], &[])]
    // Wrappers that run a command.
    #[case(&["exec", "-a", "worker", "bundle", "exec", "sidekiq", "-t", "60"], &[])]
    #[case(&["dumb-init", "--rewrite", "15:20", "--", "sidekiq", "-t", "60"], &[])]
    #[case(&["dumb-init", "-vr", "20:20", "sidekiq", "-t", "60"], &[])]
    #[case(&["dumb-init", "--rew", "20:20", "sidekiq", "-t", "60"], &[])]
    #[case(&["timeout", "--kill-after", "10", "1h", "sidekiq", "-t", "60"], &[])]
    #[case(&["runuser", "-u", "app", "--", "sidekiq", "-t", "60"], &[])]
    #[case(&["s6-setuidgid", "app", "sidekiq", "-t", "60"], &[])]
    #[case(&["with-contenv", "sidekiq", "-t", "60"], &[])]
    #[case(&["doppler", "run", "--", "sidekiq", "-t", "60"], &[])]
    #[case(&["su", "-s", "/bin/sh", "app", "-c", "exec bundle exec sidekiq -t 60"], &[])]
    #[case(&["runuser", "-l", "app", "-c", "cd /app && exec bundle exec sidekiq -t 60"], &[])]
    #[case(&["sudo", "-E", "-u", "app", "stdbuf", "-oL", "rbenv", "exec", "bundle", "exec", "sidekiq", "-t", "60"], &[])]
    fn finds_sidekiq_through_wrappers(#[case] command: &[&str], #[case] args: &[&str]) {
        let found = found(&[container("worker", command, args)]);
        assert_eq!(found.program, Some(Program::Sidekiq));
        assert_eq!(found.evidence, Evidence::Command);
        assert_eq!(found.args, vec!["-t", "60"]);
    }

    #[test]
    fn the_scripts_own_variables_win_over_the_containers() {
        let mut worker = container("w", &["sh", "-c", "TO=300; exec sidekiq -t $TO"], &[]);
        worker["env"] = json!([{"name": "TO", "value": "5"}]);
        assert_eq!(found(std::slice::from_ref(&worker)).args, vec!["-t", "300"]);
        // Assigned only under a condition: 5 or 300, and the grace period must cover the larger.
        worker["command"] = json!(["sh", "-c", "[ -n \"$X\" ] && TO=300; exec sidekiq -t $TO"]);
        assert_eq!(found(std::slice::from_ref(&worker)).args, vec!["-t", "300"]);
        // Unset before (nothing in the manifest sets it): the assigned value.
        worker["env"] = json!([]);
        assert_eq!(found(std::slice::from_ref(&worker)).args, vec!["-t", "300"]);
        // Possibly set by an envFrom: unknown, left as the run will see it.
        worker["envFrom"] = json!([{"configMapRef": {"name": "app"}}]);
        assert_eq!(found(&[worker]).args, vec!["-t", "$TO"]);
    }

    #[test]
    fn defaults_conditional_and_declared_assignments_read_as_the_shell_would() {
        let with_env = |script: &str, value: &str| {
            let mut worker = container("w", &["bash", "-c", script], &[]);
            worker["env"] = json!([{"name": "T", "value": value}]);
            found(&[worker]).args
        };
        // The container sets T: its value stands, whatever the fallback.
        assert_eq!(
            with_env("T=${T:-25}; exec sidekiq -t $T", "60"),
            vec!["-t", "60"]
        );
        assert_eq!(with_env("exec sidekiq -t ${T:-25}", "60"), vec!["-t", "60"]);
        assert_eq!(with_env("exec sidekiq -t ${T:-25}", ""), vec!["-t", "25"]);
        assert_eq!(
            with_env("[ -z \"$T\" ] && T=25; exec sidekiq -t $T", "60"),
            vec!["-t", "60"]
        );
        assert_eq!(
            with_env("declare -i T=90; exec sidekiq -t $T", "5"),
            vec!["-t", "90"]
        );
        assert_eq!(
            with_env("exec sidekiq -t ${T:?set T}", "60"),
            vec!["-t", "60"]
        );
        // A variable nothing in the manifest sets: the script's default applies.
        let script = |script: &str| found(&[container("w", &["sh", "-c", script], &[])]).args;
        assert_eq!(
            script("exec sidekiq -t ${SIDEKIQ_TIMEOUT:-60}"),
            vec!["-t", "60"]
        );
        assert_eq!(
            script("T=${SIDEKIQ_TIMEOUT:-60}; exec sidekiq -t $T"),
            vec!["-t", "60"]
        );
        assert_eq!(
            script("exec sidekiq -t $SIDEKIQ_TIMEOUT"),
            vec!["-t", "$SIDEKIQ_TIMEOUT"]
        );
        // Outside quotes a value's blanks split it, as the shell splits it.
        assert_eq!(
            with_env("exec sidekiq $T -q default", "-t 60 -c 5"),
            vec!["-t", "60", "-c", "5", "-q", "default"]
        );
        assert_eq!(with_env("exec sidekiq -t \"$T\"", "6 0"), vec!["-t", "6 0"]);
        // …but not an assignment's value.
        assert_eq!(
            with_env("OPTS=$T; exec sidekiq $OPTS", "-t 60"),
            vec!["-t", "60"]
        );
        // A later `valueFrom` of the same name is what the container gets: unknown here.
        let mut worker = container("w", &["sh", "-c", "exec sidekiq -t $T"], &[]);
        worker["env"] = json!([{"name": "T", "value": "10"},
                               {"name": "T", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "t"}}}]);
        assert_eq!(found(&[worker]).args, vec!["-t", "$T"]);
        // `set --` and `shift` leave the arguments unknown.
        let worker = container(
            "w",
            &[
                "sh",
                "-c",
                "set -- \"$@\" -t 300; exec sidekiq \"$@\"",
                "sh",
                "-q",
                "default",
            ],
            &[],
        );
        assert_eq!(found(&[worker]).args, vec!["$@"]);
    }

    #[test]
    fn of_several_sidekiqs_in_a_script_the_longest_timeout_counts() {
        let worker = container(
            "w",
            &[
                "sh",
                "-c",
                "sidekiq -q a -t 10 & sidekiq -q b -t 300 & sidekiq -q c & wait",
            ],
            &[],
        );
        assert_eq!(found(&[worker]).args, vec!["-q", "b", "-t", "300"]);
        // A backgrounded `exec` ends nothing.
        let worker = container(
            "w",
            &[
                "sh",
                "-c",
                "exec sidekiq -q a -t 10 &\nexec sidekiq -q b -t 300",
            ],
            &[],
        );
        assert_eq!(found(&[worker]).args, vec!["-q", "b", "-t", "300"]);
    }

    #[test]
    fn finds_sidekiqswarm() {
        let found = found(&[container(
            "w",
            &["bundle", "exec", "sidekiqswarm", "-c", "5"],
            &[],
        )]);
        assert_eq!(found.program, Some(Program::Swarm));
    }

    #[rstest]
    #[case(&["rails", "server"], &[])]
    #[case(&["bundle", "exec", "rake", "sidekiq:stats"], &[])]
    #[case(&["echo", "sidekiq"], &[])]
    #[case(&["sh", "-c", "echo sidekiq is great"], &[])]
    #[case(&["bash", "start-sidekiq"], &[])]
    #[case(&["sidekiq-web"], &[])]
    #[case(&["sh", "-c", "command -v sidekiq >/dev/null || exit 1; exec puma"], &[])]
    #[case(&["sh", "-c", "cat > /tmp/notes <<'X'\nsidekiq -t 999\nX\nexec puma"], &[])]
    #[case(&["sh", "-c", "cat <<-X > /tmp/notes\n\tsidekiq -t 999\n\tX\nexec puma"], &[])]
    #[case(&["sh", "-c", "bundle exec sidekiq -V && exec puma"], &[])]
    #[case(&["sidekiq", "--help"], &[])]
    #[case(&["sh", "-c", "exec puma; sidekiq"], &[])]
    #[case(&["sh", "-c", "exit 0\nsidekiq"], &[])]
    #[case(&["sh", "-c", "exec \"$@\"", "sh", "bundle", "exec", "puma"], &[])]
    #[case(&["bash", "-c", "[[ \"$ROLE\" =~ ^(web|sidekiq)$ ]] || exit 64; exec bundle exec puma -C config/puma.rb"], &[])]
    fn ignores_what_does_not_run_sidekiq(#[case] command: &[&str], #[case] args: &[&str]) {
        assert_eq!(
            detect(&[container("web", command, args)], None),
            Detection::None
        );
    }

    /// The role-dispatching entrypoint of web and worker pods alike: a Sidekiq started only
    /// under a condition is no evidence, or every web pod would get probes it can never pass.
    #[rstest]
    #[case("if [ \"$ROLE\" = worker ]; then exec sidekiq -t 60; else exec puma; fi")]
    #[case(
        "case \"$ROLE\" in\n  worker) exec bundle exec sidekiq -t 60 ;;\n  *) exec puma ;;\nesac"
    )]
    #[case("[ \"$ROLE\" = worker ] && exec sidekiq -t 60; exec puma")]
    #[case("test \"$ROLE\" = web || exec sidekiq -t 60; exec puma")]
    #[case("bin/ready || exec sidekiq -t 60")]
    #[case("[ \"$ROLE\" = worker ] &&\n  exec sidekiq -t 60\nexec puma")]
    #[case("[ \"$ROLE\" = worker ] && { cd /app; exec sidekiq -t 60; }; exec puma")]
    #[case("[ \"$ROLE\" = web ] && exec puma; exec sidekiq -t 60")]
    #[case("if [ \"$ROLE\" = web ]; then exec puma; fi\nexec sidekiq -t 60")]
    #[case("[ \"$ROLE\" = web ] && exec puma || exec sidekiq -t 60")]
    #[case(
        "worker() { exec sidekiq -t 60; }\ncase $ROLE in worker) worker ;; *) exec puma ;; esac"
    )]
    #[case(
        "case \"$ROLE\" in sidekiq|worker) exec bundle exec sidekiq -t 60 ;; *) exec puma ;; esac"
    )]
    fn a_sidekiq_started_under_a_condition_takes_the_annotation(#[case] script: &str) {
        let containers = [container("app", &["sh", "-c", script], &[])];
        assert_eq!(detect(&containers, None), Detection::None);
        // Annotated, it is the Sidekiq container, and its flags are read.
        let Detection::Found(found) = detect(&containers, Some("app")) else {
            panic!("the annotation must find it");
        };
        assert_eq!(found.evidence, Evidence::Annotation);
        assert_eq!(found.program, Some(Program::Sidekiq));
        assert_eq!(found.args, vec!["-t", "60"]);
    }

    #[test]
    fn the_annotation_wins_over_detection() {
        let containers = [
            container("a", &["sidekiq"], &[]),
            container("b", &["/app/bin/worker"], &[]),
        ];
        let Detection::Found(found) = detect(&containers, Some("b")) else {
            panic!("expected b");
        };
        assert_eq!(
            (found.index, found.evidence, found.program),
            (1, Evidence::Annotation, None)
        );
    }

    #[test]
    fn an_annotation_naming_no_container_is_reported() {
        let containers = [container("a", &["sidekiq"], &[])];
        assert_eq!(
            detect(&containers, Some("b")),
            Detection::NamedMissing("b".into())
        );
    }

    #[test]
    fn the_sidecar_name_is_reserved() {
        let containers = [container("sidekiq-guard-probe", &["sidekiq"], &[])];
        assert_eq!(detect(&containers, None), Detection::None);
        assert_eq!(
            detect(&containers, Some("sidekiq-guard-probe")),
            Detection::NamedMissing("sidekiq-guard-probe".into())
        );
    }

    #[test]
    fn two_candidates_are_ambiguous() {
        let containers = [
            container("default", &["sidekiq", "-q", "default"], &[]),
            container("critical", &["sidekiq", "-q", "critical"], &[]),
        ];
        assert_eq!(
            detect(&containers, None),
            Detection::Ambiguous(vec!["default".into(), "critical".into()])
        );
    }

    #[test]
    fn a_container_named_sidekiq_without_command_runs_the_image_entrypoint() {
        let containers = [
            container("web", &["rails", "server"], &[]),
            container("sidekiq", &[], &["-t", "40"]),
        ];
        let found = found(&containers);
        assert_eq!((found.index, found.evidence), (1, Evidence::Name));
        assert_eq!(found.args, vec!["-t", "40"]);
    }

    #[test]
    fn a_container_named_sidekiq_with_another_command_is_not_assumed() {
        let containers = [container("sidekiq", &["rails", "console"], &[])];
        assert_eq!(detect(&containers, None), Detection::None);
    }

    #[test]
    fn expands_kubernetes_and_shell_variables_from_literal_env() {
        let mut c = container(
            "w",
            &["sh", "-c", "exec sidekiq -t $SHUTDOWN -c ${THREADS}"],
            &[],
        );
        c["env"] = json!([
            {"name": "SHUTDOWN", "value": "45"},
            {"name": "THREADS", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}},
        ]);
        assert_eq!(
            found(&[c.clone()]).args,
            vec!["-t", "45", "-c", "${THREADS}"]
        );

        c["command"] = json!(["sidekiq", "-t", "$(SHUTDOWN)", "-g", "$$(SHUTDOWN)"]);
        assert_eq!(found(&[c]).args, vec!["-t", "45", "-g", "$(SHUTDOWN)"]);
    }

    #[test]
    fn an_env_entry_without_a_value_is_the_empty_string() {
        // What Helm renders for an unset value: Kubernetes sets the variable to "".
        let mut c = container(
            "w",
            &["sh", "-c", "exec sidekiq -t ${SHUTDOWN:-60} -g \"$TAG\""],
            &[],
        );
        c["env"] = json!([{"name": "SHUTDOWN"}, {"name": "TAG", "value": null}]);
        assert_eq!(found(&[c.clone()]).args, vec!["-t", "60", "-g", ""]);
        assert_eq!(literal_env(&c)["SHUTDOWN"], "");
        // A later valueFrom of the same name is unknown again.
        c["env"] = json!([
            {"name": "SHUTDOWN"},
            {"name": "SHUTDOWN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]);
        assert!(!literal_env(&c).contains_key("SHUTDOWN"));
    }

    #[test]
    fn what_gets_its_value_at_run_time() {
        let container = json!({"env": [
            {"name": "T", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "t"}}},
        ]});
        let env = LazyEnv::new(&container);
        // A shell expands whatever it is given.
        assert!(set_at_run_time(&env, true, "$ANY"));
        // Without one, only $(NAME) of a defined variable.
        assert!(set_at_run_time(&env, false, "$(T)"));
        assert!(!set_at_run_time(&env, false, "$(UNDEFINED)"));
        assert!(!set_at_run_time(&env, false, "$T"));
        assert!(!set_at_run_time(&env, false, "$(T)$X"));
        assert!(!set_at_run_time(&env, false, "$$(T)"));
        // envFrom may define any name.
        let from = json!({"envFrom": [{"configMapRef": {"name": "c"}}]});
        assert!(set_at_run_time(&LazyEnv::new(&from), false, "$(ANY)"));
        // A `$(L)` still there although L has a literal value was written `$$(L)`: text.
        let literal = json!({"env": [{"name": "L", "value": "120"}]});
        assert!(!set_at_run_time(&LazyEnv::new(&literal), false, "$(L)"));
        assert!(set_at_run_time(&LazyEnv::new(&literal), true, "$(L)"));
    }

    #[test]
    fn an_unreadable_script_is_kept_as_evidence() {
        let containers = [container(
            "sidekiq",
            &["sh", "-c", "exec sidekiq -t '60"],
            &[],
        )];
        assert_eq!(detect(&containers, None), Detection::None);
        let Detection::Found(found) = detect(&containers, Some("sidekiq")) else {
            panic!("annotation must find it");
        };
        assert_eq!(found.program, None);
        assert_eq!(
            found.script_error,
            Some(ShellError::UnterminatedQuote("single"))
        );
    }

    #[test]
    fn doubling_env_references_stop_at_the_limit() {
        let mut env = vec![json!({"name": "V0", "value": "x"})];
        for i in 1..60 {
            let value = format!("$(V{})$(V{})", i - 1, i - 1);
            env.push(json!({"name": format!("V{i}"), "value": value}));
        }
        let container = json!({"name": "w", "env": env});
        let known = literal_env(&container);
        assert_eq!(known["V12"].len(), 4096);
        assert_eq!(known["V14"], "$(V13)$(V13)");
        // Bounded: unknown references stay as written, and the budget caps the rest.
        assert!(known.values().map(String::len).sum::<usize>() < 128 * 1024);
    }

    #[test]
    fn kubernetes_expansion_rules() {
        let env = HashMap::from([("A".to_owned(), "1".to_owned())]);
        let budget = shell::Budget::default();
        assert_eq!(
            expand_kubernetes("$(A)-$(B)-$$(A)-$-$", &env, &budget),
            "1-$(B)-$(A)-$-$"
        );
        assert_eq!(expand_kubernetes("$(A", &env, &budget), "$(A");
        assert_eq!(expand_kubernetes(")$(A", &env, &budget), ")$(A");
        assert_eq!(expand_kubernetes("$( $(A) x)", &env, &budget), "$( $(A) x)");
        assert_eq!(expand_kubernetes("é$(A)ü$$", &env, &budget), "é1ü$");
    }

    #[test]
    fn kubernetes_references_are_read_in_pieces() {
        use Piece::*;
        let pieces = |text| pieces(text).collect::<Vec<_>>();
        assert_eq!(
            pieces("a$(B)$$c$(D"),
            [
                Text("a"),
                Reference("B"),
                Dollar,
                Text("c"),
                Text("$"),
                Text("(D")
            ]
        );
        assert_eq!(pieces(""), []);
        assert_eq!(pieces("$"), [Text("$")]);
        assert_eq!(pieces("$()"), [Reference("")]);
    }

    #[rstest]
    #[case("$(cat /etc/sidekiq/timeout)", "a command substitution")]
    #[case("`cat /t`", "a command substitution")]
    #[case("$(( T + 10 ))", "an arithmetic expansion")]
    #[case("$(FROM_MAP)", "a ConfigMap")]
    #[case("${FROM_SECRET}", "a Secret")]
    #[case("${FROM_SECRET:-25}", "a Secret")]
    #[case("$FROM_FIELD", "the pod's own fields")]
    #[case("$UNSET", "the script or the image's environment")]
    fn tells_where_a_run_time_value_comes_from(#[case] reference: &str, #[case] origin: &str) {
        let container = json!({"env": [
            {"name": "FROM_MAP", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "t"}}},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "t"}}},
            {"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]});
        assert_eq!(run_time_origin(&container, reference), origin);
        let with_env_from = json!({"envFrom": [{"configMapRef": {"name": "sidekiq"}}]});
        if origin == "the script or the image's environment" {
            assert_eq!(
                run_time_origin(&with_env_from, reference),
                "the container's envFrom (a ConfigMap or a Secret)"
            );
        }
    }
}
