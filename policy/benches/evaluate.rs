//! Per-request evaluation time of the Kubewarden policy on the admission corpus: the built module
//! in the waPC host (wasmi, an interpreter), side by side with the native core's decision and
//! with the same policy shell compiled natively (JSON in, JSON out: the work the module does).
//!
//! The VM this runs on drifts by ±30 % between runs, so the three are interleaved in rounds and
//! the ratios are taken per round before the median.
//!
//!     scripts/build-policy && cargo bench -p sidekiq-guard-policy --bench evaluate
//!
//! Without `--bench` (as `cargo test --benches` runs it) it makes one checked pass and no timing.

// A benchmark reports on stdout; anything that fails here is a broken setup, reported by panic.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sidekiq_guard::admission::{self, AdmissionRequest};
use sidekiq_guard::{Context, Mode, Policy};
use sidekiq_guard_policy_host::{WapcHost, built_policy, on_big_stack, workspace_root};

const ROUNDS: usize = 25;
/// Each timed batch runs at least this long, so the clock's resolution does not matter.
const BATCH: Duration = Duration::from_millis(3);

struct Case {
    name: String,
    request: AdmissionRequest,
    payload: Vec<u8>,
}

fn corpus() -> Vec<Case> {
    let dir = workspace_root().join("tests/data/admission");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let review: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let body = serde_json::to_vec(&review).unwrap();
            Case {
                name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                request: admission::parse(&body).unwrap(),
                payload: serde_json::to_vec(&json!({"request": review["request"], "settings": {"sidecar": {"mode": "native"}}}))
                    .unwrap(),
            }
        })
        .collect()
}

/// Seconds per call of `f`, over a batch of `iterations`.
fn per_call(iterations: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_secs_f64() / f64::from(iterations)
}

/// How many calls of `f` fill a batch.
fn calibrate(mut f: impl FnMut()) -> u32 {
    let once = per_call(1, &mut f).max(1e-7);
    ((BATCH.as_secs_f64() / once).ceil() as u32).clamp(1, 100_000)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn micros(seconds: f64) -> String {
    format!("{:.1} µs", seconds * 1e6)
}

fn main() {
    let timed = std::env::args().any(|arg| arg == "--bench");
    let module = built_policy().unwrap_or_else(|err| panic!("{err}"));
    on_big_stack(move || run(&module, timed)).unwrap();
}

fn run(module: &std::path::Path, timed: bool) {
    let mut host = WapcHost::from_file(module).unwrap();
    let cases = corpus();
    let policy = Policy::default();
    let ctx = Context {
        policy: &policy,
        mode: Mode::resolve_offline(policy.sidecar.mode),
        namespace: None,
    };
    // Every case answers the same in the module and natively, or the timings compare nothing.
    for case in &cases {
        assert_eq!(
            host.call("validate", &case.payload).unwrap(),
            sidekiq_guard_policy::validate(&case.payload).unwrap(),
            "{}",
            case.name
        );
    }
    if !timed {
        println!(
            "evaluate: {} cases agree (run with --bench for timings)",
            cases.len()
        );
        return;
    }

    let core = |case: &Case| {
        black_box(admission::combined(black_box(&case.request), &ctx));
    };
    let native = |case: &Case| {
        black_box(sidekiq_guard_policy::validate(black_box(&case.payload)).unwrap());
    };
    let wasm = |host: &mut WapcHost, case: &Case| {
        black_box(host.call("validate", black_box(&case.payload)).unwrap());
    };
    let iterations: Vec<[u32; 3]> = cases
        .iter()
        .map(|case| {
            [
                calibrate(|| core(case)),
                calibrate(|| native(case)),
                calibrate(|| wasm(&mut host, case)),
            ]
        })
        .collect();

    // samples[case][variant] over rounds; totals[variant] per round (one request of each case).
    let mut samples = vec![[Vec::new(), Vec::new(), Vec::new()]; cases.len()];
    let mut totals = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        let mut total = [0.0; 3];
        for (i, case) in cases.iter().enumerate() {
            // Rotate the order each round so no variant always runs first (caches, drift).
            for k in 0..3 {
                let variant = (k + round + i) % 3;
                let n = iterations[i][variant];
                let t = match variant {
                    0 => per_call(n, || core(case)),
                    1 => per_call(n, || native(case)),
                    _ => per_call(n, || wasm(&mut host, case)),
                };
                samples[i][variant].push(t);
                total[variant] += t;
            }
        }
        for variant in 0..3 {
            totals[variant].push(total[variant]);
        }
    }
    let ratios = |a: usize, b: usize| -> f64 {
        let mut per_round: Vec<f64> = (0..ROUNDS).map(|r| totals[a][r] / totals[b][r]).collect();
        median(&mut per_round)
    };

    println!(
        "{:<40} {:>12} {:>14} {:>12} {:>9}",
        "fixture (median per request)", "native core", "native policy", "wasm (wasmi)", "wasm/pol"
    );
    for (i, case) in cases.iter().enumerate() {
        let [c, n, w] = [0, 1, 2].map(|v| median(&mut samples[i][v].clone()));
        println!(
            "{:<40} {:>12} {:>14} {:>12} {:>8.1}×",
            case.name,
            micros(c),
            micros(n),
            micros(w),
            w / n
        );
    }
    let mean = |variant: usize| median(&mut totals[variant].clone()) / cases.len() as f64;
    println!(
        "{:<40} {:>12} {:>14} {:>12}",
        "mean over the corpus",
        micros(mean(0)),
        micros(mean(1)),
        micros(mean(2))
    );
    println!(
        "ratio, median of {ROUNDS} interleaved rounds: wasm / native policy = {:.1}×, wasm / native core = {:.1}×, native policy / native core = {:.2}×",
        ratios(2, 1),
        ratios(2, 0),
        ratios(1, 0)
    );
}
