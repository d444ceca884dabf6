//! The per-shard connection table: 4-tuple (RFC 9293 §3.3.1) to control block.
//!
//! Two preallocated arrays, nothing allocated after `with_capacity`:
//! - the slab of slots `{ key, generation, value }`, addressed by `Handle`
//!   (slot index + generation). Free slots form an intrusive LIFO list (the
//!   next-free index rides in the freed key's port fields), so a freed slot is
//!   reused while its cache lines are still warm. Slots past the high-water
//!   mark have never been written: memory is committed as the table fills.
//! - the index (`index.rs`): Robin Hood linear probing over 8-byte
//!   `tag | slot` buckets at most 75% full, backward-shift deletion, keyed
//!   hash (`hash.rs`). A hit reads one bucket line and one slot; a miss
//!   almost never reads the slab.
//!
//! At millions of entries those two reads are DRAM misses, and the second
//! depends on the first, so a lone lookup costs two memory latencies. The
//! shard receives frames in bursts: `lookup_batch` issues the whole burst's
//! bucket loads, then its slot loads, then compares, so the misses overlap.
//!
//! Generations: odd while the slot is live, even while free; insert and
//! remove each add one. A handle carries the odd generation it was issued
//! with, so a handle kept across a remove (a timer that fires late, an app
//! holding on) no longer matches and is refused and counted. A stale handle
//! could only alias after its slot is reused 2^31 times.

use core::cell::Cell;
use core::mem::MaybeUninit;

use super::hash::{HashKey, TableKey};
use super::index::{tag_of, Index};
use crate::flow::FourTuple;

/// Largest index load: at 0.75 Robin Hood probes average under two buckets.
const LOAD: f64 = 0.75;
const NO_SLOT: u32 = u32::MAX;

/// A connection's name inside the table: slot index plus generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Handle {
    index: u32,
    generation: u32,
}

impl Handle {
    /// The slot index, stable for the connection's lifetime; the engine uses
    /// it as the connection's timer id and maps back with `handle_at`.
    pub fn index(&self) -> u32 {
        self.index
    }
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InsertError {
    /// Every slot is taken (counted as `insert_full`).
    Full,
    /// The 4-tuple is already in the table, under this handle.
    Exists(Handle),
}

/// Counters for the metrics export; names as an operator reads them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TableStats {
    pub len: u64,
    pub capacity: u64,
    pub index_buckets: u64,
    /// Successful inserts.
    pub inserts: u64,
    /// Inserts refused because the table was full.
    pub insert_full: u64,
    /// Inserts refused because the tuple was already present.
    pub insert_exists: u64,
    pub removes: u64,
    /// `get`/`get_mut`/`key`/`remove` calls with a handle whose slot has
    /// since been freed or reused.
    pub stale_handle: u64,
    /// Largest Robin Hood displacement (buckets past home) any insert left.
    pub max_probe: u32,
}

struct Slot<V> {
    key: FourTuple,
    generation: u32,
    /// Initialised exactly when `generation` is odd.
    value: MaybeUninit<V>,
}

pub struct ConnTable<V> {
    index: Index,
    slots: super::Mapped<Slot<V>>,
    free_head: u32,
    len: u32,
    capacity: u32,
    hash: HashKey,
    stats: TableStats,
    stale: Cell<u64>,
}

#[inline(always)]
fn is_live(generation: u32) -> bool {
    generation & 1 == 1
}

impl<V> ConnTable<V> {
    /// A table for `capacity` connections, keyed with a fresh random secret.
    pub fn with_capacity(capacity: u32) -> Self {
        Self::with_hash_key(capacity, HashKey::random())
    }

    /// Deterministic hashing, for tests and benchmarks.
    pub fn with_capacity_and_seed(capacity: u32, seed: u64) -> Self {
        Self::with_hash_key(capacity, HashKey::from_seed(seed))
    }

    fn with_hash_key(capacity: u32, hash: HashKey) -> Self {
        assert!(capacity < NO_SLOT, "capacity must be below 2^32 - 1");
        let slots = super::Mapped::with_capacity(capacity as usize);
        ConnTable {
            index: Index::new(capacity, LOAD),
            slots,
            free_head: NO_SLOT,
            len: 0,
            capacity,
            hash,
            stats: TableStats::default(),
            stale: Cell::new(0),
        }
    }

