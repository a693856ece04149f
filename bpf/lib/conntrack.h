/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking for NATed flows.
 *
 * One LRU entry per direction, keyed by the tuple exactly as it appears on
 * the wire in that direction, so a lookup needs no knowledge of which side
 * sent the packet. Each entry holds the rewrite for its direction and the key
 * of its peer, so a half the LRU evicted can be rebuilt from the other.
 *
 * Three tables, one per class of flow, so that a flood of one class can
 * evict only flows of its own class (an LRU evicts whatever is oldest):
 *
 * - conntrack: flows whose other end is known to be real: those the
 *   containers start, and inbound TCP flows whose client acknowledged the
 *   container's answer.
 * - ct_embryonic: inbound TCP flows (published ports, nat-unprotected
 *   networks) until the client acknowledges the container's SYN-ACK (or,
 *   for a flow picked up mid-stream, a segment the container sent): its ack
 *   number must fall in the sequence range the container sent, which a
 *   spoofed source never sees. Then the flow moves into conntrack
 *   (ct_promote). A container's RST ends an embryonic flow at once.
 * - ct_inbound: inbound UDP and other datagram flows. Nothing in a datagram
 *   proves its source address, and a container answers spoofed ones as
 *   gladly as real ones, so these flows never move: a UDP flood churns
 *   this table and no other.
 *
 * So a SYN flood, a blind-ACK flood or a spoofed UDP flood from outside
 * evicts neither established TCP flows nor masqueraded ones. */
#pragma once

#include "common.h"
#include "parse.h"

/* An enum, not a define, so bpf2go mirrors the default to Go
 * (loader.DefaultCTMapSize). The loader resizes the map from --ct-map-size. */
enum ct_limits {
	CT_MAP_SIZE = 512 * 1024, /* 256k flows, two entries each */
	/* Half-open inbound TCP flows: a SYN flood churns only this table.
	 * Big enough for a busy server's handshakes in flight (16k flows). */
	CT_EMBRYONIC_SIZE = 32 * 1024,
	/* An embryonic flow idle this long (seconds) is dead: the handshake
	 * timeout of the daemon's GC, which does not walk this table. */
	CT_EMBRYONIC_IDLE = 60,
	/* Inbound datagram flows (published UDP ports, nat-unprotected
	 * networks): 32k flows. The GC expires them like conntrack's. */
	CT_INBOUND_SIZE = 64 * 1024,
};

#ifndef EEXIST
#define EEXIST 17
#endif

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

struct ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* ICMP echo request: the echo id */
	__be16 dport; /* ICMP echo reply: the echo id */
	__u8 proto;
	__u8 _pad[3];
};

enum ct_kind {
	CT_KIND_SNAT = 1,    /* container -> outside, masqueraded */
	CT_KIND_DNAT = 2,    /* outside -> published port */
	CT_KIND_HAIRPIN = 3, /* container -> published port via a host IP */
	CT_KIND_ROUTED = 4,  /* container -> outside, not masqueraded: tracked so replies are let in */
	/* outside -> a Service's endpoint elsewhere (another node's pod, a
	 * node's address): DNAT and SNAT to this node, routed by the FIB. */
	CT_KIND_SERVICE_ROUTED = 5,
	/* outside (IPv6) -> a published port of an IPv4-only container,
	 * NAT64 to the container's gateway (lib/nat64.h); in conntrack6. */
	CT_KIND_NAT64 = 6,
};

/* TCP state as bits, per direction: the GC combines both halves. */
enum ct_state {
	CT_ST_SYN = 1 << 0,         /* SYN seen */
	CT_ST_ESTABLISHED = 1 << 1, /* ACK without SYN seen */
	CT_ST_FIN = 1 << 2,
	CT_ST_RST = 1 << 3,
};

struct ct_entry {
	struct ct_key peer; /* key of the other direction */
	/* The tuple after translation. */
	__be32 new_saddr;
	__be32 new_daddr;
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
	__uint(max_entries, CT_MAP_SIZE);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
} conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_EMBRYONIC_SIZE);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
} ct_embryonic SEC(".maps");

/* What the container of an embryonic flow has sent: the client's ACK must
 * acknowledge a byte of it (lo <= ack <= hi, in sequence space) to promote
 * the flow. Keyed by the container's half. A map beside ct_embryonic, not
 * a field of its entries, so that ct_embryonic keeps the layout of older
 * builds and an upgrade or a downgrade keeps the handshakes in flight. */
