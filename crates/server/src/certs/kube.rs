//! Self-managed TLS against the Kubernetes API: the thin edge around
//! [`super::self_managed::plan`]. Each pass reads the Secret and the webhook
//! configuration, plans, and writes; a write that loses a race (409 on
//! create, 409 on a stale resourceVersion, a failed JSON patch test) makes it
//! read again and re-plan. Every replica runs passes every
//! `--cert-poll-interval`, so a renewed certificate reaches all of them
//! without a restart.

use std::time::Duration;

use ::kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use ::kube::{Client, ResourceExt};
use anyhow::Context;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use time::OffsetDateTime;

use super::CertBundle;
use super::self_managed::{CertPlan, Policy, SecretData, SecretWrite, Step, plan};

/// How many read-plan-write rounds one pass may lose to other replicas
/// before it gives up (and the next poll tries again).
const MAX_ROUNDS: usize = 8;

/// After a renewal, how long replicas keep serving the old certificate once
/// the new CA is in the caBundle: API servers load a changed webhook
/// configuration through a watch, within seconds.
const SWITCH_DELAY: Duration = Duration::from_secs(60);

/// Self-managed TLS as plain values (`kube-once serve --self-managed`).
#[derive(Debug, Clone)]
pub struct SelfManagedConfig {
    /// Namespace of the webhook's Service and Secret.
    pub namespace: String,
    /// The webhook Service: certificate DNS names are `<service>.<namespace>.svc[.cluster.local]`.
    pub service: String,
    /// The Secret holding CA and serving certificate.
    pub secret: String,
    /// The MutatingWebhookConfiguration whose caBundle is kept current.
    pub webhook_configuration: String,
    /// Lifetime of a generated serving certificate.
    pub validity: Duration,
    /// Renew this long before the serving certificate expires.
    pub renew_before: Duration,
    /// How often the Secret is read again.
    pub poll_interval: Duration,
}

/// One webhook's Secret and configuration, and the rules for its certificates.
#[derive(Clone)]
pub struct SelfManaged {
    client: Client,
    namespace: String,
    secret: String,
    webhook_configuration: String,
    policy: Policy,
}

impl SelfManaged {
    pub fn new(config: &SelfManagedConfig, client: Client) -> anyhow::Result<SelfManaged> {
        let policy = Policy {
            names: super::service_dns_names(&config.service, &config.namespace),
            validity: config.validity,
            renew_before: config.renew_before,
            switch_delay: SWITCH_DELAY,
        };
        SelfManaged::with_policy(client, &config.namespace, &config.secret, &config.webhook_configuration, policy)
    }

    pub fn with_policy(
        client: Client,
        namespace: &str,
        secret: &str,
        webhook_configuration: &str,
        policy: Policy,
    ) -> anyhow::Result<SelfManaged> {
        policy.validate()?;
        Ok(SelfManaged {
            client,
            namespace: namespace.to_owned(),
            secret: secret.to_owned(),
            webhook_configuration: webhook_configuration.to_owned(),
            policy,
        })
    }

    /// One pass at time `now`: bring the Secret and the caBundle where the
    /// plan says, and return what to serve.
    pub async fn reconcile(&self, now: OffsetDateTime) -> anyhow::Result<CertBundle> {
        for _ in 0..MAX_ROUNDS {
            if let Some(serve) = self.round(now).await? {
                return Ok(serve);
            }
        }
        anyhow::bail!(
            "Secret {}/{} or MutatingWebhookConfiguration {} kept changing under us for {MAX_ROUNDS} rounds; \
             will try again at the next poll",
            self.namespace,
            self.secret,
            self.webhook_configuration
        )
    }

    /// Read, plan, write. None: a write lost a race; read again.
    async fn round(&self, now: OffsetDateTime) -> anyhow::Result<Option<CertBundle>> {
        let configuration = Api::<MutatingWebhookConfiguration>::all(self.client.clone())
            .get_opt(&self.webhook_configuration)
            .await
            .map_err(|e| self.explain(e, Object::Configuration, "get"))?;
        // The configuration is read before the Secret: a replica whose Secret is
        // older than another replica's caBundle patch read the configuration
        // before that patch too, so its own patch fails the resourceVersion
        // test instead of putting an old bundle back.
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let where_secret = || format!("Secret {}/{}", self.namespace, self.secret);
        let secret = secrets.get_opt(&self.secret).await.map_err(|e| self.explain(e, Object::Secret, "get"))?;
        let data = secret.as_ref().map(secret_data);
        let published = match &configuration {
            Some(configuration) => published_bundles(configuration),
            None => {
                tracing::warn!(
                    configuration = %self.webhook_configuration,
                    "MutatingWebhookConfiguration not found: no caBundle to keep current"
                );
                Vec::new()
            }
        };

        let CertPlan { step, secret: write, ca_bundle, serve } = plan(data.as_ref(), &published, now, &self.policy)?;
        match write {
            None => {}
            Some(SecretWrite::Create(data)) => {
                let created = secrets.create(&PostParams::default(), &self.new_secret(data)).await;
                match created {
                    Err(::kube::Error::Api(status)) if status.is_already_exists() => {
                        tracing::info!(secret = %where_secret(), "another replica created the Secret first; using it");
                        return Ok(None);
                    }
                    other => other.map_err(|e| self.explain(e, Object::Secret, "create"))?,
                };
            }
            Some(SecretWrite::Update(data)) => {
                let mut updated = secret.unwrap_or_default();
                updated.data = Some(data.into_iter().map(|(key, value)| (key, ByteString(value))).collect());
                match secrets.replace(&self.secret, &PostParams::default(), &updated).await {
                    Err(::kube::Error::Api(status)) if status.is_conflict() => return Ok(None),
                    other => other.map_err(|e| self.explain(e, Object::Secret, "update"))?,
                };
            }
        }
        match &step {
            Step::Unchanged => {}
            Step::Replaced(reason) => {
                tracing::warn!(secret = %where_secret(), reason, "replaced an unusable certificate Secret")
            }
            step => tracing::info!(secret = %where_secret(), step = step.as_str(), "self-managed certificate"),
        }
        if let (Some(bundle), Some(configuration)) = (ca_bundle, configuration) {
            if !self.patch_ca_bundle(&configuration, &bundle).await? {
                return Ok(None);
            }
            tracing::info!(configuration = %self.webhook_configuration, "caBundle updated");
        }
        Ok(Some(serve))
    }

