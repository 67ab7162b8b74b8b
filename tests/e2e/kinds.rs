//! Exactly-once rollouts of the workloads that are not Deployments
//! (`tests/fixtures/e2e/kinds/`): a StatefulSet of each pod management
//! policy, an Argo Rollout (and one with `workloadRef`, refused), a CronJob
//! and the Jobs its controller makes, a plain Job, a DaemonSet. They are
//! admitted like the corpus (`crate::admit_case`), then their pods start as
//! each kind's controller starts them, on PostgreSQL and MariaDB at once.
//!
//! Where a kind keeps its pod template is the core's description
//! ([`Kind::template_path`]); how its controller starts the pods of one
//! rollout is the one table here ([`pod_batches`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use kube_once_core::Kind;
use serde_json::{Value, json};

use crate::admission::{Operation, Verdict, review};
use crate::api_server::{Admitted, ApiServer};
use crate::app_image::AppImages;
use crate::cluster::{Cluster, str_at};
use crate::corpus::{Case, DatabaseKind, Outcome, fixtures_dir};
use crate::databases::{FreshDatabase, Server, run_id};
use crate::injection::{Delivery, check_injection, validate_strict};
use crate::kubelet::{Images, run_pods, template_hash};
use crate::support::yaml::read_documents;
use crate::webhook::Webhook;
use crate::{Tools, admit_case, app_image_pointer, install, tools_image_stand_in};

/// The JSON pointer of `object`'s pod template (`/spec/jobTemplate/spec/template` for a CronJob).
pub fn template_pointer(object: &Value) -> String {
    Kind::read_as(object).template_path().iter().map(|key| format!("/{key}")).collect()
}

/// The nodes a DaemonSet's pods land on, one each.
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// Scheduled Jobs of a CronJob per image: more than one, so a second Job of
/// the same key would run the migration again if it did not check the done-record.
const SCHEDULES_PER_IMAGE: usize = 2;

/// Whether a rollout creates the workload or replaces its pods after an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Create,
    Update,
}

/// The pods of one rollout as the kind's controller starts them: batches
/// one after the other (each pod of the previous batch Ready: its
/// initContainers done), the pods of a batch at once.
fn pod_batches(workload: &Value, template: &Value, phase: Phase) -> Result<Vec<Vec<String>>> {
    let name = str_at(workload, "/metadata/name").context("workload without a name")?;
    let count = |field: &str, default: u64| workload.pointer(field).and_then(Value::as_u64).unwrap_or(default);
    let hash = template_hash(template);
    let kind = Kind::read_as(workload);
    Ok(match kind {
        Kind::StatefulSet => {
            let ordinals: Vec<String> = (0..count("/spec/replicas", 1)).map(|o| format!("{name}-{o}")).collect();
            let ordered = str_at(workload, "/spec/podManagementPolicy").unwrap_or("OrderedReady") == "OrderedReady";
            match phase {
                // OrderedReady: pod N+1 is created once pod N is Ready; Parallel: all at once.
                Phase::Create if ordered => ordinals.into_iter().map(|pod| vec![pod]).collect(),
                Phase::Create => vec![ordinals],
                // RollingUpdate (either policy): one pod at a time, from the highest ordinal down.
                Phase::Update => ordinals.into_iter().rev().map(|pod| vec![pod]).collect(),
            }
        }
        // One pod per node; the fixture's maxUnavailable 100% replaces them all at once too.
        Kind::DaemonSet => vec![NODES.iter().map(|node| format!("{name}-{hash}-{node}")).collect()],
        Kind::Rollout => {
            let pods: Vec<String> = (0..count("/spec/replicas", 1)).map(|i| format!("{name}-{hash}-{i}")).collect();
            // A canary update starts the first step's share, the rest after its pause;
            // the first rollout of a Rollout skips the steps.
            let weight = workload.pointer("/spec/strategy/canary/steps/0/setWeight").and_then(Value::as_u64);
            match (phase, weight) {
                (Phase::Update, Some(weight)) => {
                    let first = (pods.len() * weight as usize).div_ceil(100).max(1);
                    let (canary, rest) = pods.split_at(first.min(pods.len()));
                    [canary.to_vec(), rest.to_vec()].into_iter().filter(|batch| !batch.is_empty()).collect()
                }
                _ => vec![pods],
            }
        }
        Kind::Job => vec![(0..count("/spec/parallelism", 1)).map(|i| format!("{name}-{hash}-{i}")).collect()],
        Kind::Deployment | Kind::CronJob => bail!("{kind}s' pods are not started here"),
    })
}

