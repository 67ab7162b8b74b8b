//! `POST /preview` on the localhost listener: one Deployment (YAML or JSON)
//! in, what the webhook would do to it out.
//!
//! - default: JSON `{"patch": [...], "object": {...}, "warnings": [...]}`
//! - `?format=yaml`: the mutated Deployment as YAML
//! - `?format=diff`: a unified diff of the Deployment's YAML, before → after
//!   (empty when nothing changes)
//!
//! The body is parsed like `kube-once preview -f` parses a file; other
//! documents beside the one Deployment are ignored. A refusal is 422 with
//! the refusal message; a body without exactly one Deployment is 400 with
//! the reason.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use kube_once_core::render;

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
    let mutation = match kube_once_core::mutate(&deployment, None, state.config()) {
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
                let name = format!("deployment/{}", kube_once_core::manifest::describe(&deployment));
                let diff = render::unified_diff(&name, &before, &after);
                text(StatusCode::OK, "text/x-diff; charset=utf-8", diff)
            }
            (Err(error), _) | (_, Err(error)) => internal(error),
        },
    }
}

/// The one Deployment of a JSON or YAML body, parsed like `kube-once preview`
/// parses files. Other documents (the Secret or Service of the same manifest
/// file) are ignored, so a whole manifest file can be posted.
fn parse_deployment(body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|error| format!("the body is not UTF-8 text: {error}"))?;
    let documents = kube_once_core::manifest::parse_documents(text).map_err(|error| format!("{error:#}"))?;
    let count = documents.len();
    let mut deployments = documents.into_iter().filter(kube_once_core::manifest::is_deployment);
    match (deployments.next(), deployments.next()) {
        (Some(deployment), None) => Ok(deployment),
        (None, _) => {
            Err(format!("no apps/v1 Deployment in the body ({count} document(s)); send one Deployment as YAML or JSON"))
        }
        (Some(_), Some(_)) => Err(format!(
            "{} Deployments in the body; send one (`kube-once preview -f FILE` takes many)",
            2 + deployments.count()
        )),
    }
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
