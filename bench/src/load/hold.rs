//! `floodgate-load hold`: many idle keep-alive connections held open, and
//! the measured loads running beside them.
//!
//! The run has phases, which the caller switches ([`HoldApp::set_phase`]):
//! - `Ramp`: `held` connections open (at most `open_concurrency` of them
//!   between SYN and their first response); each sends one request at once,
//!   and counts as held when its response is in.
//! - `Hold`: the measured phase. Beside the held connections' keep-alive
//!   requests, `rps_conns` of them at a time issue `burst` requests back to
//!   back and then go back to idle, the next idle ones taking over (a
//!   cursor over the held connections), and `cps_conns` connections at a
//!   time run `GET` with `Connection: close` (the server closes and holds
//!   the TIME-WAIT).
//! - `Verify`: no new burst or close connection; every held connection
//!   gets one more request, and the count of those answered is the check
//!   that every held connection still answers.
//!
//! Keep-alive: a cursor sweeps the connection slots once every `interval`,
//! from the start of the ramp; an idle held connection it meets gets a
//! request, one whose previous keep-alive request is still unanswered a
//! whole interval later is counted late (an error). No request overlaps
//! another on one connection: a connection is in exactly one phase.
//!
//! Per-connection state is a 28-byte [`Slot`], indexed by the engine's slot
//! index (the handle kept in it tells a stale event from a live one), with
//! a response reader of 12 bytes ([`Compact`]): 4 M held connections cost
//! 112 MB here beside the engine's own tables.

use super::response::Compact;
use floodgate::app::App;
use floodgate::table::Handle;
use floodgate::tcp::{CloseReason, Endpoint, Event};
use floodgate::time::{Duration, Instant};
use std::net::{IpAddr, SocketAddr};

/// Where a connection is in its life; each holds at most one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    #[default]
    Empty,
    /// SYN sent.
    Connecting,
    /// Held: the first request is out.
    Opening,
    Idle,
    /// Held: a keep-alive request is out.
    Ping,
    /// Held: requests back to back (`burst_left` more after this one).
    Burst,
    /// Held: the last request of the run is out.
    Verify,
    /// A `Connection: close` request is out or answered (`burst_left` 1: answered).
    Close,
}

/// One connection of the client: 28 bytes.
#[derive(Clone, Copy, Default)]
struct Slot {
    handle: Option<Handle>,
    phase: Phase,
    held: bool,
    burst_left: u16,
    parser: Compact,
}

/// The phase of the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunPhase {
    Ramp,
    Hold,
    Verify,
}

#[derive(Clone, Debug)]
pub struct HoldConfig {
    pub target: SocketAddr,
    /// Source addresses; held connection `i` is `(sources[i % S], held_ports.0 + i / S)`.
    pub sources: Vec<IpAddr>,
    /// Source addresses of the `Connection: close` connections, likewise with `close_ports`.
    pub close_sources: Vec<IpAddr>,
    /// Ports of the held connections, and of the `Connection: close` ones.
    pub held_ports: (u16, u16),
    pub close_ports: (u16, u16),
    pub next_hop: [u8; 6],
    /// Connections to hold.
    pub held: u32,
    /// Each held connection gets a request this often.
    pub interval: Duration,
    /// Held connections issuing requests back to back at a time, and how many each.
    pub rps_conns: u32,
    pub burst: u16,
    /// `Connection: close` connections at a time.
    pub cps_conns: u32,
    /// Held connections opening (or verifying) at a time.
    pub open_concurrency: u32,
    pub path: String,
}

/// What the run counted so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldTotals {
    /// Held connections now (established, first response in, not lost).
    pub held: u64,
    /// Held connections ever opened (first response in).
    pub opened: u64,
    /// Keep-alive requests answered (including the first on each held connection).
    pub pings: u64,
    /// Burst requests answered (the measured keep-alive rate).
    pub rps: u64,
    /// `Connection: close` connections complete: response in, closed cleanly.
    pub cps: u64,
    /// Held connections that answered the last request (`Verify`).
    pub verified: u64,
    pub connect_errors: u64,
    pub resets: u64,
    pub timeouts: u64,
    pub bad_responses: u64,
    /// Held connections lost after they were held (closed, reset, FIN from the server).
    pub held_lost: u64,
    /// Keep-alive requests still unanswered a whole interval later.
    pub late: u64,
    /// Requests that did not fit the send buffer.
    pub write_failed: u64,
}

impl HoldTotals {
    pub fn errors(&self) -> u64 {
        self.connect_errors
            + self.resets
            + self.timeouts
            + self.bad_responses
            + self.held_lost
            + self.late
            + self.write_failed
    }
}