    /// What failed, on which object, and for a refusal the RBAC rule that is missing.
    fn explain(&self, error: ::kube::Error, object: Object, verb: &str) -> anyhow::Error {
        let (kind, name) = match object {
            Object::Secret => ("Secret", format!("{}/{}", self.namespace, self.secret)),
            Object::Configuration => ("MutatingWebhookConfiguration", self.webhook_configuration.clone()),
        };
        let hint = match &error {
            ::kube::Error::Api(status) if status.is_forbidden() => format!(
                " (the pod's ServiceAccount needs RBAC `{verb}` on this {kind}; the chart grants it in tls.mode self-managed)"
            ),
            _ => String::new(),
        };
        anyhow::Error::new(error).context(format!("cannot {verb} {kind} {name}{hint}"))
    }

    fn new_secret(&self, data: SecretData) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.secret.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some([("app.kubernetes.io/managed-by".to_owned(), "kube-once".to_owned())].into()),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(data.into_iter().map(|(key, value)| (key, ByteString(value))).collect()),
            ..Secret::default()
        }
    }

    /// Set every webhook's caBundle with one JSON patch that first tests the
    /// resourceVersion that was read: the webhooks list cannot have been
    /// reordered or replaced (a helm upgrade) in between. False: it had.
    async fn patch_ca_bundle(
        &self,
        configuration: &MutatingWebhookConfiguration,
        bundle: &[u8],
    ) -> anyhow::Result<bool> {
        let encoded = base64_simd::STANDARD.encode_to_string(bundle);
        let mut operations = vec![
            serde_json::json!({"op": "test", "path": "/metadata/resourceVersion", "value": configuration.resource_version()}),
        ];
        for index in 0..configuration.webhooks.as_ref().map_or(0, Vec::len) {
            operations.push(
                serde_json::json!({"op": "add", "path": format!("/webhooks/{index}/clientConfig/caBundle"), "value": encoded}),
            );
        }
        // kube's Patch::Json carries its own json-patch version: built from the JSON.
        let patch = Patch::Json::<()>(
            serde_json::from_value(serde_json::Value::Array(operations)).context("cannot build the caBundle patch")?,
        );
        let configurations = Api::<MutatingWebhookConfiguration>::all(self.client.clone());
        match configurations.patch(&self.webhook_configuration, &PatchParams::default(), &patch).await {
            Ok(_) => Ok(true),
            // 409: changed meanwhile; 422: the test operation failed.
            Err(::kube::Error::Api(status)) if status.is_conflict() || status.code == 422 => Ok(false),
            Err(error) => Err(self.explain(error, Object::Configuration, "patch")),
        }
    }
}

/// Get or create the certificate (and publish its CA): what to serve from
/// the first handshake on, and the loop that keeps it current, which the
/// caller spawns once it serves.
pub async fn start(config: &SelfManagedConfig, client: Client) -> anyhow::Result<(CertBundle, KeepCurrent)> {
    let manager = SelfManaged::new(config, client)?;
    let first = manager.reconcile(OffsetDateTime::now_utc()).await?;
    Ok((first.clone(), KeepCurrent { manager, interval: config.poll_interval, serving: first }))
}

/// The polling loop started by [`start`].
pub struct KeepCurrent {
    manager: SelfManaged,
    interval: Duration,
    serving: CertBundle,
}

impl KeepCurrent {
    /// Every interval: one pass, and `on_change` with what to serve when it
    /// changed. Errors are logged and retried at the next poll; the current
    /// certificate stays in service meanwhile.
    pub async fn run<F>(mut self, on_change: F)
    where
        F: Fn(&CertBundle) + Send + Sync + 'static,
    {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match self.manager.reconcile(OffsetDateTime::now_utc()).await {
                Ok(bundle) if bundle != self.serving => {
                    tracing::info!("serving a renewed certificate");
                    on_change(&bundle);
                    self.serving = bundle;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = format!("{error:#}"), "self-managed certificate check failed"),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Object {
    Secret,
    Configuration,
}

fn secret_data(secret: &Secret) -> SecretData {
    secret.data.iter().flatten().map(|(key, value)| (key.clone(), value.0.clone())).collect()
}

fn published_bundles(configuration: &MutatingWebhookConfiguration) -> Vec<Option<Vec<u8>>> {
    configuration
        .webhooks
        .iter()
        .flatten()
        .map(|webhook| webhook.client_config.ca_bundle.as_ref().map(|b| b.0.clone()))
        .collect()
}
