//! `kube-once injected`: the workloads (Deployments, StatefulSets, ... every
//! `kube_once_core::Kind`) that still carry kube-once's injection, read
//! offline from manifests (`kubectl get deploy,sts,ds,cronjob -A -o yaml`).
//! After an uninstall they keep their injected initContainers until their
//! next write reaches a webhook; this says which ones to clean up.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use kube_once_core::{Kind, describe, is_workload, parse_documents};
use serde_json::{Value, json};

use super::manifests::ManifestArgs;
use super::output::{Output, print_value};

#[derive(Debug, Clone, Args)]
pub struct InjectedArgs {
    #[command(flatten)]
    pub manifests: ManifestArgs,

    /// What to print: `namespace/name` lines (text), or one JSON or YAML value (docs/cli.md).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Prints `namespace/name` of every injected Deployment, one a line, and
/// `<kind> namespace/name` of the other kinds (`statefulset shop/db`); or,
/// with `-o json|yaml`, `{"workloads": [{kind, namespace, name, file}]}`.
pub fn run(args: &InjectedArgs) -> anyhow::Result<()> {
    let mut injected = Vec::new();
    for input in args.manifests.read()? {
        let documents = parse_documents(&input.text).with_context(|| format!("cannot parse {}", input.name()))?;
        for object in documents.iter().filter(|object| is_workload(object) && kube_once_core::is_injected(object)) {
            injected.push((input.name(), object.clone()));
        }
    }
    if injected.is_empty() {
        eprintln!("kube-once: no workload carries kube-once.io/status");
    }
    if args.output != Output::Text {
        let workloads: Vec<Value> = injected.iter().map(|(file, object)| entry(file, object)).collect();
        return print_value(args.output, &json!({ "workloads": workloads }));
    }
    let mut out = std::io::stdout().lock();
    for (_, object) in injected {
        let name = match Kind::read_as(&object) {
            Kind::Deployment => describe(&object),
            kind => format!("{} {}", kind.name().to_ascii_lowercase(), describe(&object)),
        };
        writeln!(out, "{name}").context("cannot write to stdout")?;
    }
    Ok(())
}

/// One workload as `-o json` names it: `namespace` only when the manifest has one.
pub(crate) fn entry(file: &str, object: &Value) -> Value {
    let mut entry = serde_json::Map::new();
    entry.insert("kind".to_owned(), Kind::read_as(object).name().into());
    if let Some(namespace) = object.pointer("/metadata/namespace") {
        entry.insert("namespace".to_owned(), namespace.clone());
    }
    entry.insert("name".to_owned(), object.pointer("/metadata/name").cloned().unwrap_or(Value::Null));
    entry.insert("file".to_owned(), file.into());
    Value::Object(entry)
}
