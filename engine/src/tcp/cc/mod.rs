//! Congestion control (RFC 5681): the window a connection may have in
//! flight. The ACK processing and loss recovery in `input.rs` call these
//! hooks at the points RFC 5681 §3.1-3.2 names (an ACK of new data outside
//! recovery, an RTT sample, the congestion event that starts recovery,
//! recovery's end and a retransmission timeout), and `poll_output` calls
//! the idle restart (RFC 5681 §4.1, RFC 7661) before sending after a pause;
//! what each does is the algorithm's, behind [`CongestionControl`]:
//!
//! - [`cubic::Cubic`] (RFC 9438, with HyStart++ RFC 9406): the default;
//! - [`newreno::NewReno`] (RFC 5681, RFC 6582's ssthresh, RFC 3465 byte
//!   counting); without its byte counter ([`newreno::NewRenoNoState`]) it
//!   is what a connection uses when its shard's sender slab was empty.
//!
//! The `Tcb` keeps cwnd and ssthresh (both in bytes); CUBIC's own variables
//! live in the connection's sender slot (`sender.rs`), which exists only
//! while bytes are queued or in flight. Loss recovery (fast recovery, PRR)
//! owns cwnd between `cc_on_congestion` and `cc_on_recovery_exit`.

pub mod cubic;
pub mod newreno;

use super::buffer::BufferPool;
use super::config::{Congestion, TcpConfig};
use super::tcb::{flag, Tcb};
use crate::time::Instant;
use crate::wire::SeqNumber;

/// RFC 6928 initial window.
pub fn initial_cwnd(mss: u32) -> u32 {
    (10 * mss).min((2 * mss).max(14600))
}

/// What an algorithm works on: the connection's window, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub cwnd: u32,
    pub ssthresh: u32,
    /// SMSS: payload bytes per full segment.
    pub mss: u32,
}

/// One ACK of new data, as the algorithm sees it.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    pub now_us: u64,
    /// Bytes newly acknowledged.
    pub acked: u32,
    /// Bytes in flight before this ACK: whether the window was used
    /// (RFC 7661 §4.3, RFC 9438 §5.8: an application-limited sender does
    /// not grow its window).
    pub flight_before: u32,
    /// The smoothed RTT (RFC 6298), 0 when none yet.
    pub srtt_us: u32,
}

impl Ack {
    /// The window was (nearly) full when this ACK came: less than a
    /// segment of it was unused, so growth reflects what the path carried.
    pub fn cwnd_limited(&self, w: &Window) -> bool {
        self.flight_before.saturating_add(w.mss) > w.cwnd
    }
}

/// A congestion-control algorithm: the per-connection reactions.
pub trait CongestionControl {
    /// An ACK of new data outside recovery (RFC 5681 §3.1).
    fn on_ack(&mut self, w: &mut Window, ack: &Ack);
    /// An RTT sample taken from an ACK that acknowledged `snd_una`, with
    /// `snd_nxt` the sender's next sequence number (delay-based slow-start
    /// exit counts rounds with them).
    fn on_rtt_sample(&mut self, _w: &mut Window, _rtt_us: u32, _snd_una: SeqNumber, _snd_nxt: SeqNumber) {}
    /// Loss detected: recovery starts (RFC 5681 §3.2 step 2). Sets ssthresh
    /// and the cwnd recovery starts from; no dupack inflation.
    fn on_congestion_event(&mut self, w: &mut Window, now_us: u64, flight: u32);
    /// Recovery ended (SND.UNA passed `recover`).
    fn on_recovery_exit(&mut self, w: &mut Window, _now_us: u64) {
        w.cwnd = w.ssthresh.max(w.mss);
    }
    /// The retransmission timer expired with data in flight.
    fn on_rto(&mut self, w: &mut Window, flight: u32);
    /// Sending resumes after more than an RTO with nothing sent.
    fn on_idle_restart(&mut self, w: &mut Window) {
        idle_restart(w);
    }
}

/// RFC 5681 §4.1 restart window, with RFC 2861's (and Linux's) memory of
/// the window in ssthresh: a burst of a whole stale window could overflow
/// a queue whose state the idle period made unknown.
pub fn idle_restart(w: &mut Window) {
    let restart = initial_cwnd(w.mss).min(w.cwnd);
    if w.cwnd > restart {
        w.ssthresh = w.ssthresh.max(w.cwnd / 4 * 3);
        w.cwnd = restart;
    }
}

