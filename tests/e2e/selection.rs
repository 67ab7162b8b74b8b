//! Whether the API server calls a webhook of a MutatingWebhookConfiguration
//! for a request: the product's own evaluation (`kube_once_explain`, which
//! `kube-once explain` uses), so the harness and the command cannot disagree.
//! Rules, namespaceSelector, objectSelector, then matchConditions by a real
//! CEL interpreter; its unit tests live in crates/explain.

pub use kube_once_explain::{Attributes, Decision, decide};
