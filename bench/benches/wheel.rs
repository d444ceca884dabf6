//! Timing wheel hot paths with a realistic population: 1 M and 10 M pending
//! timers.
//!
//! * `arm_cancel`: arm one extra timer and cancel it again, while N timers
//!   with random deadlines within 4 h are pending. `random_4h` draws the
//!   extra timer's deadline from the same spread (a different slot, and so a
//!   different list head, almost every time: the cache-unfriendly case);
//!   `rto_200ms` arms it 200 ms out, like an RTO armed while sending.
//! * `expire`: N timers due at random ticks within a 1 s window (so a level-1
//!   cascade is part of the cost), then `poll` until None at the window's end.
//!   Only the polling is timed; criterion's throughput is expired timers/s,
//!   and time per iteration / N is the cost per expired timer. A 10 k run
//!   is included as the cache-resident reference: at 1 M and 10 M the timers
//!   due in one tick are scattered over the node array, and the cost is the
//!   memory latency of visiting them (once when cascaded, once when fired),
//!   which `poll`'s look-ahead through the slot's blocks of ids overlaps.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use floodgate::timer::Wheel;
use std::time::{Duration, Instant};

const HOUR_MS: u64 = 3_600_000;
const SIZES: [u32; 2] = [1_000_000, 10_000_000];

/// xorshift64*: deterministic and cheap, so the benches need no RNG crate.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn label(n: u32) -> String {
    if n >= 1_000_000 {
        format!("{}M", n / 1_000_000)
    } else {
        format!("{}k", n / 1_000)
    }
}

fn arm_cancel(c: &mut Criterion) {
    let mut group = c.benchmark_group("wheel/arm_cancel");
    group.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let now = 1_000_000;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut wheel = Wheel::new(n + 1, now);
        for id in 0..n {
            wheel.arm(id, now + 1 + rng.below(4 * HOUR_MS));
        }
        let extra = n;
        let deadlines: Vec<u64> = (0..4096).map(|_| now + 1 + rng.below(4 * HOUR_MS)).collect();
        group.bench_function(BenchmarkId::new("random_4h", label(n)), |b| {
            let mut i = 0;
            b.iter(|| {
                wheel.arm(extra, deadlines[i & 4095]);
                wheel.cancel(black_box(extra));
                i += 1;
            })
        });
        group.bench_function(BenchmarkId::new("rto_200ms", label(n)), |b| {
            b.iter(|| {
                wheel.arm(extra, black_box(now + 200));
                wheel.cancel(black_box(extra));
            })
        });
        assert_eq!(wheel.len(), n as usize);
    }
    group.finish();
}

fn expire(c: &mut Criterion) {
    const WINDOW_MS: u64 = 1_000;
    let mut group = c.benchmark_group("wheel/expire");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    // 10 k is a cache-resident reference: the wheel's own cost per timer.
    for n in [10_000].into_iter().chain(SIZES) {
        group.throughput(Throughput::Elements(n as u64));
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut now = 1_000_000;
        let mut wheel = Wheel::new(n, now);
        group.bench_function(BenchmarkId::new("window_1s", label(n)), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    for id in 0..n {
                        wheel.arm(id, now + 1 + rng.below(WINDOW_MS));
                    }
                    now += WINDOW_MS;
                    let start = Instant::now();
                    let mut fired = 0u32;
                    while let Some(id) = wheel.poll(now) {
                        black_box(id);
                        fired += 1;
                    }
                    timed += start.elapsed();
                    assert_eq!(fired, n);
                }
                timed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, arm_cancel, expire);
criterion_main!(benches);
