//! `POST /preview` on the localhost listener: a manifest (YAML or JSON, one
//! workload of a supported kind, [`kube_once_core::Kind`], among any other
//! documents) in, what the webhook would do to that workload out. Read and rendered by exactly what
//! `kube-once preview` uses (`kube_once_core::preview`):
//!
//! - default (`format=json`): `{"patch": [...], "object": {...}, "warnings": [...]}`
//! - `?format=yaml`: the body's documents as `kube-once preview -o yaml`
//!   prints them (unchanged ones byte for byte, the workload mutated)
//! - `?format=diff`: a unified diff of the workload, before → after
//!   (empty when nothing changes)
//! - `?format=patch`: the RFC 6902 patch
//!
//! A refusal is 422 with its message; a body without exactly one workload,
//! or that is not a manifest, is 400 with the reason. Reading runs on the
//! blocking pool, one body at a time, under a deadline: a hostile body
//! (deep nesting, alias bombs, megabytes of YAML) never holds an async
//! worker, so `/healthz` and `/mutate` stay responsive; a preview that waits
//! more than 2 s for its turn gets 503 with `Retry-After`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use super::{AppState, BODY_LIMIT};
use kube_once_core::yaml::{ErrorKind, Limits};
use kube_once_core::{self as core, Format};

#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    format: Option<String>,
}

/// How long one preview may take before the client gets 503; the work
/// itself is linear in the body (bounded by [`BODY_LIMIT`]) and ends soon after.
const DEADLINE: Duration = Duration::from_secs(10);

/// Nodes aliases may add to the whole body. The reader bounds them per
/// document (100,000), which left a body of many small documents bounded by
/// its size only: 590 documents of 170 bytes, each just under the limit, a
/// 100 KB body, took 2 GB (bench/preview_hostile.sh). So the budget of one
/// document is shared among all the documents of the body.
const ALIAS_NODES: usize = 100_000;

/// Nodes one body may hold, read or mutated (the reader's
/// [`Limits::max_nodes`]; `kube-once preview` on a file allows
/// [`Limits::MAX_NODES`]). The server is memory-bound: a parsed node costs
/// 60-130 bytes whatever its size in the body, so a 7 MiB body of tiny nodes
/// (`[[[…]]]` nests) took 470 MB, past the chart's 352 MiB. 500,000 nodes
/// is 65 MB at worst, and twice what a 3 MiB manifest (the API server's
/// request limit) holds at the densest real YAML (12 bytes a node;
/// the Deployment files of tests/fixtures/manifests average 17).
const PREVIEW_NODES: usize = 500_000;

/// One preview at a time: on a 2-core pod the other core stays for `/mutate`.
static SLOTS: Semaphore = Semaphore::const_new(1);

/// How long a preview waits for its turn before the client gets 503.
const QUEUE: Duration = Duration::from_secs(2);

