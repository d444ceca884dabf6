//! Shared by the engine benches (`handshake`, `http_conn`, `wire`): a
//! simulated client that prebuilds its frames, and TX sinks.
//!
//! Frames are built outside the timed loops with `wire::emit_tcp_frame` (as
//! the scenario tests do) into a flat, reused store, so the timed code is the
//! engine alone: parse, demux, state machine, emit into a reused buffer.

#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;
use floodgate::flow::{Addr, FourTuple};
use floodgate::link::{RxAction, TxSink};
use floodgate::tcp::{Capacity, CookieMode, Endpoint, Event, Secrets, TcpConfig};
use floodgate::time::Instant;
use floodgate::wire::{self, Control, MacAddr, SeqNumber, TcpOptions, TcpRepr};

pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
pub const SERVER_PORT: u16 = floodgate_bench::SERVER.1;
/// The engine's secrets in every bench, so the client can predict ISNs.
pub const KEY: [u8; 32] = [42; 32];
/// Where the benches' clock starts.
pub const T0: Instant = Instant::from_secs(1000);

/// Short runs: two cores are shared, the whole suite must take minutes.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .without_plots()
}

/// Writes every frame into one reused buffer and drops it: no allocation,
/// no copy beyond the engine's own write. Counts what went through.
pub struct Sink {
    buf: Box<[u8; 2048]>,
    pub frames: u64,
    pub bytes: u64,
}

impl Sink {
    pub fn new() -> Sink {
        Sink { buf: Box::new([0; 2048]), frames: 0, bytes: 0 }
    }
}

impl TxSink for Sink {
    #[inline]
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool {
        let n = write(&mut self.buf[..]);
        self.frames += (n > 0) as u64;
        self.bytes += n as u64;
        true
    }
}

/// A sink that can also take a reply the engine wrote into the received frame.
pub trait Replies: TxSink {
    fn in_place(&mut self, frame: &[u8]);
}

impl Replies for Sink {
    #[inline]
    fn in_place(&mut self, frame: &[u8]) {
        self.frames += 1;
        self.bytes += frame.len() as u64;
    }
}

impl Replies for Capture {
    fn in_place(&mut self, frame: &[u8]) {
        self.frames.push(frame.to_vec());
    }
}

/// The receive buffer: each prebuilt frame is copied into it before the
/// engine sees it, as the NIC writes a frame into UMEM. The engine may
/// answer in that buffer (the SYN fast path writes its SYN-ACK back into the
/// received frame), so the prebuilt frames stay intact for the next round,
/// and the in-place reply is counted as a sent frame.
pub struct Rx {
    buf: Box<[u8; 2048]>,
}

impl Rx {
    pub fn new() -> Rx {
        Rx { buf: Box::new([0; 2048]) }
    }

    #[inline]
    pub fn deliver<T: Replies>(&mut self, ep: &mut Endpoint, now: Instant, frame: &[u8], tx: &mut T) {
        let n = frame.len();
        self.buf[..n].copy_from_slice(frame);
        if let RxAction::Transmit(len) = ep.on_frame(now, &mut self.buf[..n], tx) {
            tx.in_place(&self.buf[..len]);
        }
    }
}

/// Keeps every frame (setup only: it allocates).
#[derive(Default)]
pub struct Capture {
    pub frames: Vec<Vec<u8>>,
}

impl TxSink for Capture {
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool {
        let mut b = vec![0u8; 2048];
        let n = write(&mut b);
        if n > 0 {
            b.truncate(n);
            self.frames.push(b);
        }
        true
    }
}

/// The fields of a client segment the benches vary.
#[derive(Clone, Copy, Debug)]
pub struct ClientSeg<'a> {
    pub control: u8,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub options: TcpOptions,
    pub payload: &'a [u8],
}

pub const SYN: u8 = Control::SYN.0;
pub const ACK: u8 = Control::ACK.0;
pub const FIN: u8 = Control::FIN.0;
pub const RST: u8 = Control::RST.0;
pub const PSH: u8 = Control::PSH.0;

/// What a Linux client puts in its SYN: MSS 1460, SACK-Permitted,
/// Timestamps, Window Scale 7 (74-byte frame).
pub fn linux_syn_options(tsval: u32) -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamp: Some((tsval, 0)),
        ..TcpOptions::NONE
    }
}

/// A SYN with only the MSS option (58 bytes, padded to 60).
pub fn bare_syn_options() -> TcpOptions {
    TcpOptions { mss: Some(1460), ..TcpOptions::NONE }
}

