/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Overlay networks: endpoints on other hosts, reached through the host's
 * VXLAN device (collect_md) with the tunnel key set per packet. The control
 * plane writes both maps from the cluster store's view. */
#pragma once

#include "common.h"
#include "conntrack.h"
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

const volatile enum overlay_limits btf_anchor_overlay_limits __attribute__((unused));
