//! `kube-once serve`: the HTTPS admission webhook, plus `/preview` on a
//! second, plain-HTTP, localhost-only listener.
//!
//! - [`router`] / [`preview_router`]: the axum routes, usable in-process
//!   (`tower::ServiceExt::oneshot`) with no socket.
//! - [`serve_on`]: serve them on listeners the caller bound (an ephemeral port
//!   in tests), returning a [`ServerHandle`] with the addresses and the
//!   shutdown trigger.
//! - [`run`]: the subcommand from plain [`ServeOptions`]: certificate source,
//!   listeners, signals.
//!
//! [`certs`] makes certificates and keeps the self-managed ones current.
#![forbid(unsafe_code)]

pub mod admission;
pub mod body;
pub mod certs;
pub mod limits;
pub mod metrics;
pub mod migrations;
mod patch_json;
mod preview;
mod repoll;
pub mod shutdown;
mod skim;
pub mod tls;
mod word;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use self::admission::Outcome;
pub use self::limits::Limits;
use self::limits::{Gate, Shed};
use self::metrics::Metrics;
use self::shutdown::Readiness;
use self::tls::{CertFiles, CertStore};
use kube_once_core::Config;

/// Largest request body: an AdmissionReview holds object and oldObject, each
/// up to the API server's 3 MiB, plus the envelope. Larger bodies get 413.
pub const BODY_LIMIT: usize = 7 * 1024 * 1024;

/// What the handlers share: the webhook configuration, metrics, readiness.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    config: Config,
    metrics: Metrics,
    readiness: Readiness,
    limits: Limits,
    gate: Gate,
}

impl AppState {
    /// State with the default [`Limits`].
    pub fn new(config: Config) -> Self {
        Self::with_limits(config, Limits::DEFAULT)
    }

    pub fn with_limits(config: Config, limits: Limits) -> Self {
        Self(Arc::new(Shared {
            config,
            metrics: Metrics::default(),
            readiness: Readiness::default(),
            limits,
            gate: Gate::new(&limits),
        }))
    }

    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn readiness(&self) -> &Readiness {
        &self.0.readiness
    }
}

/// The routes of the HTTPS listener: `POST /mutate`, `GET /healthz`,
/// `GET /readyz`, `GET /metrics`. Body limit included; the request timeout
/// is added by [`serve_on`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response_with_state(state.clone(), close_when_draining))
        .with_state(state)
}

/// While draining, every response tells the client to close its connection.
/// Otherwise a client may send its next request on a keep-alive connection
/// just as the end of the grace period closes it, and see a reset on a
/// request it already sent; this way clients move to new connections, which
/// are accepted until the grace period ends.
async fn close_when_draining(State(state): State<AppState>, mut response: Response) -> Response {
    if !state.readiness().is_ready() {
        response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    response
}

/// The routes of the localhost listener: `POST /preview`.
pub fn preview_router(state: AppState) -> Router {
    Router::new()
        .route("/preview", post(preview::handle))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response_with_state(state.clone(), close_when_draining))
        .with_state(state)
}

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let gate = &state.0.gate;
    // The body holds only the bytes that arrived while it is read, and
    // keeps holding them while the review waits for its share: slow
    // uploads cannot take the reviews' share, and waiting bodies stay
    // bounded (docs/operations.md, "Limits").
    let mut receiving = gate.receive();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok())
        .and_then(|length| length.parse::<usize>().ok());
    let body = match body::read(request.into_body(), declared, &mut receiving).await {
        Ok(body) => body,
        Err(body::Error::Shed(shed)) => return shed_response(&state, shed),
        Err(bad) => {
            let status = match bad {
                body::Error::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            state.metrics().record(Outcome::BadRequest, false, started.elapsed());
            tracing::warn!(status = status.as_u16(), reason = %bad, "admission request rejected");
            return (status, format!("{bad}\n")).into_response();
        }
    };
    let _permit = match gate.enter(limits::admission_cost(body.len())).await {
        Ok(permit) => permit,
        Err(shed) => return shed_response(&state, shed),
    };
    drop(receiving);
    match admission::review(&body, state.config()) {
        Ok(reviewed) => {
            let elapsed = started.elapsed();
            state.metrics().record_review(&reviewed, elapsed);
            tracing::info!(
                uid = %reviewed.response.response.uid,
                object = %reviewed.object,
                operation = %reviewed.operation,
                dry_run = reviewed.dry_run,
                result = reviewed.outcome.as_str(),
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "admission"
            );
            if let Some(status) = &reviewed.response.response.status {
                tracing::debug!(uid = %reviewed.response.response.uid, reason = %status.message, "refused");
            }
            match reviewed.response.to_json() {
                Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
                Err(error) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the answer: {error}\n")).into_response()
                }
            }
        }
        Err(bad_request) => {
            state.metrics().record(Outcome::BadRequest, false, started.elapsed());
            tracing::warn!(reason = %bad_request, "admission request rejected");
            (StatusCode::BAD_REQUEST, format!("{bad_request}\n")).into_response()
        }
    }
}

