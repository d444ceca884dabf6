//! reflector: a stateless SYN-ACK reflector, the ceiling for benchmarks of
//! floodgate's SYN path. Answers every TCP SYN to (VIP, port) (RFC 9293 §3.5:
//! SYN → SYN+ACK, `ack = seq + 1`) by rewriting the received frame in place:
//! MACs, IPs and ports swapped, an ISN of its own, one MSS option, checksums
//! recomputed (RFC 1071). No connection state. Two modes:
//!
//! * `--mode af-xdp` (the default): the smallest complete AF_XDP server on
//!   `link::Xdp`. Attaches floodgate's XDP program, owns (VIP, port), binds
//!   one AF_XDP socket per queue (one thread each) and sends each reply back
//!   with `RxAction::Transmit`. Every other owned frame is dropped (counted).
//!   It is both the end-to-end test of the link and the ceiling of an
//!   AF_XDP server. Plain byte manipulation on purpose: it depends on nothing
//!   but the link.
//! * `--mode xdp-tx`: the same reply written by an XDP program
//!   (`bpf/reflector.bpf.c`, built by `build.rs`, embedded here only) and sent
//!   with XDP_TX, never leaving the driver: the ceiling of the interface
//!   itself. IPv4, untagged, one port; attached in native mode through a
//!   bpf_link; everything it does not answer passes to the kernel. On veth,
//!   XDP_TX queues the frame on the peer but wakes the peer's NAPI only if
//!   the peer runs an XDP program itself (drivers/net/veth.c,
//!   `veth_xdp_flush`; GRO alone is not enough): floodgate-load attaches one;
//!   for Linux's own TCP on the peer, attach one there too (this reflector in
//!   xdp-tx mode with a VIP nobody uses passes everything).
//!
//! ```text
//! reflector --iface fg-s0 --vip 198.18.0.1 --port 7 [--mode af-xdp|xdp-tx]
//!           [--seconds 30]
//!           af-xdp only: [--queues 0,1] [--xdp-mode native|generic|auto]
//!                        [--zero-copy require|auto|off] [--frame-size 4096]
//! ```
//! Runs until SIGINT/SIGTERM or `--seconds` (default 30, at most 3600), then
//! prints its counters; the XDP program is detached on every exit path (the
//! bpf_link dies with the process even on SIGKILL).

use std::mem::size_of;
use std::net::IpAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use floodgate::link::xdp::{Xdp, XdpConfig, XdpMode, XdpProgram, ZeroCopy};
use floodgate::link::{Link, RxAction};
use libbpf_rs::{MapCore, MapFlags, ObjectBuilder};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

const USAGE: &str = "usage: reflector --iface IF --vip ADDR --port N[,N...] [--mode af-xdp|xdp-tx] [--seconds S]
  af-xdp only: [--queues Q[,Q...]] [--xdp-mode native|generic|auto] [--zero-copy require|auto|off] \
[--frame-size 2048|4096]
  xdp-tx: one --vip (IPv4 or IPv6) and one --port";

/// Who writes and sends the SYN-ACKs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// floodgate's XDP program steers SYNs to AF_XDP sockets; user space replies.
    AfXdp,
    /// `bpf/reflector.bpf.c` replies itself with XDP_TX.
    XdpTx,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "af-xdp" => Ok(Mode::AfXdp),
            "xdp-tx" => Ok(Mode::XdpTx),
            _ => Err(format!("--mode: expected af-xdp or xdp-tx, got {s:?}")),
        }
    }
}

