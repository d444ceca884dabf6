//! The shard's connection table and TIME-WAIT table.
//!
//! - [`conn`]: established (and engine-kept half-open) connections, 4-tuple to
//!   control block, addressed by generation-checked handles.
//! - [`timewait`]: connections in TIME-WAIT (RFC 9293 §3.6), compact state
//!   only, held for 2MSL in a FIFO ring that is its own timer.
//!
//! Both are preallocated for a configured capacity and share one index
//! design (`index.rs`: Robin Hood probing over `tag | slot` buckets) and one
//! keyed hash (`hash.rs`). Nothing here reads a clock: time is passed in.

pub mod conn;
mod hash;
mod index;
pub mod sources;
pub mod timewait;

pub use conn::{ConnTable, Handle, InsertError, TableStats};
pub use hash::{HashKey, TableKey};
pub use sources::{Admit, SourceTable};
pub use timewait::{TimeWaitTable, TwFull, TwFullPolicy, TwHandle, TwKey, TwState, TwStats};

/// Starts loading the cache line holding `r` (a hint; never faults).
#[inline(always)]
fn prefetch<T>(r: &T) {
    prefetch_hint(r as *const T as *const u8)
}

/// Starts loading the cache line holding address `p`, which need not be
/// valid: a prefetch is a hint and never faults.
#[inline(always)]
pub fn prefetch_hint(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint that never faults, whatever the address;
    // SSE is part of the x86_64 baseline.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `n` copies of `value` in a vector asked to be backed by huge pages
/// before its pages are first written (the advice has to come before the
/// first touch: pages faulted in one 4 KiB page at a time stay so until
/// khugepaged gets round to them).
pub(crate) fn huge_vec<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise_huge_pages(v.as_ptr() as *const u8, n * core::mem::size_of::<T>());
    v.resize(n, value);
    v
}

/// Asks the kernel to back a large table with transparent huge pages.
///
/// A lookup at millions of entries is two random memory reads (bucket,
/// slot); with 4 KiB pages each also walks the page table, with 2 MiB pages
/// the TLB covers 1000 times more. On kernels where THP is `madvise`-only
/// this is what turns it on. Advice only: failure (or a non-Linux target)
/// changes speed, not behaviour.
fn advise_huge_pages(ptr: *const u8, bytes: usize) {
    const HUGE: usize = 2 << 20;
    if bytes < HUGE {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let page = 4096usize;
        let start = (ptr as usize + page - 1) & !(page - 1);
        let end = (ptr as usize + bytes) & !(page - 1);
        if end > start {
            // SAFETY: madvise with MADV_HUGEPAGE only changes how the kernel
            // backs pages of this mapping, which we own; it never changes
            // their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ptr;
}
