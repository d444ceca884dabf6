//! Connection release (RFC 9293 §3.6): both orders, half-close,
//! simultaneous close, FIN retransmission, FIN-WAIT-2 timeout, abort.

use super::*;

both_families!(
    passive_close_through_close_wait_and_last_ack,
    last_ack_retransmits_fin_when_final_ack_is_lost_then_gives_up,
    last_ack_after_a_shutdown_keeps_the_data_retry_budget,
    active_close_into_time_wait,
    fin_before_missing_data_is_not_processed_until_the_data_arrives,
    unread_bytes_hold_time_wait_for_at_most_2msl,
    an_rst_in_time_wait_costs_neither_the_unread_bytes_nor_the_clean_close,
    simultaneous_close_goes_through_closing,
    fin_retransmitted_in_fin_wait_1_and_closing,
    fin_wait_2_times_out_when_peer_never_sends_fin,
    close_with_unread_data_sends_rst_fully_read_sends_fin,
    data_after_close_resets,
    abort_sends_rst_and_frees_everything,
    fin_that_also_acks_our_fin_goes_straight_to_time_wait,
    close_in_syn_sent_goes_to_closed_silently,
    close_in_syn_received_sends_fin_after_the_handshake,
    close_after_shutdown_arms_the_fin_wait_2_timeout,
    the_ack_of_our_fin_counts_when_our_window_is_shut,
);

/// An established connection with no options; returns (handle, our next seq).
fn established(f: Family, cfg: TcpConfig) -> (Harness, Handle, SeqNumber) {
    let mut h = Harness::new_over(f, cfg);
    let (c, iss) = h.establish();
    h.take_events();
    (h, c, iss + 1)
}

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);

fn passive_close_through_close_wait_and_last_ack(f: Family) {
    // CONFORMANCE 14, first half.
    let (mut h, c, s1) = established(f, TcpConfig::default());
    let a = h.send1(seg(FIN | ACK, C1, s1));
    assert_eq!((a.control, a.seq, a.ack), (ACK, s1, C1 + 1), "FIN consumes one sequence number");
    assert_eq!(h.ep.state(c), Some(State::CloseWait));
    assert_eq!(h.take_events(), vec![Event::PeerClosed(c)]);
    // Half-closed: we may still send.
    assert_eq!(h.ep.write(c, b"late data").unwrap(), 9);
    let d = h.flush();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].control, d[0].seq, d[0].payload.as_slice()), (ACK | PSH, s1, &b"late data"[..]));
    h.send0(seg(ACK, C1 + 1, s1 + 9));
    h.ep.close(c).unwrap();
    let f = h.flush();
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].control, f[0].seq, f[0].ack), (FIN | ACK, s1 + 9, C1 + 1));
    assert_eq!(h.ep.state(c), Some(State::LastAck));
    h.send0(seg(ACK, C1 + 1, s1 + 10));
    assert_eq!(h.ep.state(c), None, "CLOSED and reclaimed");
    assert_eq!(h.take_events(), vec![Event::Writable(c), Event::Closed(c, CloseReason::Normal)]);
    assert_eq!(h.ep.time_wait(), 0, "the passive closer holds no TIME-WAIT");
    assert_eq!(h.ep.armed_timers(), 0);
}

