//! SQLite: an exclusive transaction on a companion file `<db>.kube-once-lock`.
//!
//! Not on the database itself: the migration writes to that file from
//! another connection, and an exclusive transaction held by the wrapper would
//! block it forever. The companion file carries the lock alone; the
//! done-records live in the app's database. rusqlite is blocking, so every
//! call runs on tokio's blocking pool.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rusqlite::{Connection, ErrorCode, OpenFlags, Row};

use crate::Misconfigured;
use crate::attempts::{Attempt, Outcome, StoredAttempt};
use crate::dialect::{Lock, Previous, RecordStore, unless_missing};
use crate::names::ATTEMPTS_TABLE;
use crate::record::{DoneRecord, Filter, RunningRow, StoredRecord};
use crate::url::Target;

/// One SQLite connection, used from tokio's blocking pool.
pub(crate) struct Session {
    connection: Arc<Mutex<Connection>>,
}

impl Session {
    fn new(connection: Connection) -> Session {
        Session { connection: Arc::new(Mutex::new(connection)) }
    }

    /// The app's SQLite file for `history`, which must exist: a wrong path is
    /// not an empty history.
    pub(crate) fn open_existing(path: &Path) -> Result<Session> {
        let connection =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .with_context(|| {
                    let hint = relative_path_hint(path).unwrap_or_default();
                    format!("cannot open the SQLite database {} (it must exist){hint}", path.display())
                })?;
        // A migration may hold the write lock for a while: wait for it.
        connection.busy_timeout(Duration::from_secs(30))?;
        Ok(Session::new(connection))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let connection = connection.lock().map_err(|_| anyhow!("the SQLite connection was poisoned by a crash"))?;
            work(&connection)
        })
        .await?
    }
}

pub(crate) struct SqliteLock {
    /// The companion lock file.
    lock: Session,
    /// The app's database.
    records: Session,
}

pub fn lock_file(database: &Path) -> PathBuf {
    let mut name = OsString::from(database.as_os_str());
    name.push(".kube-once-lock");
    PathBuf::from(name)
}

impl SqliteLock {
    pub(crate) async fn connect(database: &Path) -> Result<Self> {
        let database = database.to_path_buf();
        let lock_path = lock_file(&database);
        let (lock, records) = tokio::task::spawn_blocking(move || -> Result<_> {
            let lock = Connection::open(&lock_path)
                .with_context(|| format!("cannot open the SQLite lock file {}", lock_path.display()))?;
            // Never wait inside SQLite: the poll loop decides how long to wait.
            lock.busy_timeout(Duration::ZERO)?;
            let records = Connection::open(&database)
                .with_context(|| format!("cannot open the SQLite database {}", database.display()))?;
            // Reads and the record write may meet the migration's write lock: wait for it a while.
            records.busy_timeout(Duration::from_secs(30))?;
            Ok((lock, records))
        })
        .await??;
        Ok(SqliteLock { lock: Session::new(lock), records: Session::new(records) })
    }
}

/// A database file SQLite cannot open (its directory is missing or not
/// writable, the path is a directory) as the configuration error it is:
/// waiting does not create a directory, so `lock` stops at once. The
/// SQLAlchemy spelling `sqlite:///name` is a path relative to the working
/// directory, a common slip for `sqlite:////name`; the message says so.
pub(crate) fn misconfigured(target: &Target, problem: &anyhow::Error) -> Option<Misconfigured> {
    let Target::Sqlite(path) = target else { return None };
    let cannot_open = problem
        .chain()
        .filter_map(|cause| cause.downcast_ref::<rusqlite::Error>())
        .any(|error| error.sqlite_error_code() == Some(ErrorCode::CannotOpen));
    if !cannot_open {
        return None;
    }
    let directory = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut message = if directory.is_dir() {
        format!(
            "SQLite cannot open {}: the directory {} is not writable by this container's user, or the path is not a file (kube-once also writes {} there)",
            path.display(),
            directory.display(),
            lock_file(path).display(),
        )
    } else {
        format!("SQLite cannot open {}: the directory {} does not exist", path.display(), directory.display())
    };
    message.push_str(&relative_path_hint(path).unwrap_or_default());
    Some(Misconfigured(message))
}

