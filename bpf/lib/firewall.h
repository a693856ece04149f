/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The user firewall: who may open a flow to a published port from an
 * uplink. It is ebpfnet's DOCKER-USER: the DNAT happens at TC, before the
 * host's netfilter, so iptables/ufw rules never see this traffic.
 *
 * Rules are source prefixes in scopes. A new inbound flow is judged by the
 * most specific scope that has rules: its published port (protocol and
 * host port), then the network of the container it goes to, then every
 * published port. Inside a scope the longest matching prefix decides. The
 * control plane compiles the user's rules into fw_rules and adds a 0/0 deny
 * to every scope with an allow rule and no 0/0 rule of its own, so an allow
 * list is a list: what it does not name is refused. Only new flows are
 * judged; replies and flows already tracked are not (DOCKER-USER behind
 * conntrack's ESTABLISHED,RELATED accept).
 *
 * IPv6 sources are in fw_rules6, keyed by the same scope bits, judged in
 * the same scope order. Families are not mixed: an IPv6 source is judged
 * by a scope's IPv6 entries only. The implied deny is per family (0/0 and
 * ::/0), added for both to a scope with an allow rule of either family, so
 * an allow list that names only IPv4 prefixes refuses IPv6 sources too. */
#pragma once

#include "common.h"
#include "endpoint.h"

enum fw_scope_kind {
	FW_SCOPE_ALL = 1,     /* every published port */
	FW_SCOPE_NETWORK = 2, /* the ports of one network's containers (id: network id) */
	FW_SCOPE_PORT = 3,    /* one published port (proto, port: host port) */
};

enum fw_action {
	FW_ALLOW = 1,
	FW_DENY = 2,
};

enum fw_limits {
	/* Scope bits come first in the key: prefixlen = FW_SCOPE_BITS + the
	 * source prefix's length. */
	FW_SCOPE_BITS = 64,
};

struct fw_key {
	__u32 prefixlen;
	__u8 kind; /* enum fw_scope_kind */
	__u8 proto;
	__be16 port;
	__u32 id;
	__be32 saddr;
};

struct fw_rule {
	__u32 action; /* enum fw_action */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct fw_key);
	__type(value, struct fw_rule);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} fw_rules SEC(".maps");

/* fw_rules for IPv6 sources: prefixlen = FW_SCOPE_BITS + the source
 * prefix's length (up to 128). */
struct fw6_key {
	__u32 prefixlen;
	__u8 kind; /* enum fw_scope_kind */
	__u8 proto;
	__be16 port;
	__u32 id;
	struct ip6_key saddr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct fw6_key);
	__type(value, struct fw_rule);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} fw_rules6 SEC(".maps");

/* Index 0: how many entries fw_rules and fw_rules6 hold together (the control plane writes it
 * after every sync). With none, new flows skip the trie: an array lookup
 * is inlined by the verifier, three trie lookups are helper calls. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} fw_count SEC(".maps");

/* Whether any rule of either family exists: without, callers skip even gathering what the
 * scopes need. */
static __always_inline int fw_active(void)
{
	__u32 zero = 0, *rules = bpf_map_lookup_elem(&fw_count, &zero);

	return rules && *rules;
}

/* The action of the longest prefix of saddr in a scope, 0 if none. */
static __always_inline __u32 fw_scope(__u8 kind, __u8 proto, __be16 port, __u32 id, __be32 saddr)
{
	struct fw_key key = {
		.prefixlen = FW_SCOPE_BITS + 32,
		.kind = kind,
		.proto = proto,
		.port = port,
		.id = id,
		.saddr = saddr,
	};
	struct fw_rule *r = bpf_map_lookup_elem(&fw_rules, &key);

	return r ? r->action : 0;
}

/* Whether saddr may open a flow. port_scoped: judge the (proto, port)
 * scope too (a published port; a routed flow has no published port). */
static __always_inline int fw_allows(__be32 saddr, __u8 proto, __be16 port, int port_scoped, __u32 net_id)
{
	__u32 action = 0;

	if (!fw_active())
		return 1;
	if (port_scoped)
		action = fw_scope(FW_SCOPE_PORT, proto, port, 0, saddr);
	if (!action && net_id)
		action = fw_scope(FW_SCOPE_NETWORK, 0, 0, net_id, saddr);
	if (!action)
		action = fw_scope(FW_SCOPE_ALL, 0, 0, 0, saddr);
	return action != FW_DENY;
}

/* The action of the longest IPv6 prefix of saddr in a scope, 0 if none. */
static __always_inline __u32 fw6_scope(__u8 kind, __u8 proto, __be16 port, __u32 id, const struct ip6_key *saddr)
{
	struct fw6_key key = {
		.prefixlen = FW_SCOPE_BITS + 128,
		.kind = kind,
		.proto = proto,
		.port = port,
		.id = id,
		.saddr = *saddr,
	};
	struct fw_rule *r = bpf_map_lookup_elem(&fw_rules6, &key);

	return r ? r->action : 0;
}

/* fw_allows for an IPv6 source: the same scopes in the same order. */
static __always_inline int fw6_allows(const struct ip6_key *saddr, __u8 proto, __be16 port, int port_scoped,
				      __u32 net_id)
{
	__u32 action = 0;

	if (!fw_active())
		return 1;
	if (port_scoped)
		action = fw6_scope(FW_SCOPE_PORT, proto, port, 0, saddr);
	if (!action && net_id)
		action = fw6_scope(FW_SCOPE_NETWORK, 0, 0, net_id, saddr);
	if (!action)
		action = fw6_scope(FW_SCOPE_ALL, 0, 0, 0, saddr);
	return action != FW_DENY;
}

const volatile enum fw_scope_kind btf_anchor_fw_scope_kind __attribute__((unused));
const volatile enum fw_action btf_anchor_fw_action __attribute__((unused));
const volatile enum fw_limits btf_anchor_fw_limits __attribute__((unused));
