//! SACK as the receiver reports it: D-SACK (RFC 2883 §4), a duplicate
//! segment reported in the first block of the ACK it provokes.

use super::recovery::{plain_established_over, sack_established_over};
use super::*;

both_families!(
    a_duplicate_below_rcv_nxt_is_reported_as_the_first_block,
    a_partly_duplicate_segment_reports_the_old_part,
    a_duplicate_beyond_a_hole_is_reported_then_its_range,
    without_sack_a_duplicate_gets_a_plain_ack,
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
