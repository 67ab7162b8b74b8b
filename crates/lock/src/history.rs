//! `kube-once history` and `kube-once forget`: read and delete done-records.
//!
//! Plain values in ([`Options`], [`Filter`]), records out ([`Run`]). The
//! record table is the one `lock` writes (see the backends' `CREATE TABLE`);
//! columns are selected by name, so columns added later do not matter.
//! Times are read as milliseconds since the epoch by the database itself, so
//! each dialect's own time type (timestamptz, a session-zone DATETIME, ISO
//! text) comes out as the same instant.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use mysql_async::prelude::Queryable;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::url::{self, Target};
use crate::{Settings, UsageError, mysql, postgres, record};

/// Where the done-records are, as plain values; [`target`] reads the
/// environment it names.
#[derive(Debug, Clone)]
pub struct Options {
    /// Name of the env var holding the database URL.
    pub database_url_env: String,
    pub record_table: String,
}

/// Which records: every field given must match exactly; none given, all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub key: Option<String>,
    pub image: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.key.is_none() && self.image.is_none()
    }

    /// `--key K --image I`, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(key) = &self.key {
            parts.push(format!("--key {key}"));
        }
        if let Some(image) = &self.image {
            parts.push(format!("--image {image}"));
        }
        parts.join(" ")
    }

    /// `(column, value)` pairs of the WHERE clause, in order.
    fn conditions(&self) -> Vec<(&'static str, &String)> {
        let mut conditions = Vec::new();
        if let Some(key) = &self.key {
            conditions.push(("key", key));
        }
        if let Some(image) = &self.image {
            conditions.push(("image", image));
        }
        conditions
    }
}

/// One done-record: a successful run of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub key: String,
    /// The command as a shell would read it.
    pub command: String,
    pub image: String,
    pub pod: String,
    /// Milliseconds since the Unix epoch.
    pub started_ms: i64,
    pub finished_ms: i64,
    pub duration_ms: i64,
    pub exit_code: i32,
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
pub fn target(options: &Options, lookup: impl Fn(&str) -> Option<String>) -> Result<Target, UsageError> {
    let var = &options.database_url_env;
    let text =
        lookup(var).filter(|value| !value.trim().is_empty()).ok_or_else(|| UsageError::NoDatabaseUrl(var.clone()))?;
    let target = url::parse(text.trim()).map_err(|source| UsageError::BadUrl { var: var.clone(), source })?;
    record::validate_table_name(&options.record_table)?;
    Ok(target)
}

/// An open connection to the database holding the records.
pub struct Connection(Inner);

enum Inner {
    Postgres(tokio_postgres::Client),
    MySql(mysql_async::Conn),
    Sqlite(rusqlite::Connection),
}

/// `application_name` / `program_name` of these connections.
const APPLICATION_NAME: &str = "kube-once history";

/// Connects once (no retries: a person is waiting).
pub async fn connect(target: &Target) -> Result<Connection> {
    let settings = Settings { lock_name: String::new(), table: None, application_name: APPLICATION_NAME.to_string() };
    Ok(Connection(match target {
        Target::Postgres(server) => Inner::Postgres(postgres::open(server, &settings).await?),
        Target::MySql(server) => Inner::MySql(mysql::open(server, &settings).await?),
        Target::Sqlite(path) => Inner::Sqlite(open_sqlite(path)?),
    }))
}

/// The app's SQLite file, which must exist: a wrong path is not an empty history.
fn open_sqlite(path: &Path) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let connection = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the SQLite database {} (it must exist; check the URL)", path.display()))?;
    // A migration may hold the write lock for a while: wait for it.
    connection.busy_timeout(Duration::from_secs(30))?;
    Ok(connection)
}

