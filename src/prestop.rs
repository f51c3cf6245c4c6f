//! What a container's preStop hook does to Sidekiq.
//!
//! Only a hook that *quiets* Sidekiq (SIGTSTP, or sidekiq-guard's `/drain`) stops it from fetching
//! new jobs while the pod is going away. The hand-written `kill -TSTP 1; sleep N` quiets, but
//! always waits the full N seconds, whether jobs finished after one second or are still running.

use serde_json::Value;

use crate::dumb_init::Tstp;
use crate::duration;
use crate::grace::HookDuration;
use crate::pointer::Pointer as _;
use crate::sidecar::{self, Reach};
use crate::{ere, shell};

/// The path of the probe's drain endpoint, which the injected preStop calls.
pub const DRAIN_PATH: &str = "/drain";

/// What a preStop hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreStop {
    /// No preStop hook.
    Missing,
    /// `httpGet` of the probe's `/drain` (injected by sidekiq-guard, or written to match it).
    Drain {
        /// The numeric port it targets (`None` for a named or unreadable port).
        port: Option<u16>,
    },
    /// Quiets Sidekiq, then sleeps a fixed time.
    QuietThenSleep {
        /// Seconds slept in total.
        sleep: u64,
        /// It also runs commands that may take their own time (a wait script): the hook lasts
        /// at least `sleep`.
        also_runs: bool,
    },
    /// Quiets Sidekiq and waits some other way (e.g. a polling loop, or a call of `/drain`,
    /// which returns once the jobs are done).
    Quiets {
        /// Seconds it sleeps besides (outside loops and conditions, `sleep 30; curl …/drain`):
        /// the hook lasts that much longer than the wait for the jobs.
        sleeps: u64,
    },
    /// Quiets Sidekiq and returns at once (`kill -TSTP 1`, `sidekiqctl quiet`): the kubelet
    /// sends SIGTERM right after, so it buys no time for running jobs.
    QuietOnly,
    /// Sleeps forever (`sleep infinity`): the kubelet ends the hook only when the grace period
    /// runs out, and SIGTERM then comes 2 s before SIGKILL — too late for Sidekiq to push its
    /// unfinished jobs back to their queues.
    Endless {
        /// Whether it quiets Sidekiq first.
        quiets: bool,
    },
    /// Only sleeps: Sidekiq keeps fetching jobs until SIGTERM.
    SleepOnly {
        /// Seconds slept in total.
        sleep: u64,
    },
    /// Sends Sidekiq SIGTERM or SIGINT itself and returns: shutdown starts at once, as without
    /// a hook, and jobs still running after `-t` are pushed back unfinished.
    StopsAtOnce {
        /// The signal's name (`TERM`, `INT`).
        signal: String,
    },
    /// `httpGet` of the probe's `/drain` that never reaches it: sent to another `host` (from
    /// the node) or over HTTPS, where the probe answers plain HTTP at the pod's address. Meant
    /// for the probe all the same (`/drain` is its alone), so the webhook rewrites it, as it
    /// does one at another port.
    MisdirectedDrain {
        /// How it goes astray, for a message: `on host "localhost"`, `over HTTPS`.
        how: String,
    },
    /// Cannot work with the Sidekiq versions this project supports (6.0+): it sends a signal
    /// Sidekiq does not handle (`USR1`, which quieted only Sidekiq 5, or `KILL`, `QUIT`), which
    /// kills it at once and loses the jobs it runs, or runs `sidekiqctl`, which 6.0 removed; or
    /// it signals PID 1 where that is the pod's pause process (`shareProcessNamespace`), or
    /// sends SIGTSTP to PID 1 where that is dumb-init in setsid mode, which passes it on as
    /// SIGSTOP.
    Broken {
        /// What it does, for a message: `sends SIGUSR1`, `runs sidekiqctl`.
        what: String,
        /// What that does to Sidekiq 6+.
        effect: &'static str,
        /// Seconds it sleeps besides (outside loops and conditions): the hook still lasts
        /// that long, and the grace period must cover it.
        sleeps: u64,
    },
    /// Something this project cannot read.
    Unrecognised {
        /// A short description of the hook: at most [`MAX_WHAT`] characters of what it runs.
        what: String,
        /// Seconds of `sleep` it runs outside any loop (0 when none): whatever else it does,
        /// the hook takes at least that long before the kubelet sends SIGTERM.
        sleeps: u64,
    },
}

impl PreStop {
    /// Seconds the hook always takes, when it sleeps a fixed time: the kubelet sends SIGTERM
    /// only after it returns.
    fn fixed_sleep(&self) -> Option<u64> {
        match self {
            PreStop::QuietThenSleep { sleep, .. } | PreStop::SleepOnly { sleep } => Some(*sleep),
            PreStop::Unrecognised { sleeps, .. } | PreStop::Broken { sleeps, .. }
                if *sleeps > 0 =>
            {
                Some(*sleeps)
            }
            _ => None,
        }
    }

    /// How long the hook keeps SIGTERM back, for the grace period: until the jobs are done (the
    /// drain budget), a fixed time, or the two added up.
    pub fn duration(&self) -> HookDuration {
        match (self, self.fixed_sleep()) {
            (_, Some(secs)) => HookDuration::Fixed(secs),
            (PreStop::Quiets { sleeps }, None) if *sleeps > 0 => {
                HookDuration::DrainAndSleeps(*sleeps)
            }
            _ => HookDuration::Drain,
        }
    }

    /// Whether the hook stops Sidekiq from fetching new jobs.
    pub fn quiets(&self) -> bool {
        matches!(
            self,
            PreStop::Drain { .. }
                | PreStop::QuietThenSleep { .. }
                | PreStop::Quiets { .. }
                | PreStop::QuietOnly
                | PreStop::Endless { quiets: true }
        )
    }
}

/// The longest description of a hook a finding quotes: a script of any length would otherwise
/// be quoted whole, in every message and table row about it.
pub const MAX_WHAT: usize = 120;

fn described(text: &str) -> String {
    crate::errors::truncate(text, MAX_WHAT)
}

