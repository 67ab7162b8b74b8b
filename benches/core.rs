//! The admission hot path without sockets: AdmissionReview bytes in →
//! parse → plan → inject → patch → AdmissionReview bytes out
//! (`server::admission::review`, what `POST /mutate` calls).
//!
//! Cases: a small Deployment, the annotated example, a Deployment with
//! 5,000 env vars (~1 MB), and the review bench/load.sh posts. Targets
//! (docs/dev/performance.md): example ≤ 30 µs, 1 MB ≤ 15 ms, and the 1 MB object's patch
//! no bigger than the small one's (the patch follows the change, not the
//! object). Run: `cargo bench --bench core`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kube_once_core::Config;
use kube_once_server::admission;
use serde_json::{Value, json};
use std::hint::black_box;

/// One admission, end to end, exactly as `POST /mutate` does it: every
/// step the API server waits for except TLS and HTTP.
fn admit(body: &[u8], config: &Config) -> Vec<u8> {
    match admission::review(body, config) {
        Ok(reviewed) => serde_json::to_vec(&reviewed.response).unwrap_or_default(),
        Err(bad_request) => bad_request.0.into_bytes(),
    }
}

fn small_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "annotations": {"kube-once.io/run": "flask db upgrade"},
        },
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web",
                    "image": "registry.example/web:1.4.2",
                    "env": [{"name": "DATABASE_URL", "value": "postgres://app@db/app"}],
                }]},
            },
        },
    })
}

/// The Deployment of the example of docs/annotations.md (examples/superset.yaml).
fn example_deployment() -> Value {
    let documents = kube_once_core::parse_documents(include_str!("../examples/superset.yaml")).unwrap_or_default();
    documents.into_iter().find(kube_once_core::is_deployment).unwrap_or_default()
}

/// The small Deployment with 5,000 env vars of ~200 bytes: about 1 MB, a
/// third of what the API server accepts for one object.
fn huge_deployment() -> Value {
    let mut deployment = small_deployment();
    let filler = "x".repeat(180);
    let env: Vec<Value> =
        (0..5_000).map(|i| json!({"name": format!("SETTING_{i:04}"), "value": format!("{i:04}{filler}")})).collect();
    if let Some(container_env) = deployment.pointer_mut("/spec/template/spec/containers/0/env")
        && let Some(list) = container_env.as_array_mut()
    {
        list.extend(env);
    }
    deployment
}

fn review(object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin"},
            "object": object,
            "oldObject": null,
        },
    }))
    .unwrap_or_default()
}

/// Size of the decoded JSON patch in the reply (what the API server applies).
fn patch_bytes(reply: &[u8]) -> usize {
    let reply: Value = serde_json::from_slice(reply).unwrap_or_default();
    reply["response"]["patch"]
        .as_str()
        .and_then(|patch| base64_simd::STANDARD.decode_to_vec(patch).ok())
        .map_or(0, |patch| patch.len())
}

fn admission(c: &mut Criterion) {
    let config = Config::default();
    let cases = [
        ("small", review(small_deployment())),
        ("example", review(example_deployment())),
        ("env-5000", review(huge_deployment())),
        // What bench/load.sh posts: the review as the API server sends it.
        ("load-review", include_bytes!("../tests/fixtures/perf/review.json").to_vec()),
    ];
    for (name, body) in &cases {
        eprintln!("case {name}: review {} bytes, patch {} bytes", body.len(), patch_bytes(&admit(body, &config)));
    }
    let mut group = c.benchmark_group("admission");
    for (name, body) in &cases {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| b.iter(|| admit(black_box(body), &config)));
    }
    group.finish();
}

criterion_group!(benches, admission);
criterion_main!(benches);
