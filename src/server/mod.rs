//! `kube-once serve`: the HTTPS admission webhook.

use crate::cli::ServeArgs;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("serve is not built yet")
}
