//! Addresses and the 4-tuple that names a TCP connection (RFC 9293 §3.3.1).
//!
//! IPv4 addresses are held IPv4-mapped (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) so
//! one key type serves both families in the connection table; the TIME-WAIT
//! table keeps IPv4 tuples in the 12-byte [`V4Tuple`] to stay compact.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An IP address of either family, 16 bytes, IPv4 held mapped.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    pub const fn v4(a: [u8; 4]) -> Addr {
        Addr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3]])
    }
    pub fn is_v4(&self) -> bool {
        self.0[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
    }
    /// The IPv4 octets, if this is a mapped IPv4 address.
    pub fn as_v4(&self) -> Option<[u8; 4]> {
        if self.is_v4() {
            Some([self.0[12], self.0[13], self.0[14], self.0[15]])
        } else {
            None
        }
    }
    pub fn to_ip(self) -> IpAddr {
        match self.as_v4() {
            Some(a) => IpAddr::V4(Ipv4Addr::from(a)),
            None => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(a: Ipv4Addr) -> Addr {
        Addr::v4(a.octets())
    }
}
impl From<Ipv6Addr> for Addr {
    fn from(a: Ipv6Addr) -> Addr {
        Addr(a.octets())
    }
}
impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Addr {
        match a {
            IpAddr::V4(a) => a.into(),
            IpAddr::V6(a) => a.into(),
        }
    }
}

impl core::fmt::Debug for Addr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.to_ip())
    }
}
impl core::fmt::Display for Addr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.to_ip())
    }
}

/// The connection's name, seen from this end: local is the engine's side.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(C)]
pub struct FourTuple {
    pub local_addr: Addr,
    pub remote_addr: Addr,
    pub local_port: u16,
    pub remote_port: u16,
}

impl FourTuple {
    pub fn new(local: SocketAddr, remote: SocketAddr) -> FourTuple {
        FourTuple {
            local_addr: local.ip().into(),
            remote_addr: remote.ip().into(),
            local_port: local.port(),
            remote_port: remote.port(),
        }
    }
    pub fn local(&self) -> SocketAddr {
        SocketAddr::new(self.local_addr.to_ip(), self.local_port)
    }
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(self.remote_addr.to_ip(), self.remote_port)
    }
    /// The compact form, when both ends are IPv4.
    pub fn as_v4(&self) -> Option<V4Tuple> {
        Some(V4Tuple {
            local_addr: self.local_addr.as_v4()?,
            remote_addr: self.remote_addr.as_v4()?,
            local_port: self.local_port,
            remote_port: self.remote_port,
        })
    }
}

impl core::fmt::Debug for FourTuple {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} <-> {}", self.local(), self.remote())
    }
}

/// An IPv4 4-tuple in 12 bytes, for the TIME-WAIT table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[repr(C)]
pub struct V4Tuple {
    pub local_addr: [u8; 4],
    pub remote_addr: [u8; 4],
    pub local_port: u16,
    pub remote_port: u16,
}

impl From<V4Tuple> for FourTuple {
    fn from(t: V4Tuple) -> FourTuple {
        FourTuple {
            local_addr: Addr::v4(t.local_addr),
            remote_addr: Addr::v4(t.remote_addr),
            local_port: t.local_port,
            remote_port: t.remote_port,
        }
    }
}

const _: () = assert!(core::mem::size_of::<FourTuple>() == 36);
const _: () = assert!(core::mem::size_of::<V4Tuple>() == 12);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trips_through_mapped_form() {
        let t = FourTuple::new("198.18.0.1:80".parse().unwrap(), "198.18.0.2:40000".parse().unwrap());
        assert!(t.local_addr.is_v4());
        let v4 = t.as_v4().unwrap();
        assert_eq!(v4.local_addr, [198, 18, 0, 1]);
        assert_eq!(FourTuple::from(v4), t);
        assert_eq!(t.remote().to_string(), "198.18.0.2:40000");
    }

    #[test]
    fn v6_has_no_compact_form() {
        let t = FourTuple::new("[2001:db8::1]:80".parse().unwrap(), "[2001:db8::2]:1".parse().unwrap());
        assert!(t.as_v4().is_none());
        assert_eq!(t.local().to_string(), "[2001:db8::1]:80");
    }
}
