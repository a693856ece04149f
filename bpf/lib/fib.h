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
