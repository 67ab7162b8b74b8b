//! Preemptible / spot node presets: which nodeSelector entries and
//! tolerations put a pod on cheap, reclaimable nodes. Five are built in; the
//! config file adds more (or replaces a built-in one of the same name).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A pod toleration, with only the fields Kubernetes defines (so a typo in
/// the config file is an error, not a toleration that silently never matches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// `key=value:effect` with operator Equal, the usual shape for spot taints.
    fn equal(key: &str, value: &str, effect: &str) -> Self {
        Self {
            key: Some(key.to_owned()),
            operator: Some("Equal".to_owned()),
            value: Some(value.to_owned()),
            effect: Some(effect.to_owned()),
            toleration_seconds: None,
        }
    }
}

/// Where a preemptible pod goes: nodeSelector entries plus tolerations.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preset {
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
}

/// The presets every cluster has, whatever its config file says.
pub fn built_in() -> BTreeMap<String, Preset> {
    let selector = |key: &str, value: &str| BTreeMap::from([(key.to_owned(), value.to_owned())]);
    BTreeMap::from([
        (
            "gke-preemptible".to_owned(),
            Preset {
                node_selector: selector("cloud.google.com/gke-preemptible", "true"),
                tolerations: vec![Toleration::equal("cloud.google.com/gke-preemptible", "true", "NoSchedule")],
            },
        ),
        (
            "gke-spot".to_owned(),
            Preset {
                node_selector: selector("cloud.google.com/gke-spot", "true"),
                tolerations: vec![Toleration::equal("cloud.google.com/gke-spot", "true", "NoSchedule")],
            },
        ),
        (
            "eks-spot".to_owned(),
            Preset { node_selector: selector("eks.amazonaws.com/capacityType", "SPOT"), tolerations: Vec::new() },
        ),
        (
            "aks-spot".to_owned(),
            Preset {
                node_selector: selector("kubernetes.azure.com/scalesetpriority", "spot"),
                tolerations: vec![Toleration::equal("kubernetes.azure.com/scalesetpriority", "spot", "NoSchedule")],
            },
        ),
        (
            "karpenter-spot".to_owned(),
            Preset { node_selector: selector("karpenter.sh/capacity-type", "spot"), tolerations: Vec::new() },
        ),
    ])
}
