//! Tunables of the TCP engine, with the defaults of SPEC.md and the RFCs they
//! come from. Every limit here has a counter in [`super::stats::Stats`].

pub use crate::table::TwFullPolicy;
use crate::time::Duration;

/// When a listener answers SYNs with SYN cookies (RFC 4987 §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieMode {
    /// Keep half-open state until the listener's budget is spent, then cookies.
    Auto,
    /// Never keep half-open state.
    Always,
    /// Never send cookies: SYNs past the budget are dropped (counted).
    Never,
}

/// What an RST does to a TIME-WAIT entry (RFC 1337 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeWaitRst {
    /// RFC 1337's fix for TIME-WAIT assassination: ignore it.
    Ignore,
    /// Linux's default: the RST ends TIME-WAIT early.
    Close,
}

/// RFC 9293 §3.8.4 keepalive: idle time, probe interval, probe count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub probes: u8,
}

impl Default for Keepalive {
    /// The seeds' numbers (and Linux's): 2 h idle, a probe every 75 s, 10 probes.
    fn default() -> Self {
        Keepalive { idle: Duration::from_secs(7200), interval: Duration::from_secs(75), probes: 10 }
    }
}

/// Per-listener and per-connection protocol settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Link MTU; the advertised MSS is this less the IP and TCP headers.
    pub mtu: u16,
    /// Maximum segment lifetime; TIME-WAIT lasts 2 x MSL (RFC 9293 §3.4.2).
    pub msl: Duration,
    /// How long FIN-WAIT-2 waits for the peer's FIN after a full close.
    pub fin_wait2_timeout: Duration,
    /// `None` turns keepalive off.
    pub keepalive: Option<Keepalive>,
    pub syn_cookies: CookieMode,
    /// Half-open (SYN-RECEIVED) entries a listener may hold.
    pub half_open_budget: u32,
    /// SYN-ACK retransmissions before a half-open entry is given up.
    pub synack_retries: u8,
    /// Data retransmissions (RTO expiries in a row) before the connection is reset.
    pub max_retries: u8,
    /// FIN retransmissions after the application has closed (LAST-ACK, FIN-WAIT-1, CLOSING).
    pub fin_retries: u8,
    /// RFC 6298 §2: initial RTO, floor and ceiling.
    pub rto_initial: Duration,
    pub rto_min: Duration,
    pub rto_max: Duration,
    /// RFC 9293 §3.8.6.3: ACK delay bound.
    pub delayed_ack: Duration,
    /// Negotiate RFC 7323 timestamps when the peer offers them.
    pub timestamps: bool,
    /// Negotiate SACK-permitted (RFC 2018) when the peer offers it.
    pub sack: bool,
    /// Our window-scale shift when the peer offers scaling (RFC 7323 §2).
    pub window_scale: u8,
    pub time_wait_rst: TimeWaitRst,
    /// RFC 5961 §7: challenge ACKs per second per shard.
    pub challenge_ack_limit: u32,
    /// RSTs sent per second per shard in answer to stray segments.
    pub rst_limit: u32,
    /// Connections one source address may hold in this shard's table
    /// (IPv6 counted per /64); past it SYNs are dropped and cookie ACKs
    /// reset, counted. `None`: no limit. Needs `Capacity::sources`.
    pub source_limit: Option<u32>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mtu: 1500,
            msl: Duration::from_secs(30),
            fin_wait2_timeout: Duration::from_secs(60),
            keepalive: Some(Keepalive::default()),
            syn_cookies: CookieMode::Auto,
            half_open_budget: 65536,
            synack_retries: 5,
            max_retries: 12,
            fin_retries: 8,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            delayed_ack: Duration::from_millis(40),
            timestamps: true,
            sack: true,
            window_scale: 7,
            time_wait_rst: TimeWaitRst::Ignore,
            challenge_ack_limit: 1000,
            rst_limit: 100_000,
            source_limit: None,
        }
    }
}

impl TcpConfig {
    /// 2 x MSL, the TIME-WAIT duration.
    pub fn time_wait(&self) -> Duration {
        self.msl * 2
    }
    /// The MSS we advertise for an address family (RFC 9293 §3.7.1, RFC 879).
    #[inline]
    pub fn advertised_mss(&self, ipv6: bool) -> u16 {
        let headers = if ipv6 { 60 } else { 40 };
        self.mtu.saturating_sub(headers).max(536)
    }
}

/// Capacities of one shard's preallocated structures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Connections (established plus half-open) in the connection table.
    pub connections: u32,
    /// IPv4 TIME-WAIT entries.
    pub time_wait: u32,
    /// IPv6 TIME-WAIT entries (a table of their own: IPv6 entries are larger).
    pub time_wait_v6: u32,
    /// Buffer chunks in the pool, and the bytes in each.
    pub buffers: u32,
    pub buffer_size: u32,
    /// Application events between two drains.
    pub events: u32,
    /// What a full TIME-WAIT table does (evict the oldest, or refuse new SYNs).
    pub time_wait_policy: TwFullPolicy,
    /// Distinct source addresses the per-source connection count tracks
    /// (`TcpConfig::source_limit`); 0 allocates no table.
    pub sources: u32,
}

impl Capacity {
    /// The window field of a cookie SYN-ACK: one receive buffer chunk.
    pub fn synack_window(&self) -> u16 {
        self.buffer_size.min(65535) as u16
    }
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            connections: 65536,
            time_wait: 65536,
            time_wait_v6: 65536,
            buffers: 8192,
            buffer_size: 16384,
            events: 8192,
            time_wait_policy: TwFullPolicy::EvictOldest,
            sources: 0,
        }
    }
}
