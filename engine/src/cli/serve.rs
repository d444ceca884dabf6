//! `floodgate serve`: attach the XDP program, bind one AF_XDP socket per
//! queue, start one shard per queue, then run the control thread: signals,
//! metrics scrapes, the shards' snapshots, drain and stop.
//!
//! Exit paths, all of which detach the XDP program (dropping the
//! `XdpProgram` closes its bpf_link; even a SIGKILL does, with the process):
//! * SIGINT/SIGTERM: the shards stop accepting (new SYNs get RST), the
//!   connections in the table get `--drain` to finish, then the rest are
//!   reset and the shards end. A second signal skips what is left of the drain.
//!   With `--announce-table` the VIP routes go first and the shards keep
//!   accepting for `--announce-wait` before the drain ([`super::announce`]);
//!   on every exit path the routes are removed with the control loop.
//! * A shard panics: it is caught in the shard, reported, and the others are
//!   stopped at once; the process exits with status 1.
//! * A shard stops turning, or the interface goes down or away, for
//!   `--stall-timeout` ([`super::watchdog`]): the shards are stopped and the
//!   process exits with status 1 (systemd restarts it). Shards that do not
//!   end within [`STOP_GRACE`] are left behind (not joined): the process
//!   exit ends them.
//! * Start-up fails: a clear message and status 1 (the program, if already
//!   attached, is dropped on the way out).
//!
//! With `--busy-poll`, the interface's `napi_defer_hard_irqs` and
//! `gro_flush_timeout` are set when the first shard reports busy polling
//! active, and restored on each of these paths (the `NapiTuning` is dropped
//! with the control loop); after a crash or SIGKILL the next start restores
//! them from the state file ([`crate::link::napi_tuning`]).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::admin::{Admin, Reloaded};
use super::announce::{Announcer, Health, Withhold};
use super::config::{AppKind, ProxySettings, Resolved, Settings};
use super::signals::{self, Signals};
use super::watchdog::{Change, Watchdog};
use super::xdp_cookies::XdpCookies;
use crate::app::echo::Echo;
use crate::app::http::Http;
use crate::app::proxy::Proxy;
use crate::app::sink::Sink;
use crate::app::App;
use crate::link::ifstate::IfWatch;
use crate::link::napi_tuning::{self, NapiTuning, Places};
use crate::link::vip_route::VipRoutes;
use crate::link::xdp::arms::Arms;
use crate::link::xdp::{self, Xdp, XdpProgram};
use crate::metrics::{self, Info, MetricsServer, Pages, View};
use crate::shard::handoff::{self, Handoff, SourceMap};
use crate::shard::runner::{self, allowed_cpus, Report, ShardSpec, BUSY_POLL_NAPI};
use crate::shard::{AppStats, Command, ShardHandle, Snapshot};
use crate::table::huge::HugePages;
use crate::tcp::{Endpoint, Secrets, Stats};

