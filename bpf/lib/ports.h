/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Uplinks and published ports as the control plane writes them: read by the
 * TC programs (masquerade, DNAT, hairpin) and by the socket hooks. */
#pragma once

#include "common.h"
#include "endpoint.h"

/* An interface that leads outside, keyed by ifindex. */
struct uplink_info {
	__be32 ip; /* masquerade address, host IP of published ports */
	__u8 mac[ETH_ALEN];
	__u16 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct uplink_info);
} uplinks SEC(".maps");

/* The same addresses keyed by IP (value: ifindex), so a container's packet
 * to a host IP is recognised without walking the uplinks. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __be32);
	__type(value, __u32);
} uplink_ips SEC(".maps");

/* The uplinks' global IPv6 addresses (value: ifindex), for the socket
 * hooks: a host process reaching one of them at a published port is pointed
 * at the container, as for uplink_ips. from_uplink asks the FIB instead. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct ip6_key);
	__type(value, __u32);
} uplink_ips6 SEC(".maps");

struct port_key {
	__u8 proto;
	__u8 _pad;
	__be16 port;
	__be32 host_ip; /* 0: any local address */
};

enum port_flags {
	/* The runtime that asked for the port reserves it with a socket of
	 * its own (Podman's conmon binds every published host port): the
	 * bind guard (sock.c) lets binds of it through. The socket never sees
	 * the port's traffic, which the datapath takes first. */
	PORT_F_RUNTIME_HELD = 1 << 0,
	/* Published on 0.0.0.0 (Docker 28: IPv4 only): the entry on every
	 * address (host_ip 0) serves IPv4 alone. Without it, a port published
	 * with no host address serves both families; one on [::] alone is in
	 * ports6 (host_ip ::). */
	PORT_F_IPV4_ONLY = 1 << 1,
};

struct port_entry {
	__be32 container_ip;
	__be16 container_port;
	__u16 flags;   /* enum port_flags */
	__u32 ifindex; /* host side of the endpoint's veth */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct port_key);
	__type(value, struct port_entry);
} ports SEC(".maps");

/* Ports published on one IPv6 address of the host (-p [::1]:8080:80,
 * -p [2001:db8::5]:8080:80) or on [::] (every IPv6 address, IPv6 only),
 * same value as ports. A port published with no host address is in ports
 * (host_ip 0) for both families. */
struct port6_key {
	__u8 proto;
	__u8 _pad;
	__be16 port;
	struct ip6_key host_ip;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct port6_key);
	__type(value, struct port_entry);
} ports6 SEC(".maps");

/* The binding published at (proto, daddr, dport); with any_ok, one published
 * on every address (host_ip 0) matches too. */
const volatile enum port_flags btf_anchor_port_flags __attribute__((unused));

static __always_inline struct port_entry *port_lookup(__u8 proto, __be32 daddr, __be16 dport, int any_ok)
{
	struct port_key pk = { .proto = proto, .port = dport, .host_ip = daddr };
	struct port_entry *pb = bpf_map_lookup_elem(&ports, &pk);

	if (pb || !any_ok)
		return pb;
	pk.host_ip = 0;
	return bpf_map_lookup_elem(&ports, &pk);
}

/* ::1 */
static __always_inline int is_loopback6(const struct ip6_key *a)
{
	return !(a->addr[0] | a->addr[1] | a->addr[2]) && a->addr[3] == bpf_htonl(1);
}

/* The binding published on the IPv6 address daddr itself, if any. */
static __always_inline struct port_entry *port6_lookup(__u8 proto, const struct ip6_key *daddr, __be16 dport)
{
	struct port6_key pk = { .proto = proto, .port = dport, .host_ip = *daddr };

	return bpf_map_lookup_elem(&ports6, &pk);
}

/* The binding published on every IPv6 address: on [::] alone (ports6),
 * else with no host address (ports, unless 0.0.0.0 made it IPv4 only). */
static __always_inline struct port_entry *port6_any(__u8 proto, __be16 dport)
{
	struct ip6_key any = {};
	struct port_entry *pb = port6_lookup(proto, &any, dport);

	if (pb)
		return pb;
	pb = port_lookup(proto, 0, dport, 0);
	return pb && !(pb->flags & PORT_F_IPV4_ONLY) ? pb : NULL;
}

/* The binding a packet to [daddr]:dport from a wire or a container
 * reaches: one published on daddr, else one on every IPv6 address. [::1]
 * is the host's own: a port published there never answers a packet. The
 * caller checks that daddr is the host's. */
static __always_inline struct port_entry *port6_published(__u8 proto, const struct ip6_key *daddr, __be16 dport)
{
	struct port_entry *pb = NULL;

	if (!is_loopback6(daddr))
		pb = port6_lookup(proto, daddr, dport);
	return pb ? pb : port6_any(proto, dport);
}
