//! The backend side's source addresses and ports: a range of IPv4
//! addresses floodgate owns (`--source-addrs A-B`) times a range of ports,
//! split among the shards so that no two shards ever pick the same tuple.
//!
//! Each backend has its own cursor over the shard's (address, port) space:
//! a 4-tuple includes the backend, so one source pair serves every backend
//! at once. The cursor walks the space in order, so the candidate it offers
//! next is the one released longest ago, the likeliest to be free; a
//! candidate still held by a connection or by our TIME-WAIT table
//! ([`crate::tcp::TupleUse`]) is skipped, and after [`PROBES`] taken ones
//! in a row the open is refused (counted as exhausted) rather than
//! searching the whole space on the data path.
//!
//! Rate: a tuple is reused at the earliest 2MSL after our side closed it
//! (RFC 9293 §3.6), so one backend sustains at most `addresses × ports /
//! 2MSL` new connections per second per shard ([`Sources::sustainable_rate`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Candidates tried per active open before the space counts as exhausted.
pub const PROBES: u32 = 64;

/// One shard's source space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sources {
    first: u32,
    addrs: u32,
    port_lo: u16,
    ports: u32,
}

impl Sources {
    /// Addresses `first..=last`, ports `port_lo..=port_hi`.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr, port_lo: u16, port_hi: u16) -> Result<Sources, String> {
        let (a, b) = (u32::from(first), u32::from(last));
        if b < a {
            return Err(format!("source addresses {first}-{last}: the range is empty"));
        }
        if b - a >= 1 << 16 {
            return Err(format!("source addresses {first}-{last}: more than 65536 addresses"));
        }
        if port_hi < port_lo || port_lo == 0 {
            return Err(format!("source ports {port_lo}-{port_hi}: not a range of ports"));
        }
        Ok(Sources { first: a, addrs: b - a + 1, port_lo, ports: (port_hi - port_lo) as u32 + 1 })
    }

    /// Source pairs in the space.
    pub fn len(&self) -> u64 {
        self.addrs as u64 * self.ports as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Candidate `i` (mod the space): addresses vary fastest, so consecutive
    /// opens spread over the addresses.
    pub fn get(&self, i: u64) -> SocketAddr {
        let i = i % self.len();
        let addr = Ipv4Addr::from(self.first + (i % self.addrs as u64) as u32);
        let port = self.port_lo + (i / self.addrs as u64) as u16;
        SocketAddr::new(IpAddr::V4(addr), port)
    }

    /// Whether `a` is one of the source addresses.
    pub fn owns(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(v) => u32::from(v).wrapping_sub(self.first) < self.addrs,
            IpAddr::V6(_) => false,
        }
    }

    /// New connections per second this space sustains towards one backend
    /// when every tuple waits `time_wait` (2MSL) before reuse.
    pub fn sustainable_rate(&self, time_wait: Duration) -> f64 {
        self.len() as f64 / time_wait.as_secs_f64().max(1e-3)
    }
}

/// Shard `shard` of `shards`'s slice of the ports `lo..=hi`: disjoint,
/// contiguous, together the whole range (the first slices take the remainder).
pub fn shard_ports(lo: u16, hi: u16, shard: u32, shards: u32) -> Option<(u16, u16)> {
    let n = (hi as u32 + 1).checked_sub(lo as u32)?;
    if shards == 0 || shard >= shards || n < shards {
        return None;
    }
    let (base, extra) = (n / shards, n % shards);
    let start = lo as u32 + shard * base + shard.min(extra);
    let len = base + (shard < extra) as u32;
    Some((start as u16, (start + len - 1) as u16))
}

