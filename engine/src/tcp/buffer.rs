//! Send and receive buffers: fixed-size chunks from a pool allocated once at
//! start-up. A connection holds at most one chunk per direction, and only
//! while it has bytes there, so an idle connection costs no buffer memory.
//! Each chunk is used as a ring. A receive chunk also holds the segments
//! that arrived beyond RCV.NXT, at their place, with their sequence ranges
//! kept beside the chunk (`reassembly`).

use super::reassembly::Ranges;
use super::sender::Senders;
use crate::wire::SeqNumber;

/// No chunk.
pub const NIL: u32 = u32::MAX;

/// The pool of chunks of one shard.
pub struct BufferPool {
    mem: Box<[u8]>,
    chunk_size: u32,
    free: Vec<u32>,
    /// Out-of-order ranges held in each chunk (receive chunks only).
    ooo: Box<[Ranges]>,
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
        let ooo = vec![Ranges::default(); chunks as usize].into_boxed_slice();
        BufferPool {
            mem,
            chunk_size,
            free: (0..chunks).rev().collect(),
            ooo,
            exhausted: 0,
            senders: Senders::new(chunks),
        }
    }
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// Chunks in the pool, free or held.
    pub fn chunks(&self) -> usize {
        self.ooo.len()
    }
    pub fn available(&self) -> usize {
        self.free.len()
    }
    /// Bytes of chunk memory reserved (and the ranges beside the chunks).
    pub fn memory_bytes(&self) -> usize {
        self.mem.len() + core::mem::size_of_val(&*self.ooo) + self.senders.memory_bytes()
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
        self.ooo[c as usize].clear();
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

/// A ring of bytes in a pool chunk, held in a connection's control block.
/// `start` is the offset of the first byte, `len` the bytes held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    chunk: u32,
    start: u32,
    len: u32,
}

impl Default for Ring {
    fn default() -> Self {
        Ring { chunk: NIL, start: 0, len: 0 }
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
        self.chunk != NIL
    }
    /// Room left, counting the chunk this ring would get.
    pub fn free(&self, pool: &BufferPool) -> usize {
        (pool.chunk_size - self.len) as usize
    }

    /// Appends as much of `data` as fits; takes a chunk if needed. Returns the
    /// bytes taken (0 when the pool is empty).
    pub fn push(&mut self, pool: &mut BufferPool, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        if self.chunk == NIL {
            match pool.alloc() {
                Some(c) => {
                    self.chunk = c;
                    self.start = 0;
                }
                None => return 0,
            }
        }
        let size = pool.chunk_size as usize;
        let n = data.len().min(size - self.len as usize);
        let tail = (self.start as usize + self.len as usize) % size;
        let first = n.min(size - tail);
        let chunk = pool.chunk_mut(self.chunk);
        chunk[tail..tail + first].copy_from_slice(&data[..first]);
        chunk[..n - first].copy_from_slice(&data[first..n]);
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
        let size = pool.chunk_size as usize;
        let chunk = pool.chunk(self.chunk);
        let at = (self.start as usize + offset) % size;
        let first = out.len().min(size - at);
        out[..first].copy_from_slice(&chunk[at..at + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&chunk[..rest]);
    }

    /// The longest contiguous run of bytes at the front.
    pub fn front<'p>(&self, pool: &'p BufferPool) -> &'p [u8] {
        if self.len == 0 {
            return &[];
        }
        let size = pool.chunk_size as usize;
        let end = (self.start as usize + self.len as usize).min(size);
        &pool.chunk(self.chunk)[self.start as usize..end]
    }

    /// Drops `n` bytes from the front; gives the chunk back when it holds
    /// nothing, out-of-order bytes included.
    pub fn consume(&mut self, pool: &mut BufferPool, n: usize) {
        let n = n.min(self.len as usize) as u32;
        self.len -= n;
        self.start = (self.start + n) % pool.chunk_size.max(1);
        if self.len == 0 && self.out_of_order(pool).is_empty() {
            self.clear(pool);
        }
    }

    /// The out-of-order ranges this (receive) ring holds beyond its bytes.
    pub fn out_of_order<'p>(&self, pool: &'p BufferPool) -> &'p Ranges {
        const NONE: Ranges = Ranges::new();
        if self.chunk == NIL {
            return &NONE;
        }
        &pool.ooo[self.chunk as usize]
    }

    /// Keeps `data`, whose first byte has sequence number `seq`, `gap` bytes
    /// past the end of the ring's bytes, and records its range. The caller
    /// keeps `gap + data.len()` within the window it advertised, so within
    /// the chunk. False, keeping nothing, when no chunk is free or the range
    /// would be one too many.
    pub fn insert_out_of_order(&mut self, pool: &mut BufferPool, gap: usize, seq: SeqNumber, data: &[u8]) -> bool {
        let size = pool.chunk_size as usize;
        if data.is_empty() || self.len as usize + gap + data.len() > size {
            return false;
        }
        if self.chunk == NIL {
            match pool.alloc() {
                Some(c) => {
                    self.chunk = c;
                    self.start = 0;
                }
                None => return false,
            }
        }
        if !pool.ooo[self.chunk as usize].insert(seq, seq + data.len()) {
            if self.len == 0 && pool.ooo[self.chunk as usize].is_empty() {
                self.clear(pool);
            }
            return false;
        }
        let at = (self.start as usize + self.len as usize + gap) % size;
        let first = data.len().min(size - at);
        let chunk = pool.chunk_mut(self.chunk);
        chunk[at..at + first].copy_from_slice(&data[..first]);
        chunk[..data.len() - first].copy_from_slice(&data[first..]);
        true
    }

    /// RCV.NXT reached `rcv_nxt`: the out-of-order bytes now contiguous with
    /// the ring's join it. Returns the new RCV.NXT.
    pub fn join_out_of_order(&mut self, pool: &mut BufferPool, rcv_nxt: SeqNumber) -> SeqNumber {
        if self.chunk == NIL {
            return rcv_nxt;
        }
        let next = pool.ooo[self.chunk as usize].advance(rcv_nxt);
        self.len += (next - rcv_nxt) as u32;
        debug_assert!(self.len <= pool.chunk_size);
        next
    }

    /// Empties the ring and returns its chunk to the pool.
    pub fn clear(&mut self, pool: &mut BufferPool) {
        if self.chunk != NIL {
            pool.release(self.chunk);
        }
        *self = Ring::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wraps_and_returns_its_chunk() {
        let mut pool = BufferPool::new(2, 8);
        let mut r = Ring::default();
        assert_eq!(r.free(&pool), 8);
        assert_eq!(r.push(&mut pool, b"abcdef"), 6);
        assert_eq!(pool.available(), 1);
        r.consume(&mut pool, 4);
        assert_eq!(r.push(&mut pool, b"ghijklmn"), 6, "only 6 fit");
        let mut out = [0u8; 8];
        r.peek(&pool, 0, &mut out);
        assert_eq!(&out, b"efghijkl");
        assert_eq!(r.front(&pool), b"efgh");
        r.consume(&mut pool, 8);
        assert!(r.is_empty() && !r.has_chunk());
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn exhausted_pool_takes_nothing_and_counts() {
        let mut pool = BufferPool::new(1, 4);
        let (mut a, mut b) = (Ring::default(), Ring::default());
        assert_eq!(a.push(&mut pool, b"xy"), 2);
        assert_eq!(b.push(&mut pool, b"z"), 0);
        assert_eq!(pool.exhausted, 1);
        a.clear(&mut pool);
        assert_eq!(b.push(&mut pool, b"z"), 1);
    }
}
