/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* NAT66 masquerade: a container's IPv6 flows to beyond the host, on a
 * network with masquerade, leave with the uplink's address and a source
 * port (ICMPv6 echo: id) allocated as for IPv4 (nat.h's port search), and
 * their replies are translated back into the container.
 *
 * Tracked in conntrack6, keyed by 128-bit tuples: a table of its own, so
 * IPv4's entries stay small. As conntrack (conntrack.h): one LRU entry per
 * direction keyed by the wire tuple, each holding its rewrite and its
 * peer's key, a missing peer rebuilt on the next hit; the TCP state bits
 * and timestamps the daemon's GC expires flows by. Outbound flows
 * (CT_KIND_SNAT), and inbound flows to published ports (CT_KIND_DNAT,
 * from_uplink's published6): the client's address kept, the host's
 * address and published port restored on the container's replies. A TCP
 * flow to a published port starts in ct6_embryonic and moves into
 * conntrack6 once its client acknowledges the container's SYN-ACK
 * (ct6_promote), as conntrack.h's embryonic flows do. Flows of networks
 * without masquerade (CT_KIND_ROUTED, both ways) keep their addresses and
 * ports: they are tracked so the uplink lets in what answers them, and
 * the same code forwards them with the rewrite an identity.
 *
 * The source address is the one the host picks for the route (the FIB's
 * BPF_FIB_LOOKUP_SRC: RFC 6724 source selection on the egress interface),
 * as ip6tables' MASQUERADE does. IPv6 has no header checksum: the TCP,
 * UDP and ICMPv6 checksums cover the addresses through the pseudo header
 * and are patched by the difference. The hop limit is decremented.
 *
 * ICMPv6 errors from outside about a flow (Packet Too Big, so path MTU
 * discovery works; unreachable, time exceeded, parameter problem) are
 * translated back into the container with the header they quote.
 *
 * Limits: fragments are dropped (DROP_FRAGMENT); a container's own ICMPv6
 * errors, other ICMPv6 than echo, and protocols without ports, do not
 * leave (DROP_IPV6_NOT_ROUTED); an ICMPv6 error whose quote has extension
 * headers goes to the host's stack. */
#pragma once

#include "common.h"
#include "csum.h"
#include "conntrack.h"
#include "deliver.h"
#include "drop.h"
#include "fib.h"
#include "ipv6.h"
#include "nat.h"

/* An enum, not a define, so bpf2go mirrors it to Go. */
enum ct6_limits {
	CT6_MAP_SIZE = 128 * 1024, /* 64k flows, two entries each */
};

enum icmp6_echo {
	ICMP6_ECHO_REPLY = 129,
};

struct ct6_key {
	struct ip6_key saddr;
	struct ip6_key daddr;
	__be16 sport; /* ICMPv6 echo request: the echo id */
	__be16 dport; /* ICMPv6 echo reply: the echo id */
	__u8 proto;
	__u8 _pad[3];
};

_Static_assert(offsetof(struct ct6_key, dport) == offsetof(struct ct6_key, sport) + 2,
	       "ct6_extract loads both ports at once");
_Static_assert(offsetof(struct l4_meta, tcp_ack) == offsetof(struct l4_meta, tcp_seq) + 4,
	       "ct6_extract loads sequence and acknowledgement numbers at once");

/* ct_entry's fields for 128-bit addresses; new_saddr and new_daddr are
 * adjacent as the key's addresses are: nat66_apply patches both at once. */
struct ct6_entry {
	struct ct6_key peer;
	struct ip6_key new_saddr;
	struct ip6_key new_daddr;
	__be16 new_sport;
	__be16 new_dport;
	__u32 ifindex;      /* host-side veth to redirect_peer into; 0: out through the FIB */
	__u32 peer_ifindex; /* the peer's ifindex, to rebuild it */
	__u8 kind;          /* enum ct_kind */
	__u8 state;         /* enum ct_state bits */
	__u8 reply;         /* 1: the direction opposite to the flow's first packet */
	__u8 _pad;
	__u64 created;   /* flow_clock (common.h): CLOCK_MONOTONIC */
	__u64 last_seen; /* updated at most once a second */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT6_MAP_SIZE);
	__type(key, struct ct6_key);
	__type(value, struct ct6_entry);
} conntrack6 SEC(".maps");

/* IPv6's embryonic table, as conntrack.h's ct_embryonic: a TCP flow to a
 * published port starts here, both halves, and moves into conntrack6
 * (ct6_promote) once its client acknowledges what the container sent (the
 * range in ct6_ack_ranges, keyed by the container's half), so a SYN flood
 * over IPv6 churns this table and evicts no established IPv6 flow. Same
 * layouts as conntrack6's. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_EMBRYONIC_SIZE);
	__type(key, struct ct6_key);
	__type(value, struct ct6_entry);
} ct6_embryonic SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_EMBRYONIC_SIZE / 2);
	__type(key, struct ct6_key);
	__type(value, struct ct_ack_range);
} ct6_ack_ranges SEC(".maps");

/* ICMPv6 errors (RFC 4443): each quotes, 8 bytes into its message, as
 * much of the packet it answers as fits. */
enum icmp6_error {
	ICMP6_DST_UNREACH = 1,
	ICMP6_PKT_TOOBIG = 2,
	ICMP6_TIME_EXCEED = 3,
	ICMP6_PARAM_PROB = 4,
};

#define ICMP6_ERR_HLEN 8
/* How much of a container's packet an error from its gateway quotes: its
 * headers, what path MTU discovery and traceroute read (RFC 4443 allows
 * less than the minimum MTU's worth). A multiple of 4. */
#define ICMP6_QUOTE_MAX 128

static __always_inline int icmp6_is_error(__u8 type)
{
	return type >= ICMP6_DST_UNREACH && type <= ICMP6_PARAM_PROB;
}

/* What NAT66 holds while it works on a packet, too big for the BPF stack
 * beside the rest of a program: one per CPU (a TC program runs to its end
 * on its CPU). */
struct nat6_scratch {
	struct ct6_entry e;  /* the entry applied */
	struct ct6_entry pe; /* its peer, being written */
	/* struct bpf_fib_lookup (nat6_fib), whose anonymous unions bpf2go
	 * cannot mirror. */
	__u64 fib[8];
	/* An ICMPv6 error being built (nat6_error): IPv6 header, ICMPv6
	 * header, quote, padding to the 4-byte words the checksum sums. */
	__u8 err[IPV6_HLEN + ICMP6_ERR_HLEN + ICMP6_QUOTE_MAX];
};

_Static_assert(sizeof(struct bpf_fib_lookup) == sizeof(((struct nat6_scratch *)0)->fib), "nat6_scratch.fib");

static __always_inline struct bpf_fib_lookup *nat6_fib(struct nat6_scratch *s)
{
	return (struct bpf_fib_lookup *)s->fib;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nat6_scratch);
} nat6_scratch SEC(".maps");

