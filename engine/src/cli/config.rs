//! The settings of `floodgate serve`: one struct read both from the command
//! line (clap) and from a TOML file (serde), with the same key names
//! (`--time-wait-capacity` on the command line is `time-wait-capacity` in
//! the file). The command line overrides the file; then [`Settings::resolve`]
//! checks everything and builds the engine's configuration types.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::link::xdp::{BusyPollConfig, BusyPollMode, XdpConfig, XdpMode, ZeroCopy};
use crate::table::TwFullPolicy;
use crate::tcp::config::{half_open_budgets, HALF_OPEN_AUTO};
use crate::tcp::{Capacity, Congestion, CookieMode, Ecn, Keepalive, TcpConfig};

/// Which application the shards run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppKind {
    /// HTTP/1.1 responder: every GET gets 200 and the configured body.
    Http,
    /// Echo: every byte received is sent back.
    Echo,
    /// Sink: every byte received is discarded.
    Sink,
    /// Proxy: every connection is carried to a backend (--backend), round-robin.
    Proxy,
}

impl AppKind {
    /// Whether the application's connections turn Nagle off when
    /// `--nodelay` is not given.
    /// - http: a response is written whole when it is complete, so there
    ///   is nothing to coalesce it with; Nagle would only hold its tail
    ///   behind the previous response's unacknowledged tail (pipelined
    ///   requests), waiting on the client's delayed ACK (up to 40 ms).
    ///   nginx sets TCP_NODELAY on keep-alive connections for this reason.
    /// - echo: Nagle on. It writes back whatever arrived, often in small
    ///   pieces; under a streaming load (tcpkali) Nagle coalesces them into
    ///   full segments, fewer frames for the TX ring, and a ping-pong
    ///   client's next message acknowledges the previous echo, so with
    ///   Minshall's variant it costs that client no latency.
    /// - sink: sends nothing; the RFC's default (Nagle on).
    /// - proxy: Nagle off on both legs. It forwards what arrived as soon as
    ///   it arrived (as HAProxy and nginx set TCP_NODELAY on both sides);
    ///   holding a small tail back for the peer's delayed ACK would add up
    ///   to 40 ms per request/response turn through the balancer.
    pub fn nodelay(self) -> bool {
        match self {
            AppKind::Http | AppKind::Proxy => true,
            AppKind::Echo | AppKind::Sink => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Http => "http",
            AppKind::Echo => "echo",
            AppKind::Sink => "sink",
            AppKind::Proxy => "proxy",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpModeArg {
    /// Driver mode; fail if the driver has no XDP.
    Native,
    /// SKB mode: any interface, slower.
    Generic,
    /// Native, falling back to generic.
    Auto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZeroCopyArg {
    /// Bind zero-copy or fail.
    Require,
    /// Zero-copy if the driver can, else copy.
    Auto,
    /// Copy mode.
    Off,
}

/// Preferred busy polling of the AF_XDP sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BusyPollArg {
    /// Interrupts / softirq / NAPI threads receive, as without the option.
    Off,
    /// Busy-poll the queues that have a NAPI ID; the others as `off` (logged).
    Auto,
    /// As auto, but a queue without a NAPI ID is logged as an error.
    On,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CookieArg {
    /// Half-open state until the listener's budget is spent, then cookies.
    Auto,
    /// Always answer SYNs with cookies (no half-open state).
    Always,
    /// Never: SYNs past the budget are dropped (counted).
    Never,
}

/// When the XDP program answers SYNs with the engine's cookies itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpCookiesArg {
    /// During a SYN flood: from the moment a shard sends cookies until SYNs
    /// slow down again.
    Flood,
    /// Every IPv4 SYN, all the time (stateless handshakes only).
    Always,
    /// Never: every SYN reaches a shard.
    Off,
}

impl XdpCookiesArg {
    pub fn as_str(self) -> &'static str {
        match self {
            XdpCookiesArg::Flood => "flood",
            XdpCookiesArg::Always => "always",
            XdpCookiesArg::Off => "off",
        }
    }
}

/// Congestion control (RFC 9438 CUBIC or RFC 5681 NewReno).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CongestionArg {
    /// CUBIC with HyStart++ (RFC 9438, RFC 9406), as Linux.
    Cubic,
    /// NewReno (RFC 5681, RFC 6582).
    Newreno,
}

/// ECN negotiation (RFC 3168), as Linux's net.ipv4.tcp_ecn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EcnArg {
    /// Never (tcp_ecn = 0).
    Off,
    /// Accepted when the client's SYN asks; not asked for (tcp_ecn = 2).
    Passive,
    /// Also asked for on our own connections: the proxy's to its backends (tcp_ecn = 1).
    On,
}

/// Whether the proxy sends a PROXY protocol header to its backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyProtocolArg {
    /// No header: the backend sees floodgate's source address.
    Off,
    /// PROXY protocol v2 (binary) with the client's address and port.
    V2,
}

/// The proxy's active health checks ([`crate::app::proxy::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthCheckArg {
    /// None: only passive ejection judges the backends.
    Off,
    /// A TCP connect to the backend's address and port, reset once it answers.
    Tcp,
    /// A TCP connect, then `GET --check-path`; the answer's status must be
    /// --check-status (by default any 2xx or 3xx).
    Http,
}

/// How the proxy picks a backend for a new client ([`crate::app::proxy::balance`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BalanceArg {
    /// In turn, ignoring weights.
    Rr,
    /// Smooth weighted round-robin (nginx's).
    Wrr,
    /// Fewest active connections per unit of weight (per shard).
    LeastConn,
    /// Maglev consistent hashing on the client's address and port: every
    /// box given the same backends sends a flow to the same one.
    Maglev,
    /// Maglev on the client's address only (source affinity).
    MaglevSourceIp,
}

impl BalanceArg {
    pub fn algorithm(self) -> crate::app::proxy::balance::Algorithm {
        use crate::app::proxy::balance::Algorithm;
        match self {
            BalanceArg::Rr => Algorithm::RoundRobin,
            BalanceArg::Wrr => Algorithm::Wrr,
            BalanceArg::LeastConn => Algorithm::LeastConn,
            BalanceArg::Maglev => Algorithm::Maglev { source_affinity: false },
            BalanceArg::MaglevSourceIp => Algorithm::Maglev { source_affinity: true },
        }
    }
}

/// A backend on the command line or in the file: `ADDR:PORT` or
/// `ADDR:PORT@WEIGHT` (weight 0-10000, default 1; 0 takes no new client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendArg {
    pub addr: SocketAddr,
    pub weight: u32,
}

/// A `[[pool]]` of the settings file (no command-line form): the
/// listeners on `port` take their backends from it instead of the
/// top-level `backend` list, which serves every other port.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PoolArg {
    pub port: u16,
    pub backend: Vec<BackendArg>,
    /// [default: the top-level `balance`]
    pub balance: Option<BalanceArg>,
    /// [default: the top-level `maglev-seed`]
    pub maglev_seed: Option<u64>,
}

/// The largest backend weight.
pub const MAX_WEIGHT: u32 = 10_000;

impl FromStr for BackendArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, w) = match s.trim().rsplit_once('@') {
            Some((a, w)) => (a, Some(w)),
            None => (s.trim(), None),
        };
        let addr = a.parse().map_err(|_| format!("backend {s:?}: expected ADDR:PORT or ADDR:PORT@WEIGHT"))?;
        let weight = match w {
            None => 1,
            Some(w) => w
                .parse()
                .ok()
                .filter(|w| *w <= MAX_WEIGHT)
                .ok_or_else(|| format!("backend {s:?}: the weight must be 0-{MAX_WEIGHT}"))?,
        };
        Ok(BackendArg { addr, weight })
    }
}

impl<'de> Deserialize<'de> for BackendArg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TwPolicyArg {
    /// A full TIME-WAIT table evicts its oldest entry (counted).
    EvictOldest,
    /// A full TIME-WAIT table makes new SYNs be dropped (counted).
    RefuseNew,
}

/// A duration on the command line or in the file: `30` or `30s`, `500ms`,
/// `2m`, `1h`; in the file also a bare number (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secs(pub Duration);

