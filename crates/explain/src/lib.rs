//! `kube-once explain`, pure: why a workload (a Deployment, or another
//! [`Kind`]) is (or is not) injected.
//!
//! Two questions, in the order the API server asks them:
//! 1. Would the API server send the write to the webhook? Its `rules`,
//!    `namespaceSelector`, `objectSelector` and `matchConditions` (by a real
//!    CEL interpreter) decide ([`selection`]); an evaluation error falls to the
//!    webhook's `failurePolicy`.
//! 2. If sent, what would the webhook answer? The core's [`mutate`]: a patch
//!    (what is injected), no change, or a refusal — with its warnings.
//!
//! Values in, [`Verdict`] out: the command line reads the files.
//!
//! [`mutate`]: kube_once_core::mutate
#![forbid(unsafe_code)]

pub mod selection;

use std::collections::BTreeMap;

use kube_once_core::{Config, Kind, Reason, is_injected, mutate};
use serde_json::{Value, json};

pub use selection::{Attributes, Decision, NAMESPACE_NAME_LABEL, SelectionError, decide, selector_matches};

/// The name of kube-once's webhook in the chart's MutatingWebhookConfiguration.
pub const WEBHOOK_NAME: &str = "deployments.kube-once.io";

/// The write being explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new Deployment (`kubectl create`, or `apply` of a new one).
    Create,
    /// A change to a stored Deployment; `old` is the stored object.
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
        }
    }
}

/// What happens to a Deployment write.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The API server does not call the webhook: the Deployment is stored as written.
    NotSent { reason: String },
    /// The API server rejects the write without calling the webhook: a
    /// matchCondition failed to evaluate and the failurePolicy is Fail.
    Rejected { reason: String },
    /// The API server calls the webhook, which answers with `outcome`.
    Sent { outcome: Outcome },
}

/// The webhook's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Allowed with a patch: `operations` are its RFC 6902 operations, one
    /// line each (`add /spec/template/spec/initContainers`).
    Injected { operations: Vec<String>, warnings: Vec<String> },
    /// Allowed without a patch: `injected` when the pod template carries an
    /// injection that is up to date, else there is nothing to inject.
    Unchanged { injected: bool, warnings: Vec<String> },
    /// Denied: the refusal's kind and its message (what, where, how to fix).
    Refused { reason: Reason, message: String },
}

impl Verdict {
    /// One line: what happens and why.
    pub fn summary(&self) -> String {
        match self {
            Verdict::NotSent { reason } => format!("not sent to the webhook: {reason}"),
            Verdict::Rejected { reason } => format!("rejected by the API server: {reason}"),
            Verdict::Sent { outcome: Outcome::Injected { operations, .. } } => {
                let plural = if operations.len() == 1 { "" } else { "s" };
                format!("sent, injected: a patch of {} operation{plural}", operations.len())
            }
            Verdict::Sent { outcome: Outcome::Unchanged { injected: true, .. } } => {
                "sent, allowed unchanged: the injection is up to date".to_owned()
            }
            Verdict::Sent { outcome: Outcome::Unchanged { injected: false, .. } } => {
                "sent, allowed unchanged: no kube-once.io/ annotation asks for anything".to_owned()
            }
            Verdict::Sent { outcome: Outcome::Refused { message, .. } } => format!("sent, refused: {message}"),
        }
    }

    /// The warnings the user would see (kubectl prints them).
    pub fn warnings(&self) -> &[String] {
        match self {
            Verdict::Sent { outcome: Outcome::Injected { warnings, .. } | Outcome::Unchanged { warnings, .. } } => {
                warnings
            }
            _ => &[],
        }
    }
}

