//! The admin interface, on the metrics listener (`metrics::server` takes
//! changes from loopback clients only): the operator lists the proxy's
//! backends and sets a backend's weight, drains it or undrains it while
//! floodgate runs. `floodgate ctl` is its command-line client.
//!
//! - `GET /backends`: one line per backend (pool, address, weight now and
//!   as configured, state, and its figures summed over the shards).
//! - `POST /backends/weight?backend=ADDR:PORT&weight=W[&pool=P]`: from now
//!   on the backend takes that share of new clients.
//! - `POST /backends/drain?backend=...[&close_within=DURATION]`: weight 0:
//!   no new client; its connections go on until they end, or, with
//!   `close_within`, each is ended gently at its turn within that time
//!   ([`Order::Retire`]).
//! - `POST /backends/undrain?backend=...`: the weight it had before.
//!
//! Every change goes to every shard as an [`Order`] and is logged. Under
//! Maglev a drain needs no new table (flows of the other backends do not
//! move, as for an ejection); a new non-zero weight rebuilds the table here,
//! in the control thread, and the shards swap it in.
//!
//! A reload (SIGHUP, [`Admin::reload`]) does this for pool 0 (`backend`)
//! and for every `[[pool]]` still serving its port: it gives every backend
//! the file's weight (undoing `ctl` changes), adds the new backends at the
//! pool's next indices (their MACs resolved first; one that does not
//! answer, or a pool left with no weight, refuses the whole reload before
//! anything changed) and sets the ones no longer listed to weight 0, shown
//! as `removed`: their connections go on, as for a drain. A new balancing
//! algorithm (or Maglev seed) is sent with its table ([`Order::Balance`]);
//! new ejection and health check settings go to every pool
//! ([`Order::Health`]). Established connections stay where they are. A
//! `[[pool]]` for another port is a new listener: it waits for the next
//! start, as the other settings do.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::app::proxy::balance::Algorithm;
use crate::app::proxy::check::{Check, Probe};
use crate::app::proxy::maglev;
use crate::app::proxy::{BackendStats, Eject};
use crate::app::Order;
use crate::shard::runner::Snapshot;

use super::config::{ProxySettings, MAX_WEIGHT};

/// One pool as the operator set it.
#[derive(Debug)]
struct PoolAdmin {
    /// The `[[pool]]`'s port; `None` for pool 0.
    port: Option<u16>,
    backends: Vec<SocketAddr>,
    configured: Vec<u32>,
    weights: Vec<u32>,
    /// The weight each had before its drain (for undrain); the configured
    /// one until a drain.
    before_drain: Vec<u32>,
    balance: Algorithm,
    maglev_seed: u64,
    /// The weights the shards' Maglev table was built for.
    table_weights: Vec<u32>,
    /// No longer in the configuration (weight 0 until the restart).
    removed: Vec<bool>,
}

impl PoolAdmin {
    /// Maglev's view of the weights: a drained backend keeps its slots
    /// (the shards skip it), so a drain or an undrain needs no new table;
    /// a removed one has none.
    fn table_weights(&self) -> Vec<u32> {
        (0..self.weights.len())
            .map(|i| match (self.removed[i], self.weights[i]) {
                (true, _) => 0,
                (false, 0) => self.before_drain[i],
                (false, w) => w,
            })
            .collect()
    }

