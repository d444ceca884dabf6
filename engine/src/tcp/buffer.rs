//! Send and receive buffers: fixed-size chunks from a pool allocated once at
//! start-up. A connection's ring in each direction is a chain of chunks that
//! grows one chunk at a time as bytes arrive (up to the listener's
//! `max_send_buffer` / `max_recv_buffer`) and gives chunks back from the
//! front as bytes are consumed, so an idle connection holds no chunk and a
//! bulk transfer holds what its window needs.
//!
//! The chain is a link per chunk in the pool (`next`); what a ring needs
//! beyond its first chunk and its length (the offset of its first byte, its
//! last chunk, the chunk count, the out-of-order ranges of `reassembly` and
//! a cursor for walking the chain) lives at the ring's first chunk (`Head`)
//! and moves when that chunk is released. So the ring in the control block
//! is 8 bytes, and no segment allocates.
//!
//! The pool stays a hard memory cap. Below a low-water mark
//! ([`BufferPool::short`]: fewer than 1/[`LOW_WATER_FRACTION`] of the chunks
//! free) connections are held to one chunk's worth of new send space and
//! receive window (growth refused, counted); what a receive window already
//! advertised is always honoured while any chunk is free.

use core::cell::Cell;

use super::reassembly::Ranges;
use super::sender::Senders;
use crate::wire::SeqNumber;

/// No chunk.
pub const NIL: u32 = u32::MAX;

/// Below 1/this of its chunks free, the pool refuses growth ([`BufferPool::short`]).
pub const LOW_WATER_FRACTION: usize = 8;

/// What a ring keeps at its first chunk.
#[derive(Clone, Debug, Default)]
struct Head {
    /// Offset of the ring's first byte in its first chunk.
    start: u32,
    /// The ring's last chunk.
    last: u32,
    /// Chunks in the chain.
    chunks: u32,
    /// Chunks released from the front over the ring's life: the ordinal of
    /// the first chunk, so the cursor survives releases.
    base: u32,
    /// The chunk last walked to and its ordinal: sends and reassembly
    /// mostly go forward, so walking the chain costs O(1) amortised.
    cur_chunk: Cell<u32>,
    cur_ord: Cell<u32>,
    /// Out-of-order ranges held beyond the ring's bytes (receive rings).
    ooo: Ranges,
}

/// The pool of chunks of one shard.
pub struct BufferPool {
    mem: Box<[u8]>,
    chunk_size: u32,
    free: Vec<u32>,
    /// The next chunk of the same ring (`NIL` for the last).
    next: Box<[u32]>,
    /// Per ring, at its first chunk.
    head: Box<[Head]>,
    low_water: usize,
    /// Times a chunk was wanted and none was free.
    pub exhausted: u64,
    /// Sender state of the connections with bytes to send, one slot per
    /// chunk (a busy sender holds at least one).
    pub senders: Senders,
}

