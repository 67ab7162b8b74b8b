//! The one-time command as a child process: no shell, stdout/stderr inherited
//! (streamed straight through), signals forwarded, and it never outlives the
//! wrapper: a SIGKILLed wrapper has dropped its lock, so an orphaned
//! migration must not keep running beside the next pod's.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;

pub struct Child {
    process: tokio::process::Child,
    pid: Pid,
}

/// Starts `command[0]` with the remaining arguments.
///
/// Must be called from the thread that drives `lock::run` (the main thread
/// under `block_on`): Linux sends the parent-death signal when the *thread*
/// that forked the child exits, and the main thread lives as long as the
/// wrapper.
pub fn spawn(command: &[String]) -> io::Result<Child> {
    let (program, args) = command.split_first().ok_or_else(|| io::Error::other("no command given"))?;
    let parent = nix::unistd::getpid();
    let mut builder = Command::new(program);
    builder.args(args).kill_on_drop(true);
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
    let process = builder.spawn()?;
    let pid =
        process.id().map(|id| Pid::from_raw(id as i32)).ok_or_else(|| io::Error::other("child exited at once"))?;
    Ok(Child { process, pid })
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Sends `signal` to the child; a child that already exited is not an error.
    pub fn signal(&self, signal: Signal) {
        let _ = kill(self.pid, signal);
    }

    pub async fn wait(&mut self) -> io::Result<i32> {
        self.process.wait().await.map(exit_code)
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace`.
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<i32> {
        self.signal(Signal::SIGTERM);
        match tokio::time::timeout(grace, self.process.wait()).await {
            Ok(status) => status.map(exit_code),
            Err(_) => {
                self.signal(Signal::SIGKILL);
                self.wait().await
            }
        }
    }
}

/// The code a shell would report: the exit status, or 128 + the signal number.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|signal| 128 + signal)).unwrap_or(1)
}
