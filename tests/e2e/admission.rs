//! The API server's side of an admission call: the AdmissionReview v1 it
//! sends for a workload write, and the checks it makes on the answer before
//! applying the patch (k8s.io/apiserver admission/plugin/webhook).

use anyhow::{Context, Result, bail};
use kube_once_core::Kind;
use serde_json::{Value, json};

use crate::cluster::str_at;

pub use kube_once_explain::Operation;

/// The AdmissionReview for a write of `object` (with the stored `old_object`
/// on UPDATE), of the kind the core reads it as (a Deployment when it has no `kind`).
pub fn review(uid: &str, operation: Operation, object: &Value, old_object: Option<&Value>, dry_run: bool) -> Value {
    let kind = Kind::read_as(object);
    let version = kind.api_version().rsplit('/').next().unwrap_or_default();
    let gvk = json!({"group": kind.group(), "version": version, "kind": kind.name()});
    let gvr = json!({"group": kind.group(), "version": version, "resource": kind.resource()});
    let options = match operation {
        Operation::Create => {
            json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-client-side-apply", "fieldValidation": "Strict"})
        }
        Operation::Update => {
            json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-client-side-apply", "fieldValidation": "Strict"})
        }
    };
    // subResource is absent for a write of the workload itself.
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": str_at(object, "/metadata/name").unwrap_or_default(),
            "namespace": str_at(object, "/metadata/namespace").unwrap_or("default"),
            "operation": operation.as_str(),
            "userInfo": {
                "username": "kubernetes-admin",
                "groups": ["kubeadm:cluster-admins", "system:authenticated"],
            },
            "object": object,
            "oldObject": old_object.cloned().unwrap_or(Value::Null),
            "dryRun": dry_run,
            "options": options,
        }
    })
}

/// What the API server makes of a valid answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allowed { object: Value, patched: bool, warnings: Vec<String> },
    Denied { message: String, code: Option<u64> },
}

/// Checks `response` as the API server does for admissionReviewVersions v1,
/// and applies its patch to `object`. An `Err` is what the API server would
/// treat as a failed call (and reject, with failurePolicy Fail).
pub fn check_response(uid: &str, response: &Value, object: &Value) -> Result<Verdict> {
    let (api_version, kind) = (str_at(response, "/apiVersion"), str_at(response, "/kind"));
    if (api_version, kind) != (Some("admission.k8s.io/v1"), Some("AdmissionReview")) {
        bail!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version:?}, Kind={kind:?}"
        );
    }
    let Some(answer) = response.get("response").filter(|r| r.is_object()) else {
        bail!("webhook response was absent");
    };
    let answered_uid = str_at(answer, "/uid").unwrap_or_default();
    if answered_uid != uid {
        bail!("expected response.uid={uid:?}, got {answered_uid:?}");
    }
    let allowed =
        answer.get("allowed").and_then(Value::as_bool).context("response.allowed is missing or not a bool")?;
    let warnings = match answer.get("warnings") {
        None | Some(Value::Null) => Vec::new(),
        Some(list) => serde_json::from_value(list.clone()).context("response.warnings is not a list of strings")?,
    };
    if !allowed {
        let message = str_at(answer, "/status/message").unwrap_or_default().to_owned();
        let code = answer.pointer("/status/code").and_then(Value::as_u64);
        return Ok(Verdict::Denied { message, code });
    }
    let patch = answer.get("patch").filter(|p| !p.is_null());
    let patch_type = answer.get("patchType").filter(|p| !p.is_null());
    let (patch, patch_type) = match (patch, patch_type) {
        (None, None) => return Ok(Verdict::Allowed { object: object.clone(), patched: false, warnings }),
        (Some(_), None) => bail!("webhook returned response.patch but not response.patchType"),
        (None, Some(_)) => bail!("webhook returned response.patchType but not response.patch"),
        (Some(patch), Some(patch_type)) => (patch, patch_type),
    };
    if patch_type != "JSONPatch" {
        bail!("webhook returned invalid patchType: {patch_type}");
    }
    let encoded = patch.as_str().context("response.patch is not a base64 string")?;
    let bytes = base64_simd::STANDARD.decode_to_vec(encoded).context("response.patch is not valid base64")?;
    let operations: json_patch::Patch =
        serde_json::from_slice(&bytes).context("response.patch is not an RFC 6902 JSON Patch")?;
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &operations).context("the JSON patch does not apply to the object sent")?;
    Ok(Verdict::Allowed { patched: !operations.0.is_empty(), object: patched, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(patch: &Value) -> String {
        base64_simd::STANDARD.encode_to_string(patch.to_string())
    }

    #[test]
    fn review_carries_what_the_api_server_sends() {
        let object = json!({"metadata": {"name": "web", "namespace": "apps"}});
        let review = review("u-1", Operation::Update, &object, Some(&object), true);
        assert_eq!(review["request"]["uid"], "u-1");
        assert_eq!(review["request"]["namespace"], "apps");
        assert_eq!(review["request"]["operation"], "UPDATE");
        assert_eq!(review["request"]["options"]["kind"], "UpdateOptions");
        assert_eq!(review["request"]["dryRun"], true);
        assert!(review["request"].get("subResource").is_none());
        assert_eq!(review["request"]["kind"], json!({"group": "apps", "version": "v1", "kind": "Deployment"}));
        let cron_job = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report"}});
        let cron_review = super::review("u-2", Operation::Create, &cron_job, None, false);
        assert_eq!(
            cron_review["request"]["resource"],
            json!({"group": "batch", "version": "v1", "resource": "cronjobs"})
        );
    }

    #[test]
    fn applies_a_valid_patch() -> Result<()> {
        let object = json!({"spec": {"replicas": 1}});
        let response = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
            "uid": "u", "allowed": true, "patchType": "JSONPatch",
            "patch": encoded(&json!([{"op": "replace", "path": "/spec/replicas", "value": 2}]))}});
        let verdict = check_response("u", &response, &object)?;
        assert_eq!(
            verdict,
            Verdict::Allowed { object: json!({"spec": {"replicas": 2}}), patched: true, warnings: vec![] }
        );
        Ok(())
    }

    #[test]
    fn rejects_what_the_api_server_rejects() {
        let object = json!({});
        let base = |response: Value| json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
        let patch = encoded(&json!([]));
        for (response, why) in [
            (base(json!({"uid": "other", "allowed": true})), "uid"),
            (base(json!({"uid": "u", "allowed": true, "patch": patch})), "patchType"),
            (base(json!({"uid": "u", "allowed": true, "patch": patch, "patchType": "Merge"})), "patchType"),
            (base(json!({"uid": "u", "allowed": true, "patch": "%%%", "patchType": "JSONPatch"})), "base64"),
            (
                json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": {"uid": "u", "allowed": true}}),
                "v1",
            ),
            (base(Value::Null), "absent"),
        ] {
            let error = match check_response("u", &response, &object) {
                Ok(verdict) => panic!("accepted {response} as {verdict:?}"),
                Err(error) => format!("{error:#}"),
            };
            assert!(error.contains(why), "{error} should mention {why}");
        }
    }

    #[test]
    fn denial_keeps_the_message() -> Result<()> {
        let response = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
            "uid": "u", "allowed": false, "status": {"code": 400, "message": "bad annotation"}}});
        assert_eq!(
            check_response("u", &response, &json!({}))?,
            Verdict::Denied { message: "bad annotation".to_owned(), code: Some(400) }
        );
        Ok(())
    }
}
