//! A bounded single-producer/single-consumer ring of frames between two
//! shards: fixed-size slots preallocated at start, no lock, no allocation
//! after [`ring`]. Lamport's ring ("Proving the correctness of multiprocess
//! programs", 1977; the layout of the Linux kernel's `ptr_ring`/AF_XDP rings):
//! the producer alone writes `head`, the consumer alone writes `tail`, and
//! each keeps a cached copy of the other's index so that it touches the
//! shared line only when its cache says the ring is full (or empty).
//!
//! Memory ordering: the producer fills slot `head % slots` and then
//! publishes it with a `Release` store of `head + 1`; the consumer's
//! `Acquire` load of `head` that sees it synchronises with that store, so
//! the frame's bytes are visible before the consumer reads them. The
//! consumer hands the slot back with a `Release` store of `tail + 1` after
//! it is done with the bytes; the producer's `Acquire` load of `tail`
//! synchronises with it, so it never overwrites a slot still being read.
//! Indices are free-running `u64`s (they never wrap in practice): the ring
//! is empty when `head == tail` and full when `head - tail == slots`.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One index on its own cache line (two, for adjacent-line prefetch), so
/// the producer's and the consumer's stores do not contend.
#[repr(align(128))]
struct Padded(AtomicU64);

struct Shared {
    head: Padded,
    tail: Padded,
    mask: u64,
    slot_size: usize,
    /// Per slot: the frame's length.
    lens: Box<[UnsafeCell<u32>]>,
    /// `slots * slot_size` bytes.
    data: Box<[UnsafeCell<u8>]>,
}

// SAFETY: a slot is written only by the producer while it is outside
// `tail..head`, and read only by the consumer while it is inside; the
// index protocol above orders the two (module comment).
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

impl Shared {
    /// Slot `i`'s bytes. Caller: holds the slot (producer outside
    /// `tail..head`, consumer inside).
    #[allow(clippy::mut_from_ref)]
    unsafe fn slot(&self, i: u64) -> &mut [u8] {
        let at = (i & self.mask) as usize * self.slot_size;
        // UnsafeCell<u8> has u8's layout; the range is inside `data`.
        std::slice::from_raw_parts_mut(UnsafeCell::raw_get(self.data.as_ptr().add(at)), self.slot_size)
    }

    #[allow(clippy::mut_from_ref)]
    unsafe fn len(&self, i: u64) -> &mut u32 {
        &mut *self.lens[(i & self.mask) as usize].get()
    }
}

/// The writing end (one shard).
pub struct Producer {
    shared: Arc<Shared>,
    head: u64,
    /// The consumer's `tail` as last read.
    tail_seen: u64,
}

/// The reading end (the owning shard).
pub struct Consumer {
    shared: Arc<Shared>,
    tail: u64,
    /// The producer's `head` as last read.
    head_seen: u64,
}

/// A ring of `slots` (rounded up to a power of two, at least 2) frames of
/// at most `slot_size` bytes each.
pub fn ring(slots: usize, slot_size: usize) -> (Producer, Consumer) {
    let slots = slots.max(2).next_power_of_two();
    let shared = Arc::new(Shared {
        head: Padded(AtomicU64::new(0)),
        tail: Padded(AtomicU64::new(0)),
        mask: slots as u64 - 1,
        slot_size,
        lens: (0..slots).map(|_| UnsafeCell::new(0)).collect(),
        data: (0..slots * slot_size).map(|_| UnsafeCell::new(0)).collect(),
    });
    (Producer { shared: shared.clone(), head: 0, tail_seen: 0 }, Consumer { shared, tail: 0, head_seen: 0 })
}

impl Producer {
    /// Copies `frame` into the next slot and publishes it. False when the
    /// ring is full or the frame longer than a slot (the caller counts it).
    pub fn push(&mut self, frame: &[u8]) -> bool {
        let s = &*self.shared;
        let slots = s.mask + 1;
        if frame.len() > s.slot_size {
            return false;
        }
        if self.head - self.tail_seen == slots {
            self.tail_seen = s.tail.0.load(Ordering::Acquire);
            if self.head - self.tail_seen == slots {
                return false;
            }
        }
        // SAFETY: `head` is outside `tail..head`: the consumer does not
        // touch it until the store below publishes it.
        unsafe {
            s.slot(self.head)[..frame.len()].copy_from_slice(frame);
            *s.len(self.head) = frame.len() as u32;
        }
        self.head += 1;
        s.head.0.store(self.head, Ordering::Release);
        true
    }

    /// Bytes a slot holds.
    pub fn slot_size(&self) -> usize {
        self.shared.slot_size
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        (self.shared.mask + 1) as usize
    }
}