static __always_inline struct nat6_scratch *nat6_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&nat6_scratch, &zero);
}

/* Offsets in the IPv6 header and the messages NAT66 rewrites. */
#define IP6_HOP_OFF (ETH_HLEN + offsetof(struct ip6_hdr, hop_limit))
#define IP6_ADDRS_OFF (ETH_HLEN + offsetof(struct ip6_hdr, saddr))
#define ICMP6_CSUM_OFF 2
#define ICMP6_ECHO_ID_OFF 4
_Static_assert(ICMP6_ECHO_ID_OFF == ICMP_ECHO_ID_OFF, "csum_rewrite_ids finds both echo ids at one offset");

/* The NATable tuple of a parsed IPv6 packet (p) into k, and in m what
 * the rewrite needs: TUPLE_OK, or TUPLE_NONE (a fragment, no ports, an
 * upper-layer header cut short, ICMPv6 but echo). */
static __always_inline enum tuple_result ct6_extract(struct __sk_buff *skb, const struct packet6 *p, struct ct6_key *k,
						     struct l4_meta *m)
{
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memset(m, 0, sizeof(*m));
	k->saddr = p->ip.saddr;
	k->daddr = p->ip.daddr;
	k->proto = p->proto;
	m->proto = p->proto;
	m->ttl = p->ip.hop_limit;
	m->frag = p->frag;
	m->l4_off = p->l4_off;
	if (p->frag)
		return TUPLE_NONE;
	switch (p->proto) {
	case IPPROTO_TCP:
		/* Straight into k and m, no buffer: from_container has no
		 * stack to spare. Sequence and acknowledgement numbers are
		 * the embryonic table's (a SYN-ACK's ISN, the client's ack of
		 * it). */
		if (p->l4_off + sizeof(struct tcphdr) > p->end ||
		    bpf_skb_load_bytes(skb, p->l4_off, &k->sport, 2 * sizeof(k->sport)) ||
		    bpf_skb_load_bytes(skb, p->l4_off + 4, &m->tcp_seq, 2 * sizeof(m->tcp_seq)) ||
		    bpf_skb_load_bytes(skb, p->l4_off + 13, &m->tcp_flags, sizeof(m->tcp_flags)))
			return TUPLE_NONE;
		m->tcp_seq = bpf_ntohl(m->tcp_seq);
		m->tcp_ack = bpf_ntohl(m->tcp_ack);
		return TUPLE_OK;
	case IPPROTO_UDP:
		if (p->l4_off + sizeof(struct udphdr) > p->end ||
		    bpf_skb_load_bytes(skb, p->l4_off, &k->sport, 2 * sizeof(k->sport)))
			return TUPLE_NONE;
		return TUPLE_OK;
	case NH_ICMPV6: {
		__be16 id;

		if (p->l4_off + 8 > p->end || bpf_skb_load_bytes(skb, p->l4_off + ICMP6_ECHO_ID_OFF, &id, sizeof(id)))
			return TUPLE_NONE;
		m->icmp_type = p->icmp_type;
		if (p->icmp_type == ICMP6_ECHO_REQUEST) {
			k->sport = id;
			return TUPLE_OK;
		}
		if (p->icmp_type == ICMP6_ECHO_REPLY) {
			k->dport = id;
			return TUPLE_OK;
		}
		return TUPLE_NONE;
	}
	}
	return TUPLE_NONE;
}