impl FromStr for Secs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, "s"),
        };
        let v: f64 = num.trim().parse().map_err(|_| format!("bad duration {s:?} (examples: 30, 30s, 500ms, 2m)"))?;
        let mult = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("bad duration unit in {s:?}: use ms, s, m or h")),
        };
        let secs = v * mult;
        if !(0.0..=1e9).contains(&secs) {
            return Err(format!("duration {s:?} out of range"));
        }
        Ok(Secs(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Secs(Duration::from_secs(n))),
            Raw::Float(f) if (0.0..=1e9).contains(&f) => Ok(Secs(Duration::from_secs_f64(f))),
            Raw::Float(f) => Err(serde::de::Error::custom(format!("duration {f} out of range"))),
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Every setting of `floodgate serve`. All optional here: the file and the
/// command line are merged first, then defaults apply and the result is checked.
#[derive(Args, Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// TOML file with any of these settings (same names, without the dashes
    /// in front); the command line overrides it.
    #[arg(long, value_name = "FILE", help_heading = "Where")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Interface to serve on; one AF_XDP socket and one shard per RX queue.
    #[arg(long, value_name = "IF", help_heading = "Where")]
    pub iface: Option<String>,
    /// Addresses served (VIPs), comma-separated. They need not be configured
    /// on the interface, but something must bring their traffic here (ARP
    /// by the kernel if it has the address, or a route on the next hop).
    #[arg(long, value_name = "ADDR[,ADDR...]", value_delimiter = ',', help_heading = "Where")]
    pub vip: Option<Vec<IpAddr>>,
    /// TCP ports served on every VIP, comma-separated.
    #[arg(long, value_name = "N[,N...]", value_delimiter = ',', help_heading = "Where")]
    pub port: Option<Vec<u16>>,
    /// The application the shards run.
    #[arg(long, value_enum, help_heading = "Where")]
    pub app: Option<AppKind>,
    /// Shards (RX queues 0..N-1, one thread each) [default: every RX queue of the interface].
    #[arg(long, value_name = "N", help_heading = "Where")]
    pub queues: Option<u32>,
    /// CPUs to pin the shards to, in shard order [default: the CPUs this process may use, round robin].
    #[arg(long, value_name = "CPU[,CPU...]", value_delimiter = ',', help_heading = "Where")]
    pub cpus: Option<Vec<usize>>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (kernel socket).
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Where")]
    pub metrics: Option<SocketAddr>,

    /// XDP attach mode [default: auto].
    #[arg(long, value_enum, value_name = "MODE", help_heading = "XDP")]
    pub xdp_mode: Option<XdpModeArg>,
    /// AF_XDP zero-copy policy [default: auto].
    #[arg(long, value_enum, value_name = "POLICY", help_heading = "XDP")]
    pub zero_copy: Option<ZeroCopyArg>,
    /// UMEM frame size in bytes, 2048 or 4096 [default: 4096].
    #[arg(long, value_name = "BYTES", help_heading = "XDP")]
    pub frame_size: Option<u32>,
    /// RX ring size per queue, a power of two; the fill ring gets twice as many slots [default: 2048].
    #[arg(long, value_name = "N", help_heading = "XDP")]
    pub rx_ring: Option<u32>,
    /// TX/completion ring size per queue, a power of two [default: 2048].
    #[arg(long, value_name = "N", help_heading = "XDP")]
    pub tx_ring: Option<u32>,
    /// Preferred busy polling (Linux 5.11+): each shard's own recvfrom/sendto
    /// runs its queue's NAPI poll (SO_PREFER_BUSY_POLL, SO_BUSY_POLL,
    /// SO_BUSY_POLL_BUDGET on the socket; napi_defer_hard_irqs = 2 and
    /// gro_flush_timeout = 200 µs on the interface while serving, the old
    /// values restored at exit, or at the next start after a crash). A
    /// socket the kernel gives no NAPI ID (Linux 6.13+: the driver must link
    /// its queues to their NAPI; veth does not) is served as with `off`, and
    /// said so in the log and in floodgate_shard_info{busy_poll} [default: off].
    #[arg(long, value_enum, value_name = "MODE", help_heading = "XDP")]
    pub busy_poll: Option<BusyPollArg>,
    /// SO_BUSY_POLL in µs: any non-zero value arms busy polling; the shard's
    /// calls never block, so each polls once [default: 20].
    #[arg(long, value_name = "USEC", help_heading = "XDP")]
    pub busy_poll_usec: Option<u32>,

    /// Connections (established and half-open) per shard, preallocated [default: 65536].
    #[arg(long, value_name = "N", help_heading = "Limits (per shard)")]
    pub connections: Option<u32>,
    /// IPv4 TIME-WAIT entries per shard, preallocated [default: 65536].
    #[arg(long, value_name = "N", help_heading = "Limits (per shard)")]
    pub time_wait_capacity: Option<u32>,
    /// IPv6 TIME-WAIT entries per shard, preallocated (a table of their own)
    /// [default: --time-wait-capacity].
    #[arg(long, value_name = "N", help_heading = "Limits (per shard)")]
    pub time_wait_capacity_v6: Option<u32>,
    /// What a full TIME-WAIT table does [default: evict-oldest].
    #[arg(long, value_enum, value_name = "POLICY", help_heading = "Limits (per shard)")]
    pub time_wait_policy: Option<TwPolicyArg>,
    /// Buffer chunks per shard, shared by its connections: each direction of a connection holds
    /// chunks only while it has bytes, up to --max-send-buffer / --max-recv-buffer; with fewer
    /// than 1/8 free, buffers stop growing (buffer_growth_refused) [default: 8192].
    #[arg(long, value_name = "N", help_heading = "Limits (per shard)")]
    pub buffers: Option<u32>,
    /// Bytes per buffer chunk: the step in which buffers grow, and every connection's first
    /// receive window [default: 16384].
    #[arg(long, value_name = "BYTES", help_heading = "Limits (per shard)")]
    pub buffer_size: Option<u32>,
    /// Application events queued between two drains [default: 8192].
    #[arg(long, value_name = "N", help_heading = "Limits (per shard)")]
    pub events: Option<u32>,
    /// Half-open (SYN-RECEIVED) entries per listener (each VIP and port) before SYN cookies; all
    /// listeners' budgets together may take at most half of --connections, so a flood never
    /// fills the table [default: 1/8 of --connections, shared by the listeners].
    #[arg(long, value_name = "N", help_heading = "Limits (per shard)")]
    pub half_open_budget: Option<u32>,
    /// Connections one source address may hold per shard (IPv6: per /64);
    /// past it its SYNs are dropped and its cookie ACKs reset, counted in
    /// syns_dropped_source_limit and cookie_acks_refused_source_limit. Per
    /// shard: with N shards a source may hold up to N times this [default: off].
    #[arg(long, value_name = "N", help_heading = "Limits (per shard)")]
    pub max_conns_per_source: Option<u32>,
    /// Distinct source addresses tracked for --max-conns-per-source; beyond
    /// them new sources are admitted uncounted (source_table_full) [default: 65536].
    #[arg(long, value_name = "N", help_heading = "Limits (per shard)")]
    pub source_table: Option<u32>,

    /// Maximum segment lifetime; TIME-WAIT lasts 2 x MSL [default: 30s].
    #[arg(long, value_name = "DURATION", help_heading = "TCP")]
    pub msl: Option<Secs>,
    /// How long FIN-WAIT-2 waits for the peer's FIN [default: 60s].
    #[arg(long, value_name = "DURATION", help_heading = "TCP")]
    pub fin_wait2_timeout: Option<Secs>,
    /// Keepalive: idle time before the first probe [default: 2h].
    #[arg(long, value_name = "DURATION", help_heading = "TCP")]
    pub keepalive_idle: Option<Secs>,
    /// Keepalive: time between probes [default: 75s].
    #[arg(long, value_name = "DURATION", help_heading = "TCP")]
    pub keepalive_interval: Option<Secs>,
    /// Keepalive: unanswered probes before the connection is reset [default: 10].
    #[arg(long, value_name = "N", help_heading = "TCP")]
    pub keepalive_probes: Option<u8>,
    /// Turn keepalive off.
    #[arg(long, help_heading = "TCP")]
    #[serde(default)]
    pub no_keepalive: bool,
    /// When SYNs are answered with SYN cookies [default: auto].
    #[arg(long, value_enum, value_name = "MODE", help_heading = "TCP")]
    pub syn_cookies: Option<CookieArg>,
    /// When SYN cookies are answered in XDP, before any shard [default: flood;
    /// off with --syn-cookies never].
    #[arg(long, value_enum, value_name = "MODE", help_heading = "TCP")]
    pub xdp_syn_cookies: Option<XdpCookiesArg>,
    /// The most one connection's send buffer grows to, chunk by chunk as the application
    /// writes: bytes in flight on a long path need this much (at least --buffer-size, at
    /// most 1 GiB) [default: 4194304, 4 MiB].
    #[arg(long, value_name = "BYTES", help_heading = "TCP")]
    pub max_send_buffer: Option<u32>,
    /// The most one connection's receive buffer, and so its window, grows to. The window
    /// starts at one chunk and doubles each round trip while the application reads all
    /// that arrives (autotuning); the window scale offered covers it (at least --buffer-size,
    /// at most 1 GiB) [default: 4194304, 4 MiB].
    #[arg(long, value_name = "BYTES", help_heading = "TCP")]
    pub max_recv_buffer: Option<u32>,
    /// Link MTU; the MSS advertised is this less the headers [default: 1500].
    #[arg(long, value_name = "BYTES", help_heading = "TCP")]
    pub mtu: Option<u16>,
    /// Congestion control of the served connections: cubic (RFC 9438, with
    /// HyStart++ leaving slow start when the RTT rises) or newreno (RFC
    /// 5681) [default: cubic].
    #[arg(long, value_enum, value_name = "ALGORITHM", help_heading = "TCP")]
    pub congestion: Option<CongestionArg>,
    /// Nagle's algorithm off (true) or on (false): with it on, a small
    /// segment waits while an earlier small one is unacknowledged
    /// (RFC 9293 §3.7.4). `--nodelay` alone means true [default: true for
    /// --app http, false for echo and sink].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "TCP")]
    pub nodelay: Option<bool>,
    /// Explicit Congestion Notification (RFC 3168): off; passive, accepted
    /// when a client's SYN asks for it; on, also asked for on floodgate's
    /// own connections (the proxy's to its backends). With ECN a router
    /// marks packets instead of dropping them and the window shrinks
    /// without a retransmission [default: passive, as Linux].
    #[arg(long, value_enum, value_name = "MODE", help_heading = "TCP")]
    pub ecn: Option<EcnArg>,

    /// HTTP app: the body of every 200 response [default: "Hello, World!", 13 bytes].
    #[arg(long, value_name = "TEXT", help_heading = "Applications")]
    pub http_body: Option<String>,
    /// HTTP app: in place of --http-body, a body of N generated bytes (64-byte
    /// lines of letters and digits), streamed from one static pattern as the
    /// send buffer takes it, so any size costs no memory: for bulk downloads.
    #[arg(long, value_name = "N", help_heading = "Applications")]
    pub http_body_bytes: Option<u64>,
    /// HTTP app: the largest request head accepted; larger gets 400 [default: 8192].
    #[arg(long, value_name = "BYTES", help_heading = "Applications")]
    pub http_max_header_bytes: Option<usize>,
    /// HTTP app: time from the accept, or from the first byte of a later
    /// request, to the complete request. Not extended by bytes trickling
    /// in (slowloris). A partial request then gets 408 and a close, a
    /// connection that sent nothing a bare FIN. 0 turns it off [default: 20s].
    #[arg(long, value_name = "DURATION", help_heading = "Applications")]
    pub http_header_timeout: Option<Secs>,
    /// HTTP app: how long a keep-alive connection may wait for its next
    /// request before a graceful close (FIN); a response that makes no
    /// progress for this long is reset. 0 turns it off [default: 75s].
    #[arg(long, value_name = "DURATION", help_heading = "Applications")]
    pub http_keepalive_timeout: Option<Secs>,
    /// Echo and sink apps: a connection on which nothing moves (no byte in,
    /// no byte acknowledged) for this long is closed (RST if bytes are still
    /// pending). 0 turns it off [default: 5m].
    #[arg(long, value_name = "DURATION", help_heading = "Applications")]
    pub idle_timeout: Option<Secs>,

    /// Proxy app: the backends, each with an optional weight (IPv4; reached
    /// on --iface, a one-armed front end; their MACs from the kernel's ARP
    /// table at start). Weight 0 drains a backend: no new clients. On
    /// several shards a reply that lands on another shard's queue is
    /// handed to the shard that owns its connection.
    #[arg(long, value_name = "ADDR:PORT[@WEIGHT][,...]", value_delimiter = ',', help_heading = "Proxy")]
    pub backend: Option<Vec<BackendArg>>,
    /// Settings file only, `[[pool]]` tables: a port whose listeners take
    /// their own backends (`port`, `backend`, optional `balance` and
    /// `maglev-seed`); the top-level `backend` list serves the other ports.
    #[arg(skip)]
    pub pool: Option<Vec<PoolArg>>,
    /// Proxy app: how a backend is chosen for a new client [default: rr].
    #[arg(long, value_enum, value_name = "ALGORITHM", help_heading = "Proxy")]
    pub balance: Option<BalanceArg>,
    /// Proxy app, `--balance maglev`: the seed of the Maglev hashes. Boxes
    /// that share a VIP (ECMP) must share the seed and the backend list to
    /// send a flow to the same backend [default: 0].
    #[arg(long, value_name = "N", help_heading = "Proxy")]
    pub maglev_seed: Option<u64>,
    /// Proxy app: a backend whose connects fail this many times in a row
    /// (refused or silent) on a shard takes no new client from it for
    /// --eject-time; 0 never ejects [default: 5].
    #[arg(long, value_name = "N", help_heading = "Proxy")]
    pub eject_after: Option<u16>,
    /// Proxy app: how long an ejected backend rests, doubled for each
    /// ejection in a row up to 8x [default: 30s].
    #[arg(long, value_name = "DURATION", help_heading = "Proxy")]
    pub eject_time: Option<Secs>,
    /// Proxy app: the most backends of a pool ejected at once, in percent
    /// of the pool (at least one may be), so passive ejection never turns
    /// every client away [default: 10].
    #[arg(long, value_name = "PERCENT", help_heading = "Proxy")]
    pub eject_max_percent: Option<u8>,
    /// Proxy app: active health checks of every backend from each shard
    /// [default: tcp].
    #[arg(long, value_enum, help_heading = "Proxy")]
    pub health_check: Option<HealthCheckArg>,
    /// Proxy app: time between two checks of a backend [default: 1s].
    #[arg(long, value_name = "DURATION", help_heading = "Proxy")]
    pub check_interval: Option<Secs>,
    /// Proxy app: how long a check waits for the backend's answer, at
    /// most --check-interval [default: 1s].
    #[arg(long, value_name = "DURATION", help_heading = "Proxy")]
    pub check_timeout: Option<Secs>,
    /// Proxy app, --health-check http: the path asked for [default: /].
    #[arg(long, value_name = "PATH", help_heading = "Proxy")]
    pub check_path: Option<String>,
    /// Proxy app, --health-check http: the status that passes [default:
    /// any 2xx or 3xx].
    #[arg(long, value_name = "CODE", help_heading = "Proxy")]
    pub check_status: Option<u16>,
    /// Proxy app: failed checks in a row that take a backend out [default: 3].
    #[arg(long, value_name = "N", help_heading = "Proxy")]
    pub check_fall: Option<u16>,
    /// Proxy app: passed checks in a row that bring it back [default: 2].
    #[arg(long, value_name = "N", help_heading = "Proxy")]
    pub check_rise: Option<u16>,
    /// Proxy app: the IPv4 addresses floodgate owns for its connections to
    /// the backends, a range A-B (or one address). Each (address, port) is
    /// reused only after 2MSL in TIME-WAIT, so per shard and backend at most
    /// addresses x ports / 2MSL new connections per second (logged at start).
    #[arg(long, value_name = "A-B", help_heading = "Proxy")]
    pub source_addrs: Option<String>,
    /// Proxy app: the interface the backends are reached through, for a
    /// two-armed front end (clients on --iface, backends on this one, as
    /// with a front and a back NIC): each shard also binds this
    /// interface's queue of its own number, and --source-addrs should be
    /// addresses of this side. Default: --iface (one-armed).
    #[arg(long, value_name = "IF", help_heading = "Proxy")]
    pub backend_iface: Option<String>,
    /// Proxy app: the source ports, split into disjoint slices, one per
    /// shard [default: 1024-65535].
    #[arg(long, value_name = "LO-HI", help_heading = "Proxy")]
    pub source_ports: Option<String>,
    /// Proxy app: how long a backend gets to answer the SYN before the next
    /// one is tried (once; then the client is reset) [default: 3s].
    #[arg(long, value_name = "DURATION", help_heading = "Proxy")]
    pub backend_connect_timeout: Option<Secs>,
    /// Proxy app: a pair with no byte moving either way for this long is
    /// reset on both sides. 0 turns it off [default: 10m].
    #[arg(long, value_name = "DURATION", help_heading = "Proxy")]
    pub proxy_idle_timeout: Option<Secs>,
    /// Proxy app: send a PROXY protocol header first to the backend [default: off].
    #[arg(long, value_enum, value_name = "VERSION", help_heading = "Proxy")]
    pub proxy_protocol: Option<ProxyProtocolArg>,

    /// On SIGINT/SIGTERM, how long established connections may take to
    /// finish before the rest are reset [default: 5s].
    #[arg(long, value_name = "DURATION", help_heading = "Operating")]
    pub drain: Option<Secs>,
    /// A shard that has not turned (stuck), or the interface down or gone,
    /// for this long ends the process with status 1, so systemd restarts it;
    /// both are reported (log, metrics) from the first second. 0: report
    /// only, never exit [default: 10s].
    #[arg(long, value_name = "DURATION", help_heading = "Operating")]
    pub stall_timeout: Option<Secs>,

    /// Scale-out by BGP: keep a route per VIP (`blackhole VIP/32 proto 210`)
    /// in this kernel routing table while the box is up, healthy (a backend
    /// up, with the proxy) and not draining; BIRD announces what is there
    /// (deploy/bird/floodgate-box.conf). A table of its own, not 253-255
    /// [default: off].
    #[arg(long, value_name = "TABLE", help_heading = "Operating")]
    pub announce_table: Option<u32>,
    /// With --announce-table: on SIGINT/SIGTERM the routes go first, then
    /// new connections are still accepted for this long, while the routers
    /// move new flows to the other boxes; then the drain [default: 2s].
    #[arg(long, value_name = "DURATION", help_heading = "Operating")]
    pub announce_wait: Option<Secs>,
}

