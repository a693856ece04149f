/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU packet and byte counters, summed by user space at read time. */
#pragma once

#include "common.h"
#include "drop.h"
#include "monitor.h"

struct counter {
	__u64 packets;
	__u64 bytes;
};

/* Index: direction * __VERDICT_MAX + verdict. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, __DIR_MAX * __VERDICT_MAX);
	__type(key, __u32);
	__type(value, struct counter);
} verdict_counters SEC(".maps");

/* Room for reasons to come: a pinned map keeps its size across upgrades. */
#define DROP_COUNTERS_SIZE 64
_Static_assert(__DROP_MAX <= DROP_COUNTERS_SIZE, "drop_counters too small for enum drop_reason");

/* Index: drop reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_COUNTERS_SIZE);
	__type(key, __u32);
	__type(value, struct counter);
} drop_counters SEC(".maps");

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
	__u32 key = dir * __VERDICT_MAX + v;
	struct counter *c = bpf_map_lookup_elem(&verdict_counters, &key);

	if (c)
		counter_add(c, len);
}

static __always_inline int drop(struct __sk_buff *skb, enum direction dir, enum drop_reason reason)
{
	__u32 key = reason;
	struct counter *c = bpf_map_lookup_elem(&drop_counters, &key);

	if (c)
		counter_add(c, skb->len);
	count_verdict(dir, VERDICT_DROP, skb->len);
	monitor_emit(skb, MONITOR_DROP, dir, reason);
	return TC_ACT_SHOT;
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
