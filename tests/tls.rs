//! TLS: self-managed certificates against an in-process fake API server, a
//! real TLS handshake under the Service DNS name, and `kube-once certs`.

// Test helpers outside #[test] functions fail loudly too (clippy.toml only covers the functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube_once_server as server;
use kube_once_server::certs::CertBundle;
use kube_once_server::certs::kube::{SelfManaged, SelfManagedConfig, start};
use kube_once_server::certs::self_managed::{Policy, pem_certificates};
use kube_once_server::tls::CertStore;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use support::fake_api::{self, not_found, status};
use support::serve::Serve;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

const NAMESPACE: &str = "kube-once";
const SECRET: &str = "kube-once-tls";
const WEBHOOK_CONFIGURATION: &str = "kube-once";
/// The name the API server dials.
const SERVICE_DNS_NAME: &str = support::server::SERVICE_HOST;
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------- fake API server
// Secrets and the MutatingWebhookConfiguration, with this test's knobs (the
// replicas' start barrier, a forbidden read), served by `support::fake_api`;
// the migration resources are support::fake_api's own.

/// What the fake API server saw succeed, in order.
#[derive(Debug, Clone)]
enum Event {
    SecretWritten(BTreeMap<String, Vec<u8>>),
    CaBundlePatched(Vec<u8>),
}

#[derive(Default)]
struct Store {
    resource_version: u64,
    secrets: BTreeMap<String, Value>,
    webhook_configurations: BTreeMap<String, Value>,
    creates_attempted: usize,
    creates_refused: usize,
    events: Vec<Event>,
}

impl Store {
    fn next_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }
}

struct Fake {
    store: Mutex<Store>,
    /// The first secret reads wait for each other: the replicas really start at once.
    start_together: tokio::sync::Barrier,
    together: usize,
    reads: AtomicUsize,
    /// Answer 403 to reads of the webhook configuration (RBAC missing).
    forbid_configuration: std::sync::atomic::AtomicBool,
}

async fn get_secret(State(fake): State<Arc<Fake>>, Path((namespace, name)): Path<(String, String)>) -> Response {
    if fake.reads.fetch_add(1, Ordering::SeqCst) < fake.together {
        fake.start_together.wait().await;
    }
    let store = fake.store.lock().unwrap();
    match store.secrets.get(&name).filter(|_| namespace == NAMESPACE) {
        Some(secret) => axum::Json(secret.clone()).into_response(),
        None => not_found(&format!("secrets \"{name}\"")),
    }
}

async fn create_secret(
    State(fake): State<Arc<Fake>>,
    Path(namespace): Path<String>,
    axum::Json(mut secret): axum::Json<Value>,
) -> Response {
    let mut store = fake.store.lock().unwrap();
    store.creates_attempted += 1;
    let name = secret["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    if namespace != NAMESPACE {
        return not_found(&format!("namespaces \"{namespace}\""));
    }
    if store.secrets.contains_key(&name) {
        store.creates_refused += 1;
        return status(StatusCode::CONFLICT, "AlreadyExists", &format!("secrets \"{name}\" already exists"));
    }
    secret["metadata"]["resourceVersion"] = json!(store.next_version());
    secret["apiVersion"] = json!("v1");
    secret["kind"] = json!("Secret");
    let event = Event::SecretWritten(decode_data(&secret));
    store.events.push(event);
    store.secrets.insert(name, secret.clone());
    (StatusCode::CREATED, axum::Json(secret)).into_response()
}

