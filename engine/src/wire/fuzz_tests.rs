//! Property tests: no parser panics on any input (DESIGN.md "every input
//! from the network is untrusted"; CONFORMANCE.md item 24).
//!
//! Random bytes, and random mutations (byte flips, truncations, insertions)
//! of valid frames, go through `parse_tcp_frame` and through every
//! `new_checked` + `Repr::parse` and every getter of a checked view.

use super::frame::DEFAULT_HOP_LIMIT;
use super::*;
use crate::flow::Addr;
use proptest::prelude::*;

const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

/// Valid frames to mutate: v4 and v6, tagged and not, with options and data.
fn seed_frames() -> Vec<Vec<u8>> {
    let v4 = (Addr::v4([198, 18, 0, 1]), Addr::v4([198, 18, 0, 2]));
    let mut a6 = [0u8; 16];
    a6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let mut b6 = a6;
    a6[15] = 1;
    b6[15] = 2;
    let v6 = (Addr(a6), Addr(b6));
    let syn = TcpRepr {
        src_port: 80,
        dst_port: 40000,
        control: Control::SYN,
        seq_number: SeqNumber(1),
        ack_number: Some(SeqNumber(2)),
        window_len: 1000,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((3, 4)),
            ..TcpOptions::NONE
        },
        payload: &[],
    };
    let data = TcpRepr {
        control: Control::PSH,
        options: TcpOptions {
            timestamp: Some((3, 4)),
            sack_blocks: [Some((SeqNumber(5), SeqNumber(9))); 4],
            ..TcpOptions::NONE
        },
        payload: b"some data in the segment",
        ..syn
    };
    let mut out = Vec::new();
    for (s, d) in [v4, v6] {
        for vlan in [None, Some(7)] {
            for tcp in [syn, data] {
                let mut buf = [0u8; 256];
                let n = emit_tcp_frame(&mut buf, MAC_A, MAC_B, vlan, s, d, &tcp).unwrap();
                out.push(buf[..n].to_vec());
            }
        }
    }
    // IPv6 with a Hop-by-Hop header.
    let mut f = out[4].clone();
    let mut ext = vec![6u8, 0, 1, 4, 0, 0, 0, 0];
    f[20] = 0;
    let plen = u16::from_be_bytes([f[18], f[19]]) + 8;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    let tail = f.split_off(54);
    f.append(&mut ext);
    f.extend_from_slice(&tail);
    out.push(f);
    // An ARP request.
    let mut arp = vec![0u8; 42];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: MAC_A,
        source_protocol_addr: [1, 2, 3, 4],
        target_hardware_addr: MacAddr::ZERO,
        target_protocol_addr: [5, 6, 7, 8],
    }
    .emit(&mut ArpPacket::new_unchecked(&mut arp[14..]));
    out.push(arp);
    out
}

