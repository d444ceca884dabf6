//! floodgate-load: a load generator on floodgate itself (active opens over
//! AF_XDP), so the client is not the bottleneck that a kernel client
//! becomes. One thread per queue, each with its own endpoint and its own
//! share of the source ports; every run is bounded by --duration and/or
//! --count, prints a progress line each second and ends with totals and
//! percentiles (text, and JSON with --json).

use clap::{Parser, ValueEnum};
use floodgate::link::xdp::{
    BusyPollConfig, BusyPollMode, BusyPollState, Xdp, XdpConfig, XdpMode, XdpProgram, ZeroCopy,
};
use floodgate::link::Link;
use floodgate::neigh;
use floodgate::shard;
use floodgate::tcp::{Capacity, Endpoint, Secrets, TcpConfig};
use floodgate::time::Instant as FgInstant;
use floodgate_bench::load::hold::{self as holdmod, HoldApp, HoldConfig, HoldTotals, RunPhase};
use floodgate_bench::load::synflood::{FloodTotals, SynFlood};
use floodgate_bench::load::{busy, report, LoadApp, LoadConfig, Mode, Totals};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BusyPollArg {
    Off,
    Auto,
    On,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// Connect, GET with Connection: close, read, close.
    Cps,
    /// Keep-alive connections, requests back to back.
    Rps,
    /// SYNs that never complete; counts SYN-ACKs.
    Synflood,
    /// tcpkali-like: messages echoed and checked, connections churned.
    Echo,
    /// Hold --held keep-alive connections open (a request on each every --interval), and while
    /// they are held run keep-alive bursts (--rps-conns) and Connection: close connections
    /// (--cps-conns); reports held, rates, errors and resident memory of both ends each second.
    Hold,
}

#[derive(Parser, Debug)]
#[command(name = "floodgate-load", about = "Load generator on floodgate's own TCP over AF_XDP", version)]
struct Args {
    #[arg(value_enum)]
    mode: ModeArg,
    /// Interface to send from (its peer leads to the target).
    #[arg(long)]
    iface: String,
    /// Target address and port, `[addr]:port` for IPv6 [default: 198.18.0.1:80, with -6
    /// [2001:db8::1]:80].
    #[arg(long)]
    target: Option<SocketAddr>,
    /// Source addresses, of the target's family: a range A-B (IPv4 or IPv6, counted as numbers)
    /// or a comma list; they must be routed back to this interface [default: the testbed's
    /// client addresses, 198.18.0.10-198.18.0.73, with -6 2001:db8::10 to 2001:db8::73 as
    /// deploy/testbed.sh writes them].
    #[arg(long)]
    sources: Option<String>,
    /// IPv6: the testbed's IPv6 target and client addresses as the defaults.
    #[arg(short = '6', long = "ipv6")]
    ipv6: bool,
    /// cps/rps/echo: also send SYNs as fast as the loop allows from these addresses (a range or
    /// list), in the same threads: a SYN flood beside the measured load. Their SYN-ACKs are not
    /// taken by this program; they go to the kernel, which should drop them (nft), as replies to
    /// spoofed sources vanish.
    #[arg(long)]
    flood_sources: Option<String>,
    /// SYNs per second of that flood, over all threads; 0 = as fast as the loop allows.
    #[arg(long, default_value_t = 0)]
    flood_rate: u32,
    /// RX/TX queues to use, one thread each.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    queues: Vec<u32>,
    /// CPUs to pin the queue threads to, in the order of --queues [default: queue N's thread on
    /// CPU N, when the machine has a CPU N for every queue]. On veth an XDP_TX reply (a SYN
    /// cookie answered in the server's XDP program) lands on the RX queue numbered after the CPU
    /// that sent the SYN, so a thread that wanders to another CPU misses its SYN-ACKs.
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// New connections (or SYNs) per second over all threads; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// Connections open at once, over all threads.
    #[arg(long, default_value_t = 256)]
    concurrency: u32,
    /// Seconds to run (at most 3600).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stop after this many connections (cps, echo).
    #[arg(long)]
    count: Option<u64>,
    /// Echo: bytes per message and messages per connection.
    #[arg(long, default_value_t = 128)]
    size: usize,
    #[arg(long, default_value_t = 10)]
    messages: u32,
    /// HTTP path to request.
    #[arg(long, default_value = "/")]
    path: String,
    /// hold: connections to hold open (from the sources' first ports; the rest of the ports go
    /// to the Connection: close connections).
    #[arg(long, default_value_t = 1000)]
    held: u32,
    /// hold: seconds between two requests on each held connection (below the server's
    /// keep-alive timeout).
    #[arg(long, default_value_t = 60.0)]
    interval: f64,
    /// hold: held connections issuing requests back to back at a time, --burst requests each
    /// before the next idle ones take over.
    #[arg(long, default_value_t = 64)]
    rps_conns: u32,
    #[arg(long, default_value_t = 100)]
    burst: u16,
    /// hold: Connection: close connections at a time, while the connections are held.
    #[arg(long, default_value_t = 256)]
    cps_conns: u32,
    /// hold: source addresses of the Connection: close connections (a range or list), all their
    /// ports [default: the --sources, on the ports the held connections leave].
    #[arg(long)]
    close_sources: Option<String>,
    /// hold: held connections opening (SYN to first response) at a time.
    #[arg(long, default_value_t = 1024)]
    open_concurrency: u32,
    /// rps/echo: open all --concurrency connections first and start the requests or messages
    /// once they are open; --duration counts from then (each queue thread: its share).
    #[arg(long)]
    open_first: bool,
    /// hold (and rps/echo with --open-first): seconds opening the connections may take at most;
    /// then the run goes on with those that opened.
    #[arg(long, default_value_t = 300)]
    ramp_timeout: u64,
    /// hold: after the measured phase, send one more request on every held connection and
    /// count the answers (`verified`); at most this many seconds (0: no check).
    #[arg(long, default_value_t = 0)]
    verify_timeout: u64,
    /// hold: the server's process, for its resident memory [default: the newest process named
    /// `floodgate`].
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Preferred busy polling of the sockets, as `floodgate serve --busy-poll`: each queue
    /// thread runs its NAPI poll itself (no NAPI thread, no yields) where the driver gives the
    /// socket a NAPI ID; where it does not (veth), said once and the run goes on without.
    #[arg(long, value_enum, default_value = "off")]
    busy_poll: BusyPollArg,
    /// SO_BUSY_POLL microseconds with --busy-poll.
    #[arg(long, default_value_t = 20)]
    busy_poll_usec: u32,
    /// AF_XDP RX ring size per queue (frames, a power of two): a client
    /// holding many connections that all send at once needs room for their
    /// bursts, or the kernel drops what the ring cannot take
    /// (`kernel_rx_ring_full` in the queue lines).
    #[arg(long, default_value_t = 2048)]
    rx_ring: u32,
    #[arg(long, value_enum, default_value = "auto")]
    xdp_mode: XdpModeArg,
    #[arg(long, value_enum, default_value = "auto")]
    zero_copy: ZeroCopyArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum XdpModeArg {
    Native,
    Generic,
    Auto,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ZeroCopyArg {
    Require,
    Auto,
    Off,
}

static STOP: AtomicBool = AtomicBool::new(false);
extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

impl Args {
    fn target(&self) -> SocketAddr {
        self.target.unwrap_or(if self.ipv6 {
            SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 80))
        } else {
            SocketAddr::from((Ipv4Addr::new(198, 18, 0, 1), 80))
        })
    }

