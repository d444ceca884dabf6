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
 * Value of the one-entry per-CPU `stats` array: one counter per verdict.
 * Every frame the program sees increments exactly one of these.
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
};

#endif /* FLOODGATE_H */