type Answer = (StatusCode, &'static str, String);

pub async fn handle(State(state): State<AppState>, Query(query): Query<PreviewQuery>, body: Bytes) -> Response {
    let format = match query.format.as_deref().unwrap_or("json").parse::<Format>() {
        Ok(format) => format,
        Err(_) => {
            let other = query.format.unwrap_or_default();
            return plain(
                StatusCode::BAD_REQUEST,
                format!("unknown format `{other}`; use format=json, yaml, diff or patch"),
            );
        }
    };
    let Ok(Ok(permit)) = tokio::time::timeout(QUEUE, SLOTS.acquire()).await else {
        let mut response =
            plain(StatusCode::SERVICE_UNAVAILABLE, "other previews are running; retry in a moment".to_owned());
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return response;
    };
    let work = tokio::task::spawn_blocking(move || {
        let answer = answer(&body, format, &state);
        drop(permit);
        answer
    });
    match tokio::time::timeout(DEADLINE, work).await {
        Ok(Ok((status, content_type, body))) => (status, [(header::CONTENT_TYPE, content_type)], body).into_response(),
        Ok(Err(error)) => {
            tracing::error!(%error, "the preview task failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "the preview failed; see the server log".to_owned())
        }
        Err(_) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the preview took longer than {}s; send a smaller manifest", DEADLINE.as_secs()),
        ),
    }
}

/// The whole answer, computed off the async workers.
fn answer(body: &[u8], format: Format, state: &AppState) -> Answer {
    const TEXT: &str = "text/plain; charset=utf-8";
    let bad = |reason: String| (StatusCode::BAD_REQUEST, TEXT, reason + "\n");
    let Ok(text) = std::str::from_utf8(body) else {
        return bad("the body is not UTF-8 text; send a Deployment as YAML or JSON".to_owned());
    };
    let documents = document_markers(text) + 1;
    let limits = Limits {
        max_bytes: BODY_LIMIT,
        alias_nodes: ALIAS_NODES / documents,
        max_nodes: PREVIEW_NODES,
        ..Limits::default()
    };
    let preview = match core::preview(text, state.config(), &limits) {
        Ok(preview) => preview,
        Err(error) if error.kind == ErrorKind::TooManyAliases && documents > 1 => {
            return bad(format!(
                "the body is not a valid manifest: {error} (/preview allows {ALIAS_NODES} alias nodes per body, \
                 shared among up to {documents} documents)"
            ));
        }
        Err(error) if error.kind == ErrorKind::TooManyNodes => {
            return bad(format!(
                "the body is too large to preview: {error} (/preview allows {PREVIEW_NODES} nodes per body; send \
                 the one Deployment, or run `kube-once preview -f FILE`, which allows {})",
                Limits::MAX_NODES
            ));
        }
        Err(error) => return bad(format!("the body is not a valid manifest: {error}")),
    };
    let count = preview.documents.iter().filter(|d| d.holds_value).count();
    let mut deployments = preview.workloads();
    let deployment = match (deployments.next(), deployments.next()) {
        (Some(deployment), None) => deployment,
        (None, _) => {
            // What was sent instead, when it carries kube-once annotations.
            let notes: String = preview.warnings().map(|note| format!("\n{note}")).collect();
            return bad(format!(
                "no workload kube-once handles in the body ({count} document(s)); send one of {} as YAML or JSON{notes}",
                core::Kind::supported_list()
            ));
        }
        (Some(_), Some(_)) => {
            return bad(format!(
                "{} workloads in the body; send one (`kube-once preview -f FILE` takes many)",
                2 + deployments.count()
            ));
        }
    };
    let mutation = match &deployment.outcome {
        Ok(mutation) => mutation,
        Err(refusal) => return (StatusCode::UNPROCESSABLE_ENTITY, TEXT, refusal.to_string() + "\n"),
    };
    match format {
        Format::Json => {
            // The notes about the other documents (near-miss annotations)
            // come after the workload's own warnings.
            let mut warnings = mutation.warnings.clone();
            warnings.extend(preview.documents.iter().flat_map(|d| d.notes.iter().cloned()));
            let answer = json!({"patch": mutation.patch, "object": mutation.object, "warnings": warnings});
            (StatusCode::OK, "application/json", answer.to_string())
        }
        // Only `json` can fail to render, and it is answered above.
        Format::Yaml => (StatusCode::OK, "application/yaml", preview.render(Format::Yaml).unwrap_or_default()),
        Format::Diff => {
            (StatusCode::OK, "text/x-diff; charset=utf-8", preview.render(Format::Diff).unwrap_or_default())
        }
        Format::Patch => {
            (StatusCode::OK, "application/json-patch+json", preview.render(Format::Patch).unwrap_or_default())
        }
    }
}

/// Lines that may start or end a document (`---`, `...`): the body has at
/// most one document more than that.
fn document_markers(text: &str) -> usize {
    text.lines().filter(|line| line.starts_with("---") || line.starts_with("...")).count()
}

fn plain(status: StatusCode, reason: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], reason + "\n").into_response()
}
