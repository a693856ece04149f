/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Overlay networks: endpoints on other hosts, reached through the host's
 * VXLAN device (collect_md) with the tunnel key set per packet. The control
 * plane writes both maps from the cluster store's view. */
#pragma once

#include "common.h"
#include "conntrack.h"
#include "deliver.h"
#include "drop.h"
#include "endpoint.h"
#include "parse.h"

enum overlay_limits {
	OVERLAY_VXLAN_PORT = 4789, /* the IANA VXLAN port, as Docker's overlay driver uses */
};

/* What makes a network an overlay network, keyed by network id (a map of its
 * own, so network_info keeps the layout pinned maps have). */
struct overlay_network {
	__u32 vni;     /* the VXLAN network identifier */
	__u32 ifindex; /* the host's VXLAN device */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct overlay_network);
} overlay_networks SEC(".maps");

/* An endpoint of an overlay network that lives on another host. */
struct remote_endpoint {
	__be32 host;        /* the host's underlay address: outer destination and expected outer source */
	__u32 net_id;       /* this host's id of the overlay network */
	__u8 mac[ETH_ALEN]; /* the container's MAC (ARP answers, inner destination) */
	__u16 _pad;
};

/* Keyed by the endpoint's overlay IPv4 address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __be32);
	__type(value, struct remote_endpoint);
} remote_endpoints SEC(".maps");

/* Traffic per peer host, keyed by its underlay address. tx is encapsulated
 * towards it, rx decapsulated from it and delivered. */
struct overlay_host_counters {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __be32);
	__type(value, struct overlay_host_counters);
} overlay_hosts SEC(".maps");

static __always_inline void count_overlay_host(__be32 host, int tx, __u32 len)
{
	struct overlay_host_counters *c = bpf_map_lookup_elem(&overlay_hosts, &host);

	if (!c)
		return;
	if (tx) {
		c->tx_packets++;
		c->tx_bytes += len;
	} else {
		c->rx_packets++;
		c->rx_bytes += len;
	}
}

/* Index 0: this host's underlay address, as the other hosts know it (0:
 * not joined). Every host holds an overlay network's gateway address, so
 * the host's own traffic to another host's endpoint carries this one
 * instead (the control plane routes remote endpoints with it as source,
 * from_host.c): from_overlay hands what comes back to it to the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __be32);
} overlay_self SEC(".maps");

static __always_inline __be32 overlay_self_addr(void)
{
	__u32 zero = 0;
	__be32 *a = bpf_map_lookup_elem(&overlay_self, &zero);

	return a ? *a : 0;
}

/* Flows a peer host's own stack started with an endpoint here (from_host
 * there, from_overlay here), keyed by the endpoint's direction of the flow
 * (as ct_extract keys it): the endpoint's answers go back through the
 * tunnel to that host, where its stack expects them, rather than out of
 * the uplink masqueraded. What an endpoint starts towards a peer host's
 * address itself takes the uplink, as to any outside address. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ct_key);
	__type(value, __u8);
} overlay_host_flows SEC(".maps");

/* Is addr a peer host's underlay address? */
static __always_inline int overlay_peer(__be32 addr)
{
	return bpf_map_lookup_elem(&overlay_hosts, &addr) != NULL;
}

/* A remote endpoint of the sender's overlay network, or NULL. */
static __always_inline struct remote_endpoint *remote_endpoint_of(const struct endpoint_info *src, __be32 daddr)
{
	struct remote_endpoint *r;

	if (!(src->flags & EP_F_OVERLAY))
		return NULL;
	r = bpf_map_lookup_elem(&remote_endpoints, &daddr);
	return r && r->net_id == src->net_id ? r : NULL;
}

/* VXLAN from a peer host to this host's address on the uplink: the host's
 * own traffic for its VXLAN device, and on an overlay host the bulk of what
 * the uplink receives, so it may skip conntrack and the published ports. */
