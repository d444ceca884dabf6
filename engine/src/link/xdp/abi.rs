//! Rust mirrors of the map key and value structs in `bpf/floodgate.h`.
//!
//! The C header is the definition; each struct here is `#[repr(C)]` with the
//! same fields in the same order, and a compile-time assertion pins its size.
//! [`super::program::XdpProgram::load`] also checks these sizes against the
//! key and value sizes the loaded object's BTF declares, so a header changed on
//! one side only fails at start-up with a clear message, not silently.

use std::mem::size_of;
use std::net::IpAddr;

/// `struct fg_vip_key`: a destination (address, TCP port) the engine owns.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipKey {
    /// IPv6 address, or IPv4 as v4-mapped (`::ffff:a.b.c.d`), network order.
    pub addr: [u8; 16],
    /// TCP destination port, network byte order.
    pub port_be: u16,
    /// Always zero: the whole key is hashed.
    pub pad: u16,
}

const _: () = assert!(size_of::<VipKey>() == 20);

impl VipKey {
    pub fn new(addr: IpAddr, port: u16) -> Self {
        let addr = match addr {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        VipKey { addr, port_be: port.to_be(), pad: 0 }
    }

    pub fn as_bytes(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[..16].copy_from_slice(&self.addr);
        b[16..18].copy_from_slice(&self.port_be.to_ne_bytes());
        b[18..20].copy_from_slice(&self.pad.to_ne_bytes());
        b
    }
}

/// `struct fg_stats`: one counter per verdict of the XDP program, summed over
/// CPUs by [`super::program::XdpProgram::stats`]. Every frame the program sees
/// increments exactly one field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfStats {
    /// Owned (VIP, port): redirected to the queue's AF_XDP socket.
    pub redirect: u64,
    /// Owned, but no AF_XDP socket on that RX queue: passed to the kernel.
    pub redirect_no_xsk: u64,
    /// Not IPv4/IPv6 (ARP, LLDP, ...).
    pub pass_not_ip: u64,
    /// IP but not TCP (ICMP, UDP, IPv6 extension headers, ...).
    pub pass_not_tcp: u64,
    /// TCP to an address/port the engine does not own.
    pub pass_not_vip: u64,
    /// Frame ends before a header the program had to read.
    pub pass_truncated: u64,
    /// IPv4 fragment.
    pub pass_fragment: u64,
    /// Bad IP version or header length.
    pub pass_malformed: u64,
}

const _: () = assert!(size_of::<BpfStats>() == 8 * 8);

impl BpfStats {
    /// `(metric name, value)` for every counter, in header order.
    pub fn fields(&self) -> [(&'static str, u64); 8] {
        [
            ("redirect", self.redirect),
            ("redirect_no_xsk", self.redirect_no_xsk),
            ("pass_not_ip", self.pass_not_ip),
            ("pass_not_tcp", self.pass_not_tcp),
            ("pass_not_vip", self.pass_not_vip),
            ("pass_truncated", self.pass_truncated),
            ("pass_fragment", self.pass_fragment),
            ("pass_malformed", self.pass_malformed),
        ]
    }

    /// Sum of every counter: the number of frames the program has seen.
    pub fn total(&self) -> u64 {
        self.fields().iter().map(|(_, v)| v).sum()
    }

    /// Reads one CPU's value as the kernel laid it out (native endian).
    pub(crate) fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < size_of::<Self>() {
            return None;
        }
        let f = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        Some(BpfStats {
            redirect: f(0),
            redirect_no_xsk: f(1),
            pass_not_ip: f(2),
            pass_not_tcp: f(3),
            pass_not_vip: f(4),
            pass_truncated: f(5),
            pass_fragment: f(6),
            pass_malformed: f(7),
        })
    }

    pub(crate) fn add(&mut self, o: &Self) {
        self.redirect += o.redirect;
        self.redirect_no_xsk += o.redirect_no_xsk;
        self.pass_not_ip += o.pass_not_ip;
        self.pass_not_tcp += o.pass_not_tcp;
        self.pass_not_vip += o.pass_not_vip;
        self.pass_truncated += o.pass_truncated;
        self.pass_fragment += o.pass_fragment;
        self.pass_malformed += o.pass_malformed;
    }
}
