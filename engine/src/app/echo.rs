//! `echo`: the Echo Protocol of RFC 862 over TCP (§ "TCP Based Echo
//! Service"): every byte received is sent back, until the client closes.
//!
//! Backpressure both ways: a byte is taken from the receive buffer only once
//! it has been queued for sending, at most `min(readable, writable)` at a
//! time through a buffer of its own, so a client that sends faster than it reads
//! fills our send buffer, then our receive buffer, and its window closes.
//! Echoing resumes on `Writable`. When the peer has closed (FIN) and every
//! byte has been echoed, the server closes too (RFC 9293 §3.6 CLOSE-WAIT →
//! LAST-ACK).
//!
//! An idle timeout (default [`IDLE_TIMEOUT`]) bounds a connection on which
//! nothing moves: no byte arrives and no byte sent is acknowledged. It is
//! pushed back by every `Readable` and `Writable`; when it passes the
//! connection is closed (FIN), or reset when bytes are still to be read or
//! delivered (RFC 9293 §3.10.4, CONFORMANCE item 21), since a peer that
//! neither sends nor reads would otherwise hold its buffers for good.

use super::App;
use crate::counters::counters;
use crate::table::Handle;
use crate::tcp::{CloseReason, Endpoint, Event};
use crate::time::{Duration, Instant};

/// Bytes moved per copy, through a buffer the service owns (allocated once:
/// a stack array would be zeroed on every event, 16 KiB of memset for each
/// segment of a few hundred bytes).
const CHUNK: usize = 16 * 1024;

/// Default idle timeout of echo and sink: long enough for any benchmark
/// pause, short enough that idle peers do not pile up (HAProxy's examples
/// use `timeout client 30s`-`50s`, nginx's stream `proxy_timeout` is 10 min).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

