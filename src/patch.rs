//! RFC 6902 JSON Patch operations, built against the raw JSON object and applied to it.
//!
//! Operations target the object exactly as received: nothing goes through typed Kubernetes
//! structs, so fields this version does not know survive untouched.

use std::fmt;

use crate::json_text;
use crate::pointer::{Pointer as _, unescape};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One JSON Patch operation. Only the three this project emits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    /// Adds a member or appends (`/-`) to an array; replaces an existing member.
    Add {
        /// JSON pointer.
        path: String,
        /// New value.
        value: Value,
    },
    /// Replaces an existing value.
    Replace {
        /// JSON pointer.
        path: String,
        /// New value.
        value: Value,
    },
    /// Removes an existing value.
    Remove {
        /// JSON pointer.
        path: String,
    },
}

impl PatchOp {
    /// The operation's name in the patch (`op`).
    pub fn name(&self) -> &'static str {
        match self {
            PatchOp::Add { .. } => "add",
            PatchOp::Replace { .. } => "replace",
            PatchOp::Remove { .. } => "remove",
        }
    }

    /// The operation's target.
    pub fn path(&self) -> &str {
        match self {
            PatchOp::Add { path, .. }
            | PatchOp::Replace { path, .. }
            | PatchOp::Remove { path } => path,
        }
    }
}

/// Writes `ops` as the JSON array the API server reads: the text `serde_json` would write for
/// them (`op`, `path`, then `value`), without its serializer's cost per string (see
/// [`json_text`]).
pub fn write_json(out: &mut String, ops: &[PatchOp]) {
    // Writing into a String cannot fail.
    let _ = write_ops(out, ops);
}

fn write_ops(out: &mut String, ops: &[PatchOp]) -> fmt::Result {
    out.push('[');
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"op\":\"");
        out.push_str(op.name());
        out.push_str("\",\"path\":");
        json_text::write_str(out, op.path())?;
        if let PatchOp::Add { value, .. } | PatchOp::Replace { value, .. } = op {
            out.push_str(",\"value\":");
            json_text::write_value(out, value)?;
        }
        out.push('}');
    }
    out.push(']');
    Ok(())
}

/// A patch that does not apply to the object it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot apply {op} at {path}: {reason}")]
pub struct ApplyError {
    /// `add`, `replace` or `remove`.
    pub op: &'static str,
    /// The operation's pointer.
    pub path: String,
    /// Why.
    pub reason: &'static str,
}

/// Applies `ops` in order to `target`. On error `target` may be partly patched.
pub fn apply(target: &mut Value, ops: &[PatchOp]) -> Result<(), ApplyError> {
    for op in ops {
        apply_one(target, op)?;
    }
    Ok(())
}

fn apply_one(target: &mut Value, op: &PatchOp) -> Result<(), ApplyError> {
    let path = op.path();
    let fail = |reason| ApplyError {
        op: op.name(),
        path: path.to_owned(),
        reason,
    };
    let (parent_path, last) = path
        .rsplit_once('/')
        .ok_or_else(|| fail("not a JSON pointer"))?;
    let last = unescape(last).into_owned();
    let parent = target
        .at_mut(parent_path)
        .ok_or_else(|| fail("the parent does not exist"))?;
    match (parent, op) {
        (Value::Object(map), PatchOp::Add { value, .. }) => {
            map.insert(last, value.clone());
        }
        (Value::Object(map), PatchOp::Replace { value, .. }) => {
            let slot = map
                .get_mut(&last)
                .ok_or_else(|| fail("the member does not exist"))?;
            *slot = value.clone();
        }
        // `retain`, not `remove`: where serde_json keeps insertion order (the plugin's
        // `inject` prints your manifest back), `remove` moves the last member into the
        // removed one's place — and the core removes `initContainers` or `containers` whole
        // when it moves a sidecar that was alone there. (`shift_remove` exists only with that
        // feature, which the core does not ask for.)
        (Value::Object(map), PatchOp::Remove { .. }) => {
            if !map.contains_key(&last) {
                return Err(fail("the member does not exist"));
            }
            map.retain(|key, _| *key != last);
        }
        (Value::Array(items), PatchOp::Add { value, .. }) => {
            let index = if last == "-" {
                items.len()
            } else {
                index(&last, items.len() + 1).map_err(fail)?
            };
            items.insert(index, value.clone());
        }
        (Value::Array(items), PatchOp::Replace { value, .. }) => {
            let index = index(&last, items.len()).map_err(fail)?;
            items[index] = value.clone();
        }
        (Value::Array(items), PatchOp::Remove { .. }) => {
            let index = index(&last, items.len()).map_err(fail)?;
            items.remove(index);
        }
        _ => return Err(fail("the parent is neither an object nor an array")),
    }
    Ok(())
}

