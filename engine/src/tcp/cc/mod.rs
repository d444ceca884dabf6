//! Congestion control (RFC 5681): the window a connection may have in
//! flight. The ACK processing and loss recovery in `input.rs` call these
//! hooks at the points RFC 5681 §3.1-3.2 names (an ACK of new data outside
//! recovery, the congestion event that starts recovery, recovery's end and
//! a retransmission timeout); what each does is the algorithm's.
//!
//! Today: RFC 5681 slow start and congestion avoidance with RFC 6582's
//! ssthresh and window inflation, the behaviour the engine always had.

use super::buffer::BufferPool;
use super::tcb::Tcb;
use crate::time::Instant;

/// RFC 6928 initial window.
pub fn initial_cwnd(mss: u32) -> u32 {
    (10 * mss).min((2 * mss).max(14600))
}

impl Tcb {
    /// The handshake completed with this MSS: the initial window.
    pub fn cc_init(&mut self) {
        self.cwnd = initial_cwnd(self.mss as u32);
    }

    /// `acked` bytes of new data were acknowledged outside recovery.
    pub fn cc_on_ack(&mut self, _now: Instant, _pool: &mut BufferPool, acked: u32) {
        let mss = self.mss as u32;
        if self.cwnd < self.ssthresh {
            self.cwnd = self.cwnd.saturating_add(acked.min(mss));
        } else {
            self.cwnd = self.cwnd.saturating_add((mss * mss / self.cwnd.max(1)).max(1));
        }
    }

    /// A loss was detected (three duplicate ACKs or SACK): recovery starts.
    /// Sets ssthresh and the window recovery starts from.
    pub fn cc_on_congestion(&mut self, _now: Instant, _pool: &mut BufferPool) {
        let mss = self.mss as u32;
        self.ssthresh = (self.flight() / 2).max(2 * mss);
        self.cwnd = self.ssthresh + 3 * mss;
    }

    /// Recovery ended: SND.UNA passed `recover`.
    pub fn cc_on_recovery_exit(&mut self, _now: Instant, _pool: &mut BufferPool) {
        self.cwnd = self.ssthresh;
    }

    /// The retransmission timer expired with data in flight (RFC 5681 §3.1
    /// equation 4): one segment, from half of what was in flight.
    pub fn cc_on_rto(&mut self, _now: Instant, _pool: &mut BufferPool) {
        self.ssthresh = (self.flight() / 2).max(2 * self.mss as u32);
        self.cwnd = self.mss as u32;
    }
}
