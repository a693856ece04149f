// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* TCX ingress on the host side of every container veth: what a container sends.
 *
 * Same-network unicast IPv4 goes straight into the peer container with
 * bpf_redirect_peer, skipping the bridge and netfilter; on an overlay
 * network, to a peer on another host, it is redirected to the VXLAN device
 * with the tunnel key of that host and the network's VNI. Packets of tracked
 * flows are translated and delivered; new flows to a published port on a
 * host IP are hairpinned, and new flows that the FIB routes out of an uplink
 * are masqueraded. On networks with service prefixes, what the kernel's
 * netfilter translates (kube-proxy's Services) is handed to the stack
 * (lib/kernel_nat.h). Everything else that passes the anti-spoofing and
 * isolation checks goes to the kernel stack.
 *
 * TTL: a packet we would route with TTL <= 1 goes to the stack untranslated,
 * which drops it and sends the container the ICMP time exceeded.
 *
 * What a container may send: IPv4 (validated by parse_packet), ARP whose
 * sender addresses are its own, and IPv6 on a dual-stack network
 * (NET_F_IPV6; elsewhere DROP_IPV6). A container of an IPv6-only network
 * (its endpoint's IPv4 address 0) sends neither IPv4 nor ARP
 * (DROP_NO_IPV4). VLAN-tagged frames (containers get
 * untagged veths) and every other ethertype are dropped with a reason of
 * their own.
 *
 * IPv6 (from_container6), validated by parse_ipv6 (lib/ipv6.h): its source
 * must be the container's global address (endpoints6) or the EUI-64
 * link-local one of its MAC, or :: for duplicate address detection and MLD
 * to multicast. Router advertisements and redirects are dropped; neighbour
 * solicitations and advertisements must speak for the container itself
 * (check_nd), and a solicitation for a peer (with --icc) or the gateway is
 * answered in place. Unicast to a peer of the same network goes straight
 * into it as IPv4 does, hop limit untouched (the same link); multicast,
 * link-local addresses, the network's gateway and subnet go to the bridge
 * and the stack, another network's subnet nowhere but its gateway. Beyond
 * the container subnets (not from an internal network): the host's own
 * addresses, as the FIB tells, and TCP, UDP and ICMPv6 echo that the FIB
 * routes out of an uplink: masqueraded to the uplink's address on a network
 * with masquerade (NAT66, outside6 and lib/nat6.h), routed with the
 * container's own address on one without, tracked either way so that only
 * replies come back in; nothing else. */

#include "lib/common.h"
#include "lib/drop.h"
#include "lib/metrics.h"
#include "lib/endpoint.h"
#include "lib/parse.h"
#include "lib/conntrack.h"
#include "lib/nat.h"
#include "lib/fib.h"
#include "lib/deliver.h"
#include "lib/overlay.h"
#include "lib/overlay6.h"
#include "lib/overlay_encap.h"
#include "lib/arp.h"
#include "lib/ipv6.h"
#include "lib/nd.h"
#include "lib/nat6.h"
#include "lib/nat64.h"
#include "lib/kernel_nat.h"
#include "lib/firewall.h" /* not used here: bpf2go mirrors the layouts from this object */

char __license[] SEC("license") = "Dual BSD/GPL";

#define DIR DIR_FROM_CONTAINER

#include "lib/hairpin6.h" /* after DIR */

static __always_inline int pass(struct __sk_buff *skb)
{
	count_verdict(DIR, VERDICT_PASS, skb->len);
	return TC_ACT_OK;
}

/* Answers a request for a remote endpoint of an overlay network in place and
 * sends it back into the container. */
static __always_inline int arp_reply(struct __sk_buff *skb, const struct arp_eth_ipv4 *req, const __u8 *mac)
{
	if (arp_answer(skb, req, mac))
		return drop(skb, DIR, DROP_WRITE_FAILED);
	count_verdict(DIR, VERDICT_FORWARD, skb->len);
	return bpf_redirect(skb->ingress_ifindex, 0);
}

/* A container's ARP must speak for itself: the sender hardware address is
 * its MAC and the sender protocol address its IP, or 0.0.0.0 in a request
 * (an RFC 5227 probe). Else it would poison the host's neighbour table. */
static __always_inline int check_arp(struct __sk_buff *skb, const struct endpoint_info *src)
{
	struct arp_eth_ipv4 a;
	__be32 spa;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &a, sizeof(a)))
		return drop(skb, DIR, DROP_MALFORMED);
	if (!arp_is_eth_ipv4(&a) || (a.op != bpf_htons(ARP_OP_REQUEST) && a.op != bpf_htons(ARP_OP_REPLY)))
		return drop(skb, DIR, DROP_MALFORMED);
	if (!src->ip)
		return drop(skb, DIR, DROP_NO_IPV4);
	__builtin_memcpy(&spa, a.spa, sizeof(spa));
	if (!mac_equal(a.sha, src->mac) || (spa != src->ip && !(spa == 0 && a.op == bpf_htons(ARP_OP_REQUEST))))
		return drop(skb, DIR, DROP_SPOOFED_ARP);
	if (a.op == bpf_htons(ARP_OP_REQUEST)) {
		__be32 tpa;
		struct remote_endpoint *r;

		__builtin_memcpy(&tpa, a.tpa, sizeof(tpa));
		r = remote_endpoint_of(src, tpa);
		if (r)
			return arp_reply(skb, &a, r->mac);
	}
	return pass(skb); /* the bridge and the host answer it */
}

