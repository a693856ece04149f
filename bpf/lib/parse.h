/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Bounds-checked header access for direct packet access. */
#pragma once

#include "common.h"

/* IPv4 frag_off bits, host byte order: only the kernel's private headers
 * define them. */
#define IP_MF 0x2000
#define IP_DF 0x4000
#define IP_OFFSET 0x1fff

struct packet {
	struct ethhdr *eth;
	struct iphdr *ip; /* NULL unless IPv4 */
	void *l4;         /* NULL unless the first fragment's L4 header is in the linear area */
	void *data_end;
};

enum parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IPV4 = 1,
	PARSE_MALFORMED = 2,
};

/* What the NAT code needs to know about a packet besides its tuple. */
struct l4_meta {
	__u32 l4_off;
	__u8 proto;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 ttl;
	__u8 frag; /* any fragment: MF set or offset != 0 */
	__u8 df;
	__u8 tos;
};

/* Fills p from skb. The caller must call it again after any helper that may
 * move packet data (store_bytes, csum replace, change_head...). */
static __always_inline enum parse_result parse_packet(struct __sk_buff *skb, struct packet *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip;
	__u32 ihl;

	p->eth = data;
	p->ip = NULL;
	p->l4 = NULL;
	p->data_end = data_end;
	if ((void *)(p->eth + 1) > data_end)
		return PARSE_MALFORMED;
	if (p->eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_NOT_IPV4;

	ip = (void *)(p->eth + 1);
	if ((void *)(ip + 1) > data_end)
		return PARSE_MALFORMED;
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip))
		return PARSE_MALFORMED;
	p->ip = ip;
	/* Later fragments carry no L4 header. */
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return PARSE_OK;
	if ((void *)ip + ihl > data_end)
		return PARSE_MALFORMED;
	p->l4 = (void *)ip + ihl;
	return PARSE_OK;
}
