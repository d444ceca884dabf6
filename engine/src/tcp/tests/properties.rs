//! Random segment sequences against an endpoint: no panic, and the
//! invariants hold after every step.

use super::super::tcb::NEVER;
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
    h.ep.for_each_connection(|hd, _, tcb| {
        n += 1;
        assert!(tcb.snd_una <= tcb.snd_nxt, "snd_una {} > snd_nxt {}", tcb.snd_una, tcb.snd_nxt);
        assert!(tcb.snd_nxt <= tcb.snd_max);
        assert!(tcb.flight() as usize <= tcb.tx.len() + 2, "flight {} tx {}", tcb.flight(), tcb.tx.len());
        assert!(tcb.rcv_wnd() <= 16384 + 65535, "window {}", tcb.rcv_wnd());
        assert!(tcb.rx.len() <= 16384 && tcb.tx.len() <= 16384);
        assert!(!matches!(tcb.state, State::Closed | State::TimeWait | State::Listen), "{} left in table", tcb.state);
        if tcb.state == State::SynReceived && tcb.has(super::super::tcb::flag::PASSIVE) {
            half_open += 1;
        }
        if tcb.next_deadline() != NEVER {
            assert!(h.ep.timer_armed(hd), "{}: deadline {} but no timer", tcb.state, tcb.next_deadline());
        }
    });
    assert_eq!(half_open, h.ep.half_open());
    if let Err(e) = h.ep.check_invariants() {
        panic!("{e}");
    }
    assert!(h.ep.armed_timers() <= n);
    assert!(h.ep.buffers_free() + 2 * n >= 64);
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
        use crate::link::memory::Faults;
        let faults = Faults {
            loss,
            duplicate,
            delay: Duration::from_micros(delay_us),
            jitter: Duration::from_micros(jitter_us),
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