/// Every view and Repr over `b`, with every getter of a checked view.
fn exercise_all(b: &[u8]) {
    for verify in [true, false] {
        let _ = parse_tcp_frame(b, verify);
    }
    if let Ok(f) = EthernetFrame::new_checked(b) {
        let _ = (f.dst_addr(), f.src_addr(), f.outer_ethertype(), f.vlan_id(), f.ethertype());
        let _ = (f.header_len(), f.payload());
        let _ = EthernetRepr::parse(&f);
    }
    if let Ok(p) = ArpPacket::new_checked(b) {
        let _ = (p.hardware_type(), p.protocol_type(), p.hardware_len(), p.protocol_len());
        let _ = (p.operation(), p.source_hardware_addr(), p.source_protocol_addr());
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
        let _ = ArpRepr::parse(&p);
    }
    if let Ok(p) = Ipv4Packet::new_checked(b) {
        let _ = (p.version(), p.header_len(), p.dscp_ecn(), p.total_len(), p.ident());
        let _ = (p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment(), p.ttl());
        let _ = (p.protocol(), p.checksum(), p.src_addr(), p.dst_addr(), p.verify_checksum());
        let _ = p.payload();
        let _ = Ipv4Repr::parse(&p, true);
        let _ = Ipv4Repr::parse(&p, false);
    }
    if let Ok(p) = Ipv6Packet::new_checked(b) {
        let _ = (p.version(), p.traffic_class(), p.flow_label(), p.payload_len());
        let _ = (p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr(), p.payload());
        let _ = p.upper_layer();
        let _ = Ipv6Repr::parse_with_payload(&p);
    }
    if let Ok(p) = TcpPacket::new_checked(b) {
        let a = Addr::v4([1, 2, 3, 4]);
        let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number(), p.header_len());
        let _ = (p.control(), p.window_len(), p.checksum(), p.urgent_at(), p.options());
        let _ = (p.payload(), p.verify_checksum(&a, &a));
        for verify in [true, false] {
            if let Ok(r) = TcpRepr::parse(&p, &a, &a, verify) {
                // Whatever parses must emit and parse back to itself.
                let mut out = [0u8; 2048];
                let len = r.buffer_len();
                if len <= out.len() {
                    r.emit(&mut TcpPacket::new_unchecked(&mut out[..]), &a, &a);
                    let back = TcpPacket::new_checked(&out[..len]).unwrap();
                    let r2 = TcpRepr::parse(&back, &a, &a, true).unwrap();
                    assert_eq!(r2.payload, r.payload);
                    assert_eq!(r2.options.mss, r.options.mss);
                    assert_eq!(r2.options.timestamp, r.options.timestamp);
                }
            }
        }
    }
    let _ = tcp_options(b);
}