/// 429 (queue full) or 503 (waited too long), with the reason; the API
/// server treats both as a failed call and applies the failurePolicy.
fn shed_response(state: &AppState, shed: Shed) -> Response {
    state.metrics().record_shed(shed);
    let limits = state.limits();
    let (status, reason) = match shed {
        Shed::QueueFull => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "kube-once is at its admission memory budget ({} MiB) with {} admissions already waiting; \
                 retry, or raise --admission-memory (and the pod's memory limit) or --admission-queue\n",
                limits.admission_memory / (1024 * 1024),
                limits.admission_queue
            ),
        ),
        Shed::QueueTimeout => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "kube-once waited {} for its admission memory budget ({} MiB) to free up; \
                 retry, or raise --admission-memory (and the pod's memory limit)\n",
                humantime::format_duration(limits.admission_queue_timeout),
                limits.admission_memory / (1024 * 1024)
            ),
        ),
    };
    tracing::warn!(status = status.as_u16(), reason = shed.as_str(), "admission request shed");
    (status, [(header::RETRY_AFTER, "1")], reason).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.readiness().is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics().render() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the metrics: {error}\n")).into_response()
        }
    }
}

/// Timeouts of [`serve_on`] (see `kube-once serve --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Closes connections that do not send complete request headers in time:
    /// also bounds the TLS handshake and idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// Longest time a request may take (408 after it); also bounds the final drain.
    pub request_timeout: Duration,
    /// After shutdown is requested: how long requests are still accepted while `/readyz` fails.
    pub grace_period: Duration,
}

impl Timeouts {
    /// The defaults, which the command line shows in `--help`. The header-read
    /// (idle) timeout stays above the API server's 90 s idle-connection
    /// timeout, so the API server closes idle connections first and never
    /// sends a request into one being closed (kubernetes/kubernetes#127335).
    pub const DEFAULT: Timeouts = Timeouts {
        header_read_timeout: Duration::from_secs(120),
        request_timeout: Duration::from_secs(10),
        grace_period: Duration::from_secs(10),
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Everything `serve` needs, as plain values.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The HTTPS admission listener (what the Service points at).
    pub listen: SocketAddr,
    /// The plain-HTTP `/preview` listener; `None` turns it off.
    pub preview_listen: Option<SocketAddr>,
    pub config: Config,
    pub certs: CertSource,
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// Migration Events and metrics from the injected pods; `None` turns them off.
    pub events: Option<migrations::EventsOptions>,
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files, re-read when their content changes.
    Files { cert: PathBuf, key: PathBuf, poll_interval: Duration },
    /// A CA and serving certificate kept by kube-once in a Secret, with the
    /// caBundle of its webhook configuration kept current.
    SelfManaged(certs::kube::SelfManagedConfig),
    /// A self-signed certificate made at start and kept in memory; its CA
    /// bundle is logged, so a newcomer can run the server with no set-up.
    InMemory { names: Vec<String>, validity: Duration },
}

/// A running server (see [`serve_on`]).
#[derive(Debug)]
pub struct ServerHandle {
    admission_addr: SocketAddr,
    preview_addr: Option<SocketAddr>,
    state: AppState,
    shutdown_requested: CancellationToken,
    drained: JoinHandle<()>,
}

impl ServerHandle {
    /// Where the HTTPS admission listener is bound.
    pub fn admission_addr(&self) -> SocketAddr {
        self.admission_addr
    }

