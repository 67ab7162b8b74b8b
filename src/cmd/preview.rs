//! `kube-once preview`: the core, offline, over manifest files. Reads one or
//! many YAML (or JSON) documents from files, directories or stdin, mutates
//! the workloads of every supported kind among them (`kube_once_core::Kind`)
//! exactly as the webhook would on CREATE, and prints the patch, the manifests or a diff
//! (`kube_once_core::preview`, shared with `POST /preview`). Warnings go to
//! stderr, with what kube-once would pass over in silence (near-miss
//! prefixes, `kube-once.io/` on kinds it does not handle).
//!
//! Exit codes, as kubectl's: 0 done; 1 a workload is refused or the input
//! cannot be read (`-o diff`: 1 means there are differences, and errors
//! exit 2, like `kubectl diff`); 64 a usage error (`super::exit::PREVIEW`).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use kube_once_core::yaml::Limits;
use kube_once_core::{self as core, Format};

use super::ConfigArgs;
use super::manifests::{Input, ManifestArgs};

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

    #[command(flatten)]
    pub manifests: ManifestArgs,

    /// What to print: patch, yaml, diff or json.
    #[arg(short, long, default_value = "patch", value_parser = parse_format)]
    pub output: Format,

    /// Colour the diff.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

fn parse_format(text: &str) -> Result<Format, String> {
    text.parse()
}

/// Exit code of an error: `-o diff` keeps 1 for "there are differences".
fn error_code(format: Format) -> u8 {
    if format == Format::Diff { 2 } else { 1 }
}

pub fn run(args: &PreviewArgs) -> ExitCode {
    match preview(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kube-once: {error:#}");
            ExitCode::from(error_code(args.output))
        }
    }
}

fn preview(args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    let inputs = args.manifests.read()?;
    let limits = Limits::default();
    let mut previews = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let preview = core::preview(&input.text, &config, &limits)
            .with_context(|| format!("cannot read the manifests in {}", input.name()))?;
        previews.push((input, preview));
    }

    let mut refused = false;
    for (_, preview) in &previews {
        for refusal in preview.refusals() {
            eprintln!("kube-once: refused: {refusal}");
            refused = true;
        }
        for warning in preview.warnings() {
            eprintln!("warning: {warning}");
        }
    }
    if refused {
        return Ok(ExitCode::from(error_code(args.output)));
    }

    let mut out = match args.output {
        Format::Json => json_list(&previews)?,
        Format::Patch => patch_list(&previews),
        Format::Yaml | Format::Diff => stream(&previews, args.output)?,
    };
    if args.output == Format::Diff {
        let color = match args.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        };
        if color {
            out = colorize(&out);
        }
    }
    std::io::stdout().lock().write_all(out.as_bytes()).context("cannot write to stdout")?;
    let changed = previews.iter().any(|(_, preview)| preview.changed());
    Ok(if args.output == Format::Diff && changed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `-o json`: one `v1 List` of every input's objects, as kubectl prints
/// many objects, so the output is one JSON value however many files.
fn json_list(previews: &[(&Input, core::Preview<'_>)]) -> anyhow::Result<String> {
    let mut items = Vec::new();
    for (input, preview) in previews {
        items.extend(preview.objects().with_context(|| format!("cannot write {} as JSON", input.name()))?);
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    Ok(serde_json::to_string_pretty(&list)? + "\n")
}

/// `-o patch`: one array of every workload's patch, each naming its object
/// and where it was read (`file`, `document`).
fn patch_list(previews: &[(&Input, core::Preview<'_>)]) -> String {
    let items: Vec<serde_json::Value> = previews
        .iter()
        .flat_map(|(input, preview)| {
            preview.patches().into_iter().map(|mut item| {
                if let Some(fields) = item.as_object_mut() {
                    fields.insert("file".to_owned(), input.name().into());
                }
                item
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).unwrap_or_default() + "\n"
}

/// `-o yaml` and `-o diff`: each input's text one after the other; files
/// printed one after the other stay separate YAML documents.
fn stream(previews: &[(&Input, core::Preview<'_>)], format: Format) -> anyhow::Result<String> {
    let mut out = String::new();
    for (input, preview) in previews {
        let text = preview.render(format).with_context(|| format!("cannot print {}", input.name()))?;
        if format == Format::Yaml && !out.is_empty() {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            if !text.starts_with("---") {
                out.push_str("---\n");
            }
        }
        out.push_str(&text);
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
