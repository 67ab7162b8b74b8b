//! `kube-once explain`: why a workload (a Deployment, StatefulSet, DaemonSet,
//! Job, CronJob or Argo Rollout) is (or is not) injected. Reads the
//! manifests, the webhook configuration (the rendered chart or
//! `kubectl get mutatingwebhookconfiguration -o yaml`), the namespace's
//! labels and the webhook's config file, and prints one verdict line per
//! workload, named by its kind (docs/explain.md), and a warning for what
//! kube-once would pass over in silence (`kube_once_core::unheeded`). The evaluation is `kube_once_explain`'s.
//!
//! Exit status: 0 every Deployment is sent and allowed (injected or
//! unchanged), 1 one is refused (by the webhook, or by the API server's
//! failurePolicy) or an input is unusable, 3 none is refused but one is not
//! sent; 64 for a usage error.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kube_once_core::{Kind, describe, is_workload, parse_documents, subject, unheeded};
use kube_once_explain::{self as explain, Operation, Outcome, Verdict};
use serde_json::{Value, json};

use super::manifests::ManifestArgs;
use super::output::{Output, print_value};
use super::{ConfigArgs, read_input};

/// Exit status when a Deployment is not sent to the webhook (and none is refused).
pub const NOT_SENT: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OperationArg {
    /// A new Deployment.
    Create,
    /// A re-apply of the stored Deployment, unchanged (the manifest is the old object too).
    Update,
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub manifests: ManifestArgs,

    /// The MutatingWebhookConfiguration: the rendered chart (`helm template`) or
    /// `kubectl get mutatingwebhookconfiguration -o yaml`; other documents are ignored.
    #[arg(long, value_name = "FILE")]
    pub webhook_configuration: PathBuf,

    /// The webhook of the configuration to evaluate.
    #[arg(long, value_name = "NAME", default_value = explain::WEBHOOK_NAME)]
    pub webhook: String,

    /// The namespace's labels, `key=value,...` (kubernetes.io/metadata.name is added, as the API server does).
    #[arg(long, value_name = "LABELS", value_parser = parse_labels, conflicts_with = "namespace_file")]
    pub namespace_labels: Option<BTreeMap<String, String>>,

    /// Namespace manifests (or `kubectl get namespace NAME -o yaml`) whose labels the namespaceSelector sees.
    #[arg(long, value_name = "FILE")]
    pub namespace_file: Option<PathBuf>,

    /// The namespace of Deployments whose manifest has none (as `kubectl apply -n`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// The write to explain.
    #[arg(long, value_enum, default_value_t = OperationArg::Create)]
    pub operation: OperationArg,

    /// What to print: verdict lines (text), or one JSON or YAML value (docs/cli.md).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    let stdin = |path: &Path| path.as_os_str() == "-";
    if args.manifests.reads_stdin() && stdin(&args.webhook_configuration) {
        bail!("-f and --webhook-configuration cannot both read stdin; give one of them as a file");
    }
    let mut notes: Vec<String> = Vec::new();
    let mut workloads: Vec<(String, Value)> = Vec::new();
    for input in args.manifests.read()? {
        let documents = parse_documents(&input.text).with_context(|| format!("cannot parse {}", input.name()))?;
        notes.extend(documents.iter().flat_map(unheeded));
        workloads.extend(documents.into_iter().filter(is_workload).map(|d| (input.name(), d)));
    }
    if workloads.is_empty() {
        let notes: String = notes.iter().map(|note| format!("\n  warning: {note}")).collect();
        let files: Vec<String> = args.manifests.files.iter().map(|path| super::manifests::display(path)).collect();
        bail!(
            "no workload kube-once handles in {}: it handles {}; give such a manifest with -f{notes}",
            files.join(", "),
            Kind::supported_list()
        );
    }
    let configuration_path = &args.webhook_configuration;
    let configuration_text = read_input(configuration_path)?;
    let configuration = parse_documents(&configuration_text)
        .with_context(|| format!("cannot parse {} (--webhook-configuration)", configuration_path.display()))?;
    let webhook = explain::find_webhook(&configuration, &args.webhook)
        .with_context(|| format!("in {} (--webhook-configuration)", configuration_path.display()))?;
    let namespaces = match &args.namespace_file {
        Some(path) => Some(
            parse_documents(&read_input(path)?)
                .with_context(|| format!("cannot parse {} (--namespace-file)", path.display()))?,
        ),
        None => None,
    };
    let operation = match args.operation {
        OperationArg::Create => Operation::Create,
        OperationArg::Update => Operation::Update,
    };

    let mut verdicts = Vec::with_capacity(workloads.len());
    let (mut refused, mut not_sent) = (false, false);
    for (file, workload) in workloads {
        let object = with_namespace(&workload, args.namespace.as_deref())?;
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
        let labels = match (&namespaces, &args.namespace_labels) {
            (Some(documents), _) => explain::labels_of_namespace(documents, namespace)?.with_context(|| {
                format!(
                    "{}: no Namespace {namespace} in --namespace-file; add it (`kubectl get namespace {namespace} -o yaml`) or give --namespace-labels",
                    subject(&object)
                )
            })?,
            (None, labels) => explain::namespace_labels(namespace, labels.clone().unwrap_or_default()),
        };
        let verdict = explain::explain(&object, operation, None, &labels, webhook, &config)
            .with_context(|| format!("cannot explain {}", subject(&object)))?;
        refused |= matches!(verdict, Verdict::Rejected { .. } | Verdict::Sent { outcome: Outcome::Refused { .. } });
        not_sent |= matches!(verdict, Verdict::NotSent { .. });
        verdicts.push((file, object, verdict));
    }
    if args.output == Output::Text {
        let mut out = String::new();
        for note in &notes {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "warning: {note}");
        }
        for (_, object, verdict) in &verdicts {
            write_verdict(&mut out, object, verdict);
        }
        std::io::stdout().lock().write_all(out.as_bytes()).context("cannot write to stdout")?;
    } else {
        let workloads: Vec<Value> =
            verdicts.iter().map(|(file, object, verdict)| verdict_value(file, object, verdict)).collect();
        print_value(args.output, &json!({"warnings": notes, "workloads": workloads}))?;
    }
    Ok(if refused {
        ExitCode::FAILURE
    } else if not_sent {
        ExitCode::from(NOT_SENT)
    } else {
        ExitCode::SUCCESS
    })
}

