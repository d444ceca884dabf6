//! Loss recovery of the sender, the part that needs per-connection sender
//! state (`SendState`, held while bytes are queued or in flight):
//!
//! - SACK-based recovery (RFC 6675 §5): entered when RFC 6675's IsLost
//!   holds for SND.UNA, after DupThresh duplicate ACKs, or when RACK finds
//!   a loss; retransmits the holes the scoreboard shows (NextSeg rules 1-3,
//!   `next_seg`), each once, and sends new data by rule 2;
//! - PRR (RFC 6937, PRR-SSRB, `prr.rs`) decides how much may go per ACK
//!   while recovery lasts; the congestion-control hooks (`cc/`) set
//!   ssthresh at the congestion event and the window at its end;
//! - RACK (RFC 8985 §6, `rack.rs`) detects losses by time, with the
//!   reordering timer, and TLP (§7) sends a probe 2 * SRTT (+ 2 ms, as
//!   Linux) after the last transmission when nothing comes back;
//! - F-RTO (RFC 5682 §2.1) tells a spurious retransmission timeout from a
//!   real one and undoes the window reduction of a spurious one.
//!
//! NewReno (RFC 6582) for peers without SACK, and for connections that
//! found no free sender slot, stays in `input.rs`.
//!
//! The RACK reordering timer and the TLP probe timeout share `Tcb::rto_at`
//! with the RTO; `SendState::timer` says which one it holds.

use super::buffer::{BufferPool, NIL};
use super::config::TcpConfig;
use super::deadline::Deadline;
use super::prr::Prr;
use super::rack::sent_after;
use super::scoreboard::DUP_THRESH;
use super::seg::Seg;
use super::sender::SendState;
use super::state::State;
use super::stats::Stats;
use super::tcb::{ctl, flag, Outgoing, Tcb};
use crate::time::Instant;
use crate::wire::{SeqNumber, MAX_SACK_BLOCKS};

/// RFC 8985 §7.2 WCDelAckT: the worst-case delayed-ACK time a probe for a
/// single segment in flight waits out.
pub const WC_DEL_ACK_MS: u32 = 200;

/// What the PTO adds to 2 * SRTT when more than one segment is in flight,
/// µs: Linux's `TCP_TIMEOUT_MIN_US`. On a LAN or the testbed's veth 2 * SRTT
/// is tens of µs, less than the peer's and our own scheduling take, and a
/// probe sent that soon duplicates a segment whose ACK is on its way.
pub const PTO_EXTRA_US: u64 = 2000;

/// The millisecond tick (`rto_at`'s unit) at which `d_us` after `now` has
/// passed: rounded up, so a timer never fires early.
fn ms_after(now: Instant, d_us: u64) -> u64 {
    (now.total_micros() + d_us).div_ceil(1000)
}

/// Which deadline `Tcb::rto_at` holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Timer {
    /// The retransmission timeout (RFC 6298) or the persist timer.
    #[default]
    Rto,
    /// RACK's reordering timer (RFC 8985 §6.3).
    Rack,
    /// TLP's probe timeout (RFC 8985 §7.2).
    Tlp,
}

/// What a connection was doing when its retransmission timeout fired (for
/// the `rto_*` counters: why recovery could not do without the timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtoContext {
    /// Backing off after an earlier RTO, or still recovering from one.
    Repeated,
    /// In SACK or NewReno recovery.
    InRecovery,
    /// A tail loss probe was out and nothing answered it.
    AfterProbe,
    /// SACK was not negotiated, so no probe could be sent.
    WithoutSack,
    Other,
}

/// A tail loss probe episode (RFC 8985 §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tlp {
    /// The PTO fired: a probe goes at the next output.
    pub owed: bool,
    /// A probe is out (TLP.end_seq is meaningful).
    pub out: bool,
    /// The probe retransmitted `[start, end)` (else it was new data).
    pub retx: bool,
    pub start: SeqNumber,
    /// TLP.end_seq: SND.MAX when the probe left.
    pub end: SeqNumber,
}

/// F-RTO (RFC 5682 §2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frto {
    /// 0: off; 1: the RTO retransmission is out (step 2 next); 2: new
    /// data went out after the first ACK (step 3 next).
    pub step: u8,
    /// cwnd and ssthresh before the timeout, restored if it was spurious.
    pub cwnd: u32,
    pub ssthresh: u32,
    /// SND.MAX at the timeout (RFC 5682's `recover`).
    pub high: SeqNumber,
    /// End of the segment the timeout retransmitted.
    pub rexmit_end: SeqNumber,
    /// In RTO recovery until SND.UNA reaches `Tcb::recover`: a second
    /// timeout there does not start F-RTO again.
    pub rto_recovery: bool,
    /// With timestamps, the TSval the timeout's retransmission carries: an
    /// ACK echoing an older one acknowledges the original (RFC 3522).
    pub ts: Option<u32>,
    /// `Tcb::recover` before the timeout moved it to SND.MAX, and when the
    /// timeout fired (µs): a spurious timeout gives both back (see
    /// `undo_spurious_rto`).
    pub recover: SeqNumber,
    pub rto_us: u32,
}

