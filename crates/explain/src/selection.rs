//! Whether the API server calls a webhook of a MutatingWebhookConfiguration
//! for a request, in the API server's order: `rules`, `namespaceSelector`,
//! `objectSelector`, then `matchConditions` — CEL expressions evaluated by a
//! real CEL interpreter with `object`, `oldObject` and `request` bound as the
//! API server binds them (k8s.io/apiserver admission/plugin/webhook).
//!
//! Each "no" carries one line saying which check failed and why.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube_once_core::Kind;
use serde_json::Value;

/// What the API server knows about a request when it picks webhooks.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    /// Empty for a write of the object itself.
    pub subresource: &'a str,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'a str,
    pub namespaced: bool,
    /// The labels of the object's namespace, `kubernetes.io/metadata.name` included.
    pub namespace_labels: &'a BTreeMap<String, String>,
    /// The AdmissionReview's `request` (object and oldObject included).
    pub request: &'a Value,
}

impl<'a> Attributes<'a> {
    /// A write of a Deployment itself (apps/v1 deployments, no subresource).
    pub fn deployment(operation: &'a str, namespace_labels: &'a BTreeMap<String, String>, request: &'a Value) -> Self {
        Self::workload(Kind::Deployment, operation, namespace_labels, request)
    }

    /// A write of a workload of `kind` itself (`batch/v1 cronjobs`, no subresource).
    pub fn workload(
        kind: Kind,
        operation: &'a str,
        namespace_labels: &'a BTreeMap<String, String>,
        request: &'a Value,
    ) -> Self {
        let version = kind.api_version().rsplit('/').next().unwrap_or_default();
        Attributes {
            group: kind.group(),
            version,
            resource: kind.resource(),
            subresource: "",
            operation,
            namespaced: true,
            namespace_labels,
            request,
        }
    }
}

/// The API server's choice for one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every check passed: the webhook is called.
    Call,
    /// A check failed: the webhook is not called. Says which and why.
    Skip(String),
    /// A matchCondition failed to evaluate (and none was false): the
    /// webhook's failurePolicy decides — Fail rejects the request, Ignore
    /// skips the webhook.
    Error(String),
}

/// Something the API server would have refused before any request: a
/// webhook configuration it does not accept, or an object it cannot decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("webhook {webhook}: {problem}; the API server does not accept such a MutatingWebhookConfiguration")]
    InvalidWebhook { webhook: String, problem: String },
    #[error("{what}: {problem}")]
    InvalidObject { what: String, problem: String },
}

/// `Call`, `Skip` or `Error` for `webhook` (one entry of a
/// MutatingWebhookConfiguration's `webhooks`) and the request.
pub fn decide(webhook: &Value, attributes: &Attributes) -> Result<Decision, SelectionError> {
    let name = webhook.get("name").and_then(Value::as_str).unwrap_or("(unnamed)");
    let invalid = |problem: String| SelectionError::InvalidWebhook { webhook: name.to_owned(), problem };

    if !rules_match(webhook.get("rules"), attributes).map_err(invalid)? {
        let sub =
            if attributes.subresource.is_empty() { String::new() } else { format!("/{}", attributes.subresource) };
        let scope = if attributes.namespaced { "Namespaced" } else { "Cluster" };
        return Ok(Decision::Skip(format!(
            "no rule matches {} of {}/{} {}{sub} ({scope})",
            attributes.operation,
            group_name(attributes.group),
            attributes.version,
            attributes.resource
        )));
    }
    if attributes.namespaced
        && let Some(why) = selector_mismatch(webhook.get("namespaceSelector"), attributes.namespace_labels)
            .map_err(|p| invalid(format!("namespaceSelector: {p}")))?
    {
        let namespace = attributes.namespace_labels.get(NAMESPACE_NAME_LABEL).map_or("?", String::as_str);
        return Ok(Decision::Skip(format!("namespaceSelector does not select namespace {namespace}: {why}")));
    }

    let request = attributes.request;
    let object_selector = webhook.get("objectSelector");
    let mismatch_of = |key: &str| -> Result<Option<String>, SelectionError> {
        let labels = labels(request.get(key).and_then(|o| o.pointer("/metadata/labels")))
            .map_err(|problem| SelectionError::InvalidObject { what: format!("{key}.metadata.labels"), problem })?;
        selector_mismatch(object_selector, &labels).map_err(|p| invalid(format!("objectSelector: {p}")))
    };
    // The object or the old object (on UPDATE) must match.
    if let Some(why) = mismatch_of("object")? {
        let old_present = request.get("oldObject").is_some_and(|o| !o.is_null());
        if !old_present || mismatch_of("oldObject")?.is_some() {
            return Ok(Decision::Skip(format!("objectSelector does not select the object's labels: {why}")));
        }
    }
    match_conditions(webhook.get("matchConditions"), request).map_err(invalid)
}

