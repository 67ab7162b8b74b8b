//! `kube-once preview`: the core, offline, over manifest files. Reads one or
//! many YAML (or JSON) documents, mutates the Deployments among them exactly
//! as the webhook would on CREATE, and prints the patch, the mutated
//! manifests or a diff. Warnings go to stderr; a refusal exits 1.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use kube_once_core::manifest::{self, is_deployment, parse_documents};
use kube_once_core::{self as core, Mutation, render};
use serde_json::Value;

use super::ConfigArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreviewOutput {
    /// The RFC 6902 JSON patch per Deployment.
    Patch,
    /// The mutated objects, ready to commit.
    Yaml,
    /// A unified diff of each object.
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Deployment manifests, YAML or JSON, one or many documents; `-` reads stdin.
    #[arg(short = 'f', long = "filename", default_value = "-")]
    pub file: PathBuf,

    /// What to print.
    #[arg(short, long, value_enum, default_value_t = PreviewOutput::Patch)]
    pub output: PreviewOutput,

    /// Colour the diff.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

pub fn run(args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
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
                    eprintln!("warning: Deployment {}: {warning}", manifest::describe(document));
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

fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read manifests from stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
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
                    let name = format!("deployment/{}", manifest::describe(document));
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
