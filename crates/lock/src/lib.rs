//! `kube-once lock`: run the command once per key under a database lock.
//! Lean on purpose: this crate is what the pod binary is built from.
//!
//! The protocol (docs/lock.md):
//! 1. connect, retrying with capped exponential backoff (exit 69 after
//!    `connect-timeout`; a TLS configuration error, exit 64 at once);
//! 2. fast path: the done-record for the key exists → exit 0;
//! 3. poll for the lock; between polls re-check the done-record (skip as soon
//!    as the leader finished), log the holder every few seconds, give up with
//!    exit 75 after `timeout`. A connection that breaks while waiting (a
//!    database restart) is opened again, with backoff, within the same timeout;
//! 4. holding the lock: if the previous leader's `running` row has a recent
//!    heartbeat, wait until that heartbeat is `lock-delay` old (server time):
//!    a leader that lost its lock has stopped its command by then; if its
//!    heartbeat was already old, the holder went silent (frozen, vanished):
//!    wait for it to confirm its command is gone, at most until the takeover
//!    timeout (`takeover`). Either wait ends when the old leader, its process
//!    group gone, deletes its row through a fresh session. Then create
//!    the record table, check the record again, write our `running` row and
//!    run the child in a process group of its own while a heartbeat refreshes
//!    the row through the lock's connection (lost → the whole group stopped,
//!    exit 70);
//! 5. success → write the done-record, delete the `running` row, release;
//!    failure → the same without the record, exit with the child's code, so
//!    Kubernetes retries the pod. Either way the run leaves a row in the
//!    attempts table (`attempts`), and a key whose last attempts failed backs
//!    off: a pod that finds it so exits 76 at once, before and after taking
//!    the lock, so at most one run per backoff step happens across replicas;
//! 6. every outcome ends with a one-line summary in the termination-message
//!    file (`termination`), which `kubectl describe pod` shows.

pub mod attempts;
mod backoff;
mod child;
mod dialect;
pub mod history;
pub mod install;
mod lease;
mod mysql;
pub mod names;
mod postgres;
pub mod record;
mod sqlite;
mod takeover;
pub mod termination;
mod tls;
pub mod url;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use attempts::{Attempt, Outcome};
use backoff::{Backoff, jitter};
use dialect::{Lock, RecordStore};
use kube_once_core::Record;
use kube_once_core::env;
use record::{DoneRecord, Filter};
use termination::{Redactor, Summary};
use url::Target;

/// Exit codes (sysexits.h where one fits); a failed command exits with its own code.
pub mod exit {
    /// Usage and configuration errors: nothing a retry or a wait can fix.
    pub const USAGE: u8 = 64;
    pub const UNREACHABLE: u8 = 69;
    pub const LOCK_LOST: u8 = 70;
    pub const TIMEOUT: u8 = 75;
    /// The key's last attempt failed and its backoff step has not passed:
    /// nothing ran. Apart from 75 on purpose: that one means "gave up
    /// waiting", this one "not yet, by design".
    pub const BACKING_OFF: u8 = 76;
}

/// How long a lost leader waits for its SIGKILLed process group to be gone
/// (a process inside a system call finishes it first) before it tells the
/// next leader so; past that it does not, and the next one waits out its
/// takeover timeout.
const GROUP_GONE_WITHIN: Duration = Duration::from_secs(10);

/// How often a follower logs who holds the lock.
const HOLDER_LOG_EVERY: Duration = Duration::from_secs(5);

/// How long past the lock timeout a statement of the wait may still answer:
/// one started just before it (`GET_LOCK(name, 1)` takes a second), or the
/// holder's name for the `timeout` line.
const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// The leader's clock, derived from the lock-delay so that a leader whose
/// lock is gone has SIGKILLed its command's process group before the next
/// leader may start: after the last heartbeat that got through, the next one
/// comes within `heartbeat_every`, fails within `heartbeat_timeout`, and the
/// group gets `grace` between SIGTERM and SIGKILL. All three together take at
/// most 80 % of the lock-delay (15 s: 1 + 3.75 + 3.75 = 8.5 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub heartbeat_every: Duration,
    pub heartbeat_timeout: Duration,
    pub grace: Duration,
}

impl Timings {
    pub fn new(lock_delay: Duration) -> Self {
        if lock_delay.is_zero() {
            // No lock-delay: the old bounds (a lost lock may overlap by up to ~12 s).
            return Timings {
                heartbeat_every: Duration::from_secs(1),
                heartbeat_timeout: Duration::from_secs(10),
                grace: Duration::from_secs(10),
            };
        }
        Timings {
            heartbeat_every: (lock_delay / 5).min(Duration::from_secs(1)),
            heartbeat_timeout: (lock_delay / 4).min(Duration::from_secs(5)),
            grace: (lock_delay / 4).min(Duration::from_secs(10)),
        }
    }

    /// How long after its last heartbeat got through the leader may let its
    /// command live: the lost-lock path above takes at most this long, so a
    /// command still running later means the wrapper was frozen or starved;
    /// the lease's watchdog then SIGKILLs the group with no grace.
    pub fn bound(&self) -> Duration {
        self.heartbeat_every + self.heartbeat_timeout + self.grace
    }
}

/// What the lock of every dialect needs besides its URLs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub lock_name: String,
    /// The done-record table; `None` with `record=none`.
    pub table: Option<String>,
    /// `<namespace>/<deployment>/<pod>`: PostgreSQL shows it in `pg_stat_activity`.
    pub application_name: String,
}

/// Defaults of [`LockOptions`]; the command line shows them in `--help`. Those
/// the webhook also applies come from the core, so both sides agree.
pub mod defaults {
    use std::time::Duration;

    use kube_once_core::config::Defaults;

    pub const DATABASE_URL_ENV: &str = kube_once_core::annotations::DEFAULT_DATABASE_URL_ENV;
    pub const LOCK_NAME: &str = Defaults::LOCK_NAME;
    pub const RECORD_TABLE: &str = "kube_once_runs";
    pub const TIMEOUT: Duration = Defaults::TIMEOUT;
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
    /// How long after a lost leader's last heartbeat the next leader waits
    /// (Chubby's lock-delay); `0` turns it off (no `running` table).
    pub const LOCK_DELAY: Duration = Duration::from_secs(15);
    /// How long after a silent leader's last heartbeat (frozen, vanished,
    /// cut off) the next leader gives up waiting for it to confirm that its
    /// command is gone: Kubernetes' own wait before it evicts the pods of
    /// an unreachable node.
    pub const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5 * 60);
}

