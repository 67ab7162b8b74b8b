//! Hardening of `kube-once serve`, against the real binary over real TLS
//! (`support::serve`): slowloris, a client that never finishes the TLS handshake,
//! many idle connections, the request timeout, the body limit, certificate
//! rotation under load and graceful drain on SIGTERM.
//!
//! Deadlines only stop waiting; no test asserts how fast anything is.

// Test helpers fail the test loudly; clippy's in-test allowance does not reach helpers.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kube_once_server::certs::CertBundle;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use rustls::pki_types::ServerName;
use support::http::{post_head, read_to_close, status_code};
use support::serve::{HOST, Serve, Server};
use support::wait::{DEADLINE, until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const REVIEW: &str = include_str!("fixtures/perf/review.json");
const REVIEW_UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

// ---------------------------------------------------------------- fixtures

fn bundle() -> CertBundle {
    support::server::bundle_for(&[HOST])
}

/// The CA bundles of `trusted`, as a client's trust anchors.
fn cas<'a>(trusted: &[&'a CertBundle]) -> Vec<&'a str> {
    trusted.iter().map(|bundle| bundle.ca_pem.as_str()).collect()
}

/// `serve` with `args`, serving `ca`'s certificate (and the preview listener, as deployed).
async fn start(ca: &CertBundle, args: &[&str]) -> Server {
    Serve::new().cert(ca).preview().args(args).start().await
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
    server.client_trusting(&cas(trusted), keep_alive)
}

/// A raw TLS connection, for clients that misbehave on purpose.
async fn connect(server: &Server) -> TlsStream<TcpStream> {
    server.connect().await.expect("TLS connection")
}

fn serial_of_der(der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("X.509 certificate");
    cert.tbs_certificate.raw_serial().to_vec()
}

