//! `preview -o yaml` edits the documents it changes and keeps every other
//! byte: on every corpus file (tests/fixtures/manifests) as it is, with
//! every workload of every kind annotated in its own YAML, and annotated as
//! JSON, input and output differ only by added lines, except the cases
//! docs/preview.md lists (tests/support/edits.rs); no document is written
//! anew; and each output reads back as exactly the mutated object.

// Test helpers outside #[test] fns: a failed expectation should panic here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kube_once_core::yaml::edit::{Rewrite, edit};
use kube_once_core::yaml::{Limits, read_stream};
use kube_once_core::{self as core, Config};
use serde_json::Value;

fn corpus() -> Vec<(String, String)> {
    support::corpus::manifest_files()
        .into_iter()
        .map(|path| (path.file_name().unwrap().to_str().unwrap().to_owned(), std::fs::read_to_string(&path).unwrap()))
        .collect()
}

/// `kube-once preview -f - -o yaml` of `text` (the real binary).
fn preview_yaml(name: &str, text: &str) -> String {
    let run =
        support::process::run_in(&support::binary(), support::repo(), &["preview", "-f", "-", "-o", "yaml"], text);
    assert!(run.code == 0, "{name}: {}", run.stderr);
    run.stdout
}

/// The values of a stream's documents.
fn values(text: &str) -> Vec<Value> {
    read_stream(text, &Limits::default()).unwrap().iter().filter_map(|d| d.to_json().unwrap()).collect()
}

/// `object` with `kube-once.io/run` set, as a user opts in.
fn annotate(object: &Value) -> Value {
    support::corpus::with_run_annotation(object)
}

/// A workload the core can opt in: all but a Rollout with `spec.workloadRef`,
/// which has no pod template of its own and is refused (tests/preview.rs
/// holds that refusal).
fn can_opt_in(object: &Value) -> bool {
    core::is_workload(object) && core::mutate(&annotate(object), None, &Config::default()).is_ok()
}

/// What `preview` must print for `input` (as read): each workload mutated.
fn expected(input: &[Value]) -> Vec<Value> {
    input
        .iter()
        .map(|value| match core::is_workload(value) && support::corpus::has_contract_annotation(value) {
            true => core::mutate(value, None, &Config::default()).unwrap().object,
            false => value.clone(),
        })
        .collect()
}

/// The checks of this file on one stream: each document's output adds
/// lines to its input only, or is one of the documented rewrites (what
/// changes is an alias; characters YAML readers disagree on); the output reads back as the mutated objects.
/// Returns the documents changed, and those written anew.
fn check(name: &str, input: &str) -> (usize, usize) {
    let output = preview_yaml(name, input);
    let keep = || {
        let dir = std::env::temp_dir().join("kube-once-preview-edits");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.in")), input).unwrap();
        std::fs::write(dir.join(format!("{name}.out")), &output).unwrap();
        format!("(input and output kept in {})", dir.display())
    };
    let expected = expected(&values(input));
    assert!(values(&output) == expected, "{name}: the output must read back as the mutated objects {}", keep());
    let preview = core::preview(input, &Config::default(), &Limits::default()).unwrap();
    let outputs = read_stream(&output, &Limits::default()).unwrap();
    assert_eq!(outputs.len(), preview.documents.len(), "{name}: documents stay one for one");
    let mut rewritten = 0;
    for (document, out) in preview.documents.iter().zip(&outputs) {
        match preview.edited(document) {
            Err((Rewrite::Aliases | Rewrite::Characters, _)) => rewritten += 1,
            Err((why, _)) => panic!("{name}: document {} is written anew: {why} {}", document.document.number, keep()),
            Ok(_) => {
                let (before, after) = (&input[document.document.span.clone()], &output[out.span.clone()]);
                let at = format!("{name} document {}", document.document.number);
                if let Err(hunk) = support::edits::only_added_lines(&at, before, after) {
                    panic!("{hunk}\n{}", keep());
                }
            }
        }
    }
    (preview.documents.iter().filter(|d| d.changed()).count(), rewritten)
}

#[test]
fn corpus_files_as_they_are_are_only_added_to() {
    let (mut changed, mut rewritten) = (0, 0);
    for (name, text) in corpus() {
        let (c, r) = check(&name, &text);
        (changed, rewritten) = (changed + c, rewritten + r);
    }
    assert!(changed >= 6, "only {changed} documents changed: the quirks went missing?");
    assert_eq!(rewritten, 0, "documents written anew");
}

/// Every workload of every kind opted in by editing its own text, so the
/// preview meets each file's own indentation, comments and styles.
#[test]
fn corpus_workloads_annotated_in_their_yaml_are_only_added_to() {
    let (mut changed, mut rewritten) = (0, 0);
    for (name, text) in corpus() {
        let mut stream = String::new();
        for document in read_stream(&text, &Limits::default()).unwrap() {
            let part = &text[document.span.clone()];
            match document.to_json().unwrap() {
                Some(value) if can_opt_in(&value) => {
                    stream.push_str(&edit(part, &value, &annotate(&value)).unwrap());
                }
                _ => stream.push_str(part),
            }
        }
        let (c, r) = check(&name, &stream);
        (changed, rewritten) = (changed + c, rewritten + r);
    }
    assert!(changed >= 100, "only {changed} workloads annotated: the corpus shrank?");
    assert_eq!(rewritten, 0, "documents written anew");
}

/// The same as JSON documents (pretty-printed, as `kubectl get -o json`).
#[test]
fn corpus_workloads_annotated_as_json_are_only_added_to() {
    let (mut changed, mut rewritten) = (0, 0);
    for (name, text) in corpus() {
        let workloads: Vec<Value> = values(&text).into_iter().filter(can_opt_in).collect();
        if workloads.is_empty() {
            continue;
        }
        let stream = workloads
            .iter()
            .map(|workload| serde_json::to_string_pretty(&annotate(workload)).unwrap() + "\n")
            .collect::<Vec<_>>()
            .join("---\n");
        let (c, r) = check(&name, &stream);
        (changed, rewritten) = (changed + c, rewritten + r);
    }
    assert!(changed >= 100, "only {changed} workloads annotated: the corpus shrank?");
    assert_eq!(rewritten, 0, "JSON has no aliases: nothing is written anew");
}