/* ct_reply_key and ct_peer_entry (conntrack.h) for IPv6. */
static __always_inline void ct6_reply_key(struct ct6_key *r, const struct ct6_key *k, const struct ct6_entry *e)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->saddr = e->new_daddr;
	r->daddr = e->new_saddr;
	r->sport = e->new_dport;
	r->dport = e->new_sport;
	r->proto = k->proto;
}

static __always_inline void ct6_peer_entry(struct ct6_entry *pe, const struct ct6_key *k, const struct ct6_entry *e,
					   __u64 now)
{
	__builtin_memset(pe, 0, sizeof(*pe));
	pe->peer = *k;
	pe->new_saddr = k->daddr;
	pe->new_daddr = k->saddr;
	pe->new_sport = k->dport;
	pe->new_dport = k->sport;
	pe->ifindex = e->peer_ifindex;
	pe->peer_ifindex = e->ifindex;
	pe->kind = e->kind;
	pe->reply = !e->reply;
	pe->created = e->created;
	pe->last_seen = now;
}

static __always_inline int ct6_key_equal(const struct ct6_key *a, const struct ct6_key *b)
{
	return ip6_equal(&a->saddr, &b->saddr) && ip6_equal(&a->daddr, &b->daddr) && a->sport == b->sport &&
	       a->dport == b->dport && a->proto == b->proto;
}

/* ct_touch (conntrack.h) for IPv6: the hit's bookkeeping. Returns whether
 * it refreshed last_seen (at most once a second). */
static __always_inline int ct6_touch(struct ct6_entry *e, const struct l4_meta *m, __u64 now)
{
	int refreshed = flow_age(now, e->last_seen) > NSEC_PER_SEC;

	if (refreshed)
		e->last_seen = now;
	if (m->proto == IPPROTO_TCP) {
		__u8 st = ct_tcp_state(e->state, m->tcp_flags);

		if (st != e->state)
			e->state = st;
	}
	return refreshed;
}

/* ct_lookup for IPv6: conntrack6, then for TCP ct6_embryonic. The hit's
 * bookkeeping, a missing peer in conntrack6 rebuilt (in pe) at the
 * once-a-second refresh, and a copy of
 * the entry in out. Returns the table: CT_MAIN (conntrack6), CT_EMBRYONIC
 * or CT_NONE (0: no flow).
 *
 * An embryonic hit here is the container's half (from_container: its
 * answer), and kept to what from_container's stack, which has hardly a
 * byte left, allows: its SYN-ACK sets what the client must acknowledge,
 * its ISN + 1 (IPv4's range without widening, nor a SYN-ACK's data: an
 * IPv6 embryonic flow starts with the client's SYN, never mid-stream; pe
 * is the scratch), its
 * RST marks the half (ct6_promote refuses it). Dead entries are the GC's
 * (maps.GC) and the LRU's; the client's half is looked up, with its peer
 * repaired, by ct6_lookup_inbound. */
static __always_inline enum ct_table ct6_lookup(const struct ct6_key *k, const struct l4_meta *m, struct ct6_entry *out,
						struct ct6_entry *pe)
{
	struct ct6_entry *e = bpf_map_lookup_elem(&conntrack6, k);
	struct ct_ack_range *r;
	int refreshed;
	__u64 now;

