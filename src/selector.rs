//! Label selectors as `kubectl -l` writes them (`app=worker,tier!=web`, `env in (prod,staging)`,
//! `!canary`), for the plugin's commands on files, where there is no API server to apply them.
//!
//! The grammar is Kubernetes' own (`k8s.io/apimachinery/pkg/labels`): requirements joined by
//! commas, every one of which must hold; keys and values are checked as the API server checks
//! label keys and values, so a selector accepted here means the same in the cluster.
//!
//! The same requirements come as objects too (`metav1.LabelSelector`: `matchLabels` and
//! `matchExpressions`, as webhook configurations hold them): [`Selector::from_object`] reads
//! them as the API server stored them, so their shape is checked but not their keys and values.

use serde_json::{Map, Value};

use crate::names;
use crate::pointer::Pointer as _;

/// A parsed label selector; the empty selector selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operator {
    Exists,
    DoesNotExist,
    In(Vec<String>),
    NotIn(Vec<String>),
    GreaterThan(i64),
    LessThan(i64),
}

/// A selector that does not parse: the whole selector, and what is wrong in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {problem}")]
pub struct SelectorError {
    /// The selector as given.
    pub selector: String,
    /// What is wrong, and what is accepted.
    pub problem: String,
}

impl Selector {
    /// Parses `text`: `key`, `!key`, `key=value`, `key==value`, `key!=value`,
    /// `key in (v1,v2)`, `key notin (v1,v2)`, `key>N`, `key<N`, joined by commas.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let error = |problem: String| SelectorError {
            selector: text.to_owned(),
            problem,
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let requirements = split_requirements(text)
            .map_err(error)?
            .into_iter()
            .map(|part| requirement(part.trim()).map_err(error))
            .collect::<Result<_, _>>()?;
        Ok(Self { requirements })
    }

    /// Reads a `metav1.LabelSelector` object (`matchLabels`, `matchExpressions` with `In`,
    /// `NotIn`, `Exists`, `DoesNotExist`) as an admission webhook's `namespaceSelector` or
    /// `objectSelector`: `None`, `null` or `{}` selects everything there. (Not every API reads
    /// a missing selector so: a PodDisruptionBudget's `null` selects nothing.)
    pub fn from_object(selector: Option<&Value>) -> Result<Self, SelectorError> {
        let error = |problem: String| SelectorError {
            selector: selector.map_or_else(String::new, Value::to_string),
            problem,
        };
        let mut requirements = Vec::new();
        let Some(selector) = selector.filter(|s| !s.is_null()) else {
            return Ok(Self::default());
        };
        let labels = match selector.get("matchLabels") {
            None | Some(Value::Null) => None,
            Some(Value::Object(labels)) => Some(labels),
            Some(_) => return Err(error("matchLabels must be a mapping of labels".to_owned())),
        };
        for (key, value) in labels.into_iter().flatten() {
            let value = value
                .as_str()
                .ok_or_else(|| error(format!("matchLabels.{key} must be a string")))?;
            requirements.push(Requirement {
                key: key.clone(),
                operator: Operator::In(vec![value.to_owned()]),
            });
        }
        let expressions = match selector.get("matchExpressions") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(list)) => list,
            Some(_) => return Err(error("matchExpressions must be a list".to_owned())),
        };
        for expression in expressions {
            requirements.push(expression_requirement(expression).map_err(error)?);
        }
        Ok(Self { requirements })
    }

    /// Whether an object with `labels` (its `metadata.labels`, `None` when it has none) is
    /// selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|requirement| {
            let value = labels
                .and_then(|labels| labels.get(&requirement.key))
                .and_then(Value::as_str);
            requirement.operator.holds(value)
        })
    }

    /// Whether every object this selects carries the label `key` with a value `allowed` says
    /// yes to: one of its requirements is `key in (…)` (or `key=…`, `matchLabels`) with only
    /// allowed values.
    pub fn requires(&self, key: &str, allowed: impl Fn(&str) -> bool) -> bool {
        self.requirements.iter().any(|requirement| {
            requirement.key == key
                && matches!(&requirement.operator, Operator::In(values)
                    if !values.is_empty() && values.iter().all(|value| allowed(value)))
        })
    }

    /// Whether `object` (any Kubernetes object) is selected by its own `metadata.labels`, as
    /// kubectl selects objects read from files.
    pub fn selects(&self, object: &Value) -> bool {
        self.matches(object.at("/metadata/labels").and_then(Value::as_object))
    }
}