/// The `i`-th benchmark client's tuple, from the server's side.
pub fn tuple(i: u64) -> FourTuple {
    floodgate_bench::client_tuple(i)
}

/// Frames from client `i` to the server, in fixed-size cells (256 bytes
/// unless asked for more) of one flat buffer (allocated once, refilled in
/// place).
pub struct Frames {
    buf: Vec<u8>,
    lens: Vec<u16>,
    cell: usize,
}

impl Frames {
    pub fn with_capacity(n: usize) -> Frames {
        Frames::with_cells(n, 256)
    }
    /// `n` cells of `cell` bytes (a full-sized data segment needs 1,536).
    pub fn with_cells(n: usize, cell: usize) -> Frames {
        Frames { buf: vec![0; n * cell], lens: vec![0; n], cell }
    }
    pub fn len(&self) -> usize {
        self.lens.len()
    }
    /// Writes client `client`'s segment into cell `at`.
    pub fn put(&mut self, at: usize, client: u64, s: &ClientSeg) {
        let (ip, port) = floodgate_bench::client(client);
        let repr = TcpRepr {
            src_port: port,
            dst_port: SERVER_PORT,
            control: Control(s.control),
            seq_number: SeqNumber(s.seq),
            ack_number: (s.control & ACK != 0).then_some(SeqNumber(s.ack)),
            window_len: s.window,
            urgent: 0,
            options: s.options,
            payload: s.payload,
        };
        let cell = &mut self.buf[at * self.cell..(at + 1) * self.cell];
        let n = wire::emit_tcp_frame(
            cell,
            MacAddr(CLIENT_MAC),
            MacAddr(SERVER_MAC),
            None,
            Addr::v4(ip),
            Addr::v4(floodgate_bench::SERVER.0),
            &repr,
        )
        .expect("bench frame fits its cell");
        self.lens[at] = n as u16;
    }
    #[inline(always)]
    pub fn get(&self, at: usize) -> &[u8] {
        let n = self.lens[at] as usize;
        &self.buf[at * self.cell..at * self.cell + n]
    }
}

/// The TcpConfig every bench listener uses: the engine's defaults (TS,
/// SACK, WS 7, keepalive 2 h, MSL 30 s) with the given cookie mode.
pub fn tcp_config(cookies: CookieMode) -> TcpConfig {
    TcpConfig { syn_cookies: cookies, ..TcpConfig::default() }
}

pub fn capacity() -> Capacity {
    Capacity {
        connections: 65536,
        time_wait: 65536,
        buffers: 1024,
        buffer_size: 16384,
        events: 65536,
        ..Capacity::default()
    }
}

/// An endpoint listening on 198.18.0.1:80.
pub fn endpoint(cookies: CookieMode, cap: Capacity) -> Endpoint {
    let cfg = tcp_config(cookies);
    let mut ep = Endpoint::new(cfg, cap, SERVER_MAC, Secrets::from_bytes(KEY), T0);
    ep.listen(None, SERVER_PORT, cfg).unwrap();
    ep
}

/// Pops every pending event; returns how many.
#[inline]
pub fn drain_events(ep: &mut Endpoint) -> usize {
    let mut n = 0;
    while let Some(e) = ep.poll_event() {
        std::hint::black_box(e);
        n += 1;
    }
    n
}

/// The server's segment header fields a client needs: seq, ack, TSval.
pub fn server_reply(frame: &[u8]) -> (u32, u32, Option<u32>, u8) {
    let wire::Frame::Tcp(p) = wire::parse_tcp_frame(frame, true).expect("server frame parses") else {
        panic!("server sent a non-TCP frame")
    };
    (
        p.tcp.seq_number.0,
        p.tcp.ack_number.map_or(0, |a| a.0),
        p.tcp.options.timestamp.map(|t| t.0),
        p.tcp.control.bits(),
    )
}

/// The events the bench app saw, for sanity checks outside timing.
pub fn count_events(ep: &mut Endpoint) -> [usize; 7] {
    let mut c = [0; 7];
    while let Some(e) = ep.poll_event() {
        let i = match e {
            Event::Accepted(_) => 0,
            Event::Connected(_) => 1,
            Event::Readable(_) => 2,
            Event::Writable(_) => 3,
            Event::PeerClosed(_) => 4,
            Event::Closed(..) => 5,
            Event::Deadline(_) => 6,
        };
        c[i] += 1;
    }
    c
}
pub mod bulk;
pub mod scenarios;
