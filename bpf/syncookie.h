/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * syncookie.h: SYN cookies answered in XDP (RFC 4987 §3.6), for floodgate.bpf.c.
 *
 * For a VIP with FG_VIP_XDP_COOKIES, a SYN is turned in place into the
 * cookie SYN-ACK the engine would send (tcp/endpoint.rs, send_cookie) and
 * sent back out with XDP_TX. The engine never sees the SYN; it rebuilds the
 * connection from the cookie when the final ACK arrives (cookie_ack), as for
 * a cookie it sent itself. For that the two must agree bit for bit:
 *
 *   - the cookie and the timestamp offset are tcp/secret.rs's: SipHash-1-3
 *     over the same three little-endian words under the engine's keys, which
 *     user space writes into `cookie_cfg` with the engine's clock zero;
 *   - "now" is the engine's clock: CLOCK_MONOTONIC (bpf_ktime_get_ns) less
 *     that zero, in whole microseconds, then as the engine divides it;
 *   - the options are parsed as wire/tcp.rs parses them and written in the
 *     order it writes them (MSS; SACK-Permitted or NOP NOP, then TS; or NOP
 *     NOP SACK-Permitted; then NOP WS), with the listener's settings from
 *     the VIP's `struct fg_vip`;
 *   - IPv4 as the engine emits it: TOS 0, ID 0, DF, TTL 64; IPv6 with
 *     traffic class and flow label 0, hop limit 64.
 *
 * Only the common shape is answered here: an untagged Ethernet frame to our
 * unicast MAC, IPv4 without options or IPv6 without extension headers, a
 * SYN (none of ACK, RST, FIN) without payload whose checksums are right and
 * whose options parse. For IPv6 the tuple hash runs over six words, as in
 * secret.rs. Anything
 * else returns -1 and goes to the engine, which answers it (counted in
 * syn_cookie_fallback). The checksums are RFC 1071 sums, byte-order
 * independent, of words summed as loaded.
 *
 * The BPF target is little endian here (clang -target bpf on x86_64 and
 * aarch64 hosts), so a 32-bit load of an address gives the same word as
 * secret.rs's little-endian reading of its bytes.
 */
#ifndef FLOODGATE_SYNCOOKIE_H
#define FLOODGATE_SYNCOOKIE_H

#include "csum.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define TCP_ECE 0x40
#define TCP_CWR 0x80

#define OPT_EOL 0
#define OPT_NOP 1
#define OPT_MSS 2
#define OPT_WS 3
#define OPT_SACK_PERM 4
#define OPT_SACK 5
#define OPT_TS 8

/* secret.rs: 64-second epochs, a 23-bit MAC, the MSS table. */
#define COOKIE_EPOCH_US 64000000ULL
#define COOKIE_MAC_BITS 23
#define COOKIE_MAC_MASK ((1U << COOKIE_MAC_BITS) - 1)
#define FAMILY_V4 (4ULL << 32)
#define FAMILY_V6 (6ULL << 32)
#define MAX_WINDOW_SHIFT 14
/* The MSS of a peer that sent no option: RFC 9293 §3.7.1, RFC 8200 §5. */
#define DEFAULT_MSS 536
#define DEFAULT_MSS_V6 1220
#define MAX_SACK_BLOCKS 4
#define REPLY_TTL 64
#define IP_DF 0x4000

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                        \
	do {                            \
		v0 += v1;               \
		v1 = ROTL64(v1, 13);    \
		v1 ^= v0;               \
		v0 = ROTL64(v0, 32);    \
		v2 += v3;               \
		v3 = ROTL64(v3, 16);    \
		v3 ^= v2;               \
		v0 += v3;               \
		v3 = ROTL64(v3, 21);    \
		v3 ^= v0;               \
		v2 += v1;               \
		v1 = ROTL64(v1, 17);    \
		v1 ^= v2;               \
		v2 = ROTL64(v2, 32);    \
	} while (0)

#define SIPWORD(m)        \
	do {              \
		v3 ^= (m); \
		SIPROUND;  \
		v0 ^= (m); \
	} while (0)