const SIGNAL: Token = Token(0);
const METRICS: Token = Token(1);
/// How often the control thread looks at its channels when nothing happens.
const CONTROL_TICK: Duration = Duration::from_millis(100);
/// How often the heartbeats and the link are looked at (at most).
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// How long stopping shards get to end before the process leaves without them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the serve command; `Err` is a message for the operator.
pub fn serve(cli: Settings) -> Result<(), String> {
    let reload = cli.config.clone().map(|path| Reload { cli: cli.clone(), path });
    let settings = match &cli.config {
        Some(path) => {
            let file = Settings::from_file(path)?;
            cli.over(file)
        }
        None => cli,
    };
    let running = reload.as_ref().map(|_| Reload::comparable(&settings)).unwrap_or_default();
    let cfg = settings.resolve(xdp::program::rx_queue_count)?;
    // A run that crashed while busy polling left the interface tuned.
    for (iface, v) in NapiTuning::recover(&Places::default()) {
        tracing::warn!(
            iface,
            napi_defer_hard_irqs = v.defer_hard_irqs,
            gro_flush_timeout = v.gro_flush_timeout,
            "restored the NAPI settings a previous run left changed (it did not exit cleanly)"
        );
    }
    let signals = Signals::install(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
        .map_err(|e| format!("cannot install the signal handlers: {e}"))?;

    let mut program = XdpProgram::load().map_err(|e| e.to_string())?;
    let mode = program.attach(&cfg.iface, cfg.xdp_mode).map_err(|e| e.to_string())?;
    match program.native_fallback_reason() {
        Some(why) => tracing::warn!(iface = %cfg.iface, "XDP attached in {mode} mode (native refused: {why})"),
        None => tracing::info!(iface = %cfg.iface, "XDP attached in {mode} mode"),
    }
    let owned: Vec<(IpAddr, u16)> = cfg.vips.iter().flat_map(|&v| cfg.ports.iter().map(move |&p| (v, p))).collect();
    let ifindex = xdp::program::ifindex(&cfg.iface).map_err(|e| e.to_string())?;
    let ifwatch = IfWatch::new(ifindex).map_err(|e| format!("socket for the link state: {e}"))?;
    let back_watch = match cfg.proxy.as_ref().and_then(|p| p.backend_iface.clone()) {
        Some(b) => {
            let i = xdp::program::ifindex(&b).map_err(|e| e.to_string())?;
            Some((IfWatch::new(i).map_err(|e| format!("socket for the link state: {e}"))?, b))
        }
        None => None,
    };
    let mac = crate::neigh::interface_mac(&cfg.iface)
        .ok_or_else(|| format!("cannot read the MAC address of {}", cfg.iface))?;
    let mut back = match cfg.proxy.as_ref().and_then(|p| p.backend_iface.as_deref()) {
        Some(b) => Some(BackArm::attach(b, cfg.xdp_mode, mac)?),
        None => None,
    };

    // The back arm without busy polling, which is the front's (the shard
    // probes, reports and tunes only the front socket).
    let mut back_xdp = cfg.xdp.clone();
    back_xdp.busy_poll.mode = xdp::BusyPollMode::Off;
    let mut links = Vec::with_capacity(cfg.queues as usize);
    for q in 0..cfg.queues {
        let front = bind(&program, &cfg.iface, q, &cfg.xdp)?;
        links.push(match &back {
            Some(b) => Arms::two(front, mac, bind(&b.program, &b.iface, q, &back_xdp)?, b.mac),
            None => Arms::one(front),
        });
    }
    // The VIPs are claimed only once every queue has its socket: a frame
    // steered before would find none (`redirect_no_xsk`) and go to the
    // kernel, which answers it with an RST.
    program.set_vips(&owned).map_err(|e| e.to_string())?;
    if cfg.announce.is_none() {
        // With --announce-table the routers bring the VIPs here (BGP).
        warn_unreachable_vips(&cfg);
    }

    let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    poll.registry()
        .register(&mut SourceFd(&signals.fd()), SIGNAL, Interest::READABLE)
        .map_err(|e| format!("poll: {e}"))?;
    let metrics = match cfg.metrics {
        Some(addr) => {
            let m = MetricsServer::bind(addr, poll.registry(), METRICS)
                .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
            tracing::info!("metrics at http://{addr}/metrics");
            Some(m)
        }
        None => None,
    };

    let backend_macs = match &cfg.proxy {
        Some(p) => match &back {
            Some(b) => proxy_start(&cfg, p, &b.program, b.mode)?,
            None => proxy_start(&cfg, p, &program, mode)?,
        },
        None => Vec::new(),
    };
    let cpus = cfg.cpus.clone().unwrap_or_else(allowed_cpus);
    let (report_tx, report_rx) = crossbeam_channel::bounded(4096);
    let epoch = std::time::Instant::now();
    let (clock_zero, secrets) = boot_state(epoch);
    let cookies = XdpCookies::start(&program, &cfg, owned, &secrets, clock_zero)?;
    let steering = cfg.proxy.as_ref().and_then(|_| proxy_rss(&cfg));
    let mut handoffs = match &cfg.proxy {
        Some(p) => proxy_mesh(&cfg, p),
        None => Vec::new(),
    }
    .into_iter();
    let mut shards = Vec::with_capacity(links.len());
    for (i, link) in links.into_iter().enumerate() {
        let hand = handoffs.next();
        let spec = ShardSpec {
            index: i,
            cpu: cpus.get(i % cpus.len().max(1)).copied(),
            epoch: clock_zero,
            busy_poll: cfg.xdp.busy_poll.mode,
        };
        let r = match cfg.app {
            AppKind::Http => {
                let http = super::apps::http_config(&cfg);
                let n = cfg.cap.connections as usize;
                start(spec, link, hand, &cfg, mac, None, &secrets, report_tx.clone(), move || Http::new(n, http))
            }
            AppKind::Echo => {
                let (n, idle) = (cfg.cap.connections as usize, cfg.idle_timeout);
                let echo = move || Echo::new(n).with_idle_timeout(idle);
                start(spec, link, hand, &cfg, mac, None, &secrets, report_tx.clone(), echo)
            }
            AppKind::Sink => {
                let idle = cfg.idle_timeout;
                let sink = move || Sink::new().with_idle_timeout(idle);
                start(spec, link, hand, &cfg, mac, None, &secrets, report_tx.clone(), sink)
            }
            AppKind::Proxy => {
                let n = cfg.cap.connections as usize;
                let p = cfg.proxy.as_ref().expect("resolved with --app proxy");
                let pc = super::apps::proxy_config(p, &backend_macs, i, steering.as_ref());
                let back_mac = back.as_ref().map(|b| b.mac);
                let proxy = move || Proxy::new(n, pc);
                start(spec, link, hand, &cfg, mac, back_mac, &secrets, report_tx.clone(), proxy)
            }
        };
        shards.push(r.map_err(|e| format!("cannot start shard {i}: {e}"))?);
    }
    drop(report_tx);
    let keepalive = match cfg.tcp.keepalive {
        Some(k) => format!("{:?}/{:?}/{}", k.idle, k.interval, k.probes),
        None => "off".into(),
    };
    tracing::info!(
        app = cfg.app.as_str(),
        shards = shards.len(),
        connections = cfg.cap.connections,
        time_wait = cfg.cap.time_wait,
        time_wait_v6 = cfg.cap.time_wait_v6,
        buffers = format!("{} x {} B", cfg.cap.buffers, cfg.cap.buffer_size),
        msl = ?cfg.tcp.msl,
        keepalive = %keepalive,
        syn_cookies = ?cfg.tcp.syn_cookies,
        xdp_syn_cookies = cfg.xdp_syn_cookies.as_str(),
        "serving {} on {} port{} {} (per-shard limits)",
        cfg.vips.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","),
        cfg.iface,
        if cfg.ports.len() == 1 { "" } else { "s" },
        cfg.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","),
    );

    let huge = HugePages::probe();
    if huge.reserved_pages > 0 {
        tracing::info!(
            reserved = huge.reserved_pages,
            free = huge.free_pages,
            "reserved huge pages of {} KiB: every table of at least one page takes them while they last, the rest \
             ask for transparent ones (the shards' ready lines say how much is mapped on them, \
             floodgate_memory_hugetlb_bytes how much of that is resident)",
            huge.page_bytes / 1024
        );
    }
    if huge.usable() {
        tracing::info!(
            thp = %huge.thp,
            "the tables and timer nodes ask for transparent huge pages of {} KiB \
             (floodgate_memory_huge_page_bytes says how much they got)",
            huge.page_bytes / 1024
        );
    } else {
        tracing::warn!(
            thp = %huge.thp,
            "no transparent huge pages: the tables use 4 KiB pages, and at millions of connections every lookup also \
             misses the TLB (echo madvise > /sys/kernel/mm/transparent_hugepage/enabled)"
        );
    }
    let info = Info { iface: cfg.iface.clone(), app: cfg.app.as_str(), attach_mode: mode.as_str(), huge };
    let announcer = match cfg.announce {
        Some(a) => {
            let routes = VipRoutes::new(a.table).map_err(|e| format!("netlink socket for the VIP routes: {e}"))?;
            Some(Announcer::new(routes, cfg.vips.clone()))
        }
        None => None,
    };
    let watchdog = Watchdog::new(shards.len(), cfg.stall_timeout, Instant::now());
    match cfg.stall_timeout {
        Some(t) => {
            tracing::info!("watching the shards and {}: a stall or a lost link ends the process after {t:?}", cfg.iface)
        }
        None => tracing::info!(
            "watching the shards and {}: stalls are reported, never fatal (--stall-timeout 0)",
            cfg.iface
        ),
    }
    let outcome = Control {
        poll,
        signals,
        metrics,
        shards,
        reports: report_rx,
        info,
        program: &program,
        back_program: back.as_ref().map(|b| &b.program),
        epoch,
        cookies,
        watchdog,
        ifwatch,
        back_watch,
        napi: NapiPlan::new(&cfg),
        admin: cfg.proxy.as_ref().map(Admin::new).unwrap_or_default(),
        reload,
        running,
        arp_iface: back.as_ref().map_or_else(|| cfg.iface.clone(), |b| b.iface.clone()),
        announcer,
        announce_wait: cfg.announce.map(|a| a.wait).unwrap_or_default(),
        proxy: cfg.proxy.is_some(),
    }
    .run(cfg.drain);
    program.detach();
    tracing::info!(iface = %cfg.iface, "XDP program detached");
    if let Some(b) = back.as_mut() {
        b.program.detach();
        tracing::info!(iface = %b.iface, "XDP program detached");
    }
    outcome
}

