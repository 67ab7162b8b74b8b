//! Attempts: one row per run of the command (success or failure) in the
//! attempts table ([`crate::names::ATTEMPTS_TABLE`]) beside the
//! done-records, and the backoff they imply. Pure; the SQL lives with each
//! dialect (`RecordStore`).
//!
//! The backoff is what keeps replicas from hammering a broken migration: a
//! key whose last attempt failed is run again only once the step after that
//! failure has passed (base, doubling per consecutive failure, capped at
//! [`MAX_STEPS`] bases). The lock serializes the runs and every leader
//! checks under the lock, so at most one replica runs per step. A success
//! (or a new key) has no failures behind it, which resets the steps.

use std::time::Duration;

/// How a run of the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ran,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Failed => "failed",
        }
    }

    /// Anything but `ran` reads as a failure: a newer version's outcome must
    /// not reset the backoff.
    pub fn parse(text: &str) -> Outcome {
        if text == "ran" { Outcome::Ran } else { Outcome::Failed }
    }
}

/// One run of the command, as written after it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub key: String,
    /// The command as a shell would read it.
    pub command: String,
    pub image: String,
    pub namespace: String,
    pub deployment: String,
    pub pod: String,
    pub duration_ms: i64,
    pub exit_code: i32,
    pub outcome: Outcome,
    /// The last lines of the command's output, bounded and redacted.
    pub output: String,
}

/// An attempt read back, with the database's instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttempt {
    pub attempt: Attempt,
    /// Milliseconds since the Unix epoch (the database's clock).
    pub started_ms: i64,
    pub finished_ms: i64,
    /// How long ago it finished when read, by the database's clock (so pods'
    /// clocks never decide a backoff).
    pub age_ms: i64,
}

/// How many attempts of a key `lock` reads to decide on the backoff: more
/// consecutive failures than this do not lengthen the step.
pub const RECENT: u32 = 16;

/// The step is capped at this many times the base (10 s → 5 min).
pub const MAX_STEPS: u32 = 30;

/// The default first step.
pub const DEFAULT_BASE: Duration = Duration::from_secs(10);

/// The wait after `failures` consecutive failures (at least one).
pub fn step(failures: u32, base: Duration) -> Duration {
    let doubled = base.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(base.saturating_mul(MAX_STEPS))
}

/// A key that must not run yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingOff {
    /// Consecutive failures (at most [`RECENT`]).
    pub failures: u32,
    /// The newest of them.
    pub last: StoredAttempt,
    pub step: Duration,
    /// Until the next attempt may run.
    pub left: Duration,
}

/// Whether the key whose `recent` attempts (newest first) these are is
/// backing off.
pub fn backing_off(recent: &[StoredAttempt], base: Duration) -> Option<BackingOff> {
    let failures = recent.iter().take_while(|a| a.attempt.outcome == Outcome::Failed).count() as u32;
    let last = recent.first().filter(|_| failures > 0)?;
    let step = step(failures, base);
    let age = Duration::from_millis(u64::try_from(last.age_ms).unwrap_or(0));
    let left = step.checked_sub(age).filter(|left| !left.is_zero())?;
    Some(BackingOff { failures, last: last.clone(), step, left })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(outcome: Outcome, age_ms: i64) -> StoredAttempt {
        StoredAttempt {
            attempt: Attempt {
                key: "k".into(),
                command: "migrate".into(),
                image: "app:1".into(),
                namespace: "web".into(),
                deployment: "shop".into(),
                pod: "shop-1".into(),
                duration_ms: 10,
                exit_code: if outcome == Outcome::Ran { 0 } else { 1 },
                outcome,
                output: String::new(),
            },
            started_ms: 0,
            finished_ms: 0,
            age_ms,
        }
    }

    #[test]
    fn steps_double_from_the_base_up_to_five_minutes() {
        let base = DEFAULT_BASE;
        let steps: Vec<u64> = (1..=8).map(|n| step(n, base).as_secs()).collect();
        assert_eq!(steps, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(step(u32::MAX, base), Duration::from_secs(300));
    }

    #[test]
    fn consecutive_failures_back_off_and_a_success_resets() {
        let base = DEFAULT_BASE;
        assert_eq!(backing_off(&[], base), None);
        let one = backing_off(&[attempt(Outcome::Failed, 4_000)], base).map(|b| (b.failures, b.left));
        assert_eq!(one, Some((1, Duration::from_secs(6))));
        assert_eq!(backing_off(&[attempt(Outcome::Failed, 10_000)], base), None, "the step has passed");
        let two = [attempt(Outcome::Failed, 15_000), attempt(Outcome::Failed, 40_000)];
        assert_eq!(backing_off(&two, base).map(|b| b.step), Some(Duration::from_secs(20)));
        let reset = [attempt(Outcome::Failed, 15_000), attempt(Outcome::Ran, 40_000), attempt(Outcome::Failed, 50_000)];
        assert_eq!(backing_off(&reset, base), None, "one failure after a success waits one base step");
        assert_eq!(backing_off(&[attempt(Outcome::Ran, 0)], base), None);
    }

    #[test]
    fn unknown_outcomes_count_as_failures() {
        assert_eq!(Outcome::parse("ran"), Outcome::Ran);
        assert_eq!(Outcome::parse("failed"), Outcome::Failed);
        assert_eq!(Outcome::parse("stopped"), Outcome::Failed);
    }
}
