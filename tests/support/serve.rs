//! The real `kube-once serve` binary as a child process, for what only the
//! shipped binary shows (limits, hardening, signals, the chart's own
//! arguments). One way to start it for every test binary:
//!
//! ```ignore
//! let server = Serve::new().args(["--admission-memory", "1Mi"]).start().await;
//! let mut tls = server.connect().await?; // or server.tcp() for raw TCP
//! ```
//!
//! It listens on `127.0.0.1:0` and the address is read back from its
//! "serving" log line (no free-port race), serves a fresh certificate for
//! `localhost` from files laid out like a Secret volume (rotatable),
//! writes its log to a file ([`Server::log`] for failure messages), is
//! ready when `/readyz` answers 200 over TLS verified against its CA, and
//! is killed when the [`Server`] is dropped. In-process servers are
//! `support::server`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};

use anyhow::{Context, Result, bail};
use kube_once_server::certs::CertBundle;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};
use tokio_rustls::client::TlsStream;

use super::http;
use super::wait::{DEADLINE, POLL};

/// The name the default certificate is for, and the clients verify.
pub const HOST: &str = "localhost";

/// How to start `serve`: build it, then [`Serve::start`].
pub struct Serve {
    /// The whole command line after the binary; `None`: the defaults plus `extra`.
    argv: Option<Vec<OsString>>,
    extra: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    env_clear: bool,
    bundle: Option<CertBundle>,
    host: String,
    trust: Vec<String>,
    preview: bool,
    probe: bool,
    soft_fd_limit: Option<u64>,
    log: Option<PathBuf>,
}

impl Default for Serve {
    fn default() -> Self {
        Self::new()
    }
}

impl Serve {
    /// `serve --listen 127.0.0.1:0 --no-preview --tls-cert-file … --tls-key-file …`
    /// with a fresh certificate for [`HOST`], text logs.
    pub fn new() -> Self {
        Self {
            argv: None,
            extra: Vec::new(),
            env: vec![("KUBE_ONCE_LOG_FORMAT".into(), "text".into())],
            env_remove: Vec::new(),
            env_clear: false,
            bundle: None,
            host: HOST.to_owned(),
            trust: Vec::new(),
            preview: false,
            probe: true,
            soft_fd_limit: None,
            log: None,
        }
    }