async fn replace_secret(
    State(fake): State<Arc<Fake>>,
    Path((namespace, name)): Path<(String, String)>,
    axum::Json(mut secret): axum::Json<Value>,
) -> Response {
    let mut store = fake.store.lock().unwrap();
    let Some(stored) = store.secrets.get(&name).filter(|_| namespace == NAMESPACE) else {
        return not_found(&format!("secrets \"{name}\""));
    };
    if secret["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"] {
        let message = format!(
            "Operation cannot be fulfilled on secrets \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );
        return status(StatusCode::CONFLICT, "Conflict", &message);
    }
    secret["metadata"]["resourceVersion"] = json!(store.next_version());
    store.events.push(Event::SecretWritten(decode_data(&secret)));
    store.secrets.insert(name, secret.clone());
    axum::Json(secret).into_response()
}

async fn get_webhook_configuration(State(fake): State<Arc<Fake>>, Path(name): Path<String>) -> Response {
    if fake.forbid_configuration.load(Ordering::SeqCst) {
        let message = format!(
            "mutatingwebhookconfigurations.admissionregistration.k8s.io \"{name}\" is forbidden: \
             User \"system:serviceaccount:kube-once:kube-once\" cannot get resource"
        );
        return status(StatusCode::FORBIDDEN, "Forbidden", &message);
    }
    let store = fake.store.lock().unwrap();
    match store.webhook_configurations.get(&name) {
        Some(configuration) => axum::Json(configuration.clone()).into_response(),
        None => not_found(&format!("mutatingwebhookconfigurations \"{name}\"")),
    }
}

/// JSON patch only (what the adapter sends); a failed `test` is a 422, as with the real API server.
async fn patch_webhook_configuration(
    State(fake): State<Arc<Fake>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type != "application/json-patch+json" {
        return status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", content_type);
    }
    let patch: json_patch::Patch = match serde_json::from_str(&body) {
        Ok(patch) => patch,
        Err(error) => return status(StatusCode::BAD_REQUEST, "BadRequest", &error.to_string()),
    };
    let mut store = fake.store.lock().unwrap();
    let Some(mut configuration) = store.webhook_configurations.get(&name).cloned() else {
        return not_found(&format!("mutatingwebhookconfigurations \"{name}\""));
    };
    if let Err(error) = json_patch::patch(&mut configuration, &patch) {
        return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &error.to_string());
    }
    configuration["metadata"]["resourceVersion"] = json!(store.next_version());
    let bundles = ca_bundles(&configuration);
    assert!(bundles.windows(2).all(|pair| pair[0] == pair[1]), "webhooks left with different caBundles");
    store.events.push(Event::CaBundlePatched(bundles[0].clone()));
    store.webhook_configurations.insert(name, configuration.clone());
    axum::Json(configuration).into_response()
}

fn decode_data(secret: &Value) -> BTreeMap<String, Vec<u8>> {
    let data = secret["data"].as_object().cloned().unwrap_or_default();
    data.into_iter()
        .map(|(key, value)| (key, base64_simd::STANDARD.decode_to_vec(value.as_str().unwrap_or_default()).unwrap()))
        .collect()
}

fn ca_bundles(configuration: &Value) -> Vec<Vec<u8>> {
    let webhooks = configuration["webhooks"].as_array().cloned().unwrap_or_default();
    webhooks
        .iter()
        .map(|webhook| {
            let encoded = webhook["clientConfig"]["caBundle"].as_str().unwrap_or_default();
            base64_simd::STANDARD.decode_to_vec(encoded).unwrap()
        })
        .collect()
}

struct ApiServer {
    fake: Arc<Fake>,
    address: std::net::SocketAddr,
    client: kube::Client,
}

impl ApiServer {
    /// A fake API server holding a webhook configuration with two webhooks and
    /// no caBundle (as the chart renders it); `together` replicas start at once.
    async fn start(together: usize) -> ApiServer {
        let webhook = |name: &str| {
            json!({"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "clientConfig": {"service": {"name": "kube-once", "namespace": NAMESPACE, "path": "/mutate"}}})
        };
        let configuration = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": WEBHOOK_CONFIGURATION, "resourceVersion": "1"},
            "webhooks": [webhook("deployments.kube-once.io"), webhook("other.kube-once.io")],
        });
        let store = Store {
            resource_version: 1,
            webhook_configurations: [(WEBHOOK_CONFIGURATION.to_owned(), configuration)].into(),
            ..Store::default()
        };
        let fake = Arc::new(Fake {
            store: Mutex::new(store),
            start_together: tokio::sync::Barrier::new(together),
            together,
            reads: AtomicUsize::new(0),
            forbid_configuration: false.into(),
        });
        let app = Router::new()
            .route("/api/v1/namespaces/{namespace}/secrets", axum::routing::post(create_secret))
            .route("/api/v1/namespaces/{namespace}/secrets/{name}", get(get_secret).put(replace_secret))
            .route(
                "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}",
                get(get_webhook_configuration).patch(patch_webhook_configuration),
            )
            .with_state(fake.clone());
        let address = fake_api::serve(app).await;
        let config = kube::Config::new(format!("http://{address}").parse().unwrap());
        ApiServer { fake, address, client: kube::Client::try_from(config).unwrap() }
    }

