//! SYN floods and blind attacks: the half-open reserve (RFC 4987 §3.1,
//! §3.6), cookie ACKs checked only while cookies are in flight (Linux's
//! `tcp_synq_no_recent_overflow`), and the RFC 5961 §7 challenge-ACK and
//! RFC 9293 §3.10.7.4 out-of-window ACK rate limits, per connection and
//! with the shard's randomised budget (CVE-2016-5696).

use super::*;
use crate::tcp::config::{HalfOpenBudgetError, COOKIE_VALID, OOW_ACK_INTERVAL};
use crate::tcp::secret::CookieOptions;

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);

fn cap(connections: u32) -> Capacity {
    Capacity { connections, time_wait: 64, buffers: 64, buffer_size: 4096, events: 1024, ..Capacity::default() }
}

/// A cookie for the harness's current tuple and `isn`, as the XDP program
/// (or an attacker who knew the keys) would make it.
fn cookie(h: &Harness, isn: SeqNumber) -> SeqNumber {
    let opts = CookieOptions { mss: 1460, window_scale: None, sack_permitted: false };
    Secrets::from_bytes([42; 32]).make_cookie(&h.tuple(), isn, &opts, h.now)
}

#[test]
fn half_open_budgets_must_leave_half_the_table_in_reserve() {
    let mut ep = Endpoint::new(TcpConfig::default(), cap(64), SERVER_MAC, Secrets::from_bytes([1; 32]), Instant::ZERO);
    // Automatic budgets: 1/8 of the table, shared by the listeners.
    ep.listen(None, 80, TcpConfig::default()).unwrap();
    assert_eq!(ep.listeners()[0].half_open_budget, 8);
    ep.listen(None, 81, TcpConfig::default()).unwrap();
    assert_eq!(ep.listeners().iter().map(|l| l.half_open_budget).collect::<Vec<_>>(), vec![4, 4]);
    // An explicit budget that would take the budgets past half the table.
    let big = TcpConfig { half_open_budget: 30, ..TcpConfig::default() };
    let e = ep.listen(None, 82, big).unwrap_err();
    assert_eq!(e, Error::HalfOpenBudget(HalfOpenBudgetError { total: 2 + 2 + 30, max: 32, connections: 64 }));
    assert!(e.to_string().contains("at most 32"), "{e}");
    assert_eq!(ep.listeners().len(), 2, "the listener was not added");
    // Half the table is allowed.
    let half = TcpConfig { half_open_budget: 28, ..TcpConfig::default() };
    ep.listen(None, 82, half).unwrap();
    let budgets: Vec<u32> = ep.listeners().iter().map(|l| l.half_open_budget).collect();
    assert_eq!(budgets, vec![2, 2, 28], "automatic budgets shared by three now");
    // The table of one connection: one half-open entry at most.
    let mut ep = Endpoint::new(TcpConfig::default(), cap(1), SERVER_MAC, Secrets::from_bytes([1; 32]), Instant::ZERO);
    assert!(ep.listen(None, 80, TcpConfig { half_open_budget: 2, ..TcpConfig::default() }).is_err());
    assert!(ep.listen(None, 80, TcpConfig::default()).is_ok());
}

#[test]
fn a_flood_leaves_the_reserve_to_clients_that_complete() {
    let mut h = Harness::with_capacity(TcpConfig::default(), cap(64));
    // 1,000 spoofed SYNs that never complete.
    for port in 0..1000u16 {
        h.client_port = 10_000 + port;
        let sa = h.send1(syn(CLIENT_ISN));
        assert_eq!(sa.control, SYN | ACK);
    }
    assert_eq!(h.ep.half_open(), 8, "the budget: 1/8 of 64");
    assert_eq!(h.ep.connections(), 8);
    assert_eq!(h.ep.stats.cookies_sent, 992);
    // Clients that complete their handshakes take the reserve, up to the last slot.
    for i in 0..56u16 {
        h.client_port = 20_000 + i;
        let sa = h.send1(syn(CLIENT_ISN));
        h.send0(seg(ACK, C1, sa.seq + 1));
    }
    assert_eq!(h.ep.stats.cookies_accepted, 56);
    assert_eq!(h.ep.connections(), 64);
    assert_eq!(h.ep.stats.cookie_acks_table_full, 0);
    // The flood's entries time out; the budget is whole again.
    for _ in 0..120 {
        h.advance(Duration::from_secs(1));
    }
    assert_eq!((h.ep.half_open(), h.ep.connections()), (0, 56));
    assert_eq!(h.ep.stats.half_open_timeouts, 8);
}

