//! Connect latency per backend: the time from floodgate's SYN to the
//! backend's SYN-ACK completing the handshake, counted into fixed buckets
//! (Prometheus histogram semantics: each bucket counts the connects at or
//! below its bound). A plain array, copied into the shard's snapshot;
//! recording allocates nothing.

use crate::time::Duration;

/// The buckets' upper bounds in microseconds; a last bucket (+Inf) holds
/// the rest.
pub const BOUNDS_US: [u64; 12] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000];

/// One backend's connect latencies on one shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectLatency {
    /// Connects in each bucket (not cumulative): `BOUNDS_US`, then +Inf.
    pub buckets: [u64; BOUNDS_US.len() + 1],
    pub sum_us: u64,
}

impl ConnectLatency {
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = BOUNDS_US.iter().position(|&b| us <= b).unwrap_or(BOUNDS_US.len());
        self.buckets[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// `(upper bound in seconds or None for +Inf, cumulative count)`, as
    /// the exposition format lists them.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<f64>, u64)> + '_ {
        let bounds = BOUNDS_US.iter().map(|&b| Some(b as f64 / 1e6)).chain(std::iter::once(None));
        bounds.zip(self.buckets.iter().scan(0u64, |acc, &n| {
            *acc += n;
            Some(*acc)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_and_cumulative() {
        let mut h = ConnectLatency::default();
        for us in [50, 100, 101, 3_000, 2_000_000] {
            h.record(Duration::from_micros(us));
        }
        let c: Vec<_> = h.cumulative().collect();
        assert_eq!(c[0], (Some(0.0001), 2), "100 µs is within the first bucket");
        assert_eq!(c[1], (Some(0.00025), 3));
        assert_eq!(c[4], (Some(0.0025), 3));
        assert_eq!(c[5], (Some(0.005), 4));
        assert_eq!(c[12], (None, 5), "+Inf holds them all");
        assert_eq!((h.count(), h.sum_us), (5, 2_003_251));
    }
}
