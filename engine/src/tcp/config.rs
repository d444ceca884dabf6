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

/// The congestion-control algorithm of a listener's connections (`cc/`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Congestion {
    /// CUBIC (RFC 9438) with HyStart++ (RFC 9406), as Linux by default.
    #[default]
    Cubic,
    /// NewReno (RFC 5681, RFC 6582).
    NewReno,
}

/// Explicit Congestion Notification (RFC 3168 §6.1), as Linux's
/// `net.ipv4.tcp_ecn`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ecn {
    /// Never: SYNs asking for ECN are answered without it (Linux's 0).
    Off,
    /// Accepted when the peer's SYN asks for it; not asked for in our
    /// own SYNs (Linux's 2, its default).
    #[default]
    Passive,
    /// Asked for in our SYNs (active opens: the proxy's backend side)
    /// and accepted (Linux's 1).
    On,
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
    /// Half-open (SYN-RECEIVED) entries a listener may hold;
    /// [`HALF_OPEN_AUTO`] shares 1/8 of the table among the listeners. The
    /// budgets of all listeners together may take at most half of the table
    /// ([`half_open_budgets`]): the rest is the reserve a cookie ACK needs
    /// when a flood has spent every budget.
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
    /// Our window-scale shift when the peer offers scaling (RFC 7323 §2);
    /// 0 turns scaling off. What is offered is at least what
    /// `max_recv_buffer` needs ([`TcpConfig::offered_window_scale`]).
    pub window_scale: u8,
    /// The most a connection's send buffer grows to, in bytes (chunk by
    /// chunk from the shard's pool, as the application writes).
    pub max_send_buffer: u32,
    /// The most a connection's receive buffer, and so its advertised
    /// window, grows to (autotuned: `tcp/window.rs`).
    pub max_recv_buffer: u32,
    pub time_wait_rst: TimeWaitRst,
    /// RFC 5961 §7: challenge ACKs per second per shard, on average: each
    /// second's budget is drawn at random from [limit/2, limit/2 + limit)
    /// (as Linux 4.7+ does, against CVE-2016-5696's counting side channel),
    /// and each connection sends at most one per [`OOW_ACK_INTERVAL`].
    pub challenge_ack_limit: u32,
    /// RSTs sent per second per shard in answer to stray segments.
    pub rst_limit: u32,
    /// Connections one source address may hold in this shard's table
    /// (IPv6 counted per /64); past it SYNs are dropped and cookie ACKs
    /// reset, counted. `None`: no limit. Needs `Capacity::sources`.
    pub source_limit: Option<u32>,
    /// Congestion control of the connections (per listener).
    pub congestion: Congestion,
    /// Turn Nagle's algorithm off (RFC 9293 §3.7.4): a small segment
    /// leaves even while an earlier small one is unacknowledged. Sender
    /// silly-window avoidance stays on either way.
    pub nodelay: bool,
    /// ECN negotiation (`ecn.rs`).
    pub ecn: Ecn,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mtu: 1500,
            msl: Duration::from_secs(30),
            fin_wait2_timeout: Duration::from_secs(60),
            keepalive: Some(Keepalive::default()),
            syn_cookies: CookieMode::Auto,
            half_open_budget: HALF_OPEN_AUTO,
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
            max_send_buffer: DEFAULT_MAX_BUFFER,
            max_recv_buffer: DEFAULT_MAX_BUFFER,
            time_wait_rst: TimeWaitRst::Ignore,
            challenge_ack_limit: 1000,
            rst_limit: 100_000,
            source_limit: None,
            congestion: Congestion::Cubic,
            nodelay: false,
            ecn: Ecn::Passive,
        }
    }
}

impl TcpConfig {
    /// 2 x MSL, the TIME-WAIT duration.
    pub fn time_wait(&self) -> Duration {
        self.msl * 2
    }
    /// The window-scale shift we offer (RFC 7323 §2.3): the configured
    /// one, raised so that a window field of 65535 covers
    /// `max_recv_buffer`; 0 when scaling is off.
    pub fn offered_window_scale(&self) -> u8 {
        if self.window_scale == 0 {
            return 0;
        }
        self.window_scale.max(window_scale_for(self.max_recv_buffer))
    }
    /// The MSS we advertise for an address family (RFC 9293 §3.7.1, RFC 879).
    #[inline]
    pub fn advertised_mss(&self, ipv6: bool) -> u16 {
        let headers = if ipv6 { 60 } else { 40 };
        self.mtu.saturating_sub(headers).max(536)
    }
}

