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
                // (The needles are split so the standing check's grep does not
                // take this file for a copy.)
                let server = dir == "tests" && word_after(concat!("struct ", "Server"));
                if word_after(concat!("fn ", "free_port"))
                    || word_after(concat!("fn ", "wait_for"))
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

/// The names a core module's source reaches through `super::` or `crate::`
/// (its sibling modules among them).
/// The core modules `source` imports through `prefixes` (`super::` means a
/// sibling in a top-level module, the parent in a submodule).
fn core_imports(source: &str, prefixes: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in prefixes {
        for (at, _) in source.match_indices(prefix) {
            let rest = &source[at + prefix.len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let braced = rest.strip_prefix('{').map(|list| list.split('}').next().unwrap_or_default());
            match braced {
                Some(list) => names
                    .extend(list.split(',').map(|item| item.trim().split("::").next().unwrap_or_default().to_owned())),
                None => {
                    names.insert(name);
                }
            }
        }
    }
    names
}

/// A module graph with no two-way edges reads top down: each module builds
/// on the ones below it.
#[test]
fn no_two_core_modules_import_each_other() {
    let src = support::repo().join("crates/core/src");
    let mut imports = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let Some(module) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        if module == "lib" {
            continue;
        }
        let uses: &mut BTreeSet<String> = imports.entry(module).or_default();
        if path.is_dir() && !path.join("mod.rs").exists() {
            // `view/` beside `view.rs`: view's submodules, whose `crate::` imports are view's.
            for file in std::fs::read_dir(&path).unwrap() {
                uses.extend(core_imports(&std::fs::read_to_string(file.unwrap().path()).unwrap(), &["crate::"]));
            }
            continue;
        }
        let file = if path.is_dir() { path.join("mod.rs") } else { path };
        uses.extend(core_imports(&std::fs::read_to_string(file).unwrap(), &["super::", "crate::"]));
    }
    let mut mutual = Vec::new();
    for (a, uses) in &imports {
        for b in uses.iter().filter(|b| a < *b) {
            if imports.get(b).is_some_and(|back| back.contains(a)) {
                mutual.push((a, b));
            }
        }
    }
    assert!(
        mutual.is_empty(),
        "core modules importing each other: {mutual:?}; move what they share to where it belongs"
    );
}

/// The core's surface is its crate root; `pub mod` only for the namespaces
/// other crates name, and no crate that needs no `unsafe` allows it.
#[test]
fn the_core_re_exports_its_api_and_no_crate_needs_unsafe() {
    let root = support::repo();
    let lib = std::fs::read_to_string(root.join("crates/core/src/lib.rs")).unwrap();
    let public: Vec<_> = lib.lines().filter_map(|line| line.strip_prefix("pub mod ")).collect();
    assert_eq!(
        public,
        ["annotations;", "config;", "env;", "yaml;"],
        "a new `pub mod` in crates/core/src/lib.rs: re-export its API instead"
    );
    for krate in ["core", "explain", "server"] {
        let lib = std::fs::read_to_string(root.join("crates").join(krate).join("src/lib.rs")).unwrap();
        assert!(lib.contains("#![forbid(unsafe_code)]"), "crates/{krate}/src/lib.rs lost #![forbid(unsafe_code)]");
    }
}
