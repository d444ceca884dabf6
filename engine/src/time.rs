//! Time as the engine sees it: a monotonic instant passed in by the caller.
//!
//! Nothing below `wire/`, `tcp/`, `table/` or `timer/` reads a clock; the shard
//! reads one once per batch and hands the value down. Tests drive a virtual
//! clock, so two hours of keepalive run in microseconds.

use core::ops::{Add, AddAssign, Sub};
pub use core::time::Duration;

/// Microseconds since an epoch chosen by the caller (`floodgate serve`: the
/// boot, CLOCK_MONOTONIC zero, `cli::boot`; tests: anything).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    micros: u64,
}

impl Instant {
    pub const ZERO: Instant = Instant { micros: 0 };

    pub const fn from_micros(micros: u64) -> Self {
        Instant { micros }
    }
    pub const fn from_millis(millis: u64) -> Self {
        Instant { micros: millis * 1000 }
    }
    pub const fn from_secs(secs: u64) -> Self {
        Instant { micros: secs * 1_000_000 }
    }
    pub const fn total_micros(self) -> u64 {
        self.micros
    }
    /// Whole milliseconds since the epoch: the tick of the timing wheel.
    pub const fn total_millis(self) -> u64 {
        self.micros / 1000
    }
    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant { micros: self.micros.saturating_add(d.as_micros() as u64) }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant { micros: self.micros.saturating_sub(d.as_micros() as u64) }
    }
}

impl Sub for Instant {
    type Output = Duration;
    fn sub(self, other: Instant) -> Duration {
        self.saturating_since(other)
    }
}

impl core::fmt::Display for Instant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:06}s", self.micros / 1_000_000, self.micros % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_converts() {
        let t = Instant::from_secs(2);
        assert_eq!((t + Duration::from_millis(1500)).total_millis(), 3500);
        assert_eq!(t - Instant::from_secs(3), Duration::ZERO);
        assert_eq!(Instant::ZERO - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(t.to_string(), "2.000000s");
    }
}
