//! TIME-WAIT (RFC 9293 §3.6 and §3.10.7.4, RFC 6191, RFC 1337;
//! CONFORMANCE 17-19).

use super::*;
use crate::tcp::config::TwFullPolicy;

both_families!(
    time_wait_ends_exactly_2msl_after_the_last_fin,
    retransmitted_fin_is_reacked_and_restarts_2msl,
    rst_in_time_wait_is_ignored_by_default,
    rst_in_time_wait_closes_under_the_close_policy,
    new_syn_with_higher_sequence_reopens,
    new_syn_with_lower_sequence_gets_an_ack,
    new_syn_with_higher_timestamp_reopens_even_with_lower_sequence,
    in_window_duplicate_ack_gets_nothing_and_old_data_gets_an_ack,
    full_time_wait_table_evicts_the_oldest_and_counts,
    full_time_wait_table_under_refuse_new_drops_new_syns_and_counts,
    cookie_ack_from_an_xdp_handshake_reopens,
);

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);

/// A connection we closed first, now in TIME-WAIT; returns our SND.NXT.
fn time_wait(f: Family, cfg: TcpConfig, ts: bool) -> (Harness, SeqNumber) {
    let mut h = Harness::new_over(f, cfg);
    let sa = h.send1(S { ts: ts.then_some((100, 0)), ..syn(CLIENT_ISN) });
    let ecr = sa.ts.map(|t| t.0).unwrap_or(0);
    let tsopt = |v| ts.then_some((v, ecr));
    h.send0(S { ts: tsopt(101), ..seg(ACK, C1, sa.seq + 1) });
    let c = h.accepted();
    h.ep.close(c).unwrap();
    h.flush();
    h.send0(S { ts: tsopt(102), ..seg(ACK, C1, sa.seq + 2) });
    let a = h.send1(S { ts: tsopt(103), ..seg(FIN | ACK, C1, sa.seq + 2) });
    assert_eq!(a.ack, C1 + 1);
    assert_eq!(h.ep.time_wait(), 1);
    h.take_events();
    (h, sa.seq + 2)
}

fn msl(secs: u64) -> TcpConfig {
    TcpConfig { msl: Duration::from_secs(secs), ..TcpConfig::default() }
}

fn time_wait_ends_exactly_2msl_after_the_last_fin(f: Family) {
    let (mut h, _) = time_wait(f, TcpConfig::default(), false);
    assert!(h.advance(Duration::from_millis(59_999)).is_empty());
    assert_eq!(h.ep.time_wait(), 1, "default MSL 30 s: 2MSL = 60 s");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.ep.time_wait(), 0);
    assert_eq!(h.ep.stats.time_wait_expired, 1);
}

fn retransmitted_fin_is_reacked_and_restarts_2msl(f: Family) {
    // The seeds' lost final ACK, from the active closer's side; CONFORMANCE 17.
    let (mut h, snd) = time_wait(f, msl(10), false);
    h.advance(Duration::from_secs(15));
    let a = h.send1(seg(FIN | ACK, C1, snd));
    assert_eq!((a.control, a.seq, a.ack), (ACK, snd, C1 + 1));
    assert_eq!(h.ep.stats.time_wait_fin_reacked, 1);
    h.advance(Duration::from_millis(19_999));
    assert_eq!(h.ep.time_wait(), 1, "2MSL counts again from the retransmitted FIN");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.ep.time_wait(), 0);
    // After 2MSL a segment gets RST by the CLOSED rules.
    let r = h.send1(seg(FIN | ACK, C1, snd));
    assert_eq!((r.control, r.seq), (RST, snd));
}

fn rst_in_time_wait_is_ignored_by_default(f: Family) {
    // CONFORMANCE 18, RFC 1337.
    let (mut h, _) = time_wait(f, TcpConfig::default(), false);
    h.send0(seg(RST, C1 + 1, SeqNumber(0)));
    assert_eq!(h.ep.time_wait(), 1);
    assert_eq!(h.ep.stats.rsts_ignored, 1);
}

