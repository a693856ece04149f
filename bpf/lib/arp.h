/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ARP for Ethernet and IPv4, and answering it in place: the control plane
 * knows every remote endpoint's MAC, so no request for one floods anything. */
#pragma once

#include "common.h"

/* As RFC 826 lays it out. */
struct arp_eth_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
};

_Static_assert(sizeof(struct arp_eth_ipv4) == 28, "ARP for Ethernet/IPv4 is 28 bytes");

enum arp_op {
	ARP_OP_REQUEST = 1,
	ARP_OP_REPLY = 2,
};

/* Ethernet and IPv4 addresses of the usual sizes. */
static __always_inline int arp_is_eth_ipv4(const struct arp_eth_ipv4 *a)
{
	return a->htype == bpf_htons(1) && a->ptype == bpf_htons(ETH_P_IP) && a->hlen == ETH_ALEN && a->plen == 4;
}

static __always_inline int arp_is_ipv4_request(const struct arp_eth_ipv4 *a)
{
	return arp_is_eth_ipv4(a) && a->op == bpf_htons(ARP_OP_REQUEST);
}

/* Turns the request req (the frame's) into the reply that mac has the
 * address asked for, addressed to the asker. 0 on success. */
static __always_inline int arp_answer(struct __sk_buff *skb, const struct arp_eth_ipv4 *req, const __u8 *mac)
{
	struct arp_eth_ipv4 rep = *req;
	__u8 eth[2 * ETH_ALEN];

	rep.op = bpf_htons(ARP_OP_REPLY);
	__builtin_memcpy(rep.sha, mac, ETH_ALEN);
	__builtin_memcpy(rep.spa, req->tpa, 4);
	__builtin_memcpy(rep.tha, req->sha, ETH_ALEN);
	__builtin_memcpy(rep.tpa, req->spa, 4);
	__builtin_memcpy(eth, req->sha, ETH_ALEN);
	__builtin_memcpy(eth + ETH_ALEN, mac, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, eth, sizeof(eth), 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &rep, sizeof(rep), 0))
		return -1;
	return 0;
}
