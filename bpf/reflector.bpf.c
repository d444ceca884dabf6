// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * reflector.bpf.c: the XDP_TX SYN-ACK reflector, the benchmark ceiling for
 * floodgate's SYN path (the reflector example's `--mode xdp-tx`).
 *
 * An untagged Ethernet / IPv4 (no options, not a fragment) or IPv6 (no
 * extension headers) / TCP frame to the configured (vip or vip6, port) whose
 * control bits have SYN and none of ACK, RST, FIN is rewritten in place into
 * the SYN-ACK that answers it (RFC 9293 §3.5, the second step of the
 * three-way handshake) and sent back out of the interface it came in on
 * (XDP_TX):
 *
 *   - Ethernet: source and destination MAC swapped;
 *   - IPv4: addresses swapped, TOS 0, ID 0, DF, TTL 64, length 20 + TCP;
 *   - IPv6 (RFC 8200 §3): addresses swapped, traffic class and flow label 0,
 *     hop limit 64, payload length = TCP;
 *   - TCP: ports swapped, SEG.SEQ = an ISN of our own (a multiplicative mix
 *     of the tuple and a per-run key: a stand-in for RFC 6528, enough to make
 *     replies differ), SEG.ACK = the SYN's SEG.SEQ + 1, flags SYN|ACK,
 *     window 65535, and one option, MSS 1460 (IPv6: 1440), when the frame
 *     has room for a 24-byte header (every SYN with options has); a bare
 *     SYN gets a 20-byte header without options. The SYN's other options, any payload
 *     and Ethernet padding are cut off (bpf_xdp_adjust_tail): but for the
 *     ISN, the reply is the frame the AF_XDP reflector sends.
 *
 * Both checksums are computed in full over the rewritten headers, the TCP one
 * with its pseudo-header (RFC 1071 one's-complement sum; RFC 9293 §3.1,
 * RFC 8200 §8.1 for IPv6). The
 * sum is byte-order independent (RFC 1071 §2(B)), so words are summed as
 * loaded and the folded result stored as is.
 *
 * Everything else passes to the kernel. Every verdict is counted in the
 * per-CPU `stats` map (struct reflector_stats, reflector.h). No state, no
 * map lookup on the answering path beyond the counter.
 *
 * Layout as in floodgate.bpf.c: one entry point, a bounds check before every
 * header read. Built by engine/build.rs: clang -target bpf -O2 -g.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "csum.h"
#include "reflector.h"

/* Set by user space before load; read-only (and known) to the verifier. */
const volatile struct reflector_cfg cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct reflector_stats);
} stats SEC(".maps");

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define TCP_FLAGS_OFF 13
#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

#define REPLY_MSS 1460
#define REPLY_MSS_V6 1440
#define REPLY_TTL 64
#define REPLY_WINDOW 65535
/* TCP header of the reply: with the MSS option, and without. */
#define REPLY_TCP_LEN_MSS 24
#define REPLY_TCP_LEN_BARE 20

#define COUNT(field)                                    \
	do {                                            \
		__u32 zero = 0;                         \
		struct reflector_stats *s;              \
		s = bpf_map_lookup_elem(&stats, &zero); \
		if (s)                                  \
			s->field++;                     \
	} while (0)

#define PASS(field)              \
	do {                     \
		COUNT(field);    \
		return XDP_PASS; \
	} while (0)

static __always_inline __u32 isn_of(__u32 key, __u32 remote_addr, __u32 ports)
{
	__u32 h = key;

	h = (h ^ remote_addr) * 0x9e3779b1;
	h = (h ^ ports) * 0x85ebca77;
	return h ^ (h >> 16);
}

static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u8 mac[ETH_ALEN];

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
}

/*
 * The TCP header of the SYN-ACK, in place of the SYN's (tcp_len bytes
 * readable, a constant at each call), checksum left zero: ports swapped,
 * <SEQ=ISS><ACK=SYN's SEQ + 1><CTL=SYN,ACK> (RFC 9293 §3.5), the ISN mixed
 * from `remote` (a word of the client's address) and the ports.
 */
