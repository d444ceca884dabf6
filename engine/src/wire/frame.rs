//! The per-packet demux (Ethernet → IPv4 / IPv6 → TCP, or ARP) and the
//! composer of outgoing TCP frames.
//!
//! Follows the layers' own documents: IEEE 802.3 / 802.1Q, RFC 791, RFC
//! 8200, RFC 9293, RFC 826. This is the hot path: no allocation, each header
//! read once, checksums verified only when asked (the NIC may have done it).

use super::ethernet::{self, EthernetFrame};
use super::icmp;
use super::{
    checksum, ipv4, ipv6, read_u16, read_u32, tcp, write_u16, ArpPacket, ArpRepr, Control, Error, EtherType,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, MacAddr, Result, SeqNumber, TcpOptions,
    TcpPacket, TcpRepr,
};
use crate::flow::{Addr, FourTuple};

/// TTL / hop limit of emitted packets (the Linux default, RFC 1700 value).
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// Shortest Ethernet frame without FCS (IEEE 802.3 §4.4.2, 64 with FCS);
/// emitted frames are zero-padded to it.
pub const MIN_FRAME_LEN: usize = 60;

/// The ECN field, the low two bits of the IPv4 TOS byte and of the IPv6
/// traffic class (RFC 3168 §5).
pub mod ecn {
    pub const MASK: u8 = 0b11;
    pub const NOT_ECT: u8 = 0b00;
    pub const ECT1: u8 = 0b01;
    pub const ECT0: u8 = 0b10;
    /// Congestion Experienced, set by a router instead of dropping.
    pub const CE: u8 = 0b11;
}

/// Sets the ECN field of the IP header of an emitted TCP frame (untagged
/// or 802.1Q, IPv4 or IPv6) to `codepoint`, updating the IPv4 header
/// checksum incrementally (RFC 1624; the TCP checksum does not cover the
/// IP header). False, with the frame untouched, if it is not IP.
pub fn set_ecn(frame: &mut [u8], codepoint: u8) -> bool {
    let codepoint = codepoint & ecn::MASK;
    match ip_header(frame) {
        Some((ip, L3::V4)) => {
            let old = read_u16(frame, ip);
            let new = (old & !(ecn::MASK as u16)) | codepoint as u16;
            write_u16(frame, ip, new);
            let csum = read_u16(frame, ip + 10);
            write_u16(frame, ip + 10, checksum::update16(csum, old, new));
            true
        }
        Some((ip, L3::V6)) => {
            // Traffic class bits 0-1 are bits 4-5 of the second byte.
            frame[ip + 1] = (frame[ip + 1] & !(ecn::MASK << 4)) | codepoint << 4;
            true
        }
        None => false,
    }
}

/// The ECN field of a frame's IP header (untagged or 802.1Q), `None` if
/// it is not IP.
pub fn ecn_of(frame: &[u8]) -> Option<u8> {
    match ip_header(frame)? {
        (ip, L3::V4) => Some(frame[ip + 1] & ecn::MASK),
        (ip, L3::V6) => Some((frame[ip + 1] >> 4) & ecn::MASK),
    }
}

/// Where the fixed IP header of a frame starts, and its family.
fn ip_header(frame: &[u8]) -> Option<(usize, L3)> {
    let (ty, ip) = match frame.get(12..14)? {
        [0x81, 0x00] => (frame.get(16..18)?, ethernet::VLAN_HEADER_LEN),
        t => (t, ethernet::HEADER_LEN),
    };
    match ty {
        [0x08, 0x00] if frame.len() >= ip + ipv4::HEADER_LEN => Some((ip, L3::V4)),
        [0x86, 0xdd] if frame.len() >= ip + ipv6::HEADER_LEN => Some((ip, L3::V6)),
        _ => None,
    }
}

/// The network layer a frame carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L3 {
    V4,
    V6,
}

impl L3 {
    /// The family of `addr`.
    pub fn of(addr: &Addr) -> L3 {
        if addr.is_v4() {
            L3::V4
        } else {
            L3::V6
        }
    }

    /// Length of the IP header the composer writes.
    pub const fn header_len(self) -> usize {
        match self {
            L3::V4 => ipv4::HEADER_LEN,
            L3::V6 => ipv6::HEADER_LEN,
        }
    }
}

/// A received TCP segment with its Ethernet and IP context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedFrame<'a> {
    pub eth: EthernetRepr,
    /// IP source (the remote end).
    pub src: Addr,
    /// IP destination (ours).
    pub dst: Addr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl_or_hop: u8,
    /// The ECN field of the IP header (RFC 3168 §5): [`ecn`]`::*`.
    pub ecn: u8,
    pub tcp: TcpRepr<'a>,
    pub l3: L3,
}