    /// Where the plain-HTTP `/preview` listener is bound, if any.
    pub fn preview_addr(&self) -> Option<SocketAddr> {
        self.preview_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Start the graceful drain (what SIGTERM does): `/readyz` fails at once,
    /// requests are served for the grace period, then connections drain.
    pub fn shutdown(&self) {
        // Readiness first, synchronously: a probe right after this call fails.
        self.state.readiness().set_not_ready();
        self.shutdown_requested.cancel();
    }

    /// Resolves when the server has stopped: after [`ServerHandle::shutdown`]
    /// and the drain.
    pub async fn stopped(self) {
        if let Err(error) = self.drained.await {
            tracing::error!(%error, "the server task ended abnormally");
        }
    }
}

/// Serve [`router`] over TLS on `admission` (certificate from `certs`, taken
/// at each handshake) and [`preview_router`] over plain HTTP on `preview`.
/// Must be called within a Tokio runtime; the server runs in background
/// tasks until [`ServerHandle::shutdown`].
pub fn serve_on(
    admission: TcpListener,
    preview: Option<TcpListener>,
    state: AppState,
    certs: Arc<CertStore>,
    timeouts: Timeouts,
) -> anyhow::Result<ServerHandle> {
    let admission_addr = admission.local_addr().context("the admission listener has no local address")?;
    let preview_addr = match &preview {
        Some(listener) => Some(listener.local_addr().context("the preview listener has no local address")?),
        None => None,
    };
    let tls = TlsAcceptor::from(Arc::new(tls::server_config(certs)?));
    let timeout =
        tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeouts.request_timeout);
    let stop_accepting = CancellationToken::new();

    let mut listeners = vec![tokio::spawn(accept_loop(
        admission,
        Some(tls),
        router(state.clone())
            .layer(timeout)
            .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_timeouts)),
        state.clone(),
        timeouts,
        stop_accepting.clone(),
    ))];
    if let Some(preview) = preview {
        listeners.push(tokio::spawn(accept_loop(
            preview,
            None,
            preview_router(state.clone()).layer(timeout),
            state.clone(),
            timeouts,
            stop_accepting.clone(),
        )));
    }

    let shutdown_requested = CancellationToken::new();
    let drained = tokio::spawn({
        let requested = shutdown_requested.clone().cancelled_owned();
        async move {
            requested.await;
            tracing::info!(
                grace_period = %humantime::format_duration(timeouts.grace_period),
                "shutting down: /readyz fails from now on; requests are still served during the grace period"
            );
            tokio::time::sleep(timeouts.grace_period).await;
            tracing::info!("grace period over: no new connections; finishing requests in flight");
            stop_accepting.cancel();
            for listener in listeners {
                if let Err(error) = listener.await {
                    tracing::error!(%error, "a listener task ended abnormally");
                }
            }
            tracing::info!("drained");
        }
    });
    Ok(ServerHandle { admission_addr, preview_addr, state, shutdown_requested, drained })
}

