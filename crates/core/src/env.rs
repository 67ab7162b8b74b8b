//! Names of the `KUBE_ONCE_*` env vars that carry the plan from the webhook
//! (which injects them into `kube-once-run`) to `kube-once lock` (which reads
//! them). One list, used by both sides, so they cannot drift apart.

/// Name of the env var that holds the database URL (default `DATABASE_URL`).
pub const DATABASE_URL_ENV: &str = "KUBE_ONCE_DATABASE_URL_ENV";
/// The `database-url` template, set with `$(VAR)` refs that the kubelet expands;
/// when present, `DATABASE_URL_ENV` names this variable.
pub const DATABASE_URL: &str = "KUBE_ONCE_DATABASE_URL";
/// Name of the env var that holds a direct URL used only for the lock.
pub const LOCK_URL_ENV: &str = "KUBE_ONCE_LOCK_URL_ENV";
pub const LOCK_NAME: &str = "KUBE_ONCE_LOCK_NAME";
pub const KEY: &str = "KUBE_ONCE_KEY";
/// `table` or `none`.
pub const RECORD: &str = "KUBE_ONCE_RECORD";
pub const RECORD_TABLE: &str = "KUBE_ONCE_RECORD_TABLE";
/// How long to wait for the lock, e.g. `15m`.
pub const TIMEOUT: &str = "KUBE_ONCE_TIMEOUT";
pub const CONNECT_TIMEOUT: &str = "KUBE_ONCE_CONNECT_TIMEOUT";
pub const IMAGE: &str = "KUBE_ONCE_IMAGE";
/// From the downward API (`metadata.namespace`).
pub const NAMESPACE: &str = "KUBE_ONCE_NAMESPACE";
/// The workload whose pods run the lock: a Deployment's name, or
/// `<kind>/<name>` for the other kinds (`statefulset/db`, `cronjob/report`).
/// Its name predates the other kinds and stays, as pods already carry it.
pub const DEPLOYMENT: &str = "KUBE_ONCE_DEPLOYMENT";
/// From the downward API (`metadata.name`).
pub const POD_NAME: &str = "KUBE_ONCE_POD_NAME";
/// How long a new leader waits after the last heartbeat of a leader that lost
/// the lock, e.g. `15s`. Not injected by the webhook (the default suffices).
pub const LOCK_DELAY: &str = "KUBE_ONCE_LOCK_DELAY";
/// Where `kube-once lock` writes its one-paragraph summary, by default the
/// kubelet's `/dev/termination-log`. Not injected by the webhook (the
/// container's default path is used); tests point it at a file.
pub const TERMINATION_LOG: &str = "KUBE_ONCE_TERMINATION_LOG";
/// The first backoff step after a failed attempt (then doubling, up to 30
/// steps' worth), e.g. `10s`. Not injected by the webhook (the default suffices).
pub const FAILURE_BACKOFF: &str = "KUBE_ONCE_FAILURE_BACKOFF";
/// How long after a silent leader's last heartbeat the next leader waits at
/// most for its confirmation that its command is gone, e.g. `5m`. Not
/// injected by the webhook (the default suffices).
pub const TAKEOVER_TIMEOUT: &str = "KUBE_ONCE_TAKEOVER_TIMEOUT";
