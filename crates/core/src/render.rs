//! What `kube-once preview` and `POST /preview` print: one reader, one
//! renderer, one choice of [`Format`].
//!
//! [`preview`] reads a manifest stream ([`crate::yaml`]), runs every
//! workload of a supported [`Kind`] in it (nested `List`/`DeploymentList`/...
//! items included) through [`crate::mutate`] as a CREATE, and keeps each
//! document's text; what kube-once would pass over in silence
//! ([`crate::unheeded`]) becomes a warning. [`Preview::render`] then prints:
//! - `yaml`: the stream with every document kube-once does not change
//!   exactly as it was, byte for byte (comments, key order, quoting,
//!   whitespace); a changed document is its own text with edits where it
//!   changes ([`yaml::edit`]), or, where that cannot be done (aliases),
//!   written anew in its input's key order after its leading `---` and
//!   comment lines;
//! - `patch`: the RFC 6902 patch of each workload (`[]` when unchanged);
//! - `diff`: a unified diff of each changed workload (nothing when none
//!   changes), both sides written the same way so only real changes show;
//! - `json`: kubectl's `v1 List` of every object of the stream, one item
//!   per document, mutated where kube-once changes it (what `yaml` prints,
//!   as JSON);
//!
//! and [`Preview::patches`] gives each workload's patch naming its object,
//! so that a caller over many streams prints one JSON value.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::kind::Kind;
use crate::manifest::{self, at_path, at_path_mut, workload_paths};
use crate::yaml::edit::{Rewrite, edit};
use crate::yaml::{self, Document, Limits, Node, YamlError};
use crate::{Config, Mutation, Refusal};

/// What to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The RFC 6902 JSON patch per workload.
    Patch,
    /// The manifests, mutated where kube-once changes them, ready to commit.
    Yaml,
    /// A unified diff of each changed workload.
    Diff,
    /// The objects, mutated where kube-once changes them, as a `v1 List`.
    Json,
}

impl Format {
    pub const NAMES: [&str; 4] = ["patch", "yaml", "diff", "json"];

    pub fn name(self) -> &'static str {
        match self {
            Format::Patch => "patch",
            Format::Yaml => "yaml",
            Format::Diff => "diff",
            Format::Json => "json",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "patch" => Ok(Format::Patch),
            "yaml" => Ok(Format::Yaml),
            "diff" => Ok(Format::Diff),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown format `{other}`; use {}", Format::NAMES.join(", "))),
        }
    }
}

/// One manifest stream, read and mutated.
#[derive(Debug)]
pub struct Preview<'a> {
    text: &'a str,
    /// What the stream was read with: an unchanged document is read again
    /// for `-o json`.
    limits: Limits,
    pub documents: Vec<DocumentPreview>,
}

#[derive(Debug)]
pub struct DocumentPreview {
    /// Where the document is in the stream; its `node` is kept only when
    /// kube-once changes it (it orders the keys of the rewrite).
    pub document: Document,
    /// Whether the document holds a value (not only comments).
    pub holds_value: bool,
    /// The document as JSON, kept only when kube-once changes it. Only
    /// supported kinds and their lists are converted at all: what passes
    /// through is printed from its text.
    pub value: Option<Value>,
    pub workloads: Vec<WorkloadPreview>,
    /// What kube-once passes over in silence in this document
    /// ([`crate::unheeded`]), each naming its object.
    pub notes: Vec<String>,
}

#[derive(Debug)]
pub struct WorkloadPreview {
    /// Where in the document (see `workload_paths`).
    pub path: Vec<usize>,
    pub kind: Kind,
    /// `namespace/name`, for messages.
    pub name: String,
    pub outcome: Result<Mutation, Refusal>,
}

impl WorkloadPreview {
    /// Whether kube-once changes this workload.
    pub fn changed(&self) -> bool {
        self.outcome.as_ref().is_ok_and(|m| !m.patch.0.is_empty())
    }
}

impl DocumentPreview {
    pub fn changed(&self) -> bool {
        self.workloads.iter().any(WorkloadPreview::changed)
    }

    fn node_at(&self, path: &[usize]) -> Option<&Node> {
        path.iter().try_fold(self.document.node.as_ref()?, |node, index| node.get("items")?.item(*index))
    }
}

