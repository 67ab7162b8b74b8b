//! End to end, without a cluster: the harness plays the API server (webhook
//! selection, AdmissionReview over TLS, response checks, patch, strict schema
//! validation) and the kubelet (initContainers as local processes with the
//! env the spec declares), around the real artifacts — the rendered chart,
//! the real binary, real certificates, real PostgreSQL and MariaDB.
//! See docs/dev/e2e.md, "What it cannot prove without a cluster".

mod admission;
mod api_server;
mod app_image;
mod cluster;
mod corpus;
mod databases;
mod expansion;
mod failures;
mod injection;
mod install;
mod kinds;
mod kubelet;
mod selection;
mod waiting;
mod webhook;

// The helpers every test binary shares; this binary lives in tests/e2e/, hence the path.
#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
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
use crate::kubelet::{Image, Images, run_replicas};
use crate::selection::{Attributes, Decision, decide};
use crate::support::yaml::read_documents;
use crate::webhook::Webhook;

const REPLICAS: usize = 5;

#[test]
fn corpus_is_complete_and_consistent() -> Result<()> {
    let cases = corpus::load_all()?;
    ensure!(cases.len() >= 15, "the corpus needs at least 15 Deployment shapes, it has {}", cases.len());
    let refused = cases.iter().filter(|c| c.expect.outcome == Outcome::Refused).count();
    ensure!(refused >= 3, "the corpus needs at least 3 malformed Deployments, it has {refused}");
    let mut cluster = Cluster::default();
    cluster.add(&read_documents(&fixtures_dir().join("namespaces.yaml"))?)?;
    for case in &cases {
        let e = &case.expect;
        cluster.namespace_labels(case.namespace()).with_context(|| format!("case {}", case.name))?;
        ensure!(
            e.sent || e.outcome == Outcome::Unchanged,
            "case {}: a Deployment that is not sent cannot change",
            case.name
        );
        ensure!(
            e.outcome == Outcome::Refused || e.refusal.is_empty(),
            "case {}: refusal words without refusal",
            case.name
        );
        ensure!(
            e.outcome != Outcome::Refused || !e.refusal.is_empty(),
            "case {}: say what the refusal must mention",
            case.name
        );
        ensure!(
            !e.restricted || e.run_command.is_some(),
            "case {}: `restricted` is about injected containers",
            case.name
        );
        if let Some(run) = &e.run {
            ensure!(e.run_command.is_some(), "case {}: a run needs runCommand", case.name);
            ensure!(run.runs_per_rollout >= 1, "case {}: runsPerRollout must be at least 1", case.name);
            // Placeholders of the named database must be enough for the case's objects.
            let placeholders = placeholders_for(run.database, "db");
            case.objects(&placeholders)?;
        }
    }
    Ok(())
}

/// Placeholder values of the shape a real run fills in.
fn placeholders_for(kind: DatabaseKind, database: &str) -> BTreeMap<String, String> {
    let server = Server {
        kind,
        admin_url: String::new(),
        user: "u".to_owned(),
        password: "p".to_owned(),
        hostport: "127.0.0.1:1".to_owned(),
    };
    FreshDatabase { server, name: database.to_owned() }.placeholders()
}

