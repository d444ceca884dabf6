//! In-process frame pipes between two endpoints, with a deterministic fault
//! injector. For tests and benchmarks: time is set by the driver, never read.
//!
//! Each direction is one [`Pipe`]. A frame sent into it goes through, in order:
//! the MTU check, the test's filter (drop, hold back, corrupt chosen frames),
//! Bernoulli loss, Gilbert–Elliott burst loss, random corruption, duplication,
//! and then the bottleneck: a link of a given rate with a drop-tail queue in
//! front of it (frames leave in order, each after its serialization time;
//! optionally ECN-capable, marking ECT frames CE above a queue threshold,
//! RFC 3168 §5), followed by the one-way delay and, only if asked, jitter (which reorders).
//! Every drop is counted in [`PipeStats`]. The TX side can also refuse frames,
//! as a full AF_XDP TX ring does, so the engine's backpressure path runs.
//!
//! Nothing here allocates per frame: frame buffers are recycled through a
//! spare list, and the queues keep their capacity.

use super::{Link, Pass, RxAction, TxSink};
use crate::time::{Duration, Instant};
use crate::wire;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;

/// Bytes per frame buffer, as a UMEM frame.
pub const FRAME_SIZE: usize = 2048;

/// What the pipe does to each frame, drawn from a seeded generator. New
/// fields default to "off", so `Faults { loss: 0.01, ..Faults::default() }`
/// keeps its meaning.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability a frame is lost (Bernoulli, independent per frame).
    pub loss: f64,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Fixed one-way delay (the propagation delay: half the base RTT when
    /// both directions have the same).
    pub delay: Duration,
    /// Extra random delay in `[0, jitter)`: frames overtake each other.
    pub jitter: Duration,
    /// Burst loss on top of `loss`.
    pub burst: Option<GilbertElliott>,
    /// Probability a frame has one byte changed (after the Ethernet header,
    /// in a byte the IP or TCP checksum covers, so it must be caught).
    pub corrupt: f64,
    /// Largest IP packet (frame less its Ethernet header and VLAN tag) the
    /// path carries; longer frames are dropped and counted. `None`: no limit.
    pub mtu: Option<usize>,
    /// A rate-limited link with a drop-tail queue. `None`: infinite rate.
    pub bottleneck: Option<Bottleneck>,
}

/// The two-state Markov loss model of Gilbert and Elliott. The state moves
/// once per frame (good→bad with probability `p`, bad→good with `r`), then
/// the frame is lost with the state's loss probability. (Much of the
/// literature writes `h` and `k` for the probabilities of *delivery*; here
/// both fields are loss probabilities, named so.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Good → bad transition probability per frame.
    pub p: f64,
    /// Bad → good transition probability per frame.
    pub r: f64,
    /// Loss probability in the bad state.
    pub loss_bad: f64,
    /// Loss probability in the good state.
    pub loss_good: f64,
}

impl GilbertElliott {
    /// Gilbert's model (every frame lost in the bad state, none in the good)
    /// with long-run loss `rate` and bursts of `mean_burst` frames on average.
    pub fn bursty(rate: f64, mean_burst: f64) -> GilbertElliott {
        let r = 1.0 / mean_burst.max(1.0);
        GilbertElliott { p: rate * r / (1.0 - rate), r, loss_bad: 1.0, loss_good: 0.0 }
    }

    /// The long-run loss rate: π_bad·loss_bad + π_good·loss_good, with the
    /// stationary π_bad = p / (p + r).
    pub fn mean_loss(&self) -> f64 {
        let bad = self.p / (self.p + self.r);
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

/// A link of `rate_bps` (Ethernet frame bits, without preamble and FCS) fed
/// by a drop-tail queue of at most `queue`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bottleneck {
    pub rate_bps: u64,
    pub queue: QueueLimit,
    /// An ECN-capable queue (RFC 3168 §5, a step marker as DCTCP's K): an
    /// ECT frame arriving with more than this many bytes queued is marked
    /// CE instead of being held to the drop-tail limit's mercy. `None`:
    /// drop-tail only.
    pub mark_ce_above: Option<usize>,
}

/// How much the bottleneck's queue holds, counting the frame on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueLimit {
    Bytes(usize),
    Frames(usize),
}