static __always_inline void synack_tcp(struct tcphdr *tcp, const __u32 tcp_len, __u32 remote, __u16 mss)
{
	__u8 *b = (__u8 *)tcp;
	__u16 port = tcp->source;

	tcp->source = tcp->dest;
	tcp->dest = port;
	tcp->ack_seq = bpf_htonl(bpf_ntohl(tcp->seq) + 1);
	tcp->seq = bpf_htonl(isn_of(cfg.isn_key, remote, ((__u32)tcp->source << 16) | port));
	b[TCP_FLAGS_OFF - 1] = (tcp_len / 4) << 4;
	b[TCP_FLAGS_OFF] = TCP_SYN | TCP_ACK;
	tcp->window = bpf_htons(REPLY_WINDOW);
	tcp->check = 0;
	tcp->urg_ptr = 0;
	if (tcp_len == REPLY_TCP_LEN_MSS) {
		b[20] = 2; /* kind MSS (RFC 9293 §3.2) */
		b[21] = 4;
		b[22] = mss >> 8;
		b[23] = mss & 0xff;
	}
}

/*
 * Rewrites the SYN at eth/ip/tcp (tcp_len bytes of TCP header readable, a
 * constant at each call) into its SYN-ACK with a tcp_len-byte TCP header.
 */
static __always_inline void synack_in_place(struct ethhdr *eth, struct iphdr *ip, struct tcphdr *tcp,
					    const __u32 tcp_len)
{
	__u32 addr, sum;

	swap_macs(eth);

	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	ip->tos = 0;
	ip->tot_len = bpf_htons(sizeof(*ip) + tcp_len);
	ip->id = 0;
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = REPLY_TTL;
	ip->check = 0;
	ip->check = csum_fold(csum_words((const __u16 *)ip, sizeof(*ip) / 2));

	synack_tcp(tcp, tcp_len, addr, REPLY_MSS);

	/* Pseudo-header: source, destination, zero + protocol, TCP length. */
	sum = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16);
	sum += bpf_htons(IPPROTO_TCP) + bpf_htons(tcp_len);
	sum += csum_words((const __u16 *)tcp, tcp_len / 2);
	tcp->check = csum_fold(sum);
}

/* The IPv6 twin of synack_in_place. */
static __always_inline void synack_in_place_v6(struct ethhdr *eth, struct ipv6hdr *ip6, struct tcphdr *tcp,
					       const __u32 tcp_len)
{
	struct in6_addr addr;
	__u32 sum;

	swap_macs(eth);

	addr = ip6->saddr;
	ip6->saddr = ip6->daddr;
	ip6->daddr = addr;
	/* Version 6, traffic class 0, flow label 0. */
	((__u8 *)ip6)[0] = 0x60;
	((__u8 *)ip6)[1] = 0;
	((__u8 *)ip6)[2] = 0;
	((__u8 *)ip6)[3] = 0;
	ip6->payload_len = bpf_htons(tcp_len);
	ip6->hop_limit = REPLY_TTL;

	synack_tcp(tcp, tcp_len, addr.in6_u.u6_addr32[3], REPLY_MSS_V6);

	/* RFC 8200 §8.1: source, destination, upper-layer length, next header. */
	sum = csum_words((const __u16 *)&ip6->saddr, 16);
	sum += bpf_htons(tcp_len) + bpf_htons(IPPROTO_TCP);
	sum += csum_words((const __u16 *)tcp, tcp_len / 2);
	tcp->check = csum_fold(sum);
}

static __always_inline int is_vip6(const struct in6_addr *a)
{
	const __u32 *w = a->in6_u.u6_addr32;
	/* Through a volatile pointer: cfg is set after compilation. */
	const volatile __u32 *v = (const volatile __u32 *)cfg.vip6;
	__u32 v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];

	return (v0 | v1 | v2 | v3) && w[0] == v0 && w[1] == v1 && w[2] == v2 && w[3] == v3;
}

/*
 * Sends the rewritten frame back: the SYN's remaining options and any
 * payload or padding cut. Should the helper refuse, they go out as Ethernet
 * padding past the IP packet, which the receiver ignores: the reply is valid
 * either way.
 */
