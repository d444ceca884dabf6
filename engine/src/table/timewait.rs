//! The TIME-WAIT table (RFC 9293 §3.6): connections that have closed but
//! must linger 2MSL, so that a retransmitted FIN is ACKed again (restarting
//! the 2MSL wait) and old duplicates die out before the 4-tuple is reused.
//! A new SYN may reopen the tuple early (RFC 6191) and an RST ends it: both
//! are `remove`.
//!
//! A server that closes first holds one of these per closed connection: at
//! 1 M closes/s and 2MSL = 60 s that is 60 M entries per shard, so the entry
//! is the compact [`TwState`] only, and the design spends no bytes per entry
//! on timers.
//!
//! # The ring is the timer
//! Every TIME-WAIT entry waits the same 2MSL (fixed per engine), so expiry
//! order is insertion order. The entry slab is therefore a FIFO ring: insert
//! appends at the tail, `expire` pops from the head while the head's deadline
//! has passed. A timing wheel with one duration degenerates into exactly this
//! queue, and the entry's position in the ring *is* its timer: no wheel node,
//! no links, no free list. A `restart` (retransmitted FIN) copies the entry to
//! the tail and leaves a tombstone; `remove` leaves a tombstone; the head
//! skips tombstones as it passes them. Tombstones occupy ring slots until the
//! head reaches them, so they count toward capacity (`is_full` is about ring
//! slots); restarts and early removals are rare next to plain expiry, and a
//! tombstone lives at most 2MSL.
//!
//! # Deadlines cost no bytes per entry either
//! Deadlines along the ring never decrease, so they are stored run-length
//! encoded: a small ring of `Run { end, deadline_ms }`, one per distinct
//! deadline millisecond, each covering the ring positions up to `end`. Live
//! deadlines lie in `(now, now + 2MSL]`, so at most 2MSL-in-ms runs are ever
//! needed (60 000 runs, under 1 MiB, for 2MSL = 60 s) plus overdue ones; when
//! the run ring fills, `expire` has fallen behind and the two oldest runs are
//! both overdue, so they merge without changing any answer. Deadlines are
//! full u64 milliseconds on the caller's clock: no wrap to handle. Should the
//! clock step back, a new entry shares the newest run's (later) deadline: the
//! ring stays sorted, and the entry waits at most the step longer.
//!
//! # Sizes
//! An IPv4 entry is 28 bytes (12-byte [`V4Tuple`] + 16-byte [`TwState`]),
//! plus 8 / 0.85 = 9.4 bytes of index (Robin Hood, `index.rs`, at most 85 %
//! full) and one tombstone bit: about 37.5 bytes per entry at full load.
//!
//! # Handles
//! A [`TwHandle`] is the entry's ring position as a 64-bit count that never
//! repeats, so staleness needs no generation field: a handle is live iff it
//! lies in `[head, tail)` and is not a tombstone.

use core::cell::Cell;
use std::collections::VecDeque;

use super::hash::{HashKey, TableKey};
use super::index::{tag_of, Index};
use crate::flow::{FourTuple, V4Tuple};
use crate::wire::SeqNumber;

/// Largest index load: Robin Hood stays short-probed at 85 %.
const LOAD: f64 = 0.85;

/// A key the TIME-WAIT table can hold: [`V4Tuple`] (12 bytes) for IPv4,
/// [`FourTuple`] (36 bytes) for IPv6. The engine keeps one table of each.
pub trait TwKey: TableKey {}
impl TwKey for V4Tuple {}
impl TwKey for FourTuple {}

/// What a TIME-WAIT connection still needs: enough to ACK a retransmitted
/// FIN, to validate a segment, and to judge a reopening SYN (RFC 6191).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TwState {
    pub snd_nxt: SeqNumber,
    pub rcv_nxt: SeqNumber,
    /// TS.Recent (RFC 7323 §4.3), when timestamps are in use.
    pub ts_recent: u32,
    pub rcv_wnd: u16,
    /// `TwState::TIMESTAMPS`, other bits free for `tcp/`.
    pub flags: u8,
}

