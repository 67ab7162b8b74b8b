//! The real database servers (KUBE_ONCE_TEST_POSTGRES_URL /
//! KUBE_ONCE_TEST_MYSQL_URL, provided by scripts/test.sh) and a fresh
//! database per case and test run, so runs never see each other's tables.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use mysql_async::prelude::Queryable;

use crate::corpus::DatabaseKind;

/// The parts of a server's admin URL a case's Secrets are built from.
#[derive(Debug, Clone)]
pub struct Server {
    pub kind: DatabaseKind,
    pub admin_url: String,
    pub user: String,
    pub password: String,
    /// `host:port`, as written in the URL.
    pub hostport: String,
}

impl Server {
    pub fn from_env(kind: DatabaseKind) -> Result<Self> {
        let variable = match kind {
            DatabaseKind::Postgres => "KUBE_ONCE_TEST_POSTGRES_URL",
            DatabaseKind::Mysql => "KUBE_ONCE_TEST_MYSQL_URL",
        };
        let admin_url = crate::support::env::var(variable)?;
        let rest =
            admin_url.split_once("://").map(|(_, rest)| rest).with_context(|| format!("{variable} is not a URL"))?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (credentials, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let user = match (user, kind) {
            ("", DatabaseKind::Postgres) => "postgres",
            ("", DatabaseKind::Mysql) => "root",
            (user, _) => user,
        };
        Ok(Self {
            kind,
            admin_url: admin_url.clone(),
            user: user.to_owned(),
            password: password.to_owned(),
            hostport: hostport.to_owned(),
        })
    }

    fn url_for(&self, database: &str) -> String {
        let scheme = match self.kind {
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::Mysql => "mysql",
        };
        format!("{scheme}://{}:{}@{}/{database}", self.user, self.password, self.hostport)
    }

    pub async fn create(&self, database: &str) -> Result<FreshDatabase> {
        self.execute(&format!("CREATE DATABASE {database}")).await?;
        Ok(FreshDatabase { server: self.clone(), name: database.to_owned() })
    }

    async fn execute(&self, statement: &str) -> Result<()> {
        match self.kind {
            DatabaseKind::Postgres => {
                let (client, connection) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls)
                    .await
                    .context("cannot connect to KUBE_ONCE_TEST_POSTGRES_URL")?;
                let connection = tokio::spawn(connection);
                client.batch_execute(statement).await.with_context(|| format!("PostgreSQL: {statement}"))?;
                drop(client);
                let _ = connection.await;
            }
            DatabaseKind::Mysql => {
                let options = mysql_async::Opts::from_url(&self.admin_url)
                    .context("KUBE_ONCE_TEST_MYSQL_URL is not a MySQL URL")?;
                let mut connection =
                    mysql_async::Conn::new(options).await.context("cannot connect to KUBE_ONCE_TEST_MYSQL_URL")?;
                connection.query_drop(statement).await.with_context(|| format!("MySQL: {statement}"))?;
                connection.disconnect().await.context("MySQL disconnect")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct FreshDatabase {
    pub server: Server,
    pub name: String,
}

impl FreshDatabase {
    /// `{{postgres.url}}`, `{{postgres.user}}`, ... for the case's Secrets.
    pub fn placeholders(&self) -> BTreeMap<String, String> {
        let prefix = match self.server.kind {
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::Mysql => "mysql",
        };
        [
            ("url", self.server.url_for(&self.name)),
            ("user", self.server.user.clone()),
            ("password", self.server.password.clone()),
            ("hostport", self.server.hostport.clone()),
            ("database", self.name.clone()),
        ]
        .into_iter()
        .map(|(key, value)| (format!("{prefix}.{key}"), value))
        .collect()
    }

    pub async fn drop_database(self) -> Result<()> {
        self.server.execute(&format!("DROP DATABASE IF EXISTS {}", self.name)).await
    }
}

/// A name unique to this test run: databases are created fresh and dropped after.
pub fn run_id() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{}_{:x}", std::process::id(), nanos & 0xff_ffff)
}