impl Operator {
    fn holds(&self, value: Option<&str>) -> bool {
        let number = || value.and_then(|v| v.parse::<i64>().ok());
        match self {
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::In(values) => value.is_some_and(|v| values.iter().any(|w| w == v)),
            // As in Kubernetes, an object without the label is selected by `notin` and `!=`.
            Operator::NotIn(values) => value.is_none_or(|v| values.iter().all(|w| w != v)),
            Operator::GreaterThan(limit) => number().is_some_and(|n| n > *limit),
            Operator::LessThan(limit) => number().is_some_and(|n| n < *limit),
        }
    }
}

/// One of `matchExpressions`: `{key, operator, values}`.
fn expression_requirement(expression: &Value) -> Result<Requirement, String> {
    let key = expression
        .get("key")
        .and_then(Value::as_str)
        .ok_or("a matchExpression has no key")?;
    let values = || -> Result<Vec<String>, String> {
        let values: Option<Vec<String>> = expression
            .get("values")
            .and_then(Value::as_array)
            .and_then(|list| list.iter().map(|v| v.as_str().map(str::to_owned)).collect());
        match values {
            Some(values) if !values.is_empty() => Ok(values),
            _ => Err(format!(
                "the matchExpression on {key} needs a list of string values"
            )),
        }
    };
    let no_values = |operator: Operator| match expression.get("values").and_then(Value::as_array) {
        Some(values) if !values.is_empty() => Err(format!(
            "the matchExpression on {key} takes no values with its operator"
        )),
        _ => Ok(operator),
    };
    let operator = match expression.get("operator").and_then(Value::as_str) {
        Some("In") => Operator::In(values()?),
        Some("NotIn") => Operator::NotIn(values()?),
        Some("Exists") => no_values(Operator::Exists)?,
        Some("DoesNotExist") => no_values(Operator::DoesNotExist)?,
        other => {
            return Err(format!(
                "the matchExpression on {key} has operator {}; accepted: In, NotIn, Exists, DoesNotExist",
                other.map_or_else(|| "none".to_owned(), |o| format!("{o:?}"))
            ));
        }
    };
    Ok(Requirement {
        key: key.to_owned(),
        operator,
    })
}

