//! Congestion control read from the wire: the test is the receiver, ACKs
//! every segment one round-trip time after it left (echoing its timestamp,
//! so each ACK is an RTT sample), and counts what the sender sends per
//! round; cwnd and ssthresh are read from the control block beside it.
//! RFC 5681 slow start and NewReno congestion avoidance, RFC 9438 CUBIC
//! (β, the concave and convex regions around K, fast convergence), RFC 9406
//! HyStart++, the RFC 5681 §4.1 restart after idle, and sender SWS
//! avoidance and Nagle (RFC 9293 §3.8.6.2.1, §3.7.4).

use super::*;
use crate::tcp::config::Congestion;

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);
const RTT: Duration = Duration::from_millis(100);
static BLOCK: [u8; 65536] = [0x5a; 65536];

/// An established connection whose peer offers an 8 MiB window (scale 7)
/// and timestamps, with a 4 MiB send buffer: the window never binds.
fn bulk(cfg: TcpConfig) -> (Harness, Handle) {
    let cap =
        Capacity { connections: 4, time_wait: 4, buffers: 4, buffer_size: 4 << 20, events: 64, ..Capacity::default() };
    let mut h = Harness::with_capacity(cfg, cap);
    let sa = h.send1(S { ws: Some(7), ts: Some((1, 0)), ..syn(CLIENT_ISN) });
    h.send0(S { ts: Some((2, sa.ts.expect("timestamps").0)), ..seg(ACK, C1, sa.seq + 1) });
    let c = h.accepted();
    h.take_events();
    (h, c)
}

fn refill(h: &mut Harness, c: Handle) {
    while h.ep.write(c, &BLOCK).unwrap() > 0 {}
}

fn ack_of(h: &Harness, ack: SeqNumber, echo: &S) -> S {
    S { ts: Some((h.now.total_millis() as u32, echo.ts.expect("timestamps").0)), ..seg(ACK, C1, ack) }
}

/// One RTT later, every data segment of `flight` is acknowledged, one ACK
/// each; returns what the sender sent in answer.
fn round(h: &mut Harness, c: Handle, flight: &[S], bulk: bool) -> Vec<S> {
    round_after(h, c, flight, bulk, RTT)
}

fn round_after(h: &mut Harness, c: Handle, flight: &[S], bulk: bool, rtt: Duration) -> Vec<S> {
    h.now += rtt;
    let mut out = Vec::new();
    for s in flight.iter().filter(|s| !s.payload.is_empty()) {
        let a = ack_of(h, s.seq + s.payload.len(), s);
        out.extend(h.send(a));
    }
    if bulk {
        refill(h, c);
        out.extend(h.flush());
    }
    h.take_events();
    out
}

fn segs(flight: &[S]) -> usize {
    flight.iter().filter(|s| !s.payload.is_empty()).count()
}

fn cwnd(h: &Harness, c: Handle) -> (u32, u32) {
    let t = h.ep.tcb(c).unwrap();
    (t.cwnd, t.ssthresh)
}

fn mss(h: &Harness, c: Handle) -> u32 {
    h.ep.tcb(c).unwrap().mss as u32
}

/// Slow start until the window is at least `segments`; returns the last flight.
fn slow_start_to(h: &mut Harness, c: Handle, segments: u32) -> Vec<S> {
    refill(h, c);
    let mut flight = h.flush();
    while cwnd(h, c).0 < segments * mss(h, c) {
        flight = round(h, c, &flight, true);
    }
    flight
}

/// The first segment of `flight` is lost: the rest draw duplicate ACKs;
/// one RTT later the retransmission arrives and the receiver acknowledges
/// everything, then each segment sent during recovery. Returns the next
/// flight, with recovery over.
fn lose_first(h: &mut Harness, c: Handle, flight: &[S]) -> Vec<S> {
    let data: Vec<&S> = flight.iter().filter(|s| !s.payload.is_empty()).collect();
    let hole = data[0].seq;
    let end = data.last().map(|s| s.seq + s.payload.len()).unwrap();
    h.now += RTT;
    let mut sent = Vec::new();
    for s in &data[1..] {
        let a = ack_of(h, hole, s);
        sent.extend(h.send(a));
    }
    let retx: Vec<&S> = sent.iter().filter(|s| s.seq == hole).collect();
    assert_eq!(retx.len(), 1, "fast retransmit of the hole once");
    assert!(h.ep.tcb(c).unwrap().ssthresh < u32::MAX);
    let new: Vec<S> = sent.iter().filter(|s| s.seq != hole && !s.payload.is_empty()).cloned().collect();
    h.now += RTT;
    let a = ack_of(h, end, retx[0]);
    let mut out = h.send(a);
    out.extend(round_after(h, c, &new, true, Duration::from_millis(0)));
    out
}

