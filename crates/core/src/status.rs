//! `kube-once.io/status` on the pod template: the record of exactly what was
//! injected, so a later admission can strip it (annotations removed, plan
//! changed) and re-apply it without touching what the user wrote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::Delivery;

/// Status format version, bumped if the meaning of a field changes.
pub const VERSION: u32 = 1;

/// What kube-once added to a pod template. Unknown fields are tolerated so
/// that a status written by a newer kube-once can still be stripped.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub version: u32,
    /// The done-record key of the injected run (for people reading the object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The preset applied (for people reading the object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// How the pod binary was delivered to `kube-once-run`; absent means
    /// `initContainer`, the only delivery before this field existed.
    #[serde(default, skip_serializing_if = "is_init_container")]
    pub delivery: Delivery,
    /// Names of the injected initContainers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<String>,
    /// Pod template labels added (a label the user already had is not listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Names of the injected volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// nodeSelector entries added (entries the user already had are not listed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations added, exactly as written (ones the user already had are not listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Value>,
    /// Fields that did not exist before injection (`metadata`, `annotations`,
    /// `labels`, `initContainers`, `volumes`, `nodeSelector`, `tolerations`): removed
    /// again when stripping leaves them empty, so stripping restores the
    /// template exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    /// Of `created`, the fields that were `null` rather than absent
    /// (`annotations: null`, `initContainers:` with no value): stripping
    /// writes `null` back instead of removing them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub was_null: Vec<String>,
}

fn is_init_container(delivery: &Delivery) -> bool {
    *delivery == Delivery::InitContainer
}

impl Status {
    pub fn new() -> Self {
        Self { version: VERSION, ..Self::default() }
    }

    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Compact JSON with fields in a fixed order (the annotation's value).
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn created(&self, field: &str) -> bool {
        self.created.iter().any(|created| created == field)
    }

    pub fn was_null(&self, field: &str) -> bool {
        self.was_null.iter().any(|was_null| was_null == field)
    }
}
