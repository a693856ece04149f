/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* VXLAN encapsulation in the datapath: a container's frame for a remote
 * endpoint gets its outer Ethernet, IPv4, UDP and VXLAN headers here and
 * goes straight out of the underlay interface (bpf_redirect), instead of
 * through the host's VXLAN device. The device's path costs, per packet, a
 * route lookup (bpf_skb_set_tunnel_key's metadata is never cached:
 * TUNNEL_NOCACHE), the device's transmit, from_host on its egress and the
 * stack's IP output; this one a map lookup and one store.
 *
 * The outer route to a peer host (underlay interface, MACs, MTU) is the
 * FIB's, looked up once per peer and second (overlay_routes) rather than per
 * packet: a changed route or neighbour is followed within OVERLAY_ROUTE_TTL.
 * Whatever this path cannot do takes the VXLAN device as before: no route or
 * no resolved neighbour yet (the stack resolves it), no underlay address
 * (overlay_self), a frame beyond the underlay MTU (the device's PMTU
 * handling), a failed room adjustment.
 *
 * On the wire as the device sends it (external, port 4789): outer source
 * this host's underlay address as the peers know it, TTL 64, no DF, the
 * inner ECN bits (RFC 6040, as ip_tunnel_ecn_encap), UDP source port from
 * the inner flow's hash in the local port range (as udp_flow_src_port),
 * VXLAN flags I with the VNI. The outer UDP checksum is zero, as RFC 7348
 * recommends over IPv4 (the receiving socket accepts it): a GSO packet
 * keeps its TCP segmentation (SKB_GSO_UDP_TUNNEL, the gso_size the
 * container's MTU already leaves room for), segmented by the underlay
 * device or the stack as the device's packets are. The outer packet does
 * not pass the host's netfilter OUTPUT and POSTROUTING hooks (nothing on
 * this path did: it is the host's own UDP to a peer). */
#pragma once

#include "common.h"
#include "fib.h"
#include "overlay.h"

enum overlay_encap_limits {
	OVERLAY_ENCAP_LEN = 50,    /* outer IPv4 (20), UDP (8), VXLAN (8), inner Ethernet (14) */
	OVERLAY_SPORT_MIN = 32768, /* the default net.ipv4.ip_local_port_range, as the device uses */
	OVERLAY_SPORT_MAX = 60999,
	OVERLAY_TTL = 64,
};

#define OVERLAY_ROUTE_TTL 1000000000ULL /* ns: how long a peer's outer route is used before the FIB is asked again */

/* The FIB's route from this host to a peer host's underlay address. */
struct overlay_route {
	__u64 expires; /* flow_clock() after which it is looked up again */
	__u32 ifindex; /* the underlay interface */
	__u32 mtu;     /* its MTU (the outer packet's limit) */
	__u8 smac[ETH_ALEN];
	__u8 dmac[ETH_ALEN]; /* the peer's or the gateway's MAC */
	__u32 _pad;
};

/* Keyed by the peer host's underlay address; written by from_container
 * only (a cache of the FIB: the control plane writes nothing here). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __be32);
	__type(value, struct overlay_route);
} overlay_routes SEC(".maps");

struct vxlan_hdr_ {
	__be32 flags; /* VXLAN_FLAG_VNI: the VNI is valid */
	__be32 vni;   /* VNI << 8 */
};

#define VXLAN_FLAG_VNI 0x08000000

/* The outer headers and the inner Ethernet header, written in one store. */
struct overlay_outer {
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
	struct vxlan_hdr_ vx;
	struct ethhdr inner;
} __attribute__((packed));

_Static_assert(sizeof(struct bpf_fib_lookup) == 64, "overlay_scratch.fib");
_Static_assert(sizeof(struct iphdr) == 20, "overlay_scratch.ip");
_Static_assert(sizeof(struct overlay_outer) == 64, "overlay_scratch.h");

/* What overlay_encap builds, one per CPU: from_container's stack has no
 * room for it. */
struct overlay_scratch {
	__u64 fib[8]; /* struct bpf_fib_lookup (bpf2go mirrors no unions) */
	struct overlay_route rt;
	__u32 ip[5]; /* struct iphdr, built aligned for its checksum */
	__u32 _pad;
	__u8 h[64];        /* struct overlay_outer */
	__be32 self, host; /* the outer addresses */
	__u32 vni, ifindex, hash;
	__u8 ecn, _pad2[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct overlay_scratch);
} overlay_scratch SEC(".maps");

/* The outer route to s->host from s->self, from the cache or the FIB;
 * NULL when the FIB has none or no neighbour for it yet. */