    /// Applies a reload's view of this pool (`added`: the new backends,
    /// resolved); the orders for the shards.
    fn reload(
        &mut self,
        pool: usize,
        new: &PoolReloaded,
        added: Vec<crate::app::proxy::Backend>,
    ) -> Result<Vec<Order>, String> {
        let backends = &new.backends[..];
        let mut orders = Vec::new();
        for i in 0..self.backends.len() {
            let (weight, removed) = match backends.iter().find(|b| b.0 == self.backends[i]) {
                Some(&(_, w)) => (w, false),
                None => (0, true),
            };
            if weight != self.weights[i] {
                orders.push(Order::Weight { pool, backend: i, weight });
            }
            if removed != self.removed[i] || weight != self.weights[i] {
                tracing::info!(pool, backend = %self.backends[i], was = self.weights[i], weight, removed, "reload: backend changed");
            }
            self.weights[i] = weight;
            self.configured[i] = weight;
            self.removed[i] = removed;
            if weight > 0 {
                self.before_drain[i] = weight;
            }
        }
        for b in added {
            tracing::info!(pool, backend = %b.addr, weight = b.weight, "reload: backend added");
            self.backends.push(b.addr);
            self.configured.push(b.weight);
            self.weights.push(b.weight);
            self.before_drain.push(b.weight);
            self.removed.push(false);
            // The table the shards have does not know it yet.
            self.table_weights.push(0);
            orders.push(Order::AddBackend { pool, backend: b });
        }
        if (new.balance, new.maglev_seed) != (self.balance, self.maglev_seed) {
            tracing::info!(pool, was = ?self.balance, balance = ?new.balance, seed = new.maglev_seed, "reload: balancing changed");
            self.balance = new.balance;
            self.maglev_seed = new.maglev_seed;
            let table = match new.balance {
                Algorithm::Maglev { .. } => {
                    let tw = self.table_weights();
                    let b: Vec<_> = self.backends.iter().copied().zip(tw.iter().copied()).collect();
                    let t =
                        maglev::Table::build(&b, maglev::DEFAULT_SIZE, self.maglev_seed).map_err(|e| e.to_string())?;
                    self.table_weights = tw;
                    Some(Arc::new(t))
                }
                _ => None,
            };
            orders.push(Order::Balance { pool, algorithm: new.balance, table });
        } else {
            orders.extend(self.maglev_order(pool)?);
        }
        Ok(orders)
    }

    /// The Maglev order when the table's weights changed.
    fn maglev_order(&mut self, pool: usize) -> Result<Option<Order>, String> {
        if !matches!(self.balance, Algorithm::Maglev { .. }) {
            return Ok(None);
        }
        let tw = self.table_weights();
        if tw == self.table_weights {
            return Ok(None);
        }
        let b: Vec<_> = self.backends.iter().copied().zip(tw.iter().copied()).collect();
        let t = maglev::Table::build(&b, maglev::DEFAULT_SIZE, self.maglev_seed).map_err(|e| e.to_string())?;
        self.table_weights = tw;
        Ok(Some(Order::Maglev { pool, table: Arc::new(t) }))
    }
}

/// The admin interface's state: the pools, or none (not the proxy).
#[derive(Debug, Default)]
pub struct Admin {
    pools: Vec<PoolAdmin>,
    /// The ejection and check settings in force.
    health: Health,
}

/// Passive ejection and active checks, as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub eject: Option<Eject>,
    pub check: Option<Check>,
    pub probe: Probe,
}

/// What a reload read for the proxy: every pool, and the health settings.
#[derive(Clone, Debug)]
pub struct Reloaded {
    /// Pool 0 (`backend`), then the `[[pool]]`s.
    pub pools: Vec<PoolReloaded>,
    pub health: Health,
}

/// One pool as a reload read it: its backends with their weights, and how
/// it balances.
#[derive(Clone, Debug)]
pub struct PoolReloaded {
    /// The `[[pool]]`'s port; `None` for pool 0.
    pub port: Option<u16>,
    pub backends: Vec<(SocketAddr, u32)>,
    pub balance: Algorithm,
    pub maglev_seed: u64,
}

impl Reloaded {
    pub fn of(p: &ProxySettings) -> Reloaded {
        let pool = |port, backends: &[SocketAddr], weights: &[u32], balance, maglev_seed| PoolReloaded {
            port,
            backends: backends.iter().copied().zip(weights.iter().copied()).collect(),
            balance,
            maglev_seed,
        };
        let mut pools = vec![pool(None, &p.backends, &p.weights, p.balance, p.maglev_seed)];
        pools.extend(
            p.extra_pools.iter().map(|x| pool(Some(x.port), &x.backends, &x.weights, x.balance, x.maglev_seed)),
        );
        Reloaded { pools, health: Health { eject: p.eject, check: p.check, probe: p.probe.clone() } }
    }
}

/// How the log and the errors name a pool.
fn pool_name(port: Option<u16>) -> String {
    match port {
        None => "the backends".into(),
        Some(p) => format!("[[pool]] of port {p}"),
    }
}

/// An answer: status, text, and the orders for every shard.
pub type Answer = (u16, String, Vec<Order>);

