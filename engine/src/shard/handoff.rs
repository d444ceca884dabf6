//! Hand-off between shards: a frame that reaches a shard which does not own
//! its connection is copied to the owner through a bounded SPSC ring
//! ([`super::ring`], one per ordered pair of shards).
//!
//! The proxy's active opens come from source tuples split among the
//! shards by port ([`crate::app::proxy::source::shard_ports`]), so a
//! backend's reply names its owner in its destination port. The NIC's RSS
//! (or, on veth, the sending CPU) may still put it on another shard's
//! queue; that shard sees a TCP segment to a source address whose port lies
//! in another shard's slice ([`SourceMap::owner`], a few header bytes, no
//! parse) and pushes it to the owner's ring instead of its own endpoint.
//! The owner drains its inbound rings every turn and feeds the frames to
//! its endpoint as if its own queue had received them.
//!
//! A full ring drops the frame (TCP retransmits it), counted in
//! [`HandoffStats::ring_full`]. A sleeping owner is woken through its
//! [`Doorbell`], at most once per turn of the sender and ring: the owner
//! raises `sleeping` and then looks at its rings; the sender publishes a
//! frame and then looks at `sleeping`. All four accesses are `SeqCst`, so
//! in their single total order either the owner sees the frame (and does
//! not sleep) or the sender sees the flag (and wakes it): never neither.
//! An idle engine hands nothing off and so never wakes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use mio::Waker;

use super::ring::{self, Consumer, Producer};
use crate::app::proxy::source::port_owner;

/// Slots per ring: a turn's worth of frames from a busy queue (an RX
/// batch is up to a ring of 2048, but only the misrouted share goes here).
pub const RING_SLOTS: usize = 512;

/// Which shard owns a frame, read from its headers: IPv4 TCP (optionally
/// behind one 802.1Q tag) to one of the source addresses, on a port of the
/// source range. Anything else (VIP traffic, ICMP, IPv6, fragments after
/// the first) stays with the shard that received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceMap {
    pub first: u32,
    pub addrs: u32,
    pub port_lo: u16,
    pub port_hi: u16,
    pub shards: u32,
}

impl SourceMap {
    /// The shard owning `frame`'s connection, if it is a reply to one of
    /// the source tuples.
    pub fn owner(&self, frame: &[u8]) -> Option<u32> {
        let mut l3 = 14;
        let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
        if ethertype == 0x8100 {
            ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
            l3 = 18;
        }
        if ethertype != 0x0800 {
            return None;
        }
        let ip = frame.get(l3..l3 + 20)?;
        let ihl = (ip[0] & 0x0f) as usize * 4;
        // Version 4, TCP, not a later fragment (offset 0).
        if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != 6 || u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
            return None;
        }
        let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
        if dst.wrapping_sub(self.first) >= self.addrs {
            return None;
        }
        let tcp = l3 + ihl;
        let port = u16::from_be_bytes([*frame.get(tcp + 2)?, *frame.get(tcp + 3)?]);
        port_owner(self.port_lo, self.port_hi, self.shards, port)
    }
}

/// How a shard that sleeps is woken for frames handed to it.
#[derive(Default)]
pub struct Doorbell {
    sleeping: AtomicBool,
    /// Set once, before the shard's thread starts (the shard's own waker).
    waker: OnceLock<Arc<Waker>>,
}

impl Doorbell {
    pub fn set_waker(&self, w: Arc<Waker>) {
        let _ = self.waker.set(w);
    }

    /// Wakes the shard if it said it sleeps (once: the flag is taken).
    fn ring(&self) -> bool {
        if self.sleeping.load(Ordering::SeqCst) && self.sleeping.swap(false, Ordering::SeqCst) {
            if let Some(w) = self.waker.get() {
                let _ = w.wake();
                return true;
            }
        }
        false
    }
}

/// One shard's hand-off counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandoffStats {
    /// Frames this shard received for another shard's connection and passed on.
    pub sent: u64,
    /// Frames other shards passed to this one, fed to its endpoint.
    pub taken: u64,
    /// Frames dropped: the ring towards their owner was full.
    pub ring_full: u64,
    /// Owners woken from their sleep for a handed frame.
    pub wakeups: u64,
}

