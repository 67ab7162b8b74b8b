//! The desired pod template: strip what a previous admission injected (as
//! recorded in `kube-once.io/status`), then apply the plan. Both steps work on
//! the JSON of the template, so fields this code does not know survive.

use serde_json::{Map, Value, json};

use super::annotations::{self, DatabaseUrl, InjectionPlan, Preemptible, RunPlan};
use super::config::{Config, Delivery};
use super::env;
use super::kind::Kind;
use super::manifest::subject;
use super::manifest::value_at;
use super::status::Status;
use super::view::{
    AppContainers, COPIED_VALUES, Container, Entry, Field, Item, List, Lists, TemplateText, has_other_annotations,
    same_entries, same_other_annotations,
};
use super::{INJECTED_LABEL, INJECTED_LABEL_VALUE, Reason, Refusal, STATUS_ANNOTATION};
use serde_json::value::RawValue;

pub const INSTALL_CONTAINER: &str = "kube-once-install";
pub const RUN_CONTAINER: &str = "kube-once-run";
/// The init containers an injection may add (names a user's cannot take).
const INJECTED_INIT_CONTAINERS: [&str; 2] = [INSTALL_CONTAINER, RUN_CONTAINER];
/// The volumes an injection adds (names a user's cannot take).
const INJECTED_VOLUMES: [&str; 1] = [BIN_VOLUME];
pub const BIN_VOLUME: &str = "kube-once-bin";
/// Where the volume is mounted in both injected containers.
pub const BIN_DIR: &str = "/kube-once-bin";
/// The pod binary inside the tools image (beside the server at `/kube-once`).
pub const TOOLS_BINARY: &str = "/pod/kube-once";
/// The tools image's directory holding [`TOOLS_BINARY`]: the image volume's
/// `subPath`, so that `kube-once-run` sees the pod binary at `/kube-once-bin/kube-once`.
pub const TOOLS_POD_DIR: &str = "pod";
/// UID of `kube-once-install` (the distroless "nonroot" user).
pub const INSTALL_UID: i64 = 65532;

/// The status recorded on `template`, if any.
pub fn status_of(deployment: &Value, template: &Value) -> Result<Option<Status>, Refusal> {
    let Some(value) = value_at(template, &["metadata", "annotations"]).and_then(|a| a.get(STATUS_ANNOTATION)) else {
        return Ok(None);
    };
    value.as_str().and_then(|text| Status::parse(text).ok()).map(Some).ok_or_else(|| {
        Refusal::new(
            Reason::BadStatus,
            format!(
                "{}: annotation {STATUS_ANNOTATION} on the pod template is not a status written by kube-once, so kube-once cannot tell what it injected; remove that annotation and any kube-once-* initContainers and kube-once-bin volume from the pod template",
                subject(deployment)
            ),
        )
    })
}

/// Fields of a pod template's spec kube-once writes (besides the template's `metadata`).
pub const WRITTEN_SPEC_FIELDS: [&str; 4] = ["initContainers", "volumes", "nodeSelector", "tolerations"];

/// The parts of a pod template kube-once writes: its `metadata` and of its
/// `spec` only [`WRITTEN_SPEC_FIELDS`] (the app containers and the rest are
/// only read, so they are not copied), with what the request keeps as text
/// ([`TemplateText`]): the init containers and the volumes item by item,
/// the annotations but kube-once's as they were.
#[derive(Debug, Clone)]
pub struct Written<'a> {
    /// The parts as values, but for lists of init containers and volumes
    /// and the annotations outside `kube-once.io/`.
    pub template: Value,
    /// `spec.initContainers`, when a list.
    pub init_containers: Option<Vec<Entry<'a>>>,
    /// `spec.volumes`, when a list.
    pub volumes: Option<Vec<Entry<'a>>>,
    /// The annotations as written (when an object): those outside
    /// `kube-once.io/` are these, never changed.
    pub annotations: Option<&'a RawValue>,
}

