/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * csum.h: the Internet checksum (RFC 1071) for the XDP programs. The sum is
 * byte-order independent (RFC 1071 §2(B)), so words are summed as loaded
 * and the folded result stored as is.
 */
#ifndef FLOODGATE_CSUM_H
#define FLOODGATE_CSUM_H

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Sum of `n` 16-bit words at `p`; `n` is a constant at every call. */
static __always_inline __u32 csum_words(const __u16 *p, const int n)
{
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < n; i++)
		sum += p[i];
	return sum;
}

#endif /* FLOODGATE_CSUM_H */
