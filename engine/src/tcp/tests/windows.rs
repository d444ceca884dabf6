//! Large windows over a long path (`buffer.rs`, `window.rs`): buffers that
//! grow chunk by chunk, receive-window autotuning, the window scale that
//! covers the maximum, and growth refused when the pool runs short. Bulk
//! transfers over `sim::Pair` with a 100 ms RTT (50 ms each way).

use std::collections::HashMap;
use std::net::SocketAddr;

use super::{CLIENT_MAC, SERVER_MAC};
use crate::app::App;
use crate::link::memory::Faults;
use crate::sim::Pair;
use crate::table::Handle;
use crate::tcp::{Capacity, Endpoint, Event, Secrets, TcpConfig};
use crate::time::{Duration, Instant};

const CHUNK: u32 = 16384;
const RTT: Duration = Duration::from_millis(100);

/// Byte `i` of every transfer.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// The client: writes `total` bytes on each connection as the send buffer
/// allows, then shuts down.
#[derive(Default)]
struct Bulk {
    total: usize,
    sent: HashMap<Handle, usize>,
}

impl Bulk {
    fn fill(&mut self, ep: &mut Endpoint, h: Handle) {
        let total = self.total;
        let Some(sent) = self.sent.get_mut(&h) else { return };
        let mut buf = [0u8; 65536];
        while *sent < total {
            let n = ep.writable(h).min(total - *sent).min(buf.len());
            if n == 0 {
                return;
            }
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(*sent + i);
            }
            let w = ep.write(h, &buf[..n]).unwrap();
            *sent += w;
            if w < n {
                return;
            }
        }
        let _ = ep.shutdown(h);
    }
}

impl App for Bulk {
    fn on_event(&mut self, ep: &mut Endpoint, _: Instant, ev: Event) {
        match ev {
            Event::Connected(h) | Event::Writable(h) => self.fill(ep, h),
            Event::PeerClosed(h) => {
                let _ = ep.close(h);
            }
            _ => {}
        }
    }
}

/// How the server's application reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Everything, as soon as it is readable.
    Prompt,
    /// Everything, once per period.
    Every(Duration),
    /// Nothing.
    Never,
}

/// The server: reads (or not), checking every byte.
struct Reader {
    how: Reading,
    /// The first `hogs` connections accepted are never read.
    hogs: usize,
    accepted: usize,
    received: HashMap<Handle, usize>,
}

impl Reader {
    fn new(how: Reading) -> Reader {
        Reader { how, hogs: 0, accepted: 0, received: HashMap::new() }
    }
    fn drain(&mut self, ep: &mut Endpoint, h: Handle) {
        let Some(got) = self.received.get_mut(&h) else { return };
        while let Ok(n @ 1..) = ep.recv(h, |d| {
            for (i, b) in d.iter().enumerate() {
                assert_eq!(*b, pattern(*got + i), "byte {} of the stream", *got + i);
            }
            d.len()
        }) {
            *got += n;
        }
    }
    fn total(&self) -> usize {
        self.received.values().sum()
    }
}

impl App for Reader {
    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, ev: Event) {
        match ev {
            Event::Accepted(h) => {
                self.accepted += 1;
                if self.accepted <= self.hogs {
                    return;
                }
                self.received.insert(h, 0);
                if let Reading::Every(d) = self.how {
                    ep.set_deadline(h, Some(now + d)).unwrap();
                }
                if self.how == Reading::Prompt {
                    self.drain(ep, h);
                }
            }
            Event::Readable(h) if self.how == Reading::Prompt => self.drain(ep, h),
            Event::Deadline(h) => {
                self.drain(ep, h);
                if let Reading::Every(d) = self.how {
                    ep.set_deadline(h, Some(now + d)).unwrap();
                }
            }
            Event::PeerClosed(h) if self.how != Reading::Never && self.received.contains_key(&h) => {
                self.drain(ep, h);
                let _ = ep.close(h);
            }
            _ => {}
        }
    }
}

fn capacity(buffers: u32) -> Capacity {
    Capacity { connections: 64, time_wait: 64, buffers, buffer_size: CHUNK, events: 4096, ..Capacity::default() }
}

/// A client and a server 50 ms apart each way; the server listens on port 80.
fn pair(client_cfg: TcpConfig, server: Reader, server_buffers: u32, total: usize) -> Pair<Bulk, Reader> {
    let now = Instant::from_secs(1000);
    let cfg = TcpConfig::default();
    let mut sep = Endpoint::new(cfg, capacity(server_buffers), SERVER_MAC, Secrets::from_bytes([42; 32]), now);
    sep.listen(None, 80, cfg).unwrap();
    let cep = Endpoint::new(client_cfg, capacity(2048), CLIENT_MAC, Secrets::from_bytes([7; 32]), now);
    let faults = Faults { delay: RTT / 2, ..Faults::default() };
    Pair::new(now, (cep, Bulk { total, ..Bulk::default() }), (sep, server), faults, 1)
}