/// The requirements of `text`: split at commas outside parentheses.
fn split_requirements(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (at, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("a value list cannot hold another '('".to_owned()),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("')' closes no value list".to_owned()),
            ',' if depth == 0 => {
                parts.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err("a value list is not closed with ')'".to_owned());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

const FORMS: &str =
    "expected key, !key, key=value, key!=value, key in (a,b), key notin (a,b), key>N or key<N";

fn requirement(part: &str) -> Result<Requirement, String> {
    let make = |key: &str, operator| {
        let key = key.trim();
        check_key(key)?;
        Ok(Requirement {
            key: key.to_owned(),
            operator,
        })
    };
    if part.is_empty() {
        return Err(format!("an empty requirement between commas; {FORMS}"));
    }
    if let Some(key) = part.strip_prefix('!') {
        return make(key, Operator::DoesNotExist);
    }
    if let Some((key, value)) = part.split_once("!=") {
        return make(key, Operator::NotIn(vec![value_of(value)?]));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return make(key, Operator::In(vec![value_of(value)?]));
    }
    for (symbol, bound) in [('>', true), ('<', false)] {
        if let Some((key, value)) = part.split_once(symbol) {
            let limit = value
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{symbol} needs a whole number, found {:?}", value.trim()))?;
            let operator = if bound {
                Operator::GreaterThan(limit)
            } else {
                Operator::LessThan(limit)
            };
            return make(key, operator);
        }
    }
    if let Some(open) = part.find('(') {
        let mut words = part[..open].split_whitespace();
        let (Some(key), Some(word), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("cannot read {part:?}; {FORMS}"));
        };
        let Some(list) = part[open + 1..].strip_suffix(')') else {
            return Err(format!("text after the value list in {part:?}"));
        };
        let values = list
            .split(',')
            .map(value_of)
            .collect::<Result<Vec<_>, _>>()?;
        return match word {
            "in" => make(key, Operator::In(values)),
            "notin" => make(key, Operator::NotIn(values)),
            other => Err(format!(
                "unknown operator {other:?} before a value list: expected in or notin"
            )),
        };
    }
    if part.split_whitespace().count() > 1 {
        return Err(format!("cannot read {part:?}; {FORMS}"));
    }
    make(part, Operator::Exists)
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !names::is_dns_subdomain(prefix)
    {
        return Err(format!(
            "the prefix of label key {key:?} must be a DNS subdomain (lowercase letters, digits, '-' and '.')"
        ));
    }
    if name.is_empty() || !names::is_qualified_name_part(name) {
        return Err(format!(
            "label key {key:?}: the name must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn value_of(text: &str) -> Result<String, String> {
    let value = text.trim();
    if value.is_empty() || names::is_qualified_name_part(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "label value {value:?}: expected at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;
    use serde_json::json;

    fn labels(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[rstest]
    #[case("", true)]
    #[case("app=worker", true)]
    #[case("app==worker", true)]
    #[case("app = worker", true)]
    #[case("app=web", false)]
    #[case("app!=web", true)]
    #[case("missing!=web", true)]
    #[case("app", true)]
    #[case("!app", false)]
    #[case("!missing", true)]
    #[case("app in (web, worker)", true)]
    #[case("app notin (web,worker)", false)]
    #[case("missing notin (web)", true)]
    #[case("missing in (web)", false)]
    #[case("app=worker,tier!=web", true)]
    #[case("app=worker,tier=web", false)]
    #[case("shards>2", true)]
    #[case("shards<2", false)]
    #[case("app>2", false)]
    #[case("sidekiq-guard.io/inject=true", true)]
    #[case("tier=", false)]
    #[case("empty=", true)]
    fn selects_like_kubectl(#[case] selector: &str, #[case] selected: bool) {
        let labels = labels(json!({
            "app": "worker", "tier": "jobs", "shards": "4", "empty": "",
            "sidekiq-guard.io/inject": "true",
        }));
        let parsed = Selector::parse(selector).unwrap();
        assert_eq!(parsed.matches(Some(&labels)), selected, "{selector}");
    }

    #[test]
    fn an_object_without_labels_has_none_of_them() {
        let selector = Selector::parse("app!=web,!canary").unwrap();
        assert!(selector.selects(&json!({"metadata": {"name": "x"}})));
        assert!(!Selector::parse("app").unwrap().selects(&json!({})));
    }

    #[rstest]
    #[case("app=worker,", "an empty requirement between commas")]
    #[case("app in (a,b", "a value list is not closed with ')'")]
    #[case("app in a,b)", "')' closes no value list")]
    #[case("app within (a)", "unknown operator \"within\" before a value list")]
    #[case("app=wor ker", "label value \"wor ker\"")]
    #[case("-app=x", "label key \"-app\"")]
    #[case("Example.COM/app=x", "the prefix of label key")]
    #[case("shards>two", "> needs a whole number, found \"two\"")]
    #[case("app worker", "cannot read \"app worker\"")]
    fn bad_selectors_say_what_is_wrong(#[case] selector: &str, #[case] problem: &str) {
        let error = Selector::parse(selector).unwrap_err();
        assert_eq!(error.selector, selector);
        assert!(error.problem.contains(problem), "{error}");
    }

    /// Objects select as Kubernetes documents them (the second column: for an object labelled
    /// `app=worker,tier=jobs`; the third: for one without labels), and as their text does.
    #[rstest]
    #[case(json!(null), true, true, "")]
    #[case(json!({}), true, true, "")]
    #[case(json!({"matchLabels": {"app": "worker"}}), true, false, "app=worker")]
    #[case(json!({"matchLabels": {"app": "web"}}), false, false, "app=web")]
    #[case(json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "worker"]}]}), true, false, "app in (web,worker)")]
    #[case(json!({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}), false, false, "missing in (x)")]
    #[case(json!({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}), true, true, "missing notin (x)")]
    #[case(json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["worker"]}]}), false, true, "app notin (worker)")]
    #[case(json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}), true, false, "app")]
    #[case(json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}), false, true, "!app")]
    #[case(json!({"matchLabels": {"app": "worker"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["jobs"]}]}), false, false, "app=worker,tier notin (jobs)")]
    fn objects_select_as_kubernetes_documents(
        #[case] object: Value,
        #[case] labelled: bool,
        #[case] unlabelled: bool,
        #[case] text: &str,
    ) {
        let labels = labels(json!({"app": "worker", "tier": "jobs"}));
        let from_object = Selector::from_object(Some(&object)).unwrap();
        assert_eq!(from_object.matches(Some(&labels)), labelled, "{object}");
        assert_eq!(from_object.matches(None), unlabelled, "{object}");
        let from_text = Selector::parse(text).unwrap();
        assert_eq!(from_text.matches(Some(&labels)), labelled, "{text}");
        assert_eq!(from_text.matches(None), unlabelled, "{text}");
    }

    #[test]
    fn a_selector_requires_a_label_only_through_an_in_of_allowed_values() {
        let requires = |object: Value| {
            Selector::from_object(Some(&object))
                .unwrap()
                .requires("inject", |value| value == "enabled")
        };
        assert!(requires(json!({"matchLabels": {"inject": "enabled"}})));
        assert!(requires(json!({"matchExpressions": [
            {"key": "inject", "operator": "In", "values": ["enabled"]}]})));
        assert!(!requires(json!({"matchExpressions": [
            {"key": "inject", "operator": "In", "values": ["enabled", "true"]}]})));
        assert!(!requires(json!({"matchExpressions": [
            {"key": "inject", "operator": "Exists"}]})));
        assert!(!requires(json!({"matchExpressions": [
            {"key": "inject", "operator": "NotIn", "values": ["disabled"]}]})));
        assert!(!requires(json!({"matchLabels": {"inject": "disabled"}})));
        assert!(!requires(json!({})));
        assert!(
            Selector::parse("inject=enabled")
                .unwrap()
                .requires("inject", |v| v == "enabled")
        );
    }

    #[rstest]
    #[case(json!({"matchLabels": ["app"]}), "matchLabels must be a mapping of labels")]
    #[case(json!({"matchLabels": {"app": 1}}), "matchLabels.app must be a string")]
    #[case(json!({"matchExpressions": {"key": "app"}}), "matchExpressions must be a list")]
    #[case(json!({"matchExpressions": [{"operator": "In"}]}), "a matchExpression has no key")]
    #[case(json!({"matchExpressions": [{"key": "app", "operator": "In"}]}), "the matchExpression on app needs a list of string values")]
    #[case(json!({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}), "operator \"Gt\"; accepted: In, NotIn, Exists, DoesNotExist")]
    #[case(json!({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]}), "the matchExpression on app takes no values with its operator")]
    fn bad_selector_objects_say_what_is_wrong(#[case] object: Value, #[case] problem: &str) {
        let error = Selector::from_object(Some(&object)).unwrap_err();
        assert!(error.problem.contains(problem), "{error}");
    }

    proptest! {
        #[test]
        fn never_panics(text in "[a-z!=(), <>/.0-9-]{0,40}") {
            if let Ok(selector) = Selector::parse(&text) {
                selector.matches(None);
            }
        }
    }
}
