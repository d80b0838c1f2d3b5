// SPDX-License-Identifier: GPL-2.0
/* Socket-level load balancing: cgroup hooks translate a service VIP to a backend when a socket
 * connects (TCP, connected UDP) or sends (unconnected UDP), so packets carry the backend
 * address from the start and no per-packet NAT is needed; replies and getpeername show the VIP.
 * A service without backends refuses connections at once (ECONNREFUSED). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/layouts.h"
#include "include/lb.h"

#define ECONNREFUSED_ 111
#define SYS_PROCEED 1
#define SYS_REJECT 0

/* The flow as Maglev sees it: the client's address and port when the socket is bound (the same
 * flow then lands on the same backend as with tc-level translation), else the socket itself. */
static __always_inline __u32 flow_hash(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	__u32 sport = sk ? sk->src_port : 0;
	if (sport)
		return lb_flow_hash(sk->src_ip4, bpf_htons((__u16)sport), ctx->user_ip4, (__u16)ctx->user_port, (__u8)ctx->protocol);
	__u64 cookie = bpf_get_socket_cookie(ctx);
	return lb_flow_hash((__u32)cookie, (__u16)(cookie >> 32), ctx->user_ip4, (__u16)ctx->user_port, (__u8)ctx->protocol);
}

static __always_inline void remember_vip(struct bpf_sock_addr *ctx, struct lb_backend_value *be)
{
	struct lb_revnat_key key = { .cookie = bpf_get_socket_cookie(ctx), .ip = be->ip, .port = be->port };
	struct lb_revnat_value v = { .vip = ctx->user_ip4, .port = (__u16)ctx->user_port };
	bpf_map_update_elem(&mb_lb_revnat, &key, &v, BPF_ANY);
}

static __always_inline int translate(struct bpf_sock_addr *ctx)
{
	struct lb_service_value *svc = lb_service(ctx->user_ip4, (__u16)ctx->user_port, (__u8)ctx->protocol);
	if (!svc)
		return SYS_PROCEED; /* not a service */
	struct lb_backend_value be;
	/* The client of session affinity is the socket's network namespace: one per endpoint. */
	if (!svc->count || lb_pick(svc, flow_hash(ctx), bpf_get_netns_cookie(ctx), MB_LB_CLIENT_NETNS, bpf_ktime_get_ns(), &be) < 0) {
		bpf_set_retval(-ECONNREFUSED_);
		return SYS_REJECT;
	}
	remember_vip(ctx, &be);
	ctx->user_ip4 = be.ip;
	ctx->user_port = be.port;
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int sock4_connect(struct bpf_sock_addr *ctx)
{
	return translate(ctx);
}

SEC("cgroup/sendmsg4")
int sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return translate(ctx);
}

/* Shows the VIP as the peer of replies (recvmsg) and of connected sockets (getpeername). */
static __always_inline int reverse(struct bpf_sock_addr *ctx)
{
	struct lb_revnat_key key = { .cookie = bpf_get_socket_cookie(ctx), .ip = ctx->user_ip4, .port = (__u16)ctx->user_port };
	struct lb_revnat_value *v = bpf_map_lookup_elem(&mb_lb_revnat, &key);
	if (v) {
		ctx->user_ip4 = v->vip;
		ctx->user_port = v->port;
	}
	return SYS_PROCEED;
}

SEC("cgroup/recvmsg4")
int sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return reverse(ctx);
}

SEC("cgroup/getpeername4")
int sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return reverse(ctx);
}

char LICENSE[] SEC("license") = "GPL";
