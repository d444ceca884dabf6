//! The open-addressing index shared by both tables: Robin Hood linear probing
//! over 8-byte buckets, deletion by backward shift (no tombstones).
//!
//! A bucket is `tag << 32 | (slot + 1)`, 0 when empty. The tag is the top 32
//! bits of the key's keyed hash, and the home bucket is derived from the tag
//! alone by a multiply-shift (`tag * n >> 32`, Lemire's fast range), so:
//! - a probe compares tags and touches the entry slab only on a tag match: a
//!   miss almost never leaves the index (a false match needs the same home
//!   bucket and the same 32-bit tag);
//! - any bucket's displacement from its home is known without reading its
//!   key, which Robin Hood insertion and backward-shift deletion need;
//! - the bucket count need not be a power of two, so the index is sized to
//!   exactly `capacity / load` and wastes nothing to rounding.
//!
//! Robin Hood keeps each run ordered by home bucket, so a lookup stops at the
//! first bucket whose displacement is smaller than its own probe distance:
//! misses cost about as much as hits. Backward-shift deletion leaves the table
//! exactly as if the removed key had never been inserted, so probe lengths
//! under hours of insert/remove churn stay those of a fresh table at the same
//! load (tested in `conn.rs`).

const EMPTY: u64 = 0;

pub(crate) struct Index {
    buckets: super::Mapped<u64>,
    /// `buckets.len()` as u64, for the home computation.
    n: u64,
}

