//! Capped exponential backoff with jitter, for waiting on a database that
//! starts at the same time as the app (and for the lock poll).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        Backoff { next: first, cap }
    }

    /// The pause before the next attempt: the current step with ±20 % jitter
    /// (so pods that started together do not retry in lock-step), then the
    /// step doubles up to the cap.
    pub fn next_pause(&mut self) -> Duration {
        let pause = jitter(self.next, 0.2);
        self.next = (self.next * 2).min(self.cap);
        pause
    }
}

/// `base` scaled by a random factor in [1 - spread, 1 + spread].
pub fn jitter(base: Duration, spread: f64) -> Duration {
    let factor = 1.0 - spread + 2.0 * spread * fastrand::f64();
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let expected = [100, 200, 400, 800, 1000, 1000];
        for step in expected {
            let pause = backoff.next_pause().as_millis();
            let low = step * 8 / 10;
            let high = step * 12 / 10;
            assert!((low..=high).contains(&pause), "{pause} not within {low}..={high}");
        }
    }
}
