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

use super::url::{Host, Server, TlsMode};
use super::{Backend, Settings};
use crate::record::{DoneRecord, mysql_lock_name};

pub struct MySql {
    lock: Conn,
    /// Done-records through the app's own URL; `None` when it is the lock URL.
    records: Option<Conn>,
    name: String,
    table: Option<String>,
    /// Connection id of the holder and when this process first saw it holding.
    seen_holder: Option<(u32, Instant)>,
}

impl MySql {
    pub async fn connect(server: &Server, lock_server: Option<&Server>, settings: &Settings) -> Result<Self> {
        let lock_target = lock_server.unwrap_or(server);
        let lock = open(lock_target, settings).await?;
        let records = match lock_server {
            Some(_) if settings.table.is_some() => Some(open(server, settings).await?),
            _ => None,
        };
        let name = mysql_lock_name(lock_target.database.as_deref().unwrap_or_default(), &settings.lock_name);
        Ok(MySql { lock, records, name, table: settings.table.clone(), seen_holder: None })
    }

    fn records(&mut self) -> &mut Conn {
        self.records.as_mut().unwrap_or(&mut self.lock)
    }
}

pub(crate) async fn open(server: &Server, settings: &Settings) -> Result<Conn> {
    let mut opts = OptsBuilder::default()
        .user(server.user.clone())
        .pass(server.password.clone())
        .db_name(server.database.clone())
        // Without this, a TCP connection to localhost is silently moved to the Unix socket.
        .prefer_socket(false)
        .tcp_keepalive(Some(Duration::from_secs(10)))
        .connect_attributes(HashMap::from([("program_name".to_string(), settings.application_name.clone())]))
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

impl Backend for MySql {
    async fn is_done(&mut self, key: &str) -> Result<bool> {
        let Some(table) = self.table.clone() else { return Ok(false) };
        let sql = format!("SELECT 1 FROM `{table}` WHERE `key` = ?");
        match self.records().exec_first::<i64, _, _>(sql, (key,)).await {
            Ok(row) => Ok(row.is_some()),
            Err(error) if is_missing_table(&error) => Ok(false),
            Err(error) => Err(error).with_context(|| format!("cannot read the done-record table `{table}`")),
        }
    }

    async fn try_lock(&mut self) -> Result<bool> {
        let got: Option<Option<i64>> =
            self.lock.exec_first("SELECT GET_LOCK(?, 1)", (&self.name,)).await.context("GET_LOCK failed")?;
        Ok(got.flatten() == Some(1))
    }

    async fn holder(&mut self) -> Result<Option<String>> {
        let id: Option<Option<u32>> =
            self.lock.exec_first("SELECT IS_USED_LOCK(?)", (&self.name,)).await.context("IS_USED_LOCK failed")?;
        let Some(id) = id.flatten() else {
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
            .lock
            .exec_first("SELECT USER, HOST FROM information_schema.PROCESSLIST WHERE ID = ?", (id,))
            .await
            .context("cannot read information_schema.PROCESSLIST")?;
        let who = who.map(|(user, host)| format!(" {user}@{host}")).unwrap_or_default();
        Ok(Some(format!("connection {id}{who}, seen holding it for {}s", since.elapsed().as_secs())))
    }

    async fn heartbeat(&mut self) -> Result<()> {
        self.lock.query_drop("SELECT 1").await.context("the lock connection does not answer")
    }

    async fn ensure_record_table(&mut self) -> Result<()> {
        let Some(table) = self.table.clone() else { return Ok(()) };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS `{table}` (`key` VARCHAR(255) PRIMARY KEY, command TEXT NOT NULL, \
             image TEXT NOT NULL, pod VARCHAR(253) NOT NULL, started_at DATETIME(3) NOT NULL, \
             finished_at DATETIME(3) NOT NULL, duration_ms BIGINT NOT NULL, exit_code INT NOT NULL)"
        );
        self.records().query_drop(sql).await.with_context(|| format!("cannot create the done-record table `{table}`"))
    }

    async fn write_record(&mut self, record: &DoneRecord) -> Result<()> {
        let Some(table) = self.table.clone() else { return Ok(()) };
        let sql = format!(
            "INSERT IGNORE INTO `{table}` (`key`, command, image, pod, started_at, finished_at, duration_ms, exit_code) \
             VALUES (?, ?, ?, ?, NOW(3) - INTERVAL (? * 1000) MICROSECOND, NOW(3), ?, ?)"
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
        self.records()
            .exec_drop(sql, params)
            .await
            .with_context(|| format!("cannot write the done-record into `{table}`"))
    }

    async fn unlock(&mut self) -> Result<bool> {
        let released: Option<Option<i64>> =
            self.lock.exec_first("SELECT RELEASE_LOCK(?)", (&self.name,)).await.context("RELEASE_LOCK failed")?;
        Ok(released.flatten() == Some(1))
    }

    /// `GET_LOCK(name, 1)` already waited up to a second on the server.
    fn poll_pause(&self) -> Duration {
        Duration::from_millis(20)
    }
}