impl Connection {
    /// The matching runs, newest first; `None` when the table does not exist.
    pub async fn list(&mut self, table: &str, filter: &Filter) -> Result<Option<Vec<Run>>> {
        record::validate_table_name(table)?;
        let conditions = filter.conditions();
        let values: Vec<&String> = conditions.iter().map(|(_, value)| *value).collect();
        let context = || format!("cannot read the done-record table `{table}`");
        match &mut self.0 {
            Inner::Postgres(client) => {
                let sql = format!(
                    "SELECT key, command, image, pod, (extract(epoch FROM started_at) * 1000)::bigint, \
                     (extract(epoch FROM finished_at) * 1000)::bigint, duration_ms::bigint, exit_code::integer \
                     FROM \"{table}\"{} ORDER BY started_at DESC, key",
                    where_clause(&conditions, Placeholder::Dollar, "")
                );
                let params: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|value| *value as &(dyn ToSql + Sync)).collect();
                match client.query(&sql, &params).await {
                    Ok(rows) => Ok(Some(
                        rows.iter()
                            .map(|row| Run {
                                key: row.get(0),
                                command: row.get(1),
                                image: row.get(2),
                                pod: row.get(3),
                                started_ms: row.get(4),
                                finished_ms: row.get(5),
                                duration_ms: row.get(6),
                                exit_code: row.get(7),
                            })
                            .collect(),
                    )),
                    Err(error) if error.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(None),
                    Err(error) => Err(error).with_context(context),
                }
            }
            Inner::MySql(conn) => {
                // UNIX_TIMESTAMP reads a DATETIME in the session's time zone,
                // the zone NOW(3) wrote it in.
                let sql = format!(
                    "SELECT `key`, command, image, pod, CAST(UNIX_TIMESTAMP(started_at) * 1000 AS SIGNED), \
                     CAST(UNIX_TIMESTAMP(finished_at) * 1000 AS SIGNED), CAST(duration_ms AS SIGNED), CAST(exit_code AS SIGNED) \
                     FROM `{table}`{} ORDER BY started_at DESC, `key`",
                    where_clause(&conditions, Placeholder::Question, "`")
                );
                type Row = (String, String, String, String, i64, i64, i64, i64);
                match conn.exec::<Row, _, _>(sql, mysql_params(&values)).await {
                    Ok(rows) => Ok(Some(
                        rows.into_iter()
                            .map(|(key, command, image, pod, started_ms, finished_ms, duration_ms, exit_code)| Run {
                                key,
                                command,
                                image,
                                pod,
                                started_ms,
                                finished_ms,
                                duration_ms,
                                exit_code: i32::try_from(exit_code).unwrap_or(i32::MAX),
                            })
                            .collect(),
                    )),
                    Err(error) if is_missing_mysql_table(&error) => Ok(None),
                    Err(error) => Err(error).with_context(context),
                }
            }
            Inner::Sqlite(db) => {
                // 2440587.5 is the Julian day of the Unix epoch.
                let epoch =
                    |column: &str| format!("CAST(round((julianday({column}) - 2440587.5) * 86400000.0) AS INTEGER)");
                let sql = format!(
                    "SELECT key, command, image, pod, {}, {}, duration_ms, exit_code FROM \"{table}\"{} \
                     ORDER BY started_at DESC, key",
                    epoch("started_at"),
                    epoch("finished_at"),
                    where_clause(&conditions, Placeholder::Question, "")
                );
                let rows = db.prepare(&sql).and_then(|mut statement| {
                    statement
                        .query_map(rusqlite::params_from_iter(values.iter()), |row| {
                            Ok(Run {
                                key: row.get(0)?,
                                command: row.get(1)?,
                                image: row.get(2)?,
                                pod: row.get(3)?,
                                started_ms: row.get(4)?,
                                finished_ms: row.get(5)?,
                                duration_ms: row.get(6)?,
                                exit_code: row.get(7)?,
                            })
                        })?
                        .collect::<rusqlite::Result<Vec<Run>>>()
                });
                match rows {
                    Ok(rows) => Ok(Some(rows)),
                    Err(error) if is_missing_sqlite_table(&error) => Ok(None),
                    Err(error) => Err(error).with_context(context),
                }
            }
        }
    }

    /// Deletes the matching records; how many, or `None` when the table does
    /// not exist. An empty filter is refused: forgetting everything at once
    /// is a `DROP TABLE`, not a command-line accident.
    pub async fn delete(&mut self, table: &str, filter: &Filter) -> Result<Option<u64>> {
        record::validate_table_name(table)?;
        anyhow::ensure!(!filter.is_empty(), "refusing to delete every done-record: give --key or --image");
        let conditions = filter.conditions();
        let values: Vec<&String> = conditions.iter().map(|(_, value)| *value).collect();
        let context = || format!("cannot delete from the done-record table `{table}`");
        match &mut self.0 {
            Inner::Postgres(client) => {
                let sql = format!("DELETE FROM \"{table}\"{}", where_clause(&conditions, Placeholder::Dollar, ""));
                let params: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|value| *value as &(dyn ToSql + Sync)).collect();
                match client.execute(&sql, &params).await {
                    Ok(count) => Ok(Some(count)),
                    Err(error) if error.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(None),
                    Err(error) => Err(error).with_context(context),
                }
            }
            Inner::MySql(conn) => {
                let sql = format!("DELETE FROM `{table}`{}", where_clause(&conditions, Placeholder::Question, "`"));
                match conn.exec_drop(sql, mysql_params(&values)).await {
                    Ok(()) => Ok(Some(conn.affected_rows())),
                    Err(error) if is_missing_mysql_table(&error) => Ok(None),
                    Err(error) => Err(error).with_context(context),
                }
            }
            Inner::Sqlite(db) => {
                let sql = format!("DELETE FROM \"{table}\"{}", where_clause(&conditions, Placeholder::Question, ""));
                match db.execute(&sql, rusqlite::params_from_iter(values.iter())) {
                    Ok(count) => Ok(Some(count as u64)),
                    Err(error) if is_missing_sqlite_table(&error) => Ok(None),
                    Err(error) => Err(error).with_context(context),
                }
            }
        }
    }

    /// Closes the connection politely (MySQL says goodbye; the others just drop).
    pub async fn close(self) {
        if let Inner::MySql(conn) = self.0 {
            let _ = conn.disconnect().await;
        }
    }
}

