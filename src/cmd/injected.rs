//! `kube-once injected`: the Deployments that still carry kube-once's
//! injection, read offline from manifests (`kubectl get deploy -A -o yaml`).
//! After an uninstall they keep their injected initContainers until their
//! next write reaches a webhook; this says which ones to clean up.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kube_once_core::{describe, is_deployment, parse_documents};

use super::read_input;

#[derive(Debug, Clone, Args)]
pub struct InjectedArgs {
    /// Manifests, YAML or JSON (a `List` too, as `kubectl get -o yaml` prints); `-` reads stdin.
    #[arg(short = 'f', long = "filename", default_value = "-")]
    pub file: PathBuf,
}

/// Prints `namespace/name` of every injected Deployment, one a line.
pub fn run(args: &InjectedArgs) -> anyhow::Result<()> {
    let text = read_input(&args.file)?;
    let documents = parse_documents(&text).with_context(|| format!("cannot parse {}", args.file.display()))?;
    let injected: Vec<String> = documents
        .iter()
        .filter(|object| is_deployment(object) && kube_once_core::is_injected(object))
        .map(describe)
        .collect();
    if injected.is_empty() {
        eprintln!("kube-once: no Deployment carries kube-once.io/status");
    }
    let mut out = std::io::stdout().lock();
    for name in injected {
        writeln!(out, "{name}").context("cannot write to stdout")?;
    }
    Ok(())
}
