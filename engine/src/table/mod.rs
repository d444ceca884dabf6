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
pub mod huge;
mod index;
pub mod mapped;
pub mod sources;
pub mod timewait;

pub use conn::{ConnTable, Handle, InsertError, TableStats};
pub use hash::{HashKey, TableKey};
pub(crate) use mapped::Mapped;
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
