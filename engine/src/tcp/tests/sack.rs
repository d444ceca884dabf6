//! SACK as the receiver reports it: D-SACK (RFC 2883 §4), a duplicate
//! segment reported in the first block of the ACK it provokes; and the
//! room the blocks take in a data segment (RFC 6691 §2).

use super::recovery::{big_harness_over, plain_established_over, sack_established_over};
use super::*;

both_families!(
    a_duplicate_below_rcv_nxt_is_reported_as_the_first_block,
    a_partly_duplicate_segment_reports_the_old_part,
    a_duplicate_beyond_a_hole_is_reported_then_its_range,
    without_sack_a_duplicate_gets_a_plain_ack,
    data_segments_carrying_sack_blocks_stay_within_the_mtu,
);

fn data_seg(seq: SeqNumber, ack: SeqNumber, len: usize) -> S {
    S { payload: vec![7; len], ..seg(ACK | PSH, seq, ack) }
}

fn block(s: SeqNumber, e: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
    Some((s, e))
}

fn a_duplicate_below_rcv_nxt_is_reported_as_the_first_block(f: Family) {
    let (mut h, _, nxt) = sack_established_over(f);
    let base = CLIENT_ISN + 1;
    h.send(data_seg(base, nxt, 100));
    h.advance(Duration::from_millis(100));
    // The same segment again (our ACK was lost, the peer resent).
    let a = h.send1(data_seg(base, nxt, 100));
    assert_eq!(a.ack, base + 100);
    assert_eq!(a.sack[0], block(base, base + 100), "RFC 2883 §4 (1): below the cumulative ACK");
    assert_eq!(a.sack[1], None);
    assert_eq!(h.ep.stats.dsacks_sent, 1);
    assert_eq!((h.ep.stats.drop_out_of_window, h.ep.stats.drop_old_data), (1, 1), "counted as old data");
    // Reported once: the next ACK (delayed) has no D-SACK.
    let mut out = h.send(data_seg(base + 100, nxt, 100));
    out.extend(h.advance(Duration::from_millis(100)));
    let a = out.last().expect("an ACK");
    assert_eq!((a.ack, a.sack[0]), (base + 200, None));
}

fn a_partly_duplicate_segment_reports_the_old_part(f: Family) {
    let (mut h, _, nxt) = sack_established_over(f);
    let base = CLIENT_ISN + 1;
    h.send(data_seg(base, nxt, 100));
    let out = h.send(data_seg(base + 50, nxt, 100));
    let a = out.last().unwrap();
    assert_eq!(a.ack, base + 150);
    assert_eq!(a.sack[0], block(base + 50, base + 100));
}

fn a_duplicate_beyond_a_hole_is_reported_then_its_range(f: Family) {
    // RFC 2883 §4 (2): the first block is the duplicate, the second the
    // out-of-order range holding it.
    let (mut h, _, nxt) = sack_established_over(f);
    let base = CLIENT_ISN + 1;
    let a = h.send1(data_seg(base + 1000, nxt, 100));
    assert_eq!(a.sack[0], block(base + 1000, base + 1100));
    let a = h.send1(data_seg(base + 1000, nxt, 100));
    assert_eq!(a.ack, base);
    assert_eq!((a.sack[0], a.sack[1]), (block(base + 1000, base + 1100), block(base + 1000, base + 1100)));
}

fn without_sack_a_duplicate_gets_a_plain_ack(f: Family) {
    let (mut h, _, nxt) = plain_established_over(f);
    let base = CLIENT_ISN + 1;
    h.send(data_seg(base, nxt, 100));
    h.advance(Duration::from_millis(100));
    let a = h.send1(data_seg(base, nxt, 100));
    assert_eq!((a.ack, a.sack[0]), (base + 100, None));
    assert_eq!(h.ep.stats.dsacks_sent, 0);
}

