//! The XDP program (`bpf/floodgate.bpf.c`): loading, attaching, its maps.
//!
//! The object is compiled by `engine/build.rs` and embedded in the binary.
//! [`XdpProgram::load`] loads it with libbpf (libbpf-rs); [`XdpProgram::attach`]
//! attaches it to an interface through a **bpf_link** (`BPF_LINK_CREATE`,
//! attach type `BPF_XDP`), in native (driver) mode, generic (SKB) mode, or
//! native with a fallback to generic. A bpf_link belongs to the file descriptor
//! that holds it: the program is detached when the [`XdpProgram`] is dropped
//! *and* when the process dies for any reason (panic, SIGKILL), so a crashed
//! engine never leaves its program steering traffic into a closed socket. The
//! shard that owns the program must still drop it (or call
//! [`XdpProgram::detach`]) on every orderly exit path, before the drain ends.
//!
//! Maps (see `bpf/floodgate.h`): `xsks_map` (XSKMAP, RX queue → AF_XDP socket),
//! `vips` ((address, port) → how its listener answers SYNs), `cookie_cfg`
//! (the engine's cookie secrets and clock, for SYN cookies answered in XDP)
//! and `stats` (per-CPU verdict counters).
//! Follows the kernel's XDP and AF_XDP documentation
//! (Documentation/networking/af_xdp.rst, Documentation/bpf/map_xskmap.rst).

use std::ffi::CString;
use std::fmt;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::str::FromStr;

use libbpf_rs::{MapCore, MapFlags, MapHandle, ObjectBuilder};

use super::abi::{BpfStats, CookieConfig, SourceKey, SourcePorts, VipConfig, VipKey};

/// Name of the XDP entry point in `bpf/floodgate.bpf.c`.
pub const PROGRAM_NAME: &str = "floodgate_xdp";

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

/// The compiled object, 8-byte aligned for libelf.
static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/floodgate.bpf.o")));

/// The raw bytes of the embedded BPF object (for tools and tests).
pub fn object_bytes() -> &'static [u8] {
    &OBJECT.0
}

/// An error from the XDP program or the AF_XDP link, with a message that says
/// what failed on which interface and what to do about it.
#[derive(Debug)]
pub struct XdpError {
    msg: String,
    errno: Option<i32>,
}

impl XdpError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        XdpError { msg: msg.into(), errno: None }
    }

    pub(crate) fn os(msg: impl Into<String>, errno: i32) -> Self {
        let errno = errno.abs();
        XdpError { msg: format!("{}: {}", msg.into(), io::Error::from_raw_os_error(errno)), errno: Some(errno) }
    }

    pub(crate) fn bpf(msg: impl Into<String>, e: libbpf_rs::Error) -> Self {
        XdpError { msg: format!("{}: {e}", msg.into()), errno: None }
    }

    /// The OS error number behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }
}

impl fmt::Display for XdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for XdpError {}

/// The attach mode asked for (`--xdp-mode native|generic|auto`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Driver mode; fail if the driver cannot.
    Native,
    /// SKB mode: works on every interface, after the kernel built an skb.
    Generic,
    /// Native, falling back to generic when the driver refuses.
    #[default]
    Auto,
}

impl FromStr for XdpMode {
    type Err = XdpError;
    fn from_str(s: &str) -> Result<Self, XdpError> {
        match s {
            "native" => Ok(XdpMode::Native),
            "generic" => Ok(XdpMode::Generic),
            "auto" => Ok(XdpMode::Auto),
            _ => Err(XdpError::new(format!("unknown XDP mode {s:?}: expected native, generic or auto"))),
        }
    }
}

/// The attach mode actually obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
}

impl AttachedMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        }
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Attachment {
    /// The bpf_link; closing it detaches the program.
    link: OwnedFd,
    ifname: String,
    ifindex: u32,
    mode: AttachedMode,
    native_error: Option<String>,
}

/// The loaded XDP program and its maps, attached to at most one interface.
///
/// Holds only file descriptors, so it is `Send + Sync`: shards share it
/// (e.g. in an `Arc`) to register their sockets. Not for the per-packet path:
/// every method is a syscall.
pub struct XdpProgram {
    prog: OwnedFd,
    xsks: MapHandle,
    vips: MapHandle,
    sources: MapHandle,
    cookie_cfg: MapHandle,
    stats: MapHandle,
    attachment: Option<Attachment>,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("prog_fd", &self.prog.as_raw_fd())
            .field("ifname", &self.ifname())
            .field("mode", &self.attached_mode())
            .finish()
    }
}

