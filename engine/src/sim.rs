//! A pair of endpoints joined by `link::Memory`, driven in virtual time
//! (quinn's `Pair`, for TCP): tests and benchmarks connect, move bytes and
//! close with loss, duplication and reordering, deterministically. The
//! pipes can also carry a bottleneck (rate, drop-tail queue, base RTT),
//! burst loss, chosen drops and reorderings, corruption, an MTU and a TX
//! ring that refuses (see [`crate::link::memory`]).
//!
//! [`BulkSender`] and [`bulk`] set up one bulk transfer to the `sink`
//! application, as the goodput harness (`sim-goodput`) and tests use it.
//! A [`Family`] names the two ends' addresses, so a test runs the same
//! case over IPv4 and IPv6.

use crate::app::sink::Sink;
use crate::app::App;
use crate::link::memory::{self, Faults};
use crate::link::Memory;
use crate::shard;
use crate::table::Handle;
use crate::tcp::{Capacity, CloseReason, Endpoint, Event, Secrets, TcpConfig};
use crate::time::{Duration, Instant};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The IP family a simulated pair talks over: the server at 198.18.0.1
/// and the client at 198.18.0.2 (RFC 2544's benchmark range), or the same
/// ends as 2001:db8::1 and 2001:db8::2 (RFC 3849's documentation prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    fn host(self, last: u8) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(198, 18, 0, last)),
            Family::V6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last as u16)),
        }
    }

    pub fn server(self, port: u16) -> SocketAddr {
        SocketAddr::new(self.host(1), port)
    }

    pub fn client(self, port: u16) -> SocketAddr {
        SocketAddr::new(self.host(2), port)
    }
}

/// One side: an endpoint, its end of the pipe, its application.
pub struct Peer<A: App> {
    pub ep: Endpoint,
    pub link: Memory,
    pub app: A,
}

pub struct Pair<C: App, S: App> {
    pub now: Instant,
    pub client: Peer<C>,
    pub server: Peer<S>,
}

impl<C: App, S: App> Pair<C, S> {
    pub fn new(now: Instant, client: (Endpoint, C), server: (Endpoint, S), faults: Faults, seed: u64) -> Self {
        let (a, b) = memory::pair(faults, seed);
        a.set_now(now);
        Pair {
            now,
            client: Peer { ep: client.0, link: a, app: client.1 },
            server: Peer { ep: server.0, link: b, app: server.1 },
        }
    }

    /// One turn of both sides at the current time; returns frames received.
    pub fn step(&mut self) -> usize {
        let now = self.now;
        self.client.link.set_now(now);
        let mut n = 0;
        loop {
            let c = shard::step(&mut self.client.ep, &mut self.client.link, &mut self.client.app, now, usize::MAX);
            let s = shard::step(&mut self.server.ep, &mut self.server.link, &mut self.server.app, now, usize::MAX);
            n += c + s;
            if c + s == 0 {
                return n;
            }
        }
    }

    /// The next instant anything can happen: a frame arrives or a timer is due.
    pub fn next_event(&self) -> Option<Instant> {
        [
            self.client.link.next_arrival(),
            self.server.link.next_arrival(),
            self.client.ep.next_deadline(),
            self.server.ep.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Steps and jumps time forward until `done` holds or `limit` passes.
    /// Returns whether `done` held.
    pub fn drive(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.step();
            if done(self) {
                return true;
            }
            let next = match self.next_event() {
                Some(t) => t.max(self.now + Duration::from_micros(1)),
                None => return false,
            };
            if next > end {
                self.now = end;
                self.step();
                return done(self);
            }
            self.now = next;
        }
    }
}

/// An application that does nothing (a bare endpoint).
pub struct NoApp;

impl App for NoApp {
    fn on_event(&mut self, _: &mut Endpoint, _: Instant, _: crate::tcp::Event) {}
}

/// The byte at offset `k` of a [`BulkSender`]'s stream: a receiver can
/// check order and completeness.
pub fn pattern(k: u64) -> u8 {
    (k.wrapping_mul(2_654_435_761) >> 11) as u8
}

/// Writes `total` bytes of [`pattern`] on the connection it opened, as fast
/// as the endpoint takes them, then half-closes (FIN).
pub struct BulkSender {
    pub total: u64,
    pub written: u64,
    pub connected_at: Option<Instant>,
    pub closed: Option<CloseReason>,
    shut: bool,
    chunk: Vec<u8>,
    chunk_at: u64,
}

impl BulkSender {
    pub fn new(total: u64) -> BulkSender {
        BulkSender {
            total,
            written: 0,
            connected_at: None,
            closed: None,
            shut: false,
            chunk: (0..65536).map(pattern).collect(),
            chunk_at: 0,
        }
    }

