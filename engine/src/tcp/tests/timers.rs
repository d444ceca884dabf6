//! Keepalive (RFC 9293 §3.8.4; the seeds' 2 h / 75 s / 10 probes;
//! CONFORMANCE 22).

use super::*;

both_families!(
    keepalive_probes_after_2h_every_75s_then_resets_after_10,
    an_answered_probe_restarts_the_idle_period,
    every_segment_from_the_peer_resets_the_idle_timer,
    keepalive_can_be_off,
    keepalive_numbers_are_configurable,
    the_peers_keepalive_probe_is_answered,
    no_probe_while_data_is_in_flight,
    keepalive_ends_a_half_closed_connection_whose_peer_vanished,
    a_half_closed_connection_with_a_live_peer_stays_until_closed,
    without_keepalive_a_half_closed_connection_is_bounded_by_the_application,
);

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);
const HOUR: Duration = Duration::from_secs(3600);

fn established(f: Family, cfg: TcpConfig) -> (Harness, Handle, SeqNumber) {
    let mut h = Harness::new_over(f, cfg);
    let (c, iss) = h.establish();
    h.take_events();
    (h, c, iss + 1)
}

fn keepalive_probes_after_2h_every_75s_then_resets_after_10(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    let (took, out) = h.advance_until_output(3 * HOUR);
    assert_eq!(took, 2 * HOUR);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].control, out[0].seq, out[0].ack), (ACK, s1 - 1, C1), "probe: SEG.SEQ = SND.NXT - 1");
    assert!(out[0].payload.is_empty());
    for n in 2..=10 {
        let (took, out) = h.advance_until_output(HOUR);
        assert_eq!(took, Duration::from_secs(75), "probe {n}");
        assert_eq!(out[0].seq, s1 - 1);
    }
    let (took, out) = h.advance_until_output(HOUR);
    assert_eq!(took, Duration::from_secs(75));
    assert_eq!((out[0].control, out[0].seq, out[0].ack), (RST | ACK, s1, C1));
    assert_eq!(h.ep.state(c), None, "reclaimed");
    assert_eq!(h.take_events(), vec![Event::Closed(c, CloseReason::KeepaliveTimeout)]);
    assert_eq!(h.ep.stats.keepalive_probes_sent, 10);
    assert_eq!(h.ep.stats.keepalive_timeouts, 1);
    assert_eq!(h.ep.armed_timers(), 0);
}

fn an_answered_probe_restarts_the_idle_period(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.advance_until_output(3 * HOUR);
    h.advance_until_output(HOUR);
    h.send0(seg(ACK, C1, s1));
    assert_eq!(h.ep.tcb(c).unwrap().probes, 0);
    let (took, _) = h.advance_until_output(3 * HOUR);
    assert_eq!(took, 2 * HOUR);
}

fn every_segment_from_the_peer_resets_the_idle_timer(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    assert!(h.advance(HOUR).is_empty());
    h.send(S { payload: b"ping".to_vec(), ..seg(ACK, C1, s1) });
    let mut b = [0u8; 4];
    h.ep.read(c, &mut b).unwrap();
    h.advance(Duration::from_millis(100));
    let (took, out) = h.advance_until_output(3 * HOUR);
    assert_eq!(took + Duration::from_millis(100), 2 * HOUR);
    assert_eq!(out[0].seq, s1 - 1);
}

fn keepalive_can_be_off(f: Family) {
    let (mut h, c, _) = established(f, TcpConfig { keepalive: None, ..TcpConfig::default() });
    let (_, out) = h.advance_until_output(10 * HOUR);
    assert!(out.is_empty());
    assert_eq!(h.ep.state(c), Some(State::Established));
    assert_eq!(h.ep.armed_timers(), 0);
}

fn keepalive_numbers_are_configurable(f: Family) {
    let ka = Keepalive { idle: Duration::from_secs(2), interval: Duration::from_secs(1), probes: 3 };
    let (mut h, c, _) = established(f, TcpConfig { keepalive: Some(ka), ..TcpConfig::default() });
    let mut times = Vec::new();
    let start = h.now;
    loop {
        let (_, out) = h.advance_until_output(Duration::from_secs(10));
        if out.is_empty() {
            break;
        }
        times.push(((h.now - start).as_millis(), out[0].control));
        if out[0].control & RST != 0 {
            break;
        }
    }
    assert_eq!(times, vec![(2000, ACK), (3000, ACK), (4000, ACK), (5000, RST | ACK)]);
    assert_eq!(h.ep.state(c), None);
}

fn the_peers_keepalive_probe_is_answered(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    let a = h.send1(seg(ACK, C1 - 1, s1));
    assert_eq!((a.control, a.seq, a.ack), (ACK, s1, C1));
    let a = h.send1(S { payload: vec![0], ..seg(ACK, C1 - 1, s1) });
    assert_eq!(a.ack, C1);
    assert_eq!(h.ep.readable(c), 0);
}

fn no_probe_while_data_is_in_flight(f: Family) {
    let ka = Keepalive { idle: Duration::from_secs(2), interval: Duration::from_secs(1), probes: 3 };
    let cfg = TcpConfig { keepalive: Some(ka), max_retries: 2, ..TcpConfig::default() };
    let (mut h, c, s1) = established(f, cfg);
    h.ep.write(c, b"data").unwrap();
    h.flush();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (_, out) = h.advance_until_output(Duration::from_secs(10));
        seen.extend(out.iter().filter(|s| s.control & RST == 0).map(|s| (s.seq, s.payload.len())));
    }
    assert!(seen.iter().all(|&(seq, len)| (seq, len) == (s1, 4)), "only retransmissions, no probes: {seen:?}");
}

