//! Loss recovery read from the wire: RFC 6675 (SACK recovery), RFC 8985
//! (RACK-TLP), RFC 6937 (PRR), RFC 6582 (NewReno) and RFC 5682 (F-RTO).
//! The peer is the test: it ACKs (and SACKs) what it likes, and the test
//! asserts what the endpoint sends next, when, and with which window.

use super::*;
use crate::tcp::tcb::Tcb;

// The basics of SACK recovery, RACK and TLP over both families; the rest
// are arithmetic on one MSS, over IPv4.
both_families!(
    rfc6675_the_hole_below_sacked_data_is_resent_first_and_once,
    rfc6675_two_holes_are_both_resent_each_once_lowest_first,
    rack_detects_a_loss_after_reo_wnd_without_three_dupacks,
    rack_times_transmissions_in_microseconds,
    rack_reo_wnd_is_zero_once_dupthresh_segments_are_sacked,
    tlp_fires_at_two_srtt_and_resends_the_last_segment,
    tlp_probe_that_repairs_a_tail_loss_is_counted,
);

/// The IPv4 MSS the single-family tests count in.
pub const MSS: usize = 1460;

/// A harness with 64 KiB buffers, so a window's worth can be queued.
pub fn big_harness_over(f: Family, cfg: TcpConfig) -> Harness {
    Harness::with_capacity_over(
        f,
        cfg,
        Capacity {
            connections: 64,
            time_wait: 64,
            buffers: 64,
            buffer_size: 65536,
            events: 256,
            ..Capacity::default()
        },
    )
}

/// A connection with SACK permitted (no timestamps): (harness, handle,
/// our SND.NXT).
pub fn sack_established() -> (Harness, Handle, SeqNumber) {
    sack_established_with(TcpConfig::default())
}

pub fn sack_established_with(cfg: TcpConfig) -> (Harness, Handle, SeqNumber) {
    sack_established_over_with(Family::V4, cfg)
}

pub fn sack_established_over(f: Family) -> (Harness, Handle, SeqNumber) {
    sack_established_over_with(f, TcpConfig::default())
}

pub fn sack_established_over_with(f: Family, cfg: TcpConfig) -> (Harness, Handle, SeqNumber) {
    let mut h = big_harness_over(f, cfg);
    let sa = h.send1(S { sack_perm: true, ..syn(CLIENT_ISN) });
    assert!(sa.sack_perm);
    h.send0(seg(ACK, CLIENT_ISN + 1, sa.seq + 1));
    let c = h.accepted();
    h.take_events();
    (h, c, sa.seq + 1)
}

/// The same without SACK: NewReno.
pub fn plain_established() -> (Harness, Handle, SeqNumber) {
    plain_established_over(Family::V4)
}

pub fn plain_established_over(f: Family) -> (Harness, Handle, SeqNumber) {
    let mut h = big_harness_over(f, TcpConfig::default());
    let sa = h.send1(syn(CLIENT_ISN));
    h.send0(seg(ACK, CLIENT_ISN + 1, sa.seq + 1));
    let c = h.accepted();
    h.take_events();
    (h, c, sa.seq + 1)
}

/// What the PTO adds to 2 * SRTT with more than one segment in flight.
pub fn pto_extra() -> Duration {
    Duration::from_micros(crate::tcp::recovery::PTO_EXTRA_US)
}

/// The client's ACK of `ack` with SACK blocks.
pub fn sack(ack: SeqNumber, blocks: &[(SeqNumber, SeqNumber)]) -> S {
    let mut s = seg(ACK, CLIENT_ISN + 1, ack);
    for (i, b) in blocks.iter().enumerate() {
        s.sack[i] = Some(*b);
    }
    s
}

pub fn tcb(h: &Harness, c: Handle) -> &Tcb {
    h.ep.tcb(c).unwrap()
}

/// The byte at stream offset `k`.
pub fn byte(k: usize) -> u8 {
    (k as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2]
}

/// Queues `n` more bytes (continuing the pattern from `from`) and
/// returns what went out.
pub fn write(h: &mut Harness, c: Handle, from: usize, n: usize) -> Vec<S> {
    let data: Vec<u8> = (from..from + n).map(byte).collect();
    assert_eq!(h.ep.write(c, &data).unwrap(), n);
    h.flush()
}

/// One RTT sample of `rtt` (a small write, ACKed `rtt` later), so SRTT is
/// known; returns the new SND.NXT and the stream offset.
pub fn warm_up(h: &mut Harness, c: Handle, nxt: SeqNumber, rtt: Duration) -> (SeqNumber, usize) {
    let out = write(h, c, 0, 100);
    assert_eq!(out.len(), 1);
    h.advance(rtt);
    h.send0(seg(ACK, CLIENT_ISN + 1, nxt + 100));
    assert_eq!(tcb(h, c).srtt_us, rtt.as_micros() as u32);
    (nxt + 100, 100)
}

/// The data segments in `out`, as (offset from `base`, length).
pub fn data(out: &[S], base: SeqNumber) -> Vec<(usize, usize)> {
    out.iter().filter(|s| !s.payload.is_empty()).map(|s| (s.seq - base, s.payload.len())).collect()
}

/// Each data segment carries the bytes of the stream at its place.
#[track_caller]
pub fn check_payloads(out: &[S], base: SeqNumber, base_off: usize) {
    for s in out.iter().filter(|s| !s.payload.is_empty()) {
        let off = base_off + (s.seq - base);
        assert!(s.payload.iter().enumerate().all(|(i, &b)| b == byte(off + i)), "wrong bytes at {off}");
    }
}

