//! Segment acceptability and the RFC 5961 defences, in every synchronized
//! state (CONFORMANCE 9-13, 23).

use super::*;

both_families!(
    exact_rst_aborts_in_every_synchronized_state,
    in_window_rst_gets_challenge_ack,
    out_of_window_rst_is_dropped_silently,
    syn_in_synchronized_state_gets_challenge_ack_never_aborts,
    out_of_window_segments_are_acked_not_delivered,
    ack_of_unsent_data_is_dropped_and_acked_in_every_state,
    data_without_ack_flag_is_dropped,
    never_answer_rst_with_rst,
    paws_drops_old_timestamps,
);

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);

/// Builds a connection in `state`; returns (harness, handle, our SND.NXT, peer's next seq).
fn in_state(f: Family, state: State) -> (Harness, Handle, SeqNumber, SeqNumber) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    let (c, iss) = h.establish();
    let s1 = iss + 1;
    let (snd, rcv) = match state {
        State::Established => (s1, C1),
        State::CloseWait => {
            h.send1(seg(FIN | ACK, C1, s1));
            (s1, C1 + 1)
        }
        State::LastAck => {
            h.send1(seg(FIN | ACK, C1, s1));
            h.ep.close(c).unwrap();
            h.flush();
            (s1 + 1, C1 + 1)
        }
        State::FinWait1 => {
            h.ep.shutdown(c).unwrap();
            h.flush();
            (s1 + 1, C1)
        }
        State::FinWait2 => {
            h.ep.shutdown(c).unwrap();
            h.flush();
            h.send0(seg(ACK, C1, s1 + 1));
            (s1 + 1, C1)
        }
        State::Closing => {
            h.ep.shutdown(c).unwrap();
            h.flush();
            h.send1(seg(FIN | ACK, C1, s1));
            (s1 + 1, C1 + 1)
        }
        s => panic!("no fixture for {s}"),
    };
    assert_eq!(h.ep.state(c), Some(state));
    h.take_events();
    (h, c, snd, rcv)
}

const STATES: [State; 6] =
    [State::Established, State::FinWait1, State::FinWait2, State::CloseWait, State::Closing, State::LastAck];

fn exact_rst_aborts_in_every_synchronized_state(f: Family) {
    for st in STATES {
        let (mut h, c, _, rcv) = in_state(f, st);
        h.send0(seg(RST, rcv, SeqNumber(0)));
        assert_eq!(h.ep.state(c), None, "{st}");
        assert_eq!(h.take_events(), vec![Event::Closed(c, CloseReason::Reset)], "{st}");
        assert_eq!(h.ep.stats.connections_reset_by_peer, 1, "{st}");
    }
}

fn in_window_rst_gets_challenge_ack(f: Family) {
    for st in STATES {
        let (mut h, c, snd, rcv) = in_state(f, st);
        let a = h.send1(seg(RST, rcv + 100, SeqNumber(0)));
        assert_eq!((a.control, a.seq, a.ack), (ACK, snd, rcv), "{st}");
        assert_eq!(h.ep.state(c), Some(st));
        assert_eq!(h.ep.stats.challenge_acks_sent, 1);
    }
}

fn out_of_window_rst_is_dropped_silently(f: Family) {
    for st in STATES {
        let (mut h, c, _, rcv) = in_state(f, st);
        h.send0(seg(RST, rcv + 1_000_000, SeqNumber(0)));
        h.send0(seg(RST, rcv - 1, SeqNumber(0)));
        assert_eq!(h.ep.state(c), Some(st), "{st}");
    }
}

fn syn_in_synchronized_state_gets_challenge_ack_never_aborts(f: Family) {
    // CONFORMANCE 10, RFC 5961 §4.
    for st in STATES {
        let (mut h, c, snd, rcv) = in_state(f, st);
        for seq in [rcv, rcv + 5, rcv + 1_000_000, rcv - 100] {
            // One challenge ACK per connection per 500 ms (flood.rs).
            h.now += Duration::from_millis(500);
            let a = h.send1(syn(seq));
            assert_eq!((a.control, a.seq, a.ack), (ACK, snd, rcv), "{st} seq {seq}");
        }
        assert_eq!(h.ep.state(c), Some(st));
    }
}

