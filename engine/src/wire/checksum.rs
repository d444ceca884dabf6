//! The Internet checksum: RFC 1071 (computation), RFC 9293 §3.1 and RFC 768
//! (IPv4 pseudo-header), RFC 8200 §8.1 (IPv6 pseudo-header), RFC 1624
//! (incremental update).
//!
//! Sums here are ones-complement sums folded to 16 bits and *not*
//! complemented; the value written into a header is `!sum`. A received
//! header verifies when the sum over it (pseudo-header included) is 0xffff.
//!
//! [`data`] is on the per-packet path and is benchmarked over 1500-byte
//! segments: it adds native-endian 32-bit words into a 64-bit accumulator (no
//! carry chain, so the compiler vectorises it) and swaps once at the end,
//! which RFC 1071 §2(B) shows is equivalent to summing big-endian 16-bit words.

use crate::flow::Addr;

#[inline(always)]
fn ne32(b: &[u8]) -> u64 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as u64
}

/// Ones-complement sum of `bytes` as big-endian 16-bit words (an odd last
/// byte is padded with zero), folded, not complemented.
///
/// Whole 32-byte blocks go through the carry-free loop (vectorised); the
/// last 0-31 bytes, which is all of a header, are added as 64-bit words
/// with end-around carry (`add` + `adc`), then a 32-bit word and 0-3 bytes,
/// with no variable-length copy.
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut blocks = bytes.chunks_exact(32);
    for b in &mut blocks {
        acc += ne32(&b[0..4])
            + ne32(&b[4..8])
            + ne32(&b[8..12])
            + ne32(&b[12..16])
            + ne32(&b[16..20])
            + ne32(&b[20..24])
            + ne32(&b[24..28])
            + ne32(&b[28..32]);
    }
    let mut words = blocks.remainder().chunks_exact(8);
    for w in &mut words {
        acc = add_carry(acc, u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
    }
    let rest = words.remainder();
    let (word, rest) = if rest.len() >= 4 { (ne32(rest), &rest[4..]) } else { (0, rest) };
    // The last 0-3 bytes, zero-padded (at an even offset, so the lanes line up).
    let tail = match *rest {
        [] => 0,
        [a] => ne32(&[a, 0, 0, 0]),
        [a, b] => ne32(&[a, b, 0, 0]),
        [a, b, c, ..] => ne32(&[a, b, c, 0]),
    };
    acc = add_carry(acc, word + tail);
    // The fold of a native-order sum is the byte-swapped network-order sum.
    u16::from_be(fold(acc))
}

/// 64-bit ones-complement addition (end-around carry): 2^64 = 1 mod 0xffff.
#[inline(always)]
fn add_carry(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + carry as u64
}

/// Folds a wide ones-complement accumulator to 16 bits (end-around carry).
#[inline(always)]
pub fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Ones-complement sum of partial sums.
#[inline(always)]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| s as u64).sum())
}

/// Sum of the IPv4 pseudo-header: source, destination, zero, protocol, and
/// the upper-layer length (RFC 9293 §3.1).
#[inline]
pub fn pseudo_header_v4(src: &[u8; 4], dst: &[u8; 4], protocol: u8, len: u32) -> u16 {
    let sum = u16::from_be_bytes([src[0], src[1]]) as u64
        + u16::from_be_bytes([src[2], src[3]]) as u64
        + u16::from_be_bytes([dst[0], dst[1]]) as u64
        + u16::from_be_bytes([dst[2], dst[3]]) as u64
        + protocol as u64
        + (len >> 16) as u64
        + (len & 0xffff) as u64;
    fold(sum)
}

/// Sum of the IPv6 pseudo-header: source, destination, 32-bit upper-layer
/// length, zeros, next header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u16 {
    let mut acc: u64 = 0;
    for i in 0..4 {
        acc += ne32(&src[4 * i..]) + ne32(&dst[4 * i..]);
    }
    let addrs = u16::from_be(fold(acc)) as u64;
    fold(addrs + next_header as u64 + (len >> 16) as u64 + (len & 0xffff) as u64)
}

