//! The chart on the clusters people have: OpenShift's assigned
//! user IDs, host networking and custom ports for private control planes,
//! namespace selection modes, the webhook configuration's metadata (AKS),
//! monitoring objects that follow the cluster's APIs, the `helm test` hooks,
//! and packaging. Every values file of tests/fixtures/chart-platforms/ is
//! linted with `helm lint --strict`, rendered with `helm template`, its
//! built-in objects validated by `kubernetes-validate --strict`, and every pod
//! checked against PSS `restricted`.
//!
//! These cases live apart from tests/fixtures/chart/ (tests/chart.rs) on
//! purpose: the OpenShift case writes `installSecurityContext` into the
//! webhook configuration file, and the monitoring case renders a
//! PrometheusRule, neither of which tests/chart.rs's matrix knows.
//!
//! Only std, serde and the real tools (KUBE_ONCE_HELM, KUBE_ONCE_KUBECTL,
//! KUBE_ONCE_KUBERNETES_VALIDATE, KUBE_ONCE_PROMTOOL from scripts/test.sh) and
//! the real server binary: nothing of the library's modules.

// Helpers outside #[test] functions are test code too: a failed expectation
// must stop the test with its message, which is what panics are for here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use support::chart::{
    NAMESPACE, RELEASE, all_of, chart_dir, config_file, documents as parse_documents, installed, pod_spec, run,
    server_args, server_container, text, webhook,
};
use support::env::tool;
use support::http::status_code;
use support::pss::restricted_violations;
use support::repo;
use support::serve::Serve;

/// kubernetes-validate's schemas for this version.
const KUBERNETES_VERSION: &str = "1.33.0";
const SERVICE_MONITOR_API: &str = "monitoring.coreos.com/v1/ServiceMonitor";
const PROMETHEUS_RULE_API: &str = "monitoring.coreos.com/v1/PrometheusRule";

/// Every values file of tests/fixtures/chart-platforms/, with the extra
/// APIs (`helm template --api-versions`) the cluster of that case serves.
const CASES: &[(&str, &[&str])] = &[
    ("openshift", &[]),
    ("host-network", &[]),
    ("port-10250", &[]),
    ("opt-in-namespaces", &[]),
    ("webhook-metadata", &[]),
    ("install-security-context", &[]),
    ("monitoring-full", &[SERVICE_MONITOR_API, PROMETHEUS_RULE_API]),
];

fn fixture(case: &str) -> PathBuf {
    repo().join("tests/fixtures/chart-platforms").join(format!("{case}.yaml"))
}

fn api_versions(case: &str) -> &'static [&'static str] {
    CASES.iter().find(|(name, _)| *name == case).map(|(_, apis)| *apis).unwrap_or_else(|| panic!("no case {case}"))
}

fn os(value: impl Into<OsString>) -> OsString {
    value.into()
}

fn render_with(values: Option<&Path>, apis: &[&str], sets: &[&str]) -> Vec<Value> {
    support::chart::render(values, apis, sets)
}

fn render(case: &str) -> Vec<Value> {
    render_with(Some(&fixture(case)), api_versions(case), &[])
}

fn render_defaults(apis: &[&str], sets: &[&str]) -> Vec<Value> {
    render_with(None, apis, sets)
}

// ------------------------------------------------------------ selectors --

fn test_hooks(objects: &[Value]) -> Vec<&Value> {
    objects.iter().filter(|object| object["metadata"]["annotations"]["helm.sh/hook"] == "test").collect()
}

fn test_hook<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    match test_hooks(objects).into_iter().filter(|object| object["kind"] == kind).collect::<Vec<_>>().as_slice() {
        [object] => object,
        found => panic!("expected exactly one helm test {kind}, found {}", found.len()),
    }
}

/// The value of `--name=value` in the server's arguments.
fn server_flag(objects: &[Value], name: &str) -> String {
    let prefix = format!("--{name}=");
    server_args(objects)
        .iter()
        .find_map(|arg| arg.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {prefix} in {:?}", server_args(objects)))
}

fn port_of(address: &str) -> u64 {
    address.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).unwrap_or_else(|| panic!("no port in {address}"))
}

/// Every pod spec the chart renders: Deployment templates and bare Pods.
fn pod_specs(objects: &[Value]) -> Vec<(String, &Value)> {
    objects
        .iter()
        .filter_map(|object| {
            let name = format!("{}/{}", object["kind"].as_str()?, object["metadata"]["name"].as_str()?);
            if object["kind"] == "Pod" {
                Some((name, &object["spec"]))
            } else {
                let spec = &object["spec"]["template"]["spec"];
                spec.is_object().then_some((name, spec))
            }
        })
        .collect()
}

