//! Hardening of `kube-once serve`, against the real binary over real TLS:
//! slowloris, a client that never finishes the TLS handshake,
//! many idle connections, the request timeout, the body limit, certificate
//! rotation under load and graceful drain on SIGTERM.
//!
//! Deadlines only stop waiting; no test asserts how fast anything is.

// Test helpers fail the test loudly; clippy's in-test allowance does not reach helpers.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kube_once_server::certs::CertBundle;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use rustls::pki_types::ServerName;
use support::net::{free_port, loopback};
use support::wait::{DEADLINE, until as wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const REVIEW: &str = include_str!("fixtures/perf/review.json");
const REVIEW_UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";
/// The name the test clients verify the server's certificate for.
const HOST: &str = "localhost";

// ---------------------------------------------------------------- fixtures

fn bundle() -> CertBundle {
    support::server::bundle_for(&[HOST])
}

/// The CA bundles of `trusted`, as a client's trust anchors.
fn cas<'a>(trusted: &[&'a CertBundle]) -> Vec<&'a str> {
    trusted.iter().map(|bundle| bundle.ca_pem.as_str()).collect()
}

/// Certificate files laid out like a Kubernetes Secret volume: `tls.crt`
/// and `tls.key` are symlinks through `..data`, and an update swaps
/// `..data` atomically (what a file watch on tls.crt misses).
struct SecretVolume {
    dir: tempfile::TempDir,
    version: usize,
}

impl SecretVolume {
    fn new(bundle: &CertBundle) -> Self {
        let volume = Self { dir: tempfile::tempdir().expect("temp dir"), version: 0 };
        volume.write_version(bundle);
        std::os::unix::fs::symlink("..v0", volume.path("..data")).expect("..data symlink");
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), volume.path(file)).expect("file symlink");
        }
        volume
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_version(&self, bundle: &CertBundle) {
        let dir = self.path(&format!("..v{}", self.version));
        std::fs::create_dir(&dir).expect("version dir");
        std::fs::write(dir.join("tls.crt"), &bundle.cert_pem).expect("write tls.crt");
        std::fs::write(dir.join("tls.key"), &bundle.key_pem).expect("write tls.key");
    }

    fn rotate(&mut self, bundle: &CertBundle) {
        self.version += 1;
        self.write_version(bundle);
        let staged = self.path("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{}", self.version), &staged).expect("staged symlink");
        std::fs::rename(&staged, self.path("..data")).expect("swap ..data");
    }
}

/// A running `kube-once serve`, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Server {
    fn start(volume: &SecretVolume, extra_args: &[&str]) -> Self {
        Self::start_with(Command::new(env!("CARGO_BIN_EXE_kube-once")), volume, extra_args)
    }

    /// Started the way systemd and containerd 2 start processes: with a soft
    /// limit of 1024 open files (the hard limit stays as it is).
    fn start_with_default_soft_fd_limit(volume: &SecretVolume, extra_args: &[&str]) -> Self {
        let mut command = Command::new("sh");
        command.args(["-c", "ulimit -Sn 1024 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_kube-once")]);
        Self::start_with(command, volume, extra_args)
    }

    fn start_with(mut command: Command, volume: &SecretVolume, extra_args: &[&str]) -> Self {
        let port = free_port();
        let log_dir = tempfile::tempdir().expect("temp dir");
        let log = log_dir.path().join("serve.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--preview-listen", "127.0.0.1:0"])
            .arg("--tls-cert-file")
            .arg(volume.path("tls.crt"))
            .arg("--tls-key-file")
            .arg(volume.path("tls.key"))
            .args(extra_args)
            .env("KUBE_ONCE_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn kube-once serve");
        Self { child, port, log, _log_dir: log_dir }
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id().expect("server still running") as i32)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.port)
    }

    /// Connections to the server that are established on its side (Linux
    /// /proc/net/tcp): accepted connections it has not closed. Unlike a count
    /// of its file descriptors, this does not see a probe's connection that
    /// the server is still tearing down.
    fn established_connections(&self) -> usize {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
        let local = format!("0100007F:{:04X}", self.port);
        let established = |line: &&str| {
            let mut fields = line.split_whitespace();
            // sl, local_address, rem_address, st ("01" is ESTABLISHED)
            fields.nth(1) == Some(local.as_str()) && fields.nth(1) == Some("01")
        };
        table.lines().skip(1).filter(established).count()
    }

    /// Waits until `/readyz` answers 200, probing on fresh connections.
    async fn wait_ready(&self, trusted: &[&CertBundle]) {
        let probe = client(self, trusted, false);
        wait_for("the server to become ready", || async {
            matches!(probe.get(self.url("/readyz")).send().await, Ok(response) if response.status().is_success())
        })
        .await
        .unwrap_or_else(|message| panic!("{message}\nserver log:\n{}", self.log()));
    }
}

