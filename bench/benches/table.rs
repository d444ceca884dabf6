//! Connection table and TIME-WAIT table microbenchmarks.
//!
//! Tables are filled with random clients (198.18.0.0/15, random ports) to
//! 1 M and 10 M entries with a 128-byte control block, so the slab is as
//! large as the engine's. Keys are computed from a random index on every
//! iteration (`keygen` measures that overhead alone) rather than read from
//! a stored list, so lookups hit the table at random, not in slab order.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use floodgate::table::{ConnTable, HashKey, TableKey, TimeWaitTable, TwFullPolicy, TwState};
use floodgate::wire::SeqNumber;
use floodgate_bench::{client_tuple, client_v4, Rng};

/// A stand-in for the engine's control block.
#[repr(C, align(8))]
struct Cb {
    bytes: [u8; 128],
}

impl Cb {
    fn new(i: u64) -> Cb {
        let mut bytes = [0u8; 128];
        bytes[..8].copy_from_slice(&i.to_le_bytes());
        Cb { bytes }
    }
}

fn config() -> Criterion {
    Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(10)
}

fn hash(c: &mut Criterion) {
    use std::hash::BuildHasher;
    let mut g = c.benchmark_group("hash");
    let key = HashKey::from_seed(1);
    let fold = foldhash::fast::FixedState::with_seed(1);
    let mut rng = Rng(7);
    g.bench_function("fourtuple/keyed_fold_mul", |b| {
        b.iter(|| black_box(client_tuple(rng.next_u64()).keyed_hash(&key)))
    });
    g.bench_function("fourtuple/foldhash", |b| b.iter(|| black_box(fold.hash_one(client_tuple(rng.next_u64())))));
    g.bench_function("v4tuple/keyed_fold_mul", |b| b.iter(|| black_box(client_v4(rng.next_u64()).keyed_hash(&key))));
    g.bench_function("v4tuple/foldhash", |b| b.iter(|| black_box(fold.hash_one(client_v4(rng.next_u64())))));
    g.bench_function("keygen_only", |b| b.iter(|| black_box(client_tuple(rng.next_u64()))));
    g.finish();
}

fn conn(c: &mut Criterion) {
    for &n in &[1_000_000u64, 10_000_000] {
        let label = format!("{}M", n / 1_000_000);
        let mut t: ConnTable<Cb> = ConnTable::with_capacity_and_seed(n as u32, 11);
        let start = Instant::now();
        let handles: Vec<_> = (0..n).map(|i| t.insert(client_tuple(i), Cb::new(i)).unwrap()).collect();
        let fill = start.elapsed();
        eprintln!(
            "conn/{label}: fill {:.1} ns/insert from empty to full; {} index buckets; max probe {}",
            fill.as_nanos() as f64 / n as f64,
            t.stats().index_buckets,
            t.stats().max_probe
        );
        let mut g = c.benchmark_group(format!("conn/{label}"));
        let mut rng = Rng(0x5eed ^ n);
        g.bench_function("keygen", |b| b.iter(|| black_box(client_tuple(rng.below(n)))));
        g.bench_function("lookup_hit", |b| b.iter(|| black_box(t.lookup(&client_tuple(rng.below(n))))));
        g.bench_function("lookup_hit_get", |b| {
            b.iter(|| {
                let h = t.lookup(&client_tuple(rng.below(n))).unwrap();
                black_box(t.get(h).unwrap().bytes[0])
            })
        });
        // An RX burst of 32 random tuples looked up together; reported per key.
        let mut burst = [client_tuple(0); 32];
        let mut out = [None; 32];
        g.throughput(criterion::Throughput::Elements(32));
        g.bench_function("lookup_hit_batch32", |b| {
            b.iter(|| {
                for k in burst.iter_mut() {
                    *k = client_tuple(rng.below(n));
                }
                t.lookup_batch(&burst, &mut out);
                black_box(&out);
            })
        });
        g.throughput(criterion::Throughput::Elements(1));
        // Keys from 4n upward were never inserted.
        g.bench_function("lookup_miss", |b| b.iter(|| black_box(t.lookup(&client_tuple(4 * n + rng.below(n))))));
        // Steady churn at full size: close a random connection, open a new one.
        let mut handles = handles;
        let mut next = 2 * n;
        g.bench_function("remove_insert_pair", |b| {
            b.iter(|| {
                let j = rng.below(n) as usize;
                let cb = t.remove(handles[j]).unwrap();
                handles[j] = t.insert(client_tuple(next), cb).unwrap();
                next += 1;
            })
        });
        g.finish();
        eprintln!("conn/{label}: after churn max probe {}, {:?}", t.max_displacement(), t.stats());
    }
}

fn timewait(c: &mut Criterion) {
    const TWO_MSL: u64 = 60_000;
    let n = 1_000_000u64;
    let mut t = TimeWaitTable::with_seed(n as u32, TWO_MSL as u32, TwFullPolicy::EvictOldest, 3);
    let st = TwState { snd_nxt: SeqNumber(1), rcv_nxt: SeqNumber(2), ts_recent: 3, rcv_wnd: 65535, flags: 1 };
    // One 2MSL's worth of closes, spread evenly over it.
    for i in 0..n {
        t.insert(client_v4(i), st, i * TWO_MSL / n).unwrap();
    }
    let mut g = c.benchmark_group("timewait/1M");
    let mut rng = Rng(99);
    let mut next = n;
    // Steady state: the clock advances one close's worth per iteration,
    // expiring (on average) the one entry whose 2MSL ended.
    g.bench_function(BenchmarkId::new("insert_expire", "per_entry"), |b| {
        b.iter(|| {
            let now = TWO_MSL + (next - n) * TWO_MSL / n;
            t.expire(now, 64, |k, s| {
                black_box((k, s));
            });
            black_box(t.insert(client_v4(next), st, now).unwrap());
            next += 1;
        })
    });
    g.bench_function("lookup_hit", |b| {
        b.iter(|| {
            let live = next - n + rng.below(n - 64);
            black_box(t.lookup(&client_v4(live)))
        })
    });
    g.bench_function("lookup_miss", |b| b.iter(|| black_box(t.lookup(&client_v4((1 << 32) + rng.below(n))))));
    g.finish();
    eprintln!("timewait/1M: {:?}", t.stats());
}

criterion_group! {
    name = benches;
    config = config();
    targets = hash, conn, timewait
}
criterion_main!(benches);
