//! The one-time command as a child process: no shell, stdout/stderr streamed
//! straight through (piped and copied as they come, keeping the last few KiB
//! for the attempts table and the termination message; inherited when stdin
//! is a terminal), signals forwarded, and neither it nor its own children
//! outlive the wrapper's lock:
//! - it runs in a process group of its own, and every signal goes to the
//!   whole group, so grandchildren (`sh -c 'x & y'`) are stopped with it;
//! - when the wrapper is SIGKILLed, the kernel SIGKILLs the child
//!   (parent-death signal); in a pod the wrapper is the init container's
//!   PID 1, whose death kills every process of the container;
//! - when the lock is lost, the group gets SIGTERM, then SIGKILL after a
//!   grace that ends well inside the lock-delay (see `lib.rs`).
//!
//! A grandchild that leaves the group on purpose (`setsid`) escapes the
//! group signals; in a pod, PID 1's death still takes it. When stdin is a
//! terminal (someone runs `lock` by hand, or a container with `tty: true`)
//! the child stays in the wrapper's group: in a group of its own it would be
//! a background job, stopped (SIGTTIN) as soon as it reads the terminal.

use std::collections::VecDeque;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use tokio::task::JoinHandle;

/// How much of the command's output is kept (its end).
pub const TAIL_BYTES: usize = 4096;

/// How long the copies of the output may go on after the child exited: a
/// grandchild that left the group (`setsid`) may hold the pipe open forever.
const DRAIN: Duration = Duration::from_secs(2);

/// The end of the command's stdout and of its stderr, kept apart: the two
/// pipes are read independently, so their interleaving is not known, and a
/// chatty stdout must not push the error on stderr out of the tail.
#[derive(Debug, Clone, Default)]
pub struct OutputTail(Arc<Mutex<[VecDeque<u8>; 2]>>);

/// Which of the command's streams.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl OutputTail {
    fn push(&self, stream: Stream, bytes: &[u8]) {
        if let Ok(mut tails) = self.0.lock() {
            let tail = &mut tails[stream as usize];
            tail.extend(bytes);
            let excess = tail.len().saturating_sub(TAIL_BYTES);
            tail.drain(..excess);
        }
    }

    /// The kept output as text, at most [`TAIL_BYTES`]: the end of stdout,
    /// then the end of stderr (where errors go), half each when both have
    /// something. A character cut at the start of a part is dropped.
    pub fn text(&self) -> String {
        let Ok(tails) = self.0.lock() else { return String::new() };
        let both = tails.iter().all(|tail| !tail.is_empty());
        let share = if both { TAIL_BYTES / 2 } else { TAIL_BYTES };
        tails
            .iter()
            .map(|tail| {
                let bytes: Vec<u8> = tail.iter().skip(tail.len().saturating_sub(share)).copied().collect();
                String::from_utf8_lossy(&bytes).trim_start_matches('\u{fffd}').to_string()
            })
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(if both { "\n" } else { "" })
    }
}

pub struct Child {
    process: tokio::process::Child,
    pid: Pid,
    /// Whether the child leads a process group of its own (pgid = pid).
    own_group: bool,
    /// The copies of its stdout and stderr.
    copies: Vec<JoinHandle<()>>,
}

/// Starts `command[0]` with the remaining arguments in a new process group.
///
/// Must be called from the thread that drives `lock::run` (the main thread
/// under `block_on`): Linux sends the parent-death signal when the *thread*
/// that forked the child exits, and the main thread lives as long as the
/// wrapper.
pub fn spawn(command: &[String], tail: &OutputTail) -> io::Result<Child> {
    let (program, args) = command.split_first().ok_or_else(|| io::Error::other("no command given"))?;
    let parent = nix::unistd::getpid();
    let mut builder = Command::new(program);
    builder.args(args).kill_on_drop(true);
    let own_group = !std::io::IsTerminal::is_terminal(&std::io::stdin());
    if own_group {
        builder.process_group(0);
        builder.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid, kill).
    unsafe {
        builder.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // The wrapper may have died before prctl took effect.
            if nix::unistd::getppid() != parent {
                let _ = kill(nix::unistd::getpid(), Signal::SIGKILL);
            }
            Ok(())
        });
    }
    let mut process = builder.spawn()?;
    let pid =
        process.id().map(|id| Pid::from_raw(id as i32)).ok_or_else(|| io::Error::other("child exited at once"))?;
    let mut copies = Vec::new();
    if let Some(stdout) = process.stdout.take() {
        copies.push(tokio::spawn(copy(stdout, tokio::io::stdout(), tail.clone(), Stream::Stdout)));
    }
    if let Some(stderr) = process.stderr.take() {
        copies.push(tokio::spawn(copy(stderr, tokio::io::stderr(), tail.clone(), Stream::Stderr)));
    }
    Ok(Child { process, pid, own_group, copies })
}

