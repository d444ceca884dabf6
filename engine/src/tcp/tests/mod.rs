//! Scenario tests of the TCP engine with a virtual clock: a segment goes in
//! at a given time, and the test asserts exactly the segments that come back.
//!
//! The harness speaks either IP family ([`Family`]); a scenario written as
//! `fn name(f: Family)` runs over both with `both_families!(name)`.

mod arms;
mod cc;
mod clock;
mod close;
mod cookies;
mod data;
mod ecn;
mod flood;
mod handshake;
mod listeners;
mod output;
mod pmtu;
mod properties;
mod recovery;
mod rfc5961;
mod sack;
mod slow_peers;
mod timers;
mod timewait;
mod windows;

use super::tcb::ctl;
use super::*;
use crate::flow::{Addr, FourTuple};
use crate::link::{RxAction, TxSink};
use crate::table::Handle;
use crate::time::{Duration, Instant};
use crate::wire::{self, Control, MacAddr, SeqNumber, TcpOptions, TcpRepr};

pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
pub const SERVER_IP: [u8; 4] = [198, 18, 0, 1];
pub const CLIENT_IP: [u8; 4] = [198, 18, 0, 2];
/// The same two ends over IPv6 (RFC 3849 documentation addresses).
pub const SERVER_IP6: Addr = Addr([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
pub const CLIENT_IP6: Addr = Addr([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
pub const SERVER_PORT: u16 = 80;

/// The IP family a scenario runs over: the same two ends as IPv4
/// (198.18.0.0/15, RFC 2544) or IPv6 (2001:db8::/32, RFC 3849).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn server(self) -> Addr {
        match self {
            Family::V4 => Addr::v4(SERVER_IP),
            Family::V6 => SERVER_IP6,
        }
    }

    pub fn client(self) -> Addr {
        match self {
            Family::V4 => Addr::v4(CLIENT_IP),
            Family::V6 => CLIENT_IP6,
        }
    }

    /// The MSS of a 1500-byte MTU: what we advertise by default, and the
    /// most a segment carries (less 40 or 60 bytes of IP and TCP headers).
    pub fn mss(self) -> u16 {
        match self {
            Family::V4 => 1460,
            Family::V6 => 1440,
        }
    }
}
pub const CLIENT_PORT: u16 = 40000;
pub const CLIENT_ISN: SeqNumber = SeqNumber(1_000_000);

pub const SYN: u8 = ctl::SYN;
pub const ACK: u8 = ctl::ACK;
pub const FIN: u8 = ctl::FIN;
pub const RST: u8 = ctl::RST;
pub const PSH: u8 = ctl::PSH;
pub const ECE: u8 = ctl::ECE;
pub const CWR: u8 = ctl::CWR;

/// Frames an endpoint sent.
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

/// A segment, owned, as tests write and read them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S {
    pub control: u8,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub window: u16,
    pub mss: Option<u16>,
    pub ws: Option<u8>,
    pub sack_perm: bool,
    pub ts: Option<(u32, u32)>,
    /// SACK blocks, as sent or parsed (RFC 2018).
    pub sack: [Option<(SeqNumber, SeqNumber)>; wire::MAX_SACK_BLOCKS],
    pub payload: Vec<u8>,
    /// The IP header's ECN field (`wire::ecn`).
    pub ecn: u8,
}

/// A client segment: `control`, `seq`, `ack`, window 65535, nothing else.
pub fn seg(control: u8, seq: SeqNumber, ack: SeqNumber) -> S {
    S { control, seq, ack, window: 65535, ..S::default() }
}

pub fn syn(isn: SeqNumber) -> S {
    S { mss: Some(1460), ..seg(SYN, isn, SeqNumber(0)) }
}

pub fn frame_of(s: &S, from: ([u8; 6], Addr, u16), to: ([u8; 6], Addr, u16)) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: from.2,
        dst_port: to.2,
        control: Control(s.control),
        seq_number: s.seq,
        ack_number: (s.control & ACK != 0).then_some(s.ack),
        window_len: s.window,
        urgent: 0,
        options: TcpOptions {
            mss: s.mss,
            window_scale: s.ws,
            sack_permitted: s.sack_perm,
            timestamp: s.ts,
            sack_blocks: s.sack,
        },
        payload: &s.payload,
    };
    let mut buf = vec![0u8; 2048];
    let n = wire::emit_tcp_frame(&mut buf, MacAddr(from.0), MacAddr(to.0), None, from.1, to.1, &repr).unwrap();
    buf.truncate(n);
    if s.ecn != 0 {
        assert!(wire::set_ecn(&mut buf, s.ecn));
    }
    buf
}