static __always_inline struct overlay_route *overlay_route_of(struct __sk_buff *skb, struct overlay_scratch *s)
{
	struct overlay_route *rt = bpf_map_lookup_elem(&overlay_routes, &s->host);
	struct bpf_fib_lookup *fib = (struct bpf_fib_lookup *)s->fib;
	__u64 now = flow_clock();

	if (rt && now < rt->expires)
		return rt;
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET_;
	fib->l4_protocol = IPPROTO_UDP;
	fib->ipv4_src = s->self;
	fib->ipv4_dst = s->host;
	fib->ifindex = skb->ingress_ifindex;
	if (bpf_fib_lookup(skb, fib, sizeof(*fib), 0) != BPF_FIB_LKUP_RET_SUCCESS) {
		if (rt)
			bpf_map_delete_elem(&overlay_routes, &s->host);
		return NULL;
	}
	__builtin_memset(&s->rt, 0, sizeof(s->rt));
	s->rt.expires = now + OVERLAY_ROUTE_TTL;
	s->rt.ifindex = fib->ifindex;
	s->rt.mtu = fib->mtu_result;
	__builtin_memcpy(s->rt.smac, fib->smac, ETH_ALEN);
	__builtin_memcpy(s->rt.dmac, fib->dmac, ETH_ALEN);
	bpf_map_update_elem(&overlay_routes, &s->host, &s->rt, BPF_ANY);
	return bpf_map_lookup_elem(&overlay_routes, &s->host);
}

/* Encapsulates the frame for host with vni and redirects it to the
 * underlay interface: TC_ACT_REDIRECT. 0: the frame is as it was, for the
 * VXLAN device. -1: rewriting failed half way (drop it). inner_ecn is the
 * inner packet's ECN field. A function of its own: from_container's stack
 * has 48 bytes to spare, the scratch map holds the rest. */
static __noinline int overlay_encap(struct __sk_buff *skb, __be32 host, __u32 vni, __u8 inner_ecn)
{
	const __u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
			    BPF_F_ADJ_ROOM_ENCAP_L2_ETH | BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN);
	struct overlay_scratch *s;
	struct overlay_route *rt;
	struct overlay_outer *h;
	struct iphdr *ip;
	__u32 zero = 0, hash, len;
	__be32 *self;
	__u64 sum = 0;
	int i;

	s = bpf_map_lookup_elem(&overlay_scratch, &zero);
	self = bpf_map_lookup_elem(&overlay_self, &zero);
	if (!s || !self || !*self)
		return 0;
	s->self = *self;
	s->host = host;
	s->vni = vni;
	s->ecn = inner_ecn;
	rt = overlay_route_of(skb, s);
	if (!rt)
		return 0;
	len = skb->len - ETH_HLEN + OVERLAY_ENCAP_LEN; /* the outer IPv4 packet */
	if ((!skb->gso_size && len > rt->mtu) || len > 0xffff)
		return 0;
	h = (struct overlay_outer *)s->h;
	if (bpf_skb_load_bytes(skb, 0, &h->inner, ETH_HLEN))
		return 0;
	__builtin_memcpy(h->eth.h_dest, rt->dmac, ETH_ALEN);
	__builtin_memcpy(h->eth.h_source, rt->smac, ETH_ALEN);
	s->ifindex = rt->ifindex;
	s->hash = bpf_get_hash_recalc(skb); /* the inner flow's */
	if (bpf_skb_adjust_room(skb, OVERLAY_ENCAP_LEN, BPF_ADJ_ROOM_MAC, flags))
		return 0;

	h = (struct overlay_outer *)s->h;
	h->eth.h_proto = bpf_htons(ETH_P_IP);
	ip = (struct iphdr *)s->ip;
	ip->version = 4;
	ip->ihl = 5;
	/* RFC 6040 normal mode: the inner ECN field, CE as ECT(0). */
	ip->tos = (s->ecn & 3) == 3 ? 2 : s->ecn & 3;
	ip->tot_len = bpf_htons(len);
	ip->id = (__be16)bpf_get_prandom_u32();
	ip->frag_off = 0;
	ip->ttl = OVERLAY_TTL;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = s->self;
	ip->daddr = s->host;
#pragma unroll
	for (i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += ((__u16 *)ip)[i];
	ip->check = csum_fold32(sum);
	__builtin_memcpy(&h->ip, ip, sizeof(*ip));
	hash = s->hash;
	if (!hash)
		hash = bpf_get_prandom_u32();
	hash ^= hash << 16;
	h->udp.source =
		bpf_htons((__u16)((((__u64)hash * (OVERLAY_SPORT_MAX - OVERLAY_SPORT_MIN)) >> 32) + OVERLAY_SPORT_MIN));
	h->udp.dest = bpf_htons(OVERLAY_VXLAN_PORT);
	h->udp.len = bpf_htons(len - sizeof(*ip));
	h->udp.check = 0;
	h->vx.flags = bpf_htonl(VXLAN_FLAG_VNI);
	h->vx.vni = bpf_htonl(s->vni << 8);
	if (bpf_skb_store_bytes(skb, 0, h, sizeof(*h), 0))
		return -1;
	return bpf_redirect(s->ifindex, 0);
}

const volatile enum overlay_encap_limits btf_anchor_overlay_encap_limits __attribute__((unused));
