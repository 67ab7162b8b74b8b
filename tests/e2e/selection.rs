//! Whether the API server calls a webhook of a MutatingWebhookConfiguration
//! for a request: rules, namespaceSelector, objectSelector, then
//! matchConditions — the CEL expressions evaluated by a real CEL interpreter
//! with `object`, `oldObject` and `request` bound as the API server binds them.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cluster::string_map;

/// What the API server knows about a request when it picks webhooks.
pub struct Attributes<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub operation: &'a str,
    pub namespaced: bool,
    pub namespace_labels: &'a BTreeMap<String, String>,
    /// The AdmissionReview's `request` (object and oldObject included).
    pub request: &'a Value,
}

impl<'a> Attributes<'a> {
    /// A write of a Deployment itself (apps/v1 deployments, no subresource).
    pub fn deployment(operation: &'a str, namespace_labels: &'a BTreeMap<String, String>, request: &'a Value) -> Self {
        Attributes {
            group: "apps",
            version: "v1",
            resource: "deployments",
            subresource: "",
            operation,
            namespaced: true,
            namespace_labels,
            request,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Call,
    Skip(String),
    /// A matchCondition failed to evaluate: the webhook's failurePolicy decides
    /// (Fail rejects the request).
    Error(String),
}

pub fn decide(webhook: &Value, attributes: &Attributes) -> Result<Decision> {
    if !rules_match(webhook.get("rules"), attributes)? {
        return Ok(Decision::Skip("no rule matches".to_owned()));
    }
    if attributes.namespaced && !selector_matches(webhook.get("namespaceSelector"), attributes.namespace_labels)? {
        return Ok(Decision::Skip("namespaceSelector does not match".to_owned()));
    }
    let request = attributes.request;
    let labels_of = |key: &str| string_map(request.get(key).and_then(|o| o.pointer("/metadata/labels")));
    let object_selector = webhook.get("objectSelector");
    if !(selector_matches(object_selector, &labels_of("object")?)?
        || (request.get("oldObject").is_some_and(|o| !o.is_null())
            && selector_matches(object_selector, &labels_of("oldObject")?)?))
    {
        return Ok(Decision::Skip("objectSelector does not match".to_owned()));
    }
    match_conditions(webhook.get("matchConditions"), request)
}

fn rules_match(rules: Option<&Value>, attributes: &Attributes) -> Result<bool> {
    let Some(rules) = rules.and_then(Value::as_array) else { return Ok(false) };
    for rule in rules {
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
            other => bail!("rule scope {other} is not valid"),
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

/// A LabelSelector; absent or empty selects everything.
pub fn selector_matches(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> Result<bool> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else { return Ok(true) };
    for (key, value) in string_map(selector.get("matchLabels"))? {
        if labels.get(&key) != Some(&value) {
            return Ok(false);
        }
    }
    for expression in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = expression.get("key").and_then(Value::as_str).context("matchExpressions entry without key")?;
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let actual = labels.get(key).map(String::as_str);
        let matched = match expression.get("operator").and_then(Value::as_str) {
            Some("In") => actual.is_some_and(|a| values.contains(&a)),
            Some("NotIn") => actual.is_none_or(|a| !values.contains(&a)),
            Some("Exists") => actual.is_some(),
            Some("DoesNotExist") => actual.is_none(),
            other => bail!("matchExpressions operator {other:?} is not valid"),
        };
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

/// All conditions true → call; any false → skip (even if others error);
/// otherwise an error → failurePolicy.
fn match_conditions(conditions: Option<&Value>, request: &Value) -> Result<Decision> {
    let mut context = cel::Context::default();
    let bind = |key: &str| -> Result<cel::Value> {
        cel::to_value(request.get(key).cloned().unwrap_or(Value::Null))
            .map_err(|e| anyhow::anyhow!("cannot bind {key}: {e}"))
    };
    context.add_variable_from_value("object", bind("object")?);
    context.add_variable_from_value("oldObject", bind("oldObject")?);
    // `request` is the AdmissionRequest without the objects.
    let mut bare_request = request.clone();
    if let Some(map) = bare_request.as_object_mut() {
        map.remove("object");
        map.remove("oldObject");
    }
    context.add_variable_from_value(
        "request",
        cel::to_value(bare_request).map_err(|e| anyhow::anyhow!("cannot bind request: {e}"))?,
    );

    let mut first_error = None;
    for condition in conditions.and_then(Value::as_array).into_iter().flatten() {
        let name = condition.get("name").and_then(Value::as_str).unwrap_or("?");
        let expression =
            condition.get("expression").and_then(Value::as_str).context("matchCondition without expression")?;
        // A condition that does not compile is rejected when the configuration is created.
        let program = cel::Program::compile(expression)
            .map_err(|e| anyhow::anyhow!("matchCondition {name}: `{expression}` does not compile: {e}"))?;
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Ok(Decision::Skip(format!("matchCondition {name} is false"))),
            Ok(other) => {
                first_error.get_or_insert(format!("matchCondition {name} returned {other:?}, not a bool"));
            }
            Err(error) => {
                first_error.get_or_insert(format!("matchCondition {name} failed: {error}"));
            }
        }
    }
    Ok(first_error.map_or(Decision::Call, Decision::Error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the chart must render (brief: "any kube-once.io/ annotation, or
    /// the status annotation on the pod template").
    fn webhook() -> Value {
        json!({
            "name": "deployments.kube-once.io",
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                       "resources": ["deployments"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "kube-once"]},
                {"key": "kube-once.io/ignore", "operator": "DoesNotExist"}]},
            "matchConditions": [{"name": "has-kube-once-annotation", "expression":
                "(has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('kube-once.io/'))) || (has(object.spec.template.metadata.annotations) && 'kube-once.io/status' in object.spec.template.metadata.annotations)"}]
        })
    }

    fn decide_for(object: Value, operation: &str, namespace: &BTreeMap<String, String>) -> Decision {
        let request = json!({"operation": operation, "object": object, "oldObject": null});
        let attributes = Attributes::deployment(operation, namespace, &request);
        match decide(&webhook(), &attributes) {
            Ok(decision) => decision,
            Err(error) => Decision::Error(format!("{error:#}")),
        }
    }

    fn namespace(name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut labels: BTreeMap<String, String> =
            extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        labels.insert("kubernetes.io/metadata.name".to_owned(), name.to_owned());
        labels
    }

    fn deployment(annotations: Value, template_annotations: Value) -> Value {
        json!({"metadata": {"name": "d", "annotations": annotations},
               "spec": {"template": {"metadata": {"annotations": template_annotations}}}})
    }

    #[test]
    fn annotated_deployment_is_sent() {
        let apps = namespace("apps", &[]);
        let object = deployment(json!({"kube-once.io/run": "x"}), json!({}));
        assert_eq!(decide_for(object.clone(), "CREATE", &apps), Decision::Call);
        assert!(matches!(decide_for(object.clone(), "DELETE", &apps), Decision::Skip(_)));
        assert!(matches!(decide_for(object.clone(), "CREATE", &namespace("kube-system", &[])), Decision::Skip(_)));
        let ignored = namespace("legacy", &[("kube-once.io/ignore", "true")]);
        assert!(matches!(decide_for(object, "CREATE", &ignored), Decision::Skip(_)));
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
        assert!(matches!(decide_for(object, "CREATE", &apps), Decision::Skip(_)));
        let bare = json!({"metadata": {"name": "d"}, "spec": {"template": {"metadata": {}}}});
        assert!(matches!(decide_for(bare, "CREATE", &apps), Decision::Skip(_)));
    }

    #[test]
    fn an_erroring_condition_is_reported_not_hidden() {
        let mut hook = webhook();
        hook["matchConditions"] =
            json!([{"name": "unguarded", "expression": "object.metadata.annotations.size() > 0"}]);
        let request = json!({"operation": "CREATE", "object": {"metadata": {"name": "d"}}});
        let labels = namespace("apps", &[]);
        let attributes = Attributes::deployment("CREATE", &labels, &request);
        assert!(matches!(decide(&hook, &attributes), Ok(Decision::Error(_))));
    }

    #[test]
    fn selectors_follow_label_selector_semantics() -> Result<()> {
        let labels = namespace("apps", &[("team", "data")]);
        assert!(selector_matches(None, &labels)?);
        assert!(selector_matches(Some(&json!({})), &labels)?);
        assert!(selector_matches(Some(&json!({"matchLabels": {"team": "data"}})), &labels)?);
        assert!(!selector_matches(Some(&json!({"matchLabels": {"team": "web"}})), &labels)?);
        let in_expr = json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["data", "web"]}]});
        assert!(selector_matches(Some(&in_expr), &labels)?);
        let not_in_absent = json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]});
        assert!(selector_matches(Some(&not_in_absent), &labels)?);
        let exists = json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]});
        assert!(!selector_matches(Some(&exists), &labels)?);
        Ok(())
    }
}