/// An HTTPS client that verifies the server as `localhost` against `trusted` CAs.
///
/// `keep_alive: false` opens a fresh connection per request: what every probe
/// uses. A pooled connection may be closed by the server's idle timeout (the
/// header-read timeout, 1 s in some tests) just as the next request is sent
/// on it, which fails that request (`peer closed connection without sending
/// TLS close_notify`) on a busy machine. Only the load tests keep
/// connections alive, on purpose and with timeouts far above their pauses.
fn client(server: &Server, trusted: &[&CertBundle], keep_alive: bool) -> reqwest::Client {
    let builder = support::tls::https_client(&cas(trusted), HOST, loopback(server.port)).expect("HTTPS client");
    let builder = builder.timeout(DEADLINE);
    let builder = if keep_alive { builder } else { builder.pool_max_idle_per_host(0) };
    builder.build().expect("HTTPS client")
}

/// A raw TLS connection, for clients that misbehave on purpose.
async fn connect(server: &Server, trusted: &[&CertBundle]) -> TlsStream<TcpStream> {
    support::tls::connect(loopback(server.port), HOST, &cas(trusted)).await.expect("TLS connection")
}

fn serial_of_der(der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("X.509 certificate");
    cert.tbs_certificate.raw_serial().to_vec()
}

/// Serial number of the certificate the server presents to a new connection.
async fn served_serial(server: &Server, trusted: &[&CertBundle]) -> Option<Vec<u8>> {
    let served = timeout(DEADLINE, support::tls::served_leaf(loopback(server.port), HOST, &cas(trusted))).await;
    served.ok()?.ok().map(|leaf| serial_of_der(&leaf))
}

/// POST the fixture review; Ok when the reply is 200 and echoes the uid.
async fn post_review(client: &reqwest::Client, url: &str) -> Result<(), reqwest::Error> {
    let response =
        client.post(url).header("content-type", "application/json").body(REVIEW).send().await?.error_for_status()?;
    let body = response.text().await?;
    assert!(body.contains(REVIEW_UID), "reply does not echo the request uid: {body}");
    Ok(())
}

/// Reads until the peer closes the connection (EOF or reset); returns what was read.
async fn read_to_close<S: AsyncReadExt + Unpin>(stream: &mut S) -> Result<Vec<u8>, String> {
    let mut reply = Vec::new();
    match timeout(DEADLINE, stream.read_to_end(&mut reply)).await {
        Ok(_) => Ok(reply),
        Err(_) => Err(format!("the server kept the connection open for {DEADLINE:?}")),
    }
}

