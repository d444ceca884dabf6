//! The load generator's client side: an application on a floodgate
//! endpoint that opens connections (active open, RFC 9293 §3.10.1) and
//! drives them in one of the modes of `floodgate-load`:
//!
//! - `cps`: connect, one `GET` with `Connection: close`, read the response,
//!   close when the server has closed (the server holds TIME-WAIT);
//! - `rps`: keep-alive connections issuing requests back to back;
//! - `echo`: connections sending messages of a given size and checking the
//!   echo, each connection living for a given number of messages (churn).
//!   When the run stops, each connection sends no new message and closes
//!   once what it sent has come back, so the counts cover the run's duration
//!   and not the drain.
//!
//! With `open_first` (rps, echo), the connections open first and send
//! nothing until all of them are open (or the caller gives up waiting and
//! calls `release`): the measured phase then carries the load of the whole
//! concurrency, and the connects do not compete with it for the client's
//! own RX ring (a SYN-ACK lost there costs the client a 1 s SYN retry).
//!
//! Connect time (SYN sent to ESTABLISHED) and request latency (request
//! written to response complete) go into hdrhistograms, in microseconds.

pub mod busy;
pub mod hold;
pub mod report;
mod response;
pub mod synflood;

use floodgate::app::App;
use floodgate::table::Handle;
use floodgate::tcp::{CloseReason, Endpoint, Event, State};
use floodgate::time::{Duration, Instant};
use hdrhistogram::Histogram;
use response::Compact;
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Cps,
    Rps,
    Echo,
}

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub mode: Mode,
    pub target: SocketAddr,
    /// Source addresses to spread connections over.
    pub sources: Vec<IpAddr>,
    /// First and last source port to use.
    pub ports: (u16, u16),
    /// Next-hop MAC for the target.
    pub next_hop: [u8; 6],
    /// Connections opened per second (`None`: as fast as the cap allows).
    pub rate: Option<u32>,
    /// Connections open at once at most.
    pub concurrency: u32,
    /// Stop opening after this many connections (cps, echo churn).
    pub count: Option<u64>,
    /// The HTTP request path.
    pub path: String,
    /// Echo: bytes per message, messages per connection.
    pub message_size: usize,
    pub messages_per_conn: u32,
    /// rps, echo: send nothing until `concurrency` connections are open.
    pub open_first: bool,
}

/// What a run counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub connects_started: u64,
    pub connects_ok: u64,
    pub connect_errors: u64,
    pub requests: u64,
    pub responses: u64,
    pub bad_responses: u64,
    pub resets: u64,
    pub timeouts: u64,
    pub closed_ok: u64,
    pub echo_bytes: u64,
    pub echo_mismatches: u64,
    pub in_flight: u64,
}

impl Totals {
    pub fn merge(&mut self, o: &Totals) {
        self.connects_started += o.connects_started;
        self.connects_ok += o.connects_ok;
        self.connect_errors += o.connect_errors;
        self.requests += o.requests;
        self.responses += o.responses;
        self.bad_responses += o.bad_responses;
        self.resets += o.resets;
        self.timeouts += o.timeouts;
        self.closed_ok += o.closed_ok;
        self.echo_bytes += o.echo_bytes;
        self.echo_mismatches += o.echo_mismatches;
        self.in_flight += o.in_flight;
    }
}

#[derive(Clone, Copy, Default)]
struct Conn {
    handle: Option<Handle>,
    started: Instant,
    request_at: Instant,
    parser: Compact,
    /// Echo: bytes sent, checked, messages done.
    sent: usize,
    checked: usize,
    messages: u32,
    closing: bool,
}

pub struct LoadApp {
    cfg: LoadConfig,
    conns: Vec<Conn>,
    next_source: usize,
    next_port: u16,
    request: Vec<u8>,
    stopped: bool,
    /// The first requests or messages may go (always, without `open_first`).
    released: bool,
    started_at: Option<Instant>,
    pub totals: Totals,
    pub connect_us: Histogram<u64>,
    pub latency_us: Histogram<u64>,
}

/// The byte at offset `k` of an echo connection's stream.
fn echo_byte(k: usize) -> u8 {
    (k as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2]
}

impl LoadApp {
    pub fn new(cfg: LoadConfig, connections: usize) -> LoadApp {
        let close = if cfg.mode == Mode::Cps { "Connection: close\r\n" } else { "" };
        let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n{close}\r\n", cfg.path, cfg.target.ip()).into_bytes();
        let next_port = cfg.ports.0;
        let released = !cfg.open_first || cfg.mode == Mode::Cps;
        LoadApp {
            cfg,
            conns: vec![Conn::default(); connections],
            next_source: 0,
            next_port,
            request,
            stopped: false,
            released,
            started_at: None,
            totals: Totals::default(),
            connect_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        }
    }