struct Args {
    mode: Mode,
    iface: String,
    vip: IpAddr,
    ports: Vec<u16>,
    queues: Vec<u32>,
    xdp_mode: XdpMode,
    zero_copy: ZeroCopy,
    seconds: u64,
    frame_size: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut iface, mut vip, mut ports) = (None, None, Vec::new());
    // Options only the AF_XDP mode has, as given (xdp-tx refuses them).
    let mut af_xdp_only = Vec::new();
    let mut a = Args {
        mode: Mode::AfXdp,
        iface: String::new(),
        vip: IpAddr::from([0, 0, 0, 0]),
        ports: Vec::new(),
        queues: vec![0],
        xdp_mode: XdpMode::Auto,
        zero_copy: ZeroCopy::Auto,
        seconds: 30,
        frame_size: 4096,
    };
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag}: bad {what} {val:?}");
        if matches!(flag.as_str(), "--queues" | "--xdp-mode" | "--zero-copy" | "--frame-size") {
            af_xdp_only.push(flag.clone());
        }
        match flag.as_str() {
            "--mode" => a.mode = val.parse()?,
            "--iface" => iface = Some(val.clone()),
            "--vip" => vip = Some(val.parse().map_err(|_| bad("address"))?),
            "--port" => {
                for p in val.split(',') {
                    ports.push(p.parse().map_err(|_| bad("port"))?);
                }
            }
            "--queues" => {
                a.queues.clear();
                for q in val.split(',') {
                    a.queues.push(q.parse().map_err(|_| bad("queue"))?);
                }
            }
            "--xdp-mode" => a.xdp_mode = val.parse().map_err(|e| format!("{e}"))?,
            "--zero-copy" => a.zero_copy = val.parse().map_err(|e| format!("{e}"))?,
            "--seconds" => {
                a.seconds = val.parse().map_err(|_| bad("number"))?;
                if a.seconds == 0 || a.seconds > 3600 {
                    return Err("--seconds must be between 1 and 3600".into());
                }
            }
            "--frame-size" => a.frame_size = val.parse().map_err(|_| bad("size"))?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    a.iface = iface.ok_or("--iface is required")?;
    a.vip = vip.ok_or("--vip is required")?;
    if ports.is_empty() {
        return Err("--port is required".into());
    }
    a.ports = ports;
    if a.mode == Mode::XdpTx {
        if let Some(flag) = af_xdp_only.first() {
            return Err(format!("{flag} applies to --mode af-xdp only"));
        }
        if a.ports.len() != 1 || a.ports[0] == 0 {
            return Err("--mode xdp-tx answers exactly one port: --port N, N > 0".into());
        }
    }
    Ok(a)
}

/// What the reflector did with owned frames, per queue.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    syn: u64,
    synack_sent: u64,
    not_syn: u64,
    malformed: u64,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("reflector: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    install_signal_handlers();
    let result = match args.mode {
        Mode::AfXdp => run_af_xdp(&args),
        Mode::XdpTx => run_xdp_tx(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reflector: {e}");
            ExitCode::FAILURE
        }
    }
}

/// stdout lines that never panic (a closed pipe is not the reflector's problem).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

macro_rules! out_nonl {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
}