/// The engine's clock zero and its keys, both for the boot where they can
/// be ([`super::boot`]): a restart's SYNs then pass the peers' TIME-WAIT.
fn boot_state(epoch: std::time::Instant) -> (std::time::Instant, Secrets) {
    let zero = super::boot::clock_zero(xdp::abi::monotonic_now()).unwrap_or_else(|| {
        tracing::warn!("the engine's clock counts from this start, not from the boot");
        epoch
    });
    let secrets = match super::boot::secrets(std::path::Path::new(super::boot::SECRETS)) {
        Ok((s, kept)) => {
            tracing::info!(
                "ISN and cookie keys for this boot {} {}",
                if kept == super::boot::Kept::Found { "read from" } else { "made and kept in" },
                super::boot::SECRETS
            );
            s
        }
        Err(e) => {
            tracing::warn!(
                "keys for this process only ({e}): after a restart, peers still holding TIME-WAIT from the previous \
                 process may refuse some SYNs once (floodgate_tcp_syns_resent_after_reset_total)"
            );
            Secrets::random()
        }
    };
    (zero, secrets)
}

/// Binds queue `q` of `iface`, logged.
fn bind(program: &XdpProgram, iface: &str, q: u32, cfg: &xdp::XdpConfig) -> Result<Xdp, String> {
    let link = Xdp::bind(program, iface, q, cfg).map_err(|e| e.to_string())?;
    tracing::info!(
        iface,
        queue = q,
        "AF_XDP socket bound in {} mode (UMEM {} frames x {} B = {} MiB)",
        link.bind_mode(),
        cfg.frame_count(),
        cfg.frame_size,
        (cfg.frame_count() as u64 * cfg.frame_size as u64) >> 20
    );
    Ok(link)
}

/// The back link of a two-armed front end (`--backend-iface`): its own XDP
/// program, which steers only the backends' replies (the `sources` map)
/// and passes everything else to the kernel, and its MAC, which the shards'
/// backend connections send from.
struct BackArm {
    iface: String,
    program: XdpProgram,
    mode: xdp::AttachedMode,
    mac: [u8; 6],
}

