//! Random segment sequences against an endpoint: no panic, and the
//! invariants hold after every step. And two endpoints over a simulated
//! path with random faults (bottleneck, Bernoulli and burst loss, chosen
//! drops, reordering, duplication, corruption, a refusing TX ring): every
//! byte arrives once and in order both ways, and both sides close.

use super::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Segment {
        port: u16,
        control: u8,
        seq: u32,
        ack: u32,
        window: u16,
        len: usize,
        ts: Option<u32>,
        /// A SACK block, as offsets from SND.UNA (RFC 2018; may be invalid).
        sack: Option<(u32, u32)>,
    },
    Advance(u64),
    Write(u16, usize),
    Read(u16),
    Close(u16),
    Shutdown(u16),
    Abort(u16),
}

fn step() -> impl Strategy<Value = Step> {
    let seq = prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        0u32..70_000,
        any::<u32>(),
        (0u32..5).prop_map(|d| d.wrapping_sub(2)),
    ];
    prop_oneof![
        6 => (0u16..3, 0u8..64, seq.clone(), seq, any::<u16>(), prop_oneof![Just(0usize), 1usize..3000],
              proptest::option::of(0u32..5000), proptest::option::of((0u32..40_000, 0u32..40_000)))
            .prop_map(|(port, control, seq, ack, window, len, ts, sack)| {
                Step::Segment { port, control, seq, ack, window, len, ts, sack }
            }),
        2 => (0u64..300_000).prop_map(Step::Advance),
        1 => (0u16..3, 0usize..40_000).prop_map(|(p, n)| Step::Write(p, n)),
        1 => (0u16..3).prop_map(Step::Read),
        1 => (0u16..3).prop_map(Step::Close),
        1 => (0u16..3).prop_map(Step::Shutdown),
        1 => (0u16..3).prop_map(Step::Abort),
    ]
}

/// The handle of the connection with the client on `port`, if any.
fn handle_for(h: &Harness, port: u16) -> Option<Handle> {
    let mut found = None;
    h.ep.for_each_connection(|hd, t, _| {
        if t.remote_port == 1000 + port {
            found = Some(hd);
        }
    });
    found
}