    fn secret(&self) -> BTreeMap<String, Vec<u8>> {
        let store = self.fake.store.lock().unwrap();
        assert_eq!(store.secrets.len(), 1, "exactly one Secret");
        decode_data(&store.secrets[SECRET])
    }

    /// The caBundle all webhooks carry (they must agree).
    fn ca_bundle(&self) -> Vec<u8> {
        let store = self.fake.store.lock().unwrap();
        let bundles = ca_bundles(&store.webhook_configurations[WEBHOOK_CONFIGURATION]);
        assert!(bundles.windows(2).all(|pair| pair[0] == pair[1]), "webhooks disagree: {bundles:?}");
        bundles[0].clone()
    }

    fn events(&self) -> Vec<Event> {
        self.fake.store.lock().unwrap().events.clone()
    }
}

fn self_managed_config(poll: Duration) -> SelfManagedConfig {
    SelfManagedConfig {
        poll_interval: poll,
        secret: SECRET.into(),
        webhook_configuration: WEBHOOK_CONFIGURATION.into(),
        service: "kube-once".into(),
        namespace: NAMESPACE.into(),
        // Short enough that a renewal driven by the test clock stays within the
        // certificates' backdating, so real TLS handshakes keep working.
        validity: 2 * HOUR,
        renew_before: 2 * HOUR - MINUTE,
    }
}

fn policy() -> Policy {
    Policy {
        names: kube_once_server::certs::service_dns_names("kube-once", NAMESPACE),
        validity: 2 * HOUR,
        renew_before: 2 * HOUR - MINUTE,
        switch_delay: MINUTE,
    }
}

// ---------------------------------------------------------------- TLS helpers

/// Verify `cert_pem` as the API server would: trusting only `ca_bundle`, for the Service DNS name.
fn verify(ca_bundle: &[u8], cert_pem: &str) -> Result<(), rustls::Error> {
    use rustls::client::danger::ServerCertVerifier;
    let roots = Arc::new(support::tls::roots(&[ca_bundle]).unwrap());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, support::tls::provider()).build().unwrap();
    let leaf = CertificateDer::from(pem_certificates(cert_pem.as_bytes()).remove(0));
    let name = ServerName::try_from(SERVICE_DNS_NAME).unwrap();
    verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now()).map(|_| ())
}

/// The real webhook server, on a loopback port, serving from a `CertStore`
/// that the test feeds as `serve` does.
struct Webhook {
    address: std::net::SocketAddr,
    store: Arc<CertStore>,
    _handle: server::ServerHandle,
}

impl Webhook {
    async fn start(bundle: &CertBundle) -> Webhook {
        let store = Arc::new(CertStore::from_bundle(bundle).unwrap());
        let handle = support::server::start(store.clone(), server::Timeouts::default(), false).await;
        Webhook { address: handle.admission_addr(), store, _handle: handle }
    }

    fn replace(&self, bundle: &CertBundle) {
        self.store.replace_bundle(bundle).unwrap();
    }

    async fn call(&self, ca_bundle: &[u8]) -> Vec<u8> {
        call_healthz(self.address, ca_bundle).await.expect("TLS handshake trusting only the caBundle")
    }
}

