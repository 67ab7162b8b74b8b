//! What each database dialect implements, once, in its own file
//! (`postgres.rs`, `mysql.rs`, `sqlite.rs`): the lock ([`Lock`]) and the
//! tables kube-once keeps in the app's database ([`RecordStore`]). The lock
//! protocol (`lib.rs`) and `history` only call these traits, so all the SQL of
//! a table stands in its dialect's file.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::attempts::{Attempt, StoredAttempt};
use crate::record::{DoneRecord, Filter, RunningRow, StoredRecord};

/// The tables kube-once keeps in the app's database, on one connection to it.
/// One method set per table: a new table is a new set here and its SQL in
/// each dialect. A table that does not exist yet reads as empty (nothing was
/// recorded so far), never as an error.
///
/// Keys, and every value a [`Filter`] gives, are compared exactly on every
/// dialect: case, accents and trailing spaces count, the same way when
/// `lock` checks a key as when `history` and `forget` select by it.
pub(crate) trait RecordStore {
    // The done-record table: one row per key whose command succeeded.

    /// Whether the done-record for `key` exists; a missing table means "not done".
    async fn is_done(&mut self, table: &str, key: &str) -> Result<bool>;
    /// Creates the table if missing, or brings one made by an older version up to date.
    async fn create_done_table(&mut self, table: &str) -> Result<()>;
    /// Writes the record stamped with the database's clock (finished now,
    /// started `duration_ms` before); a record already there for the key stays.
    async fn write_done(&mut self, table: &str, record: &DoneRecord) -> Result<()>;
    /// The matching records, newest first; `None` when the table does not exist.
    async fn list_done(&mut self, table: &str, filter: &Filter) -> Result<Option<Vec<StoredRecord>>>;
    /// Deletes the matching records: how many, or `None` when the table does not exist.
    async fn delete_done(&mut self, table: &str, filter: &Filter) -> Result<Option<u64>>;

    // The attempts table (`names::ATTEMPTS_TABLE`): one row per run of the
    // command, for the done-record table `table` (keys are unique per
    // done-record table, so its rows are apart from other tables'). Created
    // online by the first new leader; older pods never read it, so they keep
    // working beside it.

    /// Creates the attempts table if missing.
    async fn create_attempts_table(&mut self) -> Result<()>;
    /// Writes the attempt stamped with the database's clock (finished now,
    /// started `duration_ms` before).
    async fn write_attempt(&mut self, table: &str, attempt: &Attempt) -> Result<()>;
    /// The matching attempts, newest first, at most `limit`; `None` when the table does not exist.
    async fn list_attempts(&mut self, table: &str, filter: &Filter, limit: u32) -> Result<Option<Vec<StoredAttempt>>>;
    /// Deletes the matching attempts: how many, or `None` when the table does not exist.
    async fn delete_attempts(&mut self, table: &str, filter: &Filter) -> Result<Option<u64>>;

    /// The leaders' `running` rows (`names::RUNNING_TABLE`, written through
    /// the lock's session, read here for `history`), newest first; `None`
    /// when the table does not exist (or the dialect keeps none: SQLite).
    async fn list_running(&mut self) -> Result<Option<Vec<RunningRow>>>;

    /// Ends the connection the way its server expects (MySQL says goodbye).
    async fn close(self)
    where
        Self: Sized,
    {
    }
}

/// The lock in one dialect, on a session of its own. Calls never leave a
/// transaction open on that session (except SQLite's, whose lock *is* the
/// transaction).
pub(crate) trait Lock {
    type Records: RecordStore;

    /// Where the done-records go: the app's own URL, which is the lock's
    /// session unless a separate lock URL was given.
    fn records(&mut self) -> &mut Self::Records;
    /// One non-blocking (or briefly blocking) attempt to take the lock.
    async fn try_lock(&mut self) -> Result<bool>;
    /// Who holds the lock, for the waiting log line.
    async fn holder(&mut self) -> Result<Option<String>>;
    /// Fails when the lock's session is gone, or when our `running` row
    /// (`running`: its token, once written) was taken over; refreshes that
    /// row's heartbeat.
    async fn heartbeat(&mut self, running: Option<i64>) -> Result<()>;
    /// `false` when the lock was not held (any more).
    async fn unlock(&mut self) -> Result<bool>;
    /// Pause between two lock attempts.
    fn poll_pause(&self) -> Duration;
    /// Whether the lock can be freed while its holder is frozen (the server
    /// ends an idle session); if not, the lease's watchdog never fires.
    fn lost_when_frozen(&self) -> bool {
        true
    }

    // The `running` row: the leader's heartbeat, for the lock-delay, written
    // through the lock's session so that it lives exactly as long as the lock.

    /// Creates the table of `running` rows ([`crate::names::RUNNING_TABLE`]) if missing.
    async fn ensure_running_table(&mut self) -> Result<()>;
    /// The `running` row under this lock, if any: who wrote it, under which
    /// token, and how old its last heartbeat is by the server's clock.
    async fn running_row(&mut self) -> Result<Option<Previous>>;
    /// Writes our `running` row (holder, heartbeat now) under a fresh
    /// `token`; `heartbeat` refreshes it from then on.
    async fn mark_running(&mut self, holder: &str, token: i64) -> Result<()>;
    /// Deletes our `running` row: the command and its process group have ended.
    /// Also how a leader that lost the lock says so, on a fresh session, to
    /// the next leader waiting for it ([`crate::takeover`]).
    async fn clear_running(&mut self, token: i64) -> Result<()>;
}

/// A `running` row found by a new leader: a previous leader's command that
/// did not end cleanly (or is still ending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Previous {
    /// Its `application_name`: `<namespace>/<deployment>/<pod>`.
    pub holder: String,
    pub token: i64,
    /// How long ago its last heartbeat got through, by the server's clock.
    pub heartbeat_age: Duration,
}

/// A statement's answer, or `None` when its table does not exist yet;
/// `is_missing` is the dialect's test for that error, `doing` says what
/// failed otherwise ("read", "write into"...).
pub(crate) fn unless_missing<T, E>(
    result: Result<T, E>,
    is_missing: fn(&E) -> bool,
    doing: &str,
    table: &str,
) -> Result<Option<T>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if is_missing(&error) => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot {doing} the table `{table}`")),
    }
}