/// An array index as RFC 6901 writes it: digits, no leading zero (Rust's parser alone would
/// also take `+1`), below `bound`.
fn index(token: &str, bound: usize) -> Result<usize, &'static str> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return Err("not an array index (digits without a leading zero)");
    }
    token
        .parse()
        .ok()
        .filter(|i| *i < bound)
        .ok_or("index out of bounds")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialises_as_rfc_6902() {
        let ops = vec![
            PatchOp::Add {
                path: "/a/-".into(),
                value: json!(1),
            },
            PatchOp::Replace {
                path: "/b".into(),
                value: json!("x"),
            },
            PatchOp::Remove {
                path: "/c/0".into(),
            },
        ];
        assert_eq!(
            serde_json::to_value(&ops).unwrap(),
            json!([
                {"op": "add", "path": "/a/-", "value": 1},
                {"op": "replace", "path": "/b", "value": "x"},
                {"op": "remove", "path": "/c/0"},
            ])
        );
        let mut written = String::new();
        write_json(&mut written, &ops);
        assert_eq!(written, serde_json::to_string(&ops).unwrap());
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let mut written = String::new();
        write_json(&mut written, &[]);
        assert_eq!(written, "[]");
        let ops = vec![
            PatchOp::Add {
                path: "/metadata/annotations/sidekiq-guard.io~1status".into(),
                value: json!("{\"grace\":350}"),
            },
            PatchOp::Replace {
                path: "/spec/x\"y".into(),
                value: json!({"b": [null, true, -1, 0.5], "a": {}}),
            },
        ];
        written.clear();
        write_json(&mut written, &ops);
        assert_eq!(written, serde_json::to_string(&ops).unwrap());
    }

    #[test]
    fn applies_adds_replaces_and_removes() {
        let mut doc = json!({"a": [1], "b": "y", "c": [1, 2], "m": {}});
        apply(
            &mut doc,
            &[
                PatchOp::Add {
                    path: "/a/-".into(),
                    value: json!(2),
                },
                PatchOp::Add {
                    path: "/a/0".into(),
                    value: json!(0),
                },
                PatchOp::Replace {
                    path: "/b".into(),
                    value: json!("x"),
                },
                PatchOp::Remove {
                    path: "/c/0".into(),
                },
                PatchOp::Add {
                    path: format!("/m/{}", crate::pointer::escape("sidekiq-guard.io/status")),
                    value: json!("{}"),
                },
            ],
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"a": [0, 1, 2], "b": "x", "c": [2], "m": {"sidekiq-guard.io/status": "{}"}})
        );
    }

    #[test]
    fn refuses_what_rfc_6902_refuses() {
        let mut doc = json!({"a": [1], "b": 1});
        let err = |op: PatchOp| apply(&mut doc.clone(), &[op]).unwrap_err().to_string();
        assert_eq!(
            err(PatchOp::Replace {
                path: "/x".into(),
                value: json!(1)
            }),
            "cannot apply replace at /x: the member does not exist"
        );
        assert_eq!(
            err(PatchOp::Add {
                path: "/a/5".into(),
                value: json!(1)
            }),
            "cannot apply add at /a/5: index out of bounds"
        );
        assert_eq!(
            err(PatchOp::Add {
                path: "/x/y".into(),
                value: json!(1)
            }),
            "cannot apply add at /x/y: the parent does not exist"
        );
        assert_eq!(
            err(PatchOp::Add {
                path: "/b/y".into(),
                value: json!(1)
            }),
            "cannot apply add at /b/y: the parent is neither an object nor an array"
        );
        assert_eq!(
            err(PatchOp::Remove {
                path: "/a/01".into()
            }),
            "cannot apply remove at /a/01: not an array index (digits without a leading zero)"
        );
        assert_eq!(
            err(PatchOp::Replace {
                path: "/a/+0".into(),
                value: json!(2)
            }),
            "cannot apply replace at /a/+0: not an array index (digits without a leading zero)"
        );
        apply(&mut doc, &[]).unwrap();
    }
}