fn out_of_window_segments_are_acked_not_delivered(f: Family) {
    // CONFORMANCE 11: each flag, window edge +-1.
    let (mut h, c, snd, rcv) = in_state(f, State::Established);
    let wnd = h.ep.tcb(c).unwrap().rcv_wnd() as usize;
    for (seq, what) in [(rcv - 2, "below"), (rcv + wnd, "right edge"), (rcv + wnd + 1, "past edge")] {
        for control in [ACK, ACK | PSH, ACK | FIN] {
            let a = h.send1(S { payload: b"x".to_vec(), ..seg(control, seq, snd) });
            assert_eq!((a.control, a.seq, a.ack), (ACK, snd, rcv), "{what} {control:#x}");
        }
    }
    assert_eq!(h.ep.readable(c), 0);
    assert_eq!(h.ep.state(c), Some(State::Established));
    // The last byte of the window is acceptable.
    h.send(S { payload: b"y".to_vec(), ..seg(ACK, rcv + wnd - 1, snd) });
    assert_eq!(h.ep.stats.out_of_order_queued, 1, "in window but beyond rcv_nxt: kept for reassembly");
}

fn ack_of_unsent_data_is_dropped_and_acked_in_every_state(f: Family) {
    // CONFORMANCE 12.
    for st in STATES {
        let (mut h, c, snd, rcv) = in_state(f, st);
        let a =
            h.send1(S { payload: if st.can_receive() { b"d".to_vec() } else { vec![] }, ..seg(ACK, rcv, snd + 10) });
        assert_eq!((a.control, a.seq, a.ack), (ACK, snd, rcv), "{st}");
        assert_eq!(h.ep.readable(c), 0, "{st}: segment dropped");
        assert_eq!(h.ep.state(c), Some(st));
    }
}

fn data_without_ack_flag_is_dropped(f: Family) {
    // CONFORMANCE 13.
    let (mut h, c, snd, rcv) = in_state(f, State::Established);
    h.send0(S { payload: b"noack".to_vec(), ..seg(PSH, rcv, snd) });
    assert_eq!(h.ep.readable(c), 0);
    assert_eq!(h.ep.stats.drop_no_ack, 1);
}

fn never_answer_rst_with_rst(f: Family) {
    // CONFORMANCE 23.
    let mut h = Harness::new_over(f, TcpConfig::default());
    h.client_port = 5;
    for control in [RST, RST | ACK] {
        h.send0(seg(control, SeqNumber(1), SeqNumber(2)));
    }
    h.ep = Endpoint::new(TcpConfig::default(), Capacity::default(), SERVER_MAC, Secrets::from_bytes([3; 32]), h.now);
    h.send0(seg(RST | ACK, SeqNumber(1), SeqNumber(2)));
    // Closed port: the RFC's sequence rules.
    let r = h.send1(S { payload: b"abc".to_vec(), ..seg(PSH, SeqNumber(100), SeqNumber(0)) });
    assert_eq!((r.control, r.seq, r.ack), (RST | ACK, SeqNumber(0), SeqNumber(103)));
    let r = h.send1(seg(ACK | FIN, SeqNumber(100), SeqNumber(55)));
    assert_eq!((r.control, r.seq), (RST, SeqNumber(55)));
}

fn paws_drops_old_timestamps(f: Family) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    let sa = h.send1(S { ts: Some((1000, 0)), ..syn(CLIENT_ISN) });
    let tsv = sa.ts.unwrap().0;
    h.send0(S { ts: Some((1001, tsv)), ..seg(ACK, C1, sa.seq + 1) });
    let c = h.accepted();
    let a = h.send1(S { ts: Some((900, tsv)), payload: b"old".to_vec(), ..seg(ACK, C1, sa.seq + 1) });
    assert_eq!((a.control, a.ack), (ACK, C1));
    assert_eq!(h.ep.readable(c), 0);
    assert_eq!(h.ep.stats.drop_paws, 1);
    h.send(S { ts: Some((1002, tsv)), payload: b"new".to_vec(), ..seg(ACK, C1, sa.seq + 1) });
    assert_eq!(h.ep.readable(c), 3);
}