/// One shard's ends of the mesh.
pub struct Handoff {
    shard: u32,
    map: SourceMap,
    /// By owner shard (`None` for this shard).
    out: Vec<Option<Producer>>,
    /// Per owner: a frame went into its ring this turn.
    pushed: Vec<bool>,
    inbound: Vec<Consumer>,
    bells: Vec<Arc<Doorbell>>,
    pub stats: HandoffStats,
}

/// The mesh of `map.shards` shards: a ring of [`RING_SLOTS`] frames of
/// `slot_size` bytes (the UMEM frame size, so any received frame fits) for
/// each ordered pair, and each shard's doorbell. Element `i` goes to shard
/// `i`, whose waker must be set on `bells[i]` before its thread runs.
pub fn mesh(map: SourceMap, slot_size: usize) -> (Vec<Handoff>, Vec<Arc<Doorbell>>) {
    let n = map.shards as usize;
    let bells: Vec<Arc<Doorbell>> = (0..n).map(|_| Arc::new(Doorbell::default())).collect();
    let mut ends: Vec<Handoff> = (0..n)
        .map(|i| Handoff {
            shard: i as u32,
            map,
            out: (0..n).map(|_| None).collect(),
            pushed: vec![false; n],
            inbound: Vec::with_capacity(n.saturating_sub(1)),
            bells: bells.clone(),
            stats: HandoffStats::default(),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from != to {
                let (p, c) = ring::ring(RING_SLOTS, slot_size);
                ends[from].out[to] = Some(p);
                ends[to].inbound.push(c);
            }
        }
    }
    (ends, bells)
}

/// Bytes the mesh of `shards` holds (for the start-up log).
pub fn mesh_bytes(shards: usize, slot_size: usize) -> usize {
    shards * shards.saturating_sub(1) * RING_SLOTS.next_power_of_two() * (slot_size + 4)
}

impl Handoff {
    /// Takes `frame` for its owner if that is another shard: true when the
    /// frame is no longer this shard's business (passed on, or dropped on
    /// a full ring and counted).
    pub fn divert(&mut self, frame: &[u8]) -> bool {
        let Some(owner) = self.map.owner(frame) else { return false };
        if owner == self.shard {
            return false;
        }
        let o = owner as usize;
        let Some(p) = self.out.get_mut(o).and_then(|p| p.as_mut()) else { return false };
        if p.push(frame) {
            self.stats.sent += 1;
            self.pushed[o] = true;
        } else {
            self.stats.ring_full += 1;
        }
        true
    }

    /// Wakes the owners given frames since the last call, if they sleep.
    pub fn notify(&mut self) {
        for (o, pushed) in self.pushed.iter_mut().enumerate() {
            if std::mem::take(pushed) && self.bells[o].ring() {
                self.stats.wakeups += 1;
            }
        }
    }

    /// Feeds up to `budget` frames from the inbound rings to `f`, ring by
    /// ring in turn; returns how many.
    pub fn drain(&mut self, budget: usize, mut f: impl FnMut(&mut [u8])) -> usize {
        let mut taken = 0;
        for c in &mut self.inbound {
            while taken < budget && c.pop_with(&mut f) {
                taken += 1;
            }
        }
        self.stats.taken += taken as u64;
        taken
    }

    /// Before sleeping: raises this shard's flag, then looks at its rings
    /// once more. False (flag lowered) when a frame waits: do not sleep.
    pub fn may_sleep(&self) -> bool {
        let bell = &self.bells[self.shard as usize];
        bell.sleeping.store(true, Ordering::SeqCst);
        if self.inbound.iter().all(|c| c.is_empty_seqcst()) {
            return true;
        }
        bell.sleeping.store(false, Ordering::SeqCst);
        false
    }

    /// This shard's doorbell (its waker goes there before its thread runs).
    pub fn own_bell(&self) -> &Arc<Doorbell> {
        &self.bells[self.shard as usize]
    }

    /// After sleeping.
    pub fn awake(&self) {
        self.bells[self.shard as usize].sleeping.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: SourceMap = SourceMap { first: 0xc612_0001, addrs: 2, port_lo: 10000, port_hi: 10999, shards: 2 };

    /// An Ethernet + IPv4 + TCP header to `dst`:`dport` (tagged if `vlan`).
    fn frame(dst: [u8; 4], dport: u16, vlan: bool, proto: u8, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = [0u8; 24];
        ip[0] = 0x46; // IHL 6: one word of options
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ip[9] = proto;
        ip[12..16].copy_from_slice(&[198, 18, 2, 10]);
        ip[16..20].copy_from_slice(&dst);
        f.extend_from_slice(&ip);
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&80u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&tcp);
        f
    }

