//! The PROXY protocol v2 header (`app::proxy::ppv2`): the decoder on raw
//! bytes, as a backend reads the first bytes of a connection, and the
//! encoder on addresses taken from the same bytes.
//!
//! Checked on every input: no panic; a decoded header lies within the
//! input, starts with the signature and version 2, and its length field
//! accounts for it exactly; what follows it (the payload) does not change
//! the verdict, and every shorter prefix of it is `Incomplete`; an input
//! that is a prefix of a header is `Incomplete`, never refused, and one
//! that is not is refused at once; a PROXY header without TLVs is
//! byte-for-byte what the encoder writes for the addresses decoded; the
//! encoder's output for arbitrary addresses decodes back to them (a mixed
//! pair as IPv4-mapped IPv6), and LOCAL to `Local`.
#![no_main]

use floodgate::app::proxy::ppv2::{decode, encode_local, encode_proxy, DecodeError, Decoded, FIXED_LEN, SIGNATURE};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

fuzz_target!(|data: &[u8]| {
    check_decode(data);
    if let Some((c, d)) = addresses(data) {
        check_round_trip(c, d);
    }
});

fn check_decode(data: &[u8]) {
    let sig = data.len().min(SIGNATURE.len());
    let sig_ok = data[..sig] == SIGNATURE[..sig];
    match decode(data) {
        Ok((d, n)) => {
            assert!((FIXED_LEN..=data.len()).contains(&n), "header length {n} of {}", data.len());
            assert!(data.starts_with(&SIGNATURE));
            assert_eq!(data[12] >> 4, 2, "version 2");
            assert_eq!(n, FIXED_LEN + u16::from_be_bytes([data[14], data[15]]) as usize);
            // The payload after the header does not change the verdict.
            assert_eq!(decode(&data[..n]), Ok((d, n)));
            let mut longer = data[..n].to_vec();
            longer.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(decode(&longer), Ok((d, n)));
            // Every shorter prefix waits for more (checking every length
            // of a 64 KiB header would be slow: the first 80 and the last).
            for i in (0..n.min(80)).chain([n - 1]) {
                assert_eq!(decode(&data[..i]), Err(DecodeError::Incomplete), "prefix {i} of {n}");
            }
            match d {
                Decoded::Proxy { client, dest } => {
                    assert_eq!(data[12], 0x21, "PROXY");
                    assert!(matches!(data[13], 0x11 | 0x21), "TCP over IPv4 or IPv6");
                    let exact = if data[13] == 0x11 { 12 } else { 36 };
                    assert!(n >= FIXED_LEN + exact);
                    if n == FIXED_LEN + exact {
                        // No TLVs: the encoder writes exactly these bytes.
                        assert_eq!(encode_proxy(client, dest).as_bytes(), &data[..n]);
                    }
                    assert_eq!(client.is_ipv4(), data[13] == 0x11);
                    assert_eq!(dest.is_ipv4(), data[13] == 0x11);
                }
                Decoded::ProxyOther => assert!(data[12] == 0x21 && !matches!(data[13], 0x11 | 0x21)),
                Decoded::Local => assert_eq!(data[12], 0x20),
            }
        }
        Err(DecodeError::Incomplete) => {
            assert!(sig_ok, "a refused prefix reported as incomplete");
            let total = data.get(14..16).map_or(usize::MAX, |l| FIXED_LEN + u16::from_be_bytes([l[0], l[1]]) as usize);
            assert!(data.len() < total, "all {} bytes of a {total}-byte header here", data.len());
        }
        Err(DecodeError::BadSignature) => assert!(!sig_ok),
        Err(DecodeError::BadVersion) => assert!(sig_ok && data[12] >> 4 != 2),
        Err(DecodeError::BadCommand) => assert!(sig_ok && data[12] >> 4 == 2 && data[12] & 0x0f > 1),
        Err(DecodeError::ShortAddresses) => {
            assert!(sig_ok && data[12] == 0x21 && matches!(data[13], 0x11 | 0x21));
        }
    }
}

/// Two socket addresses from the input's first 37 bytes: a family byte
/// (bit 0: client IPv6, bit 1: destination IPv6), then 16-byte addresses
/// (an IPv4 one uses the first 4) and ports.
fn addresses(data: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let b = data.get(..37)?;
    let addr = |v6: bool, a: &[u8], p: &[u8]| {
        let ip = if v6 {
            let mut o = [0u8; 16];
            o.copy_from_slice(a);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        };
        SocketAddr::new(ip, u16::from_be_bytes([p[0], p[1]]))
    };
    Some((addr(b[0] & 1 != 0, &b[1..17], &b[33..35]), addr(b[0] & 2 != 0, &b[17..33], &b[35..37])))
}

fn check_round_trip(client: SocketAddr, dest: SocketAddr) {
    let h = encode_proxy(client, dest);
    let b = h.as_bytes();
    let (d, n) = decode(b).expect("the encoder's header decodes");
    assert_eq!(n, b.len());
    let mapped = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) if client.is_ipv6() || dest.is_ipv6() => {
            SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port())
        }
        _ => a,
    };
    assert_eq!(d, Decoded::Proxy { client: mapped(client), dest: mapped(dest) });
    assert_eq!(decode(encode_local().as_bytes()), Ok((Decoded::Local, FIXED_LEN)));
}