/* SipHash-1-3 of the 24-byte message m0 m1 m2 (secret.rs, siphash13). */
static __always_inline __u64 siphash13_3(const __u64 *k, __u64 m0, __u64 m1, __u64 m2)
{
	__u64 v0 = k[0] ^ 0x736f6d6570736575ULL;
	__u64 v1 = k[1] ^ 0x646f72616e646f6dULL;
	__u64 v2 = k[0] ^ 0x6c7967656e657261ULL;
	__u64 v3 = k[1] ^ 0x7465646279746573ULL;

	SIPWORD(m0);
	SIPWORD(m1);
	SIPWORD(m2);
	SIPWORD(24ULL << 56);
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static __always_inline __u32 be32_at(const __u8 *b)
{
	return ((__u32)b[0] << 24) | ((__u32)b[1] << 16) | ((__u32)b[2] << 8) | b[3];
}

static __always_inline void put_be32(__u8 *b, __u32 v)
{
	b[0] = v >> 24;
	b[1] = v >> 16;
	b[2] = v >> 8;
	b[3] = v;
}

/* What a SYN's options say (wire/tcp.rs, TcpOptions::parse_any). */
struct syn_opts {
	__u32 tsval;
	__u16 mss;
	__u8 has_mss;
	__u8 has_ws;
	__u8 ws;
	__u8 sack;
	__u8 has_ts;
};

/* A TCP header copied out of the frame, zero past its data offset; room
 * past the 60 bytes of the longest header for a TS option's last reads. */
struct tcp_hdr_buf {
	__u8 b[80];
};

/*
 * Walks the options in h->b[20..doff]; 0 if they parse, -1 where the engine
 * would reject them.
 *
 * The walk visits every byte position as a constant (the loop is unrolled)
 * and acts where the next option starts, so no index into the header is a
 * variable: the verifier need not track the option offsets exactly, and
 * checks the walk in a few thousand steps instead of one path per option
 * layout. A global function, verified once on its own.
 */
__attribute__((noinline)) int fg_parse_syn_opts(const struct tcp_hdr_buf *h, __u32 doff, struct syn_opts *o)
{
	__u32 next = 20;

	if (!h || !o || doff > 60)
		return -1;
#pragma unroll
	for (__u32 pos = 20; pos < 60; pos++) {
		__u32 kind, len;

		if (pos != next || pos >= doff)
			continue;
		kind = h->b[pos];
		if (kind == OPT_EOL)
			break;
		if (kind == OPT_NOP) {
			next = pos + 1;
			continue;
		}
		if (pos + 1 >= doff)
			return -1;
		len = h->b[pos + 1];
		if (len < 2 || pos + len > doff)
			return -1;
		switch (kind) {
		case OPT_MSS:
			if (len != 4)
				return -1;
			o->mss = ((__u16)h->b[pos + 2] << 8) | h->b[pos + 3];
			o->has_mss = 1;
			break;
		case OPT_WS:
			if (len != 3)
				return -1;
			o->ws = h->b[pos + 2] > MAX_WINDOW_SHIFT ? MAX_WINDOW_SHIFT : h->b[pos + 2];
			o->has_ws = 1;
			break;
		case OPT_SACK_PERM:
			if (len != 2)
				return -1;
			o->sack = 1;
			break;
		case OPT_SACK:
			if (len == 2 || (len - 2) % 8 != 0 || len - 2 > 8 * MAX_SACK_BLOCKS)
				return -1;
			break;
		case OPT_TS:
			if (len != 10)
				return -1;
			o->tsval = be32_at(&h->b[pos + 2]);
			o->has_ts = 1;
			break;
		default:
			break;
		}
		next = pos + len;
	}
	return 0;
}

/* secret.rs, encode_options: MSS table index, the peer's shift (15: none), SACK. */
/* secret.rs COOKIE_MSS / COOKIE_MSS_V6: the MSS rounded down to the
 * family's table, {536, 1300, 1440, 1460} or {1220, 1420, 1440, 8940}. */
static __always_inline __u32 cookie_data(__u16 mss, const struct syn_opts *o, __u8 peer_ws, __u8 sack, int v6)
{
	__u32 idx = v6 ? (mss >= 8940 ? 3 : mss >= 1440 ? 2 : mss >= 1420 ? 1 : 0)
		       : (mss >= 1460 ? 3 : mss >= 1440 ? 2 : mss >= 1300 ? 1 : 0);
	__u32 ws = peer_ws ? o->ws : 15;

	return (idx << 5) | (ws << 1) | sack;
}

/* SipHash-1-3 of the 48-byte message m0..m5 (secret.rs, the IPv6 tuple). */
static __always_inline __u64 siphash13_6(const __u64 *k, __u64 m0, __u64 m1, __u64 m2, __u64 m3, __u64 m4,
					 __u64 m5)
{
	__u64 v0 = k[0] ^ 0x736f6d6570736575ULL;
	__u64 v1 = k[1] ^ 0x646f72616e646f6dULL;
	__u64 v2 = k[0] ^ 0x6c7967656e657261ULL;
	__u64 v3 = k[1] ^ 0x7465646279746573ULL;

	SIPWORD(m0);
	SIPWORD(m1);
	SIPWORD(m2);
	SIPWORD(m3);
	SIPWORD(m4);
	SIPWORD(m5);
	SIPWORD(48ULL << 56);
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* secret.rs, hash_tuple's words before `extra`: IPv4 (local, remote)
 * addresses, ports | family; IPv6 local and remote as two little-endian
 * words each, ports | family. */
struct tuple_words {
	__u64 w[5];
	__u8 v6;
};

static __always_inline __u64 tuple_hash(const __u64 *k, const struct tuple_words *t, __u64 extra)
{
	if (t->v6)
		return siphash13_6(k, t->w[0], t->w[1], t->w[2], t->w[3], t->w[4], extra);
	return siphash13_3(k, t->w[0], t->w[1], extra);
}

/*
 * The TCP header of the cookie SYN-ACK answering the SYN whose header is
 * `hdr` (options parsed into `o`), into `out` (40 bytes, zeroed), checksum
 * field left zero: endpoint.rs, send_cookie. Returns its length.
 */
static __always_inline __u32 cookie_synack(const __u8 *hdr, const struct syn_opts *o, const struct fg_vip *vip,
					   const struct fg_cookie_cfg *cfg, const struct tuple_words *t, __u64 now_us,
					   __u8 *out)
{
	__u64 counter = now_us / COOKIE_EPOCH_US, h;
	__u32 peer_isn = be32_at(&hdr[4]), data_word, cookie, tcp_len, ts;
	__u16 mss_eff;
	__u8 peer_ws, sack, ecn_ok;

	mss_eff = o->has_mss ? o->mss : t->v6 ? DEFAULT_MSS_V6 : DEFAULT_MSS;
	if (mss_eff > vip->mss)
		mss_eff = vip->mss;
	peer_ws = o->has_ws && vip->window_scale > 0;
	sack = vip->sack && o->sack;
	/* ecn.rs: an ECN-setup SYN (ECE and CWR), accepted only where the
	 * TSval can carry the answer back. */
	ecn_ok = (vip->flags & FG_VIP_ECN) && vip->timestamps && o->has_ts &&
		 (hdr[13] & (TCP_ECE | TCP_CWR)) == (TCP_ECE | TCP_CWR);
	data_word = cookie_data(mss_eff, o, peer_ws, sack, t->v6);
	h = tuple_hash(cfg->cookie_key, t, (counter << 40) ^ ((__u64)data_word << 32) ^ (__u64)peer_isn);
	cookie = ((__u32)(counter & 3) << 30) | (data_word << COOKIE_MAC_BITS) | ((__u32)h & COOKIE_MAC_MASK);

	/* Ports swapped, <SEQ=cookie><ACK=SEG.SEQ+1><CTL=SYN,ACK>. */
	out[0] = hdr[2];
	out[1] = hdr[3];
	out[2] = hdr[0];
	out[3] = hdr[1];
	put_be32(&out[4], cookie);
	put_be32(&out[8], peer_isn + 1);
	out[13] = TCP_SYN | TCP_ACK | (ecn_ok ? TCP_ECE : 0);
	out[14] = vip->window >> 8;
	out[15] = vip->window & 0xff;
	out[20] = OPT_MSS;
	out[21] = 4;
	out[22] = vip->mss >> 8;
	out[23] = vip->mss & 0xff;
	tcp_len = 24;
	if (vip->timestamps && o->has_ts) {
		h = tuple_hash(cfg->isn_key, t, 0);
		out[24] = sack ? OPT_SACK_PERM : OPT_NOP;
		out[25] = sack ? 2 : OPT_NOP;
		out[26] = OPT_TS;
		out[27] = 10;
		/* ecn.rs, cookie_tsval: the low bit says ECN, never ahead of the clock. */
		ts = (__u32)(now_us / 1000) + (__u32)(h >> 32);
		put_be32(&out[28], ts - ((ts ^ ecn_ok) & 1));
		put_be32(&out[32], o->tsval);
		tcp_len = 36;
	} else if (sack) {
		out[24] = OPT_NOP;
		out[25] = OPT_NOP;
		out[26] = OPT_SACK_PERM;
		out[27] = 2;
		tcp_len = 28;
	}
	if (peer_ws) {
		if (tcp_len == 24) {
			out[24] = OPT_NOP;
			out[25] = OPT_WS;
			out[26] = 3;
			out[27] = vip->window_scale;
		} else if (tcp_len == 28) {
			out[28] = OPT_NOP;
			out[29] = OPT_WS;
			out[30] = 3;
			out[31] = vip->window_scale;
		} else {
			out[36] = OPT_NOP;
			out[37] = OPT_WS;
			out[38] = 3;
			out[39] = vip->window_scale;
		}
		tcp_len += 4;
	}
	out[12] = (tcp_len / 4) << 4;
	return tcp_len;
}

/* The engine's clock in microseconds (see the top of this file); 0 with
 * `*ok` cleared before its zero. */
static __always_inline __u64 engine_now_us(const struct fg_cookie_cfg *cfg, int *ok)
{
	__u64 now_ns = bpf_ktime_get_ns();

	*ok = now_ns >= cfg->clock_base_ns;
	return *ok ? (now_ns - cfg->clock_base_ns) / 1000 : 0;
}

/* The IPv6 answer: eth + 40-byte header + SYN, no extension headers. Not
 * inlined, nor is the IPv4 one, so the two buffers never share one stack
 * frame (BPF's 512 bytes). */
static __attribute__((noinline)) int answer_syn_cookie6(struct xdp_md *ctx, const struct fg_vip *vip,
					      const struct fg_cookie_cfg *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame_len = (__u32)(data_end - data);
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip6 + 1);
	struct tcp_hdr_buf th = {};
	__u8 *hdr = th.b;
	__u8 out[40] __attribute__((aligned(4))) = {};
	__u8 macs[12];
	struct ipv6hdr nip = {};
	struct syn_opts o = {};
	struct tuple_words t = {};
	__u64 now_us;
	__u32 doff, sum, tcp_len, reply_len;
	int ok;

	if ((void *)(tcp + 1) > data_end)
		return -1;
	if (ip6->nexthdr != IPPROTO_TCP || (eth->h_dest[0] & 1))
		return -1;
	doff = (__u32)tcp->doff * 4;
	if (doff < 20 || doff > 60 || bpf_ntohs(ip6->payload_len) != doff)
		return -1;
	if ((((__u8 *)tcp)[13] & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) != TCP_SYN)
		return -1;
	if (bpf_xdp_load_bytes(ctx, sizeof(*eth) + sizeof(*ip6), hdr, doff))
		return -1;
	/* RFC 8200 §8.1 pseudo-header: both addresses, length, next header. */
	sum = csum_words((const __u16 *)&ip6->saddr, 16);
	sum += bpf_htons(IPPROTO_TCP) + bpf_htons(doff);
	sum += csum_words((const __u16 *)hdr, 30);
	if (csum_fold(sum) != 0)
		return -1;
	if (fg_parse_syn_opts(&th, doff, &o))
		return -1;
	now_us = engine_now_us(cfg, &ok);
	if (!ok)
		return -1;

	/* Local is the SYN's destination. */
	__builtin_memcpy(&t.w[0], &ip6->daddr, 16);
	__builtin_memcpy(&t.w[2], &ip6->saddr, 16);
	t.w[4] = ((__u64)bpf_ntohs(tcp->dest) << 16) | bpf_ntohs(tcp->source) | FAMILY_V6;
	t.v6 = 1;
	tcp_len = cookie_synack(hdr, &o, vip, cfg, &t, now_us, out);

	sum = csum_words((const __u16 *)&ip6->saddr, 16);
	sum += bpf_htons(IPPROTO_TCP) + bpf_htons(tcp_len);
	sum += csum_words((const __u16 *)out, 20);
	*(__u16 *)&out[16] = csum_fold(sum);

	/* As the engine emits it: traffic class 0, flow label 0, hop limit 64. */
	nip.version = 6;
	nip.payload_len = bpf_htons(tcp_len);
	nip.nexthdr = IPPROTO_TCP;
	nip.hop_limit = REPLY_TTL;
	nip.saddr = ip6->daddr;
	nip.daddr = ip6->saddr;

	__builtin_memcpy(macs, eth->h_source, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, eth->h_dest, ETH_ALEN);

	/* At least 14 + 40 + 24 = 78 bytes: never padded. */
	reply_len = sizeof(*eth) + sizeof(nip) + tcp_len;
	if (frame_len != reply_len && bpf_xdp_adjust_tail(ctx, (int)reply_len - (int)frame_len))
		return -1;
	if (bpf_xdp_store_bytes(ctx, 0, macs, sizeof(macs)) ||
	    bpf_xdp_store_bytes(ctx, sizeof(*eth), &nip, sizeof(nip)) ||
	    bpf_xdp_store_bytes(ctx, sizeof(*eth) + sizeof(nip), out, tcp_len))
		return XDP_DROP;
	return XDP_TX;
}

/* The IPv4 answer: eth + 20-byte header + SYN. */
static __attribute__((noinline)) int answer_syn_cookie4(struct xdp_md *ctx, const struct fg_vip *vip,
					     const struct fg_cookie_cfg *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame_len = (__u32)(data_end - data);
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);
	struct tcp_hdr_buf th = {};
	__u8 *hdr = th.b;
	__u8 out[40] __attribute__((aligned(4))) = {};
	__u8 macs[12];
	struct iphdr nip = {};
	struct syn_opts o = {};
	struct tuple_words t = {};
	__u64 now_us;
	__u32 doff, sum, tcp_len, reply_len;
	int ok;

	if ((void *)(tcp + 1) > data_end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || (eth->h_dest[0] & 1))
		return -1;
	doff = (__u32)tcp->doff * 4;
	if (doff < 20 || doff > 60 || bpf_ntohs(ip->tot_len) != 20 + doff)
		return -1;
	if ((((__u8 *)tcp)[13] & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) != TCP_SYN)
		return -1;
	if (csum_fold(csum_words((const __u16 *)ip, 10)) != 0)
		return -1;
	if (bpf_xdp_load_bytes(ctx, sizeof(*eth) + sizeof(*ip), hdr, doff))
		return -1;
	sum = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16);
	sum += bpf_htons(IPPROTO_TCP) + bpf_htons(doff);
	sum += csum_words((const __u16 *)hdr, 30);
	if (csum_fold(sum) != 0)
		return -1;
	if (fg_parse_syn_opts(&th, doff, &o))
		return -1;
	now_us = engine_now_us(cfg, &ok);
	if (!ok)
		return -1;

	/* secret.rs, hash_tuple: (local, remote) addresses, ports | family. */
	t.w[0] = (__u64)ip->daddr | ((__u64)ip->saddr << 32);
	t.w[1] = ((__u64)bpf_ntohs(tcp->dest) << 16) | bpf_ntohs(tcp->source) | FAMILY_V4;
	tcp_len = cookie_synack(hdr, &o, vip, cfg, &t, now_us, out);

	/* The sum runs over all 40 bytes: the unused tail is zero. */
	sum = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16);
	sum += bpf_htons(IPPROTO_TCP) + bpf_htons(tcp_len);
	sum += csum_words((const __u16 *)out, 20);
	*(__u16 *)&out[16] = csum_fold(sum);

	nip.version = 4;
	nip.ihl = 5;
	nip.tot_len = bpf_htons(sizeof(nip) + tcp_len);
	nip.frag_off = bpf_htons(IP_DF);
	nip.ttl = REPLY_TTL;
	nip.protocol = IPPROTO_TCP;
	nip.saddr = ip->daddr;
	nip.daddr = ip->saddr;
	nip.check = csum_fold(csum_words((const __u16 *)&nip, 10));

	__builtin_memcpy(macs, eth->h_source, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, eth->h_dest, ETH_ALEN);

	/* Nothing is written until the frame has its final length, so a
	 * refusal leaves the SYN intact for the engine. */
	reply_len = sizeof(*eth) + sizeof(nip) + tcp_len;
	/* As the engine does, pad to Ethernet's 60-byte minimum: only the
	 * shortest reply (MSS alone) is shorter, by 2 bytes. */
	if (reply_len < ETH_ZLEN)
		reply_len = ETH_ZLEN;
	if (frame_len != reply_len && bpf_xdp_adjust_tail(ctx, (int)reply_len - (int)frame_len))
		return -1;
	if (bpf_xdp_store_bytes(ctx, 0, macs, sizeof(macs)) ||
	    bpf_xdp_store_bytes(ctx, sizeof(*eth), &nip, sizeof(nip)) ||
	    bpf_xdp_store_bytes(ctx, sizeof(*eth) + sizeof(nip), out, tcp_len))
		return XDP_DROP;
	/* The padding: two zero bytes, the unused tail of `out`. */
	if (tcp_len == 24 && bpf_xdp_store_bytes(ctx, ETH_ZLEN - 2, &out[40 - 2], 2))
		return XDP_DROP;
	return XDP_TX;
}

/*
 * Answers the SYN in ctx with a cookie SYN-ACK: returns XDP_TX, or -1 with
 * the frame untouched for the engine to handle, or XDP_DROP should a write
 * into the frame fail once it has the reply's length (it cannot: every
 * write is within that length; counted all the same).
 */
static __always_inline int answer_syn_cookie(struct xdp_md *ctx, const struct fg_vip *vip,
					     const struct fg_cookie_cfg *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return answer_syn_cookie6(ctx, vip, cfg);
	return answer_syn_cookie4(ctx, vip, cfg);
}

#endif /* FLOODGATE_SYNCOOKIE_H */
