//! The wheel itself: slot math, nodes, intrusive lists, arm/cancel/poll.
//! See the module doc in `mod.rs` for the design.

/// Identifies a timer: an index into the wheel's preallocated nodes
/// (`0..capacity`).
pub type TimerId = u32;

/// Bits of the tick consumed by one level.
const LEVEL_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << LEVEL_BITS;
/// Number of levels.
const LEVELS: usize = 6;
/// Ticks (ms) the wheel spans: `64^6 = 2^36` ms, about 2.2 years. Deadlines
/// further out are clamped to the top level and re-filed.
pub const HORIZON_MS: u64 = 1 << (LEVEL_BITS as u64 * LEVELS as u64);

/// The end of a list, and "no such node".
const NIL: u32 = u32::MAX;
/// List index of the overdue list (armed for a tick already reached), after
/// the `LEVELS * SLOTS` slot lists. Its "occupied" bit lives in an extra
/// bitmap word so linking never has to branch on it.
const PENDING: u32 = (LEVELS * SLOTS) as u32;
const LISTS: usize = LEVELS * SLOTS + 1;
/// `Node::list` of a node that is not armed.
const UNFILED: u32 = u32::MAX;

/// Ticks covered by one slot at `level`.
#[inline]
const fn slot_range(level: usize) -> u64 {
    1 << (LEVEL_BITS as usize * level)
}

/// Ticks covered by the whole of `level`.
#[inline]
const fn level_range(level: usize) -> u64 {
    1 << (LEVEL_BITS as usize * (level + 1))
}

/// The level a timer due at `when` is filed at when the wheel stands at
/// `elapsed`: the highest group of six bits in which the two differ, clamped
/// to the top level for deadlines beyond the horizon (tokio's math).
#[inline]
pub(super) fn level_for(elapsed: u64, when: u64) -> usize {
    const SLOT_MASK: u64 = (1 << LEVEL_BITS) - 1;
    // Forcing the low bits on caps the leading zeros: a deadline within the
    // current 64 ticks lands at level 0.
    let mut masked = (elapsed ^ when) | SLOT_MASK;
    if masked >= HORIZON_MS {
        masked = HORIZON_MS - 1;
    }
    let significant = 63 - masked.leading_zeros() as usize;
    significant / LEVEL_BITS as usize
}

/// The slot of `when` at `level`.
#[inline]
pub(super) fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (LEVEL_BITS as usize * level)) % SLOTS as u64) as usize
}

/// One timer. `repr(packed(4))` keeps it at 20 bytes instead of 24: the engine
/// has millions of these, and every poll and arm touches them. Fields are only
/// ever copied in and out, never borrowed, so packing is sound.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
pub(super) struct Node {
    /// The tick the timer is armed for. May be later than the slot it is
    /// filed in (lazy re-arm), never earlier than that slot's start.
    deadline: u64,
    prev: u32,
    next: u32,
    /// Which list the node is in: `level * 64 + slot`, `PENDING`, or
    /// `UNFILED` when the timer is not armed.
    list: u32,
}

pub(super) const NODE_SIZE: usize = 20;
const _: () = assert!(core::mem::size_of::<Node>() == NODE_SIZE);

/// A hierarchical timing wheel over preallocated timer nodes. See the module
/// documentation.
///
/// Ids at or beyond [`capacity`](Wheel::capacity) are a caller bug: `arm` and
/// `cancel` `debug_assert!` on them and otherwise ignore them; `is_armed` and
/// `deadline` report them as not armed. Nothing panics in release builds.
pub struct Wheel {
    nodes: crate::table::Mapped<Node>,
    /// Head of each slot's list, plus the overdue list at `PENDING`.
    heads: [u32; LISTS],
    /// Bit `s` of word `l` is set iff list `l * 64 + s` is non-empty; word 6
    /// bit 0 mirrors the overdue list and is never read.
    occupied: [u64; LEVELS + 1],
    /// The tick the wheel has advanced to. Every timer filed in a slot has a
    /// deadline after it.
    elapsed: u64,
    /// The slot whose timers `poll` is handing out (`NIL` if none). Its bit in
    /// `occupied` is already clear; nothing is ever filed into it, since it is
    /// the slot `elapsed` is in. Every deadline in it is >= `elapsed`.
    draining: u32,
    /// A lower bound of the deadlines in the overdue list while it is
    /// non-empty.
    pending_min: u64,
    len: u32,
}

