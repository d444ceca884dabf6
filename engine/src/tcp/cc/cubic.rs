//! CUBIC (RFC 9438) with HyStart++ (RFC 9406) for leaving slow start.
//!
//! Windows are in bytes and times in microseconds, in integers: the
//! per-ACK path is a few multiplications (one in 128 bits) and one
//! division; the cube root runs once per congestion epoch.
//!
//! - §4.2: W_cubic(t) = C*(t-K)^3 + W_max, C = 0.4 segments/s^3, with
//!   K = cbrt((W_max - cwnd_epoch)/C); per ACK the target is
//!   W_cubic(t+RTT) clamped to [cwnd, 1.5*cwnd], and cwnd grows by
//!   (target - cwnd)/cwnd per segment acknowledged: concave below W_max
//!   (§4.4), convex above it (§4.5).
//! - §4.3: the Reno-friendly estimate W_est grows by α = 3(1-β)/(1+β) per
//!   window (1 once it reached the window before the last reduction);
//!   while W_cubic(t) < W_est, cwnd follows W_est.
//! - §4.6: β = 0.7; ssthresh = cwnd*β. RFC 9438 writes flight size;
//!   cwnd is what Linux and Windows use, robust when the application
//!   leaves part of the window unused (and this sender grows cwnd only
//!   when it was used: RFC 9438 §5.8).
//! - §4.7 fast convergence: a loss below the previous W_max lowers W_max
//!   to cwnd*(1+β)/2.
//! - §4.8: after an RTO, ssthresh as in §4.6, cwnd one segment (RFC 5681),
//!   and the next epoch starts with K = 0 and W_max = cwnd at its start.
//! - §5.8: after idle the epoch restarts (its time excludes the pause).
//!
//! HyStart++ runs in the initial slow start only (RFC 9406 §4.3: while
//! ssthresh is still unset): per round (an RTT, up to `window_end`) the
//! minimum RTT of at least N_RTT_SAMPLE samples; a round whose minimum
//! exceeds the last one's by RttThresh = clamp(last/8, 4 ms, 16 ms)
//! enters Conservative Slow Start (growth / CSS_GROWTH_DIVISOR); an RTT
//! back below the baseline resumes slow start; CSS_ROUNDS rounds of CSS
//! end slow start (ssthresh = cwnd). RTT samples come one per ACK with
//! timestamps (RFC 7323); without them, one per round (Karn), too few for
//! the test, and slow start ends at the first loss as in RFC 5681.

use super::newreno::slow_start;
use super::{Ack, CongestionControl, Window};
use crate::wire::SeqNumber;

/// β_cubic = 7/10.
const BETA_NUM: u64 = 7;
const BETA_DEN: u64 = 10;
/// C = 4/10 segments per second cubed.
const C_NUM: u128 = 4;
const C_DEN: u128 = 10;
/// Microseconds per second, cubed.
const US3: u128 = 1_000_000u128 * 1_000_000 * 1_000_000;
/// W_est is kept in bytes << this, so the per-ACK fractions add up.
const EST_SHIFT: u32 = 10;
/// The cubic curve is evaluated at most this far (µs) from K: beyond it
/// the window is past any u32 anyway.
const MAX_T_US: i64 = 1 << 36;
/// The curve's time unit per ACK: 2^-16 s (15 µs), so that the cube and
/// its scaling are multiplications and shifts (an i128 division costs tens
/// of nanoseconds), as Linux's BICTCP_HZ does with 2^-10 s.
const HZ_SHIFT: u32 = 16;

/// RFC 9406 §4.2 constants.
pub const MIN_RTT_THRESH_US: u32 = 4_000;
pub const MAX_RTT_THRESH_US: u32 = 16_000;
pub const MIN_RTT_DIVISOR: u32 = 8;
pub const N_RTT_SAMPLE: u8 = 8;
pub const CSS_GROWTH_DIVISOR: u32 = 4;
pub const CSS_ROUNDS: u8 = 5;

/// CUBIC's state for one connection (in its sender slot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cubic {
    /// A congestion-avoidance epoch is running (since `epoch_us`).
    pub in_epoch: bool,
    pub epoch_us: u64,
    /// K, in µs.
    pub k_us: u64,
    /// W_max, bytes; 0: none known (a new slot, or after an RTO).
    pub w_max: u32,
    /// cwnd at the last reduction (RFC 9438 §4.3's cwnd_prior).
    pub cwnd_prior: u32,
    /// W_est, bytes << EST_SHIFT.
    pub w_est: u64,
    pub hystart: HyStart,
}

