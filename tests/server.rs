//! `kube-once serve`: the handlers in-process (`oneshot`), with a golden
//! AdmissionReview answer per request fixture, and the server over real TLS
//! with a client that trusts only the served CA and verifies the Service DNS
//! name the API server uses.

// The helpers outside #[test] functions fail the test loudly: that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use kube_once_core::Config;
use kube_once_server::certs::CertBundle;
use kube_once_server::tls::{self, CertFiles, CertStore};
use kube_once_server::{self as server, AppState, BODY_LIMIT, ServerHandle, Timeouts};
use serde_json::{Value, json};
use support::golden::Golden;
use support::server::{
    SERVICE_HOST, admission_app as app, call, service_bundle as bundle, service_client, service_url as url,
};
use support::tls::{leaf as leaf_of, plain_http_client as http_client, served_leaf};
use tower::ServiceExt;

fn fixtures() -> PathBuf {
    support::fixtures("server")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn superset_deployment() -> Value {
    fixture_json("create.json")["request"]["object"].clone()
}

/// Every request fixture: tests/fixtures/server/<case>.json, answered in <case>.answer.json.
fn request_fixtures() -> Vec<String> {
    let cases = support::fixture_names("server", ".json").into_iter().filter(|case| !case.ends_with(".answer"));
    cases.map(|case| format!("{case}.json")).collect()
}

// ---------------------------------------------------------------- in-process

/// Checks every AdmissionReview answer must pass; returns its `response`.
fn assert_answers(fixture_name: &str, status: StatusCode, body: &str) -> Value {
    assert_eq!(status, StatusCode::OK, "{fixture_name}: {body}");
    let review: Value = serde_json::from_str(body).unwrap();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{fixture_name}");
    assert_eq!(review["kind"], "AdmissionReview", "{fixture_name}");
    let response = review["response"].clone();
    assert_eq!(response["uid"], fixture_json(fixture_name)["request"]["uid"], "{fixture_name}: uid not echoed");
    response
}

/// An AdmissionReview answer as its golden file holds it: the patch decoded
/// from base64 into JSON, so that a reader of the file sees what is changed.
fn readable_answer(body: &str) -> Value {
    let mut review: Value = serde_json::from_str(body).unwrap();
    if let Some(patch) = review["response"].get("patch") {
        let bytes = base64_simd::STANDARD.decode_to_vec(patch.as_str().unwrap()).unwrap();
        review["response"]["patch"] = serde_json::from_slice(&bytes).unwrap();
    }
    review
}

/// The whole answer to every request fixture (uid, allowed, patch type and
/// patch, warnings, status) is exactly its golden file
/// tests/fixtures/server/<case>.answer.json; `UPDATE_GOLDEN=1` rewrites them.
#[tokio::test]
async fn every_admission_review_gets_its_golden_answer() {
    let requests = request_fixtures();
    assert!(requests.len() >= 7, "request fixtures went missing: {requests:?}");
    let mut golden = Golden::new();
    for name in &requests {
        let (status, body) = call(app(), Method::POST, "/mutate", fixture(name)).await;
        assert_answers(name, status, &body);
        let answer = serde_json::to_string_pretty(&readable_answer(&body)).unwrap() + "\n";
        golden.check(&fixtures().join(name.replace(".json", ".answer.json")), &answer);
    }
    let checked = golden.finish();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let is_answer = path.to_str().is_some_and(|path| path.ends_with(".answer.json"));
        assert!(!is_answer || checked.contains(&path), "{} answers no request fixture: remove it", path.display());
    }
}

#[tokio::test]
async fn delete_and_other_kinds_are_allowed_untouched() {
    for name in ["delete.json", "configmap.json"] {
        let (status, body) = call(app(), Method::POST, "/mutate", fixture(name)).await;
        let response = assert_answers(name, status, &body);
        assert_eq!(response["allowed"], true);
        assert_eq!(response.get("patch"), None, "{name}: {body}");
        assert_eq!(response.get("patchType"), None, "{name}: {body}");
    }
}

#[tokio::test]
async fn dry_run_gets_the_answer_of_the_real_request() {
    let (_, real) = call(app(), Method::POST, "/mutate", fixture("create.json")).await;
    let (status, dry) = call(app(), Method::POST, "/mutate", fixture("dry-run.json")).await;
    let mut dry = assert_answers("dry-run.json", status, &dry);
    let mut real: Value = serde_json::from_str::<Value>(&real).unwrap()["response"].clone();
    dry["uid"] = Value::Null;
    real["uid"] = Value::Null;
    assert_eq!(dry, real);
}

