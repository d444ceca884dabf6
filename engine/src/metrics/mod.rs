//! Prometheus metrics: the text exposition format (version 0.0.4) rendered
//! from the shards' latest snapshots, and a small HTTP server for it on a
//! kernel TCP socket, driven by mio in the control thread, so scrapes never
//! touch the data path.
//!
//! Every counter of `tcp::Stats`, every wire drop reason, the application's
//! counters, the AF_XDP link's counters and the XDP program's verdicts are
//! exported, per shard (label `shard`) where they are per shard; the HELP
//! line is the counter's doc comment.

pub(crate) mod server;

pub use server::{MetricsServer, Pages, ADMIN_PREFIX};

use std::fmt::Write;

use crate::link::ifstate::LinkState;
use crate::link::xdp::BpfStats;
use crate::shard::Snapshot;
use crate::table::huge::{self, HugePages};
use crate::wire;

/// A gauge: metric name, help text, and how to read it from a snapshot.
type Gauge = (&'static str, &'static str, fn(&Snapshot) -> u64);

/// What does not change while the engine runs.
#[derive(Clone, Debug)]
pub struct Info {
    pub iface: String,
    pub app: &'static str,
    /// The XDP attach mode obtained (`native` or `generic`).
    pub attach_mode: &'static str,
    /// What the kernel offers the tables' huge-page advice.
    pub huge: HugePages,
}

/// The engine's state as one scrape sees it.
pub struct View<'a> {
    pub info: &'a Info,
    pub shards: &'a [Option<Snapshot>],
    pub xdp: Option<BpfStats>,
    /// The back link's program (a two-armed front end), labelled `arm="back"`.
    pub xdp_back: Option<BpfStats>,
    pub draining: bool,
    pub uptime_secs: f64,
    /// Per shard (by index): no turn for a second or more (`cli::watchdog`).
    pub stalled: &'a [bool],
    /// The served interface as last seen by the control thread.
    pub link: LinkState,
    /// With `--announce-table`: the VIP routes are in place (BGP announces
    /// them), and the route requests the kernel refused.
    pub announce: Option<(bool, u64)>,
}

/// Help texts of the link counters (`XdpLinkStats::fields` order of names).
fn link_help(name: &str) -> &'static str {
    match name {
        "rx_frames" => "Frames taken from the AF_XDP RX ring.",
        "tx_frames" => "Frames put on the AF_XDP TX ring.",
        "tx_completed" => "TX frames the kernel reported sent (completion ring).",
        "tx_ring_full" => {
            "A frame to send found the TX ring full: a connection's segment waits for the next flush \
             (tx_full_deferred), a stateless reply is dropped (drop_tx_full)."
        }
        "no_free_frame" => "Drop: no free UMEM frame to send from.",
        "tx_bad_len" => "Drop: a reply of length 0 or longer than a frame.",
        "rx_multi_buffer" => "Drop: a multi-buffer frame (jumbo), which the link does not take.",
        "rx_fill_short" => {
            "Top-ups that left less than an RX ring and a batch of frames on the fill ring (0 when the UMEM is sized right)."
        }
        "tx_kick_stalls" => "Flushes whose TX kick left frames on the ring (device busy or per-kick budget spent).",
        "rx_bad_descs" => "Drop: an RX descriptor outside the UMEM or crossing its frame's end.",
        "completion_bad_descs" => "A completion address outside the UMEM (its frame is lost to the link).",
        "socket_errors" => "Errors the AF_XDP socket signalled on poll (EPOLLERR, read with SO_ERROR).",
        "tx_cancelled" => "Sends cancelled by their writer (not a drop).",
        "tx_wakeups" => "sendto() kicks of the TX ring.",
        "fill_wakeups" => "recvfrom() kicks of the fill ring.",
        "busy_polls" => "recvfrom(MSG_DONTWAIT) busy polls of the queue's NAPI (preferred busy polling).",
        "wakeup_errors" => "Kicks that failed with an unexpected error.",
        "kernel_rx_fill_empty" => "Kernel: frames dropped because the fill ring was empty.",
        "kernel_rx_ring_full" => "Kernel: frames dropped because the RX ring was full.",
        "kernel_rx_dropped" => "Kernel: frames dropped for other reasons (e.g. too large for a frame).",
        "kernel_rx_invalid_descs" => "Kernel: invalid RX descriptors (a bug if not 0).",
        "kernel_tx_invalid_descs" => "Kernel: invalid TX descriptors (a bug if not 0).",
        "kernel_tx_ring_empty" => "Kernel: times the TX ring was empty when woken.",
        "tx_arm_copies" => {
            "Frames copied to this link from a sink of the other link of a two-armed shard (--backend-iface): \
             written there without their source MAC named first (0 while every writer names it; arm=\"back\": \
             the backend-side link)."
        }
        _ => "AF_XDP link counter.",
    }
}

