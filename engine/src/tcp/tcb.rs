//! The transmission control block (RFC 9293 §3.3.1) and what it sends.
//!
//! A `Tcb` is the per-connection state, kept compact: sequence variables,
//! negotiated options, RTT estimator (RFC 6298), congestion window (RFC 5681),
//! four deadlines, two buffer rings that hold pool chunks only while they
//! hold bytes, and the receive window's autotuning state (`window.rs`). It never reads a clock: `now` is passed in. Segment arrival is
//! in `input.rs`; this file holds the output side and the timers. A
//! segment's payload is the send MSS less the SACK blocks it carries
//! ([`Tcb::seg_mss`], RFC 6691 §2), so no frame outgrows the path's MTU.
//!
//! Timers (each a 32-bit [`Deadline`], ms since the shard's epoch, none when off):
//! - `rto_at`: SYN / SYN-ACK / data / FIN retransmission (RFC 6298 §5) and the
//!   zero-window probe (RFC 9293 §3.8.6.1);
//! - `ack_at`: the delayed ACK (RFC 9293 §3.8.6.3, at most 40 ms);
//! - `idle_at`: keepalive (RFC 9293 §3.8.4) or the FIN-WAIT-2 timeout;
//! - `app_at`: the application's own deadline ([`Endpoint::set_deadline`]:
//!   header, idle and send timeouts against slow or idle peers), which
//!   raises `Event::Deadline`.
//!
//! The endpoint files the earliest of them in the timing wheel.
//!
//! [`Endpoint::set_deadline`]: super::Endpoint::set_deadline

use super::buffer::{BufferPool, Ring, NIL};
use super::config::TcpConfig;
use super::deadline::Deadline;
use super::emit::L2;
use super::events::CloseReason;
use super::sender::SendState;
use super::state::State;
use crate::time::Instant;
use crate::wire::{SeqNumber, TcpOptions, MAX_SACK_BLOCKS};

pub const NEVER: u64 = u64::MAX;

/// Flag bits of a `Tcb`.
pub mod flag {
    /// RFC 7323 timestamps in use.
    pub const TS: u32 = 1 << 0;
    /// SACK-permitted negotiated.
    pub const SACK: u32 = 1 << 1;
    /// The application closed its sending side: a FIN follows the data.
    pub const FIN_QUEUED: u32 = 1 << 2;
    /// Our FIN has been acknowledged.
    pub const FIN_ACKED: u32 = 1 << 3;
    /// The peer's FIN has been received.
    pub const FIN_RECEIVED: u32 = 1 << 4;
    /// The application closed fully: data arriving now gets an RST (RFC 9293 §3.10.7.4, Linux).
    pub const APP_CLOSED: u32 = 1 << 5;
    /// An ACK must go out at the next output.
    pub const ACK_NOW: u32 = 1 << 6;
    /// Opened from a listener (passive), as opposed to `connect`.
    pub const PASSIVE: u32 = 1 << 7;
    /// Retransmit the segment at snd_una once (fast retransmit, RFC 5681 §3.2).
    pub const RETX_HEAD: u32 = 1 << 8;
    /// A keepalive probe (seq = SND.NXT - 1) must go out.
    pub const PROBE: u32 = 1 << 9;
    /// The connection is queued for output in the endpoint.
    pub const DIRTY: u32 = 1 << 10;
    /// The peer offered window scaling (and we answered it).
    pub const WSCALE: u32 = 1 << 11;
    /// In fast recovery until snd_una passes `recover`.
    pub const RECOVERY: u32 = 1 << 12;
    /// The connection was announced to the application.
    pub const ANNOUNCED: u32 = 1 << 13;
    /// The application let go of the handle (abort, or close before
    /// connecting): no `Closed` event.
    pub const SILENT: u32 = 1 << 14;
    /// Counted in its listener's half-open budget.
    pub const HALF_OPEN: u32 = 1 << 15;
    /// A segment arrived beyond RCV.NXT (held for reassembly, or dropped):
    /// the one that fills the hole is ACKed at once (RFC 5681 §4.2).
    pub const HOLE: u32 = 1 << 16;
    /// Reaped; the slot waits for the application to receive `Closed`.
    pub const ZOMBIE: u32 = 1 << 17;
    /// Waiting in the endpoint's list for a buffer chunk to write into.
    pub const WANTS_BUFFER: u32 = 1 << 18;
    /// An IPv6 connection: its SYN and SYN-ACK advertise the IPv6 MSS.
    pub const V6: u32 = 1 << 19;
    /// A zero-window probe is out and not yet answered.
    pub const PROBE_OUT: u32 = 1 << 20;
    /// Counted in the endpoint's per-source-address table.
    pub const SRC_COUNTED: u32 = 1 << 21;
    /// Congestion control is NewReno (`TcpConfig::congestion`), not CUBIC.
    pub const CC_NEWRENO: u32 = 1 << 22;
    /// The silly-window override timeout fired (RFC 9293 §3.8.6.2.1): the
    /// segment held for a small window goes out at the next output.
    pub const SWS_OVERRIDE: u32 = 1 << 23;
    /// ECN (RFC 3168 §6.1.1): requested in our SYN (SYN-SENT), accepted
    /// for the peer's SYN (SYN-RECEIVED), negotiated (from ESTABLISHED).
    pub const ECN: u32 = 1 << 24;
    /// A data segment arrived with CE: ECE on every ACK until a segment
    /// with CWR comes (RFC 3168 §6.1.3).
    pub const ECN_ECE: u32 = 1 << 25;
    /// The window was reduced for an ECE: CWR goes on the next new data
    /// segment (RFC 3168 §6.1.2).
    pub const ECN_CWR: u32 = 1 << 26;
    /// In an ECN window reduction: no second one until SND.UNA passes the
    /// end recorded in the sender slot (`SendState::ecn_end`).
    pub const ECN_REDUCING: u32 = 1 << 27;
    /// Counted in its listener's active connections (`ListenerCounts`).
    pub const LISTENER_ACTIVE: u32 = 1 << 28;
    /// SYN-SENT: the SYN was sent again at once after an RST answering a
    /// stray ACK (`input_syn_sent`); not a second time.
    pub const SYN_RESENT: u32 = 1 << 29;
    /// Its frames go out from the back link's MAC (a two-armed shard:
    /// `Endpoint::set_back_mac`), not the front's.
    pub const BACK_ARM: u32 = 1 << 30;
    /// The connection was reset: `<SEQ=acceptable_seq()><ACK=RCV.NXT><CTL=RST,ACK>`
    /// goes out at its next output (RFC 9293 §3.10.5, §3.10.8).
    pub const RST_OWED: u32 = 1 << 31;
}

