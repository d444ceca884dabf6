//! Segment arrival for a connection with a control block: SYN-SENT
//! (RFC 9293 §3.10.7.3) and SYN-RECEIVED onwards (§3.10.7.4), with the
//! RFC 5961 defences (§3 RST, §4 SYN, §5 ACK) and RFC 7323 PAWS (§5.3).
//! LISTEN, TIME-WAIT and CLOSED are handled by the endpoint.

use super::buffer::BufferPool;
use super::config::{TcpConfig, TimeWaitRst, OOW_ACK_INTERVAL};
use super::deadline::Deadline;
use super::ratelimit::oow_rate_limited;
use super::seg::Seg;
use super::state::State;
use super::tcb::{flag, Tcb};
use crate::time::Instant;
use crate::wire::SeqNumber;

/// What a segment did, for the endpoint to act on.
pub mod ev {
    /// The connection reached ESTABLISHED.
    pub const ESTABLISHED: u8 = 1 << 0;
    /// New bytes to read.
    pub const READABLE: u8 = 1 << 1;
    /// The peer sent its FIN: no more bytes will come.
    pub const PEER_FIN: u8 = 1 << 2;
    /// Send space was freed.
    pub const WRITABLE: u8 = 1 << 3;
    /// The peer reset the connection; it is CLOSED.
    pub const RESET: u8 = 1 << 4;
    /// The connection reached CLOSED normally (LAST-ACK acknowledged).
    pub const CLOSED: u8 = 1 << 5;
    /// The connection entered TIME-WAIT and leaves the table.
    pub const TIME_WAIT: u8 = 1 << 6;
    /// We aborted the connection (data after close): an RST goes out, it is CLOSED.
    pub const ABORTED: u8 = 1 << 7;
}

/// Why a segment was dropped, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    OutOfWindow,
    /// Out of window as data wholly below RCV.NXT: the peer resent what we
    /// had (answered with a D-SACK where SACK is on).
    OldData,
    Paws,
    AckUnsent,
    NoAck,
    /// Beyond RCV.NXT and not kept (no chunk, or too many ranges).
    OutOfOrder,
    /// Beyond RCV.NXT and kept for reassembly: not a drop, counted apart.
    Queued,
    NoBuffer,
    RstIgnored,
    /// A half-open entry reset by the peer: it goes away with no event.
    HalfOpenReset,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Input {
    pub events: u8,
    /// An RST to send that is not part of the connection's own sequence
    /// space, `<SEQ=SEG.ACK><CTL=RST>` (RFC 9293 §3.10.7.3, §3.10.7.4): its
    /// sequence number.
    pub rst: Option<SeqNumber>,
    /// An RFC 5961 challenge ACK is due (subject to the per-connection
    /// interval and the endpoint's budget).
    pub challenge: bool,
    /// The ACK answering this dropped segment was held back by the
    /// per-connection interval ([`super::config::OOW_ACK_INTERVAL`]).
    pub oow_limited: bool,
    pub drop: Option<Drop>,
    /// A duplicate segment to report as the first SACK block of the ACK
    /// (a D-SACK, RFC 2883 §4), when SACK is in use.
    pub dsack: Option<(SeqNumber, SeqNumber)>,
    /// The peer's FIN came before bytes held beyond a hole: discarded.
    pub ooo_discarded: bool,
    /// SYN-SENT: our SYN goes again right after the RST (`input_syn_sent`).
    pub syn_resent: bool,
}

impl Input {
    fn dropped(d: Drop) -> Input {
        Input { drop: Some(d), ..Input::default() }
    }
}

impl Tcb {
    /// The ACK RFC 9293 sends for an unacceptable segment (out of window,
    /// PAWS, ACK of unsent data): as Linux's `tcp_oow_rate_limited`, a
    /// segment without data (or with SYN) is answered at most once per
    /// [`OOW_ACK_INTERVAL`] per connection, so that forged segments cannot
    /// turn a connection into an ACK reflector nor two confused peers into
    /// an ACK loop. A data segment is always answered: its duplicate ACK is
    /// what tells the peer that a retransmission already arrived.
    fn oow_ack(&mut self, now: Instant, seg: &Seg, out: &mut Input) {
        let data = !seg.is_empty() && !seg.syn();
        if !data && oow_rate_limited(&mut self.last_oow_ms, now.total_millis(), OOW_ACK_INTERVAL.as_millis() as u32) {
            out.oow_limited = true;
            return;
        }
        self.set(flag::ACK_NOW);
    }
}

