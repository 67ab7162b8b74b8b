//! Waiting on a condition with a deadline (never a bare sleep).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Longest any wait lasts: only there so a broken component fails the test
/// instead of hanging it, generous for a slow and busy machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Pause between two polls of a condition.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` until it holds; Err naming `what` after [`DEADLINE`].
pub async fn until<F, Fut>(what: &str, mut condition: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        if Instant::now() > deadline {
            return Err(format!("gave up waiting for {what} after {DEADLINE:?}"));
        }
        tokio::time::sleep(POLL).await; // wait-on-condition: poll interval of a loop with a deadline
    }
    Ok(())
}

/// [`until`] for a condition that needs no waiting itself (a look at shared state).
pub async fn until_holds(what: &str, condition: impl Fn() -> bool) -> Result<(), String> {
    until(what, || std::future::ready(condition())).await
}