#[inline(always)]
pub(crate) fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl Index {
    /// An index for up to `capacity` entries at most `load` full. Always at
    /// least one bucket more than `capacity`, so every probe ends.
    pub(crate) fn new(capacity: u32, load: f64) -> Index {
        let n = ((capacity as f64 / load).ceil() as u64).max(capacity as u64 + 1);
        assert!(n <= u32::MAX as u64, "index of {n} buckets is over the 2^32 limit");
        const { assert!(EMPTY == 0) };
        // SAFETY: zero is a valid u64 (and EMPTY): the kernel hands zero
        // pages in as they are touched.
        let buckets = unsafe { super::Mapped::zeroed(n as usize) };
        Index { buckets, n }
    }

    pub(crate) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.buckets.len() * 8
    }

    /// Writes every page, so the kernel maps them now and not on the data path.
    pub(crate) fn prefault(&mut self) {
        for chunk in self.buckets.chunks_mut(512) {
            // SAFETY: chunk[0] is a valid, aligned u64 we own; a volatile
            // store of the value it already holds keeps the write from being
            // optimised away.
            unsafe { core::ptr::write_volatile(&mut chunk[0], core::ptr::read_volatile(&chunk[0])) };
        }
    }

    /// Starts loading the home bucket of `tag` into cache.
    #[inline(always)]
    pub(crate) fn prefetch(&self, tag: u32) {
        super::prefetch(&self.buckets[self.home(tag)]);
    }

    /// The first slot whose tag matches, without confirming the key: a hint
    /// for prefetching the slot a lookup will read.
    #[inline(always)]
    pub(crate) fn first_candidate(&self, tag: u32) -> Option<u32> {
        self.find(tag, |_| true).map(|(_, slot)| slot)
    }

    #[inline(always)]
    fn home(&self, tag: u32) -> usize {
        ((tag as u64 * self.n) >> 32) as usize
    }

    #[inline(always)]
    fn next(&self, pos: usize) -> usize {
        if pos + 1 == self.buckets.len() {
            0
        } else {
            pos + 1
        }
    }

    /// How far the bucket at `pos` holding `tag` sits from its home.
    #[inline(always)]
    fn displacement(&self, tag: u32, pos: usize) -> usize {
        let h = self.home(tag);
        if pos >= h {
            pos - h
        } else {
            pos + self.buckets.len() - h
        }
    }

    /// Where the key with this tag lives: `(bucket position, slot)`. `eq` is
    /// asked only about slots whose tag matches.
    #[inline(always)]
    pub(crate) fn find(&self, tag: u32, mut eq: impl FnMut(u32) -> bool) -> Option<(usize, u32)> {
        let mut pos = self.home(tag);
        let mut dist = 0usize;
        loop {
            let b = self.buckets[pos];
            if b == EMPTY {
                return None;
            }
            let btag = (b >> 32) as u32;
            if btag == tag {
                let slot = (b as u32).wrapping_sub(1);
                if eq(slot) {
                    return Some((pos, slot));
                }
            }
            if self.displacement(btag, pos) < dist {
                // Runs are ordered by home: ours would have been placed here.
                return None;
            }
            dist += 1;
            pos = self.next(pos);
        }
    }

    /// The bucket position holding `slot` under `tag`, which must be present.
    pub(crate) fn position_of(&self, tag: u32, slot: u32) -> Option<usize> {
        self.find(tag, |s| s == slot).map(|(pos, _)| pos)
    }

    /// Adds `slot` under `tag`; the caller has checked the key is absent and
    /// that there is room. Returns the largest displacement it left behind.
    pub(crate) fn insert(&mut self, tag: u32, slot: u32) -> u32 {
        let mut cur = ((tag as u64) << 32) | (slot as u64 + 1);
        let mut cur_dist = 0usize;
        let mut max_dist = 0usize;
        let mut pos = self.home(tag);
        loop {
            let b = self.buckets[pos];
            if b == EMPTY {
                self.buckets[pos] = cur;
                return max_dist.max(cur_dist) as u32;
            }
            let bdist = self.displacement((b >> 32) as u32, pos);
            if bdist < cur_dist {
                // Robin Hood: the richer entry (closer to home) gives way.
                self.buckets[pos] = cur;
                max_dist = max_dist.max(cur_dist);
                cur = b;
                cur_dist = bdist;
            }
            cur_dist += 1;
            pos = self.next(pos);
        }
    }

    /// Points the bucket at `pos` at a different slot (same key, moved entry).
    pub(crate) fn repoint(&mut self, pos: usize, slot: u32) {
        let b = self.buckets[pos];
        debug_assert_ne!(b, EMPTY);
        self.buckets[pos] = (b & !0xffff_ffff) | (slot as u64 + 1);
    }

    /// Empties the bucket at `pos`, shifting the rest of its run back one.
    pub(crate) fn remove_at(&mut self, mut pos: usize) {
        loop {
            let nx = self.next(pos);
            let b = self.buckets[nx];
            if b == EMPTY || self.displacement((b >> 32) as u32, nx) == 0 {
                self.buckets[pos] = EMPTY;
                return;
            }
            self.buckets[pos] = b;
            pos = nx;
        }
    }

    /// The largest displacement currently in the index: O(buckets), for
    /// tests and diagnostics.
    pub(crate) fn max_displacement(&self) -> u32 {
        let mut max = 0;
        for (pos, &b) in self.buckets.iter().enumerate() {
            if b != EMPTY {
                max = max.max(self.displacement((b >> 32) as u32, pos));
            }
        }
        max as u32
    }

    /// Checks the Robin Hood invariant everywhere; for tests.
    #[cfg(test)]
    pub(crate) fn check(&self) -> usize {
        let mut count = 0;
        for pos in 0..self.buckets.len() {
            let b = self.buckets[pos];
            if b == EMPTY {
                continue;
            }
            count += 1;
            let d = self.displacement((b >> 32) as u32, pos);
            if d > 0 {
                let prev = if pos == 0 { self.buckets.len() - 1 } else { pos - 1 };
                let pb = self.buckets[prev];
                assert_ne!(pb, EMPTY, "bucket {pos} displaced {d} after a hole");
                let pd = self.displacement((pb >> 32) as u32, prev);
                assert!(pd + 1 >= d, "bucket {pos}: displacement {d} after {pd}");
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(n: usize, seed: u64) -> Vec<u32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u32
            })
            .collect()
    }

    #[test]
    fn insert_find_remove_keeps_the_invariant() {
        let mut ix = Index::new(1000, 0.9);
        let t = tags(1000, 99);
        for (slot, &tag) in t.iter().enumerate() {
            ix.insert(tag, slot as u32);
        }
        assert_eq!(ix.check(), 1000);
        for (slot, &tag) in t.iter().enumerate() {
            assert!(ix.position_of(tag, slot as u32).is_some());
        }
        for (slot, &tag) in t.iter().enumerate().step_by(2) {
            let pos = ix.position_of(tag, slot as u32).unwrap();
            ix.remove_at(pos);
        }
        assert_eq!(ix.check(), 500);
        for (slot, &tag) in t.iter().enumerate() {
            assert_eq!(ix.position_of(tag, slot as u32).is_some(), slot % 2 == 1);
        }
    }

    #[test]
    fn full_index_wraps_around() {
        // Tags all near the top so runs wrap past the last bucket.
        let mut ix = Index::new(8, 1.0);
        assert_eq!(ix.buckets(), 9);
        for slot in 0..8u32 {
            ix.insert(u32::MAX - slot, slot);
        }
        assert_eq!(ix.check(), 8);
        for slot in 0..8u32 {
            assert!(ix.position_of(u32::MAX - slot, slot).is_some());
        }
        assert!(ix.find(0, |_| true).is_none());
        let pos = ix.position_of(u32::MAX, 0).unwrap();
        ix.remove_at(pos);
        assert_eq!(ix.check(), 7);
        for slot in 1..8u32 {
            assert!(ix.position_of(u32::MAX - slot, slot).is_some());
        }
    }
}
