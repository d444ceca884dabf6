//! Rust mirrors of the map key and value structs in `bpf/floodgate.h`.
//!
//! The C header is the definition; each struct here is `#[repr(C)]` with the
//! same fields in the same order, and a compile-time assertion pins its size.
//! [`super::program::XdpProgram::load`] also checks these sizes against the
//! key and value sizes the loaded object's BTF declares, so a header changed on
//! one side only fails at start-up with a clear message, not silently.

use std::mem::size_of;
use std::net::IpAddr;
use std::time::Duration;

use crate::tcp::{Capacity, Ecn, Secrets, TcpConfig};

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

/// `struct fg_source_key`: an address the engine opens connections from
/// (the proxy's `--source-addrs`); IPv4 as v4-mapped, network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceKey {
    pub addr: [u8; 16],
}

const _: () = assert!(size_of::<SourceKey>() == 16);

impl SourceKey {
    pub fn new(addr: IpAddr) -> Self {
        let addr = match addr {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        SourceKey { addr }
    }
}

/// `struct fg_source`, the value of the `sources` map: the ports of the
/// address the engine owns, inclusive, host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourcePorts {
    pub port_lo: u16,
    pub port_hi: u16,
    pub pad: u32,
}

const _: () = assert!(size_of::<SourcePorts>() == 8);

impl SourcePorts {
    pub fn as_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.port_lo.to_ne_bytes());
        b[2..4].copy_from_slice(&self.port_hi.to_ne_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b: &[u8; 8] = b.get(..8)?.try_into().ok()?;
        Some(SourcePorts {
            port_lo: u16::from_ne_bytes([b[0], b[1]]),
            port_hi: u16::from_ne_bytes([b[2], b[3]]),
            pad: 0,
        })
    }
}

/// `fg_vip.flags`: answer this VIP's SYNs with SYN cookies in XDP.
pub const VIP_XDP_COOKIES: u8 = 0x1;
/// `fg_vip.flags`: the listener accepts ECN (`tcp::ecn`): the XDP program's
/// cookie SYN-ACK answers an ECN-setup SYN as the engine does.
pub const VIP_ECN: u8 = 0x2;

/// `struct fg_vip`, the value of the `vips` map: how the listener behind a
/// VIP answers a SYN, so that the XDP program's cookie SYN-ACK is the one the
/// engine would send. Host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipConfig {
    /// `VIP_*` flags.
    pub flags: u8,
    /// Our window-scale shift; 0: no window scaling.
    pub window_scale: u8,
    /// 1: SACK permitted.
    pub sack: u8,
    /// 1: timestamps.
    pub timestamps: u8,
    /// The MSS we advertise.
    pub mss: u16,
    /// The window field of a SYN-ACK.
    pub window: u16,
}

const _: () = assert!(size_of::<VipConfig>() == 8);

impl VipConfig {
    /// The SYN-ACK settings of a listener with `cfg` on an endpoint of
    /// capacity `cap`, for an IPv4 or (`v6`) an IPv6 VIP; `VIP_ECN` is
    /// added from `cfg`.
    pub fn for_listener(cfg: &TcpConfig, cap: &Capacity, flags: u8, v6: bool) -> Self {
        VipConfig {
            flags: flags | if cfg.ecn != Ecn::Off { VIP_ECN } else { 0 },
            window_scale: cfg.window_scale,
            sack: cfg.sack as u8,
            timestamps: cfg.timestamps as u8,
            mss: cfg.advertised_mss(v6),
            window: cap.synack_window(),
        }
    }

    pub fn as_bytes(&self) -> [u8; 8] {
        let mut b = [self.flags, self.window_scale, self.sack, self.timestamps, 0, 0, 0, 0];
        b[4..6].copy_from_slice(&self.mss.to_ne_bytes());
        b[6..8].copy_from_slice(&self.window.to_ne_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b: &[u8; 8] = b.get(..8)?.try_into().ok()?;
        Some(VipConfig {
            flags: b[0],
            window_scale: b[1],
            sack: b[2],
            timestamps: b[3],
            mss: u16::from_ne_bytes([b[4], b[5]]),
            window: u16::from_ne_bytes([b[6], b[7]]),
        })
    }
}

/// `struct fg_cookie_cfg`, the one entry of the `cookie_cfg` array: the
/// engine's SipHash keys (`tcp::Secrets::keys`) and the CLOCK_MONOTONIC
/// time of its clock's zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CookieConfig {
    pub isn_key: [u64; 2],
    pub cookie_key: [u64; 2],
    pub clock_base_ns: u64,
    /// Nonzero once written.
    pub ready: u64,
}

