//! The Helm chart (charts/kube-once) and the plain manifests (webhook-config/),
//! checked with the real tools: `helm lint --strict` and `helm template` over a
//! matrix of values files (tests/fixtures/chart/), every rendered object
//! validated by `kubernetes-validate --strict`, every pod template checked
//! against the PSS `restricted` profile, the server's arguments parsed by the
//! real CLI, and `kubectl kustomize webhook-config` compared with the chart.
//!
//! helm, kubectl and kubernetes-validate come from scripts/test.sh (through
//! KUBE_ONCE_HELM, KUBE_ONCE_KUBECTL, KUBE_ONCE_KUBERNETES_VALIDATE).

// Helpers outside #[test] functions are test code too: a failed expectation
// must stop the test with its message, which is what panics are for here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::{Value, json};

use kube_once::cmd::{Cli, Command as Subcommand, serve::ServeArgs};
use kube_once_core::config::Config;
use support::chart::{
    NAMESPACE, all_of, config_file, installed as one_of, named, run, server_args, server_container, text, webhook,
};
use support::env::tool;
use support::pss::restricted_violations;
use support::repo;

/// Every valid values file, named after tests/fixtures/chart/<case>.yaml.
const CASES: &[&str] = &[
    "self-managed",
    "cert-manager",
    "cert-manager-issuer",
    "secret",
    "secret-named",
    "failure-ignore",
    "match-conditions-off",
    "presets",
    "observability",
    "network-policy-secret",
    "digest",
];

/// Labels only Helm adds; the plain manifests leave them out.
const HELM_ONLY_LABELS: &[&str] = &["helm.sh/chart", "app.kubernetes.io/managed-by"];

// ---------------------------------------------------------------- tools --

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/chart").join(format!("{name}.yaml"))
}

/// `helm template` with a values file; Ok(stdout) or Err(stderr).
fn helm_template(values: &Path) -> Result<String, String> {
    support::chart::helm_template(Some(values), &[], &[])
}

fn render_values(values: &Path) -> Vec<Value> {
    support::chart::render(Some(values), &[], &[])
}

fn render(case: &str) -> Vec<Value> {
    render_values(&fixture(case))
}

fn render_set(case: &str, sets: &[&str]) -> Vec<Value> {
    support::chart::render(Some(&fixture(case)), &[], sets)
}

// ------------------------------------------------------------ selectors --

