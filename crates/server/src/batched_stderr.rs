//! Log lines for stderr, written in batches by a thread of their own.
//!
//! The server logs one line per admission. Written one `write(2)` each, the
//! lines cost a system call per request, and a wake-up of whoever reads the
//! pipe (docs/dev/performance.md). Here
//! a line is appended to a buffer in memory; the first line into an empty
//! buffer wakes the writer thread, which lets more arrive for
//! [`BATCH_WINDOW`], then writes them all in one call.
//!
//! What it costs: lines reach stderr up to [`BATCH_WINDOW`] late, and that
//! window of lines is lost if the process is killed (SIGKILL, the OOM
//! killer). A panic writes them out before the process aborts, and so does
//! [`BatchedStderr::write_now`] at exit.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long the writer thread lets lines gather before it writes them.
pub const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// Pending bytes past which the line's writer writes them itself: when
/// stderr cannot keep up, loggers wait for it, as they would without batching.
const MAX_PENDING: usize = 1 << 20;

/// Capacity kept by the writer thread's buffer between batches.
const KEPT_CAPACITY: usize = 64 * 1024;

/// A handle on the batch; every clone writes into the same one.
#[derive(Debug, Clone)]
pub struct BatchedStderr(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Vec<u8>>,
    arrived: Condvar,
}

impl BatchedStderr {
    /// Starts the writer thread, and writes the batch out on a panic.
    pub fn start() -> io::Result<Self> {
        let batched = Self(Arc::default());
        let shared = batched.0.clone();
        std::thread::Builder::new().name("stderr-batches".to_owned()).spawn(move || write_batches(&shared))?;
        let on_panic = batched.clone();
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            on_panic.write_now();
            previous_hook(info);
        }));
        Ok(batched)
    }

    /// Writes what is pending now (at exit, before anything else is printed).
    pub fn write_now(&self) {
        // stderr's own lock orders batches: whoever holds it writes every
        // line appended before it took the batch.
        let mut stderr = io::stderr().lock();
        let batch = std::mem::take(&mut *self.0.pending());
        // Nowhere left to report a failing stderr.
        let _ = stderr.write_all(&batch);
    }
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Write for BatchedStderr {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.0.pending();
        if pending.is_empty() {
            self.0.arrived.notify_one();
        }
        pending.extend_from_slice(line);
        let full = pending.len() >= MAX_PENDING;
        drop(pending);
        if full {
            self.write_now();
        }
        Ok(line.len())
    }

    /// Batches are written by the writer thread, [`BatchedStderr::write_now`] forces one.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write_batches(shared: &Shared) {
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.pending();
        while pending.is_empty() {
            pending = shared.arrived.wait(pending).unwrap_or_else(PoisonError::into_inner);
        }
        drop(pending);
        std::thread::sleep(BATCH_WINDOW);
        let mut stderr = io::stderr().lock();
        std::mem::swap(&mut *shared.pending(), &mut batch);
        let _ = stderr.write_all(&batch);
        drop(stderr);
        batch.clear();
        batch.shrink_to(KEPT_CAPACITY);
    }
}
