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
 * What a container may send: IPv4 (validated by parse_packet) and ARP whose
 * sender addresses are its own. VLAN-tagged frames (containers get untagged
 * veths), IPv6 (the datapath is IPv4-only, so it could enforce neither
 * isolation nor --icc=false) and every other ethertype are dropped with a
 * reason of their own. */

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
#include "lib/arp.h"
#include "lib/kernel_nat.h"
#include "lib/firewall.h" /* not used here: bpf2go mirrors the layouts from this object */

char __license[] SEC("license") = "Dual BSD/GPL";

#define DIR DIR_FROM_CONTAINER

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

/* Everything but IPv4 (see the top of the file). */
static __always_inline int not_ipv4(struct __sk_buff *skb, const struct endpoint_info *src, const struct packet *p)
{
	if (p->eth->h_proto == bpf_htons(ETH_P_ARP))
		return check_arp(skb, src);
	if (p->eth->h_proto == bpf_htons(ETH_P_IPV6))
		return drop(skb, DIR, DROP_IPV6);
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

		rc = fib_lookup4(skb, &fib, saddr, e->new_daddr, m);
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

	ov = bpf_map_lookup_elem(&overlay_networks, &src->net_id);
	if (!ov)
		return drop(skb, DIR, DROP_UNKNOWN_ENDPOINT); /* the network is being removed */
	if (mac && !mac_equal(p->eth->h_dest, mac) &&
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), mac, ETH_ALEN, 0))
		return drop(skb, DIR, DROP_WRITE_FAILED);
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
	if (p.ip->saddr != src->ip)
		return drop(skb, DIR, DROP_SPOOFED_IP);

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
