//! Keyed hashing of flow keys for the shard tables.
//!
//! The tables sit directly behind the NIC: every key is chosen by a remote
//! peer, so the hash is keyed with a secret drawn once per process (getrandom).
//! Without the key an attacker cannot aim many tuples at one bucket run.
//!
//! The mix is the folded multiply (the 64x64->128 product with its halves
//! XORed) that foldhash and wyhash are built on, written out over the fixed
//! key layouts: a `FourTuple` is four 64-bit words plus the ports, a
//! `V4Tuple` one word plus the ports. Each word is XORed with its own key
//! word before multiplying, so every input position is keyed separately.
//! Measured against `foldhash` going through `Hash` (which feeds the
//! addresses as length-prefixed slices): 7-13 % less time per key, key
//! generation included (criterion group `hash` in `bench/benches/table.rs`).

use crate::flow::{Addr, FourTuple, V4Tuple};

/// The per-table secret.
#[derive(Clone, Copy, Debug)]
pub struct HashKey {
    k: [u64; 6],
}

impl HashKey {
    /// A key from the operating system's random source.
    ///
    /// Panics only if getrandom fails, which on Linux means no entropy source
    /// at all; this runs once at table construction, before any traffic.
    pub fn random() -> HashKey {
        let mut seed = [0u8; 8];
        getrandom::getrandom(&mut seed).expect("floodgate: getrandom failed, no key for the flow hash");
        HashKey::from_seed(u64::from_le_bytes(seed))
    }

    /// A deterministic key, for tests and reproducible benchmarks.
    pub fn from_seed(seed: u64) -> HashKey {
        // splitmix64 stretches one word into the six key words.
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            // A zero key word would let a zero input word annihilate the
            // product; force the low bit on.
            (z ^ (z >> 31)) | 1
        };
        HashKey { k: [next(), next(), next(), next(), next(), next()] }
    }
}

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn word(b: &[u8; 16], half: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[half * 8..half * 8 + 8]);
    u64::from_le_bytes(w)
}

/// A key the tables can hold: cheap to copy and compare, hashable under a
/// [`HashKey`]. The tables use the top 32 bits of the hash as the bucket tag
/// (and, through a multiply-shift, as the home bucket).
pub trait TableKey: Copy + Eq + core::fmt::Debug {
    fn keyed_hash(&self, key: &HashKey) -> u64;
}

impl TableKey for FourTuple {
    #[inline(always)]
    fn keyed_hash(&self, key: &HashKey) -> u64 {
        let k = &key.k;
        let ports = ((self.local_port as u64) << 16) | self.remote_port as u64;
        let a = fold_mul(word(&self.local_addr.0, 0) ^ k[0], word(&self.local_addr.0, 1) ^ k[1]);
        let b = fold_mul(word(&self.remote_addr.0, 0) ^ k[2], word(&self.remote_addr.0, 1) ^ k[3]);
        fold_mul(a ^ ports ^ k[4], b ^ k[5])
    }
}

impl TableKey for V4Tuple {
    #[inline(always)]
    fn keyed_hash(&self, key: &HashKey) -> u64 {
        let k = &key.k;
        let addrs = ((u32::from_le_bytes(self.local_addr) as u64) << 32) | u32::from_le_bytes(self.remote_addr) as u64;
        let ports = ((self.local_port as u64) << 16) | self.remote_port as u64;
        let a = fold_mul(addrs ^ k[0], ports ^ k[1]);
        fold_mul(a ^ k[2], k[3])
    }
}

impl TableKey for Addr {
    #[inline(always)]
    fn keyed_hash(&self, key: &HashKey) -> u64 {
        let k = &key.k;
        fold_mul(word(&self.0, 0) ^ k[0], word(&self.0, 1) ^ k[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(remote: [u8; 4], port: u16) -> FourTuple {
        FourTuple::new("198.18.0.1:80".parse().unwrap(), std::net::SocketAddr::from((remote, port)))
    }

    #[test]
    fn seed_changes_the_hash() {
        let t = v4([198, 18, 1, 2], 40000);
        let a = t.keyed_hash(&HashKey::from_seed(1));
        let b = t.keyed_hash(&HashKey::from_seed(2));
        assert_ne!(a, b);
        assert_eq!(a, t.keyed_hash(&HashKey::from_seed(1)));
    }

    #[test]
    fn every_field_reaches_the_tag() {
        let k = HashKey::from_seed(7);
        let base = v4([198, 18, 1, 2], 40000);
        let tag = |t: &FourTuple| (t.keyed_hash(&k) >> 32) as u32;
        let mut other = base;
        other.remote_port ^= 1;
        assert_ne!(tag(&base), tag(&other));
        let mut other = base;
        other.local_port ^= 1;
        assert_ne!(tag(&base), tag(&other));
        let mut other = base;
        other.remote_addr.0[15] ^= 1;
        assert_ne!(tag(&base), tag(&other));
        let mut other = base;
        other.local_addr.0[0] ^= 1;
        assert_ne!(tag(&base), tag(&other));
        let b4 = base.as_v4().unwrap();
        let mut o4 = b4;
        o4.remote_port ^= 1;
        assert_ne!(b4.keyed_hash(&k) >> 32, o4.keyed_hash(&k) >> 32);
    }

    /// Sequential client ports (what a load generator produces) must spread
    /// evenly over the tag space: count per 1/64th of the range.
    #[test]
    fn sequential_ports_spread_over_tags() {
        let k = HashKey::random();
        let mut hist = [0u32; 64];
        for p in 0..65536u32 {
            let t = v4([198, 18, 0, 2], p as u16).as_v4().unwrap();
            hist[(t.keyed_hash(&k) >> 58) as usize] += 1;
        }
        let expect = 65536 / 64;
        for (i, &c) in hist.iter().enumerate() {
            assert!(c > expect * 3 / 4 && c < expect * 5 / 4, "bucket {i}: {c} (expected ~{expect})");
        }
    }
}
