//! In-process frame pipes between two endpoints, with a deterministic fault
//! injector (loss, duplication, delay and jitter, hence reordering). For
//! tests and benchmarks: time is set by the driver, never read.

use super::{Link, RxAction, TxSink};
use crate::time::{Duration, Instant};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;

/// Bytes per frame buffer, as a UMEM frame.
pub const FRAME_SIZE: usize = 2048;

/// What the pipe does to each frame, drawn from a seeded generator.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra random delay in `[0, jitter)`: frames overtake each other.
    pub jitter: Duration,
}

/// Counts of what the pipe did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeStats {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub delivered: u64,
}

struct Queued {
    at: Instant,
    order: u64,
    frame: Vec<u8>,
}
impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(o.at, o.order))
    }
}

/// One direction of the pipe.
struct Pipe {
    queue: BinaryHeap<Reverse<Queued>>,
    faults: Faults,
    rng: u64,
    order: u64,
    stats: PipeStats,
}

impl Pipe {
    fn new(faults: Faults, seed: u64) -> Pipe {
        Pipe { queue: BinaryHeap::new(), faults, rng: seed | 1, order: 0, stats: PipeStats::default() }
    }
    /// xorshift64*: small, seeded, reproducible.
    fn next(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn push(&mut self, now: Instant, frame: Vec<u8>, spare: &mut Vec<Vec<u8>>) {
        self.stats.sent += 1;
        if self.faults.loss > 0.0 && self.next() < self.faults.loss {
            self.stats.lost += 1;
            spare.push(frame);
            return;
        }
        let copies = if self.faults.duplicate > 0.0 && self.next() < self.faults.duplicate { 2 } else { 1 };
        if copies == 2 {
            self.stats.duplicated += 1;
            let mut dup = spare.pop().unwrap_or_default();
            dup.clear();
            dup.extend_from_slice(&frame);
            self.enqueue(now, dup);
        }
        self.enqueue(now, frame);
    }
    fn enqueue(&mut self, now: Instant, frame: Vec<u8>) {
        let jitter = self.faults.jitter.as_micros() as f64 * self.next();
        let at = now + self.faults.delay + Duration::from_micros(jitter as u64);
        self.order += 1;
        self.queue.push(Reverse(Queued { at, order: self.order, frame }));
    }
}

struct Shared {
    pipes: [Pipe; 2],
    spare: Vec<Vec<u8>>,
    now: Instant,
}

/// One end of a pipe pair.
pub struct Memory {
    shared: Rc<RefCell<Shared>>,
    /// Index of the pipe this end sends on; it receives on the other.
    side: usize,
    rx_buf: Vec<u8>,
}

/// Two connected ends; frames from `a` arrive at `b` and back.
pub fn pair(faults: Faults, seed: u64) -> (Memory, Memory) {
    let shared = Rc::new(RefCell::new(Shared {
        pipes: [Pipe::new(faults, seed), Pipe::new(faults, seed.rotate_left(17) ^ 0x9e37_79b9)],
        spare: Vec::new(),
        now: Instant::ZERO,
    }));
    let a = Memory { shared: shared.clone(), side: 0, rx_buf: Vec::with_capacity(FRAME_SIZE) };
    let b = Memory { shared, side: 1, rx_buf: Vec::with_capacity(FRAME_SIZE) };
    (a, b)
}

impl Memory {
    /// Sets the pipes' clock (shared by both ends).
    pub fn set_now(&self, now: Instant) {
        self.shared.borrow_mut().now = now;
    }
    /// When the next frame for this end becomes deliverable.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.shared.borrow().pipes[1 - self.side].queue.peek().map(|q| q.0.at)
    }
    /// Frames in flight towards this end.
    pub fn in_flight(&self) -> usize {
        self.shared.borrow().pipes[1 - self.side].queue.len()
    }
    /// What the pipe this end sends on has done.
    pub fn stats(&self) -> PipeStats {
        self.shared.borrow().pipes[self.side].stats
    }
    /// Changes the faults of the pipe this end sends on.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.borrow_mut().pipes[self.side].faults = faults;
    }
}