fn connect(p: &mut Pair<Bulk, Reader>, port: u16) -> Handle {
    let local: SocketAddr = format!("198.18.0.2:{port}").parse().unwrap();
    let h = p.client.ep.connect(p.now, local, "198.18.0.1:80".parse().unwrap(), SERVER_MAC).unwrap();
    p.client.app.sent.insert(h, 0);
    h
}

/// The server's side of the client's connection `h`.
fn server_handle(p: &Pair<Bulk, Reader>, client: Handle) -> Option<Handle> {
    let port = p.client.ep.tuple(client)?.local_port;
    let mut found = None;
    p.server.ep.for_each_connection(|h, t, _| {
        if t.remote_port == port {
            found = Some(h);
        }
    });
    found
}

/// What a transfer showed: the most bytes in flight, the widest window
/// the server advertised, the samples (one per step, from `steady` on) in
/// which the sender's window was below its congestion window, and when the
/// last byte was read.
#[derive(Debug, Default)]
struct Seen {
    flight: u32,
    window: u32,
    window_limited: usize,
    samples: usize,
    done: Option<Instant>,
}

fn watch(
    p: &mut Pair<Bulk, Reader>,
    c: Handle,
    limit: Duration,
    steady: Instant,
    until: impl Fn(&Pair<Bulk, Reader>) -> bool,
) -> Seen {
    let mut seen = Seen::default();
    p.drive(limit, |p| {
        if let Some(t) = p.client.ep.tcb(c) {
            seen.flight = seen.flight.max(t.flight());
            if p.now >= steady && !t.tx.is_empty() {
                seen.samples += 1;
                seen.window_limited += usize::from(t.snd_wnd < t.cwnd);
            }
        }
        if let Some(t) = server_handle(p, c).and_then(|s| p.server.ep.tcb(s)) {
            seen.window = seen.window.max(t.rcv_wnd());
        }
        p.client.ep.check_invariants().unwrap();
        p.server.ep.check_invariants().unwrap();
        until(p)
    });
    if until(p) {
        seen.done = Some(p.now);
    }
    seen
}

#[test]
fn a_bulk_transfer_over_a_long_path_fills_a_large_window() {
    let total = 8 << 20;
    let mut p = pair(TcpConfig::default(), Reader::new(Reading::Prompt), 2048, total);
    let start = p.now;
    let c = connect(&mut p, 30000);
    // After a few round trips autotuning keeps the window ahead of the
    // sender's congestion window: what limits the transfer is congestion
    // control, not the buffers.
    let steady = start + RTT * 5;
    let seen = watch(&mut p, c, Duration::from_secs(120), steady, |p| p.server.app.total() == total);
    let done = seen.done.expect("the transfer completes");
    let took = done - start;
    // One chunk per RTT, as before buffers grew, would take this long.
    let one_chunk = RTT * (total / CHUNK as usize) as u32;
    let mbit = total as f64 * 8.0 / took.as_secs_f64() / 1e6;
    eprintln!("{total} bytes in {took:?} ({mbit:.1} Mbit/s; one chunk per RTT: {one_chunk:?}); {seen:?}");
    assert!(seen.flight > 4 * CHUNK, "{} bytes in flight at most", seen.flight);
    assert!(seen.window > 8 * CHUNK, "the window reached {}", seen.window);
    assert!(seen.samples > 100 && seen.window_limited == 0, "{seen:?}");
    assert!(took < one_chunk / 4, "{took:?}");
    let s = p.server.ep.stats;
    assert!(s.rcv_window_grown >= 6, "{}", s.rcv_window_grown);
    assert_eq!((s.drop_no_buffer, s.buffer_growth_refused, p.client.ep.stats.retransmits), (0, 0, 0));
    assert!(p.drive(Duration::from_secs(10), |p| p.server.ep.connections() == 0 && p.client.ep.connections() == 0));
    assert_eq!(p.server.ep.buffers_free(), 2048, "every chunk back in the pool");
    assert_eq!(p.client.ep.buffers_free(), 2048);
}

#[test]
fn with_congestion_control_out_of_the_way_the_window_doubles_each_round_trip() {
    // The sender may send 64 MiB at once: only the receive window (one
    // chunk at first, then autotuned) limits what is in flight.
    let total = 8 << 20;
    let mut p = pair(TcpConfig::default(), Reader::new(Reading::Prompt), 2048, total);
    let start = p.now;
    let c = connect(&mut p, 30000);
    assert!(p.drive(Duration::from_secs(1), |p| p.client.app.sent[&c] > 0));
    let t = p.client.ep.tcb_mut(c).unwrap();
    (t.cwnd, t.ssthresh) = (64 << 20, 64 << 20);
    let seen = watch(&mut p, c, Duration::from_secs(60), Instant::ZERO, |p| p.server.app.total() == total);
    let took = seen.done.expect("the transfer completes") - start;
    let mbit = total as f64 * 8.0 / took.as_secs_f64() / 1e6;
    eprintln!("{total} bytes in {took:?} ({mbit:.1} Mbit/s); {seen:?}");
    // Doubling from 16 KiB: 8 MiB within log2(8 MiB / 16 KiB) = 9 round
    // trips, plus the handshake and the last flight. The shard hands the
    // application its events after every 64-frame RX batch, so an RTT's
    // measurement can end part-way through a flight and a round grows the
    // window by less than 2x: allow a few rounds more (one chunk per RTT
    // would take over 500).
    assert!(took <= RTT * 16, "{took:?}");
    assert!(seen.window >= 2 << 20 && seen.flight >= 1 << 20, "{seen:?}");
    assert!(p.server.ep.stats.rcv_window_grown >= 7);
}

