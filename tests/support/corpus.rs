//! The real-world manifests of tests/fixtures/manifests (SOURCES says where
//! each came from), and opting one of their workloads in as a user would.

use std::path::PathBuf;

use serde_json::{Value, json};

/// Every corpus file, sorted; fails when files went missing.
pub fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(super::fixtures("manifests"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 24, "corpus files went missing: {files:?}");
    files
}

/// `object` with `kube-once.io/run` added to its own annotations.
pub fn with_run_annotation(object: &Value) -> Value {
    let mut object = object.clone();
    let metadata = object["metadata"].as_object_mut().unwrap();
    let annotations = metadata.entry("annotations").or_insert(json!({}));
    if annotations.is_null() {
        *annotations = json!({});
    }
    annotations["kube-once.io/run"] = json!("migrate --yes");
    object
}

/// Whether `object` carries a `kube-once.io/` annotation of its own.
pub fn has_contract_annotation(object: &Value) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.keys().any(|k| k.starts_with("kube-once.io/")))
}