impl Wheel {
    /// Preallocates `capacity` timer nodes. `now` is the current tick (ms).
    pub fn new(capacity: u32, now: u64) -> Wheel {
        debug_assert!(capacity < NIL, "capacity must leave room for NIL");
        let capacity = capacity.min(NIL - 1);
        let node = Node { deadline: 0, prev: NIL, next: NIL, list: UNFILED };
        Wheel {
            nodes: crate::table::Mapped::filled(capacity as usize, node),
            heads: [NIL; LISTS],
            occupied: [0; LEVELS + 1],
            elapsed: now,
            draining: NIL,
            pending_min: u64::MAX,
            len: 0,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.nodes.len() as u32
    }

    /// Starts loading timer `id`'s node, which a re-arm will read (a hint).
    #[inline(always)]
    pub fn prefetch(&self, id: TimerId) {
        if let Some(n) = self.nodes.get(id as usize) {
            crate::table::prefetch_hint(n as *const Node as *const u8);
        }
    }

    /// Arms (or re-arms) timer `id` to fire at tick `when` (a `when` <= now
    /// fires on the next poll).
    ///
    /// Re-arming later is lazy: the node stays in its slot and is re-filed when
    /// that slot fires. Re-arming earlier moves it. O(1), no allocation.
    /// An out-of-range `id` is ignored (and asserted in debug builds).
    pub fn arm(&mut self, id: TimerId, when: u64) {
        let Some(node) = self.nodes.get_mut(id as usize) else {
            debug_assert!(false, "timer id {id} out of range");
            return;
        };
        let list = node.list;
        let old = node.deadline;
        node.deadline = when;
        if list == UNFILED {
            self.len += 1;
            let list = self.list_for(when);
            self.link(id, list, when);
            return;
        }
        if list == PENDING {
            // Examined (fired or re-filed) before the wheel advances again.
            self.pending_min = self.pending_min.min(when);
            return;
        }
        if when >= old || (list == self.draining && when >= self.elapsed) {
            // Any slot but the draining one starts no later than `old`, hence
            // than `when`. The draining slot is examined before the wheel
            // advances, so it may keep any deadline not before `elapsed`. One
            // before `elapsed` must leave it for the overdue list: left there
            // it would break "deadlines in the draining slot are >= elapsed",
            // and `next_expiry` (which reports `elapsed` for that slot) would
            // name a tick after the timer's deadline.
            return;
        }
        let target = self.list_for(when);
        if target != list {
            self.unlink(id);
            self.link(id, target, when);
        }
    }

    /// Cancels timer `id` if armed. O(1). An out-of-range `id` is ignored (and
    /// asserted in debug builds).
    pub fn cancel(&mut self, id: TimerId) {
        let Some(node) = self.nodes.get(id as usize) else {
            debug_assert!(false, "timer id {id} out of range");
            return;
        };
        if node.list != UNFILED {
            self.unlink(id);
            self.nodes[id as usize].list = UNFILED;
            self.len -= 1;
        }
    }

    pub fn is_armed(&self, id: TimerId) -> bool {
        self.nodes.get(id as usize).is_some_and(|n| n.list != UNFILED)
    }

    /// The deadline timer `id` is armed for.
    pub fn deadline(&self, id: TimerId) -> Option<u64> {
        let node = self.nodes.get(id as usize)?;
        (node.list != UNFILED).then_some(node.deadline)
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Advances to `now` and returns the next timer whose deadline is <= now,
    /// disarming it; None when nothing more is due. Callers loop until None.
    ///
    /// Expiry order is by deadline (ties in any order; overdue timers, see the
    /// module doc, first and in any order); a timer never fires before its
    /// deadline. `now` must not go backwards: an earlier `now` is taken as the
    /// tick the wheel already stands at.
    pub fn poll(&mut self, now: u64) -> Option<TimerId> {
        loop {
            let head = self.heads[PENDING as usize];
            if head != NIL {
                self.unlink(head);
                if let Some(id) = self.settle(head) {
                    return Some(id);
                }
                continue;
            }
            if self.draining != NIL {
                let head = self.heads[self.draining as usize];
                if head != NIL {
                    // Pop the head; the slot's occupied bit is already clear.
                    let next = self.nodes[head as usize].next;
                    self.heads[self.draining as usize] = next;
                    if next != NIL {
                        self.nodes[next as usize].prev = NIL;
                    }
                    if let Some(id) = self.settle(head) {
                        return Some(id);
                    }
                    continue;
                }
                self.draining = NIL;
            }
            match self.next_slot() {
                Some((list, start)) if start <= now => {
                    self.occupied[list as usize / SLOTS] &= !(1 << (list as usize % SLOTS));
                    self.draining = list;
                    self.elapsed = start;
                }
                _ => {
                    self.elapsed = self.elapsed.max(now);
                    return None;
                }
            }
        }
    }

    /// The earliest tick at which poll could return something (a lower bound
    /// where cascading or lazy re-arm makes the exact value unknown, never
    /// later than the real one), or None if nothing is armed.
    pub fn next_expiry(&self) -> Option<u64> {
        if self.heads[PENDING as usize] != NIL {
            return Some(self.pending_min);
        }
        if self.draining != NIL && self.heads[self.draining as usize] != NIL {
            return Some(self.elapsed);
        }
        self.next_slot().map(|(_, start)| start)
    }

    /// A node just unlinked from the overdue list or the draining slot: fire
    /// it if due at the current tick, otherwise file it relative to it.
    #[inline]
    fn settle(&mut self, id: TimerId) -> Option<TimerId> {
        let node = &mut self.nodes[id as usize];
        let when = node.deadline;
        if when <= self.elapsed {
            node.list = UNFILED;
            self.len -= 1;
            Some(id)
        } else {
            let list = self.list_for(when);
            self.link(id, list, when);
            None
        }
    }

    /// The list a timer due at `when` belongs in, relative to `elapsed`.
    #[inline]
    fn list_for(&self, when: u64) -> u32 {
        if when <= self.elapsed {
            return PENDING;
        }
        let level = level_for(self.elapsed, when);
        let slot = if level < LEVELS - 1 {
            slot_for(when, level)
        } else {
            // The top level is a ring: slots before the current one belong to
            // the next rotation. `horizon_end` is the current top slot's start
            // one rotation on; a deadline there or later would land in the
            // current slot (or wrap further), so it is clamped into the last
            // slot of the rotation and re-filed when that comes due.
            let top = LEVELS - 1;
            let horizon_end = (self.elapsed & !(slot_range(top) - 1)).saturating_add(level_range(top));
            if when >= horizon_end {
                (slot_for(self.elapsed, top) + SLOTS - 1) % SLOTS
            } else {
                slot_for(when, top)
            }
        };
        (level * SLOTS + slot) as u32
    }

    /// The next occupied slot and the tick it starts at: the first one after
    /// the current slot of the lowest non-empty level. Every timer of a level
    /// lies within the current slot of the level above, so the lowest level
    /// holds the earliest.
    fn next_slot(&self) -> Option<(u32, u64)> {
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let now_slot = slot_for(self.elapsed, level) as u32;
            let slot = (now_slot + occupied.rotate_right(now_slot).trailing_zeros()) % 64;
            let level_start = self.elapsed & !(level_range(level) - 1);
            let mut start = level_start + slot as u64 * slot_range(level);
            if start <= self.elapsed {
                // Only the top level wraps: the slot is in the next rotation.
                debug_assert_eq!(level, LEVELS - 1);
                start = start.saturating_add(level_range(level));
            }
            return Some(((level * SLOTS) as u32 + slot, start));
        }
        None
    }

    /// Pushes `id` on the front of `list`.
    #[inline]
    fn link(&mut self, id: TimerId, list: u32, when: u64) {
        let head = self.heads[list as usize];
        if list == PENDING {
            self.pending_min = if head == NIL { when } else { self.pending_min.min(when) };
        }
        let node = &mut self.nodes[id as usize];
        node.prev = NIL;
        node.next = head;
        node.list = list;
        if head != NIL {
            self.nodes[head as usize].prev = id;
        }
        self.heads[list as usize] = id;
        self.occupied[list as usize / SLOTS] |= 1 << (list as usize % SLOTS);
    }

    /// Removes `id` from the list it is in (leaving `Node::list` stale).
    #[inline]
    fn unlink(&mut self, id: TimerId) {
        let Node { prev, next, list, .. } = self.nodes[id as usize];
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.heads[list as usize] = next;
            if next == NIL {
                self.occupied[list as usize / SLOTS] &= !(1 << (list as usize % SLOTS));
            }
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// Test hook: the tick the wheel stands at.
    #[cfg(test)]
    pub(super) fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Test hook: the list timer `id` is filed in (`level * 64 + slot`).
    #[cfg(test)]
    pub(super) fn list_of(&self, id: TimerId) -> u32 {
        self.nodes[id as usize].list
    }

    /// Test hook: checks every structural invariant, O(capacity).
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        let mut seen = 0u32;
        for list in 0..LISTS {
            let bit = self.occupied[list / SLOTS] >> (list % SLOTS) & 1 == 1;
            let mut prev = NIL;
            let mut id = self.heads[list];
            if list as u32 == self.draining {
                assert!(!bit, "draining slot {list} marked occupied");
            } else {
                assert_eq!(bit, id != NIL, "occupied bit of list {list}");
            }
            while id != NIL {
                let node = self.nodes[id as usize];
                assert_eq!(node.list, list as u32, "node {id} list");
                assert_eq!(node.prev, prev, "node {id} prev");
                let deadline = node.deadline;
                if list as u32 == PENDING {
                    assert!(self.pending_min <= deadline);
                } else if list as u32 == self.draining {
                    assert!(deadline >= self.elapsed, "node {id} draining but early");
                } else {
                    assert!(deadline > self.elapsed, "node {id} in a slot but overdue");
                    // Filed in a slot starting after `elapsed` and no later
                    // than its deadline.
                    let level = list / SLOTS;
                    let start = self.slot_start(list as u32);
                    assert!(start > self.elapsed, "slot {list} not in the future");
                    assert!(start <= deadline, "node {id} at level {level} would be late");
                }
                seen += 1;
                prev = id;
                id = node.next;
            }
        }
        assert_eq!(seen, self.len, "len");
    }

    /// Test hook: the tick list `list` (not the draining one) comes due.
    #[cfg(test)]
    fn slot_start(&self, list: u32) -> u64 {
        let level = list as usize / SLOTS;
        let slot = list as u64 % SLOTS as u64;
        let level_start = self.elapsed & !(level_range(level) - 1);
        let start = level_start + slot * slot_range(level);
        if start <= self.elapsed {
            start + level_range(level)
        } else {
            start
        }
    }
}

impl core::fmt::Debug for Wheel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Wheel")
            .field("capacity", &self.nodes.len())
            .field("len", &self.len)
            .field("elapsed", &self.elapsed)
            .field("next_expiry", &self.next_expiry())
            .finish()
    }
}
