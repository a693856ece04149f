/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Hairpin over IPv6: a container reaching a port published on the host's
 * own IPv6 addresses (an uplink's, a gateway's) is DNATed to the target
 * container's IPv6 address and SNATed to its own network's IPv6 gateway,
 * as IPv4's hairpin (from_container.c) does, so the target's replies come
 * back through the datapath. Tracked in conntrack6 as CT_KIND_HAIRPIN:
 * the forward entry delivers into the target, the reply entry (to the
 * gateway, which route6 hands the stack) into the client. The client's
 * source port is kept, not allocated as IPv4's is: the port search's
 * stack does not fit in from_container beside outside6's. Two clients of
 * one network with the same source port to one target port at once
 * conflict (DROP_CT_CONFLICT; their ephemeral ports are random).
 *
 * Included by from_container.c, whose from_container6 asks hairpin6 about
 * every TCP and UDP packet it would hand the stack or take beyond the
 * container subnets; DIR is its direction. */
#pragma once

#include "common.h"
#include "conntrack.h"
#include "deliver.h"
#include "drop.h"
#include "endpoint.h"
#include "ipv6.h"
#include "nat6.h"
#include "ports.h"

/* Not a hairpin packet: the caller goes on. */
#define HAIRPIN6_NONE (-1)

/* The tuple hairpin6 works on, off the stack: from_container6 inlines it
 * beside outside6, and the program's 512-byte frame has no room for a
 * second tuple. One per CPU, as nat6_scratch. */
struct hairpin6_scratch {
	struct ct6_key k;
	struct l4_meta m;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hairpin6_scratch);
} hairpin6_scratch SEC(".maps");

/* A new flow's forward entry in s->e, if k is a SYN or a datagram to a
 * port published on an IPv6 address of the host. 0: none. */
static __always_inline int hairpin6_new(struct __sk_buff *skb, const struct endpoint_info *src, const struct ct6_key *k,
					const struct l4_meta *m, struct nat6_scratch *s)
{
	struct network6_info *net6;
	struct port_entry *pb;
	struct ip6_key *cip;

	if (k->proto == IPPROTO_TCP && (m->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST)) != TCP_FLAG_SYN)
		return 0;
	pb = port6_published(k->proto, &k->daddr, k->dport);
	if (!pb)
		return 0;
	cip = bpf_map_lookup_elem(&endpoints6, &pb->ifindex);
	net6 = bpf_map_lookup_elem(&networks6, &src->net_id);
	/* A target without IPv6: the stack refuses it (hairpin does no
	 * NAT64; over IPv4 the container reaches it). */
	if (!cip || !net6 || !fib_local6(skb, nat6_fib(s), &k->saddr, &k->daddr, src->ifindex))
		return 0;
	__builtin_memset(&s->e, 0, sizeof(s->e));
	__builtin_memcpy(s->e.new_saddr.addr, net6->gateway6, sizeof(s->e.new_saddr));
	s->e.new_sport = k->sport; /* kept: the reply tuple is fixed (ct6_create_fixed) */
	s->e.new_daddr = *cip;
	s->e.new_dport = pb->container_port;
	s->e.ifindex = pb->ifindex;
	s->e.peer_ifindex = src->ifindex;
	s->e.kind = CT_KIND_HAIRPIN;
	s->e.state = ct_initial_state(m);
	return 1;
}

/* A container's IPv6 packet p of a hairpin flow, or starting one: the
 * verdict, or HAIRPIN6_NONE. */
static __always_inline int hairpin6(struct __sk_buff *skb, const struct endpoint_info *src, const struct packet6 *p)
{
	struct hairpin6_scratch *h;
	struct nat6_scratch *s;
	__u32 zero = 0;

	if ((p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP) || ip6_is_multicast(&p->ip.daddr) ||
	    ip6_is_link_local(&p->ip.daddr))
		return HAIRPIN6_NONE;
	s = nat6_scratch_get();
	h = bpf_map_lookup_elem(&hairpin6_scratch, &zero);
	if (!s || !h || ct6_extract(skb, p, &h->k, &h->m) != TUPLE_OK)
		return HAIRPIN6_NONE;
	if (ct6_lookup(&h->k, &h->m, &s->e, &s->pe)) {
		if (s->e.kind != CT_KIND_HAIRPIN || !s->e.ifindex)
			return HAIRPIN6_NONE;
	} else {
		if (h->m.ttl <= 1 || !hairpin6_new(skb, src, &h->k, &h->m, s))
			return HAIRPIN6_NONE; /* the stack answers */
		switch (ct6_create_fixed(&h->k, &s->e, &s->pe, 0)) {
		case CT_CREATED:
			break;
		case CT_RACED:
			if (ct6_lookup(&h->k, &h->m, &s->e, &s->pe) && s->e.kind == CT_KIND_HAIRPIN && s->e.ifindex)
				break;
			return drop(skb, DIR, DROP_CT_MAP_FULL);
		case CT_NO_PORT:
			return drop(skb, DIR, DROP_CT_CONFLICT);
		default:
			return drop(skb, DIR, DROP_CT_MAP_FULL);
		}
	}
	if (h->m.ttl <= 1)
		return HAIRPIN6_NONE;
	if (nat66_apply(skb, &h->m, &h->k, &s->e))
		return drop(skb, DIR, DROP_CSUM_FAILED);
	return deliver_endpoint(skb, DIR, s->e.ifindex);
}
