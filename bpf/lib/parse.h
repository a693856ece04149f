/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Parsing and validation: the one place a frame's headers are checked.
 *
 * parse_packet accepts an IPv4 packet only if the receiving stack would:
 * version 4, IHL >= 5 with the header in the linear area, a total length
 * that covers the header and fits the frame, no reserved fragment bit, no
 * fragment reaching past 65535, non-final fragments a multiple of 8, and
 * for a first fragment or a whole packet a complete L4 header: TCP with a
 * data offset of 5 or more inside the segment, UDP whose length is the IP
 * payload's (at least it, for a first fragment), ICMP of 8 bytes or more.
 * Everything else is PARSE_MALFORMED: dropped, never translated, never a
 * conntrack entry. Checksums are not verified here; every rewrite patches
 * them incrementally (csum.h), so a bad one stays bad. */
#pragma once

#include "common.h"

/* IPv4 frag_off bits, host byte order: only the kernel's private headers
 * define them. */
#define IP_CE 0x8000 /* reserved, must be zero */
#define IP_MF 0x2000
#define IP_DF 0x4000
#define IP_OFFSET 0x1fff

struct tcp_head {
	__be16 sport;
	__be16 dport;
	__be32 seq;
	__be32 ack;
	__u8 doff; /* data offset in the high nibble */
	__u8 flags;
};

/* The first bytes of the L4 header, read once by parse_packet. */
union l4_head {
	struct tcp_head tcp;
	struct udphdr udp;
	struct icmphdr icmp;
};

struct packet {
	struct ethhdr *eth;
	struct iphdr *ip; /* NULL unless IPv4 (and then validated) */
	void *data_end;
	__u16 ip_len; /* IPv4 total length */
	__u8 has_l4;  /* l4 holds a complete L4 header: not a later fragment, TCP/UDP/ICMP */
	union l4_head l4;
};

enum parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IPV4 = 1, /* another ethertype: p->eth->h_proto says which */
	PARSE_MALFORMED = 2,
	PARSE_VLAN = 3, /* an 802.1Q/802.1ad tag, in the frame or in skb metadata */
};

/* What the NAT code needs to know about a packet besides its tuple. */
struct l4_meta {
	__u32 l4_off;
	/* TCP, host byte order: what the embryonic table checks the client's
	 * acknowledgement against (conntrack.h). */
	__u32 tcp_seq;
	__u32 tcp_ack;
	__u32 tcp_len; /* payload bytes */
	__u8 proto;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 ttl;
	__u8 frag; /* any fragment: MF set or offset != 0 */
	__u8 df;
	__u8 tos;
};

/* Loopback and "this network" destinations: never on a wire (the stack's
 * martian checks, which bpf_fib_lookup skips). */
static __always_inline int martian_daddr(__be32 daddr)
{
	__u32 d = bpf_ntohl(daddr) >> 24;

	return d == 127 || d == 0;
}

/* Checks the L4 header of a whole packet or a first fragment (mf) whose IP
 * payload is l4_len bytes at off, and keeps its first bytes in p->l4. */
static __always_inline enum parse_result parse_l4(struct __sk_buff *skb, struct packet *p, __u8 proto, __u32 off,
						  __u32 l4_len, int mf)
{
	switch (proto) {
	case IPPROTO_TCP:
		if (l4_len < sizeof(struct tcphdr) || bpf_skb_load_bytes(skb, off, &p->l4.tcp, sizeof(p->l4.tcp)))
			return PARSE_MALFORMED;
		if ((p->l4.tcp.doff >> 4) < 5 || (__u32)(p->l4.tcp.doff >> 4) * 4 > l4_len)
			return PARSE_MALFORMED;
		break;
	case IPPROTO_UDP: {
		__u32 ulen;

		if (l4_len < sizeof(struct udphdr) || bpf_skb_load_bytes(skb, off, &p->l4.udp, sizeof(p->l4.udp)))
			return PARSE_MALFORMED;
		ulen = bpf_ntohs(p->l4.udp.len);
		/* A first fragment carries part of the datagram. */
		if (mf ? ulen < l4_len : ulen != l4_len)
			return PARSE_MALFORMED;
		break;
	}
	case IPPROTO_ICMP:
		if (l4_len < sizeof(struct icmphdr) || bpf_skb_load_bytes(skb, off, &p->l4.icmp, sizeof(p->l4.icmp)))
			return PARSE_MALFORMED;
		break;
	default:
		return PARSE_OK;
	}
	p->has_l4 = 1;
	return PARSE_OK;
}

/* Fills and validates p from skb (see the top of this file). The caller
 * must call it again after any helper that may move packet data
 * (store_bytes, csum replace, change_head...) before using p's pointers. */
static __always_inline enum parse_result parse_packet(struct __sk_buff *skb, struct packet *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 ihl, tot, frame, frag, off;
	struct iphdr *ip;

	p->eth = data;
	p->ip = NULL;
	p->has_l4 = 0;
	p->ip_len = 0;
	p->data_end = data_end;
	if ((void *)(p->eth + 1) > data_end)
		return PARSE_MALFORMED;
	/* The stack moves a frame's outer tag into skb metadata before TC. */
	if (skb->vlan_present || p->eth->h_proto == bpf_htons(ETH_P_8021Q) ||
	    p->eth->h_proto == bpf_htons(ETH_P_8021AD))
		return PARSE_VLAN;
	if (p->eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_NOT_IPV4;

	ip = (void *)(p->eth + 1);
	if ((void *)(ip + 1) > data_end)
		return PARSE_MALFORMED;
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip) || (void *)ip + ihl > data_end)
		return PARSE_MALFORMED;
	tot = bpf_ntohs(ip->tot_len);
	frame = skb->len - ETH_HLEN; /* at least 20: the header is in the linear area */
	/* BIG TCP: a GSO packet beyond 64k says 0. */
	if (tot == 0 && skb->gso_size)
		tot = frame;
	if (tot < ihl || tot > frame)
		return PARSE_MALFORMED;
	frag = bpf_ntohs(ip->frag_off);
	off = (frag & IP_OFFSET) * 8;
	if ((frag & IP_CE) || off + (tot - ihl) > 0xffff || ((frag & IP_MF) && ((tot - ihl) == 0 || ((tot - ihl) & 7))))
		return PARSE_MALFORMED;
	p->ip = ip;
	p->ip_len = tot;
	/* Later fragments carry no L4 header. */
	if (off)
		return PARSE_OK;
	return parse_l4(skb, p, ip->protocol, ETH_HLEN + ihl, tot - ihl, frag & IP_MF);
}