/// Every kind but the Deployment (the corpus's) has a case, admitted and
/// rolled out on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_rolls_out_exactly_once() -> Result<()> {
    let kubernetes_validate = crate::support::env::var("KUBE_ONCE_KUBERNETES_VALIDATE")?;
    let servers = [Server::from_env(DatabaseKind::Postgres)?, Server::from_env(DatabaseKind::Mysql)?];
    let cases = crate::corpus::load_all_in("kinds")?;
    let covered: Vec<Kind> = cases.iter().map(|case| Kind::read_as(&case.deployment)).collect();
    let missing: Vec<Kind> = Kind::ALL.into_iter().filter(|k| *k != Kind::Deployment && !covered.contains(k)).collect();
    ensure!(missing.is_empty(), "tests/fixtures/e2e/kinds has no case for {missing:?}");

    let work = tempfile::tempdir()?;
    let installation = install::install(work.path(), &[])?;
    let webhook = Webhook::start(&installation, work.path()).await?;
    let mut cluster = Cluster::default();
    cluster.add(&read_documents(&fixtures_dir().join("namespaces.yaml"))?)?;
    let api = ApiServer { webhook: &webhook, configuration: &installation.webhook_configuration, cluster: &cluster };
    let tools_image =
        str_at(&installation.config, "/toolsImage").context("the rendered configuration has no toolsImage")?;
    let tools = Tools { image: tools_image, delivery: Delivery::InitContainer };

    let mut failures = Vec::new();
    let mut admitted = Vec::new();
    for case in cases {
        match admit_case(&api, &case, &tools).await {
            Ok(Some(object)) => admitted.push((case, object)),
            Ok(None) if case.expect.outcome != Outcome::Patched => {}
            Ok(None) => failures.push(format!("{}: not patched", case.name)),
            Err(error) => failures.push(format!("{}: {error:#}", case.name)),
        }
    }
    let run = Run { api: &api, tools: &tools, id: run_id(), work: work.path() };
    // Every case on each server in a fresh database of its own, so all run side by side.
    let rollouts = admitted.iter().map(|(case, object)| async {
        let started = std::time::Instant::now();
        // Both to the end, so each drops its database.
        let outcomes = tokio::join!(run.on(&servers[0], case, object), run.on(&servers[1], case, object));
        eprintln!("{}: rolled out on both databases ({:.1?})", case.name, started.elapsed());
        match outcomes {
            (Ok(objects), Ok(_)) => Ok(objects),
            (Err(error), Ok(_)) | (Ok(_), Err(error)) => Err(format!("{}: {error:#}", case.name)),
            (Err(first), Err(second)) => Err(format!("{}: {first:#}\n{}: {second:#}", case.name, case.name)),
        }
    });
    let mut written = Vec::new();
    for outcome in futures_util::future::join_all(rollouts).await {
        match outcome {
            Ok(objects) => written.extend(objects),
            Err(failure) => failures.push(failure),
        }
    }
    admitted.extend(written);
    if let Err(error) = validate(&kubernetes_validate, &admitted, work.path()) {
        failures.push(format!("{error:#}"));
    }
    if !failures.is_empty() {
        bail!("{} of the kinds failed end to end:\n{}", failures.len(), failures.join("\n\n"));
    }
    Ok(())
}

/// What every case's rollouts share.
struct Run<'a> {
    api: &'a ApiServer<'a>,
    tools: &'a Tools<'a>,
    id: String,
    work: &'a Path,
}

impl Run<'_> {
    /// [`roll_out`] on a fresh database of `server`, dropped afterwards.
    async fn on(&self, server: &Server, case: &Case, object: &Value) -> Result<Vec<(Case, Value)>> {
        let database = server.create(&format!("kube_once_e2e_{}_{}", self.id, case.name.replace('-', "_"))).await?;
        let dir = self.work.join(&case.name).join(format!("{:?}", server.kind));
        let outcome = roll_out(self.api, case, object, &database, self.tools, &dir).await;
        database.drop_database().await?;
        outcome.with_context(|| format!("on {:?}", server.kind))
    }
}