struct ct_ack_range {
	__u64 created; /* the flow's: a range of an older flow on the tuple is none */
	__u32 lo;      /* the first acknowledgement the client can send: ISN + 1 */
	__u32 hi;      /* the last: past everything the container sent */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_EMBRYONIC_SIZE / 2);
	__type(key, struct ct_key);
	__type(value, struct ct_ack_range);
} ct_ack_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_INBOUND_SIZE);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
} ct_inbound SEC(".maps");

/* Where a lookup found a flow, or which table a new flow goes into. */
enum ct_table {
	CT_NONE = 0,
	CT_MAIN = 1,      /* conntrack */
	CT_EMBRYONIC = 2, /* ct_embryonic: an inbound TCP flow not yet acknowledged */
	CT_INBOUND = 3,   /* ct_inbound: an inbound datagram flow */
};

/* The table an inbound flow of proto starts in. */
static __always_inline enum ct_table ct_inbound_table(__u8 proto)
{
	return proto == IPPROTO_TCP ? CT_EMBRYONIC : CT_INBOUND;
}

enum tuple_result {
	TUPLE_OK = 0,
	TUPLE_NONE = 1,       /* no NATable tuple (protocol, later fragment, ICMP type) */
	TUPLE_ICMP_ERROR = 2, /* ICMP error: the flow is in the embedded header */
};

struct l4_ports {
	__be16 sport;
	__be16 dport;
};

/* Tuple of an ICMP echo: request keyed (id, 0), reply (0, id), so a request
 * and its reply key symmetrically. Returns 0 if type is not an echo. */
static __always_inline int icmp_echo_tuple(__u8 type, __be16 id, __be16 *sport, __be16 *dport)
{
	if (type == ICMP_ECHO) {
		*sport = id;
		*dport = 0;
		return 1;
	}
	if (type == ICMP_ECHOREPLY) {
		*sport = 0;
		*dport = id;
		return 1;
	}
	return 0;
}

/* Reads the wire tuple from what parse_packet validated and kept. */
static __always_inline enum tuple_result ct_extract(const struct packet *p, struct ct_key *k, struct l4_meta *m)
{
	const struct iphdr *ip = p->ip;

	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memset(m, 0, sizeof(*m));
	k->saddr = ip->saddr;
	k->daddr = ip->daddr;
	k->proto = ip->protocol;
	m->proto = ip->protocol;
	m->ttl = ip->ttl;
	m->tos = ip->tos;
	m->frag = !!(ip->frag_off & bpf_htons(IP_MF | IP_OFFSET));
	m->df = !!(ip->frag_off & bpf_htons(IP_DF));
	m->l4_off = ETH_HLEN + ip->ihl * 4;
	if (!p->has_l4)
		return TUPLE_NONE;

	switch (m->proto) {
	case IPPROTO_TCP:
		k->sport = p->l4.tcp.sport;
		k->dport = p->l4.tcp.dport;
		m->tcp_flags = p->l4.tcp.flags;
		m->tcp_seq = bpf_ntohl(p->l4.tcp.seq);
		m->tcp_ack = bpf_ntohl(p->l4.tcp.ack);
		/* parse_l4 checked the data offset against the segment. */
		m->tcp_len = (__u32)p->ip_len - ip->ihl * 4 - (p->l4.tcp.doff >> 4) * 4;
		return TUPLE_OK;
	case IPPROTO_UDP:
		k->sport = p->l4.udp.source;
		k->dport = p->l4.udp.dest;
		return TUPLE_OK;
	case IPPROTO_ICMP:
		m->icmp_type = p->l4.icmp.type;
		if (icmp_echo_tuple(p->l4.icmp.type, p->l4.icmp.un.echo.id, &k->sport, &k->dport))
			return TUPLE_OK;
		if (p->l4.icmp.type == ICMP_DEST_UNREACH || p->l4.icmp.type == ICMP_TIME_EXCEEDED)
			return TUPLE_ICMP_ERROR;
		return TUPLE_NONE;
	}
	return TUPLE_NONE;
}

/* The key replies carry: the translated tuple, reversed. */
static __always_inline void ct_reply_key(struct ct_key *r, const struct ct_key *k, const struct ct_entry *e)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->saddr = e->new_daddr;
	r->daddr = e->new_saddr;
	r->sport = e->new_dport;
	r->dport = e->new_sport;
	r->proto = k->proto;
}