/// Every path in `value` (and in YAML documents held in its strings, like
/// the ConfigMap's config file) where a key named `key` appears.
fn paths_of_key(value: &Value, key: &str, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (name, child) in map {
                let child_path = format!("{path}/{name}");
                if name == key {
                    found.push(child_path.clone());
                }
                paths_of_key(child, key, &child_path, found);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                paths_of_key(item, key, &format!("{path}/{index}"), found);
            }
        }
        Value::String(string) if string.contains('\n') => {
            if let Ok(document) = serde_yaml_ng::from_str::<Value>(string) {
                paths_of_key(&document, key, &format!("{path}(yaml)"), found);
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------- lint, validate --

#[test]
fn every_platform_fixture_is_in_the_matrix() {
    let files = support::fixture_names("chart-platforms", ".yaml");
    let mut cases: Vec<String> = CASES.iter().map(|(case, _)| (*case).to_owned()).collect();
    cases.sort();
    assert_eq!(files, cases, "add each tests/fixtures/chart-platforms/*.yaml to CASES");
}

#[test]
fn helm_lint_strict_passes_for_every_platform_case() {
    for (case, apis) in CASES {
        // `helm lint` cannot be told the cluster's APIs: force what auto
        // renders on a cluster that has them.
        let mut sets = Vec::new();
        if apis.contains(&SERVICE_MONITOR_API) {
            sets.push("metrics.serviceMonitor.enabled=true");
        }
        if apis.contains(&PROMETHEUS_RULE_API) {
            sets.push("metrics.prometheusRule.enabled=true");
        }
        support::chart::assert_lint_passes(case, &fixture(case), &sets);
    }
}

/// Every object of every case (installed objects and `helm test` hooks) in
/// one `kubernetes-validate --strict` call; CRD kinds get `check_crd_object`.
#[test]
fn rendered_objects_validate_strictly() {
    let cases = CASES.iter().map(|(case, _)| ((*case).to_owned(), render(case))).collect();
    support::chart::validate_strictly(cases, KUBERNETES_VERSION);
}

#[test]
fn every_pod_passes_pss_restricted_except_host_networking() {
    for (case, _) in CASES {
        let objects = render(case);
        let pods = pod_specs(&objects);
        assert!(pods.len() >= 2, "{case}: the webhook's pod template and the helm test Pod, got {}", pods.len());
        for (name, spec) in pods {
            let violations = restricted_violations(spec);
            let expected: &[&str] = if *case == "host-network" && name.starts_with("Deployment/") {
                &["pod: hostNetwork must not be true"]
            } else {
                &[]
            };
            assert_eq!(violations, expected, "{case}: {name}");
        }
    }
}

// ---------------------------------------------------- security contexts --

#[test]
fn openshift_mode_fixes_no_user_or_group_id_anywhere() {
    let objects = render("openshift");
    for key in ["runAsUser", "runAsGroup", "fsGroup", "supplementalGroups"] {
        let mut found = Vec::new();
        for object in &objects {
            paths_of_key(object, key, &format!("{}/{}", object["kind"], object["metadata"]["name"]), &mut found);
        }
        assert!(found.is_empty(), "OpenShift assigns {key}; the chart must not: {found:?}");
    }
    // What PSS restricted asks for stays, in the webhook and the test pod.
    for (name, spec) in pod_specs(&objects) {
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        let container = &spec["containers"][0]["securityContext"];
        assert_eq!(container["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(container["capabilities"]["drop"], json!(["ALL"]), "{name}");
    }
    // The injected kube-once-install container: the whole context, no UID.
    assert_eq!(
        config_file(&objects)["installSecurityContext"],
        json!({
            "runAsNonRoot": true,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        })
    );
}

#[test]
fn security_contexts_default_to_uid_65532_and_leave_the_install_context_to_the_core() {
    let objects = render_defaults(&[], &[]);
    let pod = pod_spec(&objects);
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        server_container(&objects)["securityContext"],
        json!({
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
            "runAsUser": 65532, "runAsGroup": 65532, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        })
    );
    assert!(config_file(&objects).get("installSecurityContext").is_none(), "unset: the core's built-in context");
    assert!(pod.get("hostNetwork").is_none() && pod.get("dnsPolicy").is_none());

    // A key set to null is left out (Helm's null removes a default).
    let objects =
        render_defaults(&[], &["podSecurityContext.runAsGroup=null", "containerSecurityContext.runAsGroup=null"]);
    assert!(pod_spec(&objects)["securityContext"].get("runAsGroup").is_none());
    assert!(server_container(&objects)["securityContext"].get("runAsGroup").is_none());
    assert_eq!(pod_spec(&objects)["securityContext"]["runAsUser"], 65532);
}

#[test]
fn install_security_context_is_written_to_the_config_file_when_set() {
    let objects = render("install-security-context");
    assert_eq!(
        config_file(&objects)["installSecurityContext"],
        json!({
            "runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001,
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}
        })
    );
    // OpenShift mode keeps the rest of a custom context and drops its IDs.
    let objects = render_with(Some(&fixture("install-security-context")), &[], &["openshift=true"]);
    let context = &config_file(&objects)["installSecurityContext"];
    assert!(context.get("runAsUser").is_none() && context.get("runAsGroup").is_none(), "{context}");
    assert_eq!(context["seccompProfile"]["type"], "RuntimeDefault");
}

// ------------------------------------------------- ports, host network --

/// containerPort, `--listen`, the probes' and the Service's targetPort all
/// name the same port.
fn assert_one_server_port(objects: &[Value], port: u64) {
    let container = server_container(objects);
    let ports = container["ports"].as_array().expect("ports");
    let [declared] = ports.as_slice() else { panic!("one container port: {ports:?}") };
    assert_eq!(declared["containerPort"], port);
    assert_eq!(port_of(&server_flag(objects, "listen")), port);
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], declared["name"], "{probe} must use the server port");
    }
    let service = installed(objects, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], declared["name"]);
    assert!(service["spec"]["ports"][0]["port"].is_u64());
}

