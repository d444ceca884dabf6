//! One shard's TCP endpoint: demultiplexes received segments to listeners
//! (RFC 9293 §3.10.7.2), connections (§3.10.7.3-4), the TIME-WAIT table
//! (§3.10.7.4 TIME-WAIT, RFC 6191, RFC 1337) and the CLOSED rules
//! (§3.10.7.1); answers SYNs statefully or with cookies (RFC 4987); runs the
//! timing wheel; and offers the application interface (accept, read, write,
//! close) through a bounded event queue.
//!
//! Sans-IO: every entry point takes `now` and a [`TxSink`]. After a batch of
//! frames the caller drains events into the application, then calls
//! [`Endpoint::flush`], so a response the application writes leaves in the
//! same segment as the ACK of the request.

use super::buffer::BufferPool;
use super::config::{
    half_open_budgets, Capacity, CookieMode, Ecn, HalfOpenBudgetError, TcpConfig, TimeWaitRst, COOKIE_VALID,
    OOW_ACK_INTERVAL,
};
use super::deadline::Deadline;
use super::ecn;
use super::emit::{self, L2};
use super::events::{CloseReason, Event, EventQueue};
use super::input::{ev, Drop};
use super::ratelimit::{oow_rate_limited, RateLimit};
use super::recovery::RtoContext;
use super::secret::{self, CookieOptions, Secrets};
use super::seg::Seg;
use super::state::State;
use super::stats::Stats;
use super::tcb::{ctl, flag, Outgoing, SynOptions, Tcb, NEVER};
use super::timers::Expiry;
use super::window::Tune;
use crate::flow::{Addr, FourTuple, V4Tuple};
use crate::link::{Pass, RxAction, TxSink};
use crate::table::{ConnTable, Handle, HashKey, InsertError, SourceTable, TimeWaitTable, TwFullPolicy, TwState};
use crate::time::Instant;
use crate::timer::Wheel;
use crate::wire::{self, Control, SeqNumber};
use std::net::SocketAddr;

mod active;
mod invariants;
mod pmtu;
mod slow_peers;

pub use active::TupleUse;

/// Index of the configuration used by active opens.
const ACTIVE_CFG: u16 = 0;
/// TIME-WAIT entries used timestamps.
const TW_TS: u8 = 1;
/// Timers and TIME-WAIT expiries handled per `on_timers` call, so a burst
/// of expiries cannot stall the receive path.
const TIMER_BUDGET: usize = 4096;
/// Table entries (connections and TIME-WAIT) from which the shard looks at
/// each received burst ahead ([`Endpoint::prefetch`]). Below it the tables
/// stay in cache, the look finds nothing to start and costs ~14 ns a frame
/// (`burst` bench at 10 k connections); from 100 k entries it saves more than
/// it costs.
pub const LOOK_AHEAD_MIN: usize = 1 << 16;

/// D-SACK blocks one flush can carry (more are counted, `dsacks_not_sent`).
const DSACKS_PENDING: usize = 64;
/// RSTs answering unacceptable ACKs one flush can carry (`rsts_not_sent`).
const RSTS_PENDING: usize = 256;

/// A passive-open endpoint: a local address (or any) and port.
#[derive(Clone, Debug)]
pub struct Listener {
    pub addr: Option<Addr>,
    pub port: u16,
    /// SYN-RECEIVED entries held now.
    pub half_open: u32,
    /// SYN-RECEIVED entries it may hold ([`half_open_budgets`]).
    pub half_open_budget: u32,
    /// When it last sent a SYN cookie, or was told that the XDP program
    /// sends them (ms since the epoch): cookie ACKs are checked only within
    /// [`COOKIE_VALID`] of it.
    pub cookie_sent_ms: Option<u64>,
    /// What came through it (`floodgate_listener_*`).
    pub counts: ListenerCounts,
}

/// Per-listener figures: connections and payload bytes of the connections
/// accepted on one (address, port). Bytes count when they are in order
/// (received: RCV.NXT advanced) or acknowledged (sent: SND.UNA advanced),
/// SYN and FIN not included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerCounts {
    /// SYNs that reached the listener (answered statefully or by cookie).
    pub syns: u64,
    /// Connections established.
    pub accepted: u64,
    /// Connections established and not yet gone from the table.
    pub active: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

/// What became of an ACK to a listener.
enum CookieAck {
    Opened,
    /// No cookie sent lately: not checked.
    NotExpected,
    Invalid,
    TableFull,
}

/// Errors of the application interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The handle names no live connection.
    InvalidHandle,
    /// The connection's state does not allow the operation.
    InvalidState(State),
    /// Connection table full.
    TableFull,
    /// A connection with that 4-tuple exists.
    InUse,
    TooManyListeners,
    /// The half-open budgets would leave too little of the table in reserve.
    HalfOpenBudget(HalfOpenBudgetError),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::InvalidHandle => f.write_str("no such connection"),
            Error::InvalidState(s) => write!(f, "not allowed in state {s}"),
            Error::TableFull => f.write_str("connection table full"),
            Error::InUse => f.write_str("4-tuple in use"),
            Error::TooManyListeners => f.write_str("too many listeners"),
            Error::HalfOpenBudget(e) => e.fmt(f),
        }
    }
}
impl std::error::Error for Error {}

pub struct Endpoint {
    cfgs: Vec<TcpConfig>,
    listeners: Vec<Listener>,
    conns: ConnTable<Tcb>,
    tw4: TimeWaitTable<V4Tuple>,
    tw6: TimeWaitTable<FourTuple>,
    wheel: Wheel,
    pool: BufferPool,
    synack_window: u16,
    events: EventQueue,
    /// Connections with output or a state change to act on, each once (`flag::DIRTY`).
    dirty: Vec<Handle>,
    secrets: Secrets,
    mac: [u8; 6],
    /// The back link's MAC on a two-armed shard: active opens go out from
    /// it, and so do replies to frames that came to it.
    back_mac: Option<[u8; 6]>,
    challenge: RateLimit,
    rst: RateLimit,
    half_open: u32,
    tw_policy: TwFullPolicy,
    /// A received frame is being handled: stateless replies go into it.
    handling_frame: bool,
    /// Entries in the tables from which a received burst is looked at
    /// before it is handled ([`prefetch`](Self::prefetch)).
    look_ahead_min: usize,
    in_place: Option<(L2, FourTuple, Outgoing)>,
    /// The latest `now` an entry point was given, for application calls.
    now: Instant,
    /// Connections refused send space because the pool was empty; each
    /// gets `Writable` when chunks come back (`flag::WANTS_BUFFER`).
    buffer_waiters: Vec<Handle>,
    /// D-SACK blocks (RFC 2883) to put first in the next ACK of their
    /// connection, for the current flush; bounded, preallocated.
    dsacks: Vec<(Handle, SeqNumber, SeqNumber)>,
    /// RSTs `<SEQ=SEG.ACK><CTL=RST>` answering an unacceptable ACK in
    /// SYN-SENT or SYN-RECEIVED (RFC 9293 §3.10.7.3, §3.10.7.4), sent with
    /// their connection's next output (where its L2 addresses are at hand);
    /// bounded, preallocated. Not in the control block: rare, and every byte
    /// there is a megabyte per million connections.
    rsts: Vec<(Handle, SeqNumber)>,
    /// False once [`Endpoint::stop_listening`] ran (drain): listeners are closed.
    listening: bool,
    /// Connections per source address, when a listener limits them.
    sources: Option<SourceTable>,
    pub stats: Stats,
    /// Frames dropped by the wire parser, by reason (`wire::Error::ALL` order).
    pub wire_errors: [u64; wire::Error::ALL.len()],
    /// Frames that were not TCP (ARP, other protocols): passed over.
    pub not_tcp: u64,
}

