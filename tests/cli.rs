//! The command line's habits, against the real binaries: one JSON value
//! however many inputs, `-o json|yaml` with a golden schema, kubectl's `-f`
//! and `-R` everywhere, shell completion, the `kubectl once` plugin, exit
//! 64 on a usage error, help for every flag and exit statuses in every
//! `--help` (the same text as docs/cli.md), no colour into a pipe.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use serde_json::Value;

use support::process::{Run, run_in};

fn kube_once(args: &[&str]) -> Run {
    run_in(&support::binary(), support::repo(), args, "")
}

fn deployment(name: &str, annotated: bool) -> String {
    let annotations = if annotated { "\n  annotations:\n    kube-once.io/run: \"migrate\"" } else { "" };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: shop{annotations}\n\
         spec:\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        \
         app: {name}\n    spec:\n      containers:\n      - name: app\n        image: app:1\n        env:\n        \
         - name: DATABASE_URL\n          value: postgres://db/app\n"
    )
}

/// A tree of manifests: two files at the top, one more a directory down.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), deployment("alpha", true)).unwrap();
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n";
    std::fs::write(dir.path().join("b.yml"), format!("{config_map}---\n{}", deployment("beta", true))).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(
        dir.path().join("nested/c.json"),
        serde_json::to_string(&yaml_value(&deployment("gamma", false))).unwrap(),
    )
    .unwrap();
    dir
}

fn yaml_value(text: &str) -> Value {
    kube_once_core::parse_documents(text).unwrap().remove(0)
}