/// `--mode af-xdp`: floodgate's XDP program and one AF_XDP socket per queue.
fn run_af_xdp(args: &Args) -> Result<(), String> {
    let mut prog = XdpProgram::load().map_err(|e| e.to_string())?;
    let mode = prog.attach(&args.iface, args.xdp_mode).map_err(|e| e.to_string())?;
    out_nonl!("reflector: {} XDP {mode}", args.iface);
    if let Some(why) = prog.native_fallback_reason() {
        out_nonl!(" (native refused: {why})");
    }
    out!();
    let prog = Arc::new(prog);

    let cfg = XdpConfig { frame_size: args.frame_size, zero_copy: args.zero_copy, ..XdpConfig::default() };
    let mut links = Vec::new();
    for &q in &args.queues {
        let x = Xdp::bind(&prog, &args.iface, q, &cfg).map_err(|e| e.to_string())?;
        out!("reflector: queue {q} bound, {}", x.bind_mode());
        links.push(x);
    }
    // Claimed only once every queue has its socket: until then a frame to
    // the VIP (a previous run's straggler, an early SYN) is the kernel's,
    // so `redirect_no_xsk` counts only a queue left without a socket.
    let vips: Vec<(IpAddr, u16)> = args.ports.iter().map(|&p| (args.vip, p)).collect();
    prog.set_vips(&vips).map_err(|e| e.to_string())?;
    out!("reflector: ready, answering SYNs to {} port(s) {:?} for {} s", args.vip, args.ports, args.seconds);

    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let workers: Vec<_> = links.into_iter().map(|x| std::thread::spawn(move || serve(x, deadline))).collect();
    let mut total = Counters::default();
    for w in workers {
        let (q, c, s) = w.join().map_err(|_| "a queue thread panicked".to_string())?;
        out!(
            "reflector: queue {q}: syn={} synack_sent={} not_syn={} malformed={}",
            c.syn,
            c.synack_sent,
            c.not_syn,
            c.malformed
        );
        let link: Vec<String> = s.fields().iter().map(|(k, v)| format!("{k}={v}")).collect();
        out!("reflector: queue {q} link: {}", link.join(" "));
        total.syn += c.syn;
        total.synack_sent += c.synack_sent;
        total.not_syn += c.not_syn;
        total.malformed += c.malformed;
    }
    if let Ok(s) = prog.stats() {
        let f: Vec<String> = s.fields().iter().map(|(k, v)| format!("{k}={v}")).collect();
        out!("reflector: xdp: {}", f.join(" "));
    }
    out!(
        "reflector: total syn={} synack_sent={} not_syn={} malformed={}",
        total.syn,
        total.synack_sent,
        total.not_syn,
        total.malformed
    );
    // Last owner: dropping it closes the bpf_link and detaches the program.
    drop(prog);
    Ok(())
}

/// Name of the XDP entry point in `bpf/reflector.bpf.c`.
const XDP_TX_PROGRAM: &str = "reflector_xdp_tx";

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

/// The XDP_TX reflector's object, compiled by `build.rs`, 8-byte aligned for libelf.
static XDP_TX_OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/reflector.bpf.o")));

/// `struct reflector_cfg` (bpf/reflector.h): the program's `.rodata`, set before load.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ReflectorCfg {
    /// IPv4 address in network order, as the program compares it (0: none).
    vip: [u8; 4],
    /// TCP port in network order.
    port: [u8; 2],
    pad: u16,
    isn_key: u32,
    /// IPv6 address (all zero: none).
    vip6: [u8; 16],
}

/// `struct reflector_stats` (bpf/reflector.h), one CPU's or summed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ReflectorStats {
    tx: u64,
    pass_not_syn: u64,
    pass_malformed: u64,
    pass_other: u64,
}

const _: () = assert!(size_of::<ReflectorCfg>() == 28);
const _: () = assert!(size_of::<ReflectorStats>() == 32);

impl ReflectorCfg {
    /// The program answers SYNs to `vip` (either family) and `port`.
    fn new(vip: IpAddr, port: u16, isn_key: u32) -> ReflectorCfg {
        let (v4, v6) = match vip {
            IpAddr::V4(a) => (a.octets(), [0; 16]),
            IpAddr::V6(a) => ([0; 4], a.octets()),
        };
        ReflectorCfg { vip: v4, port: port.to_be_bytes(), pad: 0, isn_key, vip6: v6 }
    }

    fn to_bytes(self) -> [u8; 28] {
        let mut b = [0u8; 28];
        b[0..4].copy_from_slice(&self.vip);
        b[4..6].copy_from_slice(&self.port);
        b[6..8].copy_from_slice(&self.pad.to_ne_bytes());
        b[8..12].copy_from_slice(&self.isn_key.to_ne_bytes());
        b[12..28].copy_from_slice(&self.vip6);
        b
    }
}

impl ReflectorStats {
    /// One CPU's value as the kernel laid it out (native endian).
    fn from_bytes(b: &[u8]) -> Option<ReflectorStats> {
        let u = |i: usize| Some(u64::from_ne_bytes(b.get(i * 8..i * 8 + 8)?.try_into().ok()?));
        Some(ReflectorStats { tx: u(0)?, pass_not_syn: u(1)?, pass_malformed: u(2)?, pass_other: u(3)? })
    }

