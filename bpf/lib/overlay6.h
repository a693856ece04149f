/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv6 on overlay networks: endpoints on other hosts by their global IPv6
 * address, reached through the VXLAN device as IPv4 ones are (overlay.h).
 *
 * Only global addresses cross the overlay. Link-local ones stay on the
 * host: a container's link-local traffic goes to its bridge and the host
 * as on a bridge network (the gateway is every host's), and from_overlay
 * delivers none. Neighbour discovery for a remote peer never leaves the
 * sending host: its solicitation is answered in place with the peer's
 * MAC (to_overlay6), as ARP is for IPv4 peers.
 *
 * to_overlay6 is from_container's one hook (from_container6, for what its
 * checks pass to the bridge); from_overlay6 is from_overlay's for an IPv6
 * inner frame, with the same checks as IPv4's: the outer source is the
 * host the store names for the inner source, the VNI that endpoint's
 * network's, then isolation and --icc. A peer host's own stack has no
 * IPv6 path to endpoints (from_host tunnels IPv4 only). */
#pragma once

#include "common.h"
#include "drop.h"
#include "metrics.h"
#include "endpoint.h"
#include "deliver.h"
#include "ipv6.h"
#include "nd.h"
#include "overlay.h"
#include "overlay_encap.h"

/* Keyed by the endpoint's global IPv6 address; the value as
 * remote_endpoints' (host, network id, MAC). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ip6_key);
	__type(value, struct remote_endpoint);
} remote_endpoints6 SEC(".maps");

/* A remote endpoint of the sender's overlay network at addr, or NULL. */
static __always_inline struct remote_endpoint *remote_endpoint6_of(const struct endpoint_info *src,
								   const struct ip6_key *addr)
{
	struct remote_endpoint *r;

	if (!(src->flags & EP_F_OVERLAY))
		return NULL;
	r = bpf_map_lookup_elem(&remote_endpoints6, addr);
	return r && r->net_id == src->net_id ? r : NULL;
}

/* The target of a solicitation from_container's check_nd passed and would
 * answer (one source link-layer address option naming the sender, 86
 * bytes, to the target or its solicited-node address). 0 if p is none. */
static __always_inline int overlay6_ns_target(struct __sk_buff *skb, const struct packet6 *p, struct ip6_key *target)
{
	struct nd_msg msg;
	struct nd_opt_lla o;

	if (p->proto != NH_ICMPV6 || p->frag || p->icmp_type != ICMP6_NEIGH_SOLICIT || skb->len != ND_NS_FRAME_LEN ||
	    p->end != ND_NS_FRAME_LEN || p->l4_off != ETH_HLEN + IPV6_HLEN || ip6_is_unspecified(&p->ip.saddr) ||
	    bpf_skb_load_bytes(skb, p->l4_off, &msg, sizeof(msg)) ||
	    bpf_skb_load_bytes(skb, p->l4_off + sizeof(msg), &o, sizeof(o)))
		return 0;
	if (o.type != ND_OPT_SOURCE_LLA || o.len != 1 ||
	    !(ip6_equal(&p->ip.daddr, &msg.target) || ip6_is_solicited_node(&p->ip.daddr, &msg.target)))
		return 0;
	*target = msg.target;
	return 1;
}

/* From a container of an overlay network (src), what from_container6's
 * checks pass to the bridge: a solicitation for a remote peer of its
 * network is answered in place (with --icc, as for a local one), unicast
 * to a remote peer is encapsulated for the peer's host with the network's
 * VNI (overlay_encap.h: here, or by the VXLAN device), the inner frame addressed to the
 * peer's MAC, hop limit untouched (one link, as between local peers).
 * TC_ACT_UNSPEC: none of these, on to the bridge. */
