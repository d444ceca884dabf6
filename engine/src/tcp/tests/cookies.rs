//! SYN cookies (RFC 4987 §3.6; CONFORMANCE 7).

use super::*;

both_families!(
    cookie_syn_ack_keeps_no_state_and_is_not_retransmitted,
    cookie_ack_opens_connection_with_options_from_the_cookie,
    cookie_without_mss_option_keeps_the_familys_default,
    cookie_ack_with_data_and_with_fin_are_accepted,
    bad_cookies_and_wrong_flags_are_rejected,
    auto_mode_switches_to_cookies_when_the_budget_is_spent,
    cookie_with_timestamps_negotiates_them,
    cookie_syn_ack_is_written_into_the_received_frame,
    a_cookie_ack_replaces_the_half_open_entry_of_its_tuple,
);

fn always() -> TcpConfig {
    TcpConfig { syn_cookies: CookieMode::Always, ..TcpConfig::default() }
}

fn cookie_syn_ack_keeps_no_state_and_is_not_retransmitted(f: Family) {
    let mut h = Harness::new_over(f, always());
    let sa = h.send1(S { ws: Some(9), sack_perm: true, ..syn(CLIENT_ISN) });
    assert_eq!((sa.control, sa.ack), (SYN | ACK, CLIENT_ISN + 1));
    assert_eq!((sa.ws, sa.sack_perm, sa.mss), (Some(7), true, Some(f.mss())));
    assert_eq!(h.ep.connections(), 0);
    assert_eq!(h.ep.half_open(), 0);
    assert_eq!(h.ep.armed_timers(), 0);
    assert!(h.advance(Duration::from_secs(10)).is_empty(), "no SYN-ACK retransmission");
    assert_eq!(h.ep.stats.cookies_sent, 1);
}

fn cookie_ack_opens_connection_with_options_from_the_cookie(f: Family) {
    let mut h = Harness::new_over(f, always());
    let sa = h.send1(S { ws: Some(9), sack_perm: true, mss: Some(1400), ..syn(CLIENT_ISN) });
    h.send0(seg(ACK, CLIENT_ISN + 1, sa.seq + 1));
    let c = h.accepted();
    let tcb = h.ep.tcb(c).unwrap();
    assert_eq!(tcb.state, State::Established);
    assert_eq!((tcb.snd_wscale, tcb.rcv_wscale), (9, 7));
    // Rounded down to the family's cookie table: {536, 1300, 1440, 1460}
    // or, for IPv6, {1220, 1420, 1440, 8940}.
    let want = if f == Family::V6 { 1220 } else { 1300 };
    assert_eq!(tcb.mss, want, "MSS rounded down to the cookie table");
    assert!(tcb.has(super::super::tcb::flag::SACK));
    assert_eq!(h.ep.stats.cookies_accepted, 1);
    assert_eq!(h.ep.half_open(), 0);
}

/// A SYN without an MSS option: the peer may receive the family's default
/// (RFC 9293 §3.7.1: 536; RFC 8200 §5: 1220 for IPv6), which the cookie
/// must carry, not IPv4's for both.
fn cookie_without_mss_option_keeps_the_familys_default(f: Family) {
    let mut h = Harness::new_over(f, always());
    let sa = h.send1(S { mss: None, ts: None, ws: None, sack_perm: false, ..syn(CLIENT_ISN) });
    h.send0(seg(ACK, CLIENT_ISN + 1, sa.seq + 1));
    let c = h.accepted();
    let want = if f == Family::V6 { 1220 } else { 536 };
    assert_eq!(h.ep.tcb(c).unwrap().mss, want);
}

fn cookie_ack_with_data_and_with_fin_are_accepted(f: Family) {
    let mut h = Harness::new_over(f, always());
    let sa = h.send1(syn(CLIENT_ISN));
    h.send(S { payload: b"hello".to_vec(), ..seg(ACK | PSH, CLIENT_ISN + 1, sa.seq + 1) });
    let c = h.accepted();
    assert_eq!(h.ep.readable(c), 5);

    let mut h = Harness::new_over(f, always());
    let sa = h.send1(syn(CLIENT_ISN));
    let a = h.send1(seg(ACK | FIN, CLIENT_ISN + 1, sa.seq + 1));
    assert_eq!((a.control, a.ack), (ACK, CLIENT_ISN + 2));
    assert_eq!(h.ep.state(h.accepted()), Some(State::CloseWait));
}

fn bad_cookies_and_wrong_flags_are_rejected(f: Family) {
    let mut h = Harness::new_over(f, always());
    let sa = h.send1(syn(CLIENT_ISN));
    // Wrong cookie, wrong peer sequence number.
    let r = h.send1(seg(ACK, CLIENT_ISN + 1, sa.seq + 2));
    assert_eq!((r.control, r.seq), (RST, sa.seq + 2));
    let r = h.send1(seg(ACK, CLIENT_ISN + 7, sa.seq + 1));
    assert_eq!(r.control, RST);
    // SYN|ACK, RST|ACK and RST carrying the cookie open nothing.
    let r = h.send1(seg(SYN | ACK, CLIENT_ISN, sa.seq + 1));
    assert_eq!(r.control, RST);
    h.send0(seg(RST | ACK, CLIENT_ISN + 1, sa.seq + 1));
    h.send0(seg(RST, CLIENT_ISN + 1, sa.seq + 1));
    assert_eq!(h.ep.connections(), 0);
    assert_eq!(h.ep.stats.cookies_rejected, 2);
    // A cookie from long ago is stale.
    h.now += Duration::from_secs(200);
    h.send1(seg(ACK, CLIENT_ISN + 1, sa.seq + 1));
    assert_eq!(h.ep.connections(), 0);
}