/// The integer cube root: the largest r with r^3 <= x.
pub fn icbrt(x: u128) -> u64 {
    // r < 2^43 for any x < 2^128.
    let (mut lo, mut hi) = (0u64, 1u64 << 43);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let m = mid as u128;
        if m.checked_mul(m).and_then(|m2| m2.checked_mul(m)).is_some_and(|c| c <= x) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

impl Cubic {
    /// RFC 9438 equation 2, in µs: the time the curve takes from
    /// `cwnd_epoch` back up to W_max.
    pub fn k_us(w_max: u32, cwnd_epoch: u32, mss: u32) -> u64 {
        let diff = w_max.saturating_sub(cwnd_epoch) as u128;
        icbrt(diff * C_DEN * US3 / (C_NUM * mss.max(1) as u128))
    }

    /// RFC 9438 equation 1 at `t_us` since the epoch began, in bytes.
    pub fn w_cubic(&self, t_us: u64, mss: u32) -> u32 {
        let d_us = (t_us.min(MAX_T_US as u64) as i64 - self.k_us as i64).clamp(-MAX_T_US, MAX_T_US);
        // In 2^-16 s, at most 2^33 (19 hours): the product fits i128.
        let d = ((d_us << HZ_SHIFT) / 1_000_000) as i128;
        let cube = d * d * d;
        let scaled = (C_NUM as i128 * mss as i128 * cube) >> (3 * HZ_SHIFT);
        let delta = scaled.clamp(i64::MIN as i128, i64::MAX as i128) as i64 / C_DEN as i64;
        (self.w_max as i64).saturating_add(delta).clamp(0, u32::MAX as i64) as u32
    }

    fn start_epoch(&mut self, w: &Window, now_us: u64) {
        self.in_epoch = true;
        self.epoch_us = now_us;
        if self.w_max > w.cwnd {
            self.k_us = Self::k_us(self.w_max, w.cwnd, w.mss);
        } else {
            // After an RTO or an idle restart, or past the old maximum:
            // the curve starts at its plateau (§4.8).
            self.k_us = 0;
            self.w_max = w.cwnd;
        }
        self.w_est = (w.cwnd as u64) << EST_SHIFT;
    }

    /// §4.6 and §4.7: the reduction at a congestion event.
    fn reduce(&mut self, w: &mut Window) {
        self.w_max =
            if w.cwnd < self.w_max { (w.cwnd as u64 * (BETA_DEN + BETA_NUM) / (2 * BETA_DEN)) as u32 } else { w.cwnd };
        self.cwnd_prior = w.cwnd;
        w.ssthresh = ((w.cwnd as u64 * BETA_NUM / BETA_DEN) as u32).max(2 * w.mss);
        self.in_epoch = false;
        self.hystart.done = true;
    }

    /// §4.2-4.5: one ACK in congestion avoidance.
    fn avoid(&mut self, w: &mut Window, ack: &Ack) {
        if !self.in_epoch {
            self.start_epoch(w, ack.now_us);
        }
        let t = ack.now_us.saturating_sub(self.epoch_us);
        let cwnd = w.cwnd.max(1) as u64;
        // §4.3: the window Reno would have.
        let (a_num, a_den) = if self.w_est >> EST_SHIFT >= self.cwnd_prior as u64 {
            (1, 1)
        } else {
            (3 * (BETA_DEN - BETA_NUM), BETA_DEN + BETA_NUM)
        };
        self.w_est += ((a_num * ack.acked as u64 * w.mss as u64) << EST_SHIFT) / (a_den * cwnd);
        let w_est = (self.w_est >> EST_SHIFT).min(u32::MAX as u64) as u32;
        if self.w_cubic(t, w.mss) < w_est {
            w.cwnd = w.cwnd.max(w_est);
            return;
        }
        let target = (self.w_cubic(t + ack.srtt_us as u64, w.mss) as u64).clamp(cwnd, cwnd * 3 / 2);
        let inc = (target - cwnd) * ack.acked as u64 / cwnd;
        w.cwnd = (cwnd + inc).min(u32::MAX as u64) as u32;
    }
}

impl CongestionControl for Cubic {
    #[inline]
    fn on_ack(&mut self, w: &mut Window, ack: &Ack) {
        if !ack.cwnd_limited(w) {
            return;
        }
        if w.cwnd < w.ssthresh {
            if self.hystart.done || w.ssthresh != u32::MAX {
                slow_start(w, ack.acked);
            } else {
                self.hystart.on_ack(w, ack.acked);
            }
            return;
        }
        self.avoid(w, ack);
    }
    fn on_rtt_sample(&mut self, w: &mut Window, rtt_us: u32, snd_una: SeqNumber, snd_nxt: SeqNumber) {
        if w.cwnd < w.ssthresh && w.ssthresh == u32::MAX && !self.hystart.done {
            self.hystart.on_rtt(rtt_us, snd_una, snd_nxt);
        }
    }
    fn on_congestion_event(&mut self, w: &mut Window, _now_us: u64, _flight: u32) {
        self.reduce(w);
        w.cwnd = w.ssthresh;
    }
    fn on_rto(&mut self, w: &mut Window, _flight: u32) {
        self.reduce(w);
        self.w_max = 0;
        w.cwnd = w.mss;
    }
    fn on_idle_restart(&mut self, w: &mut Window) {
        super::idle_restart(w);
        self.in_epoch = false;
    }
}

/// HyStart++ (RFC 9406 §4.2) state: rounds and their minimum RTTs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HyStart {
    /// Initial slow start is over (a loss, or CSS ran its rounds).
    pub done: bool,
    /// A round is being measured (`window_end` is set).
    pub started: bool,
    /// In Conservative Slow Start, for `css_rounds` rounds so far.
    pub css: bool,
    pub css_rounds: u8,
    pub samples: u8,
    pub window_end: SeqNumber,
    /// Minimum RTTs (µs) of the last and the current round; 0: none.
    pub last_min: u32,
    pub cur_min: u32,
    pub css_baseline: u32,
}