	if (!e) {
		if (k->proto != IPPROTO_TCP)
			return CT_NONE;
		e = bpf_map_lookup_elem(&ct6_embryonic, k);
		if (!e)
			return CT_NONE;
		ct6_touch(e, m, flow_clock());
		*out = *e;
		if (out->reply && (m->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_RST)) == TCP_FLAG_SYN) {
			r = (struct ct_ack_range *)pe;
			r->created = out->created;
			r->lo = m->tcp_seq + 1;
			r->hi = r->lo;
			bpf_map_update_elem(&ct6_ack_ranges, k, r, BPF_ANY);
		}
		return CT_EMBRYONIC;
	}
	now = flow_clock();
	refreshed = ct6_touch(e, m, now);
	*out = *e;
	/* A TCP flow's missing peer is rebuilt at the once-a-second refresh,
	 * as ct_lookup does in conntrack; datagram flows from outside start
	 * here (IPv6 has no ct_inbound), where a flood may evict their halves,
	 * so theirs on every hit. */
	if ((refreshed || k->proto != IPPROTO_TCP) && !bpf_map_lookup_elem(&conntrack6, &out->peer)) {
		ct6_peer_entry(pe, k, out, now);
		bpf_map_update_elem(&conntrack6, &out->peer, pe, BPF_NOEXIST);
	}
	return CT_MAIN;
}

/* ct6_lookup for a packet from an uplink: an embryonic hit is the
 * client's half, whose missing peer (the LRU evicts halves one at a time)
 * is rebuilt in ct6_embryonic. */
static __always_inline enum ct_table ct6_lookup_inbound(const struct ct6_key *k, const struct l4_meta *m,
							struct ct6_entry *out, struct ct6_entry *pe)
{
	enum ct_table t = ct6_lookup(k, m, out, pe);

	if (t == CT_EMBRYONIC && !bpf_map_lookup_elem(&ct6_embryonic, &out->peer)) {
		ct6_peer_entry(pe, k, out, out->last_seen);
		bpf_map_update_elem(&ct6_embryonic, &out->peer, pe, BPF_NOEXIST);
	}
	return t;
}

/* ct_promote (conntrack.h) for IPv6: a packet of an embryonic flow from
 * its client (e: its entry, after this packet's touch) that acknowledges
 * what the container sent moves both halves into conntrack6, the reply
 * half first with NOEXIST; on any failure the flow stays embryonic and the
 * next ACK tries again. */
static __always_inline void ct6_promote(const struct ct6_key *k, const struct ct6_entry *e, const struct l4_meta *m)
{
	struct ct6_key pk = e->peer;
	struct ct_ack_range *r;
	struct ct6_entry *re;

	if (m->proto != IPPROTO_TCP || e->reply || (m->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_RST)) ||
	    !(m->tcp_flags & TCP_FLAG_ACK))
		return;
	re = bpf_map_lookup_elem(&ct6_embryonic, &pk);
	if (!re || (re->state & CT_ST_RST))
		return;
	r = bpf_map_lookup_elem(&ct6_ack_ranges, &pk);
	if (!r || r->created != re->created || m->tcp_ack - r->lo > r->hi - r->lo)
		return;
	if (bpf_map_update_elem(&conntrack6, &pk, re, BPF_NOEXIST))
		return;
	if (bpf_map_update_elem(&conntrack6, k, e, BPF_NOEXIST)) {
		bpf_map_delete_elem(&conntrack6, &pk);
		return;
	}
	bpf_map_delete_elem(&ct6_ack_ranges, &pk);
	bpf_map_delete_elem(&ct6_embryonic, &pk);
	bpf_map_delete_elem(&ct6_embryonic, k);
}

/* host_socket_holds (nat.h) for an IPv6 reply tuple; an IPv4-mapped one
 * (NAT64's, lib/nat64.h) is an IPv4 tuple. */
