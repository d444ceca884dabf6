//! The per-packet frame parser (`wire::parse_tcp_frame`) on raw bytes.
//!
//! Checked on every input: no panic; the IPv4 fast path answers exactly as
//! the layer-by-layer parse, with and without checksum verification; once
//! the checksums are made right, verifying them changes nothing; and a
//! TCP segment that parses is emitted again and parses back to itself
//! (rustls' `message` target: parse, emit, compare).
#![no_main]

use floodgate::fuzzing::{parse_frame_general, parse_options_general};
use floodgate::wire::{emit_tcp_frame, parse_tcp_frame, tcp_frame_len, Frame, TcpOptions, L3};
use fuzz_support::fix_checksums;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for verify in [false, true] {
        assert_eq!(parse_tcp_frame(data, verify), parse_frame_general(data, verify), "fast and general parse differ");
    }
    // Any 0-40 bytes as a TCP option block.
    let opts = &data[..data.len().min(40)];
    assert_eq!(TcpOptions::parse(opts), parse_options_general(opts), "option fast path and walk differ");

    let mut f = data.to_vec();
    if fix_checksums(&mut f) {
        let unverified = parse_tcp_frame(&f, false);
        assert_eq!(parse_tcp_frame(&f, true), unverified, "good checksums still rejected");
        assert_eq!(parse_frame_general(&f, true), unverified);
    }
    if let Ok(Frame::Tcp(p)) = parse_tcp_frame(&f, false) {
        let l3 = if p.src.is_v4() { L3::V4 } else { L3::V6 };
        let len = tcp_frame_len(p.eth.vlan, l3, &p.tcp);
        let mut out = vec![0xa5u8; len];
        // A segment too long for its length field is refused, not written.
        if let Ok(n) = emit_tcp_frame(&mut out, p.eth.src_addr, p.eth.dst_addr, p.eth.vlan, p.src, p.dst, &p.tcp) {
            assert_eq!(n, len);
            let Ok(Frame::Tcp(q)) = parse_tcp_frame(&out[..n], true) else {
                panic!("emitted frame does not parse: {:?}", parse_tcp_frame(&out[..n], true))
            };
            assert_eq!((q.src, q.dst, q.eth.vlan), (p.src, p.dst, p.eth.vlan));
            assert_eq!(q.tcp.payload, p.tcp.payload);
            assert_eq!((q.tcp.seq_number, q.tcp.ack_number), (p.tcp.seq_number, p.tcp.ack_number));
            assert_eq!((q.tcp.control, q.tcp.window_len), (p.tcp.control, p.tcp.window_len));
            assert_eq!(q.tcp.options.mss, p.tcp.options.mss);
            assert_eq!(q.tcp.options.window_scale, p.tcp.options.window_scale);
            assert_eq!(q.tcp.options.sack_permitted, p.tcp.options.sack_permitted);
            assert_eq!(q.tcp.options.timestamp, p.tcp.options.timestamp);
        }
    }
});
