//! The XDP_TX reflector (`bpf/reflector.bpf.c`) through BPF_PROG_TEST_RUN,
//! Katran style: fixture tables of input frame → expected verdict and the one
//! stats counter it must bump, and for every answered SYN the output frame
//! checked as a client would: `wire::parse_tcp_frame` with checksums verified
//! (RFC 1071), a SYN-ACK from the VIP with `ack = seq + 1` (RFC 9293 §3.5),
//! MACs swapped. Needs root (loads BPF); skips loudly otherwise, never under
//! CI=true.

mod xdp_common;

use std::net::{Ipv4Addr, Ipv6Addr};

use floodgate::flow::Addr;
use floodgate::wire::{self, Control, Frame, MacAddr, SeqNumber};
use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder, ProgramInput};
use xdp_common::*;

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLI4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const OTHER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 9);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const CLI6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9);
const PORT: u16 = 80;
const CLIENT_PORT: u16 = 40000;
const ISN_KEY: u32 = 0x5eed_1234;

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/reflector.bpf.o")));

/// The loaded program, configured for (VIP4, PORT).
struct Reflector {
    obj: Object,
}

/// `struct reflector_stats` (bpf/reflector.h), summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stats {
    tx: u64,
    pass_not_syn: u64,
    pass_malformed: u64,
    pass_other: u64,
}

impl Stats {
    fn total(&self) -> u64 {
        self.tx + self.pass_not_syn + self.pass_malformed + self.pass_other
    }
}

/// Which counter a frame must bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counter {
    Tx,
    NotSyn,
    Malformed,
    Other,
}

fn get(s: &Stats, c: Counter) -> u64 {
    match c {
        Counter::Tx => s.tx,
        Counter::NotSyn => s.pass_not_syn,
        Counter::Malformed => s.pass_malformed,
        Counter::Other => s.pass_other,
    }
}

impl Reflector {
    fn load() -> Reflector {
        let mut builder = ObjectBuilder::default();
        builder.name("reflector").expect("object name");
        let mut open = builder.open_memory(&OBJECT.0).expect("open the XDP_TX object");
        {
            let mut rodata = open
                .maps_mut()
                .find(|m| m.name().to_string_lossy().ends_with(".rodata"))
                .expect("the object has .rodata");
            let init = rodata.initial_value_mut().expect(".rodata has an initial value");
            // struct reflector_cfg: vip, port (network order), pad, isn_key, vip6.
            assert_eq!(init.len(), 28, "struct reflector_cfg changed: update this test and examples/reflector.rs");
            init[0..4].copy_from_slice(&VIP4.octets());
            init[4..6].copy_from_slice(&PORT.to_be_bytes());
            init[6..8].copy_from_slice(&[0, 0]);
            init[8..12].copy_from_slice(&ISN_KEY.to_ne_bytes());
            init[12..28].copy_from_slice(&VIP6.octets());
        }
        let obj = open.load().expect("load the XDP_TX program (the verifier log is on stderr)");
        Reflector { obj }
    }

    /// Runs the program once on `frame`: its verdict and the frame it left.
    fn run(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        let prog = self.obj.progs_mut().find(|p| p.name() == "reflector_xdp_tx").expect("program reflector_xdp_tx");
        let mut out = vec![0u8; 512];
        let input = ProgramInput {
            data_in: Some(frame),
            data_out: Some(out.as_mut_slice()),
            repeat: 1,
            ..ProgramInput::default()
        };
        let o = prog.test_run(input).unwrap_or_else(|e| panic!("test_run on a {}-byte frame: {e}", frame.len()));
        let data = o.data.expect("data out").to_vec();
        (o.return_value, data)
    }

