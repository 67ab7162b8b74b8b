//! A binary run to its end with text on stdin, as the CLI tests run
//! `kube-once` and `kube-once-pod`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// What a finished run printed, and its exit code (-1 when a signal ended it).
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `binary args` in `dir` with `stdin` on its stdin; the environment's
/// `KUBE_ONCE_LOG_FORMAT` is left out, so the output is the binary's own.
pub fn run_in(binary: &Path, dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(binary)
        .args(args)
        .current_dir(dir)
        .env_remove("KUBE_ONCE_LOG_FORMAT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
    let mut input = child.stdin.take().unwrap();
    let text = stdin.to_owned();
    // Written from a thread: a large input must not deadlock against a full
    // stdout pipe. A binary that exits before reading all of it is the test's
    // business, not a write error here.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}
