//! RACK (RFC 8985 §6): time-based loss detection. A segment is lost once a
//! segment sent after it was delivered and more than RACK.rtt + reo_wnd has
//! passed since it left, with no need for three duplicate ACKs.
//!
//! RACK needs each segment's transmit time, in microseconds as Linux keeps
//! it (`tcp_mstamp`): at a LAN's or a veth's RTT of tens of microseconds a
//! millisecond clock makes every comparison a tie, and a loss waits for the
//! next millisecond, tens of round trips. A connection keeps a bounded log
//! of transmissions in time order, [`XmitLog`], in its sender state:
//! consecutive segments sent within a granule (a sixteenth of the minimum
//! RTT, 1 µs to 1 ms) share one entry and its first time (their order
//! within it is their sequence order, RFC 8985 §6.2's end_seq tie-break),
//! so a segment may be judged lost up to a granule early. When the log is
//! full the two oldest entries merge, taking the later time (the bytes
//! are then judged lost later, never earlier; counted, `rack_log_merged`);
//! such an entry gives no RFC 6298 sample. Times are 32-bit: every comparison
//! is of differences, signed ones for "sent after", good for 35 minutes;
//! RACK's reference segment is dropped whenever nothing is in flight, so
//! no comparison spans a long stall.
//!
//! Lost bytes are not marked one by one: new data leaves in sequence
//! order, so what RACK finds lost among first transmissions is every
//! un-SACKed byte below a boundary, `lost_end`; a retransmission found
//! lost moves the retransmission point (RFC 6675 HighRxt) back to it.

use crate::wire::SeqNumber;

/// Transmissions a connection remembers.
pub const XMIT_LOG: usize = 16;

