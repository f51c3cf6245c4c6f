//! Pods whose reading once grew with the square of their size: a container command of 45,000
//! `{ ` (90 KB; the API server accepts objects of 1.5 MB) took 12 s to review, and with the
//! API server's default webhook timeout of 10 s the pod's admission failed. Each pod here is
//! reviewed in a thread given far more time than a linear reading needs (a second or two in a
//! debug build) and far less than a quadratic one took (minutes to hours). Searches done with
//! `memchr` are fast enough that only a few megabytes tell them apart.

use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use sidekiq_guard::{Context, Mode, Policy, review};

const DEADLINE: Duration = Duration::from_secs(30);

fn pod(command: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker", "namespace": "shop"},
        "spec": {"containers": [{
            "name": "worker",
            "image": "registry.example.com/shop/app:1",
            "command": command,
            "env": [{"name": "REDIS_URL", "value": "redis://redis:6379"}],
        }]},
    })
}

/// Mutates and validates `pod` in a thread; fails when that takes longer than [`DEADLINE`].
fn reviewed_in_time(what: &str, pod: Value) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let policy = Policy::default();
        let ctx = Context {
            policy: &policy,
            mode: Mode::Native,
            namespace: Some("shop"),
        };
        let mutated = review::mutate(&pod, &ctx);
        let validated = review::validate(&pod, &ctx, review::Perspective::AsWritten);
        let _ = done.send((mutated.outcome, validated.findings.len()));
    });
    assert!(
        finished.recv_timeout(DEADLINE).is_ok(),
        "reviewing a pod with {what} took over {DEADLINE:?}"
    );
}

fn script(script: String) -> Value {
    pod(json!(["sh", "-c", script]))
}

#[test]
fn nested_groups() {
    // Every command asked each open group whether it was guarded, and each `{` searched the
    // rest of the script for a `}` (a `{fd}>` redirection).
    reviewed_in_time(
        "200,000 nested `{`",
        script(format!("{}exec sidekiq", "{ ".repeat(200_000))),
    );
    reviewed_in_time(
        "200,000 `<(`",
        script(format!("{}exec sidekiq", "<(".repeat(200_000))),
    );
}

#[test]
fn parameter_expansions_without_an_end() {
    // Each `${` searched the rest of the script for its `}`, and the word read so far for an
    // `=` (whether it is an assignment).
    reviewed_in_time(
        "1,500,000 `${`",
        script(format!("{}; exec sidekiq", "${".repeat(1_500_000))),
    );
}

#[test]
fn a_long_function_called_often() {
    // Each call added up the body's size again, also once the copy budget was spent.
    let body = "a ".repeat(400_000);
    reviewed_in_time(
        "a body of 400,000 words called 10,000 times",
        script(format!(
            "f(){{ {body}; }}\n{}\nexec sidekiq",
            "f;".repeat(10_000)
        )),
    );
}

#[test]
fn kubernetes_references_without_an_end() {
    // Each `$(` of a command line searched the rest of it for its `)`.
    reviewed_in_time(
        "1,500,000 `$(` in the arguments",
        pod(json!(["sidekiq", "-t", "$(".repeat(1_500_000)])),
    );
}

#[test]
fn many_references_to_a_long_variable() {
    // Each `$A` copied A's whole value before finding it too long to expand.
    let mut pod = script(format!("{}\nexec sidekiq", "$A ".repeat(400_000)));
    pod["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "A", "value": "x".repeat(4_000_000)}));
    reviewed_in_time("400,000 `$A` of a 4 MB A", pod);
}

#[test]
fn many_defaults_among_many_variables() {
    // Each `${X:-1}` looked for X in the whole `env` list.
    let mut pod = script(format!("{}\nexec sidekiq", "${X:-1} ".repeat(200_000)));
    let env = pod["spec"]["containers"][0]["env"].as_array_mut().unwrap();
    env.extend((0..100_000).map(|i| json!({"name": format!("E{i}"), "value": "1"})));
    reviewed_in_time("200,000 `${X:-1}` and 100,000 variables", pod);
}

#[test]
fn many_references_among_many_variables_in_sidekiqs_arguments() {
    // Each `$(A)` of an argument was looked for in the whole `env` list.
    let mut pod = pod(json!(["sidekiq", "-t", "$(A)".repeat(200_000)]));
    let env = pod["spec"]["containers"][0]["env"].as_array_mut().unwrap();
    env.extend((0..100_000).map(|i| json!({"name": format!("E{i}"), "value": "1"})));
    env.push(json!({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}));
    reviewed_in_time("200,000 `$(A)` and 100,000 variables", pod);
}

#[test]
fn a_function_with_a_long_name() {
    // Its name was copied and hashed for each command of its body.
    let name = "f".repeat(600_000);
    reviewed_in_time(
        "a 600,000-character function name over 300,000 commands",
        script(format!(
            "{name}(){{ {} }}\nexec sidekiq",
            "a;".repeat(300_000)
        )),
    );
}

/// `env` of `count` variables `V0`…, each value referencing the one before it twice, and
/// `last` (REDIS_URL, DYNO) referencing the last: a chain the sidecar copies whole.
fn chained_env(count: usize, last: &str) -> Value {
    let mut env: Vec<Value> = (0..count)
        .map(|i| {
            let value = match i {
                0 => "x".to_owned(),
                _ => format!("$(V{})$(V{})", i - 1, i - 1),
            };
            json!({"name": format!("V{i}"), "value": value})
        })
        .collect();
    env.push(json!({"name": last, "value": format!("redis://$(V{})", count - 1)}));
    Value::Array(env)
}

#[test]
fn a_redis_url_at_the_end_of_a_long_chain_of_references() {
    // Each reference looked for its variable, and whether it was copied already, in lists
    // as long as `env`: 20,000 entries (1 MB) took 20 s in a release build.
    let mut pod = pod(json!(["bundle", "exec", "sidekiq"]));
    pod["spec"]["containers"][0]["env"] = chained_env(50_000, "REDIS_URL");
    reviewed_in_time("a REDIS_URL closing over 50,000 variables", pod);
}

#[test]
fn a_redis_url_referencing_many_variables_each_defined_after_it() {
    // Whether each reference was defined before or after it scanned the whole list.
    let mut pod = pod(json!(["bundle", "exec", "sidekiq"]));
    let names: Vec<String> = (0..100_000).map(|i| format!("V{i}")).collect();
    let url: String = names.iter().map(|n| format!("$({n})")).collect();
    let mut env = vec![json!({"name": "REDIS_URL", "value": url})];
    env.extend(names.iter().map(|n| json!({"name": n, "value": "1"})));
    pod["spec"]["containers"][0]["env"] = Value::Array(env);
    reviewed_in_time("a REDIS_URL referencing 100,000 later variables", pod);
}

#[test]
fn a_dyno_referencing_many_variables_defined_before_it() {
    // The definition each reference expands to was looked for among every entry before it.
    let mut pod = pod(json!(["bundle", "exec", "sidekiq"]));
    let names: Vec<String> = (0..100_000).map(|i| format!("V{i}")).collect();
    let mut env: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "value": "1"}))
        .collect();
    let dyno: String = names.iter().map(|n| format!("$({n})")).collect();
    env.push(json!({"name": "DYNO", "value": dyno}));
    env.push(json!({"name": "REDIS_URL", "value": "redis://redis:6379"}));
    pod["spec"]["containers"][0]["env"] = Value::Array(env);
    reviewed_in_time("a DYNO referencing 100,000 earlier variables", pod);
}
