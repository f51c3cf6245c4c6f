//! `metadata.yml` (what `kwctl annotate` embeds) and `artifacthub-pkg.yml` agree with the code and
//! with each other: a release that bumps one and not the other ships a policy that lies about
//! itself.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use sidekiq_guard::workload::Kind;

fn yaml(relative: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{relative}: {err}"))
}

/// The kind the core sees for a rule's resource.
fn kind_of(group: &str, resource: &str) -> Option<Kind> {
    let name = match (group, resource) {
        ("", "pods") => "Pod",
        ("", "replicationcontrollers") => "ReplicationController",
        ("apps", "deployments") => "Deployment",
        ("apps", "statefulsets") => "StatefulSet",
        ("apps", "daemonsets") => "DaemonSet",
        ("apps", "replicasets") => "ReplicaSet",
        ("batch", "jobs") => "Job",
        ("batch", "cronjobs") => "CronJob",
        _ => return None,
    };
    Kind::from_name(name)
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn metadata_declares_a_mutating_wapc_policy_of_this_version() {
    let metadata = yaml("metadata.yml");
    assert_eq!(metadata["mutating"], true);
    assert_eq!(metadata["executionMode"], "kubewarden-wapc");
    // Reads nothing from the cluster (the current field; `contextAware` is the old one).
    assert_eq!(metadata["contextAwareResources"], serde_json::json!([]));
    // `kwctl scaffold artifacthub` reads the author as `Name <email>`.
    let author = metadata["annotations"]["io.kubewarden.policy.author"]
        .as_str()
        .unwrap();
    let (name, email) = author.split_once(" <").unwrap();
    assert!(
        !name.is_empty() && email.ends_with('>') && email.contains('@'),
        "{author}"
    );
    let annotations = &metadata["annotations"];
    assert_eq!(
        annotations["io.kubewarden.policy.version"],
        env!("CARGO_PKG_VERSION")
    );
    for key in [
        "io.kubewarden.policy.title",
        "io.kubewarden.policy.description",
        "io.kubewarden.policy.author",
        "io.kubewarden.policy.url",
        "io.kubewarden.policy.source",
        "io.kubewarden.policy.license",
        "io.kubewarden.policy.ociUrl",
        "io.artifacthub.displayName",
        "io.artifacthub.resources",
    ] {
        assert!(
            annotations[key]
                .as_str()
                .is_some_and(|v| !v.trim().is_empty()),
            "{key} is missing"
        );
    }
}

#[test]
fn every_rule_selects_a_kind_the_core_reviews() {
    let metadata = yaml("metadata.yml");
    let mut kinds = Vec::new();
    for rule in metadata["rules"].as_array().unwrap() {
        for group in strings(&rule["apiGroups"]) {
            assert_eq!(strings(&rule["apiVersions"]), ["v1"], "{rule}");
            for resource in strings(&rule["resources"]) {
                let kind = kind_of(group, resource)
                    .unwrap_or_else(|| panic!("{group}/{resource} has no pod template"));
                let operations = strings(&rule["operations"]);
                if kind == Kind::Pod {
                    // Updating a pod created before injection must not be re-validated into a
                    // denial under `enforcement: deny`; the webhook does not see it either.
                    assert_eq!(operations, ["CREATE"], "pods");
                } else {
                    assert_eq!(operations, ["CREATE", "UPDATE"], "{resource}");
                }
                kinds.push(kind.name());
            }
        }
    }
    let declared = metadata["annotations"]["io.artifacthub.resources"]
        .as_str()
        .unwrap();
    assert_eq!(kinds.join(", "), declared);
}

#[test]
fn artifacthub_package_matches_the_metadata() {
    let metadata = yaml("metadata.yml");
    let package = yaml("artifacthub-pkg.yml");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(package["version"], version);
    assert_eq!(
        package["name"],
        metadata["annotations"]["io.kubewarden.policy.title"]
    );
    assert_eq!(
        package["containersImages"][0]["image"],
        format!(
            "{}:v{version}",
            metadata["annotations"]["io.kubewarden.policy.ociUrl"]
                .as_str()
                .unwrap()
        )
    );
    assert_eq!(
        package["description"],
        metadata["annotations"]["io.kubewarden.policy.description"]
    );
    let keywords = metadata["annotations"]["io.artifacthub.keywords"]
        .as_str()
        .unwrap();
    assert_eq!(strings(&package["keywords"]).join(", "), keywords);
    let annotations = &package["annotations"];
    assert_eq!(annotations["kubewarden/mutation"], "true");
    assert_eq!(
        annotations["kubewarden/resources"],
        metadata["annotations"]["io.artifacthub.resources"]
    );
    let rules: Value =
        serde_saphyr::from_str(annotations["kubewarden/rules"].as_str().unwrap()).unwrap();
    assert_eq!(rules, metadata["rules"]);
}

/// The rules without their scope, as `(apiGroups, resources, operations)` triples.
fn rule_set(rules: &Value) -> Vec<(Vec<&str>, Vec<&str>, Vec<&str>)> {
    rules
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            (
                strings(&rule["apiGroups"]),
                strings(&rule["resources"]),
                strings(&rule["operations"]),
            )
        })
        .collect()
}

#[test]
fn rules_are_the_validating_webhooks() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base/webhooks.yaml");
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validating = documents
        .iter()
        .find(|doc| doc["kind"] == "ValidatingWebhookConfiguration")
        .unwrap();
    let metadata = yaml("metadata.yml");
    for webhook in validating["webhooks"].as_array().unwrap() {
        assert_eq!(
            rule_set(&webhook["rules"]),
            rule_set(&metadata["rules"]),
            "{}",
            webhook["name"]
        );
    }
}
