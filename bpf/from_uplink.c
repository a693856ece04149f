// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* TCX ingress on an uplink: what arrives from outside.
 *
 * Replies to masqueraded flows and packets to published ports are translated
 * and delivered straight into their container with bpf_redirect_peer.
 * Malformed frames (parse.h) and martian addresses are dropped; so is
 * anything else addressed to a container (direct routing protection, see
 * unsolicited()), except on nat-unprotected networks, whose inbound flows
 * are tracked as routed. New inbound flows start in a table of their class:
 * TCP in the embryonic table until the client acknowledges the container's
 * answer, datagrams in ct_inbound (conntrack.h). IPv6 replies of
 * masqueraded flows (NAT66, lib/nat6.h) are translated back and delivered,
 * so are new IPv6 flows to ports published on every address, to the
 * host's own IPv6 addresses (published6); other IPv6 to a container's
 * address (a subnets6 prefix but its gateway) is dropped as direct
 * routing, except new flows of nat-unprotected networks (unprotected6),
 * tracked as routed as IPv4's are. VXLAN from a peer host for a local
 * endpoint is decapsulated and delivered here (lib/overlay_decap.h); the
 * rest of it goes to the host's VXLAN device. Everything
 * else (traffic for the host itself, ARP, other IPv6, frames for a VLAN
 * device on the uplink) goes to the stack untouched.
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
#include "lib/firewall.h"
#include "lib/overlay.h"
#include "lib/overlay_decap.h"
#include "lib/lb.h"
#include "lib/ipv6.h"
#include "lib/nat6.h"
#include "lib/nat64.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define DIR DIR_FROM_UPLINK

static __always_inline int pass(struct __sk_buff *skb)
{
	count_verdict(DIR, VERDICT_PASS, skb->len);
	return TC_ACT_OK;
}

/* Only entries that deliver into a container may be entered from outside;
 * hairpin flows are container-to-container. A Service's flow to an
 * endpoint elsewhere is entered from outside both ways (the client; a
 * node address answering), and routed. */
static __always_inline int inbound(const struct ct_entry *e)
{
	return (e->ifindex && e->kind != CT_KIND_HAIRPIN) || e->kind == CT_KIND_SERVICE_ROUTED;
}

static __always_inline int deliver(struct __sk_buff *skb, const struct l4_meta *m, const struct ct_key *k,
				   const struct ct_entry *e, const struct icmp_err *ie)
{
	if (m->frag)
		return drop(skb, DIR, DROP_FRAGMENT);
	if (m->ttl <= 1)
		return drop(skb, DIR, DROP_TTL_EXCEEDED);
	if (!e->ifindex)
		return ie ? pass(skb) : nat_route(skb, DIR, m, k, e);
	if (ie ? nat_icmp_error_apply(skb, m, k, ie, e) : nat_apply(skb, m, k, e))
		return drop(skb, DIR, DROP_CSUM_FAILED);
	return deliver_endpoint(skb, DIR, e->ifindex);
}

/* Not verdicts: the packet starts the inbound flow in fe, with its reply
 * tuple as it is, or with a source port to allocate. */
#define NEW_FLOW 0x100
#define NEW_ROUTED_FLOW 0x101

/* A new flow to a published port, if the user firewall (firewall.h) lets
 * its source in. The reply tuple is the container's
 * address with the client's: no port is allocated, so a reply tuple another
 * flow holds is a conflict. */
static __always_inline int published(struct __sk_buff *skb, const struct port_entry *pb, const struct ct_key *k,
				     const struct l4_meta *m, struct ct_entry *fe)
{
	struct endpoint_info *ep;

	if (m->frag)
		return drop(skb, DIR, DROP_FRAGMENT);
	if (m->ttl <= 1)
		return drop(skb, DIR, DROP_TTL_EXCEEDED);
	if (fw_active()) {
		ep = bpf_map_lookup_elem(&endpoints, &pb->ifindex);
		if (!fw_allows(k->saddr, k->proto, k->dport, 1, ep ? ep->net_id : 0))
			return drop(skb, DIR, DROP_FIREWALL);
	}
	fe->new_saddr = k->saddr;
	fe->new_sport = k->sport;
	fe->new_daddr = pb->container_ip;
	fe->new_dport = pb->container_port;
	fe->ifindex = pb->ifindex;
	fe->kind = CT_KIND_DNAT;
	return NEW_FLOW;
}