#[test]
fn a_cookie_ack_into_a_full_table_gets_an_rst_and_is_counted() {
    let mut h = Harness::with_capacity(TcpConfig::default(), cap(4));
    for port in 0..4 {
        h.client_port = 1000 + port;
        h.take_events();
        h.establish();
    }
    assert_eq!(h.ep.connections(), 4);
    h.client_port = 2000;
    let sa = h.send1(syn(CLIENT_ISN));
    assert_eq!(h.ep.stats.cookies_sent, 1, "table full: a cookie");
    // The client's handshake is complete on its side: it must hear, not hang.
    let r = h.send1(seg(ACK, C1, sa.seq + 1));
    assert_eq!((r.control, r.seq), (RST, sa.seq + 1));
    assert_eq!(h.ep.stats.cookie_acks_table_full, 1);
    assert_eq!((h.ep.stats.cookies_accepted, h.ep.stats.cookies_rejected), (0, 0));
    assert_eq!(h.ep.connections(), 4);
}

#[test]
fn a_blind_cookie_ack_with_no_cookie_sent_lately_is_refused() {
    let mut h = Harness::new(TcpConfig::default());
    // No flood, no cookie sent: even a cookie that would check out is not looked at.
    let isn = CLIENT_ISN + 77;
    let c = cookie(&h, isn);
    let r = h.send1(seg(ACK, isn + 1, c + 1));
    assert_eq!((r.control, r.seq), (RST, c + 1));
    assert_eq!(h.ep.connections(), 0);
    assert_eq!(h.ep.stats.cookie_acks_not_expected, 1);
    assert_eq!((h.ep.stats.cookies_accepted, h.ep.stats.cookies_rejected), (0, 0));

    // A client resets its half-open connection; its late ACK does not bring it back.
    h.client_port = 3000;
    let sa = h.send1(syn(CLIENT_ISN));
    h.send0(seg(RST, C1, SeqNumber(0)));
    assert_eq!(h.ep.connections(), 0);
    let r = h.send1(seg(ACK, C1, sa.seq + 1));
    assert_eq!(r.control, RST);
    assert_eq!(h.ep.connections(), 0);
    assert_eq!(h.ep.stats.cookie_acks_not_expected, 2);
}

#[test]
fn cookie_acks_are_checked_within_the_window_after_a_cookie() {
    let cfg = TcpConfig { half_open_budget: 1, ..TcpConfig::default() };
    let mut h = Harness::new(cfg);
    h.client_port = 1;
    h.send1(syn(CLIENT_ISN));
    h.client_port = 2;
    let sa = h.send1(syn(CLIENT_ISN));
    assert_eq!(h.ep.stats.cookies_sent, 1, "budget spent: a cookie");
    // Inside the window: any valid cookie is taken (that SYN's, or XDP's).
    h.now += Duration::from_secs(30);
    h.send0(seg(ACK, C1, sa.seq + 1));
    h.client_port = 3;
    let isn = CLIENT_ISN + 5;
    h.send0(seg(ACK, isn + 1, cookie(&h, isn) + 1));
    assert_eq!((h.ep.stats.cookies_accepted, h.ep.connections()), (2, 3));
    // A forged one inside the window: checked and rejected.
    h.client_port = 4;
    assert_eq!(h.send1(seg(ACK, isn + 1, SeqNumber(12345))).control, RST);
    assert_eq!(h.ep.stats.cookies_rejected, 1);
    // Past COOKIE_VALID after the last cookie: not checked any more.
    h.now += COOKIE_VALID - Duration::from_secs(30) + Duration::from_millis(1);
    h.client_port = 5;
    let r = h.send1(seg(ACK, isn + 1, cookie(&h, isn) + 1));
    assert_eq!(r.control, RST);
    assert_eq!(h.ep.stats.cookie_acks_not_expected, 1);
    assert_eq!(h.ep.connections(), 3);
}

#[test]
fn cookies_in_flight_from_xdp_open_the_window() {
    // The XDP program answered the SYN; the shard never saw a cookie go out.
    let mut h = Harness::new(TcpConfig::default());
    let isn = CLIENT_ISN + 9;
    h.ep.note_cookies_in_flight(h.now);
    h.now += Duration::from_secs(1);
    h.send0(seg(ACK, isn + 1, cookie(&h, isn) + 1));
    assert_eq!(h.ep.stats.cookies_accepted, 1);
    assert_eq!(h.ep.state(h.accepted()), Some(State::Established));
}