impl BackArm {
    fn attach(iface: &str, mode: xdp::XdpMode, front_mac: [u8; 6]) -> Result<BackArm, String> {
        let mac = crate::neigh::interface_mac(iface)
            .ok_or_else(|| format!("--backend-iface {iface}: cannot read its MAC address (does it exist?)"))?;
        if mac == front_mac {
            // Frames leave by the arm whose MAC is their source.
            return Err(format!(
                "--backend-iface {iface} has the MAC address of --iface: the two arms are told apart by it (give \
                 one of them another address: ip link set dev {iface} address ...)"
            ));
        }
        let mut program = XdpProgram::load().map_err(|e| e.to_string())?;
        let got = program.attach(iface, mode).map_err(|e| format!("--backend-iface {iface}: {e}"))?;
        match program.native_fallback_reason() {
            Some(why) => tracing::warn!(iface, "back link: XDP attached in {got} mode (native refused: {why})"),
            None => tracing::info!(iface, "back link: XDP attached in {got} mode"),
        }
        Ok(BackArm { iface: iface.to_string(), program, mode: got, mac })
    }
}

/// Starts one shard with its endpoint listening on every (VIP, port).
#[allow(clippy::too_many_arguments)]
fn start<A, M>(
    spec: ShardSpec,
    link: Arms,
    handoff: Option<Handoff>,
    cfg: &Resolved,
    mac: [u8; 6],
    back_mac: Option<[u8; 6]>,
    secrets: &Secrets,
    reports: crossbeam_channel::Sender<Report>,
    make_app: M,
) -> std::io::Result<ShardHandle>
where
    A: App + AppStats + 'static,
    M: FnOnce() -> A + Send + 'static,
{
    let (tcp, cap, secrets) = (cfg.tcp, cfg.cap, secrets.clone());
    let listen: Vec<(IpAddr, u16)> = cfg.vips.iter().flat_map(|&v| cfg.ports.iter().map(move |&p| (v, p))).collect();
    let (index, queue, cpu) = (spec.index, link.front.queue(), spec.cpu);
    runner::spawn(
        spec,
        link,
        handoff,
        move |now| {
            let mut ep = Endpoint::new(tcp, cap, mac, secrets, now);
            if let Some(m) = back_mac {
                ep.set_back_mac(m);
            }
            for &(addr, port) in &listen {
                ep.listen(Some(addr), port, tcp).expect("a handful of listeners");
            }
            let app = make_app();
            tracing::info!(
                shard = index,
                queue,
                cpu = ?cpu,
                "shard ready: {} MiB of tables and buffers reserved (the process's tables so far: {} MiB mapped on \
                 reserved huge pages)",
                ep.memory_bytes() >> 20,
                crate::table::mapped::hugetlb_bytes() >> 20
            );
            (ep, app)
        },
        reports,
    )
}

/// The proxy on several shards: a backend's reply lands on the RX queue the
/// backend's side picked (on veth the sending CPU's, on a NIC its RSS hash
/// of the 4-tuple), not necessarily that of the shard that opened the
/// connection, so every shard gets a ring to every other
/// ([`crate::shard::handoff`]) and passes such frames to their owner.
/// One shard needs none.
fn proxy_mesh(cfg: &Resolved, p: &ProxySettings) -> Vec<Handoff> {
    if cfg.queues < 2 {
        return Vec::new();
    }
    let lo = p.shard_ports.iter().map(|r| r.0).min().unwrap_or(0);
    let hi = p.shard_ports.iter().map(|r| r.1).max().unwrap_or(0);
    let map = SourceMap {
        first: u32::from(p.source_first),
        addrs: u32::from(p.source_last) - u32::from(p.source_first) + 1,
        port_lo: lo,
        port_hi: hi,
        shards: cfg.queues,
    };
    let slot = cfg.xdp.frame_size as usize;
    tracing::info!(
        shards = cfg.queues,
        rings = cfg.queues * (cfg.queues - 1),
        slots = handoff::RING_SLOTS,
        "proxy: replies that land on another shard's queue are handed to their owner ({} KiB of rings)",
        handoff::mesh_bytes(cfg.queues as usize, slot) >> 10
    );
    handoff::mesh(map, slot).0
}

/// The NIC's RSS, for the proxy on several shards to choose source ports
/// whose replies hash to the opening shard's queue ([`crate::link::rss`]).
/// A device whose choice cannot be predicted (veth has no RSS; another
/// hash function) is logged, and the hand-off alone brings the replies home.
fn proxy_rss(cfg: &Resolved) -> Option<std::sync::Arc<crate::link::rss::Steering>> {
    if cfg.queues < 2 {
        return None;
    }
    // Where the replies come in: the back link of a two-armed proxy.
    let iface = cfg.proxy.as_ref().and_then(|p| p.backend_iface.as_deref()).unwrap_or(&cfg.iface);
    let why = match crate::link::rss::read(iface) {
        Ok(rss) => match crate::link::rss::Steering::new(&rss) {
            Ok(s) => {
                let per_queue: Vec<usize> = (0..cfg.queues).map(|q| s.entries_for(q)).collect();
                tracing::info!(
                    iface,
                    key_bytes = rss.key.len(),
                    table = s.table_len(),
                    entries_per_shard = ?per_queue,
                    "proxy: source ports chosen so that each backend reply hashes to its shard's queue (Toeplitz)"
                );
                if let Some(q) = per_queue.iter().position(|&n| n == 0) {
                    tracing::warn!(
                        "proxy: no RSS table entry points at queue {q}: shard {q}'s replies all land elsewhere and \
                         are handed over (ethtool -X {} equal {})",
                        iface,
                        cfg.queues
                    );
                }
                return Some(std::sync::Arc::new(s));
            }
            Err(e) => e,
        },
        Err(e) => format!("its RSS key and table cannot be read ({e})"),
    };
    tracing::info!(
        iface,
        "proxy: the queue of a backend's reply cannot be predicted on this device: {why}; replies that land on \
         another shard's queue are handed to their owner"
    );
    None
}