    fn add(&mut self, o: &ReflectorStats) {
        self.tx += o.tx;
        self.pass_not_syn += o.pass_not_syn;
        self.pass_malformed += o.pass_malformed;
        self.pass_other += o.pass_other;
    }

    fn fields(&self) -> [(&'static str, u64); 4] {
        [
            ("tx", self.tx),
            ("pass_not_syn", self.pass_not_syn),
            ("pass_malformed", self.pass_malformed),
            ("pass_other", self.pass_other),
        ]
    }
}

/// `--mode xdp-tx`: `bpf/reflector.bpf.c` answers in the driver; this
/// process only configures, attaches, waits and reports.
fn run_xdp_tx(args: &Args) -> Result<(), String> {
    let vip = args.vip;
    let port = args.ports[0];
    let ifindex = floodgate::link::xdp::program::ifindex(&args.iface).map_err(|e| e.to_string())?;

    let mut builder = ObjectBuilder::default();
    builder.name("reflector").map_err(|e| e.to_string())?;
    let mut open =
        builder.open_memory(&XDP_TX_OBJECT.0).map_err(|e| format!("cannot open the embedded XDP_TX object: {e}"))?;
    {
        let mut rodata = open
            .maps_mut()
            .find(|m| m.name().to_string_lossy().ends_with(".rodata"))
            .ok_or("the XDP_TX object has no .rodata (struct reflector_cfg cfg)")?;
        let init = rodata.initial_value_mut().ok_or("the XDP_TX object's .rodata has no initial value")?;
        if init.len() != size_of::<ReflectorCfg>() {
            return Err(format!(
                "the XDP_TX object's .rodata is {} bytes, struct ReflectorCfg {}: \
                 bpf/reflector.h and examples/reflector.rs disagree",
                init.len(),
                size_of::<ReflectorCfg>()
            ));
        }
        init.copy_from_slice(&ReflectorCfg::new(vip, port, isn_key() as u32).to_bytes());
    }
    let obj = open.load().map_err(|e| {
        format!("cannot load the XDP_TX program (needs root / CAP_BPF; the verifier log is on stderr): {e}")
    })?;
    let stats = obj.maps().find(|m| m.name() == "stats").ok_or("the XDP_TX object has no map stats")?;
    if stats.value_size() as usize != size_of::<ReflectorStats>() {
        return Err(format!(
            "stats value is {} bytes in the XDP_TX object, struct ReflectorStats {}: \
             bpf/reflector.h and examples/reflector.rs disagree",
            stats.value_size(),
            size_of::<ReflectorStats>()
        ));
    }
    let prog = obj
        .progs_mut()
        .find(|p| p.name() == XDP_TX_PROGRAM)
        .ok_or_else(|| format!("the XDP_TX object has no program {XDP_TX_PROGRAM}"))?;
    // No mode flag: the kernel attaches natively whenever the driver has XDP.
    let link = prog.attach_xdp(ifindex as i32).map_err(|e| {
        format!(
            "cannot attach the XDP_TX program to {iface}: {e} (another XDP program there? \
             see `ip link show dev {iface}`)",
            iface = args.iface
        )
    })?;
    let mode = attached_mode(ifindex);
    out!("reflector: {} XDP {mode}, replies by XDP_TX", args.iface);
    if mode != "native" {
        drop(link);
        return Err(format!(
            "{} attached the program in {mode} mode, not native: XDP_TX there is no ceiling",
            args.iface
        ));
    }
    out!("reflector: ready, answering SYNs to {vip} port {port} with XDP_TX for {} s", args.seconds);

    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    while !STOP.load(Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Detach first, so the counters read are final.
    drop(link);
    let per_cpu = stats
        .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
        .map_err(|e| format!("cannot read the XDP_TX stats map: {e}"))?
        .unwrap_or_default();
    let mut total = ReflectorStats::default();
    for v in &per_cpu {
        if let Some(s) = ReflectorStats::from_bytes(v) {
            total.add(&s);
        }
    }
    let f: Vec<String> = total.fields().iter().map(|(k, v)| format!("{k}={v}")).collect();
    out!("reflector: xdp: {}", f.join(" "));
    out!(
        "reflector: total syn={} synack_sent={} not_syn={} malformed={}",
        total.tx,
        total.tx,
        total.pass_not_syn,
        total.pass_malformed
    );
    Ok(())
}

/// The XDP mode the kernel reports for `ifindex`.
fn attached_mode(ifindex: u32) -> &'static str {
    let mut opts =
        libbpf_sys::bpf_xdp_query_opts { sz: size_of::<libbpf_sys::bpf_xdp_query_opts>() as _, ..Default::default() };
    // SAFETY: plain netlink query into `opts`.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc < 0 {
        return "unknown";
    }
    match opts.attach_mode as u32 {
        libbpf_sys::XDP_ATTACHED_DRV => "native",
        libbpf_sys::XDP_ATTACHED_SKB => "generic",
        libbpf_sys::XDP_ATTACHED_HW => "offload",
        libbpf_sys::XDP_ATTACHED_MULTI => "multi",
        _ => "none",
    }
}

