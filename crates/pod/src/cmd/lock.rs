//! `lock -- COMMAND...`: the injected `kube-once-run` initContainer. Every
//! flag has a `KUBE_ONCE_*` env var, which is how the webhook passes the plan.

use std::process::ExitCode;

use clap::Args;
use kube_once_core::{Record, env};
use kube_once_lock::{LockOptions, defaults};

use super::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Name of the env var holding the database URL.
    #[arg(long, env = env::DATABASE_URL_ENV, default_value = defaults::DATABASE_URL_ENV)]
    pub database_url_env: String,

    /// Name of an env var holding a direct database URL used only for the lock (PgBouncer).
    #[arg(long, env = env::LOCK_URL_ENV)]
    pub lock_url_env: Option<String>,

    /// Lock name; Deployments sharing a database and a lock name serialize with each other.
    #[arg(long, env = env::LOCK_NAME, default_value = defaults::LOCK_NAME)]
    pub lock_name: String,

    /// What counts as "already done" (default: hash of the image and the command).
    #[arg(long, env = env::KEY)]
    pub key: Option<String>,

    /// Keep a done-record (table: later pods skip at once) or none (every pod runs the idempotent command, one at a time).
    #[arg(long, env = env::RECORD, default_value_t = Record::Table)]
    pub record: Record,

    /// Table holding the done-records.
    #[arg(long, env = env::RECORD_TABLE, default_value = defaults::RECORD_TABLE)]
    pub record_table: String,

    /// How long to wait for the lock before giving up.
    #[arg(long, env = env::TIMEOUT, value_parser = parse_duration, default_value_t = defaults::TIMEOUT.into())]
    pub timeout: humantime::Duration,

    /// How long to wait for the database to accept connections.
    #[arg(long, env = env::CONNECT_TIMEOUT, value_parser = parse_duration, default_value_t = defaults::CONNECT_TIMEOUT.into())]
    pub connect_timeout: humantime::Duration,

    /// After a leader lost the lock while its command ran, how long after its last heartbeat the next leader waits (the old one stops its command's whole process group well within it); 0 turns it off.
    #[arg(long, env = env::LOCK_DELAY, value_parser = parse_duration, default_value_t = defaults::LOCK_DELAY.into())]
    pub lock_delay: humantime::Duration,

    /// Image the command comes from (recorded, and part of the default key).
    #[arg(long, env = env::IMAGE, default_value = "")]
    pub image: String,

    /// Namespace of the workload, for application_name and the done-record.
    #[arg(long, env = env::NAMESPACE, default_value = "")]
    pub namespace: String,

    /// Name of the workload (the Deployment, StatefulSet, ...), for application_name and the done-record.
    #[arg(long, env = env::DEPLOYMENT, default_value = "")]
    pub deployment: String,

    /// Name of the pod, for application_name, the done-record and the lock holder's name.
    #[arg(long, env = env::POD_NAME, default_value = "")]
    pub pod: String,

    /// File the one-line summary of the outcome goes to (the container's terminationMessagePath).
    #[arg(long, env = env::TERMINATION_LOG, default_value = kube_once_lock::termination::DEFAULT_PATH)]
    pub termination_log: std::path::PathBuf,

    /// After a failed attempt, how long every replica waits before one runs the key again (doubling per failure in a row, up to 30 times this).
    #[arg(long, env = env::FAILURE_BACKOFF, value_parser = parse_duration, default_value_t = kube_once_lock::attempts::DEFAULT_BASE.into())]
    pub failure_backoff: humantime::Duration,

    /// How long after a silent leader's last heartbeat (frozen, vanished, cut off) the next one waits at most for it to confirm that its command is gone.
    #[arg(long, env = env::TAKEOVER_TIMEOUT, value_parser = parse_duration, default_value_t = kube_once_lock::defaults::TAKEOVER_TIMEOUT.into())]
    pub takeover_timeout: humantime::Duration,

    /// The one-time command, run without a shell.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

impl From<LockArgs> for LockOptions {
    fn from(args: LockArgs) -> LockOptions {
        let LockArgs {
            database_url_env,
            lock_url_env,
            lock_name,
            key,
            record,
            record_table,
            timeout,
            connect_timeout,
            lock_delay,
            image,
            namespace,
            deployment,
            pod,
            termination_log,
            failure_backoff,
            takeover_timeout,
            command,
        } = args;
        LockOptions {
            database_url_env,
            lock_url_env,
            lock_name,
            key,
            record,
            record_table,
            timeout: timeout.into(),
            connect_timeout: connect_timeout.into(),
            lock_delay: lock_delay.into(),
            image,
            namespace,
            deployment,
            pod,
            command,
            termination_log: Some(termination_log),
            failure_backoff: failure_backoff.into(),
            takeover_timeout: takeover_timeout.into(),
        }
    }
}

/// Exit codes: 0 ran or skipped, the command's own code when it failed,
/// 75 lock wait timed out, 76 backing off after a failed attempt, 69 database
/// unreachable, 70 lock lost, 64 usage.
pub fn run(args: LockArgs) -> ExitCode {
    // One thread is plenty: the lock waits on the database and the child.
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(kube_once_lock::run(args.into())),
        Err(error) => super::report::<()>(Err(anyhow::Error::new(error).context("cannot start the async runtime"))),
    }
}
