/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Datapath events for `ebpfnet monitor`, through a ring buffer.
 *
 * Nobody listening costs one array lookup on the (cold) paths that emit: a
 * monitor keeps monitor_control.listen_until a second or two in the future
 * while it runs, so a monitor that dies stops the events by itself. Events are
 * rate limited per CPU so a drop storm cannot flood the buffer.
 *
 * The event grew an IPv6 part at its end: an IPv4 event is as before
 * (proto, saddr, daddr in the first 48 bytes), an IPv6 one has proto 0
 * there, so a reader of the old layout shows it without a tuple, as it
 * used to, and ip6 set with its tuple in proto6, saddr6, daddr6 (and
 * hop_limit6) and the shared sport, dport. */
#pragma once

#include "common.h"
#include "parse.h"
#include "ipv6.h"

enum monitor_type {
	MONITOR_DROP = 1,
	MONITOR_NEW_FLOW = 2,
};

struct monitor_event {
	__u64 ts; /* bpf_ktime_get_ns */
	__u32 ifindex;
	__u32 len;
	__u8 type;   /* enum monitor_type */
	__u8 reason; /* enum drop_reason, for drops */
	__u8 dir;    /* enum direction */
	__u8 proto;  /* 0: not IPv4 */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	/* New flows: the tuple after translation (the first packet's rewrite);
	 * zero for drops. */
	__be32 new_saddr;
	__be32 new_daddr;
	__be16 new_sport;
	__be16 new_dport;
	__u32 _pad_v1; /* the IPv4-only event's tail padding */
	/* IPv6 (appended; MONITOR_EVENT_V1_SIZE bytes before it): ip6 set, the
	 * fixed header's addresses and next header; sport and dport above
	 * when that is TCP or UDP (an extension header chain: its first
	 * header, no ports). */
	__u8 ip6;
	__u8 _pad6;
	/* As the IPv6 header has them from its byte 6 on: one load. */
	__u8 proto6; /* next header */
	__u8 hop_limit6;
	__u8 saddr6[16];
	__u8 daddr6[16];
	__u32 _pad7;
};

enum monitor_limits {
	MONITOR_EVENT_V1_SIZE = 48, /* the IPv4-only event, before ip6 */
};

_Static_assert(offsetof(struct monitor_event, ip6) == MONITOR_EVENT_V1_SIZE, "the IPv4 part keeps its layout");
_Static_assert(sizeof(((struct monitor_event *)0)->saddr6) + sizeof(((struct monitor_event *)0)->daddr6) >= 20 &&
		       offsetof(struct monitor_event, daddr6) == offsetof(struct monitor_event, saddr6) + 16,
	       "an IPv4 header fits the IPv6 addresses, the scratch monitor_emit_nat uses");
_Static_assert(sizeof(struct monitor_event) == 88, "the event's size, as maps.DecodeEvent knows it");
_Static_assert(offsetof(struct monitor_event, daddr6) + 16 - offsetof(struct monitor_event, proto6) ==
			       IPV6_HLEN - offsetof(struct ip6_hdr, nexthdr) &&
		       offsetof(struct monitor_event, saddr6) - offsetof(struct monitor_event, proto6) ==
			       offsetof(struct ip6_hdr, saddr) - offsetof(struct ip6_hdr, nexthdr) &&
		       offsetof(struct monitor_event, dport) == offsetof(struct monitor_event, sport) + 2,
	       "the IPv6 header's tail and the ports are loaded in one go each");

/* A new flow's rewrite, for its event. */
struct monitor_nat {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
};

struct monitor_control {
	__u64 listen_until; /* ktime ns; 0: nobody listens */
	__u32 rate;         /* events per second per CPU */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} monitor_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct monitor_control);
} monitor_ctl SEC(".maps");

struct monitor_budget {
	__u64 second;
	__u32 used;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct monitor_budget);
} monitor_budgets SEC(".maps");