    fn stats(&self) -> Stats {
        let m = self.obj.maps().find(|m| m.name() == "stats").expect("map stats");
        assert_eq!(m.value_size(), 32, "struct reflector_stats changed: update this test");
        let per_cpu = m.lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY).expect("read stats").unwrap_or_default();
        let mut s = Stats::default();
        for v in per_cpu {
            let u = |i: usize| u64::from_ne_bytes(v[i * 8..i * 8 + 8].try_into().unwrap());
            s.tx += u(0);
            s.pass_not_syn += u(1);
            s.pass_malformed += u(2);
            s.pass_other += u(3);
        }
        s
    }

    /// Runs `frame`, asserts the verdict and that exactly `counter` moved by
    /// one; returns the output frame.
    #[track_caller]
    fn expect(&self, name: &str, frame: &[u8], verdict: u32, counter: Counter) -> Vec<u8> {
        let before = self.stats();
        let (got, out) = self.run(frame);
        let after = self.stats();
        assert_eq!(got, verdict, "{name}: verdict");
        assert_eq!(after.total(), before.total() + 1, "{name}: exactly one counter moves");
        assert_eq!(
            get(&after, counter),
            get(&before, counter) + 1,
            "{name}: expected {counter:?} (before {before:?}, after {after:?})"
        );
        if verdict == XDP_PASS {
            assert_eq!(out, frame, "{name}: a passed frame is left as it came");
        }
        out
    }
}

fn syn_with_seq(dst: Ipv4Addr, dport: u16, seq: u32) -> Vec<u8> {
    concat(eth(ETH_P_IP, &[]), ipv4(CLI4, dst, 6, &tcp(CLIENT_PORT, dport, seq, 0, TCP_SYN, &[])))
}

/// A SYN as Linux sends it: MSS, SACK permitted, timestamps, window scale.
fn syn(dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    syn_with_seq(dst, dport, 1000)
}

/// A segment with `flags` and no options (builds its own header, since
/// `tcp()` adds SYN options whenever SYN is set).
fn segment(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut l4 = tcp(CLIENT_PORT, PORT, 1000, 0, 0, payload);
    l4[13] = flags;
    concat(eth(ETH_P_IP, &[]), ipv4(CLI4, VIP4, 6, &l4))
}

/// Asserts `reply` is the SYN-ACK answering a SYN with sequence number `seq`
/// from (CLI4, CLIENT_PORT): what a client's stack checks, plus the exact
/// layout the program writes. Returns the reply's ISN.
#[track_caller]
fn assert_synack(name: &str, reply: &[u8], seq: u32, with_mss: bool) -> u32 {
    let tcp_len = if with_mss { 24 } else { 20 };
    assert_eq!(reply.len(), 14 + 20 + tcp_len, "{name}: options, payload and padding are cut");
    let p = match wire::parse_tcp_frame(reply, true) {
        Ok(Frame::Tcp(p)) => p,
        other => panic!("{name}: the reply does not parse with checksums verified: {other:?}\n{reply:02x?}"),
    };
    assert_eq!(p.eth.src_addr, MacAddr(SERVER_MAC), "{name}: from the MAC the SYN was sent to");
    assert_eq!(p.eth.dst_addr, MacAddr(CLIENT_MAC), "{name}: to the MAC the SYN came from");
    assert_eq!(p.eth.vlan, None);
    assert_eq!(p.src, Addr::from(VIP4), "{name}: IP source");
    assert_eq!(p.dst, Addr::from(CLI4), "{name}: IP destination");
    assert_eq!(p.ttl_or_hop, 64);
    assert_eq!(&reply[14 + 6..14 + 8], &[0x40, 0], "{name}: DF, not a fragment");
    assert_eq!((p.tcp.src_port, p.tcp.dst_port), (PORT, CLIENT_PORT), "{name}: ports");
    assert_eq!(p.tcp.control, Control::SYN | Control::ACK, "{name}: exactly SYN|ACK");
    assert_eq!(p.tcp.ack_number, Some(SeqNumber(seq.wrapping_add(1))), "{name}: ack = seq + 1");
    assert_eq!(p.tcp.window_len, 65535);
    assert_eq!(p.tcp.options.mss, if with_mss { Some(1460) } else { None }, "{name}: MSS option");
    assert_eq!(p.tcp.options.window_scale, None);
    assert!(!p.tcp.options.sack_permitted);
    assert_eq!(p.tcp.options.timestamp, None);
    assert!(p.tcp.payload.is_empty(), "{name}: no payload");

    // The verification is real: any flipped bit in either header fails it.
    for at in [14 + 10, 14 + 20 + 4, 14 + 20 + tcp_len - 1] {
        let mut bad = reply.to_vec();
        bad[at] ^= 0x01;
        assert!(wire::parse_tcp_frame(&bad, true).is_err(), "{name}: byte {at} flipped still parses");
    }
    p.tcp.seq_number.0
}

