//! Connections per source address, for the per-source connection limit
//! (`TcpConfig::source_limit`): a fixed open-addressing table of address →
//! count, allocated once, O(1) to count a connection in and out.
//!
//! Linear probing at a load factor of at most one half, keyed hash (the
//! sources are chosen by remote peers, [`super::HashKey`]), and
//! backward-shift deletion (Knuth, TAOCP vol. 3, 6.4 Algorithm R), so a
//! slot is either taken or free and no tombstones build up however many
//! sources come and go. An entry lives while its count is above zero.
//!
//! IPv6 sources are counted per /64: one host holds a whole /64 (RFC 4291
//! §2.5.1, SLAAC), so counting single addresses would let it walk around
//! the limit and fill the table.
//!
//! When the table already holds its capacity of distinct sources, a new
//! source is admitted uncounted ([`Admit::Full`]): the caller counts that.
//! The limit guards against a few sources holding many connections; many
//! sources are the connection table's and the SYN cookies' business.

use super::hash::{HashKey, TableKey};
use crate::flow::Addr;

/// The answer to [`SourceTable::acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Counted; release it with [`SourceTable::release`].
    Counted,
    /// The source already holds `limit` connections.
    OverLimit,
    /// The table holds its capacity of sources: not counted.
    Full,
}

pub struct SourceTable {
    keys: Vec<Addr>,
    /// 0 marks a free slot.
    counts: Vec<u32>,
    mask: usize,
    len: usize,
    cap: usize,
    key: HashKey,
}

/// The key a source is counted under: IPv4 whole, IPv6 by its /64.
fn source_key(a: &Addr) -> Addr {
    let mut k = *a;
    if !a.is_v4() {
        k.0[8..].fill(0);
    }
    k
}

impl SourceTable {
    /// A table for up to `sources` distinct sources (at least one).
    pub fn new(sources: u32, key: HashKey) -> SourceTable {
        let cap = sources.max(1) as usize;
        let slots = (cap * 2).next_power_of_two();
        SourceTable { keys: vec![Addr::default(); slots], counts: vec![0; slots], mask: slots - 1, len: 0, cap, key }
    }