/// The label the API server puts on every namespace (since Kubernetes 1.21).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn group_name(group: &str) -> &str {
    if group.is_empty() { "core" } else { group }
}

fn rules_match(rules: Option<&Value>, attributes: &Attributes) -> Result<bool, String> {
    let Some(rules) = rules.and_then(Value::as_array) else { return Ok(false) };
    for (index, rule) in rules.iter().enumerate() {
        let listed = |field: &str, wanted: &str| -> bool {
            rule.get(field)
                .and_then(Value::as_array)
                .is_some_and(|items| items.iter().any(|i| i == "*" || i.as_str() == Some(wanted)))
        };
        let resource_listed = rule.get("resources").and_then(Value::as_array).is_some_and(|items| {
            items.iter().filter_map(Value::as_str).any(|item| {
                let (resource, sub) = item.split_once('/').unwrap_or((item, ""));
                (resource == "*" || resource == attributes.resource) && (sub == "*" || sub == attributes.subresource)
            })
        });
        let scope_ok = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
            "*" => true,
            "Namespaced" => attributes.namespaced,
            "Cluster" => !attributes.namespaced,
            other => {
                return Err(format!("rules[{index}].scope `{other}` is not valid (write Cluster, Namespaced or *)"));
            }
        };
        if listed("operations", attributes.operation)
            && listed("apiGroups", attributes.group)
            && listed("apiVersions", attributes.version)
            && resource_listed
            && scope_ok
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a LabelSelector selects `labels`; absent, null or empty selects everything.
pub fn selector_matches(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    selector_mismatch(selector, labels).map(|why| why.is_none())
}

/// `None` when the selector selects `labels`, else the first requirement
/// that fails and why. `Err` for a selector the API server would reject.
fn selector_mismatch(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> Result<Option<String>, String> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else { return Ok(None) };
    let actual = |key: &str| match labels.get(key) {
        Some(value) => format!("its label {key} is `{value}`"),
        None => format!("it has no label {key}"),
    };
    let match_labels = self::labels(selector.get("matchLabels")).map_err(|p| format!("matchLabels: {p}"))?;
    for (key, value) in &match_labels {
        if labels.get(key) != Some(value) {
            return Ok(Some(format!("matchLabels {key}={value} is not met: {}", actual(key))));
        }
    }
    let expressions = match selector.get("matchExpressions") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("matchExpressions is not a list: {other}")),
    };
    for (index, expression) in expressions.iter().enumerate() {
        let key = expression
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("matchExpressions[{index}] has no key"))?;
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let operator = expression.get("operator").and_then(Value::as_str).unwrap_or_default();
        let value = labels.get(key).map(String::as_str);
        let matched = match operator {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!("matchExpressions[{index}] ({key} {operator}) needs values"));
            }
            "In" => value.is_some_and(|v| values.contains(&v)),
            "NotIn" => value.is_none_or(|v| !values.contains(&v)),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!("matchExpressions[{index}] ({key} {operator}) must not have values"));
            }
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Err(format!(
                    "matchExpressions[{index}] operator `{other}` is not valid (write In, NotIn, Exists or DoesNotExist)"
                ));
            }
        };
        if !matched {
            let requirement = match operator {
                "In" | "NotIn" => format!("{key} {operator} ({})", values.join(", ")),
                _ => format!("{key} {operator}"),
            };
            return Ok(Some(format!("requirement `{requirement}` is not met: {}", actual(key))));
        }
    }
    Ok(None)
}

