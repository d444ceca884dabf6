//! `proxy`: a terminating TCP proxy. Every client connection the listener
//! accepts is paired with an active open from floodgate to a backend
//! (round-robin over the listener's backends, from a source address and
//! port of [`source::Sources`]), and bytes are spliced both ways inside the
//! shard, both connections on the same endpoint.
//!
//! - Until the backend connection is up the client's bytes stay in its
//!   receive buffer, so its window bounds them (RFC 9293 §3.8.6).
//! - A backend that refuses (RST) or does not answer within the connect
//!   timeout is retried once on the next backend; then the client is reset.
//! - Backpressure: bytes are taken from one side's receive buffer only as
//!   far as the other side's send buffer has room, so a slow reader closes
//!   the writer's window end to end; a pair holds at most its buffers.
//! - A FIN from one side becomes a shutdown (FIN) towards the other once its
//!   bytes are through (half-close, RFC 9293 §3.6), and the other direction
//!   flows on. An RST or a timeout on one side resets the other (§3.10.5).
//! - An idle timeout (on the client side, pushed back whenever bytes move)
//!   reclaims abandoned pairs.
//! - PROXY protocol v2 ([`ppv2`]) is written as the backend's first bytes
//!   when the listener asks for it.
//! - Health: passive ejection after connect failures in a row ([`Eject`]),
//!   and active checks ([`check`]): a backend out by either takes no new
//!   client, and its connections go on.
//!
//! State lives in one array indexed by connection slot (`Handle::index`),
//! sized to the connection table at start-up: each side knows its peer, so
//! the array is the pair table. Nothing allocates per connection or per byte.

pub mod balance;
pub mod check;
pub mod latency;
pub mod maglev;
pub mod ppv2;
pub mod source;

#[cfg(test)]
mod tests;

use super::{App, Order};
use crate::counters::counters;
use crate::flow::FourTuple;
use crate::table::Handle;
use crate::tcp::{CloseReason, Endpoint, Error, Event, TupleUse};
use crate::time::{Duration, Instant};
use balance::{Algorithm, Balancer};
use check::{Check, CheckState};
use source::{Sources, PROBES};
use std::net::SocketAddr;
use std::sync::Arc;

/// Bytes moved per copy, through a stack buffer.
const CHUNK: usize = 16 * 1024;
/// Backends tried per client: the first, and one retry on the next.
pub const MAX_ATTEMPTS: u8 = 2;
/// Default time a backend gets to answer the SYN.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default idle timeout of a pair (nginx stream's `proxy_timeout`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

counters! {
    /// What the proxy of one shard has seen and done.
    pub struct ProxyStats {
        /// Client connections accepted.
        clients_accepted,
        /// Active opens to backends started (first tries and retries).
        backend_connects,
        /// Active opens that completed.
        backend_connected,
        /// Active opens refused by the backend (RST), or given up by TCP.
        backend_refused,
        /// Active opens that got no answer within the connect timeout.
        backend_connect_timeouts,
        /// Second tries on the next backend.
        backend_retries,
        /// Clients reset because no backend could be reached.
        clients_reset_no_backend,
        /// New clients for which the balancer had no backend (every one
        /// ejected or of weight 0): reset at once.
        no_backend_available,
        /// Backends ejected after consecutive connect failures (passive health).
        backend_ejections,
        /// Ejected backends given new clients again after their ejection time.
        backend_readmissions,
        /// Connect failures that would have ejected their backend but for
        /// the pool's most backends out already (`--eject-max-percent`):
        /// the backend keeps taking clients.
        backend_ejections_capped,
        /// Active opens refused: no free source address and port among the candidates tried.
        source_ports_exhausted,
        /// Active opens from a source port whose reply the NIC's RSS hash
        /// puts on this shard's own queue (key and table read at start).
        source_ports_by_hash,
        /// Active opens from a source port whose reply lands on another
        /// shard's queue (none of the candidates tried hashed here): the
        /// replies are handed over between shards.
        source_ports_fallback,
        /// Source candidates skipped: the 4-tuple held by a connection.
        source_tuples_in_use,
        /// Source candidates skipped: the 4-tuple in our TIME-WAIT table (2MSL not over).
        source_tuples_in_time_wait,
        /// Active opens refused: the connection table is full.
        backend_table_full,
        /// PROXY protocol v2 headers sent.
        proxy_headers_sent,
        /// Pairs whose backend side connected.
        pairs_opened,
        /// Pairs whose both sides are gone (opened minus ended: the pairs active).
        pairs_ended,
        /// Bytes moved from clients to backends (PROXY headers not included).
        bytes_client_to_backend,
        /// Bytes moved from backends to clients.
        bytes_backend_to_client,
        /// Client FINs passed on to the backend (half-close).
        fins_to_backend,
        /// Backend FINs passed on to the client.
        fins_to_client,
        /// Clients reset because their backend side was reset or timed out.
        resets_to_client,
        /// Backends reset because their client side was reset or timed out.
        resets_to_backend,
        /// Pairs reset after the idle timeout with nothing moving.
        idle_timeouts,
        /// Times a copy stopped with bytes waiting and no send space on the other side (backpressure).
        send_blocked,
        /// Writes refused or short (a PROXY header without buffer space).
        write_errors,
        /// Connections of a drained backend ended on the operator's order
        /// (a FIN towards the backend at its time within the window).
        retired,
        /// Active health checks started (TCP connects to a backend).
        health_checks,
        /// Health checks refused (RST) or unanswered within the check timeout.
        health_check_failures,
        /// Health checks not started: no free source tuple, or the table full.
        health_checks_not_started,
        /// Backends taken out by their checks (fall failures in a row).
        backends_marked_down,
        /// Backends brought back by their checks (rise passes in a row).
        backends_marked_up,
        /// Events for a connection the proxy does not know (stale or already reset).
        stale_events,
    }
}

