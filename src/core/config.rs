//! The webhook configuration file (`webhook-config/config.yaml`, the chart's
//! ConfigMap). Parsed from text here; reading the file is the caller's job.
//!
//! ```yaml
//! toolsImage: ghcr.io/kube-once/kube-once:0.1.0   # image of kube-once-install
//! defaultPreset: gke-spot                          # what `preemptible: "true"` means
//! defaults:
//!   timeout: 15m
//!   lockName: kube-once
//!   record: table
//! presets:                                         # added to the built-in ones
//!   on-prem-spot:
//!     nodeSelector: {node-pool: spot}
//!     tolerations:
//!       - {key: node-pool, operator: Equal, value: spot, effect: NoSchedule}
//! ```
//! Unknown keys are an error that names the key.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    pub tools_image: String,
}

impl Default for Config {
    fn default() -> Self {
        Self { tools_image: "ghcr.io/kube-once/kube-once:0.1.0".to_owned() }
    }
}
