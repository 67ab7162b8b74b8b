//! The boundaries of the workspace, kept by the dependency graph rather than
//! by promise: the core does no I/O, the pod binary carries no webhook, and
//! arguments stay at the door (only the command layers know clap).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;

/// Every crate `package` links (normal dependencies, this platform).
fn linked_crates(package: &str) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-e", "normal", "--prefix", "none", "--format", "{p}", "-p", package])
        .current_dir(support::repo())
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn assert_none_of(package: &str, forbidden: &[&str]) {
    let linked = linked_crates(package);
    let found: Vec<_> = forbidden.iter().filter(|name| linked.contains(**name)).collect();
    assert!(found.is_empty(), "{package} links {found:?}; see docs/dev/architecture.md for what belongs where");
}

#[test]
fn the_core_has_no_runtime_no_client_and_no_io_crates() {
    assert_none_of(
        "kube-once-core",
        &[
            "tokio",
            "kube",
            "k8s-openapi",
            "hyper",
            "axum",
            "reqwest",
            "rustls",
            "tokio-postgres",
            "mysql_async",
            "rusqlite",
            "clap",
        ],
    );
}

/// `kube-once explain`'s crate: values in, verdict out; in the command line only.
#[test]
fn explain_is_pure_and_stays_out_of_the_pod_binary() {
    assert_none_of(
        "kube-once-explain",
        &["tokio", "kube", "k8s-openapi", "hyper", "axum", "reqwest", "rustls", "clap"],
    );
    assert_none_of("kube-once-pod", &["kube-once-explain"]);
}

#[test]
fn the_pod_binary_carries_no_webhook() {
    assert_none_of(
        "kube-once-pod",
        &["axum", "hyper", "kube", "k8s-openapi", "rcgen", "prometheus-client", "tower-http", "x509-parser", "cel"],
    );
}

#[test]
fn only_the_command_layers_know_clap() {
    for library in ["kube-once-core", "kube-once-lock", "kube-once-server"] {
        assert_none_of(library, &["clap"]);
    }
}

/// One test harness: every test binary starts `serve` through
/// `support::serve` and compares goldens through `support::golden`, so
/// none keeps a copy of their parts.
#[test]
fn test_binaries_keep_no_copy_of_the_harness() {
    let mut copies = Vec::new();
    for dir in ["tests", "tests/e2e", "crates/core/tests"] {
        for entry in std::fs::read_dir(support::repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (number, line) in text.lines().enumerate() {
                let code = line.trim_start().trim_start_matches("pub ").trim_start_matches("async ");
                let word_after = |prefix: &str| {
                    code.strip_prefix(prefix)
                        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
                };
                // The database servers of tests/e2e are `Server`s of another kind.
                let server = dir == "tests" && word_after("struct Server");
                if word_after("fn free_port")
                    || word_after("fn wait_for")
                    || server
                    || code.contains("\"UPDATE_GOLDEN\"")
                {
                    copies.push(format!("{}:{}: {}", path.display(), number + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        copies.is_empty(),
        "test binaries keep their own harness: use support::serve, support::wait, support::golden instead:\n{}",
        copies.join("\n")
    );
}
