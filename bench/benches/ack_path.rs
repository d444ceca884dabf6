//! The sender's ACK path with CUBIC in congestion avoidance: one ACK of
//! one full segment in (`on_frame`: parse, demux, RFC 5961 checks, RTT
//! sample, CUBIC's per-ACK update, the send buffer consumed), `flush`: the
//! next segment out (window checks, sender SWS and Nagle, emit into a
//! reused frame), and the `Writable` event drained. Goal (issue 11):
//! ≤ 100 ns.
//!
//! Set-up, untimed, per batch of up to `N` ACKs: a fresh connection from a
//! Linux-like client (MSS 1460, timestamps, window scale 7), a 16 MiB send
//! buffer filled, the initial window sent, one loss (three duplicate ACKs,
//! then the ACK of everything) so that CUBIC is past slow start in an
//! epoch, and the `N` ACKs built, each acknowledging the next segment and
//! echoing a timestamp. The clock moves 10 µs per ACK (CUBIC's curve is a
//! function of time). Reported time is per ACK.

mod common;

use std::hint::black_box;
use std::time::Duration as StdDuration;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodgate::table::Handle;
use floodgate::tcp::cc::cubic::Cubic;
use floodgate::tcp::cc::{Ack, CongestionControl, Window};
use floodgate::tcp::{Capacity, CookieMode, Endpoint, Event};
use floodgate::time::{Duration, Instant};
use floodgate::wire::TcpOptions;

/// ACKs per connection: within what the 16 MiB buffer holds.
const N: usize = 8192;
const BUFFER: u32 = 16 << 20;
const CLIENT_ISN: u32 = 0x2000_0000;
const STEP: Duration = Duration::from_micros(10);

struct AckPath {
    ep: Endpoint,
    acks: Frames,
    rx: Rx,
    sink: Sink,
    data: Vec<u8>,
    client: u64,
    now: Instant,
}

fn ack_seg(ack: u32, tsval: u32, tsecr: u32) -> ClientSeg<'static> {
    ClientSeg {
        control: ACK,
        seq: CLIENT_ISN + 1,
        ack,
        window: 65535,
        options: TcpOptions { timestamp: Some((tsval, tsecr)), ..TcpOptions::NONE },
        payload: &[],
    }
}

impl AckPath {
    fn new() -> AckPath {
        let cap =
            Capacity { connections: 64, time_wait: 64, buffers: 4, buffer_size: BUFFER, events: 65536, ..capacity() };
        AckPath {
            ep: endpoint(CookieMode::Never, cap),
            acks: Frames::with_capacity(N),
            rx: Rx::new(),
            sink: Sink::new(),
            data: vec![0x5a; BUFFER as usize],
            client: 0,
            now: T0,
        }
    }

    /// One client frame now; what the server sent back.
    fn exchange(&mut self, client: u64, s: &ClientSeg) -> Vec<Vec<u8>> {
        let mut f = Frames::with_capacity(1);
        f.put(0, client, s);
        let mut cap = Capture::default();
        self.rx.deliver(&mut self.ep, self.now, f.get(0), &mut cap);
        self.ep.flush(self.now, &mut cap);
        cap.frames
    }

    /// A connection in congestion avoidance, its data queued; builds the
    /// ACKs for the next `n` segments.
    fn setup(&mut self, n: usize) -> Handle {
        self.client += 1;
        let c = self.client;
        let syn = ClientSeg {
            control: SYN,
            seq: CLIENT_ISN,
            ack: 0,
            window: 64240,
            options: TcpOptions { sack_permitted: false, ..linux_syn_options(1) },
            payload: &[],
        };
        let sa = self.exchange(c, &syn);
        let (iss, _, ts, _) = server_reply(&sa[0]);
        self.exchange(c, &ack_seg(iss + 1, 2, ts.unwrap()));
        let h = match self.ep.poll_event() {
            Some(Event::Accepted(h)) => h,
            e => panic!("no connection: {e:?}"),
        };
        drain_events(&mut self.ep);
        assert_eq!(self.ep.write(h, &self.data).unwrap(), self.data.len());
        let mut cap = Capture::default();
        self.ep.flush(self.now, &mut cap);
        let mss = self.ep.tcb(h).unwrap().mss as u32;
        assert_eq!(cap.frames.len(), 10, "initial window");
        // The first segment is lost: three duplicate ACKs, then it is
        // resent and everything acknowledged (recovery ends).
        self.now += Duration::from_millis(10);
        let t = self.now.total_millis() as u32;
        for _ in 0..3 {
            self.exchange(c, &ack_seg(iss + 1, t, ts.unwrap()));
        }
        self.now += Duration::from_millis(10);
        let t = self.now.total_millis() as u32;
        let base = iss + 1 + 10 * mss;
        let out = self.exchange(c, &ack_seg(base, t, ts.unwrap()));
        drain_events(&mut self.ep);
        let tcb = self.ep.tcb(h).unwrap();
        assert!(tcb.ssthresh < u32::MAX && tcb.cwnd >= tcb.ssthresh, "past slow start");
        let (_, _, tsval, _) = server_reply(&out[0]);
        self.now += Duration::from_millis(10);
        let t = self.now.total_millis() as u32;
        for k in 0..n {
            self.acks.put(k, c, &ack_seg(base + (k as u32 + 1) * mss, t, tsval.unwrap()));
        }
        h
    }

    fn run(&mut self, iters: u64) -> StdDuration {
        let mut total = StdDuration::ZERO;
        let mut left = iters as usize;
        while left > 0 {
            let n = left.min(N);
            let h = self.setup(n);
            let sent = self.sink.frames;
            let una = self.ep.tcb(h).unwrap().snd_una;
            let mut now = self.now;
            let start = std::time::Instant::now();
            for k in 0..n {
                now += STEP;
                self.rx.deliver(&mut self.ep, now, self.acks.get(k), &mut self.sink);
                self.ep.flush(now, &mut self.sink);
                drain_events(&mut self.ep);
            }
            total += start.elapsed();
            self.now = now;
            assert!(self.sink.frames - sent >= n as u64, "a segment out per ACK");
            let tcb = self.ep.tcb(h).unwrap();
            assert_eq!(tcb.snd_una - una, n * tcb.mss as usize, "every ACK took a segment");
            self.ep.abort(h).unwrap();
            let mut cap = Capture::default();
            self.ep.flush(self.now, &mut cap);
            drain_events(&mut self.ep);
            left -= n;
        }
        black_box(self.sink.bytes);
        total
    }
}

fn ack_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("ack_path");
    g.throughput(Throughput::Elements(1));
    let mut s = AckPath::new();
    g.bench_function("cubic_ack_in_segment_out", |b| b.iter_custom(|iters| s.run(iters)));
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