/// What `lock` is asked to do, as plain values; [`plan`] reads the
/// environment it names.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// Name of the env var holding the database URL.
    pub database_url_env: String,
    /// Name of an env var holding a direct URL used only for the lock (PgBouncer).
    pub lock_url_env: Option<String>,
    pub lock_name: String,
    /// What counts as "already done"; `None` or empty: the default key.
    pub key: Option<String>,
    pub record: Record,
    pub record_table: String,
    /// How long to wait for the lock (exit 75 after).
    pub timeout: Duration,
    /// How long to wait for the database to accept connections (exit 69 after).
    pub connect_timeout: Duration,
    /// How long after a lost leader's last heartbeat the next leader waits.
    pub lock_delay: Duration,
    /// How long after a silent leader's last heartbeat the next leader waits
    /// at most for its confirmation that its command is gone.
    pub takeover_timeout: Duration,
    /// Image the command comes from (recorded, and part of the default key).
    pub image: String,
    pub namespace: String,
    pub deployment: String,
    pub pod: String,
    /// The one-time command, run without a shell.
    pub command: Vec<String>,
    /// Where the summary goes; `None`: the kubelet's default path.
    pub termination_log: Option<PathBuf>,
    /// The first backoff step after a failed attempt.
    pub failure_backoff: Duration,
}

impl LockOptions {
    /// The defaults for `command`.
    pub fn new(command: Vec<String>) -> Self {
        LockOptions {
            database_url_env: defaults::DATABASE_URL_ENV.to_owned(),
            lock_url_env: None,
            lock_name: defaults::LOCK_NAME.to_owned(),
            key: None,
            record: Record::Table,
            record_table: defaults::RECORD_TABLE.to_owned(),
            timeout: defaults::TIMEOUT,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            lock_delay: defaults::LOCK_DELAY,
            takeover_timeout: defaults::TAKEOVER_TIMEOUT,
            image: String::new(),
            namespace: String::new(),
            deployment: String::new(),
            pod: String::new(),
            command,
            termination_log: None,
            failure_backoff: attempts::DEFAULT_BASE,
        }
    }
}

/// Everything `lock` needs, read and checked before any connection is made.
#[derive(Debug)]
pub struct LockPlan {
    pub target: Target,
    pub lock_target: Option<Target>,
    pub settings: Settings,
    pub key: String,
    pub command: Vec<String>,
    pub image: String,
    pub namespace: String,
    pub deployment: String,
    pub pod: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub lock_delay: Duration,
    pub takeover_timeout: Duration,
    pub failure_backoff: Duration,
    /// How the run ended, for the termination message.
    pub summary: Summary,
    /// Hides the URLs' secrets in what the summary and the attempts table quote.
    pub redactor: Redactor,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(
        "env var {0} (named by --database-url-env / {env}) is not set or empty; set it to the database URL, e.g. postgresql://user:pass@host:5432/db",
        env = env::DATABASE_URL_ENV
    )]
    NoDatabaseUrl(String),
    #[error("env var {0} (named by --lock-url-env / {env}) is not set or empty; set it to a direct database URL or drop the lock-url-env annotation", env = env::LOCK_URL_ENV)]
    NoLockUrl(String),
    #[error("{var}: {source}")]
    BadUrl { var: String, source: url::UrlError },
    #[error("the lock URL ({lock}) and the database URL ({database}) must be the same kind of database")]
    MixedBackends { lock: &'static str, database: &'static str },
    #[error(transparent)]
    BadTable(#[from] record::BadTableName),
    #[error("--key / {env}: {0}", env = env::KEY)]
    KeyTooLong(#[from] record::KeyTooLong),
}

/// Builds the plan from the arguments and the environment (`lookup` reads an env var).
pub fn plan(args: &LockOptions, lookup: impl Fn(&str) -> Option<String>) -> Result<LockPlan, UsageError> {
    let read = |var: &str| lookup(var).filter(|value| !value.trim().is_empty());
    let parse = |var: &str, text: String| {
        url::parse(text.trim()).map_err(|source| UsageError::BadUrl { var: var.to_string(), source })
    };
    let database_url =
        read(&args.database_url_env).ok_or_else(|| UsageError::NoDatabaseUrl(args.database_url_env.clone()))?;
    let target = parse(&args.database_url_env, database_url.clone())?;
    let lock_url = match &args.lock_url_env {
        Some(var) => Some(read(var).ok_or_else(|| UsageError::NoLockUrl(var.clone()))?),
        None => None,
    };
    let lock_target = match (&args.lock_url_env, &lock_url) {
        (Some(var), Some(url)) => Some(parse(var, url.clone())?),
        _ => None,
    };
    let passwords: Vec<&str> = std::iter::once(&target)
        .chain(&lock_target)
        .filter_map(|target| match target {
            Target::Postgres(server) | Target::MySql(server) => server.password.as_deref(),
            Target::Sqlite(_) => None,
        })
        .collect();
    let redactor = Redactor::new(std::iter::once(database_url.as_str()).chain(lock_url.as_deref()), passwords);
    if let Some(lock) = &lock_target
        && std::mem::discriminant(lock) != std::mem::discriminant(&target)
    {
        return Err(UsageError::MixedBackends { lock: lock.backend_name(), database: target.backend_name() });
    }
    let table = match args.record {
        Record::Table => {
            record::validate_table_name(&args.record_table)?;
            Some(args.record_table.clone())
        }
        Record::None => None,
    };
    let key = args
        .key
        .clone()
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| kube_once_core::annotations::default_key(&args.image, &args.command));
    record::validate_key(&key)?;
    Ok(LockPlan {
        target,
        lock_target,
        settings: Settings {
            lock_name: args.lock_name.clone(),
            table,
            application_name: names::application_name(&args.namespace, &args.deployment, &args.pod),
        },
        key,
        command: args.command.clone(),
        image: args.image.clone(),
        namespace: args.namespace.clone(),
        deployment: args.deployment.clone(),
        pod: args.pod.clone(),
        timeout: args.timeout,
        connect_timeout: args.connect_timeout,
        lock_delay: args.lock_delay,
        takeover_timeout: args.takeover_timeout,
        failure_backoff: args.failure_backoff,
        summary: Summary::default(),
        redactor,
    })
}

pub async fn run(args: LockOptions) -> ExitCode {
    run_with_env(args, |var| std::env::var(var).ok()).await
}

/// [`run`] with the environment read through `lookup` (tests).
pub async fn run_with_env(args: LockOptions, lookup: impl Fn(&str) -> Option<String>) -> ExitCode {
    let path = termination::path(args.termination_log.clone());
    let plan = match plan(&args, lookup) {
        Ok(plan) => plan,
        Err(problem) => {
            error!(event = "usage", "kube-once lock: {problem}");
            // Usage errors never quote a URL's text (see `url::UrlError`).
            termination::write(&path, &format!("usage error (exit {}): {problem}", exit::USAGE));
            return ExitCode::from(exit::USAGE);
        }
    };
    let code = run_plan(&plan).await;
    let summary = plan.summary.get().unwrap_or_else(|| format!("exit {code}; see the container's log"));
    termination::write(&path, &plan.redactor.redact(&summary));
    ExitCode::from(code)
}

