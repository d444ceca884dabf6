//! The application's deadline (`Endpoint::set_deadline`, `Event::Deadline`)
//! and the per-source-address connection limit (`TcpConfig::source_limit`).

use super::*;

fn deadlines(h: &Harness) -> usize {
    h.events.iter().filter(|e| matches!(e, Event::Deadline(_))).count()
}

#[test]
fn a_deadline_fires_once_at_its_time_and_leaves_the_connection_alone() {
    let mut h = Harness::new(TcpConfig::default());
    let (c, _) = h.establish();
    let start = h.now;
    h.ep.set_deadline(c, Some(start + Duration::from_secs(5))).unwrap();
    assert_eq!(h.ep.deadline(c), Some(start + Duration::from_secs(5)));
    assert!(h.advance(Duration::from_millis(4999)).is_empty());
    assert_eq!(deadlines(&h), 0, "not early");
    assert!(h.advance(Duration::from_millis(1)).is_empty(), "nothing sent: the application decides");
    assert_eq!(h.events.last(), Some(&Event::Deadline(c)));
    assert_eq!(deadlines(&h), 1);
    assert_eq!((h.ep.state(c), h.ep.deadline(c)), (Some(State::Established), None));
    h.advance(Duration::from_secs(60));
    assert_eq!(deadlines(&h), 1, "once");
    assert_eq!(h.ep.stats.app_deadlines, 1);
}

#[test]
fn a_deadline_pushed_back_fires_at_the_new_time_and_a_cleared_one_never() {
    let mut h = Harness::new(TcpConfig::default());
    let (c, _) = h.establish();
    let start = h.now;
    h.ep.set_deadline(c, Some(start + Duration::from_secs(5))).unwrap();
    // Pushed back after 3 s, as an idle timeout is on every byte.
    h.advance(Duration::from_secs(3));
    h.ep.set_deadline(c, Some(h.now + Duration::from_secs(5))).unwrap();
    h.advance(Duration::from_secs(4));
    assert_eq!(deadlines(&h), 0, "the first deadline was replaced");
    h.advance(Duration::from_secs(1));
    assert_eq!(deadlines(&h), 1);
    assert_eq!(h.now - start, Duration::from_secs(8));
    // Brought forward, then cleared.
    h.ep.set_deadline(c, Some(h.now + Duration::from_secs(50))).unwrap();
    h.ep.set_deadline(c, Some(h.now + Duration::from_secs(1))).unwrap();
    h.advance(Duration::from_secs(1));
    assert_eq!(deadlines(&h), 2, "an earlier deadline moves the timer");
    h.ep.set_deadline(c, Some(h.now + Duration::from_secs(1))).unwrap();
    h.ep.set_deadline(c, None).unwrap();
    h.advance(Duration::from_secs(100));
    assert_eq!(deadlines(&h), 2);
}

#[test]
fn close_clears_the_deadline_and_a_dead_handle_has_none() {
    let mut h = Harness::new(TcpConfig::default());
    let (c, _) = h.establish();
    h.ep.set_deadline(c, Some(h.now + Duration::from_secs(1))).unwrap();
    h.ep.close(c).unwrap();
    h.flush();
    h.advance(Duration::from_secs(2));
    assert_eq!(deadlines(&h), 0);
    h.ep.abort(c).unwrap();
    h.flush();
    assert_eq!(h.ep.set_deadline(c, Some(h.now)), Err(Error::InvalidHandle));
}

fn limited(limit: u32, cookies: CookieMode) -> Harness {
    let cfg = TcpConfig { source_limit: Some(limit), syn_cookies: cookies, ..TcpConfig::default() };
    Harness::with_capacity(
        cfg,
        Capacity { connections: 64, time_wait: 64, buffers: 64, events: 256, sources: 16, ..Capacity::default() },
    )
}