/// A map of strings (labels, matchLabels); absent or null is empty.
pub fn labels(value: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(BTreeMap::new()) };
    let Some(map) = value.as_object() else { return Err(format!("expected a map of strings, got {value}")) };
    map.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_owned())),
            None => Err(format!("the value of {k} is {v}, not a string (quote it)")),
        })
        .collect()
}

/// All conditions true → call; any false → skip (even if others error);
/// otherwise an error → failurePolicy. `Err` for a condition the API server
/// would not accept (missing or not compiling).
fn match_conditions(conditions: Option<&Value>, request: &Value) -> Result<Decision, String> {
    let conditions = match conditions {
        None | Some(Value::Null) => return Ok(Decision::Call),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("matchConditions is not a list: {other}")),
    };
    let environment = Arc::new(environment()?);
    let mut context = cel::Context::with_env(Arc::clone(&environment));
    let bind = |value: Value, name: &str| -> Result<cel::Value, String> {
        cel::to_value(value).map_err(|e| format!("cannot give {name} to CEL: {e}"))
    };
    context.add_variable_from_value("object", bind(request.get("object").cloned().unwrap_or(Value::Null), "object")?);
    context.add_variable_from_value(
        "oldObject",
        bind(request.get("oldObject").cloned().unwrap_or(Value::Null), "oldObject")?,
    );
    // `request` is the AdmissionRequest without the objects.
    let mut bare_request = request.clone();
    if let Some(map) = bare_request.as_object_mut() {
        map.remove("object");
        map.remove("oldObject");
    }
    context.add_variable_from_value("request", bind(bare_request, "request")?);

    let mut first_error = None;
    for (index, condition) in conditions.iter().enumerate() {
        let name = condition.get("name").and_then(Value::as_str).unwrap_or("?");
        let expression = condition
            .get("expression")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("matchConditions[{index}] ({name}) has no expression"))?;
        // A condition that does not compile is rejected when the configuration is created.
        let program = environment
            .compile(expression)
            .map_err(|e| format!("matchCondition {name} does not compile: {e} (in `{expression}`)"))?;
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Ok(Decision::Skip(format!("matchCondition {name} is false"))),
            Ok(other) => {
                first_error.get_or_insert(format!("matchCondition {name} returned {other:?}, not a bool"));
            }
            Err(error) => {
                first_error.get_or_insert(format!("matchCondition {name} failed to evaluate: {error}"));
            }
        }
    }
    Ok(first_error.map_or(Decision::Call, Decision::Error))
}