fn path(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[test]
fn json_over_many_inputs_is_one_value() {
    let tree = tree();
    let root = path(tree.path());
    let run = kube_once(&["preview", "-R", "-f", root, "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let list: Value = serde_json::from_str(&run.stdout).expect("-o json over many files is one JSON value");
    assert_eq!((list["apiVersion"].as_str(), list["kind"].as_str()), (Some("v1"), Some("List")));
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "settings", "beta", "gamma"], "every object, files in name order, directories with -R");
    let items = list["items"].as_array().unwrap();
    assert!(items[0].pointer("/spec/template/spec/initContainers").is_some(), "an annotated one is mutated");
    assert_eq!(items[1]["data"]["a"], "1", "a ConfigMap passes through");
    assert!(items[3].pointer("/spec/template/spec/initContainers").is_none());

    // Without -R the directory below is not read; -f repeats.
    let flat = kube_once(&["preview", "-f", root, "-f", &format!("{root}/nested/c.json"), "-o", "json"]);
    let list: Value = serde_json::from_str(&flat.stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 4, "{}", flat.stdout);
    let top = kube_once(&["preview", "-f", root, "-o", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&top.stdout).unwrap()["items"].as_array().unwrap().len(), 3);

    // Patches: one array, each item naming its object and where it was read.
    let run = kube_once(&["preview", "-R", "-f", root, "-o", "patch"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let patches: Vec<Value> = serde_json::from_str(&run.stdout).expect("-o patch over many files is one JSON value");
    let named: Vec<(String, String, String, String, u64)> = patches
        .iter()
        .map(|p| {
            let text = |key: &str| p[key].as_str().unwrap().to_owned();
            (text("kind"), text("namespace"), text("name"), text("file"), p["document"].as_u64().unwrap())
        })
        .collect();
    let file = |name: &str| format!("{root}/{name}");
    assert_eq!(
        named,
        [
            ("Deployment".into(), "shop".into(), "alpha".into(), file("a.yaml"), 1),
            ("Deployment".into(), "shop".into(), "beta".into(), file("b.yml"), 2),
            ("Deployment".into(), "shop".into(), "gamma".into(), file("nested/c.json"), 1),
        ]
    );
    assert!(!patches[0]["patch"].as_array().unwrap().is_empty());
    assert_eq!(patches[2]["patch"], serde_json::json!([]), "an unchanged workload's patch is empty");

    // YAML stays a stream of documents, one per object.
    let run = kube_once(&["preview", "-R", "-f", root, "-o", "yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(support::yaml::documents(&run.stdout, "preview -o yaml").unwrap().len(), 4, "{}", run.stdout);
}

#[test]
fn stdin_is_one_of_the_inputs() {
    let tree = tree();
    let run = run_in(
        &support::binary(),
        support::repo(),
        &["preview", "-f", &format!("{}/a.yaml", path(tree.path())), "-f", "-", "-o", "patch"],
        &deployment("from-stdin", true),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let patches: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(patches[1]["file"], "stdin");
    assert_eq!(patches[1]["name"], "from-stdin");
}

const WEBHOOK_CONFIGURATION: &str = "webhook-config/kube-once.yaml";

/// `explain` and `injected` read manifests as `preview` does and print one
/// value in a documented schema (docs/cli.md), checked by goldens.
#[test]
fn explain_and_injected_print_one_documented_value() {
    let fixtures = "tests/fixtures/cli";
    let mut golden = support::golden::Golden::new();
    for output in ["json", "yaml"] {
        let explain = kube_once(&[
            "explain",
            "-R",
            "-f",
            &format!("{fixtures}/manifests"),
            "--webhook-configuration",
            WEBHOOK_CONFIGURATION,
            "-o",
            output,
        ]);
        assert_eq!(explain.code, 3, "one is not sent (kube-once.io/ignore): {}", explain.stderr);
        golden.check(&support::fixtures("cli").join(format!("explain.{output}")), &explain.stdout);

        let injected = kube_once(&["injected", "-R", "-f", &format!("{fixtures}/manifests"), "-o", output]);
        assert_eq!(injected.code, 0, "{}", injected.stderr);
        golden.check(&support::fixtures("cli").join(format!("injected.{output}")), &injected.stdout);
    }
    golden.finish();

    let explain = kube_once(&[
        "explain",
        "-R",
        "-f",
        &format!("{fixtures}/manifests"),
        "--webhook-configuration",
        WEBHOOK_CONFIGURATION,
        "-o",
        "json",
    ]);
    let value: Value = serde_json::from_str(&explain.stdout).unwrap();
    let verdicts: Vec<&str> =
        value["workloads"].as_array().unwrap().iter().map(|w| w["verdict"].as_str().unwrap()).collect();
    assert_eq!(
        verdicts,
        ["unchanged", "not-sent", "injected"],
        "paths in name order (nested/ first), as kubectl walks them"
    );
    let yaml = kube_once(&["injected", "-R", "-f", &format!("{fixtures}/manifests"), "-o", "yaml"]);
    let json = kube_once(&["injected", "-R", "-f", &format!("{fixtures}/manifests"), "-o", "json"]);
    assert_eq!(
        yaml_value(&yaml.stdout),
        serde_json::from_str::<Value>(&json.stdout).unwrap(),
        "one schema, two notations"
    );
}

#[test]
fn certs_print_one_value_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let run = kube_once(&["certs", "--out-dir", path(dir.path()), "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let value: Value = serde_json::from_str(&run.stdout).unwrap();
    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
    assert_eq!(value["caBundle"], base64_simd::STANDARD.encode_to_string(&ca));
    assert_eq!(value["files"]["tls.key"], dir.path().join("tls.key").to_str().unwrap());
    assert!(value["dnsNames"].as_array().unwrap().iter().any(|n| n == "kube-once.kube-once.svc"), "{value}");
}

#[test]
fn completion_loads_in_bash() {
    let script = "source <(\"$0\" completion bash) && complete -p kube-once";
    let output = Command::new("bash").args(["-c", script]).arg(support::binary()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("kube-once"), "{stdout}");
    for shell in ["zsh", "fish"] {
        let run = kube_once(&["completion", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains("preview"), "{shell}: {}", run.stdout);
    }
}

/// Installed as `kubectl-once` on PATH, kubectl finds it and runs it.
#[test]
fn works_as_a_kubectl_plugin() {
    let kubectl = support::env::tool("KUBE_ONCE_KUBECTL");
    let bin = tempfile::tempdir().unwrap();
    let plugin = bin.path().join("kubectl-once");
    std::os::unix::fs::symlink(support::binary(), &plugin).unwrap();
    let path = format!("{}:{}", path(bin.path()), std::env::var("PATH").unwrap_or_default());
    let home = tempfile::tempdir().unwrap();
    let kubectl_run = |args: &[&str]| {
        let output = Command::new(&kubectl)
            .args(args)
            .current_dir(support::repo())
            .env("PATH", &path)
            // No kubeconfig of the machine's: a plugin needs none.
            .env("HOME", home.path())
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
        (output.status.code(), text(output.stdout), text(output.stderr))
    };
    let (code, stdout, stderr) = kubectl_run(&["plugin", "list"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(plugin.to_str().unwrap()), "kubectl plugin list: {stdout}{stderr}");

    let (code, stdout, stderr) =
        kubectl_run(&["once", "preview", "-f", "tests/fixtures/cli/manifests/web.yaml", "-o", "patch"]);
    assert_eq!(code, Some(0), "{stderr}");
    let patches: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(patches[0]["name"], "web");

    let (code, _, stderr) = kubectl_run(&["once", "preview", "--bogus"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("Usage: kubectl once preview"), "the usage names the plugin: {stderr}");
}

/// Every subcommand of both binaries: a usage error exits 64, as the docs say.
#[test]
fn usage_errors_exit_64() {
    let cli = kube_once_cli();
    let mut names: Vec<String> = cli.get_subcommands().map(|c| c.get_name().to_owned()).collect();
    names.push(String::new());
    for name in &names {
        let args: Vec<&str> = [name.as_str(), "--no-such-flag"].into_iter().filter(|a| !a.is_empty()).collect();
        let run = kube_once(&args);
        assert_eq!(run.code, 64, "kube-once {name}: {}", run.stderr);
        assert!(run.stderr.contains("--no-such-flag"), "kube-once {name}: says what was wrong: {}", run.stderr);
    }
    for args in [&["lock"][..], &["lock", "--timeout", "soon", "--", "true"], &["forget", "--yes"], &["install"]] {
        let run = run_in(&support::pod_binary(), support::repo(), args, "");
        assert_eq!(run.code, 64, "kube-once-pod {args:?}: {}", run.stderr);
        let run = kube_once(args);
        assert_eq!(run.code, 64, "kube-once {args:?}: {}", run.stderr);
    }
    let help = kube_once(&["preview", "--help"]);
    assert_eq!((help.code, help.stderr.as_str()), (0, ""), "--help is no error");
    assert_eq!(kube_once(&["--version"]).code, 0);
}

fn kube_once_cli() -> clap::Command {
    let mut command = kube_once::cmd::Cli::command();
    command.build();
    command
}

/// Walks the whole command tree: every flag and argument says what it is for.
#[test]
fn every_flag_has_help() {
    fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for argument in command.get_arguments() {
            let id = argument.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if argument.get_help().is_none_or(|help| help.to_string().trim().is_empty()) {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_about().is_none_or(|about| about.to_string().trim().is_empty()) {
                missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&kube_once_cli(), "kube-once", &mut missing);
    assert!(missing.is_empty(), "flags without help: {missing:?}");
}

/// Each subcommand's `--help` ends with its exit statuses, and docs/cli.md
/// holds the very same text, so neither drifts from the other.
#[test]
fn exit_statuses_are_in_every_help_and_in_the_docs() {
    let docs = std::fs::read_to_string(support::repo().join("docs/cli.md")).unwrap();
    let cli = kube_once_cli();
    let mut problems = Vec::new();
    for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        let Some(statuses) = sub.get_after_help().map(ToString::to_string) else {
            problems.push(format!("{name}: no exit statuses in --help"));
            continue;
        };
        let help = kube_once(&[name, "--help"]).stdout;
        if !help.trim_end().ends_with(statuses.trim_end()) {
            problems.push(format!("{name}: --help does not end with its exit statuses:\n{help}"));
        }
        if !statuses.contains("64   usage") {
            problems.push(format!("{name}: a usage error exits 64, say so:\n{statuses}"));
        }
        let block = format!("### `{name}`\n\n```text\n{statuses}\n```\n");
        if !docs.contains(&block) {
            problems.push(format!("docs/cli.md lacks, for {name}:\n{block}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Text logs carry ANSI colour only for a person at a terminal: never into
/// a pipe or a file, whatever the format asked for.
#[test]
fn text_logs_into_a_pipe_have_no_colour() {
    let output = Command::new(support::pod_binary())
        .args(["--log-format", "text", "lock", "--database-url-env", "KUBE_ONCE_TEST_NO_SUCH_VAR", "--", "true"])
        .env_remove("KUBE_ONCE_TEST_NO_SUCH_VAR")
        .env_remove("NO_COLOR")
        .env("KUBE_ONCE_TERMINATION_LOG", PathBuf::from("/dev/null"))
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("KUBE_ONCE_TEST_NO_SUCH_VAR"), "a text log line was written: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no ANSI escape into a pipe: {stderr:?}");
}

/// `serve`'s start-up line names its addresses plainly (no Rust `Some(...)`),
/// and its text log into a file carries no colour.
#[tokio::test]
async fn serve_logs_plain_values() {
    let server = support::serve::Serve::new().preview().start().await;
    let log = server.log();
    let serving = log.lines().find(|line| line.contains(" listen=")).unwrap_or_else(|| panic!("{log}"));
    let preview = server.preview_addr().expect("the preview address, read from the log line");
    assert!(serving.contains(&format!("preview_listen={preview}")), "{serving}");
    assert!(!log.contains("Some("), "{log}");
    assert!(!log.contains('\u{1b}'), "text logs into a file have no ANSI escapes: {log:?}");

    let server = support::serve::Serve::new().start().await;
    let log = server.log();
    assert!(!log.contains("preview_listen"), "no preview listener, no field: {log}");
}