macro_rules! merge_fields {
    ($cli:ident, $file:ident; $($f:ident),*) => {
        Settings { config: $cli.config.clone(), no_keepalive: $cli.no_keepalive || $file.no_keepalive, $($f: $cli.$f.or($file.$f),)* }
    };
}

impl Settings {
    /// Reads a TOML settings file.
    pub fn from_file(path: &std::path::Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// `self` (the command line) over `file`.
    pub fn over(self, file: Settings) -> Settings {
        let cli = self;
        merge_fields!(cli, file; iface, vip, port, app, queues, cpus, metrics, xdp_mode, zero_copy,
            frame_size, rx_ring, tx_ring, busy_poll, busy_poll_usec, connections, time_wait_capacity, time_wait_capacity_v6, time_wait_policy, buffers,
            buffer_size, events, half_open_budget, max_conns_per_source, source_table, msl, fin_wait2_timeout, keepalive_idle,
            keepalive_interval, keepalive_probes, syn_cookies, xdp_syn_cookies, max_send_buffer, max_recv_buffer, mtu, congestion, nodelay, ecn,
            http_body, http_body_bytes, http_max_header_bytes, http_header_timeout, http_keepalive_timeout, idle_timeout, backend, pool, balance, maglev_seed, eject_after, eject_time, eject_max_percent, health_check, check_interval, check_timeout, check_path, check_status, check_fall, check_rise, source_addrs, source_ports, backend_iface,
            backend_connect_timeout, proxy_idle_timeout, proxy_protocol, drain, stall_timeout,
            announce_table, announce_wait)
    }

    /// Checks the merged settings and builds the engine's configuration.
    /// `rx_queues` is the interface's RX queue count, if known.
    pub fn resolve(&self, mut rx_queues: impl FnMut(&str) -> Option<u32>) -> Result<Resolved, String> {
        let iface = self.iface.clone().ok_or("--iface is required (the interface to serve on)")?;
        let vips = self.vip.clone().unwrap_or_default();
        if vips.is_empty() {
            return Err("--vip is required (the address or addresses to serve)".into());
        }
        for v in &vips {
            if v.is_unspecified() || v.is_multicast() {
                return Err(format!("--vip {v}: not a unicast address"));
            }
        }
        let ports = self.port.clone().unwrap_or_default();
        if ports.is_empty() {
            return Err("--port is required (the TCP port or ports to serve)".into());
        }
        if ports.contains(&0) {
            return Err("--port 0 is not a port".into());
        }
        let app = self.app.ok_or("--app is required: http, echo, sink or proxy")?;

        let have = rx_queues(&iface);
        let queues = match (self.queues, have) {
            (Some(0), _) => return Err("--queues must be at least 1".into()),
            (Some(q), Some(n)) if q > n => {
                return Err(format!("--queues {q} but {iface} has {n} RX queue{}", if n == 1 { "" } else { "s" }))
            }
            (Some(q), _) => q,
            (None, Some(n)) => n.max(1),
            (None, None) => 1,
        };
        if let Some(c) = &self.cpus {
            if c.len() < queues as usize {
                return Err(format!("--cpus lists {} CPU(s) for {queues} shards", c.len()));
            }
        }

        let def = TcpConfig::default();
        let ka_default = Keepalive::default();
        let keepalive = if self.no_keepalive {
            None
        } else {
            let k = Keepalive {
                idle: self.keepalive_idle.map_or(ka_default.idle, |s| s.0),
                interval: self.keepalive_interval.map_or(ka_default.interval, |s| s.0),
                probes: self.keepalive_probes.unwrap_or(ka_default.probes),
            };
            if k.idle.is_zero() || k.interval.is_zero() {
                return Err("--keepalive-idle and --keepalive-interval must be more than 0 (or --no-keepalive)".into());
            }
            if k.probes == 0 {
                return Err("--keepalive-probes must be at least 1 (or --no-keepalive)".into());
            }
            Some(k)
        };
        let mut tcp = TcpConfig {
            mtu: self.mtu.unwrap_or(def.mtu),
            msl: self.msl.map_or(def.msl, |s| s.0),
            fin_wait2_timeout: self.fin_wait2_timeout.map_or(def.fin_wait2_timeout, |s| s.0),
            keepalive,
            syn_cookies: match self.syn_cookies {
                None => def.syn_cookies,
                Some(CookieArg::Auto) => CookieMode::Auto,
                Some(CookieArg::Always) => CookieMode::Always,
                Some(CookieArg::Never) => CookieMode::Never,
            },
            source_limit: self.max_conns_per_source,
            congestion: match self.congestion {
                None | Some(CongestionArg::Cubic) => Congestion::Cubic,
                Some(CongestionArg::Newreno) => Congestion::NewReno,
            },
            nodelay: self.nodelay.unwrap_or(app.nodelay()),
            ecn: match self.ecn {
                None => def.ecn,
                Some(EcnArg::Off) => Ecn::Off,
                Some(EcnArg::Passive) => Ecn::Passive,
                Some(EcnArg::On) => Ecn::On,
            },
            max_send_buffer: self.max_send_buffer.unwrap_or(def.max_send_buffer),
            max_recv_buffer: self.max_recv_buffer.unwrap_or(def.max_recv_buffer),
            ..def
        };
        // The shift offered in SYN-ACKs (the engine's and the XDP program's
        // cookie SYN-ACKs alike) must let the window reach the buffer.
        tcp.window_scale = tcp.offered_window_scale();
        let xdp_syn_cookies = match (self.xdp_syn_cookies, tcp.syn_cookies) {
            (Some(XdpCookiesArg::Off), _) | (None, CookieMode::Never) => XdpCookiesArg::Off,
            (Some(m), CookieMode::Never) => {
                return Err(format!("--xdp-syn-cookies {} needs SYN cookies: not with --syn-cookies never", m.as_str()))
            }
            (Some(m), _) => m,
            (None, _) => XdpCookiesArg::Flood,
        };
        if tcp.msl.is_zero() || tcp.msl > Duration::from_secs(3600) {
            return Err("--msl must be more than 0 and at most 1h".into());
        }
        if !(576..=9216).contains(&tcp.mtu) {
            return Err(format!("--mtu {} must be between 576 and 9216", tcp.mtu));
        }
        let cdef = Capacity::default();
        let cap = Capacity {
            connections: self.connections.unwrap_or(cdef.connections),
            time_wait: self.time_wait_capacity.unwrap_or(cdef.time_wait),
            time_wait_v6: self.time_wait_capacity_v6.or(self.time_wait_capacity).unwrap_or(cdef.time_wait_v6),
            buffers: self.buffers.unwrap_or(cdef.buffers),
            buffer_size: self.buffer_size.unwrap_or(cdef.buffer_size),
            events: self.events.unwrap_or(cdef.events),
            time_wait_policy: match self.time_wait_policy {
                None => cdef.time_wait_policy,
                Some(TwPolicyArg::EvictOldest) => TwFullPolicy::EvictOldest,
                Some(TwPolicyArg::RefuseNew) => TwFullPolicy::RefuseNew,
            },
            sources: if tcp.source_limit.is_some() { self.source_table.unwrap_or(65536) } else { 0 },
        };
        if tcp.source_limit == Some(0) {
            return Err("--max-conns-per-source must be at least 1 (leave it out for no limit)".into());
        }
        if tcp.source_limit.is_some() && !(1..=1 << 24).contains(&cap.sources) {
            return Err(format!("--source-table {} must be between 1 and {}", cap.sources, 1 << 24));
        }
        for (name, v, max) in [
            ("--connections", cap.connections, 1 << 26),
            ("--time-wait-capacity", cap.time_wait, 1 << 28),
            ("--time-wait-capacity-v6", cap.time_wait_v6, 1 << 28),
            ("--buffers", cap.buffers, 1 << 24),
            ("--events", cap.events, 1 << 24),
        ] {
            if v == 0 || v > max {
                return Err(format!("{name} {v} must be between 1 and {max}"));
            }
        }
        if !(512..=1 << 24).contains(&cap.buffer_size) {
            return Err(format!("--buffer-size {} must be between 512 and 16777216", cap.buffer_size));
        }
        for (name, v) in [("--max-send-buffer", tcp.max_send_buffer), ("--max-recv-buffer", tcp.max_recv_buffer)] {
            if v < cap.buffer_size || v > 1 << 30 {
                return Err(format!("{name} {v} must be between --buffer-size ({}) and 1073741824", cap.buffer_size));
            }
        }
        // The reserve: half-open entries from a flood must leave room in the
        // table for the handshakes that complete (cookie ACKs).
        let listeners = vips.len() * ports.len();
        let budget = self.half_open_budget.unwrap_or(HALF_OPEN_AUTO);
        if self.half_open_budget == Some(0) {
            return Err("--half-open-budget must be at least 1".into());
        }
        tcp.half_open_budget = half_open_budgets(std::iter::repeat_n(budget, listeners), cap.connections)
            .map_err(|e| {
                let b = self.half_open_budget.map_or("(default)".to_string(), |b| b.to_string());
                format!("--half-open-budget {b} for {listeners} listener(s) (VIPs x ports): {e}")
            })?
            .next()
            .unwrap_or(1);
        let xdp_def = XdpConfig::default();
        let xdp = XdpConfig {
            frame_size: self.frame_size.unwrap_or(xdp_def.frame_size),
            rx_ring: self.rx_ring.unwrap_or(xdp_def.rx_ring),
            tx_ring: self.tx_ring.unwrap_or(xdp_def.tx_ring),
            zero_copy: match self.zero_copy {
                None => xdp_def.zero_copy,
                Some(ZeroCopyArg::Require) => ZeroCopy::Require,
                Some(ZeroCopyArg::Auto) => ZeroCopy::Auto,
                Some(ZeroCopyArg::Off) => ZeroCopy::Off,
            },
            busy_poll: BusyPollConfig {
                mode: match self.busy_poll {
                    None => xdp_def.busy_poll.mode,
                    Some(BusyPollArg::Off) => BusyPollMode::Off,
                    Some(BusyPollArg::Auto) => BusyPollMode::Auto,
                    Some(BusyPollArg::On) => BusyPollMode::On,
                },
                usec: self.busy_poll_usec.unwrap_or(xdp_def.busy_poll.usec),
                budget: xdp_def.batch as u16,
            },
            ..xdp_def
        };
        if !(1..=1_000_000).contains(&xdp.busy_poll.usec) {
            return Err(format!("--busy-poll-usec {} must be between 1 and 1000000", xdp.busy_poll.usec));
        }
        if xdp.frame_size != 2048 && xdp.frame_size != 4096 {
            return Err(format!("--frame-size {} must be 2048 or 4096", xdp.frame_size));
        }
        for (name, v) in [("--rx-ring", xdp.rx_ring), ("--tx-ring", xdp.tx_ring)] {
            if !v.is_power_of_two() || !(64..=65536).contains(&v) {
                return Err(format!("{name} {v} must be a power of two between 64 and 65536"));
            }
        }
        let xdp_mode = match self.xdp_mode {
            None | Some(XdpModeArg::Auto) => XdpMode::Auto,
            Some(XdpModeArg::Native) => XdpMode::Native,
            Some(XdpModeArg::Generic) => XdpMode::Generic,
        };
        let http_max_header_bytes = self.http_max_header_bytes.unwrap_or(8192);
        if http_max_header_bytes < 64 {
            return Err("--http-max-header-bytes must be at least 64".into());
        }
        let stall_timeout =
            self.stall_timeout.map_or(Some(DEFAULT_STALL_TIMEOUT), |s| Some(s.0).filter(|d| !d.is_zero()));
        if stall_timeout.is_some_and(|d| d < Duration::from_secs(1)) {
            return Err("--stall-timeout must be 0 (never exit) or at least 1s".into());
        }
        let proxy = if app == AppKind::Proxy { Some(self.proxy_settings(&tcp, &cap, queues)?) } else { None };
        if let Some(b) = &self.backend_iface {
            if app != AppKind::Proxy {
                return Err(format!("--backend-iface {b}: only the proxy app has backends (--app proxy)"));
            }
            if *b == iface {
                return Err(format!("--backend-iface {b} is --iface: leave it out for a one-armed front end"));
            }
            if let Some(n) = rx_queues(b).filter(|&n| n < queues) {
                return Err(format!(
                    "--backend-iface {b} has {n} RX queue{} for {queues} shards: each shard binds the queue of \
                     its own number on both interfaces",
                    if n == 1 { "" } else { "s" }
                ));
            }
        }
        let announce = match self.announce_table {
            None => {
                if self.announce_wait.is_some() {
                    return Err("--announce-wait needs --announce-table".into());
                }
                None
            }
            Some(t @ (0 | 253..=255)) => {
                return Err(format!(
                    "--announce-table {t}: not a table of its own (0 is unspecified, 253-255 are default, main, local)"
                ))
            }
            Some(table) => Some(Announce { table, wait: self.announce_wait.map_or(DEFAULT_ANNOUNCE_WAIT, |s| s.0) }),
        };
        Ok(Resolved {
            proxy,
            iface,
            vips,
            ports,
            app,
            queues,
            cpus: self.cpus.clone(),
            metrics: self.metrics,
            xdp_mode,
            xdp,
            tcp,
            xdp_syn_cookies,
            cap,
            http_body: self.http_body.clone().unwrap_or_else(|| "Hello, World!".into()),
            http_body_bytes: self.http_body_bytes,
            http_max_header_bytes,
            http_header_timeout: timeout(self.http_header_timeout, crate::app::http::HEADER_TIMEOUT),
            http_keepalive_timeout: timeout(self.http_keepalive_timeout, crate::app::http::KEEPALIVE_TIMEOUT),
            idle_timeout: timeout(self.idle_timeout, crate::app::echo::IDLE_TIMEOUT),
            drain: self.drain.map_or(Duration::from_secs(5), |s| s.0),
            stall_timeout,
            announce,
        })
    }
}

/// Settings checked and turned into the engine's types.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub iface: String,
    pub vips: Vec<IpAddr>,
    pub ports: Vec<u16>,
    pub app: AppKind,
    pub queues: u32,
    pub cpus: Option<Vec<usize>>,
    pub metrics: Option<SocketAddr>,
    pub xdp_mode: XdpMode,
    pub xdp: XdpConfig,
    pub tcp: TcpConfig,
    pub xdp_syn_cookies: XdpCookiesArg,
    pub cap: Capacity,
    pub http_body: String,
    /// A generated body of this many bytes, in place of `http_body`.
    pub http_body_bytes: Option<u64>,
    pub http_max_header_bytes: usize,
    /// The application deadlines; `None` is off.
    pub http_header_timeout: Option<Duration>,
    pub http_keepalive_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub drain: Duration,
    /// `None`: stalls and link loss are reported, never fatal.
    pub stall_timeout: Option<Duration>,
    /// With `--app proxy`.
    pub proxy: Option<ProxySettings>,
    /// With `--announce-table`.
    pub announce: Option<Announce>,
}