/// An established connection; returns (handle, our SND.NXT).
fn established(h: &mut Harness, port: u16) -> (Handle, SeqNumber) {
    h.client_port = port;
    h.take_events();
    let (c, iss) = h.establish();
    (c, iss + 1)
}

#[test]
fn challenge_acks_are_limited_per_connection() {
    let mut h = Harness::new(TcpConfig::default());
    let (c, snd) = established(&mut h, 1000);
    let a = h.send1(seg(RST, C1 + 10, SeqNumber(0)));
    assert_eq!((a.control, a.seq, a.ack), (ACK, snd, C1));
    // A second within 500 ms: the connection stays quiet.
    h.now += OOW_ACK_INTERVAL - Duration::from_millis(1);
    h.send0(seg(RST, C1 + 11, SeqNumber(0)));
    h.send0(syn(C1 + 3));
    assert_eq!(h.ep.stats.challenge_acks_rate_limited, 2);
    // Another connection is not held back by this one.
    let (_, snd2) = established(&mut h, 1001);
    assert_eq!(h.send1(seg(RST, C1 + 10, SeqNumber(0))).seq, snd2);
    // After the interval, again.
    h.client_port = 1000;
    h.now += Duration::from_millis(1);
    assert_eq!(h.send1(syn(C1 + 3)).ack, C1);
    assert_eq!(h.ep.stats.challenge_acks_sent, 3);
    assert_eq!(h.ep.state(c), Some(State::Established));
}

#[test]
fn the_shards_challenge_ack_budget_is_randomised() {
    let limit = 4;
    let cfg = TcpConfig { challenge_ack_limit: limit, ..TcpConfig::default() };
    let mut h = Harness::with_capacity(cfg, cap(64));
    let ports: Vec<u16> = (0..40).map(|i| 1000 + i).collect();
    for &p in &ports {
        established(&mut h, p);
    }
    let mut per_second = Vec::new();
    for _ in 0..8 {
        h.now += Duration::from_secs(1);
        let mut answered = 0;
        for &p in &ports {
            h.client_port = p;
            answered += h.send(seg(RST, C1 + 10, SeqNumber(0))).len() as u32;
        }
        assert!((limit / 2..limit / 2 + limit).contains(&answered), "{answered} in [2, 6)");
        per_second.push(answered);
    }
    per_second.sort();
    per_second.dedup();
    assert!(per_second.len() > 1, "never the same budget each second: {per_second:?}");
    let (sent, suppressed) = (h.ep.stats.challenge_acks_sent, h.ep.stats.challenge_acks_suppressed);
    assert_eq!(sent + suppressed, 8 * 40);
    assert_eq!(h.ep.stats.challenge_acks_rate_limited, 0);
}

#[test]
fn out_of_window_and_paws_replies_are_limited_per_connection() {
    let mut h = Harness::new(TcpConfig::default());
    let sa = h.send1(S { ts: Some((1000, 0)), ..syn(CLIENT_ISN) });
    let ecr = sa.ts.unwrap().0;
    h.send0(S { ts: Some((1001, ecr)), ..seg(ACK, C1, sa.seq + 1) });
    let snd = sa.seq + 1;
    // A pure ACK outside the window: one answer per 500 ms.
    let oow = S { ts: Some((1002, ecr)), ..seg(ACK, C1 + 1_000_000, snd) };
    assert_eq!(h.send1(oow.clone()).ack, C1);
    h.send0(oow.clone());
    // PAWS-failed and ACK-of-unsent pure ACKs share the interval.
    h.send0(S { ts: Some((900, ecr)), ..seg(ACK, C1, snd) });
    h.send0(S { ts: Some((1002, ecr)), ..seg(ACK, C1, snd + 50) });
    assert_eq!(h.ep.stats.oow_acks_rate_limited, 3);
    assert_eq!((h.ep.stats.drop_out_of_window, h.ep.stats.drop_paws, h.ep.stats.drop_ack_unsent), (2, 1, 1));
    // Data is always answered: its duplicate ACK stops a retransmission.
    let old = S { ts: Some((1002, ecr)), payload: b"old".to_vec(), ..seg(ACK, C1 - 3, snd) };
    assert_eq!(h.send1(old).ack, C1);
    let stale = S { ts: Some((900, ecr)), payload: b"stale".to_vec(), ..seg(ACK, C1, snd) };
    assert_eq!(h.send1(stale).ack, C1);
    assert_eq!(h.ep.stats.oow_acks_rate_limited, 3);
    // After the interval a pure ACK is answered again.
    h.now += OOW_ACK_INTERVAL;
    assert_eq!(h.send1(oow).ack, C1);
}
