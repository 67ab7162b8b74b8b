//! MySQL and MariaDB: `GET_LOCK` on a dedicated connection.
//!
//! `GET_LOCK(name, 1)` in a loop rather than one long `GET_LOCK`, so that
//! between attempts the follower can notice the done-record (and skip at
//! once), log the holder and honour the timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};

use super::Settings;
use super::url::{Host, Server, TlsMode};
use crate::attempts::{Attempt, Outcome, StoredAttempt};
use crate::dialect::{Lock, Previous, RecordStore, unless_missing};
use crate::names::{ATTEMPTS_TABLE, RUNNING_TABLE, mysql_lock_name};
use crate::record::{DoneRecord, Filter, RunningRow, StoredRecord};

/// One MySQL/MariaDB session, and the collation it compares keys in.
pub(crate) struct Session {
    conn: Conn,
    /// The collation keys are compared with: binary and without padding.
    collation: &'static str,
}

/// Collations that compare keys byte for byte *and* count trailing spaces
/// (`utf8mb4_bin` is a PAD SPACE collation: `v1 ` = `v1`), best first:
/// MySQL ≥ 8.0, MariaDB ≥ 10.2. Older servers get `utf8mb4_bin`, and every
/// comparison also compares lengths ([`equals`]), so no key matches wrongly
/// there either.
const KEY_COLLATIONS: [&str; 2] = ["utf8mb4_0900_bin", "utf8mb4_nopad_bin"];
const FALLBACK_COLLATION: &str = "utf8mb4_bin";

impl Session {
    pub(crate) async fn open(server: &Server, application_name: &str) -> Result<Session> {
        let mut conn = open(server, application_name).await?;
        let found: Option<String> = conn
            .exec_first(
                "SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN (?, ?) ORDER BY COLLATION_NAME LIMIT 1",
                (KEY_COLLATIONS[0], KEY_COLLATIONS[1]),
            )
            .await
            .context("cannot read information_schema.COLLATIONS")?;
        let collation =
            KEY_COLLATIONS.into_iter().find(|name| found.as_deref() == Some(*name)).unwrap_or(FALLBACK_COLLATION);
        Ok(Session { conn, collation })
    }

    /// [`equals`] in this server's exact collation.
    fn equals(&self, column: &str) -> String {
        equals(column, self.collation)
    }

    /// ` WHERE record_table = ? AND <the filter's conditions>` and its parameters.
    fn attempts_where(&self, table: &str, filter: &Filter) -> (String, mysql_async::Params) {
        let (condition, values) = filter.where_clause(|column, _| self.equals(column));
        let mut params: Vec<mysql_async::Value> = vec![table.into()];
        params.extend(values.iter().flat_map(|value| [*value, *value]).map(Into::into));
        (
            format!(" WHERE record_table = ?{}", condition.replacen(" WHERE ", " AND ", 1)),
            mysql_async::Params::Positional(params),
        )
    }
}

pub(crate) struct MySqlLock {
    /// The lock's session (the lock URL when one is given).
    session: Session,
    /// Done-records through the app's own URL; `None` when it is the lock URL.
    records: Option<Session>,
    name: String,
    lock_name: String,
    /// Connection id of the holder and when this process first saw it holding.
    seen_holder: Option<(i64, Instant)>,
}

impl MySqlLock {
    pub(crate) async fn connect(server: &Server, lock_server: Option<&Server>, settings: &Settings) -> Result<Self> {
        let lock_target = lock_server.unwrap_or(server);
        let mut session = Session::open(lock_target, &settings.application_name).await?;
        // Server-side liveness: a session that sends nothing for 30 s is
        // closed and its lock released. Followers poll every second, the
        // leader heartbeats every second, so only a vanished holder is idle that long.
        session
            .conn
            .query_drop("SET SESSION wait_timeout = 30")
            .await
            .context("cannot set the lock session's wait_timeout")?;
        let records = match lock_server {
            Some(_) if settings.table.is_some() => Some(Session::open(server, &settings.application_name).await?),
            _ => None,
        };
        let name = mysql_lock_name(lock_target.database.as_deref().unwrap_or_default(), &settings.lock_name);
        Ok(MySqlLock { session, records, name, lock_name: settings.lock_name.clone(), seen_holder: None })
    }