/// (seconds since `t0`, cwnd in segments) after each round until `until`.
fn trace(h: &mut Harness, c: Handle, flight: &mut Vec<S>, t0: Instant, until: f64) -> Vec<(f64, f64)> {
    let mss = mss(h, c) as f64;
    let mut v = Vec::new();
    loop {
        *flight = round(h, c, flight, true);
        let t = (h.now - t0).as_secs_f64();
        v.push((t, cwnd(h, c).0 as f64 / mss));
        if t >= until {
            return v;
        }
    }
}

/// cwnd (segments) at the first point at or after `t`.
fn at(trace: &[(f64, f64)], t: f64) -> f64 {
    trace.iter().find(|p| p.0 >= t).expect("traced that far").1
}

#[test]
fn slow_start_doubles_the_window_every_round_trip() {
    for algo in [Congestion::Cubic, Congestion::NewReno] {
        let (mut h, c) = bulk(TcpConfig { congestion: algo, ..TcpConfig::default() });
        let mss = mss(&h, c);
        refill(&mut h, c);
        let mut flight = h.flush();
        assert_eq!(segs(&flight), 10, "RFC 6928 initial window");
        for r in 1..=6 {
            flight = round(&mut h, c, &flight, true);
            assert_eq!(segs(&flight), 10 << r, "{algo:?} round {r}");
            assert_eq!(cwnd(&h, c), (mss * (10 << r), u32::MAX));
        }
    }
}

#[test]
fn cubic_reduces_to_beta_then_grows_concave_to_w_max_at_k_then_convex() {
    let (mut h, c) = bulk(TcpConfig::default());
    let mut flight = slow_start_to(&mut h, c, 150);
    let w_max = cwnd(&h, c).0;
    let mss = mss(&h, c);
    flight = lose_first(&mut h, c, &flight);
    // The epoch starts with the first ACK after recovery, now.
    let t0 = h.now;
    // RFC 9438 §4.6: ssthresh = cwnd·β; recovery ends at ssthresh.
    let (cw, ss) = cwnd(&h, c);
    assert_eq!(ss, w_max * 7 / 10);
    assert!(cw >= ss && cw < ss + 4 * mss, "{cw} from {ss}");
    // Equation 2: K from W_max and the reduced window, in segments.
    let (w_max, start) = (w_max as f64 / mss as f64, ss as f64 / mss as f64);
    let k = ((w_max - start) / 0.4).cbrt();
    let tr = trace(&mut h, c, &mut flight, t0, k + 3.0);
    // Equation 1 (the sender aims at W_cubic one RTT ahead).
    for t in [1.0, 2.0, k, k + 1.0, k + 2.0, k + 3.0] {
        let want = 0.4 * (t + 0.1 - k).powi(3) + w_max;
        let got = at(&tr, t);
        assert!((got - want).abs() / want < 0.03, "t={t:.2}: cwnd {got:.1} segments, W_cubic {want:.1}");
    }
    // Concave below W_max (growth slows), convex above it (speeds up).
    let growth = |a: f64| at(&tr, a + 1.0) - at(&tr, a);
    assert!(growth(0.0) > growth(1.0) && growth(1.0) > growth(2.0), "concave");
    assert!(growth(k) < growth(k + 1.0) && growth(k + 1.0) < growth(k + 2.0), "convex");
    assert!((at(&tr, k) - w_max).abs() < 1.5, "back at W_max around K");
}