impl BufferPool {
    pub fn new(chunks: u32, chunk_size: u32) -> BufferPool {
        // Zeroed memory comes from the allocator as untouched pages, so an
        // unused pool costs address space, not resident memory.
        let mem = vec![0u8; chunks as usize * chunk_size as usize].into_boxed_slice();
        // No huge-page advice here: a 2 MiB page would commit 128 chunks at
        // the first touch of one (bench/hold.py: 4 M held connections took
        // 512 B each on the server instead of 254, the whole 1 GiB pool
        // resident).
        BufferPool {
            mem,
            chunk_size,
            free: (0..chunks).rev().collect(),
            next: vec![NIL; chunks as usize].into_boxed_slice(),
            head: vec![Head::default(); chunks as usize].into_boxed_slice(),
            low_water: chunks as usize / LOW_WATER_FRACTION,
            exhausted: 0,
            senders: Senders::new(chunks),
        }
    }
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// Chunks in the pool, free or held.
    pub fn chunks(&self) -> usize {
        self.next.len()
    }
    pub fn available(&self) -> usize {
        self.free.len()
    }
    /// Free chunks are below the low-water mark: no connection grows its
    /// buffers now; what was advertised is still honoured.
    pub fn short(&self) -> bool {
        self.free.len() <= self.low_water
    }
    /// Bytes of chunk memory reserved (and the links and heads beside the chunks).
    pub fn memory_bytes(&self) -> usize {
        self.mem.len()
            + core::mem::size_of_val(&*self.next)
            + core::mem::size_of_val(&*self.head)
            + self.free.capacity() * 4
            + self.senders.memory_bytes()
    }
    fn alloc(&mut self) -> Option<u32> {
        let c = self.free.pop();
        if c.is_none() {
            self.exhausted += 1;
        }
        c
    }
    fn release(&mut self, c: u32) {
        debug_assert!(c != NIL);
        self.next[c as usize] = NIL;
        self.free.push(c);
    }
    fn chunk(&self, c: u32) -> &[u8] {
        let s = c as usize * self.chunk_size as usize;
        &self.mem[s..s + self.chunk_size as usize]
    }
    fn chunk_mut(&mut self, c: u32) -> &mut [u8] {
        let s = c as usize * self.chunk_size as usize;
        &mut self.mem[s..s + self.chunk_size as usize]
    }
}

/// A connection's bytes in one direction, held in its control block: a
/// chain of pool chunks starting at `first`, and `len` in-order bytes from
/// the first one (out-of-order bytes beyond them are not counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    first: u32,
    len: u32,
}

impl Default for Ring {
    fn default() -> Self {
        Ring { first: NIL, len: 0 }
    }
}

impl Ring {
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn has_chunk(&self) -> bool {
        self.first != NIL
    }
    /// Chunks this ring holds.
    pub fn chunks(&self, pool: &BufferPool) -> usize {
        if self.first == NIL {
            0
        } else {
            pool.head[self.first as usize].chunks as usize
        }
    }
    /// Room left when the ring may hold `limit` bytes.
    pub fn free(&self, limit: usize) -> usize {
        limit.saturating_sub(self.len as usize)
    }

    fn start(&self, pool: &BufferPool) -> usize {
        if self.first == NIL {
            0
        } else {
            pool.head[self.first as usize].start as usize
        }
    }

    /// Makes the chain reach `end` bytes past the start of its first chunk,
    /// taking chunks at the tail; returns how far it reaches (less than
    /// `end` when the pool ran dry).
    fn reserve(&mut self, pool: &mut BufferPool, end: usize) -> usize {
        let cs = pool.chunk_size as usize;
        if self.first == NIL {
            if end == 0 {
                return 0;
            }
            let Some(c) = pool.alloc() else { return 0 };
            self.first = c;
            pool.head[c as usize] = Head {
                start: 0,
                last: c,
                chunks: 1,
                base: 0,
                cur_chunk: Cell::new(c),
                cur_ord: Cell::new(0),
                ooo: Ranges::new(),
            };
        }
        let f = self.first as usize;
        let mut reach = pool.head[f].chunks as usize * cs;
        while reach < end {
            let Some(c) = pool.alloc() else { break };
            let last = pool.head[f].last;
            pool.next[last as usize] = c;
            pool.head[f].last = c;
            pool.head[f].chunks += 1;
            reach += cs;
        }
        reach
    }

    /// The chunk holding position `pos` (bytes past the start of the first
    /// chunk) and the offset in it. The caller keeps `pos` within the chain.
    fn locate(&self, pool: &BufferPool, pos: usize) -> (u32, usize) {
        let cs = pool.chunk_size as usize;
        let h = &pool.head[self.first as usize];
        let target = (pos / cs) as u32;
        debug_assert!(target < h.chunks, "position {pos} beyond {} chunks", h.chunks);
        if target + 1 == h.chunks {
            return (h.last, pos % cs);
        }
        let cur = h.cur_ord.get().wrapping_sub(h.base);
        let (mut c, mut at) = if cur < h.chunks && cur <= target { (h.cur_chunk.get(), cur) } else { (self.first, 0) };
        while at < target {
            c = pool.next[c as usize];
            at += 1;
        }
        h.cur_chunk.set(c);
        h.cur_ord.set(h.base.wrapping_add(target));
        (c, pos % cs)
    }