/// Reads `text` and mutates its workloads (see the module documentation).
///
/// What is kept of a changed document (its JSON and each mutated object,
/// ready to be written) counts against [`Limits::max_nodes`] together with
/// the nodes read: many annotated workloads cost several times what their
/// text does, and are refused when the stream's budget runs out.
pub fn preview<'a>(text: &'a str, config: &Config, limits: &Limits) -> Result<Preview<'a>, YamlError> {
    let read = yaml::read_stream_lenient(text, limits)?;
    let mut nodes: usize = read.iter().map(|document| document.nodes).sum();
    let mut documents: Vec<DocumentPreview> = Vec::with_capacity(read.len());
    for mut document in read {
        let holds_value = document.node.is_some();
        let candidate = document.node.as_ref().and_then(|node| node.get("kind")).is_some_and(|kind| {
            matches!(kind, Node::Str(kind) if kind == "List" || Kind::named(kind).is_some() || manifest::list_of(kind).is_some())
        });
        let value = if candidate { document.to_json()? } else { None };
        let workloads: Vec<WorkloadPreview> = value
            .as_ref()
            .map(|value| {
                workload_paths(value)
                    .into_iter()
                    .filter_map(|(path, kind)| {
                        let object = at_path(value, &path)?;
                        let outcome = mutate_as(object, kind, config);
                        Some(WorkloadPreview { kind, name: manifest::describe(object), path, outcome })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut notes: Vec<String> = match &value {
            Some(value) => objects(value).flat_map(manifest::unheeded).collect(),
            None => document.node.as_ref().map(notes_of_node).unwrap_or_default(),
        };
        let changed = workloads.iter().any(WorkloadPreview::changed);
        if let Some(duplicate) = document.duplicate_key.take() {
            // Rewriting it would drop the values the last one overrides,
            // silently; passed through, it is what the user wrote, and
            // Kubernetes reads it so.
            if changed {
                return Err(duplicate);
            }
            notes.push(format!("{duplicate}; kube-once passes this document through unchanged"));
        }
        // Memory: a document printed as it was needs neither its tree nor its JSON.
        if !changed {
            document.node = None;
        }
        let value = if changed { value } else { None };
        if let Some(value) = &value {
            let objects = workloads.iter().filter_map(|d| d.outcome.as_ref().ok()).map(|m| json_nodes(&m.object));
            nodes = nodes.saturating_add(json_nodes(value)).saturating_add(objects.sum());
            if nodes > limits.max_nodes {
                let mutated = documents.iter().filter(|d| d.changed()).count() + 1;
                return Err(YamlError {
                    document: document.number,
                    line: document.line,
                    kind: yaml::ErrorKind::TooManyNodes,
                    message: format!(
                        "the input and the {mutated} documents mutated so far hold more than {} nodes, the limit \
                         of one stream; split it into smaller files",
                        limits.max_nodes
                    ),
                });
            }
        }
        documents.push(DocumentPreview { document, holds_value, value, workloads, notes });
    }
    Ok(Preview { text, limits: *limits, documents })
}

/// [`crate::mutate`] of `object` as `kind`: an item of a `CronJobList` may
/// leave its `kind` out, which the core would read as a Deployment's; it is
/// mutated with its kind filled in, and printed without it, as written.
fn mutate_as(object: &Value, kind: Kind, config: &Config) -> Result<Mutation, Refusal> {
    if object.get("kind").is_some() {
        return crate::mutate(object, None, config);
    }
    let mut typed = object.clone();
    if let Some(fields) = typed.as_object_mut() {
        fields.insert("kind".to_owned(), Value::String(kind.name().to_owned()));
    }
    let mut mutation = crate::mutate(&typed, None, config)?;
    if let Some(fields) = mutation.object.as_object_mut() {
        fields.remove("kind");
    }
    Ok(mutation)
}

/// The objects of a document: itself, or the items of its (nested) lists.
fn objects(value: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match manifest::is_list(value) {
        true => Box::new(value.get("items").and_then(Value::as_array).into_iter().flatten().flat_map(objects)),
        false => Box::new(std::iter::once(value)),
    }
}

/// [`manifest::unheeded`] of a document not converted to JSON: only its
/// type and metadata are, and only when it has annotations.
fn notes_of_node(node: &Node) -> Vec<String> {
    let Some(metadata) = node.get("metadata") else { return Vec::new() };
    if metadata.get("annotations").is_none() {
        return Vec::new();
    }
    let mut object = serde_json::Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(Ok(value)) = node.get(key).map(Node::to_json) {
            object.insert(key.to_owned(), value);
        }
    }
    let Ok(metadata) = metadata.to_json() else { return Vec::new() };
    object.insert("metadata".to_owned(), metadata);
    manifest::unheeded(&Value::Object(object))
}

/// Nodes of a JSON value, counted as [`yaml::Node`]s are (a key is one).
fn json_nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(json_nodes).sum::<usize>(),
        Value::Object(entries) => 1 + entries.values().map(|v| 1 + json_nodes(v)).sum::<usize>(),
        _ => 1,
    }
}

