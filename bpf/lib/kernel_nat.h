/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Living beside the kernel's own NAT (kube-proxy's iptables or nftables
 * rules): which packets from_container hands to the stack instead of
 * forwarding them itself.
 *
 * Three kinds, all only on networks that name service prefixes
 * (NET_F_KERNEL_NAT):
 *   - packets to a service prefix (Kubernetes' service CIDR): netfilter's
 *     PREROUTING DNATs them to a backend, which eBPF forwarding would skip;
 *   - replies of flows netfilter translated: a backend's answer to a pod, or
 *     to an outside client of an externalTrafficPolicy=Local NodePort, must
 *     cross netfilter again to be un-NATed. netfilter's conntrack is asked
 *     with the bpf_skb_ct_lookup kfunc; with the bridge's
 *     bridge-nf-call-iptables on (as kubeadm sets it), the bridged reply
 *     gets its source translated back in POSTROUTING;
 *   - fragments between endpoints, which the stack reassembles to tell
 *     (kernel_nat_fragment).
 * Everything else keeps the eBPF fast path. */
#pragma once

#include "common.h"
#include "endpoint.h"
#include "metrics.h"
#include "parse.h"

/* A network's service prefixes, keyed by network id then prefix. */
struct service_cidr_key {
	__u32 prefixlen; /* 32 (the network id) + the prefix length */
	__u32 net_id;
	__be32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct service_cidr_key);
	__type(value, __u8);
} service_cidrs SEC(".maps");

static __always_inline int in_service_cidr(const struct network_info *net, __u32 net_id, __be32 daddr)
{
	struct service_cidr_key key = { .prefixlen = 64, .net_id = net_id, .addr = daddr };

	if (!(net->flags & NET_F_KERNEL_NAT))
		return 0;
	return bpf_map_lookup_elem(&service_cidrs, &key) != NULL;
}

/* netfilter's conntrack kfuncs (net/netfilter/nf_conntrack_bpf.c). Weak: a
 * kernel without them loads the programs with the lookup compiled out. */
struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u16 ct_zone_id;
	__u8 ct_zone_dir;
	__u8 reserved[3];
};

enum {
	BPF_CT_OPTS_SZ = 16,
	CT_NETNS_CURRENT = -1, /* BPF_F_CURRENT_NETNS: the skb's device's */
	IP_CT_DIR_REPLY_ = 1,
	IPS_SRC_NAT_ = 1 << 4,
	IPS_DST_NAT_ = 1 << 5,
};

/* The one field we read, relocated against the kernel's struct nf_conn
 * (CO-RE). A full struct, not a declaration: the loader checks the kfuncs'
 * prototypes against the kernel's. */
struct nf_conn {
	unsigned long status;
} __attribute__((preserve_access_index));

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 tuple__sz,
					 struct bpf_ct_opts *opts, __u32 opts__sz) __ksym __weak;
extern void bpf_ct_release(struct nf_conn *ct) __ksym __weak;

/* Is this TCP/UDP packet (saddr:sport -> daddr:dport) the reply of a flow
 * netfilter translated? */
static __always_inline int kernel_nat_reply(struct __sk_buff *skb, const struct network_info *net, __u8 proto,
					    __be32 saddr, __be32 daddr, __be16 sport, __be16 dport)
{
	struct bpf_ct_opts opts = { .netns_id = CT_NETNS_CURRENT, .l4proto = proto };
	struct bpf_sock_tuple tuple = {};
	struct nf_conn *ct;
	unsigned long status;

	if (!(net->flags & NET_F_KERNEL_NAT) || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return 0;
	if (!bpf_skb_ct_lookup || !bpf_ct_release)
		return 0;
	tuple.ipv4.saddr = saddr;
	tuple.ipv4.daddr = daddr;
	tuple.ipv4.sport = sport;
	tuple.ipv4.dport = dport;
	ct = bpf_skb_ct_lookup(skb, &tuple, sizeof(tuple.ipv4), &opts, BPF_CT_OPTS_SZ);
	if (!ct)
		return 0;
	status = ct->status;
	bpf_ct_release(ct);
	return opts.dir == IP_CT_DIR_REPLY_ && (status & (IPS_SRC_NAT_ | IPS_DST_NAT_));
}

/* A fragment (IPv4) on a network beside the kernel's NAT: only the first
 * carries the ports, so whether its datagram is a reply netfilter must
 * translate cannot be told fragment by fragment. The stack reassembles it
 * (conntrack defragments) and decides for the whole datagram; a datagram
 * beyond the MTU is rare enough for that path. */
static __always_inline int kernel_nat_fragment(const struct network_info *net, const struct packet *p)
{
	return (net->flags & NET_F_KERNEL_NAT) && (p->ip->frag_off & bpf_htons(IP_MF | IP_OFFSET));
}

/* Hands the packet to the stack for netfilter to translate. */
static __always_inline int to_kernel_nat(struct __sk_buff *skb, enum direction dir)
{
	count_verdict(dir, VERDICT_KERNEL_NAT, skb->len);
	return TC_ACT_OK;
}
