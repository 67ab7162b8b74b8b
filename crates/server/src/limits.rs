//! Bounds on what the server holds at once, so that one user with create
//! rights on a Deployment cannot get the webhook OOM-killed (which, under
//! `failurePolicy: Fail`, refuses every annotated write in the cluster):
//!
//! - [`Gate`]: admission work is bounded by a memory budget, in two parts.
//!   A body being received holds, from the receiving part, the bytes that
//!   have arrived so far ([`Receiving`]): a client that declares a large
//!   body, or none, and then trickles it holds what it sent, never the
//!   share of a large review, so slow uploads cannot starve the reviews
//!   behind them. Once the body is complete the admission reserves what a
//!   review of that size may cost at its peak ([`admission_cost`],
//!   docs/dev/performance.md) from the admitting part; admissions that do
//!   not fit wait in a bounded queue (still holding their body's bytes, so
//!   waiting bodies stay bounded too), and are answered 429 when the queue
//!   is full, 503 when their wait passes the queue timeout. A small review
//!   reserves a few KiB, so ordinary load never waits.
//! - [`Limits::max_connections`]: a cap on open connections per listener;
//!   connections past it are closed at once (an idle TLS connection costs
//!   about 25 KiB, see the docs). [`Limits::max_connections_per_client`]
//!   caps those of one client address, so one client that opens
//!   connections and leaves them idle cannot take every place.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

/// The limits of [`crate::serve_on`] (see `kube-once serve --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory admission work may take at once, in bytes: an eighth for
    /// bodies being received, the rest for reviews (see [`admission_cost`]).
    pub admission_memory: u64,
    /// How many admissions may wait for their share of the budget; more get 429.
    pub admission_queue: usize,
    /// Longest an admission waits for its share; then 503.
    pub admission_queue_timeout: Duration,
    /// Open connections per listener; connections past it are closed at once.
    pub max_connections: usize,
    /// Open connections per listener from one client address; past it, that
    /// client's new connections are closed at once.
    pub max_connections_per_client: usize,
}

impl Limits {
    /// The defaults, which the command line shows in `--help`, sized for the
    /// chart's 352 MiB memory limit (docs/dev/performance.md, "Shipped binary
    /// (musl dist)"): idle ~20 MiB + 2,048 connections × ~25 KiB + 240 MiB
    /// of admissions (what two 3 MiB objects of the costliest shape known
    /// reserve, see [`COST_PER_BODY_BYTE`]),
    /// with room left for the allocator's slack. The queue timeout stays
    /// well inside the chart's webhook timeout (`webhook.timeoutSeconds`,
    /// 5 s), so an admission that waited its longest is still answered
    /// before the API server gives up on it.
    pub const DEFAULT: Limits = Limits {
        admission_memory: 240 * MIB,
        admission_queue: 64,
        admission_queue_timeout: Duration::from_secs(2),
        max_connections: 2048,
        // A quarter: a client alone leaves three quarters to the others, and
        // the API server's concurrent admissions stay far below it.
        max_connections_per_client: 512,
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
/// fixed cost per request. The app and init containers, the pod
/// template's volumes and annotations stay text, so every shape measured
/// costs ~2.5–4× its body (the body included). The rest of a pod spec
/// (tolerations, affinity, host aliases, ...) still becomes JSON maps,
/// which cost ~30× the text of small objects (as the sidecars did before
/// they stayed text): 40 covers a review made of those, with room left
/// for the allocator (the figures: docs/dev/performance.md, "Memory
/// bounds").
pub const COST_PER_BODY_BYTE: u64 = 40;
/// What any admission costs regardless of its size (buffers, the answer).
pub const COST_PER_ADMISSION: u64 = 64 * KIB;

/// What the review of a body of `body_len` bytes reserves once the body is
/// complete.
pub fn admission_cost(body_len: usize) -> u64 {
    let body_len = body_len.min(crate::BODY_LIMIT) as u64;
    body_len.saturating_mul(COST_PER_BODY_BYTE).saturating_add(COST_PER_ADMISSION)
}

/// The part of [`Limits::admission_memory`] that bodies being received share.
const RECEIVING_SHARE: u64 = 8;

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

/// The admission memory budget, in KiB permits: one pool for bodies being
/// received, one for reviews.
#[derive(Debug)]
pub struct Gate {
    receiving: Pool,
    admitting: Pool,
    waiting: AtomicUsize,
    queue: usize,
    timeout: Duration,
}

/// A semaphore of KiB permits and its size.
#[derive(Debug)]
struct Pool {
    permits: Semaphore,
    capacity_kib: u32,
}

impl Pool {
    fn new(bytes: u64) -> Self {
        let capacity_kib = u32::try_from((bytes / KIB).max(1)).unwrap_or(u32::MAX >> 4);
        Self { permits: Semaphore::new(capacity_kib as usize), capacity_kib }
    }

    /// The permits for `bytes`; more than the whole pool takes the whole pool.
    fn kib_of(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(KIB)).unwrap_or(u32::MAX).clamp(1, self.capacity_kib)
    }
}

impl Gate {
    pub fn new(limits: &Limits) -> Self {
        let receiving = limits.admission_memory / RECEIVING_SHARE;
        Self {
            receiving: Pool::new(receiving),
            admitting: Pool::new(limits.admission_memory - receiving),
            waiting: AtomicUsize::new(0),
            queue: limits.admission_queue,
            timeout: limits.admission_queue_timeout,
        }
    }