/// The pseudo-header sum for either family: IPv4 when both addresses are
/// IPv4-mapped, IPv6 otherwise.
#[inline]
pub fn pseudo_header(src: &Addr, dst: &Addr, protocol: u8, len: u32) -> u16 {
    match (src.as_v4(), dst.as_v4()) {
        (Some(s), Some(d)) => pseudo_header_v4(&s, &d, protocol, len),
        _ => pseudo_header_v6(&src.0, &dst.0, protocol, len),
    }
}

/// The checksum field for a header whose bytes (with the checksum field
/// zeroed) sum to `sum`.
#[inline(always)]
pub fn finish(sum: u16) -> u16 {
    !sum
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered
/// data changes from `old_word` to `new_word`: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update16(old_csum: u16, old_word: u16, new_word: u16) -> u16 {
    !fold(!old_csum as u64 + !old_word as u64 + new_word as u64)
}

/// [`update16`] for an aligned 32-bit field (a sequence number, an IPv4
/// address).
#[inline]
pub fn update32(old_csum: u16, old: u32, new: u32) -> u16 {
    let sum = !old_csum as u64
        + !(old >> 16) as u16 as u64
        + !(old as u16) as u64
        + (new >> 16) as u64
        + (new & 0xffff) as u64;
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook definition, for comparison.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for c in bytes.chunks(2) {
            let hi = c[0] as u64;
            let lo = c.get(1).copied().unwrap_or(0) as u64;
            sum += (hi << 8) | lo;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header whose checksum is b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(finish(data(&h)), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(data(&h), 0xffff);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn pseudo_header_v4_matches_bytes() {
        let (s, d) = ([198, 18, 0, 1], [198, 18, 0, 2]);
        let mut bytes = [0u8; 12];
        bytes[0..4].copy_from_slice(&s);
        bytes[4..8].copy_from_slice(&d);
        bytes[9] = 6;
        bytes[10..12].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(pseudo_header_v4(&s, &d, 6, 40), reference(&bytes));
        assert_eq!(pseudo_header(&Addr::v4(s), &Addr::v4(d), 6, 40), reference(&bytes));
    }

    #[test]
    fn pseudo_header_v6_matches_bytes() {
        let s: [u8; 16] = core::array::from_fn(|i| (i * 17) as u8);
        let d: [u8; 16] = core::array::from_fn(|i| (0xf0 - i * 3) as u8);
        let mut bytes = [0u8; 40];
        bytes[0..16].copy_from_slice(&s);
        bytes[16..32].copy_from_slice(&d);
        bytes[32..36].copy_from_slice(&70000u32.to_be_bytes());
        bytes[39] = 6;
        assert_eq!(pseudo_header_v6(&s, &d, 6, 70000), reference(&bytes));
        assert_eq!(pseudo_header(&Addr(s), &Addr(d), 6, 70000), reference(&bytes));
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    proptest! {
        #[test]
        fn fast_sum_matches_reference(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            prop_assert_eq!(data(&bytes), reference(&bytes));
        }

        #[test]
        fn combine_of_even_split_matches_whole(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..150,
        ) {
            let cut = (cut * 2).min(bytes.len() & !1);
            prop_assert_eq!(
                combine(&[data(&bytes[..cut]), data(&bytes[cut..])]),
                data(&bytes)
            );
        }

        #[test]
        fn incremental_update_matches_recompute(
            mut bytes in proptest::collection::vec(any::<u8>(), 8..200),
            at in 0usize..100,
            new16 in any::<u16>(),
            new32 in any::<u32>(),
        ) {
            let at = (at * 2) % (bytes.len() & !3).max(4);
            let at = at.min(bytes.len() - 4) & !1;
            let csum = finish(data(&bytes));

            let old16 = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
            bytes[at..at + 2].copy_from_slice(&new16.to_be_bytes());
            let upd = update16(csum, old16, new16);
            let full = finish(data(&bytes));
            // +0 and -0 are the same ones-complement value.
            prop_assert!(upd == full || (upd | full == 0xffff && (upd == 0 || full == 0)));

            let old32 = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
            bytes[at..at + 4].copy_from_slice(&new32.to_be_bytes());
            let upd2 = update32(full, old32, new32);
            let full2 = finish(data(&bytes));
            prop_assert!(upd2 == full2 || (upd2 | full2 == 0xffff && (upd2 == 0 || full2 == 0)));
        }
    }
}