impl Endpoint {
    pub fn new(cfg: TcpConfig, cap: Capacity, mac: [u8; 6], secrets: Secrets, now: Instant) -> Endpoint {
        let tw_ms = cfg.time_wait().as_millis() as u32;
        Endpoint {
            cfgs: vec![cfg],
            listeners: Vec::new(),
            conns: ConnTable::with_capacity(cap.connections),
            tw4: TimeWaitTable::new(cap.time_wait, tw_ms, cap.time_wait_policy),
            tw6: TimeWaitTable::new(cap.time_wait_v6, tw_ms, cap.time_wait_policy),
            wheel: Wheel::new(cap.connections, now.total_millis()),
            pool: BufferPool::new(cap.buffers, cap.buffer_size),
            synack_window: cap.synack_window(),
            events: EventQueue::new(cap.events as usize),
            dirty: Vec::with_capacity(cap.connections as usize),
            mac,
            back_mac: None,
            challenge: RateLimit::randomized(cfg.challenge_ack_limit, secrets.seed(1)),
            rst: RateLimit::new(cfg.rst_limit),
            secrets,
            half_open: 0,
            tw_policy: cap.time_wait_policy,
            handling_frame: false,
            look_ahead_min: LOOK_AHEAD_MIN,
            in_place: None,
            now,
            buffer_waiters: Vec::with_capacity(cap.connections as usize),
            dsacks: Vec::with_capacity(DSACKS_PENDING),
            rsts: Vec::with_capacity(RSTS_PENDING),
            listening: true,
            sources: (cap.sources > 0).then(|| SourceTable::new(cap.sources, HashKey::random())),
            stats: Stats::default(),
            wire_errors: [0; wire::Error::ALL.len()],
            not_tcp: 0,
        }
    }

    /// Starts listening on `port` at `addr` (any local address when `None`),
    /// with its own protocol settings. Refused when the listeners' half-open
    /// budgets together would take more than half of the connection table
    /// (automatic budgets are shared anew among the listeners).
    pub fn listen(&mut self, addr: Option<std::net::IpAddr>, port: u16, cfg: TcpConfig) -> Result<u16, Error> {
        if self.listeners.len() >= u16::MAX as usize - 1 {
            return Err(Error::TooManyListeners);
        }
        let table = self.conns.capacity() as u32;
        let configured = self.cfgs[1..].iter().chain([&cfg]).map(|c| c.half_open_budget);
        if let Err(e) = half_open_budgets(configured, table) {
            return Err(Error::HalfOpenBudget(e));
        }
        self.cfgs.push(cfg);
        self.listeners.push(Listener {
            addr: addr.map(Addr::from),
            port,
            half_open: 0,
            half_open_budget: 0,
            cookie_sent_ms: None,
            counts: ListenerCounts::default(),
        });
        let budgets = half_open_budgets(self.cfgs[1..].iter().map(|c| c.half_open_budget), table);
        for (l, b) in self.listeners.iter_mut().zip(budgets.expect("checked above")) {
            l.half_open_budget = b;
        }
        Ok(self.listeners.len() as u16)
    }

    /// The XDP program answers SYNs with this shard's cookies (the control
    /// thread says so when it turns that on, and every second while it is
    /// on): from `now`, cookie ACKs to every listener are checked for
    /// [`COOKIE_VALID`], as if the shard had sent the cookies itself.
    pub fn note_cookies_in_flight(&mut self, now: Instant) {
        for l in &mut self.listeners {
            l.cookie_sent_ms = Some(now.total_millis());
        }
    }

    /// Closes every listener (the drain at shutdown): from now on a SYN, or
    /// the cookie ACK of a handshake the listener never recorded, is
    /// answered as on a closed port (RST, counted in `drop_no_listener`),
    /// so clients fail fast instead of retrying. Connections already in the
    /// table, half-open ones included, go on to their normal end.
    pub fn stop_listening(&mut self) {
        self.listening = false;
    }