/* A new flow from outside to a service's NodePort (on the uplink's address)
 * or external address (lb.h). To an endpoint on this node it is DNATed
 * with the client's address kept, as a published port. To one elsewhere
 * (externalTrafficPolicy Cluster) it is DNATed and SNATed to this node,
 * as kube-proxy masquerades it, so the answers come back here: its
 * underlay address towards another node's pod (the VXLAN device's route;
 * from_overlay takes the answers), the uplink's towards a node's own
 * address. Affinity keys on the client's address. Without endpoints the
 * stack answers (no socket holds the port: a TCP RST or an ICMP port
 * unreachable, what kube-proxy's REJECT sends); with
 * externalTrafficPolicy Local and none here, the packet is dropped, as
 * kube-proxy does. */
static __always_inline int serviced(struct __sk_buff *skb, const struct lb_service *svc, const struct uplink_info *upl,
				    const struct ct_key *k, const struct l4_meta *m, struct ct_entry *fe)
{
	__u32 n = svc->flags & LB_F_EXTERNAL_LOCAL ? svc->local_count : svc->count;
	struct bpf_fib_lookup fib;
	struct port_entry pb = {};
	struct endpoint_info *ep;
	struct lb_backend b;
	long rc;

	if (!svc->count)
		return pass(skb);
	if (lb_pick(svc, n, k->saddr, bpf_get_prandom_u32(), &b))
		return drop(skb, DIR, DROP_SERVICE_NO_LOCAL_ENDPOINT);
	ep = bpf_map_lookup_elem(&endpoint_ips, &b.addr);
	if (ep) {
		pb.container_ip = b.addr;
		pb.container_port = b.port;
		pb.ifindex = ep->ifindex;
		return published(skb, &pb, k, m, fe);
	}
	/* What deliver() and nat_route() would refuse is refused before the
	 * flow's entries are made. */
	if (m->frag)
		return drop(skb, DIR, DROP_FRAGMENT);
	if (m->ttl <= 1)
		return drop(skb, DIR, DROP_TTL_EXCEEDED);
	if (fw_active() && !fw_allows(k->saddr, k->proto, k->dport, 1, 0))
		return drop(skb, DIR, DROP_FIREWALL);
	fe->new_saddr = bpf_map_lookup_elem(&remote_endpoints, &b.addr) ? overlay_self_addr() : upl->ip;
	if (!fe->new_saddr)
		return drop(skb, DIR, DROP_FIB_FAILED);
	rc = fib_lookup4(skb, &fib, fe->new_saddr, b.addr, m);
	if (rc < 0 || !fib_forwardable(rc))
		return drop(skb, DIR, DROP_FIB_FAILED);
	fe->new_sport = k->sport;
	fe->new_daddr = b.addr;
	fe->new_dport = b.port;
	fe->kind = CT_KIND_SERVICE_ROUTED;
	return NEW_ROUTED_FLOW;
}

/* A new flow from outside to a container of a nat-unprotected network:
 * tracked as routed (no translation; the firewall's network and global
 * scopes judge it), so the container's replies leave
 * with its own address instead of being masqueraded as a flow of their
 * own. No endpoint, no flow (fe NULL: fragments, ICMP errors, entries of
 * other kinds): the stack's. */
static __always_inline int unprotected(struct __sk_buff *skb, const struct ct_key *k, const struct l4_meta *m,
				       struct ct_entry *fe)
{
	struct endpoint_info *ep;

	if (!fe || m->frag || m->ttl <= 1)
		return pass(skb);
	ep = bpf_map_lookup_elem(&endpoint_ips, &k->daddr);
	if (!ep)
		return pass(skb);
	if (!fw_allows(k->saddr, k->proto, k->dport, 0, ep->net_id))
		return drop(skb, DIR, DROP_FIREWALL);
	fe->new_saddr = k->saddr;
	fe->new_sport = k->sport;
	fe->new_daddr = k->daddr;
	fe->new_dport = k->dport;
	fe->ifindex = ep->ifindex;
	fe->kind = CT_KIND_ROUTED;
	return NEW_FLOW;
}

