//! `POST /preview` on the localhost listener: one Deployment (YAML or JSON)
//! in, what the webhook would do to it out.
//!
//! - default: JSON `{"patch": [...], "object": {...}, "warnings": [...]}`
//! - `?format=yaml`: the mutated Deployment as YAML
//! - `?format=diff`: a unified diff of the Deployment's YAML, before → after
//!   (empty when nothing changes)
//!
//! A refusal is 422 with the refusal message; a body that is not one
//! Deployment is 400 with the reason.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::core::render;

#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    format: Option<String>,
}

enum Format {
    Json,
    Yaml,
    Diff,
}

pub async fn handle(State(state): State<AppState>, Query(query): Query<PreviewQuery>, body: Bytes) -> Response {
    let format = match query.format.as_deref() {
        None | Some("json") => Format::Json,
        Some("yaml") => Format::Yaml,
        Some("diff") => Format::Diff,
        Some(other) => return bad_request(format!("unknown format `{other}`; use format=json, yaml or diff")),
    };
    let deployment = match parse_deployment(&body) {
        Ok(deployment) => deployment,
        Err(reason) => return bad_request(reason),
    };
    let mutation = match crate::core::mutate(&deployment, None, state.config()) {
        Ok(mutation) => mutation,
        Err(refusal) => {
            return text(StatusCode::UNPROCESSABLE_ENTITY, "text/plain; charset=utf-8", refusal.to_string() + "\n");
        }
    };
    match format {
        Format::Json => {
            let answer = json!({"patch": mutation.patch, "object": mutation.object, "warnings": mutation.warnings});
            (StatusCode::OK, axum::Json(answer)).into_response()
        }
        Format::Yaml => match render::to_yaml(&mutation.object) {
            Ok(yaml) => text(StatusCode::OK, "application/yaml", yaml),
            Err(error) => internal(error),
        },
        Format::Diff => match (render::to_yaml(&deployment), render::to_yaml(&mutation.object)) {
            (Ok(before), Ok(after)) => {
                let name = deployment.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("deployment");
                let diff = render::unified_diff(&format!("deployment/{name}"), &before, &after);
                text(StatusCode::OK, "text/x-diff; charset=utf-8", diff)
            }
            (Err(error), _) | (_, Err(error)) => internal(error),
        },
    }
}

/// One Deployment from a JSON or YAML body.
fn parse_deployment(body: &[u8]) -> Result<Value, String> {
    let starts_like_json = body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');
    let object: Value = if starts_like_json {
        serde_json::from_slice(body).map_err(|error| format!("the body is not valid JSON: {error}"))?
    } else {
        let mut documents = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_slice(body) {
            let value = Value::deserialize(document).map_err(|error| format!("the body is not valid YAML: {error}"))?;
            if !value.is_null() {
                documents.push(value);
            }
        }
        match <[Value; 1]>::try_from(documents) {
            Ok([object]) => object,
            Err(documents) => {
                return Err(format!(
                    "the body holds {} YAML documents; send exactly one Deployment \
                     (`kube-once preview -f FILE` takes many)",
                    documents.len()
                ));
            }
        }
    };
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != "apps/v1" || kind != "Deployment" {
        return Err(format!(
            "expected a Deployment (apiVersion apps/v1, kind Deployment), got apiVersion `{api_version}` and kind `{kind}`"
        ));
    }
    Ok(object)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn bad_request(reason: String) -> Response {
    text(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", reason + "\n")
}

fn internal(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "cannot render the preview");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain; charset=utf-8",
        format!("cannot render the preview: {error}\n"),
    )
}
