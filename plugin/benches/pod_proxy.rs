//! `kubectl sidekiq status` over the pod proxy: 200 injected pods, each probe answering after
//! 10 ms, against the local test API server. Prints the median wall time of the whole command.
//!
//!     cargo bench -p kubectl-sidekiq --bench pod_proxy

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{ApiServer, ProxyTarget, injected_pod};

const PODS: usize = 200;
const PROBE_LATENCY: Duration = Duration::from_millis(10);
const RUNS: usize = 7;

fn main() {
    let api = ApiServer::start();
    let document =
        std::fs::read_to_string(support::root().join("plugin/tests/golden/probe-status.json"))
            .unwrap();
    for i in 0..PODS {
        let name = format!("rails-worker-7d9c8f6b5-{i:05}");
        api.add_pod(injected_pod("shop", &name, 300, 7434));
        api.proxy(
            "shop",
            &name,
            7434,
            ProxyTarget::Fixed {
                status: 200,
                body: document.clone(),
                delay: PROBE_LATENCY,
            },
        );
    }
    let kubeconfig = api.kubeconfig("shop");
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let out = support::run(&[
            "status",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "-o",
            "json",
        ]);
        times.push(started.elapsed());
        assert!(out.status.success(), "{}", support::text(&out.stderr));
        let snapshot: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(snapshot["pods"].as_array().unwrap().len(), PODS);
    }
    times.sort();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{PODS} pods through the pod proxy, {} ms probe latency, default concurrency 32: median {:.0} ms, best {:.0} ms over {RUNS} runs (target < 2000 ms; load {})",
        PROBE_LATENCY.as_millis(),
        times[RUNS / 2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
