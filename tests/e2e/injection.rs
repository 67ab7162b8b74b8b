//! What the mutated workload must look like (the injected shape of the
//! brief and each case's expectations), and the strict schema check.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::cluster::str_at;
use crate::corpus::Case;
use crate::kinds::template_pointer;

pub const INSTALL: &str = "kube-once-install";
pub const RUN: &str = "kube-once-run";

/// How the webhook's configuration delivers the pod binary (its `delivery` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// `kube-once-install` copies it into an emptyDir.
    InitContainer,
    /// The tools image is mounted as an image volume, subPath `pod`.
    ImageVolume,
}

impl Delivery {
    /// The delivery a rendered configuration file asks for (absent: initContainer).
    pub fn of_config(config: &Value) -> Result<Self> {
        match str_at(config, "/delivery") {
            None | Some("initContainer") => Ok(Delivery::InitContainer),
            Some("imageVolume") => Ok(Delivery::ImageVolume),
            Some(other) => bail!("the rendered configuration has delivery {other:?}, which the harness does not know"),
        }
    }

    /// The initContainers kube-once injects, in order.
    pub fn injected(self) -> &'static [&'static str] {
        match self {
            Delivery::InitContainer => &[INSTALL, RUN],
            Delivery::ImageVolume => &[RUN],
        }
    }
}

