//! The names users write on their objects, and reading the per-workload settings from annotations.
//!
//! An annotation that cannot be read is reported (it becomes finding `SG010`) and otherwise
//! ignored, so the policy default applies: a typo must be visible, but it must not stop a pod
//! from being protected.

use serde_json::{Map, Value};

use crate::duration;

/// Prefix shared by every annotation and label this project reads or writes.
pub const PREFIX: &str = "sidekiq-guard.io/";
/// Annotation: duration of the longest job the worker runs.
pub const LONGEST_JOB: &str = "sidekiq-guard.io/longest-job";
/// Annotation: name of the Sidekiq container.
pub const CONTAINER: &str = "sidekiq-guard.io/container";
/// Annotation: Sidekiq's shutdown timeout (`-t`).
pub const SHUTDOWN_TIMEOUT: &str = "sidekiq-guard.io/shutdown-timeout";
/// Annotation: port of the probe sidecar.
pub const PROBE_PORT: &str = "sidekiq-guard.io/probe-port";
/// Annotation: the redis-namespace prefix of Sidekiq's keys (Sidekiq 6 configured with
/// `namespace:`), which nothing in the manifest shows; the probe reads the keys under it.
pub const REDIS_NAMESPACE: &str = "sidekiq-guard.io/redis-namespace";
/// Annotation written by the webhook: what was injected, as JSON.
pub const STATUS: &str = "sidekiq-guard.io/status";
/// The annotations that set something, in the order the documentation lists them.
pub const SETTINGS: [&str; 5] = [
    LONGEST_JOB,
    SHUTDOWN_TIMEOUT,
    PROBE_PORT,
    CONTAINER,
    REDIS_NAMESPACE,
];
/// Whether `key` is an annotation of sidekiq-guard's: one of [`SETTINGS`], or the [`STATUS`]
/// the webhook writes.
pub fn is_known(key: &str) -> bool {
    key == STATUS || SETTINGS.contains(&key)
}

/// The setting annotation `key` most likely misspells: the same words in another case or with
/// `_` for `-` (`longest_job`, `longestJob`), or at most two edits away (`longest-jobs`).
pub fn closest(key: &str) -> Option<&'static str> {
    let words = |key: &str| -> String {
        key.chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = words(key);
    SETTINGS
        .into_iter()
        .map(|known| (edits(&wanted, &words(known)), known))
        .filter(|(edits, _)| *edits <= 2)
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, known)| known)
}

/// Levenshtein distance, on characters.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Label on a pod (`true`/`false`) or namespace (`enabled`) that opts in or out.
pub const INJECT: &str = "sidekiq-guard.io/inject";
/// [`INJECT`] on a pod: inject it, whatever its namespace says.
pub const INJECT_POD_IN: &str = "true";
/// [`INJECT`] on a pod: never inject it, whatever its namespace says.
pub const INJECT_POD_OUT: &str = "false";
/// [`INJECT`] on a namespace: inject its Sidekiq pods.
pub const INJECT_NAMESPACE_IN: &str = "enabled";

/// What the [`INJECT`] label of a pod (or pod template) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodOptIn {
    /// `true`.
    In,
    /// `false`: always wins.
    Out,
    /// Absent, or any other value: the namespace decides.
    Unset,
}

impl PodOptIn {
    /// Reads the label's value.
    pub fn of(value: Option<&str>) -> Self {
        match value {
            Some(INJECT_POD_IN) => PodOptIn::In,
            Some(INJECT_POD_OUT) => PodOptIn::Out,
            _ => PodOptIn::Unset,
        }
    }

    /// Whether the pod is considered, as the webhook configurations' selectors decide:
    /// `false` on the pod always wins, else the pod's `true` or its namespace's `enabled`.
    pub fn considered(self, namespace_opted_in: bool) -> bool {
        match self {
            PodOptIn::Out => false,
            PodOptIn::In => true,
            PodOptIn::Unset => namespace_opted_in,
        }
    }
}

/// Settings read from annotations; `None` where the annotation is absent or unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `longest-job`, in seconds.
    pub longest_job: Option<u64>,
    /// `shutdown-timeout`, in seconds.
    pub shutdown_timeout: Option<u64>,
    /// `probe-port`.
    pub probe_port: Option<u16>,
    /// `container`.
    pub container: Option<String>,
    /// `redis-namespace`.
    pub redis_namespace: Option<String>,
    /// Annotations that were present but unreadable.
    pub invalid: Vec<InvalidAnnotation>,
}

/// An annotation whose value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAnnotation {
    /// Full annotation key.
    pub key: &'static str,
    /// The value as written.
    pub value: String,
    /// What the annotation accepts.
    pub accepted: &'static str,
}

const PORT_ACCEPTED: &str =
    "a port number from 1024 to 65535 (the sidecar runs as non-root, and cannot bind below 1024)";