static __always_inline int overlay_underlay_packet(const struct packet *p, __be32 uplink_ip)
{
	return p->ip->protocol == IPPROTO_UDP && p->has_l4 && p->l4.udp.dest == bpf_htons(OVERLAY_VXLAN_PORT) &&
	       p->ip->daddr == uplink_ip && bpf_map_lookup_elem(&overlay_hosts, &p->ip->saddr);
}

/* What an IPv4 inner frame from a peer host is judged to be (overlay_judge4),
 * for from_overlay (the VXLAN device) and from_uplink (overlay_decap.h). */
struct overlay_rx {
	struct endpoint_info *dst;   /* the local endpoint it is for */
	struct remote_endpoint *src; /* the remote endpoint it is from; NULL: the peer host itself */
	struct network_info *net;    /* the sender's network */
};

#define OVERLAY_RX_SELF (-1) /* not a drop reason: to this host's underlay address */

/* The checks on an IPv4 inner frame, on its addresses alone: the outer
 * source must be the host the cluster store names for the inner source,
 * the VNI that endpoint's network's; then the same checks as between local
 * containers (same network, --icc). The peer host itself may speak to an
 * endpoint here. 0: deliver to rx->dst; OVERLAY_RX_SELF: from a remote
 * endpoint to this host's underlay address; else the drop reason. */
static __always_inline int overlay_judge4(struct overlay_rx *rx, const __u8 *smac, __be32 saddr, __be32 daddr,
					  __u32 vni, __be32 outer)
{
	struct overlay_network *ov;
	__u32 net_id;

	rx->dst = bpf_map_lookup_elem(&endpoint_ips, &daddr);
	rx->src = bpf_map_lookup_elem(&remote_endpoints, &saddr);
	if (rx->src) {
		if (rx->src->host != outer || !mac_equal(smac, rx->src->mac))
			return DROP_OVERLAY_SPOOFED;
		net_id = rx->src->net_id;
	} else if (saddr == outer && overlay_peer(outer) && rx->dst) {
		net_id = rx->dst->net_id; /* the peer host itself, to an endpoint here */
	} else {
		return DROP_OVERLAY_SPOOFED;
	}
	ov = bpf_map_lookup_elem(&overlay_networks, &net_id);
	rx->net = bpf_map_lookup_elem(&networks, &net_id);
	if (!ov || !rx->net || ov->vni != vni)
		return DROP_OVERLAY_VNI;
	if (!rx->dst) {
		__be32 self = overlay_self_addr();

		return rx->src && self && daddr == self ? OVERLAY_RX_SELF : DROP_OVERLAY_NO_ENDPOINT;
	}
	if (rx->dst->net_id != net_id)
		return DROP_NETWORK_ISOLATION;
	if (rx->src && !(rx->net->flags & NET_F_ICC))
		return DROP_ICC_DISABLED;
	return 0;
}

/* The peer host's own stack (from_host there) starts or answers a flow with
 * an endpoint here: the endpoint's replies must go back the same way. */
static __always_inline void overlay_remember_host_flow(const struct packet *p)
{
	struct l4_meta m;
	struct ct_key k, rev = {};
	__u8 one = 1;

	if (ct_extract(p, &k, &m) != TUPLE_OK)
		return;
	rev.saddr = k.daddr;
	rev.daddr = k.saddr;
	rev.sport = k.dport;
	rev.dport = k.sport;
	rev.proto = k.proto;
	bpf_map_update_elem(&overlay_host_flows, &rev, &one, BPF_ANY);
}

/* Into dst, a frame from peer host outer that passed the checks. A peer's
 * rx is what was delivered from it, as its tx is what was sent to it: a
 * frame dropped, however authentic its sender, is in the drop counters
 * only. */
static __always_inline int overlay_deliver(struct __sk_buff *skb, const struct ethhdr *eth,
					   const struct endpoint_info *dst, __be32 outer)
{
	__u32 len = skb->len;
	int ret = deliver_peer(skb, DIR_FROM_OVERLAY, eth, dst);

	if (ret == TC_ACT_REDIRECT)
		count_overlay_host(outer, 0, len);
	return ret;
}

const volatile enum overlay_limits btf_anchor_overlay_limits __attribute__((unused));
