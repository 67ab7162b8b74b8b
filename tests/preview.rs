//! `kube-once preview` over real manifests (tests/fixtures/manifests: the
//! workloads of every supported kind from public charts and repositories, see
//! its SOURCES), through the real binary: what it passes through is
//! byte-identical, what it writes is strict-schema-valid (Rollouts against
//! their CRD's schema), idempotent and reversible, and reads back the same
//! in an independent YAML 1.1 reader (PyYAML, which reads like kubectl).
//! Plus hostile inputs and the kubectl habits (-f repeated, directories, -R,
//! `-o diff` exit codes).
//!
//! Needs KUBE_ONCE_KUBERNETES_VALIDATE and KUBE_ONCE_PYTHON (scripts/test.sh
//! sets both through scripts/lib/tools.sh).

// Test helpers outside #[test] fns: a failed expectation should panic here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::Mutex;

use kube_once_core::yaml::{Limits, read_stream};
use kube_once_core::{self as core, Config, Kind, PREFIX};
use serde_json::{Value, json};

use support::corpus::{has_contract_annotation, manifest_files as corpus, with_run_annotation};
use support::process::{Run, run_in};

fn preview(args: &[&str], stdin: Option<&str>) -> Run {
    let args: Vec<&str> = std::iter::once("preview").chain(args.iter().copied()).collect();
    run_in(&support::binary(), support::repo(), &args, stdin.unwrap_or_default())
}

fn tool(variable: &str) -> PathBuf {
    match std::env::var_os(variable) {
        Some(path) => PathBuf::from(path),
        None => panic!("{variable} is not set: run scripts/test.sh, which installs kubernetes-validate and PyYAML"),
    }
}