/* What the IPv6 checks decide: a drop reason (enum drop_reason), or one
 * of these. Each verdict is then taken in one place (from_container6),
 * which keeps the paths the verifier walks few. */
enum v6_action {
	V6_PASS = 0x100,
	V6_DELIVER,   /* into the peer container in v6_out.dst */
	V6_ND_ANSWER, /* the solicitation answered with v6_out.mac */
	V6_OUTSIDE,   /* beyond the container subnets: the host's, or NAT66 (outside6) */
};

struct v6_out {
	struct endpoint_info *dst;
	const __u8 *mac;
	int router;
};

/* The addresses a container may send IPv6 from. */
struct addrs6 {
	struct ip6_key *global; /* endpoints6's; NULL: none */
	struct ip6_key ll;      /* the EUI-64 link-local one of its MAC */
};

static __always_inline int own_addr6(const struct addrs6 *a, const struct ip6_key *addr)
{
	return (a->global && ip6_equal(addr, a->global)) || ip6_equal(addr, &a->ll);
}

/* :: is a source only before a container has an address: duplicate address
 * detection's solicitations and MLD listener messages, to multicast. */
static __always_inline int unspecified_source_ok(const struct packet6 *p)
{
	if (!ip6_is_unspecified(&p->ip.saddr) || !ip6_is_multicast(&p->ip.daddr) || p->proto != NH_ICMPV6 || p->frag)
		return 0;
	return p->icmp_type == ICMP6_NEIGH_SOLICIT || p->icmp_type == ICMP6_MLD_REPORT ||
	       p->icmp_type == ICMP6_MLD_DONE || p->icmp_type == ICMP6_MLD2_REPORT;
}

/* A solicitation for the network's gateway, or (with --icc) for a peer of
 * the sender's network, is answered here; the rest goes on (0). */
static __always_inline int answer_ns(const struct endpoint_info *src, const struct network_info *net,
				     const struct network6_info *net6, const struct ip6_key *target, struct v6_out *out)
{
	struct endpoint_info *dst;

	if (ip6_equal(target, (const struct ip6_key *)net6->gateway6)) {
		out->mac = net->gateway_mac;
		out->router = 1;
		return V6_ND_ANSWER;
	}
	dst = bpf_map_lookup_elem(&endpoint_ips6, target);
	if (dst && dst->net_id == src->net_id && dst->ifindex != src->ifindex && (net->flags & NET_F_ICC)) {
		out->mac = dst->mac;
		out->router = 0;
		return V6_ND_ANSWER;
	}
	return 0;
}

/* A container's neighbour solicitation or advertisement must speak for
 * itself, as its ARP does: its link-layer address options name its MAC,
 * an advertisement's target is one of its addresses. A solicitation of the
 * common shape (one source link-layer address option, nothing else, to the
 * target or its solicited-node address) may be answered in place
 * (answer_ns, its target in *target). 0: on to the destination checks,
 * which pass what goes to multicast (the bridge floods it). */
static __always_inline int check_nd(struct __sk_buff *skb, const struct endpoint_info *src,
				    const struct network_info *net, const struct network6_info *net6,
				    const struct packet6 *p, const struct addrs6 *a, struct ip6_key *target,
				    struct v6_out *out)
{
	__u32 n = 0, sllao = 0;
	struct nd_msg msg;
	enum nd_check c;

	/* RFC 4861 7.1: receivers discard ND that a router may have
	 * forwarded; RFC 6980: and fragmented ND. */
	if (p->frag || p->ip.hop_limit != 255 || p->icmp_code || p->l4_off + sizeof(msg) > p->end ||
	    bpf_skb_load_bytes(skb, p->l4_off, &msg, sizeof(msg)))
		return DROP_MALFORMED;
	c = nd_check_options(skb, p->l4_off + sizeof(msg), p->end, src->mac, &n, &sllao);
	if (c != ND_OK)
		return c == ND_MALFORMED ? DROP_MALFORMED : DROP_SPOOFED_ND;
	if (p->icmp_type == ICMP6_NEIGH_ADVERT)
		return own_addr6(a, &msg.target) ? 0 : DROP_SPOOFED_ND;
	if (ip6_is_unspecified(&p->ip.saddr)) /* duplicate address detection: no option */
		return sllao ? DROP_MALFORMED : 0;
	if (n != 1 || sllao != 1 || skb->len != ND_NS_FRAME_LEN || p->end != ND_NS_FRAME_LEN ||
	    p->l4_off != ETH_HLEN + IPV6_HLEN ||
	    !(ip6_equal(&p->ip.daddr, &msg.target) || ip6_is_solicited_node(&p->ip.daddr, &msg.target)))
		return 0;
	*target = msg.target;
	return answer_ns(src, net, net6, target, out);
}

