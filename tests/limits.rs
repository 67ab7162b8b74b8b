//! Resource bounds of `kube-once serve`, against the real binary over real
//! TLS (`support::serve`): the admission memory budget answers 429/503 with a
//! reason when saturated, the connection cap closes connections past it,
//! and /preview stays on loopback unless told otherwise.
//!
//! Deadlines only stop waiting; no test asserts how fast anything is.
//! Memory itself is measured by bench/memory.sh, not here.

// Test helpers fail the test loudly; clippy's in-test allowance does not reach helpers.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use support::http::{exchange, post_head, request, status_code};
use support::serve::{Serve, Server};
use support::wait::{DEADLINE, POLL, until};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};
use tokio_rustls::client::TlsStream;

const REVIEW: &str = include_str!("fixtures/perf/review.json");

async fn start(args: &[&str]) -> Server {
    Serve::new().args(args).start().await
}

async fn metrics(server: &Server) -> String {
    String::from_utf8_lossy(&server.request("GET", "/metrics", "").await.expect("connect for /metrics")).into_owned()
}

/// A POST /mutate that declares a body as large as the server takes and
/// sends only its first 256 KiB: a body holds the bytes that arrived, so it
/// holds the budget's share for bodies being received (all of it, with a
/// 1 MiB budget) for as long as the connection lives.
async fn hold_the_whole_budget(server: &Server) -> TlsStream<TcpStream> {
    let mut tls = server.connect().await.expect("connect");
    tls.write_all(&[post_head("/mutate", 7 * 1024 * 1024), b"{".to_vec(), vec![b' '; 256 * 1024]].concat())
        .await
        .unwrap();
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
    let server = start(&["--admission-memory", "1Mi", "--admission-queue", "0", "--request-timeout", "60s"]).await;
    // Once the holder's handler has its share, every further admission finds no room.
    let (_holder, reply) = shed_behind_a_holder(&server, 429, REVIEW).await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("admission memory budget") && text.contains("--admission-memory"), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after: 1"), "{text}");
    let metrics = metrics(&server).await;
    assert!(metric(&metrics, "kube_once_admissions_shed_total{reason=\"queue_full\"}") >= 1, "{metrics}");
    // Other routes are not behind the budget.
    let mut tls = server.connect().await.unwrap();
    assert_eq!(status_code(&exchange(&mut tls, &request("GET", "/healthz", "")).await), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_that_waits_past_the_queue_timeout_answers_503_and_the_budget_frees_up() {
    let server = start(&[
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
    let (holder, reply) = shed_behind_a_holder(&server, 503, REVIEW).await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("waited") && text.contains("admission memory budget"), "{text}");
    let metrics = metrics(&server).await;
    assert!(metric(&metrics, "kube_once_admissions_shed_total{reason=\"queue_timeout\"}") >= 1, "{metrics}");

    // The holder goes away: its share comes back and admissions are answered again.
    drop(holder);
    review_until(&server, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_uploading_when_shed_reads_the_status_and_its_reason() {
    let server = start(&["--admission-memory", "1Mi", "--admission-queue", "0", "--request-timeout", "60s"]).await;
    // Shed at its first bytes, with most of its 6 MiB still to send: the
    // answer waits for the rest, so the client reads it instead of a reset.
    let padded = format!("{}{}", REVIEW, " ".repeat(6 * 1024 * 1024));
    let (_holder, reply) = shed_behind_a_holder(&server, 429, &padded).await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("--admission-memory"), "{text}");
}

/// A holder of the whole budget, and the reply with `status` that a review
/// (`body`) gets behind it. A review that reaches the server before the holder's
/// request takes part of the budget, so the holder is shed instead (and the
/// review answered 200): then a fresh holder goes first, until the deadline.
async fn shed_behind_a_holder(server: &Server, status: u16, body: &str) -> (TlsStream<TcpStream>, Vec<u8>) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let holder = hold_the_whole_budget(server).await;
        let mut tls = server.connect().await.expect("connect");
        let reply = exchange(&mut tls, &request("POST", "/mutate", body)).await;
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
    let server = start(&["--max-connections", "2"]).await;
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
    until("a new connection once one closed", || async {
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

/// Idle TCP connections from one address, opened as fast as it can.
async fn flood_from(client: &str, server: &Server, count: usize) -> Vec<TcpStream> {
    let mut flood = Vec::new();
    for _ in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{client}:0").parse().unwrap()).unwrap();
        flood.push(socket.connect(server.addr()).await.expect("connect"));
    }
    flood
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_from_one_client_leaves_room_for_the_others() {
    const CAP: usize = 64;
    const PER_CLIENT: usize = 16;
    let server = start(&[
        "--max-connections",
        &CAP.to_string(),
        "--max-connections-per-client",
        &PER_CLIENT.to_string(),
        "--request-timeout",
        "60s",
    ])
    .await;
    // 127.0.0.0/8 is all loopback on Linux: 127.0.0.3 is another client.
    let flood = flood_from("127.0.0.3", &server, 2 * CAP).await;
    until("the server to close the flood's connections past its cap", || async {
        metric(&metrics(&server).await, "kube_once_connections_refused_total") >= (2 * CAP - PER_CLIENT) as u64
    })
    .await
    .unwrap_or_else(|message| panic!("{message}\nserver log:\n{}", server.log()));

    for _ in 0..CAP {
        let reply = server
            .request("POST", "/mutate", REVIEW)
            .await
            .expect("a connection from another client while the flood holds its cap");
        assert_eq!(status_code(&reply), Some(200), "{}", String::from_utf8_lossy(&reply));
    }
    drop(flood);
}

#[tokio::test]
async fn a_preview_listener_off_loopback_is_refused_unless_asked_for() {
    let output = Serve::with_args(["serve", "--listen", "127.0.0.1:0", "--preview-listen", "0.0.0.0:0"]).output().await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--preview-listen-any") && stderr.contains("--no-preview"), "{stderr}");
}
