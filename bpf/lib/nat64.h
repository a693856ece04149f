/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Stateful NAT64 for published ports: a port published on every address
 * answers IPv6 clients even when its container has no IPv6 address (an
 * IPv4-only network), as Docker's docker-proxy does, but in the datapath.
 *
 * A new TCP SYN or UDP datagram from an IPv6 client to the host's IPv6
 * address and the published port (from_uplink's published6) becomes an
 * IPv4 packet from the container's network gateway, with a source port
 * allocated as masquerade allocates them, to the container's address and
 * port. The container therefore sees its gateway as the client, as behind
 * docker-proxy: an IPv4 header cannot carry the client's IPv6 address.
 *
 * Both directions live in conntrack6, as CT_KIND_NAT64: the forward entry
 * keyed by the client's IPv6 tuple, and its peer keyed by the IPv4 reply
 * tuple in the IPv4-mapped form (::ffff:a.b.c.d), so GC, ct ls and detach
 * treat NAT64 flows as NAT66's. The container's replies (from_container's
 * IPv4 path, to its gateway) are found there and leave as IPv6 from the
 * host's address and published port, through the FIB.
 *
 * The header swap is bpf_skb_change_proto's (it moves the data and fixes
 * GSO types and sizes); the TCP/UDP checksum is patched by the difference
 * of the pseudo headers, which differ only in the addresses (the length
 * and protocol sum the same in both), and the ports. Only packets without
 * IPv6 extension headers or IPv4 options, and no fragments, are
 * translated; ICMP errors about NAT64 flows are not. The IPv6 form is 20
 * bytes longer: TCP fits by the client's MSS, a UDP datagram too big for
 * the uplink once translated is dropped (frag_needed). */
#pragma once

#include "common.h"
#include "csum.h"
#include "conntrack.h"
#include "deliver.h"
#include "drop.h"
#include "endpoint.h"
#include "fib.h"
#include "ipv6.h"
#include "nat.h"
#include "nat6.h"
#include "ports.h"

#define IPV4_HLEN 20

/* The TCP/UDP checksum patched for new addresses (from: from_len bytes,
 * to: to_len bytes, both pseudo headers' address fields) and ports. */
static __always_inline int nat64_l4_csum(struct __sk_buff *skb, const struct l4_meta *m, __be32 *from, __u32 from_len,
					 __be32 *to, __u32 to_len, __be16 sport, __be16 new_sport, __be16 dport,
					 __be16 new_dport)
{
	__u32 csum_off = m->l4_off + l4_csum_field(m->proto);
	__u64 flags = l4_csum_flags(m->proto);
	__s64 diff = bpf_csum_diff(from, from_len, to, to_len, 0);

	if (diff < 0 || bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | flags))
		return -1;
	return csum_rewrite_ids(skb, m->l4_off, csum_off, flags, 0, 0, sport, new_sport, dport, new_dport);
}

static __always_inline int store_ethertype(struct __sk_buff *skb, __u16 proto)
{
	__be16 p = bpf_htons(proto);

	return bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &p, sizeof(p), 0);
}

/* An IPv6 packet of a NAT64 flow (wire tuple k, entry e: IPv4-mapped new
 * addresses) made the IPv4 packet e says, TTL the hop limit less one. */
static __always_inline int nat64_to_ipv4(struct __sk_buff *skb, const struct l4_meta *m, const struct ct6_key *k,
					 const struct ct6_entry *e)
{
	__be32 addrs4[2] = { e->new_saddr.addr[3], e->new_daddr.addr[3] };
	struct iphdr ip = {};
	struct ip6_hdr ip6;
	__s64 sum;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)))
		return -1;
	if (nat64_l4_csum(skb, m, (__be32 *)&k->saddr, 2 * sizeof(struct ip6_key), addrs4, sizeof(addrs4), k->sport,
			  e->new_sport, k->dport, e->new_dport))
		return -1;
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return -1;
	ip.version = 4;
	ip.ihl = 5;
	ip.tos = (bpf_ntohl(ip6.vtcfl) >> 20) & 0xff;
	ip.tot_len = bpf_htons(bpf_ntohs(ip6.payload_len) + IPV4_HLEN);
	ip.frag_off = bpf_htons(0x4000); /* DF: the path MTU is the client's business, as on IPv6 */
	ip.ttl = m->ttl - 1;
	ip.protocol = m->proto;
	ip.saddr = addrs4[0];
	ip.daddr = addrs4[1];
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip, sizeof(ip), 0);
	if (sum < 0)
		return -1;
	ip.check = csum_fold32(sum);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &ip, sizeof(ip), BPF_F_RECOMPUTE_CSUM))
		return -1;
	return store_ethertype(skb, ETH_P_IP);
}

/* An IPv4 packet of a NAT64 flow (wire tuple k, the reply entry e: IPv6
 * new addresses) made the IPv6 packet e says. */