/* Where a container's IPv6 packet may go: a peer of its network straight
 * into it (with --icc); multicast, link-local addresses that are no
 * endpoint's (the host's), its gateway and the rest of its subnet to the
 * bridge and the stack; another network's gateway to the stack, the rest
 * of that network nowhere. Beyond that V6_OUTSIDE (outside6), from no
 * internal network. */
static __always_inline int route6(struct __sk_buff *skb, const struct endpoint_info *src,
				  const struct network_info *net, const struct network6_info *net6,
				  const struct packet6 *p, struct v6_out *out)
{
	struct subnet6_key key = { .prefixlen = 128 };
	struct network6_info *other;
	struct endpoint_info *dst;
	__u32 *net_id;

	if (ip6_is_multicast(&p->ip.daddr))
		return V6_PASS;
	dst = bpf_map_lookup_elem(&endpoint_ips6, &p->ip.daddr);
	if (dst) {
		if (dst->net_id != src->net_id)
			return DROP_NETWORK_ISOLATION;
		if (!(net->flags & NET_F_ICC))
			return DROP_ICC_DISABLED;
		if (dst->ifindex == src->ifindex)
			return V6_PASS;
		out->dst = dst; /* the same link: no hop limit decrement */
		return V6_DELIVER;
	}
	if (ip6_is_link_local(&p->ip.daddr) || ip6_equal(&p->ip.daddr, (const struct ip6_key *)net6->gateway6))
		return V6_PASS;
	__builtin_memcpy(key.addr, p->ip.daddr.addr, sizeof(key.addr));
	net_id = bpf_map_lookup_elem(&subnets6, &key);
	if (net_id) {
		if (*net_id == src->net_id)
			return V6_PASS;
		other = bpf_map_lookup_elem(&networks6, net_id);
		if (other && ip6_equal(&p->ip.daddr, (const struct ip6_key *)other->gateway6))
			return V6_PASS;
		return DROP_NETWORK_ISOLATION;
	}
	if (net->flags & NET_F_INTERNAL)
		return DROP_INTERNAL_NETWORK;
	return V6_OUTSIDE;
}

/* The checks of a container's IPv6 packet, in order (see the top of the
 * file): a drop reason or an enum v6_action. */
static __always_inline int check_ipv6(struct __sk_buff *skb, const struct endpoint_info *src, struct packet6 *p,
				      struct ip6_key *target, struct v6_out *out)
{
	struct network_info *net = bpf_map_lookup_elem(&networks, &src->net_id);
	__u32 ifindex = src->ifindex;
	struct network6_info *net6;
	struct addrs6 a;
	int ret;

	if (!net || !(net->flags & NET_F_IPV6))
		return DROP_IPV6;
	net6 = bpf_map_lookup_elem(&networks6, &src->net_id);
	if (!net6)
		return DROP_IPV6;
	ret = parse_ipv6(skb, p);
	if (ret != PARSE6_OK)
		return ret == PARSE6_MALFORMED ? DROP_MALFORMED : DROP_IPV6_EXT_HDR;
	a.global = bpf_map_lookup_elem(&endpoints6, &ifindex);
	ip6_link_local(&a.ll, src->mac);
	if (!own_addr6(&a, &p->ip.saddr) && !unspecified_source_ok(p))
		return DROP_SPOOFED_IP;
	if (p->proto == NH_ICMPV6 && !p->later) {
		switch (p->icmp_type) {
		case ICMP6_ROUTER_ADVERT:
		case ICMP6_REDIRECT:
			return DROP_ROUTER_ND;
		case ICMP6_NEIGH_SOLICIT:
		case ICMP6_NEIGH_ADVERT:
			ret = check_nd(skb, src, net, net6, p, &a, target, out);
			if (ret)
				return ret;
		}
	}
	return route6(skb, src, net, net6, p, out);
}

/* The ICMPv6 error (type; word: Packet Too Big's MTU) the container's
 * gateway answers a packet that cannot leave with (nat6_error): the
 * host does not forward IPv6, so its stack would answer nothing. */
static __always_inline int error6(struct __sk_buff *skb, const struct endpoint_info *src, const struct packet6 *p,
				  struct nat6_scratch *s, __u8 type, __u32 word)
{
	struct network_info *net = bpf_map_lookup_elem(&networks, &src->net_id);
	struct network6_info *net6 = bpf_map_lookup_elem(&networks6, &src->net_id);
	__u32 len = skb->len;

