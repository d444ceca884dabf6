//! A glance at a received frame's 4-tuple, for prefetching only.
//!
//! The shard looks at a whole RX burst before handling any of it, to start
//! the table loads of every frame at once (see `tcp::Endpoint::prefetch`).
//! That look reads the Ethernet header (IEEE 802.1Q tag allowed), the fixed
//! IPv4 (RFC 791 §3.1) or IPv6 (RFC 8200 §3) header and the TCP ports and
//! flags (RFC 9293 §3.1), with bounds checks and nothing else: no checksum,
//! no option, no extension header. A wrong answer costs a useless prefetch,
//! never a wrong decision; the real parse (`frame::parse_tcp_frame`) decides.

use super::read_u16;
use crate::flow::{Addr, FourTuple};

/// The tuple as the receiver names it (local = destination) and the TCP
/// flags byte, or `None` when the frame is not plain TCP over IP.
#[inline(always)]
pub fn peek_tuple(f: &[u8]) -> Option<(FourTuple, u8)> {
    let (mut l3, mut ethertype) = (14, read_u16(f.get(..14)?, 12));
    if ethertype == 0x8100 {
        ethertype = read_u16(f.get(..18)?, 16);
        l3 = 18;
    }
    let (local_addr, remote_addr, l4) = match ethertype {
        0x0800 => {
            let ip = f.get(l3..l3 + 20)?;
            if ip[0] >> 4 != 4 || ip[9] != 6 {
                return None;
            }
            let src: [u8; 4] = ip[12..16].try_into().ok()?;
            let dst: [u8; 4] = ip[16..20].try_into().ok()?;
            (Addr::v4(dst), Addr::v4(src), l3 + (ip[0] & 0x0f) as usize * 4)
        }
        0x86dd => {
            let ip = f.get(l3..l3 + 40)?;
            if ip[6] != 6 {
                return None;
            }
            let src: [u8; 16] = ip[8..24].try_into().ok()?;
            let dst: [u8; 16] = ip[24..40].try_into().ok()?;
            (Addr(dst), Addr(src), l3 + 40)
        }
        _ => return None,
    };
    let tcp = f.get(l4..l4 + 14)?;
    let t = FourTuple { local_addr, remote_addr, local_port: read_u16(tcp, 2), remote_port: read_u16(tcp, 0) };
    Some((t, tcp[13]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        emit_tcp_frame, frame::parse_tcp_frame, Control, Frame, MacAddr, SeqNumber, TcpOptions, TcpRepr,
    };

    fn frame(src: Addr, dst: Addr, vlan: Option<u16>) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: 40_000,
            dst_port: 80,
            control: Control(Control::SYN.0),
            seq_number: SeqNumber(7),
            ack_number: None,
            window_len: 1000,
            urgent: 0,
            options: TcpOptions { mss: Some(1460), ..TcpOptions::NONE },
            payload: &[],
        };
        let mut b = vec![0u8; 256];
        let n = emit_tcp_frame(&mut b, MacAddr([2; 6]), MacAddr([4; 6]), vlan, src, dst, &repr).unwrap();
        b.truncate(n);
        b
    }

    #[test]
    fn agrees_with_the_parser_for_both_families_tagged_or_not() {
        let v4 = (Addr::v4([198, 18, 0, 10]), Addr::v4([198, 18, 0, 1]));
        let v6 = (Addr("2001:db8::10".parse::<std::net::Ipv6Addr>().unwrap().octets()), Addr([0x20; 16]));
        for (src, dst) in [v4, v6] {
            for vlan in [None, Some(42)] {
                let f = frame(src, dst, vlan);
                let Ok(Frame::Tcp(p)) = parse_tcp_frame(&f, true) else { panic!("a valid frame") };
                let (t, flags) = peek_tuple(&f).expect("a TCP frame");
                assert_eq!((t.local_addr, t.remote_addr), (p.dst, p.src));
                assert_eq!(
                    (t.local_port, t.remote_port, flags),
                    (p.tcp.dst_port, p.tcp.src_port, p.tcp.control.bits())
                );
            }
        }
    }

    #[test]
    fn never_reads_past_the_frame() {
        let f = frame(Addr::v4([198, 18, 0, 10]), Addr::v4([198, 18, 0, 1]), Some(7));
        for n in 0..f.len() {
            let _ = peek_tuple(&f[..n]);
        }
        assert!(peek_tuple(&f[..20]).is_none());
        let mut arp = f.clone();
        arp[16..18].copy_from_slice(&[0x08, 0x06]);
        assert!(peek_tuple(&arp).is_none());
    }
}