/// One queue's loop: busy while frames come, 10 ms poll() sleeps when idle.
fn serve(mut x: Xdp, deadline: Instant) -> (u32, Counters, floodgate::link::xdp::XdpLinkStats) {
    let mut c = Counters::default();
    let isn_key = isn_key();
    while !STOP.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = x.poll_rx(64, |frame, _tx| match syn_to_synack(frame, isn_key) {
            Ok(len) => {
                c.syn += 1;
                c.synack_sent += 1;
                RxAction::Transmit(len)
            }
            Err(Skip::NotSyn) => {
                c.not_syn += 1;
                RxAction::Release
            }
            Err(Skip::Malformed) => {
                c.malformed += 1;
                RxAction::Release
            }
        });
        x.flush();
        if n == 0 && x.tx_outstanding() == 0 {
            let mut pfd = libc::pollfd { fd: x.raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 10) };
        }
    }
    // Let the last SYN-ACKs leave before the socket closes (bounded).
    for _ in 0..100 {
        if x.tx_outstanding() == 0 {
            break;
        }
        x.flush();
        std::thread::sleep(Duration::from_millis(1));
    }
    (x.queue(), c, x.stats())
}

fn isn_key() -> u64 {
    let mut k = [0u8; 8];
    let _ = getrandom::getrandom(&mut k);
    u64::from_ne_bytes(k) | 1
}

#[derive(Debug, PartialEq, Eq)]
enum Skip {
    /// Owned, well-formed, but not a bare SYN (ACKs, data, FIN, RST, SYN-ACK).
    NotSyn,
    /// Too short, bad lengths, IP options, fragments: not answered.
    Malformed,
}

const ETH_HLEN: usize = 14;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// splitmix64 over the 4-tuple: a stand-in for the engine's RFC 6528 ISN.
fn isn(key: u64, tuple: &[u8]) -> u32 {
    let mut h = key;
    for c in tuple.chunks(8) {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        h ^= u64::from_ne_bytes(w);
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
    }
    h as u32
}