impl TwState {
    /// Bit 0: the connection negotiated timestamps (RFC 7323), so
    /// `ts_recent` is meaningful and RFC 6191's timestamp test applies.
    pub const TIMESTAMPS: u8 = 1 << 0;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwFullPolicy {
    /// A full table expires its oldest entry early to admit the new one
    /// (counted `evicted`).
    EvictOldest,
    /// A full table refuses the new entry (counted `refused`); the engine
    /// sees `is_full()` and refuses new SYNs until entries expire.
    RefuseNew,
}

/// The table was full and its policy is `RefuseNew`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwFull;

/// A TIME-WAIT entry's ring position; goes stale on expiry, eviction,
/// removal, and on restart (which returns the new handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TwHandle {
    pos: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TwStats {
    pub len: u64,
    pub capacity: u64,
    /// Ring slots in use: live entries plus tombstones not yet passed.
    pub ring_used: u64,
    /// Successful inserts, replacements included.
    pub inserted: u64,
    /// Inserts that found the key present and replaced its entry.
    pub replaced: u64,
    /// Entries that completed their 2MSL.
    pub expired: u64,
    /// Entries expired early to make room (full, or a restart in a full ring).
    pub evicted: u64,
    /// Inserts refused while full (`RefuseNew`).
    pub refused: u64,
    pub restarted: u64,
    pub removed: u64,
    /// Calls with a handle no longer live.
    pub stale_handle: u64,
    /// Largest Robin Hood displacement an insert left.
    pub max_probe: u32,
}

#[derive(Clone, Copy)]
struct Entry<K> {
    key: K,
    st: TwState,
}

const _: () = assert!(core::mem::size_of::<Entry<V4Tuple>>() == 28);

/// Ring positions from the previous run's end (or the head) up to `end`
/// (exclusive) all expire at `deadline_ms`.
#[derive(Clone, Copy, Debug)]
struct Run {
    end: u64,
    deadline_ms: u64,
}

pub struct TimeWaitTable<K: TwKey> {
    index: Index,
    /// The ring; grows by push up to `cap` on the first lap, then reused.
    ring: super::Mapped<Entry<K>>,
    /// Tombstone bits, one per ring slot.
    dead: Box<[u64]>,
    /// Ring positions, counted from table creation; slot = pos % cap.
    /// Invariant: `head == tail` or the head slot is live.
    head: u64,
    tail: u64,
    cap: u64,
    live: u32,
    runs: VecDeque<Run>,
    runs_cap: usize,
    two_msl_ms: u64,
    policy: TwFullPolicy,
    hash: HashKey,
    stats: TwStats,
    stale: Cell<u64>,
}

impl<K: TwKey> TimeWaitTable<K> {
    /// A table of `capacity` ring slots (at least 1), keyed with a random secret.
    pub fn new(capacity: u32, two_msl_ms: u32, policy: TwFullPolicy) -> Self {
        Self::with_hash_key(capacity, two_msl_ms, policy, HashKey::random())
    }

    /// Deterministic hashing, for tests and benchmarks.
    pub fn with_seed(capacity: u32, two_msl_ms: u32, policy: TwFullPolicy, seed: u64) -> Self {
        Self::with_hash_key(capacity, two_msl_ms, policy, HashKey::from_seed(seed))
    }

    fn with_hash_key(capacity: u32, two_msl_ms: u32, policy: TwFullPolicy, hash: HashKey) -> Self {
        assert!(capacity >= 1, "a TIME-WAIT table needs at least one slot");
        let ring = super::Mapped::with_capacity(capacity as usize);
        // Each run covers at least one ring position, and live deadlines
        // take at most 2MSL distinct values past `now`; see the module doc.
        let runs_cap = (two_msl_ms as usize + 2).min(capacity as usize + 1).max(2);
        TimeWaitTable {
            index: Index::new(capacity, LOAD),
            ring,
            dead: vec![0u64; (capacity as usize).div_ceil(64)].into_boxed_slice(),
            head: 0,
            tail: 0,
            cap: capacity as u64,
            live: 0,
            runs: VecDeque::with_capacity(runs_cap),
            runs_cap,
            two_msl_ms: two_msl_ms as u64,
            policy,
            hash,
            stats: TwStats::default(),
            stale: Cell::new(0),
        }
    }

    /// Writes every page now, so no page fault lands on the data path.
    pub fn prefault(&mut self) {
        self.index.prefault();
        for w in self.dead.iter_mut().step_by(512) {
            // SAFETY: a valid, aligned u64 we own, rewritten with its value.
            unsafe { core::ptr::write_volatile(w, core::ptr::read_volatile(w)) };
        }
        let stride = 4096 / core::mem::size_of::<Entry<K>>();
        for e in self.ring.spare_capacity_mut().iter_mut().step_by(stride) {
            // SAFETY: writing a byte into uninitialised spare capacity.
            unsafe { core::ptr::write_volatile(e.as_mut_ptr() as *mut u8, 0) };
        }
    }

    #[inline(always)]
    fn slot(&self, pos: u64) -> usize {
        (pos % self.cap) as usize
    }

    /// The ring position now held by `slot` (which must be in `[head, tail)`).
    #[inline(always)]
    fn pos_of_slot(&self, slot: u32) -> u64 {
        let head_slot = self.head % self.cap;
        let base = self.head - head_slot;
        if slot as u64 >= head_slot {
            base + slot as u64
        } else {
            base + self.cap + slot as u64
        }
    }