#[test]
fn server_port_moves_container_port_listen_probes_and_target_port_together() {
    assert_one_server_port(&render_defaults(&[], &[]), 8443);
    let objects = render("port-10250");
    assert_one_server_port(&objects, 10250);
    assert!(pod_spec(&objects).get("hostNetwork").is_none());
    assert_eq!(webhook(&objects)["clientConfig"]["service"]["port"], 443, "the API server still calls the Service");
}

#[test]
fn host_network_serves_on_the_node_and_keeps_cluster_dns() {
    let objects = render("host-network");
    let pod = pod_spec(&objects);
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_one_server_port(&objects, 9443);
    let preview = server_flag(&objects, "preview-listen");
    assert_eq!(preview, "127.0.0.1:9080", "/preview stays on loopback, on a port of the values' choosing");
    // The helm test pod never needs the node's network.
    assert!(test_hook(&objects, "Pod")["spec"].get("hostNetwork").is_none());
}

// -------------------------------------------------------------- webhook --

/// Whether a namespace with `labels` matches a label selector's
/// matchExpressions (In, NotIn, Exists, DoesNotExist: Kubernetes semantics,
/// where NotIn also matches a missing label).
fn selects(selector: &Value, labels: &BTreeMap<&str, &str>) -> bool {
    selector["matchExpressions"].as_array().expect("matchExpressions").iter().all(|expression| {
        let key = expression["key"].as_str().expect("key");
        let values: Vec<&str> =
            expression["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let value = labels.get(key);
        match expression["operator"].as_str() {
            Some("In") => value.is_some_and(|value| values.contains(value)),
            Some("NotIn") => value.is_none_or(|value| !values.contains(value)),
            Some("Exists") => value.is_some(),
            Some("DoesNotExist") => value.is_none(),
            other => panic!("unknown operator {other:?}"),
        }
    })
}

fn namespace(name: &'static str, labels: &[(&'static str, &'static str)]) -> BTreeMap<&'static str, &'static str> {
    let mut all: BTreeMap<&str, &str> = labels.iter().copied().collect();
    all.insert("kubernetes.io/metadata.name", name);
    all
}

#[test]
fn namespace_selection_excludes_by_default_and_opts_in_on_request() {
    let exclude = webhook(&render_defaults(&[], &[]))["namespaceSelector"].clone();
    let opt_in_objects = render("opt-in-namespaces");
    let opt_in = webhook(&opt_in_objects)["namespaceSelector"].clone();
    let cases = [
        // (namespace, selected in exclude mode, selected in opt-in mode)
        (namespace("shop", &[]), true, false),
        (namespace("shop", &[("kube-once.io/enabled", "true")]), true, true),
        (namespace("shop", &[("kube-once.io/enabled", "false")]), true, false),
        (namespace("shop", &[("kube-once.io/ignore", "true")]), false, false),
        (namespace("shop", &[("kube-once.io/ignore", "true"), ("kube-once.io/enabled", "true")]), false, false),
        // Only "true" opts out: a label left at "false" keeps the namespace in.
        (namespace("shop", &[("kube-once.io/ignore", "false")]), true, false),
        (namespace("shop", &[("kube-once.io/ignore", "")]), true, false),
        (namespace("kube-system", &[("kube-once.io/enabled", "true")]), false, false),
        (namespace(NAMESPACE, &[("kube-once.io/enabled", "true")]), false, false),
        (namespace("legacy", &[("kube-once.io/enabled", "true")]), true, false),
    ];
    for (labels, in_exclude_mode, in_opt_in_mode) in cases {
        assert_eq!(selects(&exclude, &labels), in_exclude_mode, "exclude mode, namespace {labels:?}");
        assert_eq!(selects(&opt_in, &labels), in_opt_in_mode, "opt-in mode, namespace {labels:?}");
    }
    // The helm test's scratch namespace is sent in both modes.
    let scratch = test_hook(&opt_in_objects, "Namespace");
    let mut labels: BTreeMap<&str, &str> = scratch["metadata"]["labels"]
        .as_object()
        .expect("labels")
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str().expect("label value")))
        .collect();
    let name = scratch["metadata"]["name"].as_str().expect("name");
    labels.insert("kubernetes.io/metadata.name", name);
    assert!(selects(&opt_in, &labels) && selects(&exclude, &labels), "{scratch}");
}