impl Admin {
    /// The pools of `--app proxy`: pool 0 (`backend`), then the `[[pool]]`s.
    pub fn new(p: &ProxySettings) -> Admin {
        let pool = |port, backends: &[SocketAddr], weights: &[u32], balance, maglev_seed| PoolAdmin {
            port,
            backends: backends.to_vec(),
            configured: weights.to_vec(),
            weights: weights.to_vec(),
            before_drain: weights.to_vec(),
            balance,
            maglev_seed,
            table_weights: weights.to_vec(),
            removed: vec![false; weights.len()],
        };
        let mut pools = vec![pool(None, &p.backends, &p.weights, p.balance, p.maglev_seed)];
        pools.extend(
            p.extra_pools.iter().map(|x| pool(Some(x.port), &x.backends, &x.weights, x.balance, x.maglev_seed)),
        );
        Admin { pools, health: Health { eject: p.eject, check: p.check, probe: p.probe.clone() } }
    }

    /// Answers `method` on `path` (below `/backends`) with `query`; `None`
    /// for a path that is not the admin interface's. `latest`: the shards'
    /// newest snapshots, for the figures.
    pub fn answer(&mut self, method: &str, path: &str, query: &str, latest: &[Option<Snapshot>]) -> Option<Answer> {
        let action = match path {
            "/backends" => None,
            "/backends/weight" => Some(Action::Weight),
            "/backends/drain" => Some(Action::Drain),
            "/backends/undrain" => Some(Action::Undrain),
            _ => return None,
        };
        let reads = matches!(method, "GET" | "HEAD");
        let fail = |status: u16, msg: String| Some((status, msg + "\n", Vec::new()));
        match action {
            None if reads => Some((200, self.list(latest), Vec::new())),
            None => fail(405, "GET /backends lists them; changes are POSTs to /backends/{weight,drain,undrain}".into()),
            Some(_) if method != "POST" => fail(405, format!("{path} takes POST")),
            Some(_) if self.pools.is_empty() => fail(409, "no backends: floodgate serves --app proxy only".into()),
            Some(a) => Some(match self.change(a, query, latest) {
                Ok(answer) => answer,
                Err((status, msg)) => (status, msg + "\n", Vec::new()),
            }),
        }
    }

    fn change(&mut self, action: Action, query: &str, latest: &[Option<Snapshot>]) -> Result<Answer, (u16, String)> {
        let q = Query::parse(query).map_err(|e| (400, e))?;
        let pool: usize = match q.get("pool") {
            Some(p) => p.parse().map_err(|_| (400, format!("pool={p:?}: not a number")))?,
            None => 0,
        };
        let addr = q.get("backend").ok_or((400, "which backend? backend=ADDR:PORT".to_string()))?;
        let addr: SocketAddr = addr.parse().map_err(|_| (400, format!("backend={addr:?}: expected ADDR:PORT")))?;
        let pools = self.pools.len();
        let ps = self.pools.get_mut(pool).ok_or((404, format!("no pool {pool} (there are {pools})")))?;
        let i =
            ps.backends.iter().position(|b| *b == addr).ok_or((404, format!("pool {pool} has no backend {addr}")))?;
        if ps.removed[i] {
            return Err((409, format!("{addr} was removed from the configuration (reload); it stays at weight 0")));
        }
        let weight = match action {
            Action::Weight => {
                let w = q.get("weight").ok_or((400, "which weight? weight=0-10000".to_string()))?;
                w.parse::<u32>()
                    .ok()
                    .filter(|w| *w <= MAX_WEIGHT)
                    .ok_or((400, format!("weight={w:?}: expected 0-{MAX_WEIGHT}")))?
            }
            Action::Drain => 0,
            Action::Undrain if ps.weights[i] > 0 => ps.weights[i],
            Action::Undrain if ps.before_drain[i] > 0 => ps.before_drain[i],
            Action::Undrain => {
                return Err((409, format!("{addr} has never had a weight above 0: set one (weight)")));
            }
        };
        let close_within = match (action, q.get("close_within")) {
            (_, None) => None,
            (Action::Drain, Some(d)) => {
                let d = d.parse::<super::config::Secs>().map_err(|e| (400, format!("close_within: {e}")))?.0;
                (!d.is_zero()).then_some(d)
            }
            (_, Some(_)) => return Err((400, "close_within goes with drain".into())),
        };
        let others_out = ps.weights.iter().enumerate().all(|(k, &w)| k == i || w == 0);
        if weight == 0 && others_out {
            return Err((409, format!("{addr} is the last backend taking clients: drain another first")));
        }
        let was = ps.weights[i];
        if was > 0 && weight == 0 {
            ps.before_drain[i] = was;
        }
        ps.weights[i] = weight;
        if weight > 0 {
            ps.before_drain[i] = weight;
        }
        let mut orders = vec![Order::Weight { pool, backend: i, weight }];
        orders.extend(ps.maglev_order(pool).map_err(|e| (500, e))?);
        if let Some(within) = close_within {
            tracing::info!(pool, backend = %addr, ?within, "admin: the backend's connections end within");
            orders.push(Order::Retire { pool, backend: i, within });
        }
        tracing::info!(pool, backend = %addr, was, weight, "admin: backend weight set");
        let line = self.line(pool, i, &sum_figures(latest, pool, addr));
        Ok((200, format!("{HEADER}\n{line}\n"), orders))
    }

