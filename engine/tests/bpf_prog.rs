//! The XDP program (`bpf/floodgate.bpf.c`) through BPF_PROG_TEST_RUN, Katran
//! style: fixture tables of input frame → expected verdict and the one stats
//! counter it must bump. Needs root (loads BPF); skips loudly otherwise, never
//! under CI=true.
//!
//! With no AF_XDP socket bound, `bpf_redirect_map(&xsks_map, queue, XDP_PASS)`
//! finds no entry and returns its fallback, XDP_PASS: so an owned frame's
//! verdict is PASS too, and the redirect path shows in `redirect_no_xsk`.
//! That the program never reads past the frame is the verifier's guarantee
//! (it refuses to load otherwise); the truncation tables check that every
//! short frame takes the `pass_truncated` exit and none is steered.

mod xdp_common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use floodgate::link::xdp::{BpfStats, XdpProgram};
use xdp_common::*;

const XDP_PASS: u32 = 2;

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLI4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const CLI6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const PORT: u16 = 80;

fn program() -> XdpProgram {
    let p = XdpProgram::load().expect("load the XDP program");
    p.set_vips(&[(IpAddr::V4(VIP4), PORT), (IpAddr::V6(VIP6), PORT)]).expect("set VIPs");
    p
}

/// Which counter a frame must bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counter {
    RedirectNoXsk,
    NotIp,
    NotTcp,
    NotVip,
    Truncated,
    Fragment,
    Malformed,
}

fn get(s: &BpfStats, c: Counter) -> u64 {
    match c {
        Counter::RedirectNoXsk => s.redirect_no_xsk,
        Counter::NotIp => s.pass_not_ip,
        Counter::NotTcp => s.pass_not_tcp,
        Counter::NotVip => s.pass_not_vip,
        Counter::Truncated => s.pass_truncated,
        Counter::Fragment => s.pass_fragment,
        Counter::Malformed => s.pass_malformed,
    }
}

/// Runs `frame` and asserts the verdict and that exactly `counter` moved by one.
#[track_caller]
fn expect(p: &XdpProgram, name: &str, frame: &[u8], verdict: u32, counter: Counter) {
    let before = p.stats().expect("stats");
    let got = p.test_run(frame).unwrap_or_else(|e| panic!("{name}: test_run: {e}"));
    let after = p.stats().expect("stats");
    assert_eq!(got, verdict, "{name}: verdict");
    assert_eq!(after.total(), before.total() + 1, "{name}: exactly one counter moves");
    assert_eq!(
        get(&after, counter),
        get(&before, counter) + 1,
        "{name}: expected {counter:?} (before {before:?}, after {after:?})"
    );
    assert_eq!(after.redirect, 0, "{name}: nothing can be redirected with no socket bound");
}

fn syn4(dst: Ipv4Addr, dport: u16, vlans: &[(u16, u16)]) -> Vec<u8> {
    concat(eth(ETH_P_IP, vlans), ipv4(CLI4, dst, 6, &tcp(40000, dport, 1000, 0, TCP_SYN, &[])))
}

fn syn6(dst: Ipv6Addr, dport: u16, vlans: &[(u16, u16)]) -> Vec<u8> {
    concat(eth(ETH_P_IPV6, vlans), ipv6(CLI6, dst, 6, &tcp(40000, dport, 1000, 0, TCP_SYN, &[])))
}

/// An ICMP error (type, code) from a router to the VIP, quoting `quoted` (an IP packet, cut to its header and 8 bytes).
fn icmp4(kind: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut msg = Vec::new();
    floodgate::wire::icmp::emit_frag_needed(&mut msg, 1400, quoted);
    msg[0] = kind;
    msg[1] = code;
    concat(eth(ETH_P_IP, &[]), ipv4(Ipv4Addr::new(198, 18, 0, 254), VIP4, 1, &msg))
}