/* Starts the inbound flow fe describes and delivers this first packet, in
 * the table of its class (conntrack.h): TCP embryonic until its client
 * proves its address, datagrams in ct_inbound for good, so no flood from
 * outside can evict established flows. */
static __always_inline int start_inbound(struct __sk_buff *skb, const struct ct_key *k, const struct l4_meta *m,
					 struct ct_entry *fe, int alloc)
{
	int ret;

	fe->state = ct_initial_state(m);
	ret = nat_start_flow(skb, DIR, k, m, fe, alloc, ct_inbound_table(k->proto));
	if (ret)
		return ret;
	return deliver(skb, m, k, fe, NULL);
}

/* Loopback and "this network" addresses never come from a wire: without
 * this, a port published on 127.0.0.1 would answer a frame addressed to
 * 127.0.0.1 at the uplink's MAC. Neither do multicast, class E or broadcast
 * sources. 0.0.0.0 as a source stays (DHCP). */
static __always_inline int martian(__be32 saddr, __be32 daddr)
{
	__u32 s = bpf_ntohl(saddr) >> 24;

	return s == 127 || s >= 224 || martian_daddr(daddr);
}

/* Nor do the host's own addresses, a martian source too. Asked only of
 * packets no flow entry takes in: no entry a packet from outside can hit
 * has a host address as its source (the host reaches its containers
 * through the socket hooks, and a container's packets to the host go to
 * the stack untracked), so the hot path saves the lookup. */
static __always_inline int from_own_address(__be32 saddr)
{
	return bpf_map_lookup_elem(&uplink_ips, &saddr) != NULL;
}

/* A packet that is no reply and no published port. Addressed to a
 * container (its network's subnet, but not the gateway, which is the host),
 * the stack would route it into the bridge: Docker 28's direct routing
 * protection drops it, unless the network's gateway mode is
 * nat-unprotected. Internal networks are never reachable. Everything else
 * is the host's own traffic. With fe, returns NEW_FLOW if the packet starts
 * a flow of a nat-unprotected network. */
static __always_inline int unsolicited(struct __sk_buff *skb, const struct ct_key *k, const struct l4_meta *m,
				       struct ct_entry *fe)
{
	struct subnet_key key = { .prefixlen = 32, .addr = k->daddr };
	struct network_info *net;
	__u32 *net_id;

	net_id = bpf_map_lookup_elem(&subnets, &key);
	if (!net_id)
		return pass(skb);
	net = bpf_map_lookup_elem(&networks, net_id);
	if (net && net->gateway == k->daddr)
		return pass(skb);
	if (net && (net->flags & (NET_F_UNPROTECTED | NET_F_INTERNAL)) == NET_F_UNPROTECTED)
		return unprotected(skb, k, m, fe);
	return drop(skb, DIR, DROP_DIRECT_ROUTING);
}

/* A reply of a masqueraded IPv6 flow (nat6.h), a packet of a flow to a
 * published port, or an ICMPv6 error about one: translated and delivered
 * into its container. 0: none (no flow, or what the flow's entry cannot
 * deliver: a fragment); *t says whether k and m hold a tuple. */
static __always_inline int nat66_reply(struct __sk_buff *skb, struct nat6_scratch *s, const struct packet6 *p,
				       struct ct6_key *k, struct l4_meta *m, enum tuple_result *t)
{
	enum ct_table ct = CT_NONE;

	*t = TUPLE_NONE;
	if (p->proto == NH_ICMPV6 && icmp6_is_error(p->icmp_type)) {
		__u32 inner;

		if (!nat66_icmp_error_lookup(skb, p, k, &inner, &s->e, 1))
			return 0;
		if (p->ip.hop_limit <= 1)
			return drop(skb, DIR, DROP_TTL_EXCEEDED);
		if (nat66_icmp_error_apply(skb, p, k, inner, &s->e))
			return drop(skb, DIR, DROP_CSUM_FAILED);
		return deliver_endpoint(skb, DIR, s->e.ifindex);
	}
	*t = ct6_extract(skb, p, k, m);
	if (*t != TUPLE_OK)
		return 0;
	ct = ct6_lookup_inbound(k, m, &s->e, &s->pe);
	if (!ct)
		return 0;
	if (ct == CT_EMBRYONIC)
		ct6_promote(k, &s->e, m);
	if (!s->e.ifindex || s->e.kind == CT_KIND_HAIRPIN) {
		*t = TUPLE_NONE; /* a flow's, but not one that enters a container from outside */
		return 0;
	}
	if (m->ttl <= 1)
		return drop(skb, DIR, DROP_TTL_EXCEEDED);
	if (s->e.kind == CT_KIND_NAT64) {
		if (m->frag)
			return drop(skb, DIR, DROP_FRAGMENT);
		if (m->l4_off != ETH_HLEN + IPV6_HLEN)
			return drop(skb, DIR, DROP_IPV6_EXT_HDR);
		if (nat64_to_ipv4(skb, m, k, &s->e))
			return drop(skb, DIR, DROP_CSUM_FAILED);
		return deliver_endpoint(skb, DIR, s->e.ifindex);
	}
	if (nat66_apply(skb, m, k, &s->e))
		return drop(skb, DIR, DROP_CSUM_FAILED);
	return deliver_endpoint(skb, DIR, s->e.ifindex);
}