impl Bottleneck {
    /// A link of `rate_bps` whose queue holds one bandwidth-delay product
    /// for a round-trip time of `rtt`.
    pub fn bdp(rate_bps: u64, rtt: Duration) -> Bottleneck {
        let bytes = rate_bps as u128 * rtt.as_micros() / 8_000_000;
        Bottleneck { rate_bps, queue: QueueLimit::Bytes(bytes as usize), mark_ce_above: None }
    }

    /// Nanoseconds `len` bytes take on the wire.
    fn serialization_ns(&self, len: usize) -> u64 {
        (len as u128 * 8 * 1_000_000_000 / self.rate_bps.max(1) as u128) as u64
    }
}

/// What a filter set with [`Memory::set_filter`] does with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
    /// Deliver it after the next `n` frames sent on this pipe.
    Hold(u32),
    /// Change one byte after the Ethernet header.
    Corrupt,
}

/// A test's choice per frame: `(n, frame)`, `n` counting every frame sent
/// on the pipe from 1.
pub type Filter = Box<dyn FnMut(u64, &[u8]) -> Verdict>;

/// Whether the TX ring refuses a frame: `(n, now)`, `n` counting send
/// attempts on this end from 1.
pub type TxRefusal = Box<dyn FnMut(u64, Instant) -> bool>;

/// A filter dropping exactly the `nth` frames (counted from 1) for which
/// `count` holds, e.g. `drop_nth(&[5, 7], is_data)` loses the 5th and 7th
/// data segment.
pub fn drop_nth(nth: &[u64], count: fn(&[u8]) -> bool) -> Filter {
    let nth = nth.to_vec();
    let mut seen = 0;
    Box::new(move |_, f| {
        if !count(f) {
            return Verdict::Pass;
        }
        seen += 1;
        if nth.contains(&seen) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    })
}

/// A filter holding the `nth` frame for which `count` holds back by
/// `distance` frames: it arrives after the `distance` frames sent after it.
pub fn hold_nth(nth: u64, distance: u32, count: fn(&[u8]) -> bool) -> Filter {
    let mut seen = 0;
    Box::new(move |_, f| {
        if !count(f) {
            return Verdict::Pass;
        }
        seen += 1;
        if seen == nth {
            Verdict::Hold(distance)
        } else {
            Verdict::Pass
        }
    })
}

/// Every frame.
pub fn any_frame(_: &[u8]) -> bool {
    true
}

/// Frames carrying TCP payload (not pure ACKs, SYNs or FINs).
pub fn is_data(f: &[u8]) -> bool {
    match crate::wire::parse_tcp_frame(f, false) {
        Ok(crate::wire::Frame::Tcp(p)) => !p.tcp.payload.is_empty(),
        _ => false,
    }
}

/// A refusal refusing every `n`th send attempt.
pub fn refuse_every(n: u64) -> TxRefusal {
    Box::new(move |i, _| n > 0 && i % n == 0)
}

/// A refusal refusing every send attempt in `[from, to)` of each window.
pub fn refuse_during(windows: &[(Instant, Instant)]) -> TxRefusal {
    let windows = windows.to_vec();
    Box::new(move |_, now| windows.iter().any(|&(from, to)| now >= from && now < to))
}

/// Counts of what the pipe did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeStats {
    pub sent: u64,
    /// Lost to `Faults::loss`.
    pub lost: u64,
    /// Lost to `Faults::burst` (Gilbert–Elliott).
    pub burst_lost: u64,
    pub duplicated: u64,
    pub delivered: u64,
    /// Dropped because the frame exceeded `Faults::mtu`.
    pub mtu_dropped: u64,
    /// Dropped by the filter.
    pub filtered: u64,
    /// Held back by the filter (delivered late).
    pub reordered: u64,
    /// Frames with a byte changed (random or by the filter).
    pub corrupted: u64,
    /// Frames that entered the bottleneck's queue.
    pub queued: u64,
    /// Frames the full queue dropped (drop-tail).
    pub queue_dropped: u64,
    /// ECT frames the queue marked CE (`Bottleneck::mark_ce_above`).
    pub ce_marked: u64,
    /// The most bytes and frames the queue held.
    pub max_queue_bytes: u64,
    pub max_queue_frames: u64,
    /// Send attempts the TX ring refused (counted on the sending end's pipe).
    pub tx_refused: u64,
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

/// A frame the filter holds back, and how many more frames it waits for.
struct Held {
    after: u32,
    frame: Vec<u8>,
}