#[test]
fn syn_to_the_vip_becomes_its_synack() {
    if !require_root("reflector_xdp_tx::syn_to_the_vip_becomes_its_synack") {
        return;
    }
    let r = Reflector::load();

    let linux_syn = syn(VIP4, PORT);
    assert_eq!(linux_syn.len(), 14 + 20 + 40, "the fixture carries 20 bytes of options");
    let reply = r.expect("Linux SYN", &linux_syn, XDP_TX, Counter::Tx);
    let isn = assert_synack("Linux SYN", &reply, 1000, true);

    // Same tuple, same ISN; another source port, another one.
    let again = r.expect("Linux SYN again", &linux_syn, XDP_TX, Counter::Tx);
    assert_eq!(again, reply, "the reply is a function of the SYN");
    let l4 = tcp(40001, PORT, 1000, 0, TCP_SYN, &[]);
    let other_port_syn = concat(eth(ETH_P_IP, &[]), ipv4(CLI4, VIP4, 6, &l4));
    let other = r.expect("SYN from another port", &other_port_syn, XDP_TX, Counter::Tx);
    assert_ne!(u32::from_be_bytes(other[38..42].try_into().unwrap()), isn, "ISNs differ per tuple");

    // SEG.SEQ + 1 wraps modulo 2^32.
    let wrap = r.expect("SYN with seq 2^32-1", &syn_with_seq(VIP4, PORT, u32::MAX), XDP_TX, Counter::Tx);
    assert_synack("SYN with seq 2^32-1", &wrap, u32::MAX, true);

    // ECN setup SYN (RFC 3168 §6.1.1: SYN|ECE|CWR) is a SYN; the reply
    // carries no ECE, declining ECN.
    let mut l4 = tcp(CLIENT_PORT, PORT, 1000, 0, TCP_SYN, &[]);
    l4[13] |= 0xc0;
    let ecn = concat(eth(ETH_P_IP, &[]), ipv4(CLI4, VIP4, 6, &l4));
    let reply = r.expect("ECN setup SYN", &ecn, XDP_TX, Counter::Tx);
    assert_synack("ECN setup SYN", &reply, 1000, true);

    // A bare SYN of 54 bytes has no room for the MSS option: a 20-byte header.
    let bare = segment(TCP_SYN, &[]);
    assert_eq!(bare.len(), 54);
    let reply = r.expect("bare SYN", &bare, XDP_TX, Counter::Tx);
    assert_synack("bare SYN", &reply, 1000, false);

    // Padded to the Ethernet minimum, it has: MSS, padding cut.
    let mut padded = segment(TCP_SYN, &[]);
    padded.resize(60, 0);
    let reply = r.expect("bare SYN padded to 60", &padded, XDP_TX, Counter::Tx);
    assert_synack("bare SYN padded to 60", &reply, 1000, true);

    // SYN with data (e.g. TFO): the SYN is answered, the data not acked.
    let l4 = tcp(CLIENT_PORT, PORT, 1000, 0, TCP_SYN, b"GET / HTTP/1.1\r\n\r\n");
    let syn_data = concat(eth(ETH_P_IP, &[]), ipv4(CLI4, VIP4, 6, &l4));
    let reply = r.expect("SYN with data", &syn_data, XDP_TX, Counter::Tx);
    assert_synack("SYN with data", &reply, 1000, true);
}

fn syn6(flags: u8, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = tcp(CLIENT_PORT, dport, 1000, 0, TCP_SYN, payload);
    l4[13] = flags;
    concat(eth(ETH_P_IPV6, &[]), ipv6(CLI6, VIP6, 6, &l4))
}