/// Runs a checked plan; the exit code (the summary is left in `plan.summary`).
async fn run_plan(plan: &LockPlan) -> u8 {
    if let Target::Postgres(server) | Target::MySql(server) = &plan.target
        && (!server.ignored.is_empty() || server.ignored_unnamed > 0)
    {
        info!(
            event = "url",
            ignored = ?server.ignored,
            not_named = server.ignored_unnamed,
            "database URL parameters not used by the lock (driver options); those after `password` are counted, not named, in case an unescaped `&` split the password"
        );
    }
    for target in std::iter::once(&plan.target).chain(&plan.lock_target) {
        if let Err(problem) = tls::check_root_cert(target) {
            error!(event = "config", "kube-once lock: {problem} (exit {})", exit::USAGE);
            plan.summary.set(format!("configuration error (exit {}): {problem}", exit::USAGE));
            return exit::USAGE;
        }
    }
    let settings = &plan.settings;
    let lock_server = |target: &Option<Target>| match target {
        Some(Target::Postgres(server) | Target::MySql(server)) => Some(server.clone()),
        _ => None,
    };
    match &plan.target {
        Target::Postgres(server) => {
            let lock = lock_server(&plan.lock_target);
            protocol(plan, || postgres::PostgresLock::connect(server, lock.as_ref(), settings)).await
        }
        Target::MySql(server) => {
            let lock = lock_server(&plan.lock_target);
            protocol(plan, || mysql::MySqlLock::connect(server, lock.as_ref(), settings)).await
        }
        Target::Sqlite(path) => protocol(plan, || sqlite::SqliteLock::connect(path)).await,
    }
}

/// A setting that cannot work, whatever the server does next: a CA file
/// that cannot be read, a server certificate that fails verification, a
/// server without TLS when the URL requires it (`tls::misconfigured`), or
/// an SQLite file that cannot be opened (`sqlite::misconfigured`).
/// Retrying does not help, so `lock` stops at once (exit 64) and says what
/// to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Misconfigured(pub(crate) String);

/// Why connecting gave up.
enum NotConnected {
    /// Still failing at the deadline: attempts made, the last error.
    Unreachable(u32, anyhow::Error),
    /// A failure no retry can cure: the URL's settings against the server.
    Misconfigured(Misconfigured, anyhow::Error),
}