fn auto_mode_switches_to_cookies_when_the_budget_is_spent(f: Family) {
    let mut h = Harness::new_over(f, TcpConfig { half_open_budget: 1, ..TcpConfig::default() });
    h.client_port = 1;
    h.send1(syn(CLIENT_ISN));
    assert_eq!(h.ep.half_open(), 1);
    h.client_port = 2;
    let sa = h.send1(syn(CLIENT_ISN));
    assert_eq!(h.ep.stats.cookies_sent, 1);
    assert_eq!(h.ep.half_open(), 1);
    h.send0(seg(ACK, CLIENT_ISN + 1, sa.seq + 1));
    assert_eq!(h.ep.connections(), 2);
    assert_eq!(h.ep.half_open(), 1);
}

fn cookie_with_timestamps_negotiates_them(f: Family) {
    let mut h = Harness::new_over(f, always());
    let sa = h.send1(S { ts: Some((777, 0)), ..syn(CLIENT_ISN) });
    let (tsval, ecr) = sa.ts.unwrap();
    assert_eq!(ecr, 777);
    h.send0(S { ts: Some((778, tsval)), ..seg(ACK, CLIENT_ISN + 1, sa.seq + 1) });
    let tcb = h.ep.tcb(h.accepted()).unwrap();
    assert!(tcb.has(super::super::tcb::flag::TS));
    assert_eq!(tcb.ts_recent, 778);
}

fn cookie_syn_ack_is_written_into_the_received_frame(f: Family) {
    // The SYN fast path: no TX frame, the SYN's own buffer carries the answer.
    let mut h = Harness::new_over(f, always());
    let s = S { ws: Some(7), sack_perm: true, ts: Some((1, 0)), ..syn(CLIENT_ISN) };
    let mut frame = super::frame_of(&s, h.client_end(), h.server_end());
    let mut tx = Capture::default();
    let action = h.ep.on_frame(h.now, &mut frame, &mut tx);
    assert!(tx.frames.is_empty(), "no TX frame taken");
    let RxAction::Transmit(n) = action else { panic!("expected an in-place reply, got {action:?}") };
    let (t, sa) = parse(&frame[..n]);
    assert_eq!(t, h.tuple());
    assert_eq!((sa.control, sa.ack), (SYN | ACK, CLIENT_ISN + 1));
    assert_eq!((sa.ws, sa.sack_perm, sa.ts.map(|t| t.1)), (Some(7), true, Some(1)));
}

/// The client's SYN got a stateful SYN-ACK that was lost; its retransmitted
/// SYN was answered by the XDP program with a cookie (no shard saw it), and
/// the client ACKs the cookie. The half-open entry gives way and the cookie
/// opens the connection: no RST to a legitimate client. An ACK of neither
/// the entry's ISS nor a valid cookie still draws the RST.
fn a_cookie_ack_replaces_the_half_open_entry_of_its_tuple(f: Family) {
    use crate::tcp::secret::CookieOptions;
    let mut h = Harness::new_over(f, TcpConfig::default());
    let sa = h.send1(syn(CLIENT_ISN));
    assert_eq!((h.ep.half_open(), h.ep.connections()), (1, 1));
    let opts = CookieOptions { mss: f.mss(), window_scale: None, sack_permitted: false };
    let cookie = Secrets::from_bytes([42; 32]).make_cookie(&h.tuple(), CLIENT_ISN, &opts, h.now);
    assert_ne!(cookie, sa.seq);
    // Without cookies in flight the ACK is just unacceptable: RST.
    let r = h.send1(seg(ACK, CLIENT_ISN + 1, cookie + 1));
    assert_eq!((r.control, r.seq), (RST, cookie + 1));
    assert_eq!(h.ep.half_open(), 1, "the entry stays");
    // The control thread tells the shards that XDP sends cookies.
    h.ep.note_cookies_in_flight(h.now);
    let r = h.send1(seg(ACK, CLIENT_ISN + 1, sa.seq + 7));
    assert_eq!(r.control, RST, "neither the entry's ISS nor a cookie");
    h.send0(seg(ACK, CLIENT_ISN + 1, cookie + 1));
    assert_eq!(h.ep.stats.half_open_replaced_by_cookie, 1);
    assert_eq!(h.ep.stats.cookies_accepted, 1);
    assert_eq!((h.ep.half_open(), h.ep.connections()), (0, 1));
    let c = h.accepted();
    assert_eq!(h.ep.state(c), Some(State::Established));
    assert_eq!(h.ep.tcb(c).unwrap().snd_una, cookie + 1, "the cookie's handshake: SND.UNA = ISS + 1");
}
