//! A received burst of 64 frames at millions of connections, per frame.
//!
//! One endpoint holds N established connections (10 k, the cache-resident
//! reference; 100 k; 1 M, 10 M; opened through
//! the real handshake, SYN cookies, outside the timed region). Each timed
//! burst is 64 pure ACKs of 64 connections drawn at random, as a shard
//! receives them from the RX ring (`on_frame` each, one `flush` after the
//! burst): the table lookup is two dependent cache misses (index bucket,
//! then slot and control block) and the control block is read and written.
//!
//! * `one_by_one`: frames handled in order, as before the look-ahead.
//! * `looked`: the burst first shown to `Endpoint::prefetch` in its two
//!   passes (buckets, then slots), exactly what the shard's
//!   `Link::poll_rx_looking` does, then handled.
//!
//! The frames are written into 64 receive buffers before each burst
//! (untimed), so only the engine is timed. Setup prints how much of the
//! process is backed by transparent huge pages (the tables ask for them).
//!
//! Tried and left: a software pipeline (frame k+8 shown First and k+4
//! Second while frame k is handled) instead of two whole passes: 10 % better
//! at 1 M, no better at 10 M; showing only the slot's first two lines: 35 %
//! (1 M) and 68 % (10 M) slower, the ACK path reads the whole block.

mod common;

use std::hint::black_box;
use std::time::Duration as StdDuration;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodgate::link::{Pass, RxAction, TxSink};
use floodgate::tcp::{CookieMode, Endpoint};
use floodgate::wire::TcpOptions;
use floodgate_bench::Rng;

const BURST: usize = 64;

fn client_isn(i: u64) -> u32 {
    0x2000_0000u32.wrapping_add((i as u32).wrapping_mul(0x9e37))
}
fn client_ts(i: u64) -> u32 {
    200_000u32.wrapping_add(i as u32)
}

/// Keeps the last reply's sequence number and TSval (the SYN-ACK a client
/// needs to complete the handshake); allocates nothing.
struct LastReply {
    buf: Box<[u8; 2048]>,
    seq: u32,
    tsval: u32,
    frames: u64,
}

impl LastReply {
    fn take(&mut self, frame: &[u8]) {
        let (seq, _, ts, _) = server_reply(frame);
        self.seq = seq;
        self.tsval = ts.unwrap_or(0);
        self.frames += 1;
    }
}

impl TxSink for LastReply {
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool {
        let n = write(&mut self.buf[..]);
        if n > 0 {
            let b = self.buf.clone();
            self.take(&b[..n]);
        }
        true
    }
}

/// N established connections and what their clients know.
struct Established {
    ep: Endpoint,
    /// Per connection: the server's ISN + 1 and its TSval from the SYN-ACK.
    server: Vec<(u32, u32)>,
    frames: Frames,
    rx: Vec<[u8; 256]>,
    rx_len: [usize; BURST],
    sink: Sink,
    rng: Rng,
}

