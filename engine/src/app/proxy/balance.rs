//! Choosing a backend for a new client: round-robin, smooth weighted
//! round-robin, weighted least-connections, or Maglev consistent hashing.
//!
//! - `rr`: in turn, ignoring weights (weight 0 still skipped).
//! - `wrr`: nginx's smooth weighted round-robin (ngx_http_upstream_round_robin:
//!   every pick adds each backend's weight to its credit, takes the backend
//!   with the most credit and debits it the total), so a 5:1:1 pool goes
//!   a a b a c a a rather than a a a a a b c.
//! - `least-conn`: the fewest active connections per unit of weight, counted
//!   per shard (each shard balances its own clients; with RSS spreading
//!   clients evenly the shards' sums balance too), ties in turn.
//! - `maglev`: [`maglev::Table`] on the client's 4-tuple, or on its address
//!   alone with source affinity, so every box sends a flow to the same
//!   backend.
//!
//! A backend may be set unavailable (ejected after failures, `mod.rs`): it
//! then takes no new client, as with weight 0. Maglev does not rebuild its
//! table for it: a flow whose slot names an unavailable backend goes to the
//! next slot's available backend, so flows of the healthy backends do not
//! move at all, and boxes that agree on which backends are out agree on
//! where their flows go.
//!
//! The operator may change a backend's weight while it runs
//! ([`Balancer::set_weight`], from the admin interface): weight 0 drains it
//! (no new client; its connections go on), any other weight gives it that
//! share of new clients from now on. Maglev drains as it ejects, without a
//! new table; a new non-zero weight comes with a table rebuilt for it by
//! the control thread.
//!
//! The state is sized at start and grows only when a reload adds a
//! backend; `pick` and `set_weight` allocate nothing.

use super::maglev;
use std::net::SocketAddr;
use std::sync::Arc;

/// How a pool picks a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Algorithm {
    #[default]
    RoundRobin,
    Wrr,
    LeastConn,
    /// Maglev hashing on the 4-tuple, or on the source address only.
    Maglev {
        source_affinity: bool,
    },
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rr" | "round-robin" => Ok(Algorithm::RoundRobin),
            "wrr" => Ok(Algorithm::Wrr),
            "least-conn" => Ok(Algorithm::LeastConn),
            "maglev" => Ok(Algorithm::Maglev { source_affinity: false }),
            "maglev-source-ip" => Ok(Algorithm::Maglev { source_affinity: true }),
            _ => Err(format!("unknown balancing algorithm {s:?} (rr, wrr, least-conn, maglev, maglev-source-ip)")),
        }
    }
}

/// One pool's balancing state on one shard.
#[derive(Debug, Clone)]
pub struct Balancer {
    algorithm: Algorithm,
    weights: Vec<u32>,
    /// `wrr`: each backend's credit.
    credit: Vec<i64>,
    /// `least-conn`: each backend's active connections on this shard.
    active: Vec<u32>,
    /// Not ejected.
    available: Vec<bool>,
    /// `rr` position, and where `least-conn` starts looking (ties in turn).
    next: usize,
    /// `maglev`: the table, built once and shared by the shards.
    table: Option<Arc<maglev::Table>>,
}

impl Balancer {
    /// A balancer for backends of these weights; `table` is required for
    /// Maglev (built by the caller, once for all shards).
    pub fn new(algorithm: Algorithm, weights: &[u32], table: Option<Arc<maglev::Table>>) -> Balancer {
        debug_assert!(!matches!(algorithm, Algorithm::Maglev { .. }) || table.is_some());
        Balancer {
            algorithm,
            weights: weights.into(),
            credit: vec![0; weights.len()],
            active: vec![0; weights.len()],
            available: vec![true; weights.len()],
            next: 0,
            table,
        }
    }

    /// Backend `i` takes new clients: weight above 0 and not ejected.
    #[inline]
    pub fn eligible(&self, i: usize) -> bool {
        self.weights.get(i).is_some_and(|&w| w > 0) && self.available[i]
    }

    /// Ejects (`false`) or restores (`true`) backend `i`.
    pub fn set_available(&mut self, i: usize, up: bool) {
        if let Some(a) = self.available.get_mut(i) {
            *a = up;
        }
    }

