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

const volatile enum network_flags btf_anchor_network_flags __attribute__((unused));
const volatile enum endpoint_flags btf_anchor_endpoint_flags __attribute__((unused));
