// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * floodgate.bpf.c: the XDP program in front of floodgate's AF_XDP sockets.
 *
 * IPv4/IPv6 TCP frames (behind at most two 802.1Q/802.1ad tags) whose
 * (destination address, destination port) is in `vips` (port 0: every port of
 * the address) go to the AF_XDP socket of their RX queue:
 *
 *     bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS)
 *
 * so with no socket bound on that queue the kernel still gets the frame. A
 * SYN to a VIP whose `struct fg_vip` has FG_VIP_XDP_COOKIES is answered here
 * instead, with the engine's own cookie SYN-ACK (syncookie.h), when it has
 * the common shape; any other SYN still goes to the engine.
 * ICMP "fragmentation needed" (IPv4 type 3 code 4) and ICMPv6 "packet too big"
 * (type 2) that quote a TCP segment from an owned (address, port) go to the
 * same socket, for path MTU discovery (the engine checks them, RFC 5927).
 * TCP frames to an owned source (address, port) in `sources` (the proxy's
 * backend side, --source-addrs x --source-ports: the backends' replies) go
 * to the same socket too, counted in source_reply; the address's other
 * ports stay the kernel's.
 * Everything else (ARP, other ICMP, other ports, IPv4 fragments, IPv6 with extension
 * headers, anything truncated or malformed) passes to the kernel. Every verdict
 * is counted in the per-CPU `stats` map (struct fg_stats, floodgate.h).
 *
 * Follows the layout of xdp-tools' xsk_def_xdp_prog.c and Katran's balancer:
 * one entry point, maps declared as BTF structs, and a bounds check before
 * every header read. Lengths are compared as scalars (offset + size <= frame
 * length) so the verifier never sees unbounded packet-pointer arithmetic.
 *
 * Built by engine/build.rs: clang -target bpf -O2 -g.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "floodgate.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, FG_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_MAX_VIPS);
	__type(key, struct fg_vip_key);
	__type(value, struct fg_vip);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_MAX_SOURCES);
	__type(key, struct fg_source_key);
	__type(value, struct fg_source);
} sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_cookie_cfg);
} cookie_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_stats);
} stats SEC(".maps");

/* 802.1Q / 802.1ad tag, after the MAC addresses (linux/if_vlan.h is not UAPI). */
struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

#define MAX_VLAN_TAGS 2
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

#define COUNT(field)                                          \
	do {                                                  \
		__u32 zero = 0;                               \
		struct fg_stats *s;                           \
		s = bpf_map_lookup_elem(&stats, &zero);       \
		if (s)                                        \
			s->field++;                           \
	} while (0)

#define PASS(field)          \
	do {                 \
		COUNT(field); \
		return XDP_PASS;  \
	} while (0)

#include "syncookie.h"

#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4
#define ICMPV6_PKT_TOOBIG 2
#define ICMP_HDR_LEN 8

/* Hands the frame to its RX queue's AF_XDP socket (the kernel gets it when
 * no socket is bound there), counted either way. */
static __always_inline int steer(struct xdp_md *ctx)
{
	int ret = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);

	if (ret == XDP_REDIRECT)
		COUNT(redirect);
	else
		COUNT(redirect_no_xsk);
	return ret;
}

/* Whether `key` (an address and port) is owned: the exact pair, or port 0
 * for every port of the address. */
static __always_inline int owned(struct fg_vip_key *key)
{
	if (bpf_map_lookup_elem(&vips, key))
		return 1;
	key->port = 0;
	return bpf_map_lookup_elem(&vips, key) != 0;
}

/* Whether (`addr`, `port_be`) is an owned source: the address is in
 * `sources` and the port in its range. The key's address is read in place. */
static __always_inline int owned_source(struct fg_vip_key *key)
{
	struct fg_source *src = bpf_map_lookup_elem(&sources, key->addr);
	__u16 port = bpf_ntohs(key->port);

	return src && port >= src->port_lo && port <= src->port_hi;
}

/* The ICMP error at `off` (within `end`) quotes an IP packet at `off` + 8;
 * `family` 4 or 6. Reads the quoted source address and TCP source port
 * into `key`; 0 when the quote is not a TCP segment the program can read. */
static __always_inline int quoted_source(void *data, void *data_end, __u32 off, __u32 end, int family,
					 struct fg_vip_key *key)
{
	__u32 q = off + ICMP_HDR_LEN;
	__u16 *ports;

	if (family == 4) {
		struct iphdr *ip = data + q;

		if ((void *)(ip + 1) > data_end || q + sizeof(*ip) > end)
			return 0;
		if (ip->version != 4 || ip->ihl < 5 || ip->protocol != IPPROTO_TCP)
			return 0;
		key->addr[10] = 0xff;
		key->addr[11] = 0xff;
		__builtin_memcpy(&key->addr[12], &ip->saddr, 4);
		q += (__u32)ip->ihl * 4;
	} else {
		struct ipv6hdr *ip6 = data + q;

		if ((void *)(ip6 + 1) > data_end || q + sizeof(*ip6) > end)
			return 0;
		if (ip6->version != 6 || ip6->nexthdr != IPPROTO_TCP)
			return 0;
		__builtin_memcpy(key->addr, &ip6->saddr, 16);
		q += sizeof(*ip6);
	}
	if (q > 2048)
		return 0;
	ports = data + q;
	/* Ports and sequence number: the 8 bytes every quote carries. */
	if ((void *)ports + 8 > data_end || q + 8 > end)
		return 0;
	key->port = ports[0];
	return 1;
}

