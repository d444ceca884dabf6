//! `synflood` mode: SYNs from many source addresses and random ports at a
//! target rate, never completed; counts the SYN-ACKs that come back. Frames
//! are written straight into TX frames: no endpoint, no state.

use floodgate::flow::Addr;
use floodgate::link::{Link, RxAction, TxSink};
use floodgate::wire::{self, Control, MacAddr, SeqNumber, TcpOptions, TcpRepr};
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodTotals {
    pub syns_sent: u64,
    pub tx_full: u64,
    pub synacks: u64,
    pub rsts: u64,
    pub other: u64,
}

pub struct SynFlood {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub target: SocketAddr,
    pub sources: Vec<IpAddr>,
    rng: u64,
    pub totals: FloodTotals,
}

impl SynFlood {
    pub fn new(src_mac: [u8; 6], dst_mac: [u8; 6], target: SocketAddr, sources: Vec<IpAddr>, seed: u64) -> SynFlood {
        SynFlood { src_mac, dst_mac, target, sources, rng: seed | 1, totals: FloodTotals::default() }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Sends up to `n` SYNs; returns how many left.
    pub fn send<L: Link>(&mut self, link: &mut L, n: u64) -> u64 {
        let mut sent = 0;
        let mut tx = link.tx();
        for _ in 0..n {
            let r = self.next();
            let src = self.sources[(r % self.sources.len() as u64) as usize];
            let port = 1024 + ((r >> 16) % 64512) as u16;
            let repr = TcpRepr {
                src_port: port,
                dst_port: self.target.port(),
                control: Control::SYN,
                seq_number: SeqNumber((r >> 32) as u32),
                ack_number: None,
                window_len: 64240,
                urgent: 0,
                // What Linux offers: MSS, SACK-permitted, timestamps, window scale.
                options: TcpOptions {
                    mss: Some(1460),
                    sack_permitted: true,
                    timestamp: Some((r as u32, 0)),
                    window_scale: Some(7),
                    ..TcpOptions::default()
                },
                payload: &[],
            };
            let (smac, dmac, dst) = (self.src_mac, self.dst_mac, self.target.ip());
            let ok = tx.send(|buf| {
                wire::emit_tcp_frame(buf, MacAddr(smac), MacAddr(dmac), None, Addr::from(src), Addr::from(dst), &repr)
                    .unwrap_or(0)
            });
            if ok {
                sent += 1;
            } else {
                self.totals.tx_full += 1;
                break;
            }
        }
        drop(tx);
        self.totals.syns_sent += sent;
        sent
    }

    /// Counts what came back.
    pub fn receive<L: Link>(&mut self, link: &mut L, budget: usize) -> usize {
        let t = &mut self.totals;
        link.poll_rx(budget, |frame, _| {
            match wire::parse_tcp_frame(frame, false) {
                Ok(wire::Frame::Tcp(p)) if p.tcp.control.syn() && p.tcp.control.ack() => t.synacks += 1,
                Ok(wire::Frame::Tcp(p)) if p.tcp.control.rst() => t.rsts += 1,
                _ => t.other += 1,
            }
            RxAction::Release
        })
    }
}