/// The verdict for a write of `object` (a workload whose
/// `metadata.namespace` is set, as the API server sets it) in a namespace
/// with `namespace_labels`, against `webhook` (one entry of a
/// MutatingWebhookConfiguration's `webhooks`) and the webhook's `config`.
/// On [`Operation::Update`], `old_object` is the stored workload (the
/// object itself when `None`: an unchanged re-apply).
pub fn explain(
    object: &Value,
    operation: Operation,
    old_object: Option<&Value>,
    namespace_labels: &BTreeMap<String, String>,
    webhook: &Value,
    config: &Config,
) -> Result<Verdict, SelectionError> {
    let old_object = match operation {
        Operation::Create => None,
        Operation::Update => Some(old_object.unwrap_or(object)),
    };
    let request = admission_request(object, operation, old_object);
    let attributes = Attributes::workload(Kind::read_as(object), operation.as_str(), namespace_labels, &request);
    match decide(webhook, &attributes)? {
        Decision::Skip(reason) => return Ok(Verdict::NotSent { reason }),
        Decision::Error(error) => {
            // failurePolicy defaults to Fail in admissionregistration.k8s.io/v1.
            let policy = webhook.get("failurePolicy").and_then(Value::as_str).unwrap_or("Fail");
            return Ok(if policy == "Ignore" {
                Verdict::NotSent { reason: format!("{error}, and failurePolicy Ignore skips the webhook") }
            } else {
                Verdict::Rejected { reason: format!("{error}, and failurePolicy {policy} rejects the request") }
            });
        }
        Decision::Call => {}
    }
    let outcome = match mutate(object, old_object, config) {
        Err(refusal) => Outcome::Refused { reason: refusal.reason(), message: refusal.message().to_owned() },
        // An annotation plan always writes the status annotation, and stripping
        // an injection removes it: no patch with the status means up to date.
        Ok(mutation) if mutation.patch.0.is_empty() => {
            Outcome::Unchanged { injected: is_injected(object), warnings: mutation.warnings }
        }
        Ok(mutation) => Outcome::Injected {
            operations: mutation
                .patch
                .0
                .iter()
                .map(|op| operation_line(&serde_json::to_value(op).unwrap_or(Value::Null)))
                .collect(),
            warnings: mutation.warnings,
        },
    };
    Ok(Verdict::Sent { outcome })
}

/// `add /spec/template/spec/volumes`: an operation without its value.
fn operation_line(value: &Value) -> String {
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("?").to_owned();
    format!("{} {}", text("op"), text("path"))
}

/// The AdmissionRequest the API server sends for a write of a workload
/// (its kind read by [`Kind::read_as`]),
/// which matchConditions see as `request` (without the objects), `object`
/// and `oldObject`. The user is unknown offline: `userInfo` is empty.
pub fn admission_request(object: &Value, operation: Operation, old_object: Option<&Value>) -> Value {
    let kind = Kind::read_as(object);
    let (group, version) = kind.api_version().rsplit_once('/').unwrap_or(("", kind.api_version()));
    let gvk = json!({"group": group, "version": version, "kind": kind.name()});
    let gvr = json!({"group": group, "version": version, "resource": kind.resource()});
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let options_kind = match operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
    };
    json!({
        "uid": "00000000-0000-0000-0000-000000000000",
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": text("/metadata/name"),
        "namespace": text("/metadata/namespace"),
        "operation": operation.as_str(),
        "userInfo": {},
        "object": object,
        "oldObject": old_object.cloned().unwrap_or(Value::Null),
        "dryRun": false,
        "options": {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"},
    })
}

/// Why no single webhook can be picked from the given documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    #[error(
        "no MutatingWebhookConfiguration among the documents; give the rendered chart or `kubectl get mutatingwebhookconfiguration -o yaml`"
    )]
    NoConfiguration,
    #[error("no webhook named {wanted} in the MutatingWebhookConfigurations; the webhooks there are: {found}")]
    NoWebhook { wanted: String, found: String },
    #[error("{count} webhooks are named {wanted} (in {configurations}); give only the configuration to explain")]
    Ambiguous { wanted: String, count: usize, configurations: String },
}

