//! ECN (RFC 3168 §6.1): negotiation in the three modes, both directions
//! and through SYN cookies; which segments carry ECT(0); the receiver's
//! ECE until CWR; the sender's one reduction per window and its CWR.

use super::*;
use crate::tcp::config::{Congestion, Ecn};
use crate::tcp::tcb::flag;
use crate::wire::ecn::{CE, ECT0, NOT_ECT};

both_families!(
    passive_default_answers_an_ecn_setup_syn_with_ece_alone,
    off_refuses_ecn_and_ignores_the_marks,
    ece_and_ce_are_ignored_on_a_connection_without_ecn,
    active_open_requests_ecn_only_when_on,
    a_retransmitted_syn_gives_up_on_ecn,
    ect_marks_new_data_only,
    ce_is_echoed_until_cwr,
    ece_reduces_the_window_once_per_window_and_sends_cwr,
    ece_during_recovery_is_not_a_second_reduction,
    cookie_connections_remember_ecn_in_the_timestamp,
    a_retransmitted_syn_ack_keeps_ece_and_owes_no_cwr,
);

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);

fn with(ecn: Ecn) -> TcpConfig {
    TcpConfig { ecn, ..TcpConfig::default() }
}

/// An ECN-setup SYN (ECE and CWR) from the client.
fn ecn_syn() -> S {
    S { control: SYN | ECE | CWR, ..syn(CLIENT_ISN) }
}

fn has(h: &Harness, c: Handle, f: u32) -> bool {
    h.ep.tcb(c).unwrap().has(f)
}

/// A passive connection set up with the client's ECN-setup SYN:
/// (harness, connection, our SND.NXT).
fn ecn_conn(f: Family, cfg: TcpConfig) -> (Harness, Handle, SeqNumber) {
    let mut h = Harness::new_over(f, cfg);
    let sa = h.send1(ecn_syn());
    h.send0(seg(ACK, C1, sa.seq + 1));
    let c = h.accepted();
    h.take_events();
    (h, c, sa.seq + 1)
}

fn passive_default_answers_an_ecn_setup_syn_with_ece_alone(f: Family) {
    assert_eq!(TcpConfig::default().ecn, Ecn::Passive, "Linux's default, tcp_ecn = 2");
    let mut h = Harness::new_over(f, TcpConfig::default());
    let sa = h.send1(ecn_syn());
    assert_eq!(sa.control, SYN | ACK | ECE, "ECE, not CWR (§6.1.1)");
    assert_eq!(sa.ecn, NOT_ECT, "no ECT on a SYN-ACK");
    h.send0(seg(ACK, C1, sa.seq + 1));
    let c = h.accepted();
    assert!(has(&h, c, flag::ECN));
    assert_eq!(h.ep.stats.ecn_negotiated, 1);

    // Not an ECN-setup SYN: ECE alone, CWR alone, neither.
    for bits in [ECE, CWR, 0] {
        let mut h = Harness::new_over(f, TcpConfig::default());
        let sa = h.send1(S { control: SYN | bits, ..syn(CLIENT_ISN) });
        assert_eq!(sa.control, SYN | ACK, "bits {bits:#x}");
        h.send0(seg(ACK, C1, sa.seq + 1));
        assert!(!has(&h, h.accepted(), flag::ECN));
        assert_eq!(h.ep.stats.ecn_negotiated, 0);
    }
}