/// Found by the fuzz target `endpoint` (its input is kept in
/// fuzz/corpus/endpoint/): after `shutdown`, once the peer ACKed our FIN
/// (FIN-WAIT-2, the application still reading), no timer was armed, so a
/// peer that vanished held the connection and its receive buffer for ever.
/// Keepalive now watches a half-closed connection as it does ESTABLISHED.
fn keepalive_ends_a_half_closed_connection_whose_peer_vanished(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    let buffers = h.ep.buffers_free();
    h.send(S { payload: b"unread".to_vec(), ..seg(ACK | PSH, C1, s1) });
    let c2 = C1 + 6;
    h.ep.shutdown(c).unwrap();
    let fin = h.flush();
    assert_eq!(fin.len(), 1);
    assert_eq!((fin[0].control & FIN, fin[0].seq), (FIN, s1));
    h.send(seg(ACK, c2, s1 + 1));
    assert_eq!(h.ep.state(c), Some(State::FinWait2));
    assert!(h.ep.timer_armed(c), "FIN-WAIT-2 after shutdown with no timer");
    h.take_events();

    let (took, out) = h.advance_until_output(3 * HOUR);
    assert_eq!(took, 2 * HOUR);
    assert_eq!((out[0].control, out[0].seq, out[0].ack), (ACK, s1, c2), "probe: SEG.SEQ = SND.NXT - 1");
    for n in 2..=10 {
        let (took, _) = h.advance_until_output(HOUR);
        assert_eq!(took, Duration::from_secs(75), "probe {n}");
    }
    let (took, out) = h.advance_until_output(HOUR);
    assert_eq!(took, Duration::from_secs(75));
    assert_eq!((out[0].control, out[0].seq), (RST | ACK, s1 + 1));
    assert_eq!(h.ep.state(c), None, "reclaimed");
    assert_eq!(h.take_events(), vec![Event::Closed(c, CloseReason::KeepaliveTimeout)]);
    assert_eq!(h.ep.buffers_free(), buffers, "the unread bytes' chunk is back");
}

/// The same half-closed connection whose peer answers the probes lives on
/// (it may still send), and closing it then starts the FIN-WAIT-2 timeout.
fn a_half_closed_connection_with_a_live_peer_stays_until_closed(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig::default());
    h.ep.shutdown(c).unwrap();
    h.flush();
    h.send(seg(ACK, C1, s1 + 1));
    assert_eq!(h.ep.state(c), Some(State::FinWait2));
    for _ in 0..3 {
        let (took, out) = h.advance_until_output(3 * HOUR);
        assert_eq!(took, 2 * HOUR);
        assert_eq!(out[0].seq, s1);
        h.send0(seg(ACK, C1, s1 + 1));
    }
    assert_eq!(h.ep.state(c), Some(State::FinWait2));
    h.ep.close(c).unwrap();
    h.take_events();
    let timeout = TcpConfig::default().fin_wait2_timeout;
    h.advance(timeout - Duration::from_millis(1));
    assert_eq!(h.ep.state(c), Some(State::FinWait2), "no keepalive idle time any more");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.ep.state(c), None);
    assert_eq!(h.take_events(), vec![Event::Closed(c, CloseReason::FinWait2Timeout)]);
}

/// Without keepalive, a half-closed connection (the application shut down
/// its sending side and still reads) has no engine timer in FIN-WAIT-2,
/// as a Linux socket the application holds (tcp_fin_timeout is for
/// orphans): the peer may still send, for as long as it likes. Like an
/// ESTABLISHED connection without keepalive, what bounds it is the
/// application: its deadline fires there, and its close then starts the
/// FIN-WAIT-2 timeout, which reclaims the entry.
fn without_keepalive_a_half_closed_connection_is_bounded_by_the_application(f: Family) {
    let (mut h, c, s1) = established(f, TcpConfig { keepalive: None, ..TcpConfig::default() });
    h.ep.shutdown(c).unwrap();
    h.flush();
    h.send(seg(ACK, C1, s1 + 1));
    assert_eq!(h.ep.state(c), Some(State::FinWait2));
    assert!(!h.ep.timer_armed(c), "no engine timer: the application holds the connection");
    h.ep.set_deadline(c, Some(h.now + Duration::from_secs(30))).unwrap();
    h.take_events();
    let (took, out) = h.advance_until_output(HOUR);
    assert!(out.is_empty());
    assert_eq!(took, HOUR, "nothing sent");
    assert_eq!(h.take_events(), vec![Event::Deadline(c)]);
    assert_eq!(h.ep.state(c), Some(State::FinWait2));
    h.ep.close(c).unwrap();
    assert!(h.flush().is_empty());
    h.advance(TcpConfig::default().fin_wait2_timeout);
    assert_eq!(h.ep.state(c), None);
    assert_eq!(h.take_events(), vec![Event::Closed(c, CloseReason::FinWait2Timeout)]);
    assert_eq!((h.ep.connections(), h.ep.armed_timers()), (0, 0));
}
