/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU packet and byte counters, summed by user space at read time. The
 * direction and verdict names reach Go through BTF (maps.DirectionNames,
 * maps.VerdictNames). */
#pragma once

#include "common.h"

enum direction {
	DIR_FROM_CONTAINER = 0,
	DIR_FROM_UPLINK = 1,
	DIR_FROM_OVERLAY = 2, /* from a peer host, decapsulated by from_uplink or the VXLAN device */
	DIR_FROM_HOST = 3,    /* the host's stack into an overlay network's bridge */
	__DIR_MAX,
};

enum verdict {
	VERDICT_FORWARD = 0, /* redirected to another endpoint unchanged */
	VERDICT_SNAT = 1,    /* source translated, sent out */
	VERDICT_DNAT = 2,    /* destination translated, sent in */
	VERDICT_PASS = 3,    /* handed to the kernel stack */
	VERDICT_DROP = 4,
	VERDICT_KERNEL_NAT = 5, /* handed to the kernel stack for netfilter's NAT (kernel_nat.h) */
	__VERDICT_MAX,
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

/* Room for directions and verdicts to come: a pinned map keeps its size
 * across upgrades. (It replaced verdict_counters, sized for exactly two
 * directions, which a third could not join without breaking the pins of
 * older builds.) Index: direction * VERDICT_SLOTS + verdict. */
enum verdict_limits {
	VERDICT_SLOTS = 8,
	VERDICT_DIR_SLOTS = 8,
};

_Static_assert(__VERDICT_MAX <= VERDICT_SLOTS, "verdicts too small for enum verdict");
_Static_assert(__DIR_MAX <= VERDICT_DIR_SLOTS, "verdicts too small for enum direction");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VERDICT_DIR_SLOTS *VERDICT_SLOTS);
	__type(key, __u32);
	__type(value, struct counter);
} verdicts SEC(".maps");

/* Per endpoint, keyed by the host-side veth ifindex. tx is what the container
 * sent, rx what the datapath delivered to it. */
struct endpoint_counters {
	struct counter tx;
	struct counter rx;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct endpoint_counters);
} endpoint_stats SEC(".maps");

static __always_inline void counter_add(struct counter *c, __u32 len)
{
	c->packets++;
	c->bytes += len;
}

static __always_inline void count_verdict(enum direction dir, enum verdict v, __u32 len)
{
	__u32 key = dir * VERDICT_SLOTS + v;
	struct counter *c = bpf_map_lookup_elem(&verdicts, &key);

	if (c)
		counter_add(c, len);
}

static __always_inline void count_endpoint(__u32 ifindex, int tx, __u32 len)
{
	struct endpoint_counters *ec = bpf_map_lookup_elem(&endpoint_stats, &ifindex);

	if (!ec)
		return;
	if (tx)
		counter_add(&ec->tx, len);
	else
		counter_add(&ec->rx, len);
}

/* Unreferenced enums get no BTF: these anchors keep them in the object. */
const volatile enum direction btf_anchor_direction __attribute__((unused));
const volatile enum verdict btf_anchor_verdict __attribute__((unused));
const volatile enum verdict_limits btf_anchor_verdict_limits __attribute__((unused));