fn serve_args(objects: &[Value]) -> ServeArgs {
    let args = server_args(objects);
    let cli = Cli::try_parse_from(std::iter::once("kube-once".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|error| panic!("the chart's args {args:?} do not parse with the real CLI:\n{error}"));
    match cli.command {
        Subcommand::Serve(serve) => *serve,
        other => panic!("the chart runs {other:?}, not serve"),
    }
}

/// Where the pod mounts the volume that comes from `source` (e.g. configMap).
fn mount_of(objects: &[Value], source: &str, name_field: &str, name: &str) -> String {
    let pod = &one_of(objects, "Deployment")["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|volume| volume[source][name_field] == name)
        .unwrap_or_else(|| panic!("no {source} volume for {name}"));
    let mount = server_container(objects)["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|mount| mount["name"] == volume["name"])
        .unwrap_or_else(|| panic!("volume {} is not mounted", volume["name"]));
    assert_eq!(mount["readOnly"], true, "{mount}");
    mount["mountPath"].as_str().expect("mountPath").to_owned()
}

// ------------------------------------------------------- lint, validate --

#[test]
fn helm_lint_strict_passes_for_every_values_case() {
    for case in CASES {
        support::chart::assert_lint_passes(case, &fixture(case), &[]);
    }
}

#[test]
fn every_values_fixture_is_in_the_matrix() {
    let files = support::fixture_names("chart", ".yaml");
    let mut cases: Vec<String> = CASES.iter().map(|case| (*case).to_owned()).collect();
    cases.sort();
    assert_eq!(files, cases, "add each tests/fixtures/chart/*.yaml to CASES");
}

/// The newest Kubernetes version whose schemas the installed
/// kubernetes-validate ships: the default its `--help` names.
fn newest_schema_version() -> String {
    let output = run(&tool("KUBE_ONCE_KUBERNETES_VALIDATE"), ["--help"]);
    let help = text(&output.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    let after = help.split("Defaults to ").nth(1).unwrap_or_else(|| panic!("no default version in:\n{help}"));
    let version: String = after.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    version.trim_end_matches('.').to_owned()
}

/// Every object of every case, validated by `kubernetes-validate --strict` for `version`.
fn validate_all_cases(version: &str) {
    let cases = CASES.iter().map(|case| ((*case).to_owned(), render(case))).collect();
    support::chart::validate_strictly(cases, version);
}

#[test]
fn rendered_objects_validate_strictly_against_kubernetes_1_30() {
    validate_all_cases("1.30.0");
}

#[test]
fn rendered_objects_validate_strictly_against_the_newest_schemas() {
    let newest = newest_schema_version();
    let minor: u32 = newest.split('.').nth(1).and_then(|minor| minor.parse().ok()).expect("a version like 1.37.0");
    assert!(minor > 30, "kubernetes-validate's newest schemas ({newest}) should be newer than 1.30");
    validate_all_cases(&newest);
}

#[test]
fn values_schema_rejects_bad_values_with_helms_error() {
    let expectations = [
        ("replicas-string", "at '/replicaCount': got string, want integer"),
        ("unknown-key", "additional properties 'timeoutSecond' not allowed"),
        ("bad-tls-mode", "at '/tls/mode'"),
        ("secret-without-ca-bundle", "at '/tls/caBundle'"),
        ("timeout-too-long", "at '/webhook/timeoutSeconds'"),
    ];
    for (case, expected) in expectations {
        let stderr = helm_template(&fixture(&format!("invalid/{case}")))
            .err()
            .unwrap_or_else(|| panic!("helm accepted the invalid values of {case}"));
        assert!(stderr.contains("values don't meet the specifications of the schema"), "{case}: {stderr}");
        assert!(stderr.contains(expected), "{case}: expected {expected:?} in:\n{stderr}");
    }
}

// ------------------------------------------------------------ the pods --

#[test]
fn every_pod_template_passes_pss_restricted() {
    for case in CASES {
        let objects = render(case);
        let templates: Vec<&Value> = objects
            .iter()
            .map(|object| &object["spec"]["template"]["spec"])
            .filter(|pod_spec| pod_spec.is_object())
            .collect();
        assert!(!templates.is_empty(), "{case}: no pod template rendered");
        for pod_spec in templates {
            let violations = restricted_violations(pod_spec);
            assert!(violations.is_empty(), "{case}: PSS restricted violations:\n{}", violations.join("\n"));
        }
    }
}

#[test]
fn pss_check_reports_each_restricted_violation() {
    let pod_spec = json!({
        "hostNetwork": true,
        "securityContext": {"runAsUser": 0, "sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}, {"name": "scratch", "emptyDir": {}}],
        "initContainers": [{
            "name": "setup",
            "securityContext": {
                "allowPrivilegeEscalation": false, "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"},
                "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN", "NET_BIND_SERVICE"]}
            }
        }],
        "containers": [{
            "name": "app",
            "ports": [{"containerPort": 80, "hostPort": 80}],
            "securityContext": {"privileged": true, "runAsNonRoot": false, "seccompProfile": {"type": "Unconfined"}}
        }]
    });
    let violations = restricted_violations(&pod_spec);
    let expected = [
        "pod: hostNetwork must not be true",
        "pod: runAsUser must not be 0",
        "pod: sysctl kernel.msgmax is not in the safe set",
        "volume \"host\": type hostPath is not allowed (hostPath and the like)",
        "container \"app\": seccompProfile must not be Unconfined",
        "container \"app\": privileged must not be true",
        "container \"app\": hostPort must not be set",
        "container \"app\": allowPrivilegeEscalation must be false",
        "container \"app\": runAsNonRoot must not be false",
        "container \"app\": seccompProfile must be RuntimeDefault or Localhost",
        "container \"app\": capabilities.drop must include ALL",
        "initContainer \"setup\": capability \"SYS_ADMIN\" may not be added (only NET_BIND_SERVICE)",
    ];
    assert_eq!(violations, expected);

    let pod_level_only = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
    });
    assert_eq!(restricted_violations(&pod_level_only), Vec::<String>::new());
}

