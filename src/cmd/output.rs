//! `-o text|json|yaml` of the subcommands that report on what they read
//! (`explain`, `injected`, `certs`): text for people, one JSON or YAML
//! value for scripts, whose schema docs/cli.md gives.

use std::io::Write;

use anyhow::Context;
use clap::ValueEnum;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines for people.
    Text,
    /// One JSON value.
    Json,
    /// One YAML document.
    Yaml,
}

/// Prints `value` as `output` says (not for `text`, which each subcommand
/// writes its own way).
pub fn print_value(output: Output, value: &Value) -> anyhow::Result<()> {
    let text = match output {
        Output::Json => serde_json::to_string_pretty(value)? + "\n",
        Output::Yaml | Output::Text => kube_once_core::yaml::to_yaml(value),
    };
    std::io::stdout().lock().write_all(text.as_bytes()).context("cannot write to stdout")
}
