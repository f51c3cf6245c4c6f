//! The `sidekiq-guard.io/status` annotation: what sidekiq-guard did to a pod, as JSON.
//!
//! It describes the *result*, not the steps of one mutation, so that mutating an already mutated
//! pod computes the same annotation and changes nothing. `kubectl sidekiq` reads it to find
//! injected pods and their grace period.

use crate::pointer::Pointer as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The parts of a pod sidekiq-guard manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Part {
    /// The probe sidecar.
    Sidecar,
    /// The Sidekiq container's preStop hook.
    PreStop,
    /// The Sidekiq container's startupProbe.
    StartupProbe,
    /// The Sidekiq container's readinessProbe.
    ReadinessProbe,
    /// The Sidekiq container's livenessProbe.
    LivenessProbe,
    /// The pod's terminationGracePeriodSeconds.
    TerminationGracePeriodSeconds,
}

impl Part {
    /// The field name as it appears in a pod spec.
    pub fn field(self) -> &'static str {
        match self {
            Part::Sidecar => "sidecar",
            Part::PreStop => "preStop",
            Part::StartupProbe => "startupProbe",
            Part::ReadinessProbe => "readinessProbe",
            Part::LivenessProbe => "livenessProbe",
            Part::TerminationGracePeriodSeconds => "terminationGracePeriodSeconds",
        }
    }
}

/// The content of the status annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectionStatus {
    /// sidekiq-guard version that wrote it.
    pub version: String,
    /// The Sidekiq container.
    pub container: String,
    /// `native` or `classic`.
    pub sidecar: String,
    /// The probe's port.
    pub probe_port: u16,
    /// The drain budget, seconds.
    pub drain_budget: u64,
    /// The grace period sidekiq-guard requires, seconds.
    pub grace: u64,
    /// The declared longest job, seconds.
    pub longest_job: u64,
    /// Parts that are sidekiq-guard's.
    pub injected: Vec<Part>,
    /// Parts the user had set, kept as they were.
    pub kept: Vec<Part>,
}

impl InjectionStatus {
    /// Reads the annotation's value.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The status annotation of a pod, `None` when it has none or one that does not parse: a
    /// damaged annotation tells nothing reliable about what was injected, and the webhook
    /// writes a new one when the pod is next created.
    pub fn of_pod(pod: &Value) -> Option<Self> {
        pod.at("/metadata/annotations")?
            .get(crate::annotations::STATUS)?
            .as_str()
            .and_then(|text| Self::parse(text).ok())
    }

    /// The annotation's value.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings, numbers and enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