fn check_invariants(h: &Harness) {
    let mut half_open = 0;
    let mut n = 0;
    let mut held = 0;
    h.ep.for_each_connection(|hd, _, tcb| {
        n += 1;
        assert!(tcb.snd_una <= tcb.snd_nxt, "snd_una {} > snd_nxt {}", tcb.snd_una, tcb.snd_nxt);
        assert!(tcb.snd_nxt <= tcb.snd_max);
        assert!(tcb.flight() as usize <= tcb.tx.len() + 2, "flight {} tx {}", tcb.flight(), tcb.tx.len());
        let max = crate::tcp::config::DEFAULT_MAX_BUFFER as usize;
        assert!(tcb.rcv_wnd() as usize <= max, "window {}", tcb.rcv_wnd());
        assert!(tcb.rx.len() <= max && tcb.tx.len() <= max);
        held += tcb.rx.chunks(h.ep.pool()) + tcb.tx.chunks(h.ep.pool());
        // TIME-WAIT stays in the table only while it holds bytes the
        // application may still read after its `shutdown` (`output`: at
        // most 2MSL, on a timer).
        let held_for_reading = tcb.state == State::TimeWait
            && !tcb.rx.is_empty()
            && !tcb.has(super::super::tcb::flag::APP_CLOSED)
            && tcb.has_deadline();
        assert!(
            !matches!(tcb.state, State::Closed | State::TimeWait | State::Listen) || held_for_reading,
            "{} left in table",
            tcb.state
        );
        if tcb.state == State::SynReceived && tcb.has(super::super::tcb::flag::PASSIVE) {
            half_open += 1;
        }
        if tcb.has_deadline() {
            assert!(h.ep.timer_armed(hd), "{}: deadline {:?} but no timer", tcb.state, tcb.rto_at);
        }
    });
    assert_eq!(half_open, h.ep.half_open());
    if let Err(e) = h.ep.check_invariants() {
        panic!("{e}");
    }
    assert!(h.ep.armed_timers() <= n);
    assert_eq!(h.ep.buffers_free() + held, 64, "every chunk free or in one ring");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn random_segments_never_break_the_endpoint(steps in proptest::collection::vec(step(), 1..80), cookies in any::<bool>()) {
        let cfg = TcpConfig {
            syn_cookies: if cookies { CookieMode::Always } else { CookieMode::Auto },
            ..TcpConfig::default()
        };
        let mut h = Harness::new(cfg);
        // Segments are anchored on the connection's real sequence numbers
        // half the time, so the steps reach deep states.
        for s in steps {
            match s {
                Step::Segment { port, control, seq, ack, window, len, ts, sack } => {
                    h.client_port = 1000 + port;
                    let (base_seq, base_ack, una) = match handle_for(&h, port).and_then(|c| h.ep.tcb(c)) {
                        Some(t) if control & 0x20 == 0 => (t.rcv_nxt.0, t.snd_una.0, t.snd_una),
                        Some(t) => (CLIENT_ISN.0, 0, t.snd_una),
                        _ => (CLIENT_ISN.0, 0, SeqNumber(0)),
                    };
                    let mut blocks = [None; wire::MAX_SACK_BLOCKS];
                    if let Some((a, b)) = sack {
                        blocks[0] = Some((una + a as usize, una + a as usize + b as usize));
                    }
                    let s = S {
                        control: control & 0x1f,
                        seq: SeqNumber(base_seq.wrapping_add(seq)),
                        ack: SeqNumber(base_ack.wrapping_add(ack)),
                        window,
                        mss: (control & 0x2 != 0).then_some(1460),
                        ts: ts.map(|v| (v, 0)),
                        sack: blocks,
                        payload: vec![0x5a; len.min(1400)],
                        ..S::default()
                    };
                    h.send(s);
                }
                Step::Advance(ms) => { h.advance(Duration::from_millis(ms)); }
                Step::Write(p, n) => if let Some(c) = handle_for(&h, p) {
                    let _ = h.ep.write(c, &vec![1u8; n]);
                    h.flush();
                },
                Step::Read(p) => if let Some(c) = handle_for(&h, p) {
                    let mut b = [0u8; 5000];
                    let _ = h.ep.read(c, &mut b);
                    h.flush();
                },
                Step::Close(p) => if let Some(c) = handle_for(&h, p) { let _ = h.ep.close(c); h.flush(); },
                Step::Shutdown(p) => if let Some(c) = handle_for(&h, p) { let _ = h.ep.shutdown(c); h.flush(); },
                Step::Abort(p) => if let Some(c) = handle_for(&h, p) { let _ = h.ep.abort(c); h.flush(); },
            }
            check_invariants(&h);
        }
        // Everything ends: after enough time no connection, timer or buffer is left.
        for _ in 0..40 {
            h.advance(Duration::from_secs(600));
        }
        h.advance(Duration::from_secs(3 * 3600));
        for _ in 0..20 {
            h.advance(Duration::from_secs(600));
        }
        prop_assert_eq!(h.ep.connections(), 0);
        prop_assert_eq!(h.ep.time_wait(), 0);
        prop_assert_eq!(h.ep.armed_timers(), 0);
        prop_assert_eq!(h.ep.buffers_free(), 64);
        prop_assert_eq!(h.ep.half_open(), 0);
    }
}

// ---- two endpoints over a faulty simulated path ---------------------------

use crate::app::App;
use crate::link::memory::{self, Bottleneck, Faults, GilbertElliott, QueueLimit};
use crate::sim::Pair;
use std::collections::HashMap;

/// The byte at offset `k` of the stream `dir` (0 client to server) of
/// connection `conn`.
fn byte_of(conn: u16, dir: u8, k: u64) -> u8 {
    (k.wrapping_mul(2_654_435_761) ^ (conn as u64).wrapping_mul(97) ^ (dir as u64 * 0x5bd1_e995)).to_le_bytes()[1]
}

