//! A pod waiting for the lock past half its timeout, end to end: one pod of
//! the rollout holds the lock (its migration runs until the test lets it
//! finish), a second waits; the kubelet stand-in reports both as running
//! and serves each one's `kube-once-run` output as its log through the fake
//! API server, and the chart's `serve` (two replicas) records exactly one
//! `MigrationWaiting` on the Deployment, naming the holder pod as the
//! waiting pod's own `waiting` line does: on PostgreSQL by its
//! `application_name` (`namespace/deployment/pod`), on MariaDB, whose lock
//! names only a connection, by the holder's `running` row.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::admission::Operation;
use crate::api_server::ApiServer;
use crate::app_image::ScriptedApp;
use crate::cluster::str_at;
use crate::corpus::DatabaseKind;
use crate::failures::{DEPLOYMENT, DEPLOYMENT_UID, Database, LockDatabase, NAMESPACE, Stage, admit};
use crate::kubelet::{Images, OnStart, PodRun, Started, run_pods_reporting, template_hash};
use crate::support::fake_api::{FakeApi, PodLog};
use crate::support::wait;

const RUN: &str = "kube-once-run";
/// The pods' wait for the lock: the Event comes after half of it, and the
/// waiting pod must still be waiting then, on a slow machine too.
const TIMEOUT: &str = "16s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waiting_past_half_its_timeout_is_one_event_naming_the_holder_on_postgres() -> Result<()> {
    waiting_on(DatabaseKind::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waiting_past_half_its_timeout_is_one_event_naming_the_holder_on_mariadb() -> Result<()> {
    waiting_on(DatabaseKind::Mysql).await
}

async fn waiting_on(kind: DatabaseKind) -> Result<()> {
    let work = tempfile::tempdir()?;
    let database = LockDatabase::create(Database::Server(kind), work.path()).await?;
    let result = play(kind, &database.url, work.path()).await;
    database.drop_database().await?;
    result
}

async fn play(kind: DatabaseKind, url: &str, work: &Path) -> Result<()> {
    // A short Lease: the recording replica checks running pods every third of it.
    let Stage { installation, api, webhooks, cluster } =
        Stage::set(work, &["events.leaseDurationSeconds=3"], url).await?;
    let (api, cluster) = (Arc::new(api), Arc::new(cluster));
    let admission =
        ApiServer { webhook: &webhooks[0], configuration: &installation.webhook_configuration, cluster: &cluster };
    let injected = admit(&admission, Operation::Create, &deployment(), None).await?;
    let template = injected.pointer("/spec/template").context("no pod template")?.clone();

    let app = ScriptedApp::new(work, "held-migrate.sh")?;
    let release = work.join("release");
    let tools_image = str_at(&installation.config, "/toolsImage").context("no toolsImage in the rendered config")?;
    let mut images = Images::new();
    images.insert(tools_image.to_owned(), crate::tools_image_stand_in());
    images.insert("shop:1".to_owned(), app.image([("APP_RELEASE", release.display().to_string())]));
    let images = Arc::new(images);
    let hash = template_hash(&template);
    let (holder, waiter) = (format!("{DEPLOYMENT}-{hash}-0"), format!("{DEPLOYMENT}-{hash}-1"));
    let on_start = kubelet_reports(&api, &template, &hash);
    let start = |name: &str| {
        let (names, template, cluster, images, root, on_start) =
            ([name.to_owned()], template.clone(), cluster.clone(), images.clone(), work.join("pods"), on_start.clone());
        tokio::spawn(async move {
            run_pods_reporting(&names, NAMESPACE, &template, &cluster, &images, &root, Some(on_start)).await
        })
    };

    // The holder first: its migration runs (so it holds the lock) before the other pod starts.
    let holding = start(&holder);
    wait::until_holds("the holder's migration running", || app.runs() == 1).await.map_err(anyhow::Error::msg)?;
    let waiting = start(&waiter);
    let waited = wait::until_holds("MigrationWaiting on the Deployment", || !api.events("MigrationWaiting").is_empty())
        .await
        .map_err(anyhow::Error::msg);
    std::fs::write(&release, "")?;
    let pods = [holding.await??, waiting.await??].concat();
    waited?;

    // The holder has run past half its timeout too, but its log says it
    // acquired the lock: it is looked at, and gets no Event.
    let looked_at = |pod: &str| api.store().log_requests.iter().any(|(p, _)| *p == format!("{NAMESPACE}/{pod}"));
    wait::until_holds("the holder's log read", || looked_at(&holder)).await.map_err(anyhow::Error::msg)?;
    let events = api.events("MigrationWaiting");
    let [event] = &events[..] else { anyhow::bail!("exactly one MigrationWaiting: {events:#?}") };
    ensure!(event["type"] == "Warning" && event["regarding"]["name"] == DEPLOYMENT, "{event}");
    ensure!(event["related"]["name"] == waiter.as_str(), "the Event is about the waiting pod: {event}");
    ensure!(event["series"].is_null(), "counted once: the holder's own long run is no wait: {event}");
    let note = event["note"].as_str().unwrap_or_default();
    ensure!(
        note.starts_with(&format!("pod {waiter} has waited ")) && note.contains(&format!("of its {TIMEOUT} ")),
        "{note}"
    );
    let (named, pod) = match kind {
        DatabaseKind::Postgres => (", held by pid ", format!("application_name=\"{NAMESPACE}/{DEPLOYMENT}/{holder}\"")),
        _ => (", held by connection ", format!("running row: {NAMESPACE}/{DEPLOYMENT}/{holder}, heartbeat ")),
    };
    ensure!(
        note.contains(named) && note.contains(&pod),
        "the note names the holder pod as the waiting pod's log does: {note}"
    );
    eprintln!("MigrationWaiting: {note}");
    let requests = api.store().log_requests.clone();
    ensure!(
        requests.iter().all(|(_, query)| query.get("container").map(String::as_str) == Some(RUN)),
        "only kube-once-run's log is read: {requests:?}"
    );

    // Both finish once the holder's migration does: it ran once, the other skipped.
    ensure!(app.runs() == 1, "the migration ran {} times", app.runs());
    let message = |pod: &PodRun| pod.terminated.iter().find(|t| t.container == RUN).map(|t| t.message.clone());
    for pod in &pods {
        ensure!(pod.failure.is_none(), "{} did not reach its main container: {pod:?}", pod.name);
    }
    let messages: Vec<_> = pods.iter().map(message).collect();
    ensure!(
        messages[0].as_deref().is_some_and(|m| m.starts_with("ran "))
            && messages[1].as_deref().is_some_and(|m| m.starts_with("skipped: ")),
        "{messages:?}"
    );
    Ok(())
}

/// The user's Deployment: a migration under kube-once with a short timeout.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE, "uid": DEPLOYMENT_UID,
                     "annotations": {"kube-once.io/run": "flask db upgrade", "kube-once.io/timeout": TIMEOUT}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app": DEPLOYMENT}},
                "spec": {"containers": [{
                    "name": "app", "image": "shop:1", "command": ["gunicorn", "app:app"],
                    "env": [{"name": "DATABASE_URL",
                             "valueFrom": {"secretKeyRef": {"name": "web-db", "key": "DATABASE_URL"}}}],
                }]},
            },
        },
    })
}

