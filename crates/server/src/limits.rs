//! Bounds on what the server holds at once, so that one user with create
//! rights on a Deployment cannot get the webhook OOM-killed (which, under
//! `failurePolicy: Fail`, refuses every annotated write in the cluster):
//!
//! - [`Gate`]: admission work is bounded by a memory budget. Each admission
//!   reserves what an admission of its body size may cost at its peak
//!   ([`admission_cost`], measured, docs/dev/performance.md) before its body
//!   is even read; admissions that do not fit wait in a bounded queue, and
//!   are answered 429 when the queue is full, 503 when their wait passes
//!   the queue timeout. A small review reserves a few KiB, so ordinary load
//!   never waits.
//! - [`Limits::max_connections`]: a cap on open connections per listener;
//!   connections past it are closed at once (an idle TLS connection costs
//!   about 25 KiB, see the docs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

/// The limits of [`crate::serve_on`] (see `kube-once serve --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory admission work may take at once, in bytes (see [`admission_cost`]).
    pub admission_memory: u64,
    /// How many admissions may wait for their share of the budget; more get 429.
    pub admission_queue: usize,
    /// Longest an admission waits for its share; then 503.
    pub admission_queue_timeout: Duration,
    /// Open connections per listener; connections past it are closed at once.
    pub max_connections: usize,
}

impl Limits {
    /// The defaults, which the command line shows in `--help`, sized for the
    /// chart's 352 MiB memory limit (docs/dev/performance.md, "Shipped binary
    /// (musl dist)"): idle ~20 MiB + 2,048 connections × ~25 KiB + 240 MiB
    /// of admissions (what one 3 MiB object of the costliest shape known
    /// reserves, see [`COST_PER_BODY_BYTE`]),
    /// with room left for the allocator's slack. The queue timeout stays
    /// well inside the API server's 10 s webhook timeout.
    pub const DEFAULT: Limits = Limits {
        admission_memory: 240 * MIB,
        admission_queue: 64,
        admission_queue_timeout: Duration::from_secs(5),
        max_connections: 2048,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Peak memory of one admission per byte of request body, on top of a
/// fixed cost per request. The containers' env, envFrom and volumeMounts
/// stay text, so an env-heavy review costs little beyond its body, but
/// what kube-once reads or writes item by item becomes JSON maps, many times
/// their text: 80 covers the worst shape known (tiny volumes by the
/// thousand) with room left for the allocator (the figures:
/// docs/dev/performance.md, "Memory bounds").
pub const COST_PER_BODY_BYTE: u64 = 80;
/// What any admission costs regardless of its size (buffers, the answer).
pub const COST_PER_ADMISSION: u64 = 64 * KIB;

/// What an admission with a body of `body_len` bytes reserves (`None`: the
/// length is not declared, so the largest body is assumed).
pub fn admission_cost(body_len: Option<u64>) -> u64 {
    let body_len = body_len.unwrap_or(crate::BODY_LIMIT as u64).min(crate::BODY_LIMIT as u64);
    body_len.saturating_mul(COST_PER_BODY_BYTE).saturating_add(COST_PER_ADMISSION)
}

/// Why an admission was turned away (the `reason` label of `admissions_shed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The queue was full: 429.
    QueueFull,
    /// The wait passed the queue timeout: 503.
    QueueTimeout,
}

impl Shed {
    /// In declaration order: `shed as usize` indexes it.
    pub const ALL: [Shed; 2] = [Shed::QueueFull, Shed::QueueTimeout];

    pub fn as_str(self) -> &'static str {
        match self {
            Shed::QueueFull => "queue_full",
            Shed::QueueTimeout => "queue_timeout",
        }
    }
}

/// The admission memory budget, in KiB permits.
#[derive(Debug)]
pub struct Gate {
    permits: Semaphore,
    capacity_kib: u32,
    waiting: AtomicUsize,
    queue: usize,
    timeout: Duration,
}

impl Gate {
    pub fn new(limits: &Limits) -> Self {
        let capacity_kib = u32::try_from((limits.admission_memory / KIB).max(1)).unwrap_or(u32::MAX >> 4);
        Self {
            permits: Semaphore::new(capacity_kib as usize),
            capacity_kib,
            waiting: AtomicUsize::new(0),
            queue: limits.admission_queue,
            timeout: limits.admission_queue_timeout,
        }
    }

    /// Reserve the share of an admission that costs `cost` bytes: at once
    /// when it fits, otherwise after waiting in the queue. An admission
    /// larger than the whole budget takes the whole budget (it runs alone).
    pub async fn enter(&self, cost: u64) -> Result<SemaphorePermit<'_>, Shed> {
        let kib = u32::try_from(cost.div_ceil(KIB)).unwrap_or(u32::MAX).clamp(1, self.capacity_kib);
        if let Ok(permit) = self.permits.try_acquire_many(kib) {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Shed::QueueFull);
        }
        let waited = tokio::time::timeout(self.timeout, self.permits.acquire_many(kib)).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it as a timeout all the same.
            Ok(Err(_)) | Err(_) => Err(Shed::QueueTimeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(memory: u64, queue: usize) -> Limits {
        Limits {
            admission_memory: memory,
            admission_queue: queue,
            admission_queue_timeout: Duration::from_millis(50),
            ..Limits::DEFAULT
        }
    }

    #[tokio::test]
    async fn small_admissions_share_the_budget_and_large_ones_queue_then_shed() {
        let gate = Gate::new(&limits(MIB, 1));
        let small: Vec<_> = futures_join(&gate, 8, 64 * KIB).await;
        assert_eq!(small.len(), 8, "eight 64 KiB admissions fit in 1 MiB at once");
        let whole = gate.enter(10 * MIB);
        // The budget is half taken: the oversized one waits, the next one finds the queue full.
        let (whole, full) = tokio::join!(whole, async {
            tokio::task::yield_now().await;
            gate.enter(MIB).await
        });
        assert_eq!(whole.err(), Some(Shed::QueueTimeout));
        assert_eq!(full.err(), Some(Shed::QueueFull));
        drop(small);
        let alone = gate.enter(10 * MIB).await;
        assert!(alone.is_ok(), "an admission over the whole budget runs alone once the others are done");
    }

    async fn futures_join(gate: &Gate, count: usize, cost: u64) -> Vec<SemaphorePermit<'_>> {
        let mut permits = Vec::new();
        for _ in 0..count {
            if let Ok(permit) = gate.enter(cost).await {
                permits.push(permit);
            }
        }
        permits
    }

    #[test]
    fn undeclared_and_oversized_bodies_cost_the_largest_body() {
        assert_eq!(admission_cost(None), admission_cost(Some(u64::MAX)));
        assert!(admission_cost(Some(3_000)) < 512 * KIB);
    }
}