#[test]
fn webhook_configuration_carries_its_annotations_and_labels() {
    let defaults = render_defaults(&[], &[]);
    let metadata = &installed(&defaults, "MutatingWebhookConfiguration")["metadata"];
    assert_eq!(metadata["annotations"], json!({"admissions.enforcer/disabled": "true"}), "AKS opt-out by default");

    let objects = render("webhook-metadata");
    let metadata = &installed(&objects, "MutatingWebhookConfiguration")["metadata"];
    assert_eq!(metadata["annotations"], json!({"example.com/owner": "platform"}), "null drops the default");
    assert_eq!(metadata["labels"]["example.com/tier"], "admission");
    assert_eq!(metadata["labels"]["app.kubernetes.io/name"], "kube-once", "the chart's labels stay");

    let objects = render_defaults(&[], &["tls.mode=cert-manager"]);
    let annotations = &installed(&objects, "MutatingWebhookConfiguration")["metadata"]["annotations"];
    assert_eq!(
        *annotations,
        json!({"admissions.enforcer/disabled": "true", "cert-manager.io/inject-ca-from": "kube-once/kube-once-serving"})
    );
}

// ----------------------------------------------------------- monitoring --

#[test]
fn service_monitor_follows_the_cluster_unless_forced() {
    let count = |apis: &[&str], sets: &[&str]| all_of(&render_defaults(apis, sets), "ServiceMonitor").len();
    assert_eq!(count(&[], &[]), 0, "auto: no API, no ServiceMonitor");
    assert_eq!(count(&[SERVICE_MONITOR_API], &[]), 1, "auto: the API is served");
    assert_eq!(count(&[SERVICE_MONITOR_API], &["metrics.serviceMonitor.enabled=false"]), 0, "false: never");
    assert_eq!(count(&[], &["metrics.serviceMonitor.enabled=true"]), 1, "true: forced (older values files)");

    let rules = |apis: &[&str], sets: &[&str]| all_of(&render_defaults(apis, sets), "PrometheusRule").len();
    assert_eq!(rules(&[PROMETHEUS_RULE_API], &[]), 0, "rules are opt-in");
    assert_eq!(rules(&[], &["metrics.prometheusRule.enabled=auto"]), 0);
    assert_eq!(rules(&[PROMETHEUS_RULE_API], &["metrics.prometheusRule.enabled=auto"]), 1);
    assert_eq!(rules(&[], &["metrics.prometheusRule.enabled=true"]), 1);
}

fn prometheus_rule(objects: &[Value]) -> &Value {
    installed(objects, "PrometheusRule")
}

fn dashboard(objects: &[Value]) -> Value {
    let config_map = all_of(objects, "ConfigMap")
        .into_iter()
        .find(|object| object["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("a ConfigMap labelled grafana_dashboard: \"1\"");
    let json = config_map["data"]["kube-once.json"].as_str().expect("kube-once.json");
    serde_json::from_str(json).expect("the dashboard is JSON")
}

/// Every PromQL expression of the dashboard's panels and variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
        .map(|target| target["expr"].as_str().expect("expr").to_owned())
        .collect();
    for variable in dashboard["templating"]["list"].as_array().expect("variables") {
        if let Some(query) = variable["query"]["query"].as_str() {
            queries.push(query.to_owned());
        }
    }
    queries
}

/// Metric names in a PromQL expression: identifiers followed by a `{`
/// selector, and every `kube_once_` identifier. String literals, `$variables`
/// and label names inside braces are skipped.
fn metric_names(expression: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expression.chars().collect();
    let mut names = BTreeSet::new();
    let (mut index, mut depth) = (0, 0);
    while index < chars.len() {
        let c = chars[index];
        if c == '"' || c == '\'' || c == '`' {
            index += 1;
            while index < chars.len() && chars[index] != c {
                index += if chars[index] == '\\' { 2 } else { 1 };
            }
            index += 1;
        } else if c == '{' {
            depth += 1;
            index += 1;
        } else if c == '}' {
            depth -= 1;
            index += 1;
        } else if c == '$' || c.is_ascii_alphabetic() || c == '_' {
            let start = index;
            index += 1;
            while index < chars.len()
                && (chars[index].is_ascii_alphanumeric() || chars[index] == '_' || chars[index] == ':')
            {
                index += 1;
            }
            let word: String = chars[start..index].iter().collect();
            let next = chars[index..].iter().find(|c| !c.is_whitespace());
            if depth == 0 && !word.starts_with('$') && (next == Some(&'{') || word.starts_with("kube_once_")) {
                names.insert(word);
            }
        } else {
            index += 1;
        }
    }
    names
}

