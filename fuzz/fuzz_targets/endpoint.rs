//! The TCP endpoint (`tcp::Endpoint`) fed sequences of frames, clock steps
//! and application calls, with the endpoint's invariants checked after
//! every step (s2n-quic's `check_consistency`, smoltcp's `iface` target).
//!
//! Peers are a few fixed 4-tuples: three IPv4 and one IPv6 client of the
//! listener on port 80, one client of a port nobody listens on, and three
//! servers the endpoint connects to (active opens). Each peer remembers
//! what the endpoint last told it (the highest sequence number sent, the
//! last ACK, the last TSval), and a segment's numbers are offsets from
//! that, so short inputs complete handshakes (cookie handshakes included),
//! move data and close. Frames may also be mangled byte by byte or be raw
//! bytes; checksums are made right before delivery so mutations reach TCP.
//!
//! Checked after every step: no panic, every frame the endpoint sends
//! parses with good checksums and comes from our address, and
//! `Endpoint::check_invariants` (sequence order, table counts within
//! capacity, half-open accounting, buffer chunks conserved, a timer armed
//! for every connection with a deadline). At the end, with keepalive on,
//! every connection, TIME-WAIT entry, timer and buffer is released within
//! a few virtual hours.
#![no_main]

use arbitrary::Arbitrary;
use floodgate::flow::{Addr, FourTuple};
use floodgate::link::{RxAction, TxSink};
use floodgate::table::{Handle, TwFullPolicy};
use floodgate::tcp::{Capacity, CookieMode, Endpoint, Secrets, TcpConfig, TimeWaitRst};
use floodgate::time::{Duration, Instant};
use floodgate::wire::{self, Control, MacAddr, SeqNumber, TcpOptions, TcpRepr};
use fuzz_support::fix_checksums;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const OUR_V4: [u8; 4] = [198, 18, 0, 1];
const PEER_V4: [u8; 4] = [198, 18, 0, 2];
const LISTEN_PORT: u16 = 80;
const CLOSED_PORT: u16 = 81;
const REMOTE_SERVER_PORT: u16 = 8080;
const PEERS: usize = 8;
const PEER_ISN: u32 = 0x1000_0000;
/// Ops run per input: bounds the time of one run.
const MAX_OPS: usize = 96;

fn v6(last: u8) -> Addr {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = last;
    Addr(a)
}