/// One direction of the pipe.
struct Pipe {
    queue: BinaryHeap<Reverse<Queued>>,
    faults: Faults,
    rng: u64,
    order: u64,
    stats: PipeStats,
    /// Gilbert–Elliott state.
    bad: bool,
    /// The bottleneck: when its link is next free (ns, for sub-µs
    /// serialization times), and the departure time and length of each
    /// frame still in its queue (the one on the wire included).
    busy_until_ns: u64,
    backlog: VecDeque<(u64, usize)>,
    backlog_bytes: usize,
    held: Vec<Held>,
    filter: Option<Filter>,
    /// The TX ring of the end sending on this pipe.
    refuse: Option<TxRefusal>,
    tx_attempts: u64,
}

impl Pipe {
    fn new(faults: Faults, seed: u64) -> Pipe {
        Pipe {
            queue: BinaryHeap::new(),
            faults,
            rng: seed | 1,
            order: 0,
            stats: PipeStats::default(),
            bad: false,
            busy_until_ns: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            held: Vec::new(),
            filter: None,
            refuse: None,
            tx_attempts: 0,
        }
    }
    /// xorshift64*: small, seeded, reproducible.
    fn next(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Whether the frame is over the path MTU.
    fn over_mtu(&self, frame: &[u8]) -> bool {
        let Some(mtu) = self.faults.mtu else { return false };
        let l2 = if frame.len() >= 14 && frame[12..14] == [0x81, 0x00] { 18 } else { 14 };
        frame.len().saturating_sub(l2) > mtu
    }
    /// Changes one byte after the Ethernet header that a checksum covers
    /// (a single changed byte always changes the 16-bit one's-complement
    /// sum, so it is caught). IPv6 has no header checksum, and its TCP
    /// pseudo-header leaves out the traffic class, flow label (IP header
    /// bytes 0-3) and hop limit (byte 7) (RFC 8200 §8.1): on a real path
    /// only the link's CRC guards them, so they are never changed here.
    fn corrupt(&mut self, frame: &mut [u8]) {
        let l2 = if frame.len() >= 18 && frame[12..14] == [0x81, 0x00] { 18 } else { 14 };
        if frame.len() <= l2 {
            return;
        }
        let ipv6 = frame[l2 - 2..l2] == [0x86, 0xdd] && frame.len() >= l2 + 40;
        // Covered bytes: all after the Ethernet header, or over IPv6 the
        // payload length and next header (IP bytes 4-6), then from the
        // source address on.
        let covered = if ipv6 { frame.len() - l2 - 5 } else { frame.len() - l2 };
        let k = ((self.next() * covered as f64) as usize).min(covered - 1);
        let at = match (ipv6, k) {
            (true, 0..=2) => l2 + 4 + k,
            (true, _) => l2 + 8 + (k - 3),
            (false, _) => l2 + k,
        };
        let flip = 1 + (self.next() * 255.0) as u8;
        frame[at] ^= flip;
        self.stats.corrupted += 1;
    }
    fn push(&mut self, now: Instant, mut frame: Vec<u8>, spare: &mut Vec<Vec<u8>>) {
        self.stats.sent += 1;
        let verdict = match self.filter.as_mut() {
            Some(f) => f(self.stats.sent, &frame),
            None => Verdict::Pass,
        };
        if self.over_mtu(&frame) {
            self.stats.mtu_dropped += 1;
            spare.push(frame);
        } else if verdict == Verdict::Drop {
            self.stats.filtered += 1;
            spare.push(frame);
        } else if let Verdict::Hold(after) = verdict {
            self.stats.reordered += 1;
            // Counted down by the frames sent after it, not by itself.
            self.held.push(Held { after: after + 1, frame });
        } else {
            if verdict == Verdict::Corrupt {
                self.corrupt(&mut frame);
            }
            self.pass(now, frame, spare);
        }
        // Held frames leave once enough frames were sent after them.
        let mut i = 0;
        while i < self.held.len() {
            self.held[i].after -= 1;
            if self.held[i].after == 0 {
                let h = self.held.swap_remove(i);
                self.pass(now, h.frame, spare);
            } else {
                i += 1;
            }
        }
    }
    /// The random faults, then the bottleneck.
    fn pass(&mut self, now: Instant, mut frame: Vec<u8>, spare: &mut Vec<Vec<u8>>) {
        if self.faults.loss > 0.0 && self.next() < self.faults.loss {
            self.stats.lost += 1;
            spare.push(frame);
            return;
        }
        if let Some(ge) = self.faults.burst {
            let flip = self.next() < if self.bad { ge.r } else { ge.p };
            self.bad ^= flip;
            let loss = if self.bad { ge.loss_bad } else { ge.loss_good };
            if loss > 0.0 && self.next() < loss {
                self.stats.burst_lost += 1;
                spare.push(frame);
                return;
            }
        }
        if self.faults.corrupt > 0.0 && self.next() < self.faults.corrupt {
            self.corrupt(&mut frame);
        }
        let copies = if self.faults.duplicate > 0.0 && self.next() < self.faults.duplicate { 2 } else { 1 };
        if copies == 2 {
            self.stats.duplicated += 1;
            let mut dup = spare.pop().unwrap_or_default();
            dup.clear();
            dup.extend_from_slice(&frame);
            self.enqueue(now, dup, spare);
        }
        self.enqueue(now, frame, spare);
    }
    fn enqueue(&mut self, now: Instant, mut frame: Vec<u8>, spare: &mut Vec<Vec<u8>>) {
        let mut at = now;
        if let Some(b) = self.faults.bottleneck {
            let now_ns = now.total_micros() * 1000;
            while let Some(&(gone, len)) = self.backlog.front() {
                if gone > now_ns {
                    break;
                }
                self.backlog.pop_front();
                self.backlog_bytes -= len;
            }
            let full = match b.queue {
                QueueLimit::Bytes(n) => self.backlog_bytes + frame.len() > n,
                QueueLimit::Frames(n) => self.backlog.len() >= n,
            };
            if full {
                self.stats.queue_dropped += 1;
                spare.push(frame);
                return;
            }
            if b.mark_ce_above.is_some_and(|k| self.backlog_bytes > k)
                && matches!(wire::ecn_of(&frame), Some(wire::ecn::ECT0 | wire::ecn::ECT1))
            {
                wire::set_ecn(&mut frame, wire::ecn::CE);
                self.stats.ce_marked += 1;
            }
            self.busy_until_ns = self.busy_until_ns.max(now_ns) + b.serialization_ns(frame.len());
            self.backlog.push_back((self.busy_until_ns, frame.len()));
            self.backlog_bytes += frame.len();
            self.stats.queued += 1;
            self.stats.max_queue_bytes = self.stats.max_queue_bytes.max(self.backlog_bytes as u64);
            self.stats.max_queue_frames = self.stats.max_queue_frames.max(self.backlog.len() as u64);
            // Delivered once its last bit is through.
            at = Instant::from_micros(self.busy_until_ns.div_ceil(1000));
        }
        // Drawn even without jitter, so a seed gives the same losses as before.
        let jitter = self.faults.jitter.as_micros() as f64 * self.next();
        let at = at + self.faults.delay + Duration::from_micros(jitter as u64);
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
    /// The frames of one batch shown ahead (`poll_rx_looking`); keeps its capacity.
    batch: Vec<Vec<u8>>,
}

/// Frames a look-ahead batch holds at most (the shard's `RX_BATCH`).
const LOOK_BATCH: usize = 64;

/// Two connected ends; frames from `a` arrive at `b` and back.
pub fn pair(faults: Faults, seed: u64) -> (Memory, Memory) {
    let shared = Rc::new(RefCell::new(Shared {
        pipes: [Pipe::new(faults, seed), Pipe::new(faults, seed.rotate_left(17) ^ 0x9e37_79b9)],
        spare: Vec::new(),
        now: Instant::ZERO,
    }));
    let end = |shared, side| Memory {
        shared,
        side,
        rx_buf: Vec::with_capacity(FRAME_SIZE),
        batch: Vec::with_capacity(LOOK_BATCH),
    };
    let a = end(shared.clone(), 0);
    let b = end(shared, 1);
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
    /// Frames in flight towards this end (held frames not included).
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
    /// Sets (or with `None` removes) the filter of the pipe this end sends
    /// on: it sees every frame before the random faults.
    pub fn set_filter(&self, filter: Option<Filter>) {
        self.shared.borrow_mut().pipes[self.side].filter = filter;
    }
    /// Makes this end's TX ring refuse the send attempts `refuse` picks
    /// (`None`: never), as a full AF_XDP TX ring does.
    pub fn set_tx_refusal(&self, refuse: Option<TxRefusal>) {
        self.shared.borrow_mut().pipes[self.side].refuse = refuse;
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
        let now = sh.now;
        let Shared { pipes, spare, .. } = &mut *sh;
        let pipe = &mut pipes[self.side];
        if let Some(refuse) = pipe.refuse.as_mut() {
            pipe.tx_attempts += 1;
            if refuse(pipe.tx_attempts, now) {
                pipe.stats.tx_refused += 1;
                return false;
            }
        }
        let mut buf = spare.pop().unwrap_or_default();
        buf.clear();
        buf.resize(FRAME_SIZE, 0);
        let len = write(&mut buf);
        if len == 0 {
            spare.push(buf);
            return true;
        }
        buf.truncate(len);
        pipe.push(now, buf, spare);
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
                tx.send_copy(&self.rx_buf[..len.min(self.rx_buf.len())]);
            }
            n += 1;
        }
        n
    }

