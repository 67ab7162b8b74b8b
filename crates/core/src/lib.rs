//! The pure core: no I/O, no clock, no randomness. It turns a workload (a
//! Deployment or another [`Kind`] with a pod template; plus the previous one,
//! on UPDATE) and the webhook [`Config`] into the desired object, the RFC
//! 6902 patch that gets there, and warnings.
//!
//! annotations → an injection plan → strip the previous injection → inject → patch.

#![forbid(unsafe_code)]

// Namespaces other crates name: the lock reads `annotations::default_key`,
// `annotations::MAX_KEY` and `config::Defaults` for the same defaults the
// webhook injects, `env` is the list of `KUBE_ONCE_*` variables the webhook
// sets and the lock reads, and `yaml` is a reader whose `Limits` and
// `ErrorKind` only read clearly qualified.
pub mod annotations;
pub mod config;
pub mod env;
pub mod yaml;

mod contract;
mod inject;
mod kind;
mod manifest;
mod patch;
mod presets;
mod render;
mod settings;
mod status;
mod view;

pub use config::{Config, ConfigError, Defaults, Delivery};
pub use contract::{ANNOTATIONS, AnnotationDoc};
pub use kind::Kind;
pub use manifest::{describe, is_deployment, is_workload, parse_documents, subject, unheeded};
pub use render::{DocumentPreview, Format, Preview, WorkloadPreview, preview, to_yaml};
pub use settings::Record;
pub use view::Workload;

use annotations::InjectionPlan;
use manifest::value_at;
use serde_json::Value;

/// Annotation prefix; every annotation of the contract starts with it.
pub const PREFIX: &str = "kube-once.io/";
/// On the pod template: the record of what kube-once injected, which makes removing it exact.
pub const STATUS_ANNOTATION: &str = "kube-once.io/status";
/// The pod template label kube-once adds with `kube-once-run`, so that the
/// webhook's watcher lists the pods it injected by a label selector instead
/// of every pod of the cluster.
pub const INJECTED_LABEL: &str = "kube-once.io/injected";
/// The value of [`INJECTED_LABEL`].
pub const INJECTED_LABEL_VALUE: &str = "true";

/// What the webhook does to one Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// Minimal, deterministic RFC 6902 operations; empty when nothing changes.
    pub patch: json_patch::Patch,
    /// The Deployment after the patch.
    pub object: Value,
    /// Non-fatal notes for the user (AdmissionResponse `warnings`).
    pub warnings: Vec<String>,
}

/// Why a Deployment is refused: a [`Reason`] to count and branch on, and a
/// message (its `Display`) that names the Deployment, the annotation, what is
/// wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    reason: Reason,
    annotation: Option<&'static str>,
    message: String,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, annotation: None, message: message.into() }
    }

    /// The same refusal, about contract annotation `name` (without the prefix).
    pub fn about(self, name: &'static str) -> Self {
        Self { annotation: Some(name), ..self }
    }

    /// What kind of problem it is (the `reason` label of the refusal metrics).
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The contract annotation at fault (without the prefix), when one is.
    pub fn annotation(&self) -> Option<&'static str> {
        self.annotation
    }

    /// The message shown to the user (the same as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The kinds of [`Refusal`]. Their labels ([`Reason::as_str`]) are stable:
/// metrics and alerts use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A `kube-once.io/` annotation that is not part of the contract.
    UnknownAnnotation,
    /// A contract annotation in the wrong place: `kube-once.io/status` on the
    /// Deployment, or a contract annotation on the pod template.
    MisplacedAnnotation,
    /// An option of `run` (`timeout`, `key`, ...) without `kube-once.io/run`.
    NeedsRun,
    /// An annotation whose value is malformed or out of range.
    BadValue,
    /// `database-url` with a literal password instead of a `$(VAR)` reference.
    LiteralPassword,
    /// Two annotations that exclude each other (`database-url` and `database-url-env`).
    ConflictingAnnotations,
    /// `container` names no container of the pod template.
    UnknownContainer,
    /// `preemptible` names no preset of the webhook's config.
    UnknownPreset,
    /// `preemptible: "true"` while the webhook's config has no `defaultPreset`.
    NoDefaultPreset,
    /// The pod template lacks what the injection needs (template, pod spec,
    /// containers, the app container's image).
    IncompleteTemplate,
    /// `kube-once.io/status` on the pod template is not one kube-once wrote.
    BadStatus,
    /// The preset's nodeSelector contradicts the pod template's.
    NodeSelectorConflict,
    /// The pod template uses a name kube-once reserves for what it injects.
    ReservedName,
}