#[test]
fn cubic_fast_convergence_lowers_w_max() {
    let (mut h, c) = bulk(TcpConfig::default());
    let mut flight = slow_start_to(&mut h, c, 150);
    let mss = mss(&h, c) as f64;
    let w_max1 = cwnd(&h, c).0 as f64 / mss;
    flight = lose_first(&mut h, c, &flight);
    let t0 = h.now;
    trace(&mut h, c, &mut flight, t0, 1.5);
    // A second loss below the first W_max (RFC 9438 §4.7).
    let cwnd2 = cwnd(&h, c).0 as f64 / mss;
    assert!(cwnd2 < w_max1);
    flight = lose_first(&mut h, c, &flight);
    let t0 = h.now;
    let w_max2 = cwnd2 * 0.85;
    let start = cwnd(&h, c).1 as f64 / mss;
    assert!((start - cwnd2 * 0.7).abs() < 0.01);
    let k = ((w_max2 - start) / 0.4).cbrt();
    let tr = trace(&mut h, c, &mut flight, t0, k + 0.2);
    // The plateau is W_max = cwnd·(1+β)/2, below where the window was.
    assert!((at(&tr, k) - w_max2).abs() < 3.0, "{} vs {w_max2}", at(&tr, k));
    assert!(at(&tr, k) < cwnd2 - 10.0);
}

#[test]
fn newreno_grows_one_segment_per_round_trip_after_halving() {
    let (mut h, c) = bulk(TcpConfig { congestion: Congestion::NewReno, ..TcpConfig::default() });
    let mut flight = slow_start_to(&mut h, c, 100);
    let flight_size = segs(&flight) as u32;
    let mss = mss(&h, c);
    flight = lose_first(&mut h, c, &flight);
    // RFC 5681 equation 4: half the flight.
    let (_, ss) = cwnd(&h, c);
    assert_eq!(ss, flight_size * mss / 2);
    flight = round(&mut h, c, &flight, true);
    let before = cwnd(&h, c).0;
    for _ in 0..10 {
        flight = round(&mut h, c, &flight, true);
    }
    let per_rtt = (cwnd(&h, c).0 - before) as f64 / 10.0 / mss as f64;
    assert!((0.97..=1.0).contains(&per_rtt), "{per_rtt} segments per RTT");
}

/// Slow start with the RTT of each round from `rtts`; returns the segments
/// sent per round and the final (cwnd, ssthresh).
fn hystart(rtts: &[u64]) -> (Vec<usize>, (u32, u32)) {
    let (mut h, c) = bulk(TcpConfig::default());
    refill(&mut h, c);
    let mut flight = h.flush();
    let mut sizes = vec![segs(&flight)];
    for &ms in rtts {
        flight = round_after(&mut h, c, &flight, true, Duration::from_millis(ms));
        sizes.push(segs(&flight));
    }
    (sizes, cwnd(&h, c))
}

#[test]
fn hystart_leaves_slow_start_when_the_rtt_rises() {
    // Steady RTT: plain slow start throughout.
    let (sizes, (_, ss)) = hystart(&[100; 7]);
    assert_eq!(ss, u32::MAX);
    assert_eq!(sizes.last(), Some(&1280));
    // The RTT rises by 15 ms > RttThresh = 100/8 ms from the fourth round:
    // Conservative Slow Start (growth / 4), then after CSS_ROUNDS rounds
    // congestion avoidance with ssthresh = cwnd, and no loss at all.
    let (sizes, (cw, ss)) = hystart(&[100, 100, 100, 115, 115, 115, 115, 115, 115, 115, 115, 115]);
    assert!(ss < u32::MAX && ss <= cw, "slow start ended: {sizes:?}");
    let css: Vec<f64> = sizes.windows(2).map(|w| w[1] as f64 / w[0] as f64).collect();
    assert!(css.iter().filter(|&&g| (1.15..1.35).contains(&g)).count() >= 3, "CSS grows by 1.25: {css:?}");
    assert!(css[css.len() - 2..].iter().all(|&g| g < 1.1), "then congestion avoidance: {css:?}");
}

#[test]
fn hystart_resumes_slow_start_when_the_rtt_falls_back() {
    let (sizes, (_, ss)) = hystart(&[100, 100, 100, 115, 115, 100, 100, 100]);
    assert_eq!(ss, u32::MAX, "a passing RTT rise does not end slow start: {sizes:?}");
    let n = sizes.len();
    let g = sizes[n - 1] as f64 / sizes[n - 2] as f64;
    assert!((1.95..=2.05).contains(&g), "doubling again: {sizes:?}");
    assert!(sizes[n - 1] < 10 << (n - 1), "CSS held it back for a while: {sizes:?}");
}

