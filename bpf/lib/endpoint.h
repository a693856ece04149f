/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Networks and endpoints as the control plane writes them. */
#pragma once

#include "common.h"

enum network_flags {
	NET_F_ICC = 1 << 0,        /* containers of this network may talk */
	NET_F_MASQUERADE = 1 << 1, /* SNAT traffic leaving for the outside */
	NET_F_INTERNAL = 1 << 2,   /* no outside access at all */
	/* Gateway mode nat-unprotected: an uplink may route anything to the
	 * containers' addresses (Docker's direct routing without its raw
	 * PREROUTING drop). Off, only published ports and replies get in. */
	NET_F_UNPROTECTED = 1 << 3,
	/* The network names service prefixes (kernel_nat.h): the kernel's
	 * netfilter NATs some of its flows, so from_container hands those to
	 * the stack. */
	NET_F_KERNEL_NAT = 1 << 4,
	NET_F_IPV6 = 1 << 5, /* dual stack: networks6 and endpoints6 hold its IPv6 side */
};

struct network_info {
	__be32 subnet; /* network address */
	__be32 mask;
	__be32 gateway; /* held by the bridge */
	__u32 flags;    /* enum network_flags */
	__u32 bridge_ifindex;
	__u8 gateway_mac[ETH_ALEN];
	__u16 _pad;
};

/* Keyed by network id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct network_info);
} networks SEC(".maps");

enum endpoint_flags {
	EP_F_OVERLAY = 1 << 0, /* on an overlay network: look up remote endpoints */
};

struct endpoint_info {
	__be32 ip;
	__u32 net_id;
	__u32 ifindex;      /* host side of the veth pair */
	__u8 mac[ETH_ALEN]; /* container side MAC */
	__u16 flags;        /* enum endpoint_flags */
};

/* Keyed by the host-side veth ifindex: who is sending. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct endpoint_info);
} endpoints SEC(".maps");

/* Keyed by container IPv4 address: where to deliver. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __be32);
	__type(value, struct endpoint_info);
} endpoint_ips SEC(".maps");

/* IPv6 lives in maps of its own: the IPv4 maps keep the layouts that
 * pinned datapaths of older builds hold, and IPv4 packets never touch it. */

struct ip6_key {
	__be32 addr[4];
};

struct network6_info {
	__be32 gateway6[4]; /* held by the bridge */
	__be32 subnet6[4];  /* network address */
	__u32 prefixlen;
};

/* Keyed by network id, for networks with NET_F_IPV6. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct network6_info);
} networks6 SEC(".maps");

/* Keyed by the host-side veth ifindex: the sender's global IPv6 address.
 * Its link-local address is not stored: the control plane gives it the
 * modified EUI-64 one of its MAC (RFC 4291 appendix A). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct ip6_key);
} endpoints6 SEC(".maps");

/* Keyed by container IPv6 address, global and link-local: where to
 * deliver, and whose neighbour solicitation to answer. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, struct ip6_key);
	__type(value, struct endpoint_info);
} endpoint_ips6 SEC(".maps");

struct subnet_key {
	__u32 prefixlen;
	__be32 addr;
};

/* Every network's subnet, so traffic to another network's unassigned
 * addresses is isolated too. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct subnet_key);
	__type(value, __u32);
} subnets SEC(".maps");

struct subnet6_key {
	__u32 prefixlen;
	__be32 addr[4];
};

/* Every network's IPv6 subnet, for isolation as subnets. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct subnet6_key);
	__type(value, __u32);
} subnets6 SEC(".maps");

const volatile enum network_flags btf_anchor_network_flags __attribute__((unused));
const volatile enum endpoint_flags btf_anchor_endpoint_flags __attribute__((unused));