impl Established {
    fn new(n: u64) -> Established {
        let cap = floodgate::tcp::Capacity { connections: n as u32 + 1024, ..capacity() };
        let mut ep = endpoint(CookieMode::Always, cap);
        let mut reply = LastReply { buf: Box::new([0; 2048]), seq: 0, tsval: 0, frames: 0 };
        let mut f = Frames::with_capacity(2);
        let mut rx = [0u8; 256];
        let mut server = Vec::with_capacity(n as usize);
        for i in 0..n {
            let syn = ClientSeg {
                control: SYN,
                seq: client_isn(i),
                ack: 0,
                window: 64240,
                options: linux_syn_options(client_ts(i)),
                payload: &[],
            };
            f.put(0, i, &syn);
            let len = f.get(0).len();
            rx[..len].copy_from_slice(f.get(0));
            match ep.on_frame(T0, &mut rx[..len], &mut reply) {
                RxAction::Transmit(l) => reply.take(&rx[..l]),
                RxAction::Release => panic!("a cookie SYN-ACK answers every SYN"),
            }
            let (iss1, ts) = (reply.seq.wrapping_add(1), reply.tsval);
            server.push((iss1, ts));
            f.put(1, i, &ack_of(i, iss1, ts));
            let len = f.get(1).len();
            rx[..len].copy_from_slice(f.get(1));
            let _ = ep.on_frame(T0, &mut rx[..len], &mut reply);
            if i % 64 == 63 {
                ep.flush(T0, &mut reply);
                drain_events(&mut ep);
            }
        }
        ep.flush(T0, &mut reply);
        drain_events(&mut ep);
        assert_eq!(ep.connections() as u64, n, "every handshake completed");
        if let Ok(r) = std::fs::read_to_string("/proc/self/smaps_rollup") {
            let huge = r.lines().find(|l| l.starts_with("AnonHugePages:")).unwrap_or("AnonHugePages: ?");
            eprintln!("burst: {n} connections, {}", huge.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        Established {
            ep,
            server,
            frames: Frames::with_capacity(BURST),
            rx: vec![[0u8; 256]; BURST],
            rx_len: [0; BURST],
            sink: Sink::new(),
            rng: Rng(0x5eed),
        }
    }

    /// The next burst: 64 random connections' ACKs in the receive buffers.
    fn load_burst(&mut self) {
        let n = self.server.len() as u64;
        for k in 0..BURST {
            let i = self.rng.below(n);
            let (iss1, ts) = self.server[i as usize];
            self.frames.put(k, i, &ack_of(i, iss1, ts));
            let f = self.frames.get(k);
            self.rx[k][..f.len()].copy_from_slice(f);
            self.rx_len[k] = f.len();
        }
    }

    fn run(&mut self, bursts: u64, look: bool) -> StdDuration {
        let mut total = StdDuration::ZERO;
        let before = self.ep.stats.segments_in;
        for _ in 0..bursts {
            self.load_burst();
            let start = std::time::Instant::now();
            if look {
                for pass in [Pass::First, Pass::Second] {
                    for k in 0..BURST {
                        self.ep.prefetch(&self.rx[k][..self.rx_len[k]], pass);
                    }
                }
            }
            for k in 0..BURST {
                let len = self.rx_len[k];
                let _ = self.ep.on_frame(T0, &mut self.rx[k][..len], &mut self.sink);
            }
            self.ep.flush(T0, &mut self.sink);
            total += start.elapsed();
        }
        assert_eq!(self.ep.stats.segments_in - before, bursts * BURST as u64);
        assert_eq!(drain_events(&mut self.ep), 0, "a pure ACK with nothing new raises no event");
        black_box(self.sink.frames);
        total
    }
}

/// The client's ACK of the SYN-ACK, and of nothing more afterwards: the
/// same segment again is a pure ACK with nothing new.
fn ack_of(i: u64, iss1: u32, tsval: u32) -> ClientSeg<'static> {
    ClientSeg {
        control: ACK,
        seq: client_isn(i).wrapping_add(1),
        ack: iss1,
        window: 502,
        options: TcpOptions { timestamp: Some((client_ts(i) + 1, tsval)), ..TcpOptions::NONE },
        payload: &[],
    }
}

fn burst(c: &mut Criterion) {
    let mut g = c.benchmark_group("burst/established_ack");
    g.throughput(Throughput::Elements(BURST as u64));
    for n in [10_000u64, 100_000, 1_000_000, 10_000_000] {
        let t = std::time::Instant::now();
        let mut s = Established::new(n);
        eprintln!("burst: {n} connections opened in {:.1} s", t.elapsed().as_secs_f64());
        let label = if n < 1_000_000 { format!("{}k", n / 1000) } else { format!("{}M", n / 1_000_000) };
        g.bench_function(format!("{label}/one_by_one"), |b| b.iter_custom(|it| s.run(it, false)));
        g.bench_function(format!("{label}/looked"), |b| b.iter_custom(|it| s.run(it, true)));
    }
    g.finish();
}

criterion_group! { name = benches; config = config(); targets = burst }
criterion_main!(benches);
