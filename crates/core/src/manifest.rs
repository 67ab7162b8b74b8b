//! Manifests as people hand them over: a YAML (or JSON) stream of one or
//! many documents, read as Kubernetes reads them ([`crate::yaml`]). Shared
//! by `kube-once preview` and `POST /preview`, so both read the same way and
//! see the same workloads ([`Kind`]).

use serde_json::Value;

use crate::kind::Kind;
use crate::yaml::{self, Limits, YamlError};

/// A stream that is not a valid manifest; says which document and line.
pub type ManifestError = YamlError;

/// Every document of a YAML stream as JSON (JSON is YAML too); empty
/// documents are skipped and the items of a `List` (or `DeploymentList`, ...),
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

/// `kind: List` (kubectl's) or the list of a supported kind
/// (`DeploymentList`, `CronJobList`, ...): its `items` are objects.
pub fn is_list(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str).is_some_and(|kind| kind == "List" || list_of(kind).is_some())
        && object.get("items").is_some_and(Value::is_array)
}

/// The kind whose list `kind` is (`DeploymentList` → Deployment).
pub fn list_of(kind: &str) -> Option<Kind> {
    kind.strip_suffix("List").and_then(Kind::named)
}

/// Whether this is an `apps/v1` Deployment.
pub fn is_deployment(object: &Value) -> bool {
    Kind::of(object) == Some(Kind::Deployment)
}

/// Whether the webhook would look at this object: a [`Kind`] at its API version.
pub fn is_workload(object: &Value) -> bool {
    Kind::of(object).is_some()
}

/// Where the workloads of one document are, with their kind: `[]` is the
/// document itself, `[2, 0]` is `items[2].items[0]` (Lists nest). Items of a
/// supported kind's list (an `apps/v1` `DeploymentList`, a `batch/v1`
/// `CronJobList`) may leave out their `kind` and `apiVersion`.
pub fn workload_paths(document: &Value) -> Vec<(Vec<usize>, Kind)> {
    let mut paths = Vec::new();
    walk(document, &mut Vec::new(), None, &mut paths);
    paths
}

fn walk(object: &Value, path: &mut Vec<usize>, in_list_of: Option<Kind>, paths: &mut Vec<(Vec<usize>, Kind)>) {
    let implied = in_list_of.filter(|kind| {
        object.is_object()
            && object.get("kind").is_none_or(|k| k == kind.name())
            && object.get("apiVersion").is_none_or(|v| v == kind.api_version())
    });
    if let Some(kind) = Kind::of(object).or(implied) {
        paths.push((path.clone(), kind));
    } else if is_list(object) {
        let list_kind = object
            .get("kind")
            .and_then(Value::as_str)
            .and_then(list_of)
            .filter(|kind| object.get("apiVersion").and_then(Value::as_str) == Some(kind.api_version()));
        for (index, item) in object.get("items").and_then(Value::as_array).into_iter().flatten().enumerate() {
            path.push(index);
            walk(item, path, list_kind, paths);
            path.pop();
        }
    }
}