/// The [`Written`] parts of `template`, whose text the request keeps in `text`.
/// The lists are allocated once, with room for what an injection appends:
/// a list grown by doubling holds up to twice its items, and copies them
/// as it grows.
pub fn written_parts<'a>(template: &Value, text: &TemplateText<'a>) -> Written<'a> {
    let written = |template| Written {
        template,
        init_containers: text.init_containers.as_ref().map(|items| {
            let mut entries = Vec::with_capacity(items.len() + INJECTED_INIT_CONTAINERS.len());
            entries.extend(items.iter().map(Entry::Text));
            entries
        }),
        volumes: text.volumes.map(|raw| Entry::all(raw, INJECTED_VOLUMES.len())),
        annotations: text.annotations,
    };
    let Some(fields) = template.as_object() else { return written(template.clone()) };
    let mut parts = Map::new();
    if let Some(metadata) = fields.get("metadata") {
        parts.insert("metadata".to_owned(), metadata.clone());
    }
    if let Some(spec) = fields.get("spec") {
        let spec = match spec.as_object() {
            Some(spec) => Value::Object(
                spec.iter()
                    .filter(|(key, _)| WRITTEN_SPEC_FIELDS.contains(&key.as_str()))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
            ),
            None => spec.clone(),
        };
        parts.insert("spec".to_owned(), spec);
    }
    written(Value::Object(parts))
}

/// Two [`Written`] parts of admitted templates (nothing kept aside but
/// what the request wrote) equal in meaning.
pub fn same_written(a: &Written, b: &Written) -> bool {
    let same_lists = |a: &Option<Vec<Entry>>, b: &Option<Vec<Entry>>| match (a, b) {
        (Some(a), Some(b)) => same_entries(a, b),
        (None, None) => true,
        _ => false,
    };
    same_lists(&a.init_containers, &b.init_containers)
        && same_lists(&a.volumes, &b.volumes)
        && same_other_annotations(a.annotations, b.annotations)
        && a.template == b.template
}

/// Whether two pod templates (whose app containers are `a_containers` and
/// `b_containers`) are equal in meaning outside their [`written_parts`].
pub fn same_unwritten(
    a: &Value,
    a_containers: Option<AppContainers>,
    b: &Value,
    b_containers: Option<AppContainers>,
) -> bool {
    let containers = match (a_containers, b_containers) {
        (Some(a), Some(b)) => a.same(b),
        (None, None) => true,
        _ => false,
    };
    if !containers {
        return false;
    }
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return a == b };
    let outside = |key: &str| key != "metadata" && key != "spec";
    if !a.iter().filter(|(key, _)| outside(key)).eq(b.iter().filter(|(key, _)| outside(key))) {
        return false;
    }
    let (Some(a_spec), Some(b_spec)) =
        (a.get("spec").and_then(Value::as_object), b.get("spec").and_then(Value::as_object))
    else {
        return a.get("spec") == b.get("spec");
    };
    // Containers that are not a list (`null`, ...) are in the values.
    let unwritten = |key: &str| !WRITTEN_SPEC_FIELDS.contains(&key);
    a_spec.iter().filter(|(key, _)| unwritten(key)).eq(b_spec.iter().filter(|(key, _)| unwritten(key)))
}

/// Whether the init containers of `template` (whose text the request
/// keeps in `text`) that kube-once did not inject are, in order and in
/// meaning, those of `stripped` (a [`strip`]ped template): what
/// [`same_written`] finds of them once `template` is stripped, found
/// without copying it. The user's init containers are what an image bump
/// changes besides the app, so this settles most updates cheaply. A status
/// kube-once cannot read leaves nothing to strip: `false`.
pub fn same_own_init_containers(deployment: &Value, template: &Value, text: &TemplateText, stripped: &Written) -> bool {
    let Ok(status) = status_of(deployment, template) else { return false };
    let injected = |item: Item| status.as_ref().is_some_and(|status| injected_container(status, item));
    match (&text.init_containers, &stripped.init_containers) {
        (Some(ours), Some(theirs)) => {
            let users: Vec<Item> = ours.iter().map(Item::Text).filter(|item| !injected(*item)).collect();
            users.len() == theirs.len() && users.iter().zip(theirs).all(|(a, b)| a.same(b.item()))
        }
        // Absent, `null`, emptied or inline: left to `same_written`.
        _ => true,
    }
}

