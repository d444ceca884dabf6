//! Random segment sequences against an endpoint: no panic, and the
//! invariants hold after every step.

use super::super::tcb::NEVER;
use super::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Segment { port: u16, control: u8, seq: u32, ack: u32, window: u16, len: usize, ts: Option<u32> },
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
              proptest::option::of(0u32..5000))
            .prop_map(|(port, control, seq, ack, window, len, ts)| Step::Segment { port, control, seq, ack, window, len, ts }),
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
                Step::Segment { port, control, seq, ack, window, len, ts } => {
                    h.client_port = 1000 + port;
                    let (base_seq, base_ack) = match handle_for(&h, port).and_then(|c| h.ep.tcb(c)) {
                        Some(t) if control & 0x20 == 0 => (t.rcv_nxt.0, t.snd_una.0),
                        _ => (CLIENT_ISN.0, 0),
                    };
                    let s = S {
                        control: control & 0x1f,
                        seq: SeqNumber(base_seq.wrapping_add(seq)),
                        ack: SeqNumber(base_ack.wrapping_add(ack)),
                        window,
                        mss: (control & 0x2 != 0).then_some(1460),
                        ts: ts.map(|v| (v, 0)),
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
