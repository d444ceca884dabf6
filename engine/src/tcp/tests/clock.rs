//! The engine's clock counts from the boot (`cli::boot`), so on a host up
//! for more than 49.7 days the 32-bit millisecond values the engine keeps
//! (RFC 7323 TSval and TSecr, RACK's transmit times, the out-of-window ACK
//! limit, the receive window's measurement) have wrapped, and they go on
//! wrapping under a live connection. One connection's life across each
//! wrap: the engine's own milliseconds (`now` as u32) and its TSval (`now`
//! plus the tuple's offset) wrap at different instants, so each gets a run.

use super::*;

both_families!(
    a_connection_lives_across_the_32_bit_millisecond_wrap,
    deadlines_set_before_the_wrap_fire_after_it_on_time,
);

const WRAP: u64 = 1 << 32;

fn cap() -> Capacity {
    Capacity { connections: 64, time_wait: 64, buffers: 64, buffer_size: 16384, events: 256, ..Capacity::default() }
}

fn a_connection_lives_across_the_32_bit_millisecond_wrap(f: Family) {
    let probe = Harness::new_over(f, TcpConfig::default());
    let offset = Secrets::from_bytes([42; 32]).ts_offset(&probe.tuple()) as u64;
    // 100 ms before `now` as u32 wraps, and 100 ms before TSval does: the
    // retransmission below goes out after the wrap.
    life_across(f, Instant::from_millis(WRAP - 100), false);
    life_across(f, Instant::from_millis(2 * WRAP - 100 - offset), true);
}

fn life_across(f: Family, start: Instant, tsval_wraps: bool) {
    let mut h = Harness::starting_at(f, TcpConfig::default(), cap(), start);
    let sa = h.send1(S { ts: Some((100, 0)), ..syn(CLIENT_ISN) });
    let (mut peer_ts, mut ecr) = (101, sa.ts.expect("timestamps negotiated").0);
    let ack = |h: &mut Harness, seq, ack, data: &[u8], ecr: u32, peer_ts: &mut u32| {
        *peer_ts += 1;
        h.send(S { ts: Some((*peer_ts, ecr)), payload: data.to_vec(), ..seg(ACK, seq, ack) })
    };
    ack(&mut h, C1, sa.seq + 1, b"", ecr, &mut peer_ts);
    let c = h.accepted();
    let s1 = sa.seq + 1;

    // Data out, its ACK lost: the RTO resends it across the wrap, neither
    // at once nor never.
    h.ep.write(c, b"across the wrap").unwrap();
    let first = h.flush();
    assert_eq!(first.len(), 1);
    let (took, again) = h.advance_until_output(Duration::from_secs(10));
    assert!(took >= Duration::from_millis(200) && took <= Duration::from_secs(3), "RTO after {took:?}");
    assert_eq!((again[0].seq, again[0].payload.as_slice()), (s1, &b"across the wrap"[..]));
    let (t0, t1) = (first[0].ts.unwrap().0, again[0].ts.unwrap().0);
    assert_eq!(t1.wrapping_sub(t0) as u64, took.as_millis() as u64, "TSval moves with the clock, modulo 2^32");
    assert_eq!(t1 < t0, tsval_wraps, "TSval {t0} -> {t1}");
    if !tsval_wraps {
        assert!(((start + took).total_millis() as u32) < start.total_millis() as u32, "the clock's u32 wrapped");
    }
    ecr = t1;

    // The ACK, then the peer's data: both pass PAWS and the window checks.
    let len = b"across the wrap".len();
    ack(&mut h, C1, s1 + len, b"", ecr, &mut peer_ts);
    let out = ack(&mut h, C1, s1 + len, b"hello", ecr, &mut peer_ts);
    let mut got = [0u8; 16];
    assert_eq!(h.ep.read(c, &mut got), Ok(5), "the peer's data taken after the wrap: {out:?}");
    assert_eq!(h.ep.stats.drop_paws, 0);

    // Close; TIME-WAIT lasts 2MSL, not less, not more.
    h.ep.close(c).unwrap();
    let fin = h.flush();
    assert_eq!(fin.last().map(|s| s.control & FIN), Some(FIN));
    let ecr = fin.last().unwrap().ts.unwrap().0;
    ack(&mut h, C1 + 5, s1 + len + 1, b"", ecr, &mut peer_ts);
    peer_ts += 1;
    h.send(S { ts: Some((peer_ts, ecr)), ..seg(FIN | ACK, C1 + 5, s1 + len + 1) });
    assert_eq!(h.ep.time_wait(), 1);
    assert!(h.advance(Duration::from_millis(59_999)).is_empty());
    assert_eq!(h.ep.time_wait(), 1, "2MSL not over");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.ep.time_wait(), 0, "2MSL over");
    assert_eq!(h.ep.armed_timers(), 0);
}

/// The control block keeps its deadlines in 32 bits (`deadline.rs`): the
/// delayed ACK, the application's deadline and keepalive, each armed a
/// moment before the wrap, fire after it at their time, not at once and
/// not 49.7 days late.
fn deadlines_set_before_the_wrap_fire_after_it_on_time(f: Family) {
    let start = Instant::from_millis(WRAP - 20);
    let mut h = Harness::starting_at(f, TcpConfig::default(), cap(), start);
    let (c, iss) = h.establish();
    h.take_events();
    let s1 = iss + 1;
    // One segment: its ACK is delayed 40 ms, past the wrap.
    assert!(h.send(S { payload: b"x".to_vec(), ..seg(ACK, C1, s1) }).is_empty(), "ACK delayed");
    let (took, out) = h.advance_until_output(Duration::from_secs(1));
    assert_eq!(took, Duration::from_millis(40));
    assert_eq!((out[0].control, out[0].ack), (ACK, C1 + 1));
    assert!(h.now.total_millis() >= WRAP, "fired after the wrap");
    let mut got = [0u8; 4];
    assert_eq!(h.ep.read(c, &mut got), Ok(1));
    assert_eq!(h.take_events(), vec![Event::Readable(c)]);

    // The application's deadline, 30 s on, across the next instant the
    // wrapped value is u32::MAX (stored 1 ms later at worst).
    let at = h.now + Duration::from_secs(30);
    h.ep.set_deadline(c, Some(at)).unwrap();
    assert_eq!(h.ep.deadline(c), Some(at));
    h.advance(Duration::from_millis(29_999));
    let early = h.take_events();
    assert!(early.is_empty(), "not early: {early:?}");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take_events(), vec![Event::Deadline(c)]);

    // Keepalive: 2 h of idle from the last segment, measured across the wrap.
    let (took, out) = h.advance_until_output(Duration::from_secs(3 * 3600));
    assert_eq!(took, Duration::from_secs(2 * 3600) - Duration::from_millis(30_040));
    assert_eq!((out[0].control, out[0].seq), (ACK, s1 - 1), "the keepalive probe");
}

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);
