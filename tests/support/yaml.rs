//! Multi-document YAML as JSON values (helm and kubectl output, fixtures).

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// Every YAML document of `text`, as JSON values (empty documents skipped);
/// `origin` names the text in errors.
pub fn documents(text: &str, origin: &str) -> Result<Vec<Value>> {
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value: Value =
            serde::Deserialize::deserialize(document).with_context(|| format!("{origin}: invalid YAML"))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// [`documents`] of a file.
pub fn read_documents(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    documents(&text, &path.display().to_string())
}