/// Peer `i`'s 4-tuple, seen from the endpoint.
fn tuple(i: usize) -> FourTuple {
    let (l4, r4) = (Addr::v4(OUR_V4), Addr::v4(PEER_V4));
    match i {
        0..=2 => FourTuple { local_addr: l4, remote_addr: r4, local_port: LISTEN_PORT, remote_port: 1000 + i as u16 },
        3 => FourTuple { local_addr: v6(1), remote_addr: v6(2), local_port: LISTEN_PORT, remote_port: 1003 },
        4 => FourTuple { local_addr: l4, remote_addr: r4, local_port: CLOSED_PORT, remote_port: 1004 },
        _ => {
            FourTuple { local_addr: l4, remote_addr: r4, local_port: 2000 + i as u16, remote_port: REMOTE_SERVER_PORT }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Setup {
    cookies: u8,
    timestamps: bool,
    sack: bool,
    window_scale: u8,
    small: bool,
    half_open_budget: u8,
    keepalive: bool,
    time_wait_rst_closes: bool,
    time_wait_refuse_new: bool,
}

/// A number relative to what the peer knows.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Rel {
    Exact,
    Ahead(u16),
    Behind(u16),
    Any(u32),
}

impl Rel {
    fn from(self, base: u32) -> u32 {
        match self {
            Rel::Exact => base,
            Rel::Ahead(d) => base.wrapping_add(d as u32),
            Rel::Behind(d) => base.wrapping_sub(d as u32),
            Rel::Any(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Seg {
    flags: u8,
    seq: Rel,
    ack: Rel,
    window: u16,
    mss: Option<u16>,
    window_scale: Option<u8>,
    sack_permitted: bool,
    /// TSval: the peer's clock plus this; TSecr: the endpoint's last TSval, relative.
    timestamp: Option<(i16, Rel)>,
    /// One SACK block, relative to the endpoint's highest sequence number sent.
    sack: Option<(Rel, u16)>,
    len: u16,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Millis(u16),
    Secs(u16),
    /// To the endpoint's next deadline.
    NextDeadline,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Segment { peer: u8, seg: Seg },
    Mangled { peer: u8, seg: Seg, edits: Vec<(u8, u8)>, cut: Option<u8> },
    Raw(Vec<u8>),
    Advance(Step),
    Read { peer: u8, max: u16 },
    Write { peer: u8, len: u16 },
    Close(u8),
    Shutdown(u8),
    Abort(u8),
    Connect(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    ops: Vec<Op>,
}

/// What a peer has sent and what the endpoint last told it.
#[derive(Clone, Copy, Default)]
struct Peer {
    /// The peer's next sequence number (its SND.NXT).
    snd_nxt: Option<u32>,
    /// The endpoint's highest sequence number seen, plus one.
    their_nxt: Option<u32>,
    their_tsval: u32,
}

#[derive(Default)]
struct Capture(Vec<Vec<u8>>);

impl TxSink for Capture {
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool {
        let mut b = vec![0u8; 9216 + 18];
        let n = write(&mut b);
        if n > 0 {
            b.truncate(n);
            self.0.push(b);
        }
        true
    }
}

struct World {
    ep: Endpoint,
    now: Instant,
    peers: [Peer; PEERS],
    /// Payload bytes for segments and writes.
    zeros: Vec<u8>,
}

fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl World {
    fn handle(&self, peer: usize) -> Option<Handle> {
        let want = tuple(peer);
        let mut found = None;
        self.ep.for_each_connection(|h, t, _| {
            if *t == want {
                found = Some(h);
            }
        });
        found
    }

    fn segment_frame(&mut self, i: usize, s: &Seg) -> Vec<u8> {
        let p = self.peers[i];
        let seq_base = p.snd_nxt.unwrap_or(PEER_ISN);
        let ack_base = p.their_nxt.unwrap_or(0);
        let control = Control(s.flags);
        let len = if control.syn() { s.len % 64 } else { s.len % 1461 } as usize;
        let t = tuple(i);
        let repr = TcpRepr {
            src_port: t.remote_port,
            dst_port: t.local_port,
            control,
            seq_number: SeqNumber(s.seq.from(seq_base)),
            ack_number: control.ack().then(|| SeqNumber(s.ack.from(ack_base))),
            window_len: s.window,
            urgent: 0,
            options: TcpOptions {
                mss: s.mss,
                window_scale: s.window_scale,
                sack_permitted: s.sack_permitted,
                sack_blocks: [
                    s.sack.map(|(l, n)| {
                        let left = l.from(ack_base);
                        (SeqNumber(left), SeqNumber(left.wrapping_add(n as u32)))
                    }),
                    None,
                    None,
                    None,
                ],
                timestamp: s.timestamp.map(|(d, ecr)| {
                    ((self.now.total_millis() as u32).wrapping_add(d as i32 as u32), ecr.from(p.their_tsval))
                }),
            },
            payload: &self.zeros[..len],
        };
        let mut buf = vec![0u8; 2048];
        let n = wire::emit_tcp_frame(
            &mut buf,
            MacAddr(PEER_MAC),
            MacAddr(OUR_MAC),
            None,
            t.remote_addr,
            t.local_addr,
            &repr,
        )
        .expect("a template segment fits");
        buf.truncate(n);
        // What the peer has now sent.
        let end = repr.seq_number.0.wrapping_add(len as u32 + control.syn() as u32 + control.fin() as u32);
        if !control.rst() && p.snd_nxt.is_none_or(|n| seq_after(end, n)) {
            self.peers[i].snd_nxt = Some(end);
        }
        buf
    }

    /// Delivers one frame and flushes.
    fn deliver(&mut self, mut frame: Vec<u8>) {
        fix_checksums(&mut frame);
        let mut tx = Capture::default();
        if let RxAction::Transmit(n) = self.ep.on_frame(self.now, &mut frame, &mut tx) {
            tx.0.insert(0, frame[..n].to_vec());
        }
        self.finish(tx);
    }

    /// Drains events, flushes, checks what went out and the invariants.
    fn finish(&mut self, mut tx: Capture) {
        while self.ep.poll_event().is_some() {}
        self.ep.flush(self.now, &mut tx);
        while self.ep.poll_event().is_some() {}
        for f in &tx.0 {
            let p = match wire::parse_tcp_frame(f, true) {
                Ok(wire::Frame::Tcp(p)) => p,
                other => panic!("the endpoint sent a bad frame: {other:?}"),
            };
            assert_eq!(p.eth.src_addr, MacAddr(OUR_MAC));
            let sent = FourTuple {
                local_addr: p.src,
                remote_addr: p.dst,
                local_port: p.tcp.src_port,
                remote_port: p.tcp.dst_port,
            };
            let Some(i) = (0..PEERS).find(|&i| tuple(i) == sent) else {
                // A reply to a raw frame from elsewhere.
                continue;
            };
            let c = p.tcp.control;
            let end = p.tcp.seq_number.0.wrapping_add(p.tcp.payload.len() as u32 + c.syn() as u32 + c.fin() as u32);
            let peer = &mut self.peers[i];
            if c.rst() {
                *peer = Peer::default();
                continue;
            }
            if peer.their_nxt.is_none_or(|n| seq_after(end, n)) || c.syn() {
                peer.their_nxt = Some(end);
            }
            if let Some(a) = p.tcp.ack_number {
                if peer.snd_nxt.is_none_or(|n| seq_after(a.0, n)) {
                    peer.snd_nxt = Some(a.0);
                }
            }
            if let Some((val, _)) = p.tcp.options.timestamp {
                peer.their_tsval = val;
            }
        }
        if let Err(e) = self.ep.check_invariants() {
            panic!("invariant broken at {}: {e}", self.now);
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        let mut tx = Capture::default();
        self.ep.on_timers(self.now, &mut tx);
        self.finish(tx);
    }

    fn app(&mut self, peer: u8, f: impl FnOnce(&mut Endpoint, Handle, &[u8])) {
        if let Some(h) = self.handle(peer as usize % PEERS) {
            f(&mut self.ep, h, &self.zeros);
            self.finish(Capture::default());
        }
    }
}

fn endpoint(s: &Setup, now: Instant) -> Endpoint {
    let cfg = TcpConfig {
        syn_cookies: [CookieMode::Auto, CookieMode::Always, CookieMode::Never][s.cookies as usize % 3],
        timestamps: s.timestamps,
        sack: s.sack,
        window_scale: s.window_scale % 15,
        // The default (1/8 of the table), or 1 or 2: within the half of the
        // smallest table (4) that all budgets together may take.
        half_open_budget: match s.half_open_budget % 3 {
            0 => TcpConfig::default().half_open_budget,
            n => n as u32,
        },
        keepalive: if s.keepalive { TcpConfig::default().keepalive } else { None },
        time_wait_rst: if s.time_wait_rst_closes { TimeWaitRst::Close } else { TimeWaitRst::Ignore },
        ..TcpConfig::default()
    };
    let policy = if s.time_wait_refuse_new { TwFullPolicy::RefuseNew } else { TwFullPolicy::EvictOldest };
    let cap = if s.small {
        Capacity {
            connections: 4,
            time_wait: 2,
            time_wait_v6: 2,
            buffers: 3,
            buffer_size: 2048,
            events: 4,
            time_wait_policy: policy,
            sources: 2,
        }
    } else {
        Capacity {
            connections: 16,
            time_wait: 16,
            time_wait_v6: 16,
            buffers: 32,
            buffer_size: 16384,
            events: 64,
            time_wait_policy: policy,
            sources: 16,
        }
    };
    let mut ep = Endpoint::new(cfg, cap, OUR_MAC, Secrets::from_bytes([42; 32]), now);
    ep.listen(None, LISTEN_PORT, cfg).expect("one listener");
    ep
}

fn show_stats() -> bool {
    static SHOW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("FLOODGATE_FUZZ_STATS").is_some())
}

fuzz_target!(|input: Input| {
    if show_stats() {
        eprintln!("{input:#?}");
    }
    let now = Instant::from_secs(1000);
    let mut w =
        World { ep: endpoint(&input.setup, now), now, peers: [Peer::default(); PEERS], zeros: vec![0x5a; 65536] };
    let buffers = w.ep.buffers_free();
    for op in input.ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Segment { peer, seg } => {
                let f = w.segment_frame(peer as usize % PEERS, &seg);
                w.deliver(f);
            }
            Op::Mangled { peer, seg, edits, cut } => {
                let mut f = w.segment_frame(peer as usize % PEERS, &seg);
                for (at, v) in edits.into_iter().take(16) {
                    // Mostly the IP and TCP headers and the options.
                    let i = 14 + at as usize % (f.len() - 14).min(80);
                    f[i] = v;
                }
                if let Some(c) = cut {
                    f.truncate(f.len().min(c as usize));
                }
                w.deliver(f);
            }
            Op::Raw(b) => w.deliver(b),
            Op::Advance(s) => {
                let d = match s {
                    Step::Millis(ms) => Duration::from_millis(ms as u64),
                    Step::Secs(s) => Duration::from_secs(s as u64),
                    Step::NextDeadline => w
                        .ep
                        .next_deadline()
                        .map_or(Duration::from_millis(1), |d| d.saturating_since(w.now).max(Duration::from_millis(1))),
                };
                w.advance(d);
            }
            Op::Read { peer, max } => w.app(peer, |ep, h, _| {
                let mut b = vec![0u8; max as usize];
                let _ = ep.read(h, &mut b);
            }),
            Op::Write { peer, len } => w.app(peer, |ep, h, z| {
                let _ = ep.write(h, &z[..len as usize]);
            }),
            Op::Close(p) => w.app(p, |ep, h, _| {
                let _ = ep.close(h);
            }),
            Op::Shutdown(p) => w.app(p, |ep, h, _| {
                let _ = ep.shutdown(h);
            }),
            Op::Abort(p) => w.app(p, |ep, h, _| {
                let _ = ep.abort(h);
            }),
            Op::Connect(p) => {
                let i = 5 + p as usize % (PEERS - 5);
                let t = tuple(i);
                let (local, remote): (SocketAddr, SocketAddr) = (t.local(), t.remote());
                if w.ep.connect(w.now, local, remote, PEER_MAC).is_ok() {
                    w.peers[i] = Peer::default();
                }
                w.finish(Capture::default());
            }
        }
    }
    if show_stats() {
        // How deep the corpus reaches (FLOODGATE_FUZZ_STATS=1 with -runs=0).
        eprintln!("{:?}", w.ep.stats);
    }
    if !input.setup.keepalive {
        // An idle established connection then lives for ever, rightly.
        return;
    }
    // Everything ends: retransmissions give up, keepalive resets silent
    // peers, TIME-WAIT expires.
    for _ in 0..40 {
        w.advance(Duration::from_secs(600));
    }
    w.advance(Duration::from_secs(3 * 3600));
    for _ in 0..20 {
        w.advance(Duration::from_secs(600));
    }
    if w.ep.connections() != 0 {
        w.ep.for_each_connection(|_, t, tcb| eprintln!("left: {t:?} {tcb:#?}"));
        panic!("{} connections left at {}", w.ep.connections(), w.now);
    }
    assert_eq!(w.ep.time_wait(), 0, "TIME-WAIT entries left");
    assert_eq!(w.ep.armed_timers(), 0, "timers left");
    assert_eq!(w.ep.half_open(), 0);
    assert_eq!(w.ep.buffers_free(), buffers, "buffers not returned");
});
