//! Keyed hashes of the 4-tuple: initial sequence numbers (RFC 6528 §3),
//! timestamp offsets (RFC 7323 §5.4) and SYN cookies (RFC 4987 §3.6).
//!
//! ISN = M + F(4-tuple, secret), with M a clock ticking every 4 µs and F
//! SipHash-1-3 under a key drawn once per process. One hash per SYN gives both
//! the ISN (low 32 bits) and the connection's timestamp offset (high 32 bits).
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
use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// MSS values a cookie can carry (RFC 4987 §3.6: a small table, indexed).
pub const COOKIE_MSS: [u16; 4] = [536, 1300, 1440, 1460];
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
    isn_key: [u8; 16],
    cookie_key: [u8; 16],
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
        Secrets { isn_key, cookie_key }
    }

    fn hash_tuple(key: &[u8; 16], t: &FourTuple, extra: u64) -> u64 {
        let mut h = SipHasher13::new_with_key(key);
        h.write(&t.local_addr.0);
        h.write(&t.remote_addr.0);
        h.write_u32(((t.local_port as u32) << 16) | t.remote_port as u32);
        h.write_u64(extra);
        h.finish()
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

    fn encode_options(o: &CookieOptions) -> u32 {
        let mss_idx = COOKIE_MSS.iter().rposition(|&m| m <= o.mss).unwrap_or(0) as u32;
        let ws = o.window_scale.map_or(15, |s| s.min(14) as u32);
        (mss_idx << 5) | (ws << 1) | o.sack_permitted as u32
    }

    fn decode_options(data: u32) -> CookieOptions {
        let ws = (data >> 1) & 0xf;
        CookieOptions {
            mss: COOKIE_MSS[(data >> 5) as usize & 3],
            window_scale: if ws == 15 { None } else { Some(ws as u8) },
            sack_permitted: data & 1 == 1,
        }
    }

    /// The cookie to use as our ISN in answer to a SYN with `peer_isn`.
    /// The MSS is rounded down to the table.
    pub fn make_cookie(&self, t: &FourTuple, peer_isn: SeqNumber, opts: &CookieOptions, now: Instant) -> SeqNumber {
        let counter = now.total_micros() / 1_000_000 / EPOCH_SECS;
        let data = Self::encode_options(opts);
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
                .then(|| Self::decode_options(data))
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