fn rst_in_time_wait_closes_under_the_close_policy(f: Family) {
    let (mut h, _) = time_wait(f, TcpConfig { time_wait_rst: TimeWaitRst::Close, ..TcpConfig::default() }, false);
    h.send0(seg(RST, C1 + 1, SeqNumber(0)));
    assert_eq!(h.ep.time_wait(), 0);
    assert_eq!(h.ep.stats.time_wait_reset, 1);
}

fn new_syn_with_higher_sequence_reopens(f: Family) {
    // CONFORMANCE 19, RFC 6191 without timestamps.
    let (mut h, _) = time_wait(f, TcpConfig::default(), false);
    let sa = h.send1(syn(C1 + 100_000));
    assert_eq!((sa.control, sa.ack), (SYN | ACK, C1 + 100_001));
    assert_eq!(h.ep.time_wait(), 0);
    assert_eq!(h.ep.stats.time_wait_reopened, 1);
}

fn new_syn_with_lower_sequence_gets_an_ack(f: Family) {
    let (mut h, snd) = time_wait(f, TcpConfig::default(), false);
    let a = h.send1(syn(CLIENT_ISN - 5));
    assert_eq!((a.control, a.seq, a.ack), (ACK, snd, C1 + 1));
    assert_eq!(h.ep.time_wait(), 1);
}

fn new_syn_with_higher_timestamp_reopens_even_with_lower_sequence(f: Family) {
    // RFC 6191 §2: with timestamps, the timestamp decides.
    let (mut h, snd) = time_wait(f, TcpConfig::default(), true);
    let a = h.send1(S { ts: Some((50, 0)), ..syn(CLIENT_ISN - 5) });
    assert_eq!((a.control, a.seq), (ACK, snd), "older timestamp: ACK");
    let sa = h.send1(S { ts: Some((5000, 0)), ..syn(CLIENT_ISN - 5) });
    assert_eq!(sa.control, SYN | ACK);
}

fn in_window_duplicate_ack_gets_nothing_and_old_data_gets_an_ack(f: Family) {
    let (mut h, snd) = time_wait(f, TcpConfig::default(), false);
    h.send0(seg(ACK, C1 + 1, snd));
    let a = h.send1(S { payload: b"old".to_vec(), ..seg(ACK, CLIENT_ISN - 10, snd) });
    assert_eq!((a.control, a.ack), (ACK, C1 + 1));
}

/// Room for one TIME-WAIT entry in each family's table.
fn one_time_wait_entry() -> Capacity {
    Capacity {
        connections: 8,
        time_wait: 1,
        time_wait_v6: 1,
        buffers: 8,
        buffer_size: 4096,
        events: 64,
        ..Capacity::default()
    }
}

fn full_time_wait_table_evicts_the_oldest_and_counts(f: Family) {
    let cap = one_time_wait_entry();
    let mut h = Harness::with_capacity_over(f, TcpConfig::default(), cap);
    for port in [1000u16, 1001] {
        h.client_port = port;
        h.take_events();
        let (c, iss) = h.establish();
        h.ep.close(c).unwrap();
        h.flush();
        h.send0(seg(ACK, C1, iss + 2));
        h.send1(seg(FIN | ACK, C1, iss + 2));
    }
    assert_eq!(h.ep.time_wait(), 1);
    assert_eq!(h.ep.stats.time_wait_evicted, 1);
    assert_eq!(h.ep.stats.time_wait_entered, 2);
}

fn full_time_wait_table_under_refuse_new_drops_new_syns_and_counts(f: Family) {
    let cap = Capacity { time_wait_policy: TwFullPolicy::RefuseNew, ..one_time_wait_entry() };
    let mut h = Harness::with_capacity_over(f, TcpConfig::default(), cap);
    h.client_port = 1000;
    let (c, iss) = h.establish();
    h.ep.close(c).unwrap();
    h.flush();
    h.send0(seg(ACK, C1, iss + 2));
    h.send1(seg(FIN | ACK, C1, iss + 2));
    assert_eq!(h.ep.time_wait(), 1);
    // Full: a new connection is refused rather than a TIME-WAIT cut short.
    h.client_port = 1001;
    h.send0(syn(CLIENT_ISN));
    assert_eq!(h.ep.stats.syns_dropped_time_wait_full, 1);
    assert_eq!(h.ep.stats.time_wait_evicted, 0);
    // After 2MSL there is room again.
    h.advance(Duration::from_secs(60));
    assert_eq!(h.send1(syn(CLIENT_ISN)).control, SYN | ACK);
}

