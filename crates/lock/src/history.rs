//! `kube-once history` and `kube-once forget`: read and delete done-records
//! and the attempts recorded beside them (failures included).
//!
//! Plain values in ([`HistoryOptions`], [`Filter`]), records out
//! ([`StoredRecord`]). The record table is the one `lock` writes; each
//! dialect's file holds its SQL (`RecordStore`), and columns are selected by
//! name, so columns added later do not matter. Times are read as
//! milliseconds since the epoch by the database itself, so each dialect's own
//! time type (timestamptz, a session-zone DATETIME, ISO text) comes out as
//! the same instant.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

pub use crate::attempts::{Attempt, Outcome, StoredAttempt};
use crate::dialect::RecordStore;
pub use crate::record::{DoneRecord, Filter, RunningRow, StoredRecord};
use crate::url::{self, Target};
use crate::{UsageError, mysql, postgres, record, sqlite, tls};

/// Where the done-records are, as plain values; [`target`] reads the
/// environment it names.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// Name of the env var holding the database URL.
    pub database_url_env: String,
    pub record_table: String,
}

/// An instant in milliseconds since the epoch as RFC 3339 UTC, to the millisecond.
pub fn rfc3339_millis(epoch_ms: i64) -> String {
    humantime::format_rfc3339_millis(instant(epoch_ms)).to_string()
}

/// An instant in milliseconds since the epoch as RFC 3339 UTC, to the second.
pub fn rfc3339_seconds(epoch_ms: i64) -> String {
    humantime::format_rfc3339_seconds(instant(epoch_ms)).to_string()
}

fn instant(epoch_ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(epoch_ms).unwrap_or(0))
}

/// The database and the validated record table, from the options and the
/// environment (`lookup` reads an env var).
pub fn target(options: &HistoryOptions, lookup: impl Fn(&str) -> Option<String>) -> Result<Target, UsageError> {
    let var = &options.database_url_env;
    let text =
        lookup(var).filter(|value| !value.trim().is_empty()).ok_or_else(|| UsageError::NoDatabaseUrl(var.clone()))?;
    let target = url::parse(text.trim()).map_err(|source| UsageError::BadUrl { var: var.clone(), source })?;
    record::validate_table_name(&options.record_table)?;
    Ok(target)
}

/// An open connection to the database holding the records.
pub struct Connection(Box<dyn AnyStore>);

/// `application_name` / `program_name` of these connections.
const APPLICATION_NAME: &str = "kube-once history";

/// Connects once (no retries: a person is waiting).
pub async fn connect(target: &Target) -> Result<Connection> {
    Ok(Connection(match target {
        Target::Postgres(server) => Box::new(postgres::Session::open(server, APPLICATION_NAME).await?),
        Target::MySql(server) => Box::new(mysql::Session::open(server, APPLICATION_NAME).await?),
        Target::Sqlite(path) => Box::new(sqlite::Session::open_existing(path)?),
    }))
}

/// A failed [`connect`] that no retry can cure — the CA file the URL names,
/// or the server's TLS against the URL's settings — as the configuration
/// error to report, naming the parameter to fix; `None` for anything else.
pub fn configuration_error(target: &Target, problem: &anyhow::Error) -> Option<String> {
    tls::check_root_cert(target).err().or_else(|| tls::misconfigured(target, problem)).map(|error| error.to_string())
}

impl Connection {
    /// The matching records, newest first; `None` when the table does not exist.
    pub async fn list(&mut self, table: &str, filter: &Filter) -> Result<Option<Vec<StoredRecord>>> {
        record::validate_table_name(table)?;
        self.0.list_done(table, filter).await
    }

    /// Deletes the matching records; how many, or `None` when the table does
    /// not exist. An empty filter is refused: forgetting everything at once
    /// is a `DROP TABLE`, not a command-line accident.
    pub async fn delete(&mut self, table: &str, filter: &Filter) -> Result<Option<u64>> {
        record::validate_table_name(table)?;
        anyhow::ensure!(!filter.is_empty(), "refusing to delete every done-record: give --key or --image");
        self.0.delete_done(table, filter).await
    }

    /// The matching attempts of the done-record table `table`, newest first,
    /// at most `limit`; empty when the attempts table does not exist.
    pub async fn attempts(&mut self, table: &str, filter: &Filter, limit: u32) -> Result<Vec<StoredAttempt>> {
        record::validate_table_name(table)?;
        Ok(self.0.list_attempts(table, filter, limit).await?.unwrap_or_default())
    }

    /// Deletes the matching attempts (so a key backing off may run at the
    /// next pod start); how many. An empty filter is refused, as for [`Self::delete`].
    pub async fn delete_attempts(&mut self, table: &str, filter: &Filter) -> Result<u64> {
        record::validate_table_name(table)?;
        anyhow::ensure!(!filter.is_empty(), "refusing to delete every attempt: give --key or --image");
        Ok(self.0.delete_attempts(table, filter).await?.unwrap_or(0))
    }