impl ParsedFrame<'_> {
    /// The connection's 4-tuple seen from this end (local = destination).
    pub fn tuple(&self) -> FourTuple {
        FourTuple {
            local_addr: self.dst,
            remote_addr: self.src,
            local_port: self.tcp.dst_port,
            remote_port: self.tcp.src_port,
        }
    }
}

/// What a received frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Tcp(ParsedFrame<'a>),
    Arp(ArpRepr),
    /// An ICMP error reporting a path MTU for one of our segments (`icmp`).
    TooBig(icmp::TooBig),
    /// Not for the engine: not IPv4/IPv6/ARP, or IP but not TCP.
    Other,
}

/// Parses one received frame. Malformed frames are an `Err` naming why;
/// with `verify_checksums` false neither the IPv4 header checksum nor the
/// TCP checksum is checked (the NIC validated them).
#[inline]
pub fn parse_tcp_frame(frame: &[u8], verify_checksums: bool) -> Result<Frame<'_>> {
    if let Some(p) = parse_v4_fast(frame, verify_checksums) {
        return Ok(Frame::Tcp(p));
    }
    parse_any(frame, verify_checksums)
}

/// The frame nearly every packet is: untagged Ethernet, IPv4 without
/// options and not fragmented, TCP, checksums good (when verified). Reads
/// each field once at its fixed offset. `None` means "not this shape, or
/// malformed": the caller then takes [`parse_any`], which reports exactly
/// why, so both paths agree on every input (tested in `fuzz_tests.rs`).
#[inline(always)]
fn parse_v4_fast(f: &[u8], verify: bool) -> Option<ParsedFrame<'_>> {
    const ETH: usize = ethernet::HEADER_LEN;
    const IP: usize = ipv4::HEADER_LEN;
    if f.len() < ETH + IP + tcp::HEADER_LEN
        || f[12..14] != [0x08, 0x00]
        || f[ETH] != 0x45
        || f[ETH + 9] != tcp::PROTOCOL
    {
        return None;
    }
    let total = read_u16(f, ETH + 2) as usize;
    // Not a fragment: MF clear, offset zero.
    if total < IP + tcp::HEADER_LEN || total > f.len() - ETH || read_u16(f, ETH + 6) & 0x3fff != 0 {
        return None;
    }
    let seg = &f[ETH + IP..ETH + total];
    let hl = ((seg[12] >> 4) as usize) * 4;
    if hl < tcp::HEADER_LEN || hl > seg.len() {
        return None;
    }
    if verify {
        if checksum::data(&f[ETH..ETH + IP]) != 0xffff {
            return None;
        }
        // The pseudo-header's addresses are the IP header's last 8 bytes,
        // right before the segment: one pass sums both.
        let sum = checksum::data(&f[ETH + 12..ETH + total]) as u64 + tcp::PROTOCOL as u64 + seg.len() as u64;
        if checksum::fold(sum) != 0xffff {
            return None;
        }
    }
    let options = TcpOptions::parse(&seg[tcp::HEADER_LEN..hl]).ok()?;
    let control = Control(seg[13]);
    let mut dst_mac = [0u8; 6];
    let mut src_mac = [0u8; 6];
    dst_mac.copy_from_slice(&f[0..6]);
    src_mac.copy_from_slice(&f[6..12]);
    Some(ParsedFrame {
        eth: EthernetRepr {
            src_addr: MacAddr(src_mac),
            dst_addr: MacAddr(dst_mac),
            ethertype: EtherType::Ipv4,
            vlan: None,
        },
        src: Addr::v4([f[26], f[27], f[28], f[29]]),
        dst: Addr::v4([f[30], f[31], f[32], f[33]]),
        ttl_or_hop: f[ETH + 8],
        ecn: f[ETH + 1] & ecn::MASK,
        tcp: TcpRepr {
            src_port: read_u16(seg, 0),
            dst_port: read_u16(seg, 2),
            control,
            seq_number: SeqNumber(read_u32(seg, 4)),
            ack_number: if control.ack() { Some(SeqNumber(read_u32(seg, 8))) } else { None },
            window_len: read_u16(seg, 14),
            urgent: read_u16(seg, 18),
            options,
            payload: &seg[hl..],
        },
        l3: L3::V4,
    })
}

