//! Data transfer: cumulative ACK, delayed ACK, windows, retransmission
//! (RFC 9293 §3.8, RFC 6298, RFC 5681).

use super::*;

both_families!(
    one_segment_gets_a_delayed_ack_after_40ms,
    every_second_segment_is_acked_at_once,
    response_rides_on_the_ack_of_the_request,
    sending_respects_mss_and_peer_window,
    window_update_when_the_application_reads,
    lost_data_is_retransmitted_on_rto_with_backoff_then_reset,
    rtt_sample_sets_rto_with_200ms_floor,
    three_duplicate_acks_trigger_fast_retransmit,
    zero_window_is_probed,
    a_slow_reader_that_answers_probes_is_probed_for_as_long_as_it_reads_nothing,
    unanswered_probes_time_out_and_acks_with_no_probe_out_buy_no_time,
    active_open_handshake,
    active_open_refused_by_rst,
    a_stray_ack_to_our_syn_gets_an_rst_and_the_syn_again_once,
    simultaneous_open,
    syn_is_retransmitted_then_the_open_fails,
    acks_are_taken_even_when_our_window_is_shut,
    writable_follows_when_the_buffer_pool_refills,
    segments_beyond_a_hole_are_kept_and_delivered_when_it_fills,
    a_partly_filled_hole_delivers_up_to_the_next_one,
    a_fin_before_bytes_held_beyond_a_hole_discards_them,
    more_holes_than_a_chunk_tracks_are_dropped_and_counted,
    duplicate_acks_carry_sack_blocks_when_sack_was_negotiated,
    no_sack_blocks_without_sack_permitted,
);

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);

fn one_segment_gets_a_delayed_ack_after_40ms(f: Family) {
    let (mut h, c, s1) = established_over(f);
    h.send0(S { payload: vec![1; 100], ..seg(ACK | PSH, C1, s1) });
    assert_eq!(h.take_events(), vec![Event::Readable(c)]);
    let (took, out) = h.advance_until_output(Duration::from_secs(1));
    assert_eq!(took, Duration::from_millis(40));
    assert_eq!((out[0].control, out[0].ack), (ACK, C1 + 100));
}

fn every_second_segment_is_acked_at_once(f: Family) {
    let (mut h, _, s1) = established_over(f);
    h.send0(S { payload: vec![1; 1000], ..seg(ACK, C1, s1) });
    let a = h.send1(S { payload: vec![2; 1000], ..seg(ACK, C1 + 1000, s1) });
    assert_eq!(a.ack, C1 + 2000);
}

fn response_rides_on_the_ack_of_the_request(f: Family) {
    let (mut h, c, s1) = established_over(f);
    let out = h.send(S { payload: b"GET / HTTP/1.1\r\n\r\n".to_vec(), ..seg(ACK | PSH, C1, s1) });
    assert!(out.is_empty());
    h.ep.write(c, b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
    let out = h.flush();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].control, out[0].seq, out[0].ack), (ACK | PSH, s1, C1 + 18));
    assert!(h.advance(Duration::from_millis(100)).is_empty(), "the delayed ACK went with the data");
}

fn sending_respects_mss_and_peer_window(f: Family) {
    let (mut h, c, s1) = established_over(f);
    // The peer shrinks its window to 3000 bytes.
    h.send0(S { window: 3000, ..seg(ACK, C1, s1) });
    h.ep.write(c, &[7u8; 5000]).unwrap();
    let out = h.flush();
    let lens: Vec<usize> = out.iter().map(|s| s.payload.len()).collect();
    // The 80 bytes left of the window wait (sender SWS avoidance, RFC
    // 9293 §3.8.6.2.1): ACKs are coming that open it further.
    let mss = f.mss() as usize;
    assert_eq!(lens, vec![mss, mss], "limited by the 3000-byte window");
    assert_eq!(out[1].seq, s1 + mss);
    // The ACK opens the window: the rest goes out.
    let out = h.send(S { window: 65535, ..seg(ACK, C1, s1 + 2 * mss) });
    let rest: Vec<(SeqNumber, usize)> = out.iter().map(|s| (s.seq, s.payload.len())).collect();
    assert_eq!(rest, vec![(s1 + 2 * mss, mss), (s1 + 3 * mss, 5000 - 3 * mss)]);
}

