//! Migration Events: the server's pod watcher against an in-process fake
//! API server (pods watched by label selector, ReplicaSets, Deployments,
//! events.k8s.io Events, coordination.k8s.io Leases), as tests/tls.rs does
//! for Secrets. The pods carry kube-once-run's terminated state as the
//! kubelet reports it, with the lock's termination messages.

// Test helpers outside #[test] functions fail loudly too (clippy.toml only covers the functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use kube_once_server::metrics::Metrics;
use kube_once_server::migrations::{self, EventsOptions};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const NAMESPACE: &str = "shop";
const LEASE: &str = "kube-once-events";
/// Short, so a lost Lease changes hands within the test's patience.
const LEASE_DURATION: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- fake API server

#[derive(Default)]
struct Store {
    resource_version: u64,
    pods: BTreeMap<String, Value>,
    /// Every pod change, for watches that start from an older resourceVersion.
    history: Vec<(u64, &'static str, Value)>,
    objects: BTreeMap<String, Value>,
    events: BTreeMap<String, Value>,
    leases: BTreeMap<String, Value>,
    /// (the replica asking, who held the Lease at that moment) per Event
    /// request: reads too, since a replica that reads an Event is about to write it.
    event_requests: Vec<(String, Option<String>)>,
    /// Pod requests without the injected label selector.
    unselected: usize,
    /// Replicas whose Lease requests fail, as if cut off from the API server.
    partitioned: Vec<String>,
}

impl Store {
    fn next_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }
}