/// What kube-once would pass over in silence in `object`'s annotations,
/// as warnings for `preview` and `explain` (the webhook never sees these
/// objects, or sees nothing to do): annotations whose prefix is a near miss
/// of `kube-once.io/` (`kubeonce.io/run`, `kube-once/run`), and
/// `kube-once.io/` annotations on a kind or API version kube-once does not
/// handle (an `apps/v1beta2` Deployment, a Pod, a ReplicaSet).
pub fn unheeded(object: &Value) -> Vec<String> {
    let Some(annotations) = value_at(object, &["metadata", "annotations"]).and_then(Value::as_object) else {
        return Vec::new();
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let who = format!("{} {}", if kind.is_empty() { "object" } else { kind }, describe(object));
    let mut notes = Vec::new();
    for key in annotations.keys() {
        if let Some((prefix, name)) = key.split_once('/')
            && prefix != "kube-once.io"
            && near_miss(prefix)
        {
            notes.push(format!(
                "{who}: annotation {key} is not read by kube-once, whose prefix is kube-once.io/; write kube-once.io/{name}"
            ));
        }
    }
    let ours: Vec<&str> = annotations.keys().map(String::as_str).filter(|key| key.starts_with(crate::PREFIX)).collect();
    if !ours.is_empty() && Kind::of(object).is_none() {
        let fix = match (Kind::named(kind), kind) {
            (Some(known), _) => format!("use apiVersion {} (the one the API server serves)", known.api_version()),
            (None, "Pod" | "ReplicaSet" | "PodTemplate") => {
                "annotate the workload that creates its pods (its Deployment, StatefulSet, Job, ...) instead".to_owned()
            }
            _ => "annotate the workload that runs the pods instead".to_owned(),
        };
        let api_version = if api_version.is_empty() { "no apiVersion" } else { api_version };
        notes.push(format!(
            "{who} ({api_version}): kube-once does not handle this kind, so it ignores {}; it handles {}; {fix}",
            ours.join(", "),
            Kind::supported_list()
        ));
    }
    notes
}

/// Whether an annotation prefix looks like `kube-once.io` or `kube-once`
/// written another way (`kubeonce.io`, `kube_once.io`, `Kube-Once.io`, `kube-once`).
fn near_miss(prefix: &str) -> bool {
    let folded: String =
        prefix.chars().filter(|c| !matches!(c, '-' | '_' | '.')).map(|c| c.to_ascii_lowercase()).collect();
    matches!(folded.as_str(), "kubeonce" | "kubeonceio")
}

/// The object at `path` (see [`workload_paths`]).
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
        let paths: Vec<Vec<usize>> = workload_paths(&list).into_iter().map(|(path, _)| path).collect();
        assert_eq!(paths, [vec![0], vec![1, 0], vec![2, 0]]);
        assert_eq!(at_path(&list, &[2, 0]).unwrap()["metadata"]["name"], "bare");
        let text = serde_json::to_string(&list).unwrap();
        assert_eq!(parse_documents(&text).unwrap().len(), 4);
    }

    #[test]
    fn lists_of_every_kind_imply_their_items_kind() {
        let list = json!({"apiVersion": "batch/v1", "kind": "CronJobList", "items": [
            {"metadata": {"name": "bare"}},
            {"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "old"}},
        ]});
        assert_eq!(workload_paths(&list), [(vec![0], Kind::CronJob)]);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}},
        ]});
        assert_eq!(workload_paths(&list), [(vec![0], Kind::StatefulSet)]);
    }

    #[test]
    fn near_misses_and_unhandled_kinds_are_named_with_the_fix() {
        let with = |api: &str, kind: &str, key: &str| {
            unheeded(&json!({"apiVersion": api, "kind": kind, "metadata": {"name": "x", "annotations": {key: "rake"}}}))
        };
        for key in ["kubeonce.io/run", "kube-once/run", "kube_once.io/run", "Kube-Once.IO/run"] {
            let notes = with("apps/v1", "Deployment", key);
            assert_eq!(notes.len(), 1, "{key}");
            assert!(notes[0].contains(&format!("annotation {key} is not read")), "{}", notes[0]);
            assert!(notes[0].ends_with("write kube-once.io/run"), "{}", notes[0]);
        }
        assert!(with("apps/v1", "Deployment", "kube-once.io/run").is_empty());
        assert!(with("apps/v1", "Deployment", "example.com/kube-once").is_empty());
        let old = with("apps/v1beta2", "Deployment", "kube-once.io/run");
        assert!(
            old[0].contains("Deployment x (apps/v1beta2)")
                && old[0].ends_with("use apiVersion apps/v1 (the one the API server serves)"),
            "{}",
            old[0]
        );
        let pod = with("v1", "Pod", "kube-once.io/run");
        assert!(pod[0].contains("ignores kube-once.io/run; it handles apps/v1 Deployment, "), "{}", pod[0]);
        assert!(pod[0].contains("argoproj.io/v1alpha1 Rollout"), "{}", pod[0]);
        assert!(!with("v1", "ReplicaSet", "kube-once.io/run").is_empty());
    }
}