/// The IPv6 twin of `assert_synack` (RFC 8200 §3 header, §8.1 checksum).
#[track_caller]
fn assert_synack6(name: &str, reply: &[u8], seq: u32) {
    assert_eq!(reply.len(), 14 + 40 + 24, "{name}: options, payload and padding are cut");
    let p = match wire::parse_tcp_frame(reply, true) {
        Ok(Frame::Tcp(p)) => p,
        other => panic!("{name}: the reply does not parse with checksums verified: {other:?}\n{reply:02x?}"),
    };
    assert_eq!((p.eth.src_addr, p.eth.dst_addr), (MacAddr(SERVER_MAC), MacAddr(CLIENT_MAC)), "{name}: MACs");
    assert_eq!((p.src, p.dst), (Addr::from(VIP6), Addr::from(CLI6)), "{name}: addresses");
    assert_eq!(&reply[14..18], &[0x60, 0, 0, 0], "{name}: version 6, no traffic class or flow label");
    assert_eq!(p.ttl_or_hop, 64);
    assert_eq!((p.tcp.src_port, p.tcp.dst_port), (PORT, CLIENT_PORT), "{name}: ports");
    assert_eq!(p.tcp.control, Control::SYN | Control::ACK, "{name}: exactly SYN|ACK");
    assert_eq!(p.tcp.ack_number, Some(SeqNumber(seq.wrapping_add(1))), "{name}: ack = seq + 1");
    assert_eq!(p.tcp.options.mss, Some(1440), "{name}: IPv6's MSS at MTU 1500");
    assert!(p.tcp.payload.is_empty(), "{name}: no payload");
    let mut bad = reply.to_vec();
    bad[14 + 8] ^= 1; // a source address bit: the pseudo-header is summed
    assert!(wire::parse_tcp_frame(&bad, true).is_err(), "{name}: the checksum covers the addresses");
}

#[test]
fn ipv6_syn_to_the_vip_becomes_its_synack() {
    if !require_root("reflector_xdp_tx::ipv6_syn_to_the_vip_becomes_its_synack") {
        return;
    }
    let r = Reflector::load();
    let linux_syn = syn6(TCP_SYN, PORT, &[]);
    let reply = r.expect("IPv6 Linux SYN", &linux_syn, XDP_TX, Counter::Tx);
    assert_synack6("IPv6 Linux SYN", &reply, 1000);
    let with_data = syn6(TCP_SYN, PORT, b"GET / HTTP/1.1\r\n\r\n");
    assert_synack6("IPv6 SYN with data", &r.expect("IPv6 SYN with data", &with_data, XDP_TX, Counter::Tx), 1000);

    let mut ext = syn6(TCP_SYN, PORT, &[]);
    ext[14 + 6] = 0; // next header: hop-by-hop options
    let mut long_len = syn6(TCP_SYN, PORT, &[]);
    long_len[14 + 4..14 + 6].copy_from_slice(&200u16.to_be_bytes());
    let mut short_len = syn6(TCP_SYN, PORT, &[]);
    short_len[14 + 4..14 + 6].copy_from_slice(&19u16.to_be_bytes());
    use Counter::*;
    for (name, frame, counter) in [
        ("IPv6 ACK to the VIP", syn6(TCP_ACK, PORT, &[]), NotSyn),
        ("IPv6 SYN-ACK to the VIP", syn6(TCP_SYN | TCP_ACK, PORT, &[]), NotSyn),
        ("IPv6 SYN to another port", syn6(TCP_SYN, PORT + 1, &[]), Other),
        ("IPv6 with an extension header", ext, Other),
        ("IPv6 payload length past the frame", long_len, Malformed),
        ("IPv6 payload length below a TCP header", short_len, Malformed),
    ] {
        r.expect(name, &frame, XDP_PASS, counter);
    }
    // Cut short anywhere, it passes untouched.
    for len in 14..linux_syn.len() {
        let counter = if len < 14 + 40 { Other } else { Malformed };
        r.expect(&format!("IPv6 SYN cut at {len}"), &linux_syn[..len], XDP_PASS, counter);
    }
}

