//! Keyed hashes of the 4-tuple: initial sequence numbers (RFC 6528 §3),
//! timestamp offsets (RFC 7323 §5.4) and SYN cookies (RFC 4987 §3.6).
//!
//! ISN = M + F(4-tuple, secret), with M a clock ticking every 4 µs and F
//! SipHash-1-3 under a key drawn once per process. One hash per SYN gives both
//! the ISN (low 32 bits) and the connection's timestamp offset (high 32 bits).
//!
//! The hash is standard SipHash-1-3 (checked against the `siphasher` crate in
//! the tests) over a fixed-size message of whole little-endian words, so it
//! runs as straight-line code with no byte buffering: for an IPv4 tuple the
//! message is 3 words (both addresses, ports and a family tag, the extra
//! word), 6 SipRounds in all; for IPv6 it is 6 words (the 16-byte
//! addresses), 9 SipRounds. The family tag and the message length keep the
//! two encodings apart. This is 3-4x cheaper than feeding the IPv4-mapped
//! 16-byte addresses through `Hasher::write` (measured in
//! `bench/benches/handshake.rs`), with the same key and PRF.
//!
//! A SYN cookie is our ISN in a cookie-mode SYN-ACK. Its 32 bits are
//!
//! ```text
//!  31..30  29..23         22..0
//!  epoch   mss|wscale|sack  MAC over (4-tuple, peer ISN, epoch counter, those 7 bits)
//! ```
//!
//! `epoch` is the low two bits of a 64-second counter; a cookie is accepted
//! for the current and the previous epoch (64 to 128 s, as Linux). The 23-bit
//! MAC leaves a blind guess a 2^-22 chance (two epochs tried). The option
//! state (MSS table index, window scale, SACK-permitted) rides inside the
//! cookie itself, so it survives peers that do not use timestamps.

use crate::flow::FourTuple;
use crate::time::Instant;
use crate::wire::SeqNumber;

/// MSS values a cookie can carry (RFC 4987 §3.6: a small table, indexed),
/// per family, as Linux's `msstab`s: IPv4's smallest is RFC 9293 §3.7.1's
/// default of 536; IPv6's is 1220, the IPv6 minimum MTU of 1280 less 60
/// (RFC 8200 §5, the default a peer without an MSS option gets), so an
/// IPv6 SYN without the option is not cut to 536.
pub const COOKIE_MSS: [u16; 4] = [536, 1300, 1440, 1460];
pub const COOKIE_MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// The MSS a peer that sent no MSS option may receive (RFC 9293 §3.7.1;
/// RFC 8200 §5 for IPv6).
pub const fn default_mss(v6: bool) -> u16 {
    if v6 {
        COOKIE_MSS_V6[0]
    } else {
        COOKIE_MSS[0]
    }
}

fn cookie_table(t: &FourTuple) -> &'static [u16; 4] {
    if t.remote_addr.is_v4() {
        &COOKIE_MSS
    } else {
        &COOKIE_MSS_V6
    }
}
const EPOCH_SECS: u64 = 64;
const MAC_BITS: u32 = 23;
const MAC_MASK: u32 = (1 << MAC_BITS) - 1;

/// What a cookie carries from the SYN to the final ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieOptions {
    pub mss: u16,
    /// The peer's window-scale shift, `None` if it offered none.
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
}

/// The per-process secrets.
#[derive(Clone)]
pub struct Secrets {
    isn_key: SipKey,
    cookie_key: SipKey,
}

/// Family tags in the high half of the ports word.
const FAMILY_V4: u64 = 4 << 32;
const FAMILY_V6: u64 = 6 << 32;

#[inline(always)]
fn le64(b: &[u8; 16], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// A SipHash key as its two little-endian words.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SipKey {
    k0: u64,
    k1: u64,
}

