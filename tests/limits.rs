//! Resource bounds of `kube-once serve`, against the real binary over real
//! TLS: the admission memory budget answers 429/503 with a
//! reason when saturated, the connection cap closes connections past it,
//! and /preview stays on loopback unless told otherwise.
//!
//! Deadlines only stop waiting; no test asserts how fast anything is.
//! Memory itself is measured by bench/memory.sh, not here.

// Test helpers fail the test loudly; clippy's in-test allowance does not reach helpers.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use kube_once_server::certs::{self, CertBundle};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const REVIEW: &str = include_str!("fixtures/perf/review.json");
/// Longest we wait for anything; only there so a broken server fails the
/// test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("free port").port()
}

/// A running `kube-once serve`, killed when dropped.
struct Server {
    _child: Child,
    port: u16,
    bundle: CertBundle,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(extra_args: &[&str]) -> Self {
        let bundle = certs::generate(&["localhost".to_owned()], Duration::from_secs(3600)).expect("certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("tls.crt"), &bundle.cert_pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), &bundle.key_pem).unwrap();
        let log = dir.path().join("serve.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_kube-once"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--no-preview"])
            .arg("--tls-cert-file")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key-file")
            .arg(dir.path().join("tls.key"))
            .args(extra_args)
            .env("KUBE_ONCE_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn kube-once serve");
        let server = Self { _child: child, port, bundle, log, _dir: dir };
        let ready = wait_for("the server to answer /readyz", || async {
            match timeout(DEADLINE, server.connect()).await {
                Ok(Ok(mut tls)) => status_code(&exchange(&mut tls, &request("GET", "/readyz", "")).await) == Some(200),
                _ => false,
            }
        })
        .await;
        ready.unwrap_or_else(|message| panic!("{message}\nserver log:\n{}", server.log()));
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A TLS connection; Err when the server closes it during the handshake.
    async fn connect(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.bundle.ca_pem.as_bytes()).unwrap();
        roots.add(pem.contents.into()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost").unwrap(), tcp).await
    }

    async fn metrics(&self) -> String {
        let mut tls = self.connect().await.expect("connect for /metrics");
        String::from_utf8_lossy(&exchange(&mut tls, &request("GET", "/metrics", "")).await).into_owned()
    }
}

async fn wait_for<F, Fut>(what: &str, mut condition: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        if Instant::now() > deadline {
            return Err(format!("gave up waiting for {what} after {DEADLINE:?}"));
        }
        sleep(POLL).await;
    }
    Ok(())
}

fn request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Send a whole request (with `connection: close`) and read the reply to the end.
async fn exchange(tls: &mut TlsStream<TcpStream>, request: &[u8]) -> Vec<u8> {
    if tls.write_all(request).await.is_err() {
        return Vec::new();
    }
    let mut reply = Vec::new();
    let _ = timeout(DEADLINE, tls.read_to_end(&mut reply)).await;
    reply
}

fn status_code(reply: &[u8]) -> Option<u16> {
    String::from_utf8_lossy(reply).strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A POST /mutate that declares a body as large as the server takes and
/// sends only its first bytes: it holds its share of the admission budget
/// (all of it, with a small budget) for as long as the connection lives.
async fn hold_the_whole_budget(server: &Server) -> TlsStream<TcpStream> {
    let mut tls = server.connect().await.expect("connect");
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{",
        7 * 1024 * 1024
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    tls
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map(|value| value as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_admission_queue_answers_429_with_a_reason() {
    let server =
        Server::start(&["--admission-memory", "1Mi", "--admission-queue", "0", "--request-timeout", "60s"]).await;
    // Once the holder's handler has its share, every further admission finds no room.
    let (_holder, reply) = shed_behind_a_holder(&server, 429).await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("admission memory budget") && text.contains("--admission-memory"), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after: 1"), "{text}");
    let metrics = server.metrics().await;
    assert!(metric(&metrics, "kube_once_admissions_shed_total{reason=\"queue_full\"}") >= 1, "{metrics}");
    // Other routes are not behind the budget.
    let mut tls = server.connect().await.unwrap();
    assert_eq!(status_code(&exchange(&mut tls, &request("GET", "/healthz", "")).await), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_that_waits_past_the_queue_timeout_answers_503_and_the_budget_frees_up() {
    let server = Server::start(&[
        "--admission-memory",
        "1Mi",
        "--admission-queue",
        "4",
        "--admission-queue-timeout",
        "200ms",
        "--request-timeout",
        "60s",
    ])
    .await;
    let (holder, reply) = shed_behind_a_holder(&server, 503).await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("waited") && text.contains("admission memory budget"), "{text}");
    let metrics = server.metrics().await;
    assert!(metric(&metrics, "kube_once_admissions_shed_total{reason=\"queue_timeout\"}") >= 1, "{metrics}");

    // The holder goes away: its share comes back and admissions are answered again.
    drop(holder);
    review_until(&server, 200).await;
}

/// A holder of the whole budget, and the reply with `status` that a review
/// gets behind it. A review that reaches the server before the holder's
/// request takes part of the budget, so the holder is shed instead (and the
/// review answered 200): then a fresh holder goes first, until the deadline.
async fn shed_behind_a_holder(server: &Server, status: u16) -> (TlsStream<TcpStream>, Vec<u8>) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let holder = hold_the_whole_budget(server).await;
        let mut tls = server.connect().await.expect("connect");
        let reply = exchange(&mut tls, &request("POST", "/mutate", REVIEW)).await;
        if status_code(&reply) == Some(status) {
            return (holder, reply);
        }
        assert!(
            Instant::now() < deadline,
            "no {status} after {DEADLINE:?}; last reply: {}\nserver log:\n{}",
            String::from_utf8_lossy(&reply),
            server.log()
        );
        drop(holder);
        sleep(POLL).await; // wait-on-condition: the loop's deadline bounds it
    }
}

/// POST the review on new connections until the reply has `status`; that reply.
async fn review_until(server: &Server, status: u16) -> Vec<u8> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut tls = server.connect().await.expect("connect");
        let reply = exchange(&mut tls, &request("POST", "/mutate", REVIEW)).await;
        if status_code(&reply) == Some(status) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "no {status} after {DEADLINE:?}; last reply: {}\nserver log:\n{}",
            String::from_utf8_lossy(&reply),
            server.log()
        );
        sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_room_comes_back() {
    let server = Server::start(&["--max-connections", "2"]).await;
    // The readiness probe's connection may still be closing: wait until two fit.
    let deadline = Instant::now() + DEADLINE;
    let mut open = Vec::new();
    while open.len() < 2 {
        match server.connect().await {
            Ok(tls) => open.push(tls),
            Err(_) => {
                assert!(Instant::now() < deadline, "two connections never fit under --max-connections 2");
                open.clear();
                sleep(POLL).await;
            }
        }
    }

    let third = server.connect().await;
    assert!(third.is_err(), "a third connection must be closed during its handshake");
    // The two open ones still work.
    let mut first = open.remove(0);
    assert_eq!(status_code(&exchange(&mut first, &request("POST", "/mutate", REVIEW)).await), Some(200));
    // `first` is closed now (connection: close): a new one finds room.
    wait_for("a new connection once one closed", || async {
        match server.connect().await {
            Ok(mut tls) => {
                let metrics =
                    String::from_utf8_lossy(&exchange(&mut tls, &request("GET", "/metrics", "")).await).into_owned();
                metric(&metrics, "kube_once_connections_refused_total") >= 1
            }
            Err(_) => false,
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_preview_listener_off_loopback_is_refused_unless_asked_for() {
    let output = Command::new(env!("CARGO_BIN_EXE_kube-once"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port()), "--preview-listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--preview-listen-any") && stderr.contains("--no-preview"), "{stderr}");
}