    /// False after [`stop_listening`](Self::stop_listening).
    pub fn is_listening(&self) -> bool {
        self.listening
    }

    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }
    pub fn config(&self) -> &TcpConfig {
        &self.cfgs[0]
    }

    // ---- gauges -------------------------------------------------------

    /// Connections in the table (every state but TIME-WAIT).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }
    pub fn half_open(&self) -> u32 {
        self.half_open
    }
    pub fn time_wait(&self) -> usize {
        self.tw4.len() + self.tw6.len()
    }

    /// A two-armed shard: the backends sit behind a second link whose MAC
    /// is `mac`. Active opens (the proxy's backend side, health checks)
    /// then go out from it, and a reply to a frame addressed to it does
    /// too; the link routes each frame by its source MAC
    /// (`link::xdp::arms`).
    pub fn set_back_mac(&mut self, mac: [u8; 6]) {
        self.back_mac = Some(mac);
    }

    pub fn connection_capacity(&self) -> usize {
        self.conns.capacity()
    }
    pub fn time_wait_capacity(&self) -> usize {
        self.tw4.capacity() + self.tw6.capacity()
    }
    /// The window field of a cookie SYN-ACK ([`Capacity::synack_window`]).
    pub fn synack_window(&self) -> u16 {
        self.synack_window
    }
    pub fn buffers_free(&self) -> usize {
        self.pool.available()
    }
    /// The shard's buffer pool, for inspection and tests.
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }
    /// Bytes reserved at start-up for the connection table, the TIME-WAIT
    /// tables and the buffer pool (the bulk of a shard's footprint).
    pub fn memory_bytes(&self) -> usize {
        self.conns.memory_bytes() + self.tw4.memory_bytes() + self.tw6.memory_bytes() + self.pool.memory_bytes()
    }
    pub fn armed_timers(&self) -> usize {
        self.wheel.len()
    }
    pub fn timer_armed(&self, h: Handle) -> bool {
        self.wheel.is_armed(h.index())
    }
    /// Visits every connection in the table (diagnostics and tests; not the data path).
    pub fn for_each_connection(&self, mut f: impl FnMut(Handle, &FourTuple, &Tcb)) {
        for (h, t, tcb) in self.conns.iter() {
            f(h, t, tcb);
        }
    }

    // ---- receive path -------------------------------------------------

    /// Whether the tables are large enough that a received burst is worth
    /// looking at ahead ([`LOOK_AHEAD_MIN`]).
    #[inline]
    pub fn looks_ahead(&self) -> bool {
        self.conns.len() + self.tw4.len() + self.tw6.len() >= self.look_ahead_min
    }

    /// Sets the size from which bursts are looked at ahead (0: always;
    /// tests and benchmarks).
    pub fn set_look_ahead_min(&mut self, entries: usize) {
        self.look_ahead_min = entries;
    }

    /// A look at a received frame before the burst it came in is handled
    /// (`Link::poll_rx_looking`): changes nothing, starts loads. At millions
    /// of connections finding a connection is two dependent cache misses
    /// (the index bucket, then the slot with its control block); one frame
    /// after another they queue, ~2 memory latencies a frame. Shown the
    /// whole burst in [`Pass::First`] (buckets) and then [`Pass::Second`]
    /// (slots and timer nodes, found from the buckets loaded meanwhile),
    /// the misses of the burst overlap. A SYN also looks for its tuple in TIME-WAIT (RFC 9293
    /// §3.10.7.4 reuse, and the miss every new connection takes).
    #[inline]
    pub fn prefetch(&self, frame: &[u8], pass: Pass) {
        let Some((t, flags)) = wire::peek::peek_tuple(frame) else { return };
        let syn = flags & (Control::SYN.0 | Control::ACK.0) == Control::SYN.0;
        match pass {
            Pass::First => {
                self.conns.prefetch_bucket(&t);
                if syn {
                    match t.as_v4() {
                        Some(k) => self.tw4.prefetch_bucket(&k),
                        None => self.tw6.prefetch_bucket(&t),
                    }
                }
            }
            Pass::Second => match self.conns.prefetch_slot(&t) {
                // The connection's timer node: every segment re-files its deadline.
                Some(slot) => self.wheel.prefetch(slot),
                None if syn => match t.as_v4() {
                    Some(k) => self.tw4.prefetch_entry(&k),
                    None => self.tw6.prefetch_entry(&t),
                },
                None => {}
            },
        }
    }

    /// Handles one received frame. Replies go into `tx`; connection output
    /// waits for [`flush`](Self::flush).
    pub fn on_frame<T: TxSink>(&mut self, now: Instant, frame: &mut [u8], tx: &mut T) -> RxAction {
        self.now = now;
        let parsed = match wire::parse_tcp_frame(frame, true) {
            Ok(wire::Frame::Tcp(p)) => p,
            Ok(wire::Frame::TooBig(tb)) => {
                self.on_too_big(&tb);
                return RxAction::Release;
            }
            Ok(_) => {
                self.not_tcp += 1;
                return RxAction::Release;
            }
            Err(e) => {
                self.wire_errors[e as usize] += 1;
                return RxAction::Release;
            }
        };
        self.stats.segments_in += 1;
        let src = match self.back_mac {
            Some(back) if parsed.eth.dst_addr.0 == back => back,
            _ => self.mac,
        };
        let l2 = L2 { src, dst: parsed.eth.src_addr.0, vlan: parsed.eth.vlan };
        let tuple = FourTuple {
            local_addr: parsed.dst,
            remote_addr: parsed.src,
            local_port: parsed.tcp.dst_port,
            remote_port: parsed.tcp.src_port,
        };
        let seg = Seg { ecn: parsed.ecn, ..emit::seg_from_repr(&parsed.tcp) };
        self.handling_frame = true;
        self.on_segment(now, &l2, &tuple, &seg, tx);
        self.handling_frame = false;
        match self.in_place.take() {
            None => RxAction::Release,
            Some((l2, t, out)) => match emit::segment_frame(frame, &l2, &t, &out, &[]) {
                0 => {
                    // Too short to hold the reply (an unpadded frame): a TX frame then.
                    self.stats.segments_out -= 1;
                    self.transmit(&l2, &t, &out, &[], tx);
                    RxAction::Release
                }
                len => RxAction::Transmit(len),
            },
        }
    }

    /// Handles one segment (the frame already parsed).
    pub fn on_segment<T: TxSink>(&mut self, now: Instant, l2: &L2, tuple: &FourTuple, seg: &Seg, tx: &mut T) {
        if seg.syn() && (seg.fin() || seg.rst()) {
            self.stats.drop_bad_flags += 1;
            return;
        }
        if let Some(h) = self.conns.lookup(tuple) {
            // A half-open entry superseded by a cookie ACK is gone: the ACK
            // opens the connection at the listener below.
            if !self.conns.get(h).is_some_and(|t| t.has(flag::ZOMBIE)) && !self.superseded_by_cookie(now, h, tuple, seg)
            {
                return self.connection_segment(now, h, seg);
            }
        }
        if self.time_wait_segment(now, l2, tuple, seg, tx) {
            return;
        }
        match self.find_listener(tuple) {
            Some(li) => self.listener_segment(now, li, l2, tuple, seg, tx),
            None => {
                self.stats.drop_no_listener += 1;
                self.closed_segment(now, l2, tuple, seg, tx);
            }
        }
    }

    fn find_listener(&self, t: &FourTuple) -> Option<u16> {
        if !self.listening {
            return None;
        }
        self.listeners
            .iter()
            .position(|l| l.port == t.local_port && l.addr.is_none_or(|a| a == t.local_addr))
            .map(|i| i as u16 + 1)
    }

    /// RFC 9293 §3.10.7.1: no connection. Never answer an RST.
    fn closed_segment<T: TxSink>(&mut self, now: Instant, l2: &L2, t: &FourTuple, seg: &Seg, tx: &mut T) {
        if seg.rst() {
            return;
        }
        if seg.has_ack() {
            self.send_rst(now, l2, t, seg.ack, None, tx);
        } else {
            self.send_rst(now, l2, t, SeqNumber(0), Some(seg.seq + seg.len()), tx);
        }
    }

    fn send_rst<T: TxSink>(
        &mut self,
        now: Instant,
        l2: &L2,
        t: &FourTuple,
        seq: SeqNumber,
        ack: Option<SeqNumber>,
        tx: &mut T,
    ) {
        if !self.rst.allow(now) {
            self.stats.rsts_suppressed += 1;
            return;
        }
        let out = Outgoing {
            control: ctl::RST | if ack.is_some() { ctl::ACK } else { 0 },
            seq,
            ack: ack.unwrap_or(SeqNumber(0)),
            window: 0,
            timestamp: None,
            syn_options: None,
            sack: [None; crate::wire::MAX_SACK_BLOCKS],
            payload_offset: 0,
            payload_len: 0,
            ect: false,
        };
        if self.transmit(l2, t, &out, &[], tx) {
            self.stats.rsts_sent += 1;
        }
    }

    /// Sends a stateless reply (RST, cookie SYN-ACK, TIME-WAIT ACK). While a
    /// received frame is being handled the reply is kept to be written back
    /// into that frame, the SYN fast path: no TX frame taken, no copy.
    fn transmit<T: TxSink>(&mut self, l2: &L2, t: &FourTuple, out: &Outgoing, payload: &[u8], tx: &mut T) -> bool {
        if self.in_place.is_none() && self.handling_frame && payload.is_empty() {
            self.in_place = Some((*l2, *t, *out));
            self.stats.segments_out += 1;
            return true;
        }
        let sent = tx.send_from(&l2.src, |buf| emit::segment_frame(buf, l2, t, out, payload));
        if sent {
            self.stats.segments_out += 1;
        } else {
            self.stats.drop_tx_full += 1;
        }
        sent
    }

    /// RFC 9293 §3.10.7.2: LISTEN.
    fn listener_segment<T: TxSink>(&mut self, now: Instant, li: u16, l2: &L2, t: &FourTuple, seg: &Seg, tx: &mut T) {
        if seg.rst() {
            return;
        }
        if seg.has_ack() {
            if !seg.syn() && self.source_refuses_cookie_ack(now, li, t, seg) {
                return self.send_rst(now, l2, t, seg.ack, None, tx);
            }
            if !seg.syn() {
                match self.cookie_ack(now, li, l2, t, seg) {
                    CookieAck::Opened => return,
                    CookieAck::NotExpected => self.stats.cookie_acks_not_expected += 1,
                    CookieAck::Invalid => self.stats.cookies_rejected += 1,
                    // The client learns at once rather than hanging: its
                    // handshake is complete on its side.
                    CookieAck::TableFull => self.stats.cookie_acks_table_full += 1,
                }
            }
            // A bare ACK (or SYN|ACK) to a listener: RST with seq = SEG.ACK.
            return self.send_rst(now, l2, t, seg.ack, None, tx);
        }
        if !seg.syn() {
            return;
        }
        self.stats.syns_received += 1;
        self.listeners[li as usize - 1].counts.syns += 1;
        if self.source_refuses_syn(li, t) {
            return;
        }
        let cfg = &self.cfgs[li as usize];
        let is_v6 = !t.local_addr.is_v4();
        if self.tw_refusing(t) {
            self.stats.syns_dropped_time_wait_full += 1;
            return;
        }
        let listener = &self.listeners[li as usize - 1];
        let budget_spent = listener.half_open >= listener.half_open_budget;
        let table_full = self.conns.len() >= self.conns.capacity();
        let use_cookie = match cfg.syn_cookies {
            CookieMode::Always => true,
            CookieMode::Auto => budget_spent || table_full,
            CookieMode::Never => {
                if budget_spent || table_full {
                    if table_full {
                        self.stats.syns_dropped_table_full += 1;
                    } else {
                        self.stats.syns_dropped_half_open_budget += 1;
                    }
                    return;
                }
                false
            }
        };
        if use_cookie {
            return self.send_cookie(now, li, l2, t, seg, is_v6, tx);
        }
        let (iss, ts_offset) = self.secrets.isn(t, now);
        let mut tcb = Tcb::new(cfg, iss, ts_offset, l2);
        if self.back_mac == Some(l2.src) {
            tcb.set(flag::BACK_ARM);
        }
        tcb.negotiate(cfg, seg, is_v6);
        tcb.ecn_accept(cfg, seg);
        tcb.state = State::SynReceived;
        tcb.listener = li;
        tcb.set(flag::PASSIVE | flag::HALF_OPEN);
        match self.conns.insert(*t, tcb) {
            Ok(h) => {
                self.source_count(h, t);
                self.listeners[li as usize - 1].half_open += 1;
                self.half_open += 1;
                self.stats.synacks_sent += 1;
                self.mark_dirty(h);
            }
            Err(InsertError::Full) => {
                self.stats.syns_dropped_table_full += 1;
                if cfg.syn_cookies != CookieMode::Never {
                    self.send_cookie(now, li, l2, t, seg, is_v6, tx);
                }
            }
            Err(InsertError::Exists(_)) => {}
        }
    }

    /// A stateless SYN-ACK whose ISN is a cookie (RFC 4987 §3.6).
    #[allow(clippy::too_many_arguments)]
    fn send_cookie<T: TxSink>(
        &mut self,
        now: Instant,
        li: u16,
        l2: &L2,
        t: &FourTuple,
        seg: &Seg,
        is_v6: bool,
        tx: &mut T,
    ) {
        let cfg = &self.cfgs[li as usize];
        let peer_ws = seg.window_scale.filter(|_| cfg.window_scale > 0);
        let opts = CookieOptions {
            mss: seg.mss.unwrap_or(secret::default_mss(is_v6)).min(cfg.advertised_mss(is_v6)),
            window_scale: peer_ws,
            sack_permitted: cfg.sack && seg.sack_permitted,
        };
        let cookie = self.secrets.make_cookie(t, seg.seq, &opts, now);
        // As Linux's tcp_synq_overflow: cookie ACKs are expected from now.
        self.listeners[li as usize - 1].cookie_sent_ms = Some(now.total_millis());
        // ECN's answer rides in our TSval, so it needs timestamps.
        let ecn_ok = cfg.timestamps && seg.timestamp.is_some() && ecn::syn_requests(cfg, seg);
        let timestamp = match (cfg.timestamps, seg.timestamp) {
            (true, Some((tsval, _))) => {
                let off = self.secrets.ts_offset(t);
                Some((ecn::cookie_tsval((now.total_millis() as u32).wrapping_add(off), ecn_ok), tsval))
            }
            _ => None,
        };
        let out = Outgoing {
            control: ctl::SYN | ctl::ACK | if ecn_ok { ctl::ECE } else { 0 },
            seq: cookie,
            ack: seg.seq + 1,
            window: self.synack_window(),
            timestamp,
            syn_options: Some(SynOptions {
                mss: cfg.advertised_mss(is_v6),
                window_scale: peer_ws.map(|_| cfg.offered_window_scale()),
                sack_permitted: opts.sack_permitted,
            }),
            sack: [None; crate::wire::MAX_SACK_BLOCKS],
            payload_offset: 0,
            payload_len: 0,
            ect: false,
        };
        if self.transmit(l2, t, &out, &[], tx) {
            self.stats.cookies_sent += 1;
            self.stats.synacks_sent += 1;
        }
    }

    /// The third segment of a cookie handshake: rebuild the connection from
    /// the cookie and let the segment's data and FIN through.
    fn cookie_ack(&mut self, now: Instant, li: u16, l2: &L2, t: &FourTuple, seg: &Seg) -> CookieAck {
        if !self.cookies_expected(now, li) {
            return CookieAck::NotExpected;
        }
        let iss = seg.ack - 1;
        let irs = seg.seq - 1;
        let Some(opts) = self.secrets.check_cookie(t, irs, iss, now) else { return CookieAck::Invalid };
        let cfg = self.cfgs[li as usize];
        let is_v6 = !t.local_addr.is_v4();
        let mut tcb = Tcb::new(&cfg, iss, self.secrets.ts_offset(t), l2);
        if self.back_mac == Some(l2.src) {
            tcb.set(flag::BACK_ARM);
        }
        let syn = Seg {
            control: ctl::SYN,
            seq: irs,
            window: seg.window,
            mss: Some(opts.mss),
            window_scale: opts.window_scale,
            sack_permitted: opts.sack_permitted,
            timestamp: seg.timestamp.filter(|_| cfg.timestamps),
            ..Seg::default()
        };
        tcb.negotiate(&cfg, &syn, is_v6);
        if let (true, Some((_, tsecr))) = (tcb.has(flag::TS), seg.timestamp) {
            if cfg.ecn != Ecn::Off && ecn::cookie_ecn_ok(tsecr) {
                tcb.set(flag::ECN);
            }
        }
        tcb.state = State::SynReceived;
        tcb.snd_nxt = iss + 1;
        tcb.snd_max = iss + 1;
        tcb.rcv_adv = tcb.rcv_nxt + self.synack_window() as usize;
        tcb.listener = li;
        tcb.set(flag::PASSIVE);
        match self.conns.insert(*t, tcb) {
            Ok(h) => {
                self.source_count(h, t);
                self.stats.cookies_accepted += 1;
                self.connection_segment(now, h, seg);
                CookieAck::Opened
            }
            // Full (a tuple held by a zombie is as good as full): the
            // half-open budgets leave a reserve, so only connections
            // that completed fill the table.
            Err(_) => CookieAck::TableFull,
        }
    }

    /// Linux's `tcp_synq_no_recent_overflow`, negated: the listener sent a
    /// cookie (or the XDP program did) within [`COOKIE_VALID`].
    fn cookies_expected(&self, now: Instant, li: u16) -> bool {
        self.listeners[li as usize - 1]
            .cookie_sent_ms
            .is_some_and(|at| now.total_millis().saturating_sub(at) <= COOKIE_VALID.as_millis() as u64)
    }

    /// A half-open entry whose SYN-ACK the client never got: its SYN came
    /// again while the XDP program answered SYNs with cookies (it cannot see
    /// the shards' half-open entries), and the client completed the cookie's
    /// handshake. Its ACK (not ISS+1 of the entry) would draw a RST from
    /// SYN-RECEIVED (RFC 9293 §3.10.7.4) and reset a legitimate client; a
    /// valid cookie is proof that the client owns its address and the
    /// handshake it completed is the newer one, so the entry gives way, as a
    /// TIME-WAIT entry does in `time_wait_segment`. True when it was removed.
    fn superseded_by_cookie(&mut self, now: Instant, h: Handle, t: &FourTuple, seg: &Seg) -> bool {
        let Some(tcb) = self.conns.get(h) else { return false };
        if tcb.state != State::SynReceived
            || !tcb.has(flag::HALF_OPEN)
            || !seg.has_ack()
            || seg.syn()
            || seg.rst()
            || (seg.ack > tcb.snd_una && seg.ack <= tcb.snd_max)
            || !self.valid_cookie_ack(now, t, seg)
        {
            return false;
        }
        if let Some(tcb) = self.conns.get_mut(h) {
            tcb.state = State::Closed;
        }
        self.reap(now, h);
        self.stats.half_open_replaced_by_cookie += 1;
        true
    }

    /// Whether `seg` returns a valid cookie for a listener that sent them lately.
    fn valid_cookie_ack(&self, now: Instant, t: &FourTuple, seg: &Seg) -> bool {
        self.find_listener(t)
            .is_some_and(|li| self.cfgs[li as usize].syn_cookies != CookieMode::Never && self.cookies_expected(now, li))
            && self.secrets.check_cookie(t, seg.seq - 1, seg.ack - 1, now).is_some()
    }

    fn tw_refusing(&self, t: &FourTuple) -> bool {
        self.tw_policy == TwFullPolicy::RefuseNew
            && if t.local_addr.is_v4() { self.tw4.is_full() } else { self.tw6.is_full() }
    }

    /// TIME-WAIT (RFC 9293 §3.10.7.4, RFC 6191, RFC 1337). Returns false when
    /// the tuple has no TIME-WAIT entry, or when a new SYN reopened it.
    fn time_wait_segment<T: TxSink>(&mut self, now: Instant, l2: &L2, t: &FourTuple, seg: &Seg, tx: &mut T) -> bool {
        let now_ms = now.total_millis();
        let v4 = t.as_v4();
        let found = match v4 {
            Some(k) => self.tw4.lookup(&k).map(|h| (h, *self.tw4.get(h).unwrap())),
            None => self.tw6.lookup(t).map(|h| (h, *self.tw6.get(h).unwrap())),
        };
        let Some((h, st)) = found else { return false };
        let remove = |ep: &mut Endpoint| match v4 {
            Some(_) => ep.tw4.remove(h),
            None => ep.tw6.remove(h),
        };
        if seg.rst() {
            match self.cfgs[0].time_wait_rst {
                TimeWaitRst::Ignore => self.stats.rsts_ignored += 1,
                TimeWaitRst::Close => {
                    remove(self);
                    self.stats.time_wait_reset += 1;
                }
            }
            return true;
        }
        let ts_used = st.flags & TW_TS != 0;
        if seg.syn() && !seg.has_ack() {
            let newer = match (ts_used, seg.timestamp) {
                (true, Some((tsval, _))) => (tsval.wrapping_sub(st.ts_recent) as i32) > 0,
                _ => seg.seq > st.rcv_nxt,
            };
            if newer {
                remove(self);
                self.stats.time_wait_reopened += 1;
                return false;
            }
        } else if seg.fin() && seg.seq + seg.len() == st.rcv_nxt {
            match v4 {
                Some(_) => {
                    self.tw4.restart(h, now_ms);
                }
                None => {
                    self.tw6.restart(h, now_ms);
                }
            }
            self.stats.time_wait_fin_reacked += 1;
        } else if seg.has_ack() && seg.seq == st.rcv_nxt && seg.payload.is_empty() && !seg.syn() {
            // An in-window duplicate ACK: nothing to say.
            return true;
        } else if seg.has_ack() && !seg.syn() && self.valid_cookie_ack(now, t, seg) {
            // The third segment of a handshake whose SYN the XDP program
            // answered with a cookie (bpf/syncookie.h): the new SYN never
            // reached us, so the cookie stands in for it as RFC 6191's
            // proof that this is a new connection.
            remove(self);
            self.stats.time_wait_reopened += 1;
            return false;
        }
        let timestamp = ts_used.then(|| ((now_ms as u32).wrapping_add(self.secrets.ts_offset(t)), st.ts_recent));
        let out = Outgoing {
            control: ctl::ACK,
            seq: st.snd_nxt,
            ack: st.rcv_nxt,
            window: st.rcv_wnd,
            timestamp,
            syn_options: None,
            sack: [None; crate::wire::MAX_SACK_BLOCKS],
            payload_offset: 0,
            payload_len: 0,
            ect: false,
        };
        self.transmit(l2, t, &out, &[], tx);
        true
    }

    fn connection_segment(&mut self, now: Instant, h: Handle, seg: &Seg) {
        let Some(tcb) = self.conns.get_mut(h) else { return };
        let cfg = &self.cfgs[tcb.listener as usize];
        let before = tcb.state;
        let (rcv_before, una_before, fin_acked_before) = (tcb.rcv_nxt, tcb.snd_una, tcb.has(flag::FIN_ACKED));
        let res = tcb.input(now, cfg, &mut self.pool, seg);
        if tcb.listener > 0 && tcb.state != State::SynReceived {
            // Payload only: the peer's FIN, our SYN (acknowledged by the
            // handshake's last segment) and our FIN take a sequence number each.
            let c = &mut self.listeners[tcb.listener as usize - 1].counts;
            let peer_fin = (res.events & ev::PEER_FIN != 0) as u64;
            let ours =
                (res.events & ev::ESTABLISHED != 0) as u64 + (!fin_acked_before && tcb.has(flag::FIN_ACKED)) as u64;
            c.bytes_received += (tcb.rcv_nxt.diff(rcv_before).max(0) as u64).saturating_sub(peer_fin);
            c.bytes_sent += (tcb.snd_una.diff(una_before).max(0) as u64).saturating_sub(ours);
        }
        if let Some(d) = res.drop {
            let s = &mut self.stats;
            match d {
                Drop::OutOfWindow => s.drop_out_of_window += 1,
                Drop::OldData => {
                    s.drop_out_of_window += 1;
                    s.drop_old_data += 1;
                }
                Drop::Paws => s.drop_paws += 1,
                Drop::AckUnsent => s.drop_ack_unsent += 1,
                Drop::NoAck => s.drop_no_ack += 1,
                Drop::OutOfOrder => s.drop_out_of_order += 1,
                Drop::Queued => s.out_of_order_queued += 1,
                Drop::NoBuffer => s.drop_no_buffer += 1,
                Drop::RstIgnored => s.rsts_ignored += 1,
                Drop::HalfOpenReset => s.rsts_received += 1,
            }
        }
        if res.oow_limited {
            self.stats.oow_acks_rate_limited += 1;
        }
        if res.ooo_discarded {
            self.stats.out_of_order_discarded_at_fin += 1;
        }
        if res.syn_resent {
            self.stats.syns_resent_after_reset += 1;
        }
        if let Some((s, e)) = res.dsack {
            if let Some(p) = self.dsacks.iter_mut().find(|p| p.0 == h) {
                *p = (h, s, e);
            } else if self.dsacks.len() < DSACKS_PENDING {
                self.dsacks.push((h, s, e));
            } else {
                self.stats.dsacks_not_sent += 1;
            }
        }
        if res.challenge {
            // Linux's tcp_send_challenge_ack: the connection's own interval
            // first, then the shard's randomised budget.
            let interval = OOW_ACK_INTERVAL.as_millis() as u32;
            if oow_rate_limited(&mut tcb.last_oow_ms, now.total_millis(), interval) {
                self.stats.challenge_acks_rate_limited += 1;
            } else if self.challenge.allow(now) {
                tcb.set(flag::ACK_NOW);
                self.stats.challenge_acks_sent += 1;
            } else {
                self.stats.challenge_acks_suppressed += 1;
            }
        }
        if let Some(seq) = res.rst {
            // Not in the connection's sequence space: sent at flush time
            // through the connection so the L2 addresses are at hand.
            if self.rsts.len() < RSTS_PENDING {
                self.rsts.push((h, seq));
            } else {
                self.stats.rsts_not_sent += 1;
            }
        }
        self.after_input(h, before, res.events);
    }

    /// Books a connection's state change: half-open accounting, events,
    /// and queueing it for output (and reaping, once it is CLOSED or in
    /// TIME-WAIT).
    fn after_input(&mut self, h: Handle, before: State, events: u8) {
        let Some(tcb) = self.conns.get_mut(h) else { return };
        if events & ev::RESET != 0 {
            self.stats.rsts_received += 1;
            self.stats.connections_reset_by_peer += 1;
            tcb.close_reason = if tcb.state == State::Closed && before == State::SynSent {
                CloseReason::Refused
            } else {
                CloseReason::Reset
            };
        }
        if events & ev::ABORTED != 0 {
            tcb.close_reason = CloseReason::Aborted;
        }
        if events & ev::ESTABLISHED != 0 {
            if tcb.has(flag::ECN) {
                self.stats.ecn_negotiated += 1;
            }
            if tcb.has(flag::PASSIVE) {
                self.stats.connections_accepted += 1;
                if tcb.listener > 0 {
                    let c = &mut self.listeners[tcb.listener as usize - 1].counts;
                    c.accepted += 1;
                    c.active += 1;
                    tcb.set(flag::LISTENER_ACTIVE);
                }
                self.push_event(Event::Accepted(h));
            } else {
                self.stats.connections_connected += 1;
                self.push_event(Event::Connected(h));
            }
            if let Some(t) = self.conns.get_mut(h) {
                t.set(flag::ANNOUNCED);
            }
        }
        if events & ev::READABLE != 0 {
            self.push_event(Event::Readable(h));
        }
        if events & ev::PEER_FIN != 0 {
            self.push_event(Event::PeerClosed(h));
        }
        if events & ev::WRITABLE != 0 {
            self.push_event(Event::Writable(h));
        }
        if events & ev::ABORTED != 0 {
            self.stats.connections_aborted += 1;
            if let Some(t) = self.conns.get_mut(h) {
                t.set(flag::RST_OWED);
            }
        }
        self.mark_dirty(h);
    }

    /// The connection left SYN-RECEIVED: give back its half-open budget.
    fn release_half_open(&mut self, li: u16, h: Handle) {
        if let Some(t) = self.conns.get_mut(h) {
            t.clear(flag::HALF_OPEN);
            self.listeners[li as usize - 1].half_open -= 1;
            self.half_open -= 1;
        }
    }

    fn push_event(&mut self, e: Event) {
        if !self.events.push(e) {
            self.stats.events_overflow += 1;
        }
    }

    fn mark_dirty(&mut self, h: Handle) {
        if let Some(t) = self.conns.get_mut(h) {
            if !t.has(flag::DIRTY) {
                t.set(flag::DIRTY);
                self.dirty.push(h);
            }
        }
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop()?;
        if let Event::Closed(h, _) = e {
            // The application hears of it now: the slot may be reused.
            if self.conns.get(h).is_some_and(|t| t.has(flag::ZOMBIE)) {
                self.conns.remove(h);
            }
        }
        Some(e)
    }

    // ---- output and reaping ------------------------------------------

    /// Sends what every dirty connection has to send, files its timers, and
    /// reaps the ones that are CLOSED or in TIME-WAIT.
    pub fn flush<T: TxSink>(&mut self, now: Instant, tx: &mut T) {
        self.now = now;
        let mut i = 0;
        while i < self.dirty.len() {
            let h = self.dirty[i];
            i += 1;
            if !self.output(now, h, tx) {
                // The TX ring is full: this connection and the ones after
                // it stay dirty (in order) for the next flush.
                i -= 1;
                break;
            }
        }
        let all = i == self.dirty.len();
        self.dirty.drain(..i);
        // A D-SACK not sent in this flush (its connection had nothing to
        // send, or went away) is not owed later.
        self.dsacks.clear();
        if all {
            // An RST left here belongs to a connection gone before its
            // output; one whose connection waits for ring space stays.
            self.rsts.clear();
        }
        self.wake_buffer_waiters();
        self.pool.senders.counts.drain_into(&mut self.stats);
    }

    /// Chunks came back to the pool: tell the connections that were refused.
    fn wake_buffer_waiters(&mut self) {
        while self.pool.available() > 0 {
            let Some(h) = self.buffer_waiters.pop() else { break };
            if let Some(t) = self.conns.get_mut(h) {
                t.clear(flag::WANTS_BUFFER);
                if !t.has(flag::ZOMBIE) {
                    self.push_event(Event::Writable(h));
                }
            }
        }
    }

    /// Sends what connection `h` has to send. False when the TX ring ran
    /// out: the connection keeps what it owes (`Tcb::unsend`) and stays
    /// dirty, so it goes out at the next flush.
    fn output<T: TxSink>(&mut self, now: Instant, h: Handle, tx: &mut T) -> bool {
        let Some(&tuple) = self.conns.key(h) else { return true };
        let Some(tcb) = self.conns.get_mut(h) else { return true };
        let was_dirty = tcb.has(flag::DIRTY);
        tcb.clear(flag::DIRTY);
        if tcb.state != State::SynReceived && tcb.has(flag::HALF_OPEN) {
            let li = tcb.listener;
            self.release_half_open(li, h);
        }
        let Some(tcb) = self.conns.get_mut(h) else { return true };
        let l2 = tcb.l2(if tcb.has(flag::BACK_ARM) { self.back_mac.unwrap_or(self.mac) } else { self.mac });
        if tcb.has(flag::RST_OWED) {
            tcb.clear(flag::RST_OWED);
            let (seq, ack) = (tcb.acceptable_seq(), tcb.rcv_nxt);
            self.send_rst(now, &l2, &tuple, seq, Some(ack), tx);
        }
        if let Some(i) = self.rsts.iter().position(|p| p.0 == h) {
            let (_, seq) = self.rsts.swap_remove(i);
            self.send_rst(now, &l2, &tuple, seq, None, tx);
        }
        let Some(tcb) = self.conns.get_mut(h) else { return true };
        let cfg = &self.cfgs[tcb.listener as usize];
        let mut dsack = match self.dsacks.iter().position(|p| p.0 == h) {
            Some(i) => Some(self.dsacks.swap_remove(i)),
            None => None,
        };
        loop {
            let snd_max_before = tcb.snd_max;
            let Some(mut out) = tcb.poll_output(now, cfg, &mut self.pool) else { break };
            tcb.ecn_mark(&mut out, snd_max_before);
            if let Some((_, s, e)) = dsack {
                // RFC 2883 §4: the duplicate first, then the usual blocks,
                // on the first segment with room for the longer option
                // (the payload was sized for the usual blocks only).
                let mut with = out.sack;
                with.copy_within(0..wire::MAX_SACK_BLOCKS - 1, 1);
                with[0] = Some((s, e));
                if out.payload_len <= tcb.payload_room(&with) {
                    out.sack = with;
                    dsack = None;
                    self.stats.dsacks_sent += 1;
                }
            }
            let len = out.payload_len as usize;
            if out.seq < tcb.snd_max && len > 0 && out.seq + len <= tcb.snd_max && tcb.snd_max != tcb.snd_nxt {
                self.stats.retransmits += 1;
            }
            // The payload goes from the send ring straight into the TX frame.
            let (ring, pool, off) = (&tcb.tx, &self.pool, out.payload_offset as usize);
            let write = |buf: &mut [u8]| emit::segment_frame_with(buf, &l2, &tuple, &out, |p| ring.peek(pool, off, p));
            let sent = tx.send_from(&l2.src, write);
            if !sent {
                self.stats.tx_full_deferred += 1;
                tcb.unsend(&out, &mut self.pool);
                // Not reaped yet: a CLOSED or TIME-WAIT connection still
                // owes this segment (its last ACK). A connection with the
                // DIRTY flag is in the dirty list (flush keeps it there).
                if was_dirty {
                    tcb.set(flag::DIRTY);
                } else {
                    self.mark_dirty(h);
                }
                self.schedule(h);
                return false;
            }
            self.stats.segments_out += 1;
            self.stats.ecn_ect_sent += out.ect as u64;
            if out.control & ctl::SYN != 0 && out.control & ctl::ACK != 0 && tcb.retries > 0 {
                self.stats.synacks_retransmitted += 1;
            }
        }
        if dsack.is_some() {
            // Every segment went out full: the report is advisory (RFC 2883 §4).
            self.stats.dsacks_not_sent += 1;
        }
        match tcb.state {
            // Reached TIME-WAIT (the peer's FIN after ours) with bytes the
            // application has not read yet, after a `shutdown` (a proxy
            // whose other side is slow): held in the table until they are
            // read, as a socket's buffered bytes stay readable; `recv`
            // releases it. At most for 2MSL: an application that never
            // reads must not hold the entry for ever; then the bytes are
            // discarded (counted) and TIME-WAIT goes on in its table.
            State::TimeWait if !tcb.rx.is_empty() && !tcb.has(flag::APP_CLOSED) => {
                // The first time here: the deadline left from ESTABLISHED
                // (keepalive) is replaced by the hold's; later outputs find
                // it already within the hold and keep it.
                let end = (now + self.cfgs[tcb.listener as usize].time_wait()).total_millis();
                if tcb.idle_at.due(now.total_millis()) || tcb.idle_at.ms(now.total_millis()) > end {
                    tcb.idle_at = Deadline::at(end);
                }
                self.schedule(h)
            }
            State::Closed | State::TimeWait => self.reap(now, h),
            _ => self.schedule(h),
        }
        true
    }

    /// Files the connection's earliest deadline in the wheel.
    fn schedule(&mut self, h: Handle) {
        let Some(tcb) = self.conns.get(h) else { return };
        match tcb.next_deadline(self.now.total_millis()) {
            NEVER => self.wheel.cancel(h.index()),
            d => self.wheel.arm(h.index(), d),
        }
    }

    /// Removes a connection that reached CLOSED or TIME-WAIT, moving the
    /// latter into the TIME-WAIT table.
    fn reap(&mut self, now: Instant, h: Handle) {
        let Some(&tuple) = self.conns.key(h) else { return };
        let Some(tcb) = self.conns.get_mut(h) else { return };
        if tcb.has(flag::ZOMBIE) {
            return;
        }
        let half_open = tcb.has(flag::HALF_OPEN).then_some(tcb.listener);
        tcb.clear(flag::HALF_OPEN);
        if tcb.has(flag::LISTENER_ACTIVE) {
            tcb.clear(flag::LISTENER_ACTIVE);
            self.listeners[tcb.listener as usize - 1].counts.active -= 1;
        }
        tcb.tx.clear(&mut self.pool);
        tcb.rx.clear(&mut self.pool);
        tcb.sender_detach(&mut self.pool, true);
        let time_wait = (tcb.state == State::TimeWait).then(|| TwState {
            snd_nxt: tcb.snd_nxt,
            rcv_nxt: tcb.rcv_nxt,
            ts_recent: tcb.ts_recent,
            rcv_wnd: (tcb.rcv_wnd() >> tcb.rcv_wscale).min(65535) as u16,
            flags: if tcb.has(flag::TS) { TW_TS } else { 0 },
        });
        let event = if tcb.has(flag::ANNOUNCED) {
            Some(Event::Closed(h, tcb.close_reason))
        } else if !tcb.has(flag::PASSIVE) && !tcb.has(flag::SILENT) {
            // An active open that never completed.
            Some(Event::Closed(h, CloseReason::Refused))
        } else {
            None
        };
        self.source_uncount(h);
        self.wheel.cancel(h.index());
        if let Some(li) = half_open {
            self.listeners[li as usize - 1].half_open -= 1;
            self.half_open -= 1;
        }
        if let Some(st) = time_wait {
            self.enter_time_wait(now, &tuple, st);
        }
        if event == Some(Event::Closed(h, CloseReason::Normal)) {
            self.stats.connections_closed += 1;
        }
        // The slot stays taken, as a zombie, until the application has
        // received `Closed`: otherwise a connection it opens while handling
        // events could take the slot before the old one's `Closed` reaches it.
        match event {
            Some(e) if self.events.push(e) => {
                let tcb = self.conns.get_mut(h).expect("live above");
                tcb.state = State::Closed;
                tcb.set(flag::ZOMBIE);
            }
            Some(_) => {
                self.stats.events_overflow += 1;
                self.conns.remove(h);
            }
            None => {
                self.conns.remove(h);
            }
        }
    }

    fn enter_time_wait(&mut self, now: Instant, tuple: &FourTuple, st: TwState) {
        let now_ms = now.total_millis();
        let (inserted, evicted_before, evicted_after) = match tuple.as_v4() {
            Some(k) => {
                let e = self.tw4.stats().evicted;
                let r = self.tw4.insert(k, st, now_ms).is_ok();
                (r, e, self.tw4.stats().evicted)
            }
            None => {
                let e = self.tw6.stats().evicted;
                let r = self.tw6.insert(*tuple, st, now_ms).is_ok();
                (r, e, self.tw6.stats().evicted)
            }
        };
        self.stats.time_wait_evicted += evicted_after - evicted_before;
        if inserted {
            self.stats.time_wait_entered += 1;
        }
    }

    // ---- timers -------------------------------------------------------

    /// Runs due connection timers and TIME-WAIT expiries (each up to a budget).
    pub fn on_timers<T: TxSink>(&mut self, now: Instant, tx: &mut T) {
        self.now = now;
        let now_ms = now.total_millis();
        let mut budget = TIMER_BUDGET;
        while budget > 0 {
            let Some(idx) = self.wheel.poll(now_ms) else { break };
            budget -= 1;
            let Some(h) = self.conns.handle_at(idx) else { continue };
            self.connection_timer(now, h, tx);
        }
        let expired =
            self.tw4.expire(now_ms, TIMER_BUDGET, |_, _| {}) + self.tw6.expire(now_ms, TIMER_BUDGET, |_, _| {});
        self.stats.time_wait_expired += expired as u64;
        self.pool.senders.counts.drain_into(&mut self.stats);
    }

    fn connection_timer<T: TxSink>(&mut self, now: Instant, h: Handle, tx: &mut T) {
        let Some(tcb) = self.conns.get_mut(h) else { return };
        if tcb.next_deadline(now.total_millis()) > now.total_millis() {
            // Pushed later since it was filed (lazy re-arm): file it again.
            return self.schedule(h);
        }
        let cfg = self.cfgs[tcb.listener as usize];
        let probes_before = tcb.probes;
        // RACK's and TLP's timers share `rto_at` and are not RTO expiries.
        let rto_due = tcb.rto_at.due(now.total_millis()) && !tcb.early_timer_armed(&self.pool);
        // The same timer is the persist timer while the peer's window is
        // shut (`Tcb::on_rto`): a probe is no retransmission timeout.
        let persist = rto_due && tcb.zero_window_stall() && tcb.state.is_synchronized();
        let why = if rto_due && !persist { Some(tcb.rto_context(&self.pool)) } else { None };
        let before = tcb.state;
        let expiry = tcb.on_timer(now, &cfg, &mut self.pool);
        if rto_due && expiry == Expiry::Continue && !tcb.rto_at.is_never() {
            if persist {
                self.stats.persist_probes += 1;
            } else {
                self.stats.rto_expiries += 1;
                match why {
                    Some(RtoContext::Repeated) => self.stats.rto_repeated += 1,
                    Some(RtoContext::InRecovery) => self.stats.rto_in_recovery += 1,
                    Some(RtoContext::AfterProbe) => self.stats.rto_after_probe += 1,
                    Some(RtoContext::WithoutSack) => self.stats.rto_without_sack += 1,
                    _ => self.stats.rto_other += 1,
                }
            }
        }
        if tcb.probes > probes_before {
            self.stats.keepalive_probes_sent += 1;
        }
        if before == State::TimeWait && tcb.idle_at.is_never() && !tcb.rx.is_empty() {
            // The 2MSL hold for unread bytes ran out (see `output`).
            self.stats.time_wait_unread_discarded += tcb.rx.len() as u64;
            tcb.rx.clear(&mut self.pool);
        }
        match expiry {
            Expiry::Continue => {
                self.mark_dirty(h);
                self.output(now, h, tx);
                return;
            }
            Expiry::AppDeadline => {
                self.stats.app_deadlines += 1;
                if !self.events.push(Event::Deadline(h)) {
                    // Not lost: a dropped deadline would hold the
                    // connection for good. Tried again at the next tick.
                    self.stats.events_overflow += 1;
                    tcb.app_at = Deadline::at(now.total_millis() + 1);
                }
                self.mark_dirty(h);
                self.output(now, h, tx);
                return;
            }
            // A half-open entry leaves quietly; `reap` books the budget.
            Expiry::HalfOpenTimeout => {
                self.stats.half_open_timeouts += 1;
                return self.reap(now, h);
            }
            Expiry::TimedOut => {
                self.stats.connections_timed_out += 1;
                tcb.close_reason = if before == State::SynSent { CloseReason::Refused } else { CloseReason::TimedOut };
                tcb.set(flag::RST_OWED);
            }
            Expiry::KeepaliveTimeout => {
                self.stats.keepalive_timeouts += 1;
                tcb.close_reason = CloseReason::KeepaliveTimeout;
                tcb.set(flag::RST_OWED);
            }
            Expiry::FinWait2Timeout => {
                self.stats.fin_wait2_timeouts += 1;
                tcb.close_reason = CloseReason::FinWait2Timeout;
            }
        }
        tcb.state = State::Closed;
        self.output(now, h, tx);
    }

    /// When the caller should next run [`on_timers`](Self::on_timers).
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.dirty.is_empty() {
            // Output the TX ring could not take: at once.
            return Some(self.now);
        }
        let w = self.wheel.next_expiry();
        let t = [self.tw4.next_expiry_ms(), self.tw6.next_expiry_ms()].into_iter().flatten().min();
        [w, t].into_iter().flatten().min().map(Instant::from_millis)
    }
}