    /// One of the lock functions on our lock name (`GET_LOCK(?, 1)`): its
    /// answer, `None` for NULL.
    async fn lock_function(&mut self, call: &str) -> Result<Option<i64>> {
        let answer: Option<Option<i64>> = self
            .session
            .conn
            .exec_first(format!("SELECT {call}"), (&self.name,))
            .await
            .with_context(|| format!("{call} failed"))?;
        Ok(answer.flatten())
    }
}

async fn open(server: &Server, application_name: &str) -> Result<Conn> {
    let mut opts = OptsBuilder::default()
        .user(server.user.clone())
        .pass(server.password.clone())
        .db_name(server.database.clone())
        // Without this, a TCP connection to localhost is silently moved to the Unix socket.
        .prefer_socket(false)
        // UPDATE reports the rows it matched, not only those it changed.
        .client_found_rows(true)
        .tcp_keepalive(Some(Duration::from_secs(10)))
        .connect_attributes(HashMap::from([("program_name".to_string(), application_name.to_string())]))
        .ssl_opts(ssl_opts(server));
    opts = match &server.host {
        Host::Tcp(host) => opts.ip_or_hostname(host.clone()).tcp_port(server.port.unwrap_or(3306)),
        Host::Socket(path) => opts.socket(Some(path.display().to_string())),
    };
    let connect = Conn::new(opts);
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(conn) => conn.with_context(|| format!("cannot connect to MySQL/MariaDB at {server}")),
        Err(_) => anyhow::bail!("cannot connect to MySQL/MariaDB at {server}: no answer within 10s"),
    }
}

/// MySQL's `ssl-mode`: PREFERRED is treated as DISABLED (mysql_async cannot
/// fall back to plain text); REQUIRED encrypts without verifying.
fn ssl_opts(server: &Server) -> Option<SslOpts> {
    let base = || {
        let roots = server.root_cert.iter().map(|path| path.clone().into()).collect();
        SslOpts::default().with_root_certs(roots)
    };
    match server.tls {
        TlsMode::Disable | TlsMode::Prefer => None,
        TlsMode::Require => {
            Some(base().with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true))
        }
        TlsMode::VerifyCa => Some(base().with_danger_skip_domain_validation(true)),
        TlsMode::VerifyFull => Some(base()),
    }
}

fn is_missing_table(error: &mysql_async::Error) -> bool {
    matches!(error, mysql_async::Error::Server(server) if server.code == 1146)
}

