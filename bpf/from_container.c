// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* TCX ingress on the host side of every container veth: what a container sends.
 *
 * Same-network unicast IPv4 goes straight into the peer container with
 * bpf_redirect_peer, skipping the bridge and netfilter. Everything else that
 * passes the anti-spoofing and isolation checks goes to the kernel stack. */

#include "lib/common.h"
#include "lib/drop.h"
#include "lib/metrics.h"
#include "lib/endpoint.h"
#include "lib/parse.h"

char __license[] SEC("license") = "Dual BSD/GPL";

static __always_inline int pass(struct __sk_buff *skb)
{
	count_verdict(DIR_FROM_CONTAINER, VERDICT_PASS, skb->len);
	return TC_ACT_OK;
}

/* Destination is not a known endpoint: refuse it if it lies inside another
 * network's subnet (other than that network's gateway, which is the host). */
static __always_inline int isolated_subnet(const struct endpoint_info *src, __be32 daddr)
{
	struct subnet_key key = { .prefixlen = 32, .addr = daddr };
	struct network_info *net;
	__u32 *net_id;

	net_id = bpf_map_lookup_elem(&subnets, &key);
	if (!net_id || *net_id == src->net_id)
		return 0;
	net = bpf_map_lookup_elem(&networks, net_id);
	return !net || net->gateway != daddr;
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ingress_ifindex;
	struct endpoint_info *src, *dst;
	struct network_info *net;
	struct packet p;
	int ret;

	src = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!src)
		return drop(skb, DIR_FROM_CONTAINER, DROP_UNKNOWN_ENDPOINT);
	count_endpoint(ifindex, 1, skb->len);

	ret = parse_packet(skb, &p);
	if (ret == PARSE_MALFORMED)
		return drop(skb, DIR_FROM_CONTAINER, DROP_MALFORMED);
	if (!mac_equal(p.eth->h_source, src->mac))
		return drop(skb, DIR_FROM_CONTAINER, DROP_SPOOFED_MAC);
	if (!p.ip)
		return pass(skb); /* ARP, IPv6: the bridge handles them */
	if (p.ip->saddr != src->ip)
		return drop(skb, DIR_FROM_CONTAINER, DROP_SPOOFED_IP);

	dst = bpf_map_lookup_elem(&endpoint_ips, &p.ip->daddr);
	if (!dst) {
		if (isolated_subnet(src, p.ip->daddr))
			return drop(skb, DIR_FROM_CONTAINER, DROP_NETWORK_ISOLATION);
		return pass(skb);
	}
	if (dst->net_id != src->net_id)
		return drop(skb, DIR_FROM_CONTAINER, DROP_NETWORK_ISOLATION);
	net = bpf_map_lookup_elem(&networks, &src->net_id);
	if (!net || !(net->flags & NET_F_ICC))
		return drop(skb, DIR_FROM_CONTAINER, DROP_ICC_DISABLED);
	if (dst->ifindex == ifindex)
		return pass(skb);

	/* Same L2 segment: the frame is already addressed to the peer's MAC,
	 * but a frame sent via the gateway MAC must be fixed up too. */
	mac_copy(p.eth->h_dest, dst->mac);
	count_verdict(DIR_FROM_CONTAINER, VERDICT_FORWARD, skb->len);
	count_endpoint(dst->ifindex, 0, skb->len);
	return bpf_redirect_peer(dst->ifindex, 0);
}
