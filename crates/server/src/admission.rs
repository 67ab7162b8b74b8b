//! `POST /mutate`: AdmissionReview v1 in, AdmissionReview out. Pure and
//! infallible: every input becomes either a response that echoes the
//! request's uid, or a [`BadRequest`] with a reason (HTTP 400) when the body
//! is not an AdmissionReview at all, or not one the API server would send (a
//! repeated key or an integer beyond 64 bits where the core reads: the core
//! refuses to guess). No error can escape as a 500.
//!
//! - Only the workload kinds of [`kube_once_core::Kind`] (`apps/v1`
//!   Deployment, StatefulSet, DaemonSet, `batch/v1` Job, CronJob, Argo
//!   Rollout) on CREATE and UPDATE are mutated (the same test as `kube-once
//!   preview`: [`Kind::of`]); other kinds (and subresources such as
//!   `deployments/scale`, whose kind is `Scale`), DELETE, CONNECT and
//!   operations unknown to this version are allowed untouched.
//! - `dryRun` requests get exactly the answer a real request would get: the
//!   mutation has no side effects (the webhook declares `sideEffects: None`),
//!   so there is nothing to skip, and `kubectl apply --dry-run=server` shows
//!   the real result.
//! - A refusal is `allowed: false` with status code 400 (`BadRequest`): the
//!   user's object carries a malformed annotation, which is a fault in the
//!   request, not a permission matter (403). The API server prefixes the
//!   message with "admission webhook ... denied the request".

use serde::{Deserialize, Serialize};
use serde_json::Value;

use kube_once_core::{Changes, Kind, Reason, Refusal, Workload, describe};

const API_VERSION: &str = "admission.k8s.io/v1";
const KIND: &str = "AdmissionReview";

/// What became of one admission request (the `result` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A workload that needed changes: allowed with a patch.
    Patched,
    /// A workload already in its desired state: allowed, no patch.
    Unchanged,
    /// Not ours to mutate (another kind, DELETE, CONNECT): allowed, no patch.
    Skipped,
    /// A malformed `kube-once.io/` annotation: denied with a message.
    Refused,
    /// Not an AdmissionReview: HTTP 400.
    BadRequest,
    /// Not answered within the request timeout: HTTP 408.
    Timeout,
}

impl Outcome {
    /// In declaration order: `outcome as usize` indexes it.
    pub const ALL: [Outcome; 6] = [
        Outcome::Patched,
        Outcome::Unchanged,
        Outcome::Skipped,
        Outcome::Refused,
        Outcome::BadRequest,
        Outcome::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Patched => "patched",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped => "skipped",
            Outcome::Refused => "refused",
            Outcome::BadRequest => "bad_request",
            Outcome::Timeout => "timeout",
        }
    }
}

/// The AdmissionReview's `operation`. A string this version does not know
/// is kept as it came (and allowed untouched), never an error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
    Other(String),
}

impl Operation {
    pub fn as_str(&self) -> &str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
            Operation::Other(other) => other,
        }
    }
}