/// The migration stand-in must really collide when pods run it at once
/// without kube-once — otherwise "ran exactly once" would prove nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_stand_in_collides_without_the_lock_on_postgres() -> Result<()> {
    collides_without_the_lock(DatabaseKind::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_stand_in_collides_without_the_lock_on_mariadb() -> Result<()> {
    collides_without_the_lock(DatabaseKind::Mysql).await
}

async fn collides_without_the_lock(kind: DatabaseKind) -> Result<()> {
    let server = Server::from_env(kind)?;
    let work = tempfile::tempdir()?;
    let database = server.create(&format!("kube_once_e2e_{}_nolock", run_id())).await?;
    let url_key = match kind {
        DatabaseKind::Postgres => "postgres.url",
        DatabaseKind::Mysql => "mysql.url",
    };
    let result = async {
        let mut app = AppImages::new(work.path())?;
        // Long enough that all copies pass the check even on a loaded machine.
        app.migration_seconds = 2.0;
        app.provide("flask")?;
        let mut cluster = Cluster::default();
        cluster.add(&[json!({"kind": "Secret", "metadata": {"name": "db", "namespace": "apps"},
                             "stringData": {"url": database.placeholders()[url_key]}})])?;
        let template = json!({"spec": {
            "initContainers": [{"name": "migrate", "image": "app:1", "command": ["flask", "db", "upgrade"],
                                "env": [{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}]}],
            "containers": [{"name": "app", "image": "app:1"}]}});
        let images: Images = [("app:1".to_owned(), app.image("app:1"))].into();
        let pods = run_replicas(REPLICAS, "nolock", "apps", &template, &Arc::new(cluster), &Arc::new(images), work.path()).await?;
        ensure!(app.runs() == REPLICAS, "every pod runs the migration without the lock, ran {}", app.runs());
        let failed: Vec<_> = pods.iter().filter_map(|p| p.failure.as_deref()).collect();
        ensure!(!failed.is_empty(), "5 concurrent copies of the migration all succeeded: the stand-in does not collide");
        ensure!(failed.len() < REPLICAS, "no copy succeeded, the stand-in is broken: {failed:#?}");
        ensure!(failed.iter().all(|f| f.contains("already exists")), "collisions should fail on CREATE TABLE: {failed:#?}");
        Ok(())
    }
    .await;
    database.drop_database().await?;
    result
}

/// The rendered chart's webhook is called for exactly the corpus cases that
/// say so, and an annotated Deployment that was mutated stays selected.
#[test]
fn rendered_chart_selects_exactly_the_expected_cases() -> Result<()> {
    let objects = install::render_chart("Zm9v", &[])?;
    let configuration = objects
        .iter()
        .find(|o| str_at(o, "/kind") == Some("MutatingWebhookConfiguration"))
        .context("no MutatingWebhookConfiguration rendered")?;
    let hook = configuration.pointer("/webhooks/0").context("no webhook")?;
    let mut cluster = Cluster::default();
    cluster.add(&read_documents(&fixtures_dir().join("namespaces.yaml"))?)?;
    let mut wrong = Vec::new();
    for case in corpus::load_all()? {
        for operation in [Operation::Create, Operation::Update] {
            let old = (operation == Operation::Update).then_some(&case.deployment);
            let review = review("uid", operation, &case.deployment, old, false);
            let attributes = Attributes::deployment(
                operation.as_str(),
                cluster.namespace_labels(case.namespace())?,
                &review["request"],
            );
            let decision = decide(hook, &attributes)?;
            if (decision == Decision::Call) != case.expect.sent {
                wrong.push(format!(
                    "{} ({}): {decision:?}, expected sent: {}",
                    case.name,
                    operation.as_str(),
                    case.expect.sent
                ));
            }
        }
    }
    // Removing the annotations must still reach the webhook, to strip the injection.
    let stripped = json!({"metadata": {"name": "x", "namespace": "apps", "annotations": {"team": "a"}},
                              "spec": {"template": {"metadata": {"annotations": {"kube-once.io/status": "{}"}}}}});
    let review = review("uid", Operation::Update, &stripped, Some(&stripped), false);
    let namespace_labels = cluster.namespace_labels("apps")?;
    let attributes = Attributes::deployment("UPDATE", namespace_labels, &review["request"]);
    if decide(hook, &attributes)? != Decision::Call {
        wrong.push("a Deployment with only kube-once.io/status on its template is not sent".to_owned());
    }
    ensure!(wrong.is_empty(), "the rendered webhook's selection disagrees with the corpus:\n{}", wrong.join("\n"));
    Ok(())
}

/// The whole product: install, serve, admit the corpus, run the pods; the
/// chart's default delivery (the `kube-once-install` initContainer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end() -> Result<()> {
    end_to_end_with(&[], Delivery::InitContainer).await
}

/// The same with `config.delivery=imageVolume`: the tools image mounted as
/// an image volume (Kubernetes ≥ 1.35), no install container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_image_volume() -> Result<()> {
    end_to_end_with(&["config.delivery=imageVolume"], Delivery::ImageVolume).await
}

