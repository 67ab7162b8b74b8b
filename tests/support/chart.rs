//! The Helm chart (charts/kube-once) as the chart tests render and inspect it
//! with the real tools from scripts/test.sh: `helm template` and `helm lint`,
//! selectors over the rendered objects, strict schema validation.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::env::tool;
use super::repo;

/// The release name and namespace of the README's install line.
pub const RELEASE: &str = "kube-once";
pub const NAMESPACE: &str = "kube-once";

/// Kinds from CRDs, which the official Kubernetes schemas do not contain.
/// kubernetes-validate would only warn "couldn't find schema" for them, so
/// they are kept away from it and checked by [`check_crd_object`] instead;
/// any other kind missing from the schemas fails the test.
pub const CRD_KINDS: &[(&str, &str)] = &[
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
];

pub fn chart_dir() -> PathBuf {
    repo().join("charts/kube-once")
}

/// Runs `program` in the repository and returns its output, whatever its exit status.
pub fn run<I, S>(program: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `helm template` of the chart (release and namespace of the README) with a
/// values file, the cluster's extra APIs and `--set` pairs; Ok(stdout) or Err(stderr).
pub fn helm_template(values: Option<&Path>, apis: &[&str], sets: &[&str]) -> Result<String, String> {
    let mut args = vec!["template".into(), RELEASE.into(), chart_dir().into_os_string()];
    args.extend(["--namespace".into(), NAMESPACE.into()]);
    if let Some(values) = values {
        args.extend(["--values".into(), values.as_os_str().to_owned()]);
    }
    for api in apis {
        args.extend(["--api-versions".into(), (*api).into()]);
    }
    for set in sets {
        args.extend(["--set".into(), (*set).into()]);
    }
    let output = run::<_, std::ffi::OsString>(&tool("KUBE_ONCE_HELM"), args);
    if output.status.success() { Ok(text(&output.stdout)) } else { Err(text(&output.stderr)) }
}

/// The objects [`helm_template`] renders; the test fails with helm's error if it fails.
pub fn render(values: Option<&Path>, apis: &[&str], sets: &[&str]) -> Vec<Value> {
    let yaml = helm_template(values, apis, sets)
        .unwrap_or_else(|stderr| panic!("helm template {values:?} {apis:?} {sets:?} failed:\n{stderr}"));
    documents(&yaml)
}

/// `helm lint --strict` of the chart with a values file and `--set` pairs;
/// the test fails with helm's report if it does not pass.
pub fn assert_lint_passes(case: &str, values: &Path, sets: &[&str]) {
    let mut args = vec!["lint".into(), "--strict".into(), chart_dir().into_os_string()];
    args.extend(["--namespace".into(), NAMESPACE.into(), "--values".into(), values.as_os_str().to_owned()]);
    for set in sets {
        args.extend(["--set".into(), (*set).into()]);
    }
    let output = run::<_, std::ffi::OsString>(&tool("KUBE_ONCE_HELM"), args);
    assert!(
        output.status.success(),
        "helm lint --strict failed for {case}:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// Every non-empty document of a multi-document YAML stream, as JSON values.
pub fn documents(yaml: &str) -> Vec<Value> {
    super::yaml::documents(yaml, "rendered YAML").unwrap_or_else(|error| panic!("{error:#}\n{yaml}"))
}

// ---------------------------------------------------------------- selectors

pub fn all_of<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|object| object["kind"] == kind).collect()
}

/// A Helm hook (`helm test` and the like): rendered, but not installed.
pub fn is_hook(object: &Value) -> bool {
    object["metadata"]["annotations"]["helm.sh/hook"].is_string()
}

/// The objects a `helm install` creates (no hooks).
pub fn without_hooks(objects: Vec<Value>) -> Vec<Value> {
    objects.into_iter().filter(|object| !is_hook(object)).collect()
}

/// The one object of `kind` that is installed (not a hook).
pub fn installed<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = all_of(objects, kind).into_iter().filter(|object| !is_hook(object)).collect();
    match found.as_slice() {
        [object] => object,
        _ => panic!("expected exactly one installed {kind}, found {}", found.len()),
    }
}