fn window_update_when_the_application_reads(f: Family) {
    let cap =
        Capacity { connections: 4, time_wait: 4, buffers: 4, buffer_size: 4096, events: 64, ..Capacity::default() };
    let mut h = Harness::with_capacity_over(f, TcpConfig::default(), cap);
    let (c, iss) = h.establish();
    let s1 = iss + 1;
    h.send0(S { payload: vec![0; 1024], ..seg(ACK, C1, s1) });
    h.send1(S { payload: vec![0; 1024], ..seg(ACK, C1 + 1024, s1) });
    h.send0(S { payload: vec![0; 1024], ..seg(ACK, C1 + 2048, s1) });
    let a = h.send1(S { payload: vec![0; 1024], ..seg(ACK, C1 + 3072, s1) });
    assert_eq!((a.ack, a.window), (C1 + 4096, 0), "buffer full: zero window");
    let mut buf = [0u8; 4096];
    assert_eq!(h.ep.read(c, &mut buf).unwrap(), 4096);
    let u = h.flush();
    assert_eq!(u.len(), 1, "window update");
    assert_eq!(u[0].window, 4096);
}

fn lost_data_is_retransmitted_on_rto_with_backoff_then_reset(f: Family) {
    let cfg = TcpConfig::default();
    let (mut h, c, s1) = established_over(f);
    h.ep.write(c, b"hello").unwrap();
    assert_eq!(h.flush().len(), 1);
    let mut gaps = Vec::new();
    for _ in 0..cfg.max_retries {
        let (took, out) = h.advance_until_output(Duration::from_secs(300));
        assert_eq!((out[0].seq, out[0].payload.as_slice()), (s1, &b"hello"[..]));
        gaps.push(took.as_millis() as u64);
    }
    assert_eq!(gaps[0], 1000);
    assert_eq!(gaps[1], 2000);
    assert_eq!(*gaps.last().unwrap(), 120_000, "capped at rto_max");
    let (_, out) = h.advance_until_output(Duration::from_secs(300));
    assert_eq!(out[0].control, RST | ACK);
    assert_eq!(h.take_events(), vec![Event::Closed(c, CloseReason::TimedOut)]);
    assert_eq!(h.ep.stats.connections_timed_out, 1);
}

fn rtt_sample_sets_rto_with_200ms_floor(f: Family) {
    let (mut h, c, s1) = established_over(f);
    h.ep.write(c, b"x").unwrap();
    h.flush();
    h.now += Duration::from_millis(10);
    h.send0(seg(ACK, C1, s1 + 1));
    let tcb = h.ep.tcb(c).unwrap();
    assert_eq!(tcb.srtt_us, 10_000);
    assert_eq!(tcb.rto_ms, 200, "srtt + 4 rttvar = 30 ms, floored at 200");
}

fn three_duplicate_acks_trigger_fast_retransmit(f: Family) {
    let (mut h, c, s1) = established_over(f);
    let mss = f.mss() as usize;
    h.ep.write(c, &vec![9u8; 4 * mss]).unwrap();
    assert_eq!(h.flush().len(), 4);
    h.send0(seg(ACK, C1, s1 + mss));
    h.send0(seg(ACK, C1, s1 + mss));
    h.send0(seg(ACK, C1, s1 + mss));
    let out = h.send(seg(ACK, C1, s1 + mss));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].seq, out[0].payload.len()), (s1 + mss, mss));
}