/// The shard whose slice of `lo..=hi` (split by [`shard_ports`] among
/// `shards`) holds `port`; `None` outside the range. The inverse of
/// [`shard_ports`], in O(1): the first `n % shards` slices have one port more.
pub fn port_owner(lo: u16, hi: u16, shards: u32, port: u16) -> Option<u32> {
    let n = (hi as u32 + 1).checked_sub(lo as u32)?;
    if shards == 0 || n < shards || port < lo || port > hi {
        return None;
    }
    let (base, extra) = (n / shards, n % shards);
    let off = (port - lo) as u32;
    let long = extra * (base + 1);
    Some(if off < long { off / (base + 1) } else { extra + (off - long) / base })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_space_is_addresses_times_ports_addresses_first() {
        let s = Sources::new("198.18.1.1".parse().unwrap(), "198.18.1.4".parse().unwrap(), 1000, 1009).unwrap();
        assert_eq!(s.len(), 40);
        assert_eq!(s.get(0), "198.18.1.1:1000".parse().unwrap());
        assert_eq!(s.get(3), "198.18.1.4:1000".parse().unwrap());
        assert_eq!(s.get(4), "198.18.1.1:1001".parse().unwrap());
        assert_eq!(s.get(39), "198.18.1.4:1009".parse().unwrap());
        assert_eq!(s.get(40), s.get(0), "wraps");
        let all: std::collections::HashSet<_> = (0..40).map(|i| s.get(i)).collect();
        assert_eq!(all.len(), 40, "every pair once");
        assert!(s.owns("198.18.1.3".parse().unwrap()) && !s.owns("198.18.1.5".parse().unwrap()));
        assert!(!s.owns("198.18.1.0".parse().unwrap()));
        // 40 tuples each held 60 s: 2/3 of a connection per second.
        assert!((s.sustainable_rate(Duration::from_secs(60)) - 40.0 / 60.0).abs() < 1e-9);
    }

    #[test]
    fn bad_ranges_are_refused() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(Sources::new(a("10.0.0.2"), a("10.0.0.1"), 1, 2).is_err());
        assert!(Sources::new(a("10.0.0.1"), a("10.0.0.1"), 2, 1).is_err());
        assert!(Sources::new(a("10.0.0.1"), a("10.0.0.1"), 0, 1).is_err());
        assert!(Sources::new(a("10.0.0.0"), a("10.1.0.0"), 1, 1).is_err());
        assert_eq!(Sources::new(a("10.0.0.1"), a("10.0.0.1"), 1, 65535).unwrap().len(), 65535);
    }

    #[test]
    fn shard_slices_are_disjoint_and_cover_the_range() {
        for (lo, hi, shards) in [(1024u16, 65535u16, 1u32), (1024, 65535, 3), (10, 20, 11), (1, 65535, 7)] {
            let mut next = lo as u32;
            for i in 0..shards {
                let (a, b) = shard_ports(lo, hi, i, shards).unwrap();
                assert_eq!(a as u32, next, "contiguous");
                assert!(b >= a);
                next = b as u32 + 1;
            }
            assert_eq!(next, hi as u32 + 1, "covers {lo}-{hi} in {shards}");
        }
        assert_eq!(shard_ports(10, 12, 0, 4), None, "fewer ports than shards");
        assert_eq!(shard_ports(10, 12, 3, 3), None);
    }

    /// Every port of the range maps back to the shard whose slice holds it.
    #[test]
    fn port_owner_inverts_the_slices() {
        for (lo, hi, shards) in
            [(1024u16, 65535u16, 1u32), (1024, 65535, 3), (10, 20, 11), (1, 65535, 7), (100, 105, 4)]
        {
            for s in 0..shards {
                let (a, b) = shard_ports(lo, hi, s, shards).unwrap();
                for port in a..=b {
                    assert_eq!(port_owner(lo, hi, shards, port), Some(s), "{lo}-{hi} / {shards}: port {port}");
                }
            }
            assert_eq!(port_owner(lo, hi, shards, lo - 1), None, "below the range");
            if hi < u16::MAX {
                assert_eq!(port_owner(lo, hi, shards, hi + 1), None, "above the range");
            }
        }
        assert_eq!(port_owner(10, 12, 4, 10), None, "fewer ports than shards");
    }
}
