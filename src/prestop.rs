//! What a container's preStop hook does to Sidekiq.
//!
//! Only a hook that *quiets* Sidekiq (SIGTSTP, or sidekiq-guard's `/drain`) stops it from fetching
//! new jobs while the pod is going away. The hand-written `kill -TSTP 1; sleep N` quiets, but
//! always waits the full N seconds, whether jobs finished after one second or are still running.

use serde_json::Value;

use crate::duration;
use crate::shell;

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
    },
    /// Quiets Sidekiq and waits some other way (e.g. a polling loop, or a call of `/drain`,
    /// which returns once the jobs are done).
    Quiets,
    /// Quiets Sidekiq and returns at once (`kill -TSTP 1`, `sidekiqctl quiet`): the kubelet
    /// sends SIGTERM right after, so it buys no time for running jobs.
    QuietOnly,
    /// Only sleeps: Sidekiq keeps fetching jobs until SIGTERM.
    SleepOnly {
        /// Seconds slept in total.
        sleep: u64,
    },
    /// Something this project cannot read.
    Unrecognised {
        /// A short description of the hook.
        what: String,
    },
}

impl PreStop {
    /// Seconds the hook always takes, when it sleeps a fixed time: the kubelet sends SIGTERM
    /// only after it returns.
    pub fn fixed_sleep(&self) -> Option<u64> {
        match self {
            PreStop::QuietThenSleep { sleep } | PreStop::SleepOnly { sleep } => Some(*sleep),
            _ => None,
        }
    }

    /// Whether the hook stops Sidekiq from fetching new jobs.
    pub fn quiets(&self) -> bool {
        matches!(
            self,
            PreStop::Drain { .. }
                | PreStop::QuietThenSleep { .. }
                | PreStop::Quiets
                | PreStop::QuietOnly
        )
    }
}

/// Reads the preStop hook of `container`.
pub fn classify(container: &Value) -> PreStop {
    let Some(hook) = container
        .pointer("/lifecycle/preStop")
        .filter(|h| !h.is_null())
    else {
        return PreStop::Missing;
    };
    if let Some(get) = hook.get("httpGet") {
        let path = get.get("path").and_then(Value::as_str).unwrap_or("/");
        if path == DRAIN_PATH {
            let port = get
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok());
            return PreStop::Drain { port };
        }
        return PreStop::Unrecognised {
            what: format!("httpGet {path}"),
        };
    }
    if let Some(seconds) = hook.pointer("/sleep/seconds").and_then(Value::as_u64) {
        return PreStop::SleepOnly { sleep: seconds };
    }
    let command: Vec<String> = hook
        .pointer("/exec/command")
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
        };
    }
    classify_exec(&command)
}

fn classify_exec(command: &[String]) -> PreStop {
    let what = || PreStop::Unrecognised {
        what: format!("exec {}", command.join(" ")),
    };
    let (commands, looping) = match shell::script_of(command) {
        Some(script) => match shell::parse(script, &|_| None) {
            Ok(commands) => (commands, has_loop(script)),
            Err(_) => return what(),
        },
        None => (vec![command.to_vec()], false),
    };
    let mut quiets = false;
    // A call of the probe's /drain blocks until the jobs are done: it quiets and waits.
    let mut drains = false;
    let mut sleep = 0u64;
    let mut other = false;
    for words in &commands {
        let Some((name, args)) = shell::skip_wrappers(words).split_first() else {
            other = true;
            continue;
        };
        match shell::basename(name) {
            "kill" | "pkill" | "killall" if sends_tstp(args) => quiets = true,
            "sidekiqctl" if args.iter().any(|a| a == "quiet") => quiets = true,
            "curl" | "wget" if args.iter().any(|a| a.contains(DRAIN_PATH)) => {
                quiets = true;
                drains = true;
            }
            "sleep" => match args.first().and_then(|a| duration::parse_secs(a).ok()) {
                Some(secs) => sleep = sleep.saturating_add(secs),
                None => other = true,
            },
            // Take no time: `kill -TSTP 1 || true`, `echo quieting; kill -TSTP 1; exit 0`.
            "true" | ":" | "exit" | "echo" | "printf" | "logger" => {}
            _ => other = true,
        }
    }
    match (quiets, sleep, other || looping || drains) {
        (true, 0, false) => PreStop::QuietOnly,
        (true, 0, _) | (true, _, true) => PreStop::Quiets,
        (true, sleep, false) => PreStop::QuietThenSleep { sleep },
        (false, sleep, false) if sleep > 0 => PreStop::SleepOnly { sleep },
        _ => what(),
    }
}