fn last_ack_retransmits_fin_when_final_ack_is_lost_then_gives_up(f: Family) {
    // The seeds' lost final ACK, from the passive closer's side.
    let cfg = TcpConfig::default();
    let (mut h, c, s1) = established(f, cfg);
    h.send1(seg(FIN | ACK, C1, s1));
    h.ep.close(c).unwrap();
    let f = h.flush();
    assert_eq!(f[0].control, FIN | ACK);
    let mut gaps = Vec::new();
    for _ in 0..cfg.fin_retries {
        let (took, out) = h.advance_until_output(Duration::from_secs(300));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].control, out[0].seq, out[0].ack), (FIN | ACK, s1, C1 + 1));
        gaps.push(took.as_millis());
    }
    assert_eq!(gaps[0], 1000, "initial RTO");
    assert!(gaps.windows(2).all(|w| w[1] == (w[0] * 2).min(120_000)), "backoff: {gaps:?}");
    let (_, out) = h.advance_until_output(Duration::from_secs(300));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].control, RST | ACK, "gives up with an RST");
    assert_eq!(h.ep.state(c), None);
    assert_eq!(h.ep.stats.connections_timed_out, 1);
    // A later segment gets RST by the CLOSED rules (CONFORMANCE 14).
    let r = h.send1(seg(ACK, C1 + 1, s1 + 1));
    assert_eq!((r.control, r.seq), (RST, s1 + 1));
}

fn last_ack_after_a_shutdown_keeps_the_data_retry_budget(f: Family) {
    // Found by the faulty-path property test once send buffers grew past a
    // chunk: the application wrote its whole response, shut down, and the
    // peer's FIN came while the data was still in flight. Not an orphan, so
    // the FIN's shorter budget must not apply to the data it waits behind.
    let cfg = TcpConfig { fin_retries: 2, ..TcpConfig::default() };
    let (mut h, c, s1) = established(f, cfg);
    h.send1(seg(FIN | ACK, C1, s1));
    assert_eq!(h.ep.write(c, b"response").unwrap(), 8);
    h.ep.shutdown(c).unwrap();
    let f = h.flush();
    assert_eq!(f[0].control & FIN, FIN);
    assert_eq!(h.ep.state(c), Some(State::LastAck));
    for i in 0..cfg.max_retries {
        let (_, out) = h.advance_until_output(Duration::from_secs(300));
        assert_eq!(out.len(), 1, "retransmission {i}");
        assert_eq!((out[0].seq, out[0].control & RST), (s1, 0), "retransmission {i}");
    }
    let (_, out) = h.advance_until_output(Duration::from_secs(300));
    assert_eq!(out[0].control, RST | ACK, "gives up after max_retries");
    assert_eq!(h.ep.state(c), None);
}

fn active_close_into_time_wait(f: Family) {
    // CONFORMANCE 15.
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.ep.close(c).unwrap();
    let f = h.flush();
    assert_eq!((f[0].control, f[0].seq), (FIN | ACK, s1));
    assert_eq!(h.ep.state(c), Some(State::FinWait1));
    h.send0(seg(ACK, C1, s1 + 1));
    assert_eq!(h.ep.state(c), Some(State::FinWait2));
    let a = h.send1(seg(FIN | ACK, C1, s1 + 1));
    assert_eq!((a.control, a.seq, a.ack), (ACK, s1 + 1, C1 + 1));
    assert_eq!(h.ep.state(c), None, "left the connection table");
    assert_eq!(h.ep.time_wait(), 1);
    assert_eq!(h.take_events(), vec![Event::PeerClosed(c), Event::Closed(c, CloseReason::Normal)]);
}