#[test]
fn autotuning_grows_the_window_only_for_a_reader_that_keeps_up() {
    let total = 2 << 20;
    // Reads at once: the window grows past one chunk.
    let mut p = pair(TcpConfig::default(), Reader::new(Reading::Prompt), 2048, total);
    let c = connect(&mut p, 30000);
    let prompt = watch(&mut p, c, Duration::from_secs(60), Instant::ZERO, |p| p.server.app.total() == total);
    assert!(prompt.done.is_some());
    assert!(prompt.window > 8 * CHUNK, "{prompt:?}");

    // Reads nothing: the window stays at one chunk and the buffer holds one.
    let mut p = pair(TcpConfig::default(), Reader::new(Reading::Never), 2048, total);
    let c = connect(&mut p, 30000);
    let never = watch(&mut p, c, Duration::from_secs(5), Instant::ZERO, |_| false);
    let s = server_handle(&p, c).unwrap();
    let t = p.server.ep.tcb(s).unwrap();
    assert!(t.rx.len() > (CHUNK - 1448) as usize, "a chunk's worth arrived and waits: {}", t.rx.len());
    assert!(t.rx.len() + t.rcv_wnd() as usize <= CHUNK as usize && t.rx.chunks(p.server.ep.pool()) == 1);
    assert_eq!(t.rcv_buf, 0, "not grown");
    assert!(never.window <= CHUNK && never.flight <= CHUNK, "{never:?}");
    assert_eq!(p.server.ep.stats.rcv_window_grown, 0);

    // Drains everything once a second, ten times the RTT: it keeps up
    // with one chunk per second, not with what a round trip could bring.
    let mut p = pair(TcpConfig::default(), Reader::new(Reading::Every(Duration::from_secs(1))), 2048, total);
    let c = connect(&mut p, 30000);
    let slow = watch(&mut p, c, Duration::from_secs(10), Instant::ZERO, |_| false);
    let got = p.server.app.total();
    assert!(got >= 8 * CHUNK as usize && got <= 11 * CHUNK as usize, "{got} bytes read in 10 s");
    assert!(slow.window <= CHUNK, "{slow:?}");
    assert_eq!(p.server.ep.stats.rcv_window_grown, 0);
}

#[test]
fn the_window_scale_offered_covers_the_receive_buffer() {
    let big = TcpConfig { max_recv_buffer: 32 << 20, ..TcpConfig::default() };
    let mut p = pair(big, Reader::new(Reading::Prompt), 2048, 1);
    let c = connect(&mut p, 30000);
    assert!(p.drive(Duration::from_secs(1), |p| p.server.app.total() == 1));
    let client = p.client.ep.tcb(c).unwrap();
    let server = p.server.ep.tcb(server_handle(&p, c).unwrap()).unwrap();
    assert_eq!(client.rcv_wscale, 10, "65535 << 10 reaches 32 MiB");
    assert_eq!(server.snd_wscale, 10, "and the server heard it");
    assert_eq!(server.rcv_wscale, 7, "the default 4 MiB needs 7");
    assert!(65535u64 << server.rcv_wscale >= TcpConfig::default().max_recv_buffer as u64);
    assert!(client.rcv_wnd() <= CHUNK, "a small window at first: {}", client.rcv_wnd());
}

#[test]
fn a_short_pool_refuses_growth_but_the_transfer_goes_on() {
    // 32 chunks, low water 4: 28 connections whose bytes are never read
    // hold one chunk each, leaving the pool short.
    let total = 512 << 10;
    let hogs = 28;
    let mut reader = Reader::new(Reading::Prompt);
    reader.hogs = hogs;
    let mut p = pair(TcpConfig::default(), reader, 32, total);
    p.client.app.total = CHUNK as usize;
    for i in 0..hogs {
        connect(&mut p, 20000 + i as u16);
    }
    assert!(p.drive(Duration::from_secs(10), |p| p.server.ep.buffers_free() == 4));
    assert!(p.server.ep.pool().short());
    p.client.app.total = total;
    let start = p.now;
    let c = connect(&mut p, 30000);
    let seen = watch(&mut p, c, Duration::from_secs(120), Instant::ZERO, |p| p.server.app.total() == total);
    let took = seen.done.expect("completes at one chunk per RTT") - start;
    let s = p.server.ep.stats;
    assert!(s.buffer_growth_refused > 0, "growth refused while short");
    assert_eq!(s.rcv_window_grown, 0);
    assert!(seen.window <= CHUNK, "{seen:?}");
    assert!(took >= RTT * (total / CHUNK as usize - 1) as u32, "one chunk per RTT: {took:?}");
    assert_eq!(s.drop_no_buffer, 0, "what was advertised was taken");
}
