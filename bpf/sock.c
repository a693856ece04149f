// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cgroup sock_addr hooks: host-local access to published ports.
 *
 * A process of the host reaching a published port (127.0.0.1:8080 or a host
 * address:8080) never crosses the uplink, so TC never sees it. Instead its
 * connect()/sendmsg() is pointed at the container directly, and
 * getpeername()/recvmsg() show the address it asked for. Only sockets of the
 * host's network namespace are touched: the programs hang off the root
 * cgroup, which every namespace's processes share. */

#include "lib/common.h"
#include "lib/ports.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader: the network namespace this instance serves. */
const volatile __u64 host_netns_cookie = 0;

#define SOCK_PASS 1
#define SOCK_REFUSE 0

#ifndef EADDRINUSE
#define EADDRINUSE 98
#endif

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

static __always_inline int redirect_to_container(struct bpf_sock_addr *ctx)
{
	__be32 ip = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	struct port_entry *pb;
	struct sock_nat *sn;

	if (!host_socket(ctx))
		return SOCK_PASS;
	pb = published(ctx->protocol, ip, port);
	if (!pb)
		return SOCK_PASS;
	sn = bpf_sk_storage_get(&sock_nat, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (sn) {
		sn->orig_ip = ip;
		sn->orig_port = port;
		sn->new_ip = pb->container_ip;
		sn->new_port = pb->container_port;
	}
	ctx->user_ip4 = pb->container_ip;
	ctx->user_port = pb->container_port;
	return SOCK_PASS;
}

static __always_inline int restore_published(struct bpf_sock_addr *ctx)
{
	struct sock_nat *sn;

	if (!host_socket(ctx))
		return SOCK_PASS;
	sn = bpf_sk_storage_get(&sock_nat, ctx->sk, 0, 0);
	if (sn && ctx->user_ip4 == sn->new_ip && (__be16)ctx->user_port == sn->new_port) {
		ctx->user_ip4 = sn->orig_ip;
		ctx->user_port = sn->orig_port;
	}
	return SOCK_PASS;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return redirect_to_container(ctx);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return redirect_to_container(ctx);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return restore_published(ctx);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return restore_published(ctx);
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