impl From<String> for Operation {
    fn from(text: String) -> Self {
        match text.as_str() {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            "CONNECT" => Operation::Connect,
            _ => Operation::Other(text),
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body is not an AdmissionReview v1 the webhook can answer; the reason says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// The answer to one AdmissionReview, with what the log line and metrics need.
#[derive(Debug)]
pub struct Reviewed {
    pub response: AdmissionReviewResponse,
    pub outcome: Outcome,
    pub dry_run: bool,
    pub operation: Operation,
    /// `namespace/name` of the object, as [`describe`] names it.
    pub object: String,
    /// Why the core refused the object, when it did.
    pub refusal: Option<Reason>,
}

/// An AdmissionReview v1 carrying a response.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewResponse {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: AdmissionResponse,
}

impl AdmissionReviewResponse {
    /// The review as JSON, byte for byte what serde writes for it, with the
    /// base64 patch copied as it is: serde would check each of its bytes
    /// for characters to escape, which base64 has none of, and the patch is
    /// the largest string of the answer (docs/dev/performance.md).
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let response = &self.response;
        let mut out = Vec::with_capacity(256 + response.patch.as_ref().map_or(0, String::len));
        out.extend_from_slice(b"{\"apiVersion\":");
        serde_json::to_writer(&mut out, self.api_version)?;
        out.extend_from_slice(b",\"kind\":");
        serde_json::to_writer(&mut out, self.kind)?;
        out.extend_from_slice(b",\"response\":{\"uid\":");
        serde_json::to_writer(&mut out, &response.uid)?;
        out.extend_from_slice(if response.allowed { b",\"allowed\":true" } else { b",\"allowed\":false" });
        if let Some(patch_type) = response.patch_type {
            out.extend_from_slice(b",\"patchType\":");
            serde_json::to_writer(&mut out, patch_type)?;
        }
        if let Some(patch) = &response.patch {
            out.extend_from_slice(b",\"patch\":\"");
            out.extend_from_slice(patch.as_bytes());
            out.push(b'"');
        }
        if let Some(status) = &response.status {
            out.extend_from_slice(b",\"status\":");
            serde_json::to_writer(&mut out, status)?;
        }
        if !response.warnings.is_empty() {
            out.extend_from_slice(b",\"warnings\":");
            serde_json::to_writer(&mut out, &response.warnings)?;
        }
        out.extend_from_slice(b"}}");
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Base64 of the JSON patch, as the API requires ([`AdmissionReviewResponse::to_json`]
    /// relies on it needing no escaping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The metav1.Status of a denial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub status: &'static str,
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

/// The review as sent, read in one pass; `object` and `oldObject` as the
/// core reads a workload: names, annotations and the pod template, with
/// its app containers, volumes, annotations and the init containers' lists
/// kept as borrowed text (the rest is skipped, so other kinds cost little
/// more than their metadata).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionReviewRequest<'a> {
    api_version: String,
    kind: String,
    #[serde(borrow)]
    request: Option<AdmissionRequest<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionRequest<'a> {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    operation: Operation,
    #[serde(default, borrow)]
    object: Option<Workload<'a>>,
    #[serde(default, borrow)]
    old_object: Option<Workload<'a>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    #[serde(default)]
    version: String,
    kind: String,
}

impl GroupVersionKind {
    /// What [`Kind::of`] reads: an object's `apiVersion` and `kind`.
    fn type_meta(&self) -> Value {
        let api_version =
            if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) };
        serde_json::json!({"apiVersion": api_version, "kind": self.kind})
    }
}

/// Answer the AdmissionReview in `body`, mutating workloads with the core.
pub fn review(body: &[u8], config: &kube_once_core::Config) -> Result<Reviewed, BadRequest> {
    answer(body, |object, old_object| kube_once_core::changes(object, old_object, config))
}

fn answer(
    body: &[u8],
    changes: impl FnOnce(&Workload, Option<&Workload>) -> Result<Changes, Refusal>,
) -> Result<Reviewed, BadRequest> {
    // UTF-8 checked once for the whole body: reading from bytes checks every
    // string on its own, which costs far more (docs/dev/performance.md).
    let body = std::str::from_utf8(body)
        .map_err(|error| BadRequest(format!("the body is not valid JSON: it is not UTF-8 ({error})")))?;
    // What nothing reads is dropped first: serde_json would check it token by token.
    let skimmed = crate::skim::skim(body);
    let review: AdmissionReviewRequest = serde_json::from_str(&skimmed).map_err(|error| {
        BadRequest(match error.classify() {
            serde_json::error::Category::Data => {
                format!("the body is not an AdmissionReview as the API server sends it: {error}")
            }
            _ => format!("the body is not valid JSON: {error}"),
        })
    })?;
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(BadRequest(format!(
            "expected apiVersion {API_VERSION} and kind {KIND}, got apiVersion `{}` and kind `{}`; \
             set admissionReviewVersions: [v1] in the MutatingWebhookConfiguration",
            review.api_version, review.kind
        )));
    }
    let request = review.request.ok_or_else(|| BadRequest(format!("the {KIND} has no `request` to answer")))?;

