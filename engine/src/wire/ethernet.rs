//! Ethernet II frames (IEEE 802.3 §3.2, RFC 894) with one optional IEEE
//! 802.1Q VLAN tag (§9.6: TPID 0x8100, then PCP/DEI/VID).
//!
//! The view works on frames without preamble and FCS, as AF_XDP delivers
//! them. A tagged frame's header is 18 bytes and [`EthernetFrame::ethertype`]
//! is the inner EtherType; a second tag (Q-in-Q) is not walked and shows up
//! as an unknown inner EtherType.

use super::{read_u16, write_u16, Error, Result};
use core::fmt;

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }
    /// The I/G bit (broadcast included).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The EtherTypes the engine distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    Vlan,
    Unknown(u16),
}

impl EtherType {
    pub const fn from_u16(v: u16) -> EtherType {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
    pub const fn to_u16(self) -> u16 {
        match self {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::Unknown(v) => v,
        }
    }
}

impl From<u16> for EtherType {
    fn from(v: u16) -> EtherType {
        EtherType::from_u16(v)
    }
}
impl From<EtherType> for u16 {
    fn from(t: EtherType) -> u16 {
        t.to_u16()
    }
}

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    /// EtherType, or TPID when tagged.
    pub const ETHERTYPE: usize = 12;
    /// Tag control information (PCP, DEI, VID) when tagged.
    pub const VLAN_TCI: usize = 14;
    /// Inner EtherType when tagged.
    pub const VLAN_ETHERTYPE: usize = 16;
    pub const HEADER_LEN: usize = 14;
    pub const VLAN_HEADER_LEN: usize = 18;
}

pub const HEADER_LEN: usize = field::HEADER_LEN;
pub const VLAN_HEADER_LEN: usize = field::VLAN_HEADER_LEN;
const TPID_8021Q: u16 = 0x8100;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after checking it holds the whole header (18 bytes if
    /// the frame carries an 802.1Q tag).
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if read_u16(b, field::ETHERTYPE) == TPID_8021Q && b.len() < field::VLAN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> MacAddr {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        MacAddr(a)
    }

    pub fn src_addr(&self) -> MacAddr {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        MacAddr(a)
    }

    /// The outer EtherType field (0x8100 when tagged).
    pub fn outer_ethertype(&self) -> EtherType {
        EtherType::from_u16(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    pub fn is_tagged(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE) == TPID_8021Q
    }

    /// The VLAN ID (12 bits) of an 802.1Q tag, if present.
    pub fn vlan_id(&self) -> Option<u16> {
        if self.is_tagged() {
            Some(read_u16(self.buffer.as_ref(), field::VLAN_TCI) & 0x0fff)
        } else {
            None
        }
    }

    /// The EtherType of the payload (the inner one when tagged).
    pub fn ethertype(&self) -> EtherType {
        let b = self.buffer.as_ref();
        if self.is_tagged() {
            EtherType::from_u16(read_u16(b, field::VLAN_ETHERTYPE))
        } else {
            EtherType::from_u16(read_u16(b, field::ETHERTYPE))
        }
    }

    /// 14, or 18 with a VLAN tag.
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            field::VLAN_HEADER_LEN
        } else {
            field::HEADER_LEN
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// The bytes after the header (possibly with trailing padding; the IP
    /// length fields say where the datagram ends).
    pub fn payload(&self) -> &'a [u8] {
        let hl = self.header_len();
        &self.buffer.as_ref()[hl..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a.0);
    }

    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a.0);
    }

    /// Writes the EtherType / tag fields; the buffer must hold 14 bytes, or
    /// 18 when `vlan` is set.
    pub fn set_ethertype_and_vlan(&mut self, ethertype: EtherType, vlan: Option<u16>) {
        let b = self.buffer.as_mut();
        match vlan {
            Some(vid) => {
                write_u16(b, field::ETHERTYPE, TPID_8021Q);
                write_u16(b, field::VLAN_TCI, vid & 0x0fff);
                write_u16(b, field::VLAN_ETHERTYPE, ethertype.to_u16());
            }
            None => write_u16(b, field::ETHERTYPE, ethertype.to_u16()),
        }
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// A parsed Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    pub src_addr: MacAddr,
    pub dst_addr: MacAddr,
    /// The payload's EtherType (the inner one when tagged).
    pub ethertype: EtherType,
    /// The 802.1Q VLAN ID, if the frame is tagged (PCP and DEI are not kept
    /// and are emitted as zero).
    pub vlan: Option<u16>,
}

impl EthernetRepr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &EthernetFrame<&T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
            vlan: frame.vlan_id(),
        })
    }

    /// 14, or 18 with a VLAN tag.
    pub const fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            field::VLAN_HEADER_LEN
        } else {
            field::HEADER_LEN
        }
    }

    pub const fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Writes the header; the buffer must hold [`EthernetRepr::header_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype_and_vlan(self.ethertype, self.vlan);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const DST: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);

    #[test]
    fn mac_display() {
        assert_eq!(MacAddr([0xaa, 0xbb, 0xcc, 0x0d, 0x0e, 0xff]).to_string(), "aa:bb:cc:0d:0e:ff");
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(SRC.is_unicast());
    }

    #[test]
    fn untagged_round_trip() {
        let repr = EthernetRepr { src_addr: SRC, dst_addr: DST, ethertype: EtherType::Ipv4, vlan: None };
        let mut buf = [0xa5u8; 20];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..14], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[0xa5; 6]);
        assert_eq!(EthernetRepr::parse(&f).unwrap(), repr);
    }

    #[test]
    fn vlan_tagged_round_trip() {
        let repr = EthernetRepr { src_addr: SRC, dst_addr: DST, ethertype: EtherType::Ipv6, vlan: Some(42) };
        assert_eq!(repr.header_len(), 18);
        let mut buf = [0xa5u8; 18];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[12..18], &[0x81, 0x00, 0x00, 42, 0x86, 0xdd]);
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.outer_ethertype(), EtherType::Vlan);
        assert_eq!(f.ethertype(), EtherType::Ipv6);
        assert!(f.payload().is_empty());
        assert_eq!(EthernetRepr::parse(&f).unwrap(), repr);
    }

    #[test]
    fn vlan_priority_bits_are_masked_off() {
        let mut buf = [0u8; 18];
        buf[12..18].copy_from_slice(&[0x81, 0x00, 0xe0, 0x07, 0x08, 0x00]);
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.vlan_id(), Some(7));
        assert_eq!(f.ethertype(), EtherType::Ipv4);
    }

    #[test]
    fn truncated() {
        assert_eq!(EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err(), Error::Truncated);
        let mut tagged = [0u8; 17];
        tagged[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(EthernetFrame::new_checked(&tagged[..]).unwrap_err(), Error::Truncated);
    }
}
