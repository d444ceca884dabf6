//! IPv4 headers (RFC 791 §3.1), checksum per RFC 1071.
//!
//! Options (IHL > 5) are accepted and skipped. Fragments are refused: the
//! engine does no reassembly (RFC 791 §3.2 makes it the receiver's choice to
//! keep them; for a TCP server with MSS clamped to the path they do not
//! occur in normal operation). The datagram ends at Total Length, so the
//! Ethernet padding of short frames is ignored. Emitted headers are 20 bytes
//! with DF set and ID 0 (RFC 6864 §4.1: atomic datagrams may use any ID).

use super::{checksum, read_u16, write_u16, Error, IpProtocol, Result};

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after checking that the header (options included) and
    /// the datagram Total Length covers fit in it.
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the fixed header does not fit, `BadHeaderLen` if IHL <
    /// 5, `Truncated` if the options do not fit, `BadTotalLen` if Total
    /// Length is shorter than the header or longer than the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        let total = self.total_len() as usize;
        if total < hl || total > len {
            return Err(Error::BadTotalLen);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn src_addr(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[12], b[13], b[14], b[15]]
    }
    pub fn dst_addr(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[16], b[17], b[18], b[19]]
    }
    /// Whether the header checksum (options included) verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The datagram's payload: from the end of the options to Total Length.
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        &b[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ((header_len / 4) as u8 & 0x0f);
    }
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }
    pub fn set_total_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, v)
    }
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, v)
    }
    /// Flags and fragment offset (bytes, a multiple of 8).
    pub fn set_flags_and_frag_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let v = if dont_frag { FLAG_DF } else { 0 }
            | if more_frags { FLAG_MF } else { 0 }
            | ((offset >> 3) & FRAG_OFFSET_MASK);
        write_u16(self.buffer.as_mut(), field::FLG_OFF, v)
    }
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into();
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    pub fn set_src_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a)
    }
    pub fn set_dst_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a)
    }
    /// Computes and writes the header checksum over the header (options included).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::finish(checksum::data(&self.buffer.as_ref()[..hl]));
        self.set_checksum(c);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[hl..total]
    }
}

/// A parsed IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src_addr: [u8; 4],
    pub dst_addr: [u8; 4],
    pub protocol: IpProtocol,
    /// Bytes of payload (Total Length minus the header, options included).
    pub payload_len: usize,
    pub ttl: u8,
    /// The DSCP (high 6 bits) and ECN (low 2 bits) byte.
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// Validates version, lengths and (if asked) the header checksum, and
    /// refuses fragments.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&T>, verify_checksum: bool) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error::BadIpChecksum);
        }
        if packet.is_fragment() {
            return Err(Error::Fragment);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() as usize - packet.header_len(),
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
        })
    }

    /// The emitted header's length (no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with DF set, ID 0 and its checksum. The
    /// buffer must hold at least 20 bytes and `payload_len` must be at most
    /// 65515 (callers check; [`super::emit_tcp_frame`] does).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        packet.set_version_and_header_len(4, HEADER_LEN);
        packet.set_dscp_ecn(self.dscp_ecn);
        packet.set_total_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_ident(0);
        packet.set_flags_and_frag_offset(true, false, 0);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.set_checksum(0);
        let c = checksum::finish(checksum::data(&packet.buffer.as_ref()[..HEADER_LEN]));
        packet.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: [198, 18, 0, 2],
            dst_addr: [198, 18, 0, 1],
            protocol: IpProtocol::Tcp,
            payload_len: 8,
            ttl: 64,
            dscp_ecn: 0x02,
        }
    }

    fn emitted() -> [u8; 28] {
        let mut buf = [0xa5u8; 28];
        repr().emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        buf
    }

    #[test]
    fn emit_known_bytes_and_round_trip() {
        let buf = emitted();
        #[rustfmt::skip]
        let expected = [
            0x45, 0x02, 0x00, 28, 0x00, 0x00, 0x40, 0x00, 64, 6, 0xae, 0xb2,
            198, 18, 0, 2, 198, 18, 0, 1,
        ];
        assert_eq!(&buf[..20], &expected);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert!(p.dont_frag());
        assert_eq!(Ipv4Repr::parse(&p, true).unwrap(), repr());
        assert_eq!(p.payload(), &[0xa5; 8]);
    }

    #[test]
    fn options_are_skipped() {
        let mut buf = [0u8; 32];
        buf[..20].copy_from_slice(&emitted()[..20]);
        buf[0] = 0x46; // IHL 6: one word of options (NOPs)
        buf[20..24].copy_from_slice(&[1, 1, 1, 0]);
        buf[2..4].copy_from_slice(&32u16.to_be_bytes());
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum();
        buf[24..32].copy_from_slice(b"payload!");
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        let r = Ipv4Repr::parse(&p, true).unwrap();
        assert_eq!(r.payload_len, 8);
        assert_eq!(p.payload(), b"payload!");
    }

    #[test]
    fn trailing_padding_is_ignored() {
        let mut buf = [0u8; 46];
        buf[..28].copy_from_slice(&emitted());
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
        assert_eq!(Ipv4Repr::parse(&p, true).unwrap().payload_len, 8);
    }

    #[test]
    fn malformed() {
        let good = emitted();
        assert_eq!(Ipv4Packet::new_checked(&good[..19]).unwrap_err(), Error::Truncated);

        let mut b = good;
        b[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadHeaderLen);

        let mut b = good;
        b[0] = 0x4f; // 60-byte header in a 28-byte buffer
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);

        let mut b = good;
        b[2..4].copy_from_slice(&29u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadTotalLen);
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadTotalLen);

        let mut b = good;
        b[0] = 0x65;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p, true).unwrap_err(), Error::BadVersion);

        let mut b = good;
        b[8] = 63; // TTL changed, checksum not
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p, true).unwrap_err(), Error::BadIpChecksum);
        assert!(Ipv4Repr::parse(&p, false).is_ok());
    }

    #[test]
    fn fragments_are_refused() {
        for (mf, off) in [(true, 0), (false, 8), (true, 1480)] {
            let mut b = emitted();
            let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
            p.set_flags_and_frag_offset(false, mf, off);
            p.fill_checksum();
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            assert_eq!(p.frag_offset(), off);
            assert_eq!(Ipv4Repr::parse(&p, true).unwrap_err(), Error::Fragment);
        }
    }
}
