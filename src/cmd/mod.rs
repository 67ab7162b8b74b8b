//! Command line: one file per subcommand, each with its clap `Args` and a
//! `run` that turns them into plain values for the library. `lock`,
//! `install`, `history` and `forget` are the pod binary's [`PodCommand`],
//! flattened in, so both binaries take the same arguments.

pub mod certs;
pub mod completion;
pub mod exit;
pub mod explain;
pub mod injected;
pub mod manifests;
pub mod output;
pub mod preview;
pub mod serve;

use std::path::{Path, PathBuf};

pub(crate) use manifests::read_input;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use kube_once_core::Config;
use kube_once_pod::cmd::{PodCommand, logging, report, status};

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
    #[command(after_help = exit::SERVE)]
    // Boxed: the largest arguments by far, parsed once.
    Serve(Box<serve::ServeArgs>),
    /// Show offline what the webhook would change in Deployment manifests.
    #[command(after_help = exit::PREVIEW)]
    Preview(preview::PreviewArgs),
    #[command(flatten)]
    Pod(PodCommand),
    /// Generate a CA and a serving certificate for the webhook Service.
    #[command(after_help = exit::CERTS)]
    Certs(certs::CertsArgs),
    /// Explain offline whether the API server sends a Deployment to the webhook, and what it answers.
    #[command(after_help = exit::EXPLAIN)]
    Explain(explain::ExplainArgs),
    /// List the Deployments that carry kube-once's injection (e.g. to clean up after an uninstall).
    #[command(after_help = exit::INJECTED)]
    Injected(injected::InjectedArgs),
    /// Print a shell completion script: `source <(kube-once completion bash)`.
    #[command(after_help = exit::COMPLETION)]
    Completion(completion::CompletionArgs),
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

fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the webhook configuration {} (--config)", path.display()))?;
    Config::from_yaml(&text).with_context(|| format!("invalid webhook configuration {} (--config)", path.display()))
}

/// The name this binary goes by: `kubectl-once` when kubectl runs it as its
/// plugin (kubectl execs `kubectl-once` found on PATH), else `kube-once`.
pub fn invoked_name() -> &'static str {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let file = Path::new(&argv0).file_name().and_then(|name| name.to_str()).unwrap_or_default();
    if file.starts_with("kubectl-") { PLUGIN_NAME } else { NAME }
}

pub const NAME: &str = "kube-once";
pub const PLUGIN_NAME: &str = "kubectl-once";

/// The arguments of the process: usage, help and errors say `kubectl once`
/// when run as kubectl's plugin; usage errors exit 64 (`status::parse_or_exit`).
pub fn parse() -> Cli {
    let mut command = Cli::command();
    if invoked_name() == PLUGIN_NAME {
        command = command.name("kubectl once").bin_name("kubectl once").display_name("kubectl once");
    }
    status::parse_or_exit(command, std::env::args_os())
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
        Command::Completion(args) => report(completion::run(&args)),
    }
}