/// Connects, retrying with capped exponential backoff until `deadline` has
/// passed; a configuration error ends it at once.
async fn connect<B, F, Fut>(deadline: Duration, attempt: &mut F, target: &Target) -> Result<B, NotConnected>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<B>>,
{
    let started = Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    let mut number = 0u32;
    loop {
        number += 1;
        match attempt().await {
            Ok(backend) => return Ok(backend),
            Err(problem) => {
                if let Some(misconfigured) =
                    tls::misconfigured(target, &problem).or_else(|| sqlite::misconfigured(target, &problem))
                {
                    return Err(NotConnected::Misconfigured(misconfigured, problem));
                }
                let left = deadline.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(NotConnected::Unreachable(number, problem));
                }
                let pause = backoff.next_pause().min(left);
                let message = if refused_credentials(&problem) {
                    // Retried all the same: the user may still be being created
                    // (a database operator provisioning it beside the app).
                    "the database refused the user name or password; retrying"
                } else {
                    "database not reachable yet; retrying"
                };
                warn!(
                    event = "connecting",
                    attempt = number,
                    retry_in_ms = pause.as_millis() as u64,
                    error = format!("{problem:#}"),
                    "{message}"
                );
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Connects, waits for the lock (connecting again when the connection breaks
/// while waiting), leads.
async fn protocol<L, F, Fut>(plan: &LockPlan, mut attempt: F) -> u8
where
    L: Lock,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<L>>,
{
    // The first connection is the lock's, so its URL names the parameters to fix.
    let target = plan.lock_target.as_ref().unwrap_or(&plan.target);
    // After a lost lock: the `running` row to delete, and until when.
    let mut confirming: Option<(i64, Duration)> = None;
    // One loop and one place that connects, for the first connection and for
    // the confirmation after a lost lock: each place that awaits a dialect's
    // connection is compiled into the size-gated pod binary anew.
    loop {
        let deadline = confirming.map_or(plan.connect_timeout, |(_, within)| within);
        let connected = connect(deadline, &mut attempt, target).await;
        if let Some((token, within)) = confirming {
            let confirmed = match connected {
                Ok(mut backend) => {
                    matches!(tokio::time::timeout(within, backend.clear_running(token)).await, Ok(Ok(())))
                }
                Err(_) => false,
            };
            log_confirmed(plan, confirmed);
            return exit::LOCK_LOST;
        }
        let mut backend = match connected {
            Ok(backend) => backend,
            Err(NotConnected::Misconfigured(misconfigured, problem)) => {
                return misconfigured_exit(&misconfigured, &problem, &plan.summary);
            }
            Err(NotConnected::Unreachable(attempts, problem)) => {
                let within = format!("after {}", humantime::format_duration(plan.connect_timeout));
                return unreachable(attempts, &problem, &within, target, &plan.summary);
            }
        };
        let mut wait = Wait { since: Instant::now(), last_holder_log: None };
        // Between reconnections too: an error that is not a broken connection
        // (say a missing privilege) must not make a tight connect-fail loop.
        let mut pause = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        loop {
            match follow(&mut backend, plan, &mut wait).await {
                Ok(Followed::Skipped) => return 0,
                Ok(Followed::TimedOut) => return exit::TIMEOUT,
                Ok(Followed::BackingOff) => return exit::BACKING_OFF,
                Ok(Followed::Acquired) => break,
                Err(problem) => {
                    let left = plan.timeout.saturating_sub(wait.since.elapsed());
                    let pause = pause.next_pause().min(left);
                    warn!(
                        event = "reconnecting",
                        lock = plan.settings.lock_name,
                        error = format!("{problem:#}"),
                        retry_in_ms = pause.as_millis() as u64,
                        left_s = left.as_secs(),
                        "the database connection broke while waiting for the lock; connecting again"
                    );
                    tokio::time::sleep(pause).await;
                    match connect(left.saturating_sub(pause), &mut attempt, target).await {
                        Ok(fresh) => backend = fresh,
                        Err(NotConnected::Misconfigured(misconfigured, problem)) => {
                            return misconfigured_exit(&misconfigured, &problem, &plan.summary);
                        }
                        Err(NotConnected::Unreachable(attempts, problem)) => {
                            let within =
                                format!("until the lock timeout ({})", humantime::format_duration(plan.timeout));
                            return unreachable(attempts, &problem, &within, target, &plan.summary);
                        }
                    }
                }
            }
        }
        let lock = plan.settings.lock_name.as_str();
        match lead(&mut backend, plan).await {
            Ok(Lead::Done(code)) => {
                release(&mut backend, lock).await;
                return code;
            }
            Ok(Lead::Lost(stopped)) => {
                // The lock's session is lost; the lock goes with it. Tell the
                // next leader, which may hold the lock and wait for it
                // ([`takeover`]), that our command's process group is gone: our
                // `running` row is deleted through a fresh session. Tried for one
                // lock-delay: a resumed pod reaches its database at once, and a
                // pod cut off from it must not linger in `Init` (the next leader
                // then waits its takeover timeout).
                drop(backend);
                let Some(token) = stopped else { return exit::LOCK_LOST };
                confirming = Some((token, plan.lock_delay.min(plan.connect_timeout)));
            }
            Err(problem) => {
                release(&mut backend, lock).await;
                error!(event = "failed", error = format!("{problem:#}"), "database error; exit {}", exit::UNREACHABLE);
                plan.summary.set(format!("database error (exit {}): {problem:#}", exit::UNREACHABLE));
                return exit::UNREACHABLE;
            }
        }
    }
}

/// Not generic, so its logging is compiled once, not per dialect.
fn log_confirmed(plan: &LockPlan, confirmed: bool) {
    let lock = plan.settings.lock_name.as_str();
    if confirmed {
        info!(
            event = "running-row",
            lock, "told the next leader that our command is gone (our `running` row is deleted)"
        );
    } else {
        warn!(
            event = "running-row",
            lock,
            "could not tell the next leader that our command is gone (database unreachable); it starts after its takeover timeout"
        );
    }
}

/// What an init container finds on the pod's own loopback: only what a
/// native sidecar serves (an app container's proxy starts after it).
const NO_SIDECAR_YET: &str = "nothing listens there in the pod yet: kube-once-run runs before the app \
     containers, so a database proxy among them (cloud-sql-proxy, PgBouncer) has not started; run it as a \
     native sidecar (an initContainer with restartPolicy: Always, Kubernetes 1.29+), which starts first";

/// Logs that the database stayed unreachable `within` a deadline; the exit code for it.
fn unreachable(attempts: u32, problem: &anyhow::Error, within: &str, target: &Target, summary: &Summary) -> u8 {
    let refused_locally = refused_on_loopback(problem, target);
    let hint = if refused_locally { format!("; {NO_SIDECAR_YET}") } else { String::new() };
    summary.set(format!(
        "database unreachable {within} (exit {}), {attempts} attempts: {problem:#}{hint}",
        exit::UNREACHABLE
    ));
    let check = if refused_credentials(problem) {
        "The server refused the user name or password: check them in the URL (and the Secret it comes from)".into()
    } else if refused_locally {
        format!("The database URL names the pod's own loopback, and {NO_SIDECAR_YET}")
    } else {
        "Check the URL, the network policy and that the server is up".into()
    };
    error!(
        event = "unreachable",
        attempts,
        error = format!("{problem:#}"),
        "database still unreachable {within}; giving up (exit {}). {check}",
        exit::UNREACHABLE
    );
    exit::UNREACHABLE
}

/// Whether the connection was refused (nothing listening) on a loopback
/// address of the pod: `localhost`, `127.0.0.0/8`, `::1`.
fn refused_on_loopback(problem: &anyhow::Error, target: &Target) -> bool {
    let (Target::Postgres(server) | Target::MySql(server)) = target else { return false };
    let url::Host::Tcp(host) = &server.host else { return false };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback
        && problem.chain().any(|cause| {
            cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        })
}

/// Whether a connection failed because the server refused the credentials.
fn refused_credentials(problem: &anyhow::Error) -> bool {
    problem.chain().any(|cause| postgres::refused_credentials(cause) || mysql::refused_credentials(cause))
}

/// Logs a configuration error found while connecting; the exit code to return.
fn misconfigured_exit(misconfigured: &Misconfigured, problem: &anyhow::Error, summary: &Summary) -> u8 {
    summary.set(format!("configuration error (exit {}): {misconfigured}", exit::USAGE));
    error!(
        event = "config",
        error = format!("{problem:#}"),
        "kube-once lock: {misconfigured}; not retried, since waiting cannot fix it (exit {})",
        exit::USAGE
    );
    exit::USAGE
}

/// A follower's wait, kept across reconnections.
struct Wait {
    since: Instant,
    last_holder_log: Option<Instant>,
}

enum Followed {
    Skipped,
    TimedOut,
    BackingOff,
    Acquired,
}

/// Whether the done-record for the plan's key exists; never with `record=none`.
async fn is_done<L: Lock>(backend: &mut L, plan: &LockPlan) -> Result<bool> {
    match &plan.settings.table {
        Some(table) => backend.records().is_done(table, &plan.key).await,
        None => Ok(false),
    }
}

/// The fast path and the wait for the lock; an error means the connection broke.
/// Every statement is bounded by what is left of the timeout (plus
/// [`ANSWER_GRACE`]): a database that stalls (a table lock held by another
/// session, an overloaded server) ends the wait like a held lock does.
async fn follow<L: Lock>(backend: &mut L, plan: &LockPlan, wait: &mut Wait) -> Result<Followed> {
    let lock = plan.settings.lock_name.as_str();
    let key = plan.key.as_str();
    // `None`: a timeout beyond what the clock can count, no bound.
    let deadline = wait.since.checked_add(plan.timeout.saturating_add(ANSWER_GRACE));
    let reading = || match &plan.settings.table {
        Some(table) => format!("reading the done-record table `{table}`"),
        None => String::new(),
    };
    let Some(done) = within(deadline, is_done(backend, plan)).await? else {
        return Ok(stalled(plan, &reading()));
    };
    if done {
        info!(event = "skipped", lock, key, "already done for this key; nothing to run");
        skipped_summary(backend, plan).await;
        return Ok(Followed::Skipped);
    }
    if backing_off(backend, plan).await {
        return Ok(Followed::BackingOff);
    }
    loop {
        let Some(acquired) = within(deadline, backend.try_lock()).await? else {
            return Ok(stalled(plan, "taking the lock"));
        };
        if acquired {
            break;
        }
        let Some(done) = within(deadline, is_done(backend, plan)).await? else {
            return Ok(stalled(plan, &reading()));
        };
        if done {
            skipped_summary(backend, plan).await;
            info!(
                event = "skipped",
                lock,
                key,
                waited_ms = wait.since.elapsed().as_millis() as u64,
                "another pod finished the command while we waited; nothing to run"
            );
            return Ok(Followed::Skipped);
        }
        // The leader failed while we waited: no point waiting for our turn to fail again.
        if backing_off(backend, plan).await {
            return Ok(Followed::BackingOff);
        }
        let waited = wait.since.elapsed();
        if waited >= plan.timeout {
            let holder = describe_holder(backend).await;
            error!(
                event = "timeout",
                lock,
                holder,
                "gave up waiting for lock `{lock}` after {} (exit {}); it is held by {holder}",
                humantime::format_duration(plan.timeout),
                exit::TIMEOUT
            );
            plan.summary.set(format!(
                "gave up waiting for the lock `{lock}` after {} (exit {}); held by {holder}",
                humantime::format_duration(plan.timeout),
                exit::TIMEOUT
            ));
            return Ok(Followed::TimedOut);
        }
        if wait.last_holder_log.is_none_or(|at| at.elapsed() >= HOLDER_LOG_EVERY) {
            let holder = describe_holder(backend).await;
            info!(
                event = "waiting",
                lock,
                holder,
                waited_s = waited.as_secs(),
                "waiting for lock `{lock}`, held by {holder}"
            );
            wait.last_holder_log = Some(Instant::now());
        }
        tokio::time::sleep(jitter(backend.poll_pause(), 0.2).min(plan.timeout.saturating_sub(waited))).await;
    }
    info!(event = "acquired", lock, key, waited_ms = wait.since.elapsed().as_millis() as u64, "lock acquired");
    Ok(Followed::Acquired)
}

/// `step`'s answer, or `None` when the database has not given it by `deadline`.
async fn within<T>(deadline: Option<Instant>, step: impl Future<Output = Result<T>>) -> Result<Option<T>> {
    let Some(deadline) = deadline else { return step.await.map(Some) };
    match tokio::time::timeout_at(deadline.into(), step).await {
        Ok(answer) => answer.map(Some),
        Err(_) => Ok(None),
    }
}

/// Logs a wait that ended because the database did not answer `doing` in time.
fn stalled(plan: &LockPlan, doing: &str) -> Followed {
    let lock = plan.settings.lock_name.as_str();
    error!(
        event = "timeout",
        lock,
        waited_on = doing,
        "gave up waiting for lock `{lock}` after {} (exit {}): the database did not answer {doing}. \
         Another session may hold a lock on that table (PostgreSQL: pg_locks where not granted; MySQL: SHOW PROCESSLIST), \
         or the server is overloaded; the next pod tries again",
        humantime::format_duration(plan.timeout),
        exit::TIMEOUT
    );
    plan.summary.set(format!(
        "gave up waiting for the lock `{lock}` after {} (exit {}): the database did not answer {doing}",
        humantime::format_duration(plan.timeout),
        exit::TIMEOUT
    ));
    Followed::TimedOut
}

enum Lead {
    Done(u8),
    /// The lock was lost; `Some(token)` when our command had started under
    /// that `running` row and its whole process group is gone now.
    Lost(Option<i64>),
}

/// Holding the lock: waits for a previous leader that did not end cleanly,
/// checks the done-record once more, then runs the command.
async fn lead<L: Lock>(backend: &mut L, plan: &LockPlan) -> Result<Lead> {
    let timings = Timings::new(plan.lock_delay);
    if !plan.lock_delay.is_zero() && !wait_for_previous(backend, plan, timings).await? {
        return Ok(Lead::Lost(None));
    }
    if let Some(table) = &plan.settings.table {
        backend.records().create_done_table(table).await?;
        if backend.records().is_done(table, &plan.key).await? {
            info!(
                event = "skipped",
                lock = plan.settings.lock_name,
                key = plan.key,
                "done by another pod just before we got the lock; nothing to run"
            );
            skipped_summary(backend, plan).await;
            return Ok(Lead::Done(0));
        }
        // Under the lock, so two replicas never both take the same backoff step.
        if attempts_table(backend, plan).await && backing_off(backend, plan).await {
            return Ok(Lead::Done(exit::BACKING_OFF));
        }
    }
    // A fresh token tells our `running` row from one a later leader writes
    // over it: our heartbeat then fails as taken over.
    let running = if plan.lock_delay.is_zero() {
        None
    } else {
        let token = fastrand::i64(..);
        backend.mark_running(&plan.settings.application_name, token).await?;
        Some(token)
    };
    run_command(backend, plan, timings, running).await
}

/// When a previous leader's `running` row is left, waits as [`takeover`]
/// says: until its last heartbeat is `lock-delay` old, or, for a leader that
/// went silent, until it confirms its command is gone (its row deleted) or
/// the takeover timeout passed. All by the server's clock; holding the lock
/// and keeping our own session busy and checked meanwhile. `false` when that
/// session was lost (nothing ran).
async fn wait_for_previous<L: Lock>(backend: &mut L, plan: &LockPlan, timings: Timings) -> Result<bool> {
    backend.ensure_running_table().await?;
    let Some(previous) = backend.running_row().await? else { return Ok(true) };
    let Some(wait) = waiting_for(plan, &previous) else { return Ok(true) };
    let mut age = previous.heartbeat_age;
    while let Some(left) = wait.until().checked_sub(age).filter(|left| !left.is_zero()) {
        tokio::time::sleep(left.min(timings.heartbeat_every)).await;
        match tokio::time::timeout(timings.heartbeat_timeout, backend.running_row()).await {
            Ok(Ok(Some(row))) if row.token == previous.token => age = row.heartbeat_age,
            Ok(Ok(_)) => {
                log_previous(plan, &previous, wait, Waited::Confirmed);
                return Ok(true);
            }
            Ok(Err(problem)) => {
                log_previous(plan, &previous, wait, Waited::Lost(problem));
                return Ok(false);
            }
            Err(_) => {
                let problem = anyhow::anyhow!(
                    "the lock connection did not answer within {}",
                    humantime::format_duration(timings.heartbeat_timeout)
                );
                log_previous(plan, &previous, wait, Waited::Lost(problem));
                return Ok(false);
            }
        }
    }
    log_previous(plan, &previous, wait, Waited::Out(age));
    Ok(true)
}

/// How to wait for `previous` ([`takeover`]), logged; `None`: no need to.
fn waiting_for(plan: &LockPlan, previous: &dialect::Previous) -> Option<takeover::Wait> {
    let name = &plan.settings.application_name;
    // A name cut to 63 bytes might be another pod's too.
    let same_pod = !plan.pod.is_empty() && name.len() < 63 && previous.holder == *name;
    let wait = takeover::wait_for(previous, same_pod, plan.lock_delay, plan.takeover_timeout);
    if previous.heartbeat_age >= wait.until() && matches!(wait, takeover::Wait::LockDelay(_)) {
        return None;
    }
    log_previous(plan, previous, wait, Waited::Started);
    Some(wait)
}

/// Where the wait for a previous leader is.
enum Waited {
    Started,
    Confirmed,
    /// Until its heartbeat was this old, without its confirmation.
    Out(Duration),
    Lost(anyhow::Error),
}

/// Logs the wait for a previous leader (and notes a takeover without its
/// confirmation in the summary). Not generic, so compiled once.
fn log_previous(plan: &LockPlan, previous: &dialect::Previous, wait: takeover::Wait, waited: Waited) {
    let lock = plan.settings.lock_name.as_str();
    let holder = previous.holder.as_str();
    let until = humantime::format_duration(wait.until());
    let event = match wait {
        takeover::Wait::LockDelay(_) => "lock-delay",
        takeover::Wait::Confirmation(_) => "takeover",
    };
    match (waited, wait) {
        (Waited::Started, takeover::Wait::LockDelay(until)) => info!(
            event,
            lock,
            previous = holder,
            wait_ms = until.saturating_sub(previous.heartbeat_age).as_millis() as u64,
            "the previous leader ({holder}) lost the lock while its command ran; waiting until its last heartbeat is {} old before starting",
            humantime::format_duration(until)
        ),
        (Waited::Started, takeover::Wait::Confirmation(_)) => warn!(
            event,
            lock,
            previous = holder,
            heartbeat_age_s = previous.heartbeat_age.as_secs(),
            "the previous leader ({holder}) went silent {} ago with its command unfinished (frozen, vanished or cut off from the database); \
             holding the lock and waiting for it to confirm that its command is gone, at most until its last heartbeat is {until} old (--takeover-timeout)",
            seconds(previous.heartbeat_age)
        ),
        (Waited::Confirmed, _) => {
            info!(event, lock, previous = holder, "the previous leader ({holder}) confirmed that its command is gone");
        }
        (Waited::Out(_), takeover::Wait::LockDelay(_)) => {}
        (Waited::Out(age), takeover::Wait::Confirmation(_)) => {
            error!(
                event,
                lock,
                previous = holder,
                heartbeat_age_s = age.as_secs(),
                "the previous leader ({holder}) did not confirm within {until} of its last heartbeat that its command is gone; starting without it. \
                 If that pod is only frozen, its command may still write when it resumes: check it"
            );
            plan.summary.note(format!(
                "took over from {holder}, silent for {}, without its confirmation that its command is gone",
                seconds(age)
            ));
        }
        (Waited::Lost(problem), _) => {
            error!(
                event = "lost",
                lock,
                error = format!("{problem:#}"),
                "lost the lock's database connection while waiting for the previous leader; nothing ran (exit {})",
                exit::LOCK_LOST
            );
            plan.summary.set(format!(
                "lost the lock's database connection while waiting for the previous leader ({holder}); nothing ran (exit {})",
                exit::LOCK_LOST
            ));
        }
    }
}

/// A duration to the second, for messages.
fn seconds(duration: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(duration.as_secs()))
}

/// Runs the command under the heartbeat and says how it ended.
async fn run_command<L: Lock>(
    backend: &mut L,
    plan: &LockPlan,
    timings: Timings,
    running: Option<i64>,
) -> Result<Lead> {
    let command = shell_words::join(&plan.command);
    let started = Instant::now();
    let tail = child::OutputTail::default();
    match supervise(backend, &plan.command, timings, running, &tail).await {
        Supervised::Exited(code) => {
            let duration_ms = started.elapsed().as_millis() as i64;
            finish(backend, plan, running, command, code, duration_ms, &tail.text()).await
        }
        Supervised::CannotStart(code, problem) => {
            error!(event = "failed", command, error = %problem, "cannot start the command; exit {code}");
            let output = format!("cannot start the command: {problem}");
            record_attempt(backend, plan, &command, i32::from(code), 0, &output).await;
            plan.summary.set(format!("failed: cannot start {command:?} (exit {code}): {problem}"));
            clear_running(backend, plan, running).await;
            Ok(Lead::Done(code))
        }
        Supervised::Lost(problem, gone) => {
            error!(
                event = "lost",
                lock = plan.settings.lock_name,
                command,
                error = format!("{problem:#}"),
                "lost the lock's database connection while the command ran; stopped the command and its process group (exit {})",
                exit::LOCK_LOST
            );
            plan.summary.set(format!(
                "lost the lock's database connection while {command:?} ran; stopped it (exit {}), the next pod runs it again: {problem:#}",
                exit::LOCK_LOST
            ));
            Ok(Lead::Lost(running.filter(|_| gone)))
        }
    }
}

/// The command exited with `code`: the done-record when it succeeded, and
/// our `running` row goes either way.
async fn finish<L: Lock>(
    backend: &mut L,
    plan: &LockPlan,
    running: Option<i64>,
    command: String,
    code: i32,
    duration_ms: i64,
    output: &str,
) -> Result<Lead> {
    let lock = plan.settings.lock_name.as_str();
    let key = plan.key.as_str();
    record_attempt(backend, plan, &command, code, duration_ms, output).await;
    if code != 0 {
        warn!(
            event = "failed",
            lock,
            key,
            command,
            exit_code = code,
            duration_ms,
            "the command failed; no done-record, the next pod will retry"
        );
        let lines = plan.redactor.redact(&termination::last_lines(output, 20));
        plan.summary.set(format!(
            "failed: exit {code} after {}{}{}",
            termination::seconds(duration_ms),
            if plan.settings.table.is_some() { "" } else { " (record: none)" },
            if lines.is_empty() { String::new() } else { format!("; last lines: {lines}") }
        ));
        clear_running(backend, plan, running).await;
        return Ok(Lead::Done(u8::try_from(code).unwrap_or(1)));
    }
    if let Some(table) = &plan.settings.table {
        let record = DoneRecord {
            key: key.to_string(),
            command: command.clone(),
            image: plan.image.clone(),
            pod: plan.pod.clone(),
            duration_ms,
            exit_code: 0,
        };
        backend.records().write_done(table, &record).await?;
    }
    clear_running(backend, plan, running).await;
    info!(
        event = "ran",
        lock,
        key,
        command,
        duration_ms,
        recorded = plan.settings.table.is_some(),
        "the command succeeded"
    );
    plan.summary.set(format!(
        "ran {command:?} in {} (key {})",
        termination::seconds(duration_ms),
        termination::short_key(key)
    ));
    Ok(Lead::Done(0))
}

/// Creates the attempts table if missing; `false` (logged) when that is not
/// possible, say without the CREATE privilege: then no attempt is recorded
/// and no backoff holds, as before the table existed.
async fn attempts_table<L: Lock>(backend: &mut L, plan: &LockPlan) -> bool {
    match backend.records().create_attempts_table().await {
        Ok(()) => true,
        Err(problem) => {
            warn!(
                event = "attempts",
                lock = plan.settings.lock_name,
                error = format!("{problem:#}"),
                "cannot create the attempts table; failures are not recorded and replicas do not back off"
            );
            false
        }
    }
}

/// Leaves a row in the attempts table for a run of the command (not with
/// `record: none`). A failure to write it is logged: the outcome stands.
async fn record_attempt<L: Lock>(
    backend: &mut L,
    plan: &LockPlan,
    command: &str,
    exit_code: i32,
    duration_ms: i64,
    output: &str,
) {
    let attempt = Attempt {
        key: plan.key.clone(),
        command: plan.redactor.redact(command),
        image: plan.image.clone(),
        namespace: plan.namespace.clone(),
        deployment: plan.deployment.clone(),
        pod: plan.pod.clone(),
        duration_ms,
        exit_code,
        outcome: if exit_code == 0 { Outcome::Ran } else { Outcome::Failed },
        output: termination::bounded(&plan.redactor.redact(output), child::TAIL_BYTES),
    };
    let Some(table) = &plan.settings.table else { return };
    if let Err(problem) = backend.records().write_attempt(table, &attempt).await {
        warn!(
            event = "attempts",
            lock = plan.settings.lock_name,
            error = format!("{problem:#}"),
            "cannot record the attempt; replicas do not back off from it"
        );
    }
}

/// Whether the plan's key is backing off after failed attempts; if so, logs
/// it and sets the summary. Never with `record: none`; a table that cannot
/// be read counts as no backoff (logged), as before the table existed.
async fn backing_off<L: Lock>(backend: &mut L, plan: &LockPlan) -> bool {
    let Some(table) = &plan.settings.table else { return false };
    let filter = Filter { key: Some(plan.key.clone()), image: None };
    let recent = match backend.records().list_attempts(table, &filter, attempts::RECENT).await {
        Ok(recent) => recent.unwrap_or_default(),
        Err(problem) => {
            warn!(event = "attempts", error = format!("{problem:#}"), "cannot read the attempts table; no backoff");
            return false;
        }
    };
    let Some(off) = attempts::backing_off(&recent, plan.failure_backoff) else { return false };
    let last = &off.last.attempt;
    let lines = termination::last_lines(&last.output, 10);
    let left = humantime::format_duration(Duration::from_secs(off.left.as_secs().max(1)));
    error!(
        event = "backing-off",
        lock = plan.settings.lock_name,
        key = plan.key,
        failures = off.failures,
        exit_code = last.exit_code,
        pod = last.pod,
        "the last attempt for this key failed (exit {}, pod {}); not running it again for {left} (exit {})",
        last.exit_code,
        last.pod,
        exit::BACKING_OFF
    );
    plan.summary.set(format!(
        "backing off: the last attempt failed (exit {} after {}, pod {}, {}; {} in a row); next try in {left} (exit {}){}",
        last.exit_code,
        termination::seconds(last.duration_ms),
        if last.pod.is_empty() { "unknown" } else { &last.pod },
        history::rfc3339_seconds(off.last.finished_ms),
        off.failures,
        exit::BACKING_OFF,
        if lines.is_empty() { String::new() } else { format!("; last lines: {lines}") }
    ));
    true
}

/// Sets the summary of a skip from the done-record (who ran it, when).
async fn skipped_summary<L: Lock>(backend: &mut L, plan: &LockPlan) {
    let key = termination::short_key(&plan.key);
    let done = match &plan.settings.table {
        Some(table) => {
            let filter = Filter { key: Some(plan.key.clone()), image: None };
            backend.records().list_done(table, &filter).await.ok().flatten().and_then(|mut done| done.pop())
        }
        None => None,
    };
    plan.summary.set(match done {
        Some(done) if !done.record.pod.is_empty() => format!(
            "skipped: done by pod {} at {} (key {key})",
            done.record.pod,
            history::rfc3339_seconds(done.finished_ms)
        ),
        Some(done) => format!("skipped: done at {} (key {key})", history::rfc3339_seconds(done.finished_ms)),
        None => format!("skipped: already done (key {key})"),
    });
}

/// The command has ended: our `running` row goes. A failure only costs the
/// next leader one lock-delay, so it is logged, not fatal.
async fn clear_running<L: Lock>(backend: &mut L, plan: &LockPlan, running: Option<i64>) {
    let Some(token) = running else { return };
    if let Err(problem) = backend.clear_running(token).await {
        warn!(
            event = "running-row",
            lock = plan.settings.lock_name,
            error = format!("{problem:#}"),
            "cannot delete our `running` row; the next leader waits one lock-delay"
        );
    }
}

/// A heartbeat that fails when the database does not answer within the timeout.
async fn checked_heartbeat<L: Lock>(backend: &mut L, timings: Timings, running: Option<i64>) -> Result<()> {
    match tokio::time::timeout(timings.heartbeat_timeout, backend.heartbeat(running)).await {
        Ok(result) => result,
        Err(_) => anyhow::bail!(
            "the lock connection did not answer the heartbeat within {}",
            humantime::format_duration(timings.heartbeat_timeout)
        ),
    }
}

async fn release<L: Lock>(backend: &mut L, lock: &str) {
    match backend.unlock().await {
        Ok(true) => {}
        Ok(false) => warn!(event = "unlock", lock, "the lock was not held any more when releasing it"),
        Err(problem) => warn!(
            event = "unlock",
            lock,
            error = format!("{problem:#}"),
            "cannot release the lock; it goes with the connection"
        ),
    }
}

async fn describe_holder<L: Lock>(backend: &mut L) -> String {
    match tokio::time::timeout(ANSWER_GRACE, backend.holder()).await {
        Ok(Ok(Some(holder))) => holder,
        Ok(Ok(None)) => "nobody (just released)".to_string(),
        Ok(Err(problem)) => format!("unknown ({problem:#})"),
        Err(_) => format!("unknown (no answer within {})", humantime::format_duration(ANSWER_GRACE)),
    }
}

enum Supervised {
    Exited(i32),
    CannotStart(u8, std::io::Error),
    /// The lock was lost; `true` once the command's whole group is gone.
    Lost(anyhow::Error, bool),
}

/// Runs the command, forwarding SIGTERM/SIGINT to its process group, while
/// the heartbeat checks the lock and the lease's watchdog checks the
/// heartbeat (a frozen wrapper).
async fn supervise<L: Lock>(
    backend: &mut L,
    command: &[String],
    timings: Timings,
    running: Option<i64>,
    tail: &child::OutputTail,
) -> Supervised {
    let signals = signal(SignalKind::terminate()).and_then(|term| Ok((term, signal(SignalKind::interrupt())?)));
    let (mut term, mut int) = match signals {
        Ok(signals) => signals,
        Err(problem) => return Supervised::CannotStart(exit::UNREACHABLE, problem),
    };
    // The lease starts at a heartbeat that got through just now, so a
    // wrapper frozen since it wrote its `running` row never starts the command.
    let sent = lease::Stamp::now();
    if let Err(problem) = checked_heartbeat(backend, timings, running).await {
        return Supervised::Lost(problem.context("before starting the command (it did not run)"), true);
    }
    let bound = if backend.lost_when_frozen() { timings.bound() } else { Duration::MAX };
    let lease = match lease::Lease::start(bound, sent) {
        Ok(lease) => lease,
        Err(problem) => return Supervised::CannotStart(exit::UNREACHABLE, problem),
    };
    let mut child = match child::spawn(command, tail) {
        Ok(child) => child,
        // 127 / 126: what a shell reports for "not found" / "not executable".
        Err(problem) if problem.kind() == std::io::ErrorKind::NotFound => return Supervised::CannotStart(127, problem),
        Err(problem) => return Supervised::CannotStart(126, problem),
    };
    lease.guard(child.kill_arg());
    info!(event = "started", pid = child.pid(), command = shell_words::join(command), "running the command");
    let mut heartbeat = tokio::time::interval(timings.heartbeat_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // First: after a freeze, every branch is ready at once.
            biased;
            () = lease.fired() => {
                let _ = child.wait().await;
                return Supervised::Lost(frozen(&lease, timings), child.group_gone(GROUP_GONE_WITHIN));
            }
            status = child.wait() => {
                lease.disarm();
                if lease.expired().is_some() {
                    return Supervised::Lost(frozen(&lease, timings), child.group_gone(GROUP_GONE_WITHIN));
                }
                return Supervised::Exited(status.unwrap_or(1));
            }
            _ = term.recv() => child.signal(Signal::SIGTERM),
            _ = int.recv() => child.signal(Signal::SIGINT),
            _ = heartbeat.tick() => {
                let sent = lease::Stamp::now();
                match checked_heartbeat(backend, timings, running).await {
                    Ok(()) => lease.renew(sent),
                    Err(problem) => {
                        // A failure noticed late (the wrapper was starved) gets
                        // only what is left of the lease as its grace.
                        let _ = child.terminate(timings.grace.min(lease.left())).await;
                        lease.disarm();
                        return Supervised::Lost(problem, child.group_gone(GROUP_GONE_WITHIN));
                    }
                }
            }
        }
    }
}

/// Why the watchdog killed the command.
fn frozen(lease: &lease::Lease, timings: Timings) -> anyhow::Error {
    let age = lease.expired().unwrap_or_default();
    anyhow::anyhow!(
        "no heartbeat got through for {} (the wrapper was frozen or starved: SIGSTOP, a node or VM pause), longer than the {} the lock-delay allows; \
         the command's process group was SIGKILLed at once, as another leader may be running",
        humantime::format_duration(Duration::from_millis(age.as_millis() as u64)),
        humantime::format_duration(timings.bound())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(command: &[&str]) -> LockOptions {
        LockOptions::new(command.iter().map(|word| word.to_string()).collect())
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |var| pairs.iter().find(|(name, _)| *name == var).map(|(_, value)| value.to_string())
    }

    /// Only a refused connection to the pod's own loopback points at a
    /// proxy that is an app container (not started before kube-once-run).
    #[test]
    fn a_refused_loopback_connection_is_told_apart() {
        let refused = || anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let target = |url: &str| url::parse(url).unwrap_or_else(|error| unreachable!("{url}: {error}"));
        for url in ["postgres://u@localhost/db", "postgres://u@127.0.0.2:6432/db", "mysql://u@[::1]/db"] {
            assert!(refused_on_loopback(&refused().context("cannot connect"), &target(url)), "{url}");
        }
        for url in ["postgres://u@10.0.0.1/db", "postgres://u@db.internal/db", "sqlite:////tmp/app.db"] {
            assert!(!refused_on_loopback(&refused(), &target(url)), "{url}");
        }
        let timed_out = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(!refused_on_loopback(&timed_out, &target("postgres://u@localhost/db")));
    }

    #[test]
    fn plan_reads_the_named_env_var() {
        let options = LockOptions { image: "app:1".into(), ..options(&["flask", "db", "upgrade"]) };
        let plan = plan(&options, env(&[("DATABASE_URL", "postgresql+psycopg2://u:p@db/app")]));
        let Ok(plan) = plan else { unreachable!("{plan:?}") };
        assert!(matches!(plan.target, Target::Postgres(_)));
        assert_eq!(
            plan.key,
            kube_once_core::annotations::default_key("app:1", &["flask".into(), "db".into(), "upgrade".into()])
        );
        assert_eq!(plan.settings.table.as_deref(), Some("kube_once_runs"));
        assert_eq!(plan.settings.application_name, "kube-once");
    }

    #[test]
    fn usage_errors() {
        let no_url = plan(&options(&["true"]), env(&[]));
        assert!(matches!(no_url, Err(UsageError::NoDatabaseUrl(ref var)) if var == "DATABASE_URL"));
        let bad = plan(&options(&["true"]), env(&[("DATABASE_URL", "redis://x")]));
        assert!(matches!(bad, Err(UsageError::BadUrl { .. })));
        let mixed = plan(
            &LockOptions { lock_url_env: Some("DIRECT".into()), ..options(&["true"]) },
            env(&[("DATABASE_URL", "postgresql://h/d"), ("DIRECT", "mysql://h/d")]),
        );
        assert!(matches!(mixed, Err(UsageError::MixedBackends { .. })));
        let table = plan(
            &LockOptions { record_table: "x;y".into(), ..options(&["true"]) },
            env(&[("DATABASE_URL", "sqlite:///a.db")]),
        );
        assert!(matches!(table, Err(UsageError::BadTable(_))));
        let none = plan(
            &LockOptions { record: Record::None, record_table: "x;y".into(), ..options(&["true"]) },
            env(&[("DATABASE_URL", "sqlite:///a.db")]),
        );
        assert!(matches!(none, Ok(LockPlan { settings: Settings { table: None, .. }, .. })));
    }

    #[test]
    fn keys_over_255_characters_are_refused_not_truncated() {
        let long = |length| LockOptions { key: Some("é".repeat(length)), ..options(&["true"]) };
        let url = env(&[("DATABASE_URL", "mysql://h/d")]);
        assert!(plan(&long(255), &url).is_ok());
        let refused = plan(&long(256), &url);
        assert!(matches!(refused, Err(UsageError::KeyTooLong(_))), "{refused:?}");
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("256 characters") && message.contains("at most 255"), "{message}");
    }

    #[test]
    fn a_lost_leader_stops_well_inside_the_lock_delay() {
        for seconds in [1, 2, 3, 15, 60, 600] {
            let delay = Duration::from_secs(seconds);
            let t = Timings::new(delay);
            assert!(t.heartbeat_every + t.heartbeat_timeout + t.grace <= delay.mul_f64(0.8), "{seconds}s: {t:?}");
            assert!(t.heartbeat_every <= Duration::from_secs(1));
        }
        assert_eq!(Timings::new(defaults::LOCK_DELAY).heartbeat_every, Duration::from_secs(1));
        assert_eq!(Timings::new(defaults::LOCK_DELAY).bound(), Duration::from_millis(8500));
    }

    #[test]
    fn explicit_key_wins() {
        let plan = plan(
            &LockOptions { key: Some("v42".into()), ..options(&["true"]) },
            env(&[("DATABASE_URL", "mysql://h/d")]),
        );
        assert!(matches!(plan, Ok(LockPlan { ref key, .. }) if key == "v42"));
    }
}