#[test]
fn metric_name_extraction_finds_selectors_only() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(kube_once_admission_duration_seconds_bucket{job=~"$job", le!="x{y}"}[$__rate_interval]))) / on() up{a="b"} + kube_once_refusals_total"#,
    );
    let expected: BTreeSet<String> =
        ["kube_once_admission_duration_seconds_bucket", "up", "kube_once_refusals_total"].map(str::to_owned).into();
    assert_eq!(names, expected);
}

/// The sample names the real server exports at GET /metrics: `serve`
/// started by `support::serve`, then one scrape over TLS.
fn exported_metric_names() -> BTreeSet<String> {
    let runtime = tokio::runtime::Runtime::new().expect("Tokio runtime");
    let reply = runtime.block_on(async {
        let server = Serve::new().env_remove("KUBE_ONCE_WEBHOOK_NAMESPACE").start().await;
        server.request("GET", "/metrics", "").await.expect("GET /metrics")
    });
    let reply = String::from_utf8_lossy(&reply).into_owned();
    assert_eq!(status_code(reply.as_bytes()), Some(200), "GET /metrics:\n{reply}");
    let exposition = reply.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let mut names: BTreeSet<String> = exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap_or("").to_owned())
        .collect();
    // The migration families have no sample until a migration is seen,
    // which a server with no cluster to watch never does: their names as
    // the server's own metrics code writes them once one is.
    let metrics = kube_once_server::metrics::Metrics::default();
    metrics.migrations().record("shop", "web", kube_once_server::migrations::Outcome::Failed, 1.0);
    let rendered = metrics.render().expect("render the metrics");
    names.extend(
        rendered
            .lines()
            .filter(|line| line.starts_with("kube_once_migration"))
            .map(|line| line.split(['{', ' ']).next().unwrap_or("").to_owned()),
    );
    assert!(names.iter().any(|name| name.starts_with("kube_once_")), "no kube-once metric in:\n{exposition}");
    names
}

#[test]
fn alert_rules_pass_promtool_and_use_only_exported_metrics() {
    let objects = render("monitoring-full");
    let rule = prometheus_rule(&objects);
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");

    let dir = tempfile::tempdir().expect("temp dir");
    let rules_file = dir.path().join("kube-once.rules.yaml");
    std::fs::write(&rules_file, serde_yaml_ng::to_string(&rule["spec"]).expect("YAML")).expect("write rules");
    let output = run(&tool("KUBE_ONCE_PROMTOOL"), &[os("check"), os("rules"), rules_file.into_os_string()]);
    assert!(output.status.success(), "promtool check rules:\n{}{}", text(&output.stdout), text(&output.stderr));

    let rules: Vec<&Value> = rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().into_iter().flatten())
        .collect();
    let alerts: Vec<&str> = rules.iter().filter_map(|rule| rule["alert"].as_str()).collect();
    assert_eq!(
        alerts,
        [
            "KubeOnceWebhookDown",
            "KubeOnceWebhookPodDown",
            "KubeOnceRefusals",
            "KubeOnceSlowAdmissions",
            "KubeOnceMigrationFailing"
        ]
    );
    for rule in &rules {
        let expression = rule["expr"].as_str().expect("expr");
        assert!(
            expression.contains(r#"job="kube-once", namespace="kube-once""#),
            "scoped to this release: {expression}"
        );
    }
    let slow = rules.iter().find(|rule| rule["alert"] == "KubeOnceSlowAdmissions").expect("slow alert");
    assert!(slow["expr"].as_str().unwrap().trim_end().ends_with("> 4"), "80% of the 5 s timeout: {slow}");

    // Every metric a rule or a dashboard query names is one the server exports.
    let dashboard = dashboard(&objects);
    let mut used = BTreeSet::new();
    for expression in
        rules.iter().filter_map(|rule| rule["expr"].as_str()).map(str::to_owned).chain(dashboard_queries(&dashboard))
    {
        used.extend(metric_names(&expression));
    }
    assert!(used.len() >= 4, "{used:?}");
    let mut exported = exported_metric_names();
    // Prometheus itself records `up` for every scrape target.
    exported.insert("up".to_owned());
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "metrics the server does not export: {unknown:?}\nexported: {exported:?}");
}