async fn end_to_end_with(values: &[&str], delivery: Delivery) -> Result<()> {
    let kubernetes_validate = support::env::var("KUBE_ONCE_KUBERNETES_VALIDATE")?;
    let servers = [Server::from_env(DatabaseKind::Postgres)?, Server::from_env(DatabaseKind::Mysql)?];
    let work = tempfile::tempdir()?;
    let installation = install::install(work.path(), values)?;
    ensure!(
        Delivery::of_config(&installation.config)? == delivery,
        "the chart rendered {values:?} into a config file with another delivery: {}",
        installation.config
    );
    let webhook = Webhook::start(&installation, work.path()).await?;
    let mut cluster = Cluster::default();
    cluster.add(&read_documents(&fixtures_dir().join("namespaces.yaml"))?)?;
    let api = ApiServer { webhook: &webhook, configuration: &installation.webhook_configuration, cluster: &cluster };
    let tools_image =
        str_at(&installation.config, "/toolsImage").context("the rendered configuration has no toolsImage")?;
    let tools = Tools { image: tools_image, delivery };

    let mut failures = Vec::new();
    let mut admitted = Vec::new();
    for case in corpus::load_all()? {
        match admit_case(&api, &case, &tools).await {
            Ok(Some(object)) => admitted.push((case, object)),
            Ok(None) if case.expect.outcome == Outcome::Refused => {}
            Ok(None) => eprintln!("{}: {:?} as expected (sent: {})", case.name, case.expect.outcome, case.expect.sent),
            Err(error) => failures.push(format!("{}: {error:#}", case.name)),
        }
    }
    if let Err(error) = validate_strict(&kubernetes_validate, &admitted, work.path()) {
        failures.push(format!("{error:#}"));
    }
    let run_id = run_id();
    for (case, object) in &admitted {
        let Some(run) = &case.expect.run else {
            eprintln!("{}: patched as expected, no pods to run", case.name);
            continue;
        };
        let server = servers.iter().find(|s| s.kind == run.database).context("no server of that kind")?;
        let database = server.create(&format!("kube_once_e2e_{run_id}_{}", case.name.replace('-', "_"))).await?;
        let started = std::time::Instant::now();
        let outcome = run_rollouts(&api, case, object, &database, &tools, &work.path().join(&case.name)).await;
        database.drop_database().await?;
        match outcome {
            Ok(runs) => eprintln!(
                "{}: 2 rollouts of {REPLICAS} pods, migration ran {runs} times ({:.1?})",
                case.name,
                started.elapsed()
            ),
            Err(error) => failures.push(format!("{}: {error:#}", case.name)),
        }
    }
    if !failures.is_empty() {
        bail!("{} of the corpus failed end to end:\n{}", failures.len(), failures.join("\n\n"));
    }
    Ok(())
}

/// What the webhook's configuration injects: the tools image, and how its pod binary is delivered.
struct Tools<'a> {
    image: &'a str,
    delivery: Delivery,
}

/// Admits one case as CREATE and checks it; the patched object when patched.
async fn admit_case(api: &ApiServer<'_>, case: &Case, tools: &Tools<'_>) -> Result<Option<Value>> {
    let expect = &case.expect;
    let admitted = api.admit(Operation::Create, &case.deployment, None).await?;
    let dry_run = api.admit_with(Operation::Create, &case.deployment, None, true).await?;
    ensure!(dry_run == admitted, "a server-side dry run should see the real result: {dry_run:?}");
    let verdict = match (admitted, expect.sent) {
        (Admitted::NotSent, false) => {
            if !has_kube_once_annotation(&case.deployment) {
                // Narrow: even if it were sent, the webhook must leave it alone.
                let verdict = api.call_directly(&case.deployment).await?;
                ensure!(
                    !matches!(verdict, Verdict::Allowed { patched: true, .. } | Verdict::Denied { .. }),
                    "sent directly, it was changed or refused: {verdict:?}"
                );
            }
            return Ok(None);
        }
        (Admitted::NotSent, true) => bail!("the API server would not call the webhook, the case expects it to"),
        (Admitted::Answered(_), false) => bail!("the API server would call the webhook, the case expects it not to"),
        (Admitted::Answered(verdict), true) => verdict,
    };
    match (expect.outcome, verdict) {
        (Outcome::Refused, Verdict::Denied { message, .. }) => {
            for word in &expect.refusal {
                ensure!(message.contains(word.as_str()), "the refusal should mention `{word}`: {message}");
            }
            eprintln!("{}: refused: {message}", case.name);
            Ok(None)
        }
        (Outcome::Unchanged, Verdict::Allowed { patched: false, .. }) => Ok(None),
        (Outcome::Patched, Verdict::Allowed { object, patched: true, warnings }) => {
            ensure!(!expect.warnings || !warnings.is_empty(), "expected warnings, got none");
            check_injection(case, &object, tools.image, tools.delivery)?;
            if !Kind::read_as(&object).template_mutable() {
                // Never sent again (the chart's rules: CREATE only); tests/e2e/kinds.rs checks its UPDATEs.
                return Ok(Some(object));
            }
            // Idempotent: the stored object admitted again (UPDATE) needs no patch.
            match api.admit(Operation::Update, &object, Some(&object)).await? {
                Admitted::Answered(Verdict::Allowed { patched: false, .. }) => {}
                other => bail!("re-admitting the mutated object as an UPDATE should need no patch, got {other:?}"),
            }
            check_reversible(api, case, &object).await?;
            Ok(Some(object))
        }
        (outcome, verdict) => bail!("expected {outcome:?}, got {verdict:?}"),
    }
}

