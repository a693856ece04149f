// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* TCX egress on the host's VXLAN device: what the host's own stack sends to
 * another host's endpoint: the host reaching an endpoint, and what
 * netfilter forwards (a kube-proxy Service DNATed to a backend on another
 * host). Containers' packets, which from_container redirects here with
 * their tunnel key set, pass untouched.
 *
 * The control plane routes every remote endpoint's address to this device
 * (a /32 with this host's underlay address as source, which the device
 * holds too, so masquerade picks it), and the device does no ARP. Here the
 * packet gets the endpoint's MAC and the tunnel key of its host and
 * network, as from_container gives a container's; from_overlay on the
 * other side takes the host's underlay address as a source it may speak
 * for. Anything else the stack sends here has no tunnel and goes nowhere. */

#include "lib/common.h"
#include "lib/drop.h"
#include "lib/metrics.h"
#include "lib/endpoint.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/overlay.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define DIR DIR_FROM_HOST

SEC("tc")
int from_host(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct overlay_network *ov;
	struct endpoint_info *src;
	struct remote_endpoint *r;
	struct packet p;
	__u32 len;
	int ret;

	/* Containers' packets come here too, redirected by from_container
	 * with their tunnel key set: on their way already. */
	if (!bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0))
		return TC_ACT_OK;
	__builtin_memset(&key, 0, sizeof(key));
	ret = parse_packet(skb, &p);
	if (ret == PARSE_MALFORMED)
		return drop(skb, DIR, DROP_MALFORMED);
	if (!p.ip) {
		count_verdict(DIR, VERDICT_PASS, skb->len);
		return TC_ACT_OK; /* IPv6 link-local chatter and the like: no tunnel key, the device drops it */
	}
	r = bpf_map_lookup_elem(&remote_endpoints, &p.ip->daddr);
	if (!r)
		return drop(skb, DIR, DROP_OVERLAY_NO_ENDPOINT);
	ov = bpf_map_lookup_elem(&overlay_networks, &r->net_id);
	if (!ov)
		return drop(skb, DIR, DROP_OVERLAY_NO_ENDPOINT); /* the network is being removed */
	/* A packet the stack forwards for a local endpoint (netfilter's DNAT)
	 * carries that endpoint's MAC as it would had the endpoint sent it:
	 * the other host checks sender address and MAC against the cluster's
	 * view. */
	src = bpf_map_lookup_elem(&endpoint_ips, &p.ip->saddr);
	if (src ? store_macs(skb, r->mac, src->mac)
		: bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), r->mac, ETH_ALEN, 0))
		return drop(skb, DIR, DROP_WRITE_FAILED);
	key.remote_ipv4 = bpf_ntohl(r->host);
	key.tunnel_id = ov->vni;
	key.tunnel_ttl = 64;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), 0))
		return drop(skb, DIR, DROP_WRITE_FAILED);
	len = skb->len;
	count_verdict(DIR, VERDICT_FORWARD, len);
	count_overlay_host(r->host, 1, len);
	return TC_ACT_OK;
}
