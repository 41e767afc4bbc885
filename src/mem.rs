//! Heap policy of the daemon: how glibc's malloc may keep memory, so that a burst of work
//! (argon2's 7 MiB per login on blocking threads, large messages, a 10,000-message sync)
//! does not stay resident on a board with 512 MiB to 8 GiB of RAM.
//!
//! glibc raises its mmap threshold after the first large block is freed, after which large
//! blocks come from per-thread arenas and are kept (measured: 1.37 GiB resident after a
//! few hundred concurrent POP3 logins, 145 MiB idle after the IMAP benchmark; see
//! benches/results-notes.md). [`tune`] fixes the threshold at 1 MiB (large blocks are mapped
//! and unmapped each time) and caps the arenas; [`trim`] returns free heap pages to the
//! kernel, and the daemon calls it every [`TRIM_EVERY`].
//!
//! Other C libraries (musl) are left alone: these calls are glibc's.

use std::time::Duration;

/// How often the daemon gives free heap back to the kernel.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Blocks of at least this size are mmapped, whatever was freed before.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// malloc arenas at most: fewer arenas, less memory kept between bursts; the daemon's
/// hot paths allocate little, so contention is not what limits it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENA_MAX: libc::c_int = 4;

/// Sets the heap policy; call once at start, before threads are spawned.
#[allow(unsafe_code)] // FFI to glibc; no Rust-side invariants involved.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}

/// Returns free heap pages of every arena to the kernel.
#[allow(unsafe_code)] // FFI to glibc; no Rust-side invariants involved.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe (it locks each arena in turn).
    unsafe {
        libc::malloc_trim(0);
    }
}
