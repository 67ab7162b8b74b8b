//! The Pod Security Standard `restricted` profile, as a check over a pod spec
//! (`spec.template.spec` of a Deployment, or a Pod's `spec`) in JSON form.
//!
//! Written once and shared: the chart tests run it on every pod template the
//! chart renders, the end-to-end tests on Deployments after injection. It
//! follows the controls of <https://kubernetes.io/docs/concepts/security/pod-security-standards/>
//! (baseline, then restricted) for Linux pods, the way the API server's
//! PodSecurity admission applies the `latest` version.

use serde_json::Value;

/// Sysctls the baseline profile allows (namespaced, isolated from the node).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Volume sources the restricted profile allows. `image` since Kubernetes
/// 1.33 (pod-security-admission's check_restrictedVolumes, kubernetes/kubernetes#130394),
/// though the Pod Security Standards page did not list it yet.
const RESTRICTED_VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

const SELINUX_TYPES: &[&str] = &["container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

/// Every way `pod_spec` breaks the `restricted` profile, one readable line
/// each (`container "app": allowPrivilegeEscalation must be false`). Empty
/// when the pod would be admitted by PodSecurity `enforce: restricted`.
pub fn restricted_violations(pod_spec: &Value) -> Vec<String> {
    let mut violations = Vec::new();
    let pod_context = &pod_spec["securityContext"];

    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod_spec[field] == Value::Bool(true) {
            violations.push(format!("pod: {field} must not be true"));
        }
    }
    check_common_context("pod", pod_context, &mut violations);
    if let Some(sysctls) = pod_context["sysctls"].as_array() {
        for name in sysctls.iter().filter_map(|sysctl| sysctl["name"].as_str()) {
            if !SAFE_SYSCTLS.contains(&name) {
                violations.push(format!("pod: sysctl {name} is not in the safe set"));
            }
        }
    }
    for volume in pod_spec["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or("?");
        let sources =
            volume.as_object().into_iter().flatten().map(|(key, _)| key.as_str()).filter(|key| *key != "name");
        for source in sources {
            if !RESTRICTED_VOLUME_TYPES.contains(&source) {
                violations.push(format!("volume {name:?}: type {source} is not allowed (hostPath and the like)"));
            }
        }
    }

    let pod_non_root = pod_context["runAsNonRoot"] == Value::Bool(true);
    let pod_seccomp_ok = seccomp_confined(&pod_context["seccompProfile"]);

    for (list, container) in containers(pod_spec) {
        let who = format!("{list} {:?}", container["name"].as_str().unwrap_or("?"));
        let context = &container["securityContext"];
        check_common_context(&who, context, &mut violations);

        if context["privileged"] == Value::Bool(true) {
            violations.push(format!("{who}: privileged must not be true"));
        }
        if context["procMount"].as_str().is_some_and(|mount| mount != "Default") {
            violations.push(format!("{who}: procMount must be Default"));
        }
        for port in container["ports"].as_array().into_iter().flatten() {
            if port["hostPort"].as_i64().is_some_and(|host_port| host_port != 0) {
                violations.push(format!("{who}: hostPort must not be set"));
            }
        }
        if context["allowPrivilegeEscalation"] != Value::Bool(false) {
            violations.push(format!("{who}: allowPrivilegeEscalation must be false"));
        }
        match &context["runAsNonRoot"] {
            Value::Bool(false) => violations.push(format!("{who}: runAsNonRoot must not be false")),
            Value::Bool(true) => {}
            _ if pod_non_root => {}
            _ => violations.push(format!("{who}: runAsNonRoot must be true (here or on the pod)")),
        }
        let seccomp = &context["seccompProfile"];
        if seccomp.is_null() && !pod_seccomp_ok {
            violations.push(format!("{who}: seccompProfile must be RuntimeDefault or Localhost (here or on the pod)"));
        } else if !seccomp.is_null() && !seccomp_confined(seccomp) {
            violations.push(format!("{who}: seccompProfile must be RuntimeDefault or Localhost"));
        }
        let capabilities = &context["capabilities"];
        let drops_all = capabilities["drop"].as_array().into_iter().flatten().any(|cap| cap == "ALL");
        if !drops_all {
            violations.push(format!("{who}: capabilities.drop must include ALL"));
        }
        for added in capabilities["add"].as_array().into_iter().flatten() {
            if added != "NET_BIND_SERVICE" {
                violations.push(format!("{who}: capability {added} may not be added (only NET_BIND_SERVICE)"));
            }
        }
    }
    violations
}

/// Controls that apply the same way to the pod's and to each container's
/// securityContext.
fn check_common_context(who: &str, context: &Value, violations: &mut Vec<String>) {
    if context["windowsOptions"]["hostProcess"] == Value::Bool(true) {
        violations.push(format!("{who}: windowsOptions.hostProcess must not be true"));
    }
    if context["runAsUser"].as_i64() == Some(0) {
        violations.push(format!("{who}: runAsUser must not be 0"));
    }
    if context["seccompProfile"]["type"] == "Unconfined" {
        violations.push(format!("{who}: seccompProfile must not be Unconfined"));
    }
    if context["appArmorProfile"]["type"].as_str().is_some_and(|kind| kind != "RuntimeDefault" && kind != "Localhost") {
        violations.push(format!("{who}: appArmorProfile must be RuntimeDefault or Localhost"));
    }
    let selinux = &context["seLinuxOptions"];
    if let Some(kind) = selinux["type"].as_str().filter(|kind| !kind.is_empty() && !SELINUX_TYPES.contains(kind)) {
        violations.push(format!("{who}: seLinuxOptions.type {kind} is not allowed"));
    }
    for field in ["user", "role"] {
        if selinux[field].as_str().is_some_and(|value| !value.is_empty()) {
            violations.push(format!("{who}: seLinuxOptions.{field} must not be set"));
        }
    }
}

fn seccomp_confined(profile: &Value) -> bool {
    matches!(profile["type"].as_str(), Some("RuntimeDefault" | "Localhost"))
}

/// Regular, init and ephemeral containers, each with the list it came from.
fn containers(pod_spec: &Value) -> impl Iterator<Item = (&'static str, &Value)> {
    [("container", "containers"), ("initContainer", "initContainers"), ("ephemeralContainer", "ephemeralContainers")]
        .into_iter()
        .flat_map(move |(label, list)| pod_spec[list].as_array().into_iter().flatten().map(move |c| (label, c)))
}
