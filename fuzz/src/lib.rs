//! Helpers shared by the fuzz targets.
//!
//! Checksums: a mutated frame almost always fails its IPv4 or TCP checksum
//! and dies at the first check, hiding everything behind it from the fuzzer
//! (rust-fuzz/targets#125). Rather than a `cfg(fuzzing)` switch in the
//! engine, the targets write correct checksums into their input before
//! handing it over ([`fix_checksums`]), so the engine runs unchanged.

use floodgate::flow::Addr;
use floodgate::wire::{checksum, EtherType, EthernetFrame, Ipv6Packet, Ipv6Repr};

const TCP: u8 = 6;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// Writes correct IPv4 header, TCP and ICMP (v4 and v6: the engine checks
/// those of "fragmentation needed" and "packet too big") checksums into
/// `frame` where its layers can be found (Ethernet, optional VLAN tag,
/// IPv4 with any IHL and a total length within the frame, or IPv6 whose
/// extension-header walk the engine accepts; TCP of at least 20 bytes,
/// ICMP of at least 8). Returns whether it did,
/// so that the engine then must agree that the checksums are good.
pub fn fix_checksums(frame: &mut [u8]) -> bool {
    let (ethertype, l3_at) = match EthernetFrame::new_checked(&*frame) {
        Ok(eth) => (eth.ethertype(), eth.header_len()),
        Err(_) => return false,
    };
    match ethertype {
        EtherType::Ipv4 => {
            let ip = &mut frame[l3_at..];
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return false;
            }
            let ihl = (ip[0] & 0xf) as usize * 4;
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            if ihl < 20 || ihl > total || total > ip.len() {
                return false;
            }
            ip[10..12].fill(0);
            let c = checksum::finish(checksum::data(&ip[..ihl]));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            if ip[9] == ICMP {
                return fix_icmp(&mut ip[ihl..total], None);
            }
            if ip[9] != TCP {
                return true;
            }
            let src = Addr::v4([ip[12], ip[13], ip[14], ip[15]]);
            let dst = Addr::v4([ip[16], ip[17], ip[18], ip[19]]);
            fix_tcp(&mut ip[ihl..total], &src, &dst)
        }
        EtherType::Ipv6 => {
            let (src, dst, next, upper_at, upper_len) = {
                let Ok(p) = Ipv6Packet::new_checked(&frame[l3_at..]) else { return false };
                let Ok((repr, upper)) = Ipv6Repr::parse_with_payload(&p) else { return false };
                let at = upper.as_ptr() as usize - frame.as_ptr() as usize;
                (Addr(repr.src_addr), Addr(repr.dst_addr), u8::from(repr.next_header), at, upper.len())
            };
            let upper = &mut frame[upper_at..upper_at + upper_len];
            match next {
                TCP => fix_tcp(upper, &src, &dst),
                ICMPV6 => fix_icmp(upper, Some((&src, &dst))),
                _ => false,
            }
        }
        _ => false,
    }
}

/// The ICMP checksum (at offset 2); ICMPv6's covers a pseudo-header of
/// the packet's `addrs`.
fn fix_icmp(msg: &mut [u8], addrs: Option<(&Addr, &Addr)>) -> bool {
    if msg.len() < 8 {
        return false;
    }
    msg[2..4].fill(0);
    let sum = match addrs {
        None => checksum::data(msg),
        Some((src, dst)) => {
            checksum::combine(&[checksum::pseudo_header(src, dst, ICMPV6, msg.len() as u32), checksum::data(msg)])
        }
    };
    let c = checksum::finish(sum);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

fn fix_tcp(seg: &mut [u8], src: &Addr, dst: &Addr) -> bool {
    if seg.len() < 20 {
        return false;
    }
    seg[16..18].fill(0);
    let ph = checksum::pseudo_header(src, dst, TCP, seg.len() as u32);
    let c = checksum::finish(checksum::combine(&[ph, checksum::data(seg)]));
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    true
}