fn zero_window_is_probed(f: Family) {
    let (mut h, c, s1) = established_over(f);
    h.send0(S { window: 0, ..seg(ACK, C1, s1) });
    h.ep.write(c, b"blocked").unwrap();
    assert!(h.flush().is_empty(), "window closed");
    let (_, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!((out[0].seq, out[0].payload.len()), (s1, 1), "one-byte probe");
    // The window opens and acknowledges the probe byte: the rest follows.
    let out = h.send(S { window: 1000, ..seg(ACK, C1, s1 + 1) });
    assert_eq!((out[0].seq, out[0].payload.as_slice()), (s1 + 1, &b"locked"[..]));
}

/// Advances to the next segment the server sends (within `limit`).
fn next_probe(h: &mut Harness, limit: Duration) -> S {
    let (_, out) = h.advance_until_output(limit);
    assert_eq!(out.len(), 1, "one probe: {out:#?}");
    out.into_iter().next().unwrap()
}

fn a_slow_reader_that_answers_probes_is_probed_for_as_long_as_it_reads_nothing(f: Family) {
    // RFC 9293 §3.8.6.1: probing goes on while the receiver answers. Here
    // for an hour, past the 12 retries and 847 s after which a live reader
    // used to be reset as timed out.
    let (mut h, c, s1) = established_over(f);
    h.send0(S { window: 0, ..seg(ACK, C1, s1) });
    h.ep.write(c, b"waiting").unwrap();
    let start = h.now;
    let mut probes = 0;
    while h.now - start < Duration::from_secs(3600) {
        let p = next_probe(&mut h, Duration::from_secs(300));
        assert_eq!((p.seq, p.payload.len()), (s1, 1), "the probe is the first unacknowledged byte");
        probes += 1;
        h.send0(S { window: 0, ..seg(ACK, C1, s1) });
    }
    assert!(probes > 12 + 3, "{probes} probes in an hour");
    assert_eq!(h.ep.state(c), Some(State::Established));
    assert_eq!(h.ep.stats.connections_timed_out, 0);
    // The reader reads: the window opens and the data goes, from the probe
    // byte it did not take.
    let out = h.send(S { window: 1000, ..seg(ACK, C1, s1) });
    assert_eq!((out[0].seq, out[0].payload.as_slice()), (s1, &b"waiting"[..]));
}

fn unanswered_probes_time_out_and_acks_with_no_probe_out_buy_no_time(f: Family) {
    let cfg = TcpConfig { max_retries: 3, ..TcpConfig::default() };
    let mut h = Harness::new_over(f, cfg);
    let (c, iss) = h.establish();
    h.take_events();
    let s1 = iss + 1;
    h.send0(S { window: 0, ..seg(ACK, C1, s1) });
    h.ep.write(c, b"waiting").unwrap();
    // The first probe is answered: the count is back to 0, no probe is out.
    next_probe(&mut h, Duration::from_secs(300));
    assert!(h.ep.tcb(c).unwrap().has(tcb::flag::PROBE_OUT));
    h.send0(S { window: 0, ..seg(ACK, C1, s1) });
    let t = h.ep.tcb(c).unwrap();
    assert_eq!((t.retries, t.has(tcb::flag::PROBE_OUT)), (0, false));
    // More zero-window ACKs with no probe out change nothing.
    for _ in 0..5 {
        h.send0(S { window: 0, ..seg(ACK, C1, s1) });
    }
    // Then the peer falls silent: 3 probes (max_retries), then the reset.
    for n in 1..=3 {
        next_probe(&mut h, Duration::from_secs(300));
        assert_eq!(h.ep.tcb(c).unwrap().retries, n);
    }
    let (_, out) = h.advance_until_output(Duration::from_secs(300));
    assert_eq!(out.iter().map(|s| s.control).collect::<Vec<_>>(), vec![RST | ACK], "given up: {out:#?}");
    assert_eq!(h.ep.stats.connections_timed_out, 1);
    assert_eq!(h.ep.state(c), None);
}

fn active_open_handshake(f: Family) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    let c = h.ep.connect(h.now, h.tuple().local(), h.tuple().remote(), CLIENT_MAC).unwrap();
    let out = h.flush();
    assert_eq!(out.len(), 1);
    let s = &out[0];
    assert_eq!(s.control, SYN);
    assert_eq!((s.mss, s.ws, s.sack_perm), (Some(f.mss()), Some(7), true));
    assert!(s.ts.is_some());
    assert_eq!(h.ep.state(c), Some(State::SynSent));
    let iss = s.seq;
    let a = h.send1(S { mss: Some(1400), ..seg(SYN | ACK, CLIENT_ISN, iss + 1) });
    assert_eq!((a.control, a.seq, a.ack), (ACK, iss + 1, CLIENT_ISN + 1));
    assert_eq!(a.ts, None, "the peer did not answer timestamps");
    assert_eq!(h.take_events(), vec![Event::Connected(c)]);
    let tcb = h.ep.tcb(c).unwrap();
    assert_eq!((tcb.state, tcb.mss, tcb.snd_wscale, tcb.rcv_wscale), (State::Established, 1400, 0, 0));
}

