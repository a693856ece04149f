/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Field rewrites that keep the IPv4 and L4 checksums valid.
 *
 * Every rewrite stores the new bytes and patches the checksums covering them
 * incrementally with the kernel helpers, which also keep skb->csum right for
 * CHECKSUM_COMPLETE packets. All helpers here move packet data: reparse
 * before touching packet pointers again. */
#pragma once

#include "common.h"

/* Absolute offsets of the outer IPv4 header's fields. */
#define IP_OFF ETH_HLEN
#define IP_TTL_OFF (IP_OFF + offsetof(struct iphdr, ttl))
#define IP_CSUM_OFF (IP_OFF + offsetof(struct iphdr, check))
#define IP_SADDR_OFF (IP_OFF + offsetof(struct iphdr, saddr))
#define IP_DADDR_OFF (IP_OFF + offsetof(struct iphdr, daddr))

/* Offsets inside an L4 header. TCP and UDP ports sit at the same place. */
#define L4_SPORT_OFF offsetof(struct udphdr, source)
#define L4_DPORT_OFF offsetof(struct udphdr, dest)
#define ICMP_CSUM_OFF offsetof(struct icmphdr, checksum)
#define ICMP_ECHO_ID_OFF offsetof(struct icmphdr, un.echo.id)

_Static_assert(offsetof(struct tcphdr, source) == L4_SPORT_OFF && offsetof(struct tcphdr, dest) == L4_DPORT_OFF,
	       "TCP and UDP ports must share offsets");

/* Offset of the L4 checksum inside its header; 0 for protocols we don't NAT. */
static __always_inline __u32 l4_csum_field(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return offsetof(struct tcphdr, check);
	case IPPROTO_UDP:
		return offsetof(struct udphdr, check);
	case IPPROTO_ICMP:
		return ICMP_CSUM_OFF;
	}
	return 0;
}

/* UDP checksum 0 means "none": the helper must leave it 0, and a computed 0
 * must become 0xffff. */
static __always_inline __u64 l4_csum_flags(__u8 proto)
{
	return proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Rewrite an IPv4 address at off (in the outer header). l4_csum is the
 * absolute offset of a TCP/UDP checksum whose pseudo header includes the
 * address, or 0 (ICMP has no pseudo header). */
static __always_inline int csum_rewrite_addr(struct __sk_buff *skb, __u32 off, __be32 from, __be32 to, __u32 l4_csum,
					     __u64 l4_flags)
{
	if (l4_csum && bpf_l4_csum_replace(skb, l4_csum, from, to, BPF_F_PSEUDO_HDR | l4_flags | sizeof(to)))
		return -1;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, from, to, sizeof(to)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0) ? -1 : 0;
}

/* Rewrite a 16-bit L4 field (port, echo id) covered by the checksum at l4_csum. */
static __always_inline int csum_rewrite_l4_16(struct __sk_buff *skb, __u32 off, __be16 from, __be16 to, __u32 l4_csum,
					      __u64 l4_flags)
{
	if (bpf_l4_csum_replace(skb, l4_csum, from, to, l4_flags | sizeof(to)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0) ? -1 : 0;
}

/* Rewrite a translated packet's L4 identifiers, its checksum at csum_off:
 * TCP or UDP ports, or (echo) an ICMP or ICMPv6 echo's id, which is on the
 * source side of a request (echo_req), the destination side of a reply,
 * at the same offset in both ICMPs. Each only if it changes. */
static __always_inline int csum_rewrite_ids(struct __sk_buff *skb, __u32 l4_off, __u32 csum_off, __u64 flags, int echo,
					    int echo_req, __be16 sport, __be16 new_sport, __be16 dport,
					    __be16 new_dport)
{
	if (echo) {
		__be16 from = echo_req ? sport : dport;
		__be16 to = echo_req ? new_sport : new_dport;

		return from != to && csum_rewrite_l4_16(skb, l4_off + ICMP_ECHO_ID_OFF, from, to, csum_off, 0) ? -1 : 0;
	}
	if (new_sport != sport && csum_rewrite_l4_16(skb, l4_off + L4_SPORT_OFF, sport, new_sport, csum_off, flags))
		return -1;
	if (new_dport != dport && csum_rewrite_l4_16(skb, l4_off + L4_DPORT_OFF, dport, new_dport, csum_off, flags))
		return -1;
	return 0;
}

/* Rewrite an address inside the IP header embedded in an ICMP error; field
 * is its offset in struct iphdr. Fixing the inner header checksum by the
 * same delta keeps the one's complement sum of the inner header, and so the
 * outer ICMP checksum, unchanged. */
static __always_inline int csum_rewrite_inner_addr(struct __sk_buff *skb, __u32 inner_ip, __u32 field, __be32 from,
						   __be32 to)
{
	if (bpf_l3_csum_replace(skb, inner_ip + offsetof(struct iphdr, check), from, to, sizeof(to)))
		return -1;
	return bpf_skb_store_bytes(skb, inner_ip + field, &to, sizeof(to), 0) ? -1 : 0;
}

static __always_inline __sum16 csum_fold32(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__sum16)~sum;
}

