//! Prometheus metrics of the admission endpoint, served at `GET /metrics` in
//! the OpenMetrics text format.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::admission::Outcome;
use super::limits::Shed;

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type ResultLabel = [(&'static str, &'static str); 1];
type ReasonLabel = [(&'static str, &'static str); 1];

pub struct Metrics {
    registry: Registry,
    /// One counter of the `admission_requests` family per [`Outcome`], in `Outcome::ALL` order.
    requests: [Counter; Outcome::ALL.len()],
    duration: Histogram,
    patches_applied: Counter,
    refusals: Counter,
    /// `admissions_shed` per [`Shed`] reason, in `Shed::ALL` order.
    shed: [Counter; Shed::ALL.len()],
    connections_refused: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kube_once");
        let family = Family::<ResultLabel, Counter>::default();
        // Every result appears from the start (at 0), so rate() and alerts
        // work before the first refusal ever happens; the hot path then
        // increments its counter without a label lookup.
        let requests = Outcome::ALL.map(|outcome| family.get_or_create_owned(&[("result", outcome.as_str())]));
        registry.register(
            "admission_requests",
            "Admission requests by result: patched, unchanged, skipped, refused, bad_request",
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
        let refusals = Counter::default();
        registry.register(
            "refusals",
            "Real (not dryRun) admissions denied for a malformed kube-once.io/ annotation",
            refusals.clone(),
        );
        let shed_family = Family::<ReasonLabel, Counter>::default();
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
        Self { registry, requests, duration, patches_applied, refusals, shed, connections_refused }
    }
}

impl Metrics {
    /// Count one answered admission request.
    pub fn record(&self, outcome: Outcome, dry_run: bool, elapsed: Duration) {
        self.requests[outcome as usize].inc();
        self.duration.observe(elapsed.as_secs_f64());
        if !dry_run {
            match outcome {
                Outcome::Patched => {
                    self.patches_applied.inc();
                }
                Outcome::Refused => {
                    self.refusals.inc();
                }
                Outcome::Unchanged | Outcome::Skipped | Outcome::BadRequest => {}
            }
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

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
