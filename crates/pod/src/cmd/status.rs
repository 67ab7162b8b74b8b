//! Exit statuses as each subcommand's `--help` states them (as `kubectl
//! diff` does), and the one exit status of a usage error in both binaries.
//! The docs' exit-status tables are checked against these texts
//! (tests/cli.rs), so the two cannot drift.

use clap::Parser;
use kube_once_lock::exit;

/// `lock`'s statuses; docs/lock.md ("Exit codes") explains each.
pub const LOCK: &str = "\
Exit status:
  0    the command ran and succeeded, or was skipped (already done)
  *    the command failed: its own exit code; nothing recorded
  64   usage or configuration error (not retried)
  69   the database stayed unreachable, or a database error
  70   the lock's connection was lost while the command ran
  75   the lock was still held by someone else after --timeout
  76   the key's last attempt failed and its backoff step has not passed";

pub const INSTALL: &str = "\
Exit status:
  0    installed
  1    the executable cannot be copied into DIR
  64   usage error";

pub const HISTORY: &str = "\
Exit status:
  0    listed (also when nothing was recorded yet)
  64   usage or configuration error
  69   the database is unreachable or unreadable";

pub const FORGET: &str = "\
Exit status:
  0    deleted, declined, or nothing to delete
  64   usage error (also: no terminal to ask on and no --yes)
  69   the database is unreachable, or a database error";

/// The arguments, or exit: `--help` and `--version` print and exit 0,
/// a usage error says what is wrong and exits 64 (EX_USAGE, as `lock`'s
/// configuration errors do) rather than clap's 2, which `preview -o diff`
/// and `kubectl diff` give another meaning.
pub fn parse_or_exit<C: Parser>(command: clap::Command, args: impl IntoIterator<Item = std::ffi::OsString>) -> C {
    let parsed = command.try_get_matches_from(args).and_then(|mut matches| C::from_arg_matches_mut(&mut matches));
    parsed.unwrap_or_else(|error| {
        // Nothing more to say when stderr is gone.
        let _ = error.print();
        let code = if error.use_stderr() { i32::from(exit::USAGE) } else { 0 };
        std::process::exit(code)
    })
}

/// [`parse_or_exit`] of the process's own arguments, under clap's own name.
pub fn parse<C: Parser>() -> C {
    parse_or_exit(C::command(), std::env::args_os())
}