static __always_inline int host_socket_holds6(struct __sk_buff *skb, const struct ct6_key *rk)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	if (ip6_is_v4mapped(&rk->saddr)) {
		struct ct_key k4 = {
			.saddr = rk->saddr.addr[3],
			.daddr = rk->daddr.addr[3],
			.sport = rk->sport,
			.dport = rk->dport,
			.proto = rk->proto,
		};

		return host_socket_holds(skb, &k4);
	}

	__builtin_memcpy(t.ipv6.saddr, rk->saddr.addr, 16);
	__builtin_memcpy(t.ipv6.daddr, rk->daddr.addr, 16);
	t.ipv6.sport = rk->sport;
	t.ipv6.dport = rk->dport;
	if (rk->proto == IPPROTO_TCP)
		sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	else if (rk->proto == IPPROTO_UDP)
		sk = bpf_sk_lookup_udp(skb, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	else
		return 0;
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/* ct_create with alloc, for IPv6: both entries of a new masqueraded flow,
 * the source port (echo id) searched as nat.h does, the reply entry (re)
 * claimed first with NOEXIST. */
static __always_inline enum ct_create_result ct6_create(struct __sk_buff *skb, const struct ct6_key *k,
							struct ct6_entry *fe, struct ct6_entry *re)
{
	__u32 min = nat_port_min, max = nat_port_max, range, port;
	__u64 now = flow_clock();
	enum ct_create_result res = CT_NO_PORT;
	struct bpf_iter_num it;
	long err;
	int *i;

	if (max < min)
		max = min;
	range = max - min + 1;
	fe->created = now;
	fe->last_seen = now;
	fe->reply = 0;
	port = nat_first_port(bpf_ntohs(k->sport), min, max, range);

	bpf_iter_num_new(&it, 0, NAT_MAX_TRIES);
	while ((i = bpf_iter_num_next(&it))) {
		fe->new_sport = bpf_htons(port);
		ct6_reply_key(&fe->peer, k, fe);
		ct6_peer_entry(re, k, fe, now);
		if (host_socket_holds6(skb, &fe->peer))
			err = -EEXIST;
		else
			err = bpf_map_update_elem(&conntrack6, &fe->peer, re, BPF_NOEXIST);
		if (!err) {
			err = bpf_map_update_elem(&conntrack6, k, fe, BPF_NOEXIST);
			if (err) {
				bpf_map_delete_elem(&conntrack6, &fe->peer);
				res = err == -EEXIST ? CT_RACED : CT_FAILED;
				break;
			}
			nat_count_retries(nat_retry_bucket(*i));
			res = CT_CREATED;
			break;
		}
		if (err != -EEXIST) {
			res = CT_FAILED;
			break;
		}
		port = nat_next_port(*i, port, min, max, range);
		if (*i == NAT_MAX_TRIES - 1)
			nat_count_failure();
	}
	bpf_iter_num_destroy(&it);
	return res;
}

/* ct_create without alloc, for IPv6: both entries of a new flow whose
 * reply tuple is fixed (a published port's: the container's address and
 * port with the client's), the reply entry (re) claimed first with
 * NOEXIST, in conntrack6 or, embryonic (TCP), in ct6_embryonic, where a
 * key conntrack6 holds counts as taken too. CT_NO_PORT: another flow
 * holds the reply tuple. */
static __always_inline enum ct_create_result ct6_create_fixed(const struct ct6_key *k, struct ct6_entry *fe,
							      struct ct6_entry *re, int embryonic)
{
	void *map = embryonic ? (void *)&ct6_embryonic : (void *)&conntrack6;
	__u64 now = flow_clock();
	long err;

	fe->created = now;
	fe->last_seen = now;
	fe->reply = 0;
	ct6_reply_key(&fe->peer, k, fe);
	ct6_peer_entry(re, k, fe, now);
	if (embryonic && bpf_map_lookup_elem(&conntrack6, &fe->peer))
		return CT_NO_PORT;
	err = bpf_map_update_elem(map, &fe->peer, re, BPF_NOEXIST);
	if (err == -EEXIST && embryonic) {
		/* The client's half was evicted and its SYN comes again: the
		 * container's half left behind is this flow's. */
		struct ct6_entry *old = bpf_map_lookup_elem(&ct6_embryonic, &fe->peer);

		if (old && ct6_key_equal(&old->peer, k))
			err = bpf_map_update_elem(&ct6_embryonic, &fe->peer, re, BPF_EXIST);
	}
	if (err)
		return err == -EEXIST ? CT_NO_PORT : CT_FAILED;
	err = embryonic && bpf_map_lookup_elem(&conntrack6, k) ? -EEXIST : bpf_map_update_elem(map, k, fe, BPF_NOEXIST);
	if (err) {
		bpf_map_delete_elem(map, &fe->peer);
		return err == -EEXIST ? CT_RACED : CT_FAILED;
	}
	return CT_CREATED;
}

/* Whether daddr is one of the host's own addresses (local or anycast: the
 * FIB answers NOT_FWDED), looked up as if the packet came in on ifindex.
 * That must be an interface that forwards IPv6 (a container's host veth):
 * on one that does not, the kernel answers FWD_DISABLED for every
 * destination, the host's too. */
static __always_inline int fib_local6(struct __sk_buff *skb, struct bpf_fib_lookup *fib, const struct ip6_key *saddr,
				      const struct ip6_key *daddr, __u32 ifindex)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET6_;
	__builtin_memcpy(fib->ipv6_src, saddr, 16);
	__builtin_memcpy(fib->ipv6_dst, daddr, 16);
	fib->ifindex = ifindex;
	return bpf_fib_lookup(skb, fib, sizeof(*fib), 0) == BPF_FIB_LKUP_RET_NOT_FWDED;
}

