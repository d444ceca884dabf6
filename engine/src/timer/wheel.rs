//! The wheel itself: slot math, nodes, lists of blocks, arm/cancel/poll.
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

/// Timer ids a block holds.
const BLOCK_IDS: usize = 15;
/// Bits of `Node::pos` that give the position inside the block.
const POS_BITS: u32 = 4;
/// How many timers ahead of the one `poll` takes it starts loading the node
/// of (see [`Wheel::prefetch_ahead`]).
const AHEAD: usize = 12;
/// The most timers a wheel can hold: a block index must fit `Node::pos`
/// beside the position in the block.
const MAX_CAPACITY: u32 = ((1u32 << (32 - POS_BITS)) - LISTS as u32 - 2) * BLOCK_IDS as u32;

/// One timer: 16 bytes, four to a cache line. All zero is a timer that is
/// not armed, so the nodes of a new wheel are untouched zero pages until
/// their timers are first armed.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(super) struct Node {
    /// The tick the timer is armed for. May be later than the slot it is
    /// filed in (lazy re-arm), never earlier than that slot's start.
    deadline: u64,
    /// Which list the node is in, plus one: `level * 64 + slot + 1`,
    /// `PENDING + 1`, or 0 when the timer is not armed.
    list: u32,
    /// Where in the list: block index << POS_BITS | position in the block.
    pos: u32,
}

pub(super) const NODE_SIZE: usize = 16;
const _: () = assert!(core::mem::size_of::<Node>() == NODE_SIZE);

impl Node {
    /// The list the node is filed in, None if not armed.
    #[inline(always)]
    fn filed(&self) -> Option<u32> {
        self.list.checked_sub(1)
    }
}

/// One cache line of a list: up to 15 timer ids and the block before it.
/// A list is a chain of full blocks ending in its tail block, followed from
/// the tail back through `prev`.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block {
    ids: [TimerId; BLOCK_IDS],
    /// The block before this one in its list, or the next free block.
    prev: u32,
}

const _: () = assert!(core::mem::size_of::<Block>() == 64);

/// A hierarchical timing wheel over preallocated timer nodes. See the module
/// documentation.
///
/// Ids at or beyond [`capacity`](Wheel::capacity) are a caller bug: `arm` and
/// `cancel` `debug_assert!` on them and otherwise ignore them; `is_armed` and
/// `deadline` report them as not armed. Nothing panics in release builds.
pub struct Wheel {
    nodes: crate::table::Mapped<Node>,
    /// The lists' blocks. Every list but the last block of each is full, so
    /// `capacity / 15 + LISTS + 1` blocks always suffice.
    blocks: crate::table::Mapped<Block>,
    /// Blocks never used yet start here (their pages untouched).
    fresh: u32,
    /// Freed blocks, chained through `Block::prev`.
    free: u32,
    /// Tail block of each slot's list and of the overdue list at `PENDING`
    /// (`NIL`: empty), and how many ids that block holds (1..=15).
    tails: [u32; LISTS],
    fills: [u8; LISTS],
    /// Bit `s` of word `l` is set iff list `l * 64 + s` is non-empty; word 6
    /// bit 0 mirrors the overdue list and is never read.
    occupied: [u64; LEVELS + 1],
    /// The tick the wheel has advanced to. Every timer filed in a slot has a
    /// deadline after it.
    elapsed: u64,
    /// The level-0 slot whose timers `poll` is handing out (`NIL` if none;
    /// a coarser slot is re-filed whole when it comes due). Its bit in
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
        debug_assert!(capacity <= MAX_CAPACITY, "capacity must leave room for the block index");
        let capacity = capacity.min(MAX_CAPACITY);
        let blocks = capacity as usize / BLOCK_IDS + LISTS + 1;
        Wheel {
            // SAFETY: all-zero bytes are a valid Node (not armed) and a
            // valid Block.
            nodes: unsafe { crate::table::Mapped::zeroed(capacity as usize) },
            blocks: unsafe { crate::table::Mapped::zeroed(blocks) },
            fresh: 0,
            free: NIL,
            tails: [NIL; LISTS],
            fills: [0; LISTS],
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
        let filed = node.filed();
        let old = node.deadline;
        node.deadline = when;
        let Some(list) = filed else {
            self.len += 1;
            let list = self.list_for(when);
            self.link(id, list, when);
            return;
        };
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
        if node.filed().is_some() {
            self.unlink(id);
            self.nodes[id as usize].list = 0;
            self.len -= 1;
        }
    }

    pub fn is_armed(&self, id: TimerId) -> bool {
        self.nodes.get(id as usize).is_some_and(|n| n.filed().is_some())
    }

