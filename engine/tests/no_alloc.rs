//! The per-packet path allocates nothing: after warm-up, whole connections
//! (SYN, handshake, request, response, close both ways, TIME-WAIT and its
//! expiry) run through the endpoint with a counting allocator watching.

use floodgate::app::App;
use floodgate::flow::Addr;
use floodgate::link::TxSink;
use floodgate::shard::drain_events;
use floodgate::tcp::{Capacity, Endpoint, Event, Secrets, TcpConfig};
use floodgate::time::{Duration, Instant};
use floodgate::wire::{self, Control, MacAddr, SeqNumber, TcpOptions, TcpRepr};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct Counting;
static WATCH: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if WATCH.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if WATCH.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Keeps the last frame sent, in a buffer allocated once.
struct LastFrame {
    buf: Vec<u8>,
    len: usize,
}
impl TxSink for LastFrame {
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool {
        self.len = write(&mut self.buf);
        true
    }
}

/// Answers every request with a fixed response and closes.
struct Responder;
impl App for Responder {
    fn on_event(&mut self, ep: &mut Endpoint, _: Instant, ev: Event) {
        if let Event::Readable(h) = ev {
            let mut b = [0u8; 256];
            while ep.read(h, &mut b).unwrap_or(0) > 0 {}
            let _ = ep.write(h, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let _ = ep.close(h);
        }
    }
}

fn frame(buf: &mut [u8], port: u16, control: Control, seq: SeqNumber, ack: SeqNumber, payload: &[u8]) -> usize {
    let repr = TcpRepr {
        src_port: port,
        dst_port: 80,
        control,
        seq_number: seq,
        ack_number: control.ack().then_some(ack),
        window_len: 65535,
        urgent: 0,
        options: TcpOptions { mss: control.syn().then_some(1460), ..TcpOptions::default() },
        payload,
    };
    wire::emit_tcp_frame(
        buf,
        MacAddr([2, 0, 0, 0, 0, 2]),
        MacAddr([2, 0, 0, 0, 0, 1]),
        None,
        Addr::v4([198, 18, 0, 2]),
        Addr::v4([198, 18, 0, 1]),
        &repr,
    )
    .unwrap()
}

fn the_seq_sent(tx: &LastFrame) -> SeqNumber {
    match wire::parse_tcp_frame(&tx.buf[..tx.len], false).unwrap() {
        wire::Frame::Tcp(p) => p.tcp.seq_number,
        _ => panic!("not tcp"),
    }
}

/// One connection from `port`, start to finish; returns the time it ended.
fn connection(
    ep: &mut Endpoint,
    app: &mut Responder,
    tx: &mut LastFrame,
    rx: &mut [u8],
    port: u16,
    mut now: Instant,
) -> Instant {
    let c = SeqNumber(1000);
    let mut step = |ep: &mut Endpoint, tx: &mut LastFrame, rx: &mut [u8], len: usize, now: Instant| {
        ep.on_frame(now, &mut rx[..len], tx);
        drain_events(ep, app, now);
        ep.flush(now, tx);
        drain_events(ep, app, now);
    };
    let n = frame(rx, port, Control::SYN, c, SeqNumber(0), &[]);
    step(ep, tx, rx, n, now);
    let s = the_seq_sent(tx) + 1;
    let n = frame(rx, port, Control::ACK, c + 1, s, &[]);
    step(ep, tx, rx, n, now);
    let n = frame(rx, port, Control::ACK | Control::PSH, c + 1, s, b"GET / HTTP/1.1\r\n\r\n");
    step(ep, tx, rx, n, now);
    now += Duration::from_millis(1);
    // Response (2 bytes + headers) and FIN acknowledged, then our FIN.
    let n = frame(rx, port, Control::ACK | Control::FIN, c + 19, s + 41, &[]);
    step(ep, tx, rx, n, now);
    now
}

#[test]
fn whole_connections_allocate_nothing_after_warm_up() {
    let cfg = TcpConfig::default();
    let cap = Capacity { connections: 4096, time_wait: 65536, buffers: 1024, ..Capacity::default() };
    let mut now = Instant::from_secs(10);
    let mut ep = Endpoint::new(cfg, cap, [2, 0, 0, 0, 0, 1], Secrets::from_bytes([9; 32]), now);
    ep.listen(None, 80, cfg).unwrap();
    let mut tx = LastFrame { buf: vec![0; 2048], len: 0 };
    let mut rx = vec![0u8; 2048];
    let mut app = Responder;
    for port in 1000..1100 {
        now = connection(&mut ep, &mut app, &mut tx, &mut rx, port, now);
    }
    assert_eq!(ep.time_wait(), 100, "the warm-up connections all closed cleanly");

    WATCH.store(true, Ordering::SeqCst);
    for port in 2000..4000 {
        now = connection(&mut ep, &mut app, &mut tx, &mut rx, port, now);
    }
    now += Duration::from_secs(120);
    ep.on_timers(now, &mut tx);
    WATCH.store(false, Ordering::SeqCst);

    assert_eq!(ep.stats.connections_closed, 2100);
    assert_eq!(ep.time_wait(), 0, "every TIME-WAIT expired");
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0, "allocations on the per-packet path");
}