/// One backend and the MAC address its frames go to (the next hop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    pub addr: SocketAddr,
    pub mac: [u8; 6],
    /// Its share of new clients; 0: none (drained).
    pub weight: u32,
}

/// The backends of one listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    pub backends: Vec<Backend>,
    /// Send a PROXY protocol v2 header first.
    pub proxy_protocol: bool,
    /// How a new client's backend is chosen.
    pub balance: Algorithm,
    /// The Maglev table (`Algorithm::Maglev`), shared by the shards.
    pub maglev: Option<Arc<maglev::Table>>,
}

/// The proxy's settings for one shard.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The pools; a client's pool is its listener's (`listener_pools`).
    pub pools: Vec<Pool>,
    /// By listener, in the order the endpoint's listeners were created: the
    /// index of its pool. Empty: listener `i` takes pool `i`; a listener
    /// beyond either list uses the last pool.
    pub listener_pools: Vec<u16>,
    pub sources: Sources,
    pub connect_timeout: Duration,
    /// `None`: no idle timeout.
    pub idle_timeout: Option<Duration>,
    /// `None`: backends are never ejected.
    pub eject: Option<Eject>,
    /// Active health checks; `None`: off.
    pub check: Option<Check>,
    /// What a check asks (the handshake, or an HTTP answer).
    pub probe: check::Probe,
    /// The NIC's RSS and this shard's queue, when known: source ports are
    /// chosen so that the backend's reply hashes to this queue.
    pub rss: Option<RssChoice>,
}

/// Where the NIC puts a reply, and the queue this shard serves.
#[derive(Clone, Debug)]
pub struct RssChoice {
    pub steering: Arc<crate::link::rss::Steering>,
    pub queue: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct Side {
    handle: Option<Handle>,
    peer: Option<Handle>,
    backend: bool,
    /// Client: always; backend: `Connected` seen.
    connected: bool,
    /// An active health check's connection (no client, no bytes).
    check: bool,
    /// Backend: when its SYN went out (for the connect latency).
    opened_at: Instant,
    /// Client: when its pair is to end (a retired backend); its deadline
    /// is the earlier of this and the idle timeout.
    retire_at: Option<Instant>,
    /// The backend connected: this side belongs to an opened pair.
    paired: bool,
    /// The peer of this connection sent FIN (`PeerClosed`).
    fin_in: bool,
    /// We shut down this connection's sending side.
    shut: bool,
    /// Client: backends tried so far, and the last one (index in the pool);
    /// backend: the backend's index (for least-conn's counts).
    attempts: u8,
    tried: u16,
    pool: u16,
}

struct PoolState {
    pool: Pool,
    balancer: Balancer,
    /// Per backend: passive health.
    health: Vec<Health>,
    /// Per backend: its figures.
    figures: Vec<BackendStats>,
    /// Backends ejected now.
    ejected: u32,
    eject: Option<Eject>,
    /// Per backend: the source cursor.
    cursors: Vec<u64>,
    /// Per backend: its active checks (unused without `check`).
    checks: Vec<CheckState>,
    check: Option<Check>,
    /// An HTTP check's bytes, per backend (its Host), with a PROXY v2
    /// `LOCAL` header first where the pool sends headers; empty for a
    /// TCP check. Built at start.
    check_requests: Vec<Vec<u8>>,
    /// The status an HTTP check expects (`None`: 2xx or 3xx).
    check_expect: Option<u16>,
}

/// Passive health checking: a backend that fails `after` connects in a row
/// (refused, or silent for the connect timeout) takes no new client for
/// `time`, doubled on each ejection in a row up to 8x (as Envoy's outlier
/// detection lengthens `base_ejection_time`); a connect that succeeds
/// clears both counts. Each shard judges from its own connects. At most
/// `max_percent` of a pool's backends of weight above 0 are out at once,
/// and at least one may be (Envoy's `max_ejection_percent`), so a fault
/// that makes every connect fail for a while (the backends' own overload,
/// a tuple conflict with their TIME-WAIT) cannot empty a pool of several
/// and turn every client away; the active checks take out the rest of a
/// real outage. (A pool of one can still be emptied, as in Envoy; backends
/// held down by their checks are not counted here.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eject {
    pub after: u16,
    pub time: Duration,
    pub max_percent: u8,
}

/// Default: 5 failures in a row eject for 30 s, at most 10 % of the pool
/// (Envoy's consecutive gateway-failure defaults).
pub const EJECT: Eject = Eject { after: 5, time: Duration::from_secs(30), max_percent: 10 };

impl Eject {
    /// The most backends of a pool of `n` that may be ejected at once.
    pub fn cap(&self, n: usize) -> u32 {
        ((n * self.max_percent as usize / 100) as u32).max(1)
    }
}