pub struct HoldApp {
    cfg: HoldConfig,
    slots: Vec<Slot>,
    keepalive_req: Vec<u8>,
    close_req: Vec<u8>,
    phase: RunPhase,
    /// Next held connection's index (its tuple), and how many are opening.
    next_held: u64,
    opening: u32,
    /// Next `Connection: close` tuple, and how many are under way.
    next_close: u64,
    closing: u32,
    bursting: u32,
    burst_cursor: usize,
    /// The keep-alive sweep: since when, and slots visited.
    sweep_start: Option<Instant>,
    swept: u64,
    stride: u64,
    /// Verify: the cursor, and the requests out.
    verify_cursor: usize,
    verifying: u32,
    pub totals: HoldTotals,
}

impl HoldApp {
    /// `connections`: the endpoint's connection capacity (its slot count).
    pub fn new(cfg: HoldConfig, connections: usize) -> HoldApp {
        let host = cfg.target.ip();
        let keepalive_req = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n", cfg.path).into_bytes();
        let close_req = format!("GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", cfg.path).into_bytes();
        HoldApp {
            cfg,
            slots: vec![Slot::default(); connections],
            keepalive_req,
            close_req,
            phase: RunPhase::Ramp,
            next_held: 0,
            opening: 0,
            next_close: 0,
            closing: 0,
            bursting: 0,
            burst_cursor: 0,
            sweep_start: None,
            swept: 0,
            stride: coprime_stride(connections as u64),
            verify_cursor: 0,
            verifying: 0,
            totals: HoldTotals::default(),
        }
    }

    pub fn phase(&self) -> RunPhase {
        self.phase
    }

    pub fn set_phase(&mut self, p: RunPhase) {
        self.phase = p;
    }

    /// The ramp is over: every held connection opened, or no tuple is left.
    pub fn ramp_done(&self) -> bool {
        self.opening == 0 && (self.totals.opened >= self.cfg.held as u64 || self.held_tuples_left() == 0)
    }

    /// The verify sweep is over.
    pub fn verify_done(&self) -> bool {
        self.phase == RunPhase::Verify
            && self.verify_cursor >= self.slots.len()
            && self.verifying == 0
            && self.bursting == 0
            && self.closing == 0
    }

    /// Held connections opening now (SYN sent or first request out).
    pub fn opening(&self) -> u32 {
        self.opening
    }

    fn held_tuples_left(&self) -> u64 {
        let (lo, hi) = self.cfg.held_ports;
        let all = (hi as u64 + 1 - lo as u64) * self.cfg.sources.len() as u64;
        all.saturating_sub(self.next_held)
    }

    fn tuple(&self, i: u64, held: bool) -> SocketAddr {
        let (sources, ports) = if held {
            (&self.cfg.sources, self.cfg.held_ports)
        } else {
            (&self.cfg.close_sources, self.cfg.close_ports)
        };
        let s = sources.len() as u64;
        let span = ports.1 as u64 + 1 - ports.0 as u64;
        let port = ports.0 as u64 + (i / s) % span;
        SocketAddr::new(sources[(i % s) as usize], port as u16)
    }

    fn slot(&mut self, h: Handle) -> Option<&mut Slot> {
        self.slots.get_mut(h.index() as usize).filter(|s| s.handle == Some(h))
    }

    fn connect(&mut self, ep: &mut Endpoint, now: Instant, held: bool) -> bool {
        let i = if held { self.next_held } else { self.next_close };
        let local = self.tuple(i, held);
        if held {
            self.next_held += 1;
        } else {
            self.next_close += 1;
        }
        match ep.connect(now, local, self.cfg.target, self.cfg.next_hop) {
            Ok(h) => {
                self.slots[h.index() as usize] =
                    Slot { handle: Some(h), phase: Phase::Connecting, held, ..Slot::default() };
                if held {
                    self.opening += 1;
                } else {
                    self.closing += 1;
                }
                true
            }
            // The tuple is still in use (a slow close): the next one.
            Err(floodgate::tcp::Error::InUse) => true,
            Err(_) => {
                self.totals.connect_errors += 1;
                false
            }
        }
    }

    fn request(&mut self, ep: &mut Endpoint, h: Handle, phase: Phase) {
        // The phase first: a failed write ends the connection in it.
        let Some(s) = self.slot(h) else { return };
        s.phase = phase;
        s.parser = Compact::default();
        let req = if phase == Phase::Close { &self.close_req } else { &self.keepalive_req };
        if ep.write(h, req) != Ok(req.len()) {
            self.totals.write_failed += 1;
            let _ = ep.abort(h);
            self.gone(h);
        }
    }