/// Standard CEL (with `matches`) and the strings extension, which the API
/// server's environment includes. Kubernetes' own libraries (authorizer,
/// quantity, url, ip, semver) are not here: an expression that calls them
/// fails to evaluate, and says so.
fn environment() -> Result<cel::Env, String> {
    let mut environment = cel::Env::stdlib();
    environment
        .add_extension(cel::extensions::strings)
        .map_err(|e| format!("cannot set up the CEL environment: {e}"))?;
    Ok(environment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The chart's webhook (charts/kube-once/templates/mutatingwebhookconfiguration.yaml).
    fn webhook() -> Value {
        json!({
            "name": "deployments.kube-once.io",
            "failurePolicy": "Fail",
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                       "resources": ["deployments"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "kube-once"]},
                {"key": "kube-once.io/ignore", "operator": "NotIn", "values": ["true"]}]},
            "matchConditions": [{"name": "kube-once-annotated", "expression":
                "(has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('kube-once.io/'))) || (has(object.spec) && has(object.spec.template) && has(object.spec.template.metadata) && has(object.spec.template.metadata.annotations) && 'kube-once.io/status' in object.spec.template.metadata.annotations)"}]
        })
    }

    fn decide_with(
        hook: &Value,
        object: Value,
        old: Value,
        operation: &str,
        namespace: &BTreeMap<String, String>,
    ) -> Decision {
        let request = json!({"operation": operation, "object": object, "oldObject": old});
        decide(hook, &Attributes::deployment(operation, namespace, &request))
            .unwrap_or_else(|e| Decision::Error(format!("invalid: {e}")))
    }

    fn decide_for(object: Value, operation: &str, namespace: &BTreeMap<String, String>) -> Decision {
        decide_with(&webhook(), object, Value::Null, operation, namespace)
    }

    fn namespace(name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut labels: BTreeMap<String, String> =
            extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned());
        labels
    }

    fn deployment(annotations: Value, template_annotations: Value) -> Value {
        json!({"metadata": {"name": "d", "annotations": annotations},
               "spec": {"template": {"metadata": {"annotations": template_annotations}}}})
    }

    fn skip_reason(decision: Decision) -> String {
        match decision {
            Decision::Skip(reason) => reason,
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    #[test]
    fn annotated_deployment_is_sent() {
        let apps = namespace("apps", &[]);
        let object = deployment(json!({"kube-once.io/run": "x"}), json!({}));
        assert_eq!(decide_for(object.clone(), "CREATE", &apps), Decision::Call);
        assert_eq!(decide_for(object.clone(), "UPDATE", &apps), Decision::Call);
        let reason = skip_reason(decide_for(object.clone(), "DELETE", &apps));
        assert_eq!(reason, "no rule matches DELETE of apps/v1 deployments (Namespaced)");
        let reason = skip_reason(decide_for(object.clone(), "CREATE", &namespace("kube-system", &[])));
        assert!(reason.starts_with("namespaceSelector does not select namespace kube-system"), "{reason}");
        assert!(reason.contains("kubernetes.io/metadata.name NotIn (kube-system, kube-once)"), "{reason}");
        let ignored = namespace("legacy", &[("kube-once.io/ignore", "true")]);
        let reason = skip_reason(decide_for(object.clone(), "CREATE", &ignored));
        assert!(reason.contains("its label kube-once.io/ignore is `true`"), "{reason}");
        // Any other value leaves the namespace in.
        let not_ignored = namespace("legacy", &[("kube-once.io/ignore", "false")]);
        assert_eq!(decide_for(object, "CREATE", &not_ignored), Decision::Call);
    }

    #[test]
    fn status_on_the_template_alone_is_sent() {
        let object = deployment(json!({"other": "x"}), json!({"kube-once.io/status": "{}"}));
        assert_eq!(decide_for(object, "UPDATE", &namespace("apps", &[])), Decision::Call);
    }

    #[test]
    fn unannotated_deployments_are_skipped_without_error() {
        let apps = namespace("apps", &[]);
        let object = deployment(json!({"kube-onceXio/run": "x", "example.com/kube-once.io": "y"}), json!({}));
        assert_eq!(
            decide_for(object, "CREATE", &apps),
            Decision::Skip("matchCondition kube-once-annotated is false".to_owned())
        );
        let bare = json!({"metadata": {"name": "d"}, "spec": {"template": {"metadata": {}}}});
        assert!(matches!(decide_for(bare, "CREATE", &apps), Decision::Skip(_)));
        let no_spec = json!({"metadata": {"name": "d"}});
        assert!(matches!(decide_for(no_spec, "CREATE", &apps), Decision::Skip(_)));
    }

    #[test]
    fn match_conditions_true_false_and_error() {
        let apps = namespace("apps", &[]);
        let object = json!({"metadata": {"name": "d", "labels": {"app": "web"}}});
        let with = |conditions: Value| {
            let mut hook = webhook();
            hook["matchConditions"] = conditions;
            decide_with(&hook, object.clone(), Value::Null, "CREATE", &apps)
        };
        assert_eq!(with(json!([{"name": "t", "expression": "object.metadata.name == 'd'"}])), Decision::Call);
        assert_eq!(with(json!([])), Decision::Call);
        assert_eq!(
            with(json!([{"name": "f", "expression": "request.operation == 'UPDATE'"}])),
            Decision::Skip("matchCondition f is false".to_owned())
        );
        // An unguarded field: an evaluation error, for failurePolicy to decide.
        let error = with(json!([{"name": "unguarded", "expression": "object.metadata.annotations.size() > 0"}]));
        assert!(
            matches!(&error, Decision::Error(m) if m.starts_with("matchCondition unguarded failed to evaluate")),
            "{error:?}"
        );
        // Not a bool is an error too.
        assert!(matches!(with(json!([{"name": "n", "expression": "1"}])), Decision::Error(_)));
        // A false condition wins over an erroring one, wherever it is.
        let both = json!([{"name": "e", "expression": "object.nope.size() > 0"}, {"name": "f", "expression": "false"}]);
        assert_eq!(with(both), Decision::Skip("matchCondition f is false".to_owned()));
        // Standard `matches` and the strings extension are there.
        assert_eq!(with(json!([{"name": "re", "expression": "object.metadata.name.matches('^d$')"}])), Decision::Call);
        assert_eq!(
            with(json!([{"name": "s", "expression": "object.metadata.name.upperAscii() == 'D'"}])),
            Decision::Call
        );
        // oldObject is null on CREATE.
        assert_eq!(with(json!([{"name": "o", "expression": "oldObject == null"}])), Decision::Call);
        // A condition that does not compile: the configuration is invalid.
        let mut hook = webhook();
        hook["matchConditions"] = json!([{"name": "broken", "expression": "object.("}]);
        let request = json!({"operation": "CREATE", "object": object});
        let result = decide(&hook, &Attributes::deployment("CREATE", &apps, &request));
        assert!(
            matches!(&result, Err(SelectionError::InvalidWebhook { problem, .. }) if problem.contains("broken does not compile")),
            "{result:?}"
        );
    }

    #[test]
    fn rules_check_operation_group_version_resource_and_scope() {
        let apps = namespace("apps", &[]);
        let object = deployment(json!({"kube-once.io/run": "x"}), json!({}));
        let with = |rules: Value| {
            let mut hook = webhook();
            hook["rules"] = rules;
            decide_with(&hook, object.clone(), Value::Null, "CREATE", &apps)
        };
        let rule = |ops: &[&str], groups: &[&str], versions: &[&str], resources: &[&str], scope: &str| json!([{"operations": ops, "apiGroups": groups, "apiVersions": versions, "resources": resources, "scope": scope}]);
        assert_eq!(with(rule(&["*"], &["*"], &["*"], &["*"], "*")), Decision::Call);
        assert_eq!(with(rule(&["CREATE"], &["apps"], &["v1"], &["deployments/*"], "Namespaced")), Decision::Call);
        assert!(matches!(with(rule(&["UPDATE"], &["apps"], &["v1"], &["deployments"], "*")), Decision::Skip(_)));
        assert!(matches!(with(rule(&["CREATE"], &[""], &["v1"], &["deployments"], "*")), Decision::Skip(_)));
        assert!(matches!(with(rule(&["CREATE"], &["apps"], &["v1beta1"], &["deployments"], "*")), Decision::Skip(_)));
        assert!(matches!(with(rule(&["CREATE"], &["apps"], &["v1"], &["deployments/scale"], "*")), Decision::Skip(_)));
        assert!(matches!(with(rule(&["CREATE"], &["apps"], &["v1"], &["deployments"], "Cluster")), Decision::Skip(_)));
        assert!(matches!(with(json!([])), Decision::Skip(_)));
        assert_eq!(
            with(rule(&["CREATE"], &["apps"], &["v1"], &["deployments"], "Everywhere")),
            Decision::Error(
                "invalid: webhook deployments.kube-once.io: rules[0].scope `Everywhere` is not valid (write Cluster, Namespaced or *); the API server does not accept such a MutatingWebhookConfiguration".to_owned()
            )
        );
    }

    #[test]
    fn object_selector_matches_the_object_or_the_old_object() {
        let apps = namespace("apps", &[]);
        let mut hook = webhook();
        hook["objectSelector"] = json!({"matchLabels": {"kube-once": "on"}});
        let on =
            json!({"metadata": {"name": "d", "labels": {"kube-once": "on"}, "annotations": {"kube-once.io/run": "x"}}});
        let off = json!({"metadata": {"name": "d", "labels": {"kube-once": "off"}, "annotations": {"kube-once.io/run": "x"}}});
        assert_eq!(decide_with(&hook, on.clone(), Value::Null, "CREATE", &apps), Decision::Call);
        let reason = skip_reason(decide_with(&hook, off.clone(), Value::Null, "CREATE", &apps));
        assert_eq!(
            reason,
            "objectSelector does not select the object's labels: matchLabels kube-once=on is not met: its label kube-once is `off`"
        );
        // Removing the label is still sent (the old object matches), so the webhook can undo its work.
        assert_eq!(decide_with(&hook, off.clone(), on, "UPDATE", &apps), Decision::Call);
        assert!(matches!(decide_with(&hook, off.clone(), off, "UPDATE", &apps), Decision::Skip(_)));
        let bad = json!({"metadata": {"name": "d", "labels": {"replicas": 3}}});
        let request = json!({"operation": "CREATE", "object": bad});
        assert!(matches!(
            decide(&hook, &Attributes::deployment("CREATE", &apps, &request)),
            Err(SelectionError::InvalidObject { .. })
        ));
    }

    #[test]
    fn selectors_follow_label_selector_semantics() -> Result<(), String> {
        let labels = namespace("apps", &[("team", "data")]);
        let matches = |selector: Value| selector_matches(Some(&selector), &labels);
        assert!(selector_matches(None, &labels)?);
        assert!(matches(Value::Null)?);
        assert!(matches(json!({}))?);
        assert!(matches(json!({"matchLabels": {"team": "data"}}))?);
        assert!(!matches(json!({"matchLabels": {"team": "web"}}))?);
        assert!(!matches(json!({"matchLabels": {"tier": "data"}}))?);
        let expression = |key: &str, operator: &str, values: &[&str]| json!({"matchExpressions": [{"key": key, "operator": operator, "values": values}]});
        let bare = |key: &str, operator: &str| json!({"matchExpressions": [{"key": key, "operator": operator}]});
        assert!(matches(expression("team", "In", &["data", "web"]))?);
        assert!(!matches(expression("team", "In", &["web"]))?);
        assert!(!matches(expression("tier", "In", &["web"]))?);
        assert!(matches(expression("tier", "NotIn", &["x"]))?);
        assert!(matches(expression("team", "NotIn", &["web"]))?);
        assert!(!matches(expression("team", "NotIn", &["data"]))?);
        assert!(matches(bare("team", "Exists"))?);
        assert!(!matches(bare("tier", "Exists"))?);
        assert!(matches(bare("tier", "DoesNotExist"))?);
        assert!(!matches(bare("team", "DoesNotExist"))?);
        // matchLabels and matchExpressions are ANDed.
        let both =
            json!({"matchLabels": {"team": "data"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]});
        assert!(!matches(both)?);
        // What the API server would reject.
        assert!(matches(expression("team", "Like", &["d"])).is_err());
        assert!(matches(expression("team", "In", &[])).is_err());
        assert!(matches(expression("team", "Exists", &["data"])).is_err());
        assert!(matches(json!({"matchLabels": {"team": 1}})).is_err());
        Ok(())
    }

    #[test]
    fn mismatches_say_which_requirement_failed() -> Result<(), String> {
        let labels = namespace("apps", &[]);
        let why = |selector: Value| selector_mismatch(Some(&selector), &labels);
        assert_eq!(
            why(json!({"matchExpressions": [{"key": "kube-once.io/enabled", "operator": "In", "values": ["true"]}]}))?,
            Some(
                "requirement `kube-once.io/enabled In (true)` is not met: it has no label kube-once.io/enabled"
                    .to_owned()
            )
        );
        assert_eq!(
            why(json!({"matchLabels": {"team": "data"}}))?,
            Some("matchLabels team=data is not met: it has no label team".to_owned())
        );
        Ok(())
    }
}
