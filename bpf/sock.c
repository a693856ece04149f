// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cgroup sock_addr hooks: host-local access to published ports, and
 * services balanced at the socket.
 *
 * A process of the host reaching a published port (127.0.0.1:8080 or a host
 * address:8080) never crosses the uplink, so TC never sees it. Instead its
 * connect()/sendmsg() is pointed at the container directly, and
 * getpeername()/recvmsg() show the address it asked for.
 *
 * A pod or the host reaching a service (lb.h) is pointed at one of its
 * endpoints the same way, once per connection instead of once per packet.
 *
 * Over IPv6 (connect6 and the others) the same for ports published on
 * every address, reached at [::1] or an uplink's IPv6 address: the socket
 * is pointed at the container's IPv6 address. A container without one
 * (an IPv4-only network) is connected to at its IPv4 address, mapped (a
 * dual-stack socket's connect goes over IPv4); an unconnected datagram is
 * refused at once (ECONNREFUSED) rather than left to whatever the host
 * holds there; 127.0.0.1 reaches it. A
 * v4-mapped address (::ffff:127.0.0.1 on a dual-stack socket) is looked
 * up as IPv4 and pointed at the container's IPv4 address, mapped.
 *
 * The programs hang off the root cgroup, which every namespace's processes
 * share: only sockets of the host's network namespace (published ports,
 * services) and of this instance's endpoints (services) are touched. */

#include "lib/common.h"
#include "lib/ports.h"
#include "lib/lb.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader: the network namespace this instance serves. */
const volatile __u64 host_netns_cookie = 0;

#define SOCK_PASS 1
#define SOCK_REFUSE 0

#ifndef EADDRINUSE
#define EADDRINUSE 98
#endif
#ifndef ECONNREFUSED
#define ECONNREFUSED 111
#endif

/* Network namespaces of this instance's endpoints, by cookie (value:
 * unused): their sockets reach services through these hooks. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u8);
} lb_clients SEC(".maps");

/* What a socket (by cookie) was pointed at for a service frontend, to show
 * it the frontend again in recvmsg() and getpeername(). One socket may send
 * to several services (an unconnected UDP socket), so it is keyed by the
 * endpoint too, not kept in the socket's storage. */
struct lb_reverse_key {
	__u64 cookie;
	struct lb_backend backend;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct lb_reverse_key);
	__type(value, struct lb_backend); /* the frontend */
} lb_reverse SEC(".maps");

/* Per socket: the published address it asked for and the container address
 * it was sent to, to undo the rewrite for the application's eyes. */
struct sock_nat {
	__be32 orig_ip;
	__be32 new_ip;
	__be16 orig_port;
	__be16 new_port;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_nat);
} sock_nat SEC(".maps");

static __always_inline int host_socket(struct bpf_sock_addr *ctx)
{
	return bpf_get_netns_cookie(ctx) == host_netns_cookie;
}

static __always_inline int is_loopback(__be32 ip)
{
	return (bpf_ntohl(ip) >> 24) == 127;
}

/* The binding a host process reaches at ip:port, if any. A loopback
 * address reaches its own (a port published on 127.0.0.1 answers there
 * and, from_uplink refusing loopback from a wire, only there) and those on
 * every address; a host address reaches its own and those on every
 * address. */
static __always_inline struct port_entry *published(__u8 proto, __be32 ip, __be16 port)
{
	if (is_loopback(ip))
		return port_lookup(proto, ip, port, 1);
	if (!bpf_map_lookup_elem(&uplink_ips, &ip))
		return NULL;
	return port_lookup(proto, ip, port, 1);
}

/* Points the socket at dst instead of what it asked for, and remembers
 * both in its storage to undo it for the application's eyes. Returns
 * whether the socket has that storage: from_source looks no further for
 * a socket without it. */
