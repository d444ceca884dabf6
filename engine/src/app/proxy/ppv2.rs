//! The PROXY protocol, version 2 (haproxy's `proxy-protocol.txt`, §2.2):
//! the binary header a proxy sends as the very first bytes of its
//! connection to the backend, so the backend learns the client's address
//! and port although the connection comes from the proxy.
//!
//! ```text
//!  0..12  signature  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A   ("\r\n\r\n\0\r\nQUIT\n")
//!  12     version (high nibble, 2) | command (low: 0 LOCAL, 1 PROXY)
//!  13     family (high: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) | transport (low: 0 UNSPEC, 1 STREAM, 2 DGRAM)
//!  14..16 length of what follows, big-endian
//!  16..   addresses: INET  src(4) dst(4) sport(2) dport(2)   = 12 bytes
//!                    INET6 src(16) dst(16) sport(2) dport(2) = 36 bytes
//!         then optional TLVs (§2.2.7), which a receiver skips if it does not know them
//! ```
//!
//! The encoder writes PROXY over TCP/IPv4 and TCP/IPv6, and LOCAL (the
//! proxy's own connection, e.g. a health check: the receiver uses the
//! connection's real addresses, §2.2). No TLVs are sent. The decoder checks
//! what §2.2 says a receiver must check (signature, version 2, a known
//! command, an address block long enough for its family) and skips TLVs;
//! it serves the tests here and the echo backend that checks headers.
//! No allocation either way: the header lives in a fixed array.

use std::net::{IpAddr, SocketAddr};

/// The 12-byte signature (§2.2).
pub const SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
/// Signature, version/command, family/transport, length.
pub const FIXED_LEN: usize = 16;
/// The longest header the encoder writes (TCP over IPv6).
pub const MAX_LEN: usize = FIXED_LEN + 36;

const VERSION: u8 = 0x20;
const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;
const UNSPEC: u8 = 0x00;

/// An encoded header: a fixed array and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    buf: [u8; MAX_LEN],
    len: u8,
}

impl Header {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// The PROXY command for a TCP connection from `client` to `dest` (the
/// address and port the client connected to). Both must be of one family;
/// a mixed pair (an IPv4 client on an IPv6 listener's v4-mapped address)
/// is written as IPv6, with the IPv4 address mapped (§2.2: "both addresses
/// of the same family").
pub fn encode_proxy(client: SocketAddr, dest: SocketAddr) -> Header {
    let mut h = Header { buf: [0; MAX_LEN], len: 0 };
    h.buf[..12].copy_from_slice(&SIGNATURE);
    h.buf[12] = VERSION | CMD_PROXY;
    let (head, body) = h.buf.split_at_mut(FIXED_LEN);
    let n = match (client.ip(), dest.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            head[13] = TCP4;
            body[0..4].copy_from_slice(&s.octets());
            body[4..8].copy_from_slice(&d.octets());
            body[8..10].copy_from_slice(&client.port().to_be_bytes());
            body[10..12].copy_from_slice(&dest.port().to_be_bytes());
            12
        }
        (s, d) => {
            head[13] = TCP6;
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                IpAddr::V6(a) => a.octets(),
            };
            body[0..16].copy_from_slice(&v6(s));
            body[16..32].copy_from_slice(&v6(d));
            body[32..34].copy_from_slice(&client.port().to_be_bytes());
            body[34..36].copy_from_slice(&dest.port().to_be_bytes());
            36
        }
    };
    head[14..16].copy_from_slice(&(n as u16).to_be_bytes());
    h.len = (FIXED_LEN + n) as u8;
    h
}

/// The LOCAL command: no addresses (family UNSPEC, length 0).
pub fn encode_local() -> Header {
    let mut h = Header { buf: [0; MAX_LEN], len: FIXED_LEN as u8 };
    h.buf[..12].copy_from_slice(&SIGNATURE);
    h.buf[12] = VERSION | CMD_LOCAL;
    h.buf[13] = UNSPEC;
    h
}

/// What a decoded header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// PROXY over TCP: the client's address and port, and where it connected to.
    Proxy { client: SocketAddr, dest: SocketAddr },
    /// PROXY with a family or transport other than TCP over IP (UNIX, UDP,
    /// UNSPEC): §2.2 lets the receiver use the connection's own addresses.
    ProxyOther,
    /// LOCAL: the connection's own addresses are the real ones.
    Local,
}

/// Why bytes are not (yet) a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes are needed; no verdict yet.
    Incomplete,
    /// Not the signature: not a PROXY v2 header.
    BadSignature,
    /// Version other than 2 (§2.2: must be rejected).
    BadVersion,
    /// Command other than LOCAL or PROXY (§2.2: must be rejected).
    BadCommand,
    /// The length leaves no room for the family's addresses.
    ShortAddresses,
}