impl Tcb {
    /// Takes the options of the peer's SYN (RFC 9293 §3.7.1, RFC 7323 §2.2 and
    /// §3.2, RFC 2018 §2). `offered` says what our side offers or offered.
    pub fn negotiate(&mut self, cfg: &TcpConfig, seg: &Seg, ipv6: bool) {
        let ours = cfg.advertised_mss(ipv6);
        let peer = seg.mss.unwrap_or(super::secret::default_mss(ipv6));
        let mut mss = ours.min(peer).max(64);
        self.clear(flag::TS | flag::SACK | flag::WSCALE | flag::V6);
        if ipv6 {
            self.set(flag::V6);
        }
        if let (Some(ws), true) = (seg.window_scale, cfg.window_scale > 0) {
            self.set(flag::WSCALE);
            self.snd_wscale = ws.min(14);
            self.rcv_wscale = cfg.offered_window_scale().min(14);
        } else {
            self.snd_wscale = 0;
            self.rcv_wscale = 0;
        }
        if cfg.sack && seg.sack_permitted {
            self.set(flag::SACK);
        }
        if let (Some((tsval, _)), true) = (seg.timestamp, cfg.timestamps) {
            self.set(flag::TS);
            self.ts_recent = tsval;
            mss -= 12;
        }
        self.mss = mss;
        self.cc_init(cfg);
        self.rcv_nxt = seg.seq + 1;
        self.rcv_adv = self.rcv_nxt;
        // Autotuning's first measurement runs from here (`window.rs`).
        self.rcv_epoch_seq = self.rcv_nxt;
        self.snd_wnd = seg.window as u32;
        self.snd_wl1 = seg.seq;
    }