struct Fake {
    store: Mutex<Store>,
    pod_changes: broadcast::Sender<(u64, &'static str, Value)>,
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

fn not_found(what: &str) -> Response {
    status(StatusCode::NOT_FOUND, "NotFound", &format!("{what} not found"))
}

fn conflict(what: &str) -> Response {
    status(
        StatusCode::CONFLICT,
        "Conflict",
        &format!("Operation cannot be fulfilled on {what}: the object has been modified"),
    )
}

async fn pods(State(fake): State<Arc<Fake>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let mut store = fake.store.lock().unwrap();
    if query.get("labelSelector").map(String::as_str) != Some("kube-once.io/injected=true") {
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
    State(fake): State<Arc<Fake>>,
    Path((group, version, namespace, resource, name)): Path<(String, String, String, String, String)>,
) -> Response {
    let key = format!("{group}/{version}/{namespace}/{resource}/{name}");
    match fake.store.lock().unwrap().objects.get(&key) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => not_found(&format!("{resource} \"{name}\"")),
    }
}

fn replica_of(headers: &HeaderMap) -> String {
    headers.get("x-replica").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn note_event_request(store: &mut Store, headers: &HeaderMap) {
    let request = (replica_of(headers), lease_holder(store));
    store.event_requests.push(request);
}

async fn get_event(
    State(fake): State<Arc<Fake>>,
    Path((_, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut store = fake.store.lock().unwrap();
    note_event_request(&mut store, &headers);
    match store.events.get(&name) {
        Some(event) => axum::Json(event.clone()).into_response(),
        None => not_found(&format!("events.events.k8s.io \"{name}\"")),
    }
}

fn lease_holder(store: &Store) -> Option<String> {
    store.leases.get(LEASE).and_then(|lease| lease["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

async fn create_event(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    axum::Json(mut event): axum::Json<Value>,
) -> Response {
    let mut store = fake.store.lock().unwrap();
    note_event_request(&mut store, &headers);
    assert_eq!(event["reportingInstance"].as_str(), Some(replica_of(&headers).as_str()));
    let name = event["metadata"]["name"].as_str().unwrap().to_owned();
    if store.events.contains_key(&name) {
        return status(StatusCode::CONFLICT, "AlreadyExists", &format!("events \"{name}\" already exists"));
    }
    event["metadata"]["resourceVersion"] = json!(store.next_version().to_string());
    store.events.insert(name, event.clone());
    (StatusCode::CREATED, axum::Json(event)).into_response()
}

/// JSON merge patch; a resourceVersion in the patch must match, as with the real API server.
async fn patch_event(
    State(fake): State<Arc<Fake>>,
    Path((_, name)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(patch): axum::Json<Value>,
) -> Response {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(content_type, "application/merge-patch+json");
    let mut store = fake.store.lock().unwrap();
    note_event_request(&mut store, &headers);
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
    let replica = replica_of(headers);
    store.partitioned.contains(&replica)
}

async fn get_lease(
    State(fake): State<Arc<Fake>>,
    Path((_, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let store = fake.store.lock().unwrap();
    if partitioned(&store, &headers) {
        return status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "cut off");
    }
    match store.leases.get(&name) {
        Some(lease) => axum::Json(lease.clone()).into_response(),
        None => not_found(&format!("leases.coordination.k8s.io \"{name}\"")),
    }
}

async fn create_lease(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let mut store = fake.store.lock().unwrap();
    if partitioned(&store, &headers) {
        return status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "cut off");
    }
    let name = lease["metadata"]["name"].as_str().unwrap().to_owned();
    if store.leases.contains_key(&name) {
        return status(StatusCode::CONFLICT, "AlreadyExists", &format!("leases \"{name}\" already exists"));
    }
    lease["metadata"]["resourceVersion"] = json!(store.next_version().to_string());
    store.leases.insert(name, lease.clone());
    (StatusCode::CREATED, axum::Json(lease)).into_response()
}

async fn replace_lease(
    State(fake): State<Arc<Fake>>,
    Path((_, name)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let mut store = fake.store.lock().unwrap();
    if partitioned(&store, &headers) {
        return status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "cut off");
    }
    let Some(stored) = store.leases.get(&name) else { return not_found(&format!("leases \"{name}\"")) };
    if lease["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"] {
        return conflict(&format!("leases.coordination.k8s.io \"{name}\""));
    }
    lease["metadata"]["resourceVersion"] = json!(store.next_version().to_string());
    store.leases.insert(name, lease.clone());
    axum::Json(lease).into_response()
}

struct ApiServer {
    fake: Arc<Fake>,
    address: std::net::SocketAddr,
}

impl ApiServer {
    /// A fake API server holding Deployment `web` and its ReplicaSet.
    async fn start() -> ApiServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (pod_changes, _) = broadcast::channel(1024);
        let fake = Arc::new(Fake { store: Mutex::new(Store::default()), pod_changes });
        {
            let mut store = fake.store.lock().unwrap();
            let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": NAMESPACE, "uid": "uid-deployment-web"}});
            let replica_set = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-7d9", "namespace": NAMESPACE, "uid": "uid-rs-web-7d9",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                        "uid": "uid-deployment-web", "controller": true}]}});
            store.objects.insert(format!("apps/v1/{NAMESPACE}/deployments/web"), deployment);
            store.objects.insert(format!("apps/v1/{NAMESPACE}/replicasets/web-7d9"), replica_set);
        }
        let app = Router::new()
            .route("/api/v1/pods", get(pods))
            .route("/apis/{group}/{version}/namespaces/{namespace}/{resource}/{name}", get(get_object))
            .route("/apis/events.k8s.io/v1/namespaces/{namespace}/events", axum::routing::post(create_event))
            .route("/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}", get(get_event).patch(patch_event))
            .route("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", axum::routing::post(create_lease))
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
                get(get_lease).put(replace_lease),
            )
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        ApiServer { fake, address }
    }

    /// A client that names itself `replica` in a header, so the fake can cut it off.
    fn client(&self, replica: &str) -> kube::Client {
        let mut config = kube::Config::new(format!("http://{}", self.address).parse().unwrap());
        config.headers.push(("x-replica".parse().unwrap(), replica.parse().unwrap()));
        kube::Client::try_from(config).unwrap()
    }

    /// Adds (or changes) a pod, as the kubelet's status update would.
    fn put_pod(&self, pod: Value) {
        let mut store = self.fake.store.lock().unwrap();
        let version = store.next_version();
        let mut pod = pod;
        pod["metadata"]["resourceVersion"] = json!(version.to_string());
        let uid = pod["metadata"]["uid"].as_str().unwrap().to_owned();
        let kind = if store.pods.insert(uid, pod.clone()).is_some() { "MODIFIED" } else { "ADDED" };
        store.history.push((version, kind, pod.clone()));
        let _ = self.fake.pod_changes.send((version, kind, pod));
    }

    fn events(&self, reason: &str) -> Vec<Value> {
        let store = self.fake.store.lock().unwrap();
        store.events.values().filter(|event| event["reason"] == reason).cloned().collect()
    }

    fn lease_holder(&self) -> Option<String> {
        lease_holder(&self.fake.store.lock().unwrap())
    }
}

/// A pod of ReplicaSet web-7d9 whose kube-once-run terminated with `exit_code` and `message`.
fn pod(name: &str, key: &str, exit_code: i32, message: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": NAMESPACE, "uid": format!("uid-{name}"),
            "labels": {"kube-once.io/injected": "true", "app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9",
                "uid": "uid-rs-web-7d9", "controller": true}],
        },
        "spec": {
            "initContainers": [
                {"name": "kube-once-install", "image": "kube-once:1"},
                {"name": "kube-once-run", "image": "shop:2", "terminationMessagePolicy": "FallbackToLogsOnError",
                    "env": [{"name": "KUBE_ONCE_KEY", "value": key}, {"name": "KUBE_ONCE_TIMEOUT", "value": "15m"}]},
            ],
            "containers": [{"name": "app", "image": "shop:2"}],
        },
        "status": {"initContainerStatuses": [{
            "name": "kube-once-run", "ready": false, "restartCount": 0, "image": "shop:2", "imageID": "",
            "containerID": format!("containerd://{name}-1"),
            "state": {"terminated": {"exitCode": exit_code, "reason": if exit_code == 0 { "Completed" } else { "Error" },
                "message": message, "containerID": format!("containerd://{name}-1"),
                "finishedAt": k8s_openapi::jiff::Timestamp::now().to_string()}},
        }]},
    })
}

/// One webhook replica recording, until dropped.
struct Replica {
    stop: CancellationToken,
    metrics: Metrics,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn replica(api: &ApiServer, name: &str) -> Replica {
    let options = EventsOptions {
        namespace: "kube-once".to_owned(),
        lease: LEASE.to_owned(),
        identity: name.to_owned(),
        lease_duration: LEASE_DURATION,
    };
    let stop = CancellationToken::new();
    let metrics = Metrics::default();
    migrations::spawn(api.client(name), &options, metrics.migrations(), stop.clone());
    Replica { stop, metrics }
}

const FAILED: &str = "failed: exit 1 after 4.2 s; last lines: ERROR: relation \"users\" already exists";

async fn wait(what: &str, condition: impl Fn() -> bool) {
    support::wait::until(what, || std::future::ready(condition())).await.unwrap();
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migration_is_a_warning_on_the_deployment_with_the_exit_code_and_the_pod() {
    let api = ApiServer::start().await;
    let recorder = replica(&api, "kube-once-0");
    api.put_pod(pod("web-7d9-a", "k1", 1, FAILED));
    wait("a MigrationFailed Event", || !api.events("MigrationFailed").is_empty()).await;

    let [event] = &api.events("MigrationFailed")[..] else { panic!("one Event: {:?}", api.events("MigrationFailed")) };
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reportingController"], "kube-once");
    assert_eq!(event["reportingInstance"], "kube-once-0");
    assert_eq!(event["regarding"]["kind"], "Deployment", "on the Deployment, not the ReplicaSet: {event}");
    assert_eq!(event["regarding"]["name"], "web");
    assert_eq!(event["regarding"]["uid"], "uid-deployment-web");
    assert_eq!(event["related"]["name"], "web-7d9-a");
    let note = event["note"].as_str().unwrap();
    assert!(note.contains("web-7d9-a") && note.contains("exited 1"), "{note}");
    assert!(note.contains("relation \"users\" already exists"), "{note}");

    let text = recorder.metrics.render().unwrap();
    let failed = r#"kube_once_migrations_total{namespace="shop",deployment="web",outcome="failed"} 1"#;
    assert!(text.lines().any(|line| line == failed), "{text}");
    assert!(text.contains(r#"kube_once_migration_last_failure_timestamp_seconds{namespace="shop",deployment="web"}"#));
    assert_eq!(api.fake.store.lock().unwrap().unselected, 0, "pods are only ever asked for by the injected label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failing_pods_of_one_key_are_one_event_with_a_series_count() {
    let api = ApiServer::start().await;
    // Two before the watch starts (the list), three after (the watch).
    api.put_pod(pod("web-7d9-a", "k1", 1, FAILED));
    api.put_pod(pod("web-7d9-b", "k1", 1, FAILED));
    let recorder = replica(&api, "kube-once-0");
    for name in ["web-7d9-c", "web-7d9-d", "web-7d9-e"] {
        api.put_pod(pod(name, "k1", 1, FAILED));
    }
    // The same pod sent again (a status update that changed something else) is not counted twice.
    let mut again = pod("web-7d9-e", "k1", 1, FAILED);
    again["metadata"]["labels"]["touched"] = json!("yes");
    api.put_pod(again);
    let count = |event: &Value| event["series"]["count"].as_i64().unwrap_or(1);
    wait("five occurrences", || api.events("MigrationFailed").iter().map(count).sum::<i64>() >= 5).await;
    // Another key is another migration: its own Event.
    api.put_pod(pod("web-8f1-a", "k2", 1, FAILED));
    wait("the second key's Event", || api.events("MigrationFailed").len() == 2).await;

    let events = api.events("MigrationFailed");
    let counts: Vec<i64> = events.iter().map(count).collect();
    assert!(counts.contains(&5) && counts.contains(&1), "one Event of count 5 for k1, one for k2: {events:#?}");
    let text = recorder.metrics.render().unwrap();
    let failed = r#"kube_once_migrations_total{namespace="shop",deployment="web",outcome="failed"} 6"#;
    assert!(text.lines().any(|line| line == failed), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_that_ran_is_a_normal_event_and_skips_are_counted_only() {
    let api = ApiServer::start().await;
    let recorder = replica(&api, "kube-once-0");
    api.put_pod(pod("web-7d9-a", "k1", 0, "ran \"flask db upgrade\" in 12.3 s (key k1)"));
    api.put_pod(pod("web-7d9-b", "k1", 0, "skipped: done by pod web-7d9-a at 10:02:11Z"));
    wait("a MigrationRan Event", || !api.events("MigrationRan").is_empty()).await;
    let skipped = r#"kube_once_migrations_total{namespace="shop",deployment="web",outcome="skipped"} 1"#;
    wait("the skip counted", || recorder.metrics.render().unwrap().lines().any(|line| line == skipped)).await;

    let [event] = &api.events("MigrationRan")[..] else { panic!("one Event") };
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["regarding"]["name"], "web");
    assert!(event["note"].as_str().unwrap().contains("flask db upgrade"), "{event}");
    assert_eq!(api.fake.store.lock().unwrap().events.len(), 1, "a skip writes no Event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_both_record_and_a_cut_off_holder_stops_within_its_lease() {
    let api = ApiServer::start().await;
    let replicas = [replica(&api, "kube-once-0"), replica(&api, "kube-once-1")];
    wait("a Lease holder", || api.lease_holder().is_some()).await;
    api.put_pod(pod("web-7d9-a", "k1", 1, FAILED));
    wait("the first failure recorded", || !api.events("MigrationFailed").is_empty()).await;
    let first = api.lease_holder().unwrap();

    // The holder loses the API server for its Lease (not for Events): the
    // other replica takes over after a lease duration, and the first must
    // have stopped by then.
    api.fake.store.lock().unwrap().partitioned.push(first.clone());
    wait("the other replica holding the Lease", || api.lease_holder().is_some_and(|holder| holder != first)).await;
    api.put_pod(pod("web-7d9-b", "k1", 1, FAILED));
    api.put_pod(pod("web-7d9-c", "k1", 0, "ran \"flask db upgrade\" in 1.0 s (key k1)"));
    wait("both recorded", || {
        let failed = api.events("MigrationFailed");
        failed.first().is_some_and(|event| event["series"]["count"] == 2) && !api.events("MigrationRan").is_empty()
    })
    .await;

    let requests = api.fake.store.lock().unwrap().event_requests.clone();
    for (replica, holder) in &requests {
        assert_eq!(Some(replica), holder.as_ref(), "Events touched by a replica not holding the Lease: {requests:?}");
    }
    let writers: std::collections::BTreeSet<_> = requests.iter().map(|(replica, _)| replica.clone()).collect();
    assert_eq!(writers.len(), 2, "each replica recorded while it held the Lease: {requests:?}");
    // Each replica counted only what it recorded.
    let counted = |replica: &Replica| {
        let text = replica.metrics.render().unwrap();
        text.lines()
            .filter(|l| l.starts_with("kube_once_migrations_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    assert_eq!(counted(&replicas[0]) + counted(&replicas[1]), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waiting_past_half_its_timeout_is_a_warning_once() {
    let api = ApiServer::start().await;
    let _recorder = replica(&api, "kube-once-0");
    // kube-once-run started 2 s ago with a 3 s timeout: past half of it.
    let mut waiting = pod("web-7d9-w", "k1", 0, "");
    waiting["spec"]["initContainers"][1]["env"][1]["value"] = json!("3s");
    let started = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(2);
    waiting["status"]["initContainerStatuses"][0]["state"] = json!({"running": {"startedAt": started.to_string()}});
    // One that started just now with a long timeout is not reported.
    let mut patient = pod("web-7d9-p", "k1", 0, "");
    patient["status"]["initContainerStatuses"][0]["state"] =
        json!({"running": {"startedAt": k8s_openapi::jiff::Timestamp::now().to_string()}});
    api.put_pod(patient);
    api.put_pod(waiting.clone());
    wait("a MigrationWaiting Event", || !api.events("MigrationWaiting").is_empty()).await;
    // Sent again, the same wait is not reported again.
    waiting["metadata"]["labels"]["touched"] = json!("yes");
    api.put_pod(waiting);
    api.put_pod(pod("web-7d9-x", "k1", 1, FAILED));
    wait("a later failure recorded", || !api.events("MigrationFailed").is_empty()).await;

    let [event] = &api.events("MigrationWaiting")[..] else {
        panic!("one Event: {:?}", api.events("MigrationWaiting"))
    };
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["name"], "web");
    assert_eq!(event["related"]["name"], "web-7d9-w", "the waiting pod, not the patient one");
    assert!(event["series"].is_null(), "reported once: {event}");
    let note = event["note"].as_str().unwrap();
    assert!(note.contains("web-7d9-w") && note.contains("3s"), "{note}");
}