/// Accept connections until `stop` is cancelled, then wait (at most the request
/// timeout) for the open ones to finish. They end by themselves: while
/// draining every response closes its connection (see `close_when_draining`),
/// and idle ones are closed by the header-read timeout. Closing them from
/// here instead would cut off requests already sent on a fresh connection
/// that the server has not read yet: the client would see a reset.
///
/// Past `max_connections` open connections, or `max_connections_per_client`
/// from the new one's address, a new one is closed at once (counted in
/// `connections_refused`): the client sees the connection end before its
/// TLS handshake and retries on another, which is cheaper for everyone than
/// a server over its memory limit; and one client that opens connections
/// and leaves them idle leaves room for the others.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    state: AppState,
    timeouts: Timeouts,
    stop: CancellationToken,
) {
    let mut connections = Connections::new(state.limits());
    let mut stopped = pin!(stop.cancelled());
    loop {
        tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.reap();
                    if let Err(cap) = connections.room_for(peer.ip()) {
                        state.metrics().record_connection_refused();
                        tracing::debug!(%peer, cap, "at the connection cap: closing a new connection");
                        drop(stream);
                        continue;
                    }
                    connections.spawn(peer.ip(), serve_connection(stream, tls.clone(), app.clone(), timeouts));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    if tokio::time::timeout(timeouts.request_timeout, connections.drain()).await.is_err() {
        tracing::warn!(open = connections.len(), "connections still open after the drain timeout; closing them");
    }
}

/// A listener's open connections, counted per client address.
struct Connections {
    tasks: JoinSet<()>,
    client_of: HashMap<tokio::task::Id, IpAddr>,
    per_client: HashMap<IpAddr, usize>,
    max: usize,
    max_per_client: usize,
}

impl Connections {
    fn new(limits: &Limits) -> Self {
        Self {
            tasks: JoinSet::new(),
            client_of: HashMap::new(),
            per_client: HashMap::new(),
            max: limits.max_connections,
            max_per_client: limits.max_connections_per_client,
        }
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// `Err(the flag whose cap is reached)` when a new connection from
    /// `client` would pass a cap.
    fn room_for(&self, client: IpAddr) -> Result<(), &'static str> {
        if self.tasks.len() >= self.max {
            return Err("--max-connections");
        }
        if self.per_client.get(&client).copied().unwrap_or(0) >= self.max_per_client {
            return Err("--max-connections-per-client");
        }
        Ok(())
    }

    fn spawn(&mut self, client: IpAddr, connection: impl Future<Output = ()> + Send + 'static) {
        let id = self.tasks.spawn(connection).id();
        self.client_of.insert(id, client);
        *self.per_client.entry(client).or_default() += 1;
    }

    /// Count out the connections that have ended, without waiting.
    fn reap(&mut self) {
        while let Some(ended) = self.tasks.try_join_next_with_id() {
            self.count_out(ended);
        }
    }

    /// Wait for a connection to end, and count it out.
    async fn join_next(&mut self) {
        if let Some(ended) = self.tasks.join_next_with_id().await {
            self.count_out(ended);
        }
    }

    async fn drain(&mut self) {
        while !self.tasks.is_empty() {
            self.join_next().await;
        }
    }

    fn count_out(&mut self, ended: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match ended {
            Ok((id, ())) => id,
            Err(error) => error.id(),
        };
        let Some(client) = self.client_of.remove(&id) else { return };
        if let Some(count) = self.per_client.get_mut(&client) {
            *count -= 1;
            if *count == 0 {
                self.per_client.remove(&client);
            }
        }
    }
}

/// Longest a client may take to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve_connection(stream: TcpStream, tls: Option<TlsAcceptor>, app: Router, timeouts: Timeouts) {
    // Small request/response exchanges: don't let Nagle delay the answer.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    let Some(acceptor) = tls else {
        return serve_http(stream, app, timeouts).await;
    };
    // A handshake is one round trip: it gets its own short bound, not the idle-length header timeout.
    let handshake_timeout = timeouts.header_read_timeout.min(TLS_HANDSHAKE_TIMEOUT);
    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_http(stream, app, timeouts).await,
        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// HTTP/1.1 with keep-alive on one connection, until the client closes it,
/// a response says `Connection: close`, or the header-read timeout passes.
async fn serve_http<I>(io: I, app: Router, timeouts: Timeouts)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| app.clone().oneshot(request));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(timeouts.header_read_timeout).keep_alive(true);
    if let Err(error) = repoll::Repoll::new(builder.serve_connection(TokioIo::new(io), service)).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// `kube-once serve`: serve until SIGTERM or SIGINT, then drain.
pub async fn run(options: ServeOptions) -> anyhow::Result<()> {
    raise_open_files_limit();
    let (certs, refresh) = certificate_source(&options.certs).await?;
    let admission = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen); is the port in use?", options.listen))?;
    let preview = match options.preview_listen {
        Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
            format!("cannot listen on {address} (--preview-listen); is the port in use? --no-preview turns it off")
        })?),
        None => None,
    };

    let state = AppState::with_limits(options.config, options.limits);
    let handle = serve_on(admission, preview, state, certs.clone(), options.timeouts)?;
    match refresh {
        Some(CertRefresh::Files(files, poll_interval)) => {
            tokio::spawn(tls::watch_files(certs, files, poll_interval));
        }
        Some(CertRefresh::SelfManaged(keep_current)) => {
            tokio::spawn(keep_current.run(move |bundle| {
                if let Err(error) = certs.replace_bundle(bundle) {
                    tracing::error!(error = format!("{error:#}"), "cannot serve the renewed self-managed certificate");
                }
            }));
        }
        None => {}
    }
    let stop_recording = CancellationToken::new();
    if let Some(events) = &options.events {
        start_migration_events(events, handle.state().metrics().migrations(), stop_recording.clone()).await;
    }
    tracing::info!(listen = %handle.admission_addr(), preview_listen = handle.preview_addr().map(tracing::field::display), "serving");

    let signal = shutdown::termination_signal().await?;
    tracing::info!(signal, "termination signal received");
    // The Lease is handed over at once, so another replica records during the drain.
    stop_recording.cancel();
    handle.shutdown();
    handle.stopped().await;
    Ok(())
}