fn verdict_help(name: &str) -> &'static str {
    match name {
        "redirect" => "owned (VIP, port), redirected to the queue's AF_XDP socket",
        "redirect_no_xsk" => "owned, but no socket on that RX queue: passed to the kernel",
        "pass_not_ip" => "not IPv4/IPv6 (ARP, ...): passed",
        "pass_not_tcp" => "IP but not TCP: passed",
        "pass_not_vip" => "TCP to an address/port not served: passed",
        "pass_truncated" => "frame shorter than its headers: passed",
        "pass_fragment" => "IPv4 fragment: passed",
        "pass_malformed" => "bad IP version or header length: passed",
        "syn_cookie_tx" => "a SYN answered in XDP with a cookie SYN-ACK (XDP_TX)",
        "syn_cookie_error" => "a SYN whose cookie SYN-ACK could not be written: dropped",
        _ => "",
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', " "));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
    }
}

/// Renders every metric.
pub fn render(view: &View<'_>) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let mut f = Family { out: &mut out };
    let shards: Vec<(String, &Snapshot)> = view.shards.iter().flatten().map(|s| (s.shard.to_string(), s)).collect();

    let healthy = view.link.usable() && !view.stalled.iter().any(|&s| s);
    f.head(
        "floodgate_up",
        "gauge",
        "1 while every shard turns and the link is up; 0 while a shard is stalled or the link is down or gone \
         (the process exits after --stall-timeout).",
    );
    f.sample("floodgate_up", &[], healthy as u8);
    f.head(
        "floodgate_link_up",
        "gauge",
        "1 while the served interface (and a two-armed proxy's back interface) exists, is up and has carrier; \
         0 otherwise (label state: down, up without carrier, gone).",
    );
    let state = view.link.to_string();
    f.sample("floodgate_link_up", &[("state", &state)], view.link.usable() as u8);
    f.head(
        "floodgate_shard_stalled",
        "gauge",
        "1 while the shard has not turned its run loop for a second or more (stuck); an idle shard still turns.",
    );
    for (i, s) in view.stalled.iter().enumerate() {
        f.sample("floodgate_shard_stalled", &[("shard", &i.to_string())], *s as u8);
    }
    f.head(
        "floodgate_info",
        "gauge",
        "The interface, the application and the XDP attach mode obtained (native or generic); always 1.",
    );
    f.sample(
        "floodgate_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("iface", &view.info.iface),
            ("app", view.info.app),
            ("xdp_mode", view.info.attach_mode),
        ],
        1,
    );
    f.head("floodgate_draining", "gauge", "1 after SIGINT/SIGTERM: not accepting, waiting for connections to finish.");
    f.sample("floodgate_draining", &[], view.draining as u8);
    if let Some((announced, errors)) = view.announce {
        f.head(
            "floodgate_vip_announced",
            "gauge",
            "1 while the VIP routes are in the announce table, so BGP (BIRD) advertises this box: up, healthy (a \
             backend up, with the proxy) and not draining; 0 otherwise.",
        );
        f.sample("floodgate_vip_announced", &[], announced as u8);
        f.head(
            "floodgate_vip_announce_errors_total",
            "counter",
            "Requests to add or remove a VIP route that the kernel refused (retried every 100 ms).",
        );
        f.sample("floodgate_vip_announce_errors_total", &[], errors);
    }
    f.head("floodgate_uptime_seconds", "gauge", "Seconds since the engine started.");
    f.sample("floodgate_uptime_seconds", &[], format!("{:.3}", view.uptime_secs));
    f.head(
        "floodgate_huge_pages_info",
        "gauge",
        "The kernel's transparent huge page mode (always, madvise, never) and huge page size, which the tables and \
         timer nodes ask for; always 1.",
    );
    let page = view.info.huge.page_bytes.to_string();
    f.sample("floodgate_huge_pages_info", &[("thp", &view.info.huge.thp), ("page_bytes", &page)], 1);
    if let Some(m) = huge::memory_use() {
        f.head(
            "floodgate_memory_resident_bytes",
            "gauge",
            "Resident memory of the process (smaps_rollup Rss, plus Private_Hugetlb: reserved huge pages).",
        );
        f.sample("floodgate_memory_resident_bytes", &[], m.resident);
        f.head(
            "floodgate_memory_huge_page_bytes",
            "gauge",
            "Of the resident memory, bytes on transparent huge pages (smaps_rollup AnonHugePages).",
        );
        f.sample("floodgate_memory_huge_page_bytes", &[], m.thp);
        f.head(
            "floodgate_memory_hugetlb_bytes",
            "gauge",
            "Of the resident memory, bytes on the reserved huge pages of vm.nr_hugepages (smaps_rollup \
             Private_Hugetlb): the tables and timer nodes take them where the operator reserved enough.",
        );
        f.sample("floodgate_memory_hugetlb_bytes", &[], m.hugetlb);
    }
    f.head(
        "floodgate_shard_info",
        "gauge",
        "Per shard: its RX queue, its CPU, the AF_XDP bind mode obtained (zero-copy or copy) and preferred busy \
         polling (off; pending until frames arrive; active; unavailable: the queue has no NAPI ID); always 1.",
    );
    for (id, s) in &shards {
        let q = s.queue.to_string();
        let cpu = s.cpu.map_or_else(|| "any".to_string(), |c| c.to_string());
        let bind = s.bind_mode.to_string();
        let busy = s.busy_poll.as_str();
        f.sample(
            "floodgate_shard_info",
            &[("shard", id), ("queue", &q), ("cpu", &cpu), ("bind_mode", &bind), ("busy_poll", busy)],
            1,
        );
    }

    // Gauges of the connection state.
    let gauges: [Gauge; 8] = [
        (
            "floodgate_connections_established",
            "Connections past the handshake (every state but SYN-RECEIVED and TIME-WAIT).",
            |s| (s.connections as u64).saturating_sub(s.half_open as u64),
        ),
        ("floodgate_connections_half_open", "Half-open connections (SYN-RECEIVED) held in the table.", |s| {
            s.half_open as u64
        }),
        ("floodgate_connections_time_wait", "Entries in the TIME-WAIT table.", |s| s.time_wait as u64),
        (
            "floodgate_connection_table_used",
            "Entries in use in the connection table (all states but TIME-WAIT).",
            |s| s.connections as u64,
        ),
        ("floodgate_connection_table_capacity", "Size of the preallocated connection table.", |s| {
            s.connection_capacity as u64
        }),
        ("floodgate_time_wait_table_capacity", "Size of the preallocated TIME-WAIT tables (IPv4 + IPv6).", |s| {
            s.time_wait_capacity as u64
        }),
        ("floodgate_buffers_free", "Free buffer chunks in the shard's pool.", |s| s.buffers_free as u64),
        ("floodgate_listening", "1 while the shard accepts new connections (0 while draining).", |s| {
            s.listening as u64
        }),
    ];
    for (name, help, get) in gauges {
        f.head(name, "gauge", help);
        for (id, s) in &shards {
            f.sample(name, &[("shard", id)], get(s));
        }
    }

    // tcp::Stats, one family per counter.
    if let Some((_, first)) = shards.first() {
        let mut names = Vec::new();
        first.stats.for_each(|n, h, _| names.push((n, h)));
        let per_shard: Vec<Vec<u64>> = shards
            .iter()
            .map(|(_, s)| {
                let mut v = Vec::with_capacity(names.len());
                s.stats.for_each(|_, _, x| v.push(x));
                v
            })
            .collect();
        for (i, (n, h)) in names.iter().enumerate() {
            let name = format!("floodgate_tcp_{n}_total");
            f.head(&name, "counter", h);
            for ((id, _), vals) in shards.iter().zip(&per_shard) {
                f.sample(&name, &[("shard", id)], vals[i]);
            }
        }

        let name = "floodgate_wire_drops_total";
        f.head(name, "counter", "Frames dropped by the parser, by reason (malformed or unsupported input).");
        for (id, s) in &shards {
            for e in wire::Error::ALL {
                f.sample(name, &[("shard", id), ("reason", e.name())], s.wire_errors[e.index()]);
            }
        }
        let name = "floodgate_not_tcp_frames_total";
        f.head(name, "counter", "Frames the shard received that were not TCP (released unanswered).");
        for (id, s) in &shards {
            f.sample(name, &[("shard", id)], s.not_tcp);
        }

        // The application's counters.
        for (i, c) in first.app_counters().iter().enumerate() {
            let name = format!("floodgate_{}_{}_total", first.app_name, c.name);
            f.head(&name, "counter", c.help);
            for (id, s) in &shards {
                if let Some(x) = s.app_counters().get(i) {
                    f.sample(&name, &[("shard", id)], x.value);
                }
            }
        }

        // Per listener (address:port), on each shard.
        type Count = fn(&crate::tcp::ListenerCounts) -> u64;
        for (name, kind, help, get) in [
            (
                "floodgate_listener_syns_received_total",
                "counter",
                "SYNs that reached the listener (answered statefully or with a cookie).",
                (|c| c.syns) as Count,
            ),
            (
                "floodgate_listener_connections_accepted_total",
                "counter",
                "Connections the listener established.",
                |c| c.accepted,
            ),
            (
                "floodgate_listener_connections_active",
                "gauge",
                "Connections the listener established that are still in the table.",
                |c| c.active,
            ),
            (
                "floodgate_listener_bytes_received_total",
                "counter",
                "Payload bytes received in order on the listener's connections.",
                |c| c.bytes_received,
            ),
            (
                "floodgate_listener_bytes_sent_total",
                "counter",
                "Payload bytes sent on the listener's connections and acknowledged.",
                |c| c.bytes_sent,
            ),
        ] {
            f.head(name, kind, help);
            for (id, s) in &shards {
                for (listener, c) in &s.listeners {
                    f.sample(name, &[("shard", id), ("listener", listener)], get(c));
                }
            }
        }

        // The proxy's backends, by pool and address, on each shard.
        if shards.iter().any(|(_, s)| !s.backends.is_empty()) {
            type Get = fn(&crate::app::proxy::BackendStats) -> u64;
            for (name, kind, help, get) in [
                (
                    "floodgate_backend_up",
                    "gauge",
                    "1 while the backend takes new clients (weight above 0, not ejected).",
                    (|b| b.up as u64) as Get,
                ),
                ("floodgate_backend_weight", "gauge", "The backend's weight now (0: drained by the operator).", |b| {
                    b.weight as u64
                }),
                (
                    "floodgate_backend_active",
                    "gauge",
                    "Connections to the backend now (from the active open to the end).",
                    |b| b.active,
                ),
                ("floodgate_backend_connects_total", "counter", "Active opens to the backend started.", |b| b.connects),
                (
                    "floodgate_backend_connect_failures_total",
                    "counter",
                    "Active opens to the backend refused or unanswered.",
                    |b| b.connect_failures,
                ),
                (
                    "floodgate_backend_ejections_total",
                    "counter",
                    "Times the backend was ejected after failures in a row.",
                    |b| b.ejections,
                ),
                ("floodgate_backend_bytes_to_total", "counter", "Bytes carried from clients to the backend.", |b| {
                    b.bytes_to
                }),
                ("floodgate_backend_bytes_from_total", "counter", "Bytes carried from the backend to clients.", |b| {
                    b.bytes_from
                }),
                ("floodgate_backend_checks_total", "counter", "Active health checks of the backend started.", |b| {
                    b.checks
                }),
                (
                    "floodgate_backend_check_failures_total",
                    "counter",
                    "Active health checks of the backend refused or unanswered.",
                    |b| b.check_failures,
                ),
            ] {
                f.head(name, kind, help);
                for (id, s) in &shards {
                    for (pool, addr, b) in &s.backends {
                        let (pool, addr) = (pool.to_string(), addr.to_string());
                        f.sample(name, &[("shard", id), ("pool", &pool), ("backend", &addr)], get(b));
                    }
                }
            }
            let name = "floodgate_backend_connect_seconds";
            f.head(name, "histogram", "Time from the SYN to a backend to its completed handshake.");
            for (id, s) in &shards {
                for (pool, addr, b) in &s.backends {
                    let (pool, addr) = (pool.to_string(), addr.to_string());
                    let labels = [("shard", id.as_str()), ("pool", &pool), ("backend", &addr)];
                    for (le, n) in b.connect_latency.cumulative() {
                        let le = le.map_or("+Inf".to_string(), |s| s.to_string());
                        f.sample(&format!("{name}_bucket"), &[&labels[..], &[("le", &le)]].concat(), n);
                    }
                    f.sample(&format!("{name}_sum"), &labels, b.connect_latency.sum_us as f64 / 1e6);
                    f.sample(&format!("{name}_count"), &labels, b.connect_latency.count());
                }
            }
        }

        // The AF_XDP link, and a two-armed shard's back link (`arm="back"`).
        for (i, (n, _)) in first.link.fields().iter().enumerate() {
            let name = format!("floodgate_link_{n}_total");
            f.head(&name, "counter", link_help(n));
            for (id, s) in &shards {
                f.sample(&name, &[("shard", id)], s.link.fields()[i].1);
            }
            for (id, s) in &shards {
                if let Some(b) = &s.back_link {
                    f.sample(&name, &[("shard", id), ("arm", "back")], b.fields()[i].1);
                }
            }
        }

        let name = "floodgate_shard_work_seconds_total";
        f.head(
            name,
            "counter",
            "Wall time of the shard's turns that moved frames (received, handed over or sent): its work, \
             without the spinning between frames and the sleeps (time the thread was preempted inside such a \
             turn counts too). Over elapsed time, how busy the shard really is; its thread's CPU time also \
             counts the spinning.",
        );
        for (id, s) in &shards {
            f.sample(name, &[("shard", id)], format!("{:.6}", s.work_us as f64 / 1e6));
        }
        for (name, help, get) in [
            ("floodgate_shard_turns_total", "Turns of the shard's run loop.", (|s| s.turns) as fn(&Snapshot) -> u64),
            ("floodgate_shard_sleeps_total", "Times the shard slept on its socket, idle.", |s| s.sleeps),
            (
                "floodgate_shard_yields_total",
                "sched_yield calls of the spinning shard (none while busy polling).",
                |s| s.yields,
            ),
            (
                "floodgate_shard_syscalls_total",
                "System calls of the shard's data path: TX kicks, fill kicks, busy polls, sleeps and yields \
                 (over floodgate_link_rx_frames_total: syscalls per frame).",
                |s| s.syscalls(),
            ),
            (
                "floodgate_shard_handoff_sent_total",
                "Frames this shard received for a connection another shard owns and passed to it (proxy on \
                 several shards: a backend's reply on the wrong queue).",
                |s| s.handoff.sent,
            ),
            (
                "floodgate_shard_handoff_taken_total",
                "Frames other shards passed to this one, fed to its endpoint as received frames.",
                |s| s.handoff.taken,
            ),
            (
                "floodgate_shard_handoff_ring_full_total",
                "Drop: a frame for another shard's connection found the ring towards that shard full.",
                |s| s.handoff.ring_full,
            ),
            (
                "floodgate_shard_handoff_wakeups_total",
                "Times this shard woke a sleeping shard to take the frames it passed on.",
                |s| s.handoff.wakeups,
            ),
        ] {
            f.head(name, "counter", help);
            for (id, s) in &shards {
                f.sample(name, &[("shard", id)], get(s));
            }
        }
    }

    // The XDP program on the served link, and on a two-armed front end's
    // back link (`arm="back"`).
    let programs: Vec<(&BpfStats, &[(&str, &str)])> =
        [(view.xdp.as_ref(), &[][..]), (view.xdp_back.as_ref(), &[("arm", "back")][..])]
            .into_iter()
            .filter_map(|(x, l)| Some((x?, l)))
            .collect();
    if let Some((x, _)) = programs.first() {
        let name = "floodgate_xdp_program_frames_total";
        let mut help = String::from("Frames seen by the XDP program, by verdict:");
        for (n, _) in x.verdicts() {
            let _ = write!(help, " {n} = {};", verdict_help(n));
        }
        f.head(name, "counter", help.trim_end_matches(';'));
        for (x, labels) in &programs {
            for (n, v) in x.verdicts() {
                f.sample(name, &[&labels[..], &[("verdict", n)]].concat(), v);
            }
        }
        for (name, help, get) in [
            (
                "floodgate_xdp_syn_cookie_fallback_total",
                "SYNs to a VIP with cookies in XDP that the program left to a shard \
                 (a VLAN tag, IP options, IPv6 extension headers, a payload, a bad checksum or option, no room)",
                (|x| x.syn_cookie_fallback) as fn(&BpfStats) -> u64,
            ),
            (
                "floodgate_xdp_icmp_too_big_total",
                "ICMP fragmentation-needed / ICMPv6 packet-too-big errors about an owned \
                 (address, port) that the program steered to a shard for path MTU discovery",
                |x| x.icmp_too_big,
            ),
            (
                "floodgate_xdp_source_replies_total",
                "TCP segments to an owned source (address, port) of the proxy's backend side \
                 (a backend's replies) that the program steered to a shard",
                |x| x.source_reply,
            ),
        ] {
            f.head(name, "counter", help);
            for (x, labels) in &programs {
                f.sample(name, labels, get(x));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::xdp::XdpLinkStats;
    use crate::shard::runner::{AppCounter, MAX_APP_COUNTERS};
    use crate::tcp::Stats;

    fn snap(shard: usize) -> Snapshot {
        let mut app = [AppCounter::default(); MAX_APP_COUNTERS];
        app[0] = AppCounter { name: "requests", help: "Requests answered.", value: 7 };
        Snapshot {
            backends: vec![(
                0,
                std::net::SocketAddr::from(([198, 18, 2, 10], 80)),
                crate::app::proxy::BackendStats {
                    connects: 5 + shard as u64,
                    active: 2,
                    up: true,
                    connect_latency: {
                        let mut h = crate::app::proxy::latency::ConnectLatency::default();
                        h.record(crate::time::Duration::from_micros(800));
                        h
                    },
                    ..Default::default()
                },
            )],
            listeners: vec![(
                "198.18.0.1:80".into(),
                crate::tcp::ListenerCounts {
                    accepted: 4 + shard as u64,
                    active: 1,
                    bytes_sent: 71,
                    ..Default::default()
                },
            )],
            cpu: Some(shard),
            stats: Stats { syns_received: 10 + shard as u64, ..Stats::default() },
            not_tcp: 3,
            link: XdpLinkStats { rx_frames: 99, ..XdpLinkStats::default() },
            connections: 5,
            half_open: 2,
            time_wait: 4,
            connection_capacity: 64,
            time_wait_capacity: 72,
            buffers_free: 60,
            listening: true,
            app_name: "http",
            app,
            app_len: 1,
            turns: 1,
            sleeps: 1,
            handoff: crate::shard::handoff::HandoffStats { sent: 4, taken: 5, ring_full: 1, wakeups: 2 },
            work_us: 12_345,
            ..Snapshot::blank(shard)
        }
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let huge = HugePages { thp: "madvise".into(), page_bytes: 2 << 20, reserved_pages: 0, free_pages: 0 };
        let info = Info { iface: "fg-s0".into(), app: "http", attach_mode: "native", huge };
        let mut two_armed = snap(2);
        two_armed.back_link = Some(XdpLinkStats { rx_frames: 41, tx_arm_copies: 3, ..Default::default() });
        let shards = [Some(snap(0)), None, Some(two_armed)];
        let text = render(&View {
            info: &info,
            shards: &shards,
            xdp: Some(BpfStats { redirect: 5, ..BpfStats::default() }),
            xdp_back: Some(BpfStats { source_reply: 8, ..BpfStats::default() }),
            draining: false,
            uptime_secs: 1.5,
            stalled: &[false, false, true],
            link: LinkState::Up,
            announce: Some((true, 2)),
        });
        for line in [
            "floodgate_up 0",
            "floodgate_vip_announced 1",
            "floodgate_vip_announce_errors_total 2",
            "floodgate_link_up{state=\"up\"} 1",
            "floodgate_shard_stalled{shard=\"0\"} 0",
            "floodgate_shard_stalled{shard=\"2\"} 1",
            "floodgate_link_rx_bad_descs_total{shard=\"0\"} 0",
            "floodgate_link_completion_bad_descs_total{shard=\"2\"} 0",
            "floodgate_tcp_syns_received_total{shard=\"0\"} 10",
            "floodgate_tcp_syns_received_total{shard=\"2\"} 12",
            "# HELP floodgate_tcp_syns_received_total SYNs received by listeners.",
            "# TYPE floodgate_tcp_syns_received_total counter",
            "floodgate_connections_established{shard=\"0\"} 3",
            "floodgate_connections_time_wait{shard=\"2\"} 4",
            "floodgate_wire_drops_total{shard=\"0\",reason=\"bad_tcp_checksum\"} 0",
            "floodgate_http_requests_total{shard=\"2\"} 7",
            "floodgate_backend_connects_total{shard=\"2\",pool=\"0\",backend=\"198.18.2.10:80\"} 7",
            "floodgate_backend_up{shard=\"0\",pool=\"0\",backend=\"198.18.2.10:80\"} 1",
            "floodgate_backend_active{shard=\"0\",pool=\"0\",backend=\"198.18.2.10:80\"} 2",
            "# TYPE floodgate_backend_connect_seconds histogram",
            "floodgate_backend_connect_seconds_bucket{shard=\"0\",pool=\"0\",backend=\"198.18.2.10:80\",le=\"0.0001\"} 0",
            "floodgate_backend_connect_seconds_bucket{shard=\"0\",pool=\"0\",backend=\"198.18.2.10:80\",le=\"0.001\"} 1",
            "floodgate_backend_connect_seconds_bucket{shard=\"0\",pool=\"0\",backend=\"198.18.2.10:80\",le=\"+Inf\"} 1",
            "floodgate_backend_connect_seconds_sum{shard=\"0\",pool=\"0\",backend=\"198.18.2.10:80\"} 0.0008",
            "floodgate_backend_connect_seconds_count{shard=\"0\",pool=\"0\",backend=\"198.18.2.10:80\"} 1",
            "floodgate_listener_connections_accepted_total{shard=\"2\",listener=\"198.18.0.1:80\"} 6",
            "floodgate_listener_connections_active{shard=\"0\",listener=\"198.18.0.1:80\"} 1",
            "floodgate_listener_bytes_sent_total{shard=\"0\",listener=\"198.18.0.1:80\"} 71",
            "# TYPE floodgate_listener_connections_active gauge",
            "floodgate_link_rx_frames_total{shard=\"0\"} 99",
            "floodgate_shard_handoff_sent_total{shard=\"0\"} 4",
            "floodgate_shard_work_seconds_total{shard=\"2\"} 0.012345",
            "floodgate_shard_handoff_taken_total{shard=\"2\"} 5",
            "floodgate_shard_handoff_ring_full_total{shard=\"0\"} 1",
            "floodgate_shard_handoff_wakeups_total{shard=\"2\"} 2",
            "floodgate_xdp_program_frames_total{verdict=\"redirect\"} 5",
            "floodgate_xdp_program_frames_total{arm=\"back\",verdict=\"redirect\"} 0",
            "floodgate_xdp_source_replies_total{arm=\"back\"} 8",
            "floodgate_xdp_source_replies_total 0",
            "floodgate_link_rx_frames_total{shard=\"2\",arm=\"back\"} 41",
            "floodgate_link_tx_arm_copies_total{shard=\"2\",arm=\"back\"} 3",
            "floodgate_link_tx_arm_copies_total{shard=\"0\"} 0",
            "floodgate_info{version=\"0.1.0\",iface=\"fg-s0\",app=\"http\",xdp_mode=\"native\"} 1",
            "floodgate_shard_info{shard=\"2\",queue=\"2\",cpu=\"2\",bind_mode=\"copy\",busy_poll=\"off\"} 1",
            "floodgate_huge_pages_info{thp=\"madvise\",page_bytes=\"2097152\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        if huge::memory_use().is_some() {
            let resident = text.lines().find_map(|l| l.strip_prefix("floodgate_memory_resident_bytes "));
            assert!(resident.and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v > 0), "{text}");
            assert!(text.lines().any(|l| l.starts_with("floodgate_memory_huge_page_bytes ")));
            assert!(text.lines().any(|l| l.starts_with("floodgate_memory_hugetlb_bytes ")));
        }
        // Every sample belongs to a family declared just before with HELP and TYPE.
        let mut declared = std::collections::HashSet::new();
        for l in text.lines() {
            if let Some(r) = l.strip_prefix("# TYPE ") {
                assert!(declared.insert(r.split(' ').next().unwrap().to_string()), "family twice: {l}");
            } else if !l.starts_with('#') {
                // A histogram's samples carry suffixes of its family's name.
                let name = l.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|x| name.strip_suffix(x).filter(|f| declared.contains(*f)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "sample before its TYPE: {l}");
            }
        }
    }
}
