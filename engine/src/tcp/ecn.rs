//! Explicit Congestion Notification for TCP (RFC 3168 §6.1), the classic
//! scheme Linux runs with `net.ipv4.tcp_ecn` ([`Ecn`]): a router marks CE
//! instead of dropping, the receiver echoes it, the sender halves its
//! window as for a loss but retransmits nothing.
//!
//! - Negotiation (§6.1.1): an ECN-setup SYN carries ECE and CWR, the
//!   ECN-setup SYN-ACK ECE alone; anything else leaves the connection
//!   without ECN. A SYN retransmission goes without them (Linux's
//!   fallback for paths that drop ECN-setup SYNs). Cookie connections
//!   keep the answer in the low bit of our timestamp ([`cookie_tsval`]).
//! - Sender (§6.1.2, §6.1.5, §6.1.6): ECT(0) on new data only, never on
//!   retransmissions, zero-window probes, pure ACKs, SYNs or RSTs (RFC
//!   8311 §4.3 would allow some of these; we keep RFC 3168's rules). An
//!   ACK with ECE reduces the window through the congestion-control hook
//!   at most once per window of data, and not while loss recovery (or a
//!   timeout's) already reduced it; the window does not grow until the
//!   reduction's window is acknowledged. CWR goes on the next new data
//!   segment after any reduction (ECE, fast retransmit or timeout).
//! - Receiver (§6.1.3): a data segment with CE makes every ACK carry ECE
//!   until a segment with CWR arrives; the first CE is ACKed at once.
//!
//! A connection without ECN ignores ECE and treats CE as plain data.

use super::buffer::BufferPool;
use super::config::{Ecn, TcpConfig};
use super::seg::Seg;
use super::state::State;
use super::tcb::{ctl, flag, Outgoing, Tcb};
use crate::time::Instant;
use crate::wire::{ecn, SeqNumber};

/// Our TSval in a cookie SYN-ACK: the clock `ts` with its low bit set to
/// whether ECN was accepted, so that the ACK's TSecr brings the answer
/// back (Linux's `cookie_init_timestamp`). Never ahead of `ts`: a later
/// segment with TSval `ts` must not look older to the peer's PAWS. The
/// XDP program (`bpf/syncookie.h`) accepts no ECN: its TSvals are even.
pub fn cookie_tsval(ts: u32, ecn_ok: bool) -> u32 {
    ts.wrapping_sub((ts ^ ecn_ok as u32) & 1)
}

/// What the TSecr of a cookie ACK says of ECN ([`cookie_tsval`]).
pub fn cookie_ecn_ok(tsecr: u32) -> bool {
    tsecr & 1 == 1
}

/// Whether a listener with `cfg` accepts ECN for this SYN (§6.1.1).
pub fn syn_requests(cfg: &TcpConfig, seg: &Seg) -> bool {
    cfg.ecn != Ecn::Off && seg.ece() && seg.cwr()
}

impl Tcb {
    /// Passive open: ECN for this connection when the SYN asked for it.
    pub fn ecn_accept(&mut self, cfg: &TcpConfig, seg: &Seg) {
        if syn_requests(cfg, seg) {
            self.set(flag::ECN);
        } else {
            self.clear(flag::ECN);
        }
    }

    /// Active open: ECN asked for in our SYN when configured `On`.
    pub fn ecn_request(&mut self, cfg: &TcpConfig) {
        if cfg.ecn == Ecn::On {
            self.set(flag::ECN);
        }
    }

    /// The SYN-ACK in SYN-SENT: ECE without CWR confirms (§6.1.1); both
    /// or neither is a peer without ECN.
    pub fn ecn_syn_ack(&mut self, seg: &Seg) {
        if !seg.ece() || seg.cwr() {
            self.clear(flag::ECN);
        }
    }

    /// The ECN bits of our SYN or SYN-ACK.
    pub(super) fn ecn_syn_bits(&mut self) -> u8 {
        if self.state == State::SynSent && self.retries > 0 {
            // The ECN-setup SYN may be what a middlebox drops.
            self.clear(flag::ECN);
        }
        match (self.has(flag::ECN), self.state) {
            (false, _) => 0,
            (true, State::SynSent) => ctl::ECE | ctl::CWR,
            (true, _) => ctl::ECE,
        }
    }