/// Reversible: the user removes the kube-once.io/ annotations (an UPDATE);
/// the webhook must still be called (the pod template carries the status)
/// and must give back exactly the Deployment the user would have without kube-once.
async fn check_reversible(api: &ApiServer<'_>, case: &Case, mutated: &Value) -> Result<()> {
    let without_annotations = |object: &Value| {
        let mut object = object.clone();
        if let Some(annotations) = object.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
            annotations.retain(|key, _| !key.starts_with("kube-once.io/"));
        }
        object
    };
    let edited = without_annotations(mutated);
    let stripped = match api.admit(Operation::Update, &edited, Some(mutated)).await? {
        Admitted::Answered(Verdict::Allowed { object, .. }) => object,
        other => bail!("removing the annotations should be admitted with the injection stripped, got {other:?}"),
    };
    ensure!(
        stripped == without_annotations(&case.deployment),
        "removing the annotations should give back the Deployment without kube-once:\n{}",
        serde_json::to_string_pretty(&stripped["spec"]["template"])?
    );
    Ok(())
}

fn has_kube_once_annotation(object: &Value) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.keys().any(|k| k.starts_with("kube-once.io/")))
}

/// Two rollouts of 5 pods: the migration runs `runsPerRollout` times each.
/// Returns how many times it ran in all.
async fn run_rollouts(
    api: &ApiServer<'_>,
    case: &Case,
    first: &Value,
    database: &FreshDatabase,
    tools: &Tools<'_>,
    dir: &Path,
) -> Result<usize> {
    let run = case.expect.run.as_ref().context("not a run case")?;
    let run_command = case.expect.run_command.as_ref().context("no runCommand")?;
    let app_name = case.expect.app_container.as_deref().context("no appContainer")?;
    std::fs::create_dir_all(dir)?;
    let mut cluster = api.cluster.clone();
    cluster.add(&case.objects(&database.placeholders())?)?;
    let cluster = Arc::new(cluster);
    let mut app = AppImages::new(dir)?;
    app.provide(&run_command[0])?;

    // Rollout 2 is the user bumping the app's image tag: an UPDATE the webhook re-plans.
    let mut second_input = first.clone();
    let app_image_pointer = app_image_pointer(first, app_name)?;
    let next_tag = format!("{}-next", str_at(first, &app_image_pointer).unwrap_or_default());
    *second_input.pointer_mut(&app_image_pointer).context("app image")? = json!(next_tag);
    let second = match api.admit(Operation::Update, &second_input, Some(first)).await? {
        Admitted::Answered(Verdict::Allowed { object, .. }) => object,
        other => bail!("the image bump should be admitted, got {other:?}"),
    };
    check_injection(&Case { deployment: second_input.clone(), ..case.clone() }, &second, tools.image, tools.delivery)?;

    let mut expected_runs = 0;
    for (rollout, object) in [(1, first), (2, &second)] {
        let template = object.pointer("/spec/template").context("no pod template")?;
        let app_image = str_at(object, &app_image_pointer).context("app image")?.to_owned();
        let mut images = Images::new();
        images.insert(tools.image.to_owned(), tools_image_stand_in());
        images.insert(app_image.clone(), app.image(&app_image));
        let pods = run_replicas(
            REPLICAS,
            case.deployment_name(),
            case.namespace(),
            template,
            &cluster,
            &Arc::new(images),
            &dir.join(format!("rollout-{rollout}")),
        )
        .await?;
        expected_runs += run.runs_per_rollout;
        let stuck: Vec<String> =
            pods.iter().filter_map(|p| p.failure.as_ref().map(|f| format!("{}: {f}", p.name))).collect();
        ensure!(stuck.is_empty(), "rollout {rollout}: pods did not reach their main container:\n{}", stuck.join("\n"));
        for pod in &pods {
            ensure!(pod.ran == tools.delivery.injected(), "rollout {rollout}: {} ran {:?}", pod.name, pod.ran);
            ensure!(
                pod.skipped == case.expect.user_init_containers,
                "rollout {rollout}: {} skipped {:?}",
                pod.name,
                pod.skipped
            );
        }
        ensure!(
            app.runs() == expected_runs,
            "rollout {rollout}: the migration ran {} times in all, expected {expected_runs}: {}",
            app.runs(),
            std::fs::read_to_string(&app.run_log).unwrap_or_default()
        );
    }
    Ok(app.runs())
}

/// The tools image: the real server binary at `/kube-once`, its ENTRYPOINT,
/// and the pod binary at `/pod/kube-once`, which `kube-once-install` copies
/// (or which `kube-once-run` sees through the image volume's subPath `pod`).
fn tools_image_stand_in() -> Image {
    Image {
        entrypoint: vec!["/kube-once".to_owned()],
        files: [("/kube-once".to_owned(), support::binary()), ("/pod/kube-once".to_owned(), support::pod_binary())]
            .into(),
        ..Image::default()
    }
}

fn app_image_pointer(object: &Value, container: &str) -> Result<String> {
    let containers = format!("{}/spec/containers", kinds::template_pointer(object));
    let list = object.pointer(&containers).and_then(Value::as_array).context("no containers")?;
    let index =
        list.iter().position(|c| c["name"] == container).with_context(|| format!("no container {container}"))?;
    Ok(format!("{containers}/{index}/image"))
}