impl Reason {
    /// In declaration order: `reason as usize` indexes it.
    pub const ALL: [Reason; 13] = [
        Reason::UnknownAnnotation,
        Reason::MisplacedAnnotation,
        Reason::NeedsRun,
        Reason::BadValue,
        Reason::LiteralPassword,
        Reason::ConflictingAnnotations,
        Reason::UnknownContainer,
        Reason::UnknownPreset,
        Reason::NoDefaultPreset,
        Reason::IncompleteTemplate,
        Reason::BadStatus,
        Reason::NodeSelectorConflict,
        Reason::ReservedName,
    ];

    /// The stable snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownAnnotation => "unknown_annotation",
            Reason::MisplacedAnnotation => "misplaced_annotation",
            Reason::NeedsRun => "needs_run",
            Reason::BadValue => "bad_value",
            Reason::LiteralPassword => "literal_password",
            Reason::ConflictingAnnotations => "conflicting_annotations",
            Reason::UnknownContainer => "unknown_container",
            Reason::UnknownPreset => "unknown_preset",
            Reason::NoDefaultPreset => "no_default_preset",
            Reason::IncompleteTemplate => "incomplete_template",
            Reason::BadStatus => "bad_status",
            Reason::NodeSelectorConflict => "node_selector_conflict",
            Reason::ReservedName => "reserved_name",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Desired state for `object` (a Deployment as JSON). `old_object` is the
/// stored object on UPDATE: when the user's pod template and the
/// `kube-once.io/` annotations are unchanged, the injected parts are kept
/// exactly as they were (the webhook alone never starts a rollout).
///
/// A Deployment with no `kube-once.io/` annotation and no
/// `kube-once.io/status` on its template is returned untouched, with no patch.
///
/// The same answer as [`changes`] (the object is its patch applied), for
/// callers that hold the Deployment as a [`Value`] (`preview`, `explain`).
pub fn mutate(object: &Value, old_object: Option<&Value>, config: &Config) -> Result<Mutation, Refusal> {
    let text = object.to_string();
    let old_text = old_object.map(Value::to_string);
    let view = read(object, &text)?;
    let old_view = match (old_object, &old_text) {
        (Some(old), Some(text)) => Some(read(old, text)?),
        _ => None,
    };
    let Changes { patch, warnings } = changes(&view, old_view.as_ref(), config)?;
    let mut object = object.clone();
    json_patch::patch(&mut object, &patch).map_err(|error| {
        Refusal::new(
            Reason::BadValue,
            format!("{}: kube-once could not apply its own patch ({error}); please report this", subject(&object)),
        )
    })?;
    Ok(Mutation { patch, object, warnings })
}

/// `text`, the JSON of `object`, as a [`Workload`].
fn read<'a>(object: &Value, text: &'a str) -> Result<Workload<'a>, Refusal> {
    Workload::parse(text).map_err(|error| {
        Refusal::new(
            Reason::BadValue,
            format!("{}: kube-once cannot read it ({error}); simplify the manifest", subject(object)),
        )
    })
}

/// What the admission webhook sends back: [`Mutation`] without the desired
/// object, which the API server builds itself from the patch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Changes {
    /// Minimal, deterministic RFC 6902 operations; empty when nothing changes.
    pub patch: json_patch::Patch,
    /// Non-fatal notes for the user (AdmissionResponse `warnings`).
    pub warnings: Vec<String>,
}

/// [`mutate`] for the admission hot path: the patch and warnings for a
/// workload read by [`Workload::parse`], with no copy of the object
/// (the cost follows the pod template, and the patch the change).
pub fn changes(object: &Workload, old_object: Option<&Workload>, config: &Config) -> Result<Changes, Refusal> {
    let kind = Kind::read_as(&object.value);
    if !kind.template_mutable()
        && let Some(old) = old_object
    {
        return Ok(Changes {
            patch: json_patch::Patch::default(),
            warnings: immutable_update(&object.value, &old.value),
        });
    }
    let Some(desired) = desired_template(kind, object, old_object, config)? else { return Ok(Changes::default()) };
    let patch = patch::template_patch(
        kind.template_path(),
        desired.before,
        object.text(kind),
        patch::Sources::new(object.app_containers(kind), desired.app.as_ref()),
        desired.template,
        desired.lists,
    );
    Ok(Changes { patch: json_patch::Patch(patch), warnings: desired.warnings })
}

