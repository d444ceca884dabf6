//! A per-second budget, for challenge ACKs (RFC 5961 §7) and RSTs.

use crate::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    per_sec: u32,
    left: u32,
    second: u64,
}

impl RateLimit {
    pub fn new(per_sec: u32) -> RateLimit {
        RateLimit { per_sec, left: per_sec, second: 0 }
    }
    /// Takes one token; false when this second's budget is spent.
    pub fn allow(&mut self, now: Instant) -> bool {
        let s = now.total_micros() / 1_000_000;
        if s != self.second {
            self.second = s;
            self.left = self.per_sec;
        }
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }
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
}
