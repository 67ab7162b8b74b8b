//! PostgreSQL: a session-level advisory lock on a dedicated connection that
//! never has a transaction open.
//!
//! Followers poll `pg_try_advisory_lock` instead of blocking in
//! `pg_advisory_lock`: a blocked statement holds a snapshot, and a
//! `CREATE INDEX CONCURRENTLY` in the leader's migration waits for every
//! older snapshot to go away — a deadlock between the migration and the pods
//! waiting for it.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row};

use super::url::{Host, Server, TlsMode};
use super::{Settings, tls};
use crate::attempts::{Attempt, Outcome, StoredAttempt};
use crate::dialect::{Lock, Previous, RecordStore, unless_missing};
use crate::names::{ATTEMPTS_TABLE, RUNNING_TABLE, advisory_key};
use crate::record::{DoneRecord, Filter, RunningRow, StoredRecord};

/// One PostgreSQL session.
pub(crate) struct Session {
    client: Client,
}

impl Session {
    pub(crate) async fn open(server: &Server, application_name: &str) -> Result<Session> {
        Ok(Session { client: open(server, application_name).await? })
    }
}

pub(crate) struct PostgresLock {
    /// The lock's session (the lock URL when one is given).
    session: Session,
    /// Done-records go through the app's own URL; `None` when it is the lock URL.
    records: Option<Session>,
    key: i64,
    lock_name: String,
}

impl PostgresLock {
    pub(crate) async fn connect(server: &Server, lock_server: Option<&Server>, settings: &Settings) -> Result<Self> {
        let session = Session::open(lock_server.unwrap_or(server), &settings.application_name).await?;
        keep_lock_session_alive(&session.client).await?;
        let records = match lock_server {
            Some(_) if settings.table.is_some() => Some(Session::open(server, &settings.application_name).await?),
            _ => None,
        };
        Ok(PostgresLock {
            session,
            records,
            key: advisory_key(&settings.lock_name),
            lock_name: settings.lock_name.clone(),
        })
    }

    fn lock(&self) -> &Client {
        &self.session.client
    }

    /// One of the advisory lock functions on our key: its boolean answer.
    async fn advisory(&self, function: &str) -> Result<bool> {
        let row = self
            .lock()
            .query_one(&format!("SELECT {function}($1)"), &[&self.key])
            .await
            .with_context(|| format!("{function} failed"))?;
        Ok(row.get(0))
    }
}

async fn open(server: &Server, application_name: &str) -> Result<Client> {
    let config = config(server, application_name);
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls::client_config(server)?);
    let (client, connection) =
        config.connect(connector).await.with_context(|| format!("cannot connect to PostgreSQL at {server}"))?;
    // The connection task ends when the session does; errors surface on the client.
    tokio::spawn(connection);
    Ok(client)
}

fn config(server: &Server, application_name: &str) -> Config {
    let mut config = Config::new();
    match &server.host {
        Host::Tcp(host) => config.host(host),
        Host::Socket(dir) => config.host_path(dir),
    };
    config.port(server.port.unwrap_or(5432));
    if let Some(user) = &server.user {
        config.user(user);
    }
    if let Some(password) = &server.password {
        config.password(password);
    }
    if let Some(database) = &server.database {
        config.dbname(database);
    }
    config.ssl_mode(match server.tls {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
    });
    config.application_name(application_name);
    config.connect_timeout(Duration::from_secs(10));
    // A dead peer (node gone, network cut) must be noticed, by the holder
    // (heartbeat fails) and by the server (the lock is released).
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    config
}

/// Server-side liveness of the lock's session, so that the server releases
/// the lock of a holder that vanished (node gone, network cut) within a
/// minute instead of the kernel's default of two hours:
/// - keepalive probes after 10 s idle, every 5 s, 3 lost → dropped (≤ 25 s);
/// - unacknowledged data for 30 s → dropped (`tcp_user_timeout`, PG ≥ 12);
/// - no statement for 30 s → session ended (`idle_session_timeout`, PG ≥ 14):
///   followers poll every 250 ms and the leader heartbeats every second, so
///   only a vanished holder is ever idle that long.
///
/// On a Unix socket the TCP settings are ignored by the server.
async fn keep_lock_session_alive(client: &Client) -> Result<()> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .context("cannot read the server version")?
        .get(0);
    let mut sql =
        String::from("SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3;");
    if version >= 120000 {
        sql.push_str(" SET tcp_user_timeout = 30000;");
    }
    if version >= 140000 {
        sql.push_str(" SET idle_session_timeout = '30s';");
    }
    client.batch_execute(&sql).await.context("cannot set the lock session's keepalive and idle timeouts")
}

