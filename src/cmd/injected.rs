//! `kube-once injected`: the workloads (Deployments, StatefulSets, ... every
//! `kube_once_core::Kind`) that still carry kube-once's injection, read
//! offline from manifests (`kubectl get deploy,sts,ds,cronjob -A -o yaml`).
//! After an uninstall they keep their injected initContainers until their
//! next write reaches a webhook; this says which ones to clean up.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kube_once_core::{Kind, describe, is_workload, parse_documents};

use super::read_input;

#[derive(Debug, Clone, Args)]
pub struct InjectedArgs {
    /// Manifests, YAML or JSON (a `List` too, as `kubectl get -o yaml` prints); `-` reads stdin.
    #[arg(short = 'f', long = "filename", default_value = "-")]
    pub file: PathBuf,
}

/// Prints `namespace/name` of every injected Deployment, one a line, and
/// `<kind> namespace/name` of the other kinds (`statefulset shop/db`).
pub fn run(args: &InjectedArgs) -> anyhow::Result<()> {
    let text = read_input(&args.file)?;
    let documents = parse_documents(&text).with_context(|| format!("cannot parse {}", args.file.display()))?;
    let injected: Vec<String> = documents
        .iter()
        .filter(|object| is_workload(object) && kube_once_core::is_injected(object))
        .map(|object| match Kind::read_as(object) {
            Kind::Deployment => describe(object),
            kind => format!("{} {}", kind.name().to_ascii_lowercase(), describe(object)),
        })
        .collect();
    if injected.is_empty() {
        eprintln!("kube-once: no workload carries kube-once.io/status");
    }
    let mut out = std::io::stdout().lock();
    for name in injected {
        writeln!(out, "{name}").context("cannot write to stdout")?;
    }
    Ok(())
}
