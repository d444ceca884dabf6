//! NewReno (RFC 5681 §3.1, with RFC 6582's ssthresh): slow start and
//! congestion avoidance by bytes acknowledged (RFC 3465), no state of its
//! own, so it also serves connections that found no sender slot.
//!
//! - Slow start: cwnd += min(acked, L), L = 2*SMSS (RFC 3465 §2.2: a
//!   delayed ACK covers two segments, and with L = 1*SMSS slow start would
//!   grow by only half per round trip; Linux counts every segment acked).
//! - Congestion avoidance: RFC 3465 §2.1 byte counting: one SMSS each time
//!   a window's worth of bytes has been acknowledged. A connection without
//!   a sender slot has nowhere to keep the count and uses RFC 5681
//!   equation 3 (cwnd += SMSS*SMSS/cwnd per ACK) instead ([`NewRenoNoState`]).
//! - A congestion event: ssthresh = max(FlightSize / 2, 2*SMSS) (RFC 5681
//!   equation 4); cwnd = ssthresh, the window recovery (PRR, RFC 6937, or
//!   RFC 6582's) works from.
//! - RTO: the same ssthresh, cwnd = 1 SMSS (RFC 5681 §3.1 equation 5).

use super::{Ack, CongestionControl, Window};

/// RFC 3465 §2.2: the most slow start grows per ACK, in segments.
pub const ABC_L: u32 = 2;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewReno {
    /// RFC 3465's bytes_acked, in congestion avoidance.
    pub bytes_acked: u32,
}

/// NewReno with no state: the fallback of a connection without a sender slot.
pub struct NewRenoNoState;

/// RFC 5681 slow start by bytes acknowledged, at most `ABC_L` segments per ACK.
#[inline]
pub fn slow_start(w: &mut Window, acked: u32) -> u32 {
    let inc = acked.min(ABC_L * w.mss);
    w.cwnd = w.cwnd.saturating_add(inc);
    inc
}

/// RFC 5681 equation 4.
pub fn half_flight(w: &Window, flight: u32) -> u32 {
    (flight / 2).max(2 * w.mss)
}

impl CongestionControl for NewReno {
    #[inline]
    fn on_ack(&mut self, w: &mut Window, ack: &Ack) {
        if !ack.cwnd_limited(w) {
            return;
        }
        if w.cwnd < w.ssthresh {
            slow_start(w, ack.acked);
            return;
        }
        self.bytes_acked = self.bytes_acked.saturating_add(ack.acked);
        if self.bytes_acked >= w.cwnd {
            self.bytes_acked -= w.cwnd;
            w.cwnd = w.cwnd.saturating_add(w.mss);
        }
    }
    fn on_congestion_event(&mut self, w: &mut Window, now_us: u64, flight: u32) {
        self.bytes_acked = 0;
        NewRenoNoState.on_congestion_event(w, now_us, flight);
    }
    fn on_rto(&mut self, w: &mut Window, flight: u32) {
        self.bytes_acked = 0;
        NewRenoNoState.on_rto(w, flight);
    }
}

impl CongestionControl for NewRenoNoState {
    #[inline]
    fn on_ack(&mut self, w: &mut Window, ack: &Ack) {
        if !ack.cwnd_limited(w) {
            return;
        }
        if w.cwnd < w.ssthresh {
            slow_start(w, ack.acked);
        } else {
            // Rounded to the nearest byte: rounding down would lose up to
            // half the growth at large windows.
            let cwnd = w.cwnd.max(1) as u64;
            let inc = ((w.mss as u64 * w.mss as u64 + cwnd / 2) / cwnd).max(1);
            w.cwnd = w.cwnd.saturating_add(inc as u32);
        }
    }
    fn on_congestion_event(&mut self, w: &mut Window, _now_us: u64, flight: u32) {
        w.ssthresh = half_flight(w, flight);
        w.cwnd = w.ssthresh;
    }
    fn on_rto(&mut self, w: &mut Window, flight: u32) {
        w.ssthresh = half_flight(w, flight);
        w.cwnd = w.mss;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(w: &Window, acked: u32) -> Ack {
        Ack { now_us: 0, acked, flight_before: w.cwnd, srtt_us: 0 }
    }

    #[test]
    fn congestion_avoidance_adds_one_mss_per_window() {
        let mut cc = NewReno::default();
        let mut w = Window { cwnd: 100 * 1000, ssthresh: 50_000, mss: 1000 };
        for round in 1..=5 {
            let start = w.cwnd;
            for _ in 0..start / 1000 {
                let a = ack(&w, 1000);
                cc.on_ack(&mut w, &a);
            }
            assert_eq!(w.cwnd, 100_000 + round * 1000);
        }
        // Without a slot, equation 3: about one MSS per window too.
        let mut w = Window { cwnd: 100 * 1000, ssthresh: 50_000, mss: 1000 };
        for _ in 0..100 {
            let a = ack(&w, 1000);
            NewRenoNoState.on_ack(&mut w, &a);
        }
        assert!((100_950..=101_050).contains(&w.cwnd), "{}", w.cwnd);
    }

    #[test]
    fn slow_start_counts_bytes_up_to_two_segments_per_ack() {
        let mut w = Window { cwnd: 10_000, ssthresh: u32::MAX, mss: 1000 };
        let a = ack(&w, 5000);
        NewReno::default().on_ack(&mut w, &a);
        assert_eq!(w.cwnd, 12_000);
        // An application-limited sender does not grow.
        NewReno::default().on_ack(&mut w, &Ack { flight_before: 2000, ..a });
        assert_eq!(w.cwnd, 12_000);
    }

    #[test]
    fn loss_halves_the_flight() {
        let mut w = Window { cwnd: 40_000, ssthresh: u32::MAX, mss: 1000 };
        NewReno::default().on_congestion_event(&mut w, 0, 30_000);
        assert_eq!((w.ssthresh, w.cwnd), (15_000, 15_000));
        NewReno::default().on_rto(&mut w, 3000);
        assert_eq!((w.ssthresh, w.cwnd), (2000, 1000));
    }
}