/// Splits the advisory key the way `pg_locks` shows it: classid = high half, objid = low half.
fn lock_columns(key: i64) -> (u32, u32) {
    ((key as u64 >> 32) as u32, key as u64 as u32)
}

fn is_missing_table(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNDEFINED_TABLE)
}

/// Whether the server refused the user name or password (a wrong password,
/// an unknown role, no pg_hba entry for it).
pub(crate) fn refused_credentials(cause: &(dyn std::error::Error + 'static)) -> bool {
    let Some(error) = cause.downcast_ref::<tokio_postgres::Error>() else { return false };
    [SqlState::INVALID_PASSWORD, SqlState::INVALID_AUTHORIZATION_SPECIFICATION]
        .iter()
        .any(|code| error.code() == Some(code))
}

/// The values as statement parameters.
fn parameters<'a>(values: &'a [&'a str]) -> Vec<&'a (dyn ToSql + Sync)> {
    values.iter().map(|value| value as &(dyn ToSql + Sync)).collect()
}

/// `column = $n`: PostgreSQL's `=` on text is exact under a deterministic
/// collation, the only kind a database or a column can default to.
fn equals(column: &str, index: usize) -> String {
    format!("{column} = ${}", index + 1)
}

/// The columns [`stored_record`] reads, in its order; the times as
/// milliseconds since the epoch, computed by the server from its timestamptz.
const LISTED: &str = "key, command, image, pod, duration_ms::bigint, exit_code::integer, \
    (extract(epoch FROM started_at) * 1000)::bigint, (extract(epoch FROM finished_at) * 1000)::bigint";

fn stored_record(row: &Row) -> StoredRecord {
    StoredRecord {
        record: DoneRecord {
            key: row.get(0),
            command: row.get(1),
            image: row.get(2),
            pod: row.get(3),
            duration_ms: row.get(4),
            exit_code: row.get(5),
        },
        started_ms: row.get(6),
        finished_ms: row.get(7),
    }
}

/// The columns [`stored_attempt`] reads, in its order.
const ATTEMPT_COLUMNS: &str = "key, command, image, namespace, deployment, pod, duration_ms::bigint, \
    exit_code::integer, outcome, output, (extract(epoch FROM started_at) * 1000)::bigint, \
    (extract(epoch FROM finished_at) * 1000)::bigint, (extract(epoch FROM clock_timestamp() - finished_at) * 1000)::bigint";

/// ` WHERE record_table = $1 AND <the filter's conditions>` and the values in order.
fn attempts_where<'a>(table: &'a str, filter: &'a Filter) -> (String, Vec<&'a str>) {
    let (condition, mut values) = filter.where_clause(|column, index| equals(column, index + 1));
    values.insert(0, table);
    (format!(" WHERE record_table = $1{}", condition.replacen(" WHERE ", " AND ", 1)), values)
}

fn stored_attempt(row: &Row) -> StoredAttempt {
    StoredAttempt {
        attempt: Attempt {
            key: row.get(0),
            command: row.get(1),
            image: row.get(2),
            namespace: row.get(3),
            deployment: row.get(4),
            pod: row.get(5),
            duration_ms: row.get(6),
            exit_code: row.get(7),
            outcome: Outcome::parse(row.get(8)),
            output: row.get(9),
        },
        started_ms: row.get(10),
        finished_ms: row.get(11),
        age_ms: row.get(12),
    }
}

impl RecordStore for Session {
    async fn list_running(&mut self) -> Result<Option<Vec<RunningRow>>> {
        let sql = format!(
            "SELECT lock_name, holder, (extract(epoch FROM started_at) * 1000)::bigint, \
             (extract(epoch FROM clock_timestamp() - heartbeat_at) * 1000)::bigint FROM {RUNNING_TABLE} ORDER BY started_at DESC"
        );
        let rows = self.client.query(&sql, &[]).await;
        Ok(unless_missing(rows, is_missing_table, "read", RUNNING_TABLE)?.map(|rows| {
            rows.iter()
                .map(|row| RunningRow {
                    lock_name: row.get(0),
                    holder: row.get(1),
                    started_ms: row.get(2),
                    heartbeat_age_ms: row.get(3),
                })
                .collect()
        }))
    }

    async fn create_attempts_table(&mut self) -> Result<()> {
        let exists = self.client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&ATTEMPTS_TABLE]).await;
        if exists.is_ok_and(|row| row.get::<_, bool>(0)) {
            return Ok(());
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {ATTEMPTS_TABLE} (id bigserial PRIMARY KEY, record_table text NOT NULL, key text NOT NULL, \
             command text NOT NULL, image text NOT NULL, namespace text NOT NULL, deployment text NOT NULL, \
             pod text NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL, \
             duration_ms bigint NOT NULL, exit_code integer NOT NULL, outcome text NOT NULL, output text NOT NULL); \
             CREATE INDEX IF NOT EXISTS {ATTEMPTS_TABLE}_key ON {ATTEMPTS_TABLE} (record_table, key, finished_at)"
        );
        match self.client.batch_execute(&sql).await {
            Ok(()) => Ok(()),
            // Leaders of two locks at once: the other one created it.
            Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(()),
            Err(error) => Err(error).with_context(|| {
                format!("cannot create the attempts table {ATTEMPTS_TABLE}; grant CREATE on the schema, or create it as docs/lock.md shows")
            }),
        }
    }

    async fn write_attempt(&mut self, table: &str, attempt: &Attempt) -> Result<()> {
        let sql = format!(
            "INSERT INTO {ATTEMPTS_TABLE} (key, command, image, namespace, deployment, pod, started_at, finished_at, \
             duration_ms, exit_code, outcome, output, record_table) VALUES ($1, $2, $3, $4, $5, $6, \
             clock_timestamp() - $7::bigint * interval '1 millisecond', clock_timestamp(), $7, $8, $9, $10, $11)"
        );
        let a = attempt;
        self.client
            .execute(
                &sql,
                &[
                    &a.key,
                    &a.command,
                    &a.image,
                    &a.namespace,
                    &a.deployment,
                    &a.pod,
                    &a.duration_ms,
                    &a.exit_code,
                    &a.outcome.as_str(),
                    &a.output,
                    &table,
                ],
            )
            .await
            .map(drop)
            .with_context(|| format!("cannot write the attempt into {ATTEMPTS_TABLE}"))
    }

    async fn list_attempts(&mut self, table: &str, filter: &Filter, limit: u32) -> Result<Option<Vec<StoredAttempt>>> {
        let (condition, values) = attempts_where(table, filter);
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM {ATTEMPTS_TABLE}{condition} ORDER BY finished_at DESC, id DESC LIMIT {limit}"
        );
        let rows = self.client.query(&sql, &parameters(&values)).await;
        Ok(unless_missing(rows, is_missing_table, "read", ATTEMPTS_TABLE)?
            .map(|rows| rows.iter().map(stored_attempt).collect()))
    }

    async fn delete_attempts(&mut self, table: &str, filter: &Filter) -> Result<Option<u64>> {
        let (condition, values) = attempts_where(table, filter);
        let sql = format!("DELETE FROM {ATTEMPTS_TABLE}{condition}");
        unless_missing(
            self.client.execute(&sql, &parameters(&values)).await,
            is_missing_table,
            "delete from",
            ATTEMPTS_TABLE,
        )
    }

    async fn is_done(&mut self, table: &str, key: &str) -> Result<bool> {
        let sql = format!("SELECT 1 FROM \"{table}\" WHERE {}", equals("key", 0));
        let found = unless_missing(self.client.query_opt(&sql, &[&key]).await, is_missing_table, "read", table)?;
        Ok(found.flatten().is_some())
    }

    async fn create_done_table(&mut self, table: &str) -> Result<()> {
        // Checked first so that the usual case does not make the server send an "already exists" notice.
        let exists = self.client.query_one("SELECT to_regclass(quote_ident($1)) IS NOT NULL", &[&table]).await;
        if exists.is_ok_and(|row| row.get::<_, bool>(0)) {
            return Ok(());
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (key text PRIMARY KEY, command text NOT NULL, image text NOT NULL, \
             pod text NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL, \
             duration_ms bigint NOT NULL, exit_code integer NOT NULL)"
        );
        self.client.batch_execute(&sql).await.with_context(|| format!("cannot create the done-record table `{table}`"))
    }

    async fn write_done(&mut self, table: &str, record: &DoneRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO \"{table}\" (key, command, image, pod, started_at, finished_at, duration_ms, exit_code) \
             VALUES ($1, $2, $3, $4, now() - $5::bigint * interval '1 millisecond', now(), $5, $6) ON CONFLICT (key) DO NOTHING"
        );
        self.client
            .execute(
                &sql,
                &[&record.key, &record.command, &record.image, &record.pod, &record.duration_ms, &record.exit_code],
            )
            .await
            .map(drop)
            .with_context(|| format!("cannot write the done-record into `{table}`"))
    }

    async fn list_done(&mut self, table: &str, filter: &Filter) -> Result<Option<Vec<StoredRecord>>> {
        let (condition, values) = filter.where_clause(equals);
        let sql = format!("SELECT {LISTED} FROM \"{table}\"{condition} ORDER BY started_at DESC, key");
        let rows = self.client.query(&sql, &parameters(&values)).await;
        Ok(unless_missing(rows, is_missing_table, "read", table)?.map(|rows| rows.iter().map(stored_record).collect()))
    }

    async fn delete_done(&mut self, table: &str, filter: &Filter) -> Result<Option<u64>> {
        let (condition, values) = filter.where_clause(equals);
        let sql = format!("DELETE FROM \"{table}\"{condition}");
        unless_missing(self.client.execute(&sql, &parameters(&values)).await, is_missing_table, "delete from", table)
    }
}

