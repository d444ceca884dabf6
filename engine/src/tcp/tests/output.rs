//! What a connection sends when the TX ring is full (backpressure: the
//! segment stays owed and leaves at the next flush, RFC 9293 §3.8 leaves the
//! timing to the sender, losing it would cost an RTO), and the link layer of
//! its frames: the family's MSS on SYN and SYN-ACK (RFC 9293 §3.7.1, RFC
//! 8200 §5) and the VLAN tag the connection came on.

use super::*;

const C1: SeqNumber = SeqNumber(CLIENT_ISN.0 + 1);

/// A TX ring with room for `room` frames, then full.
struct Ring {
    room: usize,
    inner: Capture,
}

impl Ring {
    fn with_room(room: usize) -> Ring {
        Ring { room, inner: Capture::default() }
    }
}

impl TxSink for Ring {
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool {
        if self.room == 0 {
            return false;
        }
        self.room -= 1;
        self.inner.send(write)
    }
}

impl Harness {
    /// Delivers a client segment while the TX ring is full: what it owes
    /// stays with the connection.
    fn deliver_to_full_ring(&mut self, s: S) {
        let from = (CLIENT_MAC, Addr::v4(CLIENT_IP), self.client_port);
        let mut frame = frame_of(&s, from, (SERVER_MAC, Addr::v4(SERVER_IP), SERVER_PORT));
        self.ep.on_frame(self.now, &mut frame, &mut Ring::with_room(0));
    }

    /// Flushes into a TX ring with room for `room` frames.
    fn flush_into(&mut self, room: usize) -> Vec<S> {
        let mut tx = Ring::with_room(room);
        self.ep.flush(self.now, &mut tx);
        self.collect(tx.inner)
    }
}

#[test]
fn data_the_tx_ring_refuses_leaves_at_the_next_flush() {
    let (mut h, c, s1) = established();
    h.ep.write(c, &[7u8; 4000]).unwrap();
    let out = h.flush_into(1);
    assert_eq!(out.iter().map(|s| (s.seq, s.payload.len())).collect::<Vec<_>>(), vec![(s1, 1460)]);
    assert_eq!(h.ep.stats.tx_full_deferred, 1);
    assert_eq!(h.ep.next_deadline(), Some(h.now), "owed output makes the shard come back at once");

    // No ACK, no timer: the next flush sends the rest, in sequence.
    let out = h.flush();
    let rest: Vec<(SeqNumber, usize)> = out.iter().map(|s| (s.seq, s.payload.len())).collect();
    assert_eq!(rest, vec![(s1 + 1460, 1460), (s1 + 2920, 1080)]);
    assert_eq!(h.ep.stats.retransmits, 0, "a deferred segment is sent once, not retransmitted");
    assert!(h.flush().is_empty());
    // All of it is acknowledged: nothing left to resend, no RTO fires.
    h.send0(seg(ACK, C1, s1 + 4000));
    assert!(h.advance(Duration::from_secs(5)).is_empty());
    assert_eq!(h.ep.stats.rto_expiries, 0);
}

#[test]
fn a_full_ring_defers_every_dirty_connection_in_order() {
    let mut h = Harness::new(TcpConfig::default());
    let (a, sa) = h.establish();
    h.take_events();
    h.client_port += 1;
    let (b, sb) = h.establish();
    h.take_events();
    h.ep.write(a, b"first").unwrap();
    h.ep.write(b, b"second").unwrap();
    assert!(h.flush_into(0).is_empty());
    assert_eq!(h.ep.stats.tx_full_deferred, 1, "the first refusal stops the flush");
    let out = h.flush();
    let sent: Vec<(SeqNumber, Vec<u8>)> = out.iter().map(|s| (s.seq, s.payload.clone())).collect();
    assert_eq!(sent, vec![(sa + 1, b"first".to_vec()), (sb + 1, b"second".to_vec())]);
}