static __always_inline int rewrite(struct bpf_sock_addr *ctx, __be32 ip, __be16 port)
{
	struct sock_nat *sn = bpf_sk_storage_get(&sock_nat, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (sn) {
		sn->orig_ip = ctx->user_ip4;
		sn->orig_port = (__be16)ctx->user_port;
		sn->new_ip = ip;
		sn->new_port = port;
	}
	ctx->user_ip4 = ip;
	ctx->user_port = port;
	return sn != NULL;
}

static __always_inline int redirect_to_container(struct bpf_sock_addr *ctx, __u64 netns)
{
	struct port_entry *pb;

	if (netns != host_netns_cookie)
		return SOCK_PASS;
	pb = published(ctx->protocol, ctx->user_ip4, (__be16)ctx->user_port);
	if (pb)
		rewrite(ctx, pb->container_ip, pb->container_port);
	return SOCK_PASS;
}

static __always_inline int lb_client(__u64 netns)
{
	return netns == host_netns_cookie || bpf_map_lookup_elem(&lb_clients, &netns);
}

/* A service without (usable) endpoints refuses at once, as kube-proxy's
 * REJECT rule does. */
static __always_inline int refused(void)
{
	bpf_set_retval(-ECONNREFUSED);
	return SOCK_REFUSE;
}

/* Points a client's connect()/sendmsg() to a service frontend at one of
 * its endpoints. Returns -1 if the destination is no service. A datagram
 * socket sending without connect() may talk to several services at once:
 * its storage keeps only the last, so the reverse map keeps each. */
static __always_inline int balance(struct bpf_sock_addr *ctx, __u64 netns, int unconnected)
{
	struct lb_backend frontend = { .addr = ctx->user_ip4, .port = (__be16)ctx->user_port };
	struct lb_reverse_key rk = {};
	struct lb_service *svc;
	__u32 n;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return -1;
	if (!lb_client(netns))
		return -1;
	/* Whether the address is a node's is asked only when it is no exact
	 * frontend: a ClusterIP costs one lookup. */
	svc = lb_lookup_exact(ctx->protocol, frontend.addr, frontend.port);
	if (!svc && lb_node_ip(frontend.addr))
		svc = lb_lookup_nodeport(ctx->protocol, frontend.port);
	if (!svc)
		return -1;
	n = svc->flags & LB_F_INTERNAL_LOCAL ? svc->local_count : svc->count;
	if (lb_pick(svc, n, netns, bpf_get_prandom_u32(), &rk.backend))
		return refused();
	/* Only a socket with storage has its answers looked up in the
	 * reverse map (from_source). */
	if (rewrite(ctx, rk.backend.addr, rk.backend.port) && unconnected) {
		rk.cookie = bpf_get_socket_cookie(ctx);
		bpf_map_update_elem(&lb_reverse, &rk, &frontend, BPF_ANY);
	}
	return SOCK_PASS;
}

static __always_inline int to_destination(struct bpf_sock_addr *ctx, int unconnected)
{
	__u64 netns = bpf_get_netns_cookie(ctx);
	int ret = balance(ctx, netns, unconnected);

	return ret < 0 ? redirect_to_container(ctx, netns) : ret;
}

/* Shows the address the application asked for where the socket was
 * pointed elsewhere. */
static __always_inline int from_source(struct bpf_sock_addr *ctx, int unconnected)
{
	struct lb_reverse_key rk = { .backend = { .addr = ctx->user_ip4, .port = (__be16)ctx->user_port } };
	struct lb_backend *frontend;
	struct sock_nat *sn;

	if (!lb_client(bpf_get_netns_cookie(ctx)))
		return SOCK_PASS;
	/* A socket never pointed elsewhere (most of them: every datagram a
	 * pod receives comes here) has nothing to undo. */
	sn = bpf_sk_storage_get(&sock_nat, ctx->sk, 0, 0);
	if (!sn)
		return SOCK_PASS;
	if (rk.backend.addr == sn->new_ip && rk.backend.port == sn->new_port) {
		ctx->user_ip4 = sn->orig_ip;
		ctx->user_port = sn->orig_port;
		return SOCK_PASS;
	}
	if (!unconnected)
		return SOCK_PASS;
	rk.cookie = bpf_get_socket_cookie(ctx);
	frontend = bpf_map_lookup_elem(&lb_reverse, &rk);
	if (frontend) {
		ctx->user_ip4 = frontend->addr;
		ctx->user_port = frontend->port;
	}
	return SOCK_PASS;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return to_destination(ctx, 0);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return to_destination(ctx, 1);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return from_source(ctx, 1);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return from_source(ctx, 0);
}

/* The port is taken: bind() fails with EADDRINUSE, what the application
 * would see were Docker's proxy holding it (a bare refusal is EPERM). */
static __always_inline int in_use(void)
{
	bpf_set_retval(-EADDRINUSE);
	return SOCK_REFUSE;
}

/* A host process binding a published port would never see its traffic (the
 * datapath takes it first): refuse, as Docker's proxy holding the port
 * would. A runtime that reserves its ports itself (PORT_F_RUNTIME_HELD) is
 * let through; the port is then held by its socket, so any other bind
 * still fails, by the kernel's own rule. */
SEC("cgroup/bind4")
int sock_bind4(struct bpf_sock_addr *ctx)
{
	__be32 ip = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	struct port_entry *pb;

	if (!host_socket(ctx) || !port)
		return SOCK_PASS;
	/* Loopback: only a port published on that very address is taken. */
	if (is_loopback(ip) || ip == 0)
		pb = port_lookup(ctx->protocol, ip, port, 0);
	else
		pb = published(ctx->protocol, ip, port);
	return pb && !(pb->flags & PORT_F_RUNTIME_HELD) ? in_use() : SOCK_PASS;
}

/* IPv6: the same for sockets of the host reaching [::1] or an uplink's
 * IPv6 address at a published port. */

/* Per socket, as sock_nat: the address asked for and the one it was sent
 * to (both 128-bit; a v4-mapped pair for a dual-stack socket's IPv4). */
struct sock_nat6 {
	struct ip6_key orig_ip;
	struct ip6_key new_ip;
	__be16 orig_port;
	__be16 new_port;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_nat6);
} sock_nat6 SEC(".maps");