/// `kubernetes-validate --strict -k 1.33.0` over files: it reads YAML 1.1 as
/// kubectl does, so `yes` or `"0644"` in the wrong place fails it.
fn assert_strict_valid(files: &[PathBuf]) {
    let output: Output = Command::new(tool("KUBE_ONCE_KUBERNETES_VALIDATE"))
        .args(["--strict", "-k", "1.33.0", "--quiet"])
        .args(files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubernetes-validate --strict failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `---`-separated parts of a stream, as text, with their values.
fn parts(text: &str) -> Vec<(String, Option<Value>)> {
    read_stream(text, &Limits::default())
        .unwrap()
        .iter()
        .map(|d| (text[d.span.clone()].to_owned(), d.to_json().unwrap()))
        .collect()
}

/// Where each document of a preview's output is checked: the Kubernetes
/// kinds by kubernetes-validate (which passes kinds it has no schema for, so
/// a Rollout must not go there) and Rollouts by their CRD's schema. Writes
/// `name` (and `name.rollouts.yaml` when it holds Rollouts) under `dir`.
#[derive(Default)]
struct ValidationFiles {
    kubernetes: Vec<PathBuf>,
    rollouts: Vec<PathBuf>,
}

impl ValidationFiles {
    fn add(&mut self, dir: &Path, name: &str, output: &str) {
        let (mut kubernetes, mut rollouts) = (String::new(), String::new());
        for (text, value) in parts(output) {
            let is_rollout = value.as_ref().is_some_and(|v| Kind::of(v) == Some(Kind::Rollout));
            let stream = if is_rollout { &mut rollouts } else { &mut kubernetes };
            // A part of a stream may lack its `---` (the first one, or JSON documents).
            if !stream.is_empty() && !text.starts_with("---") {
                stream.push_str("---\n");
            }
            stream.push_str(&text);
            if !stream.ends_with('\n') {
                stream.push('\n');
            }
        }
        for (stream, suffix, files) in
            [(kubernetes, "", &mut self.kubernetes), (rollouts, ".rollouts.yaml", &mut self.rollouts)]
        {
            if !stream.trim().is_empty() {
                let path = dir.join(format!("{name}{suffix}"));
                std::fs::write(&path, stream).unwrap();
                files.push(path);
            }
        }
    }

    fn assert_valid(&self) {
        assert_strict_valid(&self.kubernetes);
        if !self.rollouts.is_empty() {
            assert_rollouts_valid(&self.rollouts);
        }
    }
}

#[test]
fn every_corpus_file_passes_through_byte_for_byte_and_stays_strict_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = ValidationFiles::default();
    let mut untouched = 0;
    for file in corpus() {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let input = std::fs::read_to_string(&file).unwrap();
        let run = preview(&["-f", file.to_str().unwrap(), "-o", "yaml"], None);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let (before, after) = (parts(&input), parts(&run.stdout));
        assert_eq!(before.len(), after.len(), "{name}: documents must stay one for one");
        for ((text, value), (out_text, out_value)) in before.iter().zip(&after) {
            let annotated = value.as_ref().is_some_and(|v| core::is_workload(v) && has_contract_annotation(v));
            if annotated {
                let mutated = core::mutate(value.as_ref().unwrap(), None, &Config::default()).unwrap().object;
                assert_eq!(out_value.as_ref(), Some(&mutated), "{name}: the output reads back as the mutated object");
            } else {
                assert_eq!(out_text, text, "{name}: a document kube-once does not change must pass byte for byte");
                untouched += 1;
            }
        }
        if !before.iter().any(|(_, v)| v.as_ref().is_some_and(has_contract_annotation)) {
            assert_eq!(run.stdout, input, "{name}: nothing to change, so the output is the input");
        }
        outputs.add(dir.path(), &name, &run.stdout);
    }
    assert!(untouched > 500, "only {untouched} untouched documents: the corpus shrank?");
    assert!(!outputs.rollouts.is_empty(), "the corpus has Rollouts, so they must be checked against their schema");
    outputs.assert_valid();
}

#[test]
fn quirks_are_mutated_where_annotated_and_untouched_elsewhere() {
    let file = support::repo().join("tests/fixtures/manifests/quirks.yaml");
    let run = preview(&["-f", file.to_str().unwrap(), "-o", "yaml"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let documents: Vec<Value> = parts(&run.stdout).into_iter().filter_map(|(_, v)| v).collect();
    let injected: Vec<&str> = documents
        .iter()
        .filter(|d| d.pointer("/spec/template/metadata/annotations/kube-once.io~1status").is_some())
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(injected.len(), 6, "{injected:?}");
    assert!(injected.contains(&"quirk-template-annotations-null"), "annotations: null gets the status too");
    let by_name = |name: &str| documents.iter().find(|d| d["metadata"]["name"] == name).unwrap();
    // The values whose meaning YAML 1.2 would change, as Kubernetes reads them.
    let volumes = &by_name("quirk-octal-mode")["spec"]["template"]["spec"]["volumes"];
    assert!(volumes.as_array().unwrap().iter().any(|v| v.pointer("/configMap/defaultMode") == Some(&json!(420))));
    let env = by_name("quirk-env-scalar-strings").pointer("/spec/template/spec/containers/0/env").unwrap();
    for value in ["NULL", "~", "0644", "1_000", ".inf", "0x1A", "2001-01-01", "1:20", ""] {
        assert!(env.as_array().unwrap().iter().any(|e| e["value"] == value), "{value} must stay a string");
    }
    assert_eq!(by_name("quirk-label-yes")["metadata"]["labels"]["feature-x"], "yes");
    // A second preview has nothing to do: the output is a fixed point.
    let again = preview(&["-f", "-", "-o", "yaml"], Some(&run.stdout));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, run.stdout, "a second preview changes nothing, byte for byte");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("quirks.yaml");
    std::fs::write(&out, &run.stdout).unwrap();
    assert_strict_valid(&[out]);
}

/// The workloads of the real corpus files (quirks.yaml is hand-written), by kind.
fn real_workloads() -> Vec<(String, Kind, Value)> {
    let mut workloads = Vec::new();
    for file in corpus().into_iter().filter(|file| !file.ends_with("quirks.yaml")) {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        for object in core::parse_documents(&std::fs::read_to_string(&file).unwrap()).unwrap() {
            if let Some(kind) = Kind::of(&object) {
                workloads.push((name.clone(), kind, object));
            }
        }
    }
    workloads
}

/// The corpus holds, per kind, the real workloads SOURCES lists (at least
/// what issue 21 asks: 10 StatefulSets, 8 Rollouts, 8 Jobs and CronJobs, 3
/// DaemonSets), so no kind's checks can silently run over fewer. Adding a
/// file changes these numbers: update SOURCES with them.
#[test]
fn the_corpus_holds_the_listed_workloads_of_every_kind() {
    let workloads = real_workloads();
    let count = |kind: Kind| workloads.iter().filter(|(_, k, _)| *k == kind).count();
    let counts: Vec<(Kind, usize)> = Kind::ALL.into_iter().map(|kind| (kind, count(kind))).collect();
    assert_eq!(
        counts,
        [
            (Kind::Deployment, 83),
            (Kind::StatefulSet, 17),
            (Kind::DaemonSet, 4),
            (Kind::Job, 11),
            (Kind::CronJob, 4),
            (Kind::Rollout, 19),
        ],
        "the corpus changed: update tests/fixtures/manifests/SOURCES and these numbers together"
    );
    let borrowed = workloads.iter().filter(|(_, kind, object)| kind.template(object).is_none()).count();
    assert_eq!(borrowed, 1, "one Rollout with spec.workloadRef (and no template of its own)");
}

/// The pointer to `kube-once.io/status` on the pod template of a `kind`.
fn status_pointer(kind: Kind) -> String {
    format!("/{}/metadata/annotations/kube-once.io~1status", kind.template_path().join("/"))
}

/// Every workload of every kind in the corpus, annotated: what preview
/// writes is strict-valid, previews again to no change and, with the
/// annotations removed, gives back the original pod template. A preview is
/// an admission at CREATE, the one a Job's immutable template is injected
/// at. A Rollout with `spec.workloadRef` has no template: it is refused.
#[test]
fn every_corpus_workload_annotated_is_valid_idempotent_and_reversible() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = ValidationFiles::default();
    let mut checked = Vec::new();
    for file in corpus() {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let objects = core::parse_documents(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let (originals, borrowed): (Vec<Value>, Vec<Value>) = objects
            .into_iter()
            .filter(core::is_workload)
            .partition(|object| Kind::read_as(object).template(object).is_some());
        for object in &borrowed {
            let run = preview(&["-f", "-", "-o", "yaml"], Some(&with_run_annotation(object).to_string()));
            assert_eq!(run.code, 1, "{name}: a Rollout with spec.workloadRef is refused: {}", run.stderr);
            assert!(run.stderr.contains("spec.workloadRef"), "{name}: {}", run.stderr);
        }
        if originals.is_empty() {
            continue;
        }
        checked.extend(originals.iter().map(Kind::read_as));
        let stream = originals
            .iter()
            .map(|object| serde_json::to_string_pretty(&with_run_annotation(object)).unwrap() + "\n")
            .collect::<Vec<_>>()
            .join("---\n");
        let run = preview(&["-f", "-", "-o", "yaml"], Some(&stream));
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let mutated: Vec<Value> = parts(&run.stdout).into_iter().filter_map(|(_, v)| v).collect();
        assert_eq!(mutated.len(), originals.len(), "{name}");
        for object in &mutated {
            let kind = Kind::read_as(object);
            assert!(object.pointer(&status_pointer(kind)).is_some(), "{name}: {kind} {}", object["metadata"]["name"]);
        }

        // Admitting the output again changes nothing.
        let again = preview(&["-f", "-", "-o", "patch"], Some(&run.stdout));
        assert_eq!(again.code, 0, "{name}: {}", again.stderr);
        let items: Vec<Value> = serde_json::from_str(&again.stdout).unwrap();
        let patches: Vec<Value> = items.iter().map(|item| item["patch"].clone()).collect();
        assert_eq!(patches.len(), originals.len(), "{name}");
        assert!(patches.iter().all(|p| p == &json!([])), "{name}: a second preview must be empty: {patches:?}");
        let diff = preview(&["-f", "-", "-o", "diff"], Some(&run.stdout));
        assert_eq!((diff.code, diff.stdout.as_str()), (0, ""), "{name}: {}", diff.stderr);

        // Removing the annotations gives back the original template, but
        // for a Job: one whose template holds kube-once's injection and no
        // annotation of its own is what a CronJob creates, so it is left as
        // it is (and its template cannot change after creation anyway).
        let removed = mutated
            .iter()
            .map(|object| {
                let mut object = object.clone();
                if let Some(a) = object.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                    a.retain(|key, _| !key.starts_with(PREFIX));
                }
                serde_json::to_string(&object).unwrap() + "\n"
            })
            .collect::<Vec<_>>()
            .join("---\n");
        let reverted = preview(&["-f", "-", "-o", "yaml"], Some(&removed));
        assert_eq!(reverted.code, 0, "{name}: {}", reverted.stderr);
        let reverted: Vec<Value> = parts(&reverted.stdout).into_iter().filter_map(|(_, v)| v).collect();
        assert_eq!(reverted.len(), originals.len(), "{name}");
        for ((original, mutated), reverted) in originals.iter().zip(&mutated).zip(&reverted) {
            let kind = Kind::read_as(original);
            let expected = if kind.template_mutable() { original } else { mutated };
            assert_eq!(
                kind.template(reverted),
                kind.template(expected),
                "{name}: removing the annotations of {kind} {} must give back its original template (a Job's: the one it was created with)",
                original["metadata"]["name"]
            );
        }
        outputs.add(dir.path(), &name, &run.stdout);
    }
    // Every workload of the corpus went through: the real ones the count
    // test lists (but the Rollout without a template) and quirks.yaml's.
    let real = real_workloads();
    for kind in Kind::ALL {
        let expected = real.iter().filter(|(_, k, o)| *k == kind && k.template(o).is_some()).count();
        let expected = expected + if kind == Kind::Deployment { 12 } else { 0 };
        assert_eq!(checked.iter().filter(|k| **k == kind).count(), expected, "{kind}s checked");
    }
    assert!(!outputs.rollouts.is_empty(), "the annotated Rollouts must be checked against their schema");
    outputs.assert_valid();
}

// ------------------------------------------------------------- hostile input

#[test]
fn hostile_documents_are_refused_with_a_clear_message() {
    let mut laughs =
        String::from("apiVersion: v1\nkind: ConfigMap\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        laughs.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(", ")));
    }
    let deep_flow = "[".repeat(200 * 1024);
    let deep_map = "{a: ".repeat(100 * 1024);
    let mut deep_block = String::new();
    for depth in 0..1000 {
        deep_block.push_str(&format!("{}- a:\n", " ".repeat(depth * 2)));
    }
    // Annotated, so rewritten: the value the last `name` overrides would be lost.
    let duplicate = format!("apiVersion: v1\nkind: ConfigMap\n---\n{}", DUPLICATE_NAME);
    let cases: [(&str, &str, &str); 5] = [
        ("billion laughs", &laughs, "billion laughs"),
        ("deep flow nesting", &deep_flow, "nested deeper than 200 levels"),
        ("deep flow mappings", &deep_map, "nested deeper than 200 levels"),
        ("deep block nesting", &deep_block, "nested deeper than 200 levels"),
        ("duplicate key", &duplicate, "document 2 (line 9): duplicate key \"name\""),
    ];
    for (case, input, message) in cases {
        for output in ["yaml", "diff"] {
            let run = preview(&["-f", "-", "-o", output], Some(input));
            let code = if output == "diff" { 2 } else { 1 };
            assert_eq!(run.code, code, "{case} -o {output}: {}", run.stderr);
            assert!(run.stdout.is_empty(), "{case}: nothing on stdout");
            assert!(run.stderr.contains(message) && run.stderr.contains("stdin"), "{case}: {}", run.stderr);
        }
    }
}

/// An annotated Deployment whose `metadata.name` is given twice (line 6).
const DUPLICATE_NAME: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n  annotations: {kube-once.io/run: migrate}\n  name: b\n\
spec:\n  selector:\n    matchLabels: {app: b}\n  template:\n    metadata:\n      labels: {app: b}\n    spec:\n      \
containers:\n      - name: app\n        image: app:1\n";

/// A duplicate key kubectl applies (the last value wins): in a document
/// kube-once leaves alone, it passes through byte for byte with a warning;
/// in one kube-once would rewrite, it is refused as before, since the
/// rewrite would silently drop the overridden value.
#[test]
fn duplicate_keys_pass_through_only_where_nothing_is_rewritten() {
    let config_map =
        "# settings\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n  a: \"2\"\n";
    let plain =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: plain\n  labels: {app: x, app: z}\nspec: {}\n";
    let stream = format!("{config_map}---\n{plain}");
    let yaml = preview(&["-f", "-", "-o", "yaml"], Some(&stream));
    assert_eq!(yaml.code, 0, "{}", yaml.stderr);
    assert_eq!(yaml.stdout, stream, "byte for byte");
    let warnings: Vec<&str> = yaml.stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "{}", yaml.stderr);
    assert!(warnings[0].starts_with("warning: document 1 (line 8): duplicate key \"a\""), "{}", warnings[0]);
    assert!(warnings[1].contains("document 2 (line 14): duplicate key \"app\""), "{}", warnings[1]);
    assert!(warnings.iter().all(|w| w.ends_with("kube-once passes this document through unchanged")), "{warnings:?}");

    let json = preview(&["-f", "-", "-o", "json"], Some(&stream));
    assert_eq!(json.code, 0, "{}", json.stderr);
    let list: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(list["items"][0]["data"], json!({"a": "2"}), "the last value wins, as in Kubernetes");
    assert_eq!(list["items"][1]["metadata"]["labels"], json!({"app": "z"}));

    let refused = preview(&["-f", "-", "-o", "yaml"], Some(&format!("{stream}---\n{DUPLICATE_NAME}")));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("document 3 (line 22): duplicate key \"name\" in a mapping; keep one"),
        "today's message: {}",
        refused.stderr
    );
}

