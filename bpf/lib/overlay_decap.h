/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* VXLAN decapsulation in the datapath: from_uplink strips the outer headers
 * of a peer host's packet for a local endpoint and delivers the inner frame
 * into the container itself (bpf_redirect_peer), instead of handing it to
 * the stack for the host's VXLAN device and from_overlay. The device's path
 * costs, per packet, the outer IP and UDP receive, vxlan_rcv with a
 * metadata dst allocated for the tunnel key, and gro_cells: a second
 * softirq pass before from_overlay runs; this one two map lookups more
 * than from_overlay's and a room adjustment.
 *
 * The same checks as from_overlay's (overlay_judge4, overlay_judge6), on
 * the inner addresses read before anything changes: only a frame they
 * would deliver is decapsulated, so every refusal, and everything this
 * path does not take, reaches the VXLAN device unchanged and is judged,
 * dropped and counted there as before. The device keeps:
 *   - the outer packet the stack would not take as it is: not addressed to
 *     this host's MAC, IPv4 options, a fragment, trailing bytes past the IP
 *     length, a bad IPv4 header checksum;
 *   - a nonzero outer UDP checksum: our peers (overlay_encap.h) and the
 *     kernel's device send none over IPv4; the stack verifies one;
 *   - an outer ECN field of CE: RFC 6040 wants it on the inner header (or
 *     the packet dropped if the inner is not ECN-capable), which the
 *     device does (IP_ECN_decapsulate);
 *   - GSO packets (a peer's TCP in one large skb, or GRO-merged): the
 *     device clears their tunnel GSO type and skb->encapsulation
 *     (iptunnel_pull_offloads), which bpf_skb_adjust_room cannot before
 *     BPF_F_ADJ_ROOM_DECAP_L4_UDP (not in 6.18); left stale, a container
 *     forwarding the packet would segment it as a tunnel packet;
 *   - VXLAN flags other than I, inner frames not IPv4 or IPv6, anything
 *     from_overlay hands to the stack (to this host's underlay address,
 *     replies netfilter must un-NAT: all of a network beside the kernel's
 *     NAT), and every refusal.
 * A non-GSO packet keeps skb->encapsulation if its sender's encapsulation
 * set it (a bpf_skb_adjust_room encap crossing veths): harmless, its inner
 * header offsets now name the very headers the frame starts with.
 *
 * Checksums: the outer IPv4 header's is verified here, as ip_rcv would; the
 * outer UDP's is zero (above), which the UDP receive would count as one
 * verified level of CHECKSUM_UNNECESSARY (udp4_csum_init): the same level
 * is taken off here (BPF_CSUM_LEVEL_DEC), the room adjusted without
 * resetting the rest (BPF_F_ADJ_ROOM_NO_CSUM_RESET), so the inner packet's
 * checksums are verified, or known good, exactly as after the device.
 * CHECKSUM_COMPLETE's sum is adjusted for the removed bytes by the helper;
 * CHECKSUM_PARTIAL (a peer's container on a veth) keeps its offsets, which
 * name the same bytes.
 *
 * The delivered frame is the inner frame as from_overlay delivers it:
 * addressed to the endpoint's MAC, nothing else changed; counted in the
 * from_overlay direction (verdicts, the endpoint's and the peer host's
 * counters), not as a pass on the uplink. */
#pragma once

#include "common.h"
#include "drop.h"
#include "endpoint.h"
#include "ipv6.h"
#include "overlay.h"
#include "overlay6.h"
#include "overlay_encap.h"
#include "parse.h"

/* linux/bpf.h's, newer than the headers we build with (kernel 6.3). */
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4_ (1ULL << 7)
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6_ (1ULL << 8)

#define PACKET_HOST_ 0 /* linux/if_packet.h's */
#define OVERLAY_ECN_CE 3

/* What follows the outer UDP header, up to the inner addresses, read in
 * two parts: the stack wants aligned words (mac_equal reads the source MAC
 * as one, the map keys are read as such), and the frame has none there. */
struct overlay_inner_hdr {
	struct vxlan_hdr_ vx;
	__u16 _pad;
	struct ethhdr eth; /* h_source 4-byte aligned */
	union {
		struct iphdr ip;
		struct ip6_hdr ip6;
	};
};

_Static_assert(offsetof(struct overlay_inner_hdr, eth.h_source) % 4 == 0, "aligned MAC");
_Static_assert(offsetof(struct overlay_inner_hdr, ip) == offsetof(struct overlay_inner_hdr, eth) + ETH_HLEN,
	       "the inner IP header follows the Ethernet header");

#define OVERLAY_VXLAN_OFF (ETH_HLEN + sizeof(struct iphdr) + sizeof(struct udphdr))
#define OVERLAY_INNER_L3_OFF (OVERLAY_VXLAN_OFF + sizeof(struct vxlan_hdr_) + ETH_HLEN)

_Static_assert(OVERLAY_INNER_L3_OFF == OVERLAY_ENCAP_LEN + ETH_HLEN, "the inner IP header follows the 50 bytes");

/* Would the stack take the outer packet p as it is, addressed to this
 * host, and hand its payload to the VXLAN socket as a whole datagram? */
static __always_inline int overlay_outer_ok(struct __sk_buff *skb, const struct packet *p)
{
	__u32 w[5];
	__u64 sum = 0;
	int i;

	if (skb->pkt_type != PACKET_HOST_ || skb->gso_size || p->l4.udp.check || p->ip_len != skb->len - ETH_HLEN ||
	    bpf_skb_load_bytes(skb, ETH_HLEN, w, sizeof(w)))
		return 0;
	/* Options, fragments (MF or an offset), an outer CE mark. */
	if (((struct iphdr *)w)->ihl != 5 || (((struct iphdr *)w)->frag_off & bpf_htons(IP_MF | IP_OFFSET)) ||
	    (((struct iphdr *)w)->tos & 3) == OVERLAY_ECN_CE)
		return 0;
#pragma unroll
	for (i = 0; i < 10; i++)
		sum += ((__u16 *)w)[i];
	return csum_fold32(sum) == 0;
}

/* Strips the outer headers (the 50 bytes after the outer Ethernet header)
 * and writes eth, the inner Ethernet header as delivered, over the outer
 * one.
 * -1: nothing changed. 1: changed but not rewritten (the frame is lost). */
static __always_inline int overlay_strip(struct __sk_buff *skb, const struct ethhdr *eth, __u64 l3_flag)
{
	if (bpf_skb_adjust_room(skb, -OVERLAY_ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_NO_CSUM_RESET | l3_flag))
		return -1;
	bpf_csum_level(skb, BPF_CSUM_LEVEL_DEC);
	return bpf_skb_store_bytes(skb, 0, eth, ETH_HLEN, 0) ? 1 : 0;
}

/* An IPv6 inner frame that overlay_judge6 lets through: decapsulated,
 * parsed as from_overlay6 parses it, and delivered. */
static __always_inline int overlay_decap6(struct __sk_buff *skb, struct overlay_inner_hdr *h, __u32 vni, __be32 outer)
{
	struct endpoint_info *dst = NULL;
	struct ethhdr *eth;
	struct packet6 p6;
	int ret;

	if ((bpf_ntohl(h->ip6.vtcfl) >> 28) != 6 ||
	    overlay_judge6(h->eth.h_source, &h->ip6.saddr, &h->ip6.daddr, vni, outer, &dst) || !dst)
		return TC_ACT_UNSPEC;
	__builtin_memcpy(h->eth.h_dest, dst->mac, ETH_ALEN);
	ret = overlay_strip(skb, &h->eth, BPF_F_ADJ_ROOM_DECAP_L3_IPV6_);
	if (ret < 0)
		return TC_ACT_UNSPEC;
	if (ret)
		return drop(skb, DIR_FROM_OVERLAY, DROP_WRITE_FAILED);
	ret = parse_ipv6(skb, &p6);
	if (ret != PARSE6_OK)
		return drop(skb, DIR_FROM_OVERLAY, ret == PARSE6_MALFORMED ? DROP_MALFORMED : DROP_IPV6_EXT_HDR);
	eth = (void *)(long)skb->data;
	if ((void *)(eth + 1) > (void *)(long)skb->data_end)
		return drop(skb, DIR_FROM_OVERLAY, DROP_MALFORMED);
	return overlay_deliver(skb, eth, dst, outer);
}

/* VXLAN from a peer host to this host's uplink address (p, the outer
 * packet: overlay_underlay_packet): decapsulated and delivered into a
 * local endpoint if from_overlay would deliver it, TC_ACT_REDIRECT (or
 * TC_ACT_SHOT if the inner packet turns out malformed, as from_overlay
 * drops it). TC_ACT_UNSPEC: unchanged, for the VXLAN device. */
static __always_inline int overlay_decap(struct __sk_buff *skb, struct packet *p)
{
	struct overlay_inner_hdr h;
	struct overlay_rx rx;
	__be32 outer = p->ip->saddr;
	__u32 vni;
	int ret;

	if (!overlay_outer_ok(skb, p) || bpf_skb_load_bytes(skb, OVERLAY_VXLAN_OFF, &h.vx, sizeof(h.vx)) ||
	    bpf_skb_load_bytes(skb, OVERLAY_VXLAN_OFF + sizeof(h.vx), &h.eth, sizeof(h.eth) + sizeof(h.ip)))
		return TC_ACT_UNSPEC;
	if (h.vx.flags != bpf_htonl(VXLAN_FLAG_VNI) || (h.vx.vni & bpf_htonl(0xff)))
		return TC_ACT_UNSPEC;
	vni = bpf_ntohl(h.vx.vni) >> 8;
	if (h.eth.h_proto == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, OVERLAY_INNER_L3_OFF, &h.ip6, sizeof(h.ip6)))
			return TC_ACT_UNSPEC;
		return overlay_decap6(skb, &h, vni, outer);
	}
	if (h.eth.h_proto != bpf_htons(ETH_P_IP) || h.ip.version != 4)
		return TC_ACT_UNSPEC;
	if (overlay_judge4(&rx, h.eth.h_source, h.ip.saddr, h.ip.daddr, vni, outer) || !rx.dst || !rx.net ||
	    (rx.net->flags & NET_F_KERNEL_NAT))
		return TC_ACT_UNSPEC;
	__builtin_memcpy(h.eth.h_dest, rx.dst->mac, ETH_ALEN);
	ret = overlay_strip(skb, &h.eth, BPF_F_ADJ_ROOM_DECAP_L3_IPV4_);
	if (ret < 0)
		return TC_ACT_UNSPEC;
	if (ret)
		return drop(skb, DIR_FROM_OVERLAY, DROP_WRITE_FAILED);
	/* from_overlay's parse, on the inner packet now in front. */
	ret = parse_packet(skb, p);
	if (ret != PARSE_OK)
		return drop(skb, DIR_FROM_OVERLAY, DROP_MALFORMED);
	if (!rx.src)
		overlay_remember_host_flow(p);
	return overlay_deliver(skb, p->eth, rx.dst, outer);
}
