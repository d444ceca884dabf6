//! Per-listener figures (`ListenerCounts`, exported as
//! `floodgate_listener_*`): SYNs, connections established and still held,
//! payload bytes each way without the SYN's and FIN's sequence numbers.

use super::*;
use crate::tcp::ListenerCounts;

both_families!(a_connection_and_its_payload_are_counted_once, aborted_and_cookie_connections_are_counted,);

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);

fn counts(h: &Harness) -> ListenerCounts {
    h.ep.listeners()[0].counts
}

fn a_connection_and_its_payload_are_counted_once(f: Family) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    let (c, iss) = h.establish();
    h.take_events();
    let s1 = iss + 1;
    let want = ListenerCounts { syns: 1, accepted: 1, active: 1, bytes_received: 0, bytes_sent: 0 };
    assert_eq!(counts(&h), want, "the handshake's SYNs are no payload");
    h.send(S { payload: b"hello".to_vec(), ..seg(ACK | PSH, C1, s1) });
    // The same bytes again (a retransmission) count once.
    h.send(S { payload: b"hello".to_vec(), ..seg(ACK | PSH, C1, s1) });
    let mut buf = [0u8; 16];
    assert_eq!(h.ep.read(c, &mut buf).unwrap(), 5);
    assert_eq!(h.ep.write(c, b"nine byte").unwrap(), 9);
    h.flush();
    assert_eq!(counts(&h).bytes_sent, 0, "sent counts once acknowledged");
    h.send0(seg(ACK, C1 + 5, s1 + 9));
    h.send1(seg(FIN | ACK, C1 + 5, s1 + 9));
    h.ep.close(c).unwrap();
    h.flush();
    h.send0(seg(ACK, C1 + 6, s1 + 10));
    assert_eq!(h.ep.state(c), None, "closed and reclaimed");
    let want = ListenerCounts { syns: 1, accepted: 1, active: 0, bytes_received: 5, bytes_sent: 9 };
    assert_eq!(counts(&h), want, "FINs are no payload either");
}

fn aborted_and_cookie_connections_are_counted(f: Family) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    let (c, _) = h.establish();
    h.ep.abort(c).unwrap();
    h.flush();
    assert_eq!((counts(&h).accepted, counts(&h).active), (1, 0), "an aborted connection leaves the gauge");

    let cookies = TcpConfig { syn_cookies: crate::tcp::CookieMode::Always, ..TcpConfig::default() };
    let mut h = Harness::new_over(f, cookies);
    let sa = h.send1(syn(CLIENT_ISN));
    assert_eq!(counts(&h).accepted, 0, "a cookie SYN-ACK holds nothing");
    h.send0(S { payload: b"GET".to_vec(), ..seg(ACK | PSH, C1, sa.seq + 1) });
    h.accepted();
    let want = ListenerCounts { syns: 1, accepted: 1, active: 1, bytes_received: 3, bytes_sent: 0 };
    assert_eq!(counts(&h), want);
}
