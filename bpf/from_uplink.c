// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* TCX ingress on an uplink: what arrives from outside.
 *
 * Replies to masqueraded flows and packets to published ports are translated
 * and delivered straight into their container with bpf_redirect_peer.
 * Everything else (traffic for the host itself, ARP, IPv6) goes to the stack
 * untouched.
 *
 * TTL: a packet that would reach a container with TTL 0 is dropped
 * (DROP_TTL_EXCEEDED); it was addressed to the host, so the stack could not
 * answer it correctly either. */

#include "lib/common.h"
#include "lib/drop.h"
#include "lib/metrics.h"
#include "lib/endpoint.h"
#include "lib/parse.h"
#include "lib/conntrack.h"
#include "lib/nat.h"
#include "lib/deliver.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define DIR DIR_FROM_UPLINK

static __always_inline int pass(struct __sk_buff *skb)
{
	count_verdict(DIR, VERDICT_PASS, skb->len);
	return TC_ACT_OK;
}

/* Only entries that deliver into a container may be entered from outside;
 * hairpin flows are container-to-container. */
static __always_inline int inbound(const struct ct_entry *e)
{
	return e->ifindex && e->kind != CT_KIND_HAIRPIN;
}

static __always_inline int deliver(struct __sk_buff *skb, const struct l4_meta *m, const struct ct_key *k,
				   const struct ct_entry *e, const struct icmp_err *ie)
{
	if (m->frag)
		return drop(skb, DIR, DROP_FRAGMENT);
	if (m->ttl <= 1)
		return drop(skb, DIR, DROP_TTL_EXCEEDED);
	if (ie ? nat_icmp_error_apply(skb, m, k, ie, e) : nat_apply(skb, m, k, e))
		return drop(skb, DIR, DROP_CSUM_FAILED);
	return deliver_endpoint(skb, DIR, e->ifindex);
}

/* A new flow to a published port. The reply tuple is the container's
 * address with the client's: no port is allocated, so a reply tuple another
 * flow holds is a conflict. */
static __always_inline int dnat(struct __sk_buff *skb, const struct port_binding *pb, const struct ct_key *k,
				const struct l4_meta *m)
{
	struct ct_entry fe = {};
	int ret;

	if (m->frag)
		return drop(skb, DIR, DROP_FRAGMENT);
	if (m->ttl <= 1)
		return drop(skb, DIR, DROP_TTL_EXCEEDED);
	fe.new_saddr = k->saddr;
	fe.new_sport = k->sport;
	fe.new_daddr = pb->container_ip;
	fe.new_dport = pb->container_port;
	fe.ifindex = pb->ifindex;
	fe.kind = CT_KIND_DNAT;
	fe.state = ct_initial_state(m);
	ret = nat_start_flow(skb, DIR, k, m, &fe, 0);
	if (ret)
		return ret;
	return deliver(skb, m, k, &fe, NULL);
}

SEC("tc")
int from_uplink(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ingress_ifindex;
	struct uplink_info *upl;
	struct port_binding *pb;
	enum tuple_result t;
	struct ct_entry e;
	struct l4_meta m;
	struct ct_key k;
	struct packet p;

	upl = bpf_map_lookup_elem(&uplinks, &ifindex);
	if (!upl)
		return pass(skb);
	if (parse_packet(skb, &p) != PARSE_OK || !p.ip)
		return pass(skb); /* ARP, IPv6, or the stack's to reject */

	t = ct_extract(skb, &p, &k, &m);
	if (t == TUPLE_ICMP_ERROR) {
		struct icmp_err ie;

		if (nat_icmp_error_lookup(skb, &m, &ie, &e) && inbound(&e))
			return deliver(skb, &m, &k, &e, &ie);
		return pass(skb);
	}
	if (t != TUPLE_OK)
		return pass(skb);
	if (ct_lookup(&k, &m, &e)) {
		if (inbound(&e))
			return deliver(skb, &m, &k, &e, NULL);
		return pass(skb);
	}
	if (k.proto != IPPROTO_TCP && k.proto != IPPROTO_UDP)
		return pass(skb);
	pb = port_lookup(k.proto, k.daddr, k.dport, k.daddr == upl->ip);
	if (!pb)
		return pass(skb);
	return dnat(skb, pb, &k, &m);
}
