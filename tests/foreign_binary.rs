//! The shipped static binary of another build or architecture, not the one
//! cargo built for these tests: `--version`, `install`, and the exactly-once
//! race of 20 `lock` processes against the real PostgreSQL and MariaDB.
//!
//! Which binary: KUBE_ONCE_FOREIGN_BINARY (a path); how to run it:
//! KUBE_ONCE_FOREIGN_RUNNER (e.g. `qemu-aarch64`; empty or unset runs it
//! directly). scripts/test-foreign.sh builds the binaries, starts the
//! databases, sets both and runs these tests with `--run-ignored only`. They
//! are #[ignore]d so the ordinary suite lists them as skipped; run without the
//! variables they fail, naming the script.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::databases::{APPEND_AND_SLEEP, Db, Scenario};

/// The binary under test and the runner (with its arguments) that starts it.
struct Foreign {
    binary: PathBuf,
    runner: Vec<String>,
}

impl Foreign {
    fn from_env() -> Foreign {
        let binary = match std::env::var("KUBE_ONCE_FOREIGN_BINARY") {
            Ok(path) if !path.is_empty() => PathBuf::from(path),
            _ => panic!("KUBE_ONCE_FOREIGN_BINARY is not set: run these tests through scripts/test-foreign.sh"),
        };
        assert!(binary.is_file(), "KUBE_ONCE_FOREIGN_BINARY={} is not a file", binary.display());
        let runner = std::env::var("KUBE_ONCE_FOREIGN_RUNNER").unwrap_or_default();
        Foreign { binary, runner: runner.split_whitespace().map(str::to_string).collect() }
    }

    /// A command that runs `binary` (this one, or a copy of it) through the runner.
    fn command_for(&self, binary: &Path) -> Command {
        match self.runner.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(binary);
                cmd
            }
            None => Command::new(binary),
        }
    }

    fn command(&self) -> Command {
        self.command_for(&self.binary)
    }

    /// `cmd` (built for the cargo-built binary, e.g. by `Scenario::lock`)
    /// with the same arguments, environment and directory, run on this one.
    fn rewrite(&self, cmd: &Command) -> Command {
        let mut foreign = self.command();
        foreign.args(cmd.get_args());
        for (var, value) in cmd.get_envs() {
            match value {
                Some(value) => foreign.env(var, value),
                None => foreign.env_remove(var),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            foreign.current_dir(dir);
        }
        foreign
    }
}

/// tests/lock.rs's exactly-once race, with the foreign binary: one process
/// runs the command, the others wait for it and skip; every one exits 0
/// after the command finished, and one done-record is written.
fn exactly_once(db: Db, processes: usize) {
    let foreign = Foreign::from_env();
    let mut scenario = Scenario::new(db, "foreign");
    for _ in 0..processes {
        let cmd = foreign.rewrite(&scenario.lock(&["--key", "v1"], APPEND_AND_SLEEP));
        scenario.spawn(cmd);
    }
    scenario.assert_ran_exactly_once();
}

#[test]
#[ignore = "needs KUBE_ONCE_FOREIGN_BINARY: run by scripts/test-foreign.sh"]
fn foreign_binary_prints_its_version() {
    let foreign = Foreign::from_env();
    let output = foreign.command().arg("--version").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{:?}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("kube-once"), "{stdout}");
}

#[test]
#[ignore = "needs KUBE_ONCE_FOREIGN_BINARY: run by scripts/test-foreign.sh"]
fn foreign_binary_installs_itself_and_the_copy_runs() {
    let foreign = Foreign::from_env();
    let dir = tempfile::tempdir().unwrap();
    // Twice: the second install replaces the first (a restarted initContainer).
    for _ in 0..2 {
        let output = foreign.command().arg("install").arg(dir.path()).output().unwrap();
        assert!(output.status.success(), "{:?}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let installed = dir.path().join("kube-once");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(&foreign.binary).unwrap(), "install copied another file");
    let output = foreign.command_for(&installed).arg("--version").output().unwrap();
    assert!(output.status.success(), "the installed copy does not run: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
#[ignore = "needs KUBE_ONCE_FOREIGN_BINARY: run by scripts/test-foreign.sh"]
fn foreign_binary_postgres_twenty_processes_run_the_command_once() {
    exactly_once(Db::postgres(), 20);
}

#[test]
#[ignore = "needs KUBE_ONCE_FOREIGN_BINARY: run by scripts/test-foreign.sh"]
fn foreign_binary_mysql_twenty_processes_run_the_command_once() {
    exactly_once(Db::mysql(), 20);
}
