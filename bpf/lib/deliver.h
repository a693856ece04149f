/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Delivery of translated packets: into a container, or out through the FIB. */
#pragma once

#include "common.h"
#include "csum.h"
#include "drop.h"
#include "endpoint.h"
#include "fib.h"
#include "metrics.h"

/* Into the container behind the host-side veth ifindex, as if its gateway
 * had routed the packet. */
static __always_inline int deliver_endpoint(struct __sk_buff *skb, enum direction dir, __u32 ifindex)
{
	struct endpoint_info *ep = bpf_map_lookup_elem(&endpoints, &ifindex);
	struct network_info *net;

	if (!ep)
		return drop(skb, dir, DROP_UNKNOWN_ENDPOINT); /* detached since the flow began */
	net = bpf_map_lookup_elem(&networks, &ep->net_id);
	if (!net)
		return drop(skb, dir, DROP_UNKNOWN_ENDPOINT);
	if (store_macs(skb, ep->mac, net->gateway_mac))
		return drop(skb, dir, DROP_WRITE_FAILED);
	count_verdict(dir, VERDICT_DNAT, skb->len);
	count_endpoint(ifindex, 0, skb->len);
	return bpf_redirect_peer(ifindex, 0);
}

/* Into dst, a container on the sender's L2 segment (its network, on this
 * host or, decapsulated, on another), unchanged: the frame is already
 * addressed to dst's MAC, but one sent via the gateway MAC must be fixed up
 * too. Through a helper, not a direct write: one direct write anywhere makes
 * the verifier unclone every cloned skb (all TCP data) at program entry. */
static __always_inline int deliver_peer(struct __sk_buff *skb, enum direction dir, const struct ethhdr *eth,
					const struct endpoint_info *dst)
{
	if (!mac_equal(eth->h_dest, dst->mac) &&
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), dst->mac, ETH_ALEN, 0))
		return drop(skb, dir, DROP_WRITE_FAILED);
	count_verdict(dir, VERDICT_FORWARD, skb->len);
	count_endpoint(dst->ifindex, 0, skb->len);
	return bpf_redirect_peer(dst->ifindex, 0);
}

/* Out of the FIB's egress interface; the packet is already translated. */
static __always_inline int deliver_fib(struct __sk_buff *skb, enum direction dir, const struct bpf_fib_lookup *fib,
				       long rc)
{
	__u32 len = skb->len;
	int ret = fib_redirect(skb, fib, rc);

	if (ret != TC_ACT_REDIRECT)
		return drop(skb, dir, DROP_REDIRECT_FAILED);
	count_verdict(dir, VERDICT_SNAT, len);
	return ret;
}
