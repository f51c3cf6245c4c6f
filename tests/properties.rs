//! Properties of the mutation over generated pods and workloads: it never panics, its patch
//! applies with an independent JSON Patch implementation (and identically with the core's own
//! applier), mutating the result changes nothing, and an injected pod keeps no job at risk.

mod common;

use common::apply_independently;
use proptest::prelude::*;
use serde_json::{Value, json};
use sidekiq_guard::review::{self, Outcome, Perspective};
use sidekiq_guard::{Code, Context, Mode, Policy, patch};

fn command() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!(["bundle", "exec", "sidekiq"]))),
        Just(Some(json!(["sidekiq", "-t", "40", "-c", "5"]))),
        Just(Some(json!([
            "sh",
            "-c",
            "bin/rails db:migrate && exec bundle exec sidekiq --timeout=90"
        ]))),
        Just(Some(json!(["bash", "-lc", "exec sidekiq -t '"]))),
        Just(Some(json!(["sidekiqswarm", "-C", "config/sidekiq.yml"]))),
        Just(Some(json!(["puma", "-C", "config/puma.rb"]))),
        Just(Some(json!(["sidekiq", "-t", "soon"]))),
        Just(Some(json!(42))),
    ]
}

fn prestop() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(
            json!({"preStop": {"exec": {"command": ["sh", "-c", "kill -TSTP 1; sleep 30"]}}})
        )),
        Just(Some(
            json!({"preStop": {"httpGet": {"path": "/drain", "port": 7434}}})
        )),
        Just(Some(
            json!({"preStop": {"httpGet": {"path": "/drain", "port": 9999}}})
        )),
        Just(Some(json!({"preStop": {"sleep": {"seconds": 10}}}))),
        Just(Some(json!({"postStart": {"exec": {"command": ["true"]}}}))),
        Just(Some(json!({"preStop": null}))),
        Just(Some(Value::Null)),
    ]
}

fn probe() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!({"exec": {"command": ["true"]}}))),
        Just(Some(json!({"httpGet": {"path": "/livez", "port": 7434}}))),
        Just(Some(json!({"httpGet": {"path": "/readyz", "port": 8000}}))),
        Just(Some(Value::Null)),
    ]
}

fn env() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(
            json!([{"name": "REDIS_URL", "value": "redis://r:6379/0"}])
        )),
        Just(Some(json!([
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "REDIS_URL", "value": "redis://:$(PASS)@r:6379/0"},
        ]))),
        Just(Some(
            json!([{"name": "REDIS_PROVIDER", "value": "REDIS_URL_2"}])
        )),
        Just(Some(
            json!([{"name": "REDIS_PROVIDER", "value": "redis://oops"}])
        )),
        // DYNO from variables, one shared with the Redis URL, one defined after it.
        Just(Some(json!([
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "DYNO", "value": "$(POD_NAME).$(ROLE)"},
            {"name": "ROLE", "value": "w"},
            {"name": "REDIS_URL", "value": "redis://$(POD_NAME)-redis:6379/0"},
        ]))),
        Just(Some(json!([
            {"name": "DYNO", "valueFrom": {"secretKeyRef": {"name": "s", "key": "dyno"}}},
            {"name": "DYNO", "value": "worker.1"},
        ]))),
    ]
}

fn ports() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        (7430u16..7440).prop_map(|p| Some(json!([{"containerPort": p}]))),
    ]
}

prop_compose! {
    fn container()(
        name in prop_oneof![Just("worker"), Just("sidekiq"), Just("web"), Just("sidekiq-guard-probe")],
        command in command(),
        lifecycle in prestop(),
        liveness in probe(),
        readiness in probe(),
        env in env(),
        ports in ports(),
    ) -> Value {
        let mut c = json!({"name": name, "image": "app"});
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                c[key] = value;
            }
        };
        set("command", command);
        set("lifecycle", lifecycle);
        set("livenessProbe", liveness);
        set("readinessProbe", readiness);
        set("env", env);
        set("ports", ports);
        c
    }
}

fn annotations() -> impl Strategy<Value = Option<Value>> {
    let value = prop_oneof![
        Just(json!("5m")),
        Just(json!("90")),
        Just(json!("soon")),
        Just(json!("worker")),
        Just(json!("7500")),
        Just(json!(3)),
    ];
    let key = prop_oneof![
        Just("sidekiq-guard.io/longest-job"),
        Just("sidekiq-guard.io/shutdown-timeout"),
        Just("sidekiq-guard.io/probe-port"),
        Just("sidekiq-guard.io/container"),
        Just("sidekiq-guard.io/status"),
        Just("example.com/other"),
    ];
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        proptest::collection::btree_map(key, value, 0..4).prop_map(|map| Some(Value::Object(
            map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        ))),
    ]
}