static __always_inline void user_ip6(const struct bpf_sock_addr *ctx, struct ip6_key *a)
{
	a->addr[0] = ctx->user_ip6[0];
	a->addr[1] = ctx->user_ip6[1];
	a->addr[2] = ctx->user_ip6[2];
	a->addr[3] = ctx->user_ip6[3];
}

static __always_inline void set_user_ip6(struct bpf_sock_addr *ctx, const struct ip6_key *a)
{
	ctx->user_ip6[0] = a->addr[0];
	ctx->user_ip6[1] = a->addr[1];
	ctx->user_ip6[2] = a->addr[2];
	ctx->user_ip6[3] = a->addr[3];
}

static __always_inline int same_ip6(const struct ip6_key *a, const struct ip6_key *b)
{
	return a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] && a->addr[2] == b->addr[2] &&
	       a->addr[3] == b->addr[3];
}

static __always_inline int is_unspecified6(const struct ip6_key *a)
{
	return !(a->addr[0] | a->addr[1] | a->addr[2] | a->addr[3]);
}

/* ::ffff:0:0/96, an IPv4 address on a dual-stack socket. */
static __always_inline int is_v4mapped(const struct ip6_key *a)
{
	return !(a->addr[0] | a->addr[1]) && a->addr[2] == bpf_htonl(0xffff);
}

/* The binding a host process reaches at [a]:port over IPv6: one published
 * on that very address (the control plane took only the host's own), else
 * one published on every address, at [::1] or an uplink's IPv6 address. */
static __always_inline struct port_entry *published6(__u8 proto, const struct ip6_key *a, __be16 port)
{
	struct port_entry *pb = port6_lookup(proto, a, port);

	if (pb)
		return pb;
	if (!is_loopback6(a) && !bpf_map_lookup_elem(&uplink_ips6, a))
		return NULL;
	return port6_any(proto, port);
}