impl XdpProgram {
    /// Loads the embedded program and creates its maps; attaches nothing.
    /// Needs CAP_BPF (in practice root).
    pub fn load() -> Result<Self, XdpError> {
        let open = ObjectBuilder::default()
            .open_memory(object_bytes())
            .map_err(|e| XdpError::bpf("cannot open the embedded XDP object", e))?;
        let obj = open.load().map_err(|e| {
            XdpError::bpf(
                "cannot load the XDP program (needs root / CAP_BPF and a kernel with BPF; \
                 the verifier log is on stderr)",
                e,
            )
        })?;
        let prog = obj
            .progs()
            .find(|p| p.name() == PROGRAM_NAME)
            .ok_or_else(|| XdpError::new(format!("the XDP object has no program {PROGRAM_NAME}")))?;
        let prog =
            prog.as_fd().try_clone_to_owned().map_err(|e| XdpError::new(format!("cannot dup the program fd: {e}")))?;
        let map = |name: &str| -> Result<MapHandle, XdpError> {
            let m = obj
                .maps()
                .find(|m| m.name() == name)
                .ok_or_else(|| XdpError::new(format!("the XDP object has no map {name}")))?;
            MapHandle::try_from(&m).map_err(|e| XdpError::bpf(format!("map {name}"), e))
        };
        let p = XdpProgram {
            prog,
            xsks: map("xsks_map")?,
            vips: map("vips")?,
            sources: map("sources")?,
            cookie_cfg: map("cookie_cfg")?,
            stats: map("stats")?,
            attachment: None,
        };
        // floodgate.h and abi.rs must agree; the BTF says what C compiled.
        let check = |what: &str, got: u32, want: usize| {
            if got as usize != want {
                return Err(XdpError::new(format!(
                    "{what} is {got} bytes in the BPF object but {want} in abi.rs: \
                     bpf/floodgate.h and engine/src/link/xdp/abi.rs disagree"
                )));
            }
            Ok(())
        };
        check("vips key", p.vips.key_size(), size_of::<VipKey>())?;
        check("vips value", p.vips.value_size(), size_of::<VipConfig>())?;
        check("sources key", p.sources.key_size(), size_of::<SourceKey>())?;
        check("sources value", p.sources.value_size(), size_of::<SourcePorts>())?;
        check("cookie_cfg value", p.cookie_cfg.value_size(), size_of::<CookieConfig>())?;
        check("stats value", p.stats.value_size(), size_of::<BpfStats>())?;
        Ok(p)
    }

    /// Attaches the program to `ifname` in `mode` and returns the mode
    /// obtained. Fails with a clear message if the interface is missing,
    /// already has an XDP program, or (mode `Native`) its driver has no XDP.
    pub fn attach(&mut self, ifname: &str, mode: XdpMode) -> Result<AttachedMode, XdpError> {
        if let Some(a) = &self.attachment {
            return Err(XdpError::new(format!("the XDP program is already attached to {}", a.ifname)));
        }
        let ifindex = ifindex(ifname)?;
        let (link, native_error) = match mode {
            XdpMode::Native => (self.link_create(ifname, ifindex, AttachedMode::Native)?, None),
            XdpMode::Generic => (self.link_create(ifname, ifindex, AttachedMode::Generic)?, None),
            XdpMode::Auto => match self.link_create(ifname, ifindex, AttachedMode::Native) {
                Ok(l) => (l, None),
                // Busy is busy in every mode: do not hide it behind a fallback.
                Err(e) if e.errno() == Some(libc::EBUSY) => return Err(e),
                Err(e) => (self.link_create(ifname, ifindex, AttachedMode::Generic)?, Some(e.to_string())),
            },
        };
        let mode = query_mode(ifindex).unwrap_or(if native_error.is_some() || mode == XdpMode::Generic {
            AttachedMode::Generic
        } else {
            AttachedMode::Native
        });
        self.attachment = Some(Attachment { link, ifname: ifname.to_string(), ifindex, mode, native_error });
        Ok(mode)
    }

