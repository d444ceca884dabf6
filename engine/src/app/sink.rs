//! `sink`: the Discard Protocol of RFC 863 over TCP (§ "TCP Based Discard
//! Service"): every byte received is read and thrown away, and counted.
//! Reading at once keeps the receive window open, so the client is limited
//! only by the network. When the peer closes (FIN), the server closes too
//! (RFC 9293 §3.6 CLOSE-WAIT → LAST-ACK). Nothing is kept per connection.
//!
//! An idle timeout (default [`super::echo::IDLE_TIMEOUT`]), pushed back by
//! every byte received, closes a connection that sends nothing (FIN: there
//! is never anything unread).

use super::App;
use crate::counters::counters;
use crate::table::Handle;
use crate::tcp::{CloseReason, Endpoint, Event};
use crate::time::{Duration, Instant};

counters! {
    /// What the discard service of one shard has seen and done.
    pub struct SinkStats {
        /// Connections accepted.
        connections_accepted,
        /// Connections that ended with FIN both ways.
        connections_closed,
        /// Connections that ended otherwise (reset, timed out).
        connections_aborted,
        /// Bytes read and discarded.
        bytes_discarded,
        /// Closes refused by the endpoint (connection already gone).
        close_errors,
        /// Connections closed after idle_timeout without a byte.
        idle_timeouts,
    }
}

/// The discard service of one shard.
#[derive(Debug)]
pub struct Sink {
    idle_timeout: Option<Duration>,
    pub stats: SinkStats,
}

impl Default for Sink {
    fn default() -> Self {
        Sink { idle_timeout: Some(super::echo::IDLE_TIMEOUT), stats: SinkStats::default() }
    }
}

impl Sink {
    pub fn new() -> Sink {
        Sink::default()
    }

    /// The same, with another idle timeout (`None`: none).
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Sink {
        self.idle_timeout = idle;
        self
    }

    fn touch(&self, ep: &mut Endpoint, h: Handle, now: Instant) {
        if let Some(d) = self.idle_timeout {
            let _ = ep.set_deadline(h, Some(now + d));
        }
    }

    fn drain(&mut self, ep: &mut Endpoint, h: Handle) {
        while let Ok(n @ 1..) = ep.recv(h, |d| d.len()) {
            self.stats.bytes_discarded += n as u64;
        }
    }
}

impl App for Sink {
    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, ev: Event) {
        match ev {
            Event::Accepted(h) => {
                self.stats.connections_accepted += 1;
                self.touch(ep, h, now);
                self.drain(ep, h);
            }
            Event::Readable(h) => {
                self.touch(ep, h, now);
                self.drain(ep, h);
            }
            Event::Deadline(h) => {
                self.stats.idle_timeouts += 1;
                self.drain(ep, h);
                if ep.close(h).is_err() {
                    self.stats.close_errors += 1;
                }
            }
            Event::PeerClosed(h) => {
                self.drain(ep, h);
                if ep.close(h).is_err() {
                    self.stats.close_errors += 1;
                }
            }
            Event::Closed(_, reason) => {
                if reason == CloseReason::Normal {
                    self.stats.connections_closed += 1;
                } else {
                    self.stats.connections_aborted += 1;
                }
            }
            Event::Writable(_) | Event::Connected(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testutil::*;
    use crate::link::memory::Faults;
    use crate::time::Duration;

    #[test]
    fn every_byte_is_counted_and_the_server_closes_after_the_client() {
        let mut p = pair(Sink::new(), Faults::default(), 1);
        let mut total = 0;
        for i in 0..10u16 {
            let data = vec![i as u8; 1000 + 37_000 * i as usize];
            total += data.len() as u64;
            connect(&mut p, 30000 + i, ClientConn { shutdown_when_sent: true, ..ClientConn::sending(&data) });
        }
        run_all(&mut p, Duration::from_secs(600));
        for c in p.client.app.conns.values() {
            assert!(c.received.is_empty() && c.peer_closed);
            assert_eq!(c.closed, Some(CloseReason::Normal));
        }
        assert!(p.drive(Duration::from_secs(600), |p| p.server.ep.connections() == 0));
        let s = p.server.app.stats;
        assert_eq!(s.bytes_discarded, total);
        assert_eq!(
            (s.connections_accepted, s.connections_closed, s.connections_aborted, s.close_errors),
            (10, 10, 0, 0)
        );
        assert_eq!(p.server.ep.time_wait(), 0, "the client closed first");
    }

    #[test]
    fn with_loss_every_byte_is_still_counted() {
        let faults = Faults { loss: 0.05, delay: Duration::from_micros(100), ..Faults::default() };
        let mut p = pair(Sink::new(), faults, 2);
        for i in 0..10u16 {
            connect(&mut p, 30000 + i, ClientConn { shutdown_when_sent: true, ..ClientConn::sending(&[7; 50_000]) });
        }
        run_all(&mut p, Duration::from_secs(3600));
        assert_eq!(p.server.app.stats.bytes_discarded, 500_000);
    }

    #[test]
    fn a_silent_connection_is_closed_at_the_idle_timeout_and_bytes_push_it_back() {
        let idle = Duration::from_secs(5);
        let mut p = pair(Sink::new().with_idle_timeout(Some(idle)), Faults::default(), 3);
        let h = connect(&mut p, 30000, ClientConn::default());
        assert!(p.drive(Duration::from_secs(1), |p| conn(p, h).connected));
        let start = p.now;
        // Bytes at 3 s and 6 s push the deadline to 11 s.
        for at in [3, 6] {
            let t = start + Duration::from_secs(at);
            p.drive(t - p.now, |_| false);
            assert!(!conn(&p, h).peer_closed);
            p.client.ep.write(h, b"abc").unwrap();
        }
        assert!(p.drive(Duration::from_secs(60), |p| conn(p, h).peer_closed));
        let took = p.now - start;
        assert!(took >= Duration::from_secs(11) && took < Duration::from_millis(11_200), "closed after {took:?}");
        run_all(&mut p, Duration::from_secs(60));
        assert_eq!(conn(&p, h).closed, Some(CloseReason::Normal));
        let s = p.server.app.stats;
        assert_eq!((s.idle_timeouts, s.bytes_discarded, s.connections_closed), (1, 6, 1));
    }

    #[test]
    fn every_counter_has_a_name_and_help() {
        let mut n = 0;
        SinkStats { bytes_discarded: 5, ..SinkStats::default() }.for_each(|name, help, v| {
            assert!(!help.is_empty());
            if name == "bytes_discarded" {
                assert_eq!(v, 5);
            }
            n += 1;
        });
        assert_eq!(n, 6);
    }
}