/// Starts the migration watcher when there is a Kubernetes API to watch. A
/// server run outside a cluster (a laptop, the tests) has none: that is not
/// an error, admission works the same.
async fn start_migration_events(
    options: &migrations::EventsOptions,
    metrics: metrics::MigrationMetrics,
    stop: CancellationToken,
) {
    match kube::Client::try_default().await {
        Ok(client) => {
            tracing::info!(
                lease = %format!("{}/{}", options.namespace, options.lease),
                identity = %options.identity,
                "recording migration Events on the workloads of injected pods (--no-events turns it off)"
            );
            migrations::spawn(client, options, metrics, stop);
        }
        Err(error) => tracing::warn!(
            %error,
            "no Kubernetes API (neither an in-cluster ServiceAccount nor a kubeconfig): migration Events are off; \
             --no-events says so without this warning"
        ),
    }
}

/// Raise the soft limit on open files to the hard limit, as Go programs do.
/// Every connection holds a descriptor, and the usual soft limit of 1024
/// (systemd, containerd 2) would refuse connections past about a thousand,
/// long before memory runs short (docs/dev/performance.md, "Hardening").
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    const CEILING: u64 = 1 << 20; // the kernel's default nr_open; the hard limit may say "infinity"
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard.min(CEILING) => {
            let raised = hard.min(CEILING);
            match setrlimit(Resource::RLIMIT_NOFILE, raised, hard) {
                Ok(()) => tracing::debug!(from = soft, to = raised, "raised the open files limit"),
                Err(error) => tracing::warn!(%error, soft, hard, "cannot raise the open files limit"),
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot read the open files limit"),
    }
}

/// What keeps the served certificate current once the server runs.
enum CertRefresh {
    Files(CertFiles, Duration),
    SelfManaged(Box<certs::kube::KeepCurrent>),
}

/// The served certificate, and what keeps it current.
async fn certificate_source(source: &CertSource) -> anyhow::Result<(Arc<CertStore>, Option<CertRefresh>)> {
    match source {
        CertSource::SelfManaged(config) => {
            let client = kube::Client::try_default().await.context(
                "--self-managed needs the Kubernetes API, but found neither an in-cluster ServiceAccount nor a kubeconfig; \
                 run it in the cluster, or give --tls-cert-file and --tls-key-file",
            )?;
            let (first, keep_current) = certs::kube::start(config, client).await.context("self-managed TLS")?;
            tracing::info!(
                secret = %format!("{}/{}", config.namespace, config.secret),
                webhook_configuration = %config.webhook_configuration,
                poll_interval = %humantime::format_duration(config.poll_interval),
                "serving the self-managed certificate; renewals are picked up"
            );
            Ok((Arc::new(CertStore::from_bundle(&first)?), Some(CertRefresh::SelfManaged(Box::new(keep_current)))))
        }
        CertSource::Files { cert, key, poll_interval } => {
            let files = CertFiles { cert: cert.clone(), key: key.clone() };
            let store = files.load().await?;
            tracing::info!(cert = %cert.display(), key = %key.display(), poll_interval = %humantime::format_duration(*poll_interval), "serving the certificate files; changes are picked up");
            Ok((Arc::new(store), Some(CertRefresh::Files(files, *poll_interval))))
        }
        CertSource::InMemory { names, validity } => {
            let bundle = certs::generate(names, *validity)?;
            let ca_bundle = base64_simd::STANDARD.encode_to_string(&bundle.ca_pem);
            tracing::info!(
                %ca_bundle,
                names = ?names,
                "no --tls-cert-file: serving an in-memory self-signed certificate (new at every start); \
                 trust it with this caBundle, e.g. `echo $CA_BUNDLE | base64 -d > ca.crt`"
            );
            Ok((Arc::new(CertStore::from_bundle(&bundle)?), None))
        }
    }
}
