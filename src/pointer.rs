//! JSON pointers (RFC 6901) over `serde_json::Value`: reading, and escaping reference tokens.
//!
//! `serde_json::Value::pointer` unescapes every reference token into two fresh strings, and
//! the core reads a few dozen pointers on every admission (a sixth of a mutation's time went
//! there). Here a token allocates only when it carries an escape (`~0`, `~1`), which no
//! Kubernetes field name does; the answers are the same (a property test checks it). The
//! workspace's `clippy.toml` disallows the `serde_json` methods so that no caller goes back.

use std::borrow::Cow;

use serde_json::Value;

/// Reading a `Value` at a JSON pointer.
pub trait Pointer {
    /// The value at `pointer` (`""` is the whole value; otherwise `/`-separated escaped
    /// tokens, array indices in decimal without leading zeros), or `None` when there is none.
    fn at(&self, pointer: &str) -> Option<&Value>;

    /// [`Pointer::at`], mutable.
    fn at_mut(&mut self, pointer: &str) -> Option<&mut Value>;
}

impl Pointer for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        tokens(pointer)?.try_fold(self, |target, token| match target {
            Value::Object(map) => map.get(token.as_ref()),
            Value::Array(list) => list.get(index(&token)?),
            _ => None,
        })
    }

    fn at_mut(&mut self, pointer: &str) -> Option<&mut Value> {
        tokens(pointer)?.try_fold(self, |target, token| match target {
            Value::Object(map) => map.get_mut(token.as_ref()),
            Value::Array(list) => list.get_mut(index(&token)?),
            _ => None,
        })
    }
}

/// The unescaped reference tokens of `pointer`; `None` when it is neither empty nor starts
/// with `/`.
fn tokens(pointer: &str) -> Option<impl Iterator<Item = Cow<'_, str>>> {
    let rest = if pointer.is_empty() {
        None
    } else {
        Some(pointer.strip_prefix('/')?)
    };
    Some(
        rest.into_iter()
            .flat_map(|rest| rest.split('/').map(unescape)),
    )
}

/// An array index: decimal digits, no sign, no leading zero (RFC 6901).
fn index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// The pointer to `path` below `parent`: `path` is one or more reference tokens, escaped and
/// joined by `/` (`"lifecycle/preStop"`, `"-"`). `format!` costs several times as much for
/// the same string (its formatting machinery took a sixth of building a pod's patch).
pub fn below(parent: &str, path: &str) -> String {
    let mut pointer = String::with_capacity(parent.len() + 1 + path.len());
    pointer.push_str(parent);
    pointer.push('/');
    pointer.push_str(path);
    pointer
}

/// Escapes one reference token (`~` → `~0`, `/` → `~1`).
pub fn escape(token: &str) -> Cow<'_, str> {
    if token.contains(['~', '/']) {
        Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(token)
    }
}

/// Unescapes one reference token (`~1` → `/`, then `~0` → `~`, in that order so that `~01`
/// reads as `~1`).
pub fn unescape(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn doc() -> Value {
        json!({
            "metadata": {"annotations": {"sidekiq-guard.io/status": "x", "a~b": 1, "": 2}},
            "spec": {"containers": [{"name": "sidekiq"}, {"name": "probe"}]},
        })
    }

    #[test]
    fn below_extends_a_pointer_by_its_tokens() {
        assert_eq!(below("", "spec"), "/spec");
        assert_eq!(
            below("/spec/template/spec/containers/0", "lifecycle/preStop"),
            "/spec/template/spec/containers/0/lifecycle/preStop"
        );
        let doc = doc();
        assert_eq!(
            doc.at(&below("/spec/containers", "1/name")),
            Some(&json!("probe"))
        );
    }

    #[test]
    fn reads_objects_arrays_and_escaped_keys() {
        let doc = doc();
        assert_eq!(doc.at(""), Some(&doc));
        assert_eq!(doc.at("/spec/containers/1/name"), Some(&json!("probe")));
        assert_eq!(
            doc.at("/metadata/annotations/sidekiq-guard.io~1status"),
            Some(&json!("x"))
        );
        assert_eq!(doc.at("/metadata/annotations/a~0b"), Some(&json!(1)));
        assert_eq!(doc.at("/metadata/annotations/"), Some(&json!(2)));
    }

    #[test]
    fn refuses_what_rfc_6901_refuses() {
        let doc = doc();
        for pointer in [
            "spec",
            "/spec/containers/01",
            "/spec/containers/+1",
            "/spec/containers/-",
            "/spec/containers/2",
            "/spec/containers/0/name/x",
            "/nope",
        ] {
            assert_eq!(doc.at(pointer), None, "{pointer}");
        }
    }

    #[test]
    fn writes_through_at_mut() {
        let mut doc = doc();
        *doc.at_mut("/spec/containers/0/name").unwrap() = json!("worker");
        assert_eq!(doc["spec"]["containers"][0]["name"], "worker");
        assert!(doc.at_mut("/spec/containers/9").is_none());
    }

    #[test]
    fn escape_and_unescape_are_inverse() {
        assert_eq!(
            escape("sidekiq-guard.io/status"),
            "sidekiq-guard.io~1status"
        );
        assert_eq!(escape("~/"), "~0~1");
        assert!(matches!(escape("plain"), Cow::Borrowed("plain")));
        assert_eq!(unescape("~01"), "~1");
        assert_eq!(unescape(&escape("a/~1b~")), "a/~1b~");
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![Just(Value::Null), any::<u8>().prop_map(Value::from)];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a~/0-2]{0,2}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The same answers as `serde_json::Value::pointer`, on pointers made of the tokens
        /// that matter: escapes, indices with and without leading zeros, empty tokens.
        #[test]
        #[allow(clippy::disallowed_methods)]
        fn agrees_with_serde_json(doc in value(), pointer in "a?(/(~[01]|[a0-2+~]){0,3}){0,4}") {
            prop_assert_eq!(doc.at(&pointer), doc.pointer(&pointer));
            let mut copy = doc.clone();
            let expected = copy.clone();
            prop_assert_eq!(copy.at_mut(&pointer).map(|v| v.clone()), expected.pointer(&pointer).cloned());
        }
    }
}