static __always_inline int reply(struct xdp_md *ctx, __u32 frame_len, __u32 reply_len)
{
	if (frame_len > reply_len)
		bpf_xdp_adjust_tail(ctx, (int)reply_len - (int)frame_len);
	COUNT(tx);
	return XDP_TX;
}

/* An IPv6 frame (eth->h_proto checked): a SYN to (vip6, port) answered. */
static __always_inline int reflect_v6(struct xdp_md *ctx, struct ethhdr *eth, void *data_end, __u32 frame_len)
{
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip6 + 1);
	__u32 payload, doff, reply_len;
	__u8 flags;

	if ((void *)(ip6 + 1) > data_end)
		PASS(pass_other);
	if (ip6->version != 6 || ip6->nexthdr != IPPROTO_TCP || !is_vip6(&ip6->daddr))
		PASS(pass_other);
	payload = bpf_ntohs(ip6->payload_len);
	if (payload < sizeof(*tcp) || sizeof(*eth) + sizeof(*ip6) + payload > frame_len)
		PASS(pass_malformed);
	if ((void *)(tcp + 1) > data_end)
		PASS(pass_malformed);
	if (tcp->dest != cfg.port)
		PASS(pass_other);
	doff = (__u32)tcp->doff * 4;
	if (doff < sizeof(*tcp) || doff > payload)
		PASS(pass_malformed);
	flags = ((__u8 *)tcp)[TCP_FLAGS_OFF];
	if ((flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) != TCP_SYN)
		PASS(pass_not_syn);

	if ((void *)tcp + REPLY_TCP_LEN_MSS <= data_end) {
		synack_in_place_v6(eth, ip6, tcp, REPLY_TCP_LEN_MSS);
		reply_len = sizeof(*eth) + sizeof(*ip6) + REPLY_TCP_LEN_MSS;
	} else {
		synack_in_place_v6(eth, ip6, tcp, REPLY_TCP_LEN_BARE);
		reply_len = sizeof(*eth) + sizeof(*ip6) + REPLY_TCP_LEN_BARE;
	}
	return reply(ctx, frame_len, reply_len);
}

SEC("xdp")
int reflector_xdp_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame_len = (__u32)(data_end - data);
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);
	__u32 tot_len, doff, reply_len;
	__u8 flags;

	if ((void *)(eth + 1) > data_end)
		PASS(pass_other);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return reflect_v6(ctx, eth, data_end, frame_len);
	if ((void *)(ip + 1) > data_end)
		PASS(pass_other);
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->version != 4 || ip->protocol != IPPROTO_TCP ||
	    !cfg.vip || ip->daddr != cfg.vip)
		PASS(pass_other);
	if (ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		PASS(pass_malformed);
	/* The frame may carry Ethernet padding past the IP packet, never less. */
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < sizeof(*ip) + sizeof(*tcp) || sizeof(*eth) + tot_len > frame_len)
		PASS(pass_malformed);
	if ((void *)(tcp + 1) > data_end)
		PASS(pass_malformed);
	if (tcp->dest != cfg.port)
		PASS(pass_other);
	doff = (__u32)tcp->doff * 4;
	if (doff < sizeof(*tcp) || sizeof(*ip) + doff > tot_len)
		PASS(pass_malformed);
	flags = ((__u8 *)tcp)[TCP_FLAGS_OFF];
	if ((flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) != TCP_SYN)
		PASS(pass_not_syn);

	/* Room for the MSS option: any SYN with options, or a padded bare one. */
	if ((void *)tcp + REPLY_TCP_LEN_MSS <= data_end) {
		synack_in_place(eth, ip, tcp, REPLY_TCP_LEN_MSS);
		reply_len = sizeof(*eth) + sizeof(*ip) + REPLY_TCP_LEN_MSS;
	} else {
		synack_in_place(eth, ip, tcp, REPLY_TCP_LEN_BARE);
		reply_len = sizeof(*eth) + sizeof(*ip) + REPLY_TCP_LEN_BARE;
	}
	return reply(ctx, frame_len, reply_len);
}

char _license[] SEC("license") = "Dual MIT/GPL";