#[test]
fn window_restarts_after_an_idle_rto() {
    for (pause, want_iw) in [(Duration::from_secs(3), true), (Duration::from_millis(50), false)] {
        let (mut h, c) = bulk(TcpConfig::default());
        let mss = mss(&h, c);
        let data = vec![1u8; (10 + 20 + 40) * mss as usize];
        assert_eq!(h.ep.write(c, &data).unwrap(), data.len());
        let mut flight = h.flush();
        while !flight.is_empty() {
            flight = round(&mut h, c, &flight, false);
        }
        // Grown while the window was used (the last round's ACKs found
        // no more data to send: application-limited, no growth).
        let (grown, _) = cwnd(&h, c);
        assert_eq!(grown, 41 * mss);
        assert_eq!(h.ep.tcb(c).unwrap().flight(), 0);
        assert!(h.advance(pause).is_empty());
        h.ep.write(c, &BLOCK).unwrap();
        let burst = h.flush();
        if want_iw {
            // RFC 5681 §4.1: idle longer than the RTO, restart from IW,
            // remembering the window in ssthresh (RFC 2861).
            assert_eq!(segs(&burst), 10);
            assert_eq!(cwnd(&h, c).0, 10 * mss);
        } else {
            assert_eq!(segs(&burst) as u32, grown / mss, "a short pause keeps the window");
        }
    }
}

fn nagle(nodelay: bool) -> (Harness, Handle, SeqNumber) {
    let mut h = Harness::new(TcpConfig { nodelay, ..TcpConfig::default() });
    let (c, iss) = h.establish();
    h.take_events();
    (h, c, iss + 1)
}

#[test]
fn nagle_holds_a_small_segment_while_a_small_one_is_unacknowledged() {
    let (mut h, c, s1) = nagle(false);
    h.ep.write(c, b"first").unwrap();
    assert_eq!(h.flush().len(), 1, "nothing in flight: sent at once");
    h.ep.write(c, b"second").unwrap();
    assert!(h.flush().is_empty(), "held behind the unacknowledged small segment");
    h.ep.write(c, b"third").unwrap();
    assert!(h.flush().is_empty());
    let out = h.send1(seg(ACK, C1, s1 + 5));
    assert_eq!((out.seq, out.payload.as_slice()), (s1 + 5, &b"secondthird"[..]), "coalesced");
    // Full segments are not held (Minshall): the tail of a large write
    // goes with them when no small segment is out.
    h.send0(seg(ACK, C1, s1 + 16));
    h.ep.write(c, &[1; 3000]).unwrap();
    let lens: Vec<usize> = h.flush().iter().map(|s| s.payload.len()).collect();
    assert_eq!(lens, vec![1460, 1460, 80]);
    // A FIN is pushed: the tail before it is not held.
    h.ep.write(c, b"bye").unwrap();
    h.ep.shutdown(c).unwrap();
    assert!(h.flush().iter().any(|s| s.payload == b"bye" && s.control & FIN != 0));
}

#[test]
fn nodelay_sends_small_segments_at_once() {
    let (mut h, c, _) = nagle(true);
    h.ep.write(c, b"first").unwrap();
    assert_eq!(h.flush().len(), 1);
    h.ep.write(c, b"second").unwrap();
    assert_eq!(h.flush().len(), 1);
}

#[test]
fn silly_window_avoidance_holds_a_small_window_until_the_override_timeout() {
    let (mut h, c, s1) = nagle(true);
    h.ep.write(c, &[7u8; 16384]).unwrap();
    assert_eq!(h.flush().len(), 10, "the initial window");
    // The peer takes it all, but its window shrinks to 1000 bytes (it
    // offered 65535): 1000 of the 1784 bytes waiting is a silly segment.
    h.send0(S { window: 1000, ..seg(ACK, C1, s1 + 14600) });
    // Nothing in flight, so no ACK will open the window: the override
    // timeout (the retransmission timer) sends it.
    let rto = Duration::from_millis(h.ep.tcb(c).unwrap().rto_ms as u64);
    let (took, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(took, rto);
    assert_eq!((out.len(), out[0].seq, out[0].payload.len()), (1, s1 + 14600, 1000));
    assert_eq!(h.ep.stats.rto_expiries, 0, "not a retransmission timeout");
    // The rest ends what is queued: it goes when the window allows.
    let out = h.send(S { window: 32768, ..seg(ACK, C1, s1 + 15600) });
    let lens: Vec<usize> = out.iter().map(|s| s.payload.len()).collect();
    assert_eq!(lens, vec![784]);
}