/// DEL (U+007F) is valid in a JSON string and in a YAML quoted scalar
/// (YAML 1.2's `nb-json`), and kubectl and `/mutate` take it: preview reads
/// it too, copies it into `kube-once-run` with the app's env, and writes it
/// escaped. Where YAML does not allow it (a plain scalar) it stays refused.
#[test]
fn del_in_json_strings_and_quoted_scalars_is_read_and_written_escaped() {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"kube-once.io/run": "migrate \u{7f}"}},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "web:1", "env": [{"name": "D", "value": "x\u{7f}y"}]}]},
        }},
    });
    let json_text = deployment.to_string();
    assert!(json_text.contains('\u{7f}'), "serde_json writes DEL as is, as kubectl's JSON may hold it");
    let yaml_text = concat!(
        "apiVersion: apps/v1\nkind: Deployment\n",
        "metadata:\n  name: web\n  annotations:\n    kube-once.io/run: 'migrate \u{7f}'\n",
        "spec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n",
        "    spec:\n      containers:\n      - name: app\n        image: web:1\n        env:\n",
        "        - {name: D, value: \"x\u{7f}y\"}\n",
    );
    for (input, text) in [("JSON", json_text.as_str()), ("YAML", yaml_text)] {
        let run = preview(&["-f", "-", "-o", "yaml"], Some(text));
        assert_eq!(run.code, 0, "{input}: {}", run.stderr);
        assert!(
            !run.stdout.contains('\u{7f}') && run.stdout.contains(r"\x7F"),
            "{input}: written escaped\n{}",
            run.stdout
        );
        let documents = read_stream(&run.stdout, &Limits::default()).unwrap();
        let object = documents[0].to_json().unwrap().unwrap();
        assert_eq!(object["metadata"]["annotations"]["kube-once.io/run"], "migrate \u{7f}", "{input}");
        let run_container = object["spec"]["template"]["spec"]["initContainers"]
            .as_array()
            .and_then(|containers| containers.iter().find(|c| c["name"] == "kube-once-run"))
            .unwrap_or_else(|| panic!("{input}: no kube-once-run in {object}"));
        assert!(
            run_container["env"].as_array().unwrap().contains(&json!({"name": "D", "value": "x\u{7f}y"})),
            "{input}: the app's env travels with DEL: {run_container}"
        );
    }
    let plain = yaml_text.replace("value: \"x\u{7f}y\"", "value: x\u{7f}y");
    let run = preview(&["-f", "-", "-o", "yaml"], Some(&plain));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "line 16): not valid YAML: the control character U+007F (DEL) at column 29 is outside a quoted string"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn only_apps_v1_deployments_are_mutated_and_lists_are_flattened() {
    let deployment = |api: &str, name: &str| {
        json!({"apiVersion": api, "kind": "Deployment", "metadata": {"name": name, "annotations": {"kube-once.io/run": "migrate"}},
               "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}})
    };
    let mut bare = deployment("apps/v1", "bare");
    bare.as_object_mut().unwrap().retain(|k, _| k != "kind" && k != "apiVersion");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        deployment("apps/v1", "top"),
        {"apiVersion": "v1", "kind": "List", "items": [deployment("apps/v1", "nested")]},
        {"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [bare]},
        deployment("apps/v1beta1", "old"),
    ]});
    let run = preview(&["-f", "-", "-o", "json"], Some(&serde_json::to_string(&list).unwrap()));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let output: Value = serde_json::from_str(&run.stdout).unwrap();
    let list = &output["items"][0];
    let injected = |pointer: &str| list.pointer(&format!("{pointer}/spec/template/spec/initContainers")).is_some();
    assert!(injected("/items/0") && injected("/items/1/items/0") && injected("/items/2/items/0"), "{list}");
    assert!(!injected("/items/3"), "apps/v1beta1 is no longer served, so not mutated");
    let yaml = preview(&["-f", "-", "-o", "yaml"], Some(&serde_json::to_string(&list).unwrap()));
    let out: Value = parts(&yaml.stdout).into_iter().find_map(|(_, v)| v).unwrap();
    assert!(out.pointer("/items/1/items/0/spec/template/spec/initContainers").is_some(), "the List stays a List");
    assert!(out.pointer("/items/3/spec/template/spec/initContainers").is_none());
}