fn fin_before_missing_data_is_not_processed_until_the_data_arrives(f: Family) {
    // CONFORMANCE 15 (reordered FIN in FIN-WAIT): out-of-order FIN is ACKed
    // with the old rcv_nxt, the connection waits for the hole.
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.ep.shutdown(c).unwrap();
    h.flush();
    h.send0(seg(ACK, C1, s1 + 1));
    let a = h.send1(seg(FIN | ACK, C1 + 4, s1 + 1));
    assert_eq!((a.control, a.ack), (ACK, C1), "duplicate ACK for the hole");
    assert_eq!(h.ep.state(c), Some(State::FinWait2));
    let a = h.send1(S { payload: b"abcd".to_vec(), ..seg(ACK, C1, s1 + 1) });
    assert_eq!(a.ack, C1 + 4);
    let a = h.send1(seg(FIN | ACK, C1 + 4, s1 + 1));
    assert_eq!(a.ack, C1 + 5);
    // TIME-WAIT with "abcd" unread (after a shutdown): held until read.
    assert_eq!((h.ep.state(c), h.ep.time_wait()), (Some(State::TimeWait), 0));
    let mut buf = [0u8; 8];
    assert_eq!(h.ep.read(c, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"abcd");
    h.flush();
    assert_eq!((h.ep.state(c), h.ep.time_wait()), (None, 1));
}

fn unread_bytes_hold_time_wait_for_at_most_2msl(f: Family) {
    // After a shutdown, TIME-WAIT with unread bytes is held in the table
    // for the application to read them; one that never reads must not
    // hold the entry for ever: after 2MSL the bytes are discarded
    // (counted) and TIME-WAIT goes on in its own table.
    let cfg = TcpConfig::default();
    let (mut h, c, s1) = established(f, cfg);
    h.ep.shutdown(c).unwrap();
    h.flush();
    h.send0(seg(ACK, C1, s1 + 1));
    h.send1(S { payload: b"abcd".to_vec(), ..seg(FIN | ACK, C1, s1 + 1) });
    assert_eq!((h.ep.state(c), h.ep.time_wait()), (Some(State::TimeWait), 0));
    h.advance(cfg.time_wait() - Duration::from_secs(1));
    assert_eq!(h.ep.state(c), Some(State::TimeWait), "still readable before 2MSL");
    h.advance(Duration::from_secs(2));
    assert_eq!((h.ep.state(c), h.ep.time_wait()), (None, 1));
    assert_eq!(h.ep.stats.time_wait_unread_discarded, 4);
}

fn an_rst_in_time_wait_costs_neither_the_unread_bytes_nor_the_clean_close(f: Family) {
    // TIME-WAIT held for unread bytes, after a shutdown. The peer, already
    // CLOSED, answers our ACK of one of its late duplicates with an RST at
    // exactly RCV.NXT. RFC 1337 (the default policy, as in the TIME-WAIT
    // table): ignored. The application reads every byte and sees a clean
    // close, not a reset (found by the proxy's property test: the reset
    // backend side made the proxy reset the client with the backend's last
    // bytes still to deliver).
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.ep.shutdown(c).unwrap();
    h.flush();
    h.send0(seg(ACK, C1, s1 + 1));
    h.send1(S { payload: b"abcd".to_vec(), ..seg(FIN | ACK, C1, s1 + 1) });
    assert_eq!(h.ep.state(c), Some(State::TimeWait));
    h.take_events();
    h.send0(seg(RST, C1 + 5, SeqNumber(0)));
    assert_eq!(h.ep.stats.rsts_ignored, 1);
    assert_eq!(h.ep.state(c), Some(State::TimeWait), "still held for its bytes");
    let mut buf = [0u8; 8];
    assert_eq!(h.ep.read(c, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"abcd");
    h.flush();
    assert_eq!((h.ep.state(c), h.ep.time_wait()), (None, 1), "into the TIME-WAIT table");
    assert_eq!(h.ep.stats.connections_reset_by_peer, 0);
    assert!(!h.take_events().iter().any(|e| matches!(e, Event::Closed(_, CloseReason::Reset))), "not a reset");
}

fn simultaneous_close_goes_through_closing(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.ep.close(c).unwrap();
    h.flush();
    // The peer's FIN crosses ours: it does not ack our FIN.
    let a = h.send1(seg(FIN | ACK, C1, s1));
    assert_eq!((a.control, a.seq, a.ack), (ACK, s1 + 1, C1 + 1));
    assert_eq!(h.ep.state(c), Some(State::Closing));
    h.send0(seg(ACK, C1 + 1, s1 + 1));
    assert_eq!(h.ep.state(c), None);
    assert_eq!(h.ep.time_wait(), 1);
}

fn fin_retransmitted_in_fin_wait_1_and_closing(f: Family) {
    // CONFORMANCE 16.
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.ep.close(c).unwrap();
    h.flush();
    let (took, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(took, Duration::from_secs(1));
    assert_eq!((out[0].control, out[0].seq), (FIN | ACK, s1));
    h.send1(seg(FIN | ACK, C1, s1));
    assert_eq!(h.ep.state(c), Some(State::Closing));
    let (took, out) = h.advance_until_output(Duration::from_secs(5));
    assert_eq!(took, Duration::from_secs(2), "backoff continues");
    assert_eq!((out[0].control, out[0].seq, out[0].ack), (FIN | ACK, s1, C1 + 1));
}

fn fin_wait_2_times_out_when_peer_never_sends_fin(f: Family) {
    // CONFORMANCE 20.
    let cfg = TcpConfig { fin_wait2_timeout: Duration::from_secs(60), ..TcpConfig::default() };
    let (mut h, c, s1) = established(f, cfg);
    h.ep.close(c).unwrap();
    h.flush();
    h.send0(seg(ACK, C1, s1 + 1));
    assert_eq!(h.ep.state(c), Some(State::FinWait2));
    assert!(h.advance(Duration::from_millis(59_999)).is_empty());
    assert_eq!(h.ep.state(c), Some(State::FinWait2));
    assert!(h.advance(Duration::from_millis(1)).is_empty(), "reclaimed silently");
    assert_eq!(h.ep.state(c), None);
    assert_eq!(h.ep.stats.fin_wait2_timeouts, 1);
    let r = h.send1(seg(FIN | ACK, C1, s1 + 1));
    assert_eq!(r.control, RST);
}

fn close_with_unread_data_sends_rst_fully_read_sends_fin(f: Family) {
    // CONFORMANCE 21.
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.send(S { payload: b"unread".to_vec(), ..seg(ACK | PSH, C1, s1) });
    h.ep.close(c).unwrap();
    let r = h.flush();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].control, r[0].seq, r[0].ack), (RST | ACK, s1, C1 + 6));
    assert_eq!(h.ep.state(c), None);

    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.send(S { payload: b"read".to_vec(), ..seg(ACK | PSH, C1, s1) });
    let mut b = [0u8; 4];
    h.ep.read(c, &mut b).unwrap();
    h.ep.close(c).unwrap();
    let f = h.flush();
    assert_eq!(f.last().unwrap().control, FIN | ACK);
}