/// For a relative path, that the SQLAlchemy spelling `sqlite:///name` is
/// relative to the working directory and how to write the absolute one.
fn relative_path_hint(path: &Path) -> Option<String> {
    if !path.is_relative() {
        return None;
    }
    let here =
        std::env::current_dir().map_or_else(|_| "the working directory".to_owned(), |dir| dir.display().to_string());
    Some(format!(
        "; sqlite:///{path} is relative to the working directory ({here}): for the absolute path /{path} write sqlite:////{path}",
        path = path.display(),
    ))
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn is_missing_table(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(_, Some(message)) if message.starts_with("no such table"))
}

/// `column = ?`: SQLite compares in the column's collation, BINARY in the
/// table kube-once creates (byte for byte).
fn equals(column: &str, _index: usize) -> String {
    format!("{column} = ?")
}

/// A column's text instant as milliseconds since the epoch (2440587.5 is
/// the Julian day of the Unix epoch).
fn epoch_ms(column: &str) -> String {
    format!("CAST(round((julianday({column}) - 2440587.5) * 86400000.0) AS INTEGER)")
}

fn stored_record(row: &Row) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        record: DoneRecord {
            key: row.get(0)?,
            command: row.get(1)?,
            image: row.get(2)?,
            pod: row.get(3)?,
            duration_ms: row.get(4)?,
            exit_code: row.get(5)?,
        },
        started_ms: row.get(6)?,
        finished_ms: row.get(7)?,
    })
}

/// ` WHERE record_table = ? AND <the filter's conditions>` and the values in order.
fn attempts_where<'a>(table: &'a str, filter: &'a Filter) -> (String, Vec<&'a str>) {
    let (condition, mut values) = filter.where_clause(equals);
    values.insert(0, table);
    (format!(" WHERE record_table = ?{}", condition.replacen(" WHERE ", " AND ", 1)), values)
}

fn stored_attempt(row: &Row) -> rusqlite::Result<StoredAttempt> {
    Ok(StoredAttempt {
        attempt: Attempt {
            key: row.get(0)?,
            command: row.get(1)?,
            image: row.get(2)?,
            namespace: row.get(3)?,
            deployment: row.get(4)?,
            pod: row.get(5)?,
            duration_ms: row.get(6)?,
            exit_code: row.get(7)?,
            outcome: Outcome::parse(&row.get::<_, String>(8)?),
            output: row.get(9)?,
        },
        started_ms: row.get(10)?,
        finished_ms: row.get(11)?,
        age_ms: row.get(12)?,
    })
}

impl RecordStore for Session {
    /// SQLite keeps no `running` row (its lock is a transaction on a file of its own).
    async fn list_running(&mut self) -> Result<Option<Vec<RunningRow>>> {
        Ok(None)
    }

