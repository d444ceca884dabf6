//! The Maglev lookup table: consistent hashing that every box builds alike.
//!
//! Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//! Balancer", NSDI 2016, §3.4. Each backend has a permutation of the table's
//! M slots (M prime), given by two hashes of its name:
//!
//! ```text
//! offset = h1(name) mod M,  skip = h2(name) mod (M - 1) + 1,
//! permutation[j] = (offset + j * skip) mod M
//! ```
//!
//! Backends take turns claiming the next free slot of their permutation
//! until the table is full (Pseudocode 1). A flow's backend is
//! `table[hash(flow) mod M]`. With equal weights every backend owns M/N
//! slots give or take one; removing one backend moves its own slots and
//! only a few others (the paper's Figure 11), so a flow stays on its
//! backend when an unrelated backend goes.
//!
//! Weights follow the turn-taking rule Envoy's Maglev uses: in round `r`
//! a backend of weight `w` takes a turn while its turns so far stay within
//! `r * w / max_weight`, so its share of the slots is its share of the
//! weights. Weight 0 takes no slot (a drained backend).
//!
//! Determinism across boxes: the hashes are SipHash-1-3 under fixed keys
//! (mixed with an operator-chosen seed that every box of a pool shares),
//! over the backend's address and port in a fixed byte layout, never a
//! per-process random key. The table is built once per configuration, off
//! the packet path, and only read afterwards.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::SocketAddr;

/// The paper's default table size, a prime: lookups spread over 65,537
/// slots keep every backend's share within a fraction of a percent.
pub const DEFAULT_SIZE: u32 = 65_537;

/// Fixed key words for the two permutation hashes and the flow hash; a
/// pool's seed is added to them so that operators may pick another table.
const K_OFFSET: (u64, u64) = (0x6d61_676c_6576_3031, 0x6f66_6673_6574_2d31);
const K_SKIP: (u64, u64) = (0x6d61_676c_6576_3032, 0x736b_6970_2d2d_2d32);
const K_FLOW: (u64, u64) = (0x6d61_676c_6576_3033, 0x666c_6f77_2d2d_2d33);

/// Why a table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The size is not a prime number above 2.
    SizeNotPrime(u32),
    /// More backends than slots (every backend of positive weight needs one).
    TooManyBackends { backends: usize, size: u32 },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::SizeNotPrime(m) => write!(f, "the Maglev table size {m} is not a prime above 2"),
            Error::TooManyBackends { backends, size } => {
                write!(f, "{backends} backends do not fit a Maglev table of {size} slots")
            }
        }
    }
}

/// A built table: slot → backend index, `NONE` when no backend has weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    slots: Box<[u16]>,
    seed: u64,
}

/// A slot owned by no backend (every weight is 0).
pub const NONE: u16 = u16::MAX;

fn sip(key: (u64, u64), seed: u64, bytes: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(key.0 ^ seed, key.1.wrapping_add(seed));
    h.write(bytes);
    h.finish()
}

/// The backend's name as hashed: family, address, port, in network order.
fn name(addr: &SocketAddr) -> ([u8; 19], usize) {
    let mut b = [0u8; 19];
    match addr {
        SocketAddr::V4(a) => {
            b[0] = 4;
            b[1..5].copy_from_slice(&a.ip().octets());
            b[5..7].copy_from_slice(&a.port().to_be_bytes());
            (b, 7)
        }
        SocketAddr::V6(a) => {
            b[0] = 6;
            b[1..17].copy_from_slice(&a.ip().octets());
            b[17..19].copy_from_slice(&a.port().to_be_bytes());
            (b, 19)
        }
    }
}

