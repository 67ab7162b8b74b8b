//! Migration outcomes recorded on the workload: the server watches the pods
//! kube-once injected, reads how `kube-once-run` ended, and writes Events
//! on the owning Deployment and the `kube_once_migrations_*` metrics
//! (docs/operations.md, "Migration Events"). One replica records at a
//! time, the holder of a Lease.
//!
//! - `observe`: pure, a pod → what its migration did;
//! - `events`: Events with Kubernetes' series rule;
//! - `lease`: the Lease loop;
//! - `watch`: the pod watch that ties them together.

mod events;
mod lease;
mod observe;
mod watch;

use std::time::Duration;

use kube::Client;
use tokio_util::sync::CancellationToken;

pub use self::events::{REPORTING_CONTROLLER, Reason, event_name};
pub use self::lease::{Leadership, LeaseConfig};
pub use self::observe::{INJECTED_LABEL, LABEL_SELECTOR, Outcome, RUN_CONTAINER, classify};
use crate::metrics::MigrationMetrics;

/// `kube-once serve`'s migration Events, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsOptions {
    /// Namespace of the Lease (the webhook's own).
    pub namespace: String,
    /// The Lease's name.
    pub lease: String,
    /// This replica's name in the Lease and in the Events (its pod's name).
    pub identity: String,
    /// How long a term lasts without renewal.
    pub lease_duration: Duration,
    /// Whether `MigrationWaiting` names the lock holder from the waiting
    /// pod's own `kube-once-run` log (a bounded tail, read once per wait).
    pub holder_from_logs: bool,
}

impl EventsOptions {
    pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
}

/// Starts the Lease loop and the watcher; both end when `stop` is cancelled.
pub fn spawn(client: Client, options: &EventsOptions, metrics: MigrationMetrics, stop: CancellationToken) {
    let config = LeaseConfig::new(&options.namespace, &options.lease, &options.identity, options.lease_duration);
    let check_every = config.retry.max(Duration::from_millis(100));
    let leadership = lease::spawn(client.clone(), config, stop.clone());
    let recorder = events::Recorder::new(client.clone(), &options.identity);
    // Twice a term: the previous holder stopped within one, and the next
    // took over within about one more.
    let overlap = options.lease_duration * 2;
    let watcher =
        watch::Watcher::new(client, recorder, metrics, leadership, overlap, check_every, options.holder_from_logs);
    tokio::spawn(watcher.run(stop));
}