impl Consumer {
    /// Hands the oldest frame to `f` (mutable: the endpoint may rewrite a
    /// frame in place) and frees its slot. False when the ring is empty.
    pub fn pop_with(&mut self, f: impl FnOnce(&mut [u8])) -> bool {
        let s = &*self.shared;
        if self.tail == self.head_seen {
            self.head_seen = s.head.0.load(Ordering::Acquire);
            if self.tail == self.head_seen {
                return false;
            }
        }
        // SAFETY: `tail` is inside `tail..head`: the producer does not
        // touch it until the store below gives it back.
        unsafe {
            let len = *s.len(self.tail) as usize;
            f(&mut s.slot(self.tail)[..len]);
        }
        self.tail += 1;
        s.tail.0.store(self.tail, Ordering::Release);
        true
    }

    /// Whether a frame waits, read with `SeqCst`: the owner's last look
    /// before it sleeps, ordered against its `sleeping` flag (see
    /// `handoff::Doorbell`).
    pub fn is_empty_seqcst(&self) -> bool {
        self.shared.head.0.load(Ordering::SeqCst) == self.tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop(c: &mut Consumer) -> Option<Vec<u8>> {
        let mut out = None;
        c.pop_with(|f| out = Some(f.to_vec()));
        out
    }

    #[test]
    fn frames_come_out_in_order_across_the_wrap() {
        let (mut p, mut c) = ring(4, 8);
        assert_eq!(p.capacity(), 4);
        // 10 rounds of 3 through a ring of 4: the indices wrap several times.
        for round in 0u8..10 {
            for i in 0..3 {
                assert!(p.push(&[round, i, 0xa5][..(i as usize + 1)]));
            }
            for i in 0..3 {
                assert_eq!(pop(&mut c), Some([round, i, 0xa5][..(i as usize + 1)].to_vec()));
            }
            assert_eq!(pop(&mut c), None);
        }
    }

    #[test]
    fn a_full_ring_refuses_until_a_slot_is_freed() {
        let (mut p, mut c) = ring(3, 4);
        assert_eq!(p.capacity(), 4, "rounded up to a power of two");
        for i in 0..4u8 {
            assert!(p.push(&[i]));
        }
        assert!(!p.push(&[9]), "full");
        assert!(!c.is_empty_seqcst());
        assert_eq!(pop(&mut c), Some(vec![0]));
        assert!(p.push(&[4]), "one slot back");
        assert!(!p.push(&[5]));
        assert!(!p.push(&[0; 5]), "longer than a slot");
        let rest: Vec<_> = std::iter::from_fn(|| pop(&mut c)).collect();
        assert_eq!(rest, vec![vec![1], vec![2], vec![3], vec![4]]);
        assert!(c.is_empty_seqcst());
    }

    #[test]
    fn the_consumer_may_rewrite_a_frame_in_place() {
        let (mut p, mut c) = ring(2, 4);
        assert!(p.push(&[1, 2]));
        assert!(c.pop_with(|f| f.copy_from_slice(&[7, 7])));
        assert!(p.push(&[3]));
        assert_eq!(pop(&mut c), Some(vec![3]), "the slot's old bytes do not leak into a shorter frame");
    }

    /// Two threads, a small ring, 200,000 frames each carrying its sequence
    /// number and a checksum of its bytes: every frame arrives once, in
    /// order and intact, whatever the interleaving (the producer spins on a
    /// full ring, so both sides run into the full and the empty case).
    #[test]
    fn spsc_between_two_threads() {
        const N: u64 = 200_000;
        let (mut p, mut c) = ring(8, 64);
        let producer = std::thread::spawn(move || {
            let mut full = 0u64;
            for i in 0..N {
                let len = 9 + (i % 50) as usize;
                let mut f = [0u8; 64];
                f[..8].copy_from_slice(&i.to_le_bytes());
                for (k, b) in f[8..len].iter_mut().enumerate() {
                    *b = (i as u8).wrapping_mul(31).wrapping_add(k as u8);
                }
                while !p.push(&f[..len]) {
                    full += 1;
                    std::hint::spin_loop();
                }
            }
            full
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut next = 0u64;
        while next < N {
            let ok = c.pop_with(|f| {
                let i = u64::from_le_bytes(f[..8].try_into().unwrap());
                assert_eq!(i, next, "in order, none lost or doubled");
                assert_eq!(f.len(), 9 + (i % 50) as usize);
                for (k, b) in f[8..].iter().enumerate() {
                    assert_eq!(*b, (i as u8).wrapping_mul(31).wrapping_add(k as u8), "frame {i} byte {k}");
                }
            });
            if ok {
                next += 1;
            } else {
                assert!(std::time::Instant::now() < deadline, "stuck at frame {next}");
                std::hint::spin_loop();
            }
        }
        let full = producer.join().unwrap();
        assert!(c.is_empty_seqcst());
        eprintln!("{N} frames through a ring of 8; the producer found it full {full} times");
    }
}