/// Two rollouts of `first` (the admitted CREATE), the second to a new app
/// image: the migration runs once in each, however the kind's pods start.
/// Returns the objects written on the way (updates, a CronJob's Jobs), for
/// the strict schema check.
async fn roll_out(
    api: &ApiServer<'_>,
    case: &Case,
    first: &Value,
    database: &FreshDatabase,
    tools: &Tools<'_>,
    dir: &Path,
) -> Result<Vec<(Case, Value)>> {
    let run_command = case.expect.run_command.as_ref().context("no runCommand")?;
    let app_name = case.expect.app_container.as_deref().context("no appContainer")?;
    std::fs::create_dir_all(dir)?;
    let mut cluster = api.cluster.clone();
    cluster.add(&case.objects(&placeholders(database))?)?;
    let cluster = Arc::new(cluster);
    let mut app = AppImages::new(dir)?;
    app.provide(&run_command[0])?;

    let kind = Kind::read_as(first);
    let image = app_image_pointer(first, app_name)?;
    let new_image = json!(format!("{}-next", str_at(first, &image).unwrap_or_default()));
    // The user's second rollout: the stored object with the new image (`kubectl set image`),
    // or for a Job, whose template is fixed, the Job deleted and created again with it.
    let mut next = if kind.template_mutable() { first.clone() } else { case.deployment.clone() };
    *next.pointer_mut(&image).context("app image")? = new_image;
    let operation = if kind.template_mutable() {
        Operation::Update
    } else {
        check_fixed_template(api, first).await?;
        Operation::Create
    };
    let old = (operation == Operation::Update).then_some(first);
    let second = match api.admit(operation, &next, old).await? {
        Admitted::Answered(Verdict::Allowed { object, patched: true, .. }) => object,
        other => bail!("the new image should be admitted with the injection following it, got {other:?}"),
    };
    check_injection(&Case { deployment: next, ..case.clone() }, &second, tools.image, tools.delivery)?;
    let mut written = vec![(named(case, "update"), second.clone())];

    let mut pods = Pods { cluster: &cluster, tools, app: &mut app, dir, started: 0 };
    for (rollout, (object, phase)) in [(first, Phase::Create), (&second, Phase::Update)].into_iter().enumerate() {
        let rollout = rollout + 1;
        if kind == Kind::CronJob {
            for schedule in 0..SCHEDULES_PER_IMAGE {
                let job = scheduled_job(object, (rollout - 1) * SCHEDULES_PER_IMAGE + schedule)?;
                // The Job's template carries kube-once's status: sent, and left as it is.
                match api.admit(Operation::Create, &job, None).await? {
                    Admitted::Answered(Verdict::Allowed { patched: false, .. }) => {}
                    other => bail!("a Job of the injected CronJob should be admitted unchanged, got {other:?}"),
                }
                let template = job.pointer("/spec/template").context("Job without template")?;
                let names = pod_batches(&job, template, Phase::Create)?;
                pods.start(object, template, &names)
                    .await
                    .with_context(|| format!("Job {}", job["metadata"]["name"]))?;
                written.push((named(case, &format!("job-{rollout}-{schedule}")), job));
            }
        } else {
            let template = object.pointer(&template_pointer(object)).context("no pod template")?;
            pods.start(object, template, &pod_batches(object, template, phase)?).await?;
        }
        ensure!(
            pods.app.runs() == rollout,
            "rollout {rollout} ({} pods so far): the migration ran {} times in all, expected {rollout}: {}",
            pods.started,
            pods.app.runs(),
            std::fs::read_to_string(&pods.app.run_log).unwrap_or_default()
        );
    }
    Ok(written)
}

/// The kubelet's side of a rollout: pods started in batches, each batch
/// awaited before the next, every pod reaching its main container.
struct Pods<'a> {
    cluster: &'a Arc<Cluster>,
    tools: &'a Tools<'a>,
    app: &'a mut AppImages,
    dir: &'a Path,
    /// Pods started so far.
    started: usize,
}

impl Pods<'_> {
    async fn start(&mut self, workload: &Value, template: &Value, batches: &[Vec<String>]) -> Result<()> {
        let namespace = str_at(workload, "/metadata/namespace").unwrap_or("default");
        let mut images = Images::new();
        images.insert(self.tools.image.to_owned(), tools_image_stand_in());
        for container in template.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
            let image = str_at(container, "/image").context("container without image")?;
            images.insert(image.to_owned(), self.app.image(image));
        }
        let images = Arc::new(images);
        for batch in batches {
            let root = self.dir.join(format!("pods-{}", self.started));
            let pods = run_pods(batch, namespace, template, self.cluster, &images, &root).await?;
            self.started += batch.len();
            let stuck: Vec<String> =
                pods.iter().filter_map(|p| p.failure.as_ref().map(|f| format!("{}: {f}", p.name))).collect();
            ensure!(stuck.is_empty(), "pods did not reach their main container:\n{}", stuck.join("\n"));
            for pod in &pods {
                ensure!(pod.ran == self.tools.delivery.injected(), "{} ran {:?}", pod.name, pod.ran);
            }
        }
        Ok(())
    }
}

