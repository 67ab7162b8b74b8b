//! The cluster admin's side: certificates from `kube-once certs`, the chart
//! rendered by the real helm in `secret` TLS mode, and the objects the
//! harness plays with (MutatingWebhookConfiguration, Service, ConfigMap).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cluster::str_at;
use crate::support::{binary, env, yaml};

pub const RELEASE: &str = "kube-once";
pub const NAMESPACE: &str = "kube-once";

pub struct CertFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Installation {
    pub certs: CertFiles,
    pub webhook_configuration: Value,
    pub service: Value,
    /// The webhook's own Deployment: how `serve` is started.
    pub deployment: Value,
    pub config_map: Value,
    /// The parsed configuration file of the ConfigMap.
    pub config: Value,
}

/// The TLS Secret the admin creates in `secret` mode.
pub const TLS_SECRET: &str = "kube-once-tls";

/// Certificates, then the chart rendered with `values` (`key=value`, as for
/// `helm --set`) on top of the `secret` TLS mode.
pub fn install(work: &Path, values: &[&str]) -> Result<Installation> {
    let certs = generate_certs(&work.join("certs"))?;
    let ca_pem = std::fs::read(&certs.ca).context("cannot read ca.crt")?;
    let ca_bundle = base64_simd::STANDARD.encode_to_string(ca_pem);
    let objects = render_chart(&ca_bundle, values)?;
    let find = |kind: &str| -> Result<Value> {
        let mut found = objects.iter().filter(|o| str_at(o, "/kind") == Some(kind));
        match (found.next(), found.next()) {
            (Some(object), None) => Ok(object.clone()),
            (None, _) => bail!("the rendered chart has no {kind}"),
            (Some(_), Some(_)) => bail!("the rendered chart has several {kind}s; the harness expects one"),
        }
    };
    let webhook_configuration = find("MutatingWebhookConfiguration")?;
    let service = find("Service")?;
    let deployment = find("Deployment")?;
    let config_map = find("ConfigMap")?;
    let data = config_map.get("data").and_then(Value::as_object).context("the chart's ConfigMap has no data")?;
    let text = match data.values().collect::<Vec<_>>().as_slice() {
        [text] => text.as_str().context("ConfigMap data is not a string")?.to_owned(),
        _ => bail!("the chart's ConfigMap should hold exactly one file, it has {:?}", data.keys().collect::<Vec<_>>()),
    };
    let config: Value = serde_yaml_ng::from_str(&text).context("the rendered configuration file is not YAML")?;
    Ok(Installation { certs, webhook_configuration, service, deployment, config_map, config })
}

fn generate_certs(out_dir: &Path) -> Result<CertFiles> {
    let output = std::process::Command::new(binary())
        .args(["certs", "--service", RELEASE, "--namespace", NAMESPACE, "--out-dir"])
        .arg(out_dir)
        .output()
        .context("cannot run kube-once certs")?;
    if !output.status.success() {
        bail!("kube-once certs failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let certs = CertFiles { ca: out_dir.join("ca.crt"), cert: out_dir.join("tls.crt"), key: out_dir.join("tls.key") };
    for file in [&certs.ca, &certs.cert, &certs.key] {
        if !file.is_file() {
            bail!("kube-once certs did not write {}", file.display());
        }
    }
    Ok(certs)
}

/// `helm template` of the chart in `secret` TLS mode with `values`, every object as JSON.
pub fn render_chart(ca_bundle: &str, values: &[&str]) -> Result<Vec<Value>> {
    let helm = env::var("KUBE_ONCE_HELM")?;
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/kube-once");
    let output = std::process::Command::new(&helm)
        .args(["template", RELEASE])
        .arg(&chart)
        .args(["--namespace", NAMESPACE, "--set", "tls.mode=secret", "--set", &format!("tls.secretName={TLS_SECRET}")])
        .args(["--set", &format!("tls.caBundle={ca_bundle}")])
        .args(values.iter().flat_map(|value| ["--set", value]))
        .output()
        .with_context(|| format!("cannot run {helm}"))?;
    if !output.status.success() {
        bail!("helm template failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    yaml::documents(&String::from_utf8_lossy(&output.stdout), "helm template output")
}
