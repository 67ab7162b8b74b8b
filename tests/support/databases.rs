//! Helpers for tests that run the real `kube-once` binary against real
//! database servers: process spawning with deadlines, the shared output file
//! the commands append to, a small SQL client, throwaway servers.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Generous: the machine running the suite may be slow and busy.
pub const DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MySql,
    Sqlite,
}

/// A database the lock processes talk to, and the test's own SQL access to it.
#[derive(Debug, Clone)]
pub struct Db {
    pub kind: Kind,
    pub url: String,
}

impl Db {
    pub fn postgres() -> Db {
        Db { kind: Kind::Postgres, url: super::env::required("KUBE_ONCE_TEST_POSTGRES_URL") }
    }

    pub fn mysql() -> Db {
        Db { kind: Kind::MySql, url: super::env::required("KUBE_ONCE_TEST_MYSQL_URL") }
    }

    pub fn sqlite(path: &Path) -> Db {
        Db { kind: Kind::Sqlite, url: format!("sqlite:///{}", path.display()) }
    }

    /// The database named in the URL.
    pub fn database(&self) -> String {
        let path = self.url.rsplit('/').next().unwrap_or_default();
        path.split('?').next().unwrap_or_default().to_string()
    }

    /// Runs statements that return nothing.
    pub fn execute(&self, sql: &str) {
        runtime().block_on(async {
            match self.kind {
                Kind::Postgres => pg(&self.url).await.batch_execute(sql).await.expect(sql),
                Kind::MySql => {
                    use mysql_async::prelude::Queryable;
                    let mut conn = mysql_async::Conn::from_url(&self.url).await.expect("connect to MySQL");
                    conn.query_drop(sql).await.expect(sql);
                    conn.disconnect().await.expect("disconnect");
                }
                Kind::Sqlite => unreachable!("SQLite is read through rusqlite directly"),
            }
        })
    }

    /// First column of the first row, as an integer.
    pub fn scalar(&self, sql: &str) -> i64 {
        runtime().block_on(async {
            match self.kind {
                Kind::Postgres => pg(&self.url).await.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0),
                Kind::MySql => {
                    use mysql_async::prelude::Queryable;
                    let mut conn = mysql_async::Conn::from_url(&self.url).await.expect("connect to MySQL");
                    let value: Option<i64> = conn.query_first(sql).await.expect(sql);
                    conn.disconnect().await.expect("disconnect");
                    value.expect("a row")
                }
                Kind::Sqlite => {
                    let path = self.url.trim_start_matches("sqlite:///");
                    let conn = rusqlite::Connection::open(path).expect("open SQLite");
                    conn.query_row(sql, [], |row| row.get(0)).expect(sql)
                }
            }
        })
    }

    /// How many done-records `table` holds for `key` (0 when the table does not exist).
    pub fn records(&self, table: &str, key: &str) -> i64 {
        let exists = match self.kind {
            Kind::Postgres => self.scalar(&format!("SELECT count(*) FROM pg_tables WHERE tablename = '{table}'")),
            Kind::MySql => self.scalar(&format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = database() AND table_name = '{table}'"
            )),
            Kind::Sqlite => self.scalar(&format!("SELECT count(*) FROM sqlite_master WHERE name = '{table}'")),
        };
        if exists == 0 {
            return 0;
        }
        let quoted = match self.kind {
            Kind::MySql => format!("`{table}` WHERE `key`"),
            _ => format!("\"{table}\" WHERE key"),
        };
        self.scalar(&format!("SELECT count(*) FROM {quoted} = '{key}'"))
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// A unique SQL-safe name for this test's lock and record table.
pub fn unique(test: &str) -> String {
    format!("ko_{test}_{}_{:x}", std::process::id(), fastrand::u32(..))
}