#[test]
fn a_source_at_its_limit_has_its_syns_dropped_until_a_connection_ends() {
    let mut h = limited(2, CookieMode::Auto);
    let mut conns = Vec::new();
    for port in [40000, 40001] {
        h.client_port = port;
        h.events.clear();
        conns.push(h.establish().0);
    }
    assert_eq!(h.ep.source_connections(&h.tuple()), 2);
    // A third connection: its SYN gets no answer (the client retries).
    h.client_port = 40002;
    h.send0(syn(CLIENT_ISN));
    h.send0(syn(CLIENT_ISN));
    assert_eq!(h.ep.stats.syns_dropped_source_limit, 2);
    assert_eq!(h.ep.connections(), 2);
    // A half-open entry counts too, and its timeout gives the count back.
    h.ep.abort(conns[0]).unwrap();
    h.flush();
    assert_eq!(h.ep.source_connections(&h.tuple()), 1);
    h.client_port = 40003;
    assert_eq!(h.send1(syn(CLIENT_ISN)).control, SYN | ACK);
    assert_eq!(h.ep.source_connections(&h.tuple()), 2);
    h.client_port = 40004;
    h.send0(syn(CLIENT_ISN));
    for _ in 0..200 {
        h.advance(Duration::from_secs(1));
    }
    assert_eq!(h.ep.stats.half_open_timeouts, 1);
    assert_eq!(h.ep.source_connections(&h.tuple()), 1);
    h.events.clear();
    h.establish();
    assert_eq!(h.ep.connections(), 2);
    assert_eq!(h.ep.stats.syns_dropped_source_limit, 3);
}

#[test]
fn another_source_is_not_affected() {
    let mut h = limited(1, CookieMode::Auto);
    h.establish();
    h.client_port = 40001;
    h.send0(syn(CLIENT_ISN));
    // The same port from another address: the table keys the source, not the tuple.
    let mut t = h.tuple();
    t.remote_addr = Addr::v4([198, 18, 0, 3]);
    assert_eq!(h.ep.source_connections(&t), 0);
    assert_eq!(h.ep.stats.syns_dropped_source_limit, 1);
}

#[test]
fn a_cookie_ack_past_the_limit_is_reset() {
    let mut h = limited(1, CookieMode::Always);
    h.client_port = 40000;
    let sa1 = h.send1(syn(CLIENT_ISN));
    // A second SYN answered before the first handshake completes: no state, no count yet.
    h.client_port = 40001;
    let sa2 = h.send1(syn(CLIENT_ISN));
    h.client_port = 40000;
    h.send0(seg(ACK, CLIENT_ISN + 1, sa1.seq + 1));
    assert_eq!(h.ep.connections(), 1);
    h.client_port = 40001;
    let r = h.send1(seg(ACK, CLIENT_ISN + 1, sa2.seq + 1));
    assert_eq!((r.control, r.seq), (RST, sa2.seq + 1), "RST with seq = SEG.ACK");
    assert_eq!(h.ep.connections(), 1);
    assert_eq!(h.ep.stats.cookie_acks_refused_source_limit, 1);
    assert_eq!(h.ep.stats.cookies_rejected, 0, "the cookie itself was good");
    // A bad cookie from a source at the limit is still just a bad cookie.
    let r = h.send1(seg(ACK, CLIENT_ISN + 1, sa2.seq + 7));
    assert_eq!(r.control, RST);
    assert_eq!(h.ep.stats.cookie_acks_refused_source_limit, 1);
}

#[test]
fn a_full_source_table_admits_uncounted_and_says_so() {
    let cfg = TcpConfig { source_limit: Some(1), ..TcpConfig::default() };
    let cap = Capacity { connections: 64, time_wait: 64, buffers: 64, events: 256, sources: 1, ..Capacity::default() };
    let mut h = Harness::with_capacity(cfg, cap);
    h.establish();
    // Another source: the one-entry table is full.
    let mut frame = frame_of(
        &syn(CLIENT_ISN),
        (CLIENT_MAC, Addr::v4([198, 18, 0, 3]), 40000),
        (SERVER_MAC, Addr::v4(SERVER_IP), SERVER_PORT),
    );
    let mut tx = Capture::default();
    let n = match h.ep.on_frame(h.now, &mut frame, &mut tx) {
        RxAction::Transmit(n) => n,
        _ => 0,
    };
    h.ep.flush(h.now, &mut tx);
    assert!(n > 0 || !tx.frames.is_empty(), "answered");
    assert_eq!(h.ep.connections(), 2);
    assert_eq!(h.ep.stats.source_table_full, 1);
}