/// How long start-up waits for a backend's ARP answer.
const BACKEND_ARP_TIMEOUT: Duration = Duration::from_secs(3);

/// The proxy's start: logs the source space and the sustainable rate,
/// has the XDP program steer the backends' replies (TCP to `--source-addrs`
/// x `--source-ports`) to the sockets (`program`: the one on the link the
/// replies come in on), and resolves every backend's MAC on that link:
/// `--backend-iface` (two-armed), else `--iface` (one-armed: the backends
/// are neighbours on the served link, or at least answer ARP there). A
/// backend that does not answer ARP stops the start with a clear message.
fn proxy_start(
    cfg: &Resolved,
    p: &ProxySettings,
    program: &XdpProgram,
    mode: xdp::AttachedMode,
) -> Result<Vec<[u8; 6]>, String> {
    tracing::info!(
        backends = %p.backends.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(","),
        sources = %format!("{}-{}", p.source_first, p.source_last),
        ports = ?p.shard_ports,
        proxy_protocol = if p.proxy_protocol { "v2" } else { "off" },
        pools = %p.extra_pools.iter().map(|x| format!("port {}: {}", x.port, x.backends.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(","))).collect::<Vec<_>>().join("; "),
        "proxy: each shard sustains {:.0} new connections/s per backend (source addresses x its ports / 2MSL of {:?})",
        p.rate_per_backend,
        cfg.tcp.time_wait()
    );
    let lo = p.shard_ports.iter().map(|r| r.0).min().unwrap_or(0);
    let hi = p.shard_ports.iter().map(|r| r.1).max().unwrap_or(0);
    program.set_sources(p.source_first, p.source_last, lo, hi).map_err(|e| e.to_string())?;
    // Where the backends' replies come in: the back link, or the served one.
    let on = p.backend_iface.as_deref().unwrap_or(&cfg.iface);
    // Generic XDP on veth sees every frame on queue 0; native mode sees the
    // queue the sender (veth) or RSS (a NIC) picked. (Generic mode on a
    // multi-queue NIC is not told apart here: it would need the warning too.)
    let unserved = xdp::program::rx_queue_count(on).filter(|&n| n > cfg.queues);
    if let Some(n) = unserved.filter(|_| mode == xdp::AttachedMode::Native) {
        tracing::warn!(
            "proxy: {} has {n} RX queues but only queues 0-{} have a shard: segments landing on the others go to \
             the kernel (counted in floodgate_xdp_program_frames_total{{verdict=\"redirect_no_xsk\"}}); serve \
             every queue (--queues {n}), or on a NIC `ethtool -L {} combined {}`",
            on,
            cfg.queues - 1,
            on,
            cfg.queues
        );
    }
    p.all_backends()
        .map(|b| {
            crate::neigh::resolve_wait(on, b.ip(), BACKEND_ARP_TIMEOUT).ok_or_else(|| {
                format!(
                    "backend {b}: no ARP answer on {on} within {BACKEND_ARP_TIMEOUT:?} (the backends must be \
                     neighbours on {})",
                    if p.backend_iface.is_some() { "--backend-iface" } else { "--iface" }
                )
            })
        })
        .collect()
}

/// Warns when no interface here has a VIP: then the kernel will not answer
/// ARP/NDP for it, and clients on the link cannot reach it unless a router
/// (or a static neighbour entry) sends its traffic to this MAC.
fn warn_unreachable_vips(cfg: &Resolved) {
    let local = local_addresses();
    for v in &cfg.vips {
        if !local.contains(v) {
            tracing::warn!(
                "VIP {v} is not an address of any interface in this namespace: the kernel will not answer \
                 ARP/NDP for it; add it (ip addr add {v}/32 dev {}) or route it to this host",
                cfg.iface
            );
        }
    }
}

fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    // SAFETY: getifaddrs allocates a list we walk read-only and free once.
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null() {
                match (*a).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        out.push(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// BGP: the VIP routes are gone, new connections still accepted while
    /// the routers move new flows away; then the drain.
    Withdrawing {
        until: Instant,
    },
    Draining {
        until: Instant,
    },
    Stopping,
}

struct Control<'a> {
    poll: Poll,
    signals: Signals,
    metrics: Option<MetricsServer>,
    shards: Vec<ShardHandle>,
    reports: Receiver<Report>,
    info: Info,
    program: &'a XdpProgram,
    /// The back link's program (`--backend-iface`).
    back_program: Option<&'a XdpProgram>,
    epoch: std::time::Instant,
    cookies: XdpCookies<'a>,
    watchdog: Watchdog,
    ifwatch: IfWatch,
    /// The back interface of a two-armed proxy, watched as the front one.
    back_watch: Option<(IfWatch, String)>,
    napi: NapiPlan,
    admin: Admin,
    /// Where SIGHUP re-reads the backends from (`None`: no --config).
    reload: Option<Reload>,
    /// The settings started with, less the backends ([`Reload::comparable`]).
    running: String,
    /// Where the backends answer ARP: `--backend-iface`, else `--iface`.
    arp_iface: String,
    /// The VIP routes for BGP (`--announce-table`).
    announcer: Option<Announcer<VipRoutes>>,
    announce_wait: Duration,
    proxy: bool,
}