/* Applies e's rewrite to a packet whose wire tuple is k and decrements its
 * hop limit (m->ttl, checked > 1 by the caller). Both addresses in one
 * store, the checksum patched by their difference through the pseudo
 * header; ports (echo id) as IPv4's. The hop limit is stored with
 * BPF_F_RECOMPUTE_CSUM, which keeps skb->csum right: no header checksum
 * covers it. */
static __always_inline int nat66_apply(struct __sk_buff *skb, const struct l4_meta *m, const struct ct6_key *k,
				       const struct ct6_entry *e)
{
	int icmp = m->proto == NH_ICMPV6;
	__u32 csum_off = m->l4_off + (icmp ? ICMP6_CSUM_OFF : l4_csum_field(m->proto));
	__u64 flags = l4_csum_flags(m->proto);
	__u8 hop = m->ttl - 1;
	__s64 diff;

	_Static_assert(offsetof(struct ct6_key, daddr) == sizeof(struct ip6_key) &&
			       offsetof(struct ct6_entry, new_daddr) ==
				       offsetof(struct ct6_entry, new_saddr) + sizeof(struct ip6_key),
		       "nat66_apply treats both addresses as one 32-byte field");
	diff = bpf_csum_diff((__be32 *)&k->saddr, 2 * sizeof(struct ip6_key), (__be32 *)&e->new_saddr,
			     2 * sizeof(struct ip6_key), 0);
	if (diff < 0 || bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | flags))
		return -1;
	if (bpf_skb_store_bytes(skb, IP6_ADDRS_OFF, &e->new_saddr, 2 * sizeof(struct ip6_key), 0))
		return -1;
	if (csum_rewrite_ids(skb, m->l4_off, csum_off, flags, icmp, m->icmp_type == ICMP6_ECHO_REQUEST, k->sport,
			     e->new_sport, k->dport, e->new_dport))
		return -1;
	return bpf_skb_store_bytes(skb, IP6_HOP_OFF, &hop, sizeof(hop), BPF_F_RECOMPUTE_CSUM) ? -1 : 0;
}

/* The flow an ICMPv6 error (p) is about: the quoted packet is one the
 * flow sent the error's sender, translated, so its tuple reversed (in k)
 * is the key of the flow's entry for the error's direction, copied to
 * out. From outside (inbound: addressed to the uplink) that entry
 * delivers into a container; from a container (its own error about a
 * packet it got), it leaves through the FIB. The quote must hold a whole
 * IPv6 header without extension headers and the first 8 bytes of TCP,
 * UDP or an echo request; *inner is its offset. No touch: errors must not
 * keep a flow alive. 0: no such flow. */
static __always_inline int nat66_icmp_error_lookup(struct __sk_buff *skb, const struct packet6 *p, struct ct6_key *k,
						   __u32 *inner, struct ct6_entry *out, int inbound)
{
	__u32 off = p->l4_off + ICMP6_ERR_HLEN;
	struct ct6_entry *e;
	struct ip6_hdr ih;
	__u8 h[8];

	if (p->frag || off + IPV6_HLEN + sizeof(h) > p->end || bpf_skb_load_bytes(skb, off, &ih, sizeof(ih)) ||
	    bpf_skb_load_bytes(skb, off + IPV6_HLEN, h, sizeof(h)) || (bpf_ntohl(ih.vtcfl) >> 28) != 6)
		return 0;
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = ih.daddr;
	k->daddr = ih.saddr;
	k->proto = ih.nexthdr;
	switch (ih.nexthdr) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		__builtin_memcpy(&k->sport, h + 2, sizeof(k->sport));
		__builtin_memcpy(&k->dport, h, sizeof(k->dport));
		break;
	case NH_ICMPV6:
		if (h[0] != ICMP6_ECHO_REQUEST)
			return 0;
		__builtin_memcpy(&k->dport, h + ICMP6_ECHO_ID_OFF, sizeof(k->dport));
		break;
	default:
		return 0;
	}
	e = bpf_map_lookup_elem(&conntrack6, k);
	if (!e && k->proto == IPPROTO_TCP && inbound)
		e = bpf_map_lookup_elem(&ct6_embryonic, k); /* a flow to a published port, not yet acknowledged */
	if (!e || !e->ifindex != !inbound || e->kind == CT_KIND_NAT64)
		return 0;
	*out = *e;
	*inner = off;
	return 1;
}

