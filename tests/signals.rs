//! SG026 against what really happens to a container's processes on the kubelet's SIGTERM.
//!
//! Each command line runs as PID 1 of a fresh PID namespace (`unshare`), under the real
//! `dumb-init`, `tini`, dash (`sh`) and bash, with a stand-in for Sidekiq first in `PATH`: on
//! SIGTERM it takes 2 s to finish its jobs, then leaves a mark. The namespace's PID 1 gets
//! SIGTERM as the kubelet sends it; when PID 1 exits, the kernel kills whatever is left, as
//! in a container. The stand-in finishes exactly where the core does not report SG026.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sidekiq_guard::findings::Code;
use sidekiq_guard::review::{self, Perspective};
use sidekiq_guard::{Context, Mode, Policy};

/// Sidekiq's part: on SIGTERM, finish the running jobs (2 s), leave the mark, exit. It says
/// when its handler is set, so that SIGTERM is not sent before.
const STAND_IN: &str = "#!/bin/sh
trap 'sleep 2; : > \"$MARKER\"; exit 0' TERM
: > \"$MARKER.ready\"
while :; do sleep 0.1; done
";

/// Longer than any shutdown here: a shell that keeps SIGTERM never ends by itself, and the
/// kubelet's SIGKILL at the end of the grace period is this test's.
const GRACE: Duration = Duration::from_secs(8);

/// Whether SG026 is reported for a worker whose container runs `command`.
fn reported(command: &[&str]) -> bool {
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": "shop"},
        "spec": {"template": {
            "metadata": {"annotations": {"sidekiq-guard.io/longest-job": "1m"}},
            "spec": {"containers": [{
                "name": "worker",
                "image": "shop:1",
                "command": command,
                "env": [{"name": "REDIS_URL", "value": "redis://redis:6379/0"}],
            }]},
        }},
    });
    let policy = Policy::default();
    let ctx = Context {
        policy: &policy,
        mode: Mode::Native,
        namespace: Some("shop"),
    };
    review::validate(&deployment, &ctx, Perspective::AsWritten)
        .findings
        .iter()
        .any(|finding| finding.code == Code::SidekiqNotSignalled)
}

/// PID 1 of the namespace `unshare` made: its only child.
fn namespace_init(unshare: &Child) -> Option<u32> {
    let pid = unshare.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Runs `command` as a container would, sends its PID 1 SIGTERM once the stand-in runs, and
/// tells whether the stand-in finished its jobs before the container ended.
fn finishes(command: &[&str]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let stand_in = dir.path().join("sidekiq");
    std::fs::write(&stand_in, STAND_IN).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&stand_in)
        .status()
        .unwrap();
    let marker = dir.path().join("finished");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut unshare = Command::new("unshare")
        .args(["--map-root-user", "--fork", "--pid", "--mount-proc", "--"])
        .args(command)
        .env("PATH", path)
        .env("MARKER", &marker)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare (util-linux, scripts/setup) starts");
    let init = wait_for(Duration::from_secs(5), || namespace_init(&unshare))
        .expect("the namespace's PID 1 started");
    let ready = dir.path().join("finished.ready");
    wait_for(Duration::from_secs(5), || ready.exists().then_some(()))
        .expect("the stand-in for Sidekiq started");
    signal(init, "TERM");
    let started = Instant::now();
    while unshare.try_wait().unwrap().is_none() {
        if started.elapsed() > GRACE {
            signal(init, "KILL");
            unshare.wait().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    marker.exists()
}

fn wait_for<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if started.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[rstest::rstest]
#[case::exec(&["sh", "-c", "cd / && exec sidekiq -t 25"], true)]
// dash stays the parent of its last command; as PID 1 without a trap it ignores SIGTERM.
#[case::dash_as_pid_1(&["sh", "-c", "sidekiq -t 25"], false)]
#[case::bash_runs_its_last_command_in_its_place(&["bash", "-c", "cd / && sidekiq -t 25"], true)]
// The init passes SIGTERM to the whole group, but the shell dies of it and the init exits.
#[case::a_pipeline_under_dumb_init(&["dumb-init", "sh", "-c", "sidekiq -t 25 | cat"], false)]
#[case::a_trap_keeps_the_shell_under_dumb_init(&["dumb-init", "sh", "-c", "trap : TERM; sidekiq -t 25 | cat"], true)]
#[case::dash_under_tini_g(&["tini", "-g", "--", "sh", "-c", "sidekiq -t 25"], false)]
#[case::a_trap_keeps_the_shell_under_tini_g(&["tini", "-g", "--", "sh", "-c", "trap : TERM; sidekiq -t 25"], true)]
// tini without -g signals the shell alone: without a trap it dies of it, and tini exits; with
// one, its trap runs only once Sidekiq has ended.
#[case::a_pipeline_under_tini_without_g(&["tini", "--", "sh", "-c", "sidekiq -t 25 | cat"], false)]
#[case::a_trap_under_tini_without_g(&["tini", "--", "sh", "-c", "trap : TERM; sidekiq -t 25"], false)]
#[case::dumb_init_execs_sidekiq_itself(&["dumb-init", "sidekiq", "-t", "25"], true)]
// A trapped SIGTERM interrupts `wait`: waited for once, Sidekiq goes down with the script.
#[case::a_trap_and_a_single_wait(&["sh", "-c", "trap 'kill -TERM $P' TERM; sidekiq -t 25 & P=$!; wait $P"], false)]
#[case::a_trap_and_a_second_wait(&["sh", "-c", "trap 'kill -TERM $P' TERM; sidekiq -t 25 & P=$!; wait $P; wait $P"], true)]
#[case::a_trap_that_waits(&["sh", "-c", "trap 'kill -TERM $P; wait $P' TERM; sidekiq -t 25 & P=$!; wait $P"], true)]
#[case::a_trap_function_and_a_wait_loop(&["bash", "-c", "stop() { kill -TERM \"$P\"; }\ntrap stop TERM\nsidekiq -t 25 &\nP=$!\nwhile kill -0 \"$P\" 2>/dev/null; do wait \"$P\"; done\n"], true)]
// A trap runs only once the foreground command has ended: it passes nothing on to it.
#[case::a_trap_over_a_foreground_sidekiq(&["sh", "-c", "trap 'kill -TERM 0' TERM; sidekiq -t 25"], false)]
fn sg026_is_reported_exactly_where_sidekiq_cannot_finish(
    #[case] command: &[&str],
    #[case] expected: bool,
) {
    assert_eq!(
        !reported(command),
        expected,
        "the core's SG026 for {command:?}"
    );
    assert_eq!(
        finishes(command),
        expected,
        "the stand-in for Sidekiq under {command:?}"
    );
}

/// The stand-in itself finishes its jobs when it gets SIGTERM directly, so a case that loses
/// them loses them to the shell or the init around it.
#[test]
fn the_stand_in_finishes_when_signalled_directly() {
    assert!(finishes(&["sidekiq", "-t", "25"]));
    assert!(!reported(&["sidekiq", "-t", "25"]));
}
