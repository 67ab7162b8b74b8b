//! Manifests as people hand them over: a YAML (or JSON) stream of one or
//! many documents, read as Kubernetes reads them ([`crate::yaml`]). Shared
//! by `kube-once preview` and `POST /preview`, so both read the same way and
//! call the same objects Deployments.

use serde_json::Value;

use crate::kind::Kind;
use crate::yaml::{self, Limits, YamlError};

/// A stream that is not a valid manifest; says which document and line.
pub type ManifestError = YamlError;

/// Every document of a YAML stream as JSON (JSON is YAML too); empty
/// documents are skipped and the items of a `List` (or `DeploymentList`),
/// nested ones included, are taken one by one.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let mut documents = Vec::new();
    for document in yaml::read_stream(text, &Limits::default())? {
        let Some(value) = document.to_json()? else { continue };
        flatten(value, &mut documents);
    }
    Ok(documents)
}

fn flatten(value: Value, out: &mut Vec<Value>) {
    if is_list(&value)
        && let Value::Object(mut object) = value
    {
        if let Some(Value::Array(items)) = object.remove("items") {
            for item in items {
                flatten(item, out);
            }
        }
    } else {
        out.push(value);
    }
}

/// `kind: List` (kubectl's) or `kind: DeploymentList`: its `items` are objects.
pub fn is_list(object: &Value) -> bool {
    matches!(object.get("kind").and_then(Value::as_str), Some("List" | "DeploymentList"))
        && object.get("items").is_some_and(Value::is_array)
}

/// The API version the webhook is registered for and the API server still
/// serves (`apps/v1beta1` and `apps/v1beta2` are gone since Kubernetes 1.16).
pub const DEPLOYMENT_API_VERSION: &str = "apps/v1";

/// Whether the webhook would look at this object: an `apps/v1` Deployment.
pub fn is_deployment(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Deployment")
        && object.get("apiVersion").and_then(Value::as_str) == Some(DEPLOYMENT_API_VERSION)
}

/// Where the Deployments of one document are: `[]` is the document itself,
/// `[2, 0]` is `items[2].items[0]` (Lists nest). Items of an `apps/v1`
/// `DeploymentList` may leave out their `kind` and `apiVersion`.
pub fn deployment_paths(document: &Value) -> Vec<Vec<usize>> {
    let mut paths = Vec::new();
    walk(document, &mut Vec::new(), false, &mut paths);
    paths
}

fn walk(object: &Value, path: &mut Vec<usize>, in_deployment_list: bool, paths: &mut Vec<Vec<usize>>) {
    let implied = in_deployment_list
        && object.get("kind").is_none_or(|k| k == "Deployment")
        && object.get("apiVersion").is_none_or(|v| v == DEPLOYMENT_API_VERSION);
    if is_deployment(object) || (implied && object.is_object()) {
        paths.push(path.clone());
    } else if is_list(object) {
        let deployment_list = object.get("kind").and_then(Value::as_str) == Some("DeploymentList")
            && object.get("apiVersion").and_then(Value::as_str) == Some(DEPLOYMENT_API_VERSION);
        for (index, item) in object.get("items").and_then(Value::as_array).into_iter().flatten().enumerate() {
            path.push(index);
            walk(item, path, deployment_list, paths);
            path.pop();
        }
    }
}

/// The object at `path` (see [`deployment_paths`]).
pub fn at_path<'a>(document: &'a Value, path: &[usize]) -> Option<&'a Value> {
    path.iter().try_fold(document, |value, index| value.get("items")?.get(index))
}

/// The object at `path`, mutable.
pub fn at_path_mut<'a>(document: &'a mut Value, path: &[usize]) -> Option<&'a mut Value> {
    path.iter().try_fold(document, |value, index| value.get_mut("items")?.get_mut(index))
}

/// The value at `keys`, object keys from `value` down: what
/// `value.pointer("/a/b")` finds, without the allocations `pointer` makes
/// to unescape each segment, dozens of times per admission
/// (docs/dev/performance.md).
pub fn value_at<'v>(value: &'v Value, keys: &[&str]) -> Option<&'v Value> {
    keys.iter().try_fold(value, |value, key| value.get(key))
}

/// `<Kind> namespace/name` of an object for messages: `Deployment shop/web`,
/// `CronJob shop/report` (see [`Kind::read_as`]).
pub fn subject(object: &Value) -> String {
    format!("{} {}", Kind::read_as(object), describe(object))
}

/// `namespace/name` of an object for messages (`name` alone when the
/// manifest has no namespace yet, `prefix*` for a generateName).
pub fn describe(object: &Value) -> String {
    let text = |key: &str| value_at(object, &["metadata", key]).and_then(Value::as_str).filter(|s| !s.is_empty());
    let name = text("name")
        .map(str::to_owned)
        .or_else(|| text("generateName").map(|prefix| format!("{prefix}*")))
        .unwrap_or_else(|| "(unnamed)".to_owned());
    match text("namespace") {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_apps_v1_deployments_and_lists_are_flattened() {
        let d = |v: &str| json!({"apiVersion": v, "kind": "Deployment", "metadata": {"name": "x"}});
        assert!(is_deployment(&d("apps/v1")));
        assert!(!is_deployment(&d("apps/v1beta1")));
        assert!(!is_deployment(&d("extensions/v1beta1")));
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            d("apps/v1"),
            {"apiVersion": "v1", "kind": "List", "items": [d("apps/v1"), d("apps/v1beta1")]},
            {"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [{"metadata": {"name": "bare"}}]},
        ]});
        assert_eq!(deployment_paths(&list), [vec![0], vec![1, 0], vec![2, 0]]);
        assert_eq!(at_path(&list, &[2, 0]).unwrap()["metadata"]["name"], "bare");
        let text = serde_json::to_string(&list).unwrap();
        assert_eq!(parse_documents(&text).unwrap().len(), 4);
    }
}