    /// Distinct sources counted now.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.cap
    }
    pub fn memory_bytes(&self) -> usize {
        self.keys.len() * (core::mem::size_of::<Addr>() + 4)
    }

    fn home(&self, k: &Addr) -> usize {
        (k.keyed_hash(&self.key) >> 32) as usize & self.mask
    }

    /// The slot holding `k`, or the free slot where it would go.
    fn find(&self, k: &Addr) -> (usize, bool) {
        let mut i = self.home(k);
        loop {
            if self.counts[i] == 0 {
                return (i, false);
            }
            if self.keys[i] == *k {
                return (i, true);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Connections counted for `a`'s source.
    pub fn count(&self, a: &Addr) -> u32 {
        match self.find(&source_key(a)) {
            (i, true) => self.counts[i],
            _ => 0,
        }
    }

    /// Whether `a`'s source holds `limit` connections or more.
    pub fn at_limit(&self, a: &Addr, limit: u32) -> bool {
        self.count(a) >= limit
    }

    /// Counts one more connection for `a`'s source, unless it holds `limit`.
    pub fn acquire(&mut self, a: &Addr, limit: u32) -> Admit {
        let k = source_key(a);
        match self.find(&k) {
            (i, true) if self.counts[i] >= limit => Admit::OverLimit,
            (i, true) => {
                self.counts[i] += 1;
                Admit::Counted
            }
            _ if limit == 0 => Admit::OverLimit,
            _ if self.len >= self.cap => Admit::Full,
            (i, false) => {
                self.keys[i] = k;
                self.counts[i] = 1;
                self.len += 1;
                Admit::Counted
            }
        }
    }

    /// Counts one connection of `a`'s source out (one that was `Counted`).
    pub fn release(&mut self, a: &Addr) {
        let (mut hole, found) = self.find(&source_key(a));
        if !found {
            debug_assert!(false, "release of a source never counted");
            return;
        }
        self.counts[hole] -= 1;
        if self.counts[hole] > 0 {
            return;
        }
        self.len -= 1;
        // Backward shift: pull later entries of the run into the hole when
        // their home is not between the hole and where they sit.
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            if self.counts[j] == 0 {
                return;
            }
            let home = self.home(&self.keys[j]);
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.keys[hole] = self.keys[j];
                self.counts[hole] = self.counts[j];
                self.counts[j] = 0;
                hole = j;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn v4(i: u32) -> Addr {
        Addr::v4(i.to_be_bytes())
    }

    #[test]
    fn counts_up_to_the_limit_and_back_down() {
        let mut t = SourceTable::new(4, HashKey::from_seed(1));
        let a = v4(0xc612_000a);
        for _ in 0..3 {
            assert_eq!(t.acquire(&a, 3), Admit::Counted);
        }
        assert_eq!(t.acquire(&a, 3), Admit::OverLimit);
        assert!(t.at_limit(&a, 3));
        assert_eq!((t.count(&a), t.len()), (3, 1));
        t.release(&a);
        assert_eq!(t.acquire(&a, 3), Admit::Counted);
        for _ in 0..3 {
            t.release(&a);
        }
        assert_eq!((t.count(&a), t.len()), (0, 0));
    }

    #[test]
    fn a_full_table_admits_new_sources_uncounted() {
        let mut t = SourceTable::new(2, HashKey::from_seed(2));
        assert_eq!(t.acquire(&v4(1), 5), Admit::Counted);
        assert_eq!(t.acquire(&v4(2), 5), Admit::Counted);
        assert_eq!(t.acquire(&v4(3), 5), Admit::Full);
        assert_eq!(t.acquire(&v4(1), 5), Admit::Counted, "known sources still count");
        t.release(&v4(2));
        assert_eq!(t.acquire(&v4(3), 5), Admit::Counted);
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let mut t = SourceTable::new(8, HashKey::from_seed(3));
        let a: Addr = "2001:db8:1:2::1".parse::<std::net::Ipv6Addr>().unwrap().into();
        let b: Addr = "2001:db8:1:2:ffff::9".parse::<std::net::Ipv6Addr>().unwrap().into();
        let c: Addr = "2001:db8:1:3::1".parse::<std::net::Ipv6Addr>().unwrap().into();
        assert_eq!(t.acquire(&a, 2), Admit::Counted);
        assert_eq!(t.acquire(&b, 2), Admit::Counted);
        assert_eq!(t.acquire(&a, 2), Admit::OverLimit);
        assert_eq!(t.acquire(&c, 2), Admit::Counted);
        assert_eq!(t.len(), 2);
    }

    /// Random acquire/release against a HashMap model; deletion must keep
    /// every remaining entry reachable (backward shift) at full load.
    #[test]
    fn matches_a_model_under_churn() {
        let mut t = SourceTable::new(64, HashKey::from_seed(4));
        let mut model: HashMap<u32, u32> = HashMap::new();
        let mut x = 0x9e37_79b9u32;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let src = x % 100;
            let a = v4(src);
            if x & 0x100 != 0 {
                let n = model.get(&src).copied().unwrap_or(0);
                let want = if n >= 3 {
                    Admit::OverLimit
                } else if n == 0 && model.len() >= 64 {
                    Admit::Full
                } else {
                    Admit::Counted
                };
                assert_eq!(t.acquire(&a, 3), want);
                if want == Admit::Counted {
                    *model.entry(src).or_default() += 1;
                }
            } else if let Some(n) = model.get_mut(&src) {
                t.release(&a);
                *n -= 1;
                if *n == 0 {
                    model.remove(&src);
                }
            }
            if x.is_multiple_of(1000) {
                for s in 0..100 {
                    assert_eq!(t.count(&v4(s)), model.get(&s).copied().unwrap_or(0));
                }
            }
        }
        assert_eq!(t.len(), model.len());
    }
}