/// Every frame shape, layer by layer through the views and `Repr`s.
pub(crate) fn parse_any(frame: &[u8], verify_checksums: bool) -> Result<Frame<'_>> {
    let eth = EthernetFrame::new_checked(frame)?;
    let eth_repr = EthernetRepr {
        src_addr: eth.src_addr(),
        dst_addr: eth.dst_addr(),
        ethertype: eth.ethertype(),
        vlan: eth.vlan_id(),
    };
    let payload = eth.payload();
    match eth_repr.ethertype {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(payload)?;
            let ip_repr = Ipv4Repr::parse(&ip, verify_checksums)?;
            if ip_repr.protocol == IpProtocol::Icmp {
                return Ok(icmp::parse_v4(ip.payload(), verify_checksums)?.map_or(Frame::Other, Frame::TooBig));
            }
            if ip_repr.protocol != IpProtocol::Tcp {
                return Ok(Frame::Other);
            }
            let src = Addr::v4(ip_repr.src_addr);
            let dst = Addr::v4(ip_repr.dst_addr);
            let tcp = TcpPacket::new_checked(ip.payload())?;
            let tcp = TcpRepr::parse(&tcp, &src, &dst, verify_checksums)?;
            Ok(Frame::Tcp(ParsedFrame {
                eth: eth_repr,
                src,
                dst,
                ttl_or_hop: ip_repr.ttl,
                ecn: ip_repr.dscp_ecn & ecn::MASK,
                tcp,
                l3: L3::V4,
            }))
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(payload)?;
            let (ip_repr, upper) = Ipv6Repr::parse_with_payload(&ip)?;
            let src = Addr(ip_repr.src_addr);
            let dst = Addr(ip_repr.dst_addr);
            if ip_repr.next_header == IpProtocol::Icmpv6 {
                return Ok(icmp::parse_v6(upper, &src, &dst, verify_checksums)?.map_or(Frame::Other, Frame::TooBig));
            }
            if ip_repr.next_header != IpProtocol::Tcp {
                return Ok(Frame::Other);
            }
            let tcp = TcpPacket::new_checked(upper)?;
            let tcp = TcpRepr::parse(&tcp, &src, &dst, verify_checksums)?;
            Ok(Frame::Tcp(ParsedFrame {
                eth: eth_repr,
                src,
                dst,
                ttl_or_hop: ip_repr.hop_limit,
                ecn: ip_repr.traffic_class & ecn::MASK,
                tcp,
                l3: L3::V6,
            }))
        }
        EtherType::Arp => {
            let arp = ArpPacket::new_checked(payload)?;
            Ok(Frame::Arp(ArpRepr::parse(&arp)?))
        }
        EtherType::Vlan | EtherType::Unknown(_) => Ok(Frame::Other),
    }
}

/// Length of the frame [`emit_tcp_frame`] writes for `tcp` (padding to
/// [`MIN_FRAME_LEN`] included).
pub fn tcp_frame_len(vlan: Option<u16>, l3: L3, tcp: &TcpRepr) -> usize {
    frame_len(vlan, l3, tcp.buffer_len()).max(MIN_FRAME_LEN)
}

#[inline(always)]
fn frame_len(vlan: Option<u16>, l3: L3, tcp_len: usize) -> usize {
    let eth = if vlan.is_some() { ethernet::VLAN_HEADER_LEN } else { ethernet::HEADER_LEN };
    eth + l3.header_len() + tcp_len
}

/// Writes Ethernet (with an 802.1Q tag if `vlan`), an IPv4 or IPv6 header
/// (by the family of `src` and `dst`; TTL / hop limit 64, DF set) and the
/// TCP segment with both checksums. Returns the frame's length, zero-padded
/// to [`MIN_FRAME_LEN`]. `Truncated` if `buf` is too small, `MixedFamily`
/// if the addresses differ in family, `BadTotalLen` if the segment does not
/// fit an IP length field.
pub fn emit_tcp_frame(
    buf: &mut [u8],
    eth_src: MacAddr,
    eth_dst: MacAddr,
    vlan: Option<u16>,
    src: Addr,
    dst: Addr,
    tcp: &TcpRepr,
) -> Result<usize> {
    if let (None, Some(s), Some(d)) = (vlan, src.as_v4(), dst.as_v4()) {
        return emit_v4(buf, eth_src, eth_dst, s, d, tcp);
    }
    emit_any(buf, eth_src, eth_dst, vlan, src, dst, tcp)
}

