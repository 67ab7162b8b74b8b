//! The webhook as the API server reaches it: the real `kube-once serve` on a
//! loopback port standing in for the Service, called over HTTPS at the
//! Service DNS name, trusting only the caBundle, within timeoutSeconds.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cluster::{str_at, strings_at};
use crate::install::{Installation, TLS_SECRET};
use crate::support::serve::{Serve, Server};

pub struct Webhook {
    /// Killed when the harness is done.
    server: Server,
    client: reqwest::Client,
    url: String,
}

impl Webhook {
    /// Starts `serve` with the rendered configuration and certificates and
    /// waits (with a deadline) until /readyz answers over the trusted TLS.
    /// It finds no Kubernetes API, so it records no migration Events.
    pub async fn start(installation: &Installation, work: &Path) -> Result<Self> {
        Self::start_replica(installation, work, &WebhookPod { name: "kube-once-0", kubeconfig: None }).await
    }

    /// The same as the chart's pod `pod.name`, reaching the API server
    /// through `pod.kubeconfig` (in a cluster: its ServiceAccount).
    pub async fn start_replica(installation: &Installation, work: &Path, pod: &WebhookPod<'_>) -> Result<Self> {
        let hook = installation
            .webhook_configuration
            .pointer("/webhooks/0")
            .context("MutatingWebhookConfiguration without webhooks")?;
        let service = hook.pointer("/clientConfig/service").context("the webhook is not called through a Service")?;
        let (name, namespace) =
            (str_at(service, "/name").unwrap_or_default(), str_at(service, "/namespace").unwrap_or_default());
        if (Some(name), Some(namespace))
            != (str_at(&installation.service, "/metadata/name"), str_at(&installation.service, "/metadata/namespace"))
        {
            bail!("the webhook calls Service {namespace}/{name}, which the chart does not render");
        }
        let service_port = service.get("port").and_then(Value::as_u64).unwrap_or(443);
        let ports = installation.service.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
        if !ports.iter().any(|p| p.get("port").and_then(Value::as_u64) == Some(service_port)) {
            bail!("the webhook calls port {service_port}, which the Service does not expose");
        }
        let path = str_at(service, "/path").unwrap_or("/");
        let timeout = Duration::from_secs(hook.get("timeoutSeconds").and_then(Value::as_u64).unwrap_or(10));

        let ca_bundle =
            str_at(hook, "/clientConfig/caBundle").context("the rendered webhook has no caBundle (secret mode)")?;
        let ca_pem = base64_simd::STANDARD.decode_to_vec(ca_bundle).context("caBundle is not base64")?;
        let host = format!("{name}.{namespace}.svc");

        let work = work.join(pod.name);
        std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
        let ServeCommand { argv, env } = serve_command(installation, &work, pod.name)?;
        let mut serve = Serve::with_args(argv).env_clear().envs(env);
        if let Some(kubeconfig) = pod.kubeconfig {
            serve = serve.env("KUBECONFIG", kubeconfig);
        }
        let server = serve.log_file(&work.join("serve.log")).trust(&host, &ca_pem).try_start().await?;
        // The API server trusts only the caBundle, dials the Service name and gives up after timeoutSeconds.
        let client = crate::support::tls::https_client(&[&ca_pem], &host, server.addr())
            .context("the rendered caBundle")?
            .timeout(timeout)
            .build()
            .context("cannot build the HTTPS client")?;
        let url = format!("https://{host}:{}{path}", server.port());
        Ok(Webhook { server, client, url })
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// POSTs an AdmissionReview; the answer as JSON (non-2xx is a failed call).
    pub async fn call(&self, review: &Value) -> Result<Value> {
        let response = self.client.post(&self.url).json(review).send().await.context("calling the webhook failed")?;
        let status = response.status();
        let body = response.text().await.context("reading the webhook's answer failed")?;
        if !status.is_success() {
            bail!("the webhook answered HTTP {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("the webhook's answer is not JSON: {body}"))
    }
}

/// One webhook pod: its name (the downward API's `metadata.name`) and the
/// kubeconfig standing in for its ServiceAccount (None: no API server).
pub struct WebhookPod<'a> {
    pub name: &'a str,
    pub kubeconfig: Option<&'a Path>,
}

/// `serve` as the chart's Deployment starts it: its args and env, its
/// ConfigMap and TLS Secret volumes as directories, and its listen address
/// moved to a loopback port the OS picks, which stands in for the Service.
struct ServeCommand {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

fn serve_command(installation: &Installation, work: &Path, pod: &str) -> Result<ServeCommand> {
    let spec =
        installation.deployment.pointer("/spec/template/spec").context("the chart's Deployment has no pod spec")?;
    let [container] = spec.get("containers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() else {
        bail!("the chart's Deployment should run one container");
    };
    // Every volume the server needs must be one the harness can provide.
    let pod_dir = work.join("webhook-pod");
    let mut volume_dirs = BTreeMap::new();
    for volume in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        let name = str_at(volume, "/name").context("volume without name")?;
        let dir = pod_dir.join(name);
        std::fs::create_dir_all(&dir)?;
        if let Some(config_map) = str_at(volume, "/configMap/name") {
            if Some(config_map) != str_at(&installation.config_map, "/metadata/name") {
                bail!("the server mounts ConfigMap {config_map}, which the chart does not render");
            }
            for (key, text) in installation.config_map["data"].as_object().into_iter().flatten() {
                std::fs::write(dir.join(key), text.as_str().unwrap_or_default())?;
            }
        } else if let Some(secret) = str_at(volume, "/secret/secretName") {
            if secret != TLS_SECRET {
                bail!("the server mounts Secret {secret}, not the TLS Secret {TLS_SECRET} given to the chart");
            }
            std::fs::copy(&installation.certs.cert, dir.join("tls.crt"))?;
            std::fs::copy(&installation.certs.key, dir.join("tls.key"))?;
            std::fs::copy(&installation.certs.ca, dir.join("ca.crt"))?;
        } else if volume.get("emptyDir").is_none() {
            bail!("the harness cannot stand in for volume {volume}");
        }
        volume_dirs.insert(name.to_owned(), dir);
    }
    let mut mounts = Vec::new();
    for mount in container.get("volumeMounts").and_then(Value::as_array).into_iter().flatten() {
        let (Some(name), Some(path)) = (str_at(mount, "/name"), str_at(mount, "/mountPath")) else {
            bail!("bad volumeMount {mount}")
        };
        let dir = volume_dirs.get(name).with_context(|| format!("volumeMount of unknown volume {name}"))?;
        mounts.push((path.trim_end_matches('/').to_owned(), dir.display().to_string()));
    }
    let map = |value: &str| -> String {
        for (path, dir) in &mounts {
            if let Some(rest) = value.strip_prefix(path.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{dir}{rest}");
            }
        }
        value.to_owned()
    };

    let strings = |key: &str| strings_at(container, key);
    // The image's ENTRYPOINT is the binary itself.
    let mut argv = match strings("command").as_slice() {
        [] => Vec::new(),
        [entrypoint, rest @ ..] if entrypoint == "/kube-once" => rest.to_vec(),
        other => bail!("the chart overrides the command with {other:?}; the harness expects the image's entrypoint"),
    };
    argv.extend(strings("args"));
    let target_port = container_target_port(installation, container)?;
    let mut listened = false;
    let mut argv: Vec<String> = argv
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some(("--listen", address)) => {
                listened = true;
                if !address.ends_with(&format!(":{target_port}")) {
                    return Err(anyhow::anyhow!(
                        "the server listens on {address}, the Service targets port {target_port}"
                    ));
                }
                Ok("--listen=127.0.0.1:0".to_owned())
            }
            Some(("--preview-listen", _)) => Ok(String::new()),
            Some((flag, value)) => Ok(format!("{flag}={}", map(value))),
            None => Ok(map(arg)),
        })
        .filter(|arg| !matches!(arg, Ok(a) if a.is_empty()))
        .collect::<Result<_>>()?;
    if !listened {
        bail!("the chart's server args do not set --listen; the harness cannot move it to loopback");
    }
    // The preview port is localhost-only in the pod too; here it must not collide with other tests.
    argv.push("--preview-listen=127.0.0.1:0".to_owned());
    let env =
        crate::kubelet::resolve_env(container, pod, crate::install::NAMESPACE, &crate::cluster::Cluster::default())?;
    Ok(ServeCommand { argv, env })
}

/// The containerPort the Service's targetPort names (or numbers).
fn container_target_port(installation: &Installation, container: &Value) -> Result<u64> {
    let target = installation.service.pointer("/spec/ports/0/targetPort").context("the Service has no targetPort")?;
    if let Some(number) = target.as_u64() {
        return Ok(number);
    }
    let name = target.as_str().context("targetPort is neither a number nor a name")?;
    container
        .get("ports")
        .and_then(Value::as_array)
        .and_then(|ports| ports.iter().find(|p| p["name"] == name))
        .and_then(|p| p["containerPort"].as_u64())
        .with_context(|| format!("the Service targets port {name}, which the server container does not declare"))
}
