//! The pod binary as a user's pod runs it: only the in-pod subcommands, and
//! `install` copying the very executable that runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const POD: &str = env!("CARGO_BIN_EXE_kube-once-pod");

#[test]
fn offers_the_in_pod_subcommands_only() {
    let help = Command::new(POD).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for subcommand in ["lock", "install", "history", "forget"] {
        assert!(help.contains(subcommand), "{subcommand} missing from:\n{help}");
    }
    let serve = Command::new(POD).arg("serve").output().unwrap();
    assert_eq!(serve.status.code(), Some(64), "serve is the server binary's job: a usage error");
}

#[test]
fn installs_itself_as_kube_once() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(POD).arg("install").arg(dir.path()).status().unwrap();
    assert!(status.success());
    let installed = dir.path().join("kube-once");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(POD).unwrap());
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert!(String::from_utf8(version.stdout).unwrap().starts_with("kube-once "));
}

/// Text logs read by anything but a terminal (`kubectl logs`, a file, a
/// collector) carry no ANSI escape codes.
#[test]
fn text_logs_to_a_pipe_carry_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(POD)
        .args(["--log-format", "text", "lock", "--", "true"])
        .current_dir(dir.path())
        .env("DATABASE_URL", "sqlite://db.sqlite")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("lock acquired"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "escape codes in piped text logs:\n{stderr}");
}