const _: () = assert!(size_of::<CookieConfig>() == 48);

impl CookieConfig {
    /// The entry for an engine with `secrets` whose clock reads `engine_now`.
    pub fn new(secrets: &Secrets, engine_now: Duration) -> Self {
        let (isn_key, cookie_key) = secrets.keys();
        let clock_base_ns = (monotonic_now().saturating_sub(engine_now)).as_nanos() as u64;
        CookieConfig { isn_key, cookie_key, clock_base_ns, ready: 1 }
    }

    pub fn as_bytes(&self) -> [u8; 48] {
        let words =
            [self.isn_key[0], self.isn_key[1], self.cookie_key[0], self.cookie_key[1], self.clock_base_ns, self.ready];
        let mut b = [0u8; 48];
        for (chunk, w) in b.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        b
    }
}

/// CLOCK_MONOTONIC: the clock of `bpf_ktime_get_ns` (and of
/// `std::time::Instant` on Linux), since boot.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
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
    /// A SYN to a VIP with XDP cookies, answered in XDP (XDP_TX).
    pub syn_cookie_tx: u64,
    /// Such a SYN whose reply could not be written (XDP_DROP; cannot happen).
    pub syn_cookie_error: u64,
    /// Such a SYN left to the engine (not a verdict: also counted as
    /// `redirect` or `redirect_no_xsk`).
    pub syn_cookie_fallback: u64,
    /// An ICMP "fragmentation needed" / ICMPv6 "packet too big" about an
    /// owned (address, port), steered to the engine (not a verdict: also
    /// counted as `redirect` or `redirect_no_xsk`).
    pub icmp_too_big: u64,
    /// A TCP segment to an owned source (address, port): a backend's reply
    /// to the proxy, steered to the engine (not a verdict: also counted as
    /// `redirect` or `redirect_no_xsk`).
    pub source_reply: u64,
}

const _: () = assert!(size_of::<BpfStats>() == 13 * 8);

impl BpfStats {
    /// `(metric name, value)` for every counter, in header order.
    pub fn fields(&self) -> [(&'static str, u64); 13] {
        [
            ("redirect", self.redirect),
            ("redirect_no_xsk", self.redirect_no_xsk),
            ("pass_not_ip", self.pass_not_ip),
            ("pass_not_tcp", self.pass_not_tcp),
            ("pass_not_vip", self.pass_not_vip),
            ("pass_truncated", self.pass_truncated),
            ("pass_fragment", self.pass_fragment),
            ("pass_malformed", self.pass_malformed),
            ("syn_cookie_tx", self.syn_cookie_tx),
            ("syn_cookie_error", self.syn_cookie_error),
            ("syn_cookie_fallback", self.syn_cookie_fallback),
            ("icmp_too_big", self.icmp_too_big),
            ("source_reply", self.source_reply),
        ]
    }

    /// The verdict counters: every field but `syn_cookie_fallback`,
    /// `icmp_too_big` and `source_reply`, which count reasons.
    pub fn verdicts(&self) -> impl Iterator<Item = (&'static str, u64)> {
        self.fields()
            .into_iter()
            .filter(|(n, _)| !matches!(*n, "syn_cookie_fallback" | "icmp_too_big" | "source_reply"))
    }

    /// Sum of every verdict counter: the number of frames the program has seen.
    pub fn total(&self) -> u64 {
        self.verdicts().map(|(_, v)| v).sum()
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
            syn_cookie_tx: f(8),
            syn_cookie_error: f(9),
            syn_cookie_fallback: f(10),
            icmp_too_big: f(11),
            source_reply: f(12),
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
        self.syn_cookie_tx += o.syn_cookie_tx;
        self.syn_cookie_error += o.syn_cookie_error;
        self.syn_cookie_fallback += o.syn_cookie_fallback;
        self.icmp_too_big += o.icmp_too_big;
        self.source_reply += o.source_reply;
    }
}
