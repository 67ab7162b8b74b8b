//! `kube-once serve`: the HTTPS admission webhook.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kube_once_server::certs::{self, kube::SelfManagedConfig};
use kube_once_server::migrations::EventsOptions;
use kube_once_server::{CertSource, Limits, ServeOptions, Timeouts};

use super::{ConfigArgs, parse_duration};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Address of the HTTPS admission listener (what the Service points at).
    #[arg(long, env = "KUBE_ONCE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// Address of the plain-HTTP /preview listener; a loopback address unless --preview-listen-any.
    #[arg(long, env = "KUBE_ONCE_PREVIEW_LISTEN", default_value = "127.0.0.1:8080")]
    pub preview_listen: SocketAddr,

    /// Allow a --preview-listen address other than loopback: /preview is plain HTTP with no
    /// authentication, and parses arbitrary YAML, so only expose it on a network you trust.
    #[arg(long, env = "KUBE_ONCE_PREVIEW_LISTEN_ANY", conflicts_with = "no_preview")]
    pub preview_listen_any: bool,

    /// Do not serve /preview at all.
    #[arg(long, env = "KUBE_ONCE_NO_PREVIEW")]
    pub no_preview: bool,

    /// Memory admission work may take at once (e.g. 240Mi). Each admission reserves a share
    /// proportional to its body once read (an eighth holds bodies as they arrive); admissions that do
    /// not fit wait.
    #[arg(long, env = "KUBE_ONCE_ADMISSION_MEMORY", default_value_t = ByteSize(Limits::DEFAULT.admission_memory))]
    pub admission_memory: ByteSize,

    /// Admissions that may wait for --admission-memory; more are answered 429.
    #[arg(long, env = "KUBE_ONCE_ADMISSION_QUEUE", default_value_t = Limits::DEFAULT.admission_queue)]
    pub admission_queue: usize,

    /// Longest an admission waits for --admission-memory before it is answered 503.
    #[arg(long, env = "KUBE_ONCE_ADMISSION_QUEUE_TIMEOUT", value_parser = parse_duration, default_value_t = Limits::DEFAULT.admission_queue_timeout.into())]
    pub admission_queue_timeout: humantime::Duration,

    /// Open connections per listener; more are closed at once. Each idle TLS connection holds
    /// about 25 KiB: size it with the pod's memory limit.
    #[arg(long, env = "KUBE_ONCE_MAX_CONNECTIONS", default_value_t = Limits::DEFAULT.max_connections)]
    pub max_connections: usize,

    /// Open connections per listener from one client address; more from it are closed at once,
    /// so one client cannot take the room others need. The API server's own address (or its
    /// konnectivity agent's) counts as one client: keep this above its concurrent admissions.
    #[arg(long, env = "KUBE_ONCE_MAX_CONNECTIONS_PER_CLIENT", default_value_t = Limits::DEFAULT.max_connections_per_client)]
    pub max_connections_per_client: usize,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub events: EventsArgs,

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

/// Migration Events and metrics: the server watches the pods kube-once
/// injected and records how their migration went on the owning Deployment.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Do not watch injected pods, and write no migration Events or metrics.
    #[arg(long, env = "KUBE_ONCE_NO_EVENTS")]
    pub no_events: bool,

    /// The coordination.k8s.io Lease (in --namespace) that elects the one replica that records.
    #[arg(long, env = "KUBE_ONCE_EVENTS_LEASE", default_value = "kube-once-events")]
    pub events_lease: String,

    /// How long the recording replica holds the Lease without renewing it (it renews every third of it).
    #[arg(long, env = "KUBE_ONCE_EVENTS_LEASE_DURATION", value_parser = parse_duration, default_value_t = EventsOptions::DEFAULT_LEASE_DURATION.into())]
    pub events_lease_duration: humantime::Duration,

    /// MigrationWaiting does not name the lock holder: serve reads no pod logs (otherwise it reads the
    /// waiting pod's newest kube-once-run lines once, and needs RBAC pods/log get).
    #[arg(long, env = "KUBE_ONCE_NO_HOLDER_FROM_LOGS")]
    pub no_holder_from_logs: bool,

    /// This replica's name in the Lease and the Events (in a pod: from the downward API); default: the host name.
    #[arg(long, env = "KUBE_ONCE_WEBHOOK_POD_NAME")]
    pub pod_name: Option<String>,
}

