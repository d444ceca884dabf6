//! ICMP errors that report a path MTU, parsed down to the TCP segment they
//! quote, so the engine can check them against a connection (RFC 5927 §4.1)
//! and lower its MSS:
//! - ICMPv4 "destination unreachable, fragmentation needed and DF set"
//!   (type 3, code 4), with the next-hop MTU in its second word (RFC 1191
//!   §4); the quote is the IP header plus at least 8 bytes of the datagram
//!   (RFC 792), enough for the TCP ports and sequence number;
//! - ICMPv6 "packet too big" (type 2, code 0), with the MTU in its second
//!   word (RFC 4443 §3.2, RFC 8201 §4).
//!
//! Any other ICMP message, or one quoting something other than TCP, is not
//! the engine's: `Ok(None)`, and the frame is left alone (its checksum
//! unread). A "too big" error with a bad checksum is an error (counted like
//! every wire error).

use super::{checksum, Error, Result};
use crate::flow::{Addr, FourTuple};
use crate::wire::SeqNumber;

pub const PROTOCOL_V4: u8 = 1;
pub const PROTOCOL_V6: u8 = 58;
const TCP: u8 = 6;

/// A "too big" report about one of our segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooBig {
    /// The connection, seen from our end: local = the quoted source.
    pub tuple: FourTuple,
    /// The quoted segment's sequence number.
    pub seq: SeqNumber,
    /// The MTU the router reported (0: it did not say, RFC 1191 §5).
    pub mtu: u32,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// The quoted TCP header's first 8 bytes: ports and sequence number.
fn quoted_tcp(src: Addr, dst: Addr, t: &[u8], mtu: u32) -> Option<TooBig> {
    if t.len() < 8 {
        return None;
    }
    Some(TooBig {
        tuple: FourTuple { local_addr: src, remote_addr: dst, local_port: u16_at(t, 0), remote_port: u16_at(t, 2) },
        seq: SeqNumber(u32::from_be_bytes([t[4], t[5], t[6], t[7]])),
        mtu,
    })
}

/// An ICMPv4 message (the IPv4 payload).
pub fn parse_v4(icmp: &[u8], verify_checksum: bool) -> Result<Option<TooBig>> {
    if icmp.len() < 8 {
        return Err(Error::Truncated);
    }
    if icmp[0] != 3 || icmp[1] != 4 {
        return Ok(None);
    }
    if verify_checksum && checksum::data(icmp) != 0xffff {
        return Err(Error::BadIcmpChecksum);
    }
    let mtu = u16_at(icmp, 6) as u32;
    let q = &icmp[8..];
    if q.len() < 20 || q[0] >> 4 != 4 {
        return Ok(None);
    }
    let ihl = (q[0] & 0x0f) as usize * 4;
    if ihl < 20 || q[9] != TCP || q.len() < ihl + 8 {
        return Ok(None);
    }
    let src = Addr::v4([q[12], q[13], q[14], q[15]]);
    let dst = Addr::v4([q[16], q[17], q[18], q[19]]);
    Ok(quoted_tcp(src, dst, &q[ihl..], mtu))
}

/// An ICMPv6 message (the upper-layer payload of an IPv6 packet from `src`
/// to `dst`, for the pseudo-header of its checksum).
pub fn parse_v6(icmp: &[u8], src: &Addr, dst: &Addr, verify_checksum: bool) -> Result<Option<TooBig>> {
    if icmp.len() < 8 {
        return Err(Error::Truncated);
    }
    if icmp[0] != 2 || icmp[1] != 0 {
        return Ok(None);
    }
    if verify_checksum {
        let ph = checksum::pseudo_header(src, dst, PROTOCOL_V6, icmp.len() as u32);
        if checksum::combine(&[ph, checksum::data(icmp)]) != 0xffff {
            return Err(Error::BadIcmpChecksum);
        }
    }
    let mtu = u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]);
    let q = &icmp[8..];
    // The quoted IPv6 header; our segments carry no extension headers.
    if q.len() < 40 + 8 || q[0] >> 4 != 6 || q[6] != TCP {
        return Ok(None);
    }
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    s.copy_from_slice(&q[8..24]);
    d.copy_from_slice(&q[24..40]);
    Ok(quoted_tcp(Addr(s), Addr(d), &q[40..], mtu))
}