/// The Deployment as the API server admits it: `metadata.namespace` set
/// (from `-n`, else `default`), as kubectl does.
fn with_namespace(deployment: &Value, namespace: Option<&str>) -> anyhow::Result<Value> {
    let mut object = deployment.clone();
    match (object.pointer("/metadata/namespace").and_then(Value::as_str), namespace) {
        (Some(own), Some(namespace)) if own != namespace => bail!(
            "{}: its manifest says namespace {own}, -n says {namespace}; drop -n or make them agree",
            subject(deployment)
        ),
        (Some(_), _) => {}
        (None, namespace) => {
            let metadata = object
                .as_object_mut()
                .map(|o| o.entry("metadata").or_insert_with(|| Value::Object(Default::default())))
                .and_then(Value::as_object_mut)
                .with_context(|| format!("{}: metadata is not a map", subject(deployment)))?;
            metadata.insert("namespace".to_owned(), Value::String(namespace.unwrap_or("default").to_owned()));
        }
    }
    Ok(object)
}

/// One workload's verdict as `-o json` gives it (docs/cli.md): the
/// workload as `injected -o json` names it, then `verdict` (`injected`,
/// `unchanged`, `refused`, `not-sent`, `rejected`), `summary` (the text
/// line), `reason` (why not sent, rejected or refused), `operations` (the patch's
/// operations, one line each, when injected) and `warnings`.
fn verdict_value(file: &str, object: &Value, verdict: &Verdict) -> Value {
    let mut value = super::injected::entry(file, object);
    let (name, reason, patch): (&str, Option<&str>, Option<&[String]>) = match verdict {
        Verdict::NotSent { reason } => ("not-sent", Some(reason), None),
        Verdict::Rejected { reason } => ("rejected", Some(reason), None),
        Verdict::Sent { outcome: Outcome::Injected { operations, .. } } => ("injected", None, Some(operations)),
        Verdict::Sent { outcome: Outcome::Unchanged { .. } } => ("unchanged", None, None),
        Verdict::Sent { outcome: Outcome::Refused { message, .. } } => ("refused", Some(message), None),
    };
    if let Some(fields) = value.as_object_mut() {
        fields.insert("verdict".to_owned(), name.into());
        fields.insert("summary".to_owned(), verdict.summary().into());
        if let Some(reason) = reason {
            fields.insert("reason".to_owned(), reason.into());
        }
        if let Some(patch) = patch {
            fields.insert("operations".to_owned(), patch.into());
        }
        fields.insert("warnings".to_owned(), verdict.warnings().into());
    }
    value
}

fn write_verdict(out: &mut String, object: &Value, verdict: &Verdict) {
    // Writing to a String cannot fail.
    let kind = Kind::read_as(object).name().to_ascii_lowercase();
    let _ = writeln!(out, "{kind} {}: {}", describe(object), verdict.summary());
    if let Verdict::Sent { outcome: Outcome::Injected { operations, .. } } = verdict {
        for operation in operations {
            let _ = writeln!(out, "  patch: {operation}");
        }
    }
    for warning in verdict.warnings() {
        let _ = writeln!(out, "  warning: {warning}");
    }
}

/// `key=value,key=value` (empty: no labels).
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(format!("`{pair}` is not key=value; write e.g. team=data,kube-once.io/ignore=true")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_value_pairs() {
        let labels = parse_labels("team=data, kube-once.io/ignore=true,empty=").unwrap();
        assert_eq!(labels.len(), 3);
        assert_eq!(labels["kube-once.io/ignore"], "true");
        assert_eq!(labels["empty"], "");
        assert!(parse_labels("").unwrap().is_empty());
        assert!(parse_labels("team").is_err());
        assert!(parse_labels("=x").is_err());
    }

    #[test]
    fn the_namespace_is_filled_in_and_checked() {
        let bare = serde_json::json!({"kind": "Deployment", "metadata": {"name": "web"}});
        assert_eq!(with_namespace(&bare, Some("apps")).unwrap()["metadata"]["namespace"], "apps");
        assert_eq!(with_namespace(&bare, None).unwrap()["metadata"]["namespace"], "default");
        let placed = serde_json::json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "data"}});
        assert_eq!(with_namespace(&placed, None).unwrap()["metadata"]["namespace"], "data");
        assert_eq!(with_namespace(&placed, Some("data")).unwrap()["metadata"]["namespace"], "data");
        assert!(with_namespace(&placed, Some("apps")).is_err());
    }
}
