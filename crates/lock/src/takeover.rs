//! What a new leader does about a previous leader's unfinished `running`
//! row, before it starts its own command. Pure; the waiting is in `lib.rs`.
//!
//! How the lock was freed decides. A holder whose process ends (SIGKILL, a
//! crash, or its own exit after it stopped its command on a lost session)
//! closes its connection, and the lock is free at once: the row's heartbeat
//! is then fresh, and waiting out the lock-delay is enough. A holder that
//! goes silent instead (frozen whole by SIGSTOP or a node or VM pause,
//! vanished with its node, cut off by the network) loses the lock only when
//! the server gives up on its session (idle and keepalive timeouts, 25–30 s).
//! If it was frozen, its command resumes with it and may write before its
//! wrapper can kill it: no local deadline closes that race. So the new
//! leader holds the lock and waits for the old wrapper to say, on a fresh
//! session, that its command's process group is gone (it deletes its row),
//! and gives up waiting only after the takeover timeout.

use std::time::Duration;

use crate::dialect::Previous;

/// A heartbeat older than this when the lock was taken means the holder
/// went silent rather than closed its connection: above the 16 s a live
/// leader takes at most to stop its command and exit after its last
/// heartbeat ([`crate::Timings::bound`] at any lock-delay), below the
/// 25–30 s after which the servers end a silent session. Whatever the
/// lock-delay, so that a short one does not make a slow poll look silent,
/// nor a long one hide a silent holder.
pub(crate) const SILENT_AFTER: Duration = Duration::from_secs(20);

/// How long the new leader waits, as an age of the previous leader's last heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The previous holder's connection closed: its process is gone or it
    /// stopped its command itself. Start once the heartbeat is this old.
    LockDelay(Duration),
    /// The previous holder went silent: start once it confirmed its
    /// command is gone, or, without that, once its heartbeat is this old.
    Confirmation(Duration),
}

impl Wait {
    /// The heartbeat's age at which the wait ends at the latest.
    pub(crate) fn until(self) -> Duration {
        match self {
            Wait::LockDelay(until) | Wait::Confirmation(until) => until,
        }
    }
}

/// How to wait for `previous`. `same_pod`: the row is this very pod's,
/// written by a container the kubelet restarted only after it ended.
pub(crate) fn wait_for(previous: &Previous, same_pod: bool, lock_delay: Duration, takeover_timeout: Duration) -> Wait {
    if same_pod || previous.heartbeat_age < SILENT_AFTER {
        Wait::LockDelay(lock_delay)
    } else {
        Wait::Confirmation(takeover_timeout.max(lock_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn previous(age_s: u64) -> Previous {
        Previous { holder: "web/shop/shop-1".into(), token: 7, heartbeat_age: Duration::from_secs(age_s) }
    }

    const DELAY: Duration = Duration::from_secs(15);
    const TAKEOVER: Duration = Duration::from_secs(300);

    #[test]
    fn a_closed_connection_waits_out_the_lock_delay_only() {
        assert_eq!(wait_for(&previous(1), false, DELAY, TAKEOVER), Wait::LockDelay(DELAY));
        // Past its lock-delay already: starts at once (a pod that came late).
        let short = Duration::from_secs(2);
        assert_eq!(wait_for(&previous(9), false, short, TAKEOVER), Wait::LockDelay(short));
    }

    #[test]
    fn a_silent_holder_must_confirm_or_time_out() {
        // Freed by the server's idle or keepalive timeout, 25-30 s after the last heartbeat.
        assert_eq!(wait_for(&previous(25), false, DELAY, TAKEOVER), Wait::Confirmation(TAKEOVER));
        assert_eq!(wait_for(&previous(30), false, Duration::from_secs(2), TAKEOVER), Wait::Confirmation(TAKEOVER));
        // A long lock-delay does not hide a session the server ended.
        let long = Duration::from_secs(60);
        assert_eq!(wait_for(&previous(30), false, long, TAKEOVER), Wait::Confirmation(TAKEOVER));
        assert_eq!(wait_for(&previous(30), false, DELAY, Duration::ZERO), Wait::Confirmation(DELAY));
    }

    #[test]
    fn this_pods_own_row_is_from_a_container_that_ended() {
        assert_eq!(wait_for(&previous(30), true, DELAY, TAKEOVER), Wait::LockDelay(DELAY));
    }
}