fn active_open_refused_by_rst(f: Family) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    let c = h.ep.connect(h.now, h.tuple().local(), h.tuple().remote(), CLIENT_MAC).unwrap();
    let iss = h.flush()[0].seq;
    // An ACK for something else: RST with its ack, connection stays.
    let r = h.send1(seg(SYN | ACK, CLIENT_ISN, iss + 5));
    assert_eq!((r.control, r.seq), (RST, iss + 5));
    // An RST without ACK is ignored; with the right ACK it refuses.
    h.send0(seg(RST, CLIENT_ISN, SeqNumber(0)));
    assert_eq!(h.ep.state(c), Some(State::SynSent));
    h.send0(seg(RST | ACK, SeqNumber(0), iss + 1));
    assert_eq!(h.ep.state(c), None);
    assert_eq!(h.take_events(), vec![Event::Closed(c, CloseReason::Refused)]);
}

fn a_stray_ack_to_our_syn_gets_an_rst_and_the_syn_again_once(f: Family) {
    // The peer holds a TIME-WAIT of an earlier connection on this tuple and
    // answers our SYN with an ACK of that one (Linux's TCP_TW_ACK).
    let mut h = Harness::new_over(f, TcpConfig::default());
    let c = h.ep.connect(h.now, h.tuple().local(), h.tuple().remote(), CLIENT_MAC).unwrap();
    let iss = h.flush()[0].seq;
    let stray = SeqNumber(iss.0.wrapping_add(0x4000_0000));
    let out = h.send(seg(ACK, CLIENT_ISN, stray));
    let ctl: Vec<u8> = out.iter().map(|s| s.control).collect();
    assert_eq!(ctl, vec![RST, SYN], "the RST ends the peer's TIME-WAIT, then the SYN: {out:#?}");
    assert_eq!((out[0].seq, out[1].seq), (stray, iss), "RST at SEG.ACK; the same SYN");
    assert_eq!(h.ep.stats.syns_resent_after_reset, 1);
    // Once: another stray ACK gets the RST alone.
    let r = h.send1(seg(ACK, CLIENT_ISN, stray));
    assert_eq!(r.control, RST);
    assert_eq!(h.ep.stats.syns_resent_after_reset, 1);
    // The handshake completes on the resent SYN.
    h.send1(seg(SYN | ACK, CLIENT_ISN, iss + 1));
    assert_eq!(h.ep.state(c), Some(State::Established));
}

fn simultaneous_open(f: Family) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    let c = h.ep.connect(h.now, h.tuple().local(), h.tuple().remote(), CLIENT_MAC).unwrap();
    let iss = h.flush()[0].seq;
    let sa = h.send1(syn(CLIENT_ISN));
    assert_eq!((sa.control, sa.seq, sa.ack), (SYN | ACK, iss, CLIENT_ISN + 1));
    assert_eq!(h.ep.state(c), Some(State::SynReceived));
    h.send0(seg(ACK, CLIENT_ISN + 1, iss + 1));
    assert_eq!(h.ep.state(c), Some(State::Established));
    assert_eq!(h.take_events(), vec![Event::Connected(c)]);
}

fn syn_is_retransmitted_then_the_open_fails(f: Family) {
    let cfg = TcpConfig::default();
    let mut h = Harness::new_over(f, cfg);
    let c = h.ep.connect(h.now, h.tuple().local(), h.tuple().remote(), CLIENT_MAC).unwrap();
    let iss = h.flush()[0].seq;
    for _ in 0..cfg.synack_retries {
        let (_, out) = h.advance_until_output(Duration::from_secs(100));
        assert_eq!((out[0].control, out[0].seq), (SYN, iss));
    }
    h.advance_until_output(Duration::from_secs(100));
    assert_eq!(h.ep.state(c), None);
    assert_eq!(h.take_events(), vec![Event::Closed(c, CloseReason::Refused)]);
}

fn acks_are_taken_even_when_our_window_is_shut(f: Family) {
    // RFC 9293 §3.10.7.4: with RCV.WND = 0 no segment is acceptable, "but
    // special allowance should be made to accept valid ACKs".
    let cap =
        Capacity { connections: 4, time_wait: 4, buffers: 4, buffer_size: 4096, events: 64, ..Capacity::default() };
    let mut h = Harness::with_capacity_over(f, TcpConfig::default(), cap);
    let (c, iss) = h.establish();
    let s1 = iss + 1;
    for i in 0..4 {
        h.send(S { payload: vec![0; 1024], ..seg(ACK, C1 + i * 1024, s1) });
    }
    assert_eq!(h.ep.tcb(c).unwrap().rcv_wnd(), 0);
    h.ep.write(c, b"reply").unwrap();
    h.flush();
    // The peer's next data cannot be taken, but its ACK of our reply can.
    let a = h.send1(S { payload: b"more".to_vec(), ..seg(ACK, C1 + 4096, s1 + 5) });
    assert_eq!((a.control, a.ack, a.window), (ACK, C1 + 4096, 0));
    assert_eq!(h.ep.tcb(c).unwrap().snd_una, s1 + 5, "ACK processed");
    assert!(h.ep.tcb(c).unwrap().tx.is_empty());
}

