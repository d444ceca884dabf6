//! IPv6 fixed header (RFC 8200 §3) and the walk over extension headers
//! (RFC 8200 §4).
//!
//! Hop-by-Hop Options (only first, §4.1), Routing with Segments Left 0
//! (§4.4) and Destination Options (§4.6) are skipped by their Hdr Ext Len,
//! at most [`MAX_EXT_HEADERS`] of them so the work per packet is bounded.
//! A Fragment header (§4.5) is refused (`Fragment`: no reassembly); ESP and
//! AH, a Routing header with segments left, and any header running past the
//! payload are `Ipv6ExtHeader`. Jumbograms (RFC 2675) are not supported.

use super::{read_u16, write_u16, Error, IpProtocol, Result};

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// How many extension headers the walk skips before giving up.
pub const MAX_EXT_HEADERS: usize = 4;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after checking the fixed header and the Payload Length
    /// it announces fit.
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the fixed header does not fit, `BadTotalLen` if the
    /// Payload Length runs past the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if HEADER_LEN + self.payload_len() as usize > len {
            return Err(Error::BadTotalLen);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }
    /// Payload Length: everything after the fixed header, extension headers
    /// included.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    pub fn src_addr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        a
    }
    pub fn dst_addr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        a
    }

    /// Walks the extension headers: the upper-layer protocol and the offset
    /// of its header from the start of the packet.
    pub fn upper_layer(&self) -> Result<(IpProtocol, usize)> {
        let b = self.buffer.as_ref();
        let end = (HEADER_LEN + self.payload_len() as usize).min(b.len());
        let mut next = self.next_header();
        let mut off = HEADER_LEN;
        let mut skipped = 0;
        loop {
            match next {
                IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                    if next == IpProtocol::HopByHop && off != HEADER_LEN {
                        return Err(Error::Ipv6ExtHeader);
                    }
                    if skipped == MAX_EXT_HEADERS {
                        return Err(Error::TooManyExtHeaders);
                    }
                    // Every extension header is at least 8 bytes.
                    if off + 8 > end {
                        return Err(Error::Ipv6ExtHeader);
                    }
                    if next == IpProtocol::Ipv6Route && b[off + 3] != 0 {
                        return Err(Error::Ipv6ExtHeader);
                    }
                    next = IpProtocol::from(b[off]);
                    off += (b[off + 1] as usize + 1) * 8;
                    if off > end {
                        return Err(Error::Ipv6ExtHeader);
                    }
                    skipped += 1;
                }
                IpProtocol::Ipv6Frag => return Err(Error::Fragment),
                IpProtocol::Esp | IpProtocol::Ah => return Err(Error::Ipv6ExtHeader),
                upper => return Ok((upper, off)),
            }
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// Everything after the fixed header up to Payload Length (extension
    /// headers included; Ethernet padding excluded).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Version 6, the traffic class and a zero flow label.
    pub fn set_version_and_traffic_class(&mut self, traffic_class: u8) {
        let b = self.buffer.as_mut();
        b[0] = 0x60 | (traffic_class >> 4);
        b[1] = traffic_class << 4;
        b[2] = 0;
        b[3] = 0;
    }
    pub fn set_payload_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, v)
    }
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = p.into();
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    pub fn set_src_addr(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a)
    }
    pub fn set_dst_addr(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a)
    }
}

/// A parsed IPv6 header, extension headers skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    /// The upper-layer protocol, after the skipped extension headers.
    pub next_header: IpProtocol,
    /// Bytes of upper-layer data (Payload Length minus extension headers).
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
}