#[test]
fn everything_else_passes() {
    if !require_root("reflector_xdp_tx::everything_else_passes") {
        return;
    }
    let r = Reflector::load();

    let mut frag = syn(VIP4, PORT);
    frag[14 + 6] = 0x20; // MF set
    let mut ip_opts = syn(VIP4, PORT);
    ip_opts[14] = 0x46;
    let mut short_tot_len = syn(VIP4, PORT);
    short_tot_len[14 + 2..14 + 4].copy_from_slice(&39u16.to_be_bytes());
    let mut long_tot_len = syn(VIP4, PORT);
    long_tot_len[14 + 2..14 + 4].copy_from_slice(&75u16.to_be_bytes());
    let mut bad_doff = syn(VIP4, PORT);
    bad_doff[14 + 20 + 12] = 0x40; // 16 < 20
    let mut long_doff = segment(TCP_SYN, &[]);
    long_doff[14 + 20 + 12] = 0x60; // 24 > the 20 bytes the IP length leaves
    long_doff.resize(60, 0);
    let arp = {
        let mut a = eth(ETH_P_ARP, &[]);
        a.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        a.extend_from_slice(&CLIENT_MAC);
        a.extend_from_slice(&CLI4.octets());
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&VIP4.octets());
        a
    };
    let tagged = concat(
        eth(ETH_P_IP, &[(ETH_P_8021Q, 100)]),
        ipv4(CLI4, VIP4, 6, &tcp(CLIENT_PORT, PORT, 1000, 0, TCP_SYN, &[])),
    );
    let v6 = concat(eth(ETH_P_IPV6, &[]), ipv6(CLI6, OTHER6, 6, &tcp(CLIENT_PORT, PORT, 1000, 0, TCP_SYN, &[])));
    let udp = concat(eth(ETH_P_IP, &[]), ipv4(CLI4, VIP4, 17, &[0x9c, 0x40, 0, 80, 0, 8, 0, 0]));

    use Counter::*;
    let table: Vec<(&str, Vec<u8>, Counter)> = vec![
        ("ACK to the VIP", segment(TCP_ACK, &[]), NotSyn),
        ("data to the VIP", segment(TCP_ACK | 0x08, b"GET / HTTP/1.1\r\n\r\n"), NotSyn),
        ("SYN-ACK to the VIP", segment(TCP_SYN | TCP_ACK, &[]), NotSyn),
        ("SYN|RST to the VIP", segment(TCP_SYN | 0x04, &[]), NotSyn),
        ("SYN|FIN to the VIP", segment(TCP_SYN | TCP_FIN, &[]), NotSyn),
        ("RST to the VIP", segment(0x04, &[]), NotSyn),
        ("FIN to the VIP", segment(TCP_FIN | TCP_ACK, &[]), NotSyn),
        ("no flags to the VIP", segment(0, &[]), NotSyn),
        ("SYN to another port", syn(VIP4, PORT + 1), Other),
        ("SYN to another address", syn(OTHER4, PORT), Other),
        ("SYN, 802.1Q-tagged", tagged, Other),
        ("SYN over IPv6 to another address", v6, Other),
        ("UDP to the VIP", udp, Other),
        ("ARP", arp, Other),
        ("IPv4 fragment", frag, Malformed),
        ("IPv4 with options", ip_opts, Malformed),
        ("IP length below IP + TCP headers", short_tot_len, Malformed),
        ("IP length past the frame", long_tot_len, Malformed),
        ("TCP header length below 20", bad_doff, Malformed),
        ("TCP header length past the IP length", long_doff, Malformed),
    ];
    for (name, frame, counter) in &table {
        r.expect(name, frame, XDP_PASS, *counter);
    }
    assert_eq!(r.stats().tx, 0, "nothing above is answered");
}

#[test]
fn truncated_syns_pass_untouched() {
    if !require_root("reflector_xdp_tx::truncated_syns_pass_untouched") {
        return;
    }
    let r = Reflector::load();
    let full = syn(VIP4, PORT);
    // Shorter than an Ethernet header, BPF_PROG_TEST_RUN refuses the frame.
    for len in 14..full.len() {
        let cut = &full[..len];
        // Up to the IP header the frame is "other"; past it, the IP length
        // (74) no longer fits the frame.
        let counter = if len < 14 + 20 { Counter::Other } else { Counter::Malformed };
        r.expect(&format!("SYN cut at {len}"), cut, XDP_PASS, counter);
    }
    assert_eq!(r.stats().tx, 0);
}