fn data_after_close_resets(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.ep.close(c).unwrap();
    h.flush();
    h.send0(seg(ACK, C1, s1 + 1));
    let r = h.send1(S { payload: b"more".to_vec(), ..seg(ACK, C1, s1 + 1) });
    assert_eq!(r.control, RST | ACK);
    assert_eq!(h.ep.state(c), None);
    assert_eq!(h.ep.stats.connections_aborted, 1);
}

fn abort_sends_rst_and_frees_everything(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.ep.write(c, b"pending").unwrap();
    h.ep.abort(c).unwrap();
    let r = h.flush();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].control, r[0].seq), (RST | ACK, s1));
    assert_eq!(h.ep.connections(), 0);
    assert_eq!(h.ep.buffers_free(), 64);
    assert!(h.take_events().is_empty(), "the application let go: no event");
}

fn fin_that_also_acks_our_fin_goes_straight_to_time_wait(f: Family) {
    // FIN-WAIT-1 -> TIME-WAIT on FIN,ACK-of-our-FIN (RFC 9293 §3.10.7.4, eighth step).
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.ep.close(c).unwrap();
    h.flush();
    let a = h.send1(seg(FIN | ACK, C1, s1 + 1));
    assert_eq!((a.control, a.seq, a.ack), (ACK, s1 + 1, C1 + 1));
    assert_eq!(h.ep.state(c), None);
    assert_eq!(h.ep.time_wait(), 1);
}