impl Preview<'_> {
    pub fn workloads(&self) -> impl Iterator<Item = &WorkloadPreview> {
        self.documents.iter().flat_map(|d| &d.workloads)
    }

    /// Every refusal, in stream order.
    pub fn refusals(&self) -> impl Iterator<Item = &Refusal> {
        self.workloads().filter_map(|d| d.outcome.as_ref().err())
    }

    /// Every warning, naming its object (`Deployment shop/web: ...`), in
    /// stream order: a document's notes, then its workloads' warnings.
    pub fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.documents.iter().flat_map(|document| {
            let mutations = document
                .workloads
                .iter()
                .filter_map(|d| Some((d, d.outcome.as_ref().ok()?)))
                .flat_map(|(d, m)| m.warnings.iter().map(move |w| format!("{} {}: {w}", d.kind, d.name)));
            document.notes.iter().cloned().chain(mutations)
        })
    }

    /// Whether kube-once changes anything (what `-o diff`'s exit code says).
    pub fn changed(&self) -> bool {
        self.documents.iter().any(DocumentPreview::changed)
    }

    /// The whole output in `format` (refused workloads count as unchanged).
    ///
    /// Fails only for `json`, on a document kube-once passes through that
    /// has no JSON form (a `.nan`), which Kubernetes refuses too.
    pub fn render(&self, format: Format) -> Result<String, YamlError> {
        Ok(match format {
            Format::Yaml => self.documents.iter().map(|d| self.document_yaml(d)).collect(),
            Format::Patch => self
                .workloads()
                .filter_map(|d| d.outcome.as_ref().ok())
                .map(|m| serde_json::to_string_pretty(&m.patch).unwrap_or_default() + "\n")
                .collect(),
            Format::Diff => self
                .documents
                .iter()
                .flat_map(|document| document.workloads.iter().map(move |d| (document, d)))
                .filter(|(_, d)| d.changed())
                .map(|(document, d)| self.workload_diff(document, d))
                .collect(),
            Format::Json => {
                let list = json!({"apiVersion": "v1", "kind": "List", "items": self.objects()?});
                serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
            }
        })
    }

    /// Every document holding a value, as JSON: mutated where kube-once
    /// changes it, else read again from its text (duplicate keys: the last
    /// wins, as in Kubernetes).
    pub fn objects(&self) -> Result<Vec<Value>, YamlError> {
        let mut objects = Vec::new();
        for document in self.documents.iter().filter(|d| d.holds_value) {
            if let Some(value) = self.mutated(document) {
                objects.push(value);
                continue;
            }
            let part = &self.text[document.document.span.clone()];
            let again = yaml::read_stream_lenient(part, &self.limits).map_err(|error| YamlError {
                document: document.document.number,
                line: document.document.line + error.line.saturating_sub(1),
                ..error
            })?;
            for read in again {
                let at = |error: YamlError| YamlError { document: document.document.number, ..error };
                objects.extend(read.to_json().map_err(at)?);
            }
        }
        Ok(objects)
    }

    /// The RFC 6902 patch of every workload that is not refused (`[]` when
    /// unchanged), each naming its object: `kind`, `namespace` (absent
    /// when the manifest has none), `name`, the `document` (1-based, among
    /// the documents holding a value) and `patch`.
    pub fn patches(&self) -> Vec<Value> {
        self.documents
            .iter()
            .flat_map(|document| document.workloads.iter().map(move |w| (document, w)))
            .filter_map(|(document, workload)| {
                let mutation = workload.outcome.as_ref().ok()?;
                let metadata = |key: &str| mutation.object.pointer(&format!("/metadata/{key}")).cloned();
                let mut item = serde_json::Map::new();
                item.insert("kind".to_owned(), Value::String(workload.kind.name().to_owned()));
                if let Some(namespace) = metadata("namespace") {
                    item.insert("namespace".to_owned(), namespace);
                }
                item.insert("name".to_owned(), metadata("name").unwrap_or(Value::Null));
                item.insert("document".to_owned(), Value::from(document.document.number));
                item.insert("patch".to_owned(), serde_json::to_value(&mutation.patch).unwrap_or_default());
                Some(Value::Object(item))
            })
            .collect()
    }

    /// The document's value with its workloads mutated, when kube-once
    /// changes it.
    fn mutated(&self, document: &DocumentPreview) -> Option<Value> {
        let (true, Some(value)) = (document.changed(), &document.value) else { return None };
        let mut value = value.clone();
        for workload in &document.workloads {
            if let (Ok(mutation), Some(slot)) = (&workload.outcome, at_path_mut(&mut value, &workload.path)) {
                slot.clone_from(&mutation.object);
            }
        }
        Some(value)
    }

    /// The document as printed by `-o yaml`: its own text when unchanged,
    /// its own text edited when changed ([`yaml::edit`]), or, where that
    /// cannot be done, the document written anew.
    pub fn document_yaml<'s>(&'s self, document: &DocumentPreview) -> Cow<'s, str> {
        match self.edited(document) {
            Ok(text) => text,
            Err((_, rewritten)) => Cow::Owned(rewritten),
        }
    }

    /// [`Preview::document_yaml`], saying why (the [`Rewrite`]) when a
    /// changed document is written anew rather than edited.
    pub fn edited<'s>(&'s self, document: &DocumentPreview) -> Result<Cow<'s, str>, (Rewrite, String)> {
        let part = &self.text[document.document.span.clone()];
        let (Some(before), Some(value)) = (&document.value, self.mutated(document)) else {
            return Ok(Cow::Borrowed(part));
        };
        match edit(part, before, &value) {
            Ok(text) => Ok(Cow::Owned(text)),
            Err(why) => Err((why, self.rewritten(document, part, &value))),
        }
    }

    /// A changed document written anew, in its input's key order, after its
    /// leading `---` and comment lines.
    fn rewritten(&self, document: &DocumentPreview, part: &str, value: &Value) -> String {
        let mut out = head(part);
        out.push_str(&yaml::write_value(value, document.document.node.as_ref()));
        if part.lines().any(|line| line == "..." || line.starts_with("... ") || line.starts_with("...\t")) {
            out.push_str("...\n");
        }
        out
    }

    fn workload_diff(&self, document: &DocumentPreview, deployment: &WorkloadPreview) -> String {
        let hint = document.node_at(&deployment.path);
        let before = document.value.as_ref().and_then(|v| at_path(v, &deployment.path));
        let (Some(before), Ok(mutation)) = (before, &deployment.outcome) else { return String::new() };
        let before = yaml::write_value(before, hint);
        let after = yaml::write_value(&mutation.object, hint);
        let kind = deployment.kind.name().to_ascii_lowercase();
        unified_diff(&format!("{kind}/{}", deployment.name), &before, &after)
    }
}

