//! Command line: one static binary, five subcommands. Each subcommand's
//! arguments live here (the contract the chart and the injected containers
//! rely on); each subcommand's behaviour lives in its own module.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::core::env;

#[derive(Debug, Parser)]
#[command(name = "kube-once", version, about = "Run a Deployment's one-time step exactly once per rollout")]
pub struct Cli {
    /// Log format: json when stderr is not a terminal, text otherwise.
    #[arg(long, global = true, env = "KUBE_ONCE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the mutating admission webhook over HTTPS.
    Serve(ServeArgs),
    /// Show offline what the webhook would change in Deployment manifests.
    Preview(PreviewArgs),
    /// Run COMMAND once per key under a database lock (the injected initContainer).
    Lock(LockArgs),
    /// Copy this executable into DIR (the shared emptyDir of the pod).
    Install(InstallArgs),
    /// Generate a CA and a serving certificate for the webhook Service.
    Certs(CertsArgs),
}

/// The webhook configuration file, shared by `serve` and `preview`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Webhook configuration (YAML, see webhook-config/config.yaml); built-in defaults when absent.
    #[arg(long, env = "KUBE_ONCE_CONFIG")]
    pub config: Option<PathBuf>,
}

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
    #[arg(long, env = "KUBE_ONCE_GRACE_PERIOD", value_parser = parse_duration, default_value = "10s")]
    pub grace_period: Duration,

    /// Longest time one request may take before it is answered with an error.
    #[arg(long, env = "KUBE_ONCE_REQUEST_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub request_timeout: Duration,

    /// Connections that do not finish sending request headers within this time are closed.
    /// hyper also counts the wait for the next request on a kept-alive connection, so this is
    /// the idle timeout too: keep it above the API server's 90 s idle-connection timeout, so the
    /// API server closes idle connections first and never sends a request into one being closed.
    #[arg(long, env = "KUBE_ONCE_HEADER_READ_TIMEOUT", value_parser = parse_duration, default_value = "120s")]
    pub header_read_timeout: Duration,
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
    pub cert_poll_interval: Duration,

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
    pub cert_validity: Duration,

    /// Self-managed: renew this long before the serving certificate expires.
    #[arg(long, env = "KUBE_ONCE_CERT_RENEW_BEFORE", value_parser = parse_duration, default_value = "30d")]
    pub cert_renew_before: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreviewOutput {
    /// The RFC 6902 JSON patch per Deployment.
    Patch,
    /// The mutated objects, ready to commit.
    Yaml,
    /// A unified diff of each object.
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Deployment manifests, YAML or JSON, one or many documents; `-` reads stdin.
    #[arg(short = 'f', long = "filename", default_value = "-")]
    pub file: PathBuf,

    /// What to print.
    #[arg(short, long, value_enum, default_value_t = PreviewOutput::Patch)]
    pub output: PreviewOutput,

    /// Colour the diff.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordMode {
    /// Keep a done-record per key: later pods skip at once.
    Table,
    /// No record: every pod runs the (idempotent) command, one at a time.
    None,
}

#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Name of the env var holding the database URL.
    #[arg(long, env = env::DATABASE_URL_ENV, default_value = "DATABASE_URL")]
    pub database_url_env: String,

    /// Name of an env var holding a direct database URL used only for the lock (PgBouncer).
    #[arg(long, env = env::LOCK_URL_ENV)]
    pub lock_url_env: Option<String>,

    /// Lock name; Deployments sharing a database and a lock name serialize with each other.
    #[arg(long, env = env::LOCK_NAME, default_value = "kube-once")]
    pub lock_name: String,

    /// What counts as "already done" (default: hash of the image and the command).
    #[arg(long, env = env::KEY)]
    pub key: Option<String>,

    /// Keep a done-record (table) or run in every pod one at a time (none).
    #[arg(long, env = env::RECORD, value_enum, default_value_t = RecordMode::Table)]
    pub record: RecordMode,

    /// Table holding the done-records.
    #[arg(long, env = env::RECORD_TABLE, default_value = "kube_once_runs")]
    pub record_table: String,

    /// How long to wait for the lock before giving up (exit 75).
    #[arg(long, env = env::TIMEOUT, value_parser = parse_duration, default_value = "15m")]
    pub timeout: Duration,

    /// How long to wait for the database to accept connections (exit 69).
    #[arg(long, env = env::CONNECT_TIMEOUT, value_parser = parse_duration, default_value = "5m")]
    pub connect_timeout: Duration,

    /// Image the command comes from (recorded, and part of the default key).
    #[arg(long, env = env::IMAGE, default_value = "")]
    pub image: String,

    /// Namespace, Deployment and pod, for application_name and the done-record.
    #[arg(long, env = env::NAMESPACE, default_value = "")]
    pub namespace: String,
    #[arg(long, env = env::DEPLOYMENT, default_value = "")]
    pub deployment: String,
    #[arg(long, env = env::POD_NAME, default_value = "")]
    pub pod: String,

    /// The one-time command, run without a shell.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Directory to copy this executable into (as DIR/kube-once).
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// The webhook Service name.
    #[arg(long, default_value = "kube-once")]
    pub service: String,

    /// The webhook Service namespace.
    #[arg(long, default_value = "kube-once")]
    pub namespace: String,

    /// Extra DNS names or IP addresses for the serving certificate.
    #[arg(long = "san")]
    pub extra_sans: Vec<String>,

    /// Where ca.crt, tls.crt and tls.key are written.
    #[arg(long, default_value = "certs")]
    pub out_dir: PathBuf,

    /// Certificate lifetime.
    #[arg(long, value_parser = parse_duration, default_value = "365d")]
    pub validity: Duration,
}

/// Durations as people write them: `90s`, `10m`, `1h 30m`, `365d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 90s, 10m, 1h30m"))
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => report(block_on(crate::server::run(args))),
        Command::Preview(args) => match crate::preview::run(&args) {
            Ok(code) => code,
            Err(error) => report::<()>(Err(error)),
        },
        Command::Lock(args) => match tokio_runtime() {
            Ok(runtime) => runtime.block_on(crate::lock::run(args)),
            Err(error) => report::<()>(Err(error)),
        },
        Command::Install(args) => report(crate::install::run(&args)),
        Command::Certs(args) => report(crate::certs::run(&args)),
    }
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    tokio_runtime()?.block_on(future)
}

fn report<T>(result: anyhow::Result<T>) -> ExitCode {
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kube-once: {error:#}");
            ExitCode::FAILURE
        }
    }
}