static __always_inline int to_destination6(struct bpf_sock_addr *ctx, int connecting)
{
	__be16 port = (__be16)ctx->user_port;
	struct ip6_key a, dst;
	struct port_entry *pb;
	struct ip6_key *cip;
	struct sock_nat6 *sn;

	if (!host_socket(ctx) || (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP))
		return SOCK_PASS;
	user_ip6(ctx, &a);
	dst = a;
	if (is_v4mapped(&a)) {
		pb = published(ctx->protocol, a.addr[3], port);
		if (!pb)
			return SOCK_PASS;
		dst.addr[3] = pb->container_ip;
	} else {
		pb = published6(ctx->protocol, &a, port);
		if (!pb)
			return SOCK_PASS;
		cip = bpf_map_lookup_elem(&endpoints6, &pb->ifindex);
		if (cip) {
			dst = *cip;
		} else if (connecting && pb->container_ip) {
			/* An IPv4-only container: its IPv4 address, mapped. A
			 * dual-stack socket's connect (the kernel reads the
			 * address after this hook) then goes over IPv4; a
			 * V6ONLY socket's fails (ENETUNREACH). */
			dst.addr[0] = 0;
			dst.addr[1] = 0;
			dst.addr[2] = bpf_htonl(0xffff);
			dst.addr[3] = pb->container_ip;
		} else {
			/* sendmsg: the kernel took the IPv6 path before this
			 * hook, so a mapped address would not leave. */
			return refused();
		}
	}
	sn = bpf_sk_storage_get(&sock_nat6, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (sn) {
		sn->orig_ip = a;
		sn->orig_port = port;
		sn->new_ip = dst;
		sn->new_port = pb->container_port;
	}
	set_user_ip6(ctx, &dst);
	ctx->user_port = pb->container_port;
	return SOCK_PASS;
}

static __always_inline int from_source6(struct bpf_sock_addr *ctx)
{
	struct sock_nat6 *sn;
	struct ip6_key a;

	if (!host_socket(ctx))
		return SOCK_PASS;
	sn = bpf_sk_storage_get(&sock_nat6, ctx->sk, 0, 0);
	if (!sn)
		return SOCK_PASS;
	user_ip6(ctx, &a);
	if (same_ip6(&a, &sn->new_ip) && (__be16)ctx->user_port == sn->new_port) {
		set_user_ip6(ctx, &sn->orig_ip);
		ctx->user_port = sn->orig_port;
	}
	return SOCK_PASS;
}

SEC("cgroup/connect6")
int sock_connect6(struct bpf_sock_addr *ctx)
{
	return to_destination6(ctx, 1);
}

SEC("cgroup/sendmsg6")
int sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return to_destination6(ctx, 0);
}

SEC("cgroup/recvmsg6")
int sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	return from_source6(ctx);
}

SEC("cgroup/getpeername6")
int sock_getpeername6(struct bpf_sock_addr *ctx)
{
	return from_source6(ctx);
}

/* bind4's guard for IPv6 sockets: [::] takes what is published on every
 * IPv6 address (a port published on 0.0.0.0 is IPv4's alone: a dual-stack
 * socket sees the IPv6 traffic; its IPv4 the datapath takes first), an IPv6 address of the host what is
 * published on it and, for an uplink's, on every address, a v4-mapped
 * address what its IPv4 address would. */
SEC("cgroup/bind6")
int sock_bind6(struct bpf_sock_addr *ctx)
{
	__be16 port = (__be16)ctx->user_port;
	struct port_entry *pb;
	struct ip6_key a;

	if (!host_socket(ctx) || !port)
		return SOCK_PASS;
	user_ip6(ctx, &a);
	if (is_v4mapped(&a)) {
		if (is_loopback(a.addr[3]) || !a.addr[3])
			pb = port_lookup(ctx->protocol, a.addr[3], port, 0);
		else
			pb = published(ctx->protocol, a.addr[3], port);
	} else if (is_unspecified6(&a)) {
		pb = port6_any(ctx->protocol, port);
	} else if (is_loopback6(&a)) {
		pb = port6_lookup(ctx->protocol, &a, port); /* as 127.0.0.1: only one published there */
	} else {
		pb = published6(ctx->protocol, &a, port);
	}
	return pb && !(pb->flags & PORT_F_RUNTIME_HELD) ? in_use() : SOCK_PASS;
}
