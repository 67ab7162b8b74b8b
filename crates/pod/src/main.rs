//! `kube-once-pod`: the lean binary for app pods (`lock`, `install`,
//! `history`, `forget`),
//! installed into the pod as `/kube-once-bin/kube-once`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube_once_pod::cmd::{self, forget, history, install, lock, logging};

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
    /// Run COMMAND once per key under a database lock (the injected initContainer).
    Lock(Box<lock::LockArgs>),
    /// Copy this executable into DIR (the shared emptyDir of the pod).
    Install(install::InstallArgs),
    /// Show the recorded runs (done-records), newest first.
    History(history::HistoryArgs),
    /// Delete done-records, so the next pod start runs the command again.
    Forget(forget::ForgetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.logging);
    match cli.command {
        Command::Lock(args) => lock::run(*args),
        Command::Install(args) => cmd::report(install::run(&args)),
        Command::History(args) => history::run(args),
        Command::Forget(args) => forget::run(args),
    }
}