/// Reads the preStop hook of `container`; `shared_pids` when the pod shares one process
/// namespace between its containers (`shareProcessNamespace`), where PID 1 is the pod's pause
/// process, not the container's first; `host_network` when it uses the node's network
/// (`hostNetwork`), where the node's `localhost` is the pod's.
pub fn classify(container: &Value, shared_pids: bool, host_network: bool) -> PreStop {
    let Some(hook) = container.at("/lifecycle/preStop").filter(|h| !h.is_null()) else {
        return PreStop::Missing;
    };
    if let Some(get) = hook.get("httpGet") {
        let path = get.get("path").and_then(Value::as_str).unwrap_or("/");
        if sidecar::endpoint(path) == DRAIN_PATH {
            return match sidecar::reach(get, container, host_network) {
                Reach::Pod(port) => PreStop::Drain { port },
                Reach::Elsewhere(how) => PreStop::MisdirectedDrain { how },
            };
        }
        return PreStop::Unrecognised {
            what: described(&format!("httpGet {path}")),
            sleeps: 0,
        };
    }
    if let Some(seconds) = hook.at("/sleep/seconds").and_then(Value::as_u64) {
        // Beyond any grace period, as an exec `sleep` that long: a grace period computed to
        // cover it would not fit the API server's int64.
        if seconds > duration::MAX.as_secs() {
            return PreStop::Endless { quiets: false };
        }
        return PreStop::SleepOnly { sleep: seconds };
    }
    let command: Vec<String> = hook
        .at("/exec/command")
        .and_then(Value::as_array)
        .map(|words| {
            words
                .iter()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if command.is_empty() {
        return PreStop::Unrecognised {
            what: "a hook with no exec command, httpGet or sleep".into(),
            sleeps: 0,
        };
    }
    // `sleep $DRAIN_SECONDS` reads the container's literal env, as the shell would, and
    // `${DRAIN_SECONDS:-300}` the default when nothing in the manifest sets it.
    // Built only when a `$` asks for it: most hooks (`kill -TSTP 1`, the `/drain` call) have none.
    let env = crate::detect::LazyEnv::new(container);
    // Read only for a hook that signals PID 1.
    let pid1 = || {
        if shared_pids {
            Pid1::Pause
        } else {
            dumb_init_tstp(container, &env).map_or(Pid1::Container, Pid1::DumbInit)
        }
    };
    classify_exec(&command, &pid1, &|name| env.get(name), &|name| {
        env.unset(name)
    })
}

/// What PID 1 is, as a hook's `kill … 1` reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Pid1 {
    /// The container's first process (Sidekiq, or an init that passes signals on as they are).
    #[default]
    Container,
    /// The pod's pause process: the pod shares one process namespace.
    Pause,
    /// dumb-init, which does not pass SIGTSTP on as SIGTSTP; what that does to Sidekiq.
    DumbInit(&'static str),
}

const DUMB_INIT_STOPS: &str = "PID 1 is dumb-init, which in its default setsid mode passes SIGTSTP on as SIGSTOP: Sidekiq freezes instead of quieting, ignores the SIGTERM that follows, and is killed with its jobs at the end of the grace period (dumb-init -c, DUMB_INIT_SETSID=0 or --rewrite 20:20 passes SIGTSTP on)";
const DUMB_INIT_DROPS: &str = "PID 1 is dumb-init, told to drop SIGTSTP (--rewrite 20:0): Sidekiq never quiets, and the SIGTERM that follows interrupts the jobs it runs";
const DUMB_INIT_REWRITES: &str = "PID 1 is dumb-init, told to pass SIGTSTP on as another signal (--rewrite 20:N): Sidekiq does not quiet, and may stop or freeze at once";

/// What a SIGTSTP to PID 1 does where the container's command starts dumb-init and it does not
/// reach Sidekiq as SIGTSTP ([`crate::dumb_init::Tstp`]). `None` where SIGTSTP gets through, or
/// where the manifest cannot tell (`DUMB_INIT_SETSID` from a Secret; only `args`, which follow
/// the image's `ENTRYPOINT`, which the pod spec does not show).
fn dumb_init_tstp(container: &Value, env: &crate::detect::LazyEnv<'_>) -> Option<&'static str> {
    if container.get("command").is_none_or(Value::is_null) {
        return None;
    }
    let argv: Vec<&str> = crate::detect::words(container, "command")
        .chain(crate::detect::words(container, "args"))
        .collect();
    let (first, rest) = argv.split_first()?;
    if shell::basename(first) != "dumb-init" {
        return None;
    }
    match crate::dumb_init::Options::parse(rest).tstp(env) {
        Tstp::PassedOn | Tstp::Unknown => None,
        Tstp::Stops => Some(DUMB_INIT_STOPS),
        Tstp::Dropped => Some(DUMB_INIT_DROPS),
        Tstp::Rewritten => Some(DUMB_INIT_REWRITES),
    }
}

fn classify_exec(
    command: &[String],
    pid1: &dyn Fn() -> Pid1,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &dyn Fn(&str) -> bool,
) -> PreStop {
    let what = |sleeps| PreStop::Unrecognised {
        what: described(&format!("exec {}", command.join(" "))),
        sleeps,
    };
    // What `pgrep -f` sees of the hook's shell: its argv joined by spaces.
    let own = command.join(" ");
    let mut reading = Reading {
        pid1: Some(pid1),
        own: Some(&own),
        ..Reading::default()
    };
    if !reading.command(command, lookup, unset, 0) {
        return what(0);
    }
    let Reading {
        quiets,
        drains,
        sleep,
        fixed,
        in_loop: _,
        other,
        looping,
        endless,
        uncertain: _,
        stops,
        broken,
        pid1: _,
        boots,
        own: _,
        timed: _,
    } = reading;
    if let Some((what, effect)) = broken {
        return PreStop::Broken {
            what,
            effect,
            sleeps: sleep,
        };
    }
    if endless {
        return PreStop::Endless { quiets };
    }
    // After a quiet and a wait, a last SIGTERM is only early; without them it is the shutdown.
    if let Some(signal) = stops.filter(|_| !quiets) {
        return PreStop::StopsAtOnce { signal };
    }
    match (quiets, sleep, looping || drains, other) {
        (true, 0, false, false) => PreStop::QuietOnly,
        (true, 0, _, _) | (true, _, true, _) => PreStop::Quiets { sleeps: fixed },
        // Other commands around a fixed sleep take their time too, but the hook takes at
        // least the sleep: the grace period must cover that much.
        (true, sleep, false, other) => PreStop::QuietThenSleep {
            sleep,
            also_runs: other || boots,
        },
        (false, sleep, false, false) if sleep > 0 => PreStop::SleepOnly { sleep },
        // `rails runner '…quiet!'; sleep 600`: whatever the rest does, the hook lasts the sleep.
        (false, sleep, false, _) => what(sleep),
        _ => what(fixed),
    }
}

/// What the commands of a hook do, read so far.
#[derive(Default)]
struct Reading<'a> {
    quiets: bool,
    /// A call of the probe's /drain blocks until the jobs are done: it quiets and waits.
    drains: bool,
    sleep: u64,
    /// Seconds of `sleep` outside loops: time the hook takes whatever else it does.
    fixed: u64,
    /// The command being read is in a loop, where a sleep polls.
    in_loop: bool,
    /// Commands that may take their own time.
    other: bool,
    /// A sleep inside a loop is a poll, not a fixed wait.
    looping: bool,
    /// `sleep infinity`, which no loop or condition makes return.
    endless: bool,
    /// A signal that stops Sidekiq at once (`TERM`, `INT`), by its name.
    stops: Option<String>,
    /// What breaks the hook on Sidekiq 6+, and how (see [`PreStop::Broken`]).
    broken: Option<(String, &'static str)>,
    /// The command being read may not run (`[ -f x ] && sleep 600`), or runs beside the rest
    /// (`sleep 600 &`, a pipeline): its sleep is no lower bound of the hook's time.
    uncertain: bool,
    /// What a signal to PID 1 reaches (the container's first process when not told).
    pid1: Option<&'a dyn Fn() -> Pid1>,
    /// A Rails runner boots the app before it quiets: time the hook takes besides its sleep,
    /// though no wait for the jobs.
    boots: bool,
    /// The hook's command line as `pgrep -f` matches it.
    own: Option<&'a str>,
    /// The command being read runs under `timeout`, which ends it.
    timed: bool,
}

impl Reading<'_> {
    /// Reads one command line, looking into shell scripts (`sh -c "…"`, nested too);
    /// `false` when a script cannot be read.
    fn command(
        &mut self,
        words: &[String],
        lookup: &dyn Fn(&str) -> Option<String>,
        unset: &dyn Fn(&str) -> bool,
        depth: usize,
    ) -> bool {
        let command = shell::skip_wrappers(words);
        let Some((script, args)) = shell::script_and_args(command) else {
            self.simple(words);
            return true;
        };
        if depth >= shell::MAX_SHELL_DEPTH {
            self.other = true;
            return true;
        }
        let Ok(commands) = shell::commands_with_args(script, Some(args), lookup, unset) else {
            return false;
        };
        // `timeout 300 sh -c '… sleep infinity'` ends, after an unknown time.
        let bounded = under_timeout(words) && !self.endless;
        let outer = self.uncertain;
        let outer_loop = self.in_loop;
        let outer_timed = self.timed;
        self.timed |= under_timeout(words);
        for command in commands {
            self.looping |= command.in_loop;
            self.in_loop = outer_loop || command.in_loop;
            self.uncertain = outer || command.conditional || command.signals.concurrent();
            if !self.command(&command.words, lookup, unset, depth + 1) {
                return false;
            }
        }
        self.uncertain = outer;
        self.in_loop = outer_loop;
        self.timed = outer_timed;
        if bounded && self.endless {
            self.endless = false;
            self.other = true;
        }
        true
    }

    /// Reads a command that is not a shell script.
    fn simple(&mut self, words: &[String]) {
        if self.broken.is_none()
            && let Some(found) = self.waiting_on_itself(words)
        {
            self.broken = Some((found, WAITS_ON_ITSELF));
            return;
        }
        let Some((name, args)) = shell::skip_wrappers(words).split_first() else {
            // Assignments of quick lookups (`PID=$(pgrep -f sidekiq)`) take no time; a
            // substitution that runs something else, or a script run by name
            // (`/app/bin/wait-for-jobs.sh`), may take any time.
            if !words.iter().all(|w| is_quick_assignment(w)) {
                self.other = true;
            }
            return;
        };
        let signal = matches!(shell::basename(name), "kill" | "pkill" | "killall")
            .then(|| signal_sent(args))
            .flatten();
        if let Some(signal) = &signal
            && shell::basename(name) == "kill"
            && kill_targets(args) == ["1"]
        {
            let pid1 = self.pid1.map_or(Pid1::Container, |pid1| pid1());
            let effect = match (pid1, signal.as_str()) {
                (Pid1::Pause, _) => Some(
                    "with shareProcessNamespace, PID 1 is the pod's pause process, not Sidekiq: Sidekiq gets nothing",
                ),
                (Pid1::DumbInit(effect), "TSTP") => Some(effect),
                _ => None,
            };
            if let Some(effect) = effect {
                self.broken = Some((described(&format!("sends SIG{signal} to PID 1")), effect));
                return;
            }
        }
        match (shell::basename(name), signal.as_deref()) {
            (_, Some("TSTP")) => self.quiets = true,
            (_, Some("TERM" | "INT")) => self.stops = signal,
            (_, Some(fatal @ ("USR1" | "KILL" | "QUIT"))) => {
                let effect = if fatal == "USR1" {
                    "Sidekiq 6+ does not handle it (it quieted Sidekiq 5): Sidekiq dies at once, and the jobs it runs are lost"
                } else {
                    "Sidekiq dies at once, and the jobs it runs are lost"
                };
                self.broken = Some((format!("sends SIG{fatal}"), effect));
            }
            _ => self.simple_command(name, args, words),
        }
    }

    /// A loop's `pgrep -f` in `words` (or in a `$(…)` there, which runs in a copy of the
    /// shell) whose pattern matches the hook's own shell: what to say it runs. pgrep leaves out
    /// only itself, so it always finds the shell, and a wait on it never ends (unless a
    /// `timeout` ends it). A `pkill -f` or `kill -TSTP $(pgrep -f …)` that reaches the shell
    /// does no harm: runc starts exec processes in a session of their own, whose orphaned
    /// process group ignores SIGTSTP.
    fn waiting_on_itself(&self, words: &[String]) -> Option<String> {
        let own = self.own.filter(|_| self.in_loop && !self.timed)?;
        let check = |words: &[String]| {
            let (name, args) = shell::skip_wrappers(words).split_first()?;
            if shell::basename(name) != "pgrep" {
                return None;
            }
            let (pattern, ignore_case) = full_command_line_pattern(args)?;
            ere::matches(pattern, own, ignore_case)?
                .then(|| described(&format!("waits in a loop on pgrep -f {pattern:?}")))
        };
        check(words).or_else(|| {
            words
                .iter()
                .filter_map(|word| substitution(word))
                .filter_map(|inner| shell::parse(inner, &|_| None).ok())
                .flatten()
                .find_map(|words| check(&words))
        })
    }

    fn simple_command(&mut self, name: &str, args: &[String], words: &[String]) {
        if let Some(this_pod_only) = quiets_through_process_set(args) {
            if this_pod_only {
                self.quiets = true;
                // `quiet!` only pushes TSTP into Redis and returns: the runner ends once it
                // has, and SIGTERM follows — unless its code waits itself. Its boot is no wait
                // for the jobs (Sidekiq quiets only once the runner has pushed), but it is
                // time the hook takes.
                self.other |= ruby_waits(args);
                self.boots = true;
            } else {
                self.broken = Some((
                    "quiets every process of Sidekiq::ProcessSet".to_owned(),
                    "that is every Sidekiq on this Redis, other pods' too (the new pods of a rollout included), and they stay quiet until restarted",
                ));
            }
            return;
        }
        match shell::basename(name) {
            // `pgrep -f sidekiq | xargs kill -TSTP`.
            "xargs"
                if args
                    .iter()
                    .position(|a| matches!(shell::basename(a), "kill" | "pkill"))
                    .is_some_and(|at| signal_sent(&args[at + 1..]).as_deref() == Some("TSTP")) =>
            {
                self.quiets = true;
            }
            "sidekiqctl" => {
                self.broken = Some((
                    "runs sidekiqctl".to_owned(),
                    "Sidekiq 6.0 removed sidekiqctl, so it quiets nothing",
                ));
            }
            "curl" | "wget" if args.iter().any(|a| a.contains(DRAIN_PATH)) => {
                self.quiets = true;
                self.drains = true;
            }
            // Under `timeout 300 sleep infinity` it is bounded, but not by a known sleep.
            // `sleep 9999999999` outlasts any grace period the API server accepts: as endless.
            "sleep"
                if args.iter().any(|a| is_infinite(a) || outlasts_any_grace(a))
                    && !under_timeout(words) =>
            {
                self.endless = true;
            }
            "sleep" if self.uncertain => self.other = true,
            // GNU sleep adds up its operands: `sleep 1m 30s`.
            "sleep" => match args.iter().map(|a| sleep_secs(a)).sum::<Option<u64>>() {
                Some(secs) if !args.is_empty() => {
                    self.sleep = self.sleep.saturating_add(secs);
                    if !self.in_loop {
                        self.fixed = self.fixed.saturating_add(secs);
                    }
                }
                _ => self.other = true,
            },
            // Take no time: `kill -TSTP 1 || true`, `echo quieting; kill -TSTP 1; exit 0`,
            // `rm -f /tmp/ready`, another signal after the wait.
            "true" | ":" | "exit" | "echo" | "printf" | "logger" | "rm" | "touch" => {}
            _ => self.other = true,
        }
    }
}

/// One operand of `sleep` in whole seconds, rounded up: GNU's `NUMBER[smhd]` with a decimal
/// number (`0.5`, `1.5m`), else a duration (`2m30s`). `infinity`, a number beyond
/// [`duration::MAX`] and anything else: `None`.
fn sleep_secs(arg: &str) -> Option<u64> {
    let gnu = gnu_sleep_secs(arg)
        .filter(|secs| *secs <= duration::MAX.as_secs_f64())
        // Within u64 by the filter above.
        .map(|secs| secs.ceil() as u64);
    gnu.or_else(|| duration::parse_secs(arg).ok())
}

/// GNU sleep's reading of one operand, in seconds: a non-negative decimal number with an
/// optional unit `s`, `m`, `h` or `d`.
fn gnu_sleep_secs(arg: &str) -> Option<f64> {
    let (number, unit) = match arg.char_indices().last()? {
        (at, 's') => (&arg[..at], 1.0),
        (at, 'm') => (&arg[..at], 60.0),
        (at, 'h') => (&arg[..at], 3600.0),
        (at, 'd') => (&arg[..at], 86_400.0),
        _ => (arg, 1.0),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0 && !number.starts_with(['+', '-']))
        .map(|n| n * unit)
}

/// A number GNU sleep accepts (`9999999999`, `1e10`, `99999d`) beyond [`duration::MAX`]: far
/// longer than any grace period, so the hook ends only when the kubelet gives up on it.
fn outlasts_any_grace(arg: &str) -> bool {
    gnu_sleep_secs(arg).is_some_and(|secs| secs > duration::MAX.as_secs_f64())
}

/// GNU sleep's `infinity` (read by `strtod`: `inf` too, any case).
fn is_infinite(arg: &str) -> bool {
    arg.eq_ignore_ascii_case("infinity") || arg.eq_ignore_ascii_case("inf")
}

/// Whether the command runs under `timeout`, which ends it whatever it does.
fn under_timeout(words: &[String]) -> bool {
    let command = shell::skip_wrappers(words);
    let wrappers = &words[..words.len() - command.len()];
    wrappers.iter().any(|w| shell::basename(w) == "timeout")
}

/// What a wait on a `pgrep -f` that finds the hook's own shell does.
const WAITS_ON_ITSELF: &str = "the pattern also matches the hook's own shell, whose command line holds it, and pgrep always finds that shell: the loop never ends, and at the end of the grace period the kubelet sends SIGTERM 2 s before SIGKILL, too late for running jobs (anchor the pattern to Sidekiq's process title, e.g. pgrep -f '^sidekiq .*[1-9][0-9]* of', or use the probe's /drain)";

/// The pattern of `pgrep` `args` when matched against whole command lines (`-f`, `--full`),
/// and whether case is ignored (`-i`); `None` without `-f` (the process name alone is matched
/// then, never a shell's script).
fn full_command_line_pattern(args: &[String]) -> Option<(&str, bool)> {
    // Options whose value is the next word.
    const VALUED: [&str; 24] = [
        "-u",
        "-U",
        "-g",
        "-G",
        "-P",
        "-s",
        "-t",
        "-F",
        "-d",
        "-r",
        "--signal",
        "--ns",
        "--nslist",
        "--pidfile",
        "--session",
        "--terminal",
        "--uid",
        "--euid",
        "--group",
        "--pgroup",
        "--parent",
        "--delimiter",
        "--runstates",
        "--env",
    ];
    let (mut full, mut ignore_case) = (false, false);
    let mut rest = args.iter();
    let pattern = loop {
        let arg = rest.next()?;
        match arg.as_str() {
            valued if VALUED.contains(&valued) => {
                rest.next();
            }
            "--full" => full = true,
            "--ignore-case" => ignore_case = true,
            "--" => break rest.next()?,
            long if long.starts_with("--") => {}
            // Short flags (`-f`, `-af`); a signal (`-TSTP`, `-20`) is not lower case.
            short if short.len() > 1 && short.starts_with('-') => {
                if short[1..].chars().all(|c| c.is_ascii_lowercase()) {
                    full |= short.contains('f');
                    ignore_case |= short.contains('i');
                }
            }
            _ => break arg,
        }
    };
    full.then_some((pattern.as_str(), ignore_case))
}

/// The script of a command substitution that is a word's whole value (`PID=$(pgrep -f x)`,
/// `` P=`pgrep -f x` ``).
fn substitution(word: &str) -> Option<&str> {
    let value = word.split_once('=').map_or(word, |(_, value)| value);
    value
        .strip_prefix("$(")
        .and_then(|inner| inner.strip_suffix(')'))
        .or_else(|| {
            value
                .strip_prefix('`')
                .and_then(|inner| inner.strip_suffix('`'))
        })
}

/// An assignment whose value is literal or a lookup that returns at once
/// (`PID=$(pgrep -f sidekiq)`, `` P=`cat tmp/pids/sidekiq.pid` ``).
fn is_quick_assignment(word: &str) -> bool {
    const QUICK: [&str; 9] = [
        "ps", "pgrep", "pidof", "cat", "grep", "awk", "head", "cut", "hostname",
    ];
    let Some((_, value)) = word.split_once('=') else {
        return false;
    };
    match substitution(word) {
        None => !value.contains("$(") && !value.contains('`'),
        Some(inner) => inner
            .split_whitespace()
            .next()
            .is_some_and(|program| QUICK.contains(&shell::basename(program))),
    }
}

/// Whether Ruby code among `args` quiets processes through `Sidekiq::ProcessSet`
/// (`rails runner 'Sidekiq::ProcessSet.new.each(&:quiet!)'`), and if so whether it picks this
/// pod's own (by its `hostname` or `identity`): `None` when it does not.
fn quiets_through_process_set(args: &[String]) -> Option<bool> {
    let code = args.join(" ");
    (code.contains("ProcessSet") && code.contains("quiet!")).then(|| {
        ["hostname", "HOSTNAME", "identity"]
            .iter()
            .any(|k| code.contains(k))
    })
}

/// Whether Ruby code passed to a runner waits (`sleep`, `loop`, `while`, `until`), read as
/// words: `p.quiet!` alone returns at once.
fn ruby_waits(args: &[String]) -> bool {
    args.iter().any(|code| {
        code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| matches!(word, "sleep" | "loop" | "while" | "until"))
    })
}

/// The processes `kill` signals: its operands that are not options or a signal's name.
fn kill_targets(args: &[String]) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-s" | "-n" | "--signal" => {
                rest.next();
            }
            "--" => targets.extend(rest.by_ref().map(String::as_str)),
            option if option.starts_with('-') && option.len() > 1 => {}
            target => targets.push(target),
        }
    }
    targets
}