/// The TX side of a [`Memory`] end.
pub struct MemoryTx<'a> {
    shared: &'a RefCell<Shared>,
    side: usize,
}

impl TxSink for MemoryTx<'_> {
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool {
        let mut sh = self.shared.borrow_mut();
        let mut buf = sh.spare.pop().unwrap_or_default();
        buf.clear();
        buf.resize(FRAME_SIZE, 0);
        let len = write(&mut buf);
        if len == 0 {
            sh.spare.push(buf);
            return true;
        }
        buf.truncate(len);
        let now = sh.now;
        let Shared { pipes, spare, .. } = &mut *sh;
        pipes[self.side].push(now, buf, spare);
        true
    }
}

impl Link for Memory {
    type Tx<'a> = MemoryTx<'a>;

    fn poll_rx<H>(&mut self, budget: usize, mut handler: H) -> usize
    where
        H: FnMut(&mut [u8], &mut Self::Tx<'_>) -> RxAction,
    {
        let mut n = 0;
        while n < budget {
            let frame = {
                let mut sh = self.shared.borrow_mut();
                let now = sh.now;
                let pipe = &mut sh.pipes[1 - self.side];
                match pipe.queue.peek() {
                    Some(q) if q.0.at <= now => {
                        pipe.stats.delivered += 1;
                        pipe.queue.pop().unwrap().0.frame
                    }
                    _ => break,
                }
            };
            self.rx_buf.clear();
            self.rx_buf.extend_from_slice(&frame);
            self.shared.borrow_mut().spare.push(frame);
            let mut tx = MemoryTx { shared: &self.shared, side: self.side };
            if let RxAction::Transmit(len) = handler(&mut self.rx_buf, &mut tx) {
                let len = len.min(self.rx_buf.len());
                let data = &self.rx_buf[..len];
                tx.send(|b| {
                    b[..len].copy_from_slice(data);
                    len
                });
            }
            n += 1;
        }
        n
    }

    fn tx(&mut self) -> Self::Tx<'_> {
        MemoryTx { shared: &self.shared, side: self.side }
    }

    fn flush(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(m: &mut Memory, byte: u8) {
        m.tx().send(|b| {
            b[0] = byte;
            1
        });
    }

    fn drain(m: &mut Memory) -> Vec<u8> {
        let mut got = Vec::new();
        m.poll_rx(usize::MAX, |f, _| {
            got.push(f[0]);
            RxAction::Release
        });
        got
    }

    #[test]
    fn frames_arrive_after_the_delay_in_order() {
        let (mut a, mut b) = pair(Faults { delay: Duration::from_millis(5), ..Faults::default() }, 1);
        send(&mut a, 1);
        send(&mut a, 2);
        assert!(drain(&mut b).is_empty());
        assert_eq!(b.next_arrival(), Some(Instant::from_millis(5)));
        b.set_now(Instant::from_millis(5));
        assert_eq!(drain(&mut b), vec![1, 2]);
        assert!(drain(&mut a).is_empty());
    }

    #[test]
    fn loss_and_duplication_follow_the_seed() {
        let run = |seed| {
            let (mut a, mut b) = pair(Faults { loss: 0.3, duplicate: 0.2, ..Faults::default() }, seed);
            for i in 0..200 {
                send(&mut a, i as u8);
            }
            (drain(&mut b), a.stats())
        };
        let (got, st) = run(7);
        assert_eq!(run(7).0, got, "deterministic");
        assert!(st.lost > 30 && st.lost < 90, "{st:?}");
        assert!(st.duplicated > 10, "{st:?}");
        assert_eq!(got.len() as u64, st.sent - st.lost + st.duplicated);
    }

    #[test]
    fn transmit_action_sends_the_rewritten_frame_back() {
        let (mut a, mut b) = pair(Faults::default(), 3);
        send(&mut a, 9);
        b.poll_rx(8, |f, _| {
            f[0] = 10;
            RxAction::Transmit(1)
        });
        assert_eq!(drain(&mut a), vec![10]);
    }
}
