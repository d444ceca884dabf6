//! The established data path, both directions, shared by `ack_path.rs`
//! (criterion) and `icount.rs` (instruction counts):
//!
//! - [`AckPath`], the sender: one ACK of one full segment in (`on_frame`:
//!   parse, demux, RFC 5961 checks, RTT sample, CUBIC's per-ACK update, the
//!   send buffer consumed), `flush`: the next segment out (window checks,
//!   sender SWS and Nagle, emit into a reused frame), and the `Writable`
//!   event drained.
//! - [`DataIn`], the receiver: one in-order full-sized segment in (parse,
//!   checksum, demux, the payload into the receive buffer), the application
//!   consumes it in place (`recv`), and `flush` sends the ACK that RFC 5681
//!   §4.2 asks for at least every second full-sized segment.
//!
//! Goal (issue 11): ≤ 100 ns each.

use std::hint::black_box;
use std::time::Duration as StdDuration;

use super::*;
use floodgate::table::Handle;
use floodgate::tcp::{Capacity, CookieMode, Endpoint, Event};
use floodgate::time::{Duration, Instant};
use floodgate::wire::TcpOptions;

/// Segments per batch, for both scenarios: a batch's send data (about
/// 3 MB) fits the default 4 MiB send buffer, in the default 16 KiB chunks.
const N: usize = 2048;
const CLIENT_ISN: u32 = 0x2000_0000;
const STEP: Duration = Duration::from_micros(10);
/// A full-sized segment's payload (MSS 1460 less 12 bytes of timestamps).
const SEG: usize = 1448;

fn bulk_capacity() -> Capacity {
    Capacity { connections: 64, time_wait: 64, buffers: 1024, buffer_size: 16384, events: 65536, ..capacity() }
}

fn seg(control: u8, seq: u32, ack: u32, ts: (u32, u32), payload: &[u8]) -> ClientSeg<'_> {
    ClientSeg {
        control,
        seq,
        ack,
        window: 65535,
        options: TcpOptions { timestamp: Some(ts), ..TcpOptions::NONE },
        payload,
    }
}

/// One client frame now; what the server sent back (set-up only).
fn exchange(ep: &mut Endpoint, rx: &mut Rx, now: Instant, client: u64, s: &ClientSeg) -> Vec<Vec<u8>> {
    let mut f = Frames::with_cells(1, 1536);
    f.put(0, client, s);
    let mut cap = Capture::default();
    rx.deliver(ep, now, f.get(0), &mut cap);
    ep.flush(now, &mut cap);
    cap.frames
}

/// A handshake from a Linux-like client (MSS 1460, timestamps, window
/// scale 7, SACK as asked): the connection, the server's ISS and TSval.
fn connect(ep: &mut Endpoint, rx: &mut Rx, now: Instant, client: u64, sack: bool) -> (Handle, u32, u32) {
    let syn = ClientSeg {
        control: SYN,
        seq: CLIENT_ISN,
        ack: 0,
        window: 64240,
        options: TcpOptions { sack_permitted: sack, ..linux_syn_options(1) },
        payload: &[],
    };
    let sa = exchange(ep, rx, now, client, &syn);
    let (iss, _, ts, _) = server_reply(&sa[0]);
    exchange(ep, rx, now, client, &seg(ACK, CLIENT_ISN + 1, iss + 1, (2, ts.unwrap()), &[]));
    let h = match ep.poll_event() {
        Some(Event::Accepted(h)) => h,
        e => panic!("no connection: {e:?}"),
    };
    drain_events(ep);
    (h, iss, ts.unwrap())
}

/// The sender's side. Set-up, untimed, per batch of up to `N` ACKs: a
/// fresh connection, the batch's data written (about 3 MB, so a segment's
/// bytes were written megabytes before they leave, as for a bulk sender
/// keeping its buffer full), the initial window sent, one loss (three
/// duplicate ACKs, then the ACK of everything) so that CUBIC is past slow
/// start in an epoch, and the ACKs built, each acknowledging the next
/// segment and echoing a timestamp. The clock moves 10 µs per ACK
/// (CUBIC's curve is a function of time). Reported time is per ACK.
pub struct AckPath {
    ep: Endpoint,
    acks: Frames,
    rx: Rx,
    sink: Sink,
    data: Vec<u8>,
    client: u64,
    now: Instant,
}

impl AckPath {
    pub fn new() -> AckPath {
        AckPath {
            ep: endpoint(CookieMode::Never, bulk_capacity()),
            acks: Frames::with_capacity(N),
            rx: Rx::new(),
            sink: Sink::new(),
            data: vec![0x5a; (N + 64) * SEG],
            client: 0,
            now: T0,
        }
    }