    /// Exactly `argv` after the binary (`serve` first), as a Deployment
    /// runs it: no default flag, no certificate of the harness. It must
    /// listen on a loopback address (port 0 is best), and [`Serve::trust`]
    /// says how to verify it, unless [`Serve::without_probe`].
    pub fn with_args<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self { argv: Some(argv.into_iter().map(Into::into).collect()), env: Vec::new(), ..Self::new() }
    }

    /// Adds flags after the defaults (`--admission-memory 1Mi`, ...); a
    /// flag given twice is refused by clap, so these are for flags the
    /// defaults do not set.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable of the server.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Sets environment variables of the server.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env.extend(vars.into_iter().map(|(name, value)| (name.into(), value.into())));
        self
    }

    /// Leaves an environment variable of the tests out of the server's.
    pub fn env_remove(mut self, name: impl Into<OsString>) -> Self {
        self.env_remove.push(name.into());
        self
    }

    /// Starts the server with no environment but what [`Serve::env`] sets.
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    /// Serves `bundle` (it must name [`HOST`]) instead of a fresh certificate.
    pub fn cert(mut self, bundle: &CertBundle) -> Self {
        self.bundle = Some(bundle.clone());
        self
    }

    /// Verifies the server as `host` against `ca_pem` (the readiness probe,
    /// [`Server::connect`]); with [`Serve::new`], in place of the CA of its own certificate.
    pub fn trust(mut self, host: &str, ca_pem: impl AsRef<[u8]>) -> Self {
        self.host = host.to_owned();
        self.trust.push(String::from_utf8_lossy(ca_pem.as_ref()).into_owned());
        self
    }

    /// Also starts the plain-HTTP preview listener, on a loopback port of its own.
    pub fn preview(mut self) -> Self {
        self.preview = true;
        self
    }

    /// Ready once it logs its address, without probing `/readyz` (a server
    /// whose certificate the test learns only later, e.g. `--self-managed`).
    pub fn without_probe(mut self) -> Self {
        self.probe = false;
        self
    }

    /// Starts it as systemd and containerd 2 start processes: with this soft
    /// limit of open files (the hard limit stays as it is).
    pub fn soft_fd_limit(mut self, limit: u64) -> Self {
        self.soft_fd_limit = Some(limit);
        self
    }

    /// Writes its log to `path` (default: a file in a temporary directory).
    pub fn log_file(mut self, path: &Path) -> Self {
        self.log = Some(path.to_owned());
        self
    }

    /// Starts it and waits until it is ready; panics with the reason and its log.
    pub async fn start(self) -> Server {
        self.try_start().await.unwrap_or_else(|error| panic!("{error:#}"))
    }

    /// Starts it and waits until it is ready, within [`DEADLINE`]; Err with
    /// its log when it exits first or does not get ready in time.
    pub async fn try_start(self) -> Result<Server> {
        let dir = tempfile::tempdir().context("temporary directory for serve")?;
        let log = self.log.clone().unwrap_or_else(|| dir.path().join("serve.log"));
        let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let (mut command, volume) = self.command(dir.path())?;
        let mut trust = self.trust.clone();
        if let (Some(volume), true) = (&volume, trust.is_empty()) {
            trust.push(volume.bundle.ca_pem.clone());
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start kube-once serve")?;
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            preview_addr: None,
            host: self.host.clone(),
            trust,
            volume,
            log,
            _dir: dir,
        };
        server.wait_ready(self.probe).await?;
        Ok(server)
    }

    /// Runs it to its exit (a start-up refusal), within [`DEADLINE`].
    pub async fn output(self) -> Output {
        let dir = tempfile::tempdir().expect("temporary directory for serve");
        let (mut command, _volume) = self.command(dir.path()).expect("the serve command");
        let output = command.stdin(Stdio::null()).kill_on_drop(true).output();
        timeout(DEADLINE, output)
            .await
            .unwrap_or_else(|_| panic!("kube-once serve did not exit within {DEADLINE:?}"))
            .expect("run kube-once serve")
    }

    /// The command, and the certificate files it serves (in `dir`) when the defaults apply.
    fn command(&self, dir: &Path) -> Result<(Command, Option<SecretVolume>)> {
        let binary = super::binary();
        let mut command = match self.soft_fd_limit {
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell.arg("-c").arg(format!("ulimit -Sn {limit} && exec \"$0\" \"$@\"")).arg(&binary);
                shell
            }
            None => Command::new(&binary),
        };
        let volume = match &self.argv {
            Some(argv) => {
                command.args(argv);
                None
            }
            None => {
                let bundle = self.bundle.clone().unwrap_or_else(|| super::server::bundle_for(&[HOST]));
                let volume = SecretVolume::new(dir.join("tls"), bundle)?;
                command.args(["serve", "--listen", "127.0.0.1:0"]);
                match self.preview {
                    true => command.args(["--preview-listen", "127.0.0.1:0"]),
                    false => command.arg("--no-preview"),
                };
                command.arg("--tls-cert-file").arg(volume.path("tls.crt"));
                command.arg("--tls-key-file").arg(volume.path("tls.key"));
                Some(volume)
            }
        };
        command.args(&self.extra);
        if self.env_clear {
            command.env_clear();
        }
        // `serve` watches pods and writes Events when it finds a Kubernetes
        // API: never the cluster of whoever runs the tests. A test that
        // wants an API gives its own KUBECONFIG (`.env`, applied last).
        command.env("KUBECONFIG", dir.join("no-kubeconfig")).env_remove("KUBERNETES_SERVICE_HOST");
        for name in &self.env_remove {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        Ok((command, volume))
    }
}

