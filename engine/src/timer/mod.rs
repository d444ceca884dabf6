//! Hierarchical timing wheel (Varghese and Lauck, "Hashed and Hierarchical
//! Timing Wheels", SOSP 1987), shaped after tokio's
//! `runtime/time/wheel/{mod,level}.rs` but single-threaded and pointer-free.
//!
//! # What it is
//!
//! One [`Wheel`] per shard holds every protocol timer of that shard (RTO,
//! delayed ACK, keepalive, TIME-WAIT, ...). Time is a `u64` tick of one
//! millisecond ([`crate::time::Instant::total_millis`]); the wheel never reads
//! a clock, the caller passes `now` in.
//!
//! Timers are identified by a [`TimerId`]: an index into nodes preallocated by
//! [`Wheel::new`]. A node is 16 bytes (deadline, list, position). Each slot's
//! list is a chain of 64-byte blocks of 15 timer ids, all full but the last,
//! from a preallocated pool (`capacity / 15` blocks and one per list suffice):
//! arming appends to the list's last block, cancelling moves the list's last
//! id into the hole, and `poll` takes ids from the end. Arm, re-arm and
//! cancel are O(1), and nothing allocates after `new`.
//!
//! The blocks are for expiry. With millions of timers, those due in one slot
//! are scattered over hundreds of MB of nodes, and a linked list through the
//! nodes visits them one dependent cache miss after another. Walking a block
//! instead names the ids ahead, so `poll` starts loading the node 12 places
//! ahead of the one it hands out and the misses overlap (at 10 M pending,
//! 250 ns a timer with the linked list, 43 ns with the blocks).
//!
//! # Slot math
//!
//! Six levels of 64 slots. A slot at level `L` covers `64^L` ticks, a level
//! `64^(L+1)`; the whole wheel spans `64^6 = 2^36` ms (about 2.2 years).
//! With `elapsed` the tick the wheel has advanced to:
//!
//! * `level_for(elapsed, when)` is the highest group of six bits in which
//!   `elapsed ^ when` differs (the low six bits are forced on, so anything
//!   within the current 64 ms lands at level 0);
//! * `slot_for(when, level) = (when >> 6 * level) % 64`.
//!
//! A timer is therefore filed at the coarsest level at which its deadline is
//! still in a different slot than `elapsed`, and never in the slot `elapsed`
//! is in. Each level keeps an `occupied: u64` bitmap; the next slot that comes
//! due is `occupied.rotate_right(current_slot).trailing_zeros()` of the lowest
//! non-empty level, so finding work never scans slots, and [`Wheel::poll`]
//! jumps straight from one occupied slot to the next however far `now` moved
//! (two hours with millions of timers costs the occupied slots and the timers
//! in them, not 7.2 million ticks).
//!
//! # Cascading and precision
//!
//! When a slot at level `L > 0` comes due, the wheel advances to the slot's
//! *start* and re-files its timers relative to that tick: each lands at a
//! lower level (or in the overdue list, to fire at once, if its deadline is
//! that very tick). The whole slot is re-filed in one pass, block by block,
//! the nodes of the next block's timers loading while one block's are
//! re-filed (at 10 M pending, expiry 43-48 -> 34-42 ns a timer on an AMD
//! EPYC VM, against taking them one `poll` at a time). Level 0 slots are
//! one tick wide, so a timer is filed in a level-0 slot exactly at its deadline
//! before it fires. Hence, at every level:
//!
//! | level | slot width   | level span    | lateness |
//! |-------|--------------|---------------|----------|
//! | 0     | 1 ms         | 64 ms         | 0        |
//! | 1     | 64 ms        | 4.1 s         | 0        |
//! | 2     | 4.1 s        | 4.4 min       | 0        |
//! | 3     | 4.4 min      | 4.7 h         | 0        |
//! | 4     | 4.7 h        | 12.4 days     | 0        |
//! | 5     | 12.4 days    | 2.2 years     | 0        |
//!
//! A timer fires on the first `poll(now)` with `now >= deadline`, never
//! earlier and never later (the only lateness is the caller's polling period
//! and the sub-millisecond truncation of the tick).
//!
//! # Lazy re-arm
//!
//! Re-arming a timer *later* (the RTO and keepalive pushed back on every ACK)
//! only records the new deadline: the node stays where it is and is re-filed
//! when its old slot comes due. Re-arming *earlier* moves the node. Either way
//! a node is always filed in a slot that starts no later than its deadline,
//! which is what keeps it from firing late; [`Wheel::next_expiry`] reports
//! slot starts, so after lazy re-arms it is a lower bound.
//!
//! # Beyond the horizon
//!
//! A deadline `2^36` ms or more ahead is clamped: it is filed in the last
//! top-level slot of the current rotation, and re-filed (clamped again if it
//! is still out of range) when that slot comes due, roughly every 2.1 years of
//! wheel time. Its deadline is kept exact, so it still fires on time. The
//! cost is one re-filing per such timer per rotation the wheel moves through.
//!
//! # Overdue timers
//!
//! A timer armed for a tick the wheel has already reached fires on the next
//! poll, ahead of every timer still in the wheel (their deadlines are all
//! later). Among themselves, overdue timers come out in no particular order;
//! every other timer comes out in deadline order (ties in any order).

mod wheel;

pub use wheel::{TimerId, Wheel, HORIZON_MS};

#[cfg(test)]
mod tests;