/// Copies `from` to `to` as it comes, keeping its end in `tail`. Our own
/// stdout going away (a closed pipe) must not stop the child: the rest is
/// still read and kept.
async fn copy(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, tail: OutputTail, stream: Stream) {
    let mut buffer = vec![0u8; 8192];
    let mut writable = true;
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        tail.push(stream, &buffer[..read]);
        if writable {
            writable = to.write_all(&buffer[..read]).await.is_ok() && to.flush().await.is_ok();
        }
    }
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// What `kill(2)` takes to reach the child's whole group (`-pgid`), or
    /// the child alone when it has none of its own.
    pub fn kill_arg(&self) -> i32 {
        if self.own_group { -self.pid.as_raw() } else { self.pid.as_raw() }
    }

    /// Sends `signal` to the child's whole process group (to the child
    /// alone when it has none of its own); one that is already gone is not an error.
    pub fn signal(&self, signal: Signal) {
        let _ = if self.own_group { killpg(self.pid, signal) } else { kill(self.pid, signal) };
    }

    /// Waits for the child; then SIGKILLs what is left of its group (a
    /// background job must not go on after the command is declared done).
    pub async fn wait(&mut self) -> io::Result<i32> {
        let status = self.process.wait().await.map(exit_code);
        self.kill_leftovers();
        self.drain().await;
        status
    }

    /// Lets the copies of the output finish (the pipes close once the group
    /// is gone), within [`DRAIN`]. Cancel-safe: `wait` runs inside a
    /// `select!` whose other branches may win while the copies finish, and
    /// a copy is forgotten only once it is done, so the next `wait` goes on
    /// draining and the output's tail is whole when the outcome is recorded.
    async fn drain(&mut self) {
        let _ = tokio::time::timeout(DRAIN, async {
            while let Some(copy) = self.copies.last_mut() {
                let _ = copy.await;
                self.copies.pop();
            }
        })
        .await;
    }

    /// Whether every process of the child's group has died, polled until
    /// `within` (a SIGKILLed process inside a system call finishes it first).
    /// Zombies count as dead: they run no more code. The child alone (no
    /// group of its own) is gone once `wait` has reaped it.
    /// Blocking: the lock is lost by then, so there is nothing else to do.
    pub fn group_gone(&self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while self.own_group && group_alive(self.pid) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10)); // wait-on-condition: poll with a deadline
        }
        true
    }

    /// SIGKILL to what is left of the child's group once the child is gone
    /// (its pid, reaped, must not be signalled alone: it may be reused; the
    /// group id stays reserved while any member lives).
    fn kill_leftovers(&self) {
        if self.own_group {
            let _ = killpg(self.pid, Signal::SIGKILL);
        }
    }

    /// SIGTERM to the group, then SIGKILL to the group if the child has not
    /// exited after `grace` (and in any case once it has: its own children
    /// may ignore SIGTERM).
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<i32> {
        self.signal(Signal::SIGTERM);
        match tokio::time::timeout(grace, self.process.wait()).await {
            Ok(status) => {
                self.kill_leftovers();
                self.drain().await;
                status.map(exit_code)
            }
            Err(_) => {
                self.signal(Signal::SIGKILL);
                self.wait().await
            }
        }
    }
}

/// Whether a process of group `pgid` still runs (is not a zombie).
fn group_alive(pgid: Pid) -> bool {
    // No member at all, not even a zombie: `kill(2)` says so at once.
    if killpg(pgid, None).is_err() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return true };
    entries.filter_map(Result::ok).any(|entry| {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The fields after the command name: state, ppid, pgrp, ...
        let fields: Vec<&str> =
            stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ').take(3).collect()).unwrap_or_default();
        matches!(fields[..], [state, _, pgrp] if state != "Z" && state != "X" && pgrp.parse() == Ok(pgid.as_raw()))
    })
}

/// The code a shell would report: the exit status, or 128 + the signal number.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|signal| 128 + signal)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_end_of_the_output_is_kept() {
        let tail = OutputTail::default();
        let script = "seq 1 5000; echo last words >&2; exit 3".to_string();
        let mut child = spawn(&["sh".into(), "-c".into(), script], &tail).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(child.wait().await.unwrap_or_else(|e| unreachable!("{e}")), 3);
        let text = tail.text();
        assert!(text.len() <= TAIL_BYTES && text.ends_with("4999\n5000\n\nlast words\n"), "{text:?}");
        assert!(!text.contains("\n2\n3\n"), "the start is dropped: {text:?}");
    }

    #[tokio::test]
    async fn the_group_is_gone_only_once_every_member_died() {
        let script = "sleep 60 & sleep 60 & wait".to_string();
        let mut child =
            spawn(&["sh".into(), "-c".into(), script], &OutputTail::default()).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!child.group_gone(Duration::from_millis(50)), "its members are running");
        child.signal(Signal::SIGKILL);
        let _ = child.wait().await;
        assert!(child.group_gone(Duration::from_secs(60)), "every member was SIGKILLed");
    }

    /// Whether `pid` is a running (not zombie) process.
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn terminate_kills_grandchildren_that_ignore_sigterm() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let pids = dir.path().join("pids");
        let script = format!(
            r#"trap '' TERM; (trap '' TERM; echo $BASHPID >> {0}; while :; do sleep 0.05; done) & echo $$ >> {0}; wait"#,
            pids.display()
        );
        let mut child = spawn(&["bash".into(), "-c".into(), script], &OutputTail::default())
            .unwrap_or_else(|e| unreachable!("{e}"));
        let read = || std::fs::read_to_string(&pids).unwrap_or_default();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while read().lines().count() < 2 {
            assert!(std::time::Instant::now() < deadline, "the script did not start");
            tokio::time::sleep(Duration::from_millis(20)).await; // wait-on-condition poll with a deadline
        }
        let code = child.terminate(Duration::from_millis(200)).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(code, 128 + 9, "SIGKILLed after the grace");
        let pids: Vec<i32> = read().lines().filter_map(|line| line.trim().parse().ok()).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while pids.iter().any(|&pid| alive(pid)) {
            assert!(std::time::Instant::now() < deadline, "a process of the group survived: {pids:?}");
            tokio::time::sleep(Duration::from_millis(20)).await; // wait-on-condition poll with a deadline
        }
    }
}