/// Rewrites a SYN frame (Ethernet, up to two VLAN tags, IPv4 without options
/// or IPv6 without extension headers) into the SYN-ACK answering it; returns
/// the reply's length. Never panics: every index is checked first.
fn syn_to_synack(f: &mut [u8], isn_key: u64) -> Result<usize, Skip> {
    if f.len() < ETH_HLEN {
        return Err(Skip::Malformed);
    }
    let mut off = 12;
    let mut proto = be16(f, off);
    for _ in 0..2 {
        if proto != 0x8100 && proto != 0x88a8 {
            break;
        }
        off += 4;
        if f.len() < off + 2 {
            return Err(Skip::Malformed);
        }
        proto = be16(f, off);
    }
    let l3 = off + 2;
    let (ip_hlen, tcp_len_in) = match proto {
        0x0800 => {
            if f.len() < l3 + 20 || f[l3] != 0x45 || f[l3 + 9] != 6 {
                return Err(Skip::Malformed);
            }
            if be16(f, l3 + 6) & 0x3fff != 0 {
                return Err(Skip::Malformed); // fragment
            }
            let tot = be16(f, l3 + 2) as usize;
            if tot < 20 || l3 + tot > f.len() {
                return Err(Skip::Malformed);
            }
            (20, tot - 20)
        }
        0x86dd => {
            if f.len() < l3 + 40 || f[l3] >> 4 != 6 || f[l3 + 6] != 6 {
                return Err(Skip::Malformed);
            }
            let plen = be16(f, l3 + 4) as usize;
            if l3 + 40 + plen > f.len() {
                return Err(Skip::Malformed);
            }
            (40, plen)
        }
        _ => return Err(Skip::Malformed),
    };
    let t = l3 + ip_hlen;
    if tcp_len_in < 20 || f.len() < t + 20 {
        return Err(Skip::Malformed);
    }
    let doff = (f[t + 12] >> 4) as usize * 4;
    if doff < 20 || doff > tcp_len_in {
        return Err(Skip::Malformed);
    }
    if f[t + 13] & (TCP_SYN | TCP_ACK | TCP_RST) != TCP_SYN {
        return Err(Skip::NotSyn);
    }

    // The reply: 20-byte TCP header plus MSS when the frame has room for it.
    let with_mss = f.len() >= t + 24;
    let tcp_len = if with_mss { 24 } else { 20 };
    let client_seq = be32(f, t + 4);

    // Ethernet: back to the MAC the frame came from.
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    // IP: swap addresses, fix lengths.
    let (addr_off, addr_len) = if ip_hlen == 20 { (l3 + 12, 4) } else { (l3 + 8, 16) };
    for i in 0..addr_len {
        f.swap(addr_off + i, addr_off + addr_len + i);
    }
    if ip_hlen == 20 {
        f[l3 + 1] = 0; // TOS
        f[l3 + 2..l3 + 4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        f[l3 + 4..l3 + 8].copy_from_slice(&[0, 0, 0x40, 0]); // id 0, DF
        f[l3 + 8] = 64; // TTL
        f[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
        let c = csum_fold(csum_add(0, &f[l3..l3 + 20]));
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        f[l3 + 4..l3 + 6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        f[l3 + 7] = 64; // hop limit
    }
    // TCP: swap ports, our ISN, ack their SYN.
    for i in 0..2 {
        f.swap(t + i, t + 2 + i);
    }
    let our_isn = isn(isn_key, &f[addr_off..addr_off + 2 * addr_len]) ^ be32(f, t);
    f[t + 4..t + 8].copy_from_slice(&our_isn.to_be_bytes());
    f[t + 8..t + 12].copy_from_slice(&client_seq.wrapping_add(1).to_be_bytes());
    f[t + 12] = ((tcp_len / 4) as u8) << 4;
    f[t + 13] = TCP_SYN | TCP_ACK;
    f[t + 14..t + 16].copy_from_slice(&65535u16.to_be_bytes());
    f[t + 16..t + 20].copy_from_slice(&[0, 0, 0, 0]); // checksum, urgent
    if with_mss {
        let mss: u16 = if ip_hlen == 20 { 1460 } else { 1440 };
        f[t + 20..t + 24].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
    }
    let mut sum = csum_add(0, &f[addr_off..addr_off + 2 * addr_len]);
    sum += 6 + tcp_len as u32;
    let c = csum_fold(csum_add(sum, &f[t..t + tcp_len]));
    f[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
    Ok(t + tcp_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn_v4(vlan: bool, opts: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        if vlan {
            f.extend_from_slice(&[0x81, 0, 0, 5]);
        }
        f.extend_from_slice(&[8, 0]);
        let tcp_len = 20 + opts.len();
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 9, 0x40, 0, 63, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x9c, 0x40, 0, 7]); // 40000 -> 7
        f.extend_from_slice(&1000u32.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, ((tcp_len / 4) as u8) << 4, TCP_SYN, 0xfa, 0xf0, 0, 0, 0, 0]);
        f.extend_from_slice(opts);
        f
    }

    fn syn_v6() -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 24, 6, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x9c, 0x40, 0, 7]);
        f.extend_from_slice(&77u32.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 6 << 4, TCP_SYN, 0xfa, 0xf0, 0, 0, 0, 0, 2, 4, 5, 0xb4]);
        f
    }

    fn tcp_csum_ok(f: &[u8], addr_off: usize, addr_len: usize, t: usize, len: usize) -> bool {
        let mut s = csum_add(0, &f[addr_off..addr_off + 2 * addr_len]);
        s += 6 + (len - t) as u32;
        csum_fold(csum_add(s, &f[t..len])) == 0
    }

    #[test]
    fn v4_syn_becomes_synack() {
        let opts = [2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
        let mut f = syn_v4(false, &opts);
        let len = syn_to_synack(&mut f, 42).unwrap();
        assert_eq!(len, 14 + 20 + 24);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&f[14 + 12..14 + 20], &[198, 18, 0, 1, 198, 18, 0, 2]);
        assert_eq!(csum_fold(csum_add(0, &f[14..34])), 0, "IP checksum");
        assert_eq!(be16(&f, 34), 7);
        assert_eq!(be16(&f, 36), 40000);
        assert_eq!(be32(&f, 42), 1001, "ack = seq + 1");
        assert_eq!(f[47], TCP_SYN | TCP_ACK);
        assert!(tcp_csum_ok(&f, 26, 4, 34, len));
    }

    #[test]
    fn vlan_and_v6_and_bare_syn() {
        let mut f = syn_v4(true, &[]);
        f.resize(64, 0);
        let len = syn_to_synack(&mut f, 1).unwrap();
        assert_eq!(len, 18 + 20 + 24);
        assert!(tcp_csum_ok(&f, 30, 4, 38, len));

        let mut f = syn_v4(false, &[]); // 54 bytes: no room for MSS
        let len = syn_to_synack(&mut f, 1).unwrap();
        assert_eq!(len, 54);
        assert!(tcp_csum_ok(&f, 26, 4, 34, len));

        let mut f = syn_v6();
        let len = syn_to_synack(&mut f, 1).unwrap();
        assert_eq!(len, 14 + 40 + 24);
        assert_eq!(be16(&f, 18), 24);
        assert_eq!(be32(&f, 14 + 40 + 8), 78);
        assert!(tcp_csum_ok(&f, 22, 16, 54, len));
    }

    #[test]
    fn non_syns_and_garbage_are_skipped_without_panic() {
        let mut ack = syn_v4(false, &[]);
        ack[47] = TCP_ACK;
        assert_eq!(syn_to_synack(&mut ack, 1), Err(Skip::NotSyn));
        let mut synack = syn_v4(false, &[]);
        synack[47] = TCP_SYN | TCP_ACK;
        assert_eq!(syn_to_synack(&mut synack, 1), Err(Skip::NotSyn));
        let full = syn_v4(true, &[2, 4, 5, 0xb4]);
        for len in 0..full.len() {
            let mut cut = full[..len].to_vec();
            assert_eq!(syn_to_synack(&mut cut, 1), Err(Skip::Malformed), "cut at {len}");
        }
        let mut x: u64 = 1;
        for _ in 0..10_000 {
            let mut buf: Vec<u8> = (0..(x % 100) as usize)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (x >> 33) as u8
                })
                .collect();
            let _ = syn_to_synack(&mut buf, 1);
        }
    }
}