/// One backend's figures on one shard, for the per-backend metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Active opens started.
    pub connects: u64,
    /// Active opens refused or unanswered.
    pub connect_failures: u64,
    /// Connections to it now (from the active open to the end).
    pub active: u64,
    pub ejections: u64,
    /// Taking new clients now: weight above 0 and not ejected.
    pub up: bool,
    /// Its weight now (0: drained).
    pub weight: u32,
    pub bytes_to: u64,
    pub bytes_from: u64,
    /// Active health checks started, and those failed.
    pub checks: u64,
    pub check_failures: u64,
    /// Handshake times of the connects that completed.
    pub connect_latency: latency::ConnectLatency,
}

#[derive(Clone, Copy, Debug, Default)]
struct Health {
    fails: u16,
    /// Ejections in a row, for the back-off.
    ejections: u8,
    until: Option<Instant>,
}

impl PoolState {
    fn new(pool: Pool, eject: Option<Eject>, check: Option<Check>, probe: &check::Probe) -> PoolState {
        let weights: Vec<u32> = pool.backends.iter().map(|b| b.weight).collect();
        let check_expect = match probe {
            check::Probe::Http { expect, .. } => *expect,
            check::Probe::Connect => None,
        };
        let check_requests = pool.backends.iter().map(|b| check_request(probe, &pool, b.addr)).collect();
        PoolState {
            check_requests,
            check_expect,
            checks: vec![CheckState::new(Instant::ZERO); pool.backends.len()],
            check,
            balancer: Balancer::new(pool.balance, &weights, pool.maglev.clone()),
            cursors: vec![0; pool.backends.len()],
            health: vec![Health::default(); pool.backends.len()],
            figures: vec![BackendStats::default(); pool.backends.len()],
            ejected: 0,
            eject,
            pool,
        }
    }

    /// New ejection and check settings (a reload). A backend held out by
    /// a mechanism now off is readmitted; one failing checks that stay on
    /// stays out until it passes them.
    fn set_health(&mut self, eject: Option<Eject>, check: Option<Check>, probe: &check::Probe) {
        self.check_expect = match probe {
            check::Probe::Http { expect, .. } => *expect,
            check::Probe::Connect => None,
        };
        self.check_requests = self.pool.backends.iter().map(|b| check_request(probe, &self.pool, b.addr)).collect();
        if check.is_none() {
            for c in &mut self.checks {
                c.up = true;
            }
        }
        if eject.is_none() {
            for h in &mut self.health {
                *h = Health::default();
            }
            self.ejected = 0;
        }
        self.check = check;
        self.eject = eject;
        for i in 0..self.pool.backends.len() {
            self.refresh(i);
        }
    }

    /// Backends whose ejection time is over take new clients again
    /// (unless their checks hold them out).
    fn readmit(&mut self, now: Instant, stats: &mut ProxyStats) {
        if self.ejected == 0 {
            return;
        }
        for i in 0..self.health.len() {
            let h = &mut self.health[i];
            if h.until.is_some_and(|u| u <= now) {
                h.until = None;
                h.fails = 0;
                self.ejected -= 1;
                self.refresh(i);
                stats.backend_readmissions += 1;
            }
        }
    }

    /// Backend `i` takes new clients while neither ejected nor failing its
    /// checks (its weight is the balancer's own affair).
    fn refresh(&mut self, i: usize) {
        let ejected = self.health.get(i).is_some_and(|h| h.until.is_some());
        let checked_down = self.checks.get(i).is_some_and(|c| !c.up);
        self.balancer.set_available(i, !ejected && !checked_down);
    }

    fn connect_failed(&mut self, i: usize, now: Instant, stats: &mut ProxyStats) {
        if let Some(f) = self.figures.get_mut(i) {
            f.connect_failures += 1;
        }
        // The pool's share counts the backends that take clients at all.
        let n = self.pool.backends.iter().filter(|b| b.weight > 0).count();
        let (Some(e), Some(h)) = (self.eject, self.health.get_mut(i)) else { return };
        h.fails = h.fails.saturating_add(1);
        if h.fails >= e.after && h.until.is_none() && self.ejected >= e.cap(n) {
            stats.backend_ejections_capped += 1;
        } else if h.fails >= e.after && h.until.is_none() {
            h.until = Some(now + e.time * (1u32 << h.ejections.min(3)));
            h.ejections = h.ejections.saturating_add(1);
            self.ejected += 1;
            self.balancer.set_available(i, false);
            stats.backend_ejections += 1;
            self.figures[i].ejections += 1;
        }
    }

    fn connect_succeeded(&mut self, i: usize) {
        if let Some(h) = self.health.get_mut(i) {
            h.fails = 0;
            h.ejections = 0;
        }
    }
}

/// The bytes an HTTP check sends to `backend` (empty for a TCP check).
fn check_request(probe: &check::Probe, pool: &Pool, backend: SocketAddr) -> Vec<u8> {
    let check::Probe::Http { path, .. } = probe else { return Vec::new() };
    let mut out = Vec::new();
    if pool.proxy_protocol {
        out.extend_from_slice(ppv2::encode_local().as_bytes());
    }
    out.extend_from_slice(&check::http_request(path, &backend.to_string()));
    out
}

/// The proxy of one shard.
pub struct Proxy {
    sides: Vec<Side>,
    pools: Vec<PoolState>,
    /// Each listener's pool (`ProxyConfig::listener_pools`).
    listener_pools: Vec<u16>,
    /// For backends a reload adds.
    probe: check::Probe,
    sources: Sources,
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    /// The earliest check due (`Instant::ZERO` until the first tick).
    next_check: Instant,
    rss: Option<RssChoice>,
    pub stats: ProxyStats,
}