/// The status code of an HTTP/1.1 reply, if it starts with a status line.
fn status_code(reply: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(reply);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

// ---------------------------------------------------------------- limits

/// A ready server whose header-read timeout, 1 s, also bounds TLS handshakes
/// and idle keep-alive connections; and the client that checks it still
/// serves after an attack. That client opens a connection per request: one
/// kept from before the attack would idle for about as long as the attack
/// lasts, so the server may be closing it just as the check is sent.
async fn start_with_a_1s_header_timeout(volume: &SecretVolume, ca: &CertBundle) -> (Server, reqwest::Client) {
    let server = Server::start(volume, &["--header-read-timeout", "1s"]);
    server.wait_ready(&[ca]).await;
    let http = client(&server, &[ca], false);
    (server, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_off_by_the_header_read_timeout() {
    let ca = bundle();
    let volume = SecretVolume::new(&ca);
    let (server, http) = start_with_a_1s_header_timeout(&volume, &ca).await;

    let mut stream = connect(&server, &[&ca]).await;
    stream.write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.expect("write");
    let deadline = Instant::now() + DEADLINE;
    let closed = loop {
        assert!(Instant::now() < deadline, "a client dribbling headers was never cut off\n{}", server.log());
        // One header byte at a time, never finishing: the attack, not a wait.
        if stream.write_all(b"a").await.is_err() || stream.flush().await.is_err() {
            break true;
        }
        let mut byte = [0u8; 1];
        match timeout(Duration::from_millis(200), stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => break true, // an error reply (408) before the close also ends the attack
            Err(_) => continue,
        }
    };
    assert!(closed);
    post_review(&http, &server.url("/mutate")).await.expect("service after the slowloris client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_the_tls_handshake_is_closed() {
    let ca = bundle();
    let volume = SecretVolume::new(&ca);
    let (server, http) = start_with_a_1s_header_timeout(&volume, &ca).await;

    // TCP connected, then silence: each such socket would pin a file descriptor forever.
    let mut silent = TcpStream::connect(("127.0.0.1", server.port)).await.expect("TCP connect");
    let reply = read_to_close(&mut silent).await.unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert!(reply.is_empty() || reply.first() == Some(&0x15), "expected a close or a TLS alert, got {reply:?}");
    post_review(&http, &server.url("/mutate")).await.expect("service after the silent client");
}

/// 2,000 idle keep-alive connections (as pooled by API servers) hold file
/// descriptors in the server but do not stop it from serving a new client,
/// even when it starts with the common soft limit of 1024 open files (it
/// raises it). 10,000 were checked with `bench/load.sh idle`
/// (docs/dev/performance.md, "Hardening").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_connections_do_not_break_service() {
    const IDLE: usize = 2_000;
    let ca = bundle();
    let volume = SecretVolume::new(&ca);
    // Idle connections must stay open for the whole test, whatever the machine's speed.
    let server = Server::start_with_default_soft_fd_limit(&volume, &["--header-read-timeout", "10m"]);
    server.wait_ready(&[&ca]).await;
    // This test process holds the client side of every connection.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raise this test's open files limit");
    }

    let connector = TlsConnector::from(Arc::new(support::tls::client_config(&cas(&[&ca])).expect("TLS client")));
    let mut opening = JoinSet::new();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        let connector = connector.clone();
        let port = server.port;
        opening.spawn(async move {
            let open = async {
                let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
                let name = ServerName::try_from(HOST).map_err(std::io::Error::other)?;
                let mut tls = connector.connect(name, tcp).await?;
                tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
                let mut reply = [0u8; 512];
                let read = tls.read(&mut reply).await?;
                Ok::<_, std::io::Error>((tls, status_code(&reply[..read])))
            };
            // A server out of descriptors leaves connections unanswered in its backlog.
            timeout(DEADLINE, open).await.map_err(std::io::Error::other)?
        });
        // Bounded concurrency: the client side must not be the bottleneck being tested.
        if opening.len() >= 64 {
            collect_idle(&mut opening, &mut idle).await;
        }
    }
    while !opening.is_empty() {
        collect_idle(&mut opening, &mut idle).await;
    }
    assert_eq!(idle.len(), IDLE);

    post_review(&client(&server, &[&ca], false), &server.url("/mutate"))
        .await
        .unwrap_or_else(|e| panic!("new request with {IDLE} idle connections open: {e}\n{}", server.log()));
    // Each was answered, so the server accepted it; still established on its side, so it still holds it.
    let held = server.established_connections();
    assert!(held >= IDLE, "the {IDLE} idle connections should still be open in the server, {held} are");
}

async fn collect_idle(
    opening: &mut JoinSet<std::io::Result<(TlsStream<TcpStream>, Option<u16>)>>,
    idle: &mut Vec<TlsStream<TcpStream>>,
) {
    let joined = opening.join_next().await.expect("a task");
    let (stream, status) = joined.expect("task").expect("open an idle connection");
    assert_eq!(status, Some(200), "healthz on an idle connection");
    idle.push(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_never_arrives_times_out() {
    let ca = bundle();
    let volume = SecretVolume::new(&ca);
    let server = Server::start(&volume, &["--request-timeout", "1s", "--header-read-timeout", "10m"]);
    server.wait_ready(&[&ca]).await;

    let mut stream = connect(&server, &[&ca]).await;
    stream
        .write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .expect("write");
    stream.flush().await.expect("flush");
    let mut reply = vec![0u8; 4096];
    let read = timeout(DEADLINE, stream.read(&mut reply))
        .await
        .unwrap_or_else(|_| panic!("no reply to a stalled request\n{}", server.log()))
        .expect("read");
    let status = status_code(&reply[..read]);
    assert!(
        matches!(status, Some(400..=599)),
        "expected an error status, got {:?}",
        String::from_utf8_lossy(&reply[..read])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_up_to_7_mib_are_read_and_larger_ones_refused() {
    let ca = bundle();
    let volume = SecretVolume::new(&ca);
    let server = Server::start(&volume, &[]);
    server.wait_ready(&[&ca]).await;
    let http = client(&server, &[&ca], false);

    // A review padded with a big annotation to just under 7 MiB is read (and answered).
    let mut review: serde_json::Value = serde_json::from_str(REVIEW).expect("fixture");
    review["request"]["object"]["metadata"]["annotations"]["example.com/padding"] =
        serde_json::Value::String("x".repeat(7 * 1024 * 1024 - REVIEW.len() - 1024));
    let under = serde_json::to_vec(&review).expect("serialize");
    assert!(under.len() < 7 * 1024 * 1024);
    let response = http.post(server.url("/mutate")).body(under).send().await.expect("POST just under the limit");
    assert_eq!(response.status(), 200);

    let over = vec![b' '; 7 * 1024 * 1024 + 1];
    let response = http.post(server.url("/mutate")).body(over).send().await.expect("POST over the limit");
    assert_eq!(response.status(), 413);
}

// ---------------------------------------------------------------- rotation

/// Load tasks sending reviews: how many succeeded, and the errors they met.
struct Load {
    /// Draining: a refused connection means the listener is gone, so the
    /// request was never sent; the task ends instead of counting a failure.
    refused_ends_load: bool,
    stop: AtomicBool,
    ok: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Load {
    fn new(refused_ends_load: bool) -> Arc<Self> {
        Arc::new(Self {
            refused_ends_load,
            stop: AtomicBool::new(false),
            ok: AtomicUsize::new(0),
            failures: Mutex::default(),
        })
    }

    /// Keeps POSTing reviews to `url` until told to stop.
    fn spawn(self: &Arc<Self>, tasks: &mut JoinSet<()>, client: reqwest::Client, url: String) {
        let load = Arc::clone(self);
        tasks.spawn(async move {
            while !load.stop.load(Ordering::Relaxed) {
                match post_review(&client, &url).await {
                    Ok(()) => {
                        load.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) if error.is_connect() && load.refused_ends_load => break,
                    Err(error) => load.failures.lock().await.push(format!("{error:?}")),
                }
            }
        });
    }

    async fn wait_for_progress(&self, what: &str) {
        let seen = self.ok.load(Ordering::Relaxed);
        wait_for(what, || async { self.ok.load(Ordering::Relaxed) > seen + 10 }).await.expect("load progresses");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_fails_no_request() {
    let bundles: Vec<CertBundle> = (0..4).map(|_| bundle()).collect();
    let trusted: Vec<&CertBundle> = bundles.iter().collect();
    let mut volume = SecretVolume::new(&bundles[0]);
    let server = Server::start(&volume, &["--cert-poll-interval", "100ms"]);
    server.wait_ready(&trusted).await;
    let serials: BTreeSet<Vec<u8>> = bundles.iter().map(|b| serial_of_der(&support::tls::leaf(b))).collect();
    assert_eq!(serials.len(), 4, "every generated certificate has its own serial");

    let load = Load::new(false);
    let mut tasks = JoinSet::new();
    for keep_alive in [true, true, false, false] {
        load.spawn(&mut tasks, client(&server, &trusted, keep_alive), server.url("/mutate"));
    }
    load.wait_for_progress("load before the first rotation").await;

    for (version, bundle) in bundles.iter().enumerate().skip(1) {
        volume.rotate(bundle);
        let expected = serial_of_der(&support::tls::leaf(bundle));
        wait_for(&format!("rotation {version} to be served"), || async {
            served_serial(&server, &trusted).await.as_ref() == Some(&expected)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        load.wait_for_progress(&format!("load after rotation {version}")).await;
    }

    load.stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let failures = load.failures.lock().await;
    assert!(failures.is_empty(), "{} requests failed during rotation: {:?}", failures.len(), &failures[..]);
}

// ---------------------------------------------------------------- drain

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits() {
    let ca = bundle();
    let volume = SecretVolume::new(&ca);
    let mut server = Server::start(&volume, &["--grace-period", "5s", "--header-read-timeout", "10m"]);
    server.wait_ready(&[&ca]).await;
    let probe = client(&server, &[&ca], false);

    // A request already sent in part when SIGTERM arrives: it must complete.
    let mut in_flight = connect(&server, &[&ca]).await;
    let (head, tail) = REVIEW.split_at(REVIEW.len() / 2);
    in_flight
        .write_all(
            format!(
                "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
                REVIEW.len()
            )
            .as_bytes(),
        )
        .await
        .expect("write the first half");
    in_flight.flush().await.expect("flush");

    let load = Load::new(true);
    let mut tasks = JoinSet::new();
    for keep_alive in [true, true, false] {
        load.spawn(&mut tasks, client(&server, &[&ca], keep_alive), server.url("/mutate"));
    }
    load.wait_for_progress("load before SIGTERM").await;

    nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    wait_for("/readyz to fail after SIGTERM", || async {
        !matches!(probe.get(server.url("/readyz")).send().await, Ok(r) if r.status().is_success())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let ok_at_not_ready = load.ok.load(Ordering::Relaxed);

    in_flight.write_all(tail.as_bytes()).await.expect("write the second half");
    in_flight.flush().await.expect("flush");
    let mut reply = vec![0u8; 64 * 1024];
    let read = timeout(DEADLINE, in_flight.read(&mut reply)).await.expect("reply in time").expect("read");
    let reply = String::from_utf8_lossy(&reply[..read]);
    assert_eq!(status_code(reply.as_bytes()), Some(200), "in-flight request: {reply}");
    assert!(reply.contains(REVIEW_UID), "in-flight request: {reply}");

    let status = timeout(DEADLINE, server.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the server did not exit after SIGTERM\n{}", server.log()))
        .expect("wait");
    assert!(status.success(), "exit status {status}\n{}", server.log());

    while tasks.join_next().await.is_some() {}
    let failures = load.failures.lock().await;
    assert!(failures.is_empty(), "requests already sent failed during drain: {:?}\n{}", &failures[..], server.log());
    assert!(load.ok.load(Ordering::Relaxed) > ok_at_not_ready, "requests were served during the grace period");
}
