/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Service load balancing (ebpfnet's kube-proxy replacement).
 *
 * A service is reached on frontends: exact addresses (ClusterIP,
 * externalIPs, load balancer IPs) with its port, and a NodePort on every
 * node address. Each frontend key maps to the service's entry (one id for
 * all its frontends); its endpoints sit in lb_backends at slots
 * 0..count-1, this node's own first (0..local_count-1), so a policy of
 * Local picks among the first slots only.
 *
 * In-cluster clients (pods of this instance and the host) are balanced at
 * the socket (sock.c): connect()/sendmsg() get a backend's address, so no
 * packet of theirs is ever translated. Clients from outside reach NodePorts
 * and external addresses through the uplink, where from_uplink DNATs the
 * flow to a backend with the client's address kept. */
#pragma once

#include "common.h"

enum lb_scope {
	LB_SCOPE_EXACT = 0,    /* addr: the frontend's own address */
	LB_SCOPE_NODEPORT = 1, /* addr 0: any node address */
};

struct lb_key {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 scope; /* enum lb_scope */
};

enum lb_flags {
	/* externalTrafficPolicy: Local: from outside, local endpoints only. */
	LB_F_EXTERNAL_LOCAL = 1 << 0,
	/* internalTrafficPolicy: Local: from pods and the node, local only. */
	LB_F_INTERNAL_LOCAL = 1 << 1,
};

struct lb_service {
	__u32 id;
	__u16 count;       /* endpoints in slots 0..count-1 */
	__u16 local_count; /* of which this node's: 0..local_count-1 */
	__u32 affinity_s;  /* sessionAffinity ClientIP timeout; 0: none */
	__u32 flags;       /* enum lb_flags */
};

struct lb_backend_key {
	__u32 id;
	__u32 slot;
};

struct lb_backend {
	__be32 addr;
	__be16 port;
	__u16 _pad;
};

/* A client's endpoint under session affinity. The client is a network
 * namespace (its cookie) at the socket, an address at the uplink. */
struct lb_affinity_key {
	__u64 client;
	__u32 id;
	__u32 _pad;
};

struct lb_affinity {
	struct lb_backend backend;
	__u32 slot; /* where backend was when picked */
	__u32 _pad;
	__u64 last; /* bpf_ktime_get_ns of its last connection */
};

/* How far an affinity's endpoint is looked for when endpoints came or went
 * and it left its slot. */
#define LB_AFFINITY_PROBE 64

/* The tables' capacities, mirrored to Go (loader.LB*Size) for the control
 * plane to refuse a table that would not fit before writing any of it. */
enum lb_limits {
	LB_SERVICES_SIZE = 65536,  /* frontends and NodePorts, all services */
	LB_BACKENDS_SIZE = 262144, /* endpoints, all services */
	LB_NODE_IPS_SIZE = 4096,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_SERVICES_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_key);
	__type(value, struct lb_service);
} lb_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_BACKENDS_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_backend_key);
	__type(value, struct lb_backend);
} lb_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity);
} lb_affinities SEC(".maps");

/* The cluster's node addresses (value unused): a NodePort answers on each. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_NODE_IPS_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __be32);
	__type(value, __u8);
} lb_node_ips SEC(".maps");

const volatile enum lb_scope btf_anchor_lb_scope __attribute__((unused));
const volatile enum lb_flags btf_anchor_lb_flags __attribute__((unused));
const volatile enum lb_limits btf_anchor_lb_limits __attribute__((unused));

static __always_inline struct lb_service *lb_lookup_exact(__u8 proto, __be32 addr, __be16 port)
{
	struct lb_key key = { .addr = addr, .port = port, .proto = proto, .scope = LB_SCOPE_EXACT };

	return bpf_map_lookup_elem(&lb_services, &key);
}

static __always_inline struct lb_service *lb_lookup_nodeport(__u8 proto, __be16 port)
{
	struct lb_key key = { .port = port, .proto = proto, .scope = LB_SCOPE_NODEPORT };

	return bpf_map_lookup_elem(&lb_services, &key);
}

/* The service at addr:port, exact frontends first, then a NodePort if addr
 * is a node's (node says whether it is). */
static __always_inline struct lb_service *lb_lookup(__u8 proto, __be32 addr, __be16 port, int node)
{
	struct lb_service *svc = lb_lookup_exact(proto, addr, port);

	return svc || !node ? svc : lb_lookup_nodeport(proto, port);
}

static __always_inline int lb_node_ip(__be32 addr)
{
	return bpf_map_lookup_elem(&lb_node_ips, &addr) != NULL;
}

static __always_inline struct lb_backend *lb_slot(__u32 id, __u32 slot)
{
	struct lb_backend_key key = { .id = id, .slot = slot };

	return bpf_map_lookup_elem(&lb_backends, &key);
}

static __always_inline int lb_same(const struct lb_backend *b, const struct lb_backend *want)
{
	return b && b->addr == want->addr && b->port == want->port;
}

/* Picks an endpoint for client among the first n slots (n 0: none, and
 * the service refuses). Under session affinity the client keeps its
 * endpoint while it is still one of the n and the timeout has not run
 * out since its last connection. */
static __always_inline int lb_pick(const struct lb_service *svc, __u32 n, __u64 client, __u32 hash,
				   struct lb_backend *out)
{
	struct lb_affinity_key ak = { .client = client, .id = svc->id };
	struct lb_affinity *a = NULL;
	struct lb_affinity na = {};
	struct lb_backend *b;
	__u64 now = 0;
	__u32 slot;

	if (!n)
		return -1;
	if (svc->affinity_s) {
		now = bpf_ktime_get_ns();
		a = bpf_map_lookup_elem(&lb_affinities, &ak);
		if (a && now - a->last < (__u64)svc->affinity_s * NSEC_PER_SEC) {
			/* Still an endpoint of the service (and of the n)? Slots
			 * move only when endpoints come and go: look where it
			 * was, then at the first slots, then pick anew. */
			b = a->slot < n ? lb_slot(svc->id, a->slot) : NULL;
			for (slot = 0; !lb_same(b, &a->backend) && slot < LB_AFFINITY_PROBE && slot < n; slot++)
				b = lb_slot(svc->id, slot);
			if (lb_same(b, &a->backend)) {
				a->last = now;
				*out = *b;
				return 0;
			}
		}
	}
	slot = hash % n;
	b = lb_slot(svc->id, slot);
	if (!b)
		return -1;
	*out = *b;
	if (svc->affinity_s) {
		na.backend = *b;
		na.slot = slot;
		na.last = now;
		bpf_map_update_elem(&lb_affinities, &ak, &na, BPF_ANY);
	}
	return 0;
}