const NAME_ACCEPTED: &str = "the name of a container of the pod";
const REDIS_NAMESPACE_ACCEPTED: &str =
    "Sidekiq's redis-namespace, such as myapp (one word of at most 256 characters)";

impl Overrides {
    /// Reads the overrides from a `metadata.annotations` object (absent means none).
    pub fn from_annotations(annotations: Option<&Map<String, Value>>) -> Self {
        let mut reader = Reader {
            annotations,
            invalid: Vec::new(),
        };
        let longest_job = reader.read_with(LONGEST_JOB, duration::ACCEPTED, duration_secs);
        let shutdown_timeout =
            reader.read_with(SHUTDOWN_TIMEOUT, duration::ACCEPTED, shutdown_secs);
        let probe_port = reader.read(PROBE_PORT, PORT_ACCEPTED, |text| {
            text.trim()
                .parse::<u16>()
                .ok()
                .filter(|port| *port >= crate::FIRST_UNPRIVILEGED_PORT)
        });
        let container = reader.read(CONTAINER, NAME_ACCEPTED, |text| {
            let name = text.trim();
            (!name.is_empty()).then(|| name.to_owned())
        });
        let redis_namespace = reader.read(REDIS_NAMESPACE, REDIS_NAMESPACE_ACCEPTED, |text| {
            let prefix = text.trim();
            // It becomes a command-line argument of the sidecar: one printable word.
            (!prefix.is_empty()
                && prefix.chars().count() <= 256
                && !prefix.chars().any(|c| c.is_whitespace() || c.is_control()))
            .then(|| prefix.to_owned())
        });
        Self {
            longest_job,
            shutdown_timeout,
            probe_port,
            container,
            redis_namespace,
            invalid: reader.invalid,
        }
    }
}

struct Reader<'a> {
    annotations: Option<&'a Map<String, Value>>,
    invalid: Vec<InvalidAnnotation>,
}

/// A duration annotation in seconds; one beyond [`duration::MAX`] is refused for its length.
fn duration_secs(text: &str) -> Result<u64, &'static str> {
    match duration::parse_secs(text) {
        Ok(secs) => Ok(secs),
        Err(duration::DurationError::TooLong { .. }) => Err(DURATION_TOO_LONG),
        Err(duration::DurationError::Invalid { .. }) => Err(duration::ACCEPTED),
        Err(duration::DurationError::Months { .. }) => Err(DURATION_MONTHS),
        Err(duration::DurationError::Iso8601 { .. }) => Err(DURATION_NOT_ISO),
    }
}

/// A timeout Sidekiq would start with: the annotation describes Sidekiq's.
fn shutdown_secs(text: &str) -> Result<u64, &'static str> {
    match duration_secs(text)? {
        secs if !crate::sidekiq::accepts_timeout(secs) => Err(SHUTDOWN_TIMEOUT_ACCEPTED),
        secs => Ok(secs),
    }
}

const SHUTDOWN_TIMEOUT_ACCEPTED: &str =
    "a duration of 1s or more, as Sidekiq's -t (Sidekiq refuses 0), such as 25s or 2m";
const DURATION_TOO_LONG: &str = "a duration of at most 100 years (876000h)";
const DURATION_MONTHS: &str = "minutes written m, as in 15m (M would be months)";
const DURATION_NOT_ISO: &str = "a duration with units as Kubernetes writes them, as in 5m or 1h30m (ISO 8601's PT5M is not read)";

