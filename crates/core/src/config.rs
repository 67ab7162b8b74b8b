//! The webhook configuration file (`webhook-config/config.yaml`, the chart's
//! ConfigMap). Parsed from text here; reading the file is the caller's job.
//!
//! ```yaml
//! toolsImage: ghcr.io/kube-once/kube-once:0.1.0   # image of kube-once-install
//! delivery: initContainer                          # or imageVolume (Kubernetes ≥ 1.35)
//! installSecurityContext:                          # replaces kube-once-install's own
//!   runAsNonRoot: true                             # (OpenShift: no fixed runAsUser)
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
//! Unknown keys are an error that names the key. Every key is optional; an
//! empty file means the built-in defaults. A preset named like a built-in one
//! replaces it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::presets::{self, Preset, Toleration};
use super::settings::{self, Record};

/// Image of `kube-once-install` when the config file does not name one.
pub const DEFAULT_TOOLS_IMAGE: &str = concat!("ghcr.io/kube-once/kube-once:", env!("CARGO_PKG_VERSION"));

/// How the pod binary reaches `kube-once-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Delivery {
    /// The `kube-once-install` initContainer copies it from the tools image
    /// into an emptyDir (works on every Kubernetes version).
    #[default]
    InitContainer,
    /// The tools image itself is mounted read-only as an image volume
    /// (KEP-4639: beta and on by default since Kubernetes 1.35; needs
    /// containerd ≥ 2.1 or CRI-O ≥ 1.31): no install container, no copy.
    ImageVolume,
}

impl Delivery {
    /// The config file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::InitContainer => "initContainer",
            Delivery::ImageVolume => "imageVolume",
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "initContainer" => Ok(Delivery::InitContainer),
            "imageVolume" => Ok(Delivery::ImageVolume),
            other => Err(format!(
                "`{other}` is not a delivery; write initContainer (the default, any Kubernetes) or imageVolume (Kubernetes ≥ 1.35, or 1.33+ with the ImageVolume feature gate)"
            )),
        }
    }
}

/// The validated configuration: built-in presets merged with the file's.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Image holding the server binary at `/kube-once` (ENTRYPOINT) and the
    /// pod binary at `/pod/kube-once`, which [`Config::delivery`] brings to `kube-once-run`.
    pub tools_image: String,
    /// How the pod binary reaches `kube-once-run` on a new injection (a
    /// Deployment the user does not change keeps the delivery it has).
    pub delivery: Delivery,
    /// Preset used for `kube-once.io/preemptible: "true"`; none means `"true"` is refused.
    pub default_preset: Option<String>,
    /// Values used when a Deployment does not set the matching annotation.
    pub defaults: Defaults,
    /// The whole securityContext of `kube-once-install`, replacing the
    /// built-in one (which fixes `runAsUser`); for platforms that assign
    /// UIDs themselves, such as OpenShift's restricted-v2 SCC.
    pub install_security_context: Option<serde_json::Value>,
    /// Every preset a Deployment may name: the built-in ones plus the file's.
    pub presets: BTreeMap<String, Preset>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub timeout: Duration,
    pub lock_name: String,
    pub record: Record,
}

impl Defaults {
    /// How long a pod waits for the lock, unless the file or `kube-once.io/timeout` says otherwise.
    pub const TIMEOUT: Duration = Duration::from_secs(15 * 60);
    /// The lock name, unless the file or `kube-once.io/lock-name` says otherwise.
    pub const LOCK_NAME: &str = "kube-once";
}

impl Default for Defaults {
    fn default() -> Self {
        Self { timeout: Self::TIMEOUT, lock_name: Self::LOCK_NAME.to_owned(), record: Record::Table }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tools_image: DEFAULT_TOOLS_IMAGE.to_owned(),
            delivery: Delivery::default(),
            default_preset: None,
            defaults: Defaults::default(),
            install_security_context: None,
            presets: presets::built_in(),
        }
    }
}

/// Why a config file is rejected; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML, or a key kube-once does not know (the message names it and its line).
    #[error("webhook config: {0}")]
    Syntax(serde_yaml_ng::Error),
    #[error("webhook config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

/// The file as written: everything optional, nothing unknown.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigFile {
    tools_image: Option<String>,
    delivery: Option<String>,
    default_preset: Option<String>,
    #[serde(default)]
    defaults: DefaultsFile,
    install_security_context: Option<serde_json::Value>,
    #[serde(default)]
    presets: BTreeMap<String, Preset>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DefaultsFile {
    timeout: Option<String>,
    lock_name: Option<String>,
    record: Option<String>,
}

impl Config {
    /// Parse and validate a config file's text. Empty text (or only
    /// comments) gives the built-in defaults.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(ConfigError::Syntax)?;
        let file: ConfigFile = if document.is_null() {
            ConfigFile::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(ConfigError::Syntax)?
        };
        Config::try_from(file)
    }

    /// The preset named `name`, if any.
    pub fn preset(&self, name: &str) -> Option<&Preset> {
        self.presets.get(name)
    }
}

