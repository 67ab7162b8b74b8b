//! The leader's own view of its lease: how long ago its last heartbeat got
//! through, and a watchdog that SIGKILLs the command's process group as soon
//! as that is longer than the time the protocol allows ([`crate::Timings::bound`]).
//!
//! The heartbeat loop alone cannot do this: when the whole pod is frozen
//! (SIGSTOP, a cgroup freezer, a node or VM pause) the wrapper and its
//! command resume together, and the next heartbeat, its failure and the
//! SIGTERM grace give the command seconds in which the next leader may
//! already be running. The watchdog is an OS thread of its own, so it needs
//! neither the async runtime nor the database to act: after a freeze its
//! sleep has long expired, so it runs as soon as the process is scheduled,
//! finds the lease too old and kills the group with no grace.
//!
//! Elapsed time is read from two clocks and the larger counts:
//! `CLOCK_BOOTTIME` (runs on through a SIGSTOP and a system suspend) and the
//! wall clock (a paused VM's clocks stand still, but NTP or the hypervisor's
//! agent sets the wall clock forward on resume). A wall clock stepped
//! forward can only make the watchdog kill early: a lost lock, exit 70.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::Pid;
use tokio::sync::Notify;

/// How often the watchdog looks while nothing is frozen; after a freeze
/// it wakes at once, whatever this is.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// A moment on both clocks, taken *before* the statement whose success
/// renews the lease is sent, so the lease never looks younger than the
/// heartbeat the database recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    boot_ns: u64,
    wall_ns: u64,
}

impl Stamp {
    pub(crate) fn now() -> Stamp {
        let boot = clock_gettime(ClockId::CLOCK_BOOTTIME).map(Duration::from).unwrap_or_default();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Stamp { boot_ns: boot.as_nanos() as u64, wall_ns: wall.as_nanos() as u64 }
    }

    /// Time from the moment read as `boot_ns` and `wall_ns` to `self`: the
    /// larger of the two clocks' readings.
    fn since(self, boot_ns: u64, wall_ns: u64) -> Duration {
        Duration::from_nanos(self.boot_ns.saturating_sub(boot_ns).max(self.wall_ns.saturating_sub(wall_ns)))
    }
}

struct Shared {
    bound: Duration,
    boot_ns: AtomicU64,
    wall_ns: AtomicU64,
    /// What `kill(2)` is given to stop the command: `-pgid` for a group of
    /// its own, the pid alone otherwise; 0 before the command started.
    target: AtomicI32,
    expired: AtomicBool,
    /// How old the lease was when the watchdog found it expired, in ns.
    expired_after_ns: AtomicU64,
    over: AtomicBool,
    fired: Notify,
}

impl Shared {
    fn age(&self, now: Stamp) -> Duration {
        now.since(self.boot_ns.load(Ordering::SeqCst), self.wall_ns.load(Ordering::SeqCst))
    }

    fn kill_target(&self) {
        let target = self.target.load(Ordering::SeqCst);
        if target != 0 {
            let _ = kill(Pid::from_raw(target), Signal::SIGKILL);
        }
    }
}

/// The lease, shared with its watchdog thread; the watchdog ends when this is dropped.
pub(crate) struct Lease {
    shared: Arc<Shared>,
}

impl Lease {
    /// Starts the watchdog for a lease last renewed at `renewed`, which must
    /// end `bound` after its last renewal.
    pub(crate) fn start(bound: Duration, renewed: Stamp) -> std::io::Result<Lease> {
        let shared = Arc::new(Shared {
            bound,
            boot_ns: AtomicU64::new(renewed.boot_ns),
            wall_ns: AtomicU64::new(renewed.wall_ns),
            target: AtomicI32::new(0),
            expired: AtomicBool::new(false),
            expired_after_ns: AtomicU64::new(0),
            over: AtomicBool::new(false),
            fired: Notify::new(),
        });
        let watched = Arc::clone(&shared);
        std::thread::Builder::new().name("lease-watchdog".into()).spawn(move || watch(&watched))?;
        Ok(Lease { shared })
    }