pub fn parse(frame: &[u8]) -> (FourTuple, S) {
    let wire::Frame::Tcp(p) = wire::parse_tcp_frame(frame, true).expect("engine sent a valid frame") else {
        panic!("not TCP")
    };
    let r = p.tcp;
    let t = FourTuple { local_addr: p.src, remote_addr: p.dst, local_port: r.src_port, remote_port: r.dst_port };
    let s = S {
        control: r.control.bits(),
        seq: r.seq_number,
        ack: r.ack_number.unwrap_or(SeqNumber(0)),
        window: r.window_len,
        mss: r.options.mss,
        ws: r.options.window_scale,
        sack_perm: r.options.sack_permitted,
        ts: r.options.timestamp,
        sack: r.options.sack_blocks,
        payload: r.payload.to_vec(),
        ecn: p.ecn,
    };
    (t, s)
}

/// One connection established with default settings, its events taken:
/// (harness, connection, our SND.NXT).
pub fn established() -> (Harness, Handle, SeqNumber) {
    established_over(Family::V4)
}

pub fn established_over(f: Family) -> (Harness, Handle, SeqNumber) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    let (c, iss) = h.establish();
    h.take_events();
    (h, c, iss + 1)
}

/// An endpoint listening on port 80 of every address, a client talking to
/// it over one family (198.18.0.2 to 198.18.0.1, or 2001:db8::2 to
/// 2001:db8::1), a clock.
pub struct Harness {
    pub ep: Endpoint,
    pub now: Instant,
    pub events: Vec<Event>,
    pub client_port: u16,
    pub family: Family,
}

impl Harness {
    /// Over IPv4.
    pub fn new(cfg: TcpConfig) -> Harness {
        Self::new_over(Family::V4, cfg)
    }

    pub fn new_over(f: Family, cfg: TcpConfig) -> Harness {
        Self::with_capacity_over(
            f,
            cfg,
            Capacity {
                connections: 64,
                time_wait: 64,
                buffers: 64,
                buffer_size: 16384,
                events: 256,
                ..Capacity::default()
            },
        )
    }

    /// Over IPv4.
    pub fn with_capacity(cfg: TcpConfig, cap: Capacity) -> Harness {
        Self::with_capacity_over(Family::V4, cfg, cap)
    }

    pub fn with_capacity_over(f: Family, cfg: TcpConfig, cap: Capacity) -> Harness {
        Self::starting_at(f, cfg, cap, Instant::from_secs(1000))
    }

    /// With the clock starting at `now` (the engine's clock counts from
    /// the boot: any value is possible).
    pub fn starting_at(f: Family, cfg: TcpConfig, cap: Capacity, now: Instant) -> Harness {
        let mut ep = Endpoint::new(cfg, cap, SERVER_MAC, Secrets::from_bytes([42; 32]), now);
        ep.listen(None, SERVER_PORT, cfg).unwrap();
        Harness { ep, now, events: Vec::new(), client_port: CLIENT_PORT, family: f }
    }

    pub fn tuple(&self) -> FourTuple {
        FourTuple {
            local_addr: self.family.server(),
            remote_addr: self.family.client(),
            local_port: SERVER_PORT,
            remote_port: self.client_port,
        }
    }

    /// The client's end of the connection, as `frame_of` takes it.
    pub fn client_end(&self) -> ([u8; 6], Addr, u16) {
        (CLIENT_MAC, self.family.client(), self.client_port)
    }

    /// The server's end of the connection, as `frame_of` takes it.
    pub fn server_end(&self) -> ([u8; 6], Addr, u16) {
        (SERVER_MAC, self.family.server(), SERVER_PORT)
    }

    pub fn collect(&mut self, tx: Capture) -> Vec<S> {
        while let Some(e) = self.ep.poll_event() {
            self.events.push(e);
        }
        tx.frames
            .iter()
            .map(|f| {
                let (t, s) = parse(f);
                let me = self.tuple();
                assert_eq!(
                    (t.local_addr, t.remote_addr),
                    (me.local_addr, me.remote_addr),
                    "reply on the wrong addresses"
                );
                s
            })
            .collect()
    }