	if (!net || !net6)
		return drop(skb, DIR, DROP_IPV6_NOT_ROUTED);
	if (nat6_error(skb, s, p, (const struct ip6_key *)net6->gateway6, src->mac, net->gateway_mac, type, 0, word) !=
	    TC_ACT_REDIRECT)
		return drop(skb, DIR, DROP_WRITE_FAILED);
	count_verdict(DIR, VERDICT_FORWARD, len);
	return TC_ACT_REDIRECT;
}

/* A packet of a tracked IPv6 flow (k, e: its entry in s), out
 * through the FIB with the translated tuple. With hop limit 1, or too big
 * for the egress MTU, the gateway answers it (error6); what the FIB cannot
 * send otherwise goes to the stack, which drops it. */
static __always_inline int tracked6(struct __sk_buff *skb, const struct endpoint_info *src, const struct packet6 *p,
				    const struct l4_meta *m, const struct ct6_key *k, struct nat6_scratch *s)
{
	struct bpf_fib_lookup *fib = nat6_fib(s);
	long rc;

	if (s->e.ifindex)
		return drop(skb, DIR, DROP_IPV6_NOT_ROUTED); /* no entry delivers into a container from here */
	if (m->ttl <= 1)
		return error6(skb, src, p, s, ICMP6_TIME_EXCEED, 0);
	rc = fib_lookup6(skb, fib, s->e.new_saddr.addr, s->e.new_daddr.addr, 0, m->proto, 0);
	if (rc < 0)
		return drop(skb, DIR, DROP_FIB_FAILED);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return error6(skb, src, p, s, ICMP6_PKT_TOOBIG, fib->mtu_result);
	if (!fib_forwardable(rc))
		return pass(skb);
	if (nat66_apply(skb, m, k, &s->e))
		return drop(skb, DIR, DROP_CSUM_FAILED);
	return deliver_fib6(skb, DIR, fib, rc);
}

/* A container's own ICMPv6 error to beyond the container subnets: out
 * through the FIB, translated, if it is about a packet of a tracked flow
 * (a client of a published port told "port unreachable" or "packet too
 * big"); else it would leave untranslated: DROP_IPV6_NOT_ROUTED. */
static __always_inline int error_out6(struct __sk_buff *skb, const struct packet6 *p, struct nat6_scratch *s)
{
	struct ct6_key k;
	__u32 inner;
	long rc;

	if (p->frag || !nat66_icmp_error_lookup(skb, p, &k, &inner, &s->e, 0))
		return drop(skb, DIR, DROP_IPV6_NOT_ROUTED);
	if (p->ip.hop_limit <= 1)
		return drop(skb, DIR, DROP_TTL_EXCEEDED);
	rc = fib_lookup6(skb, nat6_fib(s), s->e.new_saddr.addr, p->ip.daddr.addr, 0, NH_ICMPV6, 0);
	if (!fib_forwardable(rc))
		return drop(skb, DIR, DROP_FIB_FAILED);
	if (nat66_icmp_error_apply_out(skb, p, &k, inner, &s->e))
		return drop(skb, DIR, DROP_CSUM_FAILED);
	return deliver_fib6(skb, DIR, nat6_fib(s), rc);
}

/* A container's IPv6 to beyond the container subnets (lib/nat6.h). The
 * host's own addresses, as the FIB tells, go to the stack. A packet of a
 * tracked flow is translated: a masqueraded flow's, or a reply of a flow
 * to a published port (from_uplink's published6), which leaves with the
 * host's address and port the client used. A new flow that the FIB routes
 * out of an uplink is masqueraded on a network with masquerade, and on one
 * without (--ip-masquerade=false) routed as it is, tracked as CT_KIND_ROUTED
 * so that from_uplink lets its replies in (and nothing else: the direct
 * routing protection). Everything else, fragments aside, is not routed:
 * DROP_IPV6_NOT_ROUTED. */
