#!/usr/bin/env python3
"""Writes the frame target's seed frames into corpus/frame/ (run once; the
output is committed). Frames as Linux sends them: Ethernet, IPv4 or IPv6,
TCP with correct checksums."""
import os
import struct

MAC_US, MAC_PEER = bytes([2, 0, 0, 0, 0, 1]), bytes([2, 0, 0, 0, 0, 2])
V4_US, V4_PEER = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
V6_US = bytes([0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [1])
V6_PEER = bytes([0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [2])
FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def tcp(src, dst, flags, seq, ack, opts=b"", payload=b"", sport=40000, dport=80, win=64240):
    assert len(opts) % 4 == 0
    hl = 20 + len(opts)
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (hl // 4) << 4, flags, win, 0, 0) + opts + payload
    if len(src) == 4:
        ph = src + dst + struct.pack("!BBH", 0, 6, len(h))
    else:
        ph = src + dst + struct.pack("!IxxxB", len(h), 6)
    c = csum(ph + h)
    return h[:16] + struct.pack("!H", c) + h[18:]


def ipv4(seg, ip_opts=b"", proto=6):
    ihl = 5 + len(ip_opts) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(seg), 0x1234, 0x4000, 64, proto, 0, V4_PEER, V4_US)
    h += ip_opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + seg


def ipv6(seg, nh=6, ext=b""):
    return struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(seg), nh, 64, V6_PEER, V6_US) + ext + seg


def eth(l3, ethertype, vlan=None):
    h = MAC_US + MAC_PEER
    if vlan is not None:
        h += struct.pack("!HH", 0x8100, vlan)
    f = h + struct.pack("!H", ethertype) + l3
    return f + b"\0" * max(0, 60 - len(f))


LINUX_SYN_OPTS = bytes([2, 4, 5, 0xB4, 4, 2, 8, 10]) + struct.pack("!II", 1000000, 0) + bytes([1, 3, 3, 7])
TS = bytes([1, 1, 8, 10]) + struct.pack("!II", 1000100, 2000)
SACK = bytes([1, 1, 5, 18]) + struct.pack("!IIII", 5000, 6000, 7000, 8000)
GET = b"GET / HTTP/1.1\r\nHost: 198.18.0.1\r\n\r\n"

frames = {
    "syn_linux": eth(ipv4(tcp(V4_PEER, V4_US, SYN, 0x12345678, 0, LINUX_SYN_OPTS)), 0x0800),
    "syn_mss_only": eth(ipv4(tcp(V4_PEER, V4_US, SYN, 7, 0, bytes([2, 4, 5, 0xB4]))), 0x0800),
    "ack": eth(ipv4(tcp(V4_PEER, V4_US, ACK, 0x12345679, 0xABCDEF01, TS)), 0x0800),
    "data": eth(ipv4(tcp(V4_PEER, V4_US, ACK | PSH, 0x12345679, 0xABCDEF01, TS, GET)), 0x0800),
    "fin": eth(ipv4(tcp(V4_PEER, V4_US, FIN | ACK, 0x1234569D, 0xABCDEF01, TS)), 0x0800),
    "rst": eth(ipv4(tcp(V4_PEER, V4_US, RST, 0x1234569D, 0)), 0x0800),
    "ack_sack": eth(ipv4(tcp(V4_PEER, V4_US, ACK, 0x12345679, 4000, SACK)), 0x0800),
    "syn_ip_options": eth(ipv4(tcp(V4_PEER, V4_US, SYN, 1, 0, LINUX_SYN_OPTS), ip_opts=bytes([1, 1, 1, 0])), 0x0800),
    "syn_vlan": eth(ipv4(tcp(V4_PEER, V4_US, SYN, 1, 0, LINUX_SYN_OPTS)), 0x0800, vlan=7),
    "syn_v6": eth(ipv6(tcp(V6_PEER, V6_US, SYN, 1, 0, LINUX_SYN_OPTS)), 0x86DD),
    "data_v6_hop_by_hop": eth(ipv6(tcp(V6_PEER, V6_US, ACK | PSH, 2, 3, TS, GET), nh=0, ext=bytes([6, 0, 1, 4, 0, 0, 0, 0])), 0x86DD),
    "udp": eth(ipv4(b"\x13\x88\x00\x35\x00\x08\x00\x00", proto=17), 0x0800),
    "arp_request": eth(struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_PEER, V4_PEER, b"\0" * 6, V4_US), 0x0806),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "frame")
os.makedirs(out, exist_ok=True)
for name, f in frames.items():
    with open(os.path.join(out, name), "wb") as fh:
        fh.write(f)