/// Ten full segments (of the family's MSS) in flight from `nxt` (at
/// offset `off`), plus `more` bytes queued behind them.
fn ten_in_flight(h: &mut Harness, c: Handle, nxt: SeqNumber, off: usize, more: usize) -> Vec<S> {
    let mss = h.family.mss() as usize;
    let cwnd = tcb(h, c).cwnd as usize;
    assert!(cwnd >= 10 * mss, "cwnd {cwnd}");
    let out = write(h, c, off, 10 * mss + more);
    let first: Vec<_> = data(&out, nxt).into_iter().take(10).collect();
    assert_eq!(first, (0..10).map(|k| (k * mss, mss)).collect::<Vec<_>>());
    check_payloads(&out, nxt, off);
    out
}

fn seg_at(nxt: SeqNumber, k: usize) -> (SeqNumber, SeqNumber) {
    (nxt + k * MSS, nxt + (k + 1) * MSS)
}

fn rfc6675_the_hole_below_sacked_data_is_resent_first_and_once(f: Family) {
    let mss = f.mss() as usize;
    let seg_at = |nxt: SeqNumber, k: usize| (nxt + k * mss, nxt + (k + 1) * mss);
    let (mut h, c, nxt) = sack_established_over(f);
    // Ten segments fill the initial window exactly: nothing new is left,
    // so all the sender can do in recovery is what NextSeg allows.
    ten_in_flight(&mut h, c, nxt, 0, 0);
    h.advance(Duration::from_millis(10));
    // Segment 0 lost; the peer SACKs 1, then 1-2: not yet DupThresh.
    assert!(data(&h.send(sack(nxt, &[seg_at(nxt, 1)])), nxt).is_empty());
    assert!(data(&h.send(sack(nxt, &[(seg_at(nxt, 1).0, seg_at(nxt, 2).1)])), nxt).is_empty());
    assert!(!tcb(&h, c).has(crate::tcp::tcb::flag::RECOVERY));
    // Three segments SACKed above it: IsLost(SND.UNA) (RFC 6675 §4), and
    // recovery resends exactly the hole.
    let out = h.send(sack(nxt, &[(seg_at(nxt, 1).0, seg_at(nxt, 3).1)]));
    assert_eq!(data(&out, nxt), vec![(0, mss)], "the hole, first");
    check_payloads(&out, nxt, 0);
    assert!(tcb(&h, c).has(crate::tcp::tcb::flag::RECOVERY));
    // The rest of the window is SACKed one by one: the hole is not resent
    // again, nothing already SACKed is resent.
    let mut resent = Vec::new();
    for k in 4..10 {
        let out = h.send(sack(nxt, &[(seg_at(nxt, 1).0, seg_at(nxt, k).1)]));
        resent.extend(data(&out, nxt));
    }
    assert!(resent.is_empty(), "resent again: {resent:?}");
    // The retransmission arrives: everything is acknowledged, recovery ends.
    h.send(sack(nxt + 10 * mss, &[]));
    assert!(!tcb(&h, c).has(crate::tcp::tcb::flag::RECOVERY));
    assert_eq!((h.ep.stats.fast_retransmits, h.ep.stats.sack_retransmits), (1, 1));
    assert_eq!(h.ep.stats.retransmits, 0, "no go-back-N");
}

fn rfc6675_two_holes_are_both_resent_each_once_lowest_first(f: Family) {
    let mss = f.mss() as usize;
    let seg_at = |nxt: SeqNumber, k: usize| (nxt + k * mss, nxt + (k + 1) * mss);
    let (mut h, c, nxt) = sack_established_over(f);
    ten_in_flight(&mut h, c, nxt, 0, 0);
    h.advance(Duration::from_millis(10));
    // Segments 0 and 2 lost; 1 and 3.. arrive.
    let mut sent = Vec::new();
    sent.extend(data(&h.send(sack(nxt, &[seg_at(nxt, 1)])), nxt));
    for k in 3..10 {
        sent.extend(data(&h.send(sack(nxt, &[(seg_at(nxt, 3).0, seg_at(nxt, k).1), seg_at(nxt, 1)])), nxt));
    }
    assert_eq!(sent, vec![(0, mss), (2 * mss, mss)], "each hole once, SND.UNA's first");
    assert_eq!(h.ep.stats.sack_retransmits, 2);
}

fn newreno() -> TcpConfig {
    TcpConfig { congestion: crate::tcp::Congestion::NewReno, ..TcpConfig::default() }
}

