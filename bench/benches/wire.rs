//! The wire layer alone.
//!
//! * `parse/syn_linux_opts/{verify,no_verify}`: `parse_tcp_frame` of a
//!   74-byte Ethernet/IPv4/TCP SYN with MSS, SACK-Permitted, Timestamps and
//!   WS, with both checksums verified, and without (NIC offload).
//! * `parse/get_146B/verify`: a data segment (78-byte HTTP GET, TS option).
//! * `emit/synack`: `emit_tcp_frame` of a SYN-ACK with MSS, SACK-Permitted,
//!   TS and WS (Ethernet + IPv4 header + TCP header, options, checksums).
//! * `checksum/1500B`: `checksum::data` over a 1500-byte segment; criterion
//!   prints bytes/s (GiB/s).

mod common;

use std::hint::black_box;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodgate::flow::Addr;
use floodgate::wire::{self, checksum, Control, MacAddr, SeqNumber, TcpOptions, TcpRepr};

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire/parse");
    g.throughput(Throughput::Elements(1));
    let mut frames = Frames::with_capacity(2);
    frames.put(
        0,
        1,
        &ClientSeg {
            control: SYN,
            seq: 0x1234_5678,
            ack: 0,
            window: 64240,
            options: linux_syn_options(1_000_000),
            payload: &[],
        },
    );
    let get = b"GET / HTTP/1.1\r\nHost: 198.18.0.1\r\nUser-Agent: floodgate-bench\r\nAccept: */*\r\n\r\n";
    frames.put(
        1,
        1,
        &ClientSeg {
            control: PSH | ACK,
            seq: 0x1234_5679,
            ack: 0xabcd_0001,
            window: 502,
            options: TcpOptions { timestamp: Some((1_000_001, 77)), ..TcpOptions::NONE },
            payload: get,
        },
    );
    let syn = frames.get(0).to_vec();
    let data = frames.get(1).to_vec();
    assert_eq!(syn.len(), 74);
    for verify in [true, false] {
        let name = if verify { "verify" } else { "no_verify" };
        g.bench_function(format!("syn_linux_opts/{name}"), |b| {
            b.iter(|| black_box(wire::parse_tcp_frame(black_box(&syn), verify)).is_ok())
        });
    }
    g.bench_function(format!("get_{}B/verify", data.len()), |b| {
        b.iter(|| black_box(wire::parse_tcp_frame(black_box(&data), true)).is_ok())
    });
    g.finish();
}

fn emit(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire/emit");
    g.throughput(Throughput::Elements(1));
    let repr = TcpRepr {
        src_port: 80,
        dst_port: 40000,
        control: Control::SYN,
        seq_number: SeqNumber(0xdead_beef),
        ack_number: Some(SeqNumber(0x1234_5679)),
        window_len: 16384,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((5_000, 1_000_000)),
            ..TcpOptions::NONE
        },
        payload: &[],
    };
    let mut buf = [0u8; 2048];
    let (src, dst) = (Addr::v4([198, 18, 0, 1]), Addr::v4([198, 18, 0, 2]));
    g.bench_function("synack", |b| {
        b.iter(|| {
            wire::emit_tcp_frame(&mut buf, MacAddr(SERVER_MAC), MacAddr(CLIENT_MAC), None, src, dst, black_box(&repr))
        })
    });
    g.finish();
}

fn csum(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire/checksum");
    let seg: Vec<u8> = (0..1500u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    g.throughput(Throughput::Bytes(1500));
    g.bench_function("1500B", |b| b.iter(|| checksum::data(black_box(&seg))));
    g.finish();
}

criterion_group! { name = benches; config = config(); targets = parse, emit, csum }
criterion_main!(benches);
