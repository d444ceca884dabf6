//! TCP sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 §3.4).
//!
//! `a < b` means `b` is ahead of `a` by less than 2^31. Every comparison of
//! sequence numbers in the engine goes through this type, so no call site can
//! compare raw integers across the wrap by mistake.

use core::cmp::Ordering;
use core::ops::{Add, AddAssign, Sub};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// Signed distance `self - other`, valid when the two are within 2^31.
    pub fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
    /// The larger of the two in modular order.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self >= other {
            self
        } else {
            other
        }
    }
    /// The smaller of the two in modular order.
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self <= other {
            self
        } else {
            other
        }
    }
    /// `lo <= self < lo + len` (RFC 9293 §3.10.7.4 window tests).
    pub fn in_window(self, lo: SeqNumber, len: u32) -> bool {
        self.0.wrapping_sub(lo.0) < len
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SeqNumber {
    fn cmp(&self, other: &SeqNumber) -> Ordering {
        self.diff(*other).cmp(&0)
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, n: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n as u32))
    }
}

impl AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, n: usize) {
        *self = *self + n;
    }
}

impl Sub<usize> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, n: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n as u32))
    }
}

/// Distance from `other` forward to `self`, as an unsigned count of octets.
/// Callers use it only where `self >= other` holds.
impl Sub for SeqNumber {
    type Output = usize;
    fn sub(self, other: SeqNumber) -> usize {
        self.0.wrapping_sub(other.0) as usize
    }
}

impl core::fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_across_the_wrap() {
        let near_top = SeqNumber(u32::MAX - 5);
        let wrapped = near_top + 10;
        assert_eq!(wrapped, SeqNumber(4));
        assert!(wrapped > near_top);
        assert!(near_top < wrapped);
        assert_eq!(wrapped - near_top, 10);
        assert_eq!(wrapped.diff(near_top), 10);
        assert_eq!(near_top.diff(wrapped), -10);
        assert_eq!(near_top.max(wrapped), wrapped);
        assert_eq!(near_top.min(wrapped), near_top);
    }

    #[test]
    fn half_space_boundary() {
        let a = SeqNumber(0);
        assert!(a + (1 << 31) - 1 > a);
        // Exactly 2^31 apart is "behind" by the signed-difference rule.
        assert!(a + (1usize << 31) < a);
    }

    #[test]
    fn window_membership_wraps() {
        let lo = SeqNumber(u32::MAX - 1);
        assert!(lo.in_window(lo, 4));
        assert!(SeqNumber(1).in_window(lo, 4));
        assert!(!SeqNumber(2).in_window(lo, 4));
        assert!(!SeqNumber(u32::MAX - 2).in_window(lo, 4));
        assert!(!lo.in_window(lo, 0));
    }
}
