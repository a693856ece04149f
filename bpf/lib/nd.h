/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv6 neighbour discovery (RFC 4861): checking a container's neighbour
 * solicitations and advertisements, and answering a solicitation in place,
 * as arp.h answers ARP. */
#pragma once

#include "common.h"
#include "csum.h"
#include "ipv6.h"

/* A solicitation or advertisement: the ICMPv6 header, then a target. */
struct nd_msg {
	__u8 type;
	__u8 code;
	__sum16 csum;
	__be32 flags; /* NA: R, S, O; NS: reserved */
	struct ip6_key target;
};

/* A source (1) or target (2) link-layer address option for Ethernet. */
struct nd_opt_lla {
	__u8 type;
	__u8 len; /* in units of 8 bytes */
	__u8 lladdr[ETH_ALEN];
};

_Static_assert(sizeof(struct nd_msg) == 24 && sizeof(struct nd_opt_lla) == 8, "ND layouts");

enum nd_opt_type {
	ND_OPT_SOURCE_LLA = 1,
	ND_OPT_TARGET_LLA = 2,
};

#define ND_NA_ROUTER bpf_htonl(0x80000000)
#define ND_NA_SOLICITED bpf_htonl(0x40000000)
#define ND_NA_OVERRIDE bpf_htonl(0x20000000)

/* The options an NS or NA may carry that the walk reads: more, and the
 * message is refused (one it cannot read may name another MAC). */
#define ND_MAX_OPTS 4

enum nd_check {
	ND_OK = 0,
	ND_MALFORMED = 1, /* what RFC 4861 7.1 says receivers discard */
	ND_SPOOFED = 2,   /* a link-layer address option not naming mac */
};

/* mac_equal for an address at an odd offset, as in an option. */
static __always_inline int lladdr_equal(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

/* Walks the options of the NS or NA at off (to end): every link-layer
 * address option, source or target, must be an Ethernet one naming mac.
 * Counts the options in *n and the source link-layer ones in *sllao. */
static __always_inline enum nd_check nd_check_options(struct __sk_buff *skb, __u32 off, __u32 end, const __u8 *mac,
						      __u32 *n, __u32 *sllao)
{
	struct nd_opt_lla o;
	__u32 i;

	*sllao = 0;
	for (i = 0; i < ND_MAX_OPTS && off < end; i++) {
		if (off + sizeof(o) > end || bpf_skb_load_bytes(skb, off, &o, sizeof(o)))
			return ND_MALFORMED; /* options are multiples of 8 bytes */
		if (!o.len)
			return ND_MALFORMED;
		if (o.type == ND_OPT_SOURCE_LLA || o.type == ND_OPT_TARGET_LLA) {
			if (o.len != 1 || !lladdr_equal(o.lladdr, mac))
				return ND_SPOOFED;
			*sllao += o.type == ND_OPT_SOURCE_LLA;
		}
		off += (__u32)o.len * 8;
	}
	if (off > end)
		return ND_MALFORMED;
	if (off < end)
		return ND_SPOOFED; /* more options than the walk reads */
	*n = i;
	return ND_OK;
}

static __always_inline __u16 csum_fold64(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* An NA as nd_answer writes it: everything after the Ethernet header. */
struct nd_na_packet {
	struct ip6_hdr ip;
	struct nd_msg na;
	struct nd_opt_lla tllao;
};

_Static_assert(sizeof(struct nd_na_packet) == IPV6_HLEN + 32, "an NA with one option is 72 bytes");
_Static_assert(offsetof(struct nd_na_packet, ip.saddr) + 64 == sizeof(struct nd_na_packet),
	       "the addresses and the message are contiguous");

/* The exact shape nd_answer rewrites: an NS with nothing but a source
 * link-layer address option and no extension header, 86 bytes. */
#define ND_NS_FRAME_LEN (ETH_HLEN + sizeof(struct nd_na_packet))

/* Rewrites the solicitation in the frame (of the shape above; its source is
 * saddr, its sender's MAC sender_mac) into the solicited advertisement that
 * target is at mac, from target to saddr, and addresses the frame from mac
 * to sender_mac. router sets the R flag. 0 on success. */
static __always_inline int nd_answer(struct __sk_buff *skb, const struct ip6_key *target, const struct ip6_key *saddr,
				     const __u8 *mac, const __u8 *sender_mac, int router)
{
	struct nd_na_packet a = {};
	__s64 sum;

	a.ip.vtcfl = bpf_htonl(6 << 28);
	a.ip.payload_len = bpf_htons(sizeof(a.na) + sizeof(a.tllao));
	a.ip.nexthdr = NH_ICMPV6;
	a.ip.hop_limit = 255;
	a.ip.saddr = *target;
	a.ip.daddr = *saddr;
	a.na.type = ICMP6_NEIGH_ADVERT;
	a.na.flags = ND_NA_SOLICITED | ND_NA_OVERRIDE | (router ? ND_NA_ROUTER : 0);
	a.na.target = *target;
	a.tllao.type = ND_OPT_TARGET_LLA;
	a.tllao.len = 1;
	__builtin_memcpy(a.tllao.lladdr, mac, ETH_ALEN);
	/* The pseudo-header (RFC 8200 8.1) is the addresses, laid out right
	 * before the message, and the upper-layer length and next header,
	 * each a 32-bit word. One's complement sums do not care for byte
	 * order: the words are added as they lie in memory. */
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&a.ip.saddr, 64, 0);
	if (sum < 0)
		return -1;
	sum += (__u32)bpf_htonl(sizeof(a.na) + sizeof(a.tllao)) + (__u32)bpf_htonl(NH_ICMPV6);
	a.na.csum = csum_fold64(sum);
	if (store_macs(skb, sender_mac, mac) || bpf_skb_store_bytes(skb, ETH_HLEN, &a, sizeof(a), 0))
		return -1;
	return 0;
}