/// Serial number of the certificate the server presents to a new connection.
async fn served_serial(server: &Server, trusted: &[&CertBundle]) -> Option<Vec<u8>> {
    let served = timeout(DEADLINE, support::tls::served_leaf(server.addr(), HOST, &cas(trusted))).await;
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

// ---------------------------------------------------------------- limits

/// A ready server whose header-read timeout, 1 s, also bounds TLS handshakes
/// and idle keep-alive connections; and the client that checks it still
/// serves after an attack. That client opens a connection per request: one
/// kept from before the attack would idle for about as long as the attack
/// lasts, so the server may be closing it just as the check is sent.
async fn start_with_a_1s_header_timeout(ca: &CertBundle) -> (Server, reqwest::Client) {
    let server = start(ca, &["--header-read-timeout", "1s"]).await;
    let http = client(&server, &[ca], false);
    (server, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_off_by_the_header_read_timeout() {
    let ca = bundle();
    let (server, http) = start_with_a_1s_header_timeout(&ca).await;

    let mut stream = connect(&server).await;
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
    let (server, http) = start_with_a_1s_header_timeout(&ca).await;

    // TCP connected, then silence: each such socket would pin a file descriptor forever.
    let mut silent = server.tcp().await.expect("TCP connect");
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
    // Idle connections must stay open for the whole test, whatever the
    // machine's speed; started as systemd and containerd 2 start processes,
    // with a soft limit of 1024 open files.
    let server =
        Serve::new().cert(&ca).preview().soft_fd_limit(1024).args(["--header-read-timeout", "10m"]).start().await;
    // This test process holds the client side of every connection.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raise this test's open files limit");
    }

    let connector = TlsConnector::from(Arc::new(support::tls::client_config(&cas(&[&ca])).expect("TLS client")));
    let mut opening = JoinSet::new();
    let mut idle = Vec::with_capacity(IDLE);
    for connection in 0..IDLE {
        let connector = connector.clone();
        let addr = server.addr();
        // From four client addresses (all loopback), each under --max-connections-per-client.
        let client = std::net::Ipv4Addr::new(127, 0, 0, 10 + (connection % 4) as u8);
        opening.spawn(async move {
            let open = async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind((client, 0).into())?;
                let tcp = socket.connect(addr).await?;
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
    let server = start(&ca, &["--request-timeout", "1s", "--header-read-timeout", "10m"]).await;

    let mut stream = connect(&server).await;
    stream.write_all(&[post_head("/mutate", 1000), b"{".to_vec()].concat()).await.expect("write");
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
    let server = start(&ca, &[]).await;
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
        until(what, || async { self.ok.load(Ordering::Relaxed) > seen + 10 }).await.expect("load progresses");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_fails_no_request() {
    let bundles: Vec<CertBundle> = (0..4).map(|_| bundle()).collect();
    let trusted: Vec<&CertBundle> = bundles.iter().collect();
    let mut server = start(&bundles[0], &["--cert-poll-interval", "100ms"]).await;
    let serials: BTreeSet<Vec<u8>> = bundles.iter().map(|b| serial_of_der(&support::tls::leaf(b))).collect();
    assert_eq!(serials.len(), 4, "every generated certificate has its own serial");

    let load = Load::new(false);
    let mut tasks = JoinSet::new();
    for keep_alive in [true, true, false, false] {
        load.spawn(&mut tasks, client(&server, &trusted, keep_alive), server.url("/mutate"));
    }
    load.wait_for_progress("load before the first rotation").await;

    for (version, bundle) in bundles.iter().enumerate().skip(1) {
        server.rotate(bundle);
        let expected = serial_of_der(&support::tls::leaf(bundle));
        until(&format!("rotation {version} to be served"), || async {
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
    let mut server = start(&ca, &["--grace-period", "5s", "--header-read-timeout", "10m"]).await;
    let probe = client(&server, &[&ca], false);

    // A request already sent in part when SIGTERM arrives: it must complete.
    let mut in_flight = connect(&server).await;
    let (head, tail) = REVIEW.split_at(REVIEW.len() / 2);
    in_flight
        .write_all(&[post_head("/mutate", REVIEW.len()), head.as_bytes().to_vec()].concat())
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
    until("/readyz to fail after SIGTERM", || async {
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

    let status = server.exit_status().await;
    assert!(status.success(), "exit status {status}\n{}", server.log());

    while tasks.join_next().await.is_some() {}
    let failures = load.failures.lock().await;
    assert!(failures.is_empty(), "requests already sent failed during drain: {:?}\n{}", &failures[..], server.log());
    assert!(load.ok.load(Ordering::Relaxed) > ok_at_not_ready, "requests were served during the grace period");
}

// ---------------------------------------------------------------- slow uploads

/// How a slow upload announces its body.
#[derive(Clone, Copy)]
enum Announced {
    /// `Transfer-Encoding: chunked`: no length at all.
    Chunked,
    /// A `Content-Length` of nearly the largest review.
    Large,
}

/// A client that sends the headers of a review and then its body a byte at
/// a time, every `tick`, until `stop` is set.
async fn trickle(mut stream: TlsStream<TcpStream>, announced: Announced, stop: Arc<AtomicBool>) {
    let (header, byte): (&[u8], &[u8]) = match announced {
        Announced::Chunked => (b"Transfer-Encoding: chunked\r\n", b"1\r\n \r\n"),
        Announced::Large => (b"Content-Length: 3000000\r\n", b" "),
    };
    let head =
        [b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n", header, b"\r\n"].concat();
    if stream.write_all(&head).await.is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        if stream.write_all(byte).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // wait-on-condition: the trickle's pace, not a wait
    }
}

/// `uploads` clients trickle reviews (half chunked, half with a large
/// Content-Length) while small reviews are sent one after the other: nearly
/// all of those are answered 200 within a second. Reserving the budget by a
/// body's declared (or unknown, so largest) size before reading it let two
/// such clients hold all of it until the request timeout.
async fn small_reviews_are_answered_beside_slow_uploads(uploads: usize) {
    let ca = bundle();
    let server = start(&ca, &[]).await;
    let http = client(&server, &[&ca], true);

    let stop = Arc::new(AtomicBool::new(false));
    let mut slow = JoinSet::new();
    for upload in 0..uploads {
        let announced = if upload % 2 == 0 { Announced::Chunked } else { Announced::Large };
        slow.spawn(trickle(connect(&server).await, announced, stop.clone()));
    }
    until("the slow uploads to be connected", || async { server.established_connections() >= uploads })
        .await
        .unwrap_or_else(|message| panic!("{message}\n{}", server.log()));

    const REVIEWS: usize = 40;
    let mut prompt = 0;
    let mut failures = Vec::new();
    for _ in 0..REVIEWS {
        let sent = Instant::now();
        let answered = timeout(Duration::from_secs(1), post_review(&http, &server.url("/mutate"))).await;
        match answered {
            Ok(Ok(())) => prompt += 1,
            Ok(Err(error)) => failures.push(error.to_string()),
            Err(_) => failures.push("no answer within 1 s".to_owned()),
        }
        // Spread the reviews over the uploads' lifetime, a tenth of a second apart.
        tokio::time::sleep_until(sent + Duration::from_millis(100)).await; // wait-on-condition: pacing, not a wait
    }
    stop.store(true, Ordering::Relaxed);
    slow.shutdown().await;
    assert!(
        prompt * 100 >= REVIEWS * 95,
        "only {prompt} of {REVIEWS} small reviews answered 200 within 1 s beside {uploads} slow uploads: {failures:?}\nserver log:\n{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_slow_uploads_do_not_hold_back_small_reviews() {
    small_reviews_are_answered_beside_slow_uploads(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_slow_uploads_do_not_hold_back_small_reviews() {
    small_reviews_are_answered_beside_slow_uploads(20).await;
}
