//! Arbitrary `kube-once.io/` annotations on a valid Deployment. Input: one
//! annotation per line, `name=value`; a name without `/` gets the prefix.
//! The core must never panic, and what it admits must be idempotent:
//! admitting the mutated object again yields an empty patch.
#![no_main]

use kube_once_core::{self as core, Config, PREFIX};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

fuzz_target!(|text: &str| {
    let mut annotations = Map::new();
    for line in text.lines() {
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        let name = if name.contains('/') { name.to_owned() } else { format!("{PREFIX}{name}") };
        annotations.insert(name, Value::String(value.to_owned()));
    }
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "web", "image": "registry.example/web:1", "env": [{"name": "DATABASE_URL", "value": "postgres://db/app"}]},
                    {"name": "worker", "image": "registry.example/worker:1"}
                ]},
            },
        },
    });
    let config = Config::default();
    let Ok(mutation) = core::mutate(&deployment, None, &config) else { return };
    // Again as an UPDATE that changes nothing, and as a CREATE of the mutated manifest.
    for old_object in [Some(&mutation.object), None] {
        let again = core::mutate(&mutation.object, old_object, &config);
        assert!(
            matches!(&again, Ok(second) if second.patch.0.is_empty()),
            "not idempotent for annotations {annotations:?}: second admission gave {again:?}"
        );
    }
});