    #[inline(always)]
    fn is_dead(&self, slot: usize) -> bool {
        (self.dead[slot / 64] >> (slot % 64)) & 1 == 1
    }

    #[inline(always)]
    fn set_dead(&mut self, slot: usize, dead: bool) {
        let bit = 1u64 << (slot % 64);
        if dead {
            self.dead[slot / 64] |= bit;
        } else {
            self.dead[slot / 64] &= !bit;
        }
    }

    #[inline(always)]
    fn tag(&self, key: &K) -> u32 {
        tag_of(key.keyed_hash(&self.hash))
    }

    /// The slot of a live handle; counts a stale one.
    #[inline]
    fn live_slot(&self, h: TwHandle) -> Option<usize> {
        if h.pos >= self.head && h.pos < self.tail {
            let slot = self.slot(h.pos);
            if !self.is_dead(slot) {
                return Some(slot);
            }
        }
        self.stale.set(self.stale.get() + 1);
        None
    }

    /// The TIME-WAIT entry for this tuple, if any.
    #[inline]
    pub fn lookup(&self, key: &K) -> Option<TwHandle> {
        let ring = &self.ring;
        self.index
            .find(self.tag(key), |s| ring[s as usize].key == *key)
            .map(|(_, slot)| TwHandle { pos: self.pos_of_slot(slot) })
    }

    /// As `ConnTable::prefetch_bucket`: starts loading `key`'s bucket.
    #[inline(always)]
    pub fn prefetch_bucket(&self, key: &K) {
        self.index.prefetch(self.tag(key));
    }

    /// As `ConnTable::prefetch_slot`: reads the bucket and starts loading
    /// the ring entry it names.
    #[inline(always)]
    pub fn prefetch_entry(&self, key: &K) {
        if let Some(e) = self.index.first_candidate(self.tag(key)).and_then(|s| self.ring.get(s as usize)) {
            super::prefetch(e);
        }
    }

    pub fn get(&self, h: TwHandle) -> Option<&TwState> {
        self.live_slot(h).map(|s| &self.ring[s].st)
    }

    pub fn get_mut(&mut self, h: TwHandle) -> Option<&mut TwState> {
        self.live_slot(h).map(|s| &mut self.ring[s].st)
    }

    pub fn key(&self, h: TwHandle) -> Option<&K> {
        self.live_slot(h).map(|s| &self.ring[s].key)
    }

    /// When this entry's 2MSL ends (O(log runs)).
    pub fn deadline_ms(&self, h: TwHandle) -> Option<u64> {
        self.live_slot(h)?;
        let i = self.runs.partition_point(|r| r.end <= h.pos);
        Some(self.runs[i].deadline_ms)
    }

    /// Enters TIME-WAIT for `key` at `now_ms`; 2MSL runs from now. A key
    /// already present is replaced (new state, fresh 2MSL), as a restart.
    pub fn insert(&mut self, key: K, st: TwState, now_ms: u64) -> Result<TwHandle, TwFull> {
        let tag = self.tag(&key);
        let ring = &self.ring;
        if let Some((_, slot)) = self.index.find(tag, |s| ring[s as usize].key == key) {
            self.ring[slot as usize].st = st;
            self.stats.replaced += 1;
            self.stats.inserted += 1;
            return Ok(self.move_to_tail(slot as usize, tag, now_ms));
        }
        if self.is_full() {
            match self.policy {
                TwFullPolicy::RefuseNew => {
                    self.stats.refused += 1;
                    return Err(TwFull);
                }
                TwFullPolicy::EvictOldest => {
                    self.pop_head();
                    self.stats.evicted += 1;
                }
            }
        }
        let (pos, slot) = self.append(Entry { key, st }, now_ms);
        let probe = self.index.insert(tag, slot as u32);
        self.stats.max_probe = self.stats.max_probe.max(probe);
        self.live += 1;
        self.stats.inserted += 1;
        Ok(TwHandle { pos })
    }

    /// Starts 2MSL again from `now_ms` (a retransmitted FIN arrived, RFC 9293
    /// §3.10.7.4): the entry moves to the tail and gets a new handle. In a
    /// full ring this expires the oldest entry early (counted `evicted`)
    /// whatever the policy: the peer still waiting on this connection has a
    /// better claim than an entry about to expire anyway.
    pub fn restart(&mut self, h: TwHandle, now_ms: u64) -> TwHandle {
        let Some(slot) = self.live_slot(h) else {
            return h;
        };
        let tag = self.tag(&self.ring[slot].key);
        self.stats.restarted += 1;
        self.move_to_tail(slot, tag, now_ms)
    }

