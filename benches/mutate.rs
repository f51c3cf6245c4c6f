//! Cost of mutating a typical Rails worker pod, side by side with the floor every admission
//! shell pays anyway: parsing the pod JSON and serialising JSON back.
//!
//! `cargo bench -p sidekiq-guard --bench mutate` prints criterion's figures, then the medians and
//! their ratio; then reading the pod's AdmissionReview as the webhook does (objects without their
//! `managedFields`) against reading it whole. It runs on the allocator of the webhook binary (mimalloc), where mutations run,
//! and with `-p` on the core's own features: building the whole workspace would switch on the
//! plugin's `serde_json/preserve_order`, which the webhook does not use.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use serde_json::Value;
use sidekiq_guard::admission::{self, AdmissionRequest};
use sidekiq_guard::{Context, Mode, Policy, review};

const GROUP: &str = "rails-worker-pod";

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn benches(c: &mut Criterion, pod: &[u8]) {
    let policy = Policy::default();
    let ctx = Context {
        policy: &policy,
        mode: Mode::Native,
        namespace: Some("shop"),
    };
    let parsed: Value = serde_json::from_slice(pod).unwrap();
    let mut group = c.benchmark_group(GROUP);
    group.bench_function("parse+serialise", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_slice(black_box(pod)).unwrap();
            serde_json::to_vec(&value).unwrap()
        })
    });
    group.bench_function("parse+mutate+serialise-patch", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_slice(black_box(pod)).unwrap();
            let review = review::mutate(&value, &ctx);
            serde_json::to_vec(&review.ops).unwrap()
        })
    });
    group.bench_function("mutate", |b| {
        b.iter(|| review::mutate(black_box(&parsed), &ctx))
    });
    group.finish();
}

/// Rounds of alternating batches, so that machine noise (this is a shared VM) hits every case
/// alike.
const ROUNDS: usize = 300;
/// Runs of one case in a row.
const BATCH: u32 = 40;

/// Times each of `cases` for one batch per round, in turn: nanoseconds per run, per round.
fn alternate<const N: usize>(cases: [&dyn Fn(); N]) -> Vec<[f64; N]> {
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        for _ in 0..BATCH {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(BATCH)
    };
    (0..ROUNDS).map(|_| cases.map(time)).collect()
}

/// The median of each column of `rows`.
fn medians<const N: usize>(mut rows: Vec<[f64; N]>) -> [f64; N] {
    std::array::from_fn(|i| {
        rows.sort_by(|a, b| a[i].total_cmp(&b[i]));
        rows[rows.len() / 2][i]
    })
}

/// The three workloads in alternating batches: medians of each and of the per-round ratio
/// end-to-end / floor.
fn interleaved(pod: &[u8]) -> [f64; 4] {
    let policy = Policy::default();
    let ctx = Context {
        policy: &policy,
        mode: Mode::Native,
        namespace: Some("shop"),
    };
    let parsed: Value = serde_json::from_slice(pod).unwrap();
    let floor = || {
        let value: Value = serde_json::from_slice(black_box(pod)).unwrap();
        black_box(serde_json::to_vec(&value).unwrap());
    };
    let end_to_end = || {
        let value: Value = serde_json::from_slice(black_box(pod)).unwrap();
        let review = review::mutate(&value, &ctx);
        black_box(serde_json::to_vec(&review.ops).unwrap());
    };
    let mutate = || {
        black_box(review::mutate(black_box(&parsed), &ctx));
    };
    let rows = alternate([&floor, &end_to_end, &mutate]);
    medians(rows.into_iter().map(|[f, e, m]| [f, e, m, e / f]).collect())
}

/// The review as the Kubewarden policy reads it: `AdmissionRequest`'s own reader, objects whole.
#[derive(serde::Deserialize)]
struct WholeReview {
    request: AdmissionRequest,
}

/// Reading an AdmissionReview as the webhook does (`admission::parse`, objects without their
/// `managedFields`) against reading its objects whole, in alternating batches: medians of each
/// and of the per-round ratio. Both check the request and drop what they read.
fn review_reading(review: &[u8]) -> [f64; 3] {
    let trimmed = || {
        black_box(admission::parse(black_box(review)).unwrap());
    };
    let whole = || {
        let read: WholeReview = serde_json::from_slice(black_box(review)).unwrap();
        read.request.check().unwrap();
        black_box(read);
    };
    let rows = alternate([&trimmed, &whole]);
    medians(rows.into_iter().map(|[t, w]| [t, w, t / w]).collect())
}

fn median_ns(dir: &Path, bench: &str) -> f64 {
    let path = dir.join(GROUP).join(bench).join("new/estimates.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let estimates: Value = serde_json::from_str(&text).unwrap();
    estimates["median"]["point_estimate"].as_f64().unwrap()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pod = std::fs::read(root.join("tests/data/objects/pod-rails-worker.json")).unwrap();
    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion");
    let mut c = Criterion::default()
        .output_directory(&out)
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    benches(&mut c, &pod);
    c.final_summary();

    let floor = median_ns(&out, "parse+serialise");
    let end_to_end = median_ns(&out, "parse+mutate+serialise-patch");
    let mutate = median_ns(&out, "mutate");
    println!();
    println!("pod JSON: {} bytes", pod.len());
    println!(
        "median parse+serialise (floor):        {:>8.2} µs",
        floor / 1e3
    );
    println!(
        "median parse+mutate+serialise-patch:   {:>8.2} µs",
        end_to_end / 1e3
    );
    println!(
        "median mutate (pod already parsed):    {:>8.2} µs  (target < 20 µs)",
        mutate / 1e3
    );
    println!(
        "ratio end-to-end / floor:              {:>8.2}×    (target < 2×)",
        end_to_end / floor
    );
    let [floor, end_to_end, mutate, ratio] = interleaved(&pod);
    println!();
    println!("interleaved batches (300 rounds × 40 runs each, medians):");
    println!(
        "  parse+serialise (floor):             {:>8.2} µs",
        floor / 1e3
    );
    println!(
        "  parse+mutate+serialise-patch:        {:>8.2} µs",
        end_to_end / 1e3
    );
    println!(
        "  mutate (pod already parsed):         {:>8.2} µs  (target < 20 µs)",
        mutate / 1e3
    );
    println!(
        "  ratio end-to-end / floor, per round: {:>8.2}×    (target < 2×)",
        ratio
    );
    println!(
        "  ratio mutate / floor:                {:>8.2}×",
        mutate / floor
    );

    let review =
        std::fs::read(root.join("tests/data/admission/create-pod-rails-worker.json")).unwrap();
    // Compact, as the API server sends it.
    let review = serde_json::to_vec(&serde_json::from_slice::<Value>(&review).unwrap()).unwrap();
    let [trimmed, whole, ratio] = review_reading(&review);
    println!();
    println!(
        "reading the pod's AdmissionReview ({} bytes, with managedFields), interleaved medians:",
        review.len()
    );
    println!(
        "  admission::parse (without managedFields): {:>8.2} µs",
        trimmed / 1e3
    );
    println!(
        "  objects read whole:                      {:>8.2} µs",
        whole / 1e3
    );
    println!("  ratio, per round:                        {ratio:>8.2}×");
}