/// The frame `s` makes from the server, its IP packet's length.
fn ip_len(h: &Harness, s: &S) -> usize {
    frame_of(s, h.server_end(), h.client_end()).len() - 14
}

fn data_segments_carrying_sack_blocks_stay_within_the_mtu(f: Family) {
    // Timestamps and SACK, the peer's MSS that of a 1500-byte MTU: a full
    // segment is exactly 1500 bytes, with no room for SACK blocks.
    let mut h = big_harness_over(f, TcpConfig::default());
    let sa = h.send1(S { sack_perm: true, ts: Some((1, 0)), mss: Some(f.mss()), ..syn(CLIENT_ISN) });
    let ecr = sa.ts.expect("timestamps").0;
    h.send0(S { ts: Some((2, ecr)), ..seg(ACK, CLIENT_ISN + 1, sa.seq + 1) });
    let c = h.accepted();
    h.take_events();
    let (nxt, base, full) = (sa.seq + 1, CLIENT_ISN + 1, f.mss() as usize - 12);
    let data = |seq: SeqNumber, len: usize| S { ts: Some((3, ecr)), payload: vec![1; len], ..seg(ACK | PSH, seq, nxt) };
    // Three ranges beyond a hole: every segment we send reports them.
    for k in [1, 3, 5] {
        h.send(data(base + k * 200, 100));
    }
    assert_eq!(h.ep.write(c, &[9u8; 20_000]).unwrap(), 20_000);
    let out = h.flush();
    assert!(out.len() >= 10, "the initial window's worth: {}", out.len());
    for s in &out {
        assert_eq!(s.sack.iter().flatten().count(), 3, "{s:?}");
        assert!(ip_len(&h, s) <= 1500, "{} bytes with {} of payload", ip_len(&h, s), s.payload.len());
        // RFC 6691 §2: the payload shrinks by the option's 28 bytes.
        assert_eq!(s.payload.len(), full - 28);
    }
    // The hole filled: full segments again, without blocks.
    let sent: usize = out.iter().map(|s| s.payload.len()).sum();
    let a = h.send(data(base, 1000));
    assert!(a.iter().all(|s| s.sack[0].is_none()), "no blocks once the hole is filled");
    let out = h.send(S { ts: Some((4, ecr)), ..seg(ACK, base + 1100, nxt + sent) });
    let lens: Vec<(usize, usize)> = out.iter().map(|s| (s.payload.len(), ip_len(&h, s))).collect();
    assert!(lens.len() > 1 && lens[0] == (full, 1500), "{lens:?}");
    assert!(lens.iter().all(|&(p, l)| l <= 1500 && (p == full || p == lens.last().unwrap().0)), "{lens:?}");

    // A duplicate of the range beyond the hole, answered while full
    // segments go out: the D-SACK's block does not fit beside the one the
    // payload left room for; it goes on a segment with room, or is counted.
    let (mut h, c, nxt) = sack_established_over(f);
    let base = CLIENT_ISN + 1;
    let plain = |seq: SeqNumber, len: usize| S { payload: vec![1; len], ..seg(ACK | PSH, seq, nxt) };
    h.send(plain(base + 1000, 100));
    assert_eq!(h.ep.write(c, &[9u8; 20_000]).unwrap(), 20_000);
    let mut frame = frame_of(&plain(base + 1000, 100), h.client_end(), h.server_end());
    let mut tx = Capture::default();
    let _ = h.ep.on_frame(h.now, &mut frame, &mut tx);
    let mut out = h.collect(tx);
    out.extend(h.flush());
    assert!(out.len() >= 10, "{}", out.len());
    for s in &out {
        assert!(ip_len(&h, s) <= 1500, "{} bytes, {} of payload", ip_len(&h, s), s.payload.len());
    }
    let dsack = out.iter().filter(|s| s.sack[0] == block(base + 1000, base + 1100) && s.sack[1].is_some()).count();
    assert_eq!(dsack as u64 + h.ep.stats.dsacks_not_sent, 1, "sent once or counted");
}