    /// The connection is dead to us: its counts and its slot.
    fn gone(&mut self, h: Handle) {
        let Some(s) = self.slot(h) else { return };
        let st = *s;
        *s = Slot::default();
        match st.phase {
            Phase::Close => self.closing -= 1,
            Phase::Connecting | Phase::Opening if st.held => self.opening -= 1,
            Phase::Connecting => self.closing -= 1,
            Phase::Burst => self.bursting -= 1,
            Phase::Verify => self.verifying -= 1,
            _ => {}
        }
        if st.held && !matches!(st.phase, Phase::Connecting | Phase::Opening) {
            self.totals.held -= 1;
        }
    }

    fn on_response(&mut self, ep: &mut Endpoint, h: Handle) {
        let Some(s) = self.slot(h) else { return };
        let (phase, burst_left) = (s.phase, s.burst_left);
        let s = &mut self.slots[h.index() as usize];
        match phase {
            Phase::Opening => {
                s.phase = Phase::Idle;
                self.opening -= 1;
                self.totals.opened += 1;
                self.totals.held += 1;
                self.totals.pings += 1;
            }
            Phase::Ping => {
                s.phase = Phase::Idle;
                self.totals.pings += 1;
            }
            Phase::Burst => {
                self.totals.rps += 1;
                if burst_left > 0 && self.phase == RunPhase::Hold {
                    s.burst_left -= 1;
                    self.request(ep, h, Phase::Burst);
                } else {
                    s.phase = Phase::Idle;
                    self.bursting -= 1;
                }
            }
            Phase::Verify => {
                s.phase = Phase::Idle;
                self.verifying -= 1;
                self.totals.verified += 1;
            }
            // The server closes next; we close when its FIN is in.
            Phase::Close => s.burst_left = 1,
            _ => {}
        }
    }

    fn read(&mut self, ep: &mut Endpoint, h: Handle) {
        let Some(s) = self.slot(h) else { return };
        let mut parser = s.parser;
        let (complete, bad) = super::response::read_response(ep, h, |d| parser.feed(d));
        let Some(s) = self.slot(h) else { return };
        s.parser = parser;
        let waiting = matches!(s.phase, Phase::Opening | Phase::Ping | Phase::Burst | Phase::Verify)
            || (s.phase == Phase::Close && s.burst_left == 0);
        if bad || (complete && !waiting) || (!waiting && ep.readable(h) > 0) {
            self.totals.bad_responses += 1;
            let _ = ep.abort(h);
            self.gone(h);
            return;
        }
        if complete {
            self.on_response(ep, h);
        }
    }

    /// Ramp: open held connections up to the concurrency cap.
    fn ramp(&mut self, ep: &mut Endpoint, now: Instant) {
        let mut budget = 4096;
        while budget > 0
            && self.opening < self.cfg.open_concurrency
            && self.totals.opened + (self.opening as u64) < self.cfg.held as u64
            && self.held_tuples_left() > 0
        {
            budget -= 1;
            if !self.connect(ep, now, true) {
                break;
            }
        }
    }

    /// The keep-alive sweep: the slots due by now.
    fn sweep(&mut self, ep: &mut Endpoint, now: Instant) {
        let start = *self.sweep_start.get_or_insert(now);
        let n = self.slots.len() as u64;
        let per = self.cfg.interval.as_micros().max(1) as u64;
        let due = ((now - start).as_micros() as u64 * n / per).saturating_sub(self.swept).min(4096);
        for _ in 0..due {
            // A stride coprime with n: every slot once per interval, and the
            // held connections (which fill the first slots) spread over it.
            let i = (self.swept % n * self.stride % n) as usize;
            self.swept += 1;
            let s = self.slots[i];
            if !s.held {
                continue;
            }
            match s.phase {
                Phase::Idle => self.request(ep, s.handle.expect("a held slot has a handle"), Phase::Ping),
                Phase::Ping => self.totals.late += 1,
                _ => {}
            }
        }
    }

    /// Hold: keep `rps_conns` bursts and `cps_conns` close connections going.
    fn load(&mut self, ep: &mut Endpoint, now: Instant) {
        let n = self.slots.len();
        let mut scan = n.min(65536);
        while self.bursting < self.cfg.rps_conns && scan > 0 {
            scan -= 1;
            let i = self.burst_cursor;
            self.burst_cursor = (i + 1) % n;
            let s = self.slots[i];
            if s.held && s.phase == Phase::Idle {
                self.slots[i].burst_left = self.cfg.burst.saturating_sub(1);
                self.bursting += 1;
                self.request(ep, s.handle.expect("a held slot has a handle"), Phase::Burst);
            }
        }
        let mut budget = 1024;
        while self.closing < self.cfg.cps_conns && budget > 0 {
            budget -= 1;
            if !self.connect(ep, now, false) {
                break;
            }
        }
    }