/// A running `kube-once serve`, killed when dropped.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    preview_addr: Option<SocketAddr>,
    host: String,
    trust: Vec<String>,
    volume: Option<SecretVolume>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// The admission listener (TLS).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The plain-HTTP preview listener, when started with [`Serve::preview`].
    pub fn preview_addr(&self) -> Option<SocketAddr> {
        self.preview_addr
    }

    /// The name clients verify the certificate for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The CA bundles (PEM) a client trusts to reach it.
    pub fn trust(&self) -> &[String] {
        &self.trust
    }

    /// `https://<host>:<port><path>`, for a client that resolves the host to [`Server::addr`].
    pub fn url(&self, path: &str) -> String {
        format!("https://{}:{}{path}", self.host, self.port())
    }

    /// Its log so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        let id = self.child.id().expect("the server is still running");
        nix::unistd::Pid::from_raw(i32::try_from(id).expect("a pid"))
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("the status of kube-once serve")
    }

    /// Waits for it to exit (after a signal), within [`DEADLINE`].
    pub async fn exit_status(&mut self) -> ExitStatus {
        match timeout(DEADLINE, self.child.wait()).await {
            Ok(status) => status.expect("wait for kube-once serve"),
            Err(_) => panic!("the server did not exit within {DEADLINE:?}\n{}", self.log()),
        }
    }

    /// Swaps the served certificate files as the kubelet updates a Secret
    /// volume (the `..data` symlink); the new CA is trusted from then on.
    pub fn rotate(&mut self, bundle: &CertBundle) {
        let volume = self.volume.as_mut().expect("rotate: the server serves the harness's certificate files");
        volume.rotate(bundle).expect("rotate the certificate files");
        self.trust.push(bundle.ca_pem.clone());
    }

    /// A raw TCP connection to the admission listener.
    pub async fn tcp(&self) -> std::io::Result<TcpStream> {
        TcpStream::connect(self.addr).await
    }

    /// A TLS connection verified against [`Server::trust`]; Err when the
    /// server closes it during the handshake.
    pub async fn connect(&self) -> Result<TlsStream<TcpStream>> {
        super::tls::connect(self.addr, &self.host, &self.trust).await
    }

    /// An HTTPS client of it, verified against [`Server::trust`], with
    /// [`DEADLINE`] as timeout; `keep_alive: false` opens a fresh connection per request.
    pub fn client(&self, keep_alive: bool) -> reqwest::Client {
        self.client_trusting(&self.trust, keep_alive)
    }

    /// [`Server::client`] trusting `ca_bundles` (PEM) instead: CAs it will
    /// serve after a [`Server::rotate`], or a stranger's.
    pub fn client_trusting(&self, ca_bundles: &[impl AsRef<[u8]>], keep_alive: bool) -> reqwest::Client {
        let builder = super::tls::https_client(ca_bundles, &self.host, self.addr).expect("HTTPS client");
        let builder = builder.timeout(DEADLINE);
        let builder = if keep_alive { builder } else { builder.pool_max_idle_per_host(0) };
        builder.build().expect("HTTPS client")
    }

    /// One request on a fresh TLS connection (`connection: close`); the whole reply.
    pub async fn request(&self, method: &str, path: &str, body: &str) -> Result<Vec<u8>> {
        let mut tls = self.connect().await?;
        Ok(http::exchange(&mut tls, &http::request(method, path, body)).await)
    }

    /// Connections to it that are established on its side (Linux
    /// /proc/net/tcp): accepted connections it has not closed. Unlike a count
    /// of its file descriptors, this does not see a probe's connection that
    /// the server is still tearing down.
    pub fn established_connections(&self) -> usize {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
        let local = format!("0100007F:{:04X}", self.port());
        let established = |line: &&str| {
            let mut fields = line.split_whitespace();
            // sl, local_address, rem_address, st ("01" is ESTABLISHED)
            fields.nth(1) == Some(local.as_str()) && fields.nth(1) == Some("01")
        };
        table.lines().skip(1).filter(established).count()
    }

    /// Until its "serving" line gives the address, then (with `probe`)
    /// until `/readyz` answers 200; Err with its log when it exits first.
    async fn wait_ready(&mut self, probe: bool) -> Result<()> {
        let deadline = Instant::now() + DEADLINE;
        let mut last = String::from("no \"serving\" log line yet");
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("kube-once serve exited ({status}) before it was ready; its log:\n{}", self.log());
            }
            if self.addr.port() == 0
                && let Some((addr, preview)) = self.log().lines().find_map(serving_line)
            {
                (self.addr, self.preview_addr) = (addr, preview);
                if !probe {
                    return Ok(());
                }
            }
            if self.addr.port() != 0 {
                // A server that accepts and then says nothing must not outlast the deadline.
                let left = deadline.saturating_duration_since(Instant::now()).max(POLL);
                match timeout(left, self.request("GET", "/readyz", "")).await {
                    Ok(Ok(reply)) if http::status_code(&reply) == Some(200) => return Ok(()),
                    Ok(Ok(reply)) => last = format!("/readyz answered {:?}", String::from_utf8_lossy(&reply)),
                    Ok(Err(error)) => last = format!("/readyz: {error:#}"),
                    Err(_) => last = "/readyz: no answer".to_owned(),
                }
            }
            if Instant::now() > deadline {
                bail!("kube-once serve not ready after {DEADLINE:?} (last: {last}); its log:\n{}", self.log());
            }
            tokio::time::sleep(POLL).await; // wait-on-condition: poll interval of a loop with a deadline
        }
    }
}