/// The application interface.
impl Endpoint {
    fn live(&mut self, h: Handle) -> Result<&mut Tcb, Error> {
        self.conns.get_mut(h).filter(|t| !t.has(flag::ZOMBIE)).ok_or(Error::InvalidHandle)
    }

    pub fn state(&self, h: Handle) -> Option<State> {
        self.tcb(h).map(|t| t.state)
    }
    pub fn tuple(&self, h: Handle) -> Option<FourTuple> {
        self.conns.key(h).copied()
    }
    /// The control block, for inspection and tests.
    pub fn tcb(&self, h: Handle) -> Option<&Tcb> {
        self.conns.get(h).filter(|t| !t.has(flag::ZOMBIE))
    }
    /// The control block, to set up a test's conditions.
    #[cfg(test)]
    pub(crate) fn tcb_mut(&mut self, h: Handle) -> Option<&mut Tcb> {
        self.conns.get_mut(h).filter(|t| !t.has(flag::ZOMBIE))
    }

    /// Bytes waiting to be read.
    pub fn readable(&self, h: Handle) -> usize {
        self.conns.get(h).map_or(0, |t| t.rx.len())
    }

    /// Room to write now: up to the listener's `max_send_buffer`, or one
    /// chunk's worth while the pool is short (`tcp/window.rs`).
    pub fn writable(&self, h: Handle) -> usize {
        self.conns
            .get(h)
            .filter(|t| t.state.can_send() && !t.has(flag::FIN_QUEUED))
            .map_or(0, |t| t.tx.free(t.send_buf_limit(&self.pool, &self.cfgs[t.listener as usize])))
    }