/// What `poll_output` handed out, for `unsend`.
const HAND_RETX: u8 = 1;
const HAND_PROBE_RETX: u8 = 2;
const HAND_PROBE_NEW: u8 = 3;
const HAND_NEW_IN_RECOVERY: u8 = 4;

/// Loss-recovery events of one shard; the endpoint moves them into
/// [`Stats`] (same names) at each flush and timer turn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryCounts {
    pub fast_retransmits: u64,
    pub sack_retransmits: u64,
    pub rack_lost_segments: u64,
    pub tlp_probes: u64,
    pub tlp_recoveries: u64,
    pub spurious_rtos: u64,
    pub dsacks_received: u64,
    pub sack_blocks_invalid: u64,
    pub scoreboard_full: u64,
    pub rack_log_merged: u64,
    /// RTT samples the echoed timestamp bounded (`input.rs`).
    pub rtt_samples_bounded: u64,
    /// ECN (`ecn.rs`): CE marks received, ECE received, window reductions.
    pub ecn_ce_received: u64,
    pub ecn_ece_received: u64,
    pub ecn_cwnd_reductions: u64,
}

impl RecoveryCounts {
    /// Adds the counts to `st` and zeroes them.
    pub fn drain_into(&mut self, st: &mut Stats) {
        st.fast_retransmits += self.fast_retransmits;
        st.sack_retransmits += self.sack_retransmits;
        st.rack_lost_segments += self.rack_lost_segments;
        st.tlp_probes += self.tlp_probes;
        st.tlp_recoveries += self.tlp_recoveries;
        st.spurious_rtos_undone += self.spurious_rtos;
        st.dsacks_received += self.dsacks_received;
        st.sack_blocks_invalid += self.sack_blocks_invalid;
        st.sack_scoreboard_full += self.scoreboard_full;
        st.rack_log_merged += self.rack_log_merged;
        st.rtt_samples_bounded_by_echo += self.rtt_samples_bounded;
        st.ecn_ce_received += self.ecn_ce_received;
        st.ecn_ece_received += self.ecn_ece_received;
        st.ecn_cwnd_reductions += self.ecn_cwnd_reductions;
        *self = RecoveryCounts::default();
    }
}

impl SendState {
    /// Whether the deadline `rto_at` holds (`dl`) is RACK's or TLP's timer,
    /// armed here, rather than the RTO.
    fn holds_early(&self, dl: Deadline) -> bool {
        self.timer != Timer::Rto && Deadline::at(self.timer_at) == dl
    }

    /// Pointers left from an earlier flight are brought into
    /// SND.UNA..SND.MAX (a fresh slot holds zeros).
    fn normalize(&mut self, una: SeqNumber, max: SeqNumber) {
        if una == max {
            // Nothing in flight: RACK's reference segment has nothing left
            // to judge, and a stall may outlast its clock's 35 minutes.
            self.rack.valid = false;
        }
        if !(una <= self.high_rxt && self.high_rxt <= max) {
            self.high_rxt = una;
        }
        if !(una <= self.lost_end && self.lost_end <= max) {
            self.lost_end = una;
        }
        if !(una <= self.rack.fack && self.rack.fack <= max) {
            self.rack.fack = una;
        }
        self.sb.advance(una);
    }

    /// A timeout proved spurious (RFC 3522, RFC 5682) with SND.UNA at `una`:
    /// the sender goes on from SND.MAX as if it had not fired (RFC 4015
    /// §3.1), so the bytes it would have resent, `[una, high)` less the one
    /// segment it did resend, are still the flight they were. The timeout
    /// cleared their transmit times from RACK's log: they come back at the
    /// front with the time the timeout fired, which is later than their
    /// own, so RACK finds a real loss among them once data sent after it is
    /// delivered, never early (marked merged: no RTT sample). Without this,
    /// and with `recover` held at SND.MAX, a loss in that flight waited for
    /// the next timeout. True when the log was full (counted).
    fn undo_spurious_rto(&mut self, una: SeqNumber) -> bool {
        self.log.restore_front(una.max(self.frto.rexmit_end), self.frto.high, self.frto.rto_us)
    }

    /// Logs `[start, end)` sent at `now` for RACK; true when the log was
    /// full (counted by the caller).
    fn record_xmit(&mut self, start: SeqNumber, end: SeqNumber, now: Instant, retx: bool, srtt_us: u32) -> bool {
        let granule = self.rack.granule_us(srtt_us);
        self.log.record(start, end, now.total_micros() as u32, retx, granule)
    }

    /// Every un-SACKed byte below this is lost: RFC 6675 IsLost, or RACK.
    fn lost_boundary(&self, una: SeqNumber, mss: u32) -> SeqNumber {
        self.sb.lost_boundary(una, mss).max(self.lost_end)
    }

    /// Un-SACKed bytes in `[a, b)`.
    fn unsacked(&self, a: SeqNumber, b: SeqNumber) -> u32 {
        if b <= a {
            return 0;
        }
        ((b - a) - self.sb.sacked_between(a, b)) as u32
    }

