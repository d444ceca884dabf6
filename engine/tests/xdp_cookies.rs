//! SYN cookies answered in XDP (`bpf/syncookie.h`) against the engine's own
//! (RFC 4987 §3.6; `tcp/endpoint.rs`, `send_cookie` and `cookie_ack`), through
//! BPF_PROG_TEST_RUN. Needs root (loads BPF); skips loudly otherwise, never
//! under CI=true.
//!
//! The XDP program and an `Endpoint` share the secrets and, through
//! `cookie_cfg.clock_base_ns`, the clock. Every SYN shape, under every
//! listener setting that changes the reply, must come back from XDP as the
//! very frame the engine writes for it: byte for byte, but for the
//! timestamp value (the two clocks are read a few microseconds apart, so it
//! may differ by a millisecond) and so the TCP checksum. The final ACK to an
//! XDP SYN-ACK must then open a connection in the engine. Every SYN the
//! program must not answer goes to the engine untouched, counted.

mod xdp_common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::time::Duration;

use floodgate::link::xdp::{monotonic_now, BpfStats, CookieConfig, VipConfig, XdpProgram, VIP_XDP_COOKIES};
use floodgate::link::{RxAction, TxSink};
use floodgate::tcp::{Capacity, CookieMode, Ecn, Endpoint, Secrets, State, TcpConfig};
use floodgate::time::Instant;
use floodgate::wire::{self, Frame};
use xdp_common::*;

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLI4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const CLI6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const PORT: u16 = 80;
const KEY: [u8; 32] = [0x5a; 32];
const PEER_ISN: u32 = 0x1234_5678;

/// Keeps the frames the endpoint sends through the TX ring.
struct Sent(Vec<Vec<u8>>);
impl TxSink for Sent {
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool {
        let mut b = vec![0u8; 2048];
        let n = write(&mut b);
        b.truncate(n);
        self.0.push(b);
        true
    }
}

struct Rig {
    prog: XdpProgram,
    ep: Endpoint,
    now: Instant,
}

/// The program with a cookie VIP of each family and an endpoint listening
/// there, `cfg` for both. The engine's clock reads 32 s into a cookie epoch (and no more
/// than the time since boot, where CLOCK_MONOTONIC starts), so the two sides
/// agree on the epoch whatever the test's pace.
fn rig(cfg: TcpConfig) -> Rig {
    let prog = XdpProgram::load().expect("load the XDP program");
    let secrets = Secrets::from_bytes(KEY);
    let (up, half, epoch) = (monotonic_now(), Duration::from_secs(32), Duration::from_secs(64));
    let clock =
        if up >= half { up - Duration::from_nanos(((up - half).as_nanos() % epoch.as_nanos()) as u64) } else { up };
    let now = Instant::from_micros(clock.as_micros() as u64);
    prog.set_cookie_config(&CookieConfig::new(&secrets, clock)).unwrap();
    let cap = Capacity { connections: 64, time_wait: 64, buffers: 64, ..Capacity::default() };
    let mut ep = Endpoint::new(cfg, cap, SERVER_MAC, secrets, now);
    for (addr, v6) in [(IpAddr::V4(VIP4), false), (IpAddr::V6(VIP6), true)] {
        ep.listen(Some(addr), PORT, cfg).unwrap();
        let vip = VipConfig::for_listener(&cfg, &cap, VIP_XDP_COOKIES, v6);
        prog.set_vip_config(addr, PORT, &vip).unwrap();
    }
    // What the control thread's `Command::CookiesInFlight` does when it
    // turns cookies in XDP on: the shard expects cookie ACKs it never sent.
    ep.note_cookies_in_flight(now);
    Rig { prog, ep, now }
}

fn always_cookies(f: impl FnOnce(&mut TcpConfig)) -> TcpConfig {
    let mut cfg = TcpConfig { syn_cookies: CookieMode::Always, ..TcpConfig::default() };
    f(&mut cfg);
    cfg
}

fn segment(flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    segment_over(false, flags, opts, payload)
}

/// A segment from the client to the VIP over IPv4 or (`v6`) IPv6.
fn segment_over(v6: bool, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let t = tcp_with_options(40000, PORT, PEER_ISN, 0, flags, opts, payload);
    if v6 {
        concat(eth(0x86dd, &[]), ipv6(CLI6, VIP6, 6, &t))
    } else {
        concat(eth(0x0800, &[]), ipv4(CLI4, VIP4, 6, &t))
    }
}