    /// Writes every page of the slab and the index now, so that no page
    /// fault lands on the SYN path later. Call once at start-up.
    pub fn prefault(&mut self) {
        self.index.prefault();
        let spare = self.slots.spare_capacity_mut();
        let stride = (4096 / core::mem::size_of::<Slot<V>>().max(1)).max(1);
        for s in spare.iter_mut().step_by(stride) {
            // SAFETY: writing zero bytes into uninitialised spare capacity
            // is always allowed; nothing reads it as a `Slot` until pushed.
            unsafe { core::ptr::write_volatile(s.as_mut_ptr() as *mut u8, 0) };
        }
    }

    #[inline(always)]
    fn find(&self, key: &FourTuple) -> Option<(usize, u32)> {
        let tag = tag_of(key.keyed_hash(&self.hash));
        let slots = &self.slots;
        self.index.find(tag, |s| slots[s as usize].key == *key)
    }

    /// The handle for a 4-tuple, if it is in the table.
    #[inline]
    pub fn lookup(&self, key: &FourTuple) -> Option<Handle> {
        self.find(key).map(|(_, slot)| Handle { index: slot, generation: self.slots[slot as usize].generation })
    }

    /// Looks up a batch of tuples (an RX burst) at once: `out[i]` is
    /// `lookup(&keys[i])`. At millions of connections a lookup is two
    /// dependent cache misses (bucket, then slot); here the batch's bucket
    /// loads are all issued first, then its slot loads, then the compares,
    /// so the misses of different keys overlap instead of queueing.
    /// Panics if `out` is shorter than `keys`.
    pub fn lookup_batch(&self, keys: &[FourTuple], out: &mut [Option<Handle>]) {
        const CHUNK: usize = 16;
        assert!(out.len() >= keys.len(), "lookup_batch: out shorter than keys");
        let mut tags = [0u32; CHUNK];
        for (keys, out) in keys.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            for (tag, key) in tags.iter_mut().zip(keys) {
                *tag = tag_of(key.keyed_hash(&self.hash));
                self.index.prefetch(*tag);
            }
            for &tag in &tags[..keys.len()] {
                if let Some(slot) = self.index.first_candidate(tag) {
                    // Key and generation span 40 bytes and may straddle two lines.
                    let s = &self.slots[slot as usize];
                    super::prefetch(&s.key);
                    super::prefetch(&s.generation);
                }
            }
            for ((o, key), &tag) in out.iter_mut().zip(keys).zip(&tags) {
                let slots = &self.slots;
                *o = self
                    .index
                    .find(tag, |s| slots[s as usize].key == *key)
                    .map(|(_, slot)| Handle { index: slot, generation: slots[slot as usize].generation });
            }
        }
    }

    /// The first half of a lookup spread over a burst ([`prefetch_slot`](Self::prefetch_slot)
    /// is the second): starts loading the bucket `key` hashes to.
    #[inline(always)]
    pub fn prefetch_bucket(&self, key: &FourTuple) {
        self.index.prefetch(tag_of(key.keyed_hash(&self.hash)));
    }

    /// The second half: reads the bucket (loaded by now, if the first half
    /// ran a burst earlier) and starts loading the slot it names, key,
    /// generation and the whole value, which the segment will read next.
    /// Returns that slot's index (a likely hit), for the caller's own
    /// per-connection arrays.
    #[inline(always)]
    pub fn prefetch_slot(&self, key: &FourTuple) -> Option<u32> {
        let slot = self.index.first_candidate(tag_of(key.keyed_hash(&self.hash)))?;
        let s = self.slots.get(slot as usize)?;
        let start = s as *const Slot<V> as *const u8;
        let size = core::mem::size_of::<Slot<V>>();
        let mut at = 0;
        while at < size {
            super::prefetch_hint(start.wrapping_add(at));
            at += 64;
        }
        // The last line, when the slot straddles one more than its size suggests.
        super::prefetch_hint(start.wrapping_add(size - 1));
        Some(slot)
    }

    /// Adds a connection. Refused when the tuple is present or every slot is taken.
    pub fn insert(&mut self, key: FourTuple, value: V) -> Result<Handle, InsertError> {
        let tag = tag_of(key.keyed_hash(&self.hash));
        let slots = &self.slots;
        if let Some((_, slot)) = self.index.find(tag, |s| slots[s as usize].key == key) {
            self.stats.insert_exists += 1;
            return Err(InsertError::Exists(Handle { index: slot, generation: self.slots[slot as usize].generation }));
        }
        if self.len == self.capacity {
            self.stats.insert_full += 1;
            return Err(InsertError::Full);
        }
        let index = if self.free_head != NO_SLOT {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            self.free_head = next_free(&slot.key);
            slot.key = key;
            slot.generation = slot.generation.wrapping_add(1);
            slot.value.write(value);
            index
        } else {
            let index = self.slots.len() as u32;
            debug_assert!(self.slots.len() < self.slots.capacity());
            // Room is certain: len < capacity was checked above.
            let _ = self.slots.push(Slot { key, generation: 1, value: MaybeUninit::new(value) });
            index
        };
        let probe = self.index.insert(tag, index);
        self.stats.max_probe = self.stats.max_probe.max(probe);
        self.stats.inserts += 1;
        self.len += 1;
        Ok(Handle { index, generation: self.slots[index as usize].generation })
    }

    #[inline(always)]
    fn live_slot(&self, h: Handle) -> Option<&Slot<V>> {
        match self.slots.get(h.index as usize) {
            // Handles are only minted with odd generations, so a match means live.
            Some(s) if s.generation == h.generation => Some(s),
            _ => {
                self.stale.set(self.stale.get() + 1);
                None
            }
        }
    }

    /// The control block, or `None` if the handle is stale.
    #[inline]
    pub fn get(&self, h: Handle) -> Option<&V> {
        // SAFETY: live_slot only returns slots with an odd generation, whose
        // value is initialised.
        self.live_slot(h).map(|s| unsafe { s.value.assume_init_ref() })
    }

    #[inline]
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut V> {
        match self.slots.get_mut(h.index as usize) {
            // SAFETY: as in `get`.
            Some(s) if s.generation == h.generation => Some(unsafe { s.value.assume_init_mut() }),
            _ => {
                self.stale.set(self.stale.get() + 1);
                None
            }
        }
    }

    pub fn key(&self, h: Handle) -> Option<&FourTuple> {
        self.live_slot(h).map(|s| &s.key)
    }

    /// The live handle in slot `index`: timers fire with an index only.
    pub fn handle_at(&self, index: u32) -> Option<Handle> {
        match self.slots.get(index as usize) {
            Some(s) if is_live(s.generation) => Some(Handle { index, generation: s.generation }),
            _ => None,
        }
    }

    /// Takes the connection out; the handle (and any copy of it) goes stale.
    pub fn remove(&mut self, h: Handle) -> Option<V> {
        self.live_slot(h)?;
        let key = self.slots[h.index as usize].key;
        let tag = tag_of(key.keyed_hash(&self.hash));
        let pos = self.index.position_of(tag, h.index);
        debug_assert!(pos.is_some(), "live slot {} missing from the index", h.index);
        if let Some(pos) = pos {
            self.index.remove_at(pos);
        }
        let free_head = self.free_head;
        let slot = &mut self.slots[h.index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        // SAFETY: the generation was odd (checked above), so the value was
        // initialised; the even generation now marks it moved out.
        let value = unsafe { slot.value.assume_init_read() };
        set_next_free(&mut slot.key, free_head);
        self.free_head = h.index;
        self.len -= 1;
        self.stats.removes += 1;
        Some(value)
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            len: self.len as u64,
            capacity: self.capacity as u64,
            index_buckets: self.index.buckets() as u64,
            stale_handle: self.stale.get(),
            ..self.stats
        }
    }

    /// The longest displacement now in the index (O(buckets), diagnostics).
    pub fn max_displacement(&self) -> u32 {
        self.index.max_displacement()
    }

    /// Bytes reserved for the slab and the index at full capacity.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes() + self.slots.capacity() * core::mem::size_of::<Slot<V>>()
    }

    /// Every live connection, in slot order. For tests and draining.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &FourTuple, &V)> {
        self.slots.iter().enumerate().filter(|(_, s)| is_live(s.generation)).map(|(i, s)| {
            // SAFETY: odd generation, value initialised.
            (Handle { index: i as u32, generation: s.generation }, &s.key, unsafe { s.value.assume_init_ref() })
        })
    }
}

