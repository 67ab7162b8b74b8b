use std::process::ExitCode;

/// Only the static musl build links these (and the tests test them).
#[cfg(any(test, target_env = "musl"))]
mod mem;

mod allocator;

/// The webhook server is allocation-heavy (every admission builds JSON maps),
/// and musl's allocator is slow: mimalloc (Cargo.toml says why this one).
#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's include/mimalloc.h (the same index
/// in its v2 and v3, which libmimalloc-sys 0.1.49 builds by default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Freed memory goes back to the system 10 ms after it was freed, so an
    // idle server returns the peak of its largest admission, while a busy
    // one reuses its pages: purging at once (0) made every admission fault
    // its pages in again, which slowed the server under load.
    // MIMALLOC_PURGE_DELAY in the environment wins.
    // No transparent huge pages: mimalloc asks for them on its arenas, and
    // the kernel then backs every touched region with 2 MiB pages, which
    // multiplied the idle RSS and what a large admission costs, for little
    // throughput. MIMALLOC_ALLOW_THP=1 in the environment keeps them.
    // The figures of both: docs/dev/performance.md ("Allocator").
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // Best effort: a kernel without THP has nothing to disable.
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's process-wide options, which it
        // allows at any time from any thread; the index is checked above.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    }
    kube_once::cmd::run(kube_once::cmd::parse())
}