fn is_prime(m: u32) -> bool {
    if m < 3 || m.is_multiple_of(2) {
        return false;
    }
    let mut d = 3u32;
    while (d as u64) * (d as u64) <= m as u64 {
        if m.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

impl Table {
    /// Builds the table of `size` slots (a prime) for `backends` with their
    /// weights. At most `u16::MAX - 1` backends.
    pub fn build(backends: &[(SocketAddr, u32)], size: u32, seed: u64) -> Result<Table, Error> {
        if !is_prime(size) {
            return Err(Error::SizeNotPrime(size));
        }
        let live = backends.iter().filter(|b| b.1 > 0).count();
        if live > size as usize || backends.len() >= NONE as usize {
            return Err(Error::TooManyBackends { backends: backends.len(), size });
        }
        let m = size as u64;
        let mut slots = vec![NONE; size as usize].into_boxed_slice();
        if live == 0 {
            return Ok(Table { slots, seed });
        }
        struct Turn {
            offset: u64,
            skip: u64,
            next: u64,
            weight: u64,
            target: u64,
        }
        let mut turns: Vec<Turn> = backends
            .iter()
            .map(|(addr, weight)| {
                let (b, n) = name(addr);
                Turn {
                    offset: sip(K_OFFSET, seed, &b[..n]) % m,
                    skip: sip(K_SKIP, seed, &b[..n]) % (m - 1) + 1,
                    next: 0,
                    weight: *weight as u64,
                    target: 0,
                }
            })
            .collect();
        let max_weight = turns.iter().map(|t| t.weight).max().unwrap_or(1);
        let mut filled = 0u64;
        let mut round = 1u64;
        while filled < m {
            for (i, t) in turns.iter_mut().enumerate() {
                if filled == m {
                    break;
                }
                if t.weight == 0 || round * t.weight < t.target {
                    continue;
                }
                t.target += max_weight;
                // Each backend's permutation visits every slot once (skip
                // and M coprime), so a free one is always found.
                let mut c = (t.offset + t.next * t.skip) % m;
                while slots[c as usize] != NONE {
                    t.next += 1;
                    c = (t.offset + t.next * t.skip) % m;
                }
                slots[c as usize] = i as u16;
                t.next += 1;
                filled += 1;
            }
            round += 1;
        }
        Ok(Table { slots, seed })
    }

    /// The backend index for a flow hash, `None` when no backend has weight.
    #[inline]
    pub fn lookup(&self, flow_hash: u64) -> Option<usize> {
        let s = self.slots[(flow_hash % self.slots.len() as u64) as usize];
        (s != NONE).then_some(s as usize)
    }

    /// As `lookup`, but a slot whose backend fails `ok` passes the flow on
    /// to the next slot (in table order) whose backend passes: the flows of
    /// the backends that pass never move.
    #[inline]
    pub fn lookup_where(&self, flow_hash: u64, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let m = self.slots.len();
        let start = (flow_hash % m as u64) as usize;
        (0..m).map(|k| self.slots[(start + k) % m]).find(|&s| s != NONE && ok(s as usize)).map(|s| s as usize)
    }

    /// The hash of a client's flow that `lookup` takes: its source address
    /// and port and the listener's address and port, or (source affinity)
    /// the source address alone. Same seed, same hash on every box.
    pub fn flow_hash(&self, client: &SocketAddr, listener: &SocketAddr, source_only: bool) -> u64 {
        let mut b = [0u8; 38];
        let (c, cn) = name(client);
        let mut n = if source_only {
            // The port is the name's last two bytes: leave it out.
            b[..cn - 2].copy_from_slice(&c[..cn - 2]);
            cn - 2
        } else {
            b[..cn].copy_from_slice(&c[..cn]);
            cn
        };
        if !source_only {
            let (l, ln) = name(listener);
            b[n..n + ln].copy_from_slice(&l[..ln]);
            n += ln;
        }
        sip(K_FLOW, self.seed, &b[..n])
    }

    /// Slots owned by each of `backends` backends.
    pub fn shares(&self, backends: usize) -> Vec<u32> {
        let mut n = vec![0u32; backends];
        for &s in self.slots.iter() {
            if let Some(c) = n.get_mut(s as usize) {
                *c += 1;
            }
        }
        n
    }

    /// The table's size M.
    pub fn size(&self) -> u32 {
        self.slots.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: usize) -> Vec<(SocketAddr, u32)> {
        (0..n).map(|i| (SocketAddr::from(([198, 18, 2, 10 + (i % 200) as u8], 8000 + (i / 200) as u16)), 1)).collect()
    }

    /// splitmix64: a deterministic stream of client tuples.
    fn tuples(n: usize) -> impl Iterator<Item = SocketAddr> {
        let mut s = 0x1234_5678_u64;
        (0..n).map(move |_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            SocketAddr::from(((z as u32).to_be_bytes(), (z >> 32) as u16))
        })
    }

    const VIP: ([u8; 4], u16) = ([198, 18, 0, 1], 80);

    #[test]
    fn equal_weights_own_equal_shares_to_one_slot() {
        for n in [1, 2, 3, 4, 7, 10, 100, 1000] {
            let t = Table::build(&backends(n), DEFAULT_SIZE, 0).unwrap();
            let shares = t.shares(n);
            let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(hi - lo <= 1, "{n} backends: shares {lo}..{hi}");
            assert_eq!(shares.iter().sum::<u32>(), DEFAULT_SIZE);
        }
    }

    #[test]
    fn weighted_shares_are_within_one_percent_of_the_weights() {
        let weights = [1u32, 2, 3, 5, 10, 100];
        let mut b = backends(weights.len());
        for (e, w) in b.iter_mut().zip(weights) {
            e.1 = w;
        }
        let t = Table::build(&b, DEFAULT_SIZE, 0).unwrap();
        let total: u32 = weights.iter().sum();
        for (i, share) in t.shares(b.len()).into_iter().enumerate() {
            let want = DEFAULT_SIZE as f64 * weights[i] as f64 / total as f64;
            assert!((share as f64 - want).abs() <= want * 0.01 + 1.0, "backend {i}: {share} slots, want {want:.0}");
        }
    }

    #[test]
    fn weight_zero_takes_no_slot_and_all_zero_answers_none() {
        let mut b = backends(3);
        b[1].1 = 0;
        let t = Table::build(&b, DEFAULT_SIZE, 0).unwrap();
        assert_eq!(t.shares(3)[1], 0);
        for w in &mut b {
            w.1 = 0;
        }
        let t = Table::build(&b, 13, 0).unwrap();
        assert_eq!(t.lookup(5), None);
    }

    #[test]
    fn bad_sizes_and_too_many_backends_are_refused() {
        assert_eq!(Table::build(&backends(2), 65_536, 0), Err(Error::SizeNotPrime(65_536)));
        assert_eq!(Table::build(&backends(2), 1, 0), Err(Error::SizeNotPrime(1)));
        assert!(matches!(Table::build(&backends(20), 13, 0), Err(Error::TooManyBackends { .. })));
    }

    /// Removing one backend of N moves that backend's flows and few others;
    /// over 1,000,000 flows, compared with the paper's Figure 11 (a few
    /// percent at most at M = 65,537 for small N).
    #[test]
    fn removing_one_backend_moves_its_flows_and_few_others() {
        const FLOWS: usize = 1_000_000;
        for n in [4usize, 10, 100] {
            let all = backends(n);
            let before = Table::build(&all, DEFAULT_SIZE, 0).unwrap();
            let gone = n / 2;
            let rest: Vec<_> = all.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, b)| *b).collect();
            let after = Table::build(&rest, DEFAULT_SIZE, 0).unwrap();
            // Index in `rest` back to the original backend index.
            let orig = |i: usize| if i >= gone { i + 1 } else { i };
            let (mut on_gone, mut moved_others) = (0usize, 0usize);
            for c in tuples(FLOWS) {
                let h = before.flow_hash(&c, &SocketAddr::from(VIP), false);
                let b = before.lookup(h).unwrap();
                let a = orig(after.lookup(after.flow_hash(&c, &SocketAddr::from(VIP), false)).unwrap());
                if b == gone {
                    on_gone += 1;
                } else if a != b {
                    moved_others += 1;
                }
            }
            let total_moved = (on_gone + moved_others) as f64 / FLOWS as f64;
            let extra = moved_others as f64 / FLOWS as f64;
            eprintln!(
                "{n} backends, one removed: {:.2} % of flows moved, {:.3} % beyond its own",
                100.0 * total_moved,
                100.0 * extra
            );
            assert!(total_moved <= 1.0 / n as f64 + 0.02, "{n} backends: {total_moved}");
            assert!(extra <= 0.02, "{n} backends: {extra} of the flows moved needlessly");
        }
    }

    /// Same inputs, same table, on every run and every machine: the table's
    /// digest is pinned (fixed keys, fixed byte layout, integer arithmetic).
    #[test]
    fn the_table_is_the_same_on_every_run_and_machine() {
        let digest = |t: &Table| sip((1, 2), 0, &t.slots.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<_>>());
        let a = Table::build(&backends(4), DEFAULT_SIZE, 0).unwrap();
        let b = Table::build(&backends(4), DEFAULT_SIZE, 0).unwrap();
        assert_eq!(a, b);
        assert_eq!(digest(&a), PINNED_DIGEST, "the Maglev table changed: boxes on another build would disagree");
        // Another seed, another table; the seed is part of the pool's config.
        assert_ne!(Table::build(&backends(4), DEFAULT_SIZE, 7).unwrap(), a);
        let h = a.flow_hash(&SocketAddr::from(([203, 0, 113, 7], 40_000)), &SocketAddr::from(VIP), false);
        assert_eq!(h, PINNED_FLOW_HASH);
        // Source affinity ignores the client's port and the listener.
        let s1 = a.flow_hash(&SocketAddr::from(([203, 0, 113, 7], 1)), &SocketAddr::from(VIP), true);
        let s2 = a.flow_hash(&SocketAddr::from(([203, 0, 113, 7], 2)), &SocketAddr::from(([198, 18, 0, 2], 443)), true);
        assert_eq!(s1, s2);
    }

    const PINNED_DIGEST: u64 = 9_856_016_412_756_402_955;
    const PINNED_FLOW_HASH: u64 = 2_384_791_423_911_731_377;
}