    fn pump(&mut self, ep: &mut Endpoint, h: Handle) {
        while self.written < self.total {
            // The chunk holds the stream from `chunk_at`; refilled only
            // once used up, so a short write costs no regeneration.
            if self.written >= self.chunk_at + self.chunk.len() as u64 {
                self.chunk_at = self.written;
                for (i, b) in self.chunk.iter_mut().enumerate() {
                    *b = pattern(self.chunk_at + i as u64);
                }
            }
            let off = (self.written - self.chunk_at) as usize;
            let n = (self.total - self.written).min((self.chunk.len() - off) as u64) as usize;
            match ep.write(h, &self.chunk[off..off + n]) {
                Ok(w @ 1..) => self.written += w as u64,
                _ => return,
            }
        }
        if !self.shut {
            self.shut = ep.shutdown(h).is_ok();
        }
    }
}

impl App for BulkSender {
    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, ev: Event) {
        match ev {
            Event::Connected(h) => {
                self.connected_at = Some(now);
                self.pump(ep, h);
            }
            Event::Writable(h) => self.pump(ep, h),
            Event::Readable(h) => while let Ok(1..) = ep.recv(h, |d| d.len()) {},
            Event::Closed(_, r) => self.closed = Some(r),
            Event::PeerClosed(_) | Event::Accepted(_) | Event::Deadline(_) => {}
        }
    }
}

/// MAC addresses and the server's address of [`bulk`].
pub const BULK_CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
pub const BULK_SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
/// The port the server of [`bulk`] listens on, at `Family::server`.
pub const BULK_SERVER_PORT: u16 = 9;

/// Room for one connection with large buffers: 1024 chunks of 16 KiB.
pub fn bulk_capacity() -> Capacity {
    Capacity { connections: 16, time_wait: 16, buffers: 1024, buffer_size: 16384, events: 1024, ..Capacity::default() }
}

/// A client sending `total` bytes to a [`Sink`] over pipes with `up`
/// (client to server) and `down` faults, over IPv4; the connection is opened.
pub fn bulk(cfg: TcpConfig, up: Faults, down: Faults, total: u64, seed: u64) -> Pair<BulkSender, Sink> {
    bulk_to(Sink::new().with_idle_timeout(None), cfg, up, down, total, seed)
}

/// The same with another application on the server.
pub fn bulk_to<S: App>(app: S, cfg: TcpConfig, up: Faults, down: Faults, total: u64, seed: u64) -> Pair<BulkSender, S> {
    bulk_over(Family::V4, app, cfg, up, down, total, seed)
}

