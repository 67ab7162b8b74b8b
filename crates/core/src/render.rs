//! Text renderings of objects shared by `kube-once preview` and `POST /preview`.

use serde_json::Value;

/// The object as a YAML document (what a GitOps user would commit).
pub fn to_yaml(object: &Value) -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(object)
}

/// A unified diff of two renderings, labelled `a/<name>` and `b/<name>`;
/// empty when they are equal.
pub fn unified_diff(name: &str, before: &str, after: &str) -> String {
    if before == after {
        return String::new();
    }
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}
