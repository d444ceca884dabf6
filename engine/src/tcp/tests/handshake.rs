//! Three-way handshake, passive and active (RFC 9293 §3.5, §3.10.7.2-4).

use super::*;

both_families!(
    passive_open_answers_syn_with_syn_ack,
    syn_ack_answers_offered_options,
    final_ack_establishes_and_announces,
    final_ack_not_iss_plus_one_gets_rst,
    listener_answers_bare_ack_and_syn_ack_with_rst_and_ignores_rst,
    data_segment_completes_handshake_when_final_ack_is_lost,
    syn_ack_retransmitted_with_backoff_then_given_up,
    retransmitted_syn_gets_the_same_syn_ack,
    stale_syn_answered_by_rst_leaves_nothing_behind,
    rst_in_syn_received_exact_in_window_outside,
    syn_with_fin_or_rst_is_dropped,
    port_without_listener_gets_rst,
    half_open_budget_with_cookies_off_drops_and_counts,
    full_table_answers_with_cookie_and_resets_its_ack_counted,
    stop_listening_refuses_new_handshakes_and_keeps_connections,
    duplicate_syn_and_final_ack_in_one_batch,
    unacceptable_acks_beyond_one_flushs_room_are_counted,
);

fn cfg() -> TcpConfig {
    TcpConfig::default()
}

fn passive_open_answers_syn_with_syn_ack(f: Family) {
    // CONFORMANCE 1: SYN-ACK acks ISS+1, carries MSS; options only when offered.
    let mut h = Harness::new_over(f, cfg());
    let sa = h.send1(syn(CLIENT_ISN));
    assert_eq!(sa.control, SYN | ACK);
    assert_eq!(sa.ack, CLIENT_ISN + 1);
    assert_eq!(sa.mss, Some(f.mss()), "1500 less the IP and TCP headers");
    assert_eq!((sa.ws, sa.sack_perm, sa.ts), (None, false, None), "nothing offered, nothing answered");
    assert!(sa.payload.is_empty());
    assert_eq!(h.ep.half_open(), 1);
    assert_eq!(h.ep.stats.synacks_sent, 1);
    assert!(h.take_events().is_empty(), "no connection before the handshake completes");
}

fn syn_ack_answers_offered_options(f: Family) {
    let mut h = Harness::new_over(f, cfg());
    let s = S { ws: Some(8), sack_perm: true, ts: Some((5000, 0)), mss: Some(1400), ..syn(CLIENT_ISN) };
    let sa = h.send1(s);
    assert_eq!(sa.mss, Some(f.mss()), "we advertise ours; the smaller one is used for sending");
    assert_eq!(sa.ws, Some(7));
    assert!(sa.sack_perm);
    let (_, ecr) = sa.ts.expect("timestamps answered");
    assert_eq!(ecr, 5000);
    h.send0(S { ts: Some((5001, sa.ts.unwrap().0)), ..seg(ACK, CLIENT_ISN + 1, sa.seq + 1) });
    let c = h.accepted();
    let tcb = h.ep.tcb(c).unwrap();
    assert_eq!(tcb.mss, 1400 - 12, "peer MSS less the timestamp option");
    assert_eq!((tcb.snd_wscale, tcb.rcv_wscale), (8, 7));
    assert_eq!(tcb.snd_wnd, 65535 << 8);
}

fn final_ack_establishes_and_announces(f: Family) {
    let mut h = Harness::new_over(f, cfg());
    let (c, _) = h.establish();
    assert_eq!(h.ep.state(c), Some(State::Established));
    assert_eq!(h.ep.half_open(), 0);
    assert_eq!(h.ep.stats.connections_accepted, 1);
}

fn final_ack_not_iss_plus_one_gets_rst(f: Family) {
    // CONFORMANCE 2: RST with seq = SEG.ACK, and the half-open entry stays.
    for delta in [0usize, 2, 1000] {
        let mut h = Harness::new_over(f, cfg());
        let sa = h.send1(syn(CLIENT_ISN));
        let rst = h.send1(seg(ACK, CLIENT_ISN + 1, sa.seq + delta));
        assert_eq!(rst.control, RST);
        assert_eq!(rst.seq, sa.seq + delta);
        assert_eq!(h.ep.half_open(), 1);
        h.send0(seg(ACK, CLIENT_ISN + 1, sa.seq + 1));
        assert_eq!(h.ep.connections(), 1);
        assert_eq!(h.ep.half_open(), 0);
    }
}

