/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * floodgate.h: the one definition of the values the XDP program and user space
 * exchange through maps. engine/src/link/xdp/abi.rs mirrors every struct here
 * with #[repr(C)] and asserts the sizes at compile time; change both together.
 *
 * Only fixed-width types, no implicit padding: the layout is the same for the
 * BPF target and for x86_64/aarch64 user space.
 */
#ifndef FLOODGATE_H
#define FLOODGATE_H

#ifdef __BPF__
#include <linux/types.h>
#else
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif

/* Maximum number of RX queues (XSKMAP entries) and of (VIP, port) pairs. */
#define FG_MAX_QUEUES 256
#define FG_MAX_VIPS 1024
/* Maximum number of owned source addresses (the proxy's --source-addrs). */
#define FG_MAX_SOURCES 65536

/*
 * Key of the `vips` hash map: a destination the engine owns.
 * addr: IPv6 address, or IPv4 as v4-mapped (::ffff:a.b.c.d), network order.
 * port: TCP destination port, network byte order.
 * pad:  always zero (the whole key is hashed).
 */
struct fg_vip_key {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
};

/*
 * Key of the `sources` hash map: an address the engine opens connections
 * from (the proxy's backend side, --source-addrs), so the replies to it are
 * the engine's. IPv6, or IPv4 as v4-mapped (::ffff:a.b.c.d), network order.
 */
struct fg_source_key {
	__u8 addr[16];
};

/*
 * Value of the `sources` map: the TCP ports of that address the engine owns
 * (every shard's slice together), host byte order, inclusive. The other
 * ports stay the kernel's, so its own connections from the address work.
 */
struct fg_source {
	__u16 port_lo;
	__u16 port_hi;
	__u32 pad;
};

/* fg_vip.flags: answer this VIP's SYNs with SYN cookies in XDP (syncookie.h). */
#define FG_VIP_XDP_COOKIES 0x1
/* fg_vip.flags: the listener accepts ECN (RFC 3168): an ECN-setup SYN gets
 * ECE in the SYN-ACK, and the answer rides in the TSval's low bit (ecn.rs). */
#define FG_VIP_ECN 0x2

/*
 * Value of the `vips` map: how the listener behind (addr, port) answers a
 * SYN, so that a SYN-ACK sent by the XDP program is the one the engine would
 * send (tcp/endpoint.rs, send_cookie). Host byte order throughout.
 */
struct fg_vip {
	/* FG_VIP_* */
	__u8 flags;
	/* our window-scale shift; 0: no window scaling */
	__u8 window_scale;
	/* 1: SACK permitted (RFC 2018) */
	__u8 sack;
	/* 1: timestamps (RFC 7323) */
	__u8 timestamps;
	/* the MSS we advertise */
	__u16 mss;
	/* the window field of a SYN-ACK */
	__u16 window;
};

/*
 * The one entry of the `cookie_cfg` array: the engine's secrets and clock
 * (tcp/secret.rs), written by user space once before any VIP has
 * FG_VIP_XDP_COOKIES set.
 */
struct fg_cookie_cfg {
	/* SipHash-1-3 keys, as the two little-endian words of each 16-byte key */
	__u64 isn_key[2];
	__u64 cookie_key[2];
	/* CLOCK_MONOTONIC (bpf_ktime_get_ns) at the engine's clock zero */
	__u64 clock_base_ns;
	/* nonzero once the entry is written */
	__u64 ready;
};

/*
 * Value of the one-entry per-CPU `stats` array: one counter per verdict.
 * Every frame the program sees increments exactly one of these, but for
 * syn_cookie_fallback, the last, which counts a reason and not a verdict.
 */
struct fg_stats {
	/* owned (VIP, port): bpf_redirect_map returned XDP_REDIRECT */
	__u64 redirect;
	/* owned, but no AF_XDP socket bound on this RX queue: XDP_PASS */
	__u64 redirect_no_xsk;
	/* not IPv4/IPv6 (ARP, LLDP, ...), after at most two VLAN tags */
	__u64 pass_not_ip;
	/* IP but not TCP (ICMP, UDP, IPv6 extension headers, ...) */
	__u64 pass_not_tcp;
	/* TCP to an address/port the engine does not own */
	__u64 pass_not_vip;
	/* frame ends before the header that had to be read */
	__u64 pass_truncated;
	/* IPv4 fragment: no (or no complete) TCP header to match on */
	__u64 pass_fragment;
	/* IPv4 header length field below 20 bytes, or a wrong version */
	__u64 pass_malformed;
	/* a SYN to a VIP with FG_VIP_XDP_COOKIES answered here: XDP_TX */
	__u64 syn_cookie_tx;
	/* such a SYN whose reply could not be written into the frame: XDP_DROP */
	__u64 syn_cookie_error;
	/* such a SYN left to the engine (a VLAN tag, IP options, IPv6 extension headers, a
	 * payload, a bad checksum or option, no room): also counted in redirect */
	__u64 syn_cookie_fallback;
	/* an ICMP "fragmentation needed" / ICMPv6 "packet too big" quoting a
	 * segment from an owned (address, port), steered to the engine for
	 * path MTU discovery: not a verdict (also counted in redirect) */
	__u64 icmp_too_big;
	/* a TCP segment to an owned source (address, port): a backend's reply
	 * to the proxy, steered to the engine: not a verdict (also counted in
	 * redirect or redirect_no_xsk) */
	__u64 source_reply;
};

#endif /* FLOODGATE_H */
