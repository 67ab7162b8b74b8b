//! One module per subcommand: its clap `Args` and a `run` that hands plain
//! values to the library.

pub mod forget;
pub mod history;
pub mod install;
pub mod lock;
pub mod logging;
pub mod status;

use std::process::ExitCode;

use clap::Subcommand;

/// The subcommands a pod runs, the same in both binaries: `kube-once-pod`
/// takes them as its commands, `kube-once` flattens them among its own.
#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Run COMMAND once per key under a database lock (the injected initContainer).
    #[command(after_help = status::LOCK)]
    Lock(Box<lock::LockArgs>),
    /// Copy this executable into DIR (the shared emptyDir of the pod).
    #[command(after_help = status::INSTALL)]
    Install(install::InstallArgs),
    /// Show the recorded runs (done-records), newest first.
    #[command(after_help = status::HISTORY)]
    History(history::HistoryArgs),
    /// Delete done-records, so the next pod start runs the command again.
    #[command(after_help = status::FORGET)]
    Forget(forget::ForgetArgs),
}

impl PodCommand {
    pub fn run(self) -> ExitCode {
        match self {
            PodCommand::Lock(args) => lock::run(*args),
            PodCommand::Install(args) => report(install::run(&args)),
            PodCommand::History(args) => history::run(args),
            PodCommand::Forget(args) => forget::run(args),
        }
    }
}

/// Durations as people write them: `90s`, `10m`, `1h 30m`, `365d`. The
/// humantime type prints a default in `--help` the way it is read back.
pub fn parse_duration(text: &str) -> Result<humantime::Duration, String> {
    text.parse().map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 90s, 10m, 1h30m"))
}

/// Exit status of a subcommand that only succeeds or fails: the error and
/// its causes on stderr, exit 1.
pub fn report<T>(result: anyhow::Result<T>) -> ExitCode {
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kube-once: {error:#}");
            ExitCode::FAILURE
        }
    }
}
