//! Zero-copy packet views and their `Repr`s.
//!
//! Each protocol has a `Packet<T: AsRef<[u8]>>` view over a byte buffer (a
//! private `mod field` of byte ranges, getters on `AsRef`, setters on
//! `AsMut`) and a validated, `Copy` `Repr` with `parse`, `buffer_len` and
//! `emit`. `new_checked` validates lengths once, after which no getter can
//! panic. Nothing here allocates, does I/O or panics on network input: a
//! malformed frame is an [`Error`], one variant per reason, so the engine can
//! keep a counter per kind of drop ([`Error::name`], [`Error::ALL`]).
//!
//! [`frame`] is what the engine calls per packet: [`parse_tcp_frame`] (the
//! Ethernet → IPv4/IPv6 → TCP demux) and [`emit_tcp_frame`].

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod peek;
mod seq;
pub mod tcp;

#[cfg(test)]
mod fuzz_tests;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
pub use frame::{
    ecn, ecn_of, emit_tcp_frame, emit_tcp_frame_with, parse_tcp_frame, set_ecn, tcp_frame_len, Frame, ParsedFrame,
    DEFAULT_HOP_LIMIT, L3, MIN_FRAME_LEN,
};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use seq::SeqNumber;
pub use tcp::{Control, TcpOptions, TcpPacket, TcpRepr, MAX_SACK_BLOCKS};

/// Why a frame was dropped (or could not be emitted).
///
/// Non-IP frames and IP packets that are not TCP are not errors: the demux
/// reports them as [`Frame::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before a fixed-size header does (or, on emit, the
    /// output buffer is too small).
    Truncated,
    /// IP version field does not match the EtherType (4 for 0x0800, 6 for 0x86DD).
    BadVersion,
    /// IPv4 IHL < 5.
    BadHeaderLen,
    /// IP length field below the header length or beyond the received bytes
    /// (or, on emit, a datagram longer than the length field can carry).
    BadTotalLen,
    /// IPv4 header checksum mismatch.
    BadIpChecksum,
    /// TCP checksum mismatch (pseudo-header included).
    BadTcpChecksum,
    /// IPv4 fragment (MF set or offset != 0) or IPv6 Fragment header: the
    /// engine does no reassembly.
    Fragment,
    /// IPv6 extension header the engine does not walk (ESP, AH), or one that
    /// runs past the payload.
    Ipv6ExtHeader,
    /// More IPv6 extension headers than the bounded walk allows.
    TooManyExtHeaders,
    /// TCP data offset < 5 or beyond the segment.
    BadDataOffset,
    /// TCP option with a bad length (0, 1, wrong for its kind, or running
    /// past the header).
    BadOption,
    /// ARP that is not Ethernet/IPv4 request or reply.
    BadArp,
    /// Emit only: source and destination addresses of different families.
    MixedFamily,
    /// ICMP or ICMPv6 checksum mismatch.
    BadIcmpChecksum,
}

impl Error {
    /// Every variant, in declaration order, so metrics can enumerate them.
    pub const ALL: [Error; 14] = [
        Error::Truncated,
        Error::BadVersion,
        Error::BadHeaderLen,
        Error::BadTotalLen,
        Error::BadIpChecksum,
        Error::BadTcpChecksum,
        Error::Fragment,
        Error::Ipv6ExtHeader,
        Error::TooManyExtHeaders,
        Error::BadDataOffset,
        Error::BadOption,
        Error::BadArp,
        Error::MixedFamily,
        Error::BadIcmpChecksum,
    ];

    /// A stable snake_case name for metrics.
    pub const fn name(&self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadVersion => "bad_ip_version",
            Error::BadHeaderLen => "bad_ip_header_len",
            Error::BadTotalLen => "bad_ip_total_len",
            Error::BadIpChecksum => "bad_ip_checksum",
            Error::BadTcpChecksum => "bad_tcp_checksum",
            Error::Fragment => "ip_fragment",
            Error::Ipv6ExtHeader => "ipv6_ext_header",
            Error::TooManyExtHeaders => "ipv6_too_many_ext_headers",
            Error::BadDataOffset => "bad_tcp_data_offset",
            Error::BadOption => "bad_tcp_option",
            Error::BadArp => "bad_arp",
            Error::MixedFamily => "mixed_address_family",
            Error::BadIcmpChecksum => "bad_icmp_checksum",
        }
    }

    /// Position in [`Error::ALL`], for indexing a counter array.
    pub const fn index(&self) -> usize {
        *self as usize
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers / IPv6 next-header values (IANA "Assigned Internet
/// Protocol Numbers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    HopByHop,
    Icmp,
    Tcp,
    Udp,
    Ipv6Route,
    Ipv6Frag,
    Esp,
    Ah,
    Icmpv6,
    Ipv6NoNxt,
    Ipv6Opts,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> IpProtocol {
        match v {
            0 => IpProtocol::HopByHop,
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            43 => IpProtocol::Ipv6Route,
            44 => IpProtocol::Ipv6Frag,
            50 => IpProtocol::Esp,
            51 => IpProtocol::Ah,
            58 => IpProtocol::Icmpv6,
            59 => IpProtocol::Ipv6NoNxt,
            60 => IpProtocol::Ipv6Opts,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Esp => 50,
            IpProtocol::Ah => 51,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// Big-endian field helpers shared by the views. Callers index only ranges
/// their `new_checked` has validated.
#[inline(always)]
fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_unique_and_all_is_in_index_order() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(e.name().bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
            for other in &Error::ALL[i + 1..] {
                assert_ne!(e.name(), other.name());
            }
        }
    }

    #[test]
    fn ip_protocol_round_trips() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
    }
}