fn writable_follows_when_the_buffer_pool_refills(f: Family) {
    let cap =
        Capacity { connections: 4, time_wait: 4, buffers: 1, buffer_size: 4096, events: 64, ..Capacity::default() };
    let mut h = Harness::with_capacity_over(f, TcpConfig::default(), cap);
    h.client_port = 1;
    let (a, iss_a) = h.establish();
    h.client_port = 2;
    h.take_events();
    let (b, _) = h.establish();
    h.take_events();
    assert_eq!(h.ep.write(a, b"takes the only chunk").unwrap(), 20);
    assert_eq!(h.ep.write(b, b"none left").unwrap(), 0);
    h.flush();
    h.client_port = 1;
    h.send0(seg(ACK, C1, iss_a + 21));
    assert!(h.take_events().contains(&Event::Writable(b)), "b hears the pool has room again");
    assert_eq!(h.ep.write(b, b"now it fits").unwrap(), 11);
}

/// Reads everything readable on `c`.
fn read_all(h: &mut Harness, c: Handle) -> Vec<u8> {
    let mut out = vec![0u8; h.ep.readable(c)];
    let n = h.ep.read(c, &mut out).unwrap();
    out.truncate(n);
    out
}

fn segments_beyond_a_hole_are_kept_and_delivered_when_it_fills(f: Family) {
    // RFC 9293 §3.10.7.4; RFC 5681 §4.2: each out-of-order segment gets a
    // duplicate ACK at once, and so does the one that fills the hole.
    let (mut h, c, s1) = established_over(f);
    let data: Vec<u8> = (0..4000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let part = |a: usize, b: usize| S { payload: data[a..b].to_vec(), ..seg(ACK, C1 + a, s1) };
    for (a, b) in [(2000, 3000), (1000, 2000), (3000, 4000)] {
        let d = h.send1(part(a, b));
        assert_eq!((d.control, d.ack), (ACK, C1), "duplicate ACK for {a}..{b}");
    }
    assert_eq!(h.ep.readable(c), 0, "nothing readable past the hole");
    assert_eq!(h.ep.stats.out_of_order_queued, 3);
    assert_eq!(h.ep.stats.drop_out_of_order, 0);
    let a = h.send1(part(0, 1000));
    assert_eq!(a.ack, C1 + 4000, "the filled hole is ACKed at once, past everything held");
    assert_eq!(h.take_events(), vec![Event::Readable(c)]);
    assert_eq!(read_all(&mut h, c), data);
}

fn a_partly_filled_hole_delivers_up_to_the_next_one(f: Family) {
    let (mut h, c, s1) = established_over(f);
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    let part = |a: usize, b: usize| S { payload: data[a..b].to_vec(), ..seg(ACK, C1 + a, s1) };
    h.send1(part(1000, 2000));
    h.send1(part(3000, 4000));
    let a = h.send1(part(0, 1000));
    assert_eq!(a.ack, C1 + 2000);
    assert_eq!(read_all(&mut h, c), &data[..2000], "read while a hole remains: the chunk stays");
    let a = h.send1(part(2000, 3000));
    assert_eq!(a.ack, C1 + 4000, "ACKed at once: the last hole filled");
    h.send0(part(4000, 5000));
    let (took, a) = h.advance_until_output(Duration::from_secs(1));
    assert_eq!((took, a[0].ack), (Duration::from_millis(40), C1 + 5000), "no hole left: a delayed ACK again");
    assert_eq!(read_all(&mut h, c), &data[2000..]);
    assert_eq!(h.ep.buffers_free(), 64, "every chunk back in the pool");
}

/// Found by the `endpoint` fuzz target: a FIN that ends the stream before
/// bytes the peer had sent beyond a hole. Nothing after a FIN can be
/// delivered, so the bytes held beyond it are discarded (Linux's `tcp_fin`
/// purges its out-of-order queue), counted, and no range is left at
/// RCV.NXT (the invariant the fuzzer tripped).
fn a_fin_before_bytes_held_beyond_a_hole_discards_them(f: Family) {
    let (mut h, c, s1) = established_over(f);
    h.send1(S { payload: vec![2; 7], ..seg(ACK, C1 + 7, s1) });
    assert_eq!(h.ep.stats.out_of_order_queued, 1);
    let a = h.send1(S { payload: vec![1; 6], ..seg(ACK | FIN, C1, s1) });
    assert_eq!(a.ack, C1 + 7, "the 6 bytes and the FIN");
    assert_eq!(h.ep.state(c), Some(State::CloseWait));
    assert_eq!(h.ep.stats.out_of_order_discarded_at_fin, 1);
    h.ep.check_invariants().unwrap();
    assert_eq!(read_all(&mut h, c), vec![1; 6]);
    // The bytes beyond, sent again, are beyond the end of the stream.
    h.send(S { payload: vec![2; 7], ..seg(ACK, C1 + 7, s1) });
    h.ep.check_invariants().unwrap();
    assert_eq!(read_all(&mut h, c), Vec::<u8>::new());
    h.ep.close(c).unwrap();
    h.flush();
    assert_eq!(h.ep.buffers_free(), 64, "every chunk back in the pool");
}

fn more_holes_than_a_chunk_tracks_are_dropped_and_counted(f: Family) {
    let (mut h, c, s1) = established_over(f);
    let one = |k: usize| S { payload: vec![k as u8; 100], ..seg(ACK, C1 + 200 * k, s1) };
    for k in 1..=crate::tcp::reassembly::RANGES + 1 {
        h.send1(one(k));
    }
    assert_eq!(h.ep.stats.out_of_order_queued, crate::tcp::reassembly::RANGES as u64);
    assert_eq!(h.ep.stats.drop_out_of_order, 1);
    // The dropped one comes again once there is room for it: all arrive.
    for k in 0..=crate::tcp::reassembly::RANGES + 1 {
        let fill = S { payload: vec![k as u8; 200], ..seg(ACK, C1 + 200 * k, s1) };
        h.send(fill);
    }
    let got = read_all(&mut h, c);
    assert_eq!(got.len(), 200 * (crate::tcp::reassembly::RANGES + 2));
}

fn duplicate_acks_carry_sack_blocks_when_sack_was_negotiated(f: Family) {
    // RFC 2018 §4: the first block holds the latest segment; the others
    // follow; they move with RCV.NXT. With timestamps, 3 blocks fit.
    let mut h = Harness::new_over(f, TcpConfig::default());
    let sa = h.send1(S { sack_perm: true, ts: Some((1, 0)), ..syn(CLIENT_ISN) });
    assert!(sa.sack_perm);
    let ts = Some((2, sa.ts.unwrap().0));
    h.send0(S { ts, ..seg(ACK, C1, sa.seq + 1) });
    let s1 = sa.seq + 1;
    let part = |a: usize, b: usize| S { ts, payload: vec![a as u8; b - a], ..seg(ACK, C1 + a, s1) };
    let blk = |a: usize, b: usize| Some((C1 + a, C1 + b));
    let d = h.send1(part(1000, 1100));
    assert_eq!((d.ack, d.sack), (C1, [blk(1000, 1100), None, None, None]));
    let d = h.send1(part(3000, 3100));
    assert_eq!(d.sack, [blk(3000, 3100), blk(1000, 1100), None, None]);
    h.send1(part(5000, 5100));
    let d = h.send1(part(2000, 2100));
    assert_eq!(d.sack, [blk(2000, 2100), blk(5000, 5100), blk(3000, 3100), None], "3 blocks beside timestamps");
    let d = h.send1(part(0, 1000));
    assert_eq!((d.ack, d.sack), (C1 + 1100, [blk(2000, 2100), blk(5000, 5100), blk(3000, 3100), None]));
}

fn no_sack_blocks_without_sack_permitted(f: Family) {
    let (mut h, _, s1) = established_over(f);
    let d = h.send1(S { payload: vec![1; 100], ..seg(ACK, C1 + 1000, s1) });
    assert_eq!((d.ack, d.sack), (C1, [None; crate::wire::MAX_SACK_BLOCKS]));
}