impl Ipv6Repr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv6Packet<&T>) -> Result<Ipv6Repr> {
        Self::parse_with_payload(packet).map(|(r, _)| r)
    }

    /// Like [`Ipv6Repr::parse`], also returning the upper-layer bytes (from
    /// the start of, e.g., the TCP header to the end of Payload Length).
    pub fn parse_with_payload<'a, T: AsRef<[u8]> + ?Sized>(packet: &Ipv6Packet<&'a T>) -> Result<(Ipv6Repr, &'a [u8])> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Error::BadVersion);
        }
        let (next_header, off) = packet.upper_layer()?;
        let upper = &packet.payload()[off - HEADER_LEN..];
        let repr = Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header,
            payload_len: upper.len(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
        };
        Ok((repr, upper))
    }

    /// The emitted header's length (no extension headers).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte fixed header (flow label 0). The buffer must hold
    /// 40 bytes and `payload_len` must fit in 16 bits (callers check;
    /// [`super::emit_tcp_frame`] does).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        packet.set_version_and_traffic_class(self.traffic_class);
        packet.set_payload_len(self.payload_len as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    fn repr(payload_len: usize) -> Ipv6Repr {
        Ipv6Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: IpProtocol::Tcp,
            payload_len,
            hop_limit: 64,
            traffic_class: 0xb8,
        }
    }

    /// A packet whose chain is `exts` (each: kind, length in 8-byte units
    /// beyond the first, segments-left byte) then 4 bytes of TCP.
    fn with_exts(exts: &[(u8, u8)]) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_LEN];
        let mut kinds: Vec<u8> = exts.iter().map(|e| e.0).collect();
        kinds.push(6);
        let ext_len: usize = exts.iter().map(|e| (e.1 as usize + 1) * 8).sum();
        let mut r = repr(ext_len + 4);
        r.next_header = IpProtocol::from(kinds[0]);
        r.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        for (i, e) in exts.iter().enumerate() {
            let mut h = vec![0u8; (e.1 as usize + 1) * 8];
            h[0] = kinds[i + 1];
            h[1] = e.1;
            buf.extend_from_slice(&h);
        }
        buf.extend_from_slice(b"tcp!");
        buf
    }

    #[test]
    fn round_trip() {
        let mut buf = [0xa5u8; 44];
        repr(4).emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..8], &[0x6b, 0x80, 0, 0, 0, 4, 6, 64]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.flow_label(), 0);
        let (r, upper) = Ipv6Repr::parse_with_payload(&p).unwrap();
        assert_eq!(r, repr(4));
        assert_eq!(upper, &[0xa5; 4]);
    }

    #[test]
    fn hop_by_hop_and_dest_opts_are_skipped() {
        let buf = with_exts(&[(0, 0), (60, 1)]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.upper_layer().unwrap(), (IpProtocol::Tcp, 40 + 8 + 16));
        let (r, upper) = Ipv6Repr::parse_with_payload(&p).unwrap();
        assert_eq!(r.next_header, IpProtocol::Tcp);
        assert_eq!(r.payload_len, 4);
        assert_eq!(upper, b"tcp!");
    }

    #[test]
    fn routing_header_with_segments_left_is_dropped() {
        let mut buf = with_exts(&[(43, 0)]);
        assert!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&buf[..]).unwrap()).is_ok());
        buf[40 + 3] = 1;
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap_err(), Error::Ipv6ExtHeader);
    }

    #[test]
    fn fragment_esp_ah_and_long_chains() {
        let buf = with_exts(&[(0, 0), (44, 0)]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap_err(), Error::Fragment);
        for kind in [50, 51] {
            let buf = with_exts(&[(kind, 0)]);
            let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(Ipv6Repr::parse(&p).unwrap_err(), Error::Ipv6ExtHeader);
        }
        let buf = with_exts(&[(60, 0); 4]);
        assert!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&buf[..]).unwrap()).is_ok());
        let buf = with_exts(&[(60, 0); 5]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap_err(), Error::TooManyExtHeaders);
        // Hop-by-Hop anywhere but first.
        let buf = with_exts(&[(60, 0), (0, 0)]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap_err(), Error::Ipv6ExtHeader);
    }

    #[test]
    fn non_tcp_upper_layer_is_reported() {
        let mut buf = with_exts(&[]);
        buf[6] = 58;
        let r = Ipv6Repr::parse(&Ipv6Packet::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(r.next_header, IpProtocol::Icmpv6);
    }

    #[test]
    fn malformed() {
        let good = with_exts(&[(0, 1)]);
        assert_eq!(Ipv6Packet::new_checked(&good[..39]).unwrap_err(), Error::Truncated);
        assert_eq!(Ipv6Packet::new_checked(&good[..good.len() - 1]).unwrap_err(), Error::BadTotalLen);

        let mut b = good.clone();
        b[0] = 0x40;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap_err(), Error::BadVersion);

        // Extension header longer than the payload.
        let mut b = good.clone();
        b[41] = 3;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap_err(), Error::Ipv6ExtHeader);

        // Payload too short for even one extension header.
        let mut b = good;
        b[4..6].copy_from_slice(&4u16.to_be_bytes());
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap_err(), Error::Ipv6ExtHeader);
    }
}