fn off_refuses_ecn_and_ignores_the_marks(f: Family) {
    let (mut h, c, nxt) = ecn_conn(f, with(Ecn::Off));
    assert!(!has(&h, c, flag::ECN));
    assert_eq!(h.ep.stats.ecn_negotiated, 0);
    // CE on a connection without ECN is plain data: delivered, no ECE.
    h.send(S { payload: vec![1; 100], ecn: CE, ..seg(ACK | PSH, C1, nxt) });
    let a = h.advance(Duration::from_millis(50));
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].control, a[0].ack), (ACK, C1 + 100));
    assert_eq!(h.ep.readable(c), 100);
    // Data goes without ECT; an ECE is no congestion signal.
    h.ep.write(c, &[7; 2000]).unwrap();
    let out = h.flush();
    assert!(out.iter().all(|s| s.ecn == NOT_ECT && s.control & (ECE | CWR) == 0));
    let before = (h.ep.tcb(c).unwrap().ssthresh, h.ep.tcb(c).unwrap().cwnd);
    h.send(seg(ACK | ECE, C1 + 100, nxt + 1460));
    let t = h.ep.tcb(c).unwrap();
    assert_eq!(t.ssthresh, before.0, "no reduction without ECN");
    assert!(t.cwnd >= before.1);
    assert_eq!((h.ep.stats.ecn_ece_received, h.ep.stats.ecn_cwnd_reductions, h.ep.stats.ecn_ce_received), (0, 0, 0));
}

fn ece_and_ce_are_ignored_on_a_connection_without_ecn(f: Family) {
    // Passive mode, but the client did not ask.
    let (mut h, c, nxt) = established_over(f);
    h.ep.write(c, &[7; 3000]).unwrap();
    let out = h.flush();
    assert!(out.iter().all(|s| s.ecn == NOT_ECT));
    let ss = h.ep.tcb(c).unwrap().ssthresh;
    h.send(S { payload: vec![1; 10], ecn: CE, ..seg(ACK | PSH | ECE, C1, nxt + 1460) });
    assert_eq!(h.ep.tcb(c).unwrap().ssthresh, ss);
    let a = h.advance(Duration::from_millis(50));
    assert!(a.iter().all(|s| s.control & ECE == 0));
    assert_eq!(h.ep.readable(c), 10);
    assert_eq!((h.ep.stats.ecn_ece_received, h.ep.stats.ecn_ce_received), (0, 0));
}

/// Our active open: the SYN asks only in `On`; the SYN-ACK's answer
/// decides (ECE alone: yes; ECE with CWR, or none: no).
fn active_open_requests_ecn_only_when_on(f: Family) {
    for (mode, answer, negotiated) in [
        (Ecn::On, ECE, true),
        (Ecn::On, ECE | CWR, false),
        (Ecn::On, 0, false),
        (Ecn::Passive, ECE, false),
        (Ecn::Off, ECE, false),
    ] {
        let mut h = Harness::new_over(f, with(mode));
        let c = h.ep.connect(h.now, h.tuple().local(), h.tuple().remote(), CLIENT_MAC).unwrap();
        let s = h.flush();
        assert_eq!(s.len(), 1);
        let want = if mode == Ecn::On { SYN | ECE | CWR } else { SYN };
        assert_eq!((s[0].control, s[0].ecn), (want, NOT_ECT), "{mode:?}");
        let a = h.send1(seg(SYN | ACK | answer, CLIENT_ISN, s[0].seq + 1));
        assert_eq!(a.control, ACK, "no ECN bits on the third segment");
        assert_eq!(h.take_events(), vec![Event::Connected(c)]);
        assert_eq!(has(&h, c, flag::ECN), negotiated, "{mode:?} {answer:#x}");
        assert_eq!(h.ep.stats.ecn_negotiated, negotiated as u64);
        h.ep.write(c, b"hello").unwrap();
        let d = h.flush();
        assert_eq!(d[0].ecn, if negotiated { ECT0 } else { NOT_ECT });
    }
}

fn a_retransmitted_syn_gives_up_on_ecn(f: Family) {
    let mut h = Harness::new_over(f, with(Ecn::On));
    let c = h.ep.connect(h.now, h.tuple().local(), h.tuple().remote(), CLIENT_MAC).unwrap();
    assert_eq!(h.flush()[0].control, SYN | ECE | CWR);
    let (_, again) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(again[0].control, SYN, "the ECN-setup SYN may be what was dropped");
    h.send1(seg(SYN | ACK | ECE, CLIENT_ISN, again[0].seq + 1));
    assert!(!has(&h, c, flag::ECN));
}