/// The [`written_parts`] of `template` (whose text the request keeps in
/// `text`) without anything a previous admission injected.
pub fn strip<'a>(deployment: &Value, template: &Value, text: &TemplateText<'a>) -> Result<Written<'a>, Refusal> {
    let mut written = written_parts(template, text);
    let Some(status) = status_of(deployment, &written.template)? else { return Ok(written) };
    let ours = |item: Item| status.volumes.iter().any(|ours| item.is_named(ours));
    let init_containers = strip_entries(&mut written.init_containers, "initContainers", &status, |item| {
        !injected_container(&status, item)
    });
    let volumes = strip_entries(&mut written.volumes, "volumes", &status, |item| !ours(item));
    let template = &mut written.template;
    if let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) {
        for field in [init_containers, volumes].into_iter().flatten() {
            spec.insert(field.to_owned(), Value::Null);
        }
        retain(spec, "initContainers", |c| !injected_container(&status, Item::Value(c)));
        retain(spec, "volumes", |v| !ours(Item::Value(v)));
        if let Some(selector) = spec.get_mut("nodeSelector").and_then(Value::as_object_mut) {
            for (key, value) in &status.node_selector {
                if selector.get(key).and_then(Value::as_str) == Some(value) {
                    selector.remove(key);
                }
            }
        }
        if let Some(tolerations) = spec.get_mut("tolerations").and_then(Value::as_array_mut) {
            // Ours were appended, so the last equal one is ours.
            for added in &status.tolerations {
                if let Some(index) = tolerations.iter().rposition(|t| t == added) {
                    tolerations.remove(index);
                }
            }
        }
        for field in ["initContainers", "volumes", "nodeSelector", "tolerations"] {
            remove_if_created_and_empty(spec, field, &status);
        }
    }
    if let Some(metadata) = template.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(annotations) = metadata.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(STATUS_ANNOTATION);
        }
        if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
            for label in &status.labels {
                labels.remove(label);
            }
        }
        // Annotations kube-once created that others were added to since stay.
        if !has_other_annotations(written.annotations) {
            remove_if_created_and_empty(metadata, "annotations", &status);
        }
        remove_if_created_and_empty(metadata, "labels", &status);
    }
    if let Some(object) = template.as_object_mut() {
        remove_if_created_and_empty(object, "metadata", &status);
    }
    Ok(written)
}

/// Apply `plan` to a [`strip`]ped `template` (its written parts) whose app
/// container `kube-once.io/run` selects is `app` (read from the admitted
/// template); the desired written parts and the lists of the init
/// containers kube-once writes.
pub fn apply<'a>(
    deployment: &Value,
    app: Option<&Container<'a>>,
    written: Written<'a>,
    plan: &InjectionPlan,
    config: &Config,
) -> Result<(Written<'a>, Lists<'a>), Refusal> {
    let Written { mut template, mut init_containers, mut volumes, annotations } = written;
    let mut lists = Lists::default();
    let mut status = Status::new();
    let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) else {
        return Err(Refusal::new(
            Reason::IncompleteTemplate,
            format!(
                "{}: {}.spec is missing; add the pod spec with its containers",
                subject(deployment),
                Kind::read_as(deployment).template_field()
            ),
        ));
    };
    if let Some(run) = &plan.run {
        let aside = Aside { init_containers: &mut init_containers, volumes: &mut volumes, lists: &mut lists };
        inject_run(deployment, app, spec, aside, run, config, &mut status)?;
    }
    if let Some(preemptible) = &plan.preemptible {
        inject_preemptible(deployment, spec, preemptible, &mut status)?;
    }
    if let Some(object) = template.as_object_mut() {
        let metadata = field(object, "metadata", Value::Object(Map::new()), &mut status);
        if let Some(metadata) = metadata.as_object_mut() {
            // Pods that run `kube-once-run` carry the label the watcher selects them by.
            if plan.run.is_some() {
                let labels = field(metadata, "labels", Value::Object(Map::new()), &mut status);
                if let Some(labels) = labels.as_object_mut()
                    && !labels.contains_key(INJECTED_LABEL)
                {
                    labels.insert(INJECTED_LABEL.to_owned(), json!(INJECTED_LABEL_VALUE));
                    status.labels.push(INJECTED_LABEL.to_owned());
                }
            }
            let annotations = field(metadata, "annotations", Value::Object(Map::new()), &mut status);
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(STATUS_ANNOTATION.to_owned(), Value::String(status.to_annotation()));
            }
        }
    }
    Ok((Written { template, init_containers, volumes, annotations }, lists))
}

/// What of the pod template is kept as text: the init containers, the
/// volumes, the lists `kube-once-run` takes from the app.
struct Aside<'s, 'a> {
    init_containers: &'s mut Option<Vec<Entry<'a>>>,
    volumes: &'s mut Option<Vec<Entry<'a>>>,
    lists: &'s mut Lists<'a>,
}