    /// Ends TIME-WAIT early: a SYN reopened the tuple (RFC 6191) or an RST
    /// arrived. Leaves a tombstone until the head passes it.
    pub fn remove(&mut self, h: TwHandle) {
        let Some(slot) = self.live_slot(h) else {
            return;
        };
        let tag = self.tag(&self.ring[slot].key);
        self.unindex(tag, slot);
        self.set_dead(slot, true);
        self.live -= 1;
        self.stats.removed += 1;
        if h.pos == self.head {
            self.advance_head();
        }
    }

    /// Pops entries whose 2MSL has ended (`deadline <= now_ms`), oldest
    /// first, at most `max` of them, calling `f` on each before it goes.
    /// Returns how many expired.
    pub fn expire(&mut self, now_ms: u64, max: usize, mut f: impl FnMut(&K, &TwState)) -> usize {
        let mut n = 0;
        while n < max && self.head < self.tail {
            if self.runs[0].deadline_ms > now_ms {
                break;
            }
            let e = &self.ring[self.slot(self.head)];
            f(&e.key, &e.st);
            self.pop_head();
            n += 1;
        }
        self.stats.expired += n as u64;
        n
    }

    /// The earliest deadline in the table (the head's).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        if self.head == self.tail {
            None
        } else {
            Some(self.runs[0].deadline_ms)
        }
    }

    pub fn len(&self) -> usize {
        self.live as usize
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Every ring slot is taken (live entries and tombstones): the next
    /// insert evicts or is refused, by policy.
    pub fn is_full(&self) -> bool {
        self.tail - self.head == self.cap
    }

    pub fn two_msl_ms(&self) -> u64 {
        self.two_msl_ms
    }

    pub fn stats(&self) -> TwStats {
        TwStats {
            len: self.live as u64,
            capacity: self.cap,
            ring_used: self.tail - self.head,
            stale_handle: self.stale.get(),
            ..self.stats
        }
    }

    /// Bytes reserved for ring, index, tombstone bits and runs at full capacity.
    pub fn memory_bytes(&self) -> usize {
        self.ring.capacity() * core::mem::size_of::<Entry<K>>()
            + self.index.memory_bytes()
            + self.dead.len() * 8
            + self.runs.capacity() * core::mem::size_of::<Run>()
    }

    /// Live entries in expiry order. For tests and draining.
    pub fn iter(&self) -> impl Iterator<Item = (TwHandle, &K, &TwState)> {
        (self.head..self.tail).filter(|&p| !self.is_dead(self.slot(p))).map(|p| {
            let e = &self.ring[self.slot(p)];
            (TwHandle { pos: p }, &e.key, &e.st)
        })
    }

    /// Removes `slot` (holding a key with `tag`) from the index.
    fn unindex(&mut self, tag: u32, slot: usize) {
        let pos = self.index.position_of(tag, slot as u32);
        debug_assert!(pos.is_some(), "live slot {slot} missing from the index");
        if let Some(pos) = pos {
            self.index.remove_at(pos);
        }
    }

    /// Moves the head past tombstones, and drops runs it has passed.
    fn advance_head(&mut self) {
        while self.head < self.tail && self.is_dead(self.slot(self.head)) {
            self.head += 1;
        }
        while self.runs.front().is_some_and(|r| r.end <= self.head) {
            self.runs.pop_front();
        }
    }

    /// Takes the (live) head entry out of the table.
    fn pop_head(&mut self) {
        debug_assert!(self.head < self.tail);
        let slot = self.slot(self.head);
        let tag = self.tag(&self.ring[slot].key);
        self.unindex(tag, slot);
        self.live -= 1;
        self.head += 1;
        self.advance_head();
    }

    /// Copies the entry in `slot` to the tail with a fresh 2MSL and points
    /// the index at the copy; the old slot becomes a tombstone.
    fn move_to_tail(&mut self, slot: usize, tag: u32, now_ms: u64) -> TwHandle {
        let e = self.ring[slot];
        let old_pos = self.pos_of_slot(slot as u32);
        self.set_dead(slot, true);
        if old_pos == self.head {
            self.advance_head();
        }
        if self.is_full() {
            self.pop_head();
            self.stats.evicted += 1;
        }
        let (pos, new_slot) = self.append(e, now_ms);
        // Evicting may have shifted buckets, so find ours again.
        match self.index.position_of(tag, slot as u32) {
            Some(b) => self.index.repoint(b, new_slot as u32),
            None => debug_assert!(false, "moved slot {slot} missing from the index"),
        }
        TwHandle { pos }
    }

    /// Writes `e` at the tail with deadline `now_ms + 2MSL`; the caller
    /// indexes it (or re-points the index) and counts it live.
    fn append(&mut self, e: Entry<K>, now_ms: u64) -> (u64, usize) {
        debug_assert!(!self.is_full());
        let deadline_ms = now_ms + self.two_msl_ms;
        let pos = self.tail;
        let slot = self.slot(pos);
        if slot == self.ring.len() {
            // slot < cap = the ring's capacity, so there is room.
            let _ = self.ring.push(e);
        } else {
            self.ring[slot] = e;
        }
        self.set_dead(slot, false);
        self.tail += 1;
        let tail = self.tail;
        match self.runs.back_mut() {
            // Same millisecond as the newest run (or the clock stepped back).
            Some(r) if r.deadline_ms >= deadline_ms => r.end = tail,
            _ => {
                if self.runs.len() == self.runs_cap {
                    // `expire` has fallen behind. Deadlines rise along the
                    // runs, so if the second is overdue so is the first, and
                    // merging them changes no answer: both are due now.
                    if self.runs[1].deadline_ms <= now_ms {
                        self.runs.pop_front();
                    } else {
                        debug_assert!(false, "run ring full with nothing overdue");
                        let r = self.runs.back_mut().expect("runs_cap >= 2");
                        r.end = tail;
                        r.deadline_ms = deadline_ms;
                        return (pos, slot);
                    }
                }
                self.runs.push_back(Run { end: tail, deadline_ms });
            }
        }
        (pos, slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const TWO_MSL: u32 = 60_000;

    fn k(i: u32) -> V4Tuple {
        V4Tuple {
            local_addr: [198, 18, 0, 1],
            remote_addr: [198, 18, (i >> 24) as u8 | 0x80, (i >> 16) as u8],
            local_port: 80,
            remote_port: i as u16,
        }
    }

    fn st(n: u32) -> TwState {
        TwState {
            snd_nxt: SeqNumber(n),
            rcv_nxt: SeqNumber(n.wrapping_add(1000)),
            ts_recent: n,
            rcv_wnd: 65535,
            flags: TwState::TIMESTAMPS,
        }
    }

    fn table(cap: u32, policy: TwFullPolicy) -> TimeWaitTable<V4Tuple> {
        TimeWaitTable::with_seed(cap, TWO_MSL, policy, 42)
    }

    fn expired(t: &mut TimeWaitTable<V4Tuple>, now: u64) -> Vec<u16> {
        let mut out = Vec::new();
        t.expire(now, usize::MAX, |k, _| out.push(k.remote_port));
        out
    }

    #[test]
    fn insert_lookup_get_remove() {
        let mut t = table(8, TwFullPolicy::RefuseNew);
        let h1 = t.insert(k(1), st(1), 0).unwrap();
        let h2 = t.insert(k(2), st(2), 0).unwrap();
        assert_eq!(t.lookup(&k(1)), Some(h1));
        assert_eq!(t.lookup(&k(2)), Some(h2));
        assert_eq!(t.lookup(&k(3)), None);
        assert_eq!(t.get(h1), Some(&st(1)));
        assert_eq!(t.key(h2), Some(&k(2)));
        t.get_mut(h2).unwrap().rcv_wnd = 7;
        assert_eq!(t.get(h2).unwrap().rcv_wnd, 7);
        t.remove(h1);
        assert_eq!(t.lookup(&k(1)), None);
        assert_eq!(t.get(h1), None);
        assert_eq!(t.len(), 1);
        let s = t.stats();
        assert_eq!((s.inserted, s.removed, s.stale_handle), (2, 1, 1));
    }

    #[test]
    fn ipv6_table() {
        let mut t: TimeWaitTable<FourTuple> = TimeWaitTable::with_seed(4, TWO_MSL, TwFullPolicy::RefuseNew, 1);
        let key = FourTuple::new("[2001:db8::1]:443".parse().unwrap(), "[2001:db8::2]:5555".parse().unwrap());
        let h = t.insert(key, st(9), 5).unwrap();
        assert_eq!(t.lookup(&key), Some(h));
        assert_eq!(t.deadline_ms(h), Some(5 + TWO_MSL as u64));
    }

    #[test]
    fn expires_exactly_at_two_msl_and_not_a_ms_before() {
        let mut t = table(8, TwFullPolicy::RefuseNew);
        let h = t.insert(k(1), st(1), 1000).unwrap();
        assert_eq!(t.deadline_ms(h), Some(61_000));
        assert_eq!(t.next_expiry_ms(), Some(61_000));
        assert_eq!(expired(&mut t, 60_999), Vec::<u16>::new());
        assert_eq!(t.lookup(&k(1)), Some(h));
        assert_eq!(expired(&mut t, 61_000), vec![1]);
        assert_eq!(t.lookup(&k(1)), None);
        assert_eq!(t.get(h), None);
        assert_eq!(t.next_expiry_ms(), None);
        assert_eq!(t.stats().expired, 1);
    }

    #[test]
    fn restart_moves_the_deadline() {
        let mut t = table(8, TwFullPolicy::RefuseNew);
        let h = t.insert(k(1), st(1), 0).unwrap();
        let h2 = t.restart(h, 30_000);
        assert_ne!(h, h2);
        assert_eq!(t.get(h), None, "the old handle is stale");
        assert_eq!(t.lookup(&k(1)), Some(h2));
        assert_eq!(t.get(h2), Some(&st(1)));
        assert_eq!(t.deadline_ms(h2), Some(90_000));
        assert_eq!(expired(&mut t, 89_999), Vec::<u16>::new());
        assert_eq!(expired(&mut t, 90_000), vec![1]);
        assert_eq!(t.stats().restarted, 1);
    }

    #[test]
    fn fifo_order_with_restarts_interleaved() {
        let mut t = table(16, TwFullPolicy::RefuseNew);
        for i in 0..5 {
            t.insert(k(i), st(i), i as u64).unwrap();
        }
        let h0 = t.lookup(&k(0)).unwrap();
        t.restart(h0, 10);
        let h2 = t.lookup(&k(2)).unwrap();
        t.restart(h2, 10);
        t.insert(k(5), st(5), 11).unwrap();
        let h1 = t.lookup(&k(1)).unwrap();
        t.restart(h1, 12);
        assert_eq!(t.next_expiry_ms(), Some(3 + TWO_MSL as u64));
        let order: Vec<u16> = t.iter().map(|(_, k, _)| k.remote_port).collect();
        assert_eq!(order, vec![3, 4, 0, 2, 5, 1]);
        assert_eq!(expired(&mut t, 10 + TWO_MSL as u64), vec![3, 4, 0, 2]);
        assert_eq!(expired(&mut t, u64::MAX), vec![5, 1]);
        assert_eq!(t.stats().ring_used, 0);
    }

    #[test]
    fn insert_of_present_key_replaces_it() {
        let mut t = table(4, TwFullPolicy::RefuseNew);
        let h = t.insert(k(1), st(1), 0).unwrap();
        let h2 = t.insert(k(1), st(2), 100).unwrap();
        assert_eq!(t.get(h), None);
        assert_eq!(t.get(h2), Some(&st(2)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.deadline_ms(h2), Some(100 + TWO_MSL as u64));
        assert_eq!(t.stats().replaced, 1);
    }

    #[test]
    fn full_with_evict_oldest() {
        let mut t = table(3, TwFullPolicy::EvictOldest);
        for i in 0..3 {
            t.insert(k(i), st(i), i as u64).unwrap();
        }
        assert!(t.is_full());
        let h3 = t.insert(k(3), st(3), 3).unwrap();
        assert_eq!(t.lookup(&k(0)), None, "oldest evicted");
        assert_eq!(t.get(h3), Some(&st(3)));
        assert_eq!(t.len(), 3);
        let s = t.stats();
        assert_eq!((s.evicted, s.refused, s.inserted), (1, 0, 4));
        assert_eq!(t.next_expiry_ms(), Some(1 + TWO_MSL as u64));
    }

    #[test]
    fn full_with_refuse_new() {
        let mut t = table(3, TwFullPolicy::RefuseNew);
        for i in 0..3 {
            t.insert(k(i), st(i), 0).unwrap();
        }
        assert!(t.is_full());
        assert_eq!(t.insert(k(3), st(3), 1), Err(TwFull));
        assert_eq!(t.insert(k(4), st(4), 1), Err(TwFull));
        assert_eq!(t.lookup(&k(3)), None);
        assert_eq!(t.stats().refused, 2);
        assert_eq!(t.stats().evicted, 0);
        assert_eq!(expired(&mut t, TWO_MSL as u64), vec![0, 1, 2]);
        assert!(!t.is_full());
        assert!(t.insert(k(3), st(3), TWO_MSL as u64).is_ok());
    }

    #[test]
    fn tombstones_count_toward_capacity_until_the_head_passes() {
        let mut t = table(3, TwFullPolicy::RefuseNew);
        let hs: Vec<_> = (0..3).map(|i| t.insert(k(i), st(i), 0).unwrap()).collect();
        t.remove(hs[1]);
        assert_eq!(t.len(), 2);
        assert!(t.is_full(), "the tombstone still holds its slot");
        assert_eq!(t.insert(k(9), st(9), 1), Err(TwFull));
        t.remove(hs[0]);
        assert_eq!(t.stats().ring_used, 1, "head skipped both tombstones");
        assert!(t.insert(k(9), st(9), 1).is_ok());
    }

    #[test]
    fn restart_in_a_full_ring_evicts_the_oldest() {
        let mut t = table(3, TwFullPolicy::RefuseNew);
        let hs: Vec<_> = (0..3).map(|i| t.insert(k(i), st(i), i as u64).unwrap()).collect();
        let h = t.restart(hs[1], 10);
        assert_eq!(t.lookup(&k(0)), None);
        assert_eq!(t.lookup(&k(1)), Some(h));
        assert_eq!(t.stats().evicted, 1);
        // Restarting the head itself frees its own slot: nothing evicted.
        let h2 = t.lookup(&k(2)).unwrap();
        let _ = t.restart(h2, 11);
        assert_eq!(t.stats().evicted, 1);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn stale_handles_are_refused() {
        let mut t = table(2, TwFullPolicy::EvictOldest);
        let a = t.insert(k(1), st(1), 0).unwrap();
        assert_eq!(expired(&mut t, TWO_MSL as u64), vec![1]);
        assert_eq!(t.get(a), None);
        // Wrap the ring so slot 0 is reused: the old position stays stale.
        let b = t.insert(k(2), st(2), 1).unwrap();
        let c = t.insert(k(3), st(3), 1).unwrap();
        assert_eq!(t.get(a), None);
        t.remove(a);
        assert_eq!(t.restart(a, 5), a);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(b), Some(&st(2)));
        assert_eq!(t.get(c), Some(&st(3)));
        assert_eq!(t.stats().stale_handle, 4);
    }

    #[test]
    fn bounded_expiry_work_per_call() {
        let mut t = table(100, TwFullPolicy::RefuseNew);
        for i in 0..10 {
            t.insert(k(i), st(i), 0).unwrap();
        }
        assert_eq!(t.expire(TWO_MSL as u64, 4, |_, _| {}), 4);
        assert_eq!(t.expire(TWO_MSL as u64, 4, |_, _| {}), 4);
        assert_eq!(t.expire(TWO_MSL as u64, 4, |_, _| {}), 2);
        assert!(t.is_empty());
    }

    /// With expiry lagging far behind, the run ring fills and merges overdue
    /// runs: every answer must stay exact.
    #[test]
    fn lagging_expiry_merges_runs_exactly() {
        let mut t: TimeWaitTable<V4Tuple> = TimeWaitTable::with_seed(1000, 3, TwFullPolicy::RefuseNew, 3);
        for i in 0..=20u32 {
            t.insert(k(i), st(i), i as u64).unwrap();
        }
        assert!(t.runs.len() <= t.runs_cap);
        // Deadlines i + 3 <= 20 for i <= 17.
        assert_eq!(expired(&mut t, 20), (0..=17).collect::<Vec<u16>>());
        assert_eq!(t.next_expiry_ms(), Some(21));
        assert_eq!(expired(&mut t, 22), vec![18, 19]);
        assert_eq!(expired(&mut t, 23), vec![20]);
    }

    #[test]
    fn wraps_the_ring_many_times() {
        // 2MSL of 300 ms at one insert per 7 ms: about 43 live of 64 slots.
        let mut t: TimeWaitTable<V4Tuple> = TimeWaitTable::with_seed(64, 300, TwFullPolicy::RefuseNew, 5);
        let mut now = 0u64;
        for i in 0..10_000u32 {
            now += 7;
            t.expire(now, usize::MAX, |_, _| {});
            t.insert(k(i), st(i), now).unwrap();
            if i % 13 == 0 {
                let h = t.lookup(&k(i / 2)).map(|h| t.restart(h, now));
                if let Some(h) = h {
                    assert_eq!(t.key(h), Some(&k(i / 2)));
                }
            }
        }
        assert!(t.len() <= 64);
        assert_eq!(t.index.check(), t.len());
        for (h, key, _) in t.iter() {
            assert_eq!(t.lookup(key), Some(h));
        }
    }

    // ---- model check ----

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8),
        Restart(u8),
        Remove(u8),
        UseOldHandle(u8),
        Advance(u16),
        Expire(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..24).prop_map(Op::Insert),
            2 => (0u8..24).prop_map(Op::Restart),
            1 => (0u8..24).prop_map(Op::Remove),
            1 => any::<u8>().prop_map(Op::UseOldHandle),
            3 => (0u16..40).prop_map(Op::Advance),
            2 => (1u8..6).prop_map(Op::Expire),
        ]
    }

    /// The table as the module doc describes it: a FIFO of ring slots,
    /// tombstones included, plus a map of live keys.
    struct Model {
        ring: std::collections::VecDeque<(u8, bool)>, // (key, live)
        live: HashMap<u8, (TwState, u64)>,            // key -> (state, deadline)
        cap: usize,
        evicted: u64,
        refused: u64,
    }

    impl Model {
        fn kill(&mut self, key: u8) {
            for e in self.ring.iter_mut() {
                if e.0 == key && e.1 {
                    e.1 = false;
                }
            }
            self.live.remove(&key);
            while self.ring.front().is_some_and(|e| !e.1) {
                self.ring.pop_front();
            }
        }
        fn evict_head(&mut self) {
            let (key, _) = self.ring[0];
            self.kill(key);
            self.evicted += 1;
        }
        fn append(&mut self, key: u8, s: TwState, deadline: u64) {
            self.ring.push_back((key, true));
            self.live.insert(key, (s, deadline));
        }
    }

    proptest! {
        #[test]
        fn behaves_like_the_model(
            ops in proptest::collection::vec(op(), 1..300),
            cap in 1u32..12,
            evict: bool,
            seed: u64,
        ) {
            const TWO_MSL: u64 = 50;
            let policy = if evict { TwFullPolicy::EvictOldest } else { TwFullPolicy::RefuseNew };
            let mut t: TimeWaitTable<V4Tuple> = TimeWaitTable::with_seed(cap, TWO_MSL as u32, policy, seed);
            let mut m = Model { ring: Default::default(), live: HashMap::new(), cap: cap as usize, evicted: 0, refused: 0 };
            let mut old: Vec<(TwHandle, u8)> = Vec::new();
            let mut now = 0u64;
            let mut n = 0u32;
            for op in ops {
                n += 1;
                match op {
                    Op::Insert(key) => {
                        let r = t.insert(k(key as u32), st(n), now);
                        if m.live.contains_key(&key) {
                            m.kill(key);
                            if m.ring.len() == m.cap { m.evict_head(); }
                            m.append(key, st(n), now + TWO_MSL);
                            prop_assert!(r.is_ok());
                        } else if m.ring.len() == m.cap && !evict {
                            m.refused += 1;
                            prop_assert_eq!(r, Err(TwFull));
                        } else {
                            if m.ring.len() == m.cap { m.evict_head(); }
                            m.append(key, st(n), now + TWO_MSL);
                            prop_assert!(r.is_ok());
                        }
                    }
                    Op::Restart(key) => {
                        if let Some(h) = t.lookup(&k(key as u32)) {
                            let h2 = t.restart(h, now);
                            old.push((h, key));
                            prop_assert_eq!(t.get(h), None);
                            let s = m.live[&key].0;
                            m.kill(key);
                            if m.ring.len() == m.cap { m.evict_head(); }
                            m.append(key, s, now + TWO_MSL);
                            prop_assert_eq!(t.deadline_ms(h2), Some(now + TWO_MSL));
                        }
                    }
                    Op::Remove(key) => {
                        if let Some(h) = t.lookup(&k(key as u32)) {
                            t.remove(h);
                            old.push((h, key));
                            m.kill(key);
                        }
                    }
                    Op::UseOldHandle(i) => {
                        if !old.is_empty() {
                            let (h, _) = old[i as usize % old.len()];
                            prop_assert_eq!(t.get(h), None);
                            t.remove(h);
                            prop_assert_eq!(t.restart(h, now), h);
                        }
                    }
                    Op::Advance(ms) => now += ms as u64,
                    Op::Expire(max) => {
                        let mut got = Vec::new();
                        t.expire(now, max as usize, |key, s| got.push((key.remote_port as u8, *s)));
                        let mut want = Vec::new();
                        while want.len() < max as usize {
                            let Some(&(key, _)) = m.ring.front() else { break };
                            let (s, d) = m.live[&key];
                            if d > now { break; }
                            want.push((key, s));
                            m.kill(key);
                        }
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(t.len(), m.live.len());
                prop_assert_eq!(t.is_full(), m.ring.len() == m.cap);
                prop_assert_eq!(t.stats().ring_used as usize, m.ring.len());
                let head = m.ring.front().map(|e| m.live[&e.0].1);
                prop_assert_eq!(t.next_expiry_ms(), head);
                for key in 0u8..24 {
                    let h = t.lookup(&k(key as u32));
                    match m.live.get(&key) {
                        Some(&(s, d)) => {
                            let h = h.expect("live key found");
                            prop_assert_eq!(t.get(h), Some(&s));
                            prop_assert_eq!(t.deadline_ms(h), Some(d));
                        }
                        None => prop_assert_eq!(h, None),
                    }
                }
            }
            let s = t.stats();
            prop_assert_eq!((s.evicted, s.refused), (m.evicted, m.refused));
            prop_assert_eq!(t.index.check(), m.live.len());
        }
    }
}
