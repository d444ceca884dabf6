//! RACK (RFC 8985 §6): time-based loss detection. A segment is lost once a
//! segment sent after it was delivered and more than RACK.rtt + reo_wnd has
//! passed since it left, with no need for three duplicate ACKs.
//!
//! RACK needs each segment's transmit time. A connection keeps a bounded
//! log of transmissions in time order, [`XmitLog`], in its sender state:
//! consecutive segments sent in the same millisecond share one entry
//! (their order within it is their sequence order, RFC 8985 §6.2's
//! end_seq tie-break). When the log is full the two oldest entries merge,
//! taking the later time: the bytes are then judged lost later, never
//! earlier (counted, `rack_log_merged`).
//!
//! Lost bytes are not marked one by one: new data leaves in sequence
//! order, so what RACK finds lost among first transmissions is every
//! un-SACKed byte below a boundary, `lost_end`; a retransmission found
//! lost moves the retransmission point (RFC 6675 HighRxt) back to it.

use crate::wire::SeqNumber;

/// Transmissions a connection remembers.
pub const XMIT_LOG: usize = 16;

/// One or more segments sent in the same millisecond, in sequence order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Xmit {
    pub start: SeqNumber,
    pub end: SeqNumber,
    /// Transmit time, ms since the shard's epoch (wrapping).
    pub ms: u32,
    /// A retransmission (RFC 8985 §6.2 step 2 ignores its ACK when it may
    /// be the original's).
    pub retx: bool,
    /// Already found lost: not counted again.
    pub lost: bool,
}

/// The transmissions still in flight, oldest first (a ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XmitLog {
    e: [Xmit; XMIT_LOG],
    head: u8,
    n: u8,
}

impl Default for XmitLog {
    fn default() -> Self {
        XmitLog { e: [Xmit::default(); XMIT_LOG], head: 0, n: 0 }
    }
}

impl XmitLog {
    fn idx(&self, i: usize) -> usize {
        (self.head as usize + i) % XMIT_LOG
    }
    pub fn len(&self) -> usize {
        self.n as usize
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn get(&self, i: usize) -> Xmit {
        self.e[self.idx(i)]
    }
    pub fn get_mut(&mut self, i: usize) -> &mut Xmit {
        let k = self.idx(i);
        &mut self.e[k]
    }
    pub fn clear(&mut self) {
        self.n = 0;
    }

    /// Records `[start, end)` sent at `ms`. True when the log was full and
    /// its two oldest entries were merged.
    pub fn record(&mut self, start: SeqNumber, end: SeqNumber, ms: u32, retx: bool) -> bool {
        if start >= end {
            return false;
        }
        if self.n > 0 {
            let last = self.get_mut(self.n as usize - 1);
            if last.end == start && last.ms == ms && last.retx == retx && !last.lost {
                last.end = end;
                return false;
            }
        }
        let mut merged = false;
        if self.n as usize == XMIT_LOG {
            let a = self.get(0);
            let b = self.get_mut(1);
            b.start = b.start.min(a.start);
            b.end = b.end.max(a.end);
            b.retx |= a.retx;
            b.lost &= a.lost;
            self.head = ((self.head as usize + 1) % XMIT_LOG) as u8;
            self.n -= 1;
            merged = true;
        }
        let k = self.idx(self.n as usize);
        self.e[k] = Xmit { start, end, ms, retx, lost: false };
        self.n += 1;
        merged
    }

    /// SND.UNA reached `una`: forgets the oldest entries it covers.
    pub fn advance(&mut self, una: SeqNumber) {
        while self.n > 0 && self.get(0).end <= una {
            self.head = ((self.head as usize + 1) % XMIT_LOG) as u8;
            self.n -= 1;
        }
    }
}

/// RACK's per-connection variables (RFC 8985 §6.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rack {
    /// RACK.xmit_ts and RACK.end_seq of the most recently sent segment
    /// delivered so far; `valid` once there is one.
    pub xmit_ms: u32,
    pub end_seq: SeqNumber,
    pub valid: bool,
    /// RACK.rtt, ms.
    pub rtt_ms: u32,
    /// The minimum RTT seen (ms; `u32::MAX` when none, see `min_rtt`).
    pub min_rtt_ms: u32,
    pub have_min_rtt: bool,
    /// RACK.fack: the highest end of a delivered segment.
    pub fack: SeqNumber,
    /// RACK.reordering_seen.
    pub reordering_seen: bool,
    /// RFC 8985 §6.2 step 4: reo_wnd_mult, the round a D-SACK last raised
    /// it in (`dsack_round`, valid with `dsack_round_set`), and the
    /// recoveries left before it falls back (reo_wnd_persist).
    pub reo_wnd_mult: u8,
    pub dsack_round: SeqNumber,
    pub dsack_round_set: bool,
    pub reo_wnd_persist: u8,
}

/// RFC 8985 §6.2 step 2: `(t1, e1)` was sent after `(t2, e2)`.
pub fn sent_after(t1: u32, e1: SeqNumber, t2: u32, e2: SeqNumber) -> bool {
    let d = t1.wrapping_sub(t2) as i32;
    d > 0 || (d == 0 && e1 > e2)
}

