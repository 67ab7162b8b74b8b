//! The pure core: no I/O, no clock, no randomness. It turns a Deployment
//! (plus the previous one, on UPDATE) and the webhook [`Config`] into the
//! desired Deployment, the RFC 6902 patch that gets there, and warnings.

pub mod config;
pub mod env;
pub mod render;

pub use config::Config;

use serde_json::Value;

/// Annotation prefix; every annotation of the contract starts with it.
pub const PREFIX: &str = "kube-once.io/";

/// What the webhook does to one Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// Minimal, deterministic RFC 6902 operations; empty when nothing changes.
    pub patch: json_patch::Patch,
    /// The Deployment after the patch.
    pub object: Value,
    /// Non-fatal notes for the user (AdmissionResponse `warnings`).
    pub warnings: Vec<String>,
}

/// Why a Deployment is refused. Its message names the Deployment, the
/// annotation, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// Desired state for `object` (a Deployment as JSON). `old_object` is the
/// stored object on UPDATE: when the user's pod template is unchanged, the
/// injected parts are kept exactly as they were (the webhook alone never
/// starts a rollout).
pub fn mutate(object: &Value, old_object: Option<&Value>, config: &Config) -> Result<Mutation, Refusal> {
    let _ = (old_object, config);
    Ok(Mutation { patch: json_patch::Patch(Vec::new()), object: object.clone(), warnings: Vec::new() })
}
