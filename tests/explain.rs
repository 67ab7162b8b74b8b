//! `kube-once explain` as a user runs it: the real binary, the chart rendered
//! by the real helm, the e2e corpus (tests/fixtures/e2e) and its namespaces.
//! Every corpus case gets the verdict and the reason its expectation says,
//! for CREATE and UPDATE; chart settings (opt-in namespaces, no
//! matchConditions) and failurePolicy change the verdict as they would in a
//! cluster.

// Helpers fail the test loudly, with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

// The e2e harness's corpus reader and its expectations, shared rather than copied.
#[allow(dead_code)]
#[path = "e2e/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "e2e/corpus.rs"]
mod corpus;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use corpus::Outcome;
use support::chart;

/// What `kube-once explain` printed and how it exited.
struct Explained {
    code: i32,
    /// The verdict line of the one Deployment, without `deployment NS/NAME: `.
    verdict: String,
    patch: Vec<String>,
    warnings: Vec<String>,
    stdout: String,
    stderr: String,
}

/// A chart rendered with `sets`: the whole stream as `helm template` printed
/// it, and the webhook's config file from its ConfigMap, both as files.
struct Rendered {
    _dir: tempfile::TempDir,
    chart: PathBuf,
    config: PathBuf,
}

fn render(sets: &[&str]) -> Rendered {
    let yaml = chart::helm_template(None, &[], sets).unwrap_or_else(|stderr| panic!("helm template failed:\n{stderr}"));
    let objects = chart::documents(&yaml);
    let config_map = chart::installed(&objects, "ConfigMap");
    let files: Vec<&Value> = config_map["data"].as_object().expect("the ConfigMap has data").values().collect();
    let [config] = files.as_slice() else { panic!("the chart's ConfigMap should hold one file: {config_map}") };
    let dir = tempfile::tempdir().unwrap();
    let (chart_path, config_path) = (dir.path().join("chart.yaml"), dir.path().join("config.yaml"));
    std::fs::write(&chart_path, &yaml).unwrap();
    std::fs::write(&config_path, config.as_str().expect("the config file is text")).unwrap();
    Rendered { _dir: dir, chart: chart_path, config: config_path }
}

fn namespaces() -> PathBuf {
    support::fixtures("e2e").join("namespaces.yaml")
}

fn explain(manifest: &Path, rendered: &Rendered, extra: &[&str]) -> Explained {
    explain_with(manifest, &rendered.chart, Some(&rendered.config), extra)
}

fn explain_with(manifest: &Path, configuration: &Path, config: Option<&Path>, extra: &[&str]) -> Explained {
    let mut command = Command::new(support::binary());
    command.arg("explain").arg("-f").arg(manifest).arg("--webhook-configuration").arg(configuration);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let output = command.args(extra).env_remove("KUBE_ONCE_CONFIG").output().expect("cannot run kube-once explain");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut lines = stdout.lines();
    let verdict = lines
        .next()
        .and_then(|line| line.strip_prefix("deployment "))
        .and_then(|line| line.split_once(": "))
        .map(|(_, verdict)| verdict.to_owned())
        .unwrap_or_default();
    let (mut patch, mut warnings) = (Vec::new(), Vec::new());
    for line in lines {
        if let Some(operation) = line.strip_prefix("  patch: ") {
            patch.push(operation.to_owned());
        } else if let Some(warning) = line.strip_prefix("  warning: ") {
            warnings.push(warning.to_owned());
        } else {
            panic!("unexpected line {line:?} in:\n{stdout}");
        }
    }
    Explained { code: output.status.code().unwrap_or(-1), verdict, patch, warnings, stdout, stderr }
}

/// Why each corpus case that must not be sent is not: words the reason must
/// contain. A new such case must say its reason here.
fn not_sent_reason(case: &str) -> &'static [&'static str] {
    match case {
        "kube-system" => &["namespaceSelector", "namespace kube-system", "kubernetes.io/metadata.name NotIn"],
        "ignored-namespace" => &["namespaceSelector", "namespace legacy", "kube-once.io/ignore NotIn (true)"],
        "not-annotated" | "no-annotations-at-all" => &["matchCondition kube-once-annotated is false"],
        other => panic!("corpus case {other} is not sent: add the words its reason must contain to not_sent_reason"),
    }
}

