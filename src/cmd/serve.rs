//! `kube-once serve`: the HTTPS admission webhook.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kube_once_server::certs::{self, kube::SelfManagedConfig};
use kube_once_server::{CertSource, Options, Timeouts};

use super::{ConfigArgs, parse_duration};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Address of the HTTPS admission listener (what the Service points at).
    #[arg(long, env = "KUBE_ONCE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// Address of the /preview listener; localhost only unless you say otherwise.
    #[arg(long, env = "KUBE_ONCE_PREVIEW_LISTEN", default_value = "127.0.0.1:8080")]
    pub preview_listen: SocketAddr,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// After SIGTERM: /readyz fails at once, requests are still served for this long, then connections drain.
    #[arg(long, env = "KUBE_ONCE_GRACE_PERIOD", value_parser = parse_duration, default_value_t = Timeouts::DEFAULT.grace_period.into())]
    pub grace_period: humantime::Duration,

    /// Longest time one request may take before it is answered with an error.
    #[arg(long, env = "KUBE_ONCE_REQUEST_TIMEOUT", value_parser = parse_duration, default_value_t = Timeouts::DEFAULT.request_timeout.into())]
    pub request_timeout: humantime::Duration,

    /// Connections that do not finish sending request headers within this time are closed.
    /// hyper also counts the wait for the next request on a kept-alive connection, so this is
    /// the idle timeout too: keep it above the API server's 90 s idle-connection timeout, so the
    /// API server closes idle connections first and never sends a request into one being closed.
    #[arg(long, env = "KUBE_ONCE_HEADER_READ_TIMEOUT", value_parser = parse_duration, default_value_t = Timeouts::DEFAULT.header_read_timeout.into())]
    pub header_read_timeout: humantime::Duration,
}

/// Where the serving certificate comes from. With no flag at all: an in-memory
/// self-signed certificate whose CA bundle is logged.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// PEM certificate chain; re-read when its content changes.
    #[arg(long, env = "KUBE_ONCE_TLS_CERT_FILE", requires = "tls_key_file", conflicts_with = "self_managed")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key matching --tls-cert-file.
    #[arg(long, env = "KUBE_ONCE_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// How often certificate files (or the self-managed Secret) are checked for changes.
    #[arg(long, env = "KUBE_ONCE_CERT_POLL_INTERVAL", value_parser = parse_duration, default_value = "10s")]
    pub cert_poll_interval: humantime::Duration,

    /// Create and renew the CA and serving certificate in a Secret, and patch the caBundle of the webhook configuration.
    #[arg(long, env = "KUBE_ONCE_SELF_MANAGED")]
    pub self_managed: bool,

    /// Self-managed: the Secret holding CA and serving certificate.
    #[arg(long, env = "KUBE_ONCE_TLS_SECRET", default_value = "kube-once-tls")]
    pub tls_secret: String,

    /// Self-managed: the MutatingWebhookConfiguration whose caBundle is kept current.
    #[arg(long, env = "KUBE_ONCE_WEBHOOK_CONFIGURATION", default_value = "kube-once")]
    pub webhook_configuration: String,

    /// The webhook Service name (certificate DNS names are <service>.<namespace>.svc[.cluster.local]).
    #[arg(long, env = "KUBE_ONCE_SERVICE", default_value = "kube-once")]
    pub service: String,

    /// Namespace of the webhook's Service and Secret (in a pod: from the downward API).
    #[arg(long, env = "KUBE_ONCE_NAMESPACE", default_value = "kube-once")]
    pub namespace: String,

    /// Self-managed: lifetime of a generated serving certificate.
    #[arg(long, env = "KUBE_ONCE_CERT_VALIDITY", value_parser = parse_duration, default_value = "365d")]
    pub cert_validity: humantime::Duration,

    /// Self-managed: renew this long before the serving certificate expires.
    #[arg(long, env = "KUBE_ONCE_CERT_RENEW_BEFORE", value_parser = parse_duration, default_value = "30d")]
    pub cert_renew_before: humantime::Duration,
}

impl ServeArgs {
    /// The server's options: the configuration file read and checked, the
    /// certificate source chosen.
    pub fn options(self) -> anyhow::Result<Options> {
        Ok(Options {
            listen: self.listen,
            preview_listen: self.preview_listen,
            config: self.config.load()?,
            certs: self.tls.source(),
            timeouts: Timeouts {
                header_read_timeout: self.header_read_timeout.into(),
                request_timeout: self.request_timeout.into(),
                grace_period: self.grace_period.into(),
            },
        })
    }
}

impl TlsArgs {
    pub fn source(self) -> CertSource {
        let poll_interval = self.cert_poll_interval.into();
        if self.self_managed {
            return CertSource::SelfManaged(self.self_managed_config());
        }
        match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert), Some(key)) => CertSource::Files { cert, key, poll_interval },
            // clap's `requires` makes a lone file impossible.
            _ => {
                let mut names = certs::service_dns_names(&self.service, &self.namespace);
                names.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
                CertSource::InMemory { names, validity: self.cert_validity.into() }
            }
        }
    }

    pub fn self_managed_config(&self) -> SelfManagedConfig {
        SelfManagedConfig {
            namespace: self.namespace.clone(),
            service: self.service.clone(),
            secret: self.tls_secret.clone(),
            webhook_configuration: self.webhook_configuration.clone(),
            validity: self.cert_validity.into(),
            renew_before: self.cert_renew_before.into(),
            poll_interval: self.cert_poll_interval.into(),
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let options = args.options()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(kube_once_server::run(options))
}