fn inject_run<'a>(
    deployment: &Value,
    app: Option<&Container<'a>>,
    spec: &mut Map<String, Value>,
    Aside { init_containers, volumes, lists }: Aside<'_, 'a>,
    run: &RunPlan,
    config: &Config,
    status: &mut Status,
) -> Result<(), Refusal> {
    for (list, entries, reserved) in [
        ("initContainers", &*init_containers, &INJECTED_INIT_CONTAINERS[..]),
        ("volumes", &*volumes, &INJECTED_VOLUMES),
    ] {
        match entries {
            Some(entries) => refuse_reserved_in(deployment, entries.iter().map(Entry::item), list, reserved)?,
            None => refuse_reserved(deployment, spec, list, reserved)?,
        }
    }
    let (run_container, aside) = run_container(app.unwrap_or(&Container::default()), run, deployment, config.delivery);
    for (field, list) in aside {
        lists.insert(RUN_CONTAINER, field, list);
    }
    // What differs between the deliveries: the volume, the mount's subPath, the install container.
    let (volume, install) = match config.delivery {
        Delivery::InitContainer => (
            json!({"name": BIN_VOLUME, "emptyDir": {}}),
            Some(install_container(&config.tools_image, config.install_security_context.as_ref())),
        ),
        Delivery::ImageVolume => (
            json!({"name": BIN_VOLUME, "image": {"reference": config.tools_image, "pullPolicy": "IfNotPresent"}}),
            None,
        ),
    };
    status.delivery = config.delivery;
    let ours = install.into_iter().chain([run_container]);
    match init_containers {
        Some(entries) => entries.extend(ours.map(Entry::value)),
        None => {
            if let Some(list) = field(spec, "initContainers", Value::Array(Vec::new()), status).as_array_mut() {
                list.extend(ours);
            }
        }
    }
    status.init_containers = match config.delivery {
        Delivery::InitContainer => vec![INSTALL_CONTAINER.to_owned(), RUN_CONTAINER.to_owned()],
        Delivery::ImageVolume => vec![RUN_CONTAINER.to_owned()],
    };

    match volumes {
        Some(entries) => entries.push(Entry::value(volume)),
        None => {
            if let Some(list) = field(spec, "volumes", Value::Array(Vec::new()), status).as_array_mut() {
                list.push(volume);
            }
        }
    }
    status.volumes = vec![BIN_VOLUME.to_owned()];
    status.key = Some(run.key.clone());
    Ok(())
}

/// Copies the static binary into the shared volume; restricted in every way
/// the Pod Security Standard `restricted` profile asks, unless the config
/// file gives a securityContext of its own.
fn install_container(tools_image: &str, security_context: Option<&Value>) -> Value {
    let mut container = json!({
        "name": INSTALL_CONTAINER,
        "image": tools_image,
        "imagePullPolicy": "IfNotPresent",
        "command": [TOOLS_BINARY, "install", BIN_DIR],
        "volumeMounts": [{"name": BIN_VOLUME, "mountPath": BIN_DIR}],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"memory": "64Mi"},
        },
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": INSTALL_UID,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
            "readOnlyRootFilesystem": true,
        },
    });
    if let Some(context) = security_context {
        container["securityContext"] = context.clone();
    }
    container
}

/// `kube-once-run`, and those of its lists that extend an app's list kept
/// as text: the app's `envFrom`; the app's `env`, then the plan's
/// variables; the app's `volumeMounts`, then the binary's mount. The app's
/// items are referred to, not copied.
fn run_container<'a>(
    app: &Container<'a>,
    run: &RunPlan,
    deployment: &Value,
    delivery: Delivery,
) -> (Value, Vec<(&'static str, List<'a>)>) {
    let mut container = Map::new();
    container.insert("name".to_owned(), json!(RUN_CONTAINER));
    for field in COPIED_VALUES {
        // A field left empty by a chart is `null`: nothing to copy.
        if let Some(value) = app.get(field).filter(|value| !value.is_null()) {
            container.insert(field.to_owned(), value.clone());
        }
    }
    // `kube-once lock` writes its summary to the termination-message path;
    // when it could not (killed first), the last log lines stand in for it.
    container.insert("terminationMessagePolicy".to_owned(), json!("FallbackToLogsOnError"));
    let mut command = vec![format!("{BIN_DIR}/kube-once"), "lock".to_owned(), "--".to_owned()];
    command.extend(run.command.iter().cloned());
    container.insert("command".to_owned(), json!(command));

    let mut aside = Vec::new();
    match app.field("envFrom") {
        Some(Field::Aside(List::Text(raw))) if raw.get() != "null" => aside.push(("envFrom", List::Text(raw))),
        Some(Field::Inline(value)) if !value.is_null() => {
            container.insert("envFrom".to_owned(), value.clone());
        }
        _ => {}
    }
    let mut mount = json!({"name": BIN_VOLUME, "mountPath": BIN_DIR, "readOnly": true});
    if delivery == Delivery::ImageVolume {
        mount["subPath"] = json!(TOOLS_POD_DIR);
    }
    for (field, extra) in [("env", plan_env(run, deployment)), ("volumeMounts", vec![mount])] {
        match app.field(field) {
            Some(Field::Aside(List::Text(raw))) if raw.get().starts_with('[') => {
                aside.push((field, List::extended(raw, extra)));
            }
            app_list => {
                let mut items = match app_list {
                    Some(Field::Inline(Value::Array(items))) => items.clone(),
                    _ => Vec::new(),
                };
                items.extend(extra);
                container.insert(field.to_owned(), Value::Array(items));
            }
        }
    }
    (Value::Object(container), aside)
}