/// How long a box withdrawn by SIGTERM keeps accepting before its drain.
pub const DEFAULT_ANNOUNCE_WAIT: Duration = Duration::from_secs(2);

/// Scale-out by BGP ([`super::announce`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    /// The kernel table of the VIP routes.
    pub table: u32,
    /// From the withdrawal to the drain.
    pub wait: Duration,
}

/// The proxy's settings, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxySettings {
    pub backends: Vec<SocketAddr>,
    /// Each backend's weight, in the order of `backends`.
    pub weights: Vec<u32>,
    pub balance: crate::app::proxy::balance::Algorithm,
    /// `--balance maglev`: the table, built once, shared by the shards.
    pub maglev: Option<std::sync::Arc<crate::app::proxy::maglev::Table>>,
    /// `--maglev-seed` (0 by default): the admin interface rebuilds the
    /// table with it when a weight changes.
    pub maglev_seed: u64,
    /// Passive ejection, `None` when off.
    pub eject: Option<crate::app::proxy::Eject>,
    /// Active health checks, `None` when off.
    pub check: Option<crate::app::proxy::check::Check>,
    /// What a check asks of the backend.
    pub probe: crate::app::proxy::check::Probe,
    pub source_first: Ipv4Addr,
    pub source_last: Ipv4Addr,
    /// Every shard's slice of the source ports, in shard order.
    pub shard_ports: Vec<(u16, u16)>,
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub proxy_protocol: bool,
    /// New connections per second one shard sustains towards one backend.
    pub rate_per_backend: f64,
    /// The `[[pool]]`s, pools 1.. (pool 0 is the fields above).
    pub extra_pools: Vec<ExtraPool>,
    /// By listener (every VIP with every port, VIP by VIP), its pool.
    pub listener_pools: Vec<u16>,
    /// `--backend-iface`: a two-armed front end's back link (`None`: the
    /// backends are reached through `--iface`).
    pub backend_iface: Option<String>,
}

