// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* TCX ingress on the host's VXLAN device (collect_md): what other hosts send
 * to this host's containers on overlay networks, already decapsulated.
 *
 * The outer source must be the host the cluster store names for the inner
 * source, and the VNI that endpoint's network's: a host can speak only for
 * its own containers, on their own networks, and for itself (inner source
 * its own underlay address, from its stack: from_host.c). Then the same
 * checks as between local containers (same network, --icc) and
 * bpf_redirect_peer into the container (lib/overlay.h: overlay_judge4,
 * overlay_deliver). Answers to this host's own stack (to its underlay
 * address) and replies netfilter must un-NAT go into the stack. IPv6
 * between endpoints of a dual-stack network takes the same checks
 * (lib/overlay6.h: from_overlay6). Nothing else crosses the overlay: ARP
 * and neighbour discovery are answered on the sending host, and traffic to
 * the outside leaves through each host's own uplink.
 *
 * from_uplink shares the checks and the delivery: it decapsulates what
 * they let through itself (lib/overlay_decap.h), so this program sees
 * what it leaves: refusals, GSO packets, the host's own, and the rest
 * overlay_decap.h lists.
 *
 * bpf/from_overlay_test.c builds this file once more for the loader's tests
 * (FuzzFromOverlay) with bpf_skb_get_tunnel_key stubbed to read skb->cb:
 * BPF_PROG_TEST_RUN cannot attach tunnel metadata. Keep the helper's one
 * call as it is (IPv4 key, no flags) or update the stub with it. */

#include "lib/common.h"
#include "lib/drop.h"
#include "lib/metrics.h"
#include "lib/endpoint.h"
#include "lib/parse.h"
#include "lib/deliver.h"
#include "lib/overlay.h"
#include "lib/overlay6.h"
#include "lib/kernel_nat.h"
#include "lib/nat.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define DIR DIR_FROM_OVERLAY

#define PACKET_HOST_ 0 /* linux/if_packet.h's PACKET_HOST */

/* Into this host's own stack, as received on the VXLAN device (the frame is
 * addressed to a container's MAC, not the device's): the answer of a flow
 * this host's stack started (to its underlay address), or a reply netfilter
 * must un-NAT (kernel_nat.h). The routes to remote endpoints point at the
 * device, so the stack's reverse path check agrees. */
static __always_inline int to_stack(struct __sk_buff *skb)
{
	if (bpf_skb_change_type(skb, PACKET_HOST_))
		return drop(skb, DIR, DROP_WRITE_FAILED);
	count_verdict(DIR, VERDICT_PASS, skb->len);
	return TC_ACT_OK;
}

/* An endpoint's answer to a flow from_uplink routed to it for a Service
 * (CT_KIND_SERVICE_ROUTED, to this host's underlay address): translated
 * back and routed to the client. Returns 0 if p is no such answer. */
static __always_inline int service_reply(struct __sk_buff *skb, const struct packet *p, int *verdict)
{
	struct ct_entry e;
	struct l4_meta m;
	struct ct_key k;

	if (ct_extract(p, &k, &m) != TUPLE_OK || !ct_lookup(&k, &m, &e) || e.kind != CT_KIND_SERVICE_ROUTED)
		return 0;
	*verdict = nat_route(skb, DIR, &m, &k, &e);
	return 1;
}

SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key;
	struct overlay_rx rx;
	struct packet p;
	__be32 outer;
	int ret;

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0))
		return drop(skb, DIR, DROP_MALFORMED);
	ret = parse_packet(skb, &p);
	if (ret == PARSE_MALFORMED)
		return drop(skb, DIR, DROP_MALFORMED);
	if (ret == PARSE_VLAN)
		return drop(skb, DIR, DROP_VLAN);
	outer = bpf_htonl(key.remote_ipv4);
	if (!p.ip) {
		if (p.eth->h_proto == bpf_htons(ETH_P_IPV6))
			return from_overlay6(skb, &key, outer, p.eth);
		return drop(skb, DIR, DROP_ETHERTYPE);
	}
	ret = overlay_judge4(&rx, p.eth->h_source, p.ip->saddr, p.ip->daddr, key.tunnel_id, outer);
	if (ret == OVERLAY_RX_SELF) {
		if (service_reply(skb, &p, &ret))
			return ret;
		return to_stack(skb);
	}
	if (ret)
		return drop(skb, DIR, ret);
	/* A reply netfilter must un-NAT: from a remote endpoint (a Service's
	 * backend there), or from the peer host itself (a Service whose
	 * endpoint is that host's address, as the API server's: DNATed here,
	 * routed out of the uplink, answered through the tunnel). */
	if (kernel_nat_fragment(rx.net, &p) ||
	    (p.has_l4 &&
	     kernel_nat_reply(skb, rx.net, p.ip->protocol, p.ip->saddr, p.ip->daddr, p.l4.udp.source, p.l4.udp.dest)))
		return to_stack(skb);
	if (!rx.src)
		overlay_remember_host_flow(&p);
	return overlay_deliver(skb, p.eth, rx.dst, outer);
}