    /// Reads up to `buf.len()` bytes.
    pub fn read(&mut self, h: Handle, buf: &mut [u8]) -> Result<usize, Error> {
        let mut done = 0;
        // The receive buffer is a chain of chunks: one run per chunk.
        loop {
            let n = self.recv(h, |data| {
                let n = data.len().min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&data[..n]);
                n
            })?;
            done += n;
            if n == 0 || done == buf.len() {
                return Ok(done);
            }
        }
    }

    /// Hands the front of the receive buffer to `f` without copying (up to
    /// the end of its first chunk: call again for more); `f` returns how
    /// many bytes it consumed. Autotunes the receive buffer
    /// (`tcp/window.rs`) and opens the window when reading frees enough of
    /// it (RFC 9293 §3.8.6.2.2 receiver SWS avoidance).
    pub fn recv(&mut self, h: Handle, f: impl FnOnce(&[u8]) -> usize) -> Result<usize, Error> {
        let pool = &mut self.pool;
        let tcb = self.conns.get_mut(h).filter(|t| !t.has(flag::ZOMBIE)).ok_or(Error::InvalidHandle)?;
        let n = f(tcb.rx.front(pool)).min(tcb.rx.len());
        if n == 0 {
            return Ok(0);
        }
        let wnd_before = tcb.rcv_wnd();
        tcb.rx.consume(pool, n);
        if tcb.state == State::TimeWait && tcb.rx.is_empty() {
            // Held for these bytes (see `output`): now it goes to the TIME-WAIT table.
            self.mark_dirty(h);
            return Ok(n);
        }
        let cfg = &self.cfgs[tcb.listener as usize];
        match tcb.rcv_space_adjust(self.now, cfg, pool) {
            Tune::Same => {}
            Tune::Grown => self.stats.rcv_window_grown += 1,
            Tune::Refused => self.stats.buffer_growth_refused += 1,
        }
        let space = tcb.rcv_space(pool, cfg);
        let threshold = (pool.chunk_size() / 2).min(2 * tcb.mss as u32);
        if space.saturating_sub(wnd_before) >= threshold && tcb.state.can_receive() {
            tcb.set(flag::ACK_NOW);
            self.mark_dirty(h);
        }
        Ok(n)
    }

    /// Queues bytes to send; returns how many fit.
    pub fn write(&mut self, h: Handle, data: &[u8]) -> Result<usize, Error> {
        let pool = &mut self.pool;
        let tcb = self.conns.get_mut(h).filter(|t| !t.has(flag::ZOMBIE)).ok_or(Error::InvalidHandle)?;
        if !tcb.state.can_send() || tcb.has(flag::FIN_QUEUED) {
            return Err(Error::InvalidState(tcb.state));
        }
        let limit = tcb.send_buf_limit(pool, &self.cfgs[tcb.listener as usize]);
        let n = tcb.tx.push(pool, data, limit);
        if n < data.len() && pool.short() && tcb.tx.len() >= limit {
            // Held to one chunk's worth while the pool is short.
            self.stats.buffer_growth_refused += 1;
        }
        if n > 0 {
            if !tcb.sender_attach(pool) {
                self.stats.sender_slots_exhausted += 1;
            }
            self.mark_dirty(h);
        } else if !data.is_empty() && !tcb.tx.has_chunk() && !tcb.has(flag::WANTS_BUFFER) {
            // The pool is empty: a `Writable` follows when a chunk frees up.
            tcb.set(flag::WANTS_BUFFER);
            self.buffer_waiters.push(h);
        }
        Ok(n)
    }

    /// Closes our sending side: a FIN follows the queued data; reading goes on.
    pub fn shutdown(&mut self, h: Handle) -> Result<(), Error> {
        let tcb = self.live(h)?;
        match tcb.state {
            State::Established => tcb.state = State::FinWait1,
            // RFC 9293 §3.10.4: the FIN waits for ESTABLISHED.
            State::SynReceived => {}
            State::CloseWait => tcb.state = State::LastAck,
            State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck => return Ok(()),
            s => return Err(Error::InvalidState(s)),
        }
        tcb.set(flag::FIN_QUEUED);
        tcb.idle_at = Deadline::NEVER;
        self.mark_dirty(h);
        Ok(())
    }

    /// Closes the connection: FIN after the queued data, and nothing more
    /// will be read. With unread data it is reset instead (RFC 9293
    /// §3.10.4, RFC 2525 §2.17). The handle stays valid until `Closed`.
    pub fn close(&mut self, h: Handle) -> Result<(), Error> {
        let now = self.now;
        let cfgs = &self.cfgs;
        let tcb = self.conns.get_mut(h).filter(|t| !t.has(flag::ZOMBIE)).ok_or(Error::InvalidHandle)?;
        if !tcb.rx.is_empty() {
            return self.abort(h);
        }
        tcb.set(flag::APP_CLOSED);
        // The application has let go: no more deadlines for it.
        tcb.app_at = Deadline::NEVER;
        match tcb.state {
            State::SynSent => {
                tcb.state = State::Closed;
                tcb.set(flag::SILENT);
                self.mark_dirty(h);
                Ok(())
            }
            State::FinWait2 => {
                // Closed after a shutdown: now the peer's FIN is waited for
                // only so long.
                tcb.idle_at = Deadline::at((now + cfgs[tcb.listener as usize].fin_wait2_timeout).total_millis());
                self.mark_dirty(h);
                Ok(())
            }
            _ => self.shutdown(h),
        }
    }

    /// Resets the connection now (RFC 9293 §3.10.5). No `Closed` event follows.
    pub fn abort(&mut self, h: Handle) -> Result<(), Error> {
        let tcb = self.live(h)?;
        if tcb.state.is_synchronized() || tcb.state == State::SynReceived {
            tcb.set(flag::RST_OWED);
        }
        tcb.state = State::Closed;
        tcb.clear(flag::ANNOUNCED);
        tcb.set(flag::SILENT);
        self.stats.connections_aborted += 1;
        self.mark_dirty(h);
        Ok(())
    }

    /// Active open (RFC 9293 §3.10.1): a SYN goes out at the next flush.
    pub fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        peer_mac: [u8; 6],
    ) -> Result<Handle, Error> {
        let tuple = FourTuple::new(local, remote);
        let cfg = self.cfgs[ACTIVE_CFG as usize];
        let (iss, ts_offset) = self.secrets.isn(&tuple, now);
        let mut tcb = Tcb::new(&cfg, iss, ts_offset, &L2 { src: self.mac, dst: peer_mac, vlan: None });
        if self.back_mac.is_some() {
            tcb.set(flag::BACK_ARM);
        }
        tcb.state = State::SynSent;
        tcb.listener = ACTIVE_CFG;
        tcb.rcv_wscale = cfg.offered_window_scale();
        tcb.mss = cfg.advertised_mss(!tuple.local_addr.is_v4());
        if !tuple.local_addr.is_v4() {
            tcb.set(flag::V6);
        }
        if cfg.window_scale > 0 {
            tcb.set(flag::WSCALE);
        }
        if cfg.sack {
            tcb.set(flag::SACK);
        }
        if cfg.timestamps {
            tcb.set(flag::TS);
        }
        tcb.ecn_request(&cfg);
        let h = match self.conns.insert(tuple, tcb) {
            Ok(h) => h,
            Err(e) => {
                self.stats.connect_failed += 1;
                return Err(match e {
                    InsertError::Full => Error::TableFull,
                    InsertError::Exists(_) => Error::InUse,
                });
            }
        };
        self.mark_dirty(h);
        Ok(h)
    }
}
