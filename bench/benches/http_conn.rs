//! One whole server-side HTTP/1.1 `Connection: close` exchange on the
//! sans-IO core, per connection:
//!
//! 1. SYN (Linux options) → `on_frame`, `flush`: SYN-ACK out;
//! 2. ACK → `Accepted`;
//! 3. GET (78-byte request, PSH|ACK) → `Readable`; the inline app reads it,
//!    writes a precomputed 71-byte response (13-byte body) and closes;
//!    `flush` sends response + FIN in one segment;
//! 4. the client's FIN|ACK (acking response and FIN) → FIN-WAIT-2 →
//!    TIME-WAIT; `flush` sends the last ACK and moves the connection from
//!    the connection table into the TIME-WAIT table;
//! 5. after each batch, the clock jumps past 2MSL (60 s) and `on_timers`
//!    expires the batch's TIME-WAIT entries (amortised per connection).
//!
//! The app runs between `on_frame` and `flush` each time, as the shard does.
//! Connections are run one after the other in batches of 10 000 with
//! distinct 4-tuples (a fresh set per batch), so TIME-WAIT holds 10 000
//! entries when the batch ends. Each batch's client frames are built before
//! it, outside the timed region (their ACK numbers depend on the server's
//! ISN, which the bench client predicts with the engine's `Secrets`).
//! Reported time is per connection. Goal (issue 5): ≤ 500 ns.

mod common;

use common::scenarios::HttpConn;
use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn http_conn(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_conn");
    g.throughput(Throughput::Elements(1));
    let mut s = HttpConn::new();
    g.bench_function("sequential_10k", |b| b.iter_custom(|iters| s.run(iters)));
    g.finish();
}

criterion_group! { name = benches; config = config(); targets = http_conn }
criterion_main!(benches);