impl EventsArgs {
    pub fn options(self, namespace: &str) -> anyhow::Result<Option<EventsOptions>> {
        if self.no_events {
            return Ok(None);
        }
        let duration: std::time::Duration = self.events_lease_duration.into();
        if duration < std::time::Duration::from_secs(1) {
            anyhow::bail!(
                "--events-lease-duration {}: a Lease is kept in whole seconds; give at least 1s (default {})",
                self.events_lease_duration,
                humantime::format_duration(EventsOptions::DEFAULT_LEASE_DURATION)
            );
        }
        let identity = self
            .pod_name
            .or_else(|| std::env::var("HOSTNAME").ok())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| format!("kube-once-{}", std::process::id()));
        Ok(Some(EventsOptions {
            namespace: namespace.to_owned(),
            lease: self.events_lease,
            identity,
            lease_duration: duration,
            holder_from_logs: !self.no_holder_from_logs,
        }))
    }
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

    /// The webhook Service name (certificate DNS names are `<service>.<namespace>.svc[.cluster.local]`).
    #[arg(long, env = "KUBE_ONCE_SERVICE", default_value = "kube-once")]
    pub service: String,

    /// Namespace of the webhook's Service and Secret (in a pod: from the downward API).
    #[arg(long, env = "KUBE_ONCE_WEBHOOK_NAMESPACE", default_value = "kube-once")]
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
    pub fn options(self) -> anyhow::Result<ServeOptions> {
        let preview_listen = match (self.no_preview, self.preview_listen_any) {
            (true, _) => None,
            (false, false) if !self.preview_listen.ip().is_loopback() => anyhow::bail!(
                "--preview-listen {}: /preview is plain HTTP with no authentication, so it listens on a \
                 loopback address only (e.g. 127.0.0.1:8080); add --preview-listen-any to expose it anyway, \
                 or --no-preview to turn it off",
                self.preview_listen
            ),
            (false, _) => Some(self.preview_listen),
        };
        if self.max_connections == 0 {
            anyhow::bail!(
                "--max-connections 0 would refuse every connection; give at least 1 (default {})",
                Limits::DEFAULT.max_connections
            );
        }
        if self.max_connections_per_client == 0 {
            anyhow::bail!(
                "--max-connections-per-client 0 would refuse every connection; give at least 1 (default {})",
                Limits::DEFAULT.max_connections_per_client
            );
        }
        let events = self.events.options(&self.tls.namespace)?;
        Ok(ServeOptions {
            events,
            listen: self.listen,
            preview_listen,
            config: self.config.load()?,
            certs: self.tls.source(),
            timeouts: Timeouts {
                header_read_timeout: self.header_read_timeout.into(),
                request_timeout: self.request_timeout.into(),
                grace_period: self.grace_period.into(),
            },
            limits: Limits {
                admission_memory: self.admission_memory.0,
                admission_queue: self.admission_queue,
                admission_queue_timeout: self.admission_queue_timeout.into(),
                max_connections: self.max_connections,
                max_connections_per_client: self.max_connections_per_client,
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

const UNITS: [(&str, u64); 4] = [("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10), ("", 1)];

/// A byte count as Kubernetes writes memory quantities: `160Mi`, `1Gi`, `65536`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = UNITS
        .iter()
        .find_map(|(suffix, unit)| text.strip_suffix(suffix).map(|number| (number, *unit)))
        .unwrap_or((text, 1));
    number.trim().parse::<u64>().ok().and_then(|number| number.checked_mul(unit)).filter(|bytes| *bytes > 0).ok_or_else(
        || format!("`{text}` is not a memory size; write a whole number of bytes with Ki, Mi or Gi, e.g. 160Mi"),
    )
}

/// A byte count on the command line (see [`parse_bytes`]), shown in the largest exact unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_bytes(text).map(ByteSize)
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (suffix, unit) = UNITS.iter().find(|(_, unit)| self.0.is_multiple_of(*unit)).copied().unwrap_or(("", 1));
        write!(f, "{}{suffix}", self.0 / unit)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn options(args: &[&str]) -> anyhow::Result<ServeOptions> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?;
        cli.serve.options()
    }

    #[test]
    fn preview_listens_on_loopback_only_unless_told_otherwise() {
        assert_eq!(options(&[]).unwrap().preview_listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(
            options(&["--preview-listen", "[::1]:9000"]).unwrap().preview_listen,
            Some("[::1]:9000".parse().unwrap())
        );
        let refused = options(&["--preview-listen", "0.0.0.0:8080"]).unwrap_err().to_string();
        assert!(refused.contains("--preview-listen-any") && refused.contains("--no-preview"), "{refused}");
        let any = options(&["--preview-listen", "0.0.0.0:8080", "--preview-listen-any"]).unwrap();
        assert_eq!(any.preview_listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(options(&["--no-preview"]).unwrap().preview_listen, None);
        assert_eq!(options(&["--no-preview", "--preview-listen", "0.0.0.0:1"]).unwrap().preview_listen, None);
    }

    #[test]
    fn migration_events_are_on_by_default_named_after_the_pod_and_off_with_no_events() {
        let events = options(&["--pod-name", "kube-once-7d9-a", "--namespace", "ops"]).unwrap().events.unwrap();
        assert_eq!(
            events,
            EventsOptions {
                namespace: "ops".to_owned(),
                lease: "kube-once-events".to_owned(),
                identity: "kube-once-7d9-a".to_owned(),
                lease_duration: EventsOptions::DEFAULT_LEASE_DURATION,
                holder_from_logs: true,
            }
        );
        assert!(!options(&["--no-holder-from-logs"]).unwrap().events.unwrap().holder_from_logs);
        assert_eq!(options(&["--no-events"]).unwrap().events, None);
        let refused = options(&["--events-lease-duration", "500ms"]).unwrap_err().to_string();
        assert!(refused.contains("--events-lease-duration") && refused.contains("at least 1s"), "{refused}");
    }

    #[test]
    fn limits_default_to_the_library_defaults_and_take_memory_sizes() {
        assert_eq!(options(&[]).unwrap().limits, Limits::DEFAULT);
        let limits = options(&["--admission-memory", "64Mi", "--max-connections", "10"]).unwrap().limits;
        assert_eq!((limits.admission_memory, limits.max_connections), (64 << 20, 10));
        assert!(options(&["--max-connections", "0"]).is_err());
        assert!(options(&["--admission-memory", "lots"]).is_err());
        assert_eq!(ByteSize(Limits::DEFAULT.admission_memory).to_string(), "240Mi");
        assert_eq!(parse_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(parse_bytes("1536"), Ok(1536));
    }
}