    /// An acceptable segment of a synchronized connection, before its ACK
    /// is processed: the receiver's side (§6.1.3). CWR ends the echo, CE
    /// (on data) starts it again, in that order, as Linux.
    pub(super) fn ecn_on_receive(&mut self, pool: &mut BufferPool, seg: &Seg) {
        if !self.has(flag::ECN) {
            return;
        }
        if seg.cwr() {
            self.clear(flag::ECN_ECE);
        }
        if seg.ecn == ecn::CE && !seg.payload.is_empty() {
            pool.senders.counts.ecn_ce_received += 1;
            if !self.has(flag::ECN_ECE) {
                // Tell the sender now, not after the delayed-ACK timer.
                self.set(flag::ECN_ECE | flag::ACK_NOW);
            }
        }
    }

    /// After an ACK was processed: an ECE on it (`flight_before` bytes
    /// were in flight) is the congestion signal of §6.1.2.
    pub(super) fn ecn_on_ack(&mut self, now: Instant, pool: &mut BufferPool, seg: &Seg, flight_before: u32) {
        if !self.has(flag::ECN) || !seg.ece() || seg.syn() {
            return;
        }
        pool.senders.counts.ecn_ece_received += 1;
        // Nothing was in flight: an echo of old news on the peer's data.
        // Recovery (or a timeout) reduced the window for this data already.
        if flight_before == 0 || self.has(flag::RECOVERY) || self.snd_una < self.recover || self.ecn_in_reduction(pool)
        {
            return;
        }
        self.cc_on_congestion(now, pool);
        let max = self.snd_max;
        if let Some(s) = self.sender_mut(pool) {
            s.ecn_end = max;
        }
        self.set(flag::ECN_REDUCING | flag::ECN_CWR);
        pool.senders.counts.ecn_cwnd_reductions += 1;
    }

    /// In the window of an ECN reduction: SND.UNA not beyond the SND.MAX
    /// of the reduction. Beyond, the segment after it, which carries CWR,
    /// was acknowledged: the receiver saw CWR, so an ECE now is news (as
    /// Linux's CWR state, held until something *above* high_seq is
    /// ACKed). Without a sender slot (the slab was empty) the window's end
    /// is unknown: it lasts until CWR has gone out.
    pub fn ecn_in_reduction(&mut self, pool: &BufferPool) -> bool {
        if !self.has(flag::ECN_REDUCING) {
            return false;
        }
        let within = match self.sender(pool) {
            Some(s) => self.snd_una <= s.ecn_end,
            None => self.has(flag::ECN_CWR),
        };
        if !within {
            self.clear(flag::ECN_REDUCING);
        }
        within
    }

    /// Any window reduction (ECE, fast retransmit, timeout) is announced
    /// by CWR on the next new data (§6.1.2); a SYN's or SYN-ACK's timeout
    /// is not one (no data was sent).
    pub(super) fn ecn_queue_cwr(&mut self) {
        if self.has(flag::ECN) && self.state.is_synchronized() {
            self.set(flag::ECN_CWR);
        }
    }

    /// The ECN marks of a segment `poll_output` returned, `snd_max_before`
    /// being SND.MAX before it: ECE while echoing, ECT(0) and a pending
    /// CWR on new data.
    pub fn ecn_mark(&mut self, out: &mut Outgoing, snd_max_before: SeqNumber) {
        if !self.has(flag::ECN) || out.control & (ctl::SYN | ctl::RST) != 0 || !self.state.is_synchronized() {
            return;
        }
        if self.has(flag::ECN_ECE) && out.control & ctl::ACK != 0 {
            out.control |= ctl::ECE;
        }
        let new_data = out.payload_len > 0 && out.seq >= snd_max_before && !self.has(flag::PROBE_OUT);
        if new_data {
            out.ect = true;
            if self.has(flag::ECN_CWR) {
                self.clear(flag::ECN_CWR);
                out.control |= ctl::CWR;
            }
        }
    }

    /// `out` did not go (`unsend`): its CWR is owed again.
    pub(super) fn ecn_unsend(&mut self, out: &Outgoing) {
        if out.control & ctl::CWR != 0 {
            self.set(flag::ECN_CWR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_tsval_carries_the_answer_and_never_runs_ahead() {
        for ts in [0u32, 1, 2, 1000, 1001, u32::MAX, u32::MAX - 1] {
            for ok in [false, true] {
                let v = cookie_tsval(ts, ok);
                assert_eq!(cookie_ecn_ok(v), ok, "{ts} {ok}");
                let behind = ts.wrapping_sub(v);
                assert!(behind <= 1, "{ts} {ok}: {v}");
            }
        }
    }
}