/* Translates an ICMPv6 error about flow e (its reply entry; k: the quoted
 * tuple reversed, at *inner) for the container: the outer destination and
 * the quoted source address and port (echo id) back to the container's,
 * the ICMPv6 checksum patched for each (the outer address through the
 * pseudo header), the hop limit decremented (checked > 1). The quoted L4
 * checksum is left alone, as IPv4's: the quote is often truncated, and
 * receivers do not check it. */
static __always_inline int nat66_icmp_error_apply(struct __sk_buff *skb, const struct packet6 *p,
						  const struct ct6_key *k, __u32 inner, const struct ct6_entry *e)
{
	__u32 csum_off = p->l4_off + ICMP6_CSUM_OFF;
	__u32 port_off = inner + IPV6_HLEN + (k->proto == NH_ICMPV6 ? ICMP6_ECHO_ID_OFF : L4_SPORT_OFF);
	__u8 hop = p->ip.hop_limit - 1;
	__s64 diff;

	diff = bpf_csum_diff((__be32 *)p->ip.daddr.addr, sizeof(struct ip6_key), (__be32 *)e->new_daddr.addr,
			     sizeof(struct ip6_key), 0);
	if (diff < 0 || bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct ip6_hdr, daddr), &e->new_daddr, sizeof(struct ip6_key),
				0))
		return -1;
	diff = bpf_csum_diff((__be32 *)k->daddr.addr, sizeof(struct ip6_key), (__be32 *)e->new_daddr.addr,
			     sizeof(struct ip6_key), 0);
	if (diff < 0 || bpf_l4_csum_replace(skb, csum_off, 0, diff, 0) ||
	    bpf_skb_store_bytes(skb, inner + offsetof(struct ip6_hdr, saddr), &e->new_daddr, sizeof(struct ip6_key), 0))
		return -1;
	if (k->dport != e->new_dport && csum_rewrite_l4_16(skb, port_off, k->dport, e->new_dport, csum_off, 0))
		return -1;
	return bpf_skb_store_bytes(skb, IP6_HOP_OFF, &hop, sizeof(hop), BPF_F_RECOMPUTE_CSUM) ? -1 : 0;
}

/* nat66_icmp_error_apply for a container's own ICMPv6 error about a
 * packet of flow e (the entry of the container's side; k: the quoted tuple
 * reversed): the outer source and the quoted destination address and port
 * become what the flow shows outside (e's new source), so a client of a
 * published port gets "port unreachable" from the address it asked. */
static __always_inline int nat66_icmp_error_apply_out(struct __sk_buff *skb, const struct packet6 *p,
						      const struct ct6_key *k, __u32 inner, const struct ct6_entry *e)
{
	__u32 csum_off = p->l4_off + ICMP6_CSUM_OFF;
	__u32 port_off = inner + IPV6_HLEN + (k->proto == NH_ICMPV6 ? ICMP6_ECHO_ID_OFF : L4_DPORT_OFF);
	__u8 hop = p->ip.hop_limit - 1;
	__s64 diff;

	diff = bpf_csum_diff((__be32 *)p->ip.saddr.addr, sizeof(struct ip6_key), (__be32 *)e->new_saddr.addr,
			     sizeof(struct ip6_key), 0);
	if (diff < 0 || bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct ip6_hdr, saddr), &e->new_saddr, sizeof(struct ip6_key),
				0))
		return -1;
	diff = bpf_csum_diff((__be32 *)k->saddr.addr, sizeof(struct ip6_key), (__be32 *)e->new_saddr.addr,
			     sizeof(struct ip6_key), 0);
	if (diff < 0 || bpf_l4_csum_replace(skb, csum_off, 0, diff, 0) ||
	    bpf_skb_store_bytes(skb, inner + offsetof(struct ip6_hdr, daddr), &e->new_saddr, sizeof(struct ip6_key), 0))
		return -1;
	if (k->sport != e->new_sport && csum_rewrite_l4_16(skb, port_off, k->sport, e->new_sport, csum_off, 0))
		return -1;
	return bpf_skb_store_bytes(skb, IP6_HOP_OFF, &hop, sizeof(hop), BPF_F_RECOMPUTE_CSUM) ? -1 : 0;
}