#[test]
fn every_corpus_case_gets_its_verdict_and_reason() {
    let rendered = render(&[]);
    let dir = corpus::fixtures_dir().join("corpus");
    let cases = corpus::load_all().unwrap();
    assert!(cases.len() >= 15, "the corpus shrank to {} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let manifest = dir.join(format!("{}.yaml", case.name));
        for operation in ["create", "update"] {
            let got = explain(
                &manifest,
                &rendered,
                &["--namespace-file", namespaces().to_str().unwrap(), "--operation", operation],
            );
            if let Err(problem) = check(case, &got) {
                wrong.push(format!(
                    "{} ({operation}): {problem}\nexit {}; stdout:\n{}stderr:\n{}",
                    case.name, got.code, got.stdout, got.stderr
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "explain disagrees with the corpus:\n\n{}", wrong.join("\n\n"));
}

fn check(case: &corpus::Case, got: &Explained) -> Result<(), String> {
    let expect = &case.expect;
    let ensure = |ok: bool, problem: String| if ok { Ok(()) } else { Err(problem) };
    if !expect.sent {
        ensure(got.code == 3, "a Deployment that is not sent exits 3".to_owned())?;
        ensure(got.verdict.starts_with("not sent to the webhook: "), "expected `not sent`".to_owned())?;
        for word in not_sent_reason(&case.name) {
            ensure(got.verdict.contains(word), format!("the reason should mention `{word}`"))?;
        }
        return Ok(());
    }
    match expect.outcome {
        Outcome::Refused => {
            ensure(got.code == 1, "a refused Deployment exits 1".to_owned())?;
            ensure(got.verdict.starts_with("sent, refused: "), "expected `sent, refused`".to_owned())?;
            for word in &expect.refusal {
                ensure(got.verdict.contains(word.as_str()), format!("the refusal should mention `{word}`"))?;
            }
            ensure(got.patch.is_empty() && got.warnings.is_empty(), "a refusal has no patch or warnings".to_owned())
        }
        Outcome::Patched => {
            ensure(got.code == 0, "an injected Deployment exits 0".to_owned())?;
            ensure(
                got.verdict == format!("sent, injected: a patch of {} operations", got.patch.len()),
                "expected `sent, injected` with one line per patch operation".to_owned(),
            )?;
            // `add /spec/template/spec/initContainers/2` touches /spec/template/spec/initContainers.
            let touches =
                |path: &str| got.patch.iter().any(|op| op.split_once(' ').is_some_and(|(_, p)| p.starts_with(path)));
            ensure(
                touches("/spec/template/metadata/annotations"),
                "the status annotation is part of every injection".to_owned(),
            )?;
            if expect.run_command.is_some() {
                ensure(touches("/spec/template/spec/initContainers"), "a run injects initContainers".to_owned())?;
            }
            if !expect.node_selector_keys.is_empty() {
                ensure(touches("/spec/template/spec/nodeSelector"), "a preset sets the nodeSelector".to_owned())?;
            }
            ensure(!expect.warnings || !got.warnings.is_empty(), "expected warnings".to_owned())
        }
        Outcome::Unchanged => {
            ensure(got.code == 0, "an unchanged Deployment exits 0".to_owned())?;
            ensure(got.verdict.starts_with("sent, allowed unchanged"), "expected `sent, allowed unchanged`".to_owned())
        }
    }
}

fn corpus_manifest(name: &str) -> PathBuf {
    corpus::fixtures_dir().join("corpus").join(format!("{name}.yaml"))
}

/// `webhook.namespaceSelection=opt-in`: only namespaces labelled
/// kube-once.io/enabled=true are sent, which --namespace-labels gives.
#[test]
fn opt_in_namespaces_need_their_label() {
    let rendered = render(&["webhook.namespaceSelection=opt-in"]);
    let manifest = corpus_manifest("django");
    let without = explain(&manifest, &rendered, &["--namespace-labels", "team=web"]);
    assert_eq!(without.code, 3, "{}{}", without.stdout, without.stderr);
    assert_eq!(
        without.verdict,
        "not sent to the webhook: namespaceSelector does not select namespace apps: requirement `kube-once.io/enabled In (true)` is not met: it has no label kube-once.io/enabled"
    );
    let with = explain(&manifest, &rendered, &["--namespace-labels", "team=web,kube-once.io/enabled=true"]);
    assert_eq!(with.code, 0, "{}{}", with.stdout, with.stderr);
    assert!(with.verdict.starts_with("sent, injected"), "{}", with.stdout);
}

/// A kustomize overlay that installs the plain manifests in another
/// namespace renames the Namespace object but not the name in the
/// namespaceSelector: the Namespace's kube-once.io/ignore label keeps the
/// webhook's own namespace out all the same.
#[test]
fn the_webhooks_own_namespace_stays_excluded_under_a_kustomize_namespace_override() {
    let overlay = support::fixtures("chart").join("overlay-platform");
    let output = chart::run(&support::env::tool("KUBE_ONCE_KUBECTL"), ["kustomize".as_ref(), overlay.as_os_str()]);
    assert!(output.status.success(), "kubectl kustomize failed:\n{}", chart::text(&output.stderr));
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, &output.stdout).unwrap();
    let manifest = dir.path().join("deploy.yaml");
    let django = std::fs::read_to_string(corpus_manifest("django")).unwrap();
    std::fs::write(&manifest, django.replace("namespace: apps", "namespace: platform")).unwrap();
    let got = explain_with(&manifest, &rendered, None, &["--namespace-file", rendered.to_str().unwrap()]);
    assert_eq!(got.code, 3, "{}{}", got.stdout, got.stderr);
    assert!(
        got.verdict.starts_with("not sent to the webhook: namespaceSelector does not select namespace platform"),
        "{}",
        got.stdout
    );
}

/// `webhook.matchConditions=false`: every Deployment is sent; one without
/// kube-once.io/ annotations comes back unchanged.
#[test]
fn without_match_conditions_unannotated_deployments_are_sent_and_unchanged() {
    let rendered = render(&["webhook.matchConditions=false"]);
    let got =
        explain(&corpus_manifest("not-annotated"), &rendered, &["--namespace-file", namespaces().to_str().unwrap()]);
    assert_eq!(got.code, 0, "{}{}", got.stdout, got.stderr);
    assert_eq!(got.verdict, "sent, allowed unchanged: no kube-once.io/ annotation asks for anything");
}

/// A matchCondition that fails to evaluate: failurePolicy Fail rejects the
/// write (exit 1), Ignore stores it unmutated (exit 3).
#[test]
fn a_failing_match_condition_follows_the_failure_policy() {
    let dir = tempfile::tempdir().unwrap();
    let configuration = |policy: &str| {
        let path = dir.path().join(format!("{policy}.json"));
        let document = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "kube-once"},
            "webhooks": [{"name": "deployments.kube-once.io", "failurePolicy": policy,
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}],
                "matchConditions": [{"name": "unguarded", "expression": "object.metadata.labels['tier'] == 'web'"}]}]});
        std::fs::write(&path, document.to_string()).unwrap();
        path
    };
    let manifest = corpus_manifest("django");
    let fail = explain_with(&manifest, &configuration("Fail"), None, &[]);
    assert_eq!(fail.code, 1, "{}{}", fail.stdout, fail.stderr);
    assert!(
        fail.verdict.starts_with("rejected by the API server: matchCondition unguarded failed to evaluate"),
        "{}",
        fail.stdout
    );
    assert!(fail.verdict.ends_with("and failurePolicy Fail rejects the request"), "{}", fail.stdout);
    let ignore = explain_with(&manifest, &configuration("Ignore"), None, &[]);
    assert_eq!(ignore.code, 3, "{}{}", ignore.stdout, ignore.stderr);
    assert!(ignore.verdict.ends_with("and failurePolicy Ignore skips the webhook"), "{}", ignore.stdout);
}