    fn link_create(&self, ifname: &str, ifindex: u32, mode: AttachedMode) -> Result<OwnedFd, XdpError> {
        let flags = match mode {
            AttachedMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            AttachedMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        };
        let opts = libbpf_sys::bpf_link_create_opts {
            sz: size_of::<libbpf_sys::bpf_link_create_opts>() as _,
            flags,
            ..Default::default()
        };
        // SAFETY: plain syscall wrapper; `opts` outlives the call.
        let fd =
            unsafe { libbpf_sys::bpf_link_create(self.prog.as_raw_fd(), ifindex as i32, libbpf_sys::BPF_XDP, &opts) };
        if fd < 0 {
            let errno = -fd;
            let what = match errno {
                libc::EBUSY | libc::EEXIST => format!(
                    "interface {ifname} already has an XDP program (another floodgate, or a \
                     leftover: see `ip link show dev {ifname}`, remove with \
                     `ip link set dev {ifname} xdp off`)"
                ),
                libc::EOPNOTSUPP => {
                    format!("the driver of {ifname} does not support {mode} XDP (use --xdp-mode generic or auto)")
                }
                libc::EPERM => "attaching XDP needs root (CAP_NET_ADMIN and CAP_BPF)".to_string(),
                _ => format!("cannot attach the XDP program to {ifname} in {mode} mode"),
            };
            return Err(XdpError::os(what, errno));
        }
        // SAFETY: bpf_link_create returned a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Detaches the program (closes the bpf_link). Idempotent.
    pub fn detach(&mut self) {
        self.attachment = None;
    }

    /// The mode obtained by [`attach`](Self::attach), or `None` if detached.
    pub fn attached_mode(&self) -> Option<AttachedMode> {
        self.attachment.as_ref().map(|a| a.mode)
    }

    /// Why native mode was refused when `Auto` fell back to generic.
    pub fn native_fallback_reason(&self) -> Option<&str> {
        self.attachment.as_ref().and_then(|a| a.native_error.as_deref())
    }

    pub fn ifname(&self) -> Option<&str> {
        self.attachment.as_ref().map(|a| a.ifname.as_str())
    }

    pub fn ifindex(&self) -> Option<u32> {
        self.attachment.as_ref().map(|a| a.ifindex)
    }

    /// The bpf_link's fd, if attached (e.g. to pin it).
    pub fn link_fd(&self) -> Option<RawFd> {
        self.attachment.as_ref().map(|a| a.link.as_raw_fd())
    }

    /// Adds one owned destination, its SYNs left to the engine.
    pub fn add_vip(&self, addr: IpAddr, port: u16) -> Result<(), XdpError> {
        self.set_vip_config(addr, port, &VipConfig::default())
    }

    /// Adds one owned destination, or changes an owned one, with how its
    /// listener answers SYNs (`VIP_XDP_COOKIES`: with cookies, in XDP; the
    /// cookie secrets must be set first, [`Self::set_cookie_config`]).
    pub fn set_vip_config(&self, addr: IpAddr, port: u16, cfg: &VipConfig) -> Result<(), XdpError> {
        let key = VipKey::new(addr, port).as_bytes();
        self.vips.update(&key, &cfg.as_bytes(), MapFlags::ANY).map_err(|e| {
            XdpError::bpf(format!("cannot add VIP {addr} port {port} (at most {} pairs)", self.vips.max_entries()), e)
        })
    }

    /// An owned destination's SYN settings; `None` if it is not owned.
    pub fn vip_config(&self, addr: IpAddr, port: u16) -> Option<VipConfig> {
        let key = VipKey::new(addr, port).as_bytes();
        self.vips.lookup(&key, MapFlags::ANY).ok().flatten().and_then(|v| VipConfig::from_bytes(&v))
    }

    /// Writes the engine's cookie secrets and clock for SYN cookies in XDP.
    pub fn set_cookie_config(&self, cfg: &CookieConfig) -> Result<(), XdpError> {
        self.cookie_cfg
            .update(&0u32.to_ne_bytes(), &cfg.as_bytes(), MapFlags::ANY)
            .map_err(|e| XdpError::bpf("cannot write the XDP cookie configuration", e))
    }

    /// Removes one owned destination; absent is not an error.
    pub fn remove_vip(&self, addr: IpAddr, port: u16) -> Result<(), XdpError> {
        let key = VipKey::new(addr, port).as_bytes();
        match self.vips.delete(&key) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(XdpError::bpf(format!("cannot remove VIP {addr} port {port}"), e)),
        }
    }

