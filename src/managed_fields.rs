//! Objects read without `metadata.managedFields`.
//!
//! The API server records there which manager set each field, and it does so before mutating
//! admission, so every CREATE review carries them: for the Rails worker pod of a ReplicaSet in
//! the test corpus, the controller's entry is 1.3 KB of a 4.1 KB review. sidekiq-guard never
//! reads them, and its JSON patches never touch them, so the webhook does not build them at all:
//! reading that review takes about three quarters as long (`cargo bench -p sidekiq-guard --bench
//! mutate`). Only their JSON syntax is checked: a number out of range or a lone surrogate in
//! them does not make the review malformed, as it would elsewhere in the object.
//!
//! Only where the object itself is not returned: the Kubewarden policy answers with the whole
//! mutated object, which must keep them, so it reads objects whole.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Reads an optional object (`null` or absent: `None`) without its `metadata.managedFields`.
pub(crate) fn read_without<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Option::<Trimmed>::deserialize(deserializer).map(|object| object.map(|Trimmed(value)| value))
}

/// An object without its `metadata.managedFields`.
struct Trimmed(Value);

impl<'de> Deserialize<'de> for Trimmed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Level::Object.deserialize(deserializer).map(Trimmed)
    }
}

/// Where the value being read sits.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    /// The object.
    Object,
    /// Its `metadata`.
    Metadata,
}

impl<'de> DeserializeSeed<'de> for Level {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Builds the same `Value` as `serde_json` would, but for the skipped field. An object that is
/// not a JSON object (refused later, with its type) is read as it is.
impl<'de> Visitor<'de> for Level {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match (self, key.as_str()) {
                (Level::Object, "metadata") => map.next_value_seed(Level::Metadata)?,
                (Level::Metadata, "managedFields") => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                _ => map.next_value::<Value>()?,
            };
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::arbitrary::json_value;

    fn read(text: &str) -> Result<Option<Value>, serde_json::Error> {
        read_without(&mut serde_json::Deserializer::from_str(text))
    }

    fn without(mut object: Value) -> Value {
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        object
    }

    #[test]
    fn only_the_objects_managed_fields_are_left_out() {
        let object = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": "worker-",
                "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {}}}],
                "annotations": {"managedFields": "an annotation of that name stays"},
            },
            "spec": {"managedFields": "a field elsewhere stays", "containers": [{"name": "w"}]},
            "n": [1, -2, 2.5, true, null, "s"],
        });
        let read = read(&object.to_string()).unwrap().unwrap();
        assert_eq!(read, without(object.clone()));
        assert!(read["metadata"].get("managedFields").is_none());
        assert_eq!(
            read["spec"]["managedFields"],
            object["spec"]["managedFields"]
        );
    }

    #[test]
    fn null_is_no_object_and_other_types_are_kept_for_their_error() {
        assert_eq!(read("null").unwrap(), None);
        assert_eq!(read("[1]").unwrap(), Some(json!([1])));
        assert_eq!(read("\"pod\"").unwrap(), Some(json!("pod")));
        assert_eq!(
            read(r#"{"metadata": "text"}"#).unwrap(),
            Some(json!({"metadata": "text"}))
        );
    }

    #[test]
    fn skipped_fields_must_still_be_json_syntax() {
        let err = read(r#"{"metadata": {"managedFields": [1,, 2]}}"#).unwrap_err();
        assert!(err.is_syntax(), "{err}");
    }

    /// The webhook reads bodies of up to 8 MiB: skipping must not recurse into what it skips,
    /// or a deep enough nesting would overflow the stack, which no panic handler catches.
    #[test]
    fn deeply_nested_managed_fields_are_skipped_without_recursion() {
        let depth = 1_000_000;
        let text = format!(
            r#"{{"metadata": {{"managedFields": {}{}}}, "kind": "Pod"}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let read = read(&text).unwrap().unwrap();
        assert_eq!(read, json!({"metadata": {}, "kind": "Pod"}));
    }

    proptest! {
        /// Whatever the JSON, the value read is serde_json's own, less the one field.
        #[test]
        fn reads_as_serde_json_less_the_managed_fields(value in json_value(prop_oneof![
            Just("metadata".to_owned()),
            Just("managedFields".to_owned()),
            "[a-z]{1,6}",
        ])) {
            let text = value.to_string();
            let whole: Value = serde_json::from_str(&text).unwrap();
            let expected = (!whole.is_null()).then(|| without(whole));
            prop_assert_eq!(read(&text).unwrap(), expected);
        }
    }
}
