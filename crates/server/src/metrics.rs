//! Prometheus metrics of the admission endpoint, served at `GET /metrics` in
//! the OpenMetrics text format.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use kube_once_core::Reason;

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::AppState;
use super::admission::{Outcome, Reviewed};
use super::limits::Shed;
use super::migrations::Outcome as MigrationOutcome;

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Label = [(&'static str, &'static str); 1];

pub struct Metrics {
    registry: Registry,
    /// One counter of the `admission_requests` family per [`Outcome`], in `Outcome::ALL` order.
    requests: [Counter; Outcome::ALL.len()],
    duration: Histogram,
    patches_applied: Counter,
    /// One counter of the `refusals` family per [`Reason`], in `Reason::ALL` order.
    refusals: [Counter; Reason::ALL.len()],
    /// `admissions_shed` per [`Shed`] reason, in `Shed::ALL` order.
    shed: [Counter; Shed::ALL.len()],
    connections_refused: Counter,
    migrations: MigrationMetrics,
}

type WorkloadLabels = [(&'static str, String); 2];
type OutcomeLabels = [(&'static str, String); 3];

/// The migration outcomes the watcher records (`crate::migrations`): a
/// handle on the families registered with the server's other metrics.
#[derive(Clone, Default)]
pub struct MigrationMetrics {
    total: Family<OutcomeLabels, Counter>,
    last_failure: Family<WorkloadLabels, Gauge<f64, AtomicU64>>,
}

impl std::fmt::Debug for MigrationMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationMetrics").finish_non_exhaustive()
    }
}

impl MigrationMetrics {
    /// Count one finished run of `kube-once-run` of `deployment`, which ended at `at` (Unix seconds).
    pub fn record(&self, namespace: &str, deployment: &str, outcome: MigrationOutcome, at: f64) {
        let workload = [("namespace", namespace.to_owned()), ("deployment", deployment.to_owned())];
        let [namespace, deployment] = workload.clone();
        self.total.get_or_create(&[namespace, deployment, ("outcome", outcome.as_str().to_owned())]).inc();
        if outcome.is_failure() {
            let gauge = self.last_failure.get_or_create(&workload);
            // A replay of an older failure must not move the time back.
            if gauge.get() < at {
                gauge.set(at);
            }
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kube_once");
        let family = Family::<Label, Counter>::default();
        // Every result appears from the start (at 0), so rate() and alerts
        // work before the first refusal ever happens; the hot path then
        // increments its counter without a label lookup.
        let requests = Outcome::ALL.map(|outcome| family.get_or_create_owned(&[("result", outcome.as_str())]));
        registry.register(
            "admission_requests",
            "Admission requests by result: patched, unchanged, skipped, refused, bad_request, timeout",
            family,
        );
        // 0.5 ms .. ~4 s: a patch takes well under a millisecond, a 3 MiB object tens.
        let duration = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register_with_unit(
            "admission_duration",
            "Time to answer an admission request, from its body received to the answer ready",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        let patches_applied = Counter::default();
        registry.register(
            "patches_applied",
            "Patches returned for real (not dryRun) admissions: Deployments the webhook changed",
            patches_applied.clone(),
        );
        let family = Family::<Label, Counter>::default();
        let refusals = Reason::ALL.map(|reason| family.get_or_create_owned(&[("reason", reason.as_str())]));
        registry.register(
            "refusals",
            "Real (not dryRun) admissions denied for a malformed kube-once.io/ annotation, by reason",
            family,
        );
        let shed_family = Family::<Label, Counter>::default();
        let shed = Shed::ALL.map(|shed| shed_family.get_or_create_owned(&[("reason", shed.as_str())]));
        registry.register(
            "admissions_shed",
            "Admission requests answered without review because the server was at its admission memory budget: \
             queue_full (429), queue_timeout (503)",
            shed_family,
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections closed at once because the listener was at --max-connections",
            connections_refused.clone(),
        );
        let migrations = MigrationMetrics::default();
        registry.register(
            "migrations",
            "Finished runs of kube-once-run in injected pods, by namespace, deployment and outcome: ran, skipped, \
             failed, lock_timeout, backing_off (counted by the replica holding the events Lease)",
            migrations.total.clone(),
        );
        registry.register_with_unit(
            "migration_last_failure_timestamp",
            "When kube-once-run last failed (failed or lock_timeout) in a pod of the deployment, as Unix time",
            prometheus_client::registry::Unit::Seconds,
            migrations.last_failure.clone(),
        );
        Self { registry, requests, duration, patches_applied, refusals, shed, connections_refused, migrations }
    }
}

impl Metrics {
    /// Count one admission request that got no review answer (400, 408).
    pub fn record(&self, outcome: Outcome, dry_run: bool, elapsed: Duration) {
        self.requests[outcome as usize].inc();
        self.duration.observe(elapsed.as_secs_f64());
        if !dry_run && outcome == Outcome::Patched {
            self.patches_applied.inc();
        }
    }

    /// Count one answered AdmissionReview, its refusal reason included.
    pub fn record_review(&self, reviewed: &Reviewed, elapsed: Duration) {
        self.record(reviewed.outcome, reviewed.dry_run, elapsed);
        if let Some(reason) = reviewed.refusal
            && !reviewed.dry_run
        {
            self.refusals[reason as usize].inc();
        }
    }

    /// Count one admission request turned away by the admission gate.
    pub fn record_shed(&self, shed: Shed) {
        self.shed[shed as usize].inc();
    }

    /// Count one connection closed at the connection cap.
    pub fn record_connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// The migration outcome metrics, for the watcher.
    pub fn migrations(&self) -> MigrationMetrics {
        self.migrations.clone()
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Middleware outside the request timeout: counts the 408s of `/mutate`,
/// which the timeout answers without the handler (that counts the rest).
pub async fn count_timeouts(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let admission = request.uri().path() == "/mutate";
    let started = Instant::now();
    let response = next.run(request).await;
    if admission && response.status() == StatusCode::REQUEST_TIMEOUT {
        state.metrics().record(Outcome::Timeout, false, started.elapsed());
    }
    response
}

#[cfg(test)]
mod tests {
    use kube_once_core::Config;
    use serde_json::json;

    use super::*;
    use crate::admission;

    fn review(annotations: serde_json::Value, dry_run: bool) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "namespace": "shop",
                "name": "web",
                "operation": "CREATE",
                "object": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
                    "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop:1"}]}}}
                },
                "dryRun": dry_run
            }
        }))
        .unwrap()
    }

    fn line(text: &str, name: &str) -> String {
        text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no `{name}` in:\n{text}")).to_owned()
    }

    #[test]
    fn refusals_are_counted_by_reason_for_real_admissions_only() {
        let metrics = Metrics::default();
        let config = Config::default();
        let before = metrics.render().unwrap();
        for reason in Reason::ALL {
            let label = format!("kube_once_refusals_total{{reason=\"{}\"}} 0", reason.as_str());
            assert!(before.lines().any(|l| l == label), "every reason starts at 0: missing `{label}` in:\n{before}");
        }
        for (annotations, dry_run) in [
            (json!({"kube-once.io/rnu": "flask db upgrade"}), false),
            (json!({"kube-once.io/rnu": "flask db upgrade"}), false),
            (json!({"kube-once.io/run": "x", "kube-once.io/timeout": "soon"}), false),
            (json!({"kube-once.io/run": "x", "kube-once.io/timeout": "soon"}), true),
            (json!({"kube-once.io/run": "x"}), false),
        ] {
            let reviewed = admission::review(&review(annotations, dry_run), &config).unwrap();
            metrics.record_review(&reviewed, Duration::ZERO);
        }
        let text = metrics.render().unwrap();
        assert_eq!(
            line(&text, r#"kube_once_refusals_total{reason="unknown_annotation"}"#),
            r#"kube_once_refusals_total{reason="unknown_annotation"} 2"#
        );
        assert_eq!(
            line(&text, r#"kube_once_refusals_total{reason="bad_value"}"#),
            r#"kube_once_refusals_total{reason="bad_value"} 1"#
        );
        assert_eq!(
            line(&text, r#"kube_once_refusals_total{reason="needs_run"}"#),
            r#"kube_once_refusals_total{reason="needs_run"} 0"#
        );
        assert_eq!(
            line(&text, r#"kube_once_admission_requests_total{result="refused"}"#),
            r#"kube_once_admission_requests_total{result="refused"} 4"#
        );
        assert_eq!(line(&text, "kube_once_patches_applied_total"), "kube_once_patches_applied_total 1");
    }

    #[test]
    fn migration_outcomes_are_counted_per_deployment_and_the_last_failure_only_moves_forward() {
        let metrics = Metrics::default();
        let migrations = metrics.migrations();
        migrations.record("shop", "web", MigrationOutcome::Failed, 1_700_000_100.0);
        migrations.record("shop", "web", MigrationOutcome::Failed, 1_700_000_050.0);
        migrations.record("shop", "web", MigrationOutcome::Ran, 1_700_000_200.0);
        let text = metrics.render().unwrap();
        let failed = r#"kube_once_migrations_total{namespace="shop",deployment="web",outcome="failed"}"#;
        assert_eq!(line(&text, failed), format!("{failed} 2"));
        let ran = r#"kube_once_migrations_total{namespace="shop",deployment="web",outcome="ran"}"#;
        assert_eq!(line(&text, ran), format!("{ran} 1"));
        let last = r#"kube_once_migration_last_failure_timestamp_seconds{namespace="shop",deployment="web"}"#;
        assert_eq!(line(&text, last), format!("{last} 1700000100.0"));
    }

    /// The 408 is the timeout layer's answer, so the handler never counts it.
    #[tokio::test]
    async fn admission_requests_that_time_out_are_counted() {
        use axum::Router;
        use axum::body::Body;
        use axum::routing::post;
        use tower::ServiceExt;

        let state = AppState::new(Config::default());
        let never = || std::future::pending::<()>();
        let app = Router::new()
            .route("/mutate", post(never))
            .route("/preview", post(never))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_millis(1),
            ))
            .layer(axum::middleware::from_fn_with_state(state.clone(), count_timeouts));
        for path in ["/mutate", "/preview", "/mutate"] {
            let request = axum::http::Request::post(path).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT, "{path}");
        }
        let text = state.metrics().render().unwrap();
        let timeouts = r#"kube_once_admission_requests_total{result="timeout"}"#;
        assert_eq!(line(&text, timeouts), format!("{timeouts} 2"), "only /mutate is an admission request");
    }
}