/* Starts the new inbound IPv6 flow whose forward entry s->e describes
 * (start_inbound's for IPv6): both entries, TCP embryonic until its
 * client acknowledges the container's answer (nat6.h), and delivers this
 * first packet into the container. */
static __always_inline int start_inbound6(struct __sk_buff *skb, struct nat6_scratch *s, const struct ct6_key *k,
					  const struct l4_meta *m)
{
	s->e.state = ct_initial_state(m);
	switch (ct6_create_fixed(k, &s->e, &s->pe, k->proto == IPPROTO_TCP)) {
	case CT_CREATED:
		break;
	case CT_RACED:
		if (ct6_lookup_inbound(k, m, &s->e, &s->pe) && s->e.ifindex)
			break;
		return drop(skb, DIR, DROP_CT_MAP_FULL);
	case CT_NO_PORT:
		return drop(skb, DIR, DROP_CT_CONFLICT);
	default:
		return drop(skb, DIR, DROP_CT_MAP_FULL);
	}
	if (nat66_apply(skb, m, k, &s->e))
		return drop(skb, DIR, DROP_CSUM_FAILED);
	return deliver_endpoint(skb, DIR, s->e.ifindex);
}

/* A new IPv6 flow to a port published on that IPv6 address or on every
 * address (port6_published; one bound to an IPv4 address does not answer
 * here) of the host's own addresses: a TCP SYN or a UDP datagram, from a unicast global source,
 * to an address the FIB says is local and no container subnet holds
 * (the gateways answer as IPv4's do not). DNATed to the container's IPv6
 * address and port with the client's address kept, and tracked in
 * conntrack6 as CT_KIND_DNAT (a TCP flow first in ct6_embryonic, until
 * its client acknowledges the container's answer, as IPv4's):
 * from_container's outside6 translates the replies back. An endpoint
 * without an IPv6 address is reached through NAT64 (lib/nat64.h; its TCP
 * flows are not embryonic). No such port: 0, the stack answers (RST, port
 * unreachable). The user
 * firewall judges the client by its IPv6 prefixes (fw_rules6) in the scopes
 * IPv4's published() uses: the port, the container's network, all. */
static __always_inline int published6(struct __sk_buff *skb, struct nat6_scratch *s, const struct ct6_key *k,
				      const struct l4_meta *m)
{
	struct subnet6_key key = { .prefixlen = 128 };
	struct port_entry *pb;
	struct ip6_key *cip;

	if (k->proto == IPPROTO_TCP) {
		if ((m->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST)) != TCP_FLAG_SYN)
			return 0;
	} else if (k->proto != IPPROTO_UDP) {
		return 0;
	}
	pb = port6_published(k->proto, &k->daddr, k->dport);
	if (!pb)
		return 0;
	cip = bpf_map_lookup_elem(&endpoints6, &pb->ifindex); /* NULL: IPv4 only, NAT64 */
	/* The reply must be able to leave as outside6 sends it: to a global
	 * unicast address. */
	if (ip6_is_multicast(&k->saddr) || ip6_is_link_local(&k->saddr) || ip6_is_unspecified(&k->saddr) ||
	    ip6_is_multicast(&k->daddr))
		return 0;
	__builtin_memcpy(key.addr, k->daddr.addr, sizeof(key.addr));
	if (bpf_map_lookup_elem(&subnets6, &key))
		return 0;
	if (!fib_local6(skb, nat6_fib(s), &k->saddr, &k->daddr, pb->ifindex))
		return 0;
	if (m->ttl <= 1)
		return drop(skb, DIR, DROP_TTL_EXCEEDED);
	if (fw_active()) {
		struct endpoint_info *ep = bpf_map_lookup_elem(&endpoints, &pb->ifindex);

		if (!fw6_allows(&k->saddr, k->proto, k->dport, 1, ep ? ep->net_id : 0))
			return drop(skb, DIR, DROP_FIREWALL);
	}
	if (!cip)
		return nat64_start(skb, DIR, s, k, m, pb);
	__builtin_memset(&s->e, 0, sizeof(s->e));
	s->e.new_saddr = k->saddr;
	s->e.new_sport = k->sport;
	s->e.new_daddr = *cip;
	s->e.new_dport = pb->container_port;
	s->e.ifindex = pb->ifindex;
	s->e.kind = CT_KIND_DNAT;
	return start_inbound6(skb, s, k, m);
}

