//! Graceful drain. On SIGTERM (what the kubelet sends) or SIGINT:
//! 1. `/readyz` fails at once, so the endpoints controller takes the pod out
//!    of the Service;
//! 2. requests keep being served for the grace period, because the API
//!    servers learn about the endpoint change with a delay;
//! 3. listeners stop accepting. Open connections are not cut (that would
//!    reset requests already sent on them): since step 1 every response
//!    carries `Connection: close`, so clients leave after their next request,
//!    and idle ones end at the header-read timeout. Whatever is still open one
//!    request timeout later is dropped.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

/// Whether `/readyz` succeeds.
#[derive(Debug)]
pub struct Readiness(AtomicBool);

impl Default for Readiness {
    fn default() -> Self {
        Self(AtomicBool::new(true))
    }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn termination_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}