/// The JSON patch of an admission response (base64, as the API requires).
fn decoded_patch(response: &Value) -> json_patch::Patch {
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let bytes = base64_simd::STANDARD.decode_to_vec(response["patch"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn init_container_names(deployment: &Value) -> Vec<String> {
    let containers = deployment.pointer("/spec/template/spec/initContainers").and_then(Value::as_array);
    containers.into_iter().flatten().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

/// The CREATE fixture with one more annotation on the Deployment.
fn create_with_annotation(name: &str, value: &str) -> Vec<u8> {
    let mut review = fixture_json("create.json");
    review["request"]["object"]["metadata"]["annotations"][name] = json!(value);
    serde_json::to_vec(&review).unwrap()
}

#[tokio::test]
async fn annotated_deployment_gets_a_patch_and_its_result_gets_none() {
    let (status, body) = call(app(), Method::POST, "/mutate", fixture("create.json")).await;
    let response = assert_answers("create.json", status, &body);
    assert_eq!(response["allowed"], true);
    let mut deployment = superset_deployment();
    json_patch::patch(&mut deployment, &decoded_patch(&response)).unwrap();
    assert_eq!(init_container_names(&deployment), ["kube-once-install", "kube-once-run"]);

    // The API server admits the mutated object again (reinvocation, a later
    // apply that changes nothing): no patch.
    let mut review = fixture_json("update.json");
    review["request"]["object"] = deployment.clone();
    review["request"]["oldObject"] = deployment;
    let (status, body) = call(app(), Method::POST, "/mutate", serde_json::to_vec(&review).unwrap()).await;
    let response = assert_answers("update.json", status, &body);
    assert_eq!(response["allowed"], true);
    assert_eq!(response.get("patch"), None, "{body}");
}

#[tokio::test]
async fn update_with_old_object_is_patched() {
    let (status, body) = call(app(), Method::POST, "/mutate", fixture("update.json")).await;
    let response = assert_answers("update.json", status, &body);
    let mut deployment = fixture_json("update.json")["request"]["object"].clone();
    json_patch::patch(&mut deployment, &decoded_patch(&response)).unwrap();
    assert_eq!(init_container_names(&deployment), ["kube-once-install", "kube-once-run"]);
}

#[tokio::test]
async fn malformed_annotation_is_denied_with_400_and_the_message() {
    let (status, body) =
        call(app(), Method::POST, "/mutate", create_with_annotation("kube-once.io/record", "sometimes")).await;
    let response = assert_answers("create.json", status, &body);
    assert_eq!(response["allowed"], false);
    assert_eq!(response.get("patch"), None);
    assert_eq!(response["status"]["code"], 400);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("kube-once.io/record") && message.contains("sometimes"), "{message}");
}

/// A writer that keeps the log lines of one test.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A literal password in `kube-once.io/database-url`, written the ways
/// secret generators and frameworks write them, is refused without being
/// repeated: not in the answer kubectl and the audit log show, not in the
/// server's log lines (JSON and text, debug level: the refusal's message
/// is logged there), not in the metrics.
#[tokio::test(flavor = "current_thread")]
async fn a_literal_database_password_is_refused_and_never_repeated() {
    const MARKER: &str = "ZqMarker9";
    let shapes = ["", "a/", "?x=1&", "#", "p@", "%zz", ":/?#@%4", "'", "\\'", "$(", "a b", "x&c=d", "@tcp("];
    let state = AppState::new(Config::default());
    let captured = Captured::default();
    let (json_writer, text_writer) = (captured.clone(), captured.clone());
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().json().with_writer(move || json_writer.clone()))
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || text_writer.clone()))
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    let _logging = tracing::subscriber::set_default(subscriber);
    let mut refused = 0;
    for shape in shapes {
        let password = format!("{shape}{MARKER}{shape}");
        let quoted = password.replace('\\', "\\\\").replace('\'', "\\'");
        for url in [
            format!("postgres://app:{password}@db:5432/app"),
            format!("postgis://$(DB_USER):{password}@$(DB_HOST)/app"),
            format!("mysql2://app:{password}@db/app?encoding=utf8mb4"),
            format!("jdbc:postgresql://db/app?user=app&password={password}&ssl=true"),
            format!("jdbc:mysql://db/app?user=app&password={password}"),
            format!("app:{password}@tcp(db:3306)/app"),
            format!("host=db user=app password='{quoted}' dbname=app"),
        ] {
            // Alone (refused for the password) and beside database-url-env
            // (refused for the conflict, which quotes the value too).
            let conflicting = create_with_annotation("kube-once.io/database-url", &url);
            let mut review: Value = serde_json::from_slice(&conflicting).unwrap();
            let annotations = review["request"]["object"]["metadata"]["annotations"].as_object_mut().unwrap();
            annotations.remove("kube-once.io/database-url-env");
            let alone = serde_json::to_vec(&review).unwrap();
            for (body, expected) in [(alone, "literal password"), (conflicting, "keep only one")] {
                let (status, body) = call(server::router(state.clone()), Method::POST, "/mutate", body).await;
                let response = assert_answers("create.json", status, &body);
                assert_eq!(response["allowed"], false, "{url}: {body}");
                let message = response["status"]["message"].as_str().unwrap();
                assert!(message.contains(expected) && message.contains("***"), "{url}: {message}");
                assert!(!body.contains(MARKER), "{url}: {body}");
            }
            refused += 1;
        }
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("literal password"), "the refusals are logged: {log}");
    assert!(!log.contains(MARKER), "{log}");
    let metrics = state.metrics().render().unwrap();
    assert!(!metrics.contains(MARKER), "{metrics}");
    let line = format!(r#"kube_once_refusals_total{{reason="literal_password"}} {refused}"#);
    assert!(metrics.lines().any(|l| l == line), "missing `{line}` in:\n{metrics}");
}

#[tokio::test]
async fn metrics_count_patches_and_refusals_of_real_admissions_only() {
    let state = AppState::new(Config::default());
    let bodies = [fixture("create.json"), fixture("dry-run.json"), create_with_annotation("kube-once.io/record", "x")];
    for body in bodies {
        call(server::router(state.clone()), Method::POST, "/mutate", body).await;
    }
    let text = state.metrics().render().unwrap();
    for line in [
        r#"kube_once_admission_requests_total{result="patched"} 2"#,
        r#"kube_once_admission_requests_total{result="refused"} 1"#,
        "kube_once_patches_applied_total 1",
        r#"kube_once_refusals_total{reason="bad_value"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
}

#[tokio::test]
async fn garbage_and_non_reviews_get_400_with_a_reason() {
    let cases: [(&[u8], &str); 5] = [
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"", "not valid JSON"),
        (
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            "expected apiVersion admission.k8s.io/v1",
        ),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "no `request`"),
        (br#"[1, 2, 3]"#, "not an AdmissionReview"),
    ];
    for (body, reason) in cases {
        let (status, text) = call(app(), Method::POST, "/mutate", body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains(reason), "expected `{reason}` in `{text}`");
    }
}

/// The API server writes each key once and every integer in 64 bits. A
/// review that repeats a key, or holds a longer number, where kube-once
/// reads or copies leaves the copy source ambiguous: refused saying what
/// and where, never a guess. In the workload as read with the review: 400;
/// in the app container kube-once.io/run selects, read when the plan needs
/// it: denied.
#[tokio::test]
async fn reviews_the_api_server_never_sends_get_400_not_a_guess() {
    let review = fixture_json("create.json").to_string();
    let cases = [
        (
            r#""containers":["#,
            r#""containers":[],"containers":["#,
            "duplicate key `containers` at /spec/template/spec:",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#""containers":[{"#,
            r#""containers":[{"name":"other","#,
            "duplicate key `name` at /spec/template/spec/containers/0:",
            StatusCode::OK,
        ),
        (
            r#""env":["#,
            r#""env":[],"env":["#,
            "duplicate key `env` at /spec/template/spec/containers/0:",
            StatusCode::OK,
        ),
        (
            r#""resources":{}"#,
            r#""resources":{"limits":{"cpu":18446744073709551616}}"#,
            "the number at /spec/template/spec/containers/0/resources/limits/cpu (1.8446744073709552e19) is outside",
            StatusCode::OK,
        ),
    ];
    for (from, to, reason, expected) in cases {
        let body = review.replacen(from, to, 1);
        assert_ne!(body, review, "`{from}` is in the fixture");
        let (status, text) = call(app(), Method::POST, "/mutate", body).await;
        assert_eq!(status, expected, "{reason}: {text}");
        assert!(text.contains(reason), "expected `{reason}` in `{text}`");
        if expected == StatusCode::OK {
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["response"]["allowed"], false, "{text}");
        }
    }
}

