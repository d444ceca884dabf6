//! The established data path (`common/bulk.rs` says what each scenario
//! times): the sender's ACK in, CUBIC in congestion avoidance, next
//! segment out; the receiver's in-order segment in, consumed, ACK out;
//! and CUBIC's per-ACK update alone. Goal (issue 11): ≤ 100 ns each.

mod common;

use std::hint::black_box;

use common::bulk::{AckPath, DataIn};
use common::config;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodgate::tcp::cc::cubic::Cubic;
use floodgate::tcp::cc::{Ack, CongestionControl, Window};

fn ack_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("ack_path");
    g.throughput(Throughput::Elements(1));
    let mut s = AckPath::new();
    g.bench_function("cubic_ack_in_segment_out", |b| b.iter_custom(|iters| s.run(iters)));
    let mut d = DataIn::new();
    g.bench_function("segment_in_ack_out", |b| b.iter_custom(|iters| d.run(iters)));
    // CUBIC's own share: its per-ACK update alone, in congestion
    // avoidance (10 µs of virtual time per ACK, 20 ms RTT).
    g.bench_function("cubic_on_ack_alone", |b| {
        let mss = 1448;
        let mut cc = Cubic::default();
        let mut w = Window { cwnd: 100 * mss, ssthresh: u32::MAX, mss };
        let flight = w.cwnd;
        cc.on_congestion_event(&mut w, 0, flight);
        let mut now = 1_000_000u64;
        b.iter(|| {
            now += 10;
            let a = Ack { now_us: now, acked: mss, flight_before: w.cwnd, srtt_us: 20_000 };
            cc.on_ack(&mut w, black_box(&a));
            if w.cwnd > 1 << 28 {
                let flight = w.cwnd;
                cc.on_congestion_event(&mut w, now, flight);
            }
            black_box(w.cwnd)
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = config(); targets = ack_path }
criterion_main!(benches);