fn syn(opts: &[u8]) -> Vec<u8> {
    segment(TCP_SYN, opts, &[])
}

/// Where the TCP header starts (Ethernet, then IPv4 without options or IPv6).
fn tcp_at(frame: &[u8]) -> usize {
    if frame[12..14] == [0x86, 0xdd] {
        14 + 40
    } else {
        14 + 20
    }
}

/// The engine's answer to `frame`: written in place, or through the TX ring.
fn engine_reply(r: &mut Rig, frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let mut sent = Sent(Vec::new());
    match r.ep.on_frame(r.now, &mut f, &mut sent) {
        RxAction::Transmit(n) => f[..n].to_vec(),
        RxAction::Release => sent.0.pop().expect("the engine answers the SYN"),
    }
}

fn xdp_run(r: &Rig, frame: &[u8]) -> (u32, Vec<u8>, BpfStats, BpfStats) {
    let before = r.prog.stats().unwrap();
    let (verdict, out) = r.prog.test_run_output(frame).expect("test_run");
    (verdict, out, before, r.prog.stats().unwrap())
}

/// Where the TS option's TSval sits in `frame`.
fn tsval_at(frame: &[u8]) -> Option<usize> {
    let th = tcp_at(frame);
    let doff = (frame[th + 12] >> 4) as usize * 4;
    let opts = th + 20..th + doff;
    let mut i = opts.start;
    while i < opts.end {
        match frame[i] {
            0 => return None,
            1 => i += 1,
            8 => return Some(i + 2),
            _ => i += frame[i + 1] as usize,
        }
    }
    None
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

/// XDP's SYN-ACK to `frame` is the engine's; returns XDP's.
#[track_caller]
fn same_reply(r: &mut Rig, name: &str, frame: &[u8]) -> Vec<u8> {
    let (verdict, mut ours, before, after) = xdp_run(r, frame);
    assert_eq!(verdict, XDP_TX, "{name}: answered in XDP");
    assert_eq!(after.syn_cookie_tx, before.syn_cookie_tx + 1, "{name}: counted");
    assert_eq!(after.total(), before.total() + 1, "{name}: one verdict");
    let theirs = engine_reply(r, frame);
    let xdp = ours.clone();
    for f in [&ours, &theirs] {
        assert!(matches!(wire::parse_tcp_frame(f, true), Ok(Frame::Tcp(_))), "{name}: checksums verify");
    }
    assert_eq!(ours.len(), theirs.len(), "{name}: length\n xdp    {ours:02x?}\n engine {theirs:02x?}");
    assert_eq!(tsval_at(&ours), tsval_at(&theirs), "{name}: timestamps");
    if let Some(at) = tsval_at(&ours) {
        let lag = be32(&ours[at..]).wrapping_sub(be32(&theirs[at..]));
        // The engine's reply is computed at the rig's clock reading; the
        // program reads the clock as it runs, later, by as long as the test
        // has taken so far (over 100 ms on a loaded machine).
        assert!(lag < 1000, "{name}: TSval {} ms after the engine's", lag as i32);
        ours[at..at + 4].copy_from_slice(&theirs[at..at + 4]);
    }
    let mut theirs = theirs;
    for f in [&mut ours, &mut theirs] {
        let th = tcp_at(f);
        f[th + 16..th + 18].fill(0);
    }
    assert_eq!(ours, theirs, "{name}: the engine's SYN-ACK");
    xdp
}

/// Option layouts a SYN arrives with; each changes the reply or the cookie.
fn shapes() -> Vec<(&'static str, Vec<u8>)> {
    let ts = [8, 10, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0];
    let mut v = vec![
        ("linux", LINUX_SYN_OPTIONS.to_vec()),
        ("bare", vec![]),
        ("mss only", vec![2, 4, 0x05, 0xb4]),
        ("mss 1300, ws 14", vec![2, 4, 0x05, 0x14, 1, 3, 3, 14]),
        ("mss, sack, no ts", vec![2, 4, 0x05, 0xb4, 4, 2]),
        ("mss 100, ws 15 clamped", vec![2, 4, 0, 100, 3, 3, 15]),
        ("unknown kind, then EOL", vec![30, 4, 0, 0, 2, 4, 0x05, 0xa0, 0, 9, 9, 9]),
        ("sack blocks in a SYN", vec![2, 4, 0x05, 0xb4, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
    ];
    let mut only_ts = vec![1, 1];
    only_ts.extend_from_slice(&ts);
    v.push(("timestamps only", only_ts));
    let mut jumbo = vec![2, 4, 0x23, 0x28, 1, 1, 4, 2, 1, 3, 3, 9];
    jumbo.extend_from_slice(&ts);
    v.push(("mss 9000, nops, sack, ws, ts", jumbo));
    v
}

#[test]
fn xdp_cookie_synack_is_the_engines() {
    if !require_root("xdp_cookie_synack_is_the_engines") {
        return;
    }
    let settings: [(&str, TcpConfig); 6] = [
        ("defaults", always_cookies(|_| {})),
        ("ecn off", always_cookies(|c| c.ecn = Ecn::Off)),
        ("ecn on", always_cookies(|c| c.ecn = Ecn::On)),
        ("no timestamps", always_cookies(|c| c.timestamps = false)),
        ("no sack", always_cookies(|c| c.sack = false)),
        (
            "no window scaling, mtu 1400",
            always_cookies(|c| {
                c.window_scale = 0;
                c.mtu = 1400;
            }),
        ),
    ];
    for (setting, cfg) in settings {
        let mut r = rig(cfg);
        for v6 in [false, true] {
            let family = if v6 { "IPv6" } else { "IPv4" };
            for (shape, opts) in shapes() {
                same_reply(&mut r, &format!("{family} / {setting} / {shape}"), &segment_over(v6, TCP_SYN, &opts, &[]));
            }
            // A SYN with ECE|CWR (ECN setup) or PSH is still a SYN; the
            // ECN answer (ECE, the TSval's low bit) is the engine's too.
            let ecn = segment_over(v6, TCP_SYN | 0xc0, &LINUX_SYN_OPTIONS, &[]);
            let reply = same_reply(&mut r, &format!("{family} / {setting} / ecn"), &ecn);
            let Ok(Frame::Tcp(p)) = wire::parse_tcp_frame(&reply, true) else { panic!("a SYN-ACK") };
            let want = cfg.ecn != Ecn::Off && cfg.timestamps;
            assert_eq!(p.tcp.control.bits() & 0xc0, if want { 0x40 } else { 0 }, "{family} / {setting}: ECE alone");
            if let Some((tsval, _)) = p.tcp.options.timestamp {
                assert_eq!(tsval & 1 == 1, want, "{family} / {setting}: TSval's low bit");
            }
            // ECE alone is no ECN setup.
            let ece = segment_over(v6, TCP_SYN | 0x40, &LINUX_SYN_OPTIONS, &[]);
            let reply = same_reply(&mut r, &format!("{family} / {setting} / ece"), &ece);
            assert_eq!(reply[tcp_at(&reply) + 13], 0x12, "{family} / {setting}: SYN|ACK");
        }
    }
}

#[test]
fn ack_to_an_xdp_synack_opens_a_connection() {
    if !require_root("ack_to_an_xdp_synack_opens_a_connection") {
        return;
    }
    for v6 in [false, true] {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let mut r = rig(TcpConfig::default());
        // An ECN-setup SYN (ECE|CWR): the connection has ECN.
        let (verdict, synack, _, _) = xdp_run(&r, &segment_over(v6, TCP_SYN | 0xc0, &LINUX_SYN_OPTIONS, &[]));
        assert_eq!(verdict, XDP_TX, "{family}");
        let Ok(Frame::Tcp(p)) = wire::parse_tcp_frame(&synack, true) else { panic!("{family}: a TCP SYN-ACK") };
        assert_eq!(p.tcp.ack_number.map(|a| a.0), Some(PEER_ISN + 1));
        let (cookie, tsval) = (p.tcp.seq_number, p.tcp.options.timestamp.expect("timestamps").0);
        // The client's third segment: <SEQ=ISN+1><ACK=cookie+1>, TSecr = our TSval.
        let mut opts = vec![1, 1, 8, 10, 0, 0, 0, 2];
        opts.extend_from_slice(&tsval.to_be_bytes());
        let ack_from = |port: u16| {
            let t = tcp_with_options(port, PORT, PEER_ISN + 1, (cookie + 1).0, TCP_ACK, &opts, &[]);
            if v6 {
                concat(eth(0x86dd, &[]), ipv6(CLI6, VIP6, 6, &t))
            } else {
                concat(eth(0x0800, &[]), ipv4(CLI4, VIP4, 6, &t))
            }
        };
        let mut sent = Sent(Vec::new());
        r.ep.on_frame(r.now, &mut ack_from(40000), &mut sent);
        assert_eq!(r.ep.stats.cookies_accepted, 1, "{family}");
        assert_eq!(r.ep.connections(), 1, "{family}");
        r.ep.for_each_connection(|h, t, tcb| {
            assert_eq!(t.remote_port, 40000);
            assert_eq!(t.remote_addr.as_v4().is_none(), v6, "{family}");
            assert_eq!(tcb.state, State::Established, "{h:?}");
            assert_eq!(tcb.snd_una, cookie + 1);
            assert!(tcb.has(floodgate::tcp::tcb::flag::ECN), "{family}: ECN from the TSval");
        });
        assert_eq!(r.ep.stats.ecn_negotiated, 1, "{family}");
        // A forged cookie does not.
        r.ep.on_frame(r.now, &mut ack_from(40001), &mut sent);
        assert_eq!((r.ep.stats.cookies_accepted, r.ep.stats.cookies_rejected), (1, 1), "{family}");
    }
}

/// A SYN without an MSS option: the connection the program's cookie opens
/// gets the family's default MSS (RFC 9293 §3.7.1: 536; RFC 8200 §5:
/// 1220 for IPv6), not IPv4's 536 for both.
#[test]
fn xdp_cookie_without_mss_option_gets_the_familys_default() {
    if !require_root("xdp_cookie_without_mss_option_gets_the_familys_default") {
        return;
    }
    for (v6, want) in [(false, 536), (true, 1220)] {
        let mut r = rig(TcpConfig::default());
        let (verdict, synack, _, _) = xdp_run(&r, &segment_over(v6, TCP_SYN, &[], &[]));
        assert_eq!(verdict, XDP_TX, "v6 {v6}");
        let Ok(Frame::Tcp(p)) = wire::parse_tcp_frame(&synack, true) else { panic!("a TCP SYN-ACK") };
        let t = tcp_with_options(40000, PORT, PEER_ISN + 1, (p.tcp.seq_number + 1).0, TCP_ACK, &[], &[]);
        let mut ack = if v6 {
            concat(eth(0x86dd, &[]), ipv6(CLI6, VIP6, 6, &t))
        } else {
            concat(eth(0x0800, &[]), ipv4(CLI4, VIP4, 6, &t))
        };
        r.ep.on_frame(r.now, &mut ack, &mut Sent(Vec::new()));
        assert_eq!(r.ep.stats.cookies_accepted, 1, "v6 {v6}");
        let mut mss = 0;
        r.ep.for_each_connection(|_, _, tcb| mss = tcb.mss);
        assert_eq!(mss, want, "v6 {v6}");
    }
}

/// SYNs the program leaves to the engine, untouched and counted.
#[test]
fn other_syns_go_to_the_engine() {
    if !require_root("other_syns_go_to_the_engine") {
        return;
    }
    let r = rig(TcpConfig::default());
    let good = syn(&LINUX_SYN_OPTIONS);
    let mut bad_tcp_sum = good.clone();
    bad_tcp_sum[14 + 20 + 16] ^= 1;
    let mut bad_ip_sum = good.clone();
    bad_ip_sum[14 + 10] ^= 1;
    let mut multicast = good.clone();
    multicast[0] = 0x01;
    let t = tcp(40000, PORT, PEER_ISN, 0, TCP_SYN, &[]);
    let vlan = concat(eth(0x8100, &[]), concat(vec![0, 7, 0x08, 0x00], ipv4(CLI4, VIP4, 6, &t)));
    let mut ip_opts = ipv4(CLI4, VIP4, 6, &t);
    ip_opts.splice(20..20, [1, 1, 1, 0]);
    ip_opts[0] = 0x46;
    let len = ip_opts.len() as u16;
    ip_opts[2..4].copy_from_slice(&len.to_be_bytes());
    ip_opts[10..12].fill(0);
    let c = csum_fold(csum_add(0, &ip_opts[..24]));
    ip_opts[10..12].copy_from_slice(&c.to_be_bytes());
    let with_options = concat(eth(0x0800, &[]), ip_opts);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad TCP checksum", bad_tcp_sum),
        ("bad IP checksum", bad_ip_sum),
        ("multicast destination MAC", multicast),
        ("payload (data on the SYN)", segment(TCP_SYN, &LINUX_SYN_OPTIONS, b"hello")),
        ("VLAN tag", vlan),
        ("IP options", with_options),
        ("MSS of length 3", syn(&[2, 3, 5, 1])),
        ("option running past the header", syn(&[1, 1, 8, 10, 0, 0, 0, 0])),
        ("option length 0", syn(&[30, 0, 0, 0])),
        ("SACK option of 9 bytes", syn(&[5, 9, 0, 0, 0, 0, 0, 0, 0])),
    ];
    for (name, frame) in cases {
        let (verdict, out, before, after) = xdp_run(&r, &frame);
        assert_eq!(verdict, XDP_PASS, "{name}: no socket bound, so redirect falls back to PASS");
        assert_eq!(out, frame, "{name}: untouched");
        assert_eq!(after.syn_cookie_fallback, before.syn_cookie_fallback + 1, "{name}: counted");
        assert_eq!(after.redirect_no_xsk, before.redirect_no_xsk + 1, "{name}: steered to the engine");
        assert_eq!(after.syn_cookie_tx, before.syn_cookie_tx, "{name}: not answered");
    }
    // IPv6 SYNs of the shapes the program leaves alone, likewise: a
    // payload, a bad checksum, an extension header before TCP.
    let good6 = segment_over(true, TCP_SYN, &LINUX_SYN_OPTIONS, &[]);
    let mut bad6 = good6.clone();
    bad6[14 + 40 + 16] ^= 1;
    let mut hop_by_hop = vec![6u8, 0, 1, 4, 0, 0, 0, 0];
    hop_by_hop.extend_from_slice(&tcp(40000, PORT, PEER_ISN, 0, TCP_SYN, &[]));
    let cases6: Vec<(&str, Vec<u8>)> = vec![
        ("IPv6 payload", segment_over(true, TCP_SYN, &LINUX_SYN_OPTIONS, b"hello")),
        ("IPv6 bad TCP checksum", bad6),
        ("IPv6 hop-by-hop header", concat(eth(0x86dd, &[]), ipv6(CLI6, VIP6, 0, &hop_by_hop))),
    ];
    for (name, frame) in cases6 {
        let (verdict, out, before, after) = xdp_run(&r, &frame);
        assert_eq!((verdict, &out), (XDP_PASS, &frame), "{name}: untouched");
        assert_eq!(after.syn_cookie_tx, before.syn_cookie_tx, "{name}: not answered");
    }

    // Segments that are not a SYN pass as before, with no cookie counter.
    for flags in [TCP_ACK, TCP_SYN | TCP_ACK, TCP_SYN | 0x04, TCP_SYN | 0x01] {
        let (verdict, _, before, after) = xdp_run(&r, &segment(flags, &[], &[]));
        assert_eq!(verdict, XDP_PASS, "flags {flags:#x}");
        assert_eq!(after.redirect_no_xsk, before.redirect_no_xsk + 1, "flags {flags:#x}");
        assert_eq!(after.syn_cookie_fallback, before.syn_cookie_fallback, "flags {flags:#x}");
    }

    // A VIP without the flag, or no secrets yet: the engine answers.
    let plain = rig(TcpConfig::default());
    plain.prog.set_vip_config(IpAddr::V4(VIP4), PORT, &VipConfig::default()).unwrap();
    let (verdict, _, before, after) = xdp_run(&plain, &good);
    assert_eq!((verdict, after.syn_cookie_fallback), (XDP_PASS, before.syn_cookie_fallback));
    let fresh = XdpProgram::load().unwrap();
    fresh
        .set_vip_config(IpAddr::V4(VIP4), PORT, &VipConfig { flags: VIP_XDP_COOKIES, ..VipConfig::default() })
        .unwrap();
    let (verdict, out, _, after) = xdp_run(&Rig { prog: fresh, ..plain }, &good);
    assert_eq!((verdict, &out, after.syn_cookie_fallback), (XDP_PASS, &good, 1), "no secrets written");
}
