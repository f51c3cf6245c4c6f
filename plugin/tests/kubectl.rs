//! The plugin through the real `kubectl`: discovery on `PATH`, and flags passed through.

// Test helpers outside #[test] functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn kubectl(path_dir: &Path) -> Command {
    let mut command = Command::new("kubectl");
    let path = format!(
        "{}:{}",
        path_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    command
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG");
    command
}

#[test]
fn kubectl_finds_the_plugin_and_runs_it() {
    let binary = Path::new(env!("CARGO_BIN_EXE_kubectl-sidekiq"));
    let dir = binary.parent().unwrap();
    let out = kubectl(dir).args(["plugin", "list"]).output().unwrap();
    let listed = text(&out.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.trim() == binary.display().to_string()),
        "kubectl plugin list:\n{listed}{}",
        text(&out.stderr)
    );

    let out = kubectl(dir)
        .args(["sidekiq", "status", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Usage: kubectl sidekiq status [OPTIONS]"),
        "{}",
        text(&out.stdout)
    );

    // kubectl hands every flag after the plugin's name to the plugin.
    let api = ApiServer::start();
    api.add_pod(injected_pod("shop", "worker-1", 60, 7434));
    let kubeconfig = api.kubeconfig("default");
    let out = kubectl(dir)
        .args([
            "sidekiq",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "-n",
            "shop",
            "status",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["pods"][0]["name"], "worker-1");
}