static __always_inline int outside6(struct __sk_buff *skb, const struct endpoint_info *src, const struct packet6 *p)
{
	struct network_info *net = bpf_map_lookup_elem(&networks, &src->net_id);
	struct nat6_scratch *s = nat6_scratch_get();
	enum tuple_result t;
	struct l4_meta m;
	struct ct6_key k;
	int masq;
	long rc;

	if (!s)
		return drop(skb, DIR, DROP_IPV6_NOT_ROUTED);
	if (p->proto == NH_ICMPV6 && icmp6_is_error(p->icmp_type))
		return error_out6(skb, p, s);
	t = ct6_extract(skb, p, &k, &m);
	if (t == TUPLE_OK && ct6_lookup(&k, &m, &s->e, &s->pe))
		return tracked6(skb, src, p, &m, &k, s);
	rc = fib_lookup6(skb, nat6_fib(s), p->ip.saddr.addr, p->ip.daddr.addr, p->ip.vtcfl, p->proto,
			 BPF_FIB_LOOKUP_SRC);
	/* The host's own (or nothing's: the stack answers). Not FWD_DISABLED:
	 * the kernel says it of every destination when the veth forwards no
	 * IPv6, so it tells nothing. */
	if (rc == BPF_FIB_LKUP_RET_NOT_FWDED || rc == BPF_FIB_LKUP_RET_BLACKHOLE ||
	    rc == BPF_FIB_LKUP_RET_UNREACHABLE || rc == BPF_FIB_LKUP_RET_PROHIBIT)
		return pass(skb);
	if (!net || (!fib_forwardable(rc) && rc != BPF_FIB_LKUP_RET_FRAG_NEEDED) ||
	    !bpf_map_lookup_elem(&uplinks, &nat6_fib(s)->ifindex))
		return drop(skb, DIR, DROP_IPV6_NOT_ROUTED);
	masq = !!(net->flags & NET_F_MASQUERADE);
	if (p->frag)
		return drop(skb, DIR, DROP_FRAGMENT);
	if (t != TUPLE_OK)
		return drop(skb, DIR, DROP_IPV6_NOT_ROUTED);
	/* What the stack would answer if it forwarded IPv6 (error6). */
	if (m.ttl <= 1)
		return error6(skb, src, p, s, ICMP6_TIME_EXCEED, 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return error6(skb, src, p, s, ICMP6_PKT_TOOBIG, nat6_fib(s)->mtu_result);
	/* What answers a flow never starts one (to_outside): a SYN-ACK or an
	 * RST, an echo reply. */
	if ((k.proto == IPPROTO_TCP &&
	     ((m.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK) ||
	      (m.tcp_flags & TCP_FLAG_RST))) ||
	    (k.proto == NH_ICMPV6 && m.icmp_type != ICMP6_ECHO_REQUEST))
		return drop(skb, DIR, DROP_NO_FLOW);
	__builtin_memset(&s->e, 0, sizeof(s->e));
	if (masq) {
		__builtin_memcpy(s->e.new_saddr.addr, nat6_fib(s)->ipv6_src, sizeof(s->e.new_saddr));
	} else {
		s->e.new_saddr = k.saddr;
		s->e.new_sport = k.sport;
	}
	s->e.new_daddr = k.daddr;
	s->e.new_dport = k.dport;
	s->e.peer_ifindex = src->ifindex;
	s->e.kind = masq ? CT_KIND_SNAT : CT_KIND_ROUTED;
	s->e.state = ct_initial_state(&m);
	switch (masq ? ct6_create(skb, &k, &s->e, &s->pe) : ct6_create_fixed(&k, &s->e, &s->pe, 0)) {
	case CT_CREATED:
		break;
	case CT_RACED:
		if (ct6_lookup(&k, &m, &s->e, &s->pe))
			break;
		return drop(skb, DIR, DROP_CT_MAP_FULL);
	case CT_NO_PORT:
		return drop(skb, DIR, masq ? DROP_NAT_EXHAUSTED : DROP_CT_CONFLICT);
	default:
		return drop(skb, DIR, DROP_CT_MAP_FULL);
	}
	if (nat66_apply(skb, &m, &k, &s->e))
		return drop(skb, DIR, DROP_CSUM_FAILED);
	return deliver_fib6(skb, DIR, nat6_fib(s), rc);
}

/* A container's IPv6 (see the top of the file). */
static __always_inline int from_container6(struct __sk_buff *skb, const struct endpoint_info *src,
					   const struct ethhdr *eth)
{
	struct v6_out out = {};
	struct ip6_key target;
	struct packet6 p;
	int ret;

	ret = check_ipv6(skb, src, &p, &target, &out);
	if (ret == V6_PASS || ret == V6_OUTSIDE) {
		int h = hairpin6(skb, src, &p); /* lib/hairpin6.h */

		if (h != HAIRPIN6_NONE)
			return h;
	}
	if (ret == V6_PASS) {
		ret = to_overlay6(skb, src, &p); /* a remote peer of an overlay network (lib/overlay6.h) */
		return ret == TC_ACT_UNSPEC ? pass(skb) : ret;
	}
	if (ret == V6_OUTSIDE)
		return outside6(skb, src, &p);
	if (ret == V6_DELIVER && out.dst)
		return deliver_peer(skb, DIR, eth, out.dst);
	if (ret == V6_ND_ANSWER && out.mac) {
		if (nd_answer(skb, &target, &p.ip.saddr, out.mac, src->mac, out.router))
			return drop(skb, DIR, DROP_WRITE_FAILED);
		count_verdict(DIR, VERDICT_FORWARD, skb->len);
		return bpf_redirect(skb->ingress_ifindex, 0);
	}
	return drop(skb, DIR, ret);
}

/* Everything but IPv4 (see the top of the file). */
static __always_inline int not_ipv4(struct __sk_buff *skb, const struct endpoint_info *src, const struct packet *p)
{
	if (p->eth->h_proto == bpf_htons(ETH_P_ARP))
		return check_arp(skb, src);
	if (p->eth->h_proto == bpf_htons(ETH_P_IPV6))
		return from_container6(skb, src, p->eth);
	return drop(skb, DIR, DROP_ETHERTYPE);
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

static __always_inline int in_container_subnets(__be32 daddr)
{
	struct subnet_key key = { .prefixlen = 32, .addr = daddr };

	return bpf_map_lookup_elem(&subnets, &key) != NULL;
}

/* A host address a wildcard published port answers on. */
static __always_inline int is_host_ip(__be32 daddr, const struct network_info *net)
{
	return daddr == net->gateway || bpf_map_lookup_elem(&uplink_ips, &daddr) != NULL;
}

/* The FIB cannot send it: too big for the egress MTU. With DF the stack sends
 * the ICMP fragmentation needed (PMTU discovery); without, we refuse to
 * fragment rather than let the stack forward it untranslated. */
static __always_inline int fib_refused(struct __sk_buff *skb, const struct l4_meta *m, long rc)
{
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && !m->df)
		return drop(skb, DIR, DROP_FRAG_NEEDED);
	return pass(skb);
}

/* A packet of a tracked flow, or an ICMP error about one (ie != NULL). */
static __always_inline int tracked(struct __sk_buff *skb, const struct l4_meta *m, const struct ct_key *k,
				   const struct ct_entry *e, const struct icmp_err *ie)
{
	struct bpf_fib_lookup fib;
	long rc = 0;

	if (m->frag)
		return drop(skb, DIR, DROP_FRAGMENT);
	if (!e->ifindex) {
		__be32 saddr = ie ? nat_icmp_error_saddr(k, ie, e) : e->new_saddr;

		rc = fib_lookup4_cached(skb, &fib, saddr, e->new_daddr, m);
		if (rc < 0)
			return drop(skb, DIR, DROP_FIB_FAILED);
		if (!fib_forwardable(rc))
			return fib_refused(skb, m, rc);
	}
	if (m->ttl <= 1)
		return pass(skb);
	if (ie ? nat_icmp_error_apply(skb, m, k, ie, e) : nat_apply(skb, m, k, e))
		return drop(skb, DIR, DROP_CSUM_FAILED);
	if (e->ifindex)
		return deliver_endpoint(skb, DIR, e->ifindex);
	return deliver_fib(skb, DIR, &fib, rc);
}

/* Creates the flow fe describes (with alloc, allocating its source port)
 * and translates this first packet. 0 on success, else the drop verdict. */
static __always_inline int start_flow(struct __sk_buff *skb, const struct ct_key *k, const struct l4_meta *m,
				      struct ct_entry *fe, int alloc)
{
	int ret = nat_start_flow(skb, DIR, k, m, fe, alloc, CT_MAIN);

	if (ret)
		return ret;
	if (nat_apply(skb, m, k, fe))
		return drop(skb, DIR, DROP_CSUM_FAILED);
	return 0;
}

/* A container reaches a published port through a host IP: DNAT to the
 * target and SNAT to the gateway, as Docker does, so the replies come back
 * through the datapath rather than straight to the client. */
static __always_inline int hairpin(struct __sk_buff *skb, const struct endpoint_info *src,
				   const struct network_info *net, const struct port_entry *pb, const struct ct_key *k,
				   const struct l4_meta *m)
{
	struct ct_entry fe = {};
	int ret;

	if (m->frag)
		return drop(skb, DIR, DROP_FRAGMENT);
	if (m->ttl <= 1)
		return pass(skb);
	fe.new_saddr = net->gateway;
	fe.new_daddr = pb->container_ip;
	fe.new_dport = pb->container_port;
	fe.ifindex = pb->ifindex;
	fe.peer_ifindex = src->ifindex;
	fe.kind = CT_KIND_HAIRPIN;
	fe.state = ct_initial_state(m);
	ret = start_flow(skb, k, m, &fe, 1);
	if (ret)
		return ret;
	return deliver_endpoint(skb, DIR, fe.ifindex);
}

/* A reply of a NAT64 flow (lib/nat64.h): to the gateway of the
 * container's network, from a port published to an IPv6 client. 0: none. */
static __always_inline int nat64_answer(struct __sk_buff *skb, const struct endpoint_info *src, const struct ct_key *k,
					const struct l4_meta *m)
{
	struct network_info *net;

	if (k->proto != IPPROTO_TCP && k->proto != IPPROTO_UDP)
		return 0; /* before the lookup: this runs for every packet conntrack misses */
	net = bpf_map_lookup_elem(&networks, &src->net_id);
	return net ? nat64_reply(skb, DIR, net, k, m) : 0;
}

/* A new flow leaving through an uplink: masqueraded, or with masq 0 only
 * tracked (addresses and ports kept), so that the uplink lets its replies
 * in and nothing else (from_uplink's direct routing protection). */
static __always_inline int snat(struct __sk_buff *skb, const struct endpoint_info *src, const struct uplink_info *upl,
				const struct bpf_fib_lookup *fib, long rc, const struct ct_key *k,
				const struct l4_meta *m, int masq)
{
	struct ct_entry fe = {};
	int ret;

	fe.new_saddr = masq ? upl->ip : k->saddr;
	fe.new_sport = k->sport;
	fe.new_daddr = k->daddr;
	fe.new_dport = k->dport;
	fe.peer_ifindex = src->ifindex;
	fe.kind = masq ? CT_KIND_SNAT : CT_KIND_ROUTED;
	fe.state = ct_initial_state(m);
	ret = start_flow(skb, k, m, &fe, masq);
	if (ret)
		return ret;
	return deliver_fib(skb, DIR, fib, rc);
}

/* A new packet for something that is no endpoint. */
static __always_inline int to_outside(struct __sk_buff *skb, const struct endpoint_info *src, const struct ct_key *k,
				      const struct l4_meta *m, enum tuple_result t)
{
	struct network_info *net = bpf_map_lookup_elem(&networks, &src->net_id);
	struct bpf_fib_lookup fib;
	struct uplink_info *upl;
	long rc;
	int masq;

	if (!net)
		return pass(skb);
	/* The limited broadcast and multicast are never translated: the
	 * bridge and the stack's multicast routing decide. */
	if (k->daddr == 0xffffffff || (bpf_ntohl(k->daddr) >> 28) == 0xe)
		return pass(skb);
	/* The FIB would route them out of an uplink, masqueraded. Class E too:
	 * the stack would not forward it, and from_uplink drops its replies
	 * as martian. */
	if (martian_daddr(k->daddr) || (bpf_ntohl(k->daddr) >> 28) == 0xf)
		return drop(skb, DIR, DROP_MARTIAN);
	/* Before the published ports: an internal network reaches nothing but
	 * container subnets and gateways, published ports included. */
	if ((net->flags & NET_F_INTERNAL) && !in_container_subnets(k->daddr))
		return drop(skb, DIR, DROP_INTERNAL_NETWORK);
	/* netfilter's business: a service address it DNATs, or a reply it
	 * must un-NAT (kernel_nat.h). Before the SYN-ACK check below: a
	 * backend's SYN-ACK to an outside client is such a reply. */
	if (in_service_cidr(net, src->net_id, k->daddr) ||
	    (t == TUPLE_OK && kernel_nat_reply(skb, net, k->proto, k->saddr, k->daddr, k->sport, k->dport)))
		return to_kernel_nat(skb, DIR);
	if (t == TUPLE_OK && (k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP)) {
		struct port_entry *pb = port_lookup(k->proto, k->daddr, k->dport, is_host_ip(k->daddr, net));

		if (pb)
			return hairpin(skb, src, net, pb, k, m);
	}
	rc = fib_lookup4(skb, &fib, k->saddr, k->daddr, m);
	if (!fib_forwardable(rc) && rc != BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return pass(skb); /* host-bound, unreachable...: the stack answers */
	upl = bpf_map_lookup_elem(&uplinks, &fib.ifindex);
	if (!upl)
		return pass(skb);
	if (!fib_forwardable(rc))
		return fib_refused(skb, m, rc);
	masq = !!(net->flags & NET_F_MASQUERADE);
	if (m->frag) /* untranslated, the stack may forward it */
		return masq ? drop(skb, DIR, DROP_FRAGMENT) : pass(skb);
	if (t != TUPLE_OK)
		return pass(skb); /* no ports to translate: left to the stack and its firewall */
	if (m->ttl <= 1)
		return pass(skb);
	/* A SYN-ACK or RST answers a flow: one whose entries are gone (an
	 * embryonic flow a SYN flood churned out) must not start a flow of
	 * its own, or the flood's answers would fill conntrack after all. */
	if (k->proto == IPPROTO_TCP &&
	    ((m->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK) ||
	     (m->tcp_flags & TCP_FLAG_RST)))
		return drop(skb, DIR, DROP_NO_FLOW);
	return snat(skb, src, upl, &fib, rc, k, m, masq);
}

/* Through the VXLAN device to the overlay host at host, with the sender's
 * network's VNI, the inner frame addressed to mac (NULL: as it is). */
static __always_inline int tunnel(struct __sk_buff *skb, const struct endpoint_info *src, __be32 host, const __u8 *mac,
				  const struct packet *p)
{
	struct bpf_tunnel_key key = {};
	struct overlay_network *ov;
	__u32 len = skb->len;
	__u8 ecn = p->ip->tos & 3;
	int ret;

	ov = bpf_map_lookup_elem(&overlay_networks, &src->net_id);
	if (!ov)
		return drop(skb, DIR, DROP_UNKNOWN_ENDPOINT); /* the network is being removed */
	if (mac && !mac_equal(p->eth->h_dest, mac) &&
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), mac, ETH_ALEN, 0))
		return drop(skb, DIR, DROP_WRITE_FAILED);
	/* Encapsulated here and out of the underlay interface, or else
	 * through the VXLAN device (lib/overlay_encap.h). */
	ret = overlay_encap(skb, host, ov->vni, ecn);
	if (ret < 0)
		return drop(skb, DIR, DROP_WRITE_FAILED);
	if (ret == TC_ACT_REDIRECT) {
		count_verdict(DIR, VERDICT_FORWARD, len);
		count_overlay_host(host, 1, len);
		return ret;
	}
	key.remote_ipv4 = bpf_ntohl(host);
	key.tunnel_id = ov->vni;
	key.tunnel_ttl = 64;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), 0))
		return drop(skb, DIR, DROP_WRITE_FAILED);
	count_verdict(DIR, VERDICT_FORWARD, len);
	count_overlay_host(host, 1, len);
	return bpf_redirect(ov->ifindex, 0);
}