#[test]
fn deployment_is_highly_available_probed_and_read_only() {
    let objects = render("self-managed");
    let deployment = one_of(&objects, "Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod_labels = &spec["template"]["metadata"]["labels"];
    let selector = spec["selector"]["matchLabels"].as_object().expect("selector");
    for (key, value) in selector {
        assert_eq!(&pod_labels[key], value, "the selector must select the pods");
    }

    let budget = one_of(&objects, "PodDisruptionBudget");
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    assert_eq!(budget["spec"]["selector"]["matchLabels"], spec["selector"]["matchLabels"]);

    let spread = spec["template"]["spec"]["topologySpreadConstraints"].as_array().expect("topology spread");
    let keys: Vec<&Value> = spread.iter().map(|constraint| &constraint["topologyKey"]).collect();
    assert_eq!(keys, [&json!("kubernetes.io/hostname"), &json!("topology.kubernetes.io/zone")]);
    assert!(spread.iter().all(|c| c["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]));

    let container = server_container(&objects);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["ports"], json!([{"name": "https", "containerPort": 8443, "protocol": "TCP"}]));
    for (probe, path) in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(*get, json!({"path": path, "port": "https", "scheme": "HTTPS"}), "{probe}");
    }
    assert!(container.get("lifecycle").is_none(), "no preStop: the server drains by itself");

    let service = one_of(&objects, "Service");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}])
    );
    assert_eq!(service["spec"]["selector"], spec["selector"]["matchLabels"]);
}