impl Rack {
    /// RFC 8985 §6.2 step 2: a segment `[start, end)` of entry `x` was
    /// delivered at `now_ms`.
    pub fn on_delivered(&mut self, x: &Xmit, end: SeqNumber, now_ms: u32) {
        let rtt = now_ms.wrapping_sub(x.ms);
        if x.retx && (!self.have_min_rtt || rtt < self.min_rtt_ms) {
            // Possibly the original's ACK: no sample (Karn, RFC 8985 §6.2).
            return;
        }
        if !x.retx && (!self.have_min_rtt || rtt < self.min_rtt_ms) {
            self.min_rtt_ms = rtt;
            self.have_min_rtt = true;
        }
        // Step 3: delivered below a segment delivered before it, and not
        // a retransmission: the network reorders.
        if !x.retx && end < self.fack {
            self.reordering_seen = true;
        }
        self.fack = self.fack.max(end);
        if !self.valid || sent_after(x.ms, end, self.xmit_ms, self.end_seq) {
            self.rtt_ms = rtt;
            self.xmit_ms = x.ms;
            self.end_seq = end;
            self.valid = true;
        }
    }

    /// RFC 8985 §6.2 step 4: a D-SACK arrived (`snd_una`, `snd_max` now).
    /// reo_wnd grows by min_RTT/4 at most once per round trip.
    pub fn on_dsack(&mut self, snd_una: SeqNumber, snd_max: SeqNumber) {
        if self.dsack_round_set && snd_una < self.dsack_round {
            return;
        }
        self.dsack_round = snd_max;
        self.dsack_round_set = true;
        self.reo_wnd_mult = self.reo_wnd_mult.max(1).saturating_add(1);
        self.reo_wnd_persist = 16;
    }

    /// A recovery ended: after 16 without a D-SACK, reo_wnd_mult falls back.
    pub fn on_recovery_end(&mut self) {
        if self.reo_wnd_persist > 0 {
            self.reo_wnd_persist -= 1;
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    /// RFC 8985 §6.2 step 4, RACK.reo_wnd in ms: 0 while no reordering was
    /// seen and DupThresh segments are SACKed or recovery is on, else
    /// min(reo_wnd_mult * min_RTT / 4, SRTT), at least 1 ms (the clock's
    /// resolution).
    pub fn reo_wnd_ms(&self, in_recovery: bool, sacked_segs: u32, srtt_ms: u32) -> u32 {
        if !self.reordering_seen && (in_recovery || sacked_segs >= super::scoreboard::DUP_THRESH) {
            return 0;
        }
        let mult = self.reo_wnd_mult.max(1) as u32;
        let min_rtt = if self.have_min_rtt { self.min_rtt_ms } else { srtt_ms };
        mult.saturating_mul(min_rtt).div_ceil(4).min(srtt_ms.max(1)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: u32) -> SeqNumber {
        SeqNumber(v)
    }

    #[test]
    fn same_millisecond_segments_share_an_entry() {
        let mut log = XmitLog::default();
        log.record(q(0), q(100), 5, false);
        log.record(q(100), q(200), 5, false);
        log.record(q(200), q(300), 6, false);
        log.record(q(0), q(100), 6, true);
        assert_eq!(log.len(), 3);
        assert_eq!((log.get(0).start, log.get(0).end), (q(0), q(200)));
        log.advance(q(150));
        assert_eq!(log.len(), 3, "the oldest entry is still partly in flight");
        log.advance(q(200));
        assert_eq!(log.len(), 2);
    }

    #[test]
    fn a_full_log_merges_its_oldest_entries_with_the_later_time() {
        let mut log = XmitLog::default();
        for k in 0..XMIT_LOG as u32 {
            assert!(!log.record(q(100 * k), q(100 * k + 100), k, false));
        }
        assert!(log.record(q(5000), q(5100), 99, false));
        assert_eq!(log.len(), XMIT_LOG);
        assert_eq!((log.get(0).start, log.get(0).end, log.get(0).ms), (q(0), q(200), 1));
        assert_eq!(log.get(XMIT_LOG - 1).ms, 99);
    }

    #[test]
    fn sent_after_breaks_ties_by_end_seq() {
        assert!(sent_after(10, q(5), 9, q(100)));
        assert!(sent_after(10, q(200), 10, q(100)));
        assert!(!sent_after(10, q(100), 10, q(100)));
        assert!(!sent_after(9, q(500), 10, q(100)));
    }

    #[test]
    fn reo_wnd_follows_min_rtt_dsack_and_reordering() {
        let mut r = Rack { min_rtt_ms: 40, have_min_rtt: true, ..Rack::default() };
        assert_eq!(r.reo_wnd_ms(false, 1, 50), 10, "min_RTT / 4");
        assert_eq!(r.reo_wnd_ms(false, 3, 50), 0, "DupThresh SACKed and no reordering seen");
        assert_eq!(r.reo_wnd_ms(true, 1, 50), 0, "in recovery, no reordering seen");
        r.reordering_seen = true;
        assert_eq!(r.reo_wnd_ms(true, 3, 50), 10);
        r.on_dsack(q(0), q(1000));
        assert_eq!(r.reo_wnd_ms(true, 3, 50), 20, "a D-SACK raises the multiplier");
        r.on_dsack(q(10), q(1000));
        assert_eq!(r.reo_wnd_ms(true, 3, 50), 20, "at most once per round trip");
        r.on_dsack(q(1000), q(2000));
        assert_eq!(r.reo_wnd_ms(true, 3, 50), 30);
        assert_eq!(r.reo_wnd_ms(true, 3, 25), 25, "never above SRTT");
        for _ in 0..16 {
            r.on_recovery_end();
        }
        assert_eq!(r.reo_wnd_ms(true, 3, 50), 10, "16 recoveries later it falls back");
    }
}