    /// `--sources`, or the testbed's client addresses of the target's family.
    fn sources(&self) -> Result<Vec<IpAddr>, String> {
        match &self.sources {
            Some(s) => parse_sources(s),
            None if self.target().is_ipv6() => {
                // deploy/testbed.sh adds 2001:db8::$i for i in 10..=73: hex groups that read
                // like the IPv4 octets, not one numeric range.
                (10..=73).map(|i| format!("2001:db8::{i}").parse().map_err(|_| format!("bad address ::{i}"))).collect()
            }
            None => parse_sources("198.18.0.10-198.18.0.73"),
        }
    }
}

fn parse_sources(s: &str) -> Result<Vec<IpAddr>, String> {
    if let Some((a, b)) = s.split_once('-') {
        let a: IpAddr = a.trim().parse().map_err(|_| format!("bad address {a:?}"))?;
        let b: IpAddr = b.trim().parse().map_err(|_| format!("bad address {b:?}"))?;
        let (lo, hi) = match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
            _ => return Err(format!("range {s:?} mixes IPv4 and IPv6")),
        };
        if hi < lo || hi - lo > 65535 {
            return Err(format!("bad range {s:?}"));
        }
        return Ok((lo..=hi)
            .map(|x| match a {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(x as u32)),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(x)),
            })
            .collect());
    }
    s.split(',').map(|x| x.trim().parse().map_err(|_| format!("bad address {x:?}"))).collect()
}

/// Every source of `what` in the target's family: a segment cannot cross families.
fn same_family(what: &str, sources: &[IpAddr], target: SocketAddr) -> Result<(), String> {
    match sources.iter().find(|a| a.is_ipv6() != target.is_ipv6()) {
        Some(a) => Err(format!("{what} {a} is not of the target's family ({})", target.ip())),
        None => Ok(()),
    }
}