    /// RFC 9293 §3.10.7.4 first check: is the segment in the window?
    fn acceptable(&self, seg: &Seg) -> bool {
        let wnd = self.rcv_wnd();
        let len = seg.len() as u32;
        match (len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, _) => seg.seq.in_window(self.rcv_nxt, wnd),
            (_, 0) => false,
            _ => seg.seq.in_window(self.rcv_nxt, wnd) || (seg.seq + (len as usize - 1)).in_window(self.rcv_nxt, wnd),
        }
    }

    /// The state changes the ACK of our FIN makes (RFC 9293 §3.10.7.4
    /// fifth check): FIN-WAIT-1 to FIN-WAIT-2, CLOSING to TIME-WAIT,
    /// LAST-ACK to CLOSED. True when the connection has left the table's
    /// states and the segment needs no further processing.
    fn on_fin_acked(&mut self, now: Instant, cfg: &TcpConfig, out: &mut Input) -> bool {
        if !self.has(flag::FIN_ACKED) {
            return false;
        }
        match self.state {
            State::FinWait1 => {
                self.state = State::FinWait2;
                if self.has(flag::APP_CLOSED) {
                    self.idle_at = Deadline::at((now + cfg.fin_wait2_timeout).total_millis());
                } else {
                    // Half-closed by `shutdown`: keepalive watches the peer.
                    self.reset_idle(now, cfg);
                }
                false
            }
            State::Closing => {
                self.state = State::TimeWait;
                out.events |= ev::TIME_WAIT;
                true
            }
            State::LastAck => {
                self.state = State::Closed;
                out.events |= ev::CLOSED;
                true
            }
            _ => false,
        }
    }

    /// A segment for this connection arrived.
    pub fn input(&mut self, now: Instant, cfg: &TcpConfig, pool: &mut BufferPool, seg: &Seg) -> Input {
        if self.state == State::SynSent {
            return self.input_syn_sent(now, cfg, seg);
        }
        // A retransmission of the SYN we answered gets the same SYN-ACK again.
        // (In SYN-RECEIVED RCV.NXT is the peer's ISN plus one.)
        if self.state == State::SynReceived && seg.syn() && !seg.has_ack() && !seg.rst() && seg.seq + 1 == self.rcv_nxt
        {
            self.snd_nxt = self.iss();
            return Input::default();
        }
        // RFC 7323 §5.3 PAWS: an old timestamp marks an old duplicate.
        if let (true, Some((tsval, _)), false) = (self.has(flag::TS), seg.timestamp, seg.rst()) {
            if (tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                let mut out = Input::dropped(Drop::Paws);
                self.oow_ack(now, seg, &mut out);
                return out;
            }
        }
        if !self.acceptable(seg) {
            if seg.rst() {
                return Input::dropped(Drop::RstIgnored);
            }
            // RFC 2883 §4 (1): data wholly below RCV.NXT arrived again.
            let end = seg.seq + seg.payload.len();
            let old = !seg.payload.is_empty() && end <= self.rcv_nxt;
            // RFC 9293: an unacceptable segment is answered by an ACK.
            let mut out = Input::dropped(if old { Drop::OldData } else { Drop::OutOfWindow });
            self.oow_ack(now, seg, &mut out);
            if self.has(flag::SACK) && old {
                out.dsack = Some((seg.seq, end));
            }
            // "If the RCV.WND is zero, no segments will be acceptable, but
            // special allowance should be made to accept valid ACKs": with
            // our window shut, the peer's ACKs are what frees it again.
            if self.rcv_wnd() == 0
                && self.state.is_synchronized()
                && seg.has_ack()
                && !seg.syn()
                && seg.ack <= self.snd_max
                && seg.ack >= self.snd_una
            {
                self.process_ack(now, cfg, pool, seg, &mut out);
                // The ACK may be of our FIN: without the state change the
                // connection would sit in FIN-WAIT-1 (or CLOSING, LAST-ACK)
                // with nothing left to time out (found by the fuzz target
                // `endpoint`: the shared buffer pool ran dry, so the
                // window was zero).
                self.on_fin_acked(now, cfg, &mut out);
            }
            return out;
        }
        self.reset_idle(now, cfg);

        // Second: RST (RFC 5961 §3.2).
        if seg.rst() {
            if seg.seq != self.rcv_nxt {
                return Input { challenge: true, drop: Some(Drop::RstIgnored), ..Input::default() };
            }
            if self.state == State::SynReceived && self.has(flag::PASSIVE) {
                self.state = State::Closed;
                return Input::dropped(Drop::HalfOpenReset);
            }
            if self.state == State::TimeWait && cfg.time_wait_rst == TimeWaitRst::Ignore {
                // RFC 1337 §3, as the TIME-WAIT table does: this entry is
                // still in the connection table only because the application
                // has bytes of it left to read (`Endpoint::output`), and an
                // RST here (typically the peer's answer, from CLOSED, to an
                // ACK of one of its late duplicates) must cost neither the
                // bytes nor a clean close. Both FINs were exchanged.
                return Input::dropped(Drop::RstIgnored);
            }
            self.state = State::Closed;
            return Input { events: ev::RESET, ..Input::default() };
        }

        // Fourth: SYN (RFC 5961 §4).
        if seg.syn() {
            return Input { challenge: true, ..Input::default() };
        }

        // Fifth: ACK.
        if !seg.has_ack() {
            return Input::dropped(Drop::NoAck);
        }
        let mut out = Input::default();
        if self.state == State::SynReceived {
            if !(seg.ack > self.snd_una && seg.ack <= self.snd_max) {
                return Input { rst: Some(seg.ack), ..Input::default() };
            }
            let iss = self.iss();
            self.state = State::Established;
            self.snd_una = iss + 1;
            // A duplicate SYN earlier in this batch rewound SND.NXT to
            // resend the SYN-ACK; the peer has it: never send below SND.UNA.
            if self.snd_nxt == iss {
                self.snd_nxt = iss + 1;
            }
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.snd_wnd = (seg.window as u32) << self.snd_wscale;
            self.rto_at = Deadline::NEVER;
            self.retries = 0;
            self.rto_ms = cfg.rto_initial.as_millis() as u32;
            // Linux's tcp_synack_rtt_meas: the final ACK echoes our
            // SYN-ACK's timestamp, the first RTT sample of a passive open
            // (and the only one of a server that only receives, which
            // receive-window autotuning measures by, `window.rs`).
            if let (true, Some((_, tsecr))) = (self.has(flag::TS), seg.timestamp) {
                if let Some(r) = self.ts_rtt_us(now, tsecr).filter(|_| tsecr != 0) {
                    self.rtt_sample(cfg, r);
                }
            }
            self.reset_idle(now, cfg);
            out.events |= ev::ESTABLISHED;
            if self.has(flag::FIN_QUEUED) {
                // Closed while the handshake was under way.
                self.state = State::FinWait1;
                self.idle_at = Deadline::NEVER;
            }
        }
        if seg.ack > self.snd_max {
            let mut out = Input::dropped(Drop::AckUnsent);
            self.oow_ack(now, seg, &mut out);
            return out;
        }
        let max_wnd = 65535usize << self.snd_wscale;
        if seg.ack < self.snd_una - max_wnd {
            // RFC 5961 §5.2: far too old to be real.
            let mut out = Input::dropped(Drop::AckUnsent);
            self.oow_ack(now, seg, &mut out);
            return out;
        }
        self.ecn_on_receive(pool, seg);
        self.process_ack(now, cfg, pool, seg, &mut out);
        if self.on_fin_acked(now, cfg, &mut out) {
            return out;
        }

        // Seventh: segment text.
        let mut fin_in_order = seg.fin();
        if !seg.payload.is_empty() && self.state.can_receive() {
            if self.has(flag::APP_CLOSED) {
                // Nobody will read it: abort, as Linux does after close().
                self.state = State::Closed;
                out.events |= ev::ABORTED;
                return out;
            }
            let skip = (self.rcv_nxt - seg.seq).min(seg.payload.len());
            let skip = if seg.seq < self.rcv_nxt { skip } else { 0 };
            if seg.seq > self.rcv_nxt {
                // Beyond a hole: kept at its place in the receive chunk, up
                // to the window's edge, and ACKed at once (a duplicate ACK,
                // RFC 5681 §4.2). A FIN riding on it waits for its resend.
                self.set(flag::ACK_NOW | flag::HOLE);
                let end = seg.seq + seg.payload.len();
                if self.has(flag::SACK) && self.rx.out_of_order(pool).iter().any(|(s, e)| s <= seg.seq && end <= e) {
                    // RFC 2883 §4 (2): a duplicate of data held beyond the hole.
                    out.dsack = Some((seg.seq, end));
                }
                let gap = seg.seq - self.rcv_nxt;
                let room = (self.rcv_wnd() as usize).saturating_sub(gap).min(seg.payload.len());
                let kept = room > 0 && self.rx.insert_out_of_order(pool, gap, seg.seq, &seg.payload[..room]);
                out.drop = Some(if kept { Drop::Queued } else { Drop::OutOfOrder });
                return out;
            }
            if skip > 0 && self.has(flag::SACK) {
                // RFC 2883 §4: the part already received is reported.
                out.dsack = Some((seg.seq, seg.seq + skip));
            }
            let data = &seg.payload[skip..];
            let room = (self.rcv_wnd() as usize).min(data.len());
            // Bounded by the window advertised, whatever the pool's state.
            let taken = self.rx.push(pool, &data[..room], usize::MAX);
            self.rcv_nxt += taken;
            if taken > 0 {
                // The hole before queued segments may be filled now.
                let joined = self.rx.join_out_of_order(pool, self.rcv_nxt);
                if joined != self.rcv_nxt {
                    self.rcv_nxt = joined;
                    // All of this segment was taken: a FIN on it is not the
                    // last byte any more, the queued data beyond it is.
                    fin_in_order = false;
                }
                out.events |= ev::READABLE;
            }
            if taken < data.len() {
                fin_in_order = false;
                self.set(flag::ACK_NOW);
                if taken < room {
                    out.drop = Some(Drop::NoBuffer);
                }
            }
            self.unacked_segs = self.unacked_segs.saturating_add(1);
            if self.unacked_segs >= 2 || fin_in_order || self.has(flag::HOLE) {
                self.clear(flag::HOLE);
                self.set(flag::ACK_NOW);
            } else if self.ack_at.is_never() {
                self.ack_at = Deadline::at((now + cfg.delayed_ack).total_millis());
            }
            if !self.rx.out_of_order(pool).is_empty() {
                // Holes remain: the segments that fill them are ACKed at once too.
                self.set(flag::HOLE);
            }
        }

        // Eighth: FIN. One beyond a hole waits for the hole (dup ACK now).
        if seg.fin() && seg.seq > self.rcv_nxt && seg.payload.is_empty() && self.state.can_receive() {
            self.set(flag::ACK_NOW | flag::HOLE);
            out.drop = Some(Drop::OutOfOrder);
            return out;
        }
        if fin_in_order && seg.seq + seg.payload.len() == self.rcv_nxt && !self.has(flag::FIN_RECEIVED) {
            self.rcv_nxt += 1;
            self.set(flag::FIN_RECEIVED | flag::ACK_NOW);
            out.events |= ev::PEER_FIN;
            if !self.rx.out_of_order(pool).is_empty() {
                // Bytes beyond the end of the stream: a broken or hostile
                // peer. Nothing after the FIN can be delivered.
                self.rx.discard_out_of_order(pool);
                self.clear(flag::HOLE);
                out.ooo_discarded = true;
            }
            match self.state {
                State::SynReceived | State::Established => {
                    self.state = State::CloseWait;
                    self.reset_idle(now, cfg);
                }
                State::FinWait1 => self.state = State::Closing,
                State::FinWait2 => {
                    self.state = State::TimeWait;
                    out.events |= ev::TIME_WAIT;
                }
                _ => {}
            }
        }
        out
    }

    /// RFC 9293 §3.10.7.4 fifth check for the synchronized states, RFC 6298
    /// timer rules and RFC 5681 window growth.
    fn process_ack(&mut self, now: Instant, cfg: &TcpConfig, pool: &mut BufferPool, seg: &Seg, out: &mut Input) {
        let snd_una_before = self.snd_una;
        let flight_before = self.flight();
        // SACK recovery and RACK-TLP (`recovery.rs`) when SACK is on and
        // the connection has sender state; else NewReno below.
        let sack_recovery = self.sack_recovery();
        let has_sender = self.snd_slot != super::buffer::NIL;
        if seg.ack > self.snd_una {
            let acked = seg.ack - self.snd_una;
            let data = acked.min(self.tx.len());
            self.tx.consume(pool, data);
            if acked > data && self.has(flag::FIN_QUEUED) && self.snd_max > self.snd_una + data {
                self.set(flag::FIN_ACKED);
            }
            self.snd_una = seg.ack;
            if self.snd_nxt < self.snd_una {
                self.snd_nxt = self.snd_una;
            }
            // RTT: our own send times in µs when the sender logs them (as
            // Linux prefers them to the echoed timestamp, whose millisecond
            // reads every RTT of a LAN as 0), else timestamps (RFC 7323
            // §4.1), else Karn's timed segment; a millisecond reading of 0
            // counts as 1 ms. The echo bounds the first: an ACK that comes
            // after the peer's earlier ACKs were lost acknowledges bytes sent
            // long before it, but echoes the segment that made the peer
            // answer (RFC 7323 §4.3), so the oldest byte's time would count
            // the stall as path delay (seen on the testbed at 5 % loss both
            // ways: SRTT 26 ms on a 0.2 ms path, every probe 2 * SRTT late).
            let karn_timed = !self.has(flag::TS) && self.rtt_seq > self.snd_una - acked && seg.ack >= self.rtt_seq;
            let echo = match seg.timestamp {
                Some((_, tsecr)) if self.has(flag::TS) && tsecr != 0 => Some(tsecr),
                _ => None,
            };
            let sample = match self.log_rtt_us(pool, snd_una_before, now) {
                // Only a stall of at least a probe timeout's length (the
                // bound doubled) is taken out: within that, the oldest byte
                // measures what the segments one ACK covers waited, and the
                // echo of a later one would read low (in the simulator at
                // 100 ms and 0.1 % loss, a fifth more spurious resends).
                Some(r) => Some(match echo.and_then(|e| self.ts_rtt_bound_us(now, e)) {
                    Some(b) if r / 2 > b => {
                        if let Some((_, c)) = pool.senders.state_and_counts(self.snd_slot) {
                            c.rtt_samples_bounded += 1;
                        }
                        b
                    }
                    _ => r,
                }),
                None => match echo {
                    Some(e) => self.ts_rtt_us(now, e),
                    None if karn_timed => {
                        Some((now.total_millis() as u32).wrapping_sub(self.rtt_start_ms).max(1).saturating_mul(1000))
                    }
                    None => None,
                },
            };
            if karn_timed {
                self.rtt_seq = self.snd_una;
            }
            if let Some(r) = sample {
                self.rtt_sample(cfg, r);
                self.cc_on_rtt(now, pool, r);
            }
            if sack_recovery {
                // Window growth and recovery's end: `recovery_on_ack`.
            } else if self.has(flag::RECOVERY) {
                if seg.ack >= self.recover {
                    self.clear(flag::RECOVERY);
                    self.cc_on_recovery_exit(now, pool);
                } else {
                    // Partial ACK: resend the next hole (RFC 6582 §3.2 step
                    // 3), deflating the window by what was acknowledged
                    // and adding back one SMSS when that was a full one
                    // (§3.2 step 3, "partial window deflation").
                    self.set(flag::RETX_HEAD);
                    let mss = self.mss as u32;
                    self.cwnd = self.cwnd.saturating_sub(acked as u32).max(mss);
                    if acked as u32 >= mss {
                        self.cwnd = self.cwnd.saturating_add(mss);
                    }
                }
            } else if !self.ecn_in_reduction(pool) {
                // (An ECN reduction's window holds the window where it is.)
                self.cc_on_ack(now, pool, acked as u32);
            }
            self.dupacks = 0;
            self.retries = 0;
            self.clear(flag::PROBE_OUT);
            self.rto_at =
                if self.flight() == 0 { Deadline::NEVER } else { Deadline::at((now + ms(self.rto_ms)).total_millis()) };
            if data > 0 {
                out.events |= ev::WRITABLE;
            }
            if has_sender {
                self.recovery_on_ack(now, pool, seg, acked as u32, false);
            }
            self.sender_detach(pool, false);
        } else if sack_recovery && seg.ack == self.snd_una && self.flight() > 0 {
            // RFC 6675: every ACK's SACK blocks count, duplicate or not.
            let dupack = seg.payload.is_empty()
                && !seg.fin()
                && (seg.window as u32) << self.snd_wscale == self.snd_wnd
                && self.snd_wnd > 0;
            if dupack {
                self.dupacks = self.dupacks.saturating_add(1);
            }
            self.recovery_on_ack(now, pool, seg, 0, dupack);
        } else if seg.ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.fin()
            && self.flight() > 0
            && (seg.window as u32) << self.snd_wscale == self.snd_wnd
            // A shut window repeated is a full receiver, not a loss signal:
            // the persist timer owns that case (its probe is "in flight").
            && self.snd_wnd > 0
        {
            // RFC 5681 §3.2 duplicate ACK.
            self.dupacks = self.dupacks.saturating_add(1);
            let mss = self.mss as u32;
            // RFC 6582 §3.2 step 1: only duplicates of data sent after the
            // last recovery or timeout (`recover`) start a fast retransmit.
            if self.dupacks == 3 && !self.has(flag::RECOVERY) && seg.ack >= self.recover {
                self.cc_on_congestion(now, pool);
                self.recover = self.snd_max;
                self.set(flag::RECOVERY | flag::RETX_HEAD);
                pool.senders.counts.fast_retransmits += 1;
            } else if self.has(flag::RECOVERY) {
                self.cwnd = self.cwnd.saturating_add(mss);
            }
            if has_sender {
                // F-RTO's steps read duplicate ACKs too.
                self.recovery_on_ack(now, pool, seg, 0, true);
            }
        }
        if seg.ack == self.snd_una && seg.window == 0 && self.has(flag::PROBE_OUT) {
            // The peer answers our zero-window probe: it is alive. Once per
            // probe: ACKs with no probe out reset nothing (RFC 9293 §3.8.6.1).
            self.clear(flag::PROBE_OUT);
            self.retries = 0;
        }
        // Probing a shut window (RFC 9293 §3.8.6.1), before this ACK.
        let persisting = self.zero_window_stall() || self.has(flag::PROBE_OUT);
        // Window update (RFC 9293 §3.10.7.4, SND.WL1/SND.WL2).
        // As Linux (tcp_may_update_window), an ACK that moves SND.UNA also
        // carries the current window, even on an older sequence number.
        if seg.ack > snd_una_before || self.snd_wl1 < seg.seq || (self.snd_wl1 == seg.seq && self.snd_wl2 <= seg.ack) {
            self.snd_wnd = (seg.window as u32) << self.snd_wscale;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            if self.snd_wnd > 0 {
                if persisting && seg.ack == self.snd_una {
                    // The window opened without taking the probe byte: send
                    // from SND.UNA again rather than leave a hole behind it.
                    self.snd_nxt = self.snd_una;
                }
                self.clear(flag::PROBE_OUT);
                if !self.tx.is_empty() && self.flight() == 0 {
                    // The window reopened: the persist timer is no longer needed.
                    self.rto_at = Deadline::NEVER;
                }
            }
        }
        if self.snd_wnd == 0 && !self.tx.is_empty() && self.rto_at.is_never() {
            self.rto_at = Deadline::at((now + ms(self.rto_ms)).total_millis());
        }
        self.ecn_on_ack(now, pool, seg, flight_before);
        // The ACK carrying our SYN-ACK's echo also times the handshake.
        if self.has(flag::TS) {
            if let Some((tsval, _)) = seg.timestamp {
                if seg.seq <= self.rcv_nxt && (tsval.wrapping_sub(self.ts_recent) as i32) >= 0 {
                    self.ts_recent = tsval;
                }
            }
        }
    }

    /// RFC 9293 §3.10.7.3: the answer to our SYN.
    fn input_syn_sent(&mut self, now: Instant, cfg: &TcpConfig, seg: &Seg) -> Input {
        if seg.has_ack() && (seg.ack <= self.iss() || seg.ack > self.snd_max) {
            if seg.rst() {
                return Input::dropped(Drop::RstIgnored);
            }
            // RFC 9293 §3.10.7.3: <SEQ=SEG.ACK><CTL=RST>. A bare ACK is how
            // Linux answers a SYN that meets a TIME-WAIT of an earlier
            // connection on the tuple (a backend's, after a restart of ours
            // or another balancer's use of the port); our RST ends that
            // TIME-WAIT, so the SYN goes again at once rather than after
            // the 1 s retransmission timeout. Once per open: more such ACKs
            // get the RST only, so forged ones cannot make us a SYN source.
            let resend = !seg.syn() && !self.has(flag::SYN_RESENT);
            if resend {
                self.set(flag::SYN_RESENT);
                self.snd_nxt = self.iss();
            }
            return Input { rst: Some(seg.ack), syn_resent: resend, ..Input::default() };
        }
        if seg.rst() {
            if seg.has_ack() {
                self.state = State::Closed;
                return Input { events: ev::RESET, ..Input::default() };
            }
            return Input::dropped(Drop::RstIgnored);
        }
        if !seg.syn() {
            return Input::dropped(Drop::NoAck);
        }
        let offered_ts = self.has(flag::TS);
        let offered_sack = self.has(flag::SACK);
        let offered_ws = self.has(flag::WSCALE);
        let mut c = *cfg;
        c.timestamps &= offered_ts;
        c.sack &= offered_sack;
        if !offered_ws {
            c.window_scale = 0;
        }
        // The family was fixed by connect (flag::V6).
        self.negotiate(&c, seg, self.has(flag::V6));
        self.ecn_syn_ack(seg);
        self.set(flag::ACK_NOW);
        self.rto_at = Deadline::NEVER;
        self.retries = 0;
        if seg.has_ack() {
            self.snd_una = seg.ack;
            self.snd_wl2 = seg.ack;
            self.state = State::Established;
            self.reset_idle(now, cfg);
            if let (true, Some((_, tsecr))) = (self.has(flag::TS), seg.timestamp) {
                if let Some(r) = self.ts_rtt_us(now, tsecr) {
                    self.rtt_sample(cfg, r);
                }
            }
            return Input { events: ev::ESTABLISHED, ..Input::default() };
        }
        // Simultaneous open (RFC 9293 §3.5 figure 8): SYN-RECEIVED, send
        // SYN-ACK (without ECN: RFC 3168 does not define it here).
        self.clear(flag::ECN);
        self.state = State::SynReceived;
        self.snd_nxt = self.iss();
        Input::default()
    }
}

fn ms(v: u32) -> crate::time::Duration {
    crate::time::Duration::from_millis(v as u64)
}
