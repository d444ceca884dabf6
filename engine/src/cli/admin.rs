//! The admin interface, on the metrics listener (`metrics::server` takes
//! changes from loopback clients only): the operator lists the proxy's
//! backends and sets a backend's weight, drains it or undrains it while
//! floodgate runs. `floodgate ctl` is its command-line client.
//!
//! - `GET /backends`: one line per backend (pool, address, weight now and
//!   as configured, state, and its figures summed over the shards).
//! - `POST /backends/weight?backend=ADDR:PORT&weight=W[&pool=P]`: from now
//!   on the backend takes that share of new clients.
//! - `POST /backends/drain?backend=...`: weight 0: no new client; its
//!   connections go on until they end.
//! - `POST /backends/undrain?backend=...`: the weight it had before.
//!
//! Every change goes to every shard as an [`Order`] and is logged. Under
//! Maglev a drain needs no new table (flows of the other backends do not
//! move, as for an ejection); a new non-zero weight rebuilds the table here,
//! in the control thread, and the shards swap it in.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::app::proxy::balance::Algorithm;
use crate::app::proxy::maglev;
use crate::app::proxy::BackendStats;
use crate::app::Order;
use crate::shard::runner::Snapshot;

use super::config::{ProxySettings, MAX_WEIGHT};

/// One pool as the operator set it.
#[derive(Debug)]
struct PoolAdmin {
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
}

impl PoolAdmin {
    /// Maglev's view of the weights: a drained backend keeps its slots
    /// (the shards skip it), so a drain or an undrain needs no new table.
    fn table_weights(&self) -> Vec<u32> {
        self.weights.iter().zip(&self.before_drain).map(|(&w, &b)| if w == 0 { b } else { w }).collect()
    }
}

/// The admin interface's state: the pools, or none (not the proxy).
#[derive(Debug, Default)]
pub struct Admin {
    pools: Vec<PoolAdmin>,
}

/// An answer: status, text, and the orders for every shard.
pub type Answer = (u16, String, Vec<Order>);

impl Admin {
    /// The pools of `--app proxy` (one, for every listener, today).
    pub fn new(p: &ProxySettings) -> Admin {
        Admin {
            pools: vec![PoolAdmin {
                backends: p.backends.clone(),
                configured: p.weights.clone(),
                weights: p.weights.clone(),
                before_drain: p.weights.clone(),
                balance: p.balance,
                maglev_seed: p.maglev_seed,
                table_weights: p.weights.clone(),
            }],
        }
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
        let i = ps.backends.iter().position(|b| *b == addr).ok_or((404, format!("pool {pool} has no backend {addr}")))?;
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
        let mut table = None;
        if matches!(ps.balance, Algorithm::Maglev { .. }) {
            let tw = ps.table_weights();
            if tw != ps.table_weights {
                let b: Vec<_> = ps.backends.iter().copied().zip(tw.iter().copied()).collect();
                let t = maglev::Table::build(&b, maglev::DEFAULT_SIZE, ps.maglev_seed).map_err(|e| (500, e.to_string()))?;
                table = Some(Arc::new(t));
                ps.table_weights = tw;
            }
        }
        tracing::info!(pool, backend = %addr, was, weight, "admin: backend weight set");
        let order = Order::Weight { pool, backend: i, weight, maglev: table };
        let line = self.line(pool, i, &sum_figures(latest, pool, addr));
        Ok((200, format!("{}\n{line}\n", HEADER), vec![order]))
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
            (0, _, _) => "drained",
            (_, 0, _) => "unknown",
            (_, _, 0) => "up",
            _ => "ejected",
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
    /// 0 there: ejected. (A snapshot taken before an undrain says weight 0
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
            source_first: "198.18.1.1".parse().unwrap(),
            source_last: "198.18.1.1".parse().unwrap(),
            shard_ports: vec![(1024, 65535)],
            connect_timeout: crate::app::proxy::CONNECT_TIMEOUT,
            idle_timeout: None,
            proxy_protocol: false,
            rate_per_backend: 1.0,
        }
    }

    fn weight_order(a: &Answer) -> (usize, u32, bool) {
        match a.2.as_slice() {
            [Order::Weight { backend, weight, maglev, .. }] => (*backend, *weight, maglev.is_some()),
            o => panic!("one order expected: {o:?}"),
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
        assert!(lines[1].split_whitespace().eq(["0", "198.18.2.10:80", "5", "1", "unknown", "0", "0", "0", "0", "0", "0"]));
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
        let Order::Weight { maglev: Some(t), .. } = &r.2[0] else { panic!("a new table") };
        let b: Vec<_> = a.pools[0].backends.iter().copied().zip([1, 1, 2]).collect();
        let fresh = maglev::Table::build(&b, maglev::DEFAULT_SIZE, 7).unwrap();
        assert_eq!(t.shares(3), fresh.shares(3));
        assert_eq!((0..1000u64).map(|h| t.lookup(h * 7919)).collect::<Vec<_>>(), (0..1000u64).map(|h| fresh.lookup(h * 7919)).collect::<Vec<_>>());
    }

    #[test]
    fn figures_are_summed_over_the_shards_and_ejection_shows() {
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
        assert_eq!((f[4], f[5], f[6]), ("ejected", "5", "20"), "{list}");
        // Snapshots from before an undrain (weight 0 there) do not make it look ejected.
        let list = a.answer("GET", "/backends", "", &[snap(0, false), snap(2, true)]).unwrap().1;
        assert_eq!(list.lines().nth(1).unwrap().split_whitespace().nth(4), Some("up"), "{list}");
    }
}