static __always_inline int nat64_to_ipv6(struct __sk_buff *skb, const struct l4_meta *m, const struct ct_key *k,
					 const struct ct6_entry *e)
{
	__be32 addrs4[2] = { k->saddr, k->daddr };
	struct ip6_hdr ip6 = {};
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
		return -1;
	if (nat64_l4_csum(skb, m, addrs4, sizeof(addrs4), (__be32 *)&e->new_saddr, 2 * sizeof(struct ip6_key), k->sport,
			  e->new_sport, k->dport, e->new_dport))
		return -1;
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return -1;
	ip6.vtcfl = bpf_htonl((6 << 28) | ((__u32)ip.tos << 20));
	ip6.payload_len = bpf_htons(bpf_ntohs(ip.tot_len) - IPV4_HLEN);
	ip6.nexthdr = m->proto;
	ip6.hop_limit = m->ttl - 1;
	ip6.saddr = e->new_saddr;
	ip6.daddr = e->new_daddr;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6), BPF_F_RECOMPUTE_CSUM))
		return -1;
	return store_ethertype(skb, ETH_P_IPV6);
}

/* A new flow from an IPv6 client (k, m; published6 checked it) to a port
 * published on every address (pb) whose container has no IPv6 address:
 * both entries made (the gateway's source port allocated), the packet
 * translated and delivered into the container. */
static __always_inline int nat64_start(struct __sk_buff *skb, enum direction dir, struct nat6_scratch *s,
				       const struct ct6_key *k, const struct l4_meta *m, const struct port_entry *pb)
{
	struct endpoint_info *ep = bpf_map_lookup_elem(&endpoints, &pb->ifindex);
	struct network_info *net;

	if (!ep)
		return 0;
	net = bpf_map_lookup_elem(&networks, &ep->net_id);
	if (!net || !net->gateway || !pb->container_ip)
		return 0;
	if (m->l4_off != ETH_HLEN + IPV6_HLEN)
		return drop(skb, dir, DROP_IPV6_EXT_HDR); /* nothing to carry extension headers over to IPv4 */
	__builtin_memset(&s->e, 0, sizeof(s->e));
	ip6_v4mapped(&s->e.new_saddr, net->gateway);
	ip6_v4mapped(&s->e.new_daddr, pb->container_ip);
	s->e.new_dport = pb->container_port;
	s->e.ifindex = pb->ifindex;
	s->e.kind = CT_KIND_NAT64;
	s->e.state = ct_initial_state(m);
	switch (ct6_create(skb, k, &s->e, &s->pe)) {
	case CT_CREATED:
		break;
	case CT_RACED:
		if (ct6_lookup(k, m, &s->e, &s->pe) && s->e.kind == CT_KIND_NAT64)
			break;
		return drop(skb, dir, DROP_CT_MAP_FULL);
	case CT_NO_PORT:
		return drop(skb, dir, DROP_NAT_EXHAUSTED);
	default:
		return drop(skb, dir, DROP_CT_MAP_FULL);
	}
	if (nat64_to_ipv4(skb, m, k, &s->e))
		return drop(skb, dir, DROP_CSUM_FAILED);
	return deliver_endpoint(skb, dir, s->e.ifindex);
}

/* A container's IPv4 packet to its gateway (k, m) that is a NAT64 flow's
 * reply: translated to IPv6 and sent to the client through the FIB. 0: no
 * such flow. net: the container's network. */
static __always_inline int nat64_reply(struct __sk_buff *skb, enum direction dir, const struct network_info *net,
				       const struct ct_key *k, const struct l4_meta *m)
{
	struct nat6_scratch *s;
	struct ct6_key k6 = {};
	long rc;

	if (k->daddr != net->gateway || (k->proto != IPPROTO_TCP && k->proto != IPPROTO_UDP))
		return 0;
	s = nat6_scratch_get();
	if (!s)
		return 0;
	ip6_v4mapped(&k6.saddr, k->saddr);
	ip6_v4mapped(&k6.daddr, k->daddr);
	k6.sport = k->sport;
	k6.dport = k->dport;
	k6.proto = k->proto;
	if (!ct6_lookup(&k6, m, &s->e, &s->pe) || s->e.kind != CT_KIND_NAT64)
		return 0;
	if (m->frag)
		return drop(skb, dir, DROP_FRAGMENT);
	if (m->ttl <= 1)
		return drop(skb, dir, DROP_TTL_EXCEEDED);
	if (m->l4_off != ETH_HLEN + IPV4_HLEN)
		return drop(skb, dir, DROP_MALFORMED); /* IPv4 options: nothing to carry them over to IPv6 */
	/* The MTU checked for the packet's IPv6 length (a GSO packet's
	 * segments keep theirs: bpf_skb_change_proto shrinks gso_size). */
	rc = fib_lookup6_len(skb, nat6_fib(s), s->e.new_saddr.addr, s->e.new_daddr.addr, k->proto,
			     skb->gso_size ? 0 : skb->len - ETH_HLEN + IPV6_HLEN - IPV4_HLEN);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return drop(skb, dir, DROP_FRAG_NEEDED);
	if (!fib_forwardable(rc))
		return drop(skb, dir, DROP_FIB_FAILED);
	if (nat64_to_ipv6(skb, m, k, &s->e))
		return drop(skb, dir, DROP_CSUM_FAILED);
	return deliver_fib6(skb, dir, nat6_fib(s), rc);
}