static __always_inline int monitor_allowed(void)
{
	__u32 zero = 0;
	struct monitor_control *ctl = bpf_map_lookup_elem(&monitor_ctl, &zero);
	struct monitor_budget *b;
	__u64 now, sec;

	if (!ctl || !ctl->listen_until)
		return 0;
	now = bpf_ktime_get_ns();
	if (now > ctl->listen_until)
		return 0;
	b = bpf_map_lookup_elem(&monitor_budgets, &zero);
	if (!b)
		return 0;
	sec = now / NSEC_PER_SEC;
	if (b->second != sec) {
		b->second = sec;
		b->used = 0;
	}
	if (b->used >= ctl->rate)
		return 0;
	b->used++;
	return 1;
}

/* Reads the tuple with bpf_skb_load_bytes: callers may have moved packet
 * data, and this runs on cold paths only. xl: a new flow's rewrite, or NULL. */
static __always_inline void monitor_emit_nat(struct __sk_buff *skb, enum monitor_type type, __u8 dir, __u8 reason,
					     const struct monitor_nat *xl)
{
	struct monitor_event *e;
	__u8 *h;

	if (!monitor_allowed())
		return;
	e = bpf_ringbuf_reserve(&monitor_events, sizeof(*e), 0);
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = bpf_ktime_get_ns();
	e->ifindex = skb->ingress_ifindex;
	e->len = skb->len;
	e->type = type;
	e->reason = reason;
	e->dir = dir;
	if (xl) {
		e->new_saddr = xl->saddr;
		e->new_daddr = xl->daddr;
		e->new_sport = xl->sport;
		e->new_dport = xl->dport;
	}
	/* The IPv4 header goes through the event's IPv6 part as scratch, not
	 * the stack: drop_account, which calls this, adds its stack to the
	 * deepest caller's. */
	h = e->saddr6;
	if (skb->protocol == bpf_htons(ETH_P_IP) &&
	    !bpf_skb_load_bytes(skb, sizeof(struct ethhdr), h, sizeof(struct iphdr))) {
		__be16 frag;

		e->proto = h[offsetof(struct iphdr, protocol)];
		__builtin_memcpy(&e->saddr, h + offsetof(struct iphdr, saddr), sizeof(e->saddr));
		__builtin_memcpy(&e->daddr, h + offsetof(struct iphdr, daddr), sizeof(e->daddr));
		__builtin_memcpy(&frag, h + offsetof(struct iphdr, frag_off), sizeof(frag));
		if ((e->proto == IPPROTO_TCP || e->proto == IPPROTO_UDP) && !(frag & bpf_htons(IP_OFFSET)))
			bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + (h[0] & 0xf) * 4, &e->sport,
					   2 * sizeof(e->sport));
		__builtin_memset(h, 0, sizeof(struct iphdr));
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6) &&
		   !bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + offsetof(struct ip6_hdr, nexthdr), &e->proto6,
				       IPV6_HLEN - offsetof(struct ip6_hdr, nexthdr))) {
		/* Straight into the event: this is inlined at every drop. A
		 * failed load leaves zeros. */
		e->ip6 = 1;
		if (e->proto6 == IPPROTO_TCP || e->proto6 == IPPROTO_UDP)
			bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + IPV6_HLEN, &e->sport, 2 * sizeof(e->sport));
	}
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void monitor_emit(struct __sk_buff *skb, enum monitor_type type, __u8 dir, __u8 reason)
{
	monitor_emit_nat(skb, type, dir, reason, NULL);
}

/* Keeps the event layout in BTF (it is only reached through the ring
 * buffer) so bpf2go mirrors it to Go. */
const volatile struct monitor_event btf_anchor_monitor_event __attribute__((unused));
const volatile enum monitor_type btf_anchor_monitor_type __attribute__((unused));
const volatile enum monitor_limits btf_anchor_monitor_limits __attribute__((unused));