/// Inputs that cannot be explained say what is wrong and how to fix it.
#[test]
fn unusable_inputs_are_reported() {
    let rendered = render(&[]);
    let manifest = corpus_manifest("django");
    // The manifest given as the webhook configuration: no MutatingWebhookConfiguration.
    let no_configuration = explain_with(&manifest, &manifest, None, &[]);
    assert_eq!(no_configuration.code, 1);
    assert!(no_configuration.stderr.contains("no MutatingWebhookConfiguration"), "{}", no_configuration.stderr);
    let wrong_name = explain(&manifest, &rendered, &["--webhook", "sidecar.istio.io"]);
    assert_eq!(wrong_name.code, 1);
    assert!(wrong_name.stderr.contains("the webhooks there are: deployments.kube-once.io"), "{}", wrong_name.stderr);
    let missing_namespace =
        explain(&corpus_manifest("kube-system"), &rendered, &["--namespace-file", rendered.chart.to_str().unwrap()]);
    assert_eq!(missing_namespace.code, 1);
    assert!(
        missing_namespace.stderr.contains("no Namespace kube-system in --namespace-file"),
        "{}",
        missing_namespace.stderr
    );
    let conflicting = explain(&manifest, &rendered, &["-n", "data"]);
    assert_eq!(conflicting.code, 1);
    assert!(conflicting.stderr.contains("its manifest says namespace apps, -n says data"), "{}", conflicting.stderr);
    let bad_labels = explain(&manifest, &rendered, &["--namespace-labels", "team"]);
    assert_eq!(bad_labels.code, 64, "a usage error exits 64 (docs/cli.md): {}", bad_labels.stderr);
    let no_deployment = explain_with(&rendered.config, &rendered.chart, None, &[]);
    assert_eq!(no_deployment.code, 1);
    assert!(
        no_deployment.stderr.contains("no workload kube-once handles in ")
            && no_deployment.stderr.contains("it handles apps/v1 Deployment, apps/v1 StatefulSet"),
        "{}",
        no_deployment.stderr
    );
}