/// The injected shape of the brief, on the patched object.
pub fn check_injection(case: &Case, object: &Value, tools_image: &str, delivery: Delivery) -> Result<()> {
    let expect = &case.expect;
    let original = &case.deployment;
    let template = template_pointer(original);
    // Nothing outside the pod template changes, and the app containers stay as they were.
    let without_template = |o: &Value| {
        let mut o = o.clone();
        if let Some(template) = o.pointer_mut(&template) {
            *template = Value::Null;
        }
        o
    };
    ensure!(
        without_template(object) == without_template(original),
        "the patch touched something outside the pod template"
    );
    let spec = object.pointer(&format!("{template}/spec")).context("no pod spec")?;
    ensure!(
        original.pointer(&format!("{template}/spec/containers")) == Some(&spec["containers"]),
        "the app containers were changed"
    );
    let status_pointer = format!("{template}/metadata/annotations/kube-once.io~1status");
    ensure!(object.pointer(&status_pointer).is_some(), "the pod template has no kube-once.io/status annotation");
    for key in &expect.node_selector_keys {
        ensure!(
            spec.pointer(&format!("/nodeSelector/{}", key.replace('~', "~0").replace('/', "~1"))).is_some(),
            "nodeSelector lacks {key}"
        );
    }

    if expect.restricted {
        let violations = crate::support::pss::restricted_violations(spec);
        ensure!(
            violations.is_empty(),
            "the app meets PSS restricted, the mutated pod does not:\n{}",
            violations.join("\n")
        );
    }

    let names: Vec<&str> = spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| str_at(c, "/name"))
        .collect();
    let Some(run_command) = &expect.run_command else {
        ensure!(!names.contains(&RUN), "no run annotation, yet {RUN} was injected");
        return Ok(());
    };
    let mut expected_names: Vec<&str> = expect.user_init_containers.iter().map(String::as_str).collect();
    expected_names.extend(delivery.injected());
    ensure!(names == expected_names, "initContainers should be {expected_names:?}, are {names:?}");

    let init = |name: &str| {
        spec["initContainers"]
            .as_array()
            .and_then(|list| list.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    let run = init(RUN);
    let volume = spec["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "kube-once-bin"))
        .context("no kube-once-bin volume")?;
    let mount =
        |c: &Value| c["volumeMounts"].as_array().and_then(|m| m.iter().find(|m| m["name"] == "kube-once-bin")).cloned();
    let status = object
        .pointer(&status_pointer)
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .context("kube-once.io/status is not JSON")?;
    match delivery {
        Delivery::InitContainer => {
            let install = init(INSTALL);
            ensure!(
                install["image"] == tools_image,
                "{INSTALL} should use the tools image {tools_image}, uses {}",
                install["image"]
            );
            ensure!(
                install["command"] == json!(["/pod/kube-once", "install", "/kube-once-bin"]),
                "{INSTALL} command: {}",
                install["command"]
            );
            ensure!(volume.get("emptyDir").is_some(), "kube-once-bin is not an emptyDir");
            ensure!(
                mount(&install).is_some_and(|m| m["mountPath"] == "/kube-once-bin"),
                "{INSTALL} does not mount kube-once-bin"
            );
            ensure!(
                mount(&run).is_some_and(|m| m["mountPath"] == "/kube-once-bin"
                    && m["readOnly"] == true
                    && m.get("subPath").is_none()),
                "{RUN} must mount kube-once-bin read-only at /kube-once-bin"
            );
            ensure!(status.get("delivery").is_none(), "status of an initContainer delivery: {status}");
        }
        Delivery::ImageVolume => {
            ensure!(
                volume
                    == &json!({"name": "kube-once-bin", "image": {"reference": tools_image, "pullPolicy": "IfNotPresent"}}),
                "kube-once-bin should be an image volume of the tools image {tools_image}: {volume}"
            );
            ensure!(
                mount(&run).is_some_and(|m| m["mountPath"] == "/kube-once-bin"
                    && m["readOnly"] == true
                    && m["subPath"] == "pod"),
                "{RUN} must mount kube-once-bin read-only at /kube-once-bin with subPath pod"
            );
            ensure!(status["delivery"] == "imageVolume", "the status should record the delivery: {status}");
        }
    }

    let app_name = expect.app_container.as_deref().context("patched run cases name their appContainer")?;
    let app = spec["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == app_name))
        .context("app container missing")?;
    ensure!(run["image"] == app["image"], "{RUN} should use the app image {}, uses {}", app["image"], run["image"]);
    let mut command = vec![json!("/kube-once-bin/kube-once"), json!("lock"), json!("--")];
    command.extend(run_command.iter().map(|w| json!(w)));
    ensure!(run["command"] == Value::Array(command), "{RUN} command: {}", run["command"]);
    for field in ["envFrom", "workingDir", "securityContext", "resources", "imagePullPolicy"] {
        ensure!(
            run.get(field) == app.get(field),
            "{RUN} should copy the app's {field}: {:?} vs {:?}",
            run.get(field),
            app.get(field)
        );
    }
    // The app's env first and unchanged, then the plan.
    let app_env = app["env"].as_array().cloned().unwrap_or_default();
    let run_env = run["env"].as_array().cloned().unwrap_or_default();
    ensure!(
        run_env.len() > app_env.len() && run_env[..app_env.len()] == app_env[..],
        "{RUN} env should start with the app's env"
    );
    let plan: BTreeMap<&str, &Value> =
        run_env[app_env.len()..].iter().filter_map(|e| Some((e["name"].as_str()?, e))).collect();
    ensure!(
        plan.keys().all(|k| k.starts_with("KUBE_ONCE_")),
        "only KUBE_ONCE_* vars follow the app's env: {:?}",
        plan.keys()
    );
    for (name, value) in &expect.env {
        ensure!(
            plan.get(name.as_str()).and_then(|e| e["value"].as_str()) == Some(value),
            "{name} should be {value:?}, is {:?}",
            plan.get(name.as_str())
        );
    }
    for (name, field) in [("KUBE_ONCE_NAMESPACE", "metadata.namespace"), ("KUBE_ONCE_POD_NAME", "metadata.name")] {
        ensure!(
            plan.get(name).and_then(|e| e.pointer("/valueFrom/fieldRef/fieldPath")) == Some(&json!(field)),
            "{name} should come from the downward API ({field})"
        );
    }
    for name in [
        "KUBE_ONCE_DATABASE_URL_ENV",
        "KUBE_ONCE_LOCK_NAME",
        "KUBE_ONCE_RECORD",
        "KUBE_ONCE_TIMEOUT",
        "KUBE_ONCE_IMAGE",
        "KUBE_ONCE_DEPLOYMENT",
    ] {
        ensure!(plan.contains_key(name), "{RUN} lacks {name}");
    }
    Ok(())
}

/// The schemas mutated objects are checked against: image volumes are beta
/// and on by default from this version.
pub const KUBERNETES_VERSION: &str = "1.35.0";

/// Every mutated workload against the official schemas, strictly (unknown fields fail).
pub fn validate_strict(kubernetes_validate: &str, admitted: &[(Case, Value)], work: &Path) -> Result<()> {
    let dir = work.join("validate");
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    for (case, object) in admitted {
        // As the API server holds it: JSON, which YAML readers take as it is
        // (written as YAML, a string such as a timestamp annotation can come back a date).
        let path = dir.join(format!("{}.json", case.name));
        std::fs::write(&path, serde_json::to_string_pretty(object)?)?;
        files.push(path);
    }
    if files.is_empty() {
        bail!("no workload was mutated, nothing to validate");
    }
    let output = std::process::Command::new(kubernetes_validate)
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .with_context(|| format!("cannot run {kubernetes_validate}"))?;
    if !output.status.success() {
        bail!(
            "mutated workloads fail strict validation:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