/// ECT(0) goes on new data only: not on pure ACKs, retransmissions,
/// zero-window probes or a bare FIN (RFC 3168 §6.1.1, §6.1.5, §6.1.6).
fn ect_marks_new_data_only(f: Family) {
    let (mut h, c, nxt) = ecn_conn(f, TcpConfig::default());
    h.ep.write(c, &[7; 3000]).unwrap();
    let out = h.flush();
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|s| s.ecn == ECT0 && s.control & (ECE | CWR) == 0));
    assert_eq!(h.ep.stats.ecn_ect_sent, 3);
    // A pure ACK of the client's data.
    h.send(S { payload: vec![1; 10], ..seg(ACK | PSH, C1, nxt) });
    let a = h.advance(Duration::from_millis(50));
    assert_eq!(a.len(), 1);
    assert!(a[0].payload.is_empty());
    assert_eq!(a[0].ecn, NOT_ECT);
    // The retransmission after a timeout.
    let (_, rexmit) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(rexmit[0].seq, nxt);
    assert_eq!(rexmit[0].ecn, NOT_ECT, "retransmissions are not ECT (§6.1.5)");
    assert_eq!(h.ep.stats.ecn_ect_sent, 3);
    // All ACKed with the window shut: the persist probe is not ECT.
    h.send(seg(ACK, C1 + 10, nxt + 3000));
    let shut = S { window: 0, ..seg(ACK, C1 + 10, nxt + 3000) };
    h.send(shut);
    h.ep.write(c, &[8; 100]).unwrap();
    assert!(h.flush().is_empty(), "window shut");
    let (_, probe) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(probe.len(), 1);
    assert_eq!((probe[0].seq, probe[0].payload.len()), (nxt + 3000, 1));
    assert_eq!(probe[0].ecn, NOT_ECT, "window probes are not ECT (§6.1.6)");
    // The window opens: the rest is new data, ECT again.
    let open = h.send(seg(ACK, C1 + 10, nxt + 3000));
    assert!(!open.is_empty());
    assert!(open.iter().filter(|s| s.seq > nxt + 3000).all(|s| s.ecn == ECT0));
    // A bare FIN carries no data: not ECT.
    h.send(seg(ACK, C1 + 10, nxt + 3100));
    h.ep.shutdown(c).unwrap();
    let fin = h.flush();
    assert_eq!(fin[0].control & FIN, FIN);
    assert_eq!(fin[0].ecn, NOT_ECT);
}

/// The receiver (§6.1.3): CE on data sets ECE on every ACK, data
/// segments' too, until the sender's CWR arrives; the first at once.
fn ce_is_echoed_until_cwr(f: Family) {
    let (mut h, c, nxt) = ecn_conn(f, TcpConfig::default());
    let mut rcv = C1;
    let mut data = |h: &mut Harness, ctl: u8, ecn: u8| {
        let out = h.send(S { payload: vec![1; 100], ecn, ..seg(ACK | PSH | ctl, rcv, nxt) });
        rcv += 100;
        out
    };
    // Without CE: a delayed ACK, no ECE.
    assert!(data(&mut h, 0, ECT0).is_empty());
    let a = h.advance(Duration::from_millis(50));
    assert_eq!(a[0].control, ACK);
    // CE: ACKed at once, with ECE.
    let a = data(&mut h, 0, CE);
    assert_eq!(a.len(), 1, "the first CE is ACKed at once");
    assert_eq!((a[0].control, a[0].ack), (ACK | ECE, C1 + 200));
    assert_eq!(h.ep.stats.ecn_ce_received, 1);
    // Later ACKs keep ECE, whether their data was marked or not.
    assert!(data(&mut h, 0, ECT0).is_empty());
    let a = h.advance(Duration::from_millis(50));
    assert_eq!(a[0].control, ACK | ECE);
    // Our own data carries it too, and ECT.
    h.ep.write(c, b"reply").unwrap();
    let d = h.flush();
    assert_eq!((d[0].control, d[0].ecn), (ACK | PSH | ECE, ECT0));
    // CWR from the sender ends the echo.
    data(&mut h, CWR, ECT0);
    let a = h.advance(Duration::from_millis(50));
    assert_eq!(a.last().unwrap().control & ECE, 0, "{a:?}");
    assert_eq!(h.ep.tcb(c).unwrap().flags & flag::ECN_ECE, 0);
    // A new CE starts it again; CWR and CE on one segment: CE wins.
    let a = data(&mut h, CWR, CE);
    assert_eq!(a[0].control & ECE, ECE);
    assert_eq!(h.ep.stats.ecn_ce_received, 2);
}