/// Decodes a header at the front of `b`; `Ok` also gives the header's total
/// length (TLVs included), where the payload starts.
pub fn decode(b: &[u8]) -> Result<(Decoded, usize), DecodeError> {
    let sig = b.len().min(SIGNATURE.len());
    if b[..sig] != SIGNATURE[..sig] {
        return Err(DecodeError::BadSignature);
    }
    if b.len() < FIXED_LEN {
        return Err(DecodeError::Incomplete);
    }
    if b[12] & 0xF0 != VERSION {
        return Err(DecodeError::BadVersion);
    }
    let len = u16::from_be_bytes([b[14], b[15]]) as usize;
    let total = FIXED_LEN + len;
    let cmd = b[12] & 0x0F;
    if cmd != CMD_LOCAL && cmd != CMD_PROXY {
        return Err(DecodeError::BadCommand);
    }
    if b.len() < total {
        return Err(DecodeError::Incomplete);
    }
    if cmd == CMD_LOCAL {
        // §2.2: the receiver must accept LOCAL and ignore the address block.
        return Ok((Decoded::Local, total));
    }
    let a = &b[FIXED_LEN..total];
    let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
    let decoded = match b[13] {
        TCP4 => {
            if len < 12 {
                return Err(DecodeError::ShortAddresses);
            }
            let ip = |i: usize| IpAddr::from([a[i], a[i + 1], a[i + 2], a[i + 3]]);
            Decoded::Proxy { client: SocketAddr::new(ip(0), port(8)), dest: SocketAddr::new(ip(4), port(10)) }
        }
        TCP6 => {
            if len < 36 {
                return Err(DecodeError::ShortAddresses);
            }
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i..i + 16]);
                IpAddr::from(o)
            };
            Decoded::Proxy { client: SocketAddr::new(ip(0), port(32)), dest: SocketAddr::new(ip(16), port(34)) }
        }
        _ => Decoded::ProxyOther,
    };
    Ok((decoded, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tcp4_matches_the_spec_layout_byte_for_byte() {
        // The layout of §2.2 written out: a header haproxy sent (captured
        // in the wild) for 172.19.0.1:42578 -> 172.19.0.3:80.
        let want: [u8; 28] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
            0x21, // version 2, PROXY
            0x11, // AF_INET, STREAM
            0x00, 0x0c, // 12 bytes of addresses
            0xac, 0x13, 0x00, 0x01, 0xac, 0x13, 0x00, 0x03, // src, dst
            0xa6, 0x52, 0x00, 0x50, // 42578, 80
        ];
        let h = encode_proxy(sa("172.19.0.1:42578"), sa("172.19.0.3:80"));
        assert_eq!(h.as_bytes(), &want);
        assert_eq!(&SIGNATURE, b"\r\n\r\n\0\r\nQUIT\n");
        let (d, n) = decode(&want).unwrap();
        assert_eq!(n, 28);
        assert_eq!(d, Decoded::Proxy { client: sa("172.19.0.1:42578"), dest: sa("172.19.0.3:80") });
    }

    #[test]
    fn tcp6_layout_and_round_trip() {
        let (c, d) = (sa("[2001:db8::1]:50000"), sa("[2001:db8::ff]:443"));
        let h = encode_proxy(c, d);
        let b = h.as_bytes();
        assert_eq!(b.len(), 52);
        assert_eq!((b[12], b[13], &b[14..16]), (0x21, 0x21, &[0u8, 36][..]));
        assert_eq!(&b[16..32], &"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(&b[32..48], &"2001:db8::ff".parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(&b[48..52], &[0xc3, 0x50, 0x01, 0xbb]);
        assert_eq!(decode(b), Ok((Decoded::Proxy { client: c, dest: d }, 52)));
    }

    #[test]
    fn mixed_families_are_written_as_mapped_ipv6() {
        let h = encode_proxy(sa("198.18.0.2:1234"), sa("[2001:db8::1]:80"));
        let (d, _) = decode(h.as_bytes()).unwrap();
        assert_eq!(d, Decoded::Proxy { client: sa("[::ffff:198.18.0.2]:1234"), dest: sa("[2001:db8::1]:80") });
    }

    #[test]
    fn local_is_sixteen_bytes_and_decodes_as_local() {
        let h = encode_local();
        assert_eq!(h.as_bytes().len(), 16);
        assert_eq!(&h.as_bytes()[12..], &[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(decode(h.as_bytes()), Ok((Decoded::Local, 16)));
        // LOCAL with an address block: the block is skipped (§2.2).
        let mut b = encode_proxy(sa("1.2.3.4:5"), sa("6.7.8.9:10")).as_bytes().to_vec();
        b[12] = 0x20;
        assert_eq!(decode(&b), Ok((Decoded::Local, 28)));
    }

    #[test]
    fn tlvs_are_skipped_and_the_payload_follows() {
        let mut b = encode_proxy(sa("10.0.0.1:1000"), sa("10.0.0.2:2000")).as_bytes().to_vec();
        // A PP2_TYPE_NOOP TLV (type 0x04, length 3) after the addresses.
        b[14..16].copy_from_slice(&(12u16 + 6).to_be_bytes());
        b.extend_from_slice(&[0x04, 0x00, 0x03, 1, 2, 3]);
        b.extend_from_slice(b"GET /");
        let (d, n) = decode(&b).unwrap();
        assert_eq!(&b[n..], b"GET /");
        assert_eq!(d, Decoded::Proxy { client: sa("10.0.0.1:1000"), dest: sa("10.0.0.2:2000") });
    }

    #[test]
    fn every_prefix_is_incomplete_and_bad_input_is_refused() {
        let h = encode_proxy(sa("10.0.0.1:1000"), sa("10.0.0.2:2000"));
        for i in 0..h.as_bytes().len() {
            assert_eq!(decode(&h.as_bytes()[..i]), Err(DecodeError::Incomplete), "prefix {i}");
        }
        assert_eq!(decode(b"GET / HTTP/1.1\r\n"), Err(DecodeError::BadSignature));
        assert_eq!(decode(b"PROXY TCP4 "), Err(DecodeError::BadSignature), "v1 text is not v2");
        let mut b = h.as_bytes().to_vec();
        b[12] = 0x11;
        assert_eq!(decode(&b), Err(DecodeError::BadVersion));
        b[12] = 0x22;
        assert_eq!(decode(&b), Err(DecodeError::BadCommand));
        b[12] = 0x21;
        b[15] = 8;
        assert_eq!(decode(&b), Err(DecodeError::ShortAddresses));
        b[13] = 0x31; // AF_UNIX: not ours to read; the receiver uses the real addresses.
        assert_eq!(decode(&b), Ok((Decoded::ProxyOther, 24)));
    }
}