/// The same over either family.
pub fn bulk_over<S: App>(
    family: Family,
    app: S,
    cfg: TcpConfig,
    up: Faults,
    down: Faults,
    total: u64,
    seed: u64,
) -> Pair<BulkSender, S> {
    let now = Instant::from_secs(1000);
    let mut server = Endpoint::new(cfg, bulk_capacity(), BULK_SERVER_MAC, Secrets::from_bytes([42; 32]), now);
    server.listen(None, BULK_SERVER_PORT, cfg).expect("listen");
    let client = Endpoint::new(cfg, bulk_capacity(), BULK_CLIENT_MAC, Secrets::from_bytes([7; 32]), now);
    let mut p = Pair::new(now, (client, BulkSender::new(total)), (server, app), up, seed);
    p.server.link.set_faults(down);
    let (local, remote) = (family.client(40000), family.server(BULK_SERVER_PORT));
    p.client.ep.connect(now, local, remote, BULK_SERVER_MAC).expect("connect");
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::memory::{self, Bottleneck, GilbertElliott, Verdict};
    use crate::wire;

    both_families!(
        a_transfer_through_a_bottleneck_never_beats_the_link,
        queue_drops_at_a_sub_millisecond_rtt_are_recovered_without_a_timeout,
        the_chosen_data_segment_is_lost_and_retransmitted,
        a_segment_held_back_arrives_late_and_the_stream_stays_in_order,
        corrupted_frames_fail_the_checksum_and_are_counted_by_the_endpoint,
        a_refusing_tx_ring_is_backpressure_not_loss,
        a_ce_marking_bottleneck_holds_the_queue_without_loss,
        burst_loss_is_recovered,
        looking_at_bursts_ahead_changes_nothing,
        an_echo_under_loss_both_ways_keeps_every_frame_within_the_mtu,
    );

    /// Reads every byte and checks it is the next one of [`pattern`].
    #[derive(Default)]
    struct Checker {
        received: u64,
        closed: bool,
    }

    impl App for Checker {
        fn on_event(&mut self, ep: &mut Endpoint, _: Instant, ev: Event) {
            match ev {
                Event::Accepted(h) | Event::Readable(h) | Event::PeerClosed(h) => {
                    while let Ok(n @ 1..) = ep.recv(h, |d| {
                        for (i, &b) in d.iter().enumerate() {
                            assert_eq!(b, pattern(self.received + i as u64), "byte {}", self.received + i as u64);
                        }
                        d.len()
                    }) {
                        self.received += n as u64;
                    }
                    if matches!(ev, Event::PeerClosed(_)) {
                        ep.close(h).unwrap();
                    }
                }
                Event::Closed(_, r) => {
                    assert_eq!(r, CloseReason::Normal);
                    self.closed = true;
                }
                _ => {}
            }
        }
    }

    /// Runs a transfer of `total` bytes to its end; both sides must close.
    #[track_caller]
    fn transfer(p: &mut Pair<BulkSender, Checker>, total: u64) {
        let done = p.drive(Duration::from_secs(600), |p| {
            p.client.app.closed.is_some() && p.server.app.closed && p.server.ep.connections() == 0
        });
        assert!(done, "stuck: {} of {total} bytes, sender {:?}", p.server.app.received, p.client.ep.stats);
        assert_eq!(p.server.app.received, total);
        assert_eq!(p.client.app.closed, Some(CloseReason::Normal));
    }

    fn pair_with(fam: Family, up: Faults, down: Faults, total: u64) -> Pair<BulkSender, Checker> {
        bulk_over(fam, Checker::default(), TcpConfig::default(), up, down, total, 1)
    }

    fn wire_errors(ep: &Endpoint) -> u64 {
        ep.wire_errors.iter().sum::<u64>() + ep.not_tcp
    }

    /// Data both ways with loss both ways (an echo): each side holds the
    /// other's segments beyond holes, so its own full data segments carry
    /// SACK blocks. Over a 1500-byte MTU none may outgrow it (RFC 6691 §2);
    /// one that did was dropped by the link, and so was every resend of it,
    /// until the connection stalled.
    fn an_echo_under_loss_both_ways_keeps_every_frame_within_the_mtu(fam: Family) {
        let f = Faults { loss: 0.02, delay: Duration::from_millis(1), mtu: Some(1500), ..Faults::default() };
        let echo = crate::app::echo::Echo::new(16).with_idle_timeout(None);
        let mut p = bulk_over(fam, echo, TcpConfig::default(), f, f, 2_000_000, 3);
        let done = p.drive(Duration::from_secs(600), |p| p.client.app.closed.is_some());
        let (up, down) = (p.client.link.stats(), p.server.link.stats());
        assert!(
            done,
            "stuck: {} written, over the MTU: {} up, {} down",
            p.client.app.written, up.mtu_dropped, down.mtu_dropped
        );
        assert_eq!(p.client.app.closed, Some(CloseReason::Normal));
        assert_eq!((up.mtu_dropped, down.mtu_dropped), (0, 0));
        assert!(up.lost > 0 && down.lost > 0, "loss both ways: {up:?} {down:?}");
    }

    fn a_transfer_through_a_bottleneck_never_beats_the_link(fam: Family) {
        let rtt = Duration::from_millis(10);
        let f = Faults { delay: rtt / 2, bottleneck: Some(Bottleneck::bdp(100_000_000, rtt)), ..Faults::default() };
        let total = 2_000_000;
        let mut p = pair_with(fam, f, f, total);
        let start = p.now;
        transfer(&mut p, total);
        let st = p.client.link.stats();
        // Slow start may overshoot the one-BDP queue (drops are recovered);
        // whatever it does, no frame beats the link.
        assert!(st.queued > total / 1500, "{st:?}");
        // Every frame of the transfer crossed the link at 100 Mbit/s (at
        // least 66 bytes of headers each: Ethernet, IPv4, TCP).
        let wire_bits = (total + st.queued * 66) as f64 * 8.0;
        assert!((p.now - start).as_secs_f64() >= wire_bits / 100e6);
    }

    /// RACK times transmissions in microseconds (RFC 8985 §6.2, as Linux):
    /// at a 40 µs RTT (the testbed's veth) slow start overshoots a one-BDP
    /// queue (17 frames) by about a hundred segments, and recovery repairs
    /// them all by ACK clock. With a millisecond clock every RACK comparison
    /// was a tie and each loss waited for the next millisecond: this
    /// transfer took an RTO and ran at 1.5 % of the link.
    fn queue_drops_at_a_sub_millisecond_rtt_are_recovered_without_a_timeout(fam: Family) {
        let rtt = Duration::from_micros(40);
        let f = Faults { delay: rtt / 2, bottleneck: Some(Bottleneck::bdp(5_000_000_000, rtt)), ..Faults::default() };
        let total = 2_000_000;
        let mut p = pair_with(fam, f, f, total);
        let start = p.now;
        transfer(&mut p, total);
        assert!(p.client.link.stats().queue_dropped > 50, "{:?}", p.client.link.stats());
        assert_eq!(p.client.ep.stats.rto_expiries, 0);
        let mbit = total as f64 * 8.0 / (p.now - start).as_secs_f64() / 1e6;
        assert!(mbit > 2_000.0, "{mbit:.0} Mbit/s of 5,000");
    }

    /// Segments sent again, by any of the ways loss recovery has.
    fn resent(ep: &Endpoint) -> u64 {
        let s = &ep.stats;
        s.retransmits + s.fast_retransmits + s.sack_retransmits + s.tlp_probes
    }

    fn the_chosen_data_segment_is_lost_and_retransmitted(fam: Family) {
        let mut p = pair_with(fam, Faults::default(), Faults::default(), 100_000);
        p.client.link.set_filter(Some(memory::drop_nth(&[5], memory::is_data)));
        transfer(&mut p, 100_000);
        assert_eq!(p.client.link.stats().filtered, 1);
        assert!(resent(&p.client.ep) >= 1);
    }

    fn a_segment_held_back_arrives_late_and_the_stream_stays_in_order(fam: Family) {
        let f = Faults { delay: Duration::from_millis(1), ..Faults::default() };
        let mut p = pair_with(fam, f, f, 100_000);
        p.client.link.set_filter(Some(memory::hold_nth(4, 3, memory::is_data)));
        transfer(&mut p, 100_000);
        assert_eq!(p.client.link.stats().reordered, 1);
    }

    fn corrupted_frames_fail_the_checksum_and_are_counted_by_the_endpoint(fam: Family) {
        // One chosen data segment corrupted: the server counts one bad
        // frame, and the segment is sent again.
        let mut p = pair_with(fam, Faults::default(), Faults::default(), 100_000);
        let mut data = 0;
        p.client.link.set_filter(Some(Box::new(move |_, f| {
            data += memory::is_data(f) as u32;
            if data == 3 && memory::is_data(f) {
                Verdict::Corrupt
            } else {
                Verdict::Pass
            }
        })));
        transfer(&mut p, 100_000);
        assert_eq!(p.client.link.stats().corrupted, 1);
        assert_eq!(wire_errors(&p.server.ep), 1);
        assert_eq!(p.server.ep.wire_errors[wire::Error::BadTcpChecksum as usize], 1);
        assert!(resent(&p.client.ep) >= 1);

        // At random, both ways: every corrupted frame is caught.
        // The receiver sends few frames (an ACK per batch of segments), so
        // its direction is corrupted more often to be sure to see some.
        let f = Faults { corrupt: 0.03, delay: Duration::from_micros(300), ..Faults::default() };
        let mut p = pair_with(fam, f, Faults { corrupt: 0.2, ..f }, 300_000);
        transfer(&mut p, 300_000);
        let (up, down) = (p.client.link.stats(), p.server.link.stats());
        assert!(up.corrupted > 5 && down.corrupted > 0, "{up:?} {down:?}");
        assert_eq!(wire_errors(&p.server.ep), up.corrupted);
        assert_eq!(wire_errors(&p.client.ep), down.corrupted);
    }

    fn a_refusing_tx_ring_is_backpressure_not_loss(fam: Family) {
        let f = Faults { delay: Duration::from_millis(1), ..Faults::default() };
        let mut p = pair_with(fam, f, f, 300_000);
        p.client.link.set_tx_refusal(Some(memory::refuse_every(4)));
        p.server.link.set_tx_refusal(Some(memory::refuse_every(3)));
        transfer(&mut p, 300_000);
        let (c, s) = (&p.client.ep.stats, &p.server.ep.stats);
        assert!(p.client.link.stats().tx_refused > 20 && p.server.link.stats().tx_refused > 10);
        assert!(c.tx_full_deferred > 0 && s.tx_full_deferred > 0);
        assert_eq!((c.rto_expiries, c.retransmits, s.rto_expiries), (0, 0, 0), "nothing was lost");
    }

    /// An ECN-capable bottleneck (marks CE above 30 kB queued, drops only
    /// at twice the BDP): the sender backs off on the marks alone, so the
    /// queue stays near the mark and nothing is lost or sent twice. The
    /// same link without ECN lets the queue grow several times deeper
    /// (until the window, not the path, limits it).
    fn a_ce_marking_bottleneck_holds_the_queue_without_loss(fam: Family) {
        let rtt = Duration::from_millis(10);
        let bdp = Bottleneck::bdp(100_000_000, rtt);
        let limit = 2 * 125_000;
        let mark = 30_000;
        let run = |ecn| {
            let b = Bottleneck { queue: memory::QueueLimit::Bytes(limit), mark_ce_above: Some(mark), ..bdp };
            let up = Faults { delay: rtt / 2, bottleneck: Some(b), ..Faults::default() };
            let down = Faults { delay: rtt / 2, ..Faults::default() };
            let cfg = TcpConfig { ecn, ..TcpConfig::default() };
            let total = 20_000_000;
            let mut p = bulk_over(fam, Checker::default(), cfg, up, down, total, 1);
            transfer(&mut p, total);
            p
        };
        let p = run(crate::tcp::Ecn::On);
        let (st, c, s) = (p.client.link.stats(), &p.client.ep.stats, &p.server.ep.stats);
        assert_eq!((c.ecn_negotiated, s.ecn_negotiated), (1, 1));
        assert!(st.ce_marked > 0 && s.ecn_ce_received == st.ce_marked, "{st:?}");
        assert!(c.ecn_cwnd_reductions > 0 && c.ecn_ece_received >= c.ecn_cwnd_reductions);
        assert_eq!(st.queue_dropped, 0);
        assert_eq!((c.retransmits, c.fast_retransmits, c.sack_retransmits, c.rto_expiries), (0, 0, 0, 0));
        let ecn_queue = st.max_queue_bytes;
        assert!(ecn_queue < limit as u64 / 2, "the queue stays near the mark: {ecn_queue}");

        let p = run(crate::tcp::Ecn::Off);
        let (st, c) = (p.client.link.stats(), &p.client.ep.stats);
        assert_eq!((st.ce_marked, c.ecn_negotiated), (0, 0));
        assert!(st.max_queue_bytes > 3 * ecn_queue, "{st:?}");
    }

    /// The look-ahead (`Endpoint::prefetch`, `Link::poll_rx_looking`) only
    /// starts loads: the same lossy, reordering transfer with and without it
    /// ends at the same instant with the same counters on both sides.
    fn looking_at_bursts_ahead_changes_nothing(fam: Family) {
        let lossy = Faults {
            loss: 0.03,
            jitter: Duration::from_micros(300),
            delay: Duration::from_millis(1),
            ..Faults::default()
        };
        let clean = Faults { delay: Duration::from_millis(1), ..Faults::default() };
        let run = |min: usize| {
            let mut p = pair_with(fam, lossy, clean, 400_000);
            p.client.ep.set_look_ahead_min(min);
            p.server.ep.set_look_ahead_min(min);
            assert_eq!(p.server.ep.looks_ahead(), min == 0);
            transfer(&mut p, 400_000);
            (p.now, format!("{:?}", p.client.ep.stats), format!("{:?}", p.server.ep.stats))
        };
        let (looked, plain) = (run(0), run(usize::MAX));
        assert_eq!(looked, plain);
    }

    fn burst_loss_is_recovered(fam: Family) {
        let ge = GilbertElliott::bursty(0.02, 3.0);
        let f = Faults { burst: Some(ge), delay: Duration::from_millis(2), ..Faults::default() };
        let mut p = pair_with(fam, f, Faults { delay: Duration::from_millis(2), ..Faults::default() }, 300_000);
        transfer(&mut p, 300_000);
        assert!(p.client.link.stats().burst_lost > 0);
    }
}