/// Connect as the API server does: to the Service DNS name (here resolved to
/// loopback `address`), trusting only `ca_bundle`; GET /healthz. Returns the
/// served certificate.
async fn call_healthz(address: std::net::SocketAddr, ca_bundle: &[u8]) -> anyhow::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = support::tls::connect(address, SERVICE_DNS_NAME, &[ca_bundle]).await?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {SERVICE_DNS_NAME}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].to_vec())
}

fn leaf_der(bundle: &CertBundle) -> Vec<u8> {
    pem_certificates(bundle.cert_pem.as_bytes()).remove(0)
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_starting_at_once_end_with_one_secret_and_one_ca_bundle() {
    let api = ApiServer::start(3).await;
    let args = self_managed_config(HOUR);
    let (a, b, c) = tokio::join!(
        start(&args, api.client.clone()),
        start(&args, api.client.clone()),
        start(&args, api.client.clone())
    );
    // The polling loops are not run here: only the start matters.
    let served: Vec<CertBundle> = [a, b, c].into_iter().map(|started| started.unwrap().0).collect();

    let store = api.fake.store.lock().unwrap();
    assert_eq!(store.creates_attempted, 3, "all three replicas saw no Secret and raced to create it");
    assert_eq!(store.creates_refused, 2, "the API server refused two creates with 409");
    drop(store);

    let secret = api.secret();
    for bundle in &served {
        assert_eq!(bundle.cert_pem.as_bytes(), secret["tls.crt"].as_slice(), "every replica serves the winner's cert");
        assert_eq!(bundle.key_pem.as_bytes(), secret["tls.key"].as_slice());
    }
    assert_eq!(api.ca_bundle(), secret["ca.crt"], "one caBundle, the Secret's CA, in every webhook");
    assert_eq!(pem_certificates(&api.ca_bundle()).len(), 1);
    verify(&api.ca_bundle(), &served[0].cert_pem).unwrap();

    let patches = api.events().iter().filter(|event| matches!(event, Event::CaBundlePatched(_))).count();
    assert_eq!(patches, 1, "the caBundle is patched once, not once per replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_adds_the_new_ca_before_switching_and_tls_works_throughout() {
    let api = ApiServer::start(0).await;
    let manager =
        SelfManaged::with_policy(api.client.clone(), NAMESPACE, SECRET, WEBHOOK_CONFIGURATION, policy()).unwrap();
    let t0 = OffsetDateTime::now_utc();

    // Start: one CA, served and trusted.
    let first = manager.reconcile(t0).await.unwrap();
    let server = Webhook::start(&first).await;
    let ca1 = pem_certificates(&api.ca_bundle());
    assert_eq!(ca1.len(), 1);
    assert_eq!(server.call(&api.ca_bundle()).await, leaf_der(&first));

    // Renewal due: the new CA is published next to the old one; the old certificate is still served.
    let renewing = manager.reconcile(t0 + secs(61)).await.unwrap();
    assert_eq!(renewing.cert_pem, first.cert_pem);
    let overlap = pem_certificates(&api.ca_bundle());
    assert_eq!(overlap.len(), 2);
    assert_eq!(overlap[1], ca1[0], "the old CA stays, after the new one");
    assert!(api.secret().contains_key("next.crt"));
    server.replace(&renewing);
    assert_eq!(server.call(&api.ca_bundle()).await, leaf_der(&first));

    // Within the switch delay: unchanged.
    assert_eq!(manager.reconcile(t0 + secs(90)).await.unwrap(), renewing);

    // Switched: the new certificate, trusted through the same two-CA bundle.
    let switched = manager.reconcile(t0 + secs(125)).await.unwrap();
    assert_ne!(switched.cert_pem, first.cert_pem);
    assert_eq!(pem_certificates(&api.ca_bundle()), overlap);
    server.replace(&switched);
    assert_eq!(server.call(&api.ca_bundle()).await, leaf_der(&switched));
    // A client still holding the old bundle (one CA) would fail now; the API server never did.
    assert!(verify(&ca1_pem(&first), &switched.cert_pem).is_err());

    // The old CA expires with its certificate and leaves the bundle (here the
    // next renewal starts in the same pass, as the test's margins are tight).
    let later = manager.reconcile(t0 + 2 * HOUR + secs(30)).await.unwrap();
    let bundle = pem_certificates(&api.ca_bundle());
    assert!(!bundle.contains(&ca1[0]), "the old CA was dropped");
    assert!(bundle.contains(&overlap[0]), "the current CA stays");
    assert_eq!(later.cert_pem, switched.cert_pem);
    assert_eq!(server.call(&api.ca_bundle()).await, leaf_der(&switched));

    // The order the API server saw: the new CA published before any Secret
    // write that serves a certificate signed by it.
    let events = api.events();
    let published_at = events
        .iter()
        .position(
            |event| matches!(event, Event::CaBundlePatched(bundle) if pem_certificates(bundle).contains(&overlap[0])),
        )
        .unwrap();
    let switched_at = events
        .iter()
        .position(
            |event| matches!(event, Event::SecretWritten(data) if data["tls.crt"] == switched.cert_pem.as_bytes()),
        )
        .unwrap();
    let dropped_at = events
        .iter()
        .position(
            |event| matches!(event, Event::CaBundlePatched(bundle) if !pem_certificates(bundle).contains(&ca1[0])),
        )
        .unwrap();
    assert!(published_at < switched_at && switched_at < dropped_at, "{published_at} {switched_at} {dropped_at}");
}

fn ca1_pem(first: &CertBundle) -> Vec<u8> {
    first.ca_pem.clone().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_replica_picks_up_the_renewed_certificate_without_restart() {
    let api = ApiServer::start(0).await;
    let args = self_managed_config(Duration::from_millis(50));
    let (first, keep_current) = start(&args, api.client.clone()).await.unwrap();
    let served: Arc<Mutex<Vec<CertBundle>>> = Arc::default();
    let sink = served.clone();
    let polling = tokio::spawn(keep_current.run(move |bundle| sink.lock().unwrap().push(bundle.clone())));
    let server = Webhook::start(&first).await;

    // Another replica, further along in time, renews and switches.
    let other =
        SelfManaged::with_policy(api.client.clone(), NAMESPACE, SECRET, WEBHOOK_CONFIGURATION, policy()).unwrap();
    let t0 = OffsetDateTime::now_utc();
    other.reconcile(t0 + secs(61)).await.unwrap();
    let switched = other.reconcile(t0 + secs(125)).await.unwrap();
    assert_ne!(switched.cert_pem, first.cert_pem);

    support::wait::until("the polling replica to serve the renewed certificate", || {
        std::future::ready(served.lock().unwrap().last().is_some_and(|bundle| bundle.cert_pem == switched.cert_pem))
    })
    .await
    .unwrap();
    let latest = served.lock().unwrap().last().cloned().unwrap();
    server.replace(&latest);
    assert_eq!(server.call(&api.ca_bundle()).await, leaf_der(&switched));
    polling.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_update_is_re_read_and_re_planned() {
    let api = ApiServer::start(0).await;
    let t0 = OffsetDateTime::now_utc();
    let a = SelfManaged::with_policy(api.client.clone(), NAMESPACE, SECRET, WEBHOOK_CONFIGURATION, policy()).unwrap();
    let b = a.clone();
    a.reconcile(t0).await.unwrap();
    // Both replicas find the renewal due at once: one update wins, the other
    // gets 409 on its stale resourceVersion, re-reads and adopts the winner's.
    let (ra, rb) = tokio::join!(a.reconcile(t0 + secs(61)), b.reconcile(t0 + secs(61)));
    assert_eq!(ra.unwrap(), rb.unwrap());
    assert_eq!(pem_certificates(&api.ca_bundle()).len(), 2, "one renewal, not two");
    assert_eq!(api.ca_bundle(), api.secret()["ca.crt"]);
}

#[tokio::test]
async fn missing_rbac_is_reported_with_the_rule_to_grant() {
    let api = ApiServer::start(0).await;
    api.fake.forbid_configuration.store(true, Ordering::SeqCst);
    let Err(error) = start(&self_managed_config(HOUR), api.client.clone()).await else {
        panic!("start succeeded without access to the webhook configuration")
    };
    let message = format!("{error:#}");
    assert!(message.contains("cannot get MutatingWebhookConfiguration kube-once"), "{message}");
    assert!(message.contains("needs RBAC `get`"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_self_managed_creates_the_secret_publishes_the_ca_and_serves_under_the_service_name() {
    let api = ApiServer::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let server = format!("http://{}", api.address);
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: \"{server}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n"
        ),
    )
    .unwrap();
    let mut serve = Serve::with_args(["serve", "--self-managed", "--preview-listen", "127.0.0.1:0"])
        .args(["--listen", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .without_probe()
        .start()
        .await;
    let listen = serve.addr();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let served = loop {
        let published = api.fake.store.lock().unwrap().secrets.contains_key(SECRET);
        if published
            && !api.ca_bundle().is_empty()
            && let Ok(served) = call_healthz(listen, &api.ca_bundle()).await
        {
            break served;
        }
        if let Some(status) = serve.exited() {
            panic!("serve exited with {status}: {}", serve.log());
        }
        assert!(tokio::time::Instant::now() < deadline, "serve --self-managed never became reachable");
        tokio::time::sleep(Duration::from_millis(50)).await; // wait-on-condition: poll interval of a loop with a deadline
    };
    assert_eq!(served, pem_certificates(&api.secret()["tls.crt"])[0], "it serves the Secret's certificate");
    assert_eq!(api.ca_bundle(), api.secret()["ca.crt"]);
}

// ---------------------------------------------------------------- kube-once certs

#[test]
fn certs_writes_the_files_and_prints_a_ca_bundle_that_verifies_them() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let output = std::process::Command::new(support::binary())
        .args(["certs", "--san", "10.0.0.7", "--san", "webhook.example.test", "--out-dir"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&out.display().to_string()), "stderr says where the files went: {stderr}");

    let mode = |name: &str| std::fs::metadata(out.join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("tls.key"), 0o600);
    assert_eq!(mode("tls.crt"), 0o644);
    assert_eq!(mode("ca.crt"), 0o644);

    let ca_crt = std::fs::read(out.join("ca.crt")).unwrap();
    let tls_crt = std::fs::read_to_string(out.join("tls.crt")).unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let ca_bundle = base64_simd::STANDARD.decode_to_vec(stdout.trim()).unwrap();
    assert_eq!(ca_bundle, ca_crt, "stdout is the base64 of ca.crt");
    verify(&ca_bundle, &tls_crt).unwrap();

    let der = pem_certificates(tls_crt.as_bytes()).remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            &GeneralName::IPAddress(&[a, b, c, d]) => format!("IP:{}", std::net::Ipv4Addr::new(a, b, c, d)),
            other => format!("unexpected {other}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "DNS:kube-once.kube-once.svc",
            "DNS:kube-once.kube-once.svc.cluster.local",
            "IP:10.0.0.7",
            "DNS:webhook.example.test",
        ]
    );
    assert!(x509_parser::parse_x509_certificate(&pem_certificates(&ca_crt)[0]).unwrap().1.is_ca());

    // The key matches the certificate: a TLS handshake with it succeeds.
    let bundle = CertBundle {
        ca_pem: String::from_utf8(ca_crt).unwrap(),
        cert_pem: tls_crt,
        key_pem: std::fs::read_to_string(out.join("tls.key")).unwrap(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = Webhook::start(&bundle).await;
        assert_eq!(server.call(&ca_bundle).await, der);
    });
}

#[test]
fn certs_reports_an_unwritable_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let output =
        std::process::Command::new(support::binary()).args(["certs", "--out-dir"]).arg(&file).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot create the output directory") && stderr.contains("not-a-dir"), "{stderr}");
}