    fn write_at(&self, pool: &mut BufferPool, pos: usize, data: &[u8]) {
        let cs = pool.chunk_size as usize;
        let (mut c, mut off) = self.locate(pool, pos);
        let mut done = 0;
        while done < data.len() {
            if off == cs {
                c = pool.next[c as usize];
                off = 0;
            }
            let n = (data.len() - done).min(cs - off);
            pool.chunk_mut(c)[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
            off += n;
        }
    }

    /// Appends as much of `data` as fits while the ring holds at most
    /// `limit` bytes, taking chunks as needed. Returns the bytes taken
    /// (fewer when the pool runs dry).
    pub fn push(&mut self, pool: &mut BufferPool, data: &[u8], limit: usize) -> usize {
        let want = data.len().min(limit.saturating_sub(self.len as usize));
        if want == 0 {
            return 0;
        }
        let tail = self.start(pool) + self.len as usize;
        let reach = self.reserve(pool, tail + want);
        let n = want.min(reach.saturating_sub(tail));
        if n == 0 {
            return 0;
        }
        self.write_at(pool, tail, &data[..n]);
        self.len += n as u32;
        n
    }

    /// Copies `out.len()` bytes starting `offset` bytes into the ring.
    /// The caller keeps `offset + out.len() <= len`.
    pub fn peek(&self, pool: &BufferPool, offset: usize, out: &mut [u8]) {
        debug_assert!(offset + out.len() <= self.len as usize);
        if out.is_empty() {
            return;
        }
        let cs = pool.chunk_size as usize;
        let (mut c, mut off) = self.locate(pool, self.start(pool) + offset);
        let mut done = 0;
        while done < out.len() {
            if off == cs {
                c = pool.next[c as usize];
                off = 0;
            }
            let n = (out.len() - done).min(cs - off);
            out[done..done + n].copy_from_slice(&pool.chunk(c)[off..off + n]);
            done += n;
            off += n;
        }
    }

    /// The longest contiguous run of bytes at the front: up to the end of
    /// the first chunk.
    pub fn front<'p>(&self, pool: &'p BufferPool) -> &'p [u8] {
        if self.len == 0 {
            return &[];
        }
        let start = self.start(pool);
        let end = (start + self.len as usize).min(pool.chunk_size as usize);
        &pool.chunk(self.first)[start..end]
    }

    /// Drops `n` bytes from the front, giving back each chunk it empties;
    /// all of them when the ring holds nothing, out-of-order bytes included.
    pub fn consume(&mut self, pool: &mut BufferPool, n: usize) {
        let n = n.min(self.len as usize);
        self.len -= n as u32;
        if self.first == NIL {
            return;
        }
        if self.len == 0 && self.out_of_order(pool).is_empty() {
            self.clear(pool);
            return;
        }
        let cs = pool.chunk_size as usize;
        let mut start = pool.head[self.first as usize].start as usize + n;
        while start >= cs {
            let f = self.first;
            let next = pool.next[f as usize];
            debug_assert!(next != NIL, "bytes held past the last chunk");
            let mut h = core::mem::take(&mut pool.head[f as usize]);
            h.chunks -= 1;
            h.base = h.base.wrapping_add(1);
            pool.head[next as usize] = h;
            pool.release(f);
            self.first = next;
            start -= cs;
        }
        pool.head[self.first as usize].start = start as u32;
    }

    /// The out-of-order ranges this (receive) ring holds beyond its bytes.
    pub fn out_of_order<'p>(&self, pool: &'p BufferPool) -> &'p Ranges {
        const NONE: Ranges = Ranges::new();
        if self.first == NIL {
            return &NONE;
        }
        &pool.head[self.first as usize].ooo
    }

    /// Keeps `data`, whose first byte has sequence number `seq`, `gap` bytes
    /// past the end of the ring's bytes, taking the chunks up to it, and
    /// records its range. The caller keeps `gap + data.len()` within the
    /// window it advertised. False, keeping nothing, when the pool has too
    /// few chunks (counted) or the range would be one too many.
    pub fn insert_out_of_order(&mut self, pool: &mut BufferPool, gap: usize, seq: SeqNumber, data: &[u8]) -> bool {
        if data.is_empty() {
            return false;
        }
        let mut ranges = *self.out_of_order(pool);
        if !ranges.insert(seq, seq + data.len()) {
            return false;
        }
        let cs = pool.chunk_size as usize;
        let pos = self.start(pool) + self.len as usize + gap;
        let end = pos + data.len();
        let held = self.chunks(pool) * cs;
        if end.saturating_sub(held).div_ceil(cs) > pool.available() {
            pool.exhausted += 1;
            return false;
        }
        let reach = self.reserve(pool, end);
        debug_assert!(reach >= end);
        self.write_at(pool, pos, data);
        pool.head[self.first as usize].ooo = ranges;
        true
    }

    /// RCV.NXT reached `rcv_nxt`: the out-of-order bytes now contiguous with
    /// the ring's join it. Returns the new RCV.NXT.
    pub fn join_out_of_order(&mut self, pool: &mut BufferPool, rcv_nxt: SeqNumber) -> SeqNumber {
        if self.first == NIL {
            return rcv_nxt;
        }
        let next = pool.head[self.first as usize].ooo.advance(rcv_nxt);
        self.len += (next - rcv_nxt) as u32;
        debug_assert!(self.start(pool) + self.len as usize <= self.chunks(pool) * pool.chunk_size as usize);
        next
    }

    /// Forgets the out-of-order ranges (their bytes are never delivered);
    /// a ring left without bytes returns its chunks.
    pub fn discard_out_of_order(&mut self, pool: &mut BufferPool) {
        if self.first == NIL {
            return;
        }
        pool.head[self.first as usize].ooo.clear();
        if self.len == 0 {
            self.clear(pool);
        }
    }

    /// Empties the ring and returns its chunks to the pool.
    pub fn clear(&mut self, pool: &mut BufferPool) {
        let mut c = self.first;
        while c != NIL {
            let next = pool.next[c as usize];
            pool.release(c);
            c = next;
        }
        *self = Ring::default();
    }

    /// Walks the chain and checks it against its head: the chunk count,
    /// the last chunk, room for the bytes held. The chunk count, or what is
    /// wrong. For invariant checks, not the data path.
    pub fn check(&self, pool: &BufferPool) -> Result<usize, String> {
        if self.first == NIL {
            return if self.len == 0 { Ok(0) } else { Err(format!("{} bytes and no chunk", self.len)) };
        }
        let h = &pool.head[self.first as usize];
        let (mut c, mut n, mut last) = (self.first, 0u32, NIL);
        while c != NIL {
            n += 1;
            if n > h.chunks {
                return Err(format!("chain longer than its {} chunks", h.chunks));
            }
            last = c;
            c = pool.next[c as usize];
        }
        if n != h.chunks || last != h.last {
            return Err(format!("chain of {n} chunks ending at {last}, head says {} ending at {}", h.chunks, h.last));
        }
        let cs = pool.chunk_size as usize;
        if h.start as usize >= cs || h.start as usize + self.len as usize > n as usize * cs {
            return Err(format!("start {} + {} bytes beyond {n} chunks", h.start, self.len));
        }
        if self.len == 0 && h.ooo.is_empty() {
            return Err("holds chunks but no bytes".into());
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: usize = usize::MAX;

    fn bytes(r: &Ring, pool: &BufferPool) -> Vec<u8> {
        let mut out = vec![0u8; r.len()];
        r.peek(pool, 0, &mut out);
        out
    }

    #[test]
    fn ring_wraps_and_returns_its_chunk() {
        let mut pool = BufferPool::new(2, 8);
        let mut r = Ring::default();
        assert_eq!(r.free(8), 8);
        assert_eq!(r.push(&mut pool, b"abcdef", 8), 6);
        assert_eq!(pool.available(), 1);
        r.consume(&mut pool, 4);
        assert_eq!(r.push(&mut pool, b"ghijklmn", 8), 6, "only 6 fit under the limit");
        assert_eq!(bytes(&r, &pool), b"efghijkl");
        assert_eq!(r.front(&pool), b"efgh", "the first chunk's bytes");
        assert_eq!(r.chunks(&pool), 2, "the bytes spill into a second chunk");
        r.consume(&mut pool, 8);
        assert!(r.is_empty() && !r.has_chunk());
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn a_ring_spans_chunks_and_frees_them_from_the_front() {
        let mut pool = BufferPool::new(8, 4);
        let mut r = Ring::default();
        let data: Vec<u8> = (0..22).collect();
        assert_eq!(r.push(&mut pool, &data, ALL), 22);
        assert_eq!(r.chunks(&pool), 6);
        assert_eq!(r.check(&pool), Ok(6));
        assert_eq!(bytes(&r, &pool), data);
        let mut mid = [0u8; 9];
        r.peek(&pool, 5, &mut mid);
        assert_eq!(mid.to_vec(), (5..14).collect::<Vec<u8>>(), "a peek across three chunks");
        r.peek(&pool, 1, &mut mid[..2]);
        assert_eq!(mid[..2], [1, 2], "backwards after a walk forward");
        r.consume(&mut pool, 9);
        assert_eq!(r.chunks(&pool), 4, "two chunks consumed, given back");
        assert_eq!(pool.available(), 4);
        assert_eq!(r.front(&pool), &[9, 10, 11]);
        assert_eq!(bytes(&r, &pool), (9..22).collect::<Vec<u8>>());
        // Wrapping: more bytes go at the tail, chunks come back to it.
        let more: Vec<u8> = (22..32).collect();
        assert_eq!(r.push(&mut pool, &more, ALL), 10);
        assert_eq!(bytes(&r, &pool), (9..32).collect::<Vec<u8>>());
        assert_eq!(r.check(&pool), Ok(r.chunks(&pool)));
        r.consume(&mut pool, 23);
        assert!(!r.has_chunk());
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn push_stops_at_the_limit() {
        let mut pool = BufferPool::new(8, 4);
        let mut r = Ring::default();
        assert_eq!(r.push(&mut pool, &[7; 20], 10), 10);
        assert_eq!(r.chunks(&pool), 3);
        assert_eq!(r.free(10), 0);
        assert_eq!(r.push(&mut pool, &[7; 20], 10), 0);
    }

    #[test]
    fn exhausted_pool_takes_nothing_and_counts() {
        let mut pool = BufferPool::new(1, 4);
        let (mut a, mut b) = (Ring::default(), Ring::default());
        assert_eq!(a.push(&mut pool, b"xy", ALL), 2);
        assert_eq!(b.push(&mut pool, b"z", ALL), 0);
        assert_eq!(pool.exhausted, 1);
        a.clear(&mut pool);
        assert_eq!(b.push(&mut pool, b"z", ALL), 1);
    }

    #[test]
    fn pool_exhaustion_mid_growth_keeps_what_fits() {
        let mut pool = BufferPool::new(3, 4);
        let (mut a, mut b) = (Ring::default(), Ring::default());
        assert_eq!(b.push(&mut pool, b"b", ALL), 1);
        assert_eq!(a.push(&mut pool, &[1; 12], ALL), 8, "two chunks were left");
        assert_eq!(pool.exhausted, 1);
        assert_eq!(a.check(&pool), Ok(2));
        assert_eq!(pool.available(), 0);
        b.clear(&mut pool);
        assert_eq!(a.push(&mut pool, &[2; 12], ALL), 4, "grows again as chunks come back");
        assert_eq!(bytes(&a, &pool), [[1; 8].as_slice(), &[2; 4]].concat());
    }

    #[test]
    fn a_chunk_costs_little_beside_its_bytes() {
        // The link and the head each chunk carries (the head is a ring's
        // only while the chunk is its first).
        // 8 out-of-order ranges (66 bytes) are most of it: 0.6 % of a
        // 16 KiB chunk, and an idle connection holds no chunk.
        let beside = core::mem::size_of::<Head>() + 4;
        eprintln!("{beside} bytes beside each chunk");
        assert!(beside <= 96);
        assert_eq!(core::mem::size_of::<Ring>(), 8);
    }

    #[test]
    fn low_water_marks_the_pool_short() {
        let mut pool = BufferPool::new(16, 4);
        let mut r = Ring::default();
        assert!(!pool.short());
        r.push(&mut pool, &[0; 4 * 13], ALL);
        assert!(!pool.short(), "3 of 16 free");
        r.push(&mut pool, &[0; 4], ALL);
        assert!(pool.short(), "2 of 16 free: 1/8");
    }

    #[test]
    fn out_of_order_several_chunks_ahead() {
        let mut pool = BufferPool::new(8, 4);
        let mut r = Ring::default();
        let base = SeqNumber(1000);
        assert_eq!(r.push(&mut pool, &[0, 1, 2], ALL), 3);
        // Bytes 13..18 arrive first: four chunks ahead of the first.
        assert!(r.insert_out_of_order(&mut pool, 10, base + 13, &[13, 14, 15, 16, 17]));
        assert_eq!(r.chunks(&pool), 5, "the chunks up to the segment are taken");
        assert_eq!(r.len(), 3);
        assert!(r.insert_out_of_order(&mut pool, 2, base + 5, &[5, 6, 7]));
        let ooo: Vec<_> = r.out_of_order(&pool).iter().map(|(s, e)| (s - base, e - base)).collect();
        assert_eq!(ooo, vec![(5, 8), (13, 18)]);
        // The reader moves the first chunk on: the ranges move with the head.
        r.consume(&mut pool, 3);
        assert_eq!(r.out_of_order(&pool).len(), 2, "ranges kept though the ring is empty");
        let mut nxt = base + 3;
        assert_eq!(r.push(&mut pool, &[3, 4], ALL), 2);
        nxt += 2;
        nxt = r.join_out_of_order(&mut pool, nxt);
        assert_eq!(nxt - base, 8);
        assert_eq!(bytes(&r, &pool), vec![3, 4, 5, 6, 7]);
        r.consume(&mut pool, 5);
        assert_eq!(r.chunks(&pool), 3, "chunks 0 and 1 are free again");
        assert_eq!(r.push(&mut pool, &[8, 9, 10, 11, 12], ALL), 5);
        nxt = r.join_out_of_order(&mut pool, nxt + 5);
        assert_eq!(nxt - base, 18);
        assert_eq!(bytes(&r, &pool), (8..18).collect::<Vec<u8>>());
        assert!(r.out_of_order(&pool).is_empty());
        r.consume(&mut pool, 10);
        assert!(!r.has_chunk());
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn out_of_order_needing_more_chunks_than_free_keeps_nothing() {
        let mut pool = BufferPool::new(3, 4);
        let mut r = Ring::default();
        assert!(!r.insert_out_of_order(&mut pool, 10, SeqNumber(10), &[1, 2, 3]), "needs 4 chunks");
        assert_eq!((pool.available(), pool.exhausted), (3, 1));
        assert!(!r.has_chunk());
        assert!(r.insert_out_of_order(&mut pool, 6, SeqNumber(6), &[1, 2, 3]));
        assert_eq!(r.chunks(&pool), 3);
        assert!(r.is_empty() && r.has_chunk(), "only out-of-order bytes");
        r.clear(&mut pool);
        assert_eq!(pool.available(), 3);
    }
}