impl Reader<'_> {
    /// Reads one annotation; a value that is not a string or that `parse` rejects is recorded.
    fn read<T>(
        &mut self,
        key: &'static str,
        accepted: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        self.read_with(key, accepted, |text| parse(text).ok_or(accepted))
    }

    /// Like [`Reader::read`], where `parse` says what is accepted when it refuses a value.
    fn read_with<T>(
        &mut self,
        key: &'static str,
        accepted: &'static str,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let value = self.annotations?.get(key)?;
        // Annotation values are strings in every object the API server accepts; anything else
        // comes from a hand-written manifest and is reported like any other unreadable value.
        let parsed = value.as_str().ok_or(accepted).and_then(parse);
        match parsed {
            Ok(parsed) => Some(parsed),
            Err(accepted) => {
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                self.invalid.push(InvalidAnnotation {
                    key,
                    value,
                    accepted,
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(annotations: Value) -> Overrides {
        Overrides::from_annotations(annotations.as_object())
    }

    #[test]
    fn reads_every_override() {
        let overrides = read(json!({
            LONGEST_JOB: "1h30m",
            SHUTDOWN_TIMEOUT: "60",
            PROBE_PORT: "9000",
            CONTAINER: " worker ",
            REDIS_NAMESPACE: "myapp",
            "unrelated": "x",
        }));
        assert_eq!(
            overrides,
            Overrides {
                longest_job: Some(5400),
                shutdown_timeout: Some(60),
                probe_port: Some(9000),
                container: Some("worker".into()),
                redis_namespace: Some("myapp".into()),
                invalid: vec![],
            }
        );
    }

    #[test]
    fn the_pods_label_wins_over_its_namespace() {
        for (label, namespace, considered) in [
            (Some("false"), true, false),
            (Some("true"), false, true),
            (None, true, true),
            (None, false, false),
            (Some("enabled"), false, false),
        ] {
            assert_eq!(
                PodOptIn::of(label).considered(namespace),
                considered,
                "{label:?} in a namespace opted in: {namespace}"
            );
        }
    }

    #[test]
    fn a_duration_too_long_is_refused_for_its_length() {
        let overrides = read(json!({LONGEST_JOB: "1000000h"}));
        assert_eq!(overrides.longest_job, None);
        assert_eq!(overrides.invalid[0].accepted, DURATION_TOO_LONG);
        let overrides = read(json!({LONGEST_JOB: "99999999999999999999"}));
        assert_eq!(overrides.invalid[0].accepted, DURATION_TOO_LONG);
        let overrides = read(json!({LONGEST_JOB: "5M"}));
        assert_eq!(overrides.longest_job, None);
        assert_eq!(
            overrides.invalid[0].accepted,
            "minutes written m, as in 15m (M would be months)"
        );
        let overrides = read(json!({LONGEST_JOB: "PT5M"}));
        assert_eq!(overrides.longest_job, None);
        assert_eq!(
            overrides.invalid[0].accepted,
            "a duration with units as Kubernetes writes them, as in 5m or 1h30m (ISO 8601's PT5M is not read)"
        );
    }

    #[rstest::rstest]
    #[case("sidekiq-guard.io/longest_job", Some(LONGEST_JOB))]
    #[case("sidekiq-guard.io/longestJob", Some(LONGEST_JOB))]
    #[case("sidekiq-guard.io/Longest-Job", Some(LONGEST_JOB))]
    #[case("sidekiq-guard.io/longest-jobs", Some(LONGEST_JOB))]
    #[case("sidekiq-guard.io/probe_port", Some(PROBE_PORT))]
    #[case("sidekiq-guard.io/shutdown-timout", Some(SHUTDOWN_TIMEOUT))]
    #[case("sidekiq-guard.io/owner", None)]
    fn a_misspelt_annotation_is_matched_to_the_one_meant(
        #[case] key: &str,
        #[case] meant: Option<&str>,
    ) {
        assert_eq!(closest(key), meant);
    }

    #[test]
    fn absent_annotations_are_no_overrides() {
        assert_eq!(Overrides::from_annotations(None), Overrides::default());
    }

    #[test]
    fn unreadable_values_are_reported_with_what_is_accepted() {
        let overrides = read(json!({
            LONGEST_JOB: "five minutes",
            PROBE_PORT: "80",
            SHUTDOWN_TIMEOUT: 30,
            CONTAINER: "",
            REDIS_NAMESPACE: "my app",
        }));
        assert_eq!(overrides.longest_job, None);
        assert_eq!(overrides.redis_namespace, None);
        assert_eq!(overrides.probe_port, None);
        assert_eq!(overrides.shutdown_timeout, None);
        assert_eq!(overrides.container, None);
        let seen: Vec<_> = overrides
            .invalid
            .iter()
            .map(|bad| (bad.key, bad.value.as_str(), bad.accepted))
            .collect();
        assert_eq!(
            seen,
            vec![
                (LONGEST_JOB, "five minutes", duration::ACCEPTED),
                (SHUTDOWN_TIMEOUT, "30", duration::ACCEPTED),
                (PROBE_PORT, "80", PORT_ACCEPTED),
                (CONTAINER, "", NAME_ACCEPTED),
                (REDIS_NAMESPACE, "my app", REDIS_NAMESPACE_ACCEPTED),
            ]
        );
    }

    #[test]
    fn a_shutdown_timeout_of_zero_is_refused_as_sidekiq_refuses_it() {
        let overrides = read(json!({SHUTDOWN_TIMEOUT: "0s", LONGEST_JOB: "0s"}));
        assert_eq!(overrides.shutdown_timeout, None);
        assert_eq!(
            overrides.longest_job,
            Some(0),
            "jobs that take no time are possible"
        );
        let invalid = &overrides.invalid[0];
        assert_eq!(
            (invalid.key, invalid.value.as_str(), invalid.accepted),
            (SHUTDOWN_TIMEOUT, "0s", SHUTDOWN_TIMEOUT_ACCEPTED)
        );
        assert_eq!(
            read(json!({SHUTDOWN_TIMEOUT: "1s"})).shutdown_timeout,
            Some(1)
        );
    }
}