/// A review with the app's env holding DEL (U+007F): valid JSON, which the
/// API server sends as is; the env reaches `kube-once-run` unchanged.
fn review_with_del() -> (Value, Vec<u8>) {
    let mut review = fixture_json("create.json");
    let env = review.pointer_mut("/request/object/spec/template/spec/containers/0/env").unwrap();
    env.as_array_mut().unwrap().push(json!({"name": "D", "value": "x\u{7f}y"}));
    let body = serde_json::to_vec(&review).unwrap();
    assert!(body.contains(&0x7f), "serde_json writes DEL as is");
    (review, body)
}

fn assert_del_reaches_kube_once_run(review: &Value, response: &Value) {
    let mut deployment = review["request"]["object"].clone();
    json_patch::patch(&mut deployment, &decoded_patch(response)).unwrap();
    let containers = deployment["spec"]["template"]["spec"]["initContainers"].as_array().unwrap();
    let run = containers.iter().find(|c| c["name"] == "kube-once-run").unwrap();
    assert!(run["env"].as_array().unwrap().contains(&json!({"name": "D", "value": "x\u{7f}y"})), "{run}");
}

#[tokio::test]
async fn del_in_a_string_is_accepted_and_copied() {
    let (review, body) = review_with_del();
    let (status, text) = call(app(), Method::POST, "/mutate", body).await;
    let response = assert_answers("create.json", status, &text);
    assert_eq!(response["allowed"], true, "{text}");
    assert_del_reaches_kube_once_run(&review, &response);
}

