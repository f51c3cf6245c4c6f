//! preStop scripts run as the container runtime runs an exec hook — `setsid`, a session of
//! their own, as runc's exec does — to check what the core says of them: a loop on a
//! `pgrep -f` whose pattern the script itself holds never ends (SG003), while a `pkill -TSTP -f`
//! that reaches the hook's own shell stops nothing, and an anchored pattern ends.
//!
//! `pgrep` and `pkill` look at every process of the machine: each pattern carries a token made
//! for this run, which no other command line holds, so that nothing else is found or signalled.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use sidekiq_guard::prestop::{self, PreStop};

/// How long a hook may run here before it counts as one that never ends.
const PATIENCE: Duration = Duration::from_secs(3);

/// A word no other process's command line holds.
fn token() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("sgtoken{}n{nanos}", std::process::id())
}

/// Runs `script` as `sh -c` in a new session: whether it ended within [`PATIENCE`] (it is
/// killed, with its process group, if not).
fn ends(script: &str) -> bool {
    let mut child = Command::new("setsid")
        .args(["sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // setsid made the shell the leader of its own process group: the group goes with it.
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
    false
}

fn classified(script: &str) -> PreStop {
    let container = json!({"name": "worker", "image": "shop:1", "command": ["sidekiq"],
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", script]}}}});
    prestop::classify(&container, false, false)
}

#[test]
fn a_loop_on_a_pattern_the_script_holds_never_ends_and_is_reported() {
    let token = token();
    for script in [
        format!(
            "pkill -TSTP -f {token}; while pgrep -f '{token}.*busy' >/dev/null; do sleep 0.2; done"
        ),
        format!("while pgrep -f {token} >/dev/null; do sleep 0.2; done"),
    ] {
        assert!(!ends(&script), "{script}");
        let what = match classified(&script) {
            PreStop::Broken { what, .. } => what,
            other => panic!("{script}: {other:?}"),
        };
        assert!(what.starts_with("waits in a loop on pgrep -f"), "{what}");
    }
}

#[test]
fn a_pattern_the_script_does_not_match_ends_and_is_a_wait() {
    let token = token();
    for script in [
        // pkill's SIGTSTP reaches the hook's own shell, whose orphaned group ignores it.
        format!(
            "pkill -TSTP -f {token}; while pgrep -f '^{token}.*busy' >/dev/null; do sleep 0.2; done"
        ),
        format!("pkill -TSTP -f {token}; while pgrep -f '^{token}' >/dev/null; do sleep 0.2; done"),
    ] {
        assert!(ends(&script), "{script}");
        assert_eq!(
            classified(&script),
            PreStop::Quiets { sleeps: 0 },
            "{script}"
        );
    }
}
