//! `kube-once injected` over what `kubectl get deploy -A -o yaml` prints: a
//! `List` whose injected Deployments are the ones to clean up after an
//! uninstall.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = support::fixtures("core").join(name);
    kube_once_core::parse_documents(&std::fs::read_to_string(&path).unwrap()).unwrap().remove(0)
}

fn injected(input: &str) -> (String, String, bool) {
    let mut child = Command::new(support::binary())
        .args(["injected", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap(), output.status.success())
}

#[test]
fn lists_only_workloads_that_carry_the_injection() {
    let mut injected_one = fixture("already-injected.input.yaml");
    injected_one["metadata"]["namespace"] = json!("shop");
    let mut plain = fixture("no-init-containers.input.yaml");
    plain["metadata"]["namespace"] = json!("shop");
    plain["metadata"]["name"] = json!("plain");
    let mut statefulset = injected_one.clone();
    statefulset["kind"] = json!("StatefulSet");
    statefulset["metadata"]["name"] = json!("db");
    // Not served since Kubernetes 1.16: no webhook ever saw it.
    let mut old = injected_one.clone();
    old["apiVersion"] = json!("apps/v1beta2");
    let cron = fixture("cronjob-update.old.yaml");
    let list =
        json!({"apiVersion": "v1", "kind": "List", "items": [plain, injected_one.clone(), statefulset, old, cron]});

    let (stdout, _, ok) = injected(&serde_json::to_string(&list).unwrap());
    assert!(ok);
    let name = injected_one["metadata"]["name"].as_str().unwrap();
    assert_eq!(stdout, format!("shop/{name}\nstatefulset shop/db\ncronjob shop/report\n"));
}

#[test]
fn says_so_when_nothing_is_left() {
    let (stdout, stderr, ok) = injected("apiVersion: v1\nkind: List\nitems: []\n");
    assert!(ok);
    assert_eq!(stdout, "");
    assert!(stderr.contains("no workload carries kube-once.io/status"), "{stderr}");
}