/// The first 28 bytes of a segment the engine sent from `sport` (IPv4).
fn our_segment4(sport: u16, proto: u8) -> Vec<u8> {
    let mut q = ipv4(VIP4, CLI4, proto, &tcp(sport, 40000, 1000, 1, TCP_ACK, &[0; 1400]));
    q.truncate(28);
    q
}

fn too_big6(sport: u16) -> Vec<u8> {
    let mut q = ipv6(VIP6, CLI6, 6, &tcp(sport, 40000, 1000, 1, TCP_ACK, &[0; 1400]));
    q.truncate(48);
    let mut msg = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
    msg.extend_from_slice(&q);
    concat(eth(ETH_P_IPV6, &[]), ipv6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe), VIP6, 58, &msg))
}

fn arp() -> Vec<u8> {
    let mut a = eth(ETH_P_ARP, &[]);
    a.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    a.extend_from_slice(&CLIENT_MAC);
    a.extend_from_slice(&CLI4.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&VIP4.octets());
    a
}

#[test]
fn verdict_fixtures() {
    if !require_root("bpf_prog::verdict_fixtures") {
        return;
    }
    let p = program();
    let q = (ETH_P_8021Q, 100);
    let ad = (ETH_P_8021AD, 200);
    let icmp_echo = [8u8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    let udp = [0x9c, 0x40, 0, 80, 0, 8, 0, 0];

    let mut padded = concat(eth(ETH_P_IP, &[]), ipv4(CLI4, VIP4, 6, &tcp(40000, PORT, 1, 0, TCP_ACK, &[])));
    padded.resize(60, 0); // Ethernet minimum: padding after the IP packet

    let mut frag = syn4(VIP4, PORT, &[]);
    frag[14 + 6] = 0x20; // MF set
    let mut frag_tail = syn4(VIP4, PORT, &[]);
    frag_tail[14 + 6] = 0x00;
    frag_tail[14 + 7] = 0x10; // offset 16 * 8 bytes
    let mut bad_ihl = syn4(VIP4, PORT, &[]);
    bad_ihl[14] = 0x44;
    let mut bad_version = syn4(VIP4, PORT, &[]);
    bad_version[14] = 0x65;
    let mut bad_doff = syn4(VIP4, PORT, &[]);
    bad_doff[14 + 20 + 12] = 0x40; // TCP header length 16 < 20

    // IPv4 with 4 bytes of options (NOP NOP NOP EOL): ihl 6.
    let with_opts = {
        let l4 = tcp(40000, PORT, 1000, 0, TCP_SYN, &[]);
        let mut ip = ipv4(CLI4, VIP4, 6, &l4);
        ip[0] = 0x46;
        let tot = (ip.len() + 4) as u16;
        ip[2..4].copy_from_slice(&tot.to_be_bytes());
        ip.splice(20..20, [1, 1, 1, 0]);
        concat(eth(ETH_P_IP, &[]), ip)
    };
    // IPv6 with a hop-by-hop header before TCP.
    let v6_ext = {
        let mut l4 = vec![6u8, 0, 1, 4, 0, 0, 0, 0];
        l4.extend_from_slice(&tcp(40000, PORT, 1000, 0, TCP_SYN, &[]));
        concat(eth(ETH_P_IPV6, &[]), ipv6(CLI6, VIP6, 0, &l4))
    };

    use Counter::*;
    let table: Vec<(&str, Vec<u8>, Counter)> = vec![
        ("owned SYN v4", syn4(VIP4, PORT, &[]), RedirectNoXsk),
        ("owned SYN v6", syn6(VIP6, PORT, &[]), RedirectNoXsk),
        (
            "owned data segment v4",
            concat(
                eth(ETH_P_IP, &[]),
                ipv4(CLI4, VIP4, 6, &tcp(40000, PORT, 1, 1, TCP_ACK, b"GET / HTTP/1.1\r\n\r\n")),
            ),
            RedirectNoXsk,
        ),
        ("owned ACK padded to 60 bytes", padded, RedirectNoXsk),
        ("owned SYN v4 with IP options", with_opts, RedirectNoXsk),
        ("owned SYN v4, 802.1Q", syn4(VIP4, PORT, &[q]), RedirectNoXsk),
        ("owned SYN v6, 802.1Q", syn6(VIP6, PORT, &[q]), RedirectNoXsk),
        ("owned SYN v4, QinQ", syn4(VIP4, PORT, &[ad, q]), RedirectNoXsk),
        ("other port v4", syn4(VIP4, 22, &[]), NotVip),
        ("other port v6", syn6(VIP6, 443, &[]), NotVip),
        ("other address v4", syn4(Ipv4Addr::new(198, 18, 0, 9), PORT, &[]), NotVip),
        ("other address v6", syn6(CLI6, PORT, &[]), NotVip),
        ("v4 VIP as v6 ::ffff:", syn6(VIP4.to_ipv6_mapped(), PORT, &[]), NotVip),
        ("other port, 802.1Q", syn4(VIP4, 22, &[q]), NotVip),
        ("ARP", arp(), NotIp),
        ("ARP, 802.1Q", concat(eth(ETH_P_ARP, &[q]), arp()[14..].to_vec()), NotIp),
        ("three VLAN tags", syn4(VIP4, PORT, &[ad, q, q]), NotIp),
        ("LLDP", concat(eth(0x88cc, &[]), vec![0; 46]), NotIp),
        ("ICMP echo v4", concat(eth(ETH_P_IP, &[]), ipv4(CLI4, VIP4, 1, &icmp_echo)), NotTcp),
        ("ICMPv6 echo", concat(eth(ETH_P_IPV6, &[]), ipv6(CLI6, VIP6, 58, &[128, 0, 0, 0, 0, 0, 0, 0])), NotTcp),
        ("UDP to the VIP port", concat(eth(ETH_P_IP, &[]), ipv4(CLI4, VIP4, 17, &udp)), NotTcp),
        ("IPv6 hop-by-hop then TCP", v6_ext, NotTcp),
        ("ICMP frag needed about an owned segment", icmp4(3, 4, &our_segment4(PORT, 6)), RedirectNoXsk),
        ("ICMPv6 packet too big about an owned segment", too_big6(PORT), RedirectNoXsk),
        ("ICMP frag needed about another port", icmp4(3, 4, &our_segment4(22, 6)), NotTcp),
        ("ICMPv6 packet too big about another port", too_big6(22), NotTcp),
        ("ICMP frag needed quoting UDP", icmp4(3, 4, &our_segment4(PORT, 17)), NotTcp),
        ("ICMP frag needed, quote cut short", icmp4(3, 4, &our_segment4(PORT, 6)[..24]), NotTcp),
        ("ICMP port unreachable about an owned segment", icmp4(3, 3, &our_segment4(PORT, 6)), NotTcp),
        ("IPv4 first fragment", frag, Fragment),
        ("IPv4 later fragment", frag_tail, Fragment),
        ("IPv4 ihl 4", bad_ihl, Malformed),
        ("version 6 in an IPv4 frame", bad_version, Malformed),
        ("TCP data offset 4", bad_doff, Malformed),
    ];
    for (name, frame, counter) in &table {
        expect(&p, name, frame, XDP_PASS, *counter);
    }
}

/// Path MTU errors about owned segments are steered (and counted as
/// such); other ICMP is not.
#[test]
fn too_big_errors_are_steered_and_counted() {
    if !require_root("bpf_prog::too_big_errors_are_steered_and_counted") {
        return;
    }
    let p = program();
    let count = |p: &XdpProgram| p.stats().expect("stats").icmp_too_big;
    let before = count(&p);
    assert_eq!(p.test_run(&icmp4(3, 4, &our_segment4(PORT, 6))).unwrap(), XDP_PASS);
    assert_eq!(p.test_run(&too_big6(PORT)).unwrap(), XDP_PASS);
    assert_eq!(count(&p), before + 2);
    assert_eq!(p.test_run(&icmp4(3, 3, &our_segment4(PORT, 6))).unwrap(), XDP_PASS);
    assert_eq!(count(&p), before + 2, "port unreachable is the kernel's");
}

/// Every prefix of a valid owned SYN (v4, v6, VLAN-tagged v4): frames
/// shorter than an Ethernet header are refused by the kernel before the
/// program runs (they cannot reach XDP from a NIC either); every other cut
/// passes through `pass_truncated`, never through the redirect.
#[test]
fn every_truncation_passes() {
    if !require_root("bpf_prog::every_truncation_passes") {
        return;
    }
    let p = program();
    let frames = [
        ("SYN v4", syn4(VIP4, PORT, &[])),
        ("SYN v6", syn6(VIP6, PORT, &[])),
        ("SYN v4 802.1Q", syn4(VIP4, PORT, &[(ETH_P_8021Q, 7)])),
        ("SYN v6 QinQ", syn6(VIP6, PORT, &[(ETH_P_8021AD, 1), (ETH_P_8021Q, 7)])),
    ];
    for (name, full) in &frames {
        expect(&p, &format!("{name} whole"), full, XDP_PASS, Counter::RedirectNoXsk);
        for len in 0..full.len() {
            let cut = &full[..len];
            if len < 14 {
                let e = p.test_run(cut).expect_err("the kernel refuses runts");
                assert_eq!(e.errno(), Some(libc::EINVAL), "{name} cut at {len}: {e}");
                continue;
            }
            expect(&p, &format!("{name} cut at {len}"), cut, XDP_PASS, Counter::Truncated);
        }
    }
}

#[test]
fn vip_map_round_trip() {
    if !require_root("bpf_prog::vip_map_round_trip") {
        return;
    }
    let p = program();
    assert_eq!(p.vips().len(), 2);
    p.set_vips(&[(IpAddr::V4(VIP4), 8080)]).unwrap();
    let v = p.vips();
    assert_eq!(v.len(), 1);
    assert_eq!(u16::from_be(v[0].port_be), 8080);
    assert_eq!(&v[0].addr[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
    expect(&p, "old port now not owned", &syn4(VIP4, PORT, &[]), XDP_PASS, Counter::NotVip);
    expect(&p, "new port owned", &syn4(VIP4, 8080, &[]), XDP_PASS, Counter::RedirectNoXsk);
    p.remove_vip(IpAddr::V4(VIP4), 8080).unwrap();
    p.remove_vip(IpAddr::V4(VIP4), 8080).unwrap(); // absent is fine
    assert!(p.vips().is_empty());
    let e = p.register_xsk(100_000, 0).unwrap_err();
    assert!(e.to_string().contains("FG_MAX_QUEUES"), "{e}");
}

#[test]
fn port_zero_owns_every_port_of_its_address() {
    if !require_root("bpf_prog::port_zero_owns_every_port_of_its_address") {
        return;
    }
    let p = program();
    p.set_vips(&[(IpAddr::V4(VIP4), 0)]).unwrap();
    for port in [1u16, 80, 40000, 65535] {
        expect(&p, &format!("port {port} under a wildcard"), &syn4(VIP4, port, &[]), XDP_PASS, Counter::RedirectNoXsk);
    }
    expect(&p, "other address", &syn4(Ipv4Addr::new(198, 18, 0, 99), 80, &[]), XDP_PASS, Counter::NotVip);
}

/// The proxy's backend side: TCP segments to an owned source address and
/// one of its ports (a backend's SYN-ACK, data, RST) are steered and counted
/// in `source_reply`; the address's other ports, other addresses and
/// non-TCP stay the kernel's; a path-MTU error quoting a segment from an
/// owned source port is steered too. The map follows `set_sources`.
#[test]
fn backend_replies_to_owned_sources_are_steered() {
    if !require_root("bpf_prog::backend_replies_to_owned_sources_are_steered") {
        return;
    }
    const SRC_A: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    const SRC_B: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
    const BACKEND: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 10);
    let p = program();
    p.set_sources(SRC_A, SRC_B, 10000, 19999).expect("set sources");
    assert_eq!(p.source_ports(IpAddr::V4(SRC_B)), Some((10000, 19999)));
    assert_eq!(p.source_ports(IpAddr::V4(BACKEND)), None);
    let reply = |dst: Ipv4Addr, dport: u16, flags: u8, payload: &[u8]| {
        concat(eth(ETH_P_IP, &[]), ipv4(BACKEND, dst, 6, &tcp(8080, dport, 5000, 1001, flags, payload)))
    };
    let replies = |p: &XdpProgram| p.stats().expect("stats").source_reply;
    let owned = [
        ("SYN-ACK to the first port", reply(SRC_A, 10000, TCP_SYN | TCP_ACK, &[])),
        ("data to the last port", reply(SRC_B, 19999, TCP_ACK, b"hello")),
        ("RST", reply(SRC_A, 12345, 0x04, &[])),
        ("FIN", reply(SRC_B, 15000, TCP_FIN | TCP_ACK, &[])),
    ];
    for (name, frame) in &owned {
        let before = replies(&p);
        expect(&p, name, frame, XDP_PASS, Counter::RedirectNoXsk);
        assert_eq!(replies(&p), before + 1, "{name}: counted as a source reply");
    }
    let before = replies(&p);
    let kernels = [
        ("port below the range", reply(SRC_A, 9999, TCP_ACK, &[]), Counter::NotVip),
        ("port above the range", reply(SRC_B, 20000, TCP_ACK, &[]), Counter::NotVip),
        ("address past the range", reply(Ipv4Addr::new(198, 18, 1, 3), 10000, TCP_ACK, &[]), Counter::NotVip),
        ("as IPv6 ::ffff: (bogus on the wire)", syn6(SRC_A.to_ipv6_mapped(), 10000, &[]), Counter::NotVip),
        (
            "UDP to an owned port",
            concat(eth(ETH_P_IP, &[]), ipv4(BACKEND, SRC_A, 17, &[0x1f, 0x90, 0x27, 0x10, 0, 8, 0, 0])),
            Counter::NotTcp,
        ),
    ];
    for (name, frame, counter) in &kernels {
        expect(&p, name, frame, XDP_PASS, *counter);
    }
    assert_eq!(replies(&p), before, "none of those is a source reply");

    // Path MTU: a router's error about a segment we sent from a source port.
    let mut q = ipv4(SRC_A, BACKEND, 6, &tcp(10001, 8080, 1000, 1, TCP_ACK, &[0; 1400]));
    q.truncate(28);
    let before = p.stats().unwrap().icmp_too_big;
    expect(&p, "frag needed about a backend-side segment", &icmp4(3, 4, &q), XDP_PASS, Counter::RedirectNoXsk);
    assert_eq!(p.stats().unwrap().icmp_too_big, before + 1);
    let mut q = ipv4(SRC_A, BACKEND, 6, &tcp(30000, 8080, 1000, 1, TCP_ACK, &[0; 1400]));
    q.truncate(28);
    expect(&p, "frag needed about the kernel's port", &icmp4(3, 4, &q), XDP_PASS, Counter::NotTcp);

    // A new range replaces the old one.
    p.set_sources(SRC_B, SRC_B, 30000, 30000).unwrap();
    assert_eq!(p.source_ports(IpAddr::V4(SRC_A)), None);
    expect(&p, "old address dropped", &reply(SRC_A, 10000, TCP_ACK, &[]), XDP_PASS, Counter::NotVip);
    expect(&p, "old ports dropped", &reply(SRC_B, 10000, TCP_ACK, &[]), XDP_PASS, Counter::NotVip);
    expect(&p, "new port owned", &reply(SRC_B, 30000, TCP_ACK, &[]), XDP_PASS, Counter::RedirectNoXsk);
    // The VIP is still served as before.
    expect(&p, "VIP SYN", &syn4(VIP4, PORT, &[]), XDP_PASS, Counter::RedirectNoXsk);
}