/// Whether the server refused the user name or password, or the user's
/// access to the database (ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR,
/// ER_ACCESS_DENIED_NO_PASSWORD_ERROR).
pub(crate) fn refused_credentials(cause: &(dyn std::error::Error + 'static)) -> bool {
    matches!(cause.downcast_ref::<mysql_async::Error>(), Some(mysql_async::Error::Server(server)) if matches!(server.code, 1044 | 1045 | 1698))
}

/// `column` equal to a parameter, exactly: in `collation` (binary), whatever
/// the column's own (a table not migrated yet compares exactly too), and of
/// the same length, which `utf8mb4_bin` would pad. Takes the value twice.
fn equals(column: &str, collation: &str) -> String {
    format!("`{column}` = ? COLLATE {collation} AND CHAR_LENGTH(`{column}`) = CHAR_LENGTH(?)")
}

/// The values as parameters, each twice (see [`equals`]).
fn twice(values: &[&str]) -> mysql_async::Params {
    if values.is_empty() {
        return mysql_async::Params::Empty;
    }
    mysql_async::Params::Positional(values.iter().flat_map(|value| [*value, *value]).map(Into::into).collect())
}

/// What `list_done` reads, in the order of [`LISTED`].
type ListedRow = (String, String, String, String, i64, i64, i64, i64);

/// The columns of [`ListedRow`]. UNIX_TIMESTAMP reads a DATETIME in the
/// session's time zone, the zone NOW(3) wrote it in.
const LISTED: &str = "`key`, command, image, pod, CAST(duration_ms AS SIGNED), CAST(exit_code AS SIGNED), \
    CAST(UNIX_TIMESTAMP(started_at) * 1000 AS SIGNED), CAST(UNIX_TIMESTAMP(finished_at) * 1000 AS SIGNED)";

fn stored_record(
    (key, command, image, pod, duration_ms, exit_code, started_ms, finished_ms): ListedRow,
) -> StoredRecord {
    let exit_code = i32::try_from(exit_code).unwrap_or(i32::MAX);
    StoredRecord { record: DoneRecord { key, command, image, pod, duration_ms, exit_code }, started_ms, finished_ms }
}

/// The columns [`stored_attempt`] reads, in its order; the age by the
/// server's clock, in the session's zone like the DATETIMEs it compares.
const ATTEMPT_COLUMNS: &str = "`key`, command, image, `namespace`, deployment, pod, CAST(duration_ms AS SIGNED), \
    CAST(exit_code AS SIGNED), outcome, output, CAST(UNIX_TIMESTAMP(started_at) * 1000 AS SIGNED), \
    CAST(UNIX_TIMESTAMP(finished_at) * 1000 AS SIGNED), CAST(TIMESTAMPDIFF(MICROSECOND, finished_at, NOW(3)) DIV 1000 AS SIGNED)";

fn stored_attempt(row: mysql_async::Row) -> StoredAttempt {
    let text = |index: usize| row.get::<Option<String>, _>(index).flatten().unwrap_or_default();
    let number = |index: usize| row.get::<Option<i64>, _>(index).flatten().unwrap_or_default();
    StoredAttempt {
        attempt: Attempt {
            key: text(0),
            command: text(1),
            image: text(2),
            namespace: text(3),
            deployment: text(4),
            pod: text(5),
            duration_ms: number(6),
            exit_code: i32::try_from(number(7)).unwrap_or(i32::MAX),
            outcome: Outcome::parse(&text(8)),
            output: text(9),
        },
        started_ms: number(10),
        finished_ms: number(11),
        age_ms: number(12),
    }
}

impl RecordStore for Session {
    /// The `running` table keeps UTC (`UTC_TIMESTAMP(6)`), whatever the session's zone.
    async fn list_running(&mut self) -> Result<Option<Vec<RunningRow>>> {
        let sql = format!(
            "SELECT lock_name, holder, CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', started_at) DIV 1000 AS SIGNED), \
             CAST(TIMESTAMPDIFF(MICROSECOND, heartbeat_at, UTC_TIMESTAMP(6)) DIV 1000 AS SIGNED) \
             FROM {RUNNING_TABLE} ORDER BY started_at DESC"
        );
        let rows = self.conn.query::<(String, String, i64, i64), _>(sql).await;
        Ok(unless_missing(rows, is_missing_table, "read", RUNNING_TABLE)?.map(|rows| {
            rows.into_iter()
                .map(|(lock_name, holder, started_ms, heartbeat_age_ms)| RunningRow {
                    lock_name,
                    holder,
                    started_ms,
                    heartbeat_age_ms,
                })
                .collect()
        }))
    }

    async fn create_attempts_table(&mut self) -> Result<()> {
        let collation = self.collation;
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {ATTEMPTS_TABLE} (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             record_table VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             `key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL, command TEXT NOT NULL, \
             image TEXT NOT NULL, `namespace` VARCHAR(253) NOT NULL, deployment VARCHAR(253) NOT NULL, \
             pod VARCHAR(253) NOT NULL, started_at DATETIME(3) NOT NULL, finished_at DATETIME(3) NOT NULL, \
             duration_ms BIGINT NOT NULL, exit_code INT NOT NULL, outcome VARCHAR(16) NOT NULL, output TEXT NOT NULL, \
             INDEX {ATTEMPTS_TABLE}_key (record_table, `key`, finished_at)) DEFAULT CHARSET = utf8mb4"
        );
        self.conn.query_drop(sql).await.with_context(|| {
            format!("cannot create the attempts table {ATTEMPTS_TABLE}; grant CREATE on the database, or create it as docs/lock.md shows")
        })
    }

    async fn write_attempt(&mut self, table: &str, attempt: &Attempt) -> Result<()> {
        let sql = format!(
            "INSERT INTO {ATTEMPTS_TABLE} (`key`, command, image, `namespace`, deployment, pod, started_at, finished_at, \
             duration_ms, exit_code, outcome, output, record_table) \
             VALUES (?, ?, ?, ?, ?, ?, NOW(3) - INTERVAL (? * 1000) MICROSECOND, NOW(3), ?, ?, ?, ?, ?)"
        );
        let a = attempt;
        let params: Vec<mysql_async::Value> = vec![
            a.key.as_str().into(),
            a.command.as_str().into(),
            a.image.as_str().into(),
            a.namespace.as_str().into(),
            a.deployment.as_str().into(),
            a.pod.as_str().into(),
            a.duration_ms.into(),
            a.duration_ms.into(),
            a.exit_code.into(),
            a.outcome.as_str().into(),
            a.output.as_str().into(),
            table.into(),
        ];
        self.conn
            .exec_drop(sql, mysql_async::Params::Positional(params))
            .await
            .with_context(|| format!("cannot write the attempt into {ATTEMPTS_TABLE}"))
    }

    async fn list_attempts(&mut self, table: &str, filter: &Filter, limit: u32) -> Result<Option<Vec<StoredAttempt>>> {
        let (condition, params) = self.attempts_where(table, filter);
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM {ATTEMPTS_TABLE}{condition} ORDER BY finished_at DESC, id DESC LIMIT {limit}"
        );
        let rows = self.conn.exec::<mysql_async::Row, _, _>(sql, params).await;
        Ok(unless_missing(rows, is_missing_table, "read", ATTEMPTS_TABLE)?
            .map(|rows| rows.into_iter().map(stored_attempt).collect()))
    }

    async fn delete_attempts(&mut self, table: &str, filter: &Filter) -> Result<Option<u64>> {
        let (condition, params) = self.attempts_where(table, filter);
        let sql = format!("DELETE FROM {ATTEMPTS_TABLE}{condition}");
        let deleted = self.conn.exec_drop(sql, params).await;
        Ok(unless_missing(deleted, is_missing_table, "delete from", ATTEMPTS_TABLE)?
            .map(|()| self.conn.affected_rows()))
    }

    async fn is_done(&mut self, table: &str, key: &str) -> Result<bool> {
        let sql = format!("SELECT 1 FROM `{table}` WHERE {}", self.equals("key"));
        let found = self.conn.exec_first::<i64, _, _>(sql, twice(&[key])).await;
        Ok(unless_missing(found, is_missing_table, "read", table)?.flatten().is_some())
    }

    /// Creates the table, or migrates the key column of one created before
    /// keys were compared exactly (the server's default, case- and
    /// accent-insensitive collation). The migration only makes keys more
    /// distinct, so it cannot fail on duplicates; it runs under the lock.
    async fn create_done_table(&mut self, table: &str) -> Result<()> {
        let collation = self.collation;
        let column = format!("`key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL");
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS `{table}` ({column} PRIMARY KEY, command TEXT NOT NULL, \
             image TEXT NOT NULL, pod VARCHAR(253) NOT NULL, started_at DATETIME(3) NOT NULL, \
             finished_at DATETIME(3) NOT NULL, duration_ms BIGINT NOT NULL, exit_code INT NOT NULL) DEFAULT CHARSET = utf8mb4"
        );
        self.conn.query_drop(sql).await.with_context(|| format!("cannot create the done-record table `{table}`"))?;
        let current: Option<Option<String>> = self
            .conn
            .exec_first(
                "SELECT COLLATION_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'key'",
                (table,),
            )
            .await
            .with_context(|| format!("cannot read the key column of `{table}`"))?;
        let current = current.flatten().unwrap_or_default();
        if current != collation {
            self.conn
                .query_drop(format!("ALTER TABLE `{table}` MODIFY {column}"))
                .await
                .with_context(|| format!("cannot change the key column of `{table}` from {current} to {collation}; run: ALTER TABLE `{table}` MODIFY {column}"))?;
            tracing::info!(
                event = "migrated",
                table,
                from = current,
                to = collation,
                "the done-record table's key column now compares keys exactly (case, accents and trailing spaces count)"
            );
        }
        Ok(())
    }

    async fn write_done(&mut self, table: &str, record: &DoneRecord) -> Result<()> {
        // Not INSERT IGNORE: that would turn a truncation into a warning.
        let sql = format!(
            "INSERT INTO `{table}` (`key`, command, image, pod, started_at, finished_at, duration_ms, exit_code) \
             VALUES (?, ?, ?, ?, NOW(3) - INTERVAL (? * 1000) MICROSECOND, NOW(3), ?, ?) ON DUPLICATE KEY UPDATE `key` = `key`"
        );
        let params = (
            &record.key,
            &record.command,
            &record.image,
            &record.pod,
            record.duration_ms,
            record.duration_ms,
            record.exit_code,
        );
        self.conn.exec_drop(sql, params).await.with_context(|| format!("cannot write the done-record into `{table}`"))
    }

    async fn list_done(&mut self, table: &str, filter: &Filter) -> Result<Option<Vec<StoredRecord>>> {
        let (condition, values) = filter.where_clause(|column, _| self.equals(column));
        let sql = format!("SELECT {LISTED} FROM `{table}`{condition} ORDER BY started_at DESC, `key`");
        let rows = self.conn.exec::<ListedRow, _, _>(sql, twice(&values)).await;
        Ok(unless_missing(rows, is_missing_table, "read", table)?
            .map(|rows| rows.into_iter().map(stored_record).collect()))
    }

    async fn delete_done(&mut self, table: &str, filter: &Filter) -> Result<Option<u64>> {
        let (condition, values) = filter.where_clause(|column, _| self.equals(column));
        let sql = format!("DELETE FROM `{table}`{condition}");
        let deleted = self.conn.exec_drop(sql, twice(&values)).await;
        Ok(unless_missing(deleted, is_missing_table, "delete from", table)?.map(|()| self.conn.affected_rows()))
    }

    async fn close(self) {
        // Only politeness: the server ends a dropped session on its own.
        let _ = self.conn.disconnect().await;
    }
}

impl Lock for MySqlLock {
    type Records = Session;

    fn records(&mut self) -> &mut Session {
        self.records.as_mut().unwrap_or(&mut self.session)
    }

    async fn try_lock(&mut self) -> Result<bool> {
        Ok(self.lock_function("GET_LOCK(?, 1)").await? == Some(1))
    }

    async fn holder(&mut self) -> Result<Option<String>> {
        let Some(id) = self.lock_function("IS_USED_LOCK(?)").await? else {
            self.seen_holder = None;
            return Ok(None);
        };
        let since = match self.seen_holder {
            Some((seen, since)) if seen == id => since,
            _ => Instant::now(),
        };
        self.seen_holder = Some((id, since));
        // Without the PROCESS privilege only our own user's sessions are listed.
        let who: Option<(String, String)> = self
            .session
            .conn
            .exec_first("SELECT USER, HOST FROM information_schema.PROCESSLIST WHERE ID = ?", (id,))
            .await
            .context("cannot read information_schema.PROCESSLIST")?;
        let who = who.map(|(user, host)| format!(" {user}@{host}")).unwrap_or_default();
        let mut holder = format!("connection {id}{who}, seen holding it for {}s", since.elapsed().as_secs());
        // A connection is not a pod: the holder's `running` row (written once
        // its command started; absent with --lock-delay 0) names the pod.
        if let Ok(Some(row)) = self.running_row().await {
            holder.push_str(&format!("; running row: {}, heartbeat {}s ago", row.holder, row.heartbeat_age.as_secs()));
        }
        Ok(Some(holder))
    }

    async fn heartbeat(&mut self, running: Option<i64>) -> Result<()> {
        let Some(token) = running else {
            return self.session.conn.query_drop("SELECT 1").await.context("the lock connection does not answer");
        };
        let sql =
            format!("UPDATE {RUNNING_TABLE} SET heartbeat_at = UTC_TIMESTAMP(6) WHERE lock_name = ? AND token = ?");
        self.session
            .conn
            .exec_drop(sql, (&self.lock_name, token))
            .await
            .context("the lock connection does not answer")?;
        let updated = self.session.conn.affected_rows();
        anyhow::ensure!(updated == 1, "our `running` row in {RUNNING_TABLE} is gone: another leader took over");
        Ok(())
    }

    async fn ensure_running_table(&mut self) -> Result<()> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {RUNNING_TABLE} (lock_name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {} NOT NULL PRIMARY KEY, \
             holder VARCHAR(255) NOT NULL, token BIGINT NOT NULL, started_at DATETIME(6) NOT NULL, \
             heartbeat_at DATETIME(6) NOT NULL) DEFAULT CHARSET = utf8mb4",
            self.session.collation
        );
        self.session.conn.query_drop(sql).await.with_context(|| {
            format!("cannot create the table {RUNNING_TABLE} (the leader's heartbeat, for the lock-delay); grant CREATE or pass --lock-delay 0")
        })
    }

    async fn running_row(&mut self) -> Result<Option<Previous>> {
        let sql = format!(
            "SELECT holder, token, CAST(GREATEST(0, TIMESTAMPDIFF(MICROSECOND, heartbeat_at, UTC_TIMESTAMP(6))) DIV 1000 AS SIGNED) \
             FROM {RUNNING_TABLE} WHERE lock_name = ?"
        );
        let row: Option<(String, i64, i64)> = self
            .session
            .conn
            .exec_first(sql, (&self.lock_name,))
            .await
            .with_context(|| format!("cannot read {RUNNING_TABLE}"))?;
        Ok(row.map(|(holder, token, age_ms)| Previous {
            holder,
            token,
            heartbeat_age: Duration::from_millis(age_ms.max(0) as u64),
        }))
    }

    async fn mark_running(&mut self, holder: &str, token: i64) -> Result<()> {
        let sql = format!(
            "INSERT INTO {RUNNING_TABLE} (lock_name, holder, token, started_at, heartbeat_at) \
             VALUES (?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE \
             holder = VALUES(holder), token = VALUES(token), started_at = VALUES(started_at), heartbeat_at = VALUES(heartbeat_at)"
        );
        self.session
            .conn
            .exec_drop(sql, (&self.lock_name, holder, token))
            .await
            .map(drop)
            .with_context(|| format!("cannot write our row into {RUNNING_TABLE}"))
    }

    async fn clear_running(&mut self, token: i64) -> Result<()> {
        let sql = format!("DELETE FROM {RUNNING_TABLE} WHERE lock_name = ? AND token = ?");
        self.session
            .conn
            .exec_drop(sql, (&self.lock_name, token))
            .await
            .with_context(|| format!("cannot delete our row from {RUNNING_TABLE}"))
    }

    async fn unlock(&mut self) -> Result<bool> {
        Ok(self.lock_function("RELEASE_LOCK(?)").await? == Some(1))
    }

    /// `GET_LOCK(name, 1)` already waited up to a second on the server.
    fn poll_pause(&self) -> Duration {
        Duration::from_millis(20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_in_the_binary_collation_and_by_length() {
        assert_eq!(
            equals("key", "utf8mb4_nopad_bin"),
            "`key` = ? COLLATE utf8mb4_nopad_bin AND CHAR_LENGTH(`key`) = CHAR_LENGTH(?)"
        );
        assert_eq!(twice(&["v1"]), mysql_async::Params::Positional(vec!["v1".into(), "v1".into()]));
        assert_eq!(twice(&[]), mysql_async::Params::Empty);
    }
}