/// The rows above against the real binary over TLS: DEL accepted, a
/// repeated key and a number beyond 64 bits refused.
#[tokio::test]
async fn the_real_binary_takes_del_and_refuses_what_the_api_server_never_sends() {
    let server = support::serve::Serve::new().start().await;
    let (review, body) = review_with_del();
    let reply = server.request("POST", "/mutate", std::str::from_utf8(&body).unwrap()).await.unwrap();
    assert_eq!(support::http::status_code(&reply), Some(200), "{}", String::from_utf8_lossy(&reply));
    let text = String::from_utf8(reply).unwrap();
    let answer: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_del_reaches_kube_once_run(&review, &answer["response"]);

    let review = fixture_json("create.json").to_string();
    for (from, to, reason, expected) in [
        (
            r#""containers":["#,
            r#""containers":[],"containers":["#,
            "duplicate key `containers` at /spec/template/spec:",
            400,
        ),
        (
            r#""resources":{}"#,
            r#""resources":{"limits":{"cpu":18446744073709551616}}"#,
            "the number at /spec/template/spec/containers/0/resources/limits/cpu (1.8446744073709552e19) is outside",
            200,
        ),
    ] {
        let reply = server.request("POST", "/mutate", &review.replacen(from, to, 1)).await.unwrap();
        let text = String::from_utf8_lossy(&reply);
        assert_eq!(support::http::status_code(&reply), Some(expected), "{text}");
        assert!(text.contains(reason), "expected `{reason}` in `{text}`");
        // The selected container is read by the plan: a denial, not a 400.
        assert!(expected == 400 || text.contains(r#""allowed":false"#), "{text}");
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let state = AppState::new(Config::default());
    let (status, _) = call(server::router(state.clone()), Method::GET, "/healthz", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(server::router(state.clone()), Method::GET, "/readyz", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    state.readiness().set_not_ready();
    let (status, _) = call(server::router(state.clone()), Method::GET, "/readyz", Body::empty()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = call(server::router(state), Method::GET, "/healthz", Body::empty()).await;
    assert_eq!(status, StatusCode::OK, "liveness does not depend on readiness");
}

#[tokio::test]
async fn metrics_count_requests_by_result() {
    let state = AppState::new(Config::default());
    for body in [fixture("configmap.json"), fixture("delete.json"), b"nonsense".to_vec()] {
        call(server::router(state.clone()), Method::POST, "/mutate", body).await;
    }
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = server::router(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text =
        String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    for line in [
        r#"kube_once_admission_requests_total{result="skipped"} 2"#,
        r#"kube_once_admission_requests_total{result="bad_request"} 1"#,
        r#"kube_once_admission_requests_total{result="refused"} 0"#,
        r#"kube_once_admission_requests_total{result="patched"} 0"#,
        "kube_once_admission_duration_seconds_count 3",
        "kube_once_patches_applied_total 0",
        r#"kube_once_refusals_total{reason="bad_value"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
}

fn preview_app() -> Router {
    server::preview_router(AppState::new(Config::default()))
}

#[tokio::test]
async fn preview_takes_json_or_yaml_and_answers_patch_object_warnings() {
    let deployment = superset_deployment();
    let yaml = kube_once_core::to_yaml(&deployment).unwrap();
    for body in [serde_json::to_string(&deployment).unwrap(), yaml.clone(), format!("---\n{yaml}---\n")] {
        let (status, text) = call(preview_app(), Method::POST, "/preview", body).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert!(answer["patch"].is_array(), "{text}");
        assert!(answer["warnings"].is_array(), "{text}");
        assert_eq!(answer["object"]["metadata"]["name"], "superset");
        // The patch leads from the input to the object it reports.
        let patch: json_patch::Patch = serde_json::from_value(answer["patch"].clone()).unwrap();
        let mut patched = deployment.clone();
        json_patch::patch(&mut patched, &patch).unwrap();
        assert_eq!(patched, answer["object"]);
    }
}

#[tokio::test]
async fn preview_formats_yaml_and_diff() {
    let body = serde_json::to_string(&superset_deployment()).unwrap();
    let (status, yaml) = call(preview_app(), Method::POST, "/preview?format=yaml", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{yaml}");
    let object: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(object["kind"], "Deployment");

    let (status, diff) = call(preview_app(), Method::POST, "/preview?format=diff", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert!(diff.starts_with("--- a/deployment/analytics/superset\n+++ b/deployment/analytics/superset\n"), "{diff}");
    assert!(diff.lines().any(|line| line.starts_with('+') && line.contains("kube-once-run")), "{diff}");
}

#[tokio::test]
async fn preview_takes_a_whole_manifest_file() {
    // examples/superset.yaml holds a Secret and the Deployment: the Secret is ignored.
    let example = std::fs::read(support::repo().join("examples/superset.yaml")).unwrap();
    let (status, text) = call(preview_app(), Method::POST, "/preview", example).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["object"]["kind"], "Deployment");
    assert!(!answer["patch"].as_array().unwrap().is_empty(), "{text}");
}

#[tokio::test]
async fn preview_of_a_refused_deployment_is_422_with_the_message() {
    let mut deployment = superset_deployment();
    deployment["metadata"]["annotations"]["kube-once.io/record"] = json!("sometimes");
    let (status, text) =
        call(preview_app(), Method::POST, "/preview", serde_json::to_string(&deployment).unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("kube-once.io/record"), "{text}");
}

#[tokio::test]
async fn preview_rejects_what_is_not_one_deployment() {
    let yaml = kube_once_core::to_yaml(&superset_deployment()).unwrap();
    let configmap = kube_once_core::to_yaml(&fixture_json("configmap.json")["request"]["object"]).unwrap();
    let cases = [
        (configmap, "no workload kube-once handles in the body (1 document(s))".to_owned()),
        (format!("{yaml}---\n{yaml}"), "2 workloads in the body".to_owned()),
        (
            yaml.replace("apiVersion: apps/v1\n", "apiVersion: apps/v1beta2\n"),
            "send one of apps/v1 Deployment, apps/v1 StatefulSet, apps/v1 DaemonSet, batch/v1 Job, batch/v1 CronJob, \
             argoproj.io/v1alpha1 Rollout as YAML or JSON\nDeployment analytics/superset (apps/v1beta2): kube-once does \
             not handle this kind"
                .to_owned(),
        ),
        ("{ not json".to_owned(), "not valid YAML".to_owned()),
        ("a: [unclosed".to_owned(), "not valid YAML".to_owned()),
        (String::new(), "no workload kube-once handles in the body (0 document(s))".to_owned()),
    ];
    for (body, reason) in cases {
        let (status, text) = call(preview_app(), Method::POST, "/preview", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains(&reason), "expected `{reason}` in `{text}`");
    }
    let (status, text) = call(preview_app(), Method::POST, "/preview?format=xml", yaml).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("unknown format `xml`"), "{text}");
}

/// Every kind previews as it is admitted: the CronJob's patch is under its
/// job template, and a near-miss annotation elsewhere in the body is named.
#[tokio::test]
async fn preview_answers_for_every_kind() {
    for case in ["statefulset-create", "daemonset-create", "job-create", "cronjob-create", "rollout-create"] {
        let review = fixture_json(&format!("{case}.json"));
        let object = &review["request"]["object"];
        let mut body = kube_once_core::to_yaml(object).unwrap();
        body.push_str(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    kubeonce.io/run: x\n",
        );
        let (status, text) = call(preview_app(), Method::POST, "/preview", body).await;
        assert_eq!(status, StatusCode::OK, "{case}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        let expected = kube_once_core::mutate(object, None, &Default::default()).unwrap();
        assert_eq!(answer["patch"], serde_json::to_value(&expected.patch).unwrap(), "{case}");
        let warnings = answer["warnings"].as_array().unwrap();
        let last = warnings.last().and_then(Value::as_str).unwrap_or_default();
        assert!(last.starts_with("ConfigMap c: annotation kubeonce.io/run is not read by kube-once"), "{case}: {last}");
    }
}

#[tokio::test]
async fn preview_shares_the_alias_budget_among_the_documents() {
    // Aliases add 11,219 nodes to each document: far under the reader's
    // 100,000 per document, but ten of them share one body's 100,000.
    let document = format!(
        "---\na: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [{}]\nc: &c [{}]\nd: [{}]\n",
        ["*a"; 10].join(","),
        ["*b"; 10].join(","),
        ["*c"; 9].join(",")
    );
    let (status, text) = call(preview_app(), Method::POST, "/preview", document.repeat(2)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("no workload kube-once handles in the body (2 document(s))"), "{text}");
    let (status, text) = call(preview_app(), Method::POST, "/preview", document.repeat(10)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("alias nodes per body, shared among up to 11 documents"), "{text}");
}

#[tokio::test]
async fn preview_refuses_a_body_of_more_than_500000_nodes() {
    // 16,700 nests of 30 lists, 1 MiB: 501,002 nodes, each costing memory
    // however small its text. `kube-once preview` reads it (4,000,000).
    let nest = format!("- {}{}\n", "[".repeat(30), "]".repeat(30));
    let (status, text) = call(preview_app(), Method::POST, "/preview", nest.repeat(16_700)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.starts_with(
            "the body is too large to preview: document 1 (line 16667): the input has more than 500000 YAML nodes"
        ),
        "{text}"
    );
    assert!(text.contains("(/preview allows 500000 nodes per body; send the one Deployment, or run `kube-once preview -f FILE`, which allows 4000000)"), "{text}");
    // Under the budget, the same shape is read (and has no Deployment).
    let (status, text) = call(preview_app(), Method::POST, "/preview", nest.repeat(16_000)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("no workload kube-once handles in the body (1 document(s))"), "{text}");
}

#[tokio::test]
async fn preview_is_not_on_the_admission_router_and_mutate_not_on_the_preview_one() {
    let (status, _) = call(app(), Method::POST, "/preview", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(preview_app(), Method::POST, "/mutate", fixture("create.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- real TLS

/// An HTTPS client that trusts only `trusted_cas` and reaches `addr` under the Service DNS name.
fn https_client(trusted_cas: &[&str], addr: SocketAddr, keep_alive: bool) -> reqwest::Client {
    service_client(trusted_cas, addr, keep_alive)
}

struct TestServer {
    handle: ServerHandle,
    bundle: CertBundle,
    client: reqwest::Client,
}

impl TestServer {
    async fn start(options: Timeouts) -> Self {
        let bundle = bundle();
        let handle = support::server::start_with(&bundle, options, true).await;
        let client = https_client(&[&bundle.ca_pem], handle.admission_addr(), true);
        Self { handle, bundle, client }
    }

    fn url(&self, path: &str) -> String {
        url(self.handle.admission_addr(), path)
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> (StatusCode, String) {
        let response = self.client.post(self.url(path)).body(body).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

#[tokio::test]
async fn admission_reviews_over_tls_verified_against_the_service_name() {
    let server = TestServer::start(Timeouts::default()).await;
    // Over TLS, every request fixture gets the answer the router gives in-process (checked against its golden file).
    for name in request_fixtures() {
        let (status, body) = server.post("/mutate", fixture(&name)).await;
        assert_answers(&name, status, &body);
        let (_, in_process) = call(app(), Method::POST, "/mutate", fixture(&name)).await;
        assert_eq!(readable_answer(&body), readable_answer(&in_process), "{name}");
    }
    let (status, body) = server.post("/mutate", b"{\"garbage".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("not valid JSON"), "{body}");

    // The certificate is checked for real: another CA, or another name, fails.
    let stranger = https_client(&[&bundle().ca_pem], server.handle.admission_addr(), true);
    assert!(stranger.get(server.url("/healthz")).send().await.is_err(), "a client trusting another CA connected");
    let wrong_name =
        support::tls::https_client(&[&server.bundle.ca_pem], "other.kube-once.svc", server.handle.admission_addr())
            .unwrap()
            .build()
            .unwrap();
    let wrong_url = format!("https://other.kube-once.svc:{}/healthz", server.handle.admission_addr().port());
    assert!(wrong_name.get(wrong_url).send().await.is_err(), "a name outside the certificate was accepted");

    // Plain HTTP on the TLS port gets nowhere.
    let plain = http_client();
    let plain_url = format!("http://{}/healthz", server.handle.admission_addr());
    assert!(plain.get(plain_url).send().await.map(|r| r.status() != StatusCode::OK).unwrap_or(true));
}

#[tokio::test]
async fn preview_listener_is_plain_http() {
    let server = TestServer::start(Timeouts::default()).await;
    let preview_addr = server.handle.preview_addr().unwrap();
    let yaml = kube_once_core::to_yaml(&superset_deployment()).unwrap();
    let response =
        http_client().post(format!("http://{preview_addr}/preview?format=yaml")).body(yaml).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let object: Value = serde_yaml_ng::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(object["metadata"]["name"], "superset");
}

/// `create.json`, padded with trailing whitespace (still valid JSON) to `len` bytes.
fn review_of_size(len: usize) -> Vec<u8> {
    let mut body = serde_json::to_vec(&fixture_json("create.json")).unwrap();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn body_limit_is_7_mib() {
    let server = TestServer::start(Timeouts::default()).await;
    let (status, body) = server.post("/mutate", review_of_size(BODY_LIMIT)).await;
    let response = assert_answers("create.json", status, &body);
    assert_eq!(response["allowed"], true);

    let (status, _) = server.post("/mutate", review_of_size(BODY_LIMIT + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // The connections are still good after a rejection.
    let (status, _) = server.post("/mutate", fixture("delete.json")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn one_megabyte_deployment_is_answered() {
    let server = TestServer::start(Timeouts::default()).await;
    let mut review = fixture_json("create.json");
    let env = review["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["env"].as_array_mut().unwrap();
    for i in 0..8000 {
        env.push(json!({"name": format!("SETTING_{i:05}"), "value": "x".repeat(100)}));
    }
    let body = serde_json::to_vec(&review).unwrap();
    assert!(body.len() > 1_000_000, "{} bytes", body.len());

    let (status, text) = server.post("/mutate", body).await;
    let response = assert_answers("create.json", status, &text);
    assert_eq!(response["allowed"], true, "{text}");
    let mut deployment = review["request"]["object"].clone();
    json_patch::patch(&mut deployment, &decoded_patch(&response)).unwrap();
    let init = deployment.pointer("/spec/template/spec/initContainers").unwrap().as_array().unwrap();
    let run = init.iter().find(|c| c["name"] == "kube-once-run").unwrap();
    let env = run["env"].as_array().unwrap();
    // The app container's 8001 variables are copied over, KUBE_ONCE_* appended after them.
    assert!(env.len() > 8001, "{} env vars", env.len());
    assert_eq!(env[8000]["name"], "SETTING_07999");
}

#[tokio::test]
async fn readyz_fails_at_once_after_shutdown_while_requests_are_still_served() {
    let server = TestServer::start(Timeouts { grace_period: Duration::from_secs(600), ..Default::default() }).await;
    let response = server.client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    server.handle.shutdown();
    let response = server.client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // During the grace period, admissions are still answered, on new connections too.
    let fresh = https_client(&[&server.bundle.ca_pem], server.handle.admission_addr(), false);
    let response = fresh.post(server.url("/mutate")).body(fixture("update.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn after_the_grace_period_the_server_drains_and_stops() {
    let server = TestServer::start(Timeouts { grace_period: Duration::ZERO, ..Default::default() }).await;
    let response = server.client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let addr = server.handle.admission_addr();

    server.handle.shutdown();
    // A keep-alive connection is open: the drain must close it, not wait for it.
    tokio::time::timeout(Duration::from_secs(20), server.handle.stopped()).await.expect("the server did not stop");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting connections after the drain");
}

#[tokio::test]
async fn rotated_certificate_files_are_served_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let files = CertFiles { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") };
    let (old, new) = (bundle(), bundle());
    std::fs::write(&files.cert, &old.cert_pem).unwrap();
    std::fs::write(&files.key, &old.key_pem).unwrap();

    let store = Arc::new(files.load().await.unwrap());
    tokio::spawn(tls::watch_files(store.clone(), files.clone(), Duration::from_millis(20)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle =
        server::serve_on(listener, None, AppState::new(Config::default()), store, Timeouts::default()).unwrap();
    let addr = handle.admission_addr();
    // During the rotation both CAs are in the caBundle, as they would be in a cluster.
    let cas = [old.ca_pem.as_str(), new.ca_pem.as_str()];
    assert_eq!(served_leaf(addr, SERVICE_HOST, &cas).await.unwrap(), leaf_of(&old));

    // Requests keep flowing, on a kept-alive connection and on fresh ones.
    let rotating = Arc::new(AtomicBool::new(true));
    let traffic = tokio::spawn({
        let rotating = rotating.clone();
        let clients = [https_client(&cas, addr, true), https_client(&cas, addr, false)];
        async move {
            let mut answered = 0;
            while rotating.load(Ordering::Relaxed) || answered < 2 {
                for client in &clients {
                    let response = client.post(url(addr, "/mutate")).body(fixture("create.json")).send().await;
                    assert_eq!(response.expect("a request failed during the rotation").status(), StatusCode::OK);
                    answered += 1;
                }
            }
            answered
        }
    });

    // Written in place, one file after the other: the poller may see the new
    // certificate with the old key in between, and must keep the old pair then.
    std::fs::write(&files.cert, &new.cert_pem).unwrap();
    std::fs::write(&files.key, &new.key_pem).unwrap();

    support::wait::until("the new certificate to be served", || async {
        served_leaf(addr, SERVICE_HOST, &cas).await.unwrap() == leaf_of(&new)
    })
    .await
    .unwrap();
    rotating.store(false, Ordering::Relaxed);
    assert!(traffic.await.unwrap() >= 2);
}

#[test]
fn a_mismatched_pair_never_replaces_the_served_certificate() {
    let (old, new) = (bundle(), bundle());
    let store = CertStore::from_bundle(&old).unwrap();
    let error = store.replace(new.cert_pem.as_bytes(), old.key_pem.as_bytes()).unwrap_err();
    assert!(format!("{error:#}").contains("does not belong to the certificate"), "{error:#}");
    let truncated = &new.cert_pem.as_bytes()[..new.cert_pem.len() / 2];
    assert!(store.replace(truncated, new.key_pem.as_bytes()).is_err());
    assert!(store.replace(new.cert_pem.as_bytes(), b"").is_err());
    assert_eq!(store.current_leaf_der().unwrap(), leaf_of(&old));

    store.replace_bundle(&new).unwrap();
    assert_eq!(store.current_leaf_der().unwrap(), leaf_of(&new));
}

// ---------------------------------------------------------------- any input

fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z~/.-]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map("[a-zA-Z/.~-]{0,12}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// `kube-once.io/` annotations with arbitrary values (strings mostly, other JSON too).
fn arbitrary_annotations() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let names = prop_oneof![
        Just("run"),
        Just("container"),
        Just("database-url-env"),
        Just("database-url"),
        Just("lock-url-env"),
        Just("lock-name"),
        Just("key"),
        Just("record"),
        Just("timeout"),
        Just("preemptible"),
        Just("status"),
    ];
    let value = prop_oneof![4 => ".{0,24}".prop_map(Value::from), 1 => arbitrary_json()];
    proptest::collection::btree_map(names.prop_map(|name| format!("kube-once.io/{name}")), value, 0..5)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}

proptest::proptest! {
    #[test]
    fn any_body_gets_an_answer_or_a_reason(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        if let Err(reason) = server::admission::review(&body, &Config::default()) {
            proptest::prop_assert!(!reason.0.is_empty());
        }
    }

    /// Whatever shape a Deployment's fields take, the review is answered with
    /// its uid (allowed, or denied with a message), never a panic.
    #[test]
    fn any_deployment_shape_is_answered_with_the_uid(
        template in arbitrary_json(),
        annotations in proptest::prop_oneof![arbitrary_json(), arbitrary_annotations()],
    ) {
        let mut review = fixture_json("create.json");
        review["request"]["object"]["spec"]["template"] = template;
        review["request"]["object"]["metadata"]["annotations"] = annotations;
        let reviewed = server::admission::review(&serde_json::to_vec(&review).unwrap(), &Config::default()).unwrap();
        proptest::prop_assert_eq!(&reviewed.response.response.uid, "0df28fbd-5f5f-11e8-bc74-36e6bb280816");
        if !reviewed.response.response.allowed {
            proptest::prop_assert!(!reviewed.response.response.status.unwrap().message.is_empty());
        }
    }
}