/// Per-second reports from the queue threads.
enum Report {
    Load(u32, Totals),
    Flood(u32, FloodTotals),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r = run(args);
    busy::restore();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floodgate-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut args: Args) -> Result<(), String> {
    if args.cpus.is_empty() {
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        if args.queues.iter().all(|&q| (q as usize) < online) {
            args.cpus = args.queues.iter().map(|&q| q as usize).collect();
        }
    }
    if args.duration == 0 || args.duration > 3600 {
        return Err("--duration must be between 1 and 3600 seconds".into());
    }
    let target = args.target();
    if args.ipv6 && target.is_ipv4() {
        return Err(format!("-6 with an IPv4 --target {target}"));
    }
    let sources = args.sources()?;
    let flood_sources = match &args.flood_sources {
        Some(_) if args.mode == ModeArg::Synflood => return Err("--flood-sources is for cps, rps and echo".into()),
        Some(f) => parse_sources(f)?,
        None => Vec::new(),
    };
    let close_sources = match &args.close_sources {
        Some(_) if args.mode != ModeArg::Hold => return Err("--close-sources is for hold".into()),
        Some(c) => parse_sources(c)?,
        None => Vec::new(),
    };
    same_family("source", &sources, target)?;
    same_family("flood source", &flood_sources, target)?;
    same_family("close source", &close_sources, target)?;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
    let src_mac = neigh::interface_mac(&args.iface).ok_or_else(|| format!("cannot read the MAC of {}", args.iface))?;
    let dst_mac = neigh::resolve_wait(&args.iface, target.ip(), Duration::from_secs(3))
        .ok_or_else(|| format!("no neighbour entry for {} on {} (is it reachable?)", target.ip(), args.iface))?;

    let mut prog = XdpProgram::load().map_err(|e| e.to_string())?;
    let mode = match args.xdp_mode {
        XdpModeArg::Native => XdpMode::Native,
        XdpModeArg::Generic => XdpMode::Generic,
        XdpModeArg::Auto => XdpMode::Auto,
    };
    let attached = prog.attach(&args.iface, mode).map_err(|e| e.to_string())?;
    // Replies come to ephemeral ports of the source addresses: port 0 owns them all.
    let vips: Vec<(IpAddr, u16)> = sources.iter().chain(&close_sources).map(|&a| (a, 0)).collect();
    prog.set_vips(&vips).map_err(|e| e.to_string())?;
    let zc = match args.zero_copy {
        ZeroCopyArg::Require => ZeroCopy::Require,
        ZeroCopyArg::Auto => ZeroCopy::Auto,
        ZeroCopyArg::Off => ZeroCopy::Off,
    };
    let busy_poll = BusyPollConfig {
        mode: match args.busy_poll {
            BusyPollArg::Off => BusyPollMode::Off,
            BusyPollArg::Auto => BusyPollMode::Auto,
            BusyPollArg::On => BusyPollMode::On,
        },
        usec: args.busy_poll_usec.max(1),
        ..BusyPollConfig::default()
    };
    if !args.rx_ring.is_power_of_two() || args.rx_ring < 64 {
        return Err(format!("--rx-ring {}: a power of two of at least 64", args.rx_ring));
    }
    let xcfg = XdpConfig { zero_copy: zc, busy_poll, rx_ring: args.rx_ring, ..XdpConfig::default() };
    let mut links = Vec::new();
    for &q in &args.queues {
        let link = Xdp::bind(&prog, &args.iface, q, &xcfg).map_err(|e| e.to_string())?;
        busy::at_bind(&link);
        links.push(link);
    }
    let mode_name = format!("{:?}", args.mode).to_lowercase();
    println!(
        "floodgate-load {mode_name}: {} -> {} from {} sources, {} queue(s), XDP {attached}, {}",
        args.iface,
        target,
        sources.len(),
        links.len(),
        links[0].bind_mode()
    );

    if args.mode == ModeArg::Hold {
        let mut links = links;
        if links.len() != 1 {
            return Err("hold runs on one queue (--queues N, one number)".into());
        }
        let link = links.pop().expect("one link");
        let cpu = args.cpus.first().copied();
        if let Some(c) = cpu {
            let _ = shard::runner::pin_to_cpu(c);
        }
        let (text, json) = hold(link, &args, (sources, close_sources), src_mac, dst_mac)?;
        print!("{text}");
        if let Some(path) = &args.json {
            std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        drop(prog);
        return Ok(());
    }

    let (rtx, rrx) = mpsc::channel::<Report>();
    let nq = links.len() as u32;
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let args = Arc::new(args);
    let mut threads = Vec::new();
    for (k, link) in links.into_iter().enumerate() {
        let (args, sources, rtx, flood_sources) = (args.clone(), sources.clone(), rtx.clone(), flood_sources.clone());
        let cpu = args.cpus.get(k).copied();
        threads.push(std::thread::spawn(move || {
            if let Some(c) = cpu {
                let _ = shard::runner::pin_to_cpu(c);
            }
            worker(k as u32, nq, link, &args, (sources, flood_sources), src_mac, dst_mac, deadline, rtx)
        }));
    }
    drop(rtx);

    // Progress, once a second.
    let start = Instant::now();
    let mut load = vec![Totals::default(); nq as usize];
    let mut flood = vec![FloodTotals::default(); nq as usize];
    let mut last = (Totals::default(), FloodTotals::default(), start);
    loop {
        match rrx.recv_timeout(Duration::from_millis(1000)) {
            Ok(Report::Load(k, t)) => load[k as usize] = t,
            Ok(Report::Flood(k, t)) => flood[k as usize] = t,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last.2.elapsed() >= Duration::from_secs(1) {
            let dt = last.2.elapsed().as_secs_f64();
            let el = start.elapsed().as_secs_f64();
            if args.mode == ModeArg::Synflood {
                let t = sum_flood(&flood);
                println!(
                    "[{el:6.1}s] syn/s {:>9.0}  syn-ack/s {:>9.0}  tx full {}",
                    (t.syns_sent - last.1.syns_sent) as f64 / dt,
                    (t.synacks - last.1.synacks) as f64 / dt,
                    t.tx_full
                );
                last.1 = t;
            } else {
                let t = sum_load(&load);
                println!("{}", report::progress_line(el, &t, &last.0, dt));
                last.0 = t;
            }
            last.2 = Instant::now();
        }
    }
    let seconds = args.duration as f64;
    let mut merged: Option<LoadApp> = None;
    let mut ftotal = FloodTotals::default();
    for t in threads {
        match t.join().map_err(|_| "a queue thread panicked".to_string())? {
            Outcome::Load(app, beside) => {
                ftotal = add_flood(&ftotal, &beside);
                match merged.as_mut() {
                    None => merged = Some(*app),
                    Some(m) => m.merge(&app),
                }
            }
            Outcome::Flood(t) => ftotal = add_flood(&ftotal, &t),
        }
    }
    let (text, json) = match merged {
        Some(app) if args.flood_sources.is_some() => {
            let (sent, rate) = (ftotal.syns_sent, ftotal.syns_sent as f64 / seconds);
            let json = report::json(&app, &mode_name, seconds);
            let json = format!(
                "{},\"flood_syns_sent\":{sent},\"flood_syns_per_sec\":{rate:.1}}}",
                json.trim_end().strip_suffix('}').unwrap_or(&json)
            );
            let text = report::summary(&app, &mode_name, seconds);
            (format!("{text}flood beside it: {sent} SYNs ({rate:.0}/s)\n"), json)
        }
        Some(app) => (report::summary(&app, &mode_name, seconds), report::json(&app, &mode_name, seconds)),
        None => {
            let t = ftotal;
            (
                format!(
                    "mode synflood, {seconds:.1} s\nsyns sent {} ({:.0}/s), syn-acks {} ({:.0}/s), rsts {}, tx full {}\n",
                    t.syns_sent,
                    t.syns_sent as f64 / seconds,
                    t.synacks,
                    t.synacks as f64 / seconds,
                    t.rsts,
                    t.tx_full
                ),
                format!(
                    "{{\"mode\":\"synflood\",\"seconds\":{seconds:.3},\"syns_sent\":{},\"syns_per_sec\":{:.1},\"synacks\":{},\"synacks_per_sec\":{:.1},\"rsts\":{},\"tx_full\":{}}}",
                    t.syns_sent,
                    t.syns_sent as f64 / seconds,
                    t.synacks,
                    t.synacks as f64 / seconds,
                    t.rsts,
                    t.tx_full
                ),
            )
        }
    };
    print!("{text}");
    if let Ok(s) = prog.stats() {
        let f: Vec<String> = s.fields().iter().filter(|(_, v)| *v > 0).map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("xdp verdicts on {}: {}", args.iface, f.join(" "));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    drop(prog);
    Ok(())
}

fn sum_load(v: &[Totals]) -> Totals {
    let mut s = Totals::default();
    for t in v {
        s.merge(t);
    }
    s
}

fn add_flood(a: &FloodTotals, b: &FloodTotals) -> FloodTotals {
    FloodTotals {
        syns_sent: a.syns_sent + b.syns_sent,
        tx_full: a.tx_full + b.tx_full,
        synacks: a.synacks + b.synacks,
        rsts: a.rsts + b.rsts,
        other: a.other + b.other,
    }
}

fn sum_flood(v: &[FloodTotals]) -> FloodTotals {
    v.iter().fold(FloodTotals::default(), |a, b| add_flood(&a, b))
}

/// CLOCK_MONOTONIC: time since boot.
fn boot_clock() -> FgInstant {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    FgInstant::from_micros(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000)
}

enum Outcome {
    /// The load, and the SYN flood sent beside it (`--flood-sources`).
    Load(Box<LoadApp>, FloodTotals),
    Flood(FloodTotals),
}

#[allow(clippy::too_many_arguments)]
fn worker(
    k: u32,
    n: u32,
    mut link: Xdp,
    args: &Args,
    (sources, flood_sources): (Vec<IpAddr>, Vec<IpAddr>),
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    deadline: Instant,
    reports: mpsc::Sender<Report>,
) -> Outcome {
    let epoch = Instant::now();
    let mut turn = busy::Turn::default();
    // Time since boot, not since this process started, and a fixed key: the
    // timestamps and ISNs of a tuple keep rising from one run to the next, so
    // a server still holding TIME-WAIT for it from the last run accepts the
    // new SYN (RFC 6191) instead of refusing it as an old duplicate (PAWS).
    let clock = boot_clock;
    let share = |x: u32| (x / n + u32::from(k < x % n)).max(1);
    let mut last_report = Instant::now();
    if args.mode == ModeArg::Synflood {
        let mut f = SynFlood::new(src_mac, dst_mac, args.target(), sources, 0x9e37_79b9_7f4a_7c15 ^ k as u64);
        let rate = if args.rate == 0 { None } else { Some(share(args.rate) as u64) };
        while Instant::now() < deadline && !STOP.load(Ordering::Relaxed) {
            let due = rate.map_or(64, |r| {
                (epoch.elapsed().as_micros() as u64 * r / 1_000_000 + 1).saturating_sub(f.totals.syns_sent)
            });
            // Answers first: a generator that only sends would count
            // its own RX ring overflowing, not the server.
            let mut got = f.receive(&mut link, 256);
            while got == 256 {
                got = f.receive(&mut link, 256);
            }
            if due > 0 {
                f.send(&mut link, due.min(64));
            }
            link.flush();
            turn.end(&mut link, got);
            if last_report.elapsed() >= Duration::from_millis(500) {
                let _ = reports.send(Report::Flood(k, f.totals));
                last_report = Instant::now();
            }
        }
        // Late SYN-ACKs.
        let end = Instant::now() + Duration::from_millis(200);
        while Instant::now() < end {
            f.receive(&mut link, 64);
            link.flush();
        }
        let _ = reports.send(Report::Flood(k, f.totals));
        let st: Vec<String> =
            link.stats().fields().iter().filter(|(_, v)| *v > 0).map(|(n, v)| format!("{n}={v}")).collect();
        eprintln!("queue {}: link {}{}", link.queue(), st.join(" "), busy_note(&link, &turn));
        return Outcome::Flood(f.totals);
    }

    let mode = match args.mode {
        ModeArg::Cps => Mode::Cps,
        ModeArg::Rps => Mode::Rps,
        _ => Mode::Echo,
    };
    // Each thread takes its own slice of the source ports.
    let span = (65535 - 1024) / n;
    let ports = (1024 + (k * span) as u16, 1024 + ((k + 1) * span - 1) as u16);
    let conns = share(args.concurrency).max(1);
    let cfg = TcpConfig { keepalive: None, ..TcpConfig::default() };
    let cap = Capacity {
        connections: (conns * 2).max(1024),
        time_wait: 1 << 20,
        buffers: (conns * 2).max(1024),
        buffer_size: 16384,
        events: 65536,
        ..Capacity::default()
    };
    // A load generator keeps no secrets worth having: its per-tuple offsets
    // must be the same in every run (see the clock above).
    let mut ep = Endpoint::new(cfg, cap, src_mac, Secrets::from_bytes(*b"floodgate-load: a fixed test key"), clock());
    let lc = LoadConfig {
        mode,
        target: args.target(),
        sources,
        ports,
        next_hop: dst_mac,
        rate: (args.rate > 0).then(|| share(args.rate)),
        concurrency: conns,
        count: args.count.map(|c| (c / n as u64) + u64::from((k as u64) < c % n as u64)),
        path: args.path.clone(),
        message_size: args.size.max(1),
        messages_per_conn: args.messages.max(1),
        open_first: args.open_first,
    };
    let mut app = LoadApp::new(lc, cap.connections as usize);
    let mut flood = (!flood_sources.is_empty())
        .then(|| SynFlood::new(src_mac, dst_mac, args.target(), flood_sources, 0x51f1_00d5 ^ k as u64));
    let mut drain_until = None;
    // With --open-first, the run's clock starts when the load does.
    let ramp_deadline = Instant::now() + Duration::from_secs(args.ramp_timeout);
    let mut deadline = (!args.open_first).then_some(deadline);
    loop {
        let now = clock();
        if deadline.is_none() {
            if !app.released() && Instant::now() >= ramp_deadline {
                eprintln!(
                    "queue {}: {} of {} connections open after {} s; the load starts with those",
                    link.queue(),
                    app.totals.connects_ok,
                    conns,
                    args.ramp_timeout
                );
                app.release(&mut ep, now);
            }
            if app.released() {
                deadline = Some(Instant::now() + Duration::from_secs(args.duration));
            }
        }
        let over = deadline.is_some_and(|d| Instant::now() >= d);
        if drain_until.is_none() && (over || STOP.load(Ordering::Relaxed)) {
            app.stop();
            drain_until = Some(Instant::now() + floodgate_bench::load::DRAIN);
        }
        app.tick(&mut ep, now);
        if let Some(f) = flood.as_mut().filter(|_| drain_until.is_none()) {
            let due = match args.flood_rate {
                0 => 64,
                r => (epoch.elapsed().as_micros() as u64 * share(r) as u64 / 1_000_000 + 1)
                    .saturating_sub(f.totals.syns_sent),
            };
            if due > 0 {
                f.send(&mut link, due.min(64));
                link.flush();
            }
        }
        let rx = shard::step(&mut ep, &mut link, &mut app, now, 64);
        // As the engine's shards do: yield to the NAPI thread that may
        // share this core and do our receive (not while busy polling).
        turn.end(&mut link, rx);
        if app.finished() || drain_until.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if last_report.elapsed() >= Duration::from_millis(500) {
            let _ = reports.send(Report::Load(k, app.totals));
            last_report = Instant::now();
        }
    }
    let _ = reports.send(Report::Load(k, app.totals));
    let st: Vec<String> =
        link.stats().fields().iter().filter(|(_, v)| *v > 0).map(|(n, v)| format!("{n}={v}")).collect();
    eprintln!("queue {}: link {}{}", link.queue(), st.join(" "), busy_note(&link, &turn));
    let mut tcp = Vec::new();
    ep.stats.for_each(|name, _, v| {
        if v > 0 {
            tcp.push(format!("{name}={v}"));
        }
    });
    eprintln!("queue {}: tcp {}", link.queue(), tcp.join(" "));
    Outcome::Load(Box::new(app), flood.map(|f| f.totals).unwrap_or_default())
}

/// One second of a hold run, as reported.
struct Sample {
    t: f64,
    phase: RunPhase,
    totals: HoldTotals,
    rps: f64,
    cps: f64,
    pings: f64,
    client_rss: u64,
    server_rss: u64,
}

/// `hold`: ramp, measured phase, optional verify sweep; per-second lines and the summary.
fn hold(
    mut link: Xdp,
    args: &Args,
    (sources, close_sources): (Vec<IpAddr>, Vec<IpAddr>),
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
) -> Result<(String, String), String> {
    let mut turn = busy::Turn::default();
    if args.interval <= 0.0 || args.interval > 3600.0 {
        return Err("--interval must be between 0 and 3600 seconds".into());
    }
    // The held connections take the first ports of every source, a little
    // spare for tuples still closing from an earlier run; the rest of the
    // ports go to the Connection: close connections.
    let s = sources.len() as u64;
    let held_span = (args.held as u64).div_ceil(s) + (args.held as u64).div_ceil(s) / 100 + 16;
    let held_last = 1024 + held_span - 1;
    if held_last > 65535 || (close_sources.is_empty() && held_last + 256 > 65535) {
        return Err(format!(
            "--held {} needs {held_span} ports on each of {s} sources, leaving fewer than 256 for the \
             Connection: close connections: add sources",
            args.held
        ));
    }
    let server_pid = args.server_pid.or_else(|| holdmod::find_process("floodgate"));
    let server_rss = || server_pid.and_then(|p| holdmod::rss_bytes(Some(p))).unwrap_or(0);
    let client_rss = || holdmod::rss_bytes(None).unwrap_or(0);
    let cfg = HoldConfig {
        target: args.target(),
        sources: sources.clone(),
        close_sources: if close_sources.is_empty() { sources } else { close_sources.clone() },
        held_ports: (1024, held_last as u16),
        close_ports: if close_sources.is_empty() { (held_last as u16 + 1, 65535) } else { (1024, 65535) },
        next_hop: dst_mac,
        held: args.held,
        interval: floodgate::time::Duration::from_micros((args.interval * 1e6) as u64),
        rps_conns: args.rps_conns,
        burst: args.burst.max(1),
        cps_conns: args.cps_conns,
        open_concurrency: args.open_concurrency.max(1),
        path: args.path.clone(),
    };
    // Requests in flight at once, each a chunk each way at most: the loads,
    // the ramp, and the keep-alive requests of a few seconds (an answer
    // whose ACK is late keeps its chunk; a pool below 1/8 free refuses writes).
    let in_flight = args.rps_conns + args.cps_conns + 2 * args.open_concurrency + 4096;
    let keepalive = (args.held as f64 / args.interval * 4.0) as u32;
    let cap = Capacity {
        connections: args.held + 2 * args.cps_conns + args.open_concurrency + 1024,
        time_wait: 65536,
        buffers: 2 * (in_flight + keepalive),
        buffer_size: 4096,
        events: 1 << 18,
        ..Capacity::default()
    };
    let client_before = client_rss();
    let tcfg = TcpConfig { keepalive: None, ..TcpConfig::default() };
    let mut ep =
        Endpoint::new(tcfg, cap, src_mac, Secrets::from_bytes(*b"floodgate-load: a fixed test key"), boot_clock());
    let mut app = HoldApp::new(cfg, cap.connections as usize);
    let server_before = server_rss();
    println!(
        "hold: {} connections (ports {}-{} of each source), a request on each every {} s; then {} s with \
         {} connections in bursts of {} and {} Connection: close at a time; server pid {}",
        args.held,
        1024,
        held_last,
        args.interval,
        args.duration,
        args.rps_conns,
        args.burst,
        args.cps_conns,
        server_pid.map_or("unknown".to_string(), |p| p.to_string())
    );

    let start = Instant::now();
    let ramp_deadline = start + Duration::from_secs(args.ramp_timeout);
    let mut phase_start = start;
    let mut ramp_seconds = None;
    let mut ramp_complete = false;
    let mut at_hold = (HoldTotals::default(), 0u64, 0u64);
    let mut at_end = None;
    let mut verify_seconds = None;
    let mut samples: Vec<Sample> = Vec::new();
    let (mut last_t, mut last_tot) = (Instant::now(), HoldTotals::default());
    loop {
        let now = boot_clock();
        let rx = shard::step(&mut ep, &mut link, &mut app, now, 64);
        turn.end(&mut link, rx);
        let stop = STOP.load(Ordering::Relaxed);
        match app.phase() {
            RunPhase::Ramp if app.ramp_done() || Instant::now() >= ramp_deadline || stop => {
                ramp_complete = app.totals.opened >= args.held as u64;
                ramp_seconds = Some(start.elapsed().as_secs_f64());
                if !ramp_complete {
                    eprintln!(
                        "hold: ramp ended with {} of {} connections held ({})",
                        app.totals.held,
                        args.held,
                        if stop { "stopped" } else { "timeout" }
                    );
                }
                at_hold = (app.totals, client_rss(), server_rss());
                app.set_phase(RunPhase::Hold);
                phase_start = Instant::now();
            }
            RunPhase::Hold if phase_start.elapsed() >= Duration::from_secs(args.duration) || stop => {
                at_end = Some((app.totals, phase_start.elapsed().as_secs_f64(), client_rss(), server_rss()));
                if args.verify_timeout == 0 || stop {
                    break;
                }
                app.set_phase(RunPhase::Verify);
                phase_start = Instant::now();
            }
            RunPhase::Verify
                if app.verify_done() || phase_start.elapsed() >= Duration::from_secs(args.verify_timeout) || stop =>
            {
                verify_seconds = Some(phase_start.elapsed().as_secs_f64());
                break;
            }
            _ => {}
        }
        if last_t.elapsed() >= Duration::from_secs(1) {
            let dt = last_t.elapsed().as_secs_f64();
            let t = app.totals;
            let smp = Sample {
                t: start.elapsed().as_secs_f64(),
                phase: app.phase(),
                totals: t,
                rps: (t.rps - last_tot.rps) as f64 / dt,
                cps: (t.cps - last_tot.cps) as f64 / dt,
                pings: (t.pings - last_tot.pings) as f64 / dt,
                client_rss: client_rss(),
                server_rss: server_rss(),
            };
            println!("{}", hold_line(&smp));
            samples.push(smp);
            last_t = Instant::now();
            last_tot = t;
        }
    }
    let st: Vec<String> =
        link.stats().fields().iter().filter(|(_, v)| *v > 0).map(|(n, v)| format!("{n}={v}")).collect();
    eprintln!("queue {}: link {}{}", link.queue(), st.join(" "), busy_note(&link, &turn));

    let t = app.totals;
    let (end_tot, seconds, client_end, server_end) =
        at_end.unwrap_or((t, phase_start.elapsed().as_secs_f64(), client_rss(), server_rss()));
    let h0 = at_hold.0;
    let rate = |a: u64, b: u64| (a - b) as f64 / seconds.max(1e-9);
    let (rps, cps, pings) = (rate(end_tot.rps, h0.rps), rate(end_tot.cps, h0.cps), rate(end_tot.pings, h0.pings));
    let per_conn = |after: u64, before: u64| {
        if h0.held == 0 {
            0.0
        } else {
            after.saturating_sub(before) as f64 / h0.held as f64
        }
    };
    let server_per_conn = per_conn(at_hold.2, server_before);
    let client_per_conn = per_conn(at_hold.1, client_before);
    let text = format!(
        "mode hold: {} of {} connections held after a ramp of {:.1} s{}\n\
         measured {seconds:.1} s: keep-alive {rps:.0} req/s in bursts, {cps:.0} conn/s Connection: close, \
         {pings:.0} keep-alive req/s on the held connections; {} held at the end\n\
         errors {} (connect {}, reset {}, timeout {}, bad {}, held lost {}, late {}, write failed {})\n\
         resident memory: server {} -> {} -> {} MiB ({server_per_conn:.0} B per held connection over the \
         ramp), client {} -> {} -> {} MiB ({client_per_conn:.0} B per held connection)\n{}",
        h0.held,
        args.held,
        ramp_seconds.unwrap_or(0.0),
        if ramp_complete { "" } else { " (INCOMPLETE)" },
        end_tot.held,
        t.errors(),
        t.connect_errors,
        t.resets,
        t.timeouts,
        t.bad_responses,
        t.held_lost,
        t.late,
        t.write_failed,
        server_before >> 20,
        at_hold.2 >> 20,
        server_end >> 20,
        client_before >> 20,
        at_hold.1 >> 20,
        client_end >> 20,
        match verify_seconds {
            Some(v) => format!("verify: {} of {} held connections answered in {v:.1} s\n", t.verified, end_tot.held),
            None => String::new(),
        }
    );
    let samples_json: Vec<String> = samples
        .iter()
        .map(|s| {
            format!(
                "{{\"t\":{:.2},\"phase\":\"{}\",\"held\":{},\"rps\":{:.1},\"cps\":{:.1},\"pings\":{:.1},\"errors\":{},\"client_rss\":{},\"server_rss\":{}}}",
                s.t,
                phase_name(s.phase),
                s.totals.held,
                s.rps,
                s.cps,
                s.pings,
                s.totals.errors(),
                s.client_rss,
                s.server_rss
            )
        })
        .collect();
    let json = format!(
        concat!(
            "{{\"mode\":\"hold\",\"held_target\":{},\"interval_s\":{},\"rps_conns\":{},\"burst\":{},\"cps_conns\":{},",
            "\"ramp_seconds\":{:.3},\"ramp_complete\":{},\"held_at_start\":{},\"held_at_end\":{},\"held_now\":{},",
            "\"seconds\":{:.3},\"rps\":{:.1},\"cps\":{:.1},\"pings_per_sec\":{:.1},",
            "\"verified\":{},\"verify_seconds\":{:.3},",
            "\"errors\":{},\"connect_errors\":{},\"resets\":{},\"timeouts\":{},\"bad_responses\":{},\"held_lost\":{},",
            "\"late\":{},\"write_failed\":{},",
            "\"server_pid\":{},\"server_rss_before\":{},\"server_rss_held\":{},\"server_rss_end\":{},",
            "\"server_bytes_per_held\":{:.1},\"client_rss_before\":{},\"client_rss_held\":{},\"client_rss_end\":{},",
            "\"client_bytes_per_held\":{:.1},\"samples\":[{}]}}"
        ),
        args.held,
        args.interval,
        args.rps_conns,
        args.burst,
        args.cps_conns,
        ramp_seconds.unwrap_or(0.0),
        ramp_complete,
        h0.held,
        end_tot.held,
        t.held,
        seconds,
        rps,
        cps,
        pings,
        t.verified,
        verify_seconds.unwrap_or(0.0),
        t.errors(),
        t.connect_errors,
        t.resets,
        t.timeouts,
        t.bad_responses,
        t.held_lost,
        t.late,
        t.write_failed,
        server_pid.unwrap_or(0),
        server_before,
        at_hold.2,
        server_end,
        server_per_conn,
        client_before,
        at_hold.1,
        client_end,
        client_per_conn,
        samples_json.join(",")
    );
    Ok((text, json))
}

fn phase_name(p: RunPhase) -> &'static str {
    match p {
        RunPhase::Ramp => "ramp",
        RunPhase::Hold => "hold",
        RunPhase::Verify => "verify",
    }
}

fn hold_line(s: &Sample) -> String {
    let t = &s.totals;
    format!(
        "[{:6.1}s] {:<6} held {:>8}  rps {:>8.0}  cps {:>7.0}  pings/s {:>7.0}  errors {} (connect {}, reset {}, \
         timeout {}, bad {}, lost {}, late {})  verified {}  rss client {} MiB server {} MiB",
        s.t,
        phase_name(s.phase),
        t.held,
        s.rps,
        s.cps,
        s.pings,
        t.errors(),
        t.connect_errors,
        t.resets,
        t.timeouts,
        t.bad_responses,
        t.held_lost,
        t.late,
        t.verified,
        s.client_rss >> 20,
        s.server_rss >> 20
    )
}

/// ` busy_poll=STATE yields=N` for a queue's closing line, with --busy-poll.
fn busy_note(link: &Xdp, turn: &busy::Turn) -> String {
    match link.busy_poll() {
        BusyPollState::Off => String::new(),
        s => format!(" busy_poll={} yields={}", s.as_str(), turn.yields),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_of_either_family() {
        let v4 = parse_sources("198.18.0.10-198.18.0.73").unwrap();
        assert_eq!((v4.len(), v4[63]), (64, "198.18.0.73".parse().unwrap()));
        let v6 = parse_sources("2001:db8::fffe-2001:db8::1:1").unwrap();
        let want: Vec<IpAddr> =
            ["2001:db8::fffe", "2001:db8::ffff", "2001:db8::1:0", "2001:db8::1:1"].map(|a| a.parse().unwrap()).to_vec();
        assert_eq!(v6, want, "a numeric range, carried across groups");
        assert!(parse_sources("198.18.0.1-2001:db8::1").unwrap_err().contains("mixes"));
        assert!(parse_sources("2001:db8::2-2001:db8::1").is_err());
        assert!(parse_sources("2001:db8::-2001:db8::1:0").is_err(), "more than 65536 addresses");
        assert_eq!(parse_sources("2001:db8::2, 198.18.0.2").unwrap().len(), 2);
    }

    #[test]
    fn minus_six_picks_the_testbeds_ipv6_addresses() {
        let a = Args::try_parse_from(["floodgate-load", "synflood", "--iface", "fg-c0", "-6"]).unwrap();
        assert_eq!(a.target(), "[2001:db8::1]:80".parse().unwrap());
        let s = a.sources().unwrap();
        assert_eq!((s.len(), s[0], s[63]), (64, "2001:db8::10".parse().unwrap(), "2001:db8::73".parse().unwrap()));
        let a = Args::try_parse_from(["floodgate-load", "cps", "--iface", "fg-c0", "--target", "[2001:db8::1]:8080"])
            .unwrap();
        assert!(a.sources().unwrap().iter().all(|s| s.is_ipv6()), "the default sources follow the target");
        let a = Args::try_parse_from(["floodgate-load", "cps", "--iface", "fg-c0"]).unwrap();
        assert_eq!(a.target(), "198.18.0.1:80".parse().unwrap());
        assert_eq!(a.sources().unwrap().len(), 64);
        let t = a.target();
        assert!(same_family("source", &parse_sources("2001:db8::10").unwrap(), t).is_err());
    }
}