pub fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all_of(objects, kind)
        .into_iter()
        .find(|object| object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

/// The one webhook of the MutatingWebhookConfiguration.
pub fn webhook(objects: &[Value]) -> &Value {
    let configuration = installed(objects, "MutatingWebhookConfiguration");
    match configuration["webhooks"].as_array().map(Vec::as_slice) {
        Some([webhook]) => webhook,
        _ => panic!("expected exactly one webhook in {configuration}"),
    }
}

/// The pod spec of the webhook's Deployment.
pub fn pod_spec(objects: &[Value]) -> &Value {
    &installed(objects, "Deployment")["spec"]["template"]["spec"]
}

pub fn server_container(objects: &[Value]) -> &Value {
    &pod_spec(objects)["containers"][0]
}

pub fn server_args(objects: &[Value]) -> Vec<String> {
    server_container(objects)["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|arg| arg.as_str().expect("string arg").to_owned())
        .collect()
}

/// The webhook's configuration file, from its ConfigMap.
pub fn config_file(objects: &[Value]) -> Value {
    let config_map = named(objects, "ConfigMap", "kube-once-config");
    let yaml = config_map["data"]["config.yaml"].as_str().expect("config.yaml in the ConfigMap");
    serde_yaml_ng::from_str(yaml).expect("config.yaml is YAML")
}

// ---------------------------------------------------------------- validation

pub fn is_crd_kind(object: &Value) -> bool {
    CRD_KINDS.iter().any(|(api_version, kind)| object["apiVersion"] == *api_version && object["kind"] == *kind)
}

/// What can be checked of CRD objects without their schemas: the fields the
/// chart relies on, with the right shapes.
pub fn check_crd_object(object: &Value) {
    assert!(object["metadata"]["name"].is_string() && object["metadata"]["namespace"] == NAMESPACE, "{object}");
    let spec = &object["spec"];
    match object["kind"].as_str() {
        Some("Issuer") => {
            let kinds = ["selfSigned", "ca"].iter().filter(|kind| spec[**kind].is_object()).count();
            assert_eq!(kinds, 1, "an Issuer is either selfSigned or ca: {object}");
            if spec["ca"].is_object() {
                assert!(spec["ca"]["secretName"].is_string(), "{object}");
            }
        }
        Some("Certificate") => {
            assert!(spec["secretName"].is_string(), "{object}");
            assert!(spec["issuerRef"]["name"].is_string(), "{object}");
            for duration in ["duration", "renewBefore"] {
                let value = spec[duration].as_str().unwrap_or_else(|| panic!("{duration} in {object}"));
                assert!(value.ends_with('h'), "{duration} must be a Go duration: {object}");
            }
            assert!(spec["isCA"] == true || spec["dnsNames"].as_array().is_some_and(|names| !names.is_empty()));
        }
        Some("ServiceMonitor") => {
            assert!(spec["selector"]["matchLabels"].is_object(), "{object}");
            let endpoints = spec["endpoints"].as_array().expect("endpoints");
            assert!(!endpoints.is_empty() && endpoints.iter().all(|e| e["port"].is_string()), "{object}");
        }
        Some("PrometheusRule") => {
            let groups = spec["groups"].as_array().expect("groups");
            assert!(!groups.is_empty(), "{object}");
            for rule in groups.iter().flat_map(|group| group["rules"].as_array().into_iter().flatten()) {
                assert!(rule["alert"].is_string() && rule["expr"].is_string(), "{rule}");
            }
        }
        _ => panic!("no check for CRD object {object}"),
    }
}

/// Validates every object of every case with `kubernetes-validate --strict`
/// against Kubernetes `version`, in one call; CRD kinds get
/// [`check_crd_object`] instead. Every object must be validated, none skipped.
pub fn validate_strictly(cases: Vec<(String, Vec<Value>)>, version: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    let mut expected_passes = 0;
    for (case, objects) in cases {
        let (crds, builtins): (Vec<Value>, Vec<Value>) = objects.into_iter().partition(is_crd_kind);
        crds.iter().for_each(check_crd_object);
        let path = dir.path().join(format!("{case}.yaml"));
        let yaml: String =
            builtins.iter().map(|object| format!("---\n{}", serde_yaml_ng::to_string(object).expect("YAML"))).collect();
        std::fs::write(&path, yaml).expect("write rendered objects");
        expected_passes += builtins.len();
        files.push(path.into_os_string());
    }
    let mut args = vec!["--strict".into(), "--kubernetes-version".into(), version.into()];
    args.extend(files);
    let output = run::<_, std::ffi::OsString>(&tool("KUBE_ONCE_KUBERNETES_VALIDATE"), args);
    let report = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "kubernetes-validate --strict for {version} failed:\n{report}");
    let problems: Vec<&str> = report.lines().filter(|line| !line.starts_with("INFO ")).collect();
    assert!(problems.is_empty(), "kubernetes-validate for {version} reported:\n{}", problems.join("\n"));
    let passes = report.lines().filter(|line| line.contains(" passed for resource ")).count();
    assert_eq!(passes, expected_passes, "every object must be validated, not skipped:\n{report}");
}

/// Rollouts against the Argo Rollouts CRD's own v1alpha1 schema
/// (tests/fixtures/schemas, with its source), as strictly as
/// kubernetes-validate --strict checks the Kubernetes kinds: a field the
/// schema does not name is an error, except where it preserves unknown fields.
const STRICT_ROLLOUT_CHECK: &str = r#"
import sys, yaml, jsonschema
crd = yaml.safe_load(open(sys.argv[1]))
schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")["schema"]["openAPIV3Schema"]
def strict(node):
    if isinstance(node, dict):
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
strict(schema)
for key in ("apiVersion", "kind"):
    schema["properties"].setdefault(key, {"type": "string"})
for path in sys.argv[2:]:
    for document in yaml.safe_load_all(open(path)):
        if document:
            jsonschema.validate(document, schema)
"#;

/// [`STRICT_ROLLOUT_CHECK`] over the YAML `files` with the Python of
/// scripts/test.sh (PyYAML, jsonschema); fails with the schema's complaint on stderr.
pub fn check_rollouts(files: &[PathBuf]) -> Output {
    let crd = super::fixtures("schemas").join("argo-rollouts-rollout-crd.yaml");
    Command::new(tool("KUBE_ONCE_PYTHON"))
        .arg("-c")
        .arg(STRICT_ROLLOUT_CHECK)
        .arg(crd)
        .args(files)
        .output()
        .expect("cannot run KUBE_ONCE_PYTHON")
}
