//! An in-process fake Kubernetes API server for what `serve`'s migration
//! watcher asks of a cluster: pods listed and watched by the injected label
//! only, a pod's container log (`tailLines`, `limitBytes`; 403 when a test
//! forbids logs), Deployments and ReplicaSets to read (owner references), and
//! events.k8s.io Events and coordination.k8s.io Leases to write with the
//! real API server's conflict rules (create of an existing name:
//! AlreadyExists; a stale resourceVersion: Conflict). Used in process by
//! tests/migration_events.rs ([`FakeApi::client`]) and by the e2e harness,
//! whose real `serve` processes reach it through a kubeconfig
//! ([`FakeApi::write_kubeconfig`]).
//!
//! Each caller is told apart by its `x-replica` header or its bearer token,
//! so a test can cut one replica off from Leases and can check who touched
//! which Event while holding the Lease.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// The label selector the watcher must use: it never lists every pod.
pub const INJECTED_SELECTOR: &str = "kube-once.io/injected=true";

#[derive(Default)]
pub struct Store {
    resource_version: u64,
    pub pods: BTreeMap<String, Value>,
    /// Every pod change, for watches that start from an older resourceVersion.
    history: Vec<(u64, &'static str, Value)>,
    /// `group/version/namespace/resource/name` → object (Deployments, ReplicaSets).
    pub objects: BTreeMap<String, Value>,
    pub events: BTreeMap<String, Value>,
    pub leases: BTreeMap<String, Value>,
    /// (the replica asking, who held the Lease named by [`FakeApi::lease`]
    /// at that moment) per Event request: reads too, since a replica that
    /// reads an Event is about to write it.
    pub event_requests: Vec<(String, Option<String>)>,
    /// Pod requests without the injected label selector.
    pub unselected: usize,
    /// Replicas whose Lease requests fail, as if cut off from the API server.
    pub partitioned: Vec<String>,
    /// `namespace/pod/container` → its log.
    pub pod_logs: BTreeMap<String, PodLog>,
    /// Every log request: `namespace/pod` and its query.
    pub log_requests: Vec<(String, HashMap<String, String>)>,
    /// Log requests are refused (403), as without RBAC `pods/log` get.
    pub logs_forbidden: bool,
}

/// A container's log: fixed text, or a file a process is writing (the e2e
/// kubelet's container output), read at each request.
#[derive(Debug, Clone)]
pub enum PodLog {
    Text(String),
    File(PathBuf),
}

impl Store {
    fn next_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn lease_holder(&self, lease: &str) -> Option<String> {
        self.leases.get(lease).and_then(|lease| lease["spec"]["holderIdentity"].as_str().map(str::to_owned))
    }
}

struct Shared {
    store: Mutex<Store>,
    pod_changes: broadcast::Sender<(u64, &'static str, Value)>,
    /// The Lease whose holder [`Store::event_requests`] notes.
    lease: String,
}

type Fake = Arc<Shared>;

/// A `Status` answer, as the API server fails a request.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

pub fn not_found(what: &str) -> Response {
    status(StatusCode::NOT_FOUND, "NotFound", &format!("{what} not found"))
}

fn conflict(what: &str) -> Response {
    status(
        StatusCode::CONFLICT,
        "Conflict",
        &format!("Operation cannot be fulfilled on {what}: the object has been modified"),
    )
}

fn cut_off() -> Response {
    status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "cut off")
}

/// Who is asking: the `x-replica` header (in-process clients) or the bearer
/// token (a kubeconfig's user, for `serve` processes).
fn replica_of(headers: &HeaderMap) -> String {
    if let Some(replica) = headers.get("x-replica").and_then(|v| v.to_str().ok()) {
        return replica.to_owned();
    }
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    authorization.strip_prefix("Bearer ").unwrap_or_default().to_owned()
}

async fn pods(State(fake): State<Fake>, Query(query): Query<HashMap<String, String>>) -> Response {
    let mut store = fake.store.lock().unwrap();
    if query.get("labelSelector").map(String::as_str) != Some(INJECTED_SELECTOR) {
        store.unselected += 1;
        return status(StatusCode::BAD_REQUEST, "BadRequest", "watch pods by the injected label only");
    }
    if query.get("watch").map(String::as_str) != Some("true") {
        let items: Vec<Value> = store.pods.values().cloned().collect();
        let list = json!({"apiVersion": "v1", "kind": "PodList",
            "metadata": {"resourceVersion": store.resource_version.to_string()}, "items": items});
        return axum::Json(list).into_response();
    }
    let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let replay: Vec<_> = store.history.iter().filter(|(version, _, _)| *version > from).cloned().collect();
    // Subscribed under the lock: no change falls between the replay and the live part.
    let live = fake.pod_changes.subscribe();
    drop(store);
    let line = |(_, kind, pod): (u64, &'static str, Value)| {
        Ok::<_, std::io::Error>(format!("{}\n", json!({"type": kind, "object": pod})))
    };
    let live = futures_util::stream::unfold(live, |mut live| async move {
        loop {
            match live.recv().await {
                Ok(change) => return Some((change, live)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures_util::stream::iter(replay).chain(live).map(line);
    Body::from_stream(stream).into_response()
}

async fn get_object(
    State(fake): State<Fake>,
    UrlPath((group, version, namespace, resource, name)): UrlPath<(String, String, String, String, String)>,
) -> Response {
    let key = format!("{group}/{version}/{namespace}/{resource}/{name}");
    match fake.store.lock().unwrap().objects.get(&key) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => not_found(&format!("{resource} \"{name}\"")),
    }
}

/// `GET …/pods/{name}/log`, as the kubelet serves it through the API
/// server: the container's log, its last `tailLines` lines, then at most
/// `limitBytes` bytes of those.
async fn pod_log(
    State(fake): State<Fake>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut store = fake.store.lock().unwrap();
    store.log_requests.push((format!("{namespace}/{name}"), query.clone()));
    if store.logs_forbidden {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "pods \"{name}\" is forbidden: User \"system:serviceaccount:kube-once:kube-once\" cannot get \
                 resource \"pods/log\" in API group \"\" in the namespace \"{namespace}\""
            ),
        );
    }
    let Some(container) = query.get("container") else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("a container name must be specified for pod {name}"),
        );
    };
    let log = store.pod_logs.get(&format!("{namespace}/{name}/{container}")).cloned();
    let pod_exists = store.pods.values().any(|pod| pod["metadata"]["name"] == name.as_str());
    drop(store);
    let bytes = match log {
        Some(PodLog::Text(text)) => text.into_bytes(),
        Some(PodLog::File(path)) => std::fs::read(path).unwrap_or_default(),
        None if pod_exists => Vec::new(),
        None => return not_found(&format!("pods \"{name}\"")),
    };
    let mut lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    if let Some(tail) = query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        lines = lines.split_off(lines.len().saturating_sub(tail));
    }
    let mut body = lines.concat();
    if let Some(limit) = query.get("limitBytes").and_then(|n| n.parse::<usize>().ok()) {
        body.truncate(limit);
    }
    ([("content-type", "text/plain")], body).into_response()
}