/// One connection's progress, on one side.
#[derive(Debug, Default)]
struct Stream {
    conn: u16,
    to_send: u64,
    sent: u64,
    received: u64,
    shut: bool,
    closed: Option<CloseReason>,
    /// This side's ISN and the peer's, read when the connection was
    /// announced (the control block keeps neither once established): the
    /// application had read nothing and sent nothing yet, so SND.UNA was
    /// ISS + 1 and RCV.NXT was IRS + 1 plus what its receive ring held
    /// (and the peer's FIN).
    isns: Option<(SeqNumber, SeqNumber)>,
}

/// Both sides run this: send the planned bytes, half-close, read and
/// check every byte, close when the peer has.
struct Duplex {
    dir: u8,
    /// Bytes each connection (by client port offset) sends from this side.
    plan: Vec<u64>,
    streams: HashMap<Handle, Stream>,
    /// Connections that ended before they were established (the client's
    /// handshake timed out on a lossy path).
    never_connected: usize,
    errors: Vec<String>,
}

impl Duplex {
    fn pump(&mut self, ep: &mut Endpoint, h: Handle) {
        let dir = self.dir;
        let Some(s) = self.streams.get_mut(&h) else { return };
        loop {
            let (conn, at) = (s.conn, s.received);
            let mut bad = None;
            let n = ep
                .recv(h, |d| {
                    bad = d.iter().enumerate().position(|(i, &b)| b != byte_of(conn, 1 - dir, at + i as u64));
                    d.len()
                })
                .unwrap_or(0);
            if let Some(i) = bad {
                self.errors.push(format!("conn {conn} dir {}: byte {} wrong", 1 - dir, at + i as u64));
            }
            if n == 0 {
                break;
            }
            s.received += n as u64;
        }
        let mut chunk = [0u8; 4096];
        while s.sent < s.to_send {
            let n = (s.to_send - s.sent).min(chunk.len() as u64) as usize;
            for (i, b) in chunk[..n].iter_mut().enumerate() {
                *b = byte_of(s.conn, dir, s.sent + i as u64);
            }
            match ep.write(h, &chunk[..n]) {
                Ok(w @ 1..) => s.sent += w as u64,
                _ => break,
            }
        }
        if s.sent == s.to_send && !s.shut {
            s.shut = ep.shutdown(h).is_ok();
        }
    }
}

impl App for Duplex {
    fn on_event(&mut self, ep: &mut Endpoint, _: Instant, ev: Event) {
        match ev {
            Event::Accepted(h) | Event::Connected(h) => {
                let port = ep.tuple(h).map_or(0, |t| if self.dir == 0 { t.local_port } else { t.remote_port });
                let conn = port.wrapping_sub(40000);
                let to_send = self.plan.get(conn as usize).copied().unwrap_or(0);
                let isns = ep.tcb(h).filter(|t| t.state.is_synchronized()).map(|t| {
                    let fin = t.has(crate::tcp::tcb::flag::FIN_RECEIVED) as usize;
                    (t.snd_una - 1, t.rcv_nxt - (1 + t.rx.len() + fin))
                });
                self.streams.insert(h, Stream { conn, to_send, isns, ..Stream::default() });
                self.pump(ep, h);
            }
            Event::Readable(h) | Event::Writable(h) | Event::PeerClosed(h) => self.pump(ep, h),
            Event::Closed(h, r) => match self.streams.get_mut(&h) {
                Some(s) => s.closed = Some(r),
                None => self.never_connected += 1,
            },
            Event::Deadline(_) => {}
        }
    }
}

#[derive(Clone, Debug)]
struct Path {
    delay_us: u64,
    jitter_us: u64,
    loss: f64,
    burst: Option<(f64, f64)>,
    duplicate: f64,
    corrupt: f64,
    /// Mbit/s and queue frames.
    bottleneck: Option<(u64, usize)>,
    /// Drop these data frames, hold one back by a distance.
    drops: Vec<u64>,
    hold: Option<(u64, u32)>,
    refuse_every: Option<u64>,
}