/// A `[[pool]]` resolved: the backends of one port's listeners.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtraPool {
    pub port: u16,
    pub backends: Vec<SocketAddr>,
    pub weights: Vec<u32>,
    pub balance: crate::app::proxy::balance::Algorithm,
    pub maglev: Option<std::sync::Arc<crate::app::proxy::maglev::Table>>,
    pub maglev_seed: u64,
}

impl ProxySettings {
    /// Every backend of every pool, pool 0 first.
    pub fn all_backends(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.backends.iter().chain(self.extra_pools.iter().flat_map(|p| p.backends.iter())).copied()
    }
}

/// `A-B` or `A`: two values of a range.
fn range<T: FromStr>(s: &str) -> Option<(T, T)> {
    match s.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: T = s.trim().parse().ok()?;
            Some((a, s.trim().parse().ok()?))
        }
    }
}

impl Settings {
    fn proxy_settings(&self, tcp: &TcpConfig, cap: &Capacity, queues: u32) -> Result<ProxySettings, String> {
        let args = self.backend.clone().unwrap_or_default();
        if args.is_empty() {
            return Err("--app proxy needs at least one backend: --backend ADDR:PORT[,ADDR:PORT...]".into());
        }
        let backends: Vec<SocketAddr> = args.iter().map(|b| b.addr).collect();
        let weights: Vec<u32> = args.iter().map(|b| b.weight).collect();
        if weights.iter().all(|&w| w == 0) {
            return Err("--backend: every backend has weight 0, so no client could be served".into());
        }
        let balance = self.balance.unwrap_or(BalanceArg::Rr).algorithm();
        let maglev = match balance {
            crate::app::proxy::balance::Algorithm::Maglev { .. } => {
                let b: Vec<_> = args.iter().map(|b| (b.addr, b.weight)).collect();
                let t = crate::app::proxy::maglev::Table::build(
                    &b,
                    crate::app::proxy::maglev::DEFAULT_SIZE,
                    self.maglev_seed.unwrap_or(0),
                )
                .map_err(|e| format!("--balance maglev: {e}"))?;
                Some(std::sync::Arc::new(t))
            }
            _ => None,
        };
        if let Some(b) = backends.iter().find(|b| !b.is_ipv4() || b.port() == 0) {
            return Err(format!("--backend {b}: an IPv4 address and a port other than 0"));
        }
        let s = self.source_addrs.as_deref().ok_or(
            "--app proxy needs --source-addrs A-B: the IPv4 addresses floodgate owns for its backend connections",
        )?;
        let (first, last): (Ipv4Addr, Ipv4Addr) =
            range(s).ok_or_else(|| format!("--source-addrs {s:?}: expected an IPv4 range A-B"))?;
        let p = self.source_ports.as_deref().unwrap_or("1024-65535");
        let (lo, hi): (u16, u16) = range(p).ok_or_else(|| format!("--source-ports {p:?}: expected LO-HI"))?;
        crate::app::proxy::source::Sources::new(first, last, lo, hi)?;
        let shard_ports: Vec<_> = (0..queues)
            .map(|i| crate::app::proxy::source::shard_ports(lo, hi, i, queues))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("--source-ports {lo}-{hi}: fewer ports than the {queues} shards"))?;
        let addrs = u32::from(last) - u32::from(first) + 1;
        let smallest = shard_ports.iter().map(|(a, b)| (b - a) as u64 + 1).min().unwrap_or(0);
        let tuples = addrs as u64 * smallest * backends.len() as u64;
        // A pair takes two slots of the table, so a shard holds at most
        // connections / 2 backend connections; each needs its own tuple.
        let needed = cap.connections as u64 / 2;
        if tuples < needed {
            return Err(format!(
                "--source-addrs {first}-{last} x --source-ports {lo}-{hi} give each shard {tuples} source tuples \
                 over {} backend(s), fewer than the {needed} backend connections --connections {} allows \
                 (a pair takes two): add addresses or ports, or lower --connections",
                backends.len(),
                cap.connections
            ));
        }
        let rate_per_backend = (addrs as u64 * smallest) as f64 / tcp.time_wait().as_secs_f64();
        let connect_timeout = self.backend_connect_timeout.map_or(crate::app::proxy::CONNECT_TIMEOUT, |s| s.0);
        if connect_timeout.is_zero() {
            return Err("--backend-connect-timeout must be more than 0".into());
        }
        let d = crate::app::proxy::EJECT;
        let eject = match self.eject_after.unwrap_or(d.after) {
            0 => None,
            after => {
                let time = self.eject_time.map_or(d.time, |s| s.0);
                if time.is_zero() {
                    return Err("--eject-time must be more than 0 (--eject-after 0 turns ejection off)".into());
                }
                let max_percent = self.eject_max_percent.unwrap_or(d.max_percent);
                if !(1..=100).contains(&max_percent) {
                    return Err(format!("--eject-max-percent {max_percent}: a share of the pool, 1-100"));
                }
                Some(crate::app::proxy::Eject { after, time, max_percent })
            }
        };
        let kind = self.health_check.unwrap_or(HealthCheckArg::Tcp);
        if kind != HealthCheckArg::Http && (self.check_path.is_some() || self.check_status.is_some()) {
            return Err("--check-path and --check-status go with --health-check http".into());
        }
        let probe = match kind {
            HealthCheckArg::Http => {
                let path = self.check_path.clone().unwrap_or_else(|| "/".into());
                if !path.starts_with('/') || path.len() > 1024 || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return Err(format!("--check-path {path:?}: a path from '/' without spaces or control bytes"));
                }
                if self.check_status.is_some_and(|c| !(100..=599).contains(&c)) {
                    return Err("--check-status must be an HTTP status, 100-599".into());
                }
                crate::app::proxy::check::Probe::Http { path: path.into(), expect: self.check_status }
            }
            _ => crate::app::proxy::check::Probe::Connect,
        };
        let check = match kind {
            HealthCheckArg::Off => None,
            HealthCheckArg::Tcp | HealthCheckArg::Http => {
                let d = crate::app::proxy::check::CHECK;
                let c = crate::app::proxy::check::Check {
                    interval: self.check_interval.map_or(d.interval, |s| s.0),
                    timeout: self.check_timeout.map_or(d.timeout, |s| s.0),
                    rise: self.check_rise.unwrap_or(d.rise),
                    fall: self.check_fall.unwrap_or(d.fall),
                };
                if c.interval.is_zero() || c.timeout.is_zero() || c.timeout > c.interval {
                    return Err(format!(
                        "--check-timeout ({:?}) must be more than 0 and at most --check-interval ({:?})",
                        c.timeout, c.interval
                    ));
                }
                if !(1..=100).contains(&c.rise) || !(1..=100).contains(&c.fall) {
                    return Err("--check-rise and --check-fall must be 1-100".into());
                }
                Some(c)
            }
        };
        let (extra_pools, listener_pools) = self.extra_pools()?;
        Ok(ProxySettings {
            extra_pools,
            listener_pools,
            check,
            probe,
            backends,
            weights,
            balance,
            maglev,
            maglev_seed: self.maglev_seed.unwrap_or(0),
            eject,
            source_first: first,
            source_last: last,
            shard_ports,
            connect_timeout,
            idle_timeout: timeout(self.proxy_idle_timeout, crate::app::proxy::IDLE_TIMEOUT),
            proxy_protocol: self.proxy_protocol == Some(ProxyProtocolArg::V2),
            rate_per_backend,
            backend_iface: self.backend_iface.clone(),
        })
    }
}