/// What a reload needs: the command line as given and the file it named.
struct Reload {
    cli: Settings,
    path: std::path::PathBuf,
}

impl Reload {
    /// The settings a reload cannot change, in a form to compare: all but
    /// the backends, the balancing and the health settings (of every pool:
    /// a `[[pool]]`'s port, its listener, stays).
    fn comparable(s: &Settings) -> String {
        let mut s = s.clone();
        s.backend = None;
        for p in s.pool.iter_mut().flatten() {
            (p.backend, p.balance, p.maglev_seed) = (Vec::new(), None, None);
        }
        (s.balance, s.maglev_seed, s.eject_after, s.eject_time) = (None, None, None, None);
        s.eject_max_percent = None;
        (s.health_check, s.check_interval, s.check_timeout, s.check_path) = (None, None, None, None);
        (s.check_status, s.check_fall, s.check_rise) = (None, None, None);
        format!("{s:?}")
    }

    /// Re-reads and checks the whole configuration; what a reload applies
    /// (backends and weights, balancing, health settings), and whether
    /// anything else changed.
    fn read(&self, running: &str) -> Result<(Reloaded, bool), String> {
        let merged = self.cli.clone().over(Settings::from_file(&self.path)?);
        let cfg = merged.resolve(xdp::program::rx_queue_count)?;
        let p = cfg.proxy.ok_or("not --app proxy: only a proxy's backends can be reloaded")?;
        if self.cli.backend.is_some() {
            tracing::warn!("reload: the backends come from the command line (--backend); the file's are not used");
        }
        let others = Self::comparable(&merged) != running;
        Ok((Reloaded::of(&p), others))
    }
}

/// The metrics server's pages: the metrics, and the admin interface,
/// whose orders are collected for the shards.
struct ControlPages<'a, F: FnMut() -> String> {
    metrics: F,
    admin: &'a mut Admin,
    latest: &'a [Option<Snapshot>],
    orders: Vec<crate::app::Order>,
}

impl<F: FnMut() -> String> Pages for ControlPages<'_, F> {
    fn metrics(&mut self) -> String {
        (self.metrics)()
    }

    fn admin(&mut self, method: &str, path: &str, query: &str) -> Option<(u16, String)> {
        let (status, text, orders) = self.admin.answer(method, path, query, self.latest)?;
        self.orders.extend(orders);
        Some((status, text))
    }
}

/// The interface half of busy polling: applied once, when a shard first
/// reports it active (a queue without a NAPI ID never changes the
/// interface), restored when dropped.
struct NapiPlan {
    iface: Option<String>,
    tuning: Option<NapiTuning>,
}

impl NapiPlan {
    fn new(cfg: &super::config::Resolved) -> NapiPlan {
        let on = cfg.xdp.busy_poll.mode != xdp::BusyPollMode::Off;
        NapiPlan { iface: on.then(|| cfg.iface.clone()), tuning: None }
    }

    fn on_snapshot(&mut self, s: &Snapshot) {
        if !s.busy_poll.is_active() {
            return;
        }
        let Some(iface) = self.iface.take() else { return };
        let places = Places::default();
        if !napi_tuning::supported(&places, &iface) {
            tracing::warn!(iface, "no napi_defer_hard_irqs on the interface: busy polling without deferred interrupts");
            return;
        }
        match NapiTuning::apply(&iface, BUSY_POLL_NAPI, places) {
            Ok(t) => {
                let old = t.old();
                tracing::info!(
                    iface,
                    "busy polling: napi_defer_hard_irqs {} -> {}, gro_flush_timeout {} -> {} ns (restored at exit)",
                    old.defer_hard_irqs,
                    BUSY_POLL_NAPI.defer_hard_irqs,
                    old.gro_flush_timeout,
                    BUSY_POLL_NAPI.gro_flush_timeout
                );
                self.tuning = Some(t);
            }
            Err(e) => tracing::warn!(iface, "cannot set the NAPI settings for busy polling: {e}"),
        }
    }
}

impl Drop for NapiPlan {
    fn drop(&mut self) {
        if let Some(mut t) = self.tuning.take() {
            match t.restore() {
                Ok(()) => tracing::info!(iface = t.iface(), "NAPI settings restored"),
                Err(e) => tracing::warn!(iface = t.iface(), "cannot restore the NAPI settings: {e}"),
            }
        }
    }
}

