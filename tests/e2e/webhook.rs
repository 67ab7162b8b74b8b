//! The webhook as the API server reaches it: the real `kube-once serve` on a
//! loopback port standing in for the Service, called over HTTPS at the
//! Service DNS name, trusting only the caBundle, within timeoutSeconds.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::Value;

use crate::cluster::str_at;
use crate::install::{Installation, binary};

pub struct Webhook {
    /// Killed when the harness is done (kill_on_drop).
    child: tokio::process::Child,
    client: reqwest::Client,
    url: String,
    ready_url: String,
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot find a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

impl Webhook {
    /// Starts `serve` with the rendered configuration and certificates and
    /// waits (with a deadline) until /readyz answers over the trusted TLS.
    pub async fn start(installation: &Installation, work: &Path) -> Result<Self> {
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
        let ca_pem = base64::engine::general_purpose::STANDARD.decode(ca_bundle).context("caBundle is not base64")?;
        let port = free_port()?;
        let client = https_client(&ca_pem, &format!("{name}.{namespace}.svc"), port, timeout)?;

        let log = std::fs::File::create(work.join("serve.log")).context("cannot create serve.log")?;
        let child = tokio::process::Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&installation.config_file)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--preview-listen",
                &format!("127.0.0.1:{}", free_port()?),
            ])
            .arg("--tls-cert-file")
            .arg(&installation.certs.cert)
            .arg("--tls-key-file")
            .arg(&installation.certs.key)
            .env("KUBE_ONCE_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start kube-once serve")?;
        let host = format!("https://{name}.{namespace}.svc:{port}");
        let mut webhook = Webhook { child, client, url: format!("{host}{path}"), ready_url: format!("{host}/readyz") };
        webhook.wait_ready(work).await?;
        Ok(webhook)
    }

    async fn wait_ready(&mut self, work: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "kube-once serve exited ({status}): {}",
                    std::fs::read_to_string(work.join("serve.log")).unwrap_or_default()
                );
            }
            let last = match self.client.get(&self.ready_url).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => format!("HTTP {}", response.status()),
                Err(error) => format!("{error:#}"),
            };
            if Instant::now() > deadline {
                bail!(
                    "kube-once serve not ready after 30s (last: {last}); log: {}",
                    std::fs::read_to_string(work.join("serve.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

/// A client that trusts only `ca_pem`, resolves `host` to a loopback port
/// (the Service stand-in) and gives up after `timeout`, as the API server does.
fn https_client(ca_pem: &[u8], host: &str, port: u16, timeout: Duration) -> Result<reqwest::Client> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.context("caBundle holds an invalid PEM certificate")?)
            .context("caBundle certificate rejected")?;
    }
    if roots.is_empty() {
        bail!("caBundle holds no certificate");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("rustls protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve(host, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .timeout(timeout)
        .https_only(true)
        .build()
        .context("cannot build the HTTPS client")
}