fn assert_rollouts_valid(files: &[PathBuf]) {
    let output = support::chart::check_rollouts(files);
    assert!(
        output.status.success(),
        "the Argo Rollouts CRD schema refuses {files:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Each kind in every output format: the patch is the core's golden one, the
/// YAML is strict-valid (the Kubernetes kinds by kubernetes-validate, the
/// Rollout by its CRD's schema) and previews again to no change, the diff is
/// labelled with the kind, and what kube-once passes over is warned about.
#[test]
fn every_kind_previews_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let (mut valid, mut rollouts) = (Vec::new(), Vec::new());
    for (case, label) in [
        ("statefulset", "statefulset/shop/ledger"),
        ("daemonset", "daemonset/observability/agent"),
        ("job", "job/shop/seed"),
        ("cronjob", "cronjob/shop/report"),
        ("rollout", "rollout/shop/storefront"),
    ] {
        let input = format!("tests/fixtures/core/{case}.input.yaml");
        let patch = preview(&["-f", &input, "-o", "patch"], None);
        assert_eq!(patch.code, 0, "{case}: {}", patch.stderr);
        let golden = std::fs::read_to_string(support::fixtures("core").join(format!("{case}.patch.json"))).unwrap();
        let items: Vec<Value> = serde_json::from_str(&patch.stdout).unwrap();
        assert_eq!(items.len(), 1, "{case}");
        assert_eq!(
            items[0]["patch"],
            serde_json::from_str::<Value>(&golden).unwrap(),
            "{case}: preview and the core agree"
        );
        let yaml = preview(&["-f", &input, "-o", "yaml"], None);
        assert_eq!(yaml.code, 0, "{case}: {}", yaml.stderr);
        let again = preview(&["-f", "-", "-o", "patch"], Some(&yaml.stdout));
        let again: Vec<Value> = serde_json::from_str(&again.stdout).unwrap();
        assert_eq!(again[0]["patch"], json!([]), "{case}: previewing the output again changes nothing");
        let path = dir.path().join(format!("{case}.yaml"));
        std::fs::write(&path, &yaml.stdout).unwrap();
        match case {
            "rollout" => rollouts.push(path),
            _ => valid.push(path),
        }
        let diff = preview(&["-f", &input, "-o", "diff"], None);
        assert_eq!(diff.code, 1, "{case}: {}", diff.stderr);
        assert!(diff.stdout.starts_with(&format!("--- a/{label}\n+++ b/{label}\n")), "{case}: {}", diff.stdout);
        let json = preview(&["-f", &input, "-o", "json"], None);
        let list: Value = serde_json::from_str(&json.stdout).unwrap();
        let mutated: Vec<Value> = parts(&yaml.stdout).into_iter().filter_map(|(_, v)| v).collect();
        assert_eq!(list["items"], json!(mutated), "{case}: -o json lists what -o yaml prints");
    }
    assert_strict_valid(&valid);
    assert_rollouts_valid(&rollouts);
    // The check can fail: a misspelt field in the pod template is refused.
    let misspelt = dir.path().join("misspelt.yaml");
    let text = std::fs::read_to_string(&rollouts[0]).unwrap().replace("initContainers:", "initContainerz:");
    std::fs::write(&misspelt, text).unwrap();
    let output = support::chart::check_rollouts(&[misspelt]);
    assert!(
        !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("'initContainerz' was unexpected")
    );

    // Nothing silent: near-miss prefixes and kinds kube-once does not handle.
    let unheeded = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: typo\n  annotations:\n    kubeonce.io/run: migrate\n\
                    ---\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: rs\n  annotations:\n    kube-once.io/run: migrate\n\
                    ---\napiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: old\n  annotations:\n    kube-once.io/run: migrate\n";
    let run = preview(&["-f", "-", "-o", "patch"], Some(unheeded));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let items: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    let patches: Vec<(&str, &Value)> = items.iter().map(|i| (i["name"].as_str().unwrap(), &i["patch"])).collect();
    assert_eq!(patches, [("typo", &json!([]))], "only the Deployment is a workload, and it is left alone");
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(warnings.len(), 3, "{}", run.stderr);
    assert_eq!(
        warnings[0],
        "warning: Deployment typo: annotation kubeonce.io/run is not read by kube-once, whose prefix is kube-once.io/; write kube-once.io/run"
    );
    assert!(
        warnings[1].starts_with("warning: ReplicaSet rs (apps/v1): kube-once does not handle this kind"),
        "{}",
        warnings[1]
    );
    assert!(
        warnings[1]
            .ends_with("annotate the workload that creates its pods (its Deployment, StatefulSet, Job, ...) instead"),
        "{}",
        warnings[1]
    );
    assert!(warnings[2].ends_with("use apiVersion batch/v1 (the one the API server serves)"), "{}", warnings[2]);
}

// ------------------------------------------------------------ kubectl habits

#[test]
fn diff_exits_0_without_differences_1_with_them_and_2_on_errors() {
    let superset = "examples/superset.yaml";
    let run = preview(&["-f", superset, "-o", "diff"], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.starts_with("--- a/deployment/analytics/superset\n"), "{}", run.stdout);
    let yaml = preview(&["-f", superset, "-o", "yaml"], None).stdout;
    let run = preview(&["-f", "-", "-o", "diff"], Some(&yaml));
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    let untouched = preview(&["-f", "tests/fixtures/manifests/grafana.yaml", "-o", "diff"], None);
    assert_eq!((untouched.code, untouched.stdout.as_str()), (0, ""));
    let missing = preview(&["-f", "no/such/file.yaml", "-o", "diff"], None);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("no/such/file.yaml"), "{}", missing.stderr);
    let refused = std::fs::read_to_string(support::repo().join(superset))
        .unwrap()
        .replace("kube-once.io/timeout: 20m", "kube-once.io/timeout: twenty minutes");
    let run = preview(&["-f", "-", "-o", "diff"], Some(&refused));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("refused"), "{}", run.stderr);
}

