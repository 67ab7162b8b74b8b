//! Test helpers shared by every test binary: `mod support;` in each
//! tests/*.rs, and once in tests/e2e/main.rs (`#[path]`, as that binary lives
//! in its own directory). One place for each helper: ports, TLS clients, the
//! in-process server, the real `serve` binary, raw HTTP/1.1, environment
//! from scripts/test.sh, golden files and the core's golden cases, waits,
//! YAML documents, databases, the PSS check, a fake Kubernetes API. `golden.rs` and
//! `core_cases.rs` are self-contained: the core crate's tests include them.

// Each test binary compiles all of these but uses only its part: what one
// binary leaves unused, another uses.
#![allow(dead_code)]
// Helpers fail the calling test loudly, with the reason: that is what panics
// are for here (clippy's allow-*-in-tests reaches only #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod chart;
pub mod console;
pub mod core_cases;
pub mod corpus;
pub mod databases;
pub mod edits;
pub mod env;
pub mod fake_api;
pub mod golden;
pub mod http;
pub mod net;
pub mod process;
pub mod pss;
pub mod serve;
pub mod server;
pub mod tls;
pub mod wait;
pub mod yaml;

use std::path::{Path, PathBuf};

/// The repository's root (the root package's manifest directory).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<dir>`.
pub fn fixtures(dir: &str) -> PathBuf {
    repo().join("tests/fixtures").join(dir)
}

/// The names in `tests/fixtures/<dir>` that end in `suffix`, without it, sorted.
pub fn fixture_names(dir: &str, suffix: &str) -> Vec<String> {
    let path = fixtures(dir);
    let entries = std::fs::read_dir(&path).unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()));
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(suffix).map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The `kube-once` binary (serve, preview, certs), built by cargo for the tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kube-once"))
}

/// The pod binary (`kube-once-pod`: lock, install), as shipped in the tools
/// image at `/pod/kube-once`. Cargo puts it beside `kube-once`; it is built
/// by the workspace's tests (crates/pod/tests).
pub fn pod_binary() -> PathBuf {
    let pod = binary().with_file_name("kube-once-pod");
    assert!(pod.exists(), "{} is missing: run the workspace's tests (scripts/test.sh), which build it", pod.display());
    pod
}