fn close_in_syn_sent_goes_to_closed_silently(f: Family) {
    // SYN-SENT -> CLOSED on CLOSE (RFC 9293 §3.10.4).
    let mut h = Harness::new_over(f, TcpConfig::default());
    let c = h.ep.connect(h.now, h.tuple().local(), h.tuple().remote(), CLIENT_MAC).unwrap();
    let syn = h.flush();
    assert_eq!(syn[0].control, SYN);
    h.ep.close(c).unwrap();
    assert!(h.flush().is_empty(), "nothing to tell a peer that never answered");
    assert_eq!(h.ep.state(c), None);
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.armed_timers(), 0);
    // A late SYN-ACK now meets the CLOSED rules.
    let r = h.send1(seg(SYN | ACK, CLIENT_ISN, syn[0].seq + 1));
    assert_eq!((r.control, r.seq), (RST, syn[0].seq + 1));
}

fn close_in_syn_received_sends_fin_after_the_handshake(f: Family) {
    // SYN-RECEIVED -> FIN-WAIT-1 on CLOSE (simultaneous open, then close).
    let mut h = Harness::new_over(f, TcpConfig::default());
    let c = h.ep.connect(h.now, h.tuple().local(), h.tuple().remote(), CLIENT_MAC).unwrap();
    let iss = h.flush()[0].seq;
    h.send1(syn(CLIENT_ISN));
    assert_eq!(h.ep.state(c), Some(State::SynReceived));
    h.ep.close(c).unwrap();
    assert!(h.flush().is_empty(), "the FIN waits for the handshake");
    assert_eq!(h.ep.state(c), Some(State::SynReceived));
    let out = h.send(seg(ACK, CLIENT_ISN + 1, iss + 1));
    assert_eq!(h.ep.state(c), Some(State::FinWait1));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].control, out[0].seq), (FIN | ACK, iss + 1));
}

fn close_after_shutdown_arms_the_fin_wait_2_timeout(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.ep.shutdown(c).unwrap();
    h.flush();
    h.send0(seg(ACK, C1, s1 + 1));
    assert_eq!(h.ep.state(c), Some(State::FinWait2));
    h.advance(Duration::from_secs(3600));
    assert_eq!(h.ep.state(c), Some(State::FinWait2), "half-closed and still owned: no timeout");
    h.ep.close(c).unwrap();
    h.flush();
    h.advance(Duration::from_secs(60));
    assert_eq!(h.ep.state(c), None, "closed: FIN-WAIT-2 gives up after its timeout");
    assert_eq!(h.ep.stats.fin_wait2_timeouts, 1);
}

/// Found by the fuzz target `endpoint` (input kept in fuzz/corpus/endpoint/):
/// with our receive window shut, the ACK of our FIN came on a segment that
/// did not fit the window. RFC 9293's zero-window allowance processed the
/// ACK but skipped the state change, so the connection stayed in
/// FIN-WAIT-1 with its FIN acknowledged and no timer: held for ever.
fn the_ack_of_our_fin_counts_when_our_window_is_shut(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    // Fill the receive window; the application does not read.
    let wnd = h.ep.tcb(c).unwrap().rcv_wnd() as usize;
    let mut c2 = C1;
    while h.ep.tcb(c).unwrap().rcv_wnd() > 0 {
        let n = (h.ep.tcb(c).unwrap().rcv_wnd() as usize).min(1000);
        h.send(S { payload: vec![7; n], ..seg(ACK, c2, s1) });
        c2 += n;
    }
    assert_eq!(c2 - C1, wnd);
    h.ep.shutdown(c).unwrap();
    let fin = h.flush();
    assert_eq!((fin[0].control & FIN, fin[0].seq), (FIN, s1));
    // More data that cannot fit, acknowledging our FIN.
    h.send(S { payload: b"more".to_vec(), ..seg(ACK, c2, s1 + 1) });
    assert_eq!(h.ep.tcb(c).unwrap().snd_una, s1 + 1, "the ACK was taken");
    assert_eq!(h.ep.state(c), Some(State::FinWait2), "the ACK of the FIN moves FIN-WAIT-1 on");
    assert!(h.ep.timer_armed(c), "keepalive watches the half-closed connection");
    h.ep.check_invariants().unwrap();
}