/// Control bits of a segment to send.
pub mod ctl {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    /// ECN-Echo and Congestion Window Reduced (RFC 3168 §6.1).
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// One segment the endpoint should write: headers, plus `payload_len` bytes
/// from the send ring starting `payload_offset` bytes after SND.UNA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub control: u8,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub window: u16,
    /// Our TSval and TSecr, when timestamps are in use.
    pub timestamp: Option<(u32, u32)>,
    /// Options for a SYN or SYN-ACK: MSS, window scale, SACK-permitted.
    pub syn_options: Option<SynOptions>,
    /// SACK blocks (RFC 2018), when SACK was negotiated and data waits
    /// beyond a hole; as many as fit beside the other options are sent.
    pub sack: [Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS],
    pub payload_offset: u32,
    pub payload_len: u32,
    /// ECT(0) in the IP header (RFC 3168 §6.1.2): new data of an
    /// ECN-capable connection (`ecn.rs`).
    pub ect: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynOptions {
    pub mss: u16,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
}

#[derive(Clone, Debug)]
pub struct Tcb {
    pub state: State,
    pub flags: u32,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub retries: u8,
    pub probes: u8,
    /// Full-sized segments received since the last ACK we sent.
    pub unacked_segs: u8,
    pub dupacks: u8,
    /// Effective send MSS: payload bytes per segment, options excluded.
    pub mss: u16,
    pub listener: u16,
    pub peer_mac: [u8; 6],
    /// The 802.1Q VLAN ID the connection arrived on, kept on every frame it
    /// sends; 0: untagged (a VID-0 priority tag is answered untagged).
    pub vlan: u16,
    /// SND.UNA; until our SYN is acknowledged (SYN-SENT, SYN-RECEIVED)
    /// it is the ISS, which is therefore not kept apart ([`Tcb::iss`]).
    pub snd_una: SeqNumber,
    pub snd_nxt: SeqNumber,
    /// Highest sequence number sent, plus one (go-back-N rewinds snd_nxt only).
    pub snd_max: SeqNumber,
    pub snd_wl1: SeqNumber,
    pub snd_wl2: SeqNumber,
    pub snd_wnd: u32,
    pub rcv_nxt: SeqNumber,
    /// Right edge of the window we last advertised (never moves left).
    pub rcv_adv: SeqNumber,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub recover: SeqNumber,
    pub ts_recent: u32,
    pub ts_offset: u32,
    /// When this connection last answered an unacceptable segment or sent
    /// a challenge ACK (ms, wrapping; 0 for never): Linux's
    /// `last_oow_ack_time`, see [`super::ratelimit::oow_rate_limited`].
    pub last_oow_ms: u32,
    pub srtt_us: u32,
    pub rttvar_us: u32,
    pub rto_ms: u32,
    /// Karn's algorithm: the segment being timed and when it left.
    pub rtt_seq: SeqNumber,
    pub rtt_start_ms: u32,
    /// When data was last sent (ms, wrapping; Linux's `lsndtime`): the
    /// window restarts after an idle RTO (RFC 5681 §4.1).
    pub snd_last_ms: u32,
    pub rto_at: Deadline,
    pub ack_at: Deadline,
    pub idle_at: Deadline,
    /// The application's deadline (none when it has none).
    pub app_at: Deadline,
    pub tx: Ring,
    pub rx: Ring,
    /// The receive buffer autotuning allows now (`window.rs`); 0: one chunk.
    pub rcv_buf: u32,
    /// Start of the current autotuning measurement: the first byte the
    /// application had not read then, and when (ms, wrapping).
    pub rcv_epoch_seq: SeqNumber,
    pub rcv_epoch_ms: u32,
    /// This connection's slot in the shard's sender slab (`sender.rs`),
    /// held while it has bytes queued or in flight; `NIL` otherwise.
    pub snd_slot: u32,
    pub close_reason: CloseReason,
}

impl Tcb {
    /// A control block for a new connection; the caller fills in the state.
    /// `peer` is where its frames go: the peer's (or the router's) MAC and
    /// the VLAN the connection came on.
    pub fn new(cfg: &TcpConfig, iss: SeqNumber, ts_offset: u32, peer: &L2) -> Tcb {
        Tcb {
            state: State::Closed,
            flags: 0,
            snd_wscale: 0,
            rcv_wscale: 0,
            retries: 0,
            probes: 0,
            unacked_segs: 0,
            dupacks: 0,
            mss: 536,
            listener: 0,
            peer_mac: peer.dst,
            vlan: peer.vlan.unwrap_or(0),
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_wnd: 0,
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            cwnd: 0,
            ssthresh: u32::MAX,
            recover: iss,
            ts_recent: 0,
            ts_offset,
            last_oow_ms: 0,
            srtt_us: 0,
            rttvar_us: 0,
            rto_ms: cfg.rto_initial.as_millis() as u32,
            rtt_seq: iss,
            rtt_start_ms: 0,
            snd_last_ms: 0,
            rto_at: Deadline::NEVER,
            ack_at: Deadline::NEVER,
            idle_at: Deadline::NEVER,
            app_at: Deadline::NEVER,
            tx: Ring::default(),
            rx: Ring::default(),
            rcv_buf: 0,
            rcv_epoch_seq: SeqNumber(0),
            rcv_epoch_ms: 0,
            snd_slot: NIL,
            close_reason: CloseReason::Normal,
        }
    }