impl Proxy {
    /// A proxy for up to `connections` connections (the endpoint's table;
    /// both sides of a pair are connections in it).
    pub fn new(connections: usize, cfg: ProxyConfig) -> Proxy {
        let pools = cfg.pools.into_iter().map(|p| PoolState::new(p, cfg.eject, cfg.check, &cfg.probe)).collect();
        Proxy {
            sides: vec![Side::default(); connections],
            pools,
            listener_pools: cfg.listener_pools,
            sources: cfg.sources,
            connect_timeout: cfg.connect_timeout,
            idle_timeout: cfg.idle_timeout,
            next_check: Instant::ZERO,
            probe: cfg.probe,
            rss: cfg.rss,
            stats: ProxyStats::default(),
        }
    }

    /// Connections the proxy holds state for (tests and diagnostics).
    pub fn live_sides(&self) -> usize {
        self.sides.iter().filter(|s| s.handle.is_some()).count()
    }

    /// Pairs opened and not yet ended.
    pub fn pairs_active(&self) -> u64 {
        self.stats.pairs_opened - self.stats.pairs_ended
    }

    fn side(&self, h: Handle) -> Option<&Side> {
        self.sides.get(h.index() as usize).filter(|s| s.handle == Some(h))
    }

    fn side_mut(&mut self, h: Handle) -> Option<&mut Side> {
        self.sides.get_mut(h.index() as usize).filter(|s| s.handle == Some(h))
    }

    /// Every backend's figures, pool by pool, with its address.
    pub fn for_each_backend(&self, f: &mut dyn FnMut(usize, SocketAddr, &BackendStats)) {
        for (p, ps) in self.pools.iter().enumerate() {
            for (i, b) in ps.pool.backends.iter().enumerate() {
                let mut st = ps.figures[i];
                st.active = ps.balancer.active(i) as u64;
                st.up = ps.balancer.eligible(i);
                st.weight = ps.balancer.weight(i);
                f(p, b.addr, &st);
            }
        }
    }

    /// Carries out an operator's order; false for a pool or backend that
    /// does not exist.
    pub fn apply(&mut self, ep: &mut Endpoint, now: Instant, order: &Order) -> bool {
        match order {
            Order::Weight { pool, backend, weight } => {
                let Some(ps) = self.pools.get_mut(*pool) else { return false };
                let Some(b) = ps.pool.backends.get_mut(*backend) else { return false };
                b.weight = *weight;
                ps.balancer.set_weight(*backend, *weight);
            }
            Order::AddBackend { pool, backend } => {
                let Some(ps) = self.pools.get_mut(*pool) else { return false };
                ps.pool.backends.push(*backend);
                ps.balancer.add(backend.weight);
                ps.health.push(Health::default());
                ps.figures.push(BackendStats::default());
                ps.cursors.push(0);
                ps.checks.push(CheckState::new(Instant::ZERO));
                ps.check_requests.push(check_request(&self.probe, &ps.pool, backend.addr));
                self.next_check = Instant::ZERO;
            }
            Order::Retire { pool, backend, within } => {
                if self.pools.get(*pool).is_none_or(|ps| *backend >= ps.pool.backends.len()) {
                    return false;
                }
                self.retire(ep, now, *pool, *backend, *within);
            }
            Order::Maglev { pool, table } => {
                let Some(ps) = self.pools.get_mut(*pool) else { return false };
                ps.pool.maglev = Some(table.clone());
                ps.balancer.set_table(table.clone());
            }
            Order::Balance { pool, algorithm, table } => {
                let Some(ps) = self.pools.get_mut(*pool) else { return false };
                if matches!(algorithm, Algorithm::Maglev { .. }) && table.is_none() {
                    return false;
                }
                ps.pool.balance = *algorithm;
                ps.pool.maglev = table.clone();
                ps.balancer.set_algorithm(*algorithm, table.clone());
            }
            Order::Health { eject, check, probe } => {
                self.probe = probe.clone();
                for ps in &mut self.pools {
                    ps.set_health(*eject, *check, probe);
                }
                self.next_check = Instant::ZERO;
            }
        }
        true
    }

    /// Drops a side's state; counts the pair as ended when it was the last.
    fn forget(&mut self, h: Handle) {
        let Some(s) = self.side_mut(h).map(std::mem::take) else { return };
        if s.backend {
            if let Some(ps) = self.pools.get_mut(s.pool as usize) {
                ps.balancer.closed(s.tried as usize);
            }
        }
        let peer = s.peer.and_then(|p| self.side_mut(p));
        match peer {
            Some(p) => p.peer = None,
            None if s.paired => self.stats.pairs_ended += 1,
            None => {}
        }
    }

    /// Resets a connection (RST) and drops its state.
    fn reset(&mut self, ep: &mut Endpoint, h: Handle) {
        self.forget(h);
        // No `Closed` follows an abort: the slot is free after the flush.
        let _ = ep.abort(h);
    }

    /// Resets both sides of a pair.
    fn reset_pair(&mut self, ep: &mut Endpoint, h: Handle) {
        if let Some(p) = self.side(h).and_then(|s| s.peer) {
            self.reset(ep, p);
        }
        self.reset(ep, h);
    }

    /// Something moved: the pair's idle deadline (kept on the client side) starts again.
    fn touch(&self, ep: &mut Endpoint, client: Handle, now: Instant) {
        let retire = self.side(client).and_then(|s| s.retire_at);
        let idle = self.idle_timeout.map(|d| now + d);
        let at = match (idle, retire) {
            (Some(i), Some(r)) => Some(i.min(r)),
            (i, r) => i.or(r),
        };
        if at.is_some() {
            let _ = ep.set_deadline(client, at);
        }
    }

