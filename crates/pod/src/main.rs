//! `kube-once-pod`: the lean binary for app pods (`lock`, `install`,
//! `history`, `forget`),
//! installed into the pod as `/kube-once-bin/kube-once`.

use std::process::ExitCode;

use clap::Parser;
use kube_once_pod::cmd::{PodCommand, logging, status};

/// Run a Deployment's one-time step exactly once per rollout (the in-pod part).
#[derive(Debug, Parser)]
#[command(name = "kube-once", version)]
struct Cli {
    #[command(flatten)]
    logging: logging::LoggingArgs,

    #[command(subcommand)]
    command: PodCommand,
}

fn main() -> ExitCode {
    let cli: Cli = status::parse();
    logging::init(&cli.logging);
    cli.command.run()
}