static __always_inline int to_overlay6(struct __sk_buff *skb, const struct endpoint_info *src, const struct packet6 *p)
{
	struct bpf_tunnel_key key = {};
	struct overlay_network *ov;
	struct network_info *net;
	struct remote_endpoint *r;
	struct ip6_key target;
	__u32 len = skb->len;
	int reason;

	if (!(src->flags & EP_F_OVERLAY) || ip6_is_link_local(&p->ip.daddr))
		return TC_ACT_UNSPEC;
	net = bpf_map_lookup_elem(&networks, &src->net_id);
	if (!net)
		return TC_ACT_UNSPEC;
	/* One drop() below: each inlined one costs a monitor event's code. */
	if (overlay6_ns_target(skb, p, &target)) {
		r = remote_endpoint6_of(src, &target);
		if (!r || !(net->flags & NET_F_ICC))
			return TC_ACT_UNSPEC;
		if (!nd_answer(skb, &target, &p->ip.saddr, r->mac, src->mac, 0)) {
			count_verdict(DIR_FROM_CONTAINER, VERDICT_FORWARD, skb->len);
			return bpf_redirect(src->ifindex, 0); /* the ingress veth: endpoints are keyed by it */
		}
		reason = DROP_WRITE_FAILED;
	} else {
		if (ip6_is_multicast(&p->ip.daddr))
			return TC_ACT_UNSPEC;
		r = remote_endpoint6_of(src, &p->ip.daddr);
		if (!r)
			return TC_ACT_UNSPEC;
		ov = bpf_map_lookup_elem(&overlay_networks, &src->net_id);
		if (!(net->flags & NET_F_ICC)) {
			reason = DROP_ICC_DISABLED;
		} else if (!ov) {
			reason = DROP_UNKNOWN_ENDPOINT; /* the network is being removed */
		} else {
			__u8 ecn = (bpf_ntohl(p->ip.vtcfl) >> 20) & 3;
			int ret = -1;

			key.remote_ipv4 = bpf_ntohl(r->host);
			key.tunnel_id = ov->vni;
			key.tunnel_ttl = 64;
			/* Encapsulated here, or else by the VXLAN device
			 * (overlay_encap.h). */
			if (!bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), r->mac, ETH_ALEN, 0)) {
				ret = overlay_encap(skb, r->host, ov->vni, ecn);
				if (ret == 0 && !bpf_skb_set_tunnel_key(skb, &key, sizeof(key), 0))
					ret = bpf_redirect(ov->ifindex, 0);
			}
			if (ret == TC_ACT_REDIRECT) {
				count_verdict(DIR_FROM_CONTAINER, VERDICT_FORWARD, len);
				count_overlay_host(r->host, 1, len);
				return ret;
			}
			reason = DROP_WRITE_FAILED;
		}
	}
	return drop(skb, DIR_FROM_CONTAINER, reason);
}

/* The checks on an IPv6 inner frame (overlay_judge4's for IPv6), on its
 * addresses alone: from a remote endpoint the cluster places on the outer
 * source's host, with its MAC, on a dual-stack network with the packet's
 * VNI, to a local endpoint's global address on the same network, with
 * --icc. 0: deliver to *dstp; else the drop reason. Shared by from_overlay6
 * and from_uplink (overlay_decap.h). */
static __always_inline int overlay_judge6(const __u8 *smac, const struct ip6_key *saddr, const struct ip6_key *daddr,
					  __u32 vni, __be32 outer, struct endpoint_info **dstp)
{
	struct endpoint_info *dst = NULL;
	struct remote_endpoint *src;
	struct overlay_network *ov;
	struct network_info *net;

	src = bpf_map_lookup_elem(&remote_endpoints6, saddr);
	if (!src || src->host != outer || !mac_equal(smac, src->mac))
		return DROP_OVERLAY_SPOOFED;
	ov = bpf_map_lookup_elem(&overlay_networks, &src->net_id);
	net = bpf_map_lookup_elem(&networks, &src->net_id);
	/* Global addresses only: a local endpoint's link-local one is its
	 * host's link's, and multicast (neighbour discovery) never crosses. */
	if (!ip6_is_link_local(daddr))
		dst = bpf_map_lookup_elem(&endpoint_ips6, daddr);
	if (!ov || !net || ov->vni != vni || !(net->flags & NET_F_IPV6))
		return DROP_OVERLAY_VNI;
	if (!dst)
		return DROP_OVERLAY_NO_ENDPOINT;
	if (dst->net_id != src->net_id)
		return DROP_NETWORK_ISOLATION;
	if (!(net->flags & NET_F_ICC))
		return DROP_ICC_DISABLED;
	*dstp = dst;
	return 0;
}

/* An IPv6 inner frame on the VXLAN device (from_overlay): overlay_judge6's
 * checks, then into the endpoint. outer is the outer source. */
static __always_inline int from_overlay6(struct __sk_buff *skb, const struct bpf_tunnel_key *key, __be32 outer,
					 const struct ethhdr *eth)
{
	struct endpoint_info *dst = NULL;
	struct packet6 p;
	int ret;

	ret = parse_ipv6(skb, &p);
	if (ret != PARSE6_OK)
		ret = ret == PARSE6_MALFORMED ? DROP_MALFORMED : DROP_IPV6_EXT_HDR;
	else
		ret = overlay_judge6(eth->h_source, &p.ip.saddr, &p.ip.daddr, key->tunnel_id, outer, &dst);
	if (ret || !dst)
		return drop(skb, DIR_FROM_OVERLAY, ret ? ret : DROP_OVERLAY_NO_ENDPOINT);
	return overlay_deliver(skb, eth, dst, outer);
}