impl Settings {
    /// The `[[pool]]`s, checked as `--backend` is, and each listener's pool.
    fn extra_pools(&self) -> Result<(Vec<ExtraPool>, Vec<u16>), String> {
        let ports = self.port.clone().unwrap_or_default();
        let mut pools: Vec<ExtraPool> = Vec::new();
        for (k, p) in self.pool.iter().flatten().enumerate() {
            let what = format!("[[pool]] {} (port {})", k + 1, p.port);
            if !ports.contains(&p.port) {
                return Err(format!("{what}: port {} is not served (port = {ports:?})", p.port));
            }
            if pools.iter().any(|q| q.port == p.port) {
                return Err(format!("{what}: a second pool for the same port"));
            }
            if p.backend.is_empty() || p.backend.iter().all(|b| b.weight == 0) {
                return Err(format!("{what}: needs a backend with a weight above 0"));
            }
            if let Some(b) = p.backend.iter().find(|b| !b.addr.is_ipv4() || b.addr.port() == 0) {
                return Err(format!("{what}: backend {}: an IPv4 address and a port other than 0", b.addr));
            }
            let balance = p.balance.or(self.balance).unwrap_or(BalanceArg::Rr).algorithm();
            let maglev_seed = p.maglev_seed.or(self.maglev_seed).unwrap_or(0);
            let maglev = match balance {
                crate::app::proxy::balance::Algorithm::Maglev { .. } => {
                    let b: Vec<_> = p.backend.iter().map(|b| (b.addr, b.weight)).collect();
                    let t = crate::app::proxy::maglev::Table::build(
                        &b,
                        crate::app::proxy::maglev::DEFAULT_SIZE,
                        maglev_seed,
                    )
                    .map_err(|e| format!("{what}: {e}"))?;
                    Some(std::sync::Arc::new(t))
                }
                _ => None,
            };
            pools.push(ExtraPool {
                port: p.port,
                backends: p.backend.iter().map(|b| b.addr).collect(),
                weights: p.backend.iter().map(|b| b.weight).collect(),
                balance,
                maglev,
                maglev_seed,
            });
        }
        let vips = self.vip.as_ref().map_or(1, |v| v.len().max(1));
        let listener_pools = (0..vips)
            .flat_map(|_| ports.iter())
            .map(|port| pools.iter().position(|p| p.port == *port).map_or(0, |i| i as u16 + 1))
            .collect();
        Ok((pools, listener_pools))
    }
}