/// The sender (§6.1.2): an ECE halves the window (the algorithm's
/// reduction) once per window of data, retransmits nothing, holds the
/// window for that window's rest, and puts CWR on the next new data.
fn ece_reduces_the_window_once_per_window_and_sends_cwr(f: Family) {
    for cc in [Congestion::Cubic, Congestion::NewReno] {
        let (mut h, c, nxt) = ecn_conn(f, TcpConfig { congestion: cc, ..TcpConfig::default() });
        h.ep.write(c, &[7; 100_000]).unwrap();
        let flight = h.flush();
        assert_eq!(flight.len(), 10, "the initial window");
        let mss = flight[0].payload.len();
        let end0 = nxt + 10 * mss;
        let cwnd0 = h.ep.tcb(c).unwrap().cwnd;

        // The first ACK echoes CE: one reduction.
        let out = h.send(seg(ACK | ECE, C1, nxt + mss));
        let t = h.ep.tcb(c).unwrap();
        assert!(t.ssthresh < cwnd0 && t.cwnd == t.ssthresh, "{cc:?}: {} {}", t.cwnd, t.ssthresh);
        let reduced = t.cwnd;
        assert_eq!(h.ep.stats.ecn_cwnd_reductions, 1);
        let mut sent: Vec<S> = out;
        // The rest of the window echoes too: no further reduction, no growth.
        for i in 2..=10 {
            sent.extend(h.send(seg(ACK | ECE, C1, nxt + i * mss)));
            let t = h.ep.tcb(c).unwrap();
            assert_eq!(
                t.cwnd, reduced,
                "{cc:?} {i}: held within the window {} {} {:?}",
                t.ssthresh, h.ep.stats.ecn_cwnd_reductions, h.ep.stats
            );
        }
        assert_eq!(h.ep.stats.ecn_cwnd_reductions, 1, "{cc:?}: once per window");
        assert_eq!(h.ep.stats.ecn_ece_received, 10);
        assert!(!sent.is_empty());
        assert!(sent.iter().all(|s| s.seq >= end0 && s.ecn == ECT0), "{cc:?}: new data only, nothing resent");
        assert_eq!(sent[0].control & CWR, CWR, "CWR on the first new segment");
        assert!(sent[1..].iter().all(|s| s.control & CWR == 0), "once");
        assert_eq!((h.ep.stats.retransmits, h.ep.stats.fast_retransmits), (0, 0));

        // Past the reduction's window an ECE is a new congestion event.
        let top = sent.last().unwrap();
        let ack = top.seq + top.payload.len();
        let more = h.send(seg(ACK | ECE, C1, ack));
        assert_eq!(h.ep.stats.ecn_cwnd_reductions, 2, "{cc:?}");
        assert!(h.ep.tcb(c).unwrap().cwnd < reduced);
        assert_eq!(more.first().map(|s| s.control & CWR), Some(CWR));
        // And an ACK without ECE lets the window grow again.
        let w = h.ep.tcb(c).unwrap().cwnd;
        let top = more.last().unwrap();
        h.send(seg(ACK, C1, top.seq + top.payload.len()));
        assert!(h.ep.tcb(c).unwrap().cwnd > w, "{cc:?}: growth resumes");
    }
}