/// The `---` line and the comments and blank lines before a document's
/// value, kept when the document is written anew.
fn head(part: &str) -> String {
    let mut end = 0;
    let mut marker = false;
    for (index, line) in part.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if index == 0 && line.starts_with("---") {
            marker = true;
            let rest = line[3..].trim();
            if !(rest.is_empty() || rest.starts_with('#')) {
                break;
            }
        } else if !(trimmed.is_empty() || trimmed.starts_with('#')) {
            break;
        }
        end += line.len();
    }
    let mut head = part[..end].to_owned();
    if marker && end == 0 {
        head.push_str("---\n");
    }
    if !head.is_empty() && !head.ends_with('\n') {
        head.push('\n');
    }
    head
}

/// The object as a YAML document, keys sorted (see [`yaml::write`]).
pub fn to_yaml(object: &Value) -> Result<String, std::convert::Infallible> {
    Ok(yaml::to_yaml(object))
}

/// A unified diff of two renderings, labelled `a/<name>` and `b/<name>`;
/// empty when they are equal.
pub fn unified_diff(name: &str, before: &str, after: &str) -> String {
    if before == after {
        return String::new();
    }
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_of_a_cron_job_list_are_cron_jobs_even_without_their_kind() {
        let text = r#"{"apiVersion": "batch/v1", "kind": "CronJobList", "items": [{"metadata": {"name": "r",
            "annotations": {"kube-once.io/run": "migrate"}}, "spec": {"jobTemplate": {"spec": {"template": {"spec":
            {"containers": [{"name": "app", "image": "app:1"}]}}}}}}]}"#;
        let all = preview(text, &Config::default(), &Limits::default()).unwrap();
        let workload = all.workloads().next().unwrap();
        assert_eq!(workload.kind, Kind::CronJob);
        let mutation = workload.outcome.as_ref().unwrap();
        assert!(mutation.object.get("kind").is_none(), "printed as written, without a kind");
        assert!(mutation.object.pointer("/spec/jobTemplate/spec/template/spec/initContainers").is_some());
    }

    /// A user's manifest: comments, flow style, quoting, a blank line and a
    /// list under its key; opted in, previewed, then opted out again.
    const COMMENTED: &str = "# leading comment\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web   # the name\n  annotations:\n    kube-once.io/run: \"migrate --yes\"\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      # app containers\n      containers:\n      - name: app\n        image: 'app:1'\n        command: [sh, -c, \"run\"]\n\n      volumes:\n        - name: data\n          emptyDir: {}\n";

    fn yaml(text: &str) -> String {
        preview(text, &Config::default(), &Limits::default()).unwrap().render(Format::Yaml).unwrap()
    }

    #[test]
    fn a_changed_document_is_edited_and_opting_out_gives_it_back_byte_for_byte() {
        let out = yaml(COMMENTED);
        for line in COMMENTED.lines().filter(|line| !line.contains("labels: {app: web}")) {
            assert!(out.contains(&format!("{line}\n")), "`{line}` kept in:\n{out}");
        }
        assert!(out.contains("      labels: {app: web, kube-once.io/injected: \"true\"}\n"), "{out}");
        assert!(out.contains("          emptyDir: {}\n        - name: kube-once-bin\n"), "{out}");
        assert!(out.contains("\n      initContainers:\n      - name: kube-once-install\n"), "{out}");
        assert_eq!(yaml(&out), out, "a second preview changes nothing");
        let opted_out: String =
            out.lines().filter(|l| !l.contains("kube-once.io/run")).map(|l| format!("{l}\n")).collect();
        let original: String =
            COMMENTED.lines().filter(|l| !l.contains("kube-once.io/run")).map(|l| format!("{l}\n")).collect();
        assert_eq!(yaml(&opted_out), original);
    }

    #[test]
    fn mutated_deployments_count_against_the_node_budget() {
        let example = include_str!("../../../examples/superset.yaml");
        let text = format!("{example}---\n").repeat(3);
        let read: usize = yaml::read_stream(&text, &Limits::default()).unwrap().iter().map(|d| d.nodes).sum();
        let all = preview(&text, &Config::default(), &Limits::default()).unwrap();
        assert_eq!(all.workloads().filter(|d| d.changed()).count(), 3);
        // What is kept per changed Deployment: its JSON and the mutated object.
        let kept: usize = all
            .documents
            .iter()
            .filter_map(|d| {
                Some(json_nodes(d.value.as_ref()?) + json_nodes(&d.workloads[0].outcome.as_ref().ok()?.object))
            })
            .sum();
        let just = Limits { max_nodes: read + kept, ..Limits::default() };
        assert!(preview(&text, &Config::default(), &just).is_ok(), "just at the limit passes");
        let over = Limits { max_nodes: read + kept - 1, ..Limits::default() };
        let e = preview(&text, &Config::default(), &over).unwrap_err();
        assert_eq!(e.kind, yaml::ErrorKind::TooManyNodes, "{e}");
        assert!(e.message.contains("the 3 documents mutated so far hold more than"), "{e}");
        assert!(e.message.ends_with("split it into smaller files"), "{e}");
    }
}