#[test]
fn rfc6937_prr_sends_what_sndcnt_allows_on_each_ack() {
    // RFC 6937 §3 from the wire: on each ACK in recovery, sndcnt is
    // ssthresh/RecoverFS of what was delivered while pipe > ssthresh
    // (proportional part), then at most one MSS beyond the delivery (SSRB)
    // up to ssthresh; cwnd = pipe + sndcnt. pipe (RFC 6675 SetPipe) is
    // every un-SACKed byte here: segment 0 is lost but resent. NewReno's
    // halving, so that pipe starts above ssthresh (CUBIC's 0.7 of ten
    // segments leaves too little of the proportional part to see).
    let (mut h, c, nxt) = sack_established_with(newreno());
    ten_in_flight(&mut h, c, nxt, 0, 30 * MSS);
    let recover_fs = (10 * MSS) as i64;
    let mss = MSS as i64;
    h.advance(Duration::from_millis(10));
    h.send(sack(nxt, &[seg_at(nxt, 1)]));
    h.send(sack(nxt, &[(seg_at(nxt, 1).0, seg_at(nxt, 2).1)]));
    let out = h.send(sack(nxt, &[(seg_at(nxt, 1).0, seg_at(nxt, 3).1)]));
    assert_eq!(data(&out, nxt), vec![(0, MSS)], "the first retransmission goes at once");
    let ssthresh = tcb(&h, c).ssthresh as i64;
    assert!(ssthresh < recover_fs, "the congestion event lowered ssthresh: {ssthresh}");
    // prr_delivered and prr_out since recovery began (its first ACK
    // delivered one segment; the retransmission went).
    let (mut delivered, mut prr_out) = (mss, mss);
    let (mut proportional, mut ssrb) = (0, 0);
    for k in 4..10 {
        let max_before = tcb(&h, c).snd_max;
        let out = h.send(sack(nxt, &[(seg_at(nxt, 1).0, seg_at(nxt, k).1)]));
        delivered += mss;
        let pipe = (max_before - nxt) as i64 - (k * MSS) as i64;
        let sndcnt = if pipe > ssthresh {
            proportional += 1;
            (delivered * ssthresh + recover_fs - 1) / recover_fs - prr_out
        } else {
            ssrb += 1;
            (ssthresh - pipe).min((delivered - prr_out).max(mss) + mss)
        }
        .max(0);
        let d = data(&out, nxt);
        assert!(d.iter().all(|&(off, len)| off >= 10 * MSS && len == MSS), "only new full segments: {d:?}");
        assert_eq!(d.len() as i64, sndcnt / mss, "ACK {k}: pipe {pipe} sndcnt {sndcnt}");
        assert_eq!(tcb(&h, c).cwnd as i64, pipe + sndcnt, "cwnd = pipe + sndcnt");
        prr_out += d.len() as i64 * mss;
        assert!(prr_out <= delivered, "never more out than delivered");
    }
    assert!(proportional > 0 && ssrb > 0, "both parts ran: {proportional} {ssrb}");
    assert_eq!(h.ep.stats.fast_retransmits, 1);
}

#[test]
fn rfc6937_proportional_part_sends_ssthresh_over_recoverfs_of_what_is_delivered() {
    // While pipe > ssthresh, PRR spreads the reduction: for a halving one
    // new segment for every two delivered (for CUBIC's 0.7, seven for ten;
    // NewReno here, whose halving makes the proportional part the longer).
    let (mut h, c, nxt) = sack_established_with(newreno());
    // One round first, each segment ACKed, so the window (and the flight)
    // doubles in slow start: more is queued than the initial window, so the
    // sender is window-limited and grows (RFC 7661); all of it is sent and
    // ACKed before the loss round.
    write(&mut h, c, 0, 20 * MSS);
    for k in 1..=20 {
        h.send(seg(ACK, CLIENT_ISN + 1, nxt + k * MSS));
    }
    let nxt = nxt + 20 * MSS;
    let n = tcb(&h, c).cwnd as usize / MSS;
    let out = write(&mut h, c, 20 * MSS, n * MSS + 20 * MSS);
    assert_eq!(data(&out, nxt).len(), n);
    h.advance(Duration::from_millis(10));
    // Segment 0 lost; the others SACKed one by one.
    for k in 1..4 {
        h.send(sack(nxt, &[(seg_at(nxt, 1).0, seg_at(nxt, k).1)]));
    }
    let t = tcb(&h, c);
    assert!(t.has(crate::tcp::tcb::flag::RECOVERY));
    let ratio = t.ssthresh as f64 / (n * MSS) as f64;
    let (mut delivered, mut sent) = (1, 1);
    for k in 4..n {
        let pipe = (tcb(&h, c).snd_max - nxt) as i64 - (k * MSS) as i64;
        if pipe <= tcb(&h, c).ssthresh as i64 {
            break;
        }
        let out = h.send(sack(nxt, &[(seg_at(nxt, 1).0, seg_at(nxt, k).1)]));
        sent += data(&out, nxt).len();
        delivered += 1;
    }
    assert!(delivered >= 8, "the proportional part lasted {delivered} ACKs");
    let expect = (delivered as f64 * ratio).ceil();
    assert!((sent as f64 - expect).abs() <= 1.0, "{sent} segments for {delivered} delivered, ratio {ratio}");
}

fn rack_detects_a_loss_after_reo_wnd_without_three_dupacks(f: Family) {
    let mss = f.mss() as usize;
    let seg_at = |nxt: SeqNumber, k: usize| (nxt + k * mss, nxt + (k + 1) * mss);
    // RFC 8985 §6.2: one segment SACKed after the lost one, and RACK.rtt +
    // reo_wnd (min_RTT / 4) later it is lost: no DupThresh needed.
    let (mut h, c, nxt) = sack_established_over(f);
    let rtt = Duration::from_millis(20);
    let (nxt, off) = warm_up(&mut h, c, nxt, rtt);
    ten_in_flight(&mut h, c, nxt, off, 0);
    h.advance(rtt);
    let out = h.send(sack(nxt, &[seg_at(nxt, 1)]));
    assert!(data(&out, nxt).is_empty(), "one duplicate ACK: nothing yet");
    assert_eq!(tcb(&h, c).dupacks, 1);
    let (waited, out) = h.advance_until_output(Duration::from_secs(2));
    // reo_wnd = min_RTT / 4 = 5 ms after the SACK (the segments left in
    // the same millisecond, RACK.rtt = 20 ms).
    assert_eq!(waited, rtt / 4, "the reordering timer");
    assert_eq!(data(&out, nxt), vec![(0, mss)]);
    check_payloads(&out, nxt, off);
    assert_eq!(h.ep.stats.rack_lost_segments, 1);
    assert_eq!(h.ep.stats.fast_retransmits, 1);
    assert_eq!(h.ep.stats.rto_expiries, 0, "the reordering timer is not an RTO");
    assert_eq!(tcb(&h, c).dupacks, 1);
}

