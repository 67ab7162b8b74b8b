//! `kube-once lock`: run the command once per key under a database lock.

use std::process::ExitCode;

use crate::cli::LockArgs;

pub async fn run(args: LockArgs) -> ExitCode {
    let _ = args;
    ExitCode::from(64)
}
