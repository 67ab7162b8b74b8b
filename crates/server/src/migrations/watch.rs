//! The watch of injected pods, while this replica holds the Lease: list,
//! then watch from the list's resourceVersion (a relist on 410 Gone), and
//! every few seconds a look at the runs still waiting for the lock.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchEvent, WatchParams};
use tokio_util::sync::CancellationToken;

use super::events::{Occurrence, Reason, Recorder};
use super::lease::Leadership;
use super::observe::{LABEL_SELECTOR, Outcome, RunPod, Running, Termination, observe};
use crate::metrics::MigrationMetrics;

/// How far owner references are followed (pod → ReplicaSet → Deployment is two).
const MAX_OWNER_DEPTH: usize = 4;
/// Longest pause between two attempts after the API server failed us.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct Watcher {
    client: Client,
    pods: Api<RunPod>,
    recorder: Recorder,
    metrics: MigrationMetrics,
    leadership: Leadership,
    /// Terminations that finished this long before a term began may have
    /// been recorded by the previous holder; older ones are not recorded again.
    overlap: Duration,
    /// How often running pods are checked against half their timeout.
    check_every: Duration,
    /// (pod uid, run) already handled: watches send a pod again on every change.
    seen: HashSet<(String, String)>,
    /// Pods whose kube-once-run runs now, by uid.
    running: HashMap<String, (RunPod, String, Running)>,
    /// (pod uid, run) whose wait was already reported.
    warned: HashSet<(String, String)>,
    /// The workload each owner (by uid) belongs to.
    workloads: HashMap<String, ObjectReference>,
    term_started: Timestamp,
}

impl Watcher {
    pub fn new(
        client: Client,
        recorder: Recorder,
        metrics: MigrationMetrics,
        leadership: Leadership,
        overlap: Duration,
        check_every: Duration,
    ) -> Self {
        Self {
            pods: Api::all_with(client.clone(), &ApiResource::erase::<Pod>(&())),
            client,
            recorder,
            metrics,
            leadership,
            overlap,
            check_every,
            seen: HashSet::new(),
            running: HashMap::new(),
            warned: HashSet::new(),
            workloads: HashMap::new(),
            term_started: Timestamp::now(),
        }
    }