/// A sleep inside a loop is a poll, not a fixed wait.
fn has_loop(script: &str) -> bool {
    script
        .split(|c: char| c.is_whitespace() || c == ';')
        .any(|word| matches!(word, "while" | "until" | "for"))
}

/// `-TSTP`, `-SIGTSTP`, `-20`, `-s TSTP`, `--signal=TSTP`, `-n 20`, any case.
fn sends_tstp(args: &[String]) -> bool {
    let is_tstp = |name: &str| {
        let name = name.to_ascii_uppercase();
        let name = name.strip_prefix("SIG").unwrap_or(&name);
        name == "TSTP" || name == "20"
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-s" | "-n" | "--signal" => {
                if rest.next().is_some_and(|name| is_tstp(name)) {
                    return true;
                }
            }
            other => {
                let flag = other
                    .strip_prefix("--signal=")
                    .or_else(|| other.strip_prefix('-'));
                if flag.is_some_and(is_tstp) {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn with_hook(hook: Value) -> Value {
        json!({"name": "w", "lifecycle": {"preStop": hook}})
    }

    fn exec(command: &[&str]) -> PreStop {
        classify(&with_hook(json!({"exec": {"command": command}})))
    }

    #[test]
    fn missing_hooks() {
        assert_eq!(classify(&json!({"name": "w"})), PreStop::Missing);
        assert_eq!(
            classify(&json!({"name": "w", "lifecycle": {}})),
            PreStop::Missing
        );
        assert_eq!(classify(&with_hook(Value::Null)), PreStop::Missing);
    }

    #[test]
    fn the_drain_endpoint() {
        let hook = with_hook(json!({"httpGet": {"path": "/drain", "port": 7434}}));
        assert_eq!(classify(&hook), PreStop::Drain { port: Some(7434) });
        let hook = with_hook(json!({"httpGet": {"path": "/shutdown", "port": 8080}}));
        assert_eq!(
            classify(&hook),
            PreStop::Unrecognised {
                what: "httpGet /shutdown".into()
            }
        );
    }

    #[rstest]
    #[case(&["/bin/sh", "-c", "kill -TSTP 1; sleep 60"], 60)]
    #[case(&["sh", "-c", "kill -s TSTP 1 && sleep 30 && sleep 30"], 60)]
    #[case(&["bash", "-c", "kill -SIGTSTP $(cat /app/tmp/pids/sidekiq.pid); sleep 2m"], 120)]
    #[case(&["sh", "-c", "pkill -20 -f sidekiq; sleep 45"], 45)]
    fn quiet_then_fixed_sleep(#[case] command: &[&str], #[case] sleep: u64) {
        assert_eq!(exec(command), PreStop::QuietThenSleep { sleep });
    }

    #[rstest]
    #[case(&["kill", "-TSTP", "1"])]
    #[case(&["sh", "-c", "bundle exec sidekiqctl quiet tmp/pids/sidekiq.pid"])]
    #[case(&["sh", "-c", "kill -TSTP 1 && sleep 0"])]
    #[case(&["sh", "-c", "kill -TSTP 1 || true"])]
    #[case(&["/bin/sh", "-c", "echo quieting; kill -TSTP 1; exit 0"])]
    fn quiets_and_returns_at_once(#[case] command: &[&str]) {
        assert_eq!(exec(command), PreStop::QuietOnly);
    }

    #[rstest]
    #[case(&["sh", "-c", "kill -TSTP 1; while pgrep -f 'sidekiq.*busy' >/dev/null; do sleep 1; done"])]
    #[case(&["curl", "-fsS", "http://localhost:7434/drain"])]
    #[case(&["sh", "-c", "kill --signal=tstp 1; /app/bin/wait-for-jobs"])]
    fn quiets_without_a_fixed_sleep(#[case] command: &[&str]) {
        assert_eq!(exec(command), PreStop::Quiets);
    }

    #[test]
    fn sleeping_alone_does_not_quiet() {
        assert_eq!(exec(&["sleep", "30"]), PreStop::SleepOnly { sleep: 30 });
        assert_eq!(
            classify(&with_hook(json!({"sleep": {"seconds": 15}}))),
            PreStop::SleepOnly { sleep: 15 }
        );
    }

    #[rstest]
    #[case(&["sh", "-c", "kill -TERM 1; sleep 5"])]
    #[case(&["/app/bin/stop-worker"])]
    #[case(&["sh", "-c", "kill -TSTP '1"])]
    fn other_hooks_are_unrecognised(#[case] command: &[&str]) {
        assert!(
            matches!(exec(command), PreStop::Unrecognised { .. }),
            "{command:?}"
        );
    }
}
