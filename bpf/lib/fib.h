/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Routing a packet out with the kernel FIB instead of the stack. */
#pragma once

#include "common.h"
#include "csum.h"
#include "parse.h"

#define AF_INET_ 2
#define AF_INET6_ 10

/* Looks up the route for (saddr, daddr) as if the packet was forwarded from
 * its ingress interface. tot_len stays 0: the helper then checks the skb
 * against the egress MTU itself, which is right for GSO packets too. */
static __always_inline long fib_lookup4(struct __sk_buff *skb, struct bpf_fib_lookup *fib, __be32 saddr, __be32 daddr,
					const struct l4_meta *m)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET_;
	fib->tos = m->tos;
	fib->l4_protocol = m->proto;
	fib->ipv4_src = saddr;
	fib->ipv4_dst = daddr;
	fib->ifindex = skb->ingress_ifindex;
	return bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
}

/* The FIB's answer for one (source, destination, ingress, tos, protocol),
 * kept for a second: every packet of a tracked flow leaving through an
 * uplink asks the same question, and the lookup (route and neighbour) was
 * over a quarter of from_container's time on such a packet. A route or
 * neighbour change is seen within a second, as overlay_routes does. */
struct fib_cached {
	__be32 saddr;
	__be32 daddr;
	__u32 iif;
	__u8 tos;
	__u8 proto;
	__u16 mtu;
	__u32 oif;
	__u8 smac[6];
	__u8 dmac[6];
	__u64 until; /* flow_clock() after which it is asked again */
};

enum {
	FIB_CACHE_SLOTS = 256
}; /* per CPU, direct-mapped */

/* Per CPU: a packet's CPU reads and fills its own slots, so no cache line
 * moves between CPUs, and an array lookup is inlined by the verifier. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FIB_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct fib_cached);
} fib_cache SEC(".maps");

static __always_inline __u32 fib_cache_slot(__be32 saddr, __be32 daddr, __u32 iif)
{
	return ((saddr ^ (daddr * 0x9e3779b1u) ^ iif) * 0x85ebca6bu) >> 24;
}

/* What the FIB's own MTU check (tot_len 0: is_skb_forwardable) lets through
 * a device of this MTU: up to the MTU with an Ethernet and a VLAN header, or
 * any GSO packet. */
static __always_inline int fib_cached_fits(const struct __sk_buff *skb, const struct fib_cached *c)
{
	return skb->len <= (__u32)c->mtu + ETH_HLEN + 4 || skb->gso_size;
}

/* fib_lookup4 through fib_cache: a fresh answer of SUCCESS that the packet
 * fits is reused (fib gets the egress interface, MACs and MTU; nothing
 * else of it is set); anything else asks the FIB, and a SUCCESS is kept. */
static __always_inline long fib_lookup4_cached(struct __sk_buff *skb, struct bpf_fib_lookup *fib, __be32 saddr,
					       __be32 daddr, const struct l4_meta *m)
{
	__u32 iif = skb->ingress_ifindex;
	__u32 slot = fib_cache_slot(saddr, daddr, iif);
	struct fib_cached *c = bpf_map_lookup_elem(&fib_cache, &slot);
	__u64 now = flow_clock();
	long rc;

	if (c && now < c->until && c->saddr == saddr && c->daddr == daddr && c->iif == iif && c->tos == m->tos &&
	    c->proto == m->proto && fib_cached_fits(skb, c)) {
		fib->ifindex = c->oif;
		fib->mtu_result = c->mtu;
		__builtin_memcpy(fib->smac, c->smac, ETH_ALEN);
		__builtin_memcpy(fib->dmac, c->dmac, ETH_ALEN);
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	rc = fib_lookup4(skb, fib, saddr, daddr, m);
	if (c && rc == BPF_FIB_LKUP_RET_SUCCESS) {
		c->saddr = saddr;
		c->daddr = daddr;
		c->iif = iif;
		c->tos = m->tos;
		c->proto = m->proto;
		c->mtu = fib->mtu_result;
		c->oif = fib->ifindex;
		__builtin_memcpy(c->smac, fib->smac, ETH_ALEN);
		__builtin_memcpy(c->dmac, fib->dmac, ETH_ALEN);
		c->until = now + NSEC_PER_SEC;
	}
	return rc;
}

/* The IPv6 route for (saddr, daddr), each four __be32 words, as if
 * forwarded from the ingress interface; flowinfo is the header's first word.
 * The kernel answers FWD_DISABLED before it looks at the destination when
 * the ingress interface forwards no IPv6. flags: BPF_FIB_LOOKUP_SRC also
 * puts the source address the host would pick for the route (RFC 6724, the
 * egress interface's) in fib->ipv6_src, or answers NO_SRC_ADDR. */
static __always_inline long fib_lookup6(struct __sk_buff *skb, struct bpf_fib_lookup *fib, const __be32 *saddr,
					const __be32 *daddr, __be32 flowinfo, __u8 proto, __u32 flags)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET6_;
	fib->flowinfo = flowinfo & bpf_htonl(0x0fffffff);
	fib->l4_protocol = proto;
	__builtin_memcpy(fib->ipv6_src, saddr, 16);
	__builtin_memcpy(fib->ipv6_dst, daddr, 16);
	fib->ifindex = skb->ingress_ifindex;
	return bpf_fib_lookup(skb, fib, sizeof(*fib), flags);
}

/* fib_lookup6 checking the egress MTU against tot_len, the packet's
 * length once it is IPv6 (0: the skb's own, GSO segments included). */
static __always_inline long fib_lookup6_len(struct __sk_buff *skb, struct bpf_fib_lookup *fib, const __be32 *saddr,
					    const __be32 *daddr, __u8 proto, __u16 tot_len)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET6_;
	fib->l4_protocol = proto;
	fib->tot_len = tot_len;
	__builtin_memcpy(fib->ipv6_src, saddr, 16);
	__builtin_memcpy(fib->ipv6_dst, daddr, 16);
	fib->ifindex = skb->ingress_ifindex;
	return bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
}

/* SUCCESS and NO_NEIGH both give an egress interface we can send to. */
static __always_inline int fib_forwardable(long rc)
{
	return rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH;
}

/* Sends the packet to the FIB's egress interface: with the MACs the FIB
 * resolved, or through the neighbour subsystem when it has none yet. */
static __always_inline int fib_redirect(struct __sk_buff *skb, const struct bpf_fib_lookup *fib, long rc)
{
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		struct bpf_redir_neigh nh = { .nh_family = AF_INET_, .ipv4_nh = fib->ipv4_dst };

		return bpf_redirect_neigh(fib->ifindex, &nh, sizeof(nh), 0);
	}
	if (store_macs(skb, fib->dmac, fib->smac))
		return -1;
	return bpf_redirect(fib->ifindex, 0);
}

/* fib_redirect for an IPv6 route: without a neighbour entry yet, through
 * the neighbour subsystem to the FIB's next hop (in fib->ipv6_dst). */
static __always_inline int fib_redirect6(struct __sk_buff *skb, const struct bpf_fib_lookup *fib, long rc)
{
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		struct bpf_redir_neigh nh = { .nh_family = AF_INET6_ };

		__builtin_memcpy(nh.ipv6_nh, fib->ipv6_dst, sizeof(nh.ipv6_nh));
		return bpf_redirect_neigh(fib->ifindex, &nh, sizeof(nh), 0);
	}
	if (store_macs(skb, fib->dmac, fib->smac))
		return -1;
	return bpf_redirect(fib->ifindex, 0);
}