#[test]
fn f_is_repeatable_and_takes_directories_recursively_with_r() {
    let dir = tempfile::tempdir().unwrap();
    let superset = std::fs::read_to_string(support::repo().join("examples/superset.yaml")).unwrap();
    let grafana = std::fs::read_to_string(support::repo().join("tests/fixtures/manifests/grafana.yaml")).unwrap();
    std::fs::write(dir.path().join("a.yaml"), &superset).unwrap();
    std::fs::write(dir.path().join("b.txt"), "not: a manifest: file\n").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/c.yml"), &grafana).unwrap();
    let count = |run: &Run| {
        assert_eq!(run.code, 0, "{}", run.stderr);
        parts(&run.stdout).iter().filter(|(_, v)| v.is_some()).count()
    };
    let input = |text: &str| parts(text).iter().filter(|(_, v)| v.is_some()).count();
    let (n_superset, n_grafana) = (input(&superset), input(&grafana));
    let d = dir.path().to_str().unwrap();

    assert_eq!(
        count(&preview(&["-f", d, "-o", "yaml"], None)),
        n_superset,
        "a directory: its manifests, not subdirectories"
    );
    assert_eq!(count(&preview(&["-f", d, "-R", "-o", "yaml"], None)), n_superset + n_grafana, "-R descends");
    let both =
        preview(&["-f", "examples/superset.yaml", "-f", "tests/fixtures/manifests/grafana.yaml", "-o", "yaml"], None);
    assert_eq!(count(&both), n_superset + n_grafana);
    // The second file's documents are printed byte for byte after the first's.
    assert!(both.stdout.ends_with(&grafana), "files stay apart and untouched");
    let patches = preview(&["-f", "examples/superset.yaml", "-f", "examples/superset.yaml"], None);
    assert_eq!(patches.code, 0, "{}", patches.stderr);
    let items: Vec<Value> = serde_json::from_str(&patches.stdout).expect("one JSON value for both files");
    assert_eq!(items.len(), 2);
}

