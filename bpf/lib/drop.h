/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Drop reasons, their counters and drop(). The enum is the one definition:
 * Go reads the names from its BTF (maps.DropReasonNames), so a new reason
 * needs no Go change. Append new reasons: the values are counter indexes in
 * pinned maps and labels users alert on. */
#pragma once

#include "common.h"
#include "metrics.h"
#include "monitor.h"

enum drop_reason {
	DROP_NONE = 0,
	DROP_MALFORMED = 1,         /* truncated or invalid L2/L3/L4 header */
	DROP_UNKNOWN_ENDPOINT = 2,  /* program on an interface with no endpoint */
	DROP_SPOOFED_MAC = 3,       /* source MAC is not the endpoint's */
	DROP_SPOOFED_IP = 4,        /* source IP is not the endpoint's */
	DROP_NETWORK_ISOLATION = 5, /* destination is on another network */
	DROP_ICC_DISABLED = 6,      /* container-to-container with --icc=false */
	DROP_INTERNAL_NETWORK = 7,  /* --internal network talking to the outside */
	DROP_NAT_EXHAUSTED = 8,     /* no free source port for a new SNAT flow */
	DROP_CT_MAP_FULL = 9,       /* conntrack insert failed */
	DROP_TTL_EXCEEDED = 10,     /* TTL would reach zero on forward */
	DROP_FRAGMENT = 11,         /* IPv4 fragment of a NATed flow */
	DROP_FIB_FAILED = 12,       /* no route to the destination */
	DROP_CSUM_FAILED = 13,      /* checksum rewrite helper failed */
	DROP_REDIRECT_FAILED = 14,  /* redirect helper failed */
	DROP_CT_CONFLICT = 15,      /* a new DNAT flow's reply tuple belongs to another flow */
	DROP_FRAG_NEEDED = 16,      /* too big for the egress MTU and DF unset: we do not fragment */
	DROP_WRITE_FAILED = 17,     /* storing the new MAC addresses failed */
	DROP_VLAN = 18,             /* a container sent an 802.1Q/802.1ad tagged frame */
	DROP_ETHERTYPE = 19,        /* a container sent an ethertype the datapath does not carry (not IPv4, ARP) */
	DROP_IPV6 = 20,             /* a container sent IPv6 on a network without IPv6 (not --ipv6) */
	DROP_SPOOFED_ARP = 21,      /* ARP sender hardware or protocol address is not the endpoint's */
	DROP_MARTIAN = 22,          /* loopback or "this network" address arriving from a wire */
	DROP_DIRECT_ROUTING = 23,   /* from an uplink to a container address: no published port, no reply */
	DROP_NO_FLOW = 24,  /* a container's TCP SYN-ACK or RST to the outside whose flow conntrack does not hold */
	DROP_FIREWALL = 25, /* the user firewall (ebpfnet firewall) refuses the source of a new inbound flow */
	/* From the VXLAN device: the inner source is no endpoint of the host the
	 * outer source names (or its MAC is not the endpoint's). */
	DROP_OVERLAY_SPOOFED = 26,
	DROP_OVERLAY_VNI = 27,         /* the VNI is not the inner source's network's */
	DROP_OVERLAY_NO_ENDPOINT = 28, /* from the VXLAN device to no local endpoint of the network */
	/* From outside to a service with externalTrafficPolicy Local and no
	 * endpoint on this node (kube-proxy drops these too, so load balancers'
	 * health checks steer clients to nodes that have one). */
	DROP_SERVICE_NO_LOCAL_ENDPOINT = 29,
	/* A container's neighbour solicitation or advertisement whose link-layer
	 * option or advertised target is not its own (it would poison the
	 * neighbour caches of its peers and the host). */
	DROP_SPOOFED_ND = 30,
	DROP_ROUTER_ND = 31,    /* a container sent a router advertisement or a redirect */
	DROP_IPV6_EXT_HDR = 32, /* an IPv6 extension header chain the datapath does not walk */
	/* A container's IPv6 to beyond the host that the datapath does not
	 * forward (masqueraded or routed, lib/nat6.h): not out of an uplink,
	 * or no TCP, UDP or echo request. The host's stack forwards no IPv6. */
	DROP_IPV6_NOT_ROUTED = 33,
	DROP_NO_IPV4 = 34, /* IPv4 or ARP from a container of an IPv6-only network (--ipv4=false) */
	__DROP_MAX,
};

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

/* drop()'s accounting, out of line: a global function, which the verifier
 * checks once, where an inlined copy at each of a program's drop sites
 * (dozens) was checked on every path that reaches it. */
__attribute__((noinline)) int drop_account(struct __sk_buff *skb, __u32 dir, __u32 reason)
{
	__u32 key = reason;
	struct counter *c = bpf_map_lookup_elem(&drop_counters, &key);

	if (c)
		counter_add(c, skb->len);
	count_verdict(dir, VERDICT_DROP, skb->len);
	monitor_emit(skb, MONITOR_DROP, dir, reason);
	return 0;
}

static __always_inline int drop(struct __sk_buff *skb, enum direction dir, enum drop_reason reason)
{
	drop_account(skb, dir, reason);
	return TC_ACT_SHOT;
}

/* Unreferenced enums get no BTF: the anchor keeps it in the object so
 * bpf2go can mirror it to Go and the collector can read the names. */
const volatile enum drop_reason btf_anchor_drop_reason __attribute__((unused));
