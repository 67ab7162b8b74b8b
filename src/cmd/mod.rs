//! Command line: one file per subcommand, each with its clap `Args` and a
//! `run` that turns them into plain values for the library. `lock`,
//! `install`, `history` and `forget` are the pod binary's [`PodCommand`],
//! flattened in, so both binaries take the same arguments.

pub mod certs;
pub mod explain;
pub mod injected;
pub mod preview;
pub mod serve;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use kube_once_core::Config;
use kube_once_pod::cmd::{PodCommand, logging, report};

pub use kube_once_pod::cmd::parse_duration;

#[derive(Debug, Parser)]
#[command(name = "kube-once", version, about = "Run a Deployment's one-time step exactly once per rollout")]
pub struct Cli {
    #[command(flatten)]
    pub logging: logging::LoggingArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the mutating admission webhook over HTTPS.
    // Boxed: the largest arguments by far, parsed once.
    Serve(Box<serve::ServeArgs>),
    /// Show offline what the webhook would change in Deployment manifests.
    Preview(preview::PreviewArgs),
    #[command(flatten)]
    Pod(PodCommand),
    /// Generate a CA and a serving certificate for the webhook Service.
    Certs(certs::CertsArgs),
    /// Explain offline whether the API server sends a Deployment to the webhook, and what it answers.
    Explain(explain::ExplainArgs),
    /// List the Deployments that carry kube-once's injection (e.g. to clean up after an uninstall).
    Injected(injected::InjectedArgs),
}

/// The webhook configuration file, shared by `serve` and `preview`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Webhook configuration (YAML, see docs/configuration.md); built-in defaults when absent.
    #[arg(long, env = "KUBE_ONCE_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration file, or the built-in defaults without one.
    pub fn load(&self) -> anyhow::Result<Config> {
        self.config.as_deref().map_or_else(|| Ok(Config::default()), load_config)
    }
}

/// A manifest file's text; `-` reads stdin.
pub(crate) fn read_input(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read manifests from stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the webhook configuration {} (--config)", path.display()))?;
    Config::from_yaml(&text).with_context(|| format!("invalid webhook configuration {} (--config)", path.display()))
}

/// Sets up logging, then runs the subcommand.
pub fn run(cli: Cli) -> ExitCode {
    logging::init(&cli.logging);
    match cli.command {
        Command::Serve(args) => report(serve::run(*args)),
        Command::Preview(args) => preview::run(&args),
        Command::Pod(command) => command.run(),
        Command::Certs(args) => report(certs::run(&args)),
        Command::Explain(args) => explain::run(&args).unwrap_or_else(|error| report::<()>(Err(error))),
        Command::Injected(args) => report(injected::run(&args)),
    }
}