// ------------------------------------------- YAML 1.1 read-back (PyYAML)

/// A PyYAML process that reads YAML streams (one JSON-encoded string per
/// line) and answers each with its documents as JSON (one line).
struct PyYaml {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const PYYAML_READER: &str = r#"
import json, sys, yaml
for line in sys.stdin:
    try:
        docs = list(yaml.load_all(json.loads(line), Loader=yaml.SafeLoader))
        print(json.dumps({"ok": docs}, default=lambda o: "!!" + type(o).__name__ + " " + repr(o)), flush=True)
    except Exception as error:
        print(json.dumps({"error": str(error)}), flush=True)
"#;

impl PyYaml {
    fn start() -> Self {
        let mut child = Command::new(tool("KUBE_ONCE_PYTHON"))
            .args(["-c", PYYAML_READER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { _child: child, stdin, stdout }
    }

    fn read(&mut self, yaml: &str) -> Value {
        writeln!(self.stdin, "{}", serde_json::to_string(yaml).unwrap()).unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap();
        match answer.get("ok") {
            Some(documents) => documents.clone(),
            None => panic!("PyYAML cannot read the output: {answer}\n{yaml}"),
        }
    }
}

static PYYAML: Mutex<Option<PyYaml>> = Mutex::new(None);

/// Numbers compared by value (PyYAML reads `1.0` where serde_json kept `1`),
/// to the last bits: serde_json's own float parsing (of PyYAML's answer) is
/// not exact to the ulp.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

mod read_back {
    use super::*;
    use proptest::prelude::*;

    /// Strings every YAML reader is tempted to read as something else.
    const TRICKY: &[&str] = &[
        "yes",
        "Yes",
        "YES",
        "no",
        "No",
        "y",
        "Y",
        "n",
        "N",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "true",
        "True",
        "FALSE",
        "null",
        "Null",
        "NULL",
        "~",
        "",
        "0644",
        "0o644",
        "0x1A4",
        "0b101",
        "1_000",
        "1e3",
        "1E3",
        "1.5",
        ".5",
        "1.",
        "+1",
        "-0",
        "09",
        ".inf",
        "-.Inf",
        ".NaN",
        "2001-01-01",
        "2001-12-14t21:59:43.10-05:00",
        "1:20",
        "190:20:30.15",
        "<<",
        "=",
        "-",
        "- a",
        "? a",
        ": a",
        "a: b",
        "a #b",
        "#a",
        "&a",
        "*a",
        "!a",
        "!!str",
        "|",
        ">",
        "'a",
        "\"a",
        "%a",
        "@a",
        "`a",
        "[a]",
        "{a: b}",
        "---",
        "...",
        " lead",
        "trail ",
        "tab\tin",
        "\ttab",
        "line\nbreak",
        "two\n\nlines\n\n",
        "trailing space \nline",
        "\u{85}",
        "\u{2028}",
        "\u{feff}bom",
        "\u{a0}",
        "café",
        "日本",
        "🎉",
        "\\",
        "\"",
        "'",
        "a'b",
        "100m",
        "128Mi",
        "--flag=x",
        "-Xmx1g",
        "0.0.0.0:8080",
        "10.0.0.1",
        "64b500c28df0c86b18e1cb4e3459c2c8",
    ];

    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(TRICKY).prop_map(str::to_owned),
            2 => "[-a-zA-Z0-9 _.:#'\"!&*?|>%@,\\[\\]{}~=]{0,12}",
            1 => "[a-z]{1,4}(\n[ a-z\t]{0,5}){1,3}\n{0,3}",
            2 => "\\PC{0,6}",
        ]
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            6 => string().prop_map(Value::String),
            1 => any::<i64>().prop_map(Value::from),
            1 => any::<u64>().prop_map(Value::from),
            1 => any::<f64>().prop_filter("JSON has no inf or nan", |f| f.is_finite()).prop_map(Value::from),
            1 => any::<bool>().prop_map(Value::Bool),
            1 => Just(Value::Null),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(string(), inner, 0..5)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    fn deployment(labels: std::collections::BTreeMap<String, String>, env: Vec<String>, extra: Value) -> Value {
        let env: Vec<Value> =
            env.into_iter().enumerate().map(|(i, value)| json!({"name": format!("V{i}"), "value": value})).collect();
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "gen", "labels": labels, "annotations": {"kube-once.io/run": "migrate"}},
            "extra": extra,
            "spec": {"selector": {"matchLabels": {"app": "gen"}}, "template": {
                "metadata": {"labels": {"app": "gen"}},
                "spec": {"containers": [{"name": "app", "image": "app:1", "args": env.iter().map(|e| e["value"].clone()).collect::<Vec<_>>(), "env": env}]},
            }},
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// The mutated Deployment, written by preview, reads back unchanged
        /// in PyYAML (YAML 1.1, like kubectl), in a YAML 1.2 reader and in
        /// kube-once's own reader.
        #[test]
        fn preview_output_reads_back_unchanged_in_pyyaml(
            labels in prop::collection::btree_map(string(), string(), 0..6),
            env in prop::collection::vec(string(), 0..8),
            extra in tree(),
        ) {
            reads_back(&deployment(labels, env, extra))?;
        }
    }