    /// Whether every permit is back: nothing received nor admitted holds any.
    pub fn is_idle(&self) -> bool {
        [&self.receiving, &self.admitting]
            .iter()
            .all(|pool| pool.permits.available_permits() == pool.capacity_kib as usize)
    }

    /// Start receiving a body: it holds nothing until bytes arrive.
    pub fn receive(&self) -> Receiving<'_> {
        Receiving { gate: self, permit: None, kib: 0 }
    }

    /// Reserve the share of an admission that costs `cost` bytes: at once
    /// when it fits, otherwise after waiting in the queue. An admission
    /// larger than the whole budget takes the whole budget (it runs alone).
    pub async fn enter(&self, cost: u64) -> Result<SemaphorePermit<'_>, Shed> {
        self.reserve(&self.admitting, self.admitting.kib_of(cost)).await
    }

    /// `kib` permits of `pool`: at once when they are free, otherwise after
    /// waiting in the queue (shared by both pools) for at most its timeout.
    async fn reserve<'a>(&'a self, pool: &'a Pool, kib: u32) -> Result<SemaphorePermit<'a>, Shed> {
        if let Ok(permit) = pool.permits.try_acquire_many(kib) {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Shed::QueueFull);
        }
        let waited = tokio::time::timeout(self.timeout, pool.permits.acquire_many(kib)).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it as a timeout all the same.
            Ok(Err(_)) | Err(_) => Err(Shed::QueueTimeout),
        }
    }
}

/// The bytes of one body being received, held from the receiving pool as
/// they arrive and given back when dropped.
#[derive(Debug)]
pub struct Receiving<'a> {
    gate: &'a Gate,
    permit: Option<SemaphorePermit<'a>>,
    kib: u32,
}

impl Receiving<'_> {
    /// Hold enough for a body of `bytes` so far: at once when it fits,
    /// otherwise after waiting in the queue (the client's upload waits
    /// meanwhile). A body larger than the whole pool holds the whole pool.
    pub async fn grow_to(&mut self, bytes: usize) -> Result<(), Shed> {
        let pool = &self.gate.receiving;
        let kib = pool.kib_of(bytes as u64);
        if kib <= self.kib {
            return Ok(());
        }
        let more = kib - self.kib;
        let permit = self.gate.reserve(pool, more).await?;
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.kib = kib;
        Ok(())
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
    fn oversized_bodies_cost_the_largest_body() {
        assert_eq!(admission_cost(crate::BODY_LIMIT), admission_cost(usize::MAX));
        assert!(admission_cost(3_000) < 512 * KIB);
    }

    #[tokio::test]
    async fn a_body_being_received_holds_what_arrived_and_none_of_the_reviews_share() {
        let gate = Gate::new(&limits(8 * MIB, 1));
        let mut trickling: Vec<_> = (0..20).map(|_| gate.receive()).collect();
        for body in &mut trickling {
            body.grow_to(10).await.expect("ten bytes fit");
        }
        assert_eq!(gate.receiving.permits.available_permits(), 1024 - 20, "each holds one KiB for its ten bytes");
        let whole = gate.enter(u64::MAX).await;
        assert!(whole.is_ok(), "the reviews' share is untouched by bodies being received");
        drop(whole);

        let mut large = gate.receive();
        let full = large.grow_to(2 * MIB as usize).await;
        assert_eq!(full, Err(Shed::QueueTimeout), "the receiving pool is full: the upload waits, then is shed");
        drop(trickling);
        assert_eq!(large.grow_to(2 * MIB as usize).await, Ok(()), "a body over the pool holds the whole pool");
        assert_eq!(gate.receiving.permits.available_permits(), 0);
        drop(large);
        assert_eq!(gate.receiving.permits.available_permits(), 1024);
    }
}
