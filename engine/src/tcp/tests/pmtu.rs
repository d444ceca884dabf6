//! Path MTU discovery from ICMP errors (RFC 1191, RFC 8201) with the
//! RFC 5927 §4.1 checks (`endpoint/pmtu.rs`).

use super::*;
use crate::wire::{checksum, icmp};

const ROUTER_IP: [u8; 4] = [198, 18, 0, 254];
const ROUTER_IP6: Addr = Addr([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe]);

/// An Ethernet + IPv4 frame from the router to the server carrying an ICMP
/// "fragmentation needed" about the segment (server → client, `seq`).
fn frag_needed(mtu: u16, client_port: u16, seq: SeqNumber) -> Vec<u8> {
    let mut quote = vec![0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0];
    quote.extend_from_slice(&SERVER_IP);
    quote.extend_from_slice(&CLIENT_IP);
    quote.extend_from_slice(&SERVER_PORT.to_be_bytes());
    quote.extend_from_slice(&client_port.to_be_bytes());
    quote.extend_from_slice(&seq.0.to_be_bytes());
    let mut msg = Vec::new();
    icmp::emit_frag_needed(&mut msg, mtu, &quote);
    let mut f = Vec::new();
    f.extend_from_slice(&SERVER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + msg.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, icmp::PROTOCOL_V4, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&ROUTER_IP);
    ip.extend_from_slice(&SERVER_IP);
    let sum = checksum::finish(checksum::data(&ip));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&msg);
    f
}

/// Delivers a raw frame; returns what the server sent.
fn deliver(h: &mut Harness, mut frame: Vec<u8>) -> Vec<S> {
    let mut tx = Capture::default();
    assert_eq!(h.ep.on_frame(h.now, &mut frame, &mut tx), RxAction::Release);
    let mut out = h.collect(tx);
    out.extend(h.flush());
    out
}

/// A connection with 4 full segments (MSS 1460) in flight.
fn four_segments_in_flight() -> (Harness, Handle, SeqNumber) {
    let (mut h, c, s1) = established();
    h.ep.write(c, &[5u8; 4 * 1460]).unwrap();
    let out = h.flush();
    assert_eq!(out.iter().map(|s| s.payload.len()).collect::<Vec<_>>(), [1460; 4]);
    (h, c, s1)
}

#[test]
fn too_big_lowers_the_mss_and_resends_what_is_in_flight_at_once() {
    let (mut h, c, s1) = four_segments_in_flight();
    let port = h.client_port;
    let cwnd = h.ep.tcb(c).unwrap().cwnd;
    let out = deliver(&mut h, frag_needed(1400, port, s1));
    assert_eq!(h.ep.tcb(c).unwrap().mss, 1360, "1400 - 20 (IPv4) - 20 (TCP)");
    assert_eq!(h.ep.stats.pmtu_mss_lowered, 1);
    assert!(!out.is_empty(), "the lost segments go again at once, not after an RTO");
    assert_eq!(out[0].seq, s1, "from SND.UNA");
    assert!(
        out.iter().all(|s| s.payload.len() <= 1360),
        "{:?}",
        out.iter().map(|s| s.payload.len()).collect::<Vec<_>>()
    );
    assert_eq!(h.ep.tcb(c).unwrap().cwnd, cwnd, "not a congestion signal");
    // Everything arrives at the smaller size and is acknowledged.
    let end = s1 + 4 * 1460;
    h.send0(seg(ACK, CLIENT_ISN + 1, end));
    assert_eq!(h.ep.tcb(c).unwrap().snd_una, end);
}

#[test]
fn an_error_about_a_sequence_number_not_in_flight_is_ignored() {
    let (mut h, c, s1) = four_segments_in_flight();
    let port = h.client_port;
    // RFC 5927 §4.1: beyond what was sent, and before SND.UNA.
    assert!(deliver(&mut h, frag_needed(1400, port, s1 + 4 * 1460)).is_empty());
    h.send0(seg(ACK, CLIENT_ISN + 1, s1 + 1460));
    assert!(deliver(&mut h, frag_needed(1400, port, s1)).is_empty());
    // Another connection's port: no such connection.
    assert!(deliver(&mut h, frag_needed(1400, port.wrapping_add(1), s1 + 1460)).is_empty());
    assert_eq!(h.ep.tcb(c).unwrap().mss, 1460);
    assert_eq!((h.ep.stats.icmp_too_big_received, h.ep.stats.icmp_too_big_ignored), (3, 3));
    assert_eq!(h.ep.stats.pmtu_mss_lowered, 0);
}

#[test]
fn the_mss_only_goes_down_and_not_below_the_floor() {
    let (mut h, c, s1) = four_segments_in_flight();
    let port = h.client_port;
    assert!(deliver(&mut h, frag_needed(1500, port, s1)).is_empty(), "no news");
    assert_eq!(h.ep.tcb(c).unwrap().mss, 1460);
    deliver(&mut h, frag_needed(68, port, s1));
    assert_eq!(h.ep.tcb(c).unwrap().mss, 552 - 40, "a forged tiny MTU stops at the 552-byte floor");
    assert_eq!(h.ep.stats.icmp_too_big_ignored, 1);
}

#[test]
fn packet_too_big_over_ipv6_stops_at_1280() {
    let mut h = Harness::new(TcpConfig::default());
    let sa = h.send_over(CLIENT_IP6, SERVER_IP6, None, &syn(CLIENT_ISN));
    let s1 = sa[0].1.seq + 1;
    assert!(h.send_over(CLIENT_IP6, SERVER_IP6, None, &seg(ACK, CLIENT_ISN + 1, s1)).is_empty());
    let c = h.accepted();
    h.ep.write(c, &[1u8; 3000]).unwrap();
    let mut tx = Capture::default();
    h.ep.flush(h.now, &mut tx);
    assert_eq!(h.ep.tcb(c).unwrap().mss, 1440);
    // ICMPv6 packet too big, MTU 1000 (below the IPv6 minimum), quoting our segment.
    let mut quote = vec![0x60, 0, 0, 0, 0x05, 0xb4, 6, 64];
    quote.extend_from_slice(&SERVER_IP6.0);
    quote.extend_from_slice(&CLIENT_IP6.0);
    quote.extend_from_slice(&SERVER_PORT.to_be_bytes());
    quote.extend_from_slice(&h.client_port.to_be_bytes());
    quote.extend_from_slice(&s1.0.to_be_bytes());
    let mut msg = Vec::new();
    icmp::emit_packet_too_big(&mut msg, &ROUTER_IP6, &SERVER_IP6, 1000, &quote);
    let mut f = Vec::new();
    f.extend_from_slice(&SERVER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    f.extend_from_slice(&[icmp::PROTOCOL_V6, 64]);
    f.extend_from_slice(&ROUTER_IP6.0);
    f.extend_from_slice(&SERVER_IP6.0);
    f.extend_from_slice(&msg);
    let mut tx = Capture::default();
    h.ep.on_frame(h.now, &mut f, &mut tx);
    h.ep.flush(h.now, &mut tx);
    assert_eq!(h.ep.tcb(c).unwrap().mss, 1280 - 60, "RFC 8201 §4: never below 1280");
    let resent: Vec<_> = tx.frames.iter().map(|f| parse(f).1).collect();
    assert_eq!(resent.first().map(|s| (s.seq, s.payload.len())), Some((s1, 1220)));
}