    /// The commands running now under a lock (the leaders' `running` rows);
    /// empty when there are none or the dialect keeps none (SQLite).
    pub async fn running(&mut self) -> Result<Vec<RunningRow>> {
        Ok(self.0.list_running().await?.unwrap_or_default())
    }

    /// Closes the connection politely (MySQL says goodbye; the others just drop).
    pub async fn close(self) {
        self.0.close().await
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The part of [`RecordStore`] `history` uses, for a dialect chosen at run
/// time (`RecordStore`'s async methods cannot be called through a `dyn`).
trait AnyStore {
    fn list_done<'a>(&'a mut self, table: &'a str, filter: &'a Filter) -> Boxed<'a, Result<Option<Vec<StoredRecord>>>>;
    fn delete_done<'a>(&'a mut self, table: &'a str, filter: &'a Filter) -> Boxed<'a, Result<Option<u64>>>;
    fn list_attempts<'a>(
        &'a mut self,
        table: &'a str,
        filter: &'a Filter,
        limit: u32,
    ) -> Boxed<'a, Result<Option<Vec<StoredAttempt>>>>;
    fn delete_attempts<'a>(&'a mut self, table: &'a str, filter: &'a Filter) -> Boxed<'a, Result<Option<u64>>>;
    fn list_running(&mut self) -> Boxed<'_, Result<Option<Vec<RunningRow>>>>;
    fn close(self: Box<Self>) -> Boxed<'static, ()>;
}

impl<S: RecordStore + 'static> AnyStore for S {
    fn list_done<'a>(&'a mut self, table: &'a str, filter: &'a Filter) -> Boxed<'a, Result<Option<Vec<StoredRecord>>>> {
        Box::pin(RecordStore::list_done(self, table, filter))
    }

    fn delete_done<'a>(&'a mut self, table: &'a str, filter: &'a Filter) -> Boxed<'a, Result<Option<u64>>> {
        Box::pin(RecordStore::delete_done(self, table, filter))
    }

    fn list_attempts<'a>(
        &'a mut self,
        table: &'a str,
        filter: &'a Filter,
        limit: u32,
    ) -> Boxed<'a, Result<Option<Vec<StoredAttempt>>>> {
        Box::pin(RecordStore::list_attempts(self, table, filter, limit))
    }

    fn delete_attempts<'a>(&'a mut self, table: &'a str, filter: &'a Filter) -> Boxed<'a, Result<Option<u64>>> {
        Box::pin(RecordStore::delete_attempts(self, table, filter))
    }

    fn list_running(&mut self) -> Boxed<'_, Result<Option<Vec<RunningRow>>>> {
        Box::pin(RecordStore::list_running(self))
    }

    fn close(self: Box<Self>) -> Boxed<'static, ()> {
        Box::pin(RecordStore::close(*self))
    }
}

/// A key whose last attempt failed and that has no done-record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The newest attempt, a failure.
    pub last: StoredAttempt,
    /// Failures in a row up to it (within the attempts read).
    pub failures: u32,
}

/// The keys failing now, from `attempts` (newest first) and the keys that
/// have a done-record; newest first.
pub fn failures(attempts: &[StoredAttempt], done: &[StoredRecord]) -> Vec<Failure> {
    let mut seen: Vec<&str> = Vec::new();
    let mut failing = Vec::new();
    for attempt in attempts {
        let key = attempt.attempt.key.as_str();
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        if attempt.attempt.outcome != Outcome::Failed || done.iter().any(|run| run.record.key == key) {
            continue;
        }
        let failures = attempts
            .iter()
            .filter(|a| a.attempt.key == key)
            .take_while(|a| a.attempt.outcome == Outcome::Failed)
            .count() as u32;
        failing.push(Failure { last: attempt.clone(), failures });
    }
    failing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |var| pairs.iter().find(|(name, _)| *name == var).map(|(_, value)| value.to_string())
    }

    fn options(table: &str) -> HistoryOptions {
        HistoryOptions { database_url_env: "DATABASE_URL".into(), record_table: table.into() }
    }

    #[test]
    fn target_reads_the_named_env_var_and_checks_the_table() {
        let ok = target(&options("kube_once_runs"), env(&[("DATABASE_URL", "mysql://u@h/app")]));
        assert!(matches!(ok, Ok(Target::MySql(_))));
        assert!(matches!(target(&options("kube_once_runs"), env(&[])), Err(UsageError::NoDatabaseUrl(_))));
        let bad_table = target(&options("runs; drop"), env(&[("DATABASE_URL", "sqlite:///a.db")]));
        assert!(matches!(bad_table, Err(UsageError::BadTable(_))));
        let bad_url = target(&options("runs"), env(&[("DATABASE_URL", "redis://x")]));
        assert!(matches!(bad_url, Err(UsageError::BadUrl { .. })));
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(rfc3339_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_seconds(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_seconds(-5), "1970-01-01T00:00:00Z");
    }
}