/// The signal a `kill`/`pkill`/`killall` sends, by name without `SIG`: `-TSTP`, `-SIGTSTP`,
/// `-20`, `-s TSTP`, `--signal=TSTP`, `-n 20`, any case; `TERM` when none is given. `None` for
/// one this project does not tell apart.
fn signal_sent(args: &[String]) -> Option<String> {
    let named = |name: &str| {
        let name = name.to_ascii_uppercase();
        let name = name.strip_prefix("SIG").unwrap_or(&name);
        let name = match name {
            "20" => "TSTP",
            "15" => "TERM",
            "2" => "INT",
            "10" => "USR1",
            "9" => "KILL",
            "3" => "QUIT",
            other => other,
        };
        matches!(name, "TSTP" | "TERM" | "INT" | "USR1" | "KILL" | "QUIT").then(|| name.to_owned())
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-s" | "-n" | "--signal" => return rest.next().and_then(|name| named(name)),
            // `pkill -f PATTERN`, `kill -- PID`: no signal named here.
            "-f" | "--" => {}
            other => {
                let flag = other
                    .strip_prefix("--signal=")
                    .or_else(|| other.strip_prefix('-'));
                if let Some(signal) = flag.and_then(named) {
                    return Some(signal);
                }
            }
        }
    }
    // Without a signal option kill, pkill and killall send TERM.
    (!args
        .iter()
        .any(|a| a.starts_with('-') && a.len() > 1 && !matches!(a.as_str(), "-f" | "--")))
    .then(|| "TERM".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    /// dumb-init's default setsid mode passes SIGTSTP on as SIGSTOP (its README's "signal
    /// rewriting special case"): a hook's `kill -TSTP 1` freezes Sidekiq. Its options are read
    /// as its getopt (`+hvVcr:`) reads them.
    #[rstest]
    #[case(json!({"command": ["dumb-init", "--", "bundle", "exec", "sidekiq"]}), Some(DUMB_INIT_STOPS))]
    #[case(json!({"command": ["/usr/bin/dumb-init", "bundle", "exec", "sidekiq"]}), Some(DUMB_INIT_STOPS))]
    #[case(json!({"command": ["dumb-init"], "args": ["sidekiq"]}), Some(DUMB_INIT_STOPS))]
    #[case(json!({"command": ["dumb-init", "-v", "sidekiq"]}), Some(DUMB_INIT_STOPS))]
    #[case(json!({"command": ["dumb-init", "-r", "15:2", "sidekiq"]}), Some(DUMB_INIT_STOPS))]
    #[case(json!({"command": ["dumb-init", "sidekiq", "-c", "5"]}), Some(DUMB_INIT_STOPS))]
    #[case(json!({"command": ["dumb-init", "sidekiq"], "env": [{"name": "DUMB_INIT_SETSID", "value": "1"}]}), Some(DUMB_INIT_STOPS))]
    // Told to pass SIGTSTP on as another signal, or to drop it.
    #[case(json!({"command": ["dumb-init", "-r", "20:19", "sidekiq"]}), Some(DUMB_INIT_REWRITES))]
    #[case(json!({"command": ["dumb-init", "-c", "--rewrite=20:15", "sidekiq"]}), Some(DUMB_INIT_REWRITES))]
    #[case(json!({"command": ["dumb-init", "-r", "20:0", "sidekiq"]}), Some(DUMB_INIT_DROPS))]
    // Not in setsid mode, or told to pass SIGTSTP on as it is.
    #[case(json!({"command": ["dumb-init", "-c", "sidekiq"]}), None)]
    #[case(json!({"command": ["dumb-init", "-vc", "sidekiq"]}), None)]
    #[case(json!({"command": ["dumb-init", "--single-child", "--", "sidekiq"]}), None)]
    #[case(json!({"command": ["dumb-init", "--single", "sidekiq"]}), None)]
    #[case(json!({"command": ["dumb-init", "-r", "20:20", "sidekiq"]}), None)]
    #[case(json!({"command": ["dumb-init", "-vr20:20", "sidekiq"]}), None)]
    #[case(json!({"command": ["dumb-init", "-vr", "20:20", "sidekiq"]}), None)]
    #[case(json!({"command": ["dumb-init", "--rew=020:20", "sidekiq"]}), None)]
    #[case(json!({"command": ["dumb-init", "sidekiq"], "env": [{"name": "DUMB_INIT_SETSID", "value": "0"}]}), None)]
    // Unknown here: DUMB_INIT_SETSID from a Secret, or args after the image's ENTRYPOINT.
    #[case(json!({"command": ["dumb-init", "sidekiq"], "env": [{"name": "DUMB_INIT_SETSID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}), None)]
    #[case(json!({"args": ["dumb-init", "sidekiq"]}), None)]
    // Not PID 1.
    #[case(json!({"command": ["tini", "--", "dumb-init", "sidekiq"]}), None)]
    #[case(json!({"command": ["bundle", "exec", "sidekiq"], "args": ["dumb-init"]}), None)]
    #[case(json!({"command": ["sidekiq"]}), None)]
    fn tstp_to_pid_one_under_dumb_init(
        #[case] mut container: Value,
        #[case] effect: Option<&'static str>,
    ) {
        container["lifecycle"] =
            json!({"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; sleep 60"]}}});
        let hook = classify(&container, false, false);
        let expected = effect.map_or(
            PreStop::QuietThenSleep {
                sleep: 60,
                also_runs: false,
            },
            |effect| PreStop::Broken {
                what: "sends SIGTSTP to PID 1".into(),
                effect,
                sleeps: 60,
            },
        );
        assert_eq!(hook, expected);
        // Signalled by name, Sidekiq gets SIGTSTP itself; SIGTERM to dumb-init is passed on.
        container["lifecycle"]["preStop"]["exec"]["command"] = json!([
            "sh",
            "-c",
            "pkill -TSTP -f 'sidekiq '; sleep 60; kill -TERM 1"
        ]);
        assert_eq!(
            classify(&container, false, false),
            PreStop::QuietThenSleep {
                sleep: 60,
                also_runs: false
            }
        );
    }

    /// With one process namespace for the pod, PID 1 is the pause process: a signal to it
    /// reaches no Sidekiq. Signals by name (`pkill`) or to another PID still do.
    #[test]
    fn pid_one_is_the_pause_process_in_a_shared_process_namespace() {
        let shared = |command: &[&str]| {
            classify(
                &with_hook(json!({"exec": {"command": command}})),
                true,
                false,
            )
        };
        assert_eq!(
            shared(&["sh", "-c", "kill -TSTP 1; sleep 90"]),
            PreStop::Broken {
                what: "sends SIGTSTP to PID 1".into(),
                effect: "with shareProcessNamespace, PID 1 is the pod's pause process, not Sidekiq: Sidekiq gets nothing",
                sleeps: 90,
            }
        );
        assert!(matches!(
            shared(&["kill", "-s", "TSTP", "--", "1"]),
            PreStop::Broken { .. }
        ));
        assert_eq!(
            shared(&["sh", "-c", "pkill -TSTP -f sidekiq; sleep 90"]),
            PreStop::QuietThenSleep {
                sleep: 90,
                also_runs: false
            }
        );
        assert_eq!(
            shared(&["sh", "-c", "kill -TSTP $(cat /tmp/sidekiq.pid); sleep 90"]),
            exec(&["sh", "-c", "kill -TSTP $(cat /tmp/sidekiq.pid); sleep 90"])
        );
        assert_eq!(
            exec(&["sh", "-c", "kill -TSTP 1; sleep 90"]),
            PreStop::QuietThenSleep {
                sleep: 90,
                also_runs: false
            }
        );
    }

    /// The hook of a container in a pod with its own process namespace.
    fn classify_alone(container: &Value) -> PreStop {
        classify(container, false, false)
    }

    fn with_hook(hook: Value) -> Value {
        json!({"name": "w", "lifecycle": {"preStop": hook}})
    }

    fn exec(command: &[&str]) -> PreStop {
        classify_alone(&with_hook(json!({"exec": {"command": command}})))
    }

    #[test]
    fn missing_hooks() {
        assert_eq!(classify_alone(&json!({"name": "w"})), PreStop::Missing);
        assert_eq!(
            classify_alone(&json!({"name": "w", "lifecycle": {}})),
            PreStop::Missing
        );
        assert_eq!(classify_alone(&with_hook(Value::Null)), PreStop::Missing);
    }

    /// The kubelet sends an `httpGet` hook to `host` when set, from the node, and resolves a
    /// named port among the container's own ports; the probe answers plain HTTP at the pod's
    /// address, and ignores a query string.
    #[test]
    fn a_drain_call_reaches_the_probe_only_at_the_pods_address() {
        let drain = |get: Value, ports: Value, host_network: bool| {
            let mut container = with_hook(json!({ "httpGet": get }));
            container["ports"] = ports;
            classify(&container, false, host_network)
        };
        let none = json!([]);
        let broken = |how: &str| PreStop::MisdirectedDrain {
            how: how.to_owned(),
        };
        let localhost = json!({"path": "/drain", "port": 7434, "host": "localhost"});
        assert_eq!(
            drain(localhost.clone(), none.clone(), false),
            broken("on host \"localhost\"")
        );
        assert_eq!(
            drain(localhost, none.clone(), true),
            PreStop::Drain { port: Some(7434) }
        );
        let elsewhere = json!({"path": "/drain", "port": 7434, "host": "10.0.0.7"});
        assert_eq!(
            drain(elsewhere, none.clone(), true),
            broken("on host \"10.0.0.7\"")
        );
        let https = json!({"path": "/drain", "port": 7434, "scheme": "HTTPS"});
        assert_eq!(drain(https, none.clone(), false), broken("over HTTPS"));
        let explicit = json!({"path": "/drain", "port": 7434, "scheme": "HTTP", "host": ""});
        assert_eq!(
            drain(explicit, none.clone(), false),
            PreStop::Drain { port: Some(7434) }
        );

        let named = json!({"path": "/drain", "port": "sg-probe"});
        let declared = json!([{"name": "sg-probe", "containerPort": 7434}]);
        assert_eq!(
            drain(named.clone(), declared, false),
            PreStop::Drain { port: Some(7434) }
        );
        assert_eq!(
            drain(named, none.clone(), false),
            PreStop::Drain { port: None }
        );
        let query = json!({"path": "/drain?reason=deploy", "port": 7434});
        assert_eq!(
            drain(query, none, false),
            PreStop::Drain { port: Some(7434) }
        );
    }

    #[test]
    fn the_drain_endpoint() {
        let hook = with_hook(json!({"httpGet": {"path": "/drain", "port": 7434}}));
        assert_eq!(classify_alone(&hook), PreStop::Drain { port: Some(7434) });
        let hook = with_hook(json!({"httpGet": {"path": "/shutdown", "port": 8080}}));
        assert_eq!(
            classify_alone(&hook),
            PreStop::Unrecognised {
                what: "httpGet /shutdown".into(),
                sleeps: 0,
            }
        );
    }

    #[rstest]
    #[case(&["/bin/sh", "-c", "kill -TSTP 1; sleep 60"], 60)]
    #[case(&["sh", "-c", "kill -s TSTP 1 && sleep 30 && sleep 30"], 60)]
    #[case(&["bash", "-c", "kill -SIGTSTP $(cat /app/tmp/pids/sidekiq.pid); sleep 2m"], 120)]
    #[case(&["sh", "-c", "pkill -20 -f sidekiq; sleep 45"], 45)]
    // Whatever else the hook does, it takes at least its sleep.
    #[case(&["sh", "-c", "rm -f /tmp/ready; kill -TSTP 1; sleep 300"], 300)]
    #[case(&["sh", "-c", "echo \"waiting for jobs\"; kill -TSTP 1; sleep 300"], 300)]
    #[case(&["sh", "-c", "# wait for running jobs\nkill -TSTP 1; sleep 300"], 300)]
    #[case(&["sh", "-c", "PID=$(pgrep -f sidekiq); kill -TSTP $PID; sleep 300"], 300)]
    #[case(&["sh", "-c", "kill -TSTP 1; sleep 120; kill -TERM 1"], 120)]
    #[case(&["sh", "-c", "kill -TSTP 1; sleep 1m 240s"], 300)]
    #[case(&["sh", "-c", "kill -TSTP 1; sleep 0.5"], 1)]
    #[case(&["sh", "-c", "kill -TSTP 1; sleep 1.5m"], 90)]
    // A here-document is data; a nested shell is read too.
    #[case(&["sh", "-c", "cat <<EOF > /tmp/x\nfor a while\nEOF\nkill -TSTP 1; sleep 30"], 30)]
    #[case(&["sh", "-c", "bash -c 'kill -TSTP 1 && sleep 120'"], 120)]
    #[case(&["sh", "-c", "kill -TSTP 1; sleep \"$1\"", "--", "120"], 120)]
    #[case(&["sh", "-c", "pgrep -f sidekiq | xargs kill -TSTP; sleep 300"], 300)]
    fn quiet_then_fixed_sleep(#[case] command: &[&str], #[case] sleep: u64) {
        assert!(
            matches!(exec(command), PreStop::QuietThenSleep { sleep: s, .. } if s == sleep),
            "{command:?}: {:?}",
            exec(command)
        );
    }

    #[test]
    fn a_sleep_beside_other_commands_is_a_lower_bound() {
        assert_eq!(
            exec(&["sh", "-c", "kill -TSTP 1; sleep 60"]),
            PreStop::QuietThenSleep {
                sleep: 60,
                also_runs: false
            }
        );
        assert_eq!(
            exec(&[
                "sh",
                "-c",
                "kill -TSTP 1; bundle exec rake jobs:wait; sleep 5"
            ]),
            PreStop::QuietThenSleep {
                sleep: 5,
                also_runs: true
            }
        );
    }

    #[rstest]
    #[case(&["kill", "-TSTP", "1"])]
    #[case(&["sh", "-c", "kill -TSTP 1 && sleep 0"])]
    #[case(&["sh", "-c", "kill -TSTP 1 || true"])]
    #[case(&["/bin/sh", "-c", "echo quieting; kill -TSTP 1; exit 0"])]
    #[case(&["/bin/bash", "-c", "SIDEKIQ_PID=$(ps aux | grep sidekiq | grep busy | awk '{ print $2 }'); kill -SIGTSTP $SIDEKIQ_PID"])]
    fn quiets_and_returns_at_once(#[case] command: &[&str]) {
        assert_eq!(exec(command), PreStop::QuietOnly);
    }

    #[rstest]
    #[case(&["sh", "-c", "kill -TSTP 1; while pgrep -f '^sidekiq.*busy' >/dev/null; do sleep 1; done"])]
    #[case(&["curl", "-fsS", "http://localhost:7434/drain"])]
    #[case(&["sh", "-c", "kill --signal=tstp 1; /app/bin/wait-for-jobs"])]
    #[case(&["sh", "-c", "kill -TSTP 1; /app/bin/wait-for-jobs.sh"])]
    #[case(&["sh", "-c", "kill -TSTP 1; OUT=$(bundle exec rake sidekiq:wait_idle); echo $OUT"])]
    #[case(&["sh", "-c", "echo don\\'t; kill -TSTP 1; while pgrep -f '[b]usy'; do sleep 2; done"])]
    #[case(&["sh", "-c", "echo \"say \\\"bye\"; kill -TSTP 1; while pgrep -f '[b]usy'; do sleep 2; done"])]
    // pkill and kill reach the hook's shell too, harmlessly: exec processes run in a session
    // of their own, whose orphaned process group ignores SIGTSTP.
    #[case(&["sh", "-c", "pkill -TSTP -f sidekiq; while pgrep -f '^sidekiq .*[1-9][0-9]* of'; do sleep 2; done"])]
    // pgrep without -f matches process names, never a shell's script.
    #[case(&["sh", "-c", "kill -TSTP 1; while pgrep sidekiq; do sleep 2; done"])]
    fn quiets_without_a_fixed_sleep(#[case] command: &[&str]) {
        assert_eq!(exec(command), PreStop::Quiets { sleeps: 0 });
    }

    /// A hook that waits for the jobs and sleeps besides lasts the wait and the sleeps: the
    /// grace period counts both.
    #[rstest]
    #[case(&["sh", "-c", "sleep 30; curl -fsS http://localhost:7434/drain"], 30)]
    #[case(&["sh", "-c", "curl -fsS http://localhost:7434/drain; sleep 15"], 15)]
    #[case(&["sh", "-c", "kill -TSTP 1; while pgrep -f '[b]usy'; do sleep 2; done; sleep 10"], 10)]
    #[case(&["sh", "-c", "kill -TSTP 1; timeout 300 sh -c 'while pgrep -f busy; do sleep 1; done'; sleep 5"], 5)]
    #[case(&["sh", "-c", "[ -f /tmp/x ] && sleep 60; curl -fsS http://localhost:7434/drain"], 0)]
    fn a_wait_for_the_jobs_and_a_sleep_add_up(#[case] command: &[&str], #[case] sleeps: u64) {
        let hook = exec(command);
        assert_eq!(hook, PreStop::Quiets { sleeps });
        let expected = if sleeps > 0 {
            HookDuration::DrainAndSleeps(sleeps)
        } else {
            HookDuration::Drain
        };
        assert_eq!(hook.duration(), expected);
    }

    #[test]
    fn a_sleep_of_the_containers_variable_is_read() {
        let container = json!({"name": "w",
            "env": [{"name": "DRAIN_SECONDS", "value": "300"}],
            "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; sleep $DRAIN_SECONDS"]}}}});
        assert_eq!(
            classify_alone(&container),
            PreStop::QuietThenSleep {
                sleep: 300,
                also_runs: false
            }
        );
        let defaulted = json!({"name": "w",
            "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; sleep ${DRAIN:-120}"]}}}});
        assert_eq!(
            classify_alone(&defaulted),
            PreStop::QuietThenSleep {
                sleep: 120,
                also_runs: false
            }
        );
    }

    #[rstest]
    #[case(&["sh", "-c", "kill -TSTP 1; sleep infinity"], true)]
    #[case(&["sh", "-c", "kill -TSTP 1 && exec sleep INF"], true)]
    #[case(&["sh", "-c", "curl -s localhost:7434/drain; sleep infinity"], true)]
    #[case(&["sh", "-c", "kill -TSTP 1; while true; do sleep infinity; done"], true)]
    #[case(&["sleep", "infinity"], false)]
    #[case(&["sh", "-c", "echo bye; sleep 10 infinity"], false)]
    // Numbers beyond a hundred years outlast any grace period as surely as `infinity`.
    #[case(&["sh", "-c", "kill -TSTP 1; sleep 9999999999"], true)]
    #[case(&["sh", "-c", "kill -TSTP 1; sleep 1e10"], true)]
    #[case(&["sh", "-c", "kill -TSTP 1; sleep 99999d"], true)]
    #[case(&["sh", "-c", "kill -TSTP 1; sleep 18446744073709551615; sleep 10"], true)]
    #[case(&["sleep", "99999999999999999999999"], false)]
    fn sleeping_forever_is_endless(#[case] command: &[&str], #[case] quiets: bool) {
        assert_eq!(exec(command), PreStop::Endless { quiets });
    }

    #[rstest]
    #[case(&["sh", "-c", "kill -TSTP 1; timeout 300 sleep infinity"])]
    #[case(&["sh", "-c", "kill -TSTP 1; timeout -s KILL 5m sh -c 'sleep infinity'"])]
    fn sleeping_forever_under_timeout_ends(#[case] command: &[&str]) {
        assert_eq!(exec(command), PreStop::Quiets { sleeps: 0 });
    }

    #[test]
    fn sleeping_alone_does_not_quiet() {
        assert_eq!(exec(&["sleep", "30"]), PreStop::SleepOnly { sleep: 30 });
        assert_eq!(
            classify_alone(&with_hook(json!({"sleep": {"seconds": 15}}))),
            PreStop::SleepOnly { sleep: 15 }
        );
        // Longer than 100 years, as an exec `sleep` that long: endless, not a grace period
        // past int64 to cover it.
        assert_eq!(
            classify_alone(&with_hook(
                json!({"sleep": {"seconds": 9_223_372_036_854_775_407_u64}})
            )),
            PreStop::Endless { quiets: false }
        );
    }

    #[rstest]
    #[case(&["/app/bin/stop-worker"])]
    #[case(&["sh", "-c", "kill -TSTP '1"])]
    fn other_hooks_are_unrecognised(#[case] command: &[&str]) {
        assert!(
            matches!(exec(command), PreStop::Unrecognised { sleeps: 5 | 0, .. }),
            "{command:?}"
        );
    }

    /// Sidekiq 6+ handles INT, TERM, TTIN and TSTP (checked on 6.4.1: `kill -USR1` ends it at
    /// once, its running job neither finished nor pushed back).
    #[rstest]
    #[case(&["sh", "-c", "kill -TERM 1"], "TERM")]
    #[case(&["kill", "1"], "TERM")]
    #[case(&["sh", "-c", "pkill -f sidekiq; sleep 5"], "TERM")]
    #[case(&["sh", "-c", "kill -s INT 1"], "INT")]
    fn a_hook_that_stops_sidekiq_itself(#[case] command: &[&str], #[case] signal: &str) {
        assert_eq!(
            exec(command),
            PreStop::StopsAtOnce {
                signal: signal.into()
            }
        );
    }

    #[rstest]
    #[case(&["sh", "-c", "kill -USR1 1"], "sends SIGUSR1")]
    #[case(&["kill", "-10", "1"], "sends SIGUSR1")]
    #[case(&["sh", "-c", "pkill -USR1 -f sidekiq; sleep 25"], "sends SIGUSR1")]
    #[case(&["sh", "-c", "kill -TSTP 1; sleep 60; kill -9 1"], "sends SIGKILL")]
    #[case(&["bundle", "exec", "sidekiqctl", "quiet"], "runs sidekiqctl")]
    #[case(
        &["sh", "-c", "bundle exec rails runner 'Sidekiq::ProcessSet.new.each(&:quiet!)'; sleep 300"],
        "quiets every process of Sidekiq::ProcessSet"
    )]
    #[case(&["sh", "-c", "bundle exec sidekiqctl quiet /tmp/sidekiq.pid; sleep 300"], "runs sidekiqctl")]
    // pgrep finds the loop's own shell, whose command line holds the pattern.
    #[case(
        &["sh", "-c", "pkill -TSTP -f sidekiq; while pgrep -f 'sidekiq.*busy' >/dev/null; do sleep 5; done"],
        "waits in a loop on pgrep -f \"sidekiq.*busy\""
    )]
    #[case(&["bash", "-c", "kill -TSTP 1; while pgrep -f busy; do sleep 2; done"], "waits in a loop on pgrep -f \"busy\"")]
    #[case(
        &["sh", "-c", "kill -TSTP 1; until [ -z \"$(pgrep -fi SIDEKIQ)\" ]; do sleep 2; done"],
        "waits in a loop on pgrep -f \"SIDEKIQ\""
    )]
    fn a_hook_that_cannot_work_on_sidekiq_6(#[case] command: &[&str], #[case] what: &str) {
        assert!(
            matches!(exec(command), PreStop::Broken { what: w, .. } if w == what),
            "{command:?}: {:?}",
            exec(command)
        );
    }

    #[test]
    fn a_hook_is_described_in_a_few_words_however_long() {
        let script = "while ".repeat(10_000);
        let PreStop::Unrecognised { what, .. } = exec(&["sh", "-c", &script]) else {
            panic!("{:?}", exec(&["sh", "-c", &script]));
        };
        assert_eq!(what.chars().count(), MAX_WHAT);
        assert!(
            what.starts_with("exec sh -c while while") && what.ends_with('…'),
            "{what}"
        );
        let path = format!("/{}", "x".repeat(10_000));
        let hook = with_hook(json!({"httpGet": {"path": path, "port": 8080}}));
        let PreStop::Unrecognised { what, .. } = classify_alone(&hook) else {
            panic!("{hook}");
        };
        assert_eq!(what.chars().count(), MAX_WHAT);
        // A short one whole.
        assert!(matches!(
            exec(&["sh", "-c", "echo bye"]),
            PreStop::Unrecognised { what, .. } if what == "exec sh -c echo bye"
        ));
    }

    #[test]
    fn a_last_sigterm_after_the_quiet_and_the_wait_is_only_early() {
        assert_eq!(
            exec(&["sh", "-c", "kill -TSTP 1; sleep 120; kill -TERM 1"]),
            PreStop::QuietThenSleep {
                sleep: 120,
                also_runs: false
            }
        );
    }

    #[test]
    fn a_process_set_quiet_of_this_pods_own_processes_quiets_and_waits_only_if_it_says_so() {
        let runner = |code: &str| exec(&["bundle", "exec", "rails", "runner", code]);
        // `quiet!` pushes TSTP into Redis and returns: SIGTERM follows the runner's end.
        assert_eq!(
            runner(
                "Sidekiq::ProcessSet.new.each { |p| p.quiet! if p['hostname'] == ENV['HOSTNAME'] }"
            ),
            PreStop::QuietOnly
        );
        assert_eq!(
            runner(
                "ps = Sidekiq::ProcessSet.new.select { |p| p['hostname'] == ENV['HOSTNAME'] }; ps.each(&:quiet!); sleep 1 until Sidekiq::ProcessSet.new.none? { |p| p['hostname'] == ENV['HOSTNAME'] && p['busy'] > 0 }"
            ),
            PreStop::Quiets { sleeps: 0 }
        );
        // Its boot takes time before the sleep: SIGTERM comes later than the sleep says.
        assert_eq!(
            exec(&[
                "sh",
                "-c",
                "bundle exec rails runner 'Sidekiq::ProcessSet.new.each { |p| p.quiet! if p[\"hostname\"] == ENV[\"HOSTNAME\"] }'; sleep 600"
            ]),
            PreStop::QuietThenSleep {
                sleep: 600,
                also_runs: true
            }
        );
    }

    #[rstest]
    #[case(&["sh", "-c", "bundle exec rails runner \"puts 'stopping'\"; sleep 600"], 600)]
    #[case(&["sh", "-c", "/app/bin/wait-for-jobs; sleep 600"], 600)]
    #[case(&["sh", "-c", "kill -HUP 1; sleep 5m; sleep 60"], 360)]
    // A sleep in a loop polls, one under a condition may not run, one in the background does
    // not hold the hook: no lower bound.
    #[case(&["sh", "-c", "while pgrep -f '[b]usy'; do sleep 5; done"], 0)]
    #[case(&["sh", "-c", "[ -f /tmp/slow ] && sleep 600; /app/bin/stop"], 0)]
    #[case(&["sh", "-c", "/app/bin/stop || sleep 600"], 0)]
    #[case(&["sh", "-c", "sleep 600 & /app/bin/stop"], 0)]
    fn an_unreadable_hook_lasts_at_least_its_sleeps(#[case] command: &[&str], #[case] sleeps: u64) {
        let hook = exec(command);
        assert!(
            matches!(hook, PreStop::Unrecognised { sleeps: s, .. } if s == sleeps),
            "{command:?}: {hook:?}"
        );
        assert_eq!(hook.fixed_sleep(), (sleeps > 0).then_some(sleeps));
    }
}
