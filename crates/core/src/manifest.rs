//! Manifests as people hand them over: a YAML (or JSON) stream of one or
//! many documents. Shared by `kube-once preview` and `POST /preview`, so both
//! read the same way and call the same objects Deployments.

use serde::Deserialize;
use serde_json::Value;

/// A document of the stream that is not valid YAML.
#[derive(Debug, thiserror::Error)]
#[error("document {document} is not valid YAML: {source}")]
pub struct ManifestError {
    /// 1-based position in the stream.
    pub document: usize,
    #[source]
    pub source: serde_yaml_ng::Error,
}

/// Every document of a YAML stream (JSON is YAML too); empty documents are
/// skipped and the items of a `kind: List` are taken one by one.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|source| ManifestError { document: index + 1, source })?;
        match value {
            Value::Null => {}
            Value::Object(ref object) if object.get("kind").and_then(Value::as_str) == Some("List") => {
                documents.extend(object.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
            }
            value => documents.push(value),
        }
    }
    Ok(documents)
}

/// Whether the webhook would look at this object: a Deployment of the
/// `apps` group, as the webhook's rules select them.
pub fn is_deployment(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Deployment")
        && object.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("apps/"))
}

/// `namespace/name` of an object for messages (`name` alone when the
/// manifest has no namespace yet, `prefix*` for a generateName).
pub fn describe(object: &Value) -> String {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());
    let name = text("/metadata/name")
        .map(str::to_owned)
        .or_else(|| text("/metadata/generateName").map(|prefix| format!("{prefix}*")))
        .unwrap_or_else(|| "(unnamed)".to_owned());
    match text("/metadata/namespace") {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name,
    }
}
