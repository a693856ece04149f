/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Masquerade, published ports and the translation of packets and of the
 * headers ICMP errors embed.
 *
 * Limits: IPv4 fragments of NATed flows are dropped (DROP_FRAGMENT), we do
 * not reassemble or track them by IP id; a packet too big for the egress MTU
 * without DF is dropped (DROP_FRAG_NEEDED), with DF the stack answers with
 * the ICMP error; the L4 checksum inside the header an ICMP error quotes is
 * not updated. */
#pragma once

#include "common.h"
#include "csum.h"
#include "conntrack.h"
#include "drop.h"
#include "deliver.h"
#include "ports.h"

/* Source port allocation. The range is set by the loader. */
const volatile __u16 nat_port_min = 1024;
const volatile __u16 nat_port_max = 65535;

/* Indexes of the nat_retries histogram, by the retries an allocation took.
 * Go labels the buckets from these names through BTF: NAT_RETRY_2_3 is
 * "2-3". */
enum nat_retry_bucket {
	NAT_RETRY_0 = 0,
	NAT_RETRY_1 = 1,
	NAT_RETRY_2_3 = 2,
	NAT_RETRY_4_7 = 3,
	NAT_RETRY_8_15 = 4,
	NAT_RETRY_16_31 = 5,
	NAT_RETRY_EXHAUSTED = 6,
	__NAT_RETRY_MAX,
};

enum nat_limits {
	NAT_MAX_TRIES = 32,
	/* From here on allocation is sequential: past half the retry budget
	 * the table is crowded for this destination (maps.NATStats.Strained). */
	NAT_RETRY_STRAINED = NAT_RETRY_16_31,
};

_Static_assert(NAT_MAX_TRIES == 32 && NAT_RETRY_EXHAUSTED == NAT_RETRY_16_31 + 1,
	       "the histogram's power-of-two buckets end at NAT_MAX_TRIES - 1");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, __NAT_RETRY_MAX);
	__type(key, __u32);
	__type(value, __u64);
} nat_retries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nat_alloc_failures SEC(".maps");

static __always_inline void nat_count_retries(enum nat_retry_bucket bucket)
{
	__u64 *c = bpf_map_lookup_elem(&nat_retries, &bucket);

	if (c)
		(*c)++;
}

static __always_inline enum nat_retry_bucket nat_retry_bucket(__u32 retries)
{
	if (retries < 2)
		return retries;
	if (retries < 4)
		return NAT_RETRY_2_3;
	if (retries < 8)
		return NAT_RETRY_4_7;
	if (retries < 16)
		return NAT_RETRY_8_15;
	return NAT_RETRY_16_31;
}

static __always_inline void nat_count_failure(void)
{
	__u32 key = 0;
	__u64 *c = bpf_map_lookup_elem(&nat_alloc_failures, &key);

	if (c)
		(*c)++;
	nat_count_retries(NAT_RETRY_EXHAUSTED);
}

enum ct_create_result {
	CT_CREATED = 0,
	CT_RACED = 1,   /* another CPU created the flow first: look it up */
	CT_NO_PORT = 2, /* every candidate reply tuple is taken */
	CT_FAILED = 3,
};

/* Whether a socket of the host already owns the reply tuple rk (a
 * connection from the host's address and port, or a listener on it): a
 * masqueraded flow must never alias it, so such ports are skipped. */