    /// A connection in congestion avoidance, its data queued; builds the
    /// ACKs for the next `n` segments.
    fn setup(&mut self, n: usize) -> Handle {
        self.client += 1;
        let c = self.client;
        let (h, iss, ts) = connect(&mut self.ep, &mut self.rx, self.now, c, false);
        assert_eq!(self.ep.write(h, &self.data).unwrap(), self.data.len());
        let mut cap = Capture::default();
        self.ep.flush(self.now, &mut cap);
        let mss = self.ep.tcb(h).unwrap().mss as u32;
        assert_eq!(mss as usize, SEG);
        assert_eq!(cap.frames.len(), 10, "initial window");
        // The first segment is lost: three duplicate ACKs, then it is
        // resent and everything acknowledged (recovery ends).
        let (ep, rx) = (&mut self.ep, &mut self.rx);
        self.now += Duration::from_millis(10);
        let t = self.now.total_millis() as u32;
        for _ in 0..3 {
            exchange(ep, rx, self.now, c, &seg(ACK, CLIENT_ISN + 1, iss + 1, (t, ts), &[]));
        }
        self.now += Duration::from_millis(10);
        let t = self.now.total_millis() as u32;
        let base = iss + 1 + 10 * mss;
        let out = exchange(ep, rx, self.now, c, &seg(ACK, CLIENT_ISN + 1, base, (t, ts), &[]));
        drain_events(ep);
        let tcb = ep.tcb(h).unwrap();
        assert!(tcb.ssthresh < u32::MAX && tcb.cwnd >= tcb.ssthresh, "past slow start");
        let (_, _, tsval, _) = server_reply(&out[0]);
        self.now += Duration::from_millis(10);
        let t = self.now.total_millis() as u32;
        for k in 0..n {
            let ack = base + (k as u32 + 1) * mss;
            self.acks.put(k, c, &seg(ACK, CLIENT_ISN + 1, ack, (t, tsval.unwrap()), &[]));
        }
        h
    }

    pub fn run(&mut self, iters: u64) -> StdDuration {
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

/// The receiver's side. Set-up, untimed, per batch of up to `N` segments:
/// a fresh connection (SACK permitted) and the client's next `n` in-order
/// full-sized segments built, timestamps rising. Timed, per segment: the
/// frame in, the application consuming every byte in place (`recv`, at
/// most two calls when the segment spans two chunks), `flush` (an ACK for
/// every second segment; delayed ACKs otherwise) and the events drained.
/// The clock moves 10 µs per segment. Reported time is per segment.
pub struct DataIn {
    ep: Endpoint,
    segs: Frames,
    rx: Rx,
    sink: Sink,
    client: u64,
    now: Instant,
}

impl DataIn {
    pub fn new() -> DataIn {
        DataIn {
            ep: endpoint(CookieMode::Never, bulk_capacity()),
            segs: Frames::with_cells(N, 1536),
            rx: Rx::new(),
            sink: Sink::new(),
            client: 0,
            now: T0,
        }
    }

    fn setup(&mut self, n: usize) -> Handle {
        self.client += 1;
        let c = self.client;
        let (h, iss, ts) = connect(&mut self.ep, &mut self.rx, self.now, c, true);
        let payload: Vec<u8> = (0..SEG).map(|i| (i * 7) as u8).collect();
        for k in 0..n {
            let s = seg(ACK | PSH, CLIENT_ISN + 1 + (k * SEG) as u32, iss + 1, (1000 + k as u32, ts), &payload);
            self.segs.put(k, c, &s);
        }
        h
    }

    pub fn run(&mut self, iters: u64) -> StdDuration {
        let mut total = StdDuration::ZERO;
        let mut left = iters as usize;
        let mut got = 0usize;
        while left > 0 {
            let n = left.min(N);
            let h = self.setup(n);
            let sent = self.sink.frames;
            let nxt = self.ep.tcb(h).unwrap().rcv_nxt;
            let mut now = self.now;
            let start = std::time::Instant::now();
            for k in 0..n {
                now += STEP;
                self.rx.deliver(&mut self.ep, now, self.segs.get(k), &mut self.sink);
                while let Ok(m @ 1..) = self.ep.recv(h, |d| d.len()) {
                    got += m;
                }
                self.ep.flush(now, &mut self.sink);
                drain_events(&mut self.ep);
            }
            total += start.elapsed();
            self.now = now;
            assert_eq!(self.ep.tcb(h).unwrap().rcv_nxt - nxt, n * SEG, "every segment taken in order");
            assert!(self.sink.frames - sent >= n as u64 / 2, "an ACK at least every second segment");
            self.ep.abort(h).unwrap();
            let mut cap = Capture::default();
            self.ep.flush(self.now, &mut cap);
            drain_events(&mut self.ep);
            left -= n;
        }
        black_box(got);
        total
    }
}