    /// Makes the owned set exactly every `(address, port)` in `vips`.
    pub fn set_vips(&self, vips: &[(IpAddr, u16)]) -> Result<(), XdpError> {
        let want: Vec<[u8; 20]> = vips.iter().map(|&(a, p)| VipKey::new(a, p).as_bytes()).collect();
        let stale: Vec<Vec<u8>> = self.vips.keys().filter(|k| !want.iter().any(|w| w[..] == k[..])).collect();
        for k in stale {
            let _ = self.vips.delete(&k);
        }
        for &(a, p) in vips {
            self.add_vip(a, p)?;
        }
        Ok(())
    }

    /// The owned set, as map keys.
    pub fn vips(&self) -> Vec<VipKey> {
        self.vips
            .keys()
            .filter(|k| k.len() == 20)
            .map(|k| {
                let mut addr = [0u8; 16];
                addr.copy_from_slice(&k[..16]);
                VipKey { addr, port_be: u16::from_ne_bytes([k[16], k[17]]), pad: 0 }
            })
            .collect()
    }

    /// Makes the owned sources exactly the addresses `first..=last`, each
    /// with the ports `lo..=hi`: TCP segments to them (a backend's replies
    /// to the proxy) go to the AF_XDP sockets; their other ports stay the
    /// kernel's. An empty range (`last < first`) owns none.
    pub fn set_sources(&self, first: Ipv4Addr, last: Ipv4Addr, lo: u16, hi: u16) -> Result<(), XdpError> {
        let (a, b) = (u32::from(first), u32::from(last));
        let n = b.checked_add(1).map_or(0, |e| e.saturating_sub(a));
        if n > self.sources.max_entries() {
            return Err(XdpError::new(format!(
                "{n} source addresses, more than the {} of the sources map (FG_MAX_SOURCES in bpf/floodgate.h)",
                self.sources.max_entries()
            )));
        }
        let stale: Vec<Vec<u8>> = self
            .sources
            .keys()
            .filter(|k| {
                k.len() != 16
                    || !k.starts_with(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])
                    || !(a..=b).contains(&u32::from_be_bytes([k[12], k[13], k[14], k[15]]))
            })
            .collect();
        for k in stale {
            let _ = self.sources.delete(&k);
        }
        let ports = SourcePorts { port_lo: lo, port_hi: hi, pad: 0 }.as_bytes();
        for i in 0..n {
            let addr = IpAddr::V4(Ipv4Addr::from(a + i));
            self.sources
                .update(&SourceKey::new(addr).addr, &ports, MapFlags::ANY)
                .map_err(|e| XdpError::bpf(format!("cannot add the source address {addr}"), e))?;
        }
        Ok(())
    }

    /// The ports owned on source address `addr`, if it is one.
    pub fn source_ports(&self, addr: IpAddr) -> Option<(u16, u16)> {
        let key = SourceKey::new(addr).addr;
        let v = self.sources.lookup(&key, MapFlags::ANY).ok().flatten()?;
        SourcePorts::from_bytes(&v).map(|p| (p.port_lo, p.port_hi))
    }

    /// Points RX queue `queue` at the AF_XDP socket `fd`. The kernel removes
    /// the entry by itself when the socket is closed.
    pub fn register_xsk(&self, queue: u32, fd: RawFd) -> Result<(), XdpError> {
        if queue >= self.xsks.max_entries() {
            return Err(XdpError::new(format!(
                "queue {queue} is beyond the XSKMAP's {} entries (FG_MAX_QUEUES in bpf/floodgate.h)",
                self.xsks.max_entries()
            )));
        }
        self.xsks
            .update(&queue.to_ne_bytes(), &(fd as u32).to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| XdpError::bpf(format!("cannot register the AF_XDP socket of queue {queue}"), e))
    }

    /// Removes RX queue `queue`'s socket: its frames go to the kernel again.
    pub fn unregister_xsk(&self, queue: u32) -> Result<(), XdpError> {
        match self.xsks.delete(&queue.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(XdpError::bpf(format!("cannot unregister queue {queue}"), e)),
        }
    }

    /// The verdict counters, summed over CPUs.
    pub fn stats(&self) -> Result<BpfStats, XdpError> {
        let per_cpu = self
            .stats
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| XdpError::bpf("cannot read the XDP stats map", e))?
            .unwrap_or_default();
        let mut sum = BpfStats::default();
        for v in per_cpu {
            if let Some(s) = BpfStats::from_bytes(&v) {
                sum.add(&s);
            }
        }
        Ok(sum)
    }

    /// Runs the program once on `frame` through BPF_PROG_TEST_RUN (RX queue 0,
    /// no device) and returns its verdict (`XDP_PASS` = 2, `XDP_REDIRECT` = 4,
    /// ...). The kernel refuses frames shorter than an Ethernet header (EINVAL).
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, XdpError> {
        self.test_run_output(frame).map(|(verdict, _)| verdict)
    }

    /// [`Self::test_run`], also returning the frame as the program left it
    /// (say, the SYN-ACK it wrote for XDP_TX).
    pub fn test_run_output(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = libbpf_sys::bpf_test_run_opts {
            sz: size_of::<libbpf_sys::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            data_out: out.as_mut_ptr().cast(),
            data_size_out: out.len() as u32,
            repeat: 1,
            ..Default::default()
        };
        // SAFETY: the kernel reads `frame.len()` bytes from `data_in` and
        // writes at most `data_size_out` bytes into `out`.
        let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(self.prog.as_raw_fd(), &mut opts) };
        if rc < 0 {
            return Err(XdpError::os(format!("BPF_PROG_TEST_RUN on a {}-byte frame failed", frame.len()), -rc));
        }
        out.truncate(opts.data_size_out as usize);
        Ok((opts.retval, out))
    }
}