#[test]
fn termination_grace_outlasts_the_server_drain() {
    let objects = render("self-managed");
    let serve = serve_args(&objects);
    let pod = &one_of(&objects, "Deployment")["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(grace > (*serve.grace_period + *serve.request_timeout).as_secs(), "{grace}s is too short for {serve:?}");

    let stderr = helm_template(&fixture("invalid/termination-grace-too-short")).expect_err("too short is refused");
    assert!(stderr.contains("server.terminationGracePeriodSeconds (15) must exceed"), "{stderr}");
}

// -------------------------------------------------- server args and TLS --

#[test]
fn serve_arguments_parse_with_the_real_cli_in_every_tls_mode() {
    for case in ["self-managed", "cert-manager", "cert-manager-issuer", "secret"] {
        let objects = render(case);
        let serve = serve_args(&objects);
        let service = one_of(&objects, "Service");
        let configuration = one_of(&objects, "MutatingWebhookConfiguration");
        assert_eq!(serve.tls.service, service["metadata"]["name"].as_str().unwrap(), "{case}");
        assert_eq!(serve.listen.port(), 8443, "{case}");
        assert!(serve.preview_listen.ip().is_loopback(), "{case}: /preview must stay off the Service");

        let config_dir = mount_of(&objects, "configMap", "name", "kube-once-config");
        assert_eq!(serve.config.config, Some(PathBuf::from(config_dir).join("config.yaml")), "{case}");

        let namespace_env = server_container(&objects)["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|env| env["name"] == "KUBE_ONCE_WEBHOOK_NAMESPACE")
            .cloned()
            .expect("KUBE_ONCE_WEBHOOK_NAMESPACE");
        assert_eq!(namespace_env["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace", "{case}");

        if case == "self-managed" {
            assert!(serve.tls.self_managed);
            assert_eq!(serve.tls.tls_secret, "kube-once-tls");
            assert_eq!(serve.tls.webhook_configuration, configuration["metadata"]["name"].as_str().unwrap());
            assert_eq!(serve.tls.tls_cert_file, None);
        } else {
            assert!(!serve.tls.self_managed, "{case}");
            let secret = if case == "cert-manager-issuer" { "webhook-serving" } else { "kube-once-tls" };
            let tls_dir = PathBuf::from(mount_of(&objects, "secret", "secretName", secret));
            assert_eq!(serve.tls.tls_cert_file, Some(tls_dir.join("tls.crt")), "{case}");
            assert_eq!(serve.tls.tls_key_file, Some(tls_dir.join("tls.key")), "{case}");
        }
    }
}

/// Mode secret mounts the Secret the values name, and `<fullname>-tls` when
/// they name none (as the values table says), instead of failing to render.
#[test]
fn secret_mode_mounts_the_named_secret_or_fullname_tls() {
    for (case, secret) in [("secret", "kube-once-tls"), ("secret-named", "webhook-serving")] {
        let objects = render(case);
        let tls_dir = PathBuf::from(mount_of(&objects, "secret", "secretName", secret));
        assert_eq!(serve_args(&objects).tls.tls_cert_file, Some(tls_dir.join("tls.crt")), "{case}");
    }
}

#[test]
fn ca_bundle_is_rendered_only_in_secret_mode() {
    for case in ["self-managed", "cert-manager", "cert-manager-issuer"] {
        let objects = render(case);
        let client = &webhook(&objects)["clientConfig"];
        assert!(client.get("caBundle").is_none(), "{case}: caBundle must be left out, got {client}");
    }
    let objects = render("secret");
    assert_eq!(webhook(&objects)["clientConfig"]["caBundle"], "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==");
    let annotations = &one_of(&objects, "MutatingWebhookConfiguration")["metadata"]["annotations"];
    assert!(annotations.get("cert-manager.io/inject-ca-from").is_none());
}

#[test]
fn cert_manager_mode_issues_a_ca_chain_and_injects_the_ca() {
    let objects = render("cert-manager");
    let selfsigned = named(&objects, "Issuer", "kube-once-selfsigned");
    assert_eq!(selfsigned["spec"], json!({"selfSigned": {}}));
    let ca = named(&objects, "Certificate", "kube-once-ca");
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(ca["spec"]["issuerRef"]["name"], "kube-once-selfsigned");
    let ca_issuer = named(&objects, "Issuer", "kube-once-ca");
    assert_eq!(ca_issuer["spec"]["ca"]["secretName"], ca["spec"]["secretName"]);

    let serving = named(&objects, "Certificate", "kube-once-serving");
    assert_eq!(
        serving["spec"]["issuerRef"],
        json!({"name": "kube-once-ca", "kind": "Issuer", "group": "cert-manager.io"})
    );
    assert_eq!(
        serving["spec"]["dnsNames"],
        json!(["kube-once.kube-once.svc", "kube-once.kube-once.svc.cluster.local"])
    );
    assert_eq!(serving["spec"]["secretName"], "kube-once-tls");
    let annotations = &one_of(&objects, "MutatingWebhookConfiguration")["metadata"]["annotations"];
    assert_eq!(annotations["cert-manager.io/inject-ca-from"], "kube-once/kube-once-serving");

    let objects = render("cert-manager-issuer");
    assert!(all_of(&objects, "Issuer").is_empty(), "an existing issuer needs no chart-made Issuer");
    let serving = one_of(&objects, "Certificate");
    assert_eq!(
        serving["spec"]["issuerRef"],
        json!({"name": "internal-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    assert_eq!(serving["spec"]["secretName"], "webhook-serving");
    assert_eq!(serving["spec"]["duration"], "2160h");
}

#[test]
fn rbac_is_minimal_and_exists_only_for_what_is_turned_on() {
    // The webhook's RBAC: the `helm test` hooks' own (tests/chart_platforms.rs) are not installed.
    let installed = |case: &str, sets: &[&str]| support::chart::without_hooks(render_set(case, sets));
    let account_is_bound_to = |objects: &[Value], role: &Value, binding_kind: &str| {
        let account = one_of(objects, "ServiceAccount");
        let binding = named(objects, binding_kind, role["metadata"]["name"].as_str().unwrap());
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(binding["roleRef"]["kind"], role["kind"]);
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}])
        );
    };

    let objects = installed("self-managed", &["events.enabled=false"]);
    let role = one_of(&objects, "Role");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["kube-once-tls"], "verbs": ["get", "update", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}
        ])
    );
    let cluster_role = one_of(&objects, "ClusterRole");
    assert_eq!(
        cluster_role["rules"],
        json!([{
            "apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
            "resourceNames": [one_of(&objects, "MutatingWebhookConfiguration")["metadata"]["name"]], "verbs": ["get", "patch"]
        }])
    );
    account_is_bound_to(&objects, role, "RoleBinding");
    account_is_bound_to(&objects, cluster_role, "ClusterRoleBinding");
    assert_eq!(one_of(&objects, "ServiceAccount")["automountServiceAccountToken"], true);

    // Migration Events (on by default) in any TLS mode: pods read by the
    // watch only, a waiting pod's log (to name the lock holder), owners by
    // name, Events written, one Lease by name.
    for case in ["self-managed", "cert-manager", "secret"] {
        let objects = installed(case, &[]);
        let events = named(&objects, "ClusterRole", "kube-once-events");
        assert_eq!(
            events["rules"],
            json!([
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                {"apiGroups": ["apps"], "resources": ["replicasets", "deployments"], "verbs": ["get"]},
                {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["get", "create", "patch"]}
            ]),
            "{case}"
        );
        let lease = named(&objects, "Role", "kube-once-events-lease");
        assert_eq!(
            lease["rules"],
            json!([
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["kube-once-events"], "verbs": ["get", "update"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}
            ]),
            "{case}"
        );
        account_is_bound_to(&objects, events, "ClusterRoleBinding");
        account_is_bound_to(&objects, lease, "RoleBinding");
        let args = server_args(&objects);
        assert!(args.iter().any(|arg| arg == "--events-lease=kube-once-events"), "{case}: {args:?}");
        let pod = &one_of(&objects, "Deployment")["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], true, "{case}: the watch needs the API");
        assert!(!args.iter().any(|arg| arg == "--no-holder-from-logs"), "{case}: {args:?}");
    }

    // Without the holder from logs: no pods/log, and serve is told so.
    let objects = installed("secret", &["events.holderFromLogs=false"]);
    let events = named(&objects, "ClusterRole", "kube-once-events");
    let rules = events["rules"].as_array().unwrap();
    assert!(rules.iter().all(|rule| rule["resources"] != json!(["pods/log"])), "{rules:?}");
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert!(server_args(&objects).iter().any(|arg| arg == "--no-holder-from-logs"));

    for case in ["cert-manager", "secret"] {
        let objects = installed(case, &["events.enabled=false"]);
        for kind in ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"] {
            assert!(all_of(&objects, kind).is_empty(), "{case} needs no {kind}");
        }
        assert!(server_args(&objects).iter().any(|arg| arg == "--no-events"), "{case}");
        assert_eq!(one_of(&objects, "ServiceAccount")["automountServiceAccountToken"], false, "{case}");
        let pod = &one_of(&objects, "Deployment")["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "{case}: no API token without a use for it");
    }
}