/// promtool's rule unit test: failures of one Deployment's migration fire
/// the alert with its namespace and name, and stop firing once they stop;
/// runs that succeed never fire it.
#[test]
fn migration_failures_fire_the_alert_for_that_deployment_only() {
    let objects = render("monitoring-full");
    let rule = prometheus_rule(&objects);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("kube-once.rules.yaml"), serde_yaml_ng::to_string(&rule["spec"]).expect("YAML"))
        .expect("write rules");
    // As Prometheus stores them: the target's namespace label wins over the metric's.
    let series = |deployment: &str, outcome: &str| {
        format!(
            r#"kube_once_migrations_total{{job="kube-once", namespace="kube-once", pod="kube-once-0", exported_namespace="shop", deployment="{deployment}", outcome="{outcome}"}}"#
        )
    };
    let tests = json!({
        "rule_files": ["kube-once.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": series("web", "failed"), "values": "0 1 2 3 3x40"},
                {"series": series("api", "ran"), "values": "0+1x45"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "KubeOnceMigrationFailing", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "exported_namespace": "shop", "deployment": "web"},
                    "exp_annotations": {
                        "summary": "The migration of Deployment shop/web failed 3 times in 15 minutes.",
                        "description": rule_description(rule, "KubeOnceMigrationFailing"),
                    },
                }]},
                {"eval_time": "40m", "alertname": "KubeOnceMigrationFailing", "exp_alerts": []},
            ],
        }],
    });
    let tests_file = dir.path().join("kube-once.tests.yaml");
    std::fs::write(&tests_file, serde_yaml_ng::to_string(&tests).expect("YAML")).expect("write tests");
    let output = run(&tool("KUBE_ONCE_PROMTOOL"), &[os("test"), os("rules"), tests_file.into_os_string()]);
    assert!(output.status.success(), "promtool test rules:\n{}{}", text(&output.stdout), text(&output.stderr));
}

fn rule_description(rule: &Value, alert: &str) -> String {
    let rules = rule["spec"]["groups"][0]["rules"].as_array().expect("rules");
    let found = rules.iter().find(|rule| rule["alert"] == alert).expect("the alert");
    found["annotations"]["description"].as_str().expect("description").to_owned()
}