/* Rewrite the addresses of an IPv4 header and decrement its TTL with one
 * load and one store of its first 20 bytes (options are left alone): two to
 * four helper calls fewer than field by field. The header checksum is
 * patched incrementally (RFC 1624, eqn. 3), never recomputed, so the
 * header's one's complement sum is unchanged: a valid checksum stays valid,
 * an invalid one stays invalid (recomputing would launder it), and skb->csum
 * of a CHECKSUM_COMPLETE packet stays right. */
static __always_inline int ip_rewrite(struct __sk_buff *skb, __be32 saddr, __be32 daddr)
{
	struct iphdr ip;
	__u16 *w = (__u16 *)&ip;
	__u32 sum;

	_Static_assert(offsetof(struct iphdr, ttl) == 8 && offsetof(struct iphdr, saddr) == 12 &&
			       offsetof(struct iphdr, daddr) == 16,
		       "ip_rewrite patches the words at 8, 12..19");
	if (bpf_skb_load_bytes(skb, IP_OFF, &ip, sizeof(ip)))
		return -1;
	/* One's complement sums are byte-order independent: the words are
	 * summed as they lie in memory. ~HC + ~m + m'. */
	sum = (__u16)~ip.check;
	sum += (__u16)~w[4] + (__u16)~w[6] + (__u16)~w[7] + (__u16)~w[8] + (__u16)~w[9];
	ip.saddr = saddr;
	ip.daddr = daddr;
	ip.ttl--;
	sum += w[4] + w[6] + w[7] + w[8] + w[9];
	ip.check = csum_fold32(sum);
	return bpf_skb_store_bytes(skb, IP_OFF, &ip, sizeof(ip), 0) ? -1 : 0;
}

/* Decrement the TTL; the caller has checked it is > 1. */
static __always_inline int csum_dec_ttl(struct __sk_buff *skb, __u8 ttl)
{
	__u8 next = ttl - 1;

	/* The checksum sums 16-bit words: TTL is the high byte of its word
	 * (protocol the low one), so the delta is the TTL shifted up. */
	_Static_assert(offsetof(struct iphdr, ttl) % 2 == 0, "TTL must be the high byte of its checksum word");
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, bpf_htons((__u16)ttl << 8), bpf_htons((__u16)next << 8),
				sizeof(__u16)))
		return -1;
	return bpf_skb_store_bytes(skb, IP_TTL_OFF, &next, 1, 0) ? -1 : 0;
}

/* Rewrite both MACs with one store: h_dest and h_source are adjacent. */
static __always_inline int store_macs(struct __sk_buff *skb, const __u8 *dst, const __u8 *src)
{
	__u8 macs[2 * ETH_ALEN];

	__builtin_memcpy(macs, dst, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, src, ETH_ALEN);
	return bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), macs, sizeof(macs), 0) ? -1 : 0;
}