    /// Our initial sequence number, while our SYN is unacknowledged
    /// (SYN-SENT, SYN-RECEIVED): SND.UNA then. The peer's (IRS) is RCV.NXT
    /// less one in SYN-RECEIVED.
    #[inline]
    pub fn iss(&self) -> SeqNumber {
        debug_assert!(matches!(self.state, State::SynSent | State::SynReceived | State::Closed));
        self.snd_una
    }

    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }
    pub fn set(&mut self, f: u32) {
        self.flags |= f;
    }
    pub fn clear(&mut self, f: u32) {
        self.flags &= !f;
    }

    /// The earliest deadline of this connection in ms since the epoch, read
    /// against `now_ms`, for the timing wheel; `NEVER` when none.
    pub fn next_deadline(&self, now_ms: u64) -> u64 {
        let [a, b, c, d] = [self.rto_at, self.ack_at, self.idle_at, self.app_at].map(|t| t.ms(now_ms));
        a.min(b).min(c).min(d)
    }

    /// Whether any deadline is set.
    pub fn has_deadline(&self) -> bool {
        [self.rto_at, self.ack_at, self.idle_at, self.app_at].iter().any(|t| !t.is_never())
    }

    /// Our timestamp clock (RFC 7323 §5.4): milliseconds plus the connection's offset.
    pub fn ts_val(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// An RTT sample in µs from an echoed timestamp (RFC 7323 §4.1); None
    /// when it is a minute old or more (not an echo of ours). A reading of
    /// 0 ms counts as 1 ms, as Linux's `tcp_rtt_tsopt_us`: "under a
    /// millisecond", not "no time".
    pub fn ts_rtt_us(&self, now: Instant, tsecr: u32) -> Option<u32> {
        let r = self.ts_val(now).wrapping_sub(tsecr);
        (r < 60_000).then(|| r.max(1) * 1000)
    }

    /// The most the echoed segment's round trip can have taken, in µs: a
    /// reading of r whole milliseconds is under r + 1 (both ends of it are
    /// truncated). None as for `ts_rtt_us`.
    pub fn ts_rtt_bound_us(&self, now: Instant, tsecr: u32) -> Option<u32> {
        let r = self.ts_val(now).wrapping_sub(tsecr);
        (r < 60_000).then(|| (r + 1) * 1000)
    }

    /// Sequence number our FIN occupies, when one is queued.
    pub fn fin_seq(&self) -> SeqNumber {
        self.snd_una + self.tx.len()
    }

    /// Bytes sent and not yet acknowledged (SYN and FIN count one each).
    pub fn flight(&self) -> u32 {
        (self.snd_max - self.snd_una) as u32
    }

    /// The receive window we can offer now, in bytes: the autotuned
    /// buffer (`window.rs`) less the bytes the application has not read.
    /// With the pool short, one chunk's worth at most (growth refused),
    /// and nothing when no chunk is free for a ring that holds none. The
    /// edge already advertised never moves back (`advertise`).
    pub fn rcv_space(&self, pool: &BufferPool, cfg: &TcpConfig) -> u32 {
        if !self.rx.has_chunk() && pool.available() == 0 {
            return 0;
        }
        let buf = if pool.short() { pool.chunk_size() as usize } else { self.rcv_buf_limit(pool, cfg) };
        self.rx.free(buf) as u32
    }

    /// Option bytes `sack` adds to a segment of this connection, beyond the
    /// timestamps every segment carries (and `mss` already left out).
    fn sack_option_len(&self, sack: &[Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS]) -> u32 {
        if sack[0].is_none() {
            return 0;
        }
        let ts = self.has(flag::TS).then_some((0, 0));
        let with = TcpOptions { timestamp: ts, sack_blocks: *sack, ..TcpOptions::default() };
        let without = TcpOptions { timestamp: ts, ..TcpOptions::default() };
        (with.buffer_len() - without.buffer_len()) as u32
    }

    /// Payload bytes the next segment may carry: the send MSS less the SACK
    /// blocks it carries while our receive side has holes. The MSS leaves
    /// options out, and "the sender MUST reduce the TCP data length to
    /// account for any IP or TCP options that it is including" (RFC 6691 §2,
    /// RFC 9293 §3.7.1): a full segment with three SACK blocks is 28 bytes
    /// over the path's MTU, the link drops it, and every resend of it too.
    pub fn seg_mss(&self, pool: &BufferPool) -> u32 {
        if !self.has(flag::SACK) {
            return self.mss as u32;
        }
        let ooo = self.rx.out_of_order(pool);
        if ooo.is_empty() {
            return self.mss as u32;
        }
        self.payload_room(&ooo.sack_blocks())
    }

    /// Payload bytes a segment carrying `sack` may hold ([`Tcb::seg_mss`]
    /// for blocks already chosen).
    pub fn payload_room(&self, sack: &[Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS]) -> u32 {
        (self.mss as u32).saturating_sub(self.sack_option_len(sack)).max(1)
    }

    /// RCV.WND as the peer sees it: up to the edge we advertised.
    pub fn rcv_wnd(&self) -> u32 {
        self.rcv_adv.diff(self.rcv_nxt).max(0) as u32
    }

    /// Computes the window field for an outgoing segment and moves the
    /// advertised edge, never to the left (RFC 9293 §3.8.6.2.2).
    pub(super) fn advertise(&mut self, pool: &BufferPool, cfg: &TcpConfig, syn: bool) -> u16 {
        let space = self.rcv_space(pool, cfg);
        let shift = if syn { 0 } else { self.rcv_wscale };
        let field = (space >> shift).min(65535);
        let offered = field << shift;
        let edge = self.rcv_nxt + offered as usize;
        if edge > self.rcv_adv {
            self.rcv_adv = edge;
        }
        (self.rcv_wnd() >> shift).min(65535) as u16
    }

    fn arm_rto(&mut self, now: Instant) {
        if self.rto_at.is_never() {
            self.rto_at = Deadline::at(now.total_millis() + self.rto_ms as u64);
        }
    }

    pub(super) fn ack_sent(&mut self) {
        self.clear(flag::ACK_NOW);
        self.ack_at = Deadline::NEVER;
        self.unacked_segs = 0;
    }

    /// The next segment this connection sends by the RFC 9293 / RFC 5681
    /// rules (new data, go-back-N, FIN, ACKs), if any; `poll_output`
    /// (`recovery.rs`) puts loss recovery in front of it. Advances SND.NXT
    /// past what it returns.
    pub(super) fn poll_output_inner(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        pool: &mut BufferPool,
    ) -> Option<Outgoing> {
        let ts = self.has(flag::TS).then(|| (self.ts_val(now), self.ts_recent));
        let mut out = Outgoing {
            control: ctl::ACK,
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            window: 0,
            timestamp: ts,
            syn_options: None,
            sack: [None; MAX_SACK_BLOCKS],
            payload_offset: 0,
            payload_len: 0,
            ect: false,
        };
        if self.has(flag::SACK) {
            out.sack = self.rx.out_of_order(pool).sack_blocks();
        }
        match self.state {
            State::Closed | State::Listen => return None,
            // The ACK of the peer's FIN, on the way into TIME-WAIT.
            State::TimeWait if self.has(flag::ACK_NOW) => {
                out.window = self.advertise(pool, cfg, false);
                self.ack_sent();
                return Some(out);
            }
            State::TimeWait => return None,
            State::SynSent | State::SynReceived if self.snd_nxt == self.iss() => {
                out.control = if self.state == State::SynSent { ctl::SYN } else { ctl::SYN | ctl::ACK };
                out.control |= self.ecn_syn_bits();
                if self.state == State::SynSent {
                    out.ack = SeqNumber(0);
                }
                out.syn_options = Some(self.syn_options(cfg));
                out.window = self.advertise(pool, cfg, true);
                self.snd_nxt = self.iss() + 1;
                self.snd_max = self.snd_max.max(self.snd_nxt);
                self.arm_rto(now);
                self.ack_sent();
                return Some(out);
            }
            State::SynSent => return None,
            State::SynReceived => {
                // The SYN is out: no data or FIN before ESTABLISHED, only an
                // ACK when one is due (a challenge ACK).
                if !self.has(flag::ACK_NOW) {
                    return None;
                }
                out.window = self.advertise(pool, cfg, false);
                self.ack_sent();
                return Some(out);
            }
            _ => {}
        }

        if self.zero_window_stall() && self.flight() == 0 {
            // RFC 9293 §3.8.6.1: the persist timer probes a closed window.
            self.arm_rto(now);
        }
        let data_end = self.snd_una + self.tx.len();
        let fin_wanted = self.has(flag::FIN_QUEUED) && !self.has(flag::FIN_ACKED);

        // Fast retransmit of the first unacknowledged segment.
        if self.has(flag::RETX_HEAD) {
            self.clear(flag::RETX_HEAD);
            let len = (self.tx.len() as u32).min(self.payload_room(&out.sack));
            out.seq = self.snd_una;
            out.payload_len = len;
            if fin_wanted && len as usize == self.tx.len() && self.snd_max > data_end {
                out.control |= ctl::FIN;
            }
            if len > 0 || out.control & ctl::FIN != 0 {
                out.control |= ctl::PSH * (len > 0) as u8;
                out.window = self.advertise(pool, cfg, false);
                self.ack_sent();
                return Some(out);
            }
        }

        // New data (or data to resend after an RTO), within the peer's
        // window and the congestion window.
        let unsent = data_end.diff(self.snd_nxt).max(0) as u32;
        if unsent > 0 {
            let in_flight = self.snd_nxt - self.snd_una;
            if in_flight == 0 {
                self.cc_idle_check(now, pool);
            }
            let mss = self.payload_room(&out.sack);
            let wnd = self.snd_wnd.min(self.cwnd) as usize;
            let room = wnd.saturating_sub(in_flight) as u32;
            let mut len = unsent.min(room).min(mss);
            if len > 0 && len < mss && !self.small_segment_allowed(now, cfg, pool, len, unsent, fin_wanted) {
                len = 0;
            }
            if len > 0 {
                out.payload_offset = in_flight as u32;
                out.payload_len = len;
                out.control |= ctl::PSH;
                if fin_wanted && len == unsent {
                    out.control |= ctl::FIN;
                }
                if len < mss {
                    let end = self.snd_nxt + len as usize;
                    if let Some(s) = self.sender_mut(pool) {
                        s.snd_sml = end;
                    }
                }
                self.send_advance(now, len as usize + (out.control & ctl::FIN != 0) as usize);
                out.window = self.advertise(pool, cfg, false);
                self.ack_sent();
                return Some(out);
            }
        }

        // A bare FIN once the data is all out.
        if fin_wanted && self.snd_nxt == data_end {
            out.control |= ctl::FIN;
            self.send_advance(now, 1);
            out.window = self.advertise(pool, cfg, false);
            self.ack_sent();
            return Some(out);
        }

        if self.has(flag::PROBE) {
            // RFC 9293 §3.8.4: a probe the peer must answer, with SEG.SEQ = SND.NXT - 1.
            self.clear(flag::PROBE);
            out.seq = self.snd_nxt - 1;
            out.window = self.advertise(pool, cfg, false);
            self.ack_sent();
            return Some(out);
        }

        if self.has(flag::ACK_NOW) || self.ack_at.due(now.total_millis()) {
            out.seq = self.acceptable_seq();
            out.window = self.advertise(pool, cfg, false);
            self.ack_sent();
            return Some(out);
        }
        None
    }

    /// Whether a segment of `len` bytes, less than the MSS, may leave now
    /// (`unsent` bytes wait): sender silly-window avoidance (RFC 9293
    /// §3.8.6.2.1) and Nagle (RFC 9293 §3.7.4, RFC 896). Every write is a
    /// push here (the application hands whole messages), so:
    /// - the tail of what is queued (all of it fits) goes, unless Nagle
    ///   holds it: a small segment is still unacknowledged (Minshall's
    ///   variant, as Linux: full segments in flight do not hold it) and
    ///   neither `TcpConfig::nodelay` nor a queued FIN says to push;
    /// - a piece cut short by the window goes only when it is at least
    ///   half the largest window the peer offered, or when the override
    ///   timeout fired; with nothing in flight (no ACK will come to open
    ///   the window further) the retransmission timer is that timeout;
    /// - resends (go-back-N after an RTO) and zero-window probes are not
    ///   held: those bytes were committed.
    fn small_segment_allowed(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        pool: &mut BufferPool,
        len: u32,
        unsent: u32,
        fin_wanted: bool,
    ) -> bool {
        if self.has(flag::SWS_OVERRIDE) {
            self.clear(flag::SWS_OVERRIDE);
            return true;
        }
        if self.snd_nxt < self.snd_max || self.has(flag::PROBE_OUT) {
            return true;
        }
        let snd_wnd = self.snd_wnd;
        let (max_wnd, small_out) = match self.sender_mut(pool) {
            Some(s) => {
                s.max_snd_wnd = s.max_snd_wnd.max(snd_wnd);
                (s.max_snd_wnd, s.snd_sml > self.snd_una)
            }
            // No slot: the current window, and Nagle's original rule.
            None => (snd_wnd, self.snd_nxt > self.snd_una),
        };
        if len == unsent {
            return cfg.nodelay || fin_wanted || !small_out || self.snd_nxt == self.snd_una;
        }
        if len >= max_wnd / 2 {
            return true;
        }
        if self.snd_nxt == self.snd_una {
            self.arm_rto(now);
        }
        false
    }

    /// `out`, just returned by `poll_output`, found no TX frame: undo what
    /// was recorded as sent so the next output sends it again. A full TX
    /// ring is backpressure, never a lost segment waiting for the RTO.
    pub fn unsend(&mut self, out: &Outgoing, pool: &mut BufferPool) {
        // An ACK rides on whatever goes next; a bare one is sent on its own.
        self.set(flag::ACK_NOW);
        self.ecn_unsend(out);
        if self.recovery_unsend(pool, out) {
            return;
        }
        let len = out.payload_len as usize
            + usize::from(out.control & ctl::SYN != 0)
            + usize::from(out.control & ctl::FIN != 0);
        if len == 0 {
            // A keepalive probe (SEG.SEQ = SND.NXT - 1) is owed again.
            if out.seq != self.snd_nxt {
                self.set(flag::PROBE);
            }
        } else if out.seq + len == self.snd_nxt {
            // New data, a FIN, a SYN, or a go-back-N resend: SND.NXT moves
            // back (SND.MAX stays, the bytes were committed) and the timing
            // of this segment is off (Karn).
            self.snd_nxt = out.seq;
            if self.rtt_seq == out.seq + len {
                self.rtt_seq = self.snd_una;
            }
        } else {
            // The fast retransmission of SND.UNA: owed again.
            self.set(flag::RETX_HEAD);
        }
    }

    /// The sequence number of a segment without data (a bare ACK, an
    /// RST): Linux's `tcp_acceptable_seq`. The highest sequence number sent
    /// (Linux's SND.NXT, which never rewinds): after an RTO rewound SND.NXT
    /// the peer may hold bytes past it (reassembled), and a segment numbered
    /// below its RCV.NXT is dropped as old, ACK field and all. But no further
    /// than the right edge of the peer's window: a shut window accepts only
    /// SEG.SEQ = RCV.NXT (a persist probe's byte is beyond it).
    pub fn acceptable_seq(&self) -> SeqNumber {
        let wnd_end = self.snd_una + self.snd_wnd as usize;
        if self.snd_max <= wnd_end {
            self.snd_max
        } else {
            wnd_end
        }
    }

    fn send_advance(&mut self, now: Instant, len: usize) {
        if self.snd_nxt == self.snd_max && !self.has(flag::TS) && self.rtt_seq <= self.snd_una {
            // Karn: time a segment only when it is new.
            self.rtt_seq = self.snd_nxt + len;
            self.rtt_start_ms = now.total_millis() as u32;
        }
        self.snd_nxt += len;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        self.snd_last_ms = now.total_millis() as u32;
        self.arm_rto(now);
    }

    fn syn_options(&self, cfg: &TcpConfig) -> SynOptions {
        SynOptions {
            mss: self.mss_to_advertise(cfg),
            window_scale: self.has(flag::WSCALE).then_some(self.rcv_wscale),
            sack_permitted: self.has(flag::SACK),
        }
    }

    fn mss_to_advertise(&self, cfg: &TcpConfig) -> u16 {
        cfg.advertised_mss(self.has(flag::V6))
    }

    /// The link layer of this connection's frames, from `mac` (ours).
    pub fn l2(&self, mac: [u8; 6]) -> L2 {
        L2 { src: mac, dst: self.peer_mac, vlan: (self.vlan != 0).then_some(self.vlan) }
    }

    /// RFC 6298 §2 with one sample `r`.
    pub fn rtt_sample(&mut self, cfg: &TcpConfig, r_us: u32) {
        let r = r_us.max(1);
        if self.srtt_us == 0 {
            self.srtt_us = r;
            self.rttvar_us = r / 2;
        } else {
            let delta = self.srtt_us.abs_diff(r);
            self.rttvar_us = self.rttvar_us - self.rttvar_us / 4 + delta / 4;
            self.srtt_us = self.srtt_us - self.srtt_us / 8 + r / 8;
        }
        let rto_us = self.srtt_us as u64 + (4 * self.rttvar_us as u64).max(1000);
        let min = cfg.rto_min.as_millis() as u64;
        let max = cfg.rto_max.as_millis() as u64;
        self.rto_ms = (rto_us / 1000).clamp(min, max) as u32;
    }

    /// The RTO fired. Returns false when the connection has used up its
    /// retries and must be reset or reclaimed.
    pub fn on_rto(&mut self, now: Instant, cfg: &TcpConfig, pool: &mut BufferPool) -> bool {
        // RACK's reordering timer or TLP's probe timeout shares `rto_at`.
        if self.recovery_timer(now, pool) {
            return true;
        }
        self.rto_at = Deadline::NEVER;
        if self.zero_window_stall() && self.state.is_synchronized() {
            return self.on_persist(now, cfg);
        }
        if self.flight() == 0 {
            if !self.tx.is_empty() && self.state.is_synchronized() {
                // The silly-window override timeout (RFC 9293 §3.8.6.2.1):
                // a piece held for a small window goes now.
                self.set(flag::SWS_OVERRIDE);
            }
            return true;
        }
        self.retries = self.retries.saturating_add(1);
        let limit = match self.state {
            State::SynSent | State::SynReceived => cfg.synack_retries,
            // The shorter FIN budget is for orphans, as Linux's
            // tcp_orphan_retries: after a shutdown the application still
            // waits for its bytes, and with a send buffer that takes a whole
            // response at once the FIN is queued for most of the transfer,
            // so every data RTO would count against the FIN's budget.
            State::FinWait1 | State::Closing | State::LastAck if self.has(flag::APP_CLOSED) => cfg.fin_retries,
            _ => cfg.max_retries,
        };
        if self.retries > limit {
            return false;
        }
        // RFC 6298 §5.5-5.6: back off, then go back to SND.UNA.
        self.rto_ms = (self.rto_ms.saturating_mul(2)).min(cfg.rto_max.as_millis() as u32);
        let prior = (self.cwnd, self.ssthresh);
        self.cc_on_rto(now, pool);
        self.clear(flag::RECOVERY);
        self.dupacks = 0;
        self.rtt_seq = self.snd_una;
        // (In SYN-SENT and SYN-RECEIVED that is the ISS: the SYN again.)
        self.snd_nxt = self.snd_una;
        // RFC 6582 §3.2 step 1 (and RFC 6675 §5.1): no fast retransmit for
        // duplicate ACKs of what was sent before the timeout.
        let prior = (prior.0, prior.1, self.recover);
        self.recover = self.snd_max;
        let ts = self.has(flag::TS).then(|| self.ts_val(now));
        self.recovery_on_rto(now, pool, prior, ts);
        self.arm_rto(now);
        true
    }

    /// The persist timer fired (RFC 9293 §3.8.6.1): the window is shut and
    /// data waits. A probe is the first unacknowledged byte, sent past the
    /// closed window, with the timer backing off to RTO.max. Every probe
    /// counts toward `max_retries`; the peer's answer (an ACK, window still
    /// 0) resets the count in `input`, once per probe, so a live slow reader
    /// is probed for as long as it reads nothing, while ACKs with no probe
    /// out reset nothing.
    fn on_persist(&mut self, now: Instant, cfg: &TcpConfig) -> bool {
        self.retries = self.retries.saturating_add(1);
        if self.retries > cfg.max_retries {
            return false;
        }
        self.set(flag::PROBE_OUT);
        self.rto_ms = (self.rto_ms.saturating_mul(2)).min(cfg.rto_max.as_millis() as u32);
        self.rtt_seq = self.snd_una;
        self.snd_nxt = self.snd_una;
        // One byte past the closed window; the peer's next ACK sets it back.
        self.snd_wnd = 1;
        self.arm_rto(now);
        true
    }

    /// Takes a sender slot, if this connection has none; false (the caller
    /// counts it) when the slab is empty.
    pub fn sender_attach(&mut self, pool: &mut BufferPool) -> bool {
        if self.snd_slot == NIL {
            self.snd_slot = pool.senders.acquire();
            let (una, wnd) = (self.snd_una, self.snd_wnd);
            if let Some(s) = self.sender_mut(pool) {
                // Sequence numbers compare modulo 2^32: none may be stale.
                s.snd_sml = una;
                s.max_snd_wnd = wnd;
                s.cubic.hystart.window_end = una;
                s.ecn_end = una;
            }
        }
        self.snd_slot != NIL
    }

    /// Gives the sender slot back once nothing is queued or in flight (or
    /// the connection ends: `force`).
    pub fn sender_detach(&mut self, pool: &mut BufferPool, force: bool) {
        if self.snd_slot != NIL && (force || (self.tx.is_empty() && self.flight() == 0)) {
            pool.senders.release(self.snd_slot);
            self.snd_slot = NIL;
            // Nothing in flight: an ECN reduction's window is over (a CWR
            // still owed stays owed, `flag::ECN_CWR`).
            self.clear(flag::ECN_REDUCING);
        }
    }

    /// The sender state, while this connection holds a slot.
    pub fn sender<'p>(&self, pool: &'p BufferPool) -> Option<&'p SendState> {
        pool.senders.get(self.snd_slot)
    }
    pub fn sender_mut<'p>(&self, pool: &'p mut BufferPool) -> Option<&'p mut SendState> {
        pool.senders.get_mut(self.snd_slot)
    }

    /// The path MTU fell (`endpoint/pmtu.rs`): what is in flight was too
    /// big and is lost; send it again from SND.UNA at the new MSS, untimed
    /// (Karn), without touching the congestion window.
    pub fn pmtu_resend(&mut self) {
        self.snd_nxt = self.snd_una;
        self.rtt_seq = self.snd_una;
        self.clear(flag::RETX_HEAD);
    }

    /// Data waits and the peer's window is closed: the persist case.
    pub fn zero_window_stall(&self) -> bool {
        self.snd_wnd == 0 && !self.tx.is_empty()
    }

    /// Starts keepalive from now (RFC 9293 §3.8.4), if configured and the state uses it.
    pub fn reset_idle(&mut self, now: Instant, cfg: &TcpConfig) {
        self.probes = 0;
        self.idle_at = match (self.state, cfg.keepalive) {
            // Closed by the application: the FIN-WAIT-2 timeout runs, and
            // segments do not extend it.
            (State::FinWait2, _) if self.has(flag::APP_CLOSED) => self.idle_at,
            // FIN-WAIT-2 after `shutdown`: the application still reads, so
            // no FIN-WAIT-2 timeout, but a peer that vanished must not hold
            // the connection for ever: keepalive, as Linux does for a
            // socket that is not orphaned.
            (State::Established | State::CloseWait | State::FinWait2, Some(ka)) => {
                Deadline::at((now + ka.idle).total_millis())
            }
            _ => Deadline::NEVER,
        };
    }
}

const _: () = assert!(core::mem::size_of::<Tcb>() <= 152);

#[cfg(test)]
mod tests {
    #[test]
    fn control_block_is_compact() {
        let tcb = core::mem::size_of::<super::Tcb>();
        let slot = tcb + core::mem::size_of::<crate::flow::FourTuple>() + 4;
        eprintln!("Tcb: {tcb} bytes; with its 4-tuple and generation: {slot} bytes");
        assert!(tcb <= 152);
    }
}