    /// A reload: every pool's backends and algorithm, and the health
    /// settings; `mac_of` resolves a new backend's next hop. The orders for
    /// the shards, or why the reload is refused (then nothing changed).
    pub fn reload(
        &mut self,
        new: &Reloaded,
        mut mac_of: impl FnMut(SocketAddr) -> Result<[u8; 6], String>,
    ) -> Result<Vec<Order>, String> {
        if self.pools.is_empty() {
            return Err("no backends: floodgate serves --app proxy only".into());
        }
        // Everything that can refuse the reload, before anything changes.
        let mut plans = Vec::new();
        for (pool, ps) in self.pools.iter().enumerate() {
            // A `[[pool]]` gone from the file keeps serving until the restart.
            let Some(np) = new.pools.iter().find(|n| n.port == ps.port) else { continue };
            if np.backends.iter().all(|b| b.1 == 0) {
                return Err(format!(
                    "{}: every backend has weight 0, so no client could be served",
                    pool_name(ps.port)
                ));
            }
            let mut added = Vec::new();
            for &(addr, weight) in np.backends.iter().filter(|(a, _)| !ps.backends.contains(a)) {
                added.push(crate::app::proxy::Backend { addr, mac: mac_of(addr)?, weight });
            }
            plans.push((pool, np, added));
        }
        let mut orders = Vec::new();
        for (pool, np, added) in plans {
            orders.extend(self.pools[pool].reload(pool, np, added)?);
        }
        if new.health != self.health {
            tracing::info!(was = ?self.health, now = ?new.health, "reload: ejection and health checks changed");
            self.health = new.health.clone();
            let Health { eject, check, probe } = new.health.clone();
            orders.push(Order::Health { eject, check, probe });
        }
        Ok(orders)
    }

    /// The table of every backend.
    fn list(&self, latest: &[Option<Snapshot>]) -> String {
        let mut out = format!("{HEADER}\n");
        for (p, ps) in self.pools.iter().enumerate() {
            for (i, &addr) in ps.backends.iter().enumerate() {
                out.push_str(&self.line(p, i, &sum_figures(latest, p, addr)));
                out.push('\n');
            }
        }
        out
    }

    fn line(&self, pool: usize, i: usize, f: &Figures) -> String {
        let ps = &self.pools[pool];
        let w = ps.weights[i];
        let state = match (w, f.shards, f.down) {
            _ if ps.removed[i] => "removed",
            (0, _, _) => "drained",
            (_, 0, _) => "unknown",
            (_, _, 0) => "up",
            _ => "down",
        };
        let b = &f.sum;
        format!(
            "{pool:<4} {:<24} {w:>6} {:>10} {state:<8} {:>8} {:>10} {:>9} {:>9} {:>12} {:>12}",
            ps.backends[i].to_string(),
            ps.configured[i],
            b.active,
            b.connects,
            b.connect_failures,
            b.ejections,
            b.bytes_to,
            b.bytes_from
        )
    }
}

/// The column names of [`Admin`]'s table.
pub const HEADER: &str =
    "pool backend                  weight configured state      active   connects  failures ejections     bytes_to   bytes_from";

#[derive(Clone, Copy, Debug)]
enum Action {
    Weight,
    Drain,
    Undrain,
}

/// One backend's figures over the shards that reported it.
#[derive(Default)]
struct Figures {
    sum: BackendStats,
    shards: usize,
    /// Shards on which it takes no new client though its weight is above
    /// 0 there: ejected, or failing its checks. (A snapshot taken before an undrain says weight 0
    /// and is not counted.)
    down: usize,
}