/// What the kubelet tells the API server when kube-once-run starts: the
/// pod, its container running since now, and its output as the container's log.
fn kubelet_reports(api: &Arc<FakeApi>, template: &Value, hash: &str) -> OnStart {
    let replica_set = format!("{DEPLOYMENT}-{hash}");
    api.put_object(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": replica_set, "namespace": NAMESPACE, "uid": format!("uid-{replica_set}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT,
                "uid": DEPLOYMENT_UID, "controller": true}]}}));
    let (api, template) = (api.clone(), template.clone());
    Arc::new(move |started: Started| {
        if started.container != RUN {
            return;
        }
        api.put_log(NAMESPACE, &started.pod, RUN, PodLog::File(started.log.clone()));
        let mut metadata = template["metadata"].clone();
        metadata["name"] = json!(started.pod);
        metadata["namespace"] = json!(NAMESPACE);
        metadata["uid"] = json!(format!("uid-{}", started.pod));
        metadata["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set,
            "uid": format!("uid-{replica_set}"), "controller": true}]);
        let id = format!("containerd://{}-{RUN}-0", started.pod);
        let status = json!({"name": RUN, "ready": false, "restartCount": 0, "image": "", "imageID": "",
            "containerID": id, "state": {"running": {"startedAt": started.started_at.to_string()}}});
        api.put_pod(json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": template["spec"], "status": {"initContainerStatuses": [status]}}));
    })
}
