//! Migration Events: the server's pod watcher against the in-process fake
//! API server of `support::fake_api` (pods watched by label selector,
//! ReplicaSets, Deployments, events.k8s.io Events, coordination.k8s.io
//! Leases, pod logs). The pods carry kube-once-run's terminated state as the
//! kubelet reports it, with the lock's termination messages.

// Test helpers outside #[test] functions fail loudly too (clippy.toml only covers the functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kube_once_server::metrics::Metrics;
use kube_once_server::migrations::{self, EventsOptions};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use support::fake_api::{FakeApi, PodLog};

const NAMESPACE: &str = "shop";
const LEASE: &str = "kube-once-events";
/// Short, so a lost Lease changes hands within the test's patience.
const LEASE_DURATION: Duration = Duration::from_secs(1);

/// A fake API server holding Deployment `web` and its ReplicaSet.
async fn start_api() -> FakeApi {
    let api = FakeApi::start(LEASE).await;
    api.put_object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NAMESPACE, "uid": "uid-deployment-web"}}));
    api.put_object(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-7d9", "namespace": NAMESPACE, "uid": "uid-rs-web-7d9",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                "uid": "uid-deployment-web", "controller": true}]}}));
    api
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

fn replica(api: &FakeApi, name: &str) -> Replica {
    replica_reading_logs(api, name, true)
}

fn replica_reading_logs(api: &FakeApi, name: &str, holder_from_logs: bool) -> Replica {
    let options = EventsOptions {
        namespace: "kube-once".to_owned(),
        lease: LEASE.to_owned(),
        identity: name.to_owned(),
        lease_duration: LEASE_DURATION,
        holder_from_logs,
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
    let api = start_api().await;
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

    // Counted after the Event is written.
    let failed = r#"kube_once_migrations_total{namespace="shop",deployment="web",outcome="failed"} 1"#;
    wait("the failure counted", || recorder.metrics.render().unwrap().lines().any(|line| line == failed)).await;
    let text = recorder.metrics.render().unwrap();
    assert!(text.contains(r#"kube_once_migration_last_failure_timestamp_seconds{namespace="shop",deployment="web"}"#));
    assert_eq!(api.store().unselected, 0, "pods are only ever asked for by the injected label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failing_pods_of_one_key_are_one_event_with_a_series_count() {
    let api = start_api().await;
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
    // Counted after the Event is written.
    let failed = r#"kube_once_migrations_total{namespace="shop",deployment="web",outcome="failed"} 6"#;
    wait("six failures counted", || recorder.metrics.render().unwrap().lines().any(|line| line == failed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_that_ran_is_a_normal_event_and_skips_are_counted_only() {
    let api = start_api().await;
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
    assert_eq!(api.store().events.len(), 1, "a skip writes no Event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_both_record_and_a_cut_off_holder_stops_within_its_lease() {
    let api = start_api().await;
    let replicas = [replica(&api, "kube-once-0"), replica(&api, "kube-once-1")];
    wait("a Lease holder", || api.lease_holder().is_some()).await;
    api.put_pod(pod("web-7d9-a", "k1", 1, FAILED));
    wait("the first failure recorded", || !api.events("MigrationFailed").is_empty()).await;
    let first = api.lease_holder().unwrap();

    // The holder loses the API server for its Lease (not for Events): the
    // other replica takes over after a lease duration, and the first must
    // have stopped by then.
    api.store().partitioned.push(first.clone());
    wait("the other replica holding the Lease", || api.lease_holder().is_some_and(|holder| holder != first)).await;
    api.put_pod(pod("web-7d9-b", "k1", 1, FAILED));
    api.put_pod(pod("web-7d9-c", "k1", 0, "ran \"flask db upgrade\" in 1.0 s (key k1)"));
    wait("both recorded", || {
        let failed = api.events("MigrationFailed");
        failed.first().is_some_and(|event| event["series"]["count"] == 2) && !api.events("MigrationRan").is_empty()
    })
    .await;

    let requests = api.store().event_requests.clone();
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
    // A replica counts an outcome after its Event is written: wait for the
    // counts, then check that nothing was counted twice.
    let total = || counted(&replicas[0]) + counted(&replicas[1]);
    wait("the three outcomes counted", || total() >= 3).await;
    assert_eq!(total(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waiting_past_half_its_timeout_is_a_warning_once() {
    let api = start_api().await;
    let _recorder = replica(&api, "kube-once-0");
    let mut waiting = waiting_pod("web-7d9-w");
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

/// A pod whose kube-once-run started 2 s ago with a 3 s timeout: past half of it.
fn waiting_pod(name: &str) -> Value {
    let mut waiting = pod(name, "k1", 0, "");
    waiting["spec"]["initContainers"][1]["env"][1]["value"] = json!("3s");
    let started = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(2);
    waiting["status"]["initContainerStatuses"][0]["state"] = json!({"running": {"startedAt": started.to_string()}});
    waiting
}

/// Lines as the pod binary writes them while it waits (taken from real
/// runs on PostgreSQL, `--log-format json` and `text`).
const JSON_LOG: &str = r#"{"timestamp":"2026-12-06T15:17:40.101Z","level":"INFO","message":"connecting to the database","event":"connecting","target":"kube_once_lock"}
{"timestamp":"2026-12-06T15:17:44.730031Z","level":"INFO","message":"waiting for lock `kube-once`, held by pid 29263 application_name=\"shop/web/web-7d9-h\" from 10.0.3.7, connected for 4s","event":"waiting","lock":"kube-once","holder":"pid 29263 application_name=\"shop/web/web-7d9-h\" from 10.0.3.7, connected for 4s","waited_s":0,"target":"kube_once_lock"}
{"timestamp":"2026-12-06T15:17:49.730031Z","level":"INFO","message":"waiting for lock `kube-once`, held by pid 29263 application_name=\"shop/web/web-7d9-h\" from 10.0.3.7, connected for 9s","event":"waiting","lock":"kube-once","holder":"pid 29263 application_name=\"shop/web/web-7d9-h\" from 10.0.3.7, connected for 9s","waited_s":5,"target":"kube_once_lock"}
"#;
const TEXT_LOG: &str = r#"2026-12-06T15:17:41.701998Z  INFO kube_once_lock: waiting for lock `kube-once`, held by pid 29263 application_name="shop/web/web-7d9-h" from 10.0.3.7, connected for 1s event="waiting" lock="kube-once" holder="pid 29263 application_name=\"shop/web/web-7d9-h\" from 10.0.3.7, connected for 1s" waited_s=0
"#;

/// One replica (reading logs or not) and a pod waiting past half its
/// timeout whose kube-once-run log is `log`: the one MigrationWaiting
/// Event's note, and the log requests made.
async fn waiting_note(
    holder_from_logs: bool,
    log: Option<PodLog>,
    forbidden: bool,
) -> (String, Vec<(String, std::collections::HashMap<String, String>)>) {
    let api = start_api().await;
    api.store().logs_forbidden = forbidden;
    if let Some(log) = log {
        api.put_log(NAMESPACE, "web-7d9-w", "kube-once-run", log);
    }
    let _recorder = replica_reading_logs(&api, "kube-once-0", holder_from_logs);
    api.put_pod(waiting_pod("web-7d9-w"));
    wait("a MigrationWaiting Event", || !api.events("MigrationWaiting").is_empty()).await;
    let [event] = &api.events("MigrationWaiting")[..] else {
        panic!("one Event: {:?}", api.events("MigrationWaiting"))
    };
    assert_eq!(event["related"]["name"], "web-7d9-w");
    let note = event["note"].as_str().unwrap().to_owned();
    assert!(note.starts_with("pod web-7d9-w has waited 2s of its 3s for the migration lock"), "{note}");
    let requests = api.store().log_requests.clone();
    (note, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_event_names_the_holder_from_the_pods_newest_json_waiting_line() {
    let (note, requests) = waiting_note(true, Some(PodLog::Text(JSON_LOG.to_owned())), false).await;
    assert_eq!(
        note,
        "pod web-7d9-w has waited 2s of its 3s for the migration lock, held by pid 29263 \
         application_name=\"shop/web/web-7d9-h\" from 10.0.3.7, connected for 9s"
    );
    // Read once, kube-once-run's log only, a bounded tail.
    let [(pod, query)] = &requests[..] else { panic!("one log request: {requests:?}") };
    assert_eq!(pod, "shop/web-7d9-w");
    assert_eq!(query.get("container").map(String::as_str), Some("kube-once-run"));
    assert_eq!(query.get("tailLines").map(String::as_str), Some("20"));
    assert_eq!(query.get("limitBytes").map(String::as_str), Some("32768"));
    assert!(!query.contains_key("follow") || query["follow"] == "false", "{query:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_event_names_the_holder_from_a_text_waiting_line() {
    let (note, _) = waiting_note(true, Some(PodLog::Text(TEXT_LOG.to_owned())), false).await;
    assert!(
        note.ends_with(", held by pid 29263 application_name=\"shop/web/web-7d9-h\" from 10.0.3.7, connected for 1s"),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_log_the_waiting_event_says_why_and_where_the_holder_is_named() {
    let (forbidden, _) = waiting_note(true, Some(PodLog::Text(JSON_LOG.to_owned())), true).await;
    assert!(
        forbidden.contains("serve may not read pod logs") && forbidden.contains("events.holderFromLogs"),
        "{forbidden}"
    );
    let (no_line, _) = waiting_note(true, Some(PodLog::Text("connecting\n".to_owned())), false).await;
    assert!(no_line.contains("no `waiting` line in its log yet"), "{no_line}");
    let (off, requests) = waiting_note(false, Some(PodLog::Text(JSON_LOG.to_owned())), false).await;
    assert!(off.contains("serve reads no pod logs"), "{off}");
    assert!(requests.is_empty(), "turned off, no log is read: {requests:?}");
    for note in [forbidden, no_line, off] {
        assert!(!note.contains("held by"), "{note}");
        assert!(note.contains("kubectl logs web-7d9-w -c kube-once-run"), "says where the holder is named: {note}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_waiting_line_does_not_reach_the_note_verbatim() {
    // Control characters (a terminal title, a forged line, a bidi override)
    // and a 20 KB holder: the copy is cleaned and cut.
    let hostile = format!("evil\u{1b}]0;pwned\u{7}\r\nWarning Forged \u{202e}txt.exe {}", "x".repeat(20_000));
    let line = json!({"event": "waiting", "holder": hostile, "target": "kube_once_lock"}).to_string();
    let (note, _) = waiting_note(true, Some(PodLog::Text(format!("{line}\n"))), false).await;
    assert!(!note.chars().any(|c| c.is_control() || c == '\u{202e}'), "{note:?}");
    assert!(note.contains("held by evil ]0;pwned Warning Forged txt.exe xxx"), "{note}");
    assert!(note.len() < 512, "{} bytes", note.len());
    // A 1 MB line after the real ones: limitBytes cuts it, so it is no
    // `waiting` line at all, and the newest whole one names the holder.
    let huge = json!({"event": "waiting", "holder": "y".repeat(1 << 20), "target": "kube_once_lock"}).to_string();
    let (cut, _) = waiting_note(true, Some(PodLog::Text(format!("{JSON_LOG}{huge}\n"))), false).await;
    assert!(cut.ends_with("connected for 9s"), "{cut}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_log_says_it_acquired_the_lock_runs_its_command_and_is_not_waiting() {
    let api = start_api().await;
    let acquired = r#"{"level":"INFO","message":"lock acquired","event":"acquired","target":"kube_once_lock"}"#;
    let log = format!("{JSON_LOG}{acquired}\nINFO  [alembic.runtime.migration] Running upgrade 1f2e -> 2a1f\n");
    api.put_log(NAMESPACE, "web-7d9-w", "kube-once-run", PodLog::Text(log));
    let _recorder = replica(&api, "kube-once-0");
    api.put_pod(waiting_pod("web-7d9-w"));
    wait("its log read", || !api.store().log_requests.is_empty()).await;
    api.put_pod(pod("web-7d9-x", "k1", 1, FAILED));
    wait("a later failure recorded", || !api.events("MigrationFailed").is_empty()).await;
    assert!(api.events("MigrationWaiting").is_empty(), "{:?}", api.events("MigrationWaiting"));
}
