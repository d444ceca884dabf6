/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * reflector.h: what the XDP_TX reflector (reflector.bpf.c) and the reflector
 * example (engine/examples/reflector.rs) exchange. The example mirrors both
 * structs with #[repr(C)] and asserts their sizes at compile time, and checks
 * them against the loaded object's BTF at start-up; change all three together.
 *
 * Only fixed-width types, no implicit padding: the layout is the same for the
 * BPF target and for x86_64/aarch64 user space.
 */
#ifndef REFLECTOR_H
#define REFLECTOR_H

#ifdef __BPF__
#include <linux/types.h>
#else
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif

/*
 * The destination answered, set in .rodata before load (so the verifier
 * sees constants). vip, vip6 and port in network byte order.
 */
struct reflector_cfg {
	/* IPv4 destination address answered (0: none) */
	__u32 vip;
	/* TCP destination port answered */
	__u16 port;
	/* always zero */
	__u16 pad;
	/* mixed into every ISN, so two runs do not repeat each other's */
	__u32 isn_key;
	/* IPv6 destination address answered (all zero: none) */
	__u8 vip6[16];
};

/*
 * Value of the one-entry per-CPU `stats` array. Every frame the program sees
 * increments exactly one of these.
 */
struct reflector_stats {
	/* a SYN to (vip, port), rewritten into its SYN-ACK: XDP_TX */
	__u64 tx;
	/* TCP to (vip, port) but not a SYN without ACK, RST and FIN: XDP_PASS */
	__u64 pass_not_syn;
	/* IPv4 TCP to vip with IP options, a fragment, or lengths that do not
	 * fit the frame; IPv6 TCP to vip6 whose lengths do not fit: XDP_PASS */
	__u64 pass_malformed;
	/* everything else (ARP, VLAN-tagged, IPv6 with extension headers, other
	 * addresses and ports, frames too short for an IP header): XDP_PASS */
	__u64 pass_other;
};

#endif /* REFLECTOR_H */