    /// Backend `i` takes new clients in proportion to `weight` from now on
    /// (0: none). Smooth WRR starts its credits afresh, so the new shares
    /// hold from the next pick. Maglev keeps its table (a drain skips the
    /// backend's slots); a new share there needs [`Balancer::set_table`].
    pub fn set_weight(&mut self, i: usize, weight: u32) {
        let Some(w) = self.weights.get_mut(i) else { return };
        *w = weight;
        self.credit.fill(0);
    }

    /// A new backend at the next index (a reload); it allocates, once.
    pub fn add(&mut self, weight: u32) {
        self.weights.push(weight);
        self.credit.push(0);
        self.active.push(0);
        self.available.push(true);
        self.credit.fill(0);
    }

    /// Maglev's table rebuilt for new weights or backends.
    /// Chooses another way from now on (`table` required for Maglev):
    /// weights, availability and the active counts stay; the credits and
    /// the round-robin position start afresh.
    pub fn set_algorithm(&mut self, algorithm: Algorithm, table: Option<Arc<maglev::Table>>) {
        debug_assert!(!matches!(algorithm, Algorithm::Maglev { .. }) || table.is_some());
        self.algorithm = algorithm;
        self.table = table;
        self.credit.fill(0);
        self.next = 0;
    }

    pub fn set_table(&mut self, table: Arc<maglev::Table>) {
        self.table = Some(table);
    }

    /// Backend `i`'s weight now.
    pub fn weight(&self, i: usize) -> u32 {
        self.weights.get(i).copied().unwrap_or(0)
    }

    /// The backend for a new client, `None` when no backend is eligible.
    pub fn pick(&mut self, client: &SocketAddr, listener: &SocketAddr) -> Option<usize> {
        let n = self.weights.len();
        match self.algorithm {
            Algorithm::RoundRobin => {
                for _ in 0..n {
                    let i = self.next % n;
                    self.next = (i + 1) % n;
                    if self.eligible(i) {
                        return Some(i);
                    }
                }
                None
            }
            Algorithm::Wrr => {
                // nginx: only the peers that may be chosen gain credit, and
                // the one chosen pays their total.
                let (mut best, mut total) = (None::<usize>, 0i64);
                for i in 0..n {
                    if !self.eligible(i) {
                        continue;
                    }
                    self.credit[i] += self.weights[i] as i64;
                    total += self.weights[i] as i64;
                    if best.is_none_or(|b| self.credit[i] > self.credit[b]) {
                        best = Some(i);
                    }
                }
                let b = best?;
                self.credit[b] -= total;
                Some(b)
            }
            Algorithm::LeastConn => {
                let mut best = None::<usize>;
                for k in 0..n {
                    let i = (self.next + k) % n;
                    if !self.eligible(i) {
                        continue;
                    }
                    // active_i / w_i < active_b / w_b, without division.
                    let better = best.is_none_or(|b| {
                        (self.active[i] as u64) * (self.weights[b] as u64)
                            < (self.active[b] as u64) * (self.weights[i] as u64)
                    });
                    if better {
                        best = Some(i);
                    }
                }
                let b = best?;
                self.next = (b + 1) % n;
                Some(b)
            }
            Algorithm::Maglev { source_affinity } => {
                // None eligible: say so now rather than scan every slot.
                if !(0..n).any(|i| self.eligible(i)) {
                    return None;
                }
                let t = self.table.as_ref()?;
                let (weights, available) = (&self.weights, &self.available);
                t.lookup_where(t.flow_hash(client, listener, source_affinity), |i| {
                    weights.get(i).is_some_and(|&w| w > 0) && available[i]
                })
            }
        }
    }

    /// A connection to backend `i` began (for `least-conn`).
    pub fn opened(&mut self, i: usize) {
        if let Some(a) = self.active.get_mut(i) {
            *a += 1;
        }
    }

    /// Connections to backend `i` now.
    pub fn active(&self, i: usize) -> u32 {
        self.active.get(i).copied().unwrap_or(0)
    }

    /// A connection to backend `i` ended.
    pub fn closed(&mut self, i: usize) {
        if let Some(a) = self.active.get_mut(i) {
            *a = a.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([203, 0, 113, 1], 1000 + i))
    }
    const VIP: ([u8; 4], u16) = ([198, 18, 0, 1], 80);