// ------------------------------------------------------------- webhook --

#[test]
fn webhook_follows_the_design_by_default() {
    let objects = render("self-managed");
    let hook = webhook(&objects);
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(
        hook["rules"],
        json!([
            {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["deployments", "statefulsets", "daemonsets"], "scope": "Namespaced"},
            {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["cronjobs"], "scope": "Namespaced"},
            {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["jobs"], "scope": "Namespaced"},
            {"apiGroups": ["argoproj.io"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"], "resources": ["rollouts"], "scope": "Namespaced"}
        ])
    );
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
    assert_eq!(hook["timeoutSeconds"], 5);
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(
        hook["clientConfig"]["service"],
        json!({"name": one_of(&objects, "Service")["metadata"]["name"], "namespace": NAMESPACE, "path": "/mutate", "port": 443})
    );
    assert_eq!(
        hook["namespaceSelector"],
        json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NAMESPACE, "kube-system"]},
            {"key": "kube-once.io/ignore", "operator": "NotIn", "values": ["true"]}
        ]})
    );

    let conditions = hook["matchConditions"].as_array().expect("matchConditions on by default");
    let [condition] = conditions.as_slice() else { panic!("one match condition: {conditions:?}") };
    let expression = condition["expression"].as_str().expect("CEL expression");
    for part in [
        "object.metadata.annotations.exists(k, k.startsWith('kube-once.io/'))",
        "object.spec.template.metadata.annotations.exists(k, k.startsWith('kube-once.io/'))",
        "has(object.spec.template.metadata.annotations)",
        "object.spec.jobTemplate.spec.template.metadata.annotations.exists(k, k.startsWith('kube-once.io/'))",
        "object.spec.jobTemplate.metadata.annotations.exists(k, k.startsWith('kube-once.io/'))",
        "object.metadata.labels.exists(k, k.startsWith('kube-once.io/'))",
    ] {
        assert!(expression.contains(part), "{part:?} missing from {expression}");
    }
    assert!(!expression.contains('?'), "no optional-types syntax: {expression}");
}