/// One scenario: a temp dir with the shared output file the commands append
/// to, and the `kube-once lock` processes.
pub struct Scenario {
    pub dir: tempfile::TempDir,
    pub db: Db,
    pub name: String,
    pub processes: Vec<Process>,
}

pub struct Process {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Scenario {
    pub fn new(db: Db, test: &str) -> Scenario {
        Scenario { dir: tempfile::tempdir().expect("temp dir"), db, name: unique(test), processes: Vec::new() }
    }

    /// The file the commands append to.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn lines(&self) -> Vec<String> {
        fs::read_to_string(self.out()).unwrap_or_default().lines().map(str::to_string).collect()
    }

    /// `kube-once lock` with this scenario's lock name and record table,
    /// JSON logs, and `KUBE_ONCE_*` from the test environment cleared.
    pub fn lock(&self, args: &[&str], command: &[&str]) -> Command {
        let mut cmd = Command::new(super::pod_binary());
        for (var, _) in std::env::vars().filter(|(var, _)| var.starts_with("KUBE_ONCE_")) {
            cmd.env_remove(var);
        }
        cmd.env("DATABASE_URL", &self.db.url)
            .env("KUBE_ONCE_LOG_FORMAT", "json")
            .env("KUBE_ONCE_LOCK_NAME", &self.name)
            .env("KUBE_ONCE_RECORD_TABLE", &self.name)
            .env("KUBE_ONCE_POD_NAME", format!("pod-{}", self.processes.len()))
            .env("OUT", self.out())
            .current_dir(self.dir.path())
            .arg("lock")
            .args(args)
            .arg("--")
            .args(command);
        cmd
    }

    /// Starts `cmd` wrapped so that its exit is appended to the output file
    /// as `exited <code>` the moment it happens (ordering evidence).
    pub fn spawn(&mut self, cmd: Command) -> usize {
        let index = self.processes.len();
        let stderr = self.dir.path().join(format!("stderr-{index}.log"));
        let mut wrapped = Command::new("sh");
        wrapped
            .arg("-c")
            .arg(r#""$@"; code=$?; echo "exited $code" >> "$OUT"; exit $code"#)
            .arg("sh")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("stderr file"));
        for (var, value) in cmd.get_envs() {
            match value {
                Some(value) => wrapped.env(var, value),
                None => wrapped.env_remove(var),
            };
        }
        let child = wrapped.spawn().expect("spawn kube-once");
        self.processes.push(Process { child, stderr });
        index
    }

    /// Starts the binary directly (no wrapper), so the test can signal it.
    pub fn spawn_direct(&mut self, mut cmd: Command) -> usize {
        let index = self.processes.len();
        let stderr = self.dir.path().join(format!("stderr-{index}.log"));
        cmd.stdout(Stdio::null()).stderr(fs::File::create(&stderr).expect("stderr file"));
        let child = cmd.spawn().expect("spawn kube-once");
        self.processes.push(Process { child, stderr });
        index
    }

    pub fn wait(&mut self, index: usize) -> ExitStatus {
        let started = Instant::now();
        let process = &mut self.processes[index];
        loop {
            if let Some(status) = process.child.try_wait().expect("wait") {
                return status;
            }
            if started.elapsed() > DEADLINE {
                let _ = process.child.kill();
                panic!("process {index} still running after {DEADLINE:?}; its log:\n{}", self.stderr(index));
            }
            std::thread::sleep(super::wait::POLL); // wait-on-condition: poll interval of a loop with a deadline
        }
    }

    pub fn wait_all(&mut self) -> Vec<i32> {
        (0..self.processes.len()).map(|index| self.wait(index).code().unwrap_or(-1)).collect()
    }

    pub fn stderr(&self, index: usize) -> String {
        fs::read_to_string(&self.processes[index].stderr).unwrap_or_default()
    }