    /// A heartbeat sent at `sent` got through.
    pub(crate) fn renew(&self, sent: Stamp) {
        if self.expired().is_none() {
            self.shared.boot_ns.fetch_max(sent.boot_ns, Ordering::SeqCst);
            self.shared.wall_ns.fetch_max(sent.wall_ns, Ordering::SeqCst);
        }
    }

    /// Hands the watchdog what to kill (`kill_arg`: see [`Shared::target`]);
    /// if the lease ran out before, for instance while frozen between the
    /// spawn and this call, it is killed here and now.
    pub(crate) fn guard(&self, kill_arg: i32) {
        self.shared.target.store(kill_arg, Ordering::SeqCst);
        if self.expired().is_some() || self.shared.age(Stamp::now()) > self.shared.bound {
            self.expire(Stamp::now());
        }
    }

    /// What is left of the lease: a grace must fit in it.
    pub(crate) fn left(&self) -> Duration {
        self.shared.bound.saturating_sub(self.shared.age(Stamp::now()))
    }

    /// `Some(age)` once the lease ran out and the command was killed.
    pub(crate) fn expired(&self) -> Option<Duration> {
        self.shared
            .expired
            .load(Ordering::SeqCst)
            .then(|| Duration::from_nanos(self.shared.expired_after_ns.load(Ordering::SeqCst)))
    }

    /// Resolves once the watchdog has killed the command.
    pub(crate) async fn fired(&self) {
        loop {
            let notified = self.shared.fired.notified();
            if self.expired().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// The command has ended: nothing left to kill (its pid may be reused).
    pub(crate) fn disarm(&self) {
        self.shared.target.store(0, Ordering::SeqCst);
    }

    fn expire(&self, now: Stamp) {
        expire(&self.shared, now);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shared.target.store(0, Ordering::SeqCst);
        self.shared.over.store(true, Ordering::SeqCst);
    }
}

fn expire(shared: &Shared, now: Stamp) {
    if !shared.expired.swap(true, Ordering::SeqCst) {
        shared.expired_after_ns.store(shared.age(now).as_nanos() as u64, Ordering::SeqCst);
    }
    shared.kill_target();
    shared.fired.notify_one();
}

fn watch(shared: &Shared) {
    while !shared.over.load(Ordering::SeqCst) {
        let now = Stamp::now();
        if shared.age(now) > shared.bound {
            expire(shared, now);
            return;
        }
        std::thread::sleep(LOOK_EVERY.min(shared.bound.saturating_sub(shared.age(now))).max(Duration::from_millis(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unrenewed_lease_kills_its_target_and_says_how_old_it_was() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("60")
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| unreachable!("{e}"));
        let lease = Lease::start(Duration::from_millis(200), Stamp::now()).unwrap_or_else(|e| unreachable!("{e}"));
        lease.guard(child.id().map(|id| id as i32).unwrap_or_else(|| unreachable!()));
        tokio::time::timeout(Duration::from_secs(30), lease.fired()).await.unwrap_or_else(|e| unreachable!("{e}"));
        let status = child.wait().await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
        assert!(lease.expired().is_some_and(|age| age > Duration::from_millis(200)));
    }

    #[test]
    fn a_lease_that_ran_out_before_the_command_started_kills_it_at_once() {
        let old = Stamp { boot_ns: 0, wall_ns: 0 };
        let lease = Lease::start(Duration::from_secs(3600), old).unwrap_or_else(|e| unreachable!("{e}"));
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap_or_else(|e| unreachable!("{e}"));
        lease.guard(child.id() as i32);
        let status = child.wait().unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
        assert!(lease.expired().is_some());
    }

    #[test]
    fn renewals_keep_it_alive() {
        let lease = Lease::start(Duration::from_secs(3600), Stamp::now()).unwrap_or_else(|e| unreachable!("{e}"));
        lease.renew(Stamp::now());
        assert!(lease.expired().is_none());
        assert!(lease.left() > Duration::from_secs(3500));
    }
}