    fn poll_rx_looking<S, L, H>(&mut self, budget: usize, state: &mut S, mut look: L, mut handler: H) -> usize
    where
        L: FnMut(&S, &[u8], Pass),
        H: FnMut(&mut S, &mut [u8], &mut Self::Tx<'_>) -> RxAction,
    {
        let mut n = 0;
        while n < budget {
            // The frames due now, in order, a batch at a time: what the
            // handlers send goes the other way, so nothing joins this queue
            // meanwhile and the order is poll_rx's.
            {
                let mut sh = self.shared.borrow_mut();
                let now = sh.now;
                let pipe = &mut sh.pipes[1 - self.side];
                while self.batch.len() < (budget - n).min(LOOK_BATCH) {
                    match pipe.queue.peek() {
                        Some(q) if q.0.at <= now => {
                            pipe.stats.delivered += 1;
                            self.batch.push(pipe.queue.pop().unwrap().0.frame);
                        }
                        _ => break,
                    }
                }
            }
            if self.batch.is_empty() {
                break;
            }
            for pass in [Pass::First, Pass::Second] {
                for f in &self.batch {
                    look(state, f, pass);
                }
            }
            let got = self.batch.len();
            for frame in self.batch.drain(..) {
                self.rx_buf.clear();
                self.rx_buf.extend_from_slice(&frame);
                self.shared.borrow_mut().spare.push(frame);
                let mut tx = MemoryTx { shared: &self.shared, side: self.side };
                if let RxAction::Transmit(len) = handler(state, &mut self.rx_buf, &mut tx) {
                    tx.send_copy(&self.rx_buf[..len.min(self.rx_buf.len())]);
                }
            }
            n += got;
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

    /// Sends a frame of `len` bytes carrying `n` in its first four.
    fn send_n(m: &mut Memory, n: u32, len: usize) -> bool {
        m.tx().send(|b| {
            b[..4].copy_from_slice(&n.to_le_bytes());
            len
        })
    }

    /// The numbers of the frames deliverable now, in order.
    fn drain_n(m: &mut Memory) -> Vec<u32> {
        let mut got = Vec::new();
        m.poll_rx(usize::MAX, |f, _| {
            got.push(u32::from_le_bytes(f[..4].try_into().unwrap()));
            RxAction::Release
        });
        got
    }

    /// Runs the receiving end's clock to each arrival; returns (time, n).
    fn arrivals(m: &mut Memory) -> Vec<(Instant, u32)> {
        let mut out = Vec::new();
        while let Some(t) = m.next_arrival() {
            m.set_now(t);
            out.extend(drain_n(m).into_iter().map(|n| (t, n)));
        }
        out
    }

    const MBIT_100: u64 = 100_000_000;

    #[test]
    fn the_bottleneck_delivers_at_its_rate_in_order_after_the_delay() {
        let b = Bottleneck { rate_bps: MBIT_100, queue: QueueLimit::Frames(10_000), mark_ce_above: None };
        let delay = Duration::from_millis(5);
        let (mut a, mut z) = pair(Faults { bottleneck: Some(b), delay, ..Faults::default() }, 1);
        for n in 0..1000 {
            send_n(&mut a, n, 1500);
        }
        let got = arrivals(&mut z);
        assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), (0..1000).collect::<Vec<_>>(), "FIFO");
        // 1500 bytes at 100 Mbit/s: 120 µs each; the first after its own
        // serialization plus the delay.
        assert_eq!(got[0].0, Instant::from_micros(120) + delay);
        let span = got[999].0 - got[0].0;
        let rate = 999.0 * 1500.0 * 8.0 / span.as_secs_f64();
        assert!((rate - MBIT_100 as f64).abs() < 1e-6 * MBIT_100 as f64, "delivered at {rate} bit/s");
        let st = a.stats();
        assert_eq!((st.queued, st.queue_dropped, st.max_queue_frames), (1000, 0, 1000));
        assert_eq!(st.max_queue_bytes, 1_500_000);
    }

    #[test]
    fn frames_slower_than_the_link_never_queue() {
        let b = Bottleneck { rate_bps: MBIT_100, queue: QueueLimit::Frames(2), mark_ce_above: None };
        let (mut a, mut z) = pair(Faults { bottleneck: Some(b), ..Faults::default() }, 1);
        for n in 0..100 {
            a.set_now(Instant::from_micros(200 * n as u64));
            send_n(&mut a, n, 1500);
        }
        assert_eq!(arrivals(&mut z).len(), 100);
        assert_eq!((a.stats().max_queue_frames, a.stats().queue_dropped), (1, 0));
    }

    #[test]
    fn the_queue_drops_at_its_limit_and_takes_frames_again_as_it_drains() {
        for limit in [QueueLimit::Frames(10), QueueLimit::Bytes(15_000)] {
            let b = Bottleneck { rate_bps: MBIT_100, queue: limit, mark_ce_above: None };
            let (mut a, mut z) = pair(Faults { bottleneck: Some(b), ..Faults::default() }, 1);
            for n in 0..100 {
                send_n(&mut a, n, 1500);
            }
            let st = a.stats();
            assert_eq!((st.queued, st.queue_dropped, st.max_queue_frames), (10, 90, 10), "{limit:?}");
            assert_eq!(st.max_queue_bytes, 15_000);
            // Five frames' time later, five fit again (drop-tail: the
            // newest are the ones lost).
            a.set_now(Instant::from_micros(5 * 120));
            for n in 100..110 {
                send_n(&mut a, n, 1500);
            }
            assert_eq!(a.stats().queue_dropped, 95);
            let got: Vec<u32> = arrivals(&mut z).into_iter().map(|g| g.1).collect();
            assert_eq!(got, (0..10).chain(100..105).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_bdp_queue_holds_rate_times_rtt() {
        let b = Bottleneck::bdp(MBIT_100, Duration::from_millis(10));
        assert_eq!(b.queue, QueueLimit::Bytes(125_000));
    }

    #[test]
    fn gilbert_elliott_loses_its_long_run_rate_in_bursts() {
        let ge = GilbertElliott { p: 0.01, r: 0.2, loss_bad: 0.8, loss_good: 0.002 };
        let (mut a, mut z) = pair(Faults { burst: Some(ge), ..Faults::default() }, 11);
        let n = 2_000_000;
        let mut lost = vec![true; n as usize];
        for i in 0..n {
            send_n(&mut a, i, 4);
            for k in drain_n(&mut z) {
                lost[k as usize] = false;
            }
        }
        let st = a.stats();
        let rate = st.burst_lost as f64 / n as f64;
        let want = ge.mean_loss();
        assert!((want - 0.0399).abs() < 1e-3, "p/(p+r)·h + r/(p+r)·k = {want}");
        assert!((rate - want).abs() < 0.05 * want, "lost {rate}, model {want}");
        assert_eq!(st.lost, 0);
        assert_eq!(lost.iter().filter(|&&l| l).count() as u64, st.burst_lost);
        // Bursty: a loss is far likelier right after a loss.
        let pairs = lost.windows(2).filter(|w| w[0]).count() as f64;
        let after = lost.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        assert!(after / pairs > 10.0 * rate, "P(loss | loss) = {}", after / pairs);
        // Gilbert's model from a rate and a burst length.
        let g = GilbertElliott::bursty(0.02, 3.0);
        assert!((g.mean_loss() - 0.02).abs() < 1e-12 && (1.0 / g.r - 3.0).abs() < 1e-12);
    }

    #[test]
    fn drop_nth_drops_exactly_those_frames() {
        let (mut a, mut z) = pair(Faults::default(), 1);
        a.set_filter(Some(drop_nth(&[5, 7], any_frame)));
        for n in 1..=10 {
            send_n(&mut a, n, 60);
        }
        assert_eq!(drain_n(&mut z), vec![1, 2, 3, 4, 6, 8, 9, 10]);
        assert_eq!((a.stats().filtered, a.stats().sent), (2, 10));
        // Counted among the frames `count` picks: the 2nd frame longer than 100 bytes.
        fn long(f: &[u8]) -> bool {
            f.len() > 100
        }
        a.set_filter(Some(drop_nth(&[2], long)));
        for n in 11..=16 {
            send_n(&mut a, n, if n % 2 == 0 { 200 } else { 60 });
        }
        assert_eq!(drain_n(&mut z), vec![11, 12, 13, 15, 16]);
    }

    #[test]
    fn a_held_frame_arrives_the_given_distance_later() {
        for delay in [Duration::ZERO, Duration::from_millis(3)] {
            let (mut a, mut z) = pair(Faults { delay, ..Faults::default() }, 1);
            a.set_filter(Some(hold_nth(3, 2, any_frame)));
            for n in 1..=7 {
                send_n(&mut a, n, 60);
            }
            let got: Vec<u32> = arrivals(&mut z).into_iter().map(|g| g.1).collect();
            assert_eq!(got, vec![1, 2, 4, 5, 3, 6, 7]);
            assert_eq!(a.stats().reordered, 1);
        }
    }

    #[test]
    fn frames_over_the_mtu_are_dropped_and_counted() {
        let (mut a, mut z) = pair(Faults { mtu: Some(1500), ..Faults::default() }, 1);
        send_n(&mut a, 1, 1514);
        send_n(&mut a, 2, 1515);
        // A VLAN tag is not part of the IP packet.
        a.tx().send(|b| {
            b[..4].copy_from_slice(&3u32.to_le_bytes());
            b[12..14].copy_from_slice(&[0x81, 0x00]);
            1518
        });
        assert_eq!(drain_n(&mut z), vec![1, 3]);
        assert_eq!(a.stats().mtu_dropped, 1);
    }

    #[test]
    fn corruption_changes_exactly_one_byte_after_the_ethernet_header() {
        let (mut a, mut z) = pair(Faults { corrupt: 1.0, ..Faults::default() }, 5);
        for _ in 0..200 {
            a.tx().send(|b| {
                b[..100].fill(0x5a);
                100
            });
            z.poll_rx(1, |f, _| {
                let changed: Vec<usize> = (0..100).filter(|&i| f[i] != 0x5a).collect();
                assert_eq!(changed.len(), 1);
                assert!(changed[0] >= 14);
                RxAction::Release
            });
        }
        assert_eq!(a.stats().corrupted, 200);
    }

    #[test]
    fn corruption_over_ipv6_spares_the_bytes_no_checksum_covers() {
        // Traffic class, flow label and hop limit: no IPv6 checksum covers
        // them, so the endpoint could not catch a change there.
        let (mut a, mut z) = pair(Faults { corrupt: 1.0, ..Faults::default() }, 9);
        let mut hit = [0u32; 100];
        for _ in 0..2000 {
            a.tx().send(|b| {
                b[..100].fill(0x5a);
                b[12..14].copy_from_slice(&[0x86, 0xdd]);
                100
            });
            z.poll_rx(1, |f, _| {
                let changed: Vec<usize> = (14..100).filter(|&i| f[i] != 0x5a).collect();
                assert_eq!(changed.len(), 1);
                hit[changed[0]] += 1;
                RxAction::Release
            });
        }
        let uncovered = [14, 15, 16, 17, 21];
        assert!(uncovered.iter().all(|&i| hit[i] == 0), "{hit:?}");
        assert!((14..100).filter(|i| !uncovered.contains(i)).all(|i| hit[i] > 0), "{hit:?}");
    }

    #[test]
    fn a_refusing_tx_ring_refuses_every_nth_and_in_windows() {
        let (mut a, mut z) = pair(Faults::default(), 1);
        a.set_tx_refusal(Some(refuse_every(3)));
        let sent: Vec<bool> = (1..=9).map(|n| send_n(&mut a, n, 60)).collect();
        assert_eq!(sent, [true, true, false, true, true, false, true, true, false]);
        assert_eq!(drain_n(&mut z), vec![1, 2, 4, 5, 7, 8]);
        assert_eq!(a.stats().tx_refused, 3);
        a.set_tx_refusal(Some(refuse_during(&[(Instant::from_millis(10), Instant::from_millis(20))])));
        let mut at = |ms| {
            a.set_now(Instant::from_millis(ms));
            a.tx().send(|_| 60)
        };
        assert_eq!([at(9), at(10), at(19), at(20)], [true, false, false, true]);
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