    fn picks(b: &mut Balancer, n: usize) -> Vec<usize> {
        (0..n).map(|i| b.pick(&addr(i as u16), &SocketAddr::from(VIP)).unwrap()).collect()
    }

    #[test]
    fn round_robin_takes_turns_and_skips_weight_zero() {
        let mut b = Balancer::new(Algorithm::RoundRobin, &[1, 0, 3], None);
        assert_eq!(picks(&mut b, 6), [0, 2, 0, 2, 0, 2]);
    }

    #[test]
    fn smooth_wrr_interleaves_like_nginx() {
        // nginx's documented example: weights 5, 1, 1 give a a b a c a a.
        let mut b = Balancer::new(Algorithm::Wrr, &[5, 1, 1], None);
        assert_eq!(picks(&mut b, 7), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(picks(&mut b, 7), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn least_conn_fills_by_weight_and_follows_closes() {
        let mut b = Balancer::new(Algorithm::LeastConn, &[1, 2], None);
        let mut count = [0u32; 2];
        for i in 0..300 {
            let k = b.pick(&addr(i), &SocketAddr::from(VIP)).unwrap();
            b.opened(k);
            count[k] += 1;
        }
        assert_eq!(count, [100, 200]);
        // Backend 1's connections end: new ones go there until it catches up.
        for _ in 0..150 {
            b.closed(1);
        }
        for i in 0..75 {
            let k = b.pick(&addr(i), &SocketAddr::from(VIP)).unwrap();
            assert_eq!(k, 1);
            b.opened(k);
        }
    }

    #[test]
    fn maglev_is_the_same_on_two_shards_and_none_without_weight() {
        let backends: Vec<_> = (0..4).map(|i| (addr(100 + i), 1)).collect();
        let t = Arc::new(maglev::Table::build(&backends, maglev::DEFAULT_SIZE, 0).unwrap());
        let mut s0 = Balancer::new(Algorithm::Maglev { source_affinity: false }, &[1; 4], Some(t.clone()));
        let mut s1 = Balancer::new(Algorithm::Maglev { source_affinity: false }, &[1; 4], Some(t));
        assert_eq!(picks(&mut s0, 1000), picks(&mut s1, 1000));
        let mut none = Balancer::new(Algorithm::Wrr, &[0, 0], None);
        assert_eq!(none.pick(&addr(1), &SocketAddr::from(VIP)), None);
    }

    #[test]
    fn names_parse_and_unknown_ones_say_what_is_known() {
        assert_eq!("maglev".parse(), Ok(Algorithm::Maglev { source_affinity: false }));
        assert_eq!("least-conn".parse(), Ok(Algorithm::LeastConn));
        assert!("random".parse::<Algorithm>().unwrap_err().contains("least-conn"));
    }
}

#[cfg(test)]
mod weight_tests {
    use super::*;

    const VIP: ([u8; 4], u16) = ([198, 18, 0, 1], 80);

    fn client(i: u32) -> SocketAddr {
        SocketAddr::from(((0xcb00_7100 + i).to_be_bytes(), (i % 60_000) as u16))
    }

    fn shares(b: &mut Balancer, n: usize, picks: u32) -> Vec<u32> {
        let mut seen = vec![0u32; n];
        for i in 0..picks {
            seen[b.pick(&client(i), &SocketAddr::from(VIP)).unwrap()] += 1;
        }
        seen
    }

    #[test]
    fn weight_zero_drains_and_a_new_weight_takes_its_share_at_once() {
        for algo in [Algorithm::RoundRobin, Algorithm::Wrr, Algorithm::LeastConn] {
            let mut b = Balancer::new(algo, &[1, 1, 1], None);
            b.set_weight(1, 0);
            let seen = shares(&mut b, 3, 3000);
            assert_eq!(seen[1], 0, "{algo:?}: drained: {seen:?}");
            b.set_weight(1, 1);
            assert!(shares(&mut b, 3, 3000).iter().all(|&n| n == 1000), "{algo:?}: undrained");
        }
        // Smooth WRR follows a new weight from the next pick: 1:1:1 -> 1:2:1.
        let mut b = Balancer::new(Algorithm::Wrr, &[1, 1, 1], None);
        shares(&mut b, 3, 1);
        b.set_weight(1, 2);
        assert_eq!(b.weight(1), 2);
        assert_eq!(shares(&mut b, 3, 4000), [1000, 2000, 1000]);
    }

    /// A Maglev drain needs no new table, and moves only the drained
    /// backend's flows; a new weight comes with its table.
    #[test]
    fn maglev_drains_without_a_rebuild_and_reweights_with_one() {
        let addrs: Vec<SocketAddr> = (0..4).map(|i| client(3000 + i)).collect();
        let build = |w: &[u32]| {
            let b: Vec<_> = addrs.iter().copied().zip(w.iter().copied()).collect();
            Arc::new(maglev::Table::build(&b, maglev::DEFAULT_SIZE, 0).unwrap())
        };
        let algo = Algorithm::Maglev { source_affinity: false };
        let mut b = Balancer::new(algo, &[1; 4], Some(build(&[1; 4])));
        let before: Vec<_> = (0..40_000).map(|i| b.pick(&client(i), &SocketAddr::from(VIP)).unwrap()).collect();
        b.set_weight(0, 0);
        for (i, &was) in before.iter().enumerate() {
            let now = b.pick(&client(i as u32), &SocketAddr::from(VIP)).unwrap();
            assert!(if was == 0 { now != 0 } else { now == was }, "flow {i}: {was} -> {now}");
        }
        b.set_weight(0, 1);
        b.set_weight(3, 3);
        b.set_table(build(&[1, 1, 1, 3]));
        let seen = shares(&mut b, 4, 60_000);
        assert!((27_000..33_000).contains(&seen[3]), "weight 3 of 6: {seen:?}");
    }
}

#[cfg(test)]
mod ejection_tests {
    use super::*;

    const VIP: ([u8; 4], u16) = ([198, 18, 0, 1], 80);

    fn client(i: u32) -> SocketAddr {
        SocketAddr::from(((0xcb00_7100 + i).to_be_bytes(), (i % 60_000) as u16))
    }

    #[test]
    fn an_ejected_backend_takes_no_client_under_every_algorithm() {
        let backends: Vec<_> = (0..4).map(|i| (client(1000 + i), 1)).collect();
        let t = Arc::new(maglev::Table::build(&backends, maglev::DEFAULT_SIZE, 0).unwrap());
        for algo in
            [Algorithm::RoundRobin, Algorithm::Wrr, Algorithm::LeastConn, Algorithm::Maglev { source_affinity: false }]
        {
            let mut b = Balancer::new(algo, &[1; 4], Some(t.clone()));
            b.set_available(2, false);
            let mut seen = [0u32; 4];
            for i in 0..4000 {
                let k = b.pick(&client(i), &SocketAddr::from(VIP)).unwrap();
                b.opened(k);
                seen[k] += 1;
            }
            assert_eq!(seen[2], 0, "{algo:?}: {seen:?}");
            assert!(seen.iter().enumerate().all(|(i, &n)| i == 2 || n > 900), "{algo:?}: {seen:?}");
            for i in 0..4 {
                b.set_available(i, false);
            }
            assert_eq!(b.pick(&client(1), &SocketAddr::from(VIP)), None, "{algo:?}: all out, none");
        }
    }

    /// Maglev without a rebuild: the flows of healthy backends stay where
    /// they were; only the ejected backend's flows move.
    #[test]
    fn maglev_ejection_moves_only_the_ejected_backends_flows() {
        let backends: Vec<_> = (0..5).map(|i| (client(2000 + i), 1)).collect();
        let t = Arc::new(maglev::Table::build(&backends, maglev::DEFAULT_SIZE, 0).unwrap());
        let mut b = Balancer::new(Algorithm::Maglev { source_affinity: false }, &[1; 5], Some(t));
        let before: Vec<_> = (0..100_000).map(|i| b.pick(&client(i), &SocketAddr::from(VIP)).unwrap()).collect();
        b.set_available(3, false);
        let mut moved = 0;
        for (i, &was) in before.iter().enumerate() {
            let now = b.pick(&client(i as u32), &SocketAddr::from(VIP)).unwrap();
            if was == 3 {
                assert_ne!(now, 3);
                moved += 1;
            } else {
                assert_eq!(now, was, "flow {i} moved off a healthy backend");
            }
        }
        assert!((15_000..25_000).contains(&moved), "{moved} flows were on backend 3");
    }
}