/// A Job's pod template cannot change: the chart does not send its UPDATEs,
/// and sent one anyway (another webhook configuration) the webhook answers
/// without a patch, warning when the kube-once.io/ annotations changed.
async fn check_fixed_template(api: &ApiServer<'_>, job: &Value) -> Result<()> {
    // The user turns kube-once off for it.
    let mut edited = job.clone();
    if let Some(annotations) = edited.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        annotations.retain(|key, _| !key.starts_with("kube-once.io/"));
    }
    ensure!(
        api.admit(Operation::Update, &edited, Some(job)).await? == Admitted::NotSent,
        "the chart should not send a Job's UPDATE"
    );
    for (object, warned) in [(job, false), (&edited, true)] {
        let uid = format!("{:032x}", fastrand::u128(..));
        match api.call(&uid, &review(&uid, Operation::Update, object, Some(job), false), object).await? {
            Verdict::Allowed { patched: false, warnings, .. } if warnings.is_empty() != warned => {}
            other => bail!("a Job's UPDATE (annotations changed: {warned}) sent directly: {other:?}"),
        }
    }
    Ok(())
}

/// The Job the CronJob controller creates for its `day`-th daily schedule
/// (03:00 from 2026-12-01): the job template's metadata and spec, named
/// after the scheduled time in minutes, owned by the CronJob.
fn scheduled_job(cron_job: &Value, day: usize) -> Result<Value> {
    const FIRST_SCHEDULE_MINUTES: usize = 29_934_900;
    let name = str_at(cron_job, "/metadata/name").context("CronJob without name")?;
    let job_template = cron_job.pointer("/spec/jobTemplate").context("CronJob without jobTemplate")?;
    ensure!(day < 30, "the harness schedules within December");
    let mut annotations = job_template.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({}));
    annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] = json!(format!("2026-12-{:02}T03:00:00Z", day + 1));
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": format!("{name}-{}", FIRST_SCHEDULE_MINUTES + day * 24 * 60),
            "namespace": cron_job["metadata"]["namespace"],
            "labels": job_template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": name,
                                 "uid": "3f0e8a4c-0000-4000-8000-000000000001", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": job_template["spec"],
    }))
}

/// The fresh database's placeholders, also as `db.*` for cases that run on either server.
fn placeholders(database: &FreshDatabase) -> BTreeMap<String, String> {
    let mut placeholders = database.placeholders();
    let generic: Vec<(String, String)> = placeholders
        .iter()
        .filter_map(|(key, value)| Some((format!("db.{}", key.split_once('.')?.1), value.clone())))
        .collect();
    placeholders.extend(generic);
    placeholders
}

fn named(case: &Case, suffix: &str) -> Case {
    Case { name: format!("{}-{suffix}", case.name), ..case.clone() }
}

/// Every written object strictly against its schema: the Kubernetes kinds
/// with kubernetes-validate, Rollouts with the Argo Rollouts CRD's.
fn validate(kubernetes_validate: &str, written: &[(Case, Value)], work: &Path) -> Result<()> {
    let (rollouts, builtins): (Vec<_>, Vec<_>) =
        written.iter().cloned().partition(|(_, object)| Kind::of(object) == Some(Kind::Rollout));
    validate_strict(kubernetes_validate, &builtins, work)?;
    let dir = work.join("validate-rollouts");
    std::fs::create_dir_all(&dir)?;
    let mut files: Vec<PathBuf> = Vec::new();
    for (case, object) in &rollouts {
        let path = dir.join(format!("{}.json", case.name));
        std::fs::write(&path, serde_json::to_string_pretty(object)?)?;
        files.push(path);
    }
    ensure!(!files.is_empty(), "no Rollout was written, nothing to check against its CRD");
    let output = crate::support::chart::check_rollouts(&files);
    ensure!(
        output.status.success(),
        "mutated Rollouts fail the Argo Rollouts CRD schema:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