/// `max_send_buffer` and `max_recv_buffer` by default: 4 MiB, a 100 ms
/// path at 335 Mbit/s.
pub const DEFAULT_MAX_BUFFER: u32 = 4 << 20;

/// The smallest window-scale shift whose largest window (65535 << shift)
/// reaches `bytes`, at most 14 (RFC 7323 §2.3).
pub fn window_scale_for(bytes: u32) -> u8 {
    let mut s = 0;
    while s < 14 && (65535u64 << s) < bytes as u64 {
        s += 1;
    }
    s
}

/// `half_open_budget` value: 1/[`HALF_OPEN_AUTO_FRACTION`] of the
/// connection table, shared among the listeners.
pub const HALF_OPEN_AUTO: u32 = 0;
/// The automatic half-open budget is this fraction of the table.
pub const HALF_OPEN_AUTO_FRACTION: u32 = 8;
/// All half-open budgets together may take at most 1/this of the table.
pub const HALF_OPEN_MAX_FRACTION: u32 = 2;

/// Linux's `tcp_invalid_ratelimit` (RFC 5961 §4-5 and the "ACK loop" of
/// RFC 9293 §3.10.7.4): a connection answers out-of-window and PAWS-failed
/// segments without data, and sends challenge ACKs, at most once per this.
pub const OOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// How long after a listener last sent a SYN cookie a cookie ACK is still
/// checked (Linux's `TCP_SYNCOOKIE_VALID`, 2 minutes: the cookie's own
/// lifetime). Outside it, an ACK to a listener gets an RST unchecked, so a
/// blind ACK cannot open a connection when no flood is on.
pub const COOKIE_VALID: Duration = Duration::from_secs(120);

/// The half-open budget of each of `listeners` listeners configured with
/// `budgets` ([`HALF_OPEN_AUTO`] or a count), for a table of `connections`;
/// an error when together they would leave less than half of the table as
/// the reserve for connections that complete.
pub fn half_open_budgets(
    budgets: impl Iterator<Item = u32> + Clone,
    connections: u32,
) -> Result<impl Iterator<Item = u32>, HalfOpenBudgetError> {
    let listeners = budgets.clone().count().max(1) as u32;
    let auto = (connections / HALF_OPEN_AUTO_FRACTION / listeners).max(1);
    let each = move |b: u32| if b == HALF_OPEN_AUTO { auto } else { b };
    let total: u64 = budgets.clone().map(|b| each(b) as u64).sum();
    let max = (connections / HALF_OPEN_MAX_FRACTION).max(1);
    if total > max as u64 {
        return Err(HalfOpenBudgetError { total, max, connections });
    }
    Ok(budgets.map(each))
}

/// Half-open budgets that would leave too little of the table in reserve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HalfOpenBudgetError {
    /// The budgets together.
    pub total: u64,
    /// The most they may be: half the table.
    pub max: u32,
    pub connections: u32,
}

impl core::fmt::Display for HalfOpenBudgetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "half-open budgets of {} in all leave too little reserve: at most {} (half of {} connections) \
             so that a completing handshake finds room when a SYN flood has spent them",
            self.total, self.max, self.connections
        )
    }
}
impl std::error::Error for HalfOpenBudgetError {}

/// Capacities of one shard's preallocated structures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Connections (established plus half-open) in the connection table.
    pub connections: u32,
    /// IPv4 TIME-WAIT entries.
    pub time_wait: u32,
    /// IPv6 TIME-WAIT entries (a table of their own: IPv6 entries are larger).
    pub time_wait_v6: u32,
    /// Buffer chunks in the pool, and the bytes in each: a connection's
    /// buffers grow and shrink by chunks.
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
    /// The window field of a cookie SYN-ACK: one receive buffer chunk, the
    /// window every connection starts with.
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
