//! The patch the webhook sends leads to exactly the object the core
//! computes, checked by an independent RFC 6902 implementation: Python's
//! `jsonpatch` (in the test venv, KUBE_ONCE_PYTHON, set by
//! scripts/lib/tools.sh). The patch uses `copy` for what `kube-once-run`
//! takes verbatim from the app container, so this also proves a second
//! implementation reads `copy` (and the `add`s after it) the way ours does.
//!
//! Cases: the core's golden inputs (tests/fixtures/core), the public
//! workloads of every kind in tests/fixtures/manifests with a
//! `kube-once.io/run` annotation (at CREATE, as a Job's template is only
//! ever injected), and generated Deployments (copied fields in every
//! combination, several containers, a 1 MB env). That the patch of a 1 MB
//! container stays small is the core's own test (crates/core/tests).

// Test helpers fail the test loudly; clippy's in-test allowance does not reach helpers.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use kube_once_core::{self as core, Config};
use serde_json::{Value, json};

fn python() -> PathBuf {
    match std::env::var_os("KUBE_ONCE_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "KUBE_ONCE_PYTHON is not set: run scripts/test.sh, or `source scripts/lib/tools.sh && ensure_tools`, \
             which installs the Python jsonpatch package into target/tools/venv"
        ),
    }
}

/// Apply each `(object, patch)` with Python's jsonpatch; the patched objects, in order.
fn apply_with_python(cases: &[(Value, Value)]) -> Vec<Value> {
    const SCRIPT: &str = r#"
import json, sys, jsonpatch
for line in sys.stdin:
    case = json.loads(line)
    patched = jsonpatch.JsonPatch(case["patch"]).apply(case["object"])
    sys.stdout.write(json.dumps(patched) + "\n")
"#;
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the venv's python");
    let mut input = Vec::new();
    for (object, patch) in cases {
        serde_json::to_writer(&mut input, &json!({"object": object, "patch": patch})).unwrap();
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "jsonpatch failed: {}", String::from_utf8_lossy(&output.stderr));
    output
        .stdout
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect()
}

struct Case {
    name: String,
    object: Value,
    config: Config,
    /// A case the core must admit (a refusal fails the test, not skips the case).
    admitted: bool,
}

fn golden_cases() -> Vec<Case> {
    let cases = support::core_cases::all().into_iter();
    cases
        .map(|case| Case {
            name: format!("golden {}", case.name),
            object: case.input,
            config: case.config,
            admitted: false,
        })
        .collect()
}

/// Every workload of every kind in the public corpus, annotated to run a
/// migration in its first container.
fn corpus_cases() -> Vec<Case> {
    let dir = support::repo().join("tests/fixtures/manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let documents = core::parse_documents(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for (index, mut object) in documents.into_iter().filter(core::is_workload).enumerate() {
            let metadata = object.as_object_mut().unwrap().entry("metadata").or_insert_with(|| json!({}));
            let annotations = metadata.as_object_mut().unwrap().entry("annotations").or_insert_with(|| json!({}));
            annotations["kube-once.io/run"] = json!("./migrate --yes");
            let name = format!("{} {} #{index}", file.display(), core::Kind::read_as(&object));
            // A Rollout with spec.workloadRef has no template of its own: refused.
            let admitted = core::Kind::read_as(&object).template(&object).is_some();
            cases.push(Case { name, object, config: Config::default(), admitted });
        }
    }
    cases
}

fn deployment(containers: Value, init_containers: Option<Value>) -> Value {
    let mut spec = json!({"containers": containers});
    if let Some(init) = init_containers {
        spec["initContainers"] = init;
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "shop", "annotations": {"kube-once.io/run": "rake db:migrate"}},
        "spec": {
            "selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}}, "spec": spec},
        },
    })
}

/// App containers with every combination of the copied fields, an empty
/// env, a second container sharing the env, existing init containers, and
/// 5,000 env vars (1 MB).
fn generated_cases() -> Vec<Case> {
    let fields: [(&str, Value); 5] = [
        ("env", json!([{"name": "DATABASE_URL", "value": "postgres://app@db/app"}, {"name": "A", "value": "1"}])),
        ("envFrom", json!([{"secretRef": {"name": "app-env"}}])),
        ("volumeMounts", json!([{"name": "data", "mountPath": "/data"}])),
        ("resources", json!({"limits": {"memory": "512Mi"}, "requests": {"cpu": "100m"}})),
        ("securityContext", json!({"runAsUser": 1000, "readOnlyRootFilesystem": true})),
    ];
    let mut cases = Vec::new();
    for mask in 0..(1u32 << fields.len()) {
        let mut app = json!({"name": "app", "image": "registry.example/app:1"});
        for (bit, (field, value)) in fields.iter().enumerate() {
            if mask & (1 << bit) != 0 {
                app[*field] = value.clone();
            }
        }
        cases.push(Case {
            name: format!("fields {mask:05b}"),
            object: deployment(json!([app]), None),
            config: Config::default(),
            admitted: true,
        });
    }
    let app = json!({"name": "app", "image": "a:1", "env": [{"name": "X", "value": "1"}], "resources": {"limits": {"cpu": "1"}}});
    let sidecar =
        json!({"name": "sidecar", "image": "s:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]});
    cases.push(Case {
        name: "app second, a sidecar with a longer env".to_owned(),
        object: deployment(json!([sidecar.clone(), app.clone()]), Some(json!([{"name": "wait", "image": "busybox"}]))),
        config: Config::default(),
        admitted: true,
    });
    cases.push(Case {
        name: "empty env".to_owned(),
        object: deployment(json!([{"name": "app", "image": "a:1", "env": [], "volumeMounts": []}]), None),
        config: Config::default(),
        admitted: true,
    });
    let env: Vec<Value> = (0..5_000)
        .map(|i| json!({"name": format!("SETTING_{i:04}"), "value": format!("{i:04}{}", "x".repeat(180))}))
        .collect();
    cases.push(Case {
        name: "1 MB env".to_owned(),
        object: deployment(json!([{"name": "app", "image": "a:1", "env": env}]), None),
        config: Config::default(),
        admitted: true,
    });
    cases
}

#[test]
fn python_jsonpatch_turns_every_admitted_object_into_the_core_s_object() {
    let cases: Vec<Case> = golden_cases().into_iter().chain(corpus_cases()).chain(generated_cases()).collect();
    let mut inputs = Vec::new();
    let mut expected = Vec::new();
    let mut copies = 0;
    for case in &cases {
        let mutation = match core::mutate(&case.object, None, &case.config) {
            Ok(mutation) => mutation,
            Err(refusal) if case.admitted => panic!("{}: refused: {refusal}", case.name),
            Err(_) => continue,
        };
        let patch = serde_json::to_value(&mutation.patch).unwrap();
        copies += patch.as_array().unwrap().iter().filter(|op| op["op"] == "copy").count();
        inputs.push((case.object.clone(), patch));
        expected.push((case.name.as_str(), mutation.object));
    }
    assert!(inputs.len() >= 80, "too few admitted cases: {}", inputs.len());
    assert!(copies >= 100, "the patches should copy from the app containers: {copies} copies");
    let patched = apply_with_python(&inputs);
    assert_eq!(patched.len(), expected.len());
    for (patched, (name, object)) in patched.iter().zip(&expected) {
        assert!(patched == object, "{name}: Python's jsonpatch gives another object than the core");
    }
}