#[derive(Clone, Copy)]
enum Placeholder {
    /// PostgreSQL: `$1`, `$2`…
    Dollar,
    /// MySQL and SQLite: `?`.
    Question,
}

/// ` WHERE a = $1 AND b = $2`, or nothing; `quote` around column names
/// (MySQL's `key` is a reserved word).
fn where_clause(conditions: &[(&str, &String)], placeholder: Placeholder, quote: &str) -> String {
    if conditions.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = conditions
        .iter()
        .enumerate()
        .map(|(index, (column, _))| match placeholder {
            Placeholder::Dollar => format!("{quote}{column}{quote} = ${}", index + 1),
            Placeholder::Question => format!("{quote}{column}{quote} = ?"),
        })
        .collect();
    format!(" WHERE {}", parts.join(" AND "))
}

fn mysql_params(values: &[&String]) -> mysql_async::Params {
    if values.is_empty() {
        mysql_async::Params::Empty
    } else {
        mysql_async::Params::Positional(values.iter().map(|value| mysql_async::Value::from(value.as_str())).collect())
    }
}

fn is_missing_mysql_table(error: &mysql_async::Error) -> bool {
    matches!(error, mysql_async::Error::Server(server) if server.code == 1146)
}

fn is_missing_sqlite_table(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(_, Some(message)) if message.starts_with("no such table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |var| pairs.iter().find(|(name, _)| *name == var).map(|(_, value)| value.to_string())
    }

    fn options(table: &str) -> Options {
        Options { database_url_env: "DATABASE_URL".into(), record_table: table.into() }
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
    fn where_clauses_per_dialect() {
        let key = "v1".to_string();
        let image = "app:2".to_string();
        let both = [("key", &key), ("image", &image)];
        assert_eq!(where_clause(&both, Placeholder::Dollar, ""), " WHERE key = $1 AND image = $2");
        assert_eq!(where_clause(&both, Placeholder::Question, "`"), " WHERE `key` = ? AND `image` = ?");
        assert_eq!(where_clause(&[], Placeholder::Question, ""), "");
        let filter = Filter { key: None, image: Some(image.clone()) };
        assert_eq!(filter.conditions(), vec![("image", &image)]);
        assert_eq!(filter.describe(), "--image app:2");
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(rfc3339_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_seconds(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_seconds(-5), "1970-01-01T00:00:00Z");
    }
}