/// The index of interface `ifname` in this network namespace.
pub fn ifindex(ifname: &str) -> Result<u32, XdpError> {
    let c = CString::new(ifname).map_err(|_| XdpError::new(format!("bad interface name {ifname:?}")))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(XdpError::new(format!("no interface named {ifname} in this network namespace (see `ip link`)")));
    }
    Ok(idx)
}

/// How many RX queues `ifname` has, or `None` if neither sysfs nor ethtool
/// can tell. sysfs shows the namespace it was mounted in (`ip netns exec`
/// remounts it; a thread that only `setns`-ed does not), so its answer is used
/// only when its ifindex matches; otherwise ETHTOOL_GCHANNELS, which asks this
/// thread's namespace.
pub fn rx_queue_count(ifname: &str) -> Option<u32> {
    let idx = ifindex(ifname).ok()?;
    let sys_idx = std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if sys_idx == Some(idx) {
        if let Ok(dir) = std::fs::read_dir(format!("/sys/class/net/{ifname}/queues")) {
            let n = dir.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count();
            return Some(n as u32);
        }
    }
    ethtool_rx_channels(ifname)
}

/// ETHTOOL_GCHANNELS: max(rx, combined) channels in use.
fn ethtool_rx_channels(ifname: &str) -> Option<u32> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    #[repr(C)]
    #[derive(Default)]
    struct EthtoolChannels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [libc::c_char; libc::IFNAMSIZ],
        data: *mut libc::c_void,
        _pad: [u8; 16],
    }
    let bytes = ifname.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut ch = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..Default::default() };
    let mut req = IfReq { name: [0; libc::IFNAMSIZ], data: (&mut ch as *mut EthtoolChannels).cast(), _pad: [0; 16] };
    for (d, &b) in req.name.iter_mut().zip(bytes) {
        *d = b as libc::c_char;
    }
    // SAFETY: a datagram socket used only for the ioctl and closed below;
    // `req` and `ch` outlive the ioctl.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let rc = libc::ioctl(fd, SIOCETHTOOL as _, &mut req as *mut IfReq);
        libc::close(fd);
        if rc < 0 {
            return None;
        }
    }
    Some(ch.rx_count.max(ch.combined_count))
}

/// The XDP mode the kernel reports for `ifindex`.
fn query_mode(ifindex: u32) -> Option<AttachedMode> {
    let mut opts =
        libbpf_sys::bpf_xdp_query_opts { sz: size_of::<libbpf_sys::bpf_xdp_query_opts>() as _, ..Default::default() };
    // SAFETY: plain netlink query into `opts`.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc < 0 {
        return None;
    }
    match opts.attach_mode as u32 {
        libbpf_sys::XDP_ATTACHED_DRV => Some(AttachedMode::Native),
        libbpf_sys::XDP_ATTACHED_SKB => Some(AttachedMode::Generic),
        _ => None,
    }
}