/// Every kind is explained by its own name, its rules matched by its own
/// group and resource; what kube-once would pass over is said first. The
/// webhook configuration is written here (every kind in its rules), so this
/// holds whatever the chart sends.
#[test]
fn every_kind_is_explained_under_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<Value> = kube_once_core::Kind::ALL
        .iter()
        .map(|kind| {
            let (group, version) = kind.api_version().rsplit_once('/').unwrap();
            json!({"operations": ["CREATE", "UPDATE"], "apiGroups": [group], "apiVersions": [version], "resources": [kind.resource()], "scope": "Namespaced"})
        })
        .collect();
    let configuration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "kube-once"},
        "webhooks": [{"name": "deployments.kube-once.io", "rules": rules, "failurePolicy": "Fail", "sideEffects": "None",
                      "admissionReviewVersions": ["v1"], "clientConfig": {"service": {"name": "kube-once", "namespace": "kube-once"}}}],
    });
    let configuration_path = dir.path().join("webhook.json");
    std::fs::write(&configuration_path, configuration.to_string()).unwrap();
    let core = support::fixtures("core");
    let mut manifest = String::new();
    for case in ["statefulset", "daemonset", "job", "cronjob", "rollout"] {
        manifest.push_str("---\n");
        manifest.push_str(&std::fs::read_to_string(core.join(format!("{case}.input.yaml"))).unwrap());
    }
    manifest.push_str("---\napiVersion: apps/v1beta2\nkind: Deployment\nmetadata:\n  name: old\n  annotations:\n    kube-once.io/run: x\n");
    let manifest_path = dir.path().join("workloads.yaml");
    std::fs::write(&manifest_path, manifest).unwrap();
    // explain_with reads one workload; this output has several, read here.
    let output = Command::new(support::binary())
        .arg("explain")
        .arg("-f")
        .arg(&manifest_path)
        .arg("--webhook-configuration")
        .arg(&configuration_path)
        .args(["--namespace-labels", ""])
        .env_remove("KUBE_ONCE_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("warning: Deployment old (apps/v1beta2): kube-once does not handle this kind, so it ignores kube-once.io/run"),
        "{stdout}"
    );
    for (kind, name, base) in [
        ("statefulset", "shop/ledger", "/spec/template/"),
        ("daemonset", "observability/agent", "/spec/template/"),
        ("job", "shop/seed", "/spec/template/"),
        ("cronjob", "shop/report", "/spec/jobTemplate/spec/template/"),
        ("rollout", "shop/storefront", "/spec/template/"),
    ] {
        let at = lines
            .iter()
            .position(|line| line.starts_with(&format!("{kind} {name}: ")))
            .unwrap_or_else(|| panic!("no {kind} in:\n{stdout}"));
        assert!(lines[at].contains(": sent, injected: a patch of "), "{}", lines[at]);
        let patch: Vec<&&str> = lines[at + 1..].iter().take_while(|line| line.starts_with("  patch: ")).collect();
        assert!(!patch.is_empty() && patch.iter().all(|line| line.contains(&format!(" {base}"))), "{kind}: {patch:?}");
    }
}

/// The chart's own rules and matchCondition, for every kind: each is sent
/// and injected at CREATE; a Job's UPDATE, whose pod template cannot change,
/// is not sent at all.
#[test]
fn the_rendered_chart_sends_every_kind_and_a_job_at_create_only() {
    let rendered = render(&[]);
    let core = support::fixtures("core");
    for (case, kind) in [
        ("statefulset", "statefulset"),
        ("daemonset", "daemonset"),
        ("job", "job"),
        ("cronjob", "cronjob"),
        ("rollout", "rollout"),
    ] {
        let manifest = core.join(format!("{case}.input.yaml"));
        let output = Command::new(support::binary())
            .arg("explain")
            .arg("-f")
            .arg(&manifest)
            .arg("--webhook-configuration")
            .arg(&rendered.chart)
            .arg("--config")
            .arg(&rendered.config)
            .args(["--namespace-labels", "team=web", "--operation", "create"])
            .env_remove("KUBE_ONCE_CONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let first = stdout.lines().next().unwrap_or_default();
        assert!(first.starts_with(&format!("{kind} ")) && first.contains(": sent, injected: "), "{case}: {stdout}");
    }
    let job =
        explain(&core.join("job.input.yaml"), &rendered, &["--namespace-labels", "team=web", "--operation", "update"]);
    assert_eq!(job.code, 3, "{}{}", job.stdout, job.stderr);
    assert!(job.stdout.starts_with("job shop/seed: not sent to the webhook: "), "{}", job.stdout);
}