fn path() -> impl Strategy<Value = Path> {
    (
        (0u64..20_000, prop_oneof![3 => Just(0u64), 1 => 1u64..3000]),
        (prop_oneof![Just(0.0), 0.0..0.04], proptest::option::weighted(0.2, (0.005..0.03, 1.0..4.0))),
        (prop_oneof![Just(0.0), 0.0..0.03], prop_oneof![Just(0.0), 0.0..0.02]),
        proptest::option::weighted(0.5, (1u64..100, 4usize..200)),
        (proptest::collection::vec(1u64..60, 0..3), proptest::option::of((1u64..60, 1u32..8))),
        proptest::option::weighted(0.2, 2u64..10),
    )
        .prop_map(
            |((delay_us, jitter_us), (loss, burst), (duplicate, corrupt), bottleneck, (drops, hold), refuse_every)| {
                Path { delay_us, jitter_us, loss, burst, duplicate, corrupt, bottleneck, drops, hold, refuse_every }
            },
        )
}

fn set_up(link: &crate::link::Memory, p: &Path) {
    link.set_faults(Faults {
        loss: p.loss,
        duplicate: p.duplicate,
        delay: Duration::from_micros(p.delay_us),
        jitter: Duration::from_micros(p.jitter_us),
        burst: p.burst.map(|(rate, len)| GilbertElliott::bursty(rate, len)),
        corrupt: p.corrupt,
        mtu: None,
        bottleneck: p.bottleneck.map(|(mbit, frames)| Bottleneck {
            rate_bps: mbit * 1_000_000,
            queue: QueueLimit::Frames(frames),
            mark_ce_above: None,
        }),
    });
    // Only one filter per pipe: the chosen drops, else the held frame.
    if !p.drops.is_empty() {
        link.set_filter(Some(memory::drop_nth(&p.drops, memory::is_data)));
    } else if let Some((nth, distance)) = p.hold {
        link.set_filter(Some(memory::hold_nth(nth, distance, memory::is_data)));
    }
    link.set_tx_refusal(p.refuse_every.map(memory::refuse_every));
}

/// Each synchronized connection's RCV.NXT counts exactly the bytes its
/// application read, those its receive ring holds and the peer's FIN, and
/// never passes what the peer sent: the two sides agree on the sequence space.
fn receive_accounting(me: &Endpoint, peer: &Endpoint, app: &Duplex, peer_app: &Duplex) -> Option<String> {
    let mut wrong = None;
    me.for_each_connection(|h, t, tcb| {
        if wrong.is_some() || !tcb.state.is_synchronized() {
            return;
        }
        // Not announced yet (the event waits in the queue): nothing to check.
        let Some((_, irs)) = app.streams.get(&h).and_then(|s| s.isns) else { return };
        let fin = tcb.has(crate::tcp::tcb::flag::FIN_RECEIVED) as u64;
        let counted = (tcb.rcv_nxt - (irs + 1)) as u64;
        let read = app.streams.get(&h).map_or(0, |s| s.received);
        if counted != read + tcb.rx.len() as u64 + fin {
            wrong = Some(format!(
                "port {} RCV.NXT counts {counted} bytes, read {read} + held {} + FIN {fin} (out of order {:?})",
                t.local_port,
                tcb.rx.len(),
                tcb.rx.out_of_order(me.pool()).iter().collect::<Vec<_>>()
            ));
        }
        peer.for_each_connection(|ph, pt, ptcb| {
            let peer_iss = peer_app.streams.get(&ph).and_then(|s| s.isns).map(|(iss, _)| iss);
            let same = pt.local_port == t.remote_port && pt.remote_port == t.local_port && peer_iss == Some(irs);
            if same && tcb.rcv_nxt > ptcb.snd_max {
                wrong.get_or_insert(format!(
                    "port {} RCV.NXT {} beyond the peer's SND.MAX {}",
                    t.local_port, tcb.rcv_nxt, ptcb.snd_max
                ));
            }
        });
    });
    wrong
}