impl<V> Drop for ConnTable<V> {
    fn drop(&mut self) {
        if core::mem::needs_drop::<V>() {
            for s in self.slots.iter_mut() {
                if is_live(s.generation) {
                    // SAFETY: odd generation, value initialised, dropped once.
                    unsafe { s.value.assume_init_drop() };
                }
            }
        }
    }
}

fn set_next_free(key: &mut FourTuple, next: u32) {
    *key = FourTuple { local_port: (next >> 16) as u16, remote_port: next as u16, ..FourTuple::default() };
}

fn next_free(key: &FourTuple) -> u32 {
    ((key.local_port as u32) << 16) | key.remote_port as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::SocketAddr;

    fn v4(i: u32) -> FourTuple {
        let ip = 0xc612_0000u32 + (i >> 16); // 198.18.0.0/15
        FourTuple::new("198.18.0.1:80".parse().unwrap(), SocketAddr::from((ip.to_be_bytes(), i as u16)))
    }

    fn v6(i: u32) -> FourTuple {
        let remote: SocketAddr =
            format!("[2001:db8::{:x}:{:x}]:{}", i >> 16, i & 0xffff, 1024 + i % 60000).parse().unwrap();
        FourTuple::new("[2001:db8::1]:443".parse().unwrap(), remote)
    }

    #[test]
    fn insert_lookup_get_remove() {
        let mut t = ConnTable::with_capacity_and_seed(16, 1);
        let h = t.insert(v4(1), "one").unwrap();
        let h2 = t.insert(v4(2), "two").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(&v4(1)), Some(h));
        assert_eq!(t.lookup(&v4(2)), Some(h2));
        assert_eq!(t.lookup(&v4(3)), None);
        assert_eq!(t.get(h), Some(&"one"));
        assert_eq!(t.key(h2), Some(&v4(2)));
        *t.get_mut(h).unwrap() = "uno";
        assert_eq!(t.remove(h), Some("uno"));
        assert_eq!(t.lookup(&v4(1)), None);
        assert_eq!(t.len(), 1);
        let s = t.stats();
        assert_eq!((s.inserts, s.removes, s.len), (2, 1, 1));
    }

    #[test]
    fn batch_lookup_matches_single_lookups() {
        let mut t = ConnTable::with_capacity_and_seed(100, 9);
        for i in 0..50 {
            t.insert(v4(i * 2), i).unwrap();
        }
        let keys: Vec<_> = (0..100).map(v4).collect();
        let mut out = vec![None; 100];
        t.lookup_batch(&keys, &mut out);
        for (k, o) in keys.iter().zip(&out) {
            assert_eq!(*o, t.lookup(k));
        }
        assert_eq!(out.iter().filter(|o| o.is_some()).count(), 50);
    }

    #[test]
    fn full_is_refused_and_counted() {
        let mut t = ConnTable::with_capacity_and_seed(3, 2);
        for i in 0..3 {
            t.insert(v4(i), i).unwrap();
        }
        assert_eq!(t.insert(v4(10), 10), Err(InsertError::Full));
        assert_eq!(t.insert(v4(11), 11), Err(InsertError::Full));
        assert_eq!(t.stats().insert_full, 2);
        let h = t.lookup(&v4(0)).unwrap();
        t.remove(h);
        assert!(t.insert(v4(10), 10).is_ok());
    }

    #[test]
    fn existing_tuple_reports_its_handle() {
        let mut t = ConnTable::with_capacity_and_seed(4, 3);
        let h = t.insert(v4(7), 1).unwrap();
        assert_eq!(t.insert(v4(7), 2), Err(InsertError::Exists(h)));
        assert_eq!(t.get(h), Some(&1));
        assert_eq!(t.stats().insert_exists, 1);
        // Exists is reported even when full.
        for i in 0..3 {
            t.insert(v4(100 + i), 0).unwrap();
        }
        assert_eq!(t.insert(v4(7), 2), Err(InsertError::Exists(h)));
    }

    #[test]
    fn stale_handle_after_slot_reuse() {
        let mut t = ConnTable::with_capacity_and_seed(4, 4);
        let old = t.insert(v4(1), 1).unwrap();
        assert_eq!(t.remove(old), Some(1));
        let new = t.insert(v4(2), 2).unwrap();
        assert_eq!(new.index(), old.index(), "LIFO free list reuses the slot");
        assert_ne!(new, old);
        assert_eq!(t.get(old), None);
        assert_eq!(t.key(old), None);
        assert_eq!(t.remove(old), None);
        assert!(t.get_mut(old).is_none());
        assert_eq!(t.get(new), Some(&2));
        assert_eq!(t.handle_at(old.index()), Some(new));
        assert_eq!(t.stats().stale_handle, 4);
        assert_eq!(t.handle_at(3), None, "never used");
    }

    #[test]
    fn ipv4_and_ipv6_keys_coexist() {
        let mut t = ConnTable::with_capacity_and_seed(2000, 5);
        for i in 0..1000 {
            t.insert(v4(i), i).unwrap();
            t.insert(v6(i), i + 1_000_000).unwrap();
        }
        for i in 0..1000 {
            assert_eq!(t.get(t.lookup(&v4(i)).unwrap()), Some(&i));
            assert_eq!(t.get(t.lookup(&v6(i)).unwrap()), Some(&(i + 1_000_000)));
        }
        assert_eq!(t.lookup(&v6(5000)), None);
        assert_eq!(t.iter().count(), 2000);
    }

    #[test]
    fn values_are_dropped() {
        use std::rc::Rc;
        let rc = Rc::new(());
        {
            let mut t = ConnTable::with_capacity_and_seed(8, 6);
            for i in 0..5 {
                t.insert(v4(i), rc.clone()).unwrap();
            }
            let h = t.lookup(&v4(0)).unwrap();
            drop(t.remove(h));
            assert_eq!(Rc::strong_count(&rc), 5);
        }
        assert_eq!(Rc::strong_count(&rc), 1);
    }

    /// Hours of churn at 75% load: remove a random live connection, insert a
    /// new tuple, a million times. Backward-shift deletion leaves no
    /// tombstones, so the probe lengths stay those of a fresh table.
    #[test]
    fn churn_keeps_probes_short() {
        const CAP: u32 = 1 << 16;
        let live = CAP * 3 / 4;
        let mut t = ConnTable::with_capacity_and_seed(CAP, 8);
        let mut handles: Vec<(Handle, u32)> = (0..live).map(|i| (t.insert(v4(i), i).unwrap(), i)).collect();
        let mut rng = 0x1234_5678_9abc_def0u64;
        for next_key in (live..).take(1_000_000) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let victim = (rng % handles.len() as u64) as usize;
            let (h, k) = handles[victim];
            assert_eq!(t.remove(h), Some(k));
            let h = t.insert(v4(next_key), next_key).unwrap();
            handles[victim] = (h, next_key);
        }
        assert_eq!(t.len(), live as usize);
        assert_eq!(t.index.check(), live as usize);
        // The same final key set inserted into a fresh table: churn must not
        // have left the index any worse than that.
        let mut rebuilt = ConnTable::with_capacity_and_seed(CAP, 8);
        for &(_, k) in &handles {
            rebuilt.insert(v4(k), k).unwrap();
        }
        let fresh = rebuilt.max_displacement();
        let after = t.max_displacement();
        assert!(after <= 24 && after <= fresh + 2, "max displacement {fresh} fresh, {after} after churn");
        assert!(t.stats().max_probe <= 32);
        for &(h, k) in &handles {
            assert_eq!(t.lookup(&v4(k)), Some(h));
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8),
        Remove(u8),
        RemoveStale(u8),
        Lookup(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u8>().prop_map(Op::Insert),
            2 => any::<u8>().prop_map(Op::Remove),
            1 => any::<u8>().prop_map(Op::RemoveStale),
            2 => any::<u8>().prop_map(Op::Lookup),
        ]
    }

    fn key(k: u8) -> FourTuple {
        if k.is_multiple_of(3) {
            v6(k as u32)
        } else {
            v4(k as u32)
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec(op(), 1..400), seed: u64) {
            const CAP: usize = 40;
            let mut t = ConnTable::with_capacity_and_seed(CAP as u32, seed);
            let mut model: HashMap<FourTuple, (Handle, u32)> = HashMap::new();
            let mut dead: Vec<Handle> = Vec::new();
            let mut counter = 0u32;
            for op in ops {
                counter += 1;
                match op {
                    Op::Insert(k) => {
                        let r = t.insert(key(k), counter);
                        match model.get(&key(k)) {
                            Some(&(h, _)) => prop_assert_eq!(r, Err(InsertError::Exists(h))),
                            None if model.len() == CAP => prop_assert_eq!(r, Err(InsertError::Full)),
                            None => { model.insert(key(k), (r.unwrap(), counter)); }
                        }
                    }
                    Op::Remove(k) => {
                        if let Some((h, v)) = model.remove(&key(k)) {
                            prop_assert_eq!(t.remove(h), Some(v));
                            dead.push(h);
                        }
                    }
                    Op::RemoveStale(i) => {
                        if !dead.is_empty() {
                            let h = dead[i as usize % dead.len()];
                            prop_assert_eq!(t.remove(h), None);
                            prop_assert_eq!(t.get(h), None);
                        }
                    }
                    Op::Lookup(k) => {
                        let h = t.lookup(&key(k));
                        prop_assert_eq!(h, model.get(&key(k)).map(|e| e.0));
                        if let Some(h) = h {
                            prop_assert_eq!(t.get(h), Some(&model[&key(k)].1));
                            prop_assert_eq!(t.handle_at(h.index()), Some(h));
                        }
                    }
                }
                prop_assert_eq!(t.len(), model.len());
            }
            prop_assert_eq!(t.index.check(), model.len());
            let mut seen: Vec<_> = t.iter().map(|(h, k, v)| (*k, (h, *v))).collect();
            seen.sort_by_key(|e| e.1.1);
            let mut want: Vec<_> = model.into_iter().collect();
            want.sort_by_key(|e| e.1.1);
            prop_assert_eq!(seen, want);
        }
    }
}