    let dry_run = request.dry_run.unwrap_or(false);
    let kind = Kind::of(&request.kind.type_meta());
    let mutates = matches!(request.operation, Operation::Create | Operation::Update) && kind.is_some();

    let named = [&request.object, &request.old_object].into_iter().flatten().map(|o| &o.value).find(|o| o.is_object());
    let object_name = object_name(&request, named);
    let (response, outcome, refusal) = if mutates {
        let object = request.object.as_ref().ok_or_else(|| {
            BadRequest(format!(
                "request.object is missing on a {} of a {}",
                request.operation,
                kind.map_or("workload", Kind::name)
            ))
        })?;
        respond(request.uid, changes(object, request.old_object.as_ref()))
    } else {
        (allow(request.uid), Outcome::Skipped, None)
    };
    Ok(Reviewed {
        response: AdmissionReviewResponse { api_version: API_VERSION, kind: KIND, response },
        outcome,
        dry_run,
        operation: request.operation,
        object: object_name,
        refusal,
    })
}

fn allow(uid: String) -> AdmissionResponse {
    AdmissionResponse { uid, allowed: true, patch_type: None, patch: None, status: None, warnings: Vec::new() }
}

fn respond(uid: String, changes: Result<Changes, Refusal>) -> (AdmissionResponse, Outcome, Option<Reason>) {
    match changes {
        Ok(Changes { patch, warnings }) if patch.0.is_empty() => {
            (AdmissionResponse { warnings, ..allow(uid) }, Outcome::Unchanged, None)
        }
        Ok(Changes { patch, warnings }) => match base64_json(&patch) {
            Ok(encoded) => (
                AdmissionResponse { patch_type: Some("JSONPatch"), patch: Some(encoded), warnings, ..allow(uid) },
                Outcome::Patched,
                None,
            ),
            // A patch is plain JSON values; this cannot fail, but if it ever
            // did, denying is the fail-closed answer.
            Err(error) => (
                deny(uid, format!("kube-once could not encode its patch ({error}); please report this")),
                Outcome::Refused,
                None,
            ),
        },
        Err(refusal) => {
            let reason = refusal.reason();
            (deny(uid, refusal.to_string()), Outcome::Refused, Some(reason))
        }
    }
}

/// `patch` as JSON, base64-encoded. The patch follows the change, not the
/// object (a few KB even for a 2.8 MB Deployment), so one buffer is cheapest.
fn base64_json(patch: &json_patch::Patch) -> Result<String, serde_json::Error> {
    crate::patch_json::to_vec(patch).map(|json| base64_simd::STANDARD.encode_to_string(json))
}

fn deny(uid: String, message: String) -> AdmissionResponse {
    let status = Status { status: "Failure", code: 400, reason: "BadRequest", message };
    AdmissionResponse { allowed: false, status: Some(status), ..allow(uid) }
}