impl Lock for PostgresLock {
    type Records = Session;

    fn records(&mut self) -> &mut Session {
        self.records.as_mut().unwrap_or(&mut self.session)
    }

    async fn try_lock(&mut self) -> Result<bool> {
        self.advisory("pg_try_advisory_lock").await
    }

    async fn unlock(&mut self) -> Result<bool> {
        self.advisory("pg_advisory_unlock").await
    }

    fn poll_pause(&self) -> Duration {
        Duration::from_millis(250)
    }

    async fn holder(&mut self) -> Result<Option<String>> {
        let (classid, objid) = lock_columns(self.key);
        let row = self
            .lock()
            .query_opt(
                "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), \
                        extract(epoch FROM now() - a.backend_start)::bigint \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND l.classid = $1 AND l.objid = $2",
                &[&classid, &objid],
            )
            .await
            .context("cannot read pg_locks")?;
        Ok(row.map(|row| {
            let pid: i32 = row.get(0);
            let app: String = row.get(1);
            let from: String = row.get(2);
            let connected: i64 = row.get(3);
            format!("pid {pid} application_name={app:?} from {from}, connected for {connected}s")
        }))
    }

    async fn heartbeat(&mut self, running: Option<i64>) -> Result<()> {
        let Some(token) = running else {
            return self.lock().simple_query("SELECT 1").await.map(drop).context("the lock connection does not answer");
        };
        let sql =
            format!("UPDATE {RUNNING_TABLE} SET heartbeat_at = clock_timestamp() WHERE lock_name = $1 AND token = $2");
        let updated = self
            .lock()
            .execute(&sql, &[&self.lock_name, &token])
            .await
            .context("the lock connection does not answer")?;
        anyhow::ensure!(updated == 1, "our `running` row in {RUNNING_TABLE} is gone: another leader took over");
        Ok(())
    }