/// [`emit_tcp_frame`] with the payload written in place by `fill` (given
/// exactly `payload_len` bytes of the frame) instead of copied from
/// `tcp.payload`, which must be empty: a sender whose bytes sit in a ring
/// writes them straight into the TX frame, with no staging buffer.
#[allow(clippy::too_many_arguments)]
pub fn emit_tcp_frame_with(
    buf: &mut [u8],
    eth_src: MacAddr,
    eth_dst: MacAddr,
    vlan: Option<u16>,
    src: Addr,
    dst: Addr,
    tcp: &TcpRepr,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<usize> {
    debug_assert!(tcp.payload.is_empty(), "the payload comes from `fill`");
    if let (None, Some(s), Some(d)) = (vlan, src.as_v4(), dst.as_v4()) {
        return emit_v4_with(buf, eth_src, eth_dst, s, d, tcp, payload_len, fill);
    }
    // IPv6 and tagged frames: stage the payload (not the hot path), zeroing
    // only the bytes used.
    const STAGE: usize = 9216;
    if payload_len > STAGE {
        return Err(Error::BadTotalLen);
    }
    let mut staged = core::mem::MaybeUninit::<[u8; STAGE]>::uninit();
    // SAFETY: the first `payload_len` bytes are zeroed before the slice over
    // them is made, so it covers initialised memory only.
    let p = unsafe {
        let base = staged.as_mut_ptr() as *mut u8;
        core::ptr::write_bytes(base, 0, payload_len);
        core::slice::from_raw_parts_mut(base, payload_len)
    };
    fill(p);
    emit_any(buf, eth_src, eth_dst, vlan, src, dst, &TcpRepr { payload: p, ..*tcp })
}

/// [`emit_tcp_frame`] for untagged IPv4, the SYN-ACK and reply path: every
/// header written at its fixed offset, and the TCP checksum summed in one
/// pass over the IP addresses (the pseudo-header's) and the segment, which
/// follow each other in the frame. Byte-identical to [`emit_any`] (tested).
#[inline]
fn emit_v4(
    buf: &mut [u8],
    eth_src: MacAddr,
    eth_dst: MacAddr,
    src: [u8; 4],
    dst: [u8; 4],
    t: &TcpRepr,
) -> Result<usize> {
    let payload = t.payload;
    emit_v4_with(buf, eth_src, eth_dst, src, dst, t, payload.len(), |p| p.copy_from_slice(payload))
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn emit_v4_with(
    buf: &mut [u8],
    eth_src: MacAddr,
    eth_dst: MacAddr,
    src: [u8; 4],
    dst: [u8; 4],
    t: &TcpRepr,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<usize> {
    const ETH: usize = ethernet::HEADER_LEN;
    const IP: usize = ipv4::HEADER_LEN;
    const TCP: usize = ETH + IP;
    let hl = t.header_len();
    let tcp_len = hl + payload_len;
    if tcp_len > u16::MAX as usize - IP {
        return Err(Error::BadTotalLen);
    }
    let len = TCP + tcp_len;
    let padded = len.max(MIN_FRAME_LEN);
    let Some(buf) = buf.get_mut(..padded) else {
        return Err(Error::Truncated);
    };
    buf[0..6].copy_from_slice(&eth_dst.0);
    buf[6..12].copy_from_slice(&eth_src.0);
    buf[12..14].copy_from_slice(&EtherType::Ipv4.to_u16().to_be_bytes());
    let ip = &mut buf[ETH..TCP];
    // Version 4, IHL 5, DSCP/ECN 0, total length, ID 0, DF, TTL, protocol.
    ip[0] = 0x45;
    ip[1] = 0;
    write_u16(ip, 2, (IP + tcp_len) as u16);
    ip[4..8].copy_from_slice(&[0, 0, 0x40, 0]);
    ip[8] = DEFAULT_HOP_LIMIT;
    ip[9] = tcp::PROTOCOL;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    // The header checksum from the fields themselves: the constant words
    // (0x4500, ID 0, DF, TTL | protocol), the length and the addresses.
    let words = |a: [u8; 4]| u16::from_be_bytes([a[0], a[1]]) as u64 + u16::from_be_bytes([a[2], a[3]]) as u64;
    let sum = 0x4500
        + 0x4000
        + ((DEFAULT_HOP_LIMIT as u64) << 8 | tcp::PROTOCOL as u64)
        + (IP + tcp_len) as u64
        + words(src)
        + words(dst);
    write_u16(ip, 10, checksum::finish(checksum::fold(sum)));
    // Header and options only: the payload (if any) comes from `fill`.
    t.emit_header(&mut buf[TCP..TCP + hl]);
    if payload_len > 0 {
        fill(&mut buf[TCP + hl..len]);
    }
    let sum = checksum::data(&buf[ETH + 12..len]) as u64 + tcp::PROTOCOL as u64 + tcp_len as u64;
    write_u16(buf, TCP + 16, checksum::finish(checksum::fold(sum)));
    if len < padded {
        buf[len..].fill(0);
    }
    Ok(padded)
}

/// Every frame shape, through the `Repr`s.
pub(crate) fn emit_any(
    buf: &mut [u8],
    eth_src: MacAddr,
    eth_dst: MacAddr,
    vlan: Option<u16>,
    src: Addr,
    dst: Addr,
    tcp: &TcpRepr,
) -> Result<usize> {
    let l3 = match (src.is_v4(), dst.is_v4()) {
        (true, true) => L3::V4,
        (false, false) => L3::V6,
        _ => return Err(Error::MixedFamily),
    };
    let tcp_len = tcp.buffer_len();
    if tcp_len > u16::MAX as usize - if l3 == L3::V4 { ipv4::HEADER_LEN } else { 0 } {
        return Err(Error::BadTotalLen);
    }
    let len = frame_len(vlan, l3, tcp_len);
    let padded = len.max(MIN_FRAME_LEN);
    let Some(buf) = buf.get_mut(..padded) else {
        return Err(Error::Truncated);
    };

    let eth = EthernetRepr {
        src_addr: eth_src,
        dst_addr: eth_dst,
        ethertype: match l3 {
            L3::V4 => EtherType::Ipv4,
            L3::V6 => EtherType::Ipv6,
        },
        vlan,
    };
    let eth_len = eth.header_len();
    let (eth_buf, rest) = buf.split_at_mut(eth_len);
    eth.emit(&mut EthernetFrame::new_unchecked(eth_buf));
    let (ip_buf, rest) = rest.split_at_mut(l3.header_len());
    match l3 {
        L3::V4 => Ipv4Repr {
            src_addr: [src.0[12], src.0[13], src.0[14], src.0[15]],
            dst_addr: [dst.0[12], dst.0[13], dst.0[14], dst.0[15]],
            protocol: IpProtocol::Tcp,
            payload_len: tcp_len,
            ttl: DEFAULT_HOP_LIMIT,
            dscp_ecn: 0,
        }
        .emit(&mut Ipv4Packet::new_unchecked(ip_buf)),
        L3::V6 => Ipv6Repr {
            src_addr: src.0,
            dst_addr: dst.0,
            next_header: IpProtocol::Tcp,
            payload_len: tcp_len,
            hop_limit: DEFAULT_HOP_LIMIT,
            traffic_class: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(ip_buf)),
    }
    let (tcp_buf, pad) = rest.split_at_mut(tcp_len);
    tcp.emit(&mut TcpPacket::new_unchecked(tcp_buf), &src, &dst);
    pad.fill(0);
    Ok(padded)
}

#[cfg(test)]
mod tests {
    use super::super::{Control, SeqNumber, TcpOptions};
    use super::*;

    const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const SERVER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const CLIENT: Addr = Addr::v4([198, 18, 0, 2]);
    const SERVER: Addr = Addr::v4([198, 18, 0, 1]);

    /// A Linux client's SYN to port 80: MSS 1460, SACK-Permitted, TS, NOP, WS 7
    /// (IP ID 0, DF), checksums computed independently of this crate.
    #[rustfmt::skip]
    pub(crate) const SYN_FRAME: [u8; 74] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x08, 0x00, 0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06,
        0xae, 0x94, 0xc6, 0x12, 0x00, 0x02, 0xc6, 0x12, 0x00, 0x01, 0x9c, 0x40,
        0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02,
        0xfa, 0xf0, 0x79, 0x5b, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02,
        0x08, 0x0a, 0x00, 0x0f, 0x42, 0x40, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03,
        0x03, 0x07,
    ];

    /// The server's SYN-ACK to it: ISS 0xabcdef01, window 65535, MSS 1460,
    /// SACK-Permitted, TS (1, echoing 1000000), NOP, WS 9.
    #[rustfmt::skip]
    const SYN_ACK_FRAME: [u8; 74] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x08, 0x00, 0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06,
        0xae, 0x94, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x02, 0x00, 0x50,
        0x9c, 0x40, 0xab, 0xcd, 0xef, 0x01, 0x12, 0x34, 0x56, 0x79, 0xa0, 0x12,
        0xff, 0xff, 0xd9, 0x68, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02,
        0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0f, 0x42, 0x40, 0x01, 0x03,
        0x03, 0x09,
    ];

    fn syn_ack_repr() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 80,
            dst_port: 40000,
            control: Control::SYN | Control::ACK,
            seq_number: SeqNumber(0xabcdef01),
            ack_number: Some(SeqNumber(0x12345679)),
            window_len: 65535,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(9),
                sack_permitted: true,
                timestamp: Some((1, 1_000_000)),
                ..TcpOptions::NONE
            },
            payload: &[],
        }
    }

    fn tcp_of(f: Frame) -> ParsedFrame {
        match f {
            Frame::Tcp(p) => p,
            other => panic!("not TCP: {other:?}"),
        }
    }

    /// Fixes the IPv4 header and TCP checksums of an untagged IPv4 frame
    /// after a test edited it.
    fn refill_v4_checksums(f: &mut [u8]) {
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.fill_checksum();
        let (hl, total) = (ip.header_len(), ip.total_len() as usize);
        let (s, d) = (Addr::v4(ip.src_addr()), Addr::v4(ip.dst_addr()));
        TcpPacket::new_unchecked(&mut f[14 + hl..14 + total]).fill_checksum(&s, &d);
    }

    #[test]
    fn linux_syn_then_syn_ack_byte_for_byte() {
        let p = tcp_of(parse_tcp_frame(&SYN_FRAME, true).unwrap());
        assert_eq!(p.eth.src_addr, CLIENT_MAC);
        assert_eq!(p.eth.dst_addr, SERVER_MAC);
        assert_eq!(p.eth.vlan, None);
        assert_eq!((p.src, p.dst, p.l3, p.ttl_or_hop), (CLIENT, SERVER, L3::V4, 64));
        assert_eq!(p.tcp.control, Control::SYN);
        assert_eq!(p.tcp.options.mss, Some(1460));
        assert_eq!(p.tcp.options.window_scale, Some(7));
        assert!(p.tcp.options.sack_permitted);
        assert_eq!(p.tcp.options.timestamp, Some((1_000_000, 0)));
        assert_eq!(p.tuple().local().to_string(), "198.18.0.1:80");
        assert_eq!(p.tuple().remote().to_string(), "198.18.0.2:40000");

        let reply = syn_ack_repr();
        assert_eq!(tcp_frame_len(None, L3::V4, &reply), 74);
        let mut buf = [0xa5u8; 128];
        let n = emit_tcp_frame(&mut buf, SERVER_MAC, CLIENT_MAC, None, SERVER, CLIENT, &reply).unwrap();
        assert_eq!(&buf[..n], &SYN_ACK_FRAME[..]);
        assert_eq!(buf[n], 0xa5);
    }

    #[test]
    fn round_trip_v4_v6_vlan_with_payload() {
        let v6_client = Addr("2001:db8::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        let v6_server = Addr("2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        let data = TcpRepr {
            control: Control::ACK | Control::PSH,
            options: TcpOptions {
                timestamp: Some((5, 6)),
                sack_blocks: [Some((SeqNumber(1), SeqNumber(2))), None, None, None],
                ..TcpOptions::NONE
            },
            payload: b"GET / HTTP/1.1\r\n\r\n",
            ..syn_ack_repr()
        };
        for (src, dst, l3) in [(SERVER, CLIENT, L3::V4), (v6_server, v6_client, L3::V6)] {
            for vlan in [None, Some(100)] {
                for tcp in [syn_ack_repr(), data] {
                    let mut buf = [0xa5u8; 256];
                    let n = emit_tcp_frame(&mut buf, SERVER_MAC, CLIENT_MAC, vlan, src, dst, &tcp).unwrap();
                    assert_eq!(n, tcp_frame_len(vlan, l3, &tcp));
                    assert_eq!(buf[n], 0xa5);
                    let p = tcp_of(parse_tcp_frame(&buf[..n], true).unwrap());
                    assert_eq!(p.eth.vlan, vlan);
                    assert_eq!((p.src, p.dst, p.l3, p.ttl_or_hop), (src, dst, l3, 64));
                    assert_eq!(p.tcp, tcp);
                }
            }
        }
    }

    /// RFC 3168 §5: the ECN field changes the IPv4 header checksum (the
    /// incremental update must equal a full recomputation), not the TCP
    /// checksum; IPv6 has no header checksum. Parsed back with checksums
    /// verified, in every frame shape.
    #[test]
    fn ecn_field_set_and_parsed_with_valid_checksums() {
        let v6_client = Addr("2001:db8::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        let v6_server = Addr("2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        let data = TcpRepr { control: Control::ACK | Control::PSH, payload: b"0123456789", ..syn_ack_repr() };
        for (src, dst) in [(SERVER, CLIENT), (v6_server, v6_client)] {
            for vlan in [None, Some(100)] {
                let mut orig = [0u8; 256];
                let n = emit_tcp_frame(&mut orig, SERVER_MAC, CLIENT_MAC, vlan, src, dst, &data).unwrap();
                assert_eq!(tcp_of(parse_tcp_frame(&orig[..n], true).unwrap()).ecn, ecn::NOT_ECT);
                for cp in [ecn::ECT0, ecn::ECT1, ecn::CE, ecn::NOT_ECT] {
                    let mut f = orig;
                    assert!(set_ecn(&mut f[..n], cp));
                    let p = tcp_of(parse_tcp_frame(&f[..n], true).unwrap());
                    assert_eq!((p.ecn, p.tcp), (cp, data), "{src:?} {vlan:?} {cp}");
                    assert_eq!(ecn_of(&f[..n]), Some(cp));
                    let ip = if vlan.is_some() { 18 } else { 14 };
                    if src.is_v4() {
                        assert_eq!(f[ip + 1], cp, "DSCP 0, ECN {cp}");
                        let mut full = f;
                        Ipv4Packet::new_unchecked(&mut full[ip..n]).fill_checksum();
                        assert_eq!(f[..n], full[..n], "incremental = full checksum");
                        if cp != ecn::NOT_ECT {
                            assert_ne!(f[ip + 10..ip + 12], orig[ip + 10..ip + 12], "the header checksum moved");
                        }
                    } else {
                        assert_eq!(Ipv6Packet::new_unchecked(&f[ip..n]).traffic_class(), cp);
                    }
                    // Only the ECN bits (and the IPv4 header checksum) differ.
                    let diff: Vec<usize> = (0..n).filter(|&i| f[i] != orig[i]).collect();
                    assert!(diff.iter().all(|&i| i == ip + 1 || (src.is_v4() && (i == ip + 10 || i == ip + 11))));
                    if cp == ecn::NOT_ECT {
                        assert!(diff.is_empty());
                    }
                }
            }
        }
        let mut arp = [0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!set_ecn(&mut arp, ecn::ECT0));
        assert_eq!(ecn_of(&arp), None);
        assert_eq!(arp[15], 0);
        assert!(!set_ecn(&mut [0x08, 0x00], ecn::ECT0));
    }

    #[test]
    fn short_frames_are_padded_and_padding_ignored() {
        let rst = TcpRepr { control: Control::RST, ack_number: None, options: TcpOptions::NONE, ..syn_ack_repr() };
        let mut buf = [0xa5u8; 64];
        let n = emit_tcp_frame(&mut buf, SERVER_MAC, CLIENT_MAC, None, SERVER, CLIENT, &rst).unwrap();
        assert_eq!(n, 60);
        assert_eq!(&buf[54..60], &[0; 6]);
        assert_eq!(tcp_of(parse_tcp_frame(&buf[..n], true).unwrap()).tcp, rst);
    }

    #[test]
    fn emit_errors() {
        let r = syn_ack_repr();
        let mut small = [0u8; 73];
        assert_eq!(emit_tcp_frame(&mut small, SERVER_MAC, CLIENT_MAC, None, SERVER, CLIENT, &r), Err(Error::Truncated));
        let v6 = Addr([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let mut buf = [0u8; 128];
        assert_eq!(emit_tcp_frame(&mut buf, SERVER_MAC, CLIENT_MAC, None, SERVER, v6, &r), Err(Error::MixedFamily));
    }

    #[test]
    fn vlan_tagged_frame_parses() {
        let mut f = [0u8; 78];
        f[..12].copy_from_slice(&SYN_FRAME[..12]);
        f[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        f[16..].copy_from_slice(&SYN_FRAME[12..]);
        let p = tcp_of(parse_tcp_frame(&f, true).unwrap());
        assert_eq!(p.eth.vlan, Some(100));
        assert_eq!(p.eth.ethertype, EtherType::Ipv4);
        assert_eq!(p.tcp.seq_number, SeqNumber(0x12345678));
    }

    #[test]
    fn ipv6_with_hop_by_hop_parses_and_fragment_is_dropped() {
        let s = Addr([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let d = Addr([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let tcp = TcpRepr { payload: b"x", ..syn_ack_repr() };
        let mut plain = [0u8; 128];
        let n = emit_tcp_frame(&mut plain, CLIENT_MAC, SERVER_MAC, None, s, d, &tcp).unwrap();

        // Insert an 8-byte Hop-by-Hop header (PadN) between IPv6 and TCP.
        let mut f = Vec::new();
        f.extend_from_slice(&plain[..54]);
        f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&plain[54..n]);
        f[14 + 6] = 0; // next header: Hop-by-Hop
        let plen = u16::from_be_bytes([f[18], f[19]]) + 8;
        f[18..20].copy_from_slice(&plen.to_be_bytes());
        let p = tcp_of(parse_tcp_frame(&f, true).unwrap());
        assert_eq!(p.l3, L3::V6);
        assert_eq!(p.tcp, tcp);

        f[14 + 6] = 44; // a Fragment header instead
        assert_eq!(parse_tcp_frame(&f, true), Err(Error::Fragment));
        f[14 + 6] = 50; // ESP
        assert_eq!(parse_tcp_frame(&f, true), Err(Error::Ipv6ExtHeader));
        f[14 + 6] = 58; // ICMPv6 (type 6): not a "too big" error, not ours
        assert_eq!(parse_tcp_frame(&f, true), Ok(Frame::Other));
    }

    #[test]
    fn arp_and_other_frames() {
        let mut f = [0u8; 60];
        f[..6].copy_from_slice(&MacAddr::BROADCAST.0);
        f[6..12].copy_from_slice(&CLIENT_MAC.0);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        let req = ArpRepr {
            operation: super::super::ArpOperation::Request,
            source_hardware_addr: CLIENT_MAC,
            source_protocol_addr: [198, 18, 0, 2],
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: [198, 18, 0, 1],
        };
        req.emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
        assert_eq!(parse_tcp_frame(&f, true), Ok(Frame::Arp(req)));
        f[15] = 6; // hardware type 0x0106
        assert_eq!(parse_tcp_frame(&f, true), Err(Error::BadArp));

        f[12..14].copy_from_slice(&[0x88, 0xcc]); // LLDP
        assert_eq!(parse_tcp_frame(&f, true), Ok(Frame::Other));

        let mut udp = SYN_FRAME;
        udp[23] = 17;
        refill_v4_checksums(&mut udp);
        assert_eq!(parse_tcp_frame(&udp, true), Ok(Frame::Other));
    }

    #[test]
    fn malformed_frames() {
        let check = |f: &[u8], e: Error| assert_eq!(parse_tcp_frame(f, true), Err(e), "{e:?}");
        check(&SYN_FRAME[..13], Error::Truncated);
        check(&SYN_FRAME[..33], Error::Truncated);
        // Total length past the end of the frame.
        check(&SYN_FRAME[..73], Error::BadTotalLen);

        let mut f = SYN_FRAME;
        f[14] = 0x44;
        check(&f, Error::BadHeaderLen);

        let mut f = SYN_FRAME;
        f[22] = 1; // TTL changed, checksum not
        check(&f, Error::BadIpChecksum);
        assert!(parse_tcp_frame(&f, false).is_ok());

        let mut f = SYN_FRAME;
        f[73] ^= 0x01;
        check(&f, Error::BadTcpChecksum);
        assert!(parse_tcp_frame(&f, false).is_ok());

        let mut f = SYN_FRAME;
        f[20] = 0x20; // MF
        refill_v4_checksums(&mut f);
        check(&f, Error::Fragment);

        // A TCP header cut short by the IP total length.
        let mut f = SYN_FRAME;
        f[16..18].copy_from_slice(&(20u16 + 19).to_be_bytes());
        Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
        check(&f, Error::Truncated);

        let mut f = SYN_FRAME;
        f[46] = 0x40; // data offset 4
        refill_v4_checksums(&mut f);
        check(&f, Error::BadDataOffset);
        f[46] = 0xf0; // data offset 15: past the end
        check(&f, Error::BadDataOffset);

        let mut f = SYN_FRAME;
        f[55] = 0; // MSS option length 0
        refill_v4_checksums(&mut f);
        check(&f, Error::BadOption);

        let mut f = SYN_FRAME;
        f[71] = 4; // WS option length running past the header
        refill_v4_checksums(&mut f);
        check(&f, Error::BadOption);

        // SACK option with a bad length in place of the timestamp.
        let mut f = SYN_FRAME;
        f[60..62].copy_from_slice(&[5, 9]);
        refill_v4_checksums(&mut f);
        check(&f, Error::BadOption);

        let mut f = SYN_FRAME;
        f[14] = 0x65;
        Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
        check(&f, Error::BadVersion);
    }
}