#[test]
fn an_ack_the_tx_ring_refuses_is_still_sent() {
    let (mut h, _, s1) = established();
    // Two full-sized segments: an ACK is due at once (RFC 9293 §3.8.6.3).
    h.deliver_to_full_ring(S { payload: vec![1; 1460], ..seg(ACK, C1, s1) });
    h.deliver_to_full_ring(S { payload: vec![2; 1460], ..seg(ACK, C1 + 1460, s1) });
    assert!(h.flush_into(0).is_empty());
    let ack = h.flush();
    assert_eq!(ack.len(), 1);
    assert_eq!((ack[0].control, ack[0].seq, ack[0].ack), (ACK, s1, C1 + 2920));
}

#[test]
fn a_syn_ack_the_tx_ring_refuses_goes_out_with_the_same_isn() {
    let mut h = Harness::new(TcpConfig::default());
    h.deliver_to_full_ring(syn(CLIENT_ISN));
    assert!(h.flush_into(0).is_empty());
    let sa = h.flush();
    assert_eq!(sa.len(), 1);
    assert_eq!((sa[0].control, sa[0].ack), (SYN | ACK, CLIENT_ISN + 1));
    h.send0(seg(ACK, CLIENT_ISN + 1, sa[0].seq + 1));
    assert!(matches!(h.take_events()[..], [Event::Accepted(_)]));
}

#[test]
fn the_last_ack_before_time_wait_is_not_lost_to_a_full_ring() {
    let (mut h, c, s1) = established();
    // We close first: FIN, its ACK, then the peer's FIN.
    h.ep.close(c).unwrap();
    let fin = h.flush();
    assert_eq!(fin[0].control, FIN | ACK);
    h.send0(seg(ACK, C1, s1 + 1));
    h.deliver_to_full_ring(seg(FIN | ACK, C1, s1 + 1));
    assert!(h.flush_into(0).is_empty());
    assert_eq!(h.ep.time_wait(), 0, "not reaped while its last ACK is owed");
    let ack = h.flush();
    assert_eq!(ack.len(), 1);
    assert_eq!((ack[0].control, ack[0].seq, ack[0].ack), (ACK, s1 + 1, C1 + 1));
    assert_eq!(h.ep.time_wait(), 1);
}

#[test]
fn an_ipv6_syn_ack_advertises_the_ipv6_mss() {
    let mut h = Harness::new(TcpConfig::default());
    let out = h.send_over(CLIENT_IP6, SERVER_IP6, None, &syn(CLIENT_ISN));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.mss, Some(1440), "MTU 1500 - 40 (IPv6) - 20 (TCP)");
    // And the IPv4 one, for contrast.
    let out = h.send_over(Addr::v4(CLIENT_IP), Addr::v4(SERVER_IP), None, &syn(CLIENT_ISN));
    assert_eq!(out[0].1.mss, Some(1460));
}

#[test]
fn every_frame_of_a_connection_keeps_its_vlan_tag() {
    let mut h = Harness::new(TcpConfig::default());
    let (c, s) = (Addr::v4(CLIENT_IP), Addr::v4(SERVER_IP));
    let sa = h.send_over(c, s, Some(42), &syn(CLIENT_ISN));
    assert_eq!(sa.len(), 1);
    assert_eq!((sa[0].0, sa[0].1.control), (Some(42), SYN | ACK));
    let s1 = sa[0].1.seq + 1;
    assert!(h.send_over(c, s, Some(42), &seg(ACK, C1, s1)).is_empty());
    let conn = h.accepted();
    h.ep.write(conn, b"hello").unwrap();
    let mut tx = Capture::default();
    h.ep.flush(h.now, &mut tx);
    let data = wire::parse_tcp_frame(&tx.frames[0], true).unwrap();
    let wire::Frame::Tcp(p) = data else { panic!("not TCP") };
    assert_eq!((p.eth.vlan, p.tcp.payload), (Some(42), &b"hello"[..]), "data on the connection's VLAN");
    let fin = h.send_over(c, s, Some(42), &seg(FIN | ACK, C1, s1 + 5));
    assert!(fin.iter().all(|(vlan, _)| *vlan == Some(42)), "the ACK of the FIN too: {fin:?}");
}