/// The answer to an UPDATE of a kind whose pod template is fixed at
/// creation (a Job): no patch, since the API server refuses any change to
/// the template, and a warning when the `kube-once.io/` annotations changed,
/// so the change is not taken for applied.
fn immutable_update(object: &Value, old: &Value) -> Vec<String> {
    if contract_annotations(object) == contract_annotations(old) {
        return Vec::new();
    }
    vec![format!(
        "{}: a {kind}'s pod template cannot change after creation, so kube-once injects only when the {kind} is created and leaves this update as it is; its changed kube-once.io/ annotations take effect on a new {kind} (delete and re-create it)",
        subject(object),
        kind = Kind::read_as(object),
    )]
}

/// The pod template before and after, with the warnings about it.
struct DesiredTemplate<'o, 'a> {
    before: &'o Value,
    template: inject::Written<'a>,
    lists: view::Lists<'a>,
    /// The app container `kube-once.io/run` selects, read.
    app: Option<view::App<'a>>,
    warnings: Vec<String>,
}

/// `None` when the workload is none of kube-once's business (see [`mutate`]).
fn desired_template<'o, 'a>(
    kind: Kind,
    object: &'o Workload<'a>,
    old_object: Option<&Workload<'a>>,
    config: &Config,
) -> Result<Option<DesiredTemplate<'o, 'a>>, Refusal> {
    let deployment = &object.value;
    let template = kind.template(deployment);
    let planned = annotations::plan(deployment, object.app_containers(kind), config);
    let Some(template) = template else {
        // A Rollout's workloadRef explains its empty list of containers.
        let borrowed = value_at(deployment, &["spec", "workloadRef"]).is_some();
        return match planned {
            Ok(None) => Ok(None),
            Err(refusal) if !(borrowed && refusal.reason() == Reason::IncompleteTemplate) => Err(refusal),
            _ => Err(missing_template(kind, deployment)),
        };
    };
    let (plan, app) = planned?.map_or((None, None), |(plan, app)| (Some(plan), app));
    let injected_before = inject::status_of(deployment, template)?.is_some();
    // A Job with kube-once's status but no annotation of its own was made
    // from an injected template (a CronJob's Jobs are): it is not ours to
    // strip, and its template cannot change anyway.
    if plan.is_none() && (!injected_before || !kind.template_mutable()) {
        return Ok(None);
    }

    // Only what kube-once writes is copied; the app containers are read in place.
    let stripped = inject::strip(deployment, template, object.text(kind))?;
    // The app container was read once, by the plan: for the injection, the
    // warnings and the patch's copy sources.
    let container = app.as_ref().map(|app| &app.container);
    let (desired_template, lists) = match &plan {
        None => (stripped, view::Lists::default()),
        Some(plan) => match old_object.and_then(|old| kept_injection(object, old, &stripped)) {
            Some(kept) => kept,
            None => inject::apply(deployment, container, stripped, plan, config)?,
        },
    };
    let first_enabled = kind.long_running() && old_object.is_none_or(|old| !is_injected(&old.value));
    let mut warnings = plan.as_ref().map(|plan| warnings(plan, container, first_enabled)).unwrap_or_default();
    if let Some(run) = plan.as_ref().and_then(|plan| plan.run.as_ref()) {
        warnings.extend(progress_deadline_warning(kind, deployment, run.timeout));
    }
    Ok(Some(DesiredTemplate { before: template, template: desired_template, lists, app, warnings }))
}

/// The stability rule: the written parts of `old`'s pod template
/// (injection included) when the user changed neither the template nor a
/// `kube-once.io/` annotation (`stripped`: the written parts of `object`'s
/// template, stripped).
fn kept_injection<'a>(
    object: &Workload<'a>,
    old: &Workload<'a>,
    stripped: &inject::Written,
) -> Option<(inject::Written<'a>, view::Lists<'a>)> {
    let (old_kind, kind) = (Kind::read_as(&old.value), Kind::read_as(&object.value));
    let old_template = old_kind.template(&old.value)?;
    let template = kind.template(&object.value)?;
    if !is_injected(&old.value) || contract_annotations(&object.value) != contract_annotations(&old.value) {
        return None;
    }
    if !inject::same_own_init_containers(&old.value, old_template, old.text(old_kind), stripped) {
        return None;
    }
    let old_stripped = inject::strip(&old.value, old_template, old.text(old_kind)).ok()?;
    let unchanged = inject::same_written(&old_stripped, stripped)
        && inject::same_unwritten(old_template, old.app_containers(old_kind), template, object.app_containers(kind));
    unchanged.then(|| (inject::written_parts(old_template, old.text(old_kind)), view::Lists::default()))
}

