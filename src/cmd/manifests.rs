//! Where every subcommand that takes manifests reads them, with kubectl's
//! habits: `-f` repeatable, a file, a directory (its *.yaml, *.yml and
//! *.json files, in name order), `-R` to descend into subdirectories, `-`
//! for stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ManifestArgs {
    /// Manifests, YAML or JSON, one or many documents: a file, a directory
    /// (its *.yaml, *.yml and *.json files) or `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE", default_value = "-")]
    pub files: Vec<PathBuf>,

    /// Read directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// One input: where it came from (`-` for stdin) and its text.
pub struct Input {
    pub path: PathBuf,
    pub text: String,
}

impl Input {
    /// The source as messages and `-o json` name it: the path, or `stdin`.
    pub fn name(&self) -> String {
        display(&self.path)
    }
}

impl ManifestArgs {
    /// Whether one of the inputs is stdin (which another flag cannot read then).
    pub fn reads_stdin(&self) -> bool {
        self.files.iter().any(|path| path.as_os_str() == "-")
    }

    /// Every input, in the order given, directories expanded.
    pub fn read(&self) -> anyhow::Result<Vec<Input>> {
        let mut paths = Vec::new();
        for path in &self.files {
            collect(path, self.recursive, true, &mut paths)?;
        }
        paths.into_iter().map(|path| Ok(Input { text: read_input(&path)?, path })).collect()
    }
}

/// A manifest file's text; `-` reads stdin.
pub(crate) fn read_input(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read manifests from stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

pub(crate) fn display(path: &Path) -> String {
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