    /// RFC 6675 §4 SetPipe: un-SACKed bytes not lost, plus those
    /// retransmitted (below HighRxt).
    pub fn pipe(&self, una: SeqNumber, max: SeqNumber, mss: u32) -> u32 {
        let lost = self.lost_boundary(una, mss).min(max).max(una);
        let rxt = self.high_rxt.min(max).max(una);
        self.unsacked(una, max) - self.unsacked(una, lost) + self.unsacked(una, rxt)
    }

    /// RFC 6675 §4 NextSeg, rules 1 (`lost_only`) and 3: the first
    /// un-SACKed segment above HighRxt, below the highest SACKed byte, that
    /// is lost (rule 1) or not (rule 3). At most one MSS, never into a
    /// SACKed range.
    pub fn next_seg(&self, una: SeqNumber, max: SeqNumber, mss: u32, lost_only: bool) -> Option<(SeqNumber, u32)> {
        let limit =
            if lost_only { self.lost_boundary(una, mss) } else { self.sb.high().unwrap_or(una).max(self.lost_end) }
                .min(max);
        let mut seq = self.high_rxt.max(una);
        while seq < limit {
            if let Some((_, e)) = self.sb.range_at(seq) {
                seq = e;
                continue;
            }
            let hole_end = self.sb.next_range(seq).map_or(max, |(s, _)| s).min(limit);
            return Some((seq, ((hole_end - seq) as u32).min(mss)));
        }
        None
    }

    /// RFC 8985 §6.2 step 5, RACK_detect_loss: marks what was sent before
    /// RACK's most recent delivered segment and waited more than
    /// RACK.rtt + reo_wnd (µs). Returns (segments newly lost, µs until the
    /// next one would be: the reordering timer, 0 for none).
    fn detect_loss(&mut self, una: SeqNumber, now_us: u32, reo_wnd: u32, mss: u32) -> (u64, u32) {
        if !self.rack.valid {
            return (0, 0);
        }
        let (mut lost, mut timeout) = (0u64, 0u32);
        for i in 0..self.log.len() {
            let x = self.log.get(i);
            if x.lost || x.end <= una {
                continue;
            }
            // The part of this entry sent before RACK's segment.
            let cand_end = if x.us == self.rack.xmit_us {
                x.end.min(self.rack.end_seq)
            } else if sent_after(self.rack.xmit_us, self.rack.end_seq, x.us, x.end) {
                x.end
            } else {
                continue;
            };
            let start = x.start.max(una);
            if cand_end <= start || self.unsacked(start, cand_end) == 0 {
                continue;
            }
            let waited = now_us.wrapping_sub(x.us) as i64;
            let remaining = self.rack.rtt_us as i64 + reo_wnd as i64 - waited;
            if remaining > 0 {
                timeout = timeout.max(remaining as u32);
                continue;
            }
            let newly = if x.retx {
                // A retransmission lost again: send it once more.
                self.high_rxt = self.high_rxt.min(start);
                self.unsacked(start, cand_end)
            } else {
                self.unsacked(self.lost_end.max(start), cand_end)
            };
            lost += newly.div_ceil(mss.max(1)) as u64;
            self.lost_end = self.lost_end.max(cand_end);
            if cand_end == x.end {
                self.log.get_mut(i).lost = true;
            }
        }
        (lost, timeout)
    }
}

impl Tcb {
    /// RFC 6675 recovery with RACK-TLP applies: SACK negotiated and the
    /// connection holds sender state (else NewReno, in `input.rs`).
    pub fn sack_recovery(&self) -> bool {
        self.has(flag::SACK) && self.snd_slot != NIL
    }

