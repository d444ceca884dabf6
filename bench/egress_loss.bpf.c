// SPDX-License-Identifier: GPL-2.0
/* Random loss on a device's egress, as a lossy wire would lose frames: a tc
 * (clsact, direct-action) program for bench/goodput.py, compiled there with
 * -DLOSS_PCT=P. Of IPv4 and IPv6 frames, P % are dropped with TC_ACT_STOLEN,
 * which the sending stack counts as sent (TC_ACT_SHOT, or an nftables drop on
 * output, is a local error to it: Linux's TCP would simply send the segment
 * again, and nothing would be lost). Needs one frame per skb on the device
 * (GSO and TSO off), or a drop takes a whole super-packet. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#ifndef LOSS_PCT
#error "build with -DLOSS_PCT=<percent>"
#endif

/* skb->protocol is in network byte order; the hosts are little-endian. */
#define ETH_P_IP_BE 0x0008
#define ETH_P_IPV6_BE 0xdd86

static __u32 (*bpf_get_prandom_u32)(void) = (void *)BPF_FUNC_get_prandom_u32;

__attribute__((section("tc"), used)) int egress_loss(struct __sk_buff *skb)
{
	if (skb->protocol != ETH_P_IP_BE && skb->protocol != ETH_P_IPV6_BE)
		return TC_ACT_OK;
	return bpf_get_prandom_u32() % 100 < LOSS_PCT ? TC_ACT_STOLEN : TC_ACT_OK;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