fn tcp_options(b: &[u8]) -> Result<TcpOptions> {
    TcpOptions::parse(&b[..b.len().min(40)])
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Xor(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        4 => (any::<usize>(), 1u8..).prop_map(|(i, v)| Mutation::Xor(i, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
    ]
}

fn apply(f: &mut Vec<u8>, m: &Mutation) {
    if f.is_empty() {
        return;
    }
    match *m {
        Mutation::Set(i, v) => {
            let n = f.len();
            f[i % n] = v
        }
        Mutation::Xor(i, v) => {
            let n = f.len();
            f[i % n] ^= v
        }
        Mutation::Truncate(i) => f.truncate(i % f.len()),
        Mutation::Insert(i, v) => {
            let n = f.len();
            f.insert(i % n, v)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        exercise_all(&b);
    }

    #[test]
    fn random_bytes_behind_valid_headers_never_panic(
        which in 0usize..10,
        cut in 0usize..80,
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        // Keep a valid prefix (Ethernet, maybe IP) and randomise the rest.
        let seeds = seed_frames();
        let mut f = seeds[which % seeds.len()].clone();
        f.truncate(cut.min(f.len()));
        f.extend_from_slice(&tail);
        exercise_all(&f);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0usize..10,
        muts in proptest::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seed_frames();
        let mut f = seeds[which % seeds.len()].clone();
        for m in &muts {
            apply(&mut f, m);
        }
        exercise_all(&f);
        // The same mutations with checksums not verified reach deeper.
        if let Ok(Frame::Tcp(p)) = parse_tcp_frame(&f, false) {
            prop_assert!(p.tcp.payload.len() <= f.len());
        }
        // Parsing the parts below Ethernet directly.
        for off in [14usize, 18, 34, 54] {
            if off <= f.len() {
                exercise_all(&f[off..]);
            }
        }
    }

    #[test]
    fn emit_never_panics_and_round_trips(
        ports in any::<(u16, u16)>(),
        seq in any::<u32>(),
        ack in proptest::option::of(any::<u32>()),
        flags in any::<u8>(),
        window in any::<u16>(),
        mss in proptest::option::of(any::<u16>()),
        ws in proptest::option::of(0u8..=14),
        sack_permitted in any::<bool>(),
        ts in proptest::option::of(any::<(u32, u32)>()),
        nsack in 0usize..=4,
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        vlan in proptest::option::of(0u16..4096),
        v6 in any::<bool>(),
        buf_len in 0usize..300,
    ) {
        let blocks = core::array::from_fn(|i| (i < nsack).then_some((SeqNumber(i as u32), SeqNumber(seq))));
        let tcp = TcpRepr {
            src_port: ports.0,
            dst_port: ports.1,
            control: Control(flags),
            seq_number: SeqNumber(seq),
            ack_number: ack.map(SeqNumber),
            window_len: window,
            urgent: 0,
            options: TcpOptions { mss, window_scale: ws, sack_permitted, sack_blocks: blocks, timestamp: ts },
            payload: &payload,
        };
        let (src, dst) = if v6 {
            (Addr([0x20; 16]), Addr([0x30; 16]))
        } else {
            (Addr::v4([10, 0, 0, 1]), Addr::v4([10, 0, 0, 2]))
        };
        let mut buf = vec![0xa5u8; buf_len];
        let l3 = if v6 { L3::V6 } else { L3::V4 };
        match emit_tcp_frame(&mut buf, MAC_A, MAC_B, vlan, src, dst, &tcp) {
            Ok(n) => {
                prop_assert_eq!(n, tcp_frame_len(vlan, l3, &tcp));
                let p = match parse_tcp_frame(&buf[..n], true) {
                    Ok(Frame::Tcp(p)) => p,
                    other => panic!("{other:?}"),
                };
                prop_assert_eq!(p.ttl_or_hop, DEFAULT_HOP_LIMIT);
                prop_assert_eq!(p.tcp.ack_number, tcp.ack_number);
                prop_assert_eq!(p.tcp.payload, tcp.payload);
                prop_assert_eq!(p.tcp.options.mss, mss);
                prop_assert_eq!(p.tcp.options.timestamp, ts);
                prop_assert_eq!(p.tcp.options.sack_count(), tcp.options.emitted_sack_blocks());
            }
            Err(e) => {
                prop_assert_eq!(e, Error::Truncated);
                prop_assert!(buf_len < tcp_frame_len(vlan, l3, &tcp));
            }
        }
    }
}

/// Frames of the shapes the fast paths take (untagged IPv4): a Linux SYN,
/// a data segment with NOP NOP TS, an MSS-only SYN, a bare ACK, an ACK
/// with SACK blocks.
fn fast_path_seeds() -> Vec<Vec<u8>> {
    let (a, b) = (Addr::v4([198, 18, 0, 2]), Addr::v4([198, 18, 0, 1]));
    let base = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        control: Control::SYN,
        seq_number: SeqNumber(0x1234_5678),
        ack_number: None,
        window_len: 64240,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((1_000_000, 0)),
            ..TcpOptions::NONE
        },
        payload: &[],
    };
    let data = TcpRepr {
        control: Control::PSH,
        ack_number: Some(SeqNumber(99)),
        options: TcpOptions { timestamp: Some((5, 6)), ..TcpOptions::NONE },
        payload: b"GET / HTTP/1.1\r\n\r\n",
        ..base
    };
    let mss_only = TcpRepr { options: TcpOptions { mss: Some(1400), ..TcpOptions::NONE }, ..base };
    let bare = TcpRepr { control: Control::FIN, options: TcpOptions::NONE, ..data };
    let sack = TcpRepr {
        options: TcpOptions {
            sack_blocks: [Some((SeqNumber(1), SeqNumber(2))), Some((SeqNumber(3), SeqNumber(4))), None, None],
            ..data.options
        },
        ..bare
    };
    [base, data, mss_only, bare, sack]
        .iter()
        .map(|r| {
            let mut buf = vec![0u8; 256];
            let n = emit_tcp_frame(&mut buf, MAC_A, MAC_B, None, a, b, r).unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// The IPv4 fast path of `parse_tcp_frame` answers exactly as the
    /// general layer-by-layer parse, on valid and mutated frames.
    #[test]
    fn fast_parse_agrees_with_general_parse(
        which in 0usize..5,
        muts in proptest::collection::vec(mutation(), 0..4),
        verify in any::<bool>(),
    ) {
        let mut f = fast_path_seeds()[which].clone();
        for m in &muts {
            apply(&mut f, m);
        }
        prop_assert_eq!(parse_tcp_frame(&f, verify), frame::parse_any(&f, verify));
    }

    /// The option layouts recognised whole parse as the general walk does.
    #[test]
    fn option_fast_paths_agree_with_the_walk(
        which in 0usize..4,
        muts in proptest::collection::vec(mutation(), 0..3),
    ) {
        let templates: [&[u8]; 4] = [
            &[2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 1, 2, 3, 0, 0, 0, 0, 1, 3, 3, 15],
            &[1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8],
            &[2, 4, 5, 0xb4],
            &[],
        ];
        let mut o = templates[which].to_vec();
        for m in &muts {
            apply(&mut o, m);
        }
        prop_assert_eq!(TcpOptions::parse(&o), TcpOptions::parse_any(&o));
    }

    /// The untagged-IPv4 fast path of `emit_tcp_frame` writes the same bytes
    /// (padding included, nothing past the frame) as the general composer.
    #[test]
    fn fast_emit_is_byte_identical(
        seq in any::<u32>(),
        ack in proptest::option::of(any::<u32>()),
        flags in any::<u8>(),
        mss in proptest::option::of(any::<u16>()),
        ws in proptest::option::of(0u8..=14),
        sack_permitted in any::<bool>(),
        ts in proptest::option::of(any::<(u32, u32)>()),
        nsack in 0usize..=4,
        payload in proptest::collection::vec(any::<u8>(), 0..80),
        buf_len in 0usize..200,
    ) {
        let blocks = core::array::from_fn(|i| (i < nsack).then_some((SeqNumber(i as u32), SeqNumber(seq))));
        let tcp = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            control: Control(flags),
            seq_number: SeqNumber(seq),
            ack_number: ack.map(SeqNumber),
            window_len: 1234,
            urgent: 0,
            options: TcpOptions { mss, window_scale: ws, sack_permitted, sack_blocks: blocks, timestamp: ts },
            payload: &payload,
        };
        let (src, dst) = (Addr::v4([10, 0, 0, 1]), Addr::v4([10, 0, 0, 2]));
        let mut fast = vec![0xa5u8; buf_len];
        let mut general = vec![0xa5u8; buf_len];
        let a = emit_tcp_frame(&mut fast, MAC_A, MAC_B, None, src, dst, &tcp);
        let b = frame::emit_any(&mut general, MAC_A, MAC_B, None, src, dst, &tcp);
        prop_assert_eq!(a, b);
        prop_assert_eq!(fast, general);
    }
}

proptest! {
    /// The option layouts `TcpOptions::emit` writes whole are the bytes the
    /// general writer produces.
    #[test]
    fn option_emit_fast_paths_are_byte_identical(
        mss in proptest::option::of(any::<u16>()),
        ws in proptest::option::of(0u8..=14),
        sack_permitted in any::<bool>(),
        ts in proptest::option::of(any::<(u32, u32)>()),
        sack_at in proptest::option::of(0usize..4),
        buf_len in 0usize..=40,
    ) {
        let mut o = TcpOptions { mss, window_scale: ws, sack_permitted, timestamp: ts, ..TcpOptions::NONE };
        if let Some(i) = sack_at {
            o.sack_blocks[i] = Some((SeqNumber(7), SeqNumber(9)));
        }
        let len = o.buffer_len();
        prop_assume!(buf_len >= len);
        let mut fast = vec![0xa5u8; buf_len];
        let mut general = vec![0xa5u8; buf_len];
        prop_assert_eq!(o.emit(&mut fast), o.emit_any(&mut general));
        prop_assert_eq!(fast, general);
    }
}