/// The object as [`describe`] names it: the object, else the old one (on
/// DELETE), else the request's namespace and name.
fn object_name(request: &AdmissionRequest, object: Option<&Value>) -> String {
    match object {
        Some(object) => describe(object),
        None => describe(&serde_json::json!({
            "metadata": {"namespace": request.namespace, "name": request.name}
        })),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(operation: &str, kind: &str, dry_run: bool) -> Vec<u8> {
        let group = if kind == "Deployment" { "apps" } else { "" };
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": group, "version": "v1", "kind": kind},
                "resource": {"group": group, "version": "v1", "resource": "deployments"},
                "namespace": "shop",
                "name": "web",
                "operation": operation,
                "userInfo": {"username": "admin"},
                "object": {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web", "namespace": "shop"}},
                "oldObject": null,
                "dryRun": dry_run
            }
        }))
        .unwrap()
    }

    fn patched(_: &Workload, _: Option<&Workload>) -> Result<Changes, Refusal> {
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])).unwrap();
        Ok(Changes { patch, warnings: vec!["mind the schema".to_owned()] })
    }

    #[test]
    fn non_empty_patch_is_sent_base64_as_json_patch_with_warnings() {
        let reviewed = answer(&body("CREATE", "Deployment", false), patched).unwrap();
        assert_eq!(reviewed.outcome, Outcome::Patched);
        let response = reviewed.response.response;
        assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert!(response.allowed);
        assert_eq!(response.patch_type, Some("JSONPatch"));
        let decoded = base64_simd::STANDARD.decode_to_vec(response.patch.unwrap()).unwrap();
        let patch: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(patch, json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]));
        assert_eq!(response.warnings, vec!["mind the schema".to_owned()]);
        assert_eq!(reviewed.object, "shop/web");
    }

    #[test]
    fn reviews_are_written_as_serde_writes_them() {
        let denied = |_: &Workload, _: Option<&Workload>| Err(Refusal::new(Reason::BadValue, "bad \"run\"\n"));
        let unchanged = |_: &Workload, _: Option<&Workload>| {
            Ok(Changes { patch: json_patch::Patch(Vec::new()), warnings: Vec::new() })
        };
        let mut answers = vec![
            answer(&body("CREATE", "Deployment", false), patched).unwrap(),
            answer(&body("CREATE", "Deployment", false), denied).unwrap(),
            answer(&body("CREATE", "Deployment", false), unchanged).unwrap(),
            answer(&body("DELETE", "Deployment", false), patched).unwrap(),
        ];
        answers[2].response.response.uid = "odd \u{0} \"uid\" ☃".to_owned();
        for reviewed in answers {
            let expected = serde_json::to_vec(&reviewed.response).unwrap();
            assert_eq!(
                String::from_utf8(reviewed.response.to_json().unwrap()).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn dry_run_gets_the_same_answer() {
        let real = answer(&body("UPDATE", "Deployment", false), patched).unwrap();
        let dry = answer(&body("UPDATE", "Deployment", true), patched).unwrap();
        assert!(dry.dry_run);
        assert_eq!(real.response, dry.response);
    }

    #[test]
    fn refusal_denies_with_the_message() {
        let reviewed =
            answer(&body("CREATE", "Deployment", false), |_, _| Err(Refusal::new(Reason::BadValue, "bad `run`")))
                .unwrap();
        assert_eq!(reviewed.outcome, Outcome::Refused);
        assert_eq!(reviewed.refusal, Some(Reason::BadValue));
        let response = reviewed.response.response;
        assert!(!response.allowed);
        assert_eq!(response.patch, None);
        let status = response.status.unwrap();
        assert_eq!((status.code, status.message.as_str()), (400, "bad `run`"));
    }

    #[test]
    fn delete_and_other_kinds_are_skipped_without_calling_the_core() {
        for (operation, kind) in [("DELETE", "Deployment"), ("CREATE", "ConfigMap"), ("CONNECT", "Deployment")] {
            let reviewed = answer(&body(operation, kind, false), |_, _| panic!("core called")).unwrap();
            assert_eq!(reviewed.outcome, Outcome::Skipped, "{operation} {kind}");
            assert!(reviewed.response.response.allowed);
            assert_eq!(reviewed.response.response.patch, None);
        }
    }

    #[test]
    fn unknown_operations_are_skipped_and_logged_as_they_came() {
        for operation in ["PATCH", "", "create", "CREATE\u{0}"] {
            let reviewed = answer(&body(operation, "Deployment", false), |_, _| panic!("core called")).unwrap();
            assert_eq!(reviewed.outcome, Outcome::Skipped, "{operation:?}");
            assert_eq!(reviewed.operation, Operation::Other(operation.to_owned()));
            assert_eq!(reviewed.operation.to_string(), operation);
        }
        let reviewed = answer(&body("UPDATE", "Deployment", false), patched).unwrap();
        assert_eq!(reviewed.operation, Operation::Update);
        assert_eq!(reviewed.operation.to_string(), "UPDATE");
    }

    /// Admission and `preview` agree: each supported kind at its one API
    /// version, nothing else.
    #[test]
    fn workloads_are_the_supported_kinds_at_their_api_version() {
        let with_kind = |group: &str, version: &str, kind: &str| {
            let mut review: Value = serde_json::from_slice(&body("CREATE", "Deployment", false)).unwrap();
            review["request"]["kind"] = json!({"group": group, "version": version, "kind": kind});
            answer(&serde_json::to_vec(&review).unwrap(), patched).unwrap().outcome
        };
        assert_eq!(with_kind("apps", "v1", "Deployment"), Outcome::Patched);
        // Not served since Kubernetes 1.16; preview leaves them alone too.
        assert_eq!(with_kind("apps", "v1beta1", "Deployment"), Outcome::Skipped);
        assert_eq!(with_kind("apps", "v1beta2", "Deployment"), Outcome::Skipped);
        assert_eq!(with_kind("extensions", "v1beta1", "Deployment"), Outcome::Skipped);
        assert_eq!(with_kind("apps.example.com", "v1", "Deployment"), Outcome::Skipped);
        assert_eq!(with_kind("", "v1", "Deployment"), Outcome::Skipped);
        assert_eq!(with_kind("apps", "v1", "Scale"), Outcome::Skipped);
        assert_eq!(with_kind("autoscaling", "v1", "Scale"), Outcome::Skipped);
        for (group, kind) in [("apps", "StatefulSet"), ("apps", "DaemonSet"), ("batch", "Job"), ("batch", "CronJob")] {
            assert_eq!(with_kind(group, "v1", kind), Outcome::Patched, "{kind}");
        }
        assert_eq!(with_kind("argoproj.io", "v1alpha1", "Rollout"), Outcome::Patched);
        assert_eq!(with_kind("batch", "v1beta1", "CronJob"), Outcome::Skipped);
        assert_eq!(with_kind("apps", "v1", "ReplicaSet"), Outcome::Skipped);
        assert_eq!(with_kind("", "v1", "Pod"), Outcome::Skipped);
    }

    #[test]
    fn objects_are_named_like_everywhere_else() {
        let mut review: Value = serde_json::from_slice(&body("CREATE", "Deployment", false)).unwrap();
        review["request"]["name"] = json!("");
        review["request"]["object"]["metadata"] = json!({"generateName": "web-", "namespace": "shop"});
        assert_eq!(answer(&serde_json::to_vec(&review).unwrap(), patched).unwrap().object, "shop/web-*");
        // DELETE: no object, the old one names it.
        review["request"]["operation"] = json!("DELETE");
        review["request"]["oldObject"] = review["request"]["object"].take();
        review["request"]["oldObject"]["metadata"] = json!({"name": "web", "namespace": "shop"});
        assert_eq!(answer(&serde_json::to_vec(&review).unwrap(), patched).unwrap().object, "shop/web");
        // Neither: the request's own namespace and name.
        review["request"]["oldObject"] = Value::Null;
        review["request"]["name"] = json!("web");
        assert_eq!(answer(&serde_json::to_vec(&review).unwrap(), patched).unwrap().object, "shop/web");
    }

    #[test]
    fn garbage_and_other_json_are_bad_requests_with_a_reason() {
        let garbage = answer(b"\x00{not json", patched).unwrap_err();
        assert!(garbage.0.contains("not valid JSON"), "{garbage}");
        let latin1 = answer(b"{\"apiVersion\":\"caf\xe9\"}", patched).unwrap_err();
        assert!(latin1.0.contains("not valid JSON: it is not UTF-8"), "{latin1}");
        let other = answer(br#"{"apiVersion":"v1","kind":"ConfigMap","data":{}}"#, patched).unwrap_err();
        assert!(other.0.contains("expected apiVersion admission.k8s.io/v1"), "{other}");
        let no_uid = answer(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#, patched)
            .unwrap_err();
        assert!(no_uid.0.contains("missing field `uid`"), "{no_uid}");
    }
}
