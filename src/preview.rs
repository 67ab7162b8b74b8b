//! `kube-once preview`: the core, offline, over manifest files. Reads one or
//! many YAML (or JSON) documents, mutates the Deployments among them exactly
//! as the webhook would on CREATE, and prints the patch, the mutated
//! manifests or a diff. Warnings go to stderr; a refusal exits 1.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;

use crate::cli::{Color, PreviewArgs, PreviewOutput};
use crate::core::{self, Config, Mutation, render};

pub fn run(args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.config.as_deref())?;
    let text = read_input(&args.file)?;
    let documents = parse_documents(&text).with_context(|| format!("cannot parse {}", args.file.display()))?;

    let mut outcomes = Vec::with_capacity(documents.len());
    let mut refused = false;
    for document in &documents {
        let outcome = if is_deployment(document) { Some(core::mutate(document, None, &config)) } else { None };
        match &outcome {
            Some(Err(refusal)) => {
                eprintln!("kube-once: refused: {refusal}");
                refused = true;
            }
            Some(Ok(mutation)) => {
                for warning in &mutation.warnings {
                    eprintln!("warning: Deployment {}: {warning}", core::describe(document));
                }
            }
            None => {}
        }
        outcomes.push(outcome);
    }
    if refused {
        return Ok(ExitCode::FAILURE);
    }
    let mutations = documents.iter().zip(outcomes).map(|(document, outcome)| (document, outcome.and_then(Result::ok)));

    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let output = render_output(mutations, args.output, color)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(output.as_bytes()).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// The config file, or the built-in defaults without one.
pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    let Some(path) = path else { return Ok(Config::default()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    Config::from_yaml(&text).with_context(|| format!("in config file {}", path.display()))
}

fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read manifests from stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// Every document of a YAML stream (JSON is YAML too); empty documents are
/// skipped and the items of a `kind: List` are taken one by one.
pub fn parse_documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value =
            Value::deserialize(document).with_context(|| format!("document {} is not valid YAML", index + 1))?;
        match value {
            Value::Null => {}
            Value::Object(ref object) if object.get("kind").and_then(Value::as_str) == Some("List") => {
                documents.extend(object.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
            }
            value => documents.push(value),
        }
    }
    Ok(documents)
}

/// Whether the webhook would look at this object (apps/v1 Deployments).
pub fn is_deployment(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Deployment")
        && object.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("apps/"))
}

fn render_output<'a>(
    mutations: impl Iterator<Item = (&'a Value, Option<Mutation>)>,
    output: PreviewOutput,
    color: bool,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut first = true;
    for (document, mutation) in mutations {
        match output {
            // One JSON patch per Deployment, so a single one can go straight to `kubectl patch --type json`.
            PreviewOutput::Patch => {
                if let Some(mutation) = mutation {
                    out.push_str(&serde_json::to_string_pretty(&mutation.patch).context("cannot print the patch")?);
                    out.push('\n');
                }
            }
            PreviewOutput::Yaml => {
                if !first {
                    out.push_str("---\n");
                }
                let object = mutation.as_ref().map_or(document, |m| &m.object);
                out.push_str(&render::to_yaml(object).context("cannot print YAML")?);
            }
            PreviewOutput::Diff => {
                if let Some(mutation) = mutation {
                    let before = render::to_yaml(document).context("cannot print YAML")?;
                    let after = render::to_yaml(&mutation.object).context("cannot print YAML")?;
                    let name = format!("deployment/{}", core::describe(document));
                    let diff = render::unified_diff(&name, &before, &after);
                    out.push_str(&if color { colorize(&diff) } else { diff });
                }
            }
        }
        first = false;
    }
    Ok(out)
}

/// ANSI colours for a unified diff, as `git diff` shows them.
fn colorize(diff: &str) -> String {
    diff.lines()
        .map(|line| {
            let code = if line.starts_with("+++") || line.starts_with("---") {
                "1"
            } else if line.starts_with('+') {
                "32"
            } else if line.starts_with('-') {
                "31"
            } else if line.starts_with("@@") {
                "36"
            } else {
                return format!("{line}\n");
            };
            format!("\x1b[{code}m{line}\x1b[0m\n")
        })
        .collect()
}
