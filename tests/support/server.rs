//! The webhook server in-process: its routers called with `oneshot`, or the
//! real listeners (TLS admission, plain-HTTP preview) on loopback ports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use kube_once_core::Config;
use kube_once_server::certs::{self, CertBundle};
use kube_once_server::tls::CertStore;
use kube_once_server::{self as server, AppState, ServerHandle, Timeouts};
use tower::ServiceExt;

/// The name the API server dials: `<service>.<namespace>.svc`.
pub const SERVICE_HOST: &str = "kube-once.kube-once.svc";

/// A fresh CA and serving certificate for `names`, valid for an hour.
pub fn bundle_for(names: &[&str]) -> CertBundle {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    certs::generate(&names, Duration::from_secs(3600)).expect("generate a certificate")
}

/// A fresh CA and serving certificate for the Service's DNS names, as the API server checks them.
pub fn service_bundle() -> CertBundle {
    certs::generate(&certs::service_dns_names("kube-once", "kube-once"), Duration::from_secs(3600))
        .expect("generate a certificate")
}

/// One request through `app` in-process; the status and the body as text.
pub async fn call(app: Router, method: Method, uri: &str, body: impl Into<Body>) -> (StatusCode, String) {
    let request = Request::builder().method(method).uri(uri).body(body.into()).expect("request");
    let response = app.oneshot(request).await.expect("the router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("response body");
    (status, String::from_utf8(bytes.to_vec()).expect("UTF-8 response"))
}

/// The admission router with the default configuration.
pub fn admission_app() -> Router {
    server::router(AppState::new(Config::default()))
}

/// The real server (as `serve` runs it) on loopback ports chosen by the OS:
/// admission over TLS from `store`, and the plain-HTTP preview listener when
/// `preview` is set. Must run within a Tokio runtime.
pub async fn start(store: Arc<CertStore>, timeouts: Timeouts, preview: bool) -> ServerHandle {
    let admission = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the admission listener");
    let preview = match preview {
        true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the preview listener")),
        false => None,
    };
    server::serve_on(admission, preview, AppState::new(Config::default()), store, timeouts).expect("serve_on")
}

/// [`start`] serving `bundle`.
pub async fn start_with(bundle: &CertBundle, timeouts: Timeouts, preview: bool) -> ServerHandle {
    let store = Arc::new(CertStore::from_bundle(bundle).expect("a certificate store from the bundle"));
    start(store, timeouts, preview).await
}

/// An HTTPS client that trusts only `ca_bundles` and reaches the Service
/// name at `addr`; `keep_alive: false` opens a fresh connection per request.
pub fn service_client(ca_bundles: &[impl AsRef<[u8]>], addr: SocketAddr, keep_alive: bool) -> reqwest::Client {
    let builder = super::tls::https_client(ca_bundles, SERVICE_HOST, addr).expect("HTTPS client");
    let builder = if keep_alive { builder } else { builder.pool_max_idle_per_host(0) };
    builder.build().expect("HTTPS client")
}

/// `https://<Service name>:<port><path>`.
pub fn service_url(addr: SocketAddr, path: &str) -> String {
    format!("https://{SERVICE_HOST}:{}{path}", addr.port())
}
