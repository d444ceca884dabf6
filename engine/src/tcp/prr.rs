//! Proportional Rate Reduction (RFC 6937 §3, with Slow Start Reduction
//! Bound): how much a sender in SACK recovery may send per ACK, so that
//! the window comes down to ssthresh smoothly over one round trip (about
//! one segment per two delivered for Reno's halving) instead of stopping
//! for half a window (RFC 6675) or bursting.

/// PRR's variables for one recovery episode, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prr {
    /// prr_delivered: bytes delivered to the peer since recovery began.
    pub delivered: u32,
    /// prr_out: bytes sent since recovery began.
    pub out: u32,
    /// RecoverFS: the flight when recovery began.
    pub recover_fs: u32,
    /// What this ACK allows still to be sent (sndcnt less what went).
    pub budget: u32,
}

impl Prr {
    /// Recovery begins with `flight` bytes outstanding.
    pub fn start(flight: u32) -> Prr {
        Prr { delivered: 0, out: 0, recover_fs: flight.max(1), budget: 0 }
    }

    /// RFC 6937 §3 on an ACK in recovery: `delivered` bytes newly
    /// delivered (cumulatively or by SACK), `pipe` after it. Returns sndcnt
    /// and keeps it as the budget; the new cwnd is `pipe + sndcnt`.
    pub fn on_ack(&mut self, delivered: u32, pipe: u32, ssthresh: u32, mss: u32) -> u32 {
        self.delivered = self.delivered.saturating_add(delivered);
        let sndcnt = if pipe > ssthresh {
            // Proportional: deliver ssthresh / RecoverFS of what arrives.
            let target = (self.delivered as u64 * ssthresh as u64).div_ceil(self.recover_fs.max(1) as u64);
            (target as i64 - self.out as i64).max(0) as u32
        } else {
            // SSRB: grow back towards ssthresh, at most one MSS beyond what
            // was delivered.
            let limit = ((self.delivered as i64 - self.out as i64).max(delivered as i64) as u32).saturating_add(mss);
            (ssthresh - pipe).min(limit)
        };
        // The fast retransmission that starts recovery always goes (Linux
        // tcp_cwnd_reduction).
        let sndcnt = if self.out == 0 { sndcnt.max(mss) } else { sndcnt };
        self.budget = sndcnt;
        sndcnt
    }

    /// `len` bytes left during recovery.
    pub fn sent(&mut self, len: u32) {
        self.out = self.out.saturating_add(len);
        self.budget = self.budget.saturating_sub(len);
    }

    /// A segment of `len` bytes handed out was not sent after all.
    pub fn unsent(&mut self, len: u32) {
        self.out = self.out.saturating_sub(len);
        self.budget = self.budget.saturating_add(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_part_sends_one_segment_per_two_delivered_for_a_halving() {
        let mss = 1000;
        // Ten segments in flight, one lost, ssthresh half of it.
        let mut p = Prr::start(10 * mss);
        let ssthresh = 5 * mss;
        let mut sent = 0;
        for k in 1..=8u32 {
            let pipe = 10 * mss - k * mss - mss + sent; // delivered and lost leave the pipe
            let n = p.on_ack(mss, pipe, ssthresh, mss);
            let segs = n / mss;
            p.sent(segs * mss);
            sent += segs * mss;
        }
        // 8 delivered: ssthresh/RecoverFS = 1/2, so 4 sent (the first at once).
        assert_eq!(sent, 4 * mss);
    }

    #[test]
    fn ssrb_grows_back_to_ssthresh_by_at_most_one_mss_beyond_delivery() {
        let mss = 1000;
        let mut p = Prr::start(10 * mss);
        p.out = 3 * mss;
        p.delivered = 3 * mss;
        // The pipe fell far below ssthresh (heavy loss): one ACK of one
        // segment lets out the delivered segment plus one.
        assert_eq!(p.on_ack(mss, mss, 5 * mss, mss), 2 * mss);
        // Never beyond ssthresh.
        assert_eq!(p.on_ack(mss, 5 * mss - 100, 5 * mss, mss), 100);
    }
}