fn duplex(dir: u8, plan: Vec<u64>) -> Duplex {
    Duplex { dir, plan, streams: HashMap::new(), never_connected: 0, errors: Vec::new() }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_byte_arrives_once_and_in_order_both_ways_over_a_faulty_path(
        up in path(),
        down in path(),
        plans in proptest::collection::vec((0u64..120_000, 0u64..120_000), 1..4),
        sack in any::<bool>(),
        timestamps in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Keepalive within the hour: a peer whose connection timed out on a
        // path that lost every ACK it was sent (and the RST after them) leaves
        // this side half-closed after `shutdown` (FIN-WAIT-2, watched by
        // keepalive, as in Linux), and keepalive is what ends it.
        let keepalive = Keepalive { idle: Duration::from_secs(600), ..Keepalive::default() };
        let cfg = TcpConfig { sack, timestamps, keepalive: Some(keepalive), ..TcpConfig::default() };
        // 64 connections give a half-open budget of 8: every handshake is
        // stateful (a cookie connection whose first ACK is lost is reset
        // when data arrives, as in Linux; not what this test is about).
        let cap = Capacity { connections: 64, time_wait: 8, buffers: 32, buffer_size: 16384, events: 256, ..Capacity::default() };
        let now = Instant::from_secs(1000);
        let mut server = Endpoint::new(cfg, cap, SERVER_MAC, Secrets::from_bytes([42; 32]), now);
        server.listen(None, SERVER_PORT, cfg).unwrap();
        let client = Endpoint::new(cfg, cap, CLIENT_MAC, Secrets::from_bytes([7; 32]), now);
        let ups: Vec<u64> = plans.iter().map(|p| p.0).collect();
        let downs: Vec<u64> = plans.iter().map(|p| p.1).collect();
        let mut p = Pair::new(now, (client, duplex(0, ups.clone())), (server, duplex(1, downs.clone())), Faults::default(), seed);
        set_up(&p.client.link, &up);
        set_up(&p.server.link, &down);
        for i in 0..plans.len() as u16 {
            let local = std::net::SocketAddr::from((CLIENT_IP, 40000 + i));
            let remote = std::net::SocketAddr::from((SERVER_IP, SERVER_PORT));
            p.client.ep.connect(p.now, local, remote, SERVER_MAC).unwrap();
        }
        let mut broken = None;
        let ended = p.drive(Duration::from_secs(3600), |p| {
            for (side, ep, link) in [("client", &p.client.ep, &p.client.link), ("server", &p.server.ep, &p.server.link)] {
                match ep.check_invariants() {
                    // Output a full TX ring deferred is done at the next
                    // flush (`Endpoint::output`), and so, until then, is
                    // what output does besides sending: reaping a connection
                    // that reached CLOSED or TIME-WAIT, and releasing the
                    // half-open slot of one that left SYN-RECEIVED. The
                    // invariants do not allow for that yet; the end of the
                    // test still requires every connection gone.
                    Err(e)
                        if link.stats().tx_refused > 0
                            && (e.ends_with("left in the connection table") || e.ends_with("holds a half-open slot")) => {}
                    Err(e) => {
                        broken.get_or_insert(format!("{side}: {e}"));
                    }
                    Ok(()) => {}
                }
            }
            for (side, me, peer, app, peer_app) in [
                ("client", &p.client.ep, &p.server.ep, &p.client.app, &p.server.app),
                ("server", &p.server.ep, &p.client.ep, &p.server.app, &p.client.app),
            ] {
                if let Some(e) = receive_accounting(me, peer, app, peer_app) {
                    broken.get_or_insert(format!("{side}: {e}"));
                }
            }
            broken.is_some()
                || (p.client.ep.connections() == 0
                    && p.server.ep.connections() == 0
                    && p.client.ep.time_wait() == 0
                    && p.server.ep.time_wait() == 0)
        });
        prop_assert!(broken.is_none(), "{}", broken.unwrap());
        if !ended {
            for (side, ep) in [("client", &p.client.ep), ("server", &p.server.ep)] {
                ep.for_each_connection(|h, t, tcb| {
                    eprintln!("{side} {h:?} {}:{} {:?} una {} nxt {} max {} tx {} rx {} rcv_nxt {} adv {} wnd {} cwnd {} flags {:#x} rto_at {:?} retries {}",
                        t.local_port, t.remote_port, tcb.state, tcb.snd_una, tcb.snd_nxt, tcb.snd_max, tcb.tx.len(), tcb.rx.len(), tcb.rcv_nxt, tcb.rcv_adv, tcb.snd_wnd, tcb.cwnd, tcb.flags, tcb.rto_at, tcb.retries);
                });
            }
        }
        prop_assert!(ended, "still open after an hour: client {:?} server {:?}", p.client.app.streams, p.server.app.streams);
        prop_assert!(p.client.app.errors.is_empty() && p.server.app.errors.is_empty(),
            "{:?} {:?}", p.client.app.errors, p.server.app.errors);
        // A handshake may time out only on a lossy path.
        let lossy = up.loss + down.loss + up.corrupt + down.corrupt > 0.0 || up.burst.is_some() || down.burst.is_some();
        prop_assert!(p.client.app.never_connected == 0 || lossy);
        prop_assert_eq!(p.client.app.streams.len() + p.client.app.never_connected, plans.len());
        for (side, app, peer_plan) in [("client", &p.client.app, &downs), ("server", &p.server.app, &ups)] {
            for s in app.streams.values() {
                match s.closed {
                    // A clean end: everything each way, exactly once.
                    Some(CloseReason::Normal) => {
                        prop_assert_eq!(s.sent, s.to_send, "{} conn {}", side, s.conn);
                        prop_assert_eq!(s.received, peer_plan[s.conn as usize], "{} conn {}", side, s.conn);
                    }
                    // A hopeless path may time the connection out (or the
                    // peer's timeout resets it); what arrived was still in order.
                    Some(CloseReason::TimedOut | CloseReason::Reset) => {
                        prop_assert!(up.loss + down.loss + up.corrupt + down.corrupt > 0.0 || up.burst.is_some() || down.burst.is_some());
                        prop_assert!(s.received <= peer_plan[s.conn as usize]);
                    }
                    r => prop_assert!(false, "{} conn {} ended {:?}", side, s.conn, r),
                }
            }
        }
        for ep in [&p.client.ep, &p.server.ep] {
            prop_assert_eq!(ep.buffers_free(), 32);
            prop_assert_eq!(ep.armed_timers(), 0);
        }
    }
}