fn listener_answers_bare_ack_and_syn_ack_with_rst_and_ignores_rst(f: Family) {
    // CONFORMANCE 3.
    let mut h = Harness::new_over(f, cfg());
    let r = h.send1(seg(ACK, SeqNumber(5), SeqNumber(777)));
    assert_eq!((r.control, r.seq), (RST, SeqNumber(777)));
    let r = h.send1(seg(SYN | ACK, SeqNumber(5), SeqNumber(888)));
    assert_eq!((r.control, r.seq), (RST, SeqNumber(888)));
    h.send0(seg(RST, SeqNumber(5), SeqNumber(0)));
    h.send0(seg(RST | ACK, SeqNumber(5), SeqNumber(9)));
    assert_eq!(h.ep.connections(), 0);
}

fn data_segment_completes_handshake_when_final_ack_is_lost(f: Family) {
    // CONFORMANCE 4.
    let mut h = Harness::new_over(f, cfg());
    let sa = h.send1(syn(CLIENT_ISN));
    h.send(S { payload: b"GET /".to_vec(), ..seg(ACK | PSH, CLIENT_ISN + 1, sa.seq + 1) });
    let c = h.accepted();
    assert_eq!(h.ep.readable(c), 5);
    let mut buf = [0u8; 8];
    assert_eq!(h.ep.read(c, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"GET /");
}

fn syn_ack_retransmitted_with_backoff_then_given_up(f: Family) {
    // The seeds' lost final ACK; CONFORMANCE 5 (same ISS).
    let c = cfg();
    let mut h = Harness::new_over(f, c);
    let sa = h.send1(syn(CLIENT_ISN));
    let mut expected = Duration::from_secs(1);
    for _ in 0..c.synack_retries {
        let (took, out) = h.advance_until_output(Duration::from_secs(200));
        assert_eq!(took, expected, "exponential backoff");
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].control, out[0].seq, out[0].ack), (SYN | ACK, sa.seq, CLIENT_ISN + 1));
        expected *= 2;
    }
    let (_, out) = h.advance_until_output(Duration::from_secs(200));
    assert!(out.is_empty(), "no more retransmissions: {out:?}");
    assert_eq!(h.ep.connections(), 0, "half-open entry reclaimed");
    assert_eq!(h.ep.half_open(), 0);
    assert_eq!(h.ep.stats.half_open_timeouts, 1);
    assert_eq!(h.ep.stats.synacks_retransmitted, c.synack_retries as u64);
    assert_eq!(h.ep.armed_timers(), 0);
    assert!(h.take_events().is_empty());
}

fn retransmitted_syn_gets_the_same_syn_ack(f: Family) {
    let mut h = Harness::new_over(f, cfg());
    let a = h.send1(syn(CLIENT_ISN));
    h.now += Duration::from_millis(300);
    let b = h.send1(syn(CLIENT_ISN));
    assert_eq!((b.control, b.seq, b.ack), (SYN | ACK, a.seq, a.ack));
    assert_eq!(h.ep.connections(), 1);
}

fn stale_syn_answered_by_rst_leaves_nothing_behind(f: Family) {
    // The seeds' old duplicate SYN: the client answers our SYN-ACK with an
    // RST (seq = its ISN + 1 as the SYN-ACK acked), and no connection stays.
    let mut h = Harness::new_over(f, cfg());
    let sa = h.send1(syn(CLIENT_ISN));
    h.send0(seg(RST, sa.ack, SeqNumber(0)));
    assert_eq!(h.ep.connections(), 0);
    assert_eq!(h.ep.half_open(), 0);
    assert_eq!(h.ep.armed_timers(), 0);
    assert!(h.take_events().is_empty(), "no ESTABLISHED connection ever existed");
    // And the client's stray ACK later is refused.
    let r = h.send1(seg(ACK, CLIENT_ISN + 1, sa.seq + 1));
    assert_eq!(r.control, RST);
}