    /// The `event` fields of process `index`'s JSON log lines.
    pub fn events(&self, index: usize) -> Vec<String> {
        self.stderr(index)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|value| value.get("event").and_then(|e| e.as_str()).map(str::to_string))
            .collect()
    }

    pub fn all_logs(&self) -> String {
        (0..self.processes.len()).map(|index| format!("--- process {index}\n{}", self.stderr(index))).collect()
    }

    pub fn count_events(&self, event: &str) -> usize {
        (0..self.processes.len()).map(|index| self.events(index).iter().filter(|e| *e == event).count()).sum()
    }

    /// After every process raced over key `v1` with [`APPEND_AND_SLEEP`]:
    /// one process ran the command, the others waited for it and skipped;
    /// every one exited 0 after the command finished; one done-record.
    pub fn assert_ran_exactly_once(&mut self) {
        let processes = self.processes.len();
        let codes = self.wait_all();
        let logs = self.all_logs();
        assert!(codes.iter().all(|&code| code == 0), "exit codes {codes:?}\n{logs}");
        let lines = self.lines();
        assert_eq!(positions(&lines, "start").len(), 1, "exactly one run: {lines:?}");
        let end = positions(&lines, "end");
        assert_eq!(end.len(), 1, "{lines:?}");
        let exits = positions(&lines, "exited");
        assert_eq!(exits.len(), processes, "{lines:?}");
        assert!(exits.iter().all(|&exit| exit > end[0]), "a process exited before the command finished: {lines:?}");
        assert_eq!(self.count_events("ran"), 1, "{logs}");
        assert_eq!(self.count_events("skipped"), processes - 1, "{logs}");
        assert_eq!(self.db.records(&self.name, "v1"), 1);
    }
}

/// A command that marks its start and end in the scenario's output file,
/// taking long enough for the other processes to queue behind it.
pub const APPEND_AND_SLEEP: &[&str] = &["sh", "-c", r#"echo "start $$" >> "$OUT"; sleep 0.5; echo "end $$" >> "$OUT""#];

/// Which lines of the output file start with `prefix`.
pub fn positions(lines: &[String], prefix: &str) -> Vec<usize> {
    lines.iter().enumerate().filter(|(_, line)| line.starts_with(prefix)).map(|(i, _)| i).collect()
}

/// Waits for `condition` with the suite's deadline.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(super::wait::POLL); // wait-on-condition: poll interval of a loop with a deadline
    }
}

/// Whether `pid` is still a running (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// A throwaway server started by scripts/lib/databases.sh's own functions
/// (so there is one way to start one); stopped when dropped.
pub struct Throwaway {
    kind: Kind,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Throwaway {
    pub fn start(kind: Kind, port: u16) -> Throwaway {
        let dir = tempfile::tempdir().expect("temp dir");
        let function = match kind {
            Kind::Postgres => "start_postgres",
            Kind::MySql => "start_mariadb",
            Kind::Sqlite => unreachable!(),
        };
        let server = Throwaway { kind, dir, port };
        let status = databases_sh(&format!("{function} \"$1\" \"$2\""), &server.data(), port, &[]);
        assert!(status.success(), "{function} failed");
        server
    }

    /// A PostgreSQL serving `certs` that rejects TCP connections without TLS,
    /// so a connection that succeeds proves TLS was used.
    pub fn start_postgres_tls_only(port: u16, certs: &kube_once_server::certs::CertBundle) -> Throwaway {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        fs::write(&cert, &certs.cert_pem).expect("write tls.crt");
        // 0600: start_postgres opens this directory to the server's user.
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&key).expect("tls.key");
        std::io::Write::write_all(&mut file, certs.key_pem.as_bytes()).expect("write tls.key");
        let server = Throwaway { kind: Kind::Postgres, dir, port };
        let script = r#"start_postgres "$1" "$2" "$3" "$4""#;
        let status = databases_sh(script, &server.data(), port, &[cert.as_os_str(), key.as_os_str()]);
        assert!(status.success(), "start_postgres with TLS failed");
        server
    }