fn rack_times_transmissions_in_microseconds(f: Family) {
    let mss = f.mss() as usize;
    let seg_at = |nxt: SeqNumber, k: usize| (nxt + k * mss, nxt + (k + 1) * mss);
    // At a 40 µs RTT (a LAN, the testbed's veth): two segments leave at
    // t, two more at t + 20 µs. The second is SACKed at t + 40 µs
    // (RACK.rtt = 40 µs, reo_wnd = min_RTT / 4 = 10 µs): the first waits.
    // The third is SACKed at t + 60 µs: it left after the first, which has
    // waited 60 µs > 50 µs, so the first is lost on this ACK, with two
    // segments SACKed and no timer. On a millisecond clock all four left
    // "at once", every RTT read 0, and the loss waited for the reordering
    // timer at the next millisecond, 25 round trips later.
    let (mut h, c, nxt) = sack_established_over(f);
    let rtt = Duration::from_micros(40);
    // `warm_up` checks SRTT = 40 µs: the sample comes from the send time,
    // where Karn's timed segment (or a timestamp) reads whole milliseconds.
    let (nxt, off) = warm_up(&mut h, c, nxt, rtt);
    assert_eq!(data(&write(&mut h, c, off, 2 * mss), nxt).len(), 2);
    h.advance(rtt / 2);
    assert_eq!(data(&write(&mut h, c, off + 2 * mss, 2 * mss), nxt).len(), 2);
    h.advance(rtt / 2);
    let out = h.send(sack(nxt, &[seg_at(nxt, 1)]));
    assert!(data(&out, nxt).is_empty(), "within reo_wnd: nothing yet");
    h.advance(rtt / 2);
    let out = h.send(sack(nxt, &[(seg_at(nxt, 1).0, seg_at(nxt, 2).1)]));
    assert_eq!(data(&out, nxt).first(), Some(&(0, mss)), "the hole, on this ACK");
    check_payloads(&out, nxt, off);
    assert_eq!(h.ep.stats.rack_lost_segments, 1);
    assert_eq!(h.ep.stats.rto_expiries, 0);
    assert_eq!(tcb(&h, c).dupacks, 2, "short of DupThresh");
}

fn rack_reo_wnd_is_zero_once_dupthresh_segments_are_sacked(f: Family) {
    let mss = f.mss() as usize;
    let seg_at = |nxt: SeqNumber, k: usize| (nxt + k * mss, nxt + (k + 1) * mss);
    // RFC 8985 §6.2 step 4: no reordering seen and three segments SACKed:
    // reo_wnd = 0, the loss is declared on that ACK.
    let (mut h, c, nxt) = sack_established_over(f);
    let (nxt, off) = warm_up(&mut h, c, nxt, Duration::from_millis(20));
    ten_in_flight(&mut h, c, nxt, off, 0);
    h.advance(Duration::from_millis(20));
    h.send(sack(nxt, &[seg_at(nxt, 1)]));
    // Two segments SACKed with a gap: RFC 6675 IsLost needs more than
    // two SMSS, but RACK with reo_wnd = 0 needs only DupThresh segments.
    h.send(sack(nxt, &[seg_at(nxt, 3), seg_at(nxt, 1)]));
    let out = h.send(sack(nxt, &[seg_at(nxt, 5), seg_at(nxt, 3), seg_at(nxt, 1)]));
    assert_eq!(data(&out, nxt)[0], (0, mss));
    assert!(h.ep.stats.rack_lost_segments >= 1);
}