/// A SYN answered by the XDP program with a cookie never reaches the
/// engine; its third segment finds the tuple in TIME-WAIT. The cookie is
/// the proof of a new connection: the entry gives way and the cookie ACK
/// opens it. Any other ACK is answered from TIME-WAIT as before.
fn cookie_ack_from_an_xdp_handshake_reopens(f: Family) {
    use crate::tcp::secret::CookieOptions;
    let (mut h, snd_nxt) = time_wait(f, TcpConfig::default(), false);
    let a = h.send1(seg(ACK, C1 + 500, snd_nxt + 9));
    assert_eq!((a.control, a.seq, a.ack), (ACK, snd_nxt, C1 + 1), "an old ACK: answered from TIME-WAIT");
    let isn = CLIENT_ISN + 100_000;
    let opts = CookieOptions { mss: f.mss(), window_scale: None, sack_permitted: false };
    let cookie = Secrets::from_bytes([42; 32]).make_cookie(&h.tuple(), isn, &opts, h.now);
    // The control thread tells the shards that XDP sends cookies.
    h.ep.note_cookies_in_flight(h.now);
    h.send0(seg(ACK, isn + 1, cookie + 1));
    assert_eq!(h.ep.time_wait(), 0);
    assert_eq!(h.ep.stats.time_wait_reopened, 1);
    assert_eq!(h.ep.stats.cookies_accepted, 1);
    let c = h.accepted();
    assert_eq!(h.ep.state(c), Some(State::Established));
}

/// Server-closed connections from `client` to `server`, from `n` client ports; returns
/// the harness with them all in TIME-WAIT (or evicted).
fn server_closed_over(cap: Capacity, client: Addr, server: Addr, n: u16) -> Harness {
    let mut h = Harness::with_capacity(TcpConfig::default(), cap);
    for port in 1000..1000 + n {
        h.client_port = port;
        h.take_events();
        let sa = h.send_over(client, server, None, &syn(CLIENT_ISN));
        let iss = sa[0].1.seq;
        assert!(h.send_over(client, server, None, &seg(ACK, C1, iss + 1)).is_empty());
        h.ep.close(h.accepted()).unwrap();
        let mut fin = Capture::default();
        h.ep.flush(h.now, &mut fin);
        assert_eq!(fin.frames.len(), 1, "our FIN");
        h.send_over(client, server, None, &seg(ACK, C1, iss + 2));
        let a = h.send_over(client, server, None, &seg(FIN | ACK, C1, iss + 2));
        assert_eq!(a.len(), 1, "the ACK of the peer's FIN");
    }
    h
}

#[test]
fn ipv6_time_wait_holds_its_own_configured_capacity() {
    // Each family gets the capacity it is given: 32 IPv6 entries last their
    // 2MSL (the IPv6 table once got an eighth of the IPv4 capacity).
    let cap = Capacity { connections: 8, time_wait: 32, time_wait_v6: 32, events: 64, ..Capacity::default() };
    let h = server_closed_over(cap, Family::V6.client(), Family::V6.server(), 32);
    assert_eq!((h.ep.time_wait(), h.ep.stats.time_wait_evicted), (32, 0));
    // A smaller IPv6 table is full at its own size, and counts what it cuts.
    let cap = Capacity { connections: 8, time_wait: 32, time_wait_v6: 4, events: 64, ..Capacity::default() };
    let h = server_closed_over(cap, Family::V6.client(), Family::V6.server(), 6);
    assert_eq!((h.ep.time_wait(), h.ep.stats.time_wait_evicted), (4, 2));
    // The IPv4 table is not touched by it.
    let h = server_closed_over(cap, Family::V4.client(), Family::V4.server(), 6);
    assert_eq!((h.ep.time_wait(), h.ep.stats.time_wait_evicted), (6, 0));
}
