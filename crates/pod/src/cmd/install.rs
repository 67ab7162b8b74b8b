//! `install DIR`: copy this executable into the pod's shared emptyDir.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Directory to copy this executable into (as DIR/kube-once).
    pub dir: PathBuf,
}

pub fn run(args: &InstallArgs) -> anyhow::Result<()> {
    let target = kube_once_lock::install::install_self(&args.dir)?;
    eprintln!("kube-once: installed {}", target.display());
    Ok(())
}