/// The webhook named `name` among the MutatingWebhookConfigurations of
/// `documents` (other documents are ignored, so a whole rendered chart or a
/// `kind: List` flattened by the manifest reader will do).
pub fn find_webhook<'a>(documents: &'a [Value], name: &str) -> Result<&'a Value, FindError> {
    let configurations: Vec<&Value> = documents
        .iter()
        .filter(|d| {
            d.get("kind").and_then(Value::as_str) == Some("MutatingWebhookConfiguration")
                && d.get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with("admissionregistration.k8s.io/"))
        })
        .collect();
    if configurations.is_empty() {
        return Err(FindError::NoConfiguration);
    }
    let webhooks = |configuration: &'a Value| {
        configuration.get("webhooks").and_then(Value::as_array).into_iter().flatten().map(move |w| (configuration, w))
    };
    let webhook_name = |webhook: &Value| webhook.get("name").and_then(Value::as_str).unwrap_or("(unnamed)").to_owned();
    let matching: Vec<(&Value, &Value)> =
        configurations.iter().flat_map(|c| webhooks(c)).filter(|(_, w)| webhook_name(w) == name).collect();
    match matching.as_slice() {
        [(_, webhook)] => Ok(webhook),
        [] => {
            let found: Vec<String> =
                configurations.iter().flat_map(|c| webhooks(c)).map(|(_, w)| webhook_name(w)).collect();
            let found = if found.is_empty() { "none".to_owned() } else { found.join(", ") };
            Err(FindError::NoWebhook { wanted: name.to_owned(), found })
        }
        several => Err(FindError::Ambiguous {
            wanted: name.to_owned(),
            count: several.len(),
            configurations: several
                .iter()
                .map(|(c, _)| c.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("(unnamed)"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The labels of namespace `name` as the API server sees them: `labels`
/// plus `kubernetes.io/metadata.name`, which it sets on every namespace.
pub fn namespace_labels(name: &str, mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned());
    labels
}

/// The labels of the Namespace called `name` among `documents` (Namespace
/// manifests, or `kubectl get namespace -o yaml`); `Ok(None)` when it is not there.
pub fn labels_of_namespace(
    documents: &[Value],
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, SelectionError> {
    let Some(namespace) = documents.iter().find(|d| {
        d.get("kind").and_then(Value::as_str) == Some("Namespace")
            && d.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
    }) else {
        return Ok(None);
    };
    let labels = selection::labels(namespace.pointer("/metadata/labels")).map_err(|problem| {
        SelectionError::InvalidObject { what: format!("Namespace {name}: metadata.labels"), problem }
    })?;
    Ok(Some(namespace_labels(name, labels)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configuration(name: &str, webhooks: &[Value]) -> Value {
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": name}, "webhooks": webhooks})
    }

    fn webhook(failure_policy: &str, expression: &str) -> Value {
        json!({"name": WEBHOOK_NAME, "failurePolicy": failure_policy,
               "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                          "resources": ["deployments"], "scope": "Namespaced"}],
               "matchConditions": [{"name": "c", "expression": expression}]})
    }

    fn annotated(annotations: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "apps", "annotations": annotations},
               "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                   "metadata": {"labels": {"app": "web"}},
                   "spec": {"containers": [{"name": "web", "image": "web:1",
                            "env": [{"name": "DATABASE_URL", "value": "postgres://db/app"}]}]}}}})
    }

    fn verdict(object: &Value, operation: Operation, hook: &Value) -> Verdict {
        let labels = namespace_labels("apps", BTreeMap::new());
        explain(object, operation, None, &labels, hook, &Config::default()).unwrap()
    }

    #[test]
    fn sent_and_injected() {
        let object = annotated(json!({"kube-once.io/run": "flask db upgrade"}));
        let verdict = verdict(&object, Operation::Create, &webhook("Fail", "true"));
        let Verdict::Sent { outcome: Outcome::Injected { operations, .. } } = &verdict else { panic!("{verdict:?}") };
        assert!(!operations.is_empty());
        assert!(operations.iter().any(|o| o == "add /spec/template/spec/initContainers"), "{operations:?}");
        assert!(verdict.summary().starts_with("sent, injected: a patch of "), "{}", verdict.summary());
    }

    #[test]
    fn sent_and_refused_with_the_core_message() {
        let object = annotated(json!({"kube-once.io/run": "flask db upgrade", "kube-once.io/timeout": "soon"}));
        let verdict = verdict(&object, Operation::Create, &webhook("Fail", "true"));
        let Verdict::Sent { outcome: Outcome::Refused { reason, message } } = &verdict else { panic!("{verdict:?}") };
        assert_eq!(*reason, Reason::BadValue);
        assert!(message.contains("kube-once.io/timeout"), "{message}");
        assert_eq!(verdict.summary(), format!("sent, refused: {message}"));
    }

    fn verdict_for_plain(object: &Value) -> Verdict {
        let mut hook = webhook("Fail", "true");
        hook.as_object_mut().unwrap().remove("matchConditions");
        verdict(object, Operation::Create, &hook)
    }

    #[test]
    fn sent_and_unchanged_once_injected() {
        let object = annotated(json!({"kube-once.io/run": "flask db upgrade"}));
        let injected = mutate(&object, None, &Config::default()).unwrap().object;
        let verdict = verdict(&injected, Operation::Update, &webhook("Fail", "true"));
        assert!(matches!(verdict, Verdict::Sent { outcome: Outcome::Unchanged { injected: true, .. } }), "{verdict:?}");
        assert_eq!(verdict.summary(), "sent, allowed unchanged: the injection is up to date");
        // Sent (no matchConditions to filter it) without any annotation: nothing to do.
        let plain = annotated(json!({"team": "web"}));
        let verdict = verdict_for_plain(&plain);
        assert_eq!(verdict.summary(), "sent, allowed unchanged: no kube-once.io/ annotation asks for anything");
    }

    #[test]
    fn an_evaluation_error_follows_the_failure_policy() {
        let object = annotated(json!({"kube-once.io/run": "flask db upgrade"}));
        let erroring = "object.metadata.labels.size() > 0";
        let verdict_fail = verdict(&object, Operation::Create, &webhook("Fail", erroring));
        let Verdict::Rejected { reason } = &verdict_fail else { panic!("{verdict_fail:?}") };
        assert!(reason.starts_with("matchCondition c failed to evaluate"), "{reason}");
        assert!(reason.ends_with("and failurePolicy Fail rejects the request"), "{reason}");
        let verdict_ignore = verdict(&object, Operation::Create, &webhook("Ignore", erroring));
        let Verdict::NotSent { reason } = &verdict_ignore else { panic!("{verdict_ignore:?}") };
        assert!(reason.ends_with("and failurePolicy Ignore skips the webhook"), "{reason}");
        // Without a failurePolicy, v1's default is Fail.
        let mut hook = webhook("Fail", erroring);
        hook.as_object_mut().unwrap().remove("failurePolicy");
        assert!(matches!(verdict(&object, Operation::Create, &hook), Verdict::Rejected { .. }));
    }

    #[test]
    fn a_false_condition_is_not_sent() {
        let object = annotated(json!({"kube-once.io/run": "flask db upgrade"}));
        let verdict = verdict(&object, Operation::Create, &webhook("Fail", "request.operation == 'UPDATE'"));
        assert_eq!(verdict, Verdict::NotSent { reason: "matchCondition c is false".to_owned() });
        assert_eq!(verdict.summary(), "not sent to the webhook: matchCondition c is false");
    }

    #[test]
    fn conditions_see_the_request_as_the_api_server_sends_it() {
        let object = annotated(json!({"kube-once.io/run": "x"}));
        let expression = "request.namespace == 'apps' && request.name == 'web' && request.resource.resource == 'deployments' && oldObject.metadata.name == 'web'";
        assert!(matches!(verdict(&object, Operation::Update, &webhook("Fail", expression)), Verdict::Sent { .. }));
    }

    #[test]
    fn the_webhook_is_found_by_name_among_other_documents() {
        let ours = webhook("Fail", "true");
        let other = json!({"name": "sidecar.istio.io"});
        let documents = vec![
            json!({"kind": "Service", "apiVersion": "v1"}),
            configuration("istio", &[other]),
            configuration("kube-once", std::slice::from_ref(&ours)),
        ];
        assert_eq!(find_webhook(&documents, WEBHOOK_NAME), Ok(&ours));
        assert_eq!(
            find_webhook(&documents, "nope"),
            Err(FindError::NoWebhook { wanted: "nope".to_owned(), found: format!("sidecar.istio.io, {WEBHOOK_NAME}") })
        );
        assert_eq!(find_webhook(&documents[..1], WEBHOOK_NAME), Err(FindError::NoConfiguration));
        let twice = vec![configuration("a", std::slice::from_ref(&ours)), configuration("b", &[ours])];
        assert!(matches!(find_webhook(&twice, WEBHOOK_NAME), Err(FindError::Ambiguous { count: 2, .. })));
    }

    #[test]
    fn namespaces_carry_their_name_label() {
        let documents = vec![json!({"kind": "Namespace", "metadata": {"name": "data", "labels": {"team": "data"}}})];
        let labels = labels_of_namespace(&documents, "data").unwrap().unwrap();
        assert_eq!(labels.get("team").map(String::as_str), Some("data"));
        assert_eq!(labels.get(NAMESPACE_NAME_LABEL).map(String::as_str), Some("data"));
        assert_eq!(labels_of_namespace(&documents, "apps").unwrap(), None);
        // The API server's label wins over a hand-written one.
        let forged = namespace_labels("apps", [(NAMESPACE_NAME_LABEL.to_owned(), "kube-system".to_owned())].into());
        assert_eq!(forged.get(NAMESPACE_NAME_LABEL).map(String::as_str), Some("apps"));
    }
}
