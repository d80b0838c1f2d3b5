/* Service maps and backend selection, shared by the socket hooks (bpf/sock.c) and the tc-level
 * translation in the endpoint programs (bpf/endpoint.c), so both pick backends alike. */
#ifndef MEMBRANE_LB_H
#define MEMBRANE_LB_H

#include "layouts.h"

#ifndef NS_PER_SEC
#define NS_PER_SEC 1000000000ULL
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb_service_key);
	__type(value, struct lb_service_value);
} mb_lb_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct lb_backend_key);
	__type(value, struct lb_backend_value);
} mb_lb_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct lb_revnat_key);
	__type(value, struct lb_revnat_value);
} mb_lb_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4194304);
	__type(key, struct lb_maglev_key);
	__type(value, struct lb_maglev_value);
} mb_lb_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity_value);
} mb_lb_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct lb_member_key);
	__type(value, struct lb_member_value);
} mb_lb_members SEC(".maps");

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

/* Where Maglev places a flow: from the client's address and port and the frontend, so a flow
 * lands on the same backend whichever hook translates it, on every node. Ports in network
 * order. */
static __always_inline __u32 lb_flow_hash(__u32 saddr, __u16 sport, __u32 vip, __u16 vport, __u8 protocol)
{
	__u32 h = mix32(vip ^ mix32((__u32)vport | ((__u32)protocol << 16)));
	return mix32(h ^ mix32(saddr) ^ sport);
}

static __always_inline struct lb_service_value *lb_service(__u32 vip, __u16 port, __u8 protocol)
{
	struct lb_service_key key = { .vip = vip, .port = port, .protocol = protocol };
	return bpf_map_lookup_elem(&mb_lb_services, &key);
}

/* A backend of `svc` (which has at least one) for a new connection: the client's remembered
 * backend while its affinity lasts and the backend still serves, else the Maglev table's entry
 * for the flow's hash, else a random slot (a backend of weight w holds w slots). Returns -1
 * when the slot vanished under a concurrent update. */
static __always_inline int lb_pick(struct lb_service_value *svc, __u32 hash, __u64 client, __u8 client_kind, __u64 now,
				   struct lb_backend_value *out)
{
	struct lb_affinity_key akey = { .client = client, .service_id = svc->service_id, .kind = client_kind };
	if (svc->affinity_timeout) {
		struct lb_affinity_value *a = bpf_map_lookup_elem(&mb_lb_affinity, &akey);
		if (a && now - a->last_used_ns <= svc->affinity_timeout * NS_PER_SEC) {
			struct lb_member_key m = { .service_id = svc->service_id, .ip = a->ip, .port = a->port };
			if (bpf_map_lookup_elem(&mb_lb_members, &m)) {
				a->last_used_ns = now;
				out->ip = a->ip;
				out->port = a->port;
				out->pad = 0;
				return 0;
			}
		}
	}
	struct lb_backend_key bkey = { .service_id = svc->service_id };
	__u32 *slot = NULL;
	if (svc->algorithm == MB_LB_MAGLEV && svc->maglev_size) {
		struct lb_maglev_key mkey = { .service_id = svc->service_id, .index = hash % svc->maglev_size };
		slot = bpf_map_lookup_elem(&mb_lb_maglev, &mkey);
	}
	bkey.slot = slot ? *slot : bpf_get_prandom_u32() % svc->count + 1;
	struct lb_backend_value *be = bpf_map_lookup_elem(&mb_lb_backends, &bkey);
	if (!be)
		return -1;
	*out = *be;
	if (svc->affinity_timeout) {
		struct lb_affinity_value a = { .last_used_ns = now, .ip = be->ip, .port = be->port };
		bpf_map_update_elem(&mb_lb_affinity, &akey, &a, BPF_ANY);
	}
	return 0;
}

#endif