/// Writes an ICMPv4 "fragmentation needed" quoting `quoted` (an IPv4
/// packet: header and at least 8 bytes), for tests and the simulator.
pub fn emit_frag_needed(out: &mut Vec<u8>, mtu: u16, quoted: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[3, 4, 0, 0, 0, 0]);
    out.extend_from_slice(&mtu.to_be_bytes());
    out.extend_from_slice(quoted);
    let sum = checksum::finish(checksum::data(&out[start..]));
    out[start + 2..start + 4].copy_from_slice(&sum.to_be_bytes());
}

/// Writes an ICMPv6 "packet too big" from `src` to `dst` quoting `quoted`.
pub fn emit_packet_too_big(out: &mut Vec<u8>, src: &Addr, dst: &Addr, mtu: u32, quoted: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[2, 0, 0, 0]);
    out.extend_from_slice(&mtu.to_be_bytes());
    out.extend_from_slice(quoted);
    let len = (out.len() - start) as u32;
    let ph = checksum::pseudo_header(src, dst, PROTOCOL_V6, len);
    let sum = checksum::finish(checksum::combine(&[ph, checksum::data(&out[start..])]));
    out[start + 2..start + 4].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: [u8; 4] = [198, 18, 0, 1];
    const PEER: [u8; 4] = [198, 18, 0, 2];

    /// An IPv4 header from us to the peer (TCP) and the first 8 bytes of
    /// a segment from port 80 to 40000 with sequence number 1000.
    fn quote4() -> Vec<u8> {
        let mut q = vec![0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, TCP, 0, 0];
        q.extend_from_slice(&US);
        q.extend_from_slice(&PEER);
        q.extend_from_slice(&[0, 80, 0x9c, 0x40, 0, 0, 0x03, 0xe8]);
        q
    }

    #[test]
    fn frag_needed_names_the_connection_sequence_and_mtu() {
        let mut m = Vec::new();
        emit_frag_needed(&mut m, 1400, &quote4());
        let tb = parse_v4(&m, true).unwrap().expect("a too-big report");
        assert_eq!(tb.tuple.local_addr, Addr::v4(US));
        assert_eq!(tb.tuple.remote_addr, Addr::v4(PEER));
        assert_eq!((tb.tuple.local_port, tb.tuple.remote_port), (80, 40000));
        assert_eq!((tb.seq, tb.mtu), (SeqNumber(1000), 1400));
        m[9] ^= 1;
        assert_eq!(parse_v4(&m, true), Err(Error::BadIcmpChecksum));
    }

    #[test]
    fn other_icmp_and_other_protocols_are_not_ours() {
        let mut m = Vec::new();
        emit_frag_needed(&mut m, 1400, &quote4());
        let mut port_unreachable = m.clone();
        port_unreachable[1] = 3;
        assert_eq!(parse_v4(&port_unreachable, false), Ok(None));
        let mut udp = quote4();
        udp[9] = 17;
        let mut m = Vec::new();
        emit_frag_needed(&mut m, 1400, &udp);
        assert_eq!(parse_v4(&m, true), Ok(None));
        assert_eq!(parse_v4(&[3, 4, 0], true), Err(Error::Truncated));
        let short = &quote4()[..24];
        let mut m = Vec::new();
        emit_frag_needed(&mut m, 1400, short);
        assert_eq!(parse_v4(&m, true), Ok(None), "too short a quote to name a connection");
    }

    #[test]
    fn packet_too_big_v6() {
        let us = Addr([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let peer = Addr([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let router = Addr([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        let mut q = vec![0x60, 0, 0, 0, 0, 20, TCP, 64];
        q.extend_from_slice(&us.0);
        q.extend_from_slice(&peer.0);
        q.extend_from_slice(&[0, 80, 0x9c, 0x40, 0, 0, 0x03, 0xe8]);
        let mut m = Vec::new();
        emit_packet_too_big(&mut m, &router, &us, 1280, &q);
        let tb = parse_v6(&m, &router, &us, true).unwrap().expect("a too-big report");
        assert_eq!((tb.tuple.local_addr, tb.tuple.remote_addr), (us, peer));
        assert_eq!((tb.seq, tb.mtu), (SeqNumber(1000), 1280));
        assert_eq!(parse_v6(&m, &peer, &us, true), Err(Error::BadIcmpChecksum), "pseudo-header covers the source");
    }
}