impl SipKey {
    #[inline(always)]
    fn new(key: &[u8; 16]) -> SipKey {
        SipKey { k0: le64(key, 0), k1: le64(key, 8) }
    }
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-1-3 (one compression round, three finalization rounds) of the
/// message made of the little-endian bytes of `m`: the same value as
/// `SipHasher13::new_with_key(key)` fed those bytes, without its buffering.
#[inline(always)]
fn siphash13<const N: usize>(k: &SipKey, m: &[u64; N]) -> u64 {
    let mut v = [
        k.k0 ^ 0x736f_6d65_7073_6575,
        k.k1 ^ 0x646f_7261_6e64_6f6d,
        k.k0 ^ 0x6c79_6765_6e65_7261,
        k.k1 ^ 0x7465_6462_7974_6573,
    ];
    for &w in m {
        v[3] ^= w;
        sip_round(&mut v);
        v[0] ^= w;
    }
    // The final block: no tail bytes, the message length in the top byte.
    let last = ((8 * N) as u64) << 56;
    v[3] ^= last;
    sip_round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    sip_round(&mut v);
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

impl Secrets {
    /// Fresh keys from the operating system's random source.
    pub fn random() -> Secrets {
        let mut k = [0u8; 32];
        // A machine without a random source cannot run a TCP stack safely.
        getrandom::getrandom(&mut k).expect("getrandom failed: no OS random source");
        Self::from_bytes(k)
    }

    /// Fixed keys, for deterministic tests.
    pub fn from_bytes(k: [u8; 32]) -> Secrets {
        let mut isn_key = [0u8; 16];
        let mut cookie_key = [0u8; 16];
        isn_key.copy_from_slice(&k[..16]);
        cookie_key.copy_from_slice(&k[16..]);
        Secrets { isn_key: SipKey::new(&isn_key), cookie_key: SipKey::new(&cookie_key) }
    }

    /// The ISN and cookie keys, each as its two little-endian words: for
    /// the XDP program, which answers SYNs with the same cookies
    /// (`bpf/syncookie.h`).
    pub fn keys(&self) -> ([u64; 2], [u64; 2]) {
        ([self.isn_key.k0, self.isn_key.k1], [self.cookie_key.k0, self.cookie_key.k1])
    }

    /// A secret 64-bit seed for `purpose` (the challenge-ACK budget's
    /// random draws), so that no one outside can predict them.
    pub fn seed(&self, purpose: u64) -> u64 {
        siphash13(&self.cookie_key, &[0x7365_6564_u64, purpose])
    }

    #[inline]
    fn hash_tuple(k: &SipKey, t: &FourTuple, extra: u64) -> u64 {
        let ports = ((t.local_port as u64) << 16) | t.remote_port as u64;
        let (l, r) = (&t.local_addr.0, &t.remote_addr.0);
        let (l0, l1, r0, r1) = (le64(l, 0), le64(l, 8), le64(r, 0), le64(r, 8));
        // IPv4-mapped (::ffff:a.b.c.d): the first 8 bytes zero, then 0000ffff.
        const MAPPED: u32 = 0xffff_0000;
        if l0 == 0 && r0 == 0 && l1 as u32 == MAPPED && r1 as u32 == MAPPED {
            let addrs = (l1 >> 32) | (r1 >> 32) << 32;
            siphash13(k, &[addrs, ports | FAMILY_V4, extra])
        } else {
            siphash13(k, &[l0, l1, r0, r1, ports | FAMILY_V6, extra])
        }
    }

    /// RFC 6528 ISN plus the RFC 7323 timestamp offset for a connection.
    pub fn isn(&self, t: &FourTuple, now: Instant) -> (SeqNumber, u32) {
        let f = Self::hash_tuple(&self.isn_key, t, 0);
        let m = (now.total_micros() / 4) as u32;
        (SeqNumber((f as u32).wrapping_add(m)), (f >> 32) as u32)
    }

    /// The timestamp offset alone (the same value `isn` gives), for a
    /// connection rebuilt from a cookie.
    pub fn ts_offset(&self, t: &FourTuple) -> u32 {
        (Self::hash_tuple(&self.isn_key, t, 0) >> 32) as u32
    }

    fn cookie_mac(&self, t: &FourTuple, peer_isn: SeqNumber, counter: u64, data: u32) -> u32 {
        let extra = (counter << 40) ^ ((data as u64) << 32) ^ peer_isn.0 as u64;
        Self::hash_tuple(&self.cookie_key, t, extra) as u32 & MAC_MASK
    }

    fn encode_options(table: &[u16; 4], o: &CookieOptions) -> u32 {
        let mss_idx = table.iter().rposition(|&m| m <= o.mss).unwrap_or(0) as u32;
        let ws = o.window_scale.map_or(15, |s| s.min(14) as u32);
        (mss_idx << 5) | (ws << 1) | o.sack_permitted as u32
    }

    fn decode_options(table: &[u16; 4], data: u32) -> CookieOptions {
        let ws = (data >> 1) & 0xf;
        CookieOptions {
            mss: table[(data >> 5) as usize & 3],
            window_scale: if ws == 15 { None } else { Some(ws as u8) },
            sack_permitted: data & 1 == 1,
        }
    }

    /// The cookie to use as our ISN in answer to a SYN with `peer_isn`.
    /// The MSS is rounded down to the family's table.
    pub fn make_cookie(&self, t: &FourTuple, peer_isn: SeqNumber, opts: &CookieOptions, now: Instant) -> SeqNumber {
        let counter = now.total_micros() / 1_000_000 / EPOCH_SECS;
        let data = Self::encode_options(cookie_table(t), opts);
        let mac = self.cookie_mac(t, peer_isn, counter, data);
        SeqNumber(((counter as u32 & 3) << 30) | (data << MAC_BITS) | mac)
    }

    /// Checks the cookie a final ACK returns (`ack - 1`) for a SYN whose ISN
    /// was `peer_isn` (`seq - 1`). Returns the options it carried.
    pub fn check_cookie(
        &self,
        t: &FourTuple,
        peer_isn: SeqNumber,
        cookie: SeqNumber,
        now: Instant,
    ) -> Option<CookieOptions> {
        let now_counter = now.total_micros() / 1_000_000 / EPOCH_SECS;
        let epoch = (cookie.0 >> 30) as u64;
        let data = (cookie.0 >> MAC_BITS) & 0x7f;
        let mac = cookie.0 & MAC_MASK;
        (0..2u64).filter_map(|age| now_counter.checked_sub(age)).find_map(|counter| {
            (counter & 3 == epoch && self.cookie_mac(t, peer_isn, counter, data) == mac)
                .then(|| Self::decode_options(cookie_table(t), data))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn tuple(port: u16) -> FourTuple {
        FourTuple::new("198.18.0.1:80".parse().unwrap(), format!("198.18.0.2:{port}").parse().unwrap())
    }

    fn secrets() -> Secrets {
        Secrets::from_bytes([7; 32])
    }

    #[test]
    fn siphash13_is_the_reference_siphash13() {
        use siphasher::sip::SipHasher13;
        use std::hash::Hasher;
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let words = [0x0706_0504_0302_0100u64, 0x0f0e_0d0c_0b0a_0908, 0xdead_beef_0123_4567];
        let mut h = SipHasher13::new_with_key(&key);
        for w in words {
            h.write(&w.to_le_bytes());
        }
        assert_eq!(siphash13(&SipKey::new(&key), &words), h.finish());
        let mut h = SipHasher13::new_with_key(&key);
        h.write(&[]);
        assert_eq!(siphash13::<0>(&SipKey::new(&key), &[]), h.finish());
        for n in 1..6u64 {
            let m: Vec<u64> = (0..n).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
            let mut h = SipHasher13::new_with_key(&key);
            for w in &m {
                h.write_u64(*w);
            }
            let got = match n {
                1 => siphash13(&SipKey::new(&key), &[m[0]]),
                2 => siphash13(&SipKey::new(&key), &[m[0], m[1]]),
                3 => siphash13(&SipKey::new(&key), &[m[0], m[1], m[2]]),
                4 => siphash13(&SipKey::new(&key), &[m[0], m[1], m[2], m[3]]),
                _ => siphash13(&SipKey::new(&key), &[m[0], m[1], m[2], m[3], m[4]]),
            };
            assert_eq!(got, h.finish(), "{n} words");
        }
    }

    #[test]
    fn v4_tuples_hash_their_compact_form() {
        let t = tuple(1000);
        let (l, r) = (t.local_addr.as_v4().unwrap(), t.remote_addr.as_v4().unwrap());
        let addrs = u32::from_le_bytes(l) as u64 | (u32::from_le_bytes(r) as u64) << 32;
        let want = siphash13(&SipKey::new(&[7; 16]), &[addrs, (80 << 16 | 1000) | FAMILY_V4, 9]);
        assert_eq!(Secrets::hash_tuple(&SipKey::new(&[7; 16]), &t, 9), want);
    }

    #[test]
    fn v4_and_v6_tuples_hash_apart() {
        let s = secrets();
        let v4 = tuple(1000);
        let mut v6 = v4;
        v6.local_addr.0[0] = 0x20;
        assert_ne!(s.ts_offset(&v4), s.ts_offset(&v6));
        let mut other = v4;
        other.local_port = 81;
        assert_ne!(s.ts_offset(&v4), s.ts_offset(&other));
        let mut other = v4;
        other.remote_addr.0[15] ^= 1;
        assert_ne!(s.ts_offset(&v4), s.ts_offset(&other));
    }

    #[test]
    fn isn_advances_with_the_clock_and_differs_per_tuple() {
        let s = secrets();
        let t0 = Instant::from_secs(10);
        let (a, off_a) = s.isn(&tuple(1000), t0);
        let (a2, off_a2) = s.isn(&tuple(1000), t0 + Duration::from_micros(400));
        assert_eq!(a2 - a, 100, "M ticks every 4 us");
        assert_eq!(off_a, off_a2);
        assert_eq!(off_a, s.ts_offset(&tuple(1000)));
        let (b, _) = s.isn(&tuple(1001), t0);
        assert_ne!(a, b);
        let (c, _) = Secrets::from_bytes([8; 32]).isn(&tuple(1000), t0);
        assert_ne!(a, c, "the key matters");
    }

    #[test]
    fn ipv6_cookies_carry_ipv6_mss_values() {
        let s = secrets();
        let now = Instant::from_secs(1000);
        let v6 = FourTuple::new("[2001:db8::1]:80".parse().unwrap(), "[2001:db8::2]:40000".parse().unwrap());
        // A SYN without the option gets 1220 (not IPv4's 536); the rest
        // round down within IPv6's table.
        for (mss, want) in [(default_mss(true), 1220), (1300, 1220), (1440, 1440), (1460, 1440), (9000, 8940)] {
            let o = CookieOptions { mss, window_scale: Some(7), sack_permitted: true };
            let c = s.make_cookie(&v6, SeqNumber(77), &o, now);
            assert_eq!(s.check_cookie(&v6, SeqNumber(77), c, now).unwrap().mss, want, "{mss}");
        }
        let o = CookieOptions { mss: default_mss(false), window_scale: None, sack_permitted: false };
        let c = s.make_cookie(&tuple(5), SeqNumber(77), &o, now);
        assert_eq!(s.check_cookie(&tuple(5), SeqNumber(77), c, now).unwrap().mss, 536);
    }

    #[test]
    fn cookie_round_trips_options() {
        let s = secrets();
        let now = Instant::from_secs(1000);
        for (mss, ws, sack) in
            [(1460, Some(7), true), (536, None, false), (1400, Some(14), true), (9000, Some(0), false)]
        {
            let o = CookieOptions { mss, window_scale: ws, sack_permitted: sack };
            let c = s.make_cookie(&tuple(5), SeqNumber(77), &o, now);
            let back = s.check_cookie(&tuple(5), SeqNumber(77), c, now).expect("valid cookie");
            assert_eq!(back.window_scale, ws);
            assert_eq!(back.sack_permitted, sack);
            assert!(back.mss <= mss.max(536));
        }
        let o = CookieOptions { mss: 1400, window_scale: None, sack_permitted: false };
        assert_eq!(
            s.check_cookie(&tuple(5), SeqNumber(77), s.make_cookie(&tuple(5), SeqNumber(77), &o, now), now)
                .unwrap()
                .mss,
            1300
        );
    }

    #[test]
    fn cookie_expires_after_two_epochs() {
        let s = secrets();
        let o = CookieOptions { mss: 1460, window_scale: Some(7), sack_permitted: true };
        let t = Instant::from_secs(64 * 100 + 3);
        let c = s.make_cookie(&tuple(9), SeqNumber(1), &o, t);
        assert!(s.check_cookie(&tuple(9), SeqNumber(1), c, t + Duration::from_secs(60)).is_some());
        assert!(s.check_cookie(&tuple(9), SeqNumber(1), c, t + Duration::from_secs(64 + 60)).is_some());
        assert!(s.check_cookie(&tuple(9), SeqNumber(1), c, t + Duration::from_secs(128 + 61)).is_none());
    }

    #[test]
    fn cookie_rejects_other_tuples_isns_and_flipped_bits() {
        let s = secrets();
        let now = Instant::from_secs(500);
        let o = CookieOptions { mss: 1460, window_scale: Some(7), sack_permitted: true };
        let c = s.make_cookie(&tuple(9), SeqNumber(1), &o, now);
        assert!(s.check_cookie(&tuple(10), SeqNumber(1), c, now).is_none());
        assert!(s.check_cookie(&tuple(9), SeqNumber(2), c, now).is_none());
        for bit in 0..32 {
            assert!(s.check_cookie(&tuple(9), SeqNumber(1), SeqNumber(c.0 ^ (1 << bit)), now).is_none(), "bit {bit}");
        }
    }
}
