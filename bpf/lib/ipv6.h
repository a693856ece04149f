/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv6: parsing and validation of a container's packets, and address tests.
 *
 * parse_ipv6 accepts a packet only if: the fixed header is in the frame,
 * version 6, a payload length that is not 0 (a jumbogram; BIG TCP's GSO
 * packets say 0 and take the frame's, as parse_packet does for IPv4) and
 * fits the frame, and an extension header chain of at most
 * IPV6_MAX_EXT_HDRS headers it can walk: hop-by-hop (first only), routing,
 * destination options and one fragment header, each inside the payload. A
 * fragment must not reach past 65535 and, but the last, carry a nonzero
 * multiple of 8 bytes. ICMPv6 needs its 4-byte header in a whole packet or
 * a first fragment. A chain with ESP, AH or an extension header of another
 * kind (mobility, HIP, shim6, experimental), or longer than the walk, is
 * PARSE6_EXT_HDR: whatever it hides, the datapath cannot vouch for it.
 * Other upper-layer protocols are not checked further: IPv6 is delivered
 * or handed to the stack untranslated, never rewritten. Unlike IPv4, the
 * header is copied (bpf_skb_load_bytes), so it may lie beyond the linear
 * area. */
#pragma once

#include "common.h"
#include "endpoint.h"

#define IPV6_HLEN 40
#define IPV6_MAX_EXT_HDRS 4

/* As RFC 8200 lays it out, with the addresses in the maps' layout. */
struct ip6_hdr {
	__be32 vtcfl; /* version (4 bits), traffic class (8), flow label (20) */
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	struct ip6_key saddr;
	struct ip6_key daddr;
};

_Static_assert(sizeof(struct ip6_hdr) == IPV6_HLEN, "the IPv6 header is 40 bytes");

/* Next header values (IANA protocol numbers) the walk knows. */
enum ip6_nexthdr {
	NH_HOP = 0,
	NH_ROUTING = 43,
	NH_FRAGMENT = 44,
	NH_ESP = 50,
	NH_AH = 51,
	NH_ICMPV6 = 58,
	NH_DSTOPTS = 60,
	NH_MOBILITY = 135,
	NH_HIP = 139,
	NH_SHIM6 = 140,
	NH_EXP1 = 253,
	NH_EXP2 = 254,
};

enum icmp6_type {
	ICMP6_ECHO_REQUEST = 128,
	ICMP6_MLD_REPORT = 131,
	ICMP6_MLD_DONE = 132,
	ICMP6_ROUTER_SOLICIT = 133,
	ICMP6_ROUTER_ADVERT = 134,
	ICMP6_NEIGH_SOLICIT = 135,
	ICMP6_NEIGH_ADVERT = 136,
	ICMP6_REDIRECT = 137,
	ICMP6_MLD2_REPORT = 143,
};

enum parse6_result {
	PARSE6_OK = 0,
	PARSE6_MALFORMED = 1,
	PARSE6_EXT_HDR = 2,
};

struct packet6 {
	struct ip6_hdr ip;
	__u32 l4_off; /* absolute offset of the upper-layer header */
	__u32 end;    /* absolute offset where the payload ends (trailing bytes may follow) */
	__u8 proto;   /* upper-layer protocol */
	__u8 frag;    /* a fragment (offset or M set; an atomic fragment is whole) */
	__u8 later;   /* a fragment but the first: no upper-layer header */
	__u8 icmp_type;
	__u8 icmp_code;
};

static __always_inline int ip6_equal(const struct ip6_key *a, const struct ip6_key *b)
{
	return a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] && a->addr[2] == b->addr[2] &&
	       a->addr[3] == b->addr[3];
}

/* ::ffff:a.b.c.d: NAT64's IPv4 side in conntrack6 (lib/nat64.h). Never
 * on a wire: from_uplink drops it as martian. */
static __always_inline void ip6_v4mapped(struct ip6_key *a, __be32 v4)
{
	a->addr[0] = 0;
	a->addr[1] = 0;
	a->addr[2] = bpf_htonl(0xffff);
	a->addr[3] = v4;
}

static __always_inline int ip6_is_v4mapped(const struct ip6_key *a)
{
	return a->addr[0] == 0 && a->addr[1] == 0 && a->addr[2] == bpf_htonl(0xffff);
}

static __always_inline int ip6_is_unspecified(const struct ip6_key *a)
{
	return !(a->addr[0] | a->addr[1] | a->addr[2] | a->addr[3]);
}

/* ff00::/8 */
static __always_inline int ip6_is_multicast(const struct ip6_key *a)
{
	return (bpf_ntohl(a->addr[0]) >> 24) == 0xff;
}

/* fe80::/10 */
static __always_inline int ip6_is_link_local(const struct ip6_key *a)
{
	return (bpf_ntohl(a->addr[0]) & 0xffc00000) == 0xfe800000;
}

/* The modified EUI-64 link-local address of mac (RFC 4291 appendix A):
 * fe80::(mac0^2)mac1:mac2ff:fe mac3:mac4mac5, the one the control plane
 * gives a container (maps.LinkLocal). */
