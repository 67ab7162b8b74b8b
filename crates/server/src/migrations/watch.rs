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
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, LogParams, WatchEvent, WatchParams};
use tokio_util::sync::CancellationToken;

use super::events::{Occurrence, Reason, Recorder};
use super::lease::Leadership;
use super::observe::{
    LABEL_SELECTOR, LOG_LIMIT_BYTES, LOG_TAIL_LINES, Outcome, RUN_CONTAINER, RunPod, Running, Termination, WaitLog,
    observe, read_wait, sanitise,
};
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
    /// Whether a waiting pod's log is read to name the lock holder.
    holder_from_logs: bool,
    /// Whether a refused log read was logged at warn already (once is enough).
    logs_refusal_warned: bool,
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
        holder_from_logs: bool,
    ) -> Self {
        Self {
            pods: Api::all_with(client.clone(), &ApiResource::erase::<Pod>(&())),
            client,
            recorder,
            metrics,
            leadership,
            overlap,
            check_every,
            holder_from_logs,
            logs_refusal_warned: false,
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
            let waited = format!(
                "pod {pod_name} has waited {} of its {} for the migration lock",
                humantime::format_duration(waited),
                humantime::format_duration(timeout)
            );
            let note = match self.holder(&pod).await {
                Ok(Some(holder)) => format!("{waited}, held by {holder}"),
                // Its log says it got the lock: it runs its command, it does not wait.
                Ok(None) => continue,
                Err(unnamed) => format!(
                    "{waited}; another pod holds it ({unnamed}; its `waiting` lines name the holder: \
                     kubectl logs {pod_name} -c {RUN_CONTAINER})"
                ),
            };
            let regarding = self.workload(&pod).await;
            let run = format!("{uid}/{}/waiting", running.run);
            let occurrence =
                Occurrence { regarding, pod: pod_reference(&pod), reason: Reason::MigrationWaiting, key, run, note };
            self.write(occurrence).await;
        }
    }

    /// The lock holder as the waiting pod's newest `waiting` line names it,
    /// read once per wait: a bounded tail of its `kube-once-run` log; `None`
    /// when the log says the pod acquired the lock (a long command, not a
    /// wait). Else why it is not named, for the note.
    async fn holder(&mut self, pod: &RunPod) -> Result<Option<String>, String> {
        if !self.holder_from_logs {
            return Err("not named: serve reads no pod logs (events.holderFromLogs=false)".to_owned());
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = LogParams {
            container: Some(RUN_CONTAINER.to_owned()),
            tail_lines: Some(LOG_TAIL_LINES),
            limit_bytes: Some(LOG_LIMIT_BYTES),
            ..LogParams::default()
        };
        let log = match api.logs(name, &params).await {
            Ok(log) => log,
            // limitBytes may cut a character in two: the bytes before it are still good.
            Err(kube::Error::FromUtf8(partial)) => String::from_utf8_lossy(partial.as_bytes()).into_owned(),
            Err(error) => return Err(self.unreadable_log(namespace, name, error)),
        };
        match read_wait(&log) {
            WaitLog::HeldBy(holder) => Ok(Some(holder)),
            WaitLog::Acquired => {
                tracing::debug!(
                    namespace,
                    pod = name,
                    "past half its timeout but holding the lock: no MigrationWaiting"
                );
                Ok(None)
            }
            WaitLog::Silent => {
                tracing::debug!(namespace, pod = name, "no `waiting` line naming the lock holder in the pod's log");
                Err("not named: no `waiting` line in its log yet".to_owned())
            }
        }
    }

    fn unreadable_log(&mut self, namespace: &str, pod: &str, error: kube::Error) -> String {
        let code = match &error {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        };
        let why = match code {
            Some(401 | 403) => {
                "not named: serve may not read pod logs (the chart's events.holderFromLogs grants pods/log get)"
                    .to_owned()
            }
            Some(404) => "not named: its log is gone".to_owned(),
            _ => format!("not named: cannot read its log: {}", sanitise(&error.to_string(), 200)),
        };
        if matches!(code, Some(401 | 403)) && !self.logs_refusal_warned {
            self.logs_refusal_warned = true;
            tracing::warn!(
                namespace,
                pod,
                error = format!("{error:#}"),
                "cannot read a waiting pod's log to name the migration lock holder; MigrationWaiting Events will not \
                 name it. Grant pods/log get (chart value events.holderFromLogs=true) or turn it off with \
                 --no-holder-from-logs"
            );
        } else {
            tracing::debug!(namespace, pod, error = format!("{error:#}"), "cannot read a waiting pod's log");
        }
        why
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