impl TryFrom<ConfigFile> for Config {
    type Error = ConfigError;

    fn try_from(file: ConfigFile) -> Result<Self, Self::Error> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid { key: key.to_owned(), reason };
        let mut config = Config::default();
        if let Some(image) = file.tools_image {
            if image.chars().any(char::is_control) {
                return Err(invalid(
                    "toolsImage",
                    format!(
                        "{image:?} holds a control character (NUL, line break, ...); write the image reference alone, e.g. {DEFAULT_TOOLS_IMAGE}"
                    ),
                ));
            }
            if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
                return Err(invalid(
                    "toolsImage",
                    format!("`{image}` is not an image reference; write e.g. {DEFAULT_TOOLS_IMAGE}"),
                ));
            }
            config.tools_image = image;
        }
        if let Some(delivery) = file.delivery {
            config.delivery = Delivery::parse(&delivery).map_err(|r| invalid("delivery", r))?;
        }
        if let Some(context) = file.install_security_context {
            if !context.is_object() {
                return Err(invalid(
                    "installSecurityContext",
                    "must be a map: a container securityContext such as {runAsNonRoot: true, allowPrivilegeEscalation: false}"
                        .to_owned(),
                ));
            }
            config.install_security_context = Some(context);
        }
        if let Some(timeout) = file.defaults.timeout {
            config.defaults.timeout = settings::parse_timeout(&timeout).map_err(|r| invalid("defaults.timeout", r))?;
        }
        if let Some(lock_name) = file.defaults.lock_name {
            settings::check_lock_name(&lock_name).map_err(|r| invalid("defaults.lockName", r))?;
            config.defaults.lock_name = lock_name;
        }
        if let Some(record) = file.defaults.record {
            config.defaults.record = Record::parse(&record).map_err(|r| invalid("defaults.record", r))?;
        }
        for (name, preset) in file.presets {
            check_preset(&name, &preset).map_err(|r| invalid(&format!("presets.{name}"), r))?;
            config.presets.insert(name, preset);
        }
        if let Some(name) = file.default_preset {
            if !config.presets.contains_key(&name) {
                let known = config.presets.keys().cloned().collect::<Vec<_>>().join(", ");
                return Err(invalid("defaultPreset", format!("no preset is named `{name}`; use one of: {known}")));
            }
            config.default_preset = Some(name);
        }
        Ok(config)
    }
}

fn check_preset(name: &str, preset: &Preset) -> Result<(), String> {
    if name == "true" || name == "false" || name.is_empty() {
        return Err(format!("`{name}` cannot name a preset (it means something else in kube-once.io/preemptible)"));
    }
    if preset.node_selector.is_empty() && preset.tolerations.is_empty() {
        return Err("a preset needs nodeSelector entries, tolerations, or both".to_owned());
    }
    if preset.node_selector.keys().any(String::is_empty) {
        return Err(
            "nodeSelector has an empty key; write the node label to select on, e.g. {node-pool: spot}".to_owned()
        );
    }
    for (index, toleration) in preset.tolerations.iter().enumerate() {
        check_toleration(toleration).map_err(|problem| format!("tolerations[{index}]: {problem}"))?;
    }
    Ok(())
}

/// What the API server would refuse in a pod's toleration, refused here
/// already: at admission it would refuse every Deployment using the preset.
fn check_toleration(toleration: &Toleration) -> Result<(), String> {
    let key = toleration.key.as_deref().unwrap_or_default();
    let value = toleration.value.as_deref().unwrap_or_default();
    match toleration.operator.as_deref() {
        None | Some("Equal") if key.is_empty() => Err(
            "has no key, which only operator Exists allows (it tolerates every taint); give the taint's key, or write operator: Exists"
                .to_owned(),
        ),
        None | Some("Equal") => Ok(()),
        Some("Exists") if !value.is_empty() => Err(format!(
            "has operator Exists and value `{value}`; Exists matches any value, so remove the value, or write operator: Equal"
        )),
        Some("Exists") => Ok(()),
        Some(other) => Err(format!("has operator `{other}`; write Exists or Equal (the default)")),
    }?;
    match toleration.effect.as_deref() {
        Some("NoExecute") => Ok(()),
        _ if toleration.toleration_seconds.is_some() => Err(
            "has tolerationSeconds, which only effect NoExecute allows; write effect: NoExecute, or remove tolerationSeconds"
                .to_owned(),
        ),
        None | Some("" | "NoSchedule" | "PreferNoSchedule") => Ok(()),
        Some(other) => Err(format!(
            "has effect `{other}`; write NoSchedule, PreferNoSchedule or NoExecute, or leave it out to match every effect"
        )),
    }
}