/// A payload of `len` bytes drawn from `seed`.
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Loss recovery under random loss, duplication and reordering (jitter)
    /// both ways, SACK on: every byte a client sends to the echo server
    /// comes back once and in order, and the endpoints' invariants (the
    /// SACK scoreboard within SND.UNA..SND.MAX among them) hold throughout.
    #[test]
    fn random_loss_reorder_and_duplication_deliver_every_byte_once_in_order(
        seed in any::<u64>(),
        loss in 0.0f64..0.15,
        duplicate in 0.0f64..0.05,
        delay_us in 100u64..5000,
        jitter_us in 0u64..3000,
        sizes in proptest::collection::vec(1usize..120_000, 1..4),
    ) {
        use crate::app::echo::Echo;
        use crate::app::testutil::{conn, connect, pair, ClientConn, CONNECTIONS};
        let faults = Faults {
            loss,
            duplicate,
            delay: Duration::from_micros(delay_us),
            jitter: Duration::from_micros(jitter_us),
            ..Faults::default()
        };
        let mut p = pair(Echo::new(CONNECTIONS), faults, seed);
        let mut sent = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let data = payload(seed ^ i as u64, n);
            let hd = connect(&mut p, 30000 + i as u16, ClientConn { shutdown_when_sent: true, ..ClientConn::sending(&data) });
            sent.push((hd, data));
        }
        let mut broken = None;
        let done = p.drive(Duration::from_secs(3600), |p| {
            for ep in [&p.client.ep, &p.server.ep] {
                if let Err(e) = ep.check_invariants() {
                    broken.get_or_insert(e);
                }
            }
            broken.is_some() || p.client.app.conns.values().all(ClientConn::done)
        });
        prop_assert!(broken.is_none(), "{:?}", broken);
        prop_assert!(done, "connections did not finish");
        for (hd, data) in &sent {
            let c = conn(&p, *hd);
            prop_assert!(c.received == *data, "{} of {} bytes came back", c.received.len(), data.len());
        }
    }
}