/* The peer of entry e at key k: its rewrite restores k reversed. */
static __always_inline void ct_peer_entry(struct ct_entry *pe, const struct ct_key *k, const struct ct_entry *e,
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

static __always_inline __u8 ct_tcp_state(__u8 st, __u8 flags)
{
	if (flags & TCP_FLAG_SYN) {
		/* A new connection reusing the tuple of a closed one. */
		if (st & (CT_ST_FIN | CT_ST_RST))
			st = 0;
		st |= CT_ST_SYN;
	} else if ((flags & TCP_FLAG_ACK) && !(flags & TCP_FLAG_RST)) {
		st |= CT_ST_ESTABLISHED;
	}
	if (flags & TCP_FLAG_FIN)
		st |= CT_ST_FIN;
	if (flags & TCP_FLAG_RST)
		st |= CT_ST_RST;
	return st;
}

/* The state bits of a flow's first packet. */
static __always_inline __u8 ct_initial_state(const struct l4_meta *m)
{
	return m->proto == IPPROTO_TCP ? ct_tcp_state(0, m->tcp_flags) : 0;
}

/* Per-packet bookkeeping on a hit. Writes only on change: a write per packet
 * would bounce the entry's cache line between CPUs. Returns whether it
 * refreshed last_seen, which it does at most once a second. */
static __always_inline int ct_touch(struct ct_entry *e, const struct l4_meta *m, __u64 now)
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

/* Removes both halves of the embryonic flow whose half at k names pk, and
 * the range of the container's half ck (one of the two). */
static __always_inline void ct_embryo_forget(const struct ct_key *k, const struct ct_key *pk, const struct ct_key *ck)
{
	bpf_map_delete_elem(&ct_embryonic, pk);
	bpf_map_delete_elem(&ct_embryonic, k);
	bpf_map_delete_elem(&ct_ack_ranges, ck);
}

/* The container's segment m of an embryonic flow (k, e: its half) widens
 * the range the client may acknowledge. A SYN-ACK starts it afresh; the
 * low end otherwise stays at the first segment seen: a flow picked up
 * mid-stream is acknowledged an RTT behind. */
static __always_inline void ct_embryo_answer(const struct ct_key *k, const struct ct_entry *e, const struct l4_meta *m)
{
	__u32 lo = m->tcp_seq + !!(m->tcp_flags & TCP_FLAG_SYN);
	__u32 hi = lo + m->tcp_len + !!(m->tcp_flags & TCP_FLAG_FIN);
	struct ct_ack_range *r = bpf_map_lookup_elem(&ct_ack_ranges, k);
	struct ct_ack_range fresh = { .created = e->created, .lo = lo, .hi = hi };

	if (!r || r->created != e->created || (m->tcp_flags & TCP_FLAG_SYN)) {
		bpf_map_update_elem(&ct_ack_ranges, k, &fresh, BPF_ANY);
		return;
	}
	if ((__s32)(hi - r->hi) > 0)
		r->hi = hi;
}

/* Whether ack acknowledges something the container sent (pk, pe: its
 * half). */
static __always_inline int ct_embryo_acked(const struct ct_key *pk, const struct ct_entry *pe, __u32 ack)
{
	struct ct_ack_range *r = bpf_map_lookup_elem(&ct_ack_ranges, pk);

	return r && r->created == pe->created && ack - r->lo <= r->hi - r->lo;
}

/* The LRU evicts entries one at a time: rebuild a missing peer so replies
 * keep flowing. NOEXIST: never clobber a key another flow claimed since. */
static __always_inline void ct_repair_peer(enum ct_table t, const struct ct_key *k, const struct ct_entry *e, __u64 now)
{
	struct ct_key pk = e->peer;
	struct ct_entry pe;
	void *map = t == CT_INBOUND ? (void *)&ct_inbound : (void *)&conntrack;

	if (t == CT_EMBRYONIC)
		map = &ct_embryonic;
	if (bpf_map_lookup_elem(map, &pk))
		return;
	ct_peer_entry(&pe, k, e, now);
	bpf_map_update_elem(map, &pk, &pe, BPF_NOEXIST);
}

/* ct_lookup in ct_embryonic. An entry idle too long is dead (the GC does
 * not walk this table); the container's segments set the range its client
 * must acknowledge (ct_ack_ranges), and its RST ends the flow: the client
 * it answers is gone, or never was. */
static __always_inline enum ct_table ct_lookup_embryonic(const struct ct_key *k, const struct l4_meta *m,
							 struct ct_entry *out, __u64 now)
{
	struct ct_entry *e = bpf_map_lookup_elem(&ct_embryonic, k);

	if (!e)
		return CT_NONE;
	if (flow_age(now, e->last_seen) > CT_EMBRYONIC_IDLE * NSEC_PER_SEC) {
		struct ct_key pk = e->peer;

		ct_embryo_forget(k, &pk, e->reply ? k : &pk);
		return CT_NONE;
	}
	ct_touch(e, m, now);
	*out = *e;
	if (out->reply) {
		if (m->tcp_flags & TCP_FLAG_RST) {
			ct_embryo_forget(k, &out->peer, k);
			return CT_EMBRYONIC;
		}
		ct_embryo_answer(k, out, m);
	}
	ct_repair_peer(CT_EMBRYONIC, k, out, now);
	return CT_EMBRYONIC;
}

/* Lookup with the per-hit bookkeeping: conntrack, then the table of
 * inbound flows of the packet's protocol. Returns the table it found the
 * flow in, and a copy: the LRU may evict the entry under us, and the
 * rewrite must not change halfway.
 *
 * A missing peer is rebuilt on every hit in the tables floods churn
 * (ct_inbound, ct_embryonic), where a flood may evict a live flow's half
 * at any time; in conntrack, which only established flows enter, at the
 * once-a-second refresh of last_seen: the peer lookup was one hash lookup
 * of every packet, for an eviction that happens only when the table is
 * full of established flows. */
static __always_inline enum ct_table ct_lookup(const struct ct_key *k, const struct l4_meta *m, struct ct_entry *out)
{
	enum ct_table t = CT_MAIN;
	struct ct_entry *e = bpf_map_lookup_elem(&conntrack, k);
	__u64 now;
	int refreshed;

	now = flow_clock();
	if (!e) {
		if (k->proto == IPPROTO_TCP)
			return ct_lookup_embryonic(k, m, out, now);
		e = bpf_map_lookup_elem(&ct_inbound, k);
		if (!e)
			return CT_NONE;
		t = CT_INBOUND;
	}
	refreshed = ct_touch(e, m, now);
	*out = *e;
	if (refreshed || t != CT_MAIN)
		ct_repair_peer(t, k, out, now);
	return t;
}

/* A packet of an embryonic flow from its client (e: its entry, after this
 * packet's touch). The flow is real once the client acknowledges what the
 * container sent: an ACK without SYN or RST whose ack number falls in the
 * range recorded for the container's half (ct_embryo_answer). A spoofed source
 * never sees the container's answer, so neither a SYN flood nor blind ACKs
 * get here. Both halves move into conntrack, the reply half first with
 * NOEXIST as ct_create claims them; on any failure the flow stays
 * embryonic and the next ACK tries again. */
static __always_inline void ct_promote(const struct ct_key *k, const struct ct_entry *e, const struct l4_meta *m)
{
	struct ct_key pk = e->peer;
	struct ct_entry *re;
	struct ct_entry pe;

	if (m->proto != IPPROTO_TCP || e->reply || (m->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_RST)) ||
	    !(m->tcp_flags & TCP_FLAG_ACK))
		return;
	re = bpf_map_lookup_elem(&ct_embryonic, &pk);
	if (!re || (re->state & CT_ST_RST))
		return;
	pe = *re;
	if (!ct_embryo_acked(&pk, &pe, m->tcp_ack))
		return;
	if (bpf_map_update_elem(&conntrack, &pk, &pe, BPF_NOEXIST))
		return;
	if (bpf_map_update_elem(&conntrack, k, e, BPF_NOEXIST)) {
		bpf_map_delete_elem(&conntrack, &pk);
		return;
	}
	ct_embryo_forget(k, &pk, &pk);
}

/* ct_create's inserts into table t; for the inbound tables a key conntrack
 * holds counts as taken there too. */
static __always_inline long ct_insert(enum ct_table t, const struct ct_key *k, const struct ct_entry *e)
{
	if (t == CT_MAIN)
		return bpf_map_update_elem(&conntrack, k, e, BPF_NOEXIST);
	if (bpf_map_lookup_elem(&conntrack, k))
		return -EEXIST;
	return bpf_map_update_elem(t == CT_EMBRYONIC ? (void *)&ct_embryonic : (void *)&ct_inbound, k, e, BPF_NOEXIST);
}

static __always_inline void ct_remove(enum ct_table t, const struct ct_key *k)
{
	if (t == CT_EMBRYONIC)
		bpf_map_delete_elem(&ct_embryonic, k);
	else if (t == CT_INBOUND)
		bpf_map_delete_elem(&ct_inbound, k);
	else
		bpf_map_delete_elem(&conntrack, k);
}

const volatile enum ct_kind btf_anchor_ct_kind __attribute__((unused));
const volatile enum ct_state btf_anchor_ct_state __attribute__((unused));
const volatile enum ct_limits btf_anchor_ct_limits __attribute__((unused));
