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
use rusqlite::{Connection, ErrorCode};

use super::{Backend, Settings};
use crate::record::DoneRecord;

pub struct Sqlite {
    lock: Arc<Mutex<Connection>>,
    records: Arc<Mutex<Connection>>,
    table: Option<String>,
}

pub fn lock_file(database: &Path) -> PathBuf {
    let mut name = OsString::from(database.as_os_str());
    name.push(".kube-once-lock");
    PathBuf::from(name)
}

impl Sqlite {
    pub async fn connect(database: &Path, settings: &Settings) -> Result<Self> {
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
        Ok(Sqlite {
            lock: Arc::new(Mutex::new(lock)),
            records: Arc::new(Mutex::new(records)),
            table: settings.table.clone(),
        })
    }
}

async fn blocking<T: Send + 'static>(
    connection: &Arc<Mutex<Connection>>,
    work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
) -> Result<T> {
    let connection = connection.clone();
    tokio::task::spawn_blocking(move || {
        let connection = connection.lock().map_err(|_| anyhow!("the SQLite connection was poisoned by a crash"))?;
        work(&connection)
    })
    .await?
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn is_missing_table(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(_, Some(message)) if message.starts_with("no such table"))
}

impl Backend for Sqlite {
    async fn is_done(&mut self, key: &str) -> Result<bool> {
        let Some(table) = self.table.clone() else { return Ok(false) };
        let key = key.to_string();
        blocking(&self.records, move |db| {
            let sql = format!("SELECT 1 FROM \"{table}\" WHERE key = ?1");
            match db.query_row(&sql, [&key], |_| Ok(())) {
                Ok(()) => Ok(true),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(false),
                Err(error) if is_missing_table(&error) || is_busy(&error) => Ok(false),
                Err(error) => Err(error).with_context(|| format!("cannot read the done-record table `{table}`")),
            }
        })
        .await
    }

    async fn try_lock(&mut self) -> Result<bool> {
        blocking(&self.lock, |db| match db.execute_batch("BEGIN EXCLUSIVE") {
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
    async fn heartbeat(&mut self) -> Result<()> {
        Ok(())
    }

    // No lock-delay: the lock is this process's file lock, released only when
    // the process (and, through the parent-death signal, its child) is gone.
    async fn ensure_running_table(&mut self) -> Result<()> {
        Ok(())
    }

    async fn running_row(&mut self, _lock_delay: Duration) -> Result<Option<(Duration, String)>> {
        Ok(None)
    }

    async fn mark_running(&mut self, _holder: &str) -> Result<()> {
        Ok(())
    }

    async fn clear_running(&mut self) -> Result<()> {
        Ok(())
    }

    async fn ensure_record_table(&mut self) -> Result<()> {
        let Some(table) = self.table.clone() else { return Ok(()) };
        blocking(&self.records, move |db| {
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS \"{table}\" (key TEXT PRIMARY KEY, command TEXT NOT NULL, image TEXT NOT NULL, \
                 pod TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT NOT NULL, duration_ms INTEGER NOT NULL, \
                 exit_code INTEGER NOT NULL)"
            );
            db.execute_batch(&sql).with_context(|| format!("cannot create the done-record table `{table}`"))
        })
        .await
    }

    async fn write_record(&mut self, record: &DoneRecord) -> Result<()> {
        let Some(table) = self.table.clone() else { return Ok(()) };
        let record = record.clone();
        blocking(&self.records, move |db| {
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

    async fn unlock(&mut self) -> Result<bool> {
        blocking(&self.lock, |db| {
            db.execute_batch("ROLLBACK").map(|()| true).context("ROLLBACK on the SQLite lock file failed")
        })
        .await
    }

    fn poll_pause(&self) -> Duration {
        Duration::from_millis(100)
    }
}