    /// [`Order::Retire`]: every pair on backend `bi` of `pool` gets its
    /// time, the k-th of n at `now + within * k / n`.
    fn retire(&mut self, ep: &mut Endpoint, now: Instant, pool: usize, bi: usize, within: Duration) {
        let on = |s: &Side| s.backend && s.paired && s.pool as usize == pool && s.tried as usize == bi;
        let n = self.sides.iter().filter(|s| s.handle.is_some() && on(s) && s.peer.is_some()).count() as u64;
        let mut k = 0u64;
        for i in 0..self.sides.len() {
            let s = self.sides[i];
            let (Some(_), Some(c)) = (s.handle, s.peer) else { continue };
            if !on(&s) {
                continue;
            }
            k += 1;
            let at = now + within.mul_f64(k as f64 / n.max(1) as f64);
            if let Some(cs) = self.side_mut(c) {
                cs.retire_at = Some(at);
                self.touch(ep, c, now);
            }
        }
    }

    /// A retired pair's time has come: FIN towards the backend, as if the
    /// client had half-closed; the backend's own FIN ends the pair. The
    /// idle timeout still bounds a backend that never closes.
    fn end_retired(&mut self, ep: &mut Endpoint, now: Instant, c: Handle) {
        let Some(cs) = self.side_mut(c) else { return };
        cs.retire_at = None;
        let peer = cs.peer;
        self.stats.retired += 1;
        if let Some(b) = peer.filter(|&b| self.side(b).is_some_and(|s| !s.shut)) {
            let _ = ep.shutdown(b);
            if let Some(bs) = self.side_mut(b) {
                bs.shut = true;
            }
        }
        self.touch(ep, c, now);
    }

    fn accepted(&mut self, ep: &mut Endpoint, now: Instant, c: Handle) {
        let listener = ep.tcb(c).map_or(0, |t| t.listener.saturating_sub(1) as usize);
        let pool = match self.listener_pools.get(listener) {
            Some(&p) => p as usize,
            None => self.listener_pools.last().map_or(listener, |&p| p as usize),
        }
        .min(self.pools.len().saturating_sub(1));
        let Some(slot) = self.sides.get_mut(c.index() as usize) else {
            self.stats.stale_events += 1;
            let _ = ep.abort(c);
            return;
        };
        *slot = Side { handle: Some(c), connected: true, pool: pool as u16, ..Side::default() };
        self.stats.clients_accepted += 1;
        if !self.open_backend(ep, now, c) {
            self.give_up(ep, c);
        }
    }

    /// Starts the active open for client `c` to its next backend. False
    /// when none could be started (no backend, no source tuple, table full).
    fn open_backend(&mut self, ep: &mut Endpoint, now: Instant, c: Handle) -> bool {
        let Some(&side) = self.side(c) else { return false };
        let Some(ps) = self.pools.get_mut(side.pool as usize) else { return false };
        let n = ps.pool.backends.len();
        if n == 0 {
            return false;
        }
        ps.readmit(now, &mut self.stats);
        let bi = if side.attempts == 0 {
            let Some(t) = ep.tuple(c) else { return false };
            match ps.balancer.pick(&t.remote(), &t.local()) {
                Some(i) => i,
                None => {
                    self.stats.no_backend_available += 1;
                    return false;
                }
            }
        } else {
            // The retry: the next backend that takes new clients, the same
            // one last (a pool of one is retried on itself).
            match (1..=n).map(|k| (side.tried as usize + k) % n).find(|&i| ps.balancer.eligible(i)) {
                Some(i) => i,
                None => return false,
            }
        };
        let Some(b) = self.connect_to(ep, now, side.pool as usize, bi) else { return false };
        let Some(slot) = self.sides.get_mut(b.index() as usize) else {
            let _ = ep.abort(b);
            return false;
        };
        *slot = Side {
            handle: Some(b),
            peer: Some(c),
            backend: true,
            tried: bi as u16,
            pool: side.pool,
            opened_at: now,
            ..Side::default()
        };
        let cs = self.side_mut(c).expect("checked above");
        cs.peer = Some(b);
        cs.attempts += 1;
        cs.tried = bi as u16;
        self.stats.backend_connects += 1;
        if let Some(ps) = self.pools.get_mut(side.pool as usize) {
            ps.balancer.opened(bi);
            if let Some(f) = ps.figures.get_mut(bi) {
                f.connects += 1;
            }
        }
        let _ = ep.set_deadline(b, Some(now + self.connect_timeout));
        true
    }