/* A new IPv6 flow from outside to a container of a nat-unprotected
 * network (unprotected()'s for IPv6): a TCP SYN, a UDP datagram or an echo
 * request to an endpoint's global address, tracked as routed (addresses
 * and ports kept; TCP embryonic first, as published6's) and delivered with
 * the hop limit decremented, so the container's replies leave
 * untranslated through tracked6. The firewall's network and global scopes
 * judge it, as IPv4's. */
static __always_inline int unprotected6(struct __sk_buff *skb, struct nat6_scratch *s, const struct ct6_key *k,
					const struct l4_meta *m, __u32 net_id)
{
	struct endpoint_info *ep = bpf_map_lookup_elem(&endpoint_ips6, &k->daddr);

	if (!ep || ep->net_id != net_id)
		return pass(skb); /* no endpoint: the stack, which forwards no IPv6 */
	if ((k->proto == IPPROTO_TCP &&
	     (m->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST)) != TCP_FLAG_SYN) ||
	    (k->proto == NH_ICMPV6 && m->icmp_type != ICMP6_ECHO_REQUEST))
		return drop(skb, DIR, DROP_NO_FLOW);
	if (ip6_is_multicast(&k->saddr) || ip6_is_link_local(&k->saddr) || ip6_is_unspecified(&k->saddr))
		return drop(skb, DIR, DROP_MARTIAN);
	if (m->ttl <= 1)
		return drop(skb, DIR, DROP_TTL_EXCEEDED);
	if (fw_active() && !fw6_allows(&k->saddr, k->proto, k->dport, 0, net_id))
		return drop(skb, DIR, DROP_FIREWALL);
	__builtin_memset(&s->e, 0, sizeof(s->e));
	s->e.new_saddr = k->saddr;
	s->e.new_sport = k->sport;
	s->e.new_daddr = k->daddr;
	s->e.new_dport = k->dport;
	s->e.ifindex = ep->ifindex;
	s->e.kind = CT_KIND_ROUTED;
	return start_inbound6(skb, s, k, m);
}

/* IPv6: replies of masqueraded and routed flows and packets of flows to
 * published ports go into their containers (nat66_reply), new flows to
 * published ports start there (published6). To a container's address
 * anything else is direct routing, dropped, but on a nat-unprotected
 * network, where new flows start (unprotected6); to its network's gateway
 * (the host) and everything else it goes to the stack untouched. A frame
 * too short to hold a destination too: the stack drops it. */