/// The plan as `KUBE_ONCE_*` env vars, so `kube-once lock` needs no API access.
/// They come after the app's env, so `$(VAR)` references in the URL template resolve.
fn plan_env(run: &RunPlan, deployment: &Value) -> Vec<Value> {
    let var = |name: &str, value: &str| json!({"name": name, "value": value});
    let field_ref = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}});
    let mut vars = Vec::new();
    match &run.database {
        DatabaseUrl::Env(name) => vars.push(var(env::DATABASE_URL_ENV, name)),
        DatabaseUrl::Template(template) => {
            vars.push(var(env::DATABASE_URL_ENV, env::DATABASE_URL));
            vars.push(var(env::DATABASE_URL, template));
        }
    }
    if let Some(name) = &run.lock_url_env {
        vars.push(var(env::LOCK_URL_ENV, name));
    }
    // A value for `lock` (part of the database's application_name), not a
    // name for messages: those come from `subject`. A Deployment's is its
    // name, as it always was; another kind's says the kind too
    // (`statefulset/db`), so a StatefulSet and a Deployment of one name tell
    // apart in `pg_stat_activity`.
    let name = value_at(deployment, &["metadata", "name"])
        .or_else(|| value_at(deployment, &["metadata", "generateName"]))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let deployment_name = match Kind::read_as(deployment) {
        Kind::Deployment => name.to_owned(),
        kind => format!("{}/{name}", kind.name().to_ascii_lowercase()),
    };
    vars.extend([
        var(env::LOCK_NAME, &run.lock_name),
        var(env::KEY, &run.key),
        var(env::RECORD, run.record.as_str()),
        var(env::TIMEOUT, &humantime::format_duration(run.timeout).to_string()),
        var(env::IMAGE, &run.image),
        var(env::DEPLOYMENT, &deployment_name),
        field_ref(env::NAMESPACE, "metadata.namespace"),
        field_ref(env::POD_NAME, "metadata.name"),
    ]);
    vars
}

fn inject_preemptible(
    deployment: &Value,
    spec: &mut Map<String, Value>,
    preemptible: &Preemptible,
    status: &mut Status,
) -> Result<(), Refusal> {
    status.preset = Some(preemptible.name.clone());
    let preset = &preemptible.preset;
    if !preset.node_selector.is_empty() {
        let selector = field(spec, "nodeSelector", Value::Object(Map::new()), status);
        if let Some(selector) = selector.as_object_mut() {
            for (key, value) in &preset.node_selector {
                match selector.get(key) {
                    None => {
                        selector.insert(key.clone(), Value::String(value.clone()));
                        status.node_selector.insert(key.clone(), value.clone());
                    }
                    Some(existing) if existing.as_str() == Some(value) => {}
                    Some(existing) => {
                        return Err(Refusal::new(
                            Reason::NodeSelectorConflict,
                            format!(
                                "{}: annotation kube-once.io/preemptible: {:?} sets nodeSelector {key}={value}, but the pod template already has {key}={existing}; remove that nodeSelector entry or choose another preset",
                                subject(deployment),
                                preemptible.name
                            ),
                        )
                        .about(annotations::PREEMPTIBLE));
                    }
                }
            }
        }
    }
    if !preset.tolerations.is_empty() {
        let tolerations = field(spec, "tolerations", Value::Array(Vec::new()), status);
        if let Some(tolerations) = tolerations.as_array_mut() {
            for toleration in &preset.tolerations {
                let value = serde_json::to_value(toleration).unwrap_or_default();
                if !tolerations.iter().any(|existing| same_toleration(existing, &value)) {
                    tolerations.push(value.clone());
                    status.tolerations.push(value);
                }
            }
        }
        // Every toleration was already there: leave no empty list behind.
        if status.tolerations.is_empty() {
            remove_if_created_and_empty(spec, "tolerations", status);
            status.created.retain(|f| f != "tolerations");
            status.was_null.retain(|f| f != "tolerations");
        }
    }
    if status.node_selector.is_empty() {
        remove_if_created_and_empty(spec, "nodeSelector", status);
        status.created.retain(|f| f != "nodeSelector");
        status.was_null.retain(|f| f != "nodeSelector");
    }
    Ok(())
}