    /// Records while this replica holds the Lease, until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let mut acquired = self.leadership.clone();
            tokio::select! {
                () = stop.cancelled() => return,
                () = acquired.acquired() => {}
            }
            self.term_started = Timestamp::now();
            tracing::info!(selector = LABEL_SELECTOR, "watching injected pods to record migration Events");
            let mut lost = self.leadership.clone();
            tokio::select! {
                () = stop.cancelled() => return,
                () = lost.lost() => tracing::info!("lost the Lease: no longer recording migration Events"),
                () = self.term() => {}
            }
            self.running.clear();
        }
    }

    /// List and watch for as long as it takes, backing off when the API
    /// server fails.
    async fn term(&mut self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.list_and_watch().await {
                Ok(()) => backoff = Duration::from_secs(1),
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        retry_in = %humantime::format_duration(backoff),
                        "cannot watch the pods labelled {LABEL_SELECTOR}; the chart's ClusterRole grants pods get/list/watch"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One list and the watches after it; Ok when the watch must start over
    /// from a new list (410 Gone).
    async fn list_and_watch(&mut self) -> anyhow::Result<()> {
        let list = self.pods.list(&ListParams::default().labels(LABEL_SELECTOR)).await?;
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        let listed: HashSet<String> = list.items.iter().filter_map(|pod| pod.metadata.uid.clone()).collect();
        self.seen.retain(|(uid, _)| listed.contains(uid));
        self.running.retain(|uid, _| listed.contains(uid));
        for pod in &list.items {
            self.handle(pod).await;
        }
        let mut tick = tokio::time::interval(self.check_every);
        loop {
            let params = WatchParams::default().labels(LABEL_SELECTOR).timeout(290);
            let mut stream = pin!(self.pods.watch(&params, &version).await?);
            loop {
                tokio::select! {
                    item = stream.next() => match item {
                        // The server ended the watch (its timeout): watch again from where it was.
                        None => break,
                        Some(Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod))) => {
                            if let Some(v) = &pod.metadata.resource_version { version.clone_from(v) }
                            self.handle(&pod).await;
                        }
                        Some(Ok(WatchEvent::Deleted(pod))) => {
                            if let Some(v) = &pod.metadata.resource_version { version.clone_from(v) }
                            self.forget(&pod);
                        }
                        Some(Ok(WatchEvent::Bookmark(bookmark))) => version = bookmark.metadata.resource_version,
                        Some(Ok(WatchEvent::Error(status))) if status.code == 410 => return Ok(()),
                        Some(Ok(WatchEvent::Error(status))) => anyhow::bail!("the pod watch failed: {}", status.message),
                        Some(Err(error)) => return Err(error.into()),
                    },
                    _ = tick.tick() => self.check_waiting().await,
                }
            }
        }
    }

    fn forget(&mut self, pod: &RunPod) {
        let Some(uid) = &pod.metadata.uid else { return };
        self.seen.retain(|(seen, _)| seen != uid);
        self.warned.retain(|(warned, _)| warned != uid);
        self.running.remove(uid);
    }

    async fn handle(&mut self, pod: &RunPod) {
        let Some(observation) = observe(pod) else { return };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let oldest = self.term_started.checked_sub(SignedDuration::try_from(self.overlap).unwrap_or_default()).ok();
        for termination in &observation.terminations {
            if !self.seen.insert((uid.clone(), termination.run.clone())) {
                continue;
            }
            let before_term = matches!((termination.finished_at, oldest), (Some(at), Some(oldest)) if at < oldest);
            if !before_term {
                self.record_termination(pod, &observation.key, termination).await;
            }
        }
        match observation.running {
            Some(running) => {
                self.running.insert(uid, (pod.clone(), observation.key, running));
            }
            None => {
                self.running.remove(&uid);
            }
        }
    }

    async fn record_termination(&mut self, pod: &RunPod, key: &str, termination: &Termination) {
        if !self.leadership.is_leader() {
            return;
        }
        let workload = self.workload(pod).await;
        let namespace = workload.namespace.clone().unwrap_or_default();
        let name = workload.name.clone().unwrap_or_default();
        let at = termination.finished_at.unwrap_or_else(Timestamp::now);
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let event = match termination.outcome {
            Outcome::Ran => {
                Some((Reason::MigrationRan, format!("pod {pod_name} ran the migration: {}", termination.summary)))
            }
            Outcome::Failed | Outcome::LockTimeout => Some((
                Reason::MigrationFailed,
                format!("kube-once-run in pod {pod_name} exited {}: {}", termination.exit_code, termination.summary),
            )),
            // The failure that caused the backoff has its Event already, and
            // a skip is the expected path of every replica but one.
            Outcome::Skipped | Outcome::BackingOff => None,
        };
        if let Some((reason, note)) = event {
            tracing::info!(
                namespace,
                workload = name,
                pod = pod_name,
                reason = reason.as_str(),
                exit_code = termination.exit_code,
                "migration outcome"
            );
            let occurrence = Occurrence {
                regarding: workload,
                pod: pod_reference(pod),
                reason,
                key: key.to_owned(),
                run: format!("{uid}/{}", termination.run),
                note,
            };
            // A run the Event counted already (seen again by a new holder) is not counted again.
            if !self.write(occurrence).await {
                return;
            }
        }
        self.metrics.record(&namespace, &name, termination.outcome, at.as_millisecond() as f64 / 1000.0);
    }

    async fn check_waiting(&mut self) {
        let now = Timestamp::now();
        let mut due = Vec::new();
        for (uid, (pod, key, running)) in &self.running {
            let Some(timeout) = running.timeout else { continue };
            let waited = Duration::try_from(now.duration_since(running.started_at)).unwrap_or_default();
            if waited * 2 >= timeout && !self.warned.contains(&(uid.clone(), running.run.clone())) {
                due.push((uid.clone(), pod.clone(), key.clone(), running.clone(), waited, timeout));
            }
        }
        for (uid, pod, key, running, waited, timeout) in due {
            if !self.leadership.is_leader() {
                return;
            }
            self.warned.insert((uid.clone(), running.run.clone()));
            let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
            let waited = Duration::from_secs(waited.as_secs());
            let note = format!(
                "pod {pod_name} has waited {} of its {} for the migration lock; another pod holds it \
                 (its `waiting` lines name the holder: kubectl logs {pod_name} -c kube-once-run)",
                humantime::format_duration(waited),
                humantime::format_duration(timeout)
            );
            let regarding = self.workload(&pod).await;
            let run = format!("{uid}/{}/waiting", running.run);
            let occurrence =
                Occurrence { regarding, pod: pod_reference(&pod), reason: Reason::MigrationWaiting, key, run, note };
            self.write(occurrence).await;
        }
    }

    /// Records the occurrence; false when it must not be counted (not the
    /// holder any more, or the Event counted this run already).
    async fn write(&self, occurrence: Occurrence) -> bool {
        if !self.leadership.is_leader() {
            return false;
        }
        match self.recorder.record(&occurrence).await {
            Ok(new) => new,
            Err(error) => {
                // Counted anyway: the metric should not depend on the Event API.
                tracing::warn!(error = format!("{error:#}"), "cannot record a migration Event");
                true
            }
        }
    }

    /// The workload a pod belongs to: its controller's controller, and so
    /// on, as far as the owner references go. The pod itself when it has no
    /// controller; the last owner that could be read when one cannot be.
    async fn workload(&mut self, pod: &RunPod) -> ObjectReference {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let Some(mut owner) = controller(&pod.metadata) else { return pod_reference(pod) };
        let first = owner.uid.clone();
        if let Some(known) = self.workloads.get(&first) {
            return known.clone();
        }
        for _ in 0..MAX_OWNER_DEPTH {
            match self.owner_of(&namespace, &owner).await {
                Ok(Some(next)) => owner = next,
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(
                        error = format!("{error:#}"),
                        kind = owner.kind,
                        name = owner.name,
                        "cannot read an owner; recording on it"
                    );
                    break;
                }
            }
        }
        let workload = ObjectReference {
            api_version: Some(owner.api_version),
            kind: Some(owner.kind),
            name: Some(owner.name),
            namespace: Some(namespace),
            uid: Some(owner.uid),
            ..ObjectReference::default()
        };
        self.workloads.insert(first, workload.clone());
        workload
    }

    async fn owner_of(&self, namespace: &str, owner: &OwnerReference) -> anyhow::Result<Option<OwnerReference>> {
        let (group, version) = owner.api_version.rsplit_once('/').unwrap_or(("", owner.api_version.as_str()));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &owner.kind));
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &resource);
        Ok(api.get_opt(&owner.name).await?.and_then(|object| controller(&object.metadata)))
    }
}

fn controller(metadata: &ObjectMeta) -> Option<OwnerReference> {
    metadata.owner_references.as_ref()?.iter().find(|owner| owner.controller == Some(true)).cloned()
}

fn pod_reference(pod: &RunPod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Pod".to_owned()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}