/* An ICMP(v6) message at `off`: a "too big" error about our segment goes to
 * the engine's socket; everything else to the kernel. */
static __always_inline int icmp_verdict(struct xdp_md *ctx, __u32 off, __u32 end, int family)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct fg_vip_key key = {};
	__u8 *icmp = data + off;

	if ((void *)icmp + ICMP_HDR_LEN > data_end || off + ICMP_HDR_LEN > end)
		PASS(pass_not_tcp);
	if (family == 4 ? (icmp[0] != ICMP_DEST_UNREACH || icmp[1] != ICMP_FRAG_NEEDED) : icmp[0] != ICMPV6_PKT_TOOBIG)
		PASS(pass_not_tcp);
	if (!quoted_source(data, data_end, off, end, family, &key))
		PASS(pass_not_tcp);
	/* Our segment's source: a VIP's port, or a source port of the proxy's. */
	if (!owned_source(&key) && !owned(&key))
		PASS(pass_not_tcp);
	COUNT(icmp_too_big);
	return steer(ctx);
}

SEC("xdp")
int floodgate_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame_len = (__u32)(data_end - data);
	struct fg_vip_key key = {};
	struct fg_vip *vip;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;
	__u32 off, end, doff;
	__be16 proto;
	int ret;

	if ((void *)(eth + 1) > data_end)
		PASS(pass_truncated);
	proto = eth->h_proto;
	off = sizeof(*eth);

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		struct vlan_hdr *vlan = data + off;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vlan + 1) > data_end)
			PASS(pass_truncated);
		proto = vlan->encap_proto;
		off += sizeof(*vlan);
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;
		__u32 ihl;

		if ((void *)(ip + 1) > data_end)
			PASS(pass_truncated);
		if (ip->version != 4 || ip->ihl < 5)
			PASS(pass_malformed);
		/* The frame may carry Ethernet padding past the IP packet, never less. */
		end = off + bpf_ntohs(ip->tot_len);
		if (end > frame_len)
			PASS(pass_truncated);
		if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_ICMP)
			PASS(pass_not_tcp);
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			PASS(pass_fragment);
		ihl = (__u32)ip->ihl * 4;
		if (off + ihl > end)
			PASS(pass_malformed);
		if (ip->protocol == IPPROTO_ICMP)
			return icmp_verdict(ctx, off + ihl, end, 4);
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &ip->daddr, 4);
		off += ihl;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > data_end)
			PASS(pass_truncated);
		if (ip6->version != 6)
			PASS(pass_malformed);
		end = off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		if (end > frame_len)
			PASS(pass_truncated);
		/* Extension headers are left to the kernel: the engine never sends them. */
		if (ip6->nexthdr == IPPROTO_ICMPV6)
			return icmp_verdict(ctx, off + sizeof(*ip6), end, 6);
		if (ip6->nexthdr != IPPROTO_TCP)
			PASS(pass_not_tcp);
		/* v4-mapped keys are IPv4 VIPs; on the wire such a destination is bogus. */
		if (ip6->daddr.s6_addr32[0] == 0 && ip6->daddr.s6_addr32[1] == 0 &&
		    ip6->daddr.s6_addr32[2] == bpf_htonl(0xffff))
			PASS(pass_not_vip);
		__builtin_memcpy(key.addr, &ip6->daddr, 16);
		off += sizeof(*ip6);
	} else {
		PASS(pass_not_ip);
	}

	tcp = data + off;
	if ((void *)(tcp + 1) > data_end)
		PASS(pass_truncated);
	doff = (__u32)tcp->doff * 4;
	if (doff < sizeof(*tcp))
		PASS(pass_malformed);
	/* Options included: the engine parses them next, from this frame alone. */
	if (off + doff > end)
		PASS(pass_truncated);
	key.port = tcp->dest;

	vip = bpf_map_lookup_elem(&vips, &key);
	if (!vip) {
		/* A backend's reply to the proxy: to one of its source ports. */
		if (owned_source(&key)) {
			COUNT(source_reply);
			return steer(ctx);
		}
		/* Port 0 owns every port of its address: the load generator's
		 * source addresses, whose replies come to ephemeral ports. */
		key.port = 0;
		if (!bpf_map_lookup_elem(&vips, &key))
			PASS(pass_not_vip);
	} else if ((vip->flags & FG_VIP_XDP_COOKIES) &&
		   (((__u8 *)tcp)[13] & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) == TCP_SYN) {
		__u32 zero = 0;
		struct fg_cookie_cfg *cfg = bpf_map_lookup_elem(&cookie_cfg, &zero);

		ret = cfg && cfg->ready ? answer_syn_cookie(ctx, vip, cfg) : -1;
		if (ret == XDP_TX) {
			COUNT(syn_cookie_tx);
			return XDP_TX;
		}
		if (ret == XDP_DROP) {
			COUNT(syn_cookie_error);
			return XDP_DROP;
		}
		COUNT(syn_cookie_fallback);
	}

	return steer(ctx);
}

char _license[] SEC("license") = "Dual MIT/GPL";
