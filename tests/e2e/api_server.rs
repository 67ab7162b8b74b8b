//! The API server's admission chain, reduced to kube-once's webhook: pick
//! the webhook (selection), send the review (webhook), check and apply the
//! answer (admission), with failurePolicy applied to evaluation errors.

use anyhow::{Context, Result, bail, ensure};
use kube_once_core::Kind;
use serde_json::Value;

use crate::admission::{Operation, Verdict, check_response, review};
use crate::cluster::{Cluster, str_at};
use crate::selection::{Attributes, Decision, decide};
use crate::webhook::Webhook;

/// The API server's admission chain, reduced to kube-once's webhook.
pub struct ApiServer<'a> {
    pub webhook: &'a Webhook,
    pub configuration: &'a Value,
    pub cluster: &'a Cluster,
}

#[derive(Debug, PartialEq)]
pub enum Admitted {
    /// No webhook of the configuration was called.
    NotSent,
    Answered(Verdict),
}

impl ApiServer<'_> {
    pub async fn admit(&self, operation: Operation, object: &Value, old_object: Option<&Value>) -> Result<Admitted> {
        self.admit_with(operation, object, old_object, false).await
    }

    /// `dry_run`: `kubectl apply --dry-run=server`, which must see the real result.
    pub async fn admit_with(
        &self,
        operation: Operation,
        object: &Value,
        old_object: Option<&Value>,
        dry_run: bool,
    ) -> Result<Admitted> {
        let uid = format!("{:032x}", fastrand::u128(..));
        let review = review(&uid, operation, object, old_object, dry_run);
        let namespace = str_at(object, "/metadata/namespace").unwrap_or("default");
        let kind = Kind::read_as(object);
        let attributes = Attributes::workload(
            kind,
            operation.as_str(),
            self.cluster.namespace_labels(namespace)?,
            &review["request"],
        );
        let webhooks = self.configuration.get("webhooks").and_then(Value::as_array).context("no webhooks")?;
        ensure!(webhooks.len() == 1, "the harness serves one webhook, the configuration has {}", webhooks.len());
        let hook = &webhooks[0];
        let fail_closed = str_at(hook, "/failurePolicy").unwrap_or("Fail") == "Fail";
        match decide(hook, &attributes)? {
            Decision::Skip(_) => return Ok(Admitted::NotSent),
            Decision::Error(error) if fail_closed => bail!("the API server rejects the request: {error}"),
            Decision::Error(_) => return Ok(Admitted::NotSent),
            Decision::Call => {}
        }
        self.call(&uid, &review, object).await.map(Admitted::Answered)
    }

    /// The call itself, within timeoutSeconds (the client's timeout).
    pub async fn call(&self, uid: &str, review: &Value, object: &Value) -> Result<Verdict> {
        let response = self.webhook.call(review).await?;
        check_response(uid, &response, object)
    }

    /// Sends directly, as if the configuration selected the object.
    pub async fn call_directly(&self, object: &Value) -> Result<Verdict> {
        let uid = format!("{:032x}", fastrand::u128(..));
        self.call(&uid, &review(&uid, Operation::Create, object, None, false), object).await
    }
}
