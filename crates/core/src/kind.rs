//! The workload kinds kube-once injects into, and the one thing that
//! differs between them for the core: where the pod template lives. Every
//! other step (annotations, status, inject, patch) works on the template
//! wherever [`Kind::template_path`] says it is, so a new kind is a row here,
//! not a copy of the Deployment code.

use serde_json::Value;

/// A workload kind with a pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    Rollout,
}

impl Kind {
    /// Every supported kind, in the order messages and docs list them.
    pub const ALL: [Kind; 6] =
        [Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet, Kind::Job, Kind::CronJob, Kind::Rollout];

    /// The `kind` field.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::Rollout => "Rollout",
        }
    }

    /// The one `apiVersion` handled: the one the webhook is registered for
    /// and the API server serves (`apps/v1beta1`/`v1beta2` are gone since
    /// Kubernetes 1.16, `batch/v1beta1` CronJobs since 1.25).
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet => "apps/v1",
            Kind::Job | Kind::CronJob => "batch/v1",
            Kind::Rollout => "argoproj.io/v1alpha1",
        }
    }

    /// The API group (what webhook `rules` name).
    pub fn group(self) -> &'static str {
        self.api_version().split_once('/').map_or("", |(group, _)| group)
    }

    /// The lower-case plural (what webhook `rules` name as `resources`).
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
            Kind::Rollout => "rollouts",
        }
    }

    /// Object keys from the object down to its pod template.
    pub fn template_path(self) -> &'static [&'static str] {
        match self {
            Kind::CronJob => &["spec", "jobTemplate", "spec", "template"],
            _ => &["spec", "template"],
        }
    }

    /// [`Kind::template_path`] as written in messages (`spec.template`).
    pub fn template_field(self) -> &'static str {
        match self {
            Kind::CronJob => "spec.jobTemplate.spec.template",
            _ => "spec.template",
        }
    }

    /// Whether the pod template may change after creation. A Job's may not
    /// (the API server refuses it), so kube-once injects at CREATE only.
    pub fn template_mutable(self) -> bool {
        self != Kind::Job
    }

    /// Whether its pods keep running (and serving) until replaced, so old
    /// pods serve while new ones migrate. A Job's and a CronJob's run to
    /// completion.
    pub fn long_running(self) -> bool {
        !matches!(self, Kind::Job | Kind::CronJob)
    }

    /// Whether a rollout of it fails when it makes no progress for
    /// `spec.progressDeadlineSeconds` (default 600): a Deployment's and a
    /// Rollout's do, while their new pods wait in kube-once-run.
    pub fn has_progress_deadline(self) -> bool {
        matches!(self, Kind::Deployment | Kind::Rollout)
    }

    /// The kind named by `kind` (any API version).
    pub fn named(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == kind)
    }

    /// The kind of `object` when kube-once handles it: a supported `kind`
    /// at its supported `apiVersion`.
    pub fn of(object: &Value) -> Option<Kind> {
        let kind = Kind::named(object.get("kind")?.as_str()?)?;
        (object.get("apiVersion")?.as_str()? == kind.api_version()).then_some(kind)
    }

    /// The kind `object` is read as by the core: its `kind` when that names
    /// a supported kind, else a Deployment (the items of a `DeploymentList`
    /// may leave their `kind` out).
    pub fn read_as(object: &Value) -> Kind {
        object.get("kind").and_then(Value::as_str).and_then(Kind::named).unwrap_or(Kind::Deployment)
    }

    /// The pod template of `object` read as this kind.
    pub fn template(self, object: &Value) -> Option<&Value> {
        self.template_path().iter().try_fold(object, |value, key| value.get(key))
    }

    /// The supported kinds as a message lists them: `apps/v1 Deployment, ...`.
    pub fn supported_list() -> String {
        Kind::ALL.iter().map(|kind| format!("{} {}", kind.api_version(), kind.name())).collect::<Vec<_>>().join(", ")
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_kind_is_recognised_at_its_api_version_only() {
        for kind in Kind::ALL {
            let object = json!({"apiVersion": kind.api_version(), "kind": kind.name()});
            assert_eq!(Kind::of(&object), Some(kind));
            assert_eq!(Kind::of(&json!({"apiVersion": "apps/v1beta2", "kind": kind.name()})), None);
        }
        assert_eq!(Kind::of(&json!({"apiVersion": "apps/v1", "kind": "ReplicaSet"})), None);
        assert_eq!(Kind::of(&json!({"apiVersion": "v1", "kind": "Pod"})), None);
        assert_eq!(Kind::read_as(&json!({"metadata": {}})), Kind::Deployment);
    }

    #[test]
    fn a_cron_jobs_template_is_inside_its_job_template() {
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {}}}}}});
        assert_eq!(Kind::CronJob.template(&cron), Some(&json!({"spec": {}})));
        assert_eq!(Kind::Deployment.template(&cron), None);
        assert_eq!(Kind::CronJob.group(), "batch");
        assert!(Kind::supported_list().starts_with("apps/v1 Deployment, apps/v1 StatefulSet"));
    }
}