static __always_inline void ip6_link_local(struct ip6_key *ll, const __u8 *mac)
{
	__u8 *b = (__u8 *)ll->addr;

	ll->addr[0] = bpf_htonl(0xfe800000);
	ll->addr[1] = 0;
	b[8] = mac[0] ^ 0x02;
	b[9] = mac[1];
	b[10] = mac[2];
	b[11] = 0xff;
	b[12] = 0xfe;
	b[13] = mac[3];
	b[14] = mac[4];
	b[15] = mac[5];
}

/* ff02::1:ffXX:XXXX, the solicited-node multicast address of a (RFC 4291
 * 2.7.1). */
static __always_inline int ip6_is_solicited_node(const struct ip6_key *m, const struct ip6_key *a)
{
	return m->addr[0] == bpf_htonl(0xff020000) && m->addr[1] == 0 && m->addr[2] == bpf_htonl(1) &&
	       m->addr[3] == (bpf_htonl(0xff000000) | (a->addr[3] & bpf_htonl(0x00ffffff)));
}

/* The extension headers the walk does not know (IANA's registry less
 * those it walks): their contents, or what follows, are opaque to it. */
static __always_inline int ip6_opaque_ext(__u8 nh)
{
	return nh == NH_ESP || nh == NH_AH || nh == NH_MOBILITY || nh == NH_HIP || nh == NH_SHIM6 || nh == NH_EXP1 ||
	       nh == NH_EXP2;
}

static __always_inline int ip6_walked_ext(__u8 nh)
{
	return nh == NH_HOP || nh == NH_ROUTING || nh == NH_DSTOPTS || nh == NH_FRAGMENT;
}

/* A fragment header at off (its first 8 bytes in h): checks the fragment
 * and records it in p. 0, or PARSE6_MALFORMED. */
static __always_inline int parse_frag6(struct packet6 *p, const __u8 *h, __u32 off)
{
	__u32 fo = ((__u32)h[2] << 8) | h[3];
	__u32 offset = (fo >> 3) * 8, len = p->end - off; /* off: past the fragment header */

	if (!offset && !(fo & 1))
		return 0; /* an atomic fragment: a whole packet (RFC 6946) */
	if (offset + len > 0xffff || ((fo & 1) && (len == 0 || (len & 7))))
		return PARSE6_MALFORMED;
	p->frag = 1;
	p->later = offset != 0;
	return 0;
}

/* Fills and validates p from skb's IPv6 packet (see the top of this file). */
static __always_inline enum parse6_result parse_ipv6(struct __sk_buff *skb, struct packet6 *p)
{
	__u32 frame = skb->len - ETH_HLEN, plen, off = ETH_HLEN + IPV6_HLEN, i;
	int seen_frag = 0;
	__u8 nh, h[8];

	p->frag = 0;
	p->later = 0;
	p->icmp_type = 0;
	p->icmp_code = 0;
	if (skb->len < ETH_HLEN + IPV6_HLEN || bpf_skb_load_bytes(skb, ETH_HLEN, &p->ip, sizeof(p->ip)))
		return PARSE6_MALFORMED;
	if ((bpf_ntohl(p->ip.vtcfl) >> 28) != 6)
		return PARSE6_MALFORMED;
	plen = bpf_ntohs(p->ip.payload_len);
	if (plen == 0 && skb->gso_size)
		plen = frame - IPV6_HLEN;
	if (plen == 0 || plen > frame - IPV6_HLEN)
		return PARSE6_MALFORMED;
	p->end = off + plen;
	nh = p->ip.nexthdr;
	for (i = 0; i < IPV6_MAX_EXT_HDRS && ip6_walked_ext(nh); i++) {
		if (off + 8 > p->end || bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			return PARSE6_MALFORMED;
		if (nh == NH_FRAGMENT) {
			if (seen_frag)
				return PARSE6_EXT_HDR;
			seen_frag = 1;
			off += 8;
			if (parse_frag6(p, h, off))
				return PARSE6_MALFORMED;
			nh = h[0];
			if (p->later)
				break; /* the rest of the chain is in the first fragment */
			continue;
		}
		if (nh == NH_HOP && i) /* only right after the IPv6 header */
			return PARSE6_EXT_HDR;
		nh = h[0];
		off += ((__u32)h[1] + 1) * 8;
		if (off > p->end)
			return PARSE6_MALFORMED;
	}
	/* A later fragment's next header is the fragmentable part's first,
	 * as in the first fragment. */
	if (ip6_opaque_ext(nh) || (!p->later && ip6_walked_ext(nh)))
		return PARSE6_EXT_HDR;
	p->proto = nh;
	p->l4_off = off;
	if (nh == NH_ICMPV6 && !p->later) {
		if (off + 4 > p->end || bpf_skb_load_bytes(skb, off, h, 2))
			return PARSE6_MALFORMED;
		p->icmp_type = h[0];
		p->icmp_code = h[1];
	}
	return PARSE6_OK;
}