/* Turns a container's packet (p) that cannot leave into the ICMPv6 error
 * (type, code, word: Packet Too Big's MTU) its gateway gw6 answers it with,
 * quoting its first ICMP6_QUOTE_MAX bytes, and sends it back into the
 * container (from the gateway's MAC gw_mac to its own ep_mac): the host
 * does not forward IPv6 itself, so its stack would drop the packet
 * without an answer. Not for an ICMPv6 error or to multicast (RFC 4443
 * 2.4 e): outside6 gets neither here. The caller counts the verdict. */
static __always_inline int nat6_error(struct __sk_buff *skb, struct nat6_scratch *s, const struct packet6 *p,
				      const struct ip6_key *gw6, const __u8 *ep_mac, const __u8 *gw_mac, __u8 type,
				      __u8 code, __u32 word)
{
	struct ip6_hdr *ip = (struct ip6_hdr *)s->err;
	__u8 *icmp = s->err + IPV6_HLEN;
	__u64 qlen = p->end, n; /* 64 bits: no sign the verifier must doubt */
	struct {
		__be32 len;
		__be32 nh;
	} pseudo;
	__s64 sum;

	if (qlen < ETH_HLEN + IPV6_HLEN)
		return -1;
	qlen -= ETH_HLEN;
	if (qlen > ICMP6_QUOTE_MAX)
		qlen = ICMP6_QUOTE_MAX;
	/* The bounds in the register the verifier sees, not a copy. */
	asm volatile("" : "+r"(qlen));
	if (qlen < IPV6_HLEN || qlen > ICMP6_QUOTE_MAX)
		return -1;
	__builtin_memset(s->err, 0, sizeof(s->err));
	if (bpf_skb_load_bytes(skb, ETH_HLEN, icmp + ICMP6_ERR_HLEN, qlen))
		return -1;
	ip->vtcfl = bpf_htonl(0x60000000);
	ip->payload_len = bpf_htons(ICMP6_ERR_HLEN + qlen);
	ip->nexthdr = NH_ICMPV6;
	ip->hop_limit = 255;
	ip->saddr = *gw6;
	ip->daddr = p->ip.saddr;
	icmp[0] = type;
	icmp[1] = code;
	*(__be32 *)(icmp + 4) = bpf_htonl(word);
	/* The pseudo header (RFC 8200 8.1), then the message, its tail
	 * padded with zeros to a word. */
	pseudo.len = bpf_htonl(ICMP6_ERR_HLEN + qlen);
	pseudo.nh = bpf_htonl(NH_ICMPV6);
	sum = bpf_csum_diff(0, 0, (__be32 *)&ip->saddr, 2 * sizeof(struct ip6_key), 0);
	if (sum < 0)
		return -1;
	sum = bpf_csum_diff(0, 0, (__be32 *)&pseudo, sizeof(pseudo), sum);
	if (sum < 0)
		return -1;
	n = (ICMP6_ERR_HLEN + qlen + 3) & ~3U;
	if (n > ICMP6_ERR_HLEN + ICMP6_QUOTE_MAX)
		return -1;
	sum = bpf_csum_diff(0, 0, (__be32 *)icmp, n, sum);
	if (sum < 0)
		return -1;
	*(__sum16 *)(icmp + ICMP6_CSUM_OFF) = csum_fold32((__u32)sum);
	n = IPV6_HLEN + ICMP6_ERR_HLEN + qlen;
	if (n > sizeof(s->err))
		return -1;
	if (bpf_skb_change_tail(skb, ETH_HLEN + n, 0) || bpf_skb_store_bytes(skb, ETH_HLEN, s->err, n, 0))
		return -1;
	if (store_macs(skb, ep_mac, gw_mac))
		return -1;
	return bpf_redirect(skb->ingress_ifindex, 0);
}

/* deliver_fib for IPv6. */
static __always_inline int deliver_fib6(struct __sk_buff *skb, enum direction dir, const struct bpf_fib_lookup *fib,
					long rc)
{
	__u32 len = skb->len;
	int ret = fib_redirect6(skb, fib, rc);

	if (ret != TC_ACT_REDIRECT)
		return drop(skb, dir, DROP_REDIRECT_FAILED);
	count_verdict(dir, VERDICT_SNAT, len);
	return ret;
}

const volatile enum ct6_limits btf_anchor_ct6_limits __attribute__((unused));