fn rst_in_syn_received_exact_in_window_outside(f: Family) {
    // CONFORMANCE 6.
    let mut h = Harness::new_over(f, cfg());
    let sa = h.send1(syn(CLIENT_ISN));
    let ch = h.send1(seg(RST, CLIENT_ISN + 10, SeqNumber(0)));
    assert_eq!((ch.control, ch.seq, ch.ack), (ACK, sa.seq + 1, CLIENT_ISN + 1), "challenge ACK");
    h.send0(seg(RST, CLIENT_ISN + 1_000_000, SeqNumber(0)));
    assert_eq!(h.ep.half_open(), 1);
    h.send0(seg(RST, CLIENT_ISN + 1, SeqNumber(0)));
    assert_eq!(h.ep.half_open(), 0);
    assert_eq!(h.ep.connections(), 0);
}

fn syn_with_fin_or_rst_is_dropped(f: Family) {
    let mut h = Harness::new_over(f, cfg());
    h.send0(S { control: SYN | FIN, ..syn(CLIENT_ISN) });
    h.send0(S { control: SYN | RST, ..syn(CLIENT_ISN) });
    assert_eq!(h.ep.stats.drop_bad_flags, 2);
    assert_eq!(h.ep.connections(), 0);
}

fn port_without_listener_gets_rst(f: Family) {
    // RFC 9293 §3.10.7.1: SYN to a closed port gets RST|ACK acking it.
    let mut h = Harness::new_over(f, cfg());
    h.ep = Endpoint::new(cfg(), Capacity::default(), SERVER_MAC, Secrets::from_bytes([1; 32]), h.now);
    let r = h.send1(syn(CLIENT_ISN));
    assert_eq!((r.control, r.seq, r.ack), (RST | ACK, SeqNumber(0), CLIENT_ISN + 1));
    h.send0(seg(RST, CLIENT_ISN, SeqNumber(0)));
}

fn half_open_budget_with_cookies_off_drops_and_counts(f: Family) {
    // CONFORMANCE 8 (Never mode): past the budget SYNs are dropped, counted.
    let c = TcpConfig { half_open_budget: 2, syn_cookies: CookieMode::Never, ..cfg() };
    let mut h = Harness::new_over(f, c);
    for port in 0..2 {
        h.client_port = 1000 + port;
        h.send1(syn(CLIENT_ISN));
    }
    h.client_port = 2000;
    h.send0(syn(CLIENT_ISN));
    assert_eq!(h.ep.stats.syns_dropped_half_open_budget, 1);
    assert_eq!(h.ep.half_open(), 2);
}

fn full_table_answers_with_cookie_and_resets_its_ack_counted(f: Family) {
    // CONFORMANCE 8: table full; the completing ACK cannot be admitted, and
    // the client hears so (RST) rather than hanging.
    let cap =
        Capacity { connections: 1, time_wait: 4, buffers: 4, buffer_size: 4096, events: 16, ..Capacity::default() };
    let mut h = Harness::with_capacity_over(f, cfg(), cap);
    h.establish();
    h.client_port = 40001;
    let sa = h.send1(syn(CLIENT_ISN));
    assert_eq!(h.ep.stats.cookies_sent, 1, "table full: cookie");
    let r = h.send1(seg(ACK, CLIENT_ISN + 1, sa.seq + 1));
    assert_eq!((r.control, r.seq), (RST, sa.seq + 1));
    assert_eq!(h.ep.stats.cookie_acks_table_full, 1);
    assert_eq!(h.ep.connections(), 1);
}