impl Control<'_> {
    fn run(mut self, drain: Duration) -> Result<(), String> {
        let n = self.shards.len();
        let mut latest: Vec<Option<Snapshot>> = vec![None; n];
        let mut drained = vec![false; n];
        let mut exited = vec![false; n];
        let mut failure: Option<String> = None;
        let mut phase = Phase::Running;
        let mut events = Events::with_capacity(128);
        let mut next_watch = Instant::now();
        let mut stop_by: Option<Instant> = None;
        if self.cookies.notice_due(Instant::now()) {
            // `always`: XDP answers SYNs from the first one.
            self.broadcast(Command::CookiesInFlight);
        }
        tracing::info!("ready");
        while exited.iter().any(|e| !e) {
            if phase == Phase::Stopping {
                let by = *stop_by.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                if Instant::now() >= by {
                    let stuck: Vec<usize> = (0..n).filter(|&i| !exited[i]).collect();
                    tracing::error!("shard(s) {stuck:?} did not stop within {STOP_GRACE:?}; leaving without them");
                    failure.get_or_insert(format!("shard(s) {stuck:?} did not stop"));
                    break;
                }
            }
            if let Err(e) = self.poll.poll(&mut events, Some(CONTROL_TICK)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("poll: {e}"));
                }
            }
            // Reports first, so a scrape in this round sees the newest.
            for r in self.reports.try_iter() {
                match r {
                    Report::Snapshot(s) => {
                        self.napi.on_snapshot(&s);
                        let i = s.shard;
                        latest[i] = Some(*s);
                    }
                    Report::Drained(i) => drained[i] = true,
                    Report::Exited(i, panic) => {
                        exited[i] = true;
                        self.watchdog.exited(i);
                        if let Some(msg) = panic {
                            tracing::error!(shard = i, "shard panicked: {msg}; stopping");
                            failure.get_or_insert(format!("shard {i} panicked: {msg}"));
                        } else if phase != Phase::Stopping {
                            failure.get_or_insert(format!("shard {i} ended unexpectedly"));
                        }
                        if phase != Phase::Stopping {
                            phase = Phase::Stopping;
                            self.broadcast(Command::Stop);
                        }
                    }
                }
            }
            for e in events.iter() {
                if e.token() == SIGNAL {
                    for sig in self.signals.take() {
                        if sig == libc::SIGHUP {
                            if phase == Phase::Running {
                                self.reload();
                            }
                            continue;
                        }
                        phase = match phase {
                            Phase::Running if self.announcer.is_some() => {
                                if let Some(a) = self.announcer.as_mut() {
                                    a.withdraw(Withhold::Draining);
                                }
                                tracing::info!(
                                    "{}: VIP withdrawn; still accepting for {:?} while the routers move new flows \
                                     away, then draining for up to {drain:?} (again to stop now)",
                                    signals::name(sig),
                                    self.announce_wait
                                );
                                Phase::Withdrawing { until: Instant::now() + self.announce_wait }
                            }
                            Phase::Running => {
                                tracing::info!(
                                    "{}: not accepting; draining for up to {drain:?} (again to stop now)",
                                    signals::name(sig)
                                );
                                self.broadcast(Command::Drain);
                                self.cookies.stop();
                                Phase::Draining { until: Instant::now() + drain }
                            }
                            Phase::Withdrawing { .. } | Phase::Draining { .. } => {
                                tracing::info!("{}: stopping now", signals::name(sig));
                                self.broadcast(Command::Stop);
                                Phase::Stopping
                            }
                            Phase::Stopping => Phase::Stopping,
                        };
                    }
                } else if let Some(m) = self.metrics.as_mut() {
                    if m.owns(e.token()) {
                        let (program, back_program) = (self.program, self.back_program);
                        let (info, epoch) = (&self.info, self.epoch);
                        let draining = matches!(phase, Phase::Draining { .. } | Phase::Stopping);
                        let announce = self.announcer.as_ref().map(|a| (a.announced(), a.errors()));
                        let dog = &self.watchdog;
                        let stalled: Vec<bool> = (0..n).map(|i| dog.stalled(i)).collect();
                        let mut pages = ControlPages {
                            metrics: || {
                                metrics::render(&View {
                                    info,
                                    shards: &latest,
                                    xdp: program.stats().ok(),
                                    xdp_back: back_program.and_then(|p| p.stats().ok()),
                                    draining,
                                    uptime_secs: epoch.elapsed().as_secs_f64(),
                                    stalled: &stalled,
                                    link: dog.link_state(),
                                    announce,
                                })
                            },
                            admin: &mut self.admin,
                            latest: &latest,
                            orders: Vec::new(),
                        };
                        m.ready(self.poll.registry(), e.token(), &mut pages);
                        for o in std::mem::take(&mut pages.orders) {
                            self.broadcast(Command::App(o));
                        }
                    }
                }
            }
            let now = Instant::now();
            if phase != Phase::Stopping && now >= next_watch {
                next_watch = now + WATCH_EVERY;
                if let Some(why) = self.watch(now) {
                    tracing::error!("{why}; stopping (exit status 1, for a restart)");
                    failure.get_or_insert(why);
                    self.broadcast(Command::Stop);
                    phase = Phase::Stopping;
                }
            }
            // Every turn (at least every CONTROL_TICK); a route changes only
            // when the verdict does.
            if self.announcer.is_some() {
                let health = self.health(&latest, phase);
                if let Some(a) = self.announcer.as_mut() {
                    a.update(&health);
                }
            }
            if let Phase::Withdrawing { until } = phase {
                if now >= until {
                    tracing::info!("not accepting; draining for up to {drain:?}");
                    self.broadcast(Command::Drain);
                    self.cookies.stop();
                    phase = Phase::Draining { until: now + drain };
                }
            }
            if phase == Phase::Running && self.cookies.tick(latest.iter().flatten().map(|s| s.stats.cookies_sent).sum())
            {
                self.broadcast(Command::CookiesInFlight);
            }
            if let Phase::Draining { until } = phase {
                let all = drained.iter().zip(&exited).all(|(d, x)| *d || *x);
                if all || Instant::now() >= until {
                    if all {
                        tracing::info!("drained: no connection left");
                    } else {
                        tracing::info!("drain time over: resetting the connections left");
                    }
                    self.broadcast(Command::Stop);
                    phase = Phase::Stopping;
                }
            }
            if let Some(m) = self.metrics.as_mut() {
                m.expire(self.poll.registry());
            }
        }
        for (s, _) in self.shards.iter_mut().zip(&exited).filter(|(_, x)| **x) {
            s.join();
        }
        let mut total = Stats::default();
        for s in latest.iter().flatten() {
            total.merge(&s.stats);
        }
        tracing::info!(
            segments_in = total.segments_in,
            segments_out = total.segments_out,
            accepted = total.connections_accepted,
            closed = total.connections_closed,
            reset_by_peer = total.connections_reset_by_peer,
            aborted = total.connections_aborted,
            "stopped"
        );
        match failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// What decides whether the VIPs are announced ([`super::announce`]).
    fn health(&self, latest: &[Option<Snapshot>], phase: Phase) -> Health {
        let backends_up = self.proxy.then(|| {
            latest.iter().flatten().map(|s| s.backends.iter().filter(|(_, _, b)| b.up).count()).min().unwrap_or(0)
        });
        Health {
            reporting: latest.iter().all(|s| s.is_some()),
            draining: phase != Phase::Running,
            link_up: self.watchdog.link_state().usable(),
            stalled: (0..latest.len()).any(|i| self.watchdog.stalled(i)),
            backends_up,
        }
    }

    /// One look at the heartbeats and the link; logs what changed and
    /// returns why the process must end, if it must.
    fn watch(&mut self, now: Instant) -> Option<String> {
        // The front link's state, or the back one's when only it is lost:
        // either stops the proxy's traffic.
        let mut state = self.ifwatch.state();
        let mut name = self.info.iface.as_str();
        if let Some((w, back)) = &self.back_watch {
            let b = w.state();
            if state.usable() && !b.usable() {
                (state, name) = (b, back.as_str());
            }
        }
        let log = |c: Change| match c {
            Change::Stalled(i, d) => tracing::error!(shard = i, "shard stalled: no turn for {d:.1?}"),
            Change::Recovered(i, d) => tracing::warn!(shard = i, "shard turns again after {d:.1?}"),
            Change::LinkLost(s) => tracing::error!("link {name}: {s}"),
            Change::LinkBack(d) => tracing::warn!("links up again after {d:.1?}"),
        };
        self.watchdog.look(now, self.shards.iter().map(|s| s.heartbeat()), log);
        self.watchdog.link(now, state, log);
        self.watchdog.verdict(now)
    }

    /// SIGHUP: the backends and balancing of every pool and the health
    /// settings from the configuration file, applied without
    /// touching an established connection; a file that does not check
    /// out, or a new backend that does not answer ARP, is refused with
    /// the reason, and the running configuration stays.
    fn reload(&mut self) {
        let Some(src) = &self.reload else {
            tracing::warn!("SIGHUP: started without --config, nothing to reload");
            return;
        };
        let path = src.path.display().to_string();
        let (new, others) = match src.read(&self.running) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("reload of {path} refused, the running configuration stays: {e}");
                return;
            }
        };
        let iface = self.arp_iface.clone();
        let mac_of = |a: std::net::SocketAddr| {
            crate::neigh::resolve_wait(&iface, a.ip(), BACKEND_ARP_TIMEOUT)
                .ok_or_else(|| format!("new backend {a}: no ARP answer on {iface} within {BACKEND_ARP_TIMEOUT:?}"))
        };
        match self.admin.reload(&new, mac_of) {
            Ok(orders) => {
                tracing::info!(
                    changes = orders.len(),
                    "reloaded the backends, balancing and health settings from {path}"
                );
                for o in orders {
                    self.broadcast(Command::App(o));
                }
            }
            Err(e) => tracing::error!("reload of {path} refused, the running configuration stays: {e}"),
        }
        if others {
            tracing::warn!(
                "reload: settings other than the backends, balancing and health checks changed in {path}; they take \
                 effect at the next start"
            );
        }
    }

    fn broadcast(&self, c: Command) {
        for s in &self.shards {
            s.send(c.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        s: super::Settings,
    }

    /// A proxy on `queues` shards, as resolved from its command line.
    fn proxy(queues: u32) -> super::Resolved {
        let args = [
            "floodgate",
            "--iface",
            "fg-s0",
            "--vip",
            "198.18.0.1",
            "--port",
            "80",
            "--app",
            "proxy",
            "--backend",
            "198.18.2.10:80",
            "--source-addrs",
            "198.18.0.1-198.18.0.2",
            "--source-ports",
            "10000-10999",
            "--connections",
            "2000",
        ];
        Cli::try_parse_from(args).unwrap().s.resolve(|_| Some(queues)).unwrap()
    }

    /// One shard needs no mesh; two get each a ring to the other, and a
    /// reply to shard 1's port that reaches shard 0 goes to shard 1.
    #[test]
    fn the_proxy_on_several_shards_gets_a_mesh() {
        let one = proxy(1);
        assert!(super::proxy_mesh(&one, one.proxy.as_ref().unwrap()).is_empty());
        let two = proxy(2);
        let mut ends = super::proxy_mesh(&two, two.proxy.as_ref().unwrap());
        assert_eq!(ends.len(), 2);
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 6;
        f[30..34].copy_from_slice(&[198, 18, 0, 2]);
        f[36..38].copy_from_slice(&10500u16.to_be_bytes());
        assert!(ends[0].divert(&f), "shard 1's port range starts at 10500");
        assert!(!ends[1].divert(&f));
        assert_eq!(ends[1].drain(usize::MAX, |_| {}), 1);
    }
}
