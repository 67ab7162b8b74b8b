//! The core's golden cases, `tests/fixtures/core/<case>.input.yaml` with an
//! optional `<case>.config.yaml` (the webhook configuration) and
//! `<case>.old.yaml` (the stored object of an UPDATE), beside the expected
//! `<case>.patch.json`.
//!
//! Read by the core crate's tests (`crates/core/tests`, through
//! `#[path = "../../../tests/support/core_cases.rs"]`) and the root's
//! (`support::core_cases`), so self-contained like `golden.rs`: it finds
//! the fixtures from whichever package compiles it.

// Included whole by several test crates, each using its part.
#![allow(dead_code)]
// A broken fixture fails the calling test with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use kube_once_core::Config;
use serde_json::Value;

/// The repository's root: the package compiling this is the root or one of `crates/*`.
pub fn repo() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("tests/fixtures/core").is_dir())
        .unwrap_or_else(|| panic!("no tests/fixtures/core above {}", manifest_dir.display()))
        .to_owned()
}

/// `tests/fixtures/core`.
pub fn dir() -> PathBuf {
    repo().join("tests/fixtures/core")
}

/// Every case's name (`<case>` of `<case>.input.yaml`), sorted.
pub fn names() -> Vec<String> {
    let dir = dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".input.yaml").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// One golden case, read.
pub struct Case {
    pub name: String,
    pub input: Value,
    /// The stored object: the case is an UPDATE.
    pub old: Option<Value>,
    /// From `<case>.config.yaml`, or the default.
    pub config: Config,
    /// `<case>.patch.json`, the golden patch.
    pub patch_path: PathBuf,
}

/// The case `name`.
pub fn case(name: &str) -> Case {
    let config_path = dir().join(format!("{name}.config.yaml"));
    let config = match config_path.exists() {
        true => config(&format!("{name}.config.yaml")),
        false => Config::default(),
    };
    let old_path = dir().join(format!("{name}.old.yaml"));
    Case {
        name: name.to_owned(),
        input: yaml_file(&format!("{name}.input.yaml")),
        old: old_path.exists().then(|| yaml_file(&format!("{name}.old.yaml"))),
        config,
        patch_path: dir().join(format!("{name}.patch.json")),
    }
}

/// Every case, in name order.
pub fn all() -> Vec<Case> {
    names().iter().map(|name| case(name)).collect()
}

/// The input Deployment of the case `name`.
pub fn input(name: &str) -> Value {
    yaml_file(&format!("{name}.input.yaml"))
}

/// The webhook configuration in `tests/fixtures/core/<file>`.
pub fn config(file: &str) -> Config {
    let path = dir().join(file);
    Config::from_yaml(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_file(file: &str) -> Value {
    let path = dir().join(file);
    serde_yaml_ng::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