    /// Adds another thread's counts and histograms into this one.
    pub fn merge(&mut self, o: &LoadApp) {
        self.totals.merge(&o.totals);
        let _ = self.connect_us.add(&o.connect_us);
        let _ = self.latency_us.add(&o.latency_us);
    }

    pub fn config(&self) -> &LoadConfig {
        &self.cfg
    }

    /// No new connections from now on; the open ones finish (echo: the
    /// message under way).
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Whether the load is under way (with `open_first`: once every
    /// connection opened, or `release` was called).
    pub fn released(&self) -> bool {
        self.released
    }

    /// Starts the load on every open connection (`open_first`).
    pub fn release(&mut self, ep: &mut Endpoint, now: Instant) {
        if self.released {
            return;
        }
        self.released = true;
        for k in 0..self.conns.len() {
            let Some(h) = self.conns[k].handle else { continue };
            if ep.state(h) != Some(State::Established) {
                continue;
            }
            match self.cfg.mode {
                Mode::Echo => self.pump_echo(ep, h),
                _ => self.send_request(ep, h, now),
            }
        }
    }

    pub fn in_flight(&self) -> u64 {
        self.totals.in_flight
    }

    /// Whether the run has nothing left to do.
    pub fn finished(&self) -> bool {
        let count_done = self.cfg.count.is_some_and(|c| self.totals.connects_started >= c);
        (self.stopped || count_done) && self.totals.in_flight == 0
    }

    fn next_local(&mut self) -> SocketAddr {
        let ip = self.cfg.sources[self.next_source];
        let port = self.next_port;
        self.next_source += 1;
        if self.next_source == self.cfg.sources.len() {
            self.next_source = 0;
            self.next_port = if port >= self.cfg.ports.1 { self.cfg.ports.0 } else { port + 1 };
        }
        SocketAddr::new(ip, port)
    }

    /// Opens connections as the rate and the concurrency cap allow.
    pub fn tick(&mut self, ep: &mut Endpoint, now: Instant) {
        let start = *self.started_at.get_or_insert(now);
        if self.stopped {
            return;
        }
        if !self.released && self.totals.connects_ok >= self.cfg.concurrency as u64 {
            self.release(ep, now);
        }
        let allowed_by_rate = match self.cfg.rate {
            Some(r) => ((now - start).as_micros() as u64 * r as u64 / 1_000_000 + 1)
                .saturating_sub(self.totals.connects_started),
            None => u64::MAX,
        };
        let allowed_by_count = self.cfg.count.map_or(u64::MAX, |c| c.saturating_sub(self.totals.connects_started));
        let room = (self.cfg.concurrency as u64).saturating_sub(self.totals.in_flight);
        let n = allowed_by_rate.min(allowed_by_count).min(room).min(4096);
        let mut tries = 0;
        let mut opened = 0;
        while opened < n && tries < n * 4 {
            tries += 1;
            let local = self.next_local();
            match ep.connect(now, local, self.cfg.target, self.cfg.next_hop) {
                Ok(h) => {
                    self.conns[h.index() as usize] =
                        Conn { handle: Some(h), started: now, parser: Compact::default(), ..Conn::default() };
                    self.totals.connects_started += 1;
                    self.totals.in_flight += 1;
                    opened += 1;
                }
                // The tuple is still in use: try the next one.
                Err(floodgate::tcp::Error::InUse) => continue,
                Err(_) => {
                    self.totals.connect_errors += 1;
                    break;
                }
            }
        }
    }

    fn conn(&mut self, h: Handle) -> Option<&mut Conn> {
        self.conns.get_mut(h.index() as usize).filter(|c| c.handle == Some(h))
    }

    fn send_request(&mut self, ep: &mut Endpoint, h: Handle, now: Instant) {
        if ep.write(h, &self.request) == Ok(self.request.len()) {
            self.totals.requests += 1;
            if let Some(c) = self.conn(h) {
                c.request_at = now;
                c.parser = Compact::default();
            }
        } else {
            self.totals.bad_responses += 1;
            let _ = ep.abort(h);
            self.finish(h);
        }
    }

    fn read_http(&mut self, ep: &mut Endpoint, h: Handle, now: Instant) {
        let Some(c) = self.conn(h) else { return };
        let mut parser = c.parser;
        let (complete, bad) = response::read_response(ep, h, |d| parser.feed(d));
        let Some(c) = self.conn(h) else { return };
        c.parser = parser;
        if bad {
            self.totals.bad_responses += 1;
            let _ = ep.abort(h);
            self.finish(h);
            return;
        }
        if complete {
            let took = now - c.request_at;
            let _ = self.latency_us.record(took.as_micros().max(1) as u64);
            self.totals.responses += 1;
            match self.cfg.mode {
                Mode::Rps if !self.stopped => self.send_request(ep, h, now),
                Mode::Rps => {
                    let _ = ep.close(h);
                }
                // cps: the server closes; we close when its FIN arrives.
                _ => {}
            }
        }
    }

    fn pump_echo(&mut self, ep: &mut Endpoint, h: Handle) {
        let size = self.cfg.message_size;
        let per_conn = self.cfg.messages_per_conn.max(1);
        let Some(c) = self.conn(h) else { return };
        let mut st = *c;
        let checked_before = st.checked;
        let mut mismatch = false;
        while ep.readable(h) > 0 {
            let _ = ep.recv(h, |data| {
                for (k, &b) in data.iter().enumerate() {
                    mismatch |= b != echo_byte(st.checked + k);
                }
                st.checked += data.len();
                data.len()
            });
        }
        let target = if self.stopped { st.sent } else { size * per_conn as usize };
        let mut buf = [0u8; 4096];
        while st.sent < target && st.sent < st.checked + size {
            let n = (target - st.sent).min(buf.len()).min(ep.writable(h)).min(st.checked + size - st.sent);
            if n == 0 {
                break;
            }
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = echo_byte(st.sent + k);
            }
            // Short of buffer chunks (the pool ran dry) a write takes
            // nothing though `writable` showed room: a `Writable` follows
            // when a chunk frees up.
            match ep.write(h, &buf[..n]) {
                Ok(0) | Err(_) => break,
                Ok(w) => st.sent += w,
            }
        }
        let done_msgs = (st.checked / size.max(1)) as u32;
        let new_msgs = done_msgs.saturating_sub(st.messages);
        st.messages = done_msgs;
        if st.checked >= target && !st.closing {
            st.closing = true;
            let _ = ep.close(h);
        }
        self.totals.responses += new_msgs as u64;
        self.totals.echo_bytes += (st.checked - checked_before) as u64;
        if mismatch {
            self.totals.echo_mismatches += 1;
        }
        if let Some(c) = self.conn(h) {
            *c = st;
        }
    }

