//! A connection's deadline in 32 bits: milliseconds since the shard's
//! epoch, modulo 2^32, read against the present.
//!
//! A `Tcb` keeps four deadlines (RFC 6298 §5 retransmission, RFC 9293
//! §3.8.6.3 delayed ACK, §3.8.4 keepalive / FIN-WAIT-2, the application's).
//! As 64-bit values they took 32 of its bytes; at millions of held
//! connections every byte of the control block is a megabyte per million.
//! Like Linux's 32-bit jiffies timers, a deadline here is the low 32 bits of
//! its time, and it means the one time within 2^31 ms (24.8 days) of now with
//! those bits. Every deadline TCP sets is at most hours ahead (keepalive
//! 2 h, the RTO at most 120 s), and a due deadline is cleared or re-armed
//! when its timer runs, so none is ever that far from now.
//!
//! `u32::MAX` means "none"; a deadline whose low bits fall on it is
//! stored one millisecond later, so a timer is at worst 1 ms late once in
//! 49.7 days, never lost.

use super::tcb::NEVER;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Deadline(u32);

impl Deadline {
    pub const NEVER: Deadline = Deadline(u32::MAX);

    /// The deadline at `ms` since the shard's epoch (`tcb::NEVER`: none).
    #[inline]
    pub fn at(ms: u64) -> Deadline {
        if ms == NEVER {
            return Deadline::NEVER;
        }
        let low = ms as u32;
        Deadline(if low == u32::MAX { 0 } else { low })
    }

    #[inline]
    pub fn is_never(self) -> bool {
        self.0 == u32::MAX
    }

    /// Signed milliseconds from `now_ms` to the deadline.
    #[inline]
    fn ahead_of(self, now_ms: u64) -> i64 {
        self.0.wrapping_sub(now_ms as u32) as i32 as i64
    }

    /// The deadline in ms since the epoch, read against `now_ms`;
    /// `tcb::NEVER` when none.
    #[inline]
    pub fn ms(self, now_ms: u64) -> u64 {
        if self.is_never() {
            return NEVER;
        }
        now_ms.saturating_add_signed(self.ahead_of(now_ms))
    }

    /// Set and not after `now_ms`.
    #[inline]
    pub fn due(self, now_ms: u64) -> bool {
        !self.is_never() && self.ahead_of(now_ms) <= 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_across_the_32_bit_wrap() {
        let wrap = 1u64 << 32;
        for now in [0, 5_000, wrap - 10_000, wrap - 1, wrap, wrap + 3, 7 * wrap + 123] {
            for ahead in [0u64, 1, 40, 200, 120_000, 7_200_000] {
                let d = Deadline::at(now + ahead);
                // The one exception: low bits on the "none" value, 1 ms later.
                let expect = if (now + ahead) as u32 == u32::MAX { now + ahead + 1 } else { now + ahead };
                assert_eq!(d.ms(now), expect, "now {now} ahead {ahead}");
                assert_eq!(d.due(now), expect <= now);
                assert!(d.due(expect) && d.due(expect + 60_000), "due from its time on");
                if expect > 0 {
                    assert!(!d.due(expect - 1));
                }
            }
        }
    }

    #[test]
    fn a_past_deadline_reads_as_past() {
        let now = (1u64 << 32) + 500;
        let d = Deadline::at(now - 1_000);
        assert!(d.due(now));
        assert_eq!(d.ms(now), now - 1_000);
        // Close to the epoch, a wrapped value never reads before 0.
        assert_eq!(Deadline::at(3).ms(1), 3);
    }

    #[test]
    fn never_is_never_due() {
        assert!(Deadline::at(NEVER).is_never());
        assert!(!Deadline::NEVER.due(0) && !Deadline::NEVER.due(u64::MAX - 1));
        assert_eq!(Deadline::NEVER.ms(12_345), NEVER);
        assert!(!Deadline::at(u32::MAX as u64).is_never(), "low bits on the marker move 1 ms on");
    }
}