/* An answer to a flow a peer host's own stack started with this endpoint
 * (overlay_host_flows): back through the tunnel, where that stack expects
 * it. Not --icc: that is between containers. */
static __always_inline int to_peer_host(struct __sk_buff *skb, const struct endpoint_info *src, const struct ct_key *k,
					const struct packet *p)
{
	if (!(src->flags & EP_F_OVERLAY) || !bpf_map_lookup_elem(&overlay_host_flows, k))
		return 0;
	return tunnel(skb, src, k->daddr, NULL, p);
}

/* To an endpoint of the same overlay network on another host. */
static __always_inline int to_remote(struct __sk_buff *skb, const struct endpoint_info *src,
				     const struct remote_endpoint *r, const struct packet *p)
{
	struct network_info *net = bpf_map_lookup_elem(&networks, &src->net_id);

	if (!net || !(net->flags & NET_F_ICC))
		return drop(skb, DIR, DROP_ICC_DISABLED);
	return tunnel(skb, src, r->host, r->mac, p);
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ingress_ifindex;
	struct endpoint_info *src, *dst;
	struct network_info *net;
	enum tuple_result t;
	struct ct_entry e;
	struct l4_meta m;
	struct ct_key k;
	struct packet p;
	int ret;

	src = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!src)
		return drop(skb, DIR, DROP_UNKNOWN_ENDPOINT);
	count_endpoint(ifindex, 1, skb->len);

	ret = parse_packet(skb, &p);
	if (ret == PARSE_MALFORMED)
		return drop(skb, DIR, DROP_MALFORMED);
	if (!mac_equal(p.eth->h_source, src->mac))
		return drop(skb, DIR, DROP_SPOOFED_MAC);
	if (ret == PARSE_VLAN)
		return drop(skb, DIR, DROP_VLAN);
	if (!p.ip)
		return not_ipv4(skb, src, &p);
	if (p.ip->saddr != src->ip || !src->ip)
		return drop(skb, DIR, src->ip ? DROP_SPOOFED_IP : DROP_NO_IPV4);

	/* Container to container first: no tracked flow is ever addressed to an
	 * endpoint on the wire (NATed flows go to host or outside addresses),
	 * so this traffic skips the conntrack lookup. */
	dst = bpf_map_lookup_elem(&endpoint_ips, &p.ip->daddr);
	if (!dst) {
		struct remote_endpoint *r = remote_endpoint_of(src, p.ip->daddr);

		if (r)
			return to_remote(skb, src, r, &p);
		t = ct_extract(&p, &k, &m);
		if (t == TUPLE_OK && ct_lookup(&k, &m, &e))
			return tracked(skb, &m, &k, &e, NULL);
		if (t == TUPLE_OK && (ret = to_peer_host(skb, src, &k, &p)))
			return ret;
		if (t == TUPLE_OK && (ret = nat64_answer(skb, src, &k, &m)))
			return ret;
		if (t == TUPLE_ICMP_ERROR) {
			struct icmp_err ie;

			if (nat_icmp_error_lookup(skb, &m, &ie, &e))
				return tracked(skb, &m, &k, &e, &ie);
		}
		if (isolated_subnet(src, k.daddr))
			return drop(skb, DIR, DROP_NETWORK_ISOLATION);
		return to_outside(skb, src, &k, &m, t);
	}
	if (dst->net_id != src->net_id)
		return drop(skb, DIR, DROP_NETWORK_ISOLATION);
	net = bpf_map_lookup_elem(&networks, &src->net_id);
	if (!net || !(net->flags & NET_F_ICC))
		return drop(skb, DIR, DROP_ICC_DISABLED);
	if (dst->ifindex == ifindex)
		return pass(skb);
	/* A backend's reply to a pod that reached it through a netfilter
	 * DNAT (a kube-proxy Service): the stack translates it back. TCP and
	 * UDP headers both start with the ports. */
	if (kernel_nat_fragment(net, &p) || (p.has_l4 && kernel_nat_reply(skb, net, p.ip->protocol, p.ip->saddr,
									  p.ip->daddr, p.l4.udp.source, p.l4.udp.dest)))
		return to_kernel_nat(skb, DIR);

	return deliver_peer(skb, DIR, p.eth, dst);
}