#[test]
fn failure_policy_timeout_and_exclusions_follow_values() {
    let objects = render("failure-ignore");
    let hook = webhook(&objects);
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["timeoutSeconds"], 3);
    assert_eq!(hook["namespaceSelector"]["matchExpressions"][0]["values"], json!([NAMESPACE, "kube-system", "legacy"]));
}

#[test]
fn match_conditions_can_be_turned_off() {
    let objects = render("match-conditions-off");
    assert!(webhook(&objects).get("matchConditions").is_none());
}

// --------------------------------------------------------- config, image --

#[test]
fn config_map_holds_tools_image_defaults_and_presets() {
    let defaults = render("self-managed");
    assert_eq!(
        config_file(&defaults),
        json!({"toolsImage": "ghcr.io/kube-once/kube-once:0.1.0", "defaults": {"timeout": "15m", "lockName": "kube-once", "record": "table"}})
    );
    assert_eq!(server_container(&defaults)["image"], "ghcr.io/kube-once/kube-once:0.1.0");

    let presets = render("presets");
    assert_eq!(
        config_file(&presets),
        json!({
            "toolsImage": "ghcr.io/kube-once/kube-once:0.1.0",
            "defaultPreset": "on-prem-spot",
            "defaults": {"timeout": "30m", "lockName": "platform", "record": "none"},
            "presets": {"on-prem-spot": {
                "nodeSelector": {"node-pool": "spot"},
                "tolerations": [{"key": "node-pool", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}]
            }}
        })
    );
    let checksum = |objects: &[Value]| {
        one_of(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"].clone()
    };
    assert_ne!(checksum(&defaults), checksum(&presets), "a config change must roll the webhook pods");
}

#[test]
fn rendered_config_file_is_accepted_by_the_core_in_every_case() {
    for case in CASES {
        let objects = render(case);
        let yaml =
            named(&objects, "ConfigMap", "kube-once-config")["data"]["config.yaml"].as_str().expect("config.yaml");
        let config = Config::from_yaml(yaml)
            .unwrap_or_else(|error| panic!("{case}: the core rejects the chart's config: {error}\n{yaml}"));
        assert_eq!(config.tools_image, server_container(&objects)["image"].as_str().unwrap(), "{case}");
    }
    let objects = render("presets");
    let yaml = named(&objects, "ConfigMap", "kube-once-config")["data"]["config.yaml"].as_str().expect("config.yaml");
    let config = Config::from_yaml(yaml).expect("valid config");
    assert_eq!(config.default_preset.as_deref(), Some("on-prem-spot"));
    assert_eq!(config.defaults.timeout, std::time::Duration::from_secs(30 * 60));
    assert_eq!(config.defaults.lock_name, "platform");
    let preset = config.preset("on-prem-spot").expect("the chart's preset");
    assert_eq!(preset.node_selector.get("node-pool").map(String::as_str), Some("spot"));
    assert_eq!(preset.tolerations.len(), 1);
    assert!(config.preset("gke-spot").is_some(), "built-in presets stay");
}

#[test]
fn image_digest_pins_the_server_and_the_tools_image() {
    let objects = render("digest");
    let pinned = "registry.example.com/platform/kube-once@sha256:4f3a1b6c9d2e8f7a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a";
    assert_eq!(server_container(&objects)["image"], pinned);
    assert_eq!(config_file(&objects)["toolsImage"], pinned);
    let deployment = one_of(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 40);
    assert_eq!(one_of(&objects, "PodDisruptionBudget")["spec"]["maxUnavailable"], 2);
}

// ------------------------------------------------ monitoring, network --

#[test]
fn service_monitor_and_network_policy_only_when_enabled() {
    let defaults = render("self-managed");
    assert!(all_of(&defaults, "ServiceMonitor").is_empty() && all_of(&defaults, "NetworkPolicy").is_empty());

    let objects = render("observability");
    let monitor = one_of(&objects, "ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], one_of(&objects, "Service")["spec"]["ports"][0]["name"]);
    assert_eq!(
        (&endpoint["scheme"], &endpoint["path"], &endpoint["interval"]),
        (&json!("https"), &json!("/metrics"), &json!("15s"))
    );

    let policy = &one_of(&objects, "NetworkPolicy")["spec"];
    assert_eq!(policy["podSelector"]["matchLabels"], one_of(&objects, "Deployment")["spec"]["selector"]["matchLabels"]);
    assert_eq!(policy["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(policy["ingress"], json!([{"ports": [{"port": "https", "protocol": "TCP"}]}]));
    assert_eq!(
        policy["egress"][1],
        json!({"ports": [{"port": 6443, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]})
    );

    let objects = render("network-policy-secret");
    let policy = &one_of(&objects, "NetworkPolicy")["spec"];
    assert_eq!(policy["egress"], json!([]), "without self-managed TLS the webhook calls nothing");
}

// ----------------------------------------------------- plain manifests --

/// Objects sorted by identity, without the labels only Helm adds.
fn normalized(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|mut object| {
            for pointer in ["/metadata/labels", "/spec/template/metadata/labels"] {
                if let Some(labels) = object.pointer_mut(pointer).and_then(Value::as_object_mut) {
                    for label in HELM_ONLY_LABELS {
                        labels.remove(*label);
                    }
                }
            }
            let key = format!(
                "{} {} {}/{}",
                object["apiVersion"].as_str().unwrap_or(""),
                object["kind"].as_str().unwrap_or(""),
                object["metadata"]["namespace"].as_str().unwrap_or(""),
                object["metadata"]["name"].as_str().unwrap_or("")
            );
            (key, object)
        })
        .collect()
}

#[test]
fn plain_manifests_equal_the_chart_rendering() {
    let output = run(&tool("KUBE_ONCE_KUBECTL"), ["kustomize", "webhook-config"]);
    assert!(output.status.success(), "kubectl kustomize webhook-config failed:\n{}", text(&output.stderr));
    let mut kustomized = support::chart::documents(&text(&output.stdout));
    let namespace_at = kustomized.iter().position(|object| object["kind"] == "Namespace").expect("a Namespace");
    let namespace = kustomized.remove(namespace_at);
    assert_eq!(namespace["metadata"]["name"], NAMESPACE);

    let chart = render_values(&repo().join("webhook-config/values-for-manifests.yaml"));
    let (kustomized, chart) = (normalized(kustomized), normalized(chart));
    let kustomized_keys: Vec<&String> = kustomized.keys().collect();
    let chart_keys: Vec<&String> = chart.keys().collect();
    assert_eq!(kustomized_keys, chart_keys, "webhook-config/ is stale: run scripts/render-manifests.sh");
    for (key, object) in &chart {
        assert_eq!(&kustomized[key], object, "{key} differs: run scripts/render-manifests.sh");
    }

    let hook = webhook(&chart.into_values().collect::<Vec<_>>()).clone();
    assert!(hook["clientConfig"]["caBundle"].is_string(), "the plain manifests use the secret TLS mode");
}