fn note_event_request(fake: &Shared, store: &mut Store, headers: &HeaderMap) {
    let request = (replica_of(headers), store.lease_holder(&fake.lease));
    store.event_requests.push(request);
}

async fn get_event(
    State(fake): State<Fake>,
    UrlPath((_, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut store = fake.store.lock().unwrap();
    note_event_request(&fake, &mut store, &headers);
    match store.events.get(&name) {
        Some(event) => axum::Json(event.clone()).into_response(),
        None => not_found(&format!("events.events.k8s.io \"{name}\"")),
    }
}

async fn create_event(State(fake): State<Fake>, headers: HeaderMap, axum::Json(event): axum::Json<Value>) -> Response {
    let mut store = fake.store.lock().unwrap();
    note_event_request(&fake, &mut store, &headers);
    assert_eq!(event["reportingInstance"].as_str(), Some(replica_of(&headers).as_str()));
    let version = store.next_version();
    create(&mut store.events, "events", version, event)
}

/// A create as the API server answers it: 409 AlreadyExists for a taken
/// name, else the object stored with its new resourceVersion, 201.
fn create(objects: &mut BTreeMap<String, Value>, resource: &str, version: u64, mut object: Value) -> Response {
    let name = object["metadata"]["name"].as_str().unwrap().to_owned();
    if objects.contains_key(&name) {
        return status(StatusCode::CONFLICT, "AlreadyExists", &format!("{resource} \"{name}\" already exists"));
    }
    object["metadata"]["resourceVersion"] = json!(version.to_string());
    objects.insert(name, object.clone());
    (StatusCode::CREATED, axum::Json(object)).into_response()
}

/// JSON merge patch; a resourceVersion in the patch must match, as with the real API server.
async fn patch_event(
    State(fake): State<Fake>,
    UrlPath((_, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
    axum::Json(patch): axum::Json<Value>,
) -> Response {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(content_type, "application/merge-patch+json");
    let mut store = fake.store.lock().unwrap();
    note_event_request(&fake, &mut store, &headers);
    let Some(mut event) = store.events.get(&name).cloned() else {
        return not_found(&format!("events.events.k8s.io \"{name}\""));
    };
    let wanted = &patch["metadata"]["resourceVersion"];
    if !wanted.is_null() && *wanted != event["metadata"]["resourceVersion"] {
        return conflict(&format!("events \"{name}\""));
    }
    json_patch::merge(&mut event, &patch);
    event["metadata"]["resourceVersion"] = json!(store.next_version().to_string());
    store.events.insert(name, event.clone());
    axum::Json(event).into_response()
}

fn partitioned(store: &Store, headers: &HeaderMap) -> bool {
    store.partitioned.contains(&replica_of(headers))
}

async fn get_lease(
    State(fake): State<Fake>,
    UrlPath((_, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let store = fake.store.lock().unwrap();
    if partitioned(&store, &headers) {
        return cut_off();
    }
    match store.leases.get(&name) {
        Some(lease) => axum::Json(lease.clone()).into_response(),
        None => not_found(&format!("leases.coordination.k8s.io \"{name}\"")),
    }
}

async fn create_lease(State(fake): State<Fake>, headers: HeaderMap, axum::Json(lease): axum::Json<Value>) -> Response {
    let mut store = fake.store.lock().unwrap();
    if partitioned(&store, &headers) {
        return cut_off();
    }
    let version = store.next_version();
    create(&mut store.leases, "leases", version, lease)
}

async fn replace_lease(
    State(fake): State<Fake>,
    UrlPath((_, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let mut store = fake.store.lock().unwrap();
    if partitioned(&store, &headers) {
        return cut_off();
    }
    let Some(stored) = store.leases.get(&name) else { return not_found(&format!("leases \"{name}\"")) };
    if lease["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"] {
        return conflict(&format!("leases.coordination.k8s.io \"{name}\""));
    }
    lease["metadata"]["resourceVersion"] = json!(store.next_version().to_string());
    store.leases.insert(name, lease.clone());
    axum::Json(lease).into_response()
}

/// Serves `app` as an API server on a loopback port until the test ends
/// (also for fakes of other resources, as tests/tls.rs has for Secrets).
pub async fn serve(app: Router) -> SocketAddr {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// The fake API server, serving on a loopback port until the test ends.
pub struct FakeApi {
    shared: Fake,
    address: SocketAddr,
}

impl FakeApi {
    /// An empty cluster whose Event requests are checked against the holder of Lease `lease`.
    pub async fn start(lease: &str) -> FakeApi {
        let (pod_changes, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared { store: Mutex::new(Store::default()), pod_changes, lease: lease.to_owned() });
        let app = Router::new()
            .route("/api/v1/pods", get(pods))
            .route("/api/v1/namespaces/{namespace}/pods/{name}/log", get(pod_log))
            .route("/apis/{group}/{version}/namespaces/{namespace}/{resource}/{name}", get(get_object))
            .route("/apis/events.k8s.io/v1/namespaces/{namespace}/events", post(create_event))
            .route("/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}", get(get_event).patch(patch_event))
            .route("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", post(create_lease))
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
                get(get_lease).put(replace_lease),
            )
            .with_state(shared.clone());
        FakeApi { shared, address: serve(app).await }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The stored state, to inspect or change (cut a replica off).
    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap()
    }

    /// An in-process client that names itself `replica` in a header.
    pub fn client(&self, replica: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().unwrap());
        config.headers.push(("x-replica".parse().unwrap(), replica.parse().unwrap()));
        kube::Client::try_from(config).unwrap()
    }

    /// A kubeconfig for a `serve` process that names itself `replica` (its bearer token).
    pub fn write_kubeconfig(&self, replica: &str, path: &Path) {
        let config = json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url()}}],
            "users": [{"name": replica, "user": {"token": replica}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": replica}}],
        });
        std::fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    }

    /// Stores a Deployment, ReplicaSet or other object the watcher reads.
    pub fn put_object(&self, object: Value) {
        let (group, version) = object["apiVersion"].as_str().unwrap().split_once('/').unwrap();
        let resource = format!("{}s", object["kind"].as_str().unwrap().to_lowercase());
        let (namespace, name) =
            (object["metadata"]["namespace"].as_str().unwrap(), object["metadata"]["name"].as_str().unwrap());
        let key = format!("{group}/{version}/{namespace}/{resource}/{name}");
        self.store().objects.insert(key, object);
    }

    /// Adds (or changes) a pod, as the kubelet's status update would.
    pub fn put_pod(&self, pod: Value) {
        let mut store = self.store();
        let version = store.next_version();
        let mut pod = pod;
        pod["metadata"]["resourceVersion"] = json!(version.to_string());
        let uid = pod["metadata"]["uid"].as_str().unwrap().to_owned();
        let kind = if store.pods.insert(uid, pod.clone()).is_some() { "MODIFIED" } else { "ADDED" };
        store.history.push((version, kind, pod.clone()));
        let _ = self.shared.pod_changes.send((version, kind, pod));
    }

    /// Sets the log of container `container` of pod `namespace/pod`.
    pub fn put_log(&self, namespace: &str, pod: &str, container: &str, log: PodLog) {
        self.store().pod_logs.insert(format!("{namespace}/{pod}/{container}"), log);
    }

    /// Stored Events of `reason`, in name order.
    pub fn events(&self, reason: &str) -> Vec<Value> {
        self.store().events.values().filter(|event| event["reason"] == reason).cloned().collect()
    }

    /// Who holds the Lease given to [`FakeApi::start`].
    pub fn lease_holder(&self) -> Option<String> {
        self.store().lease_holder(&self.shared.lease)
    }
}