fn stop_listening_refuses_new_handshakes_and_keeps_connections(f: Family) {
    // The drain at shutdown: established connections carry on, new SYNs get
    // RST (seq 0, ack = SYN + 1) as on a closed port, and nothing is kept.
    let mut h = Harness::new_over(f, cfg());
    let (c, iss) = h.establish();
    assert!(h.ep.is_listening());
    h.ep.stop_listening();
    assert!(!h.ep.is_listening());

    h.client_port = CLIENT_PORT + 1;
    let rst = h.send1(syn(CLIENT_ISN));
    assert_eq!(rst.control, RST | ACK);
    assert_eq!(rst.ack, CLIENT_ISN + 1);
    assert_eq!(h.ep.half_open(), 0);
    assert_eq!(h.ep.connections(), 1);
    assert_eq!(h.ep.stats.drop_no_listener, 1);

    // The established connection still moves data and closes normally.
    h.client_port = CLIENT_PORT;
    h.send0(S { payload: b"ping".to_vec(), ..seg(ACK | PSH, CLIENT_ISN + 1, iss + 1) });
    assert_eq!(h.ep.readable(c), 4, "data after stop_listening is delivered (ACK delayed)");
}

fn duplicate_syn_and_final_ack_in_one_batch(f: Family) {
    // Seen on the testbed under loss: the client's SYN retransmission and its
    // ACK of our (timer-)retransmitted SYN-ACK arrive in the same RX batch.
    // The duplicate SYN rewinds SND.NXT to ISS to resend the SYN-ACK; the ACK
    // then establishes before any flush. What follows must start at ISS + 1.
    let mut h = Harness::new_over(f, cfg());
    let sa = h.send1(syn(CLIENT_ISN));
    let (from, to) = (h.client_end(), h.server_end());
    let mut tx = Capture::default();
    for s in [syn(CLIENT_ISN), seg(ACK, CLIENT_ISN + 1, sa.seq + 1)] {
        let mut f = frame_of(&s, from, to);
        h.ep.on_frame(h.now, &mut f, &mut tx);
    }
    let mut out = h.collect(tx);
    out.extend(h.flush());
    assert!(out.iter().all(|s| s.seq == sa.seq + 1 || s.control & SYN != 0), "{out:#?}");
    let c = h.accepted();
    assert_eq!(h.ep.write(c, b"hi"), Ok(2));
    let out = h.flush();
    let data = out.iter().find(|s| !s.payload.is_empty()).expect("the data goes out");
    assert_eq!(data.seq, sa.seq + 1, "data starts at ISS + 1, not at the rewound ISS");
}

fn unacceptable_acks_beyond_one_flushs_room_are_counted(f: Family) {
    // The RST answering an unacceptable ACK in SYN-RECEIVED waits for the
    // connection's output in a bounded list, not in the control block: 300
    // such ACKs in one burst get 256 RSTs (each at its SEG.ACK), and the
    // rest are counted, never sent late or to another connection.
    let c = TcpConfig { half_open_budget: 512, syn_cookies: CookieMode::Never, ..cfg() };
    let cap = Capacity {
        connections: 4096,
        time_wait: 64,
        buffers: 64,
        buffer_size: 4096,
        events: 1024,
        ..Capacity::default()
    };
    let mut h = Harness::with_capacity_over(f, c, cap);
    let mut acks = Vec::new();
    for port in 0..300 {
        h.client_port = 20_000 + port;
        let sa = h.send1(syn(CLIENT_ISN));
        acks.push((h.client_end(), sa.seq + 7));
    }
    let to = h.server_end();
    let mut tx = Capture::default();
    for &(from, bad) in &acks {
        let mut frame = frame_of(&seg(ACK, CLIENT_ISN + 1, bad), from, to);
        h.ep.on_frame(h.now, &mut frame, &mut tx);
    }
    h.ep.flush(h.now, &mut tx);
    let rsts: Vec<_> = tx.frames.iter().map(|fr| parse(fr)).filter(|(_, s)| s.control == RST).collect();
    assert_eq!(rsts.len(), 256);
    for (t, s) in &rsts {
        let (_, bad) = acks[(t.remote_port - 20_000) as usize];
        assert_eq!(s.seq, bad, "RST <SEQ=SEG.ACK> on its own tuple");
    }
    assert_eq!(h.ep.stats.rsts_not_sent, 44);
    assert!(h.flush().is_empty(), "none owed later");
    assert_eq!(h.ep.half_open(), 300, "the half-open entries stay");
}