    /// Starts the health checks that are due; cheap when none is.
    pub fn tick(&mut self, ep: &mut Endpoint, now: Instant) {
        if now < self.next_check {
            return;
        }
        let mut next = None::<Instant>;
        for p in 0..self.pools.len() {
            let Some(c) = self.pools[p].check else { continue };
            for i in 0..self.pools[p].checks.len() {
                let st = self.pools[p].checks[i];
                if st.in_flight.is_none() && st.due <= now {
                    self.pools[p].checks[i].due = now + c.interval;
                    self.start_check(ep, now, p, i, c.timeout);
                }
                let due = self.pools[p].checks[i].due;
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        // No checks anywhere: never again (until a reload adds a backend).
        self.next_check = next.unwrap_or(Instant::from_micros(u64::MAX));
    }

    /// When [`Proxy::tick`] next has a check to start (`None`: never); a
    /// driver that sleeps between events wakes for it.
    pub fn next_check_at(&self) -> Option<Instant> {
        (self.next_check != Instant::from_micros(u64::MAX)).then_some(self.next_check)
    }

    fn start_check(&mut self, ep: &mut Endpoint, now: Instant, pool: usize, bi: usize, timeout: Duration) {
        let Some(b) = self.connect_to(ep, now, pool, bi) else {
            self.stats.health_checks_not_started += 1;
            return;
        };
        let Some(slot) = self.sides.get_mut(b.index() as usize) else {
            let _ = ep.abort(b);
            return;
        };
        *slot = Side { handle: Some(b), check: true, tried: bi as u16, pool: pool as u16, ..Side::default() };
        let ps = &mut self.pools[pool];
        ps.checks[bi].in_flight = Some(b);
        ps.figures[bi].checks += 1;
        self.stats.health_checks += 1;
        let _ = ep.set_deadline(b, Some(now + timeout));
    }

    /// A check connection connected (`passed`), or was refused or timed
    /// out. It is reset at once either way: no TIME-WAIT spent on it.
    fn check_done(&mut self, ep: &mut Endpoint, h: Handle, passed: bool, abort: bool) {
        let Some(&s) = self.side(h) else { return };
        self.forget(h);
        if abort {
            let _ = ep.abort(h);
        }
        let (pool, bi) = (s.pool as usize, s.tried as usize);
        let Some(ps) = self.pools.get_mut(pool) else { return };
        let (Some(c), Some(st)) = (ps.check, ps.checks.get_mut(bi)) else { return };
        if !passed {
            self.stats.health_check_failures += 1;
            ps.figures[bi].check_failures += 1;
        }
        match st.record(passed, &c) {
            Some(true) => self.stats.backends_marked_up += 1,
            Some(false) => self.stats.backends_marked_down += 1,
            None => return,
        }
        ps.refresh(bi);
    }

    /// An HTTP check's answer arrived (or its end): judge the status line.
    fn check_answer(&mut self, ep: &mut Endpoint, h: Handle, ended: bool) {
        let Some(&s) = self.side(h) else { return };
        let expect = self.pools.get(s.pool as usize).and_then(|ps| ps.check_expect);
        let mut head = [0u8; 12];
        let mut got = 0;
        // Look without taking: the status line may come in pieces.
        let _ = ep.recv(h, |d| {
            got = d.len().min(head.len());
            head[..got].copy_from_slice(&d[..got]);
            0
        });
        match check::http_verdict(&head[..got], expect) {
            Some(passed) => self.check_done(ep, h, passed, true),
            None if ended => self.check_done(ep, h, false, true),
            None => {}
        }
    }

    /// An active open to backend `bi` of `pool` from the next free source
    /// tuple; `None` (counted) when none is free within [`PROBES`] tries or
    /// the table is full. With the NIC's RSS known, only a tuple whose
    /// reply hashes to this shard's queue is taken; when none of the
    /// candidates does, the first one that was free (its replies then go
    /// through the hand-off between shards).
    fn connect_to(&mut self, ep: &mut Endpoint, now: Instant, pool: usize, bi: usize) -> Option<Handle> {
        let ps = self.pools.get_mut(pool)?;
        let backend = *ps.pool.backends.get(bi)?;
        let mut fallback = None;
        for _ in 0..PROBES.min(self.sources.len().min(u32::MAX as u64) as u32) {
            let local = self.sources.get(ps.cursors[bi]);
            ps.cursors[bi] = ps.cursors[bi].wrapping_add(1);
            let here = self.rss.as_ref().is_none_or(|r| reply_queue(r, local, backend.addr) == Some(r.queue));
            if !here {
                fallback = fallback.or(Some(local));
                continue;
            }
            match open_from(ep, now, local, backend, &mut self.stats) {
                Opened::Yes(b) => {
                    self.stats.source_ports_by_hash += self.rss.is_some() as u64;
                    return Some(b);
                }
                Opened::Taken => {}
                Opened::TableFull => return None,
            }
        }
        if let Some(local) = fallback {
            match open_from(ep, now, local, backend, &mut self.stats) {
                Opened::Yes(b) => {
                    self.stats.source_ports_fallback += 1;
                    return Some(b);
                }
                Opened::Taken => {}
                Opened::TableFull => return None,
            }
        }
        self.stats.source_ports_exhausted += 1;
        None
    }

    /// The backend side `b` failed before connecting: the next backend, or an RST for the client.
    fn backend_failed(&mut self, ep: &mut Endpoint, now: Instant, b: Handle) {
        if let Some(&s) = self.side(b) {
            if let Some(ps) = self.pools.get_mut(s.pool as usize) {
                ps.connect_failed(s.tried as usize, now, &mut self.stats);
            }
        }
        let Some(c) = self.side(b).and_then(|s| s.peer) else {
            self.forget(b);
            return;
        };
        self.forget(b);
        let Some(cs) = self.side(c) else { return };
        if cs.attempts < MAX_ATTEMPTS {
            self.stats.backend_retries += 1;
            if self.open_backend(ep, now, c) {
                return;
            }
        }
        self.give_up(ep, c);
    }

    fn give_up(&mut self, ep: &mut Endpoint, c: Handle) {
        self.stats.clients_reset_no_backend += 1;
        self.reset(ep, c);
    }

    fn connected(&mut self, ep: &mut Endpoint, now: Instant, b: Handle) {
        if let Some(s) = self.side_mut(b).filter(|s| s.check) {
            s.connected = true;
            let (pool, bi) = (s.pool as usize, s.tried as usize);
            let req = self.pools.get(pool).and_then(|ps| ps.check_requests.get(bi)).filter(|r| !r.is_empty());
            let Some(req) = req else { return self.check_done(ep, b, true, true) };
            // A fresh connection's send buffer takes the request whole.
            let sent = ep.write(b, req) == Ok(req.len());
            if !sent {
                self.stats.write_errors += 1;
                return self.check_done(ep, b, false, true);
            }
            return;
        }
        let Some(side) = self.side_mut(b).filter(|s| s.backend) else {
            self.stats.stale_events += 1;
            return;
        };
        side.connected = true;
        side.paired = true;
        let (pool, bi, opened_at) = (side.pool as usize, side.tried as usize, side.opened_at);
        let Some(c) = side.peer else { return self.reset(ep, b) };
        if let Some(ps) = self.pools.get_mut(pool) {
            ps.connect_succeeded(bi);
            if let Some(f) = ps.figures.get_mut(bi) {
                f.connect_latency.record(now.saturating_since(opened_at));
            }
        }
        self.stats.backend_connected += 1;
        self.stats.pairs_opened += 1;
        let Some(cs) = self.side_mut(c) else {
            // The client is gone (reset meanwhile): nothing to carry.
            return self.reset(ep, b);
        };
        cs.paired = true;
        let pool = cs.pool as usize;
        let _ = ep.set_deadline(b, None);
        if self.pools[pool].pool.proxy_protocol {
            let Some(t) = ep.tuple(c) else { return self.reset_pair(ep, b) };
            let h = ppv2::encode_proxy(t.remote(), t.local());
            if ep.write(b, h.as_bytes()) != Ok(h.as_bytes().len()) {
                // The first bytes of a fresh buffer: short only when the pool is empty.
                self.stats.write_errors += 1;
                return self.reset_pair(ep, b);
            }
            self.stats.proxy_headers_sent += 1;
        }
        self.touch(ep, c, now);
        self.pump(ep, now, c);
        self.pump(ep, now, b);
    }

    /// Moves what `from` has received into its peer's send buffer, as far
    /// as there is room, then passes on `from`'s FIN once its bytes are through.
    fn pump(&mut self, ep: &mut Endpoint, now: Instant, from: Handle) {
        let Some(&fs) = self.side(from) else { return };
        let Some(to) = fs.peer else {
            if fs.paired && ep.readable(from) > 0 {
                // Bytes with nowhere to go: the peer ended without them.
                self.stats.resets_to_client += !fs.backend as u64;
                self.stats.resets_to_backend += fs.backend as u64;
                self.reset(ep, from);
            }
            return;
        };
        let Some(&ts) = self.side(to) else { return };
        if !fs.connected || !ts.connected {
            return;
        }
        // After `to` was shut, `from` has sent FIN and has nothing left,
        // or (a retired pair) what it sends stays in its window.
        let moved = if ts.shut { 0 } else { self.copy(ep, from, to) };
        let b = if fs.backend { fs } else { ts };
        let f = self.pools.get_mut(b.pool as usize).and_then(|ps| ps.figures.get_mut(b.tried as usize));
        if fs.backend {
            self.stats.bytes_backend_to_client += moved;
            if let Some(f) = f {
                f.bytes_from += moved;
            }
        } else {
            self.stats.bytes_client_to_backend += moved;
            if let Some(f) = f {
                f.bytes_to += moved;
            }
        }
        if self.side(from).is_none() {
            return; // reset during the copy
        }
        if moved > 0 {
            let c = if fs.backend { to } else { from };
            self.touch(ep, c, now);
        }
        self.pass_fin(ep, to);
        self.pass_fin(ep, from);
    }

    /// Copies from `from`'s receive buffer into `to`'s send buffer as far
    /// as both allow; returns the bytes moved. A refused write resets the pair.
    fn copy(&mut self, ep: &mut Endpoint, from: Handle, to: Handle) -> u64 {
        let mut buf = [0u8; CHUNK];
        let mut moved = 0u64;
        loop {
            let want = ep.readable(from).min(ep.writable(to)).min(CHUNK);
            if want == 0 {
                if ep.readable(from) > 0 {
                    self.stats.send_blocked += 1;
                }
                return moved;
            }
            // Copy without consuming; consume only what the write took.
            let mut got = 0;
            let _ = ep.recv(from, |d| {
                got = d.len().min(want);
                buf[..got].copy_from_slice(&d[..got]);
                0
            });
            let written = match ep.write(to, &buf[..got]) {
                Ok(n) => n,
                Err(_) => {
                    self.stats.write_errors += 1;
                    self.reset_pair(ep, from);
                    return moved;
                }
            };
            let _ = ep.recv(from, |_| written);
            moved += written as u64;
            if written < got {
                self.stats.write_errors += 1;
                return moved;
            }
        }
    }

    /// Half-close: once `h`'s peer has sent its FIN and every byte before
    /// it is through, `h` sends its own FIN after what is queued. Held back
    /// while `h` itself has sent FIN and still has unread bytes: the FIN
    /// would take it to LAST-ACK and its final ACK would end it with those
    /// bytes undelivered.
    fn pass_fin(&mut self, ep: &mut Endpoint, h: Handle) {
        let Some(&s) = self.side(h) else { return };
        let Some(p) = s.peer.and_then(|p| self.side(p).copied()) else { return };
        let peer = s.peer.expect("checked above");
        if s.shut || !s.connected || !p.fin_in || ep.readable(peer) > 0 || (s.fin_in && ep.readable(h) > 0) {
            return;
        }
        let _ = ep.shutdown(h);
        if let Some(x) = self.side_mut(h) {
            x.shut = true;
        }
        if s.backend {
            self.stats.fins_to_backend += 1;
        } else {
            self.stats.fins_to_client += 1;
        }
    }

    /// Send space freed on `h`: move more from its peer.
    fn writable(&mut self, ep: &mut Endpoint, now: Instant, h: Handle) {
        if let Some(p) = self.side(h).and_then(|s| s.peer) {
            self.pump(ep, now, p);
        }
    }

    fn closed(&mut self, ep: &mut Endpoint, now: Instant, h: Handle, reason: CloseReason) {
        let Some(&s) = self.side(h) else {
            self.stats.stale_events += 1;
            return;
        };
        if s.check {
            return self.check_done(ep, h, false, false);
        }
        if s.backend && !s.connected {
            self.stats.backend_refused += 1;
            return self.backend_failed(ep, now, h);
        }
        let peer = s.peer.filter(|&p| self.side(p).is_some());
        self.forget(h);
        let Some(p) = peer else { return };
        match reason {
            // Both FINs are through on this side: the peer ends on its own.
            CloseReason::Normal => {}
            _ => {
                if s.backend {
                    self.stats.resets_to_client += 1;
                } else {
                    self.stats.resets_to_backend += 1;
                }
                self.reset(ep, p);
            }
        }
    }

    fn deadline(&mut self, ep: &mut Endpoint, now: Instant, h: Handle) {
        let Some(&s) = self.side(h) else {
            self.stats.stale_events += 1;
            return;
        };
        if s.check {
            return self.check_done(ep, h, false, true);
        }
        if s.retire_at.is_some_and(|t| t <= now) {
            return self.end_retired(ep, now, h);
        }
        if s.backend && !s.connected {
            self.stats.backend_connect_timeouts += 1;
            let _ = ep.abort(h);
            return self.backend_failed(ep, now, h);
        }
        self.stats.idle_timeouts += 1;
        self.reset_pair(ep, h);
    }
}

/// What an active open from one source tuple came to.
enum Opened {
    Yes(Handle),
    /// The tuple is held (a connection, or TIME-WAIT): counted.
    Taken,
    /// The connection table is full: counted.
    TableFull,
}

fn open_from(ep: &mut Endpoint, now: Instant, local: SocketAddr, backend: Backend, stats: &mut ProxyStats) -> Opened {
    match ep.tuple_in_use(&FourTuple::new(local, backend.addr)) {
        Some(TupleUse::Connection) => {
            stats.source_tuples_in_use += 1;
            return Opened::Taken;
        }
        Some(TupleUse::TimeWait) => {
            stats.source_tuples_in_time_wait += 1;
            return Opened::Taken;
        }
        None => {}
    }
    match ep.connect(now, local, backend.addr, backend.mac) {
        Ok(b) => Opened::Yes(b),
        Err(Error::InUse) => {
            stats.source_tuples_in_use += 1;
            Opened::Taken
        }
        Err(_) => {
            stats.backend_table_full += 1;
            Opened::TableFull
        }
    }
}

/// The RX queue the NIC gives the backend's reply to `local` (IPv4 only).
fn reply_queue(r: &RssChoice, local: SocketAddr, backend: SocketAddr) -> Option<u32> {
    match (local.ip(), backend.ip()) {
        (std::net::IpAddr::V4(l), std::net::IpAddr::V4(b)) => {
            Some(r.steering.queue(b.octets(), l.octets(), backend.port(), local.port()))
        }
        _ => None,
    }
}

impl App for Proxy {
    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, ev: Event) {
        match ev {
            Event::Accepted(c) => self.accepted(ep, now, c),
            Event::Connected(b) => self.connected(ep, now, b),
            Event::Readable(h) if self.side(h).is_some_and(|s| s.check) => self.check_answer(ep, h, false),
            Event::PeerClosed(h) if self.side(h).is_some_and(|s| s.check) => self.check_answer(ep, h, true),
            Event::Readable(h) => {
                if self.side(h).is_some() {
                    self.pump(ep, now, h);
                } else {
                    self.stats.stale_events += 1;
                }
            }
            Event::Writable(h) => self.writable(ep, now, h),
            Event::PeerClosed(h) => match self.side_mut(h) {
                Some(s) => {
                    s.fin_in = true;
                    self.pump(ep, now, h);
                }
                None => self.stats.stale_events += 1,
            },
            Event::Closed(h, reason) => self.closed(ep, now, h, reason),
            Event::Deadline(h) => self.deadline(ep, now, h),
        }
    }

    fn tick(&mut self, ep: &mut Endpoint, now: Instant) {
        Proxy::tick(self, ep, now)
    }

    fn next_tick(&self) -> Option<Instant> {
        self.next_check_at()
    }

    fn order(&mut self, ep: &mut Endpoint, now: Instant, order: &Order) {
        if !self.apply(ep, now, order) {
            self.stats.stale_events += 1;
        }
    }
}