impl Tcb {
    /// The handshake completed with this MSS: the initial window, and the
    /// algorithm of the listener (or of the endpoint's active opens).
    pub fn cc_init(&mut self, cfg: &TcpConfig) {
        self.cwnd = initial_cwnd(self.mss as u32);
        if cfg.congestion == Congestion::NewReno {
            self.set(flag::CC_NEWRENO);
        } else {
            self.clear(flag::CC_NEWRENO);
        }
    }

    fn window(&self) -> Window {
        Window { cwnd: self.cwnd, ssthresh: self.ssthresh, mss: self.mss as u32 }
    }

    /// Runs `f` with this connection's algorithm: CUBIC from its sender
    /// slot, or NewReno (configured, or no slot to keep CUBIC's state in).
    #[inline]
    fn with_cc(&mut self, pool: &mut BufferPool, f: impl FnOnce(&mut dyn CongestionControl, &mut Window)) {
        let mut w = self.window();
        match self.sender_mut(pool) {
            Some(s) if self.has(flag::CC_NEWRENO) => f(&mut s.newreno, &mut w),
            Some(s) => f(&mut s.cubic, &mut w),
            None => f(&mut newreno::NewRenoNoState, &mut w),
        }
        self.cwnd = w.cwnd;
        self.ssthresh = w.ssthresh;
    }

    /// `acked` bytes of new data were acknowledged outside recovery.
    pub fn cc_on_ack(&mut self, now: Instant, pool: &mut BufferPool, acked: u32) {
        let ack = Ack {
            now_us: now.total_micros(),
            acked,
            flight_before: self.flight().saturating_add(acked),
            srtt_us: self.srtt_us,
        };
        self.with_cc(pool, |cc, w| cc.on_ack(w, &ack));
    }

    /// An RTT sample (RFC 6298) from the ACK being processed.
    pub fn cc_on_rtt(&mut self, _now: Instant, pool: &mut BufferPool, rtt_us: u32) {
        let (una, nxt) = (self.snd_una, self.snd_nxt);
        self.with_cc(pool, |cc, w| cc.on_rtt_sample(w, rtt_us, una, nxt));
    }

    /// A loss was detected (three duplicate ACKs, SACK or RACK): recovery
    /// starts. Sets ssthresh and the window recovery starts from.
    pub fn cc_on_congestion(&mut self, now: Instant, pool: &mut BufferPool) {
        let flight = self.flight();
        self.with_cc(pool, |cc, w| cc.on_congestion_event(w, now.total_micros(), flight));
        self.ecn_queue_cwr();
    }

    /// Recovery ended: SND.UNA passed `recover`.
    pub fn cc_on_recovery_exit(&mut self, now: Instant, pool: &mut BufferPool) {
        self.with_cc(pool, |cc, w| cc.on_recovery_exit(w, now.total_micros()));
    }

    /// The retransmission timer expired with data in flight (RFC 5681 §3.1
    /// equation 4, RFC 9438 §4.8): one segment, from a reduced ssthresh.
    pub fn cc_on_rto(&mut self, _now: Instant, pool: &mut BufferPool) {
        let flight = self.flight();
        self.with_cc(pool, |cc, w| cc.on_rto(w, flight));
        self.ecn_queue_cwr();
    }

    /// Before sending new data with nothing in flight: when nothing was
    /// sent for longer than an RTO, the window restarts (RFC 5681 §4.1,
    /// RFC 7661 §4.4's pipeACK-free fallback) and CUBIC's epoch with it
    /// (RFC 9438 §5.8).
    pub fn cc_idle_check(&mut self, now: Instant, pool: &mut BufferPool) {
        let idle_ms = (now.total_millis() as u32).wrapping_sub(self.snd_last_ms);
        if self.flight() == 0 && idle_ms > self.rto_ms && self.cwnd > initial_cwnd(self.mss as u32) {
            self.with_cc(pool, |cc, w| cc.on_idle_restart(w));
        }
    }
}
