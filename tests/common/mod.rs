//! Helpers shared by the core's integration tests.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use sidekiq_guard::{Context, Mode, PatchOp, Policy};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// Loads a YAML or JSON fixture (relative to the repository root) as raw JSON.
pub fn load(relative: &str) -> Value {
    let text = std::fs::read_to_string(root().join(relative)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// A context with the given policy and sidecar mode.
pub fn ctx(policy: &Policy, mode: Mode) -> Context<'_> {
    Context {
        policy,
        mode,
        namespace: None,
    }
}

/// Applies `ops` with the `json-patch` crate, an implementation independent of the core's.
pub fn apply_independently(object: &Value, ops: &[PatchOp]) -> Result<Value, String> {
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::to_value(ops).unwrap()).map_err(|e| e.to_string())?;
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).map_err(|e| e.to_string())?;
    Ok(patched)
}

/// Compares `actual` with the JSON golden file at `relative`; `SG_UPDATE_GOLDEN=1` rewrites it
/// (then review the diff before committing).
pub fn golden_json(relative: &str, actual: &Value) {
    let path = root().join(relative);
    if std::env::var_os("SG_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(actual).unwrap() + "\n").unwrap();
    }
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!("missing golden file {relative}; run with SG_UPDATE_GOLDEN=1")
        }))
        .unwrap();
    assert_eq!(actual, &expected, "differs from {relative}");
}