fn tlp_fires_at_two_srtt_and_resends_the_last_segment(f: Family) {
    let mss = f.mss() as usize;
    // RFC 8985 §7: with nothing new to send, the probe is the last segment,
    // 2 * SRTT after it left; then the RTO watches.
    let (mut h, c, nxt) = sack_established_over(f);
    let rtt = Duration::from_millis(20);
    let (nxt, off) = warm_up(&mut h, c, nxt, rtt);
    let out = write(&mut h, c, off, 5 * mss);
    assert_eq!(data(&out, nxt).len(), 5);
    let (waited, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(waited, 2 * rtt + pto_extra(), "PTO = 2 * SRTT + 2 ms (Linux)");
    assert_eq!(data(&out, nxt), vec![(4 * mss, mss)], "the last segment");
    check_payloads(&out, nxt, off);
    assert_eq!(h.ep.stats.tlp_probes, 1);
    assert_eq!(h.ep.stats.rto_expiries, 0);
    // No answer: the RTO follows, one RTO after the probe.
    let rto = Duration::from_millis(tcb(&h, c).rto_ms as u64);
    let (waited, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(waited, rto);
    assert_eq!(data(&out, nxt)[0], (0, mss));
    assert_eq!((h.ep.stats.tlp_probes, h.ep.stats.rto_expiries), (1, 1));
    assert_eq!(h.ep.stats.rto_after_probe, 1, "the timeout came with the probe unanswered");
    // Still nothing: the next timeout is a repeated one.
    let (waited, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(waited, 2 * rto, "backed off");
    assert_eq!(data(&out, nxt)[0], (0, mss));
    let s = &h.ep.stats;
    assert_eq!((s.rto_expiries, s.rto_repeated, s.rto_after_probe), (2, 1, 1));
    assert_eq!((s.rto_in_recovery, s.rto_without_sack, s.rto_other), (0, 0, 0));
}

#[test]
fn tlp_probes_a_response_closed_at_once_fin_included() {
    // A response written and closed at once (HTTP's `Connection: close`):
    // the connection is in FIN-WAIT-1 for its whole flight. The tail is
    // still probed at 2 * SRTT, and the probe is the last segment with
    // the FIN, not an RTO later.
    let (mut h, c, nxt) = sack_established();
    let rtt = Duration::from_millis(20);
    let (nxt, off) = warm_up(&mut h, c, nxt, rtt);
    let data_out: Vec<u8> = (off..off + 5 * MSS).map(byte).collect();
    assert_eq!(h.ep.write(c, &data_out).unwrap(), 5 * MSS);
    h.ep.close(c).unwrap();
    let out = h.flush();
    assert_eq!(data(&out, nxt).len(), 5);
    assert!(out.iter().any(|s| s.control & FIN != 0), "the FIN went with the data");
    assert_eq!(tcb(&h, c).state, crate::tcp::State::FinWait1);
    let (waited, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(waited, 2 * rtt + pto_extra(), "PTO = 2 * SRTT + 2 ms (Linux)");
    assert_eq!(out.len(), 1);
    assert_eq!(data(&out, nxt), vec![(4 * MSS, MSS)], "the last MSS of data");
    assert!(out[0].control & FIN != 0, "with the FIN");
    check_payloads(&out, nxt, off);
    assert_eq!((h.ep.stats.tlp_probes, h.ep.stats.rto_expiries), (1, 0));
    // The probe's ACK covers everything: FIN-WAIT-2, nothing resent.
    let out = h.send(seg(ACK, CLIENT_ISN + 1, nxt + 5 * MSS + 1));
    assert!(data(&out, nxt).is_empty());
    assert_eq!(tcb(&h, c).state, crate::tcp::State::FinWait2);
    assert_eq!(h.ep.stats.rto_expiries, 0);
}

#[test]
fn tlp_with_one_segment_in_flight_waits_out_a_delayed_ack() {
    // RTO.min 1 s, so the RTO does not cut the PTO short.
    let cfg = TcpConfig { rto_min: Duration::from_secs(1), ..TcpConfig::default() };
    let (mut h, c, nxt) = sack_established_with(cfg);
    let rtt = Duration::from_millis(20);
    let (nxt, off) = warm_up(&mut h, c, nxt, rtt);
    write(&mut h, c, off, 500);
    let (waited, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(waited, 2 * rtt + Duration::from_millis(200), "PTO + WCDelAckT");
    assert_eq!(data(&out, nxt), vec![(0, 500)]);
    assert_eq!((h.ep.stats.tlp_probes, h.ep.stats.rto_expiries), (1, 0));
}

#[test]
fn tlp_fires_no_later_than_the_rto_would() {
    // RFC 8985 §7.2: 2 * SRTT + WCDelAckT is beyond the RTO (RTO.min 200
    // ms): the probe goes when the RTO would have fired, as a probe.
    let (mut h, c, nxt) = sack_established();
    let rtt = Duration::from_millis(20);
    let (nxt, off) = warm_up(&mut h, c, nxt, rtt);
    write(&mut h, c, off, 500);
    let rto = Duration::from_millis(tcb(&h, c).rto_ms as u64);
    assert!(rto < 2 * rtt + Duration::from_millis(200));
    let (waited, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(waited, rto);
    assert_eq!(data(&out, nxt), vec![(0, 500)]);
    assert_eq!((h.ep.stats.tlp_probes, h.ep.stats.rto_expiries), (1, 0));
}

fn tlp_probe_that_repairs_a_tail_loss_is_counted(f: Family) {
    let mss = f.mss() as usize;
    // The last segment is lost; the probe resends it and the peer's ACK
    // covers data sent after the probe (Linux tcp_process_tlp_ack).
    let (mut h, c, nxt) = sack_established_over(f);
    let rtt = Duration::from_millis(20);
    let (nxt, off) = warm_up(&mut h, c, nxt, rtt);
    write(&mut h, c, off, 5 * mss);
    h.advance(rtt);
    // 0-3 arrive; 4 is lost.
    h.send(sack(nxt + 4 * mss, &[]));
    let (_, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(data(&out, nxt), vec![(4 * mss, mss)]);
    // The probe arrives, and more data goes (beyond TLP.end_seq) and is ACKed.
    write(&mut h, c, off + 5 * mss, mss);
    h.send(sack(nxt + 5 * mss, &[]));
    h.send(sack(nxt + 6 * mss, &[]));
    assert_eq!((h.ep.stats.tlp_probes, h.ep.stats.tlp_recoveries), (1, 1));
}

#[test]
fn prr_owns_cwnd_in_recovery_and_cc_sets_it_at_the_end() {
    let (mut h, c, nxt) = sack_established();
    ten_in_flight(&mut h, c, nxt, 0, 20 * MSS);
    h.advance(Duration::from_millis(10));
    for k in 1..4 {
        h.send(sack(nxt, &[(seg_at(nxt, 1).0, seg_at(nxt, k).1)]));
    }
    let t = tcb(&h, c);
    assert!(t.has(crate::tcp::tcb::flag::RECOVERY));
    let ssthresh = t.ssthresh;
    // The retransmission arrives: everything up to RecoveryPoint is ACKed.
    let max = t.snd_max;
    h.send(sack(max, &[]));
    let t = tcb(&h, c);
    assert!(!t.has(crate::tcp::tcb::flag::RECOVERY));
    assert_eq!(t.ssthresh, ssthresh);
    assert!(t.cwnd <= ssthresh + MSS as u32, "leaves recovery at ssthresh: {} vs {ssthresh}", t.cwnd);
}

#[test]
fn newreno_partial_ack_retransmits_the_next_hole() {
    // RFC 6582 §3.2 step 3, without SACK: segments 0 and 3 lost.
    let (mut h, c, nxt) = plain_established();
    ten_in_flight(&mut h, c, nxt, 0, 0);
    h.advance(Duration::from_millis(10));
    let mut out = Vec::new();
    for _ in 0..3 {
        out.extend(h.send(seg(ACK, CLIENT_ISN + 1, nxt)));
    }
    assert_eq!(data(&out, nxt), vec![(0, MSS)], "fast retransmit after three duplicates");
    // The retransmission fills the first hole: the ACK stops at the second.
    let out = h.send(seg(ACK, CLIENT_ISN + 1, nxt + 3 * MSS));
    assert_eq!(data(&out, nxt)[0], (3 * MSS, MSS), "the partial ACK resends the next hole");
    check_payloads(&out, nxt, 0);
    assert!(tcb(&h, c).has(crate::tcp::tcb::flag::RECOVERY), "still short of recover");
    h.send(seg(ACK, CLIENT_ISN + 1, nxt + 10 * MSS));
    assert!(!tcb(&h, c).has(crate::tcp::tcb::flag::RECOVERY));
    assert_eq!(h.ep.stats.fast_retransmits, 1);
}

#[test]
fn newreno_dupacks_below_recover_after_an_rto_do_not_fast_retransmit() {
    // RFC 6582 §3.2 step 1: after a timeout, `recover` is SND.MAX; the
    // duplicates the old flight provokes start no fast retransmit.
    let (mut h, c, nxt) = plain_established();
    ten_in_flight(&mut h, c, nxt, 0, 0);
    let (_, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(data(&out, nxt), vec![(0, MSS)], "the RTO resends SND.UNA");
    assert_eq!(tcb(&h, c).recover, nxt + 10 * MSS);
    let mut out = Vec::new();
    for _ in 0..4 {
        out.extend(h.send(seg(ACK, CLIENT_ISN + 1, nxt)));
    }
    assert!(data(&out, nxt).is_empty(), "no fast retransmit: {:?}", data(&out, nxt));
    assert!(!tcb(&h, c).has(crate::tcp::tcb::flag::RECOVERY));
    assert_eq!(h.ep.stats.fast_retransmits, 0);
}

#[test]
fn frto_judges_an_rto_spurious_when_new_data_is_acked_without_duplicates() {
    // RFC 5682 §2.1: the RTO resends SND.UNA; the first ACK advances the
    // window (the originals were only late), so two new segments go
    // instead of resends; the next ACK advances again: spurious, undone.
    let (mut h, c, nxt) = plain_established();
    ten_in_flight(&mut h, c, nxt, 0, 10 * MSS);
    let before = (tcb(&h, c).cwnd, tcb(&h, c).ssthresh);
    let (_, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(data(&out, nxt), vec![(0, MSS)]);
    assert_eq!(tcb(&h, c).cwnd, MSS as u32, "the RTO cut the window");
    let out = h.send(seg(ACK, CLIENT_ISN + 1, nxt + 2 * MSS));
    assert_eq!(data(&out, nxt), vec![(10 * MSS, MSS), (11 * MSS, MSS)], "two new segments, no resend");
    check_payloads(&out, nxt, 0);
    let out = h.send(seg(ACK, CLIENT_ISN + 1, nxt + 4 * MSS));
    assert_eq!(h.ep.stats.spurious_rtos_undone, 1);
    let t = tcb(&h, c);
    assert_eq!((t.cwnd, t.ssthresh), before, "the reduction undone");
    assert!(data(&out, nxt).iter().all(|&(o, _)| o >= 12 * MSS), "nothing resent: {:?}", data(&out, nxt));
    assert!(!data(&out, nxt).is_empty(), "the restored window sends");
    assert_eq!(h.ep.stats.retransmits, 1, "only the RTO's own resend");
}

/// A SACK connection with timestamps; returns it, SND.NXT and the
/// client's next TSval.
fn ts_established() -> (Harness, Handle, SeqNumber) {
    let mut h = big_harness_over(Family::V4, TcpConfig::default());
    let sa = h.send1(S { sack_perm: true, ts: Some((1, 0)), ..syn(CLIENT_ISN) });
    h.send0(S { ts: Some((2, sa.ts.expect("timestamps").0)), ..seg(ACK, CLIENT_ISN + 1, sa.seq + 1) });
    let c = h.accepted();
    h.take_events();
    (h, c, sa.seq + 1)
}

/// A whole response in flight and nothing more to send, then the RTO: F-RTO
/// cannot judge it (no new data for its step 2), the timestamps can.
/// Returns the originals' TSval, the retransmission's, one segment's length
/// and (cwnd, ssthresh) before the timeout.
fn response_then_rto(h: &mut Harness, c: Handle, nxt: SeqNumber) -> (u32, u32, usize, (u32, u32)) {
    let out = write(h, c, 0, 8 * 1448);
    let len = out[0].payload.len();
    assert_eq!(data(&out, nxt).len(), 8, "the whole response at once");
    let before = (tcb(h, c).cwnd, tcb(h, c).ssthresh);
    let orig = out[0].ts.expect("timestamps").0;
    let (_, probe) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(data(&probe, nxt), vec![(7 * len, len)], "first the tail loss probe");
    let (_, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(data(&out, nxt), vec![(0, len)], "the RTO resends SND.UNA");
    let rts = out[0].ts.expect("timestamps").0;
    assert!(rts > orig);
    (orig, rts, len, before)
}

#[test]
fn eifel_an_ack_echoing_the_originals_timestamp_undoes_a_spurious_rto() {
    // RFC 3522 detection, RFC 4015 response: the ACK was only late.
    let (mut h, c, nxt) = ts_established();
    let (orig, _, len, before) = response_then_rto(&mut h, c, nxt);
    let out = h.send(S { ts: Some((3, orig)), ..seg(ACK, CLIENT_ISN + 1, nxt + 2 * len) });
    assert_eq!(h.ep.stats.spurious_rtos_undone, 1);
    let t = tcb(&h, c);
    assert_eq!((t.cwnd, t.ssthresh), before, "the reduction undone");
    assert_eq!(t.snd_nxt, t.snd_max, "no going back: the originals are on their way");
    assert!(data(&out, nxt).is_empty(), "nothing resent: {:?}", data(&out, nxt));
    let out = h.send(S { ts: Some((4, orig)), ..seg(ACK, CLIENT_ISN + 1, nxt + 8 * len) });
    assert!(data(&out, nxt).is_empty());
    assert_eq!(h.ep.stats.retransmits, 1, "only the RTO's own resend");
    assert_eq!(h.ep.stats.tlp_probes, 1);
}

#[test]
fn eifel_an_ack_echoing_the_retransmission_is_a_real_loss() {
    // The original was lost: the retransmission's timestamp comes back, and
    // the sender goes on resending from SND.UNA in slow start.
    let (mut h, c, nxt) = ts_established();
    let (_, rts, len, _) = response_then_rto(&mut h, c, nxt);
    let out = h.send(S { ts: Some((3, rts)), ..seg(ACK, CLIENT_ISN + 1, nxt + len) });
    assert_eq!(h.ep.stats.spurious_rtos_undone, 0);
    assert_eq!(data(&out, nxt).first(), Some(&(len, len)), "the next segment resent");
}

#[test]
fn frto_falls_back_to_slow_start_resends_on_a_duplicate_ack() {
    let (mut h, c, nxt) = plain_established();
    ten_in_flight(&mut h, c, nxt, 0, 10 * MSS);
    h.advance_until_output(Duration::from_secs(5));
    h.send(seg(ACK, CLIENT_ISN + 1, nxt + 2 * MSS));
    // A duplicate: the timeout was real. Resend from SND.UNA.
    let out = h.send(seg(ACK, CLIENT_ISN + 1, nxt + 2 * MSS));
    assert_eq!(data(&out, nxt).first(), Some(&(2 * MSS, MSS)));
    assert_eq!(tcb(&h, c).cwnd, 3 * MSS as u32);
    assert_eq!(h.ep.stats.spurious_rtos_undone, 0);
}

#[test]
fn dsack_is_counted_and_not_taken_for_data_above_a_hole() {
    let (mut h, c, nxt) = sack_established();
    ten_in_flight(&mut h, c, nxt, 0, 0);
    // RFC 2883: the peer ACKs two segments and reports the first twice.
    let out = h.send(sack(nxt + 2 * MSS, &[seg_at(nxt, 0)]));
    assert!(data(&out, nxt).is_empty());
    assert_eq!(h.ep.stats.dsacks_received, 1);
    // A block beyond SND.MAX is not believed.
    h.send(sack(nxt + 2 * MSS, &[(nxt + 20 * MSS, nxt + 21 * MSS)]));
    assert_eq!(h.ep.stats.sack_blocks_invalid, 1);
    h.ep.check_invariants().unwrap();
    assert!(!tcb(&h, c).has(crate::tcp::tcb::flag::RECOVERY));
}

/// Ten segments out of twenty queued with timestamps, no ACK until the tail
/// loss probe (segment 10) and the RTO (segment 0 again) have gone; then
/// the first ACK covers segments 0-2 and echoes the originals' timestamp:
/// the timeout was spurious (RFC 3522), undone. Returns one segment's
/// length and the client's next TSval.
fn spurious_rto_undone(h: &mut Harness, c: Handle, nxt: SeqNumber) -> (usize, u32) {
    let out = write(h, c, 0, 20 * 1448);
    let len = out[0].payload.len();
    assert_eq!(data(&out, nxt).len(), 10, "the initial window");
    let orig = out[0].ts.expect("timestamps").0;
    let (_, probe) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(data(&probe, nxt), vec![(10 * len, len)], "the probe is new data");
    let (_, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(data(&out, nxt), vec![(0, len)], "the RTO resends SND.UNA");
    assert_eq!(tcb(h, c).recover, nxt + 11 * len, "no fast retransmit below SND.MAX after a timeout");
    h.advance(Duration::from_millis(1));
    let out = h.send(S { ts: Some((3, orig)), ..seg(ACK, CLIENT_ISN + 1, nxt + 3 * len) });
    assert_eq!(h.ep.stats.spurious_rtos_undone, 1);
    assert_eq!(data(&out, nxt), vec![(11 * len, len), (12 * len, len)], "on from SND.MAX, the window restored");
    assert!(tcb(h, c).recover < nxt + 3 * len, "the timeout's recover given back");
    h.advance(Duration::from_millis(1));
    (len, orig)
}

#[test]
fn a_loss_in_the_flight_a_spurious_rto_undid_is_found_by_the_sacks_that_follow() {
    // RFC 4015 §3.1: after the undo the sender goes on as if the timeout
    // had not fired. Segment 3 of the old flight really was lost; the rest
    // arrive: SACKed above it, it is resent at once (RFC 6675), not left
    // to a second timeout by the `recover` the timeout had set.
    let (mut h, c, nxt) = ts_established();
    let (len, orig) = spurious_rto_undone(&mut h, c, nxt);
    let out = h.send(S { ts: Some((4, orig)), ..sack(nxt + 3 * len, &[(nxt + 4 * len, nxt + 13 * len)]) });
    assert_eq!(data(&out, nxt).first(), Some(&(3 * len, len)), "segment 3 resent at once");
    check_payloads(&out, nxt, 0);
    assert!(tcb(&h, c).has(crate::tcp::tcb::flag::RECOVERY));
    assert_eq!((h.ep.stats.fast_retransmits, h.ep.stats.rto_expiries), (1, 1));
    h.ep.check_invariants().unwrap();
}

#[test]
fn rack_judges_the_flight_a_spurious_rto_undid_by_the_new_data_delivered_after_it() {
    // Only the two new segments are SACKed (fewer than DupThresh): RACK
    // alone can tell. The timeout cleared the old flight's transmit times;
    // the undo gives them back, as of the timeout, so the delivery of data
    // sent after it marks segment 3 on lost (RFC 8985 §6.2), and recovery
    // resends it first.
    let (mut h, c, nxt) = ts_established();
    let (len, orig) = spurious_rto_undone(&mut h, c, nxt);
    let out = h.send(S { ts: Some((4, orig)), ..sack(nxt + 3 * len, &[(nxt + 11 * len, nxt + 13 * len)]) });
    assert!(h.ep.stats.rack_lost_segments >= 1);
    assert_eq!(data(&out, nxt).first(), Some(&(3 * len, len)), "segment 3 resent first: {:?}", data(&out, nxt));
    check_payloads(&out, nxt, 0);
    assert_eq!(h.ep.stats.rto_expiries, 1, "no second timeout");
    h.ep.check_invariants().unwrap();
}

#[test]
fn an_ack_after_a_lost_ack_takes_its_rtt_from_the_echo_not_the_oldest_byte() {
    // RFC 7323 §4.3: the peer's ACK of two segments was lost; two more left
    // 30 ms later, and the ACK of all four echoes the first of those. The
    // oldest byte it acknowledges left 30 ms before that: counting it would
    // take the lost ACK for path delay.
    let (mut h, c, mut nxt) = ts_established();
    // Round trips of 20 ms until SRTT is near it (the probe timeout, 2 *
    // SRTT + 2 ms, then comes after this test's ACK).
    let len = 1448;
    for k in 0..12 {
        let out = write(&mut h, c, k * len, len);
        h.advance(Duration::from_millis(20));
        h.send(S { ts: Some((3, out[0].ts.unwrap().0)), ..seg(ACK, CLIENT_ISN + 1, nxt + len) });
        nxt += len;
    }
    let srtt = tcb(&h, c).srtt_us;
    assert!(srtt > 15_000, "SRTT {srtt}");
    let base = 12 * len;
    assert_eq!(data(&write(&mut h, c, base, 2 * len), nxt).len(), 2);
    h.advance(Duration::from_millis(30));
    let later = write(&mut h, c, base + 2 * len, 2 * len);
    assert_eq!(data(&later, nxt), vec![(2 * len, len), (3 * len, len)]);
    h.advance(Duration::from_millis(20));
    h.send(S { ts: Some((4, later[0].ts.unwrap().0)), ..seg(ACK, CLIENT_ISN + 1, nxt + 4 * len) });
    assert_eq!((h.ep.stats.tlp_probes, h.ep.stats.retransmits), (0, 0), "nothing resent: the first sample counts");
    // RFC 6298 §2.3 with a sample of 20-21 ms (the echo's millisecond),
    // not 50 ms.
    let got = tcb(&h, c).srtt_us;
    let with = |r: u32| srtt - srtt / 8 + r / 8;
    assert!(
        with(20_000) <= got && got <= with(21_000),
        "SRTT {got} µs: {} by the echo, {} by the oldest byte",
        with(20_000),
        with(50_000)
    );
    h.flush();
    assert_eq!(h.ep.stats.rtt_samples_bounded_by_echo, 1);
}