    /// A float that a fast but inexact reader takes one unit in the last
    /// place off (found by the property above).
    #[test]
    fn a_subnormal_float_reads_back_exactly() {
        let extra = json!({"yes": 1.31006847471334e-309});
        reads_back(&deployment(Default::default(), Vec::new(), extra)).unwrap();
    }

    fn reads_back(input: &Value) -> Result<(), TestCaseError> {
        let expected = core::mutate(input, None, &Config::default()).unwrap().object;
        let run = preview(&["-f", "-", "-o", "yaml"], Some(&serde_json::to_string(input).unwrap()));
        prop_assert_eq!(run.code, 0, "{}", run.stderr);
        let ours: Vec<Value> = parts(&run.stdout).into_iter().filter_map(|(_, v)| v).collect();
        prop_assert!(ours.len() == 1 && same(&ours[0], &expected), "kube-once reads back {:?}\n{}", ours, run.stdout);
        // A YAML 1.2 reader (serde_yaml_ng, libyaml's parser) agrees.
        let yaml12: Value = serde_yaml_ng::from_str(&run.stdout).unwrap();
        prop_assert!(same(&yaml12, &expected), "YAML 1.2 reads back {}\n{}", yaml12, run.stdout);
        let mut guard = PYYAML.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let pyyaml = guard.get_or_insert_with(PyYaml::start).read(&run.stdout);
        prop_assert!(same(&pyyaml, &json!([expected])), "PyYAML reads back {}\n---\n{}", pyyaml, run.stdout);
        Ok(())
    }
}

// ------------------------------------------------- the CLI on examples/

/// The CLI on the documented example: each output format against the core.
mod cli {
    use super::*;

    fn mutate(object: &Value) -> core::Mutation {
        core::mutate(object, None, &Config::default()).unwrap_or_else(|refusal| panic!("refused: {refusal}"))
    }