/// `--stall-timeout` when not given: long enough that a hiccup (a page-in, a
/// driver reset that brings the link back) does not cost a restart.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A timeout setting: the default when absent, off when 0.
fn timeout(v: Option<Secs>, default: Duration) -> Option<Duration> {
    Some(v.map_or(default, |s| s.0)).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        s: Settings,
    }

    fn cli(args: &[&str]) -> Settings {
        let mut v = vec!["floodgate"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().s
    }

    const BASE: &[&str] = &["--iface", "fg-s0", "--vip", "198.18.0.1", "--port", "80,8080", "--app", "http"];

    #[test]
    fn announce_table_and_wait() {
        assert_eq!(cli(BASE).resolve(|_| None).unwrap().announce, None, "off by default");
        let file = Settings::from_toml("announce-table = 4210\n").unwrap();
        let r = cli(BASE).over(file).resolve(|_| None).unwrap();
        assert_eq!(r.announce, Some(Announce { table: 4210, wait: DEFAULT_ANNOUNCE_WAIT }));
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--announce-table", "100", "--announce-wait", "500ms"]);
        let want = Some(Announce { table: 100, wait: Duration::from_millis(500) });
        assert_eq!(cli(&a).resolve(|_| None).unwrap().announce, want);
        for t in ["0", "253", "254", "255"] {
            let mut a = BASE.to_vec();
            a.extend_from_slice(&["--announce-table", t]);
            let e = cli(&a).resolve(|_| None).unwrap_err();
            assert!(e.contains("not a table of its own"), "{t}: {e}");
        }
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--announce-wait", "1s"]);
        assert!(cli(&a).resolve(|_| None).unwrap_err().contains("needs --announce-table"));
    }

    #[test]
    fn command_line_over_file_over_defaults() {
        let file = Settings::from_toml(
            r#"
            iface = "eth9"
            msl = "2s"
            connections = 1000
            keepalive-idle = 2
            keepalive-interval = 1.5
            syn-cookies = "always"
            time-wait-policy = "refuse-new"
            "#,
        )
        .unwrap();
        let mut args = BASE.to_vec();
        args.extend_from_slice(&["--connections", "2000", "--drain", "500ms"]);
        let r = cli(&args).over(file).resolve(|_| Some(2)).unwrap();
        assert_eq!(r.iface, "fg-s0", "the command line wins");
        assert_eq!(r.ports, vec![80, 8080]);
        assert_eq!(r.cap.connections, 2000);
        assert_eq!(r.tcp.msl, Duration::from_secs(2), "the file fills what the command line left");
        assert_eq!(r.tcp.keepalive.unwrap().interval, Duration::from_millis(1500));
        assert_eq!(r.tcp.keepalive.unwrap().probes, 10, "defaults fill the rest");
        assert_eq!(r.tcp.syn_cookies, CookieMode::Always);
        assert_eq!(r.xdp_syn_cookies, XdpCookiesArg::Flood);
        assert_eq!(r.cap.time_wait_policy, TwFullPolicy::RefuseNew);
        assert_eq!(r.drain, Duration::from_millis(500));
        assert_eq!(r.stall_timeout, Some(DEFAULT_STALL_TIMEOUT));
        assert_eq!(r.queues, 2, "every RX queue by default");
        assert_eq!((r.http_body.len(), r.http_body_bytes), (13, None));
        assert_eq!(r.http_header_timeout, Some(Duration::from_secs(20)));
        assert_eq!(r.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!((r.tcp.source_limit, r.cap.sources), (None, 0), "no per-source limit by default");
        assert_eq!((r.tcp.max_send_buffer, r.tcp.max_recv_buffer), (4 << 20, 4 << 20));
        assert_eq!(r.tcp.window_scale, 7);
    }

    #[test]
    fn a_generated_http_body_from_the_file_or_the_command_line() {
        let file = Settings::from_toml("http-body = \"x\"\nhttp-body-bytes = 104857600\n").unwrap();
        let r = cli(BASE).over(file).resolve(|_| Some(1)).unwrap();
        assert_eq!(r.http_body_bytes, Some(100 << 20));
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--http-body-bytes", "5"]);
        let file = Settings::from_toml("http-body-bytes = 104857600\n").unwrap();
        assert_eq!(cli(&a).over(file).resolve(|_| Some(1)).unwrap().http_body_bytes, Some(5), "the command line wins");
        let http = crate::app::http::Http::new(1, crate::cli::apps::http_config(&cli(&a).resolve(|_| None).unwrap()));
        assert!(http.response().ends_with(b"Content-Length: 5\r\n\r\n"));
    }

    #[test]
    fn buffer_maxima_and_the_window_scale_that_covers_them() {
        let file = Settings::from_toml("max-send-buffer = 65536\nmax-recv-buffer = 33554432\n").unwrap();
        let r = cli(BASE).over(file).resolve(|_| Some(1)).unwrap();
        assert_eq!((r.tcp.max_send_buffer, r.tcp.max_recv_buffer), (65536, 32 << 20));
        assert_eq!(r.tcp.window_scale, 10, "65535 << 10 reaches 32 MiB");
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--max-recv-buffer", "8192"]);
        assert!(cli(&a)
            .resolve(|_| None)
            .unwrap_err()
            .contains("--max-recv-buffer 8192 must be between --buffer-size"));
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--max-send-buffer", "2147483648"]);
        assert!(cli(&a).resolve(|_| None).unwrap_err().contains("--max-send-buffer"));
    }

    #[test]
    fn slow_peer_settings() {
        let file = Settings::from_toml(
            r#"
            http-header-timeout = "5s"
            http-keepalive-timeout = 0
            idle-timeout = "90s"
            max-conns-per-source = 100
            "#,
        )
        .unwrap();
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--source-table", "1000"]);
        let r = cli(&a).over(file).resolve(|_| Some(1)).unwrap();
        assert_eq!(r.http_header_timeout, Some(Duration::from_secs(5)));
        assert_eq!(r.http_keepalive_timeout, None, "0 turns it off");
        assert_eq!(r.idle_timeout, Some(Duration::from_secs(90)));
        assert_eq!((r.tcp.source_limit, r.cap.sources), (Some(100), 1000));
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--max-conns-per-source", "0"]);
        assert!(cli(&a).resolve(|_| None).unwrap_err().contains("--max-conns-per-source"));
    }

    #[test]
    fn clear_errors() {
        let err = |args: &[&str], queues: Option<u32>| cli(args).resolve(|_| queues).unwrap_err();
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--queues", "2"]);
        assert_eq!(err(&a, Some(1)), "--queues 2 but fg-s0 has 1 RX queue");
        assert!(err(&["--vip", "198.18.0.1"], None).contains("--iface is required"));
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--syn-cookies", "never", "--xdp-syn-cookies", "always"]);
        assert_eq!(err(&a, None), "--xdp-syn-cookies always needs SYN cookies: not with --syn-cookies never");
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--syn-cookies", "never"]);
        assert_eq!(cli(&a).resolve(|_| None).unwrap().xdp_syn_cookies, XdpCookiesArg::Off);
        assert!(err(&["--iface", "x", "--port", "1"], None).contains("--vip is required"));
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--keepalive-probes", "0"]);
        assert!(err(&a, None).contains("--keepalive-probes"));
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--rx-ring", "1000"]);
        assert!(err(&a, None).contains("power of two"));
        assert!(Settings::from_toml("no-such-key = 1").unwrap_err().contains("unknown field"));
        assert!("5 parsecs".parse::<Secs>().is_err());
        let mut a = BASE.to_vec();
        a.push("--no-keepalive");
        assert_eq!(cli(&a).resolve(|_| None).unwrap().tcp.keepalive, None);
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--stall-timeout", "500ms"]);
        assert!(err(&a, None).contains("--stall-timeout"));
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--stall-timeout", "0"]);
        assert_eq!(cli(&a).resolve(|_| None).unwrap().stall_timeout, None, "0: never exit");
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--stall-timeout", "3s"]);
        assert_eq!(cli(&a).resolve(|_| None).unwrap().stall_timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn half_open_budget_keeps_half_the_table_in_reserve() {
        // BASE: one VIP, two ports: two listeners per shard.
        let resolve = |extra: &[&str]| {
            let mut a = BASE.to_vec();
            a.extend_from_slice(extra);
            cli(&a).resolve(|_| None)
        };
        assert_eq!(resolve(&[]).unwrap().tcp.half_open_budget, 65536 / 8 / 2, "1/8 of the table, shared");
        assert_eq!(resolve(&["--connections", "1000"]).unwrap().tcp.half_open_budget, 62);
        assert_eq!(resolve(&["--connections", "1000", "--half-open-budget", "250"]).unwrap().tcp.half_open_budget, 250);
        let e = resolve(&["--connections", "1000", "--half-open-budget", "251"]).unwrap_err();
        assert!(e.contains("--half-open-budget 251 for 2 listener(s)") && e.contains("at most 500"), "{e}");
        assert!(resolve(&["--half-open-budget", "0"]).is_err());
    }

    #[test]
    fn congestion_and_nodelay_per_app() {
        let resolve = |extra: &[&str]| {
            let mut a = BASE[..6].to_vec();
            a.extend_from_slice(extra);
            if !a.contains(&"--app") {
                a.extend_from_slice(&["--app", "http"]);
            }
            cli(&a).resolve(|_| None).unwrap().tcp
        };
        let t = resolve(&[]);
        assert_eq!((t.congestion, t.nodelay), (Congestion::Cubic, true), "http: Nagle off");
        assert!(!resolve(&["--app", "echo"]).nodelay, "echo: Nagle on");
        assert!(!resolve(&["--nodelay", "false"]).nodelay);
        assert!(resolve(&["--app", "sink", "--nodelay"]).nodelay);
        assert_eq!(resolve(&["--congestion", "newreno"]).congestion, Congestion::NewReno);
        let file = Settings::from_toml("congestion = \"newreno\"\nnodelay = false").unwrap();
        let t = cli(BASE).over(file).resolve(|_| None).unwrap().tcp;
        assert_eq!((t.congestion, t.nodelay), (Congestion::NewReno, false));
    }

    #[test]
    fn ecn_mode_from_the_command_line_and_the_file() {
        let resolve = |extra: &[&str], file: &str| {
            let mut a = BASE.to_vec();
            a.extend_from_slice(extra);
            cli(&a).over(Settings::from_toml(file).unwrap()).resolve(|_| None).unwrap().tcp.ecn
        };
        assert_eq!(resolve(&[], ""), Ecn::Passive, "Linux's default");
        assert_eq!(resolve(&["--ecn", "on"], ""), Ecn::On);
        assert_eq!(resolve(&["--ecn", "off"], ""), Ecn::Off);
        assert_eq!(resolve(&[], "ecn = \"on\""), Ecn::On);
        assert_eq!(resolve(&["--ecn", "passive"], "ecn = \"off\""), Ecn::Passive, "the command line wins");
        assert!(Settings::from_toml("ecn = \"maybe\"").is_err());
    }

    /// `[[pool]]` in the file: the listeners of its port take its backends,
    /// the others the top-level ones; a pool for a port not served, a second
    /// pool for a port, or one with no weight is refused.
    #[test]
    fn pools_by_port_from_the_file() {
        let base = ["--iface", "fg-s0", "--vip", "198.18.0.1,198.18.0.2", "--port", "80,8080,8443"];
        let resolve = |file: &str| {
            let mut a = base.to_vec();
            a.extend_from_slice(&["--app", "proxy", "--source-addrs", "198.18.1.1-198.18.1.4"]);
            cli(&a).over(Settings::from_toml(file)?).resolve(|_| Some(1))
        };
        let top = "backend = [\"198.18.2.10:80\"]\n";
        let file = format!(
            "{top}[[pool]]\nport = 8443\nbackend = [\"198.18.2.12:80\", \"198.18.2.13:80@2\"]\nbalance = \"maglev\"\n"
        );
        let p = resolve(&file).unwrap().proxy.unwrap();
        assert_eq!(p.backends, ["198.18.2.10:80".parse::<SocketAddr>().unwrap()]);
        assert_eq!(p.extra_pools.len(), 1);
        let x = &p.extra_pools[0];
        assert_eq!((x.port, x.weights.as_slice(), x.maglev.is_some()), (8443, &[1, 2][..], true));
        assert_eq!(p.listener_pools, [0, 0, 1, 0, 0, 1], "VIP by VIP, port by port");
        assert_eq!(p.all_backends().count(), 3);
        let e = resolve(&format!("{top}[[pool]]\nport = 9000\nbackend = [\"198.18.2.12:80\"]\n")).unwrap_err();
        assert!(e.contains("not served"), "{e}");
        let twice = "[[pool]]\nport = 8080\nbackend = [\"198.18.2.12:80\"]\n";
        let e = resolve(&format!("{top}{twice}{twice}")).unwrap_err();
        assert!(e.contains("second pool"), "{e}");
        let e = resolve(&format!("{top}[[pool]]\nport = 8080\nbackend = [\"198.18.2.12:80@0\"]\n")).unwrap_err();
        assert!(e.contains("weight above 0"), "{e}");
        assert!(resolve(&format!("{top}[[pool]]\nport = 8080\nbackends = []\n")).is_err(), "unknown key");
    }

    #[test]
    fn proxy_settings_are_checked() {
        let proxy = |extra: &[&str], queues: u32| {
            let mut a = vec!["--iface", "fg-s0", "--vip", "198.18.0.1", "--port", "80", "--app", "proxy"];
            a.extend_from_slice(extra);
            cli(&a).resolve(|_| Some(queues))
        };
        let e = proxy(&["--source-addrs", "198.18.1.1-198.18.1.4"], 1).unwrap_err();
        assert!(e.contains("--app proxy needs at least one backend"), "{e}");
        let e = proxy(&["--backend", "198.18.2.10:8080"], 1).unwrap_err();
        assert!(e.contains("--source-addrs"), "{e}");
        let e = proxy(&["--backend", "[2001:db8::1]:80", "--source-addrs", "198.18.1.1"], 1).unwrap_err();
        assert!(e.contains("IPv4"), "{e}");
        // 1 address x 1000 ports over 2 backends: 2000 tuples, fewer than
        // the 32768 backend connections 65536 slots allow.
        let base = ["--backend", "198.18.2.10:8080,198.18.2.11:8080", "--source-addrs", "198.18.1.1"];
        let mut a = base.to_vec();
        a.extend_from_slice(&["--source-ports", "10000-10999"]);
        let e = proxy(&a, 1).unwrap_err();
        assert!(e.contains("2000 source tuples") && e.contains("32768"), "{e}");
        a.extend_from_slice(&["--connections", "2000"]);
        let r = proxy(&a, 2).unwrap().proxy.unwrap();
        assert_eq!(r.shard_ports, vec![(10000, 10499), (10500, 10999)], "disjoint slices per shard");
        assert!((r.rate_per_backend - 500.0 / 60.0).abs() < 1e-9, "500 tuples / 2MSL of 60 s");
        assert_eq!(
            (r.connect_timeout, r.idle_timeout, r.proxy_protocol),
            (Duration::from_secs(3), Some(Duration::from_secs(600)), false)
        );
        // And from a file, with every key.
        let file = Settings::from_toml(
            r#"
            app = "proxy"
            backend = ["198.18.2.10:8080", "198.18.2.11:8080"]
            source-addrs = "198.18.1.1-198.18.1.4"
            source-ports = "1024-65535"
            backend-connect-timeout = "1s"
            proxy-idle-timeout = 0
            proxy-protocol = "v2"
            "#,
        )
        .unwrap();
        let r =
            cli(&["--iface", "fg-s0", "--vip", "198.18.0.1", "--port", "80"]).over(file).resolve(|_| Some(1)).unwrap();
        let p = r.proxy.unwrap();
        assert_eq!(p.backends.len(), 2);
        assert_eq!((p.connect_timeout, p.idle_timeout, p.proxy_protocol), (Duration::from_secs(1), None, true));
        assert!(cli(BASE).resolve(|_| None).unwrap().proxy.is_none(), "only with --app proxy");
    }

    #[test]
    fn backend_iface_makes_a_two_armed_proxy() {
        let base = ["--iface", "fg-s0", "--vip", "198.18.0.1", "--port", "80", "--backend", "198.18.2.10:80"];
        let with = |extra: &[&str], queues: u32| {
            let mut a = base.to_vec();
            a.extend_from_slice(&["--source-addrs", "198.18.2.1", "--source-ports", "10000-29999"]);
            a.extend_from_slice(&["--connections", "2000"]);
            a.extend_from_slice(extra);
            cli(&a).resolve(|i| Some(if i == "fg-s1" { 2 } else { queues }))
        };
        let p = with(&["--app", "proxy", "--backend-iface", "fg-s1", "--queues", "2"], 2).unwrap().proxy.unwrap();
        assert_eq!(p.backend_iface.as_deref(), Some("fg-s1"));
        assert_eq!(with(&["--app", "proxy"], 2).unwrap().proxy.unwrap().backend_iface, None, "one-armed by default");
        let e = with(&["--app", "proxy", "--backend-iface", "fg-s1", "--queues", "4"], 4).unwrap_err();
        assert!(e.contains("fg-s1 has 2 RX queues for 4 shards"), "{e}");
        let e = with(&["--app", "proxy", "--backend-iface", "fg-s0"], 1).unwrap_err();
        assert!(e.contains("is --iface"), "{e}");
        let e = with(&["--app", "http", "--backend-iface", "fg-s1"], 1).unwrap_err();
        assert!(e.contains("only the proxy app"), "{e}");
        let file = Settings::from_toml("app = \"proxy\"\nbackend-iface = \"fg-s1\"\n").unwrap();
        assert_eq!(file.backend_iface.as_deref(), Some("fg-s1"), "the TOML key");
    }

    #[test]
    fn backend_weights_and_balancing() {
        use crate::app::proxy::balance::Algorithm;
        let proxy = |extra: &[&str]| {
            let mut a = vec!["--iface", "fg-s0", "--vip", "198.18.0.1", "--port", "80", "--app", "proxy"];
            a.extend_from_slice(&["--source-addrs", "198.18.1.1-198.18.1.4", "--connections", "2000"]);
            a.extend_from_slice(extra);
            cli(&a).resolve(|_| Some(1))
        };
        let p = proxy(&["--backend", "198.18.2.10:80@3,198.18.2.11:80,198.18.2.12:80@0"]).unwrap().proxy.unwrap();
        assert_eq!(
            (p.weights.as_slice(), p.balance, p.maglev.is_none()),
            (&[3, 1, 0][..], Algorithm::RoundRobin, true)
        );
        let p = proxy(&["--backend", "198.18.2.10:80,198.18.2.11:80", "--balance", "maglev", "--maglev-seed", "9"])
            .unwrap()
            .proxy
            .unwrap();
        assert_eq!(p.balance, Algorithm::Maglev { source_affinity: false });
        let t = p.maglev.expect("a table for maglev");
        assert_eq!(t.size(), crate::app::proxy::maglev::DEFAULT_SIZE);
        assert!(t.shares(2).iter().all(|&n| n == 32_768 || n == 32_769));
        let e = proxy(&["--backend", "198.18.2.10:80@0"]).unwrap_err();
        assert!(e.contains("weight 0"), "{e}");
        let mut c = vec!["floodgate"];
        c.extend_from_slice(&["--backend", "198.18.2.10:80@10001"]);
        let e = Cli::try_parse_from(c).err().expect("weight too big").to_string();
        assert!(e.contains("0-10000"), "{e}");
        let file = Settings::from_toml("backend = [\"198.18.2.10:80@2\"]\nbalance = \"least-conn\"\n").unwrap();
        assert_eq!(file.backend.unwrap()[0], BackendArg { addr: "198.18.2.10:80".parse().unwrap(), weight: 2 });
        assert_eq!(file.balance, Some(BalanceArg::LeastConn));
        let p = proxy(&["--backend", "198.18.2.10:80"]).unwrap().proxy.unwrap();
        assert_eq!(p.eject, Some(crate::app::proxy::EJECT));
        let p = proxy(&["--backend", "198.18.2.10:80", "--eject-after", "2", "--eject-time", "1s"]).unwrap();
        assert_eq!(p.proxy.unwrap().eject.map(|e| (e.after, e.time)), Some((2, Duration::from_secs(1))));
        assert_eq!(proxy(&["--backend", "198.18.2.10:80", "--eject-after", "0"]).unwrap().proxy.unwrap().eject, None);
        // Active checks: on by default, each setting checked.
        let be = ["--backend", "198.18.2.10:80"];
        let check = |extra: &[&str]| proxy(&[&be[..], extra].concat()).map(|r| r.proxy.unwrap().check);
        assert_eq!(check(&[]).unwrap(), Some(crate::app::proxy::check::CHECK));
        assert_eq!(check(&["--health-check", "off"]).unwrap(), None);
        let c =
            check(&["--check-interval", "2s", "--check-timeout", "500ms", "--check-fall", "5", "--check-rise", "1"]);
        let c = c.unwrap().unwrap();
        assert_eq!((c.interval, c.timeout, c.fall, c.rise), (Duration::from_secs(2), Duration::from_millis(500), 5, 1));
        assert!(check(&["--check-timeout", "2s"]).unwrap_err().contains("at most --check-interval"));
        assert!(check(&["--check-fall", "0"]).unwrap_err().contains("1-100"));
        let http =
            |extra: &[&str]| proxy(&[&be[..], &["--health-check", "http"], extra].concat()).map(|r| r.proxy.unwrap());
        let p = http(&["--check-path", "/healthz", "--check-status", "204"]).unwrap();
        assert_eq!(p.probe, crate::app::proxy::check::Probe::Http { path: "/healthz".into(), expect: Some(204) });
        assert_eq!(http(&[]).unwrap().probe, crate::app::proxy::check::Probe::Http { path: "/".into(), expect: None });
        assert!(http(&["--check-path", "/a b"]).unwrap_err().contains("--check-path"));
        assert!(http(&["--check-status", "99"]).unwrap_err().contains("100-599"));
        assert!(check(&["--check-path", "/"]).unwrap_err().contains("--health-check http"));
        let file = Settings::from_toml("health-check = \"off\"\ncheck-rise = 4\n").unwrap();
        assert_eq!((file.health_check, file.check_rise), (Some(HealthCheckArg::Off), Some(4)));
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../../deploy/floodgate.toml");
        let s = Settings::from_toml(text).expect("deploy/floodgate.toml parses");
        s.resolve(|_| Some(1)).expect("and resolves");
    }
}