    async fn create_attempts_table(&mut self) -> Result<()> {
        self.blocking(move |db| {
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {ATTEMPTS_TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, record_table TEXT NOT NULL, key TEXT NOT NULL, \
                 command TEXT NOT NULL, image TEXT NOT NULL, namespace TEXT NOT NULL, deployment TEXT NOT NULL, \
                 pod TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT NOT NULL, duration_ms INTEGER NOT NULL, \
                 exit_code INTEGER NOT NULL, outcome TEXT NOT NULL, output TEXT NOT NULL); \
                 CREATE INDEX IF NOT EXISTS {ATTEMPTS_TABLE}_key ON {ATTEMPTS_TABLE} (record_table, key, finished_at)"
            );
            db.execute_batch(&sql).with_context(|| format!("cannot create the attempts table {ATTEMPTS_TABLE}"))
        })
        .await
    }

    async fn write_attempt(&mut self, table: &str, attempt: &Attempt) -> Result<()> {
        let a = attempt.clone();
        let table = table.to_string();
        self.blocking(move |db| {
            let sql = format!(
                "INSERT INTO {ATTEMPTS_TABLE} (key, command, image, namespace, deployment, pod, started_at, finished_at, \
                 duration_ms, exit_code, outcome, output, record_table) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
                 strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || (?7 / 1000.0) || ' seconds'), \
                 strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?7, ?8, ?9, ?10, ?11)"
            );
            db.execute(
                &sql,
                rusqlite::params![
                    a.key,
                    a.command,
                    a.image,
                    a.namespace,
                    a.deployment,
                    a.pod,
                    a.duration_ms,
                    a.exit_code,
                    a.outcome.as_str(),
                    a.output,
                    table
                ],
            )
            .map(drop)
            .with_context(|| format!("cannot write the attempt into {ATTEMPTS_TABLE}"))
        })
        .await
    }

    async fn list_attempts(&mut self, table: &str, filter: &Filter, limit: u32) -> Result<Option<Vec<StoredAttempt>>> {
        let filter = filter.clone();
        let table = table.to_string();
        self.blocking(move |db| {
            let (condition, values) = attempts_where(&table, &filter);
            let sql = format!(
                "SELECT key, command, image, namespace, deployment, pod, duration_ms, exit_code, outcome, output, {}, {}, \
                 CAST(round((julianday('now') - julianday(finished_at)) * 86400000.0) AS INTEGER) \
                 FROM {ATTEMPTS_TABLE}{condition} ORDER BY finished_at DESC, id DESC LIMIT {limit}",
                epoch_ms("started_at"),
                epoch_ms("finished_at"),
            );
            let rows = db.prepare(&sql).and_then(|mut statement| {
                statement.query_map(rusqlite::params_from_iter(values), stored_attempt)?.collect()
            });
            unless_missing(rows, is_missing_table, "read", ATTEMPTS_TABLE)
        })
        .await
    }

    async fn delete_attempts(&mut self, table: &str, filter: &Filter) -> Result<Option<u64>> {
        let filter = filter.clone();
        let table = table.to_string();
        self.blocking(move |db| {
            let (condition, values) = attempts_where(&table, &filter);
            let sql = format!("DELETE FROM {ATTEMPTS_TABLE}{condition}");
            let deleted = db.execute(&sql, rusqlite::params_from_iter(values));
            Ok(unless_missing(deleted, is_missing_table, "delete from", ATTEMPTS_TABLE)?.map(|count| count as u64))
        })
        .await
    }

    async fn is_done(&mut self, table: &str, key: &str) -> Result<bool> {
        let table = table.to_string();
        let key = key.to_string();
        self.blocking(move |db| {
            let sql = format!("SELECT 1 FROM \"{table}\" WHERE {}", equals("key", 0));
            match db.query_row(&sql, [&key], |_| Ok(())) {
                Ok(()) => Ok(true),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(false),
                // Busy: the migration holds the write lock; the leader checks again under the lock.
                Err(error) if is_missing_table(&error) || is_busy(&error) => Ok(false),
                Err(error) => Err(error).with_context(|| format!("cannot read the done-record table `{table}`")),
            }
        })
        .await
    }

    async fn create_done_table(&mut self, table: &str) -> Result<()> {
        let table = table.to_string();
        self.blocking(move |db| {
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS \"{table}\" (key TEXT PRIMARY KEY, command TEXT NOT NULL, image TEXT NOT NULL, \
                 pod TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT NOT NULL, duration_ms INTEGER NOT NULL, \
                 exit_code INTEGER NOT NULL)"
            );
            db.execute_batch(&sql).with_context(|| format!("cannot create the done-record table `{table}`"))
        })
        .await
    }

    async fn write_done(&mut self, table: &str, record: &DoneRecord) -> Result<()> {
        let table = table.to_string();
        let record = record.clone();
        self.blocking(move |db| {
            let sql = format!(
                "INSERT OR IGNORE INTO \"{table}\" (key, command, image, pod, started_at, finished_at, duration_ms, exit_code) \
                 VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || (?5 / 1000.0) || ' seconds'), \
                 strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?5, ?6)"
            );
            db.execute(&sql, rusqlite::params![record.key, record.command, record.image, record.pod, record.duration_ms, record.exit_code])
                .map(drop)
                .with_context(|| format!("cannot write the done-record into `{table}`"))
        })
        .await
    }

    async fn list_done(&mut self, table: &str, filter: &Filter) -> Result<Option<Vec<StoredRecord>>> {
        let table = table.to_string();
        let filter = filter.clone();
        self.blocking(move |db| {
            let (condition, values) = filter.where_clause(equals);
            let sql = format!(
                "SELECT key, command, image, pod, duration_ms, exit_code, {}, {} FROM \"{table}\"{condition} \
                 ORDER BY started_at DESC, key",
                epoch_ms("started_at"),
                epoch_ms("finished_at"),
            );
            let rows = db.prepare(&sql).and_then(|mut statement| {
                statement.query_map(rusqlite::params_from_iter(values), stored_record)?.collect()
            });
            unless_missing(rows, is_missing_table, "read", &table)
        })
        .await
    }

    async fn delete_done(&mut self, table: &str, filter: &Filter) -> Result<Option<u64>> {
        let table = table.to_string();
        let filter = filter.clone();
        self.blocking(move |db| {
            let (condition, values) = filter.where_clause(equals);
            let sql = format!("DELETE FROM \"{table}\"{condition}");
            let deleted = db.execute(&sql, rusqlite::params_from_iter(values)).map(|count| count as u64);
            unless_missing(deleted, is_missing_table, "delete from", &table)
        })
        .await
    }
}