fn sum_figures(latest: &[Option<Snapshot>], pool: usize, addr: SocketAddr) -> Figures {
    let mut f = Figures::default();
    for s in latest.iter().flatten() {
        for (_, _, b) in s.backends.iter().filter(|(p, a, _)| *p == pool && *a == addr) {
            f.shards += 1;
            f.down += usize::from(!b.up && b.weight > 0);
            f.sum.active += b.active;
            f.sum.connects += b.connects;
            f.sum.connect_failures += b.connect_failures;
            f.sum.ejections += b.ejections;
            f.sum.bytes_to += b.bytes_to;
            f.sum.bytes_from += b.bytes_from;
        }
    }
    f
}

/// `k=v&k=v`, percent-decoded (`%5B`, `%3A`, ...; `+` is a space).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Result<Query, String> {
        let mut out = Vec::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.push((decode(k)?, decode(v)?));
        }
        Ok(Query(out))
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
}

fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let v = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(format!("bad escape in {s:?}"))?;
                out.push(v);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(balance: Algorithm, weights: &[u32]) -> ProxySettings {
        let backends: Vec<SocketAddr> =
            (0..weights.len()).map(|i| SocketAddr::from(([198, 18, 2, 10 + i as u8], 80))).collect();
        ProxySettings {
            backends,
            weights: weights.to_vec(),
            balance,
            maglev: None,
            maglev_seed: 7,
            eject: None,
            check: None,
            probe: Default::default(),
            source_first: "198.18.1.1".parse().unwrap(),
            source_last: "198.18.1.1".parse().unwrap(),
            shard_ports: vec![(1024, 65535)],
            connect_timeout: crate::app::proxy::CONNECT_TIMEOUT,
            idle_timeout: None,
            proxy_protocol: false,
            rate_per_backend: 1.0,
            extra_pools: vec![],
            listener_pools: vec![],
            backend_iface: None,
        }
    }

    /// The weight order, and whether a new Maglev table follows it.
    fn weight_order(a: &Answer) -> (usize, u32, bool) {
        match a.2.as_slice() {
            [Order::Weight { backend, weight, .. }] => (*backend, *weight, false),
            [Order::Weight { backend, weight, .. }, Order::Maglev { .. }] => (*backend, *weight, true),
            o => panic!("a weight order expected: {o:?}"),
        }
    }

    #[test]
    fn drain_undrain_and_weight_give_orders_and_lines() {
        let mut a = Admin::new(&settings(Algorithm::Wrr, &[1, 3]));
        let r = a.answer("POST", "/backends/drain", "backend=198.18.2.11:80", &[]).unwrap();
        assert_eq!((r.0, weight_order(&r)), (200, (1, 0, false)), "{}", r.1);
        assert!(r.1.contains("198.18.2.11:80") && r.1.contains("drained"), "{}", r.1);
        let r = a.answer("POST", "/backends/undrain", "backend=198.18.2.11%3A80", &[]).unwrap();
        assert_eq!(weight_order(&r), (1, 3, false), "the weight before the drain comes back");
        let r = a.answer("POST", "/backends/weight", "pool=0&backend=198.18.2.10:80&weight=5", &[]).unwrap();
        assert_eq!(weight_order(&r), (0, 5, false));
        let list = a.answer("GET", "/backends", "", &[]).unwrap();
        assert_eq!(list.0, 200);
        let lines: Vec<&str> = list.1.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert!(lines[1].split_whitespace().eq([
            "0",
            "198.18.2.10:80",
            "5",
            "1",
            "unknown",
            "0",
            "0",
            "0",
            "0",
            "0",
            "0"
        ]));
    }

    #[test]
    fn a_drain_may_end_the_connections_within_a_time() {
        let mut a = Admin::new(&settings(Algorithm::Wrr, &[1, 1, 1]));
        let r = a.answer("POST", "/backends/drain", "backend=198.18.2.10:80&close_within=1m", &[]).unwrap();
        assert_eq!(r.0, 200, "{}", r.1);
        let within = crate::time::Duration::from_secs(60);
        assert_eq!(
            r.2,
            [Order::Weight { pool: 0, backend: 0, weight: 0 }, Order::Retire { pool: 0, backend: 0, within }]
        );
        let r = a.answer("POST", "/backends/drain", "backend=198.18.2.11:80&close_within=soon", &[]).unwrap();
        assert_eq!(r.0, 400, "{}", r.1);
        let r = a.answer("POST", "/backends/weight", "backend=198.18.2.11:80&weight=2&close_within=1s", &[]).unwrap();
        assert_eq!(r.0, 400, "{}", r.1);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let mut a = Admin::new(&settings(Algorithm::RoundRobin, &[1, 1]));
        let st = |a: &mut Admin, m: &str, p: &str, q: &str| {
            let r = a.answer(m, p, q, &[]).unwrap();
            assert!(r.2.is_empty(), "no order for a refused change");
            (r.0, r.1)
        };
        assert_eq!(st(&mut a, "POST", "/backends/drain", "").0, 400);
        assert_eq!(st(&mut a, "POST", "/backends/drain", "backend=nope").0, 400);
        assert_eq!(st(&mut a, "POST", "/backends/drain", "backend=198.18.2.99:80").0, 404);
        assert_eq!(st(&mut a, "POST", "/backends/drain", "pool=3&backend=198.18.2.10:80").0, 404);
        assert_eq!(st(&mut a, "POST", "/backends/weight", "backend=198.18.2.10:80&weight=10001").0, 400);
        assert_eq!(st(&mut a, "POST", "/backends/weight", "backend=198.18.2.10:80&weight=%zz").0, 400);
        assert_eq!(st(&mut a, "GET", "/backends/drain", "backend=198.18.2.10:80").0, 405);
        assert_eq!(st(&mut a, "DELETE", "/backends", "").0, 405);
        assert!(a.answer("GET", "/backends/other", "", &[]).is_none());
        // The last backend taking clients cannot be drained: that would
        // reset every new client.
        assert_eq!(a.answer("POST", "/backends/drain", "backend=198.18.2.10:80", &[]).unwrap().0, 200);
        let (code, msg) = st(&mut a, "POST", "/backends/drain", "backend=198.18.2.11:80");
        assert_eq!(code, 409, "{msg}");
        assert!(msg.contains("last backend"), "{msg}");
        let mut none = Admin::default();
        assert_eq!(none.answer("POST", "/backends/drain", "backend=198.18.2.10:80", &[]).unwrap().0, 409);
        assert_eq!(none.answer("GET", "/backends", "", &[]).unwrap().1, format!("{HEADER}\n"));
    }

    /// Maglev: a drain and an undrain keep the table; a new weight brings
    /// one, built as the shards would build it from scratch.
    #[test]
    fn maglev_rebuilds_only_for_a_new_weight() {
        let mut a = Admin::new(&settings(Algorithm::Maglev { source_affinity: false }, &[1, 1, 1]));
        let r = a.answer("POST", "/backends/drain", "backend=198.18.2.12:80", &[]).unwrap();
        assert_eq!(weight_order(&r), (2, 0, false));
        let r = a.answer("POST", "/backends/undrain", "backend=198.18.2.12:80", &[]).unwrap();
        assert_eq!(weight_order(&r), (2, 1, false));
        let r = a.answer("POST", "/backends/weight", "backend=198.18.2.12:80&weight=2", &[]).unwrap();
        assert_eq!(weight_order(&r), (2, 2, true));
        let Order::Maglev { table: t, .. } = &r.2[1] else { panic!("a new table") };
        let b: Vec<_> = a.pools[0].backends.iter().copied().zip([1, 1, 2]).collect();
        let fresh = maglev::Table::build(&b, maglev::DEFAULT_SIZE, 7).unwrap();
        assert_eq!(t.shares(3), fresh.shares(3));
        assert_eq!(
            (0..1000u64).map(|h| t.lookup(h * 7919)).collect::<Vec<_>>(),
            (0..1000u64).map(|h| fresh.lookup(h * 7919)).collect::<Vec<_>>()
        );
    }

    /// A reload: weights from the file, a new backend (its MAC resolved),
    /// a removed one at weight 0; a backend that does not resolve, or a
    /// file with no weight left, changes nothing.
    #[test]
    fn reload_sets_adds_and_removes_backends() {
        let mut a = Admin::new(&settings(Algorithm::Maglev { source_affinity: false }, &[1, 1, 1]));
        let b = |i: u8| SocketAddr::from(([198, 18, 2, 10 + i], 80));
        a.answer("POST", "/backends/drain", "backend=198.18.2.10:80", &[]).unwrap();
        let mac = |_: SocketAddr| Ok([2, 0, 0, 0, 0, 9]);
        let base = Reloaded::of(&settings(Algorithm::Maglev { source_affinity: false }, &[1, 1, 1]));
        let set = |backends: &[(SocketAddr, u32)]| {
            let mut r = base.clone();
            r.pools[0].backends = backends.to_vec();
            r
        };
        let orders = a.reload(&set(&[(b(0), 2), (b(1), 1), (b(3), 1)]), mac).unwrap();
        let want_add = crate::app::proxy::Backend { addr: b(3), mac: [2, 0, 0, 0, 0, 9], weight: 1 };
        assert_eq!(orders.len(), 4, "{orders:?}");
        assert_eq!(orders[0], Order::Weight { pool: 0, backend: 0, weight: 2 }, "the file's weight, drain undone");
        assert_eq!(orders[1], Order::Weight { pool: 0, backend: 2, weight: 0 }, "removed");
        assert_eq!(orders[2], Order::AddBackend { pool: 0, backend: want_add });
        let Order::Maglev { table, .. } = &orders[3] else { panic!("a table for the new set: {orders:?}") };
        let fresh =
            maglev::Table::build(&[(b(0), 2), (b(1), 1), (b(2), 0), (b(3), 1)], maglev::DEFAULT_SIZE, 7).unwrap();
        assert_eq!(table.shares(4), fresh.shares(4));
        let list = a.answer("GET", "/backends", "", &[]).unwrap().1;
        let states: Vec<&str> = list.lines().skip(1).map(|l| l.split_whitespace().nth(4).unwrap()).collect();
        assert_eq!(states, ["unknown", "unknown", "removed", "unknown"], "{list}");
        let r = a.answer("POST", "/backends/undrain", "backend=198.18.2.12:80", &[]).unwrap();
        assert_eq!(r.0, 409, "a removed backend stays out: {}", r.1);
        // The same file again: nothing to do.
        assert_eq!(a.reload(&set(&[(b(0), 2), (b(1), 1), (b(3), 1)]), mac).unwrap(), []);
        // Refused, and nothing changed.
        let e = a.reload(&set(&[(b(0), 1), (b(4), 1)]), |x| Err(format!("{x}: no ARP answer"))).unwrap_err();
        assert!(e.contains("no ARP answer"), "{e}");
        assert!(a.reload(&set(&[(b(0), 0)]), mac).unwrap_err().contains("weight 0"));
        assert_eq!(a.reload(&set(&[(b(0), 2), (b(1), 1), (b(3), 1)]), mac).unwrap(), []);
    }

    /// A reload that changes how the pool balances sends the new way with
    /// its table; one that changes ejection or checks sends them; the same
    /// settings again send nothing.
    #[test]
    fn reload_changes_the_algorithm_and_the_health_settings() {
        let s = settings(Algorithm::Wrr, &[1, 2]);
        let mut a = Admin::new(&s);
        let mac = |_: SocketAddr| Ok([2, 0, 0, 0, 0, 9]);
        let mut new = Reloaded::of(&s);
        assert_eq!(a.reload(&new, mac).unwrap(), [], "nothing changed");
        new.pools[0].balance = Algorithm::Maglev { source_affinity: true };
        let orders = a.reload(&new, mac).unwrap();
        let [Order::Balance { pool: 0, algorithm, table: Some(t) }] = orders.as_slice() else {
            panic!("a balance order with a table: {orders:?}")
        };
        assert_eq!(*algorithm, Algorithm::Maglev { source_affinity: true });
        let b = |i: u8| SocketAddr::from(([198, 18, 2, 10 + i], 80));
        let want = maglev::Table::build(&[(b(0), 1), (b(1), 2)], maglev::DEFAULT_SIZE, 7).unwrap();
        assert_eq!(t.shares(2), want.shares(2), "the table of the running weights and seed");
        assert_eq!(a.reload(&new, mac).unwrap(), [], "the new way is now the running one");
        new.pools[0].maglev_seed = 8;
        assert!(matches!(a.reload(&new, mac).unwrap().as_slice(), [Order::Balance { table: Some(_), .. }]));
        new.pools[0].balance = Algorithm::LeastConn;
        assert_eq!(
            a.reload(&new, mac).unwrap(),
            [Order::Balance { pool: 0, algorithm: Algorithm::LeastConn, table: None }]
        );
        let eject = Eject { after: 3, time: crate::time::Duration::from_secs(10), max_percent: 10 };
        new.health.eject = Some(eject);
        let orders = a.reload(&new, mac).unwrap();
        assert_eq!(orders, [Order::Health { eject: Some(eject), check: None, probe: Probe::Connect }]);
        assert_eq!(a.reload(&new, mac).unwrap(), []);
    }

    /// A `[[pool]]` reloads as pool 0 does, under its own number; a pool
    /// left with no weight refuses the whole reload (pool 0's change too);
    /// a pool for a port that had none waits for the restart.
    #[test]
    fn reload_changes_a_port_pool_too() {
        let mut s = settings(Algorithm::Wrr, &[1, 2]);
        let c = |i: u8| SocketAddr::from(([198, 18, 2, 20 + i], 8080));
        s.extra_pools = vec![crate::cli::config::ExtraPool {
            port: 8080,
            backends: vec![c(0), c(1)],
            weights: vec![1, 1],
            balance: Algorithm::RoundRobin,
            maglev: None,
            maglev_seed: 7,
        }];
        let mut a = Admin::new(&s);
        let mac = |_: SocketAddr| Ok([2, 0, 0, 0, 0, 9]);
        let mut new = Reloaded::of(&s);
        assert_eq!(a.reload(&new, mac).unwrap(), [], "nothing changed");
        new.pools[1].backends = vec![(c(0), 3), (c(2), 1)];
        new.pools[1].balance = Algorithm::LeastConn;
        let orders = a.reload(&new, mac).unwrap();
        let add = crate::app::proxy::Backend { addr: c(2), mac: [2, 0, 0, 0, 0, 9], weight: 1 };
        assert_eq!(
            orders,
            [
                Order::Weight { pool: 1, backend: 0, weight: 3 },
                Order::Weight { pool: 1, backend: 1, weight: 0 },
                Order::AddBackend { pool: 1, backend: add },
                Order::Balance { pool: 1, algorithm: Algorithm::LeastConn, table: None },
            ]
        );
        let list = a.answer("GET", "/backends", "", &[]).unwrap().1;
        let pool1: Vec<String> = list
            .lines()
            .skip(1)
            .filter(|l| l.split_whitespace().next() == Some("1"))
            .map(|l| l.split_whitespace().take(5).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(pool1.len(), 3, "{list}");
        assert!(pool1[1].contains("removed"), "{list}");
        // Pool 1 with no weight left: refused, pool 0's change with it.
        let mut bad = new.clone();
        bad.pools[0].backends[0].1 = 5;
        bad.pools[1].backends = vec![(c(0), 0)];
        let e = a.reload(&bad, mac).unwrap_err();
        assert!(e.contains("[[pool]] of port 8080") && e.contains("weight 0"), "{e}");
        assert_eq!(a.reload(&new, mac).unwrap(), [], "nothing changed by the refused reload");
        // A pool for a port that had none: not a pool of this run.
        let mut more = new.clone();
        more.pools.push(PoolReloaded {
            port: Some(9090),
            backends: vec![(c(3), 1)],
            balance: Algorithm::RoundRobin,
            maglev_seed: 0,
        });
        assert_eq!(a.reload(&more, |x| Err(format!("{x}: not asked for"))).unwrap(), []);
    }

    #[test]
    fn figures_are_summed_over_the_shards_and_a_down_backend_shows() {
        let mut a = Admin::new(&settings(Algorithm::RoundRobin, &[1]));
        let addr = SocketAddr::from(([198, 18, 2, 10], 80));
        let snap = |active, up| {
            let mut s = Snapshot::blank(0);
            let weight = u32::from(up || active > 0);
            s.backends = vec![(0, addr, BackendStats { active, connects: 10, up, weight, ..Default::default() })];
            Some(s)
        };
        let list = a.answer("GET", "/backends", "", &[snap(2, true), snap(3, false)]).unwrap().1;
        let f: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!((f[4], f[5], f[6]), ("down", "5", "20"), "{list}");
        // Snapshots from before an undrain (weight 0 there) do not make it look ejected.
        let list = a.answer("GET", "/backends", "", &[snap(0, false), snap(2, true)]).unwrap().1;
        assert_eq!(list.lines().nth(1).unwrap().split_whitespace().nth(4), Some("up"), "{list}");
    }
}