/// The addresses in the server's "serving" log line (text or JSON), if `line` is it.
fn serving_line(line: &str) -> Option<(SocketAddr, Option<SocketAddr>)> {
    // The preview address as logged: plain, and absent without a preview listener.
    let preview = |text: &str| -> Option<SocketAddr> { text.parse().ok() };
    if let Ok(entry) = serde_json::from_str::<Value>(line) {
        let fields = if entry["fields"].is_object() { &entry["fields"] } else { &entry };
        if fields["message"] != "serving" {
            return None;
        }
        let addr = fields["listen"].as_str()?.parse().ok()?;
        return Some((addr, fields["preview_listen"].as_str().and_then(preview)));
    }
    let plain = strip_ansi(line);
    let words: Vec<&str> = plain.split_whitespace().collect();
    if !words.contains(&"serving") {
        return None;
    }
    let field = |name: &str| words.iter().find_map(|word| word.strip_prefix(name)?.strip_prefix('='));
    let addr = field("listen")?.parse().ok()?;
    Some((addr, field("preview_listen").and_then(preview)))
}

/// `text` without terminal colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Certificate files laid out like a Kubernetes Secret volume: `tls.crt`
/// and `tls.key` are symlinks through `..data`, and an update swaps
/// `..data` atomically (what a file watch on tls.crt misses).
struct SecretVolume {
    dir: PathBuf,
    version: usize,
    bundle: CertBundle,
}

impl SecretVolume {
    fn new(dir: PathBuf, bundle: CertBundle) -> Result<Self> {
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let volume = Self { dir, version: 0, bundle };
        volume.write_version(&volume.bundle)?;
        std::os::unix::fs::symlink("..v0", volume.path("..data")).context("..data symlink")?;
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), volume.path(file)).context("file symlink")?;
        }
        Ok(volume)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write_version(&self, bundle: &CertBundle) -> Result<()> {
        let dir = self.path(&format!("..v{}", self.version));
        std::fs::create_dir(&dir).context("version directory")?;
        std::fs::write(dir.join("tls.crt"), &bundle.cert_pem).context("write tls.crt")?;
        std::fs::write(dir.join("tls.key"), &bundle.key_pem).context("write tls.key")?;
        Ok(())
    }

    fn rotate(&mut self, bundle: &CertBundle) -> Result<()> {
        self.version += 1;
        self.write_version(bundle)?;
        let staged = self.path("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{}", self.version), &staged).context("staged symlink")?;
        std::fs::rename(&staged, self.path("..data")).context("swap ..data")?;
        self.bundle = bundle.clone();
        Ok(())
    }
}
