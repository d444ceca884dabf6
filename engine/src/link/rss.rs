//! Receive-side scaling as a NIC computes it: the Toeplitz hash of a
//! packet's addresses and ports under the NIC's secret key, and the
//! indirection table that maps the hash to an RX queue. Follows Microsoft's
//! "RSS Hashing Functions" (the input: source address, destination address,
//! source port, destination port, in network byte order; for each set bit
//! of the input, XOR in the 32 key bits starting at that bit) and is tested
//! against every IPv4 and IPv6 vector of "Verifying the RSS Hash
//! Calculation". The queue is the indirection table's entry at the hash
//! modulo the table's size (the table's sizes are powers of two, so this
//! is the low bits of the hash, as the drivers take them).
//!
//! The key and the table are read at start with the ethtool ioctl
//! (`ETHTOOL_GRSSH`, linux/ethtool.h's `struct ethtool_rxfh`); a device
//! without RSS (veth) refuses it, and the caller then knows nothing of its
//! queue choice.

use std::io;

/// Microsoft's verification key, also the default key of many drivers.
pub const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key`, bit by bit. `key` must hold
/// at least `input.len() + 4` bytes (the window slides 32 bits past the
/// last input bit); missing key bits count as 0.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |i: usize| key.get(i / 8).map_or(0, |b| (b >> (7 - i % 8)) & 1) as u32;
    // The 32-bit window of the key starting at bit 0, slid one bit per input bit.
    let mut window = (0..32).fold(0u32, |w, i| (w << 1) | key_bit(i));
    let mut hash = 0;
    for (n, byte) in input.iter().enumerate() {
        for b in 0..8 {
            if byte & (0x80 >> b) != 0 {
                hash ^= window;
            }
            window = (window << 1) | key_bit(n * 8 + b + 32);
        }
    }
    hash
}

/// Bytes of an IPv4 TCP hash input: two addresses and two ports.
const V4_TCP_INPUT: usize = 12;

/// The hash of IPv4 TCP tuples by table: per input byte position and
/// value, the XOR of the key windows its set bits select (Toeplitz is
/// linear in its input), so a hash is 12 lookups.
#[derive(Clone, Debug)]
pub struct Toeplitz4 {
    table: Box<[[u32; 256]; V4_TCP_INPUT]>,
}

impl Toeplitz4 {
    pub fn new(key: &[u8]) -> Toeplitz4 {
        let mut table = Box::new([[0u32; 256]; V4_TCP_INPUT]);
        for (pos, row) in table.iter_mut().enumerate() {
            for (v, cell) in row.iter_mut().enumerate() {
                let mut input = [0u8; V4_TCP_INPUT];
                input[pos] = v as u8;
                *cell = toeplitz(key, &input);
            }
        }
        Toeplitz4 { table }
    }

    /// The hash a NIC computes for a segment from `src`:`sport` to `dst`:`dport`.
    pub fn hash(&self, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> u32 {
        let [s0, s1] = sport.to_be_bytes();
        let [d0, d1] = dport.to_be_bytes();
        let input = [src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3], s0, s1, d0, d1];
        input.iter().zip(self.table.iter()).fold(0, |h, (&b, row)| h ^ row[b as usize])
    }
}

/// A device's RSS: its hash key, its indirection table, and the hash in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConfig {
    pub key: Vec<u8>,
    /// Hash modulo the table's size -> RX queue.
    pub indir: Vec<u32>,
    /// `ETH_RSS_HASH_*` bits of the hash function (`TOP` = Toeplitz).
    pub hfunc: u8,
    /// `RXH_XFRM_*` bits (a symmetric transform changes the input).
    pub input_xfrm: u8,
}

/// `ETH_RSS_HASH_TOP`: Toeplitz.
pub const HASH_TOP: u8 = 1;

/// The queue a NIC with this key and table gives an IPv4 TCP segment.
#[derive(Clone, Debug)]
pub struct Steering {
    hash: Toeplitz4,
    indir: Box<[u32]>,
}

impl Steering {
    /// From a device's RSS; `Err` says why its choice cannot be predicted.
    pub fn new(rss: &RssConfig) -> Result<Steering, String> {
        if rss.hfunc != HASH_TOP {
            return Err(format!("its RSS hash function is not Toeplitz (hfunc bits {:#x})", rss.hfunc));
        }
        if rss.input_xfrm != 0 {
            return Err(format!("its RSS input is transformed (input_xfrm bits {:#x})", rss.input_xfrm));
        }
        if rss.key.len() < V4_TCP_INPUT + 4 {
            return Err(format!("its RSS key has {} bytes, fewer than the 16 an IPv4 TCP hash needs", rss.key.len()));
        }
        if rss.indir.is_empty() {
            return Err("its RSS indirection table is empty".into());
        }
        Ok(Steering { hash: Toeplitz4::new(&rss.key), indir: rss.indir.clone().into_boxed_slice() })
    }

    /// The RX queue of a segment from `src`:`sport` to `dst`:`dport`.
    pub fn queue(&self, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> u32 {
        let h = self.hash.hash(src, dst, sport, dport);
        self.indir[h as usize % self.indir.len()]
    }

    /// Indirection entries pointing at `queue`.
    pub fn entries_for(&self, queue: u32) -> usize {
        self.indir.iter().filter(|&&q| q == queue).count()
    }

    pub fn table_len(&self) -> usize {
        self.indir.len()
    }
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GRSSH: u32 = 0x46;
/// `struct ethtool_rxfh` up to its flexible `rss_config[]`.
const RXFH_HEADER: usize = 24;

/// Reads `ifname`'s RSS key and indirection table (context 0).
pub fn read(ifname: &str) -> io::Result<RssConfig> {
    // First the sizes (indir_size = key_size = 0), then both arrays.
    let sizes = rxfh(ifname, 0, 0)?;
    let indir_size = u32::from_ne_bytes(sizes[8..12].try_into().unwrap());
    let key_size = u32::from_ne_bytes(sizes[12..16].try_into().unwrap());
    if indir_size > 1 << 16 || key_size > 1024 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "implausible RSS table or key size"));
    }
    let full = rxfh(ifname, indir_size, key_size)?;
    let body = &full[RXFH_HEADER..];
    let indir = body[..indir_size as usize * 4].chunks_exact(4).map(|c| u32::from_ne_bytes(c.try_into().unwrap()));
    Ok(RssConfig {
        indir: indir.collect(),
        key: body[indir_size as usize * 4..][..key_size as usize].to_vec(),
        hfunc: full[16],
        input_xfrm: full[17],
    })
}

/// One `ETHTOOL_GRSSH` call with room for `indir_size` entries and `key_size` key bytes.
fn rxfh(ifname: &str, indir_size: u32, key_size: u32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; RXFH_HEADER + indir_size as usize * 4 + key_size as usize];
    buf[0..4].copy_from_slice(&ETHTOOL_GRSSH.to_ne_bytes());
    buf[8..12].copy_from_slice(&indir_size.to_ne_bytes());
    buf[12..16].copy_from_slice(&key_size.to_ne_bytes());
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"));
    }
    // SAFETY: a plain socket for the ioctl, closed below; `ifr` names the
    // interface and points at `buf`, which outlives the call and is as
    // large as the sizes it announces.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
            *d = *s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = buf.as_mut_ptr() as *mut libc::c_char;
        let r = libc::ioctl(fd, SIOCETHTOOL as _, &mut ifr as *mut libc::ifreq);
        let err = io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return Err(err);
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// "Verifying the RSS Hash Calculation": (destination, destination port,
    /// source, source port, IPv4 only, IPv4 with TCP).
    const V4: [(&str, u16, &str, u16, u32, u32); 5] = [
        ("161.142.100.80", 1766, "66.9.149.187", 2794, 0x323e8fc2, 0x51ccc178),
        ("65.69.140.83", 4739, "199.92.111.2", 14230, 0xd718262a, 0xc626b0ea),
        ("12.22.207.184", 38024, "24.19.198.95", 12898, 0xd2d0a5de, 0x5c2b394a),
        ("209.142.163.6", 2217, "38.27.205.30", 48228, 0x82989176, 0xafc7327f),
        ("202.188.127.2", 1303, "153.39.163.191", 44251, 0x5d1809c5, 0x10e828a2),
    ];
    const V6: [(&str, u16, &str, u16, u32, u32); 3] = [
        ("3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2cc18cd5, 0x40207d3d),
        ("ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0f0c461c, 0xdde51bbf),
        ("fe80::200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, 0x4b61e985, 0x02d1feef),
    ];

    #[test]
    fn the_key_is_microsofts() {
        let hex: String = MS_KEY.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa");
    }

    #[test]
    fn ipv4_vectors() {
        let t = Toeplitz4::new(&MS_KEY);
        for (dst, dport, src, sport, ip_only, with_tcp) in V4 {
            let (d, s) = (dst.parse::<Ipv4Addr>().unwrap().octets(), src.parse::<Ipv4Addr>().unwrap().octets());
            let addrs = [s, d].concat();
            assert_eq!(toeplitz(&MS_KEY, &addrs), ip_only, "{src} -> {dst}");
            let tuple = [&addrs[..], &sport.to_be_bytes()[..], &dport.to_be_bytes()[..]].concat();
            assert_eq!(toeplitz(&MS_KEY, &tuple), with_tcp, "{src}:{sport} -> {dst}:{dport}");
            assert_eq!(t.hash(s, d, sport, dport), with_tcp, "by table: {src}:{sport} -> {dst}:{dport}");
        }
    }

    #[test]
    fn ipv6_vectors() {
        for (dst, dport, src, sport, ip_only, with_tcp) in V6 {
            let (d, s) = (dst.parse::<Ipv6Addr>().unwrap().octets(), src.parse::<Ipv6Addr>().unwrap().octets());
            let addrs = [s, d].concat();
            assert_eq!(toeplitz(&MS_KEY, &addrs), ip_only, "{src} -> {dst}");
            let tuple = [&addrs[..], &sport.to_be_bytes()[..], &dport.to_be_bytes()[..]].concat();
            assert_eq!(toeplitz(&MS_KEY, &tuple), with_tcp, "{src}.{sport} -> {dst}.{dport}");
        }
    }

    /// The table agrees with the bit-by-bit hash on any key and tuple.
    #[test]
    fn the_table_is_the_hash() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let key: Vec<u8> = (0..40).map(|_| next() as u8).collect();
        let t = Toeplitz4::new(&key);
        for _ in 0..10_000 {
            let v = next();
            let (s, d) = ((v as u32).to_be_bytes(), ((v >> 32) as u32).to_be_bytes());
            let (sp, dp) = (next() as u16, next() as u16);
            let input = [&s[..], &d[..], &sp.to_be_bytes()[..], &dp.to_be_bytes()[..]].concat();
            assert_eq!(t.hash(s, d, sp, dp), toeplitz(&key, &input));
        }
    }

    #[test]
    fn steering_follows_the_indirection_table() {
        let rss =
            |hfunc, xfrm, key: &[u8], indir: Vec<u32>| RssConfig { key: key.to_vec(), indir, hfunc, input_xfrm: xfrm };
        // 128 entries alternating queues 0 and 1, as `ethtool -X eth0 equal 2`.
        let s = Steering::new(&rss(HASH_TOP, 0, &MS_KEY, (0..128).map(|i| i % 2).collect())).unwrap();
        assert_eq!((s.table_len(), s.entries_for(0), s.entries_for(1), s.entries_for(2)), (128, 64, 64, 0));
        // 0x51ccc178 % 128 = 0x78 = 120: queue 0; 0xc626b0ea % 128 = 0x6a = 106: queue 0;
        // 0xafc7327f % 128 = 0x7f: queue 1.
        let q = |(dst, dport, src, sport, _, _): (&str, u16, &str, u16, u32, u32)| {
            s.queue(src.parse::<Ipv4Addr>().unwrap().octets(), dst.parse::<Ipv4Addr>().unwrap().octets(), sport, dport)
        };
        assert_eq!((q(V4[0]), q(V4[1]), q(V4[3])), (0, 0, 1));
        assert!(Steering::new(&rss(2, 0, &MS_KEY, vec![0])).unwrap_err().contains("not Toeplitz"));
        assert!(Steering::new(&rss(HASH_TOP, 1, &MS_KEY, vec![0])).unwrap_err().contains("transformed"));
        assert!(Steering::new(&rss(HASH_TOP, 0, &MS_KEY[..8], vec![0])).unwrap_err().contains("8 bytes"));
        assert!(Steering::new(&rss(HASH_TOP, 0, &MS_KEY, vec![])).is_err());
    }

    /// veth has no RSS to read: the ioctl is refused, not misread.
    #[test]
    fn a_device_without_rss_is_refused() {
        assert!(read("lo").is_err(), "loopback has no RSS");
        assert!(read("").is_err());
    }
}