impl HyStart {
    /// An RTT sample from the ACK of `snd_una`: a round ends when the ACK
    /// passes the SND.NXT recorded at its start.
    pub fn on_rtt(&mut self, rtt_us: u32, snd_una: SeqNumber, snd_nxt: SeqNumber) {
        if !self.started || snd_una >= self.window_end {
            if self.started && self.css {
                self.css_rounds += 1;
            }
            self.started = true;
            self.last_min = self.cur_min;
            self.cur_min = 0;
            self.samples = 0;
            self.window_end = snd_nxt;
        }
        let r = rtt_us.max(1);
        self.cur_min = if self.cur_min == 0 { r } else { self.cur_min.min(r) };
        self.samples = self.samples.saturating_add(1);
    }

    /// Slow-start growth for one ACK, and the RTT tests (RFC 9406 §4.2).
    pub fn on_ack(&mut self, w: &mut Window, acked: u32) {
        let enough = self.samples >= N_RTT_SAMPLE && self.cur_min != 0;
        if !self.css {
            slow_start(w, acked);
            if enough && self.last_min != 0 {
                let thresh = (self.last_min / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH_US, MAX_RTT_THRESH_US);
                if self.cur_min >= self.last_min.saturating_add(thresh) {
                    self.css = true;
                    self.css_rounds = 0;
                    self.css_baseline = self.cur_min;
                }
            }
            return;
        }
        // Conservative Slow Start.
        let before = w.cwnd;
        slow_start(w, acked);
        w.cwnd = before + (w.cwnd - before) / CSS_GROWTH_DIVISOR;
        if enough && self.cur_min < self.css_baseline {
            // The RTT rise was not lasting: back to slow start.
            self.css = false;
            self.css_baseline = 0;
        } else if self.css_rounds >= CSS_ROUNDS {
            w.ssthresh = w.cwnd;
            self.done = true;
            self.css = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn integer_cube_root() {
        for x in [0u128, 1, 7, 8, 26, 27, 1_000_000, 999_999, u64::MAX as u128, u128::MAX] {
            let r = icbrt(x) as u128;
            let cube = |v: u128| v.checked_mul(v).and_then(|v2| v2.checked_mul(v));
            assert!(cube(r).is_some_and(|c| c <= x) && cube(r + 1).is_none_or(|c| c > x), "{x}: {r}");
        }
    }

    #[test]
    fn k_matches_rfc_9438_equation_2() {
        // W_max = 100 segments, cwnd_epoch = 70: K = cbrt(30 / 0.4) s.
        let k = Cubic::k_us(100 * MSS, 70 * MSS, MSS);
        let want = (30.0f64 / 0.4).cbrt() * 1e6;
        assert!((k as f64 - want).abs() < 2.0, "{k} vs {want}");
        // A window cut to β·W_max: K = cbrt(W_max·(1-β)/C).
        let k = Cubic::k_us(1000 * MSS, 700 * MSS, MSS);
        let want = (1000.0f64 * 0.3 / 0.4).cbrt() * 1e6;
        assert!((k as f64 - want).abs() < 2.0, "{k} vs {want}");
    }

    #[test]
    fn w_cubic_matches_rfc_9438_equation_1() {
        let mut c = Cubic { w_max: 100 * MSS, ..Cubic::default() };
        c.k_us = Cubic::k_us(100 * MSS, 70 * MSS, MSS);
        let k = c.k_us as f64 / 1e6;
        for t in [0.0f64, 1.0, 2.5, k, 5.0, 8.0, 12.0] {
            let want = (0.4 * (t - k).powi(3) + 100.0) * MSS as f64;
            let got = c.w_cubic((t * 1e6) as u64, MSS) as f64;
            // Time in 2^-16 s: within a few bytes of the real curve.
            assert!((got - want).abs() <= 4.0, "t={t}: {got} vs {want}");
        }
        // At t = 0 the curve starts at cwnd_epoch, at K it is W_max.
        assert!(c.w_cubic(0, MSS).abs_diff(70 * MSS) <= 2);
        assert_eq!(c.w_cubic(c.k_us, MSS), 100 * MSS);
    }

    fn ack(w: &Window, now_us: u64, acked: u32, srtt_us: u32) -> Ack {
        Ack { now_us, acked, flight_before: w.cwnd, srtt_us }
    }

    #[test]
    fn loss_reduces_to_beta_and_fast_convergence_lowers_w_max() {
        let mut c = Cubic::default();
        let mut w = Window { cwnd: 100 * MSS, ssthresh: u32::MAX, mss: MSS };
        c.on_congestion_event(&mut w, 0, 100 * MSS);
        assert_eq!((w.cwnd, w.ssthresh, c.w_max), (70 * MSS, 70 * MSS, 100 * MSS));
        // A second loss below W_max: W_max = cwnd·(1+β)/2.
        w.cwnd = 80 * MSS;
        c.on_congestion_event(&mut w, 0, 80 * MSS);
        assert_eq!((w.cwnd, c.w_max), (56 * MSS, 68 * MSS));
    }

    #[test]
    fn reno_friendly_region_grows_at_alpha() {
        // A small W_max on a short RTT: W_cubic barely moves, Reno leads.
        let mut c = Cubic::default();
        let mut w = Window { cwnd: 10 * MSS, ssthresh: u32::MAX, mss: MSS };
        c.on_congestion_event(&mut w, 0, 10 * MSS);
        let mut now = 1_000_000;
        // Five round trips of 1 ms, an ACK per segment.
        for _ in 0..5 {
            let segs = w.cwnd / MSS;
            for _ in 0..segs {
                let a = ack(&w, now, MSS, 1000);
                c.on_ack(&mut w, &a);
            }
            now += 1000;
        }
        // α = 3·0.3/1.7 ≈ 0.53 segment per round from 7 (a little less:
        // a round has ⌊cwnd⌋ ACKs).
        let segs = w.cwnd as f64 / MSS as f64;
        assert!((9.3..=7.0 + 5.0 * 0.53).contains(&segs), "{segs}");
        // Past the window before the loss (10), α = 1.
        for _ in 0..3 {
            let segs = w.cwnd / MSS;
            for _ in 0..segs {
                let a = ack(&w, now, MSS, 1000);
                c.on_ack(&mut w, &a);
            }
            now += 1000;
        }
        let more = w.cwnd as f64 / MSS as f64 - segs;
        assert!((1.8..=3.1).contains(&more), "{more}");
    }

    #[test]
    fn hystart_enters_css_when_rtt_rises_and_ends_slow_start() {
        let mut h = HyStart::default();
        let mut w = Window { cwnd: 10 * MSS, ssthresh: u32::MAX, mss: MSS };
        // The flight [base, nxt): each ACK acknowledges one segment, and
        // the sender fills the window again.
        let (mut base, mut nxt) = (0u32, 10 * MSS);
        let mut round = |h: &mut HyStart, w: &mut Window, rtt: u32| {
            let end = nxt;
            let mut una = base;
            while una < end {
                una += MSS;
                h.on_rtt(rtt, SeqNumber(una), SeqNumber(nxt));
                h.on_ack(w, MSS);
                nxt = nxt.max(una + w.cwnd / MSS * MSS);
            }
            base = end;
            (nxt - base) / MSS
        };
        assert_eq!(round(&mut h, &mut w, 50_000), 20);
        assert_eq!(round(&mut h, &mut w, 50_000), 40);
        // +8 ms > max(4, 50/8 = 6.25) ms. A HyStart round starts with the
        // ACK of the last round's end, so this one still holds a 50 ms
        // sample: CSS from the next.
        assert_eq!(round(&mut h, &mut w, 58_000), 80);
        assert!(!h.css);
        round(&mut h, &mut w, 58_000);
        assert!(h.css);
        let mut sizes = Vec::new();
        for _ in 0..CSS_ROUNDS {
            sizes.push(round(&mut h, &mut w, 58_000));
            assert!(w.ssthresh == u32::MAX || h.done);
        }
        assert!(h.done && w.ssthresh <= w.cwnd, "{sizes:?}");
        for g in sizes.windows(2) {
            let r = g[1] as f64 / g[0] as f64;
            assert!((1.2..1.3).contains(&r) || h.done, "CSS grows by 1/4 per round: {sizes:?}");
        }
    }
}