/// Tolerations equal in meaning (operator defaults to Equal; a missing field equals an empty one).
fn same_toleration(a: &Value, b: &Value) -> bool {
    let text = |t: &Value, field: &str| t.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
    let operator = |t: &Value| t.get("operator").and_then(Value::as_str).unwrap_or("Equal").to_owned();
    text(a, "key") == text(b, "key")
        && operator(a) == operator(b)
        && text(a, "value") == text(b, "value")
        && text(a, "effect") == text(b, "effect")
        && a.get("tolerationSeconds") == b.get("tolerationSeconds")
}

/// Names kube-once injects may not be used by the user: stripping would remove them.
fn refuse_reserved(
    deployment: &Value,
    spec: &Map<String, Value>,
    list: &str,
    reserved: &[&str],
) -> Result<(), Refusal> {
    let items = spec.get(list).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    refuse_reserved_in(deployment, items.iter().map(Item::Value), list, reserved)
}

/// [`refuse_reserved`] of the items of a list.
fn refuse_reserved_in<'i>(
    deployment: &Value,
    mut items: impl Iterator<Item = Item<'i>>,
    list: &str,
    reserved: &[&str],
) -> Result<(), Refusal> {
    let taken = |item: Item| item.name().and_then(|name| reserved.iter().find(|reserved| **reserved == name).copied());
    match items.find_map(taken) {
        Some(taken) => Err(Refusal::new(
            Reason::ReservedName,
            format!(
                "{}: the pod template already has {list} entry {taken:?}, a name kube-once reserves for what it injects; rename it",
                subject(deployment)
            ),
        )),
        None => Ok(()),
    }
}

/// `object[key]`, set to `empty` (and recorded as created) when absent or
/// `null` (charts render `annotations:` or `initContainers:` with no value:
/// absent, `null` and empty are alike to Kubernetes, so to kube-once). A
/// `null` is recorded too, so stripping writes it back exactly.
fn field<'a>(object: &'a mut Map<String, Value>, key: &str, empty: Value, status: &mut Status) -> &'a mut Value {
    match object.get(key) {
        None => status.created.push(key.to_owned()),
        Some(Value::Null) => {
            status.created.push(key.to_owned());
            status.was_null.push(key.to_owned());
        }
        Some(_) => {}
    }
    let slot = object.entry(key.to_owned()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = empty;
    }
    slot
}

/// Undoes [`field`]: a field kube-once created and stripping left empty goes
/// back to what it was (absent, or `null`).
fn remove_if_created_and_empty(object: &mut Map<String, Value>, key: &str, status: &Status) {
    let empty = match object.get(key) {
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(list)) => list.is_empty(),
        _ => false,
    };
    if empty && status.created(key) {
        if status.was_null(key) {
            object.insert(key.to_owned(), Value::Null);
        } else {
            object.remove(key);
        }
    }
}

fn retain(spec: &mut Map<String, Value>, list: &str, keep: impl Fn(&Value) -> bool) {
    if let Some(items) = spec.get_mut(list).and_then(Value::as_array_mut) {
        items.retain(keep);
    }
}

/// [`retain`] of a list kept as [`Entry`]s (`field` of the pod spec): a
/// list kube-once created that is left empty goes back to what it was, the
/// field to write back when that was `null`.
fn strip_entries(
    entries: &mut Option<Vec<Entry>>,
    field: &'static str,
    status: &Status,
    keep: impl Fn(Item) -> bool,
) -> Option<&'static str> {
    let list = entries.as_mut()?;
    list.retain(|entry| keep(entry.item()));
    if !list.is_empty() || !status.created(field) {
        return None;
    }
    *entries = None;
    status.was_null(field).then_some(field)
}

/// Whether `container` is one of the init containers `status` records as injected.
fn injected_container(status: &Status, container: Item) -> bool {
    container.name().is_some_and(|name| status.init_containers.iter().any(|injected| *injected == name))
}