#[test]
fn dashboard_config_map_is_labelled_for_the_grafana_sidecar() {
    assert!(all_of(&render_defaults(&[], &[]), "ConfigMap").len() == 1, "no dashboard by default");
    let objects = render("monitoring-full");
    let config_map = all_of(&objects, "ConfigMap")
        .into_iter()
        .find(|object| object["metadata"]["name"] == "kube-once-dashboard")
        .expect("the dashboard ConfigMap");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(config_map["metadata"]["annotations"]["grafana_folder"], "Kubernetes");
    let dashboard = dashboard(&objects);
    assert_eq!(dashboard["uid"], "kube-once");
    let panels = dashboard["panels"].as_array().expect("panels");
    let ids: BTreeSet<u64> = panels.iter().filter_map(|panel| panel["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
}

// ------------------------------------------------------------ helm test --

/// The test Pod's script (`/bin/bash -c SCRIPT`).
fn test_script(objects: &[Value]) -> String {
    let container = &test_hook(objects, "Pod")["spec"]["containers"][0];
    let command: Vec<&str> =
        container["command"].as_array().expect("command").iter().filter_map(Value::as_str).collect();
    let [bash, dash_c, script] = command.as_slice() else { panic!("command is bash -c SCRIPT: {command:?}") };
    assert_eq!((*bash, *dash_c), ("/bin/bash", "-c"));
    (*script).to_owned()
}

/// The Deployment the script dry-runs (its here-document).
fn test_deployment(script: &str) -> Value {
    let body = script.split_once("<<'DEPLOYMENT'\n").expect("here-document").1;
    let body = body.split_once("\nDEPLOYMENT\n").expect("end of the here-document").0;
    serde_yaml_ng::from_str(body).expect("the here-document is YAML")
}

#[test]
fn helm_test_dry_runs_an_annotated_deployment_with_least_privilege() {
    let objects = render_defaults(&[], &[]);
    let hooks = test_hooks(&objects);
    let kinds: Vec<&str> = hooks.iter().filter_map(|hook| hook["kind"].as_str()).collect();
    assert_eq!(kinds, ["Namespace", "ServiceAccount", "Role", "RoleBinding", "Pod"]);
    for hook in &hooks {
        let annotations = &hook["metadata"]["annotations"];
        assert_eq!(annotations["helm.sh/hook-delete-policy"], "before-hook-creation,hook-succeeded", "{hook}");
    }

    let scratch = test_hook(&objects, "Namespace");
    let scratch_name = scratch["metadata"]["name"].as_str().expect("name");
    assert_eq!(scratch_name, "kube-once-test");
    assert_eq!(scratch["metadata"]["labels"]["kube-once.io/enabled"], "true");

    let role = test_hook(&objects, "Role");
    assert_eq!(role["metadata"]["namespace"], scratch_name, "rights in the scratch namespace only");
    assert_eq!(role["rules"], json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]}]));
    let binding = test_hook(&objects, "RoleBinding");
    let account = test_hook(&objects, "ServiceAccount");
    assert_eq!(binding["metadata"]["namespace"], scratch_name);
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}])
    );

    let pod = test_hook(&objects, "Pod");
    assert_eq!(pod["metadata"]["namespace"], NAMESPACE);
    assert_eq!(pod["spec"]["serviceAccountName"], account["metadata"]["name"]);
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.k8s.io/kubectl:v1.33.0");
    let env: BTreeMap<&str, &str> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|env| (env["name"].as_str().unwrap(), env["value"].as_str().unwrap()))
        .collect();
    assert_eq!(env["SCRATCH_NAMESPACE"], scratch_name);
    assert_eq!(env["TOOLS_IMAGE"], config_file(&objects)["toolsImage"].as_str().unwrap());

    let script = test_script(&objects);
    for part in [
        "kubectl create --dry-run=server --namespace \"$SCRATCH_NAMESPACE\" --output json --filename -",
        "jq --exit-status",
        r#"["kube-once-install", "kube-once-run"]"#,
        "exit 1",
    ] {
        assert!(script.contains(part), "{part:?} missing from the test script:\n{script}");
    }
    let syntax = Command::new("bash").args(["-n", "-c", &script]).output().expect("run bash -n");
    assert!(syntax.status.success(), "bash -n: {}\n{script}", text(&syntax.stderr));

    let deployment = test_deployment(&script);
    assert_eq!(deployment["kind"], "Deployment");
    assert!(deployment["metadata"]["annotations"]["kube-once.io/run"].is_string());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("deployment.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&deployment).expect("YAML")).expect("write");
    let output = run(
        &tool("KUBE_ONCE_KUBERNETES_VALIDATE"),
        &[os("--strict"), os("--kubernetes-version"), os(KUBERNETES_VERSION), path.into_os_string()],
    );
    assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));

    // The webhook injects into that Deployment: `kube-once preview` with
    // the chart's config file is the same admission code, offline.
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, serde_yaml_ng::to_string(&config_file(&objects)).expect("YAML")).expect("write");
    let preview = Command::new(env!("CARGO_BIN_EXE_kube-once"))
        .args(["preview", "--config"])
        .arg(&config)
        .args(["--output", "yaml", "-f"])
        .arg(dir.path().join("deployment.yaml"))
        .output()
        .expect("run kube-once preview");
    assert!(preview.status.success(), "kube-once preview:\n{}", text(&preview.stderr));
    let admitted: Value = parse_documents(&text(&preview.stdout)).into_iter().next().expect("the mutated Deployment");
    let init: Vec<&Value> = admitted["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .expect("initContainers")
        .iter()
        .map(|container| &container["name"])
        .collect();
    assert_eq!(init, [&json!("kube-once-install"), &json!("kube-once-run")]);
    assert_eq!(admitted["spec"]["template"]["spec"]["initContainers"][0]["image"], env["TOOLS_IMAGE"]);
    assert!(admitted["spec"]["template"]["metadata"]["annotations"]["kube-once.io/status"].is_string());

    let objects = render_defaults(&[], &["tests.enabled=false"]);
    assert!(test_hooks(&objects).is_empty(), "tests.enabled=false renders no hook");
}

