//! Per-second budgets: for RSTs (fixed), for RFC 5961 §7 challenge ACKs
//! (randomised each second, as Linux 4.7+ does since CVE-2016-5696: with a
//! fixed, shared budget an off-path attacker learns from how many of its
//! own challenge ACKs come back whether a guessed 4-tuple exists, "Off-Path
//! TCP Exploits", USENIX Security 2016), and the per-connection interval of
//! Linux's `tcp_oow_rate_limited`.

use crate::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    per_sec: u32,
    left: u32,
    second: u64,
    /// xorshift64 state; 0 for a fixed budget.
    rng: u64,
}

impl RateLimit {
    /// `per_sec` tokens every second.
    pub fn new(per_sec: u32) -> RateLimit {
        RateLimit { per_sec, left: per_sec, second: 0, rng: 0 }
    }

    /// Each second a budget drawn uniformly from [per_sec/2, per_sec/2 +
    /// per_sec): `per_sec` on average, never the same count twice in a row
    /// for an observer to subtract. `seed` is secret (from the shard's keys).
    pub fn randomized(per_sec: u32, seed: u64) -> RateLimit {
        let mut r = RateLimit { per_sec, left: 0, second: u64::MAX, rng: seed | 1 };
        r.left = r.draw();
        r
    }

    fn draw(&mut self) -> u32 {
        if self.rng == 0 || self.per_sec == 0 {
            return self.per_sec;
        }
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        let half = self.per_sec.div_ceil(2);
        half + ((x >> 32) % self.per_sec as u64) as u32
    }

    /// Takes one token; false when this second's budget is spent.
    pub fn allow(&mut self, now: Instant) -> bool {
        let s = now.total_micros() / 1_000_000;
        if s != self.second {
            self.second = s;
            self.left = self.draw();
        }
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }
}

/// Linux's `__tcp_oow_rate_limited` on a connection's `last_oow_ms`
/// (milliseconds, wrapping; 0 for never): true when the last reply of this
/// kind went out less than `interval_ms` ago; otherwise records `now_ms`.
pub fn oow_rate_limited(last_oow_ms: &mut u32, now_ms: u64, interval_ms: u32) -> bool {
    let now = now_ms as u32;
    if *last_oow_ms != 0 {
        let elapsed = now.wrapping_sub(*last_oow_ms) as i32;
        if (0..interval_ms as i32).contains(&elapsed) {
            return true;
        }
    }
    *last_oow_ms = now.max(1);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refills_each_second() {
        let mut r = RateLimit::new(2);
        let t = Instant::from_secs(5);
        assert!(r.allow(t) && r.allow(t) && !r.allow(t));
        assert!(r.allow(Instant::from_secs(6)));
    }

    #[test]
    fn randomized_budget_stays_in_its_range_and_varies() {
        let mut r = RateLimit::randomized(100, 0x1234_5678_9abc_def0);
        let mut seen = std::collections::BTreeSet::new();
        let mut total = 0u64;
        for s in 0..1000 {
            let t = Instant::from_secs(s);
            let mut n = 0;
            while r.allow(t) {
                n += 1;
            }
            assert!((50..150).contains(&n), "second {s}: {n}");
            seen.insert(n);
            total += n as u64;
        }
        assert!(seen.len() > 50, "the budget varies: {seen:?}");
        let mean = total as f64 / 1000.0;
        assert!((90.0..110.0).contains(&mean), "on average the limit: {mean}");
    }

    #[test]
    fn oow_interval_per_connection() {
        let mut last = 0;
        assert!(!oow_rate_limited(&mut last, 10_000, 500));
        assert!(oow_rate_limited(&mut last, 10_499, 500));
        assert!(!oow_rate_limited(&mut last, 10_500, 500));
        assert!(oow_rate_limited(&mut last, 10_600, 500));
        // A clock that wrapped the u32 still works.
        let mut last = 0;
        assert!(!oow_rate_limited(&mut last, u32::MAX as u64 - 100, 500));
        assert!(oow_rate_limited(&mut last, u32::MAX as u64 + 300, 500));
        assert!(!oow_rate_limited(&mut last, u32::MAX as u64 + 400, 500));
    }
}