prop_compose! {
    fn template()(
        containers in proptest::collection::vec(container(), 1..4),
        init in proptest::option::of(proptest::collection::vec(container(), 0..2)),
        grace in prop_oneof![Just(None), Just(Some(Value::Null)), (0u64..2000).prop_map(|g| Some(json!(g)))],
        annotations in annotations(),
        metadata in any::<bool>(),
        opt_out in proptest::bool::weighted(0.1),
    ) -> Value {
        // Kubernetes requires container names to be unique across containers and initContainers.
        let mut seen = std::collections::HashSet::new();
        let mut unique = |list: Vec<Value>| -> Vec<Value> {
            list.into_iter().filter(|c| seen.insert(c["name"].to_string())).collect()
        };
        let containers = unique(containers);
        let init = init.map(&mut unique);
        let mut spec = json!({"containers": containers});
        if let Some(init) = init {
            spec["initContainers"] = json!(init);
        }
        if let Some(grace) = grace {
            spec["terminationGracePeriodSeconds"] = grace;
        }
        let mut template = json!({"spec": spec});
        if metadata {
            template["metadata"] = json!({});
            if let Some(annotations) = annotations {
                template["metadata"]["annotations"] = annotations;
            }
            if opt_out {
                template["metadata"]["labels"] = json!({"sidekiq-guard.io/inject": "false"});
            }
        }
        template
    }
}

fn object() -> impl Strategy<Value = Value> {
    (template(), 0usize..7).prop_map(|(template, kind)| match kind {
        0 => {
            let mut pod = template;
            pod["kind"] = json!("Pod");
            pod["apiVersion"] = json!("v1");
            pod
        }
        1 => json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": template}}),
        2 => json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
                    "spec": {"jobTemplate": {"spec": {"template": template}}}}),
        3 => json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {"template": template}}),
        4 => json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {"template": template}}),
        5 => json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"}, "spec": {"template": template}}),
        _ => json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": template}}),
    })
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Native), Just(Mode::Classic)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutation_applies_and_is_idempotent(object in object(), mode in mode()) {
        let policy = Policy::default();
        let ctx = Context { policy: &policy, mode, namespace: Some("ns") };
        let first = review::mutate(&object, &ctx);

        let mutated = apply_independently(&object, &first.ops)
            .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}\n{:#?}", first.ops)))?;
        let mut own = object.clone();
        patch::apply(&mut own, &first.ops).unwrap();
        prop_assert_eq!(&own, &mutated, "the core's applier must agree with json-patch");

        let second = review::mutate(&mutated, &ctx);
        prop_assert_eq!(&second.ops, &vec![], "mutate∘mutate ≠ mutate");
        prop_assert_eq!(&second.status, &first.status);

        if matches!(first.outcome, Outcome::Mutated | Outcome::Unchanged) {
            // What the injection guarantees holds on the mutated object itself.
            let after = review::validate(&mutated, &ctx, Perspective::AsWritten);
            for code in [Code::GraceTooShort, Code::PreStopMissing, Code::TimeoutNotBelowGrace,
                         Code::LivenessProbeMissing, Code::ReadinessProbeMissing] {
                prop_assert!(!after.findings.iter().any(|f| f.code == code), "{code} after injection");
            }
            // And the core's prediction of the result equals the result (paths aside: moving
            // the sidecar between lists may shift container indices).
            let described = |r: &review::Review| -> Vec<(Code, String)> {
                r.findings.iter().map(|f| (f.code, f.message.clone())).collect()
            };
            prop_assert_eq!(described(&after), described(&first));
        }
    }

    #[test]
    fn arbitrary_json_never_panics(object in arbitrary_json(), mode in mode()) {
        let policy = Policy::default();
        let ctx = Context { policy: &policy, mode, namespace: None };
        let review = review::mutate(&object, &ctx);
        let patched = apply_independently(&object, &review.ops);
        prop_assert!(patched.is_ok(), "{:?}", patched);
        // However odd the shape, a second pass finds nothing more to do.
        let again = review::mutate(&patched.unwrap(), &ctx);
        prop_assert!(again.ops.is_empty(), "{:?}", again.ops);
        // Mutation and validation judge from the same analysis: what one skips, so does the other.
        let validated = review::validate(&object, &ctx, Perspective::AsWritten);
        let skip = |outcome: &Outcome| match outcome {
            Outcome::Skipped(skip) => Some(skip.label()),
            _ => None,
        };
        prop_assert_eq!(skip(&validated.outcome), skip(&review.outcome));
    }
}

/// Loosely shaped objects: right keys, wrong types.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::from),
        Just(json!("sidekiq")),
    ];
    let keys = prop_oneof![
        Just("kind"),
        Just("spec"),
        Just("template"),
        Just("containers"),
        Just("command"),
        Just("metadata"),
        Just("annotations"),
        Just("lifecycle"),
        Just("name"),
        Just("env"),
        Just("initContainers"),
        Just("terminationGracePeriodSeconds"),
        Just("jobTemplate"),
    ];
    let value = leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    });
    (
        prop_oneof![Just("Pod"), Just("Deployment"), Just("CronJob")],
        value,
    )
        .prop_map(|(kind, value)| match value {
            Value::Object(mut map) => {
                map.insert("kind".into(), json!(kind));
                Value::Object(map)
            }
            other => other,
        })
}