    /// The sender state of this connection, with the shard's counts.
    fn rs<'p>(&self, pool: &'p mut BufferPool) -> Option<(&'p mut SendState, &'p mut RecoveryCounts)> {
        pool.senders.state_and_counts(self.snd_slot)
    }

    /// The end of the data and whether our FIN was sent.
    fn data_end(&self) -> (SeqNumber, bool) {
        let end = self.snd_una + self.tx.len();
        (end, self.has(flag::FIN_QUEUED) && self.snd_max > end)
    }

    /// An ACK arrived for a connection with sender state: `acked` bytes
    /// newly acknowledged (SND.UNA already moved), `dupack` when it is an
    /// RFC 5681 duplicate ACK. Updates the scoreboard and RACK, runs
    /// F-RTO's steps, detects losses, enters or leaves recovery, applies
    /// PRR, and arms the timer `rto_at` should hold.
    pub(super) fn recovery_on_ack(&mut self, now: Instant, pool: &mut BufferPool, seg: &Seg, acked: u32, dupack: bool) {
        let now_us = now.total_micros() as u32;
        let mss = self.mss as u32;
        let (una, max) = (self.snd_una, self.snd_max);
        let sack = self.has(flag::SACK);
        let (data_end, _) = self.data_end();
        let srtt_us = self.srtt_us;
        let in_recovery = self.has(flag::RECOVERY);
        let Some((s, c)) = self.rs(pool) else { return };
        s.normalize(una, max);

        // The SACK blocks, and what RACK learns from the deliveries.
        let mut newly_sacked = 0;
        if sack {
            let u = s.sb.update(&seg.sack, una, max);
            newly_sacked = u.newly_sacked;
            c.sack_blocks_invalid += u.invalid as u64;
            c.scoreboard_full += u.full as u64;
            let old_una = una - acked as usize;
            for i in 0..s.log.len() {
                let x = s.log.get(i);
                let mut end = None;
                if acked > 0 && x.start < una && x.end > old_una {
                    end = Some(x.end.min(una));
                }
                for &(bs, be) in u.new_blocks.iter().flatten() {
                    if x.start < be && x.end > bs {
                        let e = x.end.min(be);
                        end = Some(end.map_or(e, |v: SeqNumber| v.max(e)));
                    }
                }
                if let Some(e) = end {
                    s.rack.on_delivered(&x, e, now_us);
                }
            }
            if let Some((ds, de)) = u.dsack {
                c.dsacks_received += 1;
                s.rack.on_dsack(una, max);
                if s.tlp.out && s.tlp.retx && ds <= s.tlp.start && s.tlp.end <= de {
                    // RFC 8985 §7.4.1: the original and the probe both
                    // arrived: there was no loss.
                    s.tlp.out = false;
                }
            }
        }
        s.log.advance(una);

        // TLP's outcome (RFC 8985 §7.4, as Linux tcp_process_tlp_ack).
        let mut tlp_loss = false;
        if s.tlp.out && una >= s.tlp.end {
            if !s.tlp.retx {
                s.tlp.out = false;
            } else if una > s.tlp.end {
                // The probe repaired a loss: respond as to one.
                c.tlp_recoveries += 1;
                tlp_loss = true;
                s.tlp.out = false;
            } else if acked == 0 && newly_sacked == 0 {
                // A pure duplicate: original and probe both arrived.
                s.tlp.out = false;
            }
        }

        // F-RTO (RFC 5682 §2.1 steps 2 and 3).
        let mut set_cwnd = None;
        let mut undo = None;
        // The Eifel detection (RFC 3522 §3.2): the first ACK after the
        // timeout echoes a timestamp older than the retransmission's, so it
        // acknowledges the original transmission (the ACKs were late, nothing
        // was lost). Linux's tcp_try_undo_loss does the same. It works where
        // F-RTO cannot, with no new data to send (a request's whole response
        // in flight).
        let echoed_older = |rts: u32| seg.timestamp.is_some_and(|(_, ecr)| (ecr.wrapping_sub(rts) as i32) < 0);
        let spurious = match s.frto.step {
            1 if acked > 0 && s.frto.ts.is_some_and(echoed_older) => {
                // RFC 4015 §2: go on from SND.MAX rather than resending
                // what the late ACKs will yet acknowledge.
                self.snd_nxt = max;
                true
            }
            1 if acked > 0 => {
                let flight = (max - una) as u32;
                if una >= s.frto.high || una < s.frto.rexmit_end {
                    // 2a: all acknowledged, or not all that was resent.
                    s.frto.step = 0;
                } else if data_end > max && self.snd_wnd > flight {
                    // 2b: send up to two new segments instead of resending.
                    self.snd_nxt = max;
                    set_cwnd = Some(flight + 2 * mss);
                    s.frto.step = 2;
                } else {
                    s.frto.step = 0;
                }
                false
            }
            1 if dupack => {
                s.frto.step = 0;
                false
            }
            // 3b: new data acknowledged after new data went out.
            2 if acked > 0 => true,
            2 if dupack => {
                // 3a: a real loss: slow start, resending from SND.UNA.
                self.snd_nxt = una;
                set_cwnd = Some(3 * mss);
                s.frto.step = 0;
                false
            }
            _ => false,
        };
        if spurious {
            // The timeout was spurious: undo its window reduction.
            c.spurious_rtos += 1;
            undo = Some((s.frto.cwnd, s.frto.ssthresh));
            c.rack_log_merged += s.undo_spurious_rto(una) as u64;
            s.frto.step = 0;
            s.frto.rto_recovery = false;
            self.recover = s.frto.recover;
        }
        if s.frto.rto_recovery && una >= self.recover {
            s.frto.rto_recovery = false;
        }

        // Loss detection (RFC 8985 §6.2, RFC 6675 §5).
        let exit = sack && in_recovery && una >= self.recover;
        let mut reo_timeout = 0;
        let mut enter = false;
        if sack && !exit {
            let sacked_segs = (s.sb.sacked() as u32) / mss.max(1);
            let reo = s.rack.reo_wnd_us(in_recovery, sacked_segs, srtt_us);
            let (lost, t) = s.detect_loss(una, now_us, reo, mss);
            c.rack_lost_segments += lost;
            reo_timeout = t;
            enter = !in_recovery
                && una >= self.recover
                && max > una
                && (s.lost_end > una || s.sb.lost_boundary(una, mss) > una || self.dupacks >= DUP_THRESH as u8);
        }

        if exit {
            self.clear(flag::RECOVERY);
            self.cc_on_recovery_exit(now, pool);
            if let Some((s, _)) = self.rs(pool) {
                s.rack.on_recovery_end();
                s.prr = Prr::default();
            }
        }
        if enter {
            self.enter_recovery(now, pool);
        }
        let delivered = acked + newly_sacked;
        if self.sack_recovery() && self.has(flag::RECOVERY) {
            self.prr_update(pool, delivered);
        } else if sack && acked > 0 && !exit && undo.is_none() && set_cwnd.is_none() {
            self.cc_on_ack(now, pool, acked);
        }
        if tlp_loss && !self.has(flag::RECOVERY) {
            // RFC 8985 §7.4.2: a window reduction as for fast recovery,
            // finished at once (the loss is already repaired).
            self.cc_on_congestion(now, pool);
            self.cc_on_recovery_exit(now, pool);
        }
        if let Some(w) = set_cwnd {
            self.cwnd = w;
        }
        if let Some((w, t)) = undo {
            self.cwnd = w;
            self.ssthresh = t;
        }
        if sack {
            self.recovery_timers(now, pool, reo_timeout);
        }
    }

    /// Starts SACK recovery (RFC 6675 §5 step 4, RFC 6937 initialisation):
    /// RecoveryPoint = HighData, the first segment counted lost, and the
    /// congestion event for the congestion control.
    fn enter_recovery(&mut self, now: Instant, pool: &mut BufferPool) {
        let (una, max) = (self.snd_una, self.snd_max);
        let mss = self.mss as usize;
        let flight = self.flight();
        if let Some((s, c)) = self.rs(pool) {
            c.fast_retransmits += 1;
            if s.tlp.out {
                // The probe's ACK revealed the loss.
                c.tlp_recoveries += 1;
                s.tlp.out = false;
            }
            s.high_rxt = una;
            s.lost_end = s.lost_end.max(una + mss.min(max - una));
            s.prr = Prr::start(flight);
        }
        self.recover = max;
        self.set(flag::RECOVERY);
        self.cc_on_congestion(now, pool);
    }

    /// RFC 6937 on an ACK (or a loss found by timer) in recovery: sndcnt
    /// from what was delivered; cwnd = pipe + sndcnt.
    fn prr_update(&mut self, pool: &mut BufferPool, delivered: u32) {
        let (una, max, mss, ssthresh) = (self.snd_una, self.snd_max, self.mss as u32, self.ssthresh);
        let flight = self.flight();
        if let Some((s, _)) = self.rs(pool) {
            if s.prr.recover_fs == 0 {
                // Recovery began before this connection had sender state
                // (NewReno while the slab was empty): PRR starts now.
                s.prr = Prr::start(flight);
            }
            let pipe = s.pipe(una, max, mss);
            let sndcnt = s.prr.on_ack(delivered, pipe, ssthresh, mss);
            self.cwnd = pipe.saturating_add(sndcnt);
        }
    }

    /// Why the RTO about to fire is one (see [`RtoContext`]).
    pub fn rto_context(&self, pool: &BufferPool) -> RtoContext {
        let st = pool.senders.get(self.snd_slot);
        let probe_out = st.is_some_and(|s| s.tlp.out);
        if self.retries > 0 || st.is_some_and(|s| s.frto.step != 0 || s.frto.rto_recovery) {
            RtoContext::Repeated
        } else if self.has(flag::RECOVERY) {
            RtoContext::InRecovery
        } else if probe_out {
            RtoContext::AfterProbe
        } else if !self.has(flag::SACK) {
            RtoContext::WithoutSack
        } else {
            RtoContext::Other
        }
    }

    /// May a tail loss probe be scheduled now (RFC 8985 §7.2)? Only in the
    /// open state: not in recovery or after a timeout, no probe out, data
    /// (or our FIN) in flight, the window open. Closing does not end it, as
    /// in Linux: a response written and closed at once (HTTP's
    /// `Connection: close`) is in FIN-WAIT-1 for all of its flight, and
    /// its tail is the one most worth probing.
    fn tlp_eligible(&self, s: &SendState) -> bool {
        self.has(flag::SACK)
            && matches!(
                self.state,
                State::Established | State::CloseWait | State::FinWait1 | State::Closing | State::LastAck
            )
            && !self.has(flag::RECOVERY)
            && s.frto.step == 0
            && !s.frto.rto_recovery
            && !s.tlp.out
            && !s.tlp.owed
            && self.flight() > 0
            && self.snd_wnd > 0
            && self.retries == 0
    }

    /// RFC 8985 §7.2: PTO = 2 * SRTT, plus WCDelAckT when a single
    /// segment is in flight, else plus `PTO_EXTRA_US` (as Linux); 1 s before
    /// any RTT sample. In µs.
    pub fn pto_us(&self) -> u64 {
        if self.srtt_us == 0 {
            return 1_000_000;
        }
        let mut pto = 2 * self.srtt_us as u64;
        let (_, fin_sent) = self.data_end();
        if self.flight() - fin_sent as u32 <= self.mss as u32 {
            pto += WC_DEL_ACK_MS as u64 * 1000;
        } else {
            pto += PTO_EXTRA_US;
        }
        pto
    }

    /// Arms what `rto_at` should hold after an ACK: RACK's reordering
    /// timer when a segment waits out reo_wnd, else the probe timeout when
    /// TLP may probe (at the RTO deadline at the latest, RFC 8985 §7.2),
    /// else the RTO.
    fn recovery_timers(&mut self, now: Instant, pool: &mut BufferPool, reo_timeout: u32) {
        let now_ms = now.total_millis();
        let rto_ms = self.rto_ms as u64;
        let Some(slot) = pool.senders.get(self.snd_slot) else { return };
        let eligible = self.tlp_eligible(slot);
        let (dl, rto_at) = (self.rto_at, self.rto_at.ms(now_ms));
        let Some((s, _)) = self.rs(pool) else { return };
        if dl.is_never() {
            s.timer = Timer::Rto;
            return;
        }
        // The RTO deadline: `rto_at` unless an earlier timer holds it.
        let rto_deadline = if s.holds_early(dl) { now_ms + rto_ms } else { rto_at };
        // Each ACK comes here: the µs → ms rounding only for the timer armed.
        let reo_at = (reo_timeout > 0).then(|| ms_after(now, reo_timeout as u64));
        let (kind, at) = match reo_at {
            Some(at) if at < rto_deadline => (Timer::Rack, at),
            // RFC 8985 §7.2: never later than the RTO would have fired.
            None if eligible => (Timer::Tlp, ms_after(now, self.pto_us()).min(rto_deadline)),
            _ => (Timer::Rto, rto_deadline),
        };
        s.timer = kind;
        s.timer_at = at;
        self.rto_at = Deadline::at(at);
    }

    /// An RTT sample in µs from the sender's transmission log for an ACK
    /// that moved SND.UNA up from `old_una` (see `XmitLog::rtt_sample_us`);
    /// None without sender state.
    pub(super) fn log_rtt_us(&self, pool: &BufferPool, old_una: SeqNumber, now: Instant) -> Option<u32> {
        let s = pool.senders.get(self.snd_slot)?;
        s.log.rtt_sample_us(old_una, self.snd_una, now.total_micros() as u32)
    }

    /// True when `rto_at` holds RACK's or TLP's timer (not an RTO).
    pub fn early_timer_armed(&self, pool: &BufferPool) -> bool {
        pool.senders.get(self.snd_slot).is_some_and(|s| s.holds_early(self.rto_at))
    }

    /// `rto_at` came. If it held RACK's reordering timer or TLP's probe
    /// timeout, handles it and returns true; false for a real RTO.
    pub(super) fn recovery_timer(&mut self, now: Instant, pool: &mut BufferPool) -> bool {
        let early = self.early_timer_armed(pool);
        let Some((s, _)) = self.rs(pool) else { return false };
        let kind = s.timer;
        s.timer = Timer::Rto;
        if !early || self.zero_window_stall() || self.flight() == 0 || !self.state.is_synchronized() {
            return false;
        }
        let now_ms = now.total_millis();
        self.rto_at = Deadline::NEVER;
        match kind {
            Timer::Tlp => {
                // RFC 8985 §7.3: the probe goes at the next output; the RTO
                // watches it.
                s.tlp.owed = true;
                self.rto_at = Deadline::at(now_ms + self.rto_ms as u64);
            }
            Timer::Rack | Timer::Rto => {
                // RFC 8985 §6.3: the reordering timer runs loss detection.
                let (una, mss, in_rec) = (self.snd_una, self.mss as u32, self.has(flag::RECOVERY));
                let sacked_segs = (s.sb.sacked() as u32) / mss.max(1);
                let reo = s.rack.reo_wnd_us(in_rec, sacked_segs, self.srtt_us);
                let (lost, t) = s.detect_loss(una, now.total_micros() as u32, reo, mss);
                let found = s.lost_end > una;
                if let Some((_, c)) = self.rs(pool) {
                    c.rack_lost_segments += lost;
                }
                if lost > 0 && found && !in_rec && una >= self.recover {
                    self.enter_recovery(now, pool);
                }
                if lost > 0 && self.has(flag::RECOVERY) {
                    self.prr_update(pool, 0);
                }
                self.rto_at = Deadline::at(now_ms + self.rto_ms as u64);
                if let Some((s, _)) = self.rs(pool) {
                    let reo_at = ms_after(now, t as u64);
                    if t > 0 && reo_at < now_ms + self.rto_ms as u64 {
                        s.timer = Timer::Rack;
                        s.timer_at = reo_at;
                        self.rto_at = Deadline::at(s.timer_at);
                    }
                }
            }
        }
        true
    }

    /// The RTO fired for real (RFC 6298 §5, after `on_rto` backed off and
    /// went back to SND.UNA): RACK and TLP start over, and F-RTO (RFC 5682
    /// §2.1 step 1) begins unless this is a second timeout in a row.
    /// `prior` is (cwnd, ssthresh) before the timeout's reduction.
    pub(super) fn recovery_on_rto(
        &mut self,
        now: Instant,
        pool: &mut BufferPool,
        prior: (u32, u32, SeqNumber),
        ts: Option<u32>,
    ) {
        let (una, mss) = (self.snd_una, self.mss as usize);
        let max = self.snd_max;
        let frto_ok = matches!(self.state, State::Established | State::CloseWait) && !self.tx.is_empty();
        let first_resend = una + mss.min(self.tx.len());
        let Some((s, _)) = self.rs(pool) else { return };
        s.timer = Timer::Rto;
        s.tlp = Tlp::default();
        s.prr = Prr::default();
        s.high_rxt = una;
        s.lost_end = una;
        s.log.clear();
        let repeated = s.frto.rto_recovery;
        if repeated {
            // RFC 2018 §5.1: after a retransmission timeout the SACKed bits
            // SHOULD be turned off, the receiver may have reneged. Kept
            // through the first (F-RTO may yet find it spurious, and go-back-N
            // skips what was SACKed); a second timeout in a row means the
            // peer is not taking what is resent: everything goes again.
            s.sb.clear();
        }
        s.frto.rto_recovery = true;
        s.frto.step = 0;
        if !repeated && frto_ok {
            s.frto = Frto {
                step: 1,
                cwnd: prior.0,
                ssthresh: prior.1,
                high: max,
                rexmit_end: first_resend,
                rto_recovery: true,
                ts,
                recover: prior.2,
                rto_us: now.total_micros() as u32,
            };
        }
    }

    /// Undoes what `poll_output` recorded for a segment that found no TX
    /// frame; true when nothing else is to be undone (a hole's
    /// retransmission or a probe resend, which SND.NXT does not cover).
    pub(super) fn recovery_unsend(&mut self, pool: &mut BufferPool, out: &Outgoing) -> bool {
        let Some((s, c)) = self.rs(pool) else { return false };
        let sent = out.payload_len + (out.control & ctl::FIN != 0) as u32;
        if sent > 0 {
            s.log.unrecord(out.seq, out.seq + sent as usize);
        }
        let Some((seq, len, kind)) = s.handout.take() else { return false };
        if seq != out.seq || len != out.payload_len + (out.control & ctl::FIN != 0) as u32 {
            return false;
        }
        match kind {
            HAND_RETX => {
                s.high_rxt = s.high_rxt.min(seq);
                s.prr.unsent(len);
                c.sack_retransmits = c.sack_retransmits.saturating_sub(1);
                true
            }
            HAND_PROBE_RETX | HAND_PROBE_NEW => {
                s.tlp = Tlp { owed: true, ..Tlp::default() };
                c.tlp_probes = c.tlp_probes.saturating_sub(1);
                kind == HAND_PROBE_RETX
            }
            HAND_NEW_IN_RECOVERY => {
                s.prr.unsent(len);
                false
            }
            _ => false,
        }
    }

    /// The sequence space `[seq, seq + len)` resent: its bytes of the send
    /// buffer, and our FIN when the range covers it.
    fn resend(&mut self, now: Instant, cfg: &TcpConfig, pool: &mut BufferPool, seq: SeqNumber, len: u32) -> Outgoing {
        let (data_end, fin_sent) = self.data_end();
        let payload = (data_end.diff(seq).max(0) as u32).min(len);
        let mut out = Outgoing {
            control: ctl::ACK,
            seq,
            ack: self.rcv_nxt,
            window: 0,
            timestamp: self.has(flag::TS).then(|| (self.ts_val(now), self.ts_recent)),
            syn_options: None,
            sack: [None; MAX_SACK_BLOCKS],
            payload_offset: (seq - self.snd_una) as u32,
            payload_len: payload,
            ect: false,
        };
        if self.has(flag::SACK) {
            out.sack = self.rx.out_of_order(pool).sack_blocks();
        }
        if payload > 0 {
            out.control |= ctl::PSH;
        }
        if fin_sent && seq + len as usize > data_end {
            out.control |= ctl::FIN;
        }
        // Karn: the timed segment is ambiguous once resent.
        if seq < self.rtt_seq && self.rtt_seq <= seq + len as usize + 1 {
            self.rtt_seq = self.snd_una;
        }
        out.window = self.advertise(pool, cfg, false);
        self.ack_sent();
        out
    }

    /// The next segment this connection wants to send, if any: recovery's
    /// retransmissions and TLP's probe first, then what `poll_output_inner`
    /// sends (new data, go-back-N after a timeout, FIN, ACKs), paced by
    /// PRR in recovery. Call until `None`.
    pub fn poll_output(&mut self, now: Instant, cfg: &TcpConfig, pool: &mut BufferPool) -> Option<Outgoing> {
        if self.snd_slot == NIL || !self.state.is_synchronized() {
            return self.poll_output_inner(now, cfg, pool);
        }
        let srtt_us = self.srtt_us;
        // What one segment carries now (less the SACK blocks it will hold);
        // the scoreboard's rules count in the MSS itself.
        let (una, max, mss, seg) = (self.snd_una, self.snd_max, self.mss as u32, self.seg_mss(pool));
        let (data_end, fin_sent) = self.data_end();
        let sack = self.has(flag::SACK);
        let in_rec = sack && self.has(flag::RECOVERY);
        let window_end = una + self.snd_wnd as usize;
        let new_data = self.snd_nxt == max && data_end > max && window_end > max;
        let (s, c) = self.rs(pool)?;
        s.normalize(una, max);
        s.handout = None;

        // TLP (RFC 8985 §7.3): new data if the window allows, else the
        // last segment sent.
        let mut probe_new = false;
        if s.tlp.owed {
            s.tlp.owed = false;
            if new_data {
                probe_new = true;
            } else if max > una {
                // The last segment of data, and our FIN when it was sent (the
                // last number of the sequence space; `resend` sets the flag).
                let seq = (max - seg as usize - fin_sent as usize).max(una);
                let len = (max - seq) as u32;
                s.tlp = Tlp { owed: false, out: true, retx: true, start: seq, end: max };
                c.tlp_probes += 1;
                s.handout = Some((seq, len, HAND_PROBE_RETX));
                if s.record_xmit(seq, max, now, true, srtt_us) {
                    c.rack_log_merged += 1;
                }
                return Some(self.resend(now, cfg, pool, seq, len));
            }
        }

        // RFC 6675 NextSeg rule 1: a lost hole, as PRR allows.
        if in_rec {
            let hole = s.next_seg(una, max, mss, true).map(|(q, l)| (q, l.min(seg)));
            if let Some((seq, len)) = hole.filter(|&(_, l)| s.prr.budget >= l) {
                return Some(self.resend_hole(now, cfg, pool, seq, len));
            }
        }
        // Go-back-N after a timeout skips what the peer SACKed.
        if sack && self.snd_nxt < max {
            if let Some((_, e)) = s.sb.range_at(self.snd_nxt) {
                self.snd_nxt = e.min(max);
            }
        }
        let budget = s.prr.budget;

        // Rule 2, new data: PRR's budget stands in for the window during
        // recovery, and a probe goes whatever the window.
        let saved_cwnd = self.cwnd;
        let flight_nxt = (self.snd_nxt - una) as u32;
        if in_rec {
            let unsent = (data_end.diff(self.snd_nxt).max(0) as u32).min(seg);
            self.cwnd = flight_nxt + if budget >= unsent { budget } else { 0 };
        } else if probe_new {
            self.cwnd = self.cwnd.max(flight_nxt + seg);
        }
        let out = self.poll_output_inner(now, cfg, pool);
        if in_rec || probe_new {
            self.cwnd = saved_cwnd;
        }
        let Some(o) = out else {
            // Rule 3: nothing lost or new to send; an un-SACKed segment
            // below the highest SACK may be.
            if in_rec {
                let (s, _) = self.rs(pool)?;
                let hole = s.next_seg(una, max, mss, false).map(|(q, l)| (q, l.min(seg)));
                if let Some((seq, len)) = hole.filter(|&(_, l)| s.prr.budget >= l) {
                    return Some(self.resend_hole(now, cfg, pool, seq, len));
                }
            }
            return None;
        };
        let len = o.payload_len + (o.control & ctl::FIN != 0) as u32;
        if len > 0 {
            let retx = o.seq < max;
            let eligible = pool.senders.get(self.snd_slot).is_some_and(|s| self.tlp_eligible(s));
            let (dl, rto_ms) = (self.rto_at, self.rto_ms as u64);
            let Some((s, c)) = self.rs(pool) else { return Some(o) };
            if s.record_xmit(o.seq, o.seq + len as usize, now, retx, srtt_us) {
                c.rack_log_merged += 1;
            }
            if !retx {
                if in_rec {
                    s.prr.sent(len);
                    s.handout = Some((o.seq, len, HAND_NEW_IN_RECOVERY));
                }
                if probe_new {
                    s.tlp = Tlp { owed: false, out: true, retx: false, start: o.seq, end: o.seq + len as usize };
                    c.tlp_probes += 1;
                    s.handout = Some((o.seq, len, HAND_PROBE_NEW));
                    // The RTO watches the probe.
                    s.timer = Timer::Rto;
                    self.rto_at = Deadline::at(now.total_millis() + rto_ms);
                } else if eligible && (s.timer != Timer::Rack || dl != Deadline::at(s.timer_at)) {
                    // RFC 8985 §7.2: (re)start the PTO after new data.
                    let now_ms = now.total_millis();
                    let rto_deadline = if s.holds_early(dl) { now_ms + rto_ms } else { dl.ms(now_ms) };
                    s.timer = Timer::Tlp;
                    s.timer_at = ms_after(now, self.pto_us()).min(rto_deadline);
                    self.rto_at = Deadline::at(s.timer_at);
                }
            }
        }
        Some(o)
    }

    /// NextSeg rule 1 or 3 chose `[seq, seq + len)`: resend it in recovery.
    fn resend_hole(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        pool: &mut BufferPool,
        seq: SeqNumber,
        len: u32,
    ) -> Outgoing {
        let srtt_us = self.srtt_us;
        if let Some((s, c)) = self.rs(pool) {
            s.prr.sent(len);
            s.high_rxt = seq + len as usize;
            c.sack_retransmits += 1;
            s.handout = Some((seq, len, HAND_RETX));
            if s.record_xmit(seq, seq + len as usize, now, true, srtt_us) {
                c.rack_log_merged += 1;
            }
        }
        self.resend(now, cfg, pool, seq, len)
    }
}
