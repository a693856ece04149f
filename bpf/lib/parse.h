/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Bounds-checked header access for direct packet access. */
#pragma once

#include "common.h"

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
	if (ip->frag_off & bpf_htons(0x1fff))
		return PARSE_OK;
	if ((void *)ip + ihl > data_end)
		return PARSE_MALFORMED;
	p->l4 = (void *)ip + ihl;
	return PARSE_OK;
}