/// One or more segments sent within a granule, in sequence order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Xmit {
    pub start: SeqNumber,
    pub end: SeqNumber,
    /// Transmit time (of the first segment), µs since the shard's epoch
    /// (wrapping); of the later one when two were merged.
    pub us: u32,
    /// A retransmission (RFC 8985 §6.2 step 2 ignores its ACK when it may
    /// be the original's).
    pub retx: bool,
    /// Already found lost: not counted again.
    pub lost: bool,
    /// Two entries merged when the log was full: `us` is the later one's,
    /// so no RFC 6298 sample comes from it.
    pub merged: bool,
    /// Put back by `restore_front` with a time later than its own: its
    /// delivery is as ambiguous as a retransmission's for RTT and
    /// reordering (RFC 8985 §6.2 step 2), though it was sent once.
    pub restored: bool,
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

    /// Records `[start, end)` sent at `us`; a segment that continues the
    /// last entry less than `granule` µs after it joins it. True when the
    /// log was full and its two oldest entries were merged.
    pub fn record(&mut self, start: SeqNumber, end: SeqNumber, us: u32, retx: bool, granule: u32) -> bool {
        if start >= end {
            return false;
        }
        if self.n > 0 {
            let last = self.get_mut(self.n as usize - 1);
            if last.end == start && us.wrapping_sub(last.us) < granule.max(1) && last.retx == retx && !last.lost {
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
            b.restored |= a.restored;
            b.lost &= a.lost;
            b.merged = true;
            self.head = ((self.head as usize + 1) % XMIT_LOG) as u8;
            self.n -= 1;
            merged = true;
        }
        let k = self.idx(self.n as usize);
        self.e[k] = Xmit { start, end, us, retx, lost: false, merged: false, restored: false };
        self.n += 1;
        merged
    }

    /// An RTT sample in µs for an ACK moving SND.UNA from `old_una` to
    /// `una` at `now_us`, from our own send times (RFC 6298 §3, as Linux's
    /// `tcp_clean_rtx_queue`): the transmission of the oldest byte it newly
    /// acknowledges. None when any entry holding those bytes is a
    /// retransmission (Karn; the log is in send order, so a resend sits
    /// after newer data and every entry is looked at) or merged, or when
    /// no entry holds `old_una`.
    pub fn rtt_sample_us(&self, old_una: SeqNumber, una: SeqNumber, now_us: u32) -> Option<u32> {
        let mut oldest = None;
        for i in 0..self.len() {
            let x = self.get(i);
            if x.end <= old_una || x.start >= una {
                continue;
            }
            if x.retx || x.merged {
                return None;
            }
            if x.start <= old_una {
                oldest = Some(x.us);
            }
        }
        oldest.map(|t| now_us.wrapping_sub(t))
    }

    /// Puts `[start, end)` before every entry with the time `us`, which is
    /// no earlier than its bytes left (they precede everything logged), and
    /// marked merged: no RTT sample comes from it. When the log is full it
    /// joins the oldest entry instead, which keeps that one's later time;
    /// true then (counted as a merge).
    pub fn restore_front(&mut self, start: SeqNumber, end: SeqNumber, us: u32) -> bool {
        if start >= end {
            return false;
        }
        if self.n as usize == XMIT_LOG {
            let f = self.get_mut(0);
            f.start = f.start.min(start);
            f.end = f.end.max(end);
            f.merged = true;
            f.restored = true;
            return true;
        }
        self.head = ((self.head as usize + XMIT_LOG - 1) % XMIT_LOG) as u8;
        self.n += 1;
        *self.get_mut(0) = Xmit { start, end, us, retx: false, lost: false, merged: true, restored: true };
        false
    }

    /// `[start, end)`, just recorded, did not leave after all (the TX ring
    /// was full): the last entry gives it back.
    pub fn unrecord(&mut self, start: SeqNumber, end: SeqNumber) {
        if self.n == 0 {
            return;
        }
        let last = self.get_mut(self.n as usize - 1);
        if last.end != end || last.start > start {
            return;
        }
        if last.start == start {
            self.n -= 1;
        } else {
            last.end = start;
        }
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
    /// RACK.xmit_ts (µs) and RACK.end_seq of the most recently sent
    /// segment delivered so far; `valid` once there is one.
    pub xmit_us: u32,
    pub end_seq: SeqNumber,
    pub valid: bool,
    /// RACK.rtt, µs.
    pub rtt_us: u32,
    /// The minimum RTT seen, µs (meaningful with `have_min_rtt`).
    pub min_rtt_us: u32,
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
    /// The log's granule: a sixteenth of the minimum RTT (or of SRTT,
    /// `srtt_us`, before a sample), from 1 µs to 1 ms; 1 ms with neither.
    pub fn granule_us(&self, srtt_us: u32) -> u32 {
        let base = if self.have_min_rtt {
            self.min_rtt_us
        } else if srtt_us > 0 {
            srtt_us
        } else {
            16_000
        };
        (base / 16).clamp(1, 1000)
    }

    /// RFC 8985 §6.2 step 2: a segment `[start, end)` of entry `x` was
    /// delivered at `now_us`.
    pub fn on_delivered(&mut self, x: &Xmit, end: SeqNumber, now_us: u32) {
        let rtt = now_us.wrapping_sub(x.us);
        let ambiguous = x.retx || x.restored;
        if ambiguous && (!self.have_min_rtt || rtt < self.min_rtt_us) {
            // Possibly the original's ACK: no sample (Karn, RFC 8985 §6.2).
            return;
        }
        // A merged entry's time is its later half's, so its RTT may be short
        // by the span merged; taken all the same (left out, slow start's
        // losses at 100 ms were found later: 79.7 → 57.1 Mbit/s in
        // `sim-goodput`).
        if !ambiguous && (!self.have_min_rtt || rtt < self.min_rtt_us) {
            self.min_rtt_us = rtt;
            self.have_min_rtt = true;
        }
        // Step 3: delivered below a segment delivered before it, and not
        // a retransmission: the network reorders.
        if !ambiguous && end < self.fack {
            self.reordering_seen = true;
        }
        self.fack = self.fack.max(end);
        if !self.valid || sent_after(x.us, end, self.xmit_us, self.end_seq) {
            self.rtt_us = rtt;
            self.xmit_us = x.us;
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

    /// RFC 8985 §6.2 step 4, RACK.reo_wnd in µs: 0 while no reordering was
    /// seen and DupThresh segments are SACKed or recovery is on, else
    /// min(reo_wnd_mult * min_RTT / 4, SRTT), at least 1 µs.
    pub fn reo_wnd_us(&self, in_recovery: bool, sacked_segs: u32, srtt_us: u32) -> u32 {
        if !self.reordering_seen && (in_recovery || sacked_segs >= super::scoreboard::DUP_THRESH) {
            return 0;
        }
        let mult = self.reo_wnd_mult.max(1) as u32;
        let min_rtt = if self.have_min_rtt { self.min_rtt_us } else { srtt_us };
        mult.saturating_mul(min_rtt).div_ceil(4).min(srtt_us.max(1)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: u32) -> SeqNumber {
        SeqNumber(v)
    }

    #[test]
    fn segments_sent_within_a_granule_share_an_entry() {
        let mut log = XmitLog::default();
        log.record(q(0), q(100), 5, false, 1);
        log.record(q(100), q(200), 5, false, 1);
        log.record(q(200), q(300), 6, false, 1);
        log.record(q(0), q(100), 6, true, 1);
        assert_eq!(log.len(), 3);
        assert_eq!((log.get(0).start, log.get(0).end), (q(0), q(200)));
        log.advance(q(150));
        assert_eq!(log.len(), 3, "the oldest entry is still partly in flight");
        log.advance(q(200));
        assert_eq!(log.len(), 2);
        // A granule of 10 µs: 3 µs later joins (keeping the first time),
        // 10 µs after the entry began starts a new one.
        let mut log = XmitLog::default();
        log.record(q(0), q(100), 1000, false, 10);
        log.record(q(100), q(200), 1003, false, 10);
        log.record(q(200), q(300), 1010, false, 10);
        assert_eq!(log.len(), 2);
        assert_eq!((log.get(0).end, log.get(0).us, log.get(1).us), (q(200), 1000, 1010));
    }

    #[test]
    fn rtt_samples_come_from_the_oldest_newly_acknowledged_transmission() {
        let mut log = XmitLog::default();
        log.record(q(0), q(100), 1000, false, 1);
        log.record(q(100), q(200), 1010, false, 1);
        log.record(q(200), q(300), 1020, true, 1);
        assert_eq!(log.rtt_sample_us(q(0), q(100), 1050), Some(50));
        assert_eq!(log.rtt_sample_us(q(50), q(200), 1050), Some(50), "the oldest acknowledged");
        assert_eq!(log.rtt_sample_us(q(100), q(200), 1050), Some(40));
        assert_eq!(log.rtt_sample_us(q(100), q(300), 1050), None, "a retransmission: Karn");
        // A resend of the first segment, logged after newer data: the ACK it
        // brings gives no sample, though the entry before it is not a resend.
        let mut resent = XmitLog::default();
        resent.record(q(0), q(100), 1000, false, 1);
        resent.record(q(100), q(200), 1010, false, 1);
        resent.record(q(0), q(100), 1030, true, 1);
        assert_eq!(resent.rtt_sample_us(q(0), q(100), 1050), None, "Karn, in send order");
        log.advance(q(100));
        assert_eq!(log.rtt_sample_us(q(0), q(200), 1050), None, "not logged from the old SND.UNA");
        let mut full = XmitLog::default();
        for k in 0..=XMIT_LOG as u32 {
            full.record(q(100 * k), q(100 * k + 100), k, false, 1);
        }
        assert_eq!(full.rtt_sample_us(q(0), q(100), 50), None, "merged: the time is the later entry's");
        assert_eq!(full.rtt_sample_us(q(200), q(300), 50), Some(48));
    }

    #[test]
    fn a_segment_that_did_not_leave_is_taken_back() {
        let mut log = XmitLog::default();
        log.record(q(0), q(100), 1000, false, 10);
        log.record(q(100), q(200), 1001, false, 10);
        log.unrecord(q(100), q(200));
        assert_eq!((log.len(), log.get(0).end), (1, q(100)), "trimmed from the joined entry");
        log.record(q(100), q(200), 1100, false, 10);
        log.unrecord(q(100), q(200));
        assert_eq!(log.len(), 1, "its own entry removed");
        log.unrecord(q(50), q(60));
        assert_eq!((log.len(), log.get(0).end), (1, q(100)), "not the last: left alone");
    }

    #[test]
    fn times_wrap() {
        let mut log = XmitLog::default();
        log.record(q(0), q(100), u32::MAX - 2, false, 10);
        log.record(q(100), q(200), 3, false, 10);
        assert_eq!(log.len(), 1, "6 µs apart across the wrap");
        assert!(sent_after(3, q(200), u32::MAX - 2, q(100)));
        let mut r = Rack::default();
        r.on_delivered(&log.get(0), q(200), 40);
        assert_eq!(r.rtt_us, 43);
    }

    #[test]
    fn the_granule_is_a_sixteenth_of_the_minimum_rtt() {
        let mut r = Rack::default();
        assert_eq!(r.granule_us(0), 1000, "nothing known");
        assert_eq!(r.granule_us(320), 20, "SRTT before a sample");
        r.min_rtt_us = 40;
        r.have_min_rtt = true;
        assert_eq!(r.granule_us(320), 2);
        r.min_rtt_us = 8;
        assert_eq!(r.granule_us(320), 1);
        r.min_rtt_us = 100_000;
        assert_eq!(r.granule_us(320), 1000);
    }

    #[test]
    fn a_full_log_merges_its_oldest_entries_with_the_later_time() {
        let mut log = XmitLog::default();
        for k in 0..XMIT_LOG as u32 {
            assert!(!log.record(q(100 * k), q(100 * k + 100), k, false, 1));
        }
        assert!(log.record(q(5000), q(5100), 99, false, 1));
        assert_eq!(log.len(), XMIT_LOG);
        assert_eq!((log.get(0).start, log.get(0).end, log.get(0).us), (q(0), q(200), 1));
        assert_eq!(log.get(XMIT_LOG - 1).us, 99);
    }

    #[test]
    fn bytes_restored_at_the_front_give_no_sample_and_an_ambiguous_delivery() {
        let mut log = XmitLog::default();
        log.record(q(1000), q(1100), 50, false, 1);
        assert!(!log.restore_front(q(100), q(1000), 40));
        assert_eq!(log.len(), 2);
        let x = log.get(0);
        assert_eq!((x.start, x.end, x.us, x.restored, x.merged, x.retx), (q(100), q(1000), 40, true, true, false));
        assert_eq!(log.rtt_sample_us(q(100), q(1000), 90), None, "its time is not its own");
        // A delivery shorter than min_RTT may be of an earlier copy.
        let mut r = Rack { min_rtt_us: 30, have_min_rtt: true, ..Rack::default() };
        r.on_delivered(&x, q(1000), 60);
        assert!(!r.valid);
        r.on_delivered(&x, q(1000), 100);
        assert!(r.valid && r.min_rtt_us == 30, "taken, but no min_RTT from it");
        // Nothing to restore; a full log takes the bytes into its oldest entry.
        assert!(!log.restore_front(q(5), q(5), 1));
        let mut full = XmitLog::default();
        for k in 0..XMIT_LOG as u32 {
            full.record(q(1000 + 100 * k), q(1100 + 100 * k), 10 + k, false, 1);
        }
        assert!(full.restore_front(q(100), q(1000), 5));
        let f = full.get(0);
        assert_eq!((f.start, f.end, f.us, f.restored), (q(100), q(1100), 10, true));
        assert_eq!(full.len(), XMIT_LOG);
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
        let mut r = Rack { min_rtt_us: 40, have_min_rtt: true, ..Rack::default() };
        assert_eq!(r.reo_wnd_us(false, 1, 50), 10, "min_RTT / 4");
        assert_eq!(r.reo_wnd_us(false, 3, 50), 0, "DupThresh SACKed and no reordering seen");
        assert_eq!(r.reo_wnd_us(true, 1, 50), 0, "in recovery, no reordering seen");
        r.reordering_seen = true;
        assert_eq!(r.reo_wnd_us(true, 3, 50), 10);
        r.on_dsack(q(0), q(1000));
        assert_eq!(r.reo_wnd_us(true, 3, 50), 20, "a D-SACK raises the multiplier");
        r.on_dsack(q(10), q(1000));
        assert_eq!(r.reo_wnd_us(true, 3, 50), 20, "at most once per round trip");
        r.on_dsack(q(1000), q(2000));
        assert_eq!(r.reo_wnd_us(true, 3, 50), 30);
        assert_eq!(r.reo_wnd_us(true, 3, 25), 25, "never above SRTT");
        for _ in 0..16 {
            r.on_recovery_end();
        }
        assert_eq!(r.reo_wnd_us(true, 3, 50), 10, "16 recoveries later it falls back");
    }

    mod karn {
        //! The log's RTT samples against a model that remembers every
        //! transmission of every byte: a sample is never taken across a
        //! retransmission (Karn), and it is never shorter than the true
        //! RTT of the oldest byte acknowledged nor longer by a granule or
        //! more.
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            /// New data of this many bytes, this many µs after the last op.
            Send(u32, u32),
            /// Resend this many bytes from a fraction (of 256) of the flight.
            Resend(u8, u32, u32),
            /// Acknowledge a fraction (of 255) of what is in flight.
            Ack(u8, u32),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (1u32..3000, 0u32..40).prop_map(|(n, dt)| Op::Send(n, dt)),
                1 => (any::<u8>(), 1u32..1500, 0u32..40).prop_map(|(f, n, dt)| Op::Resend(f, n, dt)),
                3 => (1u8..=255, 1u32..200).prop_map(|(f, dt)| Op::Ack(f, dt)),
            ]
        }

        proptest! {
            #[test]
            fn samples_obey_karn_and_bound_the_true_rtt(
                ops in proptest::collection::vec(op(), 1..200),
                granule in 1u32..50,
                base in any::<u32>(),
            ) {
                let mut log = XmitLog::default();
                // Per byte offset: (first send time, resent since).
                let mut sent: Vec<(u32, bool)> = Vec::new();
                let (mut una, mut now) = (0usize, base);
                for op in ops {
                    match op {
                        Op::Send(n, dt) => {
                            now = now.wrapping_add(dt);
                            let start = sent.len();
                            sent.extend((0..n).map(|_| (now, false)));
                            log.record(q(start as u32), q(sent.len() as u32), now, false, granule);
                        }
                        Op::Resend(f, n, dt) if sent.len() > una => {
                            now = now.wrapping_add(dt);
                            let start = una + (sent.len() - una) * f as usize / 256;
                            let end = (start + n as usize).min(sent.len());
                            for b in &mut sent[start..end] {
                                b.1 = true;
                            }
                            log.record(q(start as u32), q(end as u32), now, true, granule);
                        }
                        Op::Ack(f, dt) if sent.len() > una => {
                            now = now.wrapping_add(dt);
                            let new_una = una + ((sent.len() - una) * f as usize).div_ceil(255).max(1);
                            let new_una = new_una.min(sent.len());
                            if let Some(r) = log.rtt_sample_us(q(una as u32), q(new_una as u32), now) {
                                prop_assert!(sent[una..new_una].iter().all(|b| !b.1), "a sample across a resend");
                                let truth = now.wrapping_sub(sent[una].0);
                                prop_assert!(r >= truth, "short: {} < {}", r, truth);
                                prop_assert!(r < truth + granule, "long: {} for {}", r, truth);
                            }
                            una = new_una;
                            log.advance(q(una as u32));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