/// Runs the test Pod's script with the Pod's environment and a stand-in
/// `kubectl` first on PATH that checks its arguments and answers with
/// `answer` (a shell pipeline reading the Deployment on stdin and printing
/// the admitted object as JSON).
fn run_test_script(objects: &[Value], answer: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let pod = test_hook(objects, "Pod");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    let kubectl = bin.join("kubectl");
    let expected_args = "create --dry-run=server --namespace kube-once-test --output json --filename -";
    std::fs::write(
        &kubectl,
        format!(
            "#!/bin/bash\nset -euo pipefail\n[[ \"$*\" == \"{expected_args}\" ]] || {{ echo \"unexpected kubectl $*\" >&2; exit 2; }}\n{answer}\n"
        ),
    )
    .expect("write the stand-in kubectl");
    std::fs::set_permissions(&kubectl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, serde_yaml_ng::to_string(&config_file(objects)).expect("YAML")).expect("write");
    // PyYAML comes with kubernetes-validate, in its venv.
    let python = tool("KUBE_ONCE_KUBERNETES_VALIDATE").with_file_name("python");

    let mut command = Command::new("bash");
    command.args(["-c", &test_script(objects)]);
    for env in pod["spec"]["containers"][0]["env"].as_array().expect("env") {
        command.env(env["name"].as_str().expect("name"), env["value"].as_str().expect("value"));
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    command
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("KUBE_ONCE_BIN", env!("CARGO_BIN_EXE_kube-once"))
        .env("KUBE_ONCE_CONFIG", &config)
        .env("PYTHON", python)
        .output()
        .expect("run the helm test script")
}

#[test]
fn helm_test_script_passes_on_an_injected_answer_and_fails_without_one() {
    let yaml_to_json = r#""$PYTHON" -c 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'"#;
    for (case, sets) in [("defaults", &[][..]), ("opt-in", &["webhook.namespaceSelection=opt-in"][..])] {
        let objects = render_defaults(&[], sets);
        // The webhook's answer, computed by the same admission code offline.
        let injected =
            format!(r#""$KUBE_ONCE_BIN" preview --config "$KUBE_ONCE_CONFIG" --output yaml -f - | {yaml_to_json}"#);
        let output = run_test_script(&objects, &injected);
        let log = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "{case}: the script failed on an injected Deployment:\n{log}");
        assert!(log.contains("PASS: kube-once injected kube-once-install"), "{case}: {log}");

        // No webhook in the path: the Deployment comes back as sent.
        let output = run_test_script(&objects, yaml_to_json);
        let log = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert_eq!(output.status.code(), Some(1), "{case}: the script must fail without injection:\n{log}");
        assert!(log.contains("FAIL: the admitted Deployment's pod template lacks kube-once's injection"), "{log}");
    }
}

// ------------------------------------------------------------ packaging --

fn chart_yaml() -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml"))
        .expect("Chart.yaml is YAML")
}

#[test]
fn chart_version_and_app_version_follow_the_crate_version() {
    let chart = chart_yaml();
    let crate_version = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["version"], crate_version, "Chart.yaml version must be Cargo.toml's package version");
    assert_eq!(chart["appVersion"], crate_version, "Chart.yaml appVersion must be Cargo.toml's package version");
}

#[test]
fn helm_package_builds_the_chart_archive() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run(
        &tool("KUBE_ONCE_HELM"),
        &[os("package"), chart_dir().into_os_string(), os("--destination"), dir.path().as_os_str().to_owned()],
    );
    assert!(output.status.success(), "helm package:\n{}{}", text(&output.stdout), text(&output.stderr));
    let archive = dir.path().join(format!("kube-once-{}.tgz", env!("CARGO_PKG_VERSION")));
    assert!(archive.is_file(), "{} missing:\n{}", archive.display(), text(&output.stdout));

    // The archive installs like the directory: it renders the same objects.
    let from_archive = run(
        &tool("KUBE_ONCE_HELM"),
        &[os("template"), os(RELEASE), archive.into_os_string(), os("--namespace"), os(NAMESPACE)],
    );
    assert!(from_archive.status.success(), "{}", text(&from_archive.stderr));
    assert_eq!(parse_documents(&text(&from_archive.stdout)), render_defaults(&[], &[]));
}

// ------------------------------------------------------ the core's side --

/// The hand-over to the core: the config file's `installSecurityContext`
/// replaces the injected kube-once-install container's securityContext whole.
#[test]
fn core_injects_the_charts_install_security_context() {
    for (case, values) in [("openshift", fixture("openshift")), ("custom", fixture("install-security-context"))] {
        let objects = render_with(Some(&values), &[], &[]);
        let script = test_script(&objects);
        let dir = tempfile::tempdir().expect("temp dir");
        let deployment = dir.path().join("deployment.yaml");
        std::fs::write(&deployment, serde_yaml_ng::to_string(&test_deployment(&script)).expect("YAML")).expect("write");
        let config = dir.path().join("config.yaml");
        let config_file = config_file(&objects);
        std::fs::write(&config, serde_yaml_ng::to_string(&config_file).expect("YAML")).expect("write");
        let preview = Command::new(env!("CARGO_BIN_EXE_kube-once"))
            .args(["preview", "--config"])
            .arg(&config)
            .args(["--output", "yaml", "-f"])
            .arg(&deployment)
            .output()
            .expect("run kube-once preview");
        assert!(preview.status.success(), "{case}: kube-once preview:\n{}", text(&preview.stderr));
        let admitted = parse_documents(&text(&preview.stdout)).into_iter().next().expect("the mutated Deployment");
        let install = &admitted["spec"]["template"]["spec"]["initContainers"][0];
        assert_eq!(install["name"], "kube-once-install");
        assert_eq!(install["securityContext"], config_file["installSecurityContext"], "{case}");
        // The helm test's Deployment is not itself restricted; the injected install container must be.
        let install_violations: Vec<String> = restricted_violations(&admitted["spec"]["template"]["spec"])
            .into_iter()
            .filter(|violation| violation.contains("kube-once-install"))
            .collect();
        assert_eq!(install_violations, Vec::<String>::new(), "{case}");
    }
}