    /// Delivers a client segment now; returns every segment the server sent.
    #[track_caller]
    pub fn send(&mut self, s: S) -> Vec<S> {
        let mut frame = frame_of(&s, self.client_end(), self.server_end());
        let mut tx = Capture::default();
        if let RxAction::Transmit(n) = self.ep.on_frame(self.now, &mut frame, &mut tx) {
            // A reply written into the received frame.
            tx.frames.insert(0, frame[..n].to_vec());
        }
        let mut out = self.collect(tx);
        out.extend(self.flush());
        out
    }

    /// Delivers a segment and asserts exactly one comes back.
    #[track_caller]
    pub fn send1(&mut self, s: S) -> S {
        let mut out = self.send(s);
        assert_eq!(out.len(), 1, "expected exactly one segment, got {out:#?}");
        out.pop().unwrap()
    }

    /// Delivers a segment and asserts nothing comes back.
    #[track_caller]
    pub fn send0(&mut self, s: S) {
        let out = self.send(s);
        assert!(out.is_empty(), "expected no segment, got {out:#?}");
    }

    /// Sends what connections have queued (after an application call).
    pub fn flush(&mut self) -> Vec<S> {
        let mut tx = Capture::default();
        self.ep.flush(self.now, &mut tx);
        self.collect(tx)
    }

    /// Moves the clock forward and runs the timers.
    pub fn advance(&mut self, d: Duration) -> Vec<S> {
        self.now += d;
        let mut tx = Capture::default();
        self.ep.on_timers(self.now, &mut tx);
        self.ep.flush(self.now, &mut tx);
        self.collect(tx)
    }

    /// Advances in 1 ms steps until a segment comes out or `limit` passes;
    /// returns the time it took and the segments.
    pub fn advance_until_output(&mut self, limit: Duration) -> (Duration, Vec<S>) {
        let start = self.now;
        while self.now - start < limit {
            let next = self.ep.next_deadline().map_or(self.now + limit, |d| d.max(self.now + Duration::from_millis(1)));
            let step = (next - self.now).min(limit - (self.now - start)).max(Duration::from_millis(1));
            let out = self.advance(step);
            if !out.is_empty() {
                return (self.now - start, out);
            }
        }
        (self.now - start, Vec::new())
    }

    /// Delivers `s` from `client` to `server` (either family, over VLAN
    /// `vlan`) and returns what the server sent, with each frame's VLAN.
    pub fn send_over(&mut self, client: Addr, server: Addr, vlan: Option<u16>, s: &S) -> Vec<(Option<u16>, S)> {
        let repr = TcpRepr {
            src_port: self.client_port,
            dst_port: SERVER_PORT,
            control: Control(s.control),
            seq_number: s.seq,
            ack_number: (s.control & ACK != 0).then_some(s.ack),
            window_len: s.window,
            urgent: 0,
            options: TcpOptions { mss: s.mss, ..TcpOptions::default() },
            payload: &s.payload,
        };
        let mut frame = vec![0u8; 2048];
        let n = wire::emit_tcp_frame(&mut frame, MacAddr(CLIENT_MAC), MacAddr(SERVER_MAC), vlan, client, server, &repr)
            .unwrap();
        frame.truncate(n);
        let mut tx = Capture::default();
        if let RxAction::Transmit(n) = self.ep.on_frame(self.now, &mut frame, &mut tx) {
            tx.frames.insert(0, frame[..n].to_vec());
        }
        self.ep.flush(self.now, &mut tx);
        while let Some(e) = self.ep.poll_event() {
            self.events.push(e);
        }
        tx.frames
            .iter()
            .map(|f| {
                let wire::Frame::Tcp(p) = wire::parse_tcp_frame(f, true).expect("a valid frame") else {
                    panic!("not TCP")
                };
                assert_eq!((p.src, p.dst), (server, client), "reply on the connection's addresses");
                (p.eth.vlan, parse(f).1)
            })
            .collect()
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The one connection the harness knows of, from its Accepted event.
    pub fn accepted(&self) -> Handle {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::Accepted(h) => Some(*h),
                _ => None,
            })
            .expect("no connection accepted")
    }

    /// Three-way handshake without options. Returns (handle, server ISS).
    pub fn establish(&mut self) -> (Handle, SeqNumber) {
        let sa = self.send1(syn(CLIENT_ISN));
        assert_eq!(sa.control, SYN | ACK);
        self.send0(seg(ACK, CLIENT_ISN + 1, sa.seq + 1));
        (self.accepted(), sa.seq)
    }
}