    /// The deadline timer `id` is armed for.
    pub fn deadline(&self, id: TimerId) -> Option<u64> {
        let node = self.nodes.get(id as usize)?;
        node.filed().map(|_| node.deadline)
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
            if let Some(id) = self.pop(PENDING) {
                if let Some(id) = self.settle(id) {
                    return Some(id);
                }
                continue;
            }
            if self.draining != NIL {
                // The slot's occupied bit is already clear.
                if let Some(id) = self.pop(self.draining) {
                    if let Some(id) = self.settle(id) {
                        return Some(id);
                    }
                    continue;
                }
                self.draining = NIL;
            }
            match self.next_slot() {
                Some((list, start)) if start <= now => {
                    self.occupied[list as usize / SLOTS] &= !(1 << (list as usize % SLOTS));
                    self.elapsed = start;
                    if list as usize >= SLOTS {
                        // A coarser slot: re-file all of it now, relative to
                        // its start (those due at it go to the overdue list).
                        self.cascade(list as usize);
                    } else {
                        self.draining = list;
                    }
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
        if self.tails[PENDING as usize] != NIL {
            return Some(self.pending_min);
        }
        if self.draining != NIL && self.tails[self.draining as usize] != NIL {
            return Some(self.elapsed);
        }
        self.next_slot().map(|(_, start)| start)
    }

    /// A node just taken from the overdue list or the draining slot: fire
    /// it if due at the current tick, otherwise file it relative to it.
    #[inline]
    fn settle(&mut self, id: TimerId) -> Option<TimerId> {
        let node = &mut self.nodes[id as usize];
        let when = node.deadline;
        if when <= self.elapsed {
            node.list = 0;
            self.len -= 1;
            Some(id)
        } else {
            let list = self.list_for(when);
            self.link(id, list, when);
            None
        }
    }

    /// Re-files every timer of list `l` (a slot at level 1 or above that has
    /// just come due, its occupied bit already clear) relative to `elapsed`,
    /// in one pass over its blocks: while one block's timers are re-filed,
    /// the nodes of the next block's are already loading.
    fn cascade(&mut self, l: usize) {
        let mut cur = self.tails[l];
        let mut fill = self.fills[l] as usize;
        self.tails[l] = NIL;
        self.fills[l] = 0;
        if cur == NIL {
            return;
        }
        for &id in &self.blocks[cur as usize].ids[..fill] {
            self.prefetch(id);
        }
        while cur != NIL {
            let block = self.blocks[cur as usize];
            if block.prev != NIL {
                let next = &self.blocks[block.prev as usize];
                for &id in &next.ids {
                    self.prefetch(id);
                }
                if next.prev != NIL {
                    crate::table::prefetch_hint(&self.blocks[next.prev as usize] as *const Block as *const u8);
                }
            }
            // Freed first: the re-filing below may take it for another list,
            // and its ids are in `block`.
            self.blocks[cur as usize].prev = self.free;
            self.free = cur;
            for &id in &block.ids[..fill] {
                let when = self.nodes[id as usize].deadline;
                let list = self.list_for(when);
                self.link(id, list, when);
            }
            cur = block.prev;
            fill = BLOCK_IDS;
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

    /// Appends `id` to `list`.
    #[inline]
    fn link(&mut self, id: TimerId, list: u32, when: u64) {
        let l = list as usize;
        if list == PENDING {
            self.pending_min = if self.tails[l] == NIL { when } else { self.pending_min.min(when) };
        }
        let mut fill = self.fills[l] as usize;
        if self.tails[l] == NIL || fill == BLOCK_IDS {
            let b = self.take_block();
            self.blocks[b as usize].prev = self.tails[l];
            self.tails[l] = b;
            fill = 0;
        }
        let tail = self.tails[l];
        self.blocks[tail as usize].ids[fill] = id;
        self.fills[l] = fill as u8 + 1;
        let node = &mut self.nodes[id as usize];
        node.list = list + 1;
        node.pos = tail << POS_BITS | fill as u32;
        self.occupied[l / SLOTS] |= 1 << (l % SLOTS);
    }

    /// Removes `id` from the list it is in (leaving `Node::list` stale): the
    /// list's last id takes its place.
    #[inline]
    fn unlink(&mut self, id: TimerId) {
        let Node { list, pos, .. } = self.nodes[id as usize];
        let l = (list - 1) as usize;
        let last = self.drop_last(l);
        if last != id {
            self.blocks[(pos >> POS_BITS) as usize].ids[(pos & ((1 << POS_BITS) - 1)) as usize] = last;
            self.nodes[last as usize].pos = pos;
        }
    }

    /// Takes the last id of list `l`, if any, starting to load the nodes
    /// `poll` will want next.
    #[inline]
    fn pop(&mut self, l: u32) -> Option<TimerId> {
        if self.tails[l as usize] == NIL {
            return None;
        }
        self.prefetch_ahead(l as usize);
        Some(self.drop_last(l as usize))
    }

    /// Starts loading the node of the id `AHEAD` places before the last of
    /// list `l`, so that draining a slot keeps several memory reads in flight
    /// instead of waiting for each node in turn; and, on entering a block,
    /// the block before it, whose ids are read from `AHEAD` pops on.
    #[inline(always)]
    fn prefetch_ahead(&self, l: usize) {
        let tail = &self.blocks[self.tails[l] as usize];
        let fill = self.fills[l] as usize;
        if fill > AHEAD {
            self.prefetch(tail.ids[fill - 1 - AHEAD]);
            if tail.prev != NIL && (fill == BLOCK_IDS || fill == AHEAD + 1) {
                crate::table::prefetch_hint(&self.blocks[tail.prev as usize] as *const Block as *const u8);
            }
        } else if tail.prev != NIL {
            self.prefetch(self.blocks[tail.prev as usize].ids[BLOCK_IDS + fill - 1 - AHEAD]);
        }
    }

    /// Removes and returns the last id of the non-empty list `l`, freeing its
    /// tail block when that empties, and clearing the list's occupied bit
    /// when the list does.
    #[inline]
    fn drop_last(&mut self, l: usize) -> TimerId {
        let tail = self.tails[l];
        let fill = self.fills[l] as usize - 1;
        let block = &self.blocks[tail as usize];
        let last = block.ids[fill];
        if fill > 0 {
            self.fills[l] = fill as u8;
        } else {
            let prev = block.prev;
            self.tails[l] = prev;
            self.fills[l] = if prev == NIL { 0 } else { BLOCK_IDS as u8 };
            self.blocks[tail as usize].prev = self.free;
            self.free = tail;
            if prev == NIL {
                self.occupied[l / SLOTS] &= !(1 << (l % SLOTS));
            }
        }
        last
    }

    /// A block for a list's new tail: a freed one, else a never-used one.
    #[inline]
    fn take_block(&mut self) -> u32 {
        if self.free != NIL {
            let b = self.free;
            self.free = self.blocks[b as usize].prev;
            return b;
        }
        // Every list's blocks but its tail are full, so at most
        // len / 15 + LISTS are in use, fewer than the blocks there are.
        assert!((self.fresh as usize) < self.blocks.len(), "timer blocks exhausted");
        self.fresh += 1;
        self.fresh - 1
    }

    /// Test hook: the tick the wheel stands at.
    #[cfg(test)]
    pub(super) fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Test hook: the list timer `id` is filed in (`level * 64 + slot`).
    #[cfg(test)]
    pub(super) fn list_of(&self, id: TimerId) -> u32 {
        self.nodes[id as usize].list.wrapping_sub(1)
    }

    /// Test hook: checks every structural invariant, O(capacity); returns
    /// how many blocks the lists use.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) -> u32 {
        let mut seen = 0u32;
        let mut used = 0u32;
        for list in 0..LISTS {
            let bit = self.occupied[list / SLOTS] >> (list % SLOTS) & 1 == 1;
            if list as u32 == self.draining {
                assert!(!bit, "draining slot {list} marked occupied");
            } else {
                assert_eq!(bit, self.tails[list] != NIL, "occupied bit of list {list}");
            }
            let mut block = self.tails[list];
            let mut fill = self.fills[list] as usize;
            if block != NIL {
                assert!((1..=BLOCK_IDS).contains(&fill), "fill of list {list}");
            }
            while block != NIL {
                used += 1;
                for (i, &id) in self.blocks[block as usize].ids[..fill].iter().enumerate() {
                    let node = self.nodes[id as usize];
                    assert_eq!(node.filed(), Some(list as u32), "node {id} list");
                    assert_eq!(node.pos, block << POS_BITS | i as u32, "node {id} position");
                    let deadline = node.deadline;
                    if list as u32 == PENDING {
                        assert!(self.pending_min <= deadline);
                    } else if list as u32 == self.draining {
                        assert!(deadline >= self.elapsed, "node {id} draining but early");
                    } else {
                        assert!(deadline > self.elapsed, "node {id} in a slot but overdue");
                        // Filed in a slot starting after `elapsed` and no
                        // later than its deadline.
                        let level = list / SLOTS;
                        let start = self.slot_start(list as u32);
                        assert!(start > self.elapsed, "slot {list} not in the future");
                        assert!(start <= deadline, "node {id} at level {level} would be late");
                    }
                    seen += 1;
                }
                block = self.blocks[block as usize].prev;
                fill = BLOCK_IDS;
            }
        }
        assert_eq!(seen, self.len, "len");
        let mut free = 0u32;
        let mut b = self.free;
        while b != NIL {
            free += 1;
            b = self.blocks[b as usize].prev;
        }
        assert_eq!(used + free, self.fresh, "every block used once: in a list or free");
        assert!(used as usize <= self.len as usize / BLOCK_IDS + LISTS, "lists are full blocks but their tails");
        used
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