    fn finish(&mut self, h: Handle) {
        if let Some(c) = self.conn(h) {
            c.handle = None;
            self.totals.in_flight -= 1;
        }
    }
}

impl App for LoadApp {
    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, ev: Event) {
        match ev {
            Event::Connected(h) => {
                let Some(c) = self.conn(h) else { return };
                let took = now - c.started;
                let _ = self.connect_us.record(took.as_micros().max(1) as u64);
                self.totals.connects_ok += 1;
                if !self.released {
                    return;
                }
                match self.cfg.mode {
                    Mode::Cps | Mode::Rps => self.send_request(ep, h, now),
                    Mode::Echo => self.pump_echo(ep, h),
                }
            }
            Event::Readable(h) | Event::Writable(h) => match self.cfg.mode {
                Mode::Echo => self.pump_echo(ep, h),
                _ if matches!(ev, Event::Readable(_)) => self.read_http(ep, h, now),
                _ => {}
            },
            Event::PeerClosed(h) => {
                if self.cfg.mode != Mode::Echo {
                    self.read_http(ep, h, now);
                } else {
                    self.pump_echo(ep, h);
                }
                let _ = ep.close(h);
            }
            Event::Closed(h, reason) => {
                if self.conn(h).is_none() {
                    return;
                }
                match reason {
                    CloseReason::Normal => self.totals.closed_ok += 1,
                    CloseReason::Reset | CloseReason::Aborted => self.totals.resets += 1,
                    CloseReason::Refused => self.totals.connect_errors += 1,
                    _ => self.totals.timeouts += 1,
                }
                self.finish(h);
            }
            Event::Accepted(h) => {
                let _ = ep.abort(h);
            }
            // The load generator sets no deadlines.
            Event::Deadline(_) => {}
        }
    }
}

/// How long to wait at most for connections to finish after the run.
pub const DRAIN: Duration = Duration::from_secs(10);
