//! `kube-once-pod`: the lean binary for app pods (`lock`, `install`),
//! installed into the pod as `/kube-once-bin/kube-once`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube_once_pod::cmd::{self, install, lock, logging};

/// Run a Deployment's one-time step exactly once per rollout (the in-pod part).
#[derive(Debug, Parser)]
#[command(name = "kube-once", version)]
struct Cli {
    #[command(flatten)]
    logging: logging::LoggingArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Lock(Box<lock::LockArgs>),
    Install(install::InstallArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.logging);
    match cli.command {
        Command::Lock(args) => lock::run(*args),
        Command::Install(args) => cmd::report(install::run(&args)),
    }
}