static __always_inline int ipv6(struct __sk_buff *skb)
{
	struct subnet6_key key = { .prefixlen = 128 };
	struct nat6_scratch *s = nat6_scratch_get();
	enum tuple_result t = TUPLE_NONE;
	struct network6_info *net6;
	struct network_info *net;
	struct packet6 p;
	struct l4_meta m;
	struct ct6_key k;
	__u32 *net_id;
	int ret;

	if (s && parse_ipv6(skb, &p) == PARSE6_OK) {
		/* NAT64's IPv4 side is keyed by mapped addresses in conntrack6:
		 * never from a wire (RFC 4291 2.5.5.2). */
		if (ip6_is_v4mapped(&p.ip.saddr) || ip6_is_v4mapped(&p.ip.daddr))
			return drop(skb, DIR, DROP_MARTIAN);
		ret = nat66_reply(skb, s, &p, &k, &m, &t);
		if (ret)
			return ret;
		if (t == TUPLE_OK) {
			ret = published6(skb, s, &k, &m);
			if (ret)
				return ret;
		}
	}
	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct ip6_hdr, daddr), key.addr, sizeof(key.addr)))
		return pass(skb);
	net_id = bpf_map_lookup_elem(&subnets6, &key);
	if (!net_id)
		return pass(skb);
	net6 = bpf_map_lookup_elem(&networks6, net_id);
	if (net6 && ip6_equal((const struct ip6_key *)key.addr, (const struct ip6_key *)net6->gateway6))
		return pass(skb);
	net = bpf_map_lookup_elem(&networks, net_id);
	if (s && t == TUPLE_OK && net && (net->flags & (NET_F_UNPROTECTED | NET_F_INTERNAL)) == NET_F_UNPROTECTED)
		return unprotected6(skb, s, &k, &m, *net_id);
	return drop(skb, DIR, DROP_DIRECT_ROUTING);
}

SEC("tc")
int from_uplink(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ingress_ifindex;
	struct uplink_info *upl;
	struct port_entry *pb;
	struct lb_service *svc;
	enum parse_result ret;
	enum tuple_result t;
	enum ct_table ct = CT_NONE;
	struct ct_entry e;
	int verdict;
	struct l4_meta m;
	struct ct_key k;
	struct packet p;

	upl = bpf_map_lookup_elem(&uplinks, &ifindex);
	if (!upl)
		return pass(skb);
	ret = parse_packet(skb, &p);
	if (ret == PARSE_MALFORMED)
		return drop(skb, DIR, DROP_MALFORMED);
	if (ret == PARSE_NOT_IPV4 && p.eth->h_proto == bpf_htons(ETH_P_IPV6))
		return ipv6(skb);
	if (ret != PARSE_OK)
		return pass(skb); /* ARP, frames for a VLAN device on the uplink */
	if (martian(p.ip->saddr, p.ip->daddr))
		return drop(skb, DIR, DROP_MARTIAN);
	if (overlay_underlay_packet(&p, upl->ip)) {
		verdict = overlay_decap(skb, &p);
		if (verdict != TC_ACT_UNSPEC)
			return verdict;
		return pass(skb); /* the VXLAN device's, and from_overlay's */
	}

	t = ct_extract(&p, &k, &m);
	if (t == TUPLE_OK) {
		ct = ct_lookup(&k, &m, &e);
		if (ct && inbound(&e)) {
			if (ct == CT_EMBRYONIC)
				ct_promote(&k, &e, &m);
			return deliver(skb, &m, &k, &e, NULL);
		}
	}
	if (from_own_address(p.ip->saddr))
		return drop(skb, DIR, DROP_MARTIAN);
	if (t == TUPLE_ICMP_ERROR) {
		struct icmp_err ie;

		if (nat_icmp_error_lookup(skb, &m, &ie, &e) && inbound(&e))
			return deliver(skb, &m, &k, &e, &ie);
		return unsolicited(skb, &k, &m, NULL);
	}
	if (t != TUPLE_OK || ct)
		return unsolicited(skb, &k, &m, NULL); /* ct: a flow's, but not one that enters from outside */
	__builtin_memset(&e, 0, sizeof(e));
	pb = NULL;
	svc = NULL;
	if (k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP) {
		pb = port_lookup(k.proto, k.daddr, k.dport, k.daddr == upl->ip);
		/* Only a SYN or a datagram starts a service's flow: the
		 * host's own inbound TCP, which no entry tracks, pays no
		 * service lookup. */
		if (!pb && (k.proto == IPPROTO_UDP || (m.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN))
			svc = lb_lookup(k.proto, k.daddr, k.dport, k.daddr == upl->ip);
	}
	if (pb)
		verdict = published(skb, pb, &k, &m, &e);
	else if (svc)
		verdict = serviced(skb, svc, upl, &k, &m, &e);
	else
		verdict = unsolicited(skb, &k, &m, &e);
	if (verdict != NEW_FLOW && verdict != NEW_ROUTED_FLOW)
		return verdict;
	return start_inbound(skb, &k, &m, &e, verdict == NEW_ROUTED_FLOW);
}
