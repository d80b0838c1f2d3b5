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

static __always_inline __u32 mix32(__u32 h)
{
	/* murmur3's finaliser: every input bit affects every output bit */
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* The flow as Maglev sees it: the client's address and port when the socket is bound (the same
 * flow then always lands on the same backend, on every node), else the socket itself. */
static __always_inline __u32 flow_hash(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	__u32 sport = sk ? sk->src_port : 0;
	__u32 saddr = sk ? sk->src_ip4 : 0;
	__u32 h = mix32(ctx->user_ip4 ^ mix32(ctx->user_port ^ (ctx->protocol << 16)));
	if (sport)
		return mix32(h ^ mix32(saddr) ^ sport);
	__u64 cookie = bpf_get_socket_cookie(ctx);
	return mix32(h ^ (__u32)cookie ^ mix32((__u32)(cookie >> 32)));
}

static __always_inline struct lb_backend_value *pick_backend(struct bpf_sock_addr *ctx, int *refuse)
{
	struct lb_service_key key = {
		.vip = ctx->user_ip4,
		.port = (__u16)ctx->user_port,
		.protocol = (__u8)ctx->protocol,
	};
	struct lb_service_value *svc = bpf_map_lookup_elem(&mb_lb_services, &key);
	if (!svc)
		return NULL; /* not a service */
	if (svc->count == 0) {
		*refuse = 1;
		return NULL;
	}
	struct lb_backend_key bkey = { .service_id = svc->service_id };
	__u32 *slot = NULL;
	if (svc->algorithm == MB_LB_MAGLEV && svc->maglev_size) {
		struct lb_maglev_key mkey = { .service_id = svc->service_id, .index = flow_hash(ctx) % svc->maglev_size };
		slot = bpf_map_lookup_elem(&mb_lb_maglev, &mkey);
	}
	bkey.slot = slot ? *slot : bpf_get_prandom_u32() % svc->count + 1;
	return bpf_map_lookup_elem(&mb_lb_backends, &bkey);
}

static __always_inline void remember_vip(struct bpf_sock_addr *ctx, struct lb_backend_value *be)
{
	struct lb_revnat_key key = { .cookie = bpf_get_socket_cookie(ctx), .ip = be->ip, .port = be->port };
	struct lb_revnat_value v = { .vip = ctx->user_ip4, .port = (__u16)ctx->user_port };
	bpf_map_update_elem(&mb_lb_revnat, &key, &v, BPF_ANY);
}

static __always_inline int translate(struct bpf_sock_addr *ctx)
{
	int refuse = 0;
	struct lb_backend_value *be = pick_backend(ctx, &refuse);
	if (refuse) {
		bpf_set_retval(-ECONNREFUSED_);
		return SYS_REJECT;
	}
	if (!be)
		return SYS_PROCEED;
	remember_vip(ctx, be);
	ctx->user_ip4 = be->ip;
	ctx->user_port = be->port;
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
