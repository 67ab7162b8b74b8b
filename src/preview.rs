//! `kube-once preview`: the core, offline, over manifest files.

use std::process::ExitCode;

use crate::cli::PreviewArgs;

pub fn run(args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("preview is not built yet")
}
