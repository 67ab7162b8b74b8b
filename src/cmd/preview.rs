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
//! exit 2, like `kubectl diff`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use kube_once_core::yaml::Limits;
use kube_once_core::{self as core, Format};

use super::{ConfigArgs, read_input};

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

    /// Manifests, YAML or JSON, one or many documents: a file, a directory
    /// (its *.yaml, *.yml and *.json files) or `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", default_value = "-")]
    pub files: Vec<PathBuf>,

    /// Read directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,

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
    let mut inputs = Vec::new();
    for path in &args.files {
        collect(path, args.recursive, true, &mut inputs)?;
    }
    let texts =
        inputs.iter().map(|path| read_input(path).map(|text| (path, text))).collect::<anyhow::Result<Vec<_>>>()?;
    let limits = Limits::default();
    let mut previews = Vec::with_capacity(texts.len());
    for (path, text) in &texts {
        let preview = core::preview(text, &config, &limits)
            .with_context(|| format!("cannot read the manifests in {}", display(path)))?;
        previews.push(preview);
    }

    let mut refused = false;
    for preview in &previews {
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

    let mut out = String::new();
    for preview in &previews {
        let text = preview.render(args.output);
        // Files printed one after the other stay separate YAML documents.
        if args.output == Format::Yaml && !out.is_empty() {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            if !text.starts_with("---") {
                out.push_str("---\n");
            }
        }
        out.push_str(&text);
    }
    if args.output == Format::Diff {
        let color = match args.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        if color {
            out = colorize(&out);
        }
    }
    std::io::stdout().lock().write_all(out.as_bytes()).context("cannot write to stdout")?;
    let changed = previews.iter().any(core::Preview::changed);
    Ok(if args.output == Format::Diff && changed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn display(path: &Path) -> String {
    if path.as_os_str() == "-" { "stdin".to_owned() } else { path.display().to_string() }
}

/// `path` itself, or the manifests of a directory in name order (kubectl's
/// extensions: .yaml, .yml, .json), descending into subdirectories with -R.
fn collect(path: &Path, recursive: bool, given: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.as_os_str() == "-" || !path.is_dir() {
        if given || path.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "yaml" | "yml" | "json")) {
            out.push(path.to_owned());
        }
        return Ok(());
    }
    if !given && !recursive {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path)
        .with_context(|| format!("cannot list the directory {}", path.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot list the directory {}", path.display()))?;
    entries.sort();
    for entry in entries {
        collect(&entry, recursive, false, out)?;
    }
    Ok(())
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