/// During loss recovery the window was already reduced: an ECE then is
/// no second reduction (one response per window, RFC 3168 §6.1.2).
fn ece_during_recovery_is_not_a_second_reduction(f: Family) {
    let (mut h, c, nxt) = ecn_conn(f, TcpConfig::default());
    h.ep.write(c, &[7; 100_000]).unwrap();
    let flight = h.flush();
    let mss = flight[0].payload.len();
    // The first segment lost: three duplicate ACKs start recovery.
    for _ in 0..3 {
        h.send(seg(ACK, C1, nxt));
    }
    assert_eq!(h.ep.stats.fast_retransmits, 1);
    let ss = h.ep.tcb(c).unwrap().ssthresh;
    h.send(seg(ACK | ECE, C1, nxt));
    h.send(seg(ACK | ECE, C1, nxt + mss));
    assert_eq!(h.ep.tcb(c).unwrap().ssthresh, ss);
    assert_eq!(h.ep.stats.ecn_cwnd_reductions, 0);
    assert_eq!(h.ep.stats.ecn_ece_received, 2);
}

/// SYN cookies keep no state: ECN's answer rides in the low bit of our
/// TSval and comes back in the ACK's TSecr (as Linux). Without
/// timestamps a cookie connection goes without ECN.
fn cookie_connections_remember_ecn_in_the_timestamp(f: Family) {
    let always = |ecn| TcpConfig { syn_cookies: CookieMode::Always, ecn, ..TcpConfig::default() };
    for (mode, ask, ts, want) in [
        (Ecn::Passive, true, true, true),
        (Ecn::On, true, true, true),
        (Ecn::Passive, false, true, false),
        (Ecn::Off, true, true, false),
        (Ecn::Passive, true, false, false),
    ] {
        let mut h = Harness::new_over(f, always(mode));
        let s = if ask { ecn_syn() } else { syn(CLIENT_ISN) };
        let sa = h.send1(S { ts: ts.then_some((5000, 0)), ..s });
        assert_eq!(h.ep.connections(), 0, "a cookie: no state");
        assert_eq!(sa.control, SYN | ACK | if want { ECE } else { 0 }, "{mode:?} {ask} {ts}");
        if let Some((tsval, _)) = sa.ts {
            assert_eq!(tsval & 1 == 1, want);
        }
        h.send0(S { ts: sa.ts.map(|(v, _)| (5001, v)), ..seg(ACK, C1, sa.seq + 1) });
        let c = h.accepted();
        assert_eq!(has(&h, c, flag::ECN), want, "{mode:?} {ask} {ts}");
        assert_eq!(h.ep.stats.ecn_negotiated, want as u64);
        h.ep.write(c, b"x").unwrap();
        let d = h.flush();
        assert_eq!(d[0].ecn, if want { ECT0 } else { NOT_ECT });
        if let (Some((cookie_ts, _)), Some((data_ts, _))) = (sa.ts, d[0].ts) {
            assert!(data_ts.wrapping_sub(cookie_ts) < 1 << 31, "our clock never goes back (PAWS)");
        }
    }
}

/// A SYN-ACK's timeout is no window reduction: it goes again with ECE,
/// and the connection's first data carries no CWR.
fn a_retransmitted_syn_ack_keeps_ece_and_owes_no_cwr(f: Family) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    let sa = h.send1(ecn_syn());
    let (_, again) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!((again[0].control, again[0].seq), (SYN | ACK | ECE, sa.seq));
    h.send0(seg(ACK, C1, sa.seq + 1));
    let c = h.accepted();
    assert!(has(&h, c, flag::ECN) && !has(&h, c, flag::ECN_CWR));
    h.ep.write(c, b"first").unwrap();
    let d = h.flush();
    assert_eq!((d[0].control, d[0].ecn), (ACK | PSH, ECT0));
    h.ep.check_invariants().unwrap();
}