    #[test]
    fn replies_to_source_tuples_go_to_the_port_owner() {
        let (a, b) = ([198, 18, 0, 1], [198, 18, 0, 2]);
        assert_eq!(MAP.owner(&frame(a, 10000, false, 6, 0)), Some(0));
        assert_eq!(MAP.owner(&frame(a, 10499, false, 6, 0)), Some(0));
        assert_eq!(MAP.owner(&frame(b, 10500, false, 6, 0)), Some(1));
        assert_eq!(MAP.owner(&frame(b, 10999, true, 6, 0)), Some(1), "behind a VLAN tag");
        assert_eq!(MAP.owner(&frame(a, 0x4000, false, 6, 0x4000)), None, "port outside the range");
        assert_eq!(MAP.owner(&frame(a, 10500, false, 6, 0x4000)), Some(1), "DF set: not a fragment");
        assert_eq!(MAP.owner(&frame(a, 10500, false, 6, 0x0001)), None, "a later fragment has no TCP header");
        assert_eq!(MAP.owner(&frame([198, 18, 0, 3], 10500, false, 6, 0)), None, "not a source address");
        assert_eq!(MAP.owner(&frame(a, 80, false, 6, 0)), None, "VIP traffic");
        assert_eq!(MAP.owner(&frame(a, 10500, false, 1, 0)), None, "ICMP");
        assert_eq!(MAP.owner(&frame(a, 10500, false, 6, 0)[..40]), None, "truncated");
        let mut v6 = frame(a, 10500, false, 6, 0);
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(MAP.owner(&v6), None);
    }

    #[test]
    fn frames_reach_their_owner_and_full_rings_are_counted() {
        let (mut ends, _bells) = mesh(MAP, 128);
        let mut e1 = ends.pop().unwrap();
        let mut e0 = ends.pop().unwrap();
        let mine = frame([198, 18, 0, 1], 10001, false, 6, 0);
        let theirs = frame([198, 18, 0, 1], 10501, false, 6, 0);
        assert!(!e0.divert(&mine), "shard 0's own frame stays");
        assert!(e0.divert(&theirs));
        assert!(!e1.divert(&theirs), "at the owner it stays");
        for _ in 1..RING_SLOTS {
            assert!(e0.divert(&theirs));
        }
        assert!(e0.divert(&theirs), "taken off shard 0's hands, though dropped");
        assert_eq!(e0.stats, HandoffStats { sent: RING_SLOTS as u64, taken: 0, ring_full: 1, wakeups: 0 });
        let mut got = Vec::new();
        assert_eq!(e1.drain(3, |f| got.push(f.to_vec())), 3, "budget");
        assert_eq!(got, vec![theirs.clone(); 3]);
        assert_eq!(e1.drain(usize::MAX, |_| {}), RING_SLOTS - 3);
        assert_eq!(e1.stats.taken, RING_SLOTS as u64);
        assert_eq!(e0.drain(usize::MAX, |_| {}), 0);
    }

    /// The owner about to sleep and a sender: if the owner's flag is up the
    /// sender takes it down (and would wake it); a frame waiting keeps the
    /// owner from sleeping.
    #[test]
    fn a_waiting_frame_keeps_the_owner_awake() {
        let (mut ends, bells) = mesh(MAP, 128);
        let mut e1 = ends.pop().unwrap();
        let mut e0 = ends.pop().unwrap();
        assert!(e1.may_sleep(), "nothing waits");
        assert!(bells[1].sleeping.load(Ordering::SeqCst));
        assert!(e0.divert(&frame([198, 18, 0, 2], 10600, false, 6, 0)));
        e0.notify();
        assert!(!bells[1].sleeping.load(Ordering::SeqCst), "the sender took the flag");
        // No waker in this test: the flag is taken but nobody counted woken.
        assert_eq!(e0.stats.wakeups, 0);
        assert!(!e1.may_sleep(), "a frame waits");
        assert!(!bells[1].sleeping.load(Ordering::SeqCst));
        assert_eq!(e1.drain(usize::MAX, |_| {}), 1);
        assert!(e1.may_sleep());
        e1.awake();
        assert!(!bells[1].sleeping.load(Ordering::SeqCst));
    }
}