    async fn ensure_running_table(&mut self) -> Result<()> {
        let exists = self.lock().query_one("SELECT to_regclass($1) IS NOT NULL", &[&RUNNING_TABLE]).await;
        if exists.is_ok_and(|row| row.get::<_, bool>(0)) {
            return Ok(());
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {RUNNING_TABLE} (lock_name text PRIMARY KEY, holder text NOT NULL, \
             token bigint NOT NULL, started_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL)"
        );
        match self.lock().batch_execute(&sql).await {
            Ok(()) => Ok(()),
            // Two first leaders of different locks at once: the other one created it.
            Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(()),
            Err(error) => Err(error).with_context(|| {
                format!("cannot create the table {RUNNING_TABLE} (the leader's heartbeat, for the lock-delay); grant CREATE or pass --lock-delay 0")
            }),
        }
    }

    async fn running_row(&mut self) -> Result<Option<Previous>> {
        let sql = format!(
            "SELECT holder, token, greatest(0, extract(epoch FROM clock_timestamp() - heartbeat_at) * 1000)::bigint \
             FROM {RUNNING_TABLE} WHERE lock_name = $1"
        );
        let row = self
            .lock()
            .query_opt(&sql, &[&self.lock_name])
            .await
            .with_context(|| format!("cannot read {RUNNING_TABLE}"))?;
        Ok(row.map(|row| Previous {
            holder: row.get(0),
            token: row.get(1),
            heartbeat_age: Duration::from_millis(row.get::<_, i64>(2).max(0) as u64),
        }))
    }

    async fn mark_running(&mut self, holder: &str, token: i64) -> Result<()> {
        let sql = format!(
            "INSERT INTO {RUNNING_TABLE} (lock_name, holder, token, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp()) ON CONFLICT (lock_name) DO UPDATE \
             SET holder = EXCLUDED.holder, token = EXCLUDED.token, started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at"
        );
        self.lock()
            .execute(&sql, &[&self.lock_name, &holder, &token])
            .await
            .map(drop)
            .with_context(|| format!("cannot write our row into {RUNNING_TABLE}"))
    }

    async fn clear_running(&mut self, token: i64) -> Result<()> {
        let sql = format!("DELETE FROM {RUNNING_TABLE} WHERE lock_name = $1 AND token = $2");
        self.lock()
            .execute(&sql, &[&self.lock_name, &token])
            .await
            .map(drop)
            .with_context(|| format!("cannot delete our row from {RUNNING_TABLE}"))
    }
}
