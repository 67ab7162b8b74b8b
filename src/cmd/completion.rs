//! `kube-once completion bash|zsh|fish`: the shell's completion script,
//! generated from the same clap definition that parses the arguments.

use std::io::Write;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// The shell to complete in: bash, zsh or fish (also elvish, powershell).
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the script for the name this binary was called by, so a copy
/// installed as `kubectl-once` completes that name.
pub fn run(args: &CompletionArgs) -> anyhow::Result<()> {
    let mut command = super::Cli::command();
    let name = super::invoked_name();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    std::io::stdout().lock().write_all(&script).context("cannot write to stdout")
}
