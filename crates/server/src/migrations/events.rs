//! events.k8s.io/v1 Events on the workload, with Kubernetes' series rule:
//! one Event per (object, reason, migration key), whose `series.count`
//! grows with each occurrence, so a rollout of 100 replicas that fail on
//! one key leaves one Event, not 100.
//!
//! The Event's name is derived from that triple, so the series survives a
//! restart or a change of the recording replica: a create that finds the
//! name taken reads the Event and continues its count. Updates carry the
//! resourceVersion read, so two writers cannot lose a count. The Event
//! also keeps the last runs it counted (`kube-once.io/runs`), so a replica
//! that takes over and sees a recent run again does not count it twice.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::observe::{NOTE_LIMIT, truncate};

/// `reportingController` of every Event kube-once writes.
pub const REPORTING_CONTROLLER: &str = "kube-once";
/// How many read-write rounds one Event may lose to another writer.
const MAX_ROUNDS: usize = 5;
/// The annotation on an Event listing the runs it counted, newest last.
pub const RUNS_ANNOTATION: &str = "kube-once.io/runs";
/// How many runs the annotation keeps: enough for the pods a new holder
/// may see again, bounded so the Event stays small.
const RUNS_KEPT: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    MigrationRan,
    MigrationFailed,
    MigrationWaiting,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MigrationRan => "MigrationRan",
            Reason::MigrationFailed => "MigrationFailed",
            Reason::MigrationWaiting => "MigrationWaiting",
        }
    }

    fn event_type(self) -> &'static str {
        match self {
            Reason::MigrationRan => "Normal",
            Reason::MigrationFailed | Reason::MigrationWaiting => "Warning",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Reason::MigrationRan | Reason::MigrationFailed => "Migrate",
            Reason::MigrationWaiting => "WaitForLock",
        }
    }
}

/// One occurrence to record.
#[derive(Debug, Clone)]
pub struct Occurrence {
    /// The workload the Event is about (`regarding`).
    pub regarding: ObjectReference,
    /// The pod that ran the migration (`related`).
    pub pod: ObjectReference,
    pub reason: Reason,
    /// The migration key; occurrences of different keys are different Events.
    pub key: String,
    /// Which run of which pod this is (pod uid and container ID): the same
    /// run seen again is not counted again.
    pub run: String,
    pub note: String,
}

/// The Event's name: the workload's name and a digest of what makes the series.
pub fn event_name(occurrence: &Occurrence) -> String {
    let regarding = &occurrence.regarding;
    let mut digest = Sha256::new();
    for part in [
        regarding.uid.as_deref().unwrap_or_default(),
        regarding.kind.as_deref().unwrap_or_default(),
        regarding.name.as_deref().unwrap_or_default(),
        occurrence.reason.as_str(),
        occurrence.key.as_str(),
    ] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let hash = hex::encode(&digest.finalize()[..8]);
    // A DNS subdomain holds 253 characters; the workload's name is one already.
    let name = regarding.name.as_deref().unwrap_or("object");
    format!("{}.{hash}", truncate_name(name, 253 - 17))
}

fn truncate_name(name: &str, limit: usize) -> &str {
    if name.len() <= limit { name } else { name[..limit].trim_end_matches(['.', '-']) }
}

/// Writes Events as `instance` (the webhook pod's name).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    instance: String,
}

impl Recorder {
    pub fn new(client: Client, instance: &str) -> Self {
        Self { client, instance: instance.to_owned() }
    }

    /// Create the occurrence's Event, or count one more in its series;
    /// Ok(false) when the Event had counted this run already.
    pub async fn record(&self, occurrence: &Occurrence) -> anyhow::Result<bool> {
        let namespace = occurrence.regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let name = event_name(occurrence);
        let note = truncate(&occurrence.note, NOTE_LIMIT);
        for _ in 0..MAX_ROUNDS {
            let now = MicroTime(Timestamp::now());
            let result = match api.get_opt(&name).await? {
                None => api.create(&PostParams::default(), &self.new_event(occurrence, &name, &note, now)).await,
                Some(existing) => {
                    let runs = existing.metadata.annotations.as_ref().and_then(|a| a.get(RUNS_ANNOTATION));
                    let mut runs: Vec<&str> = runs.map(|runs| runs.split_whitespace().collect()).unwrap_or_default();
                    if runs.contains(&occurrence.run.as_str()) {
                        return Ok(false);
                    }
                    runs.push(&occurrence.run);
                    let runs = runs[runs.len().saturating_sub(RUNS_KEPT)..].join(" ");
                    let count = existing.series.as_ref().map_or(1, |series| series.count) + 1;
                    let series = EventSeries { count, last_observed_time: now };
                    let patch = json!({
                        // With the resourceVersion read, a concurrent update makes this one fail (409).
                        "metadata": {
                            "resourceVersion": existing.metadata.resource_version,
                            "annotations": {RUNS_ANNOTATION: runs},
                        },
                        "series": series,
                        "note": note,
                        "related": occurrence.pod,
                        "reportingInstance": self.instance,
                    });
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await
                }
            };
            match result {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => {
                    return Err(anyhow::Error::new(error).context(format!(
                        "cannot write Event {namespace}/{name} ({}); the chart's ClusterRole grants events.k8s.io \
                         events get/create/patch",
                        occurrence.reason.as_str()
                    )));
                }
            }
        }
        anyhow::bail!(
            "Event {namespace}/{name} kept changing under us for {MAX_ROUNDS} rounds; this occurrence is not counted"
        )
    }

    fn new_event(&self, occurrence: &Occurrence, name: &str, note: &str, now: MicroTime) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: occurrence.regarding.namespace.clone(),
                annotations: Some([(RUNS_ANNOTATION.to_owned(), occurrence.run.clone())].into()),
                ..ObjectMeta::default()
            },
            event_time: Some(now),
            action: Some(occurrence.reason.action().to_owned()),
            reason: Some(occurrence.reason.as_str().to_owned()),
            type_: Some(occurrence.reason.event_type().to_owned()),
            note: Some(note.to_owned()),
            regarding: Some(occurrence.regarding.clone()),
            related: Some(occurrence.pod.clone()),
            reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occurrence(reason: Reason, key: &str, pod: &str) -> Occurrence {
        let reference = |kind: &str, name: &str, uid: &str| ObjectReference {
            kind: Some(kind.to_owned()),
            name: Some(name.to_owned()),
            namespace: Some("shop".to_owned()),
            uid: Some(uid.to_owned()),
            ..ObjectReference::default()
        };
        Occurrence {
            regarding: reference("Deployment", "web", "u-1"),
            pod: reference("Pod", pod, pod),
            reason,
            key: key.to_owned(),
            run: format!("{pod}/1"),
            note: String::new(),
        }
    }

    #[test]
    fn one_series_per_object_reason_and_key_whatever_the_pod() {
        let failed = event_name(&occurrence(Reason::MigrationFailed, "k1", "web-a"));
        assert_eq!(failed, event_name(&occurrence(Reason::MigrationFailed, "k1", "web-b")));
        assert_ne!(failed, event_name(&occurrence(Reason::MigrationFailed, "k2", "web-a")));
        assert_ne!(failed, event_name(&occurrence(Reason::MigrationRan, "k1", "web-a")));
        assert!(failed.starts_with("web.") && failed.len() == "web.".len() + 16, "{failed}");
        let mut long = occurrence(Reason::MigrationRan, "k1", "p");
        long.regarding.name = Some("a".repeat(253));
        assert!(event_name(&long).len() <= 253);
    }
}
