//! Sender state that only a connection with bytes to send needs: congestion
//! control's own variables (CUBIC, HyStart++: RFC 9438, RFC 9406), the SACK
//! scoreboard (RFC 6675 §3) and RACK-TLP's (RFC 8985 §6). A connection takes
//! a slot from its shard's slab when the application first queues bytes and
//! gives it back once everything it sent is acknowledged and its send
//! buffer is empty, so an idle connection's control block does not grow
//! (the table is sized for millions of them) and the slab, like the buffer
//! pool, is allocated once at start.
//!
//! A connection that finds the slab empty (counted) still sends, with what
//! its control block holds: cwnd, ssthresh and NewReno recovery.

use super::buffer::NIL;
use super::cc::cubic::Cubic;
use super::cc::newreno::NewReno;
use super::prr::Prr;
use super::rack::{Rack, XmitLog};
use super::recovery::{Frto, RecoveryCounts, Timer, Tlp};
use super::scoreboard::Scoreboard;
use crate::wire::SeqNumber;

/// Per-connection sender state while bytes are in flight or queued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendState {
    /// CUBIC and HyStart++ (`cc/cubic.rs`); unused under NewReno.
    pub cubic: Cubic,
    /// NewReno's byte counter, when the listener chose NewReno.
    pub newreno: NewReno,
    /// The largest window the peer offered (RFC 9293 §3.8.6.2.1's
    /// Max(SND.WND)), for sender silly-window avoidance.
    pub max_snd_wnd: u32,
    /// The end of the last sub-MSS segment sent: Nagle holds a small
    /// segment only while this one is unacknowledged (Minshall's variant,
    /// as Linux's `snd_sml`).
    pub snd_sml: SeqNumber,
    /// SACKed ranges above SND.UNA (RFC 6675 §3).
    pub sb: Scoreboard,
    /// Transmissions still in flight, oldest first (RFC 8985 §6).
    pub log: XmitLog,
    pub rack: Rack,
    /// RFC 6937, while in recovery.
    pub prr: Prr,
    /// RFC 6675 HighRxt, one past: recovery retransmitted up to here.
    pub high_rxt: SeqNumber,
    /// Every un-SACKed byte below this was found lost by RACK (or is the
    /// segment fast retransmit starts with).
    pub lost_end: SeqNumber,
    /// Which timer `Tcb::rto_at` holds, and the deadline it was armed for.
    pub timer: Timer,
    pub timer_at: u64,
    pub tlp: Tlp,
    pub frto: Frto,
    /// A retransmission or probe handed out by `poll_output` (seq, len,
    /// kind), so `unsend` can take it back.
    pub handout: Option<(SeqNumber, u32, u8)>,
    /// SND.MAX when the last ECN window reduction was made: ECE on ACKs
    /// up to it belongs to the same window (RFC 3168 §6.1.2).
    pub ecn_end: SeqNumber,
}

/// The slab of a shard: one slot per busy sender.
pub struct Senders {
    slots: Box<[SendState]>,
    free: Vec<u32>,
    /// Times a connection wanted a slot and none was free.
    pub exhausted: u64,
    /// Loss-recovery events of this shard, moved into `Stats` by the endpoint.
    pub counts: RecoveryCounts,
}

impl Senders {
    pub fn new(n: u32) -> Senders {
        Senders {
            slots: vec![SendState::default(); n as usize].into_boxed_slice(),
            free: (0..n).rev().collect(),
            exhausted: 0,
            counts: RecoveryCounts::default(),
        }
    }
    /// A fresh slot, or `NIL` (counted) when all are taken.
    pub fn acquire(&mut self) -> u32 {
        match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = SendState::default();
                s
            }
            None => {
                self.exhausted += 1;
                NIL
            }
        }
    }
    pub fn release(&mut self, s: u32) {
        debug_assert!(s != NIL && (s as usize) < self.slots.len());
        self.free.push(s);
    }
    pub fn get(&self, s: u32) -> Option<&SendState> {
        self.slots.get(s as usize)
    }
    pub fn get_mut(&mut self, s: u32) -> Option<&mut SendState> {
        self.slots.get_mut(s as usize)
    }
    /// A slot's state together with the shard's recovery counts.
    pub fn state_and_counts(&mut self, s: u32) -> Option<(&mut SendState, &mut RecoveryCounts)> {
        let st = self.slots.get_mut(s as usize)?;
        Some((st, &mut self.counts))
    }
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
    pub fn in_use(&self) -> usize {
        self.slots.len() - self.free.len()
    }
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.slots) + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_exhaustion_counted() {
        let mut s = Senders::new(2);
        let a = s.acquire();
        let b = s.acquire();
        assert!(a != NIL && b != NIL && a != b);
        assert_eq!(s.acquire(), NIL);
        assert_eq!(s.exhausted, 1);
        s.release(a);
        assert_eq!(s.in_use(), 1);
        assert_eq!(s.acquire(), a);
    }
}