    #[test]
    fn yaml_output_is_every_document_with_deployments_mutated() {
        let Run { code, stdout, stderr } = preview(&["-f", "examples/superset.yaml", "-o", "yaml"], None);
        assert_eq!(code, 0, "{stderr}");
        let documents = kube_once_core::parse_documents(&stdout).unwrap();
        let input = kube_once_core::parse_documents(
            &std::fs::read_to_string(support::repo().join("examples/superset.yaml")).unwrap(),
        )
        .unwrap();
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0], input[0], "the Secret passes through unchanged");
        assert_eq!(documents[1], mutate(&input[1]).object);
        assert!(stderr.contains("warning: Deployment analytics/superset:"), "{stderr}");
        // What a GitOps user commits admits with no change.
        assert!(mutate(&documents[1]).patch.0.is_empty());
    }

    #[test]
    fn patch_output_applies_to_the_input() {
        let Run { code, stdout, stderr } = preview(&["-f", "examples/superset.yaml", "-o", "patch"], None);
        assert_eq!(code, 0, "{stderr}");
        let items: Vec<Value> = serde_json::from_str(&stdout).unwrap();
        assert_eq!((items[0]["kind"].as_str(), items[0]["name"].as_str()), (Some("Deployment"), Some("superset")));
        let patch: json_patch::Patch = serde_json::from_value(items[0]["patch"].clone()).unwrap();
        let input = kube_once_core::parse_documents(
            &std::fs::read_to_string(support::repo().join("examples/superset.yaml")).unwrap(),
        )
        .unwrap();
        let mut object = input[1].clone();
        json_patch::patch(&mut object, &patch).unwrap();
        assert_eq!(object, mutate(&input[1]).object);
    }

    #[test]
    fn diff_output_is_colored_on_request() {
        let Run { code, stdout: plain, .. } = preview(&["-f", "examples/superset.yaml", "-o", "diff"], None);
        assert_eq!(code, 1, "differences exit 1, like kubectl diff");
        assert!(
            plain.starts_with("--- a/deployment/analytics/superset\n+++ b/deployment/analytics/superset\n"),
            "{plain}"
        );
        assert!(plain.lines().any(|l| l.starts_with('+') && l[1..].trim() == "- name: kube-once-install"), "{plain}");
        assert!(!plain.contains('\x1b'), "no colour when not asked and not a terminal");
        let Run { stdout: colored, .. } =
            preview(&["-f", "examples/superset.yaml", "-o", "diff", "--color", "always"], None);
        assert!(colored.contains("\x1b[32m+"), "{colored}");
    }

    #[test]
    fn config_file_is_used_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, "toolsImage: registry.internal/tools:1\n").unwrap();
        let Run { code, stdout, stderr } =
            preview(&["-f", "examples/superset.yaml", "-o", "yaml", "--config", config.to_str().unwrap()], None);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("image: registry.internal/tools:1"), "{stdout}");

        std::fs::write(&config, "toolsImag: x\n").unwrap();
        let Run { code, stderr, .. } =
            preview(&["-f", "examples/superset.yaml", "--config", config.to_str().unwrap()], None);
        assert_eq!(code, 1);
        assert!(stderr.contains("unknown field `toolsImag`") && stderr.contains("config.yaml"), "{stderr}");
    }

    #[test]
    fn a_bad_annotation_exits_1_with_the_refusal() {
        let bad = std::fs::read_to_string(support::repo().join("examples/superset.yaml"))
            .unwrap()
            .replace("kube-once.io/timeout: 20m", "kube-once.io/timeout: twenty minutes");
        let Run { code, stdout, stderr } = preview(&["-f", "-"], Some(&bad));
        assert_eq!(code, 1);
        assert!(stdout.is_empty(), "nothing printed for a refused input: {stdout}");
        assert!(
            stderr.contains(
                "Deployment analytics/superset: annotation kube-once.io/timeout: \"twenty minutes\" is not a duration"
            ),
            "{stderr}"
        );
    }
}

// ------------------------------------------------------- POST /preview

mod server_preview {
    use super::*;
    use crate::support::server::call;
    use axum::http::{Method, StatusCode};
    use kube_once_server::{self as server, AppState};

    /// On a runtime with a single worker thread, `/healthz` is answered
    /// while a 512 KiB `/preview` body is still being read: the parse runs on
    /// the blocking pool, never on the async worker. (Big enough to take far
    /// longer than a `/healthz` answer; small enough that a debug build on a
    /// loaded machine reads it within the preview's own deadline.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_big_preview_body_never_holds_the_async_worker() {
        let state = AppState::new(Config::default());
        let mut body = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  items:\n");
        while body.len() < 512 * 1024 {
            body.push_str("    - [a, {b: c}, \"0644\"]\n");
        }
        let preview = tokio::spawn(call(server::preview_router(state.clone()), Method::POST, "/preview", body));
        tokio::task::yield_now().await;
        let (status, text) = call(server::router(state.clone()), Method::GET, "/healthz", String::new()).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "ok\n"));
        assert!(!preview.is_finished(), "/healthz must be answered while the preview body is still being read");
        let (status, text) = preview.await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains("no workload kube-once handles in the body (1 document(s))"), "{text}");
    }

    #[tokio::test]
    async fn hostile_bodies_get_400_with_the_reason() {
        let state = AppState::new(Config::default());
        let mut laughs = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..12 {
            laughs.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(", ")));
        }
        for (body, reason) in [
            ("[".repeat(100 * 1024), "nested deeper than 200 levels"),
            (laughs, "billion laughs"),
            (DUPLICATE_NAME.to_owned(), "document 1 (line 6): duplicate key \"name\""),
        ] {
            let (status, text) = call(server::preview_router(state.clone()), Method::POST, "/preview", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
            assert!(text.contains(reason), "expected `{reason}` in `{text}`");
        }
    }

    /// As `preview`: a duplicate key in a workload kube-once leaves alone
    /// passes through (with a warning), one it would rewrite is refused.
    #[tokio::test]
    async fn duplicate_keys_pass_through_untouched_workloads() {
        let state = AppState::new(Config::default());
        let plain =
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: plain\n  labels: {app: x, app: z}\nspec: {}\n";
        let (status, text) =
            call(server::preview_router(state.clone()), Method::POST, "/preview?format=yaml", plain.to_owned()).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, plain));
        let (status, text) =
            call(server::preview_router(state.clone()), Method::POST, "/preview?format=json", plain.to_owned()).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        let warnings = answer["warnings"].as_array().unwrap();
        assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("duplicate key \"app\"")), "{answer}");
        let (status, text) =
            call(server::preview_router(state), Method::POST, "/preview?format=yaml", DUPLICATE_NAME.to_owned()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains("document 1 (line 6): duplicate key \"name\""), "{text}");
    }

    /// `?format=yaml` is `kube-once preview -o yaml`: the other documents of
    /// the body come back byte for byte.
    #[tokio::test]
    async fn yaml_format_is_the_cli_output() {
        let state = AppState::new(Config::default());
        let example = std::fs::read_to_string(support::repo().join("examples/superset.yaml")).unwrap();
        let (status, text) =
            call(server::preview_router(state), Method::POST, "/preview?format=yaml", example.clone()).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let cli = preview(&["-f", "examples/superset.yaml", "-o", "yaml"], None);
        assert_eq!(text, cli.stdout);
    }
}