static __always_inline int host_socket_holds(struct __sk_buff *skb, const struct ct_key *rk)
{
	struct bpf_sock_tuple t = {
		.ipv4 = { .saddr = rk->saddr, .daddr = rk->daddr, .sport = rk->sport, .dport = rk->dport },
	};
	struct bpf_sock *sk;

	if (rk->proto == IPPROTO_TCP)
		sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	else if (rk->proto == IPPROTO_UDP)
		sk = bpf_sk_lookup_udp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	else
		return 0;
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/* Open-coded numeric iterator (kfuncs since Linux 6.4). The verifier checks
 * a loop over it once with the counter unknown instead of once per
 * iteration: the port search below made from_container and from_uplink
 * verify some 500k instructions each as a bounded for loop, half a second
 * of every first load. The struct mirrors the kernel's (by BTF name and
 * size); the uapi headers of older distributions lack it. */
struct bpf_iter_num {
	__u64 __opaque[1];
} __attribute__((aligned(8)));

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

/* The port search of both families' masquerade (ct_create, ct6_create in
 * nat6.h): the container's own source port first if it lies in the range,
 * else a random one; after a taken candidate (try i), random ones for the
 * first half of the tries, then sequentially. */
static __always_inline __u32 nat_first_port(__u32 port, __u32 min, __u32 max, __u32 range)
{
	if (port < min || port > max)
		port = min + bpf_get_prandom_u32() % range;
	return port;
}

static __always_inline __u32 nat_next_port(int i, __u32 port, __u32 min, __u32 max, __u32 range)
{
	if (i < NAT_MAX_TRIES / 2)
		return min + bpf_get_prandom_u32() % range;
	return port >= max ? min : port + 1;
}

/* Creates both entries of a new flow. fe holds the forward rewrite; with
 * alloc, new_sport is chosen here so that the reply tuple is unique and owned
 * by no host socket: the original port first, then random ones, then
 * sequentially. The reply entry is claimed first with NOEXIST, so two flows
 * can never share a reply tuple; it is rolled back if the forward entry
 * cannot be written. The entries go into table t (conntrack.h): an inbound
 * flow's (never with alloc) into the table of its class. */
static __always_inline enum ct_create_result ct_create(struct __sk_buff *skb, const struct ct_key *k,
						       struct ct_entry *fe, int alloc, enum ct_table t)
{
	__u32 min = nat_port_min, max = nat_port_max, range, port;
	__u64 now = flow_clock();
	enum ct_create_result res = CT_NO_PORT;
	struct bpf_iter_num it;
	struct ct_entry re;
	struct ct_key rk;
	long err;
	int *i;

	if (max < min)
		max = min;
	range = max - min + 1;
	fe->created = now;
	fe->last_seen = now;
	fe->reply = 0;
	port = bpf_ntohs(alloc ? k->sport : fe->new_sport);
	if (alloc)
		port = nat_first_port(port, min, max, range);

	bpf_iter_num_new(&it, 0, NAT_MAX_TRIES);
	while ((i = bpf_iter_num_next(&it))) {
		fe->new_sport = bpf_htons(port);
		ct_reply_key(&rk, k, fe);
		fe->peer = rk;
		ct_peer_entry(&re, k, fe, now);
		if (alloc && host_socket_holds(skb, &rk))
			err = -EEXIST;
		else
			err = ct_insert(t, &rk, &re);
		if (!err) {
			err = ct_insert(t, k, fe);
			if (err) {
				ct_remove(t, &rk);
				res = err == -EEXIST ? CT_RACED : CT_FAILED;
				break;
			}
			if (alloc)
				nat_count_retries(nat_retry_bucket(*i));
			res = CT_CREATED;
			break;
		}
		if (err != -EEXIST) {
			res = CT_FAILED;
			break;
		}
		if (!alloc)
			break; /* CT_NO_PORT */
		port = nat_next_port(*i, port, min, max, range);
		if (*i == NAT_MAX_TRIES - 1)
			nat_count_failure();
	}
	bpf_iter_num_destroy(&it);
	return res;
}

/* Creates the flow this packet starts (see ct_create) and leaves in
 * fe the entry to apply: ours, or the one another CPU created first. Returns
 * 0, or the drop verdict. Without alloc the reply tuple is fixed, so a taken
 * one is a conflict with another flow rather than port exhaustion. */
static __always_inline int nat_start_flow(struct __sk_buff *skb, enum direction dir, const struct ct_key *k,
					  const struct l4_meta *m, struct ct_entry *fe, int alloc, enum ct_table t)
{
	switch (ct_create(skb, k, fe, alloc, t)) {
	case CT_CREATED: {
		struct monitor_nat xl = {
			.saddr = fe->new_saddr, .daddr = fe->new_daddr, .sport = fe->new_sport, .dport = fe->new_dport
		};

		monitor_emit_nat(skb, MONITOR_NEW_FLOW, dir, 0, &xl);
		return 0;
	}
	case CT_RACED:
		if (ct_lookup(k, m, fe))
			return 0;
		return drop(skb, dir, DROP_CT_MAP_FULL);
	case CT_NO_PORT:
		return drop(skb, dir, alloc ? DROP_NAT_EXHAUSTED : DROP_CT_CONFLICT);
	default:
		return drop(skb, dir, DROP_CT_MAP_FULL);
	}
}

/* Applies the rewrite of e to a packet whose wire tuple is k, and
 * decrements the TTL: every NATed packet is routed by the host. */
static __always_inline int nat_apply(struct __sk_buff *skb, const struct l4_meta *m, const struct ct_key *k,
				     const struct ct_entry *e)
{
	__u32 csum_off = m->l4_off + l4_csum_field(m->proto);
	__u64 flags = l4_csum_flags(m->proto);
	__u32 pseudo = m->proto == IPPROTO_ICMP ? 0 : csum_off;

	/* The L4 checksum covers the addresses through the pseudo header. */
	if (pseudo && e->new_saddr != k->saddr &&
	    bpf_l4_csum_replace(skb, pseudo, k->saddr, e->new_saddr, BPF_F_PSEUDO_HDR | flags | sizeof(__be32)))
		return -1;
	if (pseudo && e->new_daddr != k->daddr &&
	    bpf_l4_csum_replace(skb, pseudo, k->daddr, e->new_daddr, BPF_F_PSEUDO_HDR | flags | sizeof(__be32)))
		return -1;
	if (ip_rewrite(skb, e->new_saddr, e->new_daddr))
		return -1;
	return csum_rewrite_ids(skb, m->l4_off, csum_off, flags, m->proto == IPPROTO_ICMP, m->icmp_type == ICMP_ECHO,
				k->sport, e->new_sport, k->dport, e->new_dport);
}

/* Translates a packet of flow e, which has no endpoint here to deliver
 * into, and routes it out by the FIB (the host's routes: the uplink, or
 * the VXLAN device, whose from_host tunnels it). As any forwarding, it
 * needs forwarding on the interface it came in (Kubernetes nodes have
 * it: kube-proxy needs it as well). */
static __always_inline int nat_route(struct __sk_buff *skb, enum direction dir, const struct l4_meta *m,
				     const struct ct_key *k, const struct ct_entry *e)
{
	struct bpf_fib_lookup fib;
	long rc;

	if (m->frag)
		return drop(skb, dir, DROP_FRAGMENT);
	if (m->ttl <= 1)
		return drop(skb, dir, DROP_TTL_EXCEEDED);
	rc = fib_lookup4(skb, &fib, e->new_saddr, e->new_daddr, m);
	if (rc < 0 || !fib_forwardable(rc))
		return drop(skb, dir, DROP_FIB_FAILED);
	if (nat_apply(skb, m, k, e))
		return drop(skb, dir, DROP_CSUM_FAILED);
	return deliver_fib(skb, dir, &fib, rc);
}

/* The packet an ICMP error quotes: a packet of the flow that went the other
 * way, so its reversed tuple is the key of the direction the error travels. */
struct icmp_err {
	__u32 inner_ip; /* offsets */
	__u32 inner_l4;
	__be32 inner_saddr;
	__be32 inner_daddr;
	__be16 inner_sport;
	__be16 inner_dport;
	__u8 inner_proto;
	__u8 inner_icmp_type;
	__u8 _pad[2];
};

/* Finds the flow an ICMP error is about. Only the first 8 bytes of the quoted
 * L4 header are read: that is all RFC 792 guarantees. No touch: errors must
 * not keep a flow alive. */
static __always_inline int nat_icmp_error_lookup(struct __sk_buff *skb, const struct l4_meta *m, struct icmp_err *ie,
						 struct ct_entry *out)
{
	struct ct_entry *e;
	struct iphdr inner;
	struct ct_key k;

	__builtin_memset(ie, 0, sizeof(*ie));
	ie->inner_ip = m->l4_off + sizeof(struct icmphdr);
	if (bpf_skb_load_bytes(skb, ie->inner_ip, &inner, sizeof(inner)))
		return 0;
	if (inner.version != 4 || inner.ihl * 4 < sizeof(inner) || (inner.frag_off & bpf_htons(IP_OFFSET)))
		return 0;
	ie->inner_l4 = ie->inner_ip + inner.ihl * 4;
	ie->inner_saddr = inner.saddr;
	ie->inner_daddr = inner.daddr;
	ie->inner_proto = inner.protocol;

	if (inner.protocol == IPPROTO_TCP || inner.protocol == IPPROTO_UDP) {
		struct l4_ports ports;

		if (bpf_skb_load_bytes(skb, ie->inner_l4, &ports, sizeof(ports)))
			return 0;
		ie->inner_sport = ports.sport;
		ie->inner_dport = ports.dport;
	} else if (inner.protocol == IPPROTO_ICMP) {
		struct icmphdr ih;

		if (bpf_skb_load_bytes(skb, ie->inner_l4, &ih, sizeof(ih)))
			return 0;
		if (!icmp_echo_tuple(ih.type, ih.un.echo.id, &ie->inner_sport, &ie->inner_dport))
			return 0;
		ie->inner_icmp_type = ih.type;
	} else {
		return 0;
	}

	__builtin_memset(&k, 0, sizeof(k));
	k.saddr = ie->inner_daddr;
	k.daddr = ie->inner_saddr;
	k.sport = ie->inner_dport;
	k.dport = ie->inner_sport;
	k.proto = ie->inner_proto;
	e = bpf_map_lookup_elem(&conntrack, &k);
	if (!e)
		e = bpf_map_lookup_elem(k.proto == IPPROTO_TCP ? (void *)&ct_embryonic : (void *)&ct_inbound, &k);
	if (!e)
		return 0;
	*out = *e;
	return 1;
}

/* The outer source after translation: an error the flow's peer sent itself
 * comes from the peer's translated address; a router's error keeps its own. */
static __always_inline __be32 nat_icmp_error_saddr(const struct ct_key *outer, const struct icmp_err *ie,
						   const struct ct_entry *e)
{
	return outer->saddr == ie->inner_daddr ? e->new_saddr : outer->saddr;
}

/* Translates an ICMP error: outer addresses like a packet of the flow, the
 * quoted header back the other way. The inner L4 checksum is left alone:
 * the quote is often truncated, and receivers do not check it. */
static __always_inline int nat_icmp_error_apply(struct __sk_buff *skb, const struct l4_meta *m,
						const struct ct_key *outer, const struct icmp_err *ie,
						const struct ct_entry *e)
{
	__be32 saddr = nat_icmp_error_saddr(outer, ie, e);
	__u32 icmp_csum = m->l4_off + ICMP_CSUM_OFF;

	if (e->new_daddr != outer->daddr && csum_rewrite_addr(skb, IP_DADDR_OFF, outer->daddr, e->new_daddr, 0, 0))
		return -1;
	if (saddr != outer->saddr && csum_rewrite_addr(skb, IP_SADDR_OFF, outer->saddr, saddr, 0, 0))
		return -1;
	if (e->new_daddr != ie->inner_saddr &&
	    csum_rewrite_inner_addr(skb, ie->inner_ip, offsetof(struct iphdr, saddr), ie->inner_saddr, e->new_daddr))
		return -1;
	if (e->new_saddr != ie->inner_daddr &&
	    csum_rewrite_inner_addr(skb, ie->inner_ip, offsetof(struct iphdr, daddr), ie->inner_daddr, e->new_saddr))
		return -1;
	if (ie->inner_proto == IPPROTO_ICMP) {
		/* The quoted echo's id: on the sport side of a request. */
		int req = ie->inner_icmp_type == ICMP_ECHO;
		__be16 from = req ? ie->inner_sport : ie->inner_dport;
		__be16 to = req ? e->new_dport : e->new_sport;

		if (from != to && csum_rewrite_l4_16(skb, ie->inner_l4 + ICMP_ECHO_ID_OFF, from, to, icmp_csum, 0))
			return -1;
	} else {
		if (e->new_dport != ie->inner_sport &&
		    csum_rewrite_l4_16(skb, ie->inner_l4 + L4_SPORT_OFF, ie->inner_sport, e->new_dport, icmp_csum, 0))
			return -1;
		if (e->new_sport != ie->inner_dport &&
		    csum_rewrite_l4_16(skb, ie->inner_l4 + L4_DPORT_OFF, ie->inner_dport, e->new_sport, icmp_csum, 0))
			return -1;
	}
	return csum_dec_ttl(skb, m->ttl);
}

const volatile enum nat_retry_bucket btf_anchor_nat_retry_bucket __attribute__((unused));
const volatile enum nat_limits btf_anchor_nat_limits __attribute__((unused));