impl Lock for SqliteLock {
    type Records = Session;

    fn records(&mut self) -> &mut Session {
        &mut self.records
    }

    async fn try_lock(&mut self) -> Result<bool> {
        self.lock
            .blocking(|db| match db.execute_batch("BEGIN EXCLUSIVE") {
                Ok(()) => Ok(true),
                Err(error) if is_busy(&error) => Ok(false),
                Err(error) => Err(error).context("BEGIN EXCLUSIVE on the SQLite lock file failed"),
            })
            .await
    }

    async fn holder(&mut self) -> Result<Option<String>> {
        Ok(Some("another process (SQLite does not say which)".to_string()))
    }

    /// The lock is a file lock of this process: it cannot be lost while we live.
    async fn heartbeat(&mut self, _running: Option<i64>) -> Result<()> {
        Ok(())
    }

    async fn unlock(&mut self) -> Result<bool> {
        self.lock
            .blocking(|db| {
                db.execute_batch("ROLLBACK").map(|()| true).context("ROLLBACK on the SQLite lock file failed")
            })
            .await
    }

    fn poll_pause(&self) -> Duration {
        Duration::from_millis(100)
    }

    /// A file lock of the process: a frozen process keeps it.
    fn lost_when_frozen(&self) -> bool {
        false
    }

    // No lock-delay: the lock is this process's file lock, released only when
    // the process (and, through the parent-death signal, its child) is gone.
    async fn ensure_running_table(&mut self) -> Result<()> {
        Ok(())
    }

    async fn running_row(&mut self) -> Result<Option<Previous>> {
        Ok(None)
    }

    async fn mark_running(&mut self, _holder: &str, _token: i64) -> Result<()> {
        Ok(())
    }

    async fn clear_running(&mut self, _token: i64) -> Result<()> {
        Ok(())
    }
}
