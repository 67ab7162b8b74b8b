//! Exactly one webhook replica records: a coordination.k8s.io/v1 Lease,
//! acquired, renewed and taken over with the typed `Api`, the way
//! client-go's leader election does it.
//!
//! Expiry is judged by the local clock only: a replica notes when it last
//! saw the Lease's record change, and takes it over once the record stayed
//! the same for a whole lease duration. Clocks of different nodes never get
//! compared. The holder counts its term from the moment it sent its last
//! successful renewal, so it stops recording before anyone else may start.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The Lease, as plain values.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// `holderIdentity`: the webhook pod's name.
    pub identity: String,
    /// How long a term lasts without renewal (`leaseDurationSeconds`).
    pub duration: Duration,
    /// How often the holder renews, and others look.
    pub retry: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            retry: duration / 3,
        }
    }
}

/// Whether this replica holds the Lease now. Cheap to clone and to ask.
#[derive(Debug, Clone)]
pub struct Leadership(watch::Receiver<Option<Instant>>);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        matches!(*self.0.borrow(), Some(until) if Instant::now() < until)
    }

    /// Resolves once this replica holds the Lease.
    pub async fn acquired(&mut self) {
        while !self.is_leader() {
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves once this replica no longer holds the Lease: at the end of
    /// its term unless renewed, or when the loop says so.
    pub async fn lost(&mut self) {
        loop {
            let until = *self.0.borrow_and_update();
            match until {
                None => return,
                Some(until) if Instant::now() >= until => return,
                Some(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        changed = self.0.changed() => if changed.is_err() { return },
                    }
                }
            }
        }
    }
}

/// What a replica does with the Lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Create,
    Renew,
    TakeOver,
    /// Someone else holds it (or held it until recently).
    Follow,
}

/// The record as last seen, and when it was first seen like that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    record: (Option<String>, Option<String>, Option<i32>),
    since: Instant,
}

fn record(spec: &LeaseSpec) -> (Option<String>, Option<String>, Option<i32>) {
    (spec.holder_identity.clone(), spec.renew_time.as_ref().map(|t| t.0.to_string()), spec.lease_transitions)
}

/// Pure: what to do with `lease` at `now`, given what was seen before.
pub fn decide(
    lease: Option<&LeaseSpec>,
    me: &str,
    duration: Duration,
    observed: &mut Option<Observed>,
    now: Instant,
) -> Decision {
    let Some(spec) = lease else {
        *observed = None;
        return Decision::Create;
    };
    let current = record(spec);
    let since = match observed {
        Some(seen) if seen.record == current => seen.since,
        _ => now,
    };
    *observed = Some(Observed { record: current, since });
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) if now.saturating_duration_since(since) >= duration => Decision::TakeOver,
        Some(_) => Decision::Follow,
    }
}

/// Runs the Lease loop until `stop`; returns the [`Leadership`] it keeps current.
pub fn spawn(client: Client, config: LeaseConfig, stop: CancellationToken) -> Leadership {
    let (sender, receiver) = watch::channel(None);
    tokio::spawn(run(client, config, sender, stop));
    Leadership(receiver)
}

async fn run(client: Client, config: LeaseConfig, term: watch::Sender<Option<Instant>>, stop: CancellationToken) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observed = None;
    loop {
        let sent = Instant::now();
        match round(&api, &config, &mut observed, sent).await {
            Ok(held) => {
                let was = term.borrow().is_some_and(|until| Instant::now() < until);
                if held != was {
                    tracing::info!(lease = %format!("{}/{}", config.namespace, config.name), identity = %config.identity, held,
                        "{}", if held { "holding the Lease: this replica records migration Events" } else { "another replica holds the Lease" });
                }
                term.send_replace(held.then_some(sent + config.duration));
            }
            // The term runs out by itself if renewals keep failing.
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "cannot read or write the Lease {}/{}; the chart's Role grants get/create/update on it",
                config.namespace,
                config.name
            ),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(config.retry) => {}
        }
    }
    if term.borrow().is_some() {
        term.send_replace(None);
        release(&api, &config).await;
    }
}

/// One look at the Lease; Ok(true) when this replica holds it now.
async fn round(
    api: &Api<Lease>,
    config: &LeaseConfig,
    observed: &mut Option<Observed>,
    now: Instant,
) -> anyhow::Result<bool> {
    let lease = api.get_opt(&config.name).await?;
    let decision =
        decide(lease.as_ref().and_then(|l| l.spec.as_ref()), &config.identity, config.duration, observed, now);
    let stamp = Some(MicroTime(Timestamp::now()));
    let seconds = i32::try_from(config.duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let result = match (decision, lease) {
        (Decision::Follow, _) => return Ok(false),
        (Decision::Create, _) => {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(config.name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: stamp.clone(),
                    renew_time: stamp,
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await
        }
        (decision, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if decision == Decision::TakeOver {
                spec.holder_identity = Some(config.identity.clone());
                spec.acquire_time = stamp.clone();
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(seconds);
            spec.renew_time = stamp;
            // The resourceVersion read above makes a replace that lost a race fail with 409.
            api.replace(&lease.name_any(), &PostParams::default(), &lease).await
        }
        (_, None) => return Ok(false),
    };
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// On shutdown: hand the Lease over at once instead of after a term.
async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    if let Err(error) = api.replace(&config.name, &PostParams::default(), &lease).await {
        tracing::debug!(%error, "cannot release the Lease; it expires by itself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn another_holder_is_followed_until_its_record_stays_unchanged_for_a_whole_duration() {
        let duration = Duration::from_secs(15);
        let start = Instant::now();
        let mut observed = None;
        let lease = held_by("web-a", "2026-12-06T10:00:00Z");
        assert_eq!(decide(Some(&lease), "web-b", duration, &mut observed, start), Decision::Follow);
        let later = start + Duration::from_secs(14);
        assert_eq!(decide(Some(&lease), "web-b", duration, &mut observed, later), Decision::Follow);
        // A renewal restarts the count, whatever the clocks say.
        let renewed = held_by("web-a", "2026-12-06T09:00:00Z");
        assert_eq!(decide(Some(&renewed), "web-b", duration, &mut observed, later), Decision::Follow);
        let expired = later + duration;
        assert_eq!(decide(Some(&renewed), "web-b", duration, &mut observed, expired), Decision::TakeOver);
    }

    #[test]
    fn own_released_and_missing_leases() {
        let duration = Duration::from_secs(15);
        let now = Instant::now();
        let mut observed = None;
        assert_eq!(decide(None, "web-a", duration, &mut observed, now), Decision::Create);
        let mine = held_by("web-a", "2026-12-06T10:00:00Z");
        assert_eq!(decide(Some(&mine), "web-a", duration, &mut observed, now), Decision::Renew);
        let released = LeaseSpec { holder_identity: None, ..mine };
        assert_eq!(decide(Some(&released), "web-b", duration, &mut observed, now), Decision::TakeOver);
    }
}
