//! `kube-once install DIR`: copy this executable into the pod's shared emptyDir.

use crate::cli::InstallArgs;

pub fn run(args: &InstallArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("install is not built yet")
}