    /// Verify: one request on every held connection, `open_concurrency` at a time.
    fn verify(&mut self, ep: &mut Endpoint) {
        let mut scan = 65536;
        while self.verify_cursor < self.slots.len() && self.verifying < self.cfg.open_concurrency && scan > 0 {
            scan -= 1;
            let i = self.verify_cursor;
            let s = self.slots[i];
            if s.held {
                match s.phase {
                    Phase::Idle => {
                        self.verifying += 1;
                        self.request(ep, s.handle.expect("a held slot has a handle"), Phase::Verify);
                    }
                    // A request is out: come back when it is answered.
                    Phase::Ping | Phase::Burst | Phase::Opening | Phase::Connecting => return,
                    _ => {}
                }
            }
            self.verify_cursor += 1;
        }
    }
}

impl App for HoldApp {
    fn on_event(&mut self, ep: &mut Endpoint, _now: Instant, ev: Event) {
        match ev {
            Event::Connected(h) => {
                let Some(s) = self.slot(h) else { return };
                let phase = if s.held { Phase::Opening } else { Phase::Close };
                self.request(ep, h, phase);
            }
            Event::Readable(h) => self.read(ep, h),
            Event::Writable(_) | Event::Deadline(_) => {}
            Event::PeerClosed(h) => {
                self.read(ep, h);
                let Some(s) = self.slot(h) else { return };
                if s.held {
                    // The server ended a held connection (its keep-alive timeout?).
                    self.totals.held_lost += 1;
                    let _ = ep.abort(h);
                    self.gone(h);
                } else {
                    let _ = ep.close(h);
                }
            }
            Event::Closed(h, reason) => {
                let Some(s) = self.slot(h) else { return };
                let st = *s;
                let was_held = st.held && !matches!(st.phase, Phase::Connecting | Phase::Opening);
                match reason {
                    _ if was_held => self.totals.held_lost += 1,
                    CloseReason::Normal if st.phase == Phase::Close && st.burst_left == 1 => self.totals.cps += 1,
                    CloseReason::Normal => self.totals.bad_responses += 1,
                    CloseReason::Reset | CloseReason::Aborted => self.totals.resets += 1,
                    CloseReason::Refused => self.totals.connect_errors += 1,
                    _ => self.totals.timeouts += 1,
                }
                self.gone(h);
            }
            Event::Accepted(h) => {
                let _ = ep.abort(h);
            }
        }
    }

    fn tick(&mut self, ep: &mut Endpoint, now: Instant) {
        match self.phase {
            RunPhase::Ramp => {
                self.ramp(ep, now);
                self.sweep(ep, now);
            }
            RunPhase::Hold => {
                self.sweep(ep, now);
                self.load(ep, now);
            }
            RunPhase::Verify => self.verify(ep),
        }
    }
}

/// A step near n / golden ratio that shares no factor with `n`.
fn coprime_stride(n: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let mut s = (n * 618 / 1000).max(1);
    while gcd(s, n.max(1)) != 1 {
        s += 1;
    }
    s
}

/// Resident memory (`VmRSS`) of a process in bytes, from `/proc/PID/status`
/// (`None`: self).
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    let s = std::fs::read_to_string(path).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line["VmRSS:".len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// The newest process whose name (`/proc/PID/comm`) is `name`.
pub fn find_process(name: &str) -> Option<u32> {
    let mut best: Option<(u64, u32)> = None;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().as_deref().map(str::trim) != Some(name) {
            continue;
        }
        // Field 22 of /proc/PID/stat: start time, after the parenthesised name.
        let start = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|st| st.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(19)?.parse().ok()))
            .unwrap_or(0);
        if best.is_none_or(|(s, _)| start >= s) {
            best = Some((start, pid));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_of_this_process() {
        let me = rss_bytes(None).expect("VmRSS of self");
        assert!(me > 0);
        assert_eq!(rss_bytes(Some(std::process::id())).map(|r| r > 0), Some(true));
        let name = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(find_process(name.trim()), Some(std::process::id()), "this test process is the newest of its name");
    }

    #[test]
    fn the_sweep_visits_every_slot_once_per_round() {
        for n in [1u64, 2, 7, 1000, 6632, 65536] {
            let s = coprime_stride(n);
            let mut seen = vec![false; n as usize];
            for k in 0..n {
                seen[(k * s % n) as usize] = true;
            }
            assert!(seen.iter().all(|&x| x), "n {n} stride {s}");
        }
    }

    #[test]
    fn per_connection_state_is_small() {
        assert_eq!(std::mem::size_of::<Slot>(), 28);
    }
}