/// Whether kube-once's injection is in this workload (its pod template
/// carries `kube-once.io/status`): what is left to clean up after an uninstall.
pub fn is_injected(deployment: &Value) -> bool {
    Kind::read_as(deployment)
        .template(deployment)
        .and_then(|template| value_at(template, &["metadata", "annotations"]))
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .is_some()
}

/// The refusal for an annotated workload without a pod template. A Rollout
/// may have none of its own: `spec.workloadRef` borrows a Deployment's, and
/// that Deployment is where the injection belongs.
fn missing_template(kind: Kind, object: &Value) -> Refusal {
    let workload_ref = value_at(object, &["spec", "workloadRef"]);
    let message = match workload_ref {
        Some(reference) if kind == Kind::Rollout => {
            let name = reference.get("name").and_then(Value::as_str).unwrap_or("(unnamed)");
            let referenced = reference.get("kind").and_then(Value::as_str).unwrap_or("Deployment");
            format!(
                "{}: the Rollout has no pod template of its own (spec.workloadRef uses {referenced} {name}'s), so kube-once has nothing to inject into here; move the kube-once.io/ annotations to {referenced} {name}, whose injected template the Rollout's pods then use",
                subject(object)
            )
        }
        _ => format!("{}: {} is missing; add the pod template", subject(object), kind.template_field()),
    };
    Refusal::new(Reason::IncompleteTemplate, message)
}

fn contract_annotations(deployment: &Value) -> Vec<(&String, &Value)> {
    value_at(deployment, &["metadata", "annotations"])
        .and_then(Value::as_object)
        .map(|annotations| annotations.iter().filter(|(key, _)| key.starts_with(PREFIX)).collect())
        .unwrap_or_default()
}

/// A rollout whose progress deadline passes before kube-once-run's timeout
/// is reported failed (`ProgressDeadlineExceeded`, `kubectl rollout status`
/// exits 1) while its new pods still wait for, or run, the migration.
fn progress_deadline_warning(kind: Kind, workload: &Value, timeout: std::time::Duration) -> Option<String> {
    /// Kubernetes' default `spec.progressDeadlineSeconds`.
    const DEFAULT_DEADLINE: u64 = 600;
    if !kind.has_progress_deadline() {
        return None;
    }
    let set = value_at(workload, &["spec", "progressDeadlineSeconds"]).and_then(Value::as_u64);
    let deadline = set.unwrap_or(DEFAULT_DEADLINE);
    (timeout.as_secs() > deadline).then(|| {
        format!(
            "kube-once.io/timeout ({}) is longer than spec.progressDeadlineSeconds ({deadline} s{}): a migration that waits or runs past it makes the rollout report ProgressDeadlineExceeded (kubectl rollout status fails) while it goes on; set spec.progressDeadlineSeconds above the timeout, or a shorter kube-once.io/timeout",
            humantime::format_duration(timeout),
            if set.is_some() { "" } else { ", the default" }
        )
    })
}

/// Notes kubectl prints on apply: what the user should know, kept short.
fn warnings(plan: &InjectionPlan, app: Option<&view::Container>, first_enabled: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(run) = &plan.run else { return warnings };
    if let Some(preemptible) = &plan.preemptible {
        warnings.push(format!(
            "kube-once.io/run on preemptible nodes ({}): a node reclaim can cut the command off mid-run; it must be safe to run again",
            preemptible.name
        ));
    }
    if run.record == Record::None {
        warnings
            .push("kube-once.io/record: none: every pod runs the command in turn, so it must be idempotent".to_owned());
    }
    let declared = |var: &str| {
        app.is_some_and(|app| {
            app.field("envFrom").and_then(view::Field::item_count).is_some_and(|len| len > 0)
                || app.field("env").is_some_and(|env| env.has_item_named(var))
        })
    };
    let mut needed: Vec<(String, &str)> = match &run.database {
        annotations::DatabaseUrl::Env(name) => vec![(name.clone(), "kube-once.io/database-url-env")],
        annotations::DatabaseUrl::Template(template) => annotations::env_references(template)
            .unwrap_or_default()
            .into_iter()
            .map(|name| (name, "kube-once.io/database-url"))
            .collect(),
    };
    if let Some(name) = &run.lock_url_env {
        needed.push((name.clone(), "kube-once.io/lock-url-env"));
    }
    for (var, annotation) in needed {
        if !declared(&var) {
            warnings.push(format!(
                "{annotation}: {var} is not in the env of container {:?}; the lock will fail unless the image sets it",
                run.container
            ));
        }
    }
    if first_enabled {
        warnings.push(
            "kube-once.io/run: old pods keep serving while the new ones migrate, so migrations must be backward compatible".to_owned(),
        );
    }
    warnings
}