counters! {
    /// What the echo service of one shard has seen and done.
    pub struct EchoStats {
        /// Connections accepted.
        connections_accepted,
        /// Connections that ended with FIN both ways.
        connections_closed,
        /// Connections that ended otherwise (reset, timed out).
        connections_aborted,
        /// Bytes echoed.
        bytes_echoed,
        /// Times echoing stopped with bytes to echo and no send space (backpressure).
        send_blocked,
        /// Writes that took fewer bytes than the send space promised (buffer pool exhausted).
        write_short,
        /// Writes refused by the endpoint (connection no longer sending).
        write_errors,
        /// Events for a connection the service does not know (stale or out of range).
        stale_events,
        /// Connections ended after idle_timeout with nothing moving.
        idle_timeouts,
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Conn {
    handle: Option<Handle>,
    peer_closed: bool,
    /// `close` was called.
    shut: bool,
}

/// The echo service of one shard.
pub struct Echo {
    conns: Vec<Conn>,
    buf: Box<[u8]>,
    idle_timeout: Option<Duration>,
    pub stats: EchoStats,
}

impl Echo {
    /// A service for up to `connections` connections (the endpoint's capacity).
    pub fn new(connections: usize) -> Echo {
        Echo {
            conns: vec![Conn::default(); connections],
            buf: vec![0; CHUNK].into_boxed_slice(),
            idle_timeout: Some(IDLE_TIMEOUT),
            stats: EchoStats::default(),
        }
    }

    /// The same, with another idle timeout (`None`: none).
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Echo {
        self.idle_timeout = idle;
        self
    }

    /// Something moved: the idle deadline starts again.
    fn touch(&self, ep: &mut Endpoint, h: Handle, now: Instant) {
        if let Some(d) = self.idle_timeout {
            let _ = ep.set_deadline(h, Some(now + d));
        }
    }

    fn idle(&mut self, ep: &mut Endpoint, h: Handle) {
        let Echo { conns, stats, .. } = self;
        let Some(c) = conns.get_mut(h.index() as usize).filter(|c| c.handle == Some(h)) else {
            stats.stale_events += 1;
            return;
        };
        if c.shut {
            return;
        }
        stats.idle_timeouts += 1;
        let unsent = ep.tcb(h).map_or(0, |t| t.tx.len());
        if ep.readable(h) > 0 || unsent > 0 {
            // abort raises no `Closed`: the slot is free now.
            *c = Conn::default();
            stats.connections_aborted += 1;
            let _ = ep.abort(h);
        } else {
            let _ = ep.close(h);
            c.shut = true;
        }
    }

    fn known(&mut self, h: Handle) -> Option<&mut Conn> {
        match self.conns.get_mut(h.index() as usize) {
            Some(c) if c.handle == Some(h) => Some(c),
            _ => {
                self.stats.stale_events += 1;
                None
            }
        }
    }

    /// Moves what can be moved from the receive to the send buffer.
    fn pump(&mut self, ep: &mut Endpoint, h: Handle) {
        let Echo { conns, stats, buf, .. } = self;
        let Some(c) = conns.get_mut(h.index() as usize) else { return };
        if c.shut {
            return;
        }
        loop {
            let want = ep.readable(h).min(ep.writable(h)).min(CHUNK);
            if want == 0 {
                if ep.readable(h) > 0 {
                    stats.send_blocked += 1;
                }
                break;
            }
            // Copy without consuming; consume only what the write took.
            let mut got = 0;
            let _ = ep.recv(h, |d| {
                got = d.len().min(want);
                buf[..got].copy_from_slice(&d[..got]);
                0
            });
            let written = match ep.write(h, &buf[..got]) {
                Ok(n) => n,
                Err(_) => {
                    stats.write_errors += 1;
                    c.shut = true;
                    return;
                }
            };
            let _ = ep.recv(h, |_| written);
            stats.bytes_echoed += written as u64;
            if written < got {
                stats.write_short += 1;
                break;
            }
        }
        if c.peer_closed && ep.readable(h) == 0 {
            let _ = ep.close(h);
            c.shut = true;
        }
    }
}

impl App for Echo {
    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, ev: Event) {
        match ev {
            Event::Accepted(h) => {
                let Some(c) = self.conns.get_mut(h.index() as usize) else {
                    self.stats.stale_events += 1;
                    let _ = ep.abort(h);
                    return;
                };
                *c = Conn { handle: Some(h), ..Conn::default() };
                self.stats.connections_accepted += 1;
                self.touch(ep, h, now);
                self.pump(ep, h);
            }
            Event::Readable(h) | Event::Writable(h) => {
                if self.known(h).is_some() {
                    self.touch(ep, h, now);
                    self.pump(ep, h);
                }
            }
            Event::PeerClosed(h) => {
                if let Some(c) = self.known(h) {
                    c.peer_closed = true;
                    self.pump(ep, h);
                }
            }
            Event::Closed(h, reason) => {
                if let Some(c) = self.known(h) {
                    *c = Conn::default();
                    if reason == CloseReason::Normal {
                        self.stats.connections_closed += 1;
                    } else {
                        self.stats.connections_aborted += 1;
                    }
                }
            }
            Event::Deadline(h) => self.idle(ep, h),
            Event::Connected(_) => self.stats.stale_events += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testutil::*;
    use crate::link::memory::Faults;
    use crate::time::Duration;

    fn payload(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// `n` connections each sending a random payload of up to `max` bytes
    /// in one go, then a FIN; every byte must come back, then the server's FIN.
    fn echo_random(faults: Faults, seed: u64, n: u16, max: usize) -> TestPair<Echo> {
        let mut p = pair(Echo::new(CONNECTIONS), faults, seed);
        let mut sent = Vec::new();
        for i in 0..n {
            let len =
                (payload(seed * 1000 + i as u64, 4).iter().fold(0usize, |a, &b| a * 256 + b as usize)) % (max + 1);
            let data = payload(seed + i as u64, len);
            let h = connect(&mut p, 30000 + i, ClientConn { shutdown_when_sent: true, ..ClientConn::sending(&data) });
            sent.push((h, data));
        }
        run_all(&mut p, Duration::from_secs(3600));
        let mut total = 0;
        for (h, data) in &sent {
            let c = conn(&p, *h);
            assert!(c.received == *data, "{} of {} bytes echoed, {:?}", c.received.len(), data.len(), c.closed);
            assert!(c.peer_closed);
            total += data.len() as u64;
        }
        assert!(p.drive(Duration::from_secs(3600), |p| p.server.ep.connections() == 0));
        let s = p.server.app.stats;
        assert_eq!(s.bytes_echoed, total);
        assert_eq!((s.connections_accepted, s.connections_closed), (n as u64, n as u64));
        assert_eq!(s.write_errors + s.write_short + s.stale_events, 0);
        p
    }

    #[test]
    fn random_payloads_up_to_200_kb_come_back_exactly() {
        let p = echo_random(Faults::default(), 1, 20, 200_000);
        // The client closed first.
        assert_eq!(p.server.ep.time_wait(), 0);
    }

    #[test]
    fn with_5_percent_loss_every_byte_still_comes_back() {
        // Under loss the server's receive buffer fills while its send
        // buffer waits for ACKs; those ACKs ride on the client's data
        // segments, which arrive at RCV.WND = 0: their ACK field is still
        // processed (RFC 9293 §3.10.7.4, `Tcb::input`), so both sides move on.
        let faults = Faults { loss: 0.05, delay: Duration::from_micros(100), ..Faults::default() };
        let p = echo_random(faults, 2, 20, 200_000);
        assert!(p.client.link.stats().lost > 0 && p.server.link.stats().lost > 0);
    }

    #[test]
    fn with_5_percent_loss_payloads_within_the_buffers_come_back() {
        let faults = Faults { loss: 0.05, delay: Duration::from_micros(100), ..Faults::default() };
        let p = echo_random(faults, 3, 50, 12_000);
        assert!(p.client.link.stats().lost > 0 && p.server.link.stats().lost > 0);
    }

    #[test]
    fn an_idle_connection_is_closed_and_a_chatty_one_is_not() {
        let mut p = pair(Echo::new(CONNECTIONS).with_idle_timeout(Some(Duration::from_secs(5))), Faults::default(), 5);
        let idle = connect(&mut p, 30000, ClientConn::default());
        let chatty = connect(&mut p, 30001, ClientConn::default());
        assert!(p.drive(Duration::from_secs(1), |p| conn(p, idle).connected && conn(p, chatty).connected));
        let start = p.now;
        // A byte every 4 s for 20 s on one; nothing on the other.
        for _ in 0..5 {
            p.client.ep.write(chatty, b"x").unwrap();
            p.drive(Duration::from_secs(4), |_| false);
            assert!(!conn(&p, chatty).peer_closed);
            assert_eq!(conn(&p, idle).peer_closed, p.now - start > Duration::from_secs(5));
        }
        assert!(conn(&p, idle).peer_closed && conn(&p, idle).closed.is_some());
        assert_eq!(conn(&p, idle).closed, Some(CloseReason::Normal), "nothing pending: FIN");
        assert!(!conn(&p, chatty).peer_closed);
        assert_eq!(conn(&p, chatty).received, b"xxxxx");
        // Then the chatty one falls silent too.
        run_all(&mut p, Duration::from_secs(60));
        let s = p.server.app.stats;
        assert_eq!((s.idle_timeouts, s.connections_closed, s.connections_aborted), (2, 2, 0));
    }

    #[test]
    fn a_peer_that_neither_reads_nor_sends_is_reset_at_the_idle_timeout() {
        let mut p = pair(Echo::new(CONNECTIONS).with_idle_timeout(Some(Duration::from_secs(5))), Faults::default(), 6);
        let data = payload(11, 100_000);
        let h = connect(&mut p, 30000, ClientConn { paused: true, ..ClientConn::sending(&data) });
        let start = p.now;
        assert!(p.drive(Duration::from_secs(60), |p| conn(p, h).done()));
        assert!(p.now - start >= Duration::from_secs(5));
        assert_eq!(conn(&p, h).closed, Some(CloseReason::Reset), "bytes pending: RST");
        let s = p.server.app.stats;
        assert_eq!((s.idle_timeouts, s.connections_aborted), (1, 1));
        assert!(p.drive(Duration::from_secs(60), |p| p.server.ep.connections() == 0));
    }

    #[test]
    fn bytes_are_consumed_only_as_fast_as_they_can_be_sent() {
        // A client that writes but does not read: the server echoes until
        // its send buffer and the client's receive buffer are full, then
        // stops reading; its receive buffer fills, its window closes, and
        // the client's writes stall. Nothing is lost: once the client reads
        // again everything comes back.
        let mut p = pair(Echo::new(CONNECTIONS), Faults::default(), 3);
        let data = payload(9, 200_000);
        let h =
            connect(&mut p, 30000, ClientConn { paused: true, shutdown_when_sent: true, ..ClientConn::sending(&data) });
        let start = p.now;
        p.drive(Duration::from_secs(30), |p| p.now > start + Duration::from_secs(20));
        let c = conn(&p, h);
        assert!(c.out_off < 70_000, "the windows closed after {} bytes", c.out_off);
        assert!(p.server.app.stats.send_blocked > 0);
        let echoed = p.server.app.stats.bytes_echoed;
        assert!(echoed > 0 && echoed < 40_000, "{echoed}");

        p.client.app.conns.get_mut(&h).unwrap().paused = false;
        p.client.app.pump(&mut p.client.ep, h);
        run_all(&mut p, Duration::from_secs(600));
        assert!(conn(&p, h).received == data);
    }
}
