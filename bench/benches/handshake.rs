//! The three-way handshake on the sans-IO core (`tcp::Endpoint`), frames
//! prebuilt, a TX sink that writes into one reused buffer and drops it.
//!
//! * `syn_synack/stateful/*`: a SYN in, a SYN-ACK out, keeping a half-open
//!   (SYN-RECEIVED) entry: `on_frame` (parse, checksums, table miss,
//!   TIME-WAIT miss, listener, ISN hash, insert) + `flush` (SYN-ACK emitted,
//!   RTO armed in the wheel). Every iteration is a new 4-tuple; after 8192 of
//!   them the entries are reset with RSTs outside the timed region, so the
//!   table never fills and its slots are reused as in steady state.
//! * `syn_synack/cookie/*`: the same SYN answered statelessly
//!   (`CookieMode::Always`): cookie MAC + TS offset hash, no table insert.
//! * `linux_opts` SYNs carry MSS, SACK-Permitted, Timestamps and WS (a
//!   Linux client's SYN, 74 bytes); `mss_only` carries MSS alone.
//! * `final_ack/half_open`: the client's ACK turning a half-open entry into
//!   an ESTABLISHED connection (`on_frame` + `flush` + draining the
//!   `Accepted` event). The SYNs are answered before each chunk and the
//!   connections reset after it, both outside the timed region.
//! * `final_ack/cookie`: the ACK of a cookie SYN-ACK, which validates the
//!   cookie and creates the connection from it.
//!
//! Goal (issue 5): SYN → SYN-ACK ≤ 50 ns.

mod common;

use common::scenarios::{FinalAck, SynSynack};
use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodgate::wire::TcpOptions;

/// The client's SYN options, from its TSval.
type SynOptions = fn(u32) -> TcpOptions;

fn syn_synack(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake/syn_synack");
    g.throughput(Throughput::Elements(1));
    let variants: [(&str, SynOptions); 2] = [("linux_opts", linux_syn_options), ("mss_only", |_| bare_syn_options())];
    for (label, opts) in variants {
        for (mode, cookie) in [("stateful", false), ("cookie", true)] {
            let mut s = SynSynack::new(cookie, opts);
            g.bench_function(format!("{mode}/{label}"), |b| b.iter_custom(|iters| s.run(iters)));
        }
    }
    g.finish();
}

fn final_ack(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake/final_ack");
    g.throughput(Throughput::Elements(1));
    for (name, cookie) in [("half_open", false), ("cookie", true)] {
        let mut s = FinalAck::new(cookie);
        g.bench_function(name, |b| b.iter_custom(|iters| s.run(iters)));
    }
    g.finish();
}

criterion_group! { name = benches; config = config(); targets = syn_synack, final_ack }
criterion_main!(benches);
