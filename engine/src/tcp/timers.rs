//! What a connection does when one of its deadlines comes: retransmission
//! (RFC 6298 §5), delayed ACK (RFC 9293 §3.8.6.3), keepalive (RFC 9293
//! §3.8.4), the FIN-WAIT-2 timeout, and the application's deadline.

use super::buffer::BufferPool;
use super::config::TcpConfig;
use super::deadline::Deadline;
use super::state::State;
use super::tcb::{flag, Tcb};
use crate::time::Instant;

/// The outcome of a timer for the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing ends; output may be due.
    Continue,
    /// A half-open entry ran out of SYN-ACK retries: reclaim it silently.
    HalfOpenTimeout,
    /// Retransmissions exhausted: reset and reclaim.
    TimedOut,
    /// Keepalive probes unanswered: reset and reclaim.
    KeepaliveTimeout,
    /// FIN-WAIT-2 waited long enough for the peer's FIN: reclaim.
    FinWait2Timeout,
    /// The application's deadline passed: tell it (`Event::Deadline`).
    AppDeadline,
}

impl Tcb {
    /// Runs every deadline that is due at `now`.
    pub fn on_timer(&mut self, now: Instant, cfg: &TcpConfig, pool: &mut BufferPool) -> Expiry {
        let now_ms = now.total_millis();
        if self.rto_at.due(now_ms) && !self.on_rto(now, cfg, pool) {
            return if self.state == State::SynReceived { Expiry::HalfOpenTimeout } else { Expiry::TimedOut };
        }
        if self.ack_at.due(now_ms) {
            self.ack_at = Deadline::NEVER;
            self.set(flag::ACK_NOW);
        }
        if self.idle_at.due(now_ms) {
            self.idle_at = Deadline::NEVER;
            match self.state {
                State::FinWait2 if self.has(flag::APP_CLOSED) => return Expiry::FinWait2Timeout,
                // FIN-WAIT-2 after a shutdown: keepalive watches the peer.
                State::Established | State::CloseWait | State::FinWait2 if cfg.keepalive.is_some() => {
                    let ka = cfg.keepalive.expect("matched above");
                    if self.flight() > 0 || !self.tx.is_empty() {
                        // Data in flight: the RTO watches the peer, not keepalive.
                        self.idle_at = Deadline::at((now + ka.idle).total_millis());
                    } else if self.probes >= ka.probes {
                        return Expiry::KeepaliveTimeout;
                    } else {
                        self.probes += 1;
                        self.set(flag::PROBE);
                        self.idle_at = Deadline::at((now + ka.interval).total_millis());
                    }
                }
                _ => {}
            }
        }
        if self.app_at.due(now_ms) {
            self.app_at = Deadline::NEVER;
            return Expiry::AppDeadline;
        }
        Expiry::Continue
    }
}