    /// A PostgreSQL where TCP connections authenticate with SCRAM: `user`
    /// (owner of database `test`) logs in with `password`; the Unix socket
    /// ([`Self::socket`]) trusts every connection.
    pub fn start_postgres_with_password(port: u16, user: &str, password: &str) -> Throwaway {
        let server = Throwaway { kind: Kind::Postgres, dir: tempfile::tempdir().expect("temp dir"), port };
        let script = r#"start_postgres_with_password "$1" "$2" "$3" "$4""#;
        let status = databases_sh(script, &server.data(), port, &[OsStr::new(user), OsStr::new(password)]);
        assert!(status.success(), "start_postgres_with_password failed");
        server
    }

    /// A MariaDB offering TLS with `certs` (it also accepts plain text, so
    /// only a verification that fails proves the certificate was checked).
    pub fn start_mariadb_tls(port: u16, certs: &kube_once_server::certs::CertBundle) -> Throwaway {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        fs::write(&cert, &certs.cert_pem).expect("write tls.crt");
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&key).expect("tls.key");
        std::io::Write::write_all(&mut file, certs.key_pem.as_bytes()).expect("write tls.key");
        let server = Throwaway { kind: Kind::MySql, dir, port };
        let status = databases_sh(
            r#"start_mariadb "$1" "$2" "$3" "$4""#,
            &server.data(),
            port,
            &[cert.as_os_str(), key.as_os_str()],
        );
        assert!(status.success(), "start_mariadb with TLS failed");
        server
    }

    /// The Unix socket: PostgreSQL's directory (`-k`), MariaDB's socket file.
    pub fn socket(&self) -> PathBuf {
        match self.kind {
            Kind::Postgres => self.data(),
            _ => self.data().join("mysqld.sock"),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    /// Stops the server the hard way (`pg_ctl -m immediate`, SIGTERM/SIGKILL
    /// for MariaDB): every session is cut.
    pub fn stop(&self) {
        let status = databases_sh(&format!("{} \"$1\"", self.stop_function()), &self.data(), self.port, &[]);
        assert!(status.success(), "stopping the throwaway server failed");
    }

    /// Starts a stopped server again on the same data and port (PostgreSQL:
    /// `pg_ctl restart` reuses the options of the first start; MariaDB:
    /// `start_mariadb` keeps an existing data directory).
    pub fn restart(&self) {
        let script = match self.kind {
            Kind::Postgres => {
                r#"bindir="$(postgres_bindir)" && _as_postgres "$bindir/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 restart >/dev/null 2>&1"#
            }
            _ => r#"start_mariadb "$1" "$2""#,
        };
        let status = databases_sh(script, &self.data(), self.port, &[]);
        assert!(status.success(), "restarting the throwaway server failed");
    }

    fn stop_function(&self) -> &'static str {
        match self.kind {
            Kind::Postgres => "stop_postgres",
            _ => "stop_mariadb",
        }
    }

    pub fn url(kind: Kind, port: u16) -> String {
        match kind {
            Kind::Postgres => format!("postgres://postgres@127.0.0.1:{port}/test"),
            _ => format!("mysql://root@127.0.0.1:{port}/test"),
        }
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = databases_sh(&format!("{} \"$1\"", self.stop_function()), &self.data(), self.port, &[]);
    }
}

/// Runs `script` after sourcing databases.sh, with `$1` = `dir`, `$2` =
/// `port` and `$3`… = `more`.
fn databases_sh(script: &str, dir: &Path, port: u16, more: &[&OsStr]) -> ExitStatus {
    let library = super::env::required("KUBE_ONCE_TEST_DATABASES_SH");
    Command::new("bash")
        .arg("-c")
        .arg(format!("source \"$0\" && {script}"))
        .arg(library)
        .arg(dir)
        .arg(port.to_string())
        .args(more)
        .status()
        .expect("run bash")
}
